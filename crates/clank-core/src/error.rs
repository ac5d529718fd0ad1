//! The one error type of clank-core, with a `kind()` every interface maps the same way.

use std::fmt;

/// What went wrong, coarsely: the part every interface (HTTP, gRPC, Python, Node) maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Invalid,
    Unauthorized,
    Forbidden,
    Unavailable,
    Timeout,
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind maps to in the REST API.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid => 422,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind a [`code`](Self::code) names, for clients reading a JSON error.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Invalid,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    /// A stable lowercase code (`not_found`, `conflict`, ...) used in JSON errors and bindings.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejected input: which field, which rule, and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// Dotted path of the offending field, e.g. `service.health_check_path`.
    pub field: String,
    /// Short machine-readable rule name, e.g. `too_long`, `charset`, `reserved`.
    pub rule: &'static str,
    /// Human explanation including the offending value where it is safe to show.
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        InvalidInput {
            field: field.into(),
            rule,
            message: message.into(),
        }
    }

    /// Prefix the field path, so nested validators compose (`volumes[2]` + `.mount_path`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Errors produced by clank-core and by the stores implementing its traits.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("conflict: {0}")]
    Conflict(String),
    /// A compare-and-swap write lost a race; the caller re-reads and retries.
    #[error("write conflict on `{key}`: the record changed since it was read")]
    WriteConflict { key: String },
    #[error("illegal deployment transition {from} -> {to}")]
    IllegalTransition {
        from: crate::deploy::DeploymentStatus,
        to: crate::deploy::DeploymentStatus,
    },
    #[error("secret: {0}")]
    Secret(String),
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("corrupt record `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    /// A workload runtime (Docker, native processes, a remote agent) refused or failed.
    #[error("{message}")]
    Runtime {
        failure: RuntimeFailure,
        message: String,
    },
    /// Something did not finish in the time it was given (a wait on a deployment).
    #[error("{0}")]
    Timeout(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// An error another Clank process reported (a daemon's REST answer), as it was said: its
    /// kind, message and offending field.
    #[error("{message}")]
    Reported {
        kind: ErrorKind,
        message: String,
        field: Option<String>,
    },
}

/// The distinct ways a runtime operation fails, so callers (and users) can act on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuntimeFailure {
    /// The engine (Docker daemon, agent) cannot be reached.
    EngineUnavailable,
    /// The image is not present and cannot be pulled.
    ImageMissing,
    /// The host port to publish is taken by something else.
    PortInUse,
    /// A workload with that name exists but belongs to someone else.
    NameConflict,
    /// The workload (or network, volume) does not exist.
    NotFound,
    /// The runtime accepted the request but the workload could not start.
    StartFailed,
    /// The runtime did not answer in time.
    Timeout,
    /// This runtime cannot do what was asked (e.g. network isolation for native processes).
    Unsupported,
    Other,
}

impl Error {
    pub fn runtime(failure: RuntimeFailure, message: impl Into<String>) -> Self {
        Error::Runtime {
            failure,
            message: message.into(),
        }
    }

    /// The runtime failure, for errors that came from a runtime.
    pub fn runtime_failure(&self) -> Option<RuntimeFailure> {
        match self {
            Error::Runtime { failure, .. } => Some(*failure),
            _ => None,
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) | Error::WriteConflict { .. } | Error::IllegalTransition { .. } => {
                ErrorKind::Conflict
            }
            Error::Secret(_) => ErrorKind::Internal,
            Error::StoreUnavailable(_) => ErrorKind::Unavailable,
            Error::Timeout(_) => ErrorKind::Timeout,
            Error::Corrupt { .. } | Error::Internal(_) => ErrorKind::Internal,
            Error::Reported { kind, .. } => *kind,
            Error::Runtime { failure, .. } => match failure {
                RuntimeFailure::EngineUnavailable => ErrorKind::Unavailable,
                RuntimeFailure::ImageMissing | RuntimeFailure::NotFound => ErrorKind::NotFound,
                RuntimeFailure::PortInUse | RuntimeFailure::NameConflict => ErrorKind::Conflict,
                RuntimeFailure::Timeout => ErrorKind::Timeout,
                RuntimeFailure::Unsupported => ErrorKind::Invalid,
                RuntimeFailure::StartFailed | RuntimeFailure::Other => ErrorKind::Internal,
            },
        }
    }

    pub fn not_found(what: &'static str, id: impl fmt::Display) -> Self {
        Error::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// The offending field, for errors that have one (JSON `field`, binding attribute).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid(e) => Some(&e.field),
            Error::Reported { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_distinct_http_status_and_code() {
        let kinds = [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Invalid,
            ErrorKind::Unauthorized,
            ErrorKind::Forbidden,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Internal,
        ];
        let statuses: std::collections::BTreeSet<_> =
            kinds.iter().map(|k| k.http_status()).collect();
        let codes: std::collections::BTreeSet<_> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(statuses.len(), kinds.len());
        assert_eq!(codes.len(), kinds.len());
        assert!(
            kinds
                .iter()
                .filter(|k| **k != ErrorKind::Internal)
                .all(|k| k.http_status() < 500
                    || matches!(k, ErrorKind::Unavailable | ErrorKind::Timeout))
        );
    }

    #[test]
    fn a_passed_deadline_is_a_timeout_not_a_conflict() {
        let e = Error::Timeout("deployment #1 of `shop/api` is still PENDING after 5 s".into());
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!((e.kind().code(), e.kind().http_status()), ("timeout", 504));
        assert_eq!(e.field(), None);
        assert_eq!(
            e.to_string(),
            "deployment #1 of `shop/api` is still PENDING after 5 s"
        );
    }

    #[test]
    fn invalid_input_is_a_4xx_naming_the_field() {
        let e: Error = InvalidInput::new("slug", "charset", "must be lowercase")
            .within("project")
            .into();
        assert_eq!(e.kind().http_status(), 422);
        assert_eq!(e.field(), Some("project.slug"));
        assert_eq!(e.to_string(), "project.slug: must be lowercase");
    }
}
