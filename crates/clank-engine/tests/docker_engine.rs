//! The deploy engine end to end against the real Docker Engine: deploy, redeploy, failing
//! redeploy, rollback with config restored, cancel, bad images and crash loops, recovery after
//! the control plane dies at each phase, and deadlines across a restart.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable; with `CI` set they fail.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clank_core::config::{ConfigChange, ConfigLayer, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId, WorkspaceId};
use clank_core::model::{Deployment, Project, Service, ServiceSource, Trigger, Workspace};
use clank_core::proxy::Proxy;
use clank_core::runtime::{OwnerFilter, Runtime};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::{Catalog, Versioned};
use clank_core::{ImageRef, Timestamp};
use clank_docker::DockerRuntime;
use clank_engine::{Engine, EngineConfig, EventKind, RouteTable};
use clank_store::RedbStore;
use clank_testkit::http;
use clank_testkit::runtime::skip_or_fail;
use clank_testkit::testapp;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

struct Platform {
    catalog: Catalog,
    keyring: Keyring,
    runtime: Arc<DockerRuntime>,
    routes: Arc<RouteTable>,
    engine: Engine,
    loop_task: Option<JoinHandle<()>>,
    workspace: WorkspaceId,
    network: String,
    service: ServiceId,
    _dir: tempfile::TempDir,
}

async fn docker() -> Option<Arc<DockerRuntime>> {
    let runtime = match DockerRuntime::connect().await {
        Ok(r) => r,
        Err(e) => return skip_or_fail("a Docker Engine", &e.to_string()),
    };
    if let Err(e) = testapp::docker::ensure_testapp_image(runtime.client()).await {
        panic!("could not build the test app image: {e}");
    }
    Some(Arc::new(runtime))
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        stop_grace: Duration::from_secs(2),
        probe_timeout: Duration::from_secs(3),
        ..EngineConfig::default()
    }
}

impl Platform {
    /// A fresh store with one workspace, project and `web` service on the test app image.
    async fn new(tweak: impl FnOnce(&mut Service)) -> Option<Platform> {
        let runtime = docker().await?;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("clank.redb")).unwrap();
        let catalog = Catalog::new(Arc::new(store));
        let now = Timestamp::now();
        let ws = Workspace::new("Engine tests", Some("engine-tests"), now).unwrap();
        catalog.create(&ws).await.unwrap();
        // Project slugs name Docker networks: unique per test so parallel tests never share.
        let slug = format!("e2e-{}", &uuid_suffix());
        let project = Project::new(ws.id, "E2E", Some(&slug), now).unwrap();
        let env = catalog.create_project(&project, now).await.unwrap();
        let mut service = Service::new(
            ws.id,
            project.id,
            env.id,
            "web",
            ServiceSource::DockerImage {
                image: testapp::IMAGE.parse().unwrap(),
            },
            now,
        )
        .unwrap();
        service.settings.health_check_interval_s = 1;
        service.settings.deploy_timeout_s = 20;
        tweak(&mut service);
        service.validate().unwrap();
        catalog.create(&service).await.unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let routes = Arc::new(RouteTable::default());
        let engine = Engine::new(
            catalog.clone(),
            runtime.clone(),
            routes.clone(),
            keyring.clone(),
            engine_config(),
        );
        let mut p = Platform {
            catalog,
            keyring,
            runtime,
            routes,
            engine,
            loop_task: None,
            workspace: ws.id,
            network: project.network_name(),
            service: service.id,
            _dir: dir,
        };
        p.start_loop();
        Some(p)
    }

    fn start_loop(&mut self) {
        let engine = self.engine.clone();
        self.loop_task = Some(tokio::spawn(async move {
            engine.run(std::future::pending()).await.unwrap();
        }));
    }

    /// Simulate the control plane dying: the loop is aborted mid-flight and every in-memory
    /// piece (engine, route table, runtime client) is thrown away; only the store survives.
    async fn crash_and_restart(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
            let _ = t.await;
        }
        self.runtime = Arc::new(DockerRuntime::connect().await.unwrap());
        self.routes = Arc::new(RouteTable::default());
        self.engine = Engine::new(
            self.catalog.clone(),
            self.runtime.clone(),
            self.routes.clone(),
            self.keyring.clone(),
            engine_config(),
        );
        self.start_loop();
    }

    async fn set_env(&self, key: &str, value: &str) {
        let scope = Scope::Service(self.service);
        let current = self.catalog.config_layer(scope).await.unwrap();
        let base = current
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_else(|| ConfigLayer::new(scope));
        let next = apply_bulk(
            &base,
            &[ConfigChange::set_plain(key, value)],
            &self.keyring,
            Timestamp::now(),
        )
        .unwrap();
        match current {
            Some(cur) => self.catalog.update(&cur, &next).await.unwrap(),
            None => self.catalog.create(&next).await.unwrap(),
        };
    }

    async fn deploy(&self) -> Deployment {
        self.engine
            .deploy(self.service, Trigger::Manual { by: None })
            .await
            .unwrap()
    }

    async fn get(&self, id: DeploymentId) -> Versioned<Deployment> {
        self.catalog
            .require::<Deployment>(&id.to_string())
            .await
            .unwrap()
    }

    async fn wait_for(
        &self,
        id: DeploymentId,
        want: DeploymentStatus,
        within: Duration,
    ) -> Deployment {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let d = self.get(id).await.value;
            if d.state.status == want {
                return d;
            }
            if d.state.status.is_terminal() || tokio::time::Instant::now() > deadline {
                let log = self.engine.deploy_log(id).await.unwrap_or_default();
                let lines: Vec<_> = log.iter().map(|l| l.message.as_str()).collect();
                panic!(
                    "deployment #{} is {} ({:?}), wanted {want}; log:\n{}",
                    d.number,
                    d.state.status,
                    d.state.reason,
                    lines.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn service(&self) -> Service {
        self.catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap()
            .value
    }

    async fn web_endpoint(&self, d: DeploymentId) -> SocketAddr {
        let ws = self
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        ws.iter()
            .find(|w| w.owner.process == "web")
            .and_then(|w| w.endpoint)
            .expect("web endpoint")
    }

    /// Retiring an old version (graceful stop, then remove) follows its supersession.
    async fn wait_until_retired(&self, d: DeploymentId, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.containers_of(d).await != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "workloads of {d} still exist after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn containers_of(&self, d: DeploymentId) -> usize {
        self.runtime
            .list(&OwnerFilter {
                deployment: Some(d),
                ..OwnerFilter::default()
            })
            .await
            .unwrap()
            .len()
    }

    async fn cleanup(self) {
        // Drop does the work, so a panicking test cleans up too.
    }
}

impl Drop for Platform {
    /// Remove every workload and the network this test created, even when the test panicked:
    /// on a fresh thread with its own runtime and client, since Drop cannot await.
    fn drop(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
        }
        let workspace = self.workspace;
        let network = self.network.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(runtime) = DockerRuntime::connect().await else {
                    return;
                };
                let filter = OwnerFilter {
                    workspace: Some(workspace),
                    ..OwnerFilter::default()
                };
                for w in runtime.list(&filter).await.unwrap_or_default() {
                    let _ = runtime.remove(&w.id).await;
                }
                let _ = runtime.remove_network(&network).await;
            });
        })
        .join();
    }
}

fn uuid_suffix() -> String {
    let id = clank_core::id::ServiceId::new().to_string();
    id[id.len() - 10..].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_goes_active_serves_and_logs_each_step() {
    let Some(p) = Platform::new(|_| {}).await else {
        return;
    };
    let mut events = p.engine.events();
    let d = p.deploy().await;
    let active = p
        .wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    assert_eq!(p.service().await.active_deployment, Some(d.id));
    let statuses: Vec<_> = active.state.history.iter().map(|h| h.to).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Pending,
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
    let addr = p.web_endpoint(d.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    let log = p.engine.deploy_log(d.id).await.unwrap();
    assert!(
        log.iter()
            .any(|l| l.message.contains("health HTTP GET :8080/health passed")),
        "{log:?}"
    );
    // The log tells the story in order: each phase is entered before its work is logged.
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.message.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` missing: {log:?}"))
    };
    assert!(pos("PENDING → DEPLOYING") < pos("started 1 workload"));
    assert!(pos("DEPLOYING → HEALTH_CHECKING") < pos("health HTTP GET"));
    assert!(pos("traffic switched") < pos("HEALTH_CHECKING → ACTIVE"));
    // Every transition was published as an event, in order.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::Transition { to, .. } = e.kind {
            seen.push(to);
        }
    }
    assert_eq!(
        seen,
        [
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_supersedes_the_previous_and_retires_its_workloads() {
    let Some(p) = Platform::new(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v2 = p.deploy().await;
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v1 = p.get(v1.id).await;
    assert_eq!(v1.state.status, DeploymentStatus::Superseded);
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
    assert_eq!(
        p.routes
            .route(p.service)
            .await
            .unwrap()
            .unwrap()
            .target
            .deployment,
        v2.id
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_redeploy_leaves_the_previous_version_serving() {
    let Some(p) = Platform::new(|s| s.settings.deploy_timeout_s = 5).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v1_addr = p.web_endpoint(v1.id).await;
    p.set_env("HEALTH", "fail").await;
    let v2 = p.deploy().await;
    let failed = p
        .wait_for(v2.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("HTTP 503"),
        "the reason names what the probe saw: {reason}"
    );
    assert_eq!(p.service().await.active_deployment, Some(v1.id));
    assert_eq!(p.get(v1.id).await.state.status, DeploymentStatus::Active);
    assert_eq!(
        http::get(v1_addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        p.routes
            .route(p.service)
            .await
            .unwrap()
            .unwrap()
            .target
            .deployment,
        v1.id
    );
    assert_eq!(
        p.containers_of(v2.id).await,
        0,
        "the failed version leaves nothing running"
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_image_and_the_config_of_the_earlier_deployment() {
    let Some(p) = Platform::new(|_| {}).await else {
        return;
    };
    p.set_env("GREETING", "one").await;
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.set_env("GREETING", "two").await;
    let v2 = p.deploy().await;
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let addr = p.web_endpoint(v2.id).await;
    assert_eq!(
        http::get(addr, "/env?GREETING", Duration::from_secs(2))
            .await
            .unwrap()
            .body
            .trim(),
        "two"
    );

    let v3 = p.engine.rollback(p.service, v1.id).await.unwrap();
    assert_eq!(
        v3.trigger,
        Trigger::RollbackOf {
            deployment: v1.id,
            number: v1.number
        }
    );
    p.wait_for(v3.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let addr = p.web_endpoint(v3.id).await;
    assert_eq!(
        http::get(addr, "/env?GREETING", Duration::from_secs(2))
            .await
            .unwrap()
            .body
            .trim(),
        "one"
    );
    // Today's config still says "two": only the rollback's snapshot carries "one".
    let resolved = p.engine.resolve_config(&p.service().await).await.unwrap();
    assert_eq!(
        format!("{:?}", resolved.get("GREETING").unwrap().value),
        format!("{:?}", clank_core::config::ConfigValue::Plain("two".into()))
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_health_checks_cleans_up_and_keeps_the_previous() {
    let Some(p) = Platform::new(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.set_env("HEALTH", "fail").await;
    let v2 = p.deploy().await;
    p.wait_for(
        v2.id,
        DeploymentStatus::HealthChecking,
        Duration::from_secs(30),
    )
    .await;
    p.engine.cancel(v2.id).await.unwrap();
    let cancelled = p
        .wait_for(v2.id, DeploymentStatus::Cancelled, Duration::from_secs(15))
        .await;
    assert_eq!(
        cancelled.state.reason.as_deref(),
        Some("cancelled on request")
    );
    assert_eq!(p.containers_of(v2.id).await, 0);
    assert_eq!(p.service().await.active_deployment, Some(v1.id));
    // Cancelling a finished deployment is refused with a reason.
    let err = p.engine.cancel(v1.id).await.unwrap_err();
    assert_eq!(err.kind(), clank_core::ErrorKind::Conflict);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_fails_with_the_image_named_and_nothing_left() {
    let Some(p) = Platform::new(|s| {
        s.source = ServiceSource::DockerImage {
            image: "clank-no-such-image:v404".parse::<ImageRef>().unwrap(),
        };
    })
    .await
    else {
        return;
    };
    let d = p.deploy().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(60))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(reason.contains("clank-no-such-image"), "{reason}");
    assert_eq!(p.containers_of(d.id).await, 0);
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_workload_fails_with_its_exit_code() {
    let Some(p) = Platform::new(|s| {
        s.processes.get_mut("web").unwrap().command = Some(vec![
            testapp::BUSYBOX.into(),
            "sh".into(),
            "-c".into(),
            "echo boom; exit 3".into(),
        ]);
    })
    .await
    else {
        return;
    };
    let d = p.deploy().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("exit") || reason.contains("exited"),
        "{reason}"
    );
    assert_eq!(p.containers_of(d.id).await, 0);
    p.cleanup().await;
}

/// Kill the control plane when the deployment enters `phase`, restart, and check the outcome:
/// the deployment still ends ACTIVE, with exactly one container, and the old one superseded.
async fn recovers_after_dying_in(phase: DeploymentStatus) {
    let Some(mut p) = Platform::new(|s| s.settings.deploy_timeout_s = 30).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    // Slow health checks widen the window so the kill lands inside HEALTH_CHECKING.
    p.set_env("HEALTH", "slow").await;
    p.set_env("HEALTH_DELAY", "1").await;
    let mut events = p.engine.events();
    let v2 = p.deploy().await;
    if phase == DeploymentStatus::Pending {
        p.crash_and_restart().await;
    } else {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .unwrap()
                .unwrap();
            if matches!(e.kind, EventKind::Transition { to, .. } if to == phase)
                && e.deployment == v2.id
            {
                break;
            }
        }
        p.crash_and_restart().await;
    }
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(40))
        .await;
    assert_eq!(
        p.containers_of(v2.id).await,
        1,
        "no duplicate containers after recovery"
    );
    assert_eq!(
        p.get(v1.id).await.state.status,
        DeploymentStatus::Superseded
    );
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
    // The fresh route table was rebuilt to point at the new version.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.routes.routed_to(p.service).await.unwrap(), Some(v2.id));
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_pending_recovers() {
    recovers_after_dying_in(DeploymentStatus::Pending).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_deploying_recovers() {
    recovers_after_dying_in(DeploymentStatus::Deploying).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_health_checking_recovers() {
    recovers_after_dying_in(DeploymentStatus::HealthChecking).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_after_activation_keeps_serving_the_new_version() {
    recovers_after_dying_in(DeploymentStatus::Active).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_that_passed_while_down_fails_the_deployment_at_restart() {
    let Some(mut p) = Platform::new(|_| {}).await else {
        return;
    };
    if let Some(t) = p.loop_task.take() {
        t.abort();
        let _ = t.await;
    }
    // Record a deployment stuck in DEPLOYING whose deadline passed an hour ago, as if the
    // control plane had been down since.
    let d = p.deploy().await;
    let stored = p.get(d.id).await;
    let mut stuck = stored.value.clone();
    let settings = stuck.snapshot.settings.clone();
    let long_ago = Timestamp(Timestamp::now().as_millis() - 3_600_000);
    stuck
        .state
        .transition(DeploymentStatus::Deploying, None, &settings, long_ago)
        .unwrap();
    p.catalog.save_deployment(&stored, &stuck).await.unwrap();
    p.crash_and_restart().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(10))
        .await;
    assert!(
        failed
            .state
            .reason
            .unwrap()
            .contains("DEPLOYING did not finish in time")
    );
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_workloads_of_finished_deployments_are_removed_at_restart() {
    let Some(mut p) = Platform::new(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    // Pretend the control plane recorded v1 as superseded but died before removing it.
    let stored = p.get(v1.id).await;
    let svc = p
        .catalog
        .require::<Service>(&p.service.to_string())
        .await
        .unwrap();
    let mut gone = stored.value.clone();
    let settings = gone.snapshot.settings.clone();
    gone.state
        .transition(
            DeploymentStatus::Superseded,
            Some("test".into()),
            &settings,
            Timestamp::now(),
        )
        .unwrap();
    let mut s = svc.value.clone();
    s.active_deployment = None;
    let mut b = clank_core::store::catalog::Batch::new();
    b.update(&stored, &gone).unwrap().update(&svc, &s).unwrap();
    p.catalog.commit(b).await.unwrap();
    assert_eq!(p.containers_of(v1.id).await, 1);
    p.crash_and_restart().await;
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_each_process_type_start_and_only_web_is_routed() {
    let Some(p) = Platform::new(|s| {
        s.processes.get_mut("web").unwrap().replicas = 2;
        s.processes.insert(
            "worker".into(),
            clank_core::model::ProcessSpec {
                command: Some(vec![
                    testapp::BUSYBOX.into(),
                    "sh".into(),
                    "-c".into(),
                    "trap 'exit 0' TERM; while true; do sleep 1; done".into(),
                ]),
                replicas: 1,
            },
        );
    })
    .await
    else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let all = p
        .runtime
        .list(&OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap();
    let count = |proc_: &str| all.iter().filter(|w| w.owner.process == proc_).count();
    assert_eq!((count("web"), count("worker")), (2, 1));
    assert!(
        all.iter()
            .filter(|w| w.owner.process == "worker")
            .all(|w| w.endpoint.is_none()),
        "workers publish nothing"
    );
    let route = p.routes.route(p.service).await.unwrap().unwrap();
    assert_eq!(
        route.target.addrs.len(),
        2,
        "both web replicas are routed, the worker is not"
    );
    for addr in route.target.addrs {
        assert_eq!(
            http::get(addr, "/health", Duration::from_secs(2))
                .await
                .unwrap()
                .status,
            200
        );
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deployment_failing_health_checks_is_restarted() {
    let Some(p) = Platform::new(|s| s.settings.health_check_retries = 2).await else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let before = p
        .runtime
        .list(&OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap();
    let mut events = p.engine.events();
    // Break the running app's health from inside, as a wedged process would.
    let req = clank_core::runtime::ExecRequest {
        command: vec![
            testapp::BUSYBOX.into(),
            "rm".into(),
            "-f".into(),
            format!("{}/health.ok", testapp::IMAGE_APP_DIR),
        ],
        tty: false,
        timeout: Duration::from_secs(5),
    };
    p.runtime.exec(&before[0].id, &req).await.unwrap();
    let reason = loop {
        let e = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::Restarted { reason } = e.kind {
            break reason;
        }
    };
    assert!(reason.contains("HTTP 503"), "{reason}");
    // A fresh workload replaced the broken one and serves again; the deployment stayed ACTIVE.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = p
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d.id),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        if let Some(w) = now
            .iter()
            .find(|w| w.id != before[0].id && w.endpoint.is_some())
        {
            if http::get(w.endpoint.unwrap(), "/health", Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no healthy replacement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(p.get(d.id).await.state.status, DeploymentStatus::Active);
    // The route follows the replacement's new address.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = p
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d.id),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        let addrs: Vec<_> = now.iter().filter_map(|w| w.endpoint).collect();
        if p.routes
            .route(p.service)
            .await
            .unwrap()
            .is_some_and(|r| r.target.addrs == addrs)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "route still points at the replaced workload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.cleanup().await;
}
