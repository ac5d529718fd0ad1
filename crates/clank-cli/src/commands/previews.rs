//! Preview environments: a project's settings for the environment each pull request gets,
//! the live previews, and closing one by hand.

use clank_api::previews::{PreviewOutcome, PreviewSettingsBody, PreviewSettingsView, PreviewView};
use clap::Subcommand;

use crate::app::{App, lines};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum PreviewCmd {
    /// Show a project's preview settings, or set them when `--base` is given.
    Settings {
        /// `[workspace/]project`.
        project: String,
        /// The environment each preview is cloned from (sets the settings).
        #[arg(long)]
        base: Option<String>,
        /// The base domain of routed services' preview URLs.
        #[arg(long)]
        domain: Option<String>,
        /// The preview host pattern (default `{service}-pr-{n}.{domain}`).
        #[arg(long)]
        pattern: Option<String>,
        /// Minutes a preview lives after its last push (default 4320, 72 hours).
        #[arg(long)]
        ttl_minutes: Option<u32>,
        /// Build pull requests from forks (they run with the project's secrets).
        #[arg(long)]
        allow_forks: bool,
        /// Keep the settings but create no previews.
        #[arg(long)]
        disable: bool,
    },
    /// The project's live previews.
    List { project: String },
    /// Tear down a pull request's preview now, with its volumes.
    Close { project: String, pull_request: u64 },
}

pub(crate) async fn previews(app: &App, cmd: PreviewCmd) -> Result<(), CliError> {
    match cmd {
        PreviewCmd::Settings {
            project,
            base,
            domain,
            pattern,
            ttl_minutes,
            allow_forks,
            disable,
        } => {
            let path = format!("{}/previews", app.project_path(&project)?);
            let settings: PreviewSettingsView = match base {
                Some(base_environment) => {
                    app.client
                        .put(
                            &path,
                            &PreviewSettingsBody {
                                enabled: !disable,
                                base_environment,
                                domain,
                                pattern,
                                ttl_minutes,
                                allow_forks,
                            },
                        )
                        .await?
                }
                None => app.client.get(&path).await?,
            };
            app.show(&settings, |s| {
                format!(
                    "enabled      {}\nbase         {}\ndomain       {}\npattern      {}\nttl          \
                     {} min\nallow forks  {}",
                    s.enabled,
                    s.base_environment,
                    s.domain.as_deref().unwrap_or("(none: previews get no URLs)"),
                    s.pattern,
                    s.ttl_minutes,
                    s.allow_forks
                )
            });
        }
        PreviewCmd::List { project } => {
            let list: Vec<PreviewView> = app
                .client
                .get(&format!(
                    "{}/previews/environments",
                    app.project_path(&project)?
                ))
                .await?;
            app.show(&list, |l| {
                if l.is_empty() {
                    return "no previews".to_owned();
                }
                lines(l, |p| {
                    format!(
                        "#{:<5} {:<10} {:<20} {:<12} {}",
                        p.pull_request,
                        p.environment,
                        p.branch,
                        p.head_commit
                            .as_deref()
                            .map_or("-", |c| &c[..c.len().min(12)]),
                        p.urls.join(" ")
                    )
                })
            });
        }
        PreviewCmd::Close {
            project,
            pull_request,
        } => {
            let outcome: PreviewOutcome = app
                .client
                .delete(&format!(
                    "{}/previews/{pull_request}",
                    app.project_path(&project)?
                ))
                .await?;
            app.show(&outcome, |o| {
                let r = o.removed.clone().unwrap_or_default();
                format!(
                    "removed `{}`: {} workloads, {} networks, {} volumes",
                    o.environment,
                    r.containers.len(),
                    r.networks.len(),
                    r.volumes_removed.len()
                )
            });
        }
    }
    Ok(())
}
