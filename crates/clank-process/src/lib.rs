//! Clank's native-process runtime: each workload is a supervised local process. It is the
//! embedded default where no container engine is reachable, so the platform still works on a
//! laptop without Docker.
//!
//! [`ProcessRuntime::open`] takes a state directory; everything the runtime knows lives there
//! (see `layout`), so a new instance opened on the same directory — after the control plane
//! restarted — finds the processes an earlier one started ([`Runtime::list`]) and controls
//! them. What workloads themselves reach (working directories, volumes) lives in a separate
//! *workload root* ([`ProcessOptions::workload_root`]), never inside the state directory.
//!
//! **Isolation** (see `isolation`): run as root, each workspace's workloads and `exec`
//! commands run as that workspace's own unprivileged uid/gid (no supplementary groups), which
//! can reach neither the state directory nor other workspaces' directories. A runtime that
//! cannot switch users runs everything as itself and serves one workspace: the first to
//! start a workload; any other is refused (`Unsupported`) with an error saying why.
//!
//! How native processes differ from containers, deliberately:
//! - **Command, not image.** `spec.command` is the argument vector to run (no shell); `image`
//!   is ignored. A spec without a command fails with `Unsupported`.
//! - **Ports.** The process listens on the host: on `publish.host_port` if set, else on a free
//!   port. Either way it is passed in `PORT`, and the endpoint is `127.0.0.1:<port>`.
//! - **Environment.** Cleared, then the spec's variables plus `PORT`, a default `PATH` and the
//!   volume variables below; the control plane's own environment is never inherited.
//! - **Volumes** are directories `<workload_root>/<scope>/volumes/<name>/` that outlive
//!   workloads, one per workspace (`<scope>` is the owner's [`WorkspaceId::scope`]). A
//!   process cannot mount, so `mount_path` is not honoured: each volume's directory is given
//!   in `CLANK_VOLUME_<NAME>` (see [`volume_env_key`]) and the first one also in `DATA_DIR`
//!   (unless the spec sets `DATA_DIR`). Data an earlier version kept in
//!   `<state_dir>/volumes/<name>/` is moved there on the volume's first use.
//! - **Working directory**: the spec's `working_dir` if it is an absolute path to an existing
//!   directory (the workload's user must be able to reach it), else the workload's own
//!   directory `<workload_root>/<scope>/workloads/<name>/`, which is also its `HOME`.
//! - **No network isolation, no limits.** Workloads share the host's network (so
//!   `ensure_network` / `remove_network` do nothing) and CPU and memory limits are not
//!   enforced; the runtime says so in [`Runtime::capabilities`].
//! - **Ids.** A workload's [`WorkloadId`] is its name, stable across runtime restarts.
//! - **Logs.** The process writes straight into `stdout.log` / `stderr.log` in its directory,
//!   so it never depends on the control plane staying up; line times are kept beside them
//!   (see `logs`). There is no rotation yet: the files grow until the workload is removed.
//! - **Restarts** follow the spec's policy while the instance that spawned the process runs;
//!   an adopted process (spawned by an earlier instance) is not a child of this one, so its
//!   exit code is unknown (`Exited { code: None }`) and it is not restarted.
//!
//! One runtime instance owns a state directory at a time (an exclusive lock, released when
//! the instance is dropped): two supervisors would both restart the same workload.

mod env;
mod exec;
mod group;
mod isolation;
mod layout;
mod logs;
mod meta;
mod ports;
mod procfs;
mod supervisor;
mod terminal;
mod tree_copy;
mod volumes;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use clank_core::id::WorkspaceId;
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogOptions, LogStreamBox, Owner, OwnerFilter, Runtime,
    RuntimeCapabilities, TerminalSession, TerminalSize, WorkloadId, WorkloadSpec, WorkloadState,
    WorkloadStats, WorkloadStatus,
};
use clank_core::validate::validate_volume_name;
use clank_core::{Error, InvalidInput, Result, RuntimeFailure, Timestamp};
use rustix::process::Signal;

pub use env::volume_env_key;
pub use isolation::{DEFAULT_FIRST_UID, Isolation};

use crate::isolation::{Mode, RunAs, Users};
use crate::layout::{Layout, io_error, validate_workload_name};
use crate::meta::{Leader, Meta, Phase};
use crate::supervisor::Workload;
use crate::watch::LogWatch;

/// How long `stop` waits for the supervisor to record an exit it has caused.
const EXIT_RECORD_WAIT: Duration = Duration::from_secs(2);
/// The CPU sampling window of `stats`.
const CPU_SAMPLE: Duration = Duration::from_millis(200);

/// How a [`ProcessRuntime`] is set up beyond its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// Where workloads' working directories and volumes live: outside the state directory
    /// (and the data directory holding it), reachable by the workspaces' users. Default
    /// `<state_dir>-workloads`, beside the state directory.
    pub workload_root: Option<PathBuf>,
    pub isolation: Isolation,
    /// The first uid (and gid) given to a workspace; ids are handed out upwards from it.
    pub first_uid: u32,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            workload_root: None,
            isolation: Isolation::Auto,
            first_uid: DEFAULT_FIRST_UID,
        }
    }
}

/// Runs workloads as local processes. See the crate docs for how that differs from containers.
pub struct ProcessRuntime {
    shared: Arc<Shared>,
    /// Held for the instance's lifetime: one runtime per state directory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("state_dir", &self.shared.layout.root())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Shared {
    layout: Layout,
    /// Who each workspace's processes run as.
    users: Users,
    /// Workloads this instance spawned, by name.
    supervised: Mutex<HashMap<String, Arc<Workload>>>,
    /// One operation at a time per workload name (start, stop and remove must not interleave).
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Made on the first start; `None` if inotify is unavailable.
    log_watch: OnceLock<Option<Arc<LogWatch>>>,
}

/// A workload as found: its record and its state right now.
struct Observed {
    meta: Meta,
    state: WorkloadState,
    supervised: Option<Arc<Workload>>,
}

impl Observed {
    fn is_running(&self) -> bool {
        matches!(
            self.state,
            WorkloadState::Running { .. } | WorkloadState::Restarting
        )
    }

    fn status(&self) -> WorkloadStatus {
        WorkloadStatus {
            id: WorkloadId(self.meta.name.clone()),
            name: self.meta.name.clone(),
            owner: self.meta.owner.clone(),
            state: self.state.clone(),
            restart_count: self.meta.restart_count,
            endpoint: self
                .meta
                .port
                .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        }
    }
}

/// Tries (20 ms apart) to take the state directory's lock before reporting it in use.
const LOCK_ATTEMPTS: u32 = 100;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessRuntime {
    /// Open (creating if needed) a state directory, with the default options. Workloads
    /// earlier instances started there are found by `list` and `inspect` and controlled like
    /// this instance's own. Fails with `EngineUnavailable` if another instance has the
    /// directory open.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<ProcessRuntime> {
        ProcessRuntime::open_with(state_dir, ProcessOptions::default())
    }

    /// [`open`](Self::open) with `options`. Says at `warn` level when it serves one
    /// workspace only (it cannot switch users).
    pub fn open_with(
        state_dir: impl AsRef<Path>,
        options: ProcessOptions,
    ) -> Result<ProcessRuntime> {
        let mode = Mode::resolve(options.isolation, options.first_uid)?;
        let layout = Layout::create(state_dir.as_ref(), options.workload_root.as_deref())?;
        let lock_path = layout.root().join("runtime.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_error("open", &lock_path, &e))?;
        // A lock held only for a moment is not a competing instance: a process forked by
        // another thread shares the descriptor until it execs, and a dropped instance's last
        // task may still be finishing. Wait briefly before calling it in use.
        let mut attempt = 0;
        let locked = loop {
            match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Err(rustix::io::Errno::WOULDBLOCK) if attempt < LOCK_ATTEMPTS => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other,
            }
        };
        locked.map_err(|e| {
            Error::runtime(
                RuntimeFailure::EngineUnavailable,
                format!(
                    "process runtime: state directory `{}` is in use by another runtime \
                         instance ({e}); only one may supervise it at a time",
                    layout.root().display()
                ),
            )
        })?;
        // The state directory is the runtime's alone; the workload root is traversable by the
        // workspaces' users (when there are any) but not listable.
        isolation::ensure_dir(layout.root(), None, 0o700)?;
        let work_root_mode = match mode {
            Mode::UserPerWorkspace { .. } => 0o711,
            Mode::SingleWorkspace => 0o700,
        };
        isolation::ensure_dir(layout.work_root(), None, work_root_mode)?;
        let users = Users::open(layout.root(), mode)?;
        announce(&layout, &users);
        Ok(ProcessRuntime {
            shared: Arc::new(Shared {
                layout,
                users,
                supervised: Mutex::new(HashMap::new()),
                name_locks: Mutex::new(HashMap::new()),
                log_watch: OnceLock::new(),
            }),
            _lock: lock,
        })
    }

    /// The (absolute) state directory.
    pub fn state_dir(&self) -> &Path {
        self.shared.layout.root()
    }

    /// The (absolute) workload root: what workloads reach.
    pub fn workload_root(&self) -> &Path {
        self.shared.layout.work_root()
    }

    /// Whether workloads run as the runtime's own user, one workspace only (it cannot switch
    /// users), rather than as a user per workspace.
    pub fn serves_one_workspace(&self) -> bool {
        self.shared.users.mode() == Mode::SingleWorkspace
    }

    /// The directory holding a workspace's volume's data (whether or not it exists yet).
    pub fn volume_dir(&self, workspace: WorkspaceId, name: &str) -> Result<PathBuf> {
        validate_volume_name("name", name)?;
        Ok(self.shared.layout.volume_dir(workspace, name))
    }

    /// A workload's own directory, outside the state directory: its default working directory
    /// and its `HOME` (whether or not it exists yet).
    pub fn workload_dir(&self, workspace: WorkspaceId, name: &str) -> Result<PathBuf> {
        validate_workload_name("name", name)?;
        Ok(self.shared.layout.work_dir(workspace, name))
    }

    /// A workload's record and logs, in the state directory.
    pub fn record_dir(&self, name: &str) -> Result<PathBuf> {
        validate_workload_name("name", name)?;
        Ok(self.shared.layout.record_dir(name))
    }
}

/// Say at start how workloads are kept apart; at `warn` when they are not.
fn announce(layout: &Layout, users: &Users) {
    match users.mode() {
        Mode::UserPerWorkspace { first_uid } => {
            tracing::info!(
                workload_root = %layout.work_root().display(),
                first_uid,
                "Native runtime: each workspace's workloads run as a user of their own."
            );
            let closed = isolation::closed_ancestors(layout.work_root());
            if !closed.is_empty() {
                tracing::warn!(
                    workload_root = %layout.work_root().display(),
                    closed = ?closed,
                    "Native runtime: other users cannot traverse a directory above the workload \
                     root, so workloads (which run as their workspace's user) cannot start; \
                     make it searchable (chmod o+x) or choose another workload root."
                );
            }
        }
        Mode::SingleWorkspace => {
            let serving = users
                .only_workspace()
                .map_or_else(|| "the first to deploy".to_owned(), |w| w.to_string());
            tracing::warn!(
                uid = rustix::process::geteuid().as_raw(),
                workspace = serving,
                "Native runtime: it cannot switch users (not root), so workloads run as this \
                 user and only one workspace is served; run as root to isolate workspaces, or \
                 use Docker."
            );
        }
    }
}

impl Drop for ProcessRuntime {
    /// Stop supervising but leave the processes running: a new instance adopts them.
    fn drop(&mut self) {
        let supervised = std::mem::take(&mut *lock(&self.shared.supervised));
        for workload in supervised.values() {
            workload.abandon();
        }
        if let Some(Some(watch)) = self.shared.log_watch.get() {
            watch.stop();
        }
    }
}

impl Shared {
    async fn lock_name(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = Arc::clone(lock(&self.name_locks).entry(name.to_owned()).or_default());
        mutex.lock_owned().await
    }

    fn log_watch(&self) -> Option<&Arc<LogWatch>> {
        self.log_watch
            .get_or_init(|| {
                LogWatch::start()
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "No inotify; log times come from polling.");
                    })
                    .ok()
            })
            .as_ref()
    }

    fn supervised(&self, name: &str) -> Option<Arc<Workload>> {
        lock(&self.supervised).get(name).cloned()
    }

    /// The workload's record and state: from the supervisor if this instance spawned it,
    /// else from `meta.json` checked against `/proc`.
    fn observe(&self, name: &str) -> Result<Option<Observed>> {
        if let Some(w) = self.supervised(name) {
            let meta = w.meta().clone();
            let state = match meta.phase {
                Phase::Running => WorkloadState::Running {
                    started_at: meta.started_at.unwrap_or(Timestamp::EPOCH),
                },
                Phase::Restarting => WorkloadState::Restarting,
                Phase::Exited => WorkloadState::Exited {
                    code: meta.exit_code,
                    oom_killed: false,
                    finished_at: meta.finished_at,
                },
            };
            return Ok(Some(Observed {
                meta,
                state,
                supervised: Some(w),
            }));
        }
        let Some(meta) = meta::read(&self.layout.meta_path(name))? else {
            return Ok(None);
        };
        let state = if meta.leader.is_some_and(procfs::is_running) {
            WorkloadState::Running {
                started_at: meta.started_at.unwrap_or(Timestamp::EPOCH),
            }
        } else {
            // A record that still says "running" outlived its process unobserved (or its pid
            // now names another process): the exit code and time are unknown.
            let known = meta.phase != Phase::Running;
            WorkloadState::Exited {
                code: meta.exit_code.filter(|_| known),
                oom_killed: false,
                finished_at: meta.finished_at.filter(|_| known),
            }
        };
        Ok(Some(Observed {
            meta,
            state,
            supervised: None,
        }))
    }

    fn observe_existing(&self, id: &WorkloadId) -> Result<Observed> {
        let found = if validate_workload_name("id", &id.0).is_ok() {
            self.observe(&id.0)?
        } else {
            None
        };
        found.ok_or_else(|| {
            Error::runtime(
                RuntimeFailure::NotFound,
                format!("workload `{id}` not found in the process runtime"),
            )
        })
    }

    /// Every workload in the state directory, by name.
    fn observe_all(&self) -> Result<Vec<Observed>> {
        let dir = self.layout.workloads_dir();
        let entries = std::fs::read_dir(&dir).map_err(|e| io_error("list", &dir, &e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &dir, &e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if validate_workload_name("name", &name).is_err() {
                continue;
            }
            match self.observe(&name) {
                Ok(Some(o)) => found.push(o),
                Ok(None) => {}
                // One damaged record must not hide every other workload.
                Err(e) => tracing::warn!(workload = name, error = %e, "Skipping workload."),
            }
        }
        found.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        Ok(found)
    }

    /// Stop a workload (the caller holds its name lock). Ok if it is already stopped.
    async fn stop_locked(&self, name: &str, grace: Duration) -> Result<()> {
        if let Some(w) = self.supervised(name) {
            let leader = {
                let mut m = w.meta();
                m.stop_requested = true;
                if m.phase == Phase::Restarting {
                    // The supervisor is in its back-off; it will see the flag and not spawn.
                    m.phase = Phase::Exited;
                }
                supervisor::persist(&self.layout, &m);
                m.leader.filter(|_| m.phase == Phase::Running)
            };
            if let Some(leader) = leader {
                group::terminate(name, leader, grace).await?;
                let deadline = tokio::time::Instant::now() + EXIT_RECORD_WAIT;
                while w.meta().phase == Phase::Running && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            return Ok(());
        }
        let path = self.layout.meta_path(name);
        let Some(mut meta) = meta::read(&path)? else {
            return Err(Error::runtime(
                RuntimeFailure::NotFound,
                format!("workload `{name}` not found in the process runtime"),
            ));
        };
        meta.stop_requested = true;
        if let Some(leader) = meta.leader {
            let was_running = procfs::is_running(leader);
            group::terminate(name, leader, grace).await?;
            if meta.phase != Phase::Exited {
                meta.phase = Phase::Exited;
                if was_running {
                    // We ended it ourselves, but it is not our child: its code is unknown.
                    meta.exit_code = None;
                    meta.finished_at = Some(Timestamp::now());
                }
            }
        }
        meta::write(&path, &meta)
    }

    /// `<work_root>/<scope>/<kind>/`, created or fixed: the runtime's, and (with users) in
    /// the workspace's group so only its user may traverse it.
    fn workspace_kind_dir(
        &self,
        workspace: WorkspaceId,
        kind: &str,
        run_as: Option<RunAs>,
    ) -> Result<PathBuf> {
        let (owner, mode) = match run_as {
            Some(user) => (Some((rustix::process::geteuid().as_raw(), user.gid)), 0o710),
            None => (None, 0o700),
        };
        let scope_dir = self.layout.workspace_dir(workspace);
        isolation::ensure_dir(&scope_dir, owner, mode)?;
        let dir = scope_dir.join(kind);
        isolation::ensure_dir(&dir, owner, mode)?;
        Ok(dir)
    }

    /// A workload's own directory (working directory and HOME), created or fixed.
    fn work_dir(&self, owner: &Owner, name: &str, run_as: Option<RunAs>) -> Result<PathBuf> {
        self.workspace_kind_dir(owner.workspace, "workloads", run_as)?;
        let dir = self.layout.work_dir(owner.workspace, name);
        isolation::ensure_dir(&dir, run_as.map(|u| (u.uid, u.gid)), 0o700)?;
        Ok(dir)
    }
}

/// Everything about a spec that can be refused before touching anything.
fn validate_spec(spec: &WorkloadSpec) -> Result<()> {
    validate_workload_name("spec.name", &spec.name)?;
    match &spec.command {
        None => {
            return Err(Error::runtime(
                RuntimeFailure::Unsupported,
                format!(
                    "workload `{}`: the process runtime runs a command, not an image; give the \
                     service a start command (the argument vector to run)",
                    spec.name
                ),
            ));
        }
        Some(argv) if argv.is_empty() || argv[0].is_empty() => {
            return Err(InvalidInput::new(
                "spec.command",
                "empty",
                "the command must name a program to run",
            )
            .into());
        }
        Some(argv) => {
            if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
                return Err(InvalidInput::new(
                    format!("spec.command[{i}]"),
                    "charset",
                    "a command argument cannot contain a NUL byte",
                )
                .into());
            }
        }
    }
    env::validate(spec)?;
    for (i, volume) in spec.volumes.iter().enumerate() {
        validate_volume_name(&format!("spec.volumes[{i}].name"), &volume.name)?;
    }
    Ok(())
}

/// The spec's working directory if it is usable here, else the workload's own directory.
fn working_dir(spec: &WorkloadSpec, workload_dir: &Path) -> PathBuf {
    match spec.working_dir.as_deref().map(Path::new) {
        Some(dir) if dir.is_absolute() && dir.is_dir() => dir.to_path_buf(),
        Some(dir) => {
            tracing::debug!(
                workload = spec.name,
                working_dir = %dir.display(),
                "Working directory is not an existing absolute path here; using the workload's."
            );
            workload_dir.to_path_buf()
        }
        None => workload_dir.to_path_buf(),
    }
}

/// CPU ticks per live process of a workload.
fn cpu_ticks(leader: Leader) -> HashMap<i32, u64> {
    let mut ticks: HashMap<i32, u64> = procfs::group_members(leader.pid)
        .into_iter()
        .map(|(pid, s)| (pid, s.utime + s.stime))
        .collect();
    if let Some(s) = procfs::stat(leader.pid).filter(|s| s.start_ticks == leader.start_ticks) {
        ticks.insert(leader.pid, s.utime + s.stime);
    }
    ticks
}

#[async_trait::async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> String {
        "process".to_owned()
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities {
            isolated_networks: false,
            resource_limits: false,
            images: false,
            terminals: true,
        }
    }

    /// Nothing to create: native workloads share the host's network (and its loopback).
    async fn ensure_network(&self, _name: &str, _labels: &BTreeMap<String, String>) -> Result<()> {
        Ok(())
    }

    /// Nothing to remove; see [`ensure_network`](Self::ensure_network).
    async fn remove_network(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    /// Labels name the owning workspace (`clank.workspace`): its directory is made now, and
    /// a workspace the runtime does not serve is refused. Without one, the directory is made
    /// by the first `start` that mounts the volume, in that workload's workspace.
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.shared.ensure_volume(name, labels)
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.shared.remove_volume(name)
    }

    /// The workspace's directory `from` copied into a new directory `to` (created as
    /// `ensure_volume` creates it), the copy given to the workspace's user.
    async fn copy_volume(
        &self,
        from: &str,
        to: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64> {
        self.shared.copy_volume(from, to, labels).await
    }

    /// Nothing to fetch: a native workload runs a command already on this host. The spec is
    /// checked as `start` checks it.
    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        validate_spec(spec)?;
        self.shared.users.admit(spec.owner.workspace, false)?;
        Ok(())
    }

    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        validate_spec(spec)?;
        let shared = &self.shared;
        let name = spec.name.as_str();
        let _guard = shared.lock_name(name).await;

        let previous = shared.observe(name)?;
        if let Some(found) = &previous {
            if found.meta.owner != spec.owner {
                return Err(Error::runtime(
                    RuntimeFailure::NameConflict,
                    format!(
                        "workload name `{name}` is taken by deployment {} (service {}, {} \
                         replica {}); remove it or choose another name",
                        found.meta.owner.deployment,
                        found.meta.owner.service,
                        found.meta.owner.process,
                        found.meta.owner.replica
                    ),
                ));
            }
            if found.is_running() {
                return Ok(found.status());
            }
            // Exited: start it again in place (logs are kept, as `docker start` keeps them).
            if let Some(w) = &found.supervised {
                w.abandon();
                lock(&shared.supervised).remove(name);
            }
            if let Some(leader) = found.meta.leader {
                group::terminate(name, leader, Duration::ZERO).await?;
            }
        }

        let run_as = shared.users.admit(spec.owner.workspace, true)?;
        let port = ports::choose(spec)?;
        let volumes = shared.prepare_volumes(spec, run_as)?;
        let dir = shared.layout.record_dir(name);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("create", &dir, &e))?;
        let home = shared.layout.work_dir(spec.owner.workspace, name);
        // A failed first start leaves nothing behind; a failed restart keeps the old record.
        let clean_up = || {
            if previous.is_none() {
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_dir_all(&home);
            }
        };
        shared
            .work_dir(&spec.owner, name, run_as)
            .inspect_err(|_| clean_up())?;
        let cwd = working_dir(spec, &home);
        let env = env::build(spec, port, &volumes, &home);
        let stamper = logs::Stamper::new(&shared.layout, name);
        let (child, leader) = supervisor::spawn(&shared.layout, spec, &env, &cwd, run_as)
            .inspect_err(|_| clean_up())?;
        let meta = Meta {
            format: meta::FORMAT,
            name: name.to_owned(),
            owner: spec.owner.clone(),
            leader: Some(leader),
            port,
            cwd,
            volumes: spec.volumes.iter().map(|v| v.name.clone()).collect(),
            restart: spec.restart,
            restart_count: 0,
            phase: Phase::Running,
            started_at: Some(Timestamp::now()),
            exit_code: None,
            finished_at: None,
            stop_requested: false,
            run_as,
        };
        if let Err(e) = meta::write(&shared.layout.meta_path(name), &meta) {
            // Untracked processes are leaks: end it before reporting.
            group::signal(leader, Signal::KILL);
            drop(child);
            clean_up();
            return Err(e);
        }
        tracing::info!(
            workload = name,
            pid = leader.pid,
            ?port,
            uid = run_as.map(|u| u.uid),
            "Workload started."
        );
        let workload = supervisor::supervise(
            shared.layout.clone(),
            spec.clone(),
            volumes,
            home,
            meta,
            child,
            stamper,
        );
        if let Some(watch) = shared.log_watch() {
            watch.watch(&shared.layout, &workload);
            // Output written before the watch existed.
            workload.stamp();
        }
        lock(&shared.supervised).insert(name.to_owned(), workload);
        shared
            .observe(name)?
            .map(|o| o.status())
            .ok_or_else(|| Error::Internal(format!("workload `{name}` vanished after start")))
    }

    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        if validate_workload_name("id", &id.0).is_err() {
            return Ok(None);
        }
        Ok(self.shared.observe(&id.0)?.map(|o| o.status()))
    }

    async fn stop(&self, id: &WorkloadId, grace: Duration) -> Result<()> {
        self.shared.observe_existing(id)?;
        let _guard = self.shared.lock_name(&id.0).await;
        self.shared.stop_locked(&id.0, grace).await
    }

    async fn remove(&self, id: &WorkloadId) -> Result<()> {
        if validate_workload_name("id", &id.0).is_err() {
            return Ok(());
        }
        let shared = &self.shared;
        let name = id.0.as_str();
        let _guard = shared.lock_name(name).await;
        let mut dirs = vec![shared.layout.record_dir(name)];
        if let Some(found) = shared.observe(name)? {
            dirs.push(shared.layout.work_dir(found.meta.owner.workspace, name));
            // Like `docker rm -f`: no grace period.
            shared.stop_locked(name, Duration::ZERO).await?;
        }
        if let Some(w) = lock(&shared.supervised).remove(name) {
            w.abandon();
        }
        for dir in dirs {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &dir, &e)),
            }
        }
        tracing::info!(workload = name, "Workload removed.");
        Ok(())
    }

    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        Ok(self
            .shared
            .observe_all()?
            .iter()
            .filter(|o| filter.matches(&o.meta.owner))
            .map(Observed::status)
            .collect())
    }

    async fn logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox> {
        let found = self.shared.observe_existing(id)?;
        // Output of a workload this instance supervises is stamped within one poll; until
        // then, "now" is the right time for it. For others, undated output stays undated.
        let recent = found.supervised.is_some().then(Timestamp::now);
        let shared = Arc::clone(&self.shared);
        let name = id.0.clone();
        let is_live = move || {
            shared
                .observe(&name)
                .ok()
                .flatten()
                .is_some_and(|o| o.is_running())
        };
        logs::stream(
            &self.shared.layout,
            &id.0,
            options.tail,
            options.follow,
            recent,
            is_live,
        )
        .await
    }

    async fn exec_interactive(
        &self,
        id: &WorkloadId,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        terminal::spawn(id, command, size, self.exec_context(id)?)
    }

    async fn exec(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput> {
        exec::run(id, request, || self.exec_context(id)).await
    }

    async fn stats(&self, id: &WorkloadId) -> Result<WorkloadStats> {
        let found = self.shared.observe_existing(id)?;
        let leader = match (&found.state, found.meta.leader) {
            (WorkloadState::Running { .. }, Some(leader)) => leader,
            // Like a stopped container: nothing running, nothing used.
            _ => return Ok(WorkloadStats::default()),
        };
        let before = cpu_ticks(leader);
        let started = tokio::time::Instant::now();
        tokio::time::sleep(CPU_SAMPLE).await;
        let after = cpu_ticks(leader);
        let elapsed = started.elapsed().as_secs_f64();
        // A process born during the sample counts from zero.
        let used: u64 = after
            .iter()
            .map(|(pid, t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
            .sum();
        let cpu_percent = used as f64 / procfs::ticks_per_second() as f64 / elapsed * 100.0;
        let memory_bytes = after
            .keys()
            .filter_map(|pid| procfs::resident_bytes(*pid))
            .sum();
        Ok(WorkloadStats {
            cpu_percent,
            memory_bytes,
            memory_limit_bytes: None,
        })
    }
}
