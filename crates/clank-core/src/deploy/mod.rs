//! The deployment lifecycle: statuses, legal transitions, deadlines, the pure planner and the
//! cutover that moves a service's ACTIVE pointer.

mod cutover;
mod deadline;
mod planner;
mod status;

pub use cutover::{
    CutoverStrategy, StopFirst, activate, check_service_invariants, cutover_strategy,
};
pub use deadline::{QUEUE_SLACK, inherits_deadline, phase_timeout, probe_backoff};
pub use planner::{
    BuildObservation, Command, HealthObservation, Observed, POLL, Plan, START_POLL, Transition,
    WorkloadObservation, describe_health_check, plan, waiting_reason,
};
pub use status::DeploymentStatus;

#[cfg(test)]
mod tests;
