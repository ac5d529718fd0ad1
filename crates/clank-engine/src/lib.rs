//! Clank's deploy engine: drives deployments through their lifecycle with the pure planner
//! (`clank_core::deploy::plan`), executing its commands through a `Runtime` and a `Proxy`.
//!
//! - [`Engine`]: deploy, rollback, cancel, events, deploy logs, and the reconciler loop
//!   (`run`), including recovery after a restart.
//! - [`Clock`]: where the engine reads the time (tokio's paused clock in tests).
//! - [`health`]: probes run by the platform (HTTP, TCP, running-and-stable), which are
//!   `clank_proxy::probe`: one implementation for the engine, the agent and cutover gates.
//! - [`RouteTable`]: the in-memory `Proxy` used when traffic reaches published ports directly.

pub mod clock;
mod engine;
pub mod events;
mod routes;
mod workloads;

pub use clank_proxy::probe as health;
pub use clock::Clock;
pub use engine::{Engine, EngineConfig, build_tag};
pub use events::{Event, EventKind, EventStream, LogEntry};
pub use routes::RouteTable;
pub use workloads::workload_specs;
