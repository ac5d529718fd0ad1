//! Commands run in a native workload (`exec`): as the workload's own user, in its working
//! directory, with its environment, in a process group of their own that a timeout kills whole;
//! output drained to the end and kept up to [`clank_core::runtime::EXEC_OUTPUT_MAX`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;

use clank_core::runtime::{ExecOutput, ExecRequest, WorkloadId, WorkloadState};
use clank_core::{Error, InvalidInput, Result, RuntimeFailure};
use rustix::process::Signal;

use crate::isolation::RunAs;
use crate::{ProcessRuntime, procfs, supervisor};

/// Where an exec runs: as the workload's user, in its working directory, with its environment.
pub(crate) struct ExecContext {
    pub(crate) run_as: Option<RunAs>,
    pub(crate) cwd: PathBuf,
    pub(crate) env: Vec<(OsString, OsString)>,
}

impl ProcessRuntime {
    /// Where an exec in running workload `id` runs.
    pub(crate) fn exec_context(&self, id: &WorkloadId) -> Result<ExecContext> {
        let found = self.shared.observe_existing(id)?;
        let leader = match (&found.state, found.meta.leader) {
            (WorkloadState::Running { .. }, Some(leader)) => leader,
            _ => {
                return Err(Error::Conflict(format!(
                    "workload `{id}` is not running; exec needs a running workload"
                )));
            }
        };
        // As the workload's own user. A workload an earlier version started as the runtime's
        // user still gets its workspace's user (and its own directory) for exec.
        let (run_as, cwd) = match found.meta.run_as {
            Some(user) => (Some(user), found.meta.cwd.clone()),
            None => match self.shared.users.admit(found.meta.owner.workspace, false)? {
                Some(user) => {
                    let home =
                        self.shared
                            .work_dir(&found.meta.owner, &found.meta.name, Some(user))?;
                    (Some(user), home)
                }
                None => (None, found.meta.cwd.clone()),
            },
        };
        // The workload's own environment: rebuilt from the spec if this instance has it, else
        // read back from the kernel for an adopted process.
        let env: Vec<(OsString, OsString)> = match &found.supervised {
            Some(w) => w
                .env()
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            None => procfs::environ(leader.pid).map_err(|e| {
                Error::runtime(
                    RuntimeFailure::Other,
                    format!("exec in workload `{id}`: cannot read its environment: {e}"),
                )
            })?,
        };
        Ok(ExecContext { run_as, cwd, env })
    }
}

/// Run `request` in workload `id` without a terminal, as `context` says (asked only once the
/// request itself is accepted): its exit code and output, each capped.
pub(crate) async fn run(
    id: &WorkloadId,
    request: &ExecRequest,
    context: impl FnOnce() -> Result<ExecContext>,
) -> Result<ExecOutput> {
    if request.tty {
        return Err(Error::runtime(
            RuntimeFailure::Unsupported,
            "the process runtime runs exec commands without a terminal (tty: false)",
        ));
    }
    let Some((program, args)) = request.command.split_first() else {
        return Err(InvalidInput::new("request.command", "empty", "name a program to run").into());
    };
    let ExecContext { run_as, cwd, env } = context()?;
    let mut command = tokio::process::Command::new(program);
    if let Some(user) = run_as {
        // No explicit groups: std drops all supplementary groups before `setuid`.
        command.uid(user.uid).gid(user.gid);
    }
    let spawned = command
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        // As a shell reports it: 127 not found, 126 not executable.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(ExecOutput {
                exit_code: Some(code),
                stdout: String::new(),
                stderr: format!("exec: `{program}`: {e}\n"),
            });
        }
        Err(e) => {
            return Err(Error::runtime(
                RuntimeFailure::Other,
                format!("exec in workload `{id}`: cannot run `{program}`: {e}"),
            ));
        }
    };
    let pgid = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(rustix::process::Pid::from_raw);
    let mut child = child;
    let (out, err) = (child.stdout.take(), child.stderr.take());
    // Both streams are drained to the end (a child blocked on a full pipe never exits), but
    // at most `EXEC_OUTPUT_MAX` of each is kept, as on every runtime.
    let run = async {
        let (stdout, stderr, status) =
            tokio::join!(read_capped(out), read_capped(err), child.wait());
        status.map(|status| (status, stdout, stderr))
    };
    match tokio::time::timeout(request.timeout, run).await {
        Ok(Ok((status, stdout, stderr))) => Ok(ExecOutput {
            exit_code: Some(supervisor::exit_code(status)),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        Ok(Err(e)) => Err(Error::runtime(
            RuntimeFailure::Other,
            format!("exec in workload `{id}`: waiting for `{program}` failed: {e}"),
        )),
        Err(_) => {
            // The leader is killed as its handle drops; this takes whatever it forked.
            if let Some(pgid) = pgid {
                let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
            }
            Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!(
                    "exec `{program}` in workload `{id}` did not finish within {:?}; it was \
                     killed",
                    request.timeout
                ),
            ))
        }
    }
}

/// Read `stream` to its end, keeping at most [`clank_core::runtime::EXEC_OUTPUT_MAX`] bytes.
async fn read_capped(stream: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut kept = Vec::new();
    let Some(mut stream) = stream else {
        return kept;
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => clank_core::runtime::append_capped(&mut kept, &chunk[..n]),
        }
    }
}
