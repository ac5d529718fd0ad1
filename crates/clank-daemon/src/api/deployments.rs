//! A service's deployments: list, deploy, read, cancel, roll back, the deploy log, and one
//! deployment followed as Server-Sent Events until it settles.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use clank_api::DeploymentView;
use clank_api::LogEntry;
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Permission, Trigger};
use clank_engine::EventKind;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited, record_call};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{DeploymentPath, Params, ServicePath};
use clank_api::deployments::NewestFirst;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deployments, deploy))
        .routes(routes!(get_deployment))
        .routes(routes!(deployment_endpoints))
        .routes(routes!(cancel))
        .routes(routes!(rollback))
        .routes(routes!(deploy_log))
        .routes(routes!(follow))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments",
    tag = "deployments",
    params(ServicePath),
    responses(
        (status = 202, description = "success", body = DeploymentView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn deploy(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    p.in_workspace(&at.ws)?;
    let started = async {
        p.require(Permission::Deploy)?;
        let trigger = Trigger::Manual { by: Some(p.user) };
        Ok(st.platform.deploy(&at.addr()?, trigger).await?)
    };
    started_audited(&st, &p, "deployment.create", at.to_string(), started).await
}

/// Audits a call that starts a deployment (a deploy, a rollback) once it is answered, with the
/// new deployment's number, and answers 202 with the deployment.
async fn started_audited(
    st: &AppState,
    p: &Principal,
    action: &'static str,
    target: String,
    started: impl Future<Output = ApiResult<DeploymentView>>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let result = started.await;
    let number = result.as_ref().ok().map(|d| d.number);
    let change = Change::new(action, target).details(json!({ "number": number }));
    record_call(st, p, change, &result).await;
    result.map(|d| (StatusCode::ACCEPTED, Json(d)))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments",
    tag = "deployments",
    params(
        ServicePath,
        NewestFirst,
    ),
    responses(
        (status = 200, description = "success", body = [DeploymentView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_deployments(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    Params(page): Params<NewestFirst>,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    let addr = at.authorize(&p, Permission::Read)?;
    let deployments = st.platform.deployments(&addr, page.limit(), page.before);
    Ok(Json(deployments.await?))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}",
    tag = "deployments",
    params(DeploymentPath),
    responses(
        (status = 200, description = "success", body = DeploymentView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_deployment(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<Json<DeploymentView>> {
    let (addr, n) = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.deployment(&addr, n).await?))
}

/// Where the deployment's published (`web`) workloads listen on the daemon's host
/// (`127.0.0.1:port`), as the runtime reports them now; empty once they are stopped.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/endpoints",
    tag = "deployments",
    params(DeploymentPath),
    responses(
        (status = 200, description = "success", body = [String]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn deployment_endpoints(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<Json<Vec<String>>> {
    let (addr, n) = at.authorize(&p, Permission::Read)?;
    let found = st.platform.endpoints(&addr, n).await?;
    Ok(Json(found.iter().map(ToString::to_string).collect()))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/cancel",
    tag = "deployments",
    params(DeploymentPath),
    responses(
        (status = 200, description = "success", body = DeploymentView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn cancel(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<Json<DeploymentView>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("deployment.cancel", at.to_string());
    audited(&st, &p, change, async {
        p.require(Permission::Deploy)?;
        Ok(Json(st.platform.cancel(&at.addr()?, at.n).await?))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/rollback",
    tag = "deployments",
    params(DeploymentPath),
    responses(
        (status = 202, description = "success", body = DeploymentView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rollback(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    p.in_workspace(&at.ws)?;
    let started = async {
        p.require(Permission::Deploy)?;
        Ok(st
            .platform
            .rollback_restoring(&at.addr()?, at.n, Some(p.user))
            .await?)
    };
    let result: ApiResult<_> = started.await;
    // What the rollback set back on the service, by name: keys, never values.
    let details = match &result {
        Ok((d, restored)) => json!({
            "number": d.number,
            "rollback_of": at.n,
            "restored": {
                "fields": restored.fields,
                "config_keys": restored.config_keys,
                "not_restored": restored
                    .not_restored
                    .iter()
                    .map(|(key, scope)| json!({"key": key, "inherited_from": scope.level().to_string()}))
                    .collect::<Vec<_>>(),
            },
        }),
        Err(_) => json!({ "number": null, "rollback_of": at.n }),
    };
    let change = Change::new("deployment.rollback", at.to_string()).details(details);
    record_call(&st, &p, change, &result).await;
    result.map(|(d, _)| (StatusCode::ACCEPTED, Json(d)))
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/deployments/{n}/log",
    tag = "deployments",
    params(DeploymentPath),
    responses(
        (status = 200, description = "success", body = [LogEntry]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn deploy_log(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<Json<Vec<LogEntry>>> {
    let (addr, n) = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.deploy_log(&addr, n).await?))
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
    params(DeploymentPath),
    responses(
        (status = 200, description = "Server-Sent Events of the deployment", content_type = "text/event-stream"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn follow(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<DeploymentPath>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let (addr, n) = at.authorize(&p, Permission::Read)?;
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
                let sse = SseEvent::default()
                    .event(ev.kind.name())
                    .json_data(&ev)
                    .unwrap_or_default();
                return Some((Ok(sse), (events, finished)));
            }
        }
    });
    let stream = slot.carry(futures_util::stream::once(std::future::ready(Ok(first))).chain(rest));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
