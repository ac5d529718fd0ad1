//! clank-proxy: Clank's reverse proxy, the `clank_core::proxy::Proxy` the engine drives at
//! cutover.
//!
//! - HTTP/1.x on the proxy's own connection code ([`h1`]: heads parsed in place by `httparse`,
//!   bodies copied by their framing, one task per client connection and its upstream
//!   exchange, upstream keep-alive connections pooled per address), streaming bodies both ways
//!   and upgrade (WebSocket) passthrough; HTTP/2 (TLS + ALPN) on hyper with hyper-util's
//!   pooled client (`h2`). Both share the admission logic (`admission`: `Shared::admit`) and
//!   end upgraded tunnels in `tunnel`; `server` holds the one accept loop every listener uses.
//! - The route table is an immutable snapshot replaced as a whole on every change and read once
//!   per request, so keep-alive clients move to the new target on their next request and the
//!   listening socket never closes on a change.
//! - `cutover` = health gate ([`probe`], the platform's one probe implementation), atomic swap,
//!   drain of the old target (in-flight requests counted per target; at the drain timeout the
//!   rest are answered 504).
//!   Upgraded tunnels are not counted in flight: they get a grace period equal to the drain
//!   timeout after their target is retired, then are closed.
//! - `pause`/`resume` hold a service's new requests (up to `pause_timeout`, then 503) for
//!   stop-first cutovers.
//! - The table is persisted to `state_file` and restored at start, so a standalone proxy keeps
//!   serving while the control plane restarts.
//! - Access log on the `clank_proxy::access` tracing target; Prometheus text from
//!   [`ClankProxy::metrics_text`] or the admin listener's `/metrics`.
//!
//! - TLS with rustls (ring provider): SNI certificate selection from BYO PEM certificates,
//!   HTTP/2 or HTTP/1.1 by ALPN, HTTP→HTTPS redirect (308) for `public_direct` endpoints.
//!
//! - ACME responders: [`ClankProxy::set_acme_challenge`] answers HTTP-01 validation requests
//!   (any host, plain HTTP, exempt from the HTTPS redirect);
//!   [`ClankProxy::set_tls_alpn_challenge`] answers TLS-ALPN-01 handshakes (`acme-tls/1`) on
//!   the TLS listeners with the challenge certificate and closes them.
//!
//! - ACME client ([`acme`]): [`AcmeManager`] orders certificates for routed `public_direct`
//!   names over HTTP-01 or TLS-ALPN-01, persists account and certificates, renews in the last
//!   third of the lifetime and backs off across restarts.
//!
//! - Endpoint modes (planned by `clank_core::endpoint`): `public_direct` on the public
//!   listeners with TLS and the redirect; `lan_only` on the LAN listener (`lan_listen`, plain
//!   HTTP, never redirected, and kept off the public listeners); `tailscale_https` by running
//!   `tailscale serve` ([`TailscaleServe`]) before the swap of each cutover that moves the
//!   service (a failure refuses the cutover and leaves the old route) and `... off` when the
//!   route goes. `byo_proxy` (a published port, stop-first cutovers) and `cloudflare_tunnel`
//!   (a `cloudflared` connector workload of each deployment) are applied by the engine.
//!
//! Not yet here: wildcard certificates (DNS-01).

pub mod acme;
mod admission;
mod cidr;
mod config;
mod control;
mod error;
mod h1;
mod h2;
mod metrics;
mod persist;
pub mod probe;
mod server;
mod table;
mod tailscale;
mod tls;
mod tunnel;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use clank_core::endpoint::TailscaleServePlan;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::Endpoint;
use clank_core::proxy::{Cutover, CutoverReport, Proxy, Route};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use acme::{AcmeConfig, AcmeManager};
pub use cidr::IpNet;
pub use config::{AcmeSettings, ProxyConfig};
pub use control::{ControlSocket, bind_control, serve_control};
pub use error::ProxyError;
pub use tailscale::TailscaleServe;
pub use tls::TlsCertificate;

use admission::Shared;
use table::Table;

/// The reverse proxy. Cheap to clone; clones share the route table and the listeners.
#[derive(Debug, Clone)]
pub struct ClankProxy {
    shared: Arc<Shared>,
    /// Serialises table changes (build, swap, persist) so they land in call order.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Bumped after every table change, so the ACME manager orders a new name's certificate
    /// at once instead of at its next periodic pass.
    route_changes: Arc<watch::Sender<u64>>,
}

impl ClankProxy {
    /// A proxy with the routes restored from `config.state_file` if it exists. Serves nothing
    /// until [`ClankProxy::serve`] (or [`run`]) is given a listener.
    pub fn new(config: ProxyConfig) -> Result<Self, ProxyError> {
        config.validate()?;
        let routes = match &config.state_file {
            Some(path) => persist::load(path)?,
            None => BTreeMap::new(),
        };
        if !routes.is_empty() {
            tracing::info!(routes = routes.len(), "route table restored");
        }
        let table = Table::build(
            routes,
            &Table::default(),
            &config.host_aliases,
            config.fallback_service,
        );
        let certs = Arc::new(tls::CertStore::default());
        for c in &config.tls_certificates {
            certs.insert(&c.domains, tls::load_files(c)?);
        }
        let shared = Shared {
            client: h2::build_client(&config),
            upstreams: Arc::new(h1::Pool::new(
                config.upstream_max_idle,
                config.upstream_idle_timeout,
            )),
            https_port: config.https_port.or(config.tls_listen.map(|a| a.port())),
            certs,
            acme_tokens: RwLock::new(HashMap::new()),
            config,
            table: RwLock::new(Arc::new(table)),
            metrics: Arc::default(),
            pauses: Mutex::new(HashMap::new()),
            paused_count: AtomicUsize::new(0),
        };
        Ok(ClankProxy {
            shared: Arc::new(shared),
            writer: Arc::new(tokio::sync::Mutex::new(())),
            route_changes: Arc::new(watch::Sender::new(0)),
        })
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// Serve proxied traffic on `listener` until `shutdown` is cancelled; open connections
    /// then finish their current request before this returns.
    pub async fn serve(&self, listener: TcpListener, shutdown: CancellationToken) {
        server::serve_proxy(
            self.shared.clone(),
            listener,
            admission::Listener::Plain,
            shutdown,
        )
        .await;
    }

    /// Serve the LAN listener on `listener` until `shutdown`: plain HTTP, `lan_only` routes
    /// only, no redirect. Give it the socket bound to `config.lan_listen`.
    pub async fn serve_lan(&self, listener: TcpListener, shutdown: CancellationToken) {
        server::serve_proxy(
            self.shared.clone(),
            listener,
            admission::Listener::Lan,
            shutdown,
        )
        .await;
    }

    /// Serve TLS on `listener` until `shutdown`: SNI picks the certificate, ALPN the protocol.
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ProxyError> {
        let config = tls::server_config(self.shared.certs.clone())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        server::serve_tls(self.shared.clone(), listener, acceptor, shutdown).await;
        Ok(())
    }

    /// Serve `cert_pem` (chain, leaf first) with `key_pem` for `domains` (exact names or
    /// `*.example.com`), replacing what those names had. Takes effect at the next handshake.
    pub fn add_certificate(
        &self,
        domains: &[String],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), ProxyError> {
        let key = tls::certified_key(cert_pem, key_pem).map_err(ProxyError::Config)?;
        self.shared.certs.insert(domains, key);
        Ok(())
    }

    /// Stop serving a certificate for `domain`; returns whether it had one.
    pub fn remove_certificate(&self, domain: &str) -> bool {
        self.shared.certs.remove(domain)
    }

    /// Answer ACME HTTP-01 validation requests for `token` (`GET
    /// /.well-known/acme-challenge/{token}`, any host, plain HTTP, never redirected) with
    /// `key_authorization`, until removed. What an ACME client calls before `set_ready`.
    pub fn set_acme_challenge(&self, token: &str, key_authorization: &str) {
        let mut tokens = match self.shared.acme_tokens.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        tokens.insert(token.to_owned(), key_authorization.to_owned());
    }

    /// Stop answering `token`; returns whether it was being answered.
    pub fn remove_acme_challenge(&self, token: &str) -> bool {
        let mut tokens = match self.shared.acme_tokens.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        tokens.remove(token).is_some()
    }

    /// Answer TLS-ALPN-01 validation handshakes (ALPN `acme-tls/1`, SNI `domain`) on the TLS
    /// listeners with a challenge certificate for `key_authorization_digest` (SHA-256 of the
    /// key authorization), until removed. Ordinary handshakes are unaffected.
    pub fn set_tls_alpn_challenge(
        &self,
        domain: &str,
        key_authorization_digest: &[u8],
    ) -> Result<(), ProxyError> {
        let key = tls::alpn_challenge_key(domain, key_authorization_digest)
            .map_err(ProxyError::Config)?;
        self.shared.certs.set_alpn_challenge(domain, Some(key));
        Ok(())
    }

    /// Stop answering TLS-ALPN-01 for `domain`; returns whether it was being answered.
    pub fn remove_tls_alpn_challenge(&self, domain: &str) -> bool {
        self.shared.certs.set_alpn_challenge(domain, None)
    }

    /// The names a certificate is served for, sorted.
    pub fn certificate_names(&self) -> Vec<String> {
        self.shared.certs.names()
    }

    /// Serve `/metrics`, `/routes` and `/healthz` on `listener` until `shutdown`.
    pub async fn serve_admin(&self, listener: TcpListener, shutdown: CancellationToken) {
        server::serve_admin(self.shared.clone(), listener, shutdown).await;
    }

    /// Prometheus text exposition of the proxy's counters.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }

    /// Responses sent with a status in `class` (1 = 1xx ... 5 = 5xx).
    pub fn responses(&self, class: usize) -> u64 {
        self.shared.metrics.responses(class)
    }

    /// Every route, by service.
    pub fn routes(&self) -> Vec<Route> {
        self.shared.current().routes().into_values().collect()
    }

    /// A receiver that sees a new value after every change of the route table (however it
    /// was made: the [`Proxy`] calls, [`ClankProxy::apply`], the control socket).
    pub fn route_changes(&self) -> watch::Receiver<u64> {
        self.route_changes.subscribe()
    }

    /// Requests in flight to `deployment`'s target, if it is routed.
    pub fn in_flight(&self, deployment: DeploymentId) -> Option<u64> {
        self.shared
            .current()
            .services
            .values()
            .find(|e| e.target.deployment == deployment)
            .map(|e| e.target.inflight())
    }

    /// Replace the whole table with `routes` (idempotent: applying the same set twice changes
    /// nothing, and unchanged targets keep their in-flight counts). No gate, no drain.
    pub async fn apply(&self, routes: Vec<Route>) -> Result<(), ProxyError> {
        let desired = routes.into_iter().map(|r| (r.service, r)).collect();
        self.replace(|_| desired).await.map(|_| ())
    }

    /// Hold new requests to `service` until [`ClankProxy::resume`] (each held at most
    /// `pause_timeout`, then 503). Requests already running continue.
    pub fn pause(&self, service: ServiceId) {
        let mut pauses = self.shared.lock_pauses();
        let tx = pauses
            .entry(service)
            .or_insert_with(|| watch::Sender::new(false));
        if !tx.send_replace(true) {
            self.shared.paused_count.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Release held requests; they re-read the route table, so they reach the new target.
    pub fn resume(&self, service: ServiceId) {
        let mut pauses = self.shared.lock_pauses();
        if let Some(tx) = pauses.remove(&service)
            && tx.send_replace(false)
        {
            self.shared.paused_count.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Build the next table from the current routes, swap it in and persist it. Returns the
    /// previous table (for draining).
    async fn replace(
        &self,
        change: impl FnOnce(BTreeMap<ServiceId, Route>) -> BTreeMap<ServiceId, Route>,
    ) -> Result<Arc<Table>, ProxyError> {
        let _writer = self.writer.lock().await;
        let previous = self.shared.current();
        let routes = change(previous.routes());
        let next = Table::build(
            routes,
            &previous,
            &self.shared.config.host_aliases,
            self.shared.config.fallback_service,
        );
        // Persist first: if the disk refuses, the change is refused and nothing moved.
        if let Some(path) = &self.shared.config.state_file {
            persist::save(path.clone(), next.routes()).await?;
        }
        {
            let mut table = match self.shared.table.write() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            *table = Arc::new(next);
        }
        self.shared
            .metrics
            .route_changes
            .fetch_add(1, Ordering::Relaxed);
        self.route_changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(previous)
    }
}

/// The `tailscale serve` mapping a route asks for: the plan and the address it points at (the
/// first address of the target; an unspecified address means this host's loopback).
fn tailscale_of(route: Option<&Route>) -> Option<(TailscaleServePlan, Option<SocketAddr>)> {
    let route = route?;
    let Some(Endpoint::TailscaleHttps { https_port }) = &route.endpoint else {
        return None;
    };
    let upstream = route.target.addrs.first().map(|a| {
        let mut a = *a;
        if a.ip().is_unspecified() {
            a.set_ip(match a.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        a
    });
    Some((
        TailscaleServePlan {
            https_port: *https_port,
        },
        upstream,
    ))
}

impl ClankProxy {
    fn tailscale(&self) -> TailscaleServe {
        TailscaleServe::new(self.shared.config.tailscale_binary.clone())
    }

    fn current_route(&self, service: ServiceId) -> Option<Route> {
        self.shared
            .current()
            .services
            .get(&service)
            .map(|e| e.route.clone())
    }

    /// Before `new` replaces `old`: point `tailscale serve` at the new target when the mapping
    /// changes. An error here refuses the change, so the old route keeps serving.
    async fn tailscale_before(&self, old: Option<&Route>, new: &Route) -> clank_core::Result<()> {
        let Some((plan, upstream)) = tailscale_of(Some(new)) else {
            return Ok(());
        };
        if tailscale_of(old) == Some((plan, upstream)) {
            return Ok(()); // Route repair of an unchanged route: nothing to run.
        }
        let Some(upstream) = upstream else {
            return Err(clank_core::Error::Conflict(format!(
                "tailscale_https endpoint of service {}: deployment {} has no address to serve",
                new.service, new.target.deployment
            )));
        };
        self.tailscale().add(&plan, upstream).await?;
        Ok(())
    }

    /// After `old` was replaced by `new` (or removed): turn off a tailnet port no longer used.
    /// Best effort: the route change already happened, so a failure is logged, not returned.
    async fn tailscale_after(&self, old: Option<&Route>, new: Option<&Route>) {
        let Some((old_plan, _)) = tailscale_of(old) else {
            return;
        };
        if tailscale_of(new).is_some_and(|(p, _)| p == old_plan) {
            return;
        }
        if let Err(e) = self.tailscale().remove(&old_plan).await {
            tracing::warn!(https_port = old_plan.https_port, error = %e, "could not turn tailscale serve off");
        }
    }
}

impl Shared {
    pub(crate) fn current(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn lock_pauses(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceId, watch::Sender<bool>>> {
        match self.pauses.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[async_trait::async_trait]
impl Proxy for ClankProxy {
    async fn cutover(&self, cutover: &Cutover) -> clank_core::Result<CutoverReport> {
        let service = cutover.route.service;
        if let Err(e) = probe::health_gate(cutover, self.shared.config.probe_timeout).await {
            self.shared
                .metrics
                .cutovers_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%service, error = %e, "cutover refused: health gate failed");
            return Err(e);
        }
        let before = self.current_route(service);
        if let Err(e) = self.tailscale_before(before.as_ref(), &cutover.route).await {
            self.shared
                .metrics
                .cutovers_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%service, error = %e, "cutover refused: tailscale serve failed");
            return Err(e);
        }
        let route = cutover.route.clone();
        let previous = self
            .replace(move |mut routes| {
                routes.insert(route.service, route);
                routes
            })
            .await?;
        let old_route = previous.services.get(&service).map(|e| e.route.clone());
        self.tailscale_after(old_route.as_ref(), Some(&cutover.route))
            .await;
        let old = previous.services.get(&service).map(|e| e.target.clone());
        let current = self.shared.current();
        let new_target = current.services.get(&service).map(|e| e.target.clone());
        let mut report = CutoverReport {
            previous: old.as_ref().map(|t| t.deployment),
            ..CutoverReport::default()
        };
        // Same target as before (an idempotent repeat): nothing to drain.
        if let Some(old) = old.filter(|o| !new_target.as_ref().is_some_and(|n| Arc::ptr_eq(o, n))) {
            let started = tokio::time::Instant::now();
            report.drained_requests = old.inflight();
            let drained = old.wait_idle(started + cutover.drain_timeout).await;
            if !drained {
                report.abandoned_requests = old.inflight();
                old.abandon.cancel();
                // Let the cancelled requests answer (504) before reporting.
                old.wait_idle(tokio::time::Instant::now() + Duration::from_secs(1))
                    .await;
            }
            report.drain_time = started.elapsed();
            // WebSocket policy: tunnels to the retired target get one more drain period.
            let grace = cutover.drain_timeout;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                old.close_upgrades.cancel();
            });
        }
        self.shared
            .metrics
            .cutovers_ok
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            %service,
            deployment = %cutover.route.target.deployment,
            previous = ?report.previous,
            drained = report.drained_requests,
            abandoned = report.abandoned_requests,
            drain_ms = u64::try_from(report.drain_time.as_millis()).unwrap_or(u64::MAX),
            "cutover done"
        );
        Ok(report)
    }

    async fn hold(&self, service: ServiceId, drain: Duration) -> clank_core::Result<()> {
        self.pause(service);
        let target = self
            .shared
            .current()
            .services
            .get(&service)
            .map(|e| e.target.clone());
        if let Some(target) = target {
            target.wait_idle(tokio::time::Instant::now() + drain).await;
        }
        Ok(())
    }

    async fn release(&self, service: ServiceId) -> clank_core::Result<()> {
        self.resume(service);
        Ok(())
    }

    async fn set_route(&self, route: &Route) -> clank_core::Result<()> {
        let before = self.current_route(route.service);
        self.tailscale_before(before.as_ref(), route).await?;
        let new = route.clone();
        let previous = self
            .replace(move |mut routes| {
                routes.insert(new.service, new);
                routes
            })
            .await?;
        let old = previous.services.get(&route.service).map(|e| &e.route);
        self.tailscale_after(old, Some(route)).await;
        Ok(())
    }

    async fn remove_route(&self, service: ServiceId) -> clank_core::Result<()> {
        let previous = self
            .replace(move |mut routes| {
                routes.remove(&service);
                routes
            })
            .await?;
        let old = previous.services.get(&service).map(|e| &e.route);
        self.tailscale_after(old, None).await;
        Ok(())
    }

    async fn route(&self, service: ServiceId) -> clank_core::Result<Option<Route>> {
        Ok(self
            .shared
            .current()
            .services
            .get(&service)
            .map(|e| e.route.clone()))
    }
}

/// Run a standalone proxy: bind `config.listen` (and `admin_listen`), serve until `shutdown`
/// completes, then finish open requests. What the `clank-proxy` binary calls.
pub async fn run(
    config: ProxyConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProxyError> {
    let proxy = ClankProxy::new(config)?;
    let listen = proxy.config().listen;
    let listener = bind(listen).await?;
    let stop = CancellationToken::new();
    let admin = match proxy.config().admin_listen {
        Some(addr) => {
            let admin_listener = bind(addr).await?;
            let proxy = proxy.clone();
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                proxy.serve_admin(admin_listener, stop).await;
            }))
        }
        None => None,
    };
    let tls = match proxy.config().tls_listen {
        Some(addr) => {
            let tls_listener = bind(addr).await?;
            let proxy = proxy.clone();
            let stop = stop.clone();
            tracing::info!(%addr, "clank-proxy TLS listening");
            Some(tokio::spawn(async move {
                if let Err(e) = proxy.serve_tls(tls_listener, stop).await {
                    tracing::error!(error = %e, "TLS listener failed");
                }
            }))
        }
        None => None,
    };
    let control = match proxy.config().control_socket.clone() {
        Some(path) => {
            let control_listener = bind_control(&path).await.map_err(|source| {
                ProxyError::Config(format!("control socket {}: {source}", path.display()))
            })?;
            let proxy = proxy.clone();
            let stop = stop.clone();
            tracing::info!(path = %path.display(), "clank-proxy control socket listening");
            Some(tokio::spawn(async move {
                serve_control(proxy, control_listener, stop).await;
            }))
        }
        None => None,
    };
    let lan = match proxy.config().lan_listen {
        Some(addr) => {
            let lan_listener = bind(addr).await?;
            let proxy = proxy.clone();
            let stop = stop.clone();
            tracing::info!(%addr, "clank-proxy LAN listening");
            Some(tokio::spawn(async move {
                proxy.serve_lan(lan_listener, stop).await;
            }))
        }
        None => None,
    };
    // Started once every listener is bound, so the CA's validation finds them answering.
    let acme = match &proxy.config().acme {
        Some(settings) => {
            let manager = AcmeManager::new(proxy.clone(), settings.to_acme_config())?;
            let stop = stop.clone();
            tracing::info!(directory = %settings.directory_url, "ACME on: routed public_direct names are certified automatically");
            Some(tokio::spawn(async move { manager.run(stop).await }))
        }
        None => None,
    };
    tracing::info!(%listen, "clank-proxy listening");
    let serving = proxy.serve(listener, stop.clone());
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown => {
            stop.cancel();
            serving.await;
        }
    }
    stop.cancel();
    for task in [admin, tls, lan, control, acme].into_iter().flatten() {
        let _ = task.await;
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { addr, source })
}
