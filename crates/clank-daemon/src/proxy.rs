//! The embedded proxy: `clank_proxy::ClankProxy` in the daemon's process, so one binary serves
//! the API and the services' traffic. The engine cuts over through it; its route table is
//! persisted in the data directory and restored at start, so routes are served again before
//! the first reconcile pass repairs them.

use std::net::SocketAddr;
use std::sync::Arc;

use clank_core::proxy::Proxy;
use clank_proxy::{AcmeManager, ClankProxy, ProxyConfig};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use tracing::{error, info, warn};

use crate::{DaemonConfig, DaemonError};

/// Where the proxy listens when nothing says otherwise: unprivileged, loopback only.
pub const DEFAULT_PROXY_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The file the route table is persisted to, under the data directory, unless the proxy
/// config names another.
pub const ROUTES_FILE: &str = "proxy-routes.json";

/// The embedded proxy's config when the daemon's config file has none.
pub fn default_proxy_config() -> ProxyConfig {
    ProxyConfig {
        listen: DEFAULT_PROXY_LISTEN,
        ..ProxyConfig::default()
    }
}

/// Listeners bound by the caller (tests bind port 0 and read the address first). What is
/// missing is bound from the config.
#[derive(Debug, Default)]
pub struct ProxyListeners {
    /// The plain-HTTP listener (`proxy.listen`).
    pub http: Option<TcpListener>,
    /// The TLS listener (`proxy.tls_listen`).
    pub tls: Option<TcpListener>,
}

/// A running embedded proxy: the proxy and its listener tasks.
#[derive(Debug)]
pub(crate) struct EmbeddedProxy {
    proxy: ClankProxy,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr).await.map_err(|source| {
        error!(%addr, "The {what} cannot listen: set CLANK_PROXY_LISTEN to another address, or `off`.");
        DaemonError::Listen { addr, source }
    })
}

impl EmbeddedProxy {
    /// Start the proxy the config asks for (`None` when it is off): restore the routes, bind
    /// what `given` lacks, serve until [`EmbeddedProxy::stop`].
    pub(crate) async fn start(
        config: &DaemonConfig,
        given: ProxyListeners,
    ) -> Result<Option<Self>, DaemonError> {
        let Some(mut settings) = config.proxy.clone() else {
            info!("The embedded proxy is off: services are reachable only at their own addresses.");
            return Ok(None);
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            DaemonError::Config(format!(
                "create data directory `{}`: {e}",
                config.data_dir.display()
            ))
        })?;
        settings
            .state_file
            .get_or_insert_with(|| config.data_dir.join(ROUTES_FILE));
        let proxy = ClankProxy::new(settings)?;
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();

        let http = match given.http {
            Some(l) => l,
            None => bind(proxy.config().listen, "proxy").await?,
        };
        let tls = match (given.tls, proxy.config().tls_listen) {
            (Some(l), _) => Some(l),
            (None, Some(addr)) => Some(bind(addr, "proxy's TLS listener").await?),
            (None, None) => None,
        };
        let lan = match proxy.config().lan_listen {
            Some(addr) => Some(bind(addr, "proxy's LAN listener").await?),
            None => None,
        };
        let admin = match proxy.config().admin_listen {
            Some(addr) => Some(bind(addr, "proxy's admin listener").await?),
            None => None,
        };

        let addr = http.local_addr().map_err(DaemonError::Serve)?;
        info!(%addr, routes = proxy.routes().len(), "Proxy listening: services' domains are served here.");
        let (p, s) = (proxy.clone(), stop.clone());
        tasks.push(tokio::spawn(async move { p.serve(http, s).await }));
        if let Some(l) = tls {
            let addr = l.local_addr().map_err(DaemonError::Serve)?;
            info!(%addr, "Proxy TLS listening.");
            let (p, s) = (proxy.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = p.serve_tls(l, s).await {
                    error!(error = %e, "The proxy's TLS listener failed.");
                }
            }));
        }
        if let Some(l) = lan {
            let (p, s) = (proxy.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { p.serve_lan(l, s).await }));
        }
        if let Some(l) = admin {
            let (p, s) = (proxy.clone(), stop.clone());
            tasks.push(tokio::spawn(async move { p.serve_admin(l, s).await }));
        }
        // After every listener is bound, so the CA's validation finds them answering.
        if let Some(acme) = &proxy.config().acme {
            let manager = AcmeManager::new(proxy.clone(), acme.to_acme_config())
                .map_err(clank_proxy::ProxyError::from)?;
            info!(directory = %acme.directory_url, "ACME on: routed public_direct names are certified automatically.");
            let s = stop.clone();
            tasks.push(tokio::spawn(async move { manager.run(s).await }));
        }
        Ok(Some(EmbeddedProxy { proxy, stop, tasks }))
    }

    /// The proxy as the engine drives it.
    pub(crate) fn as_proxy(&self) -> Arc<dyn Proxy> {
        Arc::new(self.proxy.clone())
    }

    /// Stop accepting, let open requests finish, and wait for the listeners.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// How the daemon runs its proxy (`proxy_mode`, `CLANK_PROXY_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Its own process (the daemon's executable as `clank-daemon proxy`, or
    /// `CLANK_PROXY_BIN`), started if absent and adopted if already running, driven through
    /// an owner-only control socket in the data directory. Killing, restarting or upgrading
    /// the daemon drops no request: the proxy keeps serving the routes it has.
    #[default]
    Process,
    /// Inside the daemon's process (single-process use; traffic stops with the daemon).
    Embedded,
}

/// The proxy process's files, under `<data>/proxy/` (owner-only).
pub const PROXY_DIR: &str = "proxy";
const SOCKET: &str = "control.sock";
const CONFIG: &str = "config.json";
const LOG: &str = "proxy.log";
/// The pid of the proxy process this daemon (or an earlier one) started.
pub const PID_FILE: &str = "proxy.pid";

/// How often the supervisor checks that the proxy answers, and how many misses in a row
/// make it start a new one.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const MISSES_BEFORE_RESTART: u32 = 3;
/// How long a freshly started proxy may take to answer on its socket.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The proxy as its own process, and the task keeping it up.
#[derive(Debug)]
pub(crate) struct ProxyProcess {
    socket: clank_proxy::ControlSocket,
    stop: CancellationToken,
    supervisor: JoinHandle<()>,
}

impl ProxyProcess {
    /// Adopt the proxy answering on the data directory's control socket, or start one.
    pub(crate) async fn start(config: &DaemonConfig) -> Result<Option<Self>, DaemonError> {
        let Some(mut settings) = config.proxy.clone() else {
            info!("The proxy is off: services are reachable only at their own addresses.");
            return Ok(None);
        };
        let dir = config.data_dir.join(PROXY_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| DaemonError::Config(format!("create `{}`: {e}", dir.display())))?;
        settings
            .state_file
            .get_or_insert_with(|| config.data_dir.join(ROUTES_FILE));
        settings.control_socket = Some(dir.join(SOCKET));
        let wanted =
            serde_json::to_vec_pretty(&settings).map_err(|e| DaemonError::Config(e.to_string()))?;
        let changed = std::fs::read(dir.join(CONFIG)).ok().as_deref() != Some(wanted.as_slice());
        write_private(&dir.join(CONFIG), &wanted)?;
        let socket = clank_proxy::ControlSocket::new(dir.join(SOCKET));
        let running = socket.ping(std::time::Duration::from_secs(2)).await;
        if running && changed {
            // An adopted proxy keeps the settings it started with: a changed listener or
            // certificate source needs a new process (a moment without the proxy).
            warn!("The proxy's settings changed since it started: restarting it.");
            kill_ours(&dir);
            for _ in 0..200 {
                if !socket.ping(std::time::Duration::from_millis(200)).await {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
        if running && !changed {
            info!(socket = %socket.path().display(), pid = ?read_pid(&dir), "Adopted the running proxy: it kept serving while the daemon was down.");
        } else {
            let child = spawn(&dir).await?;
            wait_until_answering(&socket, child, &dir).await?;
        }
        let stop = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(socket.clone(), dir, stop.clone()));
        Ok(Some(ProxyProcess {
            socket,
            stop,
            supervisor,
        }))
    }

    pub(crate) fn as_proxy(&self) -> Arc<dyn Proxy> {
        Arc::new(clank_core::proxy::CalledProxy(self.socket.clone()))
    }

    /// Stop supervising. The proxy process keeps serving: the next daemon adopts it.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.supervisor.await;
        info!("The proxy process keeps serving; the next daemon start adopts it.");
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), DaemonError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    written.map_err(|e| DaemonError::Config(format!("write `{}`: {e}", path.display())))
}

fn read_pid(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Kill the proxy process of the pid file, if it is still ours (its command line names our
/// config file: a pid reused by another program is left alone).
fn kill_ours(dir: &std::path::Path) {
    let Some(pid) = read_pid(dir) else {
        return;
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let config = dir.join(CONFIG);
    if String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy()) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// The program the proxy runs as: `CLANK_PROXY_BIN` (a `clank-proxy` binary), else this
/// executable's `proxy` subcommand.
fn proxy_command(dir: &std::path::Path) -> Result<tokio::process::Command, DaemonError> {
    let config = dir.join(CONFIG);
    let mut cmd = match std::env::var_os("CLANK_PROXY_BIN") {
        Some(bin) => tokio::process::Command::new(bin),
        None => {
            let exe = std::env::current_exe().map_err(|e| {
                DaemonError::Config(format!("cannot find this executable to run the proxy: {e}"))
            })?;
            let mut cmd = tokio::process::Command::new(exe);
            cmd.arg("proxy");
            cmd
        }
    };
    cmd.arg("--config").arg(config);
    Ok(cmd)
}

/// Start the proxy process in a process group of its own (a signal to the daemon's group,
/// like Ctrl-C, does not reach it), its output appended to `proxy.log`.
async fn spawn(dir: &std::path::Path) -> Result<tokio::process::Child, DaemonError> {
    let log_path = dir.join(LOG);
    let log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| DaemonError::Config(format!("open `{}`: {e}", log_path.display())))?;
    let err = log
        .try_clone()
        .map_err(|e| DaemonError::Config(format!("open `{}`: {e}", log_path.display())))?;
    let mut cmd = proxy_command(dir)?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    let child = cmd.spawn().map_err(|e| {
        DaemonError::Config(format!(
            "cannot start the proxy process ({e}); set CLANK_PROXY_BIN to a clank-proxy binary, \
             or proxy_mode `embedded` to serve traffic inside the daemon"
        ))
    })?;
    if let Some(pid) = child.id() {
        write_private(&dir.join(PID_FILE), pid.to_string().as_bytes())?;
        info!(pid, log = %log_path.display(), "Started the proxy process.");
    }
    Ok(child)
}

async fn wait_until_answering(
    socket: &clank_proxy::ControlSocket,
    mut child: tokio::process::Child,
    dir: &std::path::Path,
) -> Result<(), DaemonError> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if socket.ping(std::time::Duration::from_millis(500)).await {
            // Reap it whenever it exits, so it never lingers as a zombie of this daemon.
            tokio::spawn(async move {
                let status = child.wait().await;
                warn!(?status, "The proxy process exited.");
            });
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join(LOG)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(DaemonError::Config(format!(
                "the proxy process exited ({status}) before it answered: {}",
                tail.join(" | ")
            )));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.start_kill();
            return Err(DaemonError::Config(format!(
                "the proxy process did not answer on {} within {START_TIMEOUT:?}; see {}",
                socket.path().display(),
                dir.join(LOG).display()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// Check the proxy every second; after a few misses in a row, start a new one (the old one
/// is gone or hung: a hung one is killed first so its listeners are free).
async fn supervise(
    socket: clank_proxy::ControlSocket,
    dir: std::path::PathBuf,
    stop: CancellationToken,
) {
    let mut misses = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
        if socket.ping(std::time::Duration::from_secs(2)).await {
            misses = 0;
            continue;
        }
        misses += 1;
        if misses < MISSES_BEFORE_RESTART {
            continue;
        }
        warn!(
            misses,
            "The proxy process does not answer; starting a new one."
        );
        kill_ours(&dir);
        match spawn(&dir).await {
            Ok(child) => match wait_until_answering(&socket, child, &dir).await {
                Ok(()) => {
                    info!("The new proxy process answers.");
                    misses = 0;
                }
                Err(e) => error!(error = %e, "The new proxy process failed."),
            },
            Err(e) => error!(error = %e, "Could not start a new proxy process."),
        }
    }
}

/// The daemon's proxy, whichever way it runs.
#[derive(Debug)]
pub(crate) enum RunningProxy {
    Embedded(EmbeddedProxy),
    Process(ProxyProcess),
}

impl RunningProxy {
    /// Start the proxy the config asks for (`None` when it is off). Listeners handed in by
    /// the caller can only be served in this process, so they need `proxy_mode: embedded`.
    pub(crate) async fn start(
        config: &DaemonConfig,
        given: ProxyListeners,
    ) -> Result<Option<Self>, DaemonError> {
        match config.proxy_mode {
            ProxyMode::Embedded => Ok(EmbeddedProxy::start(config, given)
                .await?
                .map(RunningProxy::Embedded)),
            ProxyMode::Process if given.http.is_some() || given.tls.is_some() => {
                Err(DaemonError::Config(
                    "listeners handed to the daemon are served in its own process: set \
                     proxy_mode to `embedded`"
                        .into(),
                ))
            }
            ProxyMode::Process => Ok(ProxyProcess::start(config)
                .await?
                .map(RunningProxy::Process)),
        }
    }

    pub(crate) fn as_proxy(&self) -> Arc<dyn Proxy> {
        match self {
            RunningProxy::Embedded(p) => p.as_proxy(),
            RunningProxy::Process(p) => p.as_proxy(),
        }
    }

    pub(crate) async fn stop(self) {
        match self {
            RunningProxy::Embedded(p) => p.stop().await,
            RunningProxy::Process(p) => p.stop().await,
        }
    }
}
