//! Stop-first cutovers (`CutoverStrategy::StopFirst`): which ACTIVE deployment must stop
//! first, holding the service's requests at the proxy while its swapped workloads stop,
//! giving the service back to it when the new version fails, and letting held requests
//! through whatever happened.

use std::time::Duration;

use clank_core::deploy::{self, CutoverStrategy, DeploymentStatus, StopFirst};
use clank_core::id::DeploymentId;
use clank_core::model::{Deployment, Service};
use clank_core::runtime::{WorkloadState, WorkloadStatus};
use clank_core::{Error, Result};
use tracing::warn;

use super::Engine;

impl Engine {
    /// The ACTIVE deployment that must stop (some of) its workloads before `d`'s start, and
    /// why (`CutoverStrategy::StopFirst`).
    pub(super) async fn stop_first_of(
        &self,
        service: &Service,
        d: &Deployment,
    ) -> Result<Option<(Deployment, StopFirst)>> {
        let Some(previous) = service.active_deployment.filter(|a| *a != d.id) else {
            return Ok(None);
        };
        let Some(previous) = self
            .inner
            .catalog
            .get::<Deployment>(&previous.to_string())
            .await?
        else {
            return Ok(None);
        };
        Ok(match deploy::cutover_strategy(d, Some(&previous)) {
            CutoverStrategy::StopFirst(why) => Some((previous.value, why)),
            CutoverStrategy::StartFirst => None,
        })
    }

    /// Stop `previous`'s running workloads that `why` swaps, so `d`'s can start (stop-first).
    /// The proxy holds the service's new requests from here until the new version's cutover
    /// (or the restore of the old one) and lets the requests in flight finish first.
    pub(super) async fn stop_for_cutover(
        &self,
        service: &Service,
        d: &Deployment,
        previous: &Deployment,
        why: &StopFirst,
    ) -> Result<()> {
        let Some(placed) = self.placed_for(previous)? else {
            return Ok(());
        };
        let running: Vec<WorkloadStatus> = self
            .swapped_workloads(previous, why)
            .await?
            .into_iter()
            .filter(|w| !matches!(w.state, WorkloadState::Exited { .. }))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let text = format!(
            "stop-first cutover: #{} and ACTIVE #{} cannot run side by side ({}); stopping #{}'s \
             {} workload(s) (new requests are held until #{} is up)",
            d.number,
            previous.number,
            why.describe(),
            previous.number,
            running.len(),
            d.number
        );
        self.note(d, text).await;
        self.note(
            previous,
            format!("stopped for the stop-first cutover to #{}", d.number),
        )
        .await;
        // Holding is best effort: a proxy that cannot hold (an agent of an earlier version)
        // lets requests fail during the swap instead of failing the deployment.
        if let Err(e) = placed
            .proxy
            .hold(service.id, self.inner.config.drain_timeout)
            .await
        {
            warn!(deployment = %d.id, error = %e, "Could not hold requests for a stop-first cutover.");
            self.note(
                d,
                format!(
                    "the proxy could not hold requests ({e}); they fail until #{} is up",
                    d.number
                ),
            )
            .await;
        }
        for w in &running {
            placed
                .runtime
                .stop(&w.id, self.inner.config.stop_grace)
                .await?;
        }
        self.note(
            d,
            format!(
                "stopped #{}'s workload(s); starting #{}'s",
                previous.number, d.number
            ),
        )
        .await;
        Ok(())
    }

    /// Give the service back to `previous` after a failed stop-first cutover by `d`: start its
    /// workloads again (a start of a stopped workload restarts it in place).
    pub(super) async fn start_previous(
        &self,
        service: &Service,
        d: &Deployment,
        previous: DeploymentId,
    ) -> Result<()> {
        let prev = self
            .inner
            .catalog
            .require::<Deployment>(&previous.to_string())
            .await?;
        if prev.state.status != DeploymentStatus::Active {
            return Ok(());
        }
        let (_, specs) = self.specs_of(service, &prev).await?;
        let Some(placed) = self.placed_for(&prev)? else {
            return Ok(());
        };
        for spec in &specs {
            match placed.runtime.start(spec).await {
                Ok(_) => {}
                // A refusal (the port taken meanwhile, the image gone) would refuse every retry
                // and keep this deployment from ending: end it, and leave the ACTIVE one to its
                // own reconciler, which restarts a workload that is down.
                Err(e @ Error::Runtime { .. })
                    if !matches!(
                        e.kind(),
                        clank_core::ErrorKind::Unavailable | clank_core::ErrorKind::Timeout
                    ) =>
                {
                    warn!(deployment = %prev.id, error = %e, "Could not start the previous version again.");
                    self.note(
                        d,
                        format!(
                            "could not start #{} again: {e}; its own reconciler keeps restarting it",
                            prev.number
                        ),
                    )
                    .await;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        // It serves again before this deployment is recorded FAILED: wait (within the budget
        // it had to become healthy at its own deploy) until it passes its check again.
        let budget = Duration::from_secs(u64::from(prev.snapshot.settings.deploy_timeout_s));
        let (outcome, after) = self.probe_until_healthy(&prev, budget).await?;
        let text = if outcome.healthy {
            format!(
                "restored #{}: its {} workload(s) started again and passed their health check \
                 after {:.1} s",
                prev.number,
                specs.len(),
                after.as_secs_f64()
            )
        } else {
            format!(
                "restored #{}: its {} workload(s) started again but are not healthy after {:.1} s \
                 ({}); its own reconciler takes over",
                prev.number,
                specs.len(),
                after.as_secs_f64(),
                outcome.detail
            )
        };
        self.note(d, text).await;
        self.note(
            &prev,
            format!(
                "started again after the stop-first cutover to #{} failed",
                d.number
            ),
        )
        .await;
        Ok(())
    }

    /// `d`'s workloads that a stop-first cutover swaps.
    pub(super) async fn swapped_workloads(
        &self,
        d: &Deployment,
        why: &StopFirst,
    ) -> Result<Vec<WorkloadStatus>> {
        Ok(self
            .workloads_of(d)
            .await?
            .into_iter()
            .filter(|w| why.stops(&w.owner.process))
            .collect())
    }

    /// Let the service's held requests through (idempotent; a proxy that never held any
    /// answers at once). A failure is logged: the proxy's own pause timeout still bounds them.
    pub(super) async fn release_held(&self, service: &Service, d: &Deployment) {
        let proxy = match self.placed_on(d.snapshot.server_id) {
            Ok(placed) => placed.proxy,
            Err(_) => return,
        };
        if let Err(e) = proxy.release(service.id).await {
            warn!(service = %service.id, error = %e, "Could not release held requests.");
        }
    }
}
