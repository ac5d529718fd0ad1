//! The dashboard's sign-in with an email and password (set at `init`, or by an Owner) against
//! the real daemon in-process: the session it opens is a token session like any other (same
//! cookie, same role checks, its token revoked at sign-out), a wrong password and an unknown
//! email get one answer, failures are rate-limited, and `init` without a password is as before.

mod common;

use common::browser::Browser;
use common::{Daemon, ENV, WS};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SERVICE: &str = "/ui/workspaces/acme/projects/shop/environments/production/services/web";
const PASSWORD: &str = "correct horse battery staple";

/// `init` with `password` (ada@example.com, Owner of `acme`): the Owner's token.
async fn init_with_password(daemon: &Daemon, password: &str) -> String {
    let (s, v) = daemon
        .call(
            None,
            Method::POST,
            "/v1/init",
            Some(json!({
                "workspace": "acme", "name": "Ada", "email": "ada@example.com",
                "password": password,
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

/// Project `shop` with service `web` (a native process that never needs to run here).
async fn with_service(daemon: &Daemon, owner: &str) {
    daemon
        .ok(
            owner,
            Method::POST,
            &format!("{WS}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    daemon
        .ok(
            owner,
            Method::POST,
            &format!("{ENV}/services"),
            Some(json!({
                "slug": "web",
                "name": "Web",
                "source": {"type": "docker_image", "image": clank_testkit::testapp::IMAGE},
                "processes": {"web": {"command": ["/bin/true"]}},
            })),
        )
        .await;
}

async fn tokens(daemon: &Daemon, owner: &str) -> Vec<Value> {
    let v = daemon
        .ok(owner, Method::GET, &format!("{WS}/tokens?all=true"), None)
        .await;
    v.as_array().unwrap().clone()
}

#[tokio::test]
async fn a_password_sign_in_opens_a_token_session_with_the_same_cookie_revoked_at_sign_out() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = init_with_password(&daemon, PASSWORD).await;
    let mut b = Browser::new(&daemon);
    // The email is matched as `init` stored it: trimmed, any case.
    let page = b.sign_in_with_password(" Ada@Example.com ", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/ui/workspaces/acme"));
    let by_password = page.session_flags();
    let mut t = Browser::new(&daemon);
    let by_token = t.sign_in_with_token(&owner).await.session_flags();
    assert_eq!(by_password, by_token, "the same cookie either way");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(by_password.contains(flag), "{flag}: {by_password}");
    }

    // The session is an Owner's: every page as for the token, the Owner's forms included.
    let home = b.get("/ui/workspaces/acme").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains("Sign out"), "{}", home.body);

    // Its token is the user's, named for it, expiring with the session; listed as any other.
    let made: Vec<Value> = tokens(&daemon, &owner)
        .await
        .into_iter()
        .filter(|t| t["name"] == "dashboard sign-in")
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["role"], "owner");
    assert!(made[0]["expires_at"].is_number(), "{made:?}");
    assert_eq!(made[0]["revoked"], false);

    // Signing out ends the session and revokes its token; the old cookie opens nothing.
    let old = b.cookies.clone();
    let out = b.post("/ui/signout", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(!b.has_session());
    let made = tokens(&daemon, &owner).await;
    let made = made
        .iter()
        .find(|t| t["name"] == "dashboard sign-in")
        .unwrap();
    assert_eq!(made["revoked"], true, "{made}");
    b.cookies = old;
    let page = b.get("/ui/workspaces/acme").await;
    assert_eq!(page.location(), Some("/ui/signin"));

    // Revoking a password session's token ends it, like any token session.
    let mut c = Browser::new(&daemon);
    assert_eq!(
        c.sign_in_with_password("ada@example.com", PASSWORD)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(c.get("/ui/workspaces/acme").await.status, StatusCode::OK);
    let live = tokens(&daemon, &owner)
        .await
        .into_iter()
        .find(|t| t["name"] == "dashboard sign-in" && t["revoked"] == false)
        .unwrap();
    daemon
        .ok(
            &owner,
            Method::DELETE,
            &format!("{WS}/tokens/{}", live["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        c.get("/ui/workspaces/acme").await.location(),
        Some("/ui/signin")
    );
    // The password was never echoed into a page.
    assert!(
        daemon
            .bodies
            .lock()
            .unwrap()
            .iter()
            .all(|b| !b.contains(PASSWORD))
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_one_answer_and_bad_input_shows_by_its_field() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    init_with_password(&daemon, PASSWORD).await;
    let mut b = Browser::new(&daemon);
    let wrong = b
        .sign_in_with_password("ada@example.com", "not the password at all")
        .await;
    let unknown = b
        .sign_in_with_password("nobody@example.com", "not the password at all")
        .await;
    for page in [&wrong, &unknown] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
        assert!(
            page.body.contains("wrong email or password"),
            "{}",
            page.body
        );
        // Next to the password field, which stays empty; the email is kept.
        assert!(
            page.body.contains(r#"id="password-error""#),
            "{}",
            page.body
        );
        assert!(page.body.contains(r#"aria-describedby="password-error""#));
        assert!(!page.body.contains("not the password at all"));
    }
    assert!(wrong.body.contains(r#"value="ada@example.com""#));
    assert!(!b.has_session());

    // Missing or malformed input: 422-style refusals, each by its field.
    let no_password = b.sign_in_with_password("ada@example.com", "").await;
    assert_eq!(no_password.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_password.body.contains("enter your password"));
    assert!(no_password.body.contains(r#"id="password-error""#));
    let not_email = b.sign_in_with_password("ada", PASSWORD).await;
    assert!(not_email.status.is_client_error(), "{}", not_email.status);
    assert!(
        not_email.body.contains("is not an email address"),
        "{}",
        not_email.body
    );
    assert!(not_email.body.contains(r#"id="email-error""#));
    // Without the form's own token (a cross-site login), nothing is even checked.
    let mut other = Browser::new(&daemon);
    let forged = other
        .post(
            "/ui/signin",
            &[
                ("csrf", "guess"),
                ("method", "password"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!other.has_session());
    daemon.stop().await;
}

#[tokio::test]
async fn failed_password_sign_ins_are_rate_limited_per_email() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    init_with_password(&daemon, PASSWORD).await;
    let mut b = Browser::new(&daemon);
    for i in 0..5 {
        let page = b
            .sign_in_with_password("ada@example.com", &format!("wrong password {i}"))
            .await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    // The limit reached, even the right password is refused until the window ends.
    let page = b.sign_in_with_password("ada@example.com", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(
        page.body.contains("too many failed sign-ins"),
        "{}",
        page.body
    );
    assert!(!b.has_session());
    // So is an email in other case: one account, one count.
    let page = b.sign_in_with_password("ADA@example.com", PASSWORD).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    // Another email is counted on its own (an unknown one too: no telling them apart).
    let page = b
        .sign_in_with_password("someone@example.com", "wrong password x")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    daemon.stop().await;
}

#[tokio::test]
async fn a_viewers_password_session_has_no_deploy_button_and_a_forged_deploy_is_refused() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    with_service(&daemon, &owner).await;
    let (_, viewer) = daemon.member(&owner, "vera", "viewer").await;
    let (_, developer) = daemon.member(&owner, "dev", "developer").await;
    let set = |who: &str| format!("{WS}/members/{who}/password");
    // Only an Owner sets another member's password; a member may set their own.
    let (s, v) = daemon
        .call(
            Some(&developer),
            Method::PUT,
            &set("vera@example.com"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = daemon
        .call(
            Some(&viewer),
            Method::PUT,
            &set("vera@example.com"),
            Some(json!({"password": "short"})),
        )
        .await;
    assert_eq!(v["field"], "password", "{s} {v}");
    let (s, v) = daemon
        .call(
            Some(&owner),
            Method::PUT,
            &set("vera@example.com"),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    let mut b = Browser::new(&daemon);
    let page = b.sign_in_with_password("vera@example.com", PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b.get(SERVICE).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        !page
            .body
            .contains(&format!(r#"action="{SERVICE}/deployments""#)),
        "{}",
        page.body
    );
    assert!(!page.body.contains(">Deploy<"), "{}", page.body);
    // The sign-out form carries the session's CSRF token: forge the deploy with it.
    let forged = b
        .post(&format!("{SERVICE}/deployments"), &[("csrf", &page.csrf())])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.body);
    assert!(
        forged.body.contains("does not allow Deploy"),
        "{}",
        forged.body
    );
    let (_, listed) = daemon
        .call(
            Some(&owner),
            Method::GET,
            &format!("{ENV}/services/web/deployments"),
            None,
        )
        .await;
    assert_eq!(listed, json!([]), "nothing was deployed");

    // The viewer's own REST token is no more than the viewer either: their session token
    // carries the member's role.
    let made = tokens(&daemon, &owner)
        .await
        .into_iter()
        .find(|t| t["name"] == "dashboard sign-in")
        .unwrap();
    assert_eq!(made["role"], "viewer");
    daemon.stop().await;
}

#[tokio::test]
async fn init_without_a_password_is_as_before_and_a_short_password_is_refused_by_field() {
    // Without: the token works, and there is no password to sign in with.
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = daemon.init().await;
    let who = daemon.ok(&owner, Method::GET, "/v1/whoami", None).await;
    assert_eq!(who["workspace"], "acme", "{who}");
    let mut b = Browser::new(&daemon);
    let page = b
        .sign_in_with_password("ada@example.com", "any password at all")
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("wrong email or password"));
    assert_eq!(
        b.sign_in_with_token(&owner).await.status,
        StatusCode::SEE_OTHER
    );
    daemon.stop().await;

    // A short password refuses the whole init, naming the field; a good one then works.
    let daemon = Daemon::start_on("process", |_| {}).await;
    let (s, v) = daemon
        .call(
            None,
            Method::POST,
            "/v1/init",
            Some(json!({
                "workspace": "acme", "name": "Ada", "email": "ada@example.com",
                "password": "short",
            })),
        )
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    assert_eq!(v["field"], "password", "{v}");
    assert!(!v.to_string().contains("\"short\""), "never echoed: {v}");
    init_with_password(&daemon, PASSWORD).await;
    let mut b = Browser::new(&daemon);
    assert_eq!(
        b.sign_in_with_password("ada@example.com", PASSWORD)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    daemon.stop().await;
}

#[tokio::test]
async fn a_member_of_two_workspaces_sees_both_and_signs_in_to_either_with_one_password() {
    let daemon = Daemon::start_on("process", |_| {}).await;
    let owner = init_with_password(&daemon, PASSWORD).await;
    // The operator makes a second tenant with Ada as its Owner, and a third that is not hers.
    for (ws, name, email) in [
        ("globex", "Ada", "ada@example.com"),
        ("initech", "Bob", "bob@example.com"),
    ] {
        let (s, v) = daemon
            .call(
                Some(&owner),
                Method::POST,
                "/v1/workspaces",
                Some(json!({"workspace": ws, "name": name, "email": email})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    // REST: her memberships, oldest first, the token's own marked; never another tenant's.
    let listed = daemon
        .ok(&owner, Method::GET, "/v1/memberships", None)
        .await;
    let listed: Vec<(&str, &str, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["workspace"].as_str().unwrap(),
                m["role"].as_str().unwrap(),
                m["current"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("acme", "owner", true), ("globex", "owner", false)]
    );
    let (s, _) = daemon
        .call(None, Method::GET, "/v1/memberships", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // The workspace page lists both, with a way into the other.
    let mut b = Browser::new(&daemon);
    b.sign_in_with_password("ada@example.com", PASSWORD).await;
    let home = b.get("/ui/workspaces/acme").await;
    assert!(
        home.body.contains(r#"href="/ui/signin?workspace=globex""#),
        "{}",
        home.body
    );
    assert!(!home.body.contains("initech"), "{}", home.body);

    // That link's form signs her in to globex with the same password.
    let form = b.get("/ui/signin?workspace=globex").await;
    assert!(
        form.body.contains(r#"name="workspace" value="globex""#),
        "{}",
        form.body
    );
    let csrf = form.csrf();
    let fields = [
        ("csrf", csrf.as_str()),
        ("method", "password"),
        ("email", "ada@example.com"),
        ("password", PASSWORD),
        ("workspace", "globex"),
    ];
    let page = b.post("/ui/signin", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/ui/workspaces/globex"));
    assert_eq!(b.get("/ui/workspaces/globex").await.status, StatusCode::OK);

    // A workspace she is not a member of gets the wrong-password answer: nothing told.
    let mut c = Browser::new(&daemon);
    let csrf = c.get("/ui/signin?workspace=initech").await.csrf();
    let page = c
        .post(
            "/ui/signin",
            &[
                ("csrf", csrf.as_str()),
                ("method", "password"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("workspace", "initech"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(
        page.body.contains("wrong email or password"),
        "{}",
        page.body
    );
    assert!(!c.has_session());
    daemon.stop().await;
}
