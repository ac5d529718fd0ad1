//! `clank member …` and `clank token …` against a real daemon (in-process, loopback, native
//! processes: no Docker needed): add, list, re-role and remove members, list every token and
//! revoke one, with the daemon's refusals as exit codes.

mod common;

use common::{Daemon, INIT, clank, ok, text};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_and_token_commands_offboard_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;

    let added: Value = serde_json::from_str(
        &ok(
            &url,
            &ctx,
            &[
                "--json",
                "member",
                "add",
                "dev@example.com",
                "--name",
                "Dev",
                "--role",
                "developer",
            ],
        )
        .await,
    )
    .unwrap();
    let dev_token = added["token"].as_str().unwrap().to_owned();
    // `whoami` names the token's workspace and every membership of its user.
    let who: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "--token", &dev_token, "whoami"]).await)
            .unwrap();
    assert_eq!(who["role"], "developer", "{who}");
    let memberships = who["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 1, "{who}");
    assert_eq!(memberships[0]["workspace"], who["workspace"], "{who}");
    assert_eq!(memberships[0]["current"], true, "{who}");
    let out = ok(
        &url,
        &ctx,
        &[
            "member",
            "add",
            "vic@example.com",
            "--name",
            "Vic",
            "--role",
            "viewer",
        ],
    )
    .await;
    assert!(out.contains("shown once"), "{out}");
    let vic_token = out.lines().last().unwrap().trim().to_owned();

    let out = ok(&url, &ctx, &["member", "list"]).await;
    assert!(
        out.lines()
            .any(|l| l.contains("dev@example.com") && l.contains("developer")),
        "{out}"
    );
    let out = ok(
        &url,
        &ctx,
        &["member", "set-role", "dev@example.com", "viewer"],
    )
    .await;
    assert_eq!(out.trim(), "dev@example.com is now viewer");

    // Every token, with ids to revoke by; never a hash.
    let all: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "token", "list", "--all"]).await).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(!all.to_string().contains("hash"), "{all}");
    let vic_id = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["prefix"]
                .as_str()
                .is_some_and(|p| vic_token.starts_with(p))
        })
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = ok(&url, &ctx, &["token", "list", "--all"]).await;
    assert!(out.contains(&vic_id), "{out}");
    ok(&url, &ctx, &["token", "revoke", &vic_id]).await;
    let o = clank(&url, &ctx, &["--token", &vic_token, "whoami"]).await;
    assert_eq!(o.status.code(), Some(3), "revoked: {}", text(&o));

    let out = ok(&url, &ctx, &["member", "remove", "dev@example.com"]).await;
    assert_eq!(
        out.trim(),
        "removed dev@example.com (viewer); 1 token(s) deleted"
    );
    let o = clank(&url, &ctx, &["--token", &dev_token, "whoami"]).await;
    assert_eq!(o.status.code(), Some(3), "removed: {}", text(&o));

    // The last Owner stays, and says why.
    let o = clank(&url, &ctx, &["member", "remove", "ada@example.com"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("last Owner"), "{}", text(&o));
    let o = clank(&url, &ctx, &["member", "remove", "nobody@example.com"]).await;
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    daemon.stop().await.unwrap().unwrap();
}
