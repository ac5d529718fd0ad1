//! Every platform operation as data: a [`Request`] (JSON `{"op": "get_service", ...}`) that
//! [`Platform::execute`] answers with a JSON value. The Python and Node bindings call the
//! platform only through this, so both expose exactly the same operations with the same
//! argument names, the same views (secrets masked) and the same errors; their public APIs,
//! written in the host languages, turn it back into idiomatic calls.

use std::time::Duration;

use clank_core::id::ServiceId;
use clank_core::model::Trigger;
use clank_core::{Error, InvalidInput, Result};
use clank_engine::{Event, EventStream};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use clank_api::lifecycle::DeleteQuery;
use clank_api::{Request, TargetRef};

use crate::{ConfigTarget, Platform};

/// Lines per workload a `logs` request answers by default, and at most.
const DEFAULT_LOG_TAIL: usize = 100;
const MAX_LOG_TAIL: usize = 10_000;

fn json<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("serialize response: {e}")))
}

impl Platform {
    /// A request's workspace, or the platform's default one when it names none.
    fn workspace_or_default<'a>(&'a self, workspace: &'a Option<String>) -> &'a str {
        workspace.as_deref().unwrap_or(&self.defaults().workspace)
    }

    fn target(&self, t: &TargetRef) -> Result<ConfigTarget> {
        Ok(match t {
            TargetRef::Workspace(slug) => ConfigTarget::Workspace(slug.clone()),
            TargetRef::Project(a) => ConfigTarget::Project(self.parse_project(a)?),
            TargetRef::Environment(a) => ConfigTarget::Environment(self.parse_environment(a)?),
            TargetRef::Service(a) => ConfigTarget::Service(self.parse_service(a)?),
            TargetRef::Team(a) => {
                let (workspace, team) = self.parse_team(a)?;
                ConfigTarget::Team { workspace, team }
            }
        })
    }

    /// Run one operation; the answer is the operation's view as JSON (secrets masked).
    pub async fn execute(&self, request: Request) -> Result<Value> {
        match request {
            Request::EnsureWorkspace { slug } => json(self.ensure_workspace(&slug).await?),
            Request::ListWorkspaces => json(self.list_workspaces().await?),
            Request::CreateProject {
                workspace,
                name,
                slug,
            } => json(
                self.create_project(
                    self.workspace_or_default(&workspace),
                    &name,
                    slug.as_deref(),
                )
                .await?,
            ),
            Request::GetProject { project } => {
                json(self.project(&self.parse_project(&project)?).await?.value)
            }
            Request::ListProjects {
                workspace,
                include_deleted,
            } => json(
                self.list_projects(self.workspace_or_default(&workspace), include_deleted)
                    .await?,
            ),
            Request::DeleteProject {
                project,
                purge,
                volumes,
            } => json(
                self.delete_project(
                    &self.parse_project(&project)?,
                    DeleteQuery { purge, volumes },
                )
                .await?,
            ),
            Request::RestoreProject { project } => {
                json(self.restore_project(&self.parse_project(&project)?).await?)
            }
            Request::DeleteEnvironment {
                environment,
                purge,
                volumes,
            } => json(
                self.delete_environment(
                    &self.parse_environment(&environment)?,
                    DeleteQuery { purge, volumes },
                )
                .await?,
            ),
            Request::RestoreEnvironment { environment } => json(
                self.restore_environment(&self.parse_environment(&environment)?)
                    .await?,
            ),
            Request::DeleteService {
                service,
                purge,
                volumes,
            } => json(
                self.delete_service(
                    &self.parse_service(&service)?,
                    DeleteQuery { purge, volumes },
                )
                .await?,
            ),
            Request::RestoreService { service } => {
                json(self.restore_service(&self.parse_service(&service)?).await?)
            }
            Request::CreateEnvironment { project, name } => json(
                self.create_environment(&self.parse_project(&project)?, &name)
                    .await?,
            ),
            Request::ListEnvironments {
                project,
                include_deleted,
            } => json(
                self.list_environments_with(&self.parse_project(&project)?, include_deleted)
                    .await?,
            ),
            Request::CloneEnvironment { environment, clone } => json(
                self.clone_environment(&self.parse_environment(&environment)?, clone)
                    .await?,
            ),
            Request::PlanPromotion { source, target } => {
                json(self.plan_promotion(&source, &target).await?)
            }
            Request::GetPlan { workspace, plan } => json(
                self.plan(self.workspace_or_default(&workspace), &plan)
                    .await?,
            ),
            Request::ApplyPlan { workspace, plan } => json(
                self.apply_plan(self.workspace_or_default(&workspace), &plan, None)
                    .await?,
            ),
            Request::ExportProject { project } => {
                json(self.export_project(&self.parse_project(&project)?).await?)
            }
            Request::ApplyDeclaration {
                workspace,
                declaration,
                secrets,
                source,
            } => {
                let planned = self
                    .plan_declaration(
                        self.workspace_or_default(&workspace),
                        declaration,
                        &secrets,
                        source,
                    )
                    .await?;
                json(self.store_declaration_plan(planned).await?)
            }
            Request::GetPreviewSettings { project } => json(
                self.preview_settings(&self.parse_project(&project)?)
                    .await?,
            ),
            Request::SetPreviewSettings { project, settings } => json(
                self.set_preview_settings(&self.parse_project(&project)?, settings)
                    .await?,
            ),
            Request::ListPreviews { project } => {
                json(self.list_previews(&self.parse_project(&project)?).await?)
            }
            // None as REST answers it: 404 (a preview that does not exist is not closed).
            Request::ClosePreview {
                project,
                pull_request,
            } => {
                let addr = self.parse_project(&project)?;
                match self.close_preview(&addr, pull_request).await? {
                    Some(outcome) => json(outcome),
                    None => Err(Error::not_found(
                        "preview",
                        format!("{addr}/pr-{pull_request}"),
                    )),
                }
            }
            Request::CreateService { environment, spec } => json(
                self.create_service(&self.parse_environment(&environment)?, spec)
                    .await?,
            ),
            Request::GetService { service } => {
                json(self.service(&self.parse_service(&service)?).await?.value)
            }
            Request::StopService { service } => {
                json(self.stop_service(&self.parse_service(&service)?).await?)
            }
            Request::StartService { service } => {
                json(self.start_service(&self.parse_service(&service)?).await?)
            }
            Request::UpdateService { service, patch } => json(
                self.update_service(&self.parse_service(&service)?, patch)
                    .await?,
            ),
            Request::ListServices {
                environment,
                include_deleted,
            } => json(
                self.list_services_with(&self.parse_environment(&environment)?, include_deleted)
                    .await?,
            ),
            Request::SetConfig { target, changes } => {
                let changes = clank_api::ConfigRequest { changes }.into_changes()?;
                json(self.set_config(&self.target(&target)?, &changes).await?)
            }
            Request::GetConfig { target } => json(self.config(&self.target(&target)?).await?),
            Request::ResolvedConfig { service } => {
                json(self.resolved_config(&self.parse_service(&service)?).await?)
            }
            Request::Deploy { service } => json(
                self.deploy(&self.parse_service(&service)?, Trigger::Manual { by: None })
                    .await?,
            ),
            Request::Rollback { service, number } => json(
                self.rollback(&self.parse_service(&service)?, number)
                    .await?,
            ),
            Request::Cancel { service, number } => {
                json(self.cancel(&self.parse_service(&service)?, number).await?)
            }
            Request::GetDeployment { service, number } => json(
                self.deployment(&self.parse_service(&service)?, number)
                    .await?,
            ),
            Request::ListDeployments {
                service,
                limit,
                before,
            } => json(
                self.deployments(&self.parse_service(&service)?, limit, before)
                    .await?,
            ),
            Request::DeployLog { service, number } => json(
                self.deploy_log(&self.parse_service(&service)?, number)
                    .await?,
            ),
            Request::ListBuilds {
                service,
                limit,
                before,
            } => json(
                self.builds(&self.parse_service(&service)?, limit, before)
                    .await?,
            ),
            Request::GetBuild { service, number } => {
                json(self.build(&self.parse_service(&service)?, number).await?)
            }
            Request::Wait {
                service,
                number,
                timeout_s,
            } => {
                let timeout = clank_api::ops::wait_timeout(timeout_s)?;
                json(
                    self.wait(&self.parse_service(&service)?, number, timeout)
                        .await?,
                )
            }
            Request::Endpoints { service, number } => {
                let found = self
                    .endpoints(&self.parse_service(&service)?, number)
                    .await?;
                json(found.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            }
            Request::CreateTeam {
                workspace,
                name,
                slug,
            } => json(
                self.create_team(
                    self.workspace_or_default(&workspace),
                    &name,
                    slug.as_deref(),
                )
                .await?,
            ),
            Request::ListTeams { workspace } => {
                json(self.teams(self.workspace_or_default(&workspace)).await?)
            }
            Request::GetTeam { team } => {
                let (ws, team) = self.parse_team(&team)?;
                json(self.team_view(&ws, &team).await?)
            }
            Request::DeleteTeam { team } => {
                let (ws, team) = self.parse_team(&team)?;
                json(self.delete_team(&ws, &team).await?)
            }
            Request::AddTeamMember { team, member } => {
                let (ws, team) = self.parse_team(&team)?;
                json(self.add_team_member(&ws, &team, &member).await?)
            }
            Request::RemoveTeamMember { team, member } => {
                let (ws, team) = self.parse_team(&team)?;
                json(self.remove_team_member(&ws, &team, &member).await?)
            }
            Request::ListTeamMembers { team } => {
                let (ws, team) = self.parse_team(&team)?;
                json(self.team_members(&ws, &team).await?)
            }
            Request::AssignProject { project, team } => json(
                self.assign_project(&self.parse_project(&project)?, team.as_deref())
                    .await?,
            ),
            Request::ListTemplates => json(self.list_templates()),
            Request::GetTemplate { name } => json(self.template(&name)?),
            Request::CreateStack { environment, stack } => json(
                self.create_stack(&self.parse_environment(&environment)?, stack)
                    .await?,
            ),
            Request::ListStacks { environment } => {
                json(self.stacks(&self.parse_environment(&environment)?).await?)
            }
            Request::GetStack { stack } => {
                let (env, slug) = self.parse_stack(&stack)?;
                json(self.stack(&env, &slug).await?)
            }
            Request::UpgradeStack { stack, to, apply } => {
                let (env, slug) = self.parse_stack(&stack)?;
                json(
                    self.upgrade_stack(&env, &slug, clank_api::StackUpgrade { to, apply })
                        .await?,
                )
            }
            Request::Status { service } => json(self.status(&self.parse_service(&service)?).await?),
            Request::Logs {
                service,
                tail,
                process,
                replica,
            } => {
                let selector = crate::WorkloadSelector { process, replica };
                let tail = tail.unwrap_or(DEFAULT_LOG_TAIL).min(MAX_LOG_TAIL);
                let lines: Vec<_> = self
                    .logs(&self.parse_service(&service)?, &selector, false, Some(tail))
                    .await?
                    .collect()
                    .await;
                json(lines.into_iter().collect::<Result<Vec<_>>>()?)
            }
            Request::Exec { service, exec } => {
                let selector = crate::WorkloadSelector {
                    process: exec.process,
                    replica: exec.replica,
                };
                let timeout = Duration::from_secs(exec.timeout_s.unwrap_or(30).clamp(1, 600));
                let out = self
                    .exec(
                        &self.parse_service(&service)?,
                        &selector,
                        exec.command,
                        timeout,
                    )
                    .await?;
                json(clank_api::services::ExecResult {
                    exit_code: out.exit_code,
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
            Request::ListServers { workspace } => {
                json(self.servers(self.workspace_or_default(&workspace)).await?)
            }
            Request::CreateServer { workspace, name } => json(
                self.create_server(self.workspace_or_default(&workspace), &name)
                    .await?,
            ),
            Request::GetServer { workspace, server } => json(
                self.server_view(self.workspace_or_default(&workspace), &server)
                    .await?,
            ),
            Request::ServerJoinToken { workspace, server } => json(
                self.server_join_token(self.workspace_or_default(&workspace), &server)
                    .await?,
            ),
            Request::RevokeServer { workspace, server } => json(
                self.revoke_server(self.workspace_or_default(&workspace), &server)
                    .await?,
            ),
            Request::ListMembers
            | Request::AddMember { .. }
            | Request::UpdateMember { .. }
            | Request::RemoveMember { .. }
            | Request::ListTokens { .. }
            | Request::CreateToken { .. }
            | Request::RevokeToken { .. } => Err(InvalidInput::new(
                "op",
                "embedded",
                "members and API tokens belong to a daemon's REST API: connect to the daemon \
                 (`clank.connect(url, token)` in Python, `Platform.connect(url, token)` in Node) \
                 or use `clank member` / `clank token`",
            )
            .into()),
            Request::ListAudit {
                workspace,
                limit,
                before,
            } => {
                let ws = self
                    .workspace(self.workspace_or_default(&workspace))
                    .await?;
                let limit = limit.unwrap_or(50);
                if !(1..=1000).contains(&limit) {
                    return Err(InvalidInput::new(
                        "limit",
                        "range",
                        "`limit` is between 1 and 1000",
                    )
                    .into());
                }
                let before = match before {
                    None => None,
                    Some(b) => Some(b.parse().map_err(|_| {
                        InvalidInput::new(
                            "before",
                            "uuid",
                            format!("`{}` is not an audit event id", b.escape_debug()),
                        )
                    })?),
                };
                json(self.catalog().audit_events(ws.id, limit, before).await?)
            }
        }
    }

    /// [`Platform::execute`] from and to JSON text: what the bindings call.
    pub async fn execute_json(&self, request: &str) -> Result<String> {
        let value = self.execute(clank_api::request_from_json(request)?).await?;
        Ok(value.to_string())
    }

    /// Follow events from now on, of one service (by address) or of all services. The
    /// subscription starts here; the address is resolved by the first [`Subscription::next`]
    /// (which fails if the service does not exist).
    pub fn subscribe(&self, service: Option<&str>) -> Subscription {
        Subscription {
            platform: self.clone(),
            stream: self.events(),
            service: service.map(|a| ServiceFilter::Address(a.to_owned())),
        }
    }
}

#[derive(Debug)]
enum ServiceFilter {
    Address(String),
    Id(ServiceId),
}

/// Events as they happen (see [`Platform::subscribe`]). A follower that falls more than the
/// engine's buffer behind skips the lost events; the deploy log keeps the full record.
pub struct Subscription {
    platform: Platform,
    stream: EventStream,
    service: Option<ServiceFilter>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event; `None` once the engine is gone. Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<Event>> {
        let wanted = match &self.service {
            None => None,
            Some(ServiceFilter::Id(id)) => Some(*id),
            Some(ServiceFilter::Address(a)) => {
                let addr = self.platform.parse_service(a)?;
                let id = self.platform.service(&addr).await?.id;
                self.service = Some(ServiceFilter::Id(id));
                Some(id)
            }
        };
        loop {
            match self.stream.next().await {
                None => return Ok(None),
                Some(e) if wanted.is_none_or(|id| id == e.service) => return Ok(Some(e)),
                Some(_) => {}
            }
        }
    }
}
