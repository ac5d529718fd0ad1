//! Deleting, restoring and purging services, environments and projects.
//!
//! A delete is soft: the thing and everything under it are marked (`deleted_at`, one write
//! for an environment and its services), and a marked service is parked like a stopped one
//! (the engine removes its route and workloads, deployments are refused). Slugs, domains and
//! volumes stay claimed, so `restore` — which clears the marks made by that delete and lets
//! the reconciler start the ACTIVE deployments again — can never clash. A purge removes the
//! thing for good: workloads (by owner labels, on every runtime it ran on), routes, the
//! environment's network, and the records (services, deployments, builds, config layers,
//! stacks, environments, the project), which frees slugs and domains. Named volumes are
//! kept unless the caller asks for them. A purge happens on request (`purge: true`) or by the
//! sweep once `deleted_at` + the retention has passed; the deadline is stored, so it
//! survives restarts.

use std::collections::BTreeSet;
use std::time::Duration;

use clank_api::lifecycle::{DeleteQuery, DeleteReport, PurgeReport};
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::config::Scope;
use clank_core::id::{ServiceId, WorkspaceId};
use clank_core::model::{CanvasLayout, Environment, Project, Service, Stack, Workspace};
use clank_core::runtime::volume_runtime_name;
use clank_core::store::catalog::{Batch, Catalog, Page, Record, Versioned};
use clank_core::{Error, InvalidInput, Result, Timestamp};
use tracing::{info, warn};

use crate::Platform;

/// How long a deleted service, environment or project can be restored: seven days.
pub const DEFAULT_DELETE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the sweep looks for deleted things past their retention.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Records written per transaction when marking or removing many.
const BATCH_RECORDS: usize = 200;

/// Records the sweeps read per store read: what one holds in memory at a time, whatever the
/// number of services (a sweep at start and every minute once read all 10,000 of a large
/// instance at once, and the allocator kept that memory).
pub(crate) const SWEEP_PAGE: usize = 256;

/// Move `page` on to `next`; `false` when there is no next page.
pub(crate) fn next_page(page: &mut Page, next: Option<String>) -> bool {
    match next {
        Some(after) => {
            page.after = Some(after);
            true
        }
        None => false,
    }
}

/// Record a purge the sweep made, or log why it could not (it is tried again next time).
fn keep(done: &mut Vec<(String, PurgeReport)>, target: String, purged: Result<PurgeReport>) {
    match purged {
        Ok(report) => done.push((target, report)),
        Err(e) => {
            warn!(target = %target, error = %e, "Could not purge after the delete retention; trying again at the next sweep.")
        }
    }
}

/// Refuse to add to a soft-deleted environment.
pub(crate) fn live_environment(env: &Environment) -> Result<()> {
    if env.is_deleted() {
        return Err(InvalidInput::new(
            "environment",
            "deleted",
            format!(
                "environment `{}` is deleted; restore it first to add to it",
                env.name
            ),
        )
        .into());
    }
    Ok(())
}

fn check_query(how: DeleteQuery) -> Result<()> {
    if how.volumes && !how.purge {
        return Err(InvalidInput::new(
            "volumes",
            "requires_purge",
            "`volumes` removes data for good and only goes with `purge`; a soft delete keeps \
             every volume",
        )
        .into());
    }
    Ok(())
}

/// Writes collected into transactions of at most [`BATCH_RECORDS`] records each, committed in
/// order (so what must be written last — a parent's mark — goes in last).
#[derive(Default)]
struct Chunked {
    batches: Vec<Batch>,
    in_last: usize,
    records: u64,
}

impl Chunked {
    /// The batch the next record's write goes into: a new one once the last is full.
    fn batch(&mut self) -> &mut Batch {
        if self.batches.is_empty() || self.in_last >= BATCH_RECORDS {
            self.batches.push(Batch::new());
            self.in_last = 0;
        }
        self.in_last += 1;
        self.records += 1;
        let last = self.batches.len() - 1;
        &mut self.batches[last]
    }

    fn delete<T: Record>(&mut self, rec: &Versioned<T>) {
        self.batch().delete(rec);
    }

    /// Commit every batch in order; how many records were written.
    async fn commit(self, catalog: &Catalog) -> Result<u64> {
        for b in self.batches.into_iter().filter(|b| !b.is_empty()) {
            catalog.commit(b).await?;
        }
        Ok(self.records)
    }
}

impl Platform {
    /// Keep deleted things restorable for `retention` before the sweep purges them
    /// (default [`DEFAULT_DELETE_RETENTION`]).
    pub fn with_delete_retention(mut self, retention: Duration) -> Self {
        self.delete_retention = retention;
        self
    }

    /// How long deleted things stay restorable.
    pub fn delete_retention(&self) -> Duration {
        self.delete_retention
    }

    fn restorable_until(&self, deleted_at: Timestamp) -> Timestamp {
        deleted_at.saturating_add(self.delete_retention)
    }

    fn soft_report(&self, target: String, deleted_at: Timestamp) -> DeleteReport {
        DeleteReport {
            target,
            deleted_at,
            restorable_until: Some(self.restorable_until(deleted_at)),
            purged: None,
        }
    }

    // ---- Services ----------------------------------------------------------------------

    /// Delete a service: parked (route and workloads removed) and restorable for the
    /// retention, or with `purge` removed for good now (its volumes too with `volumes`).
    pub async fn delete_service(
        &self,
        addr: &ServiceAddress,
        how: DeleteQuery,
    ) -> Result<DeleteReport> {
        check_query(how)?;
        let now = Timestamp::now();
        let svc = self
            .catalog
            .modify::<Service>(&self.service(addr).await?.id.to_string(), |s| {
                if s.deleted_at.is_none() {
                    s.deleted_at = Some(now);
                    s.updated_at = now;
                }
                Ok(())
            })
            .await?;
        self.engine.park(&[svc.id]).await?;
        let deleted_at = svc.deleted_at.unwrap_or(now);
        if !how.purge {
            info!(service = %addr, "Service deleted; restorable until the retention passes.");
            return Ok(self.soft_report(addr.to_string(), deleted_at));
        }
        let purged = self
            .purge_services(&[svc], how.volumes, &BTreeSet::new())
            .await?;
        Ok(DeleteReport {
            target: addr.to_string(),
            deleted_at,
            restorable_until: None,
            purged: Some(purged),
        })
    }

    /// Bring a deleted service back; its ACTIVE deployment starts again (as with `start`).
    /// Refused while its environment or project is deleted: restore that instead.
    pub async fn restore_service(&self, addr: &ServiceAddress) -> Result<Service> {
        let (project, env) = self.environment(addr.environment_address()).await?;
        if project.is_deleted() {
            return Err(Error::Conflict(format!(
                "service `{addr}` was deleted with its project: restore the project instead \
                 (`clank project restore {}`)",
                addr.project_address()
            )));
        }
        if env.is_deleted() {
            return Err(Error::Conflict(format!(
                "service `{addr}` was deleted with its environment: restore the environment \
                 instead (`clank env restore {}`)",
                addr.environment_address()
            )));
        }
        let id = self.service(addr).await?.id;
        let svc = self
            .catalog
            .modify::<Service>(&id.to_string(), |s| {
                if s.deleted_at.take().is_some() {
                    s.updated_at = Timestamp::now();
                }
                Ok(())
            })
            .await?;
        self.engine.unpark(&[svc.id]);
        Ok(svc)
    }

    // ---- Environments ------------------------------------------------------------------

    /// Delete an environment and its services (one write): parked and restorable for the
    /// retention, or with `purge` removed for good now with its network. The default
    /// environment is deleted only with its project.
    pub async fn delete_environment(
        &self,
        addr: &EnvironmentAddress,
        how: DeleteQuery,
    ) -> Result<DeleteReport> {
        check_query(how)?;
        let (project, env) = self.environment(addr).await?;
        if env.name == Environment::DEFAULT {
            return Err(Error::Conflict(format!(
                "`{}` is the project's default environment and is deleted only with the \
                 project: delete the project instead (`clank project delete {}`)",
                env.name,
                addr.project_address()
            )));
        }
        let now = Timestamp::now();
        let deleted_at = env.deleted_at.unwrap_or(now);
        let services = self.mark_environment(&env, now).await?;
        self.engine.park(&services).await?;
        if !how.purge {
            info!(environment = %addr, "Environment deleted; restorable until the retention passes.");
            return Ok(self.soft_report(addr.to_string(), deleted_at));
        }
        let purged = self
            .purge_environment(&project.value, &env.id.to_string(), how.volumes)
            .await?;
        Ok(DeleteReport {
            target: addr.to_string(),
            deleted_at,
            restorable_until: None,
            purged: Some(purged),
        })
    }

    /// Mark the environment (if not yet) and every service of it not yet marked, at `now`:
    /// in one write when they fit, else the services first and the environment last, so a
    /// retry after a failure finishes the job. Returns every service of the environment.
    async fn mark_environment(
        &self,
        env: &Versioned<Environment>,
        now: Timestamp,
    ) -> Result<Vec<ServiceId>> {
        loop {
            let env = self
                .catalog
                .require::<Environment>(&env.id.to_string())
                .await?;
            let services = self
                .catalog
                .services_in_environment(env.id, Page::all())
                .await?
                .items;
            let ids = services.iter().map(|s| s.id).collect();
            let mut writes = Chunked::default();
            for s in services.iter().filter(|s| s.deleted_at.is_none()) {
                let mut next = s.value.clone();
                next.deleted_at = Some(now);
                next.updated_at = now;
                writes.batch().update(s, &next)?;
            }
            if env.deleted_at.is_none() {
                let mut next = env.value.clone();
                next.deleted_at = Some(now);
                writes.batch().update(&env, &next)?;
            }
            match writes.commit(&self.catalog).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(ids),
            }
        }
    }

    /// Bring a deleted environment back with the services deleted with it (or after it);
    /// a service deleted on its own before stays deleted. Refused while its project is
    /// deleted.
    pub async fn restore_environment(&self, addr: &EnvironmentAddress) -> Result<Environment> {
        let (project, env) = self.environment(addr).await?;
        if project.is_deleted() {
            return Err(Error::Conflict(format!(
                "environment `{addr}` was deleted with its project: restore the project \
                 instead (`clank project restore {}`)",
                addr.project_address()
            )));
        }
        let (env, services) = self.unmark_environment(&env).await?;
        self.engine.unpark(&services);
        Ok(env)
    }

    /// Clear the environment's mark and those of its services marked at or after it.
    async fn unmark_environment(
        &self,
        env: &Versioned<Environment>,
    ) -> Result<(Environment, Vec<ServiceId>)> {
        loop {
            let env = self
                .catalog
                .require::<Environment>(&env.id.to_string())
                .await?;
            let Some(since) = env.deleted_at else {
                return Ok((env.value, Vec::new()));
            };
            let services = self
                .catalog
                .services_in_environment(env.id, Page::all())
                .await?
                .items;
            let mut writes = Chunked::default();
            let mut restored = Vec::new();
            let now = Timestamp::now();
            for s in services
                .iter()
                .filter(|s| s.deleted_at.is_some_and(|at| at >= since))
            {
                let mut next = s.value.clone();
                next.deleted_at = None;
                next.updated_at = now;
                writes.batch().update(s, &next)?;
                restored.push(s.id);
            }
            // The environment last: if a write fails, it is still deleted and a retry
            // restores the rest.
            let mut next = env.value.clone();
            next.deleted_at = None;
            writes.batch().update(&env, &next)?;
            match writes.commit(&self.catalog).await {
                Err(Error::WriteConflict { .. }) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok((next, restored)),
            }
        }
    }

    // ---- Projects ----------------------------------------------------------------------

    /// Delete a project with its environments and services: parked and restorable for the
    /// retention, or with `purge` removed for good now.
    pub async fn delete_project(
        &self,
        addr: &ProjectAddress,
        how: DeleteQuery,
    ) -> Result<DeleteReport> {
        check_query(how)?;
        let now = Timestamp::now();
        let project = self.project(addr).await?;
        let deleted_at = project.deleted_at.unwrap_or(now);
        // Children first, the project last: a failure half way leaves the project live (and
        // the delete to be retried), never a deleted project with running services.
        let mut services = Vec::new();
        for env in self.environment_records(&project.value).await? {
            services.extend(self.mark_environment(&env, now).await?);
        }
        self.catalog
            .modify::<Project>(&project.id.to_string(), |p| {
                p.deleted_at.get_or_insert(now);
                Ok(())
            })
            .await?;
        self.engine.park(&services).await?;
        if !how.purge {
            info!(project = %addr, "Project deleted; restorable until the retention passes.");
            return Ok(self.soft_report(addr.to_string(), deleted_at));
        }
        let purged = self
            .purge_project(&project.id.to_string(), how.volumes)
            .await?;
        Ok(DeleteReport {
            target: addr.to_string(),
            deleted_at,
            restorable_until: None,
            purged: Some(purged),
        })
    }

    /// Bring a deleted project back with the environments and services deleted with it.
    pub async fn restore_project(&self, addr: &ProjectAddress) -> Result<Project> {
        let project = self.project(addr).await?;
        let Some(since) = project.deleted_at else {
            return Ok(project.value);
        };
        // The project first, so its environments may be restored; then each environment
        // deleted with it (or after it).
        let restored = self
            .catalog
            .modify::<Project>(&project.id.to_string(), |p| {
                p.deleted_at = None;
                Ok(())
            })
            .await?;
        for env in self.environment_records(&restored).await? {
            if env.deleted_at.is_some_and(|at| at >= since) {
                let (_, services) = self.unmark_environment(&env).await?;
                self.engine.unpark(&services);
            }
        }
        Ok(restored)
    }

    async fn environment_records(&self, project: &Project) -> Result<Vec<Versioned<Environment>>> {
        Ok(self
            .catalog
            .find::<Environment>("project", &project.id.to_string(), Page::all())
            .await?
            .items)
    }

    // ---- Purge ---------------------------------------------------------------------------

    /// Remove `services` for good: their workloads and routes, their volumes when asked
    /// (unless a service outside `purging` mounts one too), and their records.
    async fn purge_services(
        &self,
        services: &[Service],
        volumes: bool,
        purging: &BTreeSet<ServiceId>,
    ) -> Result<PurgeReport> {
        let mut report = PurgeReport::default();
        let purging: BTreeSet<ServiceId> = purging
            .iter()
            .copied()
            .chain(services.iter().map(|s| s.id))
            .collect();
        for svc in services {
            self.engine.settle(svc).await?;
            let deployments = crate::values(
                self.catalog
                    .deployments_of(svc.id, Page::all())
                    .await?
                    .items,
            );
            report.containers.extend(
                self.engine
                    .remove_service_workloads(svc, &deployments)
                    .await?,
            );
            for v in &svc.volumes {
                let name = volume_runtime_name(svc.workspace_id, &v.name);
                let shared_elsewhere = v.shared
                    && self
                        .volume_mounted_elsewhere(svc.workspace_id, &v.name, &purging)
                        .await?;
                if !volumes || shared_elsewhere {
                    report.volumes_kept.push(name);
                    continue;
                }
                // A server that is gone (or cannot remove volumes) keeps it: reported.
                let removed = match self.engine.runtime_on(svc.server_id) {
                    Ok(runtime) => runtime.remove_volume(&name).await,
                    Err(e) => Err(e),
                };
                match removed {
                    Ok(()) => report.volumes_removed.push(name),
                    Err(e) => {
                        warn!(volume = %name, error = %e, "Could not remove a purged service's volume; it is kept.");
                        report.volumes_kept.push(name);
                    }
                }
            }
            // Read again: the reconciler may have written a deployment while the workloads
            // went (a cancelled one reaching CANCELLED).
            let mut removal = Chunked::default();
            for d in self
                .catalog
                .deployments_of(svc.id, Page::all())
                .await?
                .items
            {
                removal.delete(&d);
            }
            for b in self.catalog.builds_of(svc.id, Page::all()).await?.items {
                removal.delete(&b);
            }
            if let Some(layer) = self.catalog.config_layer(Scope::Service(svc.id)).await? {
                removal.delete(&layer);
            }
            if let Some(current) = self.catalog.get::<Service>(&svc.id.to_string()).await? {
                removal.delete(&current);
            }
            report.records += removal.commit(&self.catalog).await?;
            info!(service = %svc.id, slug = %svc.slug, "Service purged.");
        }
        Ok(report)
    }

    /// Whether a service of the workspace other than those in `purging` mounts volume `name`.
    async fn volume_mounted_elsewhere(
        &self,
        workspace: WorkspaceId,
        name: &str,
        purging: &BTreeSet<ServiceId>,
    ) -> Result<bool> {
        for p in self
            .catalog
            .projects_in(workspace, Page::all())
            .await?
            .items
        {
            let services = self
                .catalog
                .services_in_project(p.id, Page::all())
                .await?
                .items;
            if services
                .iter()
                .any(|s| !purging.contains(&s.id) && s.volumes.iter().any(|v| v.name == name))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remove environment `id` for good: its services, stacks, config, network and record.
    async fn purge_environment(
        &self,
        project: &Project,
        id: &str,
        volumes: bool,
    ) -> Result<PurgeReport> {
        let Some(env) = self.catalog.get::<Environment>(id).await? else {
            return Ok(PurgeReport::default());
        };
        let services = crate::values(
            self.catalog
                .services_in_environment(env.id, Page::all())
                .await?
                .items,
        );
        let purging: BTreeSet<ServiceId> = services.iter().map(|s| s.id).collect();
        let mut report = self.purge_services(&services, volumes, &purging).await?;
        let network = project.network_of(&env);
        // Remote servers keep their copy of the network: their agents have no call for it.
        self.engine.runtime().remove_network(&network).await?;
        report.networks.push(network);
        let mut removal = Chunked::default();
        for stack in self
            .catalog
            .find::<Stack>("environment", &env.id.to_string(), Page::all())
            .await?
            .items
        {
            removal.delete(&stack);
        }
        if let Some(layer) = self
            .catalog
            .config_layer(Scope::Environment(env.id))
            .await?
        {
            removal.delete(&layer);
        }
        if let Some(current) = self.catalog.get::<Environment>(id).await? {
            removal.delete(&current);
        }
        report.records += removal.commit(&self.catalog).await?;
        info!(environment = %env.id, name = %env.name, "Environment purged.");
        Ok(report)
    }

    /// Remove project `id` for good: every environment, its config and its record.
    async fn purge_project(&self, id: &str, volumes: bool) -> Result<PurgeReport> {
        let Some(project) = self.catalog.get::<Project>(id).await? else {
            return Ok(PurgeReport::default());
        };
        let mut report = PurgeReport::default();
        for env in self.environment_records(&project.value).await? {
            report.absorb(
                self.purge_environment(&project.value, &env.id.to_string(), volumes)
                    .await?,
            );
        }
        let mut removal = Chunked::default();
        if let Some(layer) = self
            .catalog
            .config_layer(Scope::Project(project.id))
            .await?
        {
            removal.delete(&layer);
        }
        // Every user's canvas of the project goes with it.
        for layout in self
            .catalog
            .find::<CanvasLayout>("project", id, Page::all())
            .await?
            .items
        {
            removal.delete(&layout);
        }
        if let Some(current) = self.catalog.get::<Project>(id).await? {
            removal.delete(&current);
        }
        report.records += removal.commit(&self.catalog).await?;
        info!(project = %project.id, slug = %project.slug, "Project purged.");
        Ok(report)
    }

    /// Purge what was deleted longer than the retention ago (volumes kept): projects, then
    /// environments, then services deleted on their own. Returns what each purge removed; one
    /// that fails (a deployment still stopping, the engine unreachable) is logged and tried
    /// again at the next sweep, and does not hold up the others.
    ///
    /// Reads the catalog [`SWEEP_PAGE`] records at a time (workspaces, projects, environments,
    /// services), so what one sweep holds in memory does not grow with the number of services.
    pub async fn purge_expired(&self) -> Result<Vec<(String, PurgeReport)>> {
        let now = Timestamp::now();
        let mut done = Vec::new();
        let mut page = Page::first(SWEEP_PAGE);
        loop {
            let workspaces = self.catalog.list::<Workspace>(page.clone()).await?;
            for ws in &workspaces.items {
                let mut page = Page::first(SWEEP_PAGE);
                loop {
                    let projects = self.catalog.projects_in(ws.id, page.clone()).await?;
                    for project in &projects.items {
                        self.purge_expired_in_project(&ws.slug, project, now, &mut done)
                            .await?;
                    }
                    if !next_page(&mut page, projects.next) {
                        break;
                    }
                }
            }
            if !next_page(&mut page, workspaces.next) {
                break;
            }
        }
        Ok(done)
    }

    /// Whether something deleted at `at` is past its retention at `now`.
    fn expired(&self, at: Option<Timestamp>, now: Timestamp) -> bool {
        at.is_some_and(|at| self.restorable_until(at) <= now)
    }

    /// [`Platform::purge_expired`] for one project: the project itself if it is deleted and
    /// expired (what was deleted with a parent goes with it: a restore brings it back),
    /// otherwise its expired environments and services, a page at a time.
    async fn purge_expired_in_project(
        &self,
        workspace: &str,
        project: &Versioned<Project>,
        now: Timestamp,
        done: &mut Vec<(String, PurgeReport)>,
    ) -> Result<()> {
        let name = format!("{workspace}/{}", project.slug);
        if project.is_deleted() {
            if self.expired(project.deleted_at, now) {
                let purged = self.purge_project(&project.id.to_string(), false).await;
                keep(done, name, purged);
            }
            return Ok(());
        }
        let mut page = Page::first(SWEEP_PAGE);
        loop {
            let envs = self
                .catalog
                .find::<Environment>("project", &project.id.to_string(), page.clone())
                .await?;
            for env in &envs.items {
                let env_name = format!("{name}/{}", env.name);
                if env.is_deleted() {
                    if self.expired(env.deleted_at, now) {
                        let purged = self
                            .purge_environment(&project.value, &env.id.to_string(), false)
                            .await;
                        keep(done, env_name, purged);
                    }
                    continue;
                }
                let mut page = Page::first(SWEEP_PAGE);
                loop {
                    let listing = self
                        .catalog
                        .services_in_environment(env.id, page.clone())
                        .await?;
                    let more = listing.next;
                    let expired: Vec<Service> = crate::values(listing.items)
                        .into_iter()
                        .filter(|s| self.expired(s.deleted_at, now))
                        .collect();
                    for svc in expired {
                        let purged = self
                            .purge_services(std::slice::from_ref(&svc), false, &BTreeSet::new())
                            .await;
                        keep(done, format!("{env_name}/{}", svc.slug), purged);
                    }
                    if !next_page(&mut page, more) {
                        break;
                    }
                }
            }
            if !next_page(&mut page, envs.next) {
                break;
            }
        }
        Ok(())
    }

    /// Run [`Platform::purge_expired`] every minute, for ever (part of [`Platform::run`]).
    pub(crate) async fn purge_sweep(&self) -> std::convert::Infallible {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.purge_expired().await {
                Ok(done) => {
                    for (target, report) in done {
                        info!(
                            target = %target,
                            containers = report.containers.len(),
                            networks = report.networks.len(),
                            records = report.records,
                            volumes_kept = ?report.volumes_kept,
                            "Purged after the delete retention."
                        );
                    }
                }
                Err(e) => warn!(error = %e, "The purge sweep failed; it runs again in a minute."),
            }
        }
    }
}
