//! Health probes run by the platform from outside the workload (never `curl` inside the
//! image): HTTP GET where a path is set, TCP connect where only a port is, and "running and
//! stable" where there is no port.

use std::net::SocketAddr;
use std::time::Duration;

use clank_core::Timestamp;
use clank_core::model::HealthCheck;
use clank_core::runtime::{WorkloadState, WorkloadStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The outcome of one probe, with what was seen, for deploy logs and failure reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub healthy: bool,
    /// `HTTP 200`, `HTTP 503`, `connection refused`, `timed out after 2.0 s`, ...
    pub detail: String,
    /// The workload itself answered: an HTTP status line (even a failing one), bytes on a TCP
    /// connection, or a connection it kept open. A failure without an answer (refused, closed
    /// at once, timed out) may be an app still booting; one with an answer counts toward the
    /// health check's retries.
    pub answered: bool,
}

impl ProbeOutcome {
    fn pass(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            healthy: true,
            detail: detail.into(),
            answered: true,
        }
    }

    /// A failure without an answer from the workload.
    pub fn unanswered(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            healthy: false,
            detail: detail.into(),
            answered: false,
        }
    }

    /// The workload answered, and the answer fails the check.
    fn bad_answer(detail: impl Into<String>) -> Self {
        ProbeOutcome {
            healthy: false,
            detail: detail.into(),
            answered: true,
        }
    }
}

/// Probe one workload. `timeout` bounds the whole probe (connect + request + status line).
pub async fn probe(
    check: &HealthCheck,
    workload: &WorkloadStatus,
    timeout: Duration,
    now: Timestamp,
) -> ProbeOutcome {
    match check {
        HealthCheck::Http { path, .. } => match workload.endpoint {
            Some(addr) => http_probe(addr, path, timeout).await,
            None => ProbeOutcome::unanswered("the workload publishes no port to probe"),
        },
        HealthCheck::Tcp { .. } => match workload.endpoint {
            Some(addr) => tcp_probe(addr, timeout).await,
            None => ProbeOutcome::unanswered("the workload publishes no port to probe"),
        },
        HealthCheck::Running { stable_for } => running_probe(workload, *stable_for, now),
    }
}

fn running_probe(w: &WorkloadStatus, stable_for: Duration, now: Timestamp) -> ProbeOutcome {
    match &w.state {
        WorkloadState::Running { started_at } => {
            let up = now.since(*started_at);
            if up >= stable_for {
                ProbeOutcome::pass(format!("running for {:.1} s", up.as_secs_f64()))
            } else {
                ProbeOutcome::unanswered(format!(
                    "running for {:.1} s of the {:.1} s required",
                    up.as_secs_f64(),
                    stable_for.as_secs_f64()
                ))
            }
        }
        other => ProbeOutcome::unanswered(format!("not running ({other:?})")),
    }
}

/// How long a TCP probe watches an accepted connection: one the runtime's port forwarder
/// accepted for a workload that is not listening yet is closed within this time.
const TCP_SETTLE: Duration = Duration::from_millis(300);

/// A TCP connect that the workload must keep open (or greet on) for a moment. Docker's
/// userland proxy accepts connections on a published port before anything listens in the
/// container and closes them at once, so a bare connect would pass a database that has not
/// started yet.
pub async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> ProbeOutcome {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(TCP_SETTLE, stream.read(&mut byte)).await {
            Err(_) => Ok(true),
            Ok(Ok(n)) => Ok(n > 0),
            Ok(Err(e)) => Err(e),
        }
    };
    match tokio::time::timeout(timeout + TCP_SETTLE, attempt).await {
        Ok(Ok(true)) => ProbeOutcome::pass(format!("TCP connect to {addr} succeeded")),
        Ok(Ok(false)) => ProbeOutcome::unanswered(format!(
            "TCP connect to {addr}: closed at once (nothing listens behind the port yet)"
        )),
        Ok(Err(e)) => ProbeOutcome::unanswered(format!("TCP connect to {addr}: {e}")),
        Err(_) => ProbeOutcome::unanswered(format!(
            "TCP connect to {addr} timed out after {:.1} s",
            timeout.as_secs_f64()
        )),
    }
}

/// A minimal HTTP/1.1 GET that reads only the status line: 2xx and 3xx pass (redirects are
/// not followed, so a redirect loop cannot hang the probe).
pub async fn http_probe(addr: SocketAddr, path: &str, timeout: Duration) -> ProbeOutcome {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: clank-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        // The status line fits in the first read in practice; cap what we accept at 1 KiB.
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let buf = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return ProbeOutcome::unanswered(format!(
                "GET {path} timed out after {:.1} s",
                timeout.as_secs_f64()
            ));
        }
        Ok(Err(e)) => return ProbeOutcome::unanswered(format!("GET {path}: {e}")),
        Ok(Ok(buf)) => buf,
    };
    match parse_status(&buf) {
        Some(code) if (200..400).contains(&code) => ProbeOutcome::pass(format!("HTTP {code}")),
        Some(code) => ProbeOutcome::bad_answer(format!("HTTP {code}")),
        None if buf.is_empty() => {
            ProbeOutcome::unanswered(format!("GET {path}: connection closed without a response"))
        }
        None => ProbeOutcome::bad_answer(format!("GET {path}: not an HTTP response")),
    }
}

fn parse_status(buf: &[u8]) -> Option<u16> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(response: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut b = [0u8; 1024];
                let _ = s.read(&mut b).await;
                let _ = s.write_all(response).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn http_2xx_and_3xx_pass_4xx_and_5xx_fail() {
        for (resp, ok, detail) in [
            (&b"HTTP/1.1 200 OK\r\n\r\n"[..], true, "HTTP 200"),
            (
                b"HTTP/1.1 302 Found\r\nLocation: /health\r\n\r\n",
                true,
                "HTTP 302",
            ),
            (
                b"HTTP/1.0 503 Service Unavailable\r\n\r\n",
                false,
                "HTTP 503",
            ),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", false, "HTTP 404"),
        ] {
            let addr = serve_once(resp).await;
            let out = http_probe(addr, "/health", Duration::from_secs(2)).await;
            assert_eq!((out.healthy, out.detail.as_str()), (ok, detail));
            assert!(out.answered, "a status line is an answer, passing or not");
        }
    }

    #[tokio::test]
    async fn garbage_response_fails_naming_it() {
        let addr = serve_once(b"SSH-2.0-OpenSSH\r\n").await;
        let out = http_probe(addr, "/health", Duration::from_secs(2)).await;
        assert!(!out.healthy);
        assert!(
            out.detail.contains("not an HTTP response"),
            "{}",
            out.detail
        );
    }

    #[tokio::test]
    async fn hanging_endpoint_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (_s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let out = http_probe(addr, "/health", Duration::from_millis(200)).await;
        assert!(!out.healthy);
        assert!(out.detail.contains("timed out"), "{}", out.detail);
    }

    #[tokio::test]
    async fn refused_connection_fails() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let out = http_probe(addr, "/health", Duration::from_secs(1)).await;
        assert!(!out.healthy && !out.answered, "{out:?}");
        let tcp = tcp_probe(addr, Duration::from_secs(1)).await;
        assert!(!tcp.healthy && !tcp.answered, "{tcp:?}");
    }

    /// What Docker's userland proxy does for a container not listening yet: accept, then close.
    #[tokio::test]
    async fn tcp_probe_fails_a_connection_closed_at_once_and_passes_one_held_open() {
        let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing_addr = closing.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = closing.accept().await {
                drop(s);
            }
        });
        let out = tcp_probe(closing_addr, Duration::from_secs(1)).await;
        assert!(!out.healthy && !out.answered, "{out:?}");
        assert!(out.detail.contains("closed at once"), "{}", out.detail);

        let holding = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let holding_addr = holding.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = holding.accept().await {
                held.push(s);
            }
        });
        let out = tcp_probe(holding_addr, Duration::from_secs(1)).await;
        assert!(out.healthy && out.answered, "{out:?}");

        // A server that greets (MySQL, SMTP) passes at once.
        let greeting = serve_once(b"220 ready\r\n").await;
        let out = tcp_probe(greeting, Duration::from_secs(1)).await;
        assert!(out.healthy, "{out:?}");
    }
}
