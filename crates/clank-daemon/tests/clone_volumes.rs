//! Cloning an environment with its volumes' data, on the real daemon and Docker Engine over
//! HTTP: production's service writes a file to its volume; a clone asked to copy volumes
//! starts with that file in its own new volume (the report names the copy and notes that the
//! source was running), a write in the clone never reaches production, and a clone without
//! the option starts empty. Fails (never skips) without a Docker Engine when CI is set; every
//! container, network and volume of the test is removed.

mod common;

use common::{Daemon, docker_cli, docker_with_testapp, remove_project_leftovers};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PROJECT: &str = "/v1/workspaces/acme/projects/clonedata";
const TOKEN: &str = "written-in-production-4f1c";

/// Removes the project's containers, networks and volumes, also after a panic.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_project_leftovers("clonedata");
    }
}

fn db(env: &str) -> String {
    format!("{PROJECT}/environments/{env}/services/db")
}

/// Run `args` in the running container of `env`'s `db`: its stdout, trimmed; panics if the
/// command fails.
fn exec_in(env: &str, args: &[&str]) -> String {
    let filter = format!("name=--clonedata--{env}--db--");
    let ids = docker_cli(&["ps", "-q", "--filter", &filter]);
    assert_eq!(ids.len(), 1, "one running container of {env}/db: {ids:?}");
    let out = std::process::Command::new("docker")
        .arg("exec")
        .arg(&ids[0])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?} in {env}/db: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn read_data(env: &str) -> String {
    exec_in(env, &["/bin/busybox", "cat", "/data/data.txt"])
}

fn write_data(env: &str, value: &str) {
    let script = format!("echo {value} > /data/data.txt");
    exec_in(env, &["/bin/busybox", "sh", "-c", &script]);
}

async fn clone(d: &Daemon, owner: &str, name: &str, copy_volumes: bool) -> Value {
    let (s, report) = d
        .call(
            Some(owner),
            Method::POST,
            &format!("{PROJECT}/environments/production/clone"),
            Some(json!({"name": name, "deploy": true, "copy_volumes": copy_volumes})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{report}");
    let n = report["services"][0]["deployment"]
        .as_u64()
        .expect("deployed");
    d.wait_active(owner, &db(name), n).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clone_asked_to_copy_volumes_starts_with_the_data_and_then_lives_apart() {
    if docker_with_testapp().await.is_none() {
        return;
    }
    remove_project_leftovers("clonedata");
    let _cleanup = Cleanup;
    let d = Daemon::start_on("docker", |_| {}).await;
    let owner = d.init().await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Clonedata"})),
    )
    .await;
    let spec = json!({
        "slug": "db",
        "source": {"type": "docker_image", "image": "clank-testapp:latest"},
        "settings": {"health_check_interval_s": 1, "memory_limit_mb": 128},
        "volumes": [{"name": "clonedata-db", "mount_path": "/data"}],
    });
    d.ok(
        &owner,
        Method::POST,
        &format!("{PROJECT}/environments/production/services"),
        Some(spec),
    )
    .await;
    let v = d
        .ok(
            &owner,
            Method::POST,
            &format!("{}/deployments", db("production")),
            Some(json!({})),
        )
        .await;
    d.wait_active(&owner, &db("production"), v["number"].as_u64().unwrap())
        .await;
    write_data("production", TOKEN);

    let report = clone(&d, &owner, "qa", true).await;
    let copied = &report["volumes_copied"];
    assert_eq!(copied.as_array().map(Vec::len), Some(1), "{report}");
    assert_eq!(copied[0]["service"], "db");
    assert_eq!(copied[0]["from"], "clonedata-db");
    assert_eq!(copied[0]["to"], "clonedata-db-qa");
    assert!(copied[0]["bytes"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["notes"]
            .to_string()
            .contains("copied while the service ran"),
        "{report}"
    );
    assert_eq!(
        read_data("qa"),
        TOKEN,
        "the clone starts with production's data"
    );

    write_data("qa", "changed-in-qa");
    assert_eq!(read_data("qa"), "changed-in-qa");
    assert_eq!(
        read_data("production"),
        TOKEN,
        "production keeps its own data"
    );

    let report = clone(&d, &owner, "empty", false).await;
    assert!(report.get("volumes_copied").is_none(), "{report}");
    assert_eq!(
        exec_in("empty", &["/bin/busybox", "ls", "-A", "/data"]),
        "",
        "without copy_volumes the clone's volume starts empty"
    );
    d.stop_whatever_the_outcome().await;
}
