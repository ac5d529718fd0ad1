//! Services — the deployable unit — with their settings, volumes, endpoint and process types.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::InvalidInput;
use crate::id::{DeploymentId, EnvironmentId, ProjectId, ServerId, ServiceId, WorkspaceId};
use crate::image::ImageRef;
use crate::time::Timestamp;
use crate::validate;

/// Where a service's image comes from (`resource_type` in the product documents).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServiceSource {
    /// A pre-built image, run as is.
    DockerImage {
        image: ImageRef,
        /// Name of a config secret (set on the service or a scope above it) holding
        /// `username:password` (or `username:token`) for a private registry. The value reaches
        /// the runtime's pull only, never a log line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_secret: Option<String>,
    },
    /// A repository Clank clones and builds.
    Git {
        repo_url: String,
        branch: String,
        /// Path of a Dockerfile inside the repository; detected framework when absent.
        dockerfile_path: Option<String>,
        /// Build context inside the repository (default: the root).
        build_context: Option<String>,
        /// Name of a config secret (set on the service or a scope above it) holding an access
        /// token for a private repository. The token reaches git only through its environment,
        /// never its arguments or a log line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_secret: Option<String>,
    },
    /// A one-click template (image + defaults), recorded so upgrades know where it came from.
    Template {
        template: String,
        version: String,
        image: ImageRef,
        /// As [`ServiceSource::DockerImage`]'s: a config secret with `username:password` for
        /// a template whose image is in a private registry.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_secret: Option<String>,
    },
}

impl ServiceSource {
    pub fn needs_build(&self) -> bool {
        matches!(self, ServiceSource::Git { .. })
    }

    /// The config secret holding `username:password` for pulling the service's image from a
    /// private registry (image and template services); `None` for git services, whose built
    /// image is local.
    pub fn registry_credentials(&self) -> Option<&str> {
        match self {
            ServiceSource::DockerImage {
                credentials_secret, ..
            }
            | ServiceSource::Template {
                credentials_secret, ..
            } => credentials_secret.as_deref(),
            ServiceSource::Git { .. } => None,
        }
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        match self {
            ServiceSource::DockerImage {
                credentials_secret, ..
            } => validate_registry_credentials(credentials_secret.as_deref()),
            ServiceSource::Git {
                repo_url,
                branch,
                dockerfile_path,
                build_context,
                credentials_secret,
            } => {
                validate::validate_git_url("source.repo_url", repo_url)?;
                validate::validate_git_ref("source.branch", branch)?;
                if let Some(key) = credentials_secret {
                    validate::validate_env_key("source.credentials_secret", key)?;
                    // A token sent over plain http or git:// is readable on the way.
                    let scheme = repo_url.split_once("://").map(|(s, _)| s);
                    if matches!(scheme, Some("http" | "git" | "file")) {
                        return Err(InvalidInput::new(
                            "source.credentials_secret",
                            "insecure_transport",
                            format!(
                                "credentials are only sent over https or ssh, and `{}` is {}://; \
                                 use the repository's https:// or ssh:// URL",
                                repo_url,
                                scheme.unwrap_or_default()
                            ),
                        ));
                    }
                }
                for (field, path) in [
                    ("source.dockerfile_path", dockerfile_path),
                    ("source.build_context", build_context),
                ] {
                    if let Some(p) = path {
                        validate_repo_path(field, p)?;
                    }
                }
                Ok(())
            }
            ServiceSource::Template {
                template,
                version,
                credentials_secret,
                ..
            } => {
                validate::validate_slug("source.template", template)?;
                validate::validate_display_name("source.version", version)?;
                validate_registry_credentials(credentials_secret.as_deref())
            }
        }
    }
}

/// A registry credentials secret is named like any config variable.
fn validate_registry_credentials(key: Option<&str>) -> Result<(), InvalidInput> {
    match key {
        Some(key) => validate::validate_env_key("source.credentials_secret", key),
        None => Ok(()),
    }
}

fn default_port() -> Option<u16> {
    Some(8080)
}
fn default_health_path() -> String {
    "/health".to_owned()
}
fn default_interval() -> u32 {
    10
}
fn default_retries() -> u32 {
    3
}
fn default_build_timeout() -> u32 {
    600
}
fn default_deploy_timeout() -> u32 {
    300
}
fn default_cpu() -> f64 {
    0.5
}
fn default_memory() -> u32 {
    512
}
fn default_true() -> bool {
    true
}

/// Every setting from the product's service-settings table, with its documented default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// The port the application listens on inside the container; `None` for workers.
    #[serde(default = "default_port")]
    pub port: Option<u16>,
    /// HTTP path probed for health; empty = no HTTP check (TCP on `port`, or running-and-stable).
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
    #[serde(default = "default_interval")]
    pub health_check_interval_s: u32,
    #[serde(default = "default_retries")]
    pub health_check_retries: u32,
    #[serde(default = "default_build_timeout")]
    pub build_timeout_s: u32,
    #[serde(default = "default_deploy_timeout")]
    pub deploy_timeout_s: u32,
    #[serde(default = "default_cpu")]
    pub cpu_limit: f64,
    #[serde(default = "default_memory")]
    pub memory_limit_mb: u32,
    #[serde(default = "default_true")]
    pub auto_deploy: bool,
    #[serde(default = "default_true")]
    pub is_public: bool,
    /// Git services with a generated static-site image: the directory (relative to the build
    /// context, no `..`) whose files are served: a plain site's folder, or where a built
    /// single-page app writes its output (default: detected). `None` serves the repository
    /// minus VCS, dot- and documentation files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_dir: Option<String>,
    /// Generated static-site images: answer `index.html` (status 200) for paths that are not
    /// files, for client-side routing. `None`: on for built single-page apps, off for plain
    /// sites (which answer their `404.html`, if any, with 404).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spa_fallback: Option<bool>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            port: default_port(),
            health_check_path: default_health_path(),
            health_check_interval_s: default_interval(),
            health_check_retries: default_retries(),
            build_timeout_s: default_build_timeout(),
            deploy_timeout_s: default_deploy_timeout(),
            cpu_limit: default_cpu(),
            memory_limit_mb: default_memory(),
            auto_deploy: true,
            is_public: true,
            publish_dir: None,
            spa_fallback: None,
        }
    }
}

impl ServiceSettings {
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(port) = self.port {
            validate::validate_port("port", u32::from(port))?;
        }
        validate::validate_health_check_path("health_check_path", &self.health_check_path)?;
        validate::validate_health_check_interval_s(
            "health_check_interval_s",
            self.health_check_interval_s,
        )?;
        validate::validate_health_check_retries("health_check_retries", self.health_check_retries)?;
        validate::validate_build_timeout_s("build_timeout_s", self.build_timeout_s)?;
        validate::validate_deploy_timeout_s("deploy_timeout_s", self.deploy_timeout_s)?;
        validate::validate_cpu_limit("cpu_limit", self.cpu_limit)?;
        validate::validate_memory_limit_mb("memory_limit_mb", u64::from(self.memory_limit_mb))?;
        if let Some(dir) = &self.publish_dir {
            validate_repo_path("publish_dir", dir)?;
        }
        if !self.health_check_path.is_empty() && self.port.is_none() {
            return Err(InvalidInput::new(
                "health_check_path",
                "requires_port",
                "an HTTP health check needs a port; set `port` or set `health_check_path` to \"\"",
            ));
        }
        Ok(())
    }

    /// How the platform decides this service is healthy (DESIGN.md §2).
    pub fn health_check(&self) -> HealthCheck {
        match (self.port, self.health_check_path.as_str()) {
            (Some(port), "") => HealthCheck::Tcp { port },
            (Some(port), path) => HealthCheck::Http {
                port,
                path: path.to_owned(),
            },
            (None, _) => HealthCheck::Running {
                stable_for: Duration::from_secs(u64::from(self.health_check_interval_s.min(10))),
            },
        }
    }
}

/// The probe the platform runs from outside the workload (never `curl` inside the image).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthCheck {
    /// GET `path` on `port`; 2xx and 3xx pass.
    Http { port: u16, path: String },
    /// A TCP connect to `port` succeeds (databases and other non-HTTP services).
    Tcp { port: u16 },
    /// No port: the workload is running and has not restarted for `stable_for`.
    Running { stable_for: Duration },
}

/// A named volume mounted into the service's containers. Survives redeploys.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    /// Safe for several writers at once (the app coordinates access itself). Off by default:
    /// a redeploy of a service with an unshared volume stops the old version before the new
    /// one starts, so two versions never write the same data (ARCHITECTURE.md, stop-first).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

impl VolumeMount {
    /// The default name of a service's data volume: `clank-{project}-{service}-data`.
    pub fn default_name(project_slug: &str, service_slug: &str) -> String {
        format!("clank-{project_slug}-{service_slug}-data")
    }

    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate::validate_volume_name("name", &self.name)?;
        validate::validate_mount_path("mount_path", &self.mount_path)?;
        Ok(())
    }
}

/// The five ways a service can be reached (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    PublicDirect,
    LanOnly,
    ByoProxy,
    TailscaleHttps,
    CloudflareTunnel,
}

/// Where the TLS certificate of a public endpoint comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TlsMode {
    /// Issued and renewed through ACME (HTTP-01 or TLS-ALPN-01).
    #[default]
    Acme,
    /// A certificate the user uploaded (PEM), stored as a secret under this name.
    Custom { certificate: String },
}

/// How a service is reached from outside its container. One per service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Endpoint {
    /// The proxy serves the domains with TLS and redirects HTTP to HTTPS.
    PublicDirect {
        domains: Vec<String>,
        #[serde(default)]
        tls: TlsMode,
    },
    /// The proxy serves the hostnames over plain HTTP on the LAN listener.
    LanOnly { domains: Vec<String> },
    /// The container port is published on a host address; the user's proxy sits in front.
    ByoProxy {
        /// An IPv4 or IPv6 address of the host.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        host_ip: IpAddr,
        host_port: u16,
    },
    /// `tailscale serve` maps HTTPS on the tailnet to the service.
    TailscaleHttps {
        #[serde(default = "default_https_port")]
        https_port: u16,
    },
    /// A `cloudflared` connector in the project network routes `hostname` to the service.
    CloudflareTunnel {
        hostname: String,
        /// Name of the config secret holding the tunnel token.
        token_secret: String,
    },
}

fn default_https_port() -> u16 {
    443
}

impl Endpoint {
    pub fn mode(&self) -> AccessMode {
        match self {
            Endpoint::PublicDirect { .. } => AccessMode::PublicDirect,
            Endpoint::LanOnly { .. } => AccessMode::LanOnly,
            Endpoint::ByoProxy { .. } => AccessMode::ByoProxy,
            Endpoint::TailscaleHttps { .. } => AccessMode::TailscaleHttps,
            Endpoint::CloudflareTunnel { .. } => AccessMode::CloudflareTunnel,
        }
    }

    /// Domains the platform's proxy routes for this endpoint.
    pub fn routed_domains(&self) -> &[String] {
        match self {
            Endpoint::PublicDirect { domains, .. } | Endpoint::LanOnly { domains } => domains,
            _ => &[],
        }
    }

    /// Validates and normalises (lowercases, strips a trailing dot) the domains in place.
    pub fn validate(&mut self) -> Result<(), InvalidInput> {
        match self {
            Endpoint::PublicDirect { domains, tls } => {
                normalise_domains(domains)?;
                if let TlsMode::Custom { certificate } = tls {
                    validate::validate_env_key("endpoint.tls.certificate", certificate)?;
                }
                Ok(())
            }
            Endpoint::LanOnly { domains } => normalise_domains(domains),
            Endpoint::ByoProxy { host_port, .. } => {
                validate::validate_port("endpoint.host_port", u32::from(*host_port))?;
                Ok(())
            }
            Endpoint::TailscaleHttps { https_port } => {
                validate::validate_port("endpoint.https_port", u32::from(*https_port))?;
                Ok(())
            }
            Endpoint::CloudflareTunnel {
                hostname,
                token_secret,
            } => {
                *hostname = validate::validate_domain("endpoint.hostname", hostname)?;
                validate::validate_env_key("endpoint.token_secret", token_secret)?;
                Ok(())
            }
        }
    }
}

/// A path inside the repository (Dockerfile, build context): relative, no `..`, no NUL.
fn validate_repo_path(field: &str, path: &str) -> Result<(), InvalidInput> {
    let rule = if path.is_empty() {
        Some(("empty", "must not be empty"))
    } else if path.len() > 4096 {
        Some(("too_long", "must be at most 4096 bytes"))
    } else if path.starts_with('/') {
        Some(("absolute", "must be relative to the repository root"))
    } else if path.split('/').any(|c| c == "..") {
        Some(("traversal", "must not contain `..` components"))
    } else if path.chars().any(char::is_control) {
        Some(("control_char", "must not contain control characters"))
    } else {
        None
    };
    match rule {
        Some((rule, msg)) => Err(InvalidInput::new(
            field,
            rule,
            format!("`{}` {msg}", path.escape_debug()),
        )),
        None => Ok(()),
    }
}

fn normalise_domains(domains: &mut [String]) -> Result<(), InvalidInput> {
    if domains.is_empty() {
        return Err(InvalidInput::new(
            "endpoint.domains",
            "empty",
            "at least one domain is required for this access mode",
        ));
    }
    for (i, d) in domains.iter_mut().enumerate() {
        *d = validate::validate_domain(&format!("endpoint.domains[{i}]"), d)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, d) in domains.iter().enumerate() {
        if !seen.insert(d) {
            return Err(InvalidInput::new(
                format!("endpoint.domains[{i}]"),
                "duplicate",
                format!("domain `{d}` is listed twice"),
            ));
        }
    }
    Ok(())
}

/// One process type (from a Procfile, or `web` by default) and how many instances run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProcessSpec {
    /// Command as an argument vector; `None` runs the image's own entrypoint/cmd.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
}

fn default_replicas() -> u32 {
    1
}

impl ProcessSpec {
    /// The only process type the proxy routes to.
    pub const WEB: &'static str = "web";
}

/// The desired state of one deployable unit. A deployment snapshots it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Service {
    pub id: ServiceId,
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub environment_id: EnvironmentId,
    /// Unique in the environment; the container's DNS alias in the project network.
    pub slug: String,
    pub name: String,
    pub source: ServiceSource,
    pub settings: ServiceSettings,
    /// `None` runs on the platform host; `Some` through that server's agent.
    pub server_id: Option<ServerId>,
    pub volumes: Vec<VolumeMount>,
    pub endpoint: Option<Endpoint>,
    /// Process type name (`web`, `worker`, ...) → spec. Always at least one entry.
    pub processes: BTreeMap<String, ProcessSpec>,
    /// The single ACTIVE deployment, moved only by a successful cutover.
    pub active_deployment: Option<DeploymentId>,
    /// Slugs of services of the same environment that must have an ACTIVE deployment before a
    /// deployment of this one leaves PENDING (a template's app waits for its database).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Next deployment number (#1, #2, …); bumped in the same write that creates one.
    pub next_deployment_number: u64,
    /// Next build number (v1, v2, …).
    pub next_build_number: u64,
    /// Set while the service is stopped on purpose (`stop`): its ACTIVE deployment stays
    /// ACTIVE (history and rollback targets kept) but the reconciler removes its workloads and
    /// route instead of restarting them, and new deployments are refused until `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    /// Set while the service is soft-deleted (on its own or with its environment or
    /// project): parked like a stopped service, deployments refused, slug and domains still
    /// claimed; cleared by restore, purged at `deleted_at` + the retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Service {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Whether the reconciler keeps the service down: stopped on purpose or soft-deleted.
    pub fn is_parked(&self) -> bool {
        self.stopped_at.is_some() || self.deleted_at.is_some()
    }

    pub fn new(
        workspace_id: WorkspaceId,
        project_id: ProjectId,
        environment_id: EnvironmentId,
        slug: &str,
        source: ServiceSource,
        now: Timestamp,
    ) -> Result<Self, InvalidInput> {
        validate::validate_slug("slug", slug)?;
        let slug = slug.to_owned();
        let mut processes = BTreeMap::new();
        processes.insert(
            ProcessSpec::WEB.to_owned(),
            ProcessSpec {
                command: None,
                replicas: 1,
            },
        );
        let service = Service {
            id: ServiceId::new(),
            workspace_id,
            project_id,
            environment_id,
            name: slug.clone(),
            slug,
            source,
            settings: ServiceSettings::default(),
            server_id: None,
            volumes: Vec::new(),
            endpoint: None,
            processes,
            active_deployment: None,
            depends_on: Vec::new(),
            next_deployment_number: 1,
            next_build_number: 1,
            stopped_at: None,
            deleted_at: None,
            created_at: now,
            updated_at: now,
        };
        service.source.validate()?;
        Ok(service)
    }

    /// Checks every user-settable field; normalises domains. Run before any write.
    pub fn validate(&mut self) -> Result<(), InvalidInput> {
        validate::validate_slug("slug", &self.slug)?;
        validate::validate_display_name("name", &self.name)?;
        self.source.validate()?;
        self.settings.validate().map_err(|e| e.within("settings"))?;
        let mut mount_paths = std::collections::BTreeSet::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let field = format!("volumes[{i}]");
            v.validate().map_err(|e| e.within(&field))?;
            if !mount_paths.insert(v.mount_path.as_str()) {
                return Err(InvalidInput::new(
                    format!("{field}.mount_path"),
                    "duplicate",
                    format!("two volumes are mounted at `{}`", v.mount_path),
                ));
            }
        }
        if let Some(endpoint) = &mut self.endpoint {
            if !self.settings.is_public {
                return Err(InvalidInput::new(
                    "endpoint",
                    "not_public",
                    "the service has is_public = false, so it cannot have an endpoint",
                ));
            }
            endpoint.validate()?;
            if self.settings.port.is_none() {
                return Err(InvalidInput::new(
                    "endpoint",
                    "requires_port",
                    "an endpoint needs the service's `port` to be set",
                ));
            }
        }
        for (i, dep) in self.depends_on.iter().enumerate() {
            let field = format!("depends_on[{i}]");
            validate::validate_slug(&field, dep)?;
            if *dep == self.slug {
                return Err(InvalidInput::new(
                    field,
                    "self",
                    "a service cannot depend on itself",
                ));
            }
        }
        if self.processes.is_empty() {
            return Err(InvalidInput::new(
                "processes",
                "empty",
                "a service needs at least one process type",
            ));
        }
        for (name, spec) in &self.processes {
            let field = format!("processes.{name}");
            validate::validate_slug(&field, name)?;
            let tunnel = matches!(self.endpoint, Some(Endpoint::CloudflareTunnel { .. }));
            if tunnel && name == crate::endpoint::CLOUDFLARED_PROCESS {
                return Err(InvalidInput::new(
                    field,
                    "reserved",
                    "a cloudflare_tunnel service runs its connector under this process name; \
                     name the process type differently",
                ));
            }
            validate::validate_replicas(&format!("{field}.replicas"), spec.replicas)?;
            if let Some(cmd) = &spec.command {
                if cmd.is_empty() || cmd[0].is_empty() {
                    return Err(InvalidInput::new(
                        format!("{field}.command"),
                        "empty",
                        "a command needs at least a program name",
                    ));
                }
                if cmd.iter().any(|a| a.contains('\0')) {
                    return Err(InvalidInput::new(
                        format!("{field}.command"),
                        "nul",
                        "command arguments cannot contain NUL bytes",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_service_is_parked_like_a_stopped_one_and_old_records_load_undeleted() {
        let mut s = image_service();
        assert!(!s.is_parked());
        s.deleted_at = Some(Timestamp(5));
        assert!(s.is_parked() && s.is_deleted());
        let mut json = serde_json::to_value(image_service()).unwrap();
        assert!(json.get("deleted_at").is_none(), "{json}");
        json.as_object_mut().unwrap().remove("stopped_at");
        let old: Service = serde_json::from_value(json).unwrap();
        assert!(!old.is_deleted());
    }

    fn image_service() -> Service {
        Service::new(
            WorkspaceId::new(),
            ProjectId::new(),
            EnvironmentId::new(),
            "api",
            ServiceSource::DockerImage {
                image: "nginx:1.27".parse().unwrap(),
                credentials_secret: None,
            },
            Timestamp(0),
        )
        .unwrap()
    }

    #[test]
    fn settings_defaults_are_the_documented_ones() {
        let s: ServiceSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, ServiceSettings::default());
        assert_eq!(s.port, Some(8080));
        assert_eq!(s.health_check_path, "/health");
        assert_eq!((s.health_check_interval_s, s.health_check_retries), (10, 3));
        assert_eq!((s.build_timeout_s, s.deploy_timeout_s), (600, 300));
        assert_eq!((s.cpu_limit, s.memory_limit_mb), (0.5, 512));
        assert!(s.auto_deploy && s.is_public);
    }

    #[test]
    fn image_sources_name_registry_credentials_optionally_and_validly() {
        // Records and requests from before the field still parse, and write it only when set.
        let old: ServiceSource =
            serde_json::from_str(r#"{"type": "docker_image", "image": "nginx:1.27"}"#).unwrap();
        assert_eq!(old.registry_credentials(), None);
        assert!(!serde_json::to_string(&old).unwrap().contains("credentials"));
        let private: ServiceSource = serde_json::from_str(
            r#"{"type": "docker_image", "image": "ghcr.io/acme/api:1", "credentials_secret": "GHCR_AUTH"}"#,
        )
        .unwrap();
        assert_eq!(private.registry_credentials(), Some("GHCR_AUTH"));
        assert!(private.validate().is_ok());
        let bad = ServiceSource::Template {
            template: "postgres".into(),
            version: "16".into(),
            image: "postgres:16".parse().unwrap(),
            credentials_secret: Some("not a key".into()),
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "source.credentials_secret"
        );
    }

    #[test]
    fn settings_reject_unknown_fields() {
        let err = serde_json::from_str::<ServiceSettings>(r#"{"prot": 80}"#).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn health_check_follows_path_and_port() {
        let mut s = ServiceSettings::default();
        assert_eq!(
            s.health_check(),
            HealthCheck::Http {
                port: 8080,
                path: "/health".into()
            }
        );
        s.health_check_path.clear();
        assert_eq!(s.health_check(), HealthCheck::Tcp { port: 8080 });
        s.port = None;
        assert!(matches!(s.health_check(), HealthCheck::Running { .. }));
    }

    #[test]
    fn new_service_runs_one_web_process() {
        let s = image_service();
        assert_eq!(s.processes.len(), 1);
        assert_eq!(s.processes["web"].replicas, 1);
        assert_eq!(s.next_deployment_number, 1);
    }

    #[test]
    fn validate_names_the_nested_field() {
        let mut s = image_service();
        s.settings.cpu_limit = f64::NAN;
        assert_eq!(s.validate().unwrap_err().field, "settings.cpu_limit");
        let mut s = image_service();
        s.volumes.push(VolumeMount {
            name: "data".into(),
            mount_path: "/var/../etc".into(),
            shared: false,
        });
        assert_eq!(s.validate().unwrap_err().field, "volumes[0].mount_path");
    }

    #[test]
    fn endpoint_domains_are_normalised_and_duplicates_rejected() {
        let mut s = image_service();
        s.endpoint = Some(Endpoint::PublicDirect {
            domains: vec!["Shop.Example.COM.".into()],
            tls: TlsMode::Acme,
        });
        s.validate().unwrap();
        assert_eq!(
            s.endpoint.as_ref().unwrap().routed_domains(),
            ["shop.example.com"]
        );
        s.endpoint = Some(Endpoint::LanOnly {
            domains: vec!["a.lan.example".into(), "A.lan.example".into()],
        });
        assert_eq!(s.validate().unwrap_err().field, "endpoint.domains[1]");
    }

    #[test]
    fn private_service_cannot_have_an_endpoint() {
        let mut s = image_service();
        s.settings.is_public = false;
        s.endpoint = Some(Endpoint::TailscaleHttps { https_port: 443 });
        assert_eq!(s.validate().unwrap_err().rule, "not_public");
    }

    #[test]
    fn tunnel_service_cannot_name_a_process_type_like_its_connector() {
        let mut s = image_service();
        s.endpoint = Some(Endpoint::CloudflareTunnel {
            hostname: "shop.example.com".into(),
            token_secret: "CF_TUNNEL_TOKEN".into(),
        });
        s.validate().unwrap();
        s.processes
            .insert("cloudflared".into(), s.processes["web"].clone());
        let err = s.validate().unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.rule),
            ("processes.cloudflared", "reserved")
        );
        s.endpoint = Some(Endpoint::TailscaleHttps { https_port: 443 });
        s.validate().unwrap();
    }

    #[test]
    fn git_credentials_name_a_config_key_and_older_records_still_parse() {
        let old: ServiceSource = serde_json::from_str(
            r#"{"type":"git","repo_url":"https://example.com/a/b.git","branch":"main","dockerfile_path":null,"build_context":null}"#,
        )
        .unwrap();
        assert!(matches!(
            &old,
            ServiceSource::Git {
                credentials_secret: None,
                ..
            }
        ));
        let bad = ServiceSource::Git {
            repo_url: "https://example.com/a/b.git".into(),
            branch: "main".into(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: Some("git token".into()),
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "source.credentials_secret"
        );
    }

    #[test]
    fn endpoint_json_names_its_mode() {
        let e: Endpoint =
            serde_json::from_str(r#"{"mode":"byo_proxy","host_ip":"127.0.0.1","host_port":9000}"#)
                .unwrap();
        assert_eq!(e.mode(), AccessMode::ByoProxy);
        assert!(serde_json::from_str::<Endpoint>(r#"{"mode":"ftp"}"#).is_err());
    }
}
