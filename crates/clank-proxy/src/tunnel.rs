//! Upgraded tunnels (WebSocket and other protocol switches): both request paths end theirs in
//! [`splice`].

use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::table::TargetState;

/// Copy both ways between an upgraded client and upstream until either closes, the target
/// is retired (after its grace period) or `shutdown` (if given) is cancelled. Counted in the
/// `upgrades_open` gauge meanwhile. Both request paths end their tunnels here.
pub(crate) async fn splice<A, B>(
    client: &mut A,
    upstream: &mut B,
    target: &TargetState,
    metrics: &Metrics,
    shutdown: Option<&CancellationToken>,
) where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + ?Sized,
{
    metrics.upgrades_open.fetch_add(1, Ordering::Relaxed);
    let stopping = async {
        match shutdown {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(client, upstream) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "upgraded tunnel ended with an error");
            }
        }
        () = target.close_upgrades.cancelled() => {
            tracing::info!(deployment = %target.deployment, "closing upgraded tunnel: target retired");
        }
        () = stopping => {
            tracing::debug!("closing upgraded tunnel: the proxy is shutting down");
        }
    }
    metrics.upgrades_open.fetch_sub(1, Ordering::Relaxed);
}
