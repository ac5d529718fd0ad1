//! Plans: what a promotion or a declaration (`clank apply`) would change, shown before
//! anything is written and applied only by its id. One format for every kind of plan, so the
//! CLI renders them all the same way. A plan never carries a secret value: a secret key's
//! change says only that it differs.

use std::fmt;

use clank_core::Timestamp;

/// What made a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Promote a service's (or every service of an environment's) ACTIVE version to another
    /// environment.
    Promotion,
    /// Apply a declared file (`clank apply`).
    Apply,
}

/// A stored plan as users see it: apply it with `POST …/plans/{id}/apply` before
/// `expires_at`; any change since to what it read makes the apply a 409.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanView {
    /// The plan's id: what `apply` takes.
    pub id: String,
    pub kind: PlanKind,
    /// What it takes from: a service or environment address (`ws/shop/staging/api`).
    pub source: String,
    /// Where it applies: an environment address (`ws/shop/production`).
    pub target: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// One entry per target service, in the source's order.
    pub services: Vec<ServicePlan>,
    /// Nothing would change.
    pub unchanged: bool,
    /// Set once applied: the deployments it created, as `service#number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Timestamp>,
}

/// What a plan does to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PlanAction {
    /// The service does not exist in the target: created (a copy of the source, domains left
    /// out) and deployed.
    Create,
    /// Settings or processes change, and a new deployment runs.
    Update,
    /// Only a new deployment (another image or config).
    Deploy,
    /// The target already runs this.
    Unchanged,
}

/// One service's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePlan {
    /// The target service's address.
    pub service: String,
    pub action: PlanAction,
    /// The image the target would run, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageChange>,
    /// Settings and processes that change (`settings.port`, `processes.worker.replicas`).
    #[serde(default)]
    pub fields: Vec<FieldChange>,
    /// Resolved config keys whose values differ between source and target (the target's own
    /// values win in the deployment; this says what differs).
    #[serde(default)]
    pub config: Vec<ConfigDiff>,
    /// What the target keeps as it is (`domains: api.example.com`, `volumes: …`, `server: …`,
    /// `endpoint: public_direct`).
    #[serde(default)]
    pub kept: Vec<String>,
}

/// The image a target service runs before and after.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImageChange {
    /// The target's ACTIVE image; absent when it runs none yet.
    pub from: Option<String>,
    pub to: String,
    /// The pinned digest (`sha256:…`) of `to`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The build that made `to` (git services): `v3 (commit 1a2b3c4)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// One setting or process field that changes, as displayed values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    /// A dotted path: `settings.health_check_path`, `processes.web.replicas`.
    pub field: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// How a config key differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConfigChangeKind {
    /// The source has it, the target does not.
    Added,
    /// The target has it, the source does not.
    Removed,
    /// Both have it with different values.
    Changed,
}

/// One config key that differs. For a secret, `from` and `to` are `********` (or absent):
/// never a value.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigDiff {
    pub key: String,
    pub change: ConfigChangeKind,
    /// Either side is a secret.
    pub secret: bool,
    /// The target's value (masked for a secret).
    pub from: Option<String>,
    /// The source's value (masked for a secret).
    pub to: Option<String>,
}

impl fmt::Debug for ConfigDiff {
    /// Prints values only for plain keys (a secret's are masked already; this makes sure).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| match v {
            Some(_) if self.secret => Some(crate::plans::MASK.to_owned()),
            other => other.clone(),
        };
        f.debug_struct("ConfigDiff")
            .field("key", &self.key)
            .field("change", &self.change)
            .field("secret", &self.secret)
            .field("from", &shown(&self.from))
            .field("to", &shown(&self.to))
            .finish()
    }
}

/// What a secret value shows as.
pub const MASK: &str = "********";

/// A promotion to plan: `source` is a service or an environment address, `target` an
/// environment (its name in the source's project, or a full environment address).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewPromotion {
    /// `shop/staging/api` (one service) or `shop/staging` (every service with an ACTIVE
    /// deployment), optionally with the workspace first.
    pub source: String,
    /// `production`, or `ws/shop/production`.
    pub target: String,
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppliedPlan {
    pub plan: String,
    /// The deployments it created, one per changed service.
    pub deployments: Vec<crate::deployments::DeploymentView>,
    /// Services it created in the target (action `create`).
    #[serde(default)]
    pub created: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_config_diff_never_prints_a_value_in_debug() {
        let diff = ConfigDiff {
            key: "API_KEY".into(),
            change: ConfigChangeKind::Changed,
            secret: true,
            from: Some("hunter2-visible-nowhere".into()),
            to: Some("other-visible-nowhere".into()),
        };
        let shown = format!("{diff:?}");
        assert!(!shown.contains("visible-nowhere"), "{shown}");
        assert!(shown.contains(MASK));
    }

    #[test]
    fn plan_kinds_and_actions_are_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&PlanKind::Promotion).unwrap(),
            "\"promotion\""
        );
        assert_eq!(
            serde_json::to_string(&PlanAction::Unchanged).unwrap(),
            "\"unchanged\""
        );
    }
}
