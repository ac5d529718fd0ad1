//! The wire types of Clank's interfaces: every REST request and response body, the views the
//! platform shows (secrets masked), and the bindings' operations. One type per concept; the
//! daemon, the CLI and the bindings all use these.
//!
//! Every response type derives both `Serialize` and `Deserialize`, so a client parses what the
//! daemon wrote with the same type. A type carrying a secret (a config value, a token, a
//! webhook secret) has a `Debug` that never prints it. With the `openapi` feature every type
//! derives `utoipa::ToSchema` (query strings `utoipa::IntoParams`): the daemon's OpenAPI
//! document describes exactly these.

pub mod audit;
pub mod builds;
pub mod config;
pub mod declarations;
pub mod deployments;
pub mod environments;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod members;
pub mod ops;
pub mod plans;
pub mod previews;
pub mod projects;
mod request_json;
pub mod servers;
pub mod services;
pub mod system;
pub mod teams;
pub mod templates;
pub mod terminal;
pub mod webhooks;

pub use builds::{BuildLogView, BuildRef, BuildView, ServiceWebhook};
pub use config::{ConfigEdit, ConfigRequest};
pub use deployments::{DeploymentView, LogEntry};
pub use error::ErrorBody;
pub use events::{Event, EventKind};
pub use ops::{Request, TargetRef};
pub use request_json::request_from_json;
pub use services::{ServicePatch, ServiceSpec};
pub use templates::{
    NewStack, StackUpgrade, StackUpgradeView, StackView, TemplateSummary, TemplateView,
};
