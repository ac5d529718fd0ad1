//! A minimal HTTP/1.0 GET client for probing workloads in tests, so the testkit needs no HTTP
//! library: one request per connection, the whole answer read until the server closes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer read; the test app's are a few bytes.
const MAX_RESPONSE_BYTES: u64 = 1 << 20;

/// Status and body of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` on `addr`, all of it (connect, send, read) within `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<Response> {
    tokio::time::timeout(timeout, get_unbounded(addr, path))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("GET http://{addr}{path} took more than {timeout:?}"),
            )
        })?
}

async fn get_unbounded(addr: SocketAddr, path: &str) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: clank-testkit\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .await?;
    parse(&raw).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "GET http://{addr}{path}: not an HTTP answer: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        )
    })
}

fn parse(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Response {
        status,
        body: body.to_owned(),
    })
}

/// Poll `GET path` until it answers `status`, for at most `within`; the last answer or error
/// is in the message when it never does.
pub async fn wait_for_status(
    addr: SocketAddr,
    path: &str,
    status: u16,
    within: Duration,
) -> Result<Response, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match get(addr, path, Duration::from_secs(5)).await {
            Ok(r) if r.status == status => return Ok(r),
            Ok(r) => format!("status {} body {:?}", r.status, r.body),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "GET http://{addr}{path} did not answer {status} within {within:?}; last: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.0 503 Service Unavailable\r\nA: b\r\n\r\nunhealthy\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (503, "unhealthy\n"));
        assert_eq!(parse(b"garbage"), None);
        assert_eq!(parse(b"SSH-2.0 x\r\n\r\n"), None);
    }
}
