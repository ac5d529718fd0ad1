//! API tokens: create, list, revoke.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// A token for yourself (shown once), with at most your own role.
    Create {
        name: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Your tokens; `--all`: every member's (Owner; Admin: everyone's but Owners').
    List {
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id (see `token list`): yours, or as Owner/Admin a member's.
    Revoke { id: String },
}

fn token_line(t: &Value) -> String {
    format!(
        "{:<36}  {:<14} {:<20} {:<10} {}{}",
        t["id"].as_str().unwrap_or(""),
        t["prefix"].as_str().unwrap_or(""),
        t["name"].as_str().unwrap_or(""),
        t["role"].as_str().unwrap_or(""),
        t["user"].as_str().unwrap_or(""),
        if t["revoked"].as_bool() == Some(true) {
            " (revoked)"
        } else {
            ""
        }
    )
}

pub(crate) async fn tokens(app: &App, cmd: TokenCmd) -> Result<(), CliError> {
    let base = format!("{}/tokens", app.ws_path());
    match cmd {
        TokenCmd::Create { name, role } => {
            let v: Value = app
                .client
                .post(&base, &json!({ "name": name, "role": role }))
                .await?;
            app.show(&v, |t| {
                format!(
                    "{}\n(shown once; store it now)",
                    t["token"].as_str().unwrap_or("")
                )
            });
        }
        TokenCmd::List { all } => {
            let path = if all {
                format!("{base}?all=true")
            } else {
                base
            };
            let v: Value = app.client.get(&path).await?;
            app.show(&v, |v| lines(v, token_line));
        }
        TokenCmd::Revoke { id } => {
            let v: Value = app
                .client
                .delete(&format!("{base}/{}", url_escape(&id)))
                .await?;
            app.show(&v, |_| format!("token {id} revoked"));
        }
    }
    Ok(())
}
