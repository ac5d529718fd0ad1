//! A service's config variables and secrets.

use clank_api::{ConfigEdit, ConfigRequest};
use clank_core::config::{ConfigVarView, ResolvedVarView};
use clap::Subcommand;

use crate::app::{App, lines};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Variables set on the service, or the resolved cascade with `--resolved`.
    List {
        address: String,
        #[arg(long)]
        resolved: bool,
    },
    /// Set `KEY=VALUE` pairs on the service.
    Set {
        address: String,
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Store the values as encrypted secrets (never shown again).
        #[arg(long)]
        secret: bool,
    },
    Unset {
        address: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

pub(crate) async fn config(app: &App, cmd: ConfigCmd) -> Result<(), CliError> {
    match cmd {
        ConfigCmd::List { address, resolved } => {
            let path = format!("{}/config", app.service_path(&address)?);
            if resolved {
                let vars: Vec<ResolvedVarView> =
                    app.client.get(&format!("{path}/resolved")).await?;
                app.show(&vars, |vars| {
                    lines(vars, |c| {
                        format!("{}={}  (from {})", c.key, c.value, c.source.level())
                    })
                });
            } else {
                let vars: Vec<ConfigVarView> = app.client.get(&path).await?;
                app.show(&vars, |vars| {
                    lines(vars, |c| format!("{}={}", c.key, c.value))
                });
            }
        }
        ConfigCmd::Set {
            address,
            pairs,
            secret,
        } => {
            let mut changes = Vec::new();
            for pair in &pairs {
                let (k, v) = pair
                    .split_once('=')
                    .ok_or_else(|| CliError::new(format!("`{pair}` is not KEY=VALUE"), 2))?;
                changes.push(if secret {
                    ConfigEdit::set_secret(k, v)
                } else {
                    ConfigEdit::set(k, v)
                });
            }
            let vars: Vec<ConfigVarView> = app
                .client
                .patch(
                    &format!("{}/config", app.service_path(&address)?),
                    &ConfigRequest { changes },
                )
                .await?;
            app.show(&vars, |_| {
                format!(
                    "{} variable(s) set; they apply from the next deploy",
                    pairs.len()
                )
            });
        }
        ConfigCmd::Unset { address, keys } => {
            let changes = keys.iter().map(ConfigEdit::unset).collect();
            let vars: Vec<ConfigVarView> = app
                .client
                .patch(
                    &format!("{}/config", app.service_path(&address)?),
                    &ConfigRequest { changes },
                )
                .await?;
            app.show(&vars, |_| format!("{} variable(s) unset", keys.len()));
        }
    }
    Ok(())
}
