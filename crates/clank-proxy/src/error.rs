//! The one error type of clank-proxy, with a `kind()` mapped like clank-core's.

use std::net::SocketAddr;
use std::path::PathBuf;

use clank_core::ErrorKind;

/// Errors from starting the proxy or persisting its route table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("route state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },
    #[error("invalid proxy config: {0}")]
    Config(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("ACME: {0}")]
    Acme(#[from] crate::acme::AcmeError),
    /// An external command an endpoint mode drives (`tailscale serve`) failed.
    #[error("`{command}`: {message}")]
    Command { command: String, message: String },
}

impl ProxyError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::Bind { .. } | ProxyError::Command { .. } => ErrorKind::Unavailable,
            ProxyError::Config(_) => ErrorKind::Invalid,
            ProxyError::Acme(e) => e.kind(),
            ProxyError::State { .. } | ProxyError::Io(_) => ErrorKind::Internal,
        }
    }
}

impl From<ProxyError> for clank_core::Error {
    fn from(e: ProxyError) -> Self {
        match e {
            // The route was left untouched; the message (tailscale's stderr) says what to fix.
            ProxyError::Command { .. } => clank_core::Error::Conflict(e.to_string()),
            e => clank_core::Error::Internal(e.to_string()),
        }
    }
}
