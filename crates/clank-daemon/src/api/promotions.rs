//! Promotions and plans: plan a promotion (`POST …/promotions`: stored, nothing else
//! written), read a plan, and apply it by id (`POST …/plans/{id}/apply`: 409 when anything it
//! read changed or it expired). Both need the Deploy permission and are audited.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::plans::{AppliedPlan, NewPromotion, PlanKind, PlanView};
use clank_core::model::Permission;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, WorkspacePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan_promotion))
        .routes(routes!(get_plan))
        .routes(routes!(apply_plan))
}

/// `{ws}/plans/{id}`: a stored plan's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct PlanPath {
    /// workspace slug
    pub(super) ws: String,
    /// the plan's id
    pub(super) id: String,
}

/// `address` inside workspace `ws`: the body's addresses never name a workspace, so a plan
/// never reaches another tenant's (a fourth segment makes the address invalid).
fn in_workspace(ws: &str, address: &str) -> String {
    format!("{ws}/{address}")
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/promotions",
    tag = "promotions",
    params(WorkspacePath),
    request_body = NewPromotion,
    responses(
        (status = 201, description = "the plan, stored; apply it by id", body = PlanView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn plan_promotion(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<WorkspacePath>,
    Body(req): Body<NewPromotion>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    p.in_workspace(&at.ws)?;
    let source = in_workspace(&at.ws, &req.source);
    let target = if req.target.contains('/') {
        in_workspace(&at.ws, &req.target)
    } else {
        req.target.clone()
    };
    let change = Change::new("promotion.plan", &source).details(json!({ "target": target }));
    audited(&st, &p, change, async {
        p.require(Permission::Deploy)?;
        let plan = st.platform.plan_promotion(&source, &target).await?;
        Ok((StatusCode::CREATED, Json(plan)))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/plans/{id}",
    tag = "promotions",
    params(PlanPath),
    responses(
        (status = 200, description = "success", body = PlanView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_plan(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<PlanPath>,
) -> ApiResult<Json<PlanView>> {
    p.in_workspace(&at.ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.plan(&at.ws, &at.id).await?))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/plans/{id}/apply",
    tag = "promotions",
    params(PlanPath),
    responses(
        (status = 202, description = "the deployments it started (a declaration's: none; the services it created)", body = AppliedPlan),
        (status = "4XX", description = "refused (409: out of date, expired or applied; plan again)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn apply_plan(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<PlanPath>,
) -> ApiResult<(StatusCode, Json<AppliedPlan>)> {
    p.in_workspace(&at.ws)?;
    // A promotion needs Deploy; a declaration what its writes need. A plan not found is
    // checked as a promotion's, so a caller without Deploy learns nothing about it.
    let (kind, needs) = st
        .platform
        .plan_permissions(&at.ws, &at.id)
        .await
        .unwrap_or((PlanKind::Promotion, vec![Permission::Deploy]));
    let action = match kind {
        PlanKind::Promotion => "promotion.apply",
        PlanKind::Apply => "declaration.apply",
    };
    let change = Change::new(action, format!("{}/plans/{}", at.ws, at.id)).details(json!({
        "plan": at.id,
    }));
    audited(&st, &p, change, async {
        for need in needs {
            p.require(need)?;
        }
        let applied = st.platform.apply_plan(&at.ws, &at.id, Some(p.user)).await?;
        Ok((StatusCode::ACCEPTED, Json(applied)))
    })
    .await
}
