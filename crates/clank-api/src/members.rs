//! Who may act in a workspace: new workspaces and their first Owner, members and their roles,
//! and API tokens (shown once at creation, listed without their secret).

use clank_core::Timestamp;
use clank_core::id::{TokenId, UserId};
use clank_core::model::{ApiToken, Member, Role, User};

/// A workspace and its first Owner: the body of `init` and of a new tenant.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// The workspace's slug.
    pub workspace: String,
    /// The first Owner's name.
    pub name: String,
    /// The first Owner's email.
    pub email: String,
    /// The first Owner's password for the dashboard's sign-in (email and password), at least
    /// 12 characters; stored as an Argon2id hash, never returned. Without one, the dashboard
    /// is signed in to with an API token. For a new tenant whose Owner already has an
    /// account, leave it out: their password stays theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for NewWorkspace {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewWorkspace")
            .field("workspace", &self.workspace)
            .field("name", &self.name)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A member's new dashboard password (at least 12 characters).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    pub password: String,
}

impl std::fmt::Debug for SetPassword {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword").finish_non_exhaustive()
    }
}

/// A new token as its holder sees it, once.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// The bearer token. Shown once; only its hash is stored.
    pub token: String,
    pub id: TokenId,
    /// The most the token can do (never more than its user's role).
    pub role: Role,
}

impl std::fmt::Debug for TokenCreated {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreated")
            .field("id", &self.id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A user to add to the workspace with a role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub name: String,
    pub email: String,
    pub role: Role,
}

/// A member just added, with their first token (shown once).
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberCreated {
    pub user: User,
    pub role: Role,
    /// Their first bearer token. Shown once; only its hash is stored.
    pub token: String,
}

impl std::fmt::Debug for MemberCreated {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberCreated")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A member's new role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub role: Role,
}

/// A member with the user's name and email (absent only for a user record that is gone).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    #[serde(flatten)]
    pub member: Member,
    pub name: Option<String>,
    pub email: Option<String>,
}

/// What a removal took with it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberRemoved {
    pub user: UserId,
    pub email: Option<String>,
    /// The role they had.
    pub role: Role,
    /// How many of their tokens went with them.
    pub tokens_deleted: usize,
}

/// A token for yourself, with at most your own role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (`ci`, `laptop`).
    pub name: String,
    /// The most it may do (default: your role; never more).
    #[serde(default)]
    pub role: Option<Role>,
}

/// Whose tokens to list (`GET …/tokens`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListTokens {
    /// Every token of the workspace (Owners), or of every member who is not an Owner (Admins);
    /// default: your own.
    #[serde(default)]
    pub all: bool,
}

/// A token as listed: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: TokenId,
    /// Whose token it is.
    pub user: UserId,
    pub name: String,
    /// The token's first characters, to recognise it (`clank_ab12…`).
    pub prefix: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_created_debug_hides_the_token() {
        let t = TokenCreated {
            token: "clank_visible-nowhere".into(),
            id: TokenId::new(),
            role: Role::Owner,
        };
        assert!(!format!("{t:?}").contains("clank_visible-nowhere"));
    }

    #[test]
    fn member_created_debug_hides_the_token() {
        let m = MemberCreated {
            user: User {
                id: UserId::new(),
                name: "Ada".into(),
                email: "ada@example.com".into(),
                created_at: Timestamp(0),
            },
            role: Role::Developer,
            token: "clank_visible-nowhere".into(),
        };
        assert!(!format!("{m:?}").contains("clank_visible-nowhere"));
    }
}
