//! The REST API: routes under `/v1`, addressed like everything else in Clank
//! (`/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}`), JSON in and out,
//! bearer-token auth and the role table on every endpoint.

// Shared by the resource modules, which do not import one another (but for `instance`: the
// token-created body and the operator check).
pub mod auth;
pub mod error;
mod extract;
mod streams;

// One module per resource, each with its `routes()`.
mod audit;
mod builds;
mod config;
mod declarations;
mod deletion;
mod deployments;
mod environments;
mod events;
mod instance;
mod lifecycle;
mod members;
mod previews;
mod projects;
mod promotions;
mod servers;
mod services;
mod system;
mod teams;
mod templates;
mod terminal;
mod webhooks;

pub mod openapi;

// What the dashboard (`crate::ui`) does, through the REST handlers' own checks and audit.
pub(crate) mod dashboard;

pub(crate) use instance::pin_operator;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use clank_platform::Platform;
use tokio_util::sync::CancellationToken;
use utoipa_axum::router::OpenApiRouter;

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

/// Every documented endpoint: the router and the OpenAPI document are both made from this one
/// list (each handler's `#[utoipa::path]` gives its method and path), so neither can name an
/// endpoint the other lacks.
fn endpoints() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(system::routes())
        .merge(instance::routes())
        .merge(members::routes())
        .merge(teams::routes())
        .merge(servers::routes())
        .merge(webhooks::routes())
        .merge(audit::routes())
        .merge(config::routes())
        .merge(projects::routes())
        .merge(environments::routes())
        .merge(promotions::routes())
        .merge(declarations::routes())
        .merge(previews::routes())
        .merge(services::routes())
        .merge(terminal::routes())
        .merge(lifecycle::routes())
        .merge(deletion::routes())
        .merge(deployments::routes())
        .merge(events::routes())
        .merge(builds::routes())
        .merge(templates::routes())
}

pub fn router(state: AppState) -> Router {
    let (router, document) = endpoints().split_for_parts();
    let document = openapi::Served::new(document);
    router
        .route("/v1/openapi.json", get(move || document.clone().serve()))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
