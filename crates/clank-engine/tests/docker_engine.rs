//! The deploy engine end to end against the real Docker Engine: deploy, redeploy, failing
//! redeploy, rollback with config restored, cancel, bad images and crash loops, recovery after
//! the control plane dies at each phase, and deadlines across a restart.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable; with `CI` set they fail.

mod common;

use std::time::Duration;

use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Service, ServiceSource, Trigger};
use clank_core::proxy::Proxy;
use clank_core::runtime::{OwnerFilter, Runtime};
use clank_core::{ImageRef, Timestamp};
use clank_engine::EventKind;
use clank_testkit::http;
use clank_testkit::testapp;
use common::Platform;
use futures_util::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_goes_active_serves_and_logs_each_step() {
    let Some(p) = Platform::image_service(|_| {}).await else {
        return;
    };
    let mut events = p.engine.events();
    let d = p.deploy().await;
    let active = p
        .wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    assert_eq!(p.service().await.active_deployment, Some(d.id));
    let statuses: Vec<_> = active.state.history.iter().map(|h| h.to).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Pending,
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
    let addr = p.web_endpoint(d.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    let log = p.engine.deploy_log(d.id).await.unwrap();
    assert!(
        log.iter()
            .any(|l| l.message.contains("health HTTP GET :8080/health passed")),
        "{log:?}"
    );
    // The log tells the story in order: each phase is entered before its work is logged.
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.message.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` missing: {log:?}"))
    };
    assert!(pos("PENDING → DEPLOYING") < pos("started 1 workload"));
    assert!(pos("DEPLOYING → HEALTH_CHECKING") < pos("health HTTP GET"));
    assert!(pos("traffic switched") < pos("HEALTH_CHECKING → ACTIVE"));
    // Every transition was published as an event, in order.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::Transition { to, .. } = e.kind {
            seen.push(to);
        }
    }
    assert_eq!(
        seen,
        [
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_supersedes_the_previous_and_retires_its_workloads() {
    let Some(p) = Platform::image_service(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v2 = p.deploy().await;
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v1 = p.get(v1.id).await;
    assert_eq!(v1.state.status, DeploymentStatus::Superseded);
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
    assert_eq!(
        p.routes
            .route(p.service)
            .await
            .unwrap()
            .unwrap()
            .target
            .deployment,
        v2.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_deploy_starts_while_a_version_that_ignores_sigterm_is_still_stopping() {
    let Some(p) = Platform::image_service(|_| {}).await else {
        return;
    };
    p.set_env("IGNORE_TERM", "1").await;
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v2 = p.deploy().await;
    let v2 = p
        .wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v3 = p.deploy().await;
    let v3 = p
        .wait_for(v3.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.wait_until_retired(v1.id, Duration::from_secs(20)).await;
    p.wait_until_retired(v2.id, Duration::from_secs(20)).await;
    let at = |d: &clank_core::model::Deployment, to: DeploymentStatus| {
        d.state.history.iter().find(|h| h.to == to).unwrap().at
    };
    let removed = p
        .engine
        .deploy_log(v1.id)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.message.contains("stopped and removed"))
        .expect("v1's retirement is in its deploy log")
        .at;
    // The app really ignored SIGTERM: its stop waited out the grace period (2 s here)...
    let stopping = removed.since(at(&v2, DeploymentStatus::Active));
    assert!(
        stopping >= Duration::from_millis(1900),
        "v1 stopped in {stopping:?}"
    );
    // ...and v3 did not wait for it.
    assert!(
        at(&v3, DeploymentStatus::Deploying) < removed,
        "v3 started deploying only after v1 was removed"
    );
    assert_eq!(p.active().await, Some(v3.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_redeploy_leaves_the_previous_version_serving() {
    let Some(p) = Platform::image_service(|s| s.settings.deploy_timeout_s = 5).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let v1_addr = p.web_endpoint(v1.id).await;
    p.set_env("HEALTH", "fail").await;
    let v2 = p.deploy().await;
    let failed = p
        .wait_for(v2.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("HTTP 503"),
        "the reason names what the probe saw: {reason}"
    );
    assert_eq!(p.service().await.active_deployment, Some(v1.id));
    assert_eq!(p.get(v1.id).await.state.status, DeploymentStatus::Active);
    assert_eq!(
        http::get(v1_addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        p.routes
            .route(p.service)
            .await
            .unwrap()
            .unwrap()
            .target
            .deployment,
        v1.id
    );
    // The failed version leaves nothing running (retired in the background).
    p.wait_until_retired(v2.id, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_image_and_the_config_of_the_earlier_deployment() {
    let Some(p) = Platform::image_service(|_| {}).await else {
        return;
    };
    p.set_env("GREETING", "one").await;
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.set_env("GREETING", "two").await;
    let v2 = p.deploy().await;
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let addr = p.web_endpoint(v2.id).await;
    assert_eq!(
        http::get(addr, "/env?GREETING", Duration::from_secs(2))
            .await
            .unwrap()
            .body
            .trim(),
        "two"
    );

    let v3 = p.engine.rollback(p.service, v1.id).await.unwrap();
    assert_eq!(
        v3.trigger,
        Trigger::RollbackOf {
            deployment: v1.id,
            number: v1.number,
            by: None,
        }
    );
    p.wait_for(v3.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let addr = p.web_endpoint(v3.id).await;
    assert_eq!(
        http::get(addr, "/env?GREETING", Duration::from_secs(2))
            .await
            .unwrap()
            .body
            .trim(),
        "one"
    );
    // The rollback also set the service's own config back, so the next deploy keeps "one".
    let resolved = p.engine.resolve_config(&p.service().await).await.unwrap();
    assert_eq!(
        format!("{:?}", resolved.get("GREETING").unwrap().value),
        format!("{:?}", clank_core::config::ConfigValue::Plain("one".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_health_checks_cleans_up_and_keeps_the_previous() {
    let Some(p) = Platform::image_service(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.set_env("HEALTH", "fail").await;
    let v2 = p.deploy().await;
    p.wait_for(
        v2.id,
        DeploymentStatus::HealthChecking,
        Duration::from_secs(30),
    )
    .await;
    p.engine.cancel(v2.id).await.unwrap();
    let cancelled = p
        .wait_for(v2.id, DeploymentStatus::Cancelled, Duration::from_secs(15))
        .await;
    assert_eq!(
        cancelled.state.reason.as_deref(),
        Some("cancelled on request")
    );
    p.wait_until_retired(v2.id, Duration::from_secs(15)).await;
    assert_eq!(p.service().await.active_deployment, Some(v1.id));
    // Cancelling a finished deployment is refused with a reason.
    let err = p.engine.cancel(v1.id).await.unwrap_err();
    assert_eq!(err.kind(), clank_core::ErrorKind::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_fails_with_the_image_named_and_nothing_left() {
    let Some(p) = Platform::image_service(|s| {
        s.source = ServiceSource::DockerImage {
            image: "clank-no-such-image:v404".parse::<ImageRef>().unwrap(),
            credentials_secret: None,
        };
    })
    .await
    else {
        return;
    };
    let (d, reason) = p.deploy_and_fail(Duration::from_secs(60)).await;
    assert!(reason.contains("clank-no-such-image"), "{reason}");
    assert_eq!(p.containers_of(d.id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_workload_fails_with_its_exit_code() {
    let Some(p) = Platform::image_service(|s| {
        s.processes.get_mut("web").unwrap().command = Some(vec![
            testapp::BUSYBOX.into(),
            "sh".into(),
            "-c".into(),
            "echo boom; exit 3".into(),
        ]);
    })
    .await
    else {
        return;
    };
    let (d, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(
        reason.contains("exit") || reason.contains("exited"),
        "{reason}"
    );
    p.wait_until_retired(d.id, Duration::from_secs(15)).await;
}

/// Kill the control plane when the deployment enters `phase`, restart, and check the outcome:
/// the deployment still ends ACTIVE, with exactly one container, and the old one superseded.
async fn recovers_after_dying_in(phase: DeploymentStatus) {
    let Some(mut p) = Platform::image_service(|s| s.settings.deploy_timeout_s = 30).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    // Slow health checks widen the window so the kill lands inside HEALTH_CHECKING.
    p.set_env("HEALTH", "slow").await;
    p.set_env("HEALTH_DELAY", "1").await;
    let mut events = p.engine.events();
    let v2 = p.deploy().await;
    if phase == DeploymentStatus::Pending {
        p.crash_and_restart().await;
    } else {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), events.next())
                .await
                .unwrap()
                .unwrap();
            if matches!(e.kind, EventKind::Transition { to, .. } if to == phase)
                && e.deployment == v2.id
            {
                break;
            }
        }
        p.crash_and_restart().await;
    }
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(40))
        .await;
    assert_eq!(
        p.containers_of(v2.id).await,
        1,
        "no duplicate containers after recovery"
    );
    assert_eq!(
        p.get(v1.id).await.state.status,
        DeploymentStatus::Superseded
    );
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
    // The fresh route table was rebuilt to point at the new version.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(p.routes.routed_to(p.service).await.unwrap(), Some(v2.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_pending_recovers() {
    recovers_after_dying_in(DeploymentStatus::Pending).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_deploying_recovers() {
    recovers_after_dying_in(DeploymentStatus::Deploying).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_while_health_checking_recovers() {
    recovers_after_dying_in(DeploymentStatus::HealthChecking).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_killed_after_activation_keeps_serving_the_new_version() {
    recovers_after_dying_in(DeploymentStatus::Active).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_that_passed_while_down_fails_the_deployment_at_restart() {
    let Some(mut p) = Platform::image_service(|_| {}).await else {
        return;
    };
    if let Some(t) = p.loop_task.take() {
        t.abort();
        let _ = t.await;
    }
    // Record a deployment stuck in DEPLOYING whose deadline passed an hour ago, as if the
    // control plane had been down since.
    let d = p.deploy().await;
    let stored = p.get(d.id).await;
    let mut stuck = stored.value.clone();
    let settings = stuck.snapshot.settings.clone();
    let long_ago = Timestamp(Timestamp::now().as_millis() - 3_600_000);
    stuck
        .state
        .transition(DeploymentStatus::Deploying, None, &settings, long_ago)
        .unwrap();
    p.catalog.save_deployment(&stored, &stuck).await.unwrap();
    p.crash_and_restart().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(10))
        .await;
    assert!(
        failed
            .state
            .reason
            .unwrap()
            .contains("DEPLOYING did not finish in time")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_workloads_of_finished_deployments_are_removed_at_restart() {
    let Some(mut p) = Platform::image_service(|_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    // Pretend the control plane recorded v1 as superseded but died before removing it.
    let stored = p.get(v1.id).await;
    let svc = p
        .catalog
        .require::<Service>(&p.service.to_string())
        .await
        .unwrap();
    let mut gone = stored.value.clone();
    let settings = gone.snapshot.settings.clone();
    gone.state
        .transition(
            DeploymentStatus::Superseded,
            Some("test".into()),
            &settings,
            Timestamp::now(),
        )
        .unwrap();
    let mut s = svc.value.clone();
    s.active_deployment = None;
    let mut b = clank_core::store::catalog::Batch::new();
    b.update(&stored, &gone).unwrap().update(&svc, &s).unwrap();
    p.catalog.commit(b).await.unwrap();
    assert_eq!(p.containers_of(v1.id).await, 1);
    p.crash_and_restart().await;
    p.wait_until_retired(v1.id, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_each_process_type_start_and_only_web_is_routed() {
    let Some(p) = Platform::image_service(|s| {
        s.processes.get_mut("web").unwrap().replicas = 2;
        s.processes.insert(
            "worker".into(),
            clank_core::model::ProcessSpec {
                command: Some(vec![
                    testapp::BUSYBOX.into(),
                    "sh".into(),
                    "-c".into(),
                    "trap 'exit 0' TERM; while true; do sleep 1; done".into(),
                ]),
                replicas: 1,
            },
        );
    })
    .await
    else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let all = p
        .runtime
        .list(&OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap();
    let count = |proc_: &str| all.iter().filter(|w| w.owner.process == proc_).count();
    assert_eq!((count("web"), count("worker")), (2, 1));
    assert!(
        all.iter()
            .filter(|w| w.owner.process == "worker")
            .all(|w| w.endpoint.is_none()),
        "workers publish nothing"
    );
    let route = p.routes.route(p.service).await.unwrap().unwrap();
    assert_eq!(
        route.target.addrs.len(),
        2,
        "both web replicas are routed, the worker is not"
    );
    for addr in route.target.addrs {
        assert_eq!(
            http::get(addr, "/health", Duration::from_secs(2))
                .await
                .unwrap()
                .status,
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deployment_failing_health_checks_is_restarted() {
    let Some(p) = Platform::image_service(|s| s.settings.health_check_retries = 2).await else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let before = p
        .runtime
        .list(&OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap();
    let mut events = p.engine.events();
    // Break the running app's health from inside, as a wedged process would.
    let req = clank_core::runtime::ExecRequest {
        command: vec![
            testapp::BUSYBOX.into(),
            "rm".into(),
            "-f".into(),
            format!("{}/health.ok", testapp::IMAGE_APP_DIR),
        ],
        tty: false,
        timeout: Duration::from_secs(5),
    };
    p.runtime.exec(&before[0].id, &req).await.unwrap();
    let reason = loop {
        let e = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .unwrap()
            .unwrap();
        if let EventKind::Restarted { reason } = e.kind {
            break reason;
        }
    };
    assert!(reason.contains("HTTP 503"), "{reason}");
    // A fresh workload replaced the broken one and serves again; the deployment stayed ACTIVE.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = p
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d.id),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        if let Some(w) = now
            .iter()
            .find(|w| w.id != before[0].id && w.endpoint.is_some())
        {
            if http::get(w.endpoint.unwrap(), "/health", Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no healthy replacement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(p.get(d.id).await.state.status, DeploymentStatus::Active);
    // The route follows the replacement's new address.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = p
            .runtime
            .list(&OwnerFilter {
                deployment: Some(d.id),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        let addrs: Vec<_> = now.iter().filter_map(|w| w.endpoint).collect();
        if p.routes
            .route(p.service)
            .await
            .unwrap()
            .is_some_and(|r| r.target.addrs == addrs)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "route still points at the replaced workload"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
