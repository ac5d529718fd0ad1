//! Remote servers: register (the join token is shown once), list with live state and usage,
//! re-issue a join token, revoke; and offering a new agent binary to every agent, signed with
//! the control plane's release key (agents learned it at enrollment and install nothing else).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::servers::{NewServer, NewServerBody, ReleasePublished, ReleaseQuery, ServerView};
use clank_core::model::Permission;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, Params};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get))
        .routes(routes!(join_token))
        .routes(routes!(revoke))
        // An agent binary is far larger than any other body.
        .routes(
            routes!(offer_release)
                .map(|r| r.layer(axum::extract::DefaultBodyLimit::max(AGENT_BINARY_LIMIT))),
        )
}

/// Largest agent binary accepted by `PUT /v1/workspaces/{ws}/agent-release`.
pub(super) const AGENT_BINARY_LIMIT: usize = 256 * 1024 * 1024;

#[utoipa::path(
    get,
    operation_id = "list_servers",
    path = "/v1/workspaces/{ws}/servers",
    tag = "servers",
    params(("ws" = String, Path, description = "workspace slug")),
    responses(
        (status = 200, description = "servers with live state (connected, usage, generations)", body = [ServerView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<ServerView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.servers(&ws).await?))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/servers",
    tag = "servers",
    params(("ws" = String, Path, description = "workspace slug")),
    request_body = NewServerBody,
    responses(
        (status = 201, description = "the server and its one-time join token", body = NewServer),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Body(req): Body<NewServerBody>,
) -> ApiResult<(StatusCode, Json<NewServer>)> {
    p.in_workspace(&ws)?;
    let change = Change::new("server.create", format!("{ws}/servers/{}", req.name));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServers)?;
        Ok((
            StatusCode::CREATED,
            Json(st.platform.create_server(&ws, &req.name).await?),
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/servers/{name}",
    tag = "servers",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("name" = String, Path, description = "server name"),
    ),
    responses(
        (status = 200, description = "the server with live state", body = ServerView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
) -> ApiResult<Json<ServerView>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.server_view(&ws, &name).await?))
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/servers/{name}/join-token",
    tag = "servers",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("name" = String, Path, description = "server name"),
    ),
    responses(
        (status = 200, description = "a fresh one-time join token (re-enrollment)", body = NewServer),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn join_token(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
) -> ApiResult<Json<NewServer>> {
    p.in_workspace(&ws)?;
    let change = Change::new("server.join_token", format!("{ws}/servers/{name}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServers)?;
        Ok(Json(st.platform.server_join_token(&ws, &name).await?))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/servers/{name}/revoke",
    tag = "servers",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("name" = String, Path, description = "server name"),
    ),
    responses(
        (status = 200, description = "the revoked server; its agent is cut off", body = ServerView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, name)): Path<(String, String)>,
) -> ApiResult<Json<ServerView>> {
    p.in_workspace(&ws)?;
    let change = Change::new("server.revoke", format!("{ws}/servers/{name}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageServers)?;
        Ok(Json(st.platform.revoke_server(&ws, &name).await?))
    })
    .await
}

#[utoipa::path(
    put,
    path = "/v1/workspaces/{ws}/agent-release",
    tag = "servers",
    params(("ws" = String, Path, description = "workspace slug"), ReleaseQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the agent binary"),
    responses(
        (status = 200, description = "signed with the release key and offered to every agent; its SHA-256", body = ReleasePublished),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn offer_release(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Params(q): Params<ReleaseQuery>,
    body: Bytes,
) -> ApiResult<Json<ReleasePublished>> {
    p.in_workspace(&ws)?;
    let change = Change::new("agent.release", format!("{ws}/agent-release"))
        .details(json!({"version": q.version, "bytes": body.len()}));
    audited(&st, &p, change, async {
        // Every agent of every workspace runs what is offered: the instance operator only. The
        // fleet signs it (version, SHA-256, size) with the key agents learned at enrollment.
        p.require(Permission::OwnWorkspace)?;
        super::instance::require_operator(&st, &p, "publish agent releases").await?;
        let sha256 = st
            .platform
            .offer_agent_update(&q.version, body.to_vec())
            .await?;
        Ok(Json(ReleasePublished {
            version: q.version,
            sha256,
        }))
    })
    .await
}
