//! Members of the workspace and their roles.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCmd {
    /// Members with their email and role.
    List,
    /// Add a member; prints their first token (shown once).
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// owner, admin, developer or viewer.
        #[arg(long)]
        role: String,
    },
    /// Change a member's role (by email or user id).
    SetRole { user: String, role: String },
    /// Remove a member (by email or user id); their tokens in the workspace are deleted.
    Remove { user: String },
}

fn member_line(m: &Value) -> String {
    format!(
        "{:<32} {:<20} {:<10} {}",
        m["email"].as_str().unwrap_or("?"),
        m["name"].as_str().unwrap_or(""),
        m["role"].as_str().unwrap_or(""),
        m["user_id"].as_str().unwrap_or(""),
    )
}

pub(crate) async fn members(app: &App, cmd: MemberCmd) -> Result<(), CliError> {
    let base = format!("{}/members", app.ws_path());
    match cmd {
        MemberCmd::List => {
            let v: Value = app.client.get(&base).await?;
            app.show(&v, |v| lines(v, member_line));
        }
        MemberCmd::Add { email, name, role } => {
            let v: Value = app
                .client
                .post(
                    &base,
                    &json!({ "name": name, "email": email, "role": role }),
                )
                .await?;
            app.show(&v, |m| {
                format!(
                    "{email} added as {role}. Their first token (shown once; hand it over now):\n{}",
                    m["token"].as_str().unwrap_or("")
                )
            });
        }
        MemberCmd::SetRole { user, role } => {
            let v: Value = app
                .client
                .patch(
                    &format!("{base}/{}", url_escape(&user)),
                    &json!({ "role": role }),
                )
                .await?;
            app.show(&v, |m| {
                format!(
                    "{} is now {}",
                    m["email"].as_str().unwrap_or(&user),
                    m["role"].as_str().unwrap_or("?")
                )
            });
        }
        MemberCmd::Remove { user } => {
            let v: Value = app
                .client
                .delete(&format!("{base}/{}", url_escape(&user)))
                .await?;
            app.show(&v, |r| {
                format!(
                    "removed {} ({}); {} token(s) deleted",
                    r["email"].as_str().unwrap_or(&user),
                    r["role"].as_str().unwrap_or("?"),
                    r["tokens_deleted"]
                )
            });
        }
    }
    Ok(())
}
