//! Projects: list (soft-deleted ones on request), create, read, delete (soft, or purged;
//! restore is in `deletion.rs`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::lifecycle::{DeleteQuery, DeleteReport};
use clank_api::projects::{ListProjects, NewProject};
use clank_core::model::{Permission, Project};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, Params, ProjectPath, WorkspacePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, delete_project))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects",
    tag = "projects",
    params(
        WorkspacePath,
        ListProjects,
    ),
    responses(
        (status = 200, description = "success", body = [Project]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_projects(
    p: Principal,
    State(st): State<AppState>,
    Path(WorkspacePath { ws }): Path<WorkspacePath>,
    Params(q): Params<ListProjects>,
) -> ApiResult<Json<Vec<Project>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform.list_projects(&ws, q.include_deleted).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects",
    tag = "projects",
    params(WorkspacePath),
    request_body = NewProject,
    responses(
        (status = 201, description = "success", body = Project),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_project(
    p: Principal,
    State(st): State<AppState>,
    Path(WorkspacePath { ws }): Path<WorkspacePath>,
    Body(req): Body<NewProject>,
) -> ApiResult<(StatusCode, Json<Project>)> {
    p.in_workspace(&ws)?;
    let slug = req
        .slug
        .clone()
        .or_else(|| clank_core::validate::slugify("name", &req.name).ok())
        .unwrap_or_else(|| req.name.clone());
    let change = Change::new("project.create", format!("{ws}/{slug}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok((
            StatusCode::CREATED,
            Json(
                st.platform
                    .create_project(&ws, &req.name, req.slug.as_deref())
                    .await?,
            ),
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}",
    tag = "projects",
    params(ProjectPath),
    responses(
        (status = 200, description = "success", body = Project),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_project(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<Project>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.project(&addr).await?.value))
}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/projects/{p}",
    tag = "projects",
    params(ProjectPath, DeleteQuery),
    responses(
        (status = 200, description = "success: when it was deleted, until when it can be restored (with its environments and services), or what the purge removed", body = DeleteReport),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_project(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
    Params(q): Params<DeleteQuery>,
) -> ApiResult<Json<DeleteReport>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new(super::deletion::audit_name("project", &q), at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(st.platform.delete_project(&at.addr()?, q).await?))
    })
    .await
}
