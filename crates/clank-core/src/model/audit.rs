//! The audit log: one immutable record per change a caller asked for — who, what, on which
//! address, and how it ended. Written by the interfaces (the daemon), never updated or removed.
//!
//! Details are what an auditor needs to tell changes apart (config keys, deployment numbers),
//! never values: a secret appears as its key and `"secret": true` only.

use std::fmt;

use crate::id::{AuditEventId, TokenId, UserId, WorkspaceId};
use crate::time::Timestamp;

/// Who asked for a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// A caller holding an API token.
    Token {
        token_id: TokenId,
        token_name: String,
        user_id: UserId,
    },
    /// A verified push delivery from a forge (`github`, `gitlab`, `gitea`).
    Webhook { provider: String },
    /// The platform itself, on a schedule (`preview-ttl`: a preview torn down at its deadline).
    System { task: String },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Token {
                token_name,
                user_id,
                ..
            } => write!(f, "user:{user_id} (token `{token_name}`)"),
            Actor::Webhook { provider } => write!(f, "webhook:{provider}"),
            Actor::System { task } => write!(f, "system:{task}"),
        }
    }
}

/// How the change ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AuditOutcome {
    Succeeded,
    /// The role did not allow it (nothing changed).
    Denied,
    /// Refused or failed with this HTTP status and error code (nothing changed, or the
    /// operation reports what did).
    Failed {
        status: u16,
        code: String,
    },
}

impl fmt::Display for AuditOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditOutcome::Succeeded => f.write_str("succeeded"),
            AuditOutcome::Denied => f.write_str("denied"),
            AuditOutcome::Failed { status, code } => write!(f, "failed ({status} {code})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// Time-ordered (UUIDv7): listing by id is listing by time.
    pub id: AuditEventId,
    pub at: Timestamp,
    pub workspace_id: WorkspaceId,
    pub actor: Actor,
    /// `noun.verb`, e.g. `service.update`, `deployment.rollback`, `config.set`.
    pub action: String,
    /// The address acted on (`acme/shop/production/web`, `acme/shop/production/web#3`).
    pub target: String,
    pub outcome: AuditOutcome,
    /// What distinguishes this change from another of the same action. Never a secret value.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}
