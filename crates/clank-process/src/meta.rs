//! The persisted record of one workload (`meta.json`), written atomically so that a runtime
//! opened after a crash or restart reads either the old record or the new one, never half.
//!
//! It holds no environment: env values may be secrets, and the only copy of them on disk is
//! the one the kernel keeps for the running process (`/proc/<pid>/environ`).

use std::io::Write;
use std::path::{Path, PathBuf};

use clank_core::runtime::{Owner, RestartPolicy};
use clank_core::{Error, Result, Timestamp};

use crate::isolation::RunAs;
use crate::layout::io_error;

/// Bumped when the record changes incompatibly; older runtimes refuse newer records.
pub(crate) const FORMAT: u32 = 1;

/// Where the workload's lifecycle stands, as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// A process was started; whether it still runs is checked against `/proc`.
    Running,
    /// The supervisor is waiting out a back-off before starting the process again.
    Restarting,
    /// The process ended and will not be started again without a new `start`.
    Exited,
}

/// The process a record points at. `pid` alone is not an identity (pids are reused); the
/// start time (field 22 of `/proc/<pid>/stat`, in clock ticks since boot) makes it one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Leader {
    /// Also the process group id: every workload runs in its own group.
    pub(crate) pid: i32,
    pub(crate) start_ticks: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Meta {
    pub(crate) format: u32,
    pub(crate) name: String,
    pub(crate) owner: Owner,
    /// The current (or last) process; `None` before the first spawn succeeded.
    pub(crate) leader: Option<Leader>,
    /// The port in the process's `PORT`; the endpoint is `127.0.0.1:<port>`.
    pub(crate) port: Option<u16>,
    /// The process's working directory, reused by `exec`.
    pub(crate) cwd: PathBuf,
    /// Volume names the workload was started with (a volume in use is not removed).
    pub(crate) volumes: Vec<String>,
    pub(crate) restart: RestartPolicy,
    pub(crate) restart_count: u32,
    pub(crate) phase: Phase,
    pub(crate) started_at: Option<Timestamp>,
    /// Known only for processes the recording runtime spawned itself and saw exit.
    pub(crate) exit_code: Option<i64>,
    pub(crate) finished_at: Option<Timestamp>,
    /// `stop` was asked for: never restart, whatever the policy.
    pub(crate) stop_requested: bool,
    /// The workspace's user the process runs as; `None`: the runtime's own user (serving one
    /// workspace, or a record of a version that did not switch users).
    #[serde(default)]
    pub(crate) run_as: Option<RunAs>,
}

/// Read a record; `Ok(None)` if there is none.
pub(crate) fn read(path: &Path) -> Result<Option<Meta>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read", path, &e)),
    };
    let meta: Meta = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
        key: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if meta.format > FORMAT {
        return Err(Error::Corrupt {
            key: path.display().to_string(),
            reason: format!(
                "record format {} is newer than this runtime understands ({FORMAT})",
                meta.format
            ),
        });
    }
    Ok(Some(meta))
}

/// Replace a record atomically: write a temporary file beside it, flush it to disk, rename.
pub(crate) fn write(path: &Path, meta: &Meta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::Internal(format!("cannot encode workload record: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_error("write", path, &e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};

    fn sample() -> Meta {
        Meta {
            format: FORMAT,
            name: "w".into(),
            owner: Owner {
                workspace: WorkspaceId::new(),
                project: ProjectId::new(),
                environment: EnvironmentId::new(),
                service: ServiceId::new(),
                deployment: DeploymentId::new(),
                process: "web".into(),
                replica: 0,
            },
            leader: Some(Leader {
                pid: 42,
                start_ticks: 7,
            }),
            port: Some(8080),
            cwd: "/tmp".into(),
            volumes: vec!["data".into()],
            restart: RestartPolicy::OnFailure { max_retries: 3 },
            restart_count: 1,
            phase: Phase::Running,
            started_at: Some(Timestamp(5)),
            exit_code: None,
            finished_at: None,
            stop_requested: false,
            run_as: Some(RunAs { uid: 7, gid: 7 }),
        }
    }

    #[test]
    fn a_record_round_trips_and_a_missing_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        assert_eq!(read(&path).unwrap(), None);
        let meta = sample();
        write(&path, &meta).unwrap();
        assert_eq!(read(&path).unwrap(), Some(meta));
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_damaged_or_newer_record_is_reported_corrupt_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.json");
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(read(&path), Err(Error::Corrupt { .. })));
        let mut newer = sample();
        newer.format = FORMAT + 1;
        write(&path, &newer).unwrap();
        assert!(matches!(read(&path), Err(Error::Corrupt { .. })));
    }
}
