//! The `clank` binary over HTTPS, on real sockets: a daemon (in-process, loopback) behind a TLS
//! terminator whose certificate a private CA (`clank_testkit::https`) signed. `--ca-cert` (or
//! `CLANK_CA_CERT`) trusts that CA; `clank init`/`clank login` save it with the URL; without it
//! the CLI names the certificate problem and `--ca-cert`; a file that is not a certificate (or
//! a saved one that has gone) is a usage error.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;

use clank_testkit::https::{private_ca, tls_terminator};
use common::{Daemon, INIT, clank, text};
use serde_json::Value;

/// `clank args…` against `url` with its context at `config` and `CLANK_CA_CERT` set.
async fn clank_with_ca_env(url: &str, config: &Path, ca: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clank"))
        .args(args)
        .env("CLANK_URL", url)
        .env("CLANK_CONFIG", config)
        .env("CLANK_CA_CERT", ca)
        .env_remove("CLANK_TOKEN")
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_an_https_daemon_with_ca_cert_and_init_and_login_save_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, server) = private_ca(dir.path());
    let ca = ca_file.to_str().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let backend: SocketAddr = daemon.url.trim_start_matches("http://").parse().unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        tls_terminator(backend, server).await.port()
    );
    let ctx = dir.path().join("context.json");

    // `init` over HTTPS with `--ca-cert`: the context keeps the URL and the CA file.
    let mut init = INIT.to_vec();
    init.extend(["--ca-cert", ca]);
    let o = clank(&url, &ctx, &init).await;
    assert!(o.status.success(), "{}", text(&o));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&ctx).unwrap()).unwrap();
    assert_eq!(saved["url"], url.as_str(), "{saved}");
    assert_eq!(saved["ca_cert"], ca, "{saved}");
    let token = saved["token"].as_str().unwrap().to_owned();

    // Later commands to the same URL trust the saved CA without the flag.
    let o = clank(&url, &ctx, &["whoami"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("acme"), "{}", text(&o));
    let o = clank(&url, &ctx, &["--json", "project", "list"]).await;
    assert!(o.status.success(), "{}", text(&o));

    // `login` on a fresh context, the CA from `CLANK_CA_CERT`: saved too, then used.
    let fresh = dir.path().join("fresh.json");
    let o = clank_with_ca_env(&url, &fresh, &ca_file, &["login", "--token", &token]).await;
    assert!(o.status.success(), "{}", text(&o));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&fresh).unwrap()).unwrap();
    assert_eq!(saved["ca_cert"], ca, "{saved}");
    let o = clank(&url, &fresh, &["whoami"]).await;
    assert!(o.status.success(), "{}", text(&o));

    // Plain http:// keeps working next to it.
    let o = clank(&daemon.url, &ctx, &["--token", &token, "whoami"]).await;
    assert!(o.status.success(), "{}", text(&o));
    daemon.stop().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_without_the_private_ca_names_the_untrusted_certificate_and_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let (_ca_file, server) = private_ca(dir.path());
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let backend: SocketAddr = daemon.url.trim_start_matches("http://").parse().unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        tls_terminator(backend, server).await.port()
    );
    let ctx = dir.path().join("context.json");

    let o = clank(&url, &ctx, &INIT).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = text(&o);
    for needle in [url.as_str(), "does not trust", "UnknownIssuer", "--ca-cert"] {
        assert!(said.contains(needle), "`{needle}` missing: {said}");
    }
    assert!(!ctx.exists(), "nothing saved after a failed init");

    // A CA file that is missing or not PEM is a usage error naming the flag and the file.
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for file in [dir.path().join("missing.pem"), garbage] {
        let o = clank(&url, &ctx, &["--ca-cert", file.to_str().unwrap(), "whoami"]).await;
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let said = text(&o);
        assert!(
            said.contains("--ca-cert") && said.contains(file.to_str().unwrap()),
            "{said}"
        );
    }
    // One saved with the context that has gone since: the same, naming the context file.
    let missing = dir.path().join("gone.pem");
    let saved = serde_json::json!({"url": url, "token": "t", "ca_cert": missing});
    std::fs::write(&ctx, saved.to_string()).unwrap();
    let o = clank(&url, &ctx, &["whoami"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let said = text(&o);
    for needle in [
        ctx.to_str().unwrap(),
        missing.to_str().unwrap(),
        "--ca-cert",
    ] {
        assert!(said.contains(needle), "`{needle}` missing: {said}");
    }
    daemon.stop().await.unwrap().unwrap();
}
