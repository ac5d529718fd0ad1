//! Git-push webhooks: the URLs a forge delivers to, and the workspace's signing secret.

use clap::Subcommand;
use serde_json::{Value, json};

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
            let mut v: Value = app
                .client
                .get(&format!("{}/webhook", app.service_path(&address)?))
                .await?;
            // Full URLs: the daemon knows its paths, the client the address it reaches it at.
            if let Some(endpoints) = v["endpoints"].as_object_mut() {
                for path in endpoints.values_mut() {
                    *path = json!(format!("{base}{}", path.as_str().unwrap_or_default()));
                }
            }
            app.show(&v, |w| {
                let mut out = format!(
                    "pushes to `{}` of {} deploy `{address}`{}\n",
                    w["branch"].as_str().unwrap_or("?"),
                    w["repo_url"].as_str().unwrap_or("?"),
                    if w["auto_deploy"].as_bool() == Some(false) {
                        " (auto_deploy is off: pushes are ignored)"
                    } else {
                        ""
                    }
                );
                for forge in ["github", "gitlab", "gitea"] {
                    out.push_str(&format!(
                        "{forge:<7} {}\n",
                        w["endpoints"][forge].as_str().unwrap_or("")
                    ));
                }
                out.push_str(
                    &match (w["secret"].as_str(), w["secret_visible"].as_bool()) {
                        (Some(secret), _) => format!("secret  {secret}"),
                        (None, Some(true)) => {
                            "secret  none yet: create one with `clank webhook rotate`".to_owned()
                        }
                        _ => "secret  (only Owners and Admins may see it)".to_owned(),
                    },
                );
                out
            });
        }
        WebhookCmd::Rotate => {
            let v: Value = app
                .client
                .post(&format!("{}/webhook-secret", app.ws_path()), &json!({}))
                .await?;
            app.show(&v, |v| {
                format!(
                    "new webhook secret (the old one no longer verifies):\n{}",
                    v["secret"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}
