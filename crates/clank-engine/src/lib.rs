//! Clank's deploy engine: drives deployments through their lifecycle with the pure planner
//! (`clank_core::deploy::plan`), executing its commands through a `Runtime` and a `Proxy`.
//!
//! - [`Engine`]: deploy, rollback, cancel, events, deploy logs, and the reconciler loop
//!   (`run`), including recovery after a restart.
//! - [`health`]: probes run by the platform (HTTP, TCP, running-and-stable).
//! - [`RouteTable`]: the in-memory `Proxy` used when traffic reaches published ports directly.

mod engine;
pub mod events;
pub mod health;
mod routes;
mod workloads;

pub use engine::{Engine, EngineConfig, build_tag};
pub use events::{Event, EventKind, EventStream, LogEntry};
pub use routes::{RouteTable, gate_probe};
pub use workloads::workload_specs;
