//! End-to-end HTTP behaviour on loopback: routing by host, forwarded and hop-by-hop headers,
//! body limits, upstream failures (refused, hanging, garbage), slowloris, pooling, streaming,
//! upgrades and metrics.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::proxy::Proxy;
use clank_proxy::ProxyConfig;
use common::*;
use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test]
async fn routes_by_host_ignoring_port_and_case_and_404s_unknown_hosts() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig::default()).await;
    p.proxy
        .set_route(&route(ServiceId::new(), "shop.example", vec![a.addr]))
        .await
        .unwrap();
    for host in ["shop.example", "SHOP.Example:8080", "shop.example."] {
        let (status, _, body) = get_once(p.addr, host, "/").await.unwrap();
        assert_eq!(status, StatusCode::OK, "{host}");
        assert_eq!(&body[..], b"a");
    }
    let (status, _, _) = get_once(p.addr, "other.example", "/").await.unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn forwarded_headers_are_replaced_for_untrusted_peers_and_appended_for_trusted() {
    let a = backend("a").await;
    let untrusted = start_proxy(ProxyConfig::default()).await;
    let trusted = start_proxy(ProxyConfig {
        trusted_peers: vec!["127.0.0.0/8".parse().unwrap()],
        ..ProxyConfig::default()
    })
    .await;
    for p in [&untrusted, &trusted] {
        p.proxy
            .set_route(&route(ServiceId::new(), "h.example", vec![a.addr]))
            .await
            .unwrap();
    }
    let req = || {
        Request::get("/headers")
            .header("host", "h.example:81")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "evil.example")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "secret")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("proxy-authorization", "Basic Zm9v")
            .header("x-kept", "yes")
            .body(body(""))
            .unwrap()
    };
    let (_, _, text) = Conn::open(untrusted.addr)
        .await
        .unwrap()
        .send(req())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text).to_string();
    assert!(text.contains("x-forwarded-for: 127.0.0.1\n"), "{text}");
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    assert!(text.contains("x-forwarded-host: h.example:81\n"), "{text}");
    assert!(text.contains("host: h.example:81\n"), "{text}");
    assert!(text.contains("x-kept: yes\n"), "{text}");
    for gone in ["x-private", "keep-alive:", "te:", "proxy-authorization"] {
        assert!(!text.contains(gone), "{gone} forwarded: {text}");
    }

    let (_, _, text) = Conn::open(trusted.addr)
        .await
        .unwrap()
        .send(req())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&text).to_string();
    assert!(
        text.contains("x-forwarded-for: 6.6.6.6, 127.0.0.1\n"),
        "{text}"
    );
    assert!(text.contains("x-forwarded-proto: https\n"), "{text}");
    assert!(text.contains("x-forwarded-host: evil.example\n"), "{text}");

    // Hop-by-hop headers from the upstream response are not passed to the client either.
    let (_, headers, _) = get_once(untrusted.addr, "h.example", "/").await.unwrap();
    assert!(headers.get("keep-alive").is_none(), "{headers:?}");
    assert_eq!(headers["x-backend"], "a");
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig {
        max_body_bytes: 1024,
        ..ProxyConfig::default()
    })
    .await;
    p.proxy
        .set_route(&route(ServiceId::new(), "h", vec![a.addr]))
        .await
        .unwrap();
    let req = Request::post("/echo")
        .header("host", "h")
        .body(body(vec![b'x'; 4096]))
        .unwrap();
    let (status, _, _) = Conn::open(p.addr).await.unwrap().send(req).await.unwrap();
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Chunked (no Content-Length): the limit trips while streaming.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..4 {
        s.write_all(b"400\r\n").await.unwrap();
        s.write_all(&[b'y'; 0x400]).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");

    // Within the limit, a streamed body is echoed back whole.
    let req = Request::post("/echo")
        .header("host", "h")
        .body(body(vec![b'z'; 1000]))
        .unwrap();
    let (status, _, echoed) = Conn::open(p.addr).await.unwrap().send(req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echoed.len(), 1000);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig::default()).await;
    p.proxy
        .set_route(&route(ServiceId::new(), "h", vec![a.addr]))
        .await
        .unwrap();
    let payload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let req = Request::post("/echo")
        .header("host", "h")
        .body(body(payload.clone()))
        .unwrap();
    let (status, _, echoed) = Conn::open(p.addr).await.unwrap().send(req).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(echoed[..] == payload[..]);
}

#[tokio::test]
async fn upstream_refused_or_reset_is_502_hanging_is_504_garbage_is_502() {
    let p = start_proxy(ProxyConfig {
        upstream_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    })
    .await;
    // Refused: a port that was just closed.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    // Hanging: accepts and reads, never answers.
    let hang = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    // Garbage: answers with something that is not HTTP.
    let junk = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let junk_addr = junk.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = junk.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"\x00\x01garbage\xff\r\n\r\n").await;
            });
        }
    });
    // Resetting: reads the request, then closes without a response.
    let reset = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_addr = reset.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = reset.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    p.proxy
        .set_route(&route(ServiceId::new(), "reset", vec![reset_addr]))
        .await
        .unwrap();
    p.proxy
        .set_route(&route(ServiceId::new(), "refused", vec![closed]))
        .await
        .unwrap();
    p.proxy
        .set_route(&route(ServiceId::new(), "hang", vec![hang_addr]))
        .await
        .unwrap();
    p.proxy
        .set_route(&route(ServiceId::new(), "junk", vec![junk_addr]))
        .await
        .unwrap();
    let (s, _, _) = get_once(p.addr, "refused", "/").await.unwrap();
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    let started = std::time::Instant::now();
    let (s, _, _) = get_once(p.addr, "hang", "/").await.unwrap();
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(3));
    let (s, _, _) = get_once(p.addr, "junk", "/").await.unwrap();
    assert_eq!(s, StatusCode::BAD_GATEWAY);

    let (s, _, _) = get_once(p.addr, "reset", "/").await.unwrap();
    assert_eq!(s, StatusCode::BAD_GATEWAY);

    let metrics = p.proxy.metrics_text();
    assert!(
        metrics.contains("clank_proxy_requests_total{class=\"5xx\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clank_proxy_upstream_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clank_proxy_upstream_errors_total{kind=\"timeout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("clank_proxy_upstream_errors_total{kind=\"protocol\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("clank_proxy_in_flight 0"), "{metrics}");
}

#[tokio::test]
async fn slowloris_and_malformed_clients_are_closed_and_the_proxy_keeps_serving() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    })
    .await;
    p.proxy
        .set_route(&route(ServiceId::new(), "h", vec![a.addr]))
        .await
        .unwrap();
    // Half a request head, then silence: closed at the header timeout.
    let started = std::time::Instant::now();
    let (_, closed) = raw(
        p.addr,
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow:",
        Duration::from_secs(3),
    )
    .await;
    assert!(closed, "slowloris connection was not closed");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Malformed request line: a 400, no crash.
    let (out, _) = raw(p.addr, b"NOT HTTP AT ALL\r\n\r\n", Duration::from_secs(2)).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"),
        "{out:?}"
    );
    // Oversized head: 431.
    let mut huge = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let (out, _) = raw(p.addr, &huge, Duration::from_secs(2)).await;
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&out[..out.len().min(100)])
    );
    let (s, _, _) = get_once(p.addr, "h", "/").await.unwrap();
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn upstream_connections_are_pooled_and_round_robined() {
    let a = backend("a").await;
    let b = backend("b").await;
    let p = start_proxy(ProxyConfig::default()).await;
    p.proxy
        .set_route(&route(ServiceId::new(), "h", vec![a.addr, b.addr]))
        .await
        .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        // A fresh client connection each time: pooling is about the upstream side.
        let (s, h, _) = get_once(p.addr, "h", "/").await.unwrap();
        assert_eq!(s, StatusCode::OK);
        *seen
            .entry(h["x-backend"].to_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&100));
    assert_eq!(seen.get("b"), Some(&100));
    let conns = a.connections.load(Ordering::Relaxed) + b.connections.load(Ordering::Relaxed);
    assert!(
        conns <= 4,
        "{conns} upstream connections for 200 sequential requests"
    );
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig::default()).await;
    p.proxy
        .set_route(&route(ServiceId::new(), "ws", vec![a.addr]))
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: ws\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"ping-through-tunnel").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 19 {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(&got, b"ping-through-tunnel");
}

#[tokio::test]
async fn admin_listener_serves_metrics_and_routes() {
    let a = backend("a").await;
    let p = start_proxy(ProxyConfig::default()).await;
    let service = ServiceId::new();
    p.proxy
        .set_route(&route(service, "h", vec![a.addr]))
        .await
        .unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let proxy = p.proxy.clone();
    let stop = p.stop.clone();
    tokio::spawn(async move { proxy.serve_admin(admin, stop).await });
    get_once(p.addr, "h", "/").await.unwrap();
    let (s, _, text) = get_once(admin_addr, "admin", "/metrics").await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let text = String::from_utf8_lossy(&text).to_string();
    assert!(
        text.contains("clank_proxy_requests_total{class=\"2xx\"} 1"),
        "{text}"
    );
    assert!(text.contains("clank_proxy_route_changes_total 1"), "{text}");
    let (s, _, json) = get_once(admin_addr, "admin", "/routes").await.unwrap();
    assert_eq!(s, StatusCode::OK);
    let routes: Vec<clank_core::proxy::Route> = serde_json::from_slice(&json).unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].service, service);
}

#[tokio::test]
async fn run_serves_the_persisted_table_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let a = backend("a").await;
    let service = ServiceId::new();
    let state_file = dir.path().join("routes.json");
    // Write the table through one proxy (the control plane), serve it from `run` (the
    // standalone process).
    let writer = clank_proxy::ClankProxy::new(ProxyConfig {
        state_file: Some(state_file.clone()),
        ..ProxyConfig::default()
    })
    .unwrap();
    writer
        .set_route(&route(service, "app", vec![a.addr]))
        .await
        .unwrap();
    let listen = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let config = ProxyConfig {
        listen,
        state_file: Some(state_file),
        ..ProxyConfig::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(clank_proxy::run(config, async {
        let _ = rx.await;
    }));
    let mut ok = false;
    for _ in 0..100 {
        if let Ok((s, _, _)) = get_once(listen, "app", "/").await {
            ok = s == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "run did not serve the restored table");
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run stops on shutdown")
        .unwrap()
        .unwrap();
    assert!(get_once(listen, "app", "/").await.is_err());
}
