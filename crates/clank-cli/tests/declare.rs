//! `clank export` and `clank apply -f` against a real daemon (in-process, loopback, native
//! processes): the export names secrets and never holds their values; applying it unchanged
//! changes nothing; an edited file shows its plan, changes nothing without `--yes`, applies
//! with it, and then is unchanged; a new service's secret comes from the named variable;
//! `clank plan show <id>` shows a stored plan with how to apply it.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Daemon, INIT, clank, ok, text};

/// `clank` with one more environment variable.
async fn clank_with(url: &str, config: &Path, args: &[&str], var: (&str, &str)) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_clank"))
        .args(args)
        .env("CLANK_URL", url)
        .env("CLANK_CONFIG", config)
        .env_remove("CLANK_TOKEN")
        .env(var.0, var.1)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_project_applies_as_nothing_and_an_edit_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    for args in [
        vec!["project", "create", "Shop"],
        vec![
            "service",
            "create",
            "shop/web",
            "--image",
            "clank-testapp:latest",
        ],
        vec!["config", "set", "shop/web", "GREETING=hi"],
        vec![
            "config",
            "set",
            "shop/web",
            "TOKEN=hunter2-never-exported",
            "--secret",
        ],
    ] {
        ok(&url, &ctx, &args).await;
    }

    let exported = ok(&url, &ctx, &["export", "shop"]).await;
    assert!(exported.contains("GREETING = \"hi\""), "{exported}");
    assert!(exported.contains("secret_env = \"TOKEN\""), "{exported}");
    assert!(!exported.contains("hunter2"), "{exported}");
    let file = dir.path().join("shop.toml");
    std::fs::write(&file, &exported).unwrap();
    let f = file.to_str().unwrap();

    let again = ok(&url, &ctx, &["apply", "-f", f, "--yes"]).await;
    assert!(again.contains("nothing to change"), "{again}");

    let edited = exported.replace("GREETING = \"hi\"", "GREETING = \"bye\"")
        + "\n[environments.production.services.worker]\nname = \"worker\"\n\
           source = { type = \"docker_image\", image = \"clank-testapp:latest\" }\n\
           [environments.production.services.worker.config]\n\
           KEY = { secret_env = \"WORKER_KEY\" }\n";
    std::fs::write(&file, &edited).unwrap();
    let missing = clank(&url, &ctx, &["apply", "-f", f, "--yes"]).await;
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(text(&missing).contains("WORKER_KEY"), "{}", text(&missing));

    let var = ("WORKER_KEY", "worker-secret-value");
    let shown = clank_with(&url, &ctx, &["apply", "-f", f], var).await;
    let shown = text(&shown);
    assert!(
        shown.contains("GREETING") && shown.contains("--yes"),
        "{shown}"
    );
    assert!(
        shown.contains("acme/shop/production/worker  (create)"),
        "{shown}"
    );
    assert!(!shown.contains("worker-secret-value"), "{shown}");
    let id = shown
        .lines()
        .find_map(|l| l.strip_prefix("Plan "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("the plan's id: {shown}"))
        .to_owned();
    let stored = ok(&url, &ctx, &["plan", "show", &id]).await;
    assert!(
        stored.contains(&format!("Plan {id} (apply)"))
            && stored.contains("acme/shop/production/worker  (create)")
            && stored.contains(&format!("clank promote --plan {id}")),
        "{stored}"
    );
    assert!(!stored.contains("worker-secret-value"), "{stored}");
    let missing = clank(&url, &ctx, &["plan", "show", "no-such-plan"]).await;
    assert!(!missing.status.success(), "{}", text(&missing));
    let vars = ok(&url, &ctx, &["config", "list", "shop/web"]).await;
    assert!(
        vars.contains("GREETING=hi"),
        "nothing applied without --yes: {vars}"
    );

    let applied = clank_with(&url, &ctx, &["apply", "-f", f, "--yes"], var).await;
    assert!(applied.status.success(), "{}", text(&applied));
    let vars = ok(&url, &ctx, &["config", "list", "shop/web"]).await;
    assert!(vars.contains("GREETING=bye"), "{vars}");
    let worker = ok(&url, &ctx, &["config", "list", "shop/worker"]).await;
    assert!(worker.contains("KEY=********"), "{worker}");

    let twice = ok(&url, &ctx, &["apply", "-f", f, "--yes"]).await;
    assert!(
        twice.contains("nothing to change"),
        "applying twice is a no-op: {twice}"
    );
    daemon.stop().await.unwrap().unwrap();
}
