//! The attack suite: what a hostile tenant, a curious member or a careless client tries
//! against the real daemon's REST API, one case per attack, each printed with what must
//! happen and what did. Runs in CI with the other tests; alone:
//! `cargo test -p clank-daemon --test attacks -- --nocapture`.
//!
//! Tenant A (`acme`) is the instance operator's workspace; tenant B (`globex`) is another
//! workspace the operator created, whose Owner is hostile.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use clank_daemon::ApiLimits;
use common::Daemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const A: &str = "/v1/workspaces/acme";
const B: &str = "/v1/workspaces/globex";
const ENV: &str = "projects/shop/environments/production/services";

struct Case {
    name: &'static str,
    expected: String,
    observed: String,
    ok: bool,
}

#[derive(Default)]
struct Report(Vec<Case>);

impl Report {
    fn status(&mut self, name: &'static str, want: &[StatusCode], got: (StatusCode, Value)) {
        let ok = want.contains(&got.0);
        self.0.push(Case {
            name,
            expected: want
                .iter()
                .map(|s| s.as_u16().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            observed: format!("{} {}", got.0.as_u16(), short(&got.1)),
            ok,
        });
    }

    fn check(&mut self, name: &'static str, expected: &str, observed: String, ok: bool) {
        self.0.push(Case {
            name,
            expected: expected.to_owned(),
            observed,
            ok,
        });
    }

    fn finish(self) {
        let mut failed = 0;
        println!("\n{:<58} {:<34} observed", "attack", "expected");
        for c in &self.0 {
            if !c.ok {
                failed += 1;
            }
            println!(
                "{} {:<56} {:<34} {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.expected,
                c.observed
            );
        }
        println!("{} passed, {failed} failed", self.0.len() - failed);
        assert_eq!(failed, 0, "attacks that got through (see the table above)");
    }
}

fn short(v: &Value) -> String {
    let text = v
        .get("message")
        .and_then(Value::as_str)
        .map_or_else(|| v.to_string(), str::to_owned);
    text.chars().take(90).collect()
}

fn service(slug: &str, domain: &str) -> Value {
    json!({
        "slug": slug,
        "source": {"type": "docker_image", "image": "registry.example.com/shop/web:1"},
        "endpoint": {"mode": "lan_only", "domains": [domain]},
    })
}

fn git(url: &str, credentials: Option<&str>) -> Value {
    let mut source = json!({"type": "git", "repo_url": url, "branch": "main"});
    if let Some(c) = credentials {
        source["credentials_secret"] = json!(c);
    }
    json!({"slug": "build", "source": source})
}

#[tokio::test]
async fn attack_suite() {
    let limits = ApiLimits {
        header_timeout_ms: 500,
        ..ApiLimits::default()
    };
    let d = Daemon::start(limits).await;
    let mut r = Report::default();
    let operator = d.init().await;
    let op = operator.as_str();

    // Setup: tenant B, created by the operator; a project and a routed domain in each.
    let (s, v) = d
        .call(
            Some(op),
            Method::POST,
            "/v1/workspaces",
            Some(json!({"workspace": "globex", "name": "Mallory", "email": "mallory@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mallory = v["token"].as_str().unwrap().to_owned();
    let b = mallory.as_str();
    for (token, ws) in [(op, A), (b, B)] {
        d.ok(
            token,
            Method::POST,
            &format!("{ws}/projects"),
            Some(json!({"name": "Shop"})),
        )
        .await;
    }
    let a_service = d
        .ok(
            op,
            Method::POST,
            &format!("{A}/{ENV}"),
            Some(service("web", "shop.acme.test")),
        )
        .await;
    assert!(
        a_service["id"].is_string() && a_service["workspace_id"].is_string(),
        "{a_service}"
    );

    // --- Instance-level --------------------------------------------------------------------
    r.status(
        "a second init takes over the instance",
        &[StatusCode::CONFLICT],
        d.call(
            None,
            Method::POST,
            "/v1/init",
            Some(json!({"workspace": "evil", "name": "E", "email": "e@example.com"})),
        )
        .await,
    );
    r.status(
        "a tenant Owner creates workspaces",
        &[StatusCode::FORBIDDEN],
        d.call(
            Some(b),
            Method::POST,
            "/v1/workspaces",
            Some(json!({"workspace": "evil2", "name": "E", "email": "e2@example.com"})),
        )
        .await,
    );
    let release = d
        .request(
            Some(b),
            Method::PUT,
            &format!("{B}/agent-release?version=6.6.6"),
        )
        .body(vec![0u8; 64])
        .send()
        .await
        .unwrap();
    let release_status = release.status();
    let release_body: Value = release.json().await.unwrap_or(Value::Null);
    r.status(
        "a tenant Owner publishes an agent release to every agent",
        &[StatusCode::FORBIDDEN],
        (release_status, release_body),
    );

    // --- Another tenant's data -------------------------------------------------------------
    r.status(
        "B lists A's projects",
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        d.call(Some(b), Method::GET, &format!("{A}/projects"), None)
            .await,
    );
    r.status(
        "B reads A's service",
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        d.call(Some(b), Method::GET, &format!("{A}/{ENV}/web"), None)
            .await,
    );
    r.status(
        "B deploys A's service",
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        d.call(
            Some(b),
            Method::POST,
            &format!("{A}/{ENV}/web/deployments"),
            Some(json!({})),
        )
        .await,
    );
    r.status(
        "B reads A's audit log",
        &[StatusCode::FORBIDDEN, StatusCode::NOT_FOUND],
        d.call(Some(b), Method::GET, &format!("{A}/audit"), None)
            .await,
    );
    let claim = d
        .call(
            Some(b),
            Method::POST,
            &format!("{B}/{ENV}"),
            Some(service("web", "SHOP.acme.test")),
        )
        .await;
    // A's ids (its service's, workspace's, project's): none may appear in B's answer.
    let claim_text = claim.1.to_string();
    let leaks = ["id", "workspace_id", "project_id"]
        .iter()
        .filter_map(|k| a_service[*k].as_str())
        .any(|id| claim_text.contains(id));
    r.status(
        "B claims a domain A routes",
        &[StatusCode::CONFLICT],
        claim.clone(),
    );
    r.check(
        "the refusal quotes none of A's names or ids",
        "no A id in the message",
        short(&claim.1),
        !leaks,
    );

    // --- The build server as a weapon -------------------------------------------------------
    for (name, url) in [
        ("a git service reads the build server's disk", "file:///etc"),
        (
            "a git service probes loopback",
            "http://127.0.0.1:7070/x.git",
        ),
        (
            "a git service reads cloud metadata",
            "http://169.254.169.254/latest",
        ),
        ("a git service probes the LAN", "https://192.168.1.1/x.git"),
    ] {
        r.status(
            name,
            &[StatusCode::UNPROCESSABLE_ENTITY],
            d.call(
                Some(b),
                Method::POST,
                &format!("{B}/{ENV}"),
                Some(git(url, None)),
            )
            .await,
        );
    }
    r.status(
        "git credentials sent over plain http",
        &[StatusCode::UNPROCESSABLE_ENTITY],
        d.call(
            Some(b),
            Method::POST,
            &format!("{B}/{ENV}"),
            Some(git("http://git.example.com/x.git", Some("TOKEN"))),
        )
        .await,
    );
    r.status(
        "a git URL that runs a command (ext::)",
        &[StatusCode::UNPROCESSABLE_ENTITY],
        d.call(
            Some(b),
            Method::POST,
            &format!("{B}/{ENV}"),
            Some(git("ext::sh -c touch% /tmp/pwned", None)),
        )
        .await,
    );

    // --- Members -------------------------------------------------------------------------------
    let (_, admin) = d.member(op, "admin", "admin").await;
    let (dev_id, dev) = d.member(op, "dev", "developer").await;
    let tokens = d.ok(op, Method::GET, &format!("{A}/tokens"), None).await;
    let owner_token = tokens
        .as_array()
        .and_then(|t| t.first())
        .and_then(|t| t["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    r.status(
        "an Admin revokes an Owner's token",
        &[StatusCode::FORBIDDEN],
        d.call(
            Some(&admin),
            Method::DELETE,
            &format!("{A}/tokens/{owner_token}"),
            None,
        )
        .await,
    );
    r.status(
        "a Developer promotes themself to Owner",
        &[StatusCode::FORBIDDEN],
        d.call(
            Some(&dev),
            Method::PATCH,
            &format!("{A}/members/{dev_id}"),
            Some(json!({"role": "owner"})),
        )
        .await,
    );
    d.ok(op, Method::DELETE, &format!("{A}/members/{dev_id}"), None)
        .await;
    r.status(
        "a removed member's token still works",
        &[StatusCode::UNAUTHORIZED],
        d.call(Some(&dev), Method::GET, &format!("{A}/projects"), None)
            .await,
    );

    // --- Resource exhaustion ------------------------------------------------------------------
    let huge = "x".repeat(100 * 1024);
    let (viewer_id, viewer) = d.member(op, "viewer", "viewer").await;
    let _ = viewer_id;
    let denied = d
        .call(
            Some(&viewer),
            Method::POST,
            &format!("{A}/projects"),
            Some(json!({"name": huge, "slug": huge})),
        )
        .await;
    r.status(
        "a Viewer creates a project (100 KB name)",
        &[
            StatusCode::FORBIDDEN,
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::PAYLOAD_TOO_LARGE,
        ],
        denied,
    );
    let audit = d
        .ok(op, Method::GET, &format!("{A}/audit?limit=1"), None)
        .await;
    let entry = audit.to_string().len();
    r.check(
        "the denied 100 KB request bloats the audit log",
        "entry < 4 KiB",
        format!("{entry} bytes"),
        entry < 4096,
    );
    let addr = d.addr;
    let slowloris = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let began = Instant::now();
        let mut buf = [0u8; 64];
        // Closed by the server: end of stream or a reset. A read timeout is "still open".
        let closed = match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        (closed, began.elapsed())
    })
    .await
    .unwrap();
    r.check(
        "a slowloris connection is held forever",
        "closed within 2 s",
        format!("closed after {:.1} s", slowloris.1.as_secs_f64()),
        slowloris.0 && slowloris.1 < Duration::from_secs(2),
    );
    let bad_json = d
        .request(Some(b), Method::POST, &format!("{B}/projects"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap()
        .status();
    r.check(
        "malformed JSON crashes or 500s the API",
        "4xx",
        bad_json.as_u16().to_string(),
        bad_json.is_client_error(),
    );

    r.finish();
    d.stop().await;
}
