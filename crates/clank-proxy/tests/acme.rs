//! ACME end to end against Debian's `pebble` on loopback: HTTP-01 answered by the proxy,
//! the issued chain served over TLS and verified against pebble's root, restart reuse,
//! renewal with a short validity period, and badNonce retries. Each test runs its own
//! `pebble-challtestsrv` (every name resolves to 127.0.0.1) and `pebble` (its HTTPS listener
//! on a CA + localhost leaf made with the openssl CLI). Without pebble the tests skip loudly,
//! and fail when `CI` is set.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::model::{Endpoint, TlsMode};
use clank_core::time::Timestamp;
use clank_proxy::acme::{Action, Backoff, Challenge, Outcome, next_action};
use clank_proxy::{AcmeConfig, AcmeManager, ProxyConfig};
use clank_testkit::pebble::{Pebble, PebbleOptions, free_port};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "shop.example.com";

/// Pebble (and its DNS) from the shared test kit: HTTP-01 dialled at `http_port`, TLS-ALPN-01
/// at `tls_port`.
async fn start_pebble(
    http_port: u16,
    tls_port: u16,
    validity_secs: Option<u64>,
    nonce_reject_percent: u32,
) -> Option<Pebble> {
    Pebble::start(PebbleOptions {
        http_port,
        tls_port,
        validity_secs,
        nonce_reject_percent,
    })
    .await
}

/// The root that signs pebble's issued chains (new at every pebble start).
fn issuing_root(pebble: &Pebble) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pebble.issuing_root_pem().as_bytes())
        .expect("pebble's /roots/0 is a PEM certificate")
}

/// A GET over TLS trusting only `roots`, SNI `sni`; the response body.
async fn https_get(
    addr: SocketAddr,
    sni: &str,
    roots: &[CertificateDer<'static>],
    host: &str,
    path: &str,
) -> Result<String, BoxError> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(store)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from(sni.to_owned())?, tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    // A peer may close without close_notify; what was read is what counts.
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected response: {text}").into());
    }
    Ok(text)
}

/// A proxy with plain (the HTTP-01 port) and TLS listeners, routing DOMAIN as `public_direct`
/// with ACME TLS to a backend.
struct Site {
    proxy: TestProxy,
    tls_addr: SocketAddr,
    stop_tls: CancellationToken,
}

async fn site() -> Site {
    let backend = backend("app").await;
    let proxy = start_proxy(ProxyConfig::default()).await;
    let mut route = route(ServiceId::new(), DOMAIN, vec![backend.addr]);
    route.endpoint = Some(Endpoint::PublicDirect {
        domains: vec![DOMAIN.into()],
        tls: TlsMode::Acme,
    });
    proxy.proxy.apply(vec![route]).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = listener.local_addr().unwrap();
    let stop_tls = CancellationToken::new();
    let (p, s) = (proxy.proxy.clone(), stop_tls.clone());
    tokio::spawn(async move { p.serve_tls(listener, s).await });
    Site {
        proxy,
        tls_addr,
        stop_tls,
    }
}

fn acme_config(pebble: &Pebble, state_dir: &Path) -> AcmeConfig {
    AcmeConfig {
        server_root: Some(pebble.ca_pem()),
        contact: vec!["mailto:ops@example.com".into()],
        ..AcmeConfig::new(pebble.directory_url.clone(), state_dir)
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn issued(
    manager: &AcmeManager,
    now: Timestamp,
    pebble: &Pebble,
) -> clank_proxy::acme::Validity {
    match manager.ensure(DOMAIN, now).await.unwrap() {
        Outcome::Issued(v) => v,
        other => panic!(
            "expected an issued certificate, got {other:?}\n{}",
            pebble.logs()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issuance_serves_a_chain_that_verifies_against_pebbles_root() {
    let site = site().await;
    let Some(pebble) = start_pebble(site.proxy.addr.port(), site.tls_addr.port(), None, 0).await
    else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let manager =
        AcmeManager::new(site.proxy.proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    assert_eq!(manager.routed_domains(), vec![DOMAIN.to_owned()]);

    issued(&manager, Timestamp::now(), &pebble).await;
    assert_eq!(manager.orders_placed(), 1);
    assert!(
        pebble.logs().contains("validate w/ HTTP"),
        "{}",
        pebble.logs()
    );
    assert_eq!(
        site.proxy.proxy.certificate_names(),
        vec![DOMAIN.to_owned()]
    );

    let root = issuing_root(&pebble);
    let body = https_get(site.tls_addr, DOMAIN, &[root], DOMAIN, "/")
        .await
        .expect("HTTPS through the proxy verifies against pebble's root");
    assert!(body.ends_with("app"), "{body}");

    let dir = state.path();
    assert_eq!(mode(&dir.join("account.json")), 0o600);
    assert_eq!(mode(&dir.join("certs").join(DOMAIN).join("key.pem")), 0o600);
    assert_eq!(
        mode(&dir.join("certs").join(DOMAIN).join("cert.pem")),
        0o600
    );
    // Challenges are answered only while an order runs: afterwards the path reaches the app.
    let (_, _, body) = get_once(site.proxy.addr, DOMAIN, "/.well-known/acme-challenge/x")
        .await
        .unwrap();
    assert_eq!(&body[..], b"app");
    site.stop_tls.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issuance_is_answered_on_the_tls_listener() {
    let site = site().await;
    let Some(pebble) = start_pebble(site.proxy.addr.port(), site.tls_addr.port(), None, 0).await
    else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let config = AcmeConfig {
        challenge: Challenge::TlsAlpn01,
        ..acme_config(&pebble, state.path())
    };
    let manager = AcmeManager::new(site.proxy.proxy.clone(), config).unwrap();
    issued(&manager, Timestamp::now(), &pebble).await;
    // Pebble logs HTTP-01 validations ("validate w/ HTTP") but not TLS-ALPN-01 ones.
    let logs = pebble.logs();
    assert!(logs.contains("set VALID by completed challenge"), "{logs}");
    assert!(
        !logs.contains("validate w/ HTTP"),
        "validated over HTTP-01:\n{logs}"
    );
    let root = issuing_root(&pebble);
    https_get(site.tls_addr, DOMAIN, &[root], DOMAIN, "/")
        .await
        .expect("the certificate serves");
    site.stop_tls.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reuses_the_account_and_the_certificate_without_a_new_order() {
    let site = site().await;
    let Some(pebble) = start_pebble(site.proxy.addr.port(), site.tls_addr.port(), None, 0).await
    else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let first =
        AcmeManager::new(site.proxy.proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    issued(&first, Timestamp::now(), &pebble).await;
    let account = std::fs::read(state.path().join("account.json")).unwrap();
    let cert = std::fs::read(state.path().join("certs").join(DOMAIN).join("cert.pem")).unwrap();
    drop(first);

    // A new manager on the same state directory, serving through a proxy that has lost the
    // certificate (the port pebble validates against stays the same).
    assert!(site.proxy.proxy.remove_certificate(DOMAIN));
    assert!(site.proxy.proxy.certificate_names().is_empty());
    let second =
        AcmeManager::new(site.proxy.proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    assert_eq!(
        site.proxy.proxy.certificate_names(),
        vec![DOMAIN.to_owned()]
    );
    let outcome = second.ensure(DOMAIN, Timestamp::now()).await.unwrap();
    assert!(matches!(outcome, Outcome::Waiting(_)), "{outcome:?}");
    assert_eq!(second.orders_placed(), 0);
    assert_eq!(
        std::fs::read(state.path().join("account.json")).unwrap(),
        account
    );
    assert_eq!(
        std::fs::read(state.path().join("certs").join(DOMAIN).join("cert.pem")).unwrap(),
        cert
    );
    let root = issuing_root(&pebble);
    https_get(site.tls_addr, DOMAIN, &[root], DOMAIN, "/")
        .await
        .expect("the restored certificate serves");

    // An order after the restart uses the stored account: the credentials file is unchanged.
    let renew_at = match next_action(&second.state(DOMAIN).unwrap(), Timestamp::now()) {
        Action::WaitUntil(t) => t,
        Action::Order => panic!("a fresh certificate is not due"),
    };
    issued(&second, renew_at, &pebble).await;
    assert_eq!(second.orders_placed(), 1);
    assert_eq!(
        std::fs::read(state.path().join("account.json")).unwrap(),
        account
    );
    site.stop_tls.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_in_the_last_third_of_its_lifetime() {
    let site = site().await;
    let Some(pebble) =
        start_pebble(site.proxy.addr.port(), site.tls_addr.port(), Some(30), 0).await
    else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let manager =
        AcmeManager::new(site.proxy.proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    let v1 = issued(&manager, Timestamp::now(), &pebble).await;
    let life = v1.not_after.as_millis() - v1.not_before.as_millis();
    assert!((25_000..=35_000).contains(&life), "validity {life} ms");

    // Not due before two thirds of the lifetime, due at it.
    let before = Timestamp::from_millis(v1.renew_at().as_millis() - 1000);
    assert_eq!(
        manager.ensure(DOMAIN, before).await.unwrap(),
        Outcome::Waiting(v1.renew_at())
    );
    assert_eq!(manager.orders_placed(), 1);

    // The real clock: `run` renews by itself once two thirds have passed.
    let stop = CancellationToken::new();
    let (m, s) = (manager.clone(), stop.clone());
    let runner = tokio::spawn(async move { m.run(s).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        if manager.orders_placed() >= 2 {
            let v2 = manager.state(DOMAIN).unwrap().validity.unwrap();
            if v2 != v1 {
                assert!(v2.not_after > v1.not_after, "{v1:?} then {v2:?}");
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no renewal\n{}",
            pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    runner.await.unwrap();
    let root = issuing_root(&pebble);
    https_get(site.tls_addr, DOMAIN, &[root], DOMAIN, "/")
        .await
        .expect("the renewed certificate serves");
    site.stop_tls.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_succeeds_while_pebble_rejects_half_of_all_nonces() {
    let site = site().await;
    let Some(pebble) = start_pebble(site.proxy.addr.port(), site.tls_addr.port(), None, 50).await
    else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let manager =
        AcmeManager::new(site.proxy.proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    issued(&manager, Timestamp::now(), &pebble).await;
    // A second order (renewal due at the injected time) doubles the nonces at risk.
    let renew_at = manager.state(DOMAIN).unwrap().validity.unwrap().renew_at();
    issued(&manager, renew_at, &pebble).await;
    assert_eq!(manager.orders_placed(), 2);
    // Pebble logs every POST before checking its nonce; the account and two orders take 14
    // POSTs when no nonce is rejected (measured with PEBBLE_WFE_NONCEREJECT=0), so more
    // means rejected nonces were retried (chance of none rejected at 50 %: 2^-14).
    let posts = pebble.logs().matches("POST /").count();
    assert!(posts > 14, "{posts} POSTs: no badNonce was exercised");
    let root = issuing_root(&pebble);
    https_get(site.tls_addr, DOMAIN, &[root], DOMAIN, "/")
        .await
        .expect("the certificate serves");
    site.stop_tls.cancel();
}

/// No CA needed: the directory is a closed loopback port.
#[tokio::test]
async fn a_failed_order_backs_off_and_the_backoff_survives_a_restart() {
    let proxy = start_proxy(ProxyConfig::default()).await;
    let state = tempfile::tempdir().unwrap();
    let config = AcmeConfig {
        backoff: Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(600),
        },
        ..AcmeConfig::new(
            format!("https://127.0.0.1:{}/dir", free_port()),
            state.path(),
        )
    };
    let manager = AcmeManager::new(proxy.proxy.clone(), config.clone()).unwrap();
    let now = Timestamp::from_millis(1_000_000);
    let Outcome::Failed {
        reason,
        next_attempt,
    } = manager.ensure(DOMAIN, now).await.unwrap()
    else {
        panic!("an unreachable CA fails the order");
    };
    assert!(!reason.is_empty());
    assert_eq!(next_attempt, now.saturating_add(Duration::from_secs(60)));
    assert!(!state.path().join("account.json").exists());
    assert_eq!(
        mode(&state.path().join("certs").join(DOMAIN).join("retry.json")),
        0o600
    );

    let restarted = AcmeManager::new(proxy.proxy.clone(), config).unwrap();
    assert_eq!(
        restarted
            .ensure(DOMAIN, now.saturating_add(Duration::from_secs(30)))
            .await
            .unwrap(),
        Outcome::Waiting(next_attempt)
    );
    let Outcome::Failed {
        next_attempt: second,
        ..
    } = restarted.ensure(DOMAIN, next_attempt).await.unwrap()
    else {
        panic!("still failing");
    };
    assert_eq!(
        second,
        next_attempt.saturating_add(Duration::from_secs(120))
    );
    assert_eq!(restarted.state(DOMAIN).unwrap().retry.failures, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_an_acme_directory_certifies_its_restored_public_routes() {
    let (http_port, tls_port) = (free_port(), free_port());
    let Some(pebble) = start_pebble(http_port, tls_port, None, 0).await else {
        return;
    };
    let backend = backend("app").await;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("routes.json");
    // The route table a control plane left behind; the binary restores it at start.
    {
        let proxy = clank_proxy::ClankProxy::new(ProxyConfig {
            state_file: Some(state_file.clone()),
            ..ProxyConfig::default()
        })
        .unwrap();
        let mut r = route(ServiceId::new(), DOMAIN, vec![backend.addr]);
        r.endpoint = Some(Endpoint::PublicDirect {
            domains: vec![DOMAIN.into()],
            tls: TlsMode::Acme,
        });
        proxy.apply(vec![r]).await.unwrap();
    }
    let config_path = dir.path().join("proxy.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&serde_json::json!({
            "listen": format!("127.0.0.1:{http_port}"),
            "tls_listen": format!("127.0.0.1:{tls_port}"),
            "state_file": state_file,
        }))
        .unwrap(),
    )
    .unwrap();
    let acme_dir = dir.path().join("acme");
    let log = dir.path().join("clank-proxy.log");
    // ACME is switched on by the environment alone, as a service manager would.
    let _proxy = Command::new(env!("CARGO_BIN_EXE_clank-proxy"))
        .arg("--config")
        .arg(&config_path)
        .env("CLANK_PROXY_ACME_DIRECTORY_URL", &pebble.directory_url)
        .env("CLANK_PROXY_ACME_STATE_DIR", &acme_dir)
        .env("CLANK_PROXY_ACME_SERVER_ROOT", pebble.ca_pem())
        .env("CLANK_PROXY_ACME_CONTACT", "mailto:ops@example.com")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the clank-proxy binary starts");

    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let root = issuing_root(&pebble);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let body = loop {
        if acme_dir
            .join("certs")
            .join(DOMAIN)
            .join("cert.pem")
            .exists()
            && let Ok(body) =
                https_get(tls_addr, DOMAIN, std::slice::from_ref(&root), DOMAIN, "/").await
        {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate served within 60 s\n--- clank-proxy\n{}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(body.ends_with("app"), "{body}");
    assert_eq!(mode(&acme_dir.join("account.json")), 0o600);
}

fn public_route(domain: &str, addr: SocketAddr) -> clank_core::proxy::Route {
    let mut r = route(ServiceId::new(), domain, vec![addr]);
    r.endpoint = Some(Endpoint::PublicDirect {
        domains: vec![domain.into()],
        tls: TlsMode::Acme,
    });
    r
}

/// The setup: the proxy as its own process, ACME from the environment alone (so the
/// check interval is the default hour), driven over its control socket as the daemon does. A
/// name routed at runtime is served with a valid certificate within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_routed_at_runtime_is_certified_within_seconds_without_a_check_interval() {
    use clank_core::proxy::{CalledProxy, Proxy};
    let (http_port, tls_port) = (free_port(), free_port());
    let Some(pebble) = start_pebble(http_port, tls_port, None, 0).await else {
        return;
    };
    let backend = backend("app").await;
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("proxy/control.sock");
    let config_path = dir.path().join("proxy.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&serde_json::json!({
            "listen": format!("127.0.0.1:{http_port}"),
            "tls_listen": format!("127.0.0.1:{tls_port}"),
            "control_socket": control,
            "state_file": dir.path().join("routes.json"),
        }))
        .unwrap(),
    )
    .unwrap();
    let acme_dir = dir.path().join("acme");
    let log = dir.path().join("clank-proxy.log");
    let _proxy = Command::new(env!("CARGO_BIN_EXE_clank-proxy"))
        .arg("--config")
        .arg(&config_path)
        .env("CLANK_PROXY_ACME_DIRECTORY_URL", &pebble.directory_url)
        .env("CLANK_PROXY_ACME_STATE_DIR", &acme_dir)
        .env("CLANK_PROXY_ACME_SERVER_ROOT", pebble.ca_pem())
        .env("RUST_LOG", "info,clank_proxy=debug,clank_proxy::access=off")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the clank-proxy binary starts");
    let socket = clank_proxy::ControlSocket::new(&control);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !socket.ping(Duration::from_millis(500)).await {
        assert!(tokio::time::Instant::now() < deadline, "no control socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the start-up pass (over no routes) finish: what follows must be the wake-up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let proxy_log = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(proxy_log().contains("ACME on"), "{}", proxy_log());

    let root = issuing_root(&pebble);
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let remote = CalledProxy(socket);
    let routed = tokio::time::Instant::now();
    remote
        .set_route(&public_route(DOMAIN, backend.addr))
        .await
        .unwrap();
    let body = loop {
        if let Ok(body) =
            https_get(tls_addr, DOMAIN, std::slice::from_ref(&root), DOMAIN, "/").await
        {
            break body;
        }
        assert!(
            routed.elapsed() < Duration::from_secs(15),
            "no valid certificate 15 s after the route was set\n--- clank-proxy\n{}\n{}",
            proxy_log(),
            pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = routed.elapsed();
    eprintln!("domain routed -> valid certificate served: {took:?}");
    assert!(body.ends_with("app"), "{body}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// Waits (up to 15 s) until `domain` is served with a certificate that verifies against `root`.
async fn served(
    tls_addr: SocketAddr,
    domain: &str,
    root: &CertificateDer<'static>,
    pebble: &Pebble,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while https_get(tls_addr, domain, std::slice::from_ref(root), domain, "/")
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{domain} not served\n{}",
            pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// In-process, the check interval an hour: a burst of changes re-setting a name makes one
/// order, changes while it runs none, and a second name routed meanwhile gets its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_route_changes_orders_each_new_name_once() {
    use clank_core::proxy::Proxy;
    const OTHER: &str = "api.example.com";
    let site = site().await;
    let Some(pebble) = start_pebble(site.proxy.addr.port(), site.tls_addr.port(), None, 0).await
    else {
        return;
    };
    let proxy = site.proxy.proxy.clone();
    proxy.apply(Vec::new()).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let manager = AcmeManager::new(proxy.clone(), acme_config(&pebble, state.path())).unwrap();
    let stop = CancellationToken::new();
    let (m, s) = (manager.clone(), stop.clone());
    let runner = tokio::spawn(async move { m.run(s).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(manager.orders_placed(), 0);

    let backend = backend("app").await;
    let first = public_route(DOMAIN, backend.addr);
    for _ in 0..20 {
        proxy.set_route(&first).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While the first order runs, a second name and more changes to the first arrive: the
    // pass they cause must not order the first name again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while manager.orders_placed() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no order placed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy
        .set_route(&public_route(OTHER, backend.addr))
        .await
        .unwrap();
    for _ in 0..5 {
        proxy.set_route(&first).await.unwrap();
    }
    let root = issuing_root(&pebble);
    served(site.tls_addr, DOMAIN, &root, &pebble).await;
    served(site.tls_addr, OTHER, &root, &pebble).await;
    // And after both are stored, changes order nothing.
    for _ in 0..5 {
        proxy.set_route(&first).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(manager.orders_placed(), 2, "{}", pebble.logs());
    stop.cancel();
    runner.await.unwrap();
    site.stop_tls.cancel();
}

/// No CA needed (a closed port): a name routed at runtime is tried at once, and the failure's
/// backoff holds through later route changes, removal and re-routing included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_name_is_tried_at_once_and_its_failure_keeps_the_backoff() {
    use clank_core::proxy::Proxy;
    let proxy = start_proxy(ProxyConfig::default()).await;
    let state = tempfile::tempdir().unwrap();
    let config = AcmeConfig::new(
        format!("https://127.0.0.1:{}/dir", free_port()),
        state.path(),
    );
    assert_eq!(config.check_interval, Duration::from_secs(3600));
    let manager = AcmeManager::new(proxy.proxy.clone(), config).unwrap();
    let stop = CancellationToken::new();
    let (m, s) = (manager.clone(), stop.clone());
    let runner = tokio::spawn(async move { m.run(s).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let backend = backend("app").await;
    let r = public_route(DOMAIN, backend.addr);
    proxy.proxy.set_route(&r).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while manager.state(DOMAIN).unwrap().retry.failures == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let retry = manager.state(DOMAIN).unwrap().retry;
    proxy.proxy.remove_route(r.service).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.proxy.set_route(&r).await.unwrap();
    proxy
        .proxy
        .set_route(&public_route("other.example.com", backend.addr))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(manager.state(DOMAIN).unwrap().retry, retry);
    // The new name was tried (and failed) on its own.
    assert_eq!(
        manager.state("other.example.com").unwrap().retry.failures,
        1
    );
    stop.cancel();
    runner.await.unwrap();
}
