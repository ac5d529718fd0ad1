//! Builds, logs and exec of a git service through the REST API, against the real daemon
//! in-process with the Docker runtime and builder (local repositories allowed): builds listed
//! with their commit, branch, trigger, duration and deployment, one build with its log; the
//! deployment naming its build and the commit a manual deploy built; logs of a Procfile
//! `worker`, of one replica and of every workload at once; exec into a chosen process type and
//! replica; unknown process types and replicas refused by name. The service webhook view
//! (endpoints, the secret for Owners only) needs no Docker and runs on native processes.
//!
//! Outside CI the Docker tests skip (loudly) when no engine is reachable; with `CI` set they
//! fail.

mod common;

use std::time::Duration;

use clank_core::runtime::{OwnerFilter, Runtime};
use clank_testkit::gitrepo::TestRepo;
use common::browser::Browser;
use common::{Daemon, docker_with_testapp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PROJECT: &str = "builds-shop";
const SVC: &str = "/v1/workspaces/acme/projects/builds-shop/environments/production/services/app";
const UI_SVC: &str =
    "/ui/workspaces/acme/projects/builds-shop/environments/production/services/app";

/// The test app with a new file per version; `RUN exit 3` breaks it.
const DOCKERFILE: &str = "FROM clank-testapp:latest\nCOPY hello.txt /app/hello.txt\n";
const BROKEN: &str = "FROM clank-testapp:latest\nRUN echo about-to-fail && exit 3\n";
const PROCFILE: &str = "web: echo web-up; exec /bin/busybox sh /app/start.sh\n\
                        worker: trap 'exit 0' TERM; while true; do echo worker-tick; sleep 1; done\n";

/// A commit message whose subject is markup, and that subject as recorded.
const FIX_MESSAGE: &str =
    "fix: <script>alert('commit')</script> the build\n\n<img src=x onerror=alert(3)>";
const FIX_SUBJECT: &str = "fix: <script>alert('commit')</script> the build";

/// The daemon (local repositories allowed) with workspace `acme`, its Owner's token and the
/// project this suite deploys into.
struct Shop {
    daemon: Daemon,
    owner: String,
}

impl std::ops::Deref for Shop {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

impl Shop {
    async fn start(runtime: &str) -> Shop {
        let daemon = Daemon::start_on(runtime, |s| s.daemon.allow_local_repositories = true).await;
        let owner = daemon.init().await;
        let d = Shop { daemon, owner };
        d.ok(
            Method::POST,
            "/v1/workspaces/acme/projects",
            Some(json!({"name": "Builds Shop", "slug": PROJECT})),
        )
        .await;
        d
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.daemon.ok(&self.owner, method, path, body).await
    }

    async fn git_service(&self, repo: &str, processes: Value) {
        self.ok(
            Method::POST,
            &format!("{}/services", SVC.trim_end_matches("/services/app")),
            Some(json!({
                "slug": "app",
                "source": {"type": "git", "repo_url": repo, "branch": "main"},
                "settings": {"health_check_interval_s": 1, "auto_deploy": false},
                "processes": processes,
            })),
        )
        .await;
    }

    /// Deploy and wait until the deployment settles; its final view.
    async fn deploy_and_wait(&self) -> Value {
        let d = self
            .ok(Method::POST, &format!("{SVC}/deployments"), Some(json!({})))
            .await;
        let n = d["number"].as_u64().unwrap();
        for _ in 0..1800 {
            let v = self
                .ok(Method::GET, &format!("{SVC}/deployments/{n}"), None)
                .await;
            if matches!(
                v["status"].as_str(),
                Some("ACTIVE" | "FAILED" | "CANCELLED")
            ) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("deployment #{n} did not settle in 180 s");
    }

    /// The `line` events of a (non-following) log request, or its error answer.
    async fn log_lines(&self, query: &str) -> Result<Vec<Value>, (StatusCode, Value)> {
        let resp = self
            .http
            .get(self.url(&format!("{SVC}/logs?{query}")))
            .bearer_auth(&self.owner)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        if !status.is_success() {
            return Err((status, serde_json::from_str(&text).unwrap_or_default()));
        }
        let mut out = Vec::new();
        let mut event = "";
        for line in text.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim();
            } else if let Some(data) = line.strip_prefix("data:") {
                if event == "line" {
                    out.push(serde_json::from_str(data.trim()).unwrap());
                }
            }
        }
        Ok(out)
    }

    async fn stop(self) {
        self.daemon.stop_whatever_the_outcome().await;
    }
}

/// Remove the project's workloads, network and built images, even after a panic.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cleanup());
        })
        .join();
    }
}

async fn cleanup() {
    let Ok(runtime) = clank_docker::DockerRuntime::connect().await else {
        return;
    };
    for w in runtime
        .list(&OwnerFilter::default())
        .await
        .unwrap_or_default()
    {
        if clank_core::runtime::unscoped_name(&w.name).starts_with(&format!("clank-{PROJECT}--")) {
            let _ = runtime.remove(&w.id).await;
        }
    }
    clank_testkit::testapp::docker::remove_networks_of_project(runtime.client(), PROJECT).await;
    clank_testkit::testapp::docker::remove_build_images_of_project(runtime.client(), PROJECT).await;
}

/// Poll `check` for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Vec<Value>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Vec<Value>>>,
{
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_listed_with_their_commit_and_logs_and_exec_reach_every_process_and_replica() {
    let Some(_docker) = docker_with_testapp().await else {
        return;
    };
    cleanup().await;
    let _cleanup = Cleanup;
    let repo = TestRepo::new(&[
        ("Dockerfile", BROKEN),
        ("hello.txt", "v1\n"),
        ("Procfile", PROCFILE),
    ]);
    let broken_sha = repo.head();
    let d = Shop::start("docker").await;
    d.git_service(
        &repo.url(),
        json!({"web": {"replicas": 2}, "worker": {"replicas": 1}}),
    )
    .await;

    // Deployment #1: build v1 fails, but it says which commit it checked out.
    let first = d.deploy_and_wait().await;
    assert_eq!(first["status"], "FAILED", "{first}");
    assert_eq!(first["build"]["number"], 1, "{first}");
    assert_eq!(first["build"]["status"], "FAILED", "{first}");
    assert_eq!(first["artifact"]["commit"], broken_sha.as_str(), "{first}");

    // Deployment #2 of the fixed branch head: a manual deploy records the SHA it built and
    // its message's subject (markup in it is the committer's, shown only escaped).
    let fixed_sha = repo.commit(&[("Dockerfile", DOCKERFILE)], FIX_MESSAGE);
    let second = d.deploy_and_wait().await;
    assert_eq!(second["status"], "ACTIVE", "{second}");
    assert_eq!(second["number"], 2);
    assert_eq!(second["trigger"]["kind"], "manual");
    assert_eq!(second["artifact"]["commit"], fixed_sha.as_str(), "{second}");
    assert_eq!(second["build"]["number"], 2, "{second}");
    assert_eq!(second["build"]["commit_sha"], fixed_sha.as_str());
    assert_eq!(second["build"]["commit_subject"], FIX_SUBJECT, "{second}");
    assert_eq!(first["build"]["commit_subject"], "initial", "{first}");
    let listed = d.ok(Method::GET, &format!("{SVC}/deployments"), None).await;
    assert_eq!(listed[0]["build"]["number"], 2, "{listed}");
    assert_eq!(listed[1]["build"]["number"], 1, "{listed}");

    // The builds, newest first, each with its commit, branch, trigger and deployment.
    let builds = d.ok(Method::GET, &format!("{SVC}/builds"), None).await;
    let builds = builds.as_array().unwrap();
    assert_eq!(builds.len(), 2, "{builds:?}");
    let (v2, v1) = (&builds[0], &builds[1]);
    assert_eq!(
        (&v2["number"], &v2["status"], &v2["commit_sha"]),
        (&json!(2), &json!("SUCCEEDED"), &json!(fixed_sha))
    );
    assert_eq!(
        (&v1["number"], &v1["status"], &v1["commit_sha"]),
        (&json!(1), &json!("FAILED"), &json!(broken_sha))
    );
    assert_eq!(v2["commit_subject"], FIX_SUBJECT, "{v2}");
    for b in builds {
        assert_eq!(b["branch"], "main", "{b}");
        assert_eq!(b["trigger"]["kind"], "manual", "{b}");
        assert!(b["duration_s"].as_f64().is_some_and(|s| s > 0.0), "{b}");
        assert!(b.get("log").is_none(), "listings carry no log: {b}");
    }
    assert_eq!(
        (&v2["deployment"], &v1["deployment"]),
        (&json!(2), &json!(1))
    );
    assert!(
        v1["failure"].as_str().is_some_and(|f| !f.is_empty()),
        "{v1}"
    );
    // Paged like deployments.
    let page = d
        .ok(Method::GET, &format!("{SVC}/builds?limit=1"), None)
        .await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["number"], 2);
    let rest = d
        .ok(Method::GET, &format!("{SVC}/builds?before=2"), None)
        .await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["number"], 1);

    // One build with its own log lines only.
    let one = d.ok(Method::GET, &format!("{SVC}/builds/1"), None).await;
    let lines: Vec<&str> = one["log"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines.iter().all(|l| l.starts_with("build v1")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("about-to-fail")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("build v1 failed")),
        "{lines:#?}"
    );
    assert_eq!(one["log"]["truncated"], false);
    let two = d.ok(Method::GET, &format!("{SVC}/builds/2"), None).await;
    assert!(
        two["log"]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("build v2 succeeded")),
        "{two}"
    );
    let (s, missing) = d
        .call(
            Some(&d.owner),
            Method::GET,
            &format!("{SVC}/builds/9"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");

    // The dashboard's timeline and deployment page show the subject, escaped.
    let mut browser = Browser::new(&d);
    browser.sign_in(&d.owner).await;
    let escaped = "fix: &lt;script&gt;alert('commit')&lt;/script&gt; the build";
    for page in [UI_SVC.to_owned(), format!("{UI_SVC}/deployments/2")] {
        let body = browser.get(&page).await.body;
        assert!(body.contains(escaped), "{page} lacks the subject: {body}");
        assert!(!body.contains("<script>alert"), "{page} has it raw: {body}");
        assert!(
            !body.contains("onerror"),
            "{page} shows the message body: {body}"
        );
    }

    // Logs of the Procfile worker alone, then of every workload with where each line is from.
    let worker = eventually("a worker log line", || async {
        let lines = d.log_lines("process=worker&tail=20").await.unwrap();
        lines
            .iter()
            .any(|l| l["line"] == "worker-tick")
            .then_some(lines)
    })
    .await;
    assert!(
        worker
            .iter()
            .all(|l| l["process"] == "worker" && l["replica"] == 0),
        "{worker:?}"
    );
    let all = eventually("lines of every workload", || async {
        let lines = d.log_lines("tail=100").await.unwrap();
        let from = |p: &str, r: u32| lines.iter().any(|l| l["process"] == p && l["replica"] == r);
        (from("web", 0) && from("web", 1) && from("worker", 0)).then_some(lines)
    })
    .await;
    assert!(all.iter().any(|l| l["line"] == "web-up"), "{all:?}");
    let replica = d.log_lines("process=web&replica=1&tail=20").await.unwrap();
    assert!(!replica.is_empty());
    assert!(
        replica
            .iter()
            .all(|l| l["process"] == "web" && l["replica"] == 1),
        "{replica:?}"
    );

    // A process type or replica the deployment does not have: 4xx naming the field.
    let (s, e) = d.log_lines("process=nope").await.unwrap_err();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["field"], "process", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("`nope`") && message.contains("web, worker"),
        "{message}"
    );
    let (s, e) = d.log_lines("process=web&replica=2").await.unwrap_err();
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["field"], "replica", "{e}");

    // Exec into the chosen process type and replica (web replica 0 by default).
    let whoami = json!(["/bin/sh", "-c", "echo $CLANK_PROCESS.$CLANK_REPLICA"]);
    for (process, replica, expected) in [
        (json!(null), json!(null), "web.0"),
        (json!("web"), json!(1), "web.1"),
        (json!("worker"), json!(null), "worker.0"),
    ] {
        let out = d
            .ok(
                Method::POST,
                &format!("{SVC}/exec"),
                Some(json!({"command": whoami, "process": process, "replica": replica})),
            )
            .await;
        assert_eq!(out["exit_code"], 0, "{out}");
        assert_eq!(out["stdout"].as_str().unwrap().trim(), expected, "{out}");
    }
    let (s, e) = d
        .call(
            Some(&d.owner),
            Method::POST,
            &format!("{SVC}/exec"),
            Some(json!({"command": ["true"], "process": "nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["field"], "process", "{e}");

    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_webhook_shows_its_endpoints_and_the_secret_only_to_owners_and_admins() {
    let d = Shop::start("process").await;
    d.git_service(
        "https://git.example.com/acme/shop.git",
        json!({"web": {"replicas": 1}}),
    )
    .await;
    let before = d.ok(Method::GET, &format!("{SVC}/webhook"), None).await;
    assert_eq!(before["endpoints"]["github"], "/v1/webhooks/github");
    assert_eq!(before["endpoints"]["gitlab"], "/v1/webhooks/gitlab");
    assert_eq!(before["endpoints"]["gitea"], "/v1/webhooks/gitea");
    assert_eq!(before["branch"], "main");
    assert_eq!(before["auto_deploy"], false);
    assert_eq!(before["secret"], Value::Null, "none created yet: {before}");
    assert_eq!(before["secret_visible"], true);

    let created = d
        .ok(Method::POST, "/v1/workspaces/acme/webhook-secret", None)
        .await;
    let shown = d.ok(Method::GET, &format!("{SVC}/webhook"), None).await;
    assert_eq!(shown["secret"], created["secret"], "{shown}");

    // A Developer deploys but does not manage the workspace: no secret.
    let dev = d
        .ok(
            Method::POST,
            "/v1/workspaces/acme/members",
            Some(json!({"name": "Dev", "email": "dev@example.com", "role": "developer"})),
        )
        .await;
    let (s, as_dev) = d
        .call(
            dev["token"].as_str(),
            Method::GET,
            &format!("{SVC}/webhook"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{as_dev}");
    assert_eq!(as_dev["secret"], Value::Null, "{as_dev}");
    assert_eq!(as_dev["secret_visible"], false);
    assert_eq!(as_dev["endpoints"]["github"], "/v1/webhooks/github");

    // Reading the secret is audited.
    let audit = d.ok(Method::GET, "/v1/workspaces/acme/audit", None).await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "webhook_secret.read"),
        "{audit}"
    );

    // An image service has no webhook.
    d.ok(
        Method::POST,
        &format!("{}/services", SVC.trim_end_matches("/services/app")),
        Some(json!({"slug": "img", "source": {"type": "docker_image", "image": "nginx:1"}})),
    )
    .await;
    let (s, e) = d
        .call(
            Some(&d.owner),
            Method::GET,
            &format!("{}/img/webhook", SVC.trim_end_matches("/app")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["field"], "service");
    d.stop().await;
}
