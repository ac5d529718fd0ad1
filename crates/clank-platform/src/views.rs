//! What the platform shows users: records as they are, except that nothing secret — not even a
//! sealed ciphertext — leaves through a view.

use clank_core::config::ResolvedVarView;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{Artifact, Deployment, StatusChange, Trigger};
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
    pub artifact: Artifact,
    pub image: Option<ImageRef>,
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
