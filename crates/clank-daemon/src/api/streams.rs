//! Open Server-Sent Event streams (deployment events, service logs followed): at most
//! `api_max_streams_per_token` per token and `api_max_streams_per_workspace` per workspace,
//! one more is answered 429 naming the limit; a slot is held by a guard that lives inside the
//! stream, so it frees however the stream ends. Every stream ends when shutdown begins, so an
//! open follower never holds the daemon up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use clank_core::id::{TokenId, WorkspaceId};
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::auth::Principal;
use super::error::{ApiError, ApiResult};
use crate::ApiLimits;

/// The open streams, and the signal that ends them.
#[derive(Debug)]
pub(super) struct OpenStreams {
    per_token: usize,
    per_workspace: usize,
    shutdown: CancellationToken,
    open: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    tokens: HashMap<TokenId, usize>,
    workspaces: HashMap<WorkspaceId, usize>,
}

impl OpenStreams {
    pub(super) fn new(limits: &ApiLimits, shutdown: CancellationToken) -> Self {
        OpenStreams {
            per_token: limits.max_streams_per_token,
            per_workspace: limits.max_streams_per_workspace,
            shutdown,
            open: Mutex::default(),
        }
    }

    /// A slot for one more stream of `p`'s token, or 429 naming the limit that is full.
    fn acquire(self: &Arc<Self>, p: &Principal) -> ApiResult<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let token = open.tokens.get(&p.token).copied().unwrap_or(0);
        if token >= self.per_token {
            return Err(too_many(format!(
                "this token already has {token} open event/log streams, the most one token may \
                 have; close one (end a `clank logs -f` or `deploy --follow`), or raise \
                 `api_max_streams_per_token` (CLANK_API_MAX_STREAMS_PER_TOKEN) in the daemon's \
                 config"
            )));
        }
        let workspace = open.workspaces.get(&p.workspace.id).copied().unwrap_or(0);
        if workspace >= self.per_workspace {
            return Err(too_many(format!(
                "workspace `{}` already has {workspace} open event/log streams, the most one \
                 workspace may have; close one, or raise `api_max_streams_per_workspace` \
                 (CLANK_API_MAX_STREAMS_PER_WORKSPACE) in the daemon's config",
                p.workspace.slug
            )));
        }
        *open.tokens.entry(p.token).or_default() += 1;
        *open.workspaces.entry(p.workspace.id).or_default() += 1;
        Ok(Slot {
            streams: self.clone(),
            token: p.token,
            workspace: p.workspace.id,
        })
    }

    fn release(&self, token: TokenId, workspace: WorkspaceId) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        decrement(&mut open.tokens, token);
        decrement(&mut open.workspaces, workspace);
    }

    /// A slot for one more stream of `p`'s token (429 if a limit is full), taken before the
    /// stream is opened; the stream it then carries ([`Slot::carry`]) gives it back on end.
    pub(super) fn reserve(self: &Arc<Self>, p: &Principal) -> ApiResult<Slot> {
        self.acquire(p)
    }

    /// Cancelled when shutdown begins (for sessions that are not streams: terminals).
    pub(super) fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// `stream`, ended when shutdown begins (for streams that take no slot).
    pub(super) fn until_shutdown<S: Stream + Send + 'static>(
        &self,
        stream: S,
    ) -> impl Stream<Item = S::Item> + Send + 'static + use<S> {
        stream.take_until(self.shutdown.clone().cancelled_owned())
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

fn too_many(message: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_streams", message)
}

/// One open stream's place in the counts, given back on drop.
#[derive(Debug)]
pub(super) struct Slot {
    streams: Arc<OpenStreams>,
    token: TokenId,
    workspace: WorkspaceId,
}

impl Slot {
    /// `stream`, holding this slot until it ends or is dropped (the client went away), and
    /// ended when shutdown begins.
    pub(super) fn carry<S: Stream + Send + 'static>(
        self,
        stream: S,
    ) -> impl Stream<Item = S::Item> + Send + 'static {
        self.streams.until_shutdown(stream).map(move |item| {
            let _held = &self;
            item
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.streams.release(self.token, self.workspace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::id::UserId;
    use clank_core::model::{Role, Workspace};

    fn principal(workspace: &Workspace) -> Principal {
        Principal {
            workspace: workspace.clone(),
            user: UserId::new(),
            token: TokenId::new(),
            token_name: "t".into(),
            role: Role::Viewer,
        }
    }

    fn streams(per_token: usize, per_workspace: usize) -> Arc<OpenStreams> {
        let limits = ApiLimits {
            max_streams_per_token: per_token,
            max_streams_per_workspace: per_workspace,
            ..ApiLimits::default()
        };
        Arc::new(OpenStreams::new(&limits, CancellationToken::new()))
    }

    #[test]
    fn a_token_beyond_its_limit_gets_429_naming_the_setting_and_a_dropped_slot_frees() {
        let s = streams(2, 10);
        let ws = Workspace::new("acme", None, clank_core::Timestamp::now()).unwrap();
        let p = principal(&ws);
        let (a, _b) = (s.acquire(&p).unwrap(), s.acquire(&p).unwrap());
        let e = s.acquire(&p).unwrap_err();
        assert_eq!(
            (e.status(), e.code()),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_streams")
        );
        let body = format!("{e:?}");
        assert!(body.contains("CLANK_API_MAX_STREAMS_PER_TOKEN"), "{body}");
        // Another token of the same workspace is not affected.
        s.acquire(&principal(&ws)).unwrap();
        drop(a);
        s.acquire(&p).unwrap();
    }

    #[test]
    fn the_workspace_limit_counts_every_token_of_the_workspace() {
        let s = streams(10, 2);
        let ws = Workspace::new("acme", None, clank_core::Timestamp::now()).unwrap();
        let other = Workspace::new("other", None, clank_core::Timestamp::now()).unwrap();
        let _held = [
            s.acquire(&principal(&ws)).unwrap(),
            s.acquire(&principal(&ws)).unwrap(),
        ];
        let e = s.acquire(&principal(&ws)).unwrap_err();
        assert!(format!("{e:?}").contains("api_max_streams_per_workspace"));
        s.acquire(&principal(&other)).unwrap();
    }

    #[tokio::test]
    async fn a_carried_stream_holds_its_slot_until_dropped_and_ends_at_shutdown() {
        let shutdown = CancellationToken::new();
        let limits = ApiLimits {
            max_streams_per_token: 1,
            ..ApiLimits::default()
        };
        let s = Arc::new(OpenStreams::new(&limits, shutdown.clone()));
        let ws = Workspace::new("acme", None, clank_core::Timestamp::now()).unwrap();
        let p = principal(&ws);
        let slot = s.reserve(&p).unwrap();
        let mut open = Box::pin(slot.carry(futures_util::stream::pending::<()>()));
        assert!(s.reserve(&p).is_err());
        shutdown.cancel();
        assert_eq!(open.next().await, None, "the stream ends at shutdown");
        assert!(s.reserve(&p).is_err(), "held until the stream is dropped");
        drop(open);
        assert!(s.reserve(&p).is_ok());
    }
}
