//! Shared helpers for the end-to-end tests: in-process hyper backends, a proxy on an
//! ephemeral loopback port, a keep-alive client and a load generator. Loopback only.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{Endpoint, HealthCheck};
use clank_core::proxy::{Cutover, Route, Target};
use clank_proxy::{ClankProxy, ProxyConfig};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|n| match n {}).boxed()
}

/// A small HTTP backend: `/` answers its name, `/health` 200 or 503, `/slow?ms=N`,
/// `/headers` echoes the request headers, `/echo` streams the body back, `/ws` upgrades
/// and echoes bytes.
#[derive(Clone)]
pub struct Backend {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub healthy: Arc<AtomicBool>,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    pub stop: CancellationToken,
}

pub async fn backend(name: &'static str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = Backend {
        name,
        addr: listener.local_addr().unwrap(),
        healthy: Arc::new(AtomicBool::new(true)),
        connections: Arc::default(),
        requests: Arc::default(),
        stop: CancellationToken::new(),
    };
    let st = b.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = st.stop.cancelled() => return,
                r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
            };
            st.connections.fetch_add(1, Ordering::Relaxed);
            let st2 = st.clone();
            let stop = st.stop.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(st2.clone(), req));
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades();
                tokio::pin!(conn);
                // Stopping behaves like a SIGTERM'd app: finish in-flight, close idle conns.
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
    });
    b
}

async fn handle(b: Backend, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    b.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let res = match path.as_str() {
        "/health" => {
            let ok = b.healthy.load(Ordering::Relaxed);
            let mut r = Response::new(full(if ok { "ok" } else { "sick" }));
            if !ok {
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            r
        }
        "/slow" => {
            let ms: u64 = query
                .strip_prefix("ms=")
                .and_then(|v| v.parse().ok())
                .unwrap_or(500);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Response::new(full(b.name))
        }
        "/headers" => {
            let mut text = String::new();
            for (k, v) in req.headers() {
                text.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            Response::new(full(text))
        }
        "/trickle" => Response::new(
            Trickle {
                tick: tokio::time::interval(Duration::from_millis(50)),
                left: 200,
            }
            .boxed(),
        ),
        "/echo" => Response::new(
            req.into_body()
                .map_err(|e| -> BoxError { e.into() })
                .boxed(),
        ),
        "/ws" => {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(Empty::new().map_err(|n| match n {}).boxed())
                .unwrap()
        }
        _ => Response::builder()
            .header("x-backend", b.name)
            .header("connection", "keep-alive")
            .header("keep-alive", "timeout=30")
            .body(full(b.name))
            .unwrap(),
    };
    Ok(res)
}

pub struct TestProxy {
    pub proxy: ClankProxy,
    pub addr: SocketAddr,
    pub stop: CancellationToken,
}

pub async fn start_proxy(config: ProxyConfig) -> TestProxy {
    let proxy = ClankProxy::new(config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let p = proxy.clone();
    let s = stop.clone();
    tokio::spawn(async move { p.serve(listener, s).await });
    TestProxy { proxy, addr, stop }
}

pub fn route(service: ServiceId, host: &str, addrs: Vec<SocketAddr>) -> Route {
    Route {
        service,
        endpoint: Some(Endpoint::LanOnly {
            domains: vec![host.to_owned()],
        }),
        target: Target {
            deployment: DeploymentId::new(),
            addrs,
        },
    }
}

pub fn cutover(route: Route, drain: Duration) -> Cutover {
    Cutover {
        route,
        health: HealthCheck::Http {
            port: 0,
            path: "/health".into(),
        },
        gate_timeout: Duration::from_secs(2),
        drain_timeout: drain,
    }
}

/// One keep-alive HTTP/1.1 connection to the proxy.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(Conn { sender })
    }

    pub async fn send(
        &mut self,
        req: Request<Body>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
        self.sender.ready().await?;
        let res = self.sender.send_request(req).await?;
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    pub async fn get(
        &mut self,
        host: &str,
        path: &str,
    ) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
        self.send(get_req(host, path)).await
    }
}

pub fn get_req(host: &str, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", host)
        .body(full(Bytes::new()))
        .unwrap()
}

pub fn body(b: impl Into<Bytes>) -> Body {
    full(b)
}

/// A GET over a fresh connection.
pub async fn get_once(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(StatusCode, HeaderMap, Bytes), BoxError> {
    Conn::open(addr).await?.get(host, path).await
}

/// Counts of a load run.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub ok: AtomicU64,
    pub non_2xx: AtomicU64,
    pub socket_errors: AtomicU64,
    pub by_backend: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// `workers` keep-alive clients (or one connection per request when `fresh`) sending GETs
/// until `stop`; every error is counted, never retried silently.
pub fn load(
    addr: SocketAddr,
    host: &'static str,
    workers: usize,
    fresh: bool,
    stop: CancellationToken,
) -> (Arc<LoadStats>, tokio::task::JoinSet<()>) {
    let stats = Arc::new(LoadStats::default());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let stats = stats.clone();
        let stop = stop.clone();
        set.spawn(async move {
            let mut conn: Option<Conn> = None;
            while !stop.is_cancelled() {
                if conn.is_none() || fresh {
                    match Conn::open(addr).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            eprintln!("connect error: {e}");
                            stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                match c.get(host, "/").await {
                    Ok((status, headers, _)) if status.is_success() => {
                        stats.ok.fetch_add(1, Ordering::Relaxed);
                        let name = headers
                            .get("x-backend")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("?")
                            .to_owned();
                        *stats.by_backend.lock().unwrap().entry(name).or_default() += 1;
                    }
                    Ok((status, _, body)) => {
                        eprintln!("non-2xx: {status} {body:?}");
                        stats.non_2xx.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        eprintln!("socket error: {e}");
                        stats.socket_errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        });
    }
    (stats, set)
}

/// Raw bytes in, raw bytes out (until close or `wait`), for malformed-traffic tests.
pub async fn raw(addr: SocketAddr, send: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(send).await.unwrap();
    let mut out = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// A response body that sends one byte every 50 ms: a long download in flight.
struct Trickle {
    tick: tokio::time::Interval,
    left: usize,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        match self.tick.poll_tick(cx) {
            std::task::Poll::Ready(_) => {
                self.left -= 1;
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(b"x")))))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}
