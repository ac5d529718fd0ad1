//! End-to-end cutover behaviour on loopback: zero errors under load through 50 cutovers and
//! 1,000 route changes, the health gate, draining (slow request completes; past the timeout:
//! 504), WebSocket grace, pause/resume and the persisted route table.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clank_core::id::ServiceId;
use clank_core::model::HealthCheck;
use clank_core::proxy::Proxy;
use clank_proxy::{ClankProxy, ProxyConfig};
use common::*;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_cutovers_under_load_lose_nothing() {
    // Each cutover goes to a fresh backend and the old one is stopped (gracefully, like a
    // SIGTERM'd app) as soon as the cutover returns, as the engine retires old workloads.
    let mut current = backend("b0").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app.example", vec![current.addr]))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let (stats, mut workers) = load(p.addr, "app.example", 8, false, stop.clone());
    let (fresh_stats, mut fresh_workers) = load(p.addr, "app.example", 2, true, stop.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut previous = None;
    let mut drained = 0;
    for i in 1..=50 {
        let name: &'static str = Box::leak(format!("b{i}").into_boxed_str());
        let next = backend(name).await;
        let r = route(service, "app.example", vec![next.addr]);
        let deployment = r.target.deployment;
        let report = p
            .proxy
            .cutover(&cutover(r, Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(report.abandoned_requests, 0);
        drained += report.drained_requests;
        if previous.is_some() {
            assert_eq!(report.previous, previous);
        }
        previous = Some(deployment);
        let old = std::mem::replace(&mut current, next);
        old.stop.cancel();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    while workers.join_next().await.is_some() {}
    while fresh_workers.join_next().await.is_some() {}
    let ok = stats.ok.load(Ordering::Relaxed) + fresh_stats.ok.load(Ordering::Relaxed);
    let bad = stats.non_2xx.load(Ordering::Relaxed) + fresh_stats.non_2xx.load(Ordering::Relaxed);
    let errs = stats.socket_errors.load(Ordering::Relaxed)
        + fresh_stats.socket_errors.load(Ordering::Relaxed);
    let spread = stats.by_backend.lock().unwrap().len();
    eprintln!(
        "{ok} ok, {bad} non-2xx, {errs} socket errors, {spread} backends served, {drained} requests drained"
    );
    assert_eq!(bad, 0);
    assert_eq!(errs, 0);
    assert!(ok > 500, "too little traffic to mean anything: {ok}");
    assert!(spread >= 40, "only {spread} of 51 backends served traffic");
    assert_eq!(p.proxy.responses(5), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_route_changes_refuse_no_connection() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let (keep, mut w1) = load(p.addr, "app", 4, false, stop.clone());
    let (fresh, mut w2) = load(p.addr, "app", 4, true, stop.clone());
    for i in 0..1000 {
        let to = if i % 2 == 0 { b.addr } else { a.addr };
        p.proxy
            .set_route(&route(service, "app", vec![to]))
            .await
            .unwrap();
        if i % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.cancel();
    while w1.join_next().await.is_some() {}
    while w2.join_next().await.is_some() {}
    for s in [&keep, &fresh] {
        assert_eq!(s.non_2xx.load(Ordering::Relaxed), 0);
        assert_eq!(s.socket_errors.load(Ordering::Relaxed), 0);
        assert!(s.ok.load(Ordering::Relaxed) > 0);
    }
}

#[tokio::test]
async fn an_unhealthy_target_is_refused_and_traffic_stays() {
    let a = backend("a").await;
    let b = backend("b").await;
    b.healthy.store(false, Ordering::Relaxed);
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    let old = route(service, "app", vec![a.addr]);
    p.proxy.set_route(&old).await.unwrap();
    let mut c = cutover(route(service, "app", vec![b.addr]), Duration::from_secs(1));
    c.gate_timeout = Duration::from_millis(300);
    let err = p.proxy.cutover(&c).await.unwrap_err();
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(p.proxy.route(service).await.unwrap(), Some(old.clone()));
    let (s, h, _) = get_once(p.addr, "app", "/").await.unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-backend"], "a");

    // A TCP gate against a closed port fails too; `Running` passes without probing.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    c.route.target.addrs = vec![closed];
    c.health = HealthCheck::Tcp { port: 0 };
    assert!(p.proxy.cutover(&c).await.is_err());
    c.route.target.addrs = vec![b.addr];
    c.health = HealthCheck::Running {
        stable_for: Duration::ZERO,
    };
    p.proxy.cutover(&c).await.unwrap();
    let (_, h, _) = get_once(p.addr, "app", "/").await.unwrap();
    assert_eq!(h["x-backend"], "b");
}

#[tokio::test]
async fn a_slow_request_completes_across_the_drain() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    let addr = p.addr;
    let slow = tokio::spawn(async move { get_once(addr, "app", "/slow?ms=800").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let report = p
        .proxy
        .cutover(&cutover(
            route(service, "app", vec![b.addr]),
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    assert_eq!(report.drained_requests, 1);
    assert_eq!(report.abandoned_requests, 0);
    assert!(
        report.drain_time >= Duration::from_millis(400),
        "{report:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let (s, _, body) = slow.await.unwrap().unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(&body[..], b"a");
    // New requests went to the new target during the drain.
    let (_, h, _) = get_once(p.addr, "app", "/").await.unwrap();
    assert_eq!(h["x-backend"], "b");
}

#[tokio::test]
async fn a_request_past_the_drain_timeout_gets_504() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    let addr = p.addr;
    let slow = tokio::spawn(async move { get_once(addr, "app", "/slow?ms=10000").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let report = p
        .proxy
        .cutover(&cutover(
            route(service, "app", vec![b.addr]),
            Duration::from_millis(300),
        ))
        .await
        .unwrap();
    assert_eq!(report.drained_requests, 1);
    assert_eq!(report.abandoned_requests, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    let (s, _, _) = slow.await.unwrap().unwrap();
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn websockets_get_a_grace_period_then_close() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    // Not an in-flight request: the cutover does not wait for it.
    let report = p
        .proxy
        .cutover(&cutover(
            route(service, "app", vec![b.addr]),
            Duration::from_millis(400),
        ))
        .await
        .unwrap();
    assert_eq!(report.drained_requests, 0);
    // Still open during the grace period...
    s.write_all(b"hello").await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"hello");
    // ...and closed after it.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "tunnel to the retired target was not closed"
    );
}

#[tokio::test]
async fn pause_holds_requests_and_resume_sends_them_to_the_new_target() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig {
        pause_timeout: Duration::from_secs(5),
        ..ProxyConfig::default()
    })
    .await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    p.proxy.pause(service);
    let addr = p.addr;
    let held = tokio::spawn(async move { get_once(addr, "app", "/").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "request was not held");
    // Stop-first: the old one goes away, the new one is routed, then traffic resumes.
    a.stop.cancel();
    p.proxy
        .set_route(&route(service, "app", vec![b.addr]))
        .await
        .unwrap();
    p.proxy.resume(service);
    let (s, h, _) = held.await.unwrap().unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-backend"], "b");

    // Held past pause_timeout: 503.
    let p2 = start_proxy(ProxyConfig {
        pause_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    })
    .await;
    p2.proxy
        .set_route(&route(service, "app", vec![b.addr]))
        .await
        .unwrap();
    p2.proxy.pause(service);
    let (s, _, _) = get_once(p2.addr, "app", "/").await.unwrap();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_route_table_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig {
        state_file: Some(dir.path().join("routes.json")),
        ..ProxyConfig::default()
    };
    let a = backend("a").await;
    let service = ServiceId::new();
    let r = route(service, "app", vec![a.addr]);
    {
        let first = ClankProxy::new(config.clone()).unwrap();
        first.set_route(&r).await.unwrap();
        let other = ServiceId::new();
        first
            .set_route(&route(other, "gone", vec![a.addr]))
            .await
            .unwrap();
        first.remove_route(other).await.unwrap();
    }
    let p = start_proxy(config).await;
    assert_eq!(p.proxy.routes(), vec![r.clone()]);
    assert_eq!(p.proxy.route(service).await.unwrap(), Some(r));
    let (s, _, _) = get_once(p.addr, "app", "/").await.unwrap();
    assert_eq!(s, StatusCode::OK);

    // A corrupt file is an error at start, not an empty table silently.
    std::fs::write(dir.path().join("bad.json"), b"{nope").unwrap();
    let bad = ClankProxy::new(ProxyConfig {
        state_file: Some(dir.path().join("bad.json")),
        ..ProxyConfig::default()
    });
    assert!(bad.is_err());
}

#[tokio::test]
async fn host_aliases_and_fallback_reach_routes_without_endpoints() {
    let a = backend("a").await;
    let service = ServiceId::new();
    let p = start_proxy(ProxyConfig {
        host_aliases: [("alias.test".to_owned(), service)].into(),
        fallback_service: Some(service),
        ..ProxyConfig::default()
    })
    .await;
    let mut r = route(service, "unused", vec![a.addr]);
    r.endpoint = None;
    p.proxy.set_route(&r).await.unwrap();
    for host in ["ALIAS.test:9", "anything.else"] {
        let (s, _, _) = get_once(p.addr, host, "/").await.unwrap();
        assert_eq!(s, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn a_streaming_response_past_the_drain_timeout_is_cut_off() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    // Headers arrive at once, the body trickles for 10 s.
    let mut conn = Conn::open(p.addr).await.unwrap();
    let download = tokio::spawn(async move { conn.get("app", "/trickle").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let report = p
        .proxy
        .cutover(&cutover(
            route(service, "app", vec![b.addr]),
            Duration::from_millis(300),
        ))
        .await
        .unwrap();
    assert_eq!(report.drained_requests, 1);
    assert_eq!(report.abandoned_requests, 1);
    let result = tokio::time::timeout(Duration::from_secs(3), download)
        .await
        .expect("the abandoned download ends promptly")
        .unwrap();
    assert!(result.is_err(), "a cut-off body must not look complete");
    assert_eq!(p.proxy.in_flight(report.previous.unwrap()), None);
}

#[tokio::test]
async fn applying_the_same_table_twice_keeps_in_flight_counts() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let r1 = route(ServiceId::new(), "one", vec![a.addr]);
    let r2 = route(ServiceId::new(), "two", vec![b.addr]);
    p.proxy.apply(vec![r1.clone(), r2.clone()]).await.unwrap();
    let addr = p.addr;
    let slow = tokio::spawn(async move { get_once(addr, "one", "/slow?ms=600").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(p.proxy.in_flight(r1.target.deployment), Some(1));
    // The same desired table again: nothing moves, the count survives the swap.
    p.proxy.apply(vec![r2.clone(), r1.clone()]).await.unwrap();
    assert_eq!(p.proxy.in_flight(r1.target.deployment), Some(1));
    let mut routes = p.proxy.routes();
    routes.sort_by_key(|r| r.service);
    let mut want = vec![r1.clone(), r2.clone()];
    want.sort_by_key(|r| r.service);
    assert_eq!(routes, want);
    // A smaller table removes what it does not name.
    p.proxy.apply(vec![r1.clone()]).await.unwrap();
    let (s, _, _) = get_once(p.addr, "two", "/").await.unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = slow.await.unwrap().unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p.proxy.in_flight(r1.target.deployment), Some(0));
}
