//! Memory and storage at scale (#20 item 4): 10,000 services and 100,000 deployments.
//!
//! Seeds a data directory through an embedded platform (workspace `acme` by `init`, project
//! `shop`, `SERVICES` services in `production`, `PER_SERVICE` terminal deployments each, one
//! durable commit per deployment as the engine makes them), then starts the real daemon as a
//! **separate process** (this bench binary re-executed with `CLANK_SCALE_DAEMON` set: it runs
//! `clank_daemon::serve` on a multi-threaded runtime, as `clank-daemon` does) and, over
//! loopback with keep-alive and the `init` token:
//!
//! 1. pages through every service (`GET …/services?limit=100`, then `?after=` the
//!    `X-Next-Cursor`), and for each service lists its deployments (`GET …/deployments?limit=100`);
//! 2. `GETS` random `GET …/services/{s}` and `GETS` random `GET …/deployments/{n}`;
//! 3. reads the daemon's `VmRSS` and `VmHWM` from `/proc/<pid>/status` at start, after paging
//!    and after the gets.
//!
//! It also reports the redb file's bytes per deployment and where they go (logical key and
//! value bytes per key family, read back through the store).
//!
//! Run: `cargo bench -p clank-benches --bench scale` (`SERVICES`, default 10000;
//! `PER_SERVICE`, default 10; `GETS`, default 5000; `SAMPLES=dir` writes one value of each
//! key family there). Prints a Markdown table. The daemon sets up malloc as `clank-daemon`
//! does (`clank_daemon::memory`); `MALLOC_ARENA_MAX` and `CLANK_STORE_CACHE_MB` in the
//! environment reach it.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clank_api::ServiceSpec;
use clank_core::Timestamp;
use clank_core::address::EnvironmentAddress;
use clank_core::config::ResolvedConfig;
use clank_core::deploy::DeploymentStatus;
use clank_core::image::ImageRef;
use clank_core::model::{Deployment, Service, ServiceSource, Trigger};
use clank_core::store::catalog::Versioned;
use clank_core::store::{Scan, Store};
use clank_platform::identity::{NewWorkspace, TokenDigest};
use clank_platform::{EmbeddedOptions, Platform, RuntimeChoice};
use clank_store::RedbStore;
use sha2::Digest as _;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TOKEN: &str = "clank_scale-bench-token-000000000000000000000000000000000";
const DAEMON_ENV: &str = "CLANK_SCALE_DAEMON";

fn env_var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The data directory the daemon will open.
#[allow(clippy::print_stdout)]
async fn seed(data: &std::path::Path, services: usize, per_service: usize) -> Result<(), BoxError> {
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
    let started = Instant::now();
    let mut created = Vec::with_capacity(services);
    for i in 0..services {
        let mut spec = ServiceSpec::new(
            format!("svc-{i:05}"),
            ServiceSource::DockerImage {
                image: image.clone(),
                credentials_secret: None,
            },
        );
        spec.name = Some(format!("Service {i:05}"));
        created.push(p.create_service(&env, spec).await?.id);
    }
    println!(
        "seeded {services} services in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let catalog = p.catalog();
    for id in created {
        let mut current: Versioned<Service> = catalog.require::<Service>(&id.to_string()).await?;
        for n in 0..per_service {
            let mut d = Deployment::new(
                &current,
                ResolvedConfig::default(),
                Trigger::Manual { by: None },
                Timestamp::now(),
            );
            // Terminal, so the daemon's engine has nothing to do with them: a history of
            // superseded versions with the odd failure, the newest one failed. Each went
            // through the states a real one does, so its history is as long.
            use DeploymentStatus as S;
            let path: &[DeploymentStatus] = if n + 1 == per_service || n % 4 == 3 {
                &[S::Deploying, S::Failed]
            } else {
                &[S::Deploying, S::HealthChecking, S::Active, S::Superseded]
            };
            let settings = d.snapshot.settings.clone();
            d.state.set_image(image.clone())?;
            for to in path {
                let reason = match to {
                    S::Failed => Some("seeded by the scale bench: health check failed".to_owned()),
                    S::Superseded => Some(format!("superseded by #{}", d.number + 1)),
                    _ => None,
                };
                let at = Timestamp::now();
                d.state.transition(*to, reason, &settings, at)?;
            }
            let mut next = current.value.clone();
            next.next_deployment_number += 1;
            let version = catalog.create_deployment(&current, &d).await?;
            current = Versioned {
                value: next,
                version,
            };
        }
    }
    println!(
        "seeded {} deployments in {:.1} s",
        services * per_service,
        started.elapsed().as_secs_f64()
    );
    drop(p);
    Ok(())
}

/// Open the store once the platform has let go of it (its engine task stops asynchronously).
/// Also returns how long the successful open took (it may compact the file).
async fn reopen(path: &std::path::Path) -> Result<(RedbStore, Duration), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let started = Instant::now();
        match RedbStore::open(path) {
            Ok(s) => return Ok((s, started.elapsed())),
            Err(e) if Instant::now() > deadline => return Err(e.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Logical bytes per key family (`rec/deployment`, `idx/deployment/service`, …): count, key
/// bytes and value bytes as the store returns them (the record's JSON, before any encoding).
/// With `SAMPLES` set to a directory, writes the last value of each family there (the
/// material of clank-store's compression dictionary).
async fn breakdown(store: &RedbStore) -> Result<BTreeMap<String, (usize, usize, usize)>, BoxError> {
    let samples = std::env::var_os("SAMPLES").map(std::path::PathBuf::from);
    let mut families: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut scan = Scan::prefix("").limit(4096);
        if let Some(a) = &after {
            scan = scan.after(a.clone());
        }
        let page = store.scan(scan).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        for e in &page {
            let parts: Vec<&str> = e.key.splitn(4, '/').collect();
            let family = match parts[0] {
                "idx" => parts[..3.min(parts.len())].join("/"),
                _ => parts[..2.min(parts.len())].join("/"),
            };
            if let Some(dir) = &samples {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join(family.replace('/', "_")), &e.value)?;
            }
            let f = families.entry(family).or_default();
            f.0 += 1;
            f.1 += e.key.len();
            f.2 += e.value.len();
        }
    }
    Ok(families)
}

/// Where the file's bytes go, as redb counts them (the open may have compacted it).
fn space_of(store: &RedbStore) -> String {
    match store.space() {
        Ok(s) => format!(
            "file {:.1} MiB: stored keys and values {:.1} MiB, metadata {:.1} MiB, \
             free or unused {:.1} MiB; {} leaf pages, {} branch pages",
            s.file_bytes as f64 / 1_048_576.0,
            s.stored_bytes as f64 / 1_048_576.0,
            s.metadata_bytes as f64 / 1_048_576.0,
            s.fragmented_bytes as f64 / 1_048_576.0,
            s.leaf_pages,
            s.branch_pages
        ),
        Err(e) => format!("unknown: {e}"),
    }
}

/// The daemon half: serve the data directory in `CLANK_SCALE_DAEMON` on a loopback port and
/// print the address, until stdin closes.
fn daemon_main(data: std::path::PathBuf) -> Result<(), BoxError> {
    // What `clank-daemon`'s main does before and beside `serve`.
    clank_daemon::memory::tune_allocator();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        tokio::spawn(clank_daemon::memory::trim_periodically(
            clank_daemon::memory::TRIM_INTERVAL,
        ));
        let settings = clank_daemon::Settings::from(clank_daemon::DaemonConfig {
            listen: "127.0.0.1:0".parse()?,
            data_dir: data,
            runtime: "process".into(),
            proxy: None,
            agent_listen: None,
            ..clank_daemon::DaemonConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        #[allow(clippy::print_stdout)]
        {
            println!("{}", listener.local_addr()?);
        }
        // Stop when the parent closes our stdin (or dies).
        let stop = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = String::new();
                let _ = std::io::stdin().read_line(&mut sink);
            })
            .await;
        };
        clank_daemon::serve(settings, listener, stop).await?;
        Ok(())
    })
}

struct DaemonProcess {
    child: Child,
    addr: String,
}

impl DaemonProcess {
    fn status_kib(&self, field: &str) -> Result<u64, BoxError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .ok_or("no such field in /proc/<pid>/status")?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?)
    }

    /// The daemon's resident memory by kind of mapping: the main heap, anonymous mappings
    /// (glibc's per-thread arenas, thread stacks, redb's cache pages when large), files.
    fn rss_by_mapping(&self) -> Result<String, BoxError> {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.child.id()))?;
        let (mut heap, mut anon, mut files, mut anon_maps) = (0u64, 0u64, 0u64, 0usize);
        let mut kind = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or_default();
            if first.contains('-') && !first.ends_with(':') {
                let name = line.split_whitespace().nth(5).unwrap_or_default();
                kind = match name {
                    "[heap]" => 0,
                    "" => 1,
                    _ => 2,
                };
            } else if first == "Rss:" {
                let kib: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                match kind {
                    0 => heap += kib,
                    1 => {
                        anon += kib;
                        if kib > 0 {
                            anon_maps += 1;
                        }
                    }
                    _ => files += kib,
                }
            }
        }
        Ok(format!(
            "[heap] {:.1} MiB, anonymous {:.1} MiB in {anon_maps} mappings, files {:.1} MiB",
            heap as f64 / 1024.0,
            anon as f64 / 1024.0,
            files as f64 / 1024.0
        ))
    }

    fn rss(&self) -> Result<String, BoxError> {
        Ok(format!(
            "{:.1} MiB (peak {:.1})",
            self.status_kib("VmRSS:")? as f64 / 1024.0,
            self.status_kib("VmHWM:")? as f64 / 1024.0
        ))
    }
}

/// Start the daemon half. `DAEMON_WRAPPER` (e.g. `heaptrack`) runs it under that command, for
/// a heap profile; the RSS figures are then the wrapper's, not the daemon's.
fn spawn_daemon(data: &std::path::Path) -> Result<DaemonProcess, BoxError> {
    let exe = std::env::current_exe()?;
    let mut command = match std::env::var_os("DAEMON_WRAPPER") {
        Some(wrapper) => {
            let mut c = Command::new(wrapper);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .env(DAEMON_ENV, data)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stdout = std::io::BufReader::new(stdout);
    // The first line that is an address (a wrapper may print before the daemon does).
    let mut addr = String::new();
    let mut line = String::new();
    while stdout.read_line(&mut line)? > 0 {
        if line.trim().parse::<std::net::SocketAddr>().is_ok() {
            addr = line.trim().to_owned();
            break;
        }
        line.clear();
    }
    // Keep draining what the wrapper prints, so it never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    if addr.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the daemon process printed no address".into());
    }
    Ok(DaemonProcess { child, addr })
}

struct Timings(Vec<f64>);

impl Timings {
    fn summary(&mut self) -> String {
        let t = &mut self.0;
        t.sort_by(f64::total_cmp);
        let at = |q: f64| t[((t.len() as f64 * q).ceil() as usize).clamp(1, t.len()) - 1];
        format!(
            "{:.2} / **{:.2}** / {:.2} ms ({} requests)",
            at(0.5),
            at(0.99),
            at(1.0),
            t.len()
        )
    }
}

/// GET `url` with the token; its time (request sent → last byte of the body) goes to `times`.
/// Returns the `X-Next-Cursor` header and the body.
async fn get(
    http: &reqwest::Client,
    url: &str,
    times: &mut Vec<f64>,
) -> Result<(Option<String>, Vec<u8>), BoxError> {
    let start = Instant::now();
    let r = http
        .get(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .send()
        .await?;
    let status = r.status();
    let cursor = r
        .headers()
        .get("x-next-cursor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = r.bytes().await?;
    times.push(start.elapsed().as_secs_f64() * 1e3);
    if !status.is_success() {
        return Err(format!("GET {url} → {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok((cursor, body.to_vec()))
}

/// xorshift64*: reproducible picks without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as usize % n
    }
}

#[allow(clippy::print_stdout)]
fn main() -> Result<(), BoxError> {
    if let Some(data) = std::env::var_os(DAEMON_ENV) {
        return daemon_main(data.into());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

#[allow(clippy::print_stdout)]
async fn bench() -> Result<(), BoxError> {
    let services = env_var("SERVICES", 10_000);
    let per_service = env_var("PER_SERVICE", 10);
    let gets = env_var("GETS", 5000).max(1);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    seed(&data, services, per_service).await?;

    let file = data.join("clank.redb");
    let deployments = services * per_service;
    let seeded_bytes = std::fs::metadata(&file)?.len();
    let (store, open_took) = reopen(&file).await?;
    let families = breakdown(&store).await?;
    let space = space_of(&store);
    drop(store);
    // Opening may compact; the file as the daemon will find it.
    let reopened_bytes = std::fs::metadata(&file)?.len();

    let daemon = spawn_daemon(&data)?;
    let base = format!("http://{}", daemon.addr);
    let http = clank_testkit::web::client();
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/v1/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !up {
        return Err("the daemon did not come up".into());
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_start = daemon.rss()?;
    let rss_kinds_start = daemon.rss_by_mapping()?;

    let list = format!("{base}/v1/workspaces/acme/projects/shop/environments/production/services");
    let mut list_times = Vec::new();
    let mut dep_list_times = Vec::new();
    let mut slugs = Vec::with_capacity(services);
    let mut listed_deployments = 0usize;
    let paging = Instant::now();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(c) => format!("{list}?limit=100&after={c}"),
            None => format!("{list}?limit=100"),
        };
        let (cursor, body) = get(&http, &url, &mut list_times).await?;
        after = cursor;
        let page: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
        for s in &page {
            let slug = s["slug"]
                .as_str()
                .ok_or("service without a slug")?
                .to_owned();
            let url = format!("{list}/{slug}/deployments?limit=100");
            let (_, body) = get(&http, &url, &mut dep_list_times).await?;
            let ds: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
            listed_deployments += ds.len();
            slugs.push(slug);
        }
        if after.is_none() {
            break;
        }
    }
    let paging_s = paging.elapsed().as_secs_f64();
    let rss_paged = daemon.rss()?;
    assert_eq!(slugs.len(), services, "every service listed once");
    assert_eq!(
        listed_deployments, deployments,
        "every deployment listed once"
    );

    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut get_service = Vec::with_capacity(gets);
    let mut get_deployment = Vec::with_capacity(gets);
    for _ in 0..gets {
        let slug = &slugs[rng.below(slugs.len())];
        get(&http, &format!("{list}/{slug}"), &mut get_service).await?;
        let slug = &slugs[rng.below(slugs.len())];
        let n = rng.below(per_service) + 1;
        get(
            &http,
            &format!("{list}/{slug}/deployments/{n}"),
            &mut get_deployment,
        )
        .await?;
    }
    let rss_gets = daemon.rss()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_idle = daemon.rss()?;
    let rss_kinds = daemon.rss_by_mapping()?;

    // Stop the daemon: close its stdin, then wait.
    let DaemonProcess { mut child, .. } = daemon;
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let final_bytes = std::fs::metadata(&file)?.len();

    let per_dep = |bytes: u64| {
        format!(
            "{:.1} MiB, {:.2} KiB per deployment",
            bytes as f64 / 1_048_576.0,
            bytes as f64 / 1024.0 / deployments as f64
        )
    };
    println!();
    println!("{services} services, {deployments} deployments:");
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| redb file after seeding | {} |", per_dep(seeded_bytes));
    println!(
        "| redb file after one open (took {:.2} s) | {} |",
        open_took.as_secs_f64(),
        per_dep(reopened_bytes)
    );
    println!("| redb file after the daemon | {} |", per_dep(final_bytes));
    println!("| redb space after one open | {space} |");
    println!("| daemon RSS at start (1 s after health) | {rss_start} |");
    println!("| daemon RSS by mapping at start | {rss_kinds_start} |");
    println!("| daemon RSS after paging all (in {paging_s:.1} s) | {rss_paged} |");
    println!("| daemon RSS after the gets | {rss_gets} |");
    println!("| daemon RSS after 5 s idle | {rss_idle} |");
    println!("| daemon RSS by mapping, then | {rss_kinds} |");
    println!(
        "| `GET …/services?limit=100` p50 / p99 / max | {} |",
        Timings(list_times).summary()
    );
    println!(
        "| `GET …/services/{{s}}/deployments?limit=100` ({per_service} each) p50 / p99 / max | {} |",
        Timings(dep_list_times).summary()
    );
    println!(
        "| `GET …/services/{{s}}` p50 / p99 / max | {} |",
        Timings(get_service).summary()
    );
    println!(
        "| `GET …/deployments/{{n}}` p50 / p99 / max | {} |",
        Timings(get_deployment).summary()
    );
    println!();
    println!("| key family | entries | key bytes | value bytes (logical) | per deployment |");
    println!("|---|---|---|---|---|");
    let mut total = 0usize;
    for (family, (n, k, v)) in &families {
        total += k + v;
        println!(
            "| `{family}` | {n} | {k} | {v} | {:.0} B |",
            (k + v) as f64 / deployments as f64
        );
    }
    println!(
        "| total | | | {total} | {:.0} B |",
        total as f64 / deployments as f64
    );
    Ok(())
}
