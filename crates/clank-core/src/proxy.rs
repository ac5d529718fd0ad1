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

/// A [`Proxy`] call as data, for a proxy in another process: a remote server's (carried by the
/// agent protocol) or the platform host's own `clank-proxy` (its control socket). Route types
/// are serde already; durations travel as milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProxyCall {
    Cutover {
        route: Route,
        health: HealthCheck,
        gate_timeout_ms: u64,
        drain_timeout_ms: u64,
    },
    SetRoute {
        route: Route,
    },
    RemoveRoute {
        service: ServiceId,
    },
    Route {
        service: ServiceId,
    },
    Hold {
        service: ServiceId,
        drain_ms: u64,
    },
    Release {
        service: ServiceId,
    },
    /// Is the proxy there? Answered `Done`.
    Ping,
}

/// The answer to a [`ProxyCall`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ProxyReply {
    Cutover {
        previous: Option<DeploymentId>,
        drained_requests: u64,
        abandoned_requests: u64,
        drain_time_ms: u64,
    },
    Route {
        route: Option<Route>,
    },
    Done,
    /// The call failed: the error's kind, its runtime failure if it was one, and its message.
    Failed {
        code: String,
        failure: Option<crate::error::RuntimeFailure>,
        message: String,
    },
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ProxyCall {
    pub fn from_cutover(c: &Cutover) -> Self {
        ProxyCall::Cutover {
            route: c.route.clone(),
            health: c.health.clone(),
            gate_timeout_ms: millis(c.gate_timeout),
            drain_timeout_ms: millis(c.drain_timeout),
        }
    }

    /// Carry the call out on `proxy`; a failure becomes [`ProxyReply::Failed`].
    pub async fn apply(self, proxy: &dyn Proxy) -> ProxyReply {
        let done = |r: Result<()>| r.map(|()| ProxyReply::Done);
        let result = match self {
            ProxyCall::Cutover {
                route,
                health,
                gate_timeout_ms,
                drain_timeout_ms,
            } => proxy
                .cutover(&Cutover {
                    route,
                    health,
                    gate_timeout: Duration::from_millis(gate_timeout_ms),
                    drain_timeout: Duration::from_millis(drain_timeout_ms),
                })
                .await
                .map(|r| ProxyReply::Cutover {
                    previous: r.previous,
                    drained_requests: r.drained_requests,
                    abandoned_requests: r.abandoned_requests,
                    drain_time_ms: millis(r.drain_time),
                }),
            ProxyCall::SetRoute { route } => done(proxy.set_route(&route).await),
            ProxyCall::RemoveRoute { service } => done(proxy.remove_route(service).await),
            ProxyCall::Route { service } => proxy
                .route(service)
                .await
                .map(|route| ProxyReply::Route { route }),
            ProxyCall::Hold { service, drain_ms } => {
                done(proxy.hold(service, Duration::from_millis(drain_ms)).await)
            }
            ProxyCall::Release { service } => done(proxy.release(service).await),
            ProxyCall::Ping => Ok(ProxyReply::Done),
        };
        result.unwrap_or_else(|e| ProxyReply::failed(&e))
    }
}

impl ProxyReply {
    pub fn failed(e: &crate::error::Error) -> Self {
        ProxyReply::Failed {
            code: e.kind().code().to_owned(),
            failure: e.runtime_failure(),
            message: e.to_string(),
        }
    }

    /// `Failed` back into the error the engine reacts to (a refused cutover is a `Conflict` or
    /// a runtime failure; anything else is retried as unavailable); other replies unchanged.
    pub fn into_result(self) -> Result<ProxyReply> {
        use crate::error::{Error, RuntimeFailure};
        match self {
            ProxyReply::Failed {
                code,
                failure,
                message,
            } => Err(match (code.as_str(), failure) {
                (_, Some(failure)) => Error::runtime(failure, message),
                ("conflict", None) => Error::Conflict(message),
                ("not_found", None) => Error::runtime(RuntimeFailure::NotFound, message),
                _ => Error::runtime(RuntimeFailure::EngineUnavailable, message),
            }),
            other => Ok(other),
        }
    }
}

/// How calls reach a proxy in another process (the agent protocol, a local socket).
#[async_trait::async_trait]
pub trait ProxyTransport: Send + Sync + fmt::Debug {
    /// Send one call and return the proxy's reply (a `Failed` reply included), within
    /// `timeout`.
    async fn send(&self, call: &ProxyCall, timeout: Duration) -> Result<ProxyReply>;
    /// The budget of a call that has none of its own (all but a cutover).
    fn call_timeout(&self) -> Duration;
}

/// A [`Proxy`] in another process, driven by [`ProxyCall`]s over a [`ProxyTransport`].
#[derive(Debug)]
pub struct CalledProxy<T>(pub T);

impl<T: ProxyTransport> CalledProxy<T> {
    async fn call(&self, call: ProxyCall, timeout: Duration) -> Result<ProxyReply> {
        self.0.send(&call, timeout).await?.into_result()
    }

    async fn done(&self, call: ProxyCall) -> Result<()> {
        match self.call(call, self.0.call_timeout()).await? {
            ProxyReply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(reply: &ProxyReply) -> crate::error::Error {
    crate::error::Error::runtime(
        crate::error::RuntimeFailure::Other,
        format!("unexpected proxy reply {reply:?}"),
    )
}

#[async_trait::async_trait]
impl<T: ProxyTransport> Proxy for CalledProxy<T> {
    async fn cutover(&self, cutover: &Cutover) -> Result<CutoverReport> {
        let wait = cutover.gate_timeout + cutover.drain_timeout + self.0.call_timeout();
        match self.call(ProxyCall::from_cutover(cutover), wait).await? {
            ProxyReply::Cutover {
                previous,
                drained_requests,
                abandoned_requests,
                drain_time_ms,
            } => Ok(CutoverReport {
                previous,
                drained_requests,
                abandoned_requests,
                drain_time: Duration::from_millis(drain_time_ms),
            }),
            other => Err(unexpected(&other)),
        }
    }

    async fn set_route(&self, route: &Route) -> Result<()> {
        self.done(ProxyCall::SetRoute {
            route: route.clone(),
        })
        .await
    }

    async fn remove_route(&self, service: ServiceId) -> Result<()> {
        self.done(ProxyCall::RemoveRoute { service }).await
    }

    async fn route(&self, service: ServiceId) -> Result<Option<Route>> {
        match self
            .call(ProxyCall::Route { service }, self.0.call_timeout())
            .await?
        {
            ProxyReply::Route { route } => Ok(route),
            other => Err(unexpected(&other)),
        }
    }

    async fn hold(&self, service: ServiceId, drain: Duration) -> Result<()> {
        let wait = drain + self.0.call_timeout();
        match self
            .call(
                ProxyCall::Hold {
                    service,
                    drain_ms: millis(drain),
                },
                wait,
            )
            .await?
        {
            ProxyReply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn release(&self, service: ServiceId) -> Result<()> {
        self.done(ProxyCall::Release { service }).await
    }
}
