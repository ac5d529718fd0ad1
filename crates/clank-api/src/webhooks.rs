//! Push webhooks: where forges deliver, the workspace's signing secret, and what a push did.

use crate::deployments::DeploymentView;

/// Where each forge delivers pushes: paths on the daemon's address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeEndpoints {
    /// GitHub (HMAC-signed).
    pub github: String,
    /// GitLab (the secret as its token).
    pub gitlab: String,
    /// Gitea and Forgejo (HMAC-signed).
    pub gitea: String,
}

impl Default for ForgeEndpoints {
    /// The daemon's routes.
    fn default() -> Self {
        ForgeEndpoints {
            github: "/v1/webhooks/github".to_owned(),
            gitlab: "/v1/webhooks/gitlab".to_owned(),
            gitea: "/v1/webhooks/gitea".to_owned(),
        }
    }
}

/// A new (or rotated) webhook secret, shown once.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookSecretCreated {
    /// Shown once; stored sealed.
    pub secret: String,
    /// Where each forge delivers (relative to the daemon's address): GitHub's, GitLab's,
    /// Gitea's.
    pub endpoints: Vec<String>,
}

impl std::fmt::Debug for WebhookSecretCreated {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecretCreated")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// What a webhook delivery answers: a push's result, or a pull request's (preview
/// environments) for GitHub `pull_request`, GitLab `Merge Request Hook` and Gitea/Forgejo
/// `pull_request` events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum WebhookResult {
    Push(PushResult),
    PullRequest(crate::previews::PullRequestResult),
}

/// What a verified push created.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushResult {
    pub workspace: String,
    /// The repository as the forge named it.
    pub repository: String,
    pub branch: Option<String>,
    pub commit: Option<String>,
    /// Why nothing was deployed, when nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub deployments: Vec<PushDeployment>,
}

/// One deployment a push created.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushDeployment {
    pub project: String,
    pub environment: String,
    pub service: String,
    /// The deployment's number.
    pub number: u64,
    pub deployment: DeploymentView,
}

/// A forge's push payload as far as Clank reads it (every other field is ignored). GitHub and
/// Gitea name the repository `repository`, GitLab `project`. The daemon verifies the signature
/// over the raw bytes before reading any of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgePush {
    /// `refs/heads/<branch>`.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit the branch moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The branch was deleted (nothing to deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// GitHub, Gitea: the repository pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<ForgeRepository>,
    /// GitLab: the project pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ForgeRepository>,
    /// GitHub, Gitea: the pushed commit (its `timestamp` orders pushes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<ForgeCommit>,
    /// GitLab: the pushed commits, the last one newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commits: Option<Vec<ForgeCommit>>,
}

/// The URLs a forge gives for a repository; any of them may match a service's `repo_url`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeRepository {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// GitLab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_http_url: Option<String>,
    /// GitLab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ssh_url: Option<String>,
    /// GitLab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
    /// GitLab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_url: Option<String>,
}

/// A pushed commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForgeCommit {
    /// When it was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_secret_debug_hides_the_secret() {
        let c = WebhookSecretCreated {
            secret: "whsec-visible-nowhere".into(),
            endpoints: vec!["/v1/webhooks/github".into()],
        };
        assert!(!format!("{c:?}").contains("whsec-visible-nowhere"));
    }
}
