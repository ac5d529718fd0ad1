//! The config cascade: workspace → team → project → environment → service, most specific wins,
//! with provenance for every key.
//!
//! Values are resolved without decrypting anything: a [`ResolvedConfig`] keeps secrets sealed, so
//! it can be snapshotted into a deployment and stored as is. Plaintext appears only in
//! [`ResolvedConfig::to_env`], which the runtime calls when it starts a workload. Every
//! user-facing shape ([`ResolvedVarView`], [`ConfigVarView`]) shows secrets as [`MASK`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::error::{InvalidInput, Result};
use crate::id::{EnvironmentId, ProjectId, ServiceId, TeamId, WorkspaceId};
use crate::secret::{Keyring, MASK, SealedSecret, SecretAad, SecretString};
use crate::time::Timestamp;
use crate::validate::{validate_env_key, validate_env_value};

// ---------------------------------------------------------------------------------------------
// Scopes

/// How specific a scope is. The derived order is the cascade order: later levels win.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ScopeLevel {
    Workspace,
    Team,
    Project,
    Environment,
    Service,
}

impl ScopeLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeLevel::Workspace => "workspace",
            ScopeLevel::Team => "team",
            ScopeLevel::Project => "project",
            ScopeLevel::Environment => "environment",
            ScopeLevel::Service => "service",
        }
    }
}

impl fmt::Display for ScopeLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a config variable is set.
///
/// The string form `<level>:<uuid>` (e.g. `service:0190…`) is stable: it is the serde form, the
/// store key prefix, and part of every secret's associated data, so changing it would make every
/// stored secret unopenable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Workspace(WorkspaceId),
    Team(TeamId),
    Project(ProjectId),
    Environment(EnvironmentId),
    Service(ServiceId),
}

impl Scope {
    pub fn level(&self) -> ScopeLevel {
        match self {
            Scope::Workspace(_) => ScopeLevel::Workspace,
            Scope::Team(_) => ScopeLevel::Team,
            Scope::Project(_) => ScopeLevel::Project,
            Scope::Environment(_) => ScopeLevel::Environment,
            Scope::Service(_) => ScopeLevel::Service,
        }
    }

    fn uuid(&self) -> uuid::Uuid {
        match self {
            Scope::Workspace(id) => id.as_uuid(),
            Scope::Team(id) => id.as_uuid(),
            Scope::Project(id) => id.as_uuid(),
            Scope::Environment(id) => id.as_uuid(),
            Scope::Service(id) => id.as_uuid(),
        }
    }

    /// The associated data for the secret `key` set at this scope.
    pub fn aad(&self, key: &str) -> SecretAad {
        SecretAad::new(self.to_string(), key)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level(), self.uuid())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

impl FromStr for Scope {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, InvalidInput> {
        let (level, id) = s.split_once(':').ok_or_else(|| {
            InvalidInput::new(
                "scope",
                "format",
                format!(
                    "scope `{}` must look like `<level>:<uuid>`, e.g. `service:<uuid>`",
                    s.escape_debug()
                ),
            )
        })?;
        let within = |e: InvalidInput| e.within("scope");
        Ok(match level {
            "workspace" => Scope::Workspace(id.parse().map_err(within)?),
            "team" => Scope::Team(id.parse().map_err(within)?),
            "project" => Scope::Project(id.parse().map_err(within)?),
            "environment" => Scope::Environment(id.parse().map_err(within)?),
            "service" => Scope::Service(id.parse().map_err(within)?),
            other => {
                return Err(InvalidInput::new(
                    "scope",
                    "level",
                    format!(
                        "unknown scope level `{}`; expected workspace, team, project, \
                         environment or service",
                        other.escape_debug()
                    ),
                ));
            }
        })
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Variables and layers

/// A variable's stored value: plain text, or a secret sealed for its row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigValue {
    Plain(String),
    Secret(SealedSecret),
}

impl ConfigValue {
    pub fn is_secret(&self) -> bool {
        matches!(self, ConfigValue::Secret(_))
    }

    /// What a user may see: the plain value, or [`MASK`] for a secret.
    pub fn masked(&self) -> String {
        match self {
            ConfigValue::Plain(v) => v.clone(),
            ConfigValue::Secret(_) => MASK.to_owned(),
        }
    }
}

/// One variable as stored in a layer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigVar {
    pub key: String,
    pub value: ConfigValue,
    pub updated_at: Timestamp,
}

impl ConfigVar {
    pub fn view(&self) -> ConfigVarView {
        ConfigVarView {
            key: self.key.clone(),
            value: self.value.masked(),
            secret: self.value.is_secret(),
            updated_at: self.updated_at,
        }
    }
}

/// A stored variable as shown to users; secrets are [`MASK`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigVarView {
    pub key: String,
    pub value: String,
    pub secret: bool,
    pub updated_at: Timestamp,
}

/// The variables set at one scope, keyed by variable name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigLayer {
    pub scope: Scope,
    pub vars: BTreeMap<String, ConfigVar>,
}

impl ConfigLayer {
    pub fn new(scope: Scope) -> Self {
        ConfigLayer {
            scope,
            vars: BTreeMap::new(),
        }
    }

    /// The layer's variables as users see them, sorted by key.
    pub fn view(&self) -> Vec<ConfigVarView> {
        self.vars.values().map(ConfigVar::view).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Resolution

/// The winning value of one key, where it came from, and what it shadows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedVar {
    pub key: String,
    pub value: ConfigValue,
    pub updated_at: Timestamp,
    /// The scope whose value won.
    pub source: Scope,
    /// Less specific scopes that also set this key, nearest first (so the first entry is the
    /// value you would get if `source` unset it).
    pub overridden: Vec<Scope>,
}

impl ResolvedVar {
    pub fn view(&self) -> ResolvedVarView {
        ResolvedVarView {
            key: self.key.clone(),
            value: self.value.masked(),
            secret: self.value.is_secret(),
            source: self.source,
            overridden: self.overridden.clone(),
        }
    }
}

/// A resolved variable as shown to users (`clank config explain`); secrets are [`MASK`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResolvedVarView {
    pub key: String,
    pub value: String,
    pub secret: bool,
    pub source: Scope,
    pub overridden: Vec<Scope>,
}

/// The outcome of the cascade for one service: what a deployment snapshots. Secrets stay sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedConfig {
    vars: BTreeMap<String, ResolvedVar>,
}

impl ResolvedConfig {
    pub fn get(&self, key: &str) -> Option<&ResolvedVar> {
        self.vars.get(key)
    }

    /// The layer `scope` held when this config was resolved: every variable whose winning
    /// value came from it (a scope's own keys always win below it, so none is lost). Secrets
    /// stay sealed for that scope's row, so they can be stored back as they are.
    pub fn layer_of(&self, scope: Scope) -> ConfigLayer {
        let vars = self
            .vars
            .values()
            .filter(|v| v.source == scope)
            .map(|v| {
                let var = ConfigVar {
                    key: v.key.clone(),
                    value: v.value.clone(),
                    updated_at: v.updated_at,
                };
                (v.key.clone(), var)
            })
            .collect();
        ConfigLayer { scope, vars }
    }

    /// Keys whose winning value differs between `self` and `other` (set, changed or unset),
    /// each with the scope it comes from in `other` (or in `self` if `other` lacks it).
    pub fn differing_keys(&self, other: &ResolvedConfig) -> Vec<(String, Scope)> {
        let keys: BTreeSet<&String> = self.vars.keys().chain(other.vars.keys()).collect();
        keys.into_iter()
            .filter_map(|k| {
                let (a, b) = (self.vars.get(k), other.vars.get(k));
                if a.map(|v| &v.value) == b.map(|v| &v.value) {
                    return None;
                }
                let source = b.or(a).map(|v| v.source)?;
                Some((k.clone(), source))
            })
            .collect()
    }

    /// Variables sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = &ResolvedVar> {
        self.vars.values()
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The masked, user-facing view, sorted by key.
    pub fn view(&self) -> Vec<ResolvedVarView> {
        self.vars.values().map(ResolvedVar::view).collect()
    }

    /// The environment for a workload, sorted by key, decrypting secrets now. Each secret is
    /// opened with the associated data of the scope it came from, which is the row it was sealed
    /// for.
    pub fn to_env(&self, keyring: &Keyring) -> Result<Vec<(String, EnvValue)>> {
        self.vars
            .values()
            .map(|var| {
                let value = match &var.value {
                    ConfigValue::Plain(v) => EnvValue::Plain(v.clone()),
                    ConfigValue::Secret(sealed) => {
                        EnvValue::Secret(keyring.open(sealed, &var.source.aad(&var.key))?)
                    }
                };
                Ok((var.key.clone(), value))
            })
            .collect()
    }
}

/// A value ready to hand to a workload. Only secrets are masked in `Debug`, so logs of the
/// environment stay useful without leaking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Plain(String),
    Secret(SecretString),
}

impl EnvValue {
    /// The value to pass to the workload.
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(v) => v,
            EnvValue::Secret(s) => s.expose(),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, EnvValue::Secret(_))
    }
}

/// Run the cascade. `layers` may come in any order; at most one layer per level.
///
/// A key set at several levels takes the most specific value; the others are recorded in
/// [`ResolvedVar::overridden`].
pub fn resolve(layers: &[ConfigLayer]) -> Result<ResolvedConfig> {
    let mut ordered: Vec<&ConfigLayer> = layers.iter().collect();
    ordered.sort_by_key(|layer| layer.scope.level());
    for pair in ordered.windows(2) {
        if pair[0].scope.level() == pair[1].scope.level() {
            // Two layers at one level have no defined precedence; silently picking one would
            // make the result depend on store order.
            return Err(InvalidInput::new(
                "layers",
                "duplicate_level",
                format!(
                    "two {} layers ({} and {}); the cascade takes at most one per level",
                    pair[0].scope.level(),
                    pair[0].scope,
                    pair[1].scope
                ),
            )
            .into());
        }
    }

    let mut vars: BTreeMap<String, ResolvedVar> = BTreeMap::new();
    for layer in ordered {
        for (key, var) in &layer.vars {
            if *key != var.key {
                // The AAD uses the variable's name; a mismatch would make secrets unopenable.
                return Err(InvalidInput::new(
                    format!("{}.vars.{key}", layer.scope),
                    "key_mismatch",
                    format!("variable stored under `{key}` is named `{}`", var.key),
                )
                .into());
            }
            let overridden = match vars.remove(key) {
                Some(previous) => {
                    let mut chain = Vec::with_capacity(previous.overridden.len() + 1);
                    chain.push(previous.source);
                    chain.extend(previous.overridden);
                    chain
                }
                None => Vec::new(),
            };
            vars.insert(
                key.clone(),
                ResolvedVar {
                    key: key.clone(),
                    value: var.value.clone(),
                    updated_at: var.updated_at,
                    source: layer.scope,
                    overridden,
                },
            );
        }
    }
    Ok(ResolvedConfig { vars })
}

// ---------------------------------------------------------------------------------------------
// Bulk edits

/// A new value for a variable, before sealing.
#[derive(Debug, Clone)]
pub enum NewValue {
    Plain(String),
    Secret(SecretString),
}

/// One edit in a bulk request.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    Set {
        key: String,
        value: NewValue,
    },
    /// Removing a key that is not set is a no-op, so a retried bulk request succeeds.
    Unset {
        key: String,
    },
}

impl ConfigChange {
    pub fn set_plain(key: impl Into<String>, value: impl Into<String>) -> Self {
        ConfigChange::Set {
            key: key.into(),
            value: NewValue::Plain(value.into()),
        }
    }

    pub fn set_secret(key: impl Into<String>, value: impl Into<SecretString>) -> Self {
        ConfigChange::Set {
            key: key.into(),
            value: NewValue::Secret(value.into()),
        }
    }

    pub fn unset(key: impl Into<String>) -> Self {
        ConfigChange::Unset { key: key.into() }
    }

    pub fn key(&self) -> &str {
        match self {
            ConfigChange::Set { key, .. } | ConfigChange::Unset { key } => key,
        }
    }
}

/// Apply a bulk set/unset to a layer, returning the new layer; `layer` is untouched.
///
/// All changes are validated (keys and values through [`crate::validate`]) before any is
/// applied, so a request either applies whole or not at all. Secrets are sealed here, with the
/// layer's scope and the variable name as associated data, so callers cannot seal a value for the
/// wrong row. `now` stamps `updated_at` (no clock is read).
pub fn apply_bulk(
    layer: &ConfigLayer,
    changes: &[ConfigChange],
    keyring: &Keyring,
    now: Timestamp,
) -> Result<ConfigLayer> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, change) in changes.iter().enumerate() {
        let field = format!("changes[{i}]");
        validate_env_key(&format!("{field}.key"), change.key())?;
        if let Some(first) = seen.insert(change.key(), i) {
            return Err(InvalidInput::new(
                format!("{field}.key"),
                "duplicate",
                format!(
                    "`{}` is already changed by changes[{first}]; change each key once per request",
                    change.key()
                ),
            )
            .into());
        }
        if let ConfigChange::Set { value, .. } = change {
            // Checked for secrets too: validate_env_value never echoes the value.
            let value = match value {
                NewValue::Plain(v) => v.as_str(),
                NewValue::Secret(s) => s.expose(),
            };
            validate_env_value(&format!("{field}.value"), value)?;
        }
    }

    let mut next = layer.clone();
    for change in changes {
        match change {
            ConfigChange::Set { key, value } => {
                let value = match value {
                    NewValue::Plain(v) => ConfigValue::Plain(v.clone()),
                    NewValue::Secret(s) => {
                        ConfigValue::Secret(keyring.seal(s.expose(), &layer.scope.aad(key))?)
                    }
                };
                next.vars.insert(
                    key.clone(),
                    ConfigVar {
                        key: key.clone(),
                        value,
                        updated_at: now,
                    },
                );
            }
            ConfigChange::Unset { key } => {
                next.vars.remove(key);
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{KeyId, SecretKey};

    const DB_PASSWORD: &str = "hunter2-do-not-leak";

    fn keyring() -> Keyring {
        Keyring::new(KeyId::new("k1").unwrap(), SecretKey::from_bytes([3; 32]))
    }

    struct Scopes {
        workspace: Scope,
        team: Scope,
        project: Scope,
        environment: Scope,
        service: Scope,
    }

    fn scopes() -> Scopes {
        Scopes {
            workspace: Scope::Workspace(WorkspaceId::new()),
            team: Scope::Team(TeamId::new()),
            project: Scope::Project(ProjectId::new()),
            environment: Scope::Environment(EnvironmentId::new()),
            service: Scope::Service(ServiceId::new()),
        }
    }

    fn plain(key: &str, value: &str) -> ConfigVar {
        ConfigVar {
            key: key.into(),
            value: ConfigValue::Plain(value.into()),
            updated_at: Timestamp(1),
        }
    }

    fn layer(scope: Scope, vars: &[ConfigVar]) -> ConfigLayer {
        ConfigLayer {
            scope,
            vars: vars.iter().map(|v| (v.key.clone(), v.clone())).collect(),
        }
    }

    fn secret_layer(scope: Scope, key: &str, value: &str, ring: &Keyring) -> ConfigLayer {
        apply_bulk(
            &ConfigLayer::new(scope),
            &[ConfigChange::set_secret(key, value)],
            ring,
            Timestamp(2),
        )
        .unwrap()
    }

    fn value_of(config: &ResolvedConfig, key: &str) -> String {
        config.get(key).unwrap().value.masked()
    }

    /// Each level sets `LEVEL` and a key only it and the levels above set, so every level's win
    /// is observable.
    fn five_layers(s: &Scopes) -> Vec<ConfigLayer> {
        vec![
            layer(
                s.workspace,
                &[plain("LEVEL", "workspace"), plain("FROM_WORKSPACE", "w")],
            ),
            layer(s.team, &[plain("LEVEL", "team"), plain("FROM_TEAM", "t")]),
            layer(
                s.project,
                &[plain("LEVEL", "project"), plain("FROM_PROJECT", "p")],
            ),
            layer(
                s.environment,
                &[
                    plain("LEVEL", "environment"),
                    plain("FROM_ENVIRONMENT", "e"),
                ],
            ),
            layer(
                s.service,
                &[plain("LEVEL", "service"), plain("FROM_SERVICE", "s")],
            ),
        ]
    }

    #[test]
    fn scope_levels_order_least_to_most_specific() {
        use ScopeLevel::*;
        assert!(
            Workspace < Team && Team < Project && Project < Environment && Environment < Service
        );
    }

    #[test]
    fn scope_string_form_round_trips_and_is_the_serde_form() {
        let s = scopes();
        for scope in [s.workspace, s.team, s.project, s.environment, s.service] {
            let text = scope.to_string();
            assert!(text.starts_with(&format!("{}:", scope.level())), "{text}");
            assert_eq!(text.parse::<Scope>().unwrap(), scope);
            assert_eq!(
                serde_json::to_string(&scope).unwrap(),
                format!("\"{text}\"")
            );
            assert_eq!(
                serde_json::from_str::<Scope>(&format!("\"{text}\"")).unwrap(),
                scope
            );
        }
        let id = ServiceId::new();
        assert_eq!(Scope::Service(id).to_string(), format!("service:{id}"));
    }

    #[test]
    fn malformed_scope_strings_are_rejected_with_the_rule() {
        assert_eq!("service".parse::<Scope>().unwrap_err().rule, "format");
        assert_eq!(
            "galaxy:0190a6a4-0000-7000-8000-000000000001"
                .parse::<Scope>()
                .unwrap_err()
                .rule,
            "level"
        );
        let bad_id = "team:nope".parse::<Scope>().unwrap_err();
        assert_eq!((bad_id.rule, bad_id.field.as_str()), ("uuid", "scope.id"));
    }

    #[test]
    fn each_level_overrides_all_less_specific_levels() {
        let s = scopes();
        let all = five_layers(&s);
        // Drop the most specific layers one at a time: the next level down must win.
        let expected = [
            ("service", s.service),
            ("environment", s.environment),
            ("project", s.project),
            ("team", s.team),
            ("workspace", s.workspace),
        ];
        for (dropped, (winner, source)) in expected.into_iter().enumerate() {
            let config = resolve(&all[..all.len() - dropped]).unwrap();
            assert_eq!(value_of(&config, "LEVEL"), winner);
            assert_eq!(config.get("LEVEL").unwrap().source, source);
        }
    }

    #[test]
    fn keys_set_at_one_level_are_inherited_with_their_source() {
        let s = scopes();
        let config = resolve(&five_layers(&s)).unwrap();
        assert_eq!(config.len(), 6);
        for (key, value, source) in [
            ("FROM_WORKSPACE", "w", s.workspace),
            ("FROM_TEAM", "t", s.team),
            ("FROM_PROJECT", "p", s.project),
            ("FROM_ENVIRONMENT", "e", s.environment),
            ("FROM_SERVICE", "s", s.service),
        ] {
            let var = config.get(key).unwrap();
            assert_eq!(
                (var.value.masked().as_str(), var.source),
                (value, source),
                "{key}"
            );
            assert!(var.overridden.is_empty(), "{key}");
        }
    }

    #[test]
    fn override_chain_lists_shadowed_scopes_nearest_first() {
        let s = scopes();
        let config = resolve(&five_layers(&s)).unwrap();
        let level = config.get("LEVEL").unwrap();
        assert_eq!(level.source, s.service);
        assert_eq!(
            level.overridden,
            vec![s.environment, s.project, s.team, s.workspace]
        );

        // Gaps in the chain are simply absent.
        let sparse = resolve(&[
            layer(s.workspace, &[plain("X", "w")]),
            layer(s.environment, &[plain("X", "e")]),
            layer(s.service, &[plain("Y", "s")]),
        ])
        .unwrap();
        let x = sparse.get("X").unwrap();
        assert_eq!(
            (x.source, x.overridden.clone()),
            (s.environment, vec![s.workspace])
        );
    }

    #[test]
    fn layer_input_order_does_not_change_the_result() {
        let s = scopes();
        let forward = five_layers(&s);
        let expected = resolve(&forward).unwrap();
        let mut reversed = forward.clone();
        reversed.reverse();
        assert_eq!(resolve(&reversed).unwrap(), expected);
        let mut shuffled = forward;
        shuffled.swap(0, 3);
        shuffled.swap(1, 4);
        assert_eq!(resolve(&shuffled).unwrap(), expected);
    }

    #[test]
    fn two_layers_at_the_same_level_are_rejected() {
        let s = scopes();
        let other_team = Scope::Team(TeamId::new());
        let err = resolve(&[
            layer(s.team, &[plain("A", "1")]),
            layer(s.service, &[]),
            layer(other_team, &[plain("A", "2")]),
        ])
        .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
        let msg = err.to_string();
        assert!(msg.contains("two team layers"), "{msg}");
        assert!(
            msg.contains(&s.team.to_string()) && msg.contains(&other_team.to_string()),
            "{msg}"
        );
    }

    #[test]
    fn a_layer_whose_map_key_disagrees_with_the_variable_name_is_rejected() {
        let s = scopes();
        let mut bad = ConfigLayer::new(s.service);
        bad.vars.insert("A".into(), plain("B", "1"));
        assert_eq!(
            resolve(&[bad]).unwrap_err().kind(),
            crate::ErrorKind::Invalid
        );
    }

    #[test]
    fn no_layers_resolve_to_an_empty_config() {
        assert!(resolve(&[]).unwrap().is_empty());
    }

    #[test]
    fn view_masks_secrets_and_keeps_provenance() {
        let s = scopes();
        let ring = keyring();
        let config = resolve(&[
            layer(
                s.project,
                &[plain("DB_PASSWORD", "placeholder"), plain("MODE", "prod")],
            ),
            secret_layer(s.service, "DB_PASSWORD", DB_PASSWORD, &ring),
        ])
        .unwrap();

        let view = config.view();
        assert_eq!(view.len(), 2);
        let db = &view[0];
        assert_eq!(
            (db.key.as_str(), db.value.as_str(), db.secret),
            ("DB_PASSWORD", MASK, true)
        );
        assert_eq!(
            (db.source, db.overridden.clone()),
            (s.service, vec![s.project])
        );
        assert_eq!((view[1].value.as_str(), view[1].secret), ("prod", false));

        let json = serde_json::to_string(&view).unwrap();
        assert!(!json.contains(DB_PASSWORD), "{json}");
        assert!(
            !json.contains("ciphertext"),
            "views carry no ciphertext either: {json}"
        );
        assert!(!format!("{config:?}").contains(DB_PASSWORD));
    }

    #[test]
    fn config_var_view_masks_secrets() {
        let ring = keyring();
        let layer = secret_layer(scopes().service, "API_TOKEN", DB_PASSWORD, &ring);
        let views = layer.view();
        assert_eq!((views[0].value.as_str(), views[0].secret), (MASK, true));
        let json = serde_json::to_string(&views).unwrap();
        assert!(
            !json.contains(DB_PASSWORD) && !json.contains("ciphertext"),
            "{json}"
        );
        assert_eq!(plain("A", "b").view().value, "b");
    }

    #[test]
    fn resolved_config_snapshot_keeps_secrets_sealed_through_serde() {
        let s = scopes();
        let ring = keyring();
        let config =
            resolve(&[secret_layer(s.service, "DB_PASSWORD", DB_PASSWORD, &ring)]).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert!(!json.contains(DB_PASSWORD), "{json}");
        let back: ResolvedConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
        assert_eq!(back.to_env(&ring).unwrap()[0].1.expose(), DB_PASSWORD);
    }

    #[test]
    fn to_env_decrypts_secrets_with_the_scope_they_came_from() {
        let s = scopes();
        let ring = keyring();
        let config = resolve(&[
            layer(s.workspace, &[plain("LOG_LEVEL", "info")]),
            secret_layer(s.environment, "DB_PASSWORD", DB_PASSWORD, &ring),
            layer(s.service, &[plain("PORT", "8080")]),
        ])
        .unwrap();

        let env = config.to_env(&ring).unwrap();
        let pairs: Vec<(&str, &str, bool)> = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose(), v.is_secret()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("DB_PASSWORD", DB_PASSWORD, true),
                ("LOG_LEVEL", "info", false),
                ("PORT", "8080", false),
            ]
        );
        assert!(!format!("{env:?}").contains(DB_PASSWORD));
    }

    #[test]
    fn to_env_fails_when_a_secret_was_sealed_for_another_scope() {
        let s = scopes();
        let ring = keyring();
        // A sealed value copied from the environment row into the service row must not open.
        let mut copied = secret_layer(s.environment, "DB_PASSWORD", DB_PASSWORD, &ring);
        copied.scope = s.service;
        let err = resolve(&[copied]).unwrap().to_env(&ring).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("DB_PASSWORD") && msg.contains(&s.service.to_string()),
            "{msg}"
        );
        assert!(!msg.contains(DB_PASSWORD), "{msg}");
    }

    #[test]
    fn apply_bulk_sets_and_unsets_without_touching_the_input() {
        let s = scopes();
        let ring = keyring();
        let before = layer(s.service, &[plain("OLD", "1"), plain("KEEP", "k")]);
        let after = apply_bulk(
            &before,
            &[
                ConfigChange::unset("OLD"),
                ConfigChange::set_plain("NEW", "2"),
                ConfigChange::set_secret("TOKEN", DB_PASSWORD),
                ConfigChange::unset("NEVER_SET"),
            ],
            &ring,
            Timestamp(99),
        )
        .unwrap();

        assert_eq!(before.vars.len(), 2, "input layer is unchanged");
        assert_eq!(
            after.vars.keys().collect::<Vec<_>>(),
            ["KEEP", "NEW", "TOKEN"]
        );
        assert_eq!(after.vars["NEW"].updated_at, Timestamp(99));
        assert_eq!(after.vars["KEEP"].updated_at, Timestamp(1));
        let ConfigValue::Secret(sealed) = &after.vars["TOKEN"].value else {
            panic!("TOKEN should be sealed");
        };
        assert_eq!(
            ring.open(sealed, &s.service.aad("TOKEN")).unwrap().expose(),
            DB_PASSWORD
        );
    }

    #[test]
    fn apply_bulk_rejects_the_whole_request_on_one_bad_key() {
        let ring = keyring();
        let before = ConfigLayer::new(scopes().service);
        for (bad, rule) in [
            ("1ABC", "leading_digit"),
            ("A-B", "charset"),
            ("", "empty"),
            ("A=B", "charset"),
            ("CLANK_SERVICE", "reserved"),
        ] {
            let err = apply_bulk(
                &before,
                &[
                    ConfigChange::set_plain("GOOD", "1"),
                    ConfigChange::set_plain(bad, "x"),
                ],
                &ring,
                Timestamp(5),
            )
            .unwrap_err();
            let crate::Error::Invalid(invalid) = err else {
                panic!("expected Invalid for {bad:?}");
            };
            assert_eq!(
                (invalid.field.as_str(), invalid.rule),
                ("changes[1].key", rule)
            );
        }
        for ok in ["A", "_A", "a_b9", "DATABASE_URL"] {
            assert!(
                apply_bulk(
                    &before,
                    &[ConfigChange::set_plain(ok, "")],
                    &ring,
                    Timestamp(5)
                )
                .is_ok()
            );
        }
    }

    #[test]
    fn apply_bulk_rejects_a_key_changed_twice_in_one_request() {
        let err = apply_bulk(
            &ConfigLayer::new(scopes().service),
            &[ConfigChange::set_plain("A", "1"), ConfigChange::unset("A")],
            &keyring(),
            Timestamp(5),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("changes[1].key"));
        assert!(err.to_string().contains("changes[0]"), "{err}");
    }

    #[test]
    fn apply_bulk_rejects_nul_bytes_without_echoing_secrets() {
        let err = apply_bulk(
            &ConfigLayer::new(scopes().service),
            &[ConfigChange::set_secret("TOKEN", "abc\0hunter2")],
            &keyring(),
            Timestamp(5),
        )
        .unwrap_err();
        assert_eq!(err.field(), Some("changes[0].value"));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
