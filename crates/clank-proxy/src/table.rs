//! The route table: an immutable snapshot (services, host index, per-target state) replaced as
//! a whole on every change, so a request sees one consistent table from start to end.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::Endpoint;
use clank_core::proxy::Route;
use http::uri::Authority;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Live state of one target (a deployment's addresses): round-robin cursor, in-flight count
/// for draining, and the signals that cut off its requests and tunnels when it is retired.
/// Kept across table swaps for as long as the target stays routed, so counts stay exact.
#[derive(Debug)]
pub(crate) struct TargetState {
    pub(crate) deployment: DeploymentId,
    pub(crate) addrs: Vec<SocketAddr>,
    /// `addrs` with their URI authorities pre-rendered, so the request path does not format them.
    authorities: Vec<(SocketAddr, Authority)>,
    next: AtomicUsize,
    inflight: AtomicU64,
    /// Woken whenever `inflight` drops to zero (the drain waits on it).
    idle: Notify,
    /// Cancelled at the drain timeout: requests still running are answered 504 or cut off.
    pub(crate) abandon: CancellationToken,
    /// Cancelled after the WebSocket grace period: open upgraded tunnels are closed.
    pub(crate) close_upgrades: CancellationToken,
}

impl TargetState {
    fn new(deployment: DeploymentId, addrs: Vec<SocketAddr>) -> Self {
        let authorities = addrs
            .iter()
            .filter_map(|a| Some((*a, Authority::try_from(a.to_string()).ok()?)))
            .collect();
        TargetState {
            deployment,
            addrs,
            authorities,
            next: AtomicUsize::new(0),
            inflight: AtomicU64::new(0),
            idle: Notify::new(),
            abandon: CancellationToken::new(),
            close_upgrades: CancellationToken::new(),
        }
    }

    /// The next address, round-robin.
    pub(crate) fn pick(&self) -> Option<(SocketAddr, &Authority)> {
        if self.authorities.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.authorities.len();
        self.authorities.get(i).map(|(addr, a)| (*addr, a))
    }

    pub(crate) fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    /// Wait until no request is in flight or `deadline` passes; returns whether it drained.
    pub(crate) async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking the count so a drop to zero in between is not missed.
            notified.as_mut().enable();
            if self.inflight() == 0 {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return self.inflight() == 0,
            }
        }
    }
}

/// Counts one proxied request against its target (and the global gauge) until dropped: when
/// the response body is finished, or the request failed or was cancelled.
#[derive(Debug)]
pub(crate) struct InflightGuard {
    pub(crate) target: Arc<TargetState>,
    metrics: Arc<Metrics>,
}

impl InflightGuard {
    pub(crate) fn new(target: Arc<TargetState>, metrics: Arc<Metrics>) -> Self {
        target.inflight.fetch_add(1, Ordering::AcqRel);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InflightGuard { target, metrics }
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.target.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.target.idle.notify_waiters();
        }
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) route: Route,
    pub(crate) target: Arc<TargetState>,
    /// A `public_direct` endpoint: served over HTTPS, plain HTTP is redirected.
    https_only: bool,
    /// A `lan_only` endpoint: served on the LAN listener when there is one.
    lan_only: bool,
}

/// One immutable version of the routes.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) services: BTreeMap<ServiceId, Entry>,
    hosts: HashMap<String, ServiceId>,
    fallback: Option<ServiceId>,
}

/// Lowercase, no `:port`, no trailing dot: the form hosts are indexed and looked up in.
/// Borrowed when `host` already is in that form (the usual case: no allocation per request).
pub(crate) fn normalise_host(host: &str) -> Cow<'_, str> {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080` -> `[::1]`.
        rest.split_once(']')
            .map_or(host, |(inner, _)| &host[..inner.len() + 2])
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let name = without_port.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

impl Table {
    /// Build the next table from the desired routes. Targets that are still routed (same
    /// deployment, same addresses) keep their state so in-flight counting spans the swap.
    pub(crate) fn build(
        routes: BTreeMap<ServiceId, Route>,
        previous: &Table,
        aliases: &BTreeMap<String, ServiceId>,
        fallback: Option<ServiceId>,
    ) -> Table {
        let mut services = BTreeMap::new();
        let mut hosts = HashMap::new();
        for (service, route) in routes {
            let target = previous
                .services
                .values()
                .map(|e| &e.target)
                .find(|t| t.deployment == route.target.deployment && t.addrs == route.target.addrs)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(TargetState::new(
                        route.target.deployment,
                        route.target.addrs.clone(),
                    ))
                });
            if let Some(endpoint) = &route.endpoint {
                for domain in endpoint.routed_domains() {
                    let host = normalise_host(domain).into_owned();
                    // Two services claiming one name: the earlier id keeps it (deterministic).
                    if let Some(other) = hosts.get(&host) {
                        tracing::warn!(%host, keeps = %other, ignored = %service, "host claimed by two routes");
                    } else {
                        hosts.insert(host, service);
                    }
                }
            }
            let https_only = matches!(route.endpoint, Some(Endpoint::PublicDirect { .. }));
            let lan_only = matches!(route.endpoint, Some(Endpoint::LanOnly { .. }));
            services.insert(
                service,
                Entry {
                    route,
                    target,
                    https_only,
                    lan_only,
                },
            );
        }
        for (alias, service) in aliases {
            hosts
                .entry(normalise_host(alias).into_owned())
                .or_insert(*service);
        }
        Table {
            services,
            hosts,
            fallback,
        }
    }

    /// The service serving `host` (already normalised), its current target, and whether it
    /// is HTTPS-only. `on_lan` = `Some(true)` on the LAN listener (only `lan_only` routes),
    /// `Some(false)` on a public listener when a LAN listener exists (no `lan_only` routes:
    /// they must not leak onto the public address), `None` when there is no LAN listener.
    pub(crate) fn lookup(
        &self,
        host: &str,
        on_lan: Option<bool>,
    ) -> Option<(ServiceId, &Arc<TargetState>, bool)> {
        let service = self.hosts.get(host).copied().or(self.fallback)?;
        self.services
            .get(&service)
            .filter(|e| on_lan.is_none_or(|lan| e.lan_only == lan))
            .map(|e| (service, &e.target, e.https_only))
    }

    pub(crate) fn routes(&self) -> BTreeMap<ServiceId, Route> {
        self.services
            .iter()
            .map(|(s, e)| (*s, e.route.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ignore_port_case_and_trailing_dot() {
        assert_eq!(normalise_host("Shop.Example.COM:8443"), "shop.example.com");
        assert_eq!(normalise_host("shop.example.com."), "shop.example.com");
        assert_eq!(normalise_host("[::1]:80"), "[::1]");
        assert_eq!(normalise_host("127.0.0.1"), "127.0.0.1");
        assert_eq!(normalise_host("localhost:"), "localhost");
    }
}
