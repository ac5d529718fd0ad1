//! `clank template` and `clank stack` against a real daemon (in-process, native runtime: the
//! stacks' images never need to run here), with an operator's templates directory: a template
//! it adds is listed, and a broken file stops the daemon naming the file.

mod common;

use std::path::{Path, PathBuf};

use clank_api::{StackUpgradeView, StackView, TemplateSummary};
use common::{Daemon, INIT, clank, ok, text};

fn builtin(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../clank-templates/templates")
        .join(file);
    std::fs::read_to_string(path).unwrap()
}

/// A daemon (native runtime) whose operator templates directory holds `file` with `text`;
/// the data directory lives as long as the returned `TempDir`.
async fn daemon_with_template(file: &str, text: String) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let templates: PathBuf = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join(file), text).unwrap();
    let daemon = Daemon::start(dir.path(), "process", |c| {
        c.templates_dir = Some(templates.clone());
    })
    .await;
    (dir, daemon)
}

#[tokio::test]
async fn template_and_stack_commands_create_show_and_upgrade_only_after_a_preview() {
    let keyval = builtin("redis.toml").replace("name = \"redis\"", "name = \"keyval\"");
    let (dir, daemon) = daemon_with_template("keyval.toml", keyval).await;
    let url = daemon.url.clone();
    let ctx = dir.path().join("context.json");
    ok(&url, &ctx, &INIT).await;
    ok(&url, &ctx, &["project", "create", "Shop", "--slug", "shop"]).await;

    let list = ok(&url, &ctx, &["template", "list"]).await;
    for name in ["postgres", "wordpress", "keyval"] {
        assert!(list.contains(name), "{list}");
    }
    let parsed: Vec<TemplateSummary> =
        serde_json::from_str(&ok(&url, &ctx, &["template", "list", "--json"]).await).unwrap();
    assert!(parsed.iter().any(|t| t.name == "keyval"));
    let show = ok(&url, &ctx, &["template", "show", "wordpress"]).await;
    assert!(
        show.contains("db_password")
            && show.contains("/var/lib/mysql")
            && show.contains("after db"),
        "{show}"
    );

    let created = ok(
        &url,
        &ctx,
        &[
            "stack",
            "create",
            "shop",
            "--template",
            "wordpress",
            "--name",
            "blog",
        ],
    )
    .await;
    assert!(
        created.contains("stack `blog` created") && created.contains("blog-db"),
        "{created}"
    );
    let o = clank(
        &url,
        &ctx,
        &[
            "stack",
            "create",
            "shop",
            "--template",
            "postgres",
            "--input",
            "nope=1",
        ],
    )
    .await;
    assert!(
        !o.status.success() && text(&o).contains("inputs.nope"),
        "{}",
        text(&o)
    );

    ok(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "shop/db",
            "--template",
            "postgres",
            "--input",
            "database=orders",
        ],
    )
    .await;
    let db: StackView =
        serde_json::from_str(&ok(&url, &ctx, &["stack", "show", "shop/db", "--json"]).await)
            .unwrap();
    assert_eq!(
        (db.template.as_str(), db.services[0].service.as_str()),
        ("postgres", "db")
    );
    let stacks = ok(&url, &ctx, &["stack", "list", "shop"]).await;
    assert!(stacks.contains("blog") && stacks.contains("db"), "{stacks}");

    let preview = ok(&url, &ctx, &["stack", "upgrade", "shop/db"]).await;
    assert!(preview.contains("--yes"), "{preview}");
    let applied: StackUpgradeView = serde_json::from_str(
        &ok(
            &url,
            &ctx,
            &["stack", "upgrade", "shop/db", "--yes", "--json"],
        )
        .await,
    )
    .unwrap();
    assert!(applied.applied);
    let _ = daemon.stop().await;
}

#[tokio::test]
async fn a_broken_template_file_stops_the_daemon_naming_it() {
    let broken = builtin("redis.toml").replace("image = \"redis:7.4\"", "image = \"redis:latest\"");
    let (_dir, daemon) = daemon_with_template("redis.toml", broken).await;
    let ended = daemon.stop().await.unwrap();
    let message = ended.unwrap_err().to_string();
    assert!(
        message.contains("redis.toml") && message.contains("image"),
        "{message}"
    );
}
