//! `clank promote` and `clank env clone` against a real daemon on Docker: the plan printed
//! (image, the differing key, secrets as `********`), not applied without a terminal or
//! `--yes`, applied by `--plan <id>`, refused (exit non-zero, "plan the promotion again") a
//! second time; a clone with a domain pattern prints the copies' domains and new volumes.
//! Fails (never skips) without Docker when CI is set; the project is removed from Docker.

mod common;

use common::{Daemon, INIT, clank, cleanup, docker_with_testapp, ok, text};

const PROJECT: &str = "cli-promo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_prints_the_plan_applies_it_by_id_once_and_env_clone_reports_the_copies() {
    let Some(_docker) = docker_with_testapp().await else {
        return;
    };
    cleanup(PROJECT).await;
    remove_environment_networks();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "docker", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    ok(
        &url,
        &ctx,
        &["project", "create", "CLI Promo", "--slug", PROJECT],
    )
    .await;
    ok(&url, &ctx, &["env", "create", PROJECT, "staging"]).await;
    for env in ["staging", "production"] {
        let address = format!("{PROJECT}/{env}/web");
        ok(
            &url,
            &ctx,
            &[
                "service",
                "create",
                &address,
                "--image",
                "clank-testapp:latest",
            ],
        )
        .await;
        let mode = format!("MODE={env}");
        ok(&url, &ctx, &["config", "set", &address, &mode]).await;
        let secret = format!("KEY={env}-hunter2");
        ok(
            &url,
            &ctx,
            &["config", "set", &address, &secret, "--secret"],
        )
        .await;
    }
    let staging = format!("{PROJECT}/staging/web");
    ok(&url, &ctx, &["deploy", &staging, "--follow"]).await;

    // No terminal and no --yes: the plan is printed, not applied.
    let shown = ok(&url, &ctx, &["promote", &staging, "--to", "production"]).await;
    assert!(shown.contains("(promotion)"), "{shown}");
    assert!(
        shown.contains(&format!("acme/{PROJECT}/production/web  (deploy)")),
        "{shown}"
    );
    assert!(shown.contains("MODE") && shown.contains("KEY"), "{shown}");
    assert!(
        shown.contains("********") && !shown.contains("hunter2"),
        "{shown}"
    );
    let id = shown
        .split("clank promote --plan ")
        .nth(1)
        .map(str::trim)
        .unwrap_or_else(|| panic!("the plan id to apply: {shown}"))
        .to_owned();

    let applied = ok(&url, &ctx, &["promote", "--plan", &id]).await;
    assert!(
        applied.contains("applied") && applied.contains("deployment #1"),
        "{applied}"
    );
    let again = clank(&url, &ctx, &["promote", "--plan", &id]).await;
    assert!(!again.status.success());
    assert!(
        text(&again).contains("plan the promotion again"),
        "{}",
        text(&again)
    );

    let cloned = ok(
        &url,
        &ctx,
        &[
            "env",
            "clone",
            &format!("{PROJECT}/production"),
            "qa",
            "--domain-pattern",
            "{service}-{env}.cli.test",
        ],
    )
    .await;
    assert!(
        cloned.contains(&format!("acme/{PROJECT}/qa/web")),
        "{cloned}"
    );
    assert!(
        cloned.contains("no domain") || cloned.contains("cli.test"),
        "{cloned}"
    );
    let qa = ok(
        &url,
        &ctx,
        &["config", "list", &format!("{PROJECT}/qa/web")],
    )
    .await;
    assert!(
        qa.contains("MODE=production") && qa.contains("KEY=********"),
        "{qa}"
    );

    daemon.stop().await.unwrap().unwrap();
    cleanup(PROJECT).await;
    remove_environment_networks();
}

/// `cleanup` removes the project's network; each environment has its own too.
fn remove_environment_networks() {
    let listed = std::process::Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=--{PROJECT}--"),
        ])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&listed.stdout).split_whitespace() {
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", id])
            .output();
    }
}
