//! Builds of git services: versioned v1, v2, … per service, with what was used and the result.

use crate::id::{BuildId, DeploymentId, ServiceId};
use crate::image::ImageRef;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// One build attempt. The log lives beside it in the store (it can be large and streams).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Build {
    pub id: BuildId,
    pub service_id: ServiceId,
    /// The deployment this build is for (a deployment's number and a build's differ once a
    /// build failed or a deployment needed none). `None` on records older than the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    /// v1, v2, … per service.
    pub number: u64,
    pub repo_url: String,
    pub git_ref: String,
    /// The commit actually checked out: recorded as soon as the checkout resolves the ref
    /// (so a build that fails later still says what it built).
    pub commit_sha: Option<String>,
    /// The Dockerfile used: the repository's own, or the one generated for the framework.
    pub dockerfile: Option<String>,
    pub procfile: Option<String>,
    /// Detected framework, when the Dockerfile was generated.
    pub framework: Option<String>,
    pub image: Option<ImageRef>,
    pub status: BuildStatus,
    pub failure: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl Build {
    pub fn version_label(&self) -> String {
        format!("v{}", self.number)
    }

    /// How long the build ran; `None` while it runs.
    pub fn duration(&self) -> Option<std::time::Duration> {
        self.finished_at.map(|f| f.since(self.started_at))
    }
}
