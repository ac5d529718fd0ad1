//! Clank's platform core: the domain model, validation, the deployment lifecycle and its pure
//! planner, the config cascade, secrets, and the traits every backend implements.
//!
//! Architecture invariant: this crate performs no I/O and names no backend. Backends
//! (`clank-store`, `clank-docker`, `clank-proxy`, ...) depend on it, never the reverse.

pub mod address;
pub mod builder;
pub mod colour;
pub mod config;
pub mod deploy;
pub mod endpoint;
pub mod error;
pub mod id;
pub mod image;
pub mod model;
#[cfg(feature = "openapi")]
mod openapi;
pub mod probe;
pub mod procfile;
pub mod proxy;
pub mod runtime;
pub mod secret;
pub mod store;
pub mod time;
pub mod validate;

pub use address::{AddressDefaults, EnvironmentAddress, ProjectAddress, ServiceAddress};
pub use error::{Error, ErrorKind, InvalidInput, Result, RuntimeFailure};
pub use image::ImageRef;
pub use time::Timestamp;
