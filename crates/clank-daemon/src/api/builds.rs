//! Builds of a git service and what triggers them: the service's builds (newest first, paged
//! like deployments), one build with the tail of its log, and the service's webhook — where
//! each forge delivers its pushes, with the workspace's secret for the roles that may manage
//! it (Owner, Admin); reading the secret is audited.

use axum::Json;
use axum::extract::{Path, State};
use clank_api::webhooks::ForgeEndpoints;
use clank_api::{BuildView, ServiceWebhook};
use clank_core::model::{Permission, ServiceSource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{BuildPath, Params, ServicePath};
use clank_api::deployments::NewestFirst;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_builds))
        .routes(routes!(get_build))
        .routes(routes!(service_webhook))
}

/// A service's builds, newest first: number, commit, branch, trigger, duration, status.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/builds",
    tag = "builds",
    params(
        ServicePath,
        NewestFirst,
    ),
    responses(
        (status = 200, description = "success", body = [BuildView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_builds(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    Params(page): Params<NewestFirst>,
) -> ApiResult<Json<Vec<BuildView>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    let builds = st.platform.builds(&addr, page.limit(), page.before);
    Ok(Json(builds.await?))
}

/// Build `v{n}` with the newest lines of its log (`log.truncated` says if earlier ones were
/// left out).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/builds/{n}",
    tag = "builds",
    params(BuildPath),
    responses(
        (status = 200, description = "success", body = BuildView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_build(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<BuildPath>,
) -> ApiResult<Json<BuildView>> {
    let (addr, n) = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.build(&addr, n).await?))
}

/// The service's webhook: its forge endpoints and (for Owner and Admin) the secret.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/webhook",
    tag = "webhooks",
    params(ServicePath),
    responses(
        (status = 200, description = "success", body = ServiceWebhook),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn service_webhook(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<ServiceWebhook>> {
    let addr = at.authorize(&p, Permission::Read)?;
    let service = st.platform.service(&addr).await?;
    let ServiceSource::Git {
        repo_url, branch, ..
    } = &service.source
    else {
        return Err(ApiError::from(clank_core::InvalidInput::new(
            "service",
            "not_git",
            format!("`{addr}` is not a git service: pushes deploy only git services"),
        )));
    };
    let mut view = ServiceWebhook {
        endpoints: ForgeEndpoints::default(),
        repo_url: repo_url.clone(),
        branch: branch.clone(),
        auto_deploy: service.settings.auto_deploy,
        secret: None,
        secret_visible: p.role.allows(Permission::ManageTeamSettings),
    };
    if !view.secret_visible {
        return Ok(Json(view));
    }
    let change = Change::new("webhook_secret.read", at.to_string());
    audited(&st, &p, change, async {
        view.secret = st
            .platform
            .webhook_secret(&at.ws)
            .await?
            .map(|s| s.expose().to_owned());
        Ok(Json(view))
    })
    .await
}
