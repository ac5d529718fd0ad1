//! Remote servers: register, list, join tokens, revoke, agent releases.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::app::{App, lines, url_escape};
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

fn server_line(s: &Value) -> String {
    let usage = &s["usage"];
    let gib = |b: &Value| b.as_u64().unwrap_or(0) as f64 / f64::from(1u32 << 30);
    format!(
        "{:<16} {:<20} cpu {:>5.1}%  mem {:.1}/{:.1} GiB  disk {:.0}/{:.0} GiB  agent {}",
        s["name"].as_str().unwrap_or(""),
        s["status"].as_str().unwrap_or(""),
        usage["cpu_percent"].as_f64().unwrap_or(0.0),
        gib(&usage["memory_used_bytes"]),
        gib(&usage["memory_total_bytes"]),
        gib(&usage["disk_used_bytes"]),
        gib(&usage["disk_total_bytes"]),
        s["kind"]["agent_version"].as_str().unwrap_or("-"),
    )
}

pub(crate) async fn server(app: &App, cmd: ServerCmd) -> Result<(), CliError> {
    let base = format!("{}/servers", app.ws_path());
    let joined = |v: &Value| {
        let token = v["join_token"].as_str().unwrap_or("");
        // TLS endpoints come with the certificate fingerprint the agent pins.
        let (scheme, pin) = match v["control_plane_fingerprint"].as_str() {
            Some(f) => ("https", format!(" --fingerprint {f}")),
            None => ("http", String::new()),
        };
        format!(
            "server {} registered.\njoin token (shown once): {token}\non the server run:\n  \
             clank-agent --control-plane {scheme}://<this-host>:<agent port>{pin} --join-token {token}",
            v["server"]["name"].as_str().unwrap_or(""),
        )
    };
    match cmd {
        ServerCmd::Add { name } => {
            let v: Value = app.client.post(&base, &json!({ "name": name })).await?;
            app.show(&v, joined);
        }
        ServerCmd::List => {
            let v: Value = app.client.get(&base).await?;
            app.show(&v, |v| {
                if v.as_array().is_some_and(Vec::is_empty) {
                    "no servers".to_owned()
                } else {
                    lines(v, server_line)
                }
            });
        }
        ServerCmd::Show { name } => {
            let v: Value = app
                .client
                .get(&format!("{base}/{}", url_escape(&name)))
                .await?;
            app.show(&v, server_line);
        }
        ServerCmd::JoinToken { name } => {
            let v: Value = app
                .client
                .post(
                    &format!("{base}/{}/join-token", url_escape(&name)),
                    &json!({}),
                )
                .await?;
            app.show(&v, joined);
        }
        ServerCmd::Revoke { name } => {
            let v: Value = app
                .client
                .post(&format!("{base}/{}/revoke", url_escape(&name)), &json!({}))
                .await?;
            app.show(&v, |s| {
                format!("revoked {}", s["name"].as_str().unwrap_or(""))
            });
        }
        ServerCmd::Release { version, binary } => {
            let bytes = std::fs::read(&binary)
                .map_err(|e| CliError::new(format!("read `{}`: {e}", binary.display()), 2))?;
            let path = format!(
                "{}/agent-release?version={}",
                app.ws_path(),
                url_escape(&version)
            );
            let v: Value = app.client.put_bytes(&path, bytes).await?;
            app.show(&v, |r| {
                format!(
                    "offered agent {} (sha256 {})",
                    r["version"].as_str().unwrap_or(""),
                    r["sha256"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}
