//! The CLI tests' one harness: run the `clank` binary, read its output, start a daemon
//! in-process on loopback, and connect to (or skip without) Docker and clean a project off it.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::path::Path;
use std::process::Output;

use clank_core::runtime::{OwnerFilter, Runtime};
use clank_daemon::DaemonConfig;
use clank_docker::DockerRuntime;
use clank_testkit::runtime::skip_or_fail;

/// `clank init` of workspace `acme` with its first Owner.
pub(crate) const INIT: [&str; 7] = [
    "init",
    "--workspace",
    "acme",
    "--name",
    "Ada",
    "--email",
    "ada@example.com",
];

/// Run the `clank` binary against `url` with its context file at `config`.
pub(crate) async fn clank(url: &str, config: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clank"))
        .args(args)
        .env("CLANK_URL", url)
        .env("CLANK_CONFIG", config)
        .env_remove("CLANK_TOKEN")
        .output()
        .await
        .unwrap()
}

/// `clank args…` that must succeed: its stdout.
pub(crate) async fn ok(url: &str, config: &Path, args: &[&str]) -> String {
    let o = clank(url, config, args).await;
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stdout then stderr, for assertion messages and matching.
pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A daemon served in-process on a loopback port until [`Daemon::stop`].
pub(crate) struct Daemon {
    pub(crate) url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), clank_daemon::DaemonError>>,
}

impl Daemon {
    /// Serve a daemon with its data under `dir`, on `runtime`, with no proxy and no agent
    /// listener unless `tweak` sets them.
    pub(crate) async fn start(
        dir: &Path,
        runtime: &str,
        tweak: impl FnOnce(&mut DaemonConfig),
    ) -> Self {
        let mut config = DaemonConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.join("data"),
            runtime: runtime.into(),
            proxy: None,
            agent_listen: None,
            agent_tls: true,
            ..DaemonConfig::default()
        };
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(clank_daemon::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        Self { url, stop, task }
    }

    /// Ask the daemon to shut down and wait for it; how its task ended.
    pub(crate) async fn stop(
        self,
    ) -> Result<Result<(), clank_daemon::DaemonError>, tokio::task::JoinError> {
        let _ = self.stop.send(());
        self.task.await
    }
}

/// Docker with the test app image loaded, or `None` (the test skips; CI fails instead).
pub(crate) async fn docker_with_testapp() -> Option<DockerRuntime> {
    let docker = match DockerRuntime::connect().await {
        Ok(d) => d,
        Err(e) => return skip_or_fail("a Docker Engine", &e.to_string()),
    };
    clank_testkit::testapp::docker::ensure_testapp_image(docker.client())
        .await
        .unwrap();
    Some(docker)
}

/// Remove what a test left of `project` on Docker: its containers, networks and build images.
pub(crate) async fn cleanup(project: &str) {
    let Ok(docker) = DockerRuntime::connect().await else {
        return;
    };
    for w in docker
        .list(&OwnerFilter::default())
        .await
        .unwrap_or_default()
    {
        if clank_core::runtime::unscoped_name(&w.name).starts_with(&format!("clank-{project}--")) {
            let _ = docker.remove(&w.id).await;
        }
    }
    clank_testkit::testapp::docker::remove_networks_of_project(docker.client(), project).await;
    clank_testkit::testapp::docker::remove_build_images_of_project(docker.client(), project).await;
}

/// A daemon on the native runtime with the test app as `shop/web`, deployed through the CLI and
/// ACTIVE: the daemon, its URL and the CLI context file (under `dir`). `None` (the test skips;
/// CI fails) without Debian's busybox-static.
pub(crate) async fn native_testapp(dir: &Path) -> Option<(Daemon, String, std::path::PathBuf)> {
    use clank_testkit::testapp;
    if !testapp::busybox_available() {
        return skip_or_fail("Debian's busybox-static", "/bin/busybox is missing");
    }
    // The test app runs as its workspace's own user (tests run as root): open the way in.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let app = dir.join("app");
    testapp::write_testapp(&app).unwrap();
    let start_sh = app.join("start.sh").to_string_lossy().into_owned();
    let command = serde_json::json!([testapp::BUSYBOX, "sh", start_sh]).to_string();
    let ctx = dir.join("context.json");
    let daemon = Daemon::start(dir, "process", |_| {}).await;
    let url = daemon.url.clone();
    let web = format!("web={command}");
    for args in [
        &INIT[..],
        &["project", "create", "Shop", "--slug", "shop"],
        &[
            "service",
            "create",
            "shop/web",
            "--image",
            testapp::IMAGE,
            "--health-interval",
            "1",
            "--command",
            &web,
        ],
    ] {
        let o = clank(&url, &ctx, args).await;
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        clank(&url, &ctx, &["deploy", "shop/web", "--follow"]),
    )
    .await
    .expect("the test app deploys within 120 s");
    assert!(o.status.success(), "{}", text(&o));
    Some((daemon, url, ctx))
}
