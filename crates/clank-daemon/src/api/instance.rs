//! The instance above workspaces: `init` (once, the first workspace and the instance
//! operator), new workspaces (tenants, the operator's call), and who the operator is.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use clank_core::Timestamp;
use clank_core::id::UserId;
use clank_core::model::{ApiToken, Member, Role, User, Workspace};
use clank_core::store::catalog::{Batch, Page};
use serde_json::json;

use super::AppState;
use super::audit::{self, Change, audited};
use super::auth::{Principal, new_token, token_record};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::routes::{Body, TokenCreated, validate_email};

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InitRequest {
    workspace: String,
    name: String,
    email: String,
}

/// Create the first workspace and its Owner. Only possible while no user exists.
#[utoipa::path(
    post,
    path = "/v1/init",
    tag = "system",
    request_body = InitRequest,
    responses(
        (status = 201, description = "success", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn init(
    State(st): State<AppState>,
    Body(req): Body<InitRequest>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let cat = st.platform.catalog();
    if !cat.list::<User>(Page::first(1)).await?.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "already initialised: ask an Owner or Admin for a token",
        ));
    }
    let email = validate_email(&req.email)?;
    let name = clank_core::validate::validate_display_name("name", &req.name)?.to_owned();
    let ws = Workspace::new(&req.workspace, Some(&req.workspace), Timestamp::now())?;
    let user = User {
        id: UserId::new(),
        name,
        email,
        created_at: Timestamp::now(),
    };
    let (member, record, token) = first_owner(&ws, &user, "init");
    let instance = clank_core::model::Instance {
        operator: user.id,
        initialised_at: Timestamp::now(),
    };
    let mut b = Batch::new();
    b.create(&instance)?
        .create(&ws)?
        .create(&user)?
        .create(&member)?
        .create(&record)?;
    // The instance record makes this write conditional: of concurrent inits, one commits.
    match cat.commit(b).await {
        Ok(_) => {}
        Err(clank_core::Error::Conflict(_) | clank_core::Error::WriteConflict { .. }) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "already initialised: ask an Owner or Admin for a token",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let actor = clank_core::model::Actor::Token {
        token_id: record.id,
        token_name: record.name.clone(),
        user_id: user.id,
    };
    let change = Change::new("workspace.init", &ws.slug).details(json!({"owner": user.email}));
    audit::record(
        &st,
        ws.id,
        actor,
        change,
        clank_core::model::AuditOutcome::Succeeded,
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            id: record.id,
            role: Role::Owner,
        }),
    ))
}

/// A new workspace's first Owner: `user`'s membership and first token (named `token_name`),
/// and the token itself (shown once).
fn first_owner(ws: &Workspace, user: &User, token_name: &str) -> (Member, ApiToken, String) {
    let member = Member {
        workspace_id: ws.id,
        user_id: user.id,
        role: Role::Owner,
        teams: Default::default(),
        joined_at: Timestamp::now(),
    };
    let (token, hash) = new_token();
    let record = token_record(ws.id, user.id, token_name, Role::Owner, hash, &token);
    (member, record, token)
}

/// The instance operator: the user who ran `init` (the `Instance` record, which
/// [`pin_operator`] writes at start for a store initialised before the record existed).
pub(super) async fn instance_operator(st: &AppState) -> ApiResult<Option<UserId>> {
    let cat = st.platform.catalog();
    Ok(cat
        .get::<clank_core::model::Instance>(clank_core::model::Instance::ID)
        .await?
        .map(|i| i.operator))
}

/// At start: a store initialised before the `Instance` record existed gets one naming its
/// first user (the one who ran `init`), so the operator never changes as users come and go.
pub(crate) async fn pin_operator(platform: &clank_platform::Platform) -> clank_core::Result<()> {
    let cat = platform.catalog();
    let id = clank_core::model::Instance::ID;
    if cat.get::<clank_core::model::Instance>(id).await?.is_some() {
        return Ok(());
    }
    let Some(first) = cat
        .list::<User>(Page::first(1))
        .await?
        .items
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let instance = clank_core::model::Instance {
        operator: first.id,
        initialised_at: first.created_at,
    };
    match cat.create(&instance).await {
        Ok(_) | Err(clank_core::Error::Conflict(_) | clank_core::Error::WriteConflict { .. }) => {
            tracing::info!(operator = %first.email, "The instance operator is the first user.");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Refuse with 403 unless `p` is the instance operator, saying why `what` needs it.
pub(super) async fn require_operator(st: &AppState, p: &Principal, what: &str) -> ApiResult<()> {
    if instance_operator(st).await? == Some(p.user) {
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
    request_body = InitRequest,
    responses(
        (status = 201, description = "the workspace's first Owner token", body = Object),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create_workspace(
    p: Principal,
    State(st): State<AppState>,
    Body(req): Body<InitRequest>,
) -> ApiResult<(StatusCode, Json<TokenCreated>)> {
    let change = Change::new(
        "workspace.create",
        req.workspace.chars().take(64).collect::<String>(),
    );
    audited(&st, &p, change, async {
        require_operator(&st, &p, "create workspaces").await?;
        let cat = st.platform.catalog();
        let email = validate_email(&req.email)?;
        let name = clank_core::validate::validate_display_name("name", &req.name)?.to_owned();
        let ws = Workspace::new(&req.workspace, Some(&req.workspace), Timestamp::now())?;
        let existing = cat.lookup::<User>("email", &email).await?;
        let user = match &existing {
            Some(u) => u.value.clone(),
            None => User {
                id: UserId::new(),
                name,
                email,
                created_at: Timestamp::now(),
            },
        };
        let (member, record, token) = first_owner(&ws, &user, "owner");
        let mut b = Batch::new();
        b.create(&ws)?.create(&member)?.create(&record)?;
        if existing.is_none() {
            b.create(&user)?;
        }
        cat.commit(b).await?;
        Ok((
            StatusCode::CREATED,
            Json(TokenCreated {
                token,
                id: record.id,
                role: Role::Owner,
            }),
        ))
    })
    .await
}
