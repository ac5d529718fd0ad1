//! The REST API: routes under `/v1`, addressed like everything else in Clank
//! (`/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}`), JSON in and out,
//! bearer-token auth and the role table on every endpoint.

mod audit;
pub mod auth;
mod builds;
pub mod error;
mod instance;
mod members;
pub mod openapi;
mod routes;

pub(crate) use instance::pin_operator;
mod servers;
mod streams;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use clank_platform::Platform;
use tokio_util::sync::CancellationToken;

use crate::ApiLimits;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    /// Open event and log-follow streams, counted per token and per workspace; they end when
    /// shutdown begins.
    streams: Arc<streams::OpenStreams>,
}

impl AppState {
    /// `shutdown` is cancelled when the daemon begins to stop: every open stream ends then.
    pub fn new(platform: Arc<Platform>, limits: &ApiLimits, shutdown: CancellationToken) -> Self {
        AppState {
            platform,
            streams: Arc::new(streams::OpenStreams::new(limits, shutdown)),
        }
    }
}

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router(state: AppState) -> Router {
    routes::routes()
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
