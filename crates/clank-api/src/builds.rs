//! Builds of git services as users see them, and where a forge delivers a service's pushes.

use clank_core::id::BuildId;
use clank_core::model::{Build, BuildStatus, Deployment, Trigger};
use clank_core::{ImageRef, Timestamp};

/// Which build a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildRef {
    pub id: BuildId,
    /// `v{number}`: the image tag's version.
    pub number: u64,
    pub status: BuildStatus,
    /// The commit checked out, once the checkout resolved the ref.
    pub commit_sha: Option<String>,
    /// The first line of that commit's message (control characters blanked, at most 200
    /// characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_subject: Option<String>,
}

impl From<&Build> for BuildRef {
    fn from(b: &Build) -> Self {
        BuildRef {
            id: b.id,
            number: b.number,
            status: b.status,
            commit_sha: b.commit_sha.clone(),
            commit_subject: b.commit_subject.clone(),
        }
    }
}

/// A build for API responses: the record, what started it, how long it took and (for one
/// build, not in listings) the tail of its log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildView {
    pub id: BuildId,
    /// v1, v2, … per service.
    pub number: u64,
    pub status: BuildStatus,
    pub repo_url: String,
    /// The branch (or ref) built.
    pub branch: String,
    /// The commit checked out, once the checkout resolved the ref.
    pub commit_sha: Option<String>,
    /// The first line of that commit's message (control characters blanked, at most 200
    /// characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_subject: Option<String>,
    /// What started it: the deployment's trigger (`manual`, `auto_deploy`, ...).
    pub trigger: Option<Trigger>,
    /// The deployment it was built for.
    pub deployment: Option<u64>,
    /// The image it produced.
    pub image: Option<ImageRef>,
    /// Detected framework, when the Dockerfile was generated.
    pub framework: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// How long it ran, in seconds; `None` while it runs.
    pub duration_s: Option<f64>,
    /// The build's output (its lines of the deploy log), only in the single-build answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<BuildLogView>,
}

impl BuildView {
    pub fn new(b: &Build, deployment: Option<&Deployment>) -> Self {
        BuildView {
            id: b.id,
            number: b.number,
            status: b.status,
            repo_url: b.repo_url.clone(),
            branch: b.git_ref.clone(),
            commit_sha: b.commit_sha.clone(),
            commit_subject: b.commit_subject.clone(),
            trigger: deployment.map(|d| d.trigger.clone()),
            deployment: deployment.map(|d| d.number),
            image: b.image.clone(),
            framework: b.framework.clone(),
            failure: b.failure.clone(),
            started_at: b.started_at,
            finished_at: b.finished_at,
            duration_s: b.duration().map(|d| d.as_secs_f64()),
            log: None,
        }
    }
}

/// A bounded build log: the last lines, and whether earlier ones were left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildLogView {
    pub lines: Vec<String>,
    /// Earlier lines were left out.
    pub truncated: bool,
}

/// Where to point a forge's webhook for this service, and the secret it signs with.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceWebhook {
    /// Paths on the daemon's address, one per forge.
    pub endpoints: crate::webhooks::ForgeEndpoints,
    pub repo_url: String,
    pub branch: String,
    /// Pushes to `branch` deploy the service.
    pub auto_deploy: bool,
    /// The workspace's webhook secret; `null` until one is created (`POST
    /// /v1/workspaces/{ws}/webhook-secret`) or when the role may not see it.
    pub secret: Option<String>,
    /// `true` when the caller's role may see and rotate the secret (Owner, Admin).
    pub secret_visible: bool,
}

impl std::fmt::Debug for ServiceWebhook {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceWebhook")
            .field("endpoints", &self.endpoints)
            .field("repo_url", &self.repo_url)
            .field("branch", &self.branch)
            .field("auto_deploy", &self.auto_deploy)
            .field("secret", &self.secret.as_ref().map(|_| "********"))
            .field("secret_visible", &self.secret_visible)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_webhook_debug_hides_the_secret() {
        let w = ServiceWebhook {
            endpoints: crate::webhooks::ForgeEndpoints::default(),
            repo_url: "https://example.com/a/b.git".into(),
            branch: "main".into(),
            auto_deploy: true,
            secret: Some("whsec-visible-nowhere".into()),
            secret_visible: true,
        };
        assert!(!format!("{w:?}").contains("whsec-visible-nowhere"));
    }
}
