//! Endpoint modes the engine applies, on the real Docker Engine: a `byo_proxy` endpoint
//! publishes the `web` container's port on the host address and port the user asked for.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable; with `CI` set they fail.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clank_core::deploy::DeploymentStatus;
use clank_core::model::Endpoint;
use clank_testkit::http;
use common::Platform;

/// A port free on loopback right now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_publishes_the_web_port_on_the_requested_host_address() {
    let port = free_port();
    let Some(p) = Platform::image_service(|s| {
        s.endpoint = Some(Endpoint::ByoProxy {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: port,
        });
    })
    .await
    else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let requested = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(p.web_endpoint(d.id).await, requested);
    let res = http::get(requested, "/health", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_redeploy_cannot_take_the_held_port_and_the_old_version_keeps_serving() {
    // Start-first cutover: the new container needs the port the old one still publishes.
    // Until stop-first cutovers exist, the redeploy fails cleanly instead of disturbing the
    // running version.
    let port = free_port();
    let Some(p) = Platform::image_service(|s| {
        s.endpoint = Some(Endpoint::ByoProxy {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: port,
        });
        s.settings.deploy_timeout_s = 20;
    })
    .await
    else {
        return;
    };
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let second = p.deploy().await;
    let failed = p
        .wait_for(second.id, DeploymentStatus::Failed, Duration::from_secs(40))
        .await;
    let reason = failed.state.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&port.to_string()) || reason.to_lowercase().contains("port"),
        "{reason}"
    );
    assert_eq!(p.active().await, Some(first.id));
    let res = http::get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/health",
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(res.status, 200);
}
