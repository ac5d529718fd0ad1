//! Servers: the platform host, and remote machines whose agent dials out to the control plane.

use crate::id::{ServerId, WorkspaceId};
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerKind {
    /// The machine running the control plane; services with no `server_id` run here.
    Local,
    /// A remote machine running `clank-agent`.
    Agent {
        /// Fingerprint of the agent's client certificate, set at enrollment.
        identity: Option<String>,
        agent_version: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// Created; waiting for an agent to enroll with the join token.
    AwaitingEnrollment,
    Connected,
    Disconnected,
    /// Credential revoked: the agent is refused from now on.
    Revoked,
}

/// Resource usage reported by heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerUsage {
    pub cpu_percent: f64,
    pub memory_used_bytes: u64,
    pub memory_total_bytes: u64,
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Server {
    pub id: ServerId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub kind: ServerKind,
    pub status: ServerStatus,
    pub last_heartbeat: Option<Timestamp>,
    pub usage: Option<ServerUsage>,
    pub created_at: Timestamp,
}
