//! The deployment lifecycle: statuses, the legal transitions, and the pure planner.

mod status;

pub use status::DeploymentStatus;
