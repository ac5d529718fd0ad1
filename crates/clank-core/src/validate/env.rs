//! Environment variables: keys a shell accepts (outside the reserved `CLANK_` prefix) and
//! values up to 64 KiB that are never shown in a message, since they may be secrets.

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, show};

/// Longest env var key.
pub const ENV_KEY_MAX_LEN: usize = 255;

/// Prefix of the variables Clank injects into every container (`CLANK_DEPLOYMENT_ID`,
/// `CLANK_SERVICE`, ...). Users cannot set keys with it, in any letter case, so what a service
/// reads under it is always the platform's truth and never a stale user override.
pub const RESERVED_ENV_PREFIX: &str = "CLANK_";

/// Largest env var value: 64 KiB. Linux caps one `KEY=value` string at 128 KiB (`MAX_ARG_STRLEN`)
/// and all of them together at a quarter of the stack limit; anything bigger belongs in a file.
pub const ENV_VALUE_MAX_BYTES: usize = 64 * 1024;

/// Validate an env var key: `[A-Za-z_][A-Za-z0-9_]*`, the POSIX shell name shape, so every key can
/// be read as `$KEY` by a shell entrypoint.
///
/// Rules: `empty`, `too_long` (over [`ENV_KEY_MAX_LEN`]), `leading_digit`, `charset` (`-`, `.`,
/// `=`, spaces, non-ASCII...), `reserved` (starts with [`RESERVED_ENV_PREFIX`], any case).
pub fn validate_env_key(field: &str, key: &str) -> Result<(), InvalidInput> {
    const SHAPE: &str = "an env var key is letters, digits and `_`, not starting with a digit";
    if key.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!("must not be empty; {SHAPE}"),
        ));
    }
    if let Some((pos, c)) = first_disallowed(key, |c| c.is_ascii_alphanumeric() || c == '_') {
        let why = match c {
            '=' => "`=` separates the key from the value",
            '-' | '.' => "shells cannot read such a key as `$KEY`; use `_`",
            _ => "it is not a letter, digit or `_`",
        };
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}: {why}; {SHAPE}",
                show(key),
                describe_char(c)
            ),
        ));
    }
    if key.len() > ENV_KEY_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} characters; an env var key has at most {ENV_KEY_MAX_LEN}",
                show(key),
                key.len()
            ),
        ));
    }
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(InvalidInput::new(
            field,
            "leading_digit",
            format!("{} starts with a digit; {SHAPE}", show(key)),
        ));
    }
    if key
        .get(..RESERVED_ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_ENV_PREFIX))
    {
        return Err(InvalidInput::new(
            field,
            "reserved",
            format!(
                "{} starts with `{RESERVED_ENV_PREFIX}`, which is reserved for the variables \
                 Clank injects into every container",
                show(key)
            ),
        ));
    }
    Ok(())
}

/// Validate an env var value: at most [`ENV_VALUE_MAX_BYTES`] (`too_long`) and no NUL byte
/// (`charset`: the kernel passes the environment as NUL-terminated strings, so the value would be
/// cut silently). Newlines and any Unicode are fine.
///
/// The messages show sizes and byte offsets, never the value: it may be a secret.
pub fn validate_env_value(field: &str, value: &str) -> Result<(), InvalidInput> {
    if value.len() > ENV_VALUE_MAX_BYTES {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "the value is {} bytes; an env var value has at most {ENV_VALUE_MAX_BYTES} bytes \
                 (64 KiB); mount larger data as a file",
                value.len()
            ),
        ));
    }
    if let Some(offset) = value.bytes().position(|b| b == 0) {
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "the value contains a NUL byte at byte offset {offset}; the environment is passed \
                 as NUL-terminated strings, so the value would be cut there"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

    #[test]
    fn env_key_accepts_shell_names() {
        for k in [
            "DATABASE_URL",
            "_private",
            "a",
            "Port8080",
            &"K".repeat(255),
            "CLANKY",
        ] {
            assert_eq!(validate_env_key("key", k), Ok(()), "{k:?}");
        }
    }

    #[test]
    fn env_key_rejects_bad_keys() {
        let long = "K".repeat(256);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("1ST", "leading_digit", &[]),
            ("MY-VAR", "charset", &["`-`", "`_`"]),
            ("A=B", "charset", &["`=`"]),
            ("A B", "charset", &["a space"]),
            ("PÄTH", "charset", &["non-ASCII"]),
            ("A\u{0}", "charset", &["control"]),
            ("--upload-pack=x", "charset", &[]),
            (&long, "too_long", &["256"]),
            ("CLANK_DEPLOYMENT_ID", "reserved", &["CLANK_"]),
            ("clank_sneaky", "reserved", &[]),
            ("CLANK_", "reserved", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_env_key("key", input), rule, needles);
        }
    }

    #[test]
    fn env_value_allows_multiline_and_unicode_up_to_64_kib() {
        assert_eq!(validate_env_value("v", ""), Ok(()));
        assert_eq!(validate_env_value("v", "line1\nline2 é"), Ok(()));
        assert_eq!(validate_env_value("v", &"x".repeat(65_536)), Ok(()));
    }

    #[test]
    fn env_value_rejects_nul_and_oversize_without_showing_the_secret() {
        let e = validate_env_value("v", "hunter2\u{0}tail").unwrap_err();
        assert_eq!(e.rule, "charset");
        assert!(e.message.contains("byte offset 7"), "{}", e.message);
        assert!(!e.message.contains("hunter2"), "leaked: {}", e.message);
        let big = "s3cr3t".repeat(20_000);
        let e = validate_env_value("v", &big).unwrap_err();
        assert_eq!(e.rule, "too_long");
        assert!(!e.message.contains("s3cr3t"), "leaked: {}", e.message);
    }
}
