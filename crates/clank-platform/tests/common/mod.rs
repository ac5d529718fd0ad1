//! The platform tests' one harness: JSON requests, the busybox test app on the native runtime
//! (a directory its workloads can reach, its services, waiting for ACTIVE, its healthy
//! endpoint) and removing what it left running.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clank_core::runtime::{OwnerFilter, Runtime};
use clank_platform::{Platform, Subscription};
use clank_testkit::{http, testapp};
use serde_json::{Value, json};

/// One JSON request: the answer, or the platform's error.
pub(crate) async fn call(p: &Platform, request: Value) -> clank_core::Result<Value> {
    let answer = p.execute_json(&request.to_string()).await?;
    Ok(serde_json::from_str(&answer).expect("answers are JSON"))
}

/// One JSON request that must succeed: the answer.
pub(crate) async fn ok(p: &Platform, request: Value) -> Value {
    call(p, request.clone())
        .await
        .unwrap_or_else(|e| panic!("{request}: {e}"))
}

/// Whether busybox is there to run the test app; without it the test skips (loudly).
pub(crate) fn busybox_available() -> bool {
    if testapp::busybox_available() {
        return true;
    }
    eprintln!(
        "SKIPPED: {} missing (Debian's busybox-static)",
        testapp::BUSYBOX
    );
    false
}

/// A temporary directory the native runtime's workloads can reach: run as root, they run as
/// their workspace's own user and must get through the 0700 temporary directory to the
/// workload root and the app's directory (where the app keeps its health state).
pub(crate) fn reachable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    dir
}

/// Project `demo` with one service per slug, each running the busybox test app written to
/// `app`.
pub(crate) async fn testapp_services(p: &Platform, app: &Path, slugs: &[&str]) {
    testapp::write_testapp(app).unwrap();
    let start = app.join("start.sh").to_string_lossy().into_owned();
    ok(
        p,
        json!({"op": "create_project", "name": "Demo", "slug": "demo"}),
    )
    .await;
    for slug in slugs {
        ok(
            p,
            json!({"op": "create_service", "environment": "demo", "spec": {
                "slug": slug,
                "source": {"type": "docker_image", "image": testapp::IMAGE},
                "settings": {"health_check_interval_s": 1},
                "processes": {"web": {"command": [testapp::BUSYBOX, "sh", start]}},
            }}),
        )
        .await;
    }
}

/// The number of the deployment `events` first shows ACTIVE (within 60 s; no terminal status
/// before it). With `only`, every event must be of that service id.
pub(crate) async fn wait_active(events: &mut Subscription, only: Option<&str>) -> u64 {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let e = events.next().await.unwrap().expect("stream open");
            if let Some(id) = only {
                assert_eq!(
                    e.service.to_string(),
                    id,
                    "only the followed service's events"
                );
            }
            if let clank_engine::EventKind::Transition { to, .. } = e.kind {
                assert!(!to.is_terminal(), "deployment ended {to}");
                if to == clank_core::deploy::DeploymentStatus::Active {
                    return e.number;
                }
            }
        }
    })
    .await
    .expect("ACTIVE within 60 s")
}

/// The one web replica of `service`'s deployment `number`, answering 200 on `/health`.
pub(crate) async fn healthy_endpoint(p: &Platform, service: &str, number: u64) -> SocketAddr {
    let endpoints = ok(
        p,
        json!({"op": "endpoints", "service": service, "number": number}),
    )
    .await;
    let [addr] = endpoints.as_array().unwrap().as_slice() else {
        panic!("one web replica: {endpoints}");
    };
    let addr: SocketAddr = addr.as_str().unwrap().parse().unwrap();
    let health = http::get(addr, "/health", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(health.status, 200);
    addr
}

/// Leave nothing running: the native runtime's workloads are processes of this test.
pub(crate) async fn remove_all_workloads(runtime: &dyn Runtime) {
    let all = runtime.list(&OwnerFilter::default()).await.unwrap();
    for w in all {
        runtime.remove(&w.id).await.unwrap();
    }
}
