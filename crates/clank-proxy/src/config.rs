//! The proxy's configuration. Durations are milliseconds in JSON (`connect_timeout_ms`), so the
//! binary's config file needs no duration syntax.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clank_core::id::ServiceId;

use crate::cidr::IpNet;
use crate::tls::TlsCertificate;

/// Everything the proxy needs to start. `Default` is a loopback listener with conservative
/// limits, which is what tests and the embedded daemon start from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// The plain-HTTP listener.
    pub listen: SocketAddr,
    /// The TLS listener (rustls, SNI certificate selection, HTTP/2 or HTTP/1.1 by ALPN).
    pub tls_listen: Option<SocketAddr>,
    /// The port HTTP→HTTPS redirects point at; `tls_listen`'s port if unset.
    pub https_port: Option<u16>,
    /// Certificates brought as PEM files, loaded at start (more via `add_certificate`).
    pub tls_certificates: Vec<TlsCertificate>,
    /// Where `GET /metrics` (Prometheus text) and `GET /routes` are served; none if unset.
    pub admin_listen: Option<SocketAddr>,
    /// Peers whose `X-Forwarded-For/-Proto/-Host` and `Forwarded` headers are kept (and
    /// appended to); from anyone else they are replaced, so a client cannot spoof its address.
    pub trusted_peers: Vec<IpNet>,
    /// TCP connect to an upstream address; past it the request is answered 504.
    #[serde(rename = "connect_timeout_ms", with = "ms")]
    pub connect_timeout: Duration,
    /// A client must send a complete request head within this time. hyper starts the timer
    /// when it starts waiting for a head, so it also closes keep-alive connections idle for
    /// this long and slowloris clients.
    #[serde(rename = "header_read_timeout_ms", with = "ms")]
    pub header_read_timeout: Duration,
    /// From sending the request to receiving the upstream's response head; past it: 504.
    #[serde(rename = "upstream_timeout_ms", with = "ms")]
    pub upstream_timeout: Duration,
    /// How long an idle pooled upstream connection is kept for reuse. Keep it below the
    /// apps' own keep-alive timeout (Node's default is 5 s): reusing a connection the app is
    /// closing at that moment fails the request with a 502.
    #[serde(rename = "upstream_idle_timeout_ms", with = "ms")]
    pub upstream_idle_timeout: Duration,
    /// Idle pooled connections kept per upstream address.
    pub upstream_max_idle: usize,
    /// Largest request body accepted; larger ones are answered 413.
    pub max_body_bytes: u64,
    /// Largest request head (request line + headers) accepted; hyper answers 431 past it.
    pub max_header_bytes: usize,
    /// How long a request to a paused service is held before it is answered 503.
    #[serde(rename = "pause_timeout_ms", with = "ms")]
    pub pause_timeout: Duration,
    /// One health-gate probe attempt (connect + request + response head).
    #[serde(rename = "probe_timeout_ms", with = "ms")]
    pub probe_timeout: Duration,
    /// Where the route table is persisted (JSON) after every change and restored from at
    /// start, so the proxy keeps serving while the control plane restarts.
    pub state_file: Option<PathBuf>,
    /// Extra host names mapped to services, for routes without a routed endpoint (tests,
    /// byo setups). Matched like endpoint domains: case-insensitive, port ignored.
    pub host_aliases: BTreeMap<String, ServiceId>,
    /// The service receiving requests whose host matches nothing; unknown hosts get 404 if unset.
    pub fallback_service: Option<ServiceId>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            tls_listen: None,
            https_port: None,
            tls_certificates: Vec::new(),
            trusted_peers: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            header_read_timeout: Duration::from_secs(30),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(4),
            upstream_max_idle: 256,
            max_body_bytes: 64 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            pause_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(2),
            state_file: None,
            host_aliases: BTreeMap::new(),
            fallback_service: None,
        }
    }
}

impl ProxyConfig {
    pub(crate) fn validate(&self) -> Result<(), crate::ProxyError> {
        // hyper panics on a read buffer below 8 KiB; refuse it here with a message instead.
        if self.max_header_bytes < 8192 {
            return Err(crate::ProxyError::Config(
                "max_header_bytes must be at least 8192".into(),
            ));
        }
        if self.header_read_timeout.is_zero() || self.upstream_timeout.is_zero() {
            return Err(crate::ProxyError::Config(
                "timeouts must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

mod ms {
    use std::time::Duration;

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        let ms = <u64 as serde::Deserialize>::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}
