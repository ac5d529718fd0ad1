//! Delete, restore and purge through the bindings' operations, and the sweep that purges once
//! the retention has passed, on the embedded defaults with native processes (no workloads
//! are started, so neither Docker nor busybox is needed). The sweep's deadline is the stored
//! `deleted_at`, so a platform opened again on the same data directory purges what an earlier
//! one deleted.

mod common;

use std::time::Duration;

use clank_core::ErrorKind;
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use common::{call, ok};
use serde_json::json;

async fn open(dir: &std::path::Path, retention: Duration) -> Platform {
    let mut options = EmbeddedOptions::new(dir.join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options)
        .await
        .expect("open")
        .with_delete_retention(retention);
    p.ensure_workspace("default")
        .await
        .expect("default workspace");
    p
}

fn service_spec(slug: &str, domain: &str) -> serde_json::Value {
    json!({
        "slug": slug,
        "source": {"type": "docker_image", "image": "nginx:1.27"},
        "endpoint": {"mode": "lan_only", "domains": [domain]},
        "volumes": [{"name": format!("{slug}-data"), "mount_path": "/data"}],
    })
}

#[tokio::test]
async fn operations_delete_restore_and_purge_and_refuse_what_would_lose_track() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Duration::from_secs(3600)).await;
    ok(
        &p,
        json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
    )
    .await;
    ok(
        &p,
        json!({"op": "create_environment", "project": "shop", "name": "staging"}),
    )
    .await;
    ok(
        &p,
        json!({"op": "create_service", "environment": "shop/staging",
               "spec": service_spec("api", "api.shop.test")}),
    )
    .await;

    let report = ok(
        &p,
        json!({"op": "delete_service", "service": "shop/staging/api"}),
    )
    .await;
    let hour = 3_600_000;
    assert_eq!(
        report["restorable_until"].as_i64().unwrap() - report["deleted_at"].as_i64().unwrap(),
        hour
    );
    let listed = ok(
        &p,
        json!({"op": "list_services", "environment": "shop/staging"}),
    )
    .await;
    assert_eq!(listed, json!([]));
    // The domain and the slug stay claimed, and the refusal says by whom.
    let e = call(
        &p,
        json!({"op": "create_service", "environment": "shop/staging",
               "spec": service_spec("api", "other.shop.test")}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("deleted service `api`"), "{e}");
    let e = call(&p, json!({"op": "deploy", "service": "shop/staging/api"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("restore it first"), "{e}");

    // The default environment goes only with its project; an environment takes its services.
    let e = call(
        &p,
        json!({"op": "delete_environment", "environment": "shop/production"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("delete the project instead"), "{e}");
    ok(
        &p,
        json!({"op": "restore_service", "service": "shop/staging/api"}),
    )
    .await;
    ok(
        &p,
        json!({"op": "delete_environment", "environment": "shop/staging"}),
    )
    .await;
    let e = call(
        &p,
        json!({"op": "restore_service", "service": "shop/staging/api"}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("restore the environment"), "{e}");
    let env = ok(
        &p,
        json!({"op": "restore_environment", "environment": "shop/staging"}),
    )
    .await;
    assert!(env.get("deleted_at").is_none(), "{env}");
    let svc = ok(
        &p,
        json!({"op": "get_service", "service": "shop/staging/api"}),
    )
    .await;
    assert!(
        svc.get("deleted_at").is_none(),
        "restored with its environment: {svc}"
    );

    // A project takes everything; restored, everything comes back.
    ok(&p, json!({"op": "delete_project", "project": "shop"})).await;
    let svc = ok(
        &p,
        json!({"op": "get_service", "service": "shop/staging/api"}),
    )
    .await;
    assert!(svc["deleted_at"].is_number(), "{svc}");
    ok(&p, json!({"op": "restore_project", "project": "shop"})).await;
    let svc = ok(
        &p,
        json!({"op": "get_service", "service": "shop/staging/api"}),
    )
    .await;
    assert!(svc.get("deleted_at").is_none(), "{svc}");

    // Purge: the records go, the volume is named as kept, the slug and domain are free.
    let e = call(
        &p,
        json!({"op": "delete_service", "service": "shop/staging/api", "volumes": true}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.field(), Some("volumes"), "{e}");
    let report = ok(
        &p,
        json!({"op": "delete_service", "service": "shop/staging/api", "purge": true}),
    )
    .await;
    let kept = report["purged"]["volumes_kept"].to_string();
    assert!(kept.contains("--api-data"), "{report}");
    assert!(
        report["purged"]["records"].as_u64().unwrap() >= 1,
        "{report}"
    );
    let e = call(
        &p,
        json!({"op": "get_service", "service": "shop/staging/api"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    ok(
        &p,
        json!({"op": "create_service", "environment": "shop/staging",
               "spec": service_spec("api", "api.shop.test")}),
    )
    .await;
}

#[tokio::test]
async fn the_sweep_purges_what_outlived_the_retention_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = open(dir.path(), Duration::from_secs(3600)).await;
        ok(
            &p,
            json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
        )
        .await;
        ok(
            &p,
            json!({"op": "create_project", "name": "Blog", "slug": "blog"}),
        )
        .await;
        ok(
            &p,
            json!({"op": "create_service", "environment": "blog",
                   "spec": service_spec("web", "blog.test")}),
        )
        .await;
        ok(
            &p,
            json!({"op": "create_service", "environment": "blog",
                   "spec": service_spec("worker", "worker.blog.test")}),
        )
        .await;
        ok(&p, json!({"op": "delete_project", "project": "shop"})).await;
        ok(
            &p,
            json!({"op": "delete_service", "service": "blog/worker"}),
        )
        .await;
        // Within the retention, nothing is purged.
        assert!(p.purge_expired().await.unwrap().is_empty());
    }
    // Opened again with a retention that has passed: the stored deadlines are due.
    let p = open(dir.path(), Duration::ZERO).await;
    let done = p.purge_expired().await.unwrap();
    let targets: Vec<&str> = done.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["default/shop", "default/blog/production/worker"]);
    let e = call(&p, json!({"op": "get_project", "project": "shop"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = call(&p, json!({"op": "get_service", "service": "blog/worker"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    ok(&p, json!({"op": "get_service", "service": "blog/web"})).await;
    // The freed slug can be taken again.
    ok(
        &p,
        json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
    )
    .await;
    assert!(p.purge_expired().await.unwrap().is_empty());
}
