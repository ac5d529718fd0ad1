//! Deployments: an immutable snapshot of what to run, plus the state the reconciler moves.
//!
//! The split is the point: `snapshot` is fixed at creation (image or commit, resolved config
//! with secrets still sealed, limits, health, volumes, endpoint, processes, server), and only
//! `state` ever changes — through [`DeploymentState::transition`], which enforces the
//! transition table. The catalog refuses any write that alters a stored snapshot.

use std::collections::BTreeMap;

use crate::config::{ResolvedConfig, Scope};
use crate::deploy::{DeploymentStatus, inherits_deadline, phase_timeout};
use crate::error::{Error, InvalidInput, Result};
use crate::id::{
    BuildId, DeploymentId, EnvironmentId, ProjectId, ServerId, ServiceId, UserId, WorkspaceId,
};
use crate::image::ImageRef;
use crate::model::service::{
    Endpoint, ProcessSpec, Service, ServiceSettings, ServiceSource, VolumeMount,
};
use crate::time::Timestamp;

/// What a rollback wrote back to its service's desired state, by name only (never a value),
/// so the next plain deploy runs the rolled-back version rather than bringing back the newer one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoredState {
    /// Service fields set back: `image`, `settings`, `processes`, `volumes`, `endpoint`.
    pub fields: Vec<&'static str>,
    /// Service-scope config keys set, changed or unset back.
    pub config_keys: Vec<String>,
    /// Keys inherited from a higher scope (with that scope) whose value changed since the
    /// rolled-back deployment: a rollback restores the service's own layer only, so the next
    /// deploy runs their current value.
    pub not_restored: Vec<(String, Scope)>,
}

/// Why a deployment exists.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    Manual {
        by: Option<UserId>,
    },
    /// A push on the service's branch with `auto_deploy` on.
    AutoDeploy {
        commit: String,
        branch: String,
    },
    /// A rollback: a copy of an earlier deployment's image *and* config.
    RollbackOf {
        deployment: DeploymentId,
        number: u64,
        /// Who asked for it; `None` for the embedded platform and records older than the field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<UserId>,
    },
    /// The exact image and config of a deployment in another environment.
    PromotionFrom {
        deployment: DeploymentId,
        environment: EnvironmentId,
        /// Who applied the promotion; `None` as for `rollback_of`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<UserId>,
    },
}

impl Trigger {
    /// The user who started the deployment, where one did (a push has no user of ours).
    pub fn by(&self) -> Option<UserId> {
        match self {
            Trigger::Manual { by }
            | Trigger::RollbackOf { by, .. }
            | Trigger::PromotionFrom { by, .. } => *by,
            Trigger::AutoDeploy { .. } => None,
        }
    }
}

/// What the deployment runs: a known image, or a commit to build first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Artifact {
    Image {
        image: ImageRef,
    },
    Build {
        repo_url: String,
        git_ref: String,
        /// Pinned when known (auto-deploy of a push); otherwise the branch head at build time,
        /// which the checkout resolves and the deployment's `Build` records (`commit_sha`):
        /// the snapshot stays as created, and views show that commit here.
        commit: Option<String>,
        dockerfile_path: Option<String>,
        build_context: Option<String>,
        /// The config secret holding the repository's access token (see `ServiceSource::Git`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_secret: Option<String>,
    },
}

/// Everything needed to run this version, frozen at creation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentSnapshot {
    pub artifact: Artifact,
    /// The resolved config cascade, secrets still sealed; decrypted only at workload start.
    pub config: ResolvedConfig,
    pub settings: ServiceSettings,
    pub volumes: Vec<VolumeMount>,
    pub endpoint: Option<Endpoint>,
    pub processes: BTreeMap<String, ProcessSpec>,
    pub server_id: Option<ServerId>,
    /// The config secret (in `config`) holding `username:password` for pulling the image
    /// from a private registry (see `ServiceSource::DockerImage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_credentials: Option<String>,
}

impl DeploymentSnapshot {
    /// `service` with its desired state set back to what this snapshot ran: the image (for a
    /// service that runs an image; a git or template service keeps its source), settings,
    /// processes, volumes and endpoint. Returns it with the names of the fields that changed.
    /// Placement (`server_id`) is not a version's property and stays as it is.
    pub fn restore_onto(&self, service: &Service) -> (Service, Vec<&'static str>) {
        let (mut next, mut changed) = self.promote_onto(service);
        if next.volumes != self.volumes {
            next.volumes = self.volumes.clone();
            changed.push("volumes");
        }
        if next.endpoint != self.endpoint {
            next.endpoint = self.endpoint.clone();
            changed.push("endpoint");
        }
        (next, changed)
    }

    /// `service` (a promotion's target) with the version's desired state: the image (for a
    /// service that runs an image), settings and processes. Endpoint, volumes and server stay
    /// the target's. Returns it with the names of the fields that changed.
    pub fn promote_onto(&self, service: &Service) -> (Service, Vec<&'static str>) {
        let mut next = service.clone();
        let mut changed = Vec::new();
        if let (ServiceSource::DockerImage { image, .. }, Artifact::Image { image: ran }) =
            (&mut next.source, &self.artifact)
            && image != ran
        {
            *image = ran.clone();
            changed.push("image");
        }
        if next.settings != self.settings {
            next.settings = self.settings.clone();
            changed.push("settings");
        }
        if next.processes != self.processes {
            next.processes = self.processes.clone();
            changed.push("processes");
        }
        (next, changed)
    }

    /// The endpoint the platform applies to this version: none unless the service is public
    /// and has a port (as [`crate::endpoint::plan_service`]).
    pub fn applied_endpoint(&self) -> Option<&Endpoint> {
        match (&self.endpoint, self.settings.port, self.settings.is_public) {
            (Some(endpoint), Some(_), true) => Some(endpoint),
            _ => None,
        }
    }
}

/// One entry in a deployment's status history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    /// `None` for the creation entry.
    pub from: Option<DeploymentStatus>,
    pub to: DeploymentStatus,
    pub at: Timestamp,
    pub reason: Option<String>,
}

/// A request to cancel, recorded so a restarted reconciler still honours it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CancelRequest {
    pub at: Timestamp,
    pub by: Option<UserId>,
}

/// The mutable part of a deployment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeploymentState {
    pub status: DeploymentStatus,
    /// When the current status was entered.
    pub since: Timestamp,
    /// Absolute time by which the current phase must end; `None` outside in-progress phases.
    /// Stored so it is enforced across control-plane restarts.
    pub deadline: Option<Timestamp>,
    /// Why the deployment failed or was cancelled (or other context of the last change).
    pub reason: Option<String>,
    /// The image actually run: the snapshot's, or the one the build produced. Set once.
    pub image: Option<ImageRef>,
    /// The registry digest (`sha256:…`) of `image` as pulled for this deployment, when it
    /// came from a registry, or on a remote server the image id (`sha256:…`) its agent
    /// verified: what exactly ran, even if the tag moves later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    pub build_id: Option<BuildId>,
    pub cancel: Option<CancelRequest>,
    pub history: Vec<StatusChange>,
}

impl DeploymentState {
    /// Move to `to`, enforcing the transition table, recording history and the next deadline.
    pub fn transition(
        &mut self,
        to: DeploymentStatus,
        reason: Option<String>,
        settings: &ServiceSettings,
        now: Timestamp,
    ) -> Result<()> {
        if !self.status.can_transition_to(to) {
            return Err(Error::IllegalTransition {
                from: self.status,
                to,
            });
        }
        self.history.push(StatusChange {
            from: Some(self.status),
            to,
            at: now,
            reason: reason.clone(),
        });
        if !inherits_deadline(self.status, to) {
            self.deadline = phase_timeout(to, settings).map(|t| now.saturating_add(t));
        }
        self.status = to;
        self.since = now;
        if reason.is_some() {
            self.reason = reason;
        }
        Ok(())
    }

    /// Record the image the deployment runs. Refuses to change an image once set.
    pub fn set_image(&mut self, image: ImageRef) -> Result<()> {
        match &self.image {
            Some(existing) if *existing != image => Err(Error::Conflict(format!(
                "deployment image is already `{existing}`; refusing to change it to `{image}`"
            ))),
            _ => {
                self.image = Some(image);
                Ok(())
            }
        }
    }
}

/// An immutable deployment of a service, numbered per service (#1, #2, …).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub service_id: ServiceId,
    pub workspace_id: WorkspaceId,
    pub project_id: ProjectId,
    pub environment_id: EnvironmentId,
    pub number: u64,
    pub trigger: Trigger,
    pub created_at: Timestamp,
    pub snapshot: DeploymentSnapshot,
    pub state: DeploymentState,
}

impl Deployment {
    /// A new PENDING deployment of the service as it is now. Takes the service's next number;
    /// the caller persists the bumped counter in the same write (see the catalog).
    pub fn new(
        service: &Service,
        config: ResolvedConfig,
        trigger: Trigger,
        now: Timestamp,
    ) -> Self {
        let artifact = match &service.source {
            ServiceSource::DockerImage { image, .. } | ServiceSource::Template { image, .. } => {
                Artifact::Image {
                    image: image.clone(),
                }
            }
            ServiceSource::Git {
                repo_url,
                branch,
                dockerfile_path,
                build_context,
                credentials_secret,
            } => Artifact::Build {
                repo_url: repo_url.clone(),
                git_ref: branch.clone(),
                commit: match &trigger {
                    Trigger::AutoDeploy { commit, .. } => Some(commit.clone()),
                    _ => None,
                },
                dockerfile_path: dockerfile_path.clone(),
                build_context: build_context.clone(),
                credentials_secret: credentials_secret.clone(),
            },
        };
        let snapshot = DeploymentSnapshot {
            artifact,
            config,
            settings: service.settings.clone(),
            volumes: service.volumes.clone(),
            endpoint: service.endpoint.clone(),
            processes: service.processes.clone(),
            server_id: service.server_id,
            registry_credentials: service.source.registry_credentials().map(str::to_owned),
        };
        Self::from_snapshot(service, snapshot, trigger, now)
    }

    /// A rollback: a **new** deployment whose snapshot copies `earlier`'s image and config.
    pub fn rollback_of(
        service: &Service,
        earlier: &Deployment,
        by: Option<UserId>,
        now: Timestamp,
    ) -> Result<Self> {
        if earlier.service_id != service.id {
            return Err(InvalidInput::new(
                "deployment",
                "other_service",
                format!("deployment #{} belongs to another service", earlier.number),
            )
            .into());
        }
        let snapshot = earlier.runnable_snapshot()?;
        let trigger = Trigger::RollbackOf {
            deployment: earlier.id,
            number: earlier.number,
            by,
        };
        Ok(Self::from_snapshot(service, snapshot, trigger, now))
    }

    /// A promotion: a **new** deployment of `service` (the target, in another environment)
    /// running `source`'s version — its image (pinned to the digest it was pulled at, when
    /// known), settings and processes —
    /// with the target's own resolved `config` (resolved in the target's cascade) and the
    /// target's endpoint, volumes and server: domains, data and placement belong to the
    /// environment, not to the version.
    pub fn promotion_of(
        service: &Service,
        source: &Deployment,
        config: ResolvedConfig,
        by: Option<UserId>,
        now: Timestamp,
    ) -> Result<Self> {
        let mut snapshot = source.promotion_snapshot()?;
        snapshot.config = config;
        snapshot.endpoint = service.endpoint.clone();
        snapshot.volumes = service.volumes.clone();
        snapshot.server_id = service.server_id;
        let trigger = Trigger::PromotionFrom {
            deployment: source.id,
            environment: source.environment_id,
            by,
        };
        Ok(Self::from_snapshot(service, snapshot, trigger, now))
    }

    /// What a promotion of this deployment runs: its snapshot pinned to the image it ran, and
    /// to the digest it pulled, so a tag moved since cannot change what runs — neither in the
    /// promoted deployment nor in the target service's desired state
    /// ([`DeploymentSnapshot::promote_onto`]).
    pub fn promotion_snapshot(&self) -> Result<DeploymentSnapshot> {
        let mut snapshot = self.runnable_snapshot()?;
        if let (Artifact::Image { image }, Artifact::Image { .. }, Some(digest)) = (
            &mut snapshot.artifact,
            &self.snapshot.artifact,
            &self.state.image_digest,
        ) && image.digest().is_none()
            && let Ok(pinned) = ImageRef::parse(&format!("{image}@{digest}"))
        {
            *image = pinned;
        }
        Ok(snapshot)
    }

    /// This deployment's snapshot pinned to the image it ran, for rollback and promotion.
    fn runnable_snapshot(&self) -> Result<DeploymentSnapshot> {
        let image = match (&self.snapshot.artifact, &self.state.image) {
            (_, Some(image)) | (Artifact::Image { image }, None) => image.clone(),
            (Artifact::Build { .. }, None) => {
                return Err(InvalidInput::new(
                    "deployment",
                    "no_image",
                    format!(
                        "deployment #{} never produced an image (it ended {} before its build finished); there is nothing to run",
                        self.number, self.state.status
                    ),
                )
                .into());
            }
        };
        let mut snapshot = self.snapshot.clone();
        snapshot.artifact = Artifact::Image { image };
        Ok(snapshot)
    }

    fn from_snapshot(
        service: &Service,
        snapshot: DeploymentSnapshot,
        trigger: Trigger,
        now: Timestamp,
    ) -> Self {
        let image = match &snapshot.artifact {
            Artifact::Image { image } => Some(image.clone()),
            Artifact::Build { .. } => None,
        };
        let deadline = phase_timeout(DeploymentStatus::Pending, &snapshot.settings)
            .map(|t| now.saturating_add(t));
        Deployment {
            id: DeploymentId::new(),
            service_id: service.id,
            workspace_id: service.workspace_id,
            project_id: service.project_id,
            environment_id: service.environment_id,
            number: service.next_deployment_number,
            trigger,
            created_at: now,
            snapshot,
            state: DeploymentState {
                status: DeploymentStatus::Pending,
                since: now,
                deadline,
                reason: None,
                image,
                image_digest: None,
                build_id: None,
                cancel: None,
                history: vec![StatusChange {
                    from: None,
                    to: DeploymentStatus::Pending,
                    at: now,
                    reason: None,
                }],
            },
        }
    }

    pub fn status(&self) -> DeploymentStatus {
        self.state.status
    }

    /// Whether this deployment must be built before it can run.
    pub fn needs_build(&self) -> bool {
        matches!(self.snapshot.artifact, Artifact::Build { .. }) && self.state.image.is_none()
    }
}
