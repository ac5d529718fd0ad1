//! Store benchmark: write 100,000 deployment records into the embedded redb store through the
//! catalog, then read back the newest 50 deployments of one service.
//!
//! Run: `cargo bench -p clank-benches --bench store` (env `DEPLOYMENTS`, `SERVICES` override
//! the defaults). Numbers are recorded in `benches/README.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clank_core::config::ResolvedConfig;
use clank_core::id::WorkspaceId;
use clank_core::model::{Deployment, Project, Service, ServiceSource, Trigger};
use clank_core::store::catalog::{Catalog, Page, Versioned};
use clank_core::{ImageRef, Timestamp};
use clank_store::RedbStore;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = env_or("DEPLOYMENTS", 100_000);
    let services = env_or("SERVICES", 100);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("clank.redb");
    let catalog = Catalog::new(Arc::new(RedbStore::open(&path)?));
    let now = Timestamp::now();

    let ws = WorkspaceId::new();
    let project = Project::new(ws, "Bench", None, now)?;
    let env = catalog.create_project(&project, now).await?;
    let image: ImageRef = "bench/app:1".parse()?;
    let mut svcs = Vec::new();
    for i in 0..services {
        let s = Service::new(
            ws,
            project.id,
            env.id,
            &format!("svc{i}"),
            ServiceSource::DockerImage {
                image: image.clone(),
                credentials_secret: None,
            },
            now,
        )?;
        catalog.create(&s).await?;
        svcs.push(catalog.require::<Service>(&s.id.to_string()).await?);
    }

    // 1. One durable commit per deployment, through the real path (counter bump + record +
    //    index entries + unique key).
    let singles = total;
    let mut single_lat = Vec::with_capacity(singles);
    let started = Instant::now();
    for i in 0..singles {
        let svc = &mut svcs[i % services];
        let d = Deployment::new(
            svc,
            ResolvedConfig::default(),
            Trigger::Manual { by: None },
            now,
        );
        let t = Instant::now();
        catalog.create_deployment(svc, &d).await?;
        single_lat.push(t.elapsed());
        *svc = catalog.require::<Service>(&svc.id.to_string()).await?;
    }
    let single_total = started.elapsed();

    // 2. Read back the newest 50 deployments of one service, many times.
    let target: &Versioned<Service> = &svcs[services / 2];
    let mut read_lat = Vec::with_capacity(1000);
    let mut last_numbers = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let page = catalog.deployments_of(target.id, Page::newest(50)).await?;
        read_lat.push(t.elapsed());
        last_numbers = page.items.iter().map(|d| d.number).collect();
    }
    let expected_newest = target.next_deployment_number - 1;
    assert_eq!(last_numbers.len(), 50);
    assert_eq!(last_numbers[0], expected_newest, "newest first");
    assert!(
        last_numbers.windows(2).all(|w| w[0] == w[1] + 1),
        "contiguous, descending"
    );

    single_lat.sort();
    read_lat.sort();
    let file_mb = std::fs::metadata(&path)?.len() as f64 / 1_048_576.0;
    println!("| measurement | value |");
    println!("|---|---|");
    println!("| deployments written | {total} across {services} services |");
    println!(
        "| single durable commits ({singles}) | {:.0} /s; p50 {:?}, p99 {:?} |",
        singles as f64 / single_total.as_secs_f64(),
        percentile(&single_lat, 0.5),
        percentile(&single_lat, 0.99)
    );
    println!(
        "| newest 50 of one service (1000 reads) | p50 {:?}, p99 {:?} |",
        percentile(&read_lat, 0.5),
        percentile(&read_lat, 0.99)
    );
    println!("| database file | {file_mb:.1} MiB |");
    Ok(())
}
