//! One module per command group; each turns its arguments into API calls and prints the
//! answer through [`crate::app::App`].

pub(crate) mod audit;
pub(crate) mod config;
pub(crate) mod declare;
pub(crate) mod deletion;
pub(crate) mod deploy;
pub(crate) mod environments;
pub(crate) mod members;
pub(crate) mod previews;
pub(crate) mod projects;
pub(crate) mod promote;
pub(crate) mod servers;
pub(crate) mod services;
pub(crate) mod session;
pub(crate) mod teams;
pub(crate) mod templates;
pub(crate) mod tokens;
pub(crate) mod webhook;
pub(crate) mod workloads;
