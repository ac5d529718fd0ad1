//! Preview environments: one environment (`pr-<n>`) per open pull request, cloned from the
//! project's base environment with its git services on the pull request's head, redeployed on
//! every push to it, and purged with its volumes when it closes or its time-to-live (stored on
//! the environment, so a restart keeps it) runs out.
//!
//! Every change here is serialised per workspace: an `opened` and a `synchronize` delivered at
//! once, or a close racing the sweep, never make two environments or half-purge one, and one
//! workspace's slow teardown never holds up another's webhooks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_api::lifecycle::{DeleteQuery, PurgeReport};
use clank_api::previews::{PreviewOutcome, PreviewSettingsBody, PreviewSettingsView, PreviewView};
use clank_core::address::ProjectAddress;
use clank_core::id::WorkspaceId;
use clank_core::model::{
    Actor, AuditEvent, AuditOutcome, DEFAULT_PATTERN, DEFAULT_TTL_MINUTES, Endpoint, Environment,
    EnvironmentKind, PreviewSettings, Project, Service, ServiceSource, Trigger, Workspace,
    preview_environment_name,
};
use clank_core::store::catalog::{Page, Versioned};
use clank_core::{Error, Result, Timestamp};

use crate::environments::CloneOptions;
use crate::webhook::normalize_repo_url;
use crate::{DeploymentView, Platform};

/// How often the time-to-live sweep looks for expired previews, unless configured.
pub const DEFAULT_PREVIEW_SWEEP: Duration = Duration::from_secs(60);

/// How often, and how far apart, a purge refused while a deployment stops is tried again.
const PURGE_TRIES: u32 = 120;
const PURGE_RETRY: Duration = Duration::from_millis(500);

/// One preview change at a time per workspace (see the module header). A platform holds one;
/// entries are per workspace, so the map is bounded by the workspaces there are.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkspaceLocks(Arc<Mutex<HashMap<WorkspaceId, Arc<tokio::sync::Mutex<()>>>>>);

impl WorkspaceLocks {
    async fn hold(&self, workspace: WorkspaceId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(map.entry(workspace).or_default())
        };
        lock.lock_owned().await
    }
}

/// What happened to a pull request, as every forge's payload is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequestAction {
    Opened,
    Reopened,
    /// New commits on the head branch.
    Synchronize,
    Closed {
        merged: bool,
    },
}

impl PullRequestAction {
    pub fn name(self) -> &'static str {
        match self {
            PullRequestAction::Opened => "opened",
            PullRequestAction::Reopened => "reopened",
            PullRequestAction::Synchronize => "synchronize",
            PullRequestAction::Closed { merged: false } => "closed",
            PullRequestAction::Closed { merged: true } => "merged",
        }
    }
}

/// A pull (merge) request event, whichever forge sent it (its signature already verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub number: u64,
    pub action: PullRequestAction,
    pub head_branch: String,
    pub head_commit: String,
    /// Clone URLs of the repository the head branch is in (the fork's, for a fork).
    pub head_repo_urls: Vec<String>,
    /// Clone URLs of the repository the pull request targets.
    pub base_repo_urls: Vec<String>,
    pub from_fork: bool,
}

/// What a pull-request event did across a workspace's projects.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PullRequestHandled {
    pub previews: Vec<PreviewOutcome>,
    /// Projects that would have run the pull request but refuse forks.
    pub refused_forks: Vec<String>,
}

impl Platform {
    /// Run the time-to-live sweep every `interval` instead of [`DEFAULT_PREVIEW_SWEEP`].
    pub fn with_preview_sweep(mut self, interval: Duration) -> Self {
        self.preview_sweep = interval.max(Duration::from_millis(100));
        self
    }

    /// A project's preview settings, `None` until set.
    pub async fn preview_settings(
        &self,
        addr: &ProjectAddress,
    ) -> Result<Option<PreviewSettingsView>> {
        let project = self.project(addr).await?;
        Ok(self
            .catalog
            .get::<PreviewSettings>(&project.id.to_string())
            .await?
            .map(|s| settings_view(&project, &s)))
    }

    /// Set a project's preview settings (validated, replacing earlier ones). The base
    /// environment must exist and not be a preview itself.
    pub async fn set_preview_settings(
        &self,
        addr: &ProjectAddress,
        body: PreviewSettingsBody,
    ) -> Result<PreviewSettingsView> {
        let project = self.project(addr).await?;
        crate::live(&project)?;
        let mut settings = PreviewSettings {
            project_id: project.id,
            workspace_id: project.workspace_id,
            enabled: body.enabled,
            base_environment: body.base_environment,
            domain: body.domain,
            pattern: body.pattern.unwrap_or_else(|| DEFAULT_PATTERN.to_owned()),
            ttl_minutes: body.ttl_minutes.unwrap_or(DEFAULT_TTL_MINUTES),
            allow_forks: body.allow_forks,
            updated_at: Timestamp::now(),
        };
        settings.validate()?;
        if let Some(d) = &settings.domain {
            settings.domain = Some(clank_core::validate::validate_domain("domain", d)?);
        }
        let base = self
            .environment_named(&project, &settings.base_environment)
            .await?
            .ok_or_else(|| {
                clank_core::InvalidInput::new(
                    "base_environment",
                    "not_found",
                    format!(
                        "project `{}` has no environment `{}`",
                        project.slug, settings.base_environment
                    ),
                )
            })?;
        if matches!(base.kind, EnvironmentKind::Preview { .. }) {
            return Err(clank_core::InvalidInput::new(
                "base_environment",
                "preview",
                format!(
                    "`{}` is itself a preview; previews are cloned from a lasting environment",
                    base.name
                ),
            )
            .into());
        }
        let id = project.id.to_string();
        loop {
            let current = self.catalog.get::<PreviewSettings>(&id).await?;
            let written = match &current {
                Some(cur) => self.catalog.update(cur, &settings).await,
                None => self.catalog.create(&settings).await,
            };
            match written {
                Err(Error::WriteConflict { .. } | Error::Conflict(_)) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(settings_view(&project, &settings)),
            }
        }
    }

    /// A project's live previews, by pull request number.
    pub async fn list_previews(&self, addr: &ProjectAddress) -> Result<Vec<PreviewView>> {
        let project = self.project(addr).await?;
        let mut out = Vec::new();
        for env in self.environments_of(&project).await? {
            let EnvironmentKind::Preview {
                pull_request,
                branch,
                expires_at,
            } = &env.kind
            else {
                continue;
            };
            let services = self.live_services_in(&env).await?;
            out.push(PreviewView {
                project: project.slug.clone(),
                environment: env.name.clone(),
                pull_request: *pull_request,
                branch: branch.clone(),
                head_commit: self.head_commit(&services).await?,
                urls: urls_of(&services),
                expires_at: expires_at.map(|t| t.0),
            });
        }
        out.sort_by_key(|p| p.pull_request);
        Ok(out)
    }

    /// Tear down pull request `number`'s preview now, with its volumes; `None` when it has
    /// none.
    pub async fn close_preview(
        &self,
        addr: &ProjectAddress,
        number: u64,
    ) -> Result<Option<PreviewOutcome>> {
        let project = self.project(addr).await?;
        let _held = self.preview_locks.hold(project.workspace_id).await;
        let Some(env) = self.preview_of(&project, number).await? else {
            return Ok(None);
        };
        Ok(Some(self.tear_down(&project, &env).await?))
    }

    /// Act on a verified pull-request event for every project of `workspace` with previews
    /// on whose base environment builds the pull request's base repository. `actor` is who the
    /// audit log names (the forge's webhook).
    pub async fn pull_request(
        &self,
        workspace: WorkspaceId,
        event: &PullRequestEvent,
        actor: &Actor,
    ) -> Result<PullRequestHandled> {
        let _held = self.preview_locks.hold(workspace).await;
        let wanted: Vec<String> = event
            .base_repo_urls
            .iter()
            .map(|u| normalize_repo_url(u))
            .collect();
        let mut handled = PullRequestHandled::default();
        for project in self
            .catalog
            .projects_in(workspace, Page::all())
            .await?
            .items
        {
            if project.is_deleted() {
                continue;
            }
            let Some(settings) = self
                .catalog
                .get::<PreviewSettings>(&project.id.to_string())
                .await?
            else {
                continue;
            };
            let existing = self.preview_of(&project, event.number).await?;
            if let PullRequestAction::Closed { .. } = event.action {
                // Closing tears down what exists, even when previews were turned off since.
                if let Some(env) = existing {
                    let outcome = self.tear_down(&project, &env).await;
                    self.audit_preview(&project, &env.name, "preview.delete", actor, &outcome)
                        .await;
                    handled.previews.push(outcome?);
                }
                continue;
            }
            if !settings.enabled {
                continue;
            }
            // A preview someone deleted by hand is purged and made anew.
            let existing = match existing {
                Some(env) if env.is_deleted() => {
                    self.purge_preview(&project, &env).await?;
                    None
                }
                other => other,
            };
            let Some(base) = self
                .environment_named(&project, &settings.base_environment)
                .await?
            else {
                continue;
            };
            let base_services = self.live_services_in(&base).await?;
            if !base_services.iter().any(|s| on_repo(s, &wanted)) {
                continue;
            }
            if event.from_fork && !settings.allow_forks {
                handled.refused_forks.push(project.slug.clone());
                continue;
            }
            let (action, outcome) = match existing {
                Some(env) => (
                    "preview.redeploy",
                    self.redeploy(&project, &settings, env, event, &wanted)
                        .await,
                ),
                None => (
                    "preview.create",
                    self.create_preview(&project, &settings, &base, event, &wanted)
                        .await,
                ),
            };
            let name = preview_environment_name(event.number);
            self.audit_preview(&project, &name, action, actor, &outcome)
                .await;
            handled.previews.push(outcome?);
        }
        Ok(handled)
    }

    /// Purge every preview whose stored deadline has passed; what was removed.
    ///
    /// Reads the environments a page at a time ([`crate::deletion::SWEEP_PAGE`]), keeping only
    /// the ids of the expired previews, so the sweep's memory does not grow with the number
    /// of environments.
    pub async fn sweep_expired_previews(&self, now: Timestamp) -> Result<Vec<PreviewOutcome>> {
        let mut due = Vec::new();
        let mut page = Page::first(crate::deletion::SWEEP_PAGE);
        loop {
            let listing = self.catalog.list::<Environment>(page.clone()).await?;
            due.extend(listing.items.iter().filter_map(|env| match env.kind {
                EnvironmentKind::Preview {
                    expires_at: Some(deadline),
                    ..
                } if deadline <= now => Some((env.id, env.project_id)),
                _ => None,
            }));
            if !crate::deletion::next_page(&mut page, listing.next) {
                break;
            }
        }
        let mut out = Vec::new();
        for (env_id, project_id) in due {
            let Some(project) = self.catalog.get::<Project>(&project_id.to_string()).await? else {
                continue;
            };
            let actor = Actor::System {
                task: "preview-ttl".to_owned(),
            };
            let _held = self.preview_locks.hold(project.workspace_id).await;
            // Read again under the lock: a push may have moved the deadline, a close purged it.
            let Some(env) = self
                .catalog
                .get::<Environment>(&env_id.to_string())
                .await?
                .map(|e| e.value)
                .filter(|e| {
                    matches!(e.kind, EnvironmentKind::Preview { expires_at: Some(d), .. } if d <= now)
                })
            else {
                continue;
            };
            let outcome = self.tear_down(&project, &env).await;
            self.audit_preview(&project, &env.name, "preview.expire", &actor, &outcome)
                .await;
            match outcome {
                Ok(o) => {
                    tracing::info!(project = %project.slug, environment = %env.name, "Expired preview torn down.");
                    out.push(o);
                }
                Err(e) => {
                    tracing::warn!(project = %project.slug, environment = %env.name, error = %e, "Could not tear down an expired preview.");
                }
            }
        }
        Ok(out)
    }

    /// The sweep's loop; runs beside the engine (see [`Platform::run`]).
    pub(crate) async fn preview_sweep_loop(&self) -> std::convert::Infallible {
        loop {
            if let Err(e) = self.sweep_expired_previews(Timestamp::now()).await {
                tracing::warn!(error = %e, "The preview sweep failed.");
            }
            tokio::time::sleep(self.preview_sweep).await;
        }
    }

    async fn create_preview(
        &self,
        project: &Versioned<Project>,
        settings: &PreviewSettings,
        base: &Environment,
        event: &PullRequestEvent,
        wanted: &[String],
    ) -> Result<PreviewOutcome> {
        let now = Timestamp::now();
        let mut target =
            Environment::new(project.id, &preview_environment_name(event.number), now)?;
        target.kind = EnvironmentKind::Preview {
            pull_request: event.number,
            branch: event.head_branch.clone(),
            expires_at: Some(settings.expires_at(now)),
        };
        // `{n}` and `{domain}` filled in; the clone replaces `{service}` per service.
        let pattern = settings.domain.as_ref().map(|domain| {
            settings
                .pattern
                .replace("{n}", &event.number.to_string())
                .replace("{domain}", domain)
        });
        let services = self
            .clone_for_preview(project, base, target.clone(), pattern)
            .await?;
        let head_url = event
            .from_fork
            .then(|| event.head_repo_urls.first())
            .flatten();
        let mut deployed = Vec::new();
        let mut live = Vec::new();
        for service in services {
            let service = if on_repo(&service, wanted) {
                self.follow_head(&service, &event.head_branch, head_url)
                    .await?
            } else {
                service
            };
            deployed.push(self.deploy_preview_service(&service, event).await?);
            live.push(service);
        }
        Ok(PreviewOutcome {
            project: project.slug.clone(),
            environment: target.name,
            action: "created".to_owned(),
            urls: urls_of(&live),
            deployments: deployed,
            removed: None,
        })
    }

    async fn redeploy(
        &self,
        project: &Versioned<Project>,
        settings: &PreviewSettings,
        env: Environment,
        event: &PullRequestEvent,
        wanted: &[String],
    ) -> Result<PreviewOutcome> {
        let deadline = settings.expires_at(Timestamp::now());
        let env = self
            .catalog
            .modify::<Environment>(&env.id.to_string(), |e| {
                e.kind = EnvironmentKind::Preview {
                    pull_request: event.number,
                    branch: event.head_branch.clone(),
                    expires_at: Some(deadline),
                };
                Ok(())
            })
            .await?;
        let head_url = event
            .from_fork
            .then(|| event.head_repo_urls.first())
            .flatten();
        let services = self.live_services_in(&env).await?;
        let mut deployed = Vec::new();
        for service in &services {
            if !on_repo(service, wanted) && !on_repo(service, &normalized(&event.head_repo_urls)) {
                continue;
            }
            let service = self
                .follow_head(service, &event.head_branch, head_url)
                .await?;
            deployed.push(self.deploy_preview_service(&service, event).await?);
        }
        Ok(PreviewOutcome {
            project: project.slug.clone(),
            environment: env.name,
            action: "redeployed".to_owned(),
            urls: urls_of(&services),
            deployments: deployed,
            removed: None,
        })
    }

    async fn tear_down(
        &self,
        project: &Versioned<Project>,
        env: &Environment,
    ) -> Result<PreviewOutcome> {
        let removed = self.purge_preview(project, env).await?;
        Ok(PreviewOutcome {
            project: project.slug.clone(),
            environment: env.name.clone(),
            action: "removed".to_owned(),
            urls: Vec::new(),
            deployments: Vec::new(),
            removed: Some(removed),
        })
    }

    /// Point a preview's git service at the pull request's head branch (and, for a fork, its
    /// repository).
    async fn follow_head(
        &self,
        service: &Service,
        branch: &str,
        repo_url: Option<&String>,
    ) -> Result<Service> {
        if let Some(head) = repo_url {
            // A fork's repository meets the operator's policy like any other.
            self.repositories.check("source.repo_url", head)?;
        }
        self.catalog
            .modify::<Service>(&service.id.to_string(), |s| {
                if let ServiceSource::Git {
                    repo_url: url,
                    branch: b,
                    ..
                } = &mut s.source
                {
                    branch.clone_into(b);
                    if let Some(head) = repo_url {
                        head.clone_into(url);
                    }
                }
                Ok(())
            })
            .await
    }

    /// Deploy one of a preview's services: a git service pinned to the head commit, any other
    /// as it is configured.
    async fn deploy_preview_service(
        &self,
        service: &Service,
        event: &PullRequestEvent,
    ) -> Result<DeploymentView> {
        let trigger = match &service.source {
            ServiceSource::Git { branch, .. } if *branch == event.head_branch => {
                Trigger::AutoDeploy {
                    commit: event.head_commit.clone(),
                    branch: branch.clone(),
                }
            }
            _ => Trigger::Manual { by: None },
        };
        let d = self.engine.deploy(service.id, trigger).await?;
        Ok(DeploymentView::from(&d))
    }

    async fn audit_preview(
        &self,
        project: &Project,
        environment: &str,
        action: &str,
        actor: &Actor,
        outcome: &Result<PreviewOutcome>,
    ) {
        let (result, details) = match outcome {
            Ok(o) => (
                AuditOutcome::Succeeded,
                serde_json::json!({
                    "urls": o.urls,
                    "deployments": o.deployments.iter().map(|d| d.number).collect::<Vec<_>>(),
                    "removed": o.removed,
                }),
            ),
            Err(e) => (
                AuditOutcome::Failed {
                    status: 500,
                    code: "preview_failed".to_owned(),
                },
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        let ws = self
            .catalog
            .get::<Workspace>(&project.workspace_id.to_string())
            .await
            .ok()
            .flatten()
            .map(|w| w.value.slug)
            .unwrap_or_default();
        let event = AuditEvent {
            id: clank_core::id::AuditEventId::new(),
            at: Timestamp::now(),
            workspace_id: project.workspace_id,
            actor: actor.clone(),
            action: action.to_owned(),
            target: format!("{ws}/{}/{environment}", project.slug),
            outcome: result,
            details,
        };
        if let Err(e) = self.catalog.record_audit(&event).await {
            tracing::error!(action, error = %e, "Could not record an audit event.");
        }
    }

    async fn environments_of(&self, project: &Project) -> Result<Vec<Environment>> {
        Ok(self
            .catalog
            .find::<Environment>("project", &project.id.to_string(), Page::all())
            .await?
            .items
            .into_iter()
            .map(|e| e.value)
            .collect())
    }

    async fn environment_named(
        &self,
        project: &Project,
        name: &str,
    ) -> Result<Option<Environment>> {
        Ok(self
            .environments_of(project)
            .await?
            .into_iter()
            .find(|e| e.name == name))
    }

    /// Pull request `number`'s preview in `project`, if it has one.
    async fn preview_of(&self, project: &Project, number: u64) -> Result<Option<Environment>> {
        Ok(self
            .environment_named(project, &preview_environment_name(number))
            .await?
            .filter(|e| matches!(e.kind, EnvironmentKind::Preview { .. })))
    }

    async fn live_services_in(&self, env: &Environment) -> Result<Vec<Service>> {
        Ok(self
            .catalog
            .services_in_environment(env.id, Page::all())
            .await?
            .items
            .into_iter()
            .map(|s| s.value)
            .filter(|s| !s.is_deleted())
            .collect())
    }

    /// The commit the preview's git services were last asked to deploy.
    async fn head_commit(&self, services: &[Service]) -> Result<Option<String>> {
        for s in services {
            if !matches!(s.source, ServiceSource::Git { .. }) {
                continue;
            }
            let newest = self.catalog.deployments_of(s.id, Page::newest(1)).await?;
            if let Some(d) = newest.items.first() {
                if let Trigger::AutoDeploy { commit, .. } = &d.trigger {
                    return Ok(Some(commit.clone()));
                }
            }
        }
        Ok(None)
    }
}

fn normalized(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| normalize_repo_url(u)).collect()
}

/// Whether `service` builds one of the (normalised) repositories in `wanted`.
fn on_repo(service: &Service, wanted: &[String]) -> bool {
    match &service.source {
        ServiceSource::Git { repo_url, .. } => wanted.contains(&normalize_repo_url(repo_url)),
        _ => false,
    }
}

/// The URLs of the routed services: `https://` for public domains, `http://` on the LAN.
fn urls_of(services: &[Service]) -> Vec<String> {
    let mut out = Vec::new();
    for s in services {
        match &s.endpoint {
            Some(Endpoint::PublicDirect { domains, .. }) => {
                out.extend(domains.iter().map(|d| format!("https://{d}")));
            }
            Some(Endpoint::LanOnly { domains }) => {
                out.extend(domains.iter().map(|d| format!("http://{d}")));
            }
            _ => {}
        }
    }
    out
}

fn settings_view(project: &Project, s: &PreviewSettings) -> PreviewSettingsView {
    PreviewSettingsView {
        project: project.slug.clone(),
        enabled: s.enabled,
        base_environment: s.base_environment.clone(),
        domain: s.domain.clone(),
        pattern: s.pattern.clone(),
        ttl_minutes: s.ttl_minutes,
        allow_forks: s.allow_forks,
    }
}

/// What previews take from the environment clone and the purge.
impl Platform {
    /// Clone `base` into `target` (a `Preview`) with its config; routed services' domains
    /// follow `pattern` (`{service}` left to the clone), or are dropped without one.
    async fn clone_for_preview(
        &self,
        project: &Project,
        base: &Environment,
        target: Environment,
        pattern: Option<String>,
    ) -> Result<Vec<Service>> {
        let source = self.parse_environment(&format!(
            "{}/{}/{}",
            self.workspace_slug(project).await?,
            project.slug,
            base.name
        ))?;
        // A preview never gets the base's data: it runs code from a pull request.
        let options = CloneOptions {
            domain_pattern: pattern,
            copy_config: true,
            copy_volumes: false,
        };
        Ok(self.clone_into(&source, target, &options).await?.services)
    }

    async fn workspace_slug(&self, project: &Project) -> Result<String> {
        Ok(self
            .catalog
            .require::<Workspace>(&project.workspace_id.to_string())
            .await?
            .value
            .slug)
    }

    /// Purge the preview now with its volumes: workloads, routes, network, records.
    async fn purge_preview(&self, project: &Project, env: &Environment) -> Result<PurgeReport> {
        let addr = self.parse_environment(&format!(
            "{}/{}/{}",
            self.workspace_slug(project).await?,
            project.slug,
            env.name
        ))?;
        let how = DeleteQuery {
            purge: true,
            volumes: true,
        };
        // A deployment still building is cancelled by the purge and stops within moments;
        // until it has, the purge is refused (409), so it is tried again for a while.
        let mut tries = 0;
        loop {
            match self.delete_environment(&addr, how).await {
                Ok(report) => return Ok(report.purged.unwrap_or_default()),
                Err(Error::Conflict(why)) if tries < PURGE_TRIES => {
                    tracing::debug!(environment = %addr, reason = %why, "Preview purge waits for a deployment to stop.");
                    tries += 1;
                    tokio::time::sleep(PURGE_RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
