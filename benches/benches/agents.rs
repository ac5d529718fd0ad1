//! Scale simulation: one control plane holding N agent sessions (default 1,000).
//!
//! The control plane (this process: the real `Fleet` gRPC service over a redb store, as the
//! daemon runs it) registers N servers, then spawns this binary again as the simulated
//! agents: N lightweight clients in one process, each with its own TCP connection, enrolling
//! with its own join token, holding a session, heartbeating every 5 s and acknowledging
//! desired states. Sessions run over TLS with the pinned self-signed certificate, as the
//! daemon serves them. It reports:
//!
//! - the control plane's RSS and CPU while it holds the N sessions idle (heartbeats only),
//!   and its RSS once glibc's `malloc_trim` has handed back malloc's free pages;
//! - the time for one desired-state change to every server (a network added through each
//!   server's `AgentRuntime`, the path the engine uses) to be applied and reported by all N.
//!
//! `cargo bench -p clank-benches --bench agents` (`CLANK_SIM_AGENTS=N`, `CLANK_SIM_IDLE_S=S`,
//! `CLANK_SIM_SERVE=generated` for the endpoint as served before its session codec).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clank_core::id::WorkspaceId;
use clank_core::runtime::Placement;
use clank_core::store::catalog::Catalog;
use clank_fleet::{Fleet, FleetConfig};
use clank_proto::v1::{self, agent_message::Body as Up, control_message::Body as Down};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Raise the open-files limit to the hard limit: each session is one socket per side.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// (utime + stime) of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// glibc's `malloc_trim(0)`: hand the free pages inside malloc's heaps back to the system
/// (what a long-running daemon could do after a connection storm).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn malloc_trim() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: no pointers are passed; glibc documents malloc_trim as MT-safe.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim() {}

fn main() {
    raise_nofile();
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(if args.iter().any(|a| a == "--agents") {
            1
        } else {
            2
        })
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--agents") {
        rt.block_on(agents(
            args[i + 1].clone(),
            args[i + 2].clone(),
            args[i + 3].clone(),
        ));
    } else {
        rt.block_on(control_plane());
    }
}

async fn control_plane() {
    let n = env_num("CLANK_SIM_AGENTS", 1000) as usize;
    let idle = Duration::from_secs(env_num("CLANK_SIM_IDLE_S", 30));
    let dir = tempfile::tempdir().unwrap();
    let store = clank_store::RedbStore::open(dir.path().join("clank.redb")).unwrap();
    let catalog = Catalog::new(Arc::new(store));
    let keyring = clank_platform::load_or_create_keyring(&dir.path().join("keyring")).unwrap();
    let config = FleetConfig {
        apply_timeout: Duration::from_secs(120),
        ..FleetConfig::default()
    };
    let fleet = Fleet::open(catalog, keyring, config).await.unwrap();
    let ws = WorkspaceId::new();
    let mut tokens = String::new();
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        let (server, token) = fleet.create_server(ws, &format!("sim-{i}")).await.unwrap();
        tokens.push_str(&token);
        tokens.push('\n');
        servers.push(server.id);
    }
    let token_file = dir.path().join("tokens");
    std::fs::write(&token_file, tokens).unwrap();
    // TLS as the daemon serves it; the simulated agents pin the fingerprint like real ones.
    let tls = clank_fleet::tls::EndpointTls::load_or_create(dir.path(), &["localhost".to_owned()])
        .unwrap();
    let fingerprint = tls.fingerprint.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let service = fleet.service();
    // `CLANK_SIM_SERVE=generated`: the endpoint as it was served before the session stream got
    // its own small-buffer codec (the generated server, tonic's default 8 KiB codec buffers),
    // to compare both in one build.
    let generated = std::env::var("CLANK_SIM_SERVE").is_ok_and(|v| v == "generated");
    tokio::spawn(async move {
        if generated {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            tonic::transport::Server::builder()
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?
                .http2_keepalive_interval(Some(Duration::from_secs(20)))
                .http2_keepalive_timeout(Some(Duration::from_secs(10)))
                .tcp_nodelay(true)
                .add_service(service.into_server())
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    std::future::pending(),
                )
                .await
        } else {
            service
                .serve(listener, Some(&tls), std::future::pending())
                .await
        }
    });
    let rss_before = rss_kib();

    let started = Instant::now();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("--agents")
        .arg(&url)
        .arg(&token_file)
        .arg(&fingerprint)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    loop {
        let connected = fleet.connected().len();
        if connected == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {connected}/{n} connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_all = started.elapsed();
    // Progress on stderr (the result is the JSON line on stdout), so a profiler can be
    // attached to one phase.
    eprintln!(
        "agents: {n} connected in {:.1} s; idling {} s",
        connect_all.as_secs_f64(),
        idle.as_secs()
    );

    // Idle: N sessions heartbeating every 5 s.
    let (t0, c0) = (Instant::now(), cpu_ticks());
    tokio::time::sleep(idle).await;
    let ticks_per_s = rustix::param::clock_ticks_per_second() as f64;
    let idle_cpu = 100.0 * (cpu_ticks() - c0) as f64 / ticks_per_s / t0.elapsed().as_secs_f64();
    let idle_rss = rss_kib();
    // The same sessions after giving malloc's free pages back (glibc): what is live, not
    // what the connection storm left in the allocator's free lists.
    malloc_trim();
    let trimmed_rss = rss_kib();

    // One desired-state change to every server, applied and reported by all: one task per
    // server, all at once, as the engine's reconciler runs one task per service.
    eprintln!("agents: changing the desired state of all {n} servers");
    let placement = fleet.placement();
    let labels = BTreeMap::from([("clank.sim".to_owned(), "1".to_owned())]);
    let (t0, c0) = (Instant::now(), cpu_ticks());
    let mut set = tokio::task::JoinSet::new();
    for id in &servers {
        let (runtime, _) = placement.remote(*id).unwrap();
        let labels = labels.clone();
        set.spawn(async move {
            runtime.ensure_network("sim-net", &labels).await.unwrap();
            Instant::now()
        });
    }
    let mut latest = t0;
    while let Some(done) = set.join_next().await {
        latest = latest.max(done.unwrap());
    }
    let fanout = latest - t0;
    let fanout_cpu_s = (cpu_ticks() - c0) as f64 / ticks_per_s;
    let still = fleet.connected().len();
    let _ = child.kill().await;

    println!(
        "{{\"agents\": {n}, \"connected_after_change\": {still}, \
         \"connect_all_s\": {:.2}, \"rss_before_kib\": {rss_before}, \
         \"idle_rss_kib\": {idle_rss}, \"idle_rss_after_malloc_trim_kib\": {trimmed_rss}, \
         \"idle_cpu_percent_of_one_core\": {idle_cpu:.2}, \
         \"idle_window_s\": {}, \"desired_change_to_all_ms\": {:.1}, \
         \"desired_change_cpu_s\": {fanout_cpu_s:.2}}}",
        connect_all.as_secs_f64(),
        idle.as_secs(),
        fanout.as_secs_f64() * 1000.0,
    );
}

/// The simulated agents: enroll, hold a session, heartbeat, acknowledge desired states.
async fn agents(url: String, token_file: String, fingerprint: String) {
    let tokens: Vec<String> = std::fs::read_to_string(token_file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let acks = Arc::new(AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for (i, token) in tokens.into_iter().enumerate() {
        let url = url.clone();
        let fingerprint = fingerprint.clone();
        let acks = acks.clone();
        set.spawn(async move {
            // Spread the connection storm a little, as real agents starting at once would.
            tokio::time::sleep(Duration::from_millis((i % 100) as u64 * 10)).await;
            if let Err(e) = one_agent(&url, &fingerprint, &token, &acks).await {
                eprintln!("simulated agent {i}: {e}");
            }
        });
    }
    while set.join_next().await.is_some() {}
}

async fn one_agent(
    url: &str,
    fingerprint: &str,
    token: &str,
    acks: &AtomicUsize,
) -> Result<(), String> {
    let channel = clank_agent::connect(url, Some(fingerprint)).await?;
    let mut client = clank_proto::AgentControlClient::new(channel);
    let enrolled = client
        .enroll(v1::EnrollRequest {
            join_token: token.to_owned(),
            hostname: "sim".into(),
            agent_version: "sim".into(),
        })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(v1::AgentMessage {
        body: Some(Up::Hello(v1::Hello {
            agent_version: "sim".into(),
            ..v1::Hello::default()
        })),
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert(
        clank_proto::AUTHORIZATION,
        format!("Bearer {}", enrolled.credential).parse().unwrap(),
    );
    req.metadata_mut().insert(
        clank_proto::SERVER_HEADER,
        enrolled.server_id.parse().unwrap(),
    );
    let mut down = client
        .session(req)
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            msg = down.message() => match msg {
                Ok(Some(v1::ControlMessage { body: Some(Down::Desired(d)) })) => {
                    acks.fetch_add(1, Ordering::Relaxed);
                    let observed = v1::Observed {
                        epoch: d.epoch,
                        generation: d.generation,
                        ..v1::Observed::default()
                    };
                    let _ = tx.send(v1::AgentMessage { body: Some(Up::Observed(observed)) }).await;
                }
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(s) => return Err(s.to_string()),
            },
            _ = heartbeat.tick() => {
                let h = v1::Heartbeat { cpu_percent: 1.0, memory_total_bytes: 1 << 30, ..v1::Heartbeat::default() };
                if tx.send(v1::AgentMessage { body: Some(Up::Heartbeat(h)) }).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
