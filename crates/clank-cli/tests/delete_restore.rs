//! `clank service|env|project delete` and `restore` against a real daemon (in-process,
//! loopback, native processes; nothing deployed): a soft delete prints until when it can be
//! restored and the command that does it, a purge what it removed, and `--volumes` without `--purge` is a usage error;
//! `list --deleted` shows the deleted projects, environments and services that plain lists hide.

mod common;

use common::{Daemon, INIT, clank, ok, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_says_how_to_restore_and_purge_says_what_it_removed() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    ok(&url, &ctx, &["project", "create", "Shop"]).await;
    ok(&url, &ctx, &["env", "create", "shop", "staging"]).await;
    ok(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "shop/staging/web",
            "--image",
            "clank-testapp:latest",
        ],
    )
    .await;

    let deleted = ok(&url, &ctx, &["service", "delete", "shop/staging/web"]).await;
    assert!(deleted.contains("Restorable until "), "{deleted}");
    assert!(
        deleted.contains("`clank service restore shop/staging/web`"),
        "{deleted}"
    );
    let restored = ok(&url, &ctx, &["service", "restore", "shop/staging/web"]).await;
    assert!(restored.contains("restored"), "{restored}");

    let deleted = ok(&url, &ctx, &["env", "delete", "shop/staging"]).await;
    assert!(
        deleted.contains("clank env restore shop/staging"),
        "{deleted}"
    );
    ok(&url, &ctx, &["env", "restore", "shop/staging"]).await;
    let refused = clank(&url, &ctx, &["env", "delete", "shop/production"]).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("delete the project instead"),
        "{}",
        text(&refused)
    );

    let usage = clank(
        &url,
        &ctx,
        &["service", "delete", "shop/staging/web", "--volumes"],
    )
    .await;
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));

    let purged = ok(
        &url,
        &ctx,
        &["service", "delete", "shop/staging/web", "--purge"],
    )
    .await;
    assert!(purged.contains("purged:"), "{purged}");
    assert!(purged.contains("records removed:"), "{purged}");
    assert!(purged.contains("volumes removed:    none"), "{purged}");

    let deleted = ok(&url, &ctx, &["project", "delete", "shop"]).await;
    assert!(deleted.contains("clank project restore shop"), "{deleted}");
    ok(&url, &ctx, &["project", "restore", "shop"]).await;
    let purged = ok(
        &url,
        &ctx,
        &["project", "delete", "shop", "--purge", "--volumes"],
    )
    .await;
    assert!(purged.contains("networks removed:"), "{purged}");
    daemon.stop().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_deleted_items_only_with_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    for args in [
        vec!["project", "create", "Shop"],
        vec!["project", "create", "Gone"],
        vec!["env", "create", "shop", "staging"],
        vec!["env", "create", "shop", "qa"],
        vec![
            "service",
            "create",
            "shop/staging/web",
            "--image",
            "clank-testapp:latest",
        ],
        vec![
            "service",
            "create",
            "shop/staging/api",
            "--image",
            "clank-testapp:latest",
        ],
        vec!["service", "delete", "shop/staging/api"],
        vec!["env", "delete", "shop/qa"],
        vec!["project", "delete", "gone"],
    ] {
        ok(&url, &ctx, &args).await;
    }

    let projects = ok(&url, &ctx, &["project", "list"]).await;
    assert!(
        projects.contains("shop") && !projects.contains("gone"),
        "{projects}"
    );
    let projects = ok(&url, &ctx, &["project", "list", "--deleted"]).await;
    let gone = projects
        .lines()
        .find(|l| l.starts_with("gone"))
        .unwrap_or_else(|| panic!("the deleted project is listed: {projects}"));
    assert!(gone.contains("  deleted "), "{projects}");
    let shop = projects.lines().find(|l| l.starts_with("shop")).unwrap();
    assert!(!shop.contains("deleted"), "{projects}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "project", "list", "--deleted"]).await)
            .unwrap();
    let gone = json
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == "gone")
        .unwrap();
    assert!(gone["deleted_at"].is_number(), "{json}");

    let envs = ok(&url, &ctx, &["env", "list", "shop"]).await;
    assert!(!envs.contains("qa"), "{envs}");
    let envs = ok(&url, &ctx, &["env", "list", "shop", "--deleted"]).await;
    let qa = envs
        .lines()
        .find(|l| l.starts_with("qa"))
        .unwrap_or_else(|| panic!("the deleted environment is listed: {envs}"));
    assert!(qa.contains("  deleted "), "{envs}");
    assert!(envs.lines().any(|l| l == "staging"), "{envs}");

    let services = ok(&url, &ctx, &["service", "list", "shop/staging"]).await;
    assert!(
        services.contains("web") && !services.contains("api"),
        "{services}"
    );
    let services = ok(
        &url,
        &ctx,
        &["service", "list", "shop/staging", "--deleted"],
    )
    .await;
    let api = services
        .lines()
        .find(|l| l.starts_with("api"))
        .unwrap_or_else(|| panic!("the deleted service is listed: {services}"));
    assert!(api.contains("deleted"), "{services}");
    let json: serde_json::Value = serde_json::from_str(
        &ok(
            &url,
            &ctx,
            &["--json", "service", "list", "shop/staging", "--deleted"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(json.as_array().map(Vec::len), Some(2), "{json}");
    daemon.stop().await.unwrap().unwrap();
}
