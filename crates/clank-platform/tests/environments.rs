//! Cloning an environment through the bindings' operations (no Docker needed, nothing
//! deployed): the copies get the pattern's domains and new volume names, the config is copied
//! with secrets still secret, and a refused clone (a pattern without `{service}`, a domain
//! already taken) leaves nothing behind — not even the new environment. A promotion of a
//! service without an ACTIVE deployment is refused before anything is stored.

mod common;

use clank_core::ErrorKind;
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use common::{call, ok};
use serde_json::json;

async fn open(dir: &std::path::Path) -> Platform {
    let mut options = EmbeddedOptions::new(dir.join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await.expect("open");
    p.ensure_workspace("default").await.expect("workspace");
    p
}

async fn environments(p: &Platform) -> Vec<String> {
    let envs = ok(p, json!({"op": "list_environments", "project": "shop"})).await;
    envs.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_clone_rewrites_domains_renames_volumes_copies_config_and_fails_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;
    ok(
        &p,
        json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
    )
    .await;
    for slug in ["db", "api"] {
        let mut spec = json!({
            "slug": slug,
            "source": {"type": "docker_image", "image": "nginx:1.27"},
            "settings": {"port": 8080},
            "volumes": [{"name": format!("shop-{slug}-data"), "mount_path": "/data"}],
        });
        if slug == "api" {
            spec["endpoint"] = json!({"mode": "public_direct", "domains": ["api.shop.test"]});
            spec["depends_on"] = json!(["db"]);
        }
        let create = json!({"op": "create_service", "environment": "shop", "spec": spec});
        ok(&p, create).await;
    }
    let set = |target: serde_json::Value, changes: serde_json::Value| json!({"op": "set_config", "target": target, "changes": changes});
    ok(
        &p,
        set(
            json!({"environment": "shop/production"}),
            json!([{"key": "API_KEY", "value": "s3cret-clone-value", "secret": true}]),
        ),
    )
    .await;
    ok(
        &p,
        set(
            json!({"service": "shop/api"}),
            json!([{"key": "MODE", "value": "live"}]),
        ),
    )
    .await;

    let report = ok(
        &p,
        json!({"op": "clone_environment", "environment": "shop/production",
               "clone": {"name": "qa", "domain_pattern": "{service}-{env}.shop.test"}}),
    )
    .await;
    assert_eq!(report["environment"], "default/shop/qa");
    assert_eq!(report["config_keys"], 2, "{report}");
    let api = &report["services"][0];
    assert_eq!(api["service"], "default/shop/qa/api");
    assert_eq!(api["domains"], json!(["api-qa.shop.test"]));
    assert_eq!(api["volumes"], json!(["shop-api-data-qa"]));
    assert!(api["deployment"].is_null(), "nothing deployed unless asked");
    let copy = ok(&p, json!({"op": "get_service", "service": "shop/qa/api"})).await;
    assert_eq!(copy["depends_on"], json!(["db"]));
    assert_eq!(copy["settings"]["port"], 8080);
    let resolved = ok(
        &p,
        json!({"op": "resolved_config", "service": "shop/qa/api"}),
    )
    .await;
    let text = resolved.to_string();
    assert!(
        text.contains("API_KEY") && text.contains("********"),
        "{text}"
    );
    assert!(
        text.contains("\"live\"") && !text.contains("s3cret-clone-value"),
        "{text}"
    );

    let no_service = call(
        &p,
        json!({"op": "clone_environment", "environment": "shop/production",
               "clone": {"name": "qa2", "domain_pattern": "{env}.shop.test"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(no_service.kind(), ErrorKind::Invalid);
    assert_eq!(no_service.field(), Some("domain_pattern"));
    let taken = call(
        &p,
        json!({"op": "clone_environment", "environment": "shop/production",
               "clone": {"name": "qa3", "domain_pattern": "{service}-qa.shop.test"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Conflict, "{taken}");
    // Never deployed: nothing to copy, said per volume; the clone goes on with empty ones.
    let with_data = ok(
        &p,
        json!({"op": "clone_environment", "environment": "shop/production",
               "clone": {"name": "qa4", "copy_volumes": true}}),
    )
    .await;
    assert!(with_data.get("volumes_copied").is_none(), "{with_data}");
    let notes = with_data["notes"].to_string();
    assert!(
        notes.contains("volume `shop-db-data` holds no data yet"),
        "{notes}"
    );
    ok(
        &p,
        json!({"op": "delete_environment", "environment": "shop/qa4", "purge": true, "volumes": true}),
    )
    .await;
    assert_eq!(
        environments(&p).await,
        ["production", "qa"],
        "refused clones left nothing"
    );

    let refused = call(
        &p,
        json!({"op": "plan_promotion", "source": "shop/qa/api", "target": "production"}),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(
        refused.to_string().contains("no ACTIVE deployment"),
        "{refused}"
    );
}
