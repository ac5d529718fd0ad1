//! Git-push webhooks: the URLs a forge delivers to, and the workspace's signing secret.

use clank_api::ServiceWebhook;
use clank_api::webhooks::WebhookSecretCreated;
use clap::Subcommand;

use crate::app::App;
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCmd {
    /// The URLs to give the forge for a git service, its branch, and (Owner, Admin) the secret.
    Show { address: String },
    /// Create or rotate the workspace's webhook secret (Owner, Admin); the old one stops
    /// verifying at once.
    Rotate,
}

pub(crate) async fn webhook(app: &App, url: &str, cmd: WebhookCmd) -> Result<(), CliError> {
    let base = url.trim_end_matches('/');
    match cmd {
        WebhookCmd::Show { address } => {
            let mut w: ServiceWebhook = app
                .client
                .get(&format!("{}/webhook", app.service_path(&address)?))
                .await?;
            // Full URLs: the daemon knows its paths, the client the address it reaches it at.
            let e = &mut w.endpoints;
            for path in [&mut e.github, &mut e.gitlab, &mut e.gitea] {
                *path = format!("{base}{path}");
            }
            app.show(&w, |w| {
                let mut out = format!(
                    "pushes to `{}` of {} deploy `{address}`{}\n",
                    w.branch,
                    w.repo_url,
                    if w.auto_deploy {
                        ""
                    } else {
                        " (auto_deploy is off: pushes are ignored)"
                    }
                );
                for (forge, endpoint) in [
                    ("github", &w.endpoints.github),
                    ("gitlab", &w.endpoints.gitlab),
                    ("gitea", &w.endpoints.gitea),
                ] {
                    out.push_str(&format!("{forge:<7} {endpoint}\n"));
                }
                out.push_str(&match (&w.secret, w.secret_visible) {
                    (Some(secret), _) => format!("secret  {secret}"),
                    (None, true) => {
                        "secret  none yet: create one with `clank webhook rotate`".to_owned()
                    }
                    (None, false) => "secret  (only Owners and Admins may see it)".to_owned(),
                });
                out
            });
        }
        WebhookCmd::Rotate => {
            let created: WebhookSecretCreated = app
                .client
                .post_empty(&format!("{}/webhook-secret", app.ws_path()))
                .await?;
            app.show(&created, |c| {
                format!(
                    "new webhook secret (the old one no longer verifies):\n{}",
                    c.secret
                )
            });
        }
    }
    Ok(())
}
