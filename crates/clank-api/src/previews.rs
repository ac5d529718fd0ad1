//! Preview environments: a project's settings for the environment each pull request gets, the
//! live previews, and what a pull-request webhook or a teardown did.

use crate::deployments::DeploymentView;
use crate::lifecycle::PurgeReport;

/// A project's preview settings, as set (`PUT …/previews`) and shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreviewSettingsBody {
    /// Create previews for pull requests (default: yes).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The environment each preview is cloned from.
    pub base_environment: String,
    /// The base domain routed services' preview URLs are under. Absent: previews have no
    /// domains.
    #[serde(default)]
    pub domain: Option<String>,
    /// The host of a routed service's preview; `{service}`, `{n}` (the pull request's number)
    /// and `{domain}` are replaced. Default `{service}-pr-{n}.{domain}`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// How long a preview lives after its last push, in minutes (1 to 129 600, 90 days).
    /// Default 4 320 (72 hours).
    #[serde(default)]
    pub ttl_minutes: Option<u32>,
    /// Build and run pull requests from forks (default: no; they would run with the
    /// project's secrets).
    #[serde(default)]
    pub allow_forks: bool,
}

fn yes() -> bool {
    true
}

/// A project's preview settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewSettingsView {
    pub project: String,
    pub enabled: bool,
    pub base_environment: String,
    pub domain: Option<String>,
    pub pattern: String,
    pub ttl_minutes: u32,
    pub allow_forks: bool,
}

/// One live preview environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewView {
    pub project: String,
    /// The environment's slug (`pr-42`).
    pub environment: String,
    pub pull_request: u64,
    pub branch: String,
    /// The commit its git services were last deployed at, if any was.
    pub head_commit: Option<String>,
    /// `https://` URLs of its routed services.
    pub urls: Vec<String>,
    /// When it is torn down unless pushed to again (milliseconds since the epoch).
    pub expires_at: Option<i64>,
}

/// What a pull-request event (or a teardown) did to one project's preview.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewOutcome {
    pub project: String,
    pub environment: String,
    /// `created`, `redeployed` or `removed`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<DeploymentView>,
    /// What a teardown removed: workloads, network, volumes, records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<PurgeReport>,
}

/// What a verified pull-request webhook did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestResult {
    pub workspace: String,
    pub pull_request: u64,
    /// `opened`, `reopened`, `synchronize`, `closed` or `merged`.
    pub action: String,
    /// Why nothing was done, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub previews: Vec<PreviewOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_body_takes_defaults_and_refuses_unknown_fields() {
        let b: PreviewSettingsBody =
            serde_json::from_str(r#"{"base_environment":"staging"}"#).unwrap();
        assert!(b.enabled && !b.allow_forks);
        assert_eq!(b.pattern, None);
        assert!(
            serde_json::from_str::<PreviewSettingsBody>(
                r#"{"base_environment":"staging","ttl":3}"#
            )
            .is_err()
        );
    }
}
