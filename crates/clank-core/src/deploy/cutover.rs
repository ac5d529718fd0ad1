//! The one operation that moves a service's ACTIVE pointer, the invariants it keeps, and how
//! a new version takes over from the running one.

use super::DeploymentStatus;
use crate::endpoint::fixed_publish;
use crate::error::{Error, Result};
use crate::model::{Deployment, Service};
use crate::runtime::PortBinding;
use crate::time::Timestamp;

/// How a new version takes over from the service's ACTIVE one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutoverStrategy {
    /// The new version runs beside the old one until it is healthy (the default).
    StartFirst,
    /// The two versions cannot run side by side: the old version's workloads named by
    /// [`StopFirst::stops`] stop before the new version's start, and start again if the new
    /// version fails.
    StopFirst(StopFirst),
}

/// Why a cutover is stop-first, which decides which workloads wait for the old ones to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopFirst {
    /// Both publish their `web` port on the same fixed host address (`byo_proxy`) on the same
    /// server: only the `web` workloads swap.
    HeldAddress(PortBinding),
    /// Both mount these volumes, not declared `shared`, on the same server: data on a volume is
    /// never written by two versions at once, so every workload of the old version stops
    /// first (every process type mounts the service's volumes).
    SingleWriterVolumes(Vec<String>),
}

impl StopFirst {
    /// Whether workloads of `process` are part of the swap: the old ones stop before the new
    /// ones start.
    pub fn stops(&self, process: &str) -> bool {
        match self {
            StopFirst::HeldAddress(_) => process == crate::model::ProcessSpec::WEB,
            StopFirst::SingleWriterVolumes(_) => true,
        }
    }

    /// What the two versions would share, for the deploy log.
    pub fn describe(&self) -> String {
        match self {
            StopFirst::HeldAddress(address) => {
                let ip = address.host_ip;
                match address.host_port {
                    Some(port) => format!("both publish on {ip}:{port}"),
                    None => format!("both publish on {ip}"),
                }
            }
            StopFirst::SingleWriterVolumes(names) => format!(
                "both mount volume(s) {} (not declared `shared`)",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The cutover from `active` (the service's ACTIVE deployment, if any) to `next`.
pub fn cutover_strategy(next: &Deployment, active: Option<&Deployment>) -> CutoverStrategy {
    let Some(active) = active.filter(|a| a.id != next.id) else {
        return CutoverStrategy::StartFirst;
    };
    if next.snapshot.server_id != active.snapshot.server_id {
        return CutoverStrategy::StartFirst;
    }
    // Volumes first: stopping every workload also frees a held address.
    let single_writer: Vec<String> = next
        .snapshot
        .volumes
        .iter()
        .filter(|v| {
            active
                .snapshot
                .volumes
                .iter()
                .any(|held| held.name == v.name && !(held.shared && v.shared))
        })
        .map(|v| v.name.clone())
        .collect();
    if !single_writer.is_empty() {
        return CutoverStrategy::StopFirst(StopFirst::SingleWriterVolumes(single_writer));
    }
    match (
        fixed_publish(&next.snapshot),
        fixed_publish(&active.snapshot),
    ) {
        (Some(new), Some(held)) if new.collides_with(&held) => {
            CutoverStrategy::StopFirst(StopFirst::HeldAddress(new))
        }
        _ => CutoverStrategy::StartFirst,
    }
}

/// Complete a cutover in memory: `next` (HEALTH_CHECKING) becomes ACTIVE, `previous` (the
/// service's current ACTIVE, if any) becomes SUPERSEDED, and the service points at `next`.
///
/// All three records change together or not at all; the catalog persists them in one
/// conditional write. Refuses when the service's pointer does not name `previous` (someone
/// else cut over first), which is how "at most one ACTIVE" survives races.
pub fn activate(
    service: &mut Service,
    next: &mut Deployment,
    previous: Option<&mut Deployment>,
    now: Timestamp,
) -> Result<()> {
    if next.service_id != service.id {
        return Err(Error::Internal(format!(
            "deployment #{} is not a deployment of service `{}`",
            next.number, service.slug
        )));
    }
    let expected = previous.as_ref().map(|p| p.id);
    if service.active_deployment != expected {
        return Err(Error::Conflict(format!(
            "service `{}` has ACTIVE {:?}, not {:?}: another cutover happened first",
            service.slug, service.active_deployment, expected
        )));
    }
    if let Some(prev) = previous.as_deref() {
        if prev.state.status != DeploymentStatus::Active {
            return Err(Error::Conflict(format!(
                "deployment #{} is {}, not ACTIVE",
                prev.number, prev.state.status
            )));
        }
    }
    // Check both transitions before applying either, so a refusal changes nothing.
    if !next
        .state
        .status
        .can_transition_to(DeploymentStatus::Active)
    {
        return Err(Error::IllegalTransition {
            from: next.state.status,
            to: DeploymentStatus::Active,
        });
    }
    next.state.transition(
        DeploymentStatus::Active,
        Some("health checks passed; traffic switched".into()),
        &next.snapshot.settings.clone(),
        now,
    )?;
    if let Some(prev) = previous {
        let settings = prev.snapshot.settings.clone();
        prev.state.transition(
            DeploymentStatus::Superseded,
            Some(format!("superseded by deployment #{}", next.number)),
            &settings,
            now,
        )?;
    }
    service.active_deployment = Some(next.id);
    service.updated_at = now;
    Ok(())
}

/// The service-level invariants of DESIGN.md §3, checked over all of a service's deployments:
/// at most one ACTIVE, and the service's pointer names exactly that one.
pub fn check_service_invariants(
    service: &Service,
    deployments: &[Deployment],
) -> Result<(), String> {
    let active: Vec<_> = deployments
        .iter()
        .filter(|d| d.state.status == DeploymentStatus::Active)
        .collect();
    if active.len() > 1 {
        let numbers: Vec<_> = active.iter().map(|d| d.number).collect();
        return Err(format!("more than one ACTIVE deployment: {numbers:?}"));
    }
    let active_id = active.first().map(|d| d.id);
    if service.active_deployment != active_id {
        return Err(format!(
            "service points at {:?} but the ACTIVE deployment is {:?}",
            service.active_deployment, active_id
        ));
    }
    Ok(())
}
