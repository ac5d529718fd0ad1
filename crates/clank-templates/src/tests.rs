//! Behaviour of the catalog, validation, rendering and upgrades, on the built-in templates and
//! small operator files. No Docker, no network.

use std::collections::BTreeMap;
use std::path::Path;

use clank_core::model::{Endpoint, TlsMode};

use crate::*;

fn catalog() -> Catalog {
    Catalog::builtin().unwrap_or_else(|e| panic!("built-in templates are invalid:\n{e}"))
}

fn ctx() -> RenderContext {
    RenderContext::new("shop")
}

fn render_new(t: &Template, stack: &str) -> RenderedStack {
    render(t, stack, &BTreeMap::new(), &Values::new(), &ctx()).unwrap()
}

fn config<'a>(s: &'a RenderedService, key: &str) -> &'a RenderedVar {
    s.config
        .iter()
        .find(|v| v.key == key)
        .unwrap_or_else(|| panic!("{} has no {key}", s.slug))
}

/// A valid operator template; tests break one line of it.
const GOOD: &str = r#"
name = "blogapp"
title = "Blog app"
description = "A test app with a database."
version = "1.0"
category = "cms"

[variables]
pw = { kind = "secret", bytes = 16 }

[[services]]
slug = "db"
role = "companion"
image = "postgres:16.4"
volumes = [{ name = "data", path = "/var/lib/postgresql/data" }]
settings = { port = 5432, health_check_path = "" }
env = { POSTGRES_PASSWORD = "${pw}" }

[[services]]
slug = "app"
image = "ghcr.io/acme/blog:1.0"
routed = true
depends_on = ["db"]
settings = { port = 8080, health_check_path = "/health" }
env = { DATABASE_URL = "postgres://postgres:${pw}@${service.db.host}:5432/postgres" }
"#;

fn load_operator(files: &[(&str, &str)]) -> Result<Catalog, CatalogError> {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    Catalog::load(Some(dir.path()))
}

/// Load `text` as an operator file and return the one error's `field` and `rule`, checking
/// that its line reads `file: field: …`.
fn operator_error(text: &str) -> (String, &'static str) {
    let err = load_operator(&[("blogapp.toml", text)]).expect_err("the file should be refused");
    assert_eq!(err.errors.len(), 1, "{err}");
    let e = &err.errors[0];
    let line = e.to_string();
    assert!(
        e.file.ends_with("blogapp.toml") && line.starts_with(&format!("{}: {}: ", e.file, e.field)),
        "{line}"
    );
    (e.field.clone(), e.rule)
}

#[test]
fn every_builtin_template_parses_validates_and_renders() {
    let catalog = catalog();
    assert!(catalog.len() >= 12, "{} templates", catalog.len());
    for t in catalog.templates() {
        let stack = render_new(t, "demo");
        assert_eq!(stack.services.len(), t.services().len(), "{}", t.name());
        assert_eq!(
            stack
                .services
                .iter()
                .filter(|s| s.role == Role::App)
                .count(),
            1
        );
        for s in &stack.services {
            assert!(
                s.image.tag().is_some_and(|tag| tag != "latest"),
                "{}",
                s.image
            );
            for v in &s.volumes {
                assert!(!v.shared, "{}: volumes are single-writer", s.slug);
                v.validate().unwrap();
            }
            s.settings.validate().unwrap();
        }
    }
}

#[test]
fn catalog_has_the_promised_templates_at_pinned_versions() {
    let list = catalog().list();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "postgres",
        "mysql",
        "mariadb",
        "redis",
        "mongodb",
        "wordpress",
        "ghost",
        "n8n",
        "plausible",
        "uptime-kuma",
        "minio",
        "gitea",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let pg = catalog();
    let pg = pg.get("postgres").unwrap();
    assert_eq!((pg.version(), pg.category()), ("16.4", "database"));
    assert_eq!(pg.services()[0].image.to_string(), "postgres:16.4");
}

#[test]
fn database_templates_mount_their_data_volume_at_the_image_data_path() {
    let expected = [
        ("postgres", "/var/lib/postgresql/data"),
        ("mysql", "/var/lib/mysql"),
        ("mariadb", "/var/lib/mysql"),
        ("redis", "/data"),
        ("mongodb", "/data/db"),
    ];
    let catalog = catalog();
    for (name, path) in expected {
        let stack = render_new(catalog.get(name).unwrap(), "data");
        let s = &stack.services[0];
        assert_eq!(s.volumes.len(), 1, "{name}");
        assert_eq!(s.volumes[0].mount_path, path, "{name}");
        assert_eq!(s.volumes[0].name, "clank-shop-data-data");
        assert!(!s.settings.is_public, "{name}: a database is not exposed");
        assert_eq!(s.settings.health_check_path, "", "{name}: TCP health check");
    }
}

#[test]
fn wordpress_app_gets_the_companion_password_and_dns_name() {
    let t = catalog();
    let t = t.get("wordpress").unwrap();
    let stack = render_new(t, "blog");
    let db = stack.service("db").unwrap();
    let app = stack.service("app").unwrap();
    assert_eq!((db.slug.as_str(), app.slug.as_str()), ("blog-db", "blog"));
    let db_pw = config(db, "MARIADB_PASSWORD");
    let app_pw = config(app, "WORDPRESS_DB_PASSWORD");
    assert!(db_pw.is_secret() && app_pw.is_secret());
    assert_eq!(db_pw.value.expose(), app_pw.value.expose());
    assert_eq!(db_pw.value.expose().len(), 48, "24 bytes, hex");
    let host = config(app, "WORDPRESS_DB_HOST");
    assert!(!host.is_secret());
    assert_eq!(host.value.expose(), db.slug);
    assert_eq!(app.depends_on, ["blog-db"]);
    assert_eq!(app.volumes[0].mount_path, "/var/www/html");
}

#[test]
fn companions_are_ordered_before_the_app() {
    let t = catalog();
    let stack = render_new(t.get("plausible").unwrap(), "stats");
    let order: Vec<&str> = stack.services.iter().map(|s| s.slug.as_str()).collect();
    assert_eq!(order, ["stats-db", "stats-events", "stats"]);
    let app = stack.service("app").unwrap();
    let url = config(app, "DATABASE_URL");
    assert!(url.is_secret(), "a URL carrying a password is secret");
    assert!(url.value.expose().contains("@stats-db:5432/plausible_db"));
    assert_eq!(
        config(app, "CLICKHOUSE_DATABASE_URL").value.expose(),
        "http://stats-events:8123/plausible_events_db"
    );
    assert_eq!(config(app, "SECRET_KEY_BASE").value.expose().len(), 128);
}

#[test]
fn generated_secrets_are_secret_and_differ_between_renders() {
    let t = catalog();
    let t = t.get("n8n").unwrap();
    let a = render_new(t, "flows");
    let b = render_new(t, "flows");
    for name in ["db_password", "encryption_key"] {
        assert!(a.values[name].is_secret(), "{name}");
        assert_ne!(a.values[name], b.values[name], "{name} regenerated equal");
    }
    let key = config(a.service("app").unwrap(), "N8N_ENCRYPTION_KEY");
    assert!(key.is_secret());
    let shown = format!("{:?} {}", a, key.value);
    assert!(
        !shown.contains(key.value.expose()),
        "a secret leaked into Debug/Display"
    );
    assert_eq!(a.values["timezone"], VarValue::Plain("UTC".into()));
}

#[test]
fn url_variable_is_public_when_routed_with_an_endpoint_and_internal_otherwise() {
    let t = catalog();
    let t = t.get("ghost").unwrap();
    let internal = render_new(t, "news");
    assert_eq!(
        config(internal.service("app").unwrap(), "url")
            .value
            .expose(),
        "http://news:2368"
    );
    let mut ctx = ctx();
    ctx.endpoint = Some(Endpoint::PublicDirect {
        domains: vec!["news.example.com".into()],
        tls: TlsMode::Acme,
    });
    let public = render(t, "news", &BTreeMap::new(), &Values::new(), &ctx).unwrap();
    let app = public.service("app").unwrap();
    assert_eq!(
        config(app, "url").value.expose(),
        "https://news.example.com"
    );
    assert_eq!(app.endpoint, ctx.endpoint);
    assert_eq!(public.service("db").unwrap().endpoint, None);
}

#[test]
fn inputs_override_defaults_and_unknown_or_generated_names_are_refused() {
    let t = catalog();
    let t = t.get("postgres").unwrap();
    let inputs = BTreeMap::from([("database".to_owned(), "shop".to_owned())]);
    let stack = render(t, "pg", &inputs, &Values::new(), &ctx()).unwrap();
    assert_eq!(
        config(&stack.services[0], "POSTGRES_DB").value.expose(),
        "shop"
    );
    for (name, rule) in [("nope", "unknown_variable"), ("password", "not_an_input")] {
        let inputs = BTreeMap::from([(name.to_owned(), "x".to_owned())]);
        match render(t, "pg", &inputs, &Values::new(), &ctx()) {
            Err(RenderError::Invalid(e)) => {
                assert_eq!((e.field, e.rule), (format!("inputs.{name}"), rule))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(render(t, "Bad Name", &BTreeMap::new(), &Values::new(), &ctx()).is_err());
}

#[test]
fn required_input_without_a_value_is_refused() {
    let text = GOOD.replace(
        "pw = { kind = \"secret\", bytes = 16 }",
        "pw = { kind = \"secret\", bytes = 16 }\nadmin = { kind = \"input\", required = true }",
    );
    let t = Template::parse("blogapp.toml", &text).unwrap();
    let err = render(&t, "b", &BTreeMap::new(), &Values::new(), &ctx()).unwrap_err();
    assert!(
        matches!(err, RenderError::Invalid(e) if e.rule == "required" && e.field == "inputs.admin")
    );
}

#[test]
fn redis_password_reaches_the_command_through_env_only() {
    let t = catalog();
    let stack = render_new(t.get("redis").unwrap(), "cache");
    let s = &stack.services[0];
    let pw = config(s, "REDIS_PASSWORD");
    let command = s.processes["web"].command.clone().unwrap().join(" ");
    assert!(
        command.contains("--requirepass \"$REDIS_PASSWORD\""),
        "{command}"
    );
    assert!(!command.contains(pw.value.expose()));
}

#[test]
fn upgrade_keeps_existing_secrets_and_reports_the_image_change() {
    let catalog = catalog();
    let old = catalog.get("wordpress").unwrap();
    let first = render_new(old, "blog");
    let newer = wordpress_with(old, "6.7", "wordpress:6.7-apache", "");
    let plan = upgrade_plan(old, &newer, "blog", &first.values, &ctx()).unwrap();
    assert_eq!(
        (plan.from_version.as_str(), plan.to_version.as_str()),
        ("6.6", "6.7")
    );
    assert_eq!(plan.stack.values, first.values, "no secret regenerated");
    assert_eq!(
        plan.changes,
        vec![Change::Image {
            service: "blog".into(),
            from: "wordpress:6.6-apache".parse().unwrap(),
            to: "wordpress:6.7-apache".parse().unwrap(),
        }]
    );
    let app = plan.stack.service("app").unwrap();
    assert_eq!(
        config(app, "WORDPRESS_DB_PASSWORD").value,
        first.values["db_password"]
    );
    assert!(
        plan.to_string()
            .contains("~ blog: image wordpress:6.6-apache -> wordpress:6.7-apache")
    );
}

#[test]
fn upgrade_lists_new_variables_and_config_with_secrets_masked() {
    let catalog = catalog();
    let old = catalog.get("wordpress").unwrap();
    let first = render_new(old, "blog");
    let newer = wordpress_with(
        old,
        "6.7",
        "wordpress:6.7-apache",
        "WORDPRESS_AUTH_KEY = \"${auth_key}\"\n",
    );
    let plan = upgrade_plan(old, &newer, "blog", &first.values, &ctx()).unwrap();
    let key = plan.stack.values["auth_key"].clone();
    assert!(key.is_secret());
    assert!(plan.changes.contains(&Change::VariableAdded {
        name: "auth_key".into(),
        value: key.clone()
    }));
    assert!(
        plan.changes
            .iter()
            .any(|c| matches!(c, Change::ConfigAdded { key, .. } if key == "WORDPRESS_AUTH_KEY"))
    );
    let shown = format!("{plan}\n{plan:?}");
    assert!(shown.contains("+ variable auth_key=********"), "{shown}");
    assert!(!shown.contains(key.expose()));
    assert!(!shown.contains(first.values["db_password"].expose()));
}

/// The WordPress template at another version and image, with `extra_env` added to the app
/// (and an `auth_key` secret defined when it is used).
fn wordpress_with(old: &Template, version: &str, image: &str, extra_env: &str) -> Template {
    let text = BUILTIN
        .iter()
        .find(|(f, _)| *f == "wordpress.toml")
        .unwrap()
        .1
        .replace("version = \"6.6\"", &format!("version = \"{version}\""))
        .replace(
            "image = \"wordpress:6.6-apache\"",
            &format!("image = \"{image}\""),
        )
        .replace(
            "WORDPRESS_DB_NAME = \"wordpress\"\n",
            &format!("WORDPRESS_DB_NAME = \"wordpress\"\n{extra_env}"),
        )
        .replace(
            "[variables]\n",
            if extra_env.is_empty() {
                "[variables]\n"
            } else {
                "[variables]\nauth_key = { kind = \"secret\", bytes = 32 }\n"
            },
        );
    assert_eq!(old.name(), "wordpress");
    Template::parse("wordpress.toml", &text).unwrap()
}

#[test]
fn operator_file_reports_latest_tag() {
    let text = GOOD.replace("ghcr.io/acme/blog:1.0", "ghcr.io/acme/blog:latest");
    assert_eq!(
        operator_error(&text),
        ("services[1].image".into(), "latest")
    );
    let text = GOOD.replace("ghcr.io/acme/blog:1.0", "ghcr.io/acme/blog");
    assert_eq!(
        operator_error(&text),
        ("services[1].image".into(), "unpinned")
    );
}

#[test]
fn operator_file_reports_undefined_variable() {
    let text = GOOD.replace("${pw}@", "${password}@");
    assert_eq!(
        operator_error(&text),
        ("services[1].env.DATABASE_URL".into(), "undefined_variable")
    );
}

#[test]
fn operator_file_reports_dependency_cycle() {
    let text = GOOD.replace(
        "role = \"companion\"\n",
        "role = \"companion\"\ndepends_on = [\"app\"]\n",
    );
    let err = load_operator(&[("blogapp.toml", &text)]).unwrap_err();
    let e = &err.errors[0];
    assert_eq!((e.field.as_str(), e.rule), ("services.depends_on", "cycle"));
    assert!(e.message.contains("db -> app -> db"), "{}", e.message);
}

#[test]
fn operator_file_reports_unknown_field() {
    let text = GOOD.replace("routed = true", "routed = true\nexposed = true");
    assert_eq!(
        operator_error(&text),
        ("services[1].exposed".into(), "unknown_field")
    );
    let text = GOOD.replace("category = \"cms\"", "category = \"cms\"\nauthor = \"me\"");
    assert_eq!(operator_error(&text), ("author".into(), "unknown_field"));
    let text = GOOD.replace("bytes = 16", "bytes = 16, lenght = 3");
    assert_eq!(
        operator_error(&text),
        ("variables.pw.lenght".into(), "unknown_field")
    );
    let text = GOOD.replace(
        "health_check_path = \"/health\"",
        "health_check_path = \"/health\", prot = 1",
    );
    assert_eq!(
        operator_error(&text),
        ("services[1].settings.prot".into(), "unknown_field")
    );
    let text = GOOD.replace(
        "path = \"/var/lib/postgresql/data\" }",
        "path = \"/var/lib/postgresql/data\", shared = true }",
    );
    assert_eq!(
        operator_error(&text),
        ("services[0].volumes[0].shared".into(), "unknown_field")
    );
}

#[test]
fn operator_file_reports_relative_mount_path_and_missing_data_volume() {
    let text = GOOD.replace(
        "routed = true",
        "routed = true\nvolumes = [{ name = \"up\", path = \"uploads\" }]",
    );
    assert_eq!(
        operator_error(&text),
        ("services[1].volumes[0].path".into(), "not_absolute")
    );
    let text = GOOD.replace("/var/lib/postgresql/data", "/srv/pg");
    assert_eq!(
        operator_error(&text),
        ("services[0].volumes".into(), "data_path")
    );
}

#[test]
fn operator_file_reports_other_rules() {
    let cases: [(String, &str, &str); 6] = [
        (GOOD.replace("depends_on = [\"db\"]", "depends_on = [\"cache\"]"), "services[1].depends_on[0]", "unknown_service"),
        (GOOD.replace("role = \"companion\"\n", "routed = true\n"), "services", "one_app"),
        (GOOD.replace("role = \"companion\"\n", "role = \"companion\"\nrouted = true\nsettings = { port = 5432, health_check_path = \"\" }\n").replace("settings = { port = 5432, health_check_path = \"\" }\nenv", "env"), "services", "multiple_routed"),
        (GOOD.replace("bytes = 16", "bytes = 4"), "variables.pw.bytes", "range"),
        (GOOD.replace("slug = \"db\"", "slug = \"Db\""), "services[0].slug", "charset"),
        (GOOD.replace("image = \"ghcr.io/acme/blog:1.0\"", "image = \"ghcr.io/acme/blog:1.0\"\ncommand = [\"run\", \"--pw=${pw}\"]"), "services[1].command[1]", "secret_in_command"),
    ];
    for (text, field, rule) in cases {
        assert_eq!(operator_error(&text), (field.to_owned(), rule), "{text}");
    }
}

#[test]
fn operator_file_must_be_named_after_its_template() {
    let err = load_operator(&[("other.toml", GOOD)]).unwrap_err();
    assert_eq!(err.errors[0].rule, "file_name");
}

#[test]
fn operator_file_overrides_a_builtin_and_extends_the_catalog() {
    let postgres = GOOD
        .replace("name = \"blogapp\"", "name = \"postgres\"")
        .replace("version = \"1.0\"", "version = \"17.0\"");
    let catalog = load_operator(&[("postgres.toml", &postgres), ("blogapp.toml", GOOD)]).unwrap();
    assert_eq!(catalog.len(), BUILTIN.len() + 1);
    let pg = catalog.get("postgres").unwrap();
    assert_eq!(pg.version(), "17.0");
    assert!(pg.file().ends_with("postgres.toml") && !pg.file().starts_with("templates/"));
    assert_eq!(catalog.get("blogapp").unwrap().services().len(), 2);
}

#[test]
fn every_broken_file_is_reported_at_once() {
    let err = load_operator(&[
        ("a.toml", "name = "),
        (
            "blogapp.toml",
            &GOOD.replace("1.0\"\ncategory", "1.0\"\ncategory = \"cms\"\nx = 1\n#"),
        ),
    ])
    .unwrap_err();
    assert_eq!(err.errors.len(), 2, "{err}");
    assert!(
        err.errors[0].file.ends_with("a.toml") && err.errors[0].field.starts_with("line "),
        "{err}"
    );
}

#[test]
fn missing_operator_directory_is_an_error_naming_it() {
    let err = Catalog::load(Some(Path::new("/nonexistent/clank-templates"))).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/clank-templates: "),
        "{err}"
    );
}

#[test]
fn latest_tag_error_reads_file_field_rule_message() {
    let text = BUILTIN
        .iter()
        .find(|(f, _)| *f == "wordpress.toml")
        .unwrap()
        .1
        .replace("wordpress:6.6-apache", "wordpress:latest");
    let err = Template::parse("templates/wordpress.toml", &text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "templates/wordpress.toml: services[1].image: must pin a tag, not \"latest\""
    );
}

#[test]
fn upgrade_to_the_same_version_changes_nothing_even_without_stored_values() {
    let t = catalog();
    let pg = t.get("postgres").unwrap();
    let plan = upgrade_plan(pg, pg, "pg", &Values::new(), &ctx()).unwrap();
    assert!(
        plan.changes
            .iter()
            .all(|c| matches!(c, Change::VariableAdded { .. })),
        "{plan}"
    );
    let first = render_new(pg, "pg");
    let plan = upgrade_plan(pg, pg, "pg", &first.values, &ctx()).unwrap();
    assert!(plan.is_empty(), "{plan}");
}
