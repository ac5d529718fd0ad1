//! The engine test harness shared by the Docker-backed suites: a fresh redb store with one
//! workspace, project and `web` service, the real Docker runtime, a `RouteTable`, and the
//! engine running its loop — plus the helpers the suites assert with. Dropping a `Platform`
//! removes its workloads, network and built images, even after a panic.

#![allow(dead_code)] // Each suite uses its own subset of the helpers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clank_core::config::{ConfigChange, ConfigLayer, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId, WorkspaceId};
use clank_core::model::{Build, Deployment, Project, Service, ServiceSource, Trigger, Workspace};
use clank_core::runtime::{OwnerFilter, Runtime, WorkloadState};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::{Catalog, Page, Versioned};
use clank_core::{ImageRef, Timestamp};
use clank_docker::{DockerImageBuilder, DockerRuntime};
use clank_engine::{Engine, EngineConfig, RouteTable};
use clank_store::RedbStore;
use clank_testkit::cleanup::block_on_aside;
use clank_testkit::runtime::skip_or_fail;
use clank_testkit::testapp;
use tokio::task::JoinHandle;

pub(crate) struct Platform {
    pub catalog: Catalog,
    pub keyring: Keyring,
    pub base_images: Option<Vec<(String, String)>>,
    /// `EngineConfig::image_retention` of the next engine (`crash_and_restart` applies it).
    pub image_retention: usize,
    pub runtime: Arc<DockerRuntime>,
    pub routes: Arc<RouteTable>,
    pub engine: Engine,
    pub loop_task: Option<JoinHandle<()>>,
    pub workspace: WorkspaceId,
    pub network: String,
    pub project_slug: String,
    pub service: ServiceId,
    pub _dir: tempfile::TempDir,
}

pub(crate) async fn docker() -> Option<Arc<DockerRuntime>> {
    let runtime = match DockerRuntime::connect().await {
        Ok(r) => r,
        Err(e) => return skip_or_fail("a Docker Engine", &e.to_string()),
    };
    if let Err(e) = testapp::docker::ensure_testapp_image(runtime.client()).await {
        panic!("could not build the test app image: {e}");
    }
    Some(Arc::new(runtime))
}

impl Platform {
    /// A git service `web` on `repo_url`, built by a `DockerImageBuilder` (unless `builder`
    /// is `None`) with `base_images` overrides. Not validated: one test stores a source
    /// validation would refuse, to prove the builder refuses it too.
    pub(crate) async fn git(
        repo_url: &str,
        builder: Option<&[(&str, &str)]>,
        tweak: impl FnOnce(&mut Service),
    ) -> Option<Platform> {
        let source = ServiceSource::Git {
            repo_url: repo_url.to_owned(),
            branch: "main".into(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: None,
        };
        Platform::with_source(source, builder, |s| {
            s.settings.deploy_timeout_s = 30;
            s.settings.build_timeout_s = 120;
            s.settings.cpu_limit = 1.0;
            tweak(s);
        })
        .await
    }

    /// A service `web` from `source` in a fresh store, project and Docker network of its own.
    pub(crate) async fn with_source(
        source: ServiceSource,
        builder: Option<&[(&str, &str)]>,
        tweak: impl FnOnce(&mut Service),
    ) -> Option<Platform> {
        Platform::in_project(None, source, builder, tweak).await
    }

    /// Like [`Platform::with_source`], in a project of slug `project_slug` (a fresh workspace
    /// each time, so two platforms with one slug are two tenants).
    pub(crate) async fn in_project(
        project_slug: Option<&str>,
        source: ServiceSource,
        builder: Option<&[(&str, &str)]>,
        tweak: impl FnOnce(&mut Service),
    ) -> Option<Platform> {
        let runtime = docker().await?;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("clank.redb")).unwrap();
        let catalog = Catalog::new(Arc::new(store));
        let now = Timestamp::now();
        let ws = Workspace::new("Engine tests", Some("engine-tests"), now).unwrap();
        catalog.create(&ws).await.unwrap();
        // Project slugs name Docker networks: unique per test so parallel tests never share.
        let id = ServiceId::new().to_string();
        let slug = project_slug
            .map(str::to_owned)
            .unwrap_or_else(|| format!("e2e-{}", &id[id.len() - 10..]));
        let project = Project::new(ws.id, "E2E", Some(&slug), now).unwrap();
        let env = catalog.create_project(&project, now).await.unwrap();
        let mut service = Service::new(ws.id, project.id, env.id, "web", source, now).unwrap();
        service.settings.health_check_interval_s = 1;
        tweak(&mut service);
        catalog.create(&service).await.unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let routes = Arc::new(RouteTable::default());
        let base_images: Option<Vec<(String, String)>> = builder.map(|images| {
            images
                .iter()
                .map(|(a, i)| ((*a).to_owned(), (*i).to_owned()))
                .collect()
        });
        let engine = engine(
            &catalog,
            &runtime,
            &routes,
            &keyring,
            base_images.as_deref(),
            EngineConfig::default().image_retention,
        );
        let mut p = Platform {
            catalog,
            keyring,
            base_images,
            image_retention: EngineConfig::default().image_retention,
            runtime,
            routes,
            engine,
            loop_task: None,
            workspace: ws.id,
            network: project.network_name(),
            project_slug: slug,
            service: service.id,
            _dir: dir,
        };
        p.start_loop();
        Some(p)
    }

    pub(crate) fn start_loop(&mut self) {
        let engine = self.engine.clone();
        self.loop_task = Some(tokio::spawn(async move {
            engine.run(std::future::pending()).await.unwrap();
        }));
    }

    /// The control plane dies: the loop is aborted and every in-memory piece is replaced;
    /// only the store survives.
    pub(crate) async fn crash_and_restart(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
            let _ = t.await;
        }
        self.runtime = Arc::new(DockerRuntime::connect().await.unwrap());
        self.routes = Arc::new(RouteTable::default());
        self.engine = engine(
            &self.catalog,
            &self.runtime,
            &self.routes,
            &self.keyring,
            self.base_images.as_deref(),
            self.image_retention,
        );

        self.start_loop();
    }

    /// Apply `change` to the service's own config layer.
    pub(crate) async fn set_config(&self, change: ConfigChange) {
        self.set_config_at(Scope::Service(self.service), change)
            .await;
    }

    /// Apply `change` to the config layer of `scope` (created if it has none yet).
    pub(crate) async fn set_config_at(&self, scope: Scope, change: ConfigChange) {
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

    pub(crate) async fn deploy(&self) -> Deployment {
        self.engine
            .deploy(self.service, Trigger::Manual { by: None })
            .await
            .unwrap()
    }

    /// Deploy now and wait (`within`) for the deployment to fail: it as it failed, and why.
    pub(crate) async fn deploy_and_fail(&self, within: Duration) -> (Deployment, String) {
        let d = self.deploy().await;
        let failed = self.wait_for(d.id, DeploymentStatus::Failed, within).await;
        let reason = failed
            .state
            .reason
            .clone()
            .expect("a failed deployment says why");
        (failed, reason)
    }

    pub(crate) async fn get(&self, id: DeploymentId) -> Versioned<Deployment> {
        self.catalog
            .require::<Deployment>(&id.to_string())
            .await
            .unwrap()
    }

    pub(crate) async fn log_of(&self, id: DeploymentId) -> Vec<String> {
        self.engine
            .deploy_log(id)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.message)
            .collect()
    }

    pub(crate) async fn wait_for(
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
                panic!(
                    "deployment #{} is {} ({:?}), wanted {want}; log:\n{}",
                    d.number,
                    d.state.status,
                    d.state.reason,
                    self.log_of(id).await.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn builds(&self) -> Vec<Build> {
        let mut items: Vec<Build> = self
            .catalog
            .builds_of(self.service, Page::all())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|v| v.value)
            .collect();
        items.sort_by_key(|b| b.number);
        items
    }

    pub(crate) async fn active(&self) -> Option<DeploymentId> {
        self.catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap()
            .active_deployment
    }

    pub(crate) async fn web_endpoint(&self, d: DeploymentId) -> SocketAddr {
        self.runtime
            .list(&OwnerFilter {
                deployment: Some(d),
                ..OwnerFilter::default()
            })
            .await
            .unwrap()
            .iter()
            .find(|w| w.owner.process == "web")
            .and_then(|w| w.endpoint)
            .expect("web endpoint")
    }

    pub(crate) async fn containers_of(&self, d: DeploymentId) -> usize {
        self.runtime
            .list(&OwnerFilter {
                deployment: Some(d),
                ..OwnerFilter::default()
            })
            .await
            .unwrap()
            .len()
    }

    /// Docker stops a build's step when its client disconnects: wait for that.
    pub(crate) async fn wait_until_no_container_runs(&self, command: &str) {
        let docker = self.runtime.client();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let running = docker
                .list_containers(None::<bollard::query_parameters::ListContainersOptions>)
                .await
                .unwrap();
            let found = running
                .iter()
                .any(|c| c.command.as_deref().unwrap_or_default().contains(command));
            if !found {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a build container running `{command}` is still there"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// (process type, container command) of each of the deployment's workloads, sorted.
    pub(crate) async fn commands(&self, d: DeploymentId) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let all = self
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        for w in all {
            let c = self
                .runtime
                .client()
                .inspect_container(&w.id.0, None)
                .await
                .unwrap();
            out.push((w.owner.process.clone(), c.config.unwrap().cmd.unwrap()));
        }
        out.sort();
        out
    }

    pub(crate) fn image(&self, n: u64) -> ImageRef {
        clank_engine::build_tag(self.workspace, &self.project_slug, "web", n).unwrap()
    }
}

fn engine(
    catalog: &Catalog,
    runtime: &Arc<DockerRuntime>,
    routes: &Arc<RouteTable>,
    keyring: &Keyring,
    base_images: Option<&[(String, String)]>,
    image_retention: usize,
) -> Engine {
    let config = EngineConfig {
        image_retention,
        stop_grace: Duration::from_secs(2),
        probe_timeout: Duration::from_secs(3),
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        catalog.clone(),
        runtime.clone(),
        routes.clone(),
        keyring.clone(),
        config,
    );
    match base_images {
        Some(images) => {
            let mut b =
                DockerImageBuilder::new(runtime.client().clone()).allow_local_repositories(true);
            for (arg, image) in images {
                b = b.with_base_image(arg, image).unwrap();
            }
            engine.with_builder(Arc::new(b))
        }
        None => engine,
    }
}

impl Drop for Platform {
    /// Remove the test's workloads, network and built images, even after a panic.
    fn drop(&mut self) {
        if let Some(t) = self.loop_task.take() {
            t.abort();
        }
        let workspace = self.workspace;
        let network = self.network.clone();
        let images: Vec<String> = (1..=8).map(|n| self.image(n).to_string()).collect();
        block_on_aside(async move {
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
            for image in images {
                let _ = runtime
                    .client()
                    .remove_image(
                        &image,
                        None::<bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            }
        });
    }
}

impl Platform {
    /// The `web` service running the test app image (`clank-testapp:latest`), validated.
    pub(crate) async fn image_service(tweak: impl FnOnce(&mut Service)) -> Option<Platform> {
        let image = testapp::IMAGE.parse().unwrap();
        Platform::with_source(
            ServiceSource::DockerImage {
                image,
                credentials_secret: None,
            },
            None,
            |s| {
                s.settings.deploy_timeout_s = 20;
                tweak(s);
                s.validate().unwrap();
            },
        )
        .await
    }

    /// Set a plain variable at the service scope.
    pub(crate) async fn set_env(&self, key: &str, value: &str) {
        self.set_config(ConfigChange::set_plain(key, value)).await;
    }

    /// Change the service record (as an API update would) before the next deploy.
    pub(crate) async fn update_service(&self, change: impl FnOnce(&mut Service)) -> Service {
        let svc = self
            .catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap();
        let mut next = svc.value.clone();
        change(&mut next);
        self.catalog.update(&svc, &next).await.unwrap();
        self.service().await
    }

    pub(crate) async fn service(&self) -> Service {
        self.catalog
            .require::<Service>(&self.service.to_string())
            .await
            .unwrap()
            .value
    }

    /// Retiring an old version (graceful stop, then remove) follows its supersession.
    pub(crate) async fn wait_until_retired(&self, d: DeploymentId, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.containers_of(d).await != 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "workloads of {d} still exist after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Counts the service's running containers every few milliseconds; keeps the highest count.
pub(crate) struct Sampler {
    max: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub(crate) fn start(p: &Platform) -> Sampler {
        let (max, samples, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let runtime = p.runtime.clone();
        let filter = OwnerFilter {
            service: Some(p.service),
            ..OwnerFilter::default()
        };
        let (m, n, s) = (max.clone(), samples.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                if let Ok(all) = runtime.list(&filter).await {
                    let running = all
                        .iter()
                        .filter(|w| matches!(w.state, WorkloadState::Running { .. }))
                        .count();
                    m.fetch_max(running, Ordering::Relaxed);
                    n.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Sampler {
            max,
            samples,
            stop,
            task,
        }
    }

    /// (highest number of running containers seen, samples taken)
    pub(crate) async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.max.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}
