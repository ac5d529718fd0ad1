//! A service stopped and started again: `POST …/services/{s}/stop` removes its route and
//! workloads and keeps everything else (deployments, history, volumes); `POST …/start`
//! brings its ACTIVE deployment back. Both answer with the service (`stopped_at` set while
//! stopped).

use axum::Json;
use axum::extract::{Path, State};
use clank_core::model::{Permission, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::ServicePath;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stop_service))
        .routes(routes!(start_service))
}

/// Stop the service: its domain stops answering and its workloads are removed (within
/// moments, by the reconciler); deployments and volumes are kept, and deploys are refused
/// until it is started. Refused (409) while a deployment is in progress.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/stop",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 200, description = "success: the service, `stopped_at` set", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn stop_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("service.stop", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        Ok(Json(st.platform.stop_service(&at.addr()?).await?))
    })
    .await
}

/// Start a stopped service: its ACTIVE deployment's workloads start again and its route comes
/// back once they pass their health checks.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/start",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 200, description = "success: the service, `stopped_at` cleared", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn start_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("service.start", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        Ok(Json(st.platform.start_service(&at.addr()?).await?))
    })
    .await
}
