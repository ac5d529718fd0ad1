//! `clank-daemon`: the control plane binary, a thin main over `clank_daemon::run`.
//!
//! Usage: `clank-daemon [--config clank.json]` (and `clank-daemon proxy --config FILE`, the
//! proxy process the daemon starts and supervises); `CLANK_LISTEN`, `CLANK_DATA`, `CLANK_RUNTIME`,
//! `CLANK_PROXY_LISTEN`, `CLANK_PROXY_TLS_LISTEN`, `CLANK_API_*`, `CLANK_SHUTDOWN_TIMEOUT_MS`
//! override the file. Stops gracefully on SIGINT/SIGTERM, within `shutdown_timeout_ms`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before the runtime starts its threads (see `clank_daemon::memory`).
    clank_daemon::memory::tune_allocator();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(daemon_main()),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("clank-daemon: cannot start the async runtime: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn daemon_main() -> ExitCode {
    let user_filter = std::env::var("CLANK_LOG").unwrap_or_default();
    tracing_subscriber::fmt()
        .with_env_filter(clank_daemon::log_filter(&user_filter))
        .with_writer(std::io::stderr)
        .with_ansi(clank_core::colour::on(&std::io::stderr()))
        .init();
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("proxy") {
        // The daemon's proxy, as the process the daemon starts and supervises.
        args.next();
        return run_proxy(args).await;
    }
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => file = args.next().map(PathBuf::from),
            "--help" | "-h" => {
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "usage: clank-daemon [--config FILE.json]\n  env: CLANK_LISTEN (127.0.0.1:7070), CLANK_DATA (./clank-data), CLANK_RUNTIME (auto|docker|process),\n       CLANK_PROXY_LISTEN (127.0.0.1:8080, or off), CLANK_PROXY_TLS_LISTEN, CLANK_PROXY_ACME_*, CLANK_LOG,\n       CLANK_API_MAX_CONNECTIONS (1024), CLANK_API_HEADER_TIMEOUT_MS (10000), CLANK_API_IDLE_TIMEOUT_MS (60000),\n       CLANK_API_MAX_STREAMS_PER_TOKEN (8), CLANK_API_MAX_STREAMS_PER_WORKSPACE (64), CLANK_SHUTDOWN_TIMEOUT_MS (10000)"
                    );
                }
                return ExitCode::SUCCESS;
            }
            other => {
                tracing::error!("unknown argument `{other}` (see --help)");
                return ExitCode::from(2);
            }
        }
    }
    let settings = match clank_daemon::Settings::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    // Freed heap (a sweep's pages, a burst of requests) goes back to the kernel.
    tokio::spawn(clank_daemon::memory::trim_periodically(
        clank_daemon::memory::TRIM_INTERVAL,
    ));
    match clank_daemon::run(settings, terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT or SIGTERM.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `clank-daemon proxy --config FILE`: serve the proxy config the daemon wrote until SIGINT or
/// SIGTERM (what the standalone `clank-proxy` binary does).
async fn run_proxy(mut args: impl Iterator<Item = String>) -> ExitCode {
    let (Some(flag), Some(path)) = (args.next(), args.next()) else {
        tracing::error!("usage: clank-daemon proxy --config FILE.json");
        return ExitCode::from(2);
    };
    if flag != "--config" {
        tracing::error!("usage: clank-daemon proxy --config FILE.json");
        return ExitCode::from(2);
    }
    let config = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|b| {
            serde_json::from_slice::<clank_proxy::ProxyConfig>(&b).map_err(|e| e.to_string())
        }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("proxy config {path}: {e}");
            return ExitCode::from(2);
        }
    };
    match clank_proxy::run(config, terminated()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
