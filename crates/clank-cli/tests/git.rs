//! The `clank` binary with a git service against a real daemon (in-process, loopback, real
//! Docker building from a local repository): `service create --repo` with build settings, the
//! endpoint's port and health path and a Procfile worker; `webhook rotate`/`show`; `deploy
//! --follow` printing each transition once; `builds` (list and one with its log); `logs`
//! across workloads and of one process type; `exec` into a chosen process type.

mod common;

use std::path::Path;
use std::time::Duration;

use clank_testkit::gitrepo::TestRepo;
use common::{Daemon, INIT, clank, cleanup, docker_with_testapp, text};
use serde_json::Value;

const PROJECT: &str = "cli-git";
const DOCKERFILE: &str = "FROM clank-testapp:latest\nCOPY hello.txt /app/hello.txt\n";
const PROCFILE: &str =
    "worker: trap 'exit 0' TERM; while true; do echo worker-tick; sleep 1; done\n";

/// Run `args` until `done` holds for its output, up to 20 s; the last output.
async fn eventually(url: &str, ctx: &Path, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let mut out = String::new();
    for _ in 0..100 {
        let o = clank(url, ctx, args).await;
        out = text(&o);
        if o.status.success() && done(&out) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "`clank {}` never printed what was expected:\n{out}",
        args.join(" ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_creates_a_git_service_shows_its_webhook_and_follows_builds_logs_and_exec() {
    let Some(docker) = docker_with_testapp().await else {
        return;
    };
    cleanup(PROJECT).await;
    let repo = TestRepo::new(&[
        ("Dockerfile", DOCKERFILE),
        ("hello.txt", "v1\n"),
        ("Procfile", PROCFILE),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "docker", |c| c.allow_local_repositories = true).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    for args in [
        INIT.to_vec(),
        vec!["project", "create", "CLI Git", "--slug", PROJECT],
    ] {
        let o = clank(&url, &ctx, &args).await;
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }

    // A git service with its build settings, endpoint port and health path, and a worker.
    let repo_url = repo.url();
    let o = clank(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "cli-git/app",
            "--repo",
            &repo_url,
            "--branch",
            "main",
            "--dockerfile",
            "Dockerfile",
            "--build-timeout",
            "300",
            "--port",
            "8080",
            "--health-path",
            "/health",
            "--process",
            "worker=1",
        ],
    )
    .await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("git service `acme/cli-git/production/app` created"),
        "{out}"
    );
    let o = clank(&url, &ctx, &["--json", "service", "show", "cli-git/app"]).await;
    let svc: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(svc["source"]["type"], "git", "{svc}");
    assert_eq!(svc["source"]["repo_url"], repo_url.as_str());
    assert_eq!(svc["source"]["branch"], "main");
    assert_eq!(svc["source"]["dockerfile_path"], "Dockerfile");
    assert_eq!(svc["settings"]["port"], 8080);
    assert_eq!(svc["settings"]["health_check_path"], "/health");
    assert_eq!(svc["settings"]["build_timeout_s"], 300);
    assert_eq!(svc["processes"]["web"]["replicas"], 1, "{svc}");
    assert_eq!(svc["processes"]["worker"]["replicas"], 1, "{svc}");
    // An image and a repository at once is bad input.
    let o = clank(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "cli-git/both",
            "--image",
            "x:1",
            "--repo",
            &repo_url,
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // `service update` changes the endpoint and settings of the existing service, keeping the
    // rest of its settings; with nothing to change it is a usage error.
    let o = clank(
        &url,
        &ctx,
        &[
            "service",
            "update",
            "cli-git/app",
            "--lan-domain",
            "app.cli-git.lan",
            "--port",
            "8080",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("domains: app.cli-git.lan"),
        "{}",
        text(&o)
    );
    let o = clank(&url, &ctx, &["--json", "service", "show", "cli-git/app"]).await;
    let svc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(svc["endpoint"]["mode"], "lan_only", "{svc}");
    assert_eq!(svc["settings"]["health_check_path"], "/health", "{svc}");
    assert_eq!(svc["settings"]["build_timeout_s"], 300, "{svc}");
    let o = clank(
        &url,
        &ctx,
        &["service", "update", "cli-git/app", "--no-endpoint"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = clank(&url, &ctx, &["--json", "service", "show", "cli-git/app"]).await;
    let svc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(svc["endpoint"].is_null(), "{svc}");
    let o = clank(&url, &ctx, &["service", "update", "cli-git/app"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("nothing to change"), "{}", text(&o));

    // The webhook: full URLs for each forge, and the secret once there is one.
    let o = clank(&url, &ctx, &["webhook", "show", "cli-git/app"]).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains(&format!("github  {url}/v1/webhooks/github"))
            && out.contains(&format!("gitlab  {url}/v1/webhooks/gitlab"))
            && out.contains(&format!("gitea   {url}/v1/webhooks/gitea"))
            && out.contains("none yet"),
        "{out}"
    );
    let o = clank(&url, &ctx, &["--json", "webhook", "rotate"]).await;
    let rotated: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let secret = rotated["secret"].as_str().unwrap().to_owned();
    let o = clank(&url, &ctx, &["webhook", "show", "cli-git/app"]).await;
    assert!(
        text(&o).contains(&format!("secret  {secret}")),
        "{}",
        text(&o)
    );
    let o = clank(&url, &ctx, &["--json", "webhook", "show", "cli-git/app"]).await;
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        shown["endpoints"]["github"],
        format!("{url}/v1/webhooks/github")
    );
    assert_eq!(shown["secret"], secret.as_str());

    // Deploy with --follow: every transition printed once.
    let o = tokio::time::timeout(
        Duration::from_secs(180),
        clank(&url, &ctx, &["deploy", "cli-git/app", "--follow"]),
    )
    .await
    .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let transitions: Vec<&str> = out.lines().filter(|l| l.contains(" → ")).collect();
    for t in &transitions {
        assert_eq!(
            transitions.iter().filter(|x| *x == t).count(),
            1,
            "`{t}` printed twice:\n{out}"
        );
    }
    assert_eq!(out.matches("PENDING → BUILDING").count(), 1, "{out}");
    assert!(
        out.contains("build v1 succeeded") && out.contains("#1 is ACTIVE"),
        "{out}"
    );

    // Builds: the list and one build with its log; the deployment names its build.
    let sha = repo.head();
    let o = clank(&url, &ctx, &["builds", "cli-git/app"]).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    let line = out.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("v1")
            && line.contains("SUCCEEDED")
            && line.contains(&sha[..12])
            && line.contains("main")
            && line.contains("manual")
            && line.contains("#1"),
        "{out}"
    );
    let o = clank(&url, &ctx, &["builds", "cli-git/app", "1"]).await;
    assert!(text(&o).contains("build v1 succeeded"), "{}", text(&o));
    let o = clank(&url, &ctx, &["status", "cli-git/app"]).await;
    assert!(
        text(&o).contains(&format!("build v1 {}", &sha[..12])),
        "{}",
        text(&o)
    );

    // Logs of the worker alone, of every workload (prefixed), exec into the worker.
    eventually(
        &url,
        &ctx,
        &["logs", "cli-git/app", "--process", "worker", "--tail", "20"],
        |out| out.lines().any(|l| l == "[worker.0] worker-tick"),
    )
    .await;
    let out = eventually(
        &url,
        &ctx,
        &["logs", "cli-git/app", "--tail", "200"],
        |out| {
            out.contains("[worker.0] worker-tick") && out.contains("[web.0] testapp listening on")
        },
    )
    .await;
    assert!(out.lines().all(|l| l.starts_with('[')), "{out}");
    let o = clank(
        &url,
        &ctx,
        &[
            "logs",
            "cli-git/app",
            "--process",
            "worker",
            "--replica",
            "0",
            "--tail",
            "5",
        ],
    )
    .await;
    assert!(
        text(&o).lines().all(|l| l == "worker-tick"),
        "one chosen workload is not prefixed: {}",
        text(&o)
    );
    let o = clank(
        &url,
        &ctx,
        &[
            "exec",
            "cli-git/app",
            "--process",
            "worker",
            "--",
            "/bin/sh",
            "-c",
            "echo $CLANK_PROCESS.$CLANK_REPLICA",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "worker.0");
    let o = clank(&url, &ctx, &["logs", "cli-git/app", "--process", "nope"]).await;
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(out.contains("web, worker"), "{out}");

    let _ = daemon.stop().await;
    drop(docker);
    cleanup(PROJECT).await;
}
