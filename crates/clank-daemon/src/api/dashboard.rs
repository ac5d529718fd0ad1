//! What the dashboard (`crate::ui`) does to the platform: the REST handlers themselves (create a
//! service, deploy, roll back, follow a deployment, set a service's config). A page is one more
//! client of these, never a second path to the data.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use clank_api::{ConfigRequest, DeploymentView, ServiceSpec};
use clank_core::config::ConfigVarView;
use clank_core::model::Service;

use super::AppState;
use super::auth::Principal;
use super::error::ApiResult;
use super::extract::{Body, DeploymentPath, EnvironmentPath, ServicePath};

/// A service as the dashboard's paths name it (the API's `{ws}/{p}/{e}/{s}`).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct ServiceAt {
    pub(crate) ws: String,
    pub(crate) p: String,
    pub(crate) e: String,
    pub(crate) s: String,
}

impl ServiceAt {
    fn path(&self) -> ServicePath {
        ServicePath {
            ws: self.ws.clone(),
            p: self.p.clone(),
            e: self.e.clone(),
            s: self.s.clone(),
        }
    }

    fn deployment(&self, n: u64) -> DeploymentPath {
        DeploymentPath {
            ws: self.ws.clone(),
            p: self.p.clone(),
            e: self.e.clone(),
            s: self.s.clone(),
            n,
        }
    }
}

/// `POST …/environments/{e}/services`: a new service, checked and audited by the REST handler.
pub(crate) async fn create_service(
    st: &AppState,
    p: Principal,
    ws: &str,
    project: &str,
    env: &str,
    spec: ServiceSpec,
) -> ApiResult<Service> {
    let at = EnvironmentPath {
        ws: ws.to_owned(),
        p: project.to_owned(),
        e: env.to_owned(),
    };
    let (_, Json(s)) =
        super::services::create_service(p, State(st.clone()), Path(at), Body(spec)).await?;
    Ok(s)
}

/// `POST …/deployments`: a manual deploy, checked and audited by the REST handler.
pub(crate) async fn deploy(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
) -> ApiResult<DeploymentView> {
    let (_, Json(d)) = super::deployments::deploy(p, State(st.clone()), Path(at.path())).await?;
    Ok(d)
}

/// `POST …/deployments/{n}/rollback`, checked and audited by the REST handler.
pub(crate) async fn rollback(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
    n: u64,
) -> ApiResult<DeploymentView> {
    let (_, Json(d)) =
        super::deployments::rollback(p, State(st.clone()), Path(at.deployment(n))).await?;
    Ok(d)
}

/// `GET …/deployments/{n}/events`: the REST handler's Server-Sent Events (its stream limits
/// included), for the dashboard's live status cells.
pub(crate) async fn follow(st: &AppState, p: Principal, at: &ServiceAt, n: u64) -> Response {
    super::deployments::follow(p, State(st.clone()), Path(at.deployment(n)))
        .await
        .into_response()
}

/// `POST …/deployments/{n}/cancel`, checked and audited by the REST handler.
pub(crate) async fn cancel(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
    n: u64,
) -> ApiResult<DeploymentView> {
    let Json(d) = super::deployments::cancel(p, State(st.clone()), Path(at.deployment(n))).await?;
    Ok(d)
}

/// `GET …/deployments/{n}/log`: the deploy log as the REST handler reads it.
pub(crate) async fn deploy_log(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
    n: u64,
) -> ApiResult<Vec<clank_api::LogEntry>> {
    let Json(log) =
        super::deployments::deploy_log(p, State(st.clone()), Path(at.deployment(n))).await?;
    Ok(log)
}

/// `GET …/services/{s}/logs?follow=true&tail={tail}`: the REST handler's Server-Sent Events of
/// the running service's output (its checks and stream limits included), for the service
/// page's live log.
pub(crate) async fn follow_logs(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
    tail: usize,
) -> Response {
    let query = clank_api::services::LogsQuery {
        follow: true,
        tail: Some(tail),
        process: None,
        replica: None,
    };
    super::services::service_logs(
        p,
        State(st.clone()),
        Path(at.path()),
        super::extract::Params(query),
    )
    .await
    .into_response()
}

/// `PATCH …/services/{s}/config`, checked, written and audited by the REST handler.
pub(crate) async fn set_service_config(
    st: &AppState,
    p: &Principal,
    at: &ServiceAt,
    req: ConfigRequest,
) -> ApiResult<Vec<ConfigVarView>> {
    let Json(vars) = super::config::write_service(p.clone(), st.clone(), &at.path(), req).await?;
    Ok(vars)
}

/// `PATCH …/services/{s}`, checked, validated, written and audited by the REST handler.
pub(crate) async fn update_service(
    st: &AppState,
    p: &Principal,
    at: &ServiceAt,
    patch: clank_api::ServicePatch,
) -> ApiResult<Service> {
    let Json(s) =
        super::services::update_service(p.clone(), State(st.clone()), Path(at.path()), Body(patch))
            .await?;
    Ok(s)
}

/// `GET /v1/workspaces/{ws}/servers`: the servers with live state and usage, as the REST list.
pub(crate) async fn servers(
    st: &AppState,
    p: Principal,
    ws: &str,
) -> ApiResult<Vec<clank_api::servers::ServerView>> {
    let Json(servers) = super::servers::list(p, State(st.clone()), Path(ws.to_owned())).await?;
    Ok(servers)
}

/// `GET /v1/workspaces/{ws}/audit`: one page of the audit log, newest first, with the REST
/// handler's role check and its checks of `limit` and `before`.
pub(crate) async fn audit_events(
    st: &AppState,
    p: Principal,
    ws: &str,
    query: clank_api::audit::AuditQuery,
) -> ApiResult<Vec<clank_core::model::AuditEvent>> {
    let Json(events) = super::audit::list(
        p,
        State(st.clone()),
        Path(ws.to_owned()),
        super::extract::Params(query),
    )
    .await?;
    Ok(events)
}

/// `GET …/projects/{p}/environments?include_deleted=true`: every environment of a project,
/// the soft-deleted ones too.
pub(crate) async fn environments(
    st: &AppState,
    p: Principal,
    ws: &str,
    project: &str,
) -> ApiResult<Vec<clank_core::model::Environment>> {
    let at = super::extract::ProjectPath {
        ws: ws.to_owned(),
        p: project.to_owned(),
    };
    let query = clank_api::lifecycle::ListEnvironments {
        include_deleted: true,
    };
    let Json(envs) = super::environments::list_environments(
        p,
        State(st.clone()),
        Path(at),
        super::extract::Params(query),
    )
    .await?;
    Ok(envs)
}

/// `POST …/environments/{e}/clone`, checked and audited by the REST handler.
pub(crate) async fn clone_environment(
    st: &AppState,
    p: Principal,
    ws: &str,
    project: &str,
    env: &str,
    req: clank_api::environments::CloneEnvironment,
) -> ApiResult<clank_api::environments::CloneReport> {
    let at = EnvironmentPath {
        ws: ws.to_owned(),
        p: project.to_owned(),
        e: env.to_owned(),
    };
    let (_, Json(report)) =
        super::environments::clone_environment(p, State(st.clone()), Path(at), Body(req)).await?;
    Ok(report)
}

/// `POST /v1/workspaces/{ws}/promotions`: a stored plan, checked and audited by the REST
/// handler (nothing else is written).
pub(crate) async fn plan_promotion(
    st: &AppState,
    p: Principal,
    ws: &str,
    req: clank_api::plans::NewPromotion,
) -> ApiResult<clank_api::plans::PlanView> {
    let at = super::extract::WorkspacePath { ws: ws.to_owned() };
    let (_, Json(plan)) =
        super::promotions::plan_promotion(p, State(st.clone()), Path(at), Body(req)).await?;
    Ok(plan)
}

/// `GET /v1/workspaces/{ws}/plans/{id}`: a stored plan (secret values masked by the platform).
pub(crate) async fn plan(
    st: &AppState,
    p: Principal,
    ws: &str,
    id: &str,
) -> ApiResult<clank_api::plans::PlanView> {
    let at = super::promotions::PlanPath {
        ws: ws.to_owned(),
        id: id.to_owned(),
    };
    let Json(plan) = super::promotions::get_plan(p, State(st.clone()), Path(at)).await?;
    Ok(plan)
}

/// `POST /v1/workspaces/{ws}/plans/{id}/apply`, checked and audited by the REST handler.
pub(crate) async fn apply_plan(
    st: &AppState,
    p: Principal,
    ws: &str,
    id: &str,
) -> ApiResult<clank_api::plans::AppliedPlan> {
    let at = super::promotions::PlanPath {
        ws: ws.to_owned(),
        id: id.to_owned(),
    };
    let (_, Json(applied)) = super::promotions::apply_plan(p, State(st.clone()), Path(at)).await?;
    Ok(applied)
}

/// `GET /v1/templates`: the catalog, for any signed-in caller.
pub(crate) async fn templates(st: &AppState, p: Principal) -> Vec<clank_api::TemplateSummary> {
    let Json(list) = super::templates::list_templates(p, State(st.clone())).await;
    list
}

/// `GET /v1/templates/{name}`: the REST handler asks only for a signed-in caller (`_p`), then
/// reads this same platform operation.
pub(crate) fn template(
    st: &AppState,
    _p: &Principal,
    name: &str,
) -> ApiResult<clank_api::TemplateView> {
    Ok(st.platform.template(name)?)
}

/// `POST …/environments/{e}/stacks`: a template's services, checked and audited by the REST
/// handler.
pub(crate) async fn create_stack(
    st: &AppState,
    p: Principal,
    ws: &str,
    project: &str,
    env: &str,
    new: clank_api::NewStack,
) -> ApiResult<clank_api::StackView> {
    let at = EnvironmentPath {
        ws: ws.to_owned(),
        p: project.to_owned(),
        e: env.to_owned(),
    };
    let (_, Json(stack)) =
        super::templates::create_stack(p, State(st.clone()), Path(at), Body(new)).await?;
    Ok(stack)
}
