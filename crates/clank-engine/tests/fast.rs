//! The engine's logic on recording fakes (`clank_testkit::fakes`), without Docker: cutover,
//! failures, cancel, rollback, stop-first ordering, deadlines, recovery after a restart, builds,
//! queueing, the image pull (time, credentials, digest, refusals) and a panicking pass. Each test runs on tokio's paused clock and the engine reads
//! that clock (`Clock::tokio`), so a 30 s deadline passes in milliseconds of real time.
//!
//! The fakes answer the platform's probes through `Runtime::probe` (the seam remote runtimes
//! use), so nothing listens on a socket: what these tests prove is the engine's decisions and
//! the order of its calls; the Docker suites prove the same flows against real workloads.

use std::sync::Arc;
use std::time::Duration;

use clank_core::config::{ConfigChange, ConfigLayer, EnvValue, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, EnvironmentId, ServiceId, WorkspaceId};
use clank_core::model::{
    BuildStatus, Deployment, Project, Service, ServiceSource, Trigger, VolumeMount, Workspace,
};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::{Catalog, Page, Versioned};
use clank_core::store::memory::MemoryStore;
use clank_core::{ImageRef, RuntimeFailure, Timestamp};
use clank_engine::{Clock, Engine, EngineConfig};
use clank_testkit::fakes::{
    Behaviour, BuildOutcome, Call, FAKE_COMMIT, FakeBuilder, FakeProxy, FakeRuntime, Journal, Pull,
};
use tokio::task::JoinHandle;

/// How long (of paused tokio time) a test waits for a status before it fails.
const PATIENCE: Duration = Duration::from_secs(600);

const V1: &str = "registry.example/app:v1";
const V2: &str = "registry.example/app:v2";

/// One service on fakes, with the engine's loop running.
struct World {
    catalog: Catalog,
    keyring: Keyring,
    journal: Journal,
    runtime: Arc<FakeRuntime>,
    proxy: Arc<FakeProxy>,
    builder: Arc<FakeBuilder>,
    engine: Engine,
    loop_task: Option<JoinHandle<()>>,
    workspace: WorkspaceId,
    project_slug: String,
    environment: EnvironmentId,
    service: ServiceId,
}

impl World {
    /// A `web` service running image `V1`.
    async fn image(tweak: impl FnOnce(&mut Service)) -> World {
        let image: ImageRef = V1.parse().unwrap();
        World::with_source(
            ServiceSource::DockerImage {
                image,
                credentials_secret: None,
            },
            tweak,
        )
        .await
    }

    /// A git service, built by the fake builder.
    async fn git(tweak: impl FnOnce(&mut Service)) -> World {
        let source = ServiceSource::Git {
            repo_url: "https://git.example/shop/web.git".into(),
            branch: "main".into(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: None,
        };
        World::with_source(source, tweak).await
    }

    async fn with_source(source: ServiceSource, tweak: impl FnOnce(&mut Service)) -> World {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let now = Timestamp::now();
        let ws = Workspace::new("Fast", Some("fast"), now).unwrap();
        catalog.create(&ws).await.unwrap();
        let project = Project::new(ws.id, "Shop", Some("shop"), now).unwrap();
        let env = catalog.create_project(&project, now).await.unwrap();
        let mut service = Service::new(ws.id, project.id, env.id, "web", source, now).unwrap();
        service.settings.port = Some(8080);
        service.settings.health_check_path = "/health".into();
        service.settings.health_check_interval_s = 1;
        service.settings.deploy_timeout_s = 30;
        service.settings.build_timeout_s = 60;
        tweak(&mut service);
        catalog.create(&service).await.unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let journal = Journal::default();
        let runtime = Arc::new(FakeRuntime::new(journal.clone()));
        let proxy = Arc::new(FakeProxy::new(journal.clone()));
        let builder = Arc::new(FakeBuilder::new(journal.clone()));
        let engine = engine(&catalog, &runtime, &proxy, &builder, &keyring);
        let mut w = World {
            catalog,
            keyring,
            journal,
            runtime,
            proxy,
            builder,
            engine,
            loop_task: None,
            workspace: ws.id,
            project_slug: project.slug.clone(),
            environment: env.id,
            service: service.id,
        };
        w.start_loop();
        w
    }

    fn start_loop(&mut self) {
        let engine = self.engine.clone();
        self.loop_task = Some(tokio::spawn(async move {
            engine.run(std::future::pending()).await.unwrap();
        }));
    }

    /// The control plane dies and a new engine starts over the same store; the workloads
    /// (runtime) and the routes (proxy) outlive it, as Docker and `clank-proxy` do.
    async fn restart_engine(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
            let _ = t.await;
        }
        self.engine = engine(
            &self.catalog,
            &self.runtime,
            &self.proxy,
            &self.builder,
            &self.keyring,
        );
        self.start_loop();
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

    async fn log_of(&self, id: DeploymentId) -> String {
        let lines: Vec<String> = self
            .engine
            .deploy_log(id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.message)
            .collect();
        lines.join("\n")
    }

    /// Wait (paused time) until `id` is `want`; fails at once if it ends otherwise.
    async fn wait_for(&self, id: DeploymentId, want: DeploymentStatus) -> Deployment {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let d = self.get(id).await.value;
            if d.state.status == want {
                return d;
            }
            if d.state.status.is_terminal() || tokio::time::Instant::now() > deadline {
                panic!(
                    "deployment #{} is {} ({:?}), wanted {want}; log:\n{}",
                    d.number,
                    d.state.status,
                    d.state.reason,
                    self.log_of(id).await
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Wait until `done` holds, checking every few (paused) milliseconds.
    async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn active(&self) -> Option<DeploymentId> {
        self.service().await.active_deployment
    }

    async fn service(&self) -> Service {
        self.catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap()
            .value
    }

    async fn update_service(&self, change: impl FnOnce(&mut Service)) {
        let svc = self
            .catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap();
        let mut next = svc.value.clone();
        change(&mut next);
        self.catalog.update(&svc, &next).await.unwrap();
    }

    async fn use_image(&self, image: &str) {
        let image: ImageRef = image.parse().unwrap();
        self.update_service(|s| {
            s.source = ServiceSource::DockerImage {
                image,
                credentials_secret: None,
            }
        })
        .await;
    }

    async fn set_env(&self, key: &str, value: &str) {
        let scope = Scope::Service(self.service);
        self.change_config(scope, ConfigChange::set_plain(key, value))
            .await;
    }

    async fn change_config(&self, scope: Scope, change: ConfigChange) {
        let current = self.catalog.config_layer(scope).await.unwrap();
        let base = current
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_else(|| ConfigLayer::new(scope));
        let next = apply_bulk(&base, &[change], &self.keyring, Timestamp::now()).unwrap();
        match current {
            Some(cur) => self.catalog.update(&cur, &next).await.unwrap(),
            None => self.catalog.create(&next).await.unwrap(),
        };
    }

    /// The position of the first call `matches` selects in the journal.
    fn position(&self, what: &str, matches: impl Fn(&Call) -> bool) -> usize {
        let calls = self.journal.calls();
        calls
            .iter()
            .position(matches)
            .unwrap_or_else(|| panic!("no {what} in {calls:#?}"))
    }

    fn starts_of(&self, d: DeploymentId) -> usize {
        self.journal
            .filtered(|c| matches!(c, Call::Start { deployment, .. } if *deployment == d))
            .len()
    }

    fn cutovers_to(&self, d: DeploymentId) -> usize {
        self.journal
            .filtered(|c| matches!(c, Call::Cutover { deployment } if *deployment == d))
            .len()
    }

    /// The environment value `key` the last start of `d`'s `web` workload had.
    fn started_env(&self, d: DeploymentId, key: &str) -> Option<String> {
        let spec = self
            .runtime
            .started_specs()
            .into_iter()
            .rev()
            .find(|s| s.owner.deployment == d && s.owner.process == "web")?;
        spec.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| match v {
                EnvValue::Plain(v) => v.clone(),
                EnvValue::Secret(_) => "(secret)".into(),
            })
    }

    fn started_image(&self, d: DeploymentId) -> Option<String> {
        self.runtime
            .started_specs()
            .into_iter()
            .rev()
            .find(|s| s.owner.deployment == d)
            .and_then(|s| s.image.map(|i| i.to_string()))
    }

    fn tag(&self, n: u64) -> String {
        clank_engine::build_tag(self.workspace, &self.project_slug, "web", n)
            .unwrap()
            .to_string()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
        }
    }
}

fn engine(
    catalog: &Catalog,
    runtime: &Arc<FakeRuntime>,
    proxy: &Arc<FakeProxy>,
    builder: &Arc<FakeBuilder>,
    keyring: &Keyring,
) -> Engine {
    let config = EngineConfig {
        clock: Clock::tokio(),
        ..EngineConfig::default()
    };
    Engine::new(
        catalog.clone(),
        runtime.clone(),
        proxy.clone(),
        keyring.clone(),
        config,
    )
    .with_builder(builder.clone())
}

#[tokio::test(start_paused = true)]
async fn first_deploy_goes_active_and_routes_traffic_to_it() {
    let w = World::image(|_| {}).await;
    let d = w.deploy().await;
    let active = w.wait_for(d.id, DeploymentStatus::Active).await;
    let path: Vec<DeploymentStatus> = active
        .state
        .history
        .iter()
        .filter(|h| h.from.is_some())
        .map(|h| h.to)
        .collect();
    assert_eq!(
        path,
        [
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
    assert_eq!(w.active().await, Some(d.id));
    assert_eq!(w.proxy.routed(w.service), Some(d.id));
    assert_eq!(w.runtime.running_of(d.id), 1);
    let started = w.position("start", |c| matches!(c, Call::Start { .. }));
    let cut = w.position("cutover", |c| matches!(c, Call::Cutover { .. }));
    assert!(started < cut, "the route moves only to a started version");
}

#[tokio::test(start_paused = true)]
async fn redeploy_supersedes_the_old_version_and_retires_it_after_the_cutover() {
    let w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.journal.clear();
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    assert_eq!(
        w.get(v1.id).await.state.status,
        DeploymentStatus::Superseded
    );
    let runtime = w.runtime.clone();
    w.until("v1's workloads are removed", || {
        runtime.workloads_of(v1.id).is_empty()
    })
    .await;
    // Start-first: v2 starts and takes the traffic before anything of v1 stops.
    let started = w.position(
        "v2 start",
        |c| matches!(c, Call::Start { deployment, .. } if *deployment == v2.id),
    );
    let cut = w.position(
        "v2 cutover",
        |c| matches!(c, Call::Cutover { deployment } if *deployment == v2.id),
    );
    let stopped = w.position(
        "v1 stop",
        |c| matches!(c, Call::Stop { deployment, .. } if *deployment == v1.id),
    );
    assert!(started < cut && cut < stopped, "{:#?}", w.journal.calls());
    assert_eq!(w.proxy.routed(w.service), Some(v2.id));
    assert_eq!(w.started_image(v2.id).as_deref(), Some(V2));
}

/// The stop grace period of `EngineConfig::default()`, which `World`'s engine keeps.
const GRACE: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn back_to_back_deploys_go_active_while_the_versions_they_replaced_are_still_stopping() {
    let w = World::image(|_| {}).await;
    w.runtime.script(V1, Behaviour::ignores_sigterm(GRACE));
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    let began = tokio::time::Instant::now();
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    let v3 = w.deploy().await;
    w.wait_for(v3.id, DeploymentStatus::Active).await;
    let took = began.elapsed();
    assert!(
        took < GRACE,
        "two deploys took {took:?}: one waited for a version that ignores SIGTERM to stop"
    );
    assert_eq!(
        w.runtime.workloads_of(v1.id).len(),
        1,
        "v1 is still stopping"
    );
    assert!(w.engine.retiring().contains(&v1.id));
    let runtime = w.runtime.clone();
    w.until("v1 and v2 are gone", || {
        runtime.workloads_of(v1.id).is_empty() && runtime.workloads_of(v2.id).is_empty()
    })
    .await;
    assert!(w.engine.retiring().is_empty());
    assert_eq!(w.proxy.routed(w.service), Some(v3.id));
    assert_eq!(w.runtime.running_of(v3.id), 1);
}

#[tokio::test(start_paused = true)]
async fn cancel_and_rollback_reach_their_status_without_waiting_for_a_stop() {
    let w = World::image(|_| {}).await;
    w.runtime.script(V1, Behaviour::ignores_sigterm(GRACE));
    let mut silent = Behaviour::silent();
    silent.stop_takes = GRACE;
    w.runtime.script(V2, silent);
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::HealthChecking).await;
    let began = tokio::time::Instant::now();
    w.engine.cancel(v2.id).await.unwrap();
    w.wait_for(v2.id, DeploymentStatus::Cancelled).await;
    assert!(began.elapsed() < GRACE, "cancel took {:?}", began.elapsed());
    assert_eq!(
        w.runtime.workloads_of(v2.id).len(),
        1,
        "v2 is still stopping"
    );
    assert_eq!(w.proxy.routed(w.service), Some(v1.id));

    w.use_image(V1).await;
    let v3 = w.deploy().await;
    w.wait_for(v3.id, DeploymentStatus::Active).await;
    let began = tokio::time::Instant::now();
    let back = w.engine.rollback(w.service, v1.id).await.unwrap();
    w.wait_for(back.id, DeploymentStatus::Active).await;
    assert!(
        began.elapsed() < GRACE,
        "rollback took {:?}",
        began.elapsed()
    );
    assert_eq!(w.proxy.routed(w.service), Some(back.id));
}

#[tokio::test(start_paused = true)]
async fn a_version_that_needs_a_retiring_versions_volume_starts_only_once_it_has_stopped() {
    let w = World::image(single_writer_volume).await;
    w.runtime.script(V1, Behaviour::ignores_sigterm(GRACE));
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    // v2 drops the volume, so it starts beside v1, and v1 retires in the background...
    w.update_service(|s| s.volumes.clear()).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    assert!(w.engine.retiring().contains(&v1.id));
    // ...but v3 takes the volume back: it must not start while v1 may still write to it.
    w.journal.clear();
    w.update_service(single_writer_volume).await;
    let v3 = w.deploy().await;
    w.wait_for(v3.id, DeploymentStatus::Active).await;
    let removed = w.position(
        "v1 remove",
        |c| matches!(c, Call::Remove { deployment, .. } if *deployment == v1.id),
    );
    let started = w.position(
        "v3 start",
        |c| matches!(c, Call::Start { deployment, .. } if *deployment == v3.id),
    );
    assert!(removed < started, "{:#?}", w.journal.calls());
    assert!(
        w.log_of(v3.id)
            .await
            .contains("waiting for #1 to finish stopping"),
        "{}",
        w.log_of(v3.id).await
    );
}

#[tokio::test(start_paused = true)]
async fn failing_health_fails_the_new_version_and_leaves_the_running_one_untouched() {
    let w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.runtime.script(V2, Behaviour::unhealthy("HTTP 503"));
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    let failed = w.wait_for(v2.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("HTTP 503"),
        "names what the probe saw: {reason}"
    );
    assert_eq!(w.active().await, Some(v1.id));
    assert_eq!(w.get(v1.id).await.state.status, DeploymentStatus::Active);
    assert_eq!(w.proxy.routed(w.service), Some(v1.id));
    assert_eq!(w.runtime.running_of(v1.id), 1);
    assert_eq!(
        w.cutovers_to(v2.id),
        0,
        "an unhealthy version never gets traffic"
    );
    let runtime = w.runtime.clone();
    w.until("the failed version is removed", || {
        runtime.workloads_of(v2.id).is_empty()
    })
    .await;
    let v1_stops = w
        .journal
        .filtered(|c| matches!(c, Call::Stop { deployment, .. } if *deployment == v1.id));
    assert!(v1_stops.is_empty(), "the running version was never stopped");
}

#[tokio::test(start_paused = true)]
async fn a_missing_image_fails_the_deployment_at_start_naming_the_image() {
    let w = World::image(|_| {}).await;
    w.runtime.script(V1, Behaviour::missing_image());
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap();
    assert!(reason.contains(V1), "the reason names the image: {reason}");
    assert_eq!(w.active().await, None);
    assert_eq!(w.proxy.routed(w.service), None);
    assert_eq!(w.cutovers_to(d.id), 0);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_building_stops_the_build_and_starts_nothing() {
    let w = World::git(|_| {}).await;
    w.builder.then(BuildOutcome::Hangs);
    let d = w.deploy().await;
    w.wait_for(d.id, DeploymentStatus::Building).await;
    let journal = w.journal.clone();
    w.until("the build started", || {
        journal.calls().contains(&Call::BuildStarted { number: 1 })
    })
    .await;
    w.engine.cancel(d.id).await.unwrap();
    w.wait_for(d.id, DeploymentStatus::Cancelled).await;
    w.until("the build's future is dropped", || {
        journal.calls().contains(&Call::BuildDropped { number: 1 })
    })
    .await;
    assert_eq!(w.starts_of(d.id), 0);
    let builds = w.catalog.builds_of(w.service, Page::all()).await.unwrap();
    assert_eq!(builds.items.len(), 1);
    assert_eq!(builds.items[0].value.status, BuildStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_health_checking_removes_the_new_version_and_keeps_the_old() {
    let w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.runtime.script(V2, Behaviour::silent());
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::HealthChecking).await;
    w.engine.cancel(v2.id).await.unwrap();
    w.wait_for(v2.id, DeploymentStatus::Cancelled).await;
    let runtime = w.runtime.clone();
    w.until("the cancelled version is removed", || {
        runtime.workloads_of(v2.id).is_empty()
    })
    .await;
    assert_eq!(w.active().await, Some(v1.id));
    assert_eq!(w.proxy.routed(w.service), Some(v1.id));
    assert_eq!(w.runtime.running_of(v1.id), 1);
}

#[tokio::test(start_paused = true)]
async fn rollback_restores_the_earlier_image_and_config() {
    let w = World::image(|_| {}).await;
    w.set_env("GREETING", "one").await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.set_env("GREETING", "two").await;
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    assert_eq!(w.started_env(v2.id, "GREETING").as_deref(), Some("two"));

    let back = w.engine.rollback(w.service, v1.id).await.unwrap();
    assert_ne!(back.id, v1.id, "a rollback is a new deployment");
    w.wait_for(back.id, DeploymentStatus::Active).await;
    assert_eq!(w.started_image(back.id).as_deref(), Some(V1));
    assert_eq!(w.started_env(back.id, "GREETING").as_deref(), Some("one"));
    assert_eq!(w.proxy.routed(w.service), Some(back.id));
    assert_eq!(
        w.get(v2.id).await.state.status,
        DeploymentStatus::Superseded
    );
}

/// What the last `web` workload of `d` was started with for `key`, secrets opened (compared
/// here, never printed).
fn started_value(w: &World, d: DeploymentId, key: &str) -> Option<String> {
    let spec = w
        .runtime
        .started_specs()
        .into_iter()
        .rev()
        .find(|s| s.owner.deployment == d && s.owner.process == "web")?;
    spec.env
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.expose().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_rollback_becomes_the_services_desired_state_so_the_next_deploy_keeps_it() {
    let w = World::image(|_| {}).await;
    let env = Scope::Environment(w.environment);
    let own = Scope::Service(w.service);
    w.set_env("FOO", "1").await;
    w.change_config(own, ConfigChange::set_secret("TOKEN", "first-token"))
        .await;
    w.change_config(env, ConfigChange::set_plain("LEVEL", "a"))
        .await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    let settings_v1 = w.service().await.settings;

    w.set_env("FOO", "2").await;
    w.set_env("ADDED", "later").await;
    w.change_config(own, ConfigChange::set_secret("TOKEN", "second-token"))
        .await;
    w.change_config(env, ConfigChange::set_plain("LEVEL", "b"))
        .await;
    w.update_service(|s| s.settings.memory_limit_mb += 128)
        .await;
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;

    let (back, restored) = w
        .engine
        .rollback_restoring(w.service, v1.id, None)
        .await
        .unwrap();
    assert_eq!(restored.fields, vec!["image", "settings"]);
    assert_eq!(restored.config_keys, vec!["ADDED", "FOO", "TOKEN"]);
    assert_eq!(restored.not_restored, vec![("LEVEL".to_owned(), env)]);
    w.wait_for(back.id, DeploymentStatus::Active).await;
    assert_eq!(started_value(&w, back.id, "FOO").as_deref(), Some("1"));
    let svc = w.service().await;
    assert_eq!(svc.settings, settings_v1);
    assert!(
        matches!(&svc.source, ServiceSource::DockerImage { image, .. } if image.to_string() == V1),
        "{:?}",
        svc.source
    );

    let next = w.deploy().await;
    w.wait_for(next.id, DeploymentStatus::Active).await;
    assert_eq!(w.started_image(next.id).as_deref(), Some(V1));
    assert_eq!(started_value(&w, next.id, "FOO").as_deref(), Some("1"));
    assert_eq!(started_value(&w, next.id, "ADDED"), None);
    assert_eq!(
        started_value(&w, next.id, "TOKEN").as_deref(),
        Some("first-token"),
        "the service-scope secret is restored sealed as it was"
    );
    assert_eq!(
        started_value(&w, next.id, "LEVEL").as_deref(),
        Some("b"),
        "a higher scope's value is not rewritten"
    );
    assert_eq!(w.get(next.id).await.snapshot.settings, settings_v1);

    let log = w.log_of(back.id).await;
    assert!(
        log.contains("LEVEL: inherited from environment, not restored"),
        "{log}"
    );
    assert!(log.contains("service config ADDED, FOO, TOKEN"), "{log}");
    assert!(
        !log.contains("first-token") && !log.contains("second-token"),
        "{log}"
    );
}

fn single_writer_volume(s: &mut Service) {
    s.volumes.push(VolumeMount {
        name: "clank-shop-web-data".into(),
        mount_path: "/data".into(),
        shared: false,
    });
}

#[tokio::test(start_paused = true)]
async fn a_single_writer_volume_holds_requests_stops_the_old_version_then_starts_the_new() {
    let w = World::image(single_writer_volume).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.journal.clear();
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    let prepared = w.position(
        "v2 prepare",
        |c| matches!(c, Call::Prepare { deployment, .. } if *deployment == v2.id),
    );
    let held = w.position("hold", |c| matches!(c, Call::Hold { .. }));
    let stopped = w.position(
        "v1 stop",
        |c| matches!(c, Call::Stop { deployment, .. } if *deployment == v1.id),
    );
    let started = w.position(
        "v2 start",
        |c| matches!(c, Call::Start { deployment, .. } if *deployment == v2.id),
    );
    let cut = w.position(
        "v2 cutover",
        |c| matches!(c, Call::Cutover { deployment } if *deployment == v2.id),
    );
    let released = w.position("release", |c| matches!(c, Call::Release { .. }));
    assert!(
        prepared < held && held < stopped && stopped < started && started < cut && cut < released,
        "prepare, hold, stop old, start new, cutover, release: {:#?}",
        w.journal.calls()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_stop_first_version_gives_the_volume_back_to_the_old_one() {
    let w = World::image(single_writer_volume).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.runtime.script(V2, Behaviour::unhealthy("HTTP 500"));
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Failed).await;
    assert_eq!(w.active().await, Some(v1.id));
    assert_eq!(w.runtime.running_of(v1.id), 1, "v1 runs again");
    assert!(w.runtime.workloads_of(v2.id).is_empty());
    assert_eq!(w.proxy.routed(w.service), Some(v1.id));
    let stopped = w.position(
        "v1 stop",
        |c| matches!(c, Call::Stop { deployment, .. } if *deployment == v1.id),
    );
    let calls = w.journal.calls();
    let restarted = calls
        .iter()
        .rposition(|c| matches!(c, Call::Start { deployment, .. } if *deployment == v1.id))
        .unwrap();
    let released = calls
        .iter()
        .rposition(|c| matches!(c, Call::Release { .. }))
        .unwrap();
    assert!(stopped < restarted && restarted < released, "{calls:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_version_that_never_answers_fails_at_the_deploy_deadline() {
    let w = World::image(|s| s.settings.deploy_timeout_s = 30).await;
    w.runtime.script(V1, Behaviour::silent());
    let began = tokio::time::Instant::now();
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited < Duration::from_secs(40),
        "failed after {waited:?} of (paused) time, not at the 30 s deadline"
    );
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("did not finish in time") && reason.contains("never answered"),
        "the reason names the deadline and what the probes saw: {reason}"
    );
    let runtime = w.runtime.clone();
    w.until("the failed version is removed", || {
        runtime.workloads_of(d.id).is_empty()
    })
    .await;
    assert_eq!(w.proxy.routed(w.service), None);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_engine_adopts_running_workloads_and_finishes_the_deployment_in_flight() {
    let mut w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    w.runtime.script(V2, Behaviour::silent());
    w.use_image(V2).await;
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::HealthChecking).await;

    w.restart_engine().await;
    w.journal.clear();
    // v2's app finishes booting while the control plane is down.
    w.runtime.script(V2, Behaviour::default());
    w.wait_for(v2.id, DeploymentStatus::Active).await;
    assert_eq!(w.starts_of(v2.id), 0, "adopted, not started again");
    assert_eq!(
        w.get(v1.id).await.state.status,
        DeploymentStatus::Superseded
    );
    assert_eq!(w.proxy.routed(w.service), Some(v2.id));
}

#[tokio::test(start_paused = true)]
async fn a_restarted_engine_removes_workloads_of_finished_deployments() {
    let mut w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;
    // The engine stops with v1 ACTIVE; meanwhile v1 is recorded FAILED (as if the control
    // plane had died between failing it and removing its workloads).
    if let Some(t) = w.loop_task.take() {
        t.abort();
        let _ = t.await;
    }
    let current = w.get(v1.id).await;
    let mut failed = current.value.clone();
    failed.state.status = DeploymentStatus::Failed;
    w.catalog.save_deployment(&current, &failed).await.unwrap();
    assert_eq!(w.runtime.workloads_of(v1.id).len(), 1);
    w.restart_engine().await;
    let runtime = w.runtime.clone();
    w.until("the orphan is removed", || {
        runtime.workloads_of(v1.id).is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_git_service_runs_the_image_its_build_tagged() {
    let w = World::git(|_| {}).await;
    w.builder.then(BuildOutcome::Succeeds {
        took: Duration::from_secs(20),
    });
    let d = w.deploy().await;
    let active = w.wait_for(d.id, DeploymentStatus::Active).await;
    assert_eq!(active.state.image.map(|i| i.to_string()), Some(w.tag(1)));
    assert_eq!(w.started_image(d.id), Some(w.tag(1)));
    let built = w.position("build", |c| matches!(c, Call::BuildStarted { number: 1 }));
    let started = w.position("start", |c| matches!(c, Call::Start { .. }));
    assert!(built < started);
    let requests = w.builder.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].repo_url, "https://git.example/shop/web.git");
}

#[tokio::test(start_paused = true)]
async fn a_failed_build_fails_the_deployment_with_the_builders_reason() {
    let w = World::git(|_| {}).await;
    w.builder.then(BuildOutcome::Fails {
        took: Duration::from_secs(3),
        reason: "npm ERR! missing script: build".into(),
    });
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap();
    assert!(reason.contains("missing script: build"), "{reason}");
    assert_eq!(w.starts_of(d.id), 0);
    let builds = w.catalog.builds_of(w.service, Page::all()).await.unwrap();
    assert_eq!(builds.items[0].value.status, BuildStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_build_records_the_commit_its_checkout_reported() {
    let w = World::git(|_| {}).await;
    w.builder.then(BuildOutcome::Fails {
        took: Duration::from_secs(3),
        reason: "npm ERR! missing script: build".into(),
    });
    let d = w.deploy().await;
    w.wait_for(d.id, DeploymentStatus::Failed).await;
    let builds = w.catalog.builds_of(w.service, Page::all()).await.unwrap();
    let build = &builds.items[0].value;
    assert_eq!(build.status, BuildStatus::Failed);
    assert_eq!(build.commit_sha.as_deref(), Some(FAKE_COMMIT));
}

#[tokio::test(start_paused = true)]
async fn a_build_past_build_timeout_is_stopped_and_fails_the_deployment() {
    let w = World::git(|s| s.settings.build_timeout_s = 60).await;
    w.builder.then(BuildOutcome::Hangs);
    let began = tokio::time::Instant::now();
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    assert!(
        began.elapsed() >= Duration::from_secs(55),
        "{:?}",
        began.elapsed()
    );
    let reason = failed.state.reason.unwrap();
    assert!(reason.contains("build_timeout_s"), "{reason}");
    let journal = w.journal.clone();
    w.until("the build's future is dropped", || {
        journal.calls().contains(&Call::BuildDropped { number: 1 })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn deploys_requested_during_a_build_queue_and_only_the_newest_runs_next() {
    let w = World::git(|_| {}).await;
    w.builder.then(BuildOutcome::Succeeds {
        took: Duration::from_secs(10),
    });
    let first = w.deploy().await;
    w.wait_for(first.id, DeploymentStatus::Building).await;
    let second = w.deploy().await;
    let third = w.deploy().await;
    let skipped = w.wait_for(second.id, DeploymentStatus::Cancelled).await;
    assert!(
        skipped
            .state
            .reason
            .unwrap()
            .contains("superseded by deployment #3"),
        "the queued one names the newer request"
    );
    w.wait_for(third.id, DeploymentStatus::Active).await;
    assert_eq!(
        w.get(first.id).await.state.status,
        DeploymentStatus::Superseded
    );
    // The newest waited for the first to finish: its build began after the first's cutover.
    let first_cut = w.position(
        "first cutover",
        |c| matches!(c, Call::Cutover { deployment } if *deployment == first.id),
    );
    let second_build = w.position("build 2", |c| matches!(c, Call::BuildStarted { number: 2 }));
    assert!(first_cut < second_build, "{:#?}", w.journal.calls());
    assert_eq!(
        w.journal
            .filtered(|c| matches!(c, Call::BuildStarted { .. }))
            .len(),
        2,
        "the skipped deployment never built"
    );
}

/// What the engine logs (through `tracing`) while it is held.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_reconcile_pass_is_logged_and_the_service_is_reconciled_again() {
    // The paused runtime runs every task on this thread, so a thread-local subscriber sees
    // the engine's log lines.
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let w = World::image(|_| {}).await;
    w.runtime.panic_on_next_start();
    let d = w.deploy().await;
    w.wait_for(d.id, DeploymentStatus::Active).await;
    assert!(
        w.starts_of(d.id) >= 2,
        "the pass that panicked in start was followed by another"
    );
    let text = logs.text();
    assert!(
        text.contains("A reconcile pass panicked")
            && text.contains("the fake runtime panics in start"),
        "the panic is logged with its message:\n{text}"
    );
    // And the service keeps being reconciled afterwards: a new version still goes through.
    w.use_image(V2).await;
    let next = w.deploy().await;
    w.wait_for(next.id, DeploymentStatus::Active).await;
}

#[tokio::test(start_paused = true)]
async fn a_dependent_stays_pending_until_its_dependency_is_active_across_a_restart() {
    let mut w = World::image(|s| s.depends_on = vec!["db".into()]).await;
    let web = w.deploy().await;
    // The dependency does not exist yet: web waits, saying for what.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let waiting = w.get(web.id).await;
    assert_eq!(waiting.state.status, DeploymentStatus::Pending);
    assert_eq!(
        waiting.state.reason.as_deref(),
        Some("waiting for db to be ACTIVE")
    );
    assert_eq!(w.starts_of(web.id), 0, "nothing started while waiting");

    w.restart_engine().await;
    let app = w.service().await;
    let mut db = Service::new(
        app.workspace_id,
        app.project_id,
        app.environment_id,
        "db",
        app.source.clone(),
        Timestamp::now(),
    )
    .unwrap();
    db.settings = app.settings.clone();
    w.catalog.create(&db).await.unwrap();
    let db_deploy = w
        .engine
        .deploy(db.id, Trigger::Manual { by: None })
        .await
        .unwrap();
    w.wait_for(db_deploy.id, DeploymentStatus::Active).await;
    let active = w.wait_for(web.id, DeploymentStatus::Active).await;
    let db_active_at = w
        .get(db_deploy.id)
        .await
        .state
        .history
        .iter()
        .find(|h| h.to == DeploymentStatus::Active)
        .map(|h| h.at)
        .unwrap();
    let web_left_pending_at = active
        .state
        .history
        .iter()
        .find(|h| h.from == Some(DeploymentStatus::Pending))
        .map(|h| h.at)
        .unwrap();
    assert!(
        web_left_pending_at >= db_active_at,
        "web left PENDING at {web_left_pending_at}, before db was ACTIVE at {db_active_at}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependent_whose_dependency_never_comes_fails_at_its_deadline_naming_it() {
    let w = World::image(|s| s.depends_on = vec!["db".into()]).await;
    let web = w.deploy().await;
    let failed = w.wait_for(web.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("waiting for db to be ACTIVE"),
        "the reason names the dependency: {reason}"
    );
    assert_eq!(w.starts_of(web.id), 0);
}

const PRIVATE: &str = "registry.example/private/app:v1";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "tok-fast-secret";

/// A private image service naming `REGISTRY_AUTH`, whose credentials are `credentials`, set
/// at the environment scope (they reach the service by the cascade); its pulls answer `pull`.
async fn private_image(pull: Pull, credentials: &str) -> World {
    let source = ServiceSource::DockerImage {
        image: PRIVATE.parse().unwrap(),
        credentials_secret: Some("REGISTRY_AUTH".into()),
    };
    let w = World::with_source(source, |_| {}).await;
    w.runtime.script(
        PRIVATE,
        Behaviour {
            pull,
            ..Behaviour::default()
        },
    );
    let scope = Scope::Environment(w.environment);
    w.change_config(
        scope,
        ConfigChange::set_secret("REGISTRY_AUTH", credentials),
    )
    .await;
    w
}

#[tokio::test(start_paused = true)]
async fn the_pull_gets_the_deadlines_time_and_the_cascaded_credentials_before_any_start() {
    let pinned = Pull::Pinned {
        progress: vec!["layer aaa: Downloading 1.0 MB / 4.0 MB".into()],
        digest: DIGEST.into(),
    };
    let w = private_image(pinned, &format!("bot:{PASSWORD}")).await;
    let d = w.deploy().await;
    let active = w.wait_for(d.id, DeploymentStatus::Active).await;
    let pulled = w.position("pull", |c| matches!(c, Call::Pull { .. }));
    let started = w.position("start", |c| matches!(c, Call::Start { .. }));
    assert!(pulled < started, "{:#?}", w.journal.calls());
    let Call::Pull {
        image,
        within,
        auth,
    } = w.journal.calls()[pulled].clone()
    else {
        unreachable!()
    };
    assert_eq!(image, PRIVATE);
    assert_eq!(auth, Some(("bot".to_owned(), PASSWORD.to_owned())));
    // What is left of DEPLOYING's 30 s (entered a moment ago), less the one-second margin.
    assert!(
        within <= Duration::from_secs(29) && within > Duration::from_secs(28),
        "{within:?}"
    );
    assert_eq!(active.state.image_digest.as_deref(), Some(DIGEST));
    let log = w.log_of(d.id).await;
    assert!(
        log.contains("layer aaa: Downloading 1.0 MB / 4.0 MB"),
        "{log}"
    );
    assert!(
        log.contains(&format!("image pinned at digest {DIGEST}")),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_refused_pull_fails_the_deployment_with_its_reason_and_starts_nothing() {
    let why = "registry `registry.example` refused the credentials of user `bot` for image \
               `registry.example/private/app:v1` (authentication failed: unauthorized)";
    let refused = Pull::Refused(RuntimeFailure::ImageMissing, why.to_owned());
    let w = private_image(refused, &format!("bot:{PASSWORD}")).await;
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap_or_default();
    assert!(reason.contains(why), "{reason}");
    assert!(reason.contains("config secret `REGISTRY_AUTH`"), "{reason}");
    assert_eq!(w.starts_of(d.id), 0);
    assert!(!w.log_of(d.id).await.contains(PASSWORD));
}

#[tokio::test(start_paused = true)]
async fn credentials_that_are_not_user_colon_token_fail_without_pulling() {
    let w = private_image(Pull::Nothing, PASSWORD).await;
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap_or_default();
    assert!(
        reason.contains("`REGISTRY_AUTH` must hold `username:password`"),
        "{reason}"
    );
    assert!(!reason.contains(PASSWORD), "{reason}");
    let pulls = w.journal.filtered(|c| matches!(c, Call::Pull { .. }));
    assert!(pulls.is_empty(), "{pulls:?}");
    assert_eq!(w.starts_of(d.id), 0);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_service_loses_route_and_workloads_stays_stopped_across_a_restart_and_starts_again()
 {
    let mut w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;

    let stopped = w.engine.stop_service(w.service).await.unwrap();
    assert!(stopped.stopped_at.is_some());
    let (runtime, proxy, service) = (w.runtime.clone(), w.proxy.clone(), w.service);
    w.until("the stopped service's workloads and route are gone", || {
        runtime.workloads_of(v1.id).is_empty() && proxy.routed(service).is_none()
    })
    .await;
    // History is kept: v1 is still the ACTIVE deployment, ready to be started again.
    assert_eq!(w.get(v1.id).await.state.status, DeploymentStatus::Active);
    assert_eq!(w.active().await, Some(v1.id));
    let refused = w
        .engine
        .deploy(w.service, Trigger::Manual { by: None })
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("clank service start"), "{refused}");

    // A restarted control plane neither restarts nor routes it.
    w.restart_engine().await;
    w.journal.clear();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(w.runtime.workloads_of(v1.id).is_empty());
    assert_eq!(w.proxy.routed(w.service), None);
    assert_eq!(w.starts_of(v1.id), 0);

    let started = w.engine.start_service(w.service).await.unwrap();
    assert!(started.stopped_at.is_none());
    let (runtime, proxy) = (w.runtime.clone(), w.proxy.clone());
    w.until("the started service runs and is routed again", || {
        runtime.running_of(v1.id) == 1 && proxy.routed(service) == Some(v1.id)
    })
    .await;
    let start = w.position("start", |c| matches!(c, Call::Start { .. }));
    let cut = w.position("cutover", |c| matches!(c, Call::Cutover { .. }));
    assert!(
        start < cut,
        "the route comes back only to a started version"
    );
    assert_eq!(w.get(v1.id).await.state.status, DeploymentStatus::Active);
    let v2 = w.deploy().await;
    w.wait_for(v2.id, DeploymentStatus::Active).await;
}

#[tokio::test(start_paused = true)]
async fn a_service_with_a_deployment_in_flight_is_not_stopped() {
    let w = World::image(|_| {}).await;
    w.runtime.script(V1, Behaviour::silent());
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::HealthChecking).await;
    let refused = w
        .engine
        .stop_service(w.service)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("#1") && refused.contains("cancel"),
        "{refused}"
    );
    assert!(w.service().await.stopped_at.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_deleted_service_is_parked_like_a_stopped_one_and_a_purge_removes_what_is_left() {
    let w = World::image(|_| {}).await;
    let v1 = w.deploy().await;
    w.wait_for(v1.id, DeploymentStatus::Active).await;

    let catalog = w.engine.catalog().clone();
    let mark = |deleted: bool| {
        let catalog = catalog.clone();
        let id = w.service.to_string();
        async move {
            catalog
                .modify::<clank_core::model::Service>(&id, |s| {
                    s.deleted_at = deleted.then_some(clank_core::Timestamp(1));
                    Ok(())
                })
                .await
                .unwrap()
        }
    };
    mark(true).await;
    w.engine.park(&[w.service]).await.unwrap();
    let (runtime, proxy, service) = (w.runtime.clone(), w.proxy.clone(), w.service);
    w.until("the deleted service's workloads and route are gone", || {
        runtime.workloads_of(v1.id).is_empty() && proxy.routed(service).is_none()
    })
    .await;
    assert_eq!(w.get(v1.id).await.state.status, DeploymentStatus::Active);
    let refused = w
        .engine
        .deploy(w.service, Trigger::Manual { by: None })
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("restore it first"), "{refused}");

    // Restored: the same version runs and is routed again.
    let restored = mark(false).await;
    w.engine.unpark(&[w.service]);
    w.until("the restored service runs and is routed again", || {
        runtime.running_of(v1.id) == 1 && proxy.routed(service) == Some(v1.id)
    })
    .await;

    // A purge removes every workload of the service and its route, whatever its records say.
    let d = w.get(v1.id).await.value;
    let removed = w
        .engine
        .remove_service_workloads(&restored, &[d])
        .await
        .unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(w.runtime.workloads_of(v1.id).is_empty());
    assert_eq!(w.proxy.routed(w.service), None);
}
