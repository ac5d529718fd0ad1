//! The control socket: how the control plane drives a `clank-proxy` running as its own
//! process, so traffic outlives daemon restarts and upgrades.
//!
//! A Unix socket (owner-only file in an owner-only directory; connections from another user
//! are refused by their peer credentials). One connection carries one call: the client writes
//! one [`ProxyCall`] as a JSON line and reads one [`ProxyReply`] line back. Calls are
//! clank-core's, the same the agent protocol carries for a remote server's proxy.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::proxy::{Proxy, ProxyCall, ProxyReply, ProxyTransport};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::ClankProxy;

/// The longest call or reply line (a route table entry is well under a kilobyte).
const MAX_LINE: u64 = 1 << 20;
/// How long a client may take to send its call.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Bind the control socket at `path`: its directory is created owner-only, a socket file
/// left by a proxy that is gone is replaced, and the new one is owner-only. Fails when
/// another proxy answers there.
pub async fn bind_control(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another proxy already answers on {}; stop it first",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve calls on `listener` until `shutdown`; calls in flight finish first.
pub async fn serve_control(proxy: ClankProxy, listener: UnixListener, shutdown: CancellationToken) {
    let own_uid = own_uid();
    crate::server::accept_loop(&listener, "control socket", &shutdown, None, |stream, _| {
        let proxy = proxy.clone();
        async move {
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == own_uid || cred.uid() == 0 => {}
                other => {
                    tracing::warn!(peer = ?other.ok(), "control socket: refused a connection from another user");
                    return;
                }
            }
            if let Err(e) = answer(&proxy, stream).await {
                tracing::debug!(error = %e, "control call failed");
            }
        }
    })
    .await;
}

/// This process's effective uid (a file-capable binary is non-dumpable, so `/proc/self`'s
/// owner is no substitute).
fn own_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

async fn answer(proxy: &ClankProxy, stream: UnixStream) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_LINE));
    tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no call within 10 s"))??;
    let reply = match serde_json::from_str::<ProxyCall>(&line) {
        Ok(call) => call.apply(proxy as &dyn Proxy).await,
        Err(e) => ProxyReply::failed(&Error::runtime(
            RuntimeFailure::Other,
            format!("malformed proxy call: {e}"),
        )),
    };
    let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}

/// The client end: calls a proxy process through its control socket. Wrap it in
/// [`clank_core::proxy::CalledProxy`] to drive it as a [`Proxy`].
#[derive(Debug, Clone)]
pub struct ControlSocket {
    path: PathBuf,
    call_timeout: Duration,
}

impl ControlSocket {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ControlSocket {
            path: path.into(),
            call_timeout: Duration::from_secs(10),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a proxy answers on the socket now.
    pub async fn ping(&self, timeout: Duration) -> bool {
        matches!(
            self.send(&ProxyCall::Ping, timeout).await,
            Ok(ProxyReply::Done)
        )
    }
}

#[async_trait::async_trait]
impl ProxyTransport for ControlSocket {
    async fn send(&self, call: &ProxyCall, timeout: Duration) -> Result<ProxyReply> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::runtime(
                RuntimeFailure::EngineUnavailable,
                format!(
                    "the proxy process does not answer on {}: {e}",
                    self.path.display()
                ),
            )
        };
        let exchange = async {
            let mut stream = UnixStream::connect(&self.path).await?;
            let mut line = serde_json::to_vec(call).map_err(io::Error::other)?;
            line.push(b'\n');
            stream.write_all(&line).await?;
            let mut reply = String::new();
            BufReader::new(stream.take(MAX_LINE))
                .read_line(&mut reply)
                .await?;
            Ok::<_, io::Error>(reply)
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(unavailable(&e)),
            Err(_) => return Err(unavailable(&format!("no answer within {timeout:?}"))),
        };
        serde_json::from_str(&reply).map_err(|e| unavailable(&format!("malformed reply: {e}")))
    }

    fn call_timeout(&self) -> Duration {
        self.call_timeout
    }
}
