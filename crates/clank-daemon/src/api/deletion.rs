//! Deleting and restoring services and environments, and restoring projects (a project's
//! `DELETE` is in `projects.rs`). A `DELETE` is soft unless `?purge=true` (`&volumes=true`
//! also removes the named volumes' data); it answers what it did (`DeleteReport`: until when
//! it can be restored, or what the purge removed). `POST …/restore` brings a soft-deleted
//! one back. Deleting or restoring a service needs `ManageServices`; an environment, a
//! project, or anything with its volumes, `ManageProjects`.

use axum::Json;
use axum::extract::{Path, State};
use clank_api::lifecycle::{DeleteQuery, DeleteReport};
use clank_core::model::{Environment, Permission, Project, Service};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{EnvironmentPath, Params, ProjectPath, ServicePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete_service))
        .routes(routes!(restore_service))
        .routes(routes!(delete_environment))
        .routes(routes!(restore_environment))
        .routes(routes!(restore_project))
}

/// The permission a delete needs: removing volumes' data is for those who manage projects.
fn delete_permission(base: Permission, q: &DeleteQuery) -> Permission {
    if q.volumes {
        Permission::ManageProjects
    } else {
        base
    }
}

/// The audit action: a delete or, with `purge`, a purge.
pub(super) fn audit_name(action: &'static str, q: &DeleteQuery) -> &'static str {
    match (action, q.purge) {
        ("service", false) => "service.delete",
        ("service", true) => "service.purge",
        ("environment", false) => "environment.delete",
        ("environment", true) => "environment.purge",
        (_, false) => "project.delete",
        (_, true) => "project.purge",
    }
}

/// Delete a service: its domain stops answering and its workloads are removed; it can be
/// restored until `restorable_until`. With `purge`, it is removed for good now (workloads,
/// deployments, builds, config; `volumes` also removes its named volumes).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}",
    tag = "services",
    params(ServicePath, DeleteQuery),
    responses(
        (status = 200, description = "success: when it was deleted, until when it can be restored, or what the purge removed", body = DeleteReport),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    Params(q): Params<DeleteQuery>,
) -> ApiResult<Json<DeleteReport>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new(audit_name("service", &q), at.to_string());
    audited(&st, &p, change, async {
        p.require(delete_permission(Permission::ManageServices, &q))?;
        Ok(Json(st.platform.delete_service(&at.addr()?, q).await?))
    })
    .await
}

/// Restore a deleted service: its ACTIVE deployment starts again and its domain answers once
/// healthy. Refused (409) while its environment or project is deleted.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/restore",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 200, description = "success: the service, `deleted_at` cleared", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn restore_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("service.restore", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        Ok(Json(st.platform.restore_service(&at.addr()?).await?))
    })
    .await
}

/// Delete an environment with its services (restorable until `restorable_until`), or with
/// `purge` remove it for good with its network. The default environment is deleted only with
/// its project (409).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}",
    tag = "environments",
    params(EnvironmentPath, DeleteQuery),
    responses(
        (status = 200, description = "success: when it was deleted, until when it can be restored, or what the purge removed", body = DeleteReport),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_environment(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
    Params(q): Params<DeleteQuery>,
) -> ApiResult<Json<DeleteReport>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new(audit_name("environment", &q), at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(st.platform.delete_environment(&at.addr()?, q).await?))
    })
    .await
}

/// Restore a deleted environment with the services deleted with it.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/restore",
    tag = "environments",
    params(EnvironmentPath),
    responses(
        (status = 200, description = "success: the environment, `deleted_at` cleared", body = Environment),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn restore_environment(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
) -> ApiResult<Json<Environment>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("environment.restore", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(st.platform.restore_environment(&at.addr()?).await?))
    })
    .await
}

/// Restore a deleted project with the environments and services deleted with it.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/restore",
    tag = "projects",
    params(ProjectPath),
    responses(
        (status = 200, description = "success: the project, `deleted_at` cleared", body = Project),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn restore_project(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<Project>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("project.restore", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(st.platform.restore_project(&at.addr()?).await?))
    })
    .await
}
