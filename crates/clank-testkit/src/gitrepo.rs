//! Local git repositories for build tests: made with the real `git` in a directory, served as
//! `file://` URLs, with commits added as the test goes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A repository on disk with a `main` branch.
#[derive(Debug)]
pub struct TestRepo {
    dir: tempfile::TempDir,
}

impl TestRepo {
    /// A new repository whose first commit holds `files` (path, contents).
    pub fn new(files: &[(&str, &str)]) -> TestRepo {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "--quiet", "--initial-branch=main"]);
        let repo = TestRepo { dir };
        repo.commit(files, "initial");
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The `file://` URL to clone it from.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// Write `files` (creating directories), commit everything, return the commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, contents) in files {
            let full: PathBuf = self.dir.path().join(path);
            std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
            std::fs::write(&full, contents).expect("write");
        }
        git(self.dir.path(), &["add", "--all"]);
        git(
            self.dir.path(),
            &["commit", "--quiet", "--allow-empty", "-m", message],
        );
        self.head()
    }

    pub fn head(&self) -> String {
        git(self.dir.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_owned()
    }
}

/// Run git in `dir` with a fixed identity and no user config; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Clank Test",
            "-c",
            "user.email=test@clank.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
