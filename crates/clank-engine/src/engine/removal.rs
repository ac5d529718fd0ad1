//! What the engine does for a deleted service. A soft-deleted service is parked like a
//! stopped one (`Service::is_parked`: the planner removes an ACTIVE deployment's route and
//! workloads); `park` only cancels what is still in flight and wakes the reconciler. A purge
//! then removes whatever of the service is left on every runtime it ran on — found by its
//! owner labels, so workloads of deployments the store no longer knows go too — and its
//! route, before the platform removes the records.

use std::collections::BTreeSet;
use std::time::Duration;

use clank_core::id::{ServerId, ServiceId};
use clank_core::model::{Deployment, Service};
use clank_core::runtime::OwnerFilter;
use clank_core::{Error, Result};
use tracing::info;

use super::{Engine, unplaceable};

/// How long a purge waits for the cancelled deployments of a service to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

impl Engine {
    /// After `services` were marked deleted: ask every deployment of theirs still in
    /// progress to cancel, and wake the reconciler, which parks their ACTIVE deployments.
    pub async fn park(&self, services: &[ServiceId]) -> Result<()> {
        for &service in services {
            for d in self.inner.catalog.live_deployments_of(service).await? {
                if d.state.status.is_in_progress() && d.state.cancel.is_none() {
                    match self.cancel(d.id).await {
                        // Finished meanwhile: nothing to cancel.
                        Ok(_) | Err(Error::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            self.wake(service);
        }
        Ok(())
    }

    /// Park the services again (after a restore cleared their marks): the reconciler starts
    /// their ACTIVE deployments' workloads and brings the route back, as `start` does.
    pub fn unpark(&self, services: &[ServiceId]) {
        for &service in services {
            self.wake(service);
        }
    }

    /// Wait (within a bound) until no deployment of `service` is in progress: a purge must
    /// not race a build or a cutover that would start something after it removed everything.
    pub async fn settle(&self, service: &Service) -> Result<()> {
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let live = self.inner.catalog.live_deployments_of(service.id).await?;
            let Some(d) = live.iter().find(|d| d.state.status.is_in_progress()) else {
                // Nor any version still being retired in the background.
                if self.await_retirements_of(service.id, deadline).await {
                    return Ok(());
                }
                return Err(Error::Conflict(format!(
                    "service `{}`: an earlier version is still stopping; purge again once it \
                     has stopped",
                    service.slug
                )));
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Conflict(format!(
                    "service `{}`: deployment #{} is still {} after being cancelled; purge \
                     again once it has stopped",
                    service.slug, d.number, d.state.status
                )));
            }
            self.wake(service.id);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Remove every workload of `service` and its route, on each runtime it ran on (its
    /// server now and those of `deployments`). Returns the removed workloads' names.
    pub async fn remove_service_workloads(
        &self,
        service: &Service,
        deployments: &[Deployment],
    ) -> Result<Vec<String>> {
        let servers: BTreeSet<Option<ServerId>> = std::iter::once(service.server_id)
            .chain(deployments.iter().map(|d| d.snapshot.server_id))
            .collect();
        let filter = OwnerFilter {
            workspace: Some(service.workspace_id),
            service: Some(service.id),
            ..OwnerFilter::default()
        };
        let mut removed = Vec::new();
        for server in servers {
            let placed = match self.placed_on(server) {
                Ok(placed) => placed,
                // A server that is gone runs nothing of it any more.
                Err(e) if unplaceable(&e) => continue,
                Err(e) => return Err(e),
            };
            placed.proxy.remove_route(service.id).await?;
            for w in placed.runtime.list(&filter).await? {
                super::stop_and_remove(
                    placed.runtime.as_ref(),
                    &w.id,
                    self.inner.config.stop_grace,
                )
                .await?;
                info!(service = %service.id, workload = %w.name, "Purged a workload.");
                removed.push(w.name);
            }
        }
        for d in deployments {
            self.forget(d.id);
        }
        Ok(removed)
    }
}
