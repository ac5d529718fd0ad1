//! The `clank` binary against a real daemon (in-process, loopback, real Docker): init, create,
//! configure, deploy with `--follow` (exit 0 on ACTIVE, non-zero on FAILED), roll back, status,
//! log, `--json` output, and input errors with their exit codes.

mod common;

use std::time::Duration;

use common::{Daemon, INIT, clank, cleanup, docker_with_testapp, text};
use serde_json::Value;

const PROJECT: &str = "cli-shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_drives_the_whole_lifecycle_and_reports_failures_by_exit_code() {
    let Some(_docker) = docker_with_testapp().await else {
        return;
    };
    cleanup(PROJECT).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "docker", |c| {
        c.agent_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");

    let o = clank(&url, &ctx, &INIT).await;
    assert!(o.status.success(), "{}", text(&o));
    let mode = std::fs::metadata(&ctx).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o077,
        0,
        "the saved token is owner-only"
    );

    for args in [
        vec!["project", "create", "CLI Shop", "--slug", "cli-shop"],
        vec![
            "service",
            "create",
            "cli-shop/web",
            "--image",
            "clank-testapp:latest",
        ],
        vec!["config", "set", "cli-shop/web", "GREETING=one"],
        vec![
            "config",
            "set",
            "cli-shop/web",
            "TOKEN=hunter2-secret",
            "--secret",
        ],
    ] {
        let o = clank(&url, &ctx, &args).await;
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = clank(
        &url,
        &ctx,
        &["config", "list", "cli-shop/web", "--resolved"],
    )
    .await;
    let out = text(&o);
    assert!(
        out.contains("GREETING=one") && out.contains("TOKEN=********") && !out.contains("hunter2"),
        "{out}"
    );

    let o = clank(&url, &ctx, &["deploy", "cli-shop/web", "--follow"]).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("PENDING → DEPLOYING")
            && out.contains("HEALTH_CHECKING → ACTIVE")
            && out.contains("#1 is ACTIVE"),
        "{out}"
    );

    let o = clank(
        &url,
        &ctx,
        &["config", "set", "cli-shop/web", "GREETING=two"],
    )
    .await;
    assert!(o.status.success());
    let o = clank(&url, &ctx, &["deploy", "cli-shop/web", "--follow"]).await;
    assert!(o.status.success(), "{}", text(&o));

    let o = clank(&url, &ctx, &["rollback", "cli-shop/web", "1", "--follow"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = clank(&url, &ctx, &["--json", "status", "cli-shop/web"]).await;
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v["deployments"][0]["number"], 3);
    assert_eq!(v["deployments"][0]["status"], "ACTIVE");
    let greeting = v["deployments"][0]["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == "GREETING")
        .unwrap()
        .clone();
    assert_eq!(greeting["value"], "one");

    let o = clank(&url, &ctx, &["log", "cli-shop/web", "3"]).await;
    assert!(text(&o).contains("traffic switched to #3"), "{}", text(&o));

    // The running service: its output, and a command run inside it (argv, exit code kept).
    let o = clank(&url, &ctx, &["logs", "cli-shop/web", "--tail", "50"]).await;
    assert!(
        o.status.success() && text(&o).contains("testapp listening on"),
        "{}",
        text(&o)
    );
    let o = clank(
        &url,
        &ctx,
        &[
            "exec",
            "cli-shop/web",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "echo $GREETING",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "one",
        "exec runs in the rolled-back config"
    );
    let o = clank(
        &url,
        &ctx,
        &[
            "exec",
            "cli-shop/web",
            "--",
            "/bin/busybox",
            "sh",
            "-c",
            "exit 7",
        ],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(7),
        "exec passes the command's exit code through"
    );

    // Stopped, the service refuses deploys and says how to start it; started, it deploys.
    let o = clank(&url, &ctx, &["service", "stop", "cli-shop/web"]).await;
    assert!(
        o.status.success() && text(&o).contains("web stopped"),
        "{}",
        text(&o)
    );
    let o = clank(&url, &ctx, &["deploy", "cli-shop/web"]).await;
    assert!(
        !o.status.success() && text(&o).contains("clank service start"),
        "{}",
        text(&o)
    );
    let o = clank(&url, &ctx, &["--json", "service", "start", "cli-shop/web"]).await;
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert!(v.get("stopped_at").is_none(), "{v}");
    let o = clank(&url, &ctx, &["service", "stop", "cli-shop/nope"]).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    // A deploy that fails exits non-zero and says why.
    let o = clank(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "cli-shop/broken",
            "--image",
            "clank-missing-image:v1",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = tokio::time::timeout(
        Duration::from_secs(120),
        clank(&url, &ctx, &["deploy", "cli-shop/broken", "--follow"]),
    )
    .await
    .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAILED") && out.contains("clank-missing-image"),
        "{out}"
    );

    // Input errors: named, exit code 2; unknown things: exit code 4.
    let o = clank(&url, &ctx, &["deploy", "../etc/web"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = clank(&url, &ctx, &["status", "cli-shop/nope"]).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = clank(&url, &ctx, &["config", "set", "cli-shop/web", "not-a-pair"]).await;
    assert_eq!(o.status.code(), Some(2));

    // The audit log: newest first, as lines or JSON, with no secret value in either.
    let o = clank(&url, &ctx, &["audit", "--limit", "200"]).await;
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("deployment.rollback")
            && out.contains("acme/cli-shop/production/web#1")
            && out.contains("config.set")
            && out.contains("project.create")
            && !out.contains("hunter2"),
        "{out}"
    );
    let o = clank(&url, &ctx, &["--json", "audit", "-n", "3"]).await;
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v.as_array().unwrap().len(), 3);
    let all = clank(&url, &ctx, &["--json", "audit", "-n", "1000"]).await;
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let secret_set = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["changes"][0]["key"] == "TOKEN")
        .unwrap_or_else(|| panic!("no audit event of the secret set: {all}"));
    assert_eq!(secret_set["details"]["changes"][0]["secret"], true);
    assert!(!all.to_string().contains("hunter2"));
    let o = clank(&url, &ctx, &["audit", "--limit", "0"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // Remote servers: registered with a one-time join token, listed, revoked.
    let o = clank(&url, &ctx, &["server", "add", "edge-1"]).await;
    let out = text(&o);
    assert!(
        o.status.success()
            && out.contains("clank-join-")
            && out.contains("clank-agent --control-plane https://")
            && out.contains("--fingerprint sha256:"),
        "{out}"
    );
    let o = clank(&url, &ctx, &["--json", "server", "list"]).await;
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(v[0]["name"], "edge-1");
    assert_eq!(v[0]["status"], "awaiting_enrollment");
    assert!(
        !v.to_string().contains("clank-join-"),
        "the join token is shown once: {v}"
    );
    let o = clank(&url, &ctx, &["server", "revoke", "edge-1"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let o = clank(&url, &ctx, &["server", "show", "nope"]).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let o = clank(&url, &ctx, &["server", "add", "Bad Name"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    let _ = daemon.stop().await;
    cleanup(PROJECT).await;
}

#[tokio::test]
async fn completions_name_every_subcommand_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("context.json");
    // No daemon listens there: completions never connect.
    let url = "http://127.0.0.1:9";
    let o = clank(url, &ctx, &["completions", "bash"]).await;
    assert!(o.status.success(), "{}", text(&o));
    let bash = String::from_utf8_lossy(&o.stdout);
    for word in [
        "deploy",
        "rollback",
        "audit",
        "config",
        "completions",
        "--json",
    ] {
        assert!(bash.contains(word), "bash completion lacks `{word}`");
    }
    assert!(bash.contains("complete -F"), "a bash completion function");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let o = clank(url, &ctx, &["completions", shell]).await;
        assert!(o.status.success(), "{shell}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("rollback"),
            "{shell}"
        );
    }
    let o = clank(url, &ctx, &["completions", "tcsh"]).await;
    assert_eq!(o.status.code(), Some(2), "clap refuses an unknown shell");
    assert!(!ctx.exists(), "completions write no context");
}
