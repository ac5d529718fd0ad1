//! The instance above workspaces over HTTP: `init` (once, the first workspace and the instance
//! operator, with an optional dashboard password), new workspaces (tenants, the operator's
//! call), the operator check, and a member's dashboard password set by an Owner (or by
//! themselves). What these write is the platform's (`clank_platform::identity`); the token
//! secrets are minted here. Passwords are never logged, audited or returned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::members::{NewWorkspace, SetPassword, TokenCreated};
use clank_core::model::{AuditOutcome, Role};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{self, Change, audited};
use super::auth::{Principal, mint_token};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Body;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(init))
        .routes(routes!(create_workspace))
        .routes(routes!(set_password))
}

/// Create the first workspace and its Owner (with `password`, also their password for the
/// dashboard's sign-in). Only possible while no user exists.
#[utoipa::path(
    post,
    path = "/v1/init",
    tag = "system",
    request_body = NewWorkspace,
    responses(
        (status = 201, description = "success", body = TokenCreated),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn init(
    State(st): State<AppState>,
    Body(req): Body<NewWorkspace>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let (token, digest) = mint_token();
    let first = st.platform.init(&req, digest).await?;
    let actor = clank_core::model::Actor::Token {
        token_id: first.token.id,
        token_name: first.token.name.clone(),
        user_id: first.user.id,
    };
    let change = Change::new("workspace.init", &first.workspace.slug)
        .details(json!({"owner": first.user.email, "password": req.password.is_some()}));
    audit::record(
        &st,
        first.workspace.id,
        actor,
        change,
        AuditOutcome::Succeeded,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id: first.token.id,
            role: Role::Owner,
        }),
    ))
}

/// At start: pin the instance operator in a store initialised before the record existed.
pub(crate) async fn pin_operator(platform: &clank_platform::Platform) -> clank_core::Result<()> {
    platform.pin_operator().await
}

/// Refuse with 403 unless `p` is the instance operator, saying why `what` needs it.
pub(super) async fn require_operator(st: &AppState, p: &Principal, what: &str) -> ApiResult<()> {
    if st.platform.instance_operator().await? == Some(p.user) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "only the instance operator (the user who ran `clank init`) may {what}: it reaches \
             beyond this workspace"
        ),
    ))
}

/// A new workspace (tenant) and its first Owner: the instance operator's call. The Owner is
/// the user with that email if one exists, else a new user; their first token is returned.
#[utoipa::path(
    post,
    path = "/v1/workspaces",
    tag = "system",
    request_body = NewWorkspace,
    responses(
        (status = 201, description = "the workspace's first Owner token", body = TokenCreated),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_workspace(
    p: Principal,
    State(st): State<AppState>,
    Body(req): Body<NewWorkspace>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let change = Change::new(
        "workspace.create",
        req.workspace.chars().take(64).collect::<String>(),
    );
    audited(&st, &p, change, async {
        require_operator(&st, &p, "create workspaces").await?;
        let (token, digest) = mint_token();
        let first = st.platform.create_tenant(&req, digest).await?;
        Ok((
            StatusCode::CREATED,
            Json(TokenCreated {
                token,
                id: first.token.id,
                role: Role::Owner,
            }),
        ))
    })
    .await
}

/// Set a member's password for the dashboard's sign-in: an Owner sets anyone's who is a member
/// of this workspace only; every member may set their own. Sessions already open stay open
/// (revoke their `dashboard sign-in` tokens to end them).
#[utoipa::path(
    put,
    path = "/v1/workspaces/{ws}/members/{user}/password",
    tag = "members",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        ("user" = String, Path, description = "the member's user id, or their email"),
    ),
    request_body = SetPassword,
    responses(
        (status = 204, description = "the password is set"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn set_password(
    p: Principal,
    State(st): State<AppState>,
    Path((ws, user)): Path<(String, String)>,
    Body(req): Body<SetPassword>,
) -> ApiResult<StatusCode> {
    p.in_workspace(&ws)?;
    let change = Change::new("member.password", format!("{ws}/members/{user}"));
    audited(&st, &p, change, async {
        st.platform
            .set_password(p.caller(), &user, &req.password)
            .await?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
