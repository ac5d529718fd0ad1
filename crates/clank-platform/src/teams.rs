//! Teams: a workspace's members grouped, owning projects, with a config scope of their own
//! (the cascade puts a project's team between the workspace and the project). A team grants
//! nothing: who may do what stays the member's role in the workspace, so these operations
//! check no permission; the daemon checks the role table (`ManageTeamSettings` to change, `Read`
//! to look).
//!
//! A team is named by its slug or its id, always inside one workspace: another workspace's team
//! is not found, whichever way it is named. Deleting a team is refused while projects are
//! assigned to it (soft-deleted ones included), naming them, so no project silently loses the
//! config its team gave it; the team's config layer and its place in members' team sets go in
//! the same write as the team. Every write that depends on the team (assigning a project,
//! adding a member) re-asserts the team's record, so it cannot race a delete.

use clank_core::address::ProjectAddress;
use clank_core::config::Scope;
use clank_core::id::{TeamId, UserId};
use clank_core::model::{Member, Project, Team, User, Workspace};
use clank_core::store::catalog::{Batch, Page, Versioned};
use clank_core::{Error, InvalidInput, Result, Timestamp};

use clank_api::members::MemberView;
use clank_api::teams::TeamView;

use crate::{Platform, values};

impl Platform {
    /// `[workspace/]team` (a slug or an id), the workspace defaulting to the platform's.
    pub fn parse_team(&self, s: &str) -> Result<(String, String)> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [team] if !team.is_empty() => Ok((self.defaults().workspace.clone(), (*team).into())),
            [ws, team] if !ws.is_empty() && !team.is_empty() => {
                Ok(((*ws).to_owned(), (*team).to_owned()))
            }
            _ => Err(InvalidInput::new(
                "team",
                "format",
                format!(
                    "`{}` is not a team address; expected `[workspace/]team`",
                    s.escape_debug()
                ),
            )
            .into()),
        }
    }

    /// The team `team` (slug or id) of `workspace`.
    pub async fn team(&self, workspace: &str, team: &str) -> Result<Versioned<Team>> {
        let ws = self.workspace(workspace).await?;
        self.team_in(&ws, team).await
    }

    async fn team_in(&self, ws: &Workspace, team: &str) -> Result<Versioned<Team>> {
        if let Ok(id) = team.parse::<TeamId>() {
            // Another workspace's team is as absent as a team that never was.
            if let Some(t) = self.catalog().get::<Team>(&id.to_string()).await? {
                if t.workspace_id == ws.id {
                    return Ok(t);
                }
            }
        }
        self.catalog()
            .lookup::<Team>("slug", &format!("{}:{team}", ws.id))
            .await?
            .ok_or_else(|| Error::not_found("team", format!("{}/{team}", ws.slug)))
    }

    pub async fn create_team(
        &self,
        workspace: &str,
        name: &str,
        slug: Option<&str>,
    ) -> Result<Team> {
        let ws = self.workspace(workspace).await?;
        let team = Team::new(ws.id, name, slug, Timestamp::now())?;
        self.catalog().create(&team).await?;
        Ok(team)
    }

    /// The workspace's teams by slug, each with its counts.
    pub async fn teams(&self, workspace: &str) -> Result<Vec<TeamView>> {
        let ws = self.workspace(workspace).await?;
        let teams = values(
            self.catalog()
                .find::<Team>("workspace", &ws.id.to_string(), Page::all())
                .await?
                .items,
        );
        let members = self.roster_for_teams(&ws).await?;
        let projects = self.projects_for_teams(&ws).await?;
        let mut out: Vec<TeamView> = teams
            .into_iter()
            .map(|t| view(t, &members, &projects))
            .collect();
        out.sort_by(|a, b| a.team.slug.cmp(&b.team.slug));
        Ok(out)
    }

    pub async fn team_view(&self, workspace: &str, team: &str) -> Result<TeamView> {
        let ws = self.workspace(workspace).await?;
        let t = self.team_in(&ws, team).await?;
        let members = self.roster_for_teams(&ws).await?;
        let projects = self.projects_for_teams(&ws).await?;
        Ok(view(t.value, &members, &projects))
    }

    /// Delete a team with no project assigned; its config layer and its place in every
    /// member's teams go in the same write.
    pub async fn delete_team(&self, workspace: &str, team: &str) -> Result<Team> {
        let ws = self.workspace(workspace).await?;
        loop {
            let t = self.team_in(&ws, team).await?;
            let assigned: Vec<String> = self
                .projects_for_teams(&ws)
                .await?
                .into_iter()
                .filter(|p| p.team_id == Some(t.id))
                .map(|p| match p.deleted_at {
                    Some(_) => format!("`{}` (deleted)", p.slug),
                    None => format!("`{}`", p.slug),
                })
                .collect();
            if !assigned.is_empty() {
                return Err(Error::Conflict(format!(
                    "team `{}` still has projects: {}; unassign them first \
                     (`clank team unassign <project>`)",
                    t.slug,
                    assigned.join(", ")
                )));
            }
            let mut b = Batch::new();
            b.delete(&t);
            for m in self.roster_for_teams(&ws).await? {
                if m.teams.contains(&t.id) {
                    let mut next = m.value.clone();
                    next.teams.remove(&t.id);
                    b.update(&m, &next)?;
                }
            }
            if let Some(layer) = self.catalog().config_layer(Scope::Team(t.id)).await? {
                b.delete(&layer);
            }
            match self.catalog().commit(b).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(t.value),
            }
        }
    }

    /// Add a workspace member (`who`: user id or email) to a team; already in it is no change.
    pub async fn add_team_member(
        &self,
        workspace: &str,
        team: &str,
        who: &str,
    ) -> Result<MemberView> {
        self.change_team_member(workspace, team, who, true).await
    }

    /// Take a member out of a team; not in it is no change.
    pub async fn remove_team_member(
        &self,
        workspace: &str,
        team: &str,
        who: &str,
    ) -> Result<MemberView> {
        self.change_team_member(workspace, team, who, false).await
    }

    async fn change_team_member(
        &self,
        workspace: &str,
        team: &str,
        who: &str,
        add: bool,
    ) -> Result<MemberView> {
        let ws = self.workspace(workspace).await?;
        loop {
            let t = self.team_in(&ws, team).await?;
            let m = self.member_for_teams(&ws, who).await?;
            let mut next = m.value.clone();
            let changed = if add {
                next.teams.insert(t.id)
            } else {
                next.teams.remove(&t.id)
            };
            if changed {
                let mut b = Batch::new();
                b.update(&m, &next)?.update(&t, &t.value)?;
                match self.catalog().commit(b).await {
                    Err(Error::WriteConflict { .. }) => continue,
                    Err(e) => return Err(e),
                    Ok(_) => {}
                }
            }
            return self.member_view_for_teams(next).await;
        }
    }

    /// The team's members with their names and emails.
    pub async fn team_members(&self, workspace: &str, team: &str) -> Result<Vec<MemberView>> {
        let ws = self.workspace(workspace).await?;
        let t = self.team_in(&ws, team).await?;
        let mut out = Vec::new();
        for m in self.roster_for_teams(&ws).await? {
            if m.teams.contains(&t.id) {
                out.push(self.member_view_for_teams(m.value).await?);
            }
        }
        Ok(out)
    }

    /// Assign a project to `team` (slug or id) of its workspace, or with `None` unassign it.
    /// Its services get the team's config from their next deploy. Assigning needs a live
    /// project; unassigning works on a deleted one too, so its team can be deleted.
    pub async fn assign_project(
        &self,
        addr: &ProjectAddress,
        team: Option<&str>,
    ) -> Result<Project> {
        let ws = self.workspace(addr.workspace()).await?;
        loop {
            let p = self.project(addr).await?;
            let mut next = p.value.clone();
            let mut b = Batch::new();
            match team {
                Some(team) => {
                    crate::live(&p)?;
                    let t = self.team_in(&ws, team).await?;
                    next.team_id = Some(t.id);
                    b.update(&t, &t.value)?;
                }
                None => next.team_id = None,
            }
            if next.team_id == p.team_id {
                return Ok(next);
            }
            b.update(&p, &next)?;
            match self.catalog().commit(b).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(next),
            }
        }
    }

    /// Unassign a project from `team` only: a project of another team, or of none, is not
    /// found. Checked and written in one conditional write.
    pub async fn unassign_project_from(
        &self,
        addr: &ProjectAddress,
        team: &str,
    ) -> Result<Project> {
        let ws = self.workspace(addr.workspace()).await?;
        loop {
            let t = self.team_in(&ws, team).await?;
            let p = self.project(addr).await?;
            if p.team_id != Some(t.id) {
                return Err(Error::not_found(
                    "project",
                    format!("{addr} in team {}", t.slug),
                ));
            }
            let mut next = p.value.clone();
            next.team_id = None;
            let mut b = Batch::new();
            b.update(&p, &next)?.update(&t, &t.value)?;
            match self.catalog().commit(b).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(next),
            }
        }
    }

    async fn roster_for_teams(&self, ws: &Workspace) -> Result<Vec<Versioned<Member>>> {
        Ok(self
            .catalog()
            .find::<Member>("workspace", &ws.id.to_string(), Page::all())
            .await?
            .items)
    }

    async fn projects_for_teams(&self, ws: &Workspace) -> Result<Vec<Project>> {
        Ok(values(
            self.catalog().projects_in(ws.id, Page::all()).await?.items,
        ))
    }

    /// The member `who` names in `ws`: a user id, or the user's email.
    async fn member_for_teams(&self, ws: &Workspace, who: &str) -> Result<Versioned<Member>> {
        let cat = self.catalog();
        let user = if who.contains('@') {
            cat.lookup::<User>("email", &who.trim().to_lowercase())
                .await?
                .map(|u| u.value.id)
        } else {
            Some(who.trim().parse::<UserId>().map_err(|_| {
                InvalidInput::new(
                    "member",
                    "format",
                    format!("`{}` is neither a user id nor an email", who.escape_debug()),
                )
            })?)
        };
        let member = match user {
            Some(u) => cat.get::<Member>(&format!("{}:{u}", ws.id)).await?,
            None => None,
        };
        member.ok_or_else(|| {
            Error::not_found("member", format!("{} in workspace {}", who.trim(), ws.slug))
        })
    }

    async fn member_view_for_teams(&self, member: Member) -> Result<MemberView> {
        let user = self
            .catalog()
            .get::<User>(&member.user_id.to_string())
            .await?;
        Ok(MemberView {
            member,
            name: user.as_ref().map(|u| u.value.name.clone()),
            email: user.map(|u| u.value.email),
        })
    }
}

fn view(team: Team, members: &[Versioned<Member>], projects: &[Project]) -> TeamView {
    TeamView {
        members: members
            .iter()
            .filter(|m| m.teams.contains(&team.id))
            .count(),
        projects: projects
            .iter()
            .filter(|p| p.team_id == Some(team.id))
            .map(|p| p.slug.clone())
            .collect(),
        team,
    }
}
