//! Git-push webhooks against the real daemon in-process (native-process runtime, no Docker):
//! signatures accepted and refused for GitHub, GitLab and Gitea/Forgejo, pushes matched to git
//! services by normalised repository URL and branch, `auto_deploy` honoured, the pushed commit
//! pinned on the deployment. No builder is reachable with the process runtime, so the created
//! deployments fail later; what is asserted is that they are created (or not).

mod common;

use common::Daemon;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

/// The daemon with workspace `acme`, its Owner's token, project `shop` and the workspace's
/// webhook secret.
struct Hooks {
    daemon: Daemon,
    owner: String,
    secret: String,
}

impl std::ops::Deref for Hooks {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const ENV: &str = "/v1/workspaces/acme/projects/shop/environments/production";

impl Hooks {
    async fn start() -> Hooks {
        let daemon = Daemon::start_on("process", |_| {}).await;
        let owner = daemon.init().await;
        let (s, v) = daemon
            .call(
                Some(&owner),
                Method::POST,
                "/v1/workspaces/acme/projects",
                Some(json!({"name": "Shop"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = daemon
            .call(
                Some(&owner),
                Method::POST,
                "/v1/workspaces/acme/webhook-secret",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let secret = v["secret"].as_str().unwrap().to_owned();
        assert!(secret.len() >= 32);
        Hooks {
            daemon,
            owner,
            secret,
        }
    }

    async fn git_service(&self, slug: &str, repo: &str, branch: &str, auto_deploy: bool) {
        let body = json!({
            "slug": slug,
            "source": {"type": "git", "repo_url": repo, "branch": branch,
                       "dockerfile_path": null, "build_context": null},
            "settings": {"auto_deploy": auto_deploy},
        });
        let (s, v) = self
            .call(
                Some(&self.owner),
                Method::POST,
                &format!("{ENV}/services"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }

    async fn deployments(&self, slug: &str) -> Vec<Value> {
        let (s, v) = self
            .call(
                Some(&self.owner),
                Method::GET,
                &format!("{ENV}/services/{slug}/deployments"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v.as_array().unwrap().clone()
    }

    async fn stop(self) {
        self.daemon.stop_whatever_the_outcome().await;
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn github_push(branch: &str, commit: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0000000000000000000000000000000000000000",
        "after": commit,
        "deleted": false,
        "repository": {
            "full_name": "acme/shop",
            "clone_url": "https://github.com/acme/shop.git",
            "ssh_url": "git@github.com:acme/shop.git",
            "html_url": "https://github.com/acme/shop",
        },
    }))
    .unwrap()
}

fn github_headers(sig: String) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "push".to_owned()),
        ("x-hub-signature-256", format!("sha256={sig}")),
    ]
}

#[tokio::test]
async fn github_push_deploys_matching_services_with_the_commit_pinned() {
    let d = Hooks::start().await;
    // Same repository written three ways; one on another branch, one with auto_deploy off,
    // one of another repository.
    d.git_service("web", "https://github.com/acme/shop.git", "main", true)
        .await;
    d.git_service("api", "git@github.com:Acme/Shop", "main", true)
        .await;
    d.git_service("docs", "https://github.com/acme/shop.git", "docs", true)
        .await;
    d.git_service("manual", "https://github.com/acme/shop.git", "main", false)
        .await;
    d.git_service("other", "https://github.com/acme/other.git", "main", true)
        .await;

    let body = github_push("main", COMMIT);
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/github",
            &github_headers(sign(&d.secret, &body)),
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut deployed: Vec<&str> = v["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["service"].as_str().unwrap())
        .collect();
    deployed.sort_unstable();
    assert_eq!(deployed, ["api", "web"], "{v}");
    for x in v["deployments"].as_array().unwrap() {
        assert_eq!(x["number"], 1);
        assert_eq!(x["deployment"]["trigger"]["kind"], "auto_deploy");
        assert_eq!(x["deployment"]["trigger"]["commit"], COMMIT);
        assert_eq!(x["deployment"]["trigger"]["branch"], "main");
    }
    let web = d.deployments("web").await;
    assert_eq!(web.len(), 1);
    assert_eq!(web[0]["trigger"]["commit"], COMMIT);
    for slug in ["docs", "manual", "other"] {
        assert!(d.deployments(slug).await.is_empty(), "{slug} was deployed");
    }
    // The audit log names the forge as the actor of each deploy it triggered.
    let owner = d.owner.clone();
    let (s, audit) = d
        .call(
            Some(&owner),
            Method::GET,
            "/v1/workspaces/acme/audit?limit=2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    let mut targets: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["action"], "deployment.create", "{e}");
            assert_eq!(e["actor"], json!({"kind": "webhook", "provider": "github"}));
            assert_eq!(e["details"]["commit"], COMMIT, "{e}");
            assert_eq!(e["outcome"]["result"], "succeeded", "{e}");
            e["target"].as_str().unwrap()
        })
        .collect();
    targets.sort_unstable();
    assert_eq!(
        targets,
        ["acme/shop/production/api", "acme/shop/production/web"]
    );

    // Ping answers 200 and deploys nothing.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let mut h = github_headers(sign(&d.secret, ping));
    h[0].1 = "ping".to_owned();
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, ping).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Another branch with no follower, and a tag: 202, nothing deployed.
    let body = github_push("feature", COMMIT);
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/github",
            &github_headers(sign(&d.secret, &body)),
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["deployments"], json!([]));
    d.stop().await;
}

/// A GitHub push of `commit` made at `timestamp`, as GitHub signs it.
fn github_push_at(branch: &str, commit: &str, timestamp: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&github_push(branch, commit)).unwrap();
    v["head_commit"] = json!({"id": commit, "timestamp": timestamp});
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test]
async fn replayed_deliveries_and_older_pushes_never_redeploy() {
    let d = Hooks::start().await;
    d.git_service("web", "https://github.com/acme/shop.git", "main", true)
        .await;
    let newer = "b".repeat(40);
    let send = |body: Vec<u8>, delivery: &'static str| {
        let mut h = github_headers(sign(&d.secret, &body));
        h.push(("x-github-delivery", delivery.to_owned()));
        (h, body)
    };
    // The old commit, then the newer one: both deploy.
    let old_push = github_push_at("main", COMMIT, "2026-12-01T10:00:00+01:00");
    let (h, b) = send(old_push.clone(), "delivery-1");
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, &b).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let (h, b) = send(
        github_push_at("main", &newer, "2026-12-02T10:00:00Z"),
        "delivery-2",
    );
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, &b).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(d.deployments("web").await.len(), 2);

    // A redelivery of delivery-2: 200, nothing deployed.
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, &b).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["ignored"].as_str().unwrap().contains("received before"),
        "{v}"
    );
    // The old signed push replayed under a fresh delivery id: older than the newest, ignored.
    let (h, b) = send(old_push, "delivery-3");
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, &b).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["ignored"]
            .as_str()
            .unwrap()
            .contains("never replaces a newer commit"),
        "{v}"
    );
    let web = d.deployments("web").await;
    assert_eq!(web.len(), 2, "a replay deployed again: {web:?}");
    assert!(
        web.iter().any(|x| x["trigger"]["commit"] == newer.as_str()),
        "{web:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn github_form_encoded_deliveries_deploy_like_json_ones() {
    let d = Hooks::start().await;
    d.git_service("web", "https://github.com/acme/shop.git", "main", true)
        .await;
    let json = github_push("main", COMMIT);
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let mut h = github_headers(sign(&d.secret, body.as_bytes()));
    h.push((
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    ));
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, body.as_bytes()).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(d.deployments("web").await.len(), 1);
    // A form without the payload field says what to change.
    let bad = "hello=world";
    let mut h = github_headers(sign(&d.secret, bad.as_bytes()));
    h.push((
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    ));
    let (s, v) = d.post_raw("/v1/webhooks/github", &h, bad.as_bytes()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("application/json"),
        "{v}"
    );
    d.stop().await;
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let d = Hooks::start().await;
    d.git_service("web", "https://github.com/acme/shop.git", "main", true)
        .await;
    let body = github_push("main", COMMIT);
    let good = sign(&d.secret, &body);

    // Wrong secret.
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/github",
            &github_headers(sign("not-the-secret", &body)),
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // Missing header.
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/github",
            &[("x-github-event", "push".to_owned())],
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("X-Hub-Signature-256"),
        "{v}"
    );
    // Garbage signature.
    let (s, _) = d
        .post_raw(
            "/v1/webhooks/github",
            &github_headers("zz".to_owned()),
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Tampered body: the signature of the original, a different branch... or commit.
    let tampered = github_push("main", "fedcba9876543210fedcba9876543210fedcba98");
    let (s, _) = d
        .post_raw(
            "/v1/webhooks/github",
            &github_headers(good.clone()),
            &tampered,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // GitLab with a wrong token, Gitea with the GitHub-style prefix missing the right key.
    let (s, _) = d
        .post_raw(
            "/v1/webhooks/gitlab",
            &[
                ("x-gitlab-event", "Push Hook".to_owned()),
                ("x-gitlab-token", "nope".to_owned()),
            ],
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = d
        .post_raw(
            "/v1/webhooks/gitea",
            &[
                ("x-gitea-event", "push".to_owned()),
                ("x-gitea-signature", sign("nope", &body)),
            ],
            &body,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(d.deployments("web").await.is_empty());

    // Rotation: the old secret stops verifying.
    let (s, v) = d
        .call(
            Some(&d.owner),
            Method::POST,
            "/v1/workspaces/acme/webhook-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = d
        .post_raw("/v1/webhooks/github", &github_headers(good), &body)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(d.deployments("web").await.is_empty());

    // No token: the secret endpoint is 401.
    let (s, _) = d
        .call(
            None,
            Method::POST,
            "/v1/workspaces/acme/webhook-secret",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    d.stop().await;
}

#[tokio::test]
async fn gitlab_and_gitea_pushes_deploy_and_malformed_payloads_name_the_field() {
    let d = Hooks::start().await;
    d.git_service(
        "web",
        "https://gitlab.example.com/acme/shop.git",
        "main",
        true,
    )
    .await;
    d.git_service(
        "forgejo",
        "https://codeberg.org/acme/shop.git",
        "main",
        true,
    )
    .await;

    let gitlab = serde_json::to_vec(&json!({
        "object_kind": "push",
        "ref": "refs/heads/main",
        "after": COMMIT,
        "project": {
            "git_http_url": "https://gitlab.example.com/acme/shop.git",
            "git_ssh_url": "git@gitlab.example.com:acme/shop.git",
        },
    }))
    .unwrap();
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/gitlab",
            &[
                ("x-gitlab-event", "Push Hook".to_owned()),
                ("x-gitlab-token", d.secret.clone()),
            ],
            &gitlab,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["deployments"][0]["service"], "web", "{v}");

    let gitea = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "after": COMMIT,
        "repository": {"clone_url": "https://codeberg.org/acme/shop.git"},
    }))
    .unwrap();
    // Forgejo's own header names.
    let (s, v) = d
        .post_raw(
            "/v1/webhooks/gitea",
            &[
                ("x-forgejo-event", "push".to_owned()),
                ("x-forgejo-signature", sign(&d.secret, &gitea)),
            ],
            &gitea,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["deployments"][0]["service"], "forgejo", "{v}");
    assert_eq!(
        d.deployments("forgejo").await[0]["trigger"]["commit"],
        COMMIT
    );

    // Signed but malformed: no `ref`, a non-SHA `after`, not JSON.
    let gh = |b: &[u8]| github_headers(sign(&d.secret, b));
    let no_ref =
        serde_json::to_vec(&json!({"after": COMMIT, "repository": {"clone_url": "x"}})).unwrap();
    let (s, v) = d
        .post_raw("/v1/webhooks/github", &gh(&no_ref), &no_ref)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "ref");
    let bad_sha = github_push("main", "--upload-pack=evil");
    let (s, v) = d
        .post_raw("/v1/webhooks/github", &gh(&bad_sha), &bad_sha)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "after");
    let (s, _) = d
        .post_raw("/v1/webhooks/github", &gh(b"{not json"), b"{not json")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    d.stop().await;
}

/// Not a webhook: the services list's pagination, tested here because this harness needs no
/// Docker.
#[tokio::test]
async fn services_list_paginates_with_a_cursor() {
    let d = Hooks::start().await;
    for i in 0..5 {
        d.git_service(
            &format!("s{i}"),
            "https://example.com/a/b.git",
            "main",
            false,
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = d.url(&format!("{ENV}/services?limit=2"));
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let resp = d.http.get(url).bearer_auth(&d.owner).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let next = resp
            .headers()
            .get("x-next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page: Vec<Value> = resp.json().await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|s| s["slug"].as_str().unwrap().to_owned()));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);
    // Unpaginated: everything, as before.
    let (s, v) = d
        .call(
            Some(&d.owner),
            Method::GET,
            &format!("{ENV}/services"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 5);
    for bad in ["limit=0", "limit=5000", "after=%21%21", "after=Zm9v"] {
        let (s, v) = d
            .call(
                Some(&d.owner),
                Method::GET,
                &format!("{ENV}/services?{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }
    d.stop().await;
}

/// Not a webhook either: the OpenAPI document is served without a token.
#[tokio::test]
async fn openapi_document_is_served() {
    let d = Hooks::start().await;
    let (s, v) = d.call(None, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["openapi"], "3.1.0");
    assert!(v["paths"]["/v1/webhooks/github"]["post"].is_object());
    std::fs::write(
        std::env::temp_dir().join("clank-openapi.json"),
        serde_json::to_vec_pretty(&v).unwrap(),
    )
    .unwrap();
    d.stop().await;
}
