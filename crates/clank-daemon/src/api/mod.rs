//! The REST API: routes under `/v1`, addressed like everything else in Clank
//! (`/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}`), JSON in and out,
//! bearer-token auth and the role table on every endpoint.

mod audit;
pub mod auth;
pub mod error;
pub mod openapi;
mod routes;
mod servers;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use clank_platform::Platform;

/// Shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
}

/// Largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

pub fn router(platform: Arc<Platform>) -> Router {
    routes::routes()
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState { platform })
}
