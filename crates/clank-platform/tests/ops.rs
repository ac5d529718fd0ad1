//! The platform's data-level API (what the Python and Node bindings call): requests as JSON,
//! errors keeping their kind and field, event subscriptions by address, and endpoints of a
//! deployment, on the embedded defaults with native processes (no Docker needed).

mod common;

use std::time::Duration;

use clank_core::ErrorKind;
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use common::{
    busybox_available, call, healthy_endpoint, reachable_tempdir, remove_all_workloads,
    testapp_services, wait_active,
};
use serde_json::json;

async fn open(dir: &std::path::Path) -> Platform {
    let mut options = EmbeddedOptions::new(dir.join("data"));
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await.expect("open");
    p.ensure_workspace("default")
        .await
        .expect("default workspace");
    p
}

#[test]
fn runtime_choice_parses_its_three_names_and_names_the_field_otherwise() {
    for choice in [
        RuntimeChoice::Auto,
        RuntimeChoice::Docker,
        RuntimeChoice::Process,
    ] {
        assert_eq!(choice.as_str().parse::<RuntimeChoice>().unwrap(), choice);
    }
    let e = "kubernetes".parse::<RuntimeChoice>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(e.field(), Some("runtime"));
}

#[tokio::test]
async fn requests_answer_with_views_and_errors_keep_kind_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path()).await;

    let project = call(
        &p,
        json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
    )
    .await
    .unwrap();
    assert_eq!(project["slug"], "shop");
    let service = call(
        &p,
        json!({"op": "create_service", "environment": "shop", "spec": {
            "slug": "api",
            "source": {"type": "docker_image", "image": "nginx:1.27"},
            "settings": {"health_check_interval_s": 1},
        }}),
    )
    .await
    .unwrap();
    assert_eq!(service["settings"]["health_check_interval_s"], 1);
    assert_eq!(
        service["settings"]["port"], 8080,
        "unset settings keep their defaults"
    );
    let got = call(&p, json!({"op": "get_service", "service": "shop/api"}))
        .await
        .unwrap();
    assert_eq!(got, service);

    let vars = call(
        &p,
        json!({"op": "set_config", "target": {"service": "shop/api"}, "changes": [
            {"key": "MODE", "value": "prod"},
            {"key": "TOKEN", "value": "s3cr3t-value", "secret": true},
        ]}),
    )
    .await
    .unwrap();
    let resolved = call(&p, json!({"op": "resolved_config", "service": "shop/api"}))
        .await
        .unwrap();
    for answer in [&vars, &resolved] {
        let text = answer.to_string();
        assert!(!text.contains("s3cr3t-value"), "secret leaked: {text}");
        assert!(text.contains("********"));
    }
    let unset = call(
        &p,
        json!({"op": "set_config", "target": {"service": "shop/api"}, "changes": [
            {"key": "MODE", "unset": true},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(unset.as_array().unwrap().len(), 1);

    let cases = [
        (
            json!({"op": "get_service", "service": "shop/nope"}),
            ErrorKind::NotFound,
            None,
        ),
        (
            json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
            ErrorKind::Conflict,
            None,
        ),
        (
            json!({"op": "create_project", "name": "Bad", "slug": "Bad Slug"}),
            ErrorKind::Invalid,
            Some("slug"),
        ),
        (
            json!({"op": "get_service", "service": "api"}),
            ErrorKind::Invalid,
            Some("address"),
        ),
        (json!({"op": "no_such_op"}), ErrorKind::Invalid, Some("op")),
        (
            json!({"op": "wait", "service": "shop/api", "number": 1, "timeout_s": -1.0}),
            ErrorKind::Invalid,
            Some("timeout_s"),
        ),
    ];
    for (request, kind, field) in cases {
        let e = call(&p, request.clone()).await.unwrap_err();
        assert_eq!((e.kind(), e.field()), (kind, field), "{request}: {e}");
    }
}

#[tokio::test]
async fn a_subscription_follows_one_service_and_endpoints_reach_its_workload() {
    if !busybox_available() {
        return;
    }
    let dir = reachable_tempdir();
    let p = open(dir.path()).await;
    testapp_services(&p, &dir.path().join("app"), &["web", "other"]).await;
    let mut missing = p.subscribe(Some("demo/missing"));
    assert_eq!(
        missing.next().await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let mut web = p.subscribe(Some("demo/web"));
    let engine = p.spawn_engine();
    call(&p, json!({"op": "deploy", "service": "demo/other"}))
        .await
        .unwrap();
    let d = call(&p, json!({"op": "deploy", "service": "demo/web"}))
        .await
        .unwrap();
    let web_id = d["service_id"].as_str().unwrap().to_owned();
    let active = wait_active(&mut web, Some(&web_id)).await;
    healthy_endpoint(&p, "demo/web", active).await;

    engine.stop(Duration::from_secs(10)).await.unwrap();
    engine.stop(Duration::from_secs(10)).await.unwrap(); // idempotent
    remove_all_workloads(p.engine().runtime().as_ref()).await;
}

#[tokio::test]
async fn the_data_directory_store_and_keyring_are_owner_only_even_when_created_loose() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // As an earlier version (or a careless umask) left them: world-readable.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(open(dir.path()).await);
    for file in ["clank.redb", "keyring"] {
        std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(open(dir.path()).await);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("clank.redb")), 0o600);
    assert_eq!(mode(&data.join("keyring")), 0o600);
}
