//! JSON errors: every failure is `{"code", "message", "field"}` with the status its kind maps
//! to, so clients handle one shape. Internal errors never leak details a user can't act on.

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clank_core::{Error, ErrorKind};
use clank_platform::identity::IdentityError;

pub use clank_api::ErrorBody;

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                message: message.into(),
                field: None,
            },
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.body.field = Some(field.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// What clients are told: code, message and the offending field (the dashboard shows them
    /// next to the field).
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let kind = e.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = if kind == ErrorKind::Internal {
            tracing::error!(error = %e, "Internal error answering a request.");
            "internal error; the daemon's log has the details".to_owned()
        } else {
            e.to_string()
        };
        ApiError {
            status,
            body: ErrorBody {
                code: kind.code().to_owned(),
                message,
                field: e.field().map(str::to_owned),
            },
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        let message = e.to_string();
        match e {
            IdentityError::AlreadyInitialised => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            IdentityError::Forbidden { field, .. } => {
                let e = ApiError::forbidden(message);
                match field {
                    Some(f) => e.field(f),
                    None => e,
                }
            }
            IdentityError::LastOwner { .. } => {
                ApiError::new(StatusCode::CONFLICT, "last_owner", message)
            }
            IdentityError::NotMember { .. } | IdentityError::TokenNotFound(_) => {
                ApiError::not_found(message)
            }
            IdentityError::BadCredentials => ApiError::unauthorized(message),
            IdentityError::Platform(e) => e.into(),
            // A refusal this mapping does not know yet.
            _ => ApiError::forbidden(message),
        }
    }
}

impl From<clank_core::InvalidInput> for ApiError {
    fn from(e: clank_core::InvalidInput) -> Self {
        ApiError::from(Error::from(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let text = r.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                status,
                "payload_too_large",
                "the request body is larger than the 1 MiB limit",
            );
        }
        // serde's messages name the offending field (`unknown field `prot``, `missing field
        // `slug``, `...at line 1 column 9` with a path for nested data).
        let field = field_of(&text);
        let status = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            status
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let mut e = ApiError::new(status, "invalid", text);
        e.body.field = field;
        e
    }
}

impl From<BytesRejection> for ApiError {
    /// A body that could not be read: too large (413), or broken off.
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than the 1 MiB limit",
            );
        }
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", r.body_text())
    }
}

/// The field serde names in a deserialization message: `unknown field `x``, `missing field
/// `y``, or the path before the first `: ` (`limit: invalid digit found in string`).
fn field_of(text: &str) -> Option<String> {
    text.split('`')
        .nth(1)
        .filter(|_| text.contains("field `"))
        .map(str::to_owned)
        .or_else(|| {
            text.split(": ")
                .nth(1)
                .and_then(|p| p.split(':').next())
                .filter(|p| !p.contains(' '))
                .map(str::to_owned)
        })
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", text.clone());
        e.body.field = field_of(&text);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
