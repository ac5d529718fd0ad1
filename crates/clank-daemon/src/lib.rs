//! The Clank control plane: the REST API over [`clank_platform::Platform`], bearer-token auth
//! with the role table on every endpoint, live event streams (SSE), and the deploy engine
//! running beside it. `main.rs` is a thin wrapper over [`run`], so integration tests run the
//! real daemon in-process on a loopback port.

pub mod api;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// The daemon's log filter: the user's directives (`CLANK_LOG`, e.g. `debug`), with the Docker
/// client clamped to `info` whatever they ask — at `debug` bollard logs whole container
/// inspections, environment (decrypted secrets) included.
pub fn log_filter(user: &str) -> tracing_subscriber::EnvFilter {
    let user = if user.trim().is_empty() { "info" } else { user };
    tracing_subscriber::EnvFilter::new(format!("{user},bollard=info"))
}

/// Everything the daemon needs to start. Built from a JSON file, then the environment.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Where the API listens (`CLANK_LISTEN`).
    pub listen: SocketAddr,
    /// The data directory: store, keyring, native workloads (`CLANK_DATA`).
    pub data_dir: PathBuf,
    /// `auto`, `docker` or `process` (`CLANK_RUNTIME`).
    pub runtime: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("clank-data"),
            runtime: "auto".to_owned(),
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
    #[error("serving the API: {0}")]
    Serve(std::io::Error),
}

impl DaemonConfig {
    /// Read a JSON config file (optional) and let `CLANK_*` environment variables override it.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, DaemonError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| DaemonError::Config(format!("read `{}`: {e}", path.display())))?;
                serde_json::from_str(&text)
                    .map_err(|e| DaemonError::Config(format!("`{}`: {e}", path.display())))?
            }
            None => DaemonConfig::default(),
        };
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
        config.runtime_choice()?;
        Ok(config)
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

/// Bind `config.listen` and serve until `shutdown` completes.
pub async fn run(
    config: DaemonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| DaemonError::Listen {
                addr: config.listen,
                source,
            })?;
    serve(config, listener, shutdown).await
}

/// Serve the API on `listener` and run the engine until `shutdown` completes, then stop
/// accepting, finish in-flight requests and stop the engine (which resumes where it left off
/// at the next start).
pub async fn serve(
    config: DaemonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let mut options = EmbeddedOptions::new(&config.data_dir);
    options.runtime = config.runtime_choice()?;
    let platform = Arc::new(Platform::open(options).await?);
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    info!(%addr, data = %config.data_dir.display(), "Clank daemon listening.");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let engine_platform = platform.clone();
    let mut engine_stop = stop_rx.clone();
    let engine = tokio::spawn(async move {
        let stopped = async move {
            let _ = engine_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = engine_platform.run(stopped).await {
            warn!(error = %e, "The deploy engine stopped with an error.");
        }
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut api_stop = stop_rx;
    let served = axum::serve(listener, api::router(platform))
        .with_graceful_shutdown(async move {
            let _ = api_stop.wait_for(|s| *s).await;
        })
        .await;
    let _ = engine.await;
    info!("Clank daemon stopped.");
    served.map_err(DaemonError::Serve)
}
