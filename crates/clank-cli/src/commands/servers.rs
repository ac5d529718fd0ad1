//! Remote servers: register, list, join tokens, revoke, agent releases.

use clank_api::servers::{NewServer, NewServerBody, ReleasePublished, ServerView};
use clank_core::model::ServerKind;
use clap::Subcommand;

use crate::app::{App, lines, url_escape, wire_name};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ServerCmd {
    /// Register a server; prints its one-time join token and the agent command to run.
    Add { name: String },
    /// Servers with their connection, heartbeat usage and agent version.
    List,
    /// One server in detail.
    Show { name: String },
    /// A fresh join token (re-enrollment of a reinstalled machine).
    JoinToken { name: String },
    /// Cut a server off: its agent is refused from now on.
    Revoke { name: String },
    /// Offer a new agent binary to every agent (Owner only); agents verify, swap, restart.
    Release {
        /// The version the agents will report.
        #[arg(long)]
        version: String,
        /// Path of the agent binary.
        binary: std::path::PathBuf,
    },
}

fn server_line(s: &ServerView) -> String {
    let usage = match &s.server.usage {
        Some(u) => {
            let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
            format!(
                "cpu {:>5.1}%  mem {:.1}/{:.1} GiB  disk {:.0}/{:.0} GiB",
                u.cpu_percent,
                gib(u.memory_used_bytes),
                gib(u.memory_total_bytes),
                gib(u.disk_used_bytes),
                gib(u.disk_total_bytes),
            )
        }
        None => "no usage reported yet".to_owned(),
    };
    let agent = match &s.server.kind {
        ServerKind::Agent {
            agent_version: Some(v),
            ..
        } => v.as_str(),
        _ => "-",
    };
    format!(
        "{:<16} {:<20} {usage}  agent {agent}",
        s.server.name,
        wire_name(&s.server.status),
    )
}

/// A registered server's join token and the agent command to run with it.
fn joined(n: &NewServer) -> String {
    let token = &n.join_token;
    // TLS endpoints come with the certificate fingerprint the agent pins.
    let (scheme, pin) = match &n.control_plane_fingerprint {
        Some(f) => ("https", format!(" --fingerprint {f}")),
        None => ("http", String::new()),
    };
    format!(
        "server {} registered.\njoin token (shown once): {token}\non the server run:\n  \
         clank-agent --control-plane {scheme}://<this-host>:<agent port>{pin} --join-token {token}\n\
         or, as a service: sudo sh install-agent.sh --deb clank-agent_<version>.deb \
         <the same arguments>",
        n.server.server.name,
    )
}

pub(crate) async fn server(app: &App, cmd: ServerCmd) -> Result<(), CliError> {
    let base = format!("{}/servers", app.ws_path());
    match cmd {
        ServerCmd::Add { name } => {
            let n: NewServer = app.client.post(&base, &NewServerBody { name }).await?;
            app.show(&n, joined);
        }
        ServerCmd::List => {
            let servers: Vec<ServerView> = app.client.get(&base).await?;
            app.show(&servers, |servers| {
                if servers.is_empty() {
                    "no servers".to_owned()
                } else {
                    lines(servers, server_line)
                }
            });
        }
        ServerCmd::Show { name } => {
            let s: ServerView = app
                .client
                .get(&format!("{base}/{}", url_escape(&name)))
                .await?;
            app.show(&s, server_line);
        }
        ServerCmd::JoinToken { name } => {
            let n: NewServer = app
                .client
                .post_empty(&format!("{base}/{}/join-token", url_escape(&name)))
                .await?;
            app.show(&n, joined);
        }
        ServerCmd::Revoke { name } => {
            let s: ServerView = app
                .client
                .post_empty(&format!("{base}/{}/revoke", url_escape(&name)))
                .await?;
            app.show(&s, |s| format!("revoked {}", s.server.name));
        }
        ServerCmd::Release { version, binary } => {
            let bytes = std::fs::read(&binary)
                .map_err(|e| CliError::new(format!("read `{}`: {e}", binary.display()), 2))?;
            let path = format!(
                "{}/agent-release?version={}",
                app.ws_path(),
                url_escape(&version)
            );
            let r: ReleasePublished = app.client.put_bytes(&path, bytes).await?;
            app.show(&r, |r| {
                format!("offered agent {} (sha256 {})", r.version, r.sha256)
            });
        }
    }
    Ok(())
}
