//! [`DockerRuntime`]: the [`Runtime`] trait on the Docker Engine API, through bollard over the
//! local unix socket.
//!
//! Every name that ends up in an engine URL (container, network, volume) is validated first,
//! because bollard pastes names into request paths as they are: `a/../b` would address
//! another endpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ExecConfig};
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions, StatsOptions, StopContainerOptions,
};
use clank_core::image::ImageRef;
use clank_core::runtime::{
    ExecOutput, ExecRequest, LogOptions, LogStreamBox, OwnerFilter, PullProgress, RegistryAuth,
    Runtime, RuntimeCapabilities, TerminalSession, TerminalSize, WorkloadId, WorkloadSpec,
    WorkloadState, WorkloadStats, WorkloadStatus, append_capped,
};
use clank_core::{Error, InvalidInput, Result, RuntimeFailure, Timestamp};
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use crate::container::{create_body, name_of, owner_of, stats_of, status_of};
use crate::error::{Subject, engine_error, status_of as http_status};
use crate::logs::into_lines;
use crate::naming::{validate_container_name, validate_spec};

/// The engine's socket when neither the caller nor `DOCKER_HOST` names one.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Per-request timeout of the engine client (bollard's default is two minutes).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long connecting and negotiating the API version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `start` may spend pulling a missing image nobody pulled first (deployments pull
/// beforehand, bounded by their own deadline; see [`Runtime::pull`]).
const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(20);
/// Added to a stop's grace period for the engine to kill and reap the container.
const STOP_MARGIN: Duration = Duration::from_secs(30);

/// Runs workloads as Docker containers.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    pub(crate) docker: Docker,
    socket: String,
    pull_timeout: Duration,
    /// Serialises `ensure_network` per name inside this process; see [`crate::resources`]
    /// for the cross-process race.
    pub(crate) network_locks: Arc<StdMutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Which Clank node owns the workloads: `None` for the control plane's own host, a
    /// server id for an agent. One engine may hold both (a test machine, an agent on the
    /// platform host); each runtime lists and adopts only its own.
    scope: Option<String>,
}

/// Label naming the node (agent server) a container belongs to; absent on the platform host's.
pub const SCOPE_LABEL: &str = "clank.scope";

impl DockerRuntime {
    /// Connect to the local engine: the `unix://` socket in `DOCKER_HOST`, else
    /// [`DEFAULT_SOCKET`]; then negotiate the API version (the engine may be older than
    /// bollard's default, e.g. Docker 20.10 speaks 1.41).
    pub async fn connect() -> Result<DockerRuntime> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) => DockerRuntime::connect_socket(path).await,
                None => Err(Error::runtime(
                    RuntimeFailure::Unsupported,
                    format!(
                        "DOCKER_HOST={host}: clank-docker talks to the engine over a local unix \
                         socket only (unix:///path/to/docker.sock)"
                    ),
                )),
            },
            _ => DockerRuntime::connect_socket(DEFAULT_SOCKET).await,
        }
    }

    /// Connect to the engine listening on the unix socket at `path`.
    pub async fn connect_socket(path: &str) -> Result<DockerRuntime> {
        let runtime = DockerRuntime::unconnected(path)?;
        let socket = runtime.socket.clone();
        let negotiated = tokio::time::timeout(CONNECT_TIMEOUT, runtime.docker.negotiate_version())
            .await
            .map_err(|_| {
                Error::runtime(
                    RuntimeFailure::EngineUnavailable,
                    format!(
                        "the Docker engine at unix://{socket} did not answer within \
                         {CONNECT_TIMEOUT:?}; is the Docker daemon running and healthy?"
                    ),
                )
            })?
            .map_err(|e| unreachable(&socket, e))?;
        info!(socket = %socket, api = %negotiated.client_version(), "Connected to the Docker engine.");
        Ok(DockerRuntime {
            docker: negotiated,
            ..runtime
        })
    }

    /// A runtime for the socket at `path` that has not talked to the engine yet (no version
    /// negotiation): for tests, and for callers that negotiate themselves.
    pub fn unconnected(path: &str) -> Result<DockerRuntime> {
        let docker = Docker::connect_with_unix(
            path,
            REQUEST_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| unreachable(path, e))?;
        Ok(DockerRuntime {
            docker,
            socket: path.to_owned(),
            pull_timeout: DEFAULT_PULL_TIMEOUT,
            network_locks: Arc::default(),
            scope: None,
        })
    }

    /// How long `start` may spend pulling a missing image that no [`Runtime::pull`] fetched
    /// first (default 20 s).
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// Own only workloads labelled `clank.scope=<scope>` (an agent passes its server id).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The bollard client, for what the `Runtime` trait does not cover (building images).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The socket path this runtime talks to.
    pub fn socket(&self) -> &str {
        &self.socket
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerInspectResponse>> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if http_status(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error(e, Subject::Container, id)),
        }
    }

    /// The container named exactly `name`. Docker also resolves id prefixes, so a container
    /// whose id happens to start with `name` is not it.
    async fn inspect_by_name(&self, name: &str) -> Result<Option<ContainerInspectResponse>> {
        Ok(self
            .inspect_container(name)
            .await?
            .filter(|c| name_of(c) == name))
    }

    async fn status(&self, id: &str) -> Result<Option<WorkloadStatus>> {
        Ok(self
            .inspect_container(id)
            .await?
            .as_ref()
            .and_then(status_of))
    }

    /// A workload that must exist, for operations that fail with `NotFound` otherwise.
    async fn require(&self, id: &WorkloadId) -> Result<WorkloadStatus> {
        self.owned(id).await?.ok_or_else(|| not_found(id))
    }

    /// The workload `id`, `None` if no container has that id or name, and an error if a
    /// container does but Clank does not manage it: stop and remove must never touch the
    /// user's other containers, whatever id a caller passes.
    async fn owned(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        check_id(id)?;
        let Some(container) = self.inspect_container(&id.0).await? else {
            return Ok(None);
        };
        match status_of(&container) {
            Some(status) => Ok(Some(status)),
            None => Err(Error::runtime(
                RuntimeFailure::NameConflict,
                format!(
                    "container `{}` is not managed by Clank (it has no clank.* owner labels); \
                     refusing to touch it",
                    name_of(&container)
                ),
            )),
        }
    }

    /// Return the existing container of `spec.name` if it is this owner's (started if it is
    /// not running), or `NameConflict` if it is someone else's.
    async fn adopt_existing(
        &self,
        spec: &WorkloadSpec,
        existing: ContainerInspectResponse,
    ) -> Result<WorkloadStatus> {
        let owner = owner_of(existing.config.as_ref().and_then(|c| c.labels.as_ref()));
        if owner.as_ref() != Some(&spec.owner) {
            let whose = match owner {
                Some(o) => format!(
                    "belongs to service {} deployment {} (replica {})",
                    o.service, o.deployment, o.replica
                ),
                None => "is not managed by Clank".to_owned(),
            };
            return Err(Error::runtime(
                RuntimeFailure::NameConflict,
                format!(
                    "a container named `{}` already exists and {whose}; remove it or pick \
                     another name",
                    spec.name
                ),
            ));
        }
        let id = existing.id.clone().unwrap_or_default();
        let status = status_of(&existing).ok_or_else(|| not_found_name(&spec.name))?;
        if matches!(
            status.state,
            WorkloadState::Running { .. } | WorkloadState::Restarting
        ) {
            debug!(workload = %spec.name, "Workload already running; start is a no-op.");
            return Ok(status);
        }
        debug!(workload = %spec.name, "Starting an existing, stopped workload.");
        match self.docker.start_container(&id, None).await {
            Ok(()) => {}
            // 304: started by someone else in the meantime.
            Err(e) if http_status(&e) == Some(304) => {}
            Err(e) => return Err(start_failed(e, &spec.name)),
        }
        self.status(&id)
            .await?
            .ok_or_else(|| not_found_name(&spec.name))
    }

    /// Make sure `image` is on the host, pulling it (without credentials, within the pull
    /// timeout) if the engine does not have it: the fallback for callers that did not
    /// [`Runtime::pull`] first.
    async fn ensure_image(&self, image: &str) -> Result<()> {
        let reference: ImageRef = image.parse()?;
        let progress = |line: String| debug!(image, "{line}");
        match crate::pull::pull(&self.docker, &reference, None, self.pull_timeout, &progress).await
        {
            Ok(_) => Ok(()),
            Err(e) if e.runtime_failure() == Some(RuntimeFailure::EngineUnavailable) => Err(e),
            Err(e) => Err(Error::runtime(
                RuntimeFailure::ImageMissing,
                format!(
                    "image `{image}` is not on this Docker host and pulling it failed: {e}. \
                     Build or load it on the host (`docker build -t {image} .` or `docker \
                     load`), or give the service registry credentials"
                ),
            )),
        }
    }

    /// Remove a half-created container after a failed start; failures are only logged, the
    /// caller is already returning the start's own error.
    async fn discard(&self, id: &str, name: &str) {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            link: false,
        };
        if let Err(e) = self.docker.remove_container(id, Some(options)).await {
            if http_status(&e) != Some(404) {
                warn!(workload = %name, error = %e, "Could not remove the container of a failed start.");
            }
        }
    }

    async fn start_spec(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        let image = checked_image(spec)?;
        if let Some(existing) = self.inspect_by_name(&spec.name).await? {
            return self.adopt_existing(spec, existing).await;
        }
        self.ensure_image(&image).await?;
        let volume_labels = clank_core::runtime::Owner::labels_for_project(
            spec.owner.workspace,
            spec.owner.project,
        );
        for volume in &spec.volumes {
            self.ensure_volume(&volume.name, &volume_labels).await?;
        }

        info!(workload = %spec.name, image = %image, "Creating workload.");
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..CreateContainerOptions::default()
        };
        let mut body = create_body(spec, &image);
        if let Some(scope) = &self.scope {
            body.labels
                .get_or_insert_default()
                .insert(SCOPE_LABEL.to_owned(), scope.clone());
        }
        let created = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created,
            // Lost a race with a concurrent start of the same name: adopt (or refuse) it. The
            // engine reserves the name before the winner's container can be inspected, so
            // give it a moment to appear.
            Err(e) if http_status(&e) == Some(409) => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                loop {
                    if let Some(existing) = self.inspect_by_name(&spec.name).await? {
                        return self.adopt_existing(spec, existing).await;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(engine_error(e, Subject::Container, &spec.name));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => return Err(engine_error(e, Subject::Container, &spec.name)),
        };
        for warning in &created.warnings {
            warn!(workload = %spec.name, warning = %warning, "Docker warned on create.");
        }
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            let err = start_failed(e, &spec.name);
            self.discard(&created.id, &spec.name).await;
            return Err(err);
        }
        match self.status(&created.id).await {
            Ok(Some(status)) => Ok(status),
            Ok(None) => Err(Error::runtime(
                RuntimeFailure::StartFailed,
                format!(
                    "workload `{}` disappeared right after it started (removed by someone else?)",
                    spec.name
                ),
            )),
            Err(e) => Err(e),
        }
    }

    async fn stop_container(&self, id: &WorkloadId, grace: Duration) -> Result<()> {
        self.require(id).await?;
        let secs = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
            .unwrap_or(i32::MAX);
        // The engine answers a stop only once the container is down, up to the whole grace
        // period later: the request timeout must outlast it.
        let client = self.docker.clone().with_timeout(grace + STOP_MARGIN);
        let options = StopContainerOptions {
            t: Some(secs),
            signal: None,
        };
        match client.stop_container(&id.0, Some(options)).await {
            Ok(()) => {}
            // 304: already stopped.
            Err(e) if http_status(&e) == Some(304) => {}
            Err(e) if http_status(&e) == Some(404) => return Err(not_found(id)),
            Err(e) => {
                warn!(workload = %id, error = %e, "Graceful stop failed; killing.");
            }
        }
        // The engine's stop kills after the grace period; make sure, since a stop that erred
        // (a timeout, an engine hiccup) must not leave the workload running.
        let running = |s: &Option<WorkloadStatus>| {
            matches!(
                s.as_ref().map(|s| &s.state),
                Some(WorkloadState::Running { .. } | WorkloadState::Restarting)
            )
        };
        let mut status = self.status(&id.0).await?;
        if running(&status) {
            let kill = KillContainerOptions {
                signal: "SIGKILL".to_owned(),
            };
            if let Err(e) = self.docker.kill_container(&id.0, Some(kill)).await {
                // 409: it stopped on its own in between.
                if !matches!(http_status(&e), Some(404 | 409)) {
                    return Err(engine_error(e, Subject::Container, &id.0));
                }
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while running(&status) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                status = self.status(&id.0).await?;
            }
            if running(&status) {
                return Err(Error::runtime(
                    RuntimeFailure::Timeout,
                    format!("workload `{id}` is still running after SIGKILL"),
                ));
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &WorkloadId) -> Result<()> {
        if self.owned(id).await?.is_none() {
            return Ok(());
        }
        let options = RemoveContainerOptions {
            force: true,
            // Volumes outlive workloads; only `remove_volume` deletes them.
            v: false,
            link: false,
        };
        match self.docker.remove_container(&id.0, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if http_status(&e) == Some(404) => Ok(()),
            // "removal already in progress": wait for whoever is removing it.
            Err(e) if http_status(&e) == Some(409) => {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while tokio::time::Instant::now() < deadline {
                    if self.inspect_container(&id.0).await?.is_none() {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(engine_error(e, Subject::Container, &id.0))
            }
            Err(e) => Err(engine_error(e, Subject::Container, &id.0)),
        }
    }

    async fn list_containers(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        let mut labels: Vec<String> = filter
            .labels()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if let Some(scope) = &self.scope {
            labels.push(format!("{SCOPE_LABEL}={scope}"));
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), labels)])),
            ..ListContainersOptions::default()
        };
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| engine_error(e, Subject::Container, ""))?;
        // The summary lacks exit codes, OOM flags, restart counts and times: inspect each.
        let unscoped = self.scope.is_none();
        let inspections = summaries
            .iter()
            // The host's own runtime leaves agents' workloads alone.
            .filter(|s| {
                !unscoped
                    || s.labels
                        .as_ref()
                        .is_none_or(|l| !l.contains_key(SCOPE_LABEL))
            })
            .filter_map(|s| s.id.as_deref())
            .map(|id| self.status(id));
        let mut out = Vec::new();
        for status in futures_util::future::join_all(inspections).await {
            // `None`: removed between the list and the inspect.
            if let Some(s) = status? {
                if filter.matches(&s.owner) {
                    out.push(s);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn container_logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox> {
        self.require(id).await?;
        let opened_at = Timestamp::now();
        let mut query = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            timestamps: true,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |n| n.to_string()),
            ..LogsOptions::default()
        };
        // "No history, then follow" cannot be `tail=0`: bollard sends the request only when
        // the stream is first polled, and lines written in between would count as history and
        // be lost. Instead ask from the start of this second and drop, by Docker's own
        // timestamps, the lines written before this call.
        let not_before = match (options.tail, options.follow) {
            (Some(0), false) => return Ok(Box::pin(futures_util::stream::empty())),
            (Some(0), true) => {
                query.tail = "all".to_owned();
                query.since =
                    i32::try_from(opened_at.as_millis().div_euclid(1000)).unwrap_or(i32::MAX);
                Some(opened_at)
            }
            _ => None,
        };
        let frames = self.docker.logs(&id.0, Some(query));
        let lines = into_lines(frames, id.0.clone());
        Ok(match not_before {
            Some(t) => Box::pin(lines.filter(move |line| {
                let keep = match line {
                    Ok(l) => l.at.is_none_or(|at| at >= t),
                    Err(_) => true,
                };
                std::future::ready(keep)
            })),
            None => lines,
        })
    }

    /// A command exec can run (a program, no NUL byte) in a workload that is running.
    pub(crate) async fn ready_for_exec(&self, id: &WorkloadId, command: &[String]) -> Result<()> {
        if command.first().is_none_or(String::is_empty) || command.iter().any(|a| a.contains('\0'))
        {
            return Err(InvalidInput::new(
                "command",
                "empty",
                "exec needs a program name, and no argument may contain a NUL byte",
            )
            .into());
        }
        let status = self.require(id).await?;
        if !matches!(status.state, WorkloadState::Running { .. }) {
            return Err(Error::runtime(
                RuntimeFailure::Other,
                format!(
                    "workload `{}` is not running ({:?}); exec needs a running workload",
                    status.name, status.state
                ),
            ));
        }
        Ok(())
    }

    async fn exec_in(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput> {
        if request.tty {
            return Err(Error::runtime(
                RuntimeFailure::Unsupported,
                "interactive (TTY) exec is not supported yet; run a non-interactive command",
            ));
        }
        self.ready_for_exec(id, &request.command).await?;
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            cmd: Some(request.command.clone()),
            ..ExecConfig::default()
        };
        let created = self
            .docker
            .create_exec(&id.0, config)
            .await
            .map_err(|e| engine_error(e, Subject::Container, &id.0))?;
        let program = request.command[0].clone();
        let run = async {
            let started = self
                .docker
                .start_exec(&created.id, None)
                .await
                .map_err(|e| engine_error(e, Subject::Exec, &program))?;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = started {
                while let Some(frame) = output.next().await {
                    match frame.map_err(|e| engine_error(e, Subject::Exec, &program))? {
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message } => {
                            append_capped(&mut stdout, &message);
                        }
                        bollard::container::LogOutput::StdErr { message } => {
                            append_capped(&mut stderr, &message);
                        }
                        bollard::container::LogOutput::StdIn { .. } => {}
                    }
                }
            }
            // The output ends when the process does, but the engine may record the exit code
            // a moment later.
            let mut inspected = None;
            for _ in 0..50 {
                let i = self
                    .docker
                    .inspect_exec(&created.id)
                    .await
                    .map_err(|e| engine_error(e, Subject::Exec, &program))?;
                if i.running != Some(true) {
                    inspected = Some(i);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<ExecOutput, Error>(ExecOutput {
                exit_code: inspected.and_then(|i| i.exit_code),
                stdout: String::from_utf8_lossy(&stdout).into_owned(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            })
        };
        match tokio::time::timeout(request.timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!(
                    "exec `{program}` in workload `{id}` did not finish within {:?}; Docker \
                     cannot cancel an exec, so it may still be running inside the workload",
                    request.timeout
                ),
            )),
        }
    }

    async fn container_stats(&self, id: &WorkloadId) -> Result<WorkloadStats> {
        self.require(id).await?;
        // One sample, with `precpu` filled in: the engine waits one interval for it, which is
        // what makes a CPU percentage computable.
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        let mut samples = self.docker.stats(&id.0, Some(options));
        match samples.next().await {
            Some(Ok(sample)) => Ok(stats_of(&sample)),
            Some(Err(e)) => Err(engine_error(e, Subject::Container, &id.0)),
            None => Err(Error::runtime(
                RuntimeFailure::Other,
                format!("the engine sent no stats for workload `{id}`"),
            )),
        }
    }
}

/// A workload id is a container id or name; anything else never reaches a URL.
fn check_id(id: &WorkloadId) -> Result<()> {
    validate_container_name("workload_id", &id.0).map_err(Error::from)
}

fn not_found(id: &WorkloadId) -> Error {
    Error::runtime(
        RuntimeFailure::NotFound,
        format!("workload `{id}` does not exist on this Docker host"),
    )
}

fn not_found_name(name: &str) -> Error {
    not_found(&WorkloadId(name.to_owned()))
}

/// An engine refusal at start: a taken port stays `PortInUse`, a missing image
/// `ImageMissing`; whatever else made the engine refuse is `StartFailed`.
fn start_failed(e: bollard::errors::Error, name: &str) -> Error {
    let mapped = engine_error(e, Subject::Container, name);
    match mapped.runtime_failure() {
        Some(RuntimeFailure::Other | RuntimeFailure::NotFound) => Error::runtime(
            RuntimeFailure::StartFailed,
            format!("workload `{name}` could not start: {mapped}"),
        ),
        _ => mapped,
    }
}

fn unreachable(socket: &str, e: bollard::errors::Error) -> Error {
    let detail = engine_error(e, Subject::Engine, "");
    match detail.runtime_failure() {
        Some(RuntimeFailure::EngineUnavailable) | None => Error::runtime(
            RuntimeFailure::EngineUnavailable,
            format!("cannot reach the Docker engine at unix://{socket}: {detail}"),
        ),
        // An engine that answers but refuses to negotiate is reachable: keep what it said.
        Some(_) => Error::runtime(
            RuntimeFailure::EngineUnavailable,
            format!(
                "the Docker engine at unix://{socket} refused to negotiate an API version: {detail}"
            ),
        ),
    }
}

#[async_trait::async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> String {
        "docker".to_owned()
    }

    fn capabilities(&self) -> RuntimeCapabilities {
        RuntimeCapabilities {
            isolated_networks: true,
            resource_limits: true,
            images: true,
            terminals: true,
        }
    }

    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        crate::resources::ensure_network(self, name, labels).await
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        crate::resources::remove_network(self, name).await
    }

    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        crate::resources::ensure_volume(self, name, labels).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        crate::resources::remove_volume(self, name).await
    }

    async fn volume_belongs(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<bool> {
        crate::resources::volume_belongs(self, name, labels).await
    }

    async fn copy_volume(
        &self,
        from: &str,
        to: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64> {
        crate::volume_copy::copy_volume(self, from, to, labels).await
    }

    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus> {
        self.start_spec(spec).await
    }

    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
        within: Duration,
        progress: PullProgress<'_>,
    ) -> Result<Option<String>> {
        crate::pull::pull(&self.docker, image, auth, within, progress).await
    }

    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()> {
        self.ensure_image(&checked_image(spec)?).await
    }

    fn image_store(&self) -> Option<std::sync::Arc<dyn clank_core::runtime::ImageStore>> {
        Some(std::sync::Arc::new(crate::DockerImages::new(
            self.docker.clone(),
        )))
    }

    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>> {
        check_id(id)?;
        self.status(&id.0).await
    }

    async fn stop(&self, id: &WorkloadId, grace: Duration) -> Result<()> {
        self.stop_container(id, grace).await
    }

    async fn remove(&self, id: &WorkloadId) -> Result<()> {
        self.remove_container(id).await
    }

    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>> {
        self.list_containers(filter).await
    }

    async fn logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox> {
        self.container_logs(id, options).await
    }

    async fn exec(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput> {
        self.exec_in(id, request).await
    }

    async fn exec_interactive(
        &self,
        id: &WorkloadId,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        self.exec_terminal(id, command, size).await
    }

    async fn stats(&self, id: &WorkloadId) -> Result<WorkloadStats> {
        self.container_stats(id).await
    }
}

/// The image `spec` runs, once the spec is valid (a container workload must name one).
fn checked_image(spec: &WorkloadSpec) -> Result<String> {
    validate_spec(spec)?;
    Ok(spec
        .image
        .as_ref()
        .map(ToString::to_string)
        .ok_or_else(|| InvalidInput::new("image", "required", "no image"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    use clank_core::runtime::EXEC_OUTPUT_MAX;

    #[test]
    fn exec_output_is_capped_with_a_marker() {
        let mut buf = Vec::new();
        append_capped(&mut buf, &vec![b'a'; EXEC_OUTPUT_MAX - 1]);
        append_capped(&mut buf, b"bcd");
        append_capped(&mut buf, b"more");
        assert!(buf.ends_with(b"b\n[output truncated]\n"));
        assert_eq!(buf.len(), EXEC_OUTPUT_MAX + b"\n[output truncated]\n".len());
        // Filled to the byte by one chunk, then more: the marker still says so, once.
        let mut exact = Vec::new();
        append_capped(&mut exact, &vec![b'a'; EXEC_OUTPUT_MAX]);
        assert_eq!(exact.len(), EXEC_OUTPUT_MAX);
        append_capped(&mut exact, b"more");
        append_capped(&mut exact, b"and more");
        assert!(exact.ends_with(b"a\n[output truncated]\n"));
        assert_eq!(
            exact.len(),
            EXEC_OUTPUT_MAX + b"\n[output truncated]\n".len()
        );
    }

    #[test]
    fn workload_ids_that_would_change_the_url_are_refused() {
        for bad in ["../images/x", "a/b", "x?force=1", ""] {
            assert!(check_id(&WorkloadId(bad.to_owned())).is_err(), "{bad}");
        }
        assert!(check_id(&WorkloadId("0123abcd".into())).is_ok());
    }
}
