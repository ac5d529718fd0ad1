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
}

impl ProxyError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProxyError::Bind { .. } => ErrorKind::Unavailable,
            ProxyError::Config(_) => ErrorKind::Invalid,
            ProxyError::State { .. } | ProxyError::Io(_) => ErrorKind::Internal,
        }
    }
}

impl From<ProxyError> for clank_core::Error {
    fn from(e: ProxyError) -> Self {
        clank_core::Error::Internal(e.to_string())
    }
}
