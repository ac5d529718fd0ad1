//! The Clank control plane: the REST API over [`clank_platform::Platform`], bearer-token auth
//! with the role table on every endpoint, live event streams (SSE), the deploy engine running
//! beside it, and the embedded proxy serving the services' domains (`proxy`). `main.rs` is a
//! thin wrapper over [`run`], so integration tests run the real daemon in-process on a
//! loopback port.

pub mod api;
mod builder;
mod connections;
pub mod memory;
mod proxy;
mod ui;

pub use builder::{BuilderConfig, RepositoryRules};

pub use proxy::{
    DEFAULT_PROXY_LISTEN, PID_FILE, PROXY_DIR, ProxyListeners, ProxyMode, ROUTES_FILE,
    default_proxy_config,
};

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice, StoreChoice};
use clank_proxy::ProxyConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The daemon's log filter: the user's directives (`CLANK_LOG`, e.g. `debug`), with the Docker
/// client clamped to `info` whatever they ask — at `debug` bollard logs whole container
/// inspections, environment (decrypted secrets) included.
pub fn log_filter(user: &str) -> tracing_subscriber::EnvFilter {
    let user = if user.trim().is_empty() { "info" } else { user };
    tracing_subscriber::EnvFilter::new(format!("{user},bollard=info"))
}

/// What the daemon runs and where: one part of [`Settings`], the keys of the config file that
/// are not the API server's limits ([`ApiLimits`]).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where the API listens (`CLANK_LISTEN`).
    pub listen: SocketAddr,
    /// The data directory: store, keyring, native workloads (`CLANK_DATA`).
    pub data_dir: PathBuf,
    /// `auto`, `docker` or `process` (`CLANK_RUNTIME`).
    pub runtime: String,
    /// Where records are kept in the data directory: `redb` (default, `clank.redb`) or
    /// `sled` (`clank.sled`, only in builds with the cargo feature `sled`) (`CLANK_STORE`).
    /// Another `Store` is used by embedding the platform with `Platform::builder`.
    pub store: String,
    /// The embedded proxy serving the services' domains, default on 127.0.0.1:8080
    /// (`CLANK_PROXY_LISTEN`: an address, or `off`; `CLANK_PROXY_TLS_LISTEN`;
    /// `CLANK_PROXY_ACME_*` as for the `clank-proxy` binary). `null` turns it off: routes are
    /// then kept in memory and nothing serves them. The route table is persisted to
    /// `state_file`, by default `proxy-routes.json` in the data directory.
    pub proxy: Option<ProxyConfig>,
    /// `process` (default): the proxy runs as its own process, supervised, adopted across
    /// daemon restarts, so restarting or upgrading the daemon drops no request; `embedded`:
    /// inside the daemon (`CLANK_PROXY_MODE`).
    pub proxy_mode: ProxyMode,
    /// Where remote servers' agents connect (gRPC, `CLANK_AGENT_LISTEN`: an address, or
    /// `off`). Off by default: remote servers are opt-in.
    pub agent_listen: Option<SocketAddr>,
    /// Serve the agent endpoint over TLS with a self-signed certificate kept in the data
    /// directory, pinned by agents through its fingerprint (`CLANK_AGENT_TLS=off`: plain
    /// HTTP/2, for an endpoint behind something else that secures it).
    pub agent_tls: bool,
    /// Let git services build from `file://` repositories and from hosts that are this
    /// machine or its private network (`CLANK_ALLOW_LOCAL_REPOSITORIES=1`). Off by default: a
    /// tenant must not make the build server read its disk or probe the LAN.
    #[serde(default)]
    pub allow_local_repositories: bool,
    /// What every git build on this server uses: base images per framework, a registry
    /// prefix, build args, concurrent builds, allowed repository schemes and hosts
    /// (`CLANK_BUILD_*`; see [`BuilderConfig`]).
    #[serde(default)]
    pub builder: BuilderConfig,
    /// Native runtime: where workloads' working directories and volumes live, outside the
    /// data directory (`CLANK_WORKLOAD_ROOT`; default `<data_dir>-workloads`, beside it).
    #[serde(default)]
    pub workload_root: Option<PathBuf>,
    /// A directory of the operator's templates (`*.toml`), added to the built-ins or
    /// replacing the built-in of the same name (`CLANK_TEMPLATES_DIR`). A broken file stops
    /// the start, naming the file, field and rule.
    #[serde(default)]
    pub templates_dir: Option<PathBuf>,
    /// How long a deleted service, environment or project can be restored before it is
    /// purged (workloads, networks and records removed; volumes kept), in hours
    /// (`CLANK_DELETE_RETENTION_HOURS`, default 168: seven days).
    #[serde(default = "default_delete_retention_hours")]
    pub delete_retention_hours: u64,
}

fn default_delete_retention_hours() -> u64 {
    clank_platform::DEFAULT_DELETE_RETENTION.as_secs() / 3600
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("clank-data"),
            runtime: "auto".to_owned(),
            store: "redb".to_owned(),
            proxy: Some(default_proxy_config()),
            proxy_mode: ProxyMode::Process,
            agent_listen: None,
            agent_tls: true,
            allow_local_repositories: false,
            builder: BuilderConfig::default(),
            workload_root: None,
            templates_dir: None,
            delete_retention_hours: default_delete_retention_hours(),
        }
    }
}

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    #[error("config: {0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Platform(#[from] clank_core::Error),
    #[error("the embedded proxy: {0}")]
    Proxy(#[from] clank_proxy::ProxyError),
    #[error("serving the API: {0}")]
    Serve(std::io::Error),
}

/// The API server's limits: connections, their deadlines, open event streams, and how long a
/// shutdown may take. Flat keys of the config file (`api_max_connections`, ...) and
/// `CLANK_API_*` / `CLANK_SHUTDOWN_TIMEOUT_MS`; every value must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiLimits {
    /// Connections served at once (`api_max_connections`, `CLANK_API_MAX_CONNECTIONS`,
    /// default 1024). Connections beyond it are not accepted: they wait in the kernel's
    /// accept backlog until one closes.
    #[serde(rename = "api_max_connections")]
    pub max_connections: usize,
    /// A connection that has not sent a complete request head this long after connecting, or
    /// after the first byte of its next request, is closed, and so is one whose request body
    /// stops arriving for this long (`api_header_timeout_ms`, `CLANK_API_HEADER_TIMEOUT_MS`,
    /// default 10 000).
    #[serde(rename = "api_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this long
    /// (`api_idle_timeout_ms`, `CLANK_API_IDLE_TIMEOUT_MS`, default 60 000).
    #[serde(rename = "api_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Open event and log-follow streams per token; one more is answered 429
    /// (`api_max_streams_per_token`, `CLANK_API_MAX_STREAMS_PER_TOKEN`, default 8).
    #[serde(rename = "api_max_streams_per_token")]
    pub max_streams_per_token: usize,
    /// Open event and log-follow streams per workspace, all tokens together
    /// (`api_max_streams_per_workspace`, `CLANK_API_MAX_STREAMS_PER_WORKSPACE`, default 64).
    #[serde(rename = "api_max_streams_per_workspace")]
    pub max_streams_per_workspace: usize,
    /// After a shutdown signal, how long open requests and streams, the engine, the agent
    /// endpoint and the proxy get before what is left is dropped and the daemon exits
    /// (`shutdown_timeout_ms`, `CLANK_SHUTDOWN_TIMEOUT_MS`, default 10 000).
    pub shutdown_timeout_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_connections: 1024,
            header_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_streams_per_token: 8,
            max_streams_per_workspace: 64,
            shutdown_timeout_ms: 10_000,
        }
    }
}

/// A connection cap far beyond any file-descriptor limit, and within the semaphore's range.
const MAX_CONNECTIONS_LIMIT: usize = 1 << 24;

impl ApiLimits {
    /// `CLANK_API_*` and `CLANK_SHUTDOWN_TIMEOUT_MS` over the file's values. Errors name the
    /// variable.
    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), DaemonError> {
        fn number<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            slot: &mut T,
        ) -> Result<(), DaemonError>
        where
            T::Err: std::fmt::Display,
        {
            if let Some(v) = var(name) {
                *slot = v
                    .trim()
                    .parse()
                    .map_err(|e| DaemonError::Config(format!("{name} `{v}`: {e}")))?;
            }
            Ok(())
        }
        number(&var, "CLANK_API_MAX_CONNECTIONS", &mut self.max_connections)?;
        number(
            &var,
            "CLANK_API_HEADER_TIMEOUT_MS",
            &mut self.header_timeout_ms,
        )?;
        number(&var, "CLANK_API_IDLE_TIMEOUT_MS", &mut self.idle_timeout_ms)?;
        number(
            &var,
            "CLANK_API_MAX_STREAMS_PER_TOKEN",
            &mut self.max_streams_per_token,
        )?;
        number(
            &var,
            "CLANK_API_MAX_STREAMS_PER_WORKSPACE",
            &mut self.max_streams_per_workspace,
        )?;
        number(
            &var,
            "CLANK_SHUTDOWN_TIMEOUT_MS",
            &mut self.shutdown_timeout_ms,
        )
    }

    /// Every limit at least 1 (a zero would refuse everything or close at once).
    pub fn validate(&self) -> Result<(), DaemonError> {
        let values: [(&str, u64); 6] = [
            ("api_max_connections", self.max_connections as u64),
            ("api_header_timeout_ms", self.header_timeout_ms),
            ("api_idle_timeout_ms", self.idle_timeout_ms),
            (
                "api_max_streams_per_token",
                self.max_streams_per_token as u64,
            ),
            (
                "api_max_streams_per_workspace",
                self.max_streams_per_workspace as u64,
            ),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ];
        if let Some((name, _)) = values.iter().find(|(_, v)| *v == 0) {
            return Err(DaemonError::Config(format!("{name} must be at least 1")));
        }
        if self.max_connections > MAX_CONNECTIONS_LIMIT {
            return Err(DaemonError::Config(format!(
                "api_max_connections must be at most {MAX_CONNECTIONS_LIMIT}"
            )));
        }
        Ok(())
    }
}

/// Everything the daemon needs to start: what it runs ([`DaemonConfig`]) and the API server's
/// limits ([`ApiLimits`]). Built from one flat JSON file, then the environment. A
/// `DaemonConfig` alone converts into settings with the default limits.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub daemon: DaemonConfig,
    pub limits: ApiLimits,
}

impl From<DaemonConfig> for Settings {
    fn from(daemon: DaemonConfig) -> Self {
        Settings {
            daemon,
            limits: ApiLimits::default(),
        }
    }
}

impl Settings {
    /// Read a JSON config file (optional) and let `CLANK_*` environment variables override it.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, DaemonError> {
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| DaemonError::Config(format!("read `{}`: {e}", path.display())))?;
                Settings::parse(&text)
                    .map_err(|e| DaemonError::Config(format!("`{}`: {e}", path.display())))?
            }
            None => Settings::default(),
        };
        settings.daemon.apply_env()?;
        settings.limits.apply_env(|name| std::env::var(name).ok())?;
        settings.limits.validate()?;
        Ok(settings)
    }

    /// The config file's JSON: one object whose API-limit keys go to [`ApiLimits`] and the
    /// rest to [`DaemonConfig`]; an unknown key is refused by name.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        let mut daemon: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json)?;
        let limit_keys = match serde_json::to_value(ApiLimits::default())? {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let mut limits = serde_json::Map::new();
        for key in limit_keys.keys() {
            if let Some(v) = daemon.remove(key) {
                limits.insert(key.clone(), v);
            }
        }
        Ok(Settings {
            daemon: serde_json::from_value(serde_json::Value::Object(daemon))?,
            limits: serde_json::from_value(serde_json::Value::Object(limits))?,
        })
    }
}

impl DaemonConfig {
    /// `CLANK_LISTEN`, `CLANK_DATA`, `CLANK_RUNTIME`, `CLANK_STORE`, `CLANK_AGENT_*` and `CLANK_PROXY_*` over
    /// the file's values.
    fn apply_env(&mut self) -> Result<(), DaemonError> {
        let config = self;
        if let Ok(v) = std::env::var("CLANK_LISTEN") {
            config.listen = v
                .parse()
                .map_err(|e| DaemonError::Config(format!("CLANK_LISTEN `{v}`: {e}")))?;
        }
        if let Ok(v) = std::env::var("CLANK_DATA") {
            config.data_dir = PathBuf::from(v);
        }
        if let Ok(v) = std::env::var("CLANK_RUNTIME") {
            config.runtime = v;
        }
        if let Ok(v) = std::env::var("CLANK_STORE") {
            config.store = v;
        }
        if let Ok(v) = std::env::var("CLANK_WORKLOAD_ROOT") {
            config.workload_root = Some(PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("CLANK_TEMPLATES_DIR") {
            config.templates_dir = (!v.trim().is_empty()).then(|| PathBuf::from(v));
        }
        if let Ok(v) = std::env::var("CLANK_DELETE_RETENTION_HOURS") {
            config.delete_retention_hours = v.trim().parse().map_err(|e| {
                DaemonError::Config(format!("CLANK_DELETE_RETENTION_HOURS `{v}`: {e}"))
            })?;
        }
        if let Ok(v) = std::env::var("CLANK_AGENT_LISTEN") {
            config.agent_listen = if v.trim().eq_ignore_ascii_case("off") {
                None
            } else {
                Some(v.trim().parse().map_err(|e| {
                    DaemonError::Config(format!("CLANK_AGENT_LISTEN `{v}`: {e} (or `off`)"))
                })?)
            };
        }
        if let Ok(v) = std::env::var("CLANK_AGENT_TLS") {
            config.agent_tls = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(DaemonError::Config(format!(
                        "CLANK_AGENT_TLS `{v}`: must be on or off"
                    )));
                }
            };
        }
        if let Ok(v) = std::env::var("CLANK_PROXY_MODE") {
            config.proxy_mode = match v.trim().to_ascii_lowercase().as_str() {
                "process" => ProxyMode::Process,
                "embedded" => ProxyMode::Embedded,
                _ => {
                    return Err(DaemonError::Config(format!(
                        "CLANK_PROXY_MODE `{v}`: must be process or embedded"
                    )));
                }
            };
        }
        if let Ok(v) = std::env::var("CLANK_ALLOW_LOCAL_REPOSITORIES") {
            config.allow_local_repositories = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" | "" => false,
                _ => {
                    return Err(DaemonError::Config(format!(
                        "CLANK_ALLOW_LOCAL_REPOSITORIES `{v}`: must be 1 or 0"
                    )));
                }
            };
        }
        config.apply_proxy_env(|name| std::env::var(name).ok())?;
        config
            .builder
            .apply_env(std::env::vars_os().filter_map(|(k, v)| {
                Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
            }))?;
        config.builder.validate()?;
        config.runtime_choice()?;
        config.store_choice()?;
        Ok(())
    }

    /// `CLANK_PROXY_LISTEN` (an address, or `off`), `CLANK_PROXY_TLS_LISTEN` (an address) and
    /// `CLANK_PROXY_ACME_*` over the file's `proxy` section. Errors name the variable.
    fn apply_proxy_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), DaemonError> {
        let addr = |name: &str, v: &str| {
            v.parse::<SocketAddr>()
                .map_err(|e| DaemonError::Config(format!("{name} `{v}`: {e} (or `off`)")))
        };
        if let Some(v) = var("CLANK_PROXY_LISTEN") {
            if v.trim().eq_ignore_ascii_case("off") {
                self.proxy = None;
            } else {
                let a = addr("CLANK_PROXY_LISTEN", v.trim())?;
                self.proxy.get_or_insert_with(default_proxy_config).listen = a;
            }
        }
        if let Some(v) = var("CLANK_PROXY_TLS_LISTEN") {
            let a = addr("CLANK_PROXY_TLS_LISTEN", v.trim())?;
            let Some(p) = self.proxy.as_mut() else {
                return Err(DaemonError::Config(
                    "CLANK_PROXY_TLS_LISTEN is set but the proxy is off".into(),
                ));
            };
            p.tls_listen = Some(a);
        }
        if let Some(p) = self.proxy.take() {
            self.proxy = Some(p.with_acme_env(&var)?);
        }
        Ok(())
    }

    fn store_choice(&self) -> Result<StoreChoice, DaemonError> {
        self.store.parse().map_err(|_| {
            DaemonError::Config(format!("store must be redb or sled, not `{}`", self.store))
        })
    }

    fn runtime_choice(&self) -> Result<RuntimeChoice, DaemonError> {
        match self.runtime.as_str() {
            "auto" => Ok(RuntimeChoice::Auto),
            "docker" => Ok(RuntimeChoice::Docker),
            "process" => Ok(RuntimeChoice::Process),
            other => Err(DaemonError::Config(format!(
                "runtime must be auto, docker or process, not `{other}`"
            ))),
        }
    }
}

/// Bind `listen` (and the proxy's listeners) and serve until `shutdown` completes.
pub async fn run(
    settings: impl Into<Settings>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let settings = settings.into();
    let addr = settings.daemon.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen { addr, source })?;
    serve(settings, listener, shutdown).await
}

/// Serve the API on `listener` and run the engine until `shutdown` completes, then stop
/// accepting, end the event streams, let in-flight requests finish and stop the engine (which
/// resumes where it left off at the next start), all within `shutdown_timeout_ms`: what is
/// still open then is dropped. The proxy's listeners are bound from the config's `proxy`.
pub async fn serve(
    settings: impl Into<Settings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    serve_with_proxy(settings, listener, ProxyListeners::default(), shutdown).await
}

/// Like [`serve`], with the proxy's listeners (or some of them) bound by the caller. The
/// proxy stops last, so services stay reachable until the API and engine have stopped.
pub async fn serve_with_proxy(
    settings: impl Into<Settings>,
    listener: TcpListener,
    proxy_listeners: ProxyListeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let Settings {
        daemon: config,
        limits,
    } = settings.into();
    limits.validate()?;
    let mut options = EmbeddedOptions::new(&config.data_dir);
    options.runtime = config.runtime_choice()?;
    options.store = config.store_choice()?;
    options.workload_root = config.workload_root.clone();
    config.builder.validate()?;
    options.repositories = config
        .builder
        .repository_policy(config.allow_local_repositories);
    options.builder = config.builder.build_settings();
    if let Some(dir) = &config.templates_dir {
        let catalog = clank_templates::Catalog::load(Some(dir))
            .map_err(|e| DaemonError::Config(format!("templates_dir `{}`:\n{e}", dir.display())))?;
        options.templates = Some(std::sync::Arc::new(catalog));
    }
    let proxy = proxy::RunningProxy::start(&config, proxy_listeners).await?;
    options.proxy = proxy.as_ref().map(proxy::RunningProxy::as_proxy);
    let mut agent_tls = None;
    let agent_listener = match config.agent_listen {
        Some(addr) => {
            std::fs::create_dir_all(&config.data_dir).map_err(|e| {
                DaemonError::Config(format!(
                    "data directory `{}`: {e}",
                    config.data_dir.display()
                ))
            })?;
            if config.agent_tls {
                agent_tls = Some(clank_fleet::tls::EndpointTls::load_or_create(
                    &config.data_dir,
                    &["localhost".to_owned()],
                )?);
            }
            options.fleet = Some(clank_fleet::FleetConfig {
                endpoint_fingerprint: agent_tls.as_ref().map(|t| t.fingerprint.clone()),
                ..clank_fleet::FleetConfig::default()
            });
            Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| DaemonError::Listen { addr, source })?,
            )
        }
        None => None,
    };
    let retention =
        std::time::Duration::from_secs(config.delete_retention_hours.saturating_mul(3600));
    let preview_sweep = preview_sweep_interval()?;
    let opened = match Platform::open(options).await {
        Ok(p) => {
            let p = p
                .with_delete_retention(retention)
                .with_preview_sweep(preview_sweep);
            api::pin_operator(&p).await.map(|()| p)
        }
        Err(e) => Err(e),
    };
    let platform = match opened {
        Ok(p) => Arc::new(p),
        Err(e) => {
            if let Some(p) = proxy {
                p.stop().await;
            }
            return Err(e.into());
        }
    };
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    info!(%addr, data = %config.data_dir.display(), "Clank daemon listening.");

    // Cancelled when shutdown begins: the engine, the agent endpoint, the API's accept loop
    // and every open event stream watch it.
    let stop = CancellationToken::new();
    let engine_platform = platform.clone();
    let engine_stop = stop.clone();
    let mut engine = tokio::spawn(async move {
        if let Err(e) = engine_platform.run(engine_stop.cancelled_owned()).await {
            warn!(error = %e, "The deploy engine stopped with an error.");
        }
    });
    let shutdown_begins = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        shutdown_begins.cancel();
    });
    let agents = match (platform.fleet(), agent_listener) {
        (Some(fleet), Some(listener)) => {
            let service = fleet.service();
            let fleet = fleet.clone();
            let agents_stop = stop.clone();
            info!(addr = %listener.local_addr().map_err(DaemonError::Serve)?, "Listening for agents.");
            Some(tokio::spawn(async move {
                let stopped = async move {
                    agents_stop.cancelled().await;
                    // Sessions end first, so the endpoint's connections can close.
                    fleet.close().await;
                };
                if let Err(e) = service.serve(listener, agent_tls.as_ref(), stopped).await {
                    warn!(error = %e, "The agent endpoint stopped with an error.");
                }
            }))
        }
        _ => None,
    };
    let state = api::AppState::new(platform, &limits, stop.clone());
    // Returns once the API's connections are closed, at the latest at the deadline.
    // The dashboard (`/ui`) shares the listener: it is one more client of the same state.
    let router = api::router(state.clone()).merge(ui::router(state));
    let deadline = connections::serve(listener, router, limits, stop).await;
    // What is left of the budget goes to the engine, the agents and the proxy, in that order;
    // whatever has not stopped by the deadline is cut (every engine step is idempotent).
    if tokio::time::timeout_at(deadline, &mut engine)
        .await
        .is_err()
    {
        warn!("Shutdown timeout reached: the deploy engine is stopped mid-pass.");
        engine.abort();
    }
    if let Some(mut agents) = agents {
        if tokio::time::timeout_at(deadline, &mut agents)
            .await
            .is_err()
        {
            warn!("Shutdown timeout reached: agent sessions are cut.");
            agents.abort();
        }
    }
    if let Some(p) = proxy {
        if tokio::time::timeout_at(deadline, p.stop()).await.is_err() {
            warn!("Shutdown timeout reached: the proxy's open connections are dropped.");
        }
    }
    info!("Clank daemon stopped.");
    Ok(())
}

/// How often expired preview environments are torn down: `CLANK_PREVIEW_SWEEP_S` seconds
/// (default 60).
fn preview_sweep_interval() -> Result<std::time::Duration, DaemonError> {
    match std::env::var("CLANK_PREVIEW_SWEEP_S") {
        Err(_) => Ok(clank_platform::DEFAULT_PREVIEW_SWEEP),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.1 && *s <= 86_400.0)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                DaemonError::Config(format!(
                    "CLANK_PREVIEW_SWEEP_S `{v}`: must be seconds between 0.1 and 86400"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn proxy_is_on_by_default_on_an_unprivileged_loopback_port() {
        let c = DaemonConfig::default();
        let p = c.proxy.unwrap();
        assert_eq!(p.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(p.tls_listen, None);
    }

    #[test]
    fn proxy_env_sets_addresses_turns_it_off_and_names_the_bad_variable() {
        let mut c = DaemonConfig::default();
        c.apply_proxy_env(env(&[
            ("CLANK_PROXY_LISTEN", "0.0.0.0:8000"),
            ("CLANK_PROXY_TLS_LISTEN", "0.0.0.0:8443"),
        ]))
        .unwrap();
        let p = c.proxy.clone().unwrap();
        assert_eq!(p.listen, "0.0.0.0:8000".parse().unwrap());
        assert_eq!(p.tls_listen, Some("0.0.0.0:8443".parse().unwrap()));

        c.apply_proxy_env(env(&[("CLANK_PROXY_LISTEN", "off")]))
            .unwrap();
        assert!(c.proxy.is_none());
        let err = c
            .apply_proxy_env(env(&[("CLANK_PROXY_TLS_LISTEN", "127.0.0.1:8443")]))
            .unwrap_err();
        assert!(err.to_string().contains("proxy is off"), "{err}");

        let err = DaemonConfig::default()
            .apply_proxy_env(env(&[("CLANK_PROXY_LISTEN", "localhost")]))
            .unwrap_err();
        assert!(err.to_string().contains("CLANK_PROXY_LISTEN"), "{err}");
    }

    /// The README's environment-only ACME setup reaches the proxy's config (which the proxy
    /// process is started with), the check interval included.
    #[test]
    fn proxy_env_carries_every_acme_variable_into_the_proxy_config() {
        let mut c = DaemonConfig::default();
        c.apply_proxy_env(env(&[
            ("CLANK_PROXY_ACME_DIRECTORY_URL", "https://ca.example/dir"),
            ("CLANK_PROXY_ACME_STATE_DIR", "/var/lib/clank/acme"),
            ("CLANK_PROXY_ACME_CONTACT", "mailto:ops@example.com"),
            ("CLANK_PROXY_ACME_SERVER_ROOT", "/etc/ca.pem"),
            ("CLANK_PROXY_ACME_CHALLENGE", "tls-alpn-01"),
            ("CLANK_PROXY_ACME_CHECK_INTERVAL_MS", "5000"),
        ]))
        .unwrap();
        let acme = c.proxy.unwrap().acme.unwrap();
        assert_eq!(acme.directory_url, "https://ca.example/dir");
        assert_eq!(acme.state_dir, PathBuf::from("/var/lib/clank/acme"));
        assert_eq!(acme.contact, ["mailto:ops@example.com"]);
        assert_eq!(acme.server_root, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(acme.challenge, clank_proxy::acme::Challenge::TlsAlpn01);
        assert_eq!(acme.check_interval, std::time::Duration::from_secs(5));

        let err = DaemonConfig::default()
            .apply_proxy_env(env(&[
                ("CLANK_PROXY_ACME_DIRECTORY_URL", "https://ca.example/dir"),
                ("CLANK_PROXY_ACME_STATE_DIR", "/s"),
                ("CLANK_PROXY_ACME_CHECK_INTERVAL_MS", "an hour"),
            ]))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("CLANK_PROXY_ACME_CHECK_INTERVAL_MS"),
            "{err}"
        );
    }

    #[test]
    fn config_file_turns_the_proxy_off_with_null_and_refuses_unknown_proxy_fields() {
        let off: DaemonConfig = serde_json::from_str(r#"{"proxy": null}"#).unwrap();
        assert!(off.proxy.is_none());
        let on: DaemonConfig = serde_json::from_str(r#"{"runtime": "process"}"#).unwrap();
        assert_eq!(on.proxy, Some(default_proxy_config()));
        let custom: DaemonConfig =
            serde_json::from_str(r#"{"proxy": {"listen": "127.0.0.1:9000"}}"#).unwrap();
        assert_eq!(
            custom.proxy.unwrap().listen,
            "127.0.0.1:9000".parse().unwrap()
        );
        let err = serde_json::from_str::<DaemonConfig>(r#"{"proxy": {"listn": "x"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn config_store_defaults_to_redb_and_refuses_unknown_stores_by_name() {
        let d: DaemonConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(d.store_choice().unwrap(), StoreChoice::Redb);
        let s: DaemonConfig = serde_json::from_str(r#"{"store": "sled"}"#).unwrap();
        assert_eq!(s.store_choice().unwrap(), StoreChoice::Sled);
        let err = serde_json::from_str::<DaemonConfig>(r#"{"store": "etcd"}"#)
            .unwrap()
            .store_choice()
            .unwrap_err()
            .to_string();
        assert!(err.contains("store") && err.contains("etcd"), "{err}");
    }

    #[test]
    fn config_file_takes_api_limits_as_flat_keys_and_refuses_unknown_ones_by_name() {
        let s = Settings::parse(
            r#"{"runtime": "process", "api_max_connections": 16, "api_header_timeout_ms": 500,
                "api_idle_timeout_ms": 2000, "api_max_streams_per_token": 2,
                "api_max_streams_per_workspace": 3, "shutdown_timeout_ms": 1500}"#,
        )
        .unwrap();
        assert_eq!(s.daemon.runtime, "process");
        assert_eq!(
            s.limits,
            ApiLimits {
                max_connections: 16,
                header_timeout_ms: 500,
                idle_timeout_ms: 2000,
                max_streams_per_token: 2,
                max_streams_per_workspace: 3,
                shutdown_timeout_ms: 1500,
            }
        );
        let defaults = Settings::parse(r#"{"runtime": "process"}"#).unwrap();
        assert_eq!(defaults.limits, ApiLimits::default());
        for typo in [r#"{"api_max_conections": 1}"#, r#"{"listn": "x"}"#] {
            let err = Settings::parse(typo).unwrap_err().to_string();
            let key = typo.split('"').nth(1).unwrap();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn api_limits_defaults_env_overrides_and_zero_refused_by_name() {
        let d = ApiLimits::default();
        assert_eq!(
            (d.max_connections, d.header_timeout_ms, d.idle_timeout_ms),
            (1024, 10_000, 60_000)
        );
        assert_eq!(
            (
                d.max_streams_per_token,
                d.max_streams_per_workspace,
                d.shutdown_timeout_ms
            ),
            (8, 64, 10_000)
        );
        let mut l = ApiLimits::default();
        l.apply_env(env(&[
            ("CLANK_API_MAX_CONNECTIONS", "4"),
            ("CLANK_API_HEADER_TIMEOUT_MS", "250"),
            ("CLANK_API_IDLE_TIMEOUT_MS", "750"),
            ("CLANK_API_MAX_STREAMS_PER_TOKEN", "1"),
            ("CLANK_API_MAX_STREAMS_PER_WORKSPACE", "2"),
            ("CLANK_SHUTDOWN_TIMEOUT_MS", "3000"),
        ]))
        .unwrap();
        assert_eq!(
            l,
            ApiLimits {
                max_connections: 4,
                header_timeout_ms: 250,
                idle_timeout_ms: 750,
                max_streams_per_token: 1,
                max_streams_per_workspace: 2,
                shutdown_timeout_ms: 3000,
            }
        );
        let err = ApiLimits::default()
            .apply_env(env(&[("CLANK_API_IDLE_TIMEOUT_MS", "soon")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("CLANK_API_IDLE_TIMEOUT_MS"),
            "{err}"
        );
        let zero = ApiLimits {
            max_streams_per_token: 0,
            ..ApiLimits::default()
        };
        let err = zero.validate().unwrap_err();
        assert!(
            err.to_string().contains("api_max_streams_per_token"),
            "{err}"
        );
    }
}
