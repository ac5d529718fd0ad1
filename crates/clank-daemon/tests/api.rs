//! The real daemon, in-process on a loopback port with a fresh data directory, driven over
//! HTTP: the whole lifecycle on the real Docker Engine (the role matrix is in `roles.rs`),
//! authentication, bad input, cross-tenant isolation, and secret masking (in every response
//! and in the log output of the run).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

mod common;

use common::{Daemon, SVC, on_docker, remove_project_containers, service_with_project};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Everything the daemon logs during this test binary, to prove secrets never reach it.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer_buf = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(clank_daemon::log_filter("debug"))
            .with_writer(move || LogWriter(writer_buf.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The daemon on the Docker Engine, its log captured; `None` (skipped) without Docker. With
/// `proxy`, the embedded proxy serves on a loopback port of its own.
async fn start_on_docker(proxy: bool) -> Option<Daemon> {
    captured_logs();
    on_docker(proxy).await
}

async fn wait_status(d: &Daemon, token: &str, n: u64, want: &str) -> Value {
    for _ in 0..600 {
        let v = d
            .ok(token, Method::GET, &format!("{SVC}/deployments/{n}"), None)
            .await;
        if v["status"] == want {
            return v;
        }
        if ["FAILED", "CANCELLED", "SUPERSEDED"].contains(&v["status"].as_str().unwrap())
            && v["status"] != want
        {
            panic!("deployment #{n} ended {}: {}", v["status"], v["reason"]);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment #{n} never became {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_lifecycle_over_http_with_secrets_masked_everywhere() {
    let Some(d) = start_on_docker(false).await else {
        return;
    };
    remove_project_containers("shop").await;
    let owner = d.init().await;
    service_with_project(&d, &owner).await;
    let secret = "s3cr3t-value-7f1c9a";
    let changes = json!({"changes": [{"key": "GREETING", "value": "one"}, {"key": "API_KEY", "value": secret, "secret": true}]});
    let vars = d
        .ok(
            &owner,
            Method::PATCH,
            &format!("{SVC}/config"),
            Some(changes),
        )
        .await;
    assert!(
        vars.as_array()
            .unwrap()
            .iter()
            .any(|v| v["key"] == "API_KEY" && v["value"] == "********")
    );
    d.ok(
        &owner,
        Method::PATCH,
        "/v1/workspaces/acme/projects/shop/config",
        Some(json!({"changes": [{"key": "REGION", "value": "eu"}]})),
    )
    .await;
    let resolved = d
        .ok(&owner, Method::GET, &format!("{SVC}/config/resolved"), None)
        .await;
    let region = resolved
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "REGION")
        .unwrap();
    assert!(
        region["source"].as_str().unwrap().starts_with("project:"),
        "provenance: {region}"
    );

    let v1 = d
        .ok(
            &owner,
            Method::POST,
            &format!("{SVC}/deployments"),
            Some(json!({})),
        )
        .await;
    assert_eq!(v1["number"], 1);
    let v1 = wait_status(&d, &owner, 1, "ACTIVE").await;
    let cfg = serde_json::to_string(&v1["config"]).unwrap();
    assert!(cfg.contains("********") && !cfg.contains(secret));

    // Follow a second deploy over SSE from request to ACTIVE.
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{SVC}/config"),
        Some(json!({"changes": [{"key": "GREETING", "value": "two"}]})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{SVC}/deployments"),
        Some(json!({})),
    )
    .await;
    let sse = d
        .http
        .get(d.url(&format!("{SVC}/deployments/2/events")))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), StatusCode::OK);
    let text = tokio::time::timeout(Duration::from_secs(60), sse.text())
        .await
        .expect("the stream ends at ACTIVE")
        .unwrap();
    assert!(text.contains("event: status"), "{text}");
    assert!(text.contains("\"to\":\"ACTIVE\""), "{text}");
    d.bodies.lock().unwrap().push(text);

    let rb = d
        .ok(
            &owner,
            Method::POST,
            &format!("{SVC}/deployments/1/rollback"),
            Some(json!({})),
        )
        .await;
    assert_eq!(rb["trigger"]["kind"], "rollback_of");
    let n = rb["number"].as_u64().unwrap();
    let v3 = wait_status(&d, &owner, n, "ACTIVE").await;
    let greeting = v3["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "GREETING")
        .unwrap();
    assert_eq!(greeting["value"], "one", "rollback restored v1's config");
    let log = d
        .ok(
            &owner,
            Method::GET,
            &format!("{SVC}/deployments/{n}/log"),
            None,
        )
        .await;
    assert!(log.as_array().unwrap().iter().any(|l| {
        l["message"]
            .as_str()
            .unwrap()
            .contains("HEALTH_CHECKING → ACTIVE")
    }));
    let list = d
        .ok(
            &owner,
            Method::GET,
            &format!("{SVC}/deployments?limit=2"),
            None,
        )
        .await;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .map(|d| d["number"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 2]
    );

    // Cancel of a finished deployment is a 409 with a reason.
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{SVC}/deployments/1/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    for body in d.bodies.lock().unwrap().iter() {
        assert!(
            !body.contains(secret),
            "a response leaked the secret: {body}"
        );
    }
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "log capture works");
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
    assert!(
        leaks.is_empty(),
        "the log output leaked the secret:\n{}",
        leaks.join("\n")
    );
    d.stop_whatever_the_outcome().await;
    remove_project_containers("shop").await;
}

/// (method, path, body, permission needed). Paths use the test's workspace and names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_tenant_isolation() {
    let Some(d) = start_on_docker(false).await else {
        return;
    };
    let owner = d.init().await;
    let (s, v) = d
        .call(None, Method::GET, "/v1/workspaces/acme/projects", None)
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (s, _) = d
        .call(
            Some("clank_not-a-real-token"),
            Method::GET,
            "/v1/workspaces/acme/projects",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A second init is refused.
    let (s, _) = d
        .call(
            None,
            Method::POST,
            "/v1/init",
            Some(json!({"workspace": "evil", "name": "E", "email": "e@example.com"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Another workspace's paths are 404 for this token, never 403 (no probing).
    let (s, _) = d
        .call(
            Some(&owner),
            Method::GET,
            "/v1/workspaces/other/projects",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A revoked token stops working at once.
    let t = d
        .ok(
            &owner,
            Method::POST,
            "/v1/workspaces/acme/tokens",
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    let ci = t["token"].as_str().unwrap();
    d.ok(ci, Method::GET, "/v1/workspaces/acme/projects", None)
        .await;
    let (s, _) = d
        .call(
            Some(&owner),
            Method::DELETE,
            &format!("/v1/workspaces/acme/tokens/{}", t["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = d
        .call(Some(ci), Method::GET, "/v1/workspaces/acme/projects", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A token cannot be minted above its holder's role.
    let viewer = d
        .ok(
            &owner,
            Method::POST,
            "/v1/workspaces/acme/tokens",
            Some(json!({"name": "v", "role": "viewer"})),
        )
        .await;
    let (s, v) = d
        .call(
            viewer["token"].as_str(),
            Method::POST,
            "/v1/workspaces/acme/tokens",
            Some(json!({"name": "up", "role": "owner"})),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::FORBIDDEN, Some("role"))
    );
    d.stop_whatever_the_outcome().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_naming_the_field_and_changes_nothing() {
    let Some(d) = start_on_docker(false).await else {
        return;
    };
    let owner = d.init().await;
    let projects = "/v1/workspaces/acme/projects";
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "Shop", "slug": "../etc"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "slug",
        ),
        (
            json!({"name": "Shop", "slug": "a/b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "slug",
        ),
        (
            json!({"name": "Shop", "slug": "$(reboot)"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "slug",
        ),
        (
            json!({"name": "Shop", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"slug": "shop"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            json!({"name": "\u{0}"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
    ];
    for (body, status, field) in cases {
        let (s, v) = d
            .call(Some(&owner), Method::POST, projects, Some(body.clone()))
            .await;
        assert_eq!(s, status, "{body} → {v}");
        assert_eq!(v["field"].as_str(), Some(field), "{body} → {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let listed = d.ok(&owner, Method::GET, projects, None).await;
    assert_eq!(listed, json!([]), "refused requests created nothing");
    d.ok(
        &owner,
        Method::POST,
        projects,
        Some(json!({"name": "Shop"})),
    )
    .await;
    let services = "/v1/workspaces/acme/projects/shop/environments/production/services";
    for (body, field) in [
        (
            json!({"slug": "web", "source": {"type": "docker_image", "image": "--privileged"}}),
            "source",
        ),
        (
            json!({"slug": "web", "source": {"type": "git", "repo_url": "ext::sh -c touch% /tmp/pwned", "branch": "main"}}),
            "source.repo_url",
        ),
        (
            json!({"slug": "web", "source": {"type": "git", "repo_url": "https://example.com/r.git", "branch": "--upload-pack=touch /tmp/x"}}),
            "source.branch",
        ),
        (
            json!({"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "settings": {"port": 0}}),
            "settings.port",
        ),
        (
            json!({"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "volumes": [{"name": "data", "mount_path": "/var/../../etc"}]}),
            "volumes[0].mount_path",
        ),
    ] {
        let (s, v) = d
            .call(Some(&owner), Method::POST, services, Some(body.clone()))
            .await;
        assert!(s.is_client_error(), "{body} → {s} {v}");
        assert!(
            v["field"]
                .as_str()
                .is_some_and(|f| f.starts_with(field.split('.').next().unwrap())),
            "{body} → {v}"
        );
    }
    assert_eq!(d.ok(&owner, Method::GET, services, None).await, json!([]));
    // Oversized bodies are refused before parsing.
    let huge = "x".repeat(2 << 20);
    let (s, v) = d
        .call(
            Some(&owner),
            Method::POST,
            projects,
            Some(json!({"name": huge})),
        )
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // Unknown deployment and unknown service are 404s.
    let (s, _) = d
        .call(Some(&owner), Method::GET, &format!("{services}/nope"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    d.stop_whatever_the_outcome().await;
}

/// The audit log's view of one event, for comparing sequences.
fn audit_row(e: &Value) -> (String, String, String) {
    (
        e["action"].as_str().unwrap().to_owned(),
        e["target"].as_str().unwrap().to_owned(),
        e["outcome"]["result"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_each_change_in_order_with_actor_outcome_and_no_secret() {
    let Some(d) = start_on_docker(false).await else {
        return;
    };
    let owner = d.init().await;
    let ws = "/v1/workspaces/acme";
    let svc = format!("{ws}/projects/ledger/environments/production/services/web");
    d.ok(
        &owner,
        Method::POST,
        &format!("{ws}/projects"),
        Some(json!({"name": "Ledger"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{ws}/projects/ledger/environments"),
        Some(json!({"name": "staging"})),
    )
    .await;
    d.ok(
        &owner,
        Method::POST,
        &format!("{ws}/projects/ledger/environments/production/services"),
        Some(json!({"slug": "web", "source": {"type": "docker_image", "image": "clank-testapp:latest"}})),
    )
    .await;
    let secret = "audit-s3cr3t-41d9e2";
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{svc}/config"),
        Some(json!({"changes": [
            {"key": "API_KEY", "value": secret, "secret": true},
            {"key": "GREETING", "value": "hello"},
        ]})),
    )
    .await;
    d.ok(
        &owner,
        Method::PATCH,
        &svc,
        Some(json!({"name": "Web front"})),
    )
    .await;
    let dev = d
        .ok(
            &owner,
            Method::POST,
            &format!("{ws}/members"),
            Some(json!({"name": "Dev", "email": "dev@example.com", "role": "developer"})),
        )
        .await;
    let dev_token = dev["token"].as_str().unwrap().to_owned();
    let dev_user = dev["user"]["id"].as_str().unwrap().to_owned();
    // A Developer may not change project config: recorded as denied, under their name.
    let (s, _) = d
        .call(
            Some(&dev_token),
            Method::PATCH,
            &format!("{ws}/projects/ledger/config"),
            Some(json!({"changes": [{"key": "REGION", "value": "eu"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let deployed = d
        .ok(
            &dev_token,
            Method::POST,
            &format!("{svc}/deployments"),
            Some(json!({})),
        )
        .await;
    assert_eq!(deployed["number"], 1);
    // Cancelling a deployment that does not exist fails: recorded with its status and code.
    let (s, _) = d
        .call(
            Some(&owner),
            Method::POST,
            &format!("{svc}/deployments/9/cancel"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Developers cannot read the audit log.
    let (s, v) = d
        .call(Some(&dev_token), Method::GET, &format!("{ws}/audit"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "forbidden");

    let (s, raw) = {
        let resp = d
            .http
            .get(d.url(&format!("{ws}/audit")))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.text().await.unwrap())
    };
    assert_eq!(s, StatusCode::OK, "{raw}");
    assert!(
        !raw.contains(secret),
        "the audit log leaked a secret: {raw}"
    );
    d.bodies.lock().unwrap().push(raw.clone());
    let events: Vec<Value> = serde_json::from_str(&raw).unwrap();
    let rows: Vec<_> = events.iter().map(audit_row).collect();
    let row = |a: &str, t: &str, o: &str| (a.to_owned(), t.to_owned(), o.to_owned());
    let expected = vec![
        row(
            "deployment.cancel",
            "acme/ledger/production/web#9",
            "failed",
        ),
        row(
            "deployment.create",
            "acme/ledger/production/web",
            "succeeded",
        ),
        row("config.set", "acme/ledger", "denied"),
        row("member.create", "acme/members/dev@example.com", "succeeded"),
        row("service.update", "acme/ledger/production/web", "succeeded"),
        row("config.set", "acme/ledger/production/web", "succeeded"),
        row("service.create", "acme/ledger/production/web", "succeeded"),
        row("environment.create", "acme/ledger/staging", "succeeded"),
        row("project.create", "acme/ledger", "succeeded"),
        row("workspace.init", "acme", "succeeded"),
    ];
    assert_eq!(rows, expected, "newest first");

    // Actors: the owner's init token for their calls, the developer's own for theirs.
    let owner_user = events.last().unwrap()["actor"]["user_id"].clone();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["actor"]["kind"], "token", "{e}");
        // The deploy (1) and the refused config change (2) were the developer's.
        if i == 1 || i == 2 {
            assert_eq!(e["actor"]["user_id"], dev_user.as_str(), "{e}");
            assert_eq!(e["actor"]["token_name"], "first", "{e}");
        } else {
            assert_eq!(e["actor"]["user_id"], owner_user, "{e}");
            assert_eq!(e["actor"]["token_name"], "init", "{e}");
        }
        assert!(e["at"].as_i64().unwrap() > 0 && e["id"].is_string());
    }
    assert_eq!(events[0]["outcome"]["status"], 404);
    assert_eq!(events[0]["outcome"]["code"], "not_found");
    assert_eq!(events[1]["details"]["number"], 1);
    assert_eq!(events[4]["details"]["fields"], json!(["name"]));
    // The secret is its key and a flag; the plain value is kept.
    assert_eq!(
        events[5]["details"]["changes"],
        json!([
            {"key": "API_KEY", "op": "set", "secret": true},
            {"key": "GREETING", "op": "set", "secret": false, "value": "hello"},
        ])
    );

    // Paging: `limit`, then `before` the last id seen, continues without overlap.
    let first = d
        .ok(&owner, Method::GET, &format!("{ws}/audit?limit=3"), None)
        .await;
    let first = first.as_array().unwrap();
    assert_eq!(first.len(), 3);
    let last_id = first[2]["id"].as_str().unwrap();
    let next = d
        .ok(
            &owner,
            Method::GET,
            &format!("{ws}/audit?limit=3&before={last_id}"),
            None,
        )
        .await;
    let next: Vec<_> = next.as_array().unwrap().iter().map(audit_row).collect();
    assert_eq!(next, expected[3..6]);

    // Bad paging input is a 422 naming the field; unknown parameters are refused.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("before=../etc", "before"),
        ("colour=red", "colour"),
    ] {
        let (s, v) = d
            .call(
                Some(&owner),
                Method::GET,
                &format!("{ws}/audit?{query}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {v}");
        assert_eq!(v["field"], field, "{query}: {v}");
    }

    // A workspace's audit log is its own: another tenant's path is 404.
    let (s, _) = d
        .call(
            Some(&owner),
            Method::GET,
            "/v1/workspaces/other/audit",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let docker = clank_docker::DockerRuntime::connect().await.unwrap();
    d.stop_whatever_the_outcome().await;
    remove_project_leftovers(&docker, "ledger").await;
}

/// Remove what the daemon's workspace left of project `slug`: its containers, then its
/// network. Twice, a moment apart: a deploy cut off by the shutdown may still have had an
/// engine request in flight that creates one after the first pass.
async fn remove_project_leftovers(docker: &clank_docker::DockerRuntime, slug: &str) {
    use clank_core::runtime::{OwnerFilter, Runtime};
    let prefix = format!("clank-{slug}--");
    for pass in 0..2 {
        if pass > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        for w in docker
            .list(&OwnerFilter::default())
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|w| clank_core::runtime::unscoped_name(&w.name).starts_with(&prefix))
        {
            let _ = docker.remove(&w.id).await;
        }
        clank_testkit::testapp::docker::remove_networks_of_project(docker.client(), slug).await;
    }
}

/// One request through the embedded proxy with `host` as the Host header.
async fn via_proxy(proxy: SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let resp = clank_testkit::web::client()
        .get(format!("http://{proxy}{path}"))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_proxy_serves_a_deployed_service_by_its_domain_and_persists_the_route() {
    let Some(d) = start_on_docker(true).await else {
        return;
    };
    let proxy = d.proxy_addr.unwrap();
    let owner = d.init().await;
    let ws = "/v1/workspaces/acme";
    let svc = format!("{ws}/projects/edge/environments/production/services/web");
    d.ok(
        &owner,
        Method::POST,
        &format!("{ws}/projects"),
        Some(json!({"name": "Edge"})),
    )
    .await;
    let spec = json!({
        "slug": "web",
        "source": {"type": "docker_image", "image": "clank-testapp:latest"},
        "settings": {"health_check_interval_s": 1},
        "endpoint": {"mode": "public_direct", "domains": ["web.edge.test"]},
    });
    d.ok(
        &owner,
        Method::POST,
        &format!("{ws}/projects/edge/environments/production/services"),
        Some(spec),
    )
    .await;
    d.ok(
        &owner,
        Method::PATCH,
        &format!("{svc}/config"),
        Some(json!({"changes": [{"key": "GREETING", "value": "through-the-proxy"}]})),
    )
    .await;

    // Before any deployment the host is unknown to the proxy.
    let (s, _) = via_proxy(proxy, "web.edge.test", "/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    d.ok(
        &owner,
        Method::POST,
        &format!("{svc}/deployments"),
        Some(json!({})),
    )
    .await;
    let mut active = false;
    for _ in 0..600 {
        let v = d
            .ok(&owner, Method::GET, &format!("{svc}/deployments/1"), None)
            .await;
        match v["status"].as_str().unwrap() {
            "ACTIVE" => {
                active = true;
                break;
            }
            "FAILED" | "CANCELLED" => panic!("deployment failed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(active, "deployment #1 never became ACTIVE");

    let (s, body) = via_proxy(proxy, "web.edge.test", "/env?GREETING").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body.trim(), "through-the-proxy");
    // Host matching ignores case and port; other hosts are not routed.
    let (s, body) = via_proxy(proxy, "WEB.edge.test:8080", "/").await;
    assert_eq!((s, body.trim()), (StatusCode::OK, "testapp"));
    let (s, _) = via_proxy(proxy, "other.edge.test", "/").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The route table is persisted in the data directory.
    let routes =
        std::fs::read_to_string(d.dir.path().join("data").join(clank_daemon::ROUTES_FILE)).unwrap();
    assert!(routes.contains("web.edge.test"), "{routes}");

    let docker = clank_docker::DockerRuntime::connect().await.unwrap();
    d.stop_whatever_the_outcome().await;
    // Stopped with the daemon.
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "the proxy stops with the daemon"
    );
    remove_project_leftovers(&docker, "edge").await;
}

/// The router and the OpenAPI document are made from one list, so a route cannot go
/// undocumented; this proves the other half on the running daemon: every documented operation
/// reaches a handler, which answers JSON, where a path nothing serves gets axum's bare 404 or 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_a_handler() {
    let d = Daemon::start(clank_daemon::ApiLimits::default()).await;
    let (s, body) = d.call(None, Method::GET, "/v1/not-an-endpoint", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!body.is_object(), "an unrouted path answered {body}");
    let (s, doc) = d.call(None, Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{ws}", "acme")
            .replace("{p}", "shop")
            .replace("{e}", "production")
            .replace("{s}", "web")
            .replace("{n}", "1")
            .replace("{name}", "edge")
            .replace("{stack}", "blog")
            .replace("{t}", "ops")
            .replace("{user}", "ada@example.com")
            .replace("{id}", "0");
        assert!(
            !concrete.contains('{'),
            "{path}: a parameter this test does not fill"
        );
        for method in item.as_object().unwrap().keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (s, body) = d.call(None, m, &concrete, None).await;
            assert!(
                s != StatusCode::METHOD_NOT_ALLOWED && body.is_object(),
                "{method} {path} is documented but not routed: {s} {body}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 53, "only {operations} operations documented");
    d.stop().await;
}
