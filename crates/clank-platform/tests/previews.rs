//! Preview environments' logic through the platform and the bindings' operations, on the
//! embedded defaults with native processes (the engine runs, but nothing can start: the git
//! service has no builder here and the image service no image, so neither Docker nor a build
//! is needed and the deployments fail; what is checked is what was asked of them): settings checked by field; an opened pull request
//! makes one `pr-<n>` however often it is delivered, its git service on the head branch and
//! its deployment pinned to the head commit; a push to that branch deploys nothing in it;
//! a fork is refused unless allowed, and once allowed gets a preview built from the fork's
//! repository; closing removes it; the time-to-live sweep purges a
//! preview whose stored deadline passed, also on a platform opened again on the same data.

mod common;

use clank_core::model::Actor;
use clank_core::{ErrorKind, Timestamp};
use clank_platform::{
    EmbeddedOptions, Platform, PullRequestAction, PullRequestEvent, RuntimeChoice,
};
use common::{call, ok};
use serde_json::json;

const REPO: &str = "https://git.example.com/acme/shop.git";
const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

async fn open(dir: &std::path::Path) -> Platform {
    let mut options = EmbeddedOptions::new(dir.join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await.expect("open");
    p.ensure_workspace("default")
        .await
        .expect("default workspace");
    p
}

/// The platform with its engine (and sweeps) running until the task is dropped.
async fn running(dir: &std::path::Path) -> (Platform, clank_platform::EngineTask) {
    let p = open(dir).await;
    let engine = p.spawn_engine();
    (p, engine)
}

fn event(n: u64, action: PullRequestAction, commit: &str, fork: bool) -> PullRequestEvent {
    PullRequestEvent {
        number: n,
        action,
        head_branch: format!("feature-{n}"),
        head_commit: commit.to_owned(),
        head_repo_urls: vec![if fork {
            "https://git.example.com/mallory/shop.git".to_owned()
        } else {
            REPO.to_owned()
        }],
        base_repo_urls: vec![REPO.to_owned()],
        from_fork: fork,
    }
}

fn github() -> Actor {
    Actor::Webhook {
        provider: "github".to_owned(),
    }
}

async fn shop(p: &Platform) {
    ok(
        p,
        json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
    )
    .await;
    ok(
        p,
        json!({"op": "create_environment", "project": "shop", "name": "staging"}),
    )
    .await;
    ok(
        p,
        json!({"op": "create_service", "environment": "shop/staging", "spec": {
            "slug": "web",
            "source": {"type": "git", "repo_url": REPO, "branch": "main"},
            "endpoint": {"mode": "lan_only", "domains": ["web.staging.shop.test"]},
            "volumes": [{"name": "shop-web-data", "mount_path": "/data"}],
        }}),
    )
    .await;
    ok(
        p,
        json!({"op": "create_service", "environment": "shop/staging", "spec": {
            "slug": "cache",
            "source": {"type": "docker_image", "image": "redis:7"},
        }}),
    )
    .await;
}

async fn previews(p: &Platform) -> Vec<serde_json::Value> {
    ok(p, json!({"op": "list_previews", "project": "shop"}))
        .await
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_pull_request_opens_one_preview_on_its_head_and_closing_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _engine) = running(dir.path()).await;
    shop(&p).await;
    let ws = p.workspace("default").await.unwrap().id;

    // Settings are refused by field, then stored; before, nothing happens.
    let none = p
        .pull_request(
            ws,
            &event(1, PullRequestAction::Opened, SHA1, false),
            &github(),
        )
        .await
        .unwrap();
    assert!(none.previews.is_empty());
    for (settings, field) in [
        (json!({"base_environment": "nope"}), "base_environment"),
        (
            json!({"base_environment": "staging", "domain": "preview.shop.test", "pattern": "{service}.{domain}"}),
            "pattern",
        ),
        (
            json!({"base_environment": "staging", "ttl_minutes": 200000}),
            "ttl_minutes",
        ),
    ] {
        let e = call(
            &p,
            json!({"op": "set_preview_settings", "project": "shop", "settings": settings}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().starts_with(field), "{field}: {e}");
    }
    assert_eq!(
        ok(&p, json!({"op": "get_preview_settings", "project": "shop"})).await,
        json!(null)
    );
    ok(
        &p,
        json!({"op": "set_preview_settings", "project": "shop",
               "settings": {"base_environment": "staging", "domain": "preview.shop.test"}}),
    )
    .await;

    // A fork is refused.
    let refused = p
        .pull_request(
            ws,
            &event(9, PullRequestAction::Opened, SHA1, true),
            &github(),
        )
        .await
        .unwrap();
    assert_eq!(refused.refused_forks, ["shop"]);
    assert!(refused.previews.is_empty());

    // Opened (twice): one environment, the git service on the head, pinned.
    let opened = p
        .pull_request(
            ws,
            &event(1, PullRequestAction::Opened, SHA1, false),
            &github(),
        )
        .await
        .unwrap();
    assert_eq!(opened.previews.len(), 1);
    assert_eq!(opened.previews[0].action, "created");
    assert_eq!(
        opened.previews[0].urls,
        ["http://web-pr-1.preview.shop.test"]
    );
    assert_eq!(opened.previews[0].deployments.len(), 2, "web and cache");
    let again = p
        .pull_request(
            ws,
            &event(1, PullRequestAction::Reopened, SHA1, false),
            &github(),
        )
        .await
        .unwrap();
    assert_eq!(again.previews[0].action, "redeployed");
    let envs = ok(&p, json!({"op": "list_environments", "project": "shop"})).await;
    let names: Vec<&str> = envs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "pr-1").count(),
        1,
        "{names:?}"
    );
    let web = ok(&p, json!({"op": "get_service", "service": "shop/pr-1/web"})).await;
    assert_eq!(web["source"]["branch"], "feature-1", "{web}");
    assert_eq!(web["volumes"][0]["name"], "shop-web-data-pr-1", "{web}");
    let staged = ok(
        &p,
        json!({"op": "get_service", "service": "shop/staging/web"}),
    )
    .await;
    assert_eq!(staged["source"]["branch"], "main", "the base is untouched");
    let deployment = ok(
        &p,
        json!({"op": "get_deployment", "service": "shop/pr-1/web", "number": 1}),
    )
    .await;
    assert_eq!(deployment["artifact"]["commit"], SHA1, "{deployment}");
    let listed = previews(&p).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pull_request"], 1);
    assert_eq!(listed[0]["head_commit"], SHA1);

    // A push to the head branch deploys nothing in the preview; synchronize does.
    let pushed = p
        .deploy_push(ws, &[REPO.to_owned()], "feature-1", SHA2)
        .await
        .unwrap();
    assert!(pushed.is_empty(), "{pushed:?}");
    let before = listed[0]["expires_at"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let synced = p
        .pull_request(
            ws,
            &event(1, PullRequestAction::Synchronize, SHA2, false),
            &github(),
        )
        .await
        .unwrap();
    assert_eq!(synced.previews[0].deployments.len(), 1, "git services only");
    let listed = previews(&p).await;
    assert_eq!(listed[0]["head_commit"], SHA2);
    assert!(listed[0]["expires_at"].as_i64().unwrap() > before);

    // Closed: gone.
    let closed = p
        .pull_request(
            ws,
            &event(1, PullRequestAction::Closed { merged: true }, SHA2, false),
            &github(),
        )
        .await
        .unwrap();
    assert_eq!(closed.previews[0].action, "removed");
    assert!(previews(&p).await.is_empty());
    let e = call(&p, json!({"op": "get_service", "service": "shop/pr-1/web"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let audit = p.catalog().audit_events(ws, 100, None).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    for want in ["preview.create", "preview.redeploy", "preview.delete"] {
        assert!(actions.contains(&want), "{want}: {actions:?}");
    }
}

#[tokio::test]
async fn a_fork_pull_request_opens_a_preview_once_forks_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _engine) = running(dir.path()).await;
    shop(&p).await;
    let ws = p.workspace("default").await.unwrap().id;
    let settings = |allow_forks: bool| {
        json!({"op": "set_preview_settings", "project": "shop",
               "settings": {"base_environment": "staging", "domain": "preview.shop.test",
                            "allow_forks": allow_forks}})
    };

    // Refused by default: nothing created.
    ok(&p, settings(false)).await;
    let fork = event(7, PullRequestAction::Opened, SHA1, true);
    let refused = p.pull_request(ws, &fork, &github()).await.unwrap();
    assert_eq!(refused.refused_forks, ["shop"]);
    assert!(refused.previews.is_empty());
    assert!(previews(&p).await.is_empty());

    // Allowed: the same delivery makes `pr-7`, its git service on the fork's head.
    let stored = ok(&p, settings(true)).await;
    assert_eq!(stored["allow_forks"], true, "{stored}");
    let opened = p.pull_request(ws, &fork, &github()).await.unwrap();
    assert!(opened.refused_forks.is_empty(), "{opened:?}");
    assert_eq!(opened.previews.len(), 1, "{opened:?}");
    assert_eq!(opened.previews[0].action, "created");
    assert_eq!(opened.previews[0].environment, "pr-7");
    assert_eq!(
        opened.previews[0].urls,
        ["http://web-pr-7.preview.shop.test"]
    );
    let web = ok(&p, json!({"op": "get_service", "service": "shop/pr-7/web"})).await;
    assert_eq!(web["source"]["branch"], "feature-7", "{web}");
    assert_eq!(
        web["source"]["repo_url"], "https://git.example.com/mallory/shop.git",
        "built from the fork: {web}"
    );
    let deployment = ok(
        &p,
        json!({"op": "get_deployment", "service": "shop/pr-7/web", "number": 1}),
    )
    .await;
    assert_eq!(deployment["artifact"]["commit"], SHA1, "{deployment}");
    let listed = previews(&p).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["pull_request"], 7);
    let staged = ok(
        &p,
        json!({"op": "get_service", "service": "shop/staging/web"}),
    )
    .await;
    assert_eq!(staged["source"]["repo_url"], REPO, "the base is untouched");

    // Closed by hand: gone; closing again is NotFound naming it.
    let closed = ok(
        &p,
        json!({"op": "close_preview", "project": "shop", "pull_request": 7}),
    )
    .await;
    assert_eq!(closed["action"], "removed", "{closed}");
    assert!(previews(&p).await.is_empty());
    let e = call(
        &p,
        json!({"op": "close_preview", "project": "shop", "pull_request": 7}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("pr-7"), "{e}");
}

#[tokio::test]
async fn the_sweep_purges_a_preview_past_its_stored_deadline_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // No engine yet: the deployments stay queued, and nothing holds the store at the reopen.
    let p = open(dir.path()).await;
    shop(&p).await;
    let ws = p.workspace("default").await.unwrap().id;
    ok(
        &p,
        json!({"op": "set_preview_settings", "project": "shop",
               "settings": {"base_environment": "staging", "ttl_minutes": 1}}),
    )
    .await;
    p.pull_request(
        ws,
        &event(2, PullRequestAction::Opened, SHA1, false),
        &github(),
    )
    .await
    .unwrap();
    let deadline = previews(&p).await[0]["expires_at"].as_i64().unwrap();
    assert!(
        p.sweep_expired_previews(Timestamp(deadline - 1))
            .await
            .unwrap()
            .is_empty(),
        "not yet"
    );
    drop(p);

    let (p, _engine) = running(dir.path()).await;
    assert_eq!(previews(&p).await.len(), 1, "the deadline is stored");
    let swept = p.sweep_expired_previews(Timestamp(deadline)).await.unwrap();
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].environment, "pr-2");
    assert!(previews(&p).await.is_empty());
    let audit = p.catalog().audit_events(ws, 100, None).await.unwrap();
    let expired = audit
        .iter()
        .find(|a| a.action == "preview.expire")
        .expect("audited");
    assert_eq!(
        expired.actor,
        Actor::System {
            task: "preview-ttl".to_owned()
        }
    );
}
