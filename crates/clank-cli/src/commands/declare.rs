//! A project as a file: `clank export <project>` writes it as TOML (every environment, its
//! services and the config of each scope), `clank apply -f <file>` shows what would change as a
//! plan (the same format as `clank promote`), and with `--yes` carries it out. Applying the
//! same file twice changes nothing the second time.
//!
//! The daemon does the work (`GET …/projects/{p}/declaration`, `POST …/declarations`, then
//! `POST …/plans/{id}/apply`), so the bindings apply files the same way; this module reads and
//! writes the file and supplies secrets. Secrets are references, never values: the file names
//! `{ secret_env = "NAME" }`. Applying keeps a secret the target already has as it is; only
//! where the target has none is the value read from the environment variable `NAME` of the
//! shell running `clank apply`, and sent. Keys the target has and the file does not are kept,
//! and the plan lists them. Applying creates and updates, and never deploys: changes apply
//! from each service's next deploy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clank_api::declarations::{Declaration, PlanDeclaration, SecretValues};
use clank_api::plans::{AppliedPlan, PlanView};
use clank_core::address::ProjectAddress;

use crate::app::{App, input};
use crate::client::CliError;

pub(crate) async fn export(app: &App, project: String) -> Result<(), CliError> {
    let path = format!("{}/declaration", app.project_path(&project)?);
    let declaration: Declaration = app.client.get(&path).await?;
    let text = toml::to_string(&declaration)
        .map_err(|e| CliError::new(format!("cannot write the project as TOML: {e}"), 1))?;
    #[allow(clippy::print_stdout)]
    {
        println!(
            "# `clank export {project}`: apply with `clank apply -f <file>`.\n\
             # Secrets are never exported: `{{ secret_env = \"NAME\" }}` keeps the target's\n\
             # secret, or where it has none, takes the value of $NAME when applying.\n\n{text}"
        );
    }
    Ok(())
}

/// The values of the secrets `file` names that the target lacks, from this process's
/// environment; a variable unset is an error naming it.
async fn secret_values(
    app: &App,
    file: &Declaration,
    project_path: &str,
) -> Result<SecretValues, CliError> {
    let target: Option<Declaration> =
        match app.client.get(&format!("{project_path}/declaration")).await {
            Ok(d) => Some(d),
            // No such project yet: the apply creates it, with every secret.
            Err(e) if e.code == 4 => None,
            Err(e) => return Err(e),
        };
    let mut values = BTreeMap::new();
    for needed in file.secrets_missing_in(target.as_ref()) {
        let value = std::env::var(&needed.secret_env).map_err(|_| {
            CliError::new(
                format!(
                    "`{}` is a secret the target does not have: set ${} to its value to apply",
                    needed.key, needed.secret_env
                ),
                2,
            )
        })?;
        values.insert(needed.secret_env, value);
    }
    Ok(SecretValues(values))
}

pub(crate) async fn apply(app: &App, file: PathBuf, yes: bool) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display()), 2))?;
    let declaration: Declaration =
        toml::from_str(&text).map_err(|e| CliError::new(format!("{}: {e}", file.display()), 2))?;
    let addr = ProjectAddress::parse(&declaration.project, &app.defaults).map_err(input)?;
    let [ws, project] = addr.segments();
    let secrets = secret_values(
        app,
        &declaration,
        &format!("/v1/workspaces/{ws}/projects/{project}"),
    )
    .await?;
    let request = PlanDeclaration {
        declaration,
        secrets,
        source: Some(file.display().to_string()),
    };
    let view: PlanView = app
        .client
        .post(&format!("/v1/workspaces/{ws}/declarations"), &request)
        .await?;
    if !yes || view.unchanged {
        app.show(&view, |v| {
            let mut out = crate::plan::render(v);
            if !v.unchanged {
                out.push_str("\nrun again with --yes to apply it");
            }
            out
        });
        return Ok(());
    }
    let plan_path = format!("/v1/workspaces/{ws}/plans/{}", view.id);
    let _: AppliedPlan = app.client.post_empty(&format!("{plan_path}/apply")).await?;
    let applied: PlanView = app.client.get(&plan_path).await?;
    app.show(&applied, |v| {
        format!(
            "{}\napplied; changes reach each service with its next deploy",
            crate::plan::render(v)
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use clank_api::declarations::{Declared, DeclaredConfig, EnvironmentDeclaration};

    use super::*;

    #[test]
    fn a_file_round_trips_through_toml_with_secrets_by_name_only() {
        let mut config = DeclaredConfig::new();
        config.insert("MODE".into(), Declared::Plain("prod".into()));
        config.insert(
            "TOKEN".into(),
            Declared::Secret {
                secret_env: "SHOP_TOKEN".into(),
            },
        );
        let file = Declaration {
            project: "shop".into(),
            name: "Shop".into(),
            team: Some("ops".into()),
            config,
            environments: BTreeMap::from([(
                "production".into(),
                EnvironmentDeclaration::default(),
            )]),
        };
        let text = toml::to_string(&file).unwrap();
        assert!(text.contains("secret_env = \"SHOP_TOKEN\""), "{text}");
        assert_eq!(toml::from_str::<Declaration>(&text).unwrap(), file);
        let typo = text.replace("name = ", "nmae = ");
        assert!(toml::from_str::<Declaration>(&typo).is_err());
    }

    #[test]
    fn a_file_written_by_the_earlier_client_side_apply_still_reads() {
        // What `clank export` wrote before the daemon did the work: the format is unchanged.
        let text = r#"
project = "shop"
name = "Shop"

[config]
MODE = "prod"

[environments.production.services.web]
name = "web"
source = { type = "docker_image", image = "clank-testapp:latest" }

[environments.production.services.web.config]
GREETING = "hi"
TOKEN = { secret_env = "TOKEN" }
"#;
        let d: Declaration = toml::from_str(text).unwrap();
        let web = &d.environments["production"].services["web"];
        assert_eq!(web.config["GREETING"], Declared::Plain("hi".into()));
        assert_eq!(
            web.config["TOKEN"],
            Declared::Secret {
                secret_env: "TOKEN".into()
            }
        );
        assert_eq!(d.secret_refs().len(), 1);
    }
}
