//! Remote servers: registering one, its live state, and agent releases.

use clank_core::model::Server;

/// A server to register.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewServerBody {
    /// A slug, unique in the workspace.
    pub name: String,
}

/// A server as the API shows it: the stored record plus what its live session says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerView {
    #[serde(flatten)]
    pub server: Server,
    /// Its agent has a session now.
    pub connected: bool,
    /// Fingerprint of the running agent binary (changes with a self-update).
    pub agent_binary_sha256: Option<String>,
    /// Generation of the desired state.
    pub desired_generation: u64,
    /// The newest generation the agent reported applied.
    pub applied_generation: u64,
    pub lease_epoch: u64,
    /// How many workloads its desired state holds.
    pub workloads: usize,
    /// What the agent reported about the last offered update.
    pub last_update: Option<UpdateOutcome>,
}

/// What an agent reported about an offered update.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateOutcome {
    pub version: String,
    /// It installed and confirmed the version.
    pub ok: bool,
    /// Why not, or what happened.
    pub message: String,
}

/// A registered server and its one-time join token.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewServer {
    pub server: ServerView,
    /// Shown once; only its hash is kept.
    pub join_token: String,
    /// The agent endpoint's certificate fingerprint for the agent to pin
    /// (`--fingerprint`); `None` when the endpoint is plain HTTP/2.
    pub control_plane_fingerprint: Option<String>,
}

impl std::fmt::Debug for NewServer {
    /// Never prints the join token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewServer")
            .field("server", &self.server)
            .field("control_plane_fingerprint", &self.control_plane_fingerprint)
            .finish_non_exhaustive()
    }
}

/// The version of an agent release to publish (`PUT …/agent-release?version=`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReleaseQuery {
    /// The version the agents will report.
    pub version: String,
}

/// A published agent release.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleasePublished {
    pub version: String,
    /// The binary's SHA-256, hex.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::Timestamp;
    use clank_core::id::{ServerId, WorkspaceId};
    use clank_core::model::{ServerKind, ServerStatus};

    #[test]
    fn new_server_debug_hides_the_join_token() {
        let n = NewServer {
            server: ServerView {
                server: Server {
                    id: ServerId::new(),
                    workspace_id: WorkspaceId::new(),
                    name: "edge".into(),
                    kind: ServerKind::Local,
                    status: ServerStatus::AwaitingEnrollment,
                    last_heartbeat: None,
                    usage: None,
                    created_at: Timestamp(0),
                },
                connected: false,
                agent_binary_sha256: None,
                desired_generation: 0,
                applied_generation: 0,
                lease_epoch: 0,
                workloads: 0,
                last_update: None,
            },
            join_token: "join-visible-nowhere".into(),
            control_plane_fingerprint: None,
        };
        assert!(!format!("{n:?}").contains("join-visible-nowhere"));
    }
}
