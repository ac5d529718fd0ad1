//! The CLI as a product, against a real daemon (in-process, loopback, native processes: no
//! Docker): first errors say what to do (start the daemon or point at it, get a token, get a
//! role); every service setting the API takes — endpoint of each mode, volumes, processes'
//! commands, limits — is settable by flag; a value the daemon refuses names the flag; `clank
//! status` heads with what runs now however old its deployment, and `service list` shows the
//! ACTIVE deployment by number.

mod common;

use std::path::Path;

use clank_testkit::testapp;
use common::{Daemon, INIT, clank, native_testapp, ok, text};
use serde_json::{Value, json};

async fn json_of(url: &str, ctx: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = ok(url, ctx, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Refused with exit code `code`: the combined output.
async fn refused(url: &str, ctx: &Path, args: &[&str], code: i32) -> String {
    let o = clank(url, ctx, args).await;
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    text(&o)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("context.json");

    // Nothing listens on loopback's discard port.
    let out = refused("http://127.0.0.1:9", &ctx, &["whoami"], 1).await;
    for part in [
        "cannot reach the daemon at http://127.0.0.1:9",
        "`clank-daemon`",
        "--url",
        "CLANK_URL",
    ] {
        assert!(out.contains(part), "{part}: {out}");
    }

    let daemon = Daemon::start(dir.path(), "process", |_| {}).await;
    let url = daemon.url.clone();
    // No token yet: how to get one.
    let out = refused(&url, &ctx, &["whoami"], 3).await;
    for part in ["clank init", "clank login --token", "[401]"] {
        assert!(out.contains(part), "{part}: {out}");
    }
    ok(&url, &ctx, &INIT).await;
    ok(&url, &ctx, &["project", "create", "Shop", "--slug", "shop"]).await;
    ok(
        &url,
        &ctx,
        &["service", "create", "shop/web", "--image", "nginx:1.27"],
    )
    .await;

    // A viewer is told which role it takes and who can give it.
    let added = json_of(
        &url,
        &ctx,
        &[
            "member",
            "add",
            "vic@example.com",
            "--name",
            "Vic",
            "--role",
            "viewer",
        ],
    )
    .await;
    let viewer = added["token"].as_str().unwrap();
    let out = refused(&url, &ctx, &["--token", viewer, "deploy", "shop/web"], 3).await;
    for part in ["Developer role", "clank member set-role", "[403]"] {
        assert!(out.contains(part), "{part}: {out}");
    }
    let out = refused(&url, &ctx, &["--token", "clank-nope", "whoami"], 3).await;
    assert!(
        out.contains("token was refused") && out.contains("clank login"),
        "{out}"
    );
    daemon.stop().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_setting_is_a_flag_and_refusals_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("context.json");
    let daemon = Daemon::start(dir.path(), "process", |c| {
        c.agent_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let url = daemon.url.clone();
    ok(&url, &ctx, &INIT).await;
    ok(&url, &ctx, &["project", "create", "Shop", "--slug", "shop"]).await;
    ok(
        &url,
        &ctx,
        &["service", "create", "shop/db", "--image", "postgres:17"],
    )
    .await;
    ok(&url, &ctx, &["server", "add", "edge-1"]).await;

    let out = ok(
        &url,
        &ctx,
        &[
            "service",
            "create",
            "shop/web",
            "--image",
            "nginx:1.27",
            "--registry-secret",
            "REGISTRY_AUTH",
            "--name",
            "Web front",
            "--port",
            "8081",
            "--health-path",
            "/ready",
            "--health-interval",
            "2",
            "--health-retries",
            "5",
            "--deploy-timeout",
            "120",
            "--cpu",
            "0.25",
            "--memory",
            "256",
            "--lan-domain",
            "web.lan",
            "--volume",
            "shop-data:/data",
            "--volume",
            "shop-cache:/cache:shared",
            "--process",
            "worker=2",
            "--command",
            "worker=/bin/busybox sleep 1000",
            "--command",
            r#"web=["/bin/busybox","httpd","-f","-p","8081"]"#,
            "--depends-on",
            "db",
        ],
    )
    .await;
    assert!(
        out.contains("service `acme/shop/production/web` created")
            && out.contains("LAN domains: web.lan"),
        "{out}"
    );
    let s = json_of(&url, &ctx, &["service", "show", "shop/web"]).await;
    assert_eq!(s["name"], "Web front");
    assert_eq!(s["source"]["credentials_secret"], "REGISTRY_AUTH");
    assert_eq!(
        s["settings"],
        json!({
            "port": 8081, "health_check_path": "/ready", "health_check_interval_s": 2,
            "health_check_retries": 5, "build_timeout_s": 600, "deploy_timeout_s": 120,
            "cpu_limit": 0.25, "memory_limit_mb": 256, "auto_deploy": true, "is_public": true,
        })
    );
    assert_eq!(
        s["endpoint"],
        json!({"mode": "lan_only", "domains": ["web.lan"]})
    );
    assert_eq!(
        s["volumes"],
        json!([
            {"name": "shop-data", "mount_path": "/data"},
            {"name": "shop-cache", "mount_path": "/cache", "shared": true},
        ])
    );
    assert_eq!(
        s["processes"],
        json!({
            "web": {"command": ["/bin/busybox", "httpd", "-f", "-p", "8081"], "replicas": 1},
            "worker": {"command": ["/bin/busybox", "sleep", "1000"], "replicas": 2},
        })
    );
    assert_eq!(s["depends_on"], json!(["db"]));

    // Each endpoint mode, then none; volumes added, replaced and removed.
    let update = |args: &'static [&'static str]| {
        let (url, ctx) = (url.clone(), ctx.clone());
        async move {
            let mut all = vec!["service", "update", "shop/web"];
            all.extend_from_slice(args);
            json_of(&url, &ctx, &all).await
        }
    };
    let s = update(&[
        "--domain",
        "shop.example.com",
        "--tls-certificate",
        "SHOP_CERT",
    ])
    .await;
    assert_eq!(
        s["endpoint"],
        json!({"mode": "public_direct", "domains": ["shop.example.com"],
               "tls": {"kind": "custom", "certificate": "SHOP_CERT"}})
    );
    let s = update(&["--byo-proxy", "127.0.0.1:9000"]).await;
    assert_eq!(
        s["endpoint"],
        json!({"mode": "byo_proxy", "host_ip": "127.0.0.1", "host_port": 9000})
    );
    let s = update(&["--tailscale", "--https-port", "8443"]).await;
    assert_eq!(
        s["endpoint"],
        json!({"mode": "tailscale_https", "https_port": 8443})
    );
    let s = update(&[
        "--cloudflare-tunnel",
        "shop.example.net",
        "--tunnel-token-secret",
        "TUNNEL_TOKEN",
    ])
    .await;
    assert_eq!(
        s["endpoint"],
        json!({"mode": "cloudflare_tunnel", "hostname": "shop.example.net",
               "token_secret": "TUNNEL_TOKEN"})
    );
    let s = update(&["--no-endpoint", "--private"]).await;
    assert_eq!(s["endpoint"], Value::Null);
    assert_eq!(s["settings"]["is_public"], false);
    let s = update(&[
        "--remove-volume",
        "shop-cache",
        "--volume",
        "shop-data:/var/data",
        "--volume",
        "shop-logs:/logs",
    ])
    .await;
    assert_eq!(
        s["volumes"],
        json!([
            {"name": "shop-data", "mount_path": "/var/data"},
            {"name": "shop-logs", "mount_path": "/logs"},
        ])
    );
    let server = json_of(&url, &ctx, &["server", "show", "edge-1"]).await;
    let s = update(&["--server", "edge-1"]).await;
    assert_eq!(s["server_id"], server["id"], "{s}");
    let s = update(&["--no-server"]).await;
    assert_eq!(s["server_id"], Value::Null, "{s}");
    let s = update(&["--no-depends-on", "--no-port", "--image", "nginx:1.28"]).await;
    assert!(s.get("depends_on").is_none(), "{s}");
    assert_eq!(s["settings"]["port"], Value::Null);
    assert_eq!(s["settings"]["health_check_path"], "");
    assert_eq!(s["source"]["image"], "nginx:1.28");
    assert_eq!(
        s["source"]["credentials_secret"], "REGISTRY_AUTH",
        "a new image keeps its registry secret"
    );

    // Refusals name the flag, whether the CLI or the daemon refuses.
    let out = refused(
        &url,
        &ctx,
        &[
            "service",
            "update",
            "shop/web",
            "--volume",
            "shop-data:relative/path",
        ],
        2,
    )
    .await;
    assert!(
        out.contains("--volume: ") && out.contains("(field `volumes[0].mount_path`)"),
        "{out}"
    );
    let out = refused(
        &url,
        &ctx,
        &["service", "update", "shop/web", "--memory", "1"],
        2,
    )
    .await;
    assert!(out.contains("--memory: "), "{out}");
    let out = refused(
        &url,
        &ctx,
        &["service", "update", "shop/web", "--image", "Bad Image!"],
        2,
    )
    .await;
    assert!(
        out.contains("--image: ") && out.contains("is not a valid image reference"),
        "{out}"
    );
    let out = refused(
        &url,
        &ctx,
        &["service", "update", "shop/web", "--remove-volume", "nope"],
        2,
    )
    .await;
    assert!(out.contains("it mounts: shop-data, shop-logs"), "{out}");
    let out = refused(
        &url,
        &ctx,
        &["service", "update", "shop/web", "--server", "nope"],
        4,
    )
    .await;
    assert!(out.contains("clank server list"), "{out}");
    let out = refused(
        &url,
        &ctx,
        &[
            "stack",
            "create",
            "shop",
            "--template",
            "redis",
            "--image",
            "cache=Bad Image!",
        ],
        2,
    )
    .await;
    assert!(out.contains("--image: "), "{out}");
    refused(&url, &ctx, &["service", "update", "shop/web"], 2).await;

    // The daemon itself: a body with a bad nested value names its full path, in the user's
    // terms rather than the JSON parser's.
    let token =
        serde_json::from_str::<Value>(&std::fs::read_to_string(&ctx).unwrap()).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned();
    let r = clank_testkit::web::client()
        .post(format!(
            "{url}/v1/workspaces/acme/projects/shop/environments/production/services"
        ))
        .bearer_auth(&token)
        .json(&json!({"slug": "api", "source": {"type": "docker_image", "image": "Bad Image!"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["field"], "source.image", "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("`Bad Image!` is not a valid image reference")
            && !message.contains("line 1")
            && !message.contains("deserialize"),
        "{body}"
    );
    daemon.stop().await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_heads_with_what_runs_now_however_old_and_list_numbers_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some((daemon, url, ctx)) = native_testapp(dir.path()).await else {
        return;
    };

    // Five newer deployments that never become ACTIVE: each waits for a dependency that is
    // never deployed, and is cancelled.
    ok(
        &url,
        &ctx,
        &["service", "create", "shop/db", "--image", "postgres:17"],
    )
    .await;
    ok(
        &url,
        &ctx,
        &[
            "service",
            "update",
            "shop/web",
            "--depends-on",
            "db",
            "--image",
            "nginx:1.28",
        ],
    )
    .await;
    for n in 2..=6 {
        let d = json_of(&url, &ctx, &["deploy", "shop/web"]).await;
        assert_eq!(d["number"], n, "{d}");
        ok(&url, &ctx, &["cancel", "shop/web", &n.to_string()]).await;
    }

    let out = ok(&url, &ctx, &["status", "shop/web"]).await;
    let first: Vec<&str> = out.lines().take(3).collect();
    assert_eq!(first[0], "acme/shop/production/web", "{out}");
    assert!(
        first[1].starts_with("running: #1 ACTIVE since "),
        "what runs now comes first: {out}"
    );
    assert_eq!(
        first[2],
        format!("  image:  {}", testapp::IMAGE),
        "the running image, not the desired one: {out}"
    );
    assert!(out.contains("next deploy runs: image nginx:1.28"), "{out}");
    let recent = out.split("recent deployments:").nth(1).unwrap();
    assert!(
        recent.contains("#6") && recent.contains("#2") && !recent.contains("#1 "),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colour into a pipe: {out:?}");
    let v = json_of(&url, &ctx, &["status", "shop/web"]).await;
    assert_eq!(v["active"]["number"], 1, "{v}");
    assert_eq!(v["deployments"].as_array().unwrap().len(), 5, "{v}");

    let out = ok(&url, &ctx, &["service", "list", "shop"]).await;
    let web = out
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        web.contains("#1 ACTIVE") && web.contains("running") && web.contains("#6 "),
        "{out}"
    );
    let db = out.lines().find(|l| l.starts_with("db ")).unwrap();
    assert!(db.contains("none") && db.contains("not running"), "{out}");
    assert!(
        !out.contains(&v["active"]["id"].as_str().unwrap().to_string()),
        "no UUID: {out}"
    );
    daemon.stop().await.unwrap().unwrap();
}
