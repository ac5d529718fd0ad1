//! The platform's health probes as data: what one probe found ([`ProbeResult`]) and the pure
//! verdicts behind it — the status line of an HTTP answer, and "running and stable" for a
//! workload without a port. The network half (connect, send, read) lives in
//! `clank_proxy::probe`, the one probe implementation the engine, the agent and the proxy's
//! cutover gate all run.

use std::time::Duration;

use crate::Timestamp;
use crate::runtime::WorkloadState;

/// The outcome of one health probe, with what was seen (`HTTP 200`, `connection refused`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeResult {
    pub healthy: bool,
    /// `HTTP 200`, `HTTP 503`, `connection refused`, `timed out after 2.0 s`, ...
    pub detail: String,
    /// The workload itself answered (a status line, bytes, a connection kept open); a failure
    /// with an answer counts toward the health check's retries, one without may be an app
    /// still starting.
    #[serde(default)]
    pub answered: bool,
}

impl ProbeResult {
    /// The check passed (which takes an answer from the workload).
    pub fn pass(detail: impl Into<String>) -> Self {
        ProbeResult {
            healthy: true,
            detail: detail.into(),
            answered: true,
        }
    }

    /// A failure without an answer from the workload (refused, closed at once, timed out).
    pub fn unanswered(detail: impl Into<String>) -> Self {
        ProbeResult {
            healthy: false,
            detail: detail.into(),
            answered: false,
        }
    }

    /// The workload answered, and the answer fails the check.
    pub fn bad_answer(detail: impl Into<String>) -> Self {
        ProbeResult {
            healthy: false,
            detail: detail.into(),
            answered: true,
        }
    }
}

/// The verdict on what an HTTP probe of `path` read (up to the status line): 2xx and 3xx pass
/// (redirects are not followed, so a redirect loop cannot hang the probe).
pub fn http_verdict(path: &str, answer: &[u8]) -> ProbeResult {
    match status_code(answer) {
        Some(code) if (200..400).contains(&code) => ProbeResult::pass(format!("HTTP {code}")),
        Some(code) => ProbeResult::bad_answer(format!("HTTP {code}")),
        None if answer.is_empty() => {
            ProbeResult::unanswered(format!("GET {path}: connection closed without a response"))
        }
        None => ProbeResult::bad_answer(format!("GET {path}: not an HTTP response")),
    }
}

/// Whether `answer` holds a whole status line, so an HTTP probe can stop reading.
pub fn has_status_line(answer: &[u8]) -> bool {
    answer.windows(2).any(|w| w == b"\r\n")
}

/// The status code of an HTTP/1.x status line at the start of `buf`.
fn status_code(buf: &[u8]) -> Option<u16> {
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

/// "Running and stable": the check of a workload that publishes no port passes once it has
/// run `stable_for` without a restart.
pub fn running_verdict(state: &WorkloadState, stable_for: Duration, now: Timestamp) -> ProbeResult {
    match state {
        WorkloadState::Running { started_at } => {
            let up = now.since(*started_at);
            if up >= stable_for {
                ProbeResult::pass(format!("running for {:.1} s", up.as_secs_f64()))
            } else {
                ProbeResult::unanswered(format!(
                    "running for {:.1} s of the {:.1} s required",
                    up.as_secs_f64(),
                    stable_for.as_secs_f64()
                ))
            }
        }
        other => ProbeResult::unanswered(format!("not running ({other:?})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_2xx_and_3xx_pass_4xx_and_5xx_fail_as_answers() {
        for (answer, healthy, detail) in [
            (&b"HTTP/1.1 200 OK\r\n"[..], true, "HTTP 200"),
            (b"HTTP/1.1 302 Found\r\nLocation: /x\r\n", true, "HTTP 302"),
            (b"HTTP/1.0 503 Service Unavailable\r\n", false, "HTTP 503"),
            (b"HTTP/1.1 404 Not Found\r\n", false, "HTTP 404"),
        ] {
            let out = http_verdict("/health", answer);
            assert_eq!((out.healthy, out.detail.as_str()), (healthy, detail));
            assert!(out.answered, "a status line is an answer, passing or not");
        }
    }

    #[test]
    fn no_answer_and_garbage_are_told_apart() {
        let closed = http_verdict("/health", b"");
        assert!(!closed.healthy && !closed.answered, "{closed:?}");
        let garbage = http_verdict("/health", b"SSH-2.0-OpenSSH\r\n");
        assert!(!garbage.healthy && garbage.answered, "{garbage:?}");
        assert!(garbage.detail.contains("not an HTTP response"));
        assert!(!has_status_line(b"HTTP/1.1 200 OK"));
        assert!(has_status_line(b"HTTP/1.1 200 OK\r\n"));
    }

    #[test]
    fn running_passes_only_after_the_stable_time() {
        let state = WorkloadState::Running {
            started_at: Timestamp(1_000),
        };
        let stable = Duration::from_secs(5);
        assert!(!running_verdict(&state, stable, Timestamp(5_999)).healthy);
        assert!(running_verdict(&state, stable, Timestamp(6_000)).healthy);
        let out = running_verdict(&WorkloadState::Restarting, stable, Timestamp(9_000));
        assert!(!out.healthy && !out.answered, "{out:?}");
    }
}
