//! The control plane is killed with SIGKILL at each phase of a deployment — a real
//! `clank-daemon` process on the real Docker Engine — and restarted on the same data
//! directory: nothing is stuck, nothing is duplicated, and the new version ends up serving
//! (or, killed after activation, keeps serving).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use clank_core::runtime::{OwnerFilter, Runtime};
use common::{docker_with_testapp, free_addr, init_at, ok_at, spawn_daemon};
use serde_json::json;

struct Proc {
    child: tokio::process::Child,
    addr: SocketAddr,
}

async fn start(data: &Path, addr: SocketAddr) -> Proc {
    let env = [
        ("CLANK_RUNTIME", "docker"),
        // Many daemons start here: the proxy takes any free port, inside the daemon (these
        // tests are about the engine's recovery; tests/proxy_process.rs kills around a proxy
        // process).
        ("CLANK_PROXY_LISTEN", "127.0.0.1:0"),
        ("CLANK_PROXY_MODE", "embedded"),
    ];
    let child = spawn_daemon(data, addr, &env, Stdio::null()).await;
    Proc { child, addr }
}

async fn status(addr: SocketAddr, token: &str, svc: &str, n: u64) -> String {
    let v = ok_at(
        addr,
        Some(token),
        reqwest::Method::GET,
        &format!("{svc}/deployments/{n}"),
        None,
    )
    .await;
    v["status"].as_str().unwrap().to_owned()
}

async fn kill_in(phase: &str, project: &str) {
    let Some(docker) = docker_with_testapp().await else {
        return;
    };
    // Leftovers of an earlier, interrupted run would own this project's network name.
    remove_project(&docker, project).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut d = start(&data, free_addr()).await;
    let token = init_at(d.addr).await;
    let ws_id = ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::GET,
        "/v1/whoami",
        None,
    )
    .await;
    let _ = ws_id;
    ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": project})),
    )
    .await;
    let envp = format!("/v1/workspaces/acme/projects/{project}/environments/production");
    ok_at(d.addr, Some(&token), reqwest::Method::POST, &format!("{envp}/services"), Some(json!({"slug": "web", "source": {"type": "docker_image", "image": "clank-testapp:latest"}, "settings": {"health_check_interval_s": 1, "deploy_timeout_s": 60}}))).await;
    let svc = format!("{envp}/services/web");
    ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(d.addr, &token, &svc, 1).await;
        if s == "ACTIVE" {
            break;
        }
        assert!(
            s != "FAILED" && tokio::time::Instant::now() < deadline,
            "#1 did not go ACTIVE: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Slow health answers widen HEALTH_CHECKING so the kill can land inside it.
    ok_at(d.addr, Some(&token), reqwest::Method::PATCH, &format!("{svc}/config"), Some(json!({"changes": [{"key": "HEALTH", "value": "slow"}, {"key": "HEALTH_DELAY", "value": "1"}]}))).await;
    ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    if phase != "PENDING" {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while status(d.addr, &token, &svc, 2).await != phase {
            assert!(tokio::time::Instant::now() < deadline, "never saw {phase}");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    // SIGKILL: no shutdown path runs.
    d.child.start_kill().unwrap();
    let _ = d.child.wait().await;
    let seen_at_kill = phase;

    d = start(&data, free_addr()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(d.addr, &token, &svc, 2).await;
        if s == "ACTIVE" {
            break;
        }
        assert!(
            !["FAILED", "CANCELLED"].contains(&s.as_str()),
            "killed in {seen_at_kill}: #2 ended {s}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "killed in {seen_at_kill}: #2 stuck in {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(d.addr, &token, &svc, 1).await, "SUPERSEDED");
    let v2 = ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::GET,
        &format!("{svc}/deployments/2"),
        None,
    )
    .await;
    let id: clank_core::id::DeploymentId = v2["id"].as_str().unwrap().parse().unwrap();
    let v1 = ok_at(
        d.addr,
        Some(&token),
        reqwest::Method::GET,
        &format!("{svc}/deployments/1"),
        None,
    )
    .await;
    let id1: clank_core::id::DeploymentId = v1["id"].as_str().unwrap().parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let new = docker
            .list(&OwnerFilter {
                deployment: Some(id),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        let old = docker
            .list(&OwnerFilter {
                deployment: Some(id1),
                ..OwnerFilter::default()
            })
            .await
            .unwrap();
        if new.len() == 1 && old.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "killed in {seen_at_kill}: {} new and {} old containers",
            new.len(),
            old.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let w = docker
        .list(&OwnerFilter {
            deployment: Some(id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap();
    let r = clank_testkit::http::get(w[0].endpoint.unwrap(), "/health", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(r.status, 200);

    d.child.start_kill().unwrap();
    let _ = d.child.wait().await;
    remove_project(&docker, project).await;
}

async fn remove_project(docker: &clank_docker::DockerRuntime, project: &str) {
    for w in docker
        .list(&OwnerFilter::default())
        .await
        .unwrap_or_default()
    {
        if clank_core::runtime::unscoped_name(&w.name).starts_with(&format!("clank-{project}--")) {
            let _ = docker.remove(&w.id).await;
        }
    }
    clank_testkit::testapp::docker::remove_networks_of_project(docker.client(), project).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_pending_then_restart_converges() {
    kill_in("PENDING", "kill-pending").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_deploying_then_restart_converges() {
    kill_in("DEPLOYING", "kill-deploying").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_health_checking_then_restart_converges() {
    kill_in("HEALTH_CHECKING", "kill-health").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_activation_keeps_the_new_version() {
    kill_in("ACTIVE", "kill-active").await;
}
