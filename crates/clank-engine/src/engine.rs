//! The `Engine`: the public face of deploys (deploy, rollback, cancel, events, logs) and the
//! reconciler loop that drives every deployment with the pure planner.
//!
//! One reconcile pass per service at a time; a pass observes the world for each live
//! deployment of the service, asks `clank_core::deploy::plan` what to do, runs the commands
//! through the `Runtime` and the `Proxy`, and writes the transition with compare-and-swap.
//! Nothing here decides lifecycle policy — that is all in the planner.
//!
//! Cutovers are start-first, except where `deploy::cutover_strategy` says stop-first (the new
//! version's `web` workloads need the fixed host address the ACTIVE one publishes on): then
//! `StartWorkload` stops the ACTIVE's `web` workloads just before starting the new ones, and
//! `StartPrevious` starts them again if the new version fails.
//!
//! Builds of git services (with [`Engine::with_builder`]): `StartBuild` records a numbered
//! `Build` (v1, v2, … per service) and runs the `ImageBuilder` in a task bounded by the
//! BUILDING deadline (`build_timeout_s`), its log streamed (batched) into the deploy log and events; `observe`
//! reports the task's state to the planner; `CancelBuild` aborts the task. Build state is in
//! memory: an engine restarted mid-build sees no build and the planner starts a new one.
//!
//! `StartWorkload` pulls the deployment's images first (`engine/pull.rs`): with the registry
//! credentials its config secret holds, bounded by what is left of the DEPLOYING deadline, the
//! runtime's progress lines in the deploy log, the digest recorded on the deployment.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::builder::ImageBuilder;
use clank_core::config::{self, ConfigLayer, EnvValue, ResolvedConfig, Scope};
use clank_core::deploy::{self, Command, DeploymentStatus, HealthObservation, Observed, Plan};
use clank_core::id::{BuildId, DeploymentId, ServerId, ServiceId, UserId};
use clank_core::model::{
    CancelRequest, Deployment, Environment, Project, RestoredState, Service, Trigger, Workspace,
};
use clank_core::proxy::Proxy;
use clank_core::runtime::{OwnerFilter, Placement, PortBinding, Runtime, WorkloadId, WorkloadSpec};
use clank_core::secret::Keyring;
use clank_core::store::catalog::{Catalog, Page, Versioned};
use clank_core::{Error, ImageRef, Result, RuntimeFailure, Timestamp};
use futures_util::FutureExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::events::{DeployLog, Event, EventBus, EventKind, EventStream, LogEntry};
use crate::workloads::workload_specs;

mod builds;
mod lifecycle;
mod observe;
mod pull;
mod removal;
mod retire;
mod routing;
mod stop_first;

pub use builds::build_tag;

/// Tunables of the engine; the defaults suit a single host.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How long a stopped workload gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// How long in-flight requests to an old version may run after a cutover.
    pub drain_timeout: Duration,
    /// Bound on one health probe.
    pub probe_timeout: Duration,
    /// Where `web` workloads publish their port (the prober and proxy connect there).
    pub publish_ip: IpAddr,
    /// Retry delay after a reconcile pass failed (store or runtime unavailable).
    pub error_backoff: Duration,
    /// How many of a git service's newest deployments keep their built images (so they can
    /// be rolled back to); older build images are pruned after each cutover.
    pub image_retention: usize,
    /// The wall clock of deadlines and records (tests use `Clock::tokio` with paused time).
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            stop_grace: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(2),
            publish_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            error_backoff: Duration::from_secs(1),
            image_retention: 10,
            clock: Clock::system(),
        }
    }
}

/// Drives deployments. Cheap to clone; all clones share one engine.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Catalog,
    runtime: Arc<dyn Runtime>,
    proxy: Arc<dyn Proxy>,
    keyring: Keyring,
    config: EngineConfig,
    events: EventBus,
    log: DeployLog,
    wake: tokio::sync::mpsc::UnboundedSender<ServiceId>,
    wake_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<ServiceId>>>,
    /// What the last probes saw, per deployment (re-learned after a restart by probing).
    health: Mutex<HashMap<DeploymentId, HealthObservation>>,
    /// Why a deployment's workloads could not be started, until it is failed.
    start_failures: Mutex<HashMap<DeploymentId, String>>,
    /// Builds git services; `None` fails their deployments with a clear reason.
    builder: Mutex<Option<Arc<dyn ImageBuilder>>>,
    /// The build of each deployment in BUILDING, as this engine ran it.
    builds: Mutex<HashMap<DeploymentId, BuildRun>>,
    /// Remote servers' runtimes and proxies; `None` = everything runs on this host.
    placement: Mutex<Option<Arc<dyn Placement>>>,
    /// Versions whose workloads are being stopped and removed in the background.
    retiring: Mutex<HashMap<DeploymentId, retire::Retiring>>,
}

/// Where one deployment runs: the runtime holding its workloads and the proxy routing it.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) proxy: Arc<dyn Proxy>,
}

/// A deployment's build as this engine knows it.
#[derive(Debug)]
enum BuildRun {
    Running {
        build: BuildId,
        task: tokio::task::AbortHandle,
    },
    Succeeded {
        image: ImageRef,
    },
    Failed {
        reason: String,
    },
}

/// How long build log lines are gathered before they are written as one batch.
const BUILD_LOG_BATCH: Duration = Duration::from_millis(200);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    pub fn new(
        catalog: Catalog,
        runtime: Arc<dyn Runtime>,
        proxy: Arc<dyn Proxy>,
        keyring: Keyring,
        config: EngineConfig,
    ) -> Self {
        let (wake, wake_rx) = tokio::sync::mpsc::unbounded_channel();
        Engine {
            inner: Arc::new(Inner {
                catalog,
                runtime,
                proxy,
                keyring,
                config,
                events: EventBus::new(1024),
                log: DeployLog::default(),
                wake,
                wake_rx: Mutex::new(Some(wake_rx)),
                health: Mutex::new(HashMap::new()),
                start_failures: Mutex::new(HashMap::new()),
                builder: Mutex::new(None),
                builds: Mutex::new(HashMap::new()),
                placement: Mutex::new(None),
                retiring: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Build git services with `builder` (without one, their deployments fail with a reason
    /// saying so). Set it before `run`.
    pub fn with_builder(self, builder: Arc<dyn ImageBuilder>) -> Self {
        *lock(&self.inner.builder) = Some(builder);
        self
    }

    /// Run deployments that name a `server_id` through `placement` (the agents' runtimes and
    /// proxies). Without one they fail with a reason saying so. Set it before `run`.
    pub fn with_placement(self, placement: Arc<dyn Placement>) -> Self {
        *lock(&self.inner.placement) = Some(placement);
        self
    }

    /// Now, by the engine's clock (`EngineConfig::clock`).
    pub(crate) fn now(&self) -> Timestamp {
        self.inner.config.clock.now()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The runtime and proxy of `server` (`None` = this host).
    pub(crate) fn placed_on(&self, server: Option<ServerId>) -> Result<Placed> {
        let Some(id) = server else {
            return Ok(Placed {
                runtime: self.inner.runtime.clone(),
                proxy: self.inner.proxy.clone(),
            });
        };
        let placement = lock(&self.inner.placement).clone();
        match placement {
            Some(p) => {
                let (runtime, proxy) = p.remote(id)?;
                Ok(Placed { runtime, proxy })
            }
            None => Err(Error::runtime(
                RuntimeFailure::Unsupported,
                format!("server {id}: this platform runs nothing on remote servers"),
            )),
        }
    }

    /// The runtime of `server` (`None` = this host): where its deployments' workloads are.
    pub fn runtime_on(&self, server: Option<ServerId>) -> Result<Arc<dyn Runtime>> {
        Ok(self.placed_on(server)?.runtime)
    }

    /// Where `d` runs; `None` when its server cannot run anything (unknown, revoked, or no
    /// remote servers here): nothing of it runs there, and starting it fails with the reason.
    fn placed_for(&self, d: &Deployment) -> Result<Option<Placed>> {
        match self.placed_on(d.snapshot.server_id) {
            Ok(placed) => Ok(Some(placed)),
            Err(e) if unplaceable(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.inner.runtime
    }

    /// Follow every deployment event from now on.
    pub fn events(&self) -> EventStream {
        self.inner.events.subscribe()
    }

    /// The persisted deploy log of a deployment: every step and probe result.
    pub async fn deploy_log(&self, deployment: DeploymentId) -> Result<Vec<LogEntry>> {
        DeployLog::read(self.inner.catalog.store().as_ref(), deployment).await
    }

    /// Resolve the config cascade for a service as it is now (secrets stay sealed).
    pub async fn resolve_config(&self, service: &Service) -> Result<ResolvedConfig> {
        config::resolve(&self.config_layers(service).await?)
    }

    /// The stored layers of the service's config cascade, least specific first.
    async fn config_layers(&self, service: &Service) -> Result<Vec<ConfigLayer>> {
        let cat = &self.inner.catalog;
        let project = cat
            .require::<Project>(&service.project_id.to_string())
            .await?;
        let mut scopes = vec![Scope::Workspace(service.workspace_id)];
        if let Some(team) = project.team_id {
            scopes.push(Scope::Team(team));
        }
        scopes.push(Scope::Project(service.project_id));
        scopes.push(Scope::Environment(service.environment_id));
        scopes.push(Scope::Service(service.id));
        let mut layers: Vec<ConfigLayer> = Vec::new();
        for scope in scopes {
            if let Some(layer) = cat.config_layer(scope).await? {
                layers.push(layer.value);
            }
        }
        Ok(layers)
    }

    /// Request a deployment of the service as it is now. Returns it PENDING; the reconciler
    /// takes it from there.
    pub async fn deploy(&self, service: ServiceId, trigger: Trigger) -> Result<Deployment> {
        loop {
            let svc = self
                .inner
                .catalog
                .require::<Service>(&service.to_string())
                .await?;
            self.ensure_deployable(&svc).await?;
            let config = self.resolve_config(&svc).await?;
            let d = Deployment::new(&svc, config, trigger.clone(), self.now());
            match self.create(&svc, d).await {
                Err(Error::WriteConflict { .. }) => continue,
                other => return other,
            }
        }
    }

    /// Roll back to an earlier deployment: a new deployment with its image *and* config.
    pub async fn rollback(&self, service: ServiceId, to: DeploymentId) -> Result<Deployment> {
        Ok(self.rollback_restoring(service, to, None).await?.0)
    }

    /// [`Engine::rollback`], which also sets the service's desired state (image, settings,
    /// processes, volumes, endpoint and its own config layer) back to what the earlier
    /// deployment ran, in the same write, so the next deploy does not bring back what was
    /// rolled back. Config inherited from higher scopes is not rewritten: keys whose value
    /// changed there since are listed in the deploy log as not restored. `by` is recorded on
    /// the trigger. Returns what changed.
    pub async fn rollback_restoring(
        &self,
        service: ServiceId,
        to: DeploymentId,
        by: Option<UserId>,
    ) -> Result<(Deployment, RestoredState)> {
        let cat = &self.inner.catalog;
        let earlier = cat.require::<Deployment>(&to.to_string()).await?;
        loop {
            let svc = cat.require::<Service>(&service.to_string()).await?;
            self.ensure_deployable(&svc).await?;
            let d = Deployment::rollback_of(&svc, &earlier, by, self.now())?;
            let (restored, fields) = earlier.snapshot.restore_onto(&svc);
            let scope = Scope::Service(svc.id);
            let layer = earlier.snapshot.config.layer_of(scope);
            let current_layer = cat.config_layer(scope).await?;
            let empty = BTreeMap::new();
            let own_before = current_layer.as_ref().map_or(&empty, |l| &l.value.vars);
            let config_keys = own_before
                .keys()
                .chain(layer.vars.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| {
                    own_before.get(*k).map(|v| &v.value) != layer.vars.get(*k).map(|v| &v.value)
                })
                .cloned()
                .collect();
            let mut next_layers = self.config_layers(&svc).await?;
            next_layers.retain(|l| l.scope != scope);
            next_layers.push(layer.clone());
            let not_restored = earlier
                .snapshot
                .config
                .differing_keys(&config::resolve(&next_layers)?);
            let state = RestoredState {
                fields,
                config_keys,
                not_restored,
            };
            match cat
                .create_rollback(&svc, &restored, &d, current_layer.as_ref(), &layer)
                .await
            {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            self.announce(&d).await;
            self.note(&d, restored_summary(&state)).await;
            for (key, source) in &state.not_restored {
                let message = format!("{key}: inherited from {}, not restored", source.level());
                self.note(&d, message).await;
            }
            return Ok((d, state));
        }
    }

    /// Ask for an in-progress deployment to be cancelled. The request is stored, so it holds
    /// across restarts; the reconciler cleans up and marks it CANCELLED.
    pub async fn cancel(&self, deployment: DeploymentId) -> Result<Deployment> {
        loop {
            let d = self
                .inner
                .catalog
                .require::<Deployment>(&deployment.to_string())
                .await?;
            if !d.state.status.is_in_progress() {
                return Err(Error::Conflict(format!(
                    "deployment #{} is {}; only a deployment in progress can be cancelled",
                    d.number, d.state.status
                )));
            }
            if d.state.cancel.is_some() {
                return Ok(d.value);
            }
            let mut next = d.value.clone();
            next.state.cancel = Some(CancelRequest {
                at: self.now(),
                by: None,
            });
            match self.inner.catalog.save_deployment(&d, &next).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => {
                    self.wake(next.service_id);
                    return Ok(next);
                }
            }
        }
    }

    /// Refuses a deployment of a service that is deleted, stopped or in a deleted project.
    pub async fn ensure_deployable(&self, svc: &Service) -> Result<()> {
        let project = self
            .inner
            .catalog
            .require::<Project>(&svc.project_id.to_string())
            .await?;
        if project.is_deleted() {
            return Err(Error::Conflict(format!(
                "project `{}` is deleted; restore it first (`clank project restore`) to deploy \
                 its services",
                project.slug
            )));
        }
        if svc.is_deleted() {
            return Err(Error::Conflict(format!(
                "service `{}` is deleted; restore it first (`clank service restore`) to deploy it",
                svc.slug
            )));
        }
        if svc.stopped_at.is_some() {
            return Err(Error::Conflict(format!(
                "service `{}` is stopped; run `clank service start` before deploying it",
                svc.slug
            )));
        }
        Ok(())
    }

    async fn create(&self, svc: &Versioned<Service>, d: Deployment) -> Result<Deployment> {
        self.inner.catalog.create_deployment(svc, &d).await?;
        self.announce(&d).await;
        Ok(d)
    }

    /// Publish and log a deployment just recorded, and hand it to the reconciler (for
    /// deployments written by the platform's own batches, like a promotion's).
    pub async fn announce(&self, d: &Deployment) {
        self.publish(d, EventKind::Created);
        self.note(
            d,
            format!("deployment #{} requested ({:?})", d.number, d.trigger),
        )
        .await;
        self.wake(d.service_id);
    }

    /// Schedule a reconcile of the service as soon as possible.
    pub fn wake(&self, service: ServiceId) {
        let _ = self.inner.wake.send(service);
    }

    fn publish(&self, d: &Deployment, kind: EventKind) {
        self.inner.events.publish(Event {
            at: self.now(),
            service: d.service_id,
            deployment: d.id,
            number: d.number,
            kind,
        });
    }

    /// Append to the deploy log and publish it as an event. Log writes never fail a step.
    async fn note(&self, d: &Deployment, message: String) {
        self.persist_note(d, message.clone()).await;
        self.publish(d, EventKind::Log { message });
    }

    /// Append to the deploy log only (for what is also published as its own event).
    async fn persist_note(&self, d: &Deployment, message: String) {
        debug!(deployment = %d.id, number = d.number, "{message}");
        let entry = LogEntry {
            at: self.now(),
            message: message.clone(),
        };
        if let Err(err) = self
            .inner
            .log
            .append(self.inner.catalog.store().as_ref(), d.id, &[entry])
            .await
        {
            warn!(deployment = %d.id, error = %err, "Could not persist a deploy log line.");
        }
    }

    /// Run the reconciler until `shutdown` completes: recover first (resume or fail every
    /// unfinished deployment, remove orphaned workloads), then reconcile on wake-ups and
    /// requeues. Only one `run` per engine.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut wake_rx = lock(&self.inner.wake_rx)
            .take()
            .ok_or_else(|| Error::Conflict("the engine is already running".into()))?;
        let mut due: BTreeMap<ServiceId, Instant> = BTreeMap::new();
        for service in self.recover().await? {
            due.insert(service, Instant::now());
        }
        let mut running: BTreeSet<ServiceId> = BTreeSet::new();
        let mut dirty: BTreeSet<ServiceId> = BTreeSet::new();
        let mut tasks: JoinSet<(ServiceId, Pass)> = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let now = Instant::now();
            let ready: Vec<ServiceId> = due
                .iter()
                .filter(|(s, t)| **t <= now && !running.contains(*s))
                .map(|(s, _)| *s)
                .collect();
            for service in ready {
                due.remove(&service);
                running.insert(service);
                let engine = self.clone();
                tasks.spawn(async move {
                    // A panic ends this pass only: caught here, the service leaves the
                    // running set and is reconciled again (the task's own JoinError would
                    // not say which service it was).
                    let pass = AssertUnwindSafe(engine.reconcile(service))
                        .catch_unwind()
                        .await
                        .map_err(|panic| panic_message(panic.as_ref()));
                    (service, pass)
                });
            }
            let next_due = due
                .iter()
                .filter(|(s, _)| !running.contains(*s))
                .map(|(_, t)| *t)
                .min();
            tokio::select! {
                _ = &mut shutdown => break,
                Some(service) = wake_rx.recv() => {
                    if running.contains(&service) {
                        dirty.insert(service);
                    } else {
                        due.insert(service, Instant::now());
                    }
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    let (service, pass) = match joined {
                        Ok(r) => r,
                        // Passes are never aborted before shutdown and catch their panics.
                        Err(e) => {
                            error!(error = %e, "A reconcile task ended without a result.");
                            continue;
                        }
                    };
                    running.remove(&service);
                    let after = match pass {
                        Ok(Ok(requeue)) => requeue,
                        Ok(Err(err)) => {
                            warn!(service = %service, error = %err, "Reconcile failed.");
                            Some(self.inner.config.error_backoff)
                        }
                        Err(panic) => {
                            error!(service = %service, panic = %panic, "A reconcile pass panicked; the service is reconciled again.");
                            Some(self.inner.config.error_backoff)
                        }
                    };
                    let after = if dirty.remove(&service) { Some(Duration::ZERO) } else { after };
                    if let Some(after) = after {
                        let at = Instant::now() + after;
                        let slot = due.entry(service).or_insert(at);
                        *slot = (*slot).min(at);
                    }
                }
                _ = sleep_until(next_due), if next_due.is_some() => {}
            }
        }
        // Every step is idempotent and every write is conditional, so stopping mid-pass is
        // safe: the next run resumes from what the store says.
        tasks.shutdown().await;
        self.abort_retirements();
        lock(&self.inner.wake_rx).replace(wake_rx);
        Ok(())
    }

    /// What to reconcile after a (re)start, and orphaned workloads removed on the way.
    pub async fn recover(&self) -> Result<BTreeSet<ServiceId>> {
        let cat = &self.inner.catalog;
        let mut services = BTreeSet::new();
        for status in DeploymentStatus::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
        {
            let mut page = Page::first(500);
            loop {
                let listing = cat.deployments_with_status(status, page.clone()).await?;
                services.extend(listing.items.iter().map(|d| d.service_id));
                match listing.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
        }
        // Workloads of deployments that are finished or unknown to this store are orphans
        // (the control plane died between starting them and recording the outcome). Only
        // workloads of workspaces this store knows are touched: another platform may share
        // the engine.
        let remote: Vec<ServerId> = lock(&self.inner.placement)
            .clone()
            .map(|p| p.connected())
            .unwrap_or_default();
        let mut runtimes = vec![self.inner.runtime.clone()];
        for server in remote {
            runtimes.push(self.placed_on(Some(server))?.runtime);
        }
        for runtime in runtimes {
            self.remove_orphans(runtime.as_ref()).await?;
        }
        Ok(services)
    }

    /// Remove workloads whose deployment is finished or unknown to this store.
    async fn remove_orphans(&self, runtime: &dyn Runtime) -> Result<()> {
        let cat = &self.inner.catalog;
        for w in runtime.list(&OwnerFilter::default()).await? {
            let ours = cat
                .get::<Workspace>(&w.owner.workspace.to_string())
                .await?
                .is_some();
            if !ours {
                continue;
            }
            let d = cat
                .get::<Deployment>(&w.owner.deployment.to_string())
                .await?;
            let orphan = d.as_ref().is_none_or(|d| d.state.status.is_terminal());
            if orphan {
                info!(workload = %w.name, runtime = %runtime.name(), "Removing orphaned workload.");
                runtime.remove(&w.id).await?;
            } else {
                debug!(workload = %w.name, "Adopted workload.");
            }
        }
        Ok(())
    }

    /// One reconcile pass over a service's live deployments, oldest first. Returns when to
    /// look again. Public so embedders and tests can drive the engine step by step.
    pub async fn reconcile(&self, service: ServiceId) -> Result<Option<Duration>> {
        let live = self.inner.catalog.live_deployments_of(service).await?;
        let mut requeue: Option<Duration> = None;
        for d in live {
            let after = self.step(service, d.id).await?;
            requeue = match (requeue, after) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(requeue)
    }

    async fn step(&self, service_id: ServiceId, id: DeploymentId) -> Result<Option<Duration>> {
        let cat = &self.inner.catalog;
        let service = cat.require::<Service>(&service_id.to_string()).await?;
        let d = cat.require::<Deployment>(&id.to_string()).await?;
        if d.state.status.is_terminal() {
            return Ok(None);
        }
        let live = cat.live_deployments_of(service_id).await?;
        let observed = self.observe(&service, &d, &live).await?;
        let now = self.now();
        let plan = deploy::plan(&d, &observed, now);
        if plan.transition.is_none() {
            self.note_waiting(&d, &observed).await?;
        }
        self.execute(&service, &d, &observed, plan, now).await
    }

    async fn execute(
        &self,
        service: &Versioned<Service>,
        d: &Versioned<Deployment>,
        observed: &Observed,
        plan: Plan,
        now: Timestamp,
    ) -> Result<Option<Duration>> {
        let Plan {
            transition,
            commands,
            requeue,
        } = plan;
        let Some(t) = transition else {
            for c in &commands {
                self.run_command(service, d, c).await?;
            }
            // A version being checked that has just passed goes on to its cutover now, not
            // after the probe's backoff (the plan's requeue was chosen before the probe ran).
            let passed = d.state.status == DeploymentStatus::HealthChecking
                && commands.contains(&Command::ProbeHealth)
                && matches!(
                    lock(&self.inner.health).get(&d.id),
                    Some(HealthObservation::Passing)
                );
            return Ok(if passed {
                Some(Duration::ZERO)
            } else {
                requeue
            });
        };
        // Forward moves are recorded first, so phase times in the history are real and a
        // refused write (a racing cutover) never starts or retires anything. Moves to a
        // terminal status clean up first: once terminal a deployment is no longer reconciled,
        // so a cleanup that fails must leave it in progress to be retried.
        if !t.to.is_terminal() {
            let activated = t.to == DeploymentStatus::Active;
            if !self.write_transition(service, d, observed, t, now).await? {
                return Ok(Some(Duration::ZERO));
            }
            // Commands act on the deployment as now recorded (e.g. with its built image).
            let cat = &self.inner.catalog;
            let service = cat.require::<Service>(&service.id.to_string()).await?;
            let d = cat.require::<Deployment>(&d.id.to_string()).await?;
            for c in &commands {
                self.run_command(&service, &d, c).await?;
            }
            if activated {
                // However the cutover went (its reply lost, a release that failed), an ACTIVE
                // version never leaves its service's requests held.
                self.release_held(&service, &d).await;
            }
            if activated && service.source.needs_build() {
                // Housekeeping: a failure to prune never fails or delays the deployment.
                if let Err(err) = self.prune_images(&service).await {
                    warn!(service = %service.id, error = %err, "Pruning old build images failed.");
                }
            }
            return Ok(requeue);
        }
        for c in &commands {
            self.run_command(service, d, c).await?;
        }
        if !self.write_transition(service, d, observed, t, now).await? {
            return Ok(Some(Duration::ZERO));
        }
        // A stop-first attempt that ended (failed, cancelled, past its deadline) may have held
        // the service's requests without stopping anything yet: let them through. Only one
        // that got that far: a queued one ending must not release another's hold.
        if matches!(
            d.state.status,
            DeploymentStatus::Deploying | DeploymentStatus::HealthChecking
        ) {
            self.release_held(service, d).await;
        }
        self.forget(d.id);
        Ok(requeue)
    }

    /// Persist a planned transition; `false` when a concurrent write got there first.
    async fn write_transition(
        &self,
        service: &Versioned<Service>,
        d: &Versioned<Deployment>,
        observed: &Observed,
        t: deploy::Transition,
        now: Timestamp,
    ) -> Result<bool> {
        let cat = &self.inner.catalog;
        let written = if t.to == DeploymentStatus::Active {
            let previous = match observed.previous_active {
                Some(p) => Some(cat.require::<Deployment>(&p.to_string()).await?),
                None => None,
            };
            cat.activate(service, d, previous.as_ref(), now).await
        } else {
            let mut next = d.value.clone();
            if let Some(image) = t.image.clone() {
                next.state.set_image(image)?;
            }
            let settings = next.snapshot.settings.clone();
            next.state
                .transition(t.to, t.reason.clone(), &settings, now)?;
            cat.save_deployment(d, &next).await
        };
        match written {
            Err(Error::WriteConflict { .. }) => Ok(false),
            Err(e) => Err(e),
            Ok(_) => {
                self.transitioned(d, t.to, t.reason).await;
                Ok(true)
            }
        }
    }

    async fn transitioned(&self, d: &Deployment, to: DeploymentStatus, reason: Option<String>) {
        let from = d.state.status;
        info!(deployment = %d.id, number = d.number, %from, %to, reason = reason.as_deref().unwrap_or(""), "Deployment transition.");
        let text = match &reason {
            Some(r) => format!("{from} → {to}: {r}"),
            None => format!("{from} → {to}"),
        };
        // Followers get the Transition event; the log keeps the line for later readers.
        self.persist_note(d, text).await;
        self.publish(d, EventKind::Transition { from, to, reason });
    }

    fn forget(&self, id: DeploymentId) {
        lock(&self.inner.health).remove(&id);
        lock(&self.inner.start_failures).remove(&id);
        if let Some(BuildRun::Running { task, .. }) = lock(&self.inner.builds).remove(&id) {
            task.abort();
        }
    }

    async fn run_command(&self, service: &Service, d: &Deployment, c: &Command) -> Result<()> {
        match c {
            Command::StartBuild => self.start_build(d).await,
            Command::CancelBuild => self.cancel_build(d).await,
            Command::StartWorkload => self.start_workloads(service, d).await,
            Command::ProbeHealth => self.probe(d).await,
            Command::SwitchRoute => self.switch_route(service, d).await,
            Command::RestoreRoute { to } => self.restore_route(service, *to).await,
            Command::RetirePrevious { previous } => {
                let prev = self
                    .inner
                    .catalog
                    .require::<Deployment>(&previous.to_string())
                    .await?;
                self.note(
                    d,
                    format!(
                        "retiring #{} in the background (stopped with a {} s grace period)",
                        prev.number,
                        self.inner.config.stop_grace.as_secs()
                    ),
                )
                .await;
                self.retire(prev.value);
                Ok(())
            }
            Command::RetireWorkload => {
                self.retire(d.clone());
                Ok(())
            }
            Command::StartPrevious { previous } => {
                self.start_previous(service, d, *previous).await?;
                // The restarted workloads may publish on new ports: route to where they are
                // now, then let the requests held since they were stopped through.
                self.restore_route(service, Some(*previous)).await?;
                self.release_held(service, d).await;
                Ok(())
            }
            Command::RemoveWorkload => {
                let removed = self.remove_workloads(d).await?;
                if removed > 0 {
                    self.note(d, format!("stopped and removed {removed} workload(s)"))
                        .await;
                }
                lock(&self.inner.health).remove(&d.id);
                Ok(())
            }
            Command::RestartWorkload { reason } => {
                warn!(deployment = %d.id, reason = %reason, "Restarting an ACTIVE deployment's workloads.");
                self.publish(
                    d,
                    EventKind::Restarted {
                        reason: reason.clone(),
                    },
                );
                self.note(d, format!("restarting: {reason}")).await;
                self.remove_workloads(d).await?;
                lock(&self.inner.health).remove(&d.id);
                self.start_workloads(service, d).await
            }
        }
    }

    /// Every workload `d` runs, secrets decrypted (only here), Procfile commands applied, and
    /// the name of the environment's network they join.
    async fn specs_of(
        &self,
        service: &Service,
        d: &Deployment,
    ) -> Result<(String, Vec<WorkloadSpec>)> {
        let cat = &self.inner.catalog;
        let project = cat.require::<Project>(&d.project_id.to_string()).await?;
        let environment = cat
            .require::<Environment>(&d.environment_id.to_string())
            .await?;
        let user_env: Vec<(String, EnvValue)> = d.snapshot.config.to_env(&self.inner.keyring)?;
        let default = PortBinding {
            host_ip: self.inner.config.publish_ip,
            host_port: None,
        };
        let publish = crate::workloads::web_publish(&project, &environment, service, d, default)?;
        let mut specs = workload_specs(&project, &environment, service, d, &user_env, publish)?;
        let mounts = self.volume_mounts(d).await?;
        for spec in specs.iter_mut().filter(|s| !s.volumes.is_empty()) {
            spec.volumes = mounts.clone();
        }
        let specs = self.apply_procfile(d, specs).await?;
        Ok((project.network_of(&environment), specs))
    }

    async fn start_workloads(&self, service: &Service, d: &Deployment) -> Result<()> {
        let (network, specs) = match self.specs_of(service, d).await {
            Ok(found) => found,
            // The snapshot cannot run (a connector without its token): fail, touching nothing.
            Err(e @ Error::Invalid(_)) => {
                self.note(d, format!("could not start: {e}")).await;
                lock(&self.inner.start_failures).insert(d.id, e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let stop_first = self.stop_first_of(service, d).await?;
        let runtime = &self.placed_on(d.snapshot.server_id)?.runtime;
        // Images first, bounded by the deployment's deadline, before anything is started (or,
        // stop-first, stopped): a refused pull fails the deployment touching nothing.
        if let pull::Pulled::Refused(why) = self.pull_images(d, runtime, &specs).await? {
            self.note(d, format!("could not pull: {why}")).await;
            lock(&self.inner.start_failures).insert(d.id, why);
            return Ok(());
        }
        // Pulled meanwhile; a retiring version that holds what these need goes first.
        self.await_conflicting_retirements(d).await?;
        let labels = clank_core::runtime::Owner::labels_for_project(d.workspace_id, d.project_id);
        let attempt = async {
            runtime.ensure_network(&network, &labels).await?;
            // The specs already name each volume as the runtime knows it (`volume_mounts`).
            let volumes: BTreeSet<&str> = specs
                .iter()
                .flat_map(|s| s.volumes.iter().map(|v| v.name.as_str()))
                .collect();
            for name in volumes {
                runtime.ensure_volume(name, &labels).await?;
            }
            let Some((previous, why)) = &stop_first else {
                for spec in &specs {
                    runtime.start(spec).await?;
                }
                return Ok::<_, Error>(());
            };
            // Stop-first: everything is prepared (images on the host) and what is not part of
            // the swap is started first, so a refusal stops nothing and the gap is only the
            // swap itself.
            for spec in &specs {
                runtime.prepare(spec).await?;
            }
            let (swapped, others): (Vec<&WorkloadSpec>, Vec<&WorkloadSpec>) =
                specs.iter().partition(|s| why.stops(&s.owner.process));
            for spec in others {
                runtime.start(spec).await?;
            }
            self.stop_for_cutover(service, d, previous, why).await?;
            for spec in swapped {
                runtime.start(spec).await?;
            }
            Ok(())
        };
        match attempt.await {
            Ok(()) => {
                self.note(
                    d,
                    format!("started {} workload(s) on {}", specs.len(), runtime.name()),
                )
                .await;
                Ok(())
            }
            // The runtime's own refusals (image missing, port taken, ...) fail the deployment
            // with its message; anything else (engine down) is retried.
            Err(e @ Error::Runtime { .. })
                if !matches!(
                    e.kind(),
                    clank_core::ErrorKind::Unavailable | clank_core::ErrorKind::Timeout
                ) =>
            {
                self.note(d, format!("could not start: {e}")).await;
                lock(&self.inner.start_failures).insert(d.id, e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Stop and remove every workload of `d`; returns how many there were.
    async fn remove_workloads(&self, d: &Deployment) -> Result<usize> {
        let Some(placed) = self.placed_for(d)? else {
            return Ok(0);
        };
        let workloads = self.workloads_of(d).await?;
        for w in &workloads {
            stop_and_remove(placed.runtime.as_ref(), &w.id, self.inner.config.stop_grace).await?;
        }
        Ok(workloads.len())
    }
}

/// Stop, then remove, workload `id`. One already gone (a retirement and a purge may both reach
/// it) is not an error: gone is what both wanted.
async fn stop_and_remove(runtime: &dyn Runtime, id: &WorkloadId, grace: Duration) -> Result<()> {
    let gone = |e: &Error| e.runtime_failure() == Some(RuntimeFailure::NotFound);
    match runtime.stop(id, grace).await {
        Err(e) if gone(&e) => return Ok(()),
        stopped => stopped?,
    }
    match runtime.remove(id).await {
        Err(e) if gone(&e) => Ok(()),
        removed => removed,
    }
}

/// What one reconcile pass ended with: its result, or the message of its panic.
type Pass = std::result::Result<Result<Option<Duration>>, String>;

/// The message a panic was raised with (`panic!("...")` carries a `&str` or a `String`).
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// The server a deployment names cannot run anything (unknown, revoked, or this platform has
/// no remote servers).
/// The deploy log's line for what a rollback set back on its service (names, never values).
fn restored_summary(state: &RestoredState) -> String {
    let mut parts: Vec<String> = state.fields.iter().map(|f| (*f).to_owned()).collect();
    if !state.config_keys.is_empty() {
        parts.push(format!("service config {}", state.config_keys.join(", ")));
    }
    if parts.is_empty() {
        "rollback: the service's desired state already matched; nothing restored".to_owned()
    } else {
        format!(
            "rollback: restored the service's {} (the next deploy runs them)",
            parts.join("; ")
        )
    }
}

fn unplaceable(e: &Error) -> bool {
    matches!(e, Error::NotFound { .. }) || e.runtime_failure() == Some(RuntimeFailure::Unsupported)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
