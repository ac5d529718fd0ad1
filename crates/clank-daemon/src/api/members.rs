//! Members and their tokens: add, list, change a role, remove (offboarding), and the tokens
//! of the workspace listed and revoked.
//!
//! The rules on top of the role table: only an Owner makes, unmakes, removes an Owner or
//! revokes an Owner's token (an Admin manages everyone else); the last Owner can be neither
//! removed nor demoted; removing a member deletes their tokens in the same write, so their
//! next request is 401. Token hashes never leave the catalog.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_core::Timestamp;
use clank_core::id::{TokenId, UserId};
use clank_core::model::{ApiToken, Member, Permission, Role, User};
use clank_core::store::catalog::{Batch, Catalog, Page, Versioned};
use serde_json::json;

use super::AppState;
use super::audit::{Change, audited, record_call};
use super::auth::{Principal, new_token, token_record};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::routes::{Body, Params, RoleName, TokenCreated, validate_email};

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    name: String,
    email: String,
    #[schema(value_type = RoleName)]
    role: Role,
}

#[derive(Debug, serde::Serialize)]
pub(super) struct MemberCreated {
    user: User,
    role: Role,
    token: String,
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
        (status = 201, description = "success", body = Object),
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
    audited(&st, &p, change, create_member(&p, &st, req)).await
}

async fn create_member(
    p: &Principal,
    st: &AppState,
    req: AddMember,
) -> ApiResult<(StatusCode, Json<MemberCreated>)> {
    p.require(Permission::ManageMembers)?;
    if req.role == Role::Owner {
        p.require(Permission::OwnWorkspace)?;
    }
    let email = validate_email(&req.email)?;
    let name = clank_core::validate::validate_display_name("name", &req.name)?.to_owned();
    let user = User {
        id: UserId::new(),
        name,
        email,
        created_at: Timestamp::now(),
    };
    let member = Member {
        workspace_id: p.workspace.id,
        user_id: user.id,
        role: req.role,
        teams: Default::default(),
        joined_at: Timestamp::now(),
    };
    let (token, hash) = new_token();
    let record = token_record(p.workspace.id, user.id, "first", req.role, hash, &token);
    let mut b = Batch::new();
    b.create(&user)?.create(&member)?.create(&record)?;
    st.platform.catalog().commit(b).await?;
    Ok((
        StatusCode::CREATED,
        Json(MemberCreated {
            user,
            role: req.role,
            token,
        }),
    ))
}

/// A member with the user's name and email (absent only for a user record that is gone).
#[derive(Debug, serde::Serialize)]
pub(super) struct MemberView {
    #[serde(flatten)]
    member: Member,
    name: Option<String>,
    email: Option<String>,
}

async fn view(cat: &Catalog, member: Member) -> ApiResult<MemberView> {
    let user = cat.get::<User>(&member.user_id.to_string()).await?;
    Ok(MemberView {
        member,
        name: user.as_ref().map(|u| u.value.name.clone()),
        email: user.map(|u| u.value.email),
    })
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/members",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
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
    let cat = st.platform.catalog();
    let mut out = Vec::new();
    for m in members_of(cat, &p).await? {
        out.push(view(cat, m.value).await?);
    }
    Ok(Json(out))
}

async fn members_of(cat: &Catalog, p: &Principal) -> ApiResult<Vec<Versioned<Member>>> {
    Ok(cat
        .find::<Member>("workspace", &p.workspace.id.to_string(), Page::all())
        .await?
        .items)
}

/// The member `who` names in `p`'s workspace: a user id, or the user's email.
async fn find_member(cat: &Catalog, p: &Principal, who: &str) -> ApiResult<Versioned<Member>> {
    let user = if who.contains('@') {
        cat.lookup::<User>("email", &who.trim().to_lowercase())
            .await?
            .map(|u| u.value.id)
    } else {
        Some(who.parse::<UserId>()?)
    };
    let member = match user {
        Some(u) => {
            cat.get::<Member>(&format!("{}:{u}", p.workspace.id))
                .await?
        }
        None => None,
    };
    member.ok_or_else(|| {
        ApiError::not_found(format!(
            "`{}` is not a member of workspace `{}`",
            who.escape_debug(),
            p.workspace.slug
        ))
    })
}

/// Only an Owner may act on an Owner (remove, re-role, revoke their tokens).
fn may_act_on(p: &Principal, target: Role, what: &str) -> ApiResult<()> {
    if target == Role::Owner && !p.role.allows(Permission::OwnWorkspace) {
        return Err(ApiError::forbidden(format!(
            "your role ({:?}) cannot {what} an Owner; ask an Owner of the workspace",
            p.role
        )));
    }
    Ok(())
}

/// Another Owner than `leaving`, whose record the write that removes or demotes `leaving`
/// re-asserts unchanged: of two Owners removing each other at once, one write fails.
fn other_owner<'a>(
    members: &'a [Versioned<Member>],
    leaving: &Member,
    p: &Principal,
) -> ApiResult<&'a Versioned<Member>> {
    members
        .iter()
        .find(|m| m.value.role == Role::Owner && m.value.user_id != leaving.user_id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "last_owner",
                format!(
                    "this is the last Owner of workspace `{}`; make another member Owner first",
                    p.workspace.slug
                ),
            )
        })
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MemberPatch {
    #[schema(value_type = RoleName)]
    role: Role,
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
        (status = 200, description = "the member as changed", body = Object),
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
        let cat = st.platform.catalog();
        let target = find_member(cat, &p, &user).await?;
        may_act_on(&p, target.value.role, "change the role of")?;
        may_act_on(&p, req.role, "make")?;
        let mut next = target.value.clone();
        next.role = req.role;
        let mut b = Batch::new();
        b.update(&target, &next)?;
        if target.value.role == Role::Owner && req.role != Role::Owner {
            let members = members_of(cat, &p).await?;
            let guard = other_owner(&members, &target.value, &p)?;
            b.update(guard, &guard.value)?;
        }
        cat.commit(b).await?;
        Ok(Json(view(cat, next).await?))
    })
    .await
}

/// What a removal took with it.
#[derive(Debug, serde::Serialize)]
pub(super) struct MemberRemoved {
    user: UserId,
    email: Option<String>,
    role: Role,
    tokens_deleted: usize,
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
        (status = 200, description = "removed; what went with them", body = Object),
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
    let result = offboard(&p, &st, &user).await;
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

async fn offboard(p: &Principal, st: &AppState, who: &str) -> ApiResult<Json<MemberRemoved>> {
    p.require(Permission::ManageMembers)?;
    let cat = st.platform.catalog();
    let target = find_member(cat, p, who).await?;
    may_act_on(p, target.value.role, "remove")?;
    let user_id = target.value.user_id;
    let mut b = Batch::new();
    b.delete(&target);
    if target.value.role == Role::Owner {
        let members = members_of(cat, p).await?;
        let guard = other_owner(&members, &target.value, p)?;
        b.update(guard, &guard.value)?;
    }
    let tokens: Vec<_> = cat
        .find::<ApiToken>("user", &user_id.to_string(), Page::all())
        .await?
        .items
        .into_iter()
        .filter(|t| t.value.workspace_id == p.workspace.id)
        .collect();
    for t in &tokens {
        b.delete(t);
    }
    // A user in no other workspace goes too, so the email can be invited again; the audit
    // log keeps who they were (this event names the email).
    let user = cat.get::<User>(&user_id.to_string()).await?;
    let elsewhere = cat
        .find::<Member>("user", &user_id.to_string(), Page::all())
        .await?
        .items
        .iter()
        .any(|m| m.value.workspace_id != p.workspace.id);
    // The instance operator's user stays even then: the operator is who they are.
    let operator = super::instance::instance_operator(st).await? == Some(user_id);
    if let (Some(u), false, false) = (&user, elsewhere, operator) {
        b.delete(u);
    }
    cat.commit(b).await?;
    Ok(Json(MemberRemoved {
        user: user_id,
        email: user.map(|u| u.value.email),
        role: target.value.role,
        tokens_deleted: tokens.len(),
    }))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    name: String,
    #[serde(default)]
    #[schema(value_type = Option<RoleName>)]
    role: Option<Role>,
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
        (status = 201, description = "success", body = Object),
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
    audited(&st, &p, change, issue_token(&p, &st, req)).await
}

async fn issue_token(
    p: &Principal,
    st: &AppState,
    req: NewToken,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    p.require(Permission::Read)?;
    let role = req.role.unwrap_or(p.role);
    if role > p.role {
        return Err(ApiError::forbidden(format!(
            "a token cannot have more than your role ({:?})",
            p.role
        ))
        .field("role"));
    }
    let name = clank_core::validate::validate_display_name("name", &req.name)?;
    let (token, hash) = new_token();
    let record = token_record(p.workspace.id, p.user, name, role, hash, &token);
    st.platform.catalog().create(&record).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id: record.id,
            role,
        }),
    ))
}

/// A token as listed: never its hash.
#[derive(Debug, serde::Serialize)]
pub(super) struct TokenInfo {
    id: TokenId,
    user: UserId,
    name: String,
    prefix: String,
    role: Role,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    revoked: bool,
}

impl From<ApiToken> for TokenInfo {
    fn from(t: ApiToken) -> Self {
        TokenInfo {
            id: t.id,
            user: t.user_id,
            name: t.name,
            prefix: t.prefix,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked: t.revoked_at.is_some(),
        }
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListTokens {
    #[serde(default)]
    all: bool,
}

/// Your own tokens; with `all=true` every token of the workspace (Owners), or of every
/// member who is not an Owner (Admins).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/tokens",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("all" = Option<bool>, Query, description = "every member's tokens (Owner; Admin: non-Owners' only)"),
    ),
    responses(
        (status = 200, description = "success", body = [Object]),
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
    let cat = st.platform.catalog();
    let tokens = if q.all {
        p.require(Permission::ManageMembers)?;
        let hidden: BTreeSet<UserId> = if p.role.allows(Permission::OwnWorkspace) {
            BTreeSet::new()
        } else {
            members_of(cat, &p)
                .await?
                .into_iter()
                .filter(|m| m.value.role == Role::Owner)
                .map(|m| m.value.user_id)
                .collect()
        };
        cat.find::<ApiToken>("workspace", &p.workspace.id.to_string(), Page::all())
            .await?
            .items
            .into_iter()
            .filter(|t| !hidden.contains(&t.value.user_id))
            .collect::<Vec<_>>()
    } else {
        cat.find::<ApiToken>("user", &p.user.to_string(), Page::all())
            .await?
            .items
            .into_iter()
            .filter(|t| t.value.workspace_id == p.workspace.id)
            .collect()
    };
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo::from(t.value))
            .collect(),
    ))
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
    audited(&st, &p, change, revoke_token_record(&p, &st, &id)).await
}

async fn revoke_token_record(p: &Principal, st: &AppState, id: &str) -> ApiResult<StatusCode> {
    let id: TokenId = id.parse()?;
    let cat = st.platform.catalog();
    let t = cat
        .get::<ApiToken>(&id.to_string())
        .await?
        .filter(|t| t.workspace_id == p.workspace.id)
        .ok_or_else(|| ApiError::not_found(format!("token `{id}` not found")))?;
    if t.user_id != p.user {
        p.require(Permission::ManageMembers)?;
        let holder = cat
            .get::<Member>(&format!("{}:{}", p.workspace.id, t.user_id))
            .await?;
        if let Some(holder) = holder {
            may_act_on(p, holder.value.role, "revoke a token of")?;
        }
    }
    let mut next = t.value.clone();
    next.revoked_at.get_or_insert(Timestamp::now());
    cat.update(&t, &next).await?;
    Ok(StatusCode::NO_CONTENT)
}
