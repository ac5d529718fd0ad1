//! Services: create from an image or a repository, update how they are reached, list, show,
//! stop and start, delete and restore.

use clap::Subcommand;
use std::collections::BTreeMap;

use clank_api::{ServicePatch, ServiceSpec};
use clank_core::ImageRef;
use clank_core::model::{Endpoint, ProcessSpec, Service, ServiceSettings, ServiceSource};

use crate::app::{App, input, lines, pretty_json};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Services of `project` or `project/environment`.
    List {
        environment: String,
    },
    /// Create a service from a container image (`--image`), a git repository (`--repo`,
    /// built on each deploy) or a template (`--template postgres`: a stack named after the
    /// service).
    Create(Box<CreateService>),
    /// Change how an existing service is reached: port, health path, endpoint, processes.
    /// Takes effect at the next deploy.
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
    /// The port the app listens on.
    #[arg(long)]
    port: Option<u16>,
    /// Health check path; "" for a TCP check.
    #[arg(long)]
    health_path: Option<String>,
    /// Serve these public domains with TLS (repeatable): replaces the endpoint with a
    /// `public_direct` one.
    #[arg(long = "domain", conflicts_with_all = ["lan_domains", "no_endpoint"])]
    domains: Vec<String>,
    /// Serve these hostnames over plain HTTP on the LAN listener (repeatable): a `lan_only`
    /// endpoint.
    #[arg(long = "lan-domain", conflicts_with = "no_endpoint")]
    lan_domains: Vec<String>,
    /// Remove the endpoint (the proxy stops routing to the service at its next deploy).
    #[arg(long)]
    no_endpoint: bool,
    /// A process type and its replica count, `worker=2` (repeatable): replaces the list.
    #[arg(long = "process", value_name = "NAME[=REPLICAS]")]
    processes: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateService {
    address: String,
    #[arg(long, required_unless_present_any = ["repo", "template"], conflicts_with_all = ["repo", "template"])]
    image: Option<String>,
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
    /// Do not deploy on pushes to the branch (webhooks).
    #[arg(long, requires = "repo")]
    no_auto_deploy: bool,
    /// Seconds a build may take.
    #[arg(long, requires = "repo")]
    build_timeout: Option<u32>,
    /// The port the app listens on.
    #[arg(long)]
    port: Option<u16>,
    /// Health check path; "" for a TCP check.
    #[arg(long)]
    health_path: Option<String>,
    /// A public domain the proxy serves with TLS (repeatable): a `public_direct` endpoint.
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// A process type and its replica count, `worker=2` (repeatable; `web=1` unless given).
    #[arg(long = "process", value_name = "NAME[=REPLICAS]")]
    processes: Vec<String>,
}

pub(crate) async fn service(app: &App, cmd: ServiceCmd) -> Result<(), CliError> {
    match cmd {
        ServiceCmd::List { environment } => {
            let services: Vec<Service> = app
                .client
                .get(&format!("{}/services", app.env_path(&environment)?))
                .await?;
            app.show(&services, |services| {
                lines(services, |s| {
                    let active = s
                        .active_deployment
                        .map_or_else(|| "none".to_owned(), |d| d.to_string());
                    format!("{:<20} active: {active}", s.slug)
                })
            });
        }
        ServiceCmd::Create(create) => {
            if let Some(template) = create.template.clone() {
                let a = app.service(&create.address)?;
                let [w, p, e, s] = a.segments();
                let options = super::templates::StackOptions {
                    inputs: create.inputs.clone(),
                    domain: create.domains.first().cloned(),
                    ..Default::default()
                };
                let env = format!("{w}/{p}/{e}");
                return super::templates::create(app, &env, template, Some(s.to_owned()), options)
                    .await;
            }
            let CreateService {
                address,
                image,
                template: _,
                inputs: _,
                repo,
                branch,
                dockerfile,
                context,
                credentials_secret,
                no_auto_deploy,
                build_timeout,
                port,
                health_path,
                domains,
                processes,
            } = *create;
            let a = app.service(&address)?;
            let [w, p, e, s] = a.segments();
            let mut settings = ServiceSettings::default();
            if let Some(port) = port {
                settings.port = Some(port);
            }
            if let Some(h) = health_path {
                settings.health_check_path = h;
            }
            if no_auto_deploy {
                settings.auto_deploy = false;
            }
            if let Some(t) = build_timeout {
                settings.build_timeout_s = t;
            }
            let source = match (&image, &repo) {
                (_, Some(repo)) => ServiceSource::Git {
                    repo_url: repo.clone(),
                    branch: branch.clone(),
                    dockerfile_path: dockerfile,
                    build_context: context,
                    credentials_secret,
                },
                (Some(image), None) => ServiceSource::DockerImage {
                    image: ImageRef::parse(image).map_err(input)?,
                    credentials_secret: None,
                },
                (None, None) => {
                    return Err(CliError::new("give --image or --repo", 2));
                }
            };
            let spec = ServiceSpec {
                settings,
                endpoint: (!domains.is_empty()).then(|| Endpoint::PublicDirect {
                    domains,
                    tls: Default::default(),
                }),
                processes: processes_arg(&processes)?,
                ..ServiceSpec::new(s, source)
            };
            let created: Service = app
                .client
                .post(
                    &format!("/v1/workspaces/{w}/projects/{p}/environments/{e}/services"),
                    &spec,
                )
                .await?;
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
                None => format!("service `{a}` created"),
            });
        }
        ServiceCmd::Update(update) => {
            let UpdateService {
                address,
                port,
                health_path,
                domains,
                lan_domains,
                no_endpoint,
                processes,
            } = *update;
            let path = app.service_path(&address)?;
            let mut patch = ServicePatch::default();
            if port.is_some() || health_path.is_some() {
                // Settings are replaced whole: start from the service's own.
                let current: Service = app.client.get(&path).await?;
                let mut settings = current.settings;
                if let Some(port) = port {
                    settings.port = Some(port);
                }
                if let Some(h) = health_path {
                    settings.health_check_path = h;
                }
                patch.settings = Some(settings);
            }
            if no_endpoint {
                patch.endpoint = Some(None);
            } else if !domains.is_empty() {
                patch.endpoint = Some(Some(Endpoint::PublicDirect {
                    domains,
                    tls: Default::default(),
                }));
            } else if !lan_domains.is_empty() {
                patch.endpoint = Some(Some(Endpoint::LanOnly {
                    domains: lan_domains,
                }));
            }
            patch.processes = processes_arg(&processes)?;
            if patch == ServicePatch::default() {
                return Err(CliError::new(
                    "nothing to change: give --port, --health-path, --domain, --lan-domain, \
                     --no-endpoint or --process",
                    2,
                ));
            }
            let updated: Service = app.client.patch(&path, &patch).await?;
            app.show(&updated, |v| {
                let endpoint = match v.endpoint.as_ref().map(Endpoint::routed_domains) {
                    Some(d) if !d.is_empty() => d.join(", "),
                    _ => "none".into(),
                };
                let port = v
                    .settings
                    .port
                    .map_or_else(|| "none".to_owned(), |p| p.to_string());
                format!(
                    "service `{address}` updated (port {port}, health `{}`, domains: {endpoint}); \
                     it takes effect at the next deploy",
                    v.settings.health_check_path
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
