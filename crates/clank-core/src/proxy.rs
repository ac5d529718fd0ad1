//! The `Proxy` trait: how the deploy engine moves a service's traffic at cutover.
//!
//! The engine never edits routes piecemeal: a cutover is one call that health-gates the new
//! target, swaps the route atomically, drains the old target, and only then returns
//! (kamal-proxy's "deploy is a transaction"). Implementations: `clank-proxy` (our reverse
//! proxy) and the engine's in-memory route table for runtimes where traffic goes straight to
//! published ports.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Result;
use crate::id::{DeploymentId, ServiceId};
use crate::model::{Endpoint, HealthCheck};

/// Where a deployment's `web` instances listen (host-reachable addresses).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub deployment: DeploymentId,
    pub addrs: Vec<SocketAddr>,
}

/// A service's route: its endpoint (domains, mode) and the target receiving its traffic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub service: ServiceId,
    pub endpoint: Option<Endpoint>,
    pub target: Target,
}

/// A health-gated switch of a service's route to a new target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutover {
    pub route: Route,
    /// What "healthy" means for the new target; probed before the swap.
    pub health: HealthCheck,
    /// How long the new target may take to pass the gate before the cutover is refused.
    pub gate_timeout: Duration,
    /// How long in-flight requests to the old target may run after the swap.
    pub drain_timeout: Duration,
}

/// What a completed cutover did, for the deploy log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CutoverReport {
    pub previous: Option<DeploymentId>,
    /// Requests still in flight on the old target when the swap happened.
    pub drained_requests: u64,
    /// Requests cut off at the drain timeout (answered 504).
    pub abandoned_requests: u64,
    pub drain_time: Duration,
}

#[async_trait::async_trait]
pub trait Proxy: Send + Sync + fmt::Debug {
    /// Health-gate `cutover.route.target`, swap the route atomically, drain the old target.
    /// On a failed gate the old route stays untouched and the error says what the probe saw.
    async fn cutover(&self, cutover: &Cutover) -> Result<CutoverReport>;
    /// Point the route at a target at once, without a gate (restoring the previous ACTIVE).
    async fn set_route(&self, route: &Route) -> Result<()>;
    /// Stop routing the service (idempotent).
    async fn remove_route(&self, service: ServiceId) -> Result<()>;
    /// The service's current route, if any.
    async fn route(&self, service: ServiceId) -> Result<Option<Route>>;

    /// Hold the service's new requests (each waits, bounded by the proxy's pause timeout) and
    /// wait up to `drain` for the requests in flight to finish: a stop-first cutover is about
    /// to stop the only version that could answer them. The default holds nothing (traffic
    /// that goes straight to published ports cannot be held).
    async fn hold(&self, service: ServiceId, drain: Duration) -> Result<()> {
        let _ = (service, drain);
        Ok(())
    }

    /// Let held requests through to the route's current target (idempotent).
    async fn release(&self, service: ServiceId) -> Result<()> {
        let _ = service;
        Ok(())
    }

    /// The deployment receiving the service's traffic now, if any.
    async fn routed_to(&self, service: ServiceId) -> Result<Option<DeploymentId>> {
        Ok(self.route(service).await?.map(|r| r.target.deployment))
    }
}
