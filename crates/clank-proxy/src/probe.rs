//! The health gate run before a cutover swaps the route, over the proxy's own pooled client:
//! the same semantics as the engine's probes (HTTP GET: 2xx/3xx pass; TCP connect; `Running`
//! passes since the engine already required the workload to be running and stable).

use std::net::SocketAddr;
use std::time::Duration;

use clank_core::model::HealthCheck;
use http::{Request, header};
use http_body_util::BodyExt;

use crate::forward::{UpstreamClient, full};

/// The outcome of probing every address of a target once, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeOutcome {
    pub(crate) healthy: bool,
    pub(crate) detail: String,
}

pub(crate) async fn gate_probe(
    client: &UpstreamClient,
    check: &HealthCheck,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> ProbeOutcome {
    if addrs.is_empty() {
        return ProbeOutcome {
            healthy: false,
            detail: "the target has no address".into(),
        };
    }
    for addr in addrs {
        let out = match check {
            HealthCheck::Http { path, .. } => http_probe(client, *addr, path, timeout).await,
            HealthCheck::Tcp { .. } => tcp_probe(*addr, timeout).await,
            HealthCheck::Running { .. } => continue,
        };
        if let Err(detail) = out {
            return ProbeOutcome {
                healthy: false,
                detail: format!("{addr}: {detail}"),
            };
        }
    }
    ProbeOutcome {
        healthy: true,
        detail: "all targets healthy".into(),
    }
}

async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("TCP connect: {e}")),
        Err(_) => Err(format!(
            "TCP connect timed out after {:.1} s",
            timeout.as_secs_f64()
        )),
    }
}

async fn http_probe(
    client: &UpstreamClient,
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let req = Request::get(format!("http://{addr}{path}"))
        .header(header::HOST, addr.to_string())
        .header(header::USER_AGENT, "clank-health/1")
        .body(full(bytes::Bytes::new()))
        .map_err(|e| format!("GET {path}: {e}"))?;
    let exchange = async {
        let res = client
            .request(req)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = res.status();
        // Read the (small) body so the pooled connection can be reused.
        let _ = res.into_body().collect().await;
        Ok::<_, String>(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(format!(
            "GET {path} timed out after {:.1} s",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(s)) if s.is_success() || s.is_redirection() => Ok(()),
        Ok(Ok(s)) => Err(format!("HTTP {}", s.as_u16())),
    }
}
