//! How long each phase may last. Deadlines are absolute times stored on the deployment, so a
//! control plane that was down past one fails the deployment as soon as it is back.

use std::time::Duration;

use super::DeploymentStatus;
use crate::model::ServiceSettings;

/// Slack added to a queued deployment's deadline beyond the longest its predecessor may take.
pub const QUEUE_SLACK: Duration = Duration::from_secs(60);

/// The time budget of `status` for a deployment with these settings; `None` for phases
/// without a deadline (ACTIVE and the terminal ones).
///
/// - PENDING: a queued deployment waits at most for one predecessor's whole run
///   (build + start + health checks) plus [`QUEUE_SLACK`].
/// - BUILDING: `build_timeout_s`.
/// - DEPLOYING and HEALTH_CHECKING together: `deploy_timeout_s` ("max seconds for the container
///   to pass health checks after starting"); HEALTH_CHECKING inherits DEPLOYING's deadline.
pub fn phase_timeout(status: DeploymentStatus, settings: &ServiceSettings) -> Option<Duration> {
    let build = Duration::from_secs(u64::from(settings.build_timeout_s));
    let deploy = Duration::from_secs(u64::from(settings.deploy_timeout_s));
    match status {
        DeploymentStatus::Pending => Some(build + deploy + QUEUE_SLACK),
        DeploymentStatus::Building => Some(build),
        DeploymentStatus::Deploying | DeploymentStatus::HealthChecking => Some(deploy),
        DeploymentStatus::Active
        | DeploymentStatus::Superseded
        | DeploymentStatus::Failed
        | DeploymentStatus::Cancelled => None,
    }
}

/// Whether entering `to` from `from` keeps the current deadline instead of starting a new one.
pub fn inherits_deadline(from: DeploymentStatus, to: DeploymentStatus) -> bool {
    from == DeploymentStatus::Deploying && to == DeploymentStatus::HealthChecking
}

/// Backoff between health probes while HEALTH_CHECKING: start fast so a healthy app goes
/// ACTIVE in milliseconds, double per consecutive failure, never slower than the interval.
pub fn probe_backoff(consecutive_failures: u32, interval: Duration) -> Duration {
    let fast = Duration::from_millis(25).saturating_mul(1 << consecutive_failures.min(16));
    fast.min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_in_progress_phase_has_a_deadline_and_no_other_does() {
        let s = ServiceSettings::default();
        for st in DeploymentStatus::ALL {
            assert_eq!(phase_timeout(st, &s).is_some(), st.is_in_progress(), "{st}");
        }
    }

    #[test]
    fn pending_outlasts_a_whole_predecessor_run() {
        let s = ServiceSettings::default();
        let predecessor = phase_timeout(DeploymentStatus::Building, &s).unwrap()
            + phase_timeout(DeploymentStatus::Deploying, &s).unwrap();
        assert!(phase_timeout(DeploymentStatus::Pending, &s).unwrap() > predecessor);
    }

    #[test]
    fn probe_backoff_starts_fast_and_caps_at_interval() {
        let i = Duration::from_secs(10);
        assert_eq!(probe_backoff(0, i), Duration::from_millis(25));
        assert_eq!(probe_backoff(3, i), Duration::from_millis(200));
        assert_eq!(probe_backoff(30, i), i);
    }
}
