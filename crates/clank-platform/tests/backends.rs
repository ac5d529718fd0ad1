//! Backends are injectable: a platform assembled with `Platform::builder` from backends of
//! the caller's choice (here the in-memory store, the native runtime and a route table the
//! test keeps) deploys through exactly those; the built-in store choice; and the `Proxy`
//! contract for the route table, the builder's default proxy.

use std::sync::Arc;
use std::time::Duration;

use clank_core::proxy::Proxy;
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::memory::MemoryStore;
use clank_engine::RouteTable;
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice, StoreChoice};
use clank_testkit::proxy::ProxyFixture;
use clank_testkit::{http, testapp};
use serde_json::{Value, json};

async fn call(p: &Platform, request: Value) -> Value {
    let answer = p
        .execute_json(&request.to_string())
        .await
        .unwrap_or_else(|e| panic!("{request}: {e}"));
    serde_json::from_str(&answer).expect("answers are JSON")
}

#[tokio::test]
async fn a_platform_built_from_the_memory_store_and_process_runtime_deploys_through_them() {
    if !testapp::busybox_available() {
        eprintln!(
            "SKIPPED: {} missing (Debian's busybox-static)",
            testapp::BUSYBOX
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Run as root, workloads run as their workspace's own user and must reach the workload
    // root and the app's directory through the 0700 temporary directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let store = Arc::new(MemoryStore::new());
    let runtime = Arc::new(
        clank_process::ProcessRuntime::open_with(
            dir.path().join("state/processes"),
            clank_process::ProcessOptions {
                workload_root: Some(dir.path().join("workloads")),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let routes = Arc::new(RouteTable::new(Duration::from_secs(2)));
    let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
    let p = Platform::builder(store.clone(), runtime.clone(), keyring)
        .proxy(routes.clone())
        .build()
        .await
        .expect("a platform over the given backends");
    p.ensure_workspace("default").await.unwrap();

    let app = dir.path().join("app");
    testapp::write_testapp(&app).unwrap();
    let start = app.join("start.sh").to_string_lossy().into_owned();
    call(
        &p,
        json!({"op": "create_project", "name": "Demo", "slug": "demo"}),
    )
    .await;
    call(
        &p,
        json!({"op": "create_service", "environment": "demo", "spec": {
            "slug": "web",
            "source": {"type": "docker_image", "image": testapp::IMAGE},
            "settings": {"health_check_interval_s": 1},
            "processes": {"web": {"command": [testapp::BUSYBOX, "sh", start]}},
        }}),
    )
    .await;
    let mut events = p.subscribe(Some("demo/web"));
    let engine = p.spawn_engine();
    let d = call(&p, json!({"op": "deploy", "service": "demo/web"})).await;
    let active = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = events.next().await.unwrap().expect("stream open");
            if let clank_engine::EventKind::Transition { to, .. } = e.kind {
                assert!(!to.is_terminal(), "deployment ended {to}");
                if to == clank_core::deploy::DeploymentStatus::Active {
                    return e.number;
                }
            }
        }
    })
    .await
    .expect("ACTIVE within 60 s");
    let endpoints = call(
        &p,
        json!({"op": "endpoints", "service": "demo/web", "number": active}),
    )
    .await;
    let [addr] = endpoints.as_array().unwrap().as_slice() else {
        panic!("one web replica: {endpoints}");
    };
    let addr: std::net::SocketAddr = addr.as_str().unwrap().parse().unwrap();
    let health = http::get(addr, "/health", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(health.status, 200);

    // The cutover went through the route table given to the builder, and the records are in
    // the memory store given to it: a second platform over the same store sees the service.
    let service: clank_core::id::ServiceId = d["service_id"].as_str().unwrap().parse().unwrap();
    let route = routes
        .route(service)
        .await
        .unwrap()
        .expect("routed by the injected proxy");
    assert_eq!(route.target.addrs, vec![addr]);
    let key = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
    let other_proxy = Arc::new(RouteTable::default());
    let again = Platform::builder(store.clone(), runtime.clone(), key)
        .proxy(other_proxy)
        .build()
        .await
        .unwrap();
    let seen = call(&again, json!({"op": "get_service", "service": "demo/web"})).await;
    assert_eq!(seen["id"].as_str(), d["service_id"].as_str());

    engine.stop(Duration::from_secs(10)).await.unwrap();
    let all = clank_core::runtime::Runtime::list(
        runtime.as_ref(),
        &clank_core::runtime::OwnerFilter::default(),
    )
    .await
    .unwrap();
    for w in all {
        clank_core::runtime::Runtime::remove(runtime.as_ref(), &w.id)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn open_uses_the_store_the_options_name() {
    let dir = tempfile::tempdir().unwrap();
    for (choice, file) in [
        (StoreChoice::Redb, "clank.redb"),
        (StoreChoice::Sled, "clank.sled"),
    ] {
        let data = dir.path().join(choice.as_str());
        let mut options = EmbeddedOptions::new(&data);
        options.runtime = RuntimeChoice::Process;
        options.workload_root = Some(dir.path().join(format!("{choice}-workloads")));
        options.store = choice;
        let p = match Platform::open(options).await {
            Ok(p) => p,
            // A build without the `sled` feature says how to get it, naming the field.
            Err(e) if choice == StoreChoice::Sled => {
                assert_eq!(e.field(), Some("store"), "{e}");
                continue;
            }
            Err(e) => panic!("open on {choice}: {e}"),
        };
        p.ensure_workspace("default").await.unwrap();
        call(
            &p,
            json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
        )
        .await;
        assert!(data.join(file).exists(), "{choice}: no {file}");
        assert_eq!(
            call(&p, json!({"op": "get_project", "project": "shop"})).await["slug"],
            "shop"
        );
    }
    let e = "etcd".parse::<StoreChoice>().unwrap_err();
    assert_eq!(e.field(), Some("store"));
}

/// The route table: the builder's default proxy, for platforms that serve no traffic.
struct Routes(Arc<RouteTable>);

#[async_trait::async_trait]
impl ProxyFixture for Routes {
    async fn proxy(&self) -> Arc<dyn Proxy> {
        self.0.clone()
    }
}

async fn route_table() -> Option<Routes> {
    Some(Routes(Arc::new(RouteTable::new(Duration::from_secs(2)))))
}

clank_testkit::proxy_contract_tests!(route_table_contract, route_table);
