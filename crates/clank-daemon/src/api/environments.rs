//! A project's environments: list and create.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_core::model::{Environment, Permission};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, project_addr};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_environments, create_environment))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewEnvironment {
    name: String,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments",
    tag = "environments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_environments(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Environment>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .list_environments(&project_addr(&ws, &proj)?)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments",
    tag = "environments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
    ),
    request_body = NewEnvironment,
    responses(
        (status = 201, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_environment(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
    Body(req): Body<NewEnvironment>,
) -> ApiResult<(StatusCode, Json<Environment>)> {
    p.in_workspace(&ws)?;
    let change = Change::new("environment.create", format!("{ws}/{proj}/{}", req.name));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok((
            StatusCode::CREATED,
            Json(
                st.platform
                    .create_environment(&project_addr(&ws, &proj)?, &req.name)
                    .await?,
            ),
        ))
    })
    .await
}
