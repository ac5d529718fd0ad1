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
        .with_ansi(log_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
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

/// Colour in the log only on a terminal, and never with `NO_COLOR` set (https://no-color.org):
/// a log file or the journal gets plain text.
fn log_colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::log_colour;

    #[test]
    fn the_log_is_coloured_only_on_a_terminal_without_no_color() {
        assert!(log_colour(true, None));
        assert!(
            log_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
        assert!(!log_colour(true, Some("1".into())));
        assert!(
            !log_colour(false, None),
            "a file or pipe gets no escape codes"
        );
    }
}
