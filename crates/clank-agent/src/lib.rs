//! `clank-agent`: runs on a remote server, dials OUT to the control plane over gRPC (no
//! inbound port, NAT-friendly), and makes the server's Docker engine hold the desired state
//! the control plane sends.
//!
//! - Enrollment: a one-time join token becomes a long-lived credential in the state directory,
//!   with the control plane's release signing key.
//! - Session: one bidirectional stream; heartbeats up, lease + desired state + calls down;
//!   reconnects with exponential backoff and full jitter; HTTP/2 keepalive.
//! - Reconcile ([`reconcile`]): idempotent, by workload name; only while the lease is valid
//!   and only for the newest epoch seen (fencing). Workloads keep running when the control
//!   plane is unreachable.
//! - Calls ([`calls`]): list, logs, exec, probes from this host, the local proxy's routes,
//!   images ([`images`]): present, pulled here, or received from the control plane, and
//!   terminals ([`terminal`]): interactive exec, windowed both ways, ended with the session.
//! - Self-update ([`update`]): verify the offer's signature with the release key learned at
//!   enrollment, download, verify the checksum, check-connect, swap atomically, re-exec, roll
//!   back.

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use clank_core::runtime::Runtime;
use clank_proto::v1::{self, agent_message::Body as Up, control_message::Body as Down};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod calls;
mod images;
pub mod pinned;
mod reconcile;
pub mod state;
pub mod terminal;
pub mod update;
mod usage;

pub use state::StateDir;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this agent tells the control plane it can do (`Hello.features`).
pub const FEATURES: &[&str] = &[
    clank_proto::FEATURE_IMAGE_TRANSFER,
    clank_proto::FEATURE_TERMINALS,
];

/// Exit codes of the `clank-agent` binary.
pub mod exit {
    /// The join token was refused (wrong, used, expired).
    pub const JOIN_REFUSED: i32 = 2;
    /// The credential was refused: the server was revoked (or the identity is another's).
    pub const CREDENTIAL_REFUSED: i32 = 3;
    /// Bad configuration or state.
    pub const CONFIG: i32 = 4;
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `https://host:port` (TLS, pinned by `fingerprint`) or `http://host:port` of the
    /// control plane's agent endpoint.
    pub control_plane: String,
    /// `sha256:<hex>` of the endpoint's certificate (from `clank server add`); remembered in
    /// the state directory after the first start.
    pub fingerprint: Option<String>,
    pub state_dir: PathBuf,
    /// Needed once, when the state directory holds no identity yet.
    pub join_token: Option<String>,
    pub heartbeat_interval: Duration,
    /// How often the desired state is re-applied even without changes (drift repair).
    pub resync_interval: Duration,
    pub backoff_max: Duration,
    /// Where the server's own proxy serves routed services (`None`: no proxy).
    pub proxy_listen: Option<std::net::SocketAddr>,
    /// After a self-update, how long the new binary may take to connect before it rolls back.
    pub update_rollback_after: Duration,
}

impl AgentConfig {
    pub fn new(control_plane: impl Into<String>, state_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            control_plane: control_plane.into(),
            state_dir: state_dir.into(),
            join_token: None,
            fingerprint: None,
            heartbeat_interval: Duration::from_secs(5),
            resync_interval: Duration::from_secs(30),
            backoff_max: Duration::from_secs(30),
            proxy_listen: None,
            update_rollback_after: Duration::from_secs(60),
        }
    }
}

/// Why the agent stopped.
#[derive(Debug)]
pub enum Stop {
    Shutdown,
    /// Exit with this code and message.
    Fatal(i32, String),
    /// A self-update was installed: re-exec the binary at this path.
    Restart(PathBuf),
}

/// The lease the agent acts under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lease {
    pub(crate) epoch: u64,
    pub(crate) valid_until: tokio::time::Instant,
}

/// State shared by the session loop, the reconciler and call handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: AgentConfig,
    pub(crate) state: StateDir,
    pub(crate) server_id: String,
    pub(crate) credential: String,
    pub(crate) runtime: Arc<dyn Runtime>,
    /// The engine `runtime` runs on: terminals' exec records (see [`terminal`]).
    pub(crate) docker: Option<bollard::Docker>,
    /// The server's proxy: `clank-proxy` serving routed services, or (no listen address) the
    /// engine's in-memory route table, which still health-gates cutovers from this host.
    pub(crate) proxy: Arc<dyn clank_core::proxy::Proxy>,
    pub(crate) lease: StdMutex<Option<Lease>>,
    /// The current session's upward channel (reports go nowhere between sessions).
    pub(crate) up: StdMutex<Option<mpsc::Sender<v1::AgentMessage>>>,
    pub(crate) desired: watch::Sender<Option<v1::DesiredState>>,
    pub(crate) applied_generation: std::sync::atomic::AtomicU64,
    pub(crate) binary_sha256: String,
    pub(crate) calls: calls::Calls,
    /// The current session's terminals.
    pub(crate) terminals: terminal::Terminals,
    pub(crate) stop: CancellationToken,
    pub(crate) restart: StdMutex<Option<PathBuf>>,
    /// The control plane's release signing key learned at enrollment (`None`: enrolled before
    /// releases were signed; every update is refused).
    pub(crate) release_key: Option<Vec<u8>>,
    /// Checksums of offered binaries that failed verification or their check run.
    pub(crate) refused_updates: StdMutex<std::collections::HashSet<String>>,
}

pub(crate) fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The epoch to act under, if the lease is still valid.
    pub(crate) fn valid_lease(&self) -> Option<u64> {
        let lease = *lock(&self.lease);
        lease
            .filter(|l| tokio::time::Instant::now() < l.valid_until)
            .map(|l| l.epoch)
    }

    /// A new channel to the control plane (TLS pinned when configured).
    pub(crate) async fn channel(&self) -> Result<tonic::transport::Channel, String> {
        connect(
            &self.config.control_plane,
            self.config.fingerprint.as_deref(),
        )
        .await
    }

    pub(crate) async fn send_up(&self, body: Up) {
        let tx = lock(&self.up).clone();
        if let Some(tx) = tx {
            let _ = tx.send(v1::AgentMessage { body: Some(body) }).await;
        }
    }
}

/// A channel to the control plane with HTTP/2 keepalive: TLS pinned to `fingerprint` for
/// `https://` URLs, plain HTTP/2 for `http://` ones.
pub async fn connect(
    url: &str,
    fingerprint: Option<&str>,
) -> Result<tonic::transport::Channel, String> {
    let (tls, authority) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => {
            return Err(format!(
                "control plane URL `{url}`: must start with https:// or http://"
            ));
        }
    };
    let authority = authority.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        return Err(format!(
            "control plane URL `{url}`: must be scheme://host:port"
        ));
    }
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("control plane URL `{url}`: {e}"))?
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        // Image transfers stream to this side: a receive window that grows with the link's
        // bandwidth-delay product, not HTTP/2's fixed 64 KiB (a few hundred KiB/s at 100 ms).
        .http2_adaptive_window(true)
        .tcp_nodelay(true);
    if tls {
        let fingerprint = fingerprint.ok_or_else(|| {
            format!("{url} is TLS: pass the control plane's fingerprint (--fingerprint sha256:...)")
        })?;
        pinned::connect(authority, fingerprint, endpoint).await
    } else {
        endpoint
            .connect()
            .await
            .map_err(|e| format!("connect to {url}: {e}"))
    }
}

pub(crate) fn client(
    channel: tonic::transport::Channel,
) -> clank_proto::AgentControlClient<tonic::transport::Channel> {
    clank_proto::AgentControlClient::new(channel)
        .max_decoding_message_size(clank_proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(clank_proto::MAX_MESSAGE_BYTES)
}

/// Attach the credential and the claimed server to a request.
pub(crate) fn authorize<T>(
    mut req: tonic::Request<T>,
    server_id: &str,
    credential: &str,
) -> Result<tonic::Request<T>, String> {
    let bearer = format!("Bearer {credential}")
        .parse()
        .map_err(|_| "the stored credential is not valid ASCII".to_owned())?;
    let server = server_id
        .parse()
        .map_err(|_| "the stored server id is not valid ASCII".to_owned())?;
    req.metadata_mut()
        .insert(clank_proto::AUTHORIZATION, bearer);
    req.metadata_mut()
        .insert(clank_proto::SERVER_HEADER, server);
    Ok(req)
}

/// Exchange the join token for an identity, unless the state directory holds one.
///
/// The release signing key comes with the identity and only from here: an agent enrolled
/// before releases were signed has none, and learns it only by enrolling again with a fresh
/// one-time join token passed at start (`clank server join-token <name>`). It never takes a
/// key from a session — that would trust whatever first answered as the control plane. A
/// re-enrollment that fails (e.g. the token passed at the first start, long used) keeps the
/// current identity; updates stay refused.
pub async fn enroll_if_needed(
    config: &AgentConfig,
    state: &StateDir,
) -> Result<state::Identity, Stop> {
    let fatal = |e| Stop::Fatal(exit::CONFIG, e);
    if let Some(id) = state.identity().map_err(fatal)? {
        if state.release_key().map_err(fatal)?.is_some() {
            return Ok(id);
        }
        let Some(token) = config.join_token.as_deref() else {
            warn!(
                server = %id.server_id,
                "This agent has no release signing key (enrolled before agent releases were \
                 signed): it will refuse every update until re-enrolled with a fresh join token \
                 (`clank server join-token <name>`, then start it once with --join-token)."
            );
            return Ok(id);
        };
        return match enroll_once(config, token).await {
            Ok(resp) => {
                let new = save_enrollment(state, resp).map_err(fatal)?;
                info!(server = %new.server_id, "Re-enrolled; learned the release signing key.");
                Ok(new)
            }
            Err(e) => {
                warn!(
                    server = %id.server_id,
                    error = %e.trim_start_matches("fatal: "),
                    "Re-enrollment to learn the release signing key failed; keeping the current \
                     identity, and updates stay refused."
                );
                Ok(id)
            }
        };
    }
    let token = config.join_token.clone().ok_or_else(|| {
        Stop::Fatal(
            exit::CONFIG,
            "this server is not enrolled: pass a join token (--join-token or CLANK_JOIN_TOKEN)"
                .into(),
        )
    })?;
    let mut backoff = Backoff::new(config.backoff_max);
    loop {
        match enroll_once(config, &token).await {
            Ok(resp) => {
                let id = save_enrollment(state, resp).map_err(fatal)?;
                info!(server = %id.server_id, "Enrolled with the control plane.");
                return Ok(id);
            }
            Err(e) if e.starts_with("fatal: ") => {
                return Err(Stop::Fatal(
                    exit::JOIN_REFUSED,
                    e["fatal: ".len()..].to_owned(),
                ));
            }
            Err(e) => {
                warn!(error = %e, "Enrollment failed; retrying.");
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

/// One `Enroll` call; a refused token is an error starting with `fatal: `.
async fn enroll_once(config: &AgentConfig, token: &str) -> Result<v1::EnrollResponse, String> {
    let channel = connect(&config.control_plane, config.fingerprint.as_deref()).await?;
    client(channel)
        .enroll(v1::EnrollRequest {
            join_token: token.to_owned(),
            hostname: hostname(),
            agent_version: VERSION.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
                format!("fatal: {}", s.message())
            }
            _ => format!("enroll: {}", s.message()),
        })
}

/// Keep what enrollment handed out: the identity, then the release signing key (in that
/// order: a crash between leaves a working identity that refuses updates, never a key beside
/// a credential the control plane no longer accepts).
fn save_enrollment(state: &StateDir, resp: v1::EnrollResponse) -> Result<state::Identity, String> {
    let id = state::Identity {
        server_id: resp.server_id,
        credential: resp.credential,
    };
    state.save_identity(&id)?;
    if resp.release_public_key.len() == 32 {
        state.save_release_key(&resp.release_public_key)?;
    } else {
        warn!(
            bytes = resp.release_public_key.len(),
            "The control plane handed out no Ed25519 release signing key; this agent will refuse \
             every update."
        );
    }
    Ok(id)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// Exponential backoff with full jitter: a random wait in [0, min(cap, base·2ⁿ)].
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    cap: Duration,
}

impl Backoff {
    pub fn new(cap: Duration) -> Self {
        Backoff { attempt: 0, cap }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn next_wait(&mut self) -> Duration {
        let ceiling = Duration::from_millis(250)
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ms))
    }
}

/// Run the agent until `shutdown` is cancelled or something fatal happens.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Stop {
    let state = match StateDir::open(&config.state_dir) {
        Ok(s) => s,
        Err(e) => return Stop::Fatal(exit::CONFIG, e),
    };
    let fingerprint = match (&config.fingerprint, state.fingerprint()) {
        (Some(f), _) => {
            if let Err(e) = pinned::parse_fingerprint(f).and_then(|_| state.save_fingerprint(f)) {
                return Stop::Fatal(exit::CONFIG, e);
            }
            Some(f.clone())
        }
        (None, Ok(stored)) => stored,
        (None, Err(e)) => return Stop::Fatal(exit::CONFIG, e),
    };
    let config = AgentConfig {
        fingerprint,
        ..config
    };
    let identity = tokio::select! {
        r = enroll_if_needed(&config, &state) => match r {
            Ok(id) => id,
            Err(stop) => return stop,
        },
        () = shutdown.cancelled() => return Stop::Shutdown,
    };
    let runtime = match clank_docker::DockerRuntime::connect().await {
        Ok(r) => r.with_scope(identity.server_id.clone()),
        Err(e) => return Stop::Fatal(exit::CONFIG, format!("docker: {e}")),
    };
    let proxy = match config.proxy_listen {
        Some(addr) => {
            let proxy = clank_proxy::ClankProxy::new(clank_proxy::ProxyConfig {
                listen: addr,
                state_file: Some(state.path().join("routes.json")),
                ..clank_proxy::ProxyConfig::default()
            });
            let proxy = match proxy {
                Ok(p) => p,
                Err(e) => return Stop::Fatal(exit::CONFIG, format!("proxy: {e}")),
            };
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => return Stop::Fatal(exit::CONFIG, format!("proxy listen {addr}: {e}")),
            };
            info!(listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Serving the server's proxy.");
            let p = proxy.clone();
            let token = shutdown.clone();
            tokio::spawn(async move { p.serve(listener, token).await });
            Arc::new(proxy) as Arc<dyn clank_core::proxy::Proxy>
        }
        None => Arc::new(clank_engine::RouteTable::new(Duration::from_secs(2))),
    };
    let binary_sha256 = update::own_sha256().unwrap_or_default();
    let release_key = match state.release_key() {
        Ok(k) => k,
        Err(e) => return Stop::Fatal(exit::CONFIG, e),
    };
    let shared = Arc::new(Shared {
        state: state.clone(),
        server_id: identity.server_id.clone(),
        credential: identity.credential.clone(),
        docker: Some(runtime.client().clone()),
        runtime: Arc::new(runtime),
        proxy,
        lease: StdMutex::new(None),
        up: StdMutex::new(None),
        desired: watch::Sender::new(None),
        applied_generation: std::sync::atomic::AtomicU64::new(0),
        binary_sha256,
        calls: calls::Calls::default(),
        terminals: terminal::Terminals::default(),
        stop: shutdown.clone(),
        restart: StdMutex::new(None),
        refused_updates: StdMutex::new(std::collections::HashSet::new()),
        release_key,
        config,
    });
    if let Ok(Some(version)) = state.pending_update() {
        update::watch_rollback(shared.clone(), version);
    }
    tokio::spawn(reconcile::run(shared.clone()));
    let mut backoff = Backoff::new(shared.config.backoff_max);
    loop {
        let outcome = tokio::select! {
            r = session(&shared) => r,
            () = shutdown.cancelled() => Ok(()),
        };
        // A terminal belongs to its session (the control plane's side is gone with it): its
        // command ends now, not whenever its output next blocks.
        shared.terminals.end_all();
        if let Some(path) = lock(&shared.restart).take() {
            return Stop::Restart(path);
        }
        if shutdown.is_cancelled() {
            return Stop::Shutdown;
        }
        *lock(&shared.up) = None;
        match outcome {
            Ok(()) => backoff.reset(),
            Err(SessionError::Fatal(code, message)) => return Stop::Fatal(code, message),
            Err(SessionError::Retry(e)) => warn!(error = %e, "Session ended; reconnecting."),
        }
        let wait = backoff.next_wait();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return Stop::Shutdown,
        }
    }
}

#[derive(Debug)]
enum SessionError {
    Retry(String),
    Fatal(i32, String),
}

/// One session: Hello, then serve the control plane until the stream ends.
async fn session(shared: &Arc<Shared>) -> Result<(), SessionError> {
    let channel = shared.channel().await.map_err(SessionError::Retry)?;
    let (tx, rx) = mpsc::channel::<v1::AgentMessage>(256);
    let hello = v1::Hello {
        agent_version: VERSION.to_owned(),
        binary_sha256: shared.binary_sha256.clone(),
        last_epoch: shared.state.epoch().unwrap_or(0),
        applied_generation: shared
            .applied_generation
            .load(std::sync::atomic::Ordering::Relaxed),
        probe: false,
        features: FEATURES.iter().map(|f| (*f).to_owned()).collect(),
    };
    tx.send(v1::AgentMessage {
        body: Some(Up::Hello(hello)),
    })
    .await
    .map_err(|_| SessionError::Retry("session closed".into()))?;
    let req = authorize(
        tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
        &shared.server_id,
        &shared.credential,
    )
    .map_err(|e| SessionError::Fatal(exit::CONFIG, e))?;
    let mut down = match client(channel).session(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Err(status_error(s)),
    };
    *lock(&shared.up) = Some(tx.clone());
    let mut heartbeat = tokio::time::interval(shared.config.heartbeat_interval);
    let mut sampler = usage::Sampler::default();
    loop {
        tokio::select! {
            msg = down.message() => match msg {
                Ok(Some(m)) => handle(shared, m).await.map_err(SessionError::Retry)?,
                Ok(None) => return Err(SessionError::Retry("the control plane closed the session".into())),
                Err(s) => return Err(status_error(s)),
            },
            _ = heartbeat.tick() => {
                let h = sampler.sample(shared.state.path());
                if tx.send(v1::AgentMessage { body: Some(Up::Heartbeat(h)) }).await.is_err() {
                    return Err(SessionError::Retry("session closed".into()));
                }
            }
            () = shared.stop.cancelled() => return Ok(()),
        }
        if lock(&shared.restart).is_some() {
            return Ok(());
        }
    }
}

fn status_error(s: tonic::Status) -> SessionError {
    match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => SessionError::Fatal(
            exit::CREDENTIAL_REFUSED,
            format!("the control plane refused this agent: {}", s.message()),
        ),
        _ => SessionError::Retry(format!("{}: {}", s.code(), s.message())),
    }
}

/// One message from the control plane.
async fn handle(shared: &Arc<Shared>, msg: v1::ControlMessage) -> Result<(), String> {
    match msg.body {
        Some(Down::Lease(l)) => {
            let seen = shared.state.epoch()?;
            if l.epoch < seen {
                return Err(format!(
                    "stale lease: epoch {} is older than {seen}, which this server already saw",
                    l.epoch
                ));
            }
            if l.epoch > seen {
                shared.state.save_epoch(l.epoch)?;
            }
            *lock(&shared.lease) = Some(Lease {
                epoch: l.epoch,
                valid_until: tokio::time::Instant::now() + Duration::from_millis(l.ttl_ms.into()),
            });
            update::confirm(shared);
        }
        Some(Down::Desired(d)) => {
            let current = shared.valid_lease();
            if current != Some(d.epoch) {
                warn!(epoch = d.epoch, lease = ?current, "Ignoring a desired state outside the current lease (fenced).");
                return Ok(());
            }
            shared.desired.send_replace(Some(d));
        }
        Some(Down::Call(c)) => calls::dispatch(shared.clone(), c),
        Some(Down::Update(offer)) => update::start(shared.clone(), offer),
        Some(Down::TerminalInput(t)) => shared.terminals.input(t),
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_up_to_the_cap() {
        let cap = Duration::from_secs(30);
        let mut b = Backoff::new(cap);
        let waits: Vec<Duration> = (0..40).map(|_| b.next_wait()).collect();
        assert!(waits[0] <= Duration::from_millis(250));
        assert!(waits[1] <= Duration::from_millis(500));
        assert!(waits.iter().all(|w| *w <= cap), "never beyond the cap");
        // Jitter: the late waits (ceiling = cap) are not all equal.
        let late: std::collections::HashSet<_> = waits[20..].iter().collect();
        assert!(
            late.len() > 5,
            "waits are spread, so agents do not reconnect in lockstep"
        );
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(250));
    }
}
