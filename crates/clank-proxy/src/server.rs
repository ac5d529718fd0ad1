//! Listeners: the accept loops for plain HTTP, TLS (HTTP/1.1 or HTTP/2 by ALPN) and the admin
//! endpoint, and a graceful shutdown. HTTP/1 connections are served by [`crate::h1`], HTTP/2
//! ones and the admin endpoint by hyper.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::forward::{Listener, ProxyBody, Shared, full};

/// Accept until `shutdown` is cancelled, then let open connections finish their current
/// request (hyper's graceful shutdown) and return once they have.
pub(crate) async fn serve_proxy(
    shared: Arc<Shared>,
    listener: TcpListener,
    kind: Listener,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin or stop serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(serve_connection(shared, stream, peer, kind, shutdown));
    }
    tracker.close();
    drain(&tracker, shared.config.upstream_timeout).await;
}

/// Let open connections finish what they are doing, for at most `grace` (a client that stops
/// reading a response must not hold a shutdown forever).
async fn drain(tracker: &TaskTracker, grace: std::time::Duration) {
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "connections still open at the end of the shutdown grace period; dropping them"
        );
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    crate::h1::serve(shared, stream, peer, kind, shutdown).await;
}

/// The TLS listener: handshake (bounded by the header timeout, so a silent client cannot hold
/// a slot), then HTTP/2 if ALPN chose it, HTTP/1.1 otherwise.
pub(crate) async fn serve_tls(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(shared.config.header_read_timeout))
        .keep_alive_timeout(shared.config.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "TLS accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let h2 = h2.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            let timeout = shared.config.header_read_timeout;
            let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let alpn = tls.get_ref().1.alpn_protocol();
            if alpn == Some(crate::tls::ACME_TLS_ALPN) {
                // A TLS-ALPN-01 validation: the handshake was the answer; no HTTP follows.
                let mut tls = tls;
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                return;
            }
            let is_h2 = alpn == Some(b"h2".as_slice());
            if is_h2 {
                let service =
                    service_fn(move |req| shared.clone().handle(peer, Listener::Tls, req));
                let conn = h2.serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    () = shutdown.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "HTTP/2 connection ended with an error");
                }
            } else {
                crate::h1::serve(shared, tls, peer, Listener::Tls, shutdown).await;
            }
        });
    }
    tracker.close();
    drain(&tracker, shared.config.upstream_timeout).await;
}

/// The admin listener: `GET /metrics` (Prometheus text), `GET /routes` (JSON), `GET /healthz`.
pub(crate) async fn serve_admin(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tracker.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(admin(&shared, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    tracker.close();
    drain(&tracker, shared.config.upstream_timeout).await;
}

fn admin(shared: &Shared, req: &Request<Incoming>) -> Response<ProxyBody> {
    let (status, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, shared.metrics.render()),
        "/routes" => {
            let routes: Vec<_> = shared.current().routes().into_values().collect();
            match serde_json::to_string_pretty(&routes) {
                Ok(json) => (StatusCode::OK, json),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
        "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
    };
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res
}
