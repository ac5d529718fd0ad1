//! WordPress from Debian's `wordpress` package against its MariaDB companion, created over REST
//! as the `wordpress` stack on the released `clank-daemon` binary (real Docker Engine, fresh
//! data directory, the proxy as its own process, as in production), serves its installer page
//! through the daemon's own reverse proxy by the stack's domain — and only by that domain. The
//! app's deployment leaves PENDING only once its database is ACTIVE. Prints the time from create
//! to both ACTIVE.
//!
//! Images: `scripts/images/{mariadb,wordpress}.sh` (built once per machine from Debian's
//! mirror), passed as the stack's image overrides. Fails (never skips) without a Docker Engine
//! when CI is set. Every container, network and volume of the test's project is removed, also
//! after a panic.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clank_api::StackView;
use clank_core::deploy::DeploymentStatus;
use clank_testkit::service_images;
use common::{
    ProxyReaper, call_at, free_addr, init_at, kill_and_wait, ok_at, project_leftovers,
    remove_project_leftovers, spawn_daemon,
};
use reqwest::{Method, StatusCode};
use serde_json::json;

const DOMAIN: &str = "blog.clank.test";
/// How long the whole stack may take to become ACTIVE (MariaDB initialises its data directory,
/// WordPress copies itself onto its volume).
const WITHIN: Duration = Duration::from_secs(600);

/// The daemon process, its proxy process and every Docker object of project `project`: gone
/// when this is dropped, whatever happened to the test.
struct Stack {
    daemon: Option<tokio::process::Child>,
    project: String,
    _proxy: ProxyReaper,
}

impl Stack {
    fn leftovers(&self) -> [Vec<String>; 3] {
        project_leftovers(&self.project)
    }

    fn remove_leftovers(&self) {
        remove_project_leftovers(&self.project);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The daemon first: it would restart what is removed under it.
        kill_and_wait(self.daemon.take());
        self.remove_leftovers();
        // `_proxy` then ends the proxy process.
    }
}

/// `GET path` through the proxy at `proxy` with Host `host`: status and body. No redirect is
/// followed: what the proxy answers is what is checked.
async fn via_proxy(proxy: std::net::SocketAddr, host: &str, path: &str) -> (StatusCode, String) {
    let client = clank_testkit::web::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://{proxy}{path}"))
        .header(reqwest::header::HOST, host)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path} (Host {host}) through the proxy: {e}"));
    (resp.status(), resp.text().await.unwrap_or_default())
}

fn first_change(
    d: &clank_api::DeploymentView,
    pick: impl Fn(&clank_core::model::StatusChange) -> bool,
) -> Option<clank_core::time::Timestamp> {
    d.history.iter().find(|h| pick(h)).map(|h| h.at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wordpress_stack_serves_its_installer_through_the_daemons_proxy_by_its_domain() {
    if let Err(e) = clank_docker::DockerRuntime::connect().await {
        clank_testkit::runtime::skip_or_fail::<()>("a Docker Engine", &e.to_string());
        return;
    }
    let mariadb = service_images::build("mariadb");
    let wordpress = service_images::build("wordpress");

    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    // A project slug of this run's own: every Docker object of the test carries it.
    let tail: String = clank_core::id::StackId::new()
        .as_uuid()
        .simple()
        .to_string()
        .chars()
        .rev()
        .take(10)
        .collect();
    let project = format!("wp{tail}");
    let (api, proxy) = (free_addr(), free_addr());
    let proxy_listen = proxy.to_string();
    // The proxy runs as its own process (the default mode), serving plain HTTP on `proxy`.
    let env = [
        ("CLANK_RUNTIME", "docker"),
        ("CLANK_PROXY_LISTEN", proxy_listen.as_str()),
    ];
    let mut stack = Stack {
        daemon: None,
        project: project.clone(),
        _proxy: ProxyReaper(data.clone()),
    };
    stack.daemon = Some(spawn_daemon(&data, api, &env, Stdio::inherit()).await);

    let owner = init_at(api).await;
    let owner = owner.as_str();
    ok_at(
        api,
        Some(owner),
        Method::POST,
        "/v1/workspaces/acme/projects",
        Some(json!({"name": "Press", "slug": project})),
    )
    .await;
    let envp = format!("/v1/workspaces/acme/projects/{project}/environments/production");

    // Before the stack exists, its domain is unknown to the proxy.
    let (s, _) = via_proxy(proxy, DOMAIN, "/wp-admin/install.php").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{DOMAIN} routed before any stack");

    let began = Instant::now();
    let (s, v) = call_at(
        &clank_testkit::web::client(),
        api,
        Some(owner),
        Method::POST,
        &format!("{envp}/stacks"),
        Some(json!({
            "template": "wordpress",
            "name": "blog",
            "images": {"db": mariadb, "app": wordpress},
            "domain": DOMAIN,
        })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let created: StackView = serde_json::from_value(v).unwrap();
    let slugs: Vec<(&str, &str)> = created
        .services
        .iter()
        .map(|s| (s.template_slug.as_str(), s.service.as_str()))
        .collect();
    assert_eq!(slugs, [("db", "blog-db"), ("app", "blog")], "start order");
    assert_eq!(
        created
            .services
            .iter()
            .map(|s| s.image.as_str())
            .collect::<Vec<_>>(),
        [mariadb.as_str(), wordpress.as_str()],
        "the image overrides"
    );

    // Poll the stack until both services are ACTIVE; fail on a terminal deployment.
    let mut db_active_after = None;
    let active: StackView = loop {
        let v = ok_at(
            api,
            Some(owner),
            Method::GET,
            &format!("{envp}/stacks/blog"),
            None,
        )
        .await;
        let s: StackView = serde_json::from_value(v).unwrap();
        if db_active_after.is_none() && s.services[0].active {
            db_active_after = Some(began.elapsed());
        }
        if s.services.iter().all(|x| x.active) {
            break s;
        }
        for x in &s.services {
            let Some(d) = &x.deployment else { continue };
            if d.status.is_terminal() {
                let (_, log) = call_at(
                    &clank_testkit::web::client(),
                    api,
                    Some(owner),
                    Method::GET,
                    &format!("{envp}/services/{}/deployments/{}/log", x.service, d.number),
                    None,
                )
                .await;
                panic!(
                    "{} #{} ended {} ({:?}); deploy log:\n{log:#}",
                    x.service, d.number, d.status, d.reason
                );
            }
        }
        assert!(
            began.elapsed() < WITHIN,
            "the stack is not ACTIVE within {WITHIN:?}: {s:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let to_active = began.elapsed();

    // The app waited in PENDING for its database: it left PENDING at or after the database's
    // ACTIVE (timestamps from the deployments' own history).
    let db = active.services[0].deployment.as_ref().unwrap();
    let app = active.services[1].deployment.as_ref().unwrap();
    let db_active = first_change(db, |h| h.to == DeploymentStatus::Active)
        .unwrap_or_else(|| panic!("no ACTIVE in the database's history: {:#?}", db.history));
    let app_left_pending = first_change(app, |h| h.from == Some(DeploymentStatus::Pending))
        .unwrap_or_else(|| panic!("the app never left PENDING: {:#?}", app.history));
    assert!(
        app_left_pending >= db_active,
        "the app left PENDING at {app_left_pending:?}, before its database was ACTIVE at \
         {db_active:?}: {:#?}",
        app.history
    );
    assert_eq!(
        app.history.first().map(|h| h.to),
        Some(DeploymentStatus::Pending),
        "{:#?}",
        app.history
    );

    // Through the daemon's proxy by the stack's domain: the installer (Host matching ignores
    // the port).
    let (s, page) = via_proxy(proxy, DOMAIN, "/wp-admin/install.php").await;
    assert_eq!(s, StatusCode::OK, "{}", &page[..page.len().min(2000)]);
    assert!(
        page.contains("WordPress &rsaquo; Installation"),
        "not the installer page: {}",
        &page[..page.len().min(2000)]
    );
    let (s, page) = via_proxy(proxy, &format!("{DOMAIN}:80"), "/wp-admin/install.php").await;
    assert_eq!(s, StatusCode::OK, "{}", &page[..page.len().min(500)]);

    // Any other Host reaches no WordPress.
    for host in [
        "other.clank.test",
        "blog.clank.test.evil",
        "127.0.0.1",
        "blog-db",
    ] {
        let (s, body) = via_proxy(proxy, host, "/wp-admin/install.php").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "Host {host}: {body}");
        assert!(
            !body.contains("WordPress"),
            "Host {host} reached WordPress: {body}"
        );
    }

    eprintln!(
        "MEASURED wordpress (+ mariadb) through the daemon's proxy: create -> db ACTIVE {:.1} s, \
         create -> both ACTIVE {:.1} s (the app left PENDING {:.1} s after the db was ACTIVE)",
        db_active_after.unwrap_or(to_active).as_secs_f64(),
        to_active.as_secs_f64(),
        app_left_pending.since(db_active).as_secs_f64()
    );

    // A graceful stop of the daemon, then the project's containers, network and volumes go.
    let mut daemon = stack.daemon.take().unwrap();
    let pid = daemon.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let exited = tokio::time::timeout(Duration::from_secs(30), daemon.wait()).await;
    assert!(
        matches!(exited, Ok(Ok(_))),
        "the daemon did not exit on SIGTERM: {exited:?}"
    );
    stack.remove_leftovers();
    let left = stack.leftovers();
    assert!(
        left.iter().all(Vec::is_empty),
        "left behind (containers, networks, volumes): {left:?}"
    );
}
