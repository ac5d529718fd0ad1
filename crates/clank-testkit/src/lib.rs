//! Shared test suites and fixtures for Clank backends.
//!
//! - [`store`]: the `Store` contract, one public async fn per property, and
//!   [`store_contract_tests!`] to instantiate all of them as named tests for a backend.
//! - [`crash`]: the write protocol of the store crash test, whose child process is this
//!   package's `clank-store-crash-writer` binary and whose checker is `tests/crash.rs`.
//! - [`runtime`]: the `Runtime` contract, one public async fn per property, a [`runtime::Fixture`]
//!   per backend, and [`runtime_contract_tests!`] to instantiate them as named tests.
//! - [`proxy`]: the `Proxy` contract, one public async fn per property, a [`proxy::ProxyFixture`]
//!   per proxy, and [`proxy_contract_tests!`] to instantiate them as named tests.
//! - [`testapp`]: the busybox HTTP app every runtime test runs (files for native processes; with
//!   feature `docker`, the `clank-testapp` image built through the Docker API).
//! - [`gitrepo`]: local git repositories (`file://`) for build tests.
//! - [`githttp`]: those repositories served over git's smart HTTP on loopback.
//! - [`pebble`]: Debian's `pebble` ACME test CA on loopback.
//! - `registry` (feature `docker`): Debian's `docker-registry` on loopback with htpasswd auth
//!   and TLS, and test images pushed to it (and removed locally) for pull tests.
//! - [`second_engine`]: a second, private `dockerd` on this host (vfs, no default bridge, no
//!   firewall rules), stopped and removed on drop: a remote server's engine that has never
//!   seen the control plane's images.
//! - [`cleanup`]: async cleanup from `Drop`, on a runtime of its own.
//! - [`fakes`]: recording fakes of `Runtime`, `Proxy` and `ImageBuilder` (scripted probes,
//!   refusals, build outcomes and panics) for fast engine tests without Docker.
//! - [`http`]: a minimal GET client for probing workloads.
//! - [`service_images`]: PostgreSQL, MariaDB, Redis and WordPress images made from Debian's
//!   packages by `scripts/images/*.sh`, for template tests.
//! - `interpreters` (feature `docker`): Node.js and Python base images made from the host's
//!   own interpreters, for building detected apps without a registry.

pub mod cleanup;
pub mod crash;
pub mod fakes;
pub mod githttp;
pub mod gitrepo;
pub mod http;
pub mod https;
#[cfg(feature = "docker")]
pub mod interpreters;
pub mod pebble;
pub mod proxy;
#[cfg(feature = "docker")]
pub mod registry;
pub mod runtime;
pub mod second_engine;
pub mod service_images;
pub mod store;
pub mod testapp;
mod tls;
pub mod web;
