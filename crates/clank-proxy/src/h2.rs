//! HTTP/2 clients (TLS + ALPN `h2`) on hyper, forwarded with hyper-util's pooled client:
//! header rewriting (hop-by-hop, `X-Forwarded-*`), the upstream exchange and its error mapping
//! (413/502/504), upgrade tunnels, response bodies cut off at the drain timeout, and the
//! access log. Admission is [`Shared::admit`], shared with HTTP/1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::admission::{Admission, HOP_BY_HOP, Listener, Local, Shared};
use crate::config::ProxyConfig;
use crate::metrics::{Metrics, UpstreamError};
use crate::table::{InflightGuard, TargetState, normalise_host};
use crate::tunnel::splice;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the proxy sends or forwards.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type UpstreamClient = Client<HttpConnector, ProxyBody>;

impl Local {
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        let mut res = Response::new(full(self.body));
        *res.status_mut() = self.status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Some(location) = self.location {
            res.headers_mut().insert(header::LOCATION, location);
        }
        res
    }
}

pub(crate) fn build_client(config: &ProxyConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    connector.enforce_http(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.upstream_idle_timeout)
        .pool_max_idle_per_host(config.upstream_max_idle)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The client's Host header is forwarded as is; never derive one from the upstream address.
        .set_host(false)
        // Small requests go out in one flattened write rather than a writev of pieces.
        .http1_writev(false)
        .build(connector)
}

pub(crate) fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    Local::text(status, text).into_response()
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Whether the request asks for a protocol switch (`Connection: upgrade` + `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Remove hop-by-hop headers, including every header the `Connection` header names.
/// `keep_upgrade` leaves `Upgrade` (and re-adds `Connection: upgrade`) for a protocol switch.
fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Set `X-Forwarded-*`: kept and appended to from trusted peers, replaced from anyone else.
fn set_forwarded(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    tls: bool,
    trusted: bool,
    host: Option<&HeaderValue>,
) {
    let peer_ip = peer.ip().to_canonical().to_string();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if trusted && !prior.trim().is_empty() => format!("{prior}, {peer_ip}"),
        _ => peer_ip,
    };
    if let Ok(v) = HeaderValue::try_from(xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => {
                headers.insert(X_FORWARDED_HOST, h.clone());
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    if !trusted {
        // An untrusted RFC 7239 header would contradict the X-Forwarded-* we just wrote.
        headers.remove(&FORWARDED);
    }
}

/// The request's host: the URI authority (absolute-form, HTTP/2) or the Host header.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(a) = req.uri().authority() {
        return Some(normalise_host(a.as_str()).into_owned());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| normalise_host(h).into_owned())
}

fn is_length_limit(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<LengthLimitError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

fn is_timeout(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        // hyper-util's connector reports its connect timeout as a plain message.
        if e.to_string().contains("timed out") {
            return true;
        }
        cur = e.source();
    }
    false
}

impl Shared {
    /// The whole request: never fails, every problem becomes a status code.
    pub(crate) async fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        listener: Listener,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let host = request_host(&req).unwrap_or_default();
        // Capture what the access log needs only when it is on: no allocation otherwise.
        let log =
            tracing::enabled!(target: "clank_proxy::access", tracing::Level::INFO).then(|| {
                (
                    Instant::now(),
                    req.method().clone(),
                    req.uri().path().to_owned(),
                )
            });
        let (res, upstream) = self.dispatch(peer, listener, &host, req).await;
        let status = res.status().as_u16();
        self.metrics.record_status(status);
        if let Some((started, method, path)) = log {
            tracing::info!(
                target: "clank_proxy::access",
                %peer,
                %method,
                host = %host,
                path = %path,
                status,
                upstream = %upstream.map_or_else(|| "-".to_owned(), |a| a.to_string()),
                micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
        }
        Ok(res)
    }

    async fn dispatch(
        &self,
        peer: SocketAddr,
        listener: Listener,
        host: &str,
        mut req: Request<Incoming>,
    ) -> (Response<ProxyBody>, Option<http::uri::Authority>) {
        let tls = listener == Listener::Tls;
        let content_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let (guard, authority) = match self
            .admit(host, path_and_query, listener, content_length)
            .await
        {
            Admission::Local(local, upstream) => return (local.into_response(), upstream),
            Admission::Forward {
                guard, authority, ..
            } => (guard, authority),
        };
        let target = guard.target.clone();

        let upgrade = wants_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let trusted = self
            .config
            .trusted_peers
            .iter()
            .any(|n| n.contains(peer.ip()));

        let (mut parts, body) = req.into_parts();
        // Reuse the already parsed path and query (no copy, no re-parse).
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let uri = Uri::builder()
            .scheme(http::uri::Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build();
        let Ok(uri) = uri else {
            return (
                plain(StatusCode::BAD_REQUEST, "bad request target\n"),
                Some(authority),
            );
        };
        // The name the route was chosen by: an HTTP/2 `:authority` (or an absolute-form
        // target) wins over a `Host` header, so the upstream sees the host it is routed for,
        // never another one the client also sent.
        let original_host = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .or_else(|| parts.headers.get(header::HOST).cloned());
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        strip_hop_by_hop(&mut parts.headers, upgrade);
        set_forwarded(
            &mut parts.headers,
            peer,
            tls,
            trusted,
            original_host.as_ref(),
        );
        if let Some(h) = original_host {
            parts.headers.insert(header::HOST, h);
        }
        // Bodyless requests (most GETs) skip the limit wrapper and its per-frame checks.
        let body = if upgrade || body.is_end_stream() {
            empty()
        } else {
            Limited::new(
                body,
                usize::try_from(self.config.max_body_bytes).unwrap_or(usize::MAX),
            )
            .boxed_unsync()
        };
        let upstream_req = Request::from_parts(parts, body);

        let exchange = tokio::time::timeout(
            self.config.upstream_timeout,
            self.client.request(upstream_req),
        );
        let result = tokio::select! {
            r = exchange => r,
            () = target.abandon.cancelled() => {
                self.metrics.record_upstream_error(UpstreamError::Abandoned);
                return (plain(StatusCode::GATEWAY_TIMEOUT, "drain timeout: request abandoned\n"), Some(authority));
            }
        };
        let mut res = match result {
            Err(_) => {
                self.metrics.record_upstream_error(UpstreamError::Timeout);
                return (
                    plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
                    Some(authority),
                );
            }
            Ok(Err(e)) => {
                if is_length_limit(&e) {
                    return (
                        plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
                        Some(authority),
                    );
                }
                let (kind, status, text) = if e.is_connect() && is_timeout(&e) {
                    (
                        UpstreamError::Timeout,
                        StatusCode::GATEWAY_TIMEOUT,
                        "upstream connect timed out\n",
                    )
                } else if e.is_connect() {
                    (
                        UpstreamError::Connect,
                        StatusCode::BAD_GATEWAY,
                        "upstream unreachable\n",
                    )
                } else {
                    (
                        UpstreamError::Protocol,
                        StatusCode::BAD_GATEWAY,
                        "bad response from upstream\n",
                    )
                };
                self.metrics.record_upstream_error(kind);
                tracing::warn!(%authority, error = %e, "upstream exchange failed");
                return (plain(status, text), Some(authority));
            }
            Ok(Ok(res)) => res,
        };

        if res.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut res);
            // The tunnel outlives the request: it is not counted in flight (see `tunnel`).
            drop(guard);
            tokio::spawn(tunnel(
                client_upgrade,
                upstream_upgrade,
                target,
                self.metrics.clone(),
            ));
            let (parts, _) = res.into_parts();
            return (Response::from_parts(parts, empty()), Some(authority));
        }

        strip_hop_by_hop(res.headers_mut(), false);
        let (parts, body) = res.into_parts();
        let body = GuardedBody {
            inner: body,
            guard: Some(guard),
            abandon: None,
        };
        (
            Response::from_parts(parts, body.boxed_unsync()),
            Some(authority),
        )
    }
}

/// A WebSocket (or other upgraded) tunnel. Policy: tunnels are not in-flight requests (they
/// can live for hours, a drain cannot wait for them); when their target is retired they get a
/// grace period equal to the cutover's drain timeout, then both sides are closed.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    target: Arc<TargetState>,
    metrics: Arc<Metrics>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    splice(&mut client, &mut upstream, &target, &metrics, None).await;
}

/// The upstream response body, holding the request's in-flight guard until it ends, and cut
/// off (an error, which makes hyper abort the connection) if the target is abandoned.
struct GuardedBody {
    inner: Incoming,
    guard: Option<InflightGuard>,
    /// Made on the first `Pending` only: most bodies are complete at the first poll, and
    /// registering for cancellation costs an allocation and a lock.
    abandon: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(guard) = &this.guard {
            let abandoned = match &mut this.abandon {
                Some(fut) => fut.as_mut().poll(cx).is_ready(),
                None => guard.target.abandon.is_cancelled(),
            };
            if abandoned {
                this.guard = None;
                return Poll::Ready(Some(Err("drain timeout: response abandoned".into())));
            }
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.guard = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.guard = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                if let (Some(guard), None) = (&this.guard, &this.abandon) {
                    let mut fut = Box::pin(guard.target.abandon.clone().cancelled_owned());
                    // Register the waker now; if it fired in between, wake to cut off at once.
                    if fut.as_mut().poll(cx).is_ready() {
                        cx.waker().wake_by_ref();
                    }
                    this.abandon = Some(fut);
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl std::fmt::Debug for GuardedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedBody").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_headers_replaced_unless_trusted() {
        let peer: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        let host = HeaderValue::from_static("shop.example");
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("6.6.6.6"));
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        h.insert(FORWARDED, HeaderValue::from_static("for=6.6.6.6"));
        let mut untrusted = h.clone();
        set_forwarded(&mut untrusted, peer, false, false, Some(&host));
        assert_eq!(untrusted[&X_FORWARDED_FOR], "192.0.2.9");
        assert_eq!(untrusted[&X_FORWARDED_PROTO], "http");
        assert_eq!(untrusted[&X_FORWARDED_HOST], "shop.example");
        assert!(!untrusted.contains_key(&FORWARDED));
        set_forwarded(&mut h, peer, false, true, Some(&host));
        assert_eq!(h[&X_FORWARDED_FOR], "6.6.6.6, 192.0.2.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }
}
