//! `clank exec -i`/`-t`: the released binary opens a terminal in the running service through
//! the daemon's WebSocket, feeds it stdin (here piped: no raw mode), prints what the terminal
//! shows and exits with the command's code; a viewer is refused before anything runs.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use clank_testkit::testapp;
use common::{clank, native_testapp, text};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_runs_typed_input_and_exits_with_the_commands_code() {
    let dir = tempfile::tempdir().unwrap();
    let Some((daemon, url, ctx)) = native_testapp(dir.path()).await else {
        return;
    };

    let o = typed(exec_sh(&url, &ctx, &[]), b"echo typed-$((6*7)); exit 3\n").await;
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("typed-42"),
        "{shown}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(3), "{shown}");

    // A viewer may not run commands: refused before anything runs, exit code 3 (auth).
    let viewer = clank(
        &url,
        &ctx,
        &[
            "--json",
            "member",
            "add",
            "vera@example.com",
            "--name",
            "Vera",
            "--role",
            "viewer",
        ],
    )
    .await;
    assert!(viewer.status.success(), "{}", text(&viewer));
    let token = serde_json::from_slice::<serde_json::Value>(&viewer.stdout).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_clank"))
        .args(["exec", "-it", "shop/web", "--", testapp::BUSYBOX, "sh"])
        .env("CLANK_URL", &url)
        .env("CLANK_CONFIG", &ctx)
        .env("CLANK_TOKEN", &token)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("Deploy"), "{}", text(&o));
    daemon.stop().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_reaches_an_https_daemon_over_wss_with_its_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let Some((daemon, url, ctx)) = native_testapp(dir.path()).await else {
        return;
    };
    let (ca, config) = clank_testkit::https::private_ca(dir.path());
    let backend = url.trim_start_matches("http://").parse().unwrap();
    let https = format!(
        "https://{}",
        clank_testkit::https::tls_terminator(backend, config).await
    );
    let with_ca = [std::ffi::OsStr::new("--ca-cert"), ca.as_os_str()];
    let o = typed(
        exec_sh(&https, &ctx, &with_ca),
        b"echo over-wss-$((6*7)); exit 4\n",
    )
    .await;
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("over-wss-42"), "{shown}\n{}", text(&o));
    assert_eq!(o.status.code(), Some(4), "{shown}");

    // Without the CA the terminal is refused naming the certificate and --ca-cert.
    let o = exec_sh(&https, &ctx, &[]).wait_with_output().await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let said = text(&o);
    assert!(said.contains("does not trust"), "{said}");
    assert!(said.contains("--ca-cert"), "{said}");
    daemon.stop().await.unwrap().unwrap();
}

/// `clank [flags] exec -it shop/web -- sh` against `url` (its context at `ctx`, no token or CA
/// from the environment), every stream piped.
fn exec_sh(url: &str, ctx: &Path, flags: &[&std::ffi::OsStr]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clank"))
        .args(flags)
        .args(["exec", "-it", "shop/web", "--", testapp::BUSYBOX, "sh"])
        .env("CLANK_URL", url)
        .env("CLANK_CONFIG", ctx)
        .env_remove("CLANK_TOKEN")
        .env_remove("CLANK_CA_CERT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Type `input` into the session and wait (30 s at most) for it to end.
async fn typed(mut child: tokio::process::Child, input: &[u8]) -> std::process::Output {
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).await.unwrap();
    let o = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the session ends with the shell")
        .unwrap();
    drop(stdin);
    o
}
