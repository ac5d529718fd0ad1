//! The template file format (TOML) and its parsing into a [`Template`], which is validated
//! before anyone can hold one. See the crate README for the format as operators read it.

use std::collections::BTreeMap;

use clank_core::image::ImageRef;
use clank_core::model::ServiceSettings;
use serde::{Deserialize, Serialize};

use crate::error::TemplateError;
use crate::interpolate::{self, Segment};

/// What a service is in its stack: the application, or something it needs (a database, a
/// cache). The app is named after the stack; companions are prefixed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    App,
    Companion,
}

/// How a generated secret's bytes are written out. Both alphabets are safe in URLs (a
/// password inside `DATABASE_URL`), shells and config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Lowercase hex: two characters per byte.
    #[default]
    Hex,
    /// URL-safe base64 without padding (`A-Z a-z 0-9 - _`).
    Base64url,
}

fn default_secret_bytes() -> u32 {
    32
}

/// A template variable and how its value is produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Variable {
    /// Random bytes from the OS generator, generated once and kept across upgrades; always
    /// stored as secret config.
    Secret {
        #[serde(default = "default_secret_bytes")]
        bytes: u32,
        #[serde(default)]
        encoding: Encoding,
    },
    /// The DNS name of a service of the stack on the project network (its rendered slug).
    Dns { service: String },
    /// The service's public URL when it is routed and has one, its internal
    /// `http://<slug>:<port>` otherwise.
    Url { service: String },
    /// A value the user supplies when creating the stack.
    Input {
        #[serde(default)]
        default: Option<String>,
        #[serde(default)]
        required: bool,
        #[serde(default)]
        description: Option<String>,
        /// Store it as secret config (an API key the user brings).
        #[serde(default)]
        secret: bool,
    },
}

impl Variable {
    /// Whether values of this variable (and config built from them) are secret.
    pub fn is_secret(&self) -> bool {
        matches!(
            self,
            Variable::Secret { .. } | Variable::Input { secret: true, .. }
        )
    }

    /// Whether the value is chosen once and must be kept across re-renders (upgrades).
    pub fn is_stored(&self) -> bool {
        matches!(self, Variable::Secret { .. } | Variable::Input { .. })
    }
}

/// A named volume of a service. Volumes are single-writer: the format has no way to share one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateVolume {
    /// Short name; the rendered volume is `clank-{project}-{service}-{name}`.
    pub name: String,
    /// Absolute path inside the container (the image's data directory).
    pub path: String,
}

/// One service of a template, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceTemplate {
    /// Slug inside the template (`app`, `db`); rendered as the stack name for the app and
    /// `{stack}-{slug}` for companions.
    pub slug: String,
    pub role: Role,
    pub image: ImageRef,
    /// Replaces the image's command (its entrypoint is kept). `${var}` allowed for non-secret
    /// variables only: secrets reach a command through env (`sh -c '… "$KEY"'`).
    pub command: Option<Vec<String>>,
    /// Port, health check and resource limits, as clank-core's service settings.
    pub settings: ServiceSettings,
    pub volumes: Vec<TemplateVolume>,
    /// Gets the stack's endpoint (domain).
    pub routed: bool,
    /// Template slugs of the services that must be running first.
    pub depends_on: Vec<String>,
    /// Env vars with `${…}` references (see the README).
    pub env: BTreeMap<String, String>,
}

/// A parsed and validated template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) version: String,
    pub(crate) category: String,
    pub(crate) website: Option<String>,
    pub(crate) docs: Option<String>,
    pub(crate) multiple_routed: bool,
    pub(crate) variables: BTreeMap<String, Variable>,
    pub(crate) services: Vec<ServiceTemplate>,
    /// The file's text: a stack keeps it so an upgrade can re-render the version it was
    /// created from after the catalog moved on.
    #[serde(skip)]
    pub(crate) text: String,
}

/// What `clank template list` shows for one template (the wire type).
pub use clank_api::templates::TemplateSummary;

impl Template {
    /// Parse and validate a template file. `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Template, TemplateError> {
        let top: FileTop = toml::from_str(text).map_err(|e| toml_error(file, "", text, &e))?;
        let mut variables = BTreeMap::new();
        for (name, value) in top.variables {
            let field = format!("variables.{name}");
            let var: Variable = value
                .try_into()
                .map_err(|e: toml::de::Error| toml_error(file, &field, text, &e))?;
            variables.insert(name, var);
        }
        let mut services = Vec::with_capacity(top.services.len());
        for (i, value) in top.services.into_iter().enumerate() {
            let field = format!("services[{i}]");
            let s: FileService = value
                .try_into()
                .map_err(|e: toml::de::Error| toml_error(file, &field, text, &e))?;
            let settings: ServiceSettings = match s.settings {
                Some(v) => v.try_into().map_err(|e: toml::de::Error| {
                    toml_error(file, &format!("{field}.settings"), text, &e)
                })?,
                None => ServiceSettings::default(),
            };
            let mut volumes = Vec::with_capacity(s.volumes.len());
            for (j, v) in s.volumes.into_iter().enumerate() {
                volumes.push(v.try_into().map_err(|e: toml::de::Error| {
                    toml_error(file, &format!("{field}.volumes[{j}]"), text, &e)
                })?);
            }
            let image = crate::validate::pinned_image(file, &format!("{field}.image"), &s.image)?;
            services.push(ServiceTemplate {
                slug: s.slug,
                role: s.role,
                image,
                command: s.command,
                settings,
                volumes,
                routed: s.routed,
                depends_on: s.depends_on,
                env: s.env,
            });
        }
        let template = Template {
            file: file.to_owned(),
            name: top.name,
            title: top.title,
            description: top.description,
            version: top.version,
            category: top.category,
            website: top.website,
            docs: top.docs,
            multiple_routed: top.multiple_routed,
            variables,
            services,
            text: text.to_owned(),
        };
        crate::validate::validate(&template)?;
        Ok(template)
    }

    /// The text it was parsed from ([`Template::parse`] gives the same template back).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The file it was read from (`templates/postgres.toml` for a built-in).
    pub fn file(&self) -> &str {
        &self.file
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn title(&self) -> &str {
        &self.title
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The app version the template pins (`16.4`).
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn category(&self) -> &str {
        &self.category
    }
    pub fn website(&self) -> Option<&str> {
        self.website.as_deref()
    }
    pub fn docs(&self) -> Option<&str> {
        self.docs.as_deref()
    }
    pub fn variables(&self) -> &BTreeMap<String, Variable> {
        &self.variables
    }
    /// Services in file order (see [`Template::service_order`] for start order).
    pub fn services(&self) -> &[ServiceTemplate] {
        &self.services
    }
    pub fn service(&self, slug: &str) -> Option<&ServiceTemplate> {
        self.services.iter().find(|s| s.slug == slug)
    }

    /// The app service (validation guarantees exactly one).
    pub fn app(&self) -> &ServiceTemplate {
        self.services
            .iter()
            .find(|s| s.role == Role::App)
            .unwrap_or(&self.services[0])
    }

    pub fn summary(&self) -> TemplateSummary {
        TemplateSummary {
            name: self.name.clone(),
            title: self.title.clone(),
            version: self.version.clone(),
            category: self.category.clone(),
            description: self.description.clone(),
        }
    }

    /// The template as `clank template show` shows it: services in start order, variables
    /// with where their values come from (never a value that would be generated).
    pub fn view(&self) -> clank_api::TemplateView {
        use clank_api::templates::{TemplateServiceView, TemplateVariableView, TemplateVolumeView};
        let services = self
            .service_order()
            .into_iter()
            .map(|i| &self.services[i])
            .map(|s| TemplateServiceView {
                slug: s.slug.clone(),
                role: match s.role {
                    Role::App => "app",
                    Role::Companion => "companion",
                }
                .to_owned(),
                image: s.image.to_string(),
                port: s.settings.port,
                routed: s.routed,
                depends_on: s.depends_on.clone(),
                volumes: s
                    .volumes
                    .iter()
                    .map(|v| TemplateVolumeView {
                        name: v.name.clone(),
                        path: v.path.clone(),
                    })
                    .collect(),
            })
            .collect();
        let variables = self
            .variables
            .iter()
            .map(|(name, v)| {
                let (kind, description, default, required) = match v {
                    Variable::Secret { .. } => ("secret", None, None, false),
                    Variable::Dns { .. } => ("dns", None, None, false),
                    Variable::Url { .. } => ("url", None, None, false),
                    Variable::Input {
                        default,
                        required,
                        description,
                        secret,
                    } => (
                        "input",
                        description.clone(),
                        default.clone().filter(|_| !*secret),
                        *required,
                    ),
                };
                TemplateVariableView {
                    name: name.clone(),
                    kind: kind.to_owned(),
                    description,
                    default,
                    required,
                    secret: v.is_secret(),
                }
            })
            .collect();
        clank_api::TemplateView {
            name: self.name.clone(),
            title: self.title.clone(),
            description: self.description.clone(),
            version: self.version.clone(),
            category: self.category.clone(),
            website: self.website.clone(),
            docs: self.docs.clone(),
            services,
            variables,
        }
    }

    /// Indexes into [`Template::services`] in start order: every service after what it
    /// depends on, companions before apps when either order works, then file order.
    pub fn service_order(&self) -> Vec<usize> {
        crate::validate::start_order(&self.services).unwrap_or_default()
    }

    /// Every `${…}` reference of a string, parsed (validation guarantees they parse).
    pub(crate) fn segments(value: &str) -> Vec<Segment> {
        interpolate::parse(value).unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTop {
    name: String,
    title: String,
    description: String,
    version: String,
    category: String,
    #[serde(default)]
    website: Option<String>,
    #[serde(default)]
    docs: Option<String>,
    #[serde(default)]
    multiple_routed: bool,
    #[serde(default)]
    variables: BTreeMap<String, toml::Value>,
    #[serde(default)]
    services: Vec<toml::Value>,
}

fn default_role() -> Role {
    Role::App
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    slug: String,
    #[serde(default = "default_role")]
    role: Role,
    image: String,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default)]
    settings: Option<toml::Value>,
    #[serde(default)]
    volumes: Vec<toml::Value>,
    #[serde(default)]
    routed: bool,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// A TOML or shape error as `file: field: message`. Serde names an unknown or missing field
/// only in its message, so the field path is completed from it.
fn toml_error(file: &str, parent: &str, text: &str, e: &toml::de::Error) -> TemplateError {
    let message = e.message().trim().to_owned();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    if let Some(name) = quoted("unknown field `") {
        return TemplateError::new(file, join(&name), "unknown_field", message);
    }
    if let Some(name) = quoted("missing field `") {
        return TemplateError::new(file, join(&name), "missing_field", message);
    }
    if quoted("unknown variant `").is_some() {
        return TemplateError::new(file, parent, "unknown_variant", message);
    }
    let field = if parent.is_empty() {
        match e.span() {
            Some(span) => format!(
                "line {}",
                text[..span.start.min(text.len())].lines().count().max(1)
            ),
            None => "(file)".to_owned(),
        }
    } else {
        parent.to_owned()
    };
    TemplateError::new(file, field, "format", message)
}
