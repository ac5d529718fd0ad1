//! The Clank control plane: the REST API over [`clank_platform::Platform`], bearer-token auth
//! with the role table on every endpoint, live event streams (SSE), the deploy engine running
//! beside it, and the embedded proxy serving the services' domains (`proxy`). `main.rs` is a
//! thin wrapper over [`run`], so integration tests run the real daemon in-process on a
//! loopback port.

pub mod api;
mod proxy;

pub use proxy::{DEFAULT_PROXY_LISTEN, ProxyListeners, ROUTES_FILE, default_proxy_config};

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use clank_proxy::ProxyConfig;
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
    /// The embedded proxy serving the services' domains, default on 127.0.0.1:8080
    /// (`CLANK_PROXY_LISTEN`: an address, or `off`; `CLANK_PROXY_TLS_LISTEN`;
    /// `CLANK_PROXY_ACME_*` as for the `clank-proxy` binary). `null` turns it off: routes are
    /// then kept in memory and nothing serves them. The route table is persisted to
    /// `state_file`, by default `proxy-routes.json` in the data directory.
    pub proxy: Option<ProxyConfig>,
    /// Where remote servers' agents connect (gRPC, `CLANK_AGENT_LISTEN`: an address, or
    /// `off`). Off by default: remote servers are opt-in.
    pub agent_listen: Option<SocketAddr>,
    /// Serve the agent endpoint over TLS with a self-signed certificate kept in the data
    /// directory, pinned by agents through its fingerprint (`CLANK_AGENT_TLS=off`: plain
    /// HTTP/2, for an endpoint behind something else that secures it).
    pub agent_tls: bool,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("clank-data"),
            runtime: "auto".to_owned(),
            proxy: Some(default_proxy_config()),
            agent_listen: None,
            agent_tls: true,
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
        config.apply_proxy_env(|name| std::env::var(name).ok())?;
        config.runtime_choice()?;
        Ok(config)
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

/// Bind `config.listen` (and the proxy's listeners) and serve until `shutdown` completes.
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
/// at the next start). The proxy's listeners are bound from `config.proxy`.
pub async fn serve(
    config: DaemonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    serve_with_proxy(config, listener, ProxyListeners::default(), shutdown).await
}

/// Like [`serve`], with the proxy's listeners (or some of them) bound by the caller. The
/// proxy stops last, so services stay reachable until the API and engine have stopped.
pub async fn serve_with_proxy(
    config: DaemonConfig,
    listener: TcpListener,
    proxy_listeners: ProxyListeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let mut options = EmbeddedOptions::new(&config.data_dir);
    options.runtime = config.runtime_choice()?;
    let proxy = proxy::EmbeddedProxy::start(&config, proxy_listeners).await?;
    options.proxy = proxy.as_ref().map(proxy::EmbeddedProxy::as_proxy);
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
    let platform = match Platform::open(options).await {
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
    let agents = match (platform.fleet(), agent_listener) {
        (Some(fleet), Some(listener)) => {
            let service = fleet.service();
            let fleet = fleet.clone();
            let mut agents_stop = stop_rx.clone();
            info!(addr = %listener.local_addr().map_err(DaemonError::Serve)?, "Listening for agents.");
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = agents_stop.wait_for(|s| *s).await;
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
    let mut api_stop = stop_rx;
    let served = axum::serve(listener, api::router(platform))
        .with_graceful_shutdown(async move {
            let _ = api_stop.wait_for(|s| *s).await;
        })
        .await;
    let _ = engine.await;
    if let Some(mut agents) = agents {
        // Agents get a few seconds to hang up; whatever is left is cut.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut agents)
            .await
            .is_err()
        {
            agents.abort();
        }
    }
    if let Some(p) = proxy {
        p.stop().await;
    }
    info!("Clank daemon stopped.");
    served.map_err(DaemonError::Serve)
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
}
