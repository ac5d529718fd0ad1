//! Which repositories an operator lets services build from ([`RepositoryPolicy`]).

use std::net::IpAddr;

use crate::error::InvalidInput;

use super::git::{GIT_URL_SCHEMES, split_host_port};
use super::show;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate_git_url;

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
