//! Declarations over HTTP on the real daemon (in-process, native processes, nothing
//! deployed): a project exported and applied to a new project plans every create and applies
//! them in one go; applying the same declaration again plans nothing; a secret the target has
//! is kept as it is and only ever shown masked; a change between plan and apply makes the apply
//! a 409 that writes nothing; bad input is refused naming its field path; and the role table
//! and the audit log cover both calls.

mod common;

use clank_daemon::ApiLimits;
use common::{Daemon, WS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SHOP: &str = "/v1/workspaces/acme/projects/shop";
const SECRET: &str = "hunter2-declared-nowhere";
const FRESH_SECRET: &str = "fresh-s3cret-never-shown";

fn web(project: &str) -> String {
    format!("/v1/workspaces/acme/projects/{project}/environments/production/services/web")
}

async fn plan(d: &Daemon, token: &str, body: Value) -> (StatusCode, Value) {
    d.call(
        Some(token),
        Method::POST,
        &format!("{WS}/declarations"),
        Some(body),
    )
    .await
}

async fn planned(d: &Daemon, token: &str, body: Value) -> Value {
    let (s, v) = plan(d, token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v
}

async fn apply(d: &Daemon, token: &str, plan: &Value) -> (StatusCode, Value) {
    let id = plan["id"].as_str().unwrap();
    d.call(
        Some(token),
        Method::POST,
        &format!("{WS}/plans/{id}/apply"),
        None,
    )
    .await
}

/// `(service, action)` of every entry of a plan.
fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap().to_owned(),
                s["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A config key's entry at `at` (an API path).
async fn var(d: &Daemon, token: &str, at: &str, key: &str) -> Value {
    let vars = d
        .ok(token, Method::GET, &format!("{at}/config"), None)
        .await;
    vars.as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declaration_is_exported_planned_applied_once_and_refused_when_stale() {
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
        &format!("{SHOP}/environments/production/services"),
        Some(json!({
            "slug": "web",
            "source": {"type": "docker_image", "image": "clank-testapp:latest"},
            "settings": {"port": 8080},
        })),
    )
    .await;
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{}/config", web("shop")),
        Some(json!({"changes": [
            {"key": "GREETING", "value": "hi"},
            {"key": "TOKEN", "value": SECRET, "secret": true},
        ]})),
    )
    .await;
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{SHOP}/config"),
        Some(json!({"changes": [{"key": "MODE", "value": "prod"}]})),
    )
    .await;

    // Export: secrets by name only.
    let exported = d
        .ok(&owner, Method::GET, &format!("{SHOP}/declaration"), None)
        .await;
    let service = &exported["environments"]["production"]["services"]["web"];
    assert_eq!(service["config"]["GREETING"], "hi");
    assert_eq!(service["config"]["TOKEN"], json!({"secret_env": "TOKEN"}));
    assert_eq!(service["settings"]["port"], 8080);
    assert_eq!(exported["config"]["MODE"], "prod");

    // Applied to a project that does not exist: every part is a create; the secret the new
    // project lacks comes with the request, and is never shown.
    let mut copy = exported.clone();
    copy["project"] = json!("shop2");
    copy["name"] = json!("Shop copy");
    let fresh =
        json!({"declaration": copy, "secrets": {"TOKEN": FRESH_SECRET}, "source": "shop.toml"});
    let (s, missing) = plan(&d, &owner, json!({"declaration": copy})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{missing}");
    assert_eq!(
        missing["field"],
        "environments.production.services.web.config.TOKEN"
    );
    let p = planned(&d, &owner, fresh.clone()).await;
    assert_eq!(p["kind"], "apply");
    assert_eq!(p["source"], "shop.toml");
    assert_eq!(p["target"], "acme/shop2");
    assert_eq!(p["unchanged"], false);
    let listed = actions(&p);
    for want in [
        ("acme/shop2", "create"),
        ("acme/shop2 (config)", "update"),
        ("acme/shop2/production", "create"),
        ("acme/shop2/production/web", "create"),
    ] {
        assert!(
            listed.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {listed:?}"
        );
    }
    assert!(!p.to_string().contains(FRESH_SECRET), "{p}");
    let nothing_yet = d
        .call(
            Some(&owner),
            Method::GET,
            &format!("{WS}/projects/shop2"),
            None,
        )
        .await;
    assert_eq!(
        nothing_yet.0,
        StatusCode::NOT_FOUND,
        "planning writes nothing"
    );
    let (s, applied) = apply(&d, &owner, &p).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{applied}");
    assert_eq!(applied["created"], json!(["acme/shop2/production/web"]));
    assert_eq!(applied["deployments"], json!([]), "applying never deploys");
    let token = var(&d, &owner, &web("shop2"), "TOKEN").await;
    assert_eq!(token["secret"], true);
    assert_eq!(token["value"], "********");
    assert_eq!(
        var(&d, &owner, &web("shop2"), "GREETING").await["value"],
        "hi"
    );
    let (s, again) = apply(&d, &owner, &p).await;
    assert_eq!(s, StatusCode::CONFLICT, "a plan applies once: {again}");

    // The same declaration again plans nothing: the secret it already has is kept.
    let p = planned(&d, &owner, fresh).await;
    assert_eq!(p["unchanged"], true, "{p}");
    // And the export applied to its own project plans nothing either.
    let p = planned(&d, &owner, json!({"declaration": exported})).await;
    assert_eq!(p["unchanged"], true, "{p}");

    // A secret the target has is kept as it is (never compared, never read back), a key only
    // the target has is kept and listed, masked.
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{}/config", web("shop")),
        Some(json!({"changes": [{"key": "EXTRA", "value": "only-here-secret", "secret": true}]})),
    )
    .await;
    let before = var(&d, &owner, &web("shop"), "TOKEN").await;
    let mut edited = exported.clone();
    edited["environments"]["production"]["services"]["web"]["config"]["GREETING"] = json!("bye");
    let body = json!({"declaration": edited, "secrets": {"TOKEN": "ignored-because-kept"}});
    let p = planned(&d, &owner, body.clone()).await;
    let entry = p["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "acme/shop/production/web")
        .unwrap()
        .clone();
    assert_eq!(entry["action"], "update");
    let config: Vec<(String, String)> = entry["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        config,
        [
            ("GREETING".to_owned(), "changed".to_owned()),
            ("EXTRA".to_owned(), "removed".to_owned())
        ]
    );
    let extra = &entry["config"][1];
    assert_eq!(
        (extra["secret"].clone(), extra["from"].clone()),
        (json!(true), json!("********"))
    );
    assert!(!p.to_string().contains("only-here-secret"));
    let (s, v) = apply(&d, &owner, &p).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(
        var(&d, &owner, &web("shop"), "GREETING").await["value"],
        "bye"
    );
    assert_eq!(
        var(&d, &owner, &web("shop"), "TOKEN").await,
        before,
        "the secret the target had is untouched"
    );
    assert_eq!(var(&d, &owner, &web("shop"), "EXTRA").await["secret"], true);

    // A change between plan and apply: 409, and nothing of the plan is written.
    edited["environments"]["production"]["services"]["web"]["config"]["GREETING"] = json!("ciao");
    edited["environments"]["production"]["services"]["web"]["settings"]["port"] = json!(9090);
    let p = planned(&d, &owner, json!({"declaration": edited})).await;
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{}/config", web("shop")),
        Some(json!({"changes": [{"key": "GREETING", "value": "meanwhile"}]})),
    )
    .await;
    let (s, v) = apply(&d, &owner, &p).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("changed"), "{v}");
    assert_eq!(
        var(&d, &owner, &web("shop"), "GREETING").await["value"],
        "meanwhile"
    );
    let service = d.ok(&owner, Method::GET, &web("shop"), None).await;
    assert_eq!(
        service["settings"]["port"], 8080,
        "the service is untouched too"
    );
    let id = p["id"].as_str().unwrap();
    let stored = d
        .ok(&owner, Method::GET, &format!("{WS}/plans/{id}"), None)
        .await;
    assert!(stored["applied_at"].is_null(), "{stored}");

    // Bad input names its field path: a value the service's rules refuse, and a mistyped one.
    let mut bad = exported.clone();
    bad["environments"]["production"]["services"]["web"]["settings"]["port"] = json!(0);
    let (s, v) = plan(&d, &owner, json!({"declaration": bad})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["field"],
        "environments.production.services.web.settings.port"
    );
    bad["environments"]["production"]["services"]["web"]["settings"]["port"] = json!("eighty");
    let (s, v) = plan(&d, &owner, json!({"declaration": bad})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["field"],
        "declaration.environments.production.services.web.settings.port"
    );
    let mut other = exported.clone();
    other["project"] = json!("elsewhere/shop");
    let (s, v) = plan(&d, &owner, json!({"declaration": other})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "project");

    // Roles: a Developer may plan and apply service changes, not a new environment; a Viewer
    // nothing.
    let (_, developer) = d.member(&owner, "dev", "developer").await;
    let (_, viewer) = d.member(&owner, "viewer", "viewer").await;
    let mut services_only = exported.clone();
    services_only["environments"]["production"]["services"]["web"]["config"]["GREETING"] =
        json!("from-dev");
    let p = planned(&d, &developer, json!({"declaration": services_only})).await;
    let (s, v) = apply(&d, &developer, &p).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut new_env = exported.clone();
    new_env["environments"]["staging"] = json!({});
    let (s, _) = plan(&d, &developer, json!({"declaration": new_env})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = plan(&d, &viewer, json!({"declaration": exported})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = d
        .call(
            Some(&viewer),
            Method::GET,
            &format!("{SHOP}/declaration"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "reading is Read");

    let events = d
        .ok(&owner, Method::GET, &format!("{WS}/audit?limit=200"), None)
        .await;
    let audited: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(audited.contains(&"declaration.plan"), "{audited:?}");
    assert!(audited.contains(&"declaration.apply"), "{audited:?}");

    let doc = d.ok(&owner, Method::GET, "/v1/openapi.json", None).await;
    for path in [
        "/v1/workspaces/{ws}/projects/{p}/declaration",
        "/v1/workspaces/{ws}/declarations",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    for schema in [
        "Declaration",
        "ServiceDeclaration",
        "PlanDeclaration",
        "Declared",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} in the document"
        );
    }
    let bodies = d.bodies.lock().unwrap().join("\n");
    for secret in [SECRET, FRESH_SECRET, "only-here-secret"] {
        assert!(!bodies.contains(secret), "a secret value in a response");
    }
    d.stop().await;
}
