//! Authentication (API tokens: shown once, stored as a SHA-256 hash) and authorization (the
//! role table in `clank_core::model::Role::allows`, checked by every handler).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use clank_core::Timestamp;
use clank_core::id::{TokenId, UserId};
use clank_core::model::{ApiToken, Member, Permission, Role, Workspace};
use clank_core::store::catalog::Catalog;
use clank_platform::identity::{Caller, TokenDigest};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::{ApiError, ApiResult};

/// Who is calling: resolved from the bearer token on every request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub workspace: Workspace,
    pub user: UserId,
    pub token: TokenId,
    /// The token's name, for the audit log.
    pub token_name: String,
    /// The effective role: the token's, never more than the member's current one.
    pub role: Role,
}

impl Principal {
    /// Refuse with 403 unless the role allows `p`.
    pub fn require(&self, p: Permission) -> ApiResult<()> {
        if self.role.allows(p) {
            Ok(())
        } else {
            // The lowest role that would do: what the caller asks an Owner or Admin for.
            let needed = Role::ALL.into_iter().rev().find(|r| r.allows(p));
            let needed = needed
                .map(|r| format!("; it needs the {r:?} role or above"))
                .unwrap_or_default();
            Err(ApiError::forbidden(format!(
                "your role ({:?}) does not allow {p:?}{needed}",
                self.role
            )))
        }
    }

    /// This caller as the audit log names them.
    pub fn actor(&self) -> clank_core::model::Actor {
        clank_core::model::Actor::Token {
            token_id: self.token,
            token_name: self.token_name.clone(),
            user_id: self.user,
        }
    }

    /// This caller as the platform's identity operations take them.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            workspace: &self.workspace,
            user: self.user,
            role: self.role,
        }
    }

    /// Paths name a workspace; a token only ever sees its own. Another workspace is 404, not
    /// 403, so tokens cannot probe which workspaces exist.
    pub fn in_workspace(&self, slug: &str) -> ApiResult<()> {
        if self.workspace.slug == slug {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("workspace `{slug}` not found")))
        }
    }
}

/// A new random token (`clank_` + 43 base64url chars = 256 bits) and its stored hash.
pub fn new_token() -> (String, String) {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!(
        "clank_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    (token, hash)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new token for its holder (shown once) and what the platform keeps of it: the hash and the
/// prefix listings show.
pub fn mint_token() -> (String, TokenDigest) {
    let (token, hash) = new_token();
    let prefix = token.chars().take(12).collect();
    (token, TokenDigest { hash, prefix })
}

async fn authenticate(catalog: &Catalog, header: Option<&str>) -> ApiResult<Principal> {
    let token = header
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <token>`"))?;
    principal_for_hash(catalog, &hash_token(token)).await
}

/// The caller whose token hashes to `hash`, checked as every request's token is (usable, its
/// user still a member, the role no more than the member's): the dashboard's sessions keep
/// only the hash and come through here on every page.
pub(crate) async fn principal_for_hash(catalog: &Catalog, hash: &str) -> ApiResult<Principal> {
    // Looking up by the hash means the comparison happens on hashes inside the store: the
    // token itself is never compared byte by byte, so timing reveals nothing about it.
    let record = catalog
        .lookup::<ApiToken>("hash", hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))?;
    if !record.is_usable(Timestamp::now()) {
        return Err(ApiError::unauthorized("the token is expired or revoked"));
    }
    let member = catalog
        .get::<Member>(&format!("{}:{}", record.workspace_id, record.user_id))
        .await?
        .ok_or_else(|| ApiError::unauthorized("the token's user is no longer a member"))?;
    let workspace = catalog
        .require::<Workspace>(&record.workspace_id.to_string())
        .await?;
    Ok(Principal {
        workspace: workspace.value,
        user: record.user_id,
        token: record.id,
        token_name: record.name.clone(),
        role: record.role.min(member.role),
    })
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        authenticate(state.platform.catalog(), header).await
    }
}
