//! `clank`, the command-line client of the Clank daemon. Human output by default, `--json`
//! everywhere; addresses as `project/service` (workspace from the context, environment
//! `production`) or in full, `workspace/project/environment/service`.

mod client;

use std::process::ExitCode;

use clank_core::address::{AddressDefaults, EnvironmentAddress, ProjectAddress, ServiceAddress};
use clap::{Parser, Subcommand};
use client::{CliError, Client, Context};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "clank",
    version,
    about = "Deploy and run services on a Clank platform."
)]
struct Cli {
    /// The daemon's URL (default: the saved context, else http://127.0.0.1:7070).
    #[arg(long, env = "CLANK_URL", global = true)]
    url: Option<String>,
    /// An API token (default: the saved context).
    #[arg(long, env = "CLANK_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Print the daemon's JSON instead of a human summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the first workspace and its Owner on a fresh daemon; saves the token.
    Init {
        #[arg(long, default_value = "default")]
        workspace: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        email: String,
    },
    /// Save a URL and token as the context for later commands.
    Login {
        #[arg(long)]
        token: String,
    },
    /// Who the token belongs to.
    Whoami,
    /// Projects.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Environments of a project.
    #[command(subcommand)]
    Env(EnvCmd),
    /// Services.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Config variables and secrets.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Deploy a service as it is now.
    Deploy {
        address: String,
        /// Follow phases and logs until ACTIVE or FAILED (exit 1 unless ACTIVE).
        #[arg(long, short)]
        follow: bool,
    },
    /// Roll back to an earlier deployment (its image and its config).
    Rollback {
        address: String,
        number: u64,
        #[arg(long, short)]
        follow: bool,
    },
    /// Cancel a deployment in progress.
    Cancel { address: String, number: u64 },
    /// A service's current state and recent deployments.
    Status { address: String },
    /// The deploy log of a deployment.
    Log { address: String, number: u64 },
    /// A git service's builds, newest first; with a number, that build and its log.
    Builds {
        address: String,
        /// Show build v<NUMBER> with its log.
        number: Option<u64>,
        /// At most this many builds (1..=500).
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Only builds numbered below this (the last number of the previous page).
        #[arg(long)]
        before: Option<u64>,
    },
    /// The running service's own output (stdout and stderr): every workload of the ACTIVE
    /// deployment, each line prefixed `[process.replica]`, unless --process/--replica pick.
    Logs {
        address: String,
        /// Keep streaming new lines.
        #[arg(long, short)]
        follow: bool,
        /// Only the last N lines of history.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Only this process type (`web`, `worker`, ...).
        #[arg(long, short)]
        process: Option<String>,
        /// Only this replica (from 0).
        #[arg(long, short)]
        replica: Option<u32>,
    },
    /// Run a command in the running service: `clank exec shop/web -- ls /data`.
    Exec {
        address: String,
        /// The process type to run it in (default `web`).
        #[arg(long, short)]
        process: Option<String>,
        /// The replica to run it in (default 0).
        #[arg(long, short)]
        replica: Option<u32>,
        #[arg(required = true, last = true)]
        command: Vec<String>,
    },
    /// Git-push webhooks: where a forge delivers, and the secret it signs with.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Members of the workspace and their roles.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Remote servers (their agents dial out to the daemon's agent endpoint).
    #[command(subcommand)]
    Server(ServerCmd),
    /// The workspace's audit log, newest first (Admin and Owner only).
    Audit {
        /// At most this many events (1..=1000).
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
        /// Only events older than this event id (the last id of the previous page).
        #[arg(long)]
        before: Option<String>,
    },
    /// Print a shell completion script: `clank completions bash > ~/.local/share/bash-completion/completions/clank`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectCmd {
    List,
    Create {
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
    /// Soft delete: nothing running is stopped, no volume is removed.
    Delete {
        project: String,
    },
}

#[derive(Debug, Subcommand)]
enum EnvCmd {
    List { project: String },
    Create { project: String, name: String },
}

#[derive(Debug, Subcommand)]
enum ServiceCmd {
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
struct UpdateService {
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
struct CreateService {
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

#[derive(Debug, Subcommand)]
enum WebhookCmd {
    /// The URLs to give the forge for a git service, its branch, and (Owner, Admin) the secret.
    Show { address: String },
    /// Create or rotate the workspace's webhook secret (Owner, Admin); the old one stops
    /// verifying at once.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Variables set on the service, or the resolved cascade with `--resolved`.
    List {
        address: String,
        #[arg(long)]
        resolved: bool,
    },
    /// Set `KEY=VALUE` pairs on the service.
    Set {
        address: String,
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Store the values as encrypted secrets (never shown again).
        #[arg(long)]
        secret: bool,
    },
    Unset {
        address: String,
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ServerCmd {
    /// Register a server; prints its one-time join token and the agent command to run.
    Add { name: String },
    /// Servers with their connection, heartbeat usage and agent version.
    List,
    /// One server in detail.
    Show { name: String },
    /// A fresh join token (re-enrollment of a reinstalled machine).
    JoinToken { name: String },
    /// Cut a server off: its agent is refused from now on.
    Revoke { name: String },
    /// Offer a new agent binary to every agent (Owner only); agents verify, swap, restart.
    Release {
        /// The version the agents will report.
        #[arg(long)]
        version: String,
        /// Path of the agent binary.
        binary: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// A token for yourself (shown once), with at most your own role.
    Create {
        name: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Your tokens; `--all`: every member's (Owner; Admin: everyone's but Owners').
    List {
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by id (see `token list`): yours, or as Owner/Admin a member's.
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
enum MemberCmd {
    /// Members with their email and role.
    List,
    /// Add a member; prints their first token (shown once).
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// owner, admin, developer or viewer.
        #[arg(long)]
        role: String,
    },
    /// Change a member's role (by email or user id).
    SetRole { user: String, role: String },
    /// Remove a member (by email or user id); their tokens in the workspace are deleted.
    Remove { user: String },
}

struct App {
    client: Client,
    json: bool,
    defaults: AddressDefaults,
}

fn input(e: clank_core::InvalidInput) -> CliError {
    CliError::new(e.to_string(), 2)
}

impl App {
    fn service(&self, s: &str) -> Result<ServiceAddress, CliError> {
        ServiceAddress::parse(s, &self.defaults).map_err(input)
    }

    fn service_path(&self, s: &str) -> Result<String, CliError> {
        let a = self.service(s)?;
        let [w, p, e, s] = a.segments();
        Ok(format!(
            "/v1/workspaces/{w}/projects/{p}/environments/{e}/services/{s}"
        ))
    }

    fn project_path(&self, s: &str) -> Result<String, CliError> {
        let a = ProjectAddress::parse(s, &self.defaults).map_err(input)?;
        let [w, p] = a.segments();
        Ok(format!("/v1/workspaces/{w}/projects/{p}"))
    }

    fn env_path(&self, s: &str) -> Result<String, CliError> {
        let a = EnvironmentAddress::parse(s, &self.defaults)
            .or_else(|_| {
                ProjectAddress::parse(s, &self.defaults)
                    .and_then(|p| p.environment(&self.defaults.environment))
            })
            .map_err(input)?;
        let [w, p, e] = a.segments();
        Ok(format!("/v1/workspaces/{w}/projects/{p}/environments/{e}"))
    }

    fn ws_path(&self) -> String {
        format!("/v1/workspaces/{}", self.defaults.workspace)
    }

    #[allow(clippy::print_stdout)]
    fn show(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", human(value));
        }
    }

    /// Follow a deployment's events; Ok(true) when it ended ACTIVE.
    #[allow(clippy::print_stdout)]
    async fn follow(&self, service_path: &str, number: u64) -> Result<bool, CliError> {
        let mut last = String::new();
        let json = self.json;
        // A transition can arrive both in the first status's history and as an event (the
        // daemon subscribes before it reads the status); a status never repeats one, so each
        // (from, to) is printed once.
        let mut printed = std::collections::HashSet::<(String, String)>::new();
        self.client
            .sse(
                &format!("{service_path}/deployments/{number}/events"),
                |name, data| {
                    if json {
                        println!("{}", json!({ "event": name, "data": data }));
                    }
                    match name {
                        "status" => {
                            // What happened before we connected, so the output never depends on timing.
                            for h in data["history"].as_array().into_iter().flatten() {
                                if let (Some(from), Some(to)) =
                                    (h["from"].as_str(), h["to"].as_str())
                                {
                                    let reason = h["reason"]
                                        .as_str()
                                        .map(|r| format!(": {r}"))
                                        .unwrap_or_default();
                                    let first = printed.insert((from.to_owned(), to.to_owned()));
                                    if !json && first {
                                        println!("#{number} {from} → {to}{reason}");
                                    }
                                }
                            }
                            last = data["status"].as_str().unwrap_or_default().to_owned();
                        }
                        "transition" => {
                            let (from, to) = (
                                data["from"].as_str().unwrap_or("?"),
                                data["to"].as_str().unwrap_or("?"),
                            );
                            let reason = data["reason"]
                                .as_str()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default();
                            let first = printed.insert((from.to_owned(), to.to_owned()));
                            if !json && first {
                                println!("#{number} {from} → {to}{reason}");
                            }
                            last = to.to_owned();
                        }
                        "log" if !json => println!(
                            "#{number}   {}",
                            data["message"].as_str().unwrap_or_default()
                        ),
                        _ => {}
                    }
                },
            )
            .await?;
        if last.is_empty()
            || !matches!(
                last.as_str(),
                "ACTIVE" | "FAILED" | "CANCELLED" | "SUPERSEDED"
            )
        {
            // The stream ended early (daemon restart): read the outcome.
            let d: Value = self
                .client
                .get(&format!("{service_path}/deployments/{number}"))
                .await?;
            last = d["status"].as_str().unwrap_or_default().to_owned();
        }
        if !json {
            println!("#{number} is {last}");
        }
        Ok(last == "ACTIVE")
    }
}

fn deployment_line(d: &Value) -> String {
    let build = match d["build"]["number"].as_u64() {
        Some(n) => format!(
            "build v{n} {}",
            short_sha(d["build"]["commit_sha"].as_str().unwrap_or(""))
        ),
        None => String::new(),
    };
    format!(
        "#{:<4} {:<16} {:<20} {}",
        d["number"],
        d["status"].as_str().unwrap_or("?"),
        build,
        d["reason"].as_str().unwrap_or("")
    )
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What started a build or deployment, in a word or two.
fn trigger_text(t: &Value) -> String {
    match t["kind"].as_str() {
        Some("manual") => "manual".to_owned(),
        Some("auto_deploy") => "push".to_owned(),
        Some("rollback_of") => format!("rollback of #{}", t["number"]),
        Some("promotion_from") => "promotion".to_owned(),
        _ => "?".to_owned(),
    }
}

/// One build as a line: number, status, commit, branch, trigger, deployment, duration.
fn build_line(b: &Value) -> String {
    format!(
        "v{:<4} {:<10} {:<12} {:<16} {:<14} {:<6} {}",
        b["number"],
        b["status"].as_str().unwrap_or("?"),
        short_sha(b["commit_sha"].as_str().unwrap_or("-")),
        b["branch"].as_str().unwrap_or(""),
        trigger_text(&b["trigger"]),
        b["deployment"]
            .as_u64()
            .map(|n| format!("#{n}"))
            .unwrap_or_else(|| "-".into()),
        b["duration_s"]
            .as_f64()
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "running".into()),
    )
}

/// `[web.0] line` when several workloads may speak; the line alone for one chosen workload.
fn log_line(data: &Value, prefixed: bool) -> String {
    let line = data["line"].as_str().unwrap_or_default();
    if prefixed {
        format!(
            "[{}.{}] {line}",
            data["process"].as_str().unwrap_or("?"),
            data["replica"]
        )
    } else {
        line.to_owned()
    }
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

/// One audit event as a line: when, who, what, on what, how it ended.
fn audit_line(e: &Value) -> String {
    let actor = match e["actor"]["kind"].as_str() {
        Some("webhook") => format!("webhook:{}", e["actor"]["provider"].as_str().unwrap_or("?")),
        _ => format!(
            "{} ({})",
            e["actor"]["user_id"].as_str().unwrap_or("?"),
            e["actor"]["token_name"].as_str().unwrap_or("?")
        ),
    };
    let outcome = match e["outcome"]["result"].as_str() {
        Some("failed") => format!(
            "failed {} {}",
            e["outcome"]["status"],
            e["outcome"]["code"].as_str().unwrap_or("")
        ),
        other => other.unwrap_or("?").to_owned(),
    };
    format!(
        "{}  {:<22} {:<40} {:<12} {actor}",
        e["at"]
            .as_i64()
            .map(format_millis)
            .unwrap_or_else(|| "?".into()),
        e["action"].as_str().unwrap_or(""),
        e["target"].as_str().unwrap_or(""),
        outcome,
    )
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC (civil-from-days, no time crate).
fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let mut ctx = Context::load();
    let url = cli
        .url
        .clone()
        .or(ctx.url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:7070".into());
    let token = cli.token.clone().or(ctx.token.clone());
    let defaults = AddressDefaults {
        workspace: ctx.workspace.clone().unwrap_or_else(|| "default".into()),
        ..AddressDefaults::default()
    };
    let app = App {
        client: Client::new(url.clone(), token),
        json: cli.json,
        defaults,
    };
    match cli.command {
        Command::Init {
            workspace,
            name,
            email,
        } => {
            let v: Value = app
                .client
                .post(
                    "/v1/init",
                    &json!({ "workspace": workspace, "name": name, "email": email }),
                )
                .await?;
            ctx = Context {
                url: Some(url),
                token: v["token"].as_str().map(str::to_owned),
                workspace: Some(workspace.clone()),
            };
            ctx.save()?;
            app.show(&v, |_| {
                format!(
                    "workspace `{workspace}` created; you are its Owner. Token saved to {}",
                    Context::path().display()
                )
            });
        }
        Command::Login { token } => {
            let who: Value = Client::new(url.clone(), Some(token.clone()))
                .get("/v1/whoami")
                .await?;
            ctx = Context {
                url: Some(url),
                token: Some(token),
                workspace: who["workspace"].as_str().map(str::to_owned),
            };
            ctx.save()?;
            app.show(&who, |w| {
                format!(
                    "logged in to workspace `{}` as {}",
                    w["workspace"].as_str().unwrap_or("?"),
                    w["role"].as_str().unwrap_or("?")
                )
            });
        }
        Command::Whoami => {
            let v: Value = app.client.get("/v1/whoami").await?;
            app.show(&v, |w| {
                format!(
                    "{} in `{}` ({})",
                    w["user"],
                    w["workspace"].as_str().unwrap_or("?"),
                    w["role"].as_str().unwrap_or("?")
                )
            });
        }
        Command::Project(cmd) => match cmd {
            ProjectCmd::List => {
                let v: Value = app
                    .client
                    .get(&format!("{}/projects", app.ws_path()))
                    .await?;
                app.show(&v, |v| {
                    lines(v, |p| {
                        format!(
                            "{:<24} {}",
                            p["slug"].as_str().unwrap_or(""),
                            p["name"].as_str().unwrap_or("")
                        )
                    })
                });
            }
            ProjectCmd::Create { name, slug } => {
                let v: Value = app
                    .client
                    .post(
                        &format!("{}/projects", app.ws_path()),
                        &json!({ "name": name, "slug": slug }),
                    )
                    .await?;
                app.show(&v, |p| {
                    format!(
                        "project `{}` created (network {})",
                        p["slug"].as_str().unwrap_or(""),
                        format_args!("clank-project-{}", p["slug"].as_str().unwrap_or(""))
                    )
                });
            }
            ProjectCmd::Delete { project } => {
                let v: Value = app.client.delete(&app.project_path(&project)?).await?;
                app.show(&v, |p| {
                    format!(
                        "project `{}` deleted (soft: containers and volumes untouched)",
                        p["slug"].as_str().unwrap_or("")
                    )
                });
            }
        },
        Command::Env(cmd) => match cmd {
            EnvCmd::List { project } => {
                let v: Value = app
                    .client
                    .get(&format!("{}/environments", app.project_path(&project)?))
                    .await?;
                app.show(&v, |v| {
                    lines(v, |e| e["name"].as_str().unwrap_or("").to_owned())
                });
            }
            EnvCmd::Create { project, name } => {
                let v: Value = app
                    .client
                    .post(
                        &format!("{}/environments", app.project_path(&project)?),
                        &json!({ "name": name }),
                    )
                    .await?;
                app.show(&v, |e| {
                    format!("environment `{}` created", e["name"].as_str().unwrap_or(""))
                });
            }
        },
        Command::Service(cmd) => match cmd {
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
        },
        Command::Config(cmd) => match cmd {
            ConfigCmd::List { address, resolved } => {
                let path = app.service_path(&address)?;
                let v: Value = app
                    .client
                    .get(&format!(
                        "{path}/config{}",
                        if resolved { "/resolved" } else { "" }
                    ))
                    .await?;
                app.show(&v, |v| {
                    lines(v, |c| {
                        let source = c["source"]
                            .as_str()
                            .map(|s| format!("  (from {})", s.split(':').next().unwrap_or(s)))
                            .unwrap_or_default();
                        format!(
                            "{}={}{source}",
                            c["key"].as_str().unwrap_or(""),
                            c["value"].as_str().unwrap_or("")
                        )
                    })
                });
            }
            ConfigCmd::Set {
                address,
                pairs,
                secret,
            } => {
                let mut changes = Vec::new();
                for pair in &pairs {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| CliError::new(format!("`{pair}` is not KEY=VALUE"), 2))?;
                    changes.push(json!({ "key": k, "value": v, "secret": secret }));
                }
                let v: Value = app
                    .client
                    .patch(
                        &format!("{}/config", app.service_path(&address)?),
                        &json!({ "changes": changes }),
                    )
                    .await?;
                app.show(&v, |_| {
                    format!(
                        "{} variable(s) set; they apply from the next deploy",
                        pairs.len()
                    )
                });
            }
            ConfigCmd::Unset { address, keys } => {
                let changes: Vec<_> = keys
                    .iter()
                    .map(|k| json!({ "key": k, "unset": true }))
                    .collect();
                let v: Value = app
                    .client
                    .patch(
                        &format!("{}/config", app.service_path(&address)?),
                        &json!({ "changes": changes }),
                    )
                    .await?;
                app.show(&v, |_| format!("{} variable(s) unset", keys.len()));
            }
        },
        Command::Deploy { address, follow } => {
            let path = app.service_path(&address)?;
            let d: Value = app
                .client
                .post(&format!("{path}/deployments"), &json!({}))
                .await?;
            let number = d["number"].as_u64().unwrap_or_default();
            if !follow {
                app.show(&d, |d| {
                    format!(
                        "deployment #{} requested ({})",
                        d["number"],
                        d["status"].as_str().unwrap_or("")
                    )
                });
                return Ok(ExitCode::SUCCESS);
            }
            return Ok(if app.follow(&path, number).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Rollback {
            address,
            number,
            follow,
        } => {
            let path = app.service_path(&address)?;
            let d: Value = app
                .client
                .post(&format!("{path}/deployments/{number}/rollback"), &json!({}))
                .await?;
            let new = d["number"].as_u64().unwrap_or_default();
            if !follow {
                app.show(&d, |d| {
                    format!(
                        "rollback to #{number} requested as deployment #{}",
                        d["number"]
                    )
                });
                return Ok(ExitCode::SUCCESS);
            }
            return Ok(if app.follow(&path, new).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Cancel { address, number } => {
            let path = app.service_path(&address)?;
            let d: Value = app
                .client
                .post(&format!("{path}/deployments/{number}/cancel"), &json!({}))
                .await?;
            app.show(&d, |d| format!("cancel of #{} requested", d["number"]));
        }
        Command::Status { address } => {
            let path = app.service_path(&address)?;
            let s: Value = app.client.get(&path).await?;
            let ds: Value = app
                .client
                .get(&format!("{path}/deployments?limit=5"))
                .await?;
            let all = json!({ "service": s, "deployments": ds });
            app.show(&all, |v| {
                let mut out = format!(
                    "{} ({})\n",
                    app.service(&address)
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    v["service"]["source"]["image"].as_str().unwrap_or("git")
                );
                out.push_str(&lines(&v["deployments"], deployment_line));
                out
            });
        }
        Command::Log { address, number } => {
            let path = app.service_path(&address)?;
            let v: Value = app
                .client
                .get(&format!("{path}/deployments/{number}/log"))
                .await?;
            app.show(&v, |v| {
                lines(v, |l| l["message"].as_str().unwrap_or("").to_owned())
            });
        }
        Command::Builds {
            address,
            number,
            limit,
            before,
        } => {
            let path = app.service_path(&address)?;
            match number {
                Some(n) => {
                    let v: Value = app.client.get(&format!("{path}/builds/{n}")).await?;
                    app.show(&v, |b| {
                        let mut out = build_line(b);
                        if let Some(f) = b["failure"].as_str() {
                            out.push_str(&format!("\nfailure: {f}"));
                        }
                        if b["log"]["truncated"].as_bool() == Some(true) {
                            out.push_str("\n(earlier log lines left out)");
                        }
                        for l in b["log"]["lines"].as_array().into_iter().flatten() {
                            out.push('\n');
                            out.push_str(l.as_str().unwrap_or_default());
                        }
                        out
                    });
                }
                None => {
                    let mut q = format!("{path}/builds?limit={limit}");
                    if let Some(b) = before {
                        q.push_str(&format!("&before={b}"));
                    }
                    let v: Value = app.client.get(&q).await?;
                    app.show(&v, |v| {
                        if v.as_array().is_some_and(Vec::is_empty) {
                            "no builds".to_owned()
                        } else {
                            lines(v, build_line)
                        }
                    });
                }
            }
        }
        Command::Logs {
            address,
            follow,
            tail,
            process,
            replica,
        } => {
            let path = app.service_path(&address)?;
            let json = app.json;
            let mut query = format!("{path}/logs?follow={follow}&tail={tail}");
            if let Some(p) = &process {
                query.push_str(&format!("&process={}", url_escape(p)));
            }
            if let Some(r) = replica {
                query.push_str(&format!("&replica={r}"));
            }
            // One chosen workload speaks alone; otherwise each line says whose it is.
            let prefixed = process.is_none() || replica.is_none();
            app.client
                .sse(&query, |name, data| {
                    #[allow(clippy::print_stdout)]
                    if json {
                        println!("{}", json!({ "event": name, "data": data }));
                    } else if name == "line" {
                        println!("{}", log_line(&data, prefixed));
                    }
                })
                .await?;
        }
        Command::Exec {
            address,
            process,
            replica,
            command,
        } => {
            let path = app.service_path(&address)?;
            let v: Value = app
                .client
                .post(
                    &format!("{path}/exec"),
                    &json!({ "command": command, "process": process, "replica": replica }),
                )
                .await?;
            if app.json {
                app.show(&v, |_| String::new());
            } else {
                #[allow(clippy::print_stdout, clippy::print_stderr)]
                {
                    print!("{}", v["stdout"].as_str().unwrap_or_default());
                    eprint!("{}", v["stderr"].as_str().unwrap_or_default());
                }
            }
            let code = v["exit_code"].as_i64().unwrap_or(1);
            return Ok(ExitCode::from(
                u8::try_from(code.clamp(0, 255)).unwrap_or(1),
            ));
        }
        Command::Webhook(cmd) => webhook(&app, &url, cmd).await?,
        Command::Token(cmd) => tokens(&app, cmd).await?,
        Command::Member(cmd) => members(&app, cmd).await?,
        Command::Server(cmd) => server(&app, cmd).await?,
        Command::Audit { limit, before } => {
            let mut path = format!("{}/audit?limit={limit}", app.ws_path());
            if let Some(b) = before {
                path.push_str(&format!("&before={}", url_escape(&b)));
            }
            let v: Value = app.client.get(&path).await?;
            app.show(&v, |v| {
                if v.as_array().is_some_and(Vec::is_empty) {
                    "no audit events".to_owned()
                } else {
                    lines(v, audit_line)
                }
            });
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "clank", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn webhook(app: &App, url: &str, cmd: WebhookCmd) -> Result<(), CliError> {
    let base = url.trim_end_matches('/');
    match cmd {
        WebhookCmd::Show { address } => {
            let mut v: Value = app
                .client
                .get(&format!("{}/webhook", app.service_path(&address)?))
                .await?;
            // Full URLs: the daemon knows its paths, the client the address it reaches it at.
            if let Some(endpoints) = v["endpoints"].as_object_mut() {
                for path in endpoints.values_mut() {
                    *path = json!(format!("{base}{}", path.as_str().unwrap_or_default()));
                }
            }
            app.show(&v, |w| {
                let mut out = format!(
                    "pushes to `{}` of {} deploy `{address}`{}\n",
                    w["branch"].as_str().unwrap_or("?"),
                    w["repo_url"].as_str().unwrap_or("?"),
                    if w["auto_deploy"].as_bool() == Some(false) {
                        " (auto_deploy is off: pushes are ignored)"
                    } else {
                        ""
                    }
                );
                for forge in ["github", "gitlab", "gitea"] {
                    out.push_str(&format!(
                        "{forge:<7} {}\n",
                        w["endpoints"][forge].as_str().unwrap_or("")
                    ));
                }
                out.push_str(
                    &match (w["secret"].as_str(), w["secret_visible"].as_bool()) {
                        (Some(secret), _) => format!("secret  {secret}"),
                        (None, Some(true)) => {
                            "secret  none yet: create one with `clank webhook rotate`".to_owned()
                        }
                        _ => "secret  (only Owners and Admins may see it)".to_owned(),
                    },
                );
                out
            });
        }
        WebhookCmd::Rotate => {
            let v: Value = app
                .client
                .post(&format!("{}/webhook-secret", app.ws_path()), &json!({}))
                .await?;
            app.show(&v, |v| {
                format!(
                    "new webhook secret (the old one no longer verifies):\n{}",
                    v["secret"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}

fn token_line(t: &Value) -> String {
    format!(
        "{:<36}  {:<14} {:<20} {:<10} {}{}",
        t["id"].as_str().unwrap_or(""),
        t["prefix"].as_str().unwrap_or(""),
        t["name"].as_str().unwrap_or(""),
        t["role"].as_str().unwrap_or(""),
        t["user"].as_str().unwrap_or(""),
        if t["revoked"].as_bool() == Some(true) {
            " (revoked)"
        } else {
            ""
        }
    )
}

async fn tokens(app: &App, cmd: TokenCmd) -> Result<(), CliError> {
    let base = format!("{}/tokens", app.ws_path());
    match cmd {
        TokenCmd::Create { name, role } => {
            let v: Value = app
                .client
                .post(&base, &json!({ "name": name, "role": role }))
                .await?;
            app.show(&v, |t| {
                format!(
                    "{}\n(shown once; store it now)",
                    t["token"].as_str().unwrap_or("")
                )
            });
        }
        TokenCmd::List { all } => {
            let path = if all {
                format!("{base}?all=true")
            } else {
                base
            };
            let v: Value = app.client.get(&path).await?;
            app.show(&v, |v| lines(v, token_line));
        }
        TokenCmd::Revoke { id } => {
            let v: Value = app
                .client
                .delete(&format!("{base}/{}", url_escape(&id)))
                .await?;
            app.show(&v, |_| format!("token {id} revoked"));
        }
    }
    Ok(())
}

fn member_line(m: &Value) -> String {
    format!(
        "{:<32} {:<20} {:<10} {}",
        m["email"].as_str().unwrap_or("?"),
        m["name"].as_str().unwrap_or(""),
        m["role"].as_str().unwrap_or(""),
        m["user_id"].as_str().unwrap_or(""),
    )
}

async fn members(app: &App, cmd: MemberCmd) -> Result<(), CliError> {
    let base = format!("{}/members", app.ws_path());
    match cmd {
        MemberCmd::List => {
            let v: Value = app.client.get(&base).await?;
            app.show(&v, |v| lines(v, member_line));
        }
        MemberCmd::Add { email, name, role } => {
            let v: Value = app
                .client
                .post(
                    &base,
                    &json!({ "name": name, "email": email, "role": role }),
                )
                .await?;
            app.show(&v, |m| {
                format!(
                    "{email} added as {role}. Their first token (shown once; hand it over now):\n{}",
                    m["token"].as_str().unwrap_or("")
                )
            });
        }
        MemberCmd::SetRole { user, role } => {
            let v: Value = app
                .client
                .patch(
                    &format!("{base}/{}", url_escape(&user)),
                    &json!({ "role": role }),
                )
                .await?;
            app.show(&v, |m| {
                format!(
                    "{} is now {}",
                    m["email"].as_str().unwrap_or(&user),
                    m["role"].as_str().unwrap_or("?")
                )
            });
        }
        MemberCmd::Remove { user } => {
            let v: Value = app
                .client
                .delete(&format!("{base}/{}", url_escape(&user)))
                .await?;
            app.show(&v, |r| {
                format!(
                    "removed {} ({}); {} token(s) deleted",
                    r["email"].as_str().unwrap_or(&user),
                    r["role"].as_str().unwrap_or("?"),
                    r["tokens_deleted"]
                )
            });
        }
    }
    Ok(())
}

fn server_line(s: &Value) -> String {
    let usage = &s["usage"];
    let gib = |b: &Value| b.as_u64().unwrap_or(0) as f64 / f64::from(1u32 << 30);
    format!(
        "{:<16} {:<20} cpu {:>5.1}%  mem {:.1}/{:.1} GiB  disk {:.0}/{:.0} GiB  agent {}",
        s["name"].as_str().unwrap_or(""),
        s["status"].as_str().unwrap_or(""),
        usage["cpu_percent"].as_f64().unwrap_or(0.0),
        gib(&usage["memory_used_bytes"]),
        gib(&usage["memory_total_bytes"]),
        gib(&usage["disk_used_bytes"]),
        gib(&usage["disk_total_bytes"]),
        s["kind"]["agent_version"].as_str().unwrap_or("-"),
    )
}

async fn server(app: &App, cmd: ServerCmd) -> Result<(), CliError> {
    let base = format!("{}/servers", app.ws_path());
    let joined = |v: &Value| {
        let token = v["join_token"].as_str().unwrap_or("");
        // TLS endpoints come with the certificate fingerprint the agent pins.
        let (scheme, pin) = match v["control_plane_fingerprint"].as_str() {
            Some(f) => ("https", format!(" --fingerprint {f}")),
            None => ("http", String::new()),
        };
        format!(
            "server {} registered.\njoin token (shown once): {token}\non the server run:\n  \
             clank-agent --control-plane {scheme}://<this-host>:<agent port>{pin} --join-token {token}",
            v["server"]["name"].as_str().unwrap_or(""),
        )
    };
    match cmd {
        ServerCmd::Add { name } => {
            let v: Value = app.client.post(&base, &json!({ "name": name })).await?;
            app.show(&v, joined);
        }
        ServerCmd::List => {
            let v: Value = app.client.get(&base).await?;
            app.show(&v, |v| {
                if v.as_array().is_some_and(Vec::is_empty) {
                    "no servers".to_owned()
                } else {
                    lines(v, server_line)
                }
            });
        }
        ServerCmd::Show { name } => {
            let v: Value = app
                .client
                .get(&format!("{base}/{}", url_escape(&name)))
                .await?;
            app.show(&v, server_line);
        }
        ServerCmd::JoinToken { name } => {
            let v: Value = app
                .client
                .post(
                    &format!("{base}/{}/join-token", url_escape(&name)),
                    &json!({}),
                )
                .await?;
            app.show(&v, joined);
        }
        ServerCmd::Revoke { name } => {
            let v: Value = app
                .client
                .post(&format!("{base}/{}/revoke", url_escape(&name)), &json!({}))
                .await?;
            app.show(&v, |s| {
                format!("revoked {}", s["name"].as_str().unwrap_or(""))
            });
        }
        ServerCmd::Release { version, binary } => {
            let bytes = std::fs::read(&binary)
                .map_err(|e| CliError::new(format!("read `{}`: {e}", binary.display()), 2))?;
            let path = format!(
                "{}/agent-release?version={}",
                app.ws_path(),
                url_escape(&version)
            );
            let v: Value = app.client.put_bytes(&path, bytes).await?;
            app.show(&v, |r| {
                format!(
                    "offered agent {} (sha256 {})",
                    r["version"].as_str().unwrap_or(""),
                    r["sha256"].as_str().unwrap_or("")
                )
            });
        }
    }
    Ok(())
}

/// Percent-escape a query value (anything but unreserved characters).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn lines(v: &Value, f: impl Fn(&Value) -> String) -> String {
    v.as_array()
        .map(|a| a.iter().map(f).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("clank: {e}");
            }
            ExitCode::from(e.code)
        }
    }
}
