//! The dashboard's servers, audit log, environments (clone, promotion plan and apply) and
//! templates pages against the real daemon in-process (native-process runtime): each renders
//! for an Owner with the security headers and is linked from the workspace or project page; a
//! Viewer sees no form and a forged POST is refused and changes nothing; attacker-controlled
//! text shows only escaped; what a form sends goes through the REST handlers, and what they
//! refuse is shown next to its field with the API's own message.

mod common;

use common::browser::{Browser, Page};
use common::{Daemon, ENV, WS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const XSS: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const PROJECT: &str = "/ui/workspaces/acme/projects/shop";
const ENVIRONMENTS: &str = "/ui/workspaces/acme/projects/shop/environments";
const STACKS: &str = "/v1/workspaces/acme/projects/shop/environments/production/stacks";
const SECRET: &str = "hunter2-never-on-a-page";

/// The daemon with the agent endpoint on (so the workspace has servers to list), workspace
/// `acme` and its Owner's token, project `shop` with service `web` (not deployed), and
/// server `edge` registered (waiting for its agent).
async fn daemon_with_project() -> (Daemon, String) {
    let daemon = Daemon::start_on("process", |s| {
        s.daemon.agent_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let owner = daemon.init().await;
    daemon
        .service(&owner, "web", vec!["/bin/true".into()])
        .await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/servers"),
            Some(json!({"name": "edge"})),
        )
        .await;
    (daemon, owner)
}

async fn signed_in(daemon: &Daemon, token: &str) -> Browser {
    let mut b = Browser::new(daemon);
    let page = b.sign_in(token).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    b
}

/// The project's environments as the API lists them (deleted ones too), by name.
async fn environment_names(daemon: &Daemon, token: &str) -> Vec<String> {
    let v = daemon
        .ok(
            token,
            Method::GET,
            &format!("{WS}/projects/shop/environments?include_deleted=true"),
            None,
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn stacks(daemon: &Daemon, token: &str) -> Vec<Value> {
    let v = daemon.ok(token, Method::GET, STACKS, None).await;
    v.as_array().unwrap().clone()
}

/// `text` as maud prints it inside an element or attribute.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the REST API answers to the same request: its status and message.
async fn api_refusal(
    daemon: &Daemon,
    token: &str,
    path: &str,
    body: Value,
) -> (StatusCode, String) {
    let (status, v) = daemon
        .call(Some(token), Method::POST, path, Some(body))
        .await;
    assert!(status.is_client_error(), "{path}: {status} {v}");
    (status, v["message"].as_str().unwrap().to_owned())
}

fn assert_only_escaped(page: &Page, what: &str) {
    assert!(
        !page.body.contains(XSS),
        "{what}: raw markup in {}",
        page.body
    );
    assert!(
        page.body.contains(ESCAPED),
        "{what}: escaped text missing in {}",
        page.body
    );
}

#[tokio::test]
async fn every_new_page_renders_for_an_owner_with_the_security_headers_and_is_linked() {
    let (daemon, owner) = daemon_with_project().await;
    let mut b = signed_in(&daemon, &owner).await;
    let workspace = b.get("/ui/workspaces/acme").await;
    for link in ["servers", "audit", "templates"] {
        let href = format!(r#"href="/ui/workspaces/acme/{link}""#);
        assert!(workspace.body.contains(&href), "{href} missing");
    }
    let project = b.get(PROJECT).await;
    assert!(
        project.body.contains(&format!(r#"href="{ENVIRONMENTS}""#)),
        "{}",
        project.body
    );
    let pages: [(&str, &[&str]); 5] = [
        (
            "/ui/workspaces/acme/servers",
            &[
                "edge",
                "awaiting enrollment",
                "last seen",
                "never",
                "CPU",
                "memory",
                "disk",
            ],
        ),
        (
            "/ui/workspaces/acme/audit",
            &["server.create", "acme/servers/edge", "succeeded", "token"],
        ),
        (
            ENVIRONMENTS,
            &[
                "production",
                "persistent",
                "web",
                "Clone",
                "Plan the promotion",
            ],
        ),
        ("/ui/workspaces/acme/templates", &["postgres", "wordpress"]),
        (
            "/ui/workspaces/acme/templates/postgres",
            &[
                "What it creates",
                "postgres:16",
                r#"name="input.database""#,
                "Deploy",
            ],
        ),
    ];
    for (path, shown) in pages {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.assert_secure_headers(path);
        assert_eq!(page.headers["cache-control"], "no-store", "{path}");
        for s in shown {
            assert!(
                page.body.contains(s),
                "{path}: `{s}` missing in {}",
                page.body
            );
        }
    }
    daemon.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_paged_newest_first_with_the_apis_checks_of_its_query() {
    let (daemon, owner) = daemon_with_project().await;
    let mut b = signed_in(&daemon, &owner).await;
    let first = b.get("/ui/workspaces/acme/audit?limit=1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The newest event is the server's registration; older ones are a link away.
    assert!(first.body.contains("server.create"), "{}", first.body);
    assert_eq!(
        first.body.matches("<tr>").count(),
        2,
        "a header and one event"
    );
    let older = first
        .body
        .split('"')
        .find(|s| s.starts_with("/ui/workspaces/acme/audit?before="))
        .expect("a link to older events")
        .replace("&amp;", "&");
    let second = b.get(&older).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(!second.body.contains("server.create"), "{}", second.body);
    assert!(second.body.contains("Newest events"));
    for bad in ["limit=0", "limit=lots", "before=not-an-id"] {
        let page = b.get(&format!("/ui/workspaces/acme/audit?{bad}")).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        page.assert_secure_headers(bad);
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_forms_and_forged_posts_are_refused_and_change_nothing() {
    let (daemon, owner) = daemon_with_project().await;
    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let mut b = signed_in(&daemon, &viewer).await;
    let workspace = b.get("/ui/workspaces/acme").await;
    assert!(
        !workspace.body.contains("/ui/workspaces/acme/audit"),
        "no link to a page the role may not read"
    );
    let audit = b.get("/ui/workspaces/acme/audit").await;
    assert_eq!(
        audit.status,
        StatusCode::FORBIDDEN,
        "as the API: Admin and Owner only"
    );
    audit.assert_secure_headers("a refused audit log");
    let servers = b.get("/ui/workspaces/acme/servers").await;
    assert_eq!(servers.status, StatusCode::OK);
    assert!(servers.body.contains("edge"));
    let envs = b.get(ENVIRONMENTS).await;
    assert_eq!(envs.status, StatusCode::OK);
    assert!(!envs.body.contains(r#"/clone""#), "no clone form");
    assert!(!envs.body.contains(r#"/promotions""#), "no promotion form");
    let template = b.get("/ui/workspaces/acme/templates/postgres").await;
    assert_eq!(template.status, StatusCode::OK);
    assert!(!template.body.contains(r#"/stacks""#), "no deploy form");
    // The sign-out form still carries the session's token: forge each form with it.
    let csrf = envs.csrf();
    let forged: [(String, &[(&str, &str)]); 4] = [
        (
            format!("{ENVIRONMENTS}/production/clone"),
            &[("name", "qa"), ("copy_config", "on")],
        ),
        (
            format!("{PROJECT}/promotions"),
            &[("source", "production/web"), ("target", "production")],
        ),
        (
            "/ui/workspaces/acme/templates/postgres/stacks".to_owned(),
            &[("environment", "shop/production"), ("name", "db")],
        ),
        (
            "/ui/workspaces/acme/templates/postgres/stacks".to_owned(),
            &[("name", "db")],
        ),
    ];
    for (path, fields) in forged {
        let mut fields = fields.to_vec();
        fields.push(("csrf", &csrf));
        let page = b.post(&path, &fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        page.assert_secure_headers(&path);
    }
    assert_eq!(environment_names(&daemon, &owner).await, ["production"]);
    assert!(stacks(&daemon, &owner).await.is_empty());
    // Refused by the REST handlers themselves: their audit events say so.
    let events = daemon
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await;
    for action in ["environment.clone", "promotion.plan", "stack.create"] {
        let denied = events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == action && e["outcome"]["result"] == "denied");
        assert!(denied, "{action} not audited as denied: {events}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn attacker_controlled_text_is_escaped_on_the_new_pages() {
    let (daemon, owner) = daemon_with_project().await;
    let mut b = signed_in(&daemon, &owner).await;
    let csrf = b.get(ENVIRONMENTS).await.csrf();
    // An environment name and domain pattern with markup: refused, shown back escaped.
    let clone = b
        .post(
            &format!("{ENVIRONMENTS}/production/clone"),
            &[("csrf", &csrf), ("name", XSS), ("domain_pattern", XSS)],
        )
        .await;
    assert!(clone.status.is_client_error(), "{}", clone.status);
    assert_only_escaped(&clone, "the clone form");
    // A promotion source with markup.
    let promote = b
        .post(
            &format!("{PROJECT}/promotions"),
            &[("csrf", &csrf), ("source", XSS), ("target", "production")],
        )
        .await;
    assert!(promote.status.is_client_error(), "{}", promote.status);
    assert!(!promote.body.contains(XSS), "{}", promote.body);
    // Template inputs and a stack name with markup.
    let stack = b
        .post(
            "/ui/workspaces/acme/templates/postgres/stacks",
            &[
                ("csrf", &csrf),
                ("environment", "shop/production"),
                ("name", XSS),
                ("input.database", XSS),
            ],
        )
        .await;
    assert!(stack.status.is_client_error(), "{}", stack.status);
    assert_only_escaped(&stack, "the template form");
    assert!(stacks(&daemon, &owner).await.is_empty());
    // The audit log keeps what was sent (the clone's details): escaped there too.
    let audit = b.get("/ui/workspaces/acme/audit").await;
    assert_eq!(audit.status, StatusCode::OK);
    assert_only_escaped(&audit, "the audit log");
    for path in [
        "/ui/workspaces/acme/servers",
        ENVIRONMENTS,
        "/ui/workspaces/acme/templates",
    ] {
        let page = b.get(path).await;
        assert!(!page.body.contains(XSS), "{path}");
    }
    daemon.stop().await;
}

#[tokio::test]
async fn a_clone_from_the_form_creates_the_environment_with_its_services() {
    let (daemon, owner) = daemon_with_project().await;
    let mut b = signed_in(&daemon, &owner).await;
    let csrf = b.get(ENVIRONMENTS).await.csrf();
    let done = b
        .post(
            &format!("{ENVIRONMENTS}/production/clone"),
            &[("csrf", &csrf), ("name", "qa"), ("copy_config", "on")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), Some(&*format!("{ENVIRONMENTS}#env-qa")));
    assert_eq!(
        environment_names(&daemon, &owner).await,
        ["production", "qa"]
    );
    let services = daemon
        .ok(
            &owner,
            Method::GET,
            &format!("{WS}/projects/shop/environments/qa/services"),
            None,
        )
        .await;
    assert_eq!(services[0]["slug"], "web", "{services}");
    let page = b.get(ENVIRONMENTS).await;
    assert!(page.body.contains(r#"id="env-qa""#), "{}", page.body);
    // Audited as the REST call, as the session's token.
    let events = daemon
        .ok(&owner, Method::GET, &format!("{WS}/audit?limit=1"), None)
        .await;
    assert_eq!(events[0]["action"], "environment.clone", "{events}");
    assert_eq!(events[0]["outcome"]["result"], "succeeded", "{events}");
    daemon.stop().await;
}

#[tokio::test]
async fn bad_input_is_shown_next_to_its_field_with_the_apis_message_and_changes_nothing() {
    let (daemon, owner) = daemon_with_project().await;
    let mut b = signed_in(&daemon, &owner).await;
    let csrf = b.get(ENVIRONMENTS).await.csrf();

    let (status, message) = api_refusal(
        &daemon,
        &owner,
        &format!("{ENV}/clone"),
        json!({"name": "Bad Name"}),
    )
    .await;
    let page = b
        .post(
            &format!("{ENVIRONMENTS}/production/clone"),
            &[("csrf", &csrf), ("name", "Bad Name"), ("copy_config", "on")],
        )
        .await;
    assert_eq!(page.status, status, "{}", page.body);
    let error = format!(
        r#"<p class="error" id="clone-production-name-error" role="alert">{}</p>"#,
        escaped(&message)
    );
    assert!(
        page.body.contains(&error),
        "{error} missing in {}",
        page.body
    );
    assert!(
        page.body.contains(r#"value="Bad Name""#),
        "what was sent is kept"
    );
    assert_eq!(environment_names(&daemon, &owner).await, ["production"]);

    let (status, message) = api_refusal(
        &daemon,
        &owner,
        STACKS,
        json!({"template": "postgres", "name": "Bad Name"}),
    )
    .await;
    let page = b
        .post(
            "/ui/workspaces/acme/templates/postgres/stacks",
            &[
                ("csrf", &csrf),
                ("environment", "shop/production"),
                ("name", "Bad Name"),
            ],
        )
        .await;
    assert_eq!(page.status, status, "{}", page.body);
    let error = format!(
        r#"<p class="error" id="stack-name-error" role="alert">{}</p>"#,
        escaped(&message)
    );
    assert!(
        page.body.contains(&error),
        "{error} missing in {}",
        page.body
    );
    assert!(stacks(&daemon, &owner).await.is_empty());

    let (status, message) = api_refusal(
        &daemon,
        &owner,
        &format!("{WS}/promotions"),
        json!({"source": "shop/production/web", "target": "production"}),
    )
    .await;
    let page = b
        .post(
            &format!("{PROJECT}/promotions"),
            &[
                ("csrf", &csrf),
                ("source", "production/web"),
                ("target", "production"),
            ],
        )
        .await;
    assert_eq!(page.status, status, "{}", page.body);
    let error = format!(
        r#"<p class="error" id="promote-target-error" role="alert">{}</p>"#,
        escaped(&message)
    );
    assert!(
        page.body.contains(&error),
        "{error} missing in {}",
        page.body
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_promotion_plan_masks_a_secret_and_applying_it_by_id_starts_the_deployment() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    if daemon.active_testapp(&owner).await.is_none() {
        return;
    }
    // Staging: a copy of production's services without their config.
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{ENV}/clone"),
            Some(json!({"name": "staging", "copy_config": false})),
        )
        .await;
    // A secret only the target has: the plan lists it as a difference, masked.
    daemon
        .ok(
            &owner,
            Method::PATCH,
            &format!("{WS}/projects/shop/environments/staging/services/web/config"),
            Some(json!({"changes": [{"key": "API_KEY", "value": SECRET, "secret": true}]})),
        )
        .await;
    let mut b = signed_in(&daemon, &owner).await;
    let csrf = b.get(ENVIRONMENTS).await.csrf();
    let planned = b
        .post(
            &format!("{PROJECT}/promotions"),
            &[
                ("csrf", &csrf),
                ("source", "production/web"),
                ("target", "staging"),
            ],
        )
        .await;
    assert_eq!(planned.status, StatusCode::SEE_OTHER, "{}", planned.body);
    let plan_page = planned.location().unwrap().to_owned();
    let id = plan_page
        .strip_prefix("/ui/workspaces/acme/plans/")
        .expect("the plan's page")
        .to_owned();
    let page = b.get(&plan_page).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.assert_secure_headers("a plan");
    for shown in [
        "acme/shop/staging/web",
        "API_KEY",
        "********",
        "(secret)",
        "Apply this plan",
    ] {
        assert!(
            page.body.contains(shown),
            "`{shown}` missing in {}",
            page.body
        );
    }
    assert!(!page.body.contains(SECRET), "a plan never shows a secret");

    // A viewer reads the plan but cannot apply it.
    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let mut v = signed_in(&daemon, &viewer).await;
    let seen = v.get(&plan_page).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(!seen.body.contains("Apply this plan"), "no apply form");
    let forged = v
        .post(&format!("{plan_page}/apply"), &[("csrf", &seen.csrf())])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    let stored = daemon
        .ok(&owner, Method::GET, &format!("{WS}/plans/{id}"), None)
        .await;
    assert!(stored.get("applied_at").is_none(), "{stored}");

    let applied = b
        .post(&format!("{plan_page}/apply"), &[("csrf", &csrf)])
        .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.body);
    assert_eq!(applied.location(), Some(plan_page.as_str()));
    let stored = daemon
        .ok(&owner, Method::GET, &format!("{WS}/plans/{id}"), None)
        .await;
    assert!(stored.get("applied_at").is_some(), "{stored}");
    let deployments = daemon
        .ok(
            &owner,
            Method::GET,
            &format!("{WS}/projects/shop/environments/staging/services/web/deployments"),
            None,
        )
        .await;
    assert_eq!(deployments.as_array().unwrap().len(), 1, "{deployments}");
    let page = b.get(&plan_page).await;
    assert!(page.body.contains("applied at"), "{}", page.body);
    assert!(
        !page.body.contains("Apply this plan"),
        "an applied plan has no form"
    );
    // A second apply of the same plan is refused on its page, with the API's message.
    let again = b
        .post(&format!("{plan_page}/apply"), &[("csrf", &csrf)])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(
        again.body.contains(r#"class="banner" role="alert""#),
        "{}",
        again.body
    );
    daemon.stop().await;
}
