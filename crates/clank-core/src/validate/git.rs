//! Git sources: repository URLs (no option injection, no remote helpers), ref names
//! (`git check-ref-format` rules) and commit ids.

use crate::error::InvalidInput;

use super::{describe_char, first_disallowed, show};

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
pub(super) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::assert_rule;

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
}
