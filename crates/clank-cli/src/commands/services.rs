//! Services: create from an image or a repository, update how they are reached, list, show,
//! stop and start, delete and restore.

use clap::Subcommand;
use std::collections::BTreeMap;

use clank_api::deployments::ServiceStatus;
use clank_api::servers::ServerView;
use clank_api::{ServicePatch, ServiceSpec};
use clank_core::ImageRef;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::ServerId;
use clank_core::model::{
    Endpoint, ProcessSpec, Service, ServiceSettings, ServiceSource, TlsMode, VolumeMount,
};

use crate::app::{App, pretty_json, url_escape};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Services of `project` or `project/environment`; `--deleted` lists soft-deleted
    /// (restorable) ones too.
    List {
        environment: String,
        /// Also the deleted services that can still be restored, in state `deleted`.
        #[arg(long)]
        deleted: bool,
    },
    /// Create a service from a container image (`--image`), a git repository (`--repo`,
    /// built on each deploy) or a template (`--template postgres`: a stack named after the
    /// service).
    Create(Box<CreateService>),
    /// Change an existing service: its image or repository, any setting, its endpoint,
    /// volumes, processes, server and dependencies. Takes effect at the next deploy.
    Update(Box<UpdateService>),
    Show {
        address: String,
    },
    /// Stop a service: its domain stops answering and its workloads are removed; its
    /// deployments, history and volumes are kept, and deploys are refused until `start`.
    Stop {
        address: String,
    },
    /// Start a stopped service: its ACTIVE deployment runs again and is routed once healthy.
    Start {
        address: String,
    },
    /// Delete a service: its domains stop answering and its workloads are removed; it can be
    /// restored for the retention period (7 days by default). `--purge` removes it for good
    /// now (`--volumes`: its volumes' data too).
    Delete {
        address: String,
        #[command(flatten)]
        how: super::deletion::DeleteFlags,
    },
    /// Restore a deleted service: its ACTIVE deployment runs again.
    Restore {
        address: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateService {
    address: String,
    /// Run this image (an image service; a git or template service becomes an image one).
    #[arg(long)]
    image: Option<String>,
    /// Config secret holding `username:password` for the image's private registry ("" for
    /// none).
    #[arg(long)]
    registry_secret: Option<String>,
    /// The branch a git service builds (and whose pushes deploy).
    #[arg(long, conflicts_with = "image")]
    branch: Option<String>,
    /// The repository a git service clones.
    #[arg(long, conflicts_with = "image")]
    repo: Option<String>,
    /// A git service's Dockerfile path ("" to detect).
    #[arg(long, conflicts_with = "image")]
    dockerfile: Option<String>,
    /// A git service's build context ("" for the root).
    #[arg(long, conflicts_with = "image")]
    context: Option<String>,
    /// Config secret with an access token for a git service's private repository ("" for
    /// none).
    #[arg(long, conflicts_with = "image")]
    credentials_secret: Option<String>,
    #[command(flatten)]
    common: CommonFlags,
    /// Remove the endpoint (the proxy stops routing to the service at its next deploy).
    #[arg(long, conflicts_with_all = ["domains", "lan_domains", "byo_proxy", "tailscale", "cloudflare_tunnel"])]
    no_endpoint: bool,
    /// Unmount the volume of this name (repeatable; its data is kept).
    #[arg(long = "remove-volume", value_name = "NAME")]
    remove_volumes: Vec<String>,
    /// Run on the platform host again (instead of a remote server).
    #[arg(long, conflicts_with = "server")]
    no_server: bool,
    /// Remove every dependency.
    #[arg(long, conflicts_with = "depends_on")]
    no_depends_on: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateService {
    address: String,
    #[arg(long, required_unless_present_any = ["repo", "template"], conflicts_with_all = ["repo", "template"])]
    image: Option<String>,
    /// Config secret holding `username:password` for the image's private registry.
    #[arg(long, requires = "image")]
    registry_secret: Option<String>,
    /// Create it from a template (`clank template list`): its config, volumes and generated
    /// passwords, deployed at once.
    #[arg(long, conflicts_with = "repo")]
    template: Option<String>,
    /// A template input, `KEY=VALUE` (repeatable).
    #[arg(long = "input", value_name = "KEY=VALUE", requires = "template")]
    inputs: Vec<String>,
    /// The repository to clone and build (https://, ssh://, git@host:path).
    #[arg(long)]
    repo: Option<String>,
    /// The branch to build (and whose pushes deploy).
    #[arg(long, default_value = "main", requires = "repo")]
    branch: String,
    /// Path of a Dockerfile in the repository (default: the repository's `Dockerfile`,
    /// else one generated for the detected framework).
    #[arg(long, requires = "repo")]
    dockerfile: Option<String>,
    /// Build context inside the repository (default: its root).
    #[arg(long, requires = "repo")]
    context: Option<String>,
    /// Config secret holding an access token for a private repository.
    #[arg(long, requires = "repo")]
    credentials_secret: Option<String>,
    #[command(flatten)]
    common: CommonFlags,
}

/// The flags `service create` and `service update` share: every setting, the endpoint,
/// volumes, processes, server and dependencies.
#[derive(Debug, Default, clap::Args)]
struct CommonFlags {
    /// Display name (default: the slug).
    #[arg(long)]
    name: Option<String>,
    /// The port the app listens on.
    #[arg(long, conflicts_with = "no_port")]
    port: Option<u16>,
    /// No port: a worker (health is "running and stable"; no endpoint).
    #[arg(long)]
    no_port: bool,
    /// Health check path; "" for a TCP check.
    #[arg(long)]
    health_path: Option<String>,
    /// Seconds between health checks.
    #[arg(long, value_name = "SECONDS")]
    health_interval: Option<u32>,
    /// Failed checks before a deployment fails.
    #[arg(long)]
    health_retries: Option<u32>,
    /// Seconds a build may take (git services).
    #[arg(long, value_name = "SECONDS")]
    build_timeout: Option<u32>,
    /// Seconds a deploy may take to become healthy.
    #[arg(long, value_name = "SECONDS")]
    deploy_timeout: Option<u32>,
    /// CPU limit in cores (0.5 = half a core).
    #[arg(long)]
    cpu: Option<f64>,
    /// Memory limit in MiB.
    #[arg(long, value_name = "MIB")]
    memory: Option<u32>,
    /// Do not deploy on pushes to the branch (git services' webhooks).
    #[arg(long, conflicts_with = "auto_deploy")]
    no_auto_deploy: bool,
    /// Deploy on pushes to the branch again.
    #[arg(long)]
    auto_deploy: bool,
    /// Private: reachable only inside its project's network, never through an endpoint.
    #[arg(long, conflicts_with_all = ["public", "domains", "lan_domains", "byo_proxy", "tailscale", "cloudflare_tunnel"])]
    private: bool,
    /// Public again (an endpoint may route to it).
    #[arg(long)]
    public: bool,
    /// Generated static sites: the directory whose files are served ("" to detect).
    #[arg(long, value_name = "DIR")]
    publish_dir: Option<String>,
    /// Generated static sites: answer `index.html` for unknown paths (true/false).
    #[arg(long, value_name = "BOOL")]
    spa_fallback: Option<bool>,

    /// Serve these public domains with TLS (repeatable): a `public_direct` endpoint.
    #[arg(long = "domain", conflicts_with_all = ["lan_domains", "byo_proxy", "tailscale", "cloudflare_tunnel"])]
    domains: Vec<String>,
    /// With --domain: serve this uploaded certificate (the name of the secret holding its
    /// PEM) instead of one from ACME.
    #[arg(long, value_name = "SECRET", requires = "domains")]
    tls_certificate: Option<String>,
    /// Serve these hostnames over plain HTTP on the LAN listener (repeatable): a `lan_only`
    /// endpoint.
    #[arg(long = "lan-domain", conflicts_with_all = ["byo_proxy", "tailscale", "cloudflare_tunnel"])]
    lan_domains: Vec<String>,
    /// Publish the port on a host address for your own proxy: `HOST_IP:PORT` (a `byo_proxy`
    /// endpoint).
    #[arg(long, value_name = "HOST_IP:PORT", conflicts_with_all = ["tailscale", "cloudflare_tunnel"])]
    byo_proxy: Option<String>,
    /// Serve it on the tailnet over HTTPS with `tailscale serve` (a `tailscale_https`
    /// endpoint).
    #[arg(long, conflicts_with = "cloudflare_tunnel")]
    tailscale: bool,
    /// With --tailscale: the tailnet HTTPS port (default 443).
    #[arg(long, requires = "tailscale")]
    https_port: Option<u16>,
    /// Route this hostname to it through a Cloudflare tunnel (a `cloudflare_tunnel`
    /// endpoint; give --tunnel-token-secret too).
    #[arg(long, value_name = "HOSTNAME", requires = "tunnel_token_secret")]
    cloudflare_tunnel: Option<String>,
    /// With --cloudflare-tunnel: the config secret holding the tunnel token.
    #[arg(long, value_name = "SECRET", requires = "cloudflare_tunnel")]
    tunnel_token_secret: Option<String>,

    /// Mount a named volume: `NAME:/PATH`, or `NAME:/PATH:shared` for several writers at
    /// once (repeatable; on update, one of the same name is replaced).
    #[arg(long = "volume", value_name = "NAME:/PATH[:shared]")]
    volumes: Vec<String>,
    /// A process type and its replica count, `worker=2` (repeatable): replaces the list
    /// (`web=1` unless given).
    #[arg(long = "process", value_name = "NAME[=REPLICAS]")]
    processes: Vec<String>,
    /// The command of a process type, `web=python -m http.server` (split at spaces) or
    /// `web=["sh","-c","exec app"]` (repeatable; adds the type when it is not listed).
    #[arg(long = "command", value_name = "NAME=COMMAND")]
    commands: Vec<String>,
    /// Run on this registered server (`clank server list`) instead of the platform host.
    #[arg(long, value_name = "SERVER")]
    server: Option<String>,
    /// A service of the same environment that must be ACTIVE first (repeatable; on update,
    /// replaces the list).
    #[arg(long = "depends-on", value_name = "SERVICE")]
    depends_on: Vec<String>,
}

impl CommonFlags {
    /// Whether any setting (of `ServiceSettings`) is given.
    fn any_setting(&self) -> bool {
        self.port.is_some()
            || self.no_port
            || self.health_path.is_some()
            || self.health_interval.is_some()
            || self.health_retries.is_some()
            || self.build_timeout.is_some()
            || self.deploy_timeout.is_some()
            || self.cpu.is_some()
            || self.memory.is_some()
            || self.no_auto_deploy
            || self.auto_deploy
            || self.private
            || self.public
            || self.publish_dir.is_some()
            || self.spa_fallback.is_some()
    }

    /// `settings` with the given flags applied.
    fn apply_settings(&self, settings: &mut ServiceSettings) {
        if let Some(port) = self.port {
            settings.port = Some(port);
        }
        if self.no_port {
            settings.port = None;
            // A port-less service has no HTTP check unless one is asked for (and refused).
            if self.health_path.is_none() {
                settings.health_check_path = String::new();
            }
        }
        if let Some(h) = &self.health_path {
            settings.health_check_path = h.clone();
        }
        if let Some(v) = self.health_interval {
            settings.health_check_interval_s = v;
        }
        if let Some(v) = self.health_retries {
            settings.health_check_retries = v;
        }
        if let Some(v) = self.build_timeout {
            settings.build_timeout_s = v;
        }
        if let Some(v) = self.deploy_timeout {
            settings.deploy_timeout_s = v;
        }
        if let Some(v) = self.cpu {
            settings.cpu_limit = v;
        }
        if let Some(v) = self.memory {
            settings.memory_limit_mb = v;
        }
        if self.no_auto_deploy {
            settings.auto_deploy = false;
        }
        if self.auto_deploy {
            settings.auto_deploy = true;
        }
        if self.private {
            settings.is_public = false;
        }
        if self.public {
            settings.is_public = true;
        }
        if let Some(d) = &self.publish_dir {
            settings.publish_dir = (!d.is_empty()).then(|| d.clone());
        }
        if let Some(v) = self.spa_fallback {
            settings.spa_fallback = Some(v);
        }
    }

    /// The endpoint the flags describe, if any.
    fn endpoint(&self) -> Result<Option<Endpoint>, CliError> {
        if !self.domains.is_empty() {
            let tls = match &self.tls_certificate {
                Some(certificate) => TlsMode::Custom {
                    certificate: certificate.clone(),
                },
                None => TlsMode::Acme,
            };
            return Ok(Some(Endpoint::PublicDirect {
                domains: self.domains.clone(),
                tls,
            }));
        }
        if !self.lan_domains.is_empty() {
            return Ok(Some(Endpoint::LanOnly {
                domains: self.lan_domains.clone(),
            }));
        }
        if let Some(spec) = &self.byo_proxy {
            let addr: std::net::SocketAddr = spec.parse().map_err(|_| {
                CliError::new(
                    format!(
                        "--byo-proxy `{spec}`: give HOST_IP:PORT, e.g. 127.0.0.1:9000 or \
                         [::1]:9000"
                    ),
                    2,
                )
            })?;
            return Ok(Some(Endpoint::ByoProxy {
                host_ip: addr.ip(),
                host_port: addr.port(),
            }));
        }
        if self.tailscale {
            return Ok(Some(Endpoint::TailscaleHttps {
                https_port: self.https_port.unwrap_or(443),
            }));
        }
        if let (Some(hostname), Some(token_secret)) =
            (&self.cloudflare_tunnel, &self.tunnel_token_secret)
        {
            return Ok(Some(Endpoint::CloudflareTunnel {
                hostname: hostname.clone(),
                token_secret: token_secret.clone(),
            }));
        }
        Ok(None)
    }

    /// Resolve `--server NAME` to the server's id.
    async fn server_id(&self, app: &App) -> Result<Option<ServerId>, CliError> {
        let Some(name) = &self.server else {
            return Ok(None);
        };
        let s: ServerView = app
            .client
            .get(&format!("{}/servers/{}", app.ws_path(), url_escape(name)))
            .await
            .map_err(|e| {
                if e.code == 4 {
                    CliError::new(
                        format!("--server `{name}`: no such server (`clank server list`)"),
                        4,
                    )
                } else {
                    e
                }
            })?;
        Ok(Some(s.server.id))
    }
}

/// The `service create`/`update` flag of a field the daemon refused, where there is one.
fn service_flag(field: &str) -> Option<&'static str> {
    let top = field.split(['.', '[']).next().unwrap_or_default();
    let second = field.split('.').nth(1).unwrap_or_default();
    let second = second.split('[').next().unwrap_or_default();
    Some(match (top, second) {
        ("slug", _) => "the service's address",
        ("name", _) => "--name",
        ("source", "image") => "--image",
        ("source", "credentials_secret") => "--registry-secret or --credentials-secret",
        ("source", "repo_url") => "--repo",
        ("source", "branch") => "--branch",
        ("source", "dockerfile_path") => "--dockerfile",
        ("source", "build_context") => "--context",
        ("settings", "port") => "--port",
        ("settings", "health_check_path") => "--health-path",
        ("settings", "health_check_interval_s") => "--health-interval",
        ("settings", "health_check_retries") => "--health-retries",
        ("settings", "build_timeout_s") => "--build-timeout",
        ("settings", "deploy_timeout_s") => "--deploy-timeout",
        ("settings", "cpu_limit") => "--cpu",
        ("settings", "memory_limit_mb") => "--memory",
        ("settings", "publish_dir") => "--publish-dir",
        ("settings", "spa_fallback") => "--spa-fallback",
        ("endpoint", "domains") => "--domain or --lan-domain",
        ("endpoint", "tls") => "--tls-certificate",
        ("endpoint", "host_port" | "host_ip") => "--byo-proxy",
        ("endpoint", "https_port") => "--https-port",
        ("endpoint", "hostname") => "--cloudflare-tunnel",
        ("endpoint", "token_secret") => "--tunnel-token-secret",
        ("endpoint", _) => "the endpoint flags",
        ("volumes", _) => "--volume",
        ("processes", "") => "--process",
        ("processes", _) if field.ends_with(".command") => "--command",
        ("processes", _) => "--process",
        ("server_id", _) => "--server",
        ("depends_on", _) => "--depends-on",
        _ => return None,
    })
}

/// Volumes from `NAME:/PATH[:shared]` flags.
fn volumes_arg(flags: &[String]) -> Result<Vec<VolumeMount>, CliError> {
    flags
        .iter()
        .map(|f| {
            let bad = || {
                CliError::new(
                    format!("--volume `{f}`: give NAME:/PATH or NAME:/PATH:shared"),
                    2,
                )
            };
            let (name, rest) = f.split_once(':').ok_or_else(bad)?;
            let (path, shared) = match rest.rsplit_once(':') {
                Some((path, "shared")) => (path, true),
                _ => (rest, false),
            };
            if name.is_empty() || path.is_empty() {
                return Err(bad());
            }
            Ok(VolumeMount {
                name: name.to_owned(),
                mount_path: path.to_owned(),
                shared,
            })
        })
        .collect()
}

/// Apply `--command NAME=COMMAND` flags to `processes` (adding a type that is not there).
fn commands_arg(
    flags: &[String],
    processes: &mut BTreeMap<String, ProcessSpec>,
) -> Result<(), CliError> {
    for f in flags {
        let (name, command) = f
            .split_once('=')
            .ok_or_else(|| CliError::new(format!("--command `{f}`: give NAME=COMMAND"), 2))?;
        let argv: Vec<String> = if command.trim_start().starts_with('[') {
            serde_json::from_str(command).map_err(|e| {
                CliError::new(
                    format!("--command `{f}`: not a JSON array of strings ({e})"),
                    2,
                )
            })?
        } else {
            command.split_whitespace().map(str::to_owned).collect()
        };
        let spec = processes.entry(name.to_owned()).or_insert(ProcessSpec {
            command: None,
            replicas: 1,
        });
        spec.command = (!argv.is_empty()).then_some(argv);
    }
    Ok(())
}

/// `Some("")` → `None` (a flag given as "" clears an optional value).
fn optional(v: Option<String>) -> Option<Option<String>> {
    v.map(|v| (!v.is_empty()).then_some(v))
}

pub(crate) async fn service(app: &App, cmd: ServiceCmd) -> Result<(), CliError> {
    match cmd {
        ServiceCmd::List {
            environment,
            deleted,
        } => {
            let env_path = app.env_path(&environment)?;
            let services: Vec<Service> = app
                .client
                .get(&format!(
                    "{env_path}/services{}",
                    super::deletion::include_deleted(deleted)
                ))
                .await?;
            // Each service's ACTIVE deployment (its number) and newest one, side by side.
            let rows = futures_util::future::try_join_all(services.iter().map(|s| {
                let path = format!("{env_path}/services/{}", s.slug);
                async move { ServiceRow::read(app, &path, s).await }
            }))
            .await?;
            if app.json {
                app.show(&services, pretty_json);
            } else {
                app.show(&rows, |rows| {
                    if rows.is_empty() {
                        return "no services".to_owned();
                    }
                    let mut out = format!(
                        "{:<20} {:<16} {:<14} {}",
                        "SERVICE", "ACTIVE", "STATE", "LATEST"
                    );
                    for r in rows {
                        out.push('\n');
                        out.push_str(&r.line(&app.style));
                    }
                    out
                });
            }
        }
        ServiceCmd::Create(create) => {
            if let Some(template) = create.template.clone() {
                let a = app.service(&create.address)?;
                let [w, p, e, s] = a.segments();
                // The app's domain: public with TLS, or `--lan-domain` on the LAN listener.
                let (domain, lan) = match (
                    create.common.domains.first(),
                    create.common.lan_domains.first(),
                ) {
                    (Some(d), _) => (Some(d.clone()), false),
                    (None, Some(d)) => (Some(d.clone()), true),
                    (None, None) => (None, false),
                };
                let options = super::templates::StackOptions {
                    inputs: create.inputs.clone(),
                    domain,
                    lan,
                    ..Default::default()
                };
                let env = format!("{w}/{p}/{e}");
                return super::templates::create(app, &env, template, Some(s.to_owned()), options)
                    .await;
            }
            let CreateService {
                address,
                image,
                registry_secret,
                template: _,
                inputs: _,
                repo,
                branch,
                dockerfile,
                context,
                credentials_secret,
                common,
            } = *create;
            let a = app.service(&address)?;
            let [w, p, e, s] = a.segments();
            let mut settings = ServiceSettings::default();
            common.apply_settings(&mut settings);
            let source = match (&image, &repo) {
                (_, Some(repo)) => ServiceSource::Git {
                    repo_url: repo.clone(),
                    branch: branch.clone(),
                    dockerfile_path: dockerfile,
                    build_context: context,
                    credentials_secret,
                },
                (Some(image), None) => ServiceSource::DockerImage {
                    image: ImageRef::parse(image).map_err(image_input)?,
                    credentials_secret: registry_secret,
                },
                (None, None) => {
                    return Err(CliError::new("give --image or --repo", 2));
                }
            };
            let mut processes = processes_arg(&common.processes)?;
            if !common.commands.is_empty() {
                let map = processes.get_or_insert_with(|| {
                    BTreeMap::from([(
                        ProcessSpec::WEB.to_owned(),
                        ProcessSpec {
                            command: None,
                            replicas: 1,
                        },
                    )])
                });
                commands_arg(&common.commands, map)?;
            }
            let spec = ServiceSpec {
                name: common.name.clone(),
                settings,
                endpoint: common.endpoint()?,
                volumes: volumes_arg(&common.volumes)?,
                processes,
                server_id: common.server_id(app).await?,
                depends_on: common.depends_on.clone(),
                ..ServiceSpec::new(s, source)
            };
            let created: Service = app
                .client
                .post(
                    &format!("/v1/workspaces/{w}/projects/{p}/environments/{e}/services"),
                    &spec,
                )
                .await
                .map_err(|e| e.flags(service_flag))?;
            let no_auto_deploy = common.no_auto_deploy;
            app.show(&created, |v| match &repo {
                Some(repo) => format!(
                    "git service `{a}` created: builds {repo} at `{}` on each deploy{}",
                    match &v.source {
                        ServiceSource::Git { branch, .. } => branch,
                        _ => &branch,
                    },
                    if no_auto_deploy {
                        String::new()
                    } else {
                        format!(
                            "; pushes deploy it once a forge's webhook points here (`clank webhook show {address}`)"
                        )
                    }
                ),
                None => format!("service `{a}` created{}", reached(v)),
            });
        }
        ServiceCmd::Update(update) => {
            let UpdateService {
                address,
                image,
                registry_secret,
                branch,
                repo,
                dockerfile,
                context,
                credentials_secret,
                common,
                no_endpoint,
                remove_volumes,
                no_server,
                no_depends_on,
            } = *update;
            let path = app.service_path(&address)?;
            // Settings, volumes and sources are replaced whole: start from the service's own.
            let current: Service = app.client.get(&path).await?;
            let mut patch = ServicePatch {
                name: common.name.clone(),
                ..ServicePatch::default()
            };
            if common.any_setting() {
                let mut settings = current.settings.clone();
                common.apply_settings(&mut settings);
                patch.settings = Some(settings);
            }
            if let Some(image) = &image {
                let image = ImageRef::parse(image).map_err(image_input)?;
                let credentials_secret = match optional(registry_secret.clone()) {
                    Some(set) => set,
                    None => current.source.registry_credentials().map(str::to_owned),
                };
                patch.source = Some(ServiceSource::DockerImage {
                    image,
                    credentials_secret,
                });
            } else if let Some(secret) = optional(registry_secret.clone()) {
                let mut source = current.source.clone();
                match &mut source {
                    ServiceSource::DockerImage {
                        credentials_secret, ..
                    }
                    | ServiceSource::Template {
                        credentials_secret, ..
                    } => *credentials_secret = secret,
                    ServiceSource::Git { .. } => {
                        return Err(CliError::new(
                            "--registry-secret is for image services; a git service's \
                             repository token is --credentials-secret",
                            2,
                        ));
                    }
                }
                patch.source = Some(source);
            }
            let git_flags = branch.is_some()
                || repo.is_some()
                || dockerfile.is_some()
                || context.is_some()
                || credentials_secret.is_some();
            if git_flags {
                let ServiceSource::Git {
                    repo_url,
                    branch: b,
                    dockerfile_path,
                    build_context,
                    credentials_secret: c,
                } = current.source.clone()
                else {
                    return Err(CliError::new(
                        "--branch, --repo, --dockerfile, --context and --credentials-secret \
                         change a git service; this one runs an image (--image)",
                        2,
                    ));
                };
                patch.source = Some(ServiceSource::Git {
                    repo_url: repo.unwrap_or(repo_url),
                    branch: branch.unwrap_or(b),
                    dockerfile_path: optional(dockerfile).unwrap_or(dockerfile_path),
                    build_context: optional(context).unwrap_or(build_context),
                    credentials_secret: optional(credentials_secret).unwrap_or(c),
                });
            }
            if no_endpoint {
                patch.endpoint = Some(None);
            } else if let Some(endpoint) = common.endpoint()? {
                patch.endpoint = Some(Some(endpoint));
            }
            if !common.volumes.is_empty() || !remove_volumes.is_empty() {
                let mut volumes = current.volumes.clone();
                for name in &remove_volumes {
                    if !volumes.iter().any(|v| &v.name == name) {
                        let mounted: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
                        return Err(CliError::new(
                            format!(
                                "--remove-volume `{name}`: the service mounts no volume of \
                                 that name (it mounts: {})",
                                if mounted.is_empty() {
                                    "none".to_owned()
                                } else {
                                    mounted.join(", ")
                                }
                            ),
                            2,
                        ));
                    }
                    volumes.retain(|v| &v.name != name);
                }
                // One of the same name is replaced where it is; a new one comes last.
                for v in volumes_arg(&common.volumes)? {
                    match volumes.iter_mut().find(|old| old.name == v.name) {
                        Some(old) => *old = v,
                        None => volumes.push(v),
                    }
                }
                patch.volumes = Some(volumes);
            }
            patch.processes = processes_arg(&common.processes)?;
            if !common.commands.is_empty() {
                let map = patch
                    .processes
                    .get_or_insert_with(|| current.processes.clone());
                commands_arg(&common.commands, map)?;
            }
            if no_server {
                patch.server_id = Some(None);
            } else if let Some(id) = common.server_id(app).await? {
                patch.server_id = Some(Some(id));
            }
            if no_depends_on {
                patch.depends_on = Some(Vec::new());
            } else if !common.depends_on.is_empty() {
                patch.depends_on = Some(common.depends_on.clone());
            }
            if patch == ServicePatch::default() {
                return Err(CliError::new(
                    "nothing to change: give a flag (`clank service update --help` lists them)",
                    2,
                ));
            }
            let updated: Service = app
                .client
                .patch(&path, &patch)
                .await
                .map_err(|e| e.flags(service_flag))?;
            app.show(&updated, |v| {
                let port = v
                    .settings
                    .port
                    .map_or_else(|| "none".to_owned(), |p| p.to_string());
                let volumes = if v.volumes.is_empty() {
                    "none".to_owned()
                } else {
                    v.volumes
                        .iter()
                        .map(|m| format!("{}:{}", m.name, m.mount_path))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "service `{address}` updated (port {port}, health `{}`{}, volumes: {volumes}); \
                     it takes effect at the next deploy",
                    v.settings.health_check_path,
                    reached(v),
                )
            });
        }
        ServiceCmd::Show { address } => {
            let service: Service = app.client.get(&app.service_path(&address)?).await?;
            app.show(&service, pretty_json);
        }
        ServiceCmd::Stop { address } => {
            let path = format!("{}/stop", app.service_path(&address)?);
            let service: Service = app.client.post_empty(&path).await?;
            app.show(&service, |s| {
                format!(
                    "{} stopped: its route and workloads are being removed; \
                     `clank service start {address}` brings it back",
                    s.slug
                )
            });
        }
        ServiceCmd::Delete { address, how } => {
            let path = app.service_path(&address)?;
            super::deletion::delete(app, super::deletion::Kind::Service, &address, &path, how)
                .await?;
        }
        ServiceCmd::Restore { address } => {
            let path = app.service_path(&address)?;
            super::deletion::restore::<Service>(
                app,
                super::deletion::Kind::Service,
                &address,
                &path,
            )
            .await?;
        }
        ServiceCmd::Start { address } => {
            let path = format!("{}/start", app.service_path(&address)?);
            let service: Service = app.client.post_empty(&path).await?;
            app.show(&service, |s| {
                format!(
                    "{} started: its workloads are starting; the route returns once they are healthy",
                    s.slug
                )
            });
        }
    }
    Ok(())
}

/// A service's processes from `NAME[=REPLICAS]` flags; `web=1` unless `web` is among them.
fn processes_arg(flags: &[String]) -> Result<Option<BTreeMap<String, ProcessSpec>>, CliError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let spec = |replicas| ProcessSpec {
        command: None,
        replicas,
    };
    let mut map = BTreeMap::from([(ProcessSpec::WEB.to_owned(), spec(1))]);
    for f in flags {
        let (name, replicas) = match f.split_once('=') {
            Some((n, r)) => (
                n,
                r.parse::<u32>().map_err(|_| {
                    CliError::new(format!("--process `{f}`: replicas must be a number"), 2)
                })?,
            ),
            None => (f.as_str(), 1),
        };
        map.insert(name.to_owned(), spec(replicas));
    }
    Ok(Some(map))
}

/// A client-side refusal of `--image`, in the flag's terms.
fn image_input(e: clank_core::InvalidInput) -> CliError {
    CliError::new(format!("--image: {}", e.message), 2)
}

/// How the service is reached, for a confirmation: `, reached at https://a.example` etc.
fn reached(s: &Service) -> String {
    match &s.endpoint {
        None => String::new(),
        Some(Endpoint::PublicDirect { domains, tls }) => {
            let tls = match tls {
                TlsMode::Acme => String::new(),
                TlsMode::Custom { certificate } => format!(" (certificate `{certificate}`)"),
            };
            format!(", domains: {}{tls}", domains.join(", "))
        }
        Some(Endpoint::LanOnly { domains }) => format!(", LAN domains: {}", domains.join(", ")),
        Some(Endpoint::ByoProxy { host_ip, host_port }) => {
            format!(
                ", published on {}",
                std::net::SocketAddr::new(*host_ip, *host_port)
            )
        }
        Some(Endpoint::TailscaleHttps { https_port }) => {
            format!(", on the tailnet (HTTPS port {https_port})")
        }
        Some(Endpoint::CloudflareTunnel { hostname, .. }) => {
            format!(", through a Cloudflare tunnel at {hostname}")
        }
    }
}

/// One line of `service list`: the ACTIVE deployment by number, the service's state, and the
/// newest deployment when it is another one.
#[derive(serde::Serialize)]
struct ServiceRow {
    slug: String,
    active: Option<u64>,
    state: &'static str,
    latest: Option<(u64, DeploymentStatus)>,
}

impl ServiceRow {
    async fn read(app: &App, path: &str, s: &Service) -> Result<Self, CliError> {
        let now: ServiceStatus = app.client.get(&format!("{path}/status")).await?;
        let active = now.active.map(|d| d.number);
        let latest = now
            .recent
            .first()
            .filter(|d| Some(d.number) != active)
            .map(|d| (d.number, d.status));
        let state = if s.is_deleted() {
            "deleted"
        } else if s.stopped_at.is_some() {
            "stopped"
        } else if active.is_some() {
            "running"
        } else {
            "not running"
        };
        Ok(ServiceRow {
            slug: s.slug.clone(),
            active,
            state,
            latest,
        })
    }

    fn line(&self, style: &crate::style::Style) -> String {
        let active = match self.active {
            Some(n) => format!("#{n} {}", style.status(DeploymentStatus::Active)),
            None => "none".to_owned(),
        };
        // Pad before colouring: escape codes have no width.
        let active_pad = " ".repeat(16usize.saturating_sub(match self.active {
            Some(n) => format!("#{n} ACTIVE").len(),
            None => 4,
        }));
        let latest = match self.latest {
            Some((n, status)) => format!("#{n} {}", style.status(status)),
            None => String::new(),
        };
        format!(
            "{:<20} {active}{active_pad} {:<14} {latest}",
            self.slug, self.state
        )
        .trim_end()
        .to_owned()
    }
}
