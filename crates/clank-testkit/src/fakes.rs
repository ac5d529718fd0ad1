//! Recording fakes of the engine's backends, for testing the engine's logic in milliseconds
//! without Docker: [`FakeRuntime`] (in-memory workloads that answer the platform's probes as
//! scripted per image), [`FakeProxy`] (a route table that records every cutover, hold and
//! release) and [`FakeBuilder`] (builds that succeed, fail, hang or panic as scripted).
//!
//! Every call that changes the world lands in one shared [`Journal`], so a test asserts the
//! order of runtime, proxy and builder calls (Kubernetes' deployment controller tests assert
//! the actions of a recording fake the same way). Nothing here sleeps on the wall clock:
//! scripted durations are `tokio::time` sleeps, so tests run them on a paused clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use clank_core::builder::{BuildLog, BuildOutput, BuildProgress, BuildRequest, ImageBuilder};
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::HealthCheck;
use clank_core::proxy::{Cutover, CutoverReport, Proxy, Route};
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogOptions, LogStreamBox, OwnerFilter, ProbeResult, PullProgress,
    RegistryAuth, Runtime, RuntimeCapabilities, WorkloadId, WorkloadSpec, WorkloadState,
    WorkloadStats, WorkloadStatus,
};
use clank_core::{Error, ImageRef, Result, RuntimeFailure, Timestamp};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One call a fake received that changed (or would have changed) the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `Runtime::prepare` of a workload of `deployment`.
    Prepare {
        deployment: DeploymentId,
        process: String,
    },
    /// `Runtime::start` (a refused start is recorded too).
    Start {
        deployment: DeploymentId,
        process: String,
    },
    Stop {
        deployment: DeploymentId,
        process: String,
    },
    Remove {
        deployment: DeploymentId,
        process: String,
    },
    /// `Proxy::cutover` to `deployment` (a refused one is recorded too).
    Cutover {
        deployment: DeploymentId,
    },
    SetRoute {
        deployment: DeploymentId,
    },
    RemoveRoute {
        service: ServiceId,
    },
    Hold {
        service: ServiceId,
    },
    Release {
        service: ServiceId,
    },
    /// `ImageBuilder::build` of build `number` began.
    BuildStarted {
        number: u64,
    },
    /// A build's future was dropped before it finished (the engine cancelled or timed it out).
    BuildDropped {
        number: u64,
    },
    RemoveImage {
        image: String,
    },
    /// `Runtime::pull` of `image`, with the time it was given and the credentials
    /// (`user`, `password`) it was handed.
    Pull {
        image: String,
        within: Duration,
        auth: Option<(String, String)>,
    },
}

/// The calls of all fakes sharing it, in order. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Call>>>);

impl Journal {
    pub fn record(&self, call: Call) {
        lock(&self.0).push(call);
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.0).clone()
    }

    /// The calls `keep` selects, in order.
    pub fn filtered(&self, keep: impl Fn(&Call) -> bool) -> Vec<Call> {
        lock(&self.0).iter().filter(|c| keep(c)).cloned().collect()
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }
}

/// What the platform's probe of a workload sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Passes (`HTTP 200`).
    Healthy,
    /// The workload answers, wrongly (`HTTP 503`): counts toward the check's retries.
    Answers(String),
    /// Nothing answers (`connection refused`): an app still booting, as far as anyone knows.
    Silent,
}

/// What `Runtime::pull` of an image answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pull {
    /// Nothing to pull, no digest (a runtime without registries).
    #[default]
    Nothing,
    /// Reports `progress`, line by line, then pins the image at `digest`.
    Pinned {
        progress: Vec<String>,
        digest: String,
    },
    /// Fails with this failure and message.
    Refused(RuntimeFailure, String),
}

/// How workloads of one image behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    /// `Some`: `prepare` and `start` refuse with this failure and message.
    pub refuse_start: Option<(RuntimeFailure, String)>,
    pub health: Health,
    pub pull: Pull,
    /// How long a `stop` of a running workload takes: an app that ignores SIGTERM keeps the
    /// runtime waiting its whole grace period.
    pub stop_takes: Duration,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            refuse_start: None,
            health: Health::Healthy,
            pull: Pull::Nothing,
            stop_takes: Duration::ZERO,
        }
    }
}

impl Behaviour {
    /// The image is missing and cannot be pulled.
    pub fn missing_image() -> Self {
        Behaviour {
            refuse_start: Some((
                RuntimeFailure::ImageMissing,
                "image not found and no registry to pull it from".into(),
            )),
            ..Behaviour::default()
        }
    }

    /// Starts, and its health check answers `detail` (a failing answer).
    pub fn unhealthy(detail: &str) -> Self {
        Behaviour {
            health: Health::Answers(detail.into()),
            ..Behaviour::default()
        }
    }

    /// Starts and answers, and ignores SIGTERM: a stop takes the whole `grace`.
    pub fn ignores_sigterm(grace: Duration) -> Self {
        Behaviour {
            stop_takes: grace,
            ..Behaviour::default()
        }
    }

    /// Starts, and nothing ever answers its health check.
    pub fn silent() -> Self {
        Behaviour {
            health: Health::Silent,
            ..Behaviour::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Workload {
    spec_image: Option<ImageRef>,
    status: WorkloadStatus,
}

/// An in-memory `Runtime`: workloads "run" as records; `probe` answers for them as their
/// image's [`Behaviour`] says (the `Runtime::probe` seam remote runtimes use), so nothing
/// listens anywhere. `start` is idempotent by name and restarts a stopped workload in place,
/// as the runtime contract says.
#[derive(Debug)]
pub struct FakeRuntime {
    journal: Journal,
    workloads: Mutex<BTreeMap<String, Workload>>,
    behaviours: Mutex<HashMap<String, Behaviour>>,
    next_port: AtomicU16,
    panic_next_start: AtomicBool,
    /// Every spec `start` was called with, in order.
    starts: Mutex<Vec<WorkloadSpec>>,
}

impl FakeRuntime {
    pub fn new(journal: Journal) -> Self {
        FakeRuntime {
            journal,
            workloads: Mutex::new(BTreeMap::new()),
            behaviours: Mutex::new(HashMap::new()),
            next_port: AtomicU16::new(20_000),
            panic_next_start: AtomicBool::new(false),
            starts: Mutex::new(Vec::new()),
        }
    }

    /// Workloads of `image` behave as `behaviour` from now on (also those already running).
    pub fn script(&self, image: &str, behaviour: Behaviour) {
        lock(&self.behaviours).insert(image.to_owned(), behaviour);
    }

    /// The next `start` panics (a bug in a backend, as the engine sees it).
    pub fn panic_on_next_start(&self) {
        self.panic_next_start.store(true, Ordering::SeqCst);
    }

    /// Every spec `start` was called with, in order.
    pub fn started_specs(&self) -> Vec<WorkloadSpec> {
        lock(&self.starts).clone()
    }

    /// The workload "exits" on its own (a crash): `code`, as the runtime would report it.
    pub fn crash(&self, id: &WorkloadId, code: i64) {
        let mut all = lock(&self.workloads);
        if let Some(w) = all.values_mut().find(|w| &w.status.id == id) {
            w.status.state = WorkloadState::Exited {
                code: Some(code),
                oom_killed: false,
                finished_at: Some(Timestamp::now()),
            };
        }
    }

    /// The workloads of `deployment` as `list` reports them.
    pub fn workloads_of(&self, deployment: DeploymentId) -> Vec<WorkloadStatus> {
        lock(&self.workloads)
            .values()
            .filter(|w| w.status.owner.deployment == deployment)
            .map(|w| w.status.clone())
            .collect()
    }

    /// How many workloads of `deployment` are running.
    pub fn running_of(&self, deployment: DeploymentId) -> usize {
        self.workloads_of(deployment)
            .iter()
            .filter(|w| matches!(w.state, WorkloadState::Running { .. }))
            .count()
    }

    fn behaviour_of(&self, image: Option<&ImageRef>) -> Behaviour {
        image
            .and_then(|i| lock(&self.behaviours).get(&i.to_string()).cloned())
            .unwrap_or_default()
    }

    fn refusal(&self, spec: &WorkloadSpec) -> Option<Error> {
        self.behaviour_of(spec.image.as_ref())
            .refuse_start
            .map(|(failure, message)| {
                Error::runtime(
                    failure,
                    format!(
                        "{}: {message}",
                        spec.image
                            .as_ref()
                            .map(|i| i.to_string())
                            .unwrap_or_default()
                    ),
                )
            })
    }

    fn owner_of(&self, id: &WorkloadId) -> Option<(DeploymentId, String)> {
        lock(&self.workloads)
            .values()
            .find(|w| &w.status.id == id)
            .map(|w| (w.status.owner.deployment, w.status.owner.process.clone()))
    }
}

fn unsupported(what: &str) -> Error {
    Error::runtime(
        RuntimeFailure::Unsupported,
        format!("the fake runtime has no {what}"),
    )
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> String {
        "fake".into()
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities {
            isolated_networks: true,
            resource_limits: true,
            images: true,
            terminals: false,
        }
    }

    async fn ensure_network(&self, _name: &str, _labels: &BTreeMap<String, String>) -> Result<()> {
        Ok(())
    }

    async fn remove_network(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    async fn ensure_volume(&self, _name: &str, _labels: &BTreeMap<String, String>) -> Result<()> {
        Ok(())
    }

    async fn remove_volume(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        self.journal.record(Call::Start {
            deployment: spec.owner.deployment,
            process: spec.owner.process.clone(),
        });
        lock(&self.starts).push(spec.clone());
        if self.panic_next_start.swap(false, Ordering::SeqCst) {
            panic!("the fake runtime panics in start, as scripted");
        }
        if let Some(e) = self.refusal(spec) {
            return Err(e);
        }
        let mut all = lock(&self.workloads);
        if let Some(w) = all.get_mut(&spec.name) {
            if !matches!(w.status.state, WorkloadState::Running { .. }) {
                w.status.state = WorkloadState::Running {
                    started_at: Timestamp::now(),
                };
            }
            return Ok(w.status.clone());
        }
        let endpoint = spec.publish.map(|p| {
            let port = p
                .host_port
                .unwrap_or_else(|| self.next_port.fetch_add(1, Ordering::SeqCst));
            let ip = if p.host_ip.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                p.host_ip
            };
            SocketAddr::new(ip, port)
        });
        let status = WorkloadStatus {
            id: WorkloadId(format!("fake-{}", spec.name)),
            name: spec.name.clone(),
            owner: spec.owner.clone(),
            state: WorkloadState::Running {
                started_at: Timestamp::now(),
            },
            restart_count: 0,
            endpoint,
        };
        all.insert(
            spec.name.clone(),
            Workload {
                spec_image: spec.image.clone(),
                status: status.clone(),
            },
        );
        Ok(status)
    }

    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
        within: Duration,
        progress: PullProgress<'_>,
    ) -> Result<Option<String>> {
        self.journal.record(Call::Pull {
            image: image.to_string(),
            within,
            auth: auth.map(|a| (a.username.clone(), a.password.expose().to_owned())),
        });
        match self.behaviour_of(Some(image)).pull {
            Pull::Nothing => Ok(None),
            Pull::Pinned {
                progress: lines,
                digest,
            } => {
                for line in lines {
                    progress(line);
                }
                Ok(Some(digest))
            }
            Pull::Refused(failure, message) => Err(Error::runtime(failure, message)),
        }
    }

    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        self.journal.record(Call::Prepare {
            deployment: spec.owner.deployment,
            process: spec.owner.process.clone(),
        });
        match self.refusal(spec) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        Ok(lock(&self.workloads)
            .values()
            .find(|w| &w.status.id == id)
            .map(|w| w.status.clone()))
    }

    async fn stop(&self, id: &WorkloadId, _grace: Duration) -> Result<()> {
        if let Some((deployment, process)) = self.owner_of(id) {
            self.journal.record(Call::Stop {
                deployment,
                process,
            });
        }
        let takes = {
            let all = lock(&self.workloads);
            all.values()
                .find(|w| &w.status.id == id)
                .filter(|w| matches!(w.status.state, WorkloadState::Running { .. }))
                .map(|w| self.behaviour_of(w.spec_image.as_ref()).stop_takes)
                .unwrap_or_default()
        };
        tokio::time::sleep(takes).await;
        let mut all = lock(&self.workloads);
        if let Some(w) = all.values_mut().find(|w| &w.status.id == id) {
            if matches!(w.status.state, WorkloadState::Running { .. }) {
                w.status.state = WorkloadState::Exited {
                    code: Some(0),
                    oom_killed: false,
                    finished_at: Some(Timestamp::now()),
                };
            }
        }
        Ok(())
    }

    async fn remove(&self, id: &WorkloadId) -> Result<()> {
        if let Some((deployment, process)) = self.owner_of(id) {
            self.journal.record(Call::Remove {
                deployment,
                process,
            });
        }
        lock(&self.workloads).retain(|_, w| &w.status.id != id);
        Ok(())
    }

    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        Ok(lock(&self.workloads)
            .values()
            .filter(|w| filter.matches(&w.status.owner))
            .map(|w| w.status.clone())
            .collect())
    }

    async fn logs(&self, _id: &WorkloadId, _options: LogOptions) -> Result<LogStreamBox> {
        Err(unsupported("logs"))
    }

    async fn exec(&self, _id: &WorkloadId, _request: &ExecRequest) -> Result<ExecOutput> {
        Err(unsupported("exec"))
    }

    async fn stats(&self, _id: &WorkloadId) -> Result<WorkloadStats> {
        Err(unsupported("stats"))
    }

    async fn probe(
        &self,
        workload: &WorkloadStatus,
        _check: &HealthCheck,
        _timeout: Duration,
    ) -> Result<Option<ProbeResult>> {
        let found = lock(&self.workloads)
            .values()
            .find(|w| w.status.id == workload.id)
            .cloned();
        let Some(w) = found else {
            return Ok(Some(ProbeResult {
                healthy: false,
                detail: "connection refused (no such workload)".into(),
                answered: false,
            }));
        };
        if !matches!(w.status.state, WorkloadState::Running { .. }) {
            return Ok(Some(ProbeResult {
                healthy: false,
                detail: "connection refused (not running)".into(),
                answered: false,
            }));
        }
        let result = match self.behaviour_of(w.spec_image.as_ref()).health {
            Health::Healthy => ProbeResult {
                healthy: true,
                detail: "HTTP 200".into(),
                answered: true,
            },
            Health::Answers(detail) => ProbeResult {
                healthy: false,
                detail,
                answered: true,
            },
            Health::Silent => ProbeResult {
                healthy: false,
                detail: "connection refused".into(),
                answered: false,
            },
        };
        Ok(Some(result))
    }
}

/// A `Proxy` that keeps routes in memory and records every call. Cutovers pass unless
/// [`FakeProxy::refuse_cutovers`] says otherwise (the gate is the engine's own probes here).
#[derive(Debug)]
pub struct FakeProxy {
    journal: Journal,
    routes: Mutex<HashMap<ServiceId, Route>>,
    refuse: Mutex<Option<String>>,
}

impl FakeProxy {
    pub fn new(journal: Journal) -> Self {
        FakeProxy {
            journal,
            routes: Mutex::new(HashMap::new()),
            refuse: Mutex::new(None),
        }
    }

    /// Refuse every cutover with `reason` (`None`: let them pass again).
    pub fn refuse_cutovers(&self, reason: Option<&str>) {
        *lock(&self.refuse) = reason.map(str::to_owned);
    }

    /// The deployment the service's route points at now.
    pub fn routed(&self, service: ServiceId) -> Option<DeploymentId> {
        lock(&self.routes)
            .get(&service)
            .map(|r| r.target.deployment)
    }
}

#[async_trait::async_trait]
impl Proxy for FakeProxy {
    async fn cutover(&self, cutover: &Cutover) -> Result<CutoverReport> {
        self.journal.record(Call::Cutover {
            deployment: cutover.route.target.deployment,
        });
        if let Some(reason) = lock(&self.refuse).clone() {
            return Err(Error::Conflict(reason));
        }
        let previous = lock(&self.routes)
            .insert(cutover.route.service, cutover.route.clone())
            .map(|r| r.target.deployment);
        Ok(CutoverReport {
            previous,
            ..CutoverReport::default()
        })
    }

    async fn set_route(&self, route: &Route) -> Result<()> {
        self.journal.record(Call::SetRoute {
            deployment: route.target.deployment,
        });
        lock(&self.routes).insert(route.service, route.clone());
        Ok(())
    }

    async fn remove_route(&self, service: ServiceId) -> Result<()> {
        self.journal.record(Call::RemoveRoute { service });
        lock(&self.routes).remove(&service);
        Ok(())
    }

    async fn route(&self, service: ServiceId) -> Result<Option<Route>> {
        Ok(lock(&self.routes).get(&service).cloned())
    }

    async fn hold(&self, service: ServiceId, _drain: Duration) -> Result<()> {
        self.journal.record(Call::Hold { service });
        Ok(())
    }

    async fn release(&self, service: ServiceId) -> Result<()> {
        self.journal.record(Call::Release { service });
        Ok(())
    }
}

/// How one scripted build ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Tags the requested image after `took` (of tokio time).
    Succeeds { took: Duration },
    /// Fails with this reason after `took`.
    Fails { took: Duration, reason: String },
    /// Never finishes (until the engine drops it).
    Hangs,
}

/// The commit every `FakeBuilder` build checks out.
pub const FAKE_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The subject of [`FAKE_COMMIT`]'s message.
pub const FAKE_COMMIT_SUBJECT: &str = "Add the fake feature";

/// An `ImageBuilder` whose builds end as scripted, in order (once the script is used up,
/// builds succeed at once). A build's image is the tag the engine asked for.
#[derive(Debug)]
pub struct FakeBuilder {
    journal: Journal,
    script: Mutex<VecDeque<BuildOutcome>>,
    requests: Mutex<Vec<BuildRequest>>,
}

impl FakeBuilder {
    pub fn new(journal: Journal) -> Self {
        FakeBuilder {
            journal,
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// The next build not yet scripted ends as `outcome`.
    pub fn then(&self, outcome: BuildOutcome) -> &Self {
        lock(&self.script).push_back(outcome);
        self
    }

    /// Every request the engine made, in order.
    pub fn requests(&self) -> Vec<BuildRequest> {
        lock(&self.requests).clone()
    }
}

/// Records [`Call::BuildDropped`] unless the build finished.
struct DropGuard {
    journal: Journal,
    number: u64,
    finished: bool,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.journal.record(Call::BuildDropped {
                number: self.number,
            });
        }
    }
}

#[async_trait::async_trait]
impl ImageBuilder for FakeBuilder {
    async fn build(&self, request: &BuildRequest, mut log: BuildLog) -> Result<BuildOutput> {
        self.journal.record(Call::BuildStarted {
            number: request.number,
        });
        lock(&self.requests).push(request.clone());
        let outcome = lock(&self.script)
            .pop_front()
            .unwrap_or(BuildOutcome::Succeeds {
                took: Duration::ZERO,
            });
        let mut guard = DropGuard {
            journal: self.journal.clone(),
            number: request.number,
            finished: false,
        };
        log(BuildProgress::Line(format!(
            "fake build of {}",
            request.repo_url
        )));
        // Like a real builder, the checkout comes first: even a build that then fails has it.
        log(BuildProgress::CheckedOut {
            commit: FAKE_COMMIT.into(),
            subject: Some(FAKE_COMMIT_SUBJECT.into()),
        });
        let result = match outcome {
            BuildOutcome::Succeeds { took } => {
                tokio::time::sleep(took).await;
                Ok(BuildOutput {
                    image: request.tag.clone(),
                    commit_sha: FAKE_COMMIT.into(),
                    dockerfile: "FROM scratch\n".into(),
                    procfile: None,
                    framework: None,
                })
            }
            BuildOutcome::Fails { took, reason } => {
                tokio::time::sleep(took).await;
                Err(Error::runtime(RuntimeFailure::StartFailed, reason))
            }
            BuildOutcome::Hangs => std::future::pending().await,
        };
        guard.finished = true;
        result
    }

    async fn remove_image(&self, image: &ImageRef) -> Result<()> {
        self.journal.record(Call::RemoveImage {
            image: image.to_string(),
        });
        Ok(())
    }
}
