//! Deployment events: what the engine publishes as it works and what a follower of a
//! deployment (`GET …/deployments/{n}/events`, `clank deploy --follow`) receives, one per
//! server-sent event whose name is the kind (`created`, `transition`, `log`, `restarted`).

use clank_core::Timestamp;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};

/// Something that happened to a deployment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub at: Timestamp,
    pub service: ServiceId,
    pub deployment: DeploymentId,
    /// The deployment's number in its service.
    pub number: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Transition {
        from: DeploymentStatus,
        to: DeploymentStatus,
        reason: Option<String>,
    },
    /// A line of the deploy log: what the platform did, each probe result.
    Log {
        message: String,
    },
    /// An ACTIVE deployment's workload was replaced (crash, failing health checks).
    Restarted {
        reason: String,
    },
}

impl EventKind {
    /// The server-sent event's name for this kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Transition { .. } => "transition",
            EventKind::Log { .. } => "log",
            EventKind::Restarted { .. } => "restarted",
        }
    }
}

/// `GET /v1/workspaces/{ws}/events`: which services' events to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only this service of the workspace: `project/environment/service`, or
    /// `project/service` for environment `production`. Every service's when absent.
    #[serde(default)]
    pub service: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_reads_back_as_written_with_its_kind_flattened() {
        let e = Event {
            at: Timestamp::from_millis(1_700_000_000_000),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            number: 3,
            kind: EventKind::Transition {
                from: DeploymentStatus::Pending,
                to: DeploymentStatus::Deploying,
                reason: None,
            },
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "transition");
        assert_eq!(json["to"], "DEPLOYING");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }
}
