//! Environments beyond creating one: cloning an environment with its services and config.

/// Clone an environment into a new one of the same project: its services (settings,
/// processes, dependencies, server), their volumes under new names (empty unless
/// `copy_volumes`), and its config (secrets re-sealed for the new environment).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloneEnvironment {
    /// The new environment's slug, unique in the project.
    pub name: String,
    /// How the copies' domains are named: `{service}` and `{env}` are replaced
    /// (`{service}-{env}.example.com`). Absent: the copies have no domains (domains are
    /// unique across the instance, so they cannot be copied as they are).
    #[serde(default)]
    pub domain_pattern: Option<String>,
    /// Copy the environment's and each service's config (default: yes).
    #[serde(default = "yes")]
    pub copy_config: bool,
    /// Deploy every copied service afterwards (default: no).
    #[serde(default)]
    pub deploy: bool,
    /// Copy each volume's data into the clone's new volume (default: no, the copies start
    /// empty). The data is copied as it is at that moment: a service still writing (a
    /// database) may leave its copy inconsistent, which the report notes. Services on a
    /// remote server are refused.
    #[serde(default)]
    pub copy_volumes: bool,
}

fn yes() -> bool {
    true
}

impl CloneEnvironment {
    /// A clone named `name` with the defaults: config copied, no domains, nothing deployed.
    pub fn named(name: impl Into<String>) -> Self {
        CloneEnvironment {
            name: name.into(),
            domain_pattern: None,
            copy_config: true,
            deploy: false,
            copy_volumes: false,
        }
    }
}

/// One service the clone created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClonedService {
    /// The copy's address.
    pub service: String,
    /// The service it was copied from.
    pub from: String,
    /// The copy's domains (rewritten by the pattern; empty without one).
    pub domains: Vec<String>,
    /// The copy's volume names (new; empty unless `copy_volumes`).
    pub volumes: Vec<String>,
    /// The deployment started for it, when `deploy` was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<u64>,
}

/// What a clone created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CloneReport {
    /// The new environment's address (`ws/shop/qa`).
    pub environment: String,
    pub source: String,
    pub services: Vec<ClonedService>,
    /// Config keys copied, over every scope (environment and services); secrets counted, never shown.
    pub config_keys: usize,
    /// What was not copied, and why (`stack wordpress: stacks are not cloned`).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The volumes whose data was copied (`copy_volumes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_copied: Vec<CopiedVolume>,
}

/// One volume's data copied into a clone.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CopiedVolume {
    /// The service copied (its slug).
    pub service: String,
    /// The source's volume name and the copy's.
    pub from: String,
    pub to: String,
    /// Bytes moved (the runtime's archive of the data, so a little more than the files).
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_copies_config_and_deploys_nothing_by_default() {
        let c: CloneEnvironment = serde_json::from_str(r#"{"name":"qa"}"#).unwrap();
        assert_eq!(c, CloneEnvironment::named("qa"));
    }
}
