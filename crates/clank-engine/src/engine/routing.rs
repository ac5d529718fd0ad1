//! Probing a deployment's `web` workloads and switching the service's route: the platform's
//! health probe (one round, or until healthy within the deadline), the health-gated cutover
//! with its drain, the route restored to the previous ACTIVE, and the volumes a cutover
//! strategy looks at.

use std::net::SocketAddr;
use std::time::Duration;

use clank_core::deploy::{self, HealthObservation};
use clank_core::id::DeploymentId;
use clank_core::model::{Deployment, ProcessSpec, Service};
use clank_core::proxy::{Cutover, Route, Target};
use clank_core::runtime::{ProbeResult, WorkloadStatus};
use clank_core::{Error, Result};
use tokio::time::Instant;

use crate::health;

use super::{Engine, lock};

impl Engine {
    pub(super) async fn web_workloads(&self, d: &Deployment) -> Result<Vec<WorkloadStatus>> {
        Ok(self
            .workloads_of(d)
            .await?
            .into_iter()
            .filter(|w| w.owner.process == ProcessSpec::WEB)
            .collect())
    }

    /// One round of the platform's probe of `d`'s `web` workloads (healthy only if all are).
    pub(super) async fn probe_once(&self, d: &Deployment) -> Result<ProbeResult> {
        let check = d.snapshot.settings.health_check();
        let web = self.web_workloads(d).await?;
        let runtime = self.placed_for(d)?.map(|p| p.runtime);
        let mut outcome = ProbeResult {
            healthy: !web.is_empty(),
            detail: "no web workload to probe".into(),
            answered: false,
        };
        for w in &web {
            let timeout = self.inner.config.probe_timeout;
            let remote = match &runtime {
                Some(r) => r.probe(w, &check, timeout).await?,
                None => None,
            };
            outcome = match remote {
                Some(remote) => remote,
                None => health::probe(&check, w, timeout, self.now()).await,
            };
            if !outcome.healthy {
                break;
            }
        }
        if web.is_empty()
            && d.snapshot
                .processes
                .get(ProcessSpec::WEB)
                .is_none_or(|p| p.replicas == 0)
        {
            // Worker-only services: running is all there is to check.
            outcome = ProbeResult {
                healthy: true,
                detail: "no web process; workers running".into(),
                answered: true,
            };
        }
        Ok(outcome)
    }

    /// Probe `d` until it is healthy or `budget` is over: the last outcome, and after how long.
    pub(super) async fn probe_until_healthy(
        &self,
        d: &Deployment,
        budget: Duration,
    ) -> Result<(ProbeResult, Duration)> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(25);
        loop {
            let outcome = self.probe_once(d).await?;
            if outcome.healthy || started.elapsed() + delay > budget {
                return Ok((outcome, started.elapsed()));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    pub(super) async fn probe(&self, d: &Deployment) -> Result<()> {
        let check = d.snapshot.settings.health_check();
        let outcome = self.probe_once(d).await?;
        let previous = lock(&self.inner.health)
            .get(&d.id)
            .cloned()
            .unwrap_or_default();
        let next = previous.after_probe(outcome.healthy, outcome.answered, outcome.detail.clone());
        // Changes are logged, and in progress also the verdict and a thinning sample of a run
        // of misses (probes of a starting app are 100 ms apart: not one line each).
        let changed = std::mem::discriminant(&previous) != std::mem::discriminant(&next);
        let sampled = match &next {
            HealthObservation::NotAnswering { attempts: n, .. }
            | HealthObservation::Failing { consecutive: n, .. } => {
                n.is_power_of_two() || n % 10 == 0
            }
            _ => true,
        };
        if changed || (d.state.status.is_in_progress() && sampled) {
            self.note(
                d,
                format!(
                    "health {} {}: {}",
                    deploy::describe_health_check(&check),
                    if outcome.healthy { "passed" } else { "failed" },
                    outcome.detail
                ),
            )
            .await;
        }
        lock(&self.inner.health).insert(d.id, next);
        Ok(())
    }

    pub(super) async fn target_of(&self, d: &Deployment) -> Result<Target> {
        let addrs = web_addrs(&self.workloads_of(d).await?);
        Ok(Target {
            deployment: d.id,
            addrs,
        })
    }

    pub(super) async fn switch_route(&self, service: &Service, d: &Deployment) -> Result<()> {
        let target = self.target_of(d).await?;
        let now = self.now();
        let gate = d
            .state
            .deadline
            .map(|dl| dl.since(now))
            .unwrap_or(Duration::from_secs(u64::from(
                d.snapshot.settings.deploy_timeout_s,
            )));
        let cutover = Cutover {
            route: Route {
                service: service.id,
                endpoint: d.snapshot.endpoint.clone(),
                target,
            },
            health: d.snapshot.settings.health_check(),
            gate_timeout: gate,
            drain_timeout: self.inner.config.drain_timeout,
        };
        let proxy = self.placed_on(d.snapshot.server_id)?.proxy;
        match proxy.cutover(&cutover).await {
            Ok(report) => {
                // A stop-first cutover held the service's requests: they go to the new target.
                self.release_held(service, d).await;
                self.note(
                    d,
                    format!(
                        "traffic switched to #{} (drained {} request(s) in {:.1} s, {} cut off)",
                        d.number,
                        report.drained_requests,
                        report.drain_time.as_secs_f64(),
                        report.abandoned_requests
                    ),
                )
                .await;
                Ok(())
            }
            Err(e @ (Error::Conflict(_) | Error::Runtime { .. })) => {
                self.note(d, format!("cutover refused: {e}")).await;
                lock(&self.inner.health).insert(
                    d.id,
                    HealthObservation::Failing {
                        consecutive: 1,
                        last: e.to_string(),
                    },
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `d`'s volumes under the names the runtime knows them by: the workspace-scoped name
    /// (`runtime::volume_runtime_name`), unless only a volume of the plain name exists for
    /// this workspace and project — one an earlier version of Clank created, whose data the
    /// service keeps.
    pub(super) async fn volume_mounts(
        &self,
        d: &Deployment,
    ) -> Result<Vec<clank_core::model::VolumeMount>> {
        let scoped = crate::workloads::runtime_volumes(d);
        if scoped.is_empty() {
            return Ok(scoped);
        }
        let Some(placed) = self.placed_for(d)? else {
            return Ok(scoped);
        };
        let labels = clank_core::runtime::Owner::labels_for_project(d.workspace_id, d.project_id);
        let mut mounts = Vec::with_capacity(scoped.len());
        for (mount, declared) in scoped.into_iter().zip(&d.snapshot.volumes) {
            let legacy = !placed.runtime.volume_belongs(&mount.name, &labels).await?
                && placed
                    .runtime
                    .volume_belongs(&declared.name, &labels)
                    .await?;
            mounts.push(if legacy {
                clank_core::model::VolumeMount {
                    name: declared.name.clone(),
                    ..mount
                }
            } else {
                mount
            });
        }
        Ok(mounts)
    }

    pub(super) async fn restore_route(
        &self,
        service: &Service,
        to: Option<DeploymentId>,
    ) -> Result<()> {
        // The proxy of the server the service is on now: where a cutover moved the route.
        let proxy = self.placed_on(service.server_id)?.proxy;
        match to {
            Some(previous) => {
                let prev = self
                    .inner
                    .catalog
                    .require::<Deployment>(&previous.to_string())
                    .await?;
                let route = Route {
                    service: service.id,
                    endpoint: prev.snapshot.endpoint.clone(),
                    target: self.target_of(&prev).await?,
                };
                proxy.set_route(&route).await
            }
            None => proxy.remove_route(service.id).await,
        }
    }
}

/// Host addresses of the `web` workloads, the proxy's targets.
pub(super) fn web_addrs(workloads: &[WorkloadStatus]) -> Vec<SocketAddr> {
    workloads
        .iter()
        .filter(|w| w.owner.process == ProcessSpec::WEB)
        .filter_map(|w| w.endpoint)
        .collect()
}
