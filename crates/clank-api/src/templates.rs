//! Templates and stacks: the catalog as users browse it, creating a stack from a template, a
//! stack as users see it (never a secret value), and upgrading one with a preview first.

use std::collections::BTreeMap;
use std::fmt;

use clank_core::Timestamp;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{ServiceId, StackId};
use clank_core::model::Endpoint;

use crate::deployments::DeploymentView;

/// One template of the catalog, as `clank template list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateSummary {
    /// The catalog name (`wordpress`): what `--template` takes.
    pub name: String,
    pub title: String,
    /// The app version the template pins.
    pub version: String,
    pub category: String,
    pub description: String,
}

/// A template in detail: its services, images, volumes and variables (never a value that
/// would be generated).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateView {
    pub name: String,
    pub title: String,
    pub description: String,
    pub version: String,
    pub category: String,
    pub website: Option<String>,
    pub docs: Option<String>,
    /// In start order: dependencies first.
    pub services: Vec<TemplateServiceView>,
    pub variables: Vec<TemplateVariableView>,
}

/// One service of a template.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateServiceView {
    /// Its slug in the template (`app`, `db`): the key of `images` when creating a stack.
    pub slug: String,
    /// `app` (named after the stack) or `companion` (named `{stack}-{slug}`).
    pub role: String,
    pub image: String,
    pub port: Option<u16>,
    /// Gets the stack's domain.
    pub routed: bool,
    /// Template slugs of the services that must be ACTIVE first.
    pub depends_on: Vec<String>,
    pub volumes: Vec<TemplateVolumeView>,
}

/// A named volume and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateVolumeView {
    pub name: String,
    pub path: String,
}

/// A variable of a template: where its value comes from, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateVariableView {
    pub name: String,
    /// `secret` (generated, kept as secret config), `dns`, `url` or `input` (the user's).
    pub kind: String,
    /// Inputs: what to supply.
    pub description: Option<String>,
    /// Inputs: the default when not given (absent for secret inputs).
    pub default: Option<String>,
    /// Inputs: must be given.
    pub required: bool,
    /// Stored as secret config, never shown.
    pub secret: bool,
}

/// A new stack from a template. `Debug` shows input names, not their values.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewStack {
    /// The catalog name of the template.
    pub template: String,
    /// The stack's slug, also its app service's slug; companions are `{name}-{slug}`.
    /// Default: the template's app slug (`db` for postgres, `cache` for redis), or the
    /// template's name when that slug is `app` (`wordpress`).
    #[serde(default)]
    pub name: Option<String>,
    /// Values of the template's input variables, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Image overrides by template service slug (an operator's mirror, a pinned digest).
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    /// A domain the proxy serves the routed service on (public, with TLS); none: not routed.
    #[serde(default)]
    pub domain: Option<String>,
    /// Serve `domain` on the LAN listener over plain HTTP instead (`lan_only` endpoint).
    #[serde(default)]
    pub lan: bool,
}

impl fmt::Debug for NewStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewStack")
            .field("template", &self.template)
            .field("name", &self.name)
            .field("inputs", &self.inputs.keys().collect::<Vec<_>>())
            .field("images", &self.images)
            .field("domain", &self.domain)
            .field("lan", &self.lan)
            .finish()
    }
}

/// A stack as users see it: its template, version and services with their status.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackView {
    pub id: StackId,
    pub slug: String,
    pub template: String,
    /// The template version the services were rendered from.
    pub version: String,
    /// The catalog's version of the template, when it differs (an upgrade is available).
    pub available_version: Option<String>,
    /// The routed service's endpoint, if the stack was given a domain.
    pub endpoint: Option<Endpoint>,
    /// In start order: dependencies first.
    pub services: Vec<StackServiceView>,
    /// Names of the stored variables; secret ones are never shown.
    pub variables: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One service of a stack.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackServiceView {
    /// Its slug in the template (`app`, `db`).
    pub template_slug: String,
    /// The service's slug in the environment (`blog`, `blog-db`).
    pub service: String,
    pub service_id: ServiceId,
    pub image: String,
    /// Whether it has an ACTIVE deployment.
    pub active: bool,
    /// The status of its newest deployment, if any.
    pub status: Option<DeploymentStatus>,
    /// Its newest deployment.
    pub deployment: Option<DeploymentView>,
}

/// Upgrade a stack: without `apply`, preview the plan; with `apply` = the preview's
/// `plan_id`, carry out exactly that plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StackUpgrade {
    /// The template version to move to; default: the catalog's.
    #[serde(default)]
    pub to: Option<String>,
    /// The `plan_id` of a preview to apply. Refused (409) if anything changed since.
    #[serde(default)]
    pub apply: Option<String>,
}

/// An upgrade's plan (and, once applied, the stack after it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackUpgradeView {
    pub stack: String,
    pub template: String,
    pub from_version: String,
    pub to_version: String,
    /// One line per difference (`~ blog-db: image postgres:15 -> postgres:16`); secret values
    /// as the mask.
    pub changes: Vec<String>,
    /// Pass as `apply` to carry out exactly this plan.
    pub plan_id: String,
    /// Whether this response is the plan applied (`apply` given) or only its preview.
    pub applied: bool,
    /// The stack after the upgrade, with its new deployments (applied only).
    pub result: Option<StackView>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_stack_debug_never_prints_input_values() {
        let mut s = NewStack {
            template: "postgres".into(),
            ..NewStack::default()
        };
        s.inputs.insert("password".into(), "hunter2".into());
        let shown = format!("{s:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
