//! Docker start benchmark: time from "start this workload" to its first successful HTTP
//! response (`GET /health` → 200), through `clank_docker::DockerRuntime` versus the same steps
//! with the `docker` CLI (`docker run -d -p 127.0.0.1::8080 …`, `docker port`, poll), in the
//! same run, alternating the two so drift hits both alike.
//!
//! Run: `cargo bench -p clank-benches --bench docker_start` (env `RUNS`, default 15, per side;
//! `WARMUP`, default 2). Needs a Docker engine and /bin/busybox (the test app's image is built
//! on first use). Prints a markdown table; numbers are recorded in `benches/README.md`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clank_benches::{BoxError, docker_cli};
use clank_core::config::EnvValue;
use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use clank_core::runtime::{
    Owner, OwnerFilter, PortBinding, RestartPolicy, Runtime, WorkloadSpec, WorkloadState,
};
use clank_docker::DockerRuntime;
use clank_testkit::{http, testapp};

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

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// Poll `GET /health` until 200; both sides use this same loop.
async fn first_ok(addr: SocketAddr) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http::get(addr, "/health", Duration::from_secs(2)).await {
            if r.status == 200 {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(format!("no 200 from {addr} within 30 s").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn spec(owner: &Owner, name: String) -> Result<WorkloadSpec, BoxError> {
    Ok(WorkloadSpec {
        name,
        owner: owner.clone(),
        image: Some(testapp::IMAGE.parse()?),
        command: None,
        env: vec![(
            "PORT".to_owned(),
            EnvValue::Plain(testapp::DEFAULT_PORT.to_string()),
        )],
        working_dir: None,
        port: Some(testapp::DEFAULT_PORT),
        publish: Some(PortBinding::loopback()),
        network: None,
        volumes: Vec::new(),
        cpu_limit: 1.0,
        memory_limit_mb: 64,
        restart: RestartPolicy::Never,
    })
}

async fn clank_once(rt: &DockerRuntime, owner: &Owner, name: String) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let status = rt.start(&spec(owner, name)?).await?;
    let endpoint = status
        .endpoint
        .ok_or("DockerRuntime reported no endpoint")?;
    first_ok(endpoint).await?;
    let took = began.elapsed();
    if !matches!(status.state, WorkloadState::Running { .. }) {
        return Err(format!("unexpected state {:?}", status.state).into());
    }
    rt.remove(&status.id).await?;
    Ok(took)
}

async fn cli_once(name: &str) -> Result<Duration, BoxError> {
    let port = testapp::DEFAULT_PORT.to_string();
    let publish = format!("127.0.0.1::{port}");
    let env = format!("PORT={port}");
    let began = Instant::now();
    // The same limits and restart policy DockerRuntime sets, so both start the same container.
    docker_cli(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &publish,
        "-e",
        &env,
        "--cpus",
        "1",
        "--memory",
        "64m",
        "--memory-swap",
        "64m",
        "--restart",
        "no",
        testapp::IMAGE,
    ])
    .await?;
    let mapped = docker_cli(&["port", name, &format!("{port}/tcp")]).await?;
    let addr: SocketAddr = mapped
        .lines()
        .next()
        .ok_or("docker port printed nothing")?
        .parse()?;
    first_ok(addr).await?;
    let took = began.elapsed();
    docker_cli(&["rm", "-f", name]).await?;
    Ok(took)
}

#[allow(clippy::print_stdout)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let runs = env_or("RUNS", 15);
    let warmup = env_or("WARMUP", 2);
    let rt = DockerRuntime::connect().await?;
    testapp::docker::ensure_testapp_image(rt.client()).await?;
    let owner = Owner {
        workspace: WorkspaceId::new(),
        project: ProjectId::new(),
        environment: EnvironmentId::new(),
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        process: "web".to_owned(),
        replica: 0,
    };
    let tag = format!("{:08x}", std::process::id());

    let mut clank = Vec::new();
    let mut cli = Vec::new();
    let mut failure = None;
    for i in 0..warmup + runs {
        let result = async {
            let a = clank_once(&rt, &owner, format!("bench-{tag}-clank-{i}")).await?;
            let b = cli_once(&format!("bench-{tag}-cli-{i}")).await?;
            Ok::<_, BoxError>((a, b))
        }
        .await;
        match result {
            Ok((a, b)) if i >= warmup => {
                clank.push(a);
                cli.push(b);
            }
            Ok(_) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    // Leave nothing behind, whatever happened.
    let filter = OwnerFilter {
        service: Some(owner.service),
        ..OwnerFilter::default()
    };
    for w in rt.list(&filter).await.unwrap_or_default() {
        let _ = rt.remove(&w.id).await;
    }
    for i in 0..warmup + runs {
        let _ = docker_cli(&["rm", "-f", &format!("bench-{tag}-cli-{i}")]).await;
    }
    if let Some(e) = failure {
        return Err(e);
    }

    clank.sort();
    cli.sort();
    let row = |label: &str, v: &[Duration]| {
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(v[0]),
            ms(v[v.len() - 1])
        );
    };
    println!(
        "\nstart → first HTTP 200 (`GET /health`), {runs} runs each after {warmup} warm-up, alternating\n"
    );
    println!("| path | n | median ms | p90 ms | min ms | max ms |");
    println!("|---|---|---|---|---|---|");
    row("clank-docker (`DockerRuntime::start`)", &clank);
    row("docker CLI (`run -d -p` + `port`)", &cli);
    let ratio = |p: f64| percentile(&clank, p).as_secs_f64() / percentile(&cli, p).as_secs_f64();
    println!(
        "\nratio clank/CLI: median {:.2}×, p90 {:.2}× (target ≤ 1.10×)",
        ratio(0.5),
        ratio(0.9)
    );
    Ok(())
}
