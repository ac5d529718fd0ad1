//! Rendering a template into the ordinary services a stack is made of.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use clank_core::error::InvalidInput;
use clank_core::image::ImageRef;
use clank_core::model::{Endpoint, ProcessSpec, ServiceSettings, ServiceSource, VolumeMount};
use clank_core::secret::SecretString;
use clank_core::validate;
use rand::TryRngCore as _;

use crate::error::RenderError;
use crate::format::{Encoding, Role, ServiceTemplate, Template, Variable};
use crate::interpolate::Segment;

/// A value as the platform stores it: plain config, or secret config that is never shown.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VarValue {
    Plain(String),
    /// `Debug`, `Display` and `Serialize` print the mask.
    Secret(SecretString),
}

impl VarValue {
    pub fn is_secret(&self) -> bool {
        matches!(self, VarValue::Secret(_))
    }

    /// The value itself. Named so that every read of a secret is easy to find in review.
    pub fn expose(&self) -> &str {
        match self {
            VarValue::Plain(v) => v,
            VarValue::Secret(s) => s.expose(),
        }
    }
}

impl fmt::Debug for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Plain(v) => write!(f, "Plain({v:?})"),
            VarValue::Secret(s) => write!(f, "Secret({s:?})"),
        }
    }
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Plain(v) => f.write_str(v),
            VarValue::Secret(s) => write!(f, "{s}"),
        }
    }
}

/// Values of a stack's stored variables (secrets and inputs), by variable name: what a render
/// returns in [`RenderedStack::values`] and what an upgrade passes back so nothing is
/// regenerated.
pub type Values = BTreeMap<String, VarValue>;

/// One config entry of a rendered service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenderedVar {
    pub key: String,
    pub value: VarValue,
}

impl RenderedVar {
    /// Store as secret config: the value uses a secret variable.
    pub fn is_secret(&self) -> bool {
        self.value.is_secret()
    }
}

/// One service to create, with everything an ordinary service needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RenderedService {
    /// The service's slug in the environment (`blog`, `blog-db`): its DNS name.
    pub slug: String,
    /// Its slug inside the template (`app`, `db`).
    pub template_slug: String,
    pub role: Role,
    pub image: ImageRef,
    /// `ServiceSource::Template`, recording template, version and image for upgrades.
    pub source: ServiceSource,
    /// `is_public` is set to whether the service is routed: companions are never exposed.
    pub settings: ServiceSettings,
    /// Named `clank-{project}-{slug}-{volume}`; never shared (single writer).
    pub volumes: Vec<VolumeMount>,
    pub routed: bool,
    /// The context's endpoint, on the routed service.
    pub endpoint: Option<Endpoint>,
    /// `web` with the template's command (`None`: the image's own).
    pub processes: BTreeMap<String, ProcessSpec>,
    /// Rendered slugs of the services to be running (healthy) first.
    pub depends_on: Vec<String>,
    /// Env entries, secret where they use a secret variable.
    pub config: Vec<RenderedVar>,
}

/// A rendered template: services in start order (dependencies first).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RenderedStack {
    pub template: String,
    pub version: String,
    pub stack: String,
    pub services: Vec<RenderedService>,
    /// Values of stored variables (generated secrets, inputs). The platform keeps them (secrets
    /// as secret config) and passes them back as `existing` when re-rendering.
    pub values: Values,
}

impl RenderedStack {
    pub fn service(&self, template_slug: &str) -> Option<&RenderedService> {
        self.services
            .iter()
            .find(|s| s.template_slug == template_slug)
    }
}

/// Where the stack lands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RenderContext {
    /// The project's slug; names volumes (`clank-{project}-{service}-{volume}`).
    pub project: String,
    /// The endpoint of the routed service, if the user gave one.
    pub endpoint: Option<Endpoint>,
    /// The routed service's public URL when the endpoint does not tell it (Tailscale, a BYO
    /// proxy). Otherwise derived: `https://<domain>` for public/tunnel, `http://<domain>` on
    /// the LAN.
    pub public_url: Option<String>,
}

impl RenderContext {
    pub fn new(project: &str) -> Self {
        RenderContext {
            project: project.to_owned(),
            ..RenderContext::default()
        }
    }

    fn public_url(&self) -> Option<String> {
        if let Some(url) = &self.public_url {
            return Some(url.trim_end_matches('/').to_owned());
        }
        match self.endpoint.as_ref()? {
            Endpoint::PublicDirect { domains, .. } => Some(format!("https://{}", domains.first()?)),
            Endpoint::LanOnly { domains } => Some(format!("http://{}", domains.first()?)),
            Endpoint::CloudflareTunnel { hostname, .. } => Some(format!("https://{hostname}")),
            Endpoint::ByoProxy { .. } | Endpoint::TailscaleHttps { .. } => None,
        }
    }
}

/// The slug a template service gets in a stack: the stack's name for the app, `{stack}-{slug}`
/// for companions (so two stacks in one environment never collide).
pub fn service_slug(stack: &str, service: &ServiceTemplate) -> String {
    match service.role {
        Role::App => stack.to_owned(),
        Role::Companion => format!("{stack}-{}", service.slug),
    }
}

/// Render `template` as stack `stack`.
///
/// Stored variables take, in order: a value in `inputs` (input variables only), the value in
/// `existing` (an earlier render's [`RenderedStack::values`], so an upgrade keeps passwords),
/// then the default or a fresh random value. Errors name `stack`, `project`, `inputs.<name>` or the
/// derived `services.<slug>.slug`.
pub fn render(
    template: &Template,
    stack: &str,
    inputs: &BTreeMap<String, String>,
    existing: &Values,
    ctx: &RenderContext,
) -> Result<RenderedStack, RenderError> {
    validate::validate_slug("stack", stack)?;
    validate::validate_slug("project", &ctx.project)?;
    for (name, value) in inputs {
        let field = format!("inputs.{name}");
        match template.variables.get(name) {
            Some(Variable::Input { .. }) => validate::validate_env_value(&field, value)?,
            Some(_) => {
                return Err(InvalidInput::new(
                    field,
                    "not_an_input",
                    format!("`{name}` is set by the template, not by the user"),
                )
                .into());
            }
            None => {
                return Err(InvalidInput::new(
                    field,
                    "unknown_variable",
                    format!("template `{}` has no variable `{name}`", template.name),
                )
                .into());
            }
        }
    }

    let slugs: BTreeMap<&str, String> = template
        .services
        .iter()
        .map(|s| (s.slug.as_str(), service_slug(stack, s)))
        .collect();
    for (slug, rendered) in &slugs {
        validate::validate_slug(&format!("services.{slug}.slug"), rendered)?;
    }
    let internal_url = |s: &ServiceTemplate| {
        format!(
            "http://{}:{}",
            slugs[s.slug.as_str()],
            s.settings.port.unwrap_or(80)
        )
    };

    let mut values = Values::new();
    let mut resolved: BTreeMap<&str, VarValue> = BTreeMap::new();
    for (name, var) in &template.variables {
        let value = match var {
            Variable::Secret { bytes, encoding } => match existing.get(name) {
                Some(v) => VarValue::Secret(SecretString::new(v.expose())),
                None => VarValue::Secret(generate(name, *bytes, *encoding)?),
            },
            Variable::Input {
                default,
                required,
                secret,
                ..
            } => {
                let given = inputs
                    .get(name)
                    .map(String::as_str)
                    .or_else(|| existing.get(name).map(VarValue::expose))
                    .or(default.as_deref());
                match given {
                    Some(v) => v.to_owned().into_plain(*secret),
                    None if *required => {
                        return Err(InvalidInput::new(
                            format!("inputs.{name}"),
                            "required",
                            format!("template `{}` needs a value for `{name}`", template.name),
                        )
                        .into());
                    }
                    None => String::new().into_plain(*secret),
                }
            }
            Variable::Dns { service } => VarValue::Plain(slugs[service.as_str()].clone()),
            Variable::Url { service } => {
                let s = template.service(service).unwrap_or(template.app());
                let public = if s.routed { ctx.public_url() } else { None };
                VarValue::Plain(public.unwrap_or_else(|| internal_url(s)))
            }
        };
        if var.is_stored() {
            values.insert(name.clone(), value.clone());
        }
        resolved.insert(name.as_str(), value);
    }

    let interpolate = |value: &str| -> VarValue {
        let mut out = String::new();
        let mut secret = false;
        for segment in Template::segments(value) {
            match segment {
                Segment::Text(t) => out.push_str(&t),
                Segment::Var(name) => {
                    if let Some(v) = resolved.get(name.as_str()) {
                        secret |= v.is_secret();
                        out.push_str(v.expose());
                    }
                }
                Segment::Host(slug) => out.push_str(&slugs[slug.as_str()]),
                Segment::Port(slug) => {
                    let port = template.service(&slug).and_then(|s| s.settings.port);
                    out.push_str(&port.map(|p| p.to_string()).unwrap_or_default());
                }
                Segment::Stack => out.push_str(stack),
            }
        }
        out.into_plain(secret)
    };

    let mut services = Vec::with_capacity(template.services.len());
    for i in template.service_order() {
        let s = &template.services[i];
        let slug = slugs[s.slug.as_str()].clone();
        let mut settings = s.settings.clone();
        settings.is_public = s.routed;
        let volumes = s
            .volumes
            .iter()
            .map(|v| VolumeMount {
                name: format!("clank-{}-{slug}-{}", ctx.project, v.name),
                mount_path: v.path.clone(),
                shared: false,
            })
            .collect::<Vec<_>>();
        for (j, v) in volumes.iter().enumerate() {
            v.validate()
                .map_err(|e| e.within(&format!("services.{}.volumes[{j}]", s.slug)))?;
        }
        let command = s.command.as_ref().map(|c| {
            c.iter()
                .map(|a| interpolate(a).expose().to_owned())
                .collect()
        });
        let processes = BTreeMap::from([(
            ProcessSpec::WEB.to_owned(),
            ProcessSpec {
                command,
                replicas: 1,
            },
        )]);
        let config = s
            .env
            .iter()
            .map(|(key, value)| RenderedVar {
                key: key.clone(),
                value: interpolate(value),
            })
            .collect();
        services.push(RenderedService {
            template_slug: s.slug.clone(),
            role: s.role,
            image: s.image.clone(),
            source: ServiceSource::Template {
                template: template.name.clone(),
                version: template.version.clone(),
                image: s.image.clone(),
                credentials_secret: None,
            },
            settings,
            volumes,
            routed: s.routed,
            endpoint: if s.routed { ctx.endpoint.clone() } else { None },
            processes,
            depends_on: s
                .depends_on
                .iter()
                .map(|d| slugs[d.as_str()].clone())
                .collect(),
            config,
            slug,
        });
    }
    Ok(RenderedStack {
        template: template.name.clone(),
        version: template.version.clone(),
        stack: stack.to_owned(),
        services,
        values,
    })
}

trait IntoValue {
    fn into_plain(self, secret: bool) -> VarValue;
}

impl IntoValue for String {
    fn into_plain(self, secret: bool) -> VarValue {
        if secret {
            VarValue::Secret(SecretString::new(self))
        } else {
            VarValue::Plain(self)
        }
    }
}

/// `bytes` random bytes from the OS generator, encoded.
fn generate(name: &str, bytes: u32, encoding: Encoding) -> Result<SecretString, RenderError> {
    let mut buf = vec![0u8; bytes as usize];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| RenderError::Random {
            variable: name.to_owned(),
            reason: e.to_string(),
        })?;
    let text = match encoding {
        Encoding::Hex => buf.iter().map(|b| format!("{b:02x}")).collect(),
        Encoding::Base64url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&buf),
    };
    buf.fill(0);
    Ok(SecretString::new(text))
}
