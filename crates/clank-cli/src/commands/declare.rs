//! A project as a file: `clank export <project>` writes it as TOML (every environment, its
//! services and the config of each scope), `clank apply -f <file>` shows what would change as a
//! plan (the same format as `clank promote`), and with `--yes` carries it out. Applying the
//! same file twice changes nothing the second time.
//!
//! Secrets are references, never values: the file names `{ secret_env = "NAME" }`. Applying
//! keeps a secret the target already has as it is (its value cannot be compared, and is never
//! read back); only where the target has none is the value read from the environment variable
//! `NAME` of the shell running `clank apply`. Keys the target has and the file does not are
//! kept, and the plan lists them. Applying creates and updates, and never deploys: changes
//! apply from each service's next deploy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clank_api::plans::{
    ConfigChangeKind, ConfigDiff, FieldChange, MASK, PlanAction, PlanKind, PlanView, ServicePlan,
};
use clank_api::teams::TeamView;
use clank_api::{ConfigEdit, ConfigRequest, ServicePatch, ServiceSpec};
use clank_core::Timestamp;
use clank_core::address::ProjectAddress;
use clank_core::config::ConfigVarView;
use clank_core::model::{
    Endpoint, Environment, ProcessSpec, Project, Service, ServiceSettings, ServiceSource,
    VolumeMount,
};
use serde_json::Value;

use crate::app::{App, input};
use crate::client::CliError;

/// A config value in the file: plain text, or a reference to a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Declared {
    Plain(String),
    Secret { secret_env: String },
}

type Config = BTreeMap<String, Declared>;

/// The file: one project.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    /// The project's slug (in the context's workspace unless `workspace/` is given).
    project: String,
    name: String,
    /// The team the project is assigned to (informational: `clank team assign` changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<String>,
    /// Project-scope config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    config: Config,
    #[serde(default)]
    environments: BTreeMap<String, EnvironmentFile>,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentFile {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    config: Config,
    #[serde(default)]
    services: BTreeMap<String, ServiceFile>,
}

/// What a service is declared as: what `clank service create` takes, less the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    name: String,
    source: ServiceSource,
    #[serde(default)]
    settings: ServiceSettings,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<Endpoint>,
    #[serde(default)]
    processes: BTreeMap<String, ProcessSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    config: Config,
}

impl ServiceFile {
    fn of(s: &Service, config: Config) -> Self {
        ServiceFile {
            name: s.name.clone(),
            source: s.source.clone(),
            settings: s.settings.clone(),
            volumes: s.volumes.clone(),
            endpoint: s.endpoint.clone(),
            processes: s.processes.clone(),
            depends_on: s.depends_on.clone(),
            config,
        }
    }

    /// The fields a plan compares, as JSON.
    fn fields(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "source": self.source,
            "settings": self.settings,
            "volumes": self.volumes,
            "endpoint": self.endpoint,
            "processes": self.processes,
            "depends_on": self.depends_on,
        })
    }
}

fn exported(vars: Vec<ConfigVarView>) -> Config {
    vars.into_iter()
        .map(|v| {
            let value = if v.secret {
                Declared::Secret {
                    secret_env: v.key.clone(),
                }
            } else {
                Declared::Plain(v.value)
            };
            (v.key, value)
        })
        .collect()
}

/// A service as the daemon has it, with its own config.
type CurrentService = (Service, Vec<ConfigVarView>);

/// An environment's config and its services by slug.
type CurrentEnvironment = (Vec<ConfigVarView>, BTreeMap<String, CurrentService>);

/// Everything the file describes, as the daemon has it now.
struct Current {
    base: String,
    project: Project,
    config: Vec<ConfigVarView>,
    environments: BTreeMap<String, CurrentEnvironment>,
}

async fn current(app: &App, project: &str) -> Result<Current, CliError> {
    let base = app.project_path(project)?;
    let p: Project = app.client.get(&base).await?;
    let config = app.client.get(&format!("{base}/config")).await?;
    let envs: Vec<Environment> = app.client.get(&format!("{base}/environments")).await?;
    let mut environments = BTreeMap::new();
    for e in envs {
        let env_path = format!("{base}/environments/{}", e.name);
        let env_config = app.client.get(&format!("{env_path}/config")).await?;
        let list: Vec<Service> = app
            .client
            .get(&format!("{env_path}/services?limit=500"))
            .await?;
        let mut services = BTreeMap::new();
        for s in list {
            let vars = app
                .client
                .get(&format!("{env_path}/services/{}/config", s.slug))
                .await?;
            services.insert(s.slug.clone(), (s, vars));
        }
        environments.insert(e.name, (env_config, services));
    }
    Ok(Current {
        base,
        project: p,
        config,
        environments,
    })
}

pub(crate) async fn export(app: &App, project: String) -> Result<(), CliError> {
    let cur = current(app, &project).await?;
    let team = match cur.project.team_id {
        Some(id) => {
            let t: TeamView = app
                .client
                .get(&format!("{}/teams/{id}", app.ws_path()))
                .await?;
            Some(t.team.slug)
        }
        None => None,
    };
    let file = ProjectFile {
        project: cur.project.slug.clone(),
        name: cur.project.name.clone(),
        team,
        config: exported(cur.config),
        environments: cur
            .environments
            .into_iter()
            .map(|(name, (config, services))| {
                let services = services
                    .into_iter()
                    .map(|(slug, (s, vars))| (slug, ServiceFile::of(&s, exported(vars))))
                    .collect();
                let env = EnvironmentFile {
                    config: exported(config),
                    services,
                };
                (name, env)
            })
            .collect(),
    };
    let text = toml::to_string(&file)
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

/// One change `apply` makes, in the order it makes them.
enum Step {
    CreateEnvironment(String),
    CreateService(String, ServiceSpec),
    UpdateService(String, ServicePatch),
    SetConfig(String, Vec<ConfigEdit>),
}

/// The config edits that make `have` hold `want`, and how the two differ (secrets masked).
fn config_plan(
    want: &Config,
    have: &[ConfigVarView],
) -> Result<(Vec<ConfigEdit>, Vec<ConfigDiff>), CliError> {
    let have: BTreeMap<&str, &ConfigVarView> = have.iter().map(|v| (v.key.as_str(), v)).collect();
    let mut edits = Vec::new();
    let mut diffs = Vec::new();
    for (key, value) in want {
        let current = have.get(key.as_str());
        let shown = |v: &ConfigVarView| {
            Some(if v.secret {
                MASK.to_owned()
            } else {
                v.value.clone()
            })
        };
        match value {
            Declared::Plain(v) => {
                if current.is_some_and(|c| !c.secret && &c.value == v) {
                    continue;
                }
                edits.push(ConfigEdit::set(key, v));
                diffs.push(ConfigDiff {
                    key: key.clone(),
                    change: match current {
                        Some(_) => ConfigChangeKind::Changed,
                        None => ConfigChangeKind::Added,
                    },
                    secret: current.is_some_and(|c| c.secret),
                    from: current.and_then(|c| shown(c)),
                    to: Some(v.clone()),
                });
            }
            Declared::Secret { secret_env } => {
                if current.is_some_and(|c| c.secret) {
                    continue;
                }
                let v = std::env::var(secret_env).map_err(|_| {
                    CliError::new(
                        format!(
                            "`{key}` is a secret the target does not have: set ${secret_env} \
                             to its value to apply"
                        ),
                        2,
                    )
                })?;
                edits.push(ConfigEdit::set_secret(key, &v));
                diffs.push(ConfigDiff {
                    key: key.clone(),
                    change: match current {
                        Some(_) => ConfigChangeKind::Changed,
                        None => ConfigChangeKind::Added,
                    },
                    secret: true,
                    from: current.and_then(|c| shown(c)),
                    to: Some(MASK.to_owned()),
                });
            }
        }
    }
    for (key, v) in &have {
        if !want.contains_key(*key) {
            diffs.push(ConfigDiff {
                key: (*key).to_owned(),
                change: ConfigChangeKind::Removed,
                secret: v.secret,
                from: Some(if v.secret {
                    MASK.to_owned()
                } else {
                    v.value.clone()
                }),
                to: None,
            });
        }
    }
    Ok((edits, diffs))
}

/// Leaves of a JSON value by dotted path, each as compact JSON (strings unquoted; a list is
/// one leaf).
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, x) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, x, out);
            }
        }
        // Nothing set shows as nothing, not as an empty list or table.
        Value::Null | Value::Object(_) => {}
        Value::Array(xs) if xs.is_empty() => {}
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn field_changes(from: Option<&Value>, to: &Value) -> Vec<FieldChange> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    if let Some(from) = from {
        leaves("", from, &mut a);
    }
    leaves("", to, &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            field: k.clone(),
            from: a.get(k).cloned(),
            to: b.get(k).cloned(),
        })
        .collect()
}

/// The plan of `file` against what the daemon has, and the steps that carry it out.
fn plan(
    app: &App,
    file: &ProjectFile,
    cur: &Current,
    source: &str,
) -> Result<(PlanView, Vec<Step>), CliError> {
    let parsed = ProjectAddress::parse(&file.project, &app.defaults).map_err(input)?;
    let addr = parsed.to_string();
    let mut services = Vec::new();
    let mut steps = Vec::new();
    let (edits, config) = config_plan(&file.config, &cur.config)?;
    if !config.is_empty() {
        services.push(scope_plan(&addr, config));
    }
    if !edits.is_empty() {
        steps.push(Step::SetConfig(format!("{}/config", cur.base), edits));
    }
    for (name, env) in &file.environments {
        let env_path = format!("{}/environments/{name}", cur.base);
        let empty = (Vec::new(), BTreeMap::new());
        let (env_config, existing) = match cur.environments.get(name) {
            Some(e) => e,
            None => {
                steps.push(Step::CreateEnvironment(name.clone()));
                services.push(ServicePlan {
                    service: format!("{addr}/{name}"),
                    action: PlanAction::Create,
                    image: None,
                    fields: Vec::new(),
                    config: Vec::new(),
                    kept: Vec::new(),
                });
                &empty
            }
        };
        let (edits, config) = config_plan(&env.config, env_config)?;
        if !config.is_empty() {
            services.push(scope_plan(&format!("{addr}/{name}"), config));
        }
        if !edits.is_empty() {
            steps.push(Step::SetConfig(format!("{env_path}/config"), edits));
        }
        for (slug, declared) in &env.services {
            let have = existing.get(slug);
            // No processes in the file: the platform's default (`web`) for a new service, the
            // ones it has for an existing one.
            let mut declared = declared.clone();
            if declared.processes.is_empty() {
                if let Some((s, _)) = have {
                    declared.processes = s.processes.clone();
                }
            }
            let before = have.map(|(s, _)| ServiceFile::of(s, Config::new()).fields());
            let fields = field_changes(before.as_ref(), &declared.fields());
            let (edits, config) =
                config_plan(&declared.config, have.map(|(_, v)| &v[..]).unwrap_or(&[]))?;
            let action = match (have, fields.is_empty() && config.iter().all(removed)) {
                (None, _) => PlanAction::Create,
                (Some(_), true) => PlanAction::Unchanged,
                (Some(_), false) => PlanAction::Update,
            };
            match have {
                None => {
                    let mut spec = ServiceSpec::new(slug.clone(), declared.source.clone());
                    spec.name = Some(declared.name.clone());
                    spec.settings = declared.settings.clone();
                    spec.volumes = declared.volumes.clone();
                    spec.endpoint = declared.endpoint.clone();
                    spec.processes =
                        (!declared.processes.is_empty()).then(|| declared.processes.clone());
                    spec.depends_on = declared.depends_on.clone();
                    steps.push(Step::CreateService(format!("{env_path}/services"), spec));
                }
                Some(_) if !fields.is_empty() => {
                    let patch = ServicePatch {
                        name: Some(declared.name.clone()),
                        source: Some(declared.source.clone()),
                        settings: Some(declared.settings.clone()),
                        volumes: Some(declared.volumes.clone()),
                        endpoint: Some(declared.endpoint.clone()),
                        processes: Some(declared.processes.clone()),
                        depends_on: Some(declared.depends_on.clone()),
                        ..ServicePatch::default()
                    };
                    steps.push(Step::UpdateService(
                        format!("{env_path}/services/{slug}"),
                        patch,
                    ));
                }
                Some(_) => {}
            }
            if !edits.is_empty() {
                steps.push(Step::SetConfig(
                    format!("{env_path}/services/{slug}/config"),
                    edits,
                ));
            }
            services.push(ServicePlan {
                service: format!("{addr}/{name}/{slug}"),
                action,
                image: None,
                fields,
                config,
                kept: Vec::new(),
            });
        }
    }
    let now = Timestamp::now();
    let view = PlanView {
        id: "local".to_owned(),
        kind: PlanKind::Apply,
        source: source.to_owned(),
        target: addr,
        created_at: now,
        expires_at: now,
        unchanged: steps.is_empty(),
        services,
        applied_at: None,
    };
    Ok((view, steps))
}

fn removed(d: &ConfigDiff) -> bool {
    d.change == ConfigChangeKind::Removed
}

/// Config of a project or environment scope, shown like a service's part of the plan.
fn scope_plan(address: &str, config: Vec<ConfigDiff>) -> ServicePlan {
    let action = if config.iter().all(removed) {
        PlanAction::Unchanged
    } else {
        PlanAction::Update
    };
    ServicePlan {
        service: format!("{address} (config)"),
        action,
        image: None,
        fields: Vec::new(),
        config,
        kept: Vec::new(),
    }
}

pub(crate) async fn apply(app: &App, file: PathBuf, yes: bool) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&file)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display()), 2))?;
    let declared: ProjectFile =
        toml::from_str(&text).map_err(|e| CliError::new(format!("{}: {e}", file.display()), 2))?;
    let cur = current(app, &declared.project).await?;
    let (mut view, steps) = plan(app, &declared, &cur, &file.display().to_string())?;
    if !yes || steps.is_empty() {
        app.show(&view, |v| {
            let mut out = crate::plan::render(v);
            if !v.unchanged {
                out.push_str("\nrun again with --yes to apply it");
            }
            out
        });
        return Ok(());
    }
    for step in steps {
        match step {
            Step::CreateEnvironment(name) => {
                let _: Environment = app
                    .client
                    .post(
                        &format!("{}/environments", cur.base),
                        &serde_json::json!({ "name": name }),
                    )
                    .await?;
            }
            Step::CreateService(path, spec) => {
                let _: Service = app.client.post(&path, &spec).await?;
            }
            Step::UpdateService(path, patch) => {
                let _: Service = app.client.patch(&path, &patch).await?;
            }
            Step::SetConfig(path, changes) => {
                let _: Vec<ConfigVarView> =
                    app.client.patch(&path, &ConfigRequest { changes }).await?;
            }
        }
    }
    view.applied_at = Some(Timestamp::now());
    app.show(&view, |v| {
        format!(
            "{}\napplied; changes reach each service with its next deploy",
            crate::plan::render(v)
        )
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(key: &str, value: &str, secret: bool) -> ConfigVarView {
        ConfigVarView {
            key: key.into(),
            value: value.into(),
            secret,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn a_file_round_trips_through_toml_with_secrets_by_name_only() {
        let mut config = Config::new();
        config.insert("MODE".into(), Declared::Plain("prod".into()));
        config.insert(
            "TOKEN".into(),
            Declared::Secret {
                secret_env: "SHOP_TOKEN".into(),
            },
        );
        let file = ProjectFile {
            project: "shop".into(),
            name: "Shop".into(),
            team: Some("ops".into()),
            config,
            environments: BTreeMap::from([("production".into(), EnvironmentFile::default())]),
        };
        let text = toml::to_string(&file).unwrap();
        assert!(text.contains("secret_env = \"SHOP_TOKEN\""), "{text}");
        assert_eq!(toml::from_str::<ProjectFile>(&text).unwrap(), file);
        let typo = text.replace("name = ", "nmae = ");
        assert!(toml::from_str::<ProjectFile>(&typo).is_err());
    }

    #[test]
    fn config_already_there_plans_nothing_a_missing_secret_names_its_variable_extra_keys_stay() {
        let mut want = Config::new();
        want.insert("MODE".into(), Declared::Plain("prod".into()));
        want.insert(
            "TOKEN".into(),
            Declared::Secret {
                secret_env: "CLANK_TEST_UNSET_VARIABLE".into(),
            },
        );
        let have = [var("MODE", "prod", false), var("TOKEN", MASK, true)];
        let (edits, diffs) = config_plan(&want, &have).unwrap();
        assert!(edits.is_empty() && diffs.is_empty(), "{diffs:?}");

        // The target lacks the secret and the variable naming its value is unset.
        let e = config_plan(&want, &[var("MODE", "prod", false)])
            .err()
            .unwrap();
        assert!(e.to_string().contains("CLANK_TEST_UNSET_VARIABLE"), "{e}");

        want.remove("TOKEN");
        let have = [var("MODE", "dev", false), var("OLD", "x", false)];
        let (edits, diffs) = config_plan(&want, &have).unwrap();
        assert_eq!(edits, vec![ConfigEdit::set("MODE", "prod")]);
        let kinds: Vec<_> = diffs.iter().map(|d| (d.key.as_str(), d.change)).collect();
        assert_eq!(
            kinds,
            [
                ("MODE", ConfigChangeKind::Changed),
                ("OLD", ConfigChangeKind::Removed)
            ]
        );
    }

    #[test]
    fn field_changes_name_each_leaf_that_differs() {
        let from = serde_json::json!({"settings": {"port": 80, "path": "/"}, "volumes": []});
        let to = serde_json::json!({"settings": {"port": 8080, "path": "/"}, "volumes": []});
        let changes = field_changes(Some(&from), &to);
        assert_eq!(
            changes,
            vec![FieldChange {
                field: "settings.port".into(),
                from: Some("80".into()),
                to: Some("8080".into()),
            }]
        );
        assert!(field_changes(Some(&to), &to).is_empty());
    }
}
