//! Table tests for the planner and the cutover, plus a randomized simulation that checks the
//! lifecycle invariants of DESIGN.md §3 after every step.

use std::time::Duration;

use super::*;
use crate::config::ResolvedConfig;
use crate::id::{DeploymentId, EnvironmentId, ProjectId, WorkspaceId};
use crate::model::{Artifact, CancelRequest, Deployment, Service, ServiceSource, Trigger};
use crate::time::Timestamp;

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn image_service() -> Service {
    Service::new(
        WorkspaceId::new(),
        ProjectId::new(),
        EnvironmentId::new(),
        "api",
        ServiceSource::DockerImage {
            image: "registry.local/shop/api:1.0".parse().unwrap(),
            credentials_secret: None,
        },
        T0,
    )
    .unwrap()
}

fn git_service() -> Service {
    Service::new(
        WorkspaceId::new(),
        ProjectId::new(),
        EnvironmentId::new(),
        "web",
        ServiceSource::Git {
            repo_url: "https://git.example.com/shop/web.git".into(),
            branch: "main".into(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: None,
        },
        T0,
    )
    .unwrap()
}

fn new_deployment(service: &mut Service, now: Timestamp) -> Deployment {
    let d = Deployment::new(
        service,
        ResolvedConfig::default(),
        Trigger::Manual { by: None },
        now,
    );
    service.next_deployment_number += 1;
    d
}

/// A deployment of `service` driven through legal transitions up to `status`.
fn deployment_in(service: &mut Service, status: DeploymentStatus) -> Deployment {
    use DeploymentStatus::*;
    let mut d = new_deployment(service, T0);
    let path: &[DeploymentStatus] = match status {
        Pending => &[],
        Building => &[Building],
        Deploying => &[Deploying],
        HealthChecking => &[Deploying, HealthChecking],
        Active => &[Deploying, HealthChecking, Active],
        Superseded => &[Deploying, HealthChecking, Active, Superseded],
        Failed => &[Failed],
        Cancelled => &[Cancelled],
    };
    let settings = d.snapshot.settings.clone();
    for to in path {
        d.state.transition(*to, None, &settings, T0).unwrap();
    }
    d
}

fn failing(consecutive: u32, last: &str) -> HealthObservation {
    HealthObservation::Failing {
        consecutive,
        last: last.into(),
    }
}

struct Case {
    name: &'static str,
    git: bool,
    status: DeploymentStatus,
    obs: Observed,
    cancel: bool,
    /// Milliseconds after T0 at which to plan.
    at_ms: i64,
    to: Option<DeploymentStatus>,
    commands: Vec<Command>,
    reason_has: &'static str,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            git: false,
            status: DeploymentStatus::Pending,
            obs: Observed::default(),
            cancel: false,
            at_ms: 1,
            to: None,
            commands: vec![],
            reason_has: "",
        }
    }
}

#[test]
fn a_failure_counts_once_the_app_has_answered_and_not_before() {
    use HealthObservation::*;
    let refused = || "connection refused".to_owned();
    // Booting: refusals before any answer only count attempts.
    let booting = Unknown.after_probe(false, false, refused());
    assert_eq!(
        booting,
        NotAnswering {
            attempts: 1,
            last: refused()
        }
    );
    let booting = booting.after_probe(false, false, refused());
    assert_eq!(
        booting,
        NotAnswering {
            attempts: 2,
            last: refused()
        }
    );
    // A wrong answer counts at once, also straight after booting.
    assert_eq!(
        booting.after_probe(false, true, "HTTP 404".into()),
        failing(1, "HTTP 404")
    );
    assert_eq!(
        Unknown.after_probe(false, true, "HTTP 404".into()),
        failing(1, "HTTP 404")
    );
    // Refused after it was listening (it passed, or answered wrongly) counts.
    assert_eq!(
        Passing.after_probe(false, false, refused()),
        failing(1, &refused())
    );
    assert_eq!(
        failing(2, "HTTP 500").after_probe(false, false, refused()),
        failing(3, &refused())
    );
    // A pass resets everything.
    assert_eq!(
        failing(2, "HTTP 500").after_probe(true, true, "HTTP 200".into()),
        Passing
    );
}

#[test]
fn planner_table() {
    use DeploymentStatus::*;
    let prev = DeploymentId::new();
    let running = || Observed {
        workload: WorkloadObservation::Running,
        previous_active: Some(prev),
        ..Observed::default()
    };
    let day = 86_400_000;
    let cases = vec![
        Case {
            name: "pending image deployment starts its workload",
            to: Some(Deploying),
            commands: vec![Command::StartWorkload],
            ..Case::default()
        },
        Case {
            name: "pending git deployment starts a build",
            git: true,
            to: Some(Building),
            commands: vec![Command::StartBuild],
            ..Case::default()
        },
        Case {
            name: "pending waits while another deployment of the service is in flight",
            obs: Observed {
                other_in_flight: Some(1),
                ..Observed::default()
            },
            ..Case::default()
        },
        Case {
            name: "queued deployment is cancelled by a newer request",
            obs: Observed {
                newer_queued: Some(7),
                other_in_flight: Some(1),
                ..Observed::default()
            },
            to: Some(Cancelled),
            reason_has: "#7",
            ..Case::default()
        },
        Case {
            name: "pending waits while a dependency has no ACTIVE deployment",
            obs: Observed {
                waiting_on: Some("blog-db".into()),
                ..Observed::default()
            },
            ..Case::default()
        },
        Case {
            name: "pending waiting on a dependency is still cancelled by a newer request",
            obs: Observed {
                waiting_on: Some("blog-db".into()),
                newer_queued: Some(3),
                ..Observed::default()
            },
            to: Some(Cancelled),
            reason_has: "#3",
            ..Case::default()
        },
        Case {
            name: "pending past its deadline while waiting fails naming the dependency",
            obs: Observed {
                waiting_on: Some("blog-db".into()),
                ..Observed::default()
            },
            at_ms: day,
            to: Some(Failed),
            reason_has: "waiting for blog-db to be ACTIVE",
            ..Case::default()
        },
        Case {
            name: "pending cancel request cancels",
            cancel: true,
            to: Some(Cancelled),
            ..Case::default()
        },
        Case {
            name: "pending past its deadline fails naming the queue",
            obs: Observed {
                other_in_flight: Some(1),
                ..Observed::default()
            },
            at_ms: day,
            to: Some(Failed),
            reason_has: "queued behind deployment #1",
            ..Case::default()
        },
        Case {
            name: "running build is waited on",
            git: true,
            status: Building,
            obs: Observed {
                build: BuildObservation::Running,
                ..Observed::default()
            },
            ..Case::default()
        },
        Case {
            name: "build lost in a restart is started again",
            git: true,
            status: Building,
            commands: vec![Command::StartBuild],
            ..Case::default()
        },
        Case {
            name: "failed build fails the deployment with the build's reason",
            git: true,
            status: Building,
            obs: Observed {
                build: BuildObservation::Failed {
                    reason: "step 3: npm ci exited 1".into(),
                },
                previous_active: Some(prev),
                ..Observed::default()
            },
            to: Some(Failed),
            reason_has: "npm ci exited 1",
            ..Case::default()
        },
        Case {
            name: "successful build moves on to deploying",
            git: true,
            status: Building,
            obs: Observed {
                build: BuildObservation::Succeeded {
                    image: "clank/web:v1".parse().unwrap(),
                },
                ..Observed::default()
            },
            to: Some(Deploying),
            commands: vec![Command::StartWorkload],
            ..Case::default()
        },
        Case {
            name: "build past build_timeout is cancelled and fails",
            git: true,
            status: Building,
            obs: Observed {
                build: BuildObservation::Running,
                ..Observed::default()
            },
            at_ms: 601_000,
            to: Some(Failed),
            commands: vec![Command::CancelBuild],
            reason_has: "BUILDING did not finish",
            ..Case::default()
        },
        Case {
            name: "cancel during build cancels the build",
            git: true,
            status: Building,
            cancel: true,
            to: Some(Cancelled),
            commands: vec![Command::CancelBuild],
            ..Case::default()
        },
        Case {
            name: "deploying with no workload starts it",
            status: Deploying,
            commands: vec![Command::StartWorkload],
            ..Case::default()
        },
        Case {
            name: "workload left created but not started is started again",
            status: Deploying,
            obs: Observed {
                workload: WorkloadObservation::Starting,
                ..Observed::default()
            },
            commands: vec![Command::StartWorkload],
            ..Case::default()
        },
        Case {
            name: "running workload moves to health checking",
            status: Deploying,
            obs: running(),
            to: Some(HealthChecking),
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "workload that cannot start fails with the runtime's reason",
            status: Deploying,
            obs: Observed {
                workload: WorkloadObservation::StartFailed {
                    reason: "image `x:1` not found".into(),
                },
                ..Observed::default()
            },
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "image `x:1` not found",
            ..Case::default()
        },
        Case {
            name: "workload killed for memory fails naming OOM",
            status: Deploying,
            obs: Observed {
                workload: WorkloadObservation::Exited {
                    code: Some(137),
                    oom_killed: true,
                },
                ..Observed::default()
            },
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "OOM",
            ..Case::default()
        },
        Case {
            name: "deploying past deploy_timeout fails and removes the workload",
            status: Deploying,
            obs: Observed {
                workload: WorkloadObservation::Starting,
                ..Observed::default()
            },
            at_ms: 300_000,
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            ..Case::default()
        },
        Case {
            name: "first health probe runs at once",
            status: HealthChecking,
            obs: running(),
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "failing probe is retried with backoff",
            status: HealthChecking,
            obs: Observed {
                health: failing(2, "HTTP 503"),
                ..running()
            },
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "health_check_retries answered failures in a row fail before the deadline",
            status: HealthChecking,
            obs: Observed {
                health: failing(3, "HTTP 404"),
                ..running()
            },
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "failed 3 time(s) in a row (health_check_retries = 3); last answer: HTTP 404",
            ..Case::default()
        },
        Case {
            name: "an app that has not answered yet is waited for until the deadline",
            status: HealthChecking,
            obs: Observed {
                health: HealthObservation::NotAnswering {
                    attempts: 40,
                    last: "connection refused".into(),
                },
                ..running()
            },
            at_ms: 299_000,
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "an app that never answered fails at the deadline saying so",
            status: HealthChecking,
            obs: Observed {
                health: HealthObservation::NotAnswering {
                    attempts: 40,
                    last: "connection refused".into(),
                },
                ..running()
            },
            at_ms: 300_000,
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "never answered its health check (40 probe(s), last: connection refused); if it needs longer to start, raise deploy_timeout_s",
            ..Case::default()
        },
        Case {
            name: "healthy but not yet routed switches the route",
            status: HealthChecking,
            obs: Observed {
                health: HealthObservation::Passing,
                ..running()
            },
            commands: vec![Command::SwitchRoute],
            ..Case::default()
        },
        Case {
            name: "healthy and routed becomes active and retires the previous",
            status: HealthChecking,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                ..running()
            },
            to: Some(Active),
            commands: vec![Command::RetirePrevious { previous: prev }],
            ..Case::default()
        },
        Case {
            name: "first deployment becomes active with nothing to retire",
            status: HealthChecking,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                previous_active: None,
                ..running()
            },
            to: Some(Active),
            ..Case::default()
        },
        Case {
            name: "crash during health checks fails with the exit code",
            status: HealthChecking,
            obs: Observed {
                workload: WorkloadObservation::Exited {
                    code: Some(3),
                    oom_killed: false,
                },
                ..running()
            },
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "exit code 3",
            ..Case::default()
        },
        Case {
            name: "health checking that vanished starts the workload again",
            status: HealthChecking,
            obs: Observed {
                workload: WorkloadObservation::Absent,
                ..running()
            },
            commands: vec![Command::StartWorkload],
            ..Case::default()
        },
        Case {
            name: "health deadline fails with the last probe result",
            status: HealthChecking,
            obs: Observed {
                health: failing(9, "HTTP 503"),
                ..running()
            },
            at_ms: 300_000,
            to: Some(Failed),
            commands: vec![Command::RetireWorkload],
            reason_has: "failed 9 times, last: HTTP 503",
            ..Case::default()
        },
        Case {
            name: "deadline after the route switched gives the route back",
            status: HealthChecking,
            obs: Observed {
                health: failing(1, "timed out"),
                routed_here: true,
                ..running()
            },
            at_ms: 300_000,
            to: Some(Failed),
            commands: vec![
                Command::RestoreRoute { to: Some(prev) },
                Command::RetireWorkload,
            ],
            ..Case::default()
        },
        Case {
            name: "cancel after the route switched gives the route back",
            status: HealthChecking,
            cancel: true,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                ..running()
            },
            to: Some(Cancelled),
            commands: vec![
                Command::RestoreRoute { to: Some(prev) },
                Command::RetireWorkload,
            ],
            ..Case::default()
        },
        Case {
            name: "healthy active keeps being probed",
            status: Active,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                ..running()
            },
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "crashed active is restarted",
            status: Active,
            obs: Observed {
                workload: WorkloadObservation::Exited {
                    code: Some(1),
                    oom_killed: false,
                },
                routed_here: true,
                ..running()
            },
            commands: vec![Command::RestartWorkload {
                reason: "workload exited: exit code 1".into(),
            }],
            ..Case::default()
        },
        Case {
            name: "active below the retry count is only probed",
            status: Active,
            obs: Observed {
                health: failing(2, "HTTP 500"),
                routed_here: true,
                ..running()
            },
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "active failing health_check_retries times is restarted",
            status: Active,
            obs: Observed {
                health: failing(3, "HTTP 500"),
                routed_here: true,
                ..running()
            },
            commands: vec![Command::RestartWorkload {
                reason: "health check failed 3 times in a row (last: HTTP 500)".into(),
            }],
            ..Case::default()
        },
        Case {
            name: "active that lost its route gets it back",
            status: Active,
            obs: Observed {
                health: HealthObservation::Passing,
                ..running()
            },
            commands: vec![Command::SwitchRoute, Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "active of a stopped service loses its route, then its workloads",
            status: Active,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                service_stopped: true,
                ..running()
            },
            commands: vec![Command::RestoreRoute { to: None }, Command::RemoveWorkload],
            ..Case::default()
        },
        Case {
            name: "active of a stopped service with nothing left is neither restarted nor routed",
            status: Active,
            obs: Observed {
                workload: WorkloadObservation::Absent,
                service_stopped: true,
                ..running()
            },
            ..Case::default()
        },
        Case {
            name: "active started again restarts its workloads before taking its route back",
            status: Active,
            obs: Observed {
                workload: WorkloadObservation::Absent,
                ..running()
            },
            commands: vec![Command::RestartWorkload {
                reason: "workload is gone".into(),
            }],
            ..Case::default()
        },
        Case {
            name: "active ignores a cancel request and deadlines",
            status: Active,
            cancel: true,
            at_ms: 10 * day,
            obs: Observed {
                health: HealthObservation::Passing,
                routed_here: true,
                ..running()
            },
            commands: vec![Command::ProbeHealth],
            ..Case::default()
        },
        Case {
            name: "failed deployment's leftover workload is removed",
            status: Failed,
            obs: running(),
            commands: vec![Command::RemoveWorkload],
            ..Case::default()
        },
        Case {
            name: "superseded deployment's leftover workload is removed",
            status: Superseded,
            obs: running(),
            commands: vec![Command::RemoveWorkload],
            ..Case::default()
        },
        Case {
            name: "finished deployment with nothing left does nothing",
            status: Cancelled,
            ..Case::default()
        },
        Case {
            name: "stop-first deployment that cannot start restores the previous version",
            status: Deploying,
            obs: Observed {
                workload: WorkloadObservation::StartFailed {
                    reason: "image `x:1` not found".into(),
                },
                previous_stopped: true,
                ..running()
            },
            to: Some(Failed),
            commands: vec![
                Command::RemoveWorkload,
                Command::StartPrevious { previous: prev },
            ],
            reason_has: "the previous version was restored",
            ..Case::default()
        },
        Case {
            name: "stop-first deployment failing its health checks restores the previous version",
            status: HealthChecking,
            obs: Observed {
                health: failing(9, "HTTP 503"),
                previous_stopped: true,
                ..running()
            },
            at_ms: 300_000,
            to: Some(Failed),
            commands: vec![
                Command::RemoveWorkload,
                Command::StartPrevious { previous: prev },
            ],
            reason_has: "HTTP 503; the previous version was restored",
            ..Case::default()
        },
        Case {
            name: "stop-first deployment cancelled while queued has stopped nothing",
            cancel: true,
            obs: Observed {
                previous_stopped: true,
                ..running()
            },
            to: Some(Cancelled),
            ..Case::default()
        },
        Case {
            name: "active stopped for a stop-first cutover is neither probed nor restarted",
            status: Active,
            obs: Observed {
                workload: WorkloadObservation::Exited {
                    code: Some(0),
                    oom_killed: false,
                },
                held_for_cutover: true,
                other_in_flight: Some(2),
                ..running()
            },
            ..Case::default()
        },
    ];
    for case in cases {
        let mut service = if case.git {
            git_service()
        } else {
            image_service()
        };
        let mut d = deployment_in(&mut service, case.status);
        if case.cancel {
            d.state.cancel = Some(CancelRequest { at: T0, by: None });
        }
        let p = plan(&d, &case.obs, Timestamp(T0.0 + case.at_ms));
        assert_eq!(
            p.transition.as_ref().map(|t| t.to),
            case.to,
            "{}: transition",
            case.name
        );
        assert_eq!(p.commands, case.commands, "{}: commands", case.name);
        let reason = p
            .transition
            .as_ref()
            .and_then(|t| t.reason.clone())
            .unwrap_or_default();
        assert!(
            reason.contains(case.reason_has),
            "{}: reason `{reason}` lacks `{}`",
            case.name,
            case.reason_has
        );
        if let Some(t) = &p.transition {
            assert!(
                case.status.can_transition_to(t.to),
                "{}: planned an illegal transition",
                case.name
            );
            assert_eq!(
                p.requeue.is_none(),
                t.to.is_terminal(),
                "{}: requeue",
                case.name
            );
        }
    }
}

/// Every observation combination the planner can see, for the exhaustive invariant tests.
fn observation_grid(prev: Option<DeploymentId>) -> Vec<Observed> {
    let builds = [
        BuildObservation::NotStarted,
        BuildObservation::Running,
        BuildObservation::Succeeded {
            image: "clank/x:v1".parse().unwrap(),
        },
        BuildObservation::Failed {
            reason: "boom".into(),
        },
    ];
    let workloads = [
        WorkloadObservation::Absent,
        WorkloadObservation::Starting,
        WorkloadObservation::Running,
        WorkloadObservation::Exited {
            code: Some(1),
            oom_killed: false,
        },
        WorkloadObservation::StartFailed {
            reason: "port taken".into(),
        },
    ];
    let healths = [
        HealthObservation::Unknown,
        HealthObservation::Passing,
        failing(1, "HTTP 500"),
        failing(5, "HTTP 500"),
        HealthObservation::NotAnswering {
            attempts: 7,
            last: "connection refused".into(),
        },
    ];
    let mut out = Vec::new();
    for build in &builds {
        for workload in &workloads {
            for health in &healths {
                for routed_here in [false, true] {
                    for queue in [
                        (None, None, None),
                        (Some(9), None, None),
                        (None, Some(1), None),
                        (None, None, Some("db")),
                    ] {
                        for (previous_stopped, service_stopped) in
                            [(false, false), (true, false), (false, true)]
                        {
                            out.push(Observed {
                                previous_active: prev,
                                newer_queued: queue.0,
                                other_in_flight: queue.1,
                                waiting_on: queue.2.map(str::to_owned),
                                build: build.clone(),
                                workload: workload.clone(),
                                health: health.clone(),
                                routed_here,
                                previous_stopped,
                                held_for_cutover: false,
                                service_stopped,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn deadline_that_passed_while_the_control_plane_was_down_fails_every_in_progress_phase() {
    let prev = Some(DeploymentId::new());
    for git in [false, true] {
        for status in DeploymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_in_progress())
        {
            let mut service = if git { git_service() } else { image_service() };
            let d = deployment_in(&mut service, status);
            let deadline = d
                .state
                .deadline
                .expect("in-progress phases carry a deadline");
            // A week after the deadline, whatever the world looks like now.
            let now = deadline.saturating_add(Duration::from_secs(7 * 86_400));
            for obs in observation_grid(prev) {
                let p = plan(&d, &obs, now);
                let t = p
                    .transition
                    .unwrap_or_else(|| panic!("{status}: no transition for {obs:?}"));
                assert_eq!(t.to, DeploymentStatus::Failed, "{status} {obs:?}");
                assert!(t.reason.unwrap().contains("did not finish in time"));
            }
        }
    }
}

#[test]
fn failure_or_cancel_never_touches_the_previous_active() {
    let prev = DeploymentId::new();
    for git in [false, true] {
        for status in DeploymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_in_progress())
        {
            for cancel in [false, true] {
                for at in [
                    T0.saturating_add(Duration::from_millis(1)),
                    T0.saturating_add(Duration::from_secs(86_400)),
                ] {
                    for obs in observation_grid(Some(prev)) {
                        let mut service = if git { git_service() } else { image_service() };
                        let mut d = deployment_in(&mut service, status);
                        if cancel {
                            d.state.cancel = Some(CancelRequest { at: T0, by: None });
                        }
                        let p = plan(&d, &obs, at);
                        let Some(t) = &p.transition else { continue };
                        if !matches!(t.to, DeploymentStatus::Failed | DeploymentStatus::Cancelled) {
                            continue;
                        }
                        for c in &p.commands {
                            match c {
                                Command::SwitchRoute
                                | Command::RetirePrevious { .. }
                                | Command::RestartWorkload { .. } => {
                                    panic!(
                                        "{status} -> {}: {c:?} would disturb the running version",
                                        t.to
                                    )
                                }
                                Command::RestoreRoute { to } => assert_eq!(*to, Some(prev)),
                                Command::StartPrevious { previous } => {
                                    assert_eq!(*previous, prev)
                                }
                                _ => {}
                            }
                        }
                        // A stop-first cutover that got as far as starting gives the stopped
                        // version back, after this one's workloads are gone, and says so.
                        let started = matches!(
                            status,
                            DeploymentStatus::Deploying | DeploymentStatus::HealthChecking
                        );
                        let restore = p
                            .commands
                            .iter()
                            .position(|c| matches!(c, Command::StartPrevious { .. }));
                        assert_eq!(
                            restore.is_some(),
                            obs.previous_stopped && started,
                            "{obs:?}"
                        );
                        if let Some(i) = restore {
                            assert_eq!(i, p.commands.len() - 1);
                            assert!(p.commands.contains(&Command::RemoveWorkload));
                            let reason = t.reason.as_deref().unwrap_or_default();
                            assert!(reason.contains("previous version was restored"), "{reason}");
                        }
                        assert_eq!(
                            p.commands
                                .iter()
                                .any(|c| matches!(c, Command::RestoreRoute { .. })),
                            obs.routed_here,
                            "route is given back exactly when it had been switched"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn planner_only_plans_legal_transitions() {
    for git in [false, true] {
        for status in DeploymentStatus::ALL {
            for obs in observation_grid(Some(DeploymentId::new())) {
                let mut service = if git { git_service() } else { image_service() };
                let d = deployment_in(&mut service, status);
                for at_ms in [1, 400_000, 10_000_000] {
                    if let Some(t) = plan(&d, &obs, Timestamp(T0.0 + at_ms)).transition {
                        assert!(status.can_transition_to(t.to), "{status} -> {}", t.to);
                    }
                }
            }
        }
    }
}

#[test]
fn transition_records_history_and_stores_an_absolute_deadline() {
    let mut service = image_service();
    let mut d = new_deployment(&mut service, T0);
    assert_eq!(
        d.state.deadline,
        Some(T0.saturating_add(
            phase_timeout(DeploymentStatus::Pending, &d.snapshot.settings).unwrap()
        ))
    );
    let settings = d.snapshot.settings.clone();
    let t1 = Timestamp(T0.0 + 1_000);
    d.state
        .transition(DeploymentStatus::Deploying, None, &settings, t1)
        .unwrap();
    assert_eq!(
        d.state.deadline,
        Some(t1.saturating_add(Duration::from_secs(300)))
    );
    let t2 = Timestamp(T0.0 + 5_000);
    d.state
        .transition(DeploymentStatus::HealthChecking, None, &settings, t2)
        .unwrap();
    assert_eq!(
        d.state.deadline,
        Some(t1.saturating_add(Duration::from_secs(300))),
        "health checks share the deploy budget"
    );
    d.state
        .transition(DeploymentStatus::Failed, Some("x".into()), &settings, t2)
        .unwrap();
    assert_eq!(d.state.deadline, None);
    let statuses: Vec<_> = d.state.history.iter().map(|h| h.to).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Pending,
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Failed
        ]
    );
    assert_eq!(d.state.reason.as_deref(), Some("x"));
}

#[test]
fn illegal_transition_is_refused_and_changes_nothing() {
    let mut service = image_service();
    let mut d = deployment_in(&mut service, DeploymentStatus::Failed);
    let before = d.clone();
    let settings = d.snapshot.settings.clone();
    let err = d
        .state
        .transition(DeploymentStatus::Active, None, &settings, T0)
        .unwrap_err();
    assert!(matches!(err, crate::Error::IllegalTransition { .. }));
    assert_eq!(d, before);
}

#[test]
fn activation_supersedes_the_previous_and_moves_the_pointer() {
    let mut service = image_service();
    let mut v1 = deployment_in(&mut service, DeploymentStatus::HealthChecking);
    activate(&mut service, &mut v1, None, T0).unwrap();
    let mut v2 = deployment_in(&mut service, DeploymentStatus::HealthChecking);
    activate(&mut service, &mut v2, Some(&mut v1), T0).unwrap();
    assert_eq!(v1.state.status, DeploymentStatus::Superseded);
    assert_eq!(v2.state.status, DeploymentStatus::Active);
    assert_eq!(service.active_deployment, Some(v2.id));
    assert!(
        v1.state
            .reason
            .as_deref()
            .unwrap()
            .contains(&format!("#{}", v2.number))
    );
    check_service_invariants(&service, &[v1, v2]).unwrap();
}

#[test]
fn racing_activation_with_a_stale_previous_is_refused_and_changes_nothing() {
    let mut service = image_service();
    let mut v1 = deployment_in(&mut service, DeploymentStatus::HealthChecking);
    let mut v2 = deployment_in(&mut service, DeploymentStatus::HealthChecking);
    activate(&mut service, &mut v1, None, T0).unwrap();
    // v2 believes there is no ACTIVE yet: its cutover must not create a second one.
    let (s_before, v2_before) = (service.clone(), v2.clone());
    assert!(activate(&mut service, &mut v2, None, T0).is_err());
    assert_eq!((service.clone(), v2.clone()), (s_before, v2_before));
    check_service_invariants(&service, &[v1, v2]).unwrap();
}

#[test]
fn rollback_is_a_new_deployment_with_the_old_image_and_config() {
    let mut service = git_service();
    let mut v1 = deployment_in(&mut service, DeploymentStatus::Building);
    v1.state.set_image("clank/web:v1".parse().unwrap()).unwrap();
    v1.snapshot.config = ResolvedConfig::default();
    let ada = crate::id::UserId::new();
    let rb = Deployment::rollback_of(&service, &v1, Some(ada), T0).unwrap();
    assert_ne!(rb.id, v1.id);
    assert_eq!(rb.number, service.next_deployment_number);
    assert_eq!(
        rb.snapshot.artifact,
        Artifact::Image {
            image: "clank/web:v1".parse().unwrap()
        }
    );
    assert_eq!(rb.snapshot.config, v1.snapshot.config);
    assert_eq!(
        rb.trigger,
        Trigger::RollbackOf {
            deployment: v1.id,
            number: v1.number,
            by: Some(ada),
        }
    );
    assert_eq!(
        rb.trigger.by(),
        Some(ada),
        "the rollback records who asked for it"
    );
    assert!(!rb.needs_build(), "a rollback never rebuilds");
    assert_eq!(rb.state.status, DeploymentStatus::Pending);
}

#[test]
fn rollback_to_a_deployment_that_never_built_is_refused() {
    let mut service = git_service();
    let failed = deployment_in(&mut service, DeploymentStatus::Failed);
    let err = Deployment::rollback_of(&service, &failed, None, T0).unwrap_err();
    assert_eq!(err.field(), Some("deployment"));
}

#[test]
fn rollback_to_another_services_deployment_is_refused() {
    let mut a = image_service();
    let b = image_service();
    let d = deployment_in(&mut a, DeploymentStatus::Active);
    assert_eq!(
        Deployment::rollback_of(&b, &d, None, T0)
            .unwrap_err()
            .kind(),
        crate::ErrorKind::Invalid
    );
}

#[test]
fn built_image_cannot_be_replaced_once_set() {
    let mut service = git_service();
    let mut d = deployment_in(&mut service, DeploymentStatus::Building);
    d.state.set_image("clank/web:v1".parse().unwrap()).unwrap();
    d.state.set_image("clank/web:v1".parse().unwrap()).unwrap();
    assert!(d.state.set_image("clank/web:v2".parse().unwrap()).is_err());
}

/// A tiny deterministic PRNG so the simulation needs no dependency and replays exactly.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Drive one service through thousands of random requests, cancels, crashes, failures, clock
/// jumps (including multi-day "control plane was down" gaps) with a mini reconciler built on
/// `plan` + `activate`, checking every invariant after every step.
#[test]
fn random_lifecycles_keep_every_invariant() {
    let mut reached = std::collections::BTreeMap::<DeploymentStatus, usize>::new();
    for seed in 1..=40u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut service = if seed % 2 == 0 {
            git_service()
        } else {
            image_service()
        };
        let mut deployments: Vec<Deployment> = Vec::new();
        let mut route: Option<DeploymentId> = None;
        let mut now = T0;
        for _step in 0..400 {
            match rng.below(10) {
                0 | 1 => deployments.push(new_deployment(&mut service, now)),
                2 => {
                    if !deployments.is_empty() {
                        let i = rng.below(deployments.len() as u64) as usize;
                        deployments[i].state.cancel = Some(CancelRequest { at: now, by: None });
                    }
                }
                3 => now = now.saturating_add(Duration::from_secs(rng.below(3 * 86_400))),
                _ => now = now.saturating_add(Duration::from_millis(rng.below(5_000))),
            }
            for i in 0..deployments.len() {
                let d = &deployments[i];
                let obs = Observed {
                    waiting_on: None,
                    service_stopped: false,
                    previous_active: service.active_deployment.filter(|a| *a != d.id),
                    newer_queued: deployments
                        .iter()
                        .filter(|o| {
                            o.number > d.number && o.state.status == DeploymentStatus::Pending
                        })
                        .map(|o| o.number)
                        .max(),
                    other_in_flight: deployments
                        .iter()
                        .find(|o| {
                            o.id != d.id
                                && o.state.status.is_in_progress()
                                && o.state.status != DeploymentStatus::Pending
                        })
                        .map(|o| o.number),
                    build: match rng.below(4) {
                        0 => BuildObservation::Running,
                        1 => BuildObservation::Failed {
                            reason: "exit 1".into(),
                        },
                        _ => BuildObservation::Succeeded {
                            image: format!("clank/web:v{}", d.number).parse().unwrap(),
                        },
                    },
                    workload: match rng.below(6) {
                        0 => WorkloadObservation::Exited {
                            code: Some(1),
                            oom_killed: false,
                        },
                        1 => WorkloadObservation::Starting,
                        _ => WorkloadObservation::Running,
                    },
                    health: match rng.below(3) {
                        0 => failing(1, "HTTP 500"),
                        _ => HealthObservation::Passing,
                    },
                    routed_here: route == Some(d.id),
                    previous_stopped: rng.below(2) == 0,
                    held_for_cutover: false,
                };
                let p = plan(d, &obs, now);
                let active_before = service.active_deployment;
                for c in &p.commands {
                    match c {
                        Command::SwitchRoute => route = Some(d.id),
                        Command::RestoreRoute { to } => route = *to,
                        _ => {}
                    }
                }
                if let Some(t) = p.transition {
                    if t.to == DeploymentStatus::Active {
                        let prev_idx = deployments
                            .iter()
                            .position(|o| Some(o.id) == service.active_deployment);
                        let (next, prev) = match prev_idx {
                            Some(j) if j < i => {
                                let (a, b) = deployments.split_at_mut(i);
                                (&mut b[0], Some(&mut a[j]))
                            }
                            Some(j) => {
                                let (a, b) = deployments.split_at_mut(j);
                                (&mut a[i], Some(&mut b[0]))
                            }
                            None => (&mut deployments[i], None),
                        };
                        activate(&mut service, next, prev, now).unwrap();
                    } else {
                        let d = &mut deployments[i];
                        let settings = d.snapshot.settings.clone();
                        if let Some(image) = t.image {
                            d.state.set_image(image).unwrap();
                        }
                        d.state.transition(t.to, t.reason, &settings, now).unwrap();
                        if matches!(t.to, DeploymentStatus::Failed | DeploymentStatus::Cancelled) {
                            assert_eq!(
                                service.active_deployment, active_before,
                                "seed {seed}: failure moved the ACTIVE pointer"
                            );
                        }
                    }
                }
                check_service_invariants(&service, &deployments)
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            }
            for d in &deployments {
                if d.state.status.is_in_progress() {
                    assert!(
                        d.state.deadline.is_some_and(|dl| dl > now),
                        "seed {seed}: #{} {} past its deadline after a reconcile",
                        d.number,
                        d.state.status
                    );
                }
                if d.state.status.is_terminal() {
                    assert_ne!(
                        route,
                        Some(d.id),
                        "seed {seed}: traffic routed to finished #{}",
                        d.number
                    );
                }
            }
            for d in &deployments {
                *reached.entry(d.state.status).or_default() += 1;
            }
            let in_flight = deployments
                .iter()
                .filter(|d| {
                    d.state.status.is_in_progress() && d.state.status != DeploymentStatus::Pending
                })
                .count();
            assert!(
                in_flight <= 1,
                "seed {seed}: {in_flight} deployments in flight at once"
            );
        }
    }
    // The simulation must actually exercise the lifecycle, or it proves nothing.
    for st in DeploymentStatus::ALL {
        assert!(
            reached.get(&st).copied().unwrap_or(0) > 0,
            "no deployment ever reached {st}: {reached:?}"
        );
    }
}

/// A deployment of an image service whose endpoint is `endpoint`, with `config`.
fn endpoint_deployment(
    service: &mut Service,
    endpoint: crate::model::Endpoint,
    config: ResolvedConfig,
) -> Deployment {
    service.endpoint = Some(endpoint);
    service.settings.port = Some(8080);
    let d = Deployment::new(service, config, Trigger::Manual { by: None }, T0);
    service.next_deployment_number += 1;
    d
}

fn byo(ip: &str, port: u16) -> crate::model::Endpoint {
    crate::model::Endpoint::ByoProxy {
        host_ip: ip.parse().unwrap(),
        host_port: port,
    }
}

#[test]
fn redeploy_on_the_fixed_host_address_the_active_holds_is_stop_first() {
    use crate::id::ServerId;
    let lan = || crate::model::Endpoint::LanOnly {
        domains: vec!["api.lan".into()],
    };
    let server = ServerId::new();
    // (case, active's endpoint and server, new one's endpoint and server, stop-first?)
    type Side = (crate::model::Endpoint, Option<ServerId>);
    let cases: Vec<(&str, Side, Side, bool)> = vec![
        (
            "same address and port",
            (byo("127.0.0.1", 9000), None),
            (byo("127.0.0.1", 9000), None),
            true,
        ),
        (
            "the unspecified address holds the port on every address",
            (byo("0.0.0.0", 9000), None),
            (byo("127.0.0.1", 9000), None),
            true,
        ),
        (
            "same address and port on the same remote server",
            (byo("127.0.0.1", 9000), Some(server)),
            (byo("127.0.0.1", 9000), Some(server)),
            true,
        ),
        (
            "another port",
            (byo("127.0.0.1", 9000), None),
            (byo("127.0.0.1", 9001), None),
            false,
        ),
        (
            "another address",
            (byo("127.0.0.1", 9000), None),
            (byo("127.0.0.2", 9000), None),
            false,
        ),
        (
            "another server",
            (byo("127.0.0.1", 9000), None),
            (byo("127.0.0.1", 9000), Some(server)),
            false,
        ),
        (
            "from a routed endpoint to byo_proxy",
            (lan(), None),
            (byo("127.0.0.1", 9000), None),
            false,
        ),
        (
            "routed endpoints run side by side",
            (lan(), None),
            (lan(), None),
            false,
        ),
    ];
    for (name, (old_endpoint, old_server), (new_endpoint, new_server), stop_first) in cases {
        let mut service = image_service();
        service.server_id = old_server;
        let active = endpoint_deployment(&mut service, old_endpoint, ResolvedConfig::default());
        service.server_id = new_server;
        let next = endpoint_deployment(&mut service, new_endpoint, ResolvedConfig::default());
        let got = cutover_strategy(&next, Some(&active));
        assert_eq!(
            matches!(got, CutoverStrategy::StopFirst { .. }),
            stop_first,
            "{name}: {got:?}"
        );
        if let CutoverStrategy::StopFirst(why) = got {
            assert_eq!(
                why,
                StopFirst::HeldAddress(crate::endpoint::fixed_publish(&next.snapshot).unwrap())
            );
        }
    }
}

#[test]
fn redeploy_sharing_an_unshared_volume_is_stop_first_for_every_process() {
    use crate::id::ServerId;
    use crate::model::VolumeMount;
    let vol = |name: &str, shared: bool| VolumeMount {
        name: name.into(),
        mount_path: "/data".into(),
        shared,
    };
    let server = ServerId::new();
    // (case, active's volumes and server, new one's volumes and server, single-writer names)
    type Side = (Vec<VolumeMount>, Option<ServerId>);
    let cases: Vec<(&str, Side, Side, Option<Vec<&str>>)> = vec![
        (
            "same volume",
            (vec![vol("pg", false)], None),
            (vec![vol("pg", false)], None),
            Some(vec!["pg"]),
        ),
        (
            "declared shared by both",
            (vec![vol("uploads", true)], None),
            (vec![vol("uploads", true)], None),
            None,
        ),
        (
            "shared by only the new version",
            (vec![vol("uploads", false)], None),
            (vec![vol("uploads", true)], None),
            Some(vec!["uploads"]),
        ),
        (
            "only the unshared one counts",
            (vec![vol("uploads", true), vol("pg", false)], None),
            (vec![vol("uploads", true), vol("pg", false)], None),
            Some(vec!["pg"]),
        ),
        (
            "different volumes",
            (vec![vol("a", false)], None),
            (vec![vol("b", false)], None),
            None,
        ),
        ("no volumes", (vec![], None), (vec![], None), None),
        (
            "moved to another server (its own engine, its own volume)",
            (vec![vol("pg", false)], None),
            (vec![vol("pg", false)], Some(server)),
            None,
        ),
    ];
    for (name, (old_volumes, old_server), (new_volumes, new_server), want) in cases {
        let mut service = image_service();
        service.server_id = old_server;
        service.volumes = old_volumes;
        let active = new_deployment(&mut service, T0);
        service.server_id = new_server;
        service.volumes = new_volumes;
        let next = new_deployment(&mut service, T0);
        let got = cutover_strategy(&next, Some(&active));
        let want = want.map(|names| {
            CutoverStrategy::StopFirst(StopFirst::SingleWriterVolumes(
                names.into_iter().map(str::to_owned).collect(),
            ))
        });
        assert_eq!(got, want.unwrap_or(CutoverStrategy::StartFirst), "{name}");
        if let CutoverStrategy::StopFirst(why) = &got {
            assert!(
                why.stops("web") && why.stops("worker"),
                "{name}: every process swaps"
            );
        }
    }
    // A held address alone swaps only the web workloads.
    let address = StopFirst::HeldAddress(crate::runtime::PortBinding::loopback());
    assert!(address.stops("web") && !address.stops("worker"));
}

#[test]
fn first_deployment_or_a_private_service_is_start_first() {
    let mut service = image_service();
    let d = endpoint_deployment(
        &mut service,
        byo("127.0.0.1", 9000),
        ResolvedConfig::default(),
    );
    assert_eq!(cutover_strategy(&d, None), CutoverStrategy::StartFirst);
    assert_eq!(cutover_strategy(&d, Some(&d)), CutoverStrategy::StartFirst);
    // Not public: no endpoint is applied, so nothing is published on the fixed address.
    let active = d;
    service.settings.is_public = false;
    let private = endpoint_deployment(
        &mut service,
        byo("127.0.0.1", 9000),
        ResolvedConfig::default(),
    );
    assert_eq!(
        cutover_strategy(&private, Some(&active)),
        CutoverStrategy::StartFirst
    );
}

#[test]
fn tunnel_without_its_token_secret_fails_before_anything_starts() {
    use crate::config::{ConfigChange, ConfigLayer, Scope, apply_bulk, resolve};
    use crate::secret::{KeyId, Keyring};
    let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
    let tunnel = || crate::model::Endpoint::CloudflareTunnel {
        hostname: "shop.example.com".into(),
        token_secret: "CF_TUNNEL_TOKEN".into(),
    };
    let mut service = image_service();
    let layer = |change: ConfigChange| {
        let base = ConfigLayer::new(Scope::Service(service.id));
        resolve(&[apply_bulk(&base, &[change], &keyring, T0).unwrap()]).unwrap()
    };
    let missing = layer(ConfigChange::set_plain("OTHER", "x"));
    let plain = layer(ConfigChange::set_plain("CF_TUNNEL_TOKEN", "eyJ-token"));
    let secret = layer(ConfigChange::set_secret("CF_TUNNEL_TOKEN", "eyJ-token"));
    let obs = Observed::default();
    for (config, refused) in [
        (missing, Some("`CF_TUNNEL_TOKEN` is not set")),
        (plain, Some("`CF_TUNNEL_TOKEN` is a plain variable")),
        (secret, None),
    ] {
        let d = endpoint_deployment(&mut service, tunnel(), config);
        let p = plan(&d, &obs, T0.saturating_add(Duration::from_millis(1)));
        let t = p.transition.unwrap();
        match refused {
            Some(why) => {
                assert_eq!(t.to, DeploymentStatus::Failed);
                let reason = t.reason.unwrap();
                assert!(reason.contains(why), "{reason}");
                assert!(!reason.contains("eyJ-token"), "{reason}");
                assert_eq!(p.commands, vec![]);
            }
            None => {
                assert_eq!(t.to, DeploymentStatus::Deploying);
                assert_eq!(p.commands, vec![Command::StartWorkload]);
            }
        }
    }
}
