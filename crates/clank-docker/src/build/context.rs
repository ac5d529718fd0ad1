//! The build context: the directory to build, the Dockerfile to use (the repository's, or one
//! generated for the detected framework), and the tar sent to the Docker build API.
//!
//! Nothing outside the checkout reaches the tar: paths are resolved and checked against the
//! checkout, symlinks are stored as links (never followed) and a symlink whose target leaves
//! the build context fails the build naming it. `.git` is never sent; `.dockerignore` is
//! honoured for the common patterns (`name`, `dir/`, `*.log`, `**/tmp`, `!keep`). Every entry
//! has a fixed mtime and owner, so an unchanged checkout gives a byte-identical context and
//! the build cache applies.
//!
//! A generated Dockerfile's context holds only what the image needs (`Leave`): a static
//! site's published files under `.clank.site/` (no dotfiles, documentation or build files),
//! an app's files without `.env` or version-control data. Clank's own files travel as
//! `.clank.*` with a generated `.dockerignore` naming the Dockerfile and itself, which the
//! engine drops from the context once read, so `COPY . .` never copies them.

use std::path::{Component, Path, PathBuf};

use super::detect::{self, App};
use super::dockerfile;

/// Where the Dockerfile used is placed in the tar (the `dockerfile` build option).
pub const DOCKERFILE_IN_CONTEXT: &str = ".clank.Dockerfile";

/// Largest build context accepted (it is held in memory while uploaded).
pub const MAX_CONTEXT_BYTES: u64 = 1 << 30;

/// What the build needs from the checkout.
#[derive(Debug)]
pub struct Prepared {
    pub tar: Vec<u8>,
    pub dockerfile: String,
    /// Set when the Dockerfile was generated.
    pub app: Option<App>,
    pub procfile: Option<String>,
    /// Things worth a line in the build log (skipped submodules, ignored files).
    pub notes: Vec<String>,
}

/// Prepare the context of `checkout`: `build_context` and `dockerfile_path` are relative to
/// the repository root. `Err` is a reason a user can act on.
pub fn prepare(
    checkout: &Path,
    build_context: Option<&str>,
    dockerfile_path: Option<&str>,
    port: u16,
) -> Result<Prepared, String> {
    prepare_with(
        checkout,
        build_context,
        dockerfile_path,
        port,
        &dockerfile::Options::default(),
    )
}

/// [`prepare`], generating Dockerfiles as `options` say.
pub fn prepare_with(
    checkout: &Path,
    build_context: Option<&str>,
    dockerfile_path: Option<&str>,
    port: u16,
    options: &dockerfile::Options,
) -> Result<Prepared, String> {
    let root = checkout
        .canonicalize()
        .map_err(|e| format!("the checkout is unreadable: {e}"))?;
    let context = match build_context {
        Some(rel) => inside(&root, rel, "build_context")?,
        None => root.clone(),
    };
    if !context.is_dir() {
        return Err(format!(
            "build_context `{}` is not a directory in the repository",
            build_context.unwrap_or(".")
        ));
    }
    let mut notes = Vec::new();
    let (dockerfile, app) = match dockerfile_path {
        Some(rel) => {
            let path = inside(&root, rel, "dockerfile_path")?;
            let text = read_limited(&path, DOCKERFILE_MAX)
                .map_err(|e| format!("dockerfile_path `{rel}` cannot be read: {e}"))?;
            (text, None)
        }
        None if context.join("Dockerfile").is_file() => {
            let path = inside(&context, "Dockerfile", "Dockerfile")?;
            let text = read_limited(&path, DOCKERFILE_MAX)
                .map_err(|e| format!("the Dockerfile cannot be read: {e}"))?;
            (text, None)
        }
        None => {
            // A site kept in its publish directory (`public/index.html`) is a static site too.
            let app = detect::detect(&context).or_else(|nothing| match &options.publish_dir {
                Some(dir) if context.join(dir).join("index.html").is_file() => Ok(App::Static),
                Some(dir) => Err(format!(
                    "{nothing}; publish_dir `{dir}` has no index.html either"
                )),
                None => Err(nothing),
            })?;
            notes.push(format!(
                "no Dockerfile: detected a {} app, using a generated Dockerfile",
                app.framework()
            ));
            (dockerfile::render_with(&app, port, options), Some(app))
        }
    };
    let serves_static = matches!(app, Some(App::Static | App::Spa(_)));
    if !serves_static && (options.publish_dir.is_some() || options.spa_fallback.is_some()) {
        notes.push(
            "publish_dir and spa_fallback apply to generated static-site images only; this \
             build ignores them"
                .to_owned(),
        );
    }
    let procfile = read_repo_file(&context.join("Procfile"), SMALL_FILE_MAX)?;
    if root.join(".gitmodules").is_file() {
        notes.push(
            "the repository lists submodules (.gitmodules); they are not checked out".to_owned(),
        );
    }
    let ignore = Ignore::parse(
        &read_repo_file(&context.join(".dockerignore"), SMALL_FILE_MAX)?.unwrap_or_default(),
    );
    let mut generated: Vec<(String, Vec<u8>)> = vec![
        (
            DOCKERFILE_IN_CONTEXT.to_owned(),
            dockerfile.clone().into_bytes(),
        ),
        // The engine reads the Dockerfile and then drops both files from the context, so no
        // `COPY . .` puts Clank's files (or the repository's .dockerignore) in the image. The
        // repository's own rules were applied when the archive was made.
        (
            ".dockerignore".to_owned(),
            format!("{DOCKERFILE_IN_CONTEXT}\n.dockerignore\n").into_bytes(),
        ),
    ];
    let mut walk = Walk {
        from: PathBuf::new(),
        into: PathBuf::new(),
        leave: Leave::Nothing,
    };
    if let Some(app) = &app {
        generated.extend(
            dockerfile::support_files(app, options)
                .into_iter()
                .map(|(name, text)| (name.to_owned(), text.into_bytes())),
        );
        walk.leave = Leave::for_app(app);
        if matches!(app, App::Static) {
            walk.into = PathBuf::from(dockerfile::SITE_IN_CONTEXT);
            if let Some(dir) = &options.publish_dir {
                let resolved = inside(&context, dir, "publish_dir")?;
                if !resolved.is_dir() {
                    return Err(format!(
                        "publish_dir `{dir}` is not a directory in the build context"
                    ));
                }
                walk.from = resolved
                    .strip_prefix(&context)
                    .map_err(|_| format!("publish_dir `{dir}` is outside the build context"))?
                    .to_path_buf();
                walk.leave = Leave::Dotfiles;
            }
        }
    }
    let tar = tar_context(&context, &generated, &walk, &ignore, &mut notes)?;
    Ok(Prepared {
        tar,
        dockerfile,
        app,
        procfile,
        notes,
    })
}

/// Which part of the context the archive holds, and where.
struct Walk {
    /// The directory walked, relative to the context.
    from: PathBuf,
    /// Where its files go in the archive.
    into: PathBuf,
    leave: Leave,
}

/// What the archive leaves out of the repository, besides `.git` at the root, Clank's own
/// file names and what `.dockerignore` excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leave {
    /// The repository's own Dockerfile decides what it copies.
    Nothing,
    /// Generated app images: version-control data and `.env` files.
    Secrets,
    /// A single-page app's build stage: version-control data (its `.env` files configure the
    /// front-end build, and only the built site reaches the image).
    Vcs,
    /// A static site served from the context: everything but the site (dotfiles other than
    /// `.well-known`, documentation, build files).
    Unpublished,
    /// A static site's configured publish directory: dotfiles (other than `.well-known`).
    Dotfiles,
}

impl Leave {
    fn for_app(app: &App) -> Leave {
        match app {
            App::Static => Leave::Unpublished,
            App::Spa(_) => Leave::Vcs,
            App::Node(_) | App::Python(_) | App::Go(_) => Leave::Secrets,
        }
    }

    /// Whether `rel` (relative to the walked directory) is left out. `depth` 0 is its top.
    fn excludes(self, name: &str, depth: usize) -> bool {
        let vcs = matches!(name, ".git" | ".hg" | ".svn" | ".bzr");
        let env = name == ".env" || name.starts_with(".env.");
        let dotfile = name.starts_with('.') && name != ".well-known";
        match self {
            Leave::Nothing => false,
            Leave::Vcs => vcs,
            Leave::Secrets => vcs || env,
            Leave::Dotfiles => dotfile,
            Leave::Unpublished => dotfile || is_doc(name) || (depth == 0 && is_build_file(name)),
        }
    }
}

/// README, LICENSE and other documentation a site does not serve (any Markdown file).
fn is_doc(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "readme",
        "license",
        "licence",
        "copying",
        "changelog",
        "contributing",
        "code_of_conduct",
        "authors",
        "notice",
    ]
    .iter()
    .any(|stem| {
        lower.strip_prefix(stem).is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(['.', '-', '_']) && !rest.ends_with(".html")
        })
    }) || lower.ends_with(".md")
        || lower.ends_with(".markdown")
}

/// Files at a site's root that configure its build or hosting, not pages.
fn is_build_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "procfile"
        || lower.starts_with("dockerfile")
        || lower.starts_with("docker-compose")
        || lower.starts_with("compose.y")
}

/// `root/rel`, resolved, and refused unless it stays inside `root` (symlinks included).
/// The largest Dockerfile a build reads.
const DOCKERFILE_MAX: u64 = 1 << 20;
/// The largest `.dockerignore` or `Procfile` a build reads.
const SMALL_FILE_MAX: u64 = 64 * 1024;

/// A file Clank itself reads from a repository (`.dockerignore`, `Procfile`): `None` when it
/// is absent; an error naming the rule when it is a symlink (never followed: it could point
/// at the build server's own files, or at `/dev/zero`), not a regular file, or over `max`.
pub(crate) fn read_repo_file(path: &Path, max: u64) -> Result<Option<String>, String> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("`{name}` cannot be read: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "`{name}` is a symlink; Clank never follows links for the files it reads itself: \
             commit the file instead"
        ));
    }
    if !meta.is_file() {
        return Err(format!("`{name}` is not a regular file"));
    }
    read_limited(path, max)
        .map(Some)
        .map_err(|e| format!("`{name}` cannot be read: {e}"))
}

/// Read at most `max` bytes of `path` as UTF-8; a longer file is an error, not a truncation.
fn read_limited(path: &Path, max: u64) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > max {
        return Err(format!("it is larger than {} KiB", max / 1024));
    }
    Ok(text)
}

fn inside(root: &Path, rel: &str, field: &str) -> Result<PathBuf, String> {
    let candidate = root.join(rel);
    let resolved = candidate
        .canonicalize()
        .map_err(|_| format!("{field} `{rel}` does not exist in the repository"))?;
    if !resolved.starts_with(root) {
        return Err(format!(
            "{field} `{rel}` resolves outside the repository (through a symlink); refusing it"
        ));
    }
    Ok(resolved)
}

/// A minimal `.dockerignore`: patterns in order, the last match wins.
#[derive(Debug, Default)]
pub struct Ignore {
    rules: Vec<(bool, String)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negate, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let pat = pat.trim_start_matches("./").trim_start_matches('/');
                (negate, pat.trim_end_matches('/').to_owned())
            })
            .filter(|(_, p)| !p.is_empty())
            .collect();
        Ignore { rules }
    }

    /// Whether `path` (relative, `/`-separated) is excluded. A pattern matching a directory
    /// excludes everything below it.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (negate, pat) in &self.rules {
            let hit =
                glob(pat, path) || path.match_indices('/').any(|(i, _)| glob(pat, &path[..i]));
            if hit {
                excluded = !negate;
            }
        }
        excluded
    }
}

/// `*` (not across `/`), `?`, and `**` (any number of segments) over a whole path.
fn glob(pat: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) if rest.first() == Some(&b'*') => {
                let rest = rest[1..].strip_prefix(b"/").unwrap_or(&rest[1..]);
                (0..=s.len()).any(|i| (i == 0 || s[i - 1] == b'/') && go(rest, &s[i..]))
                    || go(rest, s)
            }
            Some((b'*', rest)) => (0..=s.len())
                .take_while(|&i| i == 0 || s[i - 1] != b'/')
                .any(|i| go(rest, &s[i..])),
            Some((b'?', rest)) => s.first().is_some_and(|c| *c != b'/') && go(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    go(pat.as_bytes(), path.as_bytes())
}

fn tar_context(
    context: &Path,
    generated: &[(String, Vec<u8>)],
    walk: &Walk,
    ignore: &Ignore,
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let io = |e: std::io::Error| format!("building the context archive failed: {e}");
    for (name, bytes) in generated {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(io)?;
    }
    let mut total: u64 = 0;
    let mut ignored = 0usize;
    let mut left_out: Vec<String> = Vec::new();
    // Directories relative to the context.
    let mut stack = vec![walk.from.clone()];
    while let Some(rel_dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(context.join(&rel_dir))
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        let depth = rel_dir
            .strip_prefix(&walk.from)
            .map_or(0, |d| d.components().count());
        for entry in entries {
            let name = entry.file_name();
            let rel = rel_dir.join(&name);
            let Some(rel_str) = rel.to_str().map(str::to_owned) else {
                return Err(format!(
                    "`{}` has a name that is not UTF-8; rename it",
                    rel.display()
                ));
            };
            let name_str = name.to_string_lossy();
            if rel_dir.as_os_str().is_empty()
                && (name == ".git"
                    || name_str.starts_with(".clank.")
                    || generated.iter().any(|(g, _)| *g == rel_str))
            {
                continue;
            }
            if ignore.excludes(&rel_str) {
                ignored += 1;
                continue;
            }
            if walk.leave.excludes(&name_str, depth) {
                left_out.push(rel_str);
                continue;
            }
            let dest = walk.into.join(rel.strip_prefix(&walk.from).unwrap_or(&rel));
            let meta = entry.metadata().map_err(io)?; // does not follow symlinks
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(entry.path()).map_err(io)?;
                if escapes(&rel_dir, &target) {
                    return Err(format!(
                        "symlink `{rel_str}` points outside the build context (to `{}`); \
                         refusing to build it",
                        target.display()
                    ));
                }
                let mut h = header(tar::EntryType::Symlink, 0o777, 0);
                tar.append_link(&mut h, &dest, &target).map_err(io)?;
            } else if ft.is_dir() {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, &dest, std::io::empty())
                    .map_err(io)?;
                stack.push(rel);
            } else if ft.is_file() {
                use std::os::unix::fs::PermissionsExt;
                total += meta.len();
                if total > MAX_CONTEXT_BYTES {
                    return Err(format!(
                        "the build context is larger than {} MiB; exclude what the image does \
                         not need with a .dockerignore",
                        MAX_CONTEXT_BYTES >> 20
                    ));
                }
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                let mut h = header(tar::EntryType::Regular, mode, meta.len());
                let file = std::fs::File::open(entry.path()).map_err(io)?;
                tar.append_data(&mut h, &dest, file).map_err(io)?;
            }
            // Sockets, fifos and devices cannot come from git; skip anything else silently.
        }
    }
    if ignored > 0 {
        notes.push(format!("{ignored} path(s) excluded by .dockerignore"));
    }
    if !left_out.is_empty() {
        left_out.sort();
        let shown: Vec<&str> = left_out.iter().take(12).map(String::as_str).collect();
        let more = left_out.len().saturating_sub(shown.len());
        notes.push(format!(
            "left out of the image: {}{}",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    tar.into_inner().map_err(io)
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Whether a symlink in `dir` (relative to the context) with `target` leaves the context.
fn escapes(dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = dir.components().count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn dockerignore_patterns() {
        let ig = Ignore::parse("# c\nnode_modules/\n*.log\n**/tmp\n/secret\n!keep.log\n");
        assert!(ig.excludes("node_modules"));
        assert!(ig.excludes("node_modules/a/b.js"));
        assert!(ig.excludes("x.log"));
        assert!(!ig.excludes("dir/x.log"), "`*` does not cross `/`");
        assert!(ig.excludes("a/b/tmp/c"));
        assert!(ig.excludes("secret"));
        assert!(!ig.excludes("keep.log"), "negation re-includes");
        assert!(!ig.excludes("src/main.js"));
    }

    #[test]
    fn symlinks_leaving_the_context_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("../Dockerfile", dir.path().join("sub/ok")).unwrap();
        let p = prepare(dir.path(), None, None, 8080).unwrap();
        assert!(entries(&p.tar).contains(&"sub/ok".to_owned()));
        std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("sub/evil")).unwrap();
        let err = prepare(dir.path(), None, None, 8080).unwrap_err();
        assert!(err.contains("symlink `sub/evil` points outside"), "{err}");
        std::fs::remove_file(dir.path().join("sub/evil")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("abs")).unwrap();
        assert!(prepare(dir.path(), None, None, 8080).is_err());
    }

    #[test]
    fn paths_resolving_outside_the_repository_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink("../Dockerfile", repo.join("df")).unwrap();
        std::os::unix::fs::symlink("..", repo.join("up")).unwrap();
        let err = prepare(&repo, None, Some("df"), 8080).unwrap_err();
        assert!(err.contains("outside the repository"), "{err}");
        let err = prepare(&repo, Some("up"), None, 8080).unwrap_err();
        assert!(err.contains("outside the repository"), "{err}");
    }

    #[test]
    fn context_is_deterministic_skips_git_and_honours_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join(".git/objects")).unwrap();
        std::fs::write(p.join(".git/HEAD"), "ref").unwrap();
        std::fs::write(p.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(p.join("debug.log"), "x").unwrap();
        std::fs::write(p.join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(p.join("Procfile"), "web: busybox httpd -f\n").unwrap();
        let a = prepare(p, None, None, 8080).unwrap();
        let names = entries(&a.tar);
        assert_eq!(
            names,
            [
                DOCKERFILE_IN_CONTEXT,
                ".dockerignore",
                dockerfile::HTTPD_CONF_IN_CONTEXT,
                ".clank.site/index.html"
            ]
        );
        assert_eq!(a.app, Some(App::Static));
        assert_eq!(a.procfile.as_deref(), Some("web: busybox httpd -f\n"));
        // Touching a file (a new clone) changes nothing in the archive.
        std::fs::write(p.join("index.html"), "<h1>hi</h1>").unwrap();
        assert_eq!(prepare(p, None, None, 8080).unwrap().tar, a.tar);
    }

    fn repo(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, name).unwrap();
        }
        dir
    }

    #[test]
    fn static_sites_publish_only_the_site() {
        let dir = repo(&[
            "index.html",
            "404.html",
            "css/site.css",
            "license.html",
            ".well-known/security.txt",
            "README.md",
            "LICENSE",
            "docs/notes.md",
            ".env",
            ".github/workflows/ci.yml",
            "assets/.env.production",
            "Procfile",
            ".clank.Dockerfile",
            ".dockerignore",
        ]);
        let p = prepare(dir.path(), None, None, 8080).unwrap();
        let site: Vec<String> = entries(&p.tar)
            .into_iter()
            .filter_map(|e| e.strip_prefix(".clank.site/").map(str::to_owned))
            .collect();
        for gone in [
            "README.md",
            "LICENSE",
            "docs/notes.md",
            ".env",
            ".github",
            "assets/.env.production",
            "Procfile",
            ".clank.Dockerfile",
        ] {
            assert!(
                !site.iter().any(|e| e == gone),
                "{gone} published: {site:?}"
            );
        }
        for kept in [
            "index.html",
            "404.html",
            "css/site.css",
            "license.html",
            ".well-known/security.txt",
        ] {
            assert!(site.iter().any(|e| e == kept), "{kept} missing: {site:?}");
        }
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("left out of the image") && n.contains(".env")),
            "{:?}",
            p.notes
        );

        // A publish directory: its files, docs included, dotfiles still not; the site need
        // not have an index.html at the root.
        let dir = repo(&["public/index.html", "public/README.md", "public/.env"]);
        let options = dockerfile::Options {
            publish_dir: Some("public".into()),
            ..dockerfile::Options::default()
        };
        let p = prepare_with(dir.path(), None, None, 8080, &options).unwrap();
        let names = entries(&p.tar);
        assert!(
            names.contains(&".clank.site/README.md".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&".clank.site/index.html".to_owned()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains(".env")), "{names:?}");
        let missing = dockerfile::Options {
            publish_dir: Some("dist".into()),
            ..dockerfile::Options::default()
        };
        let err = prepare_with(dir.path(), None, None, 8080, &missing).unwrap_err();
        assert!(err.contains("publish_dir `dist`"), "{err}");
    }

    #[test]
    fn app_images_get_no_env_vcs_or_clank_files() {
        let dir = repo(&[
            "requirements.txt",
            "app.py",
            ".env",
            ".env.local",
            "sub/.git/config",
            ".python-version",
        ]);
        let p = prepare(dir.path(), None, None, 8080).unwrap();
        let names = entries(&p.tar);
        assert_eq!(
            names,
            [
                DOCKERFILE_IN_CONTEXT,
                ".dockerignore",
                ".python-version",
                "app.py",
                "requirements.txt",
                "sub"
            ]
        );
        let ignore = p_file(&p.tar, ".dockerignore");
        assert!(ignore.contains(DOCKERFILE_IN_CONTEXT) && ignore.contains(".dockerignore"));
    }

    fn p_file(tar: &[u8], name: &str) -> String {
        use std::io::Read;
        let mut a = tar::Archive::new(tar);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(name) {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                return s;
            }
        }
        panic!("{name} not in the archive")
    }

    #[test]
    fn files_clank_reads_are_never_followed_through_links_and_are_size_limited() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert_eq!(read_repo_file(&p.join(".dockerignore"), 64).unwrap(), None);
        std::fs::write(p.join("outside"), "secret").unwrap();
        std::os::unix::fs::symlink("/dev/zero", p.join(".dockerignore")).unwrap();
        let e = read_repo_file(&p.join(".dockerignore"), 64).unwrap_err();
        assert!(e.contains("is a symlink"), "{e}");
        std::fs::write(p.join("Procfile"), "web: x\n".repeat(100)).unwrap();
        let e = read_repo_file(&p.join("Procfile"), 64).unwrap_err();
        assert!(e.contains("larger than"), "{e}");
        std::fs::write(p.join("Procfile"), "web: ./serve\n").unwrap();
        assert_eq!(
            read_repo_file(&p.join("Procfile"), 64).unwrap().as_deref(),
            Some("web: ./serve\n")
        );
    }
}
