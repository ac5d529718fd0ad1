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
            list_by_owner_returns_exactly_the_matching_workloads,
            a_new_runtime_adopts_and_controls_workloads_of_the_old_one,
            logs_follow_yields_lines_written_after_the_stream_opened,
            logs_tail_returns_only_the_last_lines,
            a_command_that_exits_at_once_shows_exited_with_its_code,
            stop_kills_a_workload_that_ignores_sigterm_after_the_grace_period,
            exec_reports_exit_code_and_both_streams_and_honours_its_timeout,
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

/// The whole life of a workload: start → running with an endpoint → `/health` 200 → its start
/// line in the logs → exec → stop (twice) → exited → remove (twice) → gone.
pub async fn lifecycle_start_serve_log_exec_stop_remove<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("life"));
    let started = start(&*rt, &spec).await;
    assert_eq!(started.name, spec.name);
    assert_eq!(started.owner, spec.owner);

    let running = wait_running(&*rt, &started.id).await;
    assert_eq!(
        running.id, started.id,
        "inspect reports the id start returned"
    );
    let endpoint = running
        .endpoint
        .unwrap_or_else(|| panic!("a workload with a published port reports its endpoint"));
    let health = wait_http(endpoint, "/health", 200).await;
    assert_eq!(health.body.trim(), "ok");

    let line = wait_log(&*rt, &started.id, "testapp listening").await;
    assert_eq!(
        line.stream,
        LogStream::Stdout,
        "the start line is on stdout"
    );

    let out = exec(&*rt, &started.id, &[BUSYBOX, "echo", "hello from exec"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "hello from exec\n");

    rt.stop(&started.id, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("stop failed: {e}"));
    let stopped = inspect(&*rt, &started.id)
        .await
        .unwrap_or_else(|| panic!("a stopped workload is still there until removed"));
    match stopped.state {
        WorkloadState::Exited {
            code, oom_killed, ..
        } => {
            assert_eq!(code, Some(0), "the app exits 0 on SIGTERM");
            assert!(!oom_killed);
        }
        other => panic!("after stop the workload should be exited, not {other:?}"),
    }
    rt.stop(&started.id, Duration::from_secs(1))
        .await
        .unwrap_or_else(|e| panic!("stopping a stopped workload must be Ok: {e}"));

    rt.remove(&started.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));
    assert_eq!(inspect(&*rt, &started.id).await, None, "removed means gone");
    rt.remove(&started.id)
        .await
        .unwrap_or_else(|e| panic!("removing a removed workload must be Ok: {e}"));
}

/// An id nobody started: `inspect` is `None` and `remove` Ok (both idempotent); `stop`, `logs`,
/// `exec` and `stats` fail with `NotFound`.
pub async fn unknown_workloads_are_absent_or_not_found<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let id = WorkloadId(h.name("never-started"));
    assert_eq!(inspect(&*rt, &id).await, None);
    rt.remove(&id)
        .await
        .unwrap_or_else(|e| panic!("removing an unknown workload must be Ok: {e}"));
    assert_failure(
        rt.stop(&id, Duration::from_secs(1)).await,
        RuntimeFailure::NotFound,
        "stop",
    );
    assert_failure(
        rt.exec(&id, &exec_request(&[BUSYBOX, "true"])).await,
        RuntimeFailure::NotFound,
        "exec",
    );
    assert_failure(rt.stats(&id).await, RuntimeFailure::NotFound, "stats");
    assert_failure(
        rt.logs(&id, LogOptions::default()).await.map(|_| ()),
        RuntimeFailure::NotFound,
        "logs",
    );
}

/// Starting the same spec again (also concurrently) returns the same workload; there is only
/// ever one.
pub async fn start_is_idempotent_by_name<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("idem"));
    let first = start(&*rt, &spec).await;
    let again = start(&*rt, &spec).await;
    assert_eq!(
        again.id, first.id,
        "a second start returns the same workload"
    );

    let other = h.spec(&h.app("idem-race"));
    let (a, b) = tokio::join!(rt.start(&other), rt.start(&other));
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("concurrent start failed: {e}")),
        b.unwrap_or_else(|e| panic!("concurrent start failed: {e}")),
    );
    assert_eq!(
        a.id, b.id,
        "two concurrent starts of one spec make one workload"
    );

    for s in [&spec, &other] {
        let listed = list(&*rt, &service_filter(&s.owner)).await;
        assert_eq!(
            listed.len(),
            1,
            "exactly one workload for {}: {listed:?}",
            s.name
        );
    }
}

/// `prepare` (twice: idempotent) readies a spec without starting anything — a stop-first
/// cutover relies on it to fail before it stops the running version — and `start` follows.
pub async fn prepare_starts_nothing_and_start_follows<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let spec = h.spec(&h.app("prep"));
    for _ in 0..2 {
        rt.prepare(&spec)
            .await
            .unwrap_or_else(|e| panic!("prepare failed: {e}"));
    }
    let listed = list(&*rt, &service_filter(&spec.owner)).await;
    assert!(listed.is_empty(), "prepare started something: {listed:?}");
    let started = start(&*rt, &spec).await;
    assert_eq!(started.name, spec.name);
}

/// A name taken by a workload of another owner is a `NameConflict`, and the existing workload
/// is left alone.
pub async fn start_with_a_taken_name_and_another_owner_is_a_name_conflict<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let app = h.app("taken");
    let first = start(&*rt, &h.spec(&app)).await;
    let mut intruder = app.clone();
    intruder.owner = h.owner();
    assert_failure(
        rt.start(&h.spec(&intruder)).await.map(|_| ()),
        RuntimeFailure::NameConflict,
        "start under a taken name",
    );
    let still = inspect(&*rt, &first.id)
        .await
        .unwrap_or_else(|| panic!("the first workload must survive the conflict"));
    assert_eq!(still.owner, app.owner);
}

/// Data written to a volume by one workload is read by its replacement after the first is
/// removed (removing a workload never removes its volumes); `remove_volume` deletes it, or
/// answers `Unsupported` on a runtime that never deletes data.
pub async fn volume_data_survives_replacing_the_workload<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let volume = h.volume("data");
    let owner = h.owner();
    rt.ensure_volume(&volume, &h.project_labels(owner.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_volume failed: {e}"));
    let token = format!("token-{}", h.run);

    let mut first = h.app("vol-1");
    first.owner = owner.clone();
    first.data_volume = Some(volume.clone());
    let a = start(&*rt, &h.spec(&first)).await;
    let a_endpoint = wait_endpoint(&*rt, &a.id).await;
    wait_http(a_endpoint, &format!("/data/write?{token}"), 200).await;
    rt.remove(&a.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    let mut second = first.clone();
    second.name = h.name("vol-2");
    second.owner.deployment = DeploymentId::new();
    let b = start(&*rt, &h.spec(&second)).await;
    let read = wait_http(wait_endpoint(&*rt, &b.id).await, "/data", 200).await;
    assert_eq!(read.body.trim(), token, "the replacement reads the data");
    rt.remove(&b.id)
        .await
        .unwrap_or_else(|e| panic!("remove failed: {e}"));

    match rt.remove_volume(&volume).await {
        Ok(()) => {}
        Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
            eprintln!(
                "note: {} keeps volumes (remove_volume: {e}); data survival proven",
                rt.name()
            );
            return;
        }
        Err(e) => panic!("remove_volume failed: {e}"),
    }
    rt.ensure_volume(&volume, &h.project_labels(owner.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_volume failed: {e}"));
    let mut third = first.clone();
    third.name = h.name("vol-3");
    let c = start(&*rt, &h.spec(&third)).await;
    let read = wait_http(wait_endpoint(&*rt, &c.id).await, "/data", 404).await;
    assert_eq!(
        read.body.trim(),
        "no data",
        "remove_volume deleted the data"
    );
}

/// `list` with a filter returns exactly the workloads whose owner matches, by workspace,
/// project, service and deployment.
pub async fn list_by_owner_returns_exactly_the_matching_workloads<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let base = h.owner();
    let d1_r0 = base.clone();
    let d1_r1 = Owner {
        replica: 1,
        ..base.clone()
    };
    let d2 = Owner {
        deployment: DeploymentId::new(),
        ..base.clone()
    };
    let other_service = Owner {
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        ..base.clone()
    };
    let owners = [
        ("d1-r0", &d1_r0),
        ("d1-r1", &d1_r1),
        ("d2", &d2),
        ("svc2", &other_service),
    ];
    for (suffix, owner) in owners {
        let mut app = h.app(suffix);
        app.owner = owner.clone();
        app.command = Some(sleep_forever());
        start(&*rt, &h.spec(&app)).await;
    }
    let names =
        |suffixes: &[&str]| -> BTreeSet<String> { suffixes.iter().map(|s| h.name(s)).collect() };
    let cases = [
        (
            OwnerFilter {
                workspace: Some(h.workspace),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1", "d2", "svc2"]),
        ),
        (
            OwnerFilter {
                project: Some(base.project),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1", "d2", "svc2"]),
        ),
        (service_filter(&base), names(&["d1-r0", "d1-r1", "d2"])),
        (
            OwnerFilter {
                deployment: Some(base.deployment),
                ..OwnerFilter::default()
            },
            names(&["d1-r0", "d1-r1"]),
        ),
        (service_filter(&other_service), names(&["svc2"])),
        (
            OwnerFilter {
                workspace: Some(h.workspace),
                project: Some(ProjectId::new()),
                ..OwnerFilter::default()
            },
            names(&[]),
        ),
    ];
    for (filter, want) in cases {
        let listed = list(&*rt, &filter).await;
        let got: BTreeSet<String> = listed.iter().map(|w| w.name.clone()).collect();
        assert_eq!(got, want, "list({filter:?})");
        for w in &listed {
            assert!(filter.matches(&w.owner), "{w:?} does not match {filter:?}");
        }
    }
}

/// Drop the runtime, make a new one: it lists what the old one started and controls it.
pub async fn a_new_runtime_adopts_and_controls_workloads_of_the_old_one<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let owner = h.owner();
    let mut ids = BTreeSet::new();
    {
        let old = h.runtime();
        for replica in 0..2 {
            let mut app = h.app(&format!("adopt-{replica}"));
            app.owner = Owner {
                replica,
                ..owner.clone()
            };
            ids.insert(start(&*old, &h.spec(&app)).await.id);
        }
    }
    let rt = h.reconnect().await;
    let listed = list(&*rt, &service_filter(&owner)).await;
    let found: BTreeSet<WorkloadId> = listed.iter().map(|w| w.id.clone()).collect();
    assert_eq!(found, ids, "the new runtime lists the old one's workloads");

    let first = listed
        .iter()
        .find(|w| w.owner.replica == 0)
        .unwrap_or_else(|| panic!("replica 0 is listed"));
    let endpoint = wait_endpoint(&*rt, &first.id).await;
    wait_http(endpoint, "/health", 200).await;
    rt.stop(&first.id, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the new runtime cannot stop an adopted workload: {e}"));
    let stopped = inspect(&*rt, &first.id).await;
    assert!(
        matches!(
            stopped,
            Some(WorkloadStatus {
                state: WorkloadState::Exited { .. },
                ..
            })
        ),
        "adopted workload stopped: {stopped:?}"
    );
    for id in &ids {
        rt.remove(id)
            .await
            .unwrap_or_else(|e| panic!("the new runtime cannot remove an adopted workload: {e}"));
    }
    assert!(list(&*rt, &service_filter(&owner)).await.is_empty());
}

/// A follow stream opened with no history yields lines the workload writes afterwards, on the
/// stream they were written to.
pub async fn logs_follow_yields_lines_written_after_the_stream_opened<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("follow"))).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    wait_http(endpoint, "/health", 200).await;
    wait_log(&*rt, &w.id, "testapp listening").await;

    let mut stream = rt
        .logs(
            &w.id,
            LogOptions {
                follow: true,
                tail: Some(0),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("logs(follow) failed: {e}"));
    let out_token = format!("out{}", h.run);
    let err_token = format!("err{}", h.run);
    wait_http(endpoint, &format!("/log?{out_token}"), 200).await;
    wait_http(endpoint, &format!("/err?{err_token}"), 200).await;

    let want_out = format!("testapp log {out_token}");
    let want_err = format!("testapp err {err_token}");
    let mut seen_out = None;
    let mut seen_err = None;
    let mut history = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen_out.is_none() || seen_err.is_none() {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let line = match next {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => panic!("the follow stream failed: {e}"),
            Ok(None) => panic!("the follow stream ended early; saw {history:#?}"),
            Err(_) => panic!("the follow stream did not yield the new lines; saw {history:#?}"),
        };
        assert!(
            !line.line.contains("testapp listening"),
            "tail 0 must not replay history: {line:?}"
        );
        assert!(
            !line.line.ends_with('\n'),
            "lines come without their newline"
        );
        if line.line == want_out {
            seen_out = Some(line.stream);
        } else if line.line == want_err {
            seen_err = Some(line.stream);
        }
        history.push(line);
    }
    assert_eq!(seen_out, Some(LogStream::Stdout));
    assert_eq!(seen_err, Some(LogStream::Stderr));
}

/// `tail: Some(n)` without follow returns the last `n` lines and ends.
pub async fn logs_tail_returns_only_the_last_lines<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("tail"))).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    for i in 1..=5 {
        wait_http(endpoint, &format!("/log?line{i}"), 200).await;
    }
    let last = "testapp request GET /log?line5 -> 200 OK";
    wait_log(&*rt, &w.id, last).await;
    let lines = logs(
        &*rt,
        &w.id,
        LogOptions {
            follow: false,
            tail: Some(2),
        },
    )
    .await;
    let text: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    assert_eq!(text, ["testapp log line5", last], "tail 2");
    let all = logs(&*rt, &w.id, LogOptions::default()).await;
    assert!(all.len() > 10, "no tail means the whole history: {all:#?}");
    assert!(
        all.iter().any(|l| l.line == "testapp log line1"),
        "{all:#?}"
    );
}

/// A command that exits at once is reported as exited with its exit code.
pub async fn a_command_that_exits_at_once_shows_exited_with_its_code<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let mut app = h.app("exits");
    app.command = Some(argv(&[BUSYBOX, "sh", "-c", "echo bye; exit 3"]));
    let mut spec = h.spec(&app);
    spec.restart = RestartPolicy::Never;
    let w = start(&*rt, &spec).await;
    let exited = wait_state(&*rt, &w.id, "exited", |s| {
        matches!(s, WorkloadState::Exited { .. })
    })
    .await;
    match exited.state {
        WorkloadState::Exited {
            code, oom_killed, ..
        } => {
            assert_eq!(code, Some(3));
            assert!(!oom_killed);
        }
        other => panic!("not exited: {other:?}"),
    }
    wait_log(&*rt, &w.id, "bye").await;
}

/// `stop` on a process that ignores SIGTERM kills it once the grace period is over.
pub async fn stop_kills_a_workload_that_ignores_sigterm_after_the_grace_period<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let mut app = h.app("stubborn");
    app.command = Some(argv(&[
        BUSYBOX,
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do /bin/busybox sleep 1; done",
    ]));
    let w = start(&*rt, &h.spec(&app)).await;
    wait_log(&*rt, &w.id, "ready").await;
    let grace = Duration::from_secs(2);
    let began = tokio::time::Instant::now();
    rt.stop(&w.id, grace)
        .await
        .unwrap_or_else(|e| panic!("stop failed: {e}"));
    let took = began.elapsed();
    assert!(
        took >= grace.mul_f64(0.75),
        "stop returned after {took:?}, before the {grace:?} grace period: was SIGTERM ignored?"
    );
    assert!(
        took <= grace + Duration::from_secs(10),
        "stop took {took:?} with a grace of {grace:?}"
    );
    let state = inspect(&*rt, &w.id).await.map(|s| s.state);
    assert!(
        matches!(state, Some(WorkloadState::Exited { .. })),
        "killed workload is exited: {state:?}"
    );
}

/// `exec` returns the exit code, stdout and stderr (each capped at `EXEC_OUTPUT_MAX`); refuses
/// a TTY with `Unsupported`; and fails with `Timeout` when the command outlives its timeout.
pub async fn exec_reports_exit_code_and_both_streams_and_honours_its_timeout<F: Fixture>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("exec"))).await;
    wait_running(&*rt, &w.id).await;
    let out = exec(
        &*rt,
        &w.id,
        &[BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 4"],
    )
    .await;
    assert_eq!(out.exit_code, Some(4), "{out:?}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    // A 3 MiB answer on each stream is cut to the platform-wide cap, and the command still
    // runs to its end (its exit code arrives).
    let big = exec(
        &*rt,
        &w.id,
        &[
            BUSYBOX,
            "sh",
            "-c",
            "/bin/busybox head -c 3145728 /dev/zero; /bin/busybox head -c 3145728 /dev/zero >&2; exit 3",
        ],
    )
    .await;
    assert_eq!(big.exit_code, Some(3));
    let cap = clank_core::runtime::EXEC_OUTPUT_MAX + clank_core::runtime::EXEC_TRUNCATED.len();
    assert_eq!(
        big.stdout.len(),
        cap,
        "stdout kept {} bytes",
        big.stdout.len()
    );
    assert_eq!(
        big.stderr.len(),
        cap,
        "stderr kept {} bytes",
        big.stderr.len()
    );
    assert!(big.stdout.ends_with("[output truncated]\n"));

    let mut tty = exec_request(&[BUSYBOX, "sh"]);
    tty.tty = true;
    assert_failure(
        rt.exec(&w.id, &tty).await,
        RuntimeFailure::Unsupported,
        "exec with a TTY",
    );

    let mut slow = exec_request(&[BUSYBOX, "sleep", "30"]);
    slow.timeout = Duration::from_secs(1);
    let began = tokio::time::Instant::now();
    assert_failure(
        rt.exec(&w.id, &slow).await,
        RuntimeFailure::Timeout,
        "exec past its timeout",
    );
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "the timeout was not honoured"
    );
}

/// Plain values and decrypted secrets reach the workload's environment unchanged.
pub async fn env_values_and_secrets_reach_the_workload<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let mut app = h.app("env");
    app.env = vec![
        (
            "GREETING".to_owned(),
            EnvValue::Plain("hello-world".to_owned()),
        ),
        (
            "API_TOKEN".to_owned(),
            EnvValue::Secret(SecretString::new("s3cr3t-value")),
        ),
    ];
    let w = start(&*rt, &h.spec(&app)).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    assert_eq!(
        wait_http(endpoint, "/env?GREETING", 200).await.body.trim(),
        "hello-world"
    );
    assert_eq!(
        wait_http(endpoint, "/env?API_TOKEN", 200).await.body.trim(),
        "s3cr3t-value"
    );
}

/// `HEALTH=fail` starts unhealthy; `touch health.ok` / `rm health.ok` run through `exec` in the
/// working directory flip it. (This is how later tests fail a deployment's health on demand.)
pub async fn health_follows_the_health_env_and_the_state_file<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let mut app = h.app("health");
    app.env = vec![("HEALTH".to_owned(), EnvValue::Plain("fail".to_owned()))];
    let w = start(&*rt, &h.spec(&app)).await;
    let endpoint = wait_endpoint(&*rt, &w.id).await;
    wait_http(endpoint, "/health", 503).await;
    let out = exec(&*rt, &w.id, &[BUSYBOX, "touch", "health.ok"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    wait_http(endpoint, "/health", 200).await;
    let out = exec(&*rt, &w.id, &[BUSYBOX, "rm", "health.ok"]).await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    wait_http(endpoint, "/health", 503).await;
}

/// `stats` of a running workload reports the memory it uses and a sane CPU figure.
pub async fn stats_report_memory_in_use<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let w = start(&*rt, &h.spec(&h.app("stats"))).await;
    wait_http(wait_endpoint(&*rt, &w.id).await, "/health", 200).await;
    let stats = rt
        .stats(&w.id)
        .await
        .unwrap_or_else(|e| panic!("stats failed: {e}"));
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(
        stats.cpu_percent.is_finite() && stats.cpu_percent >= 0.0,
        "{stats:?}"
    );
    if let Some(limit) = stats.memory_limit_bytes {
        assert!(limit >= stats.memory_bytes, "{stats:?}");
    }
}

/// `ensure_*` twice (and concurrently) and `remove_*` twice are all Ok (`remove_volume` may
/// instead answer `Unsupported` every time, on a runtime that never deletes data).
pub async fn networks_and_volumes_are_idempotent<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    let labels = h.project_labels(ProjectId::new());
    let network = h.network("idem-net");
    let volume = h.volume("idem-vol");
    let ensures = (0..4).map(|_| rt.ensure_network(&network, &labels));
    for r in futures_util::future::join_all(ensures).await {
        r.unwrap_or_else(|e| panic!("concurrent ensure_network failed: {e}"));
    }
    rt.ensure_network(&network, &labels)
        .await
        .unwrap_or_else(|e| panic!("ensure_network again failed: {e}"));
    for _ in 0..2 {
        rt.remove_network(&network)
            .await
            .unwrap_or_else(|e| panic!("remove_network must be idempotent: {e}"));
    }
    for _ in 0..2 {
        rt.ensure_volume(&volume, &labels)
            .await
            .unwrap_or_else(|e| panic!("ensure_volume must be idempotent: {e}"));
    }
    for _ in 0..2 {
        match rt.remove_volume(&volume).await {
            Ok(()) => {}
            // A runtime that keeps data (a remote server's) says so, every time.
            Err(e) if e.runtime_failure() == Some(RuntimeFailure::Unsupported) => {
                eprintln!("note: {} keeps volumes: {e}", rt.name());
            }
            Err(e) => panic!("remove_volume must be idempotent: {e}"),
        }
    }
}

/// In one project's network, services reach each other by service name; a service in another
/// project can neither resolve nor reach them. Needs `isolated_networks`.
pub async fn services_in_one_project_reach_each_other_by_name_and_other_projects_cannot<
    F: Fixture,
>(
    h: Arc<Harness<F>>,
) {
    let rt = h.runtime();
    if !rt.capabilities().isolated_networks {
        eprintln!(
            "{}: no isolated networks; property not applicable",
            rt.name()
        );
        return;
    }
    let project_a = h.owner();
    let project_b = h.owner();
    let net_a = h.network("net-a");
    let net_b = h.network("net-b");
    rt.ensure_network(&net_a, &h.project_labels(project_a.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_network failed: {e}"));
    rt.ensure_network(&net_b, &h.project_labels(project_b.project))
        .await
        .unwrap_or_else(|e| panic!("ensure_network failed: {e}"));

    let member = |suffix: &str, project: &Owner, network: &str, alias: &str| {
        let mut app = h.app(suffix);
        app.owner = Owner {
            service: ServiceId::new(),
            ..project.clone()
        };
        app.network = Some(NetworkAttachment {
            network: network.to_owned(),
            aliases: vec![alias.to_owned()],
        });
        app
    };
    let api_spec = h.spec(&member("api", &project_a, &net_a, "api"));
    let api = start(&*rt, &api_spec).await;
    let web = start(&*rt, &h.spec(&member("web", &project_a, &net_a, "web"))).await;
    let stranger = start(
        &*rt,
        &h.spec(&member("stranger", &project_b, &net_b, "web")),
    )
    .await;
    wait_http(wait_endpoint(&*rt, &api.id).await, "/health", 200).await;
    wait_running(&*rt, &web.id).await;
    wait_running(&*rt, &stranger.id).await;

    let port = api_spec
        .port
        .unwrap_or_else(|| panic!("the fixture's app spec has a port"));
    let url = format!("http://api:{port}/health");
    // busybox wget's own -T option crashes Debian's static build; `timeout` bounds it instead.
    let fetch = [
        BUSYBOX,
        "timeout",
        "10",
        BUSYBOX,
        "wget",
        "-q",
        "-O",
        "-",
        url.as_str(),
    ];
    let inside = exec(&*rt, &web.id, &fetch).await;
    assert_eq!(
        (inside.exit_code, inside.stdout.trim()),
        (Some(0), "ok"),
        "a service reaches its sibling by name: {inside:?}"
    );
    let outside = exec(&*rt, &stranger.id, &fetch).await;
    assert_ne!(
        outside.exit_code,
        Some(0),
        "a service of another project must not reach `api`: {outside:?}"
    );
}

/// A workload that allocates past its memory limit is killed and reported `oom_killed`.
/// Needs `resource_limits`.
pub async fn memory_limit_is_enforced_by_an_oom_kill<F: Fixture>(h: Arc<Harness<F>>) {
    let rt = h.runtime();
    if !rt.capabilities().resource_limits {
        eprintln!("{}: no resource limits; property not applicable", rt.name());
        return;
    }
    let mut app = h.app("oom");
    // Doubling a string allocates without bound, in busybox alone.
    app.command = Some(argv(&[
        BUSYBOX,
        "awk",
        "BEGIN { s = \"x\"; while (1) s = s s }",
    ]));
    let mut spec = h.spec(&app);
    spec.memory_limit_mb = 16;
    spec.restart = RestartPolicy::Never;
    let w = start(&*rt, &spec).await;
    let exited = wait_state(&*rt, &w.id, "exited", |s| {
        matches!(s, WorkloadState::Exited { .. })
    })
    .await;
    assert!(
        matches!(
            exited.state,
            WorkloadState::Exited {
                oom_killed: true,
                ..
            }
        ),
        "a workload past its memory limit is OOM-killed: {exited:?}"
    );
}

// ---- helpers ---------------------------------------------------------------------------------

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
