//! The API's HTTP/1 server: our own accept loop over hyper, so every connection is bounded.
//!
//! - **Cap.** At most `api_max_connections` connections are served at once: a permit is taken
//!   *before* `accept`, so connections beyond the cap wait in the kernel's accept backlog
//!   (clients see a slow connect, never a reset) until one closes.
//! - **Deadlines.** A connection must deliver a complete request head within
//!   `api_header_timeout_ms` of connecting, or of the first byte of its next request; a
//!   keep-alive connection with no request in flight is closed after `api_idle_timeout_ms`; a
//!   request body that stops arriving for `api_header_timeout_ms` closes it too. A connection
//!   with a response in progress (a long SSE stream included) has no deadline.
//!   hyper's own `header_read_timeout` is not used: it restarts whenever hyper waits for a
//!   head, idle keep-alive included, so it would also cap idle connections at the header
//!   timeout.
//! - **Shutdown.** When `stop` fires the listener closes, connections with no request in
//!   flight close at once, the others finish their response and close (SSE streams end on the
//!   same signal, see `api::streams`), and whatever is still open after `shutdown_timeout_ms`
//!   is dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::ApiLimits;

/// Serve `router` on `listener` within `limits` until `stop` fires, then drain: returns once
/// every connection has closed or `shutdown_timeout_ms` has passed since `stop`, whichever is
/// first, with the instant the whole daemon's shutdown must be done by.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ApiLimits,
    stop: CancellationToken,
) -> Instant {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    // Connections start draining only once the accept loop has counted them (for the log).
    let drain = CancellationToken::new();
    let hard_stop = CancellationToken::new();
    let deadlines = Deadlines {
        header: Duration::from_millis(limits.header_timeout_ms),
        idle: Duration::from_millis(limits.idle_timeout_ms),
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // Deadlines are ours (see the module docs); hyper's would need a timer and restart on idle.
    http.header_read_timeout(None);
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed; the loop ends with `stop`
            },
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: the
                    // listener itself is fine, so wait a moment and keep serving.
                    warn!(error = %e, "Accepting an API connection failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            http: http.clone(),
            router: router.clone(),
            deadlines,
            drain: drain.clone(),
            hard_stop: hard_stop.clone(),
        };
        connections.spawn(async move {
            connection.serve(stream, peer).await;
            drop(permit);
        });
    }
    drop(listener);
    let budget = Duration::from_millis(limits.shutdown_timeout_ms);
    let deadline = Instant::now() + budget;
    let open = limits.max_connections - slots.available_permits();
    info!(
        connections = open,
        "Shutdown requested; closing {open} connections, exiting within {} s.",
        budget.as_secs_f64()
    );
    drain.cancel();
    connections.close();
    if tokio::time::timeout_at(deadline, connections.wait())
        .await
        .is_err()
    {
        let left = limits.max_connections - slots.available_permits();
        warn!(
            connections = left,
            "Shutdown timeout reached: dropping {left} API connections still open."
        );
        hard_stop.cancel();
        connections.wait().await;
    }
    deadline
}

/// One accepted connection and what it needs to serve itself.
struct Connection {
    http: hyper::server::conn::http1::Builder,
    router: Router,
    deadlines: Deadlines,
    drain: CancellationToken,
    hard_stop: CancellationToken,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: std::net::SocketAddr) {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let router = TowerToHyperService::new(self.router);
        let tracked = activity.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let request = tracked.begin_request(!req.body().is_end_stream());
            let uploads = tracked.clone();
            let mut req = req.map(|body| {
                axum::body::Body::new(TrackedUpload {
                    inner: body,
                    activity: uploads,
                })
            });
            // Who is connected (the dashboard's sign-in limits failures per client).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let response = hyper::service::Service::call(&router, req);
            async move {
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(TrackedBody {
                        inner: body,
                        _request: request,
                    })
                }))
            }
        });
        // Upgrades (the terminal WebSocket) leave this loop: the upgraded socket is the
        // session's, bounded by its stream slot and ended at shutdown.
        let conn = self.http.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let expired = activity.expired(self.deadlines);
        tokio::pin!(expired);
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "API connection ended with an error.");
                    }
                    return;
                }
                why = &mut expired => {
                    debug!(%peer, "Closing an API connection: {why}.");
                    return;
                }
                _ = self.drain.cancelled(), if !draining => {
                    // Nothing in flight (idle, or a head still arriving): close now, hyper
                    // would wait for a fresh connection's first head. Otherwise finish the
                    // response in progress, then close.
                    if !activity.busy() {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = self.hard_stop.cancelled() => return,
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Deadlines {
    header: Duration,
    idle: Duration,
}

/// Where a connection is between requests, as its deadlines see it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head since `since`.
    Head { since: Instant },
    /// Keep-alive with nothing in flight since `since`.
    Idle { since: Instant },
    /// `requests` responses in progress: no deadline, unless a request body is still
    /// arriving; `upload` is when its last bytes came.
    Busy {
        requests: usize,
        upload: Option<Instant>,
    },
}

/// A connection's phase, moved by its reads (a byte after idling starts a head, bytes of a
/// request body are its progress), the service (a complete head starts a request), the
/// request bodies (their end) and the response bodies (the last one ending idles).
#[derive(Debug)]
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = f(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    /// An update that only moves a deadline later: the watchdog finds out when it wakes.
    fn update_quietly(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        *phase = f(*phase);
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn busy(&self) -> bool {
        matches!(self.phase(), Phase::Busy { .. })
    }

    fn read_bytes(&self) {
        match self.phase() {
            Phase::Idle { .. } => self.update(|p| match p {
                Phase::Idle { .. } => Phase::Head {
                    since: Instant::now(),
                },
                other => other,
            }),
            Phase::Busy {
                upload: Some(_), ..
            } => self.update_quietly(|p| match p {
                Phase::Busy {
                    requests,
                    upload: Some(_),
                } => Phase::Busy {
                    requests,
                    upload: Some(Instant::now()),
                },
                other => other,
            }),
            _ => {}
        }
    }

    /// A complete head: a request is in flight, its body (`uploading`) still to arrive.
    fn begin_request(self: &Arc<Self>, uploading: bool) -> InFlight {
        let upload = uploading.then(Instant::now);
        self.update(|p| match p {
            Phase::Busy { requests, .. } => Phase::Busy {
                requests: requests + 1,
                upload,
            },
            Phase::Head { .. } | Phase::Idle { .. } => Phase::Busy {
                requests: 1,
                upload,
            },
        });
        InFlight {
            activity: self.clone(),
        }
    }

    /// Completes when the connection has overrun its current deadline, naming which.
    async fn expired(&self, deadlines: Deadlines) -> &'static str {
        loop {
            let changed = self.changed.notified();
            let (at, why) = match self.phase() {
                Phase::Busy {
                    upload: Some(last), ..
                } => (
                    last + deadlines.header,
                    "the request body stalled past the header timeout",
                ),
                Phase::Busy { upload: None, .. } => {
                    changed.await;
                    continue;
                }
                Phase::Head { since } => (
                    since + deadlines.header,
                    "no complete request head within the header timeout",
                ),
                Phase::Idle { since } => (since + deadlines.idle, "idle past the idle timeout"),
            };
            if Instant::now() >= at {
                return why;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(at) => {}
            }
        }
    }
}

/// One request in flight, from its complete head until its response body is done (dropped).
#[derive(Debug)]
struct InFlight {
    activity: Arc<Activity>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.activity.update(|p| match p {
            Phase::Busy { requests, upload } if requests > 1 => Phase::Busy {
                requests: requests - 1,
                upload,
            },
            _ => Phase::Idle {
                since: Instant::now(),
            },
        });
    }
}

/// A response body that keeps its request in flight until hyper has sent it (or dropped it).
struct TrackedBody {
    inner: axum::body::Body,
    _request: InFlight,
}

impl Body for TrackedBody {
    type Data = <axum::body::Body as Body>::Data;
    type Error = <axum::body::Body as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body: while it has not all arrived, the connection's deadline is its progress.
struct TrackedUpload {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl TrackedUpload {
    fn done(&self) {
        self.activity.update(|p| match p {
            Phase::Busy { requests, .. } => Phase::Busy {
                requests,
                upload: None,
            },
            other => other,
        });
    }
}

impl Body for TrackedUpload {
    type Data = <Incoming as Body>::Data;
    type Error = <Incoming as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            self.done();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedUpload {
    fn drop(&mut self) {
        self.done();
    }
}

/// The client socket, telling its connection's [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_bytes();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_has_the_header_timeout() {
        let a = Activity::new();
        let started = Instant::now();
        let why = a.expired(DEADLINES).await;
        assert_eq!(started.elapsed(), DEADLINES.header);
        assert!(why.contains("header"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_has_no_deadline_and_its_end_starts_the_idle_one() {
        let a = Arc::new(Activity::new());
        let request = a.begin_request(false);
        let expired = a.expired(DEADLINES);
        tokio::pin!(expired);
        assert!(
            tokio::time::timeout(Duration::from_secs(3600), &mut expired)
                .await
                .is_err(),
            "a busy connection never expires"
        );
        let ended = Instant::now();
        drop(request);
        let why = expired.await;
        assert_eq!(ended.elapsed(), DEADLINES.idle);
        assert!(why.contains("idle"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_after_idling_starts_the_header_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.begin_request(false));
        tokio::time::sleep(Duration::from_secs(30)).await;
        let first_byte = Instant::now();
        a.read_bytes();
        let why = a.expired(DEADLINES).await;
        assert_eq!(first_byte.elapsed(), DEADLINES.header);
        assert!(why.contains("header"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_body_that_stops_arriving_has_the_header_timeout_from_its_last_bytes() {
        let a = Arc::new(Activity::new());
        let _request = a.begin_request(true);
        tokio::time::sleep(Duration::from_secs(8)).await;
        let progress = Instant::now();
        a.read_bytes();
        let why = a.expired(DEADLINES).await;
        assert_eq!(progress.elapsed(), DEADLINES.header);
        assert!(why.contains("body"), "{why}");
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_keep_the_connection_busy_until_the_last_ends() {
        let a = Arc::new(Activity::new());
        let (one, two) = (a.begin_request(false), a.begin_request(false));
        drop(one);
        assert!(matches!(a.phase(), Phase::Busy { requests: 1, .. }));
        drop(two);
        assert!(matches!(a.phase(), Phase::Idle { .. }));
    }
}
