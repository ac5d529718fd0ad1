//! Projects and their environments.

use clank_api::projects::{NewEnvironment, NewProject};
use clank_core::model::{Environment, Project};
use clap::Subcommand;

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
            let projects: Vec<Project> = app
                .client
                .get(&format!("{}/projects", app.ws_path()))
                .await?;
            app.show(&projects, |projects| {
                lines(projects, |p| format!("{:<24} {}", p.slug, p.name))
            });
        }
        ProjectCmd::Create { name, slug } => {
            let project: Project = app
                .client
                .post(
                    &format!("{}/projects", app.ws_path()),
                    &NewProject { name, slug },
                )
                .await?;
            app.show(&project, |p| {
                format!(
                    "project `{}` created (network {})",
                    p.slug,
                    p.network_name()
                )
            });
        }
        ProjectCmd::Delete { project } => {
            let project: Project = app.client.delete(&app.project_path(&project)?).await?;
            app.show(&project, |p| {
                format!(
                    "project `{}` deleted (soft: containers and volumes untouched)",
                    p.slug
                )
            });
        }
    }
    Ok(())
}

pub(crate) async fn env(app: &App, cmd: EnvCmd) -> Result<(), CliError> {
    match cmd {
        EnvCmd::List { project } => {
            let envs: Vec<Environment> = app
                .client
                .get(&format!("{}/environments", app.project_path(&project)?))
                .await?;
            app.show(&envs, |envs| lines(envs, |e| e.name.clone()));
        }
        EnvCmd::Create { project, name } => {
            let env: Environment = app
                .client
                .post(
                    &format!("{}/environments", app.project_path(&project)?),
                    &NewEnvironment { name },
                )
                .await?;
            app.show(&env, |e| format!("environment `{}` created", e.name));
        }
    }
    Ok(())
}
