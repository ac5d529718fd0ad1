//! The pure deployment planner: `plan(deployment, observed, now) -> Plan`.
//!
//! It reads nothing and does nothing: the reconciler observes the world (build, workload,
//! health, route, queue), asks the planner what to do, executes the commands through the
//! backends, and writes the transition back with compare-and-swap. Because the planner is a
//! function of its inputs, resuming after a crash is just planning again with fresh
//! observations, and every decision is covered by table tests below.

use std::time::Duration;

use super::{DeploymentStatus, probe_backoff};
use crate::id::DeploymentId;
use crate::image::ImageRef;
use crate::model::{Deployment, HealthCheck};
use crate::time::Timestamp;

/// State of the deployment's build, as the reconciler last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BuildObservation {
    #[default]
    NotStarted,
    Running,
    Succeeded {
        image: ImageRef,
    },
    Failed {
        reason: String,
    },
}

/// State of the deployment's workloads (all instances of all process types, summarised).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WorkloadObservation {
    /// Nothing exists for this deployment.
    #[default]
    Absent,
    /// Created, not running yet (image being checked, container starting).
    Starting,
    Running,
    /// A workload exited (crash, OOM kill, finished) — `code` if known.
    Exited {
        code: Option<i64>,
        oom_killed: bool,
    },
    /// The runtime refused to start it (image missing, port taken, ...).
    StartFailed {
        reason: String,
    },
}

/// Result of the platform's health probes against the deployment's `web` workload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HealthObservation {
    /// Not probed yet.
    #[default]
    Unknown,
    Passing,
    /// Nothing has answered a probe yet (connection refused, closed at once, timed out): the
    /// app may still be starting. While HEALTH_CHECKING this waits up to the phase deadline
    /// (`deploy_timeout_s`), so slow-booting apps still deploy.
    NotAnswering {
        attempts: u32,
        last: String,
    },
    /// Probes failed `consecutive` times in a row after the workload had answered (a non-2xx
    /// status, or refused after it was listening). `health_check_retries` of them in a row
    /// fail a deployment in progress and restart an ACTIVE one.
    Failing {
        consecutive: u32,
        /// What the last probe saw: `HTTP 503`, `connection refused`, `timed out after 2 s`.
        last: String,
    },
}

impl HealthObservation {
    /// The observation after one more probe: a pass, a failure the workload answered, or a
    /// failure without an answer — which counts as a failure only once the workload has been
    /// seen answering (it was listening and went away).
    pub fn after_probe(&self, healthy: bool, answered: bool, detail: String) -> Self {
        use HealthObservation::*;
        if healthy {
            return Passing;
        }
        match self {
            Unknown | NotAnswering { .. } if !answered => NotAnswering {
                attempts: match self {
                    NotAnswering { attempts, .. } => attempts + 1,
                    _ => 1,
                },
                last: detail,
            },
            Failing { consecutive, .. } => Failing {
                consecutive: consecutive + 1,
                last: detail,
            },
            _ => Failing {
                consecutive: 1,
                last: detail,
            },
        }
    }
}

/// Everything the planner needs to know about the world, gathered by the reconciler.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// The service's ACTIVE deployment other than this one (the one a cutover replaces).
    pub previous_active: Option<DeploymentId>,
    /// Number of a newer deployment of the same service that is queued (PENDING).
    pub newer_queued: Option<u64>,
    /// Number of another deployment of the same service that is past PENDING and not done.
    pub other_in_flight: Option<u64>,
    pub build: BuildObservation,
    pub workload: WorkloadObservation,
    pub health: HealthObservation,
    /// Whether the proxy currently routes the service's traffic to this deployment.
    pub routed_here: bool,
    /// This deployment takes over stop-first (`CutoverStrategy::StopFirst`) and the previous
    /// ACTIVE's `web` workloads are not running (stopped for it): failing it must start them
    /// again.
    pub previous_stopped: bool,
    /// (ACTIVE only) Its `web` workloads are stopped for the stop-first cutover of the
    /// deployment in flight: they must be neither probed nor restarted meanwhile.
    pub held_for_cutover: bool,
    /// (PENDING only) The first of the service's `depends_on` with no ACTIVE deployment: the
    /// deployment stays PENDING until it has one, or its deadline passes.
    pub waiting_on: Option<String>,
    /// The service is stopped on purpose or soft-deleted (`Service::is_parked`): an ACTIVE
    /// deployment's workloads and route are removed, not restarted.
    pub service_stopped: bool,
}

/// A status change the reconciler writes (with compare-and-swap) after running the commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: DeploymentStatus,
    pub reason: Option<String>,
    /// The image a finished build produced (BUILDING → DEPLOYING only).
    pub image: Option<ImageRef>,
}

/// Side effects, executed in order by the reconciler through the backend traits. Each one is
/// idempotent, so re-running a plan after a crash is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    StartBuild,
    CancelBuild,
    /// Create and start every instance of every process type (skipping ones that exist).
    StartWorkload,
    /// Probe the `web` workload from the platform and record the result.
    ProbeHealth,
    /// Health-gated switch of the service's route to this deployment, draining the old target.
    SwitchRoute,
    /// Point the route back at the previous ACTIVE (or remove it when there is none).
    RestoreRoute {
        to: Option<DeploymentId>,
    },
    /// Stop and remove the workloads of the deployment this one replaced, in the background:
    /// the engine never holds the service's next step for it. A later start that cannot run
    /// beside them (`cutover_strategy`) waits until they are gone.
    RetirePrevious {
        previous: DeploymentId,
    },
    /// Stop and remove this (ending) deployment's workloads in the background, as
    /// `RetirePrevious` does for a replaced one.
    RetireWorkload,
    /// Start the previous ACTIVE's workloads again (idempotent): a failed stop-first cutover
    /// gives the service back to the version it stopped.
    StartPrevious {
        previous: DeploymentId,
    },
    /// Stop and remove this deployment's workloads before anything else happens. Volumes are
    /// never touched.
    RemoveWorkload,
    /// Replace a crashed or unhealthy workload of an ACTIVE deployment.
    RestartWorkload {
        reason: String,
    },
}

/// What to do now, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub transition: Option<Transition>,
    pub commands: Vec<Command>,
    /// Plan again after this long; `None` = only when something changes.
    pub requeue: Option<Duration>,
}

impl Plan {
    fn wait(after: Duration) -> Plan {
        Plan {
            requeue: Some(after),
            ..Plan::default()
        }
    }

    fn run(commands: Vec<Command>, after: Duration) -> Plan {
        Plan {
            transition: None,
            commands,
            requeue: Some(after),
        }
    }

    fn go(to: DeploymentStatus, reason: Option<String>, commands: Vec<Command>) -> Plan {
        Plan {
            transition: Some(Transition {
                to,
                reason,
                image: None,
            }),
            commands,
            requeue: (!to.is_terminal()).then_some(Duration::ZERO),
        }
    }
}

/// How often a deployment waiting on another one, or on a build, is looked at again.
pub const POLL: Duration = Duration::from_secs(1);
/// How soon to look again right after starting a workload.
pub const START_POLL: Duration = Duration::from_millis(20);

/// Decide the next step for `d` given what was observed at `now`.
pub fn plan(d: &Deployment, obs: &Observed, now: Timestamp) -> Plan {
    use DeploymentStatus::*;
    let status = d.state.status;
    if status.is_in_progress() {
        if d.state.cancel.is_some() {
            return end(Cancelled, "cancelled on request".into(), status, obs);
        }
        if let Some(deadline) = d.state.deadline.filter(|dl| now >= *dl) {
            let reason = format!(
                "{status} did not finish in time: entered {}, deadline {deadline}, now {now} ({} late){}",
                d.state.since,
                fmt_duration(now.since(deadline)),
                last_observation(status, obs),
            );
            return end(Failed, reason, status, obs);
        }
    }
    match status {
        Pending => plan_pending(d, obs),
        Building => plan_building(obs),
        Deploying => plan_deploying(obs),
        HealthChecking => plan_health_checking(d, obs, now),
        Active => plan_active(d, obs),
        Superseded | Failed | Cancelled => plan_finished(obs),
    }
}

fn plan_pending(d: &Deployment, obs: &Observed) -> Plan {
    use DeploymentStatus::*;
    if let Some(newer) = obs.newer_queued {
        let reason =
            format!("superseded by deployment #{newer}, requested while this one was queued");
        return Plan::go(Cancelled, Some(reason), cleanup(Pending, obs));
    }
    if let Some(reason) = crate::endpoint::missing_config(&d.snapshot) {
        // Refused before anything is built or started: nothing running is touched.
        return Plan::go(Failed, Some(reason), cleanup(Pending, obs));
    }
    if obs.other_in_flight.is_some() {
        // One cutover per service at a time: wait for the in-flight deployment to finish.
        return Plan::wait(POLL);
    }
    if obs.waiting_on.is_some() {
        // Dependencies first (an app waits for its database); the reconciler records the
        // reason on the deployment, and the PENDING deadline bounds the wait.
        return Plan::wait(POLL);
    }
    if d.needs_build() {
        Plan::go(Building, None, vec![Command::StartBuild])
    } else {
        Plan::go(Deploying, None, vec![Command::StartWorkload])
    }
}

fn plan_building(obs: &Observed) -> Plan {
    use DeploymentStatus::*;
    match &obs.build {
        BuildObservation::NotStarted => Plan::run(vec![Command::StartBuild], POLL),
        BuildObservation::Running => Plan::wait(POLL),
        BuildObservation::Failed { reason } => Plan::go(
            Failed,
            Some(format!("build failed: {reason}")),
            cleanup(Building, obs),
        ),
        BuildObservation::Succeeded { image } => Plan {
            transition: Some(Transition {
                to: Deploying,
                reason: Some(format!("built {image}")),
                image: Some(image.clone()),
            }),
            commands: vec![Command::StartWorkload],
            requeue: Some(Duration::ZERO),
        },
    }
}

fn plan_deploying(obs: &Observed) -> Plan {
    use DeploymentStatus::*;
    match &obs.workload {
        // Start is idempotent, so a workload left created-but-not-started (the control plane
        // died between create and start) is started again rather than waited on.
        WorkloadObservation::Absent | WorkloadObservation::Starting => {
            Plan::run(vec![Command::StartWorkload], START_POLL)
        }
        WorkloadObservation::Running => Plan::go(HealthChecking, None, vec![Command::ProbeHealth]),
        WorkloadObservation::StartFailed { reason } => {
            end(Failed, format!("could not start: {reason}"), Deploying, obs)
        }
        WorkloadObservation::Exited { code, oom_killed } => end(
            Failed,
            format!(
                "exited right after start: {}",
                exit_text(*code, *oom_killed)
            ),
            Deploying,
            obs,
        ),
    }
}

fn plan_health_checking(d: &Deployment, obs: &Observed, now: Timestamp) -> Plan {
    use DeploymentStatus::*;
    match &obs.workload {
        WorkloadObservation::Exited { code, oom_killed } => {
            let reason = format!(
                "exited during health checks after {}: {}",
                fmt_duration(now.since(d.state.since)),
                exit_text(*code, *oom_killed)
            );
            return end(Failed, reason, HealthChecking, obs);
        }
        WorkloadObservation::StartFailed { reason } => {
            return end(
                Failed,
                format!("could not start: {reason}"),
                HealthChecking,
                obs,
            );
        }
        // Gone while being checked (removed by hand, engine restarted): start it again;
        // the deadline bounds how long this may go on.
        WorkloadObservation::Absent | WorkloadObservation::Starting => {
            return Plan::run(vec![Command::StartWorkload], START_POLL);
        }
        WorkloadObservation::Running => {}
    }
    match &obs.health {
        HealthObservation::Passing if obs.routed_here => {
            let commands = obs
                .previous_active
                .map(|previous| vec![Command::RetirePrevious { previous }])
                .unwrap_or_default();
            Plan::go(
                Active,
                Some("health checks passed; traffic switched".into()),
                commands,
            )
        }
        HealthObservation::Passing => Plan::run(vec![Command::SwitchRoute], Duration::ZERO),
        HealthObservation::Unknown => Plan::run(vec![Command::ProbeHealth], Duration::ZERO),
        // Still starting: probe again soon, then every interval, until the phase deadline.
        HealthObservation::NotAnswering { attempts, .. } => Plan::run(
            vec![Command::ProbeHealth],
            probe_backoff(*attempts, interval(d)),
        ),
        HealthObservation::Failing { consecutive, last } => {
            let retries = d.snapshot.settings.health_check_retries;
            if *consecutive >= retries {
                let reason = format!(
                    "health check {} failed {consecutive} time(s) in a row (health_check_retries = {retries}); last answer: {last}",
                    describe_health_check(&d.snapshot.settings.health_check()),
                );
                return end(Failed, reason, HealthChecking, obs);
            }
            // The app answers, wrongly: give it the interval to change its mind.
            Plan::run(vec![Command::ProbeHealth], interval(d))
        }
    }
}

fn plan_active(d: &Deployment, obs: &Observed) -> Plan {
    if obs.held_for_cutover {
        // Stopped on purpose: the deployment in flight restarts it if it fails.
        return Plan::wait(interval(d));
    }
    if obs.service_stopped {
        // The service is stopped: take its route away first (the domain stops answering
        // rather than pointing at nothing), then its workloads. Nothing to look at again until
        // `start` wakes the service.
        let mut commands = Vec::new();
        if obs.routed_here {
            commands.push(Command::RestoreRoute { to: None });
        }
        if obs.workload != WorkloadObservation::Absent {
            commands.push(Command::RemoveWorkload);
        }
        return Plan {
            transition: None,
            commands,
            requeue: None,
        };
    }
    let retries = d.snapshot.settings.health_check_retries;
    let restart = match (&obs.workload, &obs.health) {
        (WorkloadObservation::Exited { code, oom_killed }, _) => Some(format!(
            "workload exited: {}",
            exit_text(*code, *oom_killed)
        )),
        (WorkloadObservation::Absent, _) => Some("workload is gone".to_owned()),
        (_, HealthObservation::Failing { consecutive, last }) if *consecutive >= retries => Some(
            format!("health check failed {consecutive} times in a row (last: {last})"),
        ),
        (_, HealthObservation::NotAnswering { attempts, last }) if *attempts >= retries => Some(
            format!("health check got no answer {attempts} times in a row (last: {last})"),
        ),
        _ => None,
    };
    let mut commands = Vec::new();
    if !obs.routed_here && obs.other_in_flight.is_none() && restart.is_none() {
        // The route table lost us (proxy restarted, manual edit, a stopped service started
        // again): put it back. Not while another deployment is mid-cutover: it holds the
        // route legitimately; not before a workload being restarted runs again (the switch is
        // health-gated, the next pass makes it).
        commands.push(Command::SwitchRoute);
    }
    match restart {
        Some(reason) => commands.push(Command::RestartWorkload { reason }),
        None => commands.push(Command::ProbeHealth),
    }
    Plan::run(commands, interval(d))
}

fn plan_finished(obs: &Observed) -> Plan {
    let mut commands = Vec::new();
    if obs.routed_here {
        commands.push(Command::RestoreRoute {
            to: obs.previous_active,
        });
    }
    if obs.workload != WorkloadObservation::Absent {
        commands.push(Command::RemoveWorkload);
    }
    Plan {
        transition: None,
        commands,
        requeue: None,
    }
}

/// End an in-progress deployment in `status` as FAILED or CANCELLED, cleaning up; the reason
/// says so when a stop-first cutover's previous version is started again.
fn end(to: DeploymentStatus, reason: String, status: DeploymentStatus, obs: &Observed) -> Plan {
    let commands = cleanup(status, obs);
    let restores = commands
        .iter()
        .any(|c| matches!(c, Command::StartPrevious { .. }));
    let reason = if restores {
        format!("{reason}; the previous version was restored (its workloads started again)")
    } else {
        reason
    };
    Plan::go(to, Some(reason), commands)
}

/// What to undo when a deployment in `status` ends FAILED or CANCELLED. The previous ACTIVE is
/// never touched, except to give the route back to it and, after a stop-first cutover began,
/// to start the workloads it stopped again (once this deployment's are gone).
fn cleanup(status: DeploymentStatus, obs: &Observed) -> Vec<Command> {
    let mut commands = Vec::new();
    if obs.routed_here {
        commands.push(Command::RestoreRoute {
            to: obs.previous_active,
        });
    }
    let build_finished = matches!(
        obs.build,
        BuildObservation::Failed { .. } | BuildObservation::Succeeded { .. }
    );
    match status {
        DeploymentStatus::Building if !build_finished => commands.push(Command::CancelBuild),
        DeploymentStatus::Deploying | DeploymentStatus::HealthChecking => {
            match (obs.previous_stopped, obs.previous_active) {
                // The stopped version starts again only once this one's workloads are gone.
                (true, Some(previous)) => {
                    commands.push(Command::RemoveWorkload);
                    commands.push(Command::StartPrevious { previous });
                }
                _ => commands.push(Command::RetireWorkload),
            }
        }
        _ => {}
    }
    commands
}

fn interval(d: &Deployment) -> Duration {
    Duration::from_secs(u64::from(d.snapshot.settings.health_check_interval_s))
}

fn last_observation(status: DeploymentStatus, obs: &Observed) -> String {
    match (status, &obs.health, &obs.build) {
        (DeploymentStatus::HealthChecking, HealthObservation::Failing { consecutive, last }, _) => {
            format!("; health check failed {consecutive} times, last: {last}")
        }
        (
            DeploymentStatus::HealthChecking,
            HealthObservation::NotAnswering { attempts, last },
            _,
        ) => {
            format!(
                "; the app never answered its health check ({attempts} probe(s), last: {last}); \
                 if it needs longer to start, raise deploy_timeout_s"
            )
        }
        (DeploymentStatus::HealthChecking, HealthObservation::Unknown, _) => {
            "; no health probe completed".to_owned()
        }
        (DeploymentStatus::Pending, _, _) => match (obs.other_in_flight, &obs.waiting_on) {
            (Some(n), _) => format!("; still queued behind deployment #{n}"),
            (None, Some(dep)) => format!("; {}", waiting_reason(dep)),
            (None, None) => String::new(),
        },
        (DeploymentStatus::Building, _, BuildObservation::Running) => {
            "; the build was still running and is being cancelled".to_owned()
        }
        _ => String::new(),
    }
}

/// What a PENDING deployment waiting on dependency `dep` says (its `reason` meanwhile).
pub fn waiting_reason(dep: &str) -> String {
    format!("waiting for {dep} to be ACTIVE")
}

fn exit_text(code: Option<i64>, oom_killed: bool) -> String {
    match (code, oom_killed) {
        (_, true) => "killed for exceeding its memory limit (OOM)".to_owned(),
        (Some(c), false) => format!("exit code {c}"),
        (None, false) => "unknown exit status".to_owned(),
    }
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Describe a health check for messages: `HTTP GET :8080/health`.
pub fn describe_health_check(check: &HealthCheck) -> String {
    match check {
        HealthCheck::Http { port, path } => format!("HTTP GET :{port}{path}"),
        HealthCheck::Tcp { port } => format!("TCP connect :{port}"),
        HealthCheck::Running { stable_for } => {
            format!("running without restart for {}", fmt_duration(*stable_for))
        }
    }
}
