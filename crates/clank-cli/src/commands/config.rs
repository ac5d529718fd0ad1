//! A service's config variables and secrets, or a team's (`--team`).

use clank_api::{ConfigEdit, ConfigRequest};
use clank_core::config::{ConfigVarView, ResolvedVarView};
use clap::Subcommand;

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Variables set on the service (or on a team with `--team`), or the resolved cascade
    /// with `--resolved`.
    List {
        #[arg(required_unless_present = "team")]
        address: Option<String>,
        #[arg(long)]
        resolved: bool,
        /// A team of the workspace instead of a service.
        #[arg(long, conflicts_with_all = ["address", "resolved"])]
        team: Option<String>,
    },
    /// Set `KEY=VALUE` pairs on the service, or on a team: `clank config set --team ops K=V`.
    Set {
        /// The service (absent with `--team`).
        address: Option<String>,
        pairs: Vec<String>,
        /// Store the values as encrypted secrets (never shown again).
        #[arg(long)]
        secret: bool,
        /// A team of the workspace instead of a service.
        #[arg(long)]
        team: Option<String>,
    },
    /// Unset keys on the service, or on a team with `--team`.
    Unset {
        /// The service (absent with `--team`).
        address: Option<String>,
        keys: Vec<String>,
        /// A team of the workspace instead of a service.
        #[arg(long)]
        team: Option<String>,
    },
}

/// The config path of `--team` or of the service `first` names, and the remaining arguments
/// (with `--team`, `first` is one of them); at least one is required.
fn target(
    app: &App,
    team: Option<String>,
    first: Option<String>,
    mut rest: Vec<String>,
    what: &str,
) -> Result<(String, Vec<String>), CliError> {
    let path = match team {
        Some(team) => {
            rest.splice(0..0, first);
            format!("{}/teams/{}/config", app.ws_path(), url_escape(&team))
        }
        None => {
            let address = first.ok_or_else(|| {
                CliError::new("name a service, or a team with `--team <team>`", 2)
            })?;
            format!("{}/config", app.service_path(&address)?)
        }
    };
    if rest.is_empty() {
        return Err(CliError::new(format!("give at least one {what}"), 2));
    }
    Ok((path, rest))
}

pub(crate) async fn config(app: &App, cmd: ConfigCmd) -> Result<(), CliError> {
    match cmd {
        ConfigCmd::List {
            address,
            resolved,
            team,
        } => {
            let path = match (team, address) {
                (Some(team), _) => format!("{}/teams/{}/config", app.ws_path(), url_escape(&team)),
                (None, Some(address)) => format!("{}/config", app.service_path(&address)?),
                (None, None) => return Err(CliError::new("name a service or a team", 2)),
            };
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
            team,
        } => {
            let (path, pairs) = target(app, team, address, pairs, "KEY=VALUE")?;
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
            let vars: Vec<ConfigVarView> =
                app.client.patch(&path, &ConfigRequest { changes }).await?;
            app.show(&vars, |_| {
                format!(
                    "{} variable(s) set; they apply from the next deploy",
                    pairs.len()
                )
            });
        }
        ConfigCmd::Unset {
            address,
            keys,
            team,
        } => {
            let (path, keys) = target(app, team, address, keys, "key")?;
            let changes = keys.iter().map(ConfigEdit::unset).collect();
            let vars: Vec<ConfigVarView> =
                app.client.patch(&path, &ConfigRequest { changes }).await?;
            app.show(&vars, |_| format!("{} variable(s) unset", keys.len()));
        }
    }
    Ok(())
}
