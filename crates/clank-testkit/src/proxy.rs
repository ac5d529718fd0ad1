//! The `Proxy` contract: what the deploy engine relies on from every proxy (our reverse proxy,
//! the in-memory route table, a remote server's proxy driven through its agent), as one public
//! async fn per property.
//!
//! A proxy plugs in through a [`ProxyFixture`]: how to get the proxy under test. Properties
//! probe real targets: [`HealthyTarget`] is an HTTP server on loopback answering 200 (or 503
//! once told to fail), so the health gate is the real one. [`crate::proxy_contract_tests!`]
//! instantiates every property as a named `#[test]`:
//!
//! ```ignore
//! async fn route_table() -> Option<RouteTableFixture> { Some(RouteTableFixture) }
//! clank_testkit::proxy_contract_tests!(route_table_contract, route_table);
//! ```
//!
//! Like the runtime contract, the constructor returns `None` to skip (missing infrastructure
//! outside CI, see [`crate::runtime::skip_or_fail`]). Every property uses fresh service ids,
//! so properties share nothing and may run against one long-lived proxy.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clank_core::ErrorKind;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{Endpoint, HealthCheck};
use clank_core::proxy::{Cutover, Proxy, Route, Target};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Longest a property may run before it fails.
pub const PROPERTY_TIMEOUT: Duration = Duration::from_secs(60);

/// How a proxy under test is reached.
#[async_trait::async_trait]
pub trait ProxyFixture: Send + Sync + 'static {
    /// The proxy under test (the same one for the fixture's whole life).
    async fn proxy(&self) -> Arc<dyn Proxy>;

    /// Runs after every property, pass or fail.
    async fn cleanup(&self) {}
}

/// An HTTP target on loopback: every request is answered `200 ok`, or `503` once
/// [`HealthyTarget::fail`] was called. Serves until dropped.
#[derive(Debug)]
pub struct HealthyTarget {
    pub addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthyTarget {
    pub async fn start() -> HealthyTarget {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind a loopback target: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the target's address: {e}"));
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    // One request per connection: read its head, answer, close.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer: &[u8] = if flag.load(Ordering::SeqCst) {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\
                          connection: close\r\n\r\nsick"
                    };
                    let _ = stream.write_all(answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        HealthyTarget {
            addr,
            healthy,
            task,
        }
    }

    /// Answer 503 from now on.
    pub fn fail(&self) {
        self.healthy.store(false, Ordering::SeqCst);
    }
}

impl Drop for HealthyTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A route for `service` to a new deployment at `addrs`, on a LAN hostname unique to it.
pub fn route(service: ServiceId, addrs: Vec<SocketAddr>) -> Route {
    Route {
        service,
        endpoint: Some(Endpoint::LanOnly {
            domains: vec![format!(
                "ct-{}.contract.test",
                service.to_string().to_lowercase().replace('_', "-")
            )],
        }),
        target: Target {
            deployment: DeploymentId::new(),
            addrs,
        },
    }
}

/// A cutover to `route` gated on `GET /health`.
pub fn cutover(route: Route, gate_timeout: Duration) -> Cutover {
    let port = route.target.addrs.first().map_or(80, SocketAddr::port);
    Cutover {
        route,
        health: HealthCheck::Http {
            port,
            path: "/health".to_owned(),
        },
        gate_timeout,
        drain_timeout: Duration::from_secs(2),
    }
}

/// Run one property on a fixture from `make`, in a multi-threaded tokio runtime, then clean
/// up; a panic or a timeout fails the test after cleanup.
pub fn run_property<F, M, MF, P, PF>(make: M, property: P)
where
    F: ProxyFixture,
    M: FnOnce() -> MF,
    MF: Future<Output = Option<F>>,
    P: FnOnce(Arc<dyn Proxy>) -> PF,
    PF: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime for a proxy property: {e}"));
    runtime.block_on(async move {
        let Some(fixture) = make().await else { return };
        let proxy = fixture.proxy().await;
        let outcome =
            std::panic::AssertUnwindSafe(tokio::time::timeout(PROPERTY_TIMEOUT, property(proxy)))
                .catch_unwind()
                .await;
        fixture.cleanup().await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the property did not finish within {PROPERTY_TIMEOUT:?}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
}

/// Instantiate every proxy-contract property as a `#[test]` in a new module `$module`, each
/// on a fixture from `$make` (an async fn or closure returning `Option<impl ProxyFixture>`).
#[macro_export]
macro_rules! proxy_contract_tests {
    ($module:ident, $make:expr $(,)?) => {
        $crate::proxy_contract_tests!(@expand $module, $make;
            an_unknown_service_has_no_route,
            set_route_is_answered_by_route_and_routed_to,
            set_route_is_idempotent_and_replaces_the_target,
            routes_of_services_are_independent,
            remove_route_is_idempotent_and_leaves_other_services_routed,
            cutover_to_a_healthy_target_swaps_and_reports_the_previous_deployment,
            cutover_without_a_previous_route_reports_none,
            cutover_repeated_to_the_same_target_is_idempotent,
            a_refused_cutover_leaves_the_route_untouched_and_names_the_deployment,
            hold_and_release_keep_the_route_and_are_idempotent,
            hold_returns_within_the_drain_bound,
            hold_and_release_of_an_unrouted_service_succeed,
        );
    };
    (@expand $module:ident, $make:expr; $($property:ident),+ $(,)?) => {
        mod $module {
            // The constructor expression is written in the caller's module.
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $property() {
                    $crate::proxy::run_property($make, $crate::proxy::$property);
                }
            )+
        }
    };
}

// ---- properties ------------------------------------------------------------------------------

/// A service the proxy never saw: no route, routed to nothing.
pub async fn an_unknown_service_has_no_route(proxy: Arc<dyn Proxy>) {
    let service = ServiceId::new();
    assert_eq!(proxy.route(service).await.expect("route"), None);
    assert_eq!(proxy.routed_to(service).await.expect("routed_to"), None);
}

/// `set_route` then `route` answers exactly that route, and `routed_to` its deployment.
pub async fn set_route_is_answered_by_route_and_routed_to(proxy: Arc<dyn Proxy>) {
    let target = HealthyTarget::start().await;
    let r = route(ServiceId::new(), vec![target.addr]);
    proxy.set_route(&r).await.expect("set_route");
    assert_eq!(
        proxy.route(r.service).await.expect("route"),
        Some(r.clone())
    );
    assert_eq!(
        proxy.routed_to(r.service).await.expect("routed_to"),
        Some(r.target.deployment)
    );
}

/// The same route twice changes nothing; another target for the service replaces it (the
/// engine's route repair and its restore of the previous ACTIVE).
pub async fn set_route_is_idempotent_and_replaces_the_target(proxy: Arc<dyn Proxy>) {
    let a = HealthyTarget::start().await;
    let b = HealthyTarget::start().await;
    let first = route(ServiceId::new(), vec![a.addr]);
    proxy.set_route(&first).await.expect("set_route");
    proxy.set_route(&first).await.expect("set_route again");
    assert_eq!(
        proxy.route(first.service).await.expect("route"),
        Some(first.clone())
    );
    let mut second = route(first.service, vec![b.addr]);
    second.endpoint = first.endpoint.clone();
    proxy.set_route(&second).await.expect("set_route to b");
    assert_eq!(
        proxy.route(first.service).await.expect("route"),
        Some(second.clone()),
        "the second set_route replaces the first"
    );
}

/// Each service's route is its own: routing one never changes another's.
pub async fn routes_of_services_are_independent(proxy: Arc<dyn Proxy>) {
    let a = HealthyTarget::start().await;
    let b = HealthyTarget::start().await;
    let ra = route(ServiceId::new(), vec![a.addr]);
    let rb = route(ServiceId::new(), vec![b.addr]);
    proxy.set_route(&ra).await.expect("set_route a");
    proxy.set_route(&rb).await.expect("set_route b");
    assert_eq!(proxy.route(ra.service).await.expect("route a"), Some(ra));
    assert_eq!(proxy.route(rb.service).await.expect("route b"), Some(rb));
}

/// Removing a route twice succeeds both times, and the other services keep theirs.
pub async fn remove_route_is_idempotent_and_leaves_other_services_routed(proxy: Arc<dyn Proxy>) {
    let a = HealthyTarget::start().await;
    let gone = route(ServiceId::new(), vec![a.addr]);
    let kept = route(ServiceId::new(), vec![a.addr]);
    proxy.set_route(&gone).await.expect("set_route");
    proxy.set_route(&kept).await.expect("set_route");
    proxy
        .remove_route(gone.service)
        .await
        .expect("remove_route");
    proxy
        .remove_route(gone.service)
        .await
        .expect("remove_route again");
    proxy
        .remove_route(ServiceId::new())
        .await
        .expect("remove_route of a service never routed");
    assert_eq!(proxy.route(gone.service).await.expect("route"), None);
    assert_eq!(
        proxy.routed_to(gone.service).await.expect("routed_to"),
        None
    );
    assert_eq!(proxy.route(kept.service).await.expect("route"), Some(kept));
}

/// A cutover to a healthy target swaps the route and reports the deployment it replaced.
pub async fn cutover_to_a_healthy_target_swaps_and_reports_the_previous_deployment(
    proxy: Arc<dyn Proxy>,
) {
    let old = HealthyTarget::start().await;
    let new = HealthyTarget::start().await;
    let before = route(ServiceId::new(), vec![old.addr]);
    proxy.set_route(&before).await.expect("set_route");
    let mut after = route(before.service, vec![new.addr]);
    after.endpoint = before.endpoint.clone();
    let report = proxy
        .cutover(&cutover(after.clone(), Duration::from_secs(10)))
        .await
        .expect("cutover to a healthy target");
    assert_eq!(report.previous, Some(before.target.deployment));
    assert_eq!(report.abandoned_requests, 0, "nothing was in flight");
    assert_eq!(
        proxy.route(after.service).await.expect("route"),
        Some(after)
    );
}

/// The first cutover of a service (its first deployment) replaces nothing.
pub async fn cutover_without_a_previous_route_reports_none(proxy: Arc<dyn Proxy>) {
    let target = HealthyTarget::start().await;
    let r = route(ServiceId::new(), vec![target.addr]);
    let report = proxy
        .cutover(&cutover(r.clone(), Duration::from_secs(10)))
        .await
        .expect("cutover");
    assert_eq!(report.previous, None);
    assert_eq!(
        proxy.routed_to(r.service).await.expect("routed_to"),
        Some(r.target.deployment)
    );
}

/// Repeating a cutover (a pass retried after a crash) succeeds and names the same deployment
/// as previous: the route is already where it should be.
pub async fn cutover_repeated_to_the_same_target_is_idempotent(proxy: Arc<dyn Proxy>) {
    let target = HealthyTarget::start().await;
    let r = route(ServiceId::new(), vec![target.addr]);
    let c = cutover(r.clone(), Duration::from_secs(10));
    proxy.cutover(&c).await.expect("cutover");
    let again = proxy.cutover(&c).await.expect("the same cutover again");
    assert_eq!(again.previous, Some(r.target.deployment));
    assert_eq!(again.abandoned_requests, 0);
    assert_eq!(proxy.route(r.service).await.expect("route"), Some(r));
}

/// A target that fails its health gate is refused: the error is a conflict naming the new
/// deployment (what the deploy log shows), and the old route keeps serving.
pub async fn a_refused_cutover_leaves_the_route_untouched_and_names_the_deployment(
    proxy: Arc<dyn Proxy>,
) {
    let old = HealthyTarget::start().await;
    let sick = HealthyTarget::start().await;
    sick.fail();
    let before = route(ServiceId::new(), vec![old.addr]);
    proxy.set_route(&before).await.expect("set_route");
    let mut after = route(before.service, vec![sick.addr]);
    after.endpoint = before.endpoint.clone();
    let e = proxy
        .cutover(&cutover(after.clone(), Duration::from_millis(500)))
        .await
        .expect_err("an unhealthy target must be refused");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    let message = e.to_string();
    assert!(
        message.contains(&after.target.deployment.to_string()),
        "the error should name the refused deployment: {message}"
    );
    assert_eq!(
        proxy.route(before.service).await.expect("route"),
        Some(before),
        "the old route stays"
    );
}

/// Holding and releasing a service (a stop-first cutover) never changes its route, and both
/// may be repeated.
pub async fn hold_and_release_keep_the_route_and_are_idempotent(proxy: Arc<dyn Proxy>) {
    let target = HealthyTarget::start().await;
    let r = route(ServiceId::new(), vec![target.addr]);
    proxy.set_route(&r).await.expect("set_route");
    let drain = Duration::from_millis(200);
    proxy.hold(r.service, drain).await.expect("hold");
    proxy.hold(r.service, drain).await.expect("hold again");
    assert_eq!(
        proxy.route(r.service).await.expect("route"),
        Some(r.clone())
    );
    proxy.release(r.service).await.expect("release");
    proxy.release(r.service).await.expect("release again");
    assert_eq!(proxy.route(r.service).await.expect("route"), Some(r));
}

/// `hold` with nothing in flight returns well within its drain bound: the engine stops the old
/// version right after it.
pub async fn hold_returns_within_the_drain_bound(proxy: Arc<dyn Proxy>) {
    let target = HealthyTarget::start().await;
    let r = route(ServiceId::new(), vec![target.addr]);
    proxy.set_route(&r).await.expect("set_route");
    let drain = Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    proxy.hold(r.service, drain).await.expect("hold");
    let took = started.elapsed();
    assert!(
        took < drain,
        "hold waited {took:?} with nothing in flight (bound {drain:?})"
    );
    proxy.release(r.service).await.expect("release");
}

/// Hold and release of a service with no route succeed (a first deployment that is
/// stop-first has nothing to hold).
pub async fn hold_and_release_of_an_unrouted_service_succeed(proxy: Arc<dyn Proxy>) {
    let service = ServiceId::new();
    proxy
        .hold(service, Duration::from_millis(100))
        .await
        .expect("hold");
    proxy.release(service).await.expect("release");
    assert_eq!(proxy.route(service).await.expect("route"), None);
}
