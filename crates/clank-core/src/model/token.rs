//! API tokens: shown once at creation, stored only as a hash.

use std::fmt;

use crate::id::{TokenId, UserId, WorkspaceId};
use crate::model::Role;
use crate::time::Timestamp;

#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub name: String,
    /// The token can act with at most this role (never more than its user's).
    pub role: Role,
    /// First characters of the token, to recognise it in listings (`clank_ab12…`).
    pub prefix: String,
    /// Hash of the full token; the token itself is never stored.
    pub hash: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    /// Usable right now: not revoked and not expired.
    pub fn is_usable(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
