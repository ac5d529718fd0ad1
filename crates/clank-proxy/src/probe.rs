//! The platform's health probes, run from outside the workload (never `curl` inside the
//! image): HTTP GET where a path is set, TCP connect where only a port is, and "running and
//! stable" where there is no port. The one implementation: the engine probes deployments with
//! it (`clank_engine::health`), the agent probes on its server, and every cutover's health
//! gate ([`health_gate`], the proxy's and the engine's `RouteTable`) runs it against the new
//! target. The verdicts themselves are pure, in `clank_core::probe`.

use std::net::SocketAddr;
use std::time::Duration;

use clank_core::Timestamp;
use clank_core::model::HealthCheck;
use clank_core::probe::{ProbeResult, has_status_line, http_verdict, running_verdict};
use clank_core::proxy::Cutover;
use clank_core::runtime::WorkloadStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Probe one workload. `timeout` bounds the whole probe (connect + request + status line).
pub async fn probe(
    check: &HealthCheck,
    workload: &WorkloadStatus,
    timeout: Duration,
    now: Timestamp,
) -> ProbeResult {
    match check {
        HealthCheck::Http { path, .. } => match workload.endpoint {
            Some(addr) => http_probe(addr, path, timeout).await,
            None => ProbeResult::unanswered("the workload publishes no port to probe"),
        },
        HealthCheck::Tcp { .. } => match workload.endpoint {
            Some(addr) => tcp_probe(addr, timeout).await,
            None => ProbeResult::unanswered("the workload publishes no port to probe"),
        },
        HealthCheck::Running { stable_for } => running_verdict(&workload.state, *stable_for, now),
    }
}

/// How long a TCP probe watches an accepted connection: one the runtime's port forwarder
/// accepted for a workload that is not listening yet is closed within this time.
const TCP_SETTLE: Duration = Duration::from_millis(300);

/// A TCP connect that the workload must keep open (or greet on) for a moment. Docker's
/// userland proxy accepts connections on a published port before anything listens in the
/// container and closes them at once, so a bare connect would pass a database that has not
/// started yet.
pub async fn tcp_probe(addr: SocketAddr, timeout: Duration) -> ProbeResult {
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
        Ok(Ok(true)) => ProbeResult::pass(format!("TCP connect to {addr} succeeded")),
        Ok(Ok(false)) => ProbeResult::unanswered(format!(
            "TCP connect to {addr}: closed at once (nothing listens behind the port yet)"
        )),
        Ok(Err(e)) => ProbeResult::unanswered(format!("TCP connect to {addr}: {e}")),
        Err(_) => ProbeResult::unanswered(format!(
            "TCP connect to {addr} timed out after {:.1} s",
            timeout.as_secs_f64()
        )),
    }
}

/// A minimal HTTP/1.1 GET on a connection of its own that reads only the status line; the
/// verdict is [`http_verdict`]'s.
pub async fn http_probe(addr: SocketAddr, path: &str, timeout: Duration) -> ProbeResult {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: clank-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        // The status line fits in the first read in practice; cap what we accept at 1 KiB.
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !has_status_line(&buf) && buf.len() < 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => ProbeResult::unanswered(format!(
            "GET {path} timed out after {:.1} s",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => ProbeResult::unanswered(format!("GET {path}: {e}")),
        Ok(Ok(answer)) => http_verdict(path, &answer),
    }
}

/// Probe every address of a target once; healthy only if all are.
pub async fn gate_probe(
    check: &HealthCheck,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> ProbeResult {
    // The engine already required the workload to be running and stable: nothing to ask the
    // addresses, and a web process without a port has none.
    if let HealthCheck::Running { .. } = check {
        return ProbeResult::pass("the engine saw it running");
    }
    if addrs.is_empty() {
        return ProbeResult::unanswered("the target has no address");
    }
    for addr in addrs {
        let out = match check {
            HealthCheck::Http { path, .. } => http_probe(*addr, path, timeout).await,
            HealthCheck::Tcp { .. } => tcp_probe(*addr, timeout).await,
            HealthCheck::Running { .. } => continue,
        };
        if !out.healthy {
            return ProbeResult {
                detail: format!("{addr}: {}", out.detail),
                ..out
            };
        }
    }
    ProbeResult::pass("all targets healthy")
}

/// The health gate of a cutover: [`gate_probe`] the new target, again with a doubling pause
/// (20 ms up to 1 s) until it passes or `cutover.gate_timeout` is over; then a `Conflict`
/// naming the deployment and the last thing seen.
pub async fn health_gate(cutover: &Cutover, probe_timeout: Duration) -> clank_core::Result<()> {
    let deadline = tokio::time::Instant::now() + cutover.gate_timeout;
    let mut delay = Duration::from_millis(20);
    loop {
        let out = gate_probe(&cutover.health, &cutover.route.target.addrs, probe_timeout).await;
        if out.healthy {
            return Ok(());
        }
        if tokio::time::Instant::now() + delay >= deadline {
            return Err(clank_core::Error::Conflict(format!(
                "new target of deployment {} did not pass the health gate within {:.1} s: {}",
                cutover.route.target.deployment,
                cutover.gate_timeout.as_secs_f64(),
                out.detail
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
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
    async fn a_running_check_passes_the_gate_of_a_target_without_addresses() {
        // A web process without a port: its check is that it keeps running (the engine's),
        // and it has no address to probe.
        let running = HealthCheck::Running {
            stable_for: Duration::from_secs(10),
        };
        let out = gate_probe(&running, &[], Duration::from_secs(1)).await;
        assert!(out.healthy, "{}", out.detail);
        let tcp = HealthCheck::Tcp { port: 80 };
        let out = gate_probe(&tcp, &[], Duration::from_secs(1)).await;
        assert!(!out.healthy, "a port without an address is not healthy");
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

    #[tokio::test]
    async fn gate_probe_names_the_failing_address_and_needs_one() {
        let none = gate_probe(&HealthCheck::Tcp { port: 80 }, &[], Duration::from_secs(1)).await;
        assert!(!none.healthy, "{none:?}");
        let ok = serve_once(b"HTTP/1.1 200 OK\r\n\r\n").await;
        let bad = serve_once(b"HTTP/1.1 500 Oops\r\n\r\n").await;
        let check = HealthCheck::Http {
            port: 80,
            path: "/health".into(),
        };
        let out = gate_probe(&check, &[ok, bad], Duration::from_secs(1)).await;
        assert_eq!(out.detail, format!("{bad}: HTTP 500"));
        assert!(
            gate_probe(&check, &[ok], Duration::from_secs(1))
                .await
                .healthy
        );
    }
}
