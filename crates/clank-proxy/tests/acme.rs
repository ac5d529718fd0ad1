//! ACME end to end against Debian's `pebble` on loopback: HTTP-01 answered by the proxy,
//! the issued chain served over TLS and verified against pebble's root, restart reuse,
//! renewal with a short validity period, and badNonce retries. Each test runs its own
//! `pebble-challtestsrv` (every name resolves to 127.0.0.1) and `pebble` (its HTTPS listener
//! on a CA + localhost leaf made with the openssl CLI). Without pebble the tests skip loudly,
//! and fail when `CI` is set.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::model::{Endpoint, TlsMode};
use clank_core::time::Timestamp;
use clank_proxy::acme::{Action, Backoff, Challenge, Outcome, next_action};
use clank_proxy::{AcmeConfig, AcmeManager, ProxyConfig};
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "shop.example.com";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn openssl(args: &[&str], dir: &Path) {
    let status = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a `localhost`/127.0.0.1 leaf it signed, for pebble's own HTTPS listeners.
fn pebble_tls(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=clank test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
        dir,
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
        dir,
    );
}

struct Pebble {
    dir: tempfile::TempDir,
    _children: Vec<Child>,
    directory_url: String,
    management: SocketAddr,
}

impl Pebble {
    fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- pebble.log\n{}\n--- challtestsrv.log\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// The root that signs pebble's issued chains (new at every pebble start).
    async fn issuing_root(&self) -> CertificateDer<'static> {
        let body = https_get(
            self.management,
            "localhost",
            &[CertificateDer::from_pem_file(self.ca_pem()).unwrap()],
            "localhost",
            "/roots/0",
        )
        .await
        .expect("pebble's management API answers /roots/0");
        let start = body
            .find("-----BEGIN CERTIFICATE-----")
            .expect("a PEM root");
        CertificateDer::from_pem_slice(&body.as_bytes()[start..]).unwrap()
    }
}

fn pebble_installed() -> bool {
    ["pebble", "pebble-challtestsrv"].iter().all(|bin| {
        std::process::Command::new(bin)
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

async fn wait_for_tcp(addr: SocketAddr, what: &str) {
    for _ in 0..200 {
        if TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start listening on {addr}");
}

/// Starts challtestsrv and pebble; the validator dials HTTP-01 at `http_port` and
/// TLS-ALPN-01 at `tls_port`.
async fn start_pebble(
    http_port: u16,
    tls_port: u16,
    validity_secs: Option<u64>,
    nonce_reject_percent: u32,
) -> Option<Pebble> {
    if !pebble_installed() {
        return clank_testkit::runtime::skip_or_fail(
            "pebble",
            "`pebble`/`pebble-challtestsrv` not on PATH (apt-get install pebble)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    pebble_tls(dir.path());
    let dns = free_udp_port();
    let chall_mgmt = free_port();
    let log = |n: &str| std::fs::File::create(dir.path().join(n)).unwrap();
    let chall = Command::new("pebble-challtestsrv")
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-management", &format!("127.0.0.1:{chall_mgmt}")])
        .stdout(log("challtestsrv.log"))
        .stderr(log("challtestsrv.err"))
        .kill_on_drop(true)
        .spawn()
        .expect("pebble-challtestsrv starts");
    wait_for_tcp(
        format!("127.0.0.1:{chall_mgmt}").parse().unwrap(),
        "challtestsrv",
    )
    .await;

    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut config = serde_json::json!({
        "listenAddress": listen.to_string(),
        "managementListenAddress": management.to_string(),
        "certificate": dir.path().join("leaf.pem"),
        "privateKey": dir.path().join("leaf.key"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    });
    if let Some(v) = validity_secs {
        config["certificateValidityPeriod"] = v.into();
    }
    let config_path = dir.path().join("pebble.json");
    std::fs::write(
        &config_path,
        serde_json::to_vec(&serde_json::json!({ "pebble": config })).unwrap(),
    )
    .unwrap();
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(&config_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", nonce_reject_percent.to_string())
        .stdout(log("pebble.log"))
        .stderr(log("pebble.err"))
        .kill_on_drop(true)
        .spawn()
        .expect("pebble starts");
    wait_for_tcp(listen, "pebble").await;
    wait_for_tcp(management, "pebble management").await;
    Some(Pebble {
        directory_url: format!("https://{listen}/dir"),
        management,
        dir,
        _children: vec![chall, pebble],
    })
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

    let root = pebble.issuing_root().await;
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
    let root = pebble.issuing_root().await;
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
    let root = pebble.issuing_root().await;
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
    let root = pebble.issuing_root().await;
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
    let root = pebble.issuing_root().await;
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
    let root = pebble.issuing_root().await;
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
