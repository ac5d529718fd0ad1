//! `clank preview settings|list|close` against a real daemon (in-process, loopback, native
//! processes; no forge, nothing deployed): no settings is a clear error naming the command
//! that sets them; settings set and read back (human and `--json`); no live previews; closing
//! a pull request that has no preview fails naming it.

mod common;

use common::{Daemon, INIT, clank, ok, text};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_settings_list_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    ok(&url, &ctx, &["project", "create", "Shop"]).await;
    ok(&url, &ctx, &["env", "create", "shop", "staging"]).await;

    let unset = clank(&url, &ctx, &["preview", "settings", "shop"]).await;
    assert!(!unset.status.success());
    assert!(
        text(&unset).contains("clank preview settings shop --base <environment>"),
        "{}",
        text(&unset)
    );

    let set = ok(
        &url,
        &ctx,
        &[
            "preview",
            "settings",
            "shop",
            "--base",
            "staging",
            "--domain",
            "preview.test",
            "--ttl-minutes",
            "90",
            "--allow-forks",
        ],
    )
    .await;
    for line in [
        "enabled      true",
        "base         staging",
        "domain       preview.test",
        "ttl          90 min",
        "allow forks  true",
    ] {
        assert!(set.contains(line), "{line}: {set}");
    }
    let shown: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "preview", "settings", "shop"]).await)
            .unwrap();
    assert_eq!(shown["base_environment"], "staging", "{shown}");
    assert_eq!(shown["domain"], "preview.test", "{shown}");
    assert_eq!(shown["ttl_minutes"], 90, "{shown}");
    assert_eq!(shown["allow_forks"], true, "{shown}");
    assert_eq!(shown["enabled"], true, "{shown}");

    let disabled = ok(
        &url,
        &ctx,
        &[
            "preview",
            "settings",
            "shop",
            "--base",
            "staging",
            "--disable",
        ],
    )
    .await;
    assert!(disabled.contains("enabled      false"), "{disabled}");
    assert!(disabled.contains("allow forks  false"), "{disabled}");

    let refused = clank(
        &url,
        &ctx,
        &["preview", "settings", "shop", "--base", "nowhere"],
    )
    .await;
    assert!(!refused.status.success());
    assert!(text(&refused).contains("nowhere"), "{}", text(&refused));

    let listed = ok(&url, &ctx, &["preview", "list", "shop"]).await;
    assert_eq!(listed.trim(), "no previews");
    let listed: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "preview", "list", "shop"]).await)
            .unwrap();
    assert_eq!(listed, serde_json::json!([]));

    let closed = clank(&url, &ctx, &["preview", "close", "shop", "7"]).await;
    assert!(!closed.status.success());
    assert!(
        text(&closed).contains("has no preview for pull request 7"),
        "{}",
        text(&closed)
    );
    let usage = clank(&url, &ctx, &["preview", "close", "shop", "seven"]).await;
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage));
    daemon.stop().await.unwrap().unwrap();
}
