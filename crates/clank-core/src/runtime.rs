//! The `Runtime` trait: how the platform runs workloads, whatever runs them (Docker, native
//! processes, a remote server's agent), plus the plain data it speaks in.
//!
//! A workload is one instance (replica) of one process type of one deployment. Runtimes tag
//! every workload with its [`Owner`], so a restarted control plane finds what it started
//! ([`Runtime::list`]) and adopts or removes it. All operations are idempotent where the
//! contract says so, because the reconciler re-runs them after crashes.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use futures_core::Stream;

use crate::config::EnvValue;
use crate::error::Result;
use crate::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use crate::image::ImageRef;
use crate::secret::SecretString;
use crate::time::Timestamp;

/// Label/metadata key prefix on everything a runtime creates for Clank.
pub const LABEL_PREFIX: &str = "clank.";

/// Who a workload belongs to. Recorded as labels (`clank.service=<id>`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub workspace: WorkspaceId,
    pub project: ProjectId,
    pub environment: EnvironmentId,
    pub service: ServiceId,
    pub deployment: DeploymentId,
    /// Process type (`web`, `worker`, ...).
    pub process: String,
    pub replica: u32,
}

impl Owner {
    /// The owner as `clank.*` labels.
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            ("workspace", self.workspace.to_string()),
            ("project", self.project.to_string()),
            ("environment", self.environment.to_string()),
            ("service", self.service.to_string()),
            ("deployment", self.deployment.to_string()),
            ("process", self.process.clone()),
            ("replica", self.replica.to_string()),
            ("managed", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v))
        .collect()
    }

    /// Labels for project-level resources (networks, volumes) shared by its workloads.
    pub fn labels_for_project(
        workspace: WorkspaceId,
        project: ProjectId,
    ) -> BTreeMap<String, String> {
        [
            ("workspace", workspace.to_string()),
            ("project", project.to_string()),
            ("managed", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v))
        .collect()
    }

    /// Read an owner back from labels; `None` if any is missing or malformed (not ours).
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Owner> {
        let get = |k: &str| labels.get(&format!("{LABEL_PREFIX}{k}"));
        Some(Owner {
            workspace: get("workspace")?.parse().ok()?,
            project: get("project")?.parse().ok()?,
            environment: get("environment")?.parse().ok()?,
            service: get("service")?.parse().ok()?,
            deployment: get("deployment")?.parse().ok()?,
            process: get("process")?.clone(),
            replica: get("replica")?.parse().ok()?,
        })
    }
}

/// Longest workload name: the longest name every runtime takes (the native runtime makes
/// directories of them, Docker volumes share the limit).
pub const WORKLOAD_NAME_MAX_LEN: usize = crate::validate::VOLUME_NAME_MAX_LEN;

/// The name of one replica of one process of one deployment, on every runtime:
/// `clank-{workspace scope}--{project}--{environment}--{service}--{number}--{process}--{replica}`.
///
/// The workspace's [`WorkspaceId::scope`] comes first, so two workspaces with the same slugs
/// never share (or collide on) a name. Parts are joined with `--`, which slugs may not contain,
/// so two different inputs never produce one name (with a single `-`, project `a-b` +
/// environment `c` and project `a` + environment `b-c` would collide). Every slug is validated
/// here, before any engine call. A name longer than [`WORKLOAD_NAME_MAX_LEN`] keeps its
/// readable start and ends in a hash of the whole, so it stays unique and stable (idempotent
/// starts rely on that). Runtimes find their objects by labels, never by parsing names.
pub fn workload_name(
    workspace: WorkspaceId,
    project_slug: &str,
    environment_slug: &str,
    service_slug: &str,
    deployment_number: u64,
    process: &str,
    replica: u32,
) -> Result<String, crate::error::InvalidInput> {
    use crate::validate::validate_slug;
    validate_slug("project", project_slug)?;
    validate_slug("environment", environment_slug)?;
    validate_slug("service", service_slug)?;
    validate_slug("process", process)?;
    Ok(bounded_name(format!(
        "clank-{}--{project_slug}--{environment_slug}--{service_slug}--{deployment_number}--{process}--{replica}",
        workspace.scope()
    )))
}

/// The private network of a workspace's project: `clank-{workspace scope}--{project}`.
/// `project_slug` is a validated slug (a `Project`'s). This is the network of the project's
/// default environment (`production`); see [`environment_network_name`].
pub fn project_network_name(workspace: WorkspaceId, project_slug: &str) -> String {
    bounded_name(format!("clank-{}--{project_slug}", workspace.scope()))
}

/// The private network of one environment of a project. Each environment has its own, so a
/// service of `staging` or a pull request's preview never resolves (or reaches) production's
/// `db`: the default environment keeps the project's network
/// (`clank-{scope}--{project}`), any other is `clank-{scope}--{project}--{environment}`
/// (`--` never occurs inside a slug, so no two pairs share a name).
pub fn environment_network_name(
    workspace: WorkspaceId,
    project_slug: &str,
    environment_slug: &str,
) -> String {
    if environment_slug == crate::model::Environment::DEFAULT {
        project_network_name(workspace, project_slug)
    } else {
        bounded_name(format!(
            "clank-{}--{project_slug}--{environment_slug}",
            workspace.scope()
        ))
    }
}

/// The name a runtime gives a service's volume `name` (`clank-{project}-{service}-data` by
/// default): `clank-{workspace scope}--{name}`, so a volume name in one workspace never
/// reaches another's data.
pub fn volume_runtime_name(workspace: WorkspaceId, name: &str) -> String {
    bounded_name(format!("clank-{}--{name}", workspace.scope()))
}

/// A runtime name without its workspace scope: `clank-{scope}--shop--…` → `clank-shop--…`
/// (names without a scope come back unchanged). For people and tests reading names; Clank
/// itself finds its objects by labels.
pub fn unscoped_name(name: &str) -> std::borrow::Cow<'_, str> {
    let scoped = name
        .strip_prefix("clank-")
        .and_then(|rest| rest.split_once("--"))
        .filter(|(scope, _)| scope.len() == 12 && scope.bytes().all(|b| b.is_ascii_hexdigit()));
    match scoped {
        Some((_, rest)) => format!("clank-{rest}").into(),
        None => name.into(),
    }
}

/// The name a service gave a volume, from the name the runtime knows it by (the inverse of
/// [`volume_runtime_name`] for names that fit; others come back unchanged): what a workload's
/// environment calls it (`CLANK_VOLUME_<NAME>`), so it does not change with the workspace.
pub fn volume_declared_name(runtime_name: &str) -> &str {
    runtime_name
        .strip_prefix("clank-")
        .and_then(|rest| rest.split_once("--"))
        .filter(|(scope, _)| scope.len() == 12 && scope.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or(runtime_name, |(_, declared)| declared)
}

/// `full` when it fits [`WORKLOAD_NAME_MAX_LEN`], else its start and an FNV-1a hash of the
/// whole (stable across releases and platforms, unlike std's hasher).
fn bounded_name(full: String) -> String {
    if full.len() <= WORKLOAD_NAME_MAX_LEN {
        return full;
    }
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // Names are ASCII (validated slugs and volume names), so any byte index is a boundary.
    let head = full[..WORKLOAD_NAME_MAX_LEN - 17].trim_end_matches('-');
    format!("{head}-{hash:016x}")
}

/// Which workloads to list: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerFilter {
    pub workspace: Option<WorkspaceId>,
    pub project: Option<ProjectId>,
    pub service: Option<ServiceId>,
    pub deployment: Option<DeploymentId>,
}

impl OwnerFilter {
    pub fn matches(&self, o: &Owner) -> bool {
        self.workspace.is_none_or(|w| w == o.workspace)
            && self.project.is_none_or(|p| p == o.project)
            && self.service.is_none_or(|s| s == o.service)
            && self.deployment.is_none_or(|d| d == o.deployment)
    }

    /// The filter as `clank.*` label equalities (for engines that filter by label).
    pub fn labels(&self) -> Vec<(String, String)> {
        let mut out = vec![(format!("{LABEL_PREFIX}managed"), "true".to_owned())];
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((format!("{LABEL_PREFIX}{k}"), v));
            }
        };
        add("workspace", self.workspace.map(|x| x.to_string()));
        add("project", self.project.map(|x| x.to_string()));
        add("service", self.service.map(|x| x.to_string()));
        add("deployment", self.deployment.map(|x| x.to_string()));
        out
    }
}

/// Where a workload's port is published on the host, so the platform can probe and proxy it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortBinding {
    pub host_ip: IpAddr,
    /// `None` = any free port, chosen by the runtime and reported in [`WorkloadStatus`].
    pub host_port: Option<u16>,
}

impl PortBinding {
    /// Loopback, ephemeral port: reachable by the platform's proxy and prober only.
    pub fn loopback() -> Self {
        PortBinding {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: None,
        }
    }

    /// Whether two bindings claim the same host socket, so only one can be published at a
    /// time: the same fixed port on the same address, or on any address when either is the
    /// unspecified one (which listens on all of them). Ephemeral ports never collide.
    pub fn collides_with(&self, other: &PortBinding) -> bool {
        match (self.host_port, other.host_port) {
            (Some(a), Some(b)) if a == b => {
                self.host_ip == other.host_ip
                    || self.host_ip.is_unspecified()
                    || other.host_ip.is_unspecified()
            }
            _ => false,
        }
    }
}

/// The project network a workload joins, and the names other workloads reach it by.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    pub aliases: Vec<String>,
}

/// What restarts a workload that exits on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    Never,
    /// Restart on non-zero exit, up to this many times (the reconciler takes over after).
    OnFailure {
        max_retries: u32,
    },
    #[default]
    UnlessStopped,
}

/// Everything a runtime needs to start one workload.
#[derive(Clone)]
pub struct WorkloadSpec {
    /// Unique, runtime-safe name (`clank-shop-production-api-3-web-0`); starting an existing
    /// name with the same owner is a no-op that returns its status.
    pub name: String,
    pub owner: Owner,
    /// The image (container runtimes). Native runtimes ignore it and need `command`.
    pub image: Option<ImageRef>,
    /// Argument vector; `None` = the image's own entrypoint/cmd.
    pub command: Option<Vec<String>>,
    /// Environment, secrets already decrypted (only at this point).
    pub env: Vec<(String, EnvValue)>,
    pub working_dir: Option<String>,
    /// The port the application listens on inside the workload.
    pub port: Option<u16>,
    pub publish: Option<PortBinding>,
    pub network: Option<NetworkAttachment>,
    pub volumes: Vec<crate::model::VolumeMount>,
    pub cpu_limit: f64,
    pub memory_limit_mb: u32,
    pub restart: RestartPolicy,
}

impl fmt::Debug for WorkloadSpec {
    // Env values may be secrets: list keys only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadSpec")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("image", &self.image)
            .field("command", &self.command)
            .field(
                "env_keys",
                &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("port", &self.port)
            .field("publish", &self.publish)
            .field("network", &self.network)
            .field("volumes", &self.volumes)
            .finish_non_exhaustive()
    }
}

/// A runtime's handle for a workload (container id, process key).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct WorkloadId(pub String);

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a workload is doing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkloadState {
    Created,
    Running {
        started_at: Timestamp,
    },
    Restarting,
    Exited {
        code: Option<i64>,
        oom_killed: bool,
        finished_at: Option<Timestamp>,
    },
}

/// A workload as the runtime sees it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadStatus {
    pub id: WorkloadId,
    pub name: String,
    pub owner: Owner,
    pub state: WorkloadState,
    pub restart_count: u32,
    /// Host address of the published port, for probes and the proxy.
    pub endpoint: Option<SocketAddr>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogLine {
    pub stream: LogStream,
    pub line: String,
    pub at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep streaming new lines until the workload exits or the stream is dropped.
    pub follow: bool,
    /// Only the last N lines of history (`None` = all).
    pub tail: Option<usize>,
}

/// Log lines as they come; ends when the workload stops (follow) or history is exhausted.
pub type LogStreamBox = Pin<Box<dyn Stream<Item = Result<LogLine>> + Send>>;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

impl TerminalSize {
    /// A size a terminal can have: 1..=1000 rows and columns.
    pub fn check(self) -> std::result::Result<TerminalSize, crate::InvalidInput> {
        if (1..=1000).contains(&self.rows) && (1..=1000).contains(&self.cols) {
            Ok(self)
        } else {
            Err(crate::InvalidInput::new(
                "size",
                "range",
                format!(
                    "a terminal of {} rows and {} columns: both are between 1 and 1000",
                    self.rows, self.cols
                ),
            ))
        }
    }
}

impl Default for TerminalSize {
    fn default() -> Self {
        TerminalSize { rows: 24, cols: 80 }
    }
}

/// What an interactive session's user sends: keystrokes (bytes as typed) or a new size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalInput {
    Data(Vec<u8>),
    Resize(TerminalSize),
}

/// Where an interactive session's input goes (see [`Runtime::exec_interactive`]).
#[async_trait::async_trait]
pub trait TerminalSink: Send {
    /// Deliver input to the terminal. Fails once the session's process is gone.
    async fn send(&mut self, input: TerminalInput) -> Result<()>;
}

/// A command running on a terminal in a workload: what it prints (stdout and stderr merged,
/// as a terminal shows them), where keystrokes and resizes go, and its exit code once the
/// output ends (`None` when the runtime cannot tell). Dropping the session ends the command.
pub struct TerminalSession {
    pub output: Pin<Box<dyn Stream<Item = Result<Vec<u8>>> + Send>>,
    pub input: Box<dyn TerminalSink>,
    pub exit_code: Pin<Box<dyn std::future::Future<Output = Result<Option<i64>>> + Send>>,
}

impl fmt::Debug for TerminalSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalSession").finish_non_exhaustive()
    }
}

/// A command to run inside a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Reserved for interactive sessions; runtimes refuse `true` with `Unsupported` for now.
    pub tty: bool,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

/// The most output `exec` keeps of each stream (stdout, stderr), on every runtime: the rest
/// is read and dropped, and a marker says so. Bounds what one request can make the platform
/// hold in memory.
pub const EXEC_OUTPUT_MAX: usize = 1 << 20;

/// The marker [`append_capped`] ends a truncated stream with.
pub const EXEC_TRUNCATED: &[u8] = b"\n[output truncated]\n";

/// Append `bytes` to an exec output `buffer`, keeping at most [`EXEC_OUTPUT_MAX`] bytes (and
/// the marker once, when something was dropped).
pub fn append_capped(buffer: &mut Vec<u8>, bytes: &[u8]) {
    // Longer than the cap only once the marker is there: nothing more to keep or say.
    if buffer.len() > EXEC_OUTPUT_MAX || bytes.is_empty() {
        return;
    }
    let room = EXEC_OUTPUT_MAX - buffer.len();
    if bytes.len() <= room {
        buffer.extend_from_slice(bytes);
    } else {
        buffer.extend_from_slice(&bytes[..room]);
        buffer.extend_from_slice(EXEC_TRUNCATED);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct WorkloadStats {
    /// Percent of one core (200.0 = two cores busy).
    pub cpu_percent: f64,
    pub memory_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
}

/// Credentials for a private registry: the value of a service's `credentials_secret`
/// (`username:password`, or `username:token`). The password is a [`SecretString`] and `Debug`
/// shows neither it nor its length.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: SecretString,
}

impl RegistryAuth {
    /// Parse `username:password` (split at the first `:`, so a token may contain more).
    /// The error names `key`, the config secret, never the value.
    pub fn parse(key: &str, value: &SecretString) -> std::result::Result<RegistryAuth, String> {
        match value.expose().split_once(':') {
            Some((user, password)) if !user.is_empty() && !password.is_empty() => {
                Ok(RegistryAuth {
                    username: user.to_owned(),
                    password: SecretString::new(password),
                })
            }
            _ => Err(format!(
                "the registry credentials secret `{key}` must hold `username:password` (or \
                 `username:token`); set it again in that form"
            )),
        }
    }
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &crate::secret::MASK)
            .finish()
    }
}

/// Where a pull reports its progress: one human-readable line at a time (layer states with
/// sizes, throttled by the runtime), bound for the deployment's log.
pub type PullProgress<'a> = &'a (dyn Fn(String) + Send + Sync);

/// An image as a host's engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// The engine's content-addressed id (`sha256:…`): the same on every engine holding
    /// these bits, however they got there.
    pub id: String,
    /// Bytes on disk (an exported archive is about as large).
    pub size: u64,
    /// The registry digest (`sha256:…`) when the image came from its registry.
    pub repo_digest: Option<String>,
}

/// An image archive (what `docker save` writes) as it streams, in chunks.
pub type ImageArchive = Pin<Box<dyn Stream<Item = Result<Vec<u8>>> + Send>>;

/// The images of one host's engine, as whole archives: how an image built or loaded on the
/// control plane reaches a remote server whose engine has never seen it.
#[async_trait::async_trait]
pub trait ImageStore: Send + Sync + fmt::Debug {
    /// The image `image` names, or `None` when the engine does not hold it.
    async fn find(&self, image: &ImageRef) -> Result<Option<LocalImage>>;
    /// `image` as an archive, streamed as the engine writes it (never whole in memory).
    async fn export(&self, image: &ImageRef) -> Result<ImageArchive>;
    /// Load an archive. An archive that ends early or errors loads nothing: the engine only
    /// keeps an image once its whole archive has been read.
    async fn import(&self, archive: ImageArchive) -> Result<()>;
    /// Remove the image with id `id` (a load that did not produce what was sent).
    async fn remove(&self, id: &str) -> Result<()>;
    /// Name the image with id `id` `image` too; `false` when the engine has no such image.
    async fn tag(&self, id: &str, image: &ImageRef) -> Result<bool>;
}

/// What a runtime can do, so callers and the contract suite adapt instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeCapabilities {
    /// Private per-project networks with name resolution and isolation between projects.
    pub isolated_networks: bool,
    /// CPU and memory limits are enforced.
    pub resource_limits: bool,
    /// Workloads run from images.
    pub images: bool,
    /// `exec_interactive` runs commands on a terminal.
    pub terminals: bool,
}

/// Runs workloads. Implementations: `clank-docker` (Docker Engine), `clank-process` (native
/// processes), and the daemon's agent client (a remote server).
///
/// Contract (checked by `clank_testkit::runtime` for every implementation):
/// - `start` is idempotent by `spec.name`; a failed start leaves nothing behind.
/// - `stop` sends a graceful signal, then kills after `grace`; stopping a stopped workload is Ok.
/// - `remove` stops if needed and is Ok when the workload is already gone.
/// - `list` finds workloads started by *any* earlier instance of the runtime (adoption).
/// - Volumes are never removed except by `remove_volume`.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + fmt::Debug {
    /// A short name for messages: `docker`, `process`, `agent:<server>`.
    fn name(&self) -> String;
    fn capabilities(&self) -> RuntimeCapabilities;

    /// Create the network if missing (idempotent).
    async fn ensure_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    /// Remove a network (idempotent). Fails if workloads are still attached.
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// Create the named volume if missing (idempotent).
    async fn ensure_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()>;
    /// Delete a volume and its data. Only ever called on an explicit user request.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Whether volume `name` exists and belongs to the owner `labels` name (an earlier
    /// version of Clank created it for that workspace and project). `false` when absent, or
    /// another owner's, or when the runtime cannot tell (the default).
    async fn volume_belongs(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<bool> {
        let _ = (name, labels);
        Ok(false)
    }
    /// Copy the data of volume `from` into a new volume `to` created with `labels`, keeping
    /// owners, modes and symlinks; returns the bytes moved (a runtime may count its archive
    /// format's overhead). `from` must exist and belong to the owner `labels` names
    /// (`NotFound` otherwise: another owner's data is never read); `to` must not exist yet
    /// (`NameConflict`: a copy never mixes into data already there). A failed copy removes
    /// `to`. A workload writing to `from` meanwhile may leave the copy inconsistent; callers
    /// say so. The default: `Unsupported`.
    async fn copy_volume(
        &self,
        from: &str,
        to: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64> {
        let _ = (from, to, labels);
        Err(crate::Error::runtime(
            crate::RuntimeFailure::Unsupported,
            format!("the {} runtime cannot copy volume data", self.name()),
        ))
    }

    async fn start(&self, spec: &WorkloadSpec) -> Result<WorkloadStatus>;
    /// Make sure `image` is on the host, pulling it from its registry (with `auth` when
    /// given) if it is not, within `within`, reporting progress lines to `progress`. Returns
    /// the image's registry digest (`sha256:…`) when the host knows it (pulled images), `None`
    /// for local-only images and for runtimes without images.
    ///
    /// Errors name the image, the registry and why: the registry refused the credentials,
    /// the image or tag does not exist, the registry could not be reached, or the pull did
    /// not finish within `within` ([`RuntimeFailure::Timeout`](crate::RuntimeFailure)). The
    /// default does nothing: native processes have no images. A remote server's runtime
    /// makes its engine hold the image (already there, pulled there, or sent from the
    /// control plane's engine) and returns the id (`sha256:…`) verified there when there is
    /// no registry digest.
    async fn pull(
        &self,
        image: &ImageRef,
        auth: Option<&RegistryAuth>,
        within: Duration,
        progress: PullProgress<'_>,
    ) -> Result<Option<String>> {
        let _ = (image, auth, within, progress);
        Ok(None)
    }
    /// Make ready what starting `spec` needs, without starting anything (a container runtime:
    /// the image is on the host, pulled if it can be), so a stop-first cutover is refused
    /// before it stops the running version. Idempotent; fails as `start` would.
    async fn prepare(&self, spec: &WorkloadSpec) -> Result<()>;
    /// This host's images as archives, when the runtime runs images on an engine that can
    /// export and load them (Docker); `None` (the default) otherwise.
    fn image_store(&self) -> Option<std::sync::Arc<dyn ImageStore>> {
        None
    }
    /// `None` if the workload does not exist.
    async fn inspect(&self, id: &WorkloadId) -> Result<Option<WorkloadStatus>>;
    async fn stop(&self, id: &WorkloadId, grace: Duration) -> Result<()>;
    async fn remove(&self, id: &WorkloadId) -> Result<()>;
    async fn list(&self, filter: &OwnerFilter) -> Result<Vec<WorkloadStatus>>;
    async fn logs(&self, id: &WorkloadId, options: LogOptions) -> Result<LogStreamBox>;
    async fn exec(&self, id: &WorkloadId, request: &ExecRequest) -> Result<ExecOutput>;
    /// Run `command` in the running workload on a terminal of `size` (`TERM=xterm-256color`),
    /// for a person at a keyboard. The default: `Unsupported`.
    async fn exec_interactive(
        &self,
        id: &WorkloadId,
        command: &[String],
        size: TerminalSize,
    ) -> Result<TerminalSession> {
        let _ = (id, command, size);
        Err(crate::Error::runtime(
            crate::RuntimeFailure::Unsupported,
            format!(
                "the {} runtime cannot run an interactive (terminal) command; run a \
                 non-interactive one (without -t)",
                self.name()
            ),
        ))
    }
    async fn stats(&self, id: &WorkloadId) -> Result<WorkloadStats>;

    /// Run a platform health probe from the workload's own host. `None` (the default): the
    /// runtime runs on this host, and the caller probes [`WorkloadStatus::endpoint`] itself.
    /// A remote server's runtime probes there, where the published address means something.
    async fn probe(
        &self,
        _workload: &WorkloadStatus,
        _check: &crate::model::HealthCheck,
        _timeout: Duration,
    ) -> Result<Option<ProbeResult>> {
        Ok(None)
    }
}

pub use crate::probe::ProbeResult;

/// Where deployments with a `server_id` run: each remote server's runtime and proxy (its
/// agent's). Deployments without one use the engine's own runtime and proxy.
pub trait Placement: Send + Sync + fmt::Debug {
    /// The runtime and proxy of server `id`; `NotFound` when no such server is enrolled.
    fn remote(
        &self,
        id: crate::id::ServerId,
    ) -> Result<(
        std::sync::Arc<dyn Runtime>,
        std::sync::Arc<dyn crate::proxy::Proxy>,
    )>;
    /// Servers whose agent is connected now (recovery sweeps list their workloads).
    fn connected(&self) -> Vec<crate::id::ServerId>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_splits_at_the_first_colon_and_never_shows_the_password() {
        let auth = RegistryAuth::parse("REGISTRY_AUTH", &SecretString::new("bot:tok:en")).unwrap();
        assert_eq!(auth.username, "bot");
        assert_eq!(auth.password.expose(), "tok:en");
        let shown = format!("{auth:?}");
        assert!(shown.contains("bot") && !shown.contains("tok"), "{shown}");
        for bad in ["justatoken", ":hunter2", "bob:"] {
            let err = RegistryAuth::parse("REGISTRY_AUTH", &SecretString::new(bad)).unwrap_err();
            assert!(
                err.contains("`REGISTRY_AUTH`") && !err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn owner_round_trips_through_labels_and_rejects_foreign_ones() {
        let o = Owner {
            workspace: WorkspaceId::new(),
            project: ProjectId::new(),
            environment: EnvironmentId::new(),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            process: "web".into(),
            replica: 2,
        };
        let labels = o.labels();
        assert_eq!(Owner::from_labels(&labels), Some(o.clone()));
        let mut foreign = labels.clone();
        foreign.insert("clank.service".into(), "not-a-uuid".into());
        assert_eq!(Owner::from_labels(&foreign), None);
        let filter = OwnerFilter {
            service: Some(o.service),
            ..OwnerFilter::default()
        };
        assert!(filter.matches(&o));
        assert!(
            !OwnerFilter {
                service: Some(ServiceId::new()),
                ..filter
            }
            .matches(&o)
        );
    }
}
