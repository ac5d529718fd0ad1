//! Cloning an environment: a new environment of the same project with a copy of every
//! service (settings, processes, dependencies, server, source), each volume under a new empty
//! name (empty, or with a copy of the source's data when asked), domains rewritten by a
//! pattern or left out (domains are unique across the instance), and the environment's and
//! services' config re-sealed for their new scopes. Everything is written in one transaction,
//! after the data copies (which are removed again if that write fails); deploying the copies
//! is optional.
//!
//! [`Platform::clone_into`] is the reusable part: pull-request previews call it with a
//! `Preview` environment and their own domain pattern.

use std::collections::BTreeMap;

use clank_api::environments::{CloneEnvironment, CloneReport, ClonedService, CopiedVolume};
use clank_core::address::EnvironmentAddress;
use clank_core::config::{ConfigLayer, ConfigValue, Scope};
use clank_core::model::{Endpoint, Environment, Service, Stack, Trigger, VolumeMount};
use clank_core::runtime::{Owner, volume_runtime_name};
use clank_core::secret::Keyring;
use clank_core::store::catalog::{Batch, Page};
use clank_core::validate::{VOLUME_NAME_MAX_LEN, validate_domain, validate_volume_name};
use clank_core::{Error, InvalidInput, Result, RuntimeFailure, Timestamp};
use tracing::warn;

use crate::Platform;

/// How [`Platform::clone_into`] copies an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloneOptions {
    /// The copies' domains: `{service}` (required) and `{env}` replaced, the result checked as
    /// a domain. `None`: the copies have no domain-bearing endpoint.
    pub domain_pattern: Option<String>,
    /// Copy the environment's and each service's config layer (secrets re-sealed).
    pub copy_config: bool,
    /// Copy each volume's data into the copy's new volume (platform-host services only).
    pub copy_volumes: bool,
}

/// What [`Platform::clone_into`] wrote besides the services.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CloneOutcome {
    /// The copies, in the source's slug order.
    pub services: Vec<Service>,
    /// Config keys copied over every scope.
    pub config_keys: usize,
    /// What was not copied, and why.
    pub notes: Vec<String>,
    /// The volumes whose data was copied.
    pub volumes_copied: Vec<CopiedVolume>,
}

impl Platform {
    /// Clone the environment at `source` into a new persistent environment of the same
    /// project named `request.name`; deploys every copy when `request.deploy`.
    pub async fn clone_environment(
        &self,
        source: &EnvironmentAddress,
        request: CloneEnvironment,
    ) -> Result<CloneReport> {
        let (project, _) = self.environment(source).await?;
        crate::live(&project)?;
        let target = Environment::new(project.id, &request.name, Timestamp::now())?;
        let options = CloneOptions {
            domain_pattern: request.domain_pattern,
            copy_config: request.copy_config,
            copy_volumes: request.copy_volumes,
        };
        let outcome = self.clone_into(source, target, &options).await?;
        let target_addr = source.project_address().environment(&request.name)?;
        let mut services = Vec::with_capacity(outcome.services.len());
        for copy in &outcome.services {
            let addr = target_addr.service(&copy.slug)?;
            let deployment = if request.deploy {
                let d = self
                    .engine
                    .deploy(copy.id, Trigger::Manual { by: None })
                    .await?;
                Some(d.number)
            } else {
                None
            };
            services.push(ClonedService {
                service: addr.to_string(),
                from: source.service(&copy.slug)?.to_string(),
                domains: copy
                    .endpoint
                    .as_ref()
                    .map(endpoint_names)
                    .unwrap_or_default(),
                volumes: copy.volumes.iter().map(|v| v.name.clone()).collect(),
                deployment,
            });
        }
        Ok(CloneReport {
            environment: target_addr.to_string(),
            source: source.to_string(),
            services,
            config_keys: outcome.config_keys,
            notes: outcome.notes,
            volumes_copied: outcome.volumes_copied,
        })
    }

    /// Create `target` (an environment of `source`'s project, persistent or a preview, not
    /// stored yet) with a copy of every live service of `source`, and, with
    /// `options.copy_config`, the environment's and each service's config layer re-sealed for
    /// the new scopes — all in one write, so a refused domain or volume name leaves nothing
    /// behind. Volumes get new names (`{name}-{env}`, shortened to fit), so the copies never
    /// share the source's data: they start empty, or with `options.copy_volumes` with a copy
    /// of it made before that write (and removed if it fails). Nothing is deployed.
    pub(crate) async fn clone_into(
        &self,
        source: &EnvironmentAddress,
        target: Environment,
        options: &CloneOptions,
    ) -> Result<CloneOutcome> {
        let (project, source_env) = self.environment(source).await?;
        crate::deletion::live_environment(&source_env)?;
        if target.project_id != project.id {
            return Err(InvalidInput::new(
                "environment",
                "other_project",
                "a clone is an environment of the source's own project",
            )
            .into());
        }
        if let Some(pattern) = &options.domain_pattern {
            check_pattern(pattern)?;
        }
        let sources_on_servers = |s: &Service| s.server_id.is_some() && !s.volumes.is_empty();
        let now = Timestamp::now();
        let sources: Vec<Service> = self
            .catalog
            .services_in_environment(source_env.id, Page::all())
            .await?
            .items
            .into_iter()
            .map(|s| s.value)
            .filter(|s| !s.is_deleted())
            .collect();
        if options.copy_volumes
            && let Some(remote) = sources.iter().find(|s| sources_on_servers(s))
        {
            return Err(InvalidInput::new(
                "copy_volumes",
                "remote_server",
                format!(
                    "service `{}` runs on a remote server, and volume data is copied only on \
                     the platform host; clone without `copy_volumes` and restore the data there \
                     (a dump, or a copy of the volume on that server)",
                    remote.slug
                ),
            )
            .into());
        }
        let mut outcome = CloneOutcome::default();
        let mut pairs = Vec::new();
        let mut batch = Batch::new();
        batch.create(&target)?;
        let mut layers = Vec::new();
        if options.copy_config
            && let Some(layer) = self
                .catalog
                .config_layer(Scope::Environment(source_env.id))
                .await?
        {
            layers.push(reseal(
                &layer.value,
                Scope::Environment(target.id),
                &self.keyring,
            )?);
        }
        for original in &sources {
            let mut copy = Service::new(
                original.workspace_id,
                original.project_id,
                target.id,
                &original.slug,
                original.source.clone(),
                now,
            )?;
            copy.name = original.name.clone();
            copy.settings = original.settings.clone();
            copy.processes = original.processes.clone();
            copy.server_id = original.server_id;
            copy.depends_on = original.depends_on.clone();
            copy.volumes = original
                .volumes
                .iter()
                .map(|v| VolumeMount {
                    name: cloned_volume_name(&v.name, &target.name),
                    ..v.clone()
                })
                .collect();
            copy.endpoint = match &original.endpoint {
                None => None,
                Some(endpoint) => {
                    let (endpoint, note) = clone_endpoint(
                        endpoint,
                        options.domain_pattern.as_deref(),
                        &original.slug,
                        &target.name,
                    )?;
                    outcome.notes.extend(note);
                    endpoint
                }
            };
            copy.validate()
                .map_err(|e| e.within(&format!("services.{}", original.slug)))?;
            if options.copy_volumes {
                pairs.extend(
                    original
                        .volumes
                        .iter()
                        .zip(&copy.volumes)
                        .map(|(from, to)| (original, from.name.clone(), to.name.clone())),
                );
            }
            batch.create(&copy)?;
            if options.copy_config
                && let Some(layer) = self
                    .catalog
                    .config_layer(Scope::Service(original.id))
                    .await?
            {
                layers.push(reseal(
                    &layer.value,
                    Scope::Service(copy.id),
                    &self.keyring,
                )?);
            }
            outcome.services.push(copy);
        }
        for layer in layers.iter().filter(|l| !l.vars.is_empty()) {
            outcome.config_keys += layer.vars.len();
            batch.create(layer)?;
        }
        let stacks = self
            .catalog
            .find::<Stack>("environment", &source_env.id.to_string(), Page::all())
            .await?;
        for stack in stacks.items {
            outcome.notes.push(format!(
                "stack `{}`: its services are copied as ordinary services; the stack record \
                 (template and upgrade history) is not",
                stack.slug
            ));
        }
        let labels = Owner::labels_for_project(project.workspace_id, project.id);
        let copied = self.copy_volumes(&pairs, &labels, &mut outcome).await;
        let written = match copied {
            Ok(()) => self.catalog.commit(batch).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            for v in &outcome.volumes_copied {
                let name = volume_runtime_name(project.workspace_id, &v.to);
                if let Err(e) = self.engine.runtime().remove_volume(&name).await {
                    warn!(volume = %name, error = %e, "Could not remove the copy of a failed clone.");
                }
            }
            return Err(e);
        }
        Ok(outcome)
    }

    /// Copy each `(service, from, to)` volume's data on the platform host, recording each
    /// copy in `outcome` (also those made before a failure, for the caller to remove).
    async fn copy_volumes(
        &self,
        pairs: &[(&Service, String, String)],
        labels: &BTreeMap<String, String>,
        outcome: &mut CloneOutcome,
    ) -> Result<()> {
        let runtime = self.engine.runtime();
        for (service, from, to) in pairs {
            let target = volume_runtime_name(service.workspace_id, to);
            // Under its scoped name, or the plain name an earlier version gave it.
            let scoped = volume_runtime_name(service.workspace_id, from);
            let mut copied = runtime.copy_volume(&scoped, &target, labels).await;
            if scoped != *from && is_absent(&copied) {
                copied = runtime.copy_volume(from, &target, labels).await;
            }
            let bytes = match copied {
                Ok(bytes) => bytes,
                Err(e) if e.runtime_failure() == Some(RuntimeFailure::NotFound) => {
                    outcome.notes.push(format!(
                        "{}: volume `{from}` holds no data yet (never deployed); `{to}` starts empty",
                        service.slug
                    ));
                    continue;
                }
                Err(Error::Runtime { failure, message }) => {
                    return Err(Error::runtime(
                        failure,
                        format!(
                            "service `{}`: {message}; nothing was cloned (retry, or clone without \
                             `copy_volumes`)",
                            service.slug
                        ),
                    ));
                }
                Err(e) => return Err(e),
            };
            if service.active_deployment.is_some() && service.stopped_at.is_none() {
                outcome.notes.push(format!(
                    "{}: volume `{from}` was copied while the service ran; files written during \
                     the copy may be inconsistent (for a database, stop it first or restore a dump)",
                    service.slug
                ));
            }
            outcome.volumes_copied.push(CopiedVolume {
                service: service.slug.clone(),
                from: from.clone(),
                to: to.clone(),
                bytes,
            });
        }
        Ok(())
    }
}

/// Whether a copy failed because its source volume does not exist.
fn is_absent(copied: &Result<u64>) -> bool {
    matches!(copied, Err(e) if e.runtime_failure() == Some(RuntimeFailure::NotFound))
}

/// A pattern must name the service, so two services never get the same domain.
fn check_pattern(pattern: &str) -> Result<(), InvalidInput> {
    if !pattern.contains("{service}") {
        return Err(InvalidInput::new(
            "domain_pattern",
            "missing_service",
            format!(
                "`{}` must contain `{{service}}`, so each copied service gets its own domain \
                 (e.g. `{{service}}-{{env}}.example.com`)",
                pattern.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// `pattern` with `{service}` and `{env}` replaced, checked as a domain.
pub(crate) fn domain_from_pattern(
    pattern: &str,
    service: &str,
    env: &str,
) -> Result<String, InvalidInput> {
    check_pattern(pattern)?;
    let domain = pattern.replace("{service}", service).replace("{env}", env);
    validate_domain("domain_pattern", &domain)
}

/// A copy's endpoint: domain-bearing modes get the pattern's domain (or none without a
/// pattern); a host port or a tailnet name cannot be shared, so those are left out. Returns a
/// note for what was left out.
fn clone_endpoint(
    endpoint: &Endpoint,
    pattern: Option<&str>,
    service: &str,
    env: &str,
) -> Result<(Option<Endpoint>, Option<String>), InvalidInput> {
    let domain = pattern
        .map(|p| domain_from_pattern(p, service, env))
        .transpose()?;
    Ok(match (endpoint, domain) {
        (Endpoint::PublicDirect { tls, .. }, Some(d)) => (
            Some(Endpoint::PublicDirect {
                domains: vec![d],
                tls: tls.clone(),
            }),
            None,
        ),
        (Endpoint::LanOnly { .. }, Some(d)) => (Some(Endpoint::LanOnly { domains: vec![d] }), None),
        (Endpoint::CloudflareTunnel { token_secret, .. }, Some(d)) => (
            Some(Endpoint::CloudflareTunnel {
                hostname: d,
                token_secret: token_secret.clone(),
            }),
            None,
        ),
        (
            Endpoint::PublicDirect { .. }
            | Endpoint::LanOnly { .. }
            | Endpoint::CloudflareTunnel { .. },
            None,
        ) => (
            None,
            Some(format!(
                "{service}: domains left out (no domain pattern; domains are unique across the instance)"
            )),
        ),
        (Endpoint::ByoProxy { .. } | Endpoint::TailscaleHttps { .. }, _) => (
            None,
            Some(format!(
                "{service}: {:?} endpoint left out (its host port or tailnet name belongs to the source)",
                endpoint.mode()
            )),
        ),
    })
}

/// The domains (or tunnel hostname) an endpoint answers on.
pub(crate) fn endpoint_names(endpoint: &Endpoint) -> Vec<String> {
    match endpoint {
        Endpoint::CloudflareTunnel { hostname, .. } => vec![hostname.clone()],
        other => other.routed_domains().to_vec(),
    }
}

/// `{name}-{env}`, the name shortened so the whole stays a valid volume name.
pub(crate) fn cloned_volume_name(name: &str, env: &str) -> String {
    let room = VOLUME_NAME_MAX_LEN.saturating_sub(env.len() + 1);
    let mut base: String = name.chars().take(room).collect();
    while base.ends_with(['-', '.', '_']) {
        base.pop();
    }
    let candidate = format!("{base}-{env}");
    match validate_volume_name("name", &candidate) {
        Ok(()) => candidate,
        // An environment slug is at most as long as a volume name allows; keep the slug.
        Err(_) => env.chars().take(VOLUME_NAME_MAX_LEN).collect(),
    }
}

/// `layer` copied to `scope`: plain values as they are, secrets opened and sealed again with
/// the new scope's associated data (a sealed value is bound to its row).
pub(crate) fn reseal(layer: &ConfigLayer, scope: Scope, keyring: &Keyring) -> Result<ConfigLayer> {
    let mut vars = BTreeMap::new();
    for (key, var) in &layer.vars {
        let value = match &var.value {
            ConfigValue::Plain(v) => ConfigValue::Plain(v.clone()),
            ConfigValue::Secret(sealed) => {
                let plain = keyring.open(sealed, &layer.scope.aad(key))?;
                ConfigValue::Secret(keyring.seal(plain.expose(), &scope.aad(key))?)
            }
        };
        let mut copy = var.clone();
        copy.value = value;
        vars.insert(key.clone(), copy);
    }
    Ok(ConfigLayer { scope, vars })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::config::{ConfigChange, apply_bulk};
    use clank_core::id::{EnvironmentId, ServiceId};
    use clank_core::secret::{KeyId, SecretKey};

    #[test]
    fn a_cloned_volume_is_named_for_the_new_environment_and_stays_valid() {
        assert_eq!(
            cloned_volume_name("clank-shop-api-data", "qa"),
            "clank-shop-api-data-qa"
        );
        let long = "v".repeat(VOLUME_NAME_MAX_LEN);
        let named = cloned_volume_name(&long, "pr-42");
        assert!(named.ends_with("-pr-42"), "{named}");
        assert!(validate_volume_name("name", &named).is_ok());
    }

    #[test]
    fn a_domain_pattern_names_the_service_and_must_give_a_domain() {
        assert_eq!(
            domain_from_pattern("{service}-{env}.example.com", "api", "qa").unwrap(),
            "api-qa.example.com"
        );
        assert_eq!(
            domain_from_pattern("{env}.example.com", "api", "qa")
                .unwrap_err()
                .rule,
            "missing_service"
        );
        assert!(domain_from_pattern("{service} bad", "api", "qa").is_err());
    }

    #[test]
    fn without_a_pattern_domains_are_left_out_and_a_host_port_never_copied() {
        let public = Endpoint::PublicDirect {
            domains: vec!["api.example.com".into()],
            tls: Default::default(),
        };
        let (copy, note) = clone_endpoint(&public, None, "api", "qa").unwrap();
        assert!(copy.is_none());
        assert!(note.unwrap().contains("domains left out"));
        let (copy, _) =
            clone_endpoint(&public, Some("{service}.qa.example.com"), "api", "qa").unwrap();
        assert_eq!(endpoint_names(&copy.unwrap()), ["api.qa.example.com"]);
        let byo = Endpoint::ByoProxy {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8000,
        };
        assert!(
            clone_endpoint(&byo, Some("{service}.x.io"), "api", "qa")
                .unwrap()
                .0
                .is_none()
        );
    }

    #[test]
    fn a_resealed_secret_opens_only_under_its_new_scope() {
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), SecretKey::from_bytes([7; 32]));
        let from = Scope::Environment(EnvironmentId::new());
        let layer = apply_bulk(
            &ConfigLayer::new(from),
            &[
                ConfigChange::set_secret("API_KEY", "s3cret-value"),
                ConfigChange::set_plain("MODE", "staging"),
            ],
            &keyring,
            Timestamp(1),
        )
        .unwrap();
        let to = Scope::Service(ServiceId::new());
        let copy = reseal(&layer, to, &keyring).unwrap();
        assert_eq!(copy.scope, to);
        assert_eq!(
            copy.vars["MODE"].value,
            ConfigValue::Plain("staging".into())
        );
        let ConfigValue::Secret(sealed) = &copy.vars["API_KEY"].value else {
            panic!("still a secret");
        };
        assert_eq!(
            keyring.open(sealed, &to.aad("API_KEY")).unwrap().expose(),
            "s3cret-value"
        );
        assert!(keyring.open(sealed, &from.aad("API_KEY")).is_err());
    }
}
