//! Teams through the platform's data-level API (what the bindings call): a team's config
//! reaches an assigned project's services with provenance `team`, below their own; members
//! join by email; another workspace's team is not found by id; a team with projects is not
//! deleted, and its config and memberships go with it when it is.

mod common;

use clank_core::ErrorKind;
use clank_platform::identity::{NewWorkspace, TokenDigest};
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use common::{call, ok};
use serde_json::json;

async fn open(dir: &std::path::Path) -> Platform {
    let mut options = EmbeddedOptions::new(dir.join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await.expect("open");
    p.ensure_workspace("default").await.expect("workspace");
    p
}

#[tokio::test]
async fn a_team_config_reaches_assigned_projects_below_their_own_and_goes_with_the_team() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    ok(&p, json!({"op": "create_project", "name": "Shop"})).await;
    ok(
        &p,
        json!({"op": "create_service", "environment": "shop", "spec": {
            "slug": "api", "source": {"type": "docker_image", "image": "nginx:1.27"}}}),
    )
    .await;
    let team = ok(&p, json!({"op": "create_team", "name": "Ops"})).await;
    let team_scope = format!("team:{}", team["id"].as_str().unwrap());
    let project = ok(
        &p,
        json!({"op": "assign_project", "project": "shop", "team": "ops"}),
    )
    .await;
    assert_eq!(project["team_id"], team["id"]);
    ok(
        &p,
        json!({"op": "set_config", "target": {"team": "ops"}, "changes": [
            {"key": "REGION", "value": "eu"}, {"key": "LEVEL", "value": "team"}]}),
    )
    .await;
    ok(
        &p,
        json!({"op": "set_config", "target": {"service": "shop/api"}, "changes": [
            {"key": "LEVEL", "value": "service"}]}),
    )
    .await;
    let vars = ok(&p, json!({"op": "resolved_config", "service": "shop/api"})).await;
    let by_key = |k: &str| {
        vars.as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("{k}: {vars}"))
    };
    assert_eq!(by_key("REGION")["source"], team_scope.as_str());
    assert_eq!(by_key("LEVEL")["value"], "service");
    assert_eq!(by_key("LEVEL")["overridden"], json!([team_scope]));

    let listed = ok(&p, json!({"op": "list_teams"})).await;
    assert_eq!(listed[0]["projects"], json!(["shop"]));
    let e = call(&p, json!({"op": "delete_team", "team": "default/ops"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("`shop`"), "{e}");

    ok(&p, json!({"op": "assign_project", "project": "shop"})).await;
    ok(&p, json!({"op": "delete_team", "team": "ops"})).await;
    let vars = ok(&p, json!({"op": "resolved_config", "service": "shop/api"})).await;
    assert!(
        vars.as_array()
            .unwrap()
            .iter()
            .all(|v| v["key"] != "REGION"),
        "{vars}"
    );
    // A team of the same slug made again starts with no config of the old one.
    ok(&p, json!({"op": "create_team", "name": "Ops"})).await;
    let config = ok(&p, json!({"op": "get_config", "target": {"team": "ops"}})).await;
    assert_eq!(config, json!([]));
}

#[tokio::test]
async fn members_join_teams_by_email_and_another_workspaces_team_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    let digest = TokenDigest {
        hash: "h".into(),
        prefix: "clank_x".into(),
    };
    let first = p
        .init(
            &NewWorkspace {
                workspace: "acme".into(),
                name: "Ada".into(),
                email: "ada@example.com".into(),
                password: None,
            },
            digest,
        )
        .await
        .unwrap();
    ok(
        &p,
        json!({"op": "create_team", "workspace": "acme", "name": "Ops"}),
    )
    .await;
    let joined = ok(
        &p,
        json!({"op": "add_team_member", "team": "acme/ops", "member": "ADA@example.com"}),
    )
    .await;
    assert_eq!(joined["user_id"], first.user.id.to_string());
    assert_eq!(joined["teams"].as_array().unwrap().len(), 1);
    let members = ok(&p, json!({"op": "list_team_members", "team": "acme/ops"})).await;
    assert_eq!(members[0]["email"], "ada@example.com");
    let e = call(
        &p,
        json!({"op": "add_team_member", "team": "acme/ops", "member": "bob@example.com"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let left = ok(
        &p,
        json!({"op": "remove_team_member", "team": "acme/ops", "member": first.user.id.to_string()}),
    )
    .await;
    assert_eq!(left["teams"], json!([]));

    let other = ok(&p, json!({"op": "create_team", "name": "Elsewhere"})).await;
    let id = other["id"].as_str().unwrap();
    let e = call(&p, json!({"op": "get_team", "team": format!("acme/{id}")}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let by_id = ok(&p, json!({"op": "get_team", "team": id})).await;
    assert_eq!(by_id["slug"], "elsewhere");

    for bad in ["", "a/b/c", "/ops"] {
        let e = call(&p, json!({"op": "get_team", "team": bad}))
            .await
            .unwrap_err();
        assert_eq!(e.field(), Some("team"), "{bad:?}");
    }
    let e = call(
        &p,
        json!({"op": "create_team", "name": "X", "slug": "Bad Slug"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.field(), Some("slug"));
}
