//! The daemon itself: is it up, and who is this token.

use axum::Json;
use axum::extract::State;
use clank_api::system::{Health, Membership, WhoAmI};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(whoami))
        .routes(routes!(memberships))
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

#[utoipa::path(
    get,
    path = "/v1/memberships",
    tag = "system",
    responses(
        (status = 200, description = "the workspaces the token's user is a member of, oldest membership first", body = [Membership]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn memberships(p: Principal, State(st): State<AppState>) -> ApiResult<Json<Vec<Membership>>> {
    Ok(Json(st.platform.memberships(p.user, &p.workspace).await?))
}
