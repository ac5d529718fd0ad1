//! Admission: what both request paths (HTTP/1 in [`crate::h1`], HTTP/2 in [`crate::h2`])
//! decide before an upstream is contacted — ACME HTTP-01 tokens, the route lookup (and the
//! in-flight count taken under the same table read), the HTTPS redirect, the pause hold, the
//! target's address and the declared body size — and the state they share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use clank_core::id::ServiceId;
use http::StatusCode;
use http::header::{self, HeaderName, HeaderValue};
use tokio::sync::watch;

use crate::config::ProxyConfig;
use crate::metrics::Metrics;
use crate::table::{InflightGuard, Table};

/// Which listener a request arrived on: it decides which routes it may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The public plain-HTTP listener (redirects `public_direct` names to HTTPS).
    Plain,
    /// The public TLS listener.
    Tls,
    /// The LAN listener: plain HTTP, only `lan_only` routes, never redirected.
    Lan,
}

/// A response the proxy makes itself (errors, redirects, ACME tokens).
#[derive(Debug)]
pub(crate) struct Local {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
    pub(crate) content_type: &'static str,
    pub(crate) location: Option<HeaderValue>,
}

impl Local {
    pub(crate) fn text(status: StatusCode, text: &'static str) -> Self {
        Local {
            status,
            body: Bytes::from_static(text.as_bytes()),
            content_type: "text/plain; charset=utf-8",
            location: None,
        }
    }
}

/// What [`Shared::admit`] decided for a request.
pub(crate) enum Admission {
    /// Answer it here; the upstream it would have gone to, if one was chosen (access log).
    Local(Local, Option<http::uri::Authority>),
    /// Forward it to `addr`; `guard` counts it in flight on its target until it is done.
    Forward {
        guard: InflightGuard,
        addr: SocketAddr,
        authority: http::uri::Authority,
    },
}

impl Admission {
    fn local(
        status: StatusCode,
        text: &'static str,
        upstream: Option<http::uri::Authority>,
    ) -> Self {
        Admission::Local(Local::text(status, text), upstream)
    }
}

/// State shared by the listener tasks and the `Proxy` implementation.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    /// Read (and the target's in-flight count taken) under one read lock per request; a swap
    /// takes the write lock. That ordering is what makes the drain exact: once a swap
    /// returns, every request that saw the old table is already counted on the old target.
    pub(crate) table: RwLock<Arc<Table>>,
    /// The HTTP/2 path's upstream client (hyper-util's pool).
    pub(crate) client: crate::h2::UpstreamClient,
    /// The HTTP/1 path's idle upstream connections.
    pub(crate) upstreams: Arc<crate::h1::Pool>,
    pub(crate) metrics: Arc<Metrics>,
    /// Paused services; `paused_count` lets the request path skip the lock when none is.
    pub(crate) pauses: Mutex<HashMap<ServiceId, watch::Sender<bool>>>,
    pub(crate) paused_count: AtomicUsize,
    /// The TLS listener's port when there is one: public endpoints are then redirected there.
    pub(crate) https_port: Option<u16>,
    pub(crate) certs: Arc<crate::tls::CertStore>,
    /// ACME HTTP-01 responses the proxy serves itself: token → key authorization.
    pub(crate) acme_tokens: RwLock<HashMap<String, String>>,
}

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1), plus the
/// non-standard ones proxies commonly see.
pub(crate) const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

impl Shared {
    /// Look the host up and count the request on its target, under one table read.
    fn route(&self, host: &str, listener: Listener) -> Option<(ServiceId, InflightGuard, bool)> {
        let table = match self.table.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        let on_lan = match (listener, self.config.lan_listen.is_some()) {
            (Listener::Lan, _) => Some(true),
            (_, true) => Some(false),
            // No LAN listener configured: every route is served on the public listeners.
            (_, false) => None,
        };
        let (service, target, https_only) = table.lookup(host, on_lan)?;
        let guard = InflightGuard::new(target.clone(), self.metrics.clone());
        Some((service, guard, https_only))
    }

    fn pause_receiver(&self, service: ServiceId) -> Option<watch::Receiver<bool>> {
        if self.paused_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let pauses = match self.pauses.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        pauses
            .get(&service)
            .filter(|tx| *tx.borrow())
            .map(watch::Sender::subscribe)
    }

    /// The key authorization for an HTTP-01 `token` this proxy is answering, for any host (the
    /// CA validates each name of the order). Unknown tokens fall through to the app.
    fn acme_key_authorization(&self, token: &str) -> Option<String> {
        let tokens = match self.acme_tokens.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        tokens.get(token).cloned()
    }

    /// `308` to the same host and path over HTTPS (ACME HTTP-01 challenges excepted, since the
    /// CA fetches them over plain HTTP before there is a certificate).
    fn redirect_to_https(&self, host: &str, path_and_query: &str) -> Local {
        let location = match self.https_port {
            Some(443) | None => format!("https://{host}{path_and_query}"),
            Some(port) => format!("https://{host}:{port}{path_and_query}"),
        };
        match HeaderValue::try_from(location) {
            Ok(v) => Local {
                location: Some(v),
                ..Local::text(StatusCode::PERMANENT_REDIRECT, "moved to https\n")
            },
            Err(_) => Local::text(StatusCode::BAD_REQUEST, "bad host\n"),
        }
    }

    /// Everything decided before the upstream is contacted, for both request paths (hyper's
    /// for HTTP/2, [`crate::h1`] for HTTP/1): ACME tokens, the route lookup, the HTTPS
    /// redirect, the pause hold, the target's address and the declared body size.
    pub(crate) async fn admit(
        &self,
        host: &str,
        path_and_query: &str,
        listener: Listener,
        content_length: Option<u64>,
    ) -> Admission {
        let path = path_and_query
            .split_once('?')
            .map_or(path_and_query, |(p, _)| p);
        if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PREFIX)
            && let Some(key_authorization) = self.acme_key_authorization(token)
        {
            return Admission::Local(
                Local {
                    status: StatusCode::OK,
                    body: Bytes::from(key_authorization),
                    content_type: "application/octet-stream",
                    location: None,
                },
                None,
            );
        }
        let Some((service, mut guard, https_only)) = self.route(host, listener) else {
            return Admission::local(StatusCode::NOT_FOUND, "no route for this host\n", None);
        };
        if https_only
            && listener != Listener::Tls
            && self.https_port.is_some()
            && !path.starts_with(ACME_CHALLENGE_PREFIX)
        {
            drop(guard);
            return Admission::Local(self.redirect_to_https(host, path_and_query), None);
        }
        if let Some(mut paused) = self.pause_receiver(service) {
            // Hold without counting against the (old) target: a stop-first cutover stops it.
            drop(guard);
            let resumed =
                tokio::time::timeout(self.config.pause_timeout, paused.wait_for(|p| !*p)).await;
            if !matches!(resumed, Ok(Ok(_))) {
                return Admission::local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service is paused\n",
                    None,
                );
            }
            // Re-read the table: the route has usually moved while we waited.
            match self.route(host, listener) {
                Some((_, g, _)) => guard = g,
                None => {
                    return Admission::local(
                        StatusCode::NOT_FOUND,
                        "no route for this host\n",
                        None,
                    );
                }
            }
        }
        let Some((addr, authority)) = guard.target.pick() else {
            return Admission::local(StatusCode::BAD_GATEWAY, "target has no address\n", None);
        };
        let authority = authority.clone();
        if content_length.is_some_and(|len| len > self.config.max_body_bytes) {
            return Admission::local(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
                Some(authority),
            );
        }
        Admission::Forward {
            guard,
            addr,
            authority,
        }
    }
}
