//! Each operation ([`Request`]) as the REST call that does it, answering the same JSON the
//! embedded platform's `execute` answers: the bindings' methods work unchanged on either.

use std::time::Duration;

use clank_api::{Request, TargetRef};
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::deploy::DeploymentStatus;
use clank_core::{Error, ErrorKind, InvalidInput, Result};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use crate::Client;
use crate::http::error;

/// A call: method, URL and body.
struct Call {
    method: Method,
    url: Url,
    body: Option<Value>,
}

impl Call {
    fn get(url: Url) -> Call {
        Call {
            method: Method::GET,
            url,
            body: None,
        }
    }

    fn post(url: Url, body: Option<Value>) -> Call {
        Call {
            method: Method::POST,
            url,
            body,
        }
    }

    fn with(method: Method, url: Url, body: Value) -> Call {
        Call {
            method,
            url,
            body: Some(body),
        }
    }

    fn delete(url: Url) -> Call {
        Call {
            method: Method::DELETE,
            url,
            body: None,
        }
    }

    /// Adds query parameters (`None` values left out).
    fn query<const N: usize>(mut self, pairs: [(&str, Option<String>); N]) -> Call {
        {
            let mut q = self.url.query_pairs_mut();
            for (k, v) in pairs {
                if let Some(v) = v {
                    q.append_pair(k, &v);
                }
            }
        }
        if self.url.query() == Some("") {
            self.url.set_query(None);
        }
        self
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Internal(format!("encode request: {e}")))
}

fn flag(b: bool) -> Option<String> {
    b.then(|| "true".to_owned())
}

impl Client {
    fn project_path(&self, a: &str) -> Result<(ProjectAddress, Vec<String>)> {
        let addr = ProjectAddress::parse(a, &self.defaults)?;
        let [ws, p] = addr.segments();
        let path = ["workspaces", ws, "projects", p]
            .map(str::to_owned)
            .to_vec();
        Ok((addr, path))
    }

    fn environment_path(&self, a: &str) -> Result<Vec<String>> {
        let addr = EnvironmentAddress::parse(a, &self.defaults)?;
        let [ws, p, e] = addr.segments();
        Ok(["workspaces", ws, "projects", p, "environments", e]
            .map(str::to_owned)
            .to_vec())
    }

    fn service_path(&self, a: &str) -> Result<Vec<String>> {
        let addr = ServiceAddress::parse(a, &self.defaults)?;
        let [ws, p, e, s] = addr.segments();
        Ok([
            "workspaces",
            ws,
            "projects",
            p,
            "environments",
            e,
            "services",
            s,
        ]
        .map(str::to_owned)
        .to_vec())
    }

    /// `[workspace/]team` as `workspaces/{ws}/teams/{t}`.
    fn team_path(&self, a: &str) -> Result<Vec<String>> {
        let (ws, team) = match a.split('/').collect::<Vec<_>>().as_slice() {
            [t] if !t.is_empty() => (self.defaults.workspace.clone(), (*t).to_owned()),
            [ws, t] if !ws.is_empty() && !t.is_empty() => ((*ws).to_owned(), (*t).to_owned()),
            _ => {
                return Err(InvalidInput::new(
                    "team",
                    "format",
                    format!(
                        "`{}` is not a team address; expected `[workspace/]team`",
                        a.escape_debug()
                    ),
                )
                .into());
            }
        };
        Ok(vec!["workspaces".into(), ws, "teams".into(), team])
    }

    fn workspace_path(&self, workspace: &Option<String>) -> Vec<String> {
        let ws = workspace.as_deref().unwrap_or(&self.defaults.workspace);
        vec!["workspaces".into(), ws.to_owned()]
    }

    /// The URL of `base` followed by `more`.
    fn at(&self, base: &[String], more: &[&str]) -> Url {
        let segments: Vec<&str> = base
            .iter()
            .map(String::as_str)
            .chain(more.iter().copied())
            .collect();
        self.http.url(&segments)
    }

    fn config_path(&self, target: &TargetRef) -> Result<Vec<String>> {
        let mut path = match target {
            TargetRef::Workspace(slug) => vec!["workspaces".into(), slug.clone()],
            TargetRef::Project(a) => self.project_path(a)?.1,
            TargetRef::Environment(a) => self.environment_path(a)?,
            TargetRef::Service(a) => self.service_path(a)?,
            TargetRef::Team(a) => self.team_path(a)?,
        };
        path.push("config".into());
        Ok(path)
    }

    /// Run one operation against the daemon.
    pub async fn execute(&self, request: Request) -> Result<Value> {
        self.subscriptions_open().await;
        let call = match request {
            Request::EnsureWorkspace { .. } | Request::ListWorkspaces => {
                return Err(InvalidInput::new(
                    "op",
                    "remote",
                    format!(
                        "a token speaks for one workspace (`{}`); workspaces are made on the \
                         daemon's host (`clank init`, or `POST /v1/workspaces` with the instance \
                         operator's token)",
                        self.defaults.workspace
                    ),
                )
                .into());
            }
            Request::CreateProject {
                workspace,
                name,
                slug,
            } => Call::post(
                self.at(&self.workspace_path(&workspace), &["projects"]),
                Some(json!({"name": name, "slug": slug})),
            ),
            Request::GetProject { project } => {
                Call::get(self.at(&self.project_path(&project)?.1, &[]))
            }
            Request::ListProjects {
                workspace,
                include_deleted,
            } => Call::get(self.at(&self.workspace_path(&workspace), &["projects"]))
                .query([("include_deleted", flag(include_deleted))]),
            Request::DeleteProject {
                project,
                purge,
                volumes,
            } => Call::delete(self.at(&self.project_path(&project)?.1, &[]))
                .query([("purge", flag(purge)), ("volumes", flag(volumes))]),
            Request::RestoreProject { project } => {
                Call::post(self.at(&self.project_path(&project)?.1, &["restore"]), None)
            }
            Request::DeleteEnvironment {
                environment,
                purge,
                volumes,
            } => Call::delete(self.at(&self.environment_path(&environment)?, &[]))
                .query([("purge", flag(purge)), ("volumes", flag(volumes))]),
            Request::RestoreEnvironment { environment } => Call::post(
                self.at(&self.environment_path(&environment)?, &["restore"]),
                None,
            ),
            Request::DeleteService {
                service,
                purge,
                volumes,
            } => Call::delete(self.at(&self.service_path(&service)?, &[]))
                .query([("purge", flag(purge)), ("volumes", flag(volumes))]),
            Request::RestoreService { service } => {
                Call::post(self.at(&self.service_path(&service)?, &["restore"]), None)
            }
            Request::CreateEnvironment { project, name } => Call::post(
                self.at(&self.project_path(&project)?.1, &["environments"]),
                Some(json!({"name": name})),
            ),
            Request::ListEnvironments {
                project,
                include_deleted,
            } => Call::get(self.at(&self.project_path(&project)?.1, &["environments"]))
                .query([("include_deleted", flag(include_deleted))]),
            Request::CloneEnvironment { environment, clone } => Call::post(
                self.at(&self.environment_path(&environment)?, &["clone"]),
                Some(to_value(&clone)?),
            ),
            Request::PlanPromotion { source, target } => Call::post(
                self.at(&self.workspace_path(&None), &["promotions"]),
                Some(json!({"source": source, "target": target})),
            ),
            Request::GetPlan { workspace, plan } => {
                Call::get(self.at(&self.workspace_path(&workspace), &["plans", &plan]))
            }
            Request::ApplyPlan { workspace, plan } => Call::post(
                self.at(&self.workspace_path(&workspace), &["plans", &plan, "apply"]),
                None,
            ),
            Request::ExportProject { project } => {
                Call::get(self.at(&self.project_path(&project)?.1, &["declaration"]))
            }
            Request::ApplyDeclaration {
                workspace,
                declaration,
                secrets,
                source,
            } => Call::post(
                self.at(&self.workspace_path(&workspace), &["declarations"]),
                Some(to_value(&clank_api::declarations::PlanDeclaration {
                    declaration,
                    secrets,
                    source,
                })?),
            ),
            Request::GetPreviewSettings { project } => {
                Call::get(self.at(&self.project_path(&project)?.1, &["previews"]))
            }
            Request::SetPreviewSettings { project, settings } => Call::with(
                Method::PUT,
                self.at(&self.project_path(&project)?.1, &["previews"]),
                to_value(&settings)?,
            ),
            Request::ListPreviews { project } => Call::get(self.at(
                &self.project_path(&project)?.1,
                &["previews", "environments"],
            )),
            Request::ClosePreview {
                project,
                pull_request,
            } => Call::delete(self.at(
                &self.project_path(&project)?.1,
                &["previews", &pull_request.to_string()],
            )),
            Request::CreateService { environment, spec } => Call::post(
                self.at(&self.environment_path(&environment)?, &["services"]),
                Some(to_value(&spec)?),
            ),
            Request::GetService { service } => {
                Call::get(self.at(&self.service_path(&service)?, &[]))
            }
            Request::UpdateService { service, patch } => Call::with(
                Method::PATCH,
                self.at(&self.service_path(&service)?, &[]),
                to_value(&patch)?,
            ),
            Request::StopService { service } => {
                Call::post(self.at(&self.service_path(&service)?, &["stop"]), None)
            }
            Request::StartService { service } => {
                Call::post(self.at(&self.service_path(&service)?, &["start"]), None)
            }
            Request::ListServices {
                environment,
                include_deleted,
            } => Call::get(self.at(&self.environment_path(&environment)?, &["services"]))
                .query([("include_deleted", flag(include_deleted))]),
            Request::SetConfig { target, changes } => Call::with(
                Method::PATCH,
                self.at(&self.config_path(&target)?, &[]),
                to_value(&clank_api::ConfigRequest { changes })?,
            ),
            Request::GetConfig { target } => Call::get(self.at(&self.config_path(&target)?, &[])),
            Request::ResolvedConfig { service } => {
                Call::get(self.at(&self.service_path(&service)?, &["config", "resolved"]))
            }
            Request::Deploy { service } => Call::post(
                self.at(&self.service_path(&service)?, &["deployments"]),
                None,
            ),
            Request::Rollback { service, number } => Call::post(
                self.at(
                    &self.service_path(&service)?,
                    &["deployments", &number.to_string(), "rollback"],
                ),
                None,
            ),
            Request::Cancel { service, number } => Call::post(
                self.at(
                    &self.service_path(&service)?,
                    &["deployments", &number.to_string(), "cancel"],
                ),
                None,
            ),
            Request::GetDeployment { service, number } => Call::get(self.at(
                &self.service_path(&service)?,
                &["deployments", &number.to_string()],
            )),
            Request::ListDeployments {
                service,
                limit,
                before,
            } => Call::get(self.at(&self.service_path(&service)?, &["deployments"])).query([
                ("limit", Some(limit.to_string())),
                ("before", before.map(|b| b.to_string())),
            ]),
            Request::DeployLog { service, number } => Call::get(self.at(
                &self.service_path(&service)?,
                &["deployments", &number.to_string(), "log"],
            )),
            Request::ListBuilds {
                service,
                limit,
                before,
            } => Call::get(self.at(&self.service_path(&service)?, &["builds"])).query([
                ("limit", Some(limit.to_string())),
                ("before", before.map(|b| b.to_string())),
            ]),
            Request::GetBuild { service, number } => Call::get(self.at(
                &self.service_path(&service)?,
                &["builds", &number.to_string()],
            )),
            Request::Wait {
                service,
                number,
                timeout_s,
            } => return self.wait(&service, number, timeout_s).await,
            Request::Endpoints { service, number } => Call::get(self.at(
                &self.service_path(&service)?,
                &["deployments", &number.to_string(), "endpoints"],
            )),
            Request::CreateTeam {
                workspace,
                name,
                slug,
            } => Call::post(
                self.at(&self.workspace_path(&workspace), &["teams"]),
                Some(json!({"name": name, "slug": slug})),
            ),
            Request::ListTeams { workspace } => {
                Call::get(self.at(&self.workspace_path(&workspace), &["teams"]))
            }
            Request::GetTeam { team } => Call::get(self.at(&self.team_path(&team)?, &[])),
            Request::DeleteTeam { team } => Call::delete(self.at(&self.team_path(&team)?, &[])),
            Request::AddTeamMember { team, member } => Call::post(
                self.at(&self.team_path(&team)?, &["members"]),
                Some(json!({"member": member})),
            ),
            Request::RemoveTeamMember { team, member } => {
                Call::delete(self.at(&self.team_path(&team)?, &["members", &member]))
            }
            Request::ListTeamMembers { team } => {
                Call::get(self.at(&self.team_path(&team)?, &["members"]))
            }
            Request::AssignProject { project, team } => {
                return self.assign_project(&project, team.as_deref()).await;
            }
            Request::ListTemplates => Call::get(self.http.url(&["templates"])),
            Request::GetTemplate { name } => Call::get(self.http.url(&["templates", &name])),
            Request::CreateStack { environment, stack } => Call::post(
                self.at(&self.environment_path(&environment)?, &["stacks"]),
                Some(to_value(&stack)?),
            ),
            Request::ListStacks { environment } => {
                Call::get(self.at(&self.environment_path(&environment)?, &["stacks"]))
            }
            Request::GetStack { stack } => {
                let (env, slug) = self.stack_path(&stack)?;
                Call::get(self.at(&env, &["stacks", &slug]))
            }
            Request::UpgradeStack { stack, to, apply } => {
                let (env, slug) = self.stack_path(&stack)?;
                Call::post(
                    self.at(&env, &["stacks", &slug, "upgrade"]),
                    Some(to_value(&clank_api::StackUpgrade { to, apply })?),
                )
            }
            Request::Status { service } => {
                Call::get(self.at(&self.service_path(&service)?, &["status"]))
            }
            Request::Logs {
                service,
                tail,
                process,
                replica,
            } => {
                let url = Call::get(self.at(&self.service_path(&service)?, &["logs"]))
                    .query([
                        ("tail", Some(tail.unwrap_or(100).min(10_000).to_string())),
                        ("process", process),
                        ("replica", replica.map(|r| r.to_string())),
                    ])
                    .url;
                let deadline = self.http.options.timeout;
                return tokio::time::timeout(deadline, self.logs(url))
                    .await
                    .unwrap_or_else(|_| {
                        Err(error(
                            ErrorKind::Timeout,
                            format!(
                                "the daemon at {} sent `{service}`'s logs for longer than {:.0} s",
                                self.http.base(),
                                deadline.as_secs_f64()
                            ),
                        ))
                    });
            }
            Request::Exec { service, exec } => {
                // The command may run for its own timeout; the call waits that long too.
                let runs_for = Duration::from_secs(exec.timeout_s.unwrap_or(30).clamp(1, 600));
                let url = self.at(&self.service_path(&service)?, &["exec"]);
                return self
                    .http
                    .call(
                        Method::POST,
                        url,
                        Some(&to_value(&exec)?),
                        self.http
                            .options
                            .timeout
                            .max(runs_for + Duration::from_secs(10)),
                    )
                    .await;
            }
            Request::ListServers { workspace } => {
                Call::get(self.at(&self.workspace_path(&workspace), &["servers"]))
            }
            Request::CreateServer { workspace, name } => Call::post(
                self.at(&self.workspace_path(&workspace), &["servers"]),
                Some(json!({"name": name})),
            ),
            Request::GetServer { workspace, server } => {
                Call::get(self.at(&self.workspace_path(&workspace), &["servers", &server]))
            }
            Request::ServerJoinToken { workspace, server } => Call::post(
                self.at(
                    &self.workspace_path(&workspace),
                    &["servers", &server, "join-token"],
                ),
                None,
            ),
            Request::RevokeServer { workspace, server } => Call::post(
                self.at(
                    &self.workspace_path(&workspace),
                    &["servers", &server, "revoke"],
                ),
                None,
            ),
            Request::ListAudit {
                workspace,
                limit,
                before,
            } => Call::get(self.at(&self.workspace_path(&workspace), &["audit"]))
                .query([("limit", limit.map(|l| l.to_string())), ("before", before)]),
            Request::ListMembers => Call::get(self.at(&self.workspace_path(&None), &["members"])),
            Request::AddMember { member } => Call::post(
                self.at(&self.workspace_path(&None), &["members"]),
                Some(to_value(&member)?),
            ),
            Request::UpdateMember { member, role } => Call::with(
                Method::PATCH,
                self.at(&self.workspace_path(&None), &["members", &member]),
                json!({"role": role}),
            ),
            Request::RemoveMember { member } => {
                Call::delete(self.at(&self.workspace_path(&None), &["members", &member]))
            }
            Request::ListTokens { all } => {
                Call::get(self.at(&self.workspace_path(&None), &["tokens"]))
                    .query([("all", flag(all))])
            }
            Request::CreateToken { token } => Call::post(
                self.at(&self.workspace_path(&None), &["tokens"]),
                Some(to_value(&token)?),
            ),
            Request::RevokeToken { token } => {
                Call::delete(self.at(&self.workspace_path(&None), &["tokens", &token]))
            }
        };
        self.send(call).await
    }

    /// A service's log history: its stream's `line` events to the end.
    async fn logs(&self, url: Url) -> Result<Value> {
        let mut reader = crate::events::EventReader::open(&self.http, url).await?;
        let mut lines = Vec::new();
        while let Some(event) = reader.next_raw().await? {
            match event.name.as_str() {
                "line" => lines.push(serde_json::from_str::<Value>(&event.data).map_err(|e| {
                    error(
                        ErrorKind::Internal,
                        format!("a log line this client does not understand: {e}"),
                    )
                })?),
                "error" => return Err(error(ErrorKind::Unavailable, event.data)),
                _ => {}
            }
        }
        Ok(Value::Array(lines))
    }

    async fn send(&self, call: Call) -> Result<Value> {
        self.http
            .call(
                call.method,
                call.url,
                call.body.as_ref(),
                self.http.options.timeout,
            )
            .await
    }

    /// A stack is addressed like a service: its environment's path and its slug.
    fn stack_path(&self, a: &str) -> Result<(Vec<String>, String)> {
        let addr = ServiceAddress::parse(a, &self.defaults)?;
        let [ws, p, e, s] = addr.segments();
        let env = ["workspaces", ws, "projects", p, "environments", e]
            .map(str::to_owned)
            .to_vec();
        Ok((env, s.to_owned()))
    }

    /// Assign to a team, or take the project from the team it has.
    async fn assign_project(&self, project: &str, team: Option<&str>) -> Result<Value> {
        let (addr, path) = self.project_path(project)?;
        match team {
            Some(team) => {
                self.send(Call::post(
                    self.at(&self.team_path(team)?, &["projects"]),
                    Some(json!({"project": addr.project()})),
                ))
                .await
            }
            None => {
                let current = self.send(Call::get(self.at(&path, &[]))).await?;
                match current.get("team_id").and_then(Value::as_str) {
                    // Not in a team: nothing to undo.
                    None => Ok(current),
                    Some(team_id) => {
                        let team = format!("{}/{team_id}", addr.workspace());
                        self.send(Call::delete(
                            self.at(&self.team_path(&team)?, &["projects", addr.project()]),
                        ))
                        .await
                    }
                }
            }
        }
    }

    /// Follow the deployment's events until it is ACTIVE or finished, at most `timeout_s`;
    /// then its view, as the platform's `wait` answers.
    async fn wait(&self, service: &str, number: u64, timeout_s: f64) -> Result<Value> {
        let timeout = clank_api::ops::wait_timeout(timeout_s)?;
        let path = self.service_path(service)?;
        let n = number.to_string();
        let events = self.at(&path, &["deployments", &n, "events"]);
        // The stream ends once the deployment settles (at once if it already has).
        let followed = tokio::time::timeout(timeout, self.drain(events)).await;
        let view = self
            .send(Call::get(self.at(&path, &["deployments", &n])))
            .await?;
        let status = view.get("status").and_then(Value::as_str).unwrap_or("");
        let settled = serde_json::from_value::<DeploymentStatus>(view["status"].clone())
            .is_ok_and(|s| s == DeploymentStatus::Active || s.is_terminal());
        match followed {
            Ok(Ok(())) if settled => Ok(view),
            Ok(Err(e)) => Err(e),
            _ if settled => Ok(view),
            _ => Err(error(
                ErrorKind::Timeout,
                format!(
                    "deployment #{number} of `{service}` is still {status} after {:.0} s",
                    timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// Read a Server-Sent Events stream to its end.
    async fn drain(&self, url: Url) -> Result<()> {
        let mut events = crate::events::EventReader::open(&self.http, url).await?;
        while events.next_raw().await?.is_some() {}
        Ok(())
    }
}
