//! TLS end to end on loopback: SNI picks the certificate (exact and wildcard, BYO PEM from
//! files and at runtime), HTTP/2 and HTTP/1.1 by ALPN, `X-Forwarded-Proto: https`, and the
//! HTTP→HTTPS redirect for `public_direct` endpoints. Certificates come from the `openssl` CLI.

mod common;

use std::path::Path;
use std::sync::Arc;

use clank_core::id::ServiceId;
use clank_core::model::{Endpoint, TlsMode};
use clank_core::proxy::Proxy;
use clank_proxy::{ProxyConfig, TlsCertificate};
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A self-signed certificate for `names` (PEM cert, PEM key), made by the openssl CLI.
fn self_signed(dir: &Path, stem: &str, names: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "1", "-subj", &format!("/CN={}", names[0])])
        .args(["-addext", &format!("subjectAltName={}", san.join(","))])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    (cert, key)
}

/// Accepts any server certificate: the tests check *which* certificate was served instead.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
}

fn leaf_pem_der(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[tokio::test]
async fn sni_selects_certificates_and_alpn_selects_the_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let (a_crt, a_key) = self_signed(dir.path(), "a", &["a.test"]);
    let (w_crt, w_key) = self_signed(dir.path(), "wild", &["*.apps.test"]);
    let (r_crt, r_key) = self_signed(dir.path(), "runtime", &["late.test"]);
    let backend = backend("b").await;
    let p = start_proxy(ProxyConfig {
        tls_certificates: vec![
            TlsCertificate {
                domains: vec!["a.test".into()],
                cert_file: a_crt.clone(),
                key_file: a_key,
            },
            TlsCertificate {
                domains: vec!["*.apps.test".into()],
                cert_file: w_crt.clone(),
                key_file: w_key,
            },
        ],
        ..ProxyConfig::default()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = listener.local_addr().unwrap();
    let proxy = p.proxy.clone();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { proxy.serve_tls(listener, s).await });
    let service = ServiceId::new();
    let mut r = route(service, "a.test", vec![backend.addr]);
    r.endpoint = Some(Endpoint::PublicDirect {
        domains: vec!["a.test".into(), "x.apps.test".into(), "late.test".into()],
        tls: TlsMode::default(),
    });
    p.proxy.set_route(&r).await.unwrap();

    // Exact name, HTTP/1.1.
    let tls = connect(tls_addr, "a.test", &[b"http/1.1"]).await.unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(
        conn.peer_certificates().unwrap()[0].as_ref(),
        leaf_pem_der(&a_crt)
    );
    assert_eq!(conn.alpn_protocol(), Some(b"http/1.1".as_slice()));
    let (mut send, c) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(c);
    let res = send
        .send_request(
            Request::get("/headers")
                .header("host", "a.test")
                .body(body(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("x-forwarded-proto: https\n"), "{text}");

    // Wildcard, HTTP/2.
    let tls = connect(tls_addr, "x.apps.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    let (_, conn) = tls.get_ref();
    assert_eq!(
        conn.peer_certificates().unwrap()[0].as_ref(),
        leaf_pem_der(&w_crt)
    );
    assert_eq!(conn.alpn_protocol(), Some(b"h2".as_slice()));
    let (mut send, c) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(c);
    for _ in 0..3 {
        let res = send
            .send_request(Request::get("https://x.apps.test/").body(body("")).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["x-backend"], "b");
    }
    // HTTP/2 routes by `:authority`, and the upstream's Host is that name, never another
    // one the client slipped into a `host` header.
    let res = send
        .send_request(
            Request::get("https://x.apps.test/headers")
                .header("host", "a.test")
                .body(body(""))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("host: x.apps.test\n"), "{text}");
    assert!(!text.contains("host: a.test"), "{text}");
    // A wildcard covers one label only; an unknown name fails the handshake.
    assert!(connect(tls_addr, "y.x.apps.test", &[]).await.is_err());
    assert!(connect(tls_addr, "late.test", &[]).await.is_err());

    // A certificate added at runtime serves from the next handshake; removal stops it.
    p.proxy
        .add_certificate(
            &["late.test".into()],
            &std::fs::read(&r_crt).unwrap(),
            &std::fs::read(&r_key).unwrap(),
        )
        .unwrap();
    let tls = connect(tls_addr, "late.test", &[]).await.unwrap();
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        leaf_pem_der(&r_crt)
    );
    assert!(p.proxy.remove_certificate("late.test"));
    assert!(connect(tls_addr, "late.test", &[]).await.is_err());
    assert!(
        p.proxy
            .add_certificate(&["bad.test".into()], b"nope", b"nope")
            .is_err()
    );
    stop.cancel();
}

#[tokio::test]
async fn public_endpoints_redirect_plain_http_to_https_except_acme_challenges() {
    let backend = backend("b").await;
    let p = start_proxy(ProxyConfig {
        https_port: Some(8443),
        ..ProxyConfig::default()
    })
    .await;
    let mut public = route(ServiceId::new(), "shop.test", vec![backend.addr]);
    public.endpoint = Some(Endpoint::PublicDirect {
        domains: vec!["shop.test".into()],
        tls: TlsMode::default(),
    });
    p.proxy.set_route(&public).await.unwrap();
    p.proxy
        .set_route(&route(ServiceId::new(), "lan.test", vec![backend.addr]))
        .await
        .unwrap();
    let (s, h, _) = get_once(p.addr, "Shop.test:80", "/cart?x=1").await.unwrap();
    assert_eq!(s, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h["location"], "https://shop.test:8443/cart?x=1");
    // ACME HTTP-01 challenges stay on plain HTTP (unknown tokens reach the app); the proxy
    // answers the tokens it was given itself, for any host; lan_only is never redirected.
    let (s, h, _) = get_once(p.addr, "shop.test", "/.well-known/acme-challenge/tok")
        .await
        .unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-backend"], "b");
    p.proxy.set_acme_challenge("tok", "tok.thumbprint");
    for host in ["shop.test:80", "unrouted.test"] {
        let (s, _, body) = get_once(p.addr, host, "/.well-known/acme-challenge/tok")
            .await
            .unwrap();
        assert_eq!(s, StatusCode::OK, "{host}");
        assert_eq!(&body[..], b"tok.thumbprint");
    }
    assert!(p.proxy.remove_acme_challenge("tok"));
    let (s, _, _) = get_once(p.addr, "unrouted.test", "/.well-known/acme-challenge/tok")
        .await
        .unwrap();
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = get_once(p.addr, "lan.test", "/").await.unwrap();
    assert_eq!(s, StatusCode::OK);
}

/// Accepts any certificate and skips the handshake signature check, keeping what was served:
/// webpki refuses the critical `acmeIdentifier` extension of TLS-ALPN-01 certificates, which
/// only an ACME validator needs to read.
#[derive(Debug, Default)]
struct Captured(std::sync::Mutex<Option<Vec<u8>>>);

impl ServerCertVerifier for Captured {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An `acme-tls/1` handshake: the negotiated protocol and the certificate served.
async fn acme_tls_handshake(
    addr: std::net::SocketAddr,
    sni: &str,
) -> Result<(Option<Vec<u8>>, Vec<u8>), std::io::Error> {
    let captured = Arc::new(Captured::default());
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(captured.clone())
    .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let cert = captured.0.lock().unwrap().take().unwrap_or_default();
    Ok((alpn, cert))
}

#[tokio::test]
async fn tls_alpn01_handshakes_get_the_challenge_certificate_and_others_the_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = self_signed(dir.path(), "a", &["a.test"]);
    let p = start_proxy(ProxyConfig {
        tls_certificates: vec![TlsCertificate {
            domains: vec!["a.test".into()],
            cert_file: crt.clone(),
            key_file: key,
        }],
        ..ProxyConfig::default()
    })
    .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = listener.local_addr().unwrap();
    let (proxy, stop) = (p.proxy.clone(), CancellationToken::new());
    let s = stop.clone();
    tokio::spawn(async move { proxy.serve_tls(listener, s).await });

    // No challenge set: an `acme-tls/1` handshake gets no certificate at all.
    assert!(acme_tls_handshake(tls_addr, "a.test").await.is_err());

    let digest = [7u8; 32];
    p.proxy.set_tls_alpn_challenge("a.test", &digest).unwrap();
    let (alpn, served) = acme_tls_handshake(tls_addr, "a.test").await.unwrap();
    assert_eq!(alpn.as_deref(), Some(b"acme-tls/1".as_slice()));
    assert_ne!(served, leaf_pem_der(&crt));
    // The acmeIdentifier extension carries the digest as an OCTET STRING (04 20 ...).
    let mut octets = vec![0x04, 0x20];
    octets.extend_from_slice(&digest);
    assert!(served.windows(octets.len()).any(|w| w == octets));

    // Ordinary clients still get the real certificate meanwhile.
    let tls = connect(tls_addr, "a.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].as_ref(),
        leaf_pem_der(&crt)
    );

    assert!(p.proxy.remove_tls_alpn_challenge("a.test"));
    assert!(acme_tls_handshake(tls_addr, "a.test").await.is_err());
    stop.cancel();
}
