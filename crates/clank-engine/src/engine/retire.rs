//! Retiring a version in the background. The workloads of a deployment that was superseded,
//! cancelled or failed are stopped (with the stop grace period) and removed by a task of their
//! own, not by the service's reconcile pass: the next deploy, a cancel or a rollback never waits
//! for an app that ignores SIGTERM. A start that cannot run beside a retiring version (a
//! single-writer volume or a fixed address they share, `deploy::cutover_strategy`'s rule) waits
//! for it instead, so data on a volume is still never written by two versions at once.
//!
//! A retirement retries until its workloads are gone; it ends with the engine's `run`. What a
//! stopped engine leaves behind belongs to finished deployments, which the next `recover`
//! removes as orphans.

use std::sync::Arc;
use std::time::Duration;

use clank_core::deploy::{self, CutoverStrategy};
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::Deployment;
use clank_core::{Error, Result};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{info, warn};

use super::{Engine, lock};

/// The longest pause between two attempts of a retirement that fails (the engine is down).
const RETRY_CAP: Duration = Duration::from_secs(30);
/// How long a start waits for a conflicting retirement beyond the stop grace period before its
/// pass gives up (and is retried): the runtime's own stop may take a little longer than the
/// grace period it was given.
const WAIT_SLACK: Duration = Duration::from_secs(30);

/// One retirement in progress.
#[derive(Debug)]
pub(super) struct Retiring {
    deployment: Arc<Deployment>,
    /// `true` once every workload is gone; the sender drops if the task is aborted.
    done: watch::Receiver<bool>,
    task: AbortHandle,
}

impl Engine {
    /// Stop and remove `d`'s workloads in the background (idempotent: a deployment already
    /// retiring is left to the task that has it).
    pub(super) fn retire(&self, d: Deployment) {
        let mut retiring = lock(&self.inner.retiring);
        if retiring.contains_key(&d.id) {
            return;
        }
        let d = Arc::new(d);
        let (done_tx, done) = watch::channel(false);
        let engine = self.clone();
        let target = d.clone();
        let task = tokio::spawn(async move {
            engine.retire_until_gone(&target).await;
            engine.forget(target.id);
            lock(&engine.inner.retiring).remove(&target.id);
            let _ = done_tx.send(true);
        });
        retiring.insert(
            d.id,
            Retiring {
                deployment: d,
                done,
                task: task.abort_handle(),
            },
        );
    }

    async fn retire_until_gone(&self, d: &Deployment) {
        let mut pause = Duration::from_secs(1);
        loop {
            match self.remove_workloads(d).await {
                Ok(0) => return,
                Ok(removed) => {
                    info!(deployment = %d.id, number = d.number, removed, "Retired a deployment's workloads.");
                    self.note(d, format!("stopped and removed {removed} workload(s)"))
                        .await;
                    return;
                }
                Err(e) => {
                    warn!(deployment = %d.id, error = %e, retry_in_s = pause.as_secs(), "Could not retire a deployment's workloads; retrying.");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_CAP);
                }
            }
        }
    }

    /// Wait until no retiring version of `d`'s service holds what `d` is about to start with
    /// (the same single-writer volume or fixed address); each wait is noted on `d`.
    pub(super) async fn await_conflicting_retirements(&self, d: &Deployment) -> Result<()> {
        let conflicts: Vec<(u64, String, watch::Receiver<bool>)> = lock(&self.inner.retiring)
            .values()
            .filter(|r| r.deployment.service_id == d.service_id && r.deployment.id != d.id)
            .filter_map(|r| match deploy::cutover_strategy(d, Some(&r.deployment)) {
                CutoverStrategy::StopFirst(why) => {
                    Some((r.deployment.number, why.describe(), r.done.clone()))
                }
                CutoverStrategy::StartFirst => None,
            })
            .collect();
        let bound = self.inner.config.stop_grace + WAIT_SLACK;
        for (number, why, mut done) in conflicts {
            self.note(
                d,
                format!("waiting for #{number} to finish stopping before starting ({why})"),
            )
            .await;
            match tokio::time::timeout(bound, done.wait_for(|gone| *gone)).await {
                Ok(Ok(_)) => {}
                // Aborted (the engine is stopping) or still stopping: try again later.
                Ok(Err(_)) | Err(_) => {
                    return Err(Error::Conflict(format!(
                        "deployment #{number} is still stopping ({why}); starting #{} once it \
                         has stopped",
                        d.number
                    )));
                }
            }
        }
        Ok(())
    }

    /// Wait (until `deadline`) for every retirement of `service` to finish; `false` if one
    /// is still running then.
    pub(super) async fn await_retirements_of(
        &self,
        service: ServiceId,
        deadline: tokio::time::Instant,
    ) -> bool {
        let running: Vec<watch::Receiver<bool>> = lock(&self.inner.retiring)
            .values()
            .filter(|r| r.deployment.service_id == service)
            .map(|r| r.done.clone())
            .collect();
        for mut done in running {
            let finished = tokio::time::timeout_at(deadline, done.wait_for(|gone| *gone)).await;
            if finished.is_err() {
                return false;
            }
        }
        true
    }

    /// End every retirement in progress (the engine stops); their workloads are orphans the
    /// next `recover` removes.
    pub(super) fn abort_retirements(&self) {
        for (_, r) in lock(&self.inner.retiring).drain() {
            r.task.abort();
        }
    }

    /// The deployments whose workloads are being stopped and removed in the background.
    pub fn retiring(&self) -> Vec<DeploymentId> {
        lock(&self.inner.retiring).keys().copied().collect()
    }
}
