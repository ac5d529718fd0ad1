//! A project's preview environments: its settings (`GET`/`PUT …/previews`), the live previews
//! (`GET …/previews/environments`) and closing one by hand (`DELETE …/previews/{n}`). The
//! forges' pull-request webhooks (`webhooks.rs`) create, redeploy and close them.

use axum::Json;
use axum::extract::{Path, State};
use clank_api::previews::{PreviewOutcome, PreviewSettingsBody, PreviewSettingsView, PreviewView};
use clank_core::model::Permission;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Body, ProjectPath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, set_settings))
        .routes(routes!(list_previews))
        .routes(routes!(close_preview))
}

/// A preview's path: the project's and the pull request's number.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct PreviewPath {
    /// Workspace slug.
    ws: String,
    /// Project slug.
    p: String,
    /// The pull request's number.
    n: u64,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/previews",
    tag = "previews",
    params(ProjectPath),
    responses(
        (status = 200, description = "the settings", body = PreviewSettingsView),
        (status = 404, description = "previews were never set up for the project", body = ErrorBody),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_settings(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<PreviewSettingsView>> {
    let addr = at.authorize(&p, Permission::Read)?;
    match st.platform.preview_settings(&addr).await? {
        Some(settings) => Ok(Json(settings)),
        None => Err(ApiError::not_found(format!(
            "project `{at}` has no preview settings: previews are off until they are set \
             (`PUT …/previews` with a `base_environment`, or `clank preview settings {} \
             --base <environment>`)",
            at.p
        ))),
    }
}

#[utoipa::path(
    put,
    path = "/v1/workspaces/{ws}/projects/{p}/previews",
    tag = "previews",
    params(ProjectPath),
    request_body = PreviewSettingsBody,
    responses(
        (status = 200, description = "the settings as stored", body = PreviewSettingsView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_settings(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
    Body(req): Body<PreviewSettingsBody>,
) -> ApiResult<Json<PreviewSettingsView>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("preview_settings.set", at.to_string()).details(serde_json::json!({
        "enabled": req.enabled,
        "base_environment": req.base_environment,
        "domain": req.domain,
        "pattern": req.pattern,
        "ttl_minutes": req.ttl_minutes,
        "allow_forks": req.allow_forks,
    }));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(
            st.platform.set_preview_settings(&at.addr()?, req).await?,
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/previews/environments",
    tag = "previews",
    params(ProjectPath),
    responses(
        (status = 200, description = "the live previews, by pull request", body = [PreviewView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_previews(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ProjectPath>,
) -> ApiResult<Json<Vec<PreviewView>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.list_previews(&addr).await?))
}

/// Tear down a preview now: its workloads, network, routes, records and volumes.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/projects/{p}/previews/{n}",
    tag = "previews",
    params(PreviewPath),
    responses(
        (status = 200, description = "what was removed", body = PreviewOutcome),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn close_preview(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<PreviewPath>,
) -> ApiResult<Json<PreviewOutcome>> {
    p.in_workspace(&at.ws)?;
    let project = ProjectPath {
        ws: at.ws.clone(),
        p: at.p.clone(),
    };
    let change = Change::new("preview.delete", format!("{project}/pr-{}", at.n));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        match st.platform.close_preview(&project.addr()?, at.n).await? {
            Some(outcome) => Ok(Json(outcome)),
            None => Err(ApiError::not_found(format!(
                "project `{project}` has no preview for pull request {}",
                at.n
            ))),
        }
    })
    .await
}
