//! The domain model: what users create and what the platform records.
//!
//! ```text
//! Workspace (members with roles; teams group members)
//! └── Project (slug; private network clank-{workspace scope}--{slug}; soft delete)
//!     └── Environment (production, staging, previews)
//!         └── Service (source = image | git | template)
//!             ├── Builds v1, v2, …      (git services)
//!             ├── Deployments #1, #2, … (immutable snapshots)
//!             ├── Config (cascade, see `crate::config`)
//!             ├── Volumes
//!             └── Endpoint (one access mode)
//! Stack (a template instance: its services, template version and stored variable values)
//! Server (the platform host, or a remote machine running clank-agent)
//! AuditEvent (who changed what in a workspace, and how it ended; never altered)
//! CanvasLayout (one user's arrangement of a project's cards on the dashboard)
//! ```

mod audit;
mod build;
mod canvas;
mod deployment;
mod plan;
mod preview;
mod project;
mod server;
mod service;
mod stack;
mod token;
mod workspace;

pub use audit::{Actor, AuditEvent, AuditOutcome};
pub use build::{Build, BuildStatus, COMMIT_SUBJECT_MAX, commit_subject};
pub use canvas::{CanvasLayout, CardPosition, MAX_CANVAS_CARDS, MAX_CANVAS_COORDINATE};
pub use deployment::{
    Artifact, CancelRequest, Deployment, DeploymentSnapshot, DeploymentState, RestoredState,
    StatusChange, Trigger,
};
pub use plan::{PLAN_TTL_MS, PromotionPlan, PromotionStep, ReadRevision};
pub use preview::{
    DEFAULT_PATTERN, DEFAULT_TTL_MINUTES, MAX_TTL_MINUTES, PreviewSettings,
    preview_environment_name,
};
pub use project::{Environment, EnvironmentKind, Project};
pub use server::{Server, ServerKind, ServerStatus, ServerUsage};
pub use service::{
    AccessMode, Endpoint, HealthCheck, ProcessSpec, Service, ServiceSettings, ServiceSource,
    TlsMode, VolumeMount,
};
pub use stack::{Stack, StackValue};
pub use token::ApiToken;
pub use workspace::{Instance, Member, Permission, Role, Team, User, Workspace};
