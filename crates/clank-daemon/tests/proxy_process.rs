//! The proxy runs as its own process by default: the released `clank-daemon` binary on a
//! fresh data directory, the busybox test app as a native process behind a `lan_only` domain,
//! requests through the proxy under load while the daemon is SIGKILLed and restarted ten
//! times — not one fails — and a graceful stop leaves the proxy serving.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clank_testkit::testapp;
use common::{free_addr, init_at, ok_at, spawn_daemon};
use serde_json::json;

const RESTARTS: usize = 10;
const CLIENTS: usize = 8;
const HOST: &str = "app.test";

struct Daemon {
    child: tokio::process::Child,
}

async fn start(data: &Path, api: SocketAddr, proxy: SocketAddr) -> (Daemon, Duration) {
    let began = Instant::now();
    let proxy = proxy.to_string();
    let env = [("CLANK_RUNTIME", "process"), ("CLANK_PROXY_LISTEN", &proxy)];
    let child = spawn_daemon(data, api, &env, Stdio::inherit()).await;
    (Daemon { child }, began.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_through_the_proxy_survives_ten_daemon_sigkills_and_a_graceful_stop() {
    if !testapp::busybox_available() {
        clank_testkit::runtime::skip_or_fail::<()>(
            "Debian's busybox-static",
            "/bin/busybox is missing",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The test app runs as its workspace's own user (tests run as root): open the way in.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    let data = dir.path().join("data");
    let _reaper = common::ProxyReaper(data.clone());
    let (api, proxy) = (free_addr(), free_addr());
    let (mut daemon, _) = start(&data, api, proxy).await;

    let owner = init_at(api).await;
    let owner = owner.as_str();
    ok_at(
        api,
        Some(owner),
        reqwest::Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Shop"})),
    )
    .await;
    let app = dir.path().join("app");
    testapp::write_testapp(&app).unwrap();
    let start_sh = app.join("start.sh").to_string_lossy().into_owned();
    let env = "/v1/workspaces/acme/projects/shop/environments/production";
    ok_at(
        api,
        Some(owner),
        reqwest::Method::POST,
        &format!("{env}/services"),
        Some(json!({
            "slug": "web",
            "source": {"type": "docker_image", "image": testapp::IMAGE},
            "settings": {"health_check_interval_s": 1},
            "processes": {"web": {"command": [testapp::BUSYBOX, "sh", start_sh]}},
            "endpoint": {"mode": "lan_only", "domains": [HOST]},
        })),
    )
    .await;
    let svc = format!("{env}/services/web");
    let d = ok_at(
        api,
        Some(owner),
        reqwest::Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    let n = d["number"].as_u64().unwrap();
    let mut active = false;
    for _ in 0..600 {
        let v = ok_at(
            api,
            Some(owner),
            reqwest::Method::GET,
            &format!("{svc}/deployments/{n}"),
            None,
        )
        .await;
        match v["status"].as_str() {
            Some("ACTIVE") => {
                active = true;
                break;
            }
            Some("FAILED" | "CANCELLED") => panic!("the test app did not deploy: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert!(active, "the test app is not ACTIVE after 60 s");

    // Load: keep-alive clients through the proxy for the whole run.
    let (ok, failed, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let first_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (ok, failed, stop, first) = (
            ok.clone(),
            failed.clone(),
            stop.clone(),
            first_failure.clone(),
        );
        clients.push(tokio::spawn(async move {
            let http = clank_testkit::web::client();
            while !stop.load(Ordering::Relaxed) {
                let outcome = http
                    .get(format!("http://{proxy}/health"))
                    .header(reqwest::header::HOST, HOST)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match outcome {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let text = match other {
                            Ok(r) => format!(
                                "HTTP {}: {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            ),
                            Err(e) => e.to_string(),
                        };
                        first.lock().unwrap().get_or_insert(text);
                    }
                }
            }
        }));
    }

    let mut restarts = Vec::new();
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(300)).await;
        daemon.child.kill().await.unwrap();
        let (next, took) = start(&data, api, proxy).await;
        daemon = next;
        restarts.push(took);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A graceful stop: bounded, and the proxy keeps serving after the daemon is gone.
    let stopping = Instant::now();
    let pid = daemon.child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exited = tokio::time::timeout(Duration::from_secs(15), daemon.child.wait()).await;
    let stop_took = stopping.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let slowest = restarts.iter().max().copied().unwrap_or_default();
    eprintln!(
        "proxy process: {RESTARTS} SIGKILL restarts (slowest back in {:.2} s), graceful stop in \
         {:.2} s, {ok} requests ok, {failed} failed",
        slowest.as_secs_f64(),
        stop_took.as_secs_f64()
    );
    assert!(
        matches!(exited, Ok(Ok(_))),
        "the daemon did not exit on SIGTERM: {exited:?}"
    );
    assert_eq!(
        failed,
        0,
        "requests failed; first: {:?}",
        first_failure.lock().unwrap()
    );
    assert!(ok > 500, "too little load: {ok} requests");
    common::remove_workloads(data.join("processes")).await;
}
