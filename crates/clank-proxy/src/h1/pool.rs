//! Upstream connections: opened with a timeout, and kept idle per address for reuse.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::StatusCode;
use tokio::net::TcpStream;

use crate::admission::Local;
use crate::metrics::UpstreamError;

use super::UPSTREAM_BUF;
use super::conn::Failed;

/// One upstream connection with its read buffer.
#[derive(Debug)]
pub(super) struct Upstream {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
    /// Came from the pool: a failure before any response byte may be the upstream having
    /// closed it meanwhile, and an idempotent request whose body is here whole is then retried
    /// once on a new connection.
    pub(super) reused: bool,
}

#[derive(Debug)]
struct Idle {
    stream: TcpStream,
    buf: BytesMut,
    since: Instant,
}

/// Idle keep-alive connections to upstream addresses, reused most-recently-idle first.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
    max_idle: usize,
    idle_timeout: Duration,
    sweeping: AtomicBool,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
            sweeping: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle>>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// An idle connection to `addr` that is still open. The check costs no system call when
    /// nothing arrived on the socket (tokio knows it is not readable); a closed one is dropped.
    pub(super) fn checkout(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.lock();
        let list = idle.get_mut(&addr)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() >= self.idle_timeout {
                continue;
            }
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Some(Upstream {
                        stream: c.stream,
                        buf: c.buf,
                        reused: true,
                    });
                }
                // Closed, reset, or bytes nobody asked for: not reusable.
                _ => continue,
            }
        }
        None
    }

    pub(super) fn checkin(self: &Arc<Self>, addr: SocketAddr, up: Upstream) {
        if !up.buf.is_empty() || self.max_idle == 0 {
            return;
        }
        {
            let mut idle = self.lock();
            let list = idle.entry(addr).or_default();
            if list.len() >= self.max_idle {
                return;
            }
            list.push(Idle {
                stream: up.stream,
                buf: up.buf,
                since: Instant::now(),
            });
        }
        if !self.sweeping.swap(true, Ordering::AcqRel) {
            tokio::spawn(sweep(Arc::downgrade(self)));
        }
    }

    /// Close connections idle past the timeout; whether any are left.
    fn sweep_once(&self) -> bool {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|c| c.since.elapsed() < self.idle_timeout);
            !list.is_empty()
        });
        !idle.is_empty()
    }
}

/// Runs while the pool holds connections: closes the ones idle too long (an address that is
/// no longer routed keeps none open), then ends; the next check-in starts it again.
async fn sweep(pool: Weak<Pool>) {
    loop {
        let Some(period) = pool
            .upgrade()
            .map(|p| (p.idle_timeout / 2).max(Duration::from_millis(50)))
        else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(pool) = pool.upgrade() else { return };
        if !pool.sweep_once() {
            pool.sweeping.store(false, Ordering::Release);
            // A check-in may have raced the flag: take the job back if so.
            if pool.sweep_once() && !pool.sweeping.swap(true, Ordering::AcqRel) {
                continue;
            }
            return;
        }
    }
}

pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Upstream, Failed> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Upstream {
                stream,
                buf: BytesMut::with_capacity(UPSTREAM_BUF),
                reused: false,
            })
        }
        Ok(Err(e)) => {
            tracing::warn!(%addr, error = %e, "upstream connect failed");
            Err(Failed::Answer(
                Local::text(StatusCode::BAD_GATEWAY, "upstream unreachable\n"),
                Some(UpstreamError::Connect),
            ))
        }
        Err(_) => Err(Failed::Answer(
            Local::text(StatusCode::GATEWAY_TIMEOUT, "upstream connect timed out\n"),
            Some(UpstreamError::Timeout),
        )),
    }
}
