//! `clank`, the command-line client of the Clank daemon. Human output by default, `--json`
//! everywhere; addresses as `project/service` (workspace from the context, environment
//! `production`) or in full, `workspace/project/environment/service`.

mod app;
mod client;
mod commands;
mod plan;
mod style;
mod terminal;

use std::process::ExitCode;

use clank_core::address::AddressDefaults;
use clap::{Parser, Subcommand};
use client::{CliError, Client, Context};
use commands::config::ConfigCmd;
use commands::members::MemberCmd;
use commands::previews::PreviewCmd;
use commands::projects::{EnvCmd, ProjectCmd};
use commands::servers::ServerCmd;
use commands::services::ServiceCmd;
use commands::tokens::TokenCmd;
use commands::webhook::WebhookCmd;
use commands::{
    audit, config, deploy, members, projects, servers, services, session, tokens, webhook,
    workloads,
};

#[derive(Debug, Parser)]
#[command(
    name = "clank",
    version,
    about = "Deploy and run services on a Clank platform."
)]
struct Cli {
    /// The daemon's URL, http:// or https:// (default: the saved context, else
    /// http://127.0.0.1:7070).
    #[arg(long, env = "CLANK_URL", global = true)]
    url: Option<String>,
    /// A CA certificate file (PEM) to trust, besides the system's, for an https:// daemon
    /// whose certificate a private CA signed (default: the one saved with the context's URL;
    /// `clank init`/`clank login` save it).
    #[arg(long, env = "CLANK_CA_CERT", global = true, value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
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
enum PlanCmd {
    /// A plan by id: what it changes, until when it can be applied, whether it was.
    Show { id: String },
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
        /// Also give the Owner a password for the dashboard's sign-in, read from the first
        /// line of standard input (at least 12 characters; never a command-line argument).
        #[arg(long)]
        password_stdin: bool,
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
    /// One-click templates (databases, apps with their companions).
    #[command(subcommand)]
    Template(commands::templates::TemplateCmd),
    /// Stacks: a template's services, created and upgraded together.
    #[command(subcommand)]
    Stack(commands::templates::StackCmd),
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
    /// Promote a service's (`shop/staging/api`) or an environment's (`shop/staging`) running
    /// version to another environment: shows the plan, applies it after confirmation.
    Promote {
        /// A service or environment address (workspace: the context's).
        source: Option<String>,
        /// The target environment (its name in the source's project).
        #[arg(long)]
        to: Option<String>,
        /// Apply without asking.
        #[arg(long, short)]
        yes: bool,
        /// Apply a plan shown earlier, by id.
        #[arg(long, conflicts_with_all = ["source", "to"])]
        plan: Option<String>,
    },
    /// Stored plans (of `clank promote` and `clank apply`).
    #[command(subcommand)]
    Plan(PlanCmd),
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
    /// Run a command in the running service: `clank exec shop/web -- ls /data`, or
    /// interactively on a terminal: `clank exec -it shop/web -- sh`.
    Exec {
        address: String,
        /// Keep stdin open to the command (with `-t`, keys go to its terminal as typed).
        #[arg(long, short = 'i')]
        interactive: bool,
        /// Run the command on a terminal (TTY) sized like this one; Ctrl-C, colours and
        /// full-screen programs work as they do locally.
        #[arg(long, short = 't')]
        tty: bool,
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
    /// Preview environments per pull request: settings, the live ones, closing one.
    #[command(subcommand)]
    Preview(PreviewCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Members of the workspace and their roles.
    #[command(subcommand)]
    Member(MemberCmd),
    /// Teams of the workspace: members, projects (config: `clank config … --team`).
    #[command(subcommand)]
    Team(commands::teams::TeamCmd),
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
    /// Write a project (environments, services, config; secrets only by name) as TOML.
    Export { project: String },
    /// Show what applying an exported file would change; `--yes` applies it.
    Apply {
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
        /// Apply the plan shown (without it, only show it).
        #[arg(long)]
        yes: bool,
    },
    /// Print a shell completion script: `clank completions bash > ~/.local/share/bash-completion/completions/clank`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Dispatch: every command group lives in its module under `commands/`.
async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let ctx = Context::load();
    let url = cli
        .url
        .clone()
        .or(ctx.url.clone())
        .unwrap_or_else(|| "http://127.0.0.1:7070".into());
    let token = cli.token.clone().or(ctx.token.clone());
    // The saved CA certificate goes with the saved URL, not with another daemon's.
    let saved_ca_cert = (cli.url.is_none() || cli.url == ctx.url)
        .then(Context::saved_ca_cert)
        .flatten();
    match cli.ca_cert.clone() {
        Some(file) => client::trust(Some(file), false)?,
        None => client::trust(saved_ca_cert, true)?,
    }
    let defaults = AddressDefaults {
        workspace: ctx.workspace.clone().unwrap_or_else(|| "default".into()),
        ..AddressDefaults::default()
    };
    let app = app::App {
        client: Client::new(url.clone(), token),
        json: cli.json,
        defaults,
        style: style::Style::detect(cli.json),
    };
    match cli.command {
        Command::Init {
            workspace,
            name,
            email,
            password_stdin,
        } => session::init(&app, url, workspace, name, email, password_stdin).await?,
        Command::Login { token } => session::login(&app, url, token).await?,
        Command::Whoami => session::whoami(&app).await?,
        Command::Project(cmd) => projects::project(&app, cmd).await?,
        Command::Env(cmd) => projects::env(&app, cmd).await?,
        Command::Service(cmd) => services::service(&app, cmd).await?,
        Command::Template(cmd) => commands::templates::template(&app, cmd).await?,
        Command::Stack(cmd) => commands::templates::stack(&app, cmd).await?,
        Command::Config(cmd) => config::config(&app, cmd).await?,
        Command::Deploy { address, follow } => return deploy::deploy(&app, address, follow).await,
        Command::Rollback {
            address,
            number,
            follow,
        } => return deploy::rollback(&app, address, number, follow).await,
        Command::Promote {
            source,
            to,
            yes,
            plan,
        } => commands::promote::promote(&app, source, to, yes, plan).await?,
        Command::Plan(PlanCmd::Show { id }) => commands::promote::show(&app, id).await?,
        Command::Cancel { address, number } => deploy::cancel(&app, address, number).await?,
        Command::Status { address } => deploy::status(&app, address).await?,
        Command::Log { address, number } => deploy::log(&app, address, number).await?,
        Command::Builds {
            address,
            number,
            limit,
            before,
        } => deploy::builds(&app, address, number, limit, before).await?,
        Command::Logs {
            address,
            follow,
            tail,
            process,
            replica,
        } => workloads::logs(&app, address, follow, tail, process, replica).await?,
        Command::Exec {
            address,
            interactive,
            tty,
            process,
            replica,
            command,
        } => {
            return if interactive || tty {
                terminal::exec_tty(&app, address, process, replica, command).await
            } else {
                workloads::exec(&app, address, process, replica, command).await
            };
        }
        Command::Webhook(cmd) => webhook::webhook(&app, &url, cmd).await?,
        Command::Preview(cmd) => commands::previews::previews(&app, cmd).await?,
        Command::Token(cmd) => tokens::tokens(&app, cmd).await?,
        Command::Member(cmd) => members::members(&app, cmd).await?,
        Command::Team(cmd) => commands::teams::team(&app, cmd).await?,
        Command::Export { project } => commands::declare::export(&app, project).await?,
        Command::Apply { file, yes } => commands::declare::apply(&app, file, yes).await?,
        Command::Server(cmd) => servers::server(&app, cmd).await?,
        Command::Audit { limit, before } => audit::audit(&app, limit, before).await?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "clank", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        // Every `conflicts_with`/`requires` names a flag that exists, no two flags clash.
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
