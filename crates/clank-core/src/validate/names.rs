//! Names people give things: slugs (DNS labels that become host names and runtime name
//! prefixes), the slug derived from a display name, and display names themselves.

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, is_bidi_control, show};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

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
}
