//! Promotion and cloning on the real daemon and Docker Engine, over HTTP. Staging's ACTIVE
//! version is planned into production (the plan shows the image, the differing config keys,
//! secrets masked, and what production keeps), applied by the plan's id (production then runs
//! staging's image with its own secret, config and domain), and a second apply of the same
//! plan, or one after a config change, is refused with 409. Production is then cloned to `qa`
//! with a domain pattern: new domains, new volume names, config copied with secrets re-sealed,
//! deployed on the environment's own network. Fails (never skips) without a Docker Engine when
//! CI is set; every container, network, volume and image tag of the test is removed.

use std::net::SocketAddr;
use std::time::Duration;

mod common;

use common::{Daemon, docker_cli, docker_with_testapp, remove_project_leftovers};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WS: &str = "/v1/workspaces/acme";
const PROJECT: &str = "/v1/workspaces/acme/projects/promo";
/// Staging's image: the test app under another name, so the promotion visibly changes it.
const STAGING_IMAGE: &str = "clank-promote-test:v2";
const STAGING_SECRET: &str = "staging-k3y-5a1e";
const PRODUCTION_SECRET: &str = "production-k3y-77b0";

/// Removes the project's containers, networks and volumes and the extra image tag, also after
/// a panic.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_project_leftovers("promo");
        docker_cli(&["rmi", STAGING_IMAGE]);
    }
}

fn env(name: &str) -> String {
    format!("{PROJECT}/environments/{name}")
}

fn svc(env_name: &str) -> String {
    format!("{}/services/api", env(env_name))
}

/// `GET /env?KEY` through the embedded proxy with `host`: the variable's value in the
/// container that serves `host`.
async fn env_via_proxy(proxy: SocketAddr, host: &str, key: &str) -> (StatusCode, String) {
    let resp = clank_testkit::web::client()
        .get(format!("http://{proxy}/env?{key}"))
        .header(reqwest::header::HOST, host)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /env?{key} (Host {host}): {e}"));
    (resp.status(), resp.text().await.unwrap().trim().to_owned())
}

/// Poll until `host` answers `want` for `key` (the route may take a moment to switch).
async fn until_env(proxy: SocketAddr, host: &str, key: &str, want: &str) {
    let mut last = None;
    for _ in 0..300 {
        let got = env_via_proxy(proxy, host, key).await;
        if got == (StatusCode::OK, want.to_owned()) {
            return;
        }
        last = Some(got);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Never print the wanted value: it may be a secret.
    panic!(
        "{host} does not answer the expected {key} after 30 s (last status {:?})",
        last.map(|l| l.0)
    );
}

async fn set_config(d: &Daemon, owner: &str, at: &str, changes: Value) {
    d.ok(
        owner,
        Method::PATCH,
        &format!("{at}/config"),
        Some(json!({ "changes": changes })),
    )
    .await;
}

async fn create_api(d: &Daemon, owner: &str, env_name: &str, image: &str, memory: u32) {
    let spec = json!({
        "slug": "api",
        "source": {"type": "docker_image", "image": image},
        "settings": {"health_check_interval_s": 1, "memory_limit_mb": memory},
        "endpoint": {"mode": "public_direct", "domains": [format!("api-{env_name}.promo.test")]},
        "volumes": [{"name": format!("promo-api-{env_name}"), "mount_path": "/data"}],
    });
    d.ok(
        owner,
        Method::POST,
        &format!("{}/services", env(env_name)),
        Some(spec),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_planned_masked_applied_once_and_a_clone_runs_on_its_own_network() {
    if docker_with_testapp().await.is_none() {
        return;
    }
    remove_project_leftovers("promo");
    let _cleanup = Cleanup;
    assert!(
        std::process::Command::new("docker")
            .args(["tag", "clank-testapp:latest", STAGING_IMAGE])
            .status()
            .unwrap()
            .success()
    );
    let d = Daemon::start_on("docker", |s| {
        s.daemon.proxy = Some(clank_daemon::default_proxy_config());
        s.daemon.proxy_mode = clank_daemon::ProxyMode::Embedded;
    })
    .await;
    let proxy = d.proxy_addr.unwrap();
    let owner = d.init().await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{WS}/projects"),
        Some(json!({"name": "Promo"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{PROJECT}/environments"),
        Some(json!({"name": "staging"})),
    )
    .await;
    create_api(&d, &owner, "production", "clank-testapp:latest", 384).await;
    create_api(&d, &owner, "staging", STAGING_IMAGE, 256).await;
    set_config(
        &d,
        &owner,
        &env("staging"),
        json!([{"key": "API_KEY", "value": STAGING_SECRET, "secret": true}, {"key": "MODE", "value": "staging"}]),
    )
    .await;
    set_config(
        &d,
        &owner,
        &env("production"),
        json!([{"key": "API_KEY", "value": PRODUCTION_SECRET, "secret": true}, {"key": "MODE", "value": "production"}]),
    )
    .await;
    for e in ["staging", "production"] {
        let v = d
            .ok(
                &owner,
                Method::POST,
                &format!("{}/deployments", svc(e)),
                Some(json!({})),
            )
            .await;
        d.wait_active(&owner, &svc(e), v["number"].as_u64().unwrap())
            .await;
    }
    until_env(proxy, "api-production.promo.test", "MODE", "production").await;

    // Plan: the image, the differing keys (the secret masked), what production keeps.
    let (s, plan) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/promotions"),
            Some(json!({"source": "promo/staging/api", "target": "production"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plan}");
    let text = plan.to_string();
    assert!(
        !text.contains(STAGING_SECRET) && !text.contains(PRODUCTION_SECRET),
        "a plan never shows a secret: {text}"
    );
    assert_eq!(plan["kind"], "promotion");
    assert_eq!(plan["target"], "acme/promo/production");
    assert_eq!(plan["unchanged"], false);
    let api = &plan["services"][0];
    assert_eq!(api["service"], "acme/promo/production/api", "{plan}");
    assert_eq!(api["action"], "update", "{plan}");
    assert!(
        api["image"]["to"]
            .as_str()
            .unwrap()
            .contains("clank-promote-test:v2"),
        "{plan}"
    );
    assert!(
        api["image"]["from"]
            .as_str()
            .unwrap()
            .contains("clank-testapp"),
        "{plan}"
    );
    let fields: Vec<&str> = api["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["settings.memory_limit_mb"], "{plan}");
    let config = api["config"].as_array().unwrap();
    let key = |k: &str| {
        config
            .iter()
            .find(|c| c["key"] == k)
            .unwrap_or_else(|| panic!("{k} in {plan}"))
    };
    assert_eq!(key("API_KEY")["secret"], true);
    assert_eq!(key("API_KEY")["change"], "changed");
    assert_eq!(key("API_KEY")["from"], "********");
    assert_eq!(key("MODE")["from"], "production");
    assert_eq!(key("MODE")["to"], "staging");
    let kept = api["kept"].to_string();
    assert!(
        kept.contains("domains: api-production.promo.test"),
        "{plan}"
    );
    assert!(kept.contains("volumes: promo-api-production"), "{plan}");
    let id = plan["id"].as_str().unwrap().to_owned();
    let shown = d
        .ok(&owner, Method::GET, &format!("{WS}/plans/{id}"), None)
        .await;
    assert_eq!(shown["services"], plan["services"]);

    // Apply by id: production runs staging's image with its own secret, config and domain.
    let (s, applied) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/plans/{id}/apply"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{applied}");
    let n = applied["deployments"][0]["number"].as_u64().unwrap();
    assert_eq!(n, 2);
    let active = d.wait_active(&owner, &svc("production"), n).await;
    assert_eq!(active["trigger"]["kind"], "promotion_from", "{active}");
    let me = d.ok(&owner, Method::GET, "/v1/whoami", None).await;
    assert_eq!(
        active["trigger"]["by"], me["user"],
        "who applied it: {active}"
    );
    until_env(
        proxy,
        "api-production.promo.test",
        "API_KEY",
        PRODUCTION_SECRET,
    )
    .await;
    until_env(proxy, "api-production.promo.test", "MODE", "production").await;
    let production = d.ok(&owner, Method::GET, &svc("production"), None).await;
    assert!(
        production["source"]["image"]
            .as_str()
            .unwrap()
            .contains("clank-promote-test:v2"),
        "{production}"
    );
    assert_eq!(
        production["settings"]["memory_limit_mb"], 256,
        "{production}"
    );
    assert_eq!(
        production["endpoint"]["domains"],
        json!(["api-production.promo.test"])
    );
    assert_eq!(production["volumes"][0]["name"], "promo-api-production");

    // The same plan again: refused.
    let (s, again) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/plans/{id}/apply"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("plan the promotion again"),
        "{again}"
    );

    // A fresh plan made stale by a config change in production: refused, naming what changed.
    let fresh = d
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/promotions"),
            Some(json!({"source": "promo/staging", "target": "production"})),
        )
        .await;
    assert_eq!(
        fresh["source"], "acme/promo/staging",
        "a whole environment: {fresh}"
    );
    set_config(
        &d,
        &owner,
        &env("production"),
        json!([{"key": "MODE", "value": "changed"}]),
    )
    .await;
    let fresh_id = fresh["id"].as_str().unwrap();
    let (s, stale) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{WS}/plans/{fresh_id}/apply"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{stale}");
    let message = stale["message"].as_str().unwrap();
    assert!(message.contains("environment config"), "{message}");
    let audit = d
        .ok(&owner, Method::GET, &format!("{WS}/audit"), None)
        .await;
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "promotion.apply"),
        "the apply is audited"
    );

    // A whole environment: a service production lacks is created (new volume, no domain).
    let worker = json!({
        "slug": "worker",
        "source": {"type": "docker_image", "image": STAGING_IMAGE},
        "settings": {"health_check_interval_s": 1},
        "volumes": [{"name": "promo-worker", "mount_path": "/data"}],
    });
    d.ok(
        &owner,
        Method::POST,
        &format!("{}/services", env("staging")),
        Some(worker),
    )
    .await;
    let staging_worker = format!("{}/services/worker", env("staging"));
    let v = d
        .ok(
            &owner,
            Method::POST,
            &format!("{staging_worker}/deployments"),
            Some(json!({})),
        )
        .await;
    d.wait_active(&owner, &staging_worker, v["number"].as_u64().unwrap())
        .await;
    let whole = d
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/promotions"),
            Some(json!({"source": "promo/staging", "target": "production"})),
        )
        .await;
    let actions: Vec<(&str, &str)> = whole["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("acme/promo/production/api", "deploy"),
            ("acme/promo/production/worker", "create"),
        ],
        "api's own config changed since its deployment; worker is new: {whole}"
    );
    let whole_id = whole["id"].as_str().unwrap();
    let applied = d
        .ok(
            &owner,
            Method::POST,
            &format!("{WS}/plans/{whole_id}/apply"),
            None,
        )
        .await;
    assert_eq!(
        applied["created"],
        json!(["acme/promo/production/worker"]),
        "{applied}"
    );
    let production_worker = format!("{}/services/worker", env("production"));
    d.wait_active(&owner, &production_worker, 1).await;
    d.wait_active(&owner, &svc("production"), 3).await;
    let created = d.ok(&owner, Method::GET, &production_worker, None).await;
    assert_eq!(
        created["volumes"][0]["name"], "promo-worker-production",
        "{created}"
    );
    assert!(created["endpoint"].is_null(), "{created}");

    // Clone production to qa: rewritten domains, new volumes, config copied, own network.
    let (s, report) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{}/clone", env("production")),
            Some(json!({"name": "qa", "domain_pattern": "{service}-{env}.promo.test", "deploy": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{report}");
    assert_eq!(report["environment"], "acme/promo/qa");
    let copy = &report["services"][0];
    assert_eq!(copy["service"], "acme/promo/qa/api");
    assert_eq!(copy["domains"], json!(["api-qa.promo.test"]));
    assert_eq!(copy["volumes"], json!(["promo-api-production-qa"]));
    assert_eq!(report["config_keys"], 2, "{report}");
    let qa_config = d
        .ok(&owner, Method::GET, &format!("{}/config", env("qa")), None)
        .await;
    let text = qa_config.to_string();
    assert!(
        text.contains("********") && !text.contains(PRODUCTION_SECRET),
        "{text}"
    );
    let n = copy["deployment"].as_u64().expect("deployed");
    d.wait_active(&owner, &svc("qa"), n).await;
    until_env(proxy, "api-qa.promo.test", "API_KEY", PRODUCTION_SECRET).await;
    until_env(proxy, "api-qa.promo.test", "MODE", "changed").await;
    let networks = docker_cli(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "--filter",
        "name=--promo--qa",
    ]);
    assert_eq!(
        networks.len(),
        1,
        "the clone runs on its own network: {networks:?}"
    );
    let qa_containers = docker_cli(&[
        "ps",
        "--format",
        "{{.Networks}}",
        "--filter",
        "name=--promo--qa--api",
    ]);
    assert!(
        !qa_containers.is_empty() && qa_containers.iter().all(|n| n == &networks[0]),
        "{qa_containers:?} on {networks:?}"
    );
    // The OpenAPI document describes the new operations with typed, resolvable bodies.
    let doc = d.ok(&owner, Method::GET, "/v1/openapi.json", None).await;
    for path in [
        "/v1/workspaces/{ws}/promotions",
        "/v1/workspaces/{ws}/plans/{id}",
        "/v1/workspaces/{ws}/plans/{id}/apply",
        "/v1/workspaces/{ws}/projects/{p}/environments/{e}/clone",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    for schema in [
        "PlanView",
        "ServicePlan",
        "ConfigDiff",
        "AppliedPlan",
        "NewPromotion",
        "CloneEnvironment",
        "CloneReport",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} in the document"
        );
    }
    let bodies = d.bodies.lock().unwrap().join("\n");
    assert!(!bodies.contains(STAGING_SECRET) && !bodies.contains(PRODUCTION_SECRET));

    d.stop_whatever_the_outcome().await;
}
