//! Members and their tokens over HTTP: add, list, change a role, remove (offboarding), and the
//! tokens of the workspace issued, listed and revoked. The rules (who may act on an Owner, the
//! last Owner, a token's role ceiling) are the platform's (`clank_platform::identity`); here
//! are the role-table checks, the token secrets (minted here, shown once) and the audit log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::members::{
    AddMember, ListTokens, MemberCreated, MemberPatch, MemberRemoved, MemberView, NewToken,
    TokenCreated, TokenInfo,
};
use clank_core::model::{Permission, Role};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited, record_call};
use super::auth::{Principal, mint_token};
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, Params};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(update_member, remove_member))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Add a user to the workspace with a role, returning their first token (shown once).
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/members",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    request_body = AddMember,
    responses(
        (status = 201, description = "success", body = MemberCreated),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn add_member(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Body(req): Body<AddMember>,
) -> ApiResult<(StatusCode, Json<MemberCreated>)> {
    p.in_workspace(&ws)?;
    let change = Change::new(
        "member.create",
        format!("{ws}/members/{}", req.email.trim()),
    )
    .details(json!({"role": req.role}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageMembers)?;
        if req.role == Role::Owner {
            p.require(Permission::OwnWorkspace)?;
        }
        let (token, digest) = mint_token();
        let (user, _) = st
            .platform
            .add_member(p.caller(), &req.name, &req.email, req.role, digest)
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(MemberCreated {
                user,
                role: req.role,
                token,
            }),
        ))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/members",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    responses(
        (status = 200, description = "success", body = [MemberView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_members(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<Json<Vec<MemberView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.members(p.caller()).await?))
}

/// Change a member's role. Making, or changing the role of, an Owner is for Owners; the last
/// Owner cannot be demoted. Their tokens never act above the new role.
#[utoipa::path(
    patch,
    path = "/v1/workspaces/{ws}/members/{user}",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("user" = String, Path, description = "the member's user id, or their email"),
    ),
    request_body = MemberPatch,
    responses(
        (status = 200, description = "the member as changed", body = MemberView),
        (status = "4XX", description = "refused (409 `last_owner`: the last Owner cannot be demoted)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update_member(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, user)): Path<(String, String)>,
    Body(req): Body<MemberPatch>,
) -> ApiResult<Json<MemberView>> {
    p.in_workspace(&ws)?;
    let change = Change::new("member.update", format!("{ws}/members/{user}"))
        .details(json!({"role": req.role}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageMembers)?;
        Ok(Json(
            st.platform.change_role(p.caller(), &user, req.role).await?,
        ))
    })
    .await
}

/// Remove a member (offboarding): their membership and every token of theirs in the workspace
/// go in one write, so their next request is 401. An Admin cannot remove an Owner; the last
/// Owner cannot be removed (409 `last_owner`).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/members/{user}",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("user" = String, Path, description = "the member's user id, or their email"),
    ),
    responses(
        (status = 200, description = "removed; what went with them", body = MemberRemoved),
        (status = "4XX", description = "refused (409 `last_owner`: the last Owner cannot be removed)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn remove_member(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, user)): Path<(String, String)>,
) -> ApiResult<Json<MemberRemoved>> {
    p.in_workspace(&ws)?;
    let result = async {
        p.require(Permission::ManageMembers)?;
        Ok(Json(st.platform.remove_member(p.caller(), &user).await?))
    }
    .await;
    let details = match &result {
        Ok(Json(r)) => {
            json!({"email": r.email, "role": r.role, "tokens_deleted": r.tokens_deleted})
        }
        Err(_) => serde_json::Value::Null,
    };
    let change = Change::new("member.remove", format!("{ws}/members/{user}")).details(details);
    record_call(&st, &p, change, &result).await;
    result
}

/// A token for yourself, with at most your own role.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/tokens",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    request_body = NewToken,
    responses(
        (status = 201, description = "success", body = TokenCreated),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_token(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Body(req): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    p.in_workspace(&ws)?;
    let change = Change::new("token.create", format!("{ws}/tokens/{}", req.name))
        .details(json!({"role": req.role.unwrap_or(p.role)}));
    audited(&st, &p, change, async {
        p.require(Permission::Read)?;
        let (token, digest) = mint_token();
        let record = st
            .platform
            .issue_token(p.caller(), &req.name, req.role, digest)
            .await?;
        Ok((
            StatusCode::CREATED,
            Json(TokenCreated {
                token,
                id: record.id,
                role: record.role,
            }),
        ))
    })
    .await
}

/// Your own tokens; with `all=true` every token of the workspace (Owners), or of every
/// member who is not an Owner (Admins).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/tokens",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ListTokens,
    ),
    responses(
        (status = 200, description = "success", body = [TokenInfo]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list_tokens(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Params(q): Params<ListTokens>,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    if q.all {
        p.require(Permission::ManageMembers)?;
    }
    Ok(Json(st.platform.tokens(p.caller(), q.all).await?))
}

/// Revoke a token: your own, or (Admin) a non-Owner's, or (Owner) anyone's.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/tokens/{id}",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("id" = String, Path, description = "token id"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke_token(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    p.in_workspace(&ws)?;
    let change = Change::new("token.revoke", format!("{ws}/tokens/{id}"));
    audited(&st, &p, change, async {
        st.platform.revoke_token(p.caller(), &id).await?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
