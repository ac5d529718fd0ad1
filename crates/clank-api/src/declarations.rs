//! A project as a declaration: every environment, its services and the config of each scope,
//! as `clank export` writes it (TOML) and `GET …/projects/{p}/declaration` answers it (JSON).
//! Applying one (`POST …/declarations`) stores a plan of what would change, applied by its id
//! like a promotion's.
//!
//! Secrets are references, never values: a declaration names `{ secret_env = "NAME" }`. A
//! secret the target already has is kept as it is; where it has none, the value comes with the
//! request ([`SecretValues`], by `NAME`), resolved by the client from its own environment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use clank_core::model::{Endpoint, ProcessSpec, ServiceSettings, ServiceSource, VolumeMount};

/// A config value in a declaration: plain text, or a reference to a secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Declared {
    Plain(String),
    /// A secret: kept where the target has it, else set from the request's value for
    /// `secret_env`.
    Secret {
        secret_env: String,
    },
}

/// One scope's config, by key.
pub type DeclaredConfig = BTreeMap<String, Declared>;

/// One project as declared (a `clank export` file).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// The project's slug (in the request's workspace; `workspace/project` must name that
    /// same workspace).
    pub project: String,
    /// The project's display name (used when the apply creates the project).
    pub name: String,
    /// The team the project is assigned to (informational: `clank team assign` changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Project-scope config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Declared>))]
    pub config: DeclaredConfig,
    /// Environments by name.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvironmentDeclaration>,
}

/// One environment: its config and its services by slug.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDeclaration {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Declared>))]
    pub config: DeclaredConfig,
    #[serde(default)]
    pub services: BTreeMap<String, ServiceDeclaration>,
}

/// What a service is declared as: what creating one takes, less the server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceDeclaration {
    pub name: String,
    pub source: ServiceSource,
    #[serde(default)]
    pub settings: ServiceSettings,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Process types; empty: the platform's default (`web`) for a new service, the ones it
    /// has for an existing one.
    #[serde(default)]
    pub processes: BTreeMap<String, ProcessSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, Declared>))]
    pub config: DeclaredConfig,
}

/// A secret a declaration refers to, where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    /// Where: `config.KEY`, `environments.production.config.KEY`,
    /// `environments.production.services.web.config.KEY`.
    pub field: String,
    pub key: String,
    /// The name its value goes by (`secret_env`).
    pub secret_env: String,
}

impl Declaration {
    /// Every secret reference, in field order.
    pub fn secret_refs(&self) -> Vec<SecretRef> {
        let mut out = Vec::new();
        let mut scope = |prefix: String, config: &DeclaredConfig| {
            for (key, value) in config {
                if let Declared::Secret { secret_env } = value {
                    out.push(SecretRef {
                        field: format!("{prefix}config.{key}"),
                        key: key.clone(),
                        secret_env: secret_env.clone(),
                    });
                }
            }
        };
        scope(String::new(), &self.config);
        for (name, env) in &self.environments {
            scope(format!("environments.{name}."), &env.config);
            for (slug, service) in &env.services {
                scope(
                    format!("environments.{name}.services.{slug}."),
                    &service.config,
                );
            }
        }
        out
    }

    /// The secrets an apply onto `target` (its export; `None`: the project does not exist)
    /// needs values for: those the target does not already hold as secrets.
    pub fn secrets_missing_in(&self, target: Option<&Declaration>) -> Vec<SecretRef> {
        let held: BTreeSet<String> = target
            .map(|t| t.secret_refs().into_iter().map(|r| r.field).collect())
            .unwrap_or_default();
        self.secret_refs()
            .into_iter()
            .filter(|r| !held.contains(&r.field))
            .collect()
    }
}

/// Secret values by the `secret_env` name a declaration gives them. Only needed for secrets
/// the target lacks; the rest are ignored. `Debug` prints names only.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl SecretValues {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl fmt::Debug for SecretValues {
    /// Names only: the values are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Plan applying a declaration (`POST /v1/workspaces/{ws}/declarations`): stored, nothing
/// else written; apply it with `POST …/plans/{id}/apply`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PlanDeclaration {
    pub declaration: Declaration,
    /// Values of the secrets the target lacks, by `secret_env` name.
    #[serde(default, skip_serializing_if = "SecretValues::is_empty")]
    pub secrets: SecretValues,
    /// What the plan shows as its source (a file name); default `declaration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaration() -> Declaration {
        let mut config = DeclaredConfig::new();
        config.insert("MODE".into(), Declared::Plain("prod".into()));
        config.insert(
            "TOKEN".into(),
            Declared::Secret {
                secret_env: "SHOP_TOKEN".into(),
            },
        );
        Declaration {
            project: "shop".into(),
            name: "Shop".into(),
            team: Some("ops".into()),
            config,
            environments: BTreeMap::from([(
                "production".into(),
                EnvironmentDeclaration::default(),
            )]),
        }
    }

    #[test]
    fn secrets_are_named_by_field_and_only_those_the_target_lacks_are_needed() {
        let d = declaration();
        let refs = d.secret_refs();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].field, "config.TOKEN");
        assert_eq!(refs[0].secret_env, "SHOP_TOKEN");
        assert_eq!(d.secrets_missing_in(None), refs);
        assert!(d.secrets_missing_in(Some(&d)).is_empty());
    }

    #[test]
    fn secret_values_never_print_a_value_in_debug() {
        let v = SecretValues(BTreeMap::from([(
            "SHOP_TOKEN".into(),
            "hunter2-visible-nowhere".into(),
        )]));
        let request = PlanDeclaration {
            declaration: declaration(),
            secrets: v,
            source: None,
        };
        let shown = format!("{request:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("SHOP_TOKEN"), "{shown}");
    }

    #[test]
    fn the_bindings_request_leaves_its_workspace_to_the_platform_and_never_prints_a_secret() {
        let r: crate::ops::Request = serde_json::from_value(serde_json::json!({
            "op": "apply_declaration",
            "declaration": {"project": "shop", "name": "Shop"},
            "secrets": {"SHOP_TOKEN": "hunter2-visible-nowhere"},
        }))
        .unwrap();
        let crate::ops::Request::ApplyDeclaration {
            workspace, secrets, ..
        } = &r
        else {
            panic!("an apply_declaration request: {r:?}");
        };
        assert_eq!(workspace, &None, "absent: the platform's default workspace");
        assert_eq!(secrets.get("SHOP_TOKEN"), Some("hunter2-visible-nowhere"));
        assert!(!format!("{r:?}").contains("hunter2"));
    }

    #[test]
    fn a_plain_value_and_a_secret_reference_read_back_as_themselves() {
        let json = serde_json::to_string(&declaration()).unwrap();
        assert!(
            json.contains(r#""TOKEN":{"secret_env":"SHOP_TOKEN"}"#),
            "{json}"
        );
        let back: Declaration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, declaration());
    }
}
