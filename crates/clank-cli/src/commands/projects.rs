//! Projects and their environments.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::app::{App, lines};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCmd {
    List,
    Create {
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
    /// Soft delete: nothing running is stopped, no volume is removed.
    Delete {
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCmd {
    List { project: String },
    Create { project: String, name: String },
}

pub(crate) async fn project(app: &App, cmd: ProjectCmd) -> Result<(), CliError> {
    match cmd {
        ProjectCmd::List => {
            let v: Value = app
                .client
                .get(&format!("{}/projects", app.ws_path()))
                .await?;
            app.show(&v, |v| {
                lines(v, |p| {
                    format!(
                        "{:<24} {}",
                        p["slug"].as_str().unwrap_or(""),
                        p["name"].as_str().unwrap_or("")
                    )
                })
            });
        }
        ProjectCmd::Create { name, slug } => {
            let v: Value = app
                .client
                .post(
                    &format!("{}/projects", app.ws_path()),
                    &json!({ "name": name, "slug": slug }),
                )
                .await?;
            app.show(&v, |p| {
                format!(
                    "project `{}` created (network {})",
                    p["slug"].as_str().unwrap_or(""),
                    format_args!("clank-project-{}", p["slug"].as_str().unwrap_or(""))
                )
            });
        }
        ProjectCmd::Delete { project } => {
            let v: Value = app.client.delete(&app.project_path(&project)?).await?;
            app.show(&v, |p| {
                format!(
                    "project `{}` deleted (soft: containers and volumes untouched)",
                    p["slug"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}

pub(crate) async fn env(app: &App, cmd: EnvCmd) -> Result<(), CliError> {
    match cmd {
        EnvCmd::List { project } => {
            let v: Value = app
                .client
                .get(&format!("{}/environments", app.project_path(&project)?))
                .await?;
            app.show(&v, |v| {
                lines(v, |e| e["name"].as_str().unwrap_or("").to_owned())
            });
        }
        EnvCmd::Create { project, name } => {
            let v: Value = app
                .client
                .post(
                    &format!("{}/environments", app.project_path(&project)?),
                    &json!({ "name": name }),
                )
                .await?;
            app.show(&v, |e| {
                format!("environment `{}` created", e["name"].as_str().unwrap_or(""))
            });
        }
    }
    Ok(())
}
