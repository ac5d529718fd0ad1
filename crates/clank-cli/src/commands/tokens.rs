//! API tokens: create, list, revoke.

use clank_api::members::{NewToken, TokenCreated, TokenInfo};
use clank_core::model::Role;
use clap::Subcommand;

use crate::app::{App, lines, parse_role, url_escape, wire_name};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// A token for yourself (shown once), with at most your own role.
    Create {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
    },
    /// Your tokens; `--all`: every member's (Owner; Admin: everyone's but Owners').
    List {
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id (see `token list`): yours, or as Owner/Admin a member's.
    Revoke { id: String },
}

fn token_line(t: &TokenInfo) -> String {
    format!(
        "{:<36}  {:<14} {:<20} {:<10} {}{}",
        t.id,
        t.prefix,
        t.name,
        wire_name(&t.role),
        t.user,
        if t.revoked { " (revoked)" } else { "" }
    )
}

pub(crate) async fn tokens(app: &App, cmd: TokenCmd) -> Result<(), CliError> {
    let base = format!("{}/tokens", app.ws_path());
    match cmd {
        TokenCmd::Create { name, role } => {
            let created: TokenCreated = app.client.post(&base, &NewToken { name, role }).await?;
            app.show(&created, |t| {
                format!("{}\n(shown once; store it now)", t.token)
            });
        }
        TokenCmd::List { all } => {
            let path = if all {
                format!("{base}?all=true")
            } else {
                base
            };
            let tokens: Vec<TokenInfo> = app.client.get(&path).await?;
            app.show(&tokens, |tokens| lines(tokens, token_line));
        }
        TokenCmd::Revoke { id } => {
            let () = app
                .client
                .delete(&format!("{base}/{}", url_escape(&id)))
                .await?;
            app.show(&(), |()| format!("token {id} revoked"));
        }
    }
    Ok(())
}
