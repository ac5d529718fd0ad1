//! Clank's Docker Engine runtime: workloads as containers, through bollard over the local unix
//! socket, negotiating the API version with the engine (Docker 20.10 speaks 1.41).
//!
//! - [`DockerRuntime`] implements `clank_core::runtime::Runtime`: idempotent start by name
//!   (adopting a container of the same owner, refusing one of another), pulls from registries
//!   with credentials, a deadline and progress lines (its errors say which
//!   image, which registry and why), a short fallback pull in `start`, CPU/memory limits (swap = memory, so the limit is an OOM kill),
//!   restart policies, ports published on a host address, a project network with DNS
//!   aliases, named volumes; a failed start leaves no container behind.
//! - [`DockerImages`]: the engine's images as archives (save streamed out, load streamed in),
//!   how an image reaches a remote server's engine.
//! - [`naming`]: the names Clank gives containers and networks, and the checks that keep
//!   anything Docker would refuse or misread away from the engine.
//! - [`build`]: [`DockerImageBuilder`], the `ImageBuilder` for git services (clone, detect
//!   the framework, generate a Dockerfile, build through the engine's `/build`).
//! - [`error`]: the single mapping from engine errors to `RuntimeFailure`s.
//!
//! - Volume copies (a cloned environment asked to keep its data) through the engine's
//!   archive API, with nothing pulled or run: see `volume_copy`.
//!
//! Containers carry their `Owner` as `clank.*` labels, so a restarted control plane lists and
//! controls what an earlier one started. Volumes are never removed except by `remove_volume`.

pub mod build;
mod container;
pub mod error;
mod images;
mod logs;
pub mod naming;
mod pull;
mod resources;
mod runtime;
mod terminal;
mod volume_copy;

pub use build::{BuildSettings, DockerImageBuilder, FRAMEWORK_BASE_IMAGES};
pub use images::DockerImages;
pub use naming::{container_name, project_network_name};
pub use runtime::{DEFAULT_SOCKET, DockerRuntime, SCOPE_LABEL};
