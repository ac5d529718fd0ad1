//! Declarations: a project exported as data (`GET …/projects/{p}/declaration`), and a
//! declaration planned against what the workspace holds (`POST …/declarations`: a stored plan,
//! nothing else written), applied by id with `POST …/plans/{id}/apply` like a promotion.
//!
//! Planning and applying need what the separate calls need: ManageServices for services and
//! their config, ManageProjects as well when the plan creates the project or an environment or
//! changes project or environment config. Both are audited, secrets by name only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::declarations::{Declaration, PlanDeclaration};
use clank_api::plans::PlanView;
use clank_core::model::Permission;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, ProjectPath, WorkspacePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_project))
        .routes(routes!(plan_declaration))
}

/// The project as a declaration: every environment, its services and each scope's config,
/// secrets as `{"secret_env": "KEY"}` (never a value).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/declaration",
    tag = "declarations",
    params(ProjectPath),
    responses(
        (status = 200, description = "success", body = Declaration),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn export_project(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<Declaration>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.export_project(&addr).await?))
}

/// Plan applying a declaration to its project (created if missing): the plan is stored and
/// shown; apply exactly it with `POST …/plans/{id}/apply`. Secrets the target lacks take
/// their values from `secrets`; one missing is refused naming its field.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/declarations",
    tag = "declarations",
    params(WorkspacePath),
    request_body = PlanDeclaration,
    responses(
        (status = 201, description = "the plan, stored; apply it by id", body = PlanView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn plan_declaration(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<WorkspacePath>,
    Body(req): Body<PlanDeclaration>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    p.in_workspace(&at.ws)?;
    let target = match req.declaration.project.split_once('/') {
        Some(_) => req.declaration.project.clone(),
        None => format!("{}/{}", at.ws, req.declaration.project),
    };
    let secrets: Vec<&str> = req.secrets.names().collect();
    let change = Change::new("declaration.plan", target).details(json!({
        "source": req.source,
        "secrets": secrets,
    }));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        let planned = st
            .platform
            .plan_declaration(&at.ws, req.declaration, &req.secrets, req.source)
            .await?;
        // Refused before anything is stored.
        for need in planned.needs() {
            p.require(*need)?;
        }
        let view = st.platform.store_declaration_plan(planned).await?;
        Ok((StatusCode::CREATED, Json(view)))
    })
    .await
}
