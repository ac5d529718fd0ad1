//! The `tailscale_https` applier: runs `tailscale serve` with the argument vectors the core
//! plans ([`TailscaleServePlan::add_argv`], [`TailscaleServePlan::remove_argv`]).
//!
//! The binary is spawned directly (never through a shell), stdin closed, with a timeout, and a
//! non-zero exit is an error carrying the command's stderr — that is where tailscale says
//! "HTTPS is not enabled for this tailnet" or "access denied (run as root or set --operator)".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clank_core::endpoint::TailscaleServePlan;

use crate::error::ProxyError;

/// Most of tailscale's stderr kept in an error (its messages are a few lines).
const STDERR_LIMIT: usize = 4096;

/// Drives `tailscale serve` on this host.
#[derive(Debug, Clone)]
pub struct TailscaleServe {
    binary: PathBuf,
    timeout: Duration,
}

impl TailscaleServe {
    /// `binary` is the `tailscale` CLI (a bare name is looked up on `PATH`).
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        TailscaleServe {
            binary: binary.into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// How long one `tailscale` command may run before it is killed and reported.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Map the tailnet's HTTPS port of `plan` to `upstream` (replacing an earlier mapping).
    pub async fn add(
        &self,
        plan: &TailscaleServePlan,
        upstream: SocketAddr,
    ) -> Result<(), ProxyError> {
        self.run(plan.add_argv(upstream)).await
    }

    /// Remove the mapping of `plan`'s HTTPS port.
    pub async fn remove(&self, plan: &TailscaleServePlan) -> Result<(), ProxyError> {
        self.run(plan.remove_argv()).await
    }

    async fn run(&self, args: Vec<String>) -> Result<(), ProxyError> {
        let command = || format!("{} {}", self.binary.display(), args.join(" "));
        let child = tokio::process::Command::new(&self.binary)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ProxyError::Command {
                command: command(),
                message: format!("cannot start: {e}"),
            })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => {
                return Err(ProxyError::Command {
                    command: command(),
                    message: format!("cannot wait for it: {e}"),
                });
            }
            Err(_) => {
                return Err(ProxyError::Command {
                    command: command(),
                    message: format!(
                        "no answer within {:.0} s (killed)",
                        self.timeout.as_secs_f64()
                    ),
                });
            }
        };
        if output.status.success() {
            tracing::info!(command = %command(), "tailscale serve updated");
            return Ok(());
        }
        let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if stderr.len() > STDERR_LIMIT {
            let mut end = STDERR_LIMIT;
            while !stderr.is_char_boundary(end) {
                end -= 1;
            }
            stderr.truncate(end);
            stderr.push('…');
        }
        Err(ProxyError::Command {
            command: command(),
            message: format!("exited with {}: {stderr}", output.status),
        })
    }
}
