//! Teams over HTTP on the real daemon: a team is created, a member added, a project assigned;
//! a team-scope variable reaches the project's services (provenance `team`) below any
//! service-scope one; a Viewer lists teams but cannot manage them; another workspace's team
//! is invisible by name and by id; bad slugs are 422 (the API's answer to invalid input)
//! naming the field; a team with projects is not deleted.

mod common;

use clank_daemon::ApiLimits;
use common::{Daemon, WS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SERVICE: &str = "/v1/workspaces/acme/projects/shop/environments/production/services/web";

fn resolved<'a>(vars: &'a Value, key: &str) -> &'a Value {
    vars.as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("{key} is not resolved: {vars}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_config_reaches_its_projects_services_below_their_own_config() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    d.service(&owner, "web", vec!["true".into()]).await;
    let (dev_id, _) = d.member(&owner, "dev", "developer").await;

    let team = d
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/teams"),
            Some(json!({"name": "Platform Crew"})),
        )
        .await;
    assert_eq!(team["slug"], "platform-crew", "{team}");
    let teams = format!("{WS}/teams/platform-crew");

    let added = d
        .ok(
            &owner,
            Method::POST,
            &format!("{teams}/members"),
            Some(json!({"member": "dev@example.com"})),
        )
        .await;
    assert_eq!(added["user_id"], dev_id.as_str(), "{added}");
    assert_eq!(added["teams"], json!([team["id"]]), "{added}");
    let members = d
        .ok(&owner, Method::GET, &format!("{teams}/members"), None)
        .await;
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members[0]["email"], "dev@example.com");

    let project = d
        .ok(
            &owner,
            Method::POST,
            &format!("{teams}/projects"),
            Some(json!({"project": "shop"})),
        )
        .await;
    assert_eq!(project["team_id"], team["id"], "{project}");

    for (scope, vars) in [
        (
            teams.clone(),
            json!([{"key": "REGION", "value": "eu"}, {"key": "LEVEL", "value": "team"}]),
        ),
        (
            SERVICE.to_owned(),
            json!([{"key": "LEVEL", "value": "service"}]),
        ),
    ] {
        d.ok(
            &owner,
            Method::PATCH,
            &format!("{scope}/config"),
            Some(json!({"changes": vars})),
        )
        .await;
    }
    let team_vars = d
        .ok(&owner, Method::GET, &format!("{teams}/config"), None)
        .await;
    assert_eq!(team_vars.as_array().unwrap().len(), 2, "{team_vars}");

    let vars = d
        .ok(
            &owner,
            Method::GET,
            &format!("{SERVICE}/config/resolved"),
            None,
        )
        .await;
    let region = resolved(&vars, "REGION");
    assert_eq!(region["value"], "eu");
    let team_scope = format!("team:{}", team["id"].as_str().unwrap());
    assert_eq!(region["source"], team_scope.as_str(), "{region}");
    let level = resolved(&vars, "LEVEL");
    assert_eq!(
        level["value"], "service",
        "the service's own value wins: {level}"
    );
    assert_eq!(level["overridden"], json!([team_scope]), "{level}");

    let listed = d
        .ok(&owner, Method::GET, &format!("{WS}/teams"), None)
        .await;
    assert_eq!(listed[0]["members"], 1, "{listed}");
    assert_eq!(listed[0]["projects"], json!(["shop"]), "{listed}");

    // A team with projects stays, and says which.
    let (s, v) = d.call(Some(&owner), Method::DELETE, &teams, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("`shop`"), "{v}");

    // Unassigned, the project's services lose the team's config; then the team can go.
    d.ok(
        &owner,
        Method::DELETE,
        &format!("{teams}/projects/shop"),
        None,
    )
    .await;
    let (s, v) = d
        .call(
            Some(&owner),
            Method::DELETE,
            &format!("{teams}/projects/shop"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no longer the team's: {v}");
    let vars = d
        .ok(
            &owner,
            Method::GET,
            &format!("{SERVICE}/config/resolved"),
            None,
        )
        .await;
    assert!(
        vars.as_array()
            .unwrap()
            .iter()
            .all(|v| v["key"] != "REGION"),
        "{vars}"
    );
    d.ok(&owner, Method::DELETE, &teams, None).await;
    let (s, _) = d.call(Some(&owner), Method::GET, &teams, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = d
        .call(Some(&owner), Method::GET, &format!("{teams}/config"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let members = d
        .ok(&owner, Method::GET, &format!("{WS}/members"), None)
        .await;
    assert!(
        members
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["teams"] == json!([])),
        "a deleted team leaves no member in it: {members}"
    );

    let audit = d
        .ok(&owner, Method::GET, &format!("{WS}/audit?limit=100"), None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "team.create",
        "team.member.add",
        "team.project.assign",
        "team.project.unassign",
        "team.delete",
    ] {
        assert!(actions.contains(&a), "{a} is audited: {actions:?}");
    }
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_lists_teams_but_cannot_manage_them() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/projects"),
        Some(json!({"name": "Shop"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/teams"),
        Some(json!({"name": "Ops"})),
    )
    .await;
    let (viewer_id, viewer) = d.member(&owner, "vic", "viewer").await;
    let (_, developer) = d.member(&owner, "dev", "developer").await;

    let listed = d
        .ok(&viewer, Method::GET, &format!("{WS}/teams"), None)
        .await;
    assert_eq!(listed[0]["slug"], "ops", "{listed}");
    d.ok(
        &viewer,
        Method::GET,
        &format!("{WS}/teams/ops/members"),
        None,
    )
    .await;
    d.ok(
        &viewer,
        Method::GET,
        &format!("{WS}/teams/ops/config"),
        None,
    )
    .await;

    let refused = [
        (
            Method::POST,
            format!("{WS}/teams"),
            Some(json!({"name": "Mine"})),
        ),
        (
            Method::POST,
            format!("{WS}/teams/ops/members"),
            Some(json!({"member": viewer_id})),
        ),
        (
            Method::POST,
            format!("{WS}/teams/ops/projects"),
            Some(json!({"project": "shop"})),
        ),
        (
            Method::PATCH,
            format!("{WS}/teams/ops/config"),
            Some(json!({"changes": [{"key": "A", "value": "1"}]})),
        ),
        (Method::DELETE, format!("{WS}/teams/ops"), None),
    ];
    for token in [&viewer, &developer] {
        for (method, path, body) in &refused {
            let (s, v) = d
                .call(Some(token), method.clone(), path, body.clone())
                .await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path}: {v}");
        }
    }
    // Nothing changed.
    let team = d
        .ok(&owner, Method::GET, &format!("{WS}/teams/ops"), None)
        .await;
    assert_eq!(
        (team["members"].clone(), team["projects"].clone()),
        (json!(0), json!([]))
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_workspaces_team_is_invisible_by_name_and_by_id() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            "/v1/workspaces",
            Some(json!({"workspace": "globex", "name": "Mallory", "email": "mallory@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mallory = v["token"].as_str().unwrap().to_owned();
    let theirs = d
        .ok(
            &mallory,
            Method::POST,
            "/v1/workspaces/globex/teams",
            Some(json!({"name": "Secret Plans"})),
        )
        .await;
    let their_id = theirs["id"].as_str().unwrap();
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/projects"),
        Some(json!({"name": "Shop"})),
    )
    .await;

    let listed = d
        .ok(&owner, Method::GET, &format!("{WS}/teams"), None)
        .await;
    assert_eq!(listed, json!([]), "{listed}");
    for t in ["secret-plans", their_id] {
        for path in [
            format!("{WS}/teams/{t}"),
            format!("{WS}/teams/{t}/members"),
            format!("{WS}/teams/{t}/config"),
        ] {
            let (s, v) = d.call(Some(&owner), Method::GET, &path, None).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {v}");
        }
        let (s, v) = d
            .call(
                Some(&owner),
                Method::POST,
                &format!("{WS}/teams/{t}/projects"),
                Some(json!({"project": "shop"})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    }
    // And their workspace's routes are not ours to use.
    let (s, _) = d
        .call(
            Some(&owner),
            Method::GET,
            "/v1/workspaces/globex/teams",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let project = d
        .ok(&owner, Method::GET, &format!("{WS}/projects/shop"), None)
        .await;
    assert_eq!(project["team_id"], Value::Null, "{project}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_team_slugs_and_unknown_members_are_refused_naming_the_field() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    for slug in ["../etc", "Ops", "a--b", "9lives"] {
        let (s, v) = d
            .call(
                Some(&owner),
                Method::POST,
                &format!("{WS}/teams"),
                Some(json!({"name": "Ops", "slug": slug})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{slug}: {v}");
        assert_eq!(v["field"], "slug", "{slug}: {v}");
    }
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/teams"),
        Some(json!({"name": "Ops"})),
    )
    .await;
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/teams"),
            Some(json!({"name": "Ops again", "slug": "ops"})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::CONFLICT,
        "a slug is unique in its workspace: {v}"
    );
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/teams/ops/members"),
            Some(json!({"member": "nobody@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/teams/ops/members"),
            Some(json!({"member": "not-an-id"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "member", "{v}");
    d.stop().await;
}

/// The team endpoints are in the OpenAPI document with named body types that resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_endpoints_are_documented_with_named_bodies() {
    let d = Daemon::start(ApiLimits::default()).await;
    let (s, doc) = d.call(None, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let expected = [
        ("/v1/workspaces/{ws}/teams", &["get", "post"][..]),
        ("/v1/workspaces/{ws}/teams/{t}", &["get", "delete"]),
        ("/v1/workspaces/{ws}/teams/{t}/members", &["get", "post"]),
        ("/v1/workspaces/{ws}/teams/{t}/members/{user}", &["delete"]),
        ("/v1/workspaces/{ws}/teams/{t}/projects", &["post"]),
        ("/v1/workspaces/{ws}/teams/{t}/projects/{p}", &["delete"]),
        ("/v1/workspaces/{ws}/teams/{t}/config", &["get", "patch"]),
    ];
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (path, methods) in expected {
        for method in methods {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            let mut bodies = vec![&op["responses"]["200"], &op["responses"]["201"]];
            bodies.push(&op["requestBody"]);
            for body in bodies {
                let Some(schema) = body["content"]["application/json"].get("schema") else {
                    continue;
                };
                let named = schema.get("$ref").or_else(|| schema["items"].get("$ref"));
                let name = named
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    .unwrap_or_else(|| panic!("{method} {path}: untyped body {schema}"));
                assert!(
                    schemas.contains_key(name),
                    "{method} {path}: `{name}` unresolved"
                );
            }
        }
    }
    d.stop().await;
}
