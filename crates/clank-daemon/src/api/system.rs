//! The daemon itself: is it up, and who is this token.

use axum::Json;
use clank_core::id::UserId;
use clank_core::model::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Principal;
use super::error::ErrorBody;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(whoami))
}

#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "system",
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Debug, serde::Serialize)]
struct WhoAmI {
    workspace: String,
    user: UserId,
    role: Role,
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "system",
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn whoami(p: Principal) -> Json<WhoAmI> {
    Json(WhoAmI {
        workspace: p.workspace.slug.clone(),
        user: p.user,
        role: p.role,
    })
}
