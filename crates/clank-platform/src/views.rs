//! What the platform shows users: records as they are, except that nothing secret — not even a
//! sealed ciphertext — leaves through a view.

use clank_core::config::ResolvedVarView;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{BuildId, DeploymentId, ServiceId};
use clank_core::model::{Artifact, Build, BuildStatus, Deployment, StatusChange, Trigger};
use clank_core::{ImageRef, Timestamp};

/// A deployment for API responses: the snapshot's config as masked views.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentView {
    pub id: DeploymentId,
    pub service_id: ServiceId,
    pub number: u64,
    pub status: DeploymentStatus,
    pub reason: Option<String>,
    pub trigger: Trigger,
    /// For a git service, `commit` is the pinned commit or, for a manual deploy, the one its
    /// build checked out (the branch head then).
    pub artifact: Artifact,
    pub image: Option<ImageRef>,
    /// The build whose image this deployment runs: its own, or for a rollback the earlier
    /// deployment's. `None` for image services.
    pub build: Option<BuildRef>,
    pub created_at: Timestamp,
    pub deadline: Option<Timestamp>,
    pub history: Vec<StatusChange>,
    /// The resolved config frozen into this deployment, secrets shown as `********`.
    pub config: Vec<ResolvedVarView>,
    pub settings: clank_core::model::ServiceSettings,
    pub processes: std::collections::BTreeMap<String, clank_core::model::ProcessSpec>,
    pub volumes: Vec<clank_core::model::VolumeMount>,
    pub endpoint: Option<clank_core::model::Endpoint>,
    pub cancel_requested: bool,
}

impl From<&Deployment> for DeploymentView {
    fn from(d: &Deployment) -> Self {
        DeploymentView {
            id: d.id,
            service_id: d.service_id,
            number: d.number,
            status: d.state.status,
            reason: d.state.reason.clone(),
            trigger: d.trigger.clone(),
            artifact: d.snapshot.artifact.clone(),
            image: d.state.image.clone(),
            build: None,
            created_at: d.created_at,
            deadline: d.state.deadline,
            history: d.state.history.clone(),
            config: d.snapshot.config.view(),
            settings: d.snapshot.settings.clone(),
            processes: d.snapshot.processes.clone(),
            volumes: d.snapshot.volumes.clone(),
            endpoint: d.snapshot.endpoint.clone(),
            cancel_requested: d.state.cancel.is_some(),
        }
    }
}

impl DeploymentView {
    /// The view with the build it runs: linked, and the commit it built shown in `artifact`.
    pub fn with_build(mut self, build: Option<&Build>) -> Self {
        let Some(b) = build else {
            return self;
        };
        if let (Artifact::Build { commit, .. }, Some(sha)) = (&mut self.artifact, &b.commit_sha) {
            commit.get_or_insert_with(|| sha.clone());
        }
        self.build = Some(BuildRef::from(b));
        self
    }
}

/// Which build a deployment runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildRef {
    pub id: BuildId,
    /// `v{number}`: the image tag's version.
    pub number: u64,
    pub status: BuildStatus,
    pub commit_sha: Option<String>,
}

impl From<&Build> for BuildRef {
    fn from(b: &Build) -> Self {
        BuildRef {
            id: b.id,
            number: b.number,
            status: b.status,
            commit_sha: b.commit_sha.clone(),
        }
    }
}

/// A build for API responses: the record, what started it, how long it took and (for one
/// build, not in listings) the tail of its log.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildView {
    pub id: BuildId,
    pub number: u64,
    pub status: BuildStatus,
    pub repo_url: String,
    /// The branch (or ref) built.
    pub branch: String,
    pub commit_sha: Option<String>,
    /// What started it: the deployment's trigger (`manual`, `auto_deploy`, ...).
    pub trigger: Option<Trigger>,
    /// The deployment it was built for.
    pub deployment: Option<u64>,
    pub image: Option<ImageRef>,
    pub framework: Option<String>,
    pub failure: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub duration_s: Option<f64>,
    /// The build's output (its lines of the deploy log), only in the single-build answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<BuildLogView>,
}

/// A bounded build log: the last lines, and whether earlier ones were left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BuildLogView {
    pub lines: Vec<String>,
    pub truncated: bool,
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
