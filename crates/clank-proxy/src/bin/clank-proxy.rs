//! The standalone `clank-proxy` process: serves the persisted route table so traffic keeps
//! flowing while the control plane restarts.
//!
//! Usage: `clank-proxy [--config FILE.json] [--threads N]`. The config is a JSON
//! `ProxyConfig` (durations in `*_ms` fields). `--threads 1` runs a single-threaded runtime
//! (what the benchmark pins to one core). Logs go to stderr, filtered by `RUST_LOG` (default
//! `info` without the per-request access log; `RUST_LOG=info,clank_proxy::access=info` adds it).
//!
//! Automatic TLS: an `acme` section in the config (`directory_url`, `state_dir`, ...) or
//! `CLANK_PROXY_ACME_DIRECTORY_URL` + `CLANK_PROXY_ACME_STATE_DIR` (also `_CONTACT`,
//! `_SERVER_ROOT`, `_CHALLENGE`, `_CHECK_INTERVAL_MS`) start the ACME client: every routed
//! `public_direct` name with ACME TLS gets its certificate ordered as soon as it is routed,
//! stored and renewed.

use std::process::ExitCode;

use clank_proxy::ProxyConfig;

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,clank_proxy::access=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(clank_core::colour::on(&std::io::stderr()))
        .init();
    let mut config_path = None;
    let mut threads: usize = 0;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config_path = args.next(),
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            "-h" | "--help" => {
                println!("usage: clank-proxy [--config FILE.json] [--threads N]");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("clank-proxy: unknown argument `{other}`");
                return ExitCode::from(2);
            }
        }
    }
    let config = match config_path {
        Some(path) => match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<ProxyConfig>(&b).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("clank-proxy: config {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => ProxyConfig::default(),
    };
    let config = match config.with_acme_env(|name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("clank-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("clank-proxy: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match runtime.block_on(clank_proxy::run(config, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clank-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
