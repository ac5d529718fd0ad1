//! Teams: groups of a workspace's members that own projects and carry a config scope (between
//! the workspace's and each project's). A team grants nothing: access stays the member's role
//! in the workspace.

use clank_core::model::Team;

/// A team to create; the slug is made from the name when absent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub slug: Option<String>,
}

/// A team with how many members it has and the slugs of the projects assigned to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TeamView {
    #[serde(flatten)]
    pub team: Team,
    pub members: usize,
    /// Slugs of the projects assigned to the team, soft-deleted ones included.
    pub projects: Vec<String>,
}

/// A workspace member to add to a team: their user id or their email.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TeamMemberRef {
    pub member: String,
}

/// A project of the workspace to assign to a team, by slug.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TeamProjectRef {
    pub project: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_view_is_the_team_flattened_with_its_counts() {
        let team = Team::new(
            clank_core::id::WorkspaceId::new(),
            "Ops",
            None,
            clank_core::Timestamp(0),
        )
        .unwrap();
        let view = TeamView {
            team,
            members: 2,
            projects: vec!["shop".into()],
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["slug"], "ops");
        assert_eq!(json["members"], 2);
        let back: TeamView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn a_new_team_refuses_unknown_fields() {
        let err = serde_json::from_str::<NewTeam>(r#"{"name":"Ops","owner":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("owner"), "{err}");
    }
}
