//! `clank config list|set|unset` at every scope of the cascade against a real daemon
//! (in-process, loopback, native processes; nothing deployed): `--workspace`, `--project`,
//! `--env` each set, list and unset their own layer, and the service's resolved config says
//! which scope each value comes from; a scope flag with `--resolved` or two scope flags are
//! usage errors.

mod common;

use common::{Daemon, INIT, clank, ok, text};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_at_workspace_project_and_environment_scope() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    for args in [
        vec!["project", "create", "Shop"],
        vec!["env", "create", "shop", "staging"],
        vec![
            "service",
            "create",
            "shop/staging/web",
            "--image",
            "clank-testapp:latest",
        ],
        vec![
            "config",
            "set",
            "--workspace",
            "REGION=eu",
            "LEVEL=workspace",
        ],
        vec![
            "config",
            "set",
            "--project",
            "shop",
            "TIER=gold",
            "LEVEL=project",
        ],
        vec![
            "config",
            "set",
            "--env",
            "shop/staging",
            "LEVEL=environment",
            "DEBUG=1",
        ],
        vec![
            "config",
            "set",
            "--env",
            "shop/staging",
            "DB_PASSWORD=hunter2",
            "--secret",
        ],
    ] {
        ok(&url, &ctx, &args).await;
    }

    let ws = ok(&url, &ctx, &["config", "list", "--workspace"]).await;
    assert!(
        ws.contains("REGION=eu") && ws.contains("LEVEL=workspace"),
        "{ws}"
    );
    let project = ok(&url, &ctx, &["config", "list", "--project", "shop"]).await;
    assert!(
        project.contains("TIER=gold") && !project.contains("REGION"),
        "{project}"
    );
    let env = ok(&url, &ctx, &["config", "list", "--env", "shop/staging"]).await;
    assert!(
        env.contains("LEVEL=environment") && env.contains("DB_PASSWORD=********"),
        "{env}"
    );
    assert!(!env.contains("hunter2"), "{env}");
    let production = ok(&url, &ctx, &["config", "list", "--env", "shop/production"]).await;
    assert_eq!(production.trim(), "", "staging's layer only: {production}");
    let env_json: Value = serde_json::from_str(
        &ok(
            &url,
            &ctx,
            &["--json", "config", "list", "--env", "shop/staging"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(env_json.as_array().map(Vec::len), Some(3), "{env_json}");

    let resolved = ok(
        &url,
        &ctx,
        &["config", "list", "shop/staging/web", "--resolved"],
    )
    .await;
    for line in [
        "REGION=eu  (from workspace)",
        "TIER=gold  (from project)",
        "LEVEL=environment  (from environment)",
        "DEBUG=1  (from environment)",
    ] {
        assert!(resolved.contains(line), "{line}: {resolved}");
    }

    ok(
        &url,
        &ctx,
        &["config", "unset", "--env", "shop/staging", "LEVEL"],
    )
    .await;
    ok(
        &url,
        &ctx,
        &["config", "unset", "--project", "shop", "LEVEL"],
    )
    .await;
    let resolved = ok(
        &url,
        &ctx,
        &["config", "list", "shop/staging/web", "--resolved"],
    )
    .await;
    assert!(
        resolved.contains("LEVEL=workspace  (from workspace)"),
        "{resolved}"
    );
    ok(
        &url,
        &ctx,
        &["config", "unset", "--workspace", "LEVEL", "REGION"],
    )
    .await;
    let ws = ok(&url, &ctx, &["config", "list", "--workspace"]).await;
    assert_eq!(ws.trim(), "", "{ws}");

    for args in [
        &["config", "list", "--workspace", "--resolved"][..],
        &[
            "config",
            "list",
            "--project",
            "shop",
            "--env",
            "shop/staging",
        ],
        &["config", "list", "shop/staging/web", "--workspace"],
        &["config", "set", "--workspace"],
        &["config", "set", "--project", "shop", "--team", "ops", "K=V"],
    ] {
        let usage = clank(&url, &ctx, args).await;
        assert_eq!(usage.status.code(), Some(2), "{args:?}: {}", text(&usage));
    }
    daemon.stop().await.unwrap().unwrap();
}
