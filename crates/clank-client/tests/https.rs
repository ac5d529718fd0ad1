//! The client over HTTPS, on real sockets: a daemon behind a TLS terminator whose certificate
//! a private CA (`clank_testkit::https`) signed. Trusting that CA's file (`ca_cert`) connects and
//! runs operations; without it the connect fails naming the certificate problem and the
//! option that fixes it; a port that does not speak TLS says so.

use std::net::SocketAddr;
use std::time::Duration;

use clank_client::{Client, ConnectOptions};
use clank_core::ErrorKind;
use clank_daemon::DaemonConfig;
use clank_testkit::https::{private_ca, tls_terminator};
use serde_json::{Value, json};

/// A daemon in-process on loopback with workspace `acme`: its address and the Owner's token.
async fn daemon(dir: &std::path::Path) -> (SocketAddr, String) {
    let config = DaemonConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.join("data"),
        runtime: "process".into(),
        proxy: None,
        agent_listen: None,
        ..DaemonConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(clank_daemon::serve(
        config,
        listener,
        std::future::pending::<()>(),
    ));
    let http = clank_client::tls::client_builder(None)
        .unwrap()
        .build()
        .unwrap();
    for _ in 0..100 {
        if let Ok(r) = http
            .post(format!("http://{addr}/v1/init"))
            .json(&json!({"workspace": "acme", "name": "Ada", "email": "ada@example.com"}))
            .send()
            .await
        {
            let token = r.json::<Value>().await.unwrap()["token"]
                .as_str()
                .unwrap()
                .to_owned();
            return (addr, token);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon does not answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_private_ca_file_connects_and_runs_operations() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, server) = private_ca(dir.path());
    let (plain, token) = daemon(dir.path()).await;
    let tls = tls_terminator(plain, server).await;
    for url in [
        format!("https://127.0.0.1:{}", tls.port()),
        format!("https://localhost:{}/", tls.port()),
    ] {
        let options = ConnectOptions {
            ca_cert: Some(ca_file.clone()),
            ..ConnectOptions::default()
        };
        let client = Client::connect(&url, &token, options).await.unwrap();
        assert_eq!(client.whoami().workspace, "acme");
        let projects: Value = serde_json::from_str(
            &client
                .execute_json(r#"{"op": "list_projects"}"#)
                .await
                .unwrap(),
        )
        .unwrap();
        assert!(projects.is_array(), "{projects}");
    }
    let client = Client::connect(
        &format!("https://127.0.0.1:{}", tls.port()),
        &token,
        ConnectOptions {
            ca_cert: Some(ca_file),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    client
        .execute_json(r#"{"op": "create_project", "name": "Shop"}"#)
        .await
        .unwrap();
    let got = client
        .execute_json(r#"{"op": "get_project", "project": "shop"}"#)
        .await
        .unwrap();
    assert!(got.contains("Shop"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_without_the_private_ca_fails_naming_the_certificate_problem_and_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca_file, server) = private_ca(dir.path());
    let (plain, token) = daemon(dir.path()).await;
    let tls = tls_terminator(plain, server).await;
    let url = format!("https://127.0.0.1:{}", tls.port());
    let started = std::time::Instant::now();
    let e = Client::connect(&url, &token, ConnectOptions::default())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::Unavailable, Some("ca_cert")),
        "{text}"
    );
    for needle in [
        url.as_str(),
        "does not trust",
        "UnknownIssuer",
        "ca_cert",
        "--ca-cert",
    ] {
        assert!(text.contains(needle), "`{needle}` missing: {text}");
    }
    // Not tried again: only the client's trust can change the answer.
    assert!(started.elapsed() < Duration::from_secs(2), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_port_says_the_port_does_not_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, token) = daemon(dir.path()).await;
    let url = format!("https://{plain}");
    let options = ConnectOptions {
        retries: 0,
        ..ConnectOptions::default()
    };
    let e = Client::connect(&url, &token, options).await.unwrap_err();
    let text = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{text}");
    assert!(
        text.contains("TLS handshake") && text.contains("http://"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_still_connects_with_a_ca_file_given() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, _server) = private_ca(dir.path());
    let (plain, token) = daemon(dir.path()).await;
    let options = ConnectOptions {
        ca_cert: Some(ca_file),
        ..ConnectOptions::default()
    };
    let client = Client::connect(&format!("http://{plain}"), &token, options)
        .await
        .unwrap();
    assert_eq!(client.whoami().workspace, "acme");
}
