//! Templates and stacks: browse the catalog (any signed-in user), create a stack from a
//! template and upgrade one with a preview first (ManageServices, audited).

use std::fmt;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::{
    NewStack, StackUpgrade, StackUpgradeView, StackView, TemplateSummary, TemplateView,
};
use clank_core::address::EnvironmentAddress;
use clank_core::model::Permission;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, EnvironmentPath, env_addr};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_templates))
        .routes(routes!(get_template))
        .routes(routes!(list_stacks, create_stack))
        .routes(routes!(get_stack))
        .routes(routes!(upgrade_stack))
}

/// `{name}`: a template of the catalog.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TemplatePath {
    /// template name
    name: String,
}

/// `{ws}/{p}/{e}/{stack}`: a stack's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct StackPath {
    /// workspace slug
    ws: String,
    /// project slug
    p: String,
    /// environment name
    e: String,
    /// stack slug (its app service's slug)
    stack: String,
}

impl StackPath {
    fn env(&self) -> ApiResult<EnvironmentAddress> {
        env_addr(&self.ws, &self.p, &self.e)
    }
}

impl fmt::Display for StackPath {
    /// The audit log's target: `ws/p/e/stack`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.ws, self.p, self.e, self.stack)
    }
}

/// Every template of the catalog (built-ins and the operator's directory), by name.
#[utoipa::path(
    get,
    path = "/v1/templates",
    tag = "templates",
    responses(
        (status = 200, description = "success", body = [TemplateSummary]),
        (status = "4XX", description = "refused", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_templates(
    _p: Principal,
    State(st): State<AppState>,
) -> Json<Vec<TemplateSummary>> {
    Json(st.platform.list_templates())
}

/// One template: services, images, volumes, variables (never a value).
#[utoipa::path(
    get,
    path = "/v1/templates/{name}",
    tag = "templates",
    params(TemplatePath),
    responses(
        (status = 200, description = "success", body = TemplateView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_template(
    _p: Principal,
    State(st): State<AppState>,
    Path(at): Path<TemplatePath>,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(st.platform.template(&at.name)?))
}

/// The stacks of an environment.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/stacks",
    tag = "templates",
    params(EnvironmentPath),
    responses(
        (status = 200, description = "success", body = [StackView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_stacks(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
) -> ApiResult<Json<Vec<StackView>>> {
    p.in_workspace(&at.ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.stacks(&at.addr()?).await?))
}

/// Create a template's services, set their config (generated secrets as secret config) and
/// deploy them, dependencies first. A bad input changes nothing.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/stacks",
    tag = "templates",
    params(EnvironmentPath),
    request_body = NewStack,
    responses(
        (status = 201, description = "created; every service's first deployment is queued", body = StackView),
        (status = "4XX", description = "refused; `field` names the offending input (`template`, `inputs.<name>`, `images.<service>`, `name`)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_stack(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
    Body(new): Body<NewStack>,
) -> ApiResult<(StatusCode, Json<StackView>)> {
    p.in_workspace(&at.ws)?;
    let name = st.platform.stack_slug(&new);
    let change = Change::new("stack.create", format!("{at}/{name}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        let view = st.platform.create_stack(&at.addr()?, new).await?;
        Ok((StatusCode::CREATED, Json(view)))
    })
    .await
}

/// A stack: its template, version and services with their status.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/stacks/{stack}",
    tag = "templates",
    params(StackPath),
    responses(
        (status = 200, description = "success", body = StackView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_stack(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<StackPath>,
) -> ApiResult<Json<StackView>> {
    p.in_workspace(&at.ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.stack(&at.env()?, &at.stack).await?))
}

/// Preview an upgrade to the catalog's template version (no `apply`), or apply the preview
/// whose `plan_id` is given (409 if anything changed since). Never upgrades without a plan id.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/stacks/{stack}/upgrade",
    tag = "templates",
    params(StackPath),
    request_body = StackUpgrade,
    responses(
        (status = 200, description = "the preview, or the applied plan with the stack after it", body = StackUpgradeView),
        (status = "4XX", description = "refused; 409 when the plan id is no longer current", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn upgrade_stack(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<StackPath>,
    Body(upgrade): Body<StackUpgrade>,
) -> ApiResult<Json<StackUpgradeView>> {
    p.in_workspace(&at.ws)?;
    if upgrade.apply.is_none() {
        p.require(Permission::Read)?;
        return Ok(Json(
            st.platform
                .upgrade_stack(&at.env()?, &at.stack, upgrade)
                .await?,
        ));
    }
    let change = Change::new("stack.upgrade", &at);
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        Ok(Json(
            st.platform
                .upgrade_stack(&at.env()?, &at.stack, upgrade)
                .await?,
        ))
    })
    .await
}
