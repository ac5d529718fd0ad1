//! Preview environments per pull request, driven by each forge's signed webhook payloads, on
//! the released `clank-daemon` binary (real Docker Engine, the daemon's own builder on a local
//! git repository, the proxy as its own process, only environment configuration):
//!
//! - GitHub, GitLab and Forgejo/Gitea each open a pull request: environment `pr-<n>` is
//!   created from the base environment, the head commit built and deployed, and
//!   `web-pr-<n>.<base domain>` serves the branch's content through the proxy; a redelivery
//!   is ignored; a push to the branch deploys nothing (the preview follows its pull request);
//!   a new commit + `synchronize` serves the new content and pushes the deadline forward;
//!   closing leaves no container, network, route or volume (checked there before the close,
//!   so that cannot pass on nothing): GitHub closes without merging, GitLab and Forgejo merge;
//! - a pull request from a fork is refused (200, "allow_forks");
//! - time-to-live: a preview whose deadline passes while the daemon is down is torn down by
//!   the sweep after it restarts.
//!
//! Fails (never skips) without a Docker Engine when CI is set. Every container, network,
//! volume and built image of the test's project is removed, also after a panic.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clank_testkit::gitrepo::{TestRepo, git};
use common::{
    ProxyReaper, call_at, docker_cli, docker_with_testapp, free_addr, init_at, kill_and_wait,
    ok_at, project_leftovers, remove_project_leftovers, spawn_daemon,
};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const BASE_DOMAIN: &str = "preview.clank.test";

fn dockerfile(greeting: &str) -> String {
    format!("FROM clank-testapp:latest\nENV GREETING={greeting}\n")
}

/// The daemon process, its proxy process and every Docker object of project `project`: gone
/// when this is dropped, whatever happened to the test.
struct World {
    daemon: Option<tokio::process::Child>,
    data: PathBuf,
    api: SocketAddr,
    proxy: SocketAddr,
    project: String,
    owner: String,
    secret: String,
    repo: TestRepo,
    _proxy: ProxyReaper,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Forge {
    GitHub,
    GitLab,
    Forgejo,
}

impl World {
    async fn start_daemon(&mut self) {
        let proxy = self.proxy.to_string();
        let env = [
            ("CLANK_RUNTIME", "docker"),
            ("CLANK_PROXY_LISTEN", proxy.as_str()),
            ("CLANK_ALLOW_LOCAL_REPOSITORIES", "1"),
            ("CLANK_PREVIEW_SWEEP_S", "1"),
        ];
        self.daemon = Some(spawn_daemon(&self.data, self.api, &env, Stdio::inherit()).await);
    }

    fn kill_daemon(&mut self) {
        kill_and_wait(self.daemon.take());
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        ok_at(self.api, Some(&self.owner), method, path, body).await
    }

    fn project_path(&self) -> String {
        format!("/v1/workspaces/acme/projects/{}", self.project)
    }

    fn service_path(&self, env: &str) -> String {
        format!("{}/environments/{env}/services/web", self.project_path())
    }

    /// `GET path` through the proxy with Host `host`: status and body.
    async fn via_proxy(&self, host: &str, path: &str) -> (StatusCode, String) {
        let resp = clank_testkit::web::client()
            .get(format!("http://{}{path}", self.proxy))
            .header(reqwest::header::HOST, host)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} (Host {host}) through the proxy: {e}"));
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Poll until the preview of pull request `n` answers `GREETING` = `want` (up to 180 s).
    async fn until_serves(&self, n: u64, want: &str) {
        let host = format!("web-pr-{n}.{BASE_DOMAIN}");
        let mut last = None;
        for _ in 0..1800 {
            let got = self.via_proxy(&host, "/env?GREETING").await;
            if got.0 == StatusCode::OK && got.1.trim() == want {
                return;
            }
            last = Some(got);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{host} does not serve `{want}` after 180 s; last answer {last:?}");
    }

    /// Wait until deployment `number` of the preview's `web` settles ACTIVE.
    async fn until_active(&self, env: &str, number: u64) {
        let path = format!("{}/deployments/{number}", self.service_path(env));
        for _ in 0..1800 {
            let v = self.ok(Method::GET, &path, None).await;
            match v["status"].as_str() {
                Some("ACTIVE") => return,
                Some("FAILED" | "CANCELLED" | "SUPERSEDED") => {
                    panic!("{env} deployment #{number} ended: {v}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("{env} deployment #{number} is not ACTIVE after 180 s");
    }

    /// Deliver a signed pull-request event of `forge`.
    async fn deliver(&self, forge: Forge, delivery: &str, payload: &Value) -> (StatusCode, Value) {
        let body = serde_json::to_vec(payload).unwrap();
        let (path, headers): (&str, Vec<(&str, String)>) = match forge {
            Forge::GitHub => (
                "/v1/webhooks/github",
                vec![
                    ("x-github-event", "pull_request".to_owned()),
                    ("x-github-delivery", delivery.to_owned()),
                    (
                        "x-hub-signature-256",
                        format!("sha256={}", sign(&self.secret, &body)),
                    ),
                ],
            ),
            Forge::GitLab => (
                "/v1/webhooks/gitlab",
                vec![
                    ("x-gitlab-event", "Merge Request Hook".to_owned()),
                    ("x-gitlab-event-uuid", delivery.to_owned()),
                    ("x-gitlab-token", self.secret.clone()),
                ],
            ),
            Forge::Forgejo => (
                "/v1/webhooks/gitea",
                vec![
                    ("x-forgejo-event", "pull_request".to_owned()),
                    ("x-forgejo-delivery", delivery.to_owned()),
                    ("x-forgejo-signature", sign(&self.secret, &body)),
                ],
            ),
        };
        let mut r = clank_testkit::web::client()
            .post(format!("http://{}{path}", self.api))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A signed GitHub push of `commit` to `branch`.
    async fn push(&self, branch: &str, commit: &str, delivery: &str) -> (StatusCode, Value) {
        let body = serde_json::to_vec(&json!({
            "ref": format!("refs/heads/{branch}"),
            "before": "0000000000000000000000000000000000000000",
            "after": commit,
            "repository": {"clone_url": self.repo.url()},
        }))
        .unwrap();
        let resp = clank_testkit::web::client()
            .post(format!("http://{}/v1/webhooks/github", self.api))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", delivery)
            .header(
                "x-hub-signature-256",
                format!("sha256={}", sign(&self.secret, &body)),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    /// The live previews' JSON.
    async fn previews(&self) -> Vec<Value> {
        self.ok(
            Method::GET,
            &format!("{}/previews/environments", self.project_path()),
            None,
        )
        .await
        .as_array()
        .unwrap()
        .clone()
    }

    /// What is left of pull request `n`'s preview in Docker: containers of its service,
    /// its network, its volumes.
    fn remains_of(&self, service_id: &str, n: u64) -> [Vec<String>; 3] {
        let [_, networks, volumes] = project_leftovers(&self.project);
        let env = format!("pr-{n}");
        [
            docker_cli(&[
                "ps",
                "-aq",
                "--filter",
                &format!("label=clank.service={service_id}"),
            ]),
            networks
                .into_iter()
                .filter(|id| {
                    docker_cli(&["network", "inspect", "-f", "{{.Name}}", id])
                        .iter()
                        .any(|name| name.ends_with(&format!("--{env}")))
                })
                .collect(),
            volumes
                .into_iter()
                .filter(|name| name.ends_with(&format!("-{env}")))
                .collect(),
        ]
    }

    async fn until_gone(&self, service_id: &str, n: u64, secs: u64) {
        let mut left = self.remains_of(service_id, n);
        for _ in 0..secs * 10 {
            if left.iter().all(Vec::is_empty) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = self.remains_of(service_id, n);
        }
        panic!("pr-{n} left behind (containers, networks, volumes): {left:?}");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The daemon first: it would restart what is removed under it.
        self.kill_daemon();
        remove_project_leftovers(&self.project);
        let project = self.project.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(docker) = clank_docker::DockerRuntime::connect().await {
                    clank_testkit::testapp::docker::remove_build_images_of_project(
                        docker.client(),
                        &project,
                    )
                    .await;
                }
            });
        })
        .join();
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The forge's pull-request payload for `action` (`opened`, `synchronize`, `closed`: closed
/// without merging, `merged`), as each forge shapes it.
fn payload(
    forge: Forge,
    action: &str,
    n: u64,
    branch: &str,
    sha: &str,
    repo: &str,
    fork: bool,
) -> Value {
    let head_repo = if fork {
        "file:///srv/forks/mallory/shop"
    } else {
        repo
    };
    match forge {
        Forge::GitHub | Forge::Forgejo => {
            let merged = action == "merged";
            let action = match (forge, action) {
                (Forge::Forgejo, "synchronize") => "synchronized",
                (_, "merged") => "closed",
                (_, a) => a,
            };
            json!({
                "action": action,
                "number": n,
                "pull_request": {
                    "number": n,
                    "merged": merged,
                    "head": {"ref": branch, "sha": sha, "repo": {"id": if fork { 99 } else { 1 }, "clone_url": head_repo}},
                    "base": {"ref": "main", "sha": sha, "repo": {"id": 1, "clone_url": repo}},
                },
                "repository": {"id": 1, "clone_url": repo},
            })
        }
        Forge::GitLab => {
            let action = match action {
                "opened" => "open",
                "synchronize" => "update",
                "closed" => "close",
                "merged" => "merge",
                a => a,
            };
            let mut attrs = json!({
                "iid": n,
                "action": action,
                "source_branch": branch,
                "target_branch": "main",
                "source_project_id": if fork { 99 } else { 1 },
                "target_project_id": 1,
                "last_commit": {"id": sha},
                "source": {"git_http_url": head_repo},
                "target": {"git_http_url": repo},
            });
            if action == "update" {
                attrs["oldrev"] = json!("1111111111111111111111111111111111111111");
            }
            json!({
                "object_kind": "merge_request",
                "project": {"id": 1, "git_http_url": repo},
                "object_attributes": attrs,
            })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_forge_opens_updates_and_closes_a_preview_and_the_ttl_survives_a_restart() {
    if docker_with_testapp().await.is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tail: String = clank_core::id::StackId::new()
        .as_uuid()
        .simple()
        .to_string()
        .chars()
        .rev()
        .take(10)
        .collect();
    let repo = TestRepo::new(&[("Dockerfile", &dockerfile("main"))]);
    let mut w = World {
        daemon: None,
        data: data.clone(),
        api: free_addr(),
        proxy: free_addr(),
        project: format!("pv{tail}"),
        owner: String::new(),
        secret: String::new(),
        repo,
        _proxy: ProxyReaper(data.clone()),
    };
    w.start_daemon().await;
    w.owner = init_at(w.api).await;
    let secret = w
        .ok(Method::POST, "/v1/workspaces/acme/webhook-secret", None)
        .await;
    w.secret = secret["secret"].as_str().unwrap().to_owned();
    w.ok(
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Preview Shop", "slug": w.project})),
    )
    .await;
    w.ok(
        Method::POST,
        &format!("{}/environments", w.project_path()),
        Some(json!({"name": "staging"})),
    )
    .await;
    let staging = format!("{}/environments/staging", w.project_path());
    w.ok(
        Method::POST,
        &format!("{staging}/services"),
        Some(json!({
            "slug": "web",
            "source": {"type": "git", "repo_url": w.repo.url(), "branch": "main"},
            "settings": {"health_check_interval_s": 1},
            "endpoint": {"mode": "lan_only", "domains": [format!("web-staging-{tail}.clank.test")]},
            "volumes": [{"name": format!("{}-data", w.project), "mount_path": "/data"}],
        })),
    )
    .await;

    // Settings are checked field by field, then stored.
    let settings_path = format!("{}/previews", w.project_path());
    let (s, v) = call_at(
        &clank_testkit::web::client(),
        w.api,
        Some(&w.owner),
        Method::PUT,
        &settings_path,
        Some(json!({"base_environment": "staging", "domain": BASE_DOMAIN, "ttl_minutes": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "ttl_minutes", "{v}");
    let set = w
        .ok(
            Method::PUT,
            &settings_path,
            Some(json!({"base_environment": "staging", "domain": BASE_DOMAIN})),
        )
        .await;
    assert_eq!(set["pattern"], "{service}-pr-{n}.{domain}", "{set}");
    assert_eq!(set["allow_forks"], false, "{set}");

    // A fork's pull request is refused by default.
    let main_sha = w.repo.head();
    let (s, v) = w
        .deliver(
            Forge::GitHub,
            "fork-1",
            &payload(
                Forge::GitHub,
                "opened",
                9,
                "evil",
                &main_sha,
                &w.repo.url(),
                true,
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["ignored"]
            .as_str()
            .is_some_and(|i| i.contains("fork") && i.contains("allow_forks")),
        "{v}"
    );
    assert!(w.previews().await.is_empty());

    for (n, forge) in [(1, Forge::GitHub), (2, Forge::GitLab), (3, Forge::Forgejo)] {
        let branch = format!("feature-{n}");
        let env = format!("pr-{n}");
        git(
            w.repo.path(),
            &["checkout", "--quiet", "-B", &branch, "main"],
        );
        let v1 = w
            .repo
            .commit(&[("Dockerfile", &dockerfile(&format!("pr{n}-one")))], "one");
        let url = w.repo.url();
        let opened = payload(forge, "opened", n, &branch, &v1, &url, false);

        // Open: the environment, its URL, the branch's content.
        let (s, v) = w.deliver(forge, &format!("open-{n}"), &opened).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{forge:?} open: {v}");
        assert_eq!(v["previews"][0]["environment"], env.as_str(), "{v}");
        assert_eq!(v["previews"][0]["action"], "created", "{v}");
        assert_eq!(
            v["previews"][0]["urls"],
            json!([format!("http://web-pr-{n}.{BASE_DOMAIN}")]),
            "{v}"
        );
        w.until_active(&env, 1).await;
        w.until_serves(n, &format!("pr{n}-one")).await;
        let service = w.ok(Method::GET, &w.service_path(&env), None).await;
        let service_id = service["id"].as_str().unwrap().to_owned();
        assert_eq!(service["source"]["branch"], branch.as_str(), "{service}");
        assert_ne!(
            service["volumes"][0]["name"],
            format!("{}-data", w.project),
            "a preview has volumes of its own: {service}"
        );
        let listed = w.previews().await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["pull_request"], n);
        assert_eq!(listed[0]["branch"], branch.as_str());
        assert_eq!(listed[0]["head_commit"], v1.as_str());
        let first_deadline = listed[0]["expires_at"].as_i64().unwrap();

        // A redelivery is ignored; so is a push to the branch (the preview follows its pull
        // request, not pushes).
        let (s, v) = w.deliver(forge, &format!("open-{n}"), &opened).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            v["ignored"]
                .as_str()
                .is_some_and(|i| i.contains("received before")),
            "{v}"
        );
        let v2 = w
            .repo
            .commit(&[("Dockerfile", &dockerfile(&format!("pr{n}-two")))], "two");
        let (_, pushed) = w.push(&branch, &v2, &format!("push-{n}")).await;
        assert_eq!(pushed["deployments"], json!([]), "{pushed}");

        // Synchronize: the new commit serves, the deadline moves on.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sync = payload(forge, "synchronize", n, &branch, &v2, &url, false);
        let (s, v) = w.deliver(forge, &format!("sync-{n}"), &sync).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{forge:?} synchronize: {v}");
        assert_eq!(v["previews"][0]["action"], "redeployed", "{v}");
        w.until_active(&env, 2).await;
        w.until_serves(n, &format!("pr{n}-two")).await;
        let listed = w.previews().await;
        assert_eq!(listed[0]["head_commit"], v2.as_str());
        assert!(listed[0]["expires_at"].as_i64().unwrap() > first_deadline);
        assert_eq!(
            w.ok(
                Method::GET,
                &format!("{}/environments", w.project_path()),
                None
            )
            .await
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == env.as_str())
            .count(),
            1,
            "one environment per pull request"
        );

        // Close (GitHub: closed unmerged; GitLab and Forgejo: merged): nothing is left of
        // what is there now, the container, `pr-<n>`'s network and its volume.
        let [containers, networks, volumes] = w.remains_of(&service_id, n);
        assert!(
            !containers.is_empty() && !networks.is_empty() && !volumes.is_empty(),
            "pr-{n} before the close: containers {containers:?}, networks {networks:?}, \
             volumes {volumes:?}"
        );
        let unknown = w.via_proxy("nobody.clank.test", "/").await.0;
        let action = if forge == Forge::GitHub {
            "closed"
        } else {
            "merged"
        };
        let close = payload(forge, action, n, &branch, &v2, &url, false);
        let (s, v) = w.deliver(forge, &format!("close-{n}"), &close).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{forge:?} close: {v}");
        assert_eq!(v["previews"][0]["action"], "removed", "{v}");
        assert_eq!(
            w.via_proxy(&format!("web-pr-{n}.{BASE_DOMAIN}"), "/")
                .await
                .0,
            unknown,
            "the route is gone"
        );
        w.until_gone(&service_id, n, 30).await;
        assert!(w.previews().await.is_empty());
        let (s, _) = call_at(
            &clank_testkit::web::client(),
            w.api,
            Some(&w.owner),
            Method::GET,
            &w.service_path(&env),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    // Time-to-live: the deadline passes while the daemon is down; the sweep after the
    // restart tears the preview down.
    w.ok(
        Method::PUT,
        &settings_path,
        Some(json!({"base_environment": "staging", "domain": BASE_DOMAIN, "ttl_minutes": 1})),
    )
    .await;
    git(
        w.repo.path(),
        &["checkout", "--quiet", "-B", "feature-4", "main"],
    );
    let sha = w
        .repo
        .commit(&[("Dockerfile", &dockerfile("pr4-one"))], "four");
    let opened = payload(
        Forge::GitHub,
        "opened",
        4,
        "feature-4",
        &sha,
        &w.repo.url(),
        false,
    );
    let (s, v) = w.deliver(Forge::GitHub, "open-4", &opened).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    w.until_active("pr-4", 1).await;
    w.until_serves(4, "pr4-one").await;
    let service = w.ok(Method::GET, &w.service_path("pr-4"), None).await;
    let service_id = service["id"].as_str().unwrap().to_owned();
    let listed = w.previews().await;
    assert_eq!(
        listed.len(),
        1,
        "the preview outlived its TTL already: {listed:?}"
    );
    let deadline = listed[0]["expires_at"].as_i64().unwrap();
    w.kill_daemon();
    let now = clank_core::Timestamp::now().0;
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(deadline - now).unwrap_or(0) + 1_000,
    ))
    .await;
    assert_eq!(
        w.remains_of(&service_id, 4)[0].len(),
        1,
        "the container outlives the daemon"
    );
    w.start_daemon().await;
    w.until_gone(&service_id, 4, 60).await;
    // The records go last, once the workloads, network and volumes have.
    for _ in 0..300 {
        if w.previews().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        w.previews().await,
        Vec::<Value>::new(),
        "torn down by the sweep"
    );
    let audit = w.ok(Method::GET, "/v1/workspaces/acme/audit", None).await;
    for action in [
        "preview_settings.set",
        "preview.create",
        "preview.redeploy",
        "preview.delete",
        "preview.expire",
        "preview.refuse_fork",
    ] {
        assert!(
            audit.to_string().contains(action),
            "{action} not audited: {audit}"
        );
    }

    w.kill_daemon();
    remove_project_leftovers(&w.project);
    let left = project_leftovers(&w.project);
    assert!(
        left.iter().all(Vec::is_empty),
        "left behind (containers, networks, volumes): {left:?}"
    );
}
