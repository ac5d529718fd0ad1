//! A rollback on the real daemon and Docker Engine, over HTTP: it becomes the service's desired
//! state (settings and its own config layer, secrets included), so the next plain deploy keeps
//! the rolled-back version; config inherited from a higher scope is reported, not rewritten.

use std::time::Duration;

mod common;

use common::{Daemon, docker_with_testapp, remove_project_containers};
use reqwest::Method;
use serde_json::{Value, json};

const ENV: &str = "/v1/workspaces/acme/projects/undo/environments/production";
const SVC: &str = "/v1/workspaces/acme/projects/undo/environments/production/services/web";

async fn wait_status(d: &Daemon, token: &str, n: u64, want: &str) -> Value {
    for _ in 0..1200 {
        let v = d
            .ok(token, Method::GET, &format!("{SVC}/deployments/{n}"), None)
            .await;
        if v["status"] == want {
            return v;
        }
        if ["FAILED", "CANCELLED", "SUPERSEDED"].contains(&v["status"].as_str().unwrap()) {
            panic!("deployment #{n} ended {}: {}", v["status"], v["reason"]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment #{n} never became {want}");
}

async fn deploy(d: &Daemon, owner: &str) -> u64 {
    let v = d
        .ok(
            owner,
            Method::POST,
            &format!("{SVC}/deployments"),
            Some(json!({})),
        )
        .await;
    let n = v["number"].as_u64().unwrap();
    wait_status(d, owner, n, "ACTIVE").await;
    n
}

async fn set(d: &Daemon, owner: &str, at: &str, changes: Value) {
    let body = json!({ "changes": changes });
    d.ok(owner, Method::PATCH, &format!("{at}/config"), Some(body))
        .await;
}

/// Whether the running workload's `key` equals `want`, checked inside the container so a
/// secret's value never leaves it.
async fn workload_has(d: &Daemon, owner: &str, key: &str, want: &str) -> bool {
    let script = format!("[ \"${key}\" = \"{want}\" ] && echo same || echo different");
    let out = d
        .ok(
            owner,
            Method::POST,
            &format!("{SVC}/exec"),
            Some(json!({"command": ["/bin/sh", "-c", script]})),
        )
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    out["stdout"].as_str().unwrap().trim() == "same"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_becomes_the_services_config_so_the_next_deploy_keeps_it() {
    if docker_with_testapp().await.is_none() {
        return;
    }
    let d = Daemon::start_on("docker", |_| {}).await;
    remove_project_containers("undo").await;
    let owner = d.init().await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Undo"})),
    )
    .await;
    let settings_1 = json!({"health_check_interval_s": 1, "memory_limit_mb": 256});
    let body = json!({"slug": "web", "source": {"type": "docker_image", "image": "clank-testapp:latest"}, "settings": settings_1});
    d.ok(&owner, Method::POST, &format!("{ENV}/services"), Some(body))
        .await;

    let first_secret = "first-5ecret-9d2";
    let second_secret = "second-5ecret-4a7";
    set(
        &d,
        &owner,
        SVC,
        json!([{"key": "FOO", "value": "1"}, {"key": "TOKEN", "value": first_secret, "secret": true}]),
    )
    .await;
    set(&d, &owner, ENV, json!([{"key": "LEVEL", "value": "a"}])).await;
    assert_eq!(deploy(&d, &owner).await, 1);
    assert!(workload_has(&d, &owner, "TOKEN", first_secret).await);

    set(
        &d,
        &owner,
        SVC,
        json!([{"key": "FOO", "value": "2"}, {"key": "TOKEN", "value": second_secret, "secret": true}]),
    )
    .await;
    set(&d, &owner, ENV, json!([{"key": "LEVEL", "value": "b"}])).await;
    let settings_2 = json!({"health_check_interval_s": 1, "memory_limit_mb": 384});
    d.ok(
        &owner,
        Method::PATCH,
        SVC,
        Some(json!({ "settings": settings_2 })),
    )
    .await;
    assert_eq!(deploy(&d, &owner).await, 2);
    assert!(workload_has(&d, &owner, "FOO", "2").await);
    assert!(workload_has(&d, &owner, "TOKEN", second_secret).await);

    let rb = d
        .ok(
            &owner,
            Method::POST,
            &format!("{SVC}/deployments/1/rollback"),
            Some(json!({})),
        )
        .await;
    assert_eq!(rb["number"], 3);
    // The rollback records who asked for it, as a deploy does.
    let me = d.ok(&owner, Method::GET, "/v1/whoami", None).await;
    assert_eq!(rb["trigger"]["kind"], "rollback_of", "{rb}");
    assert_eq!(rb["trigger"]["by"], me["user"], "{rb}");
    wait_status(&d, &owner, 3, "ACTIVE").await;
    assert!(workload_has(&d, &owner, "FOO", "1").await);
    let log = d
        .ok(
            &owner,
            Method::GET,
            &format!("{SVC}/deployments/3/log"),
            None,
        )
        .await;
    let log = serde_json::to_string(&log).unwrap();
    assert!(
        log.contains("LEVEL: inherited from environment, not restored"),
        "{log}"
    );
    assert!(log.contains("service config FOO, TOKEN"), "{log}");

    // The next plain deploy runs what was rolled back to, not deployment #2's config.
    assert_eq!(deploy(&d, &owner).await, 4);
    assert!(workload_has(&d, &owner, "FOO", "1").await);
    assert!(workload_has(&d, &owner, "TOKEN", first_secret).await);
    assert!(
        workload_has(&d, &owner, "LEVEL", "b").await,
        "a higher scope's value is not rewritten"
    );
    let svc = d.ok(&owner, Method::GET, SVC, None).await;
    assert_eq!(svc["settings"]["memory_limit_mb"], 256, "{svc}");

    let audit = d
        .ok(&owner, Method::GET, "/v1/workspaces/acme/audit", None)
        .await;
    let entry = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "deployment.rollback")
        .expect("the rollback is audited");
    let restored = &entry["details"]["restored"];
    assert_eq!(restored["fields"], json!(["settings"]), "{entry}");
    assert_eq!(restored["config_keys"], json!(["FOO", "TOKEN"]), "{entry}");
    assert_eq!(
        restored["not_restored"],
        json!([{"key": "LEVEL", "inherited_from": "environment"}]),
        "{entry}"
    );
    let text = audit.to_string();
    assert!(!text.contains(first_secret) && !text.contains(second_secret));
    assert!(!log.contains(first_secret) && !log.contains(second_secret));

    d.stop_whatever_the_outcome().await;
    remove_project_containers("undo").await;
}
