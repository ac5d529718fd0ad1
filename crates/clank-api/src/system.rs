//! The daemon itself: is it up, and who is this token.

use clank_core::id::UserId;
use clank_core::model::Role;

/// The daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The daemon's version.
    pub version: String,
}

/// Who the bearer token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// The token's workspace slug.
    pub workspace: String,
    pub user: UserId,
    /// The token's role.
    pub role: Role,
}

/// One workspace the caller's user is a member of (`GET /v1/memberships`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Membership {
    /// The workspace's slug.
    pub workspace: String,
    /// Its display name.
    pub name: String,
    /// The user's role there (a token of theirs may carry less).
    pub role: Role,
    /// The workspace of the token making the call.
    pub current: bool,
}
