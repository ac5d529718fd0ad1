//! Choosing the port a native workload listens on.
//!
//! A native process has no network namespace, so the port it listens on *is* the host port:
//! the spec's `publish.host_port` when set, otherwise a free one. Which port to use is passed
//! in `PORT`; the spec's `port` (the in-container port) only says that the workload listens at
//! all, since two replicas could not both listen on it here.
//!
//! Availability is checked by binding the wildcard address, which conflicts with a listener
//! on any local address. The port is released before the process starts, so another program
//! can still take it in between; the process then fails to bind and exits, which shows up as
//! an exit like any other.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use clank_core::runtime::WorkloadSpec;
use clank_core::{Error, Result, RuntimeFailure};

/// The port for this workload, or `None` if it does not listen (no `port`, no `publish`).
pub(crate) fn choose(spec: &WorkloadSpec) -> Result<Option<u16>> {
    let requested = spec.publish.and_then(|p| p.host_port).filter(|p| *p != 0);
    if let Some(port) = requested {
        return match TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))) {
            Ok(_) => Ok(Some(port)),
            Err(e) if e.kind() == ErrorKind::AddrInUse => Err(Error::runtime(
                RuntimeFailure::PortInUse,
                format!(
                    "workload `{}`: host port {port} is already in use; stop what listens \
                     there, choose another `publish.host_port`, or leave it empty for a free one",
                    spec.name
                ),
            )),
            Err(e) => Err(Error::runtime(
                RuntimeFailure::StartFailed,
                format!(
                    "workload `{}`: cannot use host port {port}: {e} (ports below 1024 need \
                     privileges)",
                    spec.name
                ),
            )),
        };
    }
    if spec.publish.is_none() && spec.port.is_none() {
        return Ok(None);
    }
    let listener =
        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).map_err(|e| {
            Error::runtime(
                RuntimeFailure::StartFailed,
                format!("workload `{}`: no free port to listen on: {e}", spec.name),
            )
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("local address of a bound socket: {e}")))?
        .port();
    Ok(Some(port))
}
