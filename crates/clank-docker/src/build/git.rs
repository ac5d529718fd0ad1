//! Checking out a repository with the real `git`, safely: argument vectors only, `--` before
//! every user-supplied positional argument, no remote helpers (`ext::`), no prompts, no user or
//! system git config, shallow, submodules never initialised, and credentials passed through
//! the child's environment (`GIT_CONFIG_*`), so they never appear in argv or in a log line.
//!
//! Every child is spawned with `kill_on_drop`, so dropping the build (timeout, cancel) kills git.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use clank_core::model::COMMIT_SUBJECT_MAX;
use clank_core::secret::SecretString;
use clank_core::validate;
use clank_core::{Error, Result, RuntimeFailure};
use tokio::process::Command;

/// What to check out.
#[derive(Debug, Clone)]
pub(crate) struct GitSource<'a> {
    pub(crate) url: &'a str,
    pub(crate) git_ref: &'a str,
    pub(crate) commit: Option<&'a str>,
    pub(crate) credentials: Option<&'a SecretString>,
    /// Whether `file://` URLs (repositories on the build server's own disk) may be cloned.
    pub(crate) allow_local: bool,
}

/// Protocols git may use at all (`GIT_ALLOW_PROTOCOL`): `ext` and other helpers are out,
/// and `file` only when local repositories are allowed.
const REMOTE_PROTOCOLS: &str = "https:http:ssh:git";

/// Refuse anything git could read as an option or a remote helper, before running it.
pub(crate) fn check_source(src: &GitSource<'_>) -> Result<Option<String>> {
    validate::validate_git_url("source.repo_url", src.url)?;
    validate::validate_git_ref("source.branch", src.git_ref)?;
    // Belt and braces: validation refuses these already, and `--` guards positionals anyway.
    if src.url.starts_with('-') || src.git_ref.starts_with('-') {
        return Err(clank_core::InvalidInput::new(
            "source",
            "leading_hyphen",
            "a repository URL or ref must not start with `-`",
        )
        .into());
    }
    if !src.allow_local && src.url.starts_with("file:") {
        return Err(clank_core::InvalidInput::new(
            "source.repo_url",
            "local_repository",
            format!(
                "`{}` is a repository on the build server's own disk, and this server does not \
                 build local repositories (DockerImageBuilder::allow_local_repositories)",
                src.url
            ),
        )
        .into());
    }
    src.commit
        .map(|c| validate::validate_commit_sha("commit", c))
        .transpose()
        .map_err(Into::into)
}

/// Clone `src` into `dest` (which must not exist) and return the full commit id checked out
/// ([`subject`] reads its message's subject).
pub(crate) async fn checkout(
    src: &GitSource<'_>,
    dest: &Path,
    log: &mut (dyn FnMut(String) + Send),
) -> Result<String> {
    let commit = check_source(src)?;
    let env = git_env(src);
    let redact = |text: &str| redact(text, src.credentials);
    let dest_os = dest.as_os_str().to_owned();

    log(format!(
        "git clone --depth 1 --single-branch --branch={} {}",
        src.git_ref, src.url
    ));
    let clone = git_args(&[
        "clone",
        "--quiet",
        "--depth=1",
        "--single-branch",
        "--no-tags",
        "--no-recurse-submodules",
        &format!("--branch={}", src.git_ref),
        "--",
        src.url,
    ])
    .into_iter()
    .chain([dest_os])
    .collect::<Vec<_>>();
    if let Err(stderr) = run(&clone, None, &env).await {
        let stderr = redact(&stderr);
        return Err(clone_error(src, &stderr));
    }

    if let Some(commit) = commit {
        let head = rev_parse(dest, &env, "HEAD").await?;
        if !head.starts_with(&commit) {
            log(format!("fetching pinned commit {commit}"));
            let by_id = commit.len() == 40 || commit.len() == 64;
            let mut fetched = false;
            if by_id {
                let args = git_args(&[
                    "fetch",
                    "--quiet",
                    "--depth=1",
                    "--no-tags",
                    "origin",
                    "--",
                    &commit,
                ]);
                fetched = run(&args, Some(dest), &env).await.is_ok();
            }
            if !fetched {
                // Abbreviated ids (or servers refusing a fetch by id): fetch the branch's history.
                let refspec = format!("+refs/heads/{0}:refs/remotes/origin/{0}", src.git_ref);
                let args = git_args(&[
                    "fetch",
                    "--quiet",
                    "--unshallow",
                    "--no-tags",
                    "origin",
                    "--",
                    &refspec,
                ]);
                if let Err(stderr) = run(&args, Some(dest), &env).await {
                    return Err(git_error(format!(
                        "could not fetch commit {commit} from {}: {}",
                        src.url,
                        last_lines(&redact(&stderr))
                    )));
                }
            }
            let target = format!("{commit}^{{commit}}");
            let resolved = rev_parse(dest, &env, &target).await.map_err(|_| {
                git_error(format!(
                    "commit {commit} is not in {} (branch `{}`)",
                    src.url, src.git_ref
                ))
            })?;
            let args = git_args(&["checkout", "--quiet", "--detach", &resolved, "--"]);
            if let Err(stderr) = run(&args, Some(dest), &env).await {
                return Err(git_error(format!(
                    "could not check out {commit}: {}",
                    last_lines(&redact(&stderr))
                )));
            }
        }
    }
    rev_parse(dest, &env, "HEAD").await
}

/// The subject of the commit checked out in `dir`, cleaned
/// ([`commit_subject`](clank_core::model::commit_subject)); `None` when git cannot say (the
/// build goes on without it). Git truncates it, so a huge message is never read whole.
pub(crate) async fn subject(dir: &Path) -> Option<String> {
    let format = format!("--format=%<({},trunc)%s", COMMIT_SUBJECT_MAX + 2);
    let args = git_args(&["log", "-1", "--no-show-signature", &format, "HEAD", "--"]);
    let env = [
        ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ("GIT_CONFIG_GLOBAL".to_owned(), "/dev/null".to_owned()),
    ];
    let out = run(&args, Some(dir), &env).await.ok()?;
    clank_core::model::commit_subject(&out)
}

/// `git -c protocol.ext.allow=never <args>`, as OS strings. Redirects are not followed: the
/// URL checked when the service was created is the only host a build talks to.
fn git_args(args: &[&str]) -> Vec<OsString> {
    [
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "http.followRedirects=false",
    ]
    .iter()
    .chain(args)
    .map(OsString::from)
    .collect()
}

/// The child's environment: no prompts, no user/system config, only plain protocols, and the
/// credentials (if any) as an `http.<origin>/.extraHeader` scoped to the repository's origin.
fn git_env(src: &GitSource<'_>) -> Vec<(String, String)> {
    let mut env = vec![
        ("GIT_TERMINAL_PROMPT".to_owned(), "0".to_owned()),
        ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ("GIT_CONFIG_GLOBAL".to_owned(), "/dev/null".to_owned()),
        (
            "GIT_ALLOW_PROTOCOL".to_owned(),
            if src.allow_local {
                format!("{REMOTE_PROTOCOLS}:file")
            } else {
                REMOTE_PROTOCOLS.to_owned()
            },
        ),
        ("GIT_PROTOCOL_FROM_USER".to_owned(), "0".to_owned()),
        // ssh must never ask either (a host key prompt would hang until the timeout).
        (
            "GIT_SSH_COMMAND".to_owned(),
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new".to_owned(),
        ),
    ];
    if let (Some(token), Some(origin)) = (src.credentials, http_origin(src.url)) {
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("x-access-token:{}", token.expose()));
        env.push(("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()));
        env.push((
            "GIT_CONFIG_KEY_0".to_owned(),
            format!("http.{origin}/.extraHeader"),
        ));
        env.push((
            "GIT_CONFIG_VALUE_0".to_owned(),
            format!("Authorization: Basic {basic}"),
        ));
    }
    env
}

/// `https://host[:port]` of an http(s) URL: where credentials may be sent.
fn http_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(format!("{scheme}://{host}"))
}

fn redact(text: &str, credentials: Option<&SecretString>) -> String {
    match credentials.map(SecretString::expose) {
        Some(token) if !token.is_empty() => text.replace(token, "********"),
        _ => text.to_owned(),
    }
}

async fn rev_parse(dir: &Path, env: &[(String, String)], what: &str) -> Result<String> {
    let args = git_args(&["rev-parse", "--verify", "--end-of-options", what]);
    let out = run(&args, Some(dir), env)
        .await
        .map_err(|stderr| git_error(format!("git rev-parse {what}: {}", last_lines(&stderr))))?;
    let sha = out.trim().to_owned();
    if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(git_error(format!(
            "git rev-parse {what} answered `{}`, not a commit id",
            sha.escape_debug()
        )));
    }
    Ok(sha)
}

/// Run git with `args`; stdout on success, stderr on failure.
async fn run(
    args: &[OsString],
    cwd: Option<&Path>,
    env: &[(String, String)],
) -> std::result::Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Whatever the host has set for git (GIT_DIR, GIT_CONFIG_*, ...) must not apply here.
    for (key, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if key.starts_with("GIT_") {
            cmd.env_remove(&key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| format!("could not run git (is it installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Err(if stderr.trim().is_empty() {
            format!("git exited with {}", out.status)
        } else {
            stderr
        })
    }
}

fn clone_error(src: &GitSource<'_>, stderr: &str) -> Error {
    let detail = last_lines(stderr);
    let what = if stderr.contains("Remote branch") && stderr.contains("not found") {
        format!("branch `{}` does not exist in {}", src.git_ref, src.url)
    } else if stderr.contains("could not run git") {
        detail.clone()
    } else {
        format!(
            "could not clone {} (branch `{}`): {detail}",
            src.url, src.git_ref
        )
    };
    git_error(if what.contains(&detail) {
        what
    } else {
        format!("{what} ({detail})")
    })
}

fn git_error(message: String) -> Error {
    Error::runtime(RuntimeFailure::Other, message)
}

/// What git said went wrong: its `fatal:`/`error:` lines, else the last few lines, joined.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("fatal:") || l.starts_with("error:"))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    let start = lines.len().saturating_sub(3);
    lines[start..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(url: &'a str, git_ref: &'a str) -> GitSource<'a> {
        GitSource {
            url,
            git_ref,
            commit: None,
            credentials: None,
            allow_local: true,
        }
    }

    #[test]
    fn refs_and_urls_that_look_like_options_are_refused() {
        for (url, r) in [
            ("file:///tmp/repo", "--upload-pack=touch /tmp/x"),
            ("file:///tmp/repo", "-b"),
            ("--upload-pack=touch /tmp/x", "main"),
            ("ext::sh -c touch% /tmp/x", "main"),
        ] {
            assert!(check_source(&src(url, r)).is_err(), "{url} {r}");
        }
        assert!(check_source(&src("file:///tmp/repo", "main")).is_ok());
        let local = GitSource {
            allow_local: false,
            ..src("file:///srv/other-tenant/repo", "main")
        };
        let err = check_source(&local).unwrap_err().to_string();
        assert!(err.contains("build server's own disk"), "{err}");
        assert!(
            git_env(&local)
                .iter()
                .any(|(k, v)| k == "GIT_ALLOW_PROTOCOL" && !v.contains("file"))
        );
    }

    #[test]
    fn credentials_go_in_a_scoped_header_never_in_args() {
        let token = SecretString::new("s3cret-token");
        let s = GitSource {
            credentials: Some(&token),
            ..src("https://git.example.com:8443/acme/shop.git", "main")
        };
        let env = git_env(&s);
        let key = env.iter().find(|(k, _)| k == "GIT_CONFIG_KEY_0").unwrap();
        assert_eq!(key.1, "http.https://git.example.com:8443/.extraHeader");
        let value = &env
            .iter()
            .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
            .unwrap()
            .1;
        assert!(value.starts_with("Authorization: Basic "));
        assert!(!value.contains("s3cret-token"), "encoded, not in clear");
        assert!(
            git_args(&["clone", "--", s.url])
                .iter()
                .all(|a| !a.to_string_lossy().contains("s3cret"))
        );
        assert_eq!(
            redact("fatal: s3cret-token bad", s.credentials),
            "fatal: ******** bad"
        );
        // No header for non-http transports.
        assert!(http_origin("ssh://git@example.com/acme/shop.git").is_none());
    }

    #[test]
    fn last_lines_keeps_the_end_of_stderr() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n"), "b; c; d");
        assert_eq!(
            last_lines("fatal: 'x' is not a repo\nfatal: Could not read\n\nPlease check\n"),
            "fatal: 'x' is not a repo; fatal: Could not read"
        );
    }
}
