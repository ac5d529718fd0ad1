//! Stopping and starting a service on purpose. Both only record the wish on the service
//! (`Service::stopped_at`) and wake the reconciler: the pure planner then decides (an ACTIVE
//! deployment of a stopped service loses its route, then its workloads; started again, its
//! workloads are restarted and the route comes back through the health-gated switch). The
//! deployments and their history are untouched, so a daemon restart keeps a stopped service
//! stopped and `start` brings back exactly the version that was ACTIVE.

use clank_core::id::ServiceId;
use clank_core::model::Service;
use clank_core::{Error, Result};

use super::Engine;

impl Engine {
    /// Stop the service: refused while one of its deployments is in progress (cancel it or let
    /// it finish first); stopping a stopped service is a no-op.
    pub async fn stop_service(&self, service: ServiceId) -> Result<Service> {
        self.set_stopped(service, true).await
    }

    /// Start a stopped service again: its ACTIVE deployment's workloads are restarted and the
    /// route switched back once they pass their health checks. Starting a running service is
    /// a no-op.
    pub async fn start_service(&self, service: ServiceId) -> Result<Service> {
        self.set_stopped(service, false).await
    }

    /// Record the wish (compare-and-swap on the service), note it in the live deployments'
    /// logs and wake the reconciler.
    async fn set_stopped(&self, service: ServiceId, stop: bool) -> Result<Service> {
        loop {
            let svc = self
                .inner
                .catalog
                .require::<Service>(&service.to_string())
                .await?;
            if svc.stopped_at.is_some() == stop {
                return Ok(svc.value);
            }
            let live = self.inner.catalog.live_deployments_of(service).await?;
            if stop && let Some(d) = live.iter().find(|d| d.state.status.is_in_progress()) {
                return Err(Error::Conflict(format!(
                    "service `{}` has deployment #{} {}; cancel it or wait for it to finish \
                     before stopping the service",
                    svc.slug, d.number, d.state.status
                )));
            }
            let mut next = svc.value.clone();
            next.stopped_at = stop.then(|| self.now());
            next.updated_at = self.now();
            // A deployment created meanwhile bumped the service's version, so the retry sees
            // it in progress.
            match self.inner.catalog.update(&svc, &next).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => {}
            }
            let note = if stop {
                "service stopped: removing its route and workloads"
            } else {
                "service started: restarting its workloads"
            };
            for d in &live {
                self.note(d, note.into()).await;
            }
            self.wake(service);
            return Ok(next);
        }
    }
}
