//! `clank team …` and `clank config … --team` against a real daemon (in-process, loopback,
//! native processes): a team created, a member added, a project assigned, a team variable
//! resolved from `team`; `team show` names its members and projects; a member removed; the
//! team refused deletion while it has the project, then deleted.

mod common;

use common::{Daemon, INIT, clank, ok, text};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_commands_give_a_project_the_teams_config() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    for args in [
        vec!["project", "create", "Shop"],
        vec![
            "service",
            "create",
            "shop/web",
            "--image",
            "clank-testapp:latest",
        ],
        vec![
            "member",
            "add",
            "dev@example.com",
            "--name",
            "Dev",
            "--role",
            "developer",
        ],
        vec!["team", "create", "Ops"],
        vec!["team", "add-member", "ops", "dev@example.com"],
        vec!["team", "assign", "ops", "shop"],
        vec!["config", "set", "--team", "ops", "REGION=eu", "LEVEL=team"],
        vec!["config", "set", "shop/web", "LEVEL=service"],
    ] {
        ok(&url, &ctx, &args).await;
    }
    let members = ok(&url, &ctx, &["team", "members", "ops"]).await;
    assert!(members.contains("dev@example.com"), "{members}");
    let listed = ok(&url, &ctx, &["team", "list"]).await;
    assert!(
        listed.contains("ops") && listed.contains("shop"),
        "{listed}"
    );
    let shown = ok(&url, &ctx, &["team", "show", "ops"]).await;
    assert!(
        shown.contains("team `ops` (Ops)")
            && shown.contains("members:  1")
            && shown.contains("projects: shop"),
        "{shown}"
    );
    let view: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "team", "show", "ops"]).await).unwrap();
    assert_eq!(view["slug"], "ops", "{view}");
    assert_eq!(view["members"], 1, "{view}");
    assert_eq!(view["projects"], serde_json::json!(["shop"]), "{view}");
    let missing = clank(&url, &ctx, &["team", "show", "nope"]).await;
    assert!(!missing.status.success());
    assert!(text(&missing).contains("nope"), "{}", text(&missing));

    let team_vars = ok(&url, &ctx, &["config", "list", "--team", "ops"]).await;
    assert!(team_vars.contains("REGION=eu"), "{team_vars}");

    let resolved = ok(&url, &ctx, &["config", "list", "shop/web", "--resolved"]).await;
    assert!(resolved.contains("REGION=eu  (from team)"), "{resolved}");
    assert!(
        resolved.contains("LEVEL=service  (from service)"),
        "{resolved}"
    );

    let refused = clank(&url, &ctx, &["team", "delete", "ops"]).await;
    assert!(!refused.status.success());
    assert!(text(&refused).contains("`shop`"), "{}", text(&refused));
    let removed = ok(
        &url,
        &ctx,
        &["team", "remove-member", "ops", "dev@example.com"],
    )
    .await;
    assert!(
        removed.contains("dev@example.com is no longer in team `ops`"),
        "{removed}"
    );
    let members = ok(&url, &ctx, &["team", "members", "ops"]).await;
    assert!(!members.contains("dev@example.com"), "{members}");
    let no_team = clank(
        &url,
        &ctx,
        &["team", "remove-member", "nope", "dev@example.com"],
    )
    .await;
    assert!(!no_team.status.success(), "{}", text(&no_team));
    ok(&url, &ctx, &["team", "unassign", "shop"]).await;
    ok(&url, &ctx, &["config", "unset", "--team", "ops", "LEVEL"]).await;
    ok(&url, &ctx, &["team", "delete", "ops"]).await;
    let teams: Value =
        serde_json::from_str(&ok(&url, &ctx, &["--json", "team", "list"]).await).unwrap();
    assert_eq!(teams, serde_json::json!([]));

    let no_target = clank(&url, &ctx, &["config", "set", "--team", "ops"]).await;
    assert_eq!(no_target.status.code(), Some(2), "{}", text(&no_target));
    daemon.stop().await.unwrap().unwrap();
}
