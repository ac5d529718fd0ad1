//! A service's config variables and secrets.

use clap::Subcommand;
use serde_json::{Value, json};

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
            let path = app.service_path(&address)?;
            let v: Value = app
                .client
                .get(&format!(
                    "{path}/config{}",
                    if resolved { "/resolved" } else { "" }
                ))
                .await?;
            app.show(&v, |v| {
                lines(v, |c| {
                    let source = c["source"]
                        .as_str()
                        .map(|s| format!("  (from {})", s.split(':').next().unwrap_or(s)))
                        .unwrap_or_default();
                    format!(
                        "{}={}{source}",
                        c["key"].as_str().unwrap_or(""),
                        c["value"].as_str().unwrap_or("")
                    )
                })
            });
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
                changes.push(json!({ "key": k, "value": v, "secret": secret }));
            }
            let v: Value = app
                .client
                .patch(
                    &format!("{}/config", app.service_path(&address)?),
                    &json!({ "changes": changes }),
                )
                .await?;
            app.show(&v, |_| {
                format!(
                    "{} variable(s) set; they apply from the next deploy",
                    pairs.len()
                )
            });
        }
        ConfigCmd::Unset { address, keys } => {
            let changes: Vec<_> = keys
                .iter()
                .map(|k| json!({ "key": k, "unset": true }))
                .collect();
            let v: Value = app
                .client
                .patch(
                    &format!("{}/config", app.service_path(&address)?),
                    &json!({ "changes": changes }),
                )
                .await?;
            app.show(&v, |_| format!("{} variable(s) unset", keys.len()));
        }
    }
    Ok(())
}
