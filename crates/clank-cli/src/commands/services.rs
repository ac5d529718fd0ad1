//! Services: create from an image or a repository, update how they are reached, list, show.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::app::{App, lines};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum ServiceCmd {
    /// Services of `project` or `project/environment`.
    List {
        environment: String,
    },
    /// Create a service from a container image (`--image`) or a git repository (`--repo`,
    /// built on each deploy).
    Create(Box<CreateService>),
    /// Change how an existing service is reached: port, health path, endpoint, processes.
    /// Takes effect at the next deploy.
    Update(Box<UpdateService>),
    Show {
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
    #[arg(long, required_unless_present = "repo", conflicts_with = "repo")]
    image: Option<String>,
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
            let v: Value = app
                .client
                .get(&format!("{}/services", app.env_path(&environment)?))
                .await?;
            app.show(&v, |v| {
                lines(v, |s| {
                    format!(
                        "{:<20} active: {}",
                        s["slug"].as_str().unwrap_or(""),
                        s["active_deployment"]
                    )
                })
            });
        }
        ServiceCmd::Create(create) => {
            let CreateService {
                address,
                image,
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
            let mut settings = serde_json::Map::new();
            if let Some(port) = port {
                settings.insert("port".into(), json!(port));
            }
            if let Some(h) = health_path {
                settings.insert("health_check_path".into(), json!(h));
            }
            if no_auto_deploy {
                settings.insert("auto_deploy".into(), json!(false));
            }
            if let Some(t) = build_timeout {
                settings.insert("build_timeout_s".into(), json!(t));
            }
            let source = match (&image, &repo) {
                (_, Some(repo)) => json!({
                    "type": "git",
                    "repo_url": repo,
                    "branch": branch,
                    "dockerfile_path": dockerfile,
                    "build_context": context,
                    "credentials_secret": credentials_secret,
                }),
                (Some(image), None) => json!({ "type": "docker_image", "image": image }),
                (None, None) => {
                    return Err(CliError::new("give --image or --repo", 2));
                }
            };
            let mut body = json!({ "slug": s, "source": source, "settings": settings });
            if !domains.is_empty() {
                body["endpoint"] = json!({ "mode": "public_direct", "domains": domains });
            }
            if let Some(processes) = processes_arg(&processes)? {
                body["processes"] = processes;
            }
            let v: Value = app
                .client
                .post(
                    &format!("/v1/workspaces/{w}/projects/{p}/environments/{e}/services"),
                    &body,
                )
                .await?;
            app.show(&v, |v| match &repo {
                Some(repo) => format!(
                    "git service `{a}` created: builds {repo} at `{}` on each deploy{}",
                    v["source"]["branch"].as_str().unwrap_or(&branch),
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
            let mut body = serde_json::Map::new();
            if port.is_some() || health_path.is_some() {
                // Settings are replaced whole: start from the service's own.
                let current: Value = app.client.get(&path).await?;
                let mut settings = current["settings"].clone();
                if let Some(port) = port {
                    settings["port"] = json!(port);
                }
                if let Some(h) = health_path {
                    settings["health_check_path"] = json!(h);
                }
                body.insert("settings".into(), settings);
            }
            if no_endpoint {
                body.insert("endpoint".into(), Value::Null);
            } else if !domains.is_empty() {
                body.insert(
                    "endpoint".into(),
                    json!({ "mode": "public_direct", "domains": domains }),
                );
            } else if !lan_domains.is_empty() {
                body.insert(
                    "endpoint".into(),
                    json!({ "mode": "lan_only", "domains": lan_domains }),
                );
            }
            if let Some(processes) = processes_arg(&processes)? {
                body.insert("processes".into(), processes);
            }
            if body.is_empty() {
                return Err(CliError::new(
                    "nothing to change: give --port, --health-path, --domain, --lan-domain, \
                     --no-endpoint or --process",
                    2,
                ));
            }
            let v: Value = app.client.patch(&path, &Value::Object(body)).await?;
            app.show(&v, |v| {
                let endpoint = match v["endpoint"]["domains"].as_array() {
                    Some(d) => d
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "none".into(),
                };
                format!(
                    "service `{address}` updated (port {}, health `{}`, domains: {endpoint}); \
                     it takes effect at the next deploy",
                    v["settings"]["port"],
                    v["settings"]["health_check_path"].as_str().unwrap_or("")
                )
            });
        }
        ServiceCmd::Show { address } => {
            let v: Value = app.client.get(&app.service_path(&address)?).await?;
            app.show(&v, |s| serde_json::to_string_pretty(s).unwrap_or_default());
        }
    }
    Ok(())
}

/// A service's processes from `NAME[=REPLICAS]` flags; `web=1` unless `web` is among them.
fn processes_arg(flags: &[String]) -> Result<Option<Value>, CliError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    map.insert("web".into(), json!({ "replicas": 1 }));
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
        map.insert(name.to_owned(), json!({ "replicas": replicas }));
    }
    Ok(Some(Value::Object(map)))
}
