//! Teams over HTTP: create, list, read, delete; their members (workspace members added and
//! taken out by user id or email); the projects assigned to them. A team grants nothing, so
//! every change needs `ManageTeamSettings` (Owner, Admin) and every read `Read`. Team-scope
//! config is in `config.rs` with the other scopes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::members::MemberView;
use clank_api::teams::{NewTeam, TeamMemberRef, TeamProjectRef, TeamView};
use clank_core::model::{Permission, Project, Team};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited};
use super::auth::Principal;
use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, WorkspacePath, project_addr};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, delete_team))
        .routes(routes!(list_team_members, add_team_member))
        .routes(routes!(remove_team_member))
        .routes(routes!(assign_project))
        .routes(routes!(unassign_project))
}

/// `{ws}/{t}`: a team's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TeamPath {
    /// workspace slug
    ws: String,
    /// team slug or id
    t: String,
}

/// `{ws}/{t}/{user}`: a team member's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TeamMemberPath {
    /// workspace slug
    ws: String,
    /// team slug or id
    t: String,
    /// the member's user id, or their email
    user: String,
}

/// `{ws}/{t}/{p}`: a project of a team.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TeamProjectPath {
    /// workspace slug
    ws: String,
    /// team slug or id
    t: String,
    /// project slug
    p: String,
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/teams",
    tag = "teams",
    params(WorkspacePath),
    responses(
        (status = 200, description = "the workspace's teams by slug", body = [TeamView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_teams(
    p: Principal,
    State(st): State<AppState>,
    Path(WorkspacePath { ws }): Path<WorkspacePath>,
) -> ApiResult<Json<Vec<TeamView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.teams(&ws).await?))
}

/// Create a team; its slug is made from the name when absent.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/teams",
    tag = "teams",
    params(WorkspacePath),
    request_body = NewTeam,
    responses(
        (status = 201, description = "success", body = Team),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn create_team(
    p: Principal,
    State(st): State<AppState>,
    Path(WorkspacePath { ws }): Path<WorkspacePath>,
    Body(req): Body<NewTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    p.in_workspace(&ws)?;
    let slug = req.slug.clone().unwrap_or_else(|| req.name.clone());
    let change = Change::new("team.create", format!("{ws}/teams/{slug}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        let team = st
            .platform
            .create_team(&ws, &req.name, req.slug.as_deref())
            .await?;
        Ok((StatusCode::CREATED, Json(team)))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/teams/{t}",
    tag = "teams",
    params(TeamPath),
    responses(
        (status = 200, description = "success", body = TeamView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_team(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamPath { ws, t }): Path<TeamPath>,
) -> ApiResult<Json<TeamView>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.team_view(&ws, &t).await?))
}

/// Delete a team. Refused (409) while projects are assigned to it, naming them; its
/// team-scope config and its place in members' teams go with it.
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/teams/{t}",
    tag = "teams",
    params(TeamPath),
    responses(
        (status = 200, description = "the team deleted", body = Team),
        (status = "4XX", description = "refused (409: projects are still assigned)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn delete_team(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamPath { ws, t }): Path<TeamPath>,
) -> ApiResult<Json<Team>> {
    p.in_workspace(&ws)?;
    let change = Change::new("team.delete", format!("{ws}/teams/{t}"));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        Ok(Json(st.platform.delete_team(&ws, &t).await?))
    })
    .await
}

#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/teams/{t}/members",
    tag = "teams",
    params(TeamPath),
    responses(
        (status = 200, description = "the team's members", body = [MemberView]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_team_members(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamPath { ws, t }): Path<TeamPath>,
) -> ApiResult<Json<Vec<MemberView>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    Ok(Json(st.platform.team_members(&ws, &t).await?))
}

/// Add a workspace member (user id or email) to the team; their role does not change.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/teams/{t}/members",
    tag = "teams",
    params(TeamPath),
    request_body = TeamMemberRef,
    responses(
        (status = 200, description = "the member, with their teams", body = MemberView),
        (status = "4XX", description = "refused (404: not a member of the workspace)", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn add_team_member(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamPath { ws, t }): Path<TeamPath>,
    Body(req): Body<TeamMemberRef>,
) -> ApiResult<Json<MemberView>> {
    p.in_workspace(&ws)?;
    let change = Change::new("team.member.add", format!("{ws}/teams/{t}/members"))
        .details(json!({"member": req.member}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        Ok(Json(
            st.platform.add_team_member(&ws, &t, &req.member).await?,
        ))
    })
    .await
}

/// Take a member out of the team (they stay in the workspace).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/teams/{t}/members/{user}",
    tag = "teams",
    params(TeamMemberPath),
    responses(
        (status = 200, description = "the member, with their teams", body = MemberView),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn remove_team_member(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamMemberPath { ws, t, user }): Path<TeamMemberPath>,
) -> ApiResult<Json<MemberView>> {
    p.in_workspace(&ws)?;
    let change = Change::new("team.member.remove", format!("{ws}/teams/{t}/members"))
        .details(json!({"member": user}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        Ok(Json(st.platform.remove_team_member(&ws, &t, &user).await?))
    })
    .await
}

/// Assign a project to the team (moving it from another team, if any): its services get the
/// team's config from their next deploy.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/teams/{t}/projects",
    tag = "teams",
    params(TeamPath),
    request_body = TeamProjectRef,
    responses(
        (status = 200, description = "the project as assigned", body = Project),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn assign_project(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamPath { ws, t }): Path<TeamPath>,
    Body(req): Body<TeamProjectRef>,
) -> ApiResult<Json<Project>> {
    p.in_workspace(&ws)?;
    let change = Change::new("team.project.assign", format!("{ws}/{}", req.project))
        .details(json!({"team": t}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        let addr = project_addr(&ws, &req.project)?;
        Ok(Json(st.platform.assign_project(&addr, Some(&t)).await?))
    })
    .await
}

/// Unassign a project from the team (a project of another team, or of none, is 404).
#[utoipa::path(
    delete,
    path = "/v1/workspaces/{ws}/teams/{t}/projects/{p}",
    tag = "teams",
    params(TeamProjectPath),
    responses(
        (status = 200, description = "the project, in no team", body = Project),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn unassign_project(
    p: Principal,
    State(st): State<AppState>,
    Path(TeamProjectPath { ws, t, p: project }): Path<TeamProjectPath>,
) -> ApiResult<Json<Project>> {
    p.in_workspace(&ws)?;
    let change =
        Change::new("team.project.unassign", format!("{ws}/{project}")).details(json!({"team": t}));
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        let addr = project_addr(&ws, &project)?;
        Ok(Json(st.platform.unassign_project_from(&addr, &t).await?))
    })
    .await
}
