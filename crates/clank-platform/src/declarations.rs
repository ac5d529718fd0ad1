//! Declarations: a project as data ([`Declaration`]: every environment, its services and the
//! config of each scope) exported, and applied as a stored plan like a promotion's.
//!
//! Planning compares the declaration with what the catalog holds and stores every write the
//! apply will make — records complete, secrets already sealed for their scope — with the
//! revision of everything it read and an expiry. Applying (`apply_plan`, by the plan's id)
//! re-reads those revisions, refuses (409) if any moved, and commits all the writes in one
//! batch. Applying creates and updates, and never deploys: changes reach each service with its
//! next deploy. A secret the target already has is kept (its value is never compared or read
//! back); keys the target has and the declaration lacks are kept, and the plan lists them.

use std::collections::{BTreeMap, BTreeSet};

use clank_api::declarations::{
    Declaration, Declared, DeclaredConfig, EnvironmentDeclaration, SecretValues, ServiceDeclaration,
};
use clank_api::plans::{
    AppliedPlan, ConfigChangeKind, ConfigDiff, FieldChange, MASK, PlanAction, PlanKind, PlanView,
    ServicePlan,
};
use clank_core::address::ProjectAddress;
use clank_core::config::{self, ConfigChange, ConfigLayer, ConfigVarView, Scope};
use clank_core::id::{PlanId, WorkspaceId};
use clank_core::model::{
    Environment, PLAN_TTL_MS, Permission, Project, ReadRevision, Service, Team,
};
use clank_core::store::Revision;
use clank_core::store::catalog::{Batch, IndexEntry, Page, Record, Versioned};
use clank_core::validate::{validate_env_key, validate_env_value};
use clank_core::{Error, InvalidInput, Result, Timestamp};
use serde_json::Value;

use crate::Platform;

/// A planned declaration apply, stored until applied or expired.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DeclarationPlan {
    id: PlanId,
    workspace_id: WorkspaceId,
    created_at: Timestamp,
    expires_at: Timestamp,
    /// What the apply writes, complete, in order.
    writes: Vec<Write>,
    /// What applying needs of the caller (mirrors the separate calls' permissions).
    needs: Vec<Permission>,
    /// Every record the plan read, with its revision.
    fingerprint: Vec<ReadRevision>,
    /// The plan as shown (`PlanView` as JSON).
    view: String,
    applied_at: Option<Timestamp>,
}

/// One write of an apply. Config layers are whole (secrets sealed for their scope).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "write", rename_all = "snake_case")]
enum Write {
    CreateProject { project: Project },
    CreateEnvironment { environment: Environment },
    CreateService { service: Service },
    UpdateService { service: Service },
    Config { layer: ConfigLayer },
}

impl Record for DeclarationPlan {
    const TABLE: &'static str = "declaration_plan";
    fn id_string(&self) -> String {
        self.id.to_string()
    }
    fn indexes(&self) -> Vec<IndexEntry> {
        vec![IndexEntry::new("workspace", self.workspace_id, self.id)]
    }
    fn check_update(old: &Self, new: &Self) -> Result<()> {
        if old.fingerprint != new.fingerprint || old.writes != new.writes || old.view != new.view {
            return Err(Error::Internal(
                "a stored plan never changes except to record its apply".into(),
            ));
        }
        Ok(())
    }
}

/// A declaration planned, not stored yet: what the caller will see, and what applying it
/// needs, so a caller may refuse before anything is written
/// ([`Platform::store_declaration_plan`] stores it).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDeclaration {
    record: DeclarationPlan,
    view: PlanView,
}

impl PlannedDeclaration {
    pub fn view(&self) -> &PlanView {
        &self.view
    }

    /// The permissions applying it needs: always ManageServices; ManageProjects as well when it
    /// creates the project or an environment, or changes their config.
    pub fn needs(&self) -> &[Permission] {
        &self.record.needs
    }
}

/// The records a plan reads, in order, with their revisions.
#[derive(Default)]
struct Fingerprint(Vec<ReadRevision>);

impl Fingerprint {
    fn read(&mut self, what: String, key: String, revision: Option<Revision>) {
        if !self.0.iter().any(|r| r.key == key) {
            self.0.push(ReadRevision {
                what,
                key,
                revision,
            });
        }
    }
}

/// A plan as it is built: the writes, the view's entries and the permissions they need.
#[derive(Default)]
struct Draft {
    writes: Vec<Write>,
    services: Vec<ServicePlan>,
    needs: Vec<Permission>,
    fingerprint: Fingerprint,
}

impl Draft {
    fn write(&mut self, write: Write, need: Permission) {
        self.writes.push(write);
        if !self.needs.contains(&need) {
            self.needs.push(need);
        }
    }
}

impl Platform {
    /// The project at `addr` as a declaration: every live environment, its live services and
    /// the config of each scope, secrets as `{ secret_env = KEY }` (never a value).
    pub async fn export_project(&self, addr: &ProjectAddress) -> Result<Declaration> {
        let project = self.project(addr).await?;
        let team = match project.team_id {
            Some(id) => self
                .catalog
                .get::<Team>(&id.to_string())
                .await?
                .map(|t| t.value.slug),
            None => None,
        };
        let mut environments = BTreeMap::new();
        for env in self.list_environments(addr).await? {
            let mut services = BTreeMap::new();
            let listing = self
                .catalog
                .services_in_environment(env.id, Page::all())
                .await?;
            for s in listing.items.into_iter().filter(|s| !s.is_deleted()) {
                let config = self.exported(Scope::Service(s.id)).await?;
                services.insert(s.slug.clone(), declared_service(&s, config));
            }
            let config = self.exported(Scope::Environment(env.id)).await?;
            environments.insert(env.name, EnvironmentDeclaration { config, services });
        }
        Ok(Declaration {
            project: project.slug.clone(),
            name: project.name.clone(),
            team,
            config: self.exported(Scope::Project(project.id)).await?,
            environments,
        })
    }

    async fn exported(&self, scope: Scope) -> Result<DeclaredConfig> {
        let vars = self
            .catalog
            .config_layer(scope)
            .await?
            .map(|l| l.value.view())
            .unwrap_or_default();
        Ok(vars
            .into_iter()
            .map(|v| {
                let value = if v.secret {
                    Declared::Secret {
                        secret_env: v.key.clone(),
                    }
                } else {
                    Declared::Plain(v.value)
                };
                (v.key, value)
            })
            .collect())
    }

    /// Plan applying `declaration` to its project in `workspace` (created if missing): the plan
    /// and what applying it needs; nothing is written (store it with
    /// [`Platform::store_declaration_plan`]). `secrets`
    /// holds the values of secrets the target lacks, by `secret_env` name; one the target lacks
    /// and `secrets` does not hold is refused, naming its field and name.
    pub async fn plan_declaration(
        &self,
        workspace: &str,
        declaration: Declaration,
        secrets: &SecretValues,
        source: Option<String>,
    ) -> Result<PlannedDeclaration> {
        let ws = self.workspace(workspace).await?;
        let slug = match declaration.project.split_once('/') {
            None => declaration.project.as_str(),
            Some((w, p)) if w == workspace => p,
            Some(_) => {
                return Err(InvalidInput::new(
                    "project",
                    "other_workspace",
                    format!(
                        "`{}` names another workspace; a declaration applies inside `{workspace}`",
                        declaration.project.escape_debug()
                    ),
                )
                .into());
            }
        };
        let addr = ProjectAddress::new(workspace, slug)
            .map_err(|e| InvalidInput::new("project", e.rule, e.message))?;
        let now = Timestamp::now();
        // Every apply needs ManageServices, even one that changes nothing.
        let mut draft = Draft {
            needs: vec![Permission::ManageServices],
            ..Draft::default()
        };
        let existing = self
            .catalog
            .lookup::<Project>("slug", &format!("{}:{slug}", ws.id))
            .await?;
        draft.fingerprint.read(
            format!("project {addr}"),
            format!("project-slug:{}:{slug}", ws.id),
            existing.as_ref().map(|p| p.version),
        );
        let (project, created) = match existing {
            Some(p) => {
                crate::live(&p)?;
                (p.value, false)
            }
            None => {
                let p = Project::new(ws.id, &declaration.name, Some(slug), now)?;
                draft.write(
                    Write::CreateProject { project: p.clone() },
                    Permission::ManageProjects,
                );
                draft.services.push(created_entry(addr.to_string()));
                (p, true)
            }
        };
        self.plan_scope(
            &mut draft,
            Scope::Project(project.id),
            &declaration.config,
            "config",
            addr.to_string(),
            secrets,
            now,
        )
        .await?;
        let mut environments: Vec<(String, EnvironmentDeclaration)> =
            declaration.environments.into_iter().collect();
        // A new project gets `production` like every project, declared or not.
        if created && !environments.iter().any(|(n, _)| n == Environment::DEFAULT) {
            environments.insert(0, (Environment::DEFAULT.to_owned(), Default::default()));
        }
        for (name, env) in &environments {
            let field = format!("environments.{name}");
            let env_addr = addr
                .environment(name)
                .map_err(|e| InvalidInput::new(field.clone(), e.rule, e.message))?;
            let found = if created {
                None
            } else {
                self.catalog
                    .lookup::<Environment>("name", &format!("{}:{name}", project.id))
                    .await?
            };
            draft.fingerprint.read(
                format!("environment {env_addr}"),
                format!("environment-name:{}:{name}", project.id),
                found.as_ref().map(|e| e.version),
            );
            let (environment, env_created) = match found {
                Some(e) if e.is_deleted() => {
                    return Err(InvalidInput::new(
                        field,
                        "deleted",
                        format!("environment `{env_addr}` is deleted; restore it first"),
                    )
                    .into());
                }
                Some(e) => (e.value, false),
                None => {
                    let e = Environment::new(project.id, name, now)
                        .map_err(|e| InvalidInput::new(field.clone(), e.rule, e.message))?;
                    draft.write(
                        Write::CreateEnvironment {
                            environment: e.clone(),
                        },
                        Permission::ManageProjects,
                    );
                    draft.services.push(created_entry(env_addr.to_string()));
                    (e, true)
                }
            };
            self.plan_scope(
                &mut draft,
                Scope::Environment(environment.id),
                &env.config,
                &format!("{field}.config"),
                env_addr.to_string(),
                secrets,
                now,
            )
            .await?;
            let mut existing = BTreeMap::new();
            if !env_created {
                let listing = self
                    .catalog
                    .services_in_environment(environment.id, Page::all())
                    .await?;
                for s in listing.items {
                    existing.insert(s.slug.clone(), s);
                }
            }
            for (slug, declared) in &env.services {
                let field = format!("{field}.services.{slug}");
                let have = existing.get(slug);
                let service_addr = env_addr
                    .service(slug)
                    .map_err(|e| InvalidInput::new(field.clone(), e.rule, e.message))?;
                draft.fingerprint.read(
                    format!("service {service_addr}"),
                    format!("service-slug:{}:{slug}", environment.id),
                    have.map(|s| s.version),
                );
                if have.is_some_and(|s| s.is_deleted()) {
                    return Err(InvalidInput::new(
                        field,
                        "deleted",
                        format!("service `{service_addr}` is deleted; restore or purge it first"),
                    )
                    .into());
                }
                let mut declared = declared.clone();
                // No processes declared: the platform's default for a new service, the ones
                // it has for an existing one.
                if declared.processes.is_empty()
                    && let Some(s) = have
                {
                    declared.processes = s.processes.clone();
                }
                let deps_known =
                    |dep: &String| existing.contains_key(dep) || env.services.contains_key(dep);
                for (i, dep) in declared.depends_on.iter().enumerate() {
                    if !deps_known(dep) {
                        return Err(InvalidInput::new(
                            format!("{field}.depends_on[{i}]"),
                            "unknown_service",
                            format!(
                                "there is no service `{dep}` in `{env_addr}` or the declaration"
                            ),
                        )
                        .into());
                    }
                }
                let before =
                    have.map(|s| service_fields(&declared_service(s, DeclaredConfig::new())));
                let fields = field_changes(before.as_ref(), &service_fields(&declared));
                let service = match have {
                    Some(s) => {
                        let mut next = s.value.clone();
                        next.name = declared.name.clone();
                        next.source = declared.source.clone();
                        next.settings = declared.settings.clone();
                        next.volumes = declared.volumes.clone();
                        next.endpoint = declared.endpoint.clone();
                        next.processes = declared.processes.clone();
                        next.depends_on = declared.depends_on.clone();
                        next.updated_at = now;
                        if !fields.is_empty() {
                            next.validate().map_err(|e| e.within(&field))?;
                            if next.source != s.source {
                                self.check_source(&next.source)
                                    .map_err(|e| within(e, &field))?;
                            }
                            draft.write(
                                Write::UpdateService {
                                    service: next.clone(),
                                },
                                Permission::ManageServices,
                            );
                        }
                        next
                    }
                    None => {
                        let s = new_service(&project, &environment, slug, &declared, now)
                            .map_err(|e| e.within(&field))?;
                        self.check_source(&s.source)
                            .map_err(|e| within(e, &field))?;
                        draft.write(
                            Write::CreateService { service: s.clone() },
                            Permission::ManageServices,
                        );
                        s
                    }
                };
                let config = self
                    .plan_scope_config(
                        &mut draft,
                        Scope::Service(service.id),
                        &declared.config,
                        &format!("{field}.config"),
                        &service_addr.to_string(),
                        secrets,
                        now,
                    )
                    .await?;
                let action = match (have, fields.is_empty() && config.iter().all(removed)) {
                    (None, _) => PlanAction::Create,
                    (Some(_), true) => PlanAction::Unchanged,
                    (Some(_), false) => PlanAction::Update,
                };
                draft.services.push(ServicePlan {
                    service: service_addr.to_string(),
                    action,
                    image: None,
                    fields,
                    config,
                    kept: Vec::new(),
                });
            }
        }
        let id = PlanId::new();
        let view = PlanView {
            id: id.to_string(),
            kind: PlanKind::Apply,
            source: source.unwrap_or_else(|| "declaration".to_owned()),
            target: addr.to_string(),
            created_at: now,
            expires_at: Timestamp(now.0.saturating_add(PLAN_TTL_MS)),
            unchanged: draft.writes.is_empty(),
            services: draft.services,
            applied_at: None,
        };
        let record = DeclarationPlan {
            id,
            workspace_id: ws.id,
            created_at: now,
            expires_at: view.expires_at,
            writes: draft.writes,
            needs: draft.needs,
            fingerprint: draft.fingerprint.0,
            view: serde_json::to_string(&view)
                .map_err(|e| Error::Internal(format!("plan view: {e}")))?,
            applied_at: None,
        };
        Ok(PlannedDeclaration { record, view })
    }

    /// Store a planned declaration, so `apply_plan` can apply it by id; returns its view.
    pub async fn store_declaration_plan(&self, planned: PlannedDeclaration) -> Result<PlanView> {
        self.catalog.create(&planned.record).await?;
        self.forget_expired::<DeclarationPlan>(
            planned.record.workspace_id,
            planned.record.created_at,
            |p| p.expires_at,
        )
        .await;
        Ok(planned.view)
    }

    /// A project's or environment's config: planned like a service's, shown as its own entry
    /// (`ws/shop (config)`) when anything differs.
    #[allow(clippy::too_many_arguments)]
    async fn plan_scope(
        &self,
        draft: &mut Draft,
        scope: Scope,
        want: &DeclaredConfig,
        field: &str,
        address: String,
        secrets: &SecretValues,
        now: Timestamp,
    ) -> Result<()> {
        let config = self
            .plan_scope_config(draft, scope, want, field, &address, secrets, now)
            .await?;
        if !config.is_empty() {
            let action = if config.iter().all(removed) {
                PlanAction::Unchanged
            } else {
                PlanAction::Update
            };
            draft.services.push(ServicePlan {
                service: format!("{address} (config)"),
                action,
                image: None,
                fields: Vec::new(),
                config,
                kept: Vec::new(),
            });
        }
        Ok(())
    }

    /// The layer that makes `scope` hold `want` (written when anything changes) and how the
    /// two differ, secrets masked.
    #[allow(clippy::too_many_arguments)]
    async fn plan_scope_config(
        &self,
        draft: &mut Draft,
        scope: Scope,
        want: &DeclaredConfig,
        field: &str,
        address: &str,
        secrets: &SecretValues,
        now: Timestamp,
    ) -> Result<Vec<ConfigDiff>> {
        let current = self.catalog.config_layer(scope).await?;
        draft.fingerprint.read(
            format!("config of {address}"),
            format!("config:{scope}"),
            current.as_ref().map(|l| l.version),
        );
        let have = current.as_ref().map(|l| l.value.view()).unwrap_or_default();
        let (changes, diffs) = config_plan(want, &have, field, secrets)?;
        if !changes.is_empty() {
            let base = current
                .map(|l| l.value)
                .unwrap_or_else(|| ConfigLayer::new(scope));
            let layer = config::apply_bulk(&base, &changes, &self.keyring, now)?;
            let need = match scope {
                Scope::Service(_) => Permission::ManageServices,
                _ => Permission::ManageProjects,
            };
            draft.write(Write::Config { layer }, need);
        }
        Ok(diffs)
    }

    /// A stored declaration plan of `workspace` by id; `None` when `id` is no such plan (it
    /// may be a promotion's).
    async fn stored_declaration_plan(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<Versioned<DeclarationPlan>>> {
        let ws = self.workspace(workspace).await?;
        let plan_id: PlanId = id.parse()?;
        Ok(self
            .catalog
            .get::<DeclarationPlan>(&plan_id.to_string())
            .await?
            .filter(|p| p.workspace_id == ws.id))
    }

    /// The view of a stored declaration plan (`applied_at` set once applied), if `id` is one.
    pub(crate) async fn declaration_plan_view(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<PlanView>> {
        let Some(plan) = self.stored_declaration_plan(workspace, id).await? else {
            return Ok(None);
        };
        let mut view: PlanView = serde_json::from_str(&plan.view)
            .map_err(|e| Error::Internal(format!("stored plan {id}: {e}")))?;
        view.applied_at = plan.applied_at;
        Ok(Some(view))
    }

    /// What applying the stored plan `id` of `workspace` needs of its caller, with its kind: a
    /// promotion needs Deploy; a declaration what its writes need (projects and environments:
    /// ManageProjects; services: ManageServices).
    pub async fn plan_permissions(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<(PlanKind, Vec<Permission>)> {
        if let Some(plan) = self.stored_declaration_plan(workspace, id).await? {
            return Ok((PlanKind::Apply, plan.value.needs));
        }
        let view = self.plan(workspace, id).await?;
        Ok((view.kind, vec![Permission::Deploy]))
    }

    /// Apply a stored declaration plan, if `id` is one: refused (409) when it expired, was
    /// applied already, or anything it read changed since; every write in one batch.
    pub(crate) async fn apply_declaration_plan(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<AppliedPlan>> {
        let Some(plan) = self.stored_declaration_plan(workspace, id).await? else {
            return Ok(None);
        };
        let now = Timestamp::now();
        if let Some(at) = plan.applied_at {
            return Err(Error::Conflict(format!(
                "plan {id} was already applied at {at}; plan the declaration again"
            )));
        }
        if now >= plan.expires_at {
            return Err(Error::Conflict(format!(
                "plan {id} expired at {}; plan the declaration again",
                plan.expires_at
            )));
        }
        let mut batch = Batch::new();
        let mut changed = Vec::new();
        for read in &plan.fingerprint {
            let (record, revision) = self.read_again(&read.key).await?;
            if revision != read.revision {
                changed.push(read.what.as_str());
            }
            // Every record the plan read is a condition of the write: a change between this
            // check and the commit applies nothing.
            match (record, revision) {
                (Read::Project(id), Some(r)) => {
                    batch.expect::<Project>(&id, Some(r));
                }
                (Read::Environment(id), Some(r)) => {
                    batch.expect::<Environment>(&id, Some(r));
                }
                (Read::Service(id), Some(r)) => {
                    batch.expect::<Service>(&id, Some(r));
                }
                (Read::Config(scope), r) => {
                    batch.expect::<ConfigLayer>(&scope, r);
                }
                // Absent then: the write creating it claims its slug or name.
                _ => {}
            }
        }
        if !changed.is_empty() {
            return Err(Error::Conflict(format!(
                "plan {id} is out of date: {} changed since it was made; plan the declaration \
                 again",
                changed.join(", ")
            )));
        }
        for write in &plan.writes {
            match write {
                Write::CreateProject { project } => {
                    batch.create(project)?;
                }
                Write::CreateEnvironment { environment } => {
                    batch.create(environment)?;
                }
                Write::CreateService { service } => {
                    let mut s = service.clone();
                    s.created_at = now;
                    s.updated_at = now;
                    batch.create(&s)?;
                }
                Write::UpdateService { service } => {
                    let current = self
                        .catalog
                        .require::<Service>(&service.id.to_string())
                        .await?;
                    let mut next = service.clone();
                    next.updated_at = now;
                    batch.update(&current, &next)?;
                }
                Write::Config { layer } => {
                    match self.catalog.config_layer(layer.scope).await? {
                        Some(current) => batch.update(&current, layer)?,
                        None => batch.create(layer)?,
                    };
                }
            }
        }
        let mut applied = plan.value.clone();
        applied.applied_at = Some(now);
        batch.update(&plan, &applied)?;
        match self.catalog.commit(batch).await {
            Err(Error::WriteConflict { .. }) => {
                return Err(Error::Conflict(format!(
                    "plan {id}: something it read changed while it was applied; nothing was \
                     applied, plan the declaration again"
                )));
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let view: PlanView = serde_json::from_str(&plan.view)
            .map_err(|e| Error::Internal(format!("stored plan {id}: {e}")))?;
        // Service addresses have four segments; the project's and environments' fewer.
        let created = view
            .services
            .iter()
            .filter(|s| s.action == PlanAction::Create && s.service.matches('/').count() == 3)
            .map(|s| s.service.clone())
            .collect();
        Ok(Some(AppliedPlan {
            plan: id.to_owned(),
            deployments: Vec::new(),
            created,
        }))
    }

    /// The record a fingerprint key names now, and its revision (`None`: absent).
    async fn read_again(&self, key: &str) -> Result<(Read, Option<Revision>)> {
        let bad = || Error::Internal(format!("fingerprint key `{key}`"));
        let (kind, rest) = key.split_once(':').ok_or_else(bad)?;
        Ok(match kind {
            "project-slug" => {
                let p = self.catalog.lookup::<Project>("slug", rest).await?;
                (
                    Read::Project(p.as_ref().map(|p| p.id.to_string()).unwrap_or_default()),
                    p.map(|p| p.version),
                )
            }
            "environment-name" => {
                let e = self.catalog.lookup::<Environment>("name", rest).await?;
                (
                    Read::Environment(e.as_ref().map(|e| e.id.to_string()).unwrap_or_default()),
                    e.map(|e| e.version),
                )
            }
            "service-slug" => {
                let s = self.catalog.lookup::<Service>("slug", rest).await?;
                (
                    Read::Service(s.as_ref().map(|s| s.id.to_string()).unwrap_or_default()),
                    s.map(|s| s.version),
                )
            }
            "config" => {
                let scope: Scope = rest.parse()?;
                let l = self.catalog.config_layer(scope).await?;
                (Read::Config(scope.to_string()), l.map(|l| l.version))
            }
            _ => return Err(bad()),
        })
    }
}

/// A fingerprint key's record as read again: its id (empty when absent).
enum Read {
    Project(String),
    Environment(String),
    Service(String),
    Config(String),
}

/// `e`'s field put under `parent` when it is bad input.
fn within(e: Error, parent: &str) -> Error {
    match e {
        Error::Invalid(i) => Error::Invalid(i.within(parent)),
        other => other,
    }
}

/// A plan entry for a project or environment the apply creates.
fn created_entry(address: String) -> ServicePlan {
    ServicePlan {
        service: address,
        action: PlanAction::Create,
        image: None,
        fields: Vec::new(),
        config: Vec::new(),
        kept: Vec::new(),
    }
}

fn declared_service(s: &Service, config: DeclaredConfig) -> ServiceDeclaration {
    ServiceDeclaration {
        name: s.name.clone(),
        source: s.source.clone(),
        settings: s.settings.clone(),
        volumes: s.volumes.clone(),
        endpoint: s.endpoint.clone(),
        processes: s.processes.clone(),
        depends_on: s.depends_on.clone(),
        config,
    }
}

/// A new service of `env` as declared (no server: a declaration places nothing).
fn new_service(
    project: &Project,
    env: &Environment,
    slug: &str,
    declared: &ServiceDeclaration,
    now: Timestamp,
) -> std::result::Result<Service, InvalidInput> {
    let mut s = Service::new(
        project.workspace_id,
        project.id,
        env.id,
        slug,
        declared.source.clone(),
        now,
    )?;
    s.name = declared.name.clone();
    s.settings = declared.settings.clone();
    s.volumes = declared.volumes.clone();
    s.endpoint = declared.endpoint.clone();
    if !declared.processes.is_empty() {
        s.processes = declared.processes.clone();
    }
    s.depends_on = declared.depends_on.clone();
    s.validate()?;
    Ok(s)
}

/// The fields a plan compares, as JSON.
fn service_fields(s: &ServiceDeclaration) -> Value {
    serde_json::json!({
        "name": s.name,
        "source": s.source,
        "settings": s.settings,
        "volumes": s.volumes,
        "endpoint": s.endpoint,
        "processes": s.processes,
        "depends_on": s.depends_on,
    })
}

fn removed(d: &ConfigDiff) -> bool {
    d.change == ConfigChangeKind::Removed
}

/// The changes that make `have` hold `want`, and how the two differ (secrets masked). A
/// secret the target has is kept; one it lacks takes its value from `secrets`.
fn config_plan(
    want: &DeclaredConfig,
    have: &[ConfigVarView],
    field: &str,
    secrets: &SecretValues,
) -> Result<(Vec<ConfigChange>, Vec<ConfigDiff>)> {
    let have: BTreeMap<&str, &ConfigVarView> = have.iter().map(|v| (v.key.as_str(), v)).collect();
    let shown = |v: &ConfigVarView| {
        if v.secret {
            MASK.to_owned()
        } else {
            v.value.clone()
        }
    };
    let mut changes = Vec::new();
    let mut diffs = Vec::new();
    for (key, value) in want {
        let at = format!("{field}.{key}");
        validate_env_key(&at, key)?;
        let current = have.get(key.as_str()).copied();
        let change = match current {
            Some(_) => ConfigChangeKind::Changed,
            None => ConfigChangeKind::Added,
        };
        match value {
            Declared::Plain(v) => {
                validate_env_value(&at, v)?;
                if current.is_some_and(|c| !c.secret && &c.value == v) {
                    continue;
                }
                changes.push(ConfigChange::set_plain(key, v));
                diffs.push(ConfigDiff {
                    key: key.clone(),
                    change,
                    secret: current.is_some_and(|c| c.secret),
                    from: current.map(shown),
                    to: Some(v.clone()),
                });
            }
            Declared::Secret { secret_env } => {
                if current.is_some_and(|c| c.secret) {
                    continue;
                }
                let v = secrets.get(secret_env).ok_or_else(|| {
                    InvalidInput::new(
                        at.clone(),
                        "missing_secret",
                        format!(
                            "`{key}` is a secret the target does not have: send its value as \
                             `{secret_env}` in `secrets` (`clank apply` reads ${secret_env})"
                        ),
                    )
                })?;
                validate_env_value(&at, v)?;
                changes.push(ConfigChange::set_secret(key, v));
                diffs.push(ConfigDiff {
                    key: key.clone(),
                    change,
                    secret: true,
                    from: current.map(shown),
                    to: Some(MASK.to_owned()),
                });
            }
        }
    }
    for (key, v) in &have {
        if !want.contains_key(*key) {
            diffs.push(ConfigDiff {
                key: (*key).to_owned(),
                change: ConfigChangeKind::Removed,
                secret: v.secret,
                from: Some(shown(v)),
                to: None,
            });
        }
    }
    Ok((changes, diffs))
}

/// Leaves of a JSON value by dotted path, each as compact JSON (strings unquoted; a list is
/// one leaf).
fn leaves(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, x) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, x, out);
            }
        }
        // Nothing set shows as nothing, not as an empty list or table.
        Value::Null | Value::Object(_) => {}
        Value::Array(xs) if xs.is_empty() => {}
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn field_changes(from: Option<&Value>, to: &Value) -> Vec<FieldChange> {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    if let Some(from) = from {
        leaves("", from, &mut a);
    }
    leaves("", to, &mut b);
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            field: k.clone(),
            from: a.get(k).cloned(),
            to: b.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::Timestamp;

    fn var(key: &str, value: &str, secret: bool) -> ConfigVarView {
        ConfigVarView {
            key: key.into(),
            value: value.into(),
            secret,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn config_already_there_plans_nothing_a_missing_secret_names_its_field_and_extra_keys_stay() {
        let mut want = DeclaredConfig::new();
        want.insert("MODE".into(), Declared::Plain("prod".into()));
        want.insert(
            "TOKEN".into(),
            Declared::Secret {
                secret_env: "SHOP_TOKEN".into(),
            },
        );
        let none = SecretValues::default();
        let have = [var("MODE", "prod", false), var("TOKEN", MASK, true)];
        let (changes, diffs) = config_plan(&want, &have, "config", &none).unwrap();
        assert!(changes.is_empty() && diffs.is_empty(), "{diffs:?}");

        let Err(Error::Invalid(e)) =
            config_plan(&want, &[var("MODE", "prod", false)], "config", &none)
        else {
            panic!("a secret the target lacks needs its value");
        };
        assert_eq!(e.field, "config.TOKEN");
        assert!(e.message.contains("SHOP_TOKEN"), "{e}");

        let values = SecretValues(BTreeMap::from([(
            "SHOP_TOKEN".into(),
            "hunter2-visible-nowhere".into(),
        )]));
        let (changes, diffs) =
            config_plan(&want, &[var("MODE", "dev", false)], "config", &values).unwrap();
        assert_eq!(changes.len(), 2);
        let shown = serde_json::to_string(&diffs).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");

        want.remove("TOKEN");
        let have = [var("MODE", "dev", false), var("OLD", "x", false)];
        let (_, diffs) = config_plan(&want, &have, "config", &none).unwrap();
        let kinds: Vec<_> = diffs.iter().map(|d| (d.key.as_str(), d.change)).collect();
        assert_eq!(
            kinds,
            [
                ("MODE", ConfigChangeKind::Changed),
                ("OLD", ConfigChangeKind::Removed)
            ]
        );
    }

    #[test]
    fn a_bad_config_key_is_refused_at_its_path() {
        let want = DeclaredConfig::from([("1-BAD".to_owned(), Declared::Plain("x".into()))]);
        let Err(Error::Invalid(e)) = config_plan(
            &want,
            &[],
            "environments.production.config",
            &SecretValues::default(),
        ) else {
            panic!("refused");
        };
        assert_eq!(e.field, "environments.production.config.1-BAD");
    }

    #[test]
    fn field_changes_name_each_leaf_that_differs() {
        let from = serde_json::json!({"settings": {"port": 80, "path": "/"}, "volumes": []});
        let to = serde_json::json!({"settings": {"port": 8080, "path": "/"}, "volumes": []});
        let changes = field_changes(Some(&from), &to);
        assert_eq!(
            changes,
            vec![FieldChange {
                field: "settings.port".into(),
                from: Some("80".into()),
                to: Some("8080".into()),
            }]
        );
        assert!(field_changes(Some(&to), &to).is_empty());
    }
}
