//! The real daemon in-process on a loopback port, with native processes (no Docker) and the
//! API limits a test chooses: start, call, deploy the busybox test app, shut down, clean up.

#![allow(dead_code)] // each test binary uses its own part of this

pub(crate) mod browser;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::runtime::{OwnerFilter, Runtime};
use clank_daemon::{ApiLimits, DaemonConfig, DaemonError, Settings};
use clank_testkit::testapp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub(crate) const WS: &str = "/v1/workspaces/acme";
pub(crate) const ENV: &str = "/v1/workspaces/acme/projects/shop/environments/production";

pub(crate) struct Daemon {
    pub(crate) addr: SocketAddr,
    pub(crate) http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<Result<(), DaemonError>>>,
    pub(crate) dir: tempfile::TempDir,
    /// The embedded proxy's HTTP address, when the settings configure a proxy.
    pub(crate) proxy_addr: Option<SocketAddr>,
    /// Every response body [`Daemon::call`] has seen, to check secrets never appear in any.
    pub(crate) bodies: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// On native processes, with the API limits `limits`.
    pub(crate) async fn start(limits: ApiLimits) -> Daemon {
        Daemon::start_on("process", |s| s.limits = limits).await
    }

    /// On `runtime` with the settings `tweak` makes; with a proxy configured, the embedded
    /// proxy serves HTTP on a loopback port of its own ([`Daemon::proxy_addr`]).
    pub(crate) async fn start_on(runtime: &str, tweak: impl FnOnce(&mut Settings)) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // The native runtime runs the test app as its workspace's own user (tests run as
        // root): its way into the app's directory must be open.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .unwrap();
        let mut settings = Settings::from(DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            runtime: runtime.into(),
            proxy: None,
            agent_listen: None,
            agent_tls: true,
            ..DaemonConfig::default()
        });
        tweak(&mut settings);
        let listener = tokio::net::TcpListener::bind(settings.daemon.listen)
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mut proxy_listeners = clank_daemon::ProxyListeners::default();
        if settings.daemon.proxy.is_some() {
            proxy_listeners.http =
                Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let proxy_addr = proxy_listeners
            .http
            .as_ref()
            .map(|l| l.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clank_daemon::serve_with_proxy(
            settings,
            listener,
            proxy_listeners,
            async move {
                let _ = stopped.await;
            },
        ));
        let d = Daemon {
            addr,
            http: clank_testkit::web::client(),
            stop: Some(stop),
            task: Some(task),
            dir,
            proxy_addr,
            bodies: Default::default(),
        };
        // A client of its own, dropped after: its pooled connection holds no slot of the cap.
        let probe = clank_testkit::web::client();
        for _ in 0..200 {
            if probe.get(d.url("/v1/health")).send().await.is_ok() {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("daemon did not come up");
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn request(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub(crate) async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.request(token, method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let (status, text) = send(r).await;
        self.bodies.lock().unwrap().push(text.clone());
        (status, json_or_text(text))
    }

    /// POST `body` as it is, with `headers` (JSON unless they name a content type).
    pub(crate) async fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (StatusCode, Value) {
        let mut r = self.http.post(self.url(path)).body(body.to_vec());
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            r = r.header("content-type", "application/json");
        }
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let (status, text) = send(r).await;
        (status, json_or_text(text))
    }

    pub(crate) async fn ok(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (s, v) = self.call(Some(token), method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path} → {s}: {v}");
        v
    }

    /// Deployment `n` of `service` (its API path) once ACTIVE; panics if it ends otherwise or
    /// takes over 120 s.
    pub(crate) async fn wait_active(&self, token: &str, service: &str, n: u64) -> Value {
        for _ in 0..1200 {
            let path = format!("{service}/deployments/{n}");
            let v = self.ok(token, Method::GET, &path, None).await;
            match v["status"].as_str() {
                Some("ACTIVE") => return v,
                Some("FAILED" | "CANCELLED" | "SUPERSEDED") => {
                    panic!("{service} deployment #{n} ended: {v}")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("{service} deployment #{n} is not ACTIVE after 120 s");
    }

    /// The first workspace `acme` and its Owner's token.
    pub(crate) async fn init(&self) -> String {
        let (s, v) = self
            .call(
                None,
                Method::POST,
                "/v1/init",
                Some(json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }

    /// A new member `name@example.com` with `role`: their user id and first token.
    pub(crate) async fn member(&self, by: &str, name: &str, role: &str) -> (String, String) {
        let v = self
            .ok(
                by,
                Method::POST,
                &format!("{WS}/members"),
                Some(json!({"name": name, "email": format!("{name}@example.com"), "role": role})),
            )
            .await;
        (
            v["user"]["id"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Project `shop` with service `slug` running `command` (native process).
    pub(crate) async fn service(&self, owner: &str, slug: &str, command: Vec<String>) {
        let (s, v) = self
            .call(
                Some(owner),
                Method::POST,
                &format!("{WS}/projects"),
                Some(json!({"name": "Shop"})),
            )
            .await;
        assert!(s.is_success() || s == StatusCode::CONFLICT, "{s}: {v}");
        self.ok(
            owner,
            Method::POST,
            &format!("{ENV}/services"),
            Some(json!({
                "slug": slug,
                "source": {"type": "docker_image", "image": testapp::IMAGE},
                "settings": {"health_check_interval_s": 1},
                "processes": {"web": {"command": command}},
            })),
        )
        .await;
    }

    /// The busybox test app as service `web`, deployed and ACTIVE; `None` without busybox.
    pub(crate) async fn active_testapp(&self, owner: &str) -> Option<()> {
        if !testapp::busybox_available() {
            eprintln!(
                "SKIPPED: {} missing (Debian's busybox-static)",
                testapp::BUSYBOX
            );
            return None;
        }
        let app = self.dir.path().join("app");
        testapp::write_testapp(&app).unwrap();
        let start = app.join("start.sh").to_string_lossy().into_owned();
        self.service(
            owner,
            "web",
            vec![testapp::BUSYBOX.into(), "sh".into(), start],
        )
        .await;
        let svc = format!("{ENV}/services/web");
        let d = self
            .ok(
                owner,
                Method::POST,
                &format!("{svc}/deployments"),
                Some(json!({})),
            )
            .await;
        let n = d["number"].as_u64().unwrap();
        for _ in 0..600 {
            let v = self
                .ok(owner, Method::GET, &format!("{svc}/deployments/{n}"), None)
                .await;
            match v["status"].as_str() {
                Some("ACTIVE") => return Some(()),
                Some("FAILED" | "CANCELLED") => panic!("the test app did not deploy: {v}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the test app is not ACTIVE after 60 s");
    }

    /// Fire the shutdown signal; the serve task keeps running until it has stopped.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shut down, wait for `serve` to return, and remove the workloads it left running.
    pub(crate) async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        remove_workloads(self.dir.path().join("data/processes")).await;
    }

    /// Shut down and wait for `serve` to return, whether or not it ended cleanly.
    pub(crate) async fn stop_whatever_the_outcome(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        remove_workloads(self.dir.path().join("data/processes")).await;
    }
}

/// Send `r`: the status and body text. A pooled connection the server closed (idle, or after
/// answering early: a 413 before reading a huge body) is retried once on a fresh one.
pub(crate) async fn send(r: reqwest::RequestBuilder) -> (StatusCode, String) {
    let retry = r.try_clone().unwrap();
    let resp = match r.send().await {
        Ok(resp) => resp,
        Err(e) if e.is_request() => retry.send().await.unwrap(),
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// A body as JSON, or as a JSON string when it is not JSON.
pub(crate) fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// One JSON request to the API at `addr` (a daemon this test did not start in-process).
pub(crate) async fn call_at(
    http: &reqwest::Client,
    addr: SocketAddr,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = http.request(method, format!("http://{addr}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let (status, text) = send(r).await;
    (status, json_or_text(text))
}

/// [`call_at`] that must succeed: the body.
pub(crate) async fn ok_at(
    addr: SocketAddr,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, v) = call_at(
        &clank_testkit::web::client(),
        addr,
        token,
        method.clone(),
        path,
        body,
    )
    .await;
    assert!(status.is_success(), "{method} {path} → {status}: {v}");
    v
}

/// `POST /v1/init` of workspace `acme` at `addr`: its Owner's token.
pub(crate) async fn init_at(addr: SocketAddr) -> String {
    ok_at(
        addr,
        None,
        Method::POST,
        "/v1/init",
        Some(json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"})),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Docker with the test app image loaded, or `None`: the test skips (CI fails instead).
pub(crate) async fn docker_with_testapp() -> Option<clank_docker::DockerRuntime> {
    let docker = match clank_docker::DockerRuntime::connect().await {
        Ok(d) => d,
        Err(e) => return clank_testkit::runtime::skip_or_fail("a Docker Engine", &e.to_string()),
    };
    clank_testkit::testapp::docker::ensure_testapp_image(docker.client())
        .await
        .unwrap();
    Some(docker)
}

/// The native runtime's workloads outlive the daemon (a restart adopts them): end them.
pub(crate) async fn remove_workloads(state: PathBuf) {
    if !state.exists() {
        return;
    }
    for _ in 0..50 {
        match clank_process::ProcessRuntime::open(&state) {
            Ok(runtime) => {
                for w in runtime
                    .list(&OwnerFilter::default())
                    .await
                    .unwrap_or_default()
                {
                    let _ = runtime.remove(&w.id).await;
                }
                return;
            }
            // The stopped daemon's runtime may still be closing.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("could not open {} to clean up", state.display());
}

/// Kill the proxy process the daemon started (its pid file), whatever happens to the test.
pub(crate) struct ProxyReaper(pub(crate) std::path::PathBuf);

impl Drop for ProxyReaper {
    fn drop(&mut self) {
        let pid_file = self
            .0
            .join(clank_daemon::PROXY_DIR)
            .join(clank_daemon::PID_FILE);
        if let Ok(pid) = std::fs::read_to_string(pid_file) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", pid.trim()])
                .status();
        }
    }
}

/// A loopback address on a free port (bound and released; never one handed out before).
pub(crate) fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], clank_testkit::pebble::free_port()))
}

/// The released `clank-daemon` binary serving `data` on `api`, configured by `env` (besides
/// `CLANK_DATA`, `CLANK_LISTEN` and a `warn` log), once it answers `/v1/health` (within 10 s).
pub(crate) async fn spawn_daemon(
    data: &std::path::Path,
    api: SocketAddr,
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_clank-daemon"))
        .env("CLANK_DATA", data)
        .env("CLANK_LISTEN", api.to_string())
        .env("CLANK_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = clank_testkit::web::client();
    for _ in 0..400 {
        if http
            .get(format!("http://{api}/v1/health"))
            .send()
            .await
            .is_ok()
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("clank-daemon did not come up on {api}");
}

/// Remove the Docker containers and network of project `project` of a daemon whose data
/// directory is gone with its test (what its workspace started outlives it).
pub(crate) async fn remove_project_containers(project: &str) {
    let docker = clank_docker::DockerRuntime::connect().await.unwrap();
    let all = docker
        .list(&OwnerFilter::default())
        .await
        .unwrap_or_default();
    let prefix = format!("clank-{project}--");
    for w in all
        .into_iter()
        .filter(|w| clank_core::runtime::unscoped_name(&w.name).starts_with(&prefix))
    {
        let _ = docker.remove(&w.id).await;
    }
    testapp::docker::remove_networks_of_project(docker.client(), project).await;
}

/// `docker` with `args` (the CLI): its stdout lines, none when it fails.
pub(crate) fn docker_cli(args: &[&str]) -> Vec<String> {
    std::process::Command::new("docker")
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The containers, networks and volumes whose names carry `project` (every name Clank gives
/// them does: `clank-{scope}--{project}--…`, `clank-{scope}--{project}`,
/// `clank-{scope}--clank-{project}-…-data`).
pub(crate) fn project_leftovers(project: &str) -> [Vec<String>; 3] {
    let filter = format!("name={project}");
    [
        docker_cli(&["ps", "-aq", "--filter", &filter]),
        docker_cli(&["network", "ls", "-q", "--filter", &filter]),
        docker_cli(&["volume", "ls", "-q", "--filter", &filter]),
    ]
}

/// Remove them (containers first: a network or volume in use cannot go), retrying a while.
pub(crate) fn remove_project_leftovers(project: &str) {
    for _ in 0..10 {
        let [containers, networks, volumes] = project_leftovers(project);
        if containers.is_empty() && networks.is_empty() && volumes.is_empty() {
            return;
        }
        for c in &containers {
            docker_cli(&["rm", "-f", "-v", c]);
        }
        for n in &networks {
            docker_cli(&["network", "rm", n]);
        }
        for v in &volumes {
            docker_cli(&["volume", "rm", "-f", v]);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Kill a spawned daemon process and wait (up to 5 s) until it is gone: usable from `Drop`.
pub(crate) fn kill_and_wait(daemon: Option<tokio::process::Child>) {
    if let Some(mut d) = daemon {
        let _ = d.start_kill();
        if let Some(pid) = d.id() {
            for _ in 0..100 {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Service `web` of project `shop` (workspace `acme`, environment `production`).
pub(crate) const SVC: &str =
    "/v1/workspaces/acme/projects/shop/environments/production/services/web";

/// The daemon on the Docker Engine, with the remote-servers endpoints on and, with `proxy`, the
/// embedded proxy on a loopback port of its own; `None` (skipped) without Docker.
pub(crate) async fn on_docker(proxy: bool) -> Option<Daemon> {
    docker_with_testapp().await?;
    Some(
        Daemon::start_on("docker", |s| {
            s.daemon.proxy = proxy.then(clank_daemon::default_proxy_config);
            // The test binds the proxy's listener itself: served in this process.
            s.daemon.proxy_mode = clank_daemon::ProxyMode::Embedded;
            s.daemon.agent_listen = Some("127.0.0.1:0".parse().unwrap());
        })
        .await,
    )
}

/// Project `shop` with the test app as service `web` (not deployed).
pub(crate) async fn service_with_project(d: &Daemon, owner: &str) {
    d.ok(
        owner,
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Shop"})),
    )
    .await;
    let body = json!({"slug": "web", "source": {"type": "docker_image", "image": "clank-testapp:latest"}, "settings": {"health_check_interval_s": 1}});
    d.ok(
        owner,
        Method::POST,
        "/v1/workspaces/acme/projects/shop/environments/production/services",
        Some(body),
    )
    .await;
}
