//! Listeners: the one accept loop (with its graceful shutdown) and what it serves on plain
//! HTTP, TLS (HTTP/1.1 or HTTP/2 by ALPN) and the admin endpoint; the control socket uses it
//! too. HTTP/1 connections are served by [`crate::h1`], HTTP/2
//! ones and the admin endpoint by hyper.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::{Listener, Shared};
use crate::h2::{ProxyBody, full};

/// A listening socket the accept loop takes connections from (TCP for traffic and admin, Unix
/// for the control socket).
pub(crate) trait Accept {
    type Conn: Send + 'static;
    type Peer: Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Conn, Self::Peer)>> + Send;
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    type Peer = SocketAddr;
    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

impl Accept for UnixListener {
    type Conn = UnixStream;
    type Peer = tokio::net::unix::SocketAddr;
    fn accept(
        &self,
    ) -> impl Future<Output = io::Result<(UnixStream, tokio::net::unix::SocketAddr)>> + Send {
        UnixListener::accept(self)
    }
}

/// The one accept loop: accept on `listener` until `shutdown` is cancelled, serving each
/// connection in a task of its own; then let open connections finish (their current request:
/// each serves `shutdown` gracefully) for at most `grace`, or until they have when `None`.
pub(crate) async fn accept_loop<L, F, Fut>(
    listener: &L,
    name: &'static str,
    shutdown: &CancellationToken,
    grace: Option<Duration>,
    mut serve: F,
) where
    L: Accept + Sync,
    F: FnMut(L::Conn, L::Peer) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    loop {
        let (conn, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin or stop serving.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        tracker.spawn(serve(conn, peer));
    }
    tracker.close();
    match grace {
        Some(grace) => drain(&tracker, grace).await,
        None => tracker.wait().await,
    }
}

/// Serve proxied traffic: each connection on [`crate::h1`]. Returns once `shutdown` is
/// cancelled and open connections finished their current request.
pub(crate) async fn serve_proxy(
    shared: Arc<Shared>,
    listener: TcpListener,
    kind: Listener,
    shutdown: CancellationToken,
) {
    let grace = shared.config.upstream_timeout;
    accept_loop(
        &listener,
        "proxy",
        &shutdown,
        Some(grace),
        |stream, peer| serve_connection(shared.clone(), stream, peer, kind, shutdown.clone()),
    )
    .await;
}

/// Let open connections finish what they are doing, for at most `grace` (a client that stops
/// reading a response must not hold a shutdown forever).
async fn drain(tracker: &TaskTracker, grace: Duration) {
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
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(shared.config.header_read_timeout))
        .keep_alive_timeout(shared.config.header_read_timeout);
    let grace = shared.config.upstream_timeout;
    accept_loop(&listener, "TLS", &shutdown, Some(grace), |stream, peer| {
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        let h2 = h2.clone();
        let shutdown = shutdown.clone();
        async move {
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
        }
    })
    .await;
}

/// The admin listener: `GET /metrics` (Prometheus text), `GET /routes` (JSON), `GET /healthz`.
pub(crate) async fn serve_admin(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: CancellationToken,
) {
    let grace = shared.config.upstream_timeout;
    accept_loop(&listener, "admin", &shutdown, Some(grace), |stream, _| {
        let shared = shared.clone();
        async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(admin(&shared, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
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
