//! Git push → ACTIVE for a Node.js and a Python app without a Dockerfile, side by side with
//! the same steps by hand in the same run: `git clone`, `docker build --no-cache` of the
//! Dockerfile Clank generated for it, `docker run`, polling `/` until the first 2xx.
//!
//! Each cold round pushes a new commit that changes every file the image is built from, so
//! no build step can come from the cache on either side. Then `RUNS` no-change pushes (an
//! empty commit) go live, which reuse the image of identical inputs without building.
//! The push itself is `Engine::deploy` of the service's branch: what the push webhook calls
//! after checking the signature (about a millisecond).
//!
//! Base images: the Node.js and Python images the tests build from the host's interpreters
//! (`clank_testkit::interpreters`), given as the builder's `NODE_IMAGE` / `PYTHON_IMAGE`.
//!
//! Run: `cargo bench -p clank-benches --bench git_deploy` (`RUNS`, default 3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clank_benches::{BoxError, run};
use clank_core::Timestamp;
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Deployment, Project, Service, ServiceSource, Trigger, Workspace};
use clank_core::runtime::{OwnerFilter, Runtime};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::{Catalog, Page};
use clank_docker::{DockerImageBuilder, DockerRuntime};
use clank_engine::{Engine, EngineConfig, RouteTable};
use clank_store::RedbStore;
use clank_testkit::gitrepo::TestRepo;
use clank_testkit::{http, interpreters};

const NODE_SERVER: &str = "const http = require('http');\n\
    http.createServer((req, res) => { res.end('node NONCE\\n'); })\n\
    .listen(process.env.PORT || 8080);\n\
    process.on('SIGTERM', () => process.exit(0));\n";

const PYTHON_APP: &str = "import os, signal, sys\n\
    from http.server import BaseHTTPRequestHandler, HTTPServer\n\
    class Handler(BaseHTTPRequestHandler):\n\
    \x20   def do_GET(self):\n\
    \x20       self.send_response(200)\n\
    \x20       self.end_headers()\n\
    \x20       self.wfile.write(b'python NONCE\\n')\n\
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n\
    HTTPServer(('0.0.0.0', int(os.environ.get('PORT', '8080'))), Handler).serve_forever()\n";

/// The app's files, every one carrying `nonce`, so nothing built before can be reused.
fn app_files(framework: &str, nonce: &str) -> Vec<(String, String)> {
    let files: Vec<(&str, String)> = match framework {
        "node" => vec![
            (
                "package.json",
                format!(
                    r#"{{"name":"app-{nonce}","version":"1.0.0","scripts":{{"start":"node server.js"}}}}"#
                ),
            ),
            (
                "package-lock.json",
                format!(
                    r#"{{"name":"app-{nonce}","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{{"":{{"name":"app-{nonce}","version":"1.0.0"}}}}}}"#
                ),
            ),
            ("server.js", NODE_SERVER.replace("NONCE", nonce)),
        ],
        _ => vec![
            ("requirements.txt", format!("# {nonce}\n")),
            ("app.py", PYTHON_APP.replace("NONCE", nonce)),
        ],
    };
    files.into_iter().map(|(p, c)| (p.to_owned(), c)).collect()
}

async fn first_2xx(addr: SocketAddr) {
    loop {
        if http::get(addr, "/", Duration::from_secs(1))
            .await
            .is_ok_and(|r| (200..300).contains(&r.status))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `git clone`, `docker build --no-cache`, `docker run`, first 2xx.
async fn by_hand(
    repo: &TestRepo,
    dockerfile: &str,
    build_arg: &str,
    n: usize,
) -> Result<Duration, BoxError> {
    let work = tempfile::tempdir()?;
    let name = format!("clank-bench-git-{}-{n}", std::process::id());
    let started = Instant::now();
    let src = work.path().join("src");
    run(
        "git",
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &repo.url(),
            src.to_str().unwrap(),
        ],
        None,
    )
    .await?;
    let dockerfile_path = work.path().join("Dockerfile");
    std::fs::write(&dockerfile_path, dockerfile)?;
    run(
        "docker",
        &[
            "build",
            "--quiet",
            "--no-cache",
            "--build-arg",
            build_arg,
            "-f",
            dockerfile_path.to_str().unwrap(),
            "-t",
            &name,
            ".",
        ],
        Some(&src),
    )
    .await?;
    run(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-e",
            "PORT=8080",
            "-p",
            "127.0.0.1::8080",
            &name,
        ],
        None,
    )
    .await?;
    let port = run("docker", &["port", &name, "8080/tcp"], None).await?;
    first_2xx(port.lines().next().ok_or("no port")?.parse()?).await;
    let took = started.elapsed();
    run("docker", &["rm", "-f", &name], None).await?;
    run("docker", &["rmi", "-f", &name], None).await?;
    Ok(took)
}

struct World {
    catalog: Catalog,
    engine: Engine,
    service: Service,
}

impl World {
    async fn deploy(&self) -> Result<(Duration, Deployment), BoxError> {
        let t = Instant::now();
        let d = self
            .engine
            .deploy(self.service.id, Trigger::Manual { by: None })
            .await?;
        loop {
            let cur = self
                .catalog
                .require::<Deployment>(&d.id.to_string())
                .await?;
            match cur.state.status {
                DeploymentStatus::Active => return Ok((t.elapsed(), cur.value)),
                s if s.is_terminal() => {
                    return Err(format!("deploy ended {s}: {:?}", cur.state.reason).into());
                }
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = Arc::new(DockerRuntime::connect().await?);
    if !interpreters::ensure_node_image(runtime.client()).await?
        || !interpreters::ensure_python_image(runtime.client()).await?
    {
        return Err("the Node.js and Python base images need the host's node and python3".into());
    }
    println!(
        "| app ({runs} runs each) | clank push → ACTIVE | by hand | ratio | no-change push → ACTIVE |"
    );
    println!("|---|---|---|---|---|");
    for (framework, arg, image) in [
        ("node", "NODE_IMAGE", interpreters::NODE_IMAGE),
        ("python", "PYTHON_IMAGE", interpreters::PYTHON_IMAGE),
    ] {
        let nonce = |i: usize| format!("{framework}-{}-{i}", std::process::id());
        let first = app_files(framework, &nonce(0));
        let refs: Vec<(&str, &str)> = first
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        let repo = TestRepo::new(&refs);
        let dir = tempfile::tempdir()?;
        let catalog = Catalog::new(Arc::new(RedbStore::open(dir.path().join("bench.redb"))?));
        let now = Timestamp::now();
        let ws = Workspace::new("Bench", Some("bench"), now)?;
        catalog.create(&ws).await?;
        let slug = format!("git-{framework}-{}", std::process::id());
        let project = Project::new(ws.id, "Bench", Some(&slug), now)?;
        let env = catalog.create_project(&project, now).await?;
        let mut service = Service::new(
            ws.id,
            project.id,
            env.id,
            "web",
            ServiceSource::Git {
                repo_url: repo.url(),
                branch: "main".into(),
                dockerfile_path: None,
                build_context: None,
                credentials_secret: None,
            },
            now,
        )?;
        service.settings.health_check_interval_s = 1;
        catalog.create(&service).await?;
        let keyring = Keyring::new(KeyId::new("k1")?, Keyring::generate_key()?);
        let builder = DockerImageBuilder::new(runtime.client().clone())
            .allow_local_repositories(true)
            .with_base_image(arg, image)?;
        let engine = Engine::new(
            catalog.clone(),
            runtime.clone(),
            Arc::new(RouteTable::default()),
            keyring,
            EngineConfig::default(),
        )
        .with_builder(Arc::new(builder));
        let looping = engine.clone();
        let task = tokio::spawn(async move { looping.run(std::future::pending()).await });
        let world = World {
            catalog: catalog.clone(),
            engine,
            service: service.clone(),
        };

        let mut clank = Vec::new();
        let mut hand = Vec::new();
        for i in 1..=runs {
            let files = app_files(framework, &nonce(i));
            let refs: Vec<(&str, &str)> = files
                .iter()
                .map(|(p, c)| (p.as_str(), c.as_str()))
                .collect();
            repo.commit(&refs, "a change to every file");
            let (took, _) = world.deploy().await?;
            clank.push(took);
            let builds = catalog.builds_of(service.id, Page::all()).await?;
            let dockerfile = builds
                .items
                .last()
                .and_then(|b| b.dockerfile.clone())
                .ok_or("the build recorded no Dockerfile")?;
            hand.push(by_hand(&repo, &dockerfile, &format!("{arg}={image}"), i).await?);
        }
        let mut unchanged = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            repo.commit(&[], "no change");
            let (took, d) = world.deploy().await?;
            unchanged.push(took);
            last = Some(d);
        }
        // Where the last no-change push's time went, step by step.
        if let Some(d) = last {
            let log = world.engine.deploy_log(d.id).await?;
            let start = d.state.history[0].at;
            eprintln!("{framework}: the last no-change push, ms after the deploy request:");
            for line in log {
                eprintln!("  {:>6} {}", line.at.since(start).as_millis(), line.message);
            }
        }
        task.abort();
        let filter = OwnerFilter {
            workspace: Some(ws.id),
            ..OwnerFilter::default()
        };
        for w in runtime.list(&filter).await? {
            runtime.remove(&w.id).await?;
        }
        runtime.remove_network(&project.network_name()).await?;
        let (c, h, u) = (median(clank), median(hand), median(unchanged));
        println!(
            "| {framework} | {c:.2?} | {h:.2?} | {:.2}× | {u:.0?} |",
            c.as_secs_f64() / h.as_secs_f64()
        );
    }
    Ok(())
}
