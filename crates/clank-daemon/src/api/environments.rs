//! A project's environments: list and create.

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
use super::extract::{Body, ProjectPath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_environments, create_environment))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments",
    tag = "environments",
    params(ProjectPath),
    responses(
        (status = 200, description = "success", body = [Environment]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_environments(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<Vec<Environment>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.list_environments(&addr).await?))
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
