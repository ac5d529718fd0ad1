//! Deployment statuses and the table of legal transitions between them.

use std::fmt;

/// Where a deployment is in its life (DESIGN.md §3).
///
/// ```text
/// PENDING → BUILDING (git only) → DEPLOYING → HEALTH_CHECKING → ACTIVE → SUPERSEDED
///     any non-terminal phase ──────────────→ FAILED (reason) | CANCELLED
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentStatus {
    Pending,
    Building,
    Deploying,
    HealthChecking,
    Active,
    Superseded,
    Failed,
    Cancelled,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 8] = [
        DeploymentStatus::Pending,
        DeploymentStatus::Building,
        DeploymentStatus::Deploying,
        DeploymentStatus::HealthChecking,
        DeploymentStatus::Active,
        DeploymentStatus::Superseded,
        DeploymentStatus::Failed,
        DeploymentStatus::Cancelled,
    ];

    /// Statuses nothing moves out of.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Superseded | DeploymentStatus::Failed | DeploymentStatus::Cancelled
        )
    }

    /// Phases the reconciler is still driving (each has a deadline).
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Pending
                | DeploymentStatus::Building
                | DeploymentStatus::Deploying
                | DeploymentStatus::HealthChecking
        )
    }

    /// The single source of truth for which status changes are legal.
    // One arm per row of the lifecycle diagram reads better than a single `matches!`.
    #[allow(clippy::match_like_matches_macro)]
    pub fn can_transition_to(self, to: DeploymentStatus) -> bool {
        use DeploymentStatus::*;
        match (self, to) {
            (Pending, Building | Deploying) => true,
            (Building, Deploying) => true,
            (Deploying, HealthChecking) => true,
            (HealthChecking, Active) => true,
            (Active, Superseded) => true,
            (Pending | Building | Deploying | HealthChecking, Failed | Cancelled) => true,
            _ => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Pending => "PENDING",
            DeploymentStatus::Building => "BUILDING",
            DeploymentStatus::Deploying => "DEPLOYING",
            DeploymentStatus::HealthChecking => "HEALTH_CHECKING",
            DeploymentStatus::Active => "ACTIVE",
            DeploymentStatus::Superseded => "SUPERSEDED",
            DeploymentStatus::Failed => "FAILED",
            DeploymentStatus::Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DeploymentStatus {
    type Err = crate::error::InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeploymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                crate::error::InvalidInput::new(
                    "status",
                    "enum",
                    format!("`{}` is not a deployment status (one of PENDING, BUILDING, DEPLOYING, HEALTH_CHECKING, ACTIVE, SUPERSEDED, FAILED, CANCELLED)", s.escape_debug()),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentStatus::{self, *};

    /// Every one of the 64 ordered pairs, with the expected verdict spelled out.
    #[test]
    fn transition_table_covers_every_status_pair() {
        let allowed: &[(DeploymentStatus, DeploymentStatus)] = &[
            (Pending, Building),
            (Pending, Deploying),
            (Pending, Failed),
            (Pending, Cancelled),
            (Building, Deploying),
            (Building, Failed),
            (Building, Cancelled),
            (Deploying, HealthChecking),
            (Deploying, Failed),
            (Deploying, Cancelled),
            (HealthChecking, Active),
            (HealthChecking, Failed),
            (HealthChecking, Cancelled),
            (Active, Superseded),
        ];
        let mut checked = 0;
        for from in DeploymentStatus::ALL {
            for to in DeploymentStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
                checked += 1;
            }
        }
        assert_eq!(checked, 64);
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for from in DeploymentStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
        {
            assert!(
                DeploymentStatus::ALL
                    .iter()
                    .all(|to| !from.can_transition_to(*to)),
                "{from}"
            );
        }
    }

    #[test]
    fn active_can_only_be_superseded_never_failed_or_cancelled() {
        assert!(!Active.can_transition_to(Failed));
        assert!(!Active.can_transition_to(Cancelled));
        assert!(!Active.can_transition_to(Pending));
    }

    #[test]
    fn status_parses_case_insensitively_and_rejects_unknown() {
        assert_eq!(
            "health_checking".parse::<DeploymentStatus>().unwrap(),
            HealthChecking
        );
        assert_eq!(
            "bogus".parse::<DeploymentStatus>().unwrap_err().field,
            "status"
        );
    }
}
