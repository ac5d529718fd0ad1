//! Deployments as users see them: the snapshot with its config masked, and the deploy log.

use std::collections::BTreeMap;

use clank_core::config::ResolvedVarView;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{
    Artifact, Build, Deployment, Endpoint, ProcessSpec, ServiceSettings, StatusChange, Trigger,
    VolumeMount,
};
use clank_core::{ImageRef, Timestamp};

use crate::builds::BuildRef;

/// A deployment for API responses: the snapshot's config as masked views. Nothing secret —
/// not even a sealed ciphertext — leaves through it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentView {
    pub id: DeploymentId,
    pub service_id: ServiceId,
    /// #1, #2, … per service.
    pub number: u64,
    pub status: DeploymentStatus,
    /// Why it failed or was cancelled (or other context of the last change).
    pub reason: Option<String>,
    pub trigger: Trigger,
    /// For a git service, `commit` is the pinned commit or, for a manual deploy, the one its
    /// build checked out (the branch head then).
    pub artifact: Artifact,
    /// The image actually run, once known.
    pub image: Option<ImageRef>,
    /// What exactly ran, even if the tag moves later: the registry digest (`sha256:…`) of
    /// `image` as pulled, or on a remote server the image id its agent verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The build whose image this deployment runs: its own, or for a rollback the earlier
    /// deployment's. `None` for image services.
    pub build: Option<BuildRef>,
    pub created_at: Timestamp,
    /// When the current phase must end; `None` outside in-progress phases.
    pub deadline: Option<Timestamp>,
    /// Every status change, oldest first.
    pub history: Vec<StatusChange>,
    /// The resolved config frozen into this deployment, secrets shown as `********`.
    pub config: Vec<ResolvedVarView>,
    pub settings: ServiceSettings,
    /// Process type → spec.
    pub processes: BTreeMap<String, ProcessSpec>,
    pub volumes: Vec<VolumeMount>,
    pub endpoint: Option<Endpoint>,
    /// A cancel was asked for and not yet carried out (or carried out).
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
            image_digest: d.state.image_digest.clone(),
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

/// One persisted line of a deployment's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogEntry {
    pub at: Timestamp,
    pub message: String,
}

/// `?limit=&before=`: a page of a service's numbered records (deployments, builds), newest
/// first.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct NewestFirst {
    /// At most this many, newest first (default 20; the platform caps it).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Only those numbered below this.
    #[serde(default)]
    pub before: Option<u64>,
}

impl NewestFirst {
    /// At most this many (20 unless asked; the platform caps it).
    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(20)
    }
}

/// What `clank status` shows: the service, what runs now (its ACTIVE deployment, however old)
/// and what happened lately (the newest deployments, newest first).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStatus {
    pub service: clank_core::model::Service,
    /// `None` when nothing runs (never deployed, stopped, or every deployment failed).
    pub active: Option<DeploymentView>,
    pub recent: Vec<DeploymentView>,
}
