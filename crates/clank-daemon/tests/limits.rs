//! The API server's bounds, against the real daemon on loopback: a slow request head, a
//! stalled request body and an idle keep-alive connection are closed on time, connections beyond the cap wait until one
//! closes, open log/event streams are capped per token and per workspace, and a shutdown with
//! open streams (or a request that never finishes) returns within `shutdown_timeout_ms`.

mod common;

use std::time::Duration;

use clank_daemon::ApiLimits;
use common::{Daemon, ENV};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: clank\r\n\r\n";

/// Limits with nothing closing on its own during a test, unless the test lowers it.
fn patient() -> ApiLimits {
    ApiLimits {
        header_timeout_ms: 60_000,
        idle_timeout_ms: 60_000,
        ..ApiLimits::default()
    }
}

/// Read one `/v1/health` response off `conn` (its JSON body ends the response).
async fn read_health(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).ends_with('}') {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

/// Wait until the server closes `conn` (EOF or reset), at most `limit`; how long it took.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    match tokio::time::timeout(limit, conn.read(&mut buf)).await {
        Err(_) => panic!("the connection is still open after {limit:?}"),
        Ok(Ok(0) | Err(_)) => started.elapsed(),
        Ok(Ok(n)) => panic!("unexpected bytes: {}", String::from_utf8_lossy(&buf[..n])),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connection_is_closed_after_the_header_timeout() {
    let d = Daemon::start(ApiLimits {
        header_timeout_ms: 500,
        ..patient()
    })
    .await;
    // A head trickled one header line at a time never completes: the deadline runs from its
    // first byte, whatever arrives after.
    let mut slow = TcpStream::connect(d.addr).await.unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nHost: clank\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer
                .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // A connection that never sends a byte has the same deadline.
    let mut silent = TcpStream::connect(d.addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let slow_closed = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await;
    let slow_after = started.elapsed();
    assert!(
        matches!(slow_closed, Ok(Ok(0) | Err(_))),
        "the trickling connection must be closed: {slow_closed:?}"
    );
    assert!(
        slow_after >= Duration::from_millis(400) && slow_after < Duration::from_secs(3),
        "closed after {slow_after:?}, expected about 500 ms"
    );
    let silent_after = closed_within(&mut silent, Duration::from_secs(3)).await;
    assert!(silent_after < Duration::from_secs(3), "{silent_after:?}");
    trickle.abort();
    // The server itself is fine.
    let mut ok = TcpStream::connect(d.addr).await.unwrap();
    ok.write_all(HEALTH).await.unwrap();
    assert!(read_health(&mut ok).await.starts_with("HTTP/1.1 200"));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_closed_after_the_header_timeout_and_a_slow_one_is_not() {
    let d = Daemon::start(ApiLimits {
        header_timeout_ms: 500,
        ..patient()
    })
    .await;
    let body = br#"{"workspace": "acme", "name": "Ada", "email": "ada@example.com"}"#;
    let head = format!(
        "POST /v1/init HTTP/1.1\r\nHost: clank\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    // Half a body, then nothing: closed half a second after its last bytes.
    let mut stalled = TcpStream::connect(d.addr).await.unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&body[..10]).await.unwrap();
    let after = closed_within(&mut stalled, Duration::from_secs(5)).await;
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "closed after {after:?}, expected about 500 ms"
    );
    // A body that keeps coming, a few bytes every 100 ms for well over the timeout, is served.
    let mut slow = TcpStream::connect(d.addr).await.unwrap();
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    for chunk in body.chunks(4) {
        slow.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() > Duration::from_secs(1));
    let mut response = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = String::from_utf8_lossy(&response[..n]);
    assert!(status.starts_with("HTTP/1.1 201"), "{status}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_not_served_until_one_closes() {
    let d = Daemon::start(ApiLimits {
        max_connections: 4,
        ..patient()
    })
    .await;
    let mut open = Vec::new();
    for i in 1..=4 {
        let mut c = TcpStream::connect(d.addr).await.unwrap();
        c.write_all(HEALTH).await.unwrap();
        let r = tokio::time::timeout(Duration::from_secs(2), read_health(&mut c))
            .await
            .unwrap_or_else(|_| panic!("connection {i} of 4 was not served"));
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        open.push(c);
    }
    let mut fifth = TcpStream::connect(d.addr).await.unwrap();
    fifth.write_all(HEALTH).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(800), read_health(&mut fifth)).await;
    assert!(
        early.is_err(),
        "a fifth connection was served beyond the cap of 4"
    );
    drop(open.remove(0));
    let r = tokio::time::timeout(Duration::from_secs(3), read_health(&mut fifth))
        .await
        .expect("served once a slot freed");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    drop(open);
    drop(fifth);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connection_is_closed_after_the_idle_timeout() {
    let d = Daemon::start(ApiLimits {
        idle_timeout_ms: 500,
        header_timeout_ms: 10_000,
        ..patient()
    })
    .await;
    let mut c = TcpStream::connect(d.addr).await.unwrap();
    // Keep-alive holds: a second request on the same connection within the idle timeout.
    for _ in 0..2 {
        c.write_all(HEALTH).await.unwrap();
        assert!(read_health(&mut c).await.starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = closed_within(&mut c, Duration::from_secs(5)).await;
    // 500 ms after the last response, 200 ms of which were already spent above; long before
    // the 10 s header timeout.
    assert!(
        after >= Duration::from_millis(150) && after < Duration::from_secs(3),
        "closed {after:?} after going idle"
    );
    d.stop().await;
}

/// Open a log-follow stream; its status, and the response to keep it open.
async fn follow_logs(d: &Daemon, token: &str) -> (StatusCode, reqwest::Response) {
    let resp = d
        .request(
            Some(token),
            Method::GET,
            &format!("{ENV}/services/web/logs?follow=true&tail=1"),
        )
        .send()
        .await
        .unwrap();
    (resp.status(), resp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_follow_streams_beyond_the_per_token_limit_get_429_and_a_slot_frees_when_one_ends() {
    let d = Daemon::start(ApiLimits {
        max_streams_per_token: 2,
        max_streams_per_workspace: 3,
        ..patient()
    })
    .await;
    let owner = d.init().await;
    if d.active_testapp(&owner).await.is_none() {
        return d.stop().await;
    }
    let (_, viewer) = d.member(&owner, "vic", "viewer").await;
    let (s1, first) = follow_logs(&d, &owner).await;
    let (s2, _second) = follow_logs(&d, &owner).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));

    let (s, refused) = follow_logs(&d, &owner).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "too_many_streams", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("api_max_streams_per_token")
            && message.contains("CLANK_API_MAX_STREAMS_PER_TOKEN"),
        "the message names the limit and how to raise it: {message}"
    );
    // Non-following reads are not streams that stay open: never counted.
    let (s, _) = d
        .call(
            Some(&owner),
            Method::GET,
            &format!("{ENV}/services/web/logs?tail=1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    // Another token has its own allowance, up to the workspace's.
    let (s, _third) = follow_logs(&d, &viewer).await;
    assert_eq!(s, StatusCode::OK);
    let (s, refused) = follow_logs(&d, &viewer).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("api_max_streams_per_workspace"),
        "{body}"
    );

    // A follower that goes away gives its slot back.
    drop(first);
    let freed = async {
        loop {
            let (s, resp) = follow_logs(&d, &owner).await;
            if s == StatusCode::OK {
                return resp;
            }
            assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _again = tokio::time::timeout(Duration::from_secs(5), freed)
        .await
        .expect("the slot freed when its stream ended");
    d.stop().await;
}

/// Read a streaming response until it ends; `true` if it ended cleanly.
async fn ends_cleanly(mut resp: reqwest::Response) -> bool {
    loop {
        match resp.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_an_open_event_stream_exits_within_the_bound() {
    let bound = Duration::from_secs(5);
    let mut d = Daemon::start(ApiLimits {
        shutdown_timeout_ms: bound.as_millis() as u64,
        ..patient()
    })
    .await;
    let owner = d.init().await;
    if d.active_testapp(&owner).await.is_none() {
        return d.stop().await;
    }
    // `clank logs -f`: the running service's output, followed.
    let (s, mut logs) = follow_logs(&d, &owner).await;
    assert_eq!(s, StatusCode::OK);
    assert!(logs.chunk().await.unwrap().is_some(), "the follow is open");
    // `clank deploy --follow` of a deployment that is not going to settle soon: its process
    // never answers the health check.
    d.service(
        &owner,
        "hang",
        vec![
            clank_testkit::testapp::BUSYBOX.into(),
            "sleep".into(),
            "600".into(),
        ],
    )
    .await;
    let hang = format!("{ENV}/services/hang");
    let dep = d
        .ok(
            &owner,
            Method::POST,
            &format!("{hang}/deployments"),
            Some(json!({})),
        )
        .await;
    let mut events = d
        .request(
            Some(&owner),
            Method::GET,
            &format!("{hang}/deployments/{}/events", dep["number"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let first = events.chunk().await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("event: status"),
        "{first:?}"
    );

    let started = Instant::now();
    d.begin_shutdown();
    let task = d.task.take().unwrap();
    let (logs_ended, events_ended) = tokio::join!(ends_cleanly(logs), ends_cleanly(events));
    assert!(
        logs_ended,
        "the log follower sees its stream end, not break"
    );
    assert!(
        events_ended,
        "the event follower sees its stream end, not break"
    );
    tokio::time::timeout(bound + Duration::from_secs(2), task)
        .await
        .expect("serve returns within the shutdown bound")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    // The streams end at once: nothing waited for the bound.
    assert!(took < bound, "shutdown took {took:?}");
    common::remove_workloads(d.dir.path().join("data/processes")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_a_request_still_in_flight_at_the_timeout() {
    let bound = Duration::from_millis(1500);
    let mut d = Daemon::start(ApiLimits {
        shutdown_timeout_ms: bound.as_millis() as u64,
        ..patient()
    })
    .await;
    // A complete head with a body that never arrives: the request is in flight for good.
    let mut stuck = TcpStream::connect(d.addr).await.unwrap();
    stuck
        .write_all(
            b"POST /v1/init HTTP/1.1\r\nHost: clank\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"workspace\"",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    d.begin_shutdown();
    tokio::time::timeout(bound + Duration::from_secs(3), d.task.take().unwrap())
        .await
        .expect("serve returns once the bound has passed")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= bound - Duration::from_millis(100),
        "the in-flight request was given the whole bound, not cut early: {took:?}"
    );
    let closed = closed_within(&mut stuck, Duration::from_secs(1)).await;
    assert!(closed < Duration::from_secs(1));
    common::remove_workloads(d.dir.path().join("data/processes")).await;
}
