//! Pure validation of everything a user types: slugs, names, env vars, ports, domains, volumes,
//! image references, git sources and resource limits.
//!
//! Every check is a plain function returning `Result<T, InvalidInput>`. `T` is `()` when the input
//! is taken as is, and the normalised value when there is one form we store (a lowercased domain,
//! a mount path without `//`, a lowercased commit id, a trimmed display name).
//!
//! Conventions every function here follows:
//!
//! - The caller passes the `field` name (`"project.slug"`, `"volumes[2].mount_path"`, or `""` to
//!   name it later with [`InvalidInput::within`]); the validator never guesses it.
//! - `rule` is a short snake_case name a program can branch on. The shared ones are `empty`,
//!   `too_long`, `too_short`, `charset`, `reserved`, `leading_hyphen`, `trailing_hyphen`,
//!   `range` and `format`; a few checks add precise ones (`traversal`, `scheme`,
//!   `ip_literal`, ...), listed on each function.
//! - The message names the rule in words and shows the offending value through
//!   [`str::escape_debug`], cut to 64 characters, so a control character or a megabyte of input
//!   cannot garble a terminal or a log line. Env var *values* are never shown: they may be secrets.
//!
//! Checks are hand-written (no regex engine): they run in one pass and each failure can say
//! exactly which character or part broke which rule.
//!
//! One file per concept: `names` (slugs, display names), `env`, `network` (ports, domains),
//! `volumes`, `image`, `git` (URLs, refs, commits), `repository` (the operator's
//! [`RepositoryPolicy`]) and `settings` (limits, health checks, timeouts); this file holds the
//! message helpers they share. Every check is re-exported here, so callers write
//! `validate::validate_slug`.

mod env;
mod git;
mod image;
mod names;
mod network;
mod repository;
mod settings;
mod volumes;

pub use env::*;
pub use git::*;
pub use image::*;
pub use names::*;
pub use network::*;
pub use repository::*;
pub use settings::*;
pub use volumes::*;

/// Characters of an offending value shown in a message before it is cut.
const SHOWN_CHARS: usize = 64;

/// An offending value, quoted, escaped and cut to [`SHOWN_CHARS`] for a message.
pub(crate) fn show(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let rest = chars.count();
    if rest == 0 {
        format!("`{}`", head.escape_debug())
    } else {
        format!(
            "`{}…` ({} characters)",
            head.escape_debug(),
            SHOWN_CHARS + rest
        )
    }
}

/// One character described for a message: `a space`, `control character `\0``, `non-ASCII
/// character `а` (U+0430)`, or just `` `$` ``.
pub(crate) fn describe_char(c: char) -> String {
    if c == ' ' {
        "a space".to_owned()
    } else if c.is_control() {
        format!("control character `{}`", c.escape_debug())
    } else if c.is_whitespace() {
        format!("whitespace U+{:04X}", u32::from(c))
    } else if !c.is_ascii() {
        format!(
            "non-ASCII character `{}` (U+{:04X})",
            c.escape_debug(),
            u32::from(c)
        )
    } else {
        format!("`{c}`")
    }
}

/// The first character (with its 1-based position) that `allowed` rejects.
fn first_disallowed(s: &str, allowed: impl Fn(char) -> bool) -> Option<(usize, char)> {
    s.chars()
        .enumerate()
        .find(|&(_, c)| !allowed(c))
        .map(|(i, c)| (i + 1, c))
}

/// Unicode bidirectional controls: invisible, and they reorder how the text around them is shown
/// ("Trojan Source"), so a name containing them can display as something it is not.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// Assert `result` failed with `rule`, and that its message contains every `needle`.
#[cfg(test)]
#[track_caller]
fn assert_rule<T: std::fmt::Debug>(
    input: &str,
    result: Result<T, crate::error::InvalidInput>,
    rule: &str,
    needles: &[&str],
) {
    match result {
        Ok(v) => panic!("{input:?}: expected rule `{rule}`, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(
                e.rule, rule,
                "{input:?}: wrong rule, message: {}",
                e.message
            );
            for n in needles {
                assert!(
                    e.message.contains(n),
                    "{input:?}: message {:?} lacks {n:?}",
                    e.message
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_escapes_control_characters_and_truncates_huge_values() {
        assert_eq!(show("a\u{0}b\n"), "`a\\0b\\n`");
        let huge = "x".repeat(10_000);
        let shown = show(&huge);
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.contains("10000 characters"), "{shown}");
    }
}
