//! Prometheus text metrics: lock-free counters bumped on the request path, rendered on demand.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Why an upstream exchange failed, as counted in `clank_proxy_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamError {
    Connect,
    Timeout,
    Protocol,
    Abandoned,
}

const UPSTREAM_KINDS: [(UpstreamError, &str); 4] = [
    (UpstreamError::Connect, "connect"),
    (UpstreamError::Timeout, "timeout"),
    (UpstreamError::Protocol, "protocol"),
    (UpstreamError::Abandoned, "abandoned"),
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    by_class: [AtomicU64; 5],
    pub(crate) in_flight: AtomicI64,
    pub(crate) upgrades_open: AtomicI64,
    upstream_errors: [AtomicU64; 4],
    pub(crate) cutovers_ok: AtomicU64,
    pub(crate) cutovers_failed: AtomicU64,
    pub(crate) route_changes: AtomicU64,
}

impl Metrics {
    pub(crate) fn record_status(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
    }

    pub(crate) fn record_upstream_error(&self, kind: UpstreamError) {
        let i = UPSTREAM_KINDS
            .iter()
            .position(|(k, _)| *k == kind)
            .unwrap_or(0);
        self.upstream_errors[i].fetch_add(1, Relaxed);
    }

    /// The count of responses with a status in `class` (1..=5), for tests and the admin page.
    pub(crate) fn responses(&self, class: usize) -> u64 {
        self.by_class
            .get(class.wrapping_sub(1))
            .map_or(0, |c| c.load(Relaxed))
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP clank_proxy_requests_total Responses sent, by status class.\n");
        out.push_str("# TYPE clank_proxy_requests_total counter\n");
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "clank_proxy_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        out.push_str("# HELP clank_proxy_in_flight Requests being proxied now.\n");
        out.push_str("# TYPE clank_proxy_in_flight gauge\n");
        let _ = writeln!(
            out,
            "clank_proxy_in_flight {}",
            self.in_flight.load(Relaxed)
        );
        out.push_str("# HELP clank_proxy_upgraded_open Upgraded (WebSocket) tunnels open now.\n");
        out.push_str("# TYPE clank_proxy_upgraded_open gauge\n");
        let _ = writeln!(
            out,
            "clank_proxy_upgraded_open {}",
            self.upgrades_open.load(Relaxed)
        );
        out.push_str(
            "# HELP clank_proxy_upstream_errors_total Failed upstream exchanges, by cause.\n",
        );
        out.push_str("# TYPE clank_proxy_upstream_errors_total counter\n");
        for (i, (_, name)) in UPSTREAM_KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "clank_proxy_upstream_errors_total{{kind=\"{name}\"}} {}",
                self.upstream_errors[i].load(Relaxed)
            );
        }
        out.push_str("# HELP clank_proxy_cutovers_total Cutovers, by result.\n");
        out.push_str("# TYPE clank_proxy_cutovers_total counter\n");
        let _ = writeln!(
            out,
            "clank_proxy_cutovers_total{{result=\"ok\"}} {}",
            self.cutovers_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "clank_proxy_cutovers_total{{result=\"failed\"}} {}",
            self.cutovers_failed.load(Relaxed)
        );
        out.push_str("# HELP clank_proxy_route_changes_total Route table swaps.\n");
        out.push_str("# TYPE clank_proxy_route_changes_total counter\n");
        let _ = writeln!(
            out,
            "clank_proxy_route_changes_total {}",
            self.route_changes.load(Relaxed)
        );
        out
    }
}
