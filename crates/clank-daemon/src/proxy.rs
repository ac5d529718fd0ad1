//! The embedded proxy: `clank_proxy::ClankProxy` in the daemon's process, so one binary serves
//! the API and the services' traffic. The engine cuts over through it; its route table is
//! persisted in the data directory and restored at start, so routes are served again before
//! the first reconcile pass repairs them.

use std::net::SocketAddr;
use std::sync::Arc;

use clank_core::proxy::Proxy;
use clank_proxy::{AcmeManager, ClankProxy, ProxyConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

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
