//! Images reaching a remote server: the control plane (the real daemon in-process, on this
//! host's Docker Engine) builds a git service's image, and a real `clank-agent` whose server
//! runs a second, private Docker Engine that has never seen it receives the image over its
//! connection before the deployment starts there (progress in the deploy log, the id pinned,
//! nothing sent the second time). A transfer cut by the deployment's deadline leaves nothing
//! on the agent's engine. An image in a private registry is pulled by the agent itself, with
//! the credentials the control plane sends over the session.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable or a second one cannot
//! run; with `CI` set they fail.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clank_testkit::gitrepo::TestRepo;
use clank_testkit::second_engine::SecondEngine;
use common::{ControlPlane, docker_with_testapp, free_addr};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const AGENT: &str = env!("CARGO_BIN_EXE_clank-agent");

/// The app: the test app with a file of its own and `mib` MiB of random bytes in a layer.
fn dockerfile(mib: u32) -> String {
    format!(
        "FROM clank-testapp:latest\n\
         COPY hello.txt /app/hello.txt\n\
         RUN /bin/busybox dd if=/dev/urandom of=/app/ballast bs=1048576 count={mib}\n"
    )
}

/// A `clank-agent` process on the second engine (killed on drop).
struct Agent {
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl Agent {
    fn spawn(control_plane: &str, fingerprint: &str, join: &str, engine: &SecondEngine) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(AGENT)
            .arg("--control-plane")
            .arg(control_plane)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--fingerprint")
            .arg(fingerprint)
            .arg("--join-token")
            .arg(join)
            .env("DOCKER_HOST", engine.docker_host())
            .env("CLANK_AGENT_HEARTBEAT_S", "1")
            .env("CLANK_AGENT_BACKOFF_MAX_S", "1")
            .env("CLANK_LOG", "info,h2=warn,tower=warn,bollard=warn")
            .env_remove("CLANK_JOIN_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("agent.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Agent { dir, _child: child }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

/// A TCP relay that passes what the control plane sends at `bytes_per_s` at most: a slow
/// link between the control plane and the server.
async fn slow_relay(to: SocketAddr, bytes_per_s: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (mut agent_read, mut agent_write) = inbound.into_split();
                let (mut cp_read, mut cp_write) = outbound.into_split();
                let up = tokio::io::copy(&mut agent_read, &mut cp_write);
                let down = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cp_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if agent_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let pause = Duration::from_secs_f64(n as f64 / bytes_per_s as f64);
                        tokio::time::sleep(pause).await;
                    }
                };
                tokio::select! {
                    _ = up => {}
                    () = down => {}
                }
            });
        }
    });
    addr
}

/// The daemon (local repositories allowed) with workspace `acme`, project `project`, server
/// `far` whose agent runs on `engine` and reaches the control plane through a link of
/// `relay_rate` bytes a second (directly when `None`), and service `app` of `source` placed
/// on it.
struct Setup {
    cp: ControlPlane,
    _data: tempfile::TempDir,
    owner: String,
    server: String,
    agent: Agent,
    env: String,
}

impl Setup {
    async fn new(
        project: &str,
        engine: &SecondEngine,
        source: Value,
        settings: Value,
        relay_rate: Option<u64>,
    ) -> Setup {
        let data = tempfile::tempdir().unwrap();
        let cp = ControlPlane::start_with(data.path(), "docker", free_addr(), free_addr(), |c| {
            c.allow_local_repositories = true;
        })
        .await;
        let owner = cp.init().await;
        cp.ok(
            &owner,
            Method::POST,
            "/v1/workspaces/acme/projects",
            Some(json!({"name": project, "slug": project})),
        )
        .await;
        let (server, join, fingerprint) = cp.add_server(&owner, "far").await;
        let url = match relay_rate {
            Some(rate) => format!("https://{}", slow_relay(cp.agents, rate).await),
            None => format!("https://{}", cp.agents),
        };
        let agent = Agent::spawn(&url, &fingerprint, &join, engine);
        let mut connected = false;
        for _ in 0..600 {
            let v = cp
                .ok(&owner, Method::GET, "/v1/workspaces/acme/servers/far", None)
                .await;
            if v["connected"] == true {
                connected = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(connected, "the agent never connected:\n{}", agent.log());
        let env = format!("/v1/workspaces/acme/projects/{project}/environments/production");
        cp.ok(
            &owner,
            Method::POST,
            &format!("{env}/services"),
            Some(json!({
                "slug": "app",
                "source": source,
                "settings": settings,
                "server_id": server,
            })),
        )
        .await;
        Setup {
            cp,
            _data: data,
            owner,
            server,
            agent,
            env,
        }
    }

    async fn deploy(&self) -> u64 {
        let v = self
            .cp
            .ok(
                &self.owner,
                Method::POST,
                &format!("{}/services/app/deployments", self.env),
                Some(json!({})),
            )
            .await;
        v["number"].as_u64().unwrap()
    }

    /// Wait until deployment `n` settles (ACTIVE, FAILED, CANCELLED); its view.
    async fn settled(&self, n: u64) -> Value {
        for _ in 0..3000 {
            let v = self
                .cp
                .ok(
                    &self.owner,
                    Method::GET,
                    &format!("{}/services/app/deployments/{n}", self.env),
                    None,
                )
                .await;
            if matches!(
                v["status"].as_str(),
                Some("ACTIVE" | "FAILED" | "CANCELLED")
            ) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "deployment #{n} did not settle in 300 s; agent log:\n{}",
            self.agent.log()
        );
    }

    /// The deploy log's lines.
    async fn log(&self, n: u64) -> Vec<String> {
        let v = self
            .cp
            .ok(
                &self.owner,
                Method::GET,
                &format!("{}/services/app/deployments/{n}/log", self.env),
                None,
            )
            .await;
        v.as_array()
            .unwrap_or_else(|| panic!("not a list of entries: {v}"))
            .iter()
            .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

fn git(repo: &TestRepo) -> Value {
    json!({"type": "git", "repo_url": repo.url(), "branch": "main"})
}

/// Every image the engine holds, by id.
async fn image_ids(docker: &bollard::Docker) -> Vec<String> {
    docker
        .list_images(Some(bollard::query_parameters::ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_built_image_reaches_an_agent_whose_engine_never_saw_it_and_is_sent_once() {
    let Some(host) = docker_with_testapp().await else {
        return;
    };
    let Some(engine) = SecondEngine::start().await else {
        return;
    };
    let far = engine.client().await;
    assert!(
        image_ids(&far).await.is_empty(),
        "the server's engine starts without images"
    );
    let repo = TestRepo::new(&[
        ("Dockerfile", &dockerfile(16)),
        ("hello.txt", "built on the control plane\n"),
    ]);
    let s = Setup::new(
        "img-send",
        &engine,
        git(&repo),
        json!({"health_check_interval_s": 1, "auto_deploy": false}),
        // A link of 6 MiB/s: the transfer takes seconds, long enough to report progress.
        Some(6 * 1024 * 1024),
    )
    .await;

    let started = Instant::now();
    let first = s.deploy().await;
    let v = s.settled(first).await;
    let took = started.elapsed();
    assert_eq!(v["status"], "ACTIVE", "{v}\nagent log:\n{}", s.agent.log());
    let image = v["image"].as_str().unwrap().to_owned();
    let digest = v["image_digest"].as_str().unwrap_or_default().to_owned();
    // Only the control plane built it; the server's engine now holds exactly that image.
    let built = host.client().inspect_image(&image).await.unwrap();
    let there = far.inspect_image(&image).await.unwrap();
    assert_eq!(there.id, built.id, "the same image on both engines");
    assert_eq!(
        Some(digest.as_str()),
        built.id.as_deref(),
        "the deployment pins the id: {v}"
    );
    let log = s.log(first).await;
    let sent: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("sending image"))
        .collect();
    let done = log
        .iter()
        .find(|l| l.starts_with("sent image"))
        .unwrap_or_else(|| panic!("no transfer summary in the deploy log: {log:#?}"));
    assert!(done.contains(&digest), "{done}");
    assert!(
        !sent.is_empty(),
        "a transfer of seconds reports its progress: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l == &format!("image pinned at digest {digest}")),
        "{log:#?}"
    );
    eprintln!(
        "image {image}: {} bytes on the engine; deploy (build + transfer + start) took {took:?}; \
         transfer: {done}\nlog: {log:#?}",
        built.size.unwrap_or(0)
    );

    // The app runs there: its own file answers an exec, and its port answers the probe.
    let out =
        s.cp.ok(
            &s.owner,
            Method::POST,
            &format!("{}/services/app/exec", s.env),
            Some(json!({"command": ["/bin/busybox", "cat", "/app/hello.txt"]})),
        )
        .await;
    assert_eq!(out["stdout"], "built on the control plane\n", "{out}");
    let probed = s.log(first).await;
    assert!(
        probed
            .iter()
            .any(|l| l.contains(&format!("on server {}", s.server))),
        "health probes ran on the server: {probed:#?}"
    );

    // A second deployment of the same commit: the image is already there, nothing is sent.
    let second = s.deploy().await;
    let v2 = s.settled(second).await;
    assert_eq!(v2["status"], "ACTIVE", "{v2}");
    let log2 = s.log(second).await;
    assert!(
        !log2
            .iter()
            .any(|l| l.starts_with("sending image") || l.starts_with("sent image")),
        "nothing sent the second time: {log2:#?}"
    );
    assert!(
        log2.iter().any(|l| l.contains("is already on server")),
        "{log2:#?}"
    );
    assert_eq!(v2["image_digest"], v["image_digest"], "{v2}");

    drop(s);
    clank_testkit::testapp::docker::remove_build_images_of_project(host.client(), "img-send").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_cut_by_the_deadline_fails_the_deployment_and_leaves_no_image_on_the_agent() {
    let Some(host) = docker_with_testapp().await else {
        return;
    };
    let Some(engine) = SecondEngine::start().await else {
        return;
    };
    let far = engine.client().await;
    // 64 MiB through a 2 MiB/s link: half a minute, against a 10 s deploy timeout.
    let repo = TestRepo::new(&[
        ("Dockerfile", &dockerfile(64)),
        ("hello.txt", "too big for the link\n"),
    ]);
    let s = Setup::new(
        "img-cut",
        &engine,
        git(&repo),
        json!({"health_check_interval_s": 1, "auto_deploy": false, "deploy_timeout_s": 10}),
        Some(2 * 1024 * 1024),
    )
    .await;
    let n = s.deploy().await;
    let v = s.settled(n).await;
    assert_eq!(v["status"], "FAILED", "{v}");
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("did not arrive within") || reason.contains("ran out of time"),
        "the reason says the transfer ran out of time: {v}\nagent log:\n{}",
        s.agent.log()
    );
    let log = s.log(n).await;
    eprintln!("cut: {reason}\nlog: {log:#?}");
    assert!(
        log.iter().any(|l| l.starts_with("sending image")),
        "progress was reported before the cut: {log:#?}"
    );
    // Nothing partial: the server's engine holds no image at all, now or a moment later.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(image_ids(&far).await, Vec::<String>::new());
    assert!(v["image_digest"].is_null(), "{v}");

    drop(s);
    clank_testkit::testapp::docker::remove_build_images_of_project(host.client(), "img-cut").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_image_is_pulled_by_the_agent_with_the_credentials_the_control_plane_sends() {
    let Some(host) = docker_with_testapp().await else {
        return;
    };
    let Some(engine) = SecondEngine::start().await else {
        return;
    };
    let Some(registry) = clank_testkit::registry::Registry::start(host.client()).await else {
        return;
    };
    let far = engine.client().await;
    let unique = clank_core::id::ServiceId::new().to_string();
    let unique = &unique[unique.len() - 8..];
    // Pushed and removed from the control plane's engine: only the registry has it.
    let reference = registry
        .push_test_image(
            host.client(),
            &format!("clank-test/far-{unique}"),
            "v1",
            3 << 20,
        )
        .await
        .unwrap_or_else(|e| panic!("pushing the test image: {e}"));
    let s = Setup::new(
        "img-pull",
        &engine,
        json!({"type": "docker_image", "image": reference, "credentials_secret": "REGISTRY_AUTH"}),
        json!({"health_check_interval_s": 1, "auto_deploy": false}),
        None,
    )
    .await;
    s.cp.ok(
        &s.owner,
        Method::PATCH,
        &format!("{}/services/app/config", s.env),
        Some(json!({"changes": [
            {"key": "REGISTRY_AUTH", "value": registry.secret_value(), "secret": true}
        ]})),
    )
    .await;
    let n = s.deploy().await;
    let v = s.settled(n).await;
    assert_eq!(v["status"], "ACTIVE", "{v}\nagent log:\n{}", s.agent.log());
    let log = s.log(n).await;
    let joined = log.join("\n");
    eprintln!("deploy log:\n{joined}");
    assert!(
        joined.contains(&format!("server `far`: pulling image `{reference}`")),
        "the agent pulled it and its progress reached the deploy log: {joined}"
    );
    assert!(
        !log.iter().any(|l| l.starts_with("sending image")),
        "nothing went through the control plane: {joined}"
    );
    assert!(!joined.contains(registry.password()), "{joined}");
    assert!(
        !s.agent.log().contains(registry.password()),
        "the agent never logs the password"
    );
    let there = far.inspect_image(&reference).await.unwrap();
    let digest = v["image_digest"].as_str().unwrap_or_default();
    assert!(digest.starts_with("sha256:"), "{v}");
    assert!(
        there
            .repo_digests
            .unwrap_or_default()
            .iter()
            .any(|d| d.ends_with(digest)),
        "the registry digest is pinned: {digest}"
    );
    assert!(
        host.client().inspect_image(&reference).await.is_err(),
        "the control plane's engine never had it"
    );
    drop(s);
    drop(registry);
}
