//! Config variables and secrets at any scope of the cascade: a service (the default), or
//! with `--env`, `--project`, `--workspace` or `--team` the environment, project, workspace
//! or team.

use clank_api::{ConfigEdit, ConfigRequest};
use clank_core::config::{ConfigVarView, ResolvedVarView};
use clap::Subcommand;

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

/// A scope other than a service's: at most one of them.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(multiple = false)]
pub(crate) struct Scope {
    /// A team of the workspace instead of a service.
    #[arg(long)]
    team: Option<String>,
    /// An environment (`shop/staging`) instead of a service.
    #[arg(long = "env", value_name = "PROJECT/ENV")]
    env: Option<String>,
    /// A project (`shop`) instead of a service.
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// The workspace (the context's) instead of a service.
    #[arg(long)]
    workspace: bool,
}

impl Scope {
    /// The config path of the scope named by a flag; None when none is (a service then).
    fn path(&self, app: &App) -> Result<Option<String>, CliError> {
        Ok(Some(match self {
            Scope {
                team: Some(team), ..
            } => format!("{}/teams/{}/config", app.ws_path(), url_escape(team)),
            Scope { env: Some(env), .. } => format!("{}/config", app.env_path(env)?),
            Scope {
                project: Some(project),
                ..
            } => format!("{}/config", app.project_path(project)?),
            Scope {
                workspace: true, ..
            } => format!("{}/config", app.ws_path()),
            _ => return Ok(None),
        }))
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCmd {
    /// Variables set on the service (or at another scope: `--env shop/staging`, `--project
    /// shop`, `--workspace`, `--team ops`), or the service's resolved cascade with
    /// `--resolved`.
    List {
        #[arg(
            required_unless_present_any = ["team", "env", "project", "workspace"],
            conflicts_with_all = ["team", "env", "project", "workspace"]
        )]
        address: Option<String>,
        /// The values the service's next deploy gets, and the scope each comes from.
        #[arg(long, conflicts_with_all = ["team", "env", "project", "workspace"])]
        resolved: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Set `KEY=VALUE` pairs on the service, or at another scope: `clank config set --env
    /// shop/staging K=V` (also `--project`, `--workspace`, `--team`).
    Set {
        /// The service (absent with a scope flag).
        address: Option<String>,
        pairs: Vec<String>,
        /// Store the values as encrypted secrets (never shown again).
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Unset keys on the service, or at another scope (`--env`, `--project`, `--workspace`,
    /// `--team`).
    Unset {
        /// The service (absent with a scope flag).
        address: Option<String>,
        keys: Vec<String>,
        #[command(flatten)]
        scope: Scope,
    },
}

/// The config path of the scope flag or of the service `first` names, and the remaining
/// arguments (with a scope flag, `first` is one of them); at least one is required.
fn target(
    app: &App,
    scope: &Scope,
    first: Option<String>,
    mut rest: Vec<String>,
    what: &str,
) -> Result<(String, Vec<String>), CliError> {
    let path = match scope.path(app)? {
        Some(path) => {
            rest.splice(0..0, first);
            path
        }
        None => {
            let address = first.ok_or_else(|| {
                CliError::new(
                    "name a service, or a scope: `--env`, `--project`, `--workspace` or `--team`",
                    2,
                )
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
            scope,
        } => {
            let path = match (scope.path(app)?, address) {
                (Some(path), _) => path,
                (None, Some(address)) => format!("{}/config", app.service_path(&address)?),
                (None, None) => return Err(CliError::new("name a service or a scope", 2)),
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
            scope,
        } => {
            let (path, pairs) = target(app, &scope, address, pairs, "KEY=VALUE")?;
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
            scope,
        } => {
            let (path, keys) = target(app, &scope, address, keys, "key")?;
            let changes = keys.iter().map(ConfigEdit::unset).collect();
            let vars: Vec<ConfigVarView> =
                app.client.patch(&path, &ConfigRequest { changes }).await?;
            app.show(&vars, |_| format!("{} variable(s) unset", keys.len()));
        }
    }
    Ok(())
}
