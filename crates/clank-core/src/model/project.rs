//! Projects (a group of services sharing a private network) and their environments.

use crate::error::InvalidInput;
use crate::id::{EnvironmentId, ProjectId, TeamId, WorkspaceId};
use crate::time::Timestamp;
use crate::validate;

/// A logical group of services; all its containers share the network `clank-project-{slug}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: ProjectId,
    pub workspace_id: WorkspaceId,
    /// The team the project belongs to (team-scope config applies to its services).
    pub team_id: Option<TeamId>,
    pub name: String,
    /// Used in container, volume and network names; unique in the workspace; never changes.
    pub slug: String,
    pub created_at: Timestamp,
    /// Soft delete: set with every environment and service of the project marked too (their
    /// workloads and routes removed, volumes kept), cleared by restore; purged at
    /// `deleted_at` + the retention.
    pub deleted_at: Option<Timestamp>,
}

impl Project {
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
        Ok(Project {
            id: ProjectId::new(),
            workspace_id,
            team_id: None,
            name,
            slug,
            created_at: now,
            deleted_at: None,
        })
    }

    /// The private Docker network of the project's default environment: services reach each
    /// other by name inside it. Carries the workspace's scope, so another workspace's project
    /// of the same slug has its own.
    pub fn network_name(&self) -> String {
        crate::runtime::project_network_name(self.workspace_id, &self.slug)
    }

    /// The private network of `environment` (one of this project's): every environment has its
    /// own, so staging or a preview never reaches production's services by name.
    pub fn network_of(&self, environment: &Environment) -> String {
        crate::runtime::environment_network_name(self.workspace_id, &self.slug, &environment.name)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// Whether an environment lives until deleted or is a preview torn down with its pull request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvironmentKind {
    Persistent,
    /// Created from a pull/merge request; removed when it closes or at `expires_at`.
    Preview {
        pull_request: u64,
        branch: String,
        expires_at: Option<Timestamp>,
    },
}

/// A deployment target inside a project (production, staging, a preview, ...).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Environment {
    pub id: EnvironmentId,
    pub project_id: ProjectId,
    /// Slug, unique in the project: `production`, `staging`, `pr-42`.
    pub name: String,
    pub kind: EnvironmentKind,
    pub created_at: Timestamp,
    /// Soft delete: set with every service of the environment marked too (their workloads
    /// and routes removed), cleared by restore; purged at `deleted_at` + the retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

impl Environment {
    /// The environment every project gets at creation.
    pub const DEFAULT: &'static str = "production";

    pub fn new(project_id: ProjectId, name: &str, now: Timestamp) -> Result<Self, InvalidInput> {
        Ok(Environment {
            id: EnvironmentId::new(),
            project_id,
            name: validate::validate_slug("name", name).map(|()| name.to_owned())?,
            kind: EnvironmentKind::Persistent,
            created_at: now,
            deleted_at: None,
        })
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_slug_is_derived_from_name_and_names_the_network() {
        let p = Project::new(WorkspaceId::new(), "My Shop", None, Timestamp(0)).unwrap();
        assert_eq!(p.slug, "my-shop");
        assert_eq!(
            p.network_name(),
            format!("clank-{}--my-shop", p.workspace_id.scope())
        );
        let other = Project::new(WorkspaceId::new(), "My Shop", None, Timestamp(0)).unwrap();
        assert_ne!(other.network_name(), p.network_name());
    }

    #[test]
    fn each_environment_has_its_own_network_and_production_keeps_the_projects() {
        let p = Project::new(WorkspaceId::new(), "Shop", None, Timestamp(0)).unwrap();
        let prod = Environment::new(p.id, Environment::DEFAULT, Timestamp(0)).unwrap();
        let staging = Environment::new(p.id, "staging", Timestamp(0)).unwrap();
        assert_eq!(p.network_of(&prod), p.network_name());
        assert_eq!(
            p.network_of(&staging),
            format!("clank-{}--shop--staging", p.workspace_id.scope())
        );
    }

    #[test]
    fn an_environment_stored_before_soft_delete_loads_undeleted() {
        let env = Environment::new(ProjectId::new(), "staging", Timestamp(0)).unwrap();
        let json = serde_json::to_value(&env).unwrap();
        assert!(json.get("deleted_at").is_none(), "{json}");
        let back: Environment = serde_json::from_value(json).unwrap();
        assert!(!back.is_deleted());
    }

    #[test]
    fn project_rejects_traversal_slug_before_anything_is_created() {
        let err = Project::new(WorkspaceId::new(), "x", Some("../etc"), Timestamp(0)).unwrap_err();
        assert_eq!(err.field, "slug");
    }
}
