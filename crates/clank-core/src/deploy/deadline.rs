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

/// Probes of a starting app [`probe_backoff`] keeps at most [`FAST_PROBE_STEP`] apart: about
/// five seconds of a boot.
pub(crate) const FAST_PROBES: u32 = 50;
/// The longest wait between a starting app's probes in its first [`FAST_PROBES`].
pub(crate) const FAST_PROBE_STEP: Duration = Duration::from_millis(100);

/// Backoff between health probes of an app that has not answered yet (HEALTH_CHECKING):
/// 25 ms, 50 ms, then every 100 ms for about five seconds — an app is seen within 100 ms of
/// listening, which is most of a no-change deploy's time — then doubling per probe, never
/// slower than the interval.
pub fn probe_backoff(consecutive_failures: u32, interval: Duration) -> Duration {
    let step = if consecutive_failures < FAST_PROBES {
        Duration::from_millis(25)
            .saturating_mul(1 << consecutive_failures.min(2))
            .min(FAST_PROBE_STEP)
    } else {
        FAST_PROBE_STEP.saturating_mul(1 << (consecutive_failures - FAST_PROBES + 1).min(16))
    };
    step.min(interval)
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
    fn probe_backoff_stays_fast_through_a_boot_then_backs_off_to_the_interval() {
        let i = Duration::from_secs(10);
        let ms = Duration::from_millis;
        assert_eq!(probe_backoff(0, i), ms(25));
        assert_eq!(probe_backoff(1, i), ms(50));
        assert_eq!(probe_backoff(2, i), ms(100));
        assert_eq!(probe_backoff(FAST_PROBES - 1, i), ms(100));
        let boot: Duration = (0..FAST_PROBES).map(|n| probe_backoff(n, i)).sum();
        assert!(boot >= Duration::from_secs(4), "{boot:?} of fast probes");
        assert_eq!(probe_backoff(FAST_PROBES, i), ms(200));
        assert_eq!(probe_backoff(FAST_PROBES + 1, i), ms(400));
        assert_eq!(probe_backoff(FAST_PROBES + 30, i), i);
        assert_eq!(
            probe_backoff(5, ms(40)),
            ms(40),
            "never slower than the interval"
        );
    }
}
