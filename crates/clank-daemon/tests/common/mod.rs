//! The real daemon in-process on a loopback port, with native processes (no Docker) and the
//! API limits a test chooses: start, call, deploy the busybox test app, shut down, clean up.

#![allow(dead_code)] // each test binary uses its own part of this

use std::net::SocketAddr;
use std::path::PathBuf;
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
}

impl Daemon {
    pub(crate) async fn start(limits: ApiLimits) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        // The native runtime runs the test app as its workspace's own user (tests run as
        // root): its way into the app's directory must be open.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))
            .unwrap();
        let daemon = DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            runtime: "process".into(),
            proxy: None,
            agent_listen: None,
            agent_tls: true,
            ..DaemonConfig::default()
        };
        let listener = tokio::net::TcpListener::bind(daemon.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clank_daemon::serve(
            Settings { daemon, limits },
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let d = Daemon {
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            dir,
        };
        // A client of its own, dropped after: its pooled connection holds no slot of the cap.
        let probe = reqwest::Client::new();
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
        // A pooled connection the server closed as idle is retried once on a fresh one.
        let retry = r.try_clone().unwrap();
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) if e.is_request() => retry.send().await.unwrap(),
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
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
