//! Tenancy at the REST level, on the real daemon: `init` creates exactly one first Owner however
//! many race, and a domain one workspace routes can never be claimed by another.

mod common;

use clank_daemon::ApiLimits;
use common::Daemon;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn concurrent_inits_create_exactly_one_first_owner() {
    let d = Daemon::start(ApiLimits::default()).await;
    let tries = (0..24).map(|i| {
        let d = &d;
        async move {
            d.call(
                None,
                Method::POST,
                "/v1/init",
                Some(json!({
                    "workspace": format!("ws{i}"),
                    "name": "Mallory",
                    "email": format!("m{i}@example.com"),
                })),
            )
            .await
        }
    });
    let results = futures_util::future::join_all(tries).await;
    let created = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "{results:?}");
    for (s, v) in &results {
        assert!(
            *s == StatusCode::CREATED || *s == StatusCode::CONFLICT,
            "{s}: {v}"
        );
    }
    let (s, v) = d
        .call(
            None,
            Method::POST,
            "/v1/init",
            Some(json!({"workspace": "late", "name": "Eve", "email": "eve@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("already initialised"),
        "{v}"
    );
}

#[tokio::test]
async fn git_services_from_local_paths_or_private_hosts_are_refused_naming_the_rule() {
    let d = Daemon::start(ApiLimits::default()).await;
    let owner = d.init().await;
    d.ok(
        &owner,
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Shop"})),
    )
    .await;
    let services = "/v1/workspaces/acme/projects/shop/environments/production/services";
    for (url, rule) in [
        ("file:///work/main", "local_repository"),
        ("http://127.0.0.1:3000/acme/shop.git", "private_host"),
        ("http://169.254.169.254/latest", "private_host"),
    ] {
        let (s, v) = d
            .call(
                Some(&owner),
                Method::POST,
                services,
                Some(json!({"slug": "web", "source": {"type": "git", "repo_url": url, "branch": "main"}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert_eq!(v["field"], "source.repo_url", "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains("CLANK_ALLOW_LOCAL_REPOSITORIES"),
            "{v}"
        );
        let _ = rule;
    }
    // Credentials never travel over plain http.
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            services,
            Some(json!({"slug": "web", "source": {"type": "git", "repo_url": "http://git.example.com/a.git",
                "branch": "main", "credentials_secret": "GIT_TOKEN"}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "source.credentials_secret", "{v}");
    // Nothing was created.
    let (s, v) = d.call(Some(&owner), Method::GET, services, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().map_or(0, Vec::len), 0, "{v}");
}
