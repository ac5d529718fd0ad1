//! `clank init --password-stdin` and `clank member set-password … --password-stdin` against a
//! real daemon (in-process, loopback, native processes): the password is read from standard
//! input, never an argument, and then signs in to the dashboard.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};

use common::{Daemon, INIT, text};
use std::io::Write as _;

const PASSWORD: &str = "correct horse battery staple";

/// `clank args…` with `stdin` piped in.
async fn clank_with_stdin(url: &str, config: &Path, args: &[&str], stdin: &str) -> Output {
    let (url, config, stdin) = (url.to_owned(), config.to_owned(), stdin.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clank"))
            .args(&args)
            .env("CLANK_URL", url)
            .env("CLANK_CONFIG", config)
            .env_remove("CLANK_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// The dashboard's email-and-password sign-in: its status (303 when signed in).
async fn sign_in(url: &str, email: &str, password: &str) -> reqwest::StatusCode {
    let http = clank_testkit::web::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http.get(format!("{url}/ui/signin")).send().await.unwrap();
    let cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("clank_signin="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let csrf = page
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let body = format!(
        "csrf={csrf}&method=password&email={}&password={}",
        email.replace('@', "%40"),
        password.replace(' ', "+")
    );
    http.post(format!("{url}/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_and_set_password_read_the_password_from_stdin_and_it_signs_in() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");

    let mut init: Vec<&str> = INIT.to_vec();
    init.push("--password-stdin");
    let o = clank_with_stdin(&url, &ctx, &init, &format!("{PASSWORD}\n")).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains(PASSWORD));
    assert_eq!(
        sign_in(&url, "ada@example.com", PASSWORD).await,
        reqwest::StatusCode::SEE_OTHER
    );

    let add = [
        "member",
        "add",
        "vic@example.com",
        "--name",
        "Vic",
        "--role",
        "viewer",
    ];
    let o = clank_with_stdin(&url, &ctx, &add, "").await;
    assert!(o.status.success(), "{}", text(&o));
    // Without the flag nothing is read or sent: a usage error.
    let o = clank_with_stdin(
        &url,
        &ctx,
        &["member", "set-password", "vic@example.com"],
        "",
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // Too short: the daemon's refusal, by field.
    let set = [
        "member",
        "set-password",
        "vic@example.com",
        "--password-stdin",
    ];
    let o = clank_with_stdin(&url, &ctx, &set, "short\n").await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("at least 12 characters"), "{}", text(&o));
    let o = clank_with_stdin(&url, &ctx, &set, &format!("{PASSWORD}\r\n")).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        sign_in(&url, "vic@example.com", PASSWORD).await,
        reqwest::StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in(&url, "vic@example.com", "not the password").await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    daemon.stop().await.unwrap().unwrap();
}
