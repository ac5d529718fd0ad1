//! Backends are injectable: a platform assembled with `Platform::builder` from backends of
//! the caller's choice (here the in-memory store, the native runtime and a route table the
//! test keeps) deploys through exactly those; the built-in store choice; and the `Proxy`
//! contract for the route table, the builder's default proxy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use clank_core::proxy::Proxy;
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::memory::MemoryStore;
use clank_engine::RouteTable;
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice, StoreChoice};
use clank_testkit::proxy::ProxyFixture;
use common::{
    busybox_available, healthy_endpoint, ok, reachable_tempdir, remove_all_workloads,
    testapp_services, wait_active,
};
use serde_json::json;

#[tokio::test]
async fn a_platform_built_from_the_memory_store_and_process_runtime_deploys_through_them() {
    if !busybox_available() {
        return;
    }
    let dir = reachable_tempdir();
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

    testapp_services(&p, &dir.path().join("app"), &["web"]).await;
    let mut events = p.subscribe(Some("demo/web"));
    let engine = p.spawn_engine();
    let d = ok(&p, json!({"op": "deploy", "service": "demo/web"})).await;
    let active = wait_active(&mut events, None).await;
    let addr = healthy_endpoint(&p, "demo/web", active).await;

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
    let seen = ok(&again, json!({"op": "get_service", "service": "demo/web"})).await;
    assert_eq!(seen["id"].as_str(), d["service_id"].as_str());

    engine.stop(Duration::from_secs(10)).await.unwrap();
    remove_all_workloads(runtime.as_ref()).await;
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
        ok(
            &p,
            json!({"op": "create_project", "name": "Shop", "slug": "shop"}),
        )
        .await;
        assert!(data.join(file).exists(), "{choice}: no {file}");
        assert_eq!(
            ok(&p, json!({"op": "get_project", "project": "shop"})).await["slug"],
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
