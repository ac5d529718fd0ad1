//! A service stopped and started again over REST, on the released `clank-daemon` binary (real
//! Docker Engine, fresh data directory, the proxy as its own process): stopped, its domain
//! answers what an unknown domain does and no container of it is left; a daemon restart keeps
//! it stopped; deploys are refused until it is started; started, the same deployment serves
//! through the proxy again, its history kept. Refusals: an unknown service (404 naming it), a
//! Viewer (403). Fails (never skips) without a Docker Engine when CI is set. Every container,
//! network and volume of the test's project is removed, also after a panic.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{
    ProxyReaper, call_at, docker_cli, docker_with_testapp, free_addr, init_at, kill_and_wait,
    ok_at, project_leftovers, remove_project_leftovers, spawn_daemon,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DOMAIN: &str = "shop.clank.test";

/// The daemon process, its proxy process and every Docker object of project `project`: gone
/// when this is dropped, whatever happened to the test.
struct World {
    daemon: Option<tokio::process::Child>,
    data: PathBuf,
    api: SocketAddr,
    proxy: SocketAddr,
    project: String,
    _proxy: ProxyReaper,
}

impl World {
    async fn start_daemon(&mut self) {
        let proxy = self.proxy.to_string();
        let env = [("CLANK_RUNTIME", "docker"), ("CLANK_PROXY_LISTEN", &proxy)];
        self.daemon = Some(spawn_daemon(&self.data, self.api, &env, Stdio::inherit()).await);
    }

    fn kill_daemon(&mut self) {
        kill_and_wait(self.daemon.take());
    }

    /// Containers of service `id`, found by the owner label every Clank container carries.
    fn containers_of(service: &str) -> Vec<String> {
        docker_cli(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=clank.service={service}"),
        ])
    }

    fn leftovers(&self) -> [Vec<String>; 3] {
        project_leftovers(&self.project)
    }

    fn remove_leftovers(&self) {
        remove_project_leftovers(&self.project);
    }

    /// `GET /health` through the proxy with Host `host`: the status.
    async fn via_proxy(&self, host: &str) -> StatusCode {
        clank_testkit::web::client()
            .get(format!("http://{}/health", self.proxy))
            .header(reqwest::header::HOST, host)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /health (Host {host}) through the proxy: {e}"))
            .status()
    }

    /// Poll (every 100 ms, up to `secs`) until `done` holds for the status through the proxy.
    async fn until_proxy(&self, what: &str, secs: u64, done: impl Fn(StatusCode) -> bool) {
        let mut last = None;
        for _ in 0..secs * 10 {
            let s = self.via_proxy(DOMAIN).await;
            if done(s) {
                return;
            }
            last = Some(s);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: the proxy still answers {last:?} for {DOMAIN} after {secs} s");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The daemon first: it would restart what is removed under it.
        self.kill_daemon();
        self.remove_leftovers();
    }
}

async fn wait_active(api: SocketAddr, token: &str, svc: &str, n: u64) {
    for _ in 0..1200 {
        let v = ok_at(
            api,
            Some(token),
            Method::GET,
            &format!("{svc}/deployments/{n}"),
            None,
        )
        .await;
        match v["status"].as_str() {
            Some("ACTIVE") => return,
            Some("FAILED" | "CANCELLED" | "SUPERSEDED") => panic!("deployment #{n} ended: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("deployment #{n} is not ACTIVE after 120 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_service_serves_nothing_stays_stopped_across_a_restart_and_starts_again() {
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
    let mut w = World {
        daemon: None,
        data: data.clone(),
        api: free_addr(),
        proxy: free_addr(),
        project: format!("lc{tail}"),
        _proxy: ProxyReaper(data.clone()),
    };
    w.start_daemon().await;
    let api = w.api;
    let owner = init_at(api).await;
    let owner = owner.as_str();
    ok_at(
        api,
        Some(owner),
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Shop", "slug": w.project})),
    )
    .await;
    let env = format!(
        "/v1/workspaces/acme/projects/{}/environments/production",
        w.project
    );
    let created = ok_at(
        api,
        Some(owner),
        Method::POST,
        &format!("{env}/services"),
        Some(json!({
            "slug": "web",
            "source": {"type": "docker_image", "image": clank_testkit::testapp::IMAGE},
            "settings": {"health_check_interval_s": 1},
            "endpoint": {"mode": "lan_only", "domains": [DOMAIN]},
        })),
    )
    .await;
    let service_id = created["id"].as_str().unwrap().to_owned();
    let svc = format!("{env}/services/web");
    ok_at(
        api,
        Some(owner),
        Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    wait_active(api, owner, &svc, 1).await;
    let unknown = w.via_proxy("nobody.clank.test").await;
    w.until_proxy("deployed", 60, |s| s == StatusCode::OK).await;
    assert_eq!(World::containers_of(&service_id).len(), 1);

    // Refusals: a Viewer, an unknown service.
    let viewer = ok_at(
        api,
        Some(owner),
        Method::POST,
        "/v1/workspaces/acme/members",
        Some(json!({"name": "Vi", "email": "vi@example.com", "role": "viewer"})),
    )
    .await;
    let viewer = viewer["token"].as_str().unwrap();
    let http = clank_testkit::web::client();
    for action in ["stop", "start"] {
        let (s, v) = call_at(
            &http,
            api,
            Some(viewer),
            Method::POST,
            &format!("{svc}/{action}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "viewer {action}: {v}");
        let (s, v) = call_at(
            &http,
            api,
            Some(owner),
            Method::POST,
            &format!("{env}/services/nope/{action}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{action} unknown: {v}");
        assert!(v.to_string().contains("nope"), "{action} unknown: {v}");
    }
    w.until_proxy("refusals changed nothing", 5, |s| s == StatusCode::OK)
        .await;

    // Stop: the domain answers like an unknown one, no container is left.
    let stopped = ok_at(api, Some(owner), Method::POST, &format!("{svc}/stop"), None).await;
    assert!(stopped["stopped_at"].is_number(), "{stopped}");
    w.until_proxy("stopped", 60, |s| s == unknown).await;
    for _ in 0..300 {
        if World::containers_of(&service_id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(World::containers_of(&service_id), Vec::<String>::new());
    let (s, v) = call_at(
        &http,
        api,
        Some(owner),
        Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "deploy while stopped: {v}");
    assert!(
        v.to_string().contains("clank service start"),
        "deploy while stopped: {v}"
    );

    // A daemon restart keeps it stopped.
    w.kill_daemon();
    w.start_daemon().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(World::containers_of(&service_id), Vec::<String>::new());
    assert_eq!(w.via_proxy(DOMAIN).await, unknown);
    let shown = ok_at(api, Some(owner), Method::GET, &svc, None).await;
    assert!(shown["stopped_at"].is_number(), "{shown}");

    // Start: the same deployment serves again, history kept.
    let started = ok_at(
        api,
        Some(owner),
        Method::POST,
        &format!("{svc}/start"),
        None,
    )
    .await;
    assert!(started.get("stopped_at").is_none(), "{started}");
    w.until_proxy("started", 120, |s| s == StatusCode::OK).await;
    assert_eq!(World::containers_of(&service_id).len(), 1);
    let list: Value = ok_at(
        api,
        Some(owner),
        Method::GET,
        &format!("{svc}/deployments"),
        None,
    )
    .await;
    let statuses: Vec<(u64, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["number"].as_u64().unwrap(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses, [(1, "ACTIVE".to_owned())], "history: {list}");
    let audit = ok_at(
        api,
        Some(owner),
        Method::GET,
        "/v1/workspaces/acme/audit",
        None,
    )
    .await;
    for action in ["service.stop", "service.start"] {
        assert!(
            audit.to_string().contains(action),
            "{action} not audited: {audit}"
        );
    }

    // Clean up: daemon, then the project's containers, network and volumes.
    w.kill_daemon();
    w.remove_leftovers();
    let left = w.leftovers();
    assert!(
        left.iter().all(Vec::is_empty),
        "left behind (containers, networks, volumes): {left:?}"
    );
}
