//! `RouteTable`: the in-memory `Proxy` for setups where traffic reaches workloads directly
//! through their published ports (no reverse proxy in front, e.g. `byo_proxy`), and the
//! engine's default until a real proxy is plugged in. It keeps the same contract as
//! `clank-proxy`: health-gated switch (the proxy's own gate, `clank_proxy::probe`), atomic
//! swap, the old route untouched on failure.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use clank_core::Result;
use clank_core::id::ServiceId;
use clank_core::proxy::{Cutover, CutoverReport, Proxy, Route};

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

#[async_trait::async_trait]
impl Proxy for RouteTable {
    async fn cutover(&self, cutover: &Cutover) -> Result<CutoverReport> {
        clank_proxy::probe::health_gate(cutover, self.probe_timeout).await?;
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
