//! Deploy benchmark: time from a deploy request to ACTIVE through the engine (real Docker,
//! health-gated, route switched), side by side with the same job done by hand in the same run:
//! `docker run -d -p 127.0.0.1::8080` plus polling the health URL until the first 2xx.
//!
//! Then the same service is deployed `RUNS` times back to back with an app that ignores
//! SIGTERM (`IGNORE_TERM=1`: every superseded version keeps the runtime waiting out the 10 s
//! stop grace period), each deploy requested as soon as the previous one is ACTIVE, against
//! `RUNS` more hand-made runs.
//!
//! Run: `cargo bench -p clank-benches --bench deploy` (`RUNS` sets the sample count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clank_benches::{BoxError, docker_cli};
use clank_core::Timestamp;
use clank_core::config::{ConfigChange, ConfigLayer, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Deployment, Project, Service, ServiceSource, Trigger, Workspace};
use clank_core::runtime::{OwnerFilter, Runtime};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::Catalog;
use clank_docker::DockerRuntime;
use clank_engine::{Engine, EngineConfig, RouteTable};
use clank_store::RedbStore;
use clank_testkit::{http, testapp};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.9), v[0])
}

/// `docker run` + `docker port` + poll `/health` until 200.
async fn raw_docker_once(i: usize) -> Result<Duration, BoxError> {
    let name = format!("clank-bench-raw-{}-{i}", std::process::id());
    let started = Instant::now();
    docker_cli(&[
        "run",
        "-d",
        "--name",
        &name,
        "-p",
        "127.0.0.1::8080",
        testapp::IMAGE,
    ])
    .await?;
    let port = docker_cli(&["port", &name, "8080/tcp"]).await?;
    let addr = port.lines().next().ok_or("no port")?.parse()?;
    loop {
        if http::get(addr, "/health", Duration::from_secs(1))
            .await
            .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    docker_cli(&["rm", "-f", &name]).await?;
    Ok(took)
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let runtime = Arc::new(DockerRuntime::connect().await?);
    testapp::docker::ensure_testapp_image(runtime.client()).await?;

    let dir = tempfile::tempdir()?;
    let catalog = Catalog::new(Arc::new(RedbStore::open(dir.path().join("bench.redb"))?));
    let now = Timestamp::now();
    let ws = Workspace::new("Bench", Some("bench"), now)?;
    catalog.create(&ws).await?;
    let project = Project::new(
        ws.id,
        "Bench",
        Some(&format!("bench-{}", std::process::id())),
        now,
    )?;
    let env = catalog.create_project(&project, now).await?;
    let mut service = Service::new(
        ws.id,
        project.id,
        env.id,
        "web",
        ServiceSource::DockerImage {
            image: testapp::IMAGE.parse()?,
            credentials_secret: None,
        },
        now,
    )?;
    service.settings.health_check_interval_s = 1;
    catalog.create(&service).await?;
    let keyring = Keyring::new(KeyId::new("k1")?, Keyring::generate_key()?);
    // The default stop grace period (10 s), as the daemon runs it.
    let engine = Engine::new(
        catalog.clone(),
        runtime.clone(),
        Arc::new(RouteTable::default()),
        keyring.clone(),
        EngineConfig::default(),
    );
    let looping = engine.clone();
    let task = tokio::spawn(async move { looping.run(std::future::pending()).await });

    // Warm both paths once (image cache, network creation) before measuring.
    raw_docker_once(runs).await?;
    let mut clank = Vec::new();
    let mut raw = Vec::new();
    let deploy_once = || async {
        let t = Instant::now();
        let d: Deployment = engine
            .deploy(service.id, Trigger::Manual { by: None })
            .await?;
        loop {
            let cur = catalog.require::<Deployment>(&d.id.to_string()).await?;
            match cur.state.status {
                DeploymentStatus::Active => break,
                s if s.is_terminal() => {
                    return Err::<Duration, BoxError>(
                        format!("deploy ended {s}: {:?}", cur.state.reason).into(),
                    );
                }
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        Ok(t.elapsed())
    };
    for i in 0..=runs {
        // Interleave the two so background noise hits both equally.
        let took = deploy_once().await?;
        if i > 0 {
            clank.push(took);
            raw.push(raw_docker_once(i).await?);
        }
    }

    // Back to back, with an app that ignores SIGTERM.
    let layer = apply_bulk(
        &ConfigLayer::new(Scope::Service(service.id)),
        &[ConfigChange::set_plain("IGNORE_TERM", "1")],
        &keyring,
        Timestamp::now(),
    )?;
    catalog.create(&layer).await?;
    deploy_once().await?;
    let mut back_to_back = Vec::new();
    for _ in 0..runs {
        back_to_back.push(deploy_once().await?);
    }
    let mut raw_again = Vec::new();
    for i in 0..runs {
        raw_again.push(raw_docker_once(runs + 1 + i).await?);
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

    let slowest = back_to_back.iter().max().copied().unwrap_or_default();
    let (b50, b90, bmin) = stats(back_to_back);
    let (a50, a90, amin) = stats(raw_again);
    let (c50, c90, cmin) = stats(clank);
    let (r50, r90, rmin) = stats(raw);
    println!("| path ({runs} runs) | median | p90 | min |");
    println!("|---|---|---|---|");
    println!("| clank deploy request → ACTIVE | {c50:.0?} | {c90:.0?} | {cmin:.0?} |");
    println!("| docker run + poll /health | {r50:.0?} | {r90:.0?} | {rmin:.0?} |");
    println!(
        "| ratio (median) | {:.2}× | {:.2}× | |",
        c50.as_secs_f64() / r50.as_secs_f64(),
        c90.as_secs_f64() / r90.as_secs_f64()
    );
    println!();
    println!("| back to back, app ignores SIGTERM ({runs} runs) | median | p90 | min | max |");
    println!("|---|---|---|---|---|");
    println!(
        "| clank deploy request → ACTIVE | {b50:.0?} | {b90:.0?} | {bmin:.0?} | {slowest:.0?} |"
    );
    println!("| docker run + poll /health | {a50:.0?} | {a90:.0?} | {amin:.0?} | |");
    println!(
        "| ratio (median; slowest deploy / median docker) | {:.2}× | {:.2}× | | {:.2}× |",
        b50.as_secs_f64() / a50.as_secs_f64(),
        b90.as_secs_f64() / a90.as_secs_f64(),
        slowest.as_secs_f64() / a50.as_secs_f64()
    );
    Ok(())
}
