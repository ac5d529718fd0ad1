//! Deleting, restoring and purging a service, an environment and a project over REST, on the
//! released `clank-daemon` binary (real Docker Engine, fresh data directory, the proxy as its
//! own process). Deleted, the domain answers what an unknown domain does, no container is
//! left, the volume stays, deploys are refused and the domain cannot be taken by another
//! service; restored, the same deployment serves again; purged, the report names the
//! containers and network it removed and the volume it kept, the records are gone (404) and
//! the slug can be used again; purged with `volumes=true`, the volume is gone too. Fails
//! (never skips) without a Docker Engine when CI is set. Every container, network and volume
//! of the test's project is removed, also after a panic.

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

/// The daemon process, its proxy process and every Docker object of project `project`: gone
/// when this is dropped, whatever happened to the test.
struct World {
    daemon: Option<tokio::process::Child>,
    api: SocketAddr,
    proxy: SocketAddr,
    project: String,
    owner: String,
    /// What the proxy answers for a domain nothing routes.
    unknown: StatusCode,
    _proxy: ProxyReaper,
    _dir: tempfile::TempDir,
}

impl World {
    /// A daemon on Docker with an initialised workspace `acme` and project `project` (a
    /// random slug starting with `prefix`).
    async fn start(prefix: &str) -> Option<World> {
        docker_with_testapp().await?;
        let dir = tempfile::tempdir().unwrap();
        let data: PathBuf = dir.path().join("data");
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
            api: free_addr(),
            proxy: free_addr(),
            project: format!("{prefix}{tail}"),
            owner: String::new(),
            unknown: StatusCode::OK,
            _proxy: ProxyReaper(data.clone()),
            _dir: dir,
        };
        let proxy = w.proxy.to_string();
        let env = [("CLANK_RUNTIME", "docker"), ("CLANK_PROXY_LISTEN", &proxy)];
        w.daemon = Some(spawn_daemon(&data, w.api, &env, Stdio::inherit()).await);
        w.owner = init_at(w.api).await;
        w.ok(
            Method::POST,
            "/v1/workspaces/acme/projects",
            Some(json!({"name": "Shop", "slug": w.project})),
        )
        .await;
        w.unknown = w.via_proxy("nobody.clank.test").await;
        Some(w)
    }

    fn project_path(&self) -> String {
        format!("/v1/workspaces/acme/projects/{}", self.project)
    }

    fn env_path(&self, env: &str) -> String {
        format!("{}/environments/{env}", self.project_path())
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        ok_at(self.api, Some(&self.owner), method, path, body).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call_at(
            &clank_testkit::web::client(),
            self.api,
            Some(&self.owner),
            method,
            path,
            body,
        )
        .await
    }

    /// Service `web` in `env` serving `domain`, with volume `volume` at `/data`: its id.
    async fn create_web(&self, env: &str, domain: &str, volume: &str) -> String {
        let created = self
            .ok(
                Method::POST,
                &format!("{}/services", self.env_path(env)),
                Some(json!({
                    "slug": "web",
                    "source": {"type": "docker_image", "image": clank_testkit::testapp::IMAGE},
                    "settings": {"health_check_interval_s": 1},
                    "endpoint": {"mode": "lan_only", "domains": [domain]},
                    "volumes": [{"name": volume, "mount_path": "/data"}],
                })),
            )
            .await;
        created["id"].as_str().unwrap().to_owned()
    }

    /// Create, deploy and wait until `domain` serves through the proxy: the service's id.
    async fn deployed_web(&self, env: &str, domain: &str, volume: &str) -> String {
        let id = self.create_web(env, domain, volume).await;
        let svc = format!("{}/services/web", self.env_path(env));
        self.ok(Method::POST, &format!("{svc}/deployments"), Some(json!({})))
            .await;
        self.until_proxy(domain, "deployed", 120, |s| s == StatusCode::OK)
            .await;
        assert_eq!(containers_of(&id).len(), 1);
        id
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

    /// Poll (every 100 ms, up to `secs`) until `done` holds for `domain` through the proxy.
    async fn until_proxy(
        &self,
        domain: &str,
        what: &str,
        secs: u64,
        done: impl Fn(StatusCode) -> bool,
    ) {
        let mut last = None;
        for _ in 0..secs * 10 {
            let s = self.via_proxy(domain).await;
            if done(s) {
                return;
            }
            last = Some(s);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: the proxy still answers {last:?} for {domain} after {secs} s");
    }

    /// Deleted: the domain answers like an unknown one and no container of `service` is left.
    async fn parked(&self, domain: &str, service: &str) {
        let unknown = self.unknown;
        self.until_proxy(domain, "deleted", 60, |s| s == unknown)
            .await;
        for _ in 0..300 {
            if containers_of(service).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(containers_of(service), Vec::<String>::new());
    }

    /// Kill the daemon, remove what is left of the project and assert nothing is.
    fn finish(mut self) {
        kill_and_wait(self.daemon.take());
        remove_project_leftovers(&self.project);
        let left = project_leftovers(&self.project);
        assert!(
            left.iter().all(Vec::is_empty),
            "left behind (containers, networks, volumes): {left:?}"
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The daemon first: it would restart what is removed under it.
        kill_and_wait(self.daemon.take());
        remove_project_leftovers(&self.project);
    }
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

/// Whether Docker has a volume named exactly `name`.
fn volume_exists(name: &str) -> bool {
    docker_cli(&["volume", "ls", "-q", "--filter", &format!("name={name}")])
        .iter()
        .any(|v| v == name)
}

/// Whether Docker has a network named exactly `name`.
fn network_exists(name: &str) -> bool {
    docker_cli(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        &format!("name={name}"),
    ])
    .iter()
    .any(|n| n == name)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The runtime name of volume `declared` (the one the purge reports name): the one name in
/// Docker ending in `--{declared}`.
fn runtime_volume(declared: &str) -> String {
    let found: Vec<String> = docker_cli(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={declared}"),
    ])
    .into_iter()
    .filter(|v| v.ends_with(&format!("--{declared}")))
    .collect();
    assert_eq!(found.len(), 1, "volume {declared}: {found:?}");
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_is_parked_restored_and_purged_keeping_its_volume_unless_asked() {
    let Some(w) = World::start("ds").await else {
        return;
    };
    let domain = format!("{}.clank.test", w.project);
    let volume = format!("clank-{}-web-data", w.project);
    let id = w.deployed_web("production", &domain, &volume).await;
    let svc = format!("{}/services/web", w.env_path("production"));
    let runtime_name = runtime_volume(&volume);

    // Refusals: a Viewer may not delete; a Developer may delete a service but not its data.
    let http = clank_testkit::web::client();
    for (role, path) in [
        ("viewer", svc.clone()),
        ("developer", format!("{svc}?purge=true&volumes=true")),
    ] {
        let member = w
            .ok(
                Method::POST,
                "/v1/workspaces/acme/members",
                Some(json!({"name": role, "email": format!("{role}@example.com"), "role": role})),
            )
            .await;
        let token = member["token"].as_str().unwrap();
        let (s, v) = call_at(&http, w.api, Some(token), Method::DELETE, &path, None).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role} DELETE {path}: {v}");
    }
    assert_eq!(
        containers_of(&id).len(),
        1,
        "a refused delete changes nothing"
    );

    // Soft delete: parked, volume kept, restorable, hidden from the list.
    let report = w.ok(Method::DELETE, &svc, None).await;
    assert!(report["deleted_at"].is_number(), "{report}");
    assert!(
        report["restorable_until"].as_i64().unwrap() > report["deleted_at"].as_i64().unwrap(),
        "{report}"
    );
    assert!(report.get("purged").is_none(), "{report}");
    w.parked(&domain, &id).await;
    assert!(
        volume_exists(&runtime_name),
        "the volume of a deleted service is kept"
    );
    let shown = w.ok(Method::GET, &svc, None).await;
    assert!(shown["deleted_at"].is_number(), "{shown}");
    let services = format!("{}/services", w.env_path("production"));
    assert_eq!(w.ok(Method::GET, &services, None).await, json!([]));
    let all = w
        .ok(
            Method::GET,
            &format!("{services}?include_deleted=true"),
            None,
        )
        .await;
    assert_eq!(all[0]["slug"], "web", "{all}");
    let (s, v) = w
        .call(Method::POST, &format!("{svc}/deployments"), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "deploy while deleted: {v}");
    assert!(v.to_string().contains("restore it first"), "{v}");
    // Its domain stays claimed, and the refusal says by what.
    let (s, v) = w
        .call(
            Method::POST,
            &services,
            Some(json!({
                "slug": "other",
                "source": {"type": "docker_image", "image": clank_testkit::testapp::IMAGE},
                "endpoint": {"mode": "lan_only", "domains": [domain]},
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "domain of a deleted service: {v}");
    assert!(
        v.to_string().contains("deleted service `web`") && v.to_string().contains("restore"),
        "{v}"
    );
    let (s, v) = w
        .call(Method::DELETE, &format!("{svc}?volumes=true"), None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "volumes without purge: {v}"
    );

    // Restore: the same deployment serves again.
    let restored = w.ok(Method::POST, &format!("{svc}/restore"), None).await;
    assert!(restored.get("deleted_at").is_none(), "{restored}");
    w.until_proxy(&domain, "restored", 120, |s| s == StatusCode::OK)
        .await;
    assert_eq!(containers_of(&id).len(), 1);

    // Purge: containers gone, volume kept and named, records gone, slug and domain free.
    let report = w
        .ok(Method::DELETE, &format!("{svc}?purge=true"), None)
        .await;
    let purged = &report["purged"];
    assert_eq!(strings(&purged["containers"]).len(), 1, "{report}");
    assert_eq!(
        strings(&purged["volumes_kept"]),
        std::slice::from_ref(&runtime_name),
        "{report}"
    );
    assert_eq!(strings(&purged["volumes_removed"]), Vec::<String>::new());
    assert!(purged["records"].as_u64().unwrap() >= 2, "{report}");
    assert!(report["restorable_until"].is_null(), "{report}");
    assert_eq!(containers_of(&id), Vec::<String>::new());
    assert!(volume_exists(&runtime_name));
    assert_eq!(
        w.call(Method::GET, &svc, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(w.via_proxy(&domain).await, w.unknown);

    // The slug and domain are free again; purged with its volumes, the volume goes.
    w.create_web("production", &domain, &volume).await;
    let report = w
        .ok(
            Method::DELETE,
            &format!("{svc}?purge=true&volumes=true"),
            None,
        )
        .await;
    assert_eq!(
        strings(&report["purged"]["volumes_removed"]),
        std::slice::from_ref(&runtime_name),
        "{report}"
    );
    assert!(!volume_exists(&runtime_name), "purged with volumes");

    let audit = w.ok(Method::GET, "/v1/workspaces/acme/audit", None).await;
    for action in ["service.delete", "service.restore", "service.purge"] {
        assert!(
            audit.to_string().contains(action),
            "{action} not audited: {audit}"
        );
    }
    w.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_environment_takes_its_services_along_and_its_purge_removes_its_network() {
    let Some(w) = World::start("de").await else {
        return;
    };
    w.ok(
        Method::POST,
        &format!("{}/environments", w.project_path()),
        Some(json!({"name": "staging"})),
    )
    .await;
    let domain = format!("staging-{}.clank.test", w.project);
    let volume = format!("clank-{}-staging-data", w.project);
    let id = w.deployed_web("staging", &domain, &volume).await;
    let runtime_name = runtime_volume(&volume);
    let env = w.env_path("staging");
    let svc = format!("{env}/services/web");

    // The default environment goes only with its project.
    let (s, v) = w
        .call(Method::DELETE, &w.env_path("production"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("delete the project"), "{v}");

    // Soft delete: its service is parked too; restoring the service alone is refused.
    let report = w.ok(Method::DELETE, &env, None).await;
    assert!(report["restorable_until"].is_number(), "{report}");
    w.parked(&domain, &id).await;
    let envs = format!("{}/environments", w.project_path());
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&w.ok(Method::GET, &envs, None).await), ["production"]);
    assert_eq!(
        names(
            &w.ok(Method::GET, &format!("{envs}?include_deleted=true"), None)
                .await
        ),
        ["production", "staging"]
    );
    let (s, v) = w.call(Method::POST, &format!("{svc}/restore"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("restore the environment"), "{v}");

    // Restore the environment: its service serves again.
    w.ok(Method::POST, &format!("{env}/restore"), None).await;
    w.until_proxy(&domain, "restored", 120, |s| s == StatusCode::OK)
        .await;

    // Purge with volumes: containers, network and volume gone, records gone.
    let report = w
        .ok(
            Method::DELETE,
            &format!("{env}?purge=true&volumes=true"),
            None,
        )
        .await;
    let purged = &report["purged"];
    let networks = strings(&purged["networks"]);
    assert_eq!(networks.len(), 1, "{report}");
    assert!(
        networks[0].ends_with(&format!("--{}--staging", w.project)),
        "{report}"
    );
    assert!(
        !network_exists(&networks[0]),
        "network {} is left",
        networks[0]
    );
    assert_eq!(strings(&purged["containers"]).len(), 1, "{report}");
    assert_eq!(
        strings(&purged["volumes_removed"]),
        std::slice::from_ref(&runtime_name),
        "{report}"
    );
    assert!(!volume_exists(&runtime_name));
    assert_eq!(containers_of(&id), Vec::<String>::new());
    assert_eq!(
        w.call(Method::GET, &svc, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        names(
            &w.ok(Method::GET, &format!("{envs}?include_deleted=true"), None)
                .await
        ),
        ["production"]
    );
    // The name is free again.
    w.ok(Method::POST, &envs, Some(json!({"name": "staging"})))
        .await;
    w.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_project_is_restored_whole_and_its_purge_frees_the_slug() {
    let Some(w) = World::start("dp").await else {
        return;
    };
    let domain = format!("{}.clank.test", w.project);
    let volume = format!("clank-{}-web-data", w.project);
    let id = w.deployed_web("production", &domain, &volume).await;
    let runtime_name = runtime_volume(&volume);
    let project = w.project_path();
    let network = docker_cli(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        &format!("name={}", w.project),
    ]);
    assert_eq!(network.len(), 1, "{network:?}");

    let report = w.ok(Method::DELETE, &project, None).await;
    assert!(report["restorable_until"].is_number(), "{report}");
    w.parked(&domain, &id).await;
    let projects = "/v1/workspaces/acme/projects";
    let listed = w.ok(Method::GET, projects, None).await;
    assert!(!listed.to_string().contains(&w.project), "{listed}");
    let listed = w
        .ok(
            Method::GET,
            &format!("{projects}?include_deleted=true"),
            None,
        )
        .await;
    assert!(listed.to_string().contains(&w.project), "{listed}");
    let svc = format!("{}/services/web", w.env_path("production"));
    let (s, v) = w.call(Method::POST, &format!("{svc}/restore"), None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("restore the project"), "{v}");

    w.ok(Method::POST, &format!("{project}/restore"), None)
        .await;
    w.until_proxy(&domain, "restored", 120, |s| s == StatusCode::OK)
        .await;

    // Purge, volumes kept: the project's network goes, the volume stays and is named.
    let report = w
        .ok(Method::DELETE, &format!("{project}?purge=true"), None)
        .await;
    let purged = &report["purged"];
    assert_eq!(strings(&purged["networks"]), network, "{report}");
    assert!(!network_exists(&network[0]));
    assert_eq!(
        strings(&purged["volumes_kept"]),
        std::slice::from_ref(&runtime_name),
        "{report}"
    );
    assert!(volume_exists(&runtime_name));
    assert_eq!(containers_of(&id), Vec::<String>::new());
    assert_eq!(
        w.call(Method::GET, &project, None).await.0,
        StatusCode::NOT_FOUND
    );

    // The slug is free: a new project of it, whose service mounts the kept volume, purged
    // with its volumes.
    w.ok(
        Method::POST,
        projects,
        Some(json!({"name": "Shop again", "slug": w.project})),
    )
    .await;
    w.create_web("production", &domain, &volume).await;
    let report = w
        .ok(
            Method::DELETE,
            &format!("{project}?purge=true&volumes=true"),
            None,
        )
        .await;
    assert_eq!(
        strings(&report["purged"]["volumes_removed"]),
        std::slice::from_ref(&runtime_name),
        "{report}"
    );
    assert!(!volume_exists(&runtime_name));
    w.finish();
}
