//! The dashboard and the REST service list at 1,000 services: server time (request sent →
//! last byte of the body, over loopback, keep-alive) and bytes on the wire, with and without
//! `Accept-Encoding: gzip`.
//!
//! The store is seeded through an embedded platform first (workspace `acme` by `init`,
//! project `shop`, `SERVICES` services in `production`, a third of them with a FAILED
//! deployment and a sixth with a CANCELLED one before it, so the cards show statuses), then
//! the real daemon is started in-process on that data directory (native-process runtime) and
//! the dashboard is signed in to with the `init` token, as a browser does (the sign-in form's
//! double-submit cookie and CSRF field, then the session cookie).
//!
//! Before the daemon starts, the page's reads are also timed on the embedded platform: the
//! per-service calls the page made before (`deployments` + `resolved_config` for each
//! service) against the one batched `Platform::service_cards`.
//!
//! Run: `cargo bench -p clank-benches --bench dashboard` (`SERVICES`, default 1000; `REQUESTS`,
//! default 200, timed after `WARMUP`, default 20, untimed). Prints a Markdown table.

use std::time::{Duration, Instant};

use clank_api::ServiceSpec;
use clank_core::Timestamp;
use clank_core::address::{EnvironmentAddress, ServiceAddress};
use clank_core::config::ResolvedConfig;
use clank_core::deploy::DeploymentStatus;
use clank_core::image::ImageRef;
use clank_core::model::{Deployment, Service, ServiceSource, Trigger};
use clank_core::store::catalog::{Page, Versioned};
use clank_platform::identity::{NewWorkspace, TokenDigest};
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use sha2::Digest as _;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one row of the table measures: its name, the URL and the request's headers.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, String)>);

const TOKEN: &str = "clank_dashboard-bench-token-0000000000000000000000000000";

fn env_var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The store the daemon will open: `services` services, some with deployments.
async fn seed(data: &std::path::Path, services: usize) -> Result<(), BoxError> {
    let mut options = EmbeddedOptions::new(data);
    options.runtime = RuntimeChoice::Process;
    let p = Platform::open(options).await?;
    let req: NewWorkspace = serde_json::from_value(serde_json::json!({
        "workspace": "acme", "name": "Ada", "email": "ada@example.com"
    }))?;
    let digest = TokenDigest {
        hash: hex::encode(sha2::Sha256::digest(TOKEN.as_bytes())),
        prefix: TOKEN.chars().take(12).collect(),
    };
    p.init(&req, digest).await.map_err(|e| e.to_string())?;
    p.create_project("acme", "Shop", Some("shop")).await?;
    let env = EnvironmentAddress::new("acme", "shop", "production")?;
    let image = ImageRef::parse("registry.example/shop/api:1.4.2")?;
    for i in 0..services {
        let mut spec = ServiceSpec::new(
            format!("svc-{i:04}"),
            ServiceSource::DockerImage {
                image: image.clone(),
                credentials_secret: None,
            },
        );
        spec.name = Some(format!("Service {i:04}"));
        let service = p.create_service(&env, spec).await?;
        let statuses: &[DeploymentStatus] = match i % 6 {
            0 => &[DeploymentStatus::Cancelled, DeploymentStatus::Failed],
            1 | 2 => &[DeploymentStatus::Failed],
            _ => &[],
        };
        for status in statuses {
            let current: Versioned<Service> = p
                .catalog()
                .require::<Service>(&service.id.to_string())
                .await?;
            let mut d = Deployment::new(
                &current,
                ResolvedConfig::default(),
                Trigger::Manual { by: None },
                Timestamp::now(),
            );
            // Terminal, so the engine of the daemon has nothing to do with them.
            d.state.status = *status;
            d.state.reason = Some("seeded by the dashboard bench".into());
            p.catalog().create_deployment(&current, &d).await?;
        }
    }
    reads(&p, &env).await
}

/// What the project page reads, on the embedded platform: one `deployments` and one
/// `resolved_config` call per service (the page before the N+1 fix) versus one
/// `service_cards` call (with and without the config), and the service list alone, `ROUNDS`
/// times each (default 5, after one untimed round).
#[allow(clippy::print_stdout)]
async fn reads(p: &Platform, env: &EnvironmentAddress) -> Result<(), BoxError> {
    let rounds = env_var("ROUNDS", 5).max(1);
    let mut per_service = Vec::new();
    let mut batched = Vec::new();
    let mut without_config = Vec::new();
    let mut services_only = Vec::new();
    for round in 0..=rounds {
        let start = Instant::now();
        for s in p.list_services(env).await? {
            let addr =
                ServiceAddress::new(env.workspace(), env.project(), env.environment(), &s.slug)?;
            std::hint::black_box(p.deployments(&addr, 10, None).await?);
            std::hint::black_box(p.resolved_config(&addr).await?);
        }
        let n_plus_one = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        std::hint::black_box(p.service_cards(env, Page::all(), usize::MAX).await?);
        let cards = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        std::hint::black_box(p.service_cards(env, Page::all(), 0).await?);
        let cards_no_config = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        std::hint::black_box(p.list_services(env).await?);
        let list = start.elapsed().as_secs_f64() * 1e3;
        if round > 0 {
            per_service.push(n_plus_one);
            batched.push(cards);
            without_config.push(cards_no_config);
            services_only.push(list);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "the page's reads (median of {rounds}): per service (deployments + resolved_config) \
         {:.1} ms; Platform::service_cards {:.1} ms ({:.1} ms without config); \
         Platform::list_services alone {:.1} ms",
        median(&mut per_service),
        median(&mut batched),
        median(&mut without_config),
        median(&mut services_only),
    );
    service_page_reads(p, env).await
}

/// What the service page (`/ui/…/services/svc-0000`) reads, call by call as its handler makes
/// them, on the embedded platform: `READS` times each (default 200, after 10 untimed);
/// p50 / p99 / max in ms.
#[allow(clippy::print_stdout)]
async fn service_page_reads(p: &Platform, env: &EnvironmentAddress) -> Result<(), BoxError> {
    use clank_platform::{ConfigTarget, WorkloadSelector};
    use tokio_stream::StreamExt as _;

    let n = env_var("READS", 200).max(1);
    let addr = ServiceAddress::new(
        env.workspace(),
        env.project(),
        env.environment(),
        "svc-0000",
    )?;
    let project = clank_core::address::ProjectAddress::new(env.workspace(), env.project())?;
    let targets = [
        ConfigTarget::Workspace(env.workspace().to_owned()),
        ConfigTarget::Project(project.clone()),
        ConfigTarget::Environment(env.clone()),
        ConfigTarget::Service(addr.clone()),
    ];
    let mut times: Vec<(&str, Vec<f64>)> = [
        "service",
        "deployments (50 newest)",
        "resolved_config",
        "project",
        "config, 4 scopes",
        "logs (tail 200, no workload)",
        "all of them",
    ]
    .into_iter()
    .map(|name| (name, Vec::with_capacity(n)))
    .collect();
    for i in 0..n + 10 {
        let mut at = [0.0; 7];
        let all = Instant::now();
        let t = Instant::now();
        std::hint::black_box(p.service(&addr).await?);
        at[0] = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        std::hint::black_box(p.deployments(&addr, 50, None).await?);
        at[1] = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        std::hint::black_box(p.resolved_config(&addr).await?);
        at[2] = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        std::hint::black_box(p.project(&project).await?);
        at[3] = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        for target in &targets {
            std::hint::black_box(p.config(target).await?);
        }
        at[4] = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let read = async {
            let lines = p
                .logs(&addr, &WorkloadSelector::default(), false, Some(200))
                .await?;
            let lines: Vec<_> = lines.take(200).collect().await;
            Ok::<_, clank_core::Error>(lines.len())
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
        at[5] = t.elapsed().as_secs_f64() * 1e3;
        at[6] = all.elapsed().as_secs_f64() * 1e3;
        if i >= 10 {
            for (slot, ms) in times.iter_mut().zip(at) {
                slot.1.push(ms);
            }
        }
    }
    println!();
    println!("the service page's reads, {n} times each (embedded platform):");
    println!();
    println!("| read | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    for (name, mut t) in times {
        t.sort_by(f64::total_cmp);
        let at = |q: f64| t[((t.len() as f64 * q).ceil() as usize).clamp(1, t.len()) - 1];
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} |",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}

struct Daemon {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), clank_daemon::DaemonError>>,
}

async fn start(data: std::path::PathBuf) -> Result<Daemon, BoxError> {
    let settings = clank_daemon::Settings::from(clank_daemon::DaemonConfig {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data,
        runtime: "process".into(),
        proxy: None,
        agent_listen: None,
        ..clank_daemon::DaemonConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(clank_daemon::serve(settings, listener, async move {
        let _ = stopped.await;
    }));
    let probe = clank_testkit::web::client();
    for _ in 0..400 {
        if probe
            .get(format!("http://{addr}/v1/health"))
            .send()
            .await
            .is_ok()
        {
            return Ok(Daemon { addr, stop, task });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err("the daemon did not come up".into())
}

fn cookie_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

/// Sign in to the dashboard as a browser does: the session cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> Result<String, BoxError> {
    let form = http.get(format!("{base}/ui/signin")).send().await?;
    let signin = cookie_of(&form, "clank_signin").ok_or("no sign-in cookie")?;
    let page = form.text().await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or("no CSRF field on the sign-in form")?
        .to_owned();
    let body: String = form_urlencoded_pairs(&[("csrf", &csrf), ("token", TOKEN)]);
    let r = http
        .post(format!("{base}/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("clank_signin={signin}"))
        .body(body)
        .send()
        .await?;
    if r.status() != reqwest::StatusCode::SEE_OTHER {
        return Err(format!("sign-in answered {}", r.status()).into());
    }
    Ok(cookie_of(&r, "clank_session").ok_or("no session cookie")?)
}

fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    bytes: usize,
    encoding: String,
}

/// `requests` timed GETs of `url` (after `warmup` untimed ones) with `headers`.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    warmup: usize,
    requests: usize,
) -> Result<Figures, BoxError> {
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    let mut encoding = String::from("identity");
    for i in 0..warmup + requests {
        let mut r = http.get(url);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let start = Instant::now();
        let response = r.send().await?;
        let status = response.status();
        if let Some(e) = response.headers().get(reqwest::header::CONTENT_ENCODING) {
            encoding = e.to_str().unwrap_or("?").to_owned();
        }
        let body = response.bytes().await?;
        let took = start.elapsed();
        if !status.is_success() {
            return Err(format!("GET {url} → {status}").into());
        }
        bytes = body.len();
        if i >= warmup {
            times.push(took.as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Figures {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: at(1.0),
        bytes,
        encoding,
    })
}

#[tokio::main]
#[allow(clippy::print_stdout)]
async fn main() -> Result<(), BoxError> {
    let services = env_var("SERVICES", 1000);
    let requests = env_var("REQUESTS", 200).max(1);
    let warmup = env_var("WARMUP", 20);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let seeding = Instant::now();
    seed(&data, services).await?;
    println!(
        "seeded {services} services in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let daemon = start(data).await?;
    let base = format!("http://{}", daemon.addr);
    let http = clank_testkit::web::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let session = sign_in(&http, &base).await?;
    let cookie = ("cookie", format!("clank_session={session}"));
    let bearer = ("authorization", format!("Bearer {TOKEN}"));
    let gzip = ("accept-encoding", "gzip".to_owned());
    let project = format!("{base}/ui/workspaces/acme/projects/shop");
    let list = format!("{base}/v1/workspaces/acme/projects/shop/environments/production/services");
    let page = format!("{list}?limit=100");
    let service_page = format!(
        "{base}/ui/workspaces/acme/projects/shop/environments/production/services/svc-0000"
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "project page (`/ui/…/projects/shop`)",
            &project,
            vec![cookie.clone()],
        ),
        (
            "project page, `Accept-Encoding: gzip`",
            &project,
            vec![cookie.clone(), gzip.clone()],
        ),
        (
            "service page (`/ui/…/services/svc-0000`, 2 deployments)",
            &service_page,
            vec![cookie.clone()],
        ),
        (
            "REST service list (`GET …/services`)",
            &list,
            vec![bearer.clone()],
        ),
        (
            "REST service list, `Accept-Encoding: gzip`",
            &list,
            vec![bearer.clone(), gzip.clone()],
        ),
        (
            "REST service list, one page (`?limit=100`)",
            &page,
            vec![bearer.clone()],
        ),
    ];
    println!();
    println!("{services} services, {requests} requests each after {warmup} untimed:");
    println!();
    println!("| request | p50 ms | p99 ms | max ms | bytes on the wire | encoding |");
    println!("|---|---|---|---|---|---|");
    for (name, url, headers) in cases {
        let f = measure(&http, url, &headers, warmup, requests).await?;
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {} | {} |",
            f.p50_ms, f.p99_ms, f.max_ms, f.bytes, f.encoding
        );
    }
    let _ = daemon.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(15), daemon.task).await;
    Ok(())
}
