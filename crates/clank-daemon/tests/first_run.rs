//! What a new self-hoster does first, against the released `clank-daemon` binary on an empty
//! data directory with only the configuration the README documents (`CLANK_*` variables): a
//! git service cloned over smart HTTP on loopback (git's own `http-backend`), built on the
//! Docker Engine and deployed; its domain gets a certificate from ACME (Debian's pebble) served
//! on the proxy's TLS port; a signed GitHub push webhook deploys the pushed commit.
//!
//! Prints the two figures a user feels: fresh daemon → first git deploy ACTIVE, and domain
//! routed → valid certificate served.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clank_core::runtime::{OwnerFilter, Runtime};
use clank_testkit::githttp::GitHttpServer;
use clank_testkit::gitrepo::TestRepo;
use clank_testkit::pebble::{Pebble, PebbleOptions, free_port};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

const DOMAIN: &str = "web.first-run.test";
const SERVICE: &str = "/v1/workspaces/acme/projects/first-run/environments/production/services/web";

struct Api {
    addr: SocketAddr,
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = Some(self.token.as_str()).filter(|t| !t.is_empty());
        common::call_at(&self.http, self.addr, token, method, path, body).await
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (s, v) = self.call(method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path} → {s}: {v}");
        v
    }

    /// Deployment `number` of the service once it is ACTIVE (panics on FAILED or after 180 s).
    async fn wait_active(&self, number: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let list = self
                .ok(Method::GET, &format!("{SERVICE}/deployments"), None)
                .await;
            if let Some(d) = list
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["number"] == number)
            {
                match d["status"].as_str() {
                    Some("ACTIVE") => return d.clone(),
                    Some("FAILED") => panic!("deployment #{number} FAILED: {d}"),
                    _ => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "deployment #{number} not ACTIVE after 180 s: {list}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `GET https://DOMAIN:port/path` through curl, trusting only `root`: the body, or why not.
fn https_get(tls: SocketAddr, root: &Path, path: &str) -> Result<String, String> {
    let out = std::process::Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "5"])
        .arg("--cacert")
        .arg(root)
        .arg("--resolve")
        .arg(format!("{DOMAIN}:{}:127.0.0.1", tls.port()))
        .arg(format!("https://{DOMAIN}:{}{path}", tls.port()))
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn dockerfile(version: &str) -> String {
    format!(
        "FROM {}\nENV APP_VERSION={version}\n",
        clank_testkit::testapp::IMAGE
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_daemon_deploys_from_git_serves_tls_from_acme_and_deploys_a_pushed_commit() {
    // With the base image the repository's Dockerfile names (no registry is reachable here).
    let Some(_docker) = common::docker_with_testapp().await else {
        return;
    };
    let proxy_http = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy_tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let Some(pebble) = Pebble::start(PebbleOptions {
        http_port: proxy_http.port(),
        tls_port: proxy_tls.port(),
        validity_secs: None,
        nonce_reject_percent: 0,
    })
    .await
    else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let issuing_root = root.path().join("pebble-root.pem");
    std::fs::write(&issuing_root, pebble.issuing_root_pem()).unwrap();

    let repo = TestRepo::new(&[("Dockerfile", &dockerfile("v1"))]);
    let git = GitHttpServer::start().await.unwrap();
    let repo_url = git.publish(&repo, "web");

    // A data directory that does not exist yet, and only README-documented settings.
    let data = root.path().join("clank-data");
    let api_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _reaper = common::ProxyReaper(data.clone());
    let started = Instant::now();
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_clank-daemon"))
        .env("CLANK_DATA", &data)
        .env("CLANK_LISTEN", api_addr.to_string())
        .env("CLANK_RUNTIME", "docker")
        .env("CLANK_PROXY_LISTEN", proxy_http.to_string())
        .env("CLANK_PROXY_TLS_LISTEN", proxy_tls.to_string())
        .env("CLANK_PROXY_ACME_DIRECTORY_URL", &pebble.directory_url)
        .env("CLANK_PROXY_ACME_STATE_DIR", root.path().join("acme"))
        .env("CLANK_PROXY_ACME_SERVER_ROOT", pebble.ca_pem())
        .env("CLANK_PROXY_ACME_CONTACT", "mailto:ops@first-run.test")
        .env("CLANK_ALLOW_LOCAL_REPOSITORIES", "1")
        .env("CLANK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut api = Api {
        addr: api_addr,
        http: clank_testkit::web::client(),
        token: String::new(),
    };
    let mut up = false;
    for _ in 0..400 {
        let health = api
            .http
            .get(format!("http://{api_addr}/v1/health"))
            .send()
            .await;
        if health.is_ok_and(|r| r.status() == StatusCode::OK) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "clank-daemon did not come up on {api_addr}");

    let v = api
        .ok(
            Method::POST,
            "/v1/init",
            Some(json!({"workspace": "acme", "name": "Ada", "email": "ada@first-run.test"})),
        )
        .await;
    api.token = v["token"].as_str().unwrap().to_owned();
    api.ok(
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "First run"})),
    )
    .await;
    let service = api
        .ok(
            Method::POST,
            "/v1/workspaces/acme/projects/first-run/environments/production/services",
            Some(json!({
                "slug": "web",
                "source": {"type": "git", "repo_url": repo_url, "branch": "main"},
                "settings": {"port": 8080, "health_check_path": "/health"},
                "endpoint": {"mode": "public_direct", "domains": [DOMAIN]},
            })),
        )
        .await;
    let workspace = service["workspace_id"].as_str().unwrap().to_owned();
    let cleanup = Cleanup {
        workspace: workspace.parse().unwrap(),
    };

    // 1. The first git deploy on a fresh data directory.
    api.ok(
        Method::POST,
        &format!("{SERVICE}/deployments"),
        Some(json!({})),
    )
    .await;
    let first = api.wait_active(1).await;
    let fresh_to_active = started.elapsed();
    let routed = Instant::now();
    let head = repo.head();
    assert_eq!(
        first["artifact"]["commit"], head,
        "the manual deploy records the commit it built: {first}"
    );

    // 2. The domain's certificate, ordered as soon as the route appeared.
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        match https_get(proxy_tls, &issuing_root, "/env?APP_VERSION") {
            Ok(body) => break body,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no valid certificate for {DOMAIN} 60 s after it was routed: {e}\n{}",
                    pebble.logs()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let routed_to_certificate = routed.elapsed();
    assert!(body.contains("v1"), "{body}");
    // Plain HTTP on a TLS domain redirects to HTTPS.
    let plain = clank_testkit::web::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{proxy_http}/"))
        .header("host", DOMAIN)
        .send()
        .await
        .unwrap();
    assert!(plain.status().is_redirection(), "{}", plain.status());

    // 3. A push, delivered by GitHub's webhook, deploys the pushed commit.
    let secret = api
        .ok(Method::POST, "/v1/workspaces/acme/webhook-secret", None)
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let pushed = repo.commit(&[("Dockerfile", &dockerfile("v2"))], "v2");
    git.push(&repo, "web");
    let payload = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": head,
        "after": pushed,
        "deleted": false,
        "repository": {"full_name": "acme/web", "clone_url": repo_url},
    }))
    .unwrap();
    let pushed_at = Instant::now();
    let resp = api
        .http
        .post(format!("http://{api_addr}/v1/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "first-run-1")
        .header(
            "x-hub-signature-256",
            format!("sha256={}", sign(&secret, &payload)),
        )
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::ACCEPTED,
        "{}",
        resp.text().await.unwrap()
    );
    let second = api.wait_active(2).await;
    let push_to_active = pushed_at.elapsed();
    assert_eq!(second["artifact"]["commit"], pushed, "{second}");
    let body = https_get(proxy_tls, &issuing_root, "/env?APP_VERSION").unwrap();
    assert!(body.contains("v2"), "{body}");

    eprintln!(
        "first run: fresh daemon → first git deploy ACTIVE {:.2} s; domain routed → valid \
         certificate {:.2} s; webhook push → ACTIVE {:.2} s",
        fresh_to_active.as_secs_f64(),
        routed_to_certificate.as_secs_f64(),
        push_to_active.as_secs_f64()
    );

    let _ = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().unwrap().to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(15), daemon.wait()).await;
    drop(cleanup);
}

/// Removes the workspace's containers and networks, whatever happens to the test.
struct Cleanup {
    workspace: clank_core::id::WorkspaceId,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let workspace = self.workspace;
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let Ok(docker) = clank_docker::DockerRuntime::connect().await else {
                        return;
                    };
                    let filter = OwnerFilter {
                        workspace: Some(workspace),
                        ..OwnerFilter::default()
                    };
                    for w in docker.list(&filter).await.unwrap_or_default() {
                        let _ = docker.remove(&w.id).await;
                    }
                    clank_testkit::testapp::docker::remove_networks_of_project(
                        docker.client(),
                        "first-run",
                    )
                    .await;
                    clank_testkit::testapp::docker::remove_build_images_of_project(
                        docker.client(),
                        "first-run",
                    )
                    .await;
                });
        })
        .join()
        .ok();
    }
}
