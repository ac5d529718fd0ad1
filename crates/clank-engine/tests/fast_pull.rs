//! The engine's pull step on a recording fake, without Docker, on tokio's paused clock: what
//! the runtime is asked to pull (the time left in DEPLOYING, the credentials from the config
//! secret the source names, resolved through the cascade), that it happens before any start,
//! that its progress and digest reach the deploy log and the record, and that a refused pull
//! fails the deployment with the runtime's reason and starts nothing. The real pull against a
//! real registry is `registry_pull.rs` (and `clank-docker`'s `tests/registry.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::config::{ConfigChange, ConfigLayer, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{
    Deployment, HealthCheck, Project, Service, ServiceSource, Trigger, Workspace,
};
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogOptions, LogStreamBox, OwnerFilter, ProbeResult, PullProgress,
    RegistryAuth, Runtime, RuntimeCapabilities, WorkloadId, WorkloadSpec, WorkloadStats,
    WorkloadStatus,
};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::Catalog;
use clank_core::store::memory::MemoryStore;
use clank_core::{Error, ImageRef, Result, RuntimeFailure, Timestamp};
use clank_engine::{Clock, Engine, EngineConfig};
use clank_testkit::fakes::{FakeProxy, FakeRuntime, Journal};

const IMAGE: &str = "registry.example/private/app:v1";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const PASSWORD: &str = "tok-fast-secret";

/// What the engine asked of the runtime, in order.
#[derive(Debug, Clone, PartialEq)]
enum Asked {
    Pull {
        image: String,
        within: Duration,
        auth: Option<(String, String)>,
    },
    Start,
}

/// [`FakeRuntime`] with a scripted `pull` that records what it was asked.
#[derive(Debug)]
struct PullingRuntime {
    inner: FakeRuntime,
    asked: Mutex<Vec<Asked>>,
    /// `None`: pulls succeed with [`DIGEST`]; else they fail with this.
    refusal: Option<(RuntimeFailure, String)>,
}

impl PullingRuntime {
    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Runtime for PullingRuntime {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn capabilities(&self) -> RuntimeCapabilities {
        self.inner.capabilities()
    }
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.inner.ensure_network(name, labels).await
    }
    async fn remove_network(&self, name: &str) -> Result<()> {
        self.inner.remove_network(name).await
    }
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        self.inner.ensure_volume(name, labels).await
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        self.inner.remove_volume(name).await
    }
    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        self.asked.lock().unwrap().push(Asked::Start);
        self.inner.start(spec).await
    }
    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
        within: Duration,
        progress: PullProgress<'_>,
    ) -> Result<Option<String>> {
        self.asked.lock().unwrap().push(Asked::Pull {
            image: image.to_string(),
            within,
            auth: auth.map(|a| (a.username.clone(), a.password.expose().to_owned())),
        });
        if let Some((failure, message)) = &self.refusal {
            return Err(Error::runtime(*failure, message.clone()));
        }
        progress(format!(
            "pulling image `{image}` from registry `registry.example`"
        ));
        progress("layer aaa: Downloading 1.0 MB / 4.0 MB".to_owned());
        progress("layer aaa: Pull complete".to_owned());
        Ok(Some(DIGEST.to_owned()))
    }
    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        self.inner.prepare(spec).await
    }
    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        self.inner.inspect(id).await
    }
    async fn stop(&self, id: &WorkloadId, grace: Duration) -> Result<()> {
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &WorkloadId) -> Result<()> {
        self.inner.remove(id).await
    }
    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        self.inner.list(filter).await
    }
    async fn logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox> {
        self.inner.logs(id, options).await
    }
    async fn exec(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput> {
        self.inner.exec(id, request).await
    }
    async fn stats(&self, id: &WorkloadId) -> Result<WorkloadStats> {
        self.inner.stats(id).await
    }
    async fn probe(
        &self,
        workload: &WorkloadStatus,
        check: &HealthCheck,
        timeout: Duration,
    ) -> Result<Option<ProbeResult>> {
        self.inner.probe(workload, check, timeout).await
    }
}

struct World {
    catalog: Catalog,
    keyring: Keyring,
    runtime: Arc<PullingRuntime>,
    engine: Engine,
    service: ServiceId,
    environment: clank_core::id::EnvironmentId,
    _loop: tokio::task::JoinHandle<()>,
}

impl World {
    /// A private image service naming `REGISTRY_AUTH`, on a runtime whose pulls answer as
    /// `refusal` says (succeed when `None`).
    async fn new(refusal: Option<(RuntimeFailure, String)>) -> World {
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let now = Timestamp::now();
        let ws = Workspace::new("Fast", Some("fast"), now).unwrap();
        catalog.create(&ws).await.unwrap();
        let project = Project::new(ws.id, "Shop", Some("shop"), now).unwrap();
        let env = catalog.create_project(&project, now).await.unwrap();
        let source = ServiceSource::DockerImage {
            image: IMAGE.parse().unwrap(),
            credentials_secret: Some("REGISTRY_AUTH".into()),
        };
        let mut service = Service::new(ws.id, project.id, env.id, "web", source, now).unwrap();
        service.settings.port = Some(8080);
        service.settings.health_check_interval_s = 1;
        service.settings.deploy_timeout_s = 30;
        service.validate().unwrap();
        catalog.create(&service).await.unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let journal = Journal::default();
        let runtime = Arc::new(PullingRuntime {
            inner: FakeRuntime::new(journal.clone()),
            asked: Mutex::default(),
            refusal,
        });
        let proxy = Arc::new(FakeProxy::new(journal));
        let config = EngineConfig {
            clock: Clock::tokio(),
            ..EngineConfig::default()
        };
        let engine = Engine::new(
            catalog.clone(),
            runtime.clone(),
            proxy,
            keyring.clone(),
            config,
        );
        let looping = engine.clone();
        let _loop = tokio::spawn(async move {
            looping.run(std::future::pending()).await.unwrap();
        });
        World {
            catalog,
            keyring,
            runtime,
            engine,
            service: service.id,
            environment: env.id,
            _loop,
        }
    }

    /// Set the credentials at the environment scope: they reach the service by the cascade.
    async fn set_environment_secret(&self, key: &str, value: &str) {
        let scope = Scope::Environment(self.environment);
        let current = self.catalog.config_layer(scope).await.unwrap();
        let base = current
            .as_ref()
            .map(|v| v.value.clone())
            .unwrap_or_else(|| ConfigLayer::new(scope));
        let change = ConfigChange::set_secret(key, value);
        let next = apply_bulk(&base, &[change], &self.keyring, Timestamp::now()).unwrap();
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

    async fn wait_for(&self, id: DeploymentId, want: DeploymentStatus) -> Deployment {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            let d = self
                .catalog
                .require::<Deployment>(&id.to_string())
                .await
                .unwrap()
                .value;
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
}

#[tokio::test(start_paused = true)]
async fn the_pull_gets_the_deadlines_time_and_the_cascaded_credentials_before_any_start() {
    let w = World::new(None).await;
    w.set_environment_secret("REGISTRY_AUTH", &format!("bot:{PASSWORD}"))
        .await;
    let d = w.deploy().await;
    let active = w.wait_for(d.id, DeploymentStatus::Active).await;
    let asked = w.runtime.asked();
    let Some(Asked::Pull {
        image,
        within,
        auth,
    }) = asked.first().cloned()
    else {
        panic!("the first thing asked is the pull: {asked:?}");
    };
    assert_eq!(image, IMAGE);
    assert_eq!(auth, Some(("bot".to_owned(), PASSWORD.to_owned())));
    // What is left of DEPLOYING's 30 s (entered a moment ago), less the one-second margin.
    assert!(
        within <= Duration::from_secs(29) && within > Duration::from_secs(28),
        "{within:?}"
    );
    assert!(asked[1..].contains(&Asked::Start), "{asked:?}");
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
    let w = World::new(Some((RuntimeFailure::ImageMissing, why.to_owned()))).await;
    w.set_environment_secret("REGISTRY_AUTH", &format!("bot:{PASSWORD}"))
        .await;
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap_or_default();
    assert!(reason.contains(why), "{reason}");
    assert!(reason.contains("config secret `REGISTRY_AUTH`"), "{reason}");
    assert!(!w.runtime.asked().contains(&Asked::Start));
    assert!(!w.log_of(d.id).await.contains(PASSWORD));
}

#[tokio::test(start_paused = true)]
async fn credentials_that_are_not_user_colon_token_fail_without_pulling() {
    let w = World::new(None).await;
    w.set_environment_secret("REGISTRY_AUTH", PASSWORD).await;
    let d = w.deploy().await;
    let failed = w.wait_for(d.id, DeploymentStatus::Failed).await;
    let reason = failed.state.reason.unwrap_or_default();
    assert!(
        reason.contains("`REGISTRY_AUTH` must hold `username:password`"),
        "{reason}"
    );
    assert!(!reason.contains(PASSWORD), "{reason}");
    assert!(w.runtime.asked().is_empty(), "{:?}", w.runtime.asked());
}
