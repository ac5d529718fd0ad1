//! Templates and stacks over REST: the catalog for any signed-in user, stack creation and
//! upgrade for ManageServices (audited), bad input named by its field, nothing created by a
//! refused request, and no upgrade without the preview's plan id. Native runtime: nothing here
//! needs the stack's images to run (the Docker suite is `clank-platform/tests/templates.rs`).

mod common;

use clank_api::{StackUpgradeView, StackView, TemplateSummary, TemplateView};
use clank_daemon::ApiLimits;
use common::{Daemon, WS};
use reqwest::{Method, StatusCode};
use serde_json::json;

const STACKS: &str = "/v1/workspaces/acme/projects/shop/environments/production/stacks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stacks_over_rest_name_bad_fields_need_the_right_role_and_a_plan_id() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    let (_, viewer) = d.member(&owner, "vic", "viewer").await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/projects"),
        Some(json!({"name": "Shop", "slug": "shop"})),
    )
    .await;

    let (s, _) = d.call(None, Method::GET, "/v1/templates", None).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "reading templates needs a token"
    );
    let list: Vec<TemplateSummary> =
        serde_json::from_value(d.ok(&viewer, Method::GET, "/v1/templates", None).await).unwrap();
    assert!(list.len() >= 12, "{list:?}");
    let wp: TemplateView = serde_json::from_value(
        d.ok(&viewer, Method::GET, "/v1/templates/wordpress", None)
            .await,
    )
    .unwrap();
    assert_eq!(wp.services.len(), 2);
    let (s, v) = d
        .call(Some(&viewer), Method::GET, "/v1/templates/nope", None)
        .await;
    assert!(s.is_client_error() && v["field"] == "name", "{s} {v}");

    for (body, field) in [
        (json!({"template": "nope"}), "template"),
        (
            json!({"template": "postgres", "inputs": {"nope": "1"}}),
            "inputs.nope",
        ),
        (
            json!({"template": "postgres", "images": {"db": "Bad Image!"}}),
            "images.db",
        ),
        (
            json!({"template": "postgres", "images": {"web": "nginx:1.27"}}),
            "images.web",
        ),
        (json!({"template": "postgres", "name": "Bad Name"}), "name"),
    ] {
        let (s, v) = d
            .call(Some(&owner), Method::POST, STACKS, Some(body.clone()))
            .await;
        assert!(s.is_client_error(), "{body}: {s} {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (s, v) = d
        .call(
            Some(&viewer),
            Method::POST,
            STACKS,
            Some(json!({"template": "postgres"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let stacks: Vec<StackView> =
        serde_json::from_value(d.ok(&viewer, Method::GET, STACKS, None).await).unwrap();
    assert!(stacks.is_empty(), "refused requests created nothing");

    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            STACKS,
            Some(json!({"template": "postgres", "name": "db", "inputs": {"database": "orders"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let created: StackView = serde_json::from_value(v).unwrap();
    assert_eq!(created.services[0].service, "db");
    assert!(created.services[0].deployment.is_some(), "deployed at once");
    let shown: StackView = serde_json::from_value(
        d.ok(&viewer, Method::GET, &format!("{STACKS}/db"), None)
            .await,
    )
    .unwrap();
    assert_eq!(
        (shown.template.as_str(), shown.version.as_str()),
        ("postgres", "16.4")
    );

    let upgrade = format!("{STACKS}/db/upgrade");
    let preview: StackUpgradeView =
        serde_json::from_value(d.ok(&viewer, Method::POST, &upgrade, Some(json!({}))).await)
            .unwrap();
    assert!(
        !preview.applied && preview.changes.is_empty(),
        "{preview:?}"
    );
    let (s, _) = d
        .call(
            Some(&viewer),
            Method::POST,
            &upgrade,
            Some(json!({"apply": preview.plan_id})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "applying needs ManageServices");
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            &upgrade,
            Some(json!({"apply": "not-the-plan"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let applied: StackUpgradeView = serde_json::from_value(
        d.ok(
            &owner,
            Method::POST,
            &upgrade,
            Some(json!({"apply": preview.plan_id})),
        )
        .await,
    )
    .unwrap();
    assert!(applied.applied);

    let audit = d
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"stack.create") && actions.contains(&"stack.upgrade"),
        "{actions:?}"
    );
    // The generated password never left the daemon.
    let config = d
        .ok(
            &owner,
            Method::GET,
            "/v1/workspaces/acme/projects/shop/environments/production/services/db/config",
            None,
        )
        .await;
    assert!(config.to_string().contains("POSTGRES_PASSWORD"), "{config}");
    assert!(config.to_string().contains("********"), "{config}");
    d.stop().await;
}
