//! The daemon itself: is it up, and who is this token.

use axum::Json;
use clank_api::system::{Health, WhoAmI};
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
        (status = 200, description = "success", body = Health),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "system",
    responses(
        (status = 200, description = "success", body = WhoAmI),
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
