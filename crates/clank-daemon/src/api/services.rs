//! Services: list (paged), create, read, change; and the running service: its logs and a
//! command run in it.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use clank_api::deployments::ServiceStatus;
use clank_api::services::{ExecBody, ExecResult, ListServices, LogsQuery};
use clank_api::{ServicePatch, ServiceSpec};
use clank_core::InvalidInput;
use clank_core::model::{Permission, Service};
use clank_platform::WorkloadSelector;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, EnvironmentPath, Params, ServicePath};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services, create_service))
        .routes(routes!(get_service, update_service))
        .routes(routes!(service_status))
        .routes(routes!(service_logs))
        .routes(routes!(service_exec))
}

/// Services of an environment in slug order. Paginated with `?limit=` (and `?after=` the
/// previous page's `X-Next-Cursor` header, absent on the last page).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services",
    tag = "services",
    params(
        EnvironmentPath,
        ListServices,
    ),
    responses(
        (status = 200, description = "success; a further page's cursor in `X-Next-Cursor`", body = [Service]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_services(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
    Params(q): Params<ListServices>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use base64::Engine as _;
    p.in_workspace(&at.ws)?;
    p.require(Permission::Read)?;
    let env = at.addr()?;
    if q.limit.is_none() && q.after.is_none() {
        return Ok(Json(
            st.platform
                .list_services_with(&env, q.include_deleted)
                .await?,
        )
        .into_response());
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
    let (items, next) = st
        .platform
        .list_services_page(&env, limit, after, q.include_deleted)
        .await?;
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
    params(EnvironmentPath),
    request_body = ServiceSpec,
    responses(
        (status = 201, description = "success", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<EnvironmentPath>,
    Body(spec): Body<ServiceSpec>,
) -> ApiResult<(StatusCode, Json<Service>)> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("service.create", format!("{at}/{}", spec.slug));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        if spec.server_id.is_some() {
            p.require(Permission::ManageServers)?;
        }
        let service = st.platform.create_service(&at.addr()?, spec).await?;
        Ok((StatusCode::CREATED, Json(service)))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 200, description = "success", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<Service>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.service(&addr).await?.value))
}

/// What runs now and what happened lately: the service, its ACTIVE deployment (read by id,
/// however old) and its five newest deployments.
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/status",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 200, description = "success", body = ServiceStatus),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn service_status(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
) -> ApiResult<Json<ServiceStatus>> {
    let addr = at.authorize(&p, Permission::Read)?;
    Ok(Json(st.platform.status(&addr).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}",
    tag = "services",
    params(ServicePath),
    request_body = ServicePatch,
    responses(
        (status = 200, description = "success", body = Service),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update_service(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    Body(patch): Body<ServicePatch>,
) -> ApiResult<Json<Service>> {
    p.in_workspace(&at.ws)?;
    let change = Change::new("service.update", at.to_string())
        .details(json!({ "fields": patch_fields(&patch) }));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServices)?;
        if patch.server_id.is_some() {
            p.require(Permission::ManageServers)?;
        }
        Ok(Json(st.platform.update_service(&at.addr()?, patch).await?))
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

// ---- The running service: logs and exec ----------------------------------------------------

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/logs",
    tag = "services",
    params(
        ServicePath,
        LogsQuery,
    ),
    responses(
        (status = 200, description = "Server-Sent Events, one `line` event per log line (`process`, `replica`, `stream`, `line`, `at`); every workload of the ACTIVE deployment unless `process`/`replica` pick some", content_type = "text/event-stream"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
/// The running service's output (its ACTIVE deployment's workloads) as Server-Sent Events.
pub(super) async fn service_logs(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    Params(q): Params<LogsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    p.in_workspace(&at.ws)?;
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
        .logs(&at.addr()?, &selector, q.follow, tail)
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

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/exec",
    tag = "services",
    params(ServicePath),
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
    Path(at): Path<ServicePath>,
    Body(req): Body<ExecBody>,
) -> ApiResult<Json<ExecResult>> {
    p.in_workspace(&at.ws)?;
    // The program only: arguments may carry credentials.
    let change = Change::new("service.exec", at.to_string()).details(
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
            .exec(&at.addr()?, &selector, req.command, timeout)
            .await?;
        Ok(Json(ExecResult {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        }))
    })
    .await
}
