//! Promotion: run a service's (or every service of an environment's) ACTIVE version in
//! another environment, planned first and applied by the plan's id.
//!
//! A plan takes the source's ACTIVE deployment — its image pinned to what it ran, its
//! settings and processes — and the target's own config (resolved in the target's cascade:
//! the target's values win), endpoint, domains, volumes and server. It lists what would
//! change (image, settings and processes fields, config keys whose values differ, secrets
//! compared sealed-open and shown masked) and what the target keeps. It is stored with the
//! revision of every record it read (its fingerprint) and an expiry; applying re-reads them
//! and refuses (409) if any changed, then writes each target deployment together with the
//! target service's new desired state in one transaction, like a rollback, so the next plain
//! deploy does not undo it.

use std::collections::{BTreeMap, BTreeSet};

use clank_api::plans::{
    AppliedPlan, ConfigChangeKind, ConfigDiff, FieldChange, ImageChange, MASK, PlanAction,
    PlanKind, PlanView, ServicePlan,
};
use clank_core::address::{EnvironmentAddress, ServiceAddress};
use clank_core::config::{self, ConfigLayer, ConfigValue, ResolvedConfig, ResolvedVar, Scope};
use clank_core::id::{PlanId, ServiceId, UserId};
use clank_core::model::{
    Artifact, Build, Deployment, DeploymentSnapshot, Environment, PLAN_TTL_MS, Project,
    PromotionPlan, PromotionStep, ReadRevision, Service, VolumeMount,
};
use clank_core::secret::Keyring;
use clank_core::store::Revision;
use clank_core::store::catalog::{Batch, Page, Versioned};
use clank_core::{Error, InvalidInput, Result, Timestamp};

use crate::Platform;
use crate::environments::{cloned_volume_name, endpoint_names, reseal};

/// What a promotion takes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromotionSource {
    /// One service's ACTIVE deployment.
    Service(ServiceAddress),
    /// The ACTIVE deployment of every service of the environment that has one.
    Environment(EnvironmentAddress),
}

/// Records a plan reads, in order, with their revisions.
#[derive(Default)]
struct Fingerprint(Vec<ReadRevision>);

impl Fingerprint {
    fn read(&mut self, what: impl Into<String>, key: String, revision: Option<Revision>) {
        if !self.0.iter().any(|r| r.key == key) {
            self.0.push(ReadRevision {
                what: what.into(),
                key,
                revision,
            });
        }
    }
}

impl Platform {
    /// `source` as a service address if such a service exists, else as an environment
    /// address (`shop/staging/api` and `acme/shop/staging` have the same shape).
    pub async fn promotion_source(&self, source: &str) -> Result<PromotionSource> {
        if let Ok(addr) = self.parse_service(source)
            && self.service(&addr).await.is_ok()
        {
            return Ok(PromotionSource::Service(addr));
        }
        let addr = self.parse_environment(source)?;
        self.environment(&addr).await?;
        Ok(PromotionSource::Environment(addr))
    }

    /// Plan a promotion of `source` (a service or environment address) to `target` (an
    /// environment of the same project by name, or an environment address). Stores the plan
    /// and returns it; nothing else is written.
    pub async fn plan_promotion(&self, source: &str, target: &str) -> Result<PlanView> {
        let source = self.promotion_source(source).await?;
        let source_env = match &source {
            PromotionSource::Service(a) => a.environment_address().clone(),
            PromotionSource::Environment(a) => a.clone(),
        };
        let target = if target.contains('/') {
            self.parse_environment(target)?
        } else {
            source_env.project_address().environment(target)?
        };
        if target == source_env {
            return Err(InvalidInput::new(
                "target",
                "same_environment",
                format!("`{target}` is the source's own environment; promote to another one"),
            )
            .into());
        }
        let (project, target_env) = self.environment(&target).await?;
        crate::live(&project)?;
        crate::deletion::live_environment(&target_env)?;
        let (source_project, _) = self.environment(&source_env).await?;
        if source_project.workspace_id != project.workspace_id {
            return Err(InvalidInput::new(
                "target",
                "other_workspace",
                "a promotion stays inside one workspace",
            )
            .into());
        }
        let sources: Vec<Versioned<Service>> = match &source {
            PromotionSource::Service(a) => {
                let s = self.service(a).await?;
                if s.active_deployment.is_none() {
                    return Err(Error::Conflict(format!(
                        "service `{a}` has no ACTIVE deployment to promote; deploy it first"
                    )));
                }
                vec![s]
            }
            PromotionSource::Environment(a) => {
                let (_, env) = self.environment(a).await?;
                let all: Vec<_> = self
                    .catalog
                    .services_in_environment(env.id, Page::all())
                    .await?
                    .items
                    .into_iter()
                    .filter(|s| !s.is_deleted() && s.active_deployment.is_some())
                    .collect();
                if all.is_empty() {
                    return Err(Error::Conflict(format!(
                        "no service of `{a}` has an ACTIVE deployment to promote"
                    )));
                }
                all
            }
        };
        let now = Timestamp::now();
        let mut fingerprint = Fingerprint::default();
        fingerprint.read(
            format!("project {}", project.slug),
            format!("project:{}", project.id),
            Some(project.version),
        );
        let mut steps = Vec::new();
        let mut plans = Vec::new();
        for src in &sources {
            let src_addr = source_env.service(&src.slug)?;
            let target_addr = target.service(&src.slug)?;
            fingerprint.read(
                format!("service {src_addr}"),
                format!("service:{}", src.id),
                Some(src.version),
            );
            let active = src.active_deployment.expect("filtered above");
            let deployment = self
                .catalog
                .require::<Deployment>(&active.to_string())
                .await?;
            fingerprint.read(
                format!("deployment {src_addr}#{}", deployment.number),
                format!("deployment:{}", deployment.id),
                Some(deployment.version),
            );
            let build = self.build_label(&deployment).await?;
            let existing = self
                .catalog
                .lookup::<Service>("slug", &format!("{}:{}", target_env.id, src.slug))
                .await?
                .filter(|s| !s.is_deleted());
            fingerprint.read(
                format!("service {target_addr}"),
                format!("service-slug:{}:{}", target_env.id, src.slug),
                existing.as_ref().map(|s| s.version),
            );
            let (plan, unchanged) = match &existing {
                Some(t) => {
                    self.engine.ensure_deployable(t).await?;
                    let layers = self
                        .cascade(&project, target_env.id, Some(t.id), &mut fingerprint)
                        .await?;
                    let resolved = config::resolve(&layers)?;
                    // Refuses a source that never produced an image, before anything is stored.
                    Deployment::promotion_of(t, &deployment, resolved.clone(), None, now)?;
                    let current = match t.active_deployment {
                        Some(id) => {
                            Some(self.catalog.require::<Deployment>(&id.to_string()).await?)
                        }
                        None => None,
                    };
                    service_plan(
                        &target_addr,
                        t,
                        current.as_ref().map(|c| &c.value),
                        &deployment,
                        build,
                        &resolved,
                        &self.keyring,
                    )?
                }
                None => {
                    let mut layers = self
                        .cascade(&project, target_env.id, None, &mut fingerprint)
                        .await?;
                    let own = self.catalog.config_layer(Scope::Service(src.id)).await?;
                    fingerprint.read(
                        format!("config of {src_addr}"),
                        format!("config:{}", Scope::Service(src.id)),
                        own.as_ref().map(|l| l.version),
                    );
                    layers.extend(own.map(|l| l.value));
                    let resolved = config::resolve(&layers)?;
                    create_plan(
                        &target_addr,
                        &target_env,
                        src,
                        &deployment,
                        build,
                        &resolved,
                        &self.keyring,
                    )?
                }
            };
            steps.push(PromotionStep {
                source_service: src.id,
                source_deployment: deployment.id,
                target_service: existing.as_ref().map(|t| t.id),
                slug: src.slug.clone(),
                unchanged,
            });
            plans.push(plan);
        }
        let id = PlanId::new();
        let view = PlanView {
            id: id.to_string(),
            kind: PlanKind::Promotion,
            source: match &source {
                PromotionSource::Service(a) => a.to_string(),
                PromotionSource::Environment(a) => a.to_string(),
            },
            target: target.to_string(),
            created_at: now,
            expires_at: Timestamp(now.0.saturating_add(PLAN_TTL_MS)),
            unchanged: plans.iter().all(|p| p.action == PlanAction::Unchanged),
            services: plans,
            applied_at: None,
        };
        let record = PromotionPlan {
            id,
            workspace_id: project.workspace_id,
            target_environment: target_env.id,
            source: view.source.clone(),
            target: view.target.clone(),
            created_at: now,
            expires_at: view.expires_at,
            steps,
            fingerprint: fingerprint.0,
            view: serde_json::to_string(&view)
                .map_err(|e| Error::Internal(format!("plan view: {e}")))?,
            applied_at: None,
        };
        self.catalog.create(&record).await?;
        self.forget_expired::<PromotionPlan>(project.workspace_id, now, |p| p.expires_at)
            .await;
        Ok(view)
    }

    /// A stored plan by id, as it was shown (with `applied_at` once applied). `workspace`
    /// (a slug) must be the plan's.
    pub async fn plan(&self, workspace: &str, id: &str) -> Result<PlanView> {
        if let Some(view) = self.declaration_plan_view(workspace, id).await? {
            return Ok(view);
        }
        let plan = self.stored_plan(workspace, id).await?;
        let mut view: PlanView = serde_json::from_str(&plan.view)
            .map_err(|e| Error::Internal(format!("stored plan {id}: {e}")))?;
        view.applied_at = plan.applied_at;
        Ok(view)
    }

    async fn stored_plan(&self, workspace: &str, id: &str) -> Result<Versioned<PromotionPlan>> {
        let ws = self.workspace(workspace).await?;
        let plan_id: PlanId = id.parse()?;
        match self
            .catalog
            .get::<PromotionPlan>(&plan_id.to_string())
            .await?
        {
            Some(p) if p.workspace_id == ws.id => Ok(p),
            _ => Err(Error::not_found("plan", id)),
        }
    }

    /// Apply a stored plan of `workspace` by id: refused (409) when it expired, was applied
    /// already, or anything it read changed since. Creates each changed service's deployment
    /// (trigger `promotion_from`, with `by` as who applied it) and writes its desired state in
    /// the same transaction.
    pub async fn apply_plan(
        &self,
        workspace: &str,
        id: &str,
        by: Option<UserId>,
    ) -> Result<AppliedPlan> {
        if let Some(applied) = self.apply_declaration_plan(workspace, id).await? {
            return Ok(applied);
        }
        let plan = self.stored_plan(workspace, id).await?;
        let now = Timestamp::now();
        plan.check_applicable(now)?;
        let mut current = Vec::with_capacity(plan.fingerprint.len());
        for read in &plan.fingerprint {
            current.push(self.revision_of(&read.key).await?);
        }
        let changed = plan.changed_since(&current);
        if !changed.is_empty() {
            let what: Vec<&str> = changed.iter().map(|r| r.what.as_str()).collect();
            return Err(Error::Conflict(format!(
                "plan {id} is out of date: {} changed since it was made; plan the promotion again",
                what.join(", ")
            )));
        }
        let target_env = self
            .catalog
            .require::<Environment>(&plan.target_environment.to_string())
            .await?;
        let project = self
            .catalog
            .require::<Project>(&target_env.project_id.to_string())
            .await?;
        let mut batch = Batch::new();
        let mut created = Vec::new();
        let mut deployments = Vec::new();
        let target_addr: EnvironmentAddress = plan.target.parse()?;
        for step in plan.steps.iter().filter(|s| !s.unchanged) {
            let source = self
                .catalog
                .require::<Deployment>(&step.source_deployment.to_string())
                .await?;
            let d = match step.target_service {
                Some(id) => {
                    let t = self.catalog.require::<Service>(&id.to_string()).await?;
                    self.engine.ensure_deployable(&t).await?;
                    let mut ignored = Fingerprint::default();
                    let layers = self
                        .cascade(&project, target_env.id, Some(t.id), &mut ignored)
                        .await?;
                    let d =
                        Deployment::promotion_of(&t, &source, config::resolve(&layers)?, by, now)?;
                    // The desired state names the digest the plan showed, not a movable tag.
                    let (mut next, _) = source.promotion_snapshot()?.promote_onto(&t);
                    next.next_deployment_number = t.next_deployment_number + 1;
                    next.updated_at = now;
                    next.validate()?;
                    batch.update(&t, &next)?.create(&d)?;
                    d
                }
                None => {
                    let original = self
                        .catalog
                        .require::<Service>(&step.source_service.to_string())
                        .await?;
                    let copy =
                        promoted_copy(&original, &target_env, &source.promotion_snapshot()?, now)?;
                    let mut ignored = Fingerprint::default();
                    let mut layers = self
                        .cascade(&project, target_env.id, None, &mut ignored)
                        .await?;
                    if let Some(own) = self
                        .catalog
                        .config_layer(Scope::Service(original.id))
                        .await?
                    {
                        let layer = reseal(&own.value, Scope::Service(copy.id), &self.keyring)?;
                        if !layer.vars.is_empty() {
                            batch.create(&layer)?;
                        }
                        layers.push(layer);
                    }
                    let d = Deployment::promotion_of(
                        &copy,
                        &source,
                        config::resolve(&layers)?,
                        by,
                        now,
                    )?;
                    let mut stored = copy.clone();
                    stored.next_deployment_number = copy.next_deployment_number + 1;
                    batch.create(&stored)?.create(&d)?;
                    created.push(target_addr.service(&copy.slug)?.to_string());
                    d
                }
            };
            deployments.push(d);
        }
        let mut applied = plan.value.clone();
        applied.applied_at = Some(now);
        batch.update(&plan, &applied)?;
        // Every record the plan read is a condition of the write: a change between the check
        // above and the commit (a config edit, a new deployment) applies nothing.
        for read in &plan.fingerprint {
            expect_unchanged(&mut batch, read)?;
        }
        match self.catalog.commit(batch).await {
            Err(Error::WriteConflict { .. }) => {
                return Err(Error::Conflict(format!(
                    "plan {id}: something it read changed while it was applied; nothing was \
                     applied, plan the promotion again"
                )));
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let mut views = Vec::with_capacity(deployments.len());
        for d in &deployments {
            self.engine.announce(d).await;
            views.push(self.deployment_view(d).await?);
        }
        Ok(AppliedPlan {
            plan: id.to_owned(),
            deployments: views,
            created,
        })
    }

    /// Remove the workspace's stored plans of kind `T` that can no longer be applied (expired a
    /// day ago or more, by `expires_at`), so stored plans stay few. Best effort: a failure
    /// leaves them for the next plan.
    pub(crate) async fn forget_expired<T: clank_core::store::catalog::Record>(
        &self,
        workspace: clank_core::id::WorkspaceId,
        now: Timestamp,
        expires_at: fn(&T) -> Timestamp,
    ) {
        const KEEP_MS: i64 = 24 * 60 * 60 * 1000;
        let Ok(listing) = self
            .catalog
            .find::<T>("workspace", &workspace.to_string(), Page::all())
            .await
        else {
            return;
        };
        let mut batch = Batch::new();
        for plan in listing
            .items
            .iter()
            .filter(|p| expires_at(p).0.saturating_add(KEEP_MS) <= now.0)
        {
            batch.delete(plan);
        }
        if !batch.is_empty() {
            let _ = self.catalog.commit(batch).await;
        }
    }

    /// The build that made a deployment's image, as the plan shows it: `v3 (commit 1a2b3c4)`.
    async fn build_label(&self, d: &Deployment) -> Result<Option<String>> {
        let Some(id) = d.state.build_id else {
            return Ok(None);
        };
        let Some(build) = self.catalog.get::<Build>(&id.to_string()).await? else {
            return Ok(None);
        };
        let commit = build
            .commit_sha
            .as_deref()
            .map(|c| format!(" (commit {})", c.chars().take(12).collect::<String>()))
            .unwrap_or_default();
        Ok(Some(format!("v{}{commit}", build.number)))
    }

    /// The current revision of a fingerprint key (`None`: absent).
    async fn revision_of(&self, key: &str) -> Result<Option<Revision>> {
        let (kind, rest) = key
            .split_once(':')
            .ok_or_else(|| Error::Internal(format!("fingerprint key `{key}`")))?;
        let version = match kind {
            "project" => self.catalog.get::<Project>(rest).await?.map(|r| r.version),
            "service" => self.catalog.get::<Service>(rest).await?.map(|r| r.version),
            "deployment" => self
                .catalog
                .get::<Deployment>(rest)
                .await?
                .map(|r| r.version),
            "config" => self
                .catalog
                .config_layer(rest.parse::<Scope>()?)
                .await?
                .map(|r| r.version),
            "service-slug" => self
                .catalog
                .lookup::<Service>("slug", rest)
                .await?
                .filter(|s| !s.is_deleted())
                .map(|r| r.version),
            _ => return Err(Error::Internal(format!("fingerprint key `{key}`"))),
        };
        Ok(version)
    }

    /// The stored config layers of a service's cascade in `env` (the service's own last,
    /// when it exists), each read recorded in `fingerprint`.
    async fn cascade(
        &self,
        project: &Project,
        env: clank_core::id::EnvironmentId,
        service: Option<ServiceId>,
        fingerprint: &mut Fingerprint,
    ) -> Result<Vec<ConfigLayer>> {
        let mut scopes = vec![Scope::Workspace(project.workspace_id)];
        scopes.extend(project.team_id.map(Scope::Team));
        scopes.push(Scope::Project(project.id));
        scopes.push(Scope::Environment(env));
        scopes.extend(service.map(Scope::Service));
        let mut layers = Vec::new();
        for scope in scopes {
            let layer = self.catalog.config_layer(scope).await?;
            fingerprint.read(
                format!("{} config", scope.level()),
                format!("config:{scope}"),
                layer.as_ref().map(|l| l.version),
            );
            layers.extend(layer.map(|l| l.value));
        }
        Ok(layers)
    }
}

/// The plan for a service the target already has; `true` when nothing would change.
fn service_plan(
    address: &ServiceAddress,
    target: &Service,
    current: Option<&Deployment>,
    source: &Deployment,
    build: Option<String>,
    resolved: &ResolvedConfig,
    keyring: &Keyring,
) -> Result<(ServicePlan, bool)> {
    let to = ran_image(source);
    let from = current.and_then(ran_image);
    let image = (from != to).then(|| ImageChange {
        from: from.clone(),
        to: to.clone().unwrap_or_default(),
        digest: source.state.image_digest.clone(),
        build,
    });
    let fields = field_changes(target, &source.snapshot);
    let config = config_diff(&source.snapshot.config, resolved, keyring)?;
    // The target's next deployment runs its own resolved config: only a change there since
    // its ACTIVE deployment (not the diff against the source) makes one necessary.
    let config_moved = current.is_none_or(|c| c.snapshot.config != *resolved);
    let unchanged = image.is_none() && fields.is_empty() && !config_moved && current.is_some();
    let action = if unchanged {
        PlanAction::Unchanged
    } else if fields.is_empty() {
        PlanAction::Deploy
    } else {
        PlanAction::Update
    };
    Ok((
        ServicePlan {
            service: address.to_string(),
            action,
            image,
            fields,
            config,
            kept: kept(target),
        },
        unchanged,
    ))
}

/// The plan for a service the target lacks: a copy of the source, created and deployed.
fn create_plan(
    address: &ServiceAddress,
    target_env: &Environment,
    source_service: &Service,
    source: &Deployment,
    build: Option<String>,
    resolved: &ResolvedConfig,
    keyring: &Keyring,
) -> Result<(ServicePlan, bool)> {
    let copy = promoted_copy(source_service, target_env, &source.snapshot, Timestamp(0))?;
    let mut kept =
        vec!["domains: none (left out: set the service's endpoint after the apply)".to_owned()];
    if !copy.volumes.is_empty() {
        let names: Vec<&str> = copy.volumes.iter().map(|v| v.name.as_str()).collect();
        kept.push(format!("volumes: new and empty: {}", names.join(", ")));
    }
    Ok((
        ServicePlan {
            service: address.to_string(),
            action: PlanAction::Create,
            image: ran_image(source).map(|to| ImageChange {
                from: None,
                to,
                digest: source.state.image_digest.clone(),
                build,
            }),
            fields: Vec::new(),
            config: config_diff(&source.snapshot.config, resolved, keyring)?,
            kept,
        },
        false,
    ))
}

/// A copy of `original` for `env` running `snapshot`'s version: settings and processes from
/// the version, new empty volumes, no endpoint (domains are unique across the instance).
fn promoted_copy(
    original: &Service,
    env: &Environment,
    snapshot: &DeploymentSnapshot,
    now: Timestamp,
) -> Result<Service> {
    let mut copy = Service::new(
        original.workspace_id,
        original.project_id,
        env.id,
        &original.slug,
        original.source.clone(),
        now,
    )?;
    copy.name = original.name.clone();
    copy.server_id = original.server_id;
    copy.depends_on = original.depends_on.clone();
    copy.volumes = original
        .volumes
        .iter()
        .map(|v| VolumeMount {
            name: cloned_volume_name(&v.name, &env.name),
            ..v.clone()
        })
        .collect();
    let (mut copy, _) = snapshot.promote_onto(&copy);
    copy.validate()?;
    Ok(copy)
}

/// The image a deployment ran (or runs), as text.
fn ran_image(d: &Deployment) -> Option<String> {
    match (&d.state.image, &d.snapshot.artifact) {
        (Some(image), _) | (None, Artifact::Image { image }) => Some(image.to_string()),
        (None, Artifact::Build { .. }) => None,
    }
}

/// What the target keeps as it is.
fn kept(target: &Service) -> Vec<String> {
    let mut kept = Vec::new();
    if let Some(endpoint) = &target.endpoint {
        let names = endpoint_names(endpoint);
        if !names.is_empty() {
            kept.push(format!("domains: {}", names.join(", ")));
        }
        let mode = serde_json::to_value(endpoint.mode())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        kept.push(format!("endpoint: {mode}"));
    }
    if !target.volumes.is_empty() {
        let names: Vec<&str> = target.volumes.iter().map(|v| v.name.as_str()).collect();
        kept.push(format!("volumes: {}", names.join(", ")));
    }
    if let Some(server) = target.server_id {
        kept.push(format!("server: {server}"));
    }
    kept
}

/// Settings and processes of `target` that `version` changes, field by field.
pub(crate) fn field_changes(target: &Service, version: &DeploymentSnapshot) -> Vec<FieldChange> {
    let mut changes = object_changes("settings", &target.settings, &version.settings);
    changes.extend(object_changes(
        "processes",
        &target.processes,
        &version.processes,
    ));
    changes
}

fn object_changes<T: serde::Serialize>(prefix: &str, from: &T, to: &T) -> Vec<FieldChange> {
    let as_map = |v: &T| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(v) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (as_map(from), as_map(to));
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            field: format!("{prefix}.{k}"),
            from: show(a.get(k)),
            to: show(b.get(k)),
        })
        .collect()
}

/// Keys whose resolved values differ between the `source` version and the `target`'s
/// cascade. Secrets are compared opened (each with its own scope's associated data) and
/// shown only as [`MASK`].
pub(crate) fn config_diff(
    source: &ResolvedConfig,
    target: &ResolvedConfig,
    keyring: &Keyring,
) -> Result<Vec<ConfigDiff>> {
    let keys: BTreeSet<&str> = source
        .iter()
        .chain(target.iter())
        .map(|v| v.key.as_str())
        .collect();
    let mut diffs = Vec::new();
    for key in keys {
        let (s, t) = (source.get(key), target.get(key));
        let secret =
            s.is_some_and(|v| v.value.is_secret()) || t.is_some_and(|v| v.value.is_secret());
        let change = match (s, t) {
            (Some(_), None) => ConfigChangeKind::Added,
            (None, Some(_)) => ConfigChangeKind::Removed,
            (Some(s), Some(t)) if !same_value(s, t, keyring)? => ConfigChangeKind::Changed,
            _ => continue,
        };
        let shown = |v: Option<&ResolvedVar>| {
            v.map(|v| {
                if secret {
                    MASK.to_owned()
                } else {
                    v.value.masked()
                }
            })
        };
        diffs.push(ConfigDiff {
            key: key.to_owned(),
            change,
            secret,
            from: shown(t),
            to: shown(s),
        });
    }
    Ok(diffs)
}

/// Whether two resolved variables hold the same text, opening secrets to compare them.
fn same_value(a: &ResolvedVar, b: &ResolvedVar, keyring: &Keyring) -> Result<bool> {
    let open = |v: &ResolvedVar| -> Result<clank_core::secret::SecretString> {
        Ok(match &v.value {
            ConfigValue::Plain(p) => p.as_str().into(),
            ConfigValue::Secret(sealed) => keyring.open(sealed, &v.source.aad(&v.key))?,
        })
    };
    if a.value.is_secret() != b.value.is_secret() {
        return Ok(false);
    }
    Ok(open(a)? == open(b)?)
}

/// Make `batch` conditional on the record `read` names still being at the revision the plan
/// saw. A service the plan creates (`service-slug`) is guarded by its slug's unique entry,
/// which the batch's create claims.
fn expect_unchanged(batch: &mut Batch, read: &ReadRevision) -> Result<()> {
    let (kind, id) = read
        .key
        .split_once(':')
        .ok_or_else(|| Error::Internal(format!("fingerprint key `{}`", read.key)))?;
    match kind {
        "project" => batch.expect::<Project>(id, read.revision),
        "service" => batch.expect::<Service>(id, read.revision),
        "deployment" => batch.expect::<Deployment>(id, read.revision),
        "config" => batch.expect::<ConfigLayer>(id, read.revision),
        "service-slug" => batch,
        _ => return Err(Error::Internal(format!("fingerprint key `{}`", read.key))),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::config::{ConfigChange, apply_bulk};
    use clank_core::id::{EnvironmentId, ProjectId};
    use clank_core::secret::{KeyId, SecretKey};

    fn keyring() -> Keyring {
        Keyring::new(KeyId::new("k1").unwrap(), SecretKey::from_bytes([9; 32]))
    }

    fn resolved(scope: Scope, changes: &[ConfigChange], keyring: &Keyring) -> ResolvedConfig {
        let layer = apply_bulk(&ConfigLayer::new(scope), changes, keyring, Timestamp(1)).unwrap();
        config::resolve(&[layer]).unwrap()
    }

    #[test]
    fn config_diff_lists_differing_keys_and_never_a_secret_value() {
        let k = keyring();
        let staging = resolved(
            Scope::Environment(EnvironmentId::new()),
            &[
                ConfigChange::set_secret("API_KEY", "staging-secret-xyz"),
                ConfigChange::set_secret("SAME_SECRET", "shared"),
                ConfigChange::set_plain("MODE", "staging"),
                ConfigChange::set_plain("ONLY_STAGING", "1"),
            ],
            &k,
        );
        let production = resolved(
            Scope::Environment(EnvironmentId::new()),
            &[
                ConfigChange::set_secret("API_KEY", "production-secret-abc"),
                ConfigChange::set_secret("SAME_SECRET", "shared"),
                ConfigChange::set_plain("MODE", "production"),
            ],
            &k,
        );
        let diff = config_diff(&staging, &production, &k).unwrap();
        let keys: Vec<(&str, ConfigChangeKind)> =
            diff.iter().map(|d| (d.key.as_str(), d.change)).collect();
        assert_eq!(
            keys,
            [
                ("API_KEY", ConfigChangeKind::Changed),
                ("MODE", ConfigChangeKind::Changed),
                ("ONLY_STAGING", ConfigChangeKind::Added),
            ],
            "sealed values are compared opened: equal secrets under different scopes are unchanged"
        );
        let api = &diff[0];
        assert!(api.secret);
        assert_eq!(api.from.as_deref(), Some(MASK));
        let json = serde_json::to_string(&diff).unwrap();
        assert!(
            !json.contains("secret-xyz") && !json.contains("secret-abc"),
            "{json}"
        );
        assert_eq!(diff[1].from.as_deref(), Some("production"));
        assert_eq!(diff[1].to.as_deref(), Some("staging"));
    }

    #[test]
    fn field_changes_name_each_setting_and_process_that_differs() {
        let mut target = Service::new(
            clank_core::id::WorkspaceId::new(),
            ProjectId::new(),
            EnvironmentId::new(),
            "api",
            clank_core::model::ServiceSource::DockerImage {
                image: "nginx:1".parse().unwrap(),
                credentials_secret: None,
            },
            Timestamp(0),
        )
        .unwrap();
        target.settings.port = Some(80);
        let mut version = target.clone();
        version.settings.port = Some(8080);
        version.processes.get_mut("web").unwrap().replicas = 2;
        let snapshot = Deployment::new(
            &version,
            ResolvedConfig::default(),
            clank_core::model::Trigger::Manual { by: None },
            Timestamp(0),
        )
        .snapshot;
        let changes = field_changes(&target, &snapshot);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["settings.port", "processes.web"]);
        assert_eq!(changes[0].from.as_deref(), Some("80"));
        assert_eq!(changes[0].to.as_deref(), Some("8080"));
    }
}
