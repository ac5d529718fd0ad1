//! `RouteTable`: the in-memory `Proxy` for setups where traffic reaches workloads directly
//! through their published ports (no reverse proxy in front, e.g. `byo_proxy`), and the
//! engine's default until a real proxy is plugged in. It keeps the same contract as
//! `clank-proxy`: health-gated switch, atomic swap, the old route untouched on failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::model::HealthCheck;
use clank_core::proxy::{Cutover, CutoverReport, Proxy, Route};
use clank_core::{Error, Result};

use crate::health::{ProbeOutcome, http_probe, tcp_probe};

#[derive(Debug)]
pub struct RouteTable {
    routes: RwLock<HashMap<ServiceId, Route>>,
    probe_timeout: Duration,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::new(Duration::from_secs(2))
    }
}

impl RouteTable {
    pub fn new(probe_timeout: Duration) -> Self {
        RouteTable {
            routes: RwLock::new(HashMap::new()),
            probe_timeout,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ServiceId, Route>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ServiceId, Route>> {
        self.routes.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Probe every address of a target once; healthy only if all are.
pub async fn gate_probe(
    check: &HealthCheck,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> ProbeOutcome {
    if addrs.is_empty() {
        return ProbeOutcome::unanswered("the target has no address");
    }
    for addr in addrs {
        let out = match check {
            HealthCheck::Http { path, .. } => http_probe(*addr, path, timeout).await,
            HealthCheck::Tcp { .. } => tcp_probe(*addr, timeout).await,
            // The engine already required the workload to be running and stable.
            HealthCheck::Running { .. } => continue,
        };
        if !out.healthy {
            return ProbeOutcome {
                detail: format!("{addr}: {}", out.detail),
                ..out
            };
        }
    }
    ProbeOutcome {
        healthy: true,
        detail: "all targets healthy".into(),
        answered: true,
    }
}

#[async_trait::async_trait]
impl Proxy for RouteTable {
    async fn cutover(&self, cutover: &Cutover) -> Result<CutoverReport> {
        let deadline = tokio::time::Instant::now() + cutover.gate_timeout;
        let mut delay = Duration::from_millis(20);
        loop {
            let out = gate_probe(
                &cutover.health,
                &cutover.route.target.addrs,
                self.probe_timeout,
            )
            .await;
            if out.healthy {
                break;
            }
            if tokio::time::Instant::now() + delay >= deadline {
                return Err(Error::Conflict(format!(
                    "new target of deployment {} did not pass the health gate within {:.1} s: {}",
                    cutover.route.target.deployment,
                    cutover.gate_timeout.as_secs_f64(),
                    out.detail
                )));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        let previous = self
            .write()
            .insert(cutover.route.service, cutover.route.clone())
            .map(|r| r.target.deployment);
        // Traffic goes to published ports directly, so there is nothing in flight to drain here.
        Ok(CutoverReport {
            previous,
            ..CutoverReport::default()
        })
    }

    async fn set_route(&self, route: &Route) -> Result<()> {
        self.write().insert(route.service, route.clone());
        Ok(())
    }

    async fn remove_route(&self, service: ServiceId) -> Result<()> {
        self.write().remove(&service);
        Ok(())
    }

    async fn route(&self, service: ServiceId) -> Result<Option<Route>> {
        Ok(self.read().get(&service).cloned())
    }
}
