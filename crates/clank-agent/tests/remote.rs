//! Remote servers end to end: the real daemon in-process (REST API + agent endpoint), real
//! `clank-agent` processes each with its own server identity and state directory, and the
//! real Docker engine. Agents reach the control plane through a TCP relay the tests can cut
//! (a partition) and heal.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::{docker_with_testapp, free_addr};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const AGENT: &str = env!("CARGO_BIN_EXE_clank-agent");

/// The control plane on Docker, restartable on the same data directory and ports, with the
/// test's project.
struct ControlPlane {
    daemon: common::ControlPlane,
    /// The test's project: its own, so tests running side by side share no container names.
    project: String,
}

impl std::ops::Deref for ControlPlane {
    type Target = common::ControlPlane;
    fn deref(&self) -> &common::ControlPlane {
        &self.daemon
    }
}

impl ControlPlane {
    async fn new(project: &str) -> (ControlPlane, tempfile::TempDir) {
        let data = tempfile::tempdir().unwrap();
        remove_named(&format!("clank-{project}--")).await;
        remove_networks(&format!("clank-{project}")).await;
        let daemon =
            common::ControlPlane::start(data.path(), "docker", free_addr(), free_addr()).await;
        let cp = ControlPlane {
            daemon,
            project: project.to_owned(),
        };
        (cp, data)
    }

    fn env(&self) -> String {
        format!(
            "/v1/workspaces/acme/projects/{}/environments/production",
            self.project
        )
    }

    async fn restart(mut self) -> ControlPlane {
        self.daemon.shutdown().await;
        let daemon = common::ControlPlane::start(&self.data, "docker", self.api, self.agents).await;
        ControlPlane {
            daemon,
            project: self.project.clone(),
        }
    }

    /// Register a server; returns its id and join token.
    async fn add_server(&self, token: &str, name: &str) -> (String, String) {
        let (id, join_token, fingerprint) = self.daemon.add_server(token, name).await;
        assert_eq!(
            fingerprint,
            self.fingerprint(),
            "the join comes with the endpoint's pin"
        );
        (id, join_token)
    }

    /// The agent endpoint's URL (TLS).
    fn agent_url(&self) -> String {
        format!("https://{}", self.agents)
    }

    async fn server(&self, token: &str, name: &str) -> Value {
        self.ok(
            token,
            Method::GET,
            &format!("/v1/workspaces/acme/servers/{name}"),
            None,
        )
        .await
    }

    async fn wait_server(
        &self,
        token: &str,
        name: &str,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..1200 {
            let v = self.server(token, name).await;
            if ok(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "server {name} never became {what}: {}",
            self.server(token, name).await
        );
    }

    async fn service_on(&self, token: &str, slug: &str, server: &str, greeting: &str) {
        let body = json!({
            "slug": slug,
            "source": {"type": "docker_image", "image": "clank-testapp:latest"},
            "settings": {"health_check_interval_s": 1},
            "server_id": server,
        });
        self.ok(
            token,
            Method::POST,
            &format!("{}/services", self.env()),
            Some(body),
        )
        .await;
        self.set_greeting(token, slug, greeting).await;
    }

    async fn set_greeting(&self, token: &str, slug: &str, greeting: &str) {
        self.ok(
            token,
            Method::PATCH,
            &format!("{}/services/{slug}/config", self.env()),
            Some(json!({"changes": [{"key": "GREETING", "value": greeting}]})),
        )
        .await;
    }

    async fn deploy(&self, token: &str, slug: &str) -> u64 {
        let v = self
            .ok(
                token,
                Method::POST,
                &format!("{}/services/{slug}/deployments", self.env()),
                Some(json!({})),
            )
            .await;
        v["number"].as_u64().unwrap()
    }

    async fn wait_status(
        &self,
        token: &str,
        slug: &str,
        n: u64,
        want: &str,
        within: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let v = self
                .ok(
                    token,
                    Method::GET,
                    &format!("{}/services/{slug}/deployments/{n}", self.env()),
                    None,
                )
                .await;
            if v["status"] == want {
                return v;
            }
            let s = v["status"].as_str().unwrap_or_default().to_owned();
            if ["FAILED", "CANCELLED", "SUPERSEDED"].contains(&s.as_str()) {
                panic!("{slug} #{n} ended {s} (wanted {want}): {}", v["reason"]);
            }
            if tokio::time::Instant::now() > deadline {
                panic!("{slug} #{n} is {s}, not {want}, after {within:?}: {v}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of `NAME` in the running service's environment, through the agent's exec.
    async fn printenv(&self, token: &str, slug: &str, name: &str) -> String {
        let v = self
            .ok(
                token,
                Method::POST,
                &format!("{}/services/{slug}/exec", self.env()),
                Some(json!({"command": ["/bin/busybox", "env"]})),
            )
            .await;
        assert_eq!(v["exit_code"], 0, "{v}");
        let prefix = format!("{name}=");
        v["stdout"]
            .as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_default()
            .to_owned()
    }
}

/// A TCP relay between agents and the control plane that can be cut and healed.
#[derive(Clone)]
struct Relay {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(watch::Sender::new(true));
        let state = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !*state.borrow() {
                    let _ = inbound.shutdown().await;
                    continue;
                }
                let mut closed = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Relay { addr, open }
    }

    fn cut(&self) {
        self.open.send_replace(false);
    }

    fn heal(&self) {
        self.open.send_replace(true);
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// One `clank-agent` process with its own state directory and its own copy of the binary
/// (self-update replaces the copy).
struct Agent {
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
    control_plane: String,
    fingerprint: String,
    /// Where the server's own proxy listens, if it runs one.
    proxy: Option<SocketAddr>,
}

impl Agent {
    fn exe(&self) -> PathBuf {
        self.dir.path().join("bin/clank-agent")
    }

    fn new(control_plane: String, fingerprint: String) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::copy(AGENT, dir.path().join("bin/clank-agent")).unwrap();
        Agent {
            dir,
            child: None,
            control_plane,
            fingerprint,
            proxy: None,
        }
    }

    fn spawn(&mut self, join_token: Option<&str>) {
        let mut cmd = tokio::process::Command::new(self.exe());
        cmd.arg("--control-plane")
            .arg(&self.control_plane)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--fingerprint")
            .arg(&self.fingerprint)
            .args(
                self.proxy
                    .iter()
                    .flat_map(|p| ["--proxy-listen".to_owned(), p.to_string()]),
            )
            .env("CLANK_AGENT_HEARTBEAT_S", "1")
            .env("CLANK_AGENT_BACKOFF_MAX_S", "1")
            .env("CLANK_AGENT_UPDATE_ROLLBACK_S", "20")
            .env("CLANK_LOG", "info,h2=warn,tower=warn,bollard=warn")
            .env_remove("CLANK_JOIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("agent.log")).unwrap())
            .kill_on_drop(true);
        if let Some(t) = join_token {
            cmd.arg("--join-token").arg(t);
        }
        // A binary copied a moment ago may still be open for writing in a child forked by a
        // test running beside this one (ETXTBSY) until that child execs: retry briefly.
        for attempt in 0.. {
            match cmd.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if e.raw_os_error() == Some(26) && attempt < 50 => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("spawn {}: {e}", self.exe().display()),
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Wait for the process to exit on its own; its exit code.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        match tokio::time::timeout(within, child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!(
                "the agent did not exit within {within:?}; log:\n{}",
                self.log()
            ),
        }
    }

    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

/// Every container the agent of `server` runs for service `slug` (by the runtime's labels).
async fn containers(
    docker: &clank_docker::DockerRuntime,
    server: &str,
    slug_prefix: &str,
) -> Vec<String> {
    use bollard::query_parameters::ListContainersOptions;
    let filters = std::collections::HashMap::from([(
        "label".to_owned(),
        vec![format!("{}={server}", clank_docker::SCOPE_LABEL)],
    )]);
    docker
        .client()
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| clank_core::runtime::unscoped_name(n).starts_with(slug_prefix))
        .collect()
}

/// Wait until exactly one container of the prefix remains on the server (retired ones are
/// removed right after the cutover); the names seen last.
async fn settle_to_one(
    docker: &clank_docker::DockerRuntime,
    server: &str,
    prefix: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..150 {
        seen = containers(docker, server, prefix).await;
        if seen.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// GET `path` with `Host: host` through a proxy; the whole response.
async fn via_proxy(proxy: SocketAddr, host: &str, path: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

async fn remove_scoped(docker: &clank_docker::DockerRuntime, server: &str) {
    use clank_core::runtime::{OwnerFilter, Runtime};
    let scoped = docker.clone().with_scope(server.to_owned());
    for w in scoped
        .list(&OwnerFilter::default())
        .await
        .unwrap_or_default()
    {
        let _ = scoped.remove(&w.id).await;
    }
}

async fn project(cp: &ControlPlane, token: &str) {
    cp.ok(
        token,
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": cp.project, "slug": cp.project})),
    )
    .await;
}

/// Remove every network named `name` (by id: an interrupted run may have left duplicates).
async fn remove_networks(name: &str) {
    let Ok(docker) = clank_docker::DockerRuntime::connect().await else {
        return;
    };
    // `name` without its workspace scope (`clank-{project}`): any workspace's network.
    let found = docker
        .client()
        .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
        .await
        .unwrap_or_default();
    for n in found.into_iter().filter(|n| {
        n.name
            .as_deref()
            .is_some_and(|n| clank_core::runtime::unscoped_name(n) == name)
    }) {
        if let Some(id) = n.id {
            let _ = docker.client().remove_network(&id).await;
        }
    }
}

/// Remove containers left by an earlier, interrupted run of a test.
async fn remove_named(prefix: &str) {
    let Ok(docker) = clank_docker::DockerRuntime::connect().await else {
        return;
    };
    use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
    let all = docker
        .client()
        .list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap_or_default();
    for c in all {
        let named = c.names.unwrap_or_default().iter().any(|n| {
            clank_core::runtime::unscoped_name(n.trim_start_matches('/')).starts_with(prefix)
        });
        if let (true, Some(id)) = (named, c.id) {
            let _ = docker
                .client()
                .remove_container(
                    &id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_enroll_deploy_redeploy_and_rollback_each_on_its_own_server() {
    let Some(docker) = docker_with_testapp().await else {
        return;
    };
    let (cp, _data) = ControlPlane::new("agent-pair").await;
    let owner = cp.init().await;
    project(&cp, &owner).await;
    let (id_a, token_a) = cp.add_server(&owner, "alpha").await;
    let (id_b, token_b) = cp.add_server(&owner, "beta").await;
    let (url, fp) = (cp.agent_url(), cp.fingerprint());
    let (mut a, mut b) = (Agent::new(url.clone(), fp.clone()), Agent::new(url, fp));
    let proxy_a = free_addr();
    a.proxy = Some(proxy_a);
    a.spawn(Some(&token_a));
    b.spawn(Some(&token_b));
    for name in ["alpha", "beta"] {
        let v = cp
            .wait_server(&owner, name, "connected with a heartbeat", |v| {
                v["connected"] == true && v["usage"]["memory_total_bytes"].as_u64().unwrap_or(0) > 0
            })
            .await;
        assert_eq!(v["status"], "connected", "{v}");
        assert!(
            v["kind"]["identity"]
                .as_str()
                .unwrap()
                .starts_with("sha256:"),
            "{v}"
        );
        assert!(v["usage"]["disk_total_bytes"].as_u64().unwrap() > 0, "{v}");
    }
    // Only one credential per server: the join token is spent.
    let identity = std::fs::read_to_string(a.dir.path().join("state/identity")).unwrap();
    assert!(identity.starts_with(&id_a), "{identity}");

    cp.service_on(&owner, "web", &id_a, "one").await;
    cp.ok(
        &owner,
        Method::PATCH,
        &format!("{}/services/web", cp.env()),
        Some(json!({"endpoint": {"mode": "public_direct", "domains": ["web.remote.test"]}})),
    )
    .await;
    cp.service_on(&owner, "api", &id_b, "api-one").await;
    // One after the other: both agents share this machine's Docker engine (on real servers
    // each has its own), and two processes creating one project network at the same instant
    // briefly leave two networks of that name.
    let within = Duration::from_secs(60);
    let web1 = cp.deploy(&owner, "web").await;
    cp.wait_status(&owner, "web", web1, "ACTIVE", within).await;
    let api1 = cp.deploy(&owner, "api").await;
    cp.wait_status(&owner, "api", api1, "ACTIVE", within).await;
    // Each service runs on its own server's agent, probed there, and nowhere else.
    assert_eq!(
        containers(&docker, &id_a, "clank-agent-pair--production--web--")
            .await
            .len(),
        1
    );
    assert_eq!(
        containers(&docker, &id_b, "clank-agent-pair--production--api--")
            .await
            .len(),
        1
    );
    assert!(
        containers(&docker, &id_a, "clank-agent-pair--production--api--")
            .await
            .is_empty()
    );
    let log = cp
        .ok(
            &owner,
            Method::GET,
            &format!("{}/services/web/deployments/{web1}/log", cp.env()),
            None,
        )
        .await;
    assert!(
        log.to_string().contains(&format!("on server {id_a}")),
        "the health probe ran on the server: {log}"
    );
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "one");
    assert_eq!(cp.printenv(&owner, "api", "GREETING").await, "api-one");
    let logs = cp
        .http
        .get(cp.url(&format!("{}/services/web/logs?tail=50", cp.env())))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert!(logs.status().is_success());

    // Redeploy with new config: the old container is replaced, never duplicated.
    cp.set_greeting(&owner, "web", "two").await;
    let web2 = cp.deploy(&owner, "web").await;
    cp.wait_status(&owner, "web", web2, "ACTIVE", within).await;
    cp.wait_status(&owner, "web", web1, "SUPERSEDED", within)
        .await;
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "two");
    // The server's own proxy switched its traffic to the new version at the cutover.
    let through = via_proxy(proxy_a, "web.remote.test", "/env?GREETING").await;
    assert!(through.contains("two"), "{through}");
    let settled = settle_to_one(&docker, &id_a, "clank-agent-pair--production--web--").await;
    assert_eq!(
        settled.len(),
        1,
        "the superseded container is removed on the server: {settled:?}"
    );

    // Rollback restores image and config on the remote server.
    let v = cp
        .ok(
            &owner,
            Method::POST,
            &format!("{}/services/web/deployments/{web1}/rollback", cp.env()),
            Some(json!({})),
        )
        .await;
    let web3 = v["number"].as_u64().unwrap();
    cp.wait_status(&owner, "web", web3, "ACTIVE", within).await;
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "one");

    // The agent reports every generation applied, and converges on one workload.
    let view = cp
        .wait_server(&owner, "alpha", "converged", |v| {
            v["applied_generation"] == v["desired_generation"] && v["workloads"] == 1
        })
        .await;
    assert!(view["applied_generation"].as_u64().unwrap() >= 3, "{view}");

    a.kill().await;
    b.kill().await;
    remove_scoped(&docker, &id_a).await;
    remove_scoped(&docker, &id_b).await;
    remove_networks("clank-agent-pair").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_tokens_are_one_time_and_revoked_servers_are_cut_off() {
    let Some(_docker) = docker_with_testapp().await else {
        return;
    };
    let (cp, _data) = ControlPlane::new("agent-tokens").await;
    let owner = cp.init().await;
    let (id, token) = cp.add_server(&owner, "gamma").await;
    let (url, fp) = (cp.agent_url(), cp.fingerprint());

    // Another certificate than the pinned one (a man in the middle): the agent never talks,
    // so the join token is never sent.
    let mut mitm = Agent::new(url.clone(), format!("sha256:{}", "00".repeat(32)));
    mitm.spawn(Some(&token));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(mitm.log().contains("not the pinned one"), "{}", mitm.log());
    assert_eq!(
        cp.server(&owner, "gamma").await["status"],
        "awaiting_enrollment"
    );
    mitm.kill().await;

    // A wrong token: refused, nothing enrolled.
    let mut wrong = Agent::new(url.clone(), fp.clone());
    wrong.spawn(Some("clank-join-not-a-real-token"));
    assert_eq!(
        wrong.exit_code(Duration::from_secs(20)).await,
        Some(clank_agent::exit::JOIN_REFUSED)
    );
    assert!(
        wrong.log().contains("join token refused"),
        "{}",
        wrong.log()
    );
    assert_eq!(
        cp.server(&owner, "gamma").await["status"],
        "awaiting_enrollment"
    );

    let mut good = Agent::new(url.clone(), fp.clone());
    good.spawn(Some(&token));
    cp.wait_server(&owner, "gamma", "connected", |v| v["connected"] == true)
        .await;

    // The same token again: already used.
    let mut reuse = Agent::new(url.clone(), fp.clone());
    reuse.spawn(Some(&token));
    assert_eq!(
        reuse.exit_code(Duration::from_secs(20)).await,
        Some(clank_agent::exit::JOIN_REFUSED)
    );
    assert!(
        cp.server(&owner, "gamma").await["connected"] == true,
        "the enrolled agent is unaffected"
    );

    // Another server's identity: the credential of gamma presented as another server id.
    let mut impostor = Agent::new(url.clone(), fp.clone());
    let good_identity = std::fs::read_to_string(good.dir.path().join("state/identity")).unwrap();
    let credential = good_identity.lines().nth(1).unwrap();
    std::fs::create_dir_all(impostor.dir.path().join("state")).unwrap();
    let (other, _) = cp.add_server(&owner, "delta").await;
    std::fs::write(
        impostor.dir.path().join("state/identity"),
        format!("{other}\n{credential}\n"),
    )
    .unwrap();
    impostor.spawn(None);
    assert_eq!(
        impostor.exit_code(Duration::from_secs(20)).await,
        Some(clank_agent::exit::CREDENTIAL_REFUSED)
    );
    assert!(
        impostor.log().contains("does not belong"),
        "{}",
        impostor.log()
    );
    assert_eq!(
        cp.server(&owner, "delta").await["status"],
        "awaiting_enrollment"
    );

    // A developer may not manage servers.
    let (s, _) = cp
        .call(
            "not-a-token",
            Method::POST,
            "/v1/workspaces/acme/servers",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = cp
        .call(
            &owner,
            Method::POST,
            "/v1/workspaces/acme/servers",
            Some(json!({"name": "Bad Name"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "name", "{v}");

    // Revoke: the live session is cut, the agent exits, and a restart is refused too.
    let v = cp
        .ok(
            &owner,
            Method::POST,
            "/v1/workspaces/acme/servers/gamma/revoke",
            None,
        )
        .await;
    assert_eq!(v["status"], "revoked", "{v}");
    assert_eq!(
        good.exit_code(Duration::from_secs(20)).await,
        Some(clank_agent::exit::CREDENTIAL_REFUSED)
    );
    good.spawn(None);
    assert_eq!(
        good.exit_code(Duration::from_secs(20)).await,
        Some(clank_agent::exit::CREDENTIAL_REFUSED)
    );
    let v = cp.server(&owner, "gamma").await;
    assert_eq!(
        (v["status"].as_str(), v["connected"].as_bool()),
        (Some("revoked"), Some(false))
    );
    // Nothing can be placed on a revoked server.
    project(&cp, &owner).await;
    let (s, v) = cp
        .call(
            &owner,
            Method::POST,
            &format!("{}/services", cp.env()),
            Some(json!({"slug": "x", "source": {"type": "docker_image", "image": "clank-testapp:latest"}, "server_id": id})),
        )
        .await;
    assert!(s.is_client_error(), "{s}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_restart_and_agent_kill_all_converge_without_duplicates() {
    let Some(docker) = docker_with_testapp().await else {
        return;
    };
    let (cp, _data) = ControlPlane::new("agent-edge").await;
    let relay = Relay::start(cp.agents).await;
    let owner = cp.init().await;
    project(&cp, &owner).await;
    let (id, token) = cp.add_server(&owner, "edge").await;
    let mut agent = Agent::new(relay.url(), cp.fingerprint());
    agent.spawn(Some(&token));
    cp.wait_server(&owner, "edge", "connected", |v| v["connected"] == true)
        .await;
    cp.service_on(&owner, "web", &id, "one").await;
    let n1 = cp.deploy(&owner, "web").await;
    let within = Duration::from_secs(60);
    cp.wait_status(&owner, "web", n1, "ACTIVE", within).await;
    let prefix = "clank-agent-edge--production--web--";
    let before = containers(&docker, &id, prefix).await;
    assert_eq!(before.len(), 1);

    // Partition: 60 s without a connection. The workload keeps running on the server; the
    // server shows as disconnected; a redeploy requested meanwhile waits.
    let partition: u64 = std::env::var("CLANK_TEST_PARTITION_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    relay.cut();
    cp.wait_server(&owner, "edge", "disconnected", |v| {
        v["status"] == "disconnected"
    })
    .await;
    cp.set_greeting(&owner, "web", "two").await;
    let n2 = cp.deploy(&owner, "web").await;
    tokio::time::sleep(Duration::from_secs(partition)).await;
    let running = docker
        .client()
        .inspect_container(
            &before[0],
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap();
    assert_eq!(
        running.state.and_then(|s| s.running),
        Some(true),
        "the workload ran through the partition"
    );
    let (s, v) = cp
        .call(
            &owner,
            Method::POST,
            &format!("{}/services/web/exec", cp.env()),
            Some(json!({"command": ["/bin/busybox", "true"]})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "exec needs the agent: {v}"
    );
    relay.heal();
    cp.wait_server(&owner, "edge", "reconnected", |v| v["connected"] == true)
        .await;
    cp.wait_status(&owner, "web", n2, "ACTIVE", within).await;
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "two");
    let after = settle_to_one(&docker, &id, prefix).await;
    assert_eq!(
        after.len(),
        1,
        "converged to exactly one container: {after:?}"
    );
    let epoch_after_partition = cp.server(&owner, "edge").await["lease_epoch"]
        .as_u64()
        .unwrap();
    assert!(
        epoch_after_partition >= 2,
        "every session has a new lease epoch"
    );

    // Control-plane restart: the agent reconnects under a newer epoch; nothing duplicates.
    let cp = cp.restart().await;
    cp.wait_server(&owner, "edge", "reconnected after restart", |v| {
        v["connected"] == true && v["lease_epoch"].as_u64().unwrap_or(0) > epoch_after_partition
    })
    .await;
    cp.set_greeting(&owner, "web", "three").await;
    let n3 = cp.deploy(&owner, "web").await;
    cp.wait_status(&owner, "web", n3, "ACTIVE", within).await;
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "three");

    // The agent killed mid-reconcile (right after a deploy was requested): restarted, it
    // converges and nothing is duplicated.
    cp.set_greeting(&owner, "web", "four").await;
    let n4 = cp.deploy(&owner, "web").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.kill().await;
    agent.spawn(None);
    cp.wait_status(&owner, "web", n4, "ACTIVE", within).await;
    assert_eq!(cp.printenv(&owner, "web", "GREETING").await, "four");
    let left = settle_to_one(&docker, &id, prefix).await;
    assert_eq!(
        left.len(),
        1,
        "exactly one container after the kill: {left:?}"
    );
    agent.kill().await;
    remove_scoped(&docker, &id).await;
    remove_networks("clank-agent-edge").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_update_swaps_the_binary_and_refuses_a_broken_one() {
    let Some(_docker) = docker_with_testapp().await else {
        return;
    };
    let (cp, _data) = ControlPlane::new("agent-upd").await;
    let owner = cp.init().await;
    let (_, token) = cp.add_server(&owner, "upd").await;
    let mut agent = Agent::new(cp.agent_url(), cp.fingerprint());
    agent.spawn(Some(&token));
    let v = cp
        .wait_server(&owner, "upd", "connected", |v| v["connected"] == true)
        .await;
    let original = v["agent_binary_sha256"].as_str().unwrap().to_owned();
    // Enrollment handed out the release signing key, kept owner-only beside the identity:
    // the releases below are installed because they are signed by it.
    let key_file = agent.dir.path().join("state/release-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        key.starts_with("ed25519:") && key.trim().len() == "ed25519:".len() + 64,
        "{key}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }

    let put = |binary: Vec<u8>, version: &str| {
        cp.http
            .put(cp.url(&format!(
                "/v1/workspaces/acme/agent-release?version={version}"
            )))
            .bearer_auth(&owner)
            .header("content-type", "application/octet-stream")
            .body(binary)
            .send()
    };

    // A broken binary: it cannot pass its connection check, so it is never swapped in.
    let broken = b"#!/bin/sh\nexit 1\n".to_vec();
    let resp = put(broken, "9.9.9-broken").await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let v = cp
        .wait_server(&owner, "upd", "refusing the broken update", |v| {
            v["last_update"]["version"] == "9.9.9-broken"
        })
        .await;
    assert_eq!(v["last_update"]["ok"], false, "{v}");
    assert!(
        v["last_update"]["message"]
            .as_str()
            .unwrap()
            .contains("connection check"),
        "{v}"
    );
    assert_eq!(v["agent_binary_sha256"], original.as_str());
    assert_eq!(v["connected"], true);

    // A new binary (the agent plus trailing bytes: a different checksum, still runnable).
    let mut new = std::fs::read(AGENT).unwrap();
    new.extend_from_slice(b"\nclank-agent test build 2\n");
    let resp = put(new.clone(), "0.2.0-test").await.unwrap();
    let offered: Value = resp.json().await.unwrap();
    let sha = offered["sha256"].as_str().unwrap().to_owned();
    assert_ne!(sha, original);
    cp.wait_server(&owner, "upd", "running the new binary", |v| {
        v["connected"] == true && v["agent_binary_sha256"] == sha.as_str()
    })
    .await;
    assert_eq!(
        std::fs::read(agent.exe()).unwrap(),
        new,
        "the binary on disk was swapped"
    );
    // Confirmed: the rollback copy and the pending marker are gone once it connected.
    for _ in 0..100 {
        if !agent.dir.path().join("state/update-pending").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !agent.dir.path().join("state/update-pending").exists(),
        "{}",
        agent.log()
    );
    assert!(!agent.dir.path().join("bin/clank-agent.prev").exists());
    agent.kill().await;
}
