//! `clank-daemon`: the control plane binary, a thin main over `clank_daemon::run`.
//!
//! Usage: `clank-daemon [--config clank.json]`; `CLANK_LISTEN`, `CLANK_DATA`, `CLANK_RUNTIME`,
//! `CLANK_PROXY_LISTEN`, `CLANK_PROXY_TLS_LISTEN` override the file. Stops gracefully on
//! SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let user_filter = std::env::var("CLANK_LOG").unwrap_or_default();
    tracing_subscriber::fmt()
        .with_env_filter(clank_daemon::log_filter(&user_filter))
        .init();
    let mut args = std::env::args().skip(1);
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => file = args.next().map(PathBuf::from),
            "--help" | "-h" => {
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "usage: clank-daemon [--config FILE.json]\n  env: CLANK_LISTEN (127.0.0.1:7070), CLANK_DATA (./clank-data), CLANK_RUNTIME (auto|docker|process),\n       CLANK_PROXY_LISTEN (127.0.0.1:8080, or off), CLANK_PROXY_TLS_LISTEN, CLANK_PROXY_ACME_*, CLANK_LOG"
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
    let config = match clank_daemon::DaemonConfig::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    match clank_daemon::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
