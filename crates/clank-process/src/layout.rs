//! Where the runtime keeps things, and the name rules that keep every path inside it.
//!
//! ```text
//! <state_dir>/                          the runtime's alone: no workload reaches it
//!   workloads/<name>/meta.json          the persisted record (see `meta`)
//!   workloads/<name>/stdout.log         raw output (opened by the runtime, written by the process)
//!   workloads/<name>/stdout.times       when each stretch of the log was first seen
//!   workloads/<name>/stderr.{log,times}
//!   volume-labels/<name>.json           the labels `ensure_volume` was given
//!   users.json                          the workspaces' users (see `isolation`)
//!   workload-root                       where the workload root is (its path)
//!   volumes/<name>/                     volume data of earlier versions, moved on first use
//! <workload_root>/<scope>/              what a workspace's workloads reach (see `isolation`)
//!   workloads/<name>/                   a workload's working directory and HOME
//!   volumes/<name>/                     volume data: never inside a workload's directory
//! ```
//!
//! Volumes live outside `workloads/` so that deleting a workload's directory can never reach
//! volume data, whatever else goes wrong.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use clank_core::id::WorkspaceId;
use clank_core::runtime::LogStream;
use clank_core::{Error, InvalidInput, Result, RuntimeFailure};

/// Longest workload name; names become directory names, and 128 is Docker's practical limit.
pub(crate) const WORKLOAD_NAME_MAX_LEN: usize = 128;

/// Paths under one state directory and its workload root.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
    work_root: PathBuf,
}

impl Layout {
    /// Create the directory skeleton and make both roots absolute, because paths handed to
    /// processes in their environment must not depend on the process's working directory.
    /// `work_root` defaults to the one recorded in the state directory (`workload-root`), so
    /// any later opening finds the workloads' directories where the first put them, else to
    /// `<state_dir>-workloads`, beside the state directory; it must not be inside it.
    pub(crate) fn create(root: &Path, work_root: Option<&Path>) -> Result<Layout> {
        for dir in [root.join("workloads"), root.join("volume-labels")] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| io_error("resolve", root, &e))?;
        let record = root.join("workload-root");
        let recorded = match std::fs::read(&record) {
            Ok(bytes) => Some(PathBuf::from(std::ffi::OsString::from_vec(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error("read", &record, &e)),
        };
        let work_root = match (work_root, &recorded) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(dir)) => dir.clone(),
            (None, None) => {
                let mut name = root.file_name().unwrap_or_default().to_os_string();
                name.push("-workloads");
                root.with_file_name(name)
            }
        };
        std::fs::create_dir_all(&work_root).map_err(|e| io_error("create", &work_root, &e))?;
        let work_root = work_root
            .canonicalize()
            .map_err(|e| io_error("resolve", &work_root, &e))?;
        if work_root.starts_with(&root) || root.starts_with(&work_root) {
            return Err(Error::runtime(
                RuntimeFailure::Other,
                format!(
                    "process runtime: the workload root `{}` and the state directory `{}` \
                     must not contain one another (workloads must not reach the runtime's state)",
                    work_root.display(),
                    root.display()
                ),
            ));
        }
        if recorded.as_ref() != Some(&work_root) {
            if let Some(old) = &recorded {
                tracing::warn!(
                    from = %old.display(),
                    to = %work_root.display(),
                    "The workload root moved: workloads' directories and volumes under the old \
                     one are not used any more (move them to keep their data)."
                );
            }
            let tmp = record.with_extension("tmp");
            std::fs::write(&tmp, work_root.as_os_str().as_bytes())
                .and_then(|()| std::fs::rename(&tmp, &record))
                .map_err(|e| io_error("write", &record, &e))?;
        }
        Ok(Layout { root, work_root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn work_root(&self) -> &Path {
        &self.work_root
    }

    pub(crate) fn workloads_dir(&self) -> PathBuf {
        self.root.join("workloads")
    }

    /// A workload's record and logs (in the state directory).
    pub(crate) fn record_dir(&self, name: &str) -> PathBuf {
        self.workloads_dir().join(name)
    }

    pub(crate) fn meta_path(&self, name: &str) -> PathBuf {
        self.record_dir(name).join("meta.json")
    }

    pub(crate) fn log_path(&self, name: &str, stream: LogStream) -> PathBuf {
        self.record_dir(name)
            .join(format!("{}.log", stream_name(stream)))
    }

    pub(crate) fn times_path(&self, name: &str, stream: LogStream) -> PathBuf {
        self.record_dir(name)
            .join(format!("{}.times", stream_name(stream)))
    }

    /// What a workspace's workloads reach.
    pub(crate) fn workspace_dir(&self, workspace: WorkspaceId) -> PathBuf {
        self.work_root.join(workspace.scope())
    }

    /// A workload's working directory and HOME.
    pub(crate) fn work_dir(&self, workspace: WorkspaceId, name: &str) -> PathBuf {
        self.workspace_dir(workspace).join("workloads").join(name)
    }

    pub(crate) fn volume_dir(&self, workspace: WorkspaceId, name: &str) -> PathBuf {
        self.workspace_dir(workspace).join("volumes").join(name)
    }

    /// Where versions before the workload root kept a volume's data.
    pub(crate) fn legacy_volume_dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    pub(crate) fn volume_labels_path(&self, name: &str) -> PathBuf {
        self.root.join("volume-labels").join(format!("{name}.json"))
    }
}

fn stream_name(stream: LogStream) -> &'static str {
    match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    }
}

/// A workload name is a single path component: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most
/// [`WORKLOAD_NAME_MAX_LEN`] long (Docker's container-name shape, so names are portable
/// between runtimes). This rules out `..`, `/` and hidden files before any path is built.
pub(crate) fn validate_workload_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    const SHAPE: &str = "a workload name is letters, digits, `_`, `.` and `-`, starting with a \
                         letter or digit";
    if name.is_empty() {
        return Err(InvalidInput::new(
            field,
            "empty",
            format!("must not be empty; {SHAPE}"),
        ));
    }
    if name.len() > WORKLOAD_NAME_MAX_LEN {
        return Err(InvalidInput::new(
            field,
            "too_long",
            format!(
                "is {} characters; a workload name has at most {WORKLOAD_NAME_MAX_LEN}",
                name.len()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(InvalidInput::new(
            field,
            "charset",
            format!("`{}` contains {c:?}; {SHAPE}", name.escape_debug()),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(InvalidInput::new(
            field,
            "format",
            format!("`{name}` must start with a letter or digit; {SHAPE}"),
        ));
    }
    Ok(())
}

/// An I/O failure on one of the runtime's own files, naming the path so it can be fixed.
pub(crate) fn io_error(action: &str, path: &Path, err: &std::io::Error) -> Error {
    Error::runtime(
        RuntimeFailure::Other,
        format!(
            "process runtime: cannot {action} `{}`: {err}",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_names_that_would_escape_the_state_dir_are_rejected() {
        for bad in ["", "..", ".hidden", "a/b", "../x", "-x", "a b", "é"] {
            assert!(
                validate_workload_name("name", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        let long = "a".repeat(WORKLOAD_NAME_MAX_LEN + 1);
        assert_eq!(
            validate_workload_name("name", &long).unwrap_err().rule,
            "too_long"
        );
        for good in ["a", "clank-shop-production-api-3-web-0", "x_1.2"] {
            validate_workload_name("name", good).unwrap();
        }
    }
}
