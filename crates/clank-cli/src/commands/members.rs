//! Members of the workspace and their roles.

use clank_api::members::{AddMember, MemberCreated, MemberPatch, MemberRemoved, MemberView};
use clank_core::model::Role;
use clap::Subcommand;

use crate::app::{App, lines, parse_role, url_escape, wire_name};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCmd {
    /// Members with their email and role.
    List,
    /// Add a member; prints their first token (shown once).
    Add {
        email: String,
        #[arg(long)]
        name: String,
        /// owner, admin, developer or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Change a member's role (by email or user id).
    SetRole {
        user: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Remove a member (by email or user id); their tokens in the workspace are deleted.
    Remove { user: String },
    /// Set a member's password for the dashboard's sign-in (by email or user id; an Owner,
    /// or the member themselves), read from the first line of standard input.
    SetPassword {
        user: String,
        /// Read the password from standard input (the only way: never an argument).
        #[arg(long)]
        password_stdin: bool,
    },
}

fn member_line(m: &MemberView) -> String {
    format!(
        "{:<32} {:<20} {:<10} {}",
        m.email.as_deref().unwrap_or("?"),
        m.name.as_deref().unwrap_or(""),
        wire_name(&m.member.role),
        m.member.user_id,
    )
}

pub(crate) async fn members(app: &App, cmd: MemberCmd) -> Result<(), CliError> {
    let base = format!("{}/members", app.ws_path());
    match cmd {
        MemberCmd::List => {
            let members: Vec<MemberView> = app.client.get(&base).await?;
            app.show(&members, |members| lines(members, member_line));
        }
        MemberCmd::Add { email, name, role } => {
            let created: MemberCreated = app
                .client
                .post(&base, &AddMember { name, email, role })
                .await?;
            app.show(&created, |m| {
                format!(
                    "{} added as {}. Their first token (shown once; hand it over now):\n{}",
                    m.user.email,
                    wire_name(&m.role),
                    m.token
                )
            });
        }
        MemberCmd::SetRole { user, role } => {
            let member: MemberView = app
                .client
                .patch(
                    &format!("{base}/{}", url_escape(&user)),
                    &MemberPatch { role },
                )
                .await?;
            app.show(&member, |m| {
                format!(
                    "{} is now {}",
                    m.email.as_deref().unwrap_or(&user),
                    wire_name(&m.member.role)
                )
            });
        }
        MemberCmd::SetPassword {
            user,
            password_stdin,
        } => {
            if !password_stdin {
                return Err(CliError::new(
                    "pass the password on standard input with --password-stdin",
                    2,
                ));
            }
            let password = super::session::read_password(std::io::stdin().lock())?;
            let () = app
                .client
                .put(
                    &format!("{base}/{}/password", url_escape(&user)),
                    &clank_api::members::SetPassword { password },
                )
                .await?;
            app.show(&serde_json::json!({"user": user}), |_| {
                format!("the dashboard password of {user} is set")
            });
        }
        MemberCmd::Remove { user } => {
            let removed: MemberRemoved = app
                .client
                .delete(&format!("{base}/{}", url_escape(&user)))
                .await?;
            app.show(&removed, |r| {
                format!(
                    "removed {} ({}); {} token(s) deleted",
                    r.email.as_deref().unwrap_or(&user),
                    wire_name(&r.role),
                    r.tokens_deleted
                )
            });
        }
    }
    Ok(())
}
