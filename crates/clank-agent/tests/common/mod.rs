//! The agent tests' one harness: the real daemon in-process as the control plane (REST API on
//! loopback, TLS agent endpoint), restartable on the same data directory and ports; free
//! loopback addresses; Docker with the test app image, or a skip.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_daemon::DaemonConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A loopback address on a free port (bound and released).
pub(crate) fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], clank_testkit::pebble::free_port()))
}

/// Docker with the test app image loaded, or `None`: the test skips (CI fails instead).
pub(crate) async fn docker_with_testapp() -> Option<clank_docker::DockerRuntime> {
    match clank_docker::DockerRuntime::connect().await {
        Ok(d) => {
            clank_testkit::testapp::docker::ensure_testapp_image(d.client())
                .await
                .unwrap();
            Some(d)
        }
        Err(e) => clank_testkit::runtime::skip_or_fail("a Docker Engine", &e.to_string()),
    }
}

/// The daemon serving in-process until shut down (or dropped).
pub(crate) struct ControlPlane {
    pub(crate) api: SocketAddr,
    pub(crate) agents: SocketAddr,
    pub(crate) data: PathBuf,
    pub(crate) http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Serve with its data in `data`, workloads on `runtime`, the REST API on `api` (port 0:
    /// any free one) and the agent endpoint on `agents`.
    pub(crate) async fn start(
        data: &Path,
        runtime: &str,
        api: SocketAddr,
        agents: SocketAddr,
    ) -> ControlPlane {
        ControlPlane::start_with(data, runtime, api, agents, |_| {}).await
    }

    /// [`ControlPlane::start`] with the configuration changed by `tweak` first.
    pub(crate) async fn start_with(
        data: &Path,
        runtime: &str,
        api: SocketAddr,
        agents: SocketAddr,
        tweak: impl FnOnce(&mut DaemonConfig),
    ) -> ControlPlane {
        let mut config = DaemonConfig {
            listen: api,
            data_dir: data.to_owned(),
            runtime: runtime.into(),
            proxy: None,
            agent_listen: Some(agents),
            agent_tls: true,
            ..DaemonConfig::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(api).await.unwrap();
        let api = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            clank_daemon::serve(config, listener, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let cp = ControlPlane {
            api,
            agents,
            data: data.to_owned(),
            http: clank_testkit::web::client(),
            stop: Some(stop),
            task: Some(task),
        };
        for _ in 0..200 {
            if cp.http.get(cp.url("/v1/health")).send().await.is_ok() {
                return cp;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("daemon did not come up");
    }

    /// Signal shutdown and wait (up to 30 s) for `serve` to return.
    pub(crate) async fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    pub(crate) async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
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
        let (s, v) = self.call(token, method.clone(), path, body).await;
        assert!(s.is_success(), "{method} {path} → {s}: {v}");
        v
    }

    /// The first workspace `acme` and its Owner's token.
    pub(crate) async fn init(&self) -> String {
        let resp = self
            .http
            .post(self.url("/v1/init"))
            .json(&json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Register a server: (id, join token, endpoint fingerprint).
    pub(crate) async fn add_server(&self, token: &str, name: &str) -> (String, String, String) {
        let (s, v) = self
            .call(
                token,
                Method::POST,
                "/v1/workspaces/acme/servers",
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["server"]["id"].as_str().unwrap().to_owned(),
            v["join_token"].as_str().unwrap().to_owned(),
            v["control_plane_fingerprint"].as_str().unwrap().to_owned(),
        )
    }

    /// The agent endpoint's certificate fingerprint (made in the data directory).
    pub(crate) fn fingerprint(&self) -> String {
        let pem = std::fs::read_to_string(self.data.join("agent-endpoint.crt")).unwrap();
        clank_fleet::tls::fingerprint_of_pem(&pem).unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A control-plane fleet on an in-memory store, serving its TLS agent endpoint on loopback
/// (certificate under `dir`) until `stop` is cancelled: no daemon around it.
pub(crate) struct FleetEndpoint {
    pub(crate) fleet: clank_fleet::Fleet,
    pub(crate) endpoint: SocketAddr,
    pub(crate) stop: tokio_util::sync::CancellationToken,
    /// The endpoint certificate's fingerprint, as `clank server add` prints it.
    pub(crate) fingerprint: String,
}

impl FleetEndpoint {
    pub(crate) async fn start(dir: &Path) -> FleetEndpoint {
        use clank_core::secret::{KeyId, Keyring};
        let tls =
            clank_fleet::tls::EndpointTls::load_or_create(dir, &["localhost".to_owned()]).unwrap();
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let catalog = clank_core::store::catalog::Catalog::new(std::sync::Arc::new(
            clank_core::store::memory::MemoryStore::new(),
        ));
        let fleet = clank_fleet::Fleet::open(
            catalog,
            keyring,
            clank_fleet::FleetConfig {
                endpoint_fingerprint: Some(tls.fingerprint.clone()),
                ..clank_fleet::FleetConfig::default()
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let (service, stopped, serving) = (fleet.service(), stop.clone(), fleet.clone());
        let fingerprint = tls.fingerprint.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                stopped.cancelled().await;
                serving.close().await;
            };
            if let Err(e) = service.serve(listener, Some(&tls), shutdown).await {
                eprintln!("the agent endpoint stopped: {e}");
            }
        });
        FleetEndpoint {
            fleet,
            endpoint,
            stop,
            fingerprint,
        }
    }

    /// A real `clank-agent` enrolling with `join_token` (state and `agent.log` under `dir`,
    /// heartbeat and reconnect backoff 1 s), with `args` added.
    pub(crate) fn spawn_agent(
        &self,
        dir: &Path,
        join_token: &str,
        args: &[String],
    ) -> tokio::process::Child {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_clank-agent"))
            .arg("--control-plane")
            .arg(format!("https://{}", self.endpoint))
            .arg("--state-dir")
            .arg(dir.join("agent-state"))
            .arg("--fingerprint")
            .arg(&self.fingerprint)
            .args(args)
            .arg("--join-token")
            .arg(join_token)
            .env("CLANK_AGENT_HEARTBEAT_S", "1")
            .env("CLANK_AGENT_BACKOFF_MAX_S", "1")
            .env("CLANK_LOG", "info,h2=warn,tower=warn,bollard=warn")
            .env_remove("CLANK_JOIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("agent.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }
}
