//! Handlers: each checks the workspace and the permission first, then calls the platform.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::{get, post};
use axum::{Json, Router};
use clank_core::InvalidInput;
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::config::{ConfigChange, ConfigVarView, ResolvedVarView};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{TokenId, UserId};
use clank_core::model::{Environment, Permission, Project, Role, Service, Trigger};
use clank_engine::{EventKind, LogEntry};
use clank_platform::{ConfigTarget, DeploymentView, ServicePatch, ServiceSpec, WorkloadSelector};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::AppState;
use super::audit::{Change, audited, config_details, record_call};
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};

/// `Json` whose rejections answer in our error format.
pub(super) struct Body<T>(pub(super) T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Body(Json::<T>::from_request(req, state).await?.0))
    }
}

/// `Query` whose rejections answer in our error format (422 naming the field).
pub(super) struct Params<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Params(
            Query::<T>::from_request_parts(parts, state).await?.0,
        ))
    }
}

pub(super) fn routes() -> Router<AppState> {
    let svc = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}";
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(super::openapi::serve))
        .route("/v1/init", post(super::instance::init))
        .route("/v1/workspaces", post(super::instance::create_workspace))
        .route("/v1/whoami", get(whoami))
        .route("/v1/webhooks/github", post(super::webhooks::github))
        .route("/v1/webhooks/gitlab", post(super::webhooks::gitlab))
        .route("/v1/webhooks/gitea", post(super::webhooks::gitea))
        .route(
            "/v1/workspaces/{ws}/webhook-secret",
            post(super::webhooks::rotate_secret),
        )
        .route("/v1/workspaces/{ws}/audit", get(super::audit::list))
        .route(
            "/v1/workspaces/{ws}/servers",
            get(super::servers::list).post(super::servers::create),
        )
        .route(
            "/v1/workspaces/{ws}/servers/{name}",
            get(super::servers::get),
        )
        .route(
            "/v1/workspaces/{ws}/servers/{name}/join-token",
            post(super::servers::join_token),
        )
        .route(
            "/v1/workspaces/{ws}/servers/{name}/revoke",
            post(super::servers::revoke),
        )
        .route(
            "/v1/workspaces/{ws}/agent-release",
            axum::routing::put(super::servers::offer_release).layer(
                axum::extract::DefaultBodyLimit::max(super::servers::AGENT_BINARY_LIMIT),
            ),
        )
        .route(
            "/v1/workspaces/{ws}/members",
            get(super::members::list_members).post(super::members::add_member),
        )
        .route(
            "/v1/workspaces/{ws}/members/{user}",
            axum::routing::patch(super::members::update_member)
                .delete(super::members::remove_member),
        )
        .route(
            "/v1/workspaces/{ws}/tokens",
            get(super::members::list_tokens).post(super::members::create_token),
        )
        .route(
            "/v1/workspaces/{ws}/tokens/{id}",
            axum::routing::delete(super::members::revoke_token),
        )
        .route(
            "/v1/workspaces/{ws}/config",
            get(workspace_config).patch(set_workspace_config),
        )
        .route(
            "/v1/workspaces/{ws}/projects",
            get(list_projects).post(create_project),
        )
        .route(
            "/v1/workspaces/{ws}/projects/{p}",
            get(get_project).delete(delete_project),
        )
        .route(
            "/v1/workspaces/{ws}/projects/{p}/config",
            get(project_config).patch(set_project_config),
        )
        .route(
            "/v1/workspaces/{ws}/projects/{p}/environments",
            get(list_environments).post(create_environment),
        )
        .route(
            "/v1/workspaces/{ws}/projects/{p}/environments/{e}/config",
            get(environment_config).patch(set_environment_config),
        )
        .route(
            "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services",
            get(list_services).post(create_service),
        )
        .route(svc, get(get_service).patch(update_service))
        .route(
            &format!("{svc}/config"),
            get(service_config).patch(set_service_config),
        )
        .route(&format!("{svc}/config/resolved"), get(resolved_config))
        .route(
            &format!("{svc}/deployments"),
            get(list_deployments).post(deploy),
        )
        .route(&format!("{svc}/deployments/{{n}}"), get(get_deployment))
        .route(&format!("{svc}/deployments/{{n}}/cancel"), post(cancel))
        .route(&format!("{svc}/deployments/{{n}}/rollback"), post(rollback))
        .route(&format!("{svc}/deployments/{{n}}/log"), get(deploy_log))
        .route(&format!("{svc}/deployments/{{n}}/events"), get(follow))
        .route(&format!("{svc}/builds"), get(super::builds::list_builds))
        .route(
            &format!("{svc}/builds/{{n}}"),
            get(super::builds::get_build),
        )
        .route(
            &format!("{svc}/webhook"),
            get(super::builds::service_webhook),
        )
        .route(&format!("{svc}/logs"), get(service_logs))
        .route(&format!("{svc}/exec"), post(service_exec))
}

#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "system",
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

// ---- Bootstrap, members, tokens ----------------------------------------------------------

/// `clank_core::model::Role` as the OpenAPI document shows it (clank-core has no utoipa).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(super) enum RoleName {
    Viewer,
    Developer,
    Admin,
    Owner,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct TokenCreated {
    /// Shown once; only its hash is stored.
    pub(super) token: String,
    pub(super) id: TokenId,
    pub(super) role: Role,
}

pub(super) fn validate_email(email: &str) -> ApiResult<String> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(InvalidInput::new(
            "email",
            "format",
            format!("`{}` is not an email address", email.escape_debug()),
        )
        .into())
    }
}

#[derive(Debug, serde::Serialize)]
struct WhoAmI {
    workspace: String,
    user: UserId,
    role: Role,
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "system",
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn whoami(p: Principal) -> Json<WhoAmI> {
    Json(WhoAmI {
        workspace: p.workspace.slug.clone(),
        user: p.user,
        role: p.role,
    })
}

// ---- Projects and environments -------------------------------------------------------------

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewProject {
    name: String,
    #[serde(default)]
    slug: Option<String>,
}

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListProjects {
    #[serde(default)]
    include_deleted: bool,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects",
    tag = "projects",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("include_deleted" = Option<bool>, Query, description = "include soft-deleted projects"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_projects(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
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
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    request_body = NewProject,
    responses(
        (status = 201, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_project(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
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

fn project_addr(ws: &str, p: &str) -> ApiResult<ProjectAddress> {
    Ok(ProjectAddress::new(ws, p)?)
}

fn env_addr(ws: &str, p: &str, e: &str) -> ApiResult<EnvironmentAddress> {
    Ok(EnvironmentAddress::new(ws, p, e)?)
}

fn service_addr(ws: &str, p: &str, e: &str, s: &str) -> ApiResult<ServiceAddress> {
    Ok(ServiceAddress::new(ws, p, e, s)?)
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}",
    tag = "projects",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
    ),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_project(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
) -> ApiResult<Json<Project>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform.project(&project_addr(&ws, &proj)?).await?.value,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/projects/{p}",
    tag = "projects",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
    ),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_project(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
) -> ApiResult<Json<Project>> {
    p.in_workspace(&ws)?;
    let change = Change::new("project.delete", format!("{ws}/{proj}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageProjects)?;
        Ok(Json(
            st.platform
                .delete_project(&project_addr(&ws, &proj)?)
                .await?,
        ))
    })
    .await
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

// ---- Services ----------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListServices {
    /// Page size (1..=1000). Without it (and without `after`) every service is returned.
    #[serde(default)]
    limit: Option<usize>,
    /// The `X-Next-Cursor` of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// Services of an environment in slug order. Paginated with `?limit=` (and `?after=` the
/// previous page's `X-Next-Cursor` header, absent on the last page).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("limit" = Option<usize>, Query, description = "page size, 1..=1000; without `limit` and `after` every service"),
        ("after" = Option<String>, Query, description = "the previous page's `X-Next-Cursor`"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_services(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e)): Path<(String, String, String)>,
    Params(q): Params<ListServices>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use base64::Engine as _;
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let env = env_addr(&ws, &proj, &e)?;
    if q.limit.is_none() && q.after.is_none() {
        return Ok(Json(st.platform.list_services(&env).await?).into_response());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(InvalidInput::new("limit", "range", "`limit` is between 1 and 1000").into());
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let after = match q.after {
        None => None,
        Some(c) => Some(
            b64.decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| InvalidInput::new("after", "cursor", "not a page cursor"))?,
        ),
    };
    let (items, next) = st.platform.list_services_page(&env, limit, after).await?;
    let mut resp = Json(items).into_response();
    if let Some(next) = next
        && let Ok(v) = axum::http::HeaderValue::from_str(&b64.encode(next))
    {
        resp.headers_mut().insert("x-next-cursor", v);
    }
    Ok(resp)
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
    ),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_service(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e)): Path<(String, String, String)>,
    Body(spec): Body<ServiceSpec>,
) -> ApiResult<(StatusCode, Json<Service>)> {
    p.in_workspace(&ws)?;
    let change = Change::new("service.create", format!("{ws}/{proj}/{e}/{}", spec.slug));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        if spec.server_id.is_some() {
            p.require(Permission::ManageServers)?;
        }
        Ok((
            StatusCode::CREATED,
            Json(
                st.platform
                    .create_service(&env_addr(&ws, &proj, &e)?, spec)
                    .await?,
            ),
        ))
    })
    .await
}

type SvcPath = Path<(String, String, String, String)>;

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_service(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .service(&service_addr(&ws, &proj, &e, &s)?)
            .await?
            .value,
    ))
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn update_service(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
    Body(patch): Body<ServicePatch>,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&ws)?;
    let change = Change::new("service.update", format!("{ws}/{proj}/{e}/{s}"))
        .details(json!({ "fields": patch_fields(&patch) }));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        if patch.server_id.is_some() {
            p.require(Permission::ManageServers)?;
        }
        Ok(Json(
            st.platform
                .update_service(&service_addr(&ws, &proj, &e, &s)?, patch)
                .await?,
        ))
    })
    .await
}

/// The settings a patch changes, by name (the audit log's details).
fn patch_fields(patch: &ServicePatch) -> Vec<&'static str> {
    [
        ("name", patch.name.is_some()),
        ("source", patch.source.is_some()),
        ("settings", patch.settings.is_some()),
        ("volumes", patch.volumes.is_some()),
        ("endpoint", patch.endpoint.is_some()),
        ("processes", patch.processes.is_some()),
        ("server_id", patch.server_id.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect()
}

// ---- Config ------------------------------------------------------------------------------

/// One change in a bulk config request: set (`value`, optionally `secret`) or `unset`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    secret: bool,
    #[serde(default)]
    unset: bool,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ConfigRequest {
    changes: Vec<ChangeBody>,
}

fn changes(req: ConfigRequest) -> ApiResult<Vec<ConfigChange>> {
    req.changes
        .into_iter()
        .enumerate()
        .map(|(i, c)| match (c.unset, c.value) {
            (true, None) if !c.secret => Ok(ConfigChange::unset(c.key)),
            (true, _) => Err(InvalidInput::new(
                format!("changes[{i}]"),
                "conflict",
                "an unset takes no value or secret flag",
            )
            .into()),
            (false, Some(v)) if c.secret => Ok(ConfigChange::set_secret(c.key, v)),
            (false, Some(v)) => Ok(ConfigChange::set_plain(c.key, v)),
            (false, None) => Err(InvalidInput::new(
                format!("changes[{i}].value"),
                "required",
                "a set needs a value (or `\"unset\": true`)",
            )
            .into()),
        })
        .collect()
}

async fn read_config(
    p: &Principal,
    st: &AppState,
    target: ConfigTarget,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.require(Permission::Read)?;
    Ok(Json(st.platform.config(&target).await?))
}

async fn write_config(
    p: &Principal,
    st: &AppState,
    target: ConfigTarget,
    needs: Permission,
    req: ConfigRequest,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    let target_name = match &target {
        ConfigTarget::Workspace(ws) => ws.clone(),
        ConfigTarget::Project(a) => a.to_string(),
        ConfigTarget::Environment(a) => a.to_string(),
        ConfigTarget::Service(a) => a.to_string(),
    };
    let changes = changes(req);
    let details = match &changes {
        Ok(c) => config_details(c),
        Err(_) => serde_json::Value::Null,
    };
    let change = Change::new("config.set", target_name).details(details);
    audited(st, p, change, async {
        p.require(needs)?;
        let changes = changes?;
        Ok(Json(st.platform.set_config(&target, &changes).await?))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn workspace_config(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    read_config(&p, &st, ConfigTarget::Workspace(ws)).await
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_workspace_config(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Body(req): Body<ConfigRequest>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    write_config(
        &p,
        &st,
        ConfigTarget::Workspace(ws),
        Permission::ManageTeamSettings,
        req,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/config",
    tag = "config",
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
async fn project_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    read_config(&p, &st, ConfigTarget::Project(project_addr(&ws, &proj)?)).await
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/projects/{p}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
    ),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_project_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj)): Path<(String, String)>,
    Body(req): Body<ConfigRequest>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    write_config(
        &p,
        &st,
        ConfigTarget::Project(project_addr(&ws, &proj)?),
        Permission::ManageProjects,
        req,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn environment_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e)): Path<(String, String, String)>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    read_config(
        &p,
        &st,
        ConfigTarget::Environment(env_addr(&ws, &proj, &e)?),
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
    ),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_environment_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e)): Path<(String, String, String)>,
    Body(req): Body<ConfigRequest>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    write_config(
        &p,
        &st,
        ConfigTarget::Environment(env_addr(&ws, &proj, &e)?),
        Permission::ManageProjects,
        req,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn service_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    read_config(
        &p,
        &st,
        ConfigTarget::Service(service_addr(&ws, &proj, &e, &s)?),
    )
    .await
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/config",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn set_service_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
    Body(req): Body<ConfigRequest>,
) -> ApiResult<Json<Vec<ConfigVarView>>> {
    p.in_workspace(&ws)?;
    write_config(
        &p,
        &st,
        ConfigTarget::Service(service_addr(&ws, &proj, &e, &s)?),
        Permission::ManageServices,
        req,
    )
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/config/resolved",
    tag = "config",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn resolved_config(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
) -> ApiResult<Json<Vec<ResolvedVarView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .resolved_config(&service_addr(&ws, &proj, &e, &s)?)
            .await?,
    ))
}

// ---- Deployments -------------------------------------------------------------------------

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    responses(
        (status = 202, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn deploy(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    p.in_workspace(&ws)?;
    let result = async {
        p.require(Permission::Deploy)?;
        let d = st
            .platform
            .deploy(
                &service_addr(&ws, &proj, &e, &s)?,
                Trigger::Manual { by: Some(p.user) },
            )
            .await?;
        Ok((StatusCode::ACCEPTED, Json(d)))
    }
    .await;
    let number = result.as_ref().ok().map(|(_, d)| d.number);
    let change = Change::new("deployment.create", format!("{ws}/{proj}/{e}/{s}"))
        .details(json!({ "number": number }));
    record_call(&st, &p, change, &result).await;
    result
}

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListDeployments {
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    before: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("limit" = Option<usize>, Query, description = "at most this many, newest first (default 20)"),
        ("before" = Option<u64>, Query, description = "only deployments numbered below this"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_deployments(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
    Params(q): Params<ListDeployments>,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .deployments(
                &service_addr(&ws, &proj, &e, &s)?,
                q.limit.unwrap_or(20),
                q.before,
            )
            .await?,
    ))
}

type DeployPath = Path<(String, String, String, String, u64)>;

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("n" = u64, Path, description = "deployment number"),
    ),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_deployment(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s, n)): DeployPath,
) -> ApiResult<Json<DeploymentView>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .deployment(&service_addr(&ws, &proj, &e, &s)?, n)
            .await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/cancel",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("n" = u64, Path, description = "deployment number"),
    ),
    responses(
        (status = 200, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn cancel(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s, n)): DeployPath,
) -> ApiResult<Json<DeploymentView>> {
    p.in_workspace(&ws)?;
    let change = Change::new("deployment.cancel", format!("{ws}/{proj}/{e}/{s}#{n}"));
    audited(&st, &p, change, async {
        p.require(Permission::Deploy)?;
        Ok(Json(
            st.platform
                .cancel(&service_addr(&ws, &proj, &e, &s)?, n)
                .await?,
        ))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/rollback",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("n" = u64, Path, description = "deployment number"),
    ),
    responses(
        (status = 202, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn rollback(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s, n)): DeployPath,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    p.in_workspace(&ws)?;
    let result = async {
        p.require(Permission::Deploy)?;
        Ok((
            StatusCode::ACCEPTED,
            Json(
                st.platform
                    .rollback(&service_addr(&ws, &proj, &e, &s)?, n)
                    .await?,
            ),
        ))
    }
    .await;
    let number = result.as_ref().ok().map(|(_, d)| d.number);
    let change = Change::new("deployment.rollback", format!("{ws}/{proj}/{e}/{s}#{n}"))
        .details(json!({ "number": number }));
    record_call(&st, &p, change, &result).await;
    result
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/log",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("n" = u64, Path, description = "deployment number"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn deploy_log(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s, n)): DeployPath,
) -> ApiResult<Json<Vec<LogEntry>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(
        st.platform
            .deploy_log(&service_addr(&ws, &proj, &e, &s)?, n)
            .await?,
    ))
}

fn settled(status: DeploymentStatus) -> bool {
    status == DeploymentStatus::Active || status.is_terminal()
}

/// Server-Sent Events for one deployment: its current status first, then every event until
/// it is ACTIVE or finished, then the stream ends.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/events",
    tag = "deployments",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("n" = u64, Path, description = "deployment number"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events of the deployment", content_type = "text/event-stream"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn follow(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s, n)): DeployPath,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let addr = service_addr(&ws, &proj, &e, &s)?;
    let slot = st.streams.reserve(&p)?;
    // Subscribe before reading the status, so no transition falls between the two.
    let events = st.platform.events();
    let current = st.platform.deployment(&addr, n).await?;
    let id = current.id;
    let first = SseEvent::default()
        .event("status")
        .json_data(&current)
        .unwrap_or_default();
    let done_already = settled(current.status);
    // Transitions made between the subscription and the read are in the first event's
    // history already: they are not sent again (a status is never entered twice).
    let seen: Vec<DeploymentStatus> = current.history.iter().map(|h| h.to).collect();
    // Ends right after the event that settles the deployment (or at once if it already is):
    // a follower never waits for an event that will not come.
    let rest = futures_util::stream::unfold((events, done_already), move |(mut events, done)| {
        let seen = seen.clone();
        async move {
            if done {
                return None;
            }
            loop {
                let ev = events.next().await?;
                if ev.deployment != id {
                    continue;
                }
                if matches!(&ev.kind, EventKind::Transition { to, .. } if seen.contains(to)) {
                    continue;
                }
                let finished = matches!(&ev.kind, EventKind::Transition { to, .. } if settled(*to));
                let name = match &ev.kind {
                    EventKind::Transition { .. } => "transition",
                    EventKind::Log { .. } => "log",
                    EventKind::Created => "created",
                    EventKind::Restarted { .. } => "restarted",
                };
                let sse = SseEvent::default()
                    .event(name)
                    .json_data(&ev)
                    .unwrap_or_default();
                return Some((Ok(sse), (events, finished)));
            }
        }
    });
    let stream = slot.carry(futures_util::stream::once(std::future::ready(Ok(first))).chain(rest));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

// ---- The running service: logs and exec ----------------------------------------------------

#[derive(Debug, serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    #[serde(default)]
    tail: Option<usize>,
    #[serde(default)]
    process: Option<String>,
    #[serde(default)]
    replica: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/logs",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
        ("follow" = Option<bool>, Query, description = "keep streaming new lines"),
        ("tail" = Option<usize>, Query, description = "only the last N lines of history"),
        ("process" = Option<String>, Query, description = "only this process type's workloads (`web`, `worker`, ...)"),
        ("replica" = Option<u32>, Query, description = "only this replica (from 0)"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events, one `line` event per log line (`process`, `replica`, `stream`, `line`, `at`); every workload of the ACTIVE deployment unless `process`/`replica` pick some", content_type = "text/event-stream"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// The running service's output (its ACTIVE deployment's workloads) as Server-Sent Events.
async fn service_logs(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
    Params(q): Params<LogsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let tail = q.tail.map(|t| t.min(10_000));
    // Only a followed log stays open (and counts); history alone ends by itself.
    let slot = if q.follow {
        Some(st.streams.reserve(&p)?)
    } else {
        None
    };
    let selector = WorkloadSelector {
        process: q.process,
        replica: q.replica,
    };
    let lines = st
        .platform
        .logs(
            &service_addr(&ws, &proj, &e, &s)?,
            &selector,
            q.follow,
            tail,
        )
        .await?;
    let stream = lines.map(|line| {
        Ok(match line {
            Ok(l) => SseEvent::default()
                .event("line")
                .json_data(&l)
                .unwrap_or_default(),
            Err(err) => SseEvent::default().event("error").data(err.to_string()),
        })
    });
    let stream = match slot {
        Some(slot) => slot.carry(stream).boxed(),
        None => st.streams.until_shutdown(stream).boxed(),
    };
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A command to run in the service: an argument vector, never a shell string.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExecBody {
    command: Vec<String>,
    /// Seconds before the command is abandoned (default 30, at most 600).
    #[serde(default)]
    timeout_s: Option<u64>,
    /// The process type to run it in (default `web`, else the first one).
    #[serde(default)]
    process: Option<String>,
    /// The replica to run it in (default 0).
    #[serde(default)]
    replica: Option<u32>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ExecResult {
    exit_code: Option<i64>,
    stdout: String,
    stderr: String,
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/exec",
    tag = "services",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("p" = String, Path, description = "project slug"),
        ("e" = String, Path, description = "environment name"),
        ("s" = String, Path, description = "service slug"),
    ),
    request_body = ExecBody,
    responses(
        (status = 200, description = "the command ran", body = ExecResult),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// Run a command in the running service (non-interactive).
async fn service_exec(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, proj, e, s)): SvcPath,
    Body(req): Body<ExecBody>,
) -> ApiResult<Json<ExecResult>> {
    p.in_workspace(&ws)?;
    // The program only: arguments may carry credentials.
    let change = Change::new("service.exec", format!("{ws}/{proj}/{e}/{s}")).details(
        json!({ "program": req.command.first(), "process": req.process, "replica": req.replica }),
    );
    audited(&st, &p, change, async {
        p.require(Permission::Deploy)?;
        let timeout = Duration::from_secs(req.timeout_s.unwrap_or(30).clamp(1, 600));
        let selector = WorkloadSelector {
            process: req.process,
            replica: req.replica,
        };
        let out = st
            .platform
            .exec(
                &service_addr(&ws, &proj, &e, &s)?,
                &selector,
                req.command,
                timeout,
            )
            .await?;
        Ok(Json(ExecResult {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        }))
    })
    .await
}
