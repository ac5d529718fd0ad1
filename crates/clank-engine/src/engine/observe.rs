//! The reconciler's observe step: what the planner is told about one deployment — its
//! workloads summarised, its build, its health probes, its route, its dependencies — and the
//! waiting reason a PENDING deployment shows while a dependency is not ACTIVE yet.

use std::time::Duration;

use clank_core::deploy::{
    self, BuildObservation, CutoverStrategy, DeploymentStatus, Observed, WorkloadObservation,
};
use clank_core::model::{Deployment, ProcessSpec, Service};
use clank_core::runtime::{OwnerFilter, WorkloadState, WorkloadStatus};
use clank_core::store::catalog::Versioned;
use clank_core::{Error, Result, Timestamp};

use super::routing::web_addrs;
use super::{BuildRun, Engine, lock};
use crate::workloads::expected_workloads;

impl Engine {
    /// A PENDING deployment waiting on a dependency says so in its `reason` (shown in the
    /// deployment view) without changing status.
    pub(super) async fn note_waiting(
        &self,
        d: &Versioned<Deployment>,
        observed: &Observed,
    ) -> Result<()> {
        let Some(dep) = &observed.waiting_on else {
            return Ok(());
        };
        let reason = deploy::waiting_reason(dep);
        if d.state.status != DeploymentStatus::Pending
            || d.state.reason.as_deref() == Some(reason.as_str())
        {
            return Ok(());
        }
        let mut next = d.value.clone();
        next.state.reason = Some(reason);
        match self.inner.catalog.save_deployment(d, &next).await {
            // Someone else wrote first: the next pass looks again.
            Err(Error::WriteConflict { .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The first of the service's dependencies (slugs in its environment) with no ACTIVE
    /// deployment; a missing one counts as not ACTIVE.
    async fn first_unready_dependency(&self, service: &Service) -> Result<Option<String>> {
        for dep in &service.depends_on {
            let found = self
                .inner
                .catalog
                .lookup::<Service>("slug", &format!("{}:{dep}", service.environment_id))
                .await?;
            if found.is_none_or(|s| s.active_deployment.is_none()) {
                return Ok(Some(dep.clone()));
            }
        }
        Ok(None)
    }

    pub(super) async fn observe(
        &self,
        service: &Service,
        d: &Deployment,
        live: &[Versioned<Deployment>],
    ) -> Result<Observed> {
        let workloads = self.workloads_of(d).await?;
        let expected = expected_workloads(d);
        let start_failure = lock(&self.inner.start_failures).get(&d.id).cloned();
        let workload = match start_failure {
            Some(reason) => WorkloadObservation::StartFailed { reason },
            None => summarize(&workloads, expected, d.state.status, self.now()),
        };
        let has_builder = lock(&self.inner.builder).is_some();
        let build = if !d.needs_build() {
            BuildObservation::NotStarted
        } else if !has_builder {
            BuildObservation::Failed {
                reason: "this engine has no image builder configured, so git services cannot be built yet".into(),
            }
        } else {
            match lock(&self.inner.builds).get(&d.id) {
                None => BuildObservation::NotStarted,
                Some(BuildRun::Running { .. }) => BuildObservation::Running,
                Some(BuildRun::Succeeded { image }) => BuildObservation::Succeeded {
                    image: image.clone(),
                },
                Some(BuildRun::Failed { reason }) => BuildObservation::Failed {
                    reason: reason.clone(),
                },
            }
        };
        let in_flight = |o: &Versioned<Deployment>| {
            o.id != d.id
                && matches!(
                    o.state.status,
                    DeploymentStatus::Building
                        | DeploymentStatus::Deploying
                        | DeploymentStatus::HealthChecking
                )
        };
        let health = lock(&self.inner.health)
            .get(&d.id)
            .cloned()
            .unwrap_or_default();
        // Routed here means: the route names this deployment *and* (once ACTIVE) still points
        // at the addresses its web workloads have now — a restarted workload may have moved.
        // A server that is gone routes nothing.
        let route = match self.placed_for(d)? {
            Some(placed) => placed.proxy.route(service.id).await?,
            None => None,
        };
        let routed_here = match route {
            Some(route) if route.target.deployment == d.id => {
                d.state.status != DeploymentStatus::Active || {
                    let mut current = web_addrs(&workloads);
                    let mut routed = route.target.addrs.clone();
                    current.sort();
                    routed.sort();
                    current == routed
                }
            }
            _ => false,
        };
        let previous_active = service.active_deployment.filter(|a| *a != d.id);
        // A stop-first cutover in flight whose previous version is down (stopped for it).
        let previous_stopped = match previous_active {
            Some(previous) if d.state.status.is_in_progress() => {
                let previous = match live.iter().find(|o| o.id == previous) {
                    Some(p) => Some(p.value.clone()),
                    None => self
                        .inner
                        .catalog
                        .get::<Deployment>(&previous.to_string())
                        .await?
                        .map(|p| p.value),
                };
                match previous {
                    Some(prev) => match deploy::cutover_strategy(d, Some(&prev)) {
                        CutoverStrategy::StopFirst(why) => {
                            let swapped = self.swapped_workloads(&prev, &why).await?;
                            swapped.is_empty()
                                || swapped
                                    .iter()
                                    .any(|w| !matches!(w.state, WorkloadState::Running { .. }))
                        }
                        CutoverStrategy::StartFirst => false,
                    },
                    None => false,
                }
            }
            _ => false,
        };
        // An ACTIVE whose web workloads a stop-first cutover in flight stopped (or is about to).
        let held_for_cutover = d.state.status == DeploymentStatus::Active
            && live.iter().any(|o| {
                o.id != d.id
                    && matches!(
                        o.state.status,
                        DeploymentStatus::Deploying | DeploymentStatus::HealthChecking
                    )
                    && matches!(
                        deploy::cutover_strategy(o, Some(d)),
                        CutoverStrategy::StopFirst(_)
                    )
            });
        let waiting_on = if d.state.status == DeploymentStatus::Pending {
            self.first_unready_dependency(service).await?
        } else {
            None
        };
        Ok(Observed {
            waiting_on,
            previous_active,
            newer_queued: live
                .iter()
                .filter(|o| o.number > d.number && o.state.status == DeploymentStatus::Pending)
                .map(|o| o.number)
                .max(),
            other_in_flight: live.iter().find(|o| in_flight(o)).map(|o| o.number),
            build,
            workload,
            health,
            routed_here,
            previous_stopped,
            held_for_cutover,
            service_stopped: service.is_parked(),
        })
    }

    pub(super) async fn workloads_of(&self, d: &Deployment) -> Result<Vec<WorkloadStatus>> {
        let Some(placed) = self.placed_for(d)? else {
            return Ok(Vec::new());
        };
        placed
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d.id),
                ..OwnerFilter::default()
            })
            .await
    }
}

/// How long a workload nothing probes (a worker, a tunnel connector) must have been running
/// before a deployment being brought up counts it as up: one that exits at once must fail the
/// deployment, not be seen running in the instant before it exits.
const UNPROBED_STABLE: Duration = Duration::from_secs(1);

/// Summarise a deployment's workloads for the planner. While a deployment is being brought
/// up, any restart means it crashed, and a workload other than `web` (which the platform
/// probes) counts as running only once it has run for [`UNPROBED_STABLE`]; once ACTIVE the
/// runtime's restart policy handles blips and only a workload that stays down counts.
fn summarize(
    workloads: &[WorkloadStatus],
    expected: u32,
    status: DeploymentStatus,
    now: Timestamp,
) -> WorkloadObservation {
    if workloads.is_empty() {
        return if expected == 0 {
            WorkloadObservation::Running
        } else {
            WorkloadObservation::Absent
        };
    }
    let bringing_up = status.is_in_progress();
    for w in workloads {
        match &w.state {
            WorkloadState::Exited {
                code, oom_killed, ..
            } => {
                return WorkloadObservation::Exited {
                    code: *code,
                    oom_killed: *oom_killed,
                };
            }
            WorkloadState::Restarting if bringing_up => {
                return WorkloadObservation::Exited {
                    code: None,
                    oom_killed: false,
                };
            }
            WorkloadState::Running { .. } if bringing_up && w.restart_count > 0 => {
                return WorkloadObservation::Exited {
                    code: None,
                    oom_killed: false,
                };
            }
            _ => {}
        }
    }
    let running = workloads
        .iter()
        .filter(|w| match w.state {
            WorkloadState::Running { started_at } => {
                !bringing_up
                    || w.owner.process == ProcessSpec::WEB
                    || now.since(started_at) >= UNPROBED_STABLE
            }
            _ => false,
        })
        .count();
    if running >= expected as usize {
        WorkloadObservation::Running
    } else if workloads.len() < expected as usize && !bringing_up {
        WorkloadObservation::Absent
    } else {
        WorkloadObservation::Starting
    }
}

#[cfg(test)]
mod tests {
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
    use clank_core::runtime::{Owner, WorkloadId};

    use super::*;

    fn running(process: &str, started_at: Timestamp) -> WorkloadStatus {
        WorkloadStatus {
            id: WorkloadId(format!("{process}-0")),
            name: format!("{process}-0"),
            owner: Owner {
                workspace: WorkspaceId::new(),
                project: ProjectId::new(),
                environment: EnvironmentId::new(),
                service: ServiceId::new(),
                deployment: DeploymentId::new(),
                process: process.to_owned(),
                replica: 0,
            },
            state: WorkloadState::Running { started_at },
            restart_count: 0,
            endpoint: None,
        }
    }

    #[test]
    fn an_unprobed_workload_counts_as_up_only_once_it_has_run_for_a_second() {
        let now = Timestamp(1_800_000_000_000);
        let just = Timestamp(now.0 - 100);
        let long = Timestamp(now.0 - 1_500);
        let bringing_up = DeploymentStatus::Deploying;
        // The probed `web` counts at once; a worker seen running for 100 ms does not yet.
        let fresh = [running("web", just), running("worker", just)];
        assert_eq!(
            summarize(&fresh, 2, bringing_up, now),
            WorkloadObservation::Starting
        );
        let settled = [running("web", just), running("worker", long)];
        assert_eq!(
            summarize(&settled, 2, bringing_up, now),
            WorkloadObservation::Running
        );
        // Once ACTIVE, running is running.
        assert_eq!(
            summarize(&fresh, 2, DeploymentStatus::Active, now),
            WorkloadObservation::Running
        );
    }
}
