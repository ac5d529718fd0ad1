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

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use crate::error::InvalidInput;
use crate::image::ImageRef;

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

// ---------------------------------------------------------------------------------------------
// Slugs
// ---------------------------------------------------------------------------------------------

/// Longest slug: a DNS label (RFC 1035), since slugs become host names and name prefixes.
pub const SLUG_MAX_LEN: usize = 63;

/// Slugs refused at every level (workspace, project, environment, service), and why:
///
/// | slug | collides with |
/// |---|---|
/// | `new` | the "create" routes (`/projects/new`, `clank service new`) that sit where a slug goes |
/// | `clank` | the platform's own namespace: every container, network and volume Clank creates is named `clank-…`, and the control plane's containers are `clank-daemon`, `clank-proxy` |
/// | `localhost` | a service's name is its host name on the project network: a service called `localhost` would shadow loopback for its siblings |
/// | `none`, `null`, `undefined` | a missing value formatted into a string by a binding or a script (`str(None).lower()`, `` `${undefined}` ``); refusing them catches that bug at the first write |
///
/// `default` and `production` are deliberately *not* reserved: they are the default workspace and
/// environment (see `crate::address::AddressDefaults`).
pub const RESERVED_SLUGS: &[&str] = &["clank", "localhost", "new", "none", "null", "undefined"];

/// Slugs refused for *workspaces* only, on top of [`RESERVED_SLUGS`]. A workspace slug is the first
/// segment of dashboard URLs (`/{workspace}/{project}/…`), so it must not shadow the daemon's
/// top-level routes. Projects, environments and services sit deeper and may use these words (a
/// service called `api` or `auth` is the common case).
pub const RESERVED_WORKSPACE_SLUGS: &[&str] = &[
    "admin", "agent", "api", "assets", "auth", "docs", "health", "login", "logout", "metrics",
    "settings", "signup", "static", "webhooks",
];

/// What a slug is, repeated at the end of slug errors.
const SLUG_SHAPE: &str =
    "a slug is 1 to 63 characters of lowercase `a-z`, digits and `-`, starting with a letter";

/// Validate a slug: the name of a workspace, project, environment or service in addresses, REST
/// paths and the Docker names Clank derives (`clank-project-{slug}`).
///
/// Rules (in the order checked):
/// - `empty`;
/// - `charset`: only `a-z`, `0-9` and `-`. The message explains the usual offenders: uppercase,
///   `..` and `/` (path traversal, address separators), `.` and `_` (not DNS-safe), whitespace,
///   control characters, and non-ASCII letters (a Cyrillic `а` looks like a Latin `a`);
/// - `too_long`: more than [`SLUG_MAX_LEN`] characters (a DNS label);
/// - `leading_hyphen` / `leading_digit`: a slug starts with a letter, so it is a valid DNS label,
///   never parses as an option (`-x`), a number or an id, and reads as a name;
/// - `trailing_hyphen`;
/// - `double_hyphen`: `--` is reserved. Slugs become DNS labels, where `xx--` is the IDNA prefix
///   (`xn--80ak6aa92e` *displays* as a Cyrillic lookalike in browsers), and it keeps `--` free
///   as an unambiguous separator for names Clank generates from several slugs (the documented
///   `clank-{project}-{service}-data` cannot be split back: `a-b` + `c` and `a` + `b-c` give the
///   same name, so Clank finds its resources by labels, never by parsing names);
/// - `reserved`: one of [`RESERVED_SLUGS`].
pub fn validate_slug(field: &str, slug: &str) -> Result<(), InvalidInput> {
    if slug.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!("must not be empty; {SLUG_SHAPE}"),
        ));
    }
    if let Some((pos, c)) = first_disallowed(slug, |c| matches!(c, 'a'..='z' | '0'..='9' | '-')) {
        let why = if slug.contains("..") {
            "`..` means the parent directory in paths, so it is refused as path traversal"
                .to_owned()
        } else {
            match c {
                'A'..='Z' => {
                    let lower = slug.to_ascii_lowercase();
                    if validate_slug(field, &lower).is_ok() {
                        format!(
                            "uppercase letters are not allowed, slugs are lowercase \
                             (did you mean {}?)",
                            show(&lower)
                        )
                    } else {
                        "uppercase letters are not allowed, slugs are lowercase".to_owned()
                    }
                }
                '/' => "`/` separates the segments of an address \
                        (`workspace/project/environment/service`) and of paths"
                    .to_owned(),
                '.' => "dots separate DNS labels and file name extensions".to_owned(),
                '_' => "`_` is not valid in host names; use `-`".to_owned(),
                c if c.is_whitespace() => "slugs contain no whitespace; use `-`".to_owned(),
                c if c.is_control() => "control characters are never valid".to_owned(),
                c if !c.is_ascii() => {
                    "slugs are ASCII only, so a lookalike letter cannot pass for another slug"
                        .to_owned()
                }
                _ => "it is not a letter, digit or `-`".to_owned(),
            }
        };
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}: {why}; {SLUG_SHAPE}",
                show(slug),
                describe_char(c)
            ),
        ));
    }
    // Only ASCII is left, so bytes are characters.
    if slug.len() > SLUG_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} characters, longer than the {SLUG_MAX_LEN} a DNS label allows",
                show(slug),
                slug.len()
            ),
        ));
    }
    if slug.starts_with('-') {
        return Err(InvalidInput::new(
            field,
            "leading_hyphen",
            format!(
                "{} starts with `-`, which command lines read as an option; {SLUG_SHAPE}",
                show(slug)
            ),
        ));
    }
    if slug.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(InvalidInput::new(
            field,
            "leading_digit",
            format!(
                "{} starts with a digit; a slug starts with a letter so it never reads as a \
                 number or an id",
                show(slug)
            ),
        ));
    }
    if slug.ends_with('-') {
        return Err(InvalidInput::new(
            field,
            "trailing_hyphen",
            format!("{} ends with `-`, which DNS labels forbid", show(slug)),
        ));
    }
    if slug.contains("--") {
        return Err(InvalidInput::new(
            field,
            "double_hyphen",
            format!(
                "{} contains `--`, which is reserved (IDNA `xn--` labels and names Clank \
                 generates); use a single `-`",
                show(slug)
            ),
        ));
    }
    if RESERVED_SLUGS.contains(&slug) {
        return Err(InvalidInput::new(
            field,
            "reserved",
            format!(
                "{} is reserved (it collides with Clank's own routes or resource names); \
                 choose another slug",
                show(slug)
            ),
        ));
    }
    Ok(())
}

/// Validate a workspace slug: a [slug](validate_slug) that is also none of
/// [`RESERVED_WORKSPACE_SLUGS`] (rule `reserved`).
pub fn validate_workspace_slug(field: &str, slug: &str) -> Result<(), InvalidInput> {
    validate_slug(field, slug)?;
    if RESERVED_WORKSPACE_SLUGS.contains(&slug) {
        return Err(InvalidInput::new(
            field,
            "reserved",
            format!(
                "{} is reserved for workspaces: workspace slugs are the first segment of \
                 dashboard URLs and `/{slug}` is one of Clank's own routes",
                show(slug)
            ),
        ));
    }
    Ok(())
}

/// Derive a slug from a display name (`"Café Menu 2"` → `cafe-menu-2`): projects get one
/// automatically.
///
/// Lowercases, folds common accented Latin letters to ASCII (`é` → `e`, `ß` → `ss`), turns every
/// run of other characters into one `-`, trims hyphens, and cuts at [`SLUG_MAX_LEN`]. The result
/// always passes [`validate_slug`]; when it could not (nothing ASCII left, a leading digit as in
/// `"2048 Game"`, a reserved word such as `"New"`) this returns that error, explaining which slug
/// the name gave, so the caller can ask for a slug explicitly instead of inventing one.
pub fn slugify(field: &str, name: &str) -> Result<String, InvalidInput> {
    let mut slug = String::new();
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded: Option<&str> = match c {
            'a'..='z' | '0'..='9' => {
                if gap && !slug.is_empty() {
                    slug.push('-');
                }
                gap = false;
                slug.push(c);
                continue;
            }
            // Combining accents (from decomposed input, or `İ` lowercased to `i̇`) belong
            // to the letter before them: drop them without starting a new word.
            '\u{300}'..='\u{36f}' => continue,
            _ => fold_latin(c),
        };
        match folded {
            Some(ascii) => {
                if gap && !slug.is_empty() {
                    slug.push('-');
                }
                gap = false;
                slug.push_str(ascii);
            }
            None => gap = true,
        }
        if slug.len() > SLUG_MAX_LEN {
            break;
        }
    }
    slug.truncate(SLUG_MAX_LEN);
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!(
                "cannot derive a slug from the name {}: it has no ASCII letters or digits; \
                 choose a slug explicitly",
                show(name)
            ),
        ));
    }
    validate_slug(field, &slug).map_err(|e| {
        InvalidInput::new(
            e.field,
            e.rule,
            format!(
                "the name {} gives the slug {}, which is not valid ({}); choose a slug explicitly",
                show(name),
                show(&slug),
                e.message
            ),
        )
    })?;
    Ok(slug)
}

/// ASCII for the accented Latin letters common in names (lowercase input).
fn fold_latin(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ł' | 'ľ' => "l",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Display names
// ---------------------------------------------------------------------------------------------

/// Longest display name, in characters (not bytes: `é` counts once).
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;

/// Validate a display name (a project's or service's human name) and return it trimmed.
///
/// Any Unicode text is welcome except: control characters and bidirectional controls (`charset`:
/// both can make a name display as something else), only whitespace (`empty`), and more than
/// [`DISPLAY_NAME_MAX_CHARS`] characters once trimmed (`too_long`).
pub fn validate_display_name<'a>(field: &str, name: &'a str) -> Result<&'a str, InvalidInput> {
    if let Some((pos, c)) = first_disallowed(name, |c| !c.is_control() && !is_bidi_control(c)) {
        let what = if is_bidi_control(c) {
            format!(
                "bidirectional control U+{:04X}, which reorders how text displays",
                u32::from(c)
            )
        } else {
            describe_char(c)
        };
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {what} at position {pos}; names are printable text",
                show(name)
            ),
        ));
    }
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            if name.is_empty() {
                "must not be empty".to_owned()
            } else {
                format!("{} is only whitespace; give a name", show(name))
            },
        ));
    }
    let chars = trimmed.chars().count();
    if chars > DISPLAY_NAME_MAX_CHARS {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {chars} characters; a name has at most {DISPLAY_NAME_MAX_CHARS}",
                show(trimmed)
            ),
        ));
    }
    Ok(trimmed)
}

// ---------------------------------------------------------------------------------------------
// Environment variables
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// Validate a TCP port, 1..=65535 (`range`). Takes `u32` so `0` and `70000` from JSON or a CLI
/// flag reach this check instead of failing, or wrapping, in a cast.
pub fn validate_port(field: &str, port: u32) -> Result<u16, InvalidInput> {
    match u16::try_from(port) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(InvalidInput::new(
            field,
            "range",
            format!("port {port} is out of range; a port is between 1 and 65535"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Domains
// ---------------------------------------------------------------------------------------------

/// Longest domain name (RFC 1035, without the trailing dot).
pub const DOMAIN_MAX_LEN: usize = 253;
/// Longest label of a domain name.
pub const DOMAIN_LABEL_MAX_LEN: usize = 63;

/// Validate a domain an endpoint serves (`app.example.com`, `*.preview.example.com`) and return it
/// normalised: lowercase, without a trailing dot.
///
/// An RFC 1123 host name with at least two labels; one leading `*.` wildcard label is allowed when
/// at least two labels follow it. Rules:
/// - `empty`; `too_long` (over [`DOMAIN_MAX_LEN`], or a label over [`DOMAIN_LABEL_MAX_LEN`]);
/// - `scheme` (`https://…`), `path` (`/`, `?`, `#`), `port` (`:8443`): give the host name only;
/// - `ip_literal`: an IPv4/IPv6 address, or an all-digit top-level label (TLS certificates are
///   issued for names, and `1.2.3.4` would otherwise pass as four labels);
/// - `charset`: only `a-z`, `0-9`, `-` and `.`. Internationalised names must be given in their
///   ASCII `xn--` form, which also keeps lookalike letters out;
/// - `empty_label` (`a..b`, `.a`), `leading_hyphen` / `trailing_hyphen` (per label), `wildcard`
///   (`*` anywhere but a single leading `*.`), `single_label` (`localhost`, `*.com`).
pub fn validate_domain(field: &str, domain: &str) -> Result<String, InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not a valid domain: {why}", show(domain)),
        ))
    };
    if domain.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give a domain such as `app.example.com`",
        ));
    }
    if let Some(i) = domain.find("://") {
        return err(
            "scheme",
            format!(
                "remove the scheme `{}://`; give the host name only, e.g. `app.example.com`",
                domain[..i].escape_debug()
            ),
        );
    }
    if let Some((pos, c)) = first_disallowed(domain, |c| c.is_ascii_graphic()) {
        let why = if c.is_ascii() {
            "domains contain no whitespace or control characters".to_owned()
        } else {
            "internationalised domains must be given in their ASCII form (`xn--…`), which also \
             keeps lookalike letters out"
                .to_owned()
        };
        return err(
            "charset",
            format!("{} at position {pos}: {why}", describe_char(c)),
        );
    }
    let unbracketed = domain.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<IpAddr>().is_ok() || domain.parse::<SocketAddr>().is_ok() {
        return err(
            "ip_literal",
            "it is an IP address; endpoints serve domain names (TLS certificates are issued for \
             names)"
                .to_owned(),
        );
    }
    if domain.contains(['/', '?', '#']) {
        return err(
            "path",
            "it contains a path or query; give the host name only".to_owned(),
        );
    }
    if domain.contains('@') {
        return err(
            "charset",
            "`@` (user info) is not part of a domain; give the host name only".to_owned(),
        );
    }
    if domain.contains(':') {
        if domain
            .split(':')
            .next()
            .is_some_and(|h| h.parse::<IpAddr>().is_ok())
        {
            return err(
                "ip_literal",
                "it is an IP address with a port; endpoints serve domain names".to_owned(),
            );
        }
        return err(
            "port",
            "it contains a port; endpoints serve on 80/443 and the service's own port is set \
             separately"
                .to_owned(),
        );
    }
    let mut normalised = domain.to_ascii_lowercase();
    if normalised.ends_with('.') {
        normalised.pop();
    }
    if normalised.len() > DOMAIN_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} characters; a domain has at most {DOMAIN_MAX_LEN}",
                normalised.len()
            ),
        );
    }
    let (wildcard, rest) = match normalised.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, normalised.as_str()),
    };
    if rest.contains('*') {
        return err(
            "wildcard",
            "`*` is only allowed as a single leading `*.` label".to_owned(),
        );
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in rest.split('.') {
        labels += 1;
        last = label;
        if label.is_empty() {
            return err(
                "empty_label",
                "it has an empty label (`..`, or a leading or doubled trailing dot)".to_owned(),
            );
        }
        if label.len() > DOMAIN_LABEL_MAX_LEN {
            return err(
                "too_long",
                format!(
                    "the label {} is {} characters; a label has at most {DOMAIN_LABEL_MAX_LEN}",
                    show(label),
                    label.len()
                ),
            );
        }
        if let Some((_, c)) = first_disallowed(label, |c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        {
            return err(
                "charset",
                format!(
                    "the label {} contains {}; host names use only letters, digits and `-`",
                    show(label),
                    describe_char(c)
                ),
            );
        }
        if label.starts_with('-') {
            return err(
                "leading_hyphen",
                format!("the label {} starts with `-`", show(label)),
            );
        }
        if label.ends_with('-') {
            return err(
                "trailing_hyphen",
                format!("the label {} ends with `-`", show(label)),
            );
        }
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return err(
            "ip_literal",
            "its top-level label is all digits, so it reads as an IPv4 address".to_owned(),
        );
    }
    if labels < 2 {
        return err(
            "single_label",
            if wildcard {
                "a wildcard needs at least two labels after `*.` (e.g. `*.example.com`)".to_owned()
            } else {
                "it is a single label; give a full name such as `app.example.com`".to_owned()
            },
        );
    }
    Ok(normalised)
}

// ---------------------------------------------------------------------------------------------
// Volumes
// ---------------------------------------------------------------------------------------------

/// Longest volume mount path (Linux `PATH_MAX`).
pub const MOUNT_PATH_MAX_LEN: usize = 4096;

/// Directories a volume may not be mounted on or under. The container runtime mounts procfs,
/// sysfs and devtmpfs there; a volume over them hides the kernel interfaces the container needs
/// (`/dev/null`, `/proc/self`), and runc refuses some of these mounts outright.
pub const RESERVED_MOUNT_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

/// Files Docker bind-mounts into every container itself; a volume on them fails with a duplicate
/// mount point error, or silently breaks name resolution.
pub const RESERVED_MOUNT_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

/// Validate where a volume is mounted inside the container, and return it normalised (`//` and `.`
/// components and a trailing `/` removed).
///
/// Rules: `empty`; `too_long` (over [`MOUNT_PATH_MAX_LEN`] bytes); `charset` (NUL or other control
/// characters, and `:`, which Docker's `volume:path:mode` bind syntax splits on); `not_absolute`;
/// `traversal` (a `..` component); `root` (`/` itself would hide the whole image); `reserved`
/// (on or under [`RESERVED_MOUNT_DIRS`], or one of [`RESERVED_MOUNT_FILES`]).
pub fn validate_mount_path(field: &str, path: &str) -> Result<String, InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not a valid mount path: {why}", show(path)),
        ))
    };
    if path.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give an absolute path such as `/var/lib/postgresql/data`",
        ));
    }
    if path.len() > MOUNT_PATH_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} bytes; a path has at most {MOUNT_PATH_MAX_LEN}",
                path.len()
            ),
        );
    }
    if let Some((pos, c)) = first_disallowed(path, |c| !c.is_control() && c != ':') {
        let why = if c == ':' {
            "Docker's `volume:path:mode` syntax splits on `:`"
        } else {
            "paths contain no control characters"
        };
        return err(
            "charset",
            format!("{} at position {pos}: {why}", describe_char(c)),
        );
    }
    if !path.starts_with('/') {
        return err(
            "not_absolute",
            "it is relative; a mount path starts with `/`".to_owned(),
        );
    }
    let mut normalised = String::with_capacity(path.len());
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                return err(
                    "traversal",
                    "it contains a `..` component (path traversal)".to_owned(),
                );
            }
            c => {
                normalised.push('/');
                normalised.push_str(c);
            }
        }
    }
    if normalised.is_empty() {
        return err(
            "root",
            "a volume on `/` would hide the whole image; mount it on a directory".to_owned(),
        );
    }
    let under = |dir: &str| {
        normalised == dir
            || normalised
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some(dir) = RESERVED_MOUNT_DIRS.iter().find(|d| under(d)) {
        return err(
            "reserved",
            format!(
                "`{dir}` belongs to the container runtime (kernel interfaces); mount the volume \
                 elsewhere"
            ),
        );
    }
    if RESERVED_MOUNT_FILES.contains(&normalised.as_str()) {
        return err(
            "reserved",
            "Docker manages this file in every container; mount the volume elsewhere".to_owned(),
        );
    }
    Ok(normalised)
}

/// Longest volume name.
pub const VOLUME_NAME_MAX_LEN: usize = 128;

/// Validate a Docker volume name: Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two
/// characters, as in Docker's own check), at most [`VOLUME_NAME_MAX_LEN`].
///
/// Rules: `empty`, `too_short`, `too_long`, `leading_hyphen` / `format` (must start with a letter
/// or digit), `charset` (a `/` would make Docker read the name as a host path to bind-mount).
pub fn validate_volume_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    const SHAPE: &str = "a volume name is letters, digits, `_`, `.` and `-`, starting with a \
                         letter or digit";
    if name.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!("must not be empty; {SHAPE}"),
        ));
    }
    if let Some((pos, c)) = first_disallowed(name, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
    }) {
        let why = if c == '/' {
            "Docker would read a name with `/` as a host path to bind-mount"
        } else {
            "it is not allowed in Docker volume names"
        };
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}: {why}; {SHAPE}",
                show(name),
                describe_char(c)
            ),
        ));
    }
    if name.len() < 2 {
        return Err(InvalidInput::new(
            field,
            "too_short",
            format!(
                "{} is one character; Docker volume names have at least two",
                show(name)
            ),
        ));
    }
    if name.len() > VOLUME_NAME_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} characters; a volume name has at most {VOLUME_NAME_MAX_LEN}",
                show(name),
                name.len()
            ),
        ));
    }
    if name.starts_with('-') {
        return Err(InvalidInput::new(
            field,
            "leading_hyphen",
            format!(
                "{} starts with `-`, which command lines read as an option; {SHAPE}",
                show(name)
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(InvalidInput::new(
            field,
            "format",
            format!("{} must start with a letter or digit; {SHAPE}", show(name)),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Image references
// ---------------------------------------------------------------------------------------------

/// Validate and parse a container image reference (`ghcr.io/acme/api:1.2@sha256:…`); see
/// [`ImageRef`] for the grammar and rules. Errors carry `field`.
pub fn validate_image_ref(field: &str, reference: &str) -> Result<ImageRef, InvalidInput> {
    ImageRef::parse(reference).map_err(|mut e| {
        field.clone_into(&mut e.field);
        e
    })
}

// ---------------------------------------------------------------------------------------------
// Git sources
// ---------------------------------------------------------------------------------------------

/// Longest git URL.
pub const GIT_URL_MAX_LEN: usize = 2048;

/// URL schemes accepted for a git source.
pub const GIT_URL_SCHEMES: &[&str] = &["https", "http", "ssh", "git", "file"];

/// Validate the URL of a git repository to clone.
///
/// Accepted: `https://`, `http://`, `ssh://`, `git://` and `file://` URLs, and the scp-like
/// `[user@]host:path` (`git@github.com:acme/shop.git`). Everything git would treat as something
/// other than "fetch from this place" is refused, because the URL reaches `git clone`:
/// - `leading_hyphen`: the URL, a host or a user starting with `-` would be read as an option by
///   git or by ssh (`--upload-pack=…`, `ssh://-oProxyCommand=…`, CVE-2017-1000117);
/// - `remote_helper`: `transport::address` runs a remote helper; `ext::` runs any command;
/// - `charset`: whitespace, control or non-ASCII characters (percent-encode them);
/// - `scheme`: another scheme, or a bare local path (use `file://`);
/// - `credentials`: a password in the URL (`https://user:token@…`): URLs end up in logs and
///   deployment records, so credentials go in a secret;
/// - `empty_host` (allowed only for `file://`), `port`, `format` (no repository path), `empty`,
///   `too_long` (over [`GIT_URL_MAX_LEN`]).
pub fn validate_git_url(field: &str, url: &str) -> Result<(), InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not an accepted git URL: {why}", show(url)),
        ))
    };
    if url.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give a URL such as `https://github.com/acme/shop.git`",
        ));
    }
    if url.len() > GIT_URL_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} bytes; a git URL has at most {GIT_URL_MAX_LEN}",
                url.len()
            ),
        );
    }
    if url.starts_with('-') {
        return err(
            "leading_hyphen",
            "it starts with `-`, so git would read it as an option (e.g. `--upload-pack=…`)"
                .to_owned(),
        );
    }
    if has_remote_helper_syntax(url) {
        return err(
            "remote_helper",
            "`transport::address` makes git run a remote helper (`ext::` runs an arbitrary \
             command); use an https, http, ssh, git or file URL"
                .to_owned(),
        );
    }
    if let Some((pos, c)) = first_disallowed(url, |c| c.is_ascii_graphic()) {
        return err(
            "charset",
            format!(
                "{} at position {pos}; percent-encode such characters",
                describe_char(c)
            ),
        );
    }
    if let Some(i) = url.find("://") {
        let scheme = &url[..i];
        if !GIT_URL_SCHEMES.contains(&scheme) {
            return err(
                "scheme",
                format!(
                    "the scheme `{}` is not accepted; use one of https, http, ssh, git, file \
                     (lowercase)",
                    scheme.escape_debug()
                ),
            );
        }
        let rest = &url[i + 3..];
        let (authority, path) = match rest.find('/') {
            Some(j) => (&rest[..j], &rest[j..]),
            None => (rest, ""),
        };
        let host_port = match authority.rsplit_once('@') {
            Some((user, host_port)) => {
                if user.contains(':') {
                    return err(
                        "credentials",
                        "it contains a password; URLs end up in logs, so store credentials in a \
                         secret instead"
                            .to_owned(),
                    );
                }
                check_git_user(user).or_else(|why| err("leading_hyphen", why))?;
                host_port
            }
            None => authority,
        };
        let (host, port) = split_host_port(host_port);
        if host.is_empty() {
            if scheme != "file" {
                return err("empty_host", "it names no host".to_owned());
            }
        } else {
            check_git_host(host).or_else(|(rule, why)| err(rule, why))?;
        }
        if let Some(port) = port {
            match port.parse::<u16>() {
                Ok(p) if p != 0 => {}
                _ => {
                    return err(
                        "port",
                        format!(
                            "the port `{}` is not a number between 1 and 65535",
                            port.escape_debug()
                        ),
                    );
                }
            }
        }
        if path.trim_start_matches('/').is_empty() {
            return err(
                "format",
                "it names no repository path after the host".to_owned(),
            );
        }
        return Ok(());
    }
    // git reads `host:path` as scp-like when the first `:` comes before any `/`.
    let colon = url.find(':');
    let slash = url.find('/');
    match colon {
        Some(c) if slash.is_none_or(|s| c < s) => {
            let (user_host, path) = (&url[..c], &url[c + 1..]);
            let host = match user_host.rsplit_once('@') {
                Some((user, host)) => {
                    check_git_user(user).or_else(|why| err("leading_hyphen", why))?;
                    host
                }
                None => user_host,
            };
            if host.is_empty() {
                return err("empty_host", "it names no host before `:`".to_owned());
            }
            check_git_host(host).or_else(|(rule, why)| err(rule, why))?;
            if path.is_empty() {
                return err("format", "it names no repository path after `:`".to_owned());
            }
            Ok(())
        }
        _ => err(
            "scheme",
            "it is neither a URL nor `user@host:path`; write a local repository as \
             `file:///path/to/repo`"
                .to_owned(),
        ),
    }
}

/// Which repositories an operator lets services build from, checked when a git service is
/// created or changed (and again by the builder before it clones). By default a repository
/// must be on another machine: `file://` paths and hosts that are this machine or its private
/// network (`localhost`, loopback, private, link-local, CGNAT and unspecified addresses) are
/// refused, so one tenant cannot make the build server read its own disk or probe the LAN.
/// A host name that *resolves* to such an address is not caught here (no I/O in core).
///
/// An operator can narrow it further: `allowed_schemes` (`https`, `ssh`, ...; `scp` names the
/// `user@host:path` form) and `allowed_hosts` (`github.com`, or `*.example.com` for every
/// subdomain); an empty list allows any. These apply whether or not local repositories are
/// allowed (a `file://` URL has the scheme `file` and no host).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryPolicy {
    /// Allow `file://` repositories and private or loopback hosts (single-user installs,
    /// a forge on the LAN). Set by the operator (`CLANK_ALLOW_LOCAL_REPOSITORIES=1`).
    pub allow_local: bool,
    /// The only URL schemes allowed (lowercase: `https`, `http`, `ssh`, `git`, `file`,
    /// `scp`); empty: any (`CLANK_BUILD_REPOSITORY_SCHEMES`).
    pub allowed_schemes: Vec<String>,
    /// The only hosts allowed (lowercase names, `*.example.com` for subdomains); empty: any
    /// (`CLANK_BUILD_REPOSITORY_HOSTS`).
    pub allowed_hosts: Vec<String>,
}

/// The scheme of a git URL as [`RepositoryPolicy::allowed_schemes`] names it, and its host
/// (lowercase, without user, port or IPv6 brackets; empty for `file://`).
fn git_url_scheme_and_host(url: &str) -> (String, String) {
    let (scheme, host) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or_default();
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (scheme, split_host_port(host_port).0)
        }
        None => {
            let user_host = url.split(':').next().unwrap_or_default();
            (
                "scp",
                user_host.rsplit_once('@').map_or(user_host, |(_, h)| h),
            )
        }
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (
        scheme.to_ascii_lowercase(),
        host.trim_end_matches('.').to_ascii_lowercase(),
    )
}

/// Whether `host` matches an `allowed_hosts` entry: the same name, or a subdomain of
/// `example.com` for `*.example.com`.
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => pattern == host,
    }
}

impl RepositoryPolicy {
    /// The policy itself, as an operator wrote it: schemes among [`GIT_URL_SCHEMES`] and
    /// `scp`, hosts that are names (or `*.name`) without scheme, port or path. `field` names
    /// the setting in errors (`builder.repositories`).
    pub fn validate(&self, field: &str) -> Result<(), InvalidInput> {
        for scheme in &self.allowed_schemes {
            if scheme != "scp" && !GIT_URL_SCHEMES.contains(&scheme.as_str()) {
                return Err(InvalidInput::new(
                    format!("{field}.allowed_schemes"),
                    "one_of",
                    format!(
                        "`{}` is not a git URL scheme; use {} or scp (`user@host:path`)",
                        scheme.escape_debug(),
                        GIT_URL_SCHEMES.join(", ")
                    ),
                ));
            }
        }
        for host in &self.allowed_hosts {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !ok {
                return Err(InvalidInput::new(
                    format!("{field}.allowed_hosts"),
                    "format",
                    format!(
                        "`{}` is not a lowercase host name or `*.domain` pattern (no scheme, \
                         port or path)",
                        host.escape_debug()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check `url` (already shaped by [`validate_git_url`]) against the policy. Rules:
    /// `scheme_not_allowed`, `host_not_allowed`, `local_repository`, `private_host`.
    pub fn check(&self, field: &str, url: &str) -> Result<(), InvalidInput> {
        let (scheme, url_host) = git_url_scheme_and_host(url);
        if !self.allowed_schemes.is_empty() && !self.allowed_schemes.contains(&scheme) {
            return Err(InvalidInput::new(
                field,
                "scheme_not_allowed",
                format!(
                    "{} uses `{scheme}`, and this server builds only from {} repositories \
                     (operator setting builder.repositories.allowed_schemes, \
                     CLANK_BUILD_REPOSITORY_SCHEMES)",
                    show(url),
                    self.allowed_schemes.join(", ")
                ),
            ));
        }
        if !self.allowed_hosts.is_empty()
            && scheme != "file"
            && !self
                .allowed_hosts
                .iter()
                .any(|p| host_matches(p, &url_host))
        {
            return Err(InvalidInput::new(
                field,
                "host_not_allowed",
                format!(
                    "{} is on `{url_host}`, and this server builds only from repositories on \
                     {} (operator setting builder.repositories.allowed_hosts, \
                     CLANK_BUILD_REPOSITORY_HOSTS)",
                    show(url),
                    self.allowed_hosts.join(", ")
                ),
            ));
        }
        if self.allow_local {
            return Ok(());
        }
        let hint = "the operator can allow local repositories with \
                    CLANK_ALLOW_LOCAL_REPOSITORIES=1 (config: allow_local_repositories)";
        let host = match url.split_once("://") {
            Some(("file", _)) => {
                return Err(InvalidInput::new(
                    field,
                    "local_repository",
                    format!(
                        "{} is a path on the build server's own disk, which services may not \
                         build from; push it to a git host; {hint}",
                        show(url)
                    ),
                ));
            }
            Some((_, rest)) => {
                let authority = rest.split('/').next().unwrap_or_default();
                let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                split_host_port(host_port).0
            }
            // scp-like `user@host:path`
            None => {
                let user_host = url.split(':').next().unwrap_or_default();
                user_host.rsplit_once('@').map_or(user_host, |(_, h)| h)
            }
        };
        if is_local_host(host) {
            return Err(InvalidInput::new(
                field,
                "private_host",
                format!(
                    "{} names `{host}`, which is this machine or its private network; services \
                     build from repositories on other hosts; {hint}",
                    show(url)
                ),
            ));
        }
        Ok(())
    }
}

/// `localhost`, `*.localhost`, or an IP literal that is loopback, private, link-local, shared
/// (CGNAT), unspecified or unique-local.
fn is_local_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
        }
        Ok(IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_local_host(&v4.to_string()))
        }
        // Digits-only or hex labels that are no canonical address (`127.1`, `2130706433`,
        // `0x7f000001`): git's resolver reads them as IPv4, so they are refused as local.
        Err(_) => literal.split('.').all(|label| {
            !label.is_empty()
                && (label.bytes().all(|b| b.is_ascii_digit())
                    || label
                        .strip_prefix("0x")
                        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())))
        }),
    }
}

/// Git's own test (transport.c): a run of URL-scheme characters followed by `::` selects a remote
/// helper. We refuse `::` anywhere outside an IPv6 `[…]` host, which covers that and any variant.
fn has_remote_helper_syntax(url: &str) -> bool {
    let mut depth = 0usize;
    let mut prev_colon_outside = false;
    for c in url.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                if prev_colon_outside {
                    return true;
                }
                prev_colon_outside = true;
                continue;
            }
            _ => {}
        }
        prev_colon_outside = false;
    }
    false
}

/// Host and optional port of an authority (`host`, `host:22`, `[::1]:22`).
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let port = authority[end + 1..].strip_prefix(':');
            return (&authority[..=end], port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

fn check_git_user(user: &str) -> Result<(), String> {
    if user.starts_with('-') {
        return Err("the user name starts with `-`, so ssh would read it as an option".to_owned());
    }
    Ok(())
}

fn check_git_host(host: &str) -> Result<(), (&'static str, String)> {
    if let Some(inner) = host.strip_prefix('[') {
        return match inner
            .strip_suffix(']')
            .map(str::parse::<std::net::Ipv6Addr>)
        {
            Some(Ok(_)) => Ok(()),
            _ => Err((
                "charset",
                format!("{} is not a valid IPv6 host", show(host)),
            )),
        };
    }
    if host.starts_with('-') {
        return Err((
            "leading_hyphen",
            "the host starts with `-`, so ssh would read it as an option \
             (`-oProxyCommand=…`)"
                .to_owned(),
        ));
    }
    if let Some((_, c)) = first_disallowed(host, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
    }) {
        return Err((
            "charset",
            format!(
                "the host {} contains {}; a host is letters, digits, `.` and `-`",
                show(host),
                describe_char(c)
            ),
        ));
    }
    Ok(())
}

/// Longest git ref name accepted.
pub const GIT_REF_MAX_LEN: usize = 255;

/// Validate a branch or tag name (`main`, `release/1.2`, `refs/heads/main`) by
/// `git check-ref-format` rules, plus no leading `-`.
///
/// Rules: `empty`; `too_long` (over [`GIT_REF_MAX_LEN`]); `leading_hyphen` (a ref such as
/// `--upload-pack=evil` would be read as an option by `git fetch`); `charset` (control characters,
/// space, `~ ^ : ? * [ \`); `format` (`..`, `@{`, a leading, trailing or doubled `/`, a trailing
/// `.`, a component starting with `.` or ending in `.lock`); `reserved` (the name `@`).
pub fn validate_git_ref(field: &str, name: &str) -> Result<(), InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            field,
            rule,
            format!("{} is not a valid branch or tag name: {why}", show(name)),
        ))
    };
    if name.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give a branch or tag name such as `main`",
        ));
    }
    if name.len() > GIT_REF_MAX_LEN {
        return err(
            "too_long",
            format!(
                "it is {} bytes; a ref name has at most {GIT_REF_MAX_LEN}",
                name.len()
            ),
        );
    }
    if name.starts_with('-') {
        return err(
            "leading_hyphen",
            "it starts with `-`, so git would read it as an option (e.g. `--upload-pack=…`)"
                .to_owned(),
        );
    }
    if let Some((pos, c)) = first_disallowed(name, |c| {
        !c.is_control() && !matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return err(
            "charset",
            format!(
                "{} at position {pos}; ref names exclude spaces, control characters and \
                 `~ ^ : ? * [ \\`",
                describe_char(c)
            ),
        );
    }
    if name == "@" {
        return err("reserved", "`@` alone is git's name for HEAD".to_owned());
    }
    if name.contains("..") {
        return err(
            "format",
            "it contains `..`, which git reads as a revision range".to_owned(),
        );
    }
    if name.contains("@{") {
        return err(
            "format",
            "it contains `@{`, which git reads as a reflog reference".to_owned(),
        );
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return err(
            "format",
            "it has a leading, trailing or doubled `/`".to_owned(),
        );
    }
    if name.ends_with('.') {
        return err("format", "it ends with `.`".to_owned());
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return err(
                "format",
                format!("the component {} starts with `.`", show(component)),
            );
        }
        if component.ends_with(".lock") {
            return err(
                "format",
                format!(
                    "the component {} ends with `.lock`, which git uses for lock files",
                    show(component)
                ),
            );
        }
    }
    Ok(())
}

/// Validate a commit id and return it lowercased: 7 to 40 hex digits (a SHA-1, possibly
/// abbreviated) or exactly 64 (a SHA-256 repository).
///
/// Rules: `empty`, `charset` (not hex), `too_short` (under 7), `too_long` (over 64), `format`
/// (41 to 63 digits: neither hash).
pub fn validate_commit_sha(field: &str, sha: &str) -> Result<String, InvalidInput> {
    if sha.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            "must not be empty; give a commit id (7 to 40 hex digits, or 64)",
        ));
    }
    if let Some((pos, c)) = first_disallowed(sha, |c| c.is_ascii_hexdigit()) {
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}; a commit id is hex digits `0-9a-f`",
                show(sha),
                describe_char(c)
            ),
        ));
    }
    let (rule, why) = match sha.len() {
        7..=40 | 64 => return Ok(sha.to_ascii_lowercase()),
        0..=6 => ("too_short", "under 7 hex digits is too ambiguous"),
        41..=63 => (
            "format",
            "a commit id is 7 to 40 hex digits (SHA-1) or 64 (SHA-256)",
        ),
        _ => (
            "too_long",
            "a commit id has at most 64 hex digits (SHA-256)",
        ),
    };
    Err(InvalidInput::new(
        field,
        rule,
        format!("{} is {} hex digits; {why}", show(sha), sha.len()),
    ))
}

// ---------------------------------------------------------------------------------------------
// Resource limits and health checks
// ---------------------------------------------------------------------------------------------

/// Most CPUs a service may be given.
pub const CPU_LIMIT_MAX: f64 = 256.0;
/// Memory limit bounds in MB; Docker refuses limits under 6 MB.
pub const MEMORY_LIMIT_MB: RangeInclusive<u64> = 6..=1_048_576;
/// Replicas of one process type; 0 stops it without deleting it.
pub const REPLICAS: RangeInclusive<u32> = 0..=100;
/// Seconds between health checks.
pub const HEALTH_CHECK_INTERVAL_S: RangeInclusive<u32> = 1..=3600;
/// Failed health checks before a deployment fails.
pub const HEALTH_CHECK_RETRIES: RangeInclusive<u32> = 1..=100;
/// Seconds a build may take.
pub const BUILD_TIMEOUT_S: RangeInclusive<u32> = 10..=86_400;
/// Seconds a deployment may take to pass its health checks.
pub const DEPLOY_TIMEOUT_S: RangeInclusive<u32> = 5..=86_400;
/// Longest health check path.
pub const HEALTH_CHECK_PATH_MAX_LEN: usize = 1024;

fn check_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &str,
    what: &str,
    value: T,
    range: &RangeInclusive<T>,
    unit: &str,
) -> Result<T, InvalidInput> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(InvalidInput::new(
        field,
        "range",
        format!(
            "{what} {value}{unit} is out of range; it must be between {}{unit} and {}{unit}",
            range.start(),
            range.end()
        ),
    ))
}

/// Validate a CPU limit in cores (`0.5` = half a core): finite, above 0, at most
/// [`CPU_LIMIT_MAX`] (`range`; NaN and infinities included).
pub fn validate_cpu_limit(field: &str, cpus: f64) -> Result<f64, InvalidInput> {
    if cpus.is_finite() && cpus > 0.0 && cpus <= CPU_LIMIT_MAX {
        return Ok(cpus);
    }
    Err(InvalidInput::new(
        field,
        "range",
        format!(
            "CPU limit {cpus} is out of range; it must be a number above 0 and at most \
             {CPU_LIMIT_MAX} cores (e.g. 0.5 for half a core)"
        ),
    ))
}

/// Validate a memory limit in MB, within [`MEMORY_LIMIT_MB`] (`range`).
pub fn validate_memory_limit_mb(field: &str, mb: u64) -> Result<u64, InvalidInput> {
    check_range(field, "memory limit", mb, &MEMORY_LIMIT_MB, " MB")
}

/// Validate a replica count, within [`REPLICAS`] (`range`).
pub fn validate_replicas(field: &str, replicas: u32) -> Result<u32, InvalidInput> {
    check_range(field, "replica count", replicas, &REPLICAS, "")
}

/// Validate a health check interval in seconds, within [`HEALTH_CHECK_INTERVAL_S`] (`range`).
pub fn validate_health_check_interval_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(
        field,
        "health check interval",
        secs,
        &HEALTH_CHECK_INTERVAL_S,
        " s",
    )
}

/// Validate a health check retry count, within [`HEALTH_CHECK_RETRIES`] (`range`).
pub fn validate_health_check_retries(field: &str, retries: u32) -> Result<u32, InvalidInput> {
    check_range(
        field,
        "health check retries",
        retries,
        &HEALTH_CHECK_RETRIES,
        "",
    )
}

/// Validate a build timeout in seconds, within [`BUILD_TIMEOUT_S`] (`range`).
pub fn validate_build_timeout_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(field, "build timeout", secs, &BUILD_TIMEOUT_S, " s")
}

/// Validate a deploy timeout in seconds, within [`DEPLOY_TIMEOUT_S`] (`range`).
pub fn validate_deploy_timeout_s(field: &str, secs: u32) -> Result<u32, InvalidInput> {
    check_range(field, "deploy timeout", secs, &DEPLOY_TIMEOUT_S, " s")
}

/// Validate a health check path. Empty is allowed and means "no HTTP check" (databases and other
/// non-HTTP services get a TCP or "running and stable" check). Otherwise it starts with `/`
/// (`format`), is at most [`HEALTH_CHECK_PATH_MAX_LEN`] bytes (`too_long`), and is printable
/// ASCII without spaces (`charset`: percent-encode anything else).
pub fn validate_health_check_path(field: &str, path: &str) -> Result<(), InvalidInput> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() > HEALTH_CHECK_PATH_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "{} is {} bytes; a health check path has at most {HEALTH_CHECK_PATH_MAX_LEN}",
                show(path),
                path.len()
            ),
        ));
    }
    if let Some((pos, c)) = first_disallowed(path, |c| c.is_ascii_graphic()) {
        return Err(InvalidInput::new(
            field,
            "charset",
            format!(
                "{} contains {} at position {pos}; a path is printable ASCII without spaces \
                 (percent-encode the rest)",
                show(path),
                describe_char(c)
            ),
        ));
    }
    if !path.starts_with('/') {
        return Err(InvalidInput::new(
            field,
            "format",
            format!(
                "{} must start with `/` (e.g. `/health`), or be empty for no HTTP check",
                show(path)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assert `result` failed with `rule`, and that its message contains every `needle`.
    #[track_caller]
    fn assert_rule<T: std::fmt::Debug>(
        input: &str,
        result: Result<T, InvalidInput>,
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

    // ---- message helpers ----

    #[test]
    fn show_escapes_control_characters_and_truncates_huge_values() {
        assert_eq!(show("a\u{0}b\n"), "`a\\0b\\n`");
        let huge = "x".repeat(10_000);
        let shown = show(&huge);
        assert!(shown.len() < 100, "{shown}");
        assert!(shown.contains("10000 characters"), "{shown}");
    }

    // ---- slugs ----

    #[test]
    fn slug_accepts_typical_slugs() {
        for s in [
            "a",
            "api",
            "my-project",
            "web2",
            "a1-b2-c3",
            &"a".repeat(63),
            "default",
        ] {
            assert_eq!(validate_slug("slug", s), Ok(()), "{s:?}");
        }
    }

    #[test]
    fn slug_rejects_adversarial_inputs_with_the_right_rule() {
        let too_long = "a".repeat(64);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &["must not be empty"]),
            ("../x", "charset", &["`..`", "traversal"]),
            ("..", "charset", &["traversal"]),
            ("a/b", "charset", &["`/`", "address"]),
            ("a b", "charset", &["a space", "position 2"]),
            ("a\tb", "charset", &["control character `\\t`"]),
            ("\u{0}", "charset", &["control character `\\0`"]),
            ("a\u{0}b", "charset", &["`a\\0b`"]),
            ("Api", "charset", &["uppercase", "lowercase", "`api`"]),
            ("MY-APP", "charset", &["`my-app`"]),
            ("my_app", "charset", &["`_`"]),
            ("my.app", "charset", &["dots"]),
            // Cyrillic `а` (U+0430) and `р` (U+0440) that look like Latin `a` and `p`.
            ("\u{430}pi", "charset", &["U+0430", "lookalike"]),
            ("a\u{440}i", "charset", &["U+0440"]),
            // Fullwidth Latin letters.
            ("\u{ff41}pi", "charset", &["non-ASCII"]),
            // Zero-width space hidden inside.
            ("a\u{200b}pi", "charset", &["U+200B"]),
            ("--upload-pack=x", "charset", &["`=`"]),
            ("-x", "leading_hyphen", &["option"]),
            ("1password", "leading_digit", &["starts with a digit"]),
            ("123", "leading_digit", &[]),
            ("app-", "trailing_hyphen", &[]),
            ("a--b", "double_hyphen", &["`--`"]),
            ("xn--80ak6aa92e", "double_hyphen", &["xn--"]),
            (&too_long, "too_long", &["64 characters", "63"]),
            ("new", "reserved", &["reserved"]),
            ("clank", "reserved", &[]),
            ("localhost", "reserved", &[]),
            ("undefined", "reserved", &[]),
            ("null", "reserved", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_slug("slug", input), rule, needles);
        }
    }

    #[test]
    fn slug_rejects_path_traversal() {
        let e = validate_slug("project.slug", "../../etc").unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), ("project.slug", "charset"));
        assert!(e.message.contains("path traversal"), "{}", e.message);
    }

    #[test]
    fn slug_errors_compose_with_within() {
        let e = validate_slug("slug", "A").unwrap_err().within("project");
        assert_eq!(e.field, "project.slug");
    }

    #[test]
    fn slug_errors_truncate_huge_values() {
        let e = validate_slug("slug", &"A".repeat(1_000_000)).unwrap_err();
        assert!(e.message.len() < 600, "{} bytes", e.message.len());
    }

    #[test]
    fn every_reserved_slug_is_otherwise_valid_and_refused() {
        for s in RESERVED_SLUGS {
            let e = validate_slug("s", s).unwrap_err();
            assert_eq!(e.rule, "reserved", "{s}");
        }
    }

    #[test]
    fn workspace_slugs_also_refuse_top_level_routes_that_other_slugs_may_use() {
        for s in RESERVED_WORKSPACE_SLUGS {
            assert_eq!(validate_slug("s", s), Ok(()), "{s} is fine for a service");
            assert_eq!(
                validate_workspace_slug("s", s).unwrap_err().rule,
                "reserved",
                "{s}"
            );
        }
        assert_eq!(
            validate_workspace_slug("ws", "new").unwrap_err().rule,
            "reserved"
        );
        assert_eq!(
            validate_workspace_slug("ws", "Acme").unwrap_err().rule,
            "charset"
        );
        assert_eq!(validate_workspace_slug("ws", "default"), Ok(()));
    }

    #[test]
    fn slugify_derives_valid_slugs_from_display_names() {
        let cases = [
            ("My Project", "my-project"),
            ("  Shop  API  ", "shop-api"),
            ("Café Münster", "cafe-munster"),
            ("Straße", "strasse"),
            ("İstanbul Cafe\u{301}", "istanbul-cafe"),
            ("hello_world.v2", "hello-world-v2"),
            ("a--b", "a-b"),
            ("../etc/passwd", "etc-passwd"),
            ("Ünïcödé & Co.", "unicode-co"),
            ("web 日本 app", "web-app"),
        ];
        for (name, slug) in cases {
            assert_eq!(slugify("slug", name).as_deref(), Ok(slug), "{name:?}");
            assert_eq!(validate_slug("slug", slug), Ok(()));
        }
    }

    #[test]
    fn slugify_cuts_long_names_to_a_valid_slug() {
        let name = "word ".repeat(40);
        let slug = slugify("slug", &name).unwrap();
        assert!(slug.len() <= SLUG_MAX_LEN, "{slug}");
        assert!(!slug.ends_with('-'), "{slug}");
        assert_eq!(validate_slug("slug", &slug), Ok(()));
    }

    #[test]
    fn slugify_refuses_names_that_give_no_valid_slug() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("日本語", "empty", &["no ASCII letters"]),
            ("!!!", "empty", &[]),
            ("", "empty", &[]),
            ("2048 Game", "leading_digit", &["`2048-game`", "explicitly"]),
            ("New", "reserved", &["`new`"]),
        ];
        for (name, rule, needles) in cases {
            assert_rule(name, slugify("project.slug", name), rule, needles);
        }
    }

    // ---- display names ----

    #[test]
    fn display_name_accepts_unicode_and_returns_it_trimmed() {
        assert_eq!(validate_display_name("name", "  My Shop  "), Ok("My Shop"));
        assert_eq!(
            validate_display_name("name", "Café ☕ 日本"),
            Ok("Café ☕ 日本")
        );
        let hundred = "é".repeat(100);
        assert_eq!(
            validate_display_name("name", &hundred),
            Ok(hundred.as_str())
        );
    }

    #[test]
    fn display_name_rejects_empty_control_bidi_and_long_names() {
        let long = "é".repeat(101);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("   ", "empty", &["only whitespace"]),
            ("a\u{0}b", "charset", &["control character"]),
            ("line\nbreak", "charset", &["`\\n`"]),
            (
                "shop\u{202E}gpj.exe",
                "charset",
                &["bidirectional", "U+202E"],
            ),
            (&long, "too_long", &["101 characters"]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_display_name("name", input), rule, needles);
        }
    }

    // ---- env vars ----

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

    // ---- ports ----

    #[test]
    fn port_accepts_1_to_65535_and_rejects_the_rest() {
        for (p, ok) in [
            (0, false),
            (1, true),
            (8080, true),
            (65_535, true),
            (65_536, false),
            (70_000, false),
            (u32::MAX, false),
        ] {
            match validate_port("port", p) {
                Ok(v) => assert!(ok && u32::from(v) == p, "{p}"),
                Err(e) => {
                    assert!(!ok, "{p}");
                    assert_eq!(e.rule, "range");
                    assert!(e.message.contains(&p.to_string()));
                }
            }
        }
    }

    // ---- domains ----

    #[test]
    fn domain_is_normalised_to_lowercase_without_trailing_dot() {
        let cases = [
            ("app.example.com", "app.example.com"),
            ("App.Example.COM", "app.example.com"),
            ("app.example.com.", "app.example.com"),
            ("*.preview.example.com", "*.preview.example.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("a-b.c0.io", "a-b.c0.io"),
            ("123.example.com", "123.example.com"),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate_domain("domain", input).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
        let label = "a".repeat(63);
        let long = [label.as_str(), &label, &label, &"a".repeat(61)].join(".");
        assert_eq!(long.len(), 253);
        assert_eq!(validate_domain("d", &long), Ok(long.clone()));
    }

    #[test]
    fn domain_rejects_schemes_ports_paths_ips_and_bad_labels() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long = format!("{}.com", ["a"; 127].join("."));
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("https://example.com", "scheme", &["`https://`"]),
            ("example.com/path", "path", &[]),
            ("example.com?q", "path", &[]),
            ("example.com:8443", "port", &[]),
            ("1.2.3.4", "ip_literal", &[]),
            ("1.2.3.4:80", "ip_literal", &[]),
            ("::1", "ip_literal", &[]),
            ("[::1]", "ip_literal", &[]),
            ("example.123", "ip_literal", &["all digits"]),
            ("localhost", "single_label", &[]),
            ("*.com", "single_label", &["wildcard"]),
            ("a..b.com", "empty_label", &[]),
            (".example.com", "empty_label", &[]),
            ("example.com..", "empty_label", &[]),
            ("-a.example.com", "leading_hyphen", &[]),
            ("a-.example.com", "trailing_hyphen", &[]),
            ("my_app.example.com", "charset", &["`_`"]),
            ("a b.com", "charset", &["a space"]),
            ("exаmple.com", "charset", &["U+0430", "xn--"]),
            ("a\u{0}.com", "charset", &["control"]),
            ("user@example.com", "charset", &["`@`"]),
            ("a.*.example.com", "wildcard", &[]),
            ("*.*.example.com", "wildcard", &[]),
            ("*", "wildcard", &[]),
            (&long_label, "too_long", &["64"]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_domain("domain", input), rule, needles);
        }
    }

    // ---- volumes ----

    #[test]
    fn mount_path_accepts_absolute_paths_and_normalises_them() {
        let cases = [
            ("/data", "/data"),
            ("/var/lib/postgresql/data", "/var/lib/postgresql/data"),
            ("/data/", "/data"),
            ("//data//x/./y", "/data/x/y"),
            ("/process", "/process"),
            ("/devices", "/devices"),
            ("/etc/hosts.d", "/etc/hosts.d"),
            ("/my dir", "/my dir"),
        ];
        for (input, want) in cases {
            assert_eq!(
                validate_mount_path("m", input).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn mount_path_rejects_traversal_root_system_dirs_and_bad_characters() {
        let long = format!("/{}", "a".repeat(4096));
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("data", "not_absolute", &[]),
            ("../x", "not_absolute", &[]),
            ("/data/../etc", "traversal", &["`..`"]),
            ("/..", "traversal", &[]),
            ("/", "root", &[]),
            ("//", "root", &[]),
            ("/.", "root", &[]),
            ("/proc", "reserved", &["`/proc`"]),
            ("/proc/self", "reserved", &[]),
            ("/sys/fs/cgroup", "reserved", &["`/sys`"]),
            ("/dev", "reserved", &[]),
            ("//dev/", "reserved", &[]),
            ("/etc/hosts", "reserved", &[]),
            ("/etc/resolv.conf", "reserved", &[]),
            ("/data\u{0}", "charset", &["control character `\\0`"]),
            ("/data\n", "charset", &[]),
            ("/data:ro", "charset", &["`:`"]),
            (&long, "too_long", &["4097"]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(
                input,
                validate_mount_path("mount_path", input),
                rule,
                needles,
            );
        }
    }

    #[test]
    fn volume_name_follows_dockers_pattern() {
        for n in [
            "clank-shop-postgres-data",
            "ab",
            "A1",
            "a_b.c-d",
            &"v".repeat(128),
        ] {
            assert_eq!(validate_volume_name("v", n), Ok(()), "{n:?}");
        }
        let long = "v".repeat(129);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("a", "too_short", &[]),
            ("-v", "leading_hyphen", &[]),
            (".hidden", "format", &[]),
            ("_x", "format", &[]),
            ("../x", "charset", &[]),
            ("a/b", "charset", &["host path"]),
            ("a b", "charset", &[]),
            ("vol\u{0}", "charset", &[]),
            ("vоl", "charset", &["non-ASCII"]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_volume_name("volume", input), rule, needles);
        }
    }

    #[test]
    fn image_ref_errors_carry_the_callers_field() {
        let e = validate_image_ref("service.image", "Nginx").unwrap_err();
        assert_eq!(e.field, "service.image");
        assert_eq!(
            validate_image_ref("i", "nginx:1.25").unwrap().tag(),
            Some("1.25")
        );
    }

    // ---- git ----

    #[test]
    fn git_url_accepts_the_supported_forms() {
        for u in [
            "https://github.com/acme/shop.git",
            "http://git.internal:8080/acme/shop",
            "ssh://git@github.com/acme/shop.git",
            "ssh://git@gitlab.example.com:2222/acme/shop.git",
            "git://example.com/repo.git",
            "file:///srv/git/shop.git",
            "file://localhost/srv/git/shop.git",
            "git@github.com:acme/shop.git",
            "github.com:acme/shop.git",
            "ssh://git@[::1]:22/repo.git",
            "https://user@example.com/repo.git",
        ] {
            assert_eq!(validate_git_url("git_url", u), Ok(()), "{u:?}");
        }
    }

    #[test]
    fn git_url_rejects_option_injection_and_remote_helpers() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            (
                "--upload-pack=touch /tmp/pwned",
                "leading_hyphen",
                &["option"],
            ),
            ("-oProxyCommand=x", "leading_hyphen", &[]),
            (
                "ssh://-oProxyCommand=touch%20x/repo",
                "leading_hyphen",
                &["ssh"],
            ),
            ("ssh://-x@host/repo", "leading_hyphen", &["user"]),
            ("-x@host:repo", "leading_hyphen", &[]),
            ("git@-oProxyCommand=x:repo", "leading_hyphen", &[]),
            ("ext::sh -c evil", "remote_helper", &["ext::"]),
            ("ext::sh", "remote_helper", &[]),
            ("fd::17", "remote_helper", &[]),
            ("https::example.com/repo", "remote_helper", &[]),
            ("a:b::c", "remote_helper", &[]),
            ("https://example.com/a b", "charset", &[]),
            ("https://example.com/repo\n", "charset", &["control"]),
            ("https://exаmple.com/repo", "charset", &["non-ASCII"]),
            ("ftp://example.com/repo.git", "scheme", &["`ftp`"]),
            ("HTTPS://example.com/repo.git", "scheme", &[]),
            ("javascript://alert(1)", "scheme", &[]),
            ("/srv/git/repo", "scheme", &["file://"]),
            ("./repo", "scheme", &[]),
            ("repo", "scheme", &[]),
            ("https:///acme/repo", "empty_host", &[]),
            (":acme/repo", "empty_host", &[]),
            ("https://example.com", "format", &["no repository"]),
            ("https://example.com/", "format", &[]),
            ("git@github.com:", "format", &[]),
            ("https://example.com:0/repo", "port", &[]),
            ("https://example.com:99999/repo", "port", &[]),
            ("https://example.com:x/repo", "port", &[]),
            (
                "https://user:token@github.com/a/b.git",
                "credentials",
                &["secret"],
            ),
            ("https://exa$mple.com/repo", "charset", &["`$`"]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_git_url("git_url", input), rule, needles);
        }
    }

    #[test]
    fn git_ref_accepts_ordinary_branch_and_tag_names() {
        for r in [
            "main",
            "feature/login",
            "release-1.2",
            "v1.2.3",
            "refs/heads/main",
            "fix_bug#12",
            "ünïcode",
            "a@b",
        ] {
            assert_eq!(validate_git_ref("branch", r), Ok(()), "{r:?}");
        }
    }

    #[test]
    fn git_ref_rejects_option_injection() {
        let e = validate_git_ref("branch", "--upload-pack=touch /tmp/x").unwrap_err();
        assert_eq!(e.rule, "leading_hyphen");
        assert!(e.message.contains("option"), "{}", e.message);
        assert_eq!(
            validate_git_ref("branch", "-b").unwrap_err().rule,
            "leading_hyphen"
        );
    }

    #[test]
    fn git_ref_follows_check_ref_format_rules() {
        let long = "a".repeat(256);
        let cases: &[(&str, &str, &[&str])] = &[
            ("", "empty", &[]),
            ("a..b", "format", &["`..`"]),
            ("../x", "format", &[]),
            ("a b", "charset", &["a space"]),
            ("a\u{0}", "charset", &["control"]),
            ("a\u{7f}", "charset", &[]),
            ("a~1", "charset", &[]),
            ("a^", "charset", &[]),
            ("a:b", "charset", &[]),
            ("a?", "charset", &[]),
            ("a*", "charset", &[]),
            ("a[b", "charset", &[]),
            ("a\\b", "charset", &[]),
            ("ext::sh -c evil", "charset", &[]),
            ("a@{1}", "format", &["`@{`"]),
            ("@", "reserved", &[]),
            ("/main", "format", &[]),
            ("main/", "format", &[]),
            ("a//b", "format", &[]),
            ("main.", "format", &[]),
            (".hidden", "format", &[]),
            ("a/.b", "format", &[]),
            ("main.lock", "format", &["`.lock`"]),
            ("a.lock/b", "format", &[]),
            (&long, "too_long", &[]),
        ];
        for (input, rule, needles) in cases {
            assert_rule(input, validate_git_ref("branch", input), rule, needles);
        }
    }

    #[test]
    fn commit_sha_accepts_sha1_prefixes_and_sha256_and_lowercases() {
        let sha256 = "a".repeat(64);
        for (input, want) in [
            ("abc1234", "abc1234"),
            ("ABC1234", "abc1234"),
            (
                "0123456789abcdef0123456789abcdef01234567",
                "0123456789abcdef0123456789abcdef01234567",
            ),
            (sha256.as_str(), sha256.as_str()),
        ] {
            assert_eq!(
                validate_commit_sha("sha", input).as_deref(),
                Ok(want),
                "{input:?}"
            );
        }
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("abc123", "too_short"),
            (&"a".repeat(41), "format"),
            (&"a".repeat(63), "format"),
            (&"a".repeat(65), "too_long"),
            ("abc123g", "charset"),
            ("--upload", "charset"),
            ("HEAD~1x", "charset"),
        ];
        for (input, rule) in cases {
            assert_rule(input, validate_commit_sha("sha", input), rule, &[]);
        }
    }

    // ---- limits ----

    #[test]
    fn cpu_limit_must_be_finite_positive_and_at_most_256() {
        for ok in [0.5, 0.01, 1.0, 2.0, 256.0] {
            assert_eq!(validate_cpu_limit("cpu", ok), Ok(ok));
        }
        for bad in [
            0.0,
            -0.0,
            -1.0,
            256.5,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let e = validate_cpu_limit("cpu", bad).unwrap_err();
            assert_eq!(e.rule, "range", "{bad}");
        }
    }

    #[test]
    fn integer_limits_accept_their_bounds_and_reject_just_outside() {
        type Check = fn(&str, u32) -> Result<u32, InvalidInput>;
        let checks: &[(&str, Check, u32, u32)] = &[
            ("replicas", validate_replicas, 0, 100),
            ("interval", validate_health_check_interval_s, 1, 3600),
            ("retries", validate_health_check_retries, 1, 100),
            ("build", validate_build_timeout_s, 10, 86_400),
            ("deploy", validate_deploy_timeout_s, 5, 86_400),
        ];
        for &(name, check, lo, hi) in checks {
            assert_eq!(check(name, lo), Ok(lo), "{name} low bound");
            assert_eq!(check(name, hi), Ok(hi), "{name} high bound");
            assert_eq!(
                check(name, hi + 1).unwrap_err().rule,
                "range",
                "{name} above"
            );
            if lo > 0 {
                let e = check(name, lo - 1).unwrap_err();
                assert_eq!(e.rule, "range", "{name} below");
                assert!(e.message.contains(&lo.to_string()), "{}", e.message);
            }
        }
        assert_eq!(validate_memory_limit_mb("mem", 512), Ok(512));
        assert_eq!(validate_memory_limit_mb("mem", 6), Ok(6));
        assert_eq!(validate_memory_limit_mb("mem", 1_048_576), Ok(1_048_576));
        assert_rule("5", validate_memory_limit_mb("mem", 5), "range", &["6 MB"]);
        assert_rule("0", validate_memory_limit_mb("mem", 0), "range", &[]);
        assert_rule(
            "max",
            validate_memory_limit_mb("mem", 1_048_577),
            "range",
            &[],
        );
    }

    #[test]
    fn health_check_path_may_be_empty_or_an_absolute_printable_path() {
        for ok in ["", "/", "/health", "/api/v1/health?full=1", "/%E2%9C%93"] {
            assert_eq!(validate_health_check_path("hc", ok), Ok(()), "{ok:?}");
        }
        let long = format!("/{}", "a".repeat(1024));
        let cases: &[(&str, &str)] = &[
            ("health", "format"),
            ("http://x/health", "format"),
            ("/a b", "charset"),
            ("/a\tb", "charset"),
            ("/a\u{0}", "charset"),
            ("/✓", "charset"),
            (&long, "too_long"),
        ];
        for (input, rule) in cases {
            assert_rule(input, validate_health_check_path("hc", input), rule, &[]);
        }
    }

    #[test]
    fn repository_policy_refuses_local_paths_and_private_hosts_unless_allowed() {
        let strict = RepositoryPolicy::default();
        for (url, rule) in [
            ("file:///srv/git/shop.git", "local_repository"),
            ("http://127.0.0.1:3000/acme/shop.git", "private_host"),
            ("https://localhost/acme/shop.git", "private_host"),
            ("https://git.localhost/acme/shop.git", "private_host"),
            ("http://10.1.2.3/acme/shop.git", "private_host"),
            ("https://192.168.1.10/a/b.git", "private_host"),
            ("https://172.20.0.1/a/b.git", "private_host"),
            ("http://169.254.169.254/latest/meta-data", "private_host"),
            ("https://100.100.1.1/a/b.git", "private_host"),
            ("https://[::1]/a/b.git", "private_host"),
            ("https://[fd00::1]/a/b.git", "private_host"),
            ("https://[::ffff:127.0.0.1]/a/b.git", "private_host"),
            ("ssh://git@0.0.0.0/a/b.git", "private_host"),
            ("git@127.0.0.1:acme/shop.git", "private_host"),
            ("http://127.1/x.git", "private_host"),
            ("http://2130706433/x.git", "private_host"),
            ("http://0x7f000001/x.git", "private_host"),
        ] {
            validate_git_url("source.repo_url", url).unwrap();
            let e = strict.check("source.repo_url", url).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.rule),
                ("source.repo_url", rule),
                "{url}"
            );
            assert!(e.message.contains("CLANK_ALLOW_LOCAL_REPOSITORIES"), "{e}");
        }
        for url in [
            "https://github.com/acme/shop.git",
            "git@github.com:acme/shop.git",
            "https://8.8.8.8/a/b.git",
            "https://[2001:db8::1]/a/b.git",
            "https://123.example.com/a/b.git",
        ] {
            strict.check("source.repo_url", url).unwrap();
        }
        let open = RepositoryPolicy {
            allow_local: true,
            ..RepositoryPolicy::default()
        };
        open.check("source.repo_url", "file:///srv/git/shop.git")
            .unwrap();
        open.check("source.repo_url", "http://127.0.0.1:3000/a.git")
            .unwrap();
    }

    #[test]
    fn repository_policy_allowed_schemes_and_hosts_name_the_rule() {
        let policy = RepositoryPolicy {
            allow_local: false,
            allowed_schemes: vec!["https".into(), "scp".into()],
            allowed_hosts: vec!["github.com".into(), "*.example.com".into()],
        };
        for url in [
            "https://github.com/acme/shop.git",
            "https://GitHub.com./acme/shop.git",
            "https://git.example.com:8443/acme/shop.git",
            "git@github.com:acme/shop.git",
        ] {
            policy.check("source.repo_url", url).unwrap();
        }
        for (url, rule) in [
            ("ssh://git@github.com/acme/shop.git", "scheme_not_allowed"),
            ("http://github.com/acme/shop.git", "scheme_not_allowed"),
            ("file:///srv/git/shop.git", "scheme_not_allowed"),
            ("https://gitlab.com/acme/shop.git", "host_not_allowed"),
            ("https://example.com/acme/shop.git", "host_not_allowed"),
            ("https://evilexample.com/acme/shop.git", "host_not_allowed"),
            ("git@github.com.evil.net:acme/shop.git", "host_not_allowed"),
        ] {
            let e = policy.check("source.repo_url", url).unwrap_err();
            assert_eq!(e.rule, rule, "{url}");
            assert!(e.message.contains("CLANK_BUILD_REPOSITORY_"), "{e}");
        }
        policy.validate("builder.repositories").unwrap();
        for (bad, field) in [
            (
                RepositoryPolicy {
                    allowed_schemes: vec!["ftp".into()],
                    ..RepositoryPolicy::default()
                },
                "builder.repositories.allowed_schemes",
            ),
            (
                RepositoryPolicy {
                    allowed_hosts: vec!["https://github.com".into()],
                    ..RepositoryPolicy::default()
                },
                "builder.repositories.allowed_hosts",
            ),
        ] {
            assert_eq!(
                bad.validate("builder.repositories").unwrap_err().field,
                field
            );
        }
        // Allowed schemes do not lift the local rule.
        let https_only = RepositoryPolicy {
            allowed_schemes: vec!["https".into()],
            ..RepositoryPolicy::default()
        };
        let e = https_only
            .check("source.repo_url", "https://127.0.0.1/a.git")
            .unwrap_err();
        assert_eq!(e.rule, "private_host");
    }
}
