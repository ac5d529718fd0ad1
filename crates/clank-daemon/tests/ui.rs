//! The dashboard (`/ui`) against the real daemon in-process (native-process runtime): sign-in
//! with an API token and the session cookie's flags, the security headers of every page, CSRF
//! and origin checks on every form, roles as the API enforces them, and attacker-controlled
//! text (service names, config keys and values, deploy log lines, a pushed branch name and
//! commit message) escaped wherever it shows.
//! A browser is not driven here: these read the HTML the daemon serves.

mod common;

use std::time::Duration;

use common::browser::{Browser, Page};
use common::{Daemon, ENV, WS};
use reqwest::{Method, StatusCode};
use serde_json::json;

const XSS: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";
const SERVICE: &str = "/ui/workspaces/acme/projects/shop/environments/production/services/web";

/// The daemon with workspace `acme`, its Owner's token, and project `shop` with service `web`
/// named `name`, running `command`.
async fn with_service(name: &str, command: &[&str]) -> (Daemon, String) {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{ENV}/services"),
            Some(json!({
                "slug": "web",
                "name": name,
                "source": {"type": "docker_image", "image": clank_testkit::testapp::IMAGE},
                "settings": {"health_check_interval_s": 1},
                "processes": {"web": {"command": command}},
            })),
        )
        .await;
    (daemon, owner)
}

/// A manual deploy of `web` through the API, as `token`.
async fn deploy_web(daemon: &Daemon, token: &str) {
    let deployments = format!("{ENV}/services/web/deployments");
    daemon
        .ok(token, Method::POST, &deployments, Some(json!({})))
        .await;
}

/// The service's deployments as the API lists them.
async fn deployments(daemon: &Daemon, token: &str) -> Vec<serde_json::Value> {
    let v = daemon
        .ok(
            token,
            Method::GET,
            &format!("{ENV}/services/web/deployments"),
            None,
        )
        .await;
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn signing_in_with_a_bad_token_is_refused_and_opens_no_session() {
    let (daemon, _owner) = with_service("Web", &["/bin/true"]).await;
    let mut b = Browser::new(&daemon);
    let page = b.sign_in("clank_not-a-real-token").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(
        page.body.contains("unknown or revoked token"),
        "{}",
        page.body
    );
    assert!(!b.has_session());
    // Without a session every page sends the browser to the sign-in form.
    let page = b.get("/ui/workspaces/acme").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/ui/signin"));
    // A sign-in without the form's token (a cross-site login attempt) is refused too.
    let mut other = Browser::new(&daemon);
    let page = other
        .post("/ui/signin", &[("token", "clank_x"), ("csrf", "guess")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    daemon.stop().await;
}

#[tokio::test]
async fn the_session_cookie_is_http_only_strict_under_ui_secure_behind_tls_and_ends_at_sign_out() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let mut b = Browser::new(&daemon);
    let page = b.sign_in(&owner).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/ui/workspaces/acme"));
    let session = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("clank_session="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    assert!(
        !session.contains(&owner),
        "the cookie never holds the token"
    );

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut tls = Browser::new(&daemon);
    let form = tls.get("/ui/signin").await;
    let page = tls
        .post_with(
            "/ui/signin",
            &[("csrf", &form.csrf()), ("token", &owner)],
            &[("x-forwarded-proto", "https".into())],
        )
        .await;
    let session = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("clank_session="))
        .expect("a session cookie");
    assert!(session.ends_with("; Secure"), "{session}");

    // Signed in, the pages render; signed out, the old cookie opens nothing.
    let old = b.cookies.clone();
    let home = b.get("/ui/workspaces/acme").await;
    assert_eq!(home.status, StatusCode::OK);
    let out = b.post("/ui/signout", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.has_session());
    b.cookies = old;
    let page = b.get("/ui/workspaces/acme").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/ui/signin"));
    daemon.stop().await;
}

#[tokio::test]
async fn every_page_renders_for_an_owner_with_the_security_headers() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    deploy_web(&daemon, &owner).await;
    let mut b = Browser::new(&daemon);
    let signin = b.get("/ui/signin").await;
    signin.assert_secure_headers("sign-in");
    b.sign_in(&owner).await;
    let service = b.get(SERVICE).await;
    let style = service
        .body
        .split('"')
        .find(|s| s.starts_with("/ui/assets/dashboard-") && s.ends_with(".css"))
        .expect("a stylesheet link")
        .to_owned();
    let script = service
        .body
        .split('"')
        .find(|s| s.starts_with("/ui/assets/dashboard-") && s.ends_with(".js"))
        .expect("a script link")
        .to_owned();
    for path in [
        "/ui/workspaces/acme",
        "/ui/workspaces/acme/projects/shop",
        SERVICE,
        &format!("{SERVICE}/deployments/1"),
        &style,
        &script,
    ] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        page.assert_secure_headers(path);
    }
    let asset = b.get(&style).await;
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let page = b.get(SERVICE).await;
    assert_eq!(page.headers["cache-control"], "no-store");
    for shown in ["Deploy", "Roll back", "Deployments", "Settings", "Volumes"] {
        assert!(page.body.contains(shown), "{shown} missing");
    }
    // Errors carry the headers too.
    let missing = b.get("/ui/workspaces/acme/projects/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    missing.assert_secure_headers("a missing project");
    let nowhere = b.get("/ui/no/such/page").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    nowhere.assert_secure_headers("an unknown page");
    let elsewhere = b.get("/ui/workspaces/other").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "another workspace");
    daemon.stop().await;
}

#[tokio::test]
async fn a_post_needs_the_sessions_csrf_token_and_this_origin() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    let csrf = b.get(SERVICE).await.csrf();
    let deploy = format!("{SERVICE}/deployments");
    let refused = b.post(&deploy, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "no token");
    refused.assert_secure_headers("a refused post");
    let wrong = b.post(&deploy, &[("csrf", "forged")]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "a wrong token");
    let cross = b
        .post_with(
            &deploy,
            &[("csrf", &csrf)],
            &[("origin", "https://evil.example".into())],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "another origin");
    let cross = b
        .post_with(
            &deploy,
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site".into())],
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN, "a cross-site fetch");
    assert!(deployments(&daemon, &owner).await.is_empty());

    let accepted = b.post(&deploy, &[("csrf", &csrf)]).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert_eq!(
        accepted.location(),
        Some(format!("{SERVICE}#deployments").as_str())
    );
    let listed = deployments(&daemon, &owner).await;
    assert_eq!(listed.len(), 1);
    // Audited like the REST call, as the session's token.
    let audit = daemon
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await
        .to_string();
    assert!(audit.contains("deployment.create"), "{audit}");
    // The new deployment's status cell follows its event stream until it settles.
    let page = b.get(SERVICE).await;
    if !page.body.contains(r#"data-status="FAILED""#) && !page.body.contains("ACTIVE") {
        assert!(
            page.body
                .contains(&format!(r#"data-follow="{SERVICE}/deployments/1/events""#)),
            "{}",
            page.body
        );
    }
    let events = b.get(&format!("{SERVICE}/deployments/1/events")).await;
    assert_eq!(events.status, StatusCode::OK);
    assert!(events.body.contains("event: status"), "{}", events.body);
    daemon.stop().await;
}

#[tokio::test]
async fn a_viewer_sees_no_deploy_or_rollback_form_and_a_forged_deploy_is_refused() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    deploy_web(&daemon, &owner).await;
    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let mut b = Browser::new(&daemon);
    assert_eq!(b.sign_in(&viewer).await.status, StatusCode::SEE_OTHER);
    let page = b.get(SERVICE).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page
            .body
            .contains(&format!(r#"action="{SERVICE}/deployments""#))
    );
    assert!(!page.body.contains(">Deploy<"), "{}", page.body);
    assert!(!page.body.contains("Roll back"), "{}", page.body);
    assert!(!page.body.contains(r#"name="key""#), "no config form");
    // The sign-out form still carries the session's token: forge the deploy with it.
    let csrf = page.csrf();
    let forged = b
        .post(&format!("{SERVICE}/deployments"), &[("csrf", &csrf)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(
        forged.body.contains("does not allow Deploy"),
        "{}",
        forged.body
    );
    let forged = b
        .post(
            &format!("{SERVICE}/deployments/1/rollback"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let forged = b
        .post(
            &format!("{SERVICE}/config"),
            &[("csrf", &csrf), ("key", "A"), ("value", "b")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(deployments(&daemon, &owner).await.len(), 1);
    daemon.stop().await;
}

#[tokio::test]
async fn attacker_controlled_text_is_escaped_on_every_page_and_secrets_stay_masked() {
    // The name and the command (which reaches the deploy log and the failure reason).
    let program = format!("/nonexistent/{XSS}");
    let (daemon, owner) = with_service(XSS, &[&program]).await;
    daemon
        .ok(
            &owner,
            Method::PATCH,
            &format!("{ENV}/services/web/config"),
            Some(json!({"changes": [
                {"key": "GREETING", "value": XSS},
                {"key": "API_KEY", "value": "hunter2-never-shown", "secret": true},
            ]})),
        )
        .await;
    deploy_web(&daemon, &owner).await;
    // Until it has failed: its log and reason then hold the command.
    for _ in 0..200 {
        let d = &deployments(&daemon, &owner).await[0];
        if d["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = daemon
        .ok(
            &owner,
            Method::GET,
            &format!("{ENV}/services/web/deployments/1/log"),
            None,
        )
        .await
        .to_string();

    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    let csrf = b.get(SERVICE).await.csrf();
    // A config key with markup is refused next to its field, the message escaped.
    let refused = b
        .post(
            &format!("{SERVICE}/config"),
            &[("csrf", &csrf), ("key", XSS), ("value", "v")],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains(r#"id="config-key-error""#),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(r#"aria-invalid="true""#));
    assert!(!refused.body.contains(XSS), "{}", refused.body);

    let pages = [
        "/ui/workspaces/acme".to_owned(),
        "/ui/workspaces/acme/projects/shop".to_owned(),
        SERVICE.to_owned(),
        format!("{SERVICE}/deployments/1"),
    ];
    for path in &pages {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(XSS), "{path} has the raw markup");
        assert!(
            !page.body.contains("hunter2-never-shown"),
            "{path} shows a secret"
        );
        if path != "/ui/workspaces/acme" {
            assert!(
                page.body.contains(ESCAPED),
                "{path} lost the name: {}",
                page.body
            );
        }
    }
    let service = b.get(SERVICE).await;
    assert!(service.body.contains("********"), "the secret is masked");
    assert!(service.body.contains("API_KEY"));
    let deployment = b.get(&format!("{SERVICE}/deployments/1")).await;
    assert!(
        log.contains("nonexistent"),
        "the deploy log names the command: {log}"
    );
    assert!(
        deployment.body.contains(&format!("/nonexistent/{ESCAPED}")),
        "the log line, escaped: {}",
        deployment.body
    );
    daemon.stop().await;
}

/// A branch name git accepts (no spaces) that is markup, and a commit message that is too.
const XSS_BRANCH: &str = "<img/src=x/onerror=alert(2)><script>alert(1)</script>";
const XSS_MESSAGE: &str = "fix: <script>alert('commit')</script>\n\n<img src=x onerror=alert(3)>";
const PUSHED: &str = "0123456789abcdef0123456789abcdef01234567";

/// GitHub's push of `PUSHED` to `XSS_BRANCH` of `acme/shop`, its commit's message
/// `XSS_MESSAGE`, signed with the workspace's webhook `secret`.
async fn push_with_markup(daemon: &Daemon, secret: &str) -> serde_json::Value {
    use hmac::{Hmac, Mac};
    let commit = json!({
        "id": PUSHED,
        "message": XSS_MESSAGE,
        "timestamp": "2026-01-02T03:04:05Z",
        "author": {"name": XSS, "email": "a@example.com"},
    });
    let body = serde_json::to_vec(&json!({
        "ref": format!("refs/heads/{XSS_BRANCH}"),
        "before": "0000000000000000000000000000000000000000",
        "after": PUSHED,
        "deleted": false,
        "head_commit": commit,
        "commits": [commit],
        "repository": {
            "full_name": "acme/shop",
            "clone_url": "https://github.com/acme/shop.git",
            "ssh_url": "git@github.com:acme/shop.git",
            "html_url": "https://github.com/acme/shop",
        },
    }))
    .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&body);
    let sig = hex::encode(mac.finalize().into_bytes());
    let headers = [
        ("x-github-event", "push".to_owned()),
        ("x-hub-signature-256", format!("sha256={sig}")),
    ];
    let (status, v) = daemon
        .post_raw("/v1/webhooks/github", &headers, &body)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    v
}

#[tokio::test]
async fn a_pushed_branch_and_commit_message_with_markup_show_only_escaped_and_a_deploy_names_its_deployer()
 {
    // A git service on a branch whose name is markup, deployed by a push whose commit message
    // is markup too. No builder is reachable on the process runtime: the deployments fail,
    // which is beside the point — they exist, with the branch in their trigger.
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    let secret = daemon
        .ok(&owner, Method::POST, &format!("{WS}/webhook-secret"), None)
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{ENV}/services"),
            Some(json!({
                "slug": "web",
                "name": "Web",
                "source": {"type": "git", "repo_url": "https://github.com/acme/shop.git",
                           "branch": XSS_BRANCH, "dockerfile_path": null, "build_context": null},
                "settings": {"auto_deploy": true},
            })),
        )
        .await;
    let pushed = push_with_markup(&daemon, &secret).await;
    assert_eq!(
        pushed["deployments"].as_array().unwrap().len(),
        1,
        "{pushed}"
    );
    let first = &deployments(&daemon, &owner).await[0];
    assert_eq!(first["trigger"]["branch"], XSS_BRANCH, "{first}");

    // A Developer deploys it again from the dashboard: the timeline says who.
    let (_, developer) = daemon.member(&owner, "dev", "developer").await;
    let mut b = Browser::new(&daemon);
    b.sign_in(&developer).await;
    let csrf = b.get(SERVICE).await.csrf();
    let deployed = b
        .post(&format!("{SERVICE}/deployments"), &[("csrf", &csrf)])
        .await;
    assert_eq!(deployed.status, StatusCode::SEE_OTHER, "{}", deployed.body);
    assert_eq!(deployments(&daemon, &owner).await.len(), 2);

    let escaped_branch = "&lt;img/src=x/onerror=alert(2)&gt;&lt;script&gt;alert(1)&lt;/script&gt;";
    let pages = [
        SERVICE.to_owned(),
        format!("{SERVICE}/deployments/1"),
        format!("{SERVICE}/deployments/2"),
        "/ui/workspaces/acme/projects/shop".to_owned(),
    ];
    for path in &pages {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for raw in [XSS, "<img/src=x", "<img src=x", "alert('commit')</script>"] {
            assert!(
                !page.body.contains(raw),
                "{path} has {raw} raw: {}",
                page.body
            );
        }
        assert!(
            page.body.contains(escaped_branch),
            "{path} lost the branch: {}",
            page.body
        );
    }
    // The push's trigger shows the branch; the manual deploy shows who asked for it.
    let service = b.get(SERVICE).await;
    assert!(
        service.body.contains(&format!("push to {escaped_branch}")),
        "{}",
        service.body
    );
    assert!(
        service.body.contains("manual by dev@example.com"),
        "{}",
        service.body
    );
    let second = b.get(&format!("{SERVICE}/deployments/2")).await;
    assert!(
        second.body.contains("manual by dev@example.com"),
        "{}",
        second.body
    );
    // The pushed commit is the first deployment's commit (shortened).
    let first = b.get(&format!("{SERVICE}/deployments/1")).await;
    assert!(first.body.contains(&PUSHED[..12]), "{}", first.body);
    daemon.stop().await;
}

#[tokio::test]
async fn the_service_page_shows_the_config_its_projects_team_sets_as_a_scope_of_its_own() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    // Not in a team: no team scope.
    let page = b.get(SERVICE).await;
    assert!(!page.body.contains("Set at the team"), "{}", page.body);

    let team = format!("{WS}/teams/platform-crew");
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/teams"),
            Some(json!({"name": "Platform Crew"})),
        )
        .await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{team}/projects"),
            Some(json!({"project": "shop"})),
        )
        .await;
    daemon
        .ok(
            &owner,
            Method::PATCH,
            &format!("{team}/config"),
            Some(json!({"changes": [
                {"key": "REGION", "value": "eu-from-the-team"},
                {"key": "TEAM_TOKEN", "value": "team-secret-never-shown", "secret": true},
            ]})),
        )
        .await;
    let page = b.get(SERVICE).await;
    assert_eq!(page.status, StatusCode::OK);
    let order: Vec<usize> = [
        "Set at the workspace scope",
        "Set at the team platform-crew scope (2)",
        "Set at the project scope",
        "Set at the environment scope",
        "Set at the service scope",
    ]
    .iter()
    .map(|s| {
        page.body
            .find(s)
            .unwrap_or_else(|| panic!("{s}: {}", page.body))
    })
    .collect();
    assert!(order.is_sorted(), "the cascade's order: {order:?}");
    assert!(page.body.contains("eu-from-the-team"), "{}", page.body);
    assert!(
        !page.body.contains("team-secret-never-shown"),
        "{}",
        page.body
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_session_ends_when_its_token_is_revoked() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let (user, developer) = daemon.member(&owner, "dev", "developer").await;
    let mut b = Browser::new(&daemon);
    assert_eq!(b.sign_in(&developer).await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get(SERVICE).await.status, StatusCode::OK);
    // Removing the member deletes their tokens: the session's next page is the sign-in form.
    daemon
        .ok(
            &owner,
            Method::DELETE,
            &format!("{WS}/members/{user}"),
            None,
        )
        .await;
    let page = b.get(SERVICE).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/ui/signin"));
    daemon.stop().await;
}

#[test]
fn the_live_script_moves_a_status_cell_through_the_event_stream() {
    run_script_harness("dashboard_script.js");
}

#[test]
fn the_live_log_script_adds_lines_as_text_keeps_a_bounded_number_and_stops_when_told() {
    run_script_harness("dashboard_logs_script.js");
}

/// Runs `tests/{harness}` on the dashboard's script under node (skipped without node, unless
/// `CI` is set).
fn run_script_harness(harness: &str) {
    let dir = env!("CARGO_MANIFEST_DIR");
    let run = std::process::Command::new("node")
        .arg(format!("{dir}/tests/{harness}"))
        .arg(format!("{dir}/src/ui/assets/dashboard.js"))
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: node is not available ({e})");
            return;
        }
        Err(e) => panic!("node is needed to test the dashboard's script: {e}"),
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deployment `n`'s event stream as the dashboard's script reads it, to its end (it ends once
/// the deployment is ACTIVE or finished).
async fn follow_to_the_end(b: &mut Browser, n: u64) -> String {
    let events = tokio::time::timeout(
        Duration::from_secs(60),
        b.get(&format!("{SERVICE}/deployments/{n}/events")),
    )
    .await
    .expect("the stream ends when the deployment settles");
    assert_eq!(events.status, StatusCode::OK);
    assert_eq!(events.headers["content-type"], "text/event-stream");
    events.body
}

#[tokio::test]
async fn a_deploy_and_a_rollback_from_the_dashboard_go_live_over_the_event_stream() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    if !clank_testkit::testapp::busybox_available() {
        eprintln!("SKIPPED: {} missing", clank_testkit::testapp::BUSYBOX);
        daemon.stop().await;
        return;
    }
    let app = daemon.dir.path().join("app");
    clank_testkit::testapp::write_testapp(&app).unwrap();
    let start = app.join("start.sh").to_string_lossy().into_owned();
    daemon
        .service(
            &owner,
            "web",
            vec![clank_testkit::testapp::BUSYBOX.into(), "sh".into(), start],
        )
        .await;
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    for n in 1..=2 {
        let csrf = b.get(SERVICE).await.csrf();
        let posted = b
            .post(&format!("{SERVICE}/deployments"), &[("csrf", &csrf)])
            .await;
        assert_eq!(posted.status, StatusCode::SEE_OTHER, "{}", posted.body);
        let stream = follow_to_the_end(&mut b, n).await;
        assert!(stream.starts_with("event: status"), "{stream}");
        assert!(stream.contains(r#""to":"ACTIVE""#), "#{n}: {stream}");
    }
    let csrf = b.get(SERVICE).await.csrf();
    let rolled = b
        .post(
            &format!("{SERVICE}/deployments/1/rollback"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(rolled.status, StatusCode::SEE_OTHER, "{}", rolled.body);
    let stream = follow_to_the_end(&mut b, 3).await;
    assert!(stream.contains(r#""to":"ACTIVE""#), "#3: {stream}");
    let page = b.get(SERVICE).await;
    assert!(page.body.contains("rollback to #1"), "{}", page.body);
    assert!(
        !page.body.contains(r#"/events""#),
        "no status left to follow: {}",
        page.body
    );
    let listed = deployments(&daemon, &owner).await;
    let statuses: Vec<&str> = listed
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ACTIVE", "SUPERSEDED", "SUPERSEDED"]);
    daemon.stop().await;
}

#[tokio::test]
async fn canvas_positions_are_kept_per_user_behind_csrf_and_only_for_the_projects_services() {
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let web = daemon
        .ok(&owner, Method::GET, &format!("{ENV}/services/web"), None)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let project = "/ui/workspaces/acme/projects/shop";
    let canvas = format!("{project}/canvas");
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    let page = b.get(project).await;
    assert!(
        page.body.contains(&format!(r#"data-card="{web}""#)),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let place = format!("{web}:420,360");
    let forged = b.post(&canvas, &[("positions", &place)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "no CSRF token");
    let stranger = format!("{}:1,2", uuid_like());
    let refused = b
        .post(&canvas, &[("csrf", &csrf), ("positions", &stranger)])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    let malformed = b
        .post(&canvas, &[("csrf", &csrf), ("positions", "web:x,y")])
        .await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
    let saved = b
        .post(&canvas, &[("csrf", &csrf), ("positions", &place)])
        .await;
    assert_eq!(saved.status, StatusCode::NO_CONTENT, "{}", saved.body);
    let page = b.get(project).await;
    assert!(
        page.body.contains(r#"data-x="420" data-y="360""#),
        "{}",
        page.body
    );
    // Another user's canvas is theirs: the default grid, not the Owner's arrangement.
    let (_, viewer) = daemon.member(&owner, "vic", "viewer").await;
    let mut other = Browser::new(&daemon);
    other.sign_in(&viewer).await;
    let theirs = other.get(project).await;
    assert!(
        theirs.body.contains(r#"data-x="16" data-y="16""#),
        "{}",
        theirs.body
    );
    daemon.stop().await;
}

/// An id no service has.
fn uuid_like() -> String {
    "01900000-0000-7000-8000-000000000000".to_owned()
}

#[tokio::test]
async fn a_service_created_from_the_form_is_refused_next_to_its_field_then_made() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    daemon
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    let project = "/ui/workspaces/acme/projects/shop";
    let create = format!("{project}/environments/production/services");
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    let csrf = b.get(project).await.csrf();
    let forged = b
        .post(&create, &[("slug", "web"), ("image", "nginx:1.27")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let refused = b
        .post(
            &create,
            &[("csrf", &csrf), ("slug", XSS), ("image", "nginx:1.27")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(r#"id="new-production-slug-error""#),
        "{}",
        refused.body
    );
    assert!(!refused.body.contains(XSS), "the slug is shown escaped");
    assert!(refused.body.contains(ESCAPED), "{}", refused.body);
    let bad_port = b
        .post(
            &create,
            &[
                ("csrf", &csrf),
                ("slug", "web"),
                ("image", "nginx:1.27"),
                ("port", "99999"),
            ],
        )
        .await;
    assert_eq!(bad_port.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_port.body.contains(r#"id="new-production-port-error""#));
    let made = b
        .post(
            &create,
            &[
                ("csrf", &csrf),
                ("name", "Web"),
                ("slug", "web"),
                ("image", "nginx:1.27"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location(), Some(SERVICE));
    let again = b
        .post(
            &create,
            &[("csrf", &csrf), ("slug", "web"), ("image", "nginx:1.27")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains(r#"id="new-production-slug-error""#));
    let audit = daemon
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await
        .to_string();
    assert!(audit.contains("service.create"), "{audit}");
    daemon.stop().await;
}

/// The daemon and its Owner's token, with service `web` running the busybox test app that
/// first prints `XSS` and then every line appended to the returned file (`tail -f`), deployed
/// and ACTIVE; `None` without busybox.
async fn with_talking_service() -> Option<(Daemon, String, std::path::PathBuf)> {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    if !clank_testkit::testapp::busybox_available() {
        eprintln!("SKIPPED: {} missing", clank_testkit::testapp::BUSYBOX);
        daemon.stop().await;
        return None;
    }
    let app = daemon.dir.path().join("app");
    clank_testkit::testapp::write_testapp(&app).unwrap();
    let said = app.join("said");
    std::fs::write(&said, "").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&said, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let bb = clank_testkit::testapp::BUSYBOX;
    let script = format!(r#"printf '%s\n' "$1"; {bb} tail -f "$2" & exec {bb} sh "$3""#);
    let start = app.join("start.sh");
    daemon
        .service(
            &owner,
            "web",
            vec![
                bb.into(),
                "sh".into(),
                "-c".into(),
                script,
                "sh".into(),
                XSS.into(),
                said.to_string_lossy().into_owned(),
                start.to_string_lossy().into_owned(),
            ],
        )
        .await;
    deploy_web(&daemon, &owner).await;
    wait_for_status(&daemon, &owner, 1, &["ACTIVE"]).await;
    Some((daemon, owner, said))
}

/// Deployment `n` once its status is one of `wanted` (panics after 60 s).
async fn wait_for_status(daemon: &Daemon, token: &str, n: u64, wanted: &[&str]) -> String {
    let path = format!("{ENV}/services/web/deployments/{n}");
    let mut last = serde_json::Value::Null;
    for _ in 0..600 {
        last = daemon.ok(token, Method::GET, &path, None).await;
        let status = last["status"].as_str().unwrap_or_default();
        if wanted.contains(&status) {
            return status.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deployment #{n} is not {wanted:?} after 60 s: {last}");
}

/// Reads `resp` (an event stream) until its text so far contains `needle`; the text.
async fn read_until(resp: &mut reqwest::Response, needle: &str) -> String {
    let mut text = String::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "the stream never said {needle:?}: {text}"
    );
    text
}

#[tokio::test]
async fn the_service_page_shows_the_tail_of_its_output_escaped_and_follows_a_new_line() {
    let Some((daemon, owner, said)) = with_talking_service().await else {
        return;
    };
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    // Without script: the last lines, escaped, on the page itself.
    let mut page = b.get(SERVICE).await;
    for _ in 0..50 {
        if page.body.contains(ESCAPED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = b.get(SERVICE).await;
    }
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(ESCAPED),
        "the tail, escaped: {}",
        page.body
    );
    assert!(!page.body.contains(XSS), "raw markup on the page");
    assert!(
        page.body
            .contains(&format!(r#"data-follow="{SERVICE}/logs""#)),
        "{}",
        page.body
    );

    // With script: the stream the page names, on the session's cookie alone.
    let mut stream = b
        .http
        .get(format!("{}{SERVICE}/logs", b.base))
        .header("cookie", b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // It starts with the tail the page showed (JSON text, for the script to add as text).
    read_until(&mut stream, r#""line":"<script>alert(1)</script>""#).await;
    // A line written after the page was loaded arrives on the open stream.
    let later = "printed after the page <b>loaded</b>";
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&said)
            .unwrap();
        writeln!(f, "{later}").unwrap();
    }
    let text = read_until(&mut stream, later).await;
    assert!(text.contains("event: line"), "{text}");
    drop(stream);

    // Signed out, there is nothing to follow.
    let mut stranger = Browser::new(&daemon);
    let refused = stranger.get(&format!("{SERVICE}/logs")).await;
    assert_eq!(refused.status, StatusCode::SEE_OTHER);

    // The deploy log of the (settled) deployment: its history, then its status, then the end.
    let log = tokio::time::timeout(
        Duration::from_secs(30),
        b.get(&format!("{SERVICE}/deployments/1/log")),
    )
    .await
    .expect("a settled deployment's log stream ends");
    assert_eq!(log.status, StatusCode::OK);
    let history = log.body.find("event: history").expect("a history event");
    let status = log.body.find("event: status").expect("the status");
    assert!(log.body.starts_with("event: log"), "{}", log.body);
    assert!(history < status, "{}", log.body);
    assert!(
        log.body.contains("HEALTH_CHECKING → ACTIVE"),
        "{}",
        log.body
    );
    daemon.stop().await;
}

#[tokio::test]
async fn cancelling_an_in_progress_deployment_from_the_page_ends_it_and_a_viewer_cannot() {
    // Nothing listens on the port: the health check never passes, so the deployment stays in
    // progress (until its deploy timeout, far beyond this test).
    let (daemon, owner) = with_service("Web", &["/bin/sleep", "600"]).await;
    deploy_web(&daemon, &owner).await;
    wait_for_status(&daemon, &owner, 1, &["HEALTH_CHECKING"]).await;
    let cancel = format!("{SERVICE}/deployments/1/cancel");
    let cancel_action = format!(r#"action="{cancel}""#);

    // A Viewer sees no Cancel button and is refused anyway; nothing changes.
    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let mut v = Browser::new(&daemon);
    v.sign_in(&viewer).await;
    for path in [SERVICE.to_owned(), format!("{SERVICE}/deployments/1")] {
        let page = v.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains(&cancel_action), "{path}: {}", page.body);
        assert!(!page.body.contains(">Cancel<"), "{path}: {}", page.body);
    }
    let csrf = v.get(SERVICE).await.csrf();
    let forged = v
        .post(&cancel, &[("csrf", &csrf), ("from", "deployment")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(
        forged.body.contains("does not allow Deploy"),
        "{}",
        forged.body
    );
    let still = &deployments(&daemon, &owner).await[0];
    assert_eq!(still["status"], "HEALTH_CHECKING", "{still}");

    // The Owner sees it on the timeline and on the deployment's page (which follows its log).
    let mut b = Browser::new(&daemon);
    b.sign_in(&owner).await;
    let service = b.get(SERVICE).await;
    assert!(service.body.contains(&cancel_action), "{}", service.body);
    let page = b.get(&format!("{SERVICE}/deployments/1")).await;
    assert!(page.body.contains(&cancel_action), "{}", page.body);
    assert!(
        page.body
            .contains(&format!(r#"data-follow="{SERVICE}/deployments/1/log""#)),
        "{}",
        page.body
    );
    let without_token = b.post(&cancel, &[("from", "deployment")]).await;
    assert_eq!(without_token.status, StatusCode::FORBIDDEN);
    let done = b
        .post(&cancel, &[("csrf", &page.csrf()), ("from", "deployment")])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        done.location(),
        Some(format!("{SERVICE}/deployments/1").as_str())
    );
    // As the API's cancel ends it (asked for at once, ended by the reconciler): CANCELLED,
    // audited as the session's token.
    let d = &deployments(&daemon, &owner).await[0];
    assert_eq!(d["cancel_requested"], true, "{d}");
    wait_for_status(&daemon, &owner, 1, &["CANCELLED"]).await;
    let audit = daemon
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await
        .to_string();
    assert!(audit.contains("deployment.cancel"), "{audit}");
    let page = b.get(&format!("{SERVICE}/deployments/1")).await;
    assert!(
        page.body.contains(r#"data-status="CANCELLED""#),
        "{}",
        page.body
    );
    assert!(!page.body.contains(&cancel_action), "{}", page.body);
    assert!(!page.body.contains("data-follow"), "{}", page.body);
    // Cancelling it again is the API's refusal, shown as a page.
    let again = b
        .post(&cancel, &[("csrf", &page.csrf()), ("from", "service")])
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    daemon.stop().await;
}

/// The service's settings form, posted with `fields`.
async fn post_settings(b: &mut Browser, fields: Vec<(&'static str, String)>) -> Page {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post(&format!("{SERVICE}/settings"), &fields).await
}

/// The settings form: what it sends goes through `PATCH …/services/{s}` (the whole settings
/// and the processes' replicas, saved and audited); a value that is not a number, or that the
/// API refuses, is shown next to its field and changes nothing; a Viewer gets no form and a
/// forged one is refused.
#[tokio::test]
async fn settings_from_the_form_are_saved_through_the_api_and_a_bad_value_is_refused_by_its_field()
{
    let (daemon, owner) = with_service("Web", &["/bin/true"]).await;
    let service = format!("{ENV}/services/web");
    let mut b = Browser::new(&daemon);
    assert_eq!(b.sign_in(&owner).await.status, StatusCode::SEE_OTHER);
    let page = b.get(SERVICE).await;
    assert!(
        page.body.contains(r#"id="settings-memory_limit_mb""#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("default 512"),
        "the documented default is shown"
    );
    assert!(page.body.contains(r#"name="replicas.web""#));
    let csrf = page.csrf();
    let form = |memory: &'static str, port: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("port", port.to_owned()),
            ("health_check_path", "/ready".to_owned()),
            ("health_check_interval_s", "2".to_owned()),
            ("health_check_retries", "4".to_owned()),
            ("deploy_timeout_s", "120".to_owned()),
            ("build_timeout_s", "600".to_owned()),
            ("cpu_limit", "0.25".to_owned()),
            ("memory_limit_mb", memory.to_owned()),
            ("is_public", "on".to_owned()),
            ("replicas.web", "2".to_owned()),
        ]
    };
    let saved = post_settings(&mut b, form("256", "9090")).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let v = daemon.ok(&owner, Method::GET, &service, None).await;
    assert_eq!(v["settings"]["port"], 9090);
    assert_eq!(v["settings"]["memory_limit_mb"], 256);
    assert_eq!(v["settings"]["health_check_path"], "/ready");
    assert_eq!(
        v["settings"]["auto_deploy"], false,
        "an unticked box is off"
    );
    assert_eq!(v["processes"]["web"]["replicas"], 2);
    assert_eq!(
        v["processes"]["web"]["command"],
        json!(["/bin/true"]),
        "kept"
    );

    let not_a_number = post_settings(&mut b, form("lots", "9090")).await;
    assert_eq!(not_a_number.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        not_a_number
            .body
            .contains(r#"id="settings-memory_limit_mb-error""#)
            && not_a_number.body.contains("is not a number"),
        "{}",
        not_a_number.body
    );
    let refused = post_settings(&mut b, form("256", "0")).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.body.contains(r#"id="settings-port-error""#),
        "the API's refusal of `settings.port` is next to the port: {}",
        refused.body
    );
    assert_eq!(
        daemon.ok(&owner, Method::GET, &service, None).await,
        v,
        "refused forms changed nothing"
    );

    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let mut vb = Browser::new(&daemon);
    assert_eq!(vb.sign_in(&viewer).await.status, StatusCode::SEE_OTHER);
    let page = vb.get(SERVICE).await;
    assert!(!page.body.contains("Edit settings"), "{}", page.body);
    let csrf = page.csrf();
    let forged = vb
        .post(
            &format!("{SERVICE}/settings"),
            &[("csrf", &csrf), ("port", "1234"), ("memory_limit_mb", "64")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert_eq!(daemon.ok(&owner, Method::GET, &service, None).await, v);
    daemon.stop().await;
}
