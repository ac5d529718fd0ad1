//! Stacks: creating a template's services in an environment, showing them, and upgrading them
//! to a newer template version with a preview first.
//!
//! A stack is ordinary services (deploy, rollback, logs, exec unchanged) plus a [`Stack`]
//! record: the template text it was rendered from and the values its variables took (secrets
//! sealed), so an upgrade re-renders with the same passwords. Creation writes every service,
//! its config and the record in one transaction, after everything was checked: a bad input
//! changes nothing. The app waits for its companions through `depends_on` in the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use clank_api::templates::{StackServiceView, TemplateSummary};
use clank_api::{NewStack, StackUpgrade, StackUpgradeView, StackView, TemplateView};
use clank_core::address::{EnvironmentAddress, ServiceAddress};
use clank_core::config::{self, ConfigChange, ConfigLayer, Scope};
use clank_core::id::{ServiceId, StackId};
use clank_core::image::ImageRef;
use clank_core::model::{Endpoint, Environment, Project, Service, ServiceSource, Stack, Trigger};
use clank_core::secret::SecretString;
use clank_core::store::catalog::{Batch, Page, Versioned};
use clank_core::{Error, InvalidInput, Result, Timestamp};
use clank_templates::{
    Catalog, Change, RenderContext, RenderError, RenderedService, RenderedStack, Template, Values,
    VarValue, render, upgrade_plan,
};

use crate::{Platform, live};

/// The built-in catalog, parsed once per process.
pub(crate) fn builtin_templates() -> Arc<Catalog> {
    static BUILTIN: OnceLock<Arc<Catalog>> = OnceLock::new();
    BUILTIN
        .get_or_init(|| {
            // Every built-in is parsed and validated by clank-templates' own tests, so this
            // fails only in a build those tests reject.
            #[allow(clippy::expect_used)]
            Arc::new(Catalog::builtin().expect("the built-in templates load"))
        })
        .clone()
}

fn render_error(e: RenderError) -> Error {
    match e {
        RenderError::Invalid(i) => i.into(),
        other => Error::Internal(other.to_string()),
    }
}

impl Platform {
    /// The templates stacks are created from.
    pub fn template_catalog(&self) -> &Arc<Catalog> {
        &self.templates
    }

    /// Every template of the catalog, by name.
    pub fn list_templates(&self) -> Vec<TemplateSummary> {
        self.templates.list()
    }

    /// One template: its services, images, volumes and variables (never a value).
    pub fn template(&self, name: &str) -> Result<TemplateView> {
        Ok(self.template_named("name", name)?.view())
    }

    fn template_named(&self, field: &str, name: &str) -> Result<&Template> {
        self.templates.get(name).ok_or_else(|| {
            InvalidInput::new(
                field,
                "unknown_template",
                format!(
                    "there is no template `{}`; `clank template list` shows the catalog",
                    name.escape_debug()
                ),
            )
            .into()
        })
    }

    /// The slug a new stack gets: its `name`, else the template's app slug (`db`, `cache`),
    /// or the template's name when that slug is the generic `app` (`wordpress`).
    pub fn stack_slug(&self, new: &NewStack) -> String {
        if let Some(name) = &new.name {
            return name.clone();
        }
        match self.templates.get(&new.template) {
            Some(t) if t.app().slug != "app" => t.app().slug.clone(),
            _ => new.template.clone(),
        }
    }

    /// A stack address: the same syntax as a service address (`[workspace/]project[/env]/stack`).
    pub fn parse_stack(&self, s: &str) -> Result<(EnvironmentAddress, String)> {
        let addr: ServiceAddress = self.parse_service(s)?;
        Ok((
            addr.environment_address().clone(),
            addr.service().to_owned(),
        ))
    }

    /// Every `depends_on` slug names another service of the same environment.
    pub(crate) async fn check_dependencies(&self, service: &Service) -> Result<()> {
        for (i, dep) in service.depends_on.iter().enumerate() {
            let found = self
                .catalog
                .lookup::<Service>("slug", &format!("{}:{dep}", service.environment_id))
                .await?;
            if found.is_none() {
                return Err(InvalidInput::new(
                    format!("depends_on[{i}]"),
                    "unknown_service",
                    format!("there is no service `{dep}` in this environment"),
                )
                .into());
            }
        }
        Ok(())
    }

    /// Create a template's services in `env`, set their config (generated secrets as secret
    /// config), record the stack and deploy every service, dependencies first. Everything is
    /// checked before anything is written, and written in one transaction.
    pub async fn create_stack(&self, env: &EnvironmentAddress, new: NewStack) -> Result<StackView> {
        let (project, environment) = self.environment(env).await?;
        live(&project)?;
        let template = self.template_named("template", &new.template)?;
        let images = image_overrides(template, &new.images)?;
        let slug = self.stack_slug(&new);
        let endpoint = endpoint_for(&new)?;
        let ctx = context(&project, endpoint.clone());
        let mut rendered = render(template, &slug, &new.inputs, &Values::new(), &ctx)
            .map_err(|e| render_error(e).within_name())?;
        apply_overrides(&mut rendered, &images);

        if self
            .catalog
            .lookup::<Stack>("slug", &format!("{}:{slug}", environment.id))
            .await?
            .is_some()
        {
            return Err(taken(
                "name",
                &format!("a stack `{slug}` already exists in `{env}`"),
            ));
        }
        let now = Timestamp::now();
        let mut stack = Stack {
            id: StackId::new(),
            workspace_id: project.workspace_id,
            project_id: project.id,
            environment_id: environment.id,
            slug: slug.clone(),
            template: template.name().to_owned(),
            version: template.version().to_owned(),
            template_text: template.text().to_owned(),
            services: BTreeMap::new(),
            values: BTreeMap::new(),
            endpoint,
            images,
            created_at: now,
            updated_at: now,
        };
        for (name, value) in &rendered.values {
            stack.set_value(&self.keyring, name, value.expose(), value.is_secret())?;
        }
        let mut batch = Batch::new();
        let mut created = Vec::with_capacity(rendered.services.len());
        for r in &rendered.services {
            let exists = format!(
                "service `{}` already exists in `{env}`; choose another stack name",
                r.slug
            );
            let service = self
                .add_service(
                    &mut batch,
                    &project,
                    &environment,
                    r,
                    now,
                    ("name", &exists),
                )
                .await?;
            self.check_source(&service.source)?;
            stack.services.insert(r.template_slug.clone(), service.id);
            created.push(service);
        }
        batch.create(&stack)?;
        self.catalog.commit(batch).await?;
        for service in &created {
            self.engine
                .deploy(service.id, Trigger::Manual { by: None })
                .await?;
        }
        self.stack_view(&stack).await
    }

    /// The stacks of an environment, by slug.
    pub async fn stacks(&self, env: &EnvironmentAddress) -> Result<Vec<StackView>> {
        let (_, environment) = self.environment(env).await?;
        let listing = self
            .catalog
            .find::<Stack>("environment", &environment.id.to_string(), Page::all())
            .await?;
        let mut views = Vec::with_capacity(listing.items.len());
        for s in &listing.items {
            views.push(self.stack_view(s).await?);
        }
        Ok(views)
    }

    /// One stack with its services' status (no secret value).
    pub async fn stack(&self, env: &EnvironmentAddress, slug: &str) -> Result<StackView> {
        let stack = self.stack_record(env, slug).await?;
        self.stack_view(&stack).await
    }

    async fn stack_record(&self, env: &EnvironmentAddress, slug: &str) -> Result<Versioned<Stack>> {
        let (_, environment) = self.environment(env).await?;
        self.catalog
            .lookup::<Stack>("slug", &format!("{}:{slug}", environment.id))
            .await?
            .ok_or_else(|| Error::not_found("stack", format!("{env}/{slug}")))
    }

    async fn stack_view(&self, stack: &Stack) -> Result<StackView> {
        let order = Template::parse("stack", &stack.template_text)
            .map(|t| {
                t.service_order()
                    .into_iter()
                    .map(|i| t.services()[i].slug.clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let mut slugs: Vec<&String> = order
            .iter()
            .filter(|s| stack.services.contains_key(*s))
            .collect();
        slugs.extend(stack.services.keys().filter(|s| !order.contains(s)));
        let mut services = Vec::with_capacity(slugs.len());
        for template_slug in slugs {
            let id = stack.services[template_slug];
            let Some(service) = self.catalog.get::<Service>(&id.to_string()).await? else {
                continue;
            };
            let newest = self
                .catalog
                .deployments_of(id, Page::newest(1))
                .await?
                .items
                .into_iter()
                .next();
            let deployment = match &newest {
                Some(d) => Some(self.deployment_view(d).await?),
                None => None,
            };
            services.push(StackServiceView {
                template_slug: template_slug.clone(),
                service: service.slug.clone(),
                service_id: id,
                image: service_image(&service).unwrap_or_default(),
                active: service.active_deployment.is_some(),
                status: deployment.as_ref().map(|d| d.status),
                deployment,
            });
        }
        let available_version = self
            .templates
            .get(&stack.template)
            .map(|t| t.version().to_owned())
            .filter(|v| *v != stack.version);
        Ok(StackView {
            id: stack.id,
            slug: stack.slug.clone(),
            template: stack.template.clone(),
            version: stack.version.clone(),
            available_version,
            endpoint: stack.endpoint.clone(),
            services,
            variables: stack.values.keys().cloned().collect(),
            created_at: stack.created_at,
            updated_at: stack.updated_at,
        })
    }

    /// Preview (no `apply`) or apply (`apply` = the preview's `plan_id`) moving a stack to the
    /// catalog's version of its template. Nothing changes without the plan id of a preview,
    /// and a plan id is refused (409) once the stack or the catalog changed since.
    pub async fn upgrade_stack(
        &self,
        env: &EnvironmentAddress,
        slug: &str,
        upgrade: StackUpgrade,
    ) -> Result<StackUpgradeView> {
        let record = self.stack_record(env, slug).await?;
        let (project, environment) = self.environment(env).await?;
        let old = Template::parse(&format!("stack `{slug}`"), &record.template_text)
            .map_err(|e| Error::Internal(format!("the stack's stored template: {e}")))?;
        let new = self.template_named("template", &record.template)?;
        if let Some(to) = &upgrade.to
            && to != new.version()
        {
            return Err(InvalidInput::new(
                "to",
                "unknown_version",
                format!(
                    "the catalog has version {} of template `{}`, not {to}",
                    new.version(),
                    new.name()
                ),
            )
            .into());
        }
        let existing = self.stack_values(&record)?;
        let ctx = context(&project, record.endpoint.clone());
        let plan = upgrade_plan(&old, new, slug, &existing, &ctx).map_err(render_error)?;
        // Overrides stay where the template's image did not move; elsewhere the new image wins.
        let kept: BTreeMap<String, ImageRef> = record
            .images
            .iter()
            .filter(|(svc, _)| {
                old.service(svc).map(|s| &s.image) == new.service(svc).map(|s| &s.image)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut target = plan.stack.clone();
        apply_overrides(&mut target, &kept);
        let changes = preview_lines(&plan.changes, &record, &target);
        let plan_id = plan_id(&record, &plan.to_version, &changes);
        let mut view = StackUpgradeView {
            stack: slug.to_owned(),
            template: record.template.clone(),
            from_version: plan.from_version.clone(),
            to_version: plan.to_version.clone(),
            changes,
            plan_id: plan_id.clone(),
            applied: false,
            result: None,
        };
        let Some(apply) = upgrade.apply else {
            return Ok(view);
        };
        if apply != plan_id {
            return Err(Error::Conflict(format!(
                "plan `{apply}` is not the current plan for stack `{slug}` (the stack or the \
                 catalog changed since that preview); preview again and apply the new plan id"
            )));
        }
        let deploy = self
            .apply_upgrade(
                &record,
                &project,
                &environment,
                &plan.changes,
                &target,
                new,
                kept,
            )
            .await?;
        for id in deploy {
            self.engine.deploy(id, Trigger::Manual { by: None }).await?;
        }
        let after = self.stack_record(env, slug).await?;
        view.applied = true;
        view.result = Some(self.stack_view(&after).await?);
        Ok(view)
    }

    /// Write the upgraded services, their config and the stack record in one transaction;
    /// returns the services to deploy, in start order.
    #[allow(clippy::too_many_arguments)]
    async fn apply_upgrade(
        &self,
        record: &Versioned<Stack>,
        project: &Project,
        environment: &Environment,
        changes: &[Change],
        target: &RenderedStack,
        new: &Template,
        images: BTreeMap<String, ImageRef>,
    ) -> Result<Vec<ServiceId>> {
        let now = Timestamp::now();
        let changed: BTreeSet<&str> = changes.iter().filter_map(change_service).collect();
        let mut next = record.value.clone();
        let mut batch = Batch::new();
        let mut deploy = Vec::new();
        for r in &target.services {
            match record.services.get(&r.template_slug) {
                Some(id) => {
                    let current = self.catalog.require::<Service>(&id.to_string()).await?;
                    if !changed.contains(r.slug.as_str()) {
                        continue;
                    }
                    let mut service = current.value.clone();
                    service.source = r.source.clone();
                    service.settings = r.settings.clone();
                    service.volumes = r.volumes.clone();
                    service.endpoint = r.endpoint.clone();
                    service.processes = r.processes.clone();
                    service.depends_on = r.depends_on.clone();
                    service.updated_at = now;
                    service.validate()?;
                    batch.update(&current, &service)?;
                    let removed: Vec<&str> = changes
                        .iter()
                        .filter_map(|c| match c {
                            Change::ConfigRemoved { service, key } if *service == r.slug => {
                                Some(key.as_str())
                            }
                            _ => None,
                        })
                        .collect();
                    let scope = Scope::Service(*id);
                    match self.catalog.config_layer(scope).await? {
                        Some(layer) => {
                            let updated =
                                config_layer(&layer.value, r, &removed, &self.keyring, now)?;
                            batch.update(&layer, &updated)?;
                        }
                        None => {
                            let created = config_layer(
                                &ConfigLayer::new(scope),
                                r,
                                &removed,
                                &self.keyring,
                                now,
                            )?;
                            batch.create(&created)?;
                        }
                    }
                    deploy.push(*id);
                }
                None => {
                    let exists = format!(
                        "the new version adds service `{}`, and one by that name exists",
                        r.slug
                    );
                    let service = self
                        .add_service(&mut batch, project, environment, r, now, ("to", &exists))
                        .await?;
                    next.services.insert(r.template_slug.clone(), service.id);
                    deploy.push(service.id);
                }
            }
        }
        // A service the new version drops leaves the stack but keeps running with its data:
        // removing one is the user's decision.
        next.services
            .retain(|slug, _| target.service(slug).is_some());
        next.version = new.version().to_owned();
        next.template_text = new.text().to_owned();
        next.images = images;
        next.values.clear();
        for (name, value) in &target.values {
            next.set_value(&self.keyring, name, value.expose(), value.is_secret())?;
        }
        next.updated_at = now;
        batch.update(record, &next)?;
        match self.catalog.commit(batch).await {
            Err(Error::WriteConflict { .. }) => Err(Error::Conflict(format!(
                "stack `{}` changed while the upgrade was applied; preview again",
                record.slug
            ))),
            other => other.map(|_| deploy),
        }
    }

    /// Add the rendered service `r` to `batch` as a new service of `environment`, with its
    /// config layer. `Err` (`field` taken, with `message`) when `environment` already has a
    /// service by that name.
    async fn add_service(
        &self,
        batch: &mut Batch,
        project: &Project,
        environment: &Environment,
        r: &RenderedService,
        now: Timestamp,
        (field, message): (&str, &str),
    ) -> Result<Service> {
        let slug = format!("{}:{}", environment.id, r.slug);
        if self
            .catalog
            .lookup::<Service>("slug", &slug)
            .await?
            .is_some()
        {
            return Err(taken(field, message));
        }
        let service = new_service(project, environment, r, now)?;
        batch.create(&service)?;
        let layer = config_layer(
            &ConfigLayer::new(Scope::Service(service.id)),
            r,
            &[],
            &self.keyring,
            now,
        )?;
        batch.create(&layer)?;
        Ok(service)
    }

    /// The stack's stored values, secrets opened, as a re-render takes them.
    fn stack_values(&self, stack: &Stack) -> Result<Values> {
        let mut values = Values::new();
        for (name, value, secret) in stack.open_values(&self.keyring)? {
            let v = if secret {
                VarValue::Secret(value)
            } else {
                VarValue::Plain(value.expose().to_owned())
            };
            values.insert(name, v);
        }
        Ok(values)
    }
}

/// The image overrides, checked: each names a service of the template and is a valid image
/// reference.
fn image_overrides(
    template: &Template,
    images: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ImageRef>> {
    let mut out = BTreeMap::new();
    for (svc, reference) in images {
        let field = format!("images.{svc}");
        if template.service(svc).is_none() {
            let known: Vec<&str> = template
                .services()
                .iter()
                .map(|s| s.slug.as_str())
                .collect();
            return Err(InvalidInput::new(
                field,
                "unknown_service",
                format!(
                    "template `{}` has no service `{svc}` (its services: {})",
                    template.name(),
                    known.join(", ")
                ),
            )
            .into());
        }
        let image = ImageRef::parse(reference).map_err(|e| {
            InvalidInput::new(&field, "image", format!("`{reference}`: {}", e.message))
        })?;
        out.insert(svc.clone(), image);
    }
    Ok(out)
}

/// Point rendered services at the overriding images (their source records the image run).
fn apply_overrides(rendered: &mut RenderedStack, images: &BTreeMap<String, ImageRef>) {
    for r in &mut rendered.services {
        if let Some(image) = images.get(&r.template_slug) {
            r.image = image.clone();
            if let ServiceSource::Template { image: src, .. } = &mut r.source {
                *src = image.clone();
            }
        }
    }
}

fn endpoint_for(new: &NewStack) -> Result<Option<Endpoint>> {
    let Some(domain) = &new.domain else {
        if new.lan {
            return Err(InvalidInput::new(
                "lan",
                "requires_domain",
                "`lan` serves the stack's domain on the LAN; give a `domain` too",
            )
            .into());
        }
        return Ok(None);
    };
    let domains = vec![domain.clone()];
    let endpoint = if new.lan {
        Endpoint::LanOnly { domains }
    } else {
        Endpoint::PublicDirect {
            domains,
            tls: Default::default(),
        }
    };
    let mut checked = endpoint.clone();
    checked
        .validate()
        .map_err(|e| InvalidInput::new("domain", e.rule, e.message))?;
    Ok(Some(checked))
}

fn context(project: &Project, endpoint: Option<Endpoint>) -> RenderContext {
    RenderContext {
        project: project.slug.clone(),
        endpoint,
        public_url: None,
    }
}

fn taken(field: &str, message: &str) -> Error {
    InvalidInput::new(field, "taken", message.to_owned()).into()
}

/// A service as the rendered template describes it, validated.
fn new_service(
    project: &Project,
    environment: &Environment,
    r: &RenderedService,
    now: Timestamp,
) -> Result<Service> {
    let mut service = Service::new(
        project.workspace_id,
        project.id,
        environment.id,
        &r.slug,
        r.source.clone(),
        now,
    )?;
    service.settings = r.settings.clone();
    service.volumes = r.volumes.clone();
    service.endpoint = r.endpoint.clone();
    service.processes = r.processes.clone();
    service.depends_on = r.depends_on.clone();
    service
        .validate()
        .map_err(|e| e.within(&format!("services.{}", r.template_slug)))?;
    Ok(service)
}

/// `base` with the rendered service's env set (secrets sealed) and `removed` keys unset.
fn config_layer(
    base: &ConfigLayer,
    r: &RenderedService,
    removed: &[&str],
    keyring: &clank_core::secret::Keyring,
    now: Timestamp,
) -> Result<ConfigLayer> {
    let mut changes: Vec<ConfigChange> = r
        .config
        .iter()
        .map(|v| match &v.value {
            VarValue::Secret(s) => {
                ConfigChange::set_secret(v.key.clone(), SecretString::new(s.expose()))
            }
            VarValue::Plain(p) => ConfigChange::set_plain(v.key.clone(), p.clone()),
        })
        .collect();
    changes.extend(removed.iter().map(|k| ConfigChange::unset(*k)));
    config::apply_bulk(base, &changes, keyring, now)
}

fn service_image(service: &Service) -> Option<String> {
    match &service.source {
        ServiceSource::Template { image, .. } | ServiceSource::DockerImage { image, .. } => {
            Some(image.to_string())
        }
        ServiceSource::Git { .. } => None,
    }
}

/// The rendered slug a change is about, if it is about one service.
fn change_service(c: &Change) -> Option<&str> {
    match c {
        Change::ServiceAdded { service }
        | Change::ServiceRemoved { service }
        | Change::Image { service, .. }
        | Change::Setting { service, .. }
        | Change::Command { service, .. }
        | Change::VolumeAdded { service, .. }
        | Change::VolumeRemoved { service, .. }
        | Change::ConfigAdded { service, .. }
        | Change::ConfigChanged { service, .. }
        | Change::ConfigRemoved { service, .. } => Some(service),
        Change::VariableAdded { .. } | Change::VariableRemoved { .. } => None,
    }
}

/// The preview's lines: the template's changes, with an image change shown from the image the
/// service actually runs (an override), and an override that stays not shown as a change.
fn preview_lines(changes: &[Change], record: &Stack, target: &RenderedStack) -> Vec<String> {
    let mut lines = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::Image { service, from, to } => {
                let tslug = target
                    .services
                    .iter()
                    .find(|r| r.slug == *service)
                    .map(|r| r.template_slug.as_str());
                let from = tslug.and_then(|t| record.images.get(t)).unwrap_or(from);
                let to = target
                    .services
                    .iter()
                    .find(|r| r.slug == *service)
                    .map(|r| &r.image)
                    .unwrap_or(to);
                if from != to {
                    lines.push(format!("~ {service}: image {from} -> {to}"));
                }
            }
            other => lines.push(other.to_string()),
        }
    }
    lines
}

/// A short id for one plan: the preview's lines, the target version and the stack record's
/// revision, so any change to the stack or the catalog since the preview gives another id.
fn plan_id(record: &Versioned<Stack>, to_version: &str, lines: &[String]) -> String {
    // FNV-1a: stable across processes and builds (a daemon restart between preview and
    // apply keeps the id), unlike std's randomly keyed hasher.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    record.id.to_string().hash(&mut h);
    record.version.hash(&mut h);
    to_version.hash(&mut h);
    record.template_text.hash(&mut h);
    lines.hash(&mut h);
    format!("{:016x}", h.finish())
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

trait WithinName {
    fn within_name(self) -> Self;
}

impl WithinName for Error {
    /// The render names the stack `stack`; the request calls it `name`.
    fn within_name(self) -> Self {
        match self {
            Error::Invalid(i) if i.field == "stack" => {
                Error::Invalid(InvalidInput::new("name", i.rule, i.message))
            }
            other => other,
        }
    }
}
