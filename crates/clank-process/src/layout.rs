//! Where the runtime keeps things under its state directory, and the name rules that keep
//! every path inside it.
//!
//! ```text
//! <state_dir>/
//!   workloads/<name>/meta.json          the persisted record (see `meta`)
//!   workloads/<name>/stdout.log         raw output, appended by the process itself
//!   workloads/<name>/stdout.times       when each stretch of the log was first seen
//!   workloads/<name>/stderr.{log,times}
//!   volumes/<name>/                     volume data: never inside a workload's directory
//!   volume-labels/<name>.json           the labels `ensure_volume` was given
//! ```
//!
//! Volumes live outside `workloads/` so that deleting a workload's directory can never reach
//! volume data, whatever else goes wrong.

use std::path::{Path, PathBuf};

use clank_core::runtime::LogStream;
use clank_core::{Error, InvalidInput, Result, RuntimeFailure};

/// Longest workload name; names become directory names, and 128 is Docker's practical limit.
pub(crate) const WORKLOAD_NAME_MAX_LEN: usize = 128;

/// Paths under one state directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Create the directory skeleton and make the root absolute, because volume paths handed
    /// to processes in their environment must not depend on the process's working directory.
    pub(crate) fn create(root: &Path) -> Result<Layout> {
        for dir in [
            root.join("workloads"),
            root.join("volumes"),
            root.join("volume-labels"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| io_error("resolve", root, &e))?;
        Ok(Layout { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn workloads_dir(&self) -> PathBuf {
        self.root.join("workloads")
    }

    pub(crate) fn workload_dir(&self, name: &str) -> PathBuf {
        self.workloads_dir().join(name)
    }

    pub(crate) fn meta_path(&self, name: &str) -> PathBuf {
        self.workload_dir(name).join("meta.json")
    }

    pub(crate) fn log_path(&self, name: &str, stream: LogStream) -> PathBuf {
        self.workload_dir(name)
            .join(format!("{}.log", stream_name(stream)))
    }

    pub(crate) fn times_path(&self, name: &str, stream: LogStream) -> PathBuf {
        self.workload_dir(name)
            .join(format!("{}.times", stream_name(stream)))
    }

    pub(crate) fn volume_dir(&self, name: &str) -> PathBuf {
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
