//! Projects and their environments.

use clank_api::environments::CloneEnvironment;
use clank_api::projects::{NewEnvironment, NewProject};
use clank_core::model::{Environment, Project};
use clap::Subcommand;

use super::deletion::{self, Kind};
use crate::app::{App, lines};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCmd {
    /// The workspace's projects; `--deleted` lists soft-deleted (restorable) ones too.
    List {
        /// Also the deleted projects that can still be restored, marked `deleted`.
        #[arg(long)]
        deleted: bool,
    },
    Create {
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
    /// Delete a project with its environments and services: domains stop answering and
    /// workloads are removed; restorable for the retention period (7 days by default).
    /// `--purge` removes it for good now (`--volumes`: its volumes' data too).
    Delete {
        project: String,
        #[command(flatten)]
        how: super::deletion::DeleteFlags,
    },
    /// Restore a deleted project with its environments and services.
    Restore { project: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCmd {
    /// A project's environments; `--deleted` lists soft-deleted (restorable) ones too.
    List {
        project: String,
        /// Also the deleted environments that can still be restored, marked `deleted`.
        #[arg(long)]
        deleted: bool,
    },
    Create {
        project: String,
        name: String,
    },
    /// Clone an environment (`project/environment`) into a new one named NAME: every
    /// service (new volumes, empty unless --copy-volumes; domains only with
    /// --domain-pattern) and the config.
    Clone {
        environment: String,
        name: String,
        /// The copies' domains, `{service}` and `{env}` replaced
        /// (`{service}-{env}.example.com`); without it they have none.
        #[arg(long)]
        domain_pattern: Option<String>,
        /// Deploy every copy.
        #[arg(long)]
        deploy: bool,
        /// Leave the config out.
        #[arg(long)]
        no_config: bool,
        /// Copy each volume's data into the new volumes (as it is at that moment: stop a
        /// database first for a consistent copy).
        #[arg(long)]
        copy_volumes: bool,
    },
    /// Delete an environment (`project/environment`) with its services; restorable for the
    /// retention period. `--purge` removes it for good now with its network (`--volumes`:
    /// its volumes' data too). The default environment goes only with its project.
    Delete {
        environment: String,
        #[command(flatten)]
        how: super::deletion::DeleteFlags,
    },
    /// Restore a deleted environment with its services.
    Restore {
        environment: String,
    },
}

pub(crate) async fn project(app: &App, cmd: ProjectCmd) -> Result<(), CliError> {
    match cmd {
        ProjectCmd::List { deleted } => {
            let projects: Vec<Project> = app
                .client
                .get(&format!(
                    "{}/projects{}",
                    app.ws_path(),
                    deletion::include_deleted(deleted)
                ))
                .await?;
            app.show(&projects, |projects| {
                lines(projects, |p| {
                    format!("{:<24} {}", p.slug, p.name) + &deletion::deleted_mark(p.deleted_at)
                })
            });
        }
        ProjectCmd::Create { name, slug } => {
            let project: Project = app
                .client
                .post(
                    &format!("{}/projects", app.ws_path()),
                    &NewProject { name, slug },
                )
                .await
                .map_err(|e| e.flags(|f| (f == "slug").then_some("--slug")))?;
            app.show(&project, |p| {
                format!(
                    "project `{}` created (network {})",
                    p.slug,
                    p.network_name()
                )
            });
        }
        ProjectCmd::Delete { project, how } => {
            let path = app.project_path(&project)?;
            deletion::delete(app, Kind::Project, &project, &path, how).await?;
        }
        ProjectCmd::Restore { project } => {
            let path = app.project_path(&project)?;
            deletion::restore::<Project>(app, Kind::Project, &project, &path).await?;
        }
    }
    Ok(())
}

pub(crate) async fn env(app: &App, cmd: EnvCmd) -> Result<(), CliError> {
    match cmd {
        EnvCmd::List { project, deleted } => {
            let envs: Vec<Environment> = app
                .client
                .get(&format!(
                    "{}/environments{}",
                    app.project_path(&project)?,
                    deletion::include_deleted(deleted)
                ))
                .await?;
            app.show(&envs, |envs| {
                lines(envs, |e| {
                    if e.is_deleted() {
                        format!("{:<24}", e.name) + &deletion::deleted_mark(e.deleted_at)
                    } else {
                        e.name.clone()
                    }
                })
            });
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
        EnvCmd::Clone {
            environment,
            name,
            domain_pattern,
            deploy,
            no_config,
            copy_volumes,
        } => {
            let body = CloneEnvironment {
                name,
                domain_pattern,
                copy_config: !no_config,
                deploy,
                copy_volumes,
            };
            super::environments::clone(app, environment, body).await?;
        }
        EnvCmd::Delete { environment, how } => {
            let path = app.env_path(&environment)?;
            deletion::delete(app, Kind::Environment, &environment, &path, how).await?;
        }
        EnvCmd::Restore { environment } => {
            let path = app.env_path(&environment)?;
            deletion::restore::<Environment>(app, Kind::Environment, &environment, &path).await?;
        }
    }
    Ok(())
}
