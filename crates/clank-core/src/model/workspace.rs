//! Workspaces (tenants), their members and roles, and teams.

use std::collections::BTreeSet;

use crate::error::InvalidInput;
use crate::id::{TeamId, UserId, WorkspaceId};
use crate::time::Timestamp;
use crate::validate;

/// The tenant boundary: members, teams, projects and config all belong to one workspace.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Workspace {
    pub id: WorkspaceId,
    pub slug: String,
    pub name: String,
    pub created_at: Timestamp,
}

impl Workspace {
    pub fn new(name: &str, slug: Option<&str>, now: Timestamp) -> Result<Self, InvalidInput> {
        let name = validate::validate_display_name("name", name)?.to_owned();
        let slug = match slug {
            Some(s) => validate::validate_workspace_slug("slug", s).map(|()| s.to_owned())?,
            None => validate::slugify("name", &name)?,
        };
        Ok(Workspace {
            id: WorkspaceId::new(),
            slug,
            name,
            created_at: now,
        })
    }
}

/// A person who can sign in. Authentication (tokens) is in [`super::ApiToken`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub created_at: Timestamp,
}

/// A member's role in a workspace, from the product's role table.
///
/// | role      | can                                                                 |
/// |-----------|---------------------------------------------------------------------|
/// | Owner     | everything, including deleting the workspace and transferring it    |
/// | Admin     | servers, projects, services, members; not delete/transfer           |
/// | Developer | create, configure and deploy services; no servers, members, teams   |
/// | Viewer    | read-only: projects, services, deployments and their logs           |
///
/// The audit log is Admin and Owner only.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
    Owner,
}

/// What an action needs. Every API endpoint names exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// See projects, environments, services, deployments, builds, logs, masked config.
    Read,
    /// Create/update/delete services and their config, volumes and endpoints.
    ManageServices,
    /// Deploy, roll back, cancel, restart, exec.
    Deploy,
    /// Create/update/delete projects and environments.
    ManageProjects,
    /// Register, update and revoke servers.
    ManageServers,
    /// Invite and remove members, change roles (never to or from Owner).
    ManageMembers,
    /// Teams, workspace-scope config, workspace settings.
    ManageTeamSettings,
    /// Delete the workspace, transfer ownership, billing.
    OwnWorkspace,
    /// Read the workspace's audit log (who changed what).
    ReadAudit,
}

impl Permission {
    pub const ALL: [Permission; 9] = [
        Permission::Read,
        Permission::ManageServices,
        Permission::Deploy,
        Permission::ManageProjects,
        Permission::ManageServers,
        Permission::ManageMembers,
        Permission::ManageTeamSettings,
        Permission::OwnWorkspace,
        Permission::ReadAudit,
    ];
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    /// The role table, as one `match`: the only place permissions are decided.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner => true,
            Role::Admin => !matches!(p, OwnWorkspace),
            Role::Developer => matches!(p, Read | ManageServices | Deploy),
            Role::Viewer => matches!(p, Read),
        }
    }
}

/// A user's membership in a workspace.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub role: Role,
    pub teams: BTreeSet<TeamId>,
    pub joined_at: Timestamp,
}

/// A group of members. Teams own projects and carry a config scope; access stays role-based.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Team {
    pub id: TeamId,
    pub workspace_id: WorkspaceId,
    pub slug: String,
    pub name: String,
    pub created_at: Timestamp,
}

impl Team {
    /// A team of `workspace_id`; its slug (given, or made from the name) follows the project
    /// slug rules, so it is safe in addresses and URLs.
    pub fn new(
        workspace_id: WorkspaceId,
        name: &str,
        slug: Option<&str>,
        now: Timestamp,
    ) -> Result<Self, InvalidInput> {
        let name = validate::validate_display_name("name", name)?.to_owned();
        let slug = match slug {
            Some(s) => validate::validate_slug("slug", s).map(|()| s.to_owned())?,
            None => validate::slugify("name", &name)?,
        };
        Ok(Team {
            id: TeamId::new(),
            workspace_id,
            slug,
            name,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's role table, row by row.
    #[test]
    fn role_table_matches_the_product_documents() {
        use Permission::*;
        let expect = |r: Role, allowed: &[Permission]| {
            for p in Permission::ALL {
                assert_eq!(r.allows(p), allowed.contains(&p), "{r:?} {p:?}");
            }
        };
        expect(Role::Owner, &Permission::ALL);
        expect(
            Role::Admin,
            &[
                Read,
                ManageServices,
                Deploy,
                ManageProjects,
                ManageServers,
                ManageMembers,
                ManageTeamSettings,
                ReadAudit,
            ],
        );
        expect(Role::Developer, &[Read, ManageServices, Deploy]);
        expect(Role::Viewer, &[Read]);
    }

    #[test]
    fn a_team_slug_is_made_from_the_name_or_checked_naming_the_field() {
        let ws = WorkspaceId::new();
        let t = Team::new(ws, "Platform Crew", None, Timestamp(0)).unwrap();
        assert_eq!((t.slug.as_str(), t.workspace_id), ("platform-crew", ws));
        for bad in ["../etc", "Ops", "a--b", "-x", ""] {
            let e = Team::new(ws, "Ops", Some(bad), Timestamp(0)).unwrap_err();
            assert_eq!(e.field, "slug", "{bad:?}");
        }
        let e = Team::new(ws, "  ", None, Timestamp(0)).unwrap_err();
        assert_eq!(e.field, "name");
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(
            Role::Owner > Role::Admin
                && Role::Admin > Role::Developer
                && Role::Developer > Role::Viewer
        );
        // A higher role never loses a permission a lower one has.
        for p in Permission::ALL {
            for pair in Role::ALL.windows(2) {
                assert!(
                    !pair[1].allows(p) || pair[0].allows(p),
                    "{:?} vs {:?} on {p:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

/// The one record saying this control plane was initialised, and by whom: the instance
/// operator, the one user above workspaces (agent releases). Created in the same conditional
/// write as the first workspace, so `init` succeeds exactly once, however many race.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    pub operator: UserId,
    pub initialised_at: Timestamp,
}

impl Instance {
    /// Its record id: there is only one.
    pub const ID: &'static str = "instance";
}
