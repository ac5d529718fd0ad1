//! `clank-agent`: see the library docs. Configuration from flags or `CLANK_*` variables.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use clank_agent::{AgentConfig, StateDir, Stop, exit};
use clap::Parser;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "clank-agent",
    version,
    about = "Runs a Clank server's workloads; dials out to the control plane."
)]
struct Args {
    /// The control plane's agent endpoint, e.g. `https://clank.example.com:7443`.
    #[arg(long, env = "CLANK_CONTROL_PLANE")]
    control_plane: String,
    /// The endpoint certificate's fingerprint (`sha256:...`, from `clank server add`); kept in
    /// the state directory after the first start.
    #[arg(long, env = "CLANK_CONTROL_PLANE_FINGERPRINT")]
    fingerprint: Option<String>,
    /// Where the agent keeps its identity and lease (owner-only).
    #[arg(
        long,
        env = "CLANK_AGENT_STATE",
        default_value = "/var/lib/clank-agent"
    )]
    state_dir: PathBuf,
    /// One-time join token from `clank server add` (needed on first start only).
    #[arg(long, env = "CLANK_JOIN_TOKEN", hide_env_values = true)]
    join_token: Option<String>,
    /// Where this server's proxy serves its routed services (e.g. `0.0.0.0:80`).
    #[arg(long, env = "CLANK_AGENT_PROXY_LISTEN")]
    proxy_listen: Option<std::net::SocketAddr>,
    /// Seconds between heartbeats.
    #[arg(long, env = "CLANK_AGENT_HEARTBEAT_S", default_value_t = 5)]
    heartbeat_s: u64,
    /// The longest wait between reconnection attempts, in seconds (exponential backoff with
    /// full jitter up to this).
    #[arg(long, env = "CLANK_AGENT_BACKOFF_MAX_S", default_value_t = 30)]
    backoff_max_s: u64,
    /// Seconds an updated agent may take to connect before it rolls back.
    #[arg(long, env = "CLANK_AGENT_UPDATE_ROLLBACK_S", default_value_t = 60)]
    update_rollback_s: u64,
    /// Check that this binary can reach the control plane as this server, then exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLANK_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,bollard=warn,h2=warn,tower=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(clank_core::colour::on(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clank-agent: cannot start the async runtime: {e}");
            std::process::exit(exit::CONFIG);
        }
    };
    if args.check {
        let result = runtime.block_on(async {
            let state = StateDir::open(&args.state_dir)?;
            clank_agent::update::check(&args.control_plane, &state).await
        });
        match result {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("clank-agent --check: {e}");
                std::process::exit(1);
            }
        }
    }
    let config = AgentConfig {
        join_token: args.join_token.clone(),
        fingerprint: args.fingerprint.clone(),
        heartbeat_interval: Duration::from_secs(args.heartbeat_s.max(1)),
        proxy_listen: args.proxy_listen,
        backoff_max: Duration::from_secs(args.backoff_max_s.max(1)),
        update_rollback_after: Duration::from_secs(args.update_rollback_s.max(1)),
        ..AgentConfig::new(args.control_plane.clone(), args.state_dir.clone())
    };
    let shutdown = CancellationToken::new();
    let stop = runtime.block_on(async {
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            token.cancel();
        });
        clank_agent::run(config, shutdown).await
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match stop {
        Stop::Shutdown => {}
        Stop::Fatal(code, message) => {
            eprintln!("clank-agent: {message}");
            std::process::exit(code);
        }
        Stop::Restart(path) => {
            // Same arguments; the environment (join token aside: the identity is on disk)
            // carries over.
            let err = std::process::Command::new(&path)
                .args(std::env::args_os().skip(1))
                .exec();
            eprintln!("clank-agent: restart into {} failed: {err}", path.display());
            std::process::exit(exit::CONFIG);
        }
    }
}
