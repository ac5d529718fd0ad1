//! Typed identifiers: a `ProjectId` cannot be passed where a `ServiceId` is expected.
//!
//! Ids are UUIDv7, so they sort by creation time, which keeps store scans in creation order.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;

macro_rules! typed_id {
    ($(#[$doc:meta] $name:ident => $what:literal),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "uuid"))]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                $name(uuid::Uuid::now_v7())
            }

            pub const fn from_uuid(u: uuid::Uuid) -> Self {
                $name(u)
            }

            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }

            /// The human name of the thing this id points at, for error messages.
            pub const WHAT: &'static str = $what;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map($name).map_err(|_| {
                    InvalidInput::new("id", "uuid", format!("`{}` is not a valid {} id (expected a UUID)", s.escape_debug(), $what))
                })
            }
        }
    )*};
}

typed_id! {
    /// A workspace (tenant).
    WorkspaceId => "workspace",
    /// A user account, member of workspaces.
    UserId => "user",
    /// A team inside a workspace.
    TeamId => "team",
    /// A project inside a workspace.
    ProjectId => "project",
    /// An environment inside a project.
    EnvironmentId => "environment",
    /// A service inside an environment.
    ServiceId => "service",
    /// An immutable deployment of a service.
    DeploymentId => "deployment",
    /// A versioned build of a git service.
    BuildId => "build",
    /// A machine that runs workloads (the platform host or an agent).
    ServerId => "server",
    /// An API token.
    TokenId => "token",
    /// One immutable record of the audit log.
    AuditEventId => "audit event",
    /// A stack: the services one template created in an environment.
    StackId => "stack",
    /// A stored plan (a promotion), applied by its id.
    PlanId => "plan",
}

impl WorkspaceId {
    /// The workspace's mark in names it shares with other tenants on one host (networks,
    /// containers, volumes, process directories): the id's last 12 hex digits, which are
    /// random in a UUIDv7. Stable for the workspace's life.
    pub fn scope(&self) -> String {
        let simple = self.0.simple().to_string();
        simple[simple.len() - 12..].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_strings_and_sort_by_creation() {
        let a = ServiceId::new();
        let b = ServiceId::new();
        assert!(a < b, "v7 ids are time ordered");
        assert_eq!(a.to_string().parse::<ServiceId>().unwrap(), a);
    }

    #[test]
    fn malformed_id_names_the_kind() {
        let err = "../etc".parse::<ProjectId>().unwrap_err();
        assert_eq!(err.rule, "uuid");
        assert!(err.message.contains("project id"), "{}", err.message);
    }
}
