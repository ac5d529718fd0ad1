//! `clank service|env|project delete` and `restore` against a real daemon (in-process,
//! loopback, native processes; nothing deployed): a soft delete prints until when it can be
//! restored and the command that does it, a purge what it removed, and `--volumes` without `--purge` is a usage error.

mod common;

use std::path::Path;

use common::{Daemon, INIT, clank, text};

async fn ok(url: &str, config: &Path, args: &[&str]) -> String {
    let o = clank(url, config, args).await;
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

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
