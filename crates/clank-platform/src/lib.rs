//! The Clank platform as one object: every operation a user has, addressed the way users
//! address things (`workspace/project/environment/service`), over the catalog and the deploy
//! engine. The daemon's REST API, the CLI (through it) and the Python and Node bindings are all
//! thin layers over [`Platform`]; embedders can use it directly.
//!
//! [`Platform::open`] starts from the embedded defaults: a redb store and a keyring in a data
//! directory, the Docker Engine when one answers, native processes otherwise.
//! [`Platform::builder`] takes backends of the caller's own instead (any `Store`, `Runtime`,
//! `Proxy`, `ImageBuilder`).

mod builds;
mod canvas;
mod declarations;
mod deletion;
mod embedded;
mod environments;
mod handle;
pub mod identity;
mod lifecycle;
mod ops;
mod overview;
mod previews;
mod promotion;
mod running;
mod servers;
mod stacks;
mod teams;
mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use clank_core::address::{AddressDefaults, EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::config::{self, ConfigChange, ConfigLayer, ConfigVarView, ResolvedVarView, Scope};
use clank_core::id::UserId;
use clank_core::model::{
    Deployment, Environment, Project, RestoredState, Service, ServiceSource, Trigger, Workspace,
};
use clank_core::runtime::OwnerFilter;
use clank_core::secret::Keyring;
use clank_core::store::catalog::{Catalog, Page, Versioned};
use clank_core::{Error, InvalidInput, Result, Timestamp};
use clank_engine::{Engine, EventStream, LogEntry};

pub use builds::BUILD_LOG_LINES;
pub use clank_api::{
    BuildLogView, BuildRef, BuildView, DeploymentView, Request, ServicePatch, ServiceSpec,
    TargetRef,
};
/// How a handle made by [`PlatformHandle::connect`] calls its daemon.
pub use clank_client::ConnectOptions;
pub use clank_docker::{BuildSettings, FRAMEWORK_BASE_IMAGES};
pub use declarations::PlannedDeclaration;
pub use deletion::DEFAULT_DELETE_RETENTION;
pub use embedded::{
    EmbeddedOptions, PlatformBuilder, RuntimeChoice, StoreChoice, load_or_create_keyring,
    owner_only,
};
pub use handle::{HandleError, HandleSubscription, PlatformHandle};
pub use ops::Subscription;
pub use overview::{DeploymentHead, ServiceCard, ServiceCards};
pub use previews::{
    DEFAULT_PREVIEW_SWEEP, PullRequestAction, PullRequestEvent, PullRequestHandled,
};
pub use promotion::PromotionSource;
pub use running::{WorkloadLogLine, WorkloadLogStream, WorkloadSelector};
pub use servers::NewServer;
pub use webhook::{
    Push, PushAdmission, PushDeployment, PushHead, PushLedger, REMEMBERED_BRANCHES,
    REMEMBERED_DELIVERIES, WebhookSecret, admit_push, normalize_repo_url,
};

/// Where a config variable is set, by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    Workspace(String),
    Project(ProjectAddress),
    Environment(EnvironmentAddress),
    Service(ServiceAddress),
    /// A team of a workspace, by slug or id.
    Team {
        workspace: String,
        team: String,
    },
}

/// The platform: catalog + engine + keyring, addressed by slugs.
#[derive(Debug, Clone)]
pub struct Platform {
    catalog: Catalog,
    engine: Engine,
    keyring: Keyring,
    defaults: AddressDefaults,
    /// Remote servers and their agents; `None` when this platform runs none.
    fleet: Option<clank_fleet::Fleet>,
    /// Which repositories git services may build from (checked at create and update).
    repositories: clank_core::validate::RepositoryPolicy,
    /// The templates stacks are created from: the built-ins unless the operator added some.
    templates: std::sync::Arc<clank_templates::Catalog>,
    /// How often expired preview environments are looked for.
    preview_sweep: Duration,
    /// One preview change at a time per workspace (see `previews`).
    preview_locks: previews::WorkspaceLocks,
    /// How long a deleted service, environment or project stays restorable before the sweep
    /// purges it.
    delete_retention: Duration,
}

impl Platform {
    pub fn new(catalog: Catalog, engine: Engine, keyring: Keyring) -> Self {
        Platform {
            catalog,
            engine,
            keyring,
            defaults: AddressDefaults::default(),
            fleet: None,
            repositories: Default::default(),
            templates: stacks::builtin_templates(),
            preview_sweep: previews::DEFAULT_PREVIEW_SWEEP,
            preview_locks: Default::default(),
            delete_retention: deletion::DEFAULT_DELETE_RETENTION,
        }
    }

    /// Create stacks from `templates` (e.g. `Catalog::load(Some(dir))`: the built-ins and an
    /// operator's directory) instead of the built-ins only.
    pub fn with_templates(mut self, templates: std::sync::Arc<clank_templates::Catalog>) -> Self {
        self.templates = templates;
        self
    }

    /// Let git services build from the repositories `policy` allows (by default, only ones on
    /// other machines: no `file://`, no loopback or private hosts).
    pub fn with_repository_policy(
        mut self,
        policy: clank_core::validate::RepositoryPolicy,
    ) -> Self {
        self.repositories = policy;
        self
    }

    /// A service's source against the operator's repository policy.
    fn check_source(&self, source: &ServiceSource) -> Result<()> {
        if let ServiceSource::Git { repo_url, .. } = source {
            self.repositories.check("source.repo_url", repo_url)?;
        }
        Ok(())
    }

    /// Run services with a `server_id` on the remote servers of `fleet` (also hands the
    /// engine the fleet's placement).
    pub fn with_fleet(mut self, fleet: clank_fleet::Fleet) -> Self {
        self.engine = self.engine.clone().with_placement(fleet.placement());
        self.fleet = Some(fleet);
        self
    }

    /// The remote servers' registry, if this platform has one.
    pub fn fleet(&self) -> Option<&clank_fleet::Fleet> {
        self.fleet.as_ref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn defaults(&self) -> &AddressDefaults {
        &self.defaults
    }

    /// Run the deploy engine, and the sweep purging what was deleted longer than the
    /// retention ago, until `shutdown` completes.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            result = self.engine.run(shutdown) => result,
            never = self.purge_sweep() => match never {},
            never = self.preview_sweep_loop() => match never {},
        }
    }

    /// Run the deploy engine on a background task of the current tokio runtime until the
    /// returned handle is stopped or dropped: for embedders without a main loop of their own
    /// (the Python and Node bindings). Panics outside a tokio runtime, like `tokio::spawn`.
    pub fn spawn_engine(&self) -> EngineTask {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let platform = self.clone();
        let task = tokio::spawn(async move {
            let result = platform
                .run(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "The deploy engine stopped.");
            }
            result
        });
        EngineTask {
            shutdown: std::sync::Mutex::new(Some(tx)),
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// The workspace short addresses name (`default` unless configured), created if missing.
    pub async fn ensure_default_workspace(&self) -> Result<Workspace> {
        let slug = self.defaults.workspace.clone();
        self.ensure_workspace(&slug).await
    }

    /// Follow deployment events.
    pub fn events(&self) -> EventStream {
        self.engine.events()
    }

    // ---- Addresses ----------------------------------------------------------------------

    pub fn parse_service(&self, s: &str) -> Result<ServiceAddress> {
        Ok(ServiceAddress::parse(s, &self.defaults)?)
    }

    pub fn parse_environment(&self, s: &str) -> Result<EnvironmentAddress> {
        Ok(EnvironmentAddress::parse(s, &self.defaults)?)
    }

    pub fn parse_project(&self, s: &str) -> Result<ProjectAddress> {
        Ok(ProjectAddress::parse(s, &self.defaults)?)
    }

    pub async fn workspace(&self, slug: &str) -> Result<Versioned<Workspace>> {
        self.catalog
            .lookup::<Workspace>("slug", slug)
            .await?
            .ok_or_else(|| Error::not_found("workspace", slug))
    }

    pub async fn project(&self, addr: &ProjectAddress) -> Result<Versioned<Project>> {
        let ws = self.workspace(addr.workspace()).await?;
        self.catalog
            .lookup::<Project>("slug", &format!("{}:{}", ws.id, addr.project()))
            .await?
            .ok_or_else(|| Error::not_found("project", addr))
    }

    pub async fn environment(
        &self,
        addr: &EnvironmentAddress,
    ) -> Result<(Versioned<Project>, Versioned<Environment>)> {
        let project = self.project(addr.project_address()).await?;
        let env = self
            .catalog
            .lookup::<Environment>("name", &format!("{}:{}", project.id, addr.environment()))
            .await?
            .ok_or_else(|| Error::not_found("environment", addr))?;
        Ok((project, env))
    }

    pub async fn service(&self, addr: &ServiceAddress) -> Result<Versioned<Service>> {
        let (_, env) = self.environment(addr.environment_address()).await?;
        self.catalog
            .lookup::<Service>("slug", &format!("{}:{}", env.id, addr.service()))
            .await?
            .ok_or_else(|| Error::not_found("service", addr))
    }

    // ---- Workspaces, projects, environments ------------------------------------------------

    pub async fn create_workspace(&self, name: &str, slug: Option<&str>) -> Result<Workspace> {
        let ws = Workspace::new(name, slug, Timestamp::now())?;
        self.catalog.create(&ws).await?;
        Ok(ws)
    }

    /// The workspace with this slug, created (named after it) if missing.
    pub async fn ensure_workspace(&self, slug: &str) -> Result<Workspace> {
        if let Some(ws) = self.catalog.lookup::<Workspace>("slug", slug).await? {
            return Ok(ws.value);
        }
        match self.create_workspace(slug, Some(slug)).await {
            Err(Error::Conflict(_)) => Ok(self.workspace(slug).await?.value),
            other => other,
        }
    }

    pub async fn list_workspaces(&self) -> Result<Vec<Workspace>> {
        Ok(values(
            self.catalog.list::<Workspace>(Page::all()).await?.items,
        ))
    }

    /// A project with its `production` environment.
    pub async fn create_project(
        &self,
        workspace: &str,
        name: &str,
        slug: Option<&str>,
    ) -> Result<Project> {
        let ws = self.workspace(workspace).await?;
        let project = Project::new(ws.id, name, slug, Timestamp::now())?;
        self.catalog
            .create_project(&project, Timestamp::now())
            .await?;
        Ok(project)
    }

    /// Projects of a workspace; soft-deleted ones only when asked.
    pub async fn list_projects(
        &self,
        workspace: &str,
        include_deleted: bool,
    ) -> Result<Vec<Project>> {
        let ws = self.workspace(workspace).await?;
        let all = values(self.catalog.projects_in(ws.id, Page::all()).await?.items);
        Ok(all
            .into_iter()
            .filter(|p| include_deleted || !p.is_deleted())
            .collect())
    }

    pub async fn create_environment(
        &self,
        project: &ProjectAddress,
        name: &str,
    ) -> Result<Environment> {
        let p = self.project(project).await?;
        live(&p)?;
        let env = Environment::new(p.id, name, Timestamp::now())?;
        self.catalog.create(&env).await?;
        Ok(env)
    }

    /// A project's environments; soft-deleted ones are hidden (see
    /// [`Platform::list_environments_with`]).
    pub async fn list_environments(&self, project: &ProjectAddress) -> Result<Vec<Environment>> {
        self.list_environments_with(project, false).await
    }

    /// A project's environments; soft-deleted ones only when asked.
    pub async fn list_environments_with(
        &self,
        project: &ProjectAddress,
        include_deleted: bool,
    ) -> Result<Vec<Environment>> {
        let p = self.project(project).await?;
        Ok(values(
            self.catalog
                .find::<Environment>("project", &p.id.to_string(), Page::all())
                .await?
                .items,
        )
        .into_iter()
        .filter(|e| include_deleted || !e.is_deleted())
        .collect())
    }

    // ---- Services ---------------------------------------------------------------------------

    pub async fn create_service(
        &self,
        env: &EnvironmentAddress,
        spec: ServiceSpec,
    ) -> Result<Service> {
        let (project, environment) = self.environment(env).await?;
        live(&project)?;
        deletion::live_environment(&environment)?;
        let now = Timestamp::now();
        let mut service = Service::new(
            project.workspace_id,
            project.id,
            environment.id,
            &spec.slug,
            spec.source,
            now,
        )?;
        if let Some(name) = spec.name {
            service.name = name;
        }
        service.settings = spec.settings;
        service.volumes = spec.volumes;
        service.endpoint = spec.endpoint;
        if let Some(processes) = spec.processes {
            service.processes = processes;
        }
        service.server_id = spec.server_id;
        service.depends_on = spec.depends_on;
        if let Some(server) = service.server_id {
            self.check_server(project.workspace_id, server).await?;
        }
        service.validate()?;
        self.check_source(&service.source)?;
        self.check_dependencies(&service).await?;
        self.catalog.create(&service).await?;
        Ok(service)
    }

    pub async fn update_service(
        &self,
        addr: &ServiceAddress,
        patch: ServicePatch,
    ) -> Result<Service> {
        loop {
            let current = self.service(addr).await?;
            let mut next = current.value.clone();
            if let Some(name) = &patch.name {
                next.name = name.clone();
            }
            if let Some(source) = &patch.source {
                next.source = source.clone();
            }
            if let Some(settings) = &patch.settings {
                next.settings = settings.clone();
            }
            if let Some(volumes) = &patch.volumes {
                next.volumes = volumes.clone();
            }
            if let Some(endpoint) = &patch.endpoint {
                next.endpoint = endpoint.clone();
            }
            if let Some(processes) = &patch.processes {
                next.processes = processes.clone();
            }
            if let Some(server) = &patch.server_id {
                if let Some(id) = server {
                    self.check_server(current.workspace_id, *id).await?;
                }
                next.server_id = *server;
            }
            if let Some(deps) = &patch.depends_on {
                next.depends_on = deps.clone();
            }
            next.updated_at = Timestamp::now();
            next.validate()?;
            if patch.source.is_some() {
                self.check_source(&next.source)?;
            }
            if patch.depends_on.is_some() {
                self.check_dependencies(&next).await?;
            }
            match self.catalog.update(&current, &next).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(next),
            }
        }
    }

    /// One page of an environment's services in slug order, and the cursor of the next page
    /// (`None` on the last). The cursor is opaque: pass it back as `after`.
    pub async fn list_services_page(
        &self,
        env: &EnvironmentAddress,
        limit: usize,
        after: Option<String>,
        include_deleted: bool,
    ) -> Result<(Vec<Service>, Option<String>)> {
        let (_, environment) = self.environment(env).await?;
        let page = Page {
            limit: Some(limit),
            after,
            reverse: false,
        };
        let listing = self
            .catalog
            .services_in_environment(environment.id, page)
            .await?;
        // A page may come out shorter than `limit` when it held deleted services.
        let items = values(listing.items)
            .into_iter()
            .filter(|s| include_deleted || !s.is_deleted())
            .collect();
        Ok((items, listing.next))
    }

    /// An environment's services; soft-deleted ones are hidden (see
    /// [`Platform::list_services_with`]).
    pub async fn list_services(&self, env: &EnvironmentAddress) -> Result<Vec<Service>> {
        self.list_services_with(env, false).await
    }

    /// An environment's services; soft-deleted ones only when asked.
    pub async fn list_services_with(
        &self,
        env: &EnvironmentAddress,
        include_deleted: bool,
    ) -> Result<Vec<Service>> {
        let (_, environment) = self.environment(env).await?;
        Ok(values(
            self.catalog
                .services_in_environment(environment.id, Page::all())
                .await?
                .items,
        )
        .into_iter()
        .filter(|s| include_deleted || !s.is_deleted())
        .collect())
    }

    // ---- Config -----------------------------------------------------------------------------

    async fn scope(&self, target: &ConfigTarget) -> Result<Scope> {
        Ok(match target {
            ConfigTarget::Workspace(slug) => Scope::Workspace(self.workspace(slug).await?.id),
            ConfigTarget::Project(a) => Scope::Project(self.project(a).await?.id),
            ConfigTarget::Environment(a) => Scope::Environment(self.environment(a).await?.1.id),
            ConfigTarget::Service(a) => Scope::Service(self.service(a).await?.id),
            ConfigTarget::Team { workspace, team } => {
                Scope::Team(self.team(workspace, team).await?.id)
            }
        })
    }

    /// Apply set/unset changes to one scope, all or nothing. Returns the scope's variables,
    /// secrets masked.
    pub async fn set_config(
        &self,
        target: &ConfigTarget,
        changes: &[ConfigChange],
    ) -> Result<Vec<ConfigVarView>> {
        let scope = self.scope(target).await?;
        loop {
            let current = self.catalog.config_layer(scope).await?;
            let base = current
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_else(|| ConfigLayer::new(scope));
            let next = config::apply_bulk(&base, changes, &self.keyring, Timestamp::now())?;
            let written = match &current {
                Some(cur) => self.catalog.update(cur, &next).await,
                None => self.catalog.create(&next).await,
            };
            match written {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(next.view()),
            }
        }
    }

    /// The variables set at one scope, secrets masked.
    pub async fn config(&self, target: &ConfigTarget) -> Result<Vec<ConfigVarView>> {
        let scope = self.scope(target).await?;
        Ok(self
            .catalog
            .config_layer(scope)
            .await?
            .map(|l| l.value.view())
            .unwrap_or_default())
    }

    /// What a deploy of the service would get now, each value with the scope it came from.
    pub async fn resolved_config(&self, addr: &ServiceAddress) -> Result<Vec<ResolvedVarView>> {
        let service = self.service(addr).await?;
        Ok(self.engine.resolve_config(&service).await?.view())
    }

    // ---- Deployments ------------------------------------------------------------------------

    pub async fn deploy(&self, addr: &ServiceAddress, trigger: Trigger) -> Result<DeploymentView> {
        let service = self.service(addr).await?;
        let d = self.engine.deploy(service.id, trigger).await?;
        self.deployment_view(&d).await
    }

    /// Roll back to deployment `number`: a new deployment with its image and config, which
    /// also become the service's desired state (see [`Engine::rollback_restoring`]).
    pub async fn rollback(&self, addr: &ServiceAddress, number: u64) -> Result<DeploymentView> {
        Ok(self.rollback_restoring(addr, number, None).await?.0)
    }

    /// [`Platform::rollback`] asked for by `by` (recorded on the trigger), with what it set
    /// back on the service (names, never values).
    pub async fn rollback_restoring(
        &self,
        addr: &ServiceAddress,
        number: u64,
        by: Option<UserId>,
    ) -> Result<(DeploymentView, RestoredState)> {
        let (service, target) = self.deployment_record(addr, number).await?;
        let (d, restored) = self
            .engine
            .rollback_restoring(service.id, target.id, by)
            .await?;
        Ok((self.deployment_view(&d).await?, restored))
    }

    pub async fn cancel(&self, addr: &ServiceAddress, number: u64) -> Result<DeploymentView> {
        let (_, d) = self.deployment_record(addr, number).await?;
        let d = self.engine.cancel(d.id).await?;
        self.deployment_view(&d).await
    }

    pub async fn deployment(&self, addr: &ServiceAddress, number: u64) -> Result<DeploymentView> {
        let (_, d) = self.deployment_record(addr, number).await?;
        self.deployment_view(&d).await
    }

    /// The service, its ACTIVE deployment (however old) and its five newest deployments.
    pub async fn status(
        &self,
        addr: &ServiceAddress,
    ) -> Result<clank_api::deployments::ServiceStatus> {
        let service = self.service(addr).await?.value;
        let recent = self.deployments(addr, 5, None).await?;
        let active = match service.active_deployment {
            None => None,
            Some(id) => match recent.iter().find(|d| d.id == id) {
                Some(d) => Some(d.clone()),
                None => match self.catalog.get::<Deployment>(&id.to_string()).await? {
                    Some(d) => Some(self.deployment_view(&d.value).await?),
                    None => None,
                },
            },
        };
        Ok(clank_api::deployments::ServiceStatus {
            service,
            active,
            recent,
        })
    }

    /// Newest first; `before` continues from a deployment number (exclusive).
    pub async fn deployments(
        &self,
        addr: &ServiceAddress,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<DeploymentView>> {
        let service = self.service(addr).await?;
        let limit = limit.clamp(1, 500);
        let mut page = Page::newest(limit);
        if let Some(n) = before {
            // Index sort keys are the zero-padded number (see the catalog's key layout).
            page.after = Some(format!("idx/deployment/service/{}/{n:020}", service.id));
        }
        let listing = self.catalog.deployments_of(service.id, page).await?;
        let mut views = Vec::with_capacity(listing.items.len());
        for d in &listing.items {
            views.push(self.deployment_view(d).await?);
        }
        Ok(views)
    }

    pub async fn deploy_log(&self, addr: &ServiceAddress, number: u64) -> Result<Vec<LogEntry>> {
        let (_, d) = self.deployment_record(addr, number).await?;
        self.engine.deploy_log(d.id).await
    }

    /// Wait until deployment `number` is ACTIVE or finished, up to `timeout` (then
    /// [`Error::Timeout`], naming the state it is still in).
    pub async fn wait(
        &self,
        addr: &ServiceAddress,
        number: u64,
        timeout: Duration,
    ) -> Result<DeploymentView> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = self.deployment(addr, number).await?;
            let settled =
                d.status == clank_core::deploy::DeploymentStatus::Active || d.status.is_terminal();
            if settled {
                return Ok(d);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "deployment #{number} of `{addr}` is still {} after {:.0} s",
                    d.status,
                    timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Where deployment `number`'s published (`web`) workloads listen on the host, as the
    /// runtime reports them now, sorted; empty once they are stopped.
    pub async fn endpoints(&self, addr: &ServiceAddress, number: u64) -> Result<Vec<SocketAddr>> {
        let (_, d) = self.deployment_record(addr, number).await?;
        let filter = OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        };
        let mut found: Vec<SocketAddr> = self
            .engine
            .runtime()
            .list(&filter)
            .await?
            .iter()
            .filter_map(|w| w.endpoint)
            .collect();
        found.sort();
        Ok(found)
    }

    async fn deployment_record(
        &self,
        addr: &ServiceAddress,
        number: u64,
    ) -> Result<(Versioned<Service>, Versioned<Deployment>)> {
        let service = self.service(addr).await?;
        let d = self
            .catalog
            .lookup::<Deployment>("number", &format!("{}:{number}", service.id))
            .await?
            .ok_or_else(|| Error::not_found("deployment", format!("{addr}#{number}")))?;
        Ok((service, d))
    }
}

/// The deploy engine running in the background ([`Platform::spawn_engine`]); dropping it
/// signals the engine to stop without waiting. Workloads keep running either way.
#[derive(Debug)]
pub struct EngineTask {
    shutdown: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<()>>>>,
}

impl EngineTask {
    fn signal(&self) {
        let sender = self
            .shutdown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(tx) = sender {
            let _ = tx.send(());
        }
    }

    /// Stop the engine and wait (up to `timeout`) for its loop to return; idempotent. The
    /// engine's own error, if it had stopped on one, is returned once.
    pub async fn stop(&self, timeout: Duration) -> Result<()> {
        self.signal();
        let Some(task) = self.task.lock().await.take() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(Error::Internal(format!(
                "the deploy engine panicked: {join}"
            ))),
            Err(_) => Err(Error::Internal(format!(
                "the deploy engine did not stop within {:.0} s",
                timeout.as_secs_f64()
            ))),
        }
    }
}

impl Drop for EngineTask {
    fn drop(&mut self) {
        self.signal();
    }
}

fn values<T>(items: Vec<Versioned<T>>) -> Vec<T> {
    items.into_iter().map(|v| v.value).collect()
}

/// Refuse to add to a soft-deleted project.
fn live(p: &Project) -> Result<()> {
    if p.is_deleted() {
        return Err(InvalidInput::new(
            "project",
            "deleted",
            format!("project `{}` is deleted", p.slug),
        )
        .into());
    }
    Ok(())
}
