//! Endpoint modes the proxy applies: `lan_only` on the LAN listener (and only there), and
//! `tailscale_https` through the `tailscale` CLI — here a fake `tailscale` script that records
//! its argument vector, since no tailnet is reachable in tests.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{Endpoint, TlsMode};
use clank_core::proxy::{Proxy, Route, Target};
use clank_proxy::{ClankProxy, ProxyConfig};
use common::{Conn, backend, cutover, get_req};
use http::StatusCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TwoListeners {
    proxy: ClankProxy,
    public: SocketAddr,
    lan: SocketAddr,
    _stop: CancellationToken,
}

/// A proxy with a public plain listener (redirecting to 8443) and a LAN listener.
async fn proxy_with_lan(mut config: ProxyConfig) -> TwoListeners {
    let public_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = public_listener.local_addr().unwrap();
    let lan_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lan = lan_listener.local_addr().unwrap();
    config.lan_listen = Some(lan);
    config.https_port = Some(8443);
    let proxy = ClankProxy::new(config).unwrap();
    let stop = CancellationToken::new();
    let (p, s) = (proxy.clone(), stop.clone());
    tokio::spawn(async move { p.serve(public_listener, s).await });
    let (p, s) = (proxy.clone(), stop.clone());
    tokio::spawn(async move { p.serve_lan(lan_listener, s).await });
    TwoListeners {
        proxy,
        public,
        lan,
        _stop: stop,
    }
}

fn route_with(service: ServiceId, endpoint: Endpoint, addrs: Vec<SocketAddr>) -> Route {
    Route {
        service,
        endpoint: Some(endpoint),
        target: Target {
            deployment: DeploymentId::new(),
            addrs,
        },
    }
}

async fn get(addr: SocketAddr, host: &str) -> (StatusCode, String) {
    let mut conn = Conn::open(addr).await.unwrap();
    let (status, _, body) = conn.send(get_req(host, "/")).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn lan_only_is_served_on_the_lan_listener_without_redirect_and_not_publicly() {
    let b = backend("lan-app").await;
    let p = proxy_with_lan(ProxyConfig::default()).await;
    let lan_only = Endpoint::LanOnly {
        domains: vec!["app.lan.example".into()],
    };
    p.proxy
        .set_route(&route_with(ServiceId::new(), lan_only, vec![b.addr]))
        .await
        .unwrap();

    let (status, body) = get(p.lan, "app.lan.example").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "lan-app"));
    let (status, _) = get(p.public, "app.lan.example").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "lan_only leaked onto the public listener"
    );
}

#[tokio::test]
async fn public_direct_is_not_served_on_the_lan_listener() {
    let b = backend("public-app").await;
    let p = proxy_with_lan(ProxyConfig::default()).await;
    let public = Endpoint::PublicDirect {
        domains: vec!["shop.example.com".into()],
        tls: TlsMode::Acme,
    };
    p.proxy
        .set_route(&route_with(ServiceId::new(), public, vec![b.addr]))
        .await
        .unwrap();

    let (status, _) = get(p.public, "shop.example.com").await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    let (status, _) = get(p.lan, "shop.example.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn without_a_lan_listener_lan_only_is_served_on_the_plain_listener() {
    let b = backend("lan-app").await;
    let t = common::start_proxy(ProxyConfig::default()).await;
    let lan_only = Endpoint::LanOnly {
        domains: vec!["app.lan.example".into()],
    };
    t.proxy
        .set_route(&route_with(ServiceId::new(), lan_only, vec![b.addr]))
        .await
        .unwrap();
    assert_eq!(get(t.addr, "app.lan.example").await.0, StatusCode::OK);
}

/// A fake `tailscale`: appends its argv (one line, arguments separated by `|`) to `log`, then
/// exits with `exit` after printing `stderr` there.
fn fake_tailscale(dir: &Path, exit: i32, stderr: &str) -> (PathBuf, PathBuf) {
    let log = dir.join("argv.log");
    let bin = dir.join("tailscale");
    let script = format!(
        "#!/bin/sh\n\
         line=''\n\
         for a in \"$@\"; do line=\"$line|$a\"; done\n\
         printf '%s\\n' \"$line\" >> '{}'\n\
         printf '%s\\n' '{stderr}' >&2\n\
         exit {exit}\n",
        log.display()
    );
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

fn recorded(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn tailscale_cutover_runs_serve_with_the_exact_argv_and_remove_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, log) = fake_tailscale(dir.path(), 0, "");
    let t = common::start_proxy(ProxyConfig {
        tailscale_binary: bin,
        ..ProxyConfig::default()
    })
    .await;
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let service = ServiceId::new();
    let endpoint = Endpoint::TailscaleHttps { https_port: 443 };

    let first = route_with(service, endpoint.clone(), vec![v1.addr]);
    t.proxy
        .cutover(&cutover(first.clone(), Duration::from_secs(1)))
        .await
        .unwrap();
    // Route repair re-applies the same route: tailscale is not run again.
    t.proxy.set_route(&first).await.unwrap();
    let second = route_with(service, endpoint, vec![v2.addr]);
    t.proxy
        .cutover(&cutover(second, Duration::from_secs(1)))
        .await
        .unwrap();
    t.proxy.remove_route(service).await.unwrap();

    assert_eq!(
        recorded(&log),
        [
            format!("|serve|--bg|--yes|--https=443|http://{}", v1.addr),
            format!("|serve|--bg|--yes|--https=443|http://{}", v2.addr),
            "|serve|--https=443|off".to_owned(),
        ]
    );
}

#[tokio::test]
async fn tailscale_port_change_serves_the_new_port_then_turns_the_old_one_off() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, log) = fake_tailscale(dir.path(), 0, "");
    let t = common::start_proxy(ProxyConfig {
        tailscale_binary: bin,
        ..ProxyConfig::default()
    })
    .await;
    let b = backend("app").await;
    let service = ServiceId::new();
    let on = |port| {
        route_with(
            service,
            Endpoint::TailscaleHttps { https_port: port },
            vec![b.addr],
        )
    };
    t.proxy.set_route(&on(443)).await.unwrap();
    t.proxy.set_route(&on(8443)).await.unwrap();
    assert_eq!(
        recorded(&log),
        [
            format!("|serve|--bg|--yes|--https=443|http://{}", b.addr),
            format!("|serve|--bg|--yes|--https=8443|http://{}", b.addr),
            "|serve|--https=443|off".to_owned(),
        ]
    );
}

#[tokio::test]
async fn tailscale_failure_refuses_the_cutover_with_its_stderr_and_keeps_the_old_route() {
    let dir = tempfile::tempdir().unwrap();
    let (ok_bin, _) = fake_tailscale(dir.path(), 0, "");
    let t = common::start_proxy(ProxyConfig {
        tailscale_binary: ok_bin.clone(),
        ..ProxyConfig::default()
    })
    .await;
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let service = ServiceId::new();
    let endpoint = Endpoint::TailscaleHttps { https_port: 443 };
    let first = route_with(service, endpoint.clone(), vec![v1.addr]);
    t.proxy
        .cutover(&cutover(first.clone(), Duration::from_secs(1)))
        .await
        .unwrap();

    // Now the CLI fails (same path, new script).
    let failing = tempfile::tempdir().unwrap();
    let (bad_bin, _) = fake_tailscale(
        failing.path(),
        1,
        "serve: HTTPS is not enabled for this tailnet",
    );
    std::fs::copy(&bad_bin, &ok_bin).unwrap();
    let err = t
        .proxy
        .cutover(&cutover(
            route_with(service, endpoint, vec![v2.addr]),
            Duration::from_secs(1),
        ))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("HTTPS is not enabled for this tailnet"),
        "{msg}"
    );
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("--https=443"), "{msg}");
    assert_eq!(
        t.proxy.route(service).await.unwrap().unwrap().target,
        first.target,
        "the failed cutover moved the route"
    );
}

#[tokio::test]
async fn tailscale_binary_that_cannot_start_is_reported_with_its_path() {
    let t = common::start_proxy(ProxyConfig {
        tailscale_binary: PathBuf::from("/nonexistent/tailscale"),
        ..ProxyConfig::default()
    })
    .await;
    let b = backend("app").await;
    let err = t
        .proxy
        .set_route(&route_with(
            ServiceId::new(),
            Endpoint::TailscaleHttps { https_port: 443 },
            vec![b.addr],
        ))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/tailscale serve"), "{msg}");
    assert!(msg.contains("cannot start"), "{msg}");
    assert!(t.proxy.routes().is_empty());
}

#[tokio::test]
async fn tailscale_applier_kills_a_hung_cli_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("tailscale");
    std::fs::write(&bin, "#!/bin/sh\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let serve = clank_proxy::TailscaleServe::new(&bin).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = serve
        .remove(&clank_core::endpoint::TailscaleServePlan { https_port: 443 })
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("no answer within"), "{err}");
}
