//! The one place bollard's errors become `clank_core::Error`s, so every engine fault maps to
//! the same [`RuntimeFailure`] wherever it happens, with the engine's own message kept.

use clank_core::{Error, RuntimeFailure};

/// What an engine call was about, for the error message and for the few statuses whose
/// meaning depends on it (a 404 about an image is `ImageMissing`, about anything else
/// `NotFound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    Engine,
    Container,
    Image,
    Network,
    Volume,
    Exec,
}

impl Subject {
    fn noun(self) -> &'static str {
        match self {
            Subject::Engine => "engine",
            Subject::Container => "container",
            Subject::Image => "image",
            Subject::Network => "network",
            Subject::Volume => "volume",
            Subject::Exec => "exec",
        }
    }
}

/// The HTTP status of an engine answer, if the error is one.
pub(crate) fn status_of(err: &bollard::errors::Error) -> Option<u16> {
    match err {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Map a bollard error about `subject` `name` to a Clank error.
///
/// - 404 → `ImageMissing` for images (and for "No such image" from a create), else `NotFound`;
/// - 409 "already in use" (a name taken) → `NameConflict`; other 409s (not running, in use) →
///   `Other` with the engine's reason;
/// - "port is already allocated" / "address already in use" (any status) → `PortInUse`;
/// - transport failures (no socket, connection refused or reset, permission denied) →
///   `EngineUnavailable`, with what to check;
/// - a request timeout → `Timeout`; anything else → `Other`.
pub fn engine_error(err: bollard::errors::Error, subject: Subject, name: &str) -> Error {
    use bollard::errors::Error as B;
    let what = if name.is_empty() {
        subject.noun().to_owned()
    } else {
        format!("{} `{name}`", subject.noun())
    };
    // Transport failures read as sentences of their own when not about one object.
    let about = if subject == Subject::Engine && name.is_empty() {
        String::new()
    } else {
        format!("{what}: ")
    };
    match err {
        B::DockerResponseServerError {
            status_code,
            message,
        } => from_status(status_code, &message, subject, &what),
        B::HyperLegacyError { err } => Error::runtime(
            RuntimeFailure::EngineUnavailable,
            format!("{about}the connection to the Docker engine failed: {err}; {UNREACHABLE_HINT}"),
        ),
        B::IOError { err } => {
            let hint = if err.kind() == std::io::ErrorKind::PermissionDenied {
                "this user may not use the Docker socket: add it to the `docker` group or run \
                 as root"
            } else {
                UNREACHABLE_HINT
            };
            Error::runtime(
                RuntimeFailure::EngineUnavailable,
                format!("{about}the connection to the Docker engine failed: {err}; {hint}"),
            )
        }
        B::SocketNotFoundError(path) => Error::runtime(
            RuntimeFailure::EngineUnavailable,
            format!("{about}no Docker socket at {path}; {UNREACHABLE_HINT}"),
        ),
        B::HyperResponseError { err } => Error::runtime(
            RuntimeFailure::EngineUnavailable,
            format!("{about}the Docker engine connection broke: {err}; {UNREACHABLE_HINT}"),
        ),
        B::RequestTimeoutError => Error::runtime(
            RuntimeFailure::Timeout,
            format!("{about}the Docker engine did not answer in time"),
        ),
        B::DockerStreamError { error } => from_message(&error, subject, &what),
        other => Error::runtime(
            RuntimeFailure::Other,
            format!("{what}: Docker engine error: {other}"),
        ),
    }
}

const UNREACHABLE_HINT: &str = "is the Docker daemon running? (`systemctl status docker`; set \
                                DOCKER_HOST=unix:///path/to/docker.sock for another socket)";

fn from_status(status: u16, message: &str, subject: Subject, what: &str) -> Error {
    if is_port_in_use(message) {
        return Error::runtime(
            RuntimeFailure::PortInUse,
            format!(
                "{what}: the host port to publish is already in use: {message}; free the port \
                 or publish another one"
            ),
        );
    }
    let failure = match status {
        404 if subject == Subject::Image || message.contains("No such image") => {
            RuntimeFailure::ImageMissing
        }
        404 => RuntimeFailure::NotFound,
        409 if message.contains("already in use") => RuntimeFailure::NameConflict,
        _ => RuntimeFailure::Other,
    };
    Error::runtime(
        failure,
        format!("{what}: Docker engine answered {status}: {message}"),
    )
}

fn from_message(message: &str, subject: Subject, what: &str) -> Error {
    if is_port_in_use(message) {
        return from_status(500, message, subject, what);
    }
    Error::runtime(
        RuntimeFailure::Other,
        format!("{what}: Docker engine error: {message}"),
    )
}

fn is_port_in_use(message: &str) -> bool {
    message.contains("port is already allocated") || message.contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> bollard::errors::Error {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message: message.to_owned(),
        }
    }

    fn failure(err: bollard::errors::Error, subject: Subject) -> RuntimeFailure {
        engine_error(err, subject, "x")
            .runtime_failure()
            .unwrap_or(RuntimeFailure::Other)
    }

    #[test]
    fn statuses_map_to_distinct_failures_keeping_the_engine_message() {
        let cases = [
            (
                server(404, "No such container: x"),
                Subject::Container,
                RuntimeFailure::NotFound,
            ),
            (
                server(404, "No such image: nope:1"),
                Subject::Container,
                RuntimeFailure::ImageMissing,
            ),
            (
                server(404, "manifest unknown"),
                Subject::Image,
                RuntimeFailure::ImageMissing,
            ),
            (
                server(
                    409,
                    "Conflict. The container name \"/x\" is already in use by container \"abc\"",
                ),
                Subject::Container,
                RuntimeFailure::NameConflict,
            ),
            (
                server(409, "Container abc is not running"),
                Subject::Exec,
                RuntimeFailure::Other,
            ),
            (
                server(
                    500,
                    "driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:8080 failed: port is already allocated",
                ),
                Subject::Container,
                RuntimeFailure::PortInUse,
            ),
            (
                server(
                    500,
                    "Error starting userland proxy: listen tcp4 127.0.0.1:8080: bind: address already in use",
                ),
                Subject::Container,
                RuntimeFailure::PortInUse,
            ),
            (
                bollard::errors::Error::RequestTimeoutError,
                Subject::Engine,
                RuntimeFailure::Timeout,
            ),
            (
                bollard::errors::Error::SocketNotFoundError("/nope.sock".into()),
                Subject::Engine,
                RuntimeFailure::EngineUnavailable,
            ),
            (
                bollard::errors::Error::IOError {
                    err: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
                },
                Subject::Engine,
                RuntimeFailure::EngineUnavailable,
            ),
        ];
        for (err, subject, want) in cases {
            let shown = err.to_string();
            assert_eq!(failure(err, subject), want, "{shown}");
        }
        let e = engine_error(
            server(409, "Container abc is not running"),
            Subject::Exec,
            "w",
        );
        assert!(
            e.to_string().contains("Container abc is not running"),
            "{e}"
        );
        assert!(e.to_string().contains("exec `w`"), "{e}");
    }

    #[test]
    fn permission_denied_says_how_to_get_access() {
        let e = engine_error(
            bollard::errors::Error::IOError {
                err: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            },
            Subject::Engine,
            "",
        );
        assert_eq!(e.runtime_failure(), Some(RuntimeFailure::EngineUnavailable));
        assert!(e.to_string().contains("docker` group"), "{e}");
    }
}
