//! Projects and their environments.

/// A new project in the workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// Display name.
    pub name: String,
    /// URL-safe name, unique in the workspace (default: derived from `name`).
    #[serde(default)]
    pub slug: Option<String>,
}

/// Which projects to list (`GET …/projects`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListProjects {
    /// Include soft-deleted projects.
    #[serde(default)]
    pub include_deleted: bool,
}

/// A new environment of a project.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEnvironment {
    /// A slug, unique in the project (`production`, `staging`).
    pub name: String,
}
