//! The `Runtime` contract: every property a runtime (Docker, native processes, a remote agent)
//! must have, as one public async fn each, run against the real thing with the
//! [test app](crate::testapp).
//!
//! A runtime plugs in through a [`Fixture`]: how to get a fresh handle on it, and how it runs
//! the test app ([`Fixture::app_spec`]). [`crate::runtime_contract_tests!`] then instantiates
//! every property as a named `#[test]`:
//!
//! ```ignore
//! async fn docker() -> Option<DockerFixture> { /* connect, or skip outside CI */ }
//! clank_testkit::runtime_contract_tests!(docker_contract, docker);
//! ```
//!
//! The constructor returns `None` to skip (an engine missing outside CI); it must panic instead
//! when `CI` is set — see [`skip_or_fail`].
//!
//! Each property runs in its own workspace (a fresh [`WorkspaceId`]) with names prefixed by a
//! random run id, so properties run in parallel, and [`Harness`] removes every workload of that
//! workspace and every network and volume the property registered afterwards — also when the
//! property panicked or timed out.
//!
//! Properties that need what only some runtimes do (private networks, resource limits) check
//! [`Runtime::capabilities`] and pass with a note when the runtime does not claim it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::config::EnvValue;
use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogLine, LogOptions, LogStream, NetworkAttachment, Owner, OwnerFilter,
    RestartPolicy, Runtime, WorkloadId, WorkloadSpec, WorkloadState, WorkloadStatus,
};
use clank_core::secret::SecretString;
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::{FutureExt, StreamExt};

use crate::http;
use crate::testapp::BUSYBOX;

/// Longest a property may run before it fails (cleanup still runs).
pub const PROPERTY_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a workload may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How a runtime under test runs the test app.
#[async_trait::async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// A new handle on the runtime, over the same backing state (engine, state directory) for
    /// the fixture's whole life. Called once per property, and again by the adoption property
    /// only after the first handle was dropped — so a runtime that allows one live instance at
    /// a time works; cleanup reuses the live handle.
    async fn connect(&self) -> Result<Box<dyn Runtime>>;

    /// A spec that runs `app` on this runtime: the test app itself (or `app.command` instead,
    /// run in the app's directory), listening on a port published to loopback, with `app.env`
    /// added to its environment, `app.network` attached, and — when `app.data_volume` is set —
    /// that named volume mounted and its path in the app's `DATA_DIR`.
    ///
    /// Properties may adjust the result (restart policy, limits) before starting it.
    fn app_spec(&self, app: &TestApp) -> WorkloadSpec;

    /// Runs after every property, pass or fail, after the harness removed what it tracked.
    async fn cleanup(&self) {}

    /// Delete a volume the runtime keeps (its `remove_volume` answers `Unsupported`: a remote
    /// server's agent never deletes data) by other means, so a test run leaves none behind.
    async fn remove_kept_volume(&self, name: &str) {
        let _ = name;
    }

    /// Delete a network the runtime's `remove_network` only forgets (a remote server's agent
    /// removes it when it next applies its desired state, which a stopped agent never does),
    /// after [`Fixture::cleanup`], so a test run leaves none behind.
    async fn remove_kept_network(&self, name: &str) {
        let _ = name;
    }
}

/// What a property wants to run; [`Fixture::app_spec`] turns it into a [`WorkloadSpec`].
#[derive(Debug, Clone)]
pub struct TestApp {
    pub name: String,
    pub owner: Owner,
    /// Added to the app's environment (`HEALTH`, test values, secrets).
    pub env: Vec<(String, EnvValue)>,
    /// An argument vector to run instead of the app, in the app's working directory.
    pub command: Option<Vec<String>>,
    /// A named volume to mount; the app finds its path in `DATA_DIR`.
    pub data_volume: Option<String>,
    pub network: Option<NetworkAttachment>,
}

impl TestApp {
    /// Where [`TestApp::container_spec`] mounts the data volume.
    pub const DATA_MOUNT: &'static str = "/data";

    /// The test app as a container (the Docker runtime, the agent's engine): the image's own
    /// command (or `command`), its port published on an ephemeral loopback port, the volume at
    /// [`TestApp::DATA_MOUNT`] with its path in `DATA_DIR`.
    pub fn container_spec(&self) -> WorkloadSpec {
        let mut env = vec![(
            "PORT".to_owned(),
            EnvValue::Plain(crate::testapp::DEFAULT_PORT.to_string()),
        )];
        let mut volumes = Vec::new();
        if let Some(volume) = &self.data_volume {
            env.push((
                "DATA_DIR".to_owned(),
                EnvValue::Plain(Self::DATA_MOUNT.to_owned()),
            ));
            volumes.push(clank_core::model::VolumeMount {
                name: volume.clone(),
                mount_path: Self::DATA_MOUNT.to_owned(),
                shared: false,
            });
        }
        env.extend(self.env.iter().cloned());
        WorkloadSpec {
            name: self.name.clone(),
            owner: self.owner.clone(),
            image: Some(
                crate::testapp::IMAGE
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: {e}", crate::testapp::IMAGE)),
            ),
            command: self.command.clone(),
            env,
            working_dir: None,
            port: Some(crate::testapp::DEFAULT_PORT),
            publish: Some(clank_core::runtime::PortBinding::loopback()),
            network: self.network.clone(),
            volumes,
            cpu_limit: 1.0,
            memory_limit_mb: 64,
            restart: RestartPolicy::Never,
        }
    }
}

/// Return `None` (skip the test) outside CI, panic in CI: a skipped infrastructure test proves
/// nothing, so CI must never pass by skipping.
pub fn skip_or_fail<T>(what: &str, why: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required in CI (CI is set) but unavailable: {why}");
    }
    eprintln!(
        "\n==================== SKIPPED ====================\n\
         {what} is unavailable: {why}\n\
         (this test fails instead of skipping when CI is set)\n\
         =================================================\n"
    );
    None
}

/// One property's world: the fixture, the current runtime handle, and what to clean up.
pub struct Harness<F> {
    pub fixture: F,
    runtime: Mutex<Option<Arc<dyn Runtime>>>,
    /// Random, lowercase hex: prefixes every name this property creates.
    pub run: String,
    /// Every owner this property makes is in this workspace; cleanup removes all of it.
    pub workspace: WorkspaceId,
    networks: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
}

impl<F> std::fmt::Debug for Harness<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("run", &self.run)
            .field("workspace", &self.workspace)
            .finish_non_exhaustive()
    }
}

impl<F: Fixture> Harness<F> {
    /// The current runtime handle.
    pub fn runtime(&self) -> Arc<dyn Runtime> {
        lock(&self.runtime)
            .clone()
            .unwrap_or_else(|| panic!("the harness has no runtime (a reconnect failed earlier)"))
    }

    /// Drop the current runtime handle (the caller must have dropped its clones) and connect a
    /// new one, as a restarted control plane would.
    pub async fn reconnect(&self) -> Arc<dyn Runtime> {
        let old = lock(&self.runtime).take();
        if let Some(old) = old {
            let others = Arc::strong_count(&old) - 1;
            assert_eq!(
                others, 0,
                "the property still holds {others} clone(s) of the old runtime"
            );
            drop(old);
        }
        let fresh: Arc<dyn Runtime> = Arc::from(
            self.fixture
                .connect()
                .await
                .unwrap_or_else(|e| panic!("reconnecting to the runtime failed: {e}")),
        );
        *lock(&self.runtime) = Some(fresh.clone());
        fresh
    }

    /// A workload/network name unique to this property run: `ct-<run>-<suffix>`.
    pub fn name(&self, suffix: &str) -> String {
        format!("ct-{}-{suffix}", self.run)
    }

    /// A fresh owner (new project, environment, service, deployment) in this workspace.
    pub fn owner(&self) -> Owner {
        Owner {
            workspace: self.workspace,
            project: ProjectId::new(),
            environment: EnvironmentId::new(),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            process: "web".to_owned(),
            replica: 0,
        }
    }

    /// The test app under `name(suffix)`, with a fresh owner.
    pub fn app(&self, suffix: &str) -> TestApp {
        TestApp {
            name: self.name(suffix),
            owner: self.owner(),
            env: Vec::new(),
            command: None,
            data_volume: None,
            network: None,
        }
    }

    /// The fixture's spec for `app`.
    pub fn spec(&self, app: &TestApp) -> WorkloadSpec {
        self.fixture.app_spec(app)
    }

    /// A network name for this run, removed at cleanup.
    pub fn network(&self, suffix: &str) -> String {
        let name = self.name(suffix);
        lock(&self.networks).push(name.clone());
        name
    }

    /// A volume name for this run, removed at cleanup.
    pub fn volume(&self, suffix: &str) -> String {
        let name = self.name(suffix);
        lock(&self.volumes).push(name.clone());
        name
    }

    /// Labels for this run's networks and volumes.
    pub fn project_labels(&self, project: ProjectId) -> BTreeMap<String, String> {
        let mut labels = Owner::labels_for_project(self.workspace, project);
        labels.insert("clank.test-run".to_owned(), self.run.clone());
        labels
    }

    /// Remove every workload of this workspace, then the networks and volumes registered.
    /// Best effort: reports what it could not remove on stderr, never panics.
    pub async fn cleanup(&self) {
        // The current handle, not a new one: a runtime may allow one instance at a time (the
        // native runtime locks its state directory).
        let current = lock(&self.runtime).clone();
        let runtime: Arc<dyn Runtime> = match current {
            Some(r) => r,
            None => match self.fixture.connect().await {
                Ok(r) => Arc::from(r),
                Err(e) => {
                    eprintln!("cleanup of run {}: cannot connect: {e}", self.run);
                    self.fixture.cleanup().await;
                    return;
                }
            },
        };
        let filter = OwnerFilter {
            workspace: Some(self.workspace),
            ..OwnerFilter::default()
        };
        match runtime.list(&filter).await {
            Ok(workloads) => {
                for w in workloads {
                    if let Err(e) = runtime.remove(&w.id).await {
                        eprintln!("cleanup of run {}: remove {}: {e}", self.run, w.name);
                    }
                }
            }
            Err(e) => eprintln!("cleanup of run {}: list: {e}", self.run),
        }
        let networks = std::mem::take(&mut *lock(&self.networks));
        for n in &networks {
            if let Err(e) = runtime.remove_network(n).await {
                eprintln!("cleanup of run {}: remove network {n}: {e}", self.run);
            }
        }
        let volumes = std::mem::take(&mut *lock(&self.volumes));
        for v in volumes {
            match runtime.remove_volume(&v).await {
                Ok(()) => {}
                Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
                    self.fixture.remove_kept_volume(&v).await;
                }
                Err(e) => eprintln!("cleanup of run {}: remove volume {v}: {e}", self.run),
            }
        }
        self.fixture.cleanup().await;
        for n in &networks {
            self.fixture.remove_kept_network(n).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking property may poison a lock; cleanup must still get through.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Run one property on a fresh fixture from `make`, in a multi-threaded tokio runtime, then
/// clean up; a panic or a timeout in the property fails the test after cleanup.
pub fn run_property<F, M, MF, P, PF>(make: M, property: P)
where
    F: Fixture,
    M: FnOnce() -> MF,
    MF: Future<Output = Option<F>>,
    P: FnOnce(Arc<Harness<F>>) -> PF,
    PF: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime for a runtime property: {e}"));
    runtime.block_on(async move {
        let Some(fixture) = make().await else { return };
        let first: Arc<dyn Runtime> = Arc::from(
            fixture
                .connect()
                .await
                .unwrap_or_else(|e| panic!("connecting to the runtime under test failed: {e}")),
        );
        let harness = Arc::new(Harness {
            fixture,
            runtime: Mutex::new(Some(first)),
            run: format!("{:010x}", rand::random::<u64>() & 0xff_ffff_ffff),
            workspace: WorkspaceId::new(),
            networks: Mutex::new(Vec::new()),
            volumes: Mutex::new(Vec::new()),
        });
        let outcome = AssertUnwindSafe(tokio::time::timeout(
            PROPERTY_TIMEOUT,
            property(harness.clone()),
        ))
        .catch_unwind()
        .await;
        harness.cleanup().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the property did not finish within {PROPERTY_TIMEOUT:?}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
}

/// Instantiate every runtime-contract property as a `#[test]` in a new module `$module`, each
/// running on a fixture from `$make` (an async fn or closure returning `Option<impl Fixture>`).
#[macro_export]
macro_rules! runtime_contract_tests {
    ($module:ident, $make:expr $(,)?) => {
        $crate::runtime_contract_tests!(@expand $module, $make;
            lifecycle_start_serve_log_exec_stop_remove,
            unknown_workloads_are_absent_or_not_found,
            start_is_idempotent_by_name,
            prepare_starts_nothing_and_start_follows,
            start_with_a_taken_name_and_another_owner_is_a_name_conflict,
            volume_data_survives_replacing_the_workload,
            a_volume_copy_carries_the_data_into_a_new_volume_only,
            list_by_owner_returns_exactly_the_matching_workloads,
            a_new_runtime_adopts_and_controls_workloads_of_the_old_one,
            logs_follow_yields_lines_written_after_the_stream_opened,
            logs_tail_returns_only_the_last_lines,
            a_command_that_exits_at_once_shows_exited_with_its_code,
            stop_kills_a_workload_that_ignores_sigterm_after_the_grace_period,
            exec_reports_exit_code_and_both_streams_and_honours_its_timeout,
            an_interactive_exec_runs_on_a_resizable_terminal_and_reports_its_exit_code,
            env_values_and_secrets_reach_the_workload,
            health_follows_the_health_env_and_the_state_file,
            stats_report_memory_in_use,
            networks_and_volumes_are_idempotent,
            services_in_one_project_reach_each_other_by_name_and_other_projects_cannot,
            memory_limit_is_enforced_by_an_oom_kill,
        );
    };
    (@expand $module:ident, $make:expr; $($property:ident),+ $(,)?) => {
        mod $module {
            // The constructor expression is written in the caller's module.
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $property() {
                    $crate::runtime::run_property($make, $crate::runtime::$property);
                }
            )+
        }
    };
}

// ---- properties ------------------------------------------------------------------------------

/// The contract's properties, one public async fn each (instantiated by
/// [`runtime_contract_tests!`]).
mod properties;
pub use properties::*;

/// An argument vector from string slices.
pub fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

fn sleep_forever() -> Vec<String> {
    argv(&[BUSYBOX, "sleep", "3600"])
}

fn service_filter(owner: &Owner) -> OwnerFilter {
    OwnerFilter {
        service: Some(owner.service),
        ..OwnerFilter::default()
    }
}

fn exec_request(args: &[&str]) -> ExecRequest {
    ExecRequest {
        command: argv(args),
        tty: false,
        timeout: Duration::from_secs(30),
    }
}

#[track_caller]
fn assert_failure<T: std::fmt::Debug>(result: Result<T>, want: RuntimeFailure, what: &str) {
    match result {
        Err(e) if e.runtime_failure() == Some(want) => {}
        Err(e) => panic!(
            "{what}: expected {want:?}, got {:?}: {e}",
            e.runtime_failure()
        ),
        Ok(v) => panic!("{what}: expected {want:?}, got Ok({v:?})"),
    }
}

/// Start `spec`, panicking with the error.
pub async fn start(rt: &dyn Runtime, spec: &WorkloadSpec) -> WorkloadStatus {
    rt.start(spec)
        .await
        .unwrap_or_else(|e| panic!("start {} failed: {e}", spec.name))
}

async fn inspect(rt: &dyn Runtime, id: &WorkloadId) -> Option<WorkloadStatus> {
    rt.inspect(id)
        .await
        .unwrap_or_else(|e| panic!("inspect {id} failed: {e}"))
}

async fn list(rt: &dyn Runtime, filter: &OwnerFilter) -> Vec<WorkloadStatus> {
    rt.list(filter)
        .await
        .unwrap_or_else(|e| panic!("list {filter:?} failed: {e}"))
}

/// Run `args` in the workload, panicking if the runtime fails (a non-zero exit is not a
/// failure: it is in the output).
pub async fn exec(rt: &dyn Runtime, id: &WorkloadId, args: &[&str]) -> ExecOutput {
    rt.exec(id, &exec_request(args))
        .await
        .unwrap_or_else(|e| panic!("exec {args:?} in {id} failed: {e}"))
}

/// Poll `inspect` until `done(state)`, for at most [`READY_TIMEOUT`].
pub async fn wait_state(
    rt: &dyn Runtime,
    id: &WorkloadId,
    what: &str,
    done: impl Fn(&WorkloadState) -> bool,
) -> WorkloadStatus {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let status = inspect(rt, id).await;
        if let Some(s) = &status {
            if done(&s.state) {
                return s.clone();
            }
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{id} did not become {what} within {READY_TIMEOUT:?}; last: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the workload runs, and return its status.
pub async fn wait_running(rt: &dyn Runtime, id: &WorkloadId) -> WorkloadStatus {
    wait_state(rt, id, "running", |s| {
        matches!(s, WorkloadState::Running { .. })
    })
    .await
}

/// Wait until the workload runs, and return its endpoint.
pub async fn wait_endpoint(rt: &dyn Runtime, id: &WorkloadId) -> SocketAddr {
    let status = wait_running(rt, id).await;
    status
        .endpoint
        .unwrap_or_else(|| panic!("{id} is running without an endpoint: {status:?}"))
}

/// Poll `GET path` until it answers `status`.
pub async fn wait_http(addr: SocketAddr, path: &str, status: u16) -> http::Response {
    http::wait_for_status(addr, path, status, READY_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The workload's whole log (or its tail), without following.
pub async fn logs(rt: &dyn Runtime, id: &WorkloadId, options: LogOptions) -> Vec<LogLine> {
    let mut stream = rt
        .logs(id, options)
        .await
        .unwrap_or_else(|e| panic!("logs of {id} failed: {e}"));
    let mut lines = Vec::new();
    let read_all = async {
        while let Some(line) = stream.next().await {
            lines.push(line.unwrap_or_else(|e| panic!("log stream of {id} failed: {e}")));
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .is_err()
    {
        panic!("a log stream without follow did not end");
    }
    lines
}

/// Poll the logs until a line contains `needle`; returns that line.
pub async fn wait_log(rt: &dyn Runtime, id: &WorkloadId, needle: &str) -> LogLine {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let lines = logs(rt, id, LogOptions::default()).await;
        if let Some(line) = lines.iter().find(|l| l.line.contains(needle)) {
            return line.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("no log line of {id} contains {needle:?} within {READY_TIMEOUT:?}: {lines:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Map a `Result` error to its runtime failure, for assertions outside this module.
pub fn failure_of<T>(result: &Result<T>) -> Option<RuntimeFailure> {
    result.as_ref().err().and_then(Error::runtime_failure)
}
