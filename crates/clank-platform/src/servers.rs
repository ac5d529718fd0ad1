//! Remote servers by workspace slug and server name: register (join token shown once),
//! list with live state, re-issue a join token, revoke, and offer agent updates.

use clank_core::id::{ServerId, WorkspaceId};
use clank_core::model::Server;
use clank_core::{Error, Result};
use clank_fleet::{Fleet, ServerView};

use crate::Platform;

pub use clank_api::servers::NewServer;

impl Platform {
    fn fleet_or_err(&self) -> Result<&Fleet> {
        self.fleet().ok_or_else(|| {
            Error::runtime(
                clank_core::RuntimeFailure::Unsupported,
                "this platform runs no remote servers (no agent endpoint is configured)",
            )
        })
    }

    /// `server` must be a server of `workspace` that can run workloads (a 404 otherwise,
    /// so ids from another workspace reveal nothing).
    pub(crate) async fn check_server(
        &self,
        workspace: WorkspaceId,
        server: ServerId,
    ) -> Result<()> {
        let found = self.catalog.get::<Server>(&server.to_string()).await?;
        match found {
            Some(s) if s.workspace_id == workspace => {
                if s.status == clank_core::model::ServerStatus::Revoked {
                    return Err(clank_core::InvalidInput::new(
                        "server_id",
                        "revoked",
                        "the server is revoked; nothing can be placed on it",
                    )
                    .into());
                }
                Ok(())
            }
            _ => Err(Error::not_found("server", server)),
        }
    }

    async fn server_by_name(&self, workspace: &str, name: &str) -> Result<Server> {
        let ws = self.workspace(workspace).await?;
        self.catalog
            .lookup::<Server>("name", &format!("{}:{name}", ws.id))
            .await?
            .map(|s| s.value)
            .ok_or_else(|| Error::not_found("server", name))
    }

    /// Register a remote server; returns it with its one-time join token.
    pub async fn create_server(&self, workspace: &str, name: &str) -> Result<NewServer> {
        let fleet = self.fleet_or_err()?;
        let ws = self.workspace(workspace).await?;
        let (server, join_token) = fleet.create_server(ws.id, name).await?;
        Ok(NewServer {
            server: fleet.server(server.id).await?,
            join_token,
            control_plane_fingerprint: fleet.config().endpoint_fingerprint.clone(),
        })
    }

    pub async fn servers(&self, workspace: &str) -> Result<Vec<ServerView>> {
        let fleet = self.fleet_or_err()?;
        let ws = self.workspace(workspace).await?;
        fleet.servers(ws.id).await
    }

    pub async fn server_view(&self, workspace: &str, name: &str) -> Result<ServerView> {
        let fleet = self.fleet_or_err()?;
        let s = self.server_by_name(workspace, name).await?;
        fleet.server(s.id).await
    }

    /// A fresh join token for a server (re-enrollment).
    pub async fn server_join_token(&self, workspace: &str, name: &str) -> Result<NewServer> {
        let fleet = self.fleet_or_err()?;
        let s = self.server_by_name(workspace, name).await?;
        let join_token = fleet.new_join_token(s.id).await?;
        Ok(NewServer {
            server: fleet.server(s.id).await?,
            join_token,
            control_plane_fingerprint: fleet.config().endpoint_fingerprint.clone(),
        })
    }

    /// Revoke a server: its agent is cut off and refused from now on.
    pub async fn revoke_server(&self, workspace: &str, name: &str) -> Result<ServerView> {
        let fleet = self.fleet_or_err()?;
        let s = self.server_by_name(workspace, name).await?;
        fleet.revoke(s.id).await?;
        fleet.server(s.id).await
    }

    /// Offer an agent binary to every agent; returns its SHA-256.
    pub async fn offer_agent_update(&self, version: &str, binary: Vec<u8>) -> Result<String> {
        self.fleet_or_err()?.offer_update(version, binary).await
    }
}
