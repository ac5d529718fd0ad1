//! Spawning a workload's process and watching it: one task per workload this runtime
//! instance started, which records the exit, applies the restart policy and stamps log times.
//!
//! The task holds the only [`Child`] handle, so it alone reaps the process and learns its
//! exit code. Processes a *previous* instance spawned are not children of this one: their
//! exit code is lost, and they are not restarted (the reconciler sees them exited and acts).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use clank_core::runtime::{RestartPolicy, WorkloadSpec};
use clank_core::{Error, Result, RuntimeFailure, Timestamp};
use rustix::process::Signal;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::env::{self, VolumeDir};
use crate::isolation::RunAs;
use crate::layout::Layout;
use crate::meta::{self, Leader, Meta, Phase};
use crate::{group, logs, procfs};

/// First restart delay; doubled per consecutive quick failure up to [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A run this long resets the back-off (a crash after hours is not a crash loop).
const STABLE_RUN: Duration = Duration::from_secs(10);

/// A workload this runtime instance spawned and supervises.
#[derive(Debug)]
pub(crate) struct Workload {
    /// Kept in memory (env values may be secrets and are never written to disk) to restart
    /// the process and to give `exec` the same environment.
    pub(crate) spec: WorkloadSpec,
    pub(crate) volumes: Vec<VolumeDir>,
    /// The workload's own directory (its `HOME`).
    pub(crate) home: PathBuf,
    /// The in-memory copy of `meta.json`; every change is written through.
    meta: Mutex<Meta>,
    /// Shared with the task so that `abandon` can date the last output before letting go.
    stamper: Mutex<logs::Stamper>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Workload {
    pub(crate) fn meta(&self) -> MutexGuard<'_, Meta> {
        lock(&self.meta)
    }

    /// Stop supervising (the process itself is left alone). Output so far gets its time
    /// recorded first; what the process writes afterwards stays undated until a runtime
    /// spawns it again.
    pub(crate) fn abandon(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
        self.stamp();
    }

    /// Date all output written so far.
    pub(crate) fn stamp(&self) {
        lock(&self.stamper).stamp();
    }

    /// Date the output of one stream, which was just seen growing.
    pub(crate) fn stamp_stream(&self, stream: clank_core::runtime::LogStream) {
        lock(&self.stamper).stamp_stream(stream);
    }

    /// The environment the process runs with, rebuilt from the spec.
    pub(crate) fn env(&self) -> std::collections::BTreeMap<String, String> {
        let port = self.meta().port;
        env::build(&self.spec, port, &self.volumes, &self.home)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Exit code as a container runtime reports it: the code, or 128 + signal number.
pub(crate) fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

/// Start the process: own process group, cleared environment, output onto the log files
/// (opened here, by the runtime: the process itself cannot reach the state directory), as
/// `run_as` if given.
pub(crate) fn spawn(
    layout: &Layout,
    spec: &WorkloadSpec,
    env: &std::collections::BTreeMap<String, String>,
    cwd: &Path,
    run_as: Option<RunAs>,
) -> Result<(Child, Leader)> {
    let argv = spec.command.as_deref().unwrap_or_default();
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Internal("spawn called without a command".into()));
    };
    let (stdout, stderr) = logs::open_for_child(layout, &spec.name)?;
    let mut command = Command::new(program);
    if let Some(user) = run_as {
        // With a uid and no explicit groups, std drops every supplementary group
        // (`setgroups(0)`) before `setuid`: the workload keeps none of root's groups.
        command.uid(user.uid).gid(user.gid);
    }
    let child = command
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own group, so stop reaches everything it forks.
        .process_group(0)
        // Dropping the handle (runtime dropped, control plane restarting) must not kill it.
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| {
            let hint = match run_as {
                Some(user) if e.kind() == std::io::ErrorKind::PermissionDenied => format!(
                    " (it runs as its workspace's user, uid {}: the program and the working \
                     directory must be reachable by other users)",
                    user.uid
                ),
                _ => String::new(),
            };
            Error::runtime(
                RuntimeFailure::StartFailed,
                format!(
                    "workload `{}`: cannot run `{program}` in `{}`: {e}{hint}",
                    spec.name,
                    cwd.display()
                ),
            )
        })?;
    // Not yet reaped (only `wait` reaps), so `/proc` has it even if it already exited.
    let identity = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .and_then(|pid| Some((pid, procfs::stat(pid)?.start_ticks)));
    let Some((pid, start_ticks)) = identity else {
        let mut child = child;
        let _ = child.start_kill();
        return Err(Error::runtime(
            RuntimeFailure::StartFailed,
            format!(
                "workload `{}`: `{program}` started but its /proc entry is unreadable, so it \
                 could not be tracked; is /proc mounted?",
                spec.name
            ),
        ));
    };
    Ok((child, Leader { pid, start_ticks }))
}

/// Take over a freshly spawned child: record it and start its supervising task. The stamper
/// must have been made before the spawn, so the child's first output is dated, not "unknown".
pub(crate) fn supervise(
    layout: Layout,
    spec: WorkloadSpec,
    volumes: Vec<VolumeDir>,
    home: PathBuf,
    meta: Meta,
    child: Child,
    stamper: logs::Stamper,
) -> Arc<Workload> {
    let workload = Arc::new(Workload {
        spec,
        volumes,
        home,
        meta: Mutex::new(meta),
        stamper: Mutex::new(stamper),
        task: Mutex::new(None),
    });
    let task = tokio::spawn(run(layout, Arc::clone(&workload), child));
    *lock(&workload.task) = Some(task);
    workload
}

/// Write the record through; a failure is logged, not fatal (the process keeps running and
/// the in-memory record stays right for this instance).
pub(crate) fn persist(layout: &Layout, meta: &Meta) {
    if let Err(e) = meta::write(&layout.meta_path(&meta.name), meta) {
        tracing::warn!(workload = %meta.name, error = %e, "Cannot persist workload record.");
    }
}

fn should_restart(meta: &Meta, code: Option<i64>) -> bool {
    if meta.stop_requested {
        return false;
    }
    match meta.restart {
        RestartPolicy::Never => false,
        RestartPolicy::OnFailure { max_retries } => {
            code != Some(0) && meta.restart_count < max_retries
        }
        RestartPolicy::UnlessStopped => true,
    }
}

fn backoff(quick_failures: u32) -> Duration {
    BASE_BACKOFF
        .saturating_mul(1 << quick_failures.min(16))
        .min(MAX_BACKOFF)
}

async fn run(layout: Layout, w: Arc<Workload>, mut child: Child) {
    let name = w.spec.name.clone();
    let mut tick = tokio::time::interval(logs::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut quick_failures = 0;
    loop {
        let started = tokio::time::Instant::now();
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = tick.tick() => w.stamp(),
            }
        };
        w.stamp();
        // Like a container whose main process exited: nothing of the workload outlives it.
        let leader = w.meta().leader;
        if let Some(leader) = leader {
            group::signal(leader, Signal::KILL);
        }
        let code = match status {
            Ok(status) => Some(exit_code(status)),
            Err(e) => {
                tracing::warn!(workload = %name, error = %e, "Cannot read exit status.");
                None
            }
        };
        if started.elapsed() >= STABLE_RUN {
            quick_failures = 0;
        }
        let delay = {
            let mut m = w.meta();
            m.exit_code = code;
            m.finished_at = Some(Timestamp::now());
            let restart = should_restart(&m, code);
            m.phase = if restart {
                Phase::Restarting
            } else {
                Phase::Exited
            };
            persist(&layout, &m);
            restart.then(|| backoff(quick_failures))
        };
        let Some(delay) = delay else {
            tracing::debug!(workload = %name, ?code, "Workload exited.");
            return;
        };
        tracing::info!(workload = %name, ?code, ?delay, "Workload exited; restarting.");
        quick_failures += 1;
        tokio::time::sleep(delay).await;

        // Spawn under the record's lock: a concurrent `stop` either sees the new process (and
        // ends it) or has already set `stop_requested` (and no process is started).
        let mut m = w.meta();
        if m.stop_requested || m.phase != Phase::Restarting {
            m.phase = Phase::Exited;
            persist(&layout, &m);
            return;
        }
        let env = env::build(&w.spec, m.port, &w.volumes, &w.home);
        match spawn(&layout, &w.spec, &env, &m.cwd.clone(), m.run_as) {
            Ok((next, leader)) => {
                child = next;
                m.leader = Some(leader);
                m.restart_count += 1;
                m.phase = Phase::Running;
                m.started_at = Some(Timestamp::now());
                m.exit_code = None;
                m.finished_at = None;
                persist(&layout, &m);
            }
            Err(e) => {
                tracing::warn!(workload = %name, error = %e, "Restart failed; giving up.");
                m.phase = Phase::Exited;
                persist(&layout, &m);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_tenth_of_a_second_and_caps_at_five() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
