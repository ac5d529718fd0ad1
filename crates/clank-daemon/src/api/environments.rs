//! A project's environments: list, create and clone.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::projects::NewEnvironment;
use clank_core::model::{Environment, Permission};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, EnvironmentPath, Params, ProjectPath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_environments, create_environment))
        .routes(routes!(clone_environment))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments",
    tag = "environments",
    params(ProjectPath, clank_api::lifecycle::ListEnvironments),
    responses(
        (status = 200, description = "success", body = [Environment]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_environments(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
    Params(q): Params<clank_api::lifecycle::ListEnvironments>,
) -> ApiResult<Json<Vec<Environment>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(
        st.platform
            .list_environments_with(&addr, q.include_deleted)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments",
    tag = "environments",
    params(ProjectPath),
    request_body = NewEnvironment,
    responses(
        (status = 201, description = "success", body = Environment),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_environment(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
    Body(req): Body<NewEnvironment>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("environment.create", format!("{at}/{}", req.name));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        let env = st
            .platform
            .create_environment(&at.addr()?, &req.name)
            .await?;
        Ok((StatusCode::CREATED, Json(env)))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/clone",
    tag = "environments",
    params(EnvironmentPath),
    request_body = clank_api::environments::CloneEnvironment,
    responses(
        (status = 201, description = "the new environment and its services", body = clank_api::environments::CloneReport),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn clone_environment(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
    Body(req): Body<clank_api::environments::CloneEnvironment>,
) -> ApiResult<(StatusCode, Json<clank_api::environments::CloneReport>)> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("environment.clone", format!("{at}")).details(serde_json::json!({
        "name": req.name,
        "domain_pattern": req.domain_pattern,
        "copy_config": req.copy_config,
        "deploy": req.deploy,
    }));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        if req.deploy {
            p.require(Permission::Deploy)?;
        }
        let report = st.platform.clone_environment(&at.addr()?, req).await?;
        Ok((StatusCode::CREATED, Json(report)))
    })
    .await
}
