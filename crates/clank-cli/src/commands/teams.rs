//! Teams of the workspace: create, list, delete; their members; the projects assigned to them.
//! A team's config is `clank config … --team <team>`.

use clank_api::members::MemberView;
use clank_api::teams::{NewTeam, TeamMemberRef, TeamProjectRef, TeamView};
use clank_core::address::ProjectAddress;
use clank_core::model::{Project, Team};
use clap::Subcommand;

use crate::app::{App, input, lines, url_escape, wire_name};
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum TeamCmd {
    /// Create a team (the slug is made from the name unless given).
    Create {
        name: String,
        #[arg(long)]
        slug: Option<String>,
    },
    /// Teams with their member count and projects.
    List,
    /// One team: its name, member count and projects.
    Show { team: String },
    /// Delete a team; refused while projects are assigned to it.
    Delete { team: String },
    /// Add a workspace member (by email or user id) to a team.
    AddMember { team: String, user: String },
    /// Take a member (by email or user id) out of a team.
    RemoveMember { team: String, user: String },
    /// A team's members.
    Members { team: String },
    /// Assign a project to a team: its services get the team's config from their next deploy.
    Assign { team: String, project: String },
    /// Unassign a project from its team.
    Unassign { project: String },
}

fn team_line(t: &TeamView) -> String {
    format!(
        "{:<24} {:<24} {:>3} member(s)  {}",
        t.team.slug,
        t.team.name,
        t.members,
        t.projects.join(", ")
    )
}

fn member_line(m: &MemberView) -> String {
    format!(
        "{:<32} {:<20} {}",
        m.email.as_deref().unwrap_or("?"),
        m.name.as_deref().unwrap_or(""),
        wire_name(&m.member.role),
    )
}

pub(crate) async fn team(app: &App, cmd: TeamCmd) -> Result<(), CliError> {
    let base = format!("{}/teams", app.ws_path());
    let at = |team: &str| format!("{base}/{}", url_escape(team));
    match cmd {
        TeamCmd::Create { name, slug } => {
            let team: Team = app.client.post(&base, &NewTeam { name, slug }).await?;
            app.show(&team, |t| format!("team `{}` created", t.slug));
        }
        TeamCmd::List => {
            let teams: Vec<TeamView> = app.client.get(&base).await?;
            app.show(&teams, |teams| lines(teams, team_line));
        }
        TeamCmd::Show { team } => {
            let view: TeamView = app.client.get(&at(&team)).await?;
            app.show(&view, |t| {
                let projects = if t.projects.is_empty() {
                    "none".to_owned()
                } else {
                    t.projects.join(", ")
                };
                format!(
                    "team `{}` ({})\n  members:  {}\n  projects: {projects}\n  created:  {}",
                    t.team.slug, t.team.name, t.members, t.team.created_at
                )
            });
        }
        TeamCmd::Delete { team } => {
            let deleted: Team = app.client.delete(&at(&team)).await?;
            app.show(&deleted, |t| format!("team `{}` deleted", t.slug));
        }
        TeamCmd::AddMember { team, user } => {
            let m: MemberView = app
                .client
                .post(
                    &format!("{}/members", at(&team)),
                    &TeamMemberRef {
                        member: user.clone(),
                    },
                )
                .await?;
            app.show(&m, |m| {
                format!(
                    "{} is in team `{team}`",
                    m.email.as_deref().unwrap_or(&user)
                )
            });
        }
        TeamCmd::RemoveMember { team, user } => {
            let m: MemberView = app
                .client
                .delete(&format!("{}/members/{}", at(&team), url_escape(&user)))
                .await?;
            app.show(&m, |m| {
                format!(
                    "{} is no longer in team `{team}`",
                    m.email.as_deref().unwrap_or(&user)
                )
            });
        }
        TeamCmd::Members { team } => {
            let members: Vec<MemberView> =
                app.client.get(&format!("{}/members", at(&team))).await?;
            app.show(&members, |members| lines(members, member_line));
        }
        TeamCmd::Assign { team, project } => {
            let addr = ProjectAddress::parse(&project, &app.defaults).map_err(input)?;
            let [w, p] = addr.segments();
            let assigned: Project = app
                .client
                .post(
                    &format!("/v1/workspaces/{w}/teams/{}/projects", url_escape(&team)),
                    &TeamProjectRef {
                        project: p.to_owned(),
                    },
                )
                .await?;
            app.show(&assigned, |p| {
                format!(
                    "project `{}` is in team `{team}`; its services get the team's config \
                     from their next deploy",
                    p.slug
                )
            });
        }
        TeamCmd::Unassign { project } => {
            let addr = ProjectAddress::parse(&project, &app.defaults).map_err(input)?;
            let [w, p] = addr.segments();
            let current: Project = app.client.get(&app.project_path(&project)?).await?;
            let Some(team) = current.team_id else {
                return Err(CliError::new(format!("project `{addr}` is in no team"), 1));
            };
            let unassigned: Project = app
                .client
                .delete(&format!("/v1/workspaces/{w}/teams/{team}/projects/{p}"))
                .await?;
            app.show(&unassigned, |p| {
                format!("project `{}` is in no team", p.slug)
            });
        }
    }
    Ok(())
}
