//! What every handler takes apart first: JSON bodies and query strings whose rejections answer
//! in the API's error format, and the paths that name a workspace, project, environment,
//! service or numbered deployment (each one type for both the extractor and the OpenAPI
//! parameters, so the two cannot drift).

use std::fmt;

use axum::extract::Query;
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::model::Permission;

use super::auth::Principal;
use super::error::{ApiError, ApiResult};

/// A JSON body whose rejections answer in our error format: a value that does not fit names
/// its full path in the body as `field` (`source.image`, `volumes[1].mount_path`) with
/// serde's reason in the user's terms (never the parser's line and column of a body the user
/// may not have written: the CLI and dashboard write it for them).
pub(super) struct Body<T>(pub(super) T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid",
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(ApiError::from)?;
        json_body(&bytes).map(Body)
    }
}

/// `application/json` or `application/*+json`, parameters (`charset`) allowed: what axum's
/// `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    match essence.split_once('/') {
        Some((kind, sub)) => {
            kind.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
        }
        None => false,
    }
}

/// `bytes` as `T`, or the 422 naming where in the body the bad value is.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(bytes, &e))?;
    // Trailing characters after the value, as `serde_json::from_slice` refuses them.
    de.end().map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// A deserialization error as the API answers it: syntax errors say so (with where, which is
/// all there is to say); a value that does not fit names its path as `field` and says why.
fn json_error(bytes: &[u8], e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let inner = e.inner();
    let unprocessable = |message: String| {
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            message,
        )
    };
    if !matches!(inner.classify(), Category::Data) {
        return unprocessable(format!("the request body is not valid JSON: {inner}"));
    }
    let (field, message) = located(bytes, e.path(), &without_position(inner));
    let e = unprocessable(message);
    match field {
        Some(f) => e.field(f),
        None => e,
    }
}

/// serde_json's message without its ` at line L column C` suffix.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// The full path of the offending value and the message to show with it, from the path serde
/// reached and its message. A path stops short where serde buffers a value first (internally
/// tagged enums such as `source`): the message's own `image: …` prefix (a validator's field),
/// or the field a `missing field`/`unknown field` message names, completes it.
fn located(
    body: &[u8],
    path: &serde_path_to_error::Path,
    message: &str,
) -> (Option<String>, String) {
    use serde_path_to_error::Segment;
    let mut field = String::new();
    let mut value: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                field.push_str(&format!("[{index}]"));
                value = value.and_then(|v| v.get(*index).cloned());
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
                value = value.and_then(|v| v.get(key).cloned());
            }
            Segment::Unknown => {}
        }
    }
    let join = |field: &str, name: &str| {
        if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        }
    };
    // `unknown field `x`, expected …` and `missing field `x``: the named field, inside the path.
    for lead in ["unknown field `", "missing field `"] {
        if let Some(name) = message
            .strip_prefix(lead)
            .and_then(|rest| rest.split('`').next())
        {
            // An unknown key is already the path's last segment; a missing one is not.
            let named = field.rsplit(['.', ']']).next() == Some(name);
            let field = if named { field } else { join(&field, name) };
            return (Some(field), message.to_owned());
        }
    }
    // A validator's `InvalidInput` reads `name: why`: the name completes the path when the
    // value there is an object holding it, and is left out of the message either way.
    if let Some((name, why)) = message.split_once(": ")
        && !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
    {
        let first = name.split(['.', '[']).next().unwrap_or_default();
        let inside = value
            .as_ref()
            .and_then(serde_json::Value::as_object)
            .is_some_and(|o| o.contains_key(first));
        let field = if inside || field.is_empty() {
            join(&field, name)
        } else {
            field
        };
        return (Some(field), why.to_owned());
    }
    ((!field.is_empty()).then_some(field), message.to_owned())
}

/// `Query` whose rejections answer in our error format (422 naming the field).
pub(super) struct Params<T>(pub(super) T);

impl<T, S> axum::extract::FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Params(
            Query::<T>::from_request_parts(parts, state).await?.0,
        ))
    }
}

pub(super) fn project_addr(ws: &str, p: &str) -> ApiResult<ProjectAddress> {
    Ok(ProjectAddress::new(ws, p)?)
}

pub(super) fn env_addr(ws: &str, p: &str, e: &str) -> ApiResult<EnvironmentAddress> {
    Ok(EnvironmentAddress::new(ws, p, e)?)
}

pub(super) fn service_addr(ws: &str, p: &str, e: &str, s: &str) -> ApiResult<ServiceAddress> {
    Ok(ServiceAddress::new(ws, p, e, s)?)
}

/// `{ws}`: a workspace's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct WorkspacePath {
    /// workspace slug
    pub(super) ws: String,
}

/// `{ws}/{p}`: a project's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ProjectPath {
    /// workspace slug
    pub(super) ws: String,
    /// project slug
    pub(super) p: String,
}

impl ProjectPath {
    pub(super) fn addr(&self) -> ApiResult<ProjectAddress> {
        project_addr(&self.ws, &self.p)
    }

    /// The project, once `caller` may act on it (as [`ServicePath::authorize`]).
    pub(super) fn authorize(
        &self,
        caller: &Principal,
        need: Permission,
    ) -> ApiResult<ProjectAddress> {
        caller.in_workspace(&self.ws)?;
        caller.require(need)?;
        self.addr()
    }
}

impl fmt::Display for ProjectPath {
    /// The audit log's target: `ws/p`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ws, self.p)
    }
}

/// `{ws}/{p}/{e}`: an environment's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EnvironmentPath {
    /// workspace slug
    pub(super) ws: String,
    /// project slug
    pub(super) p: String,
    /// environment name
    pub(super) e: String,
}

impl EnvironmentPath {
    pub(super) fn addr(&self) -> ApiResult<EnvironmentAddress> {
        env_addr(&self.ws, &self.p, &self.e)
    }
}

impl fmt::Display for EnvironmentPath {
    /// The audit log's target: `ws/p/e`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.ws, self.p, self.e)
    }
}

/// `{ws}/{p}/{e}/{s}`: a service's path.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct ServicePath {
    /// workspace slug
    pub(super) ws: String,
    /// project slug
    pub(super) p: String,
    /// environment name
    pub(super) e: String,
    /// service slug
    pub(super) s: String,
}

impl ServicePath {
    pub(super) fn addr(&self) -> ApiResult<ServiceAddress> {
        service_addr(&self.ws, &self.p, &self.e, &self.s)
    }

    /// The service, for a reader or writer that needs nothing audited: `caller`'s token is for
    /// the path's workspace (else 404) and its role has `need` (else 403), in that order.
    pub(super) fn authorize(
        &self,
        caller: &Principal,
        need: Permission,
    ) -> ApiResult<ServiceAddress> {
        caller.in_workspace(&self.ws)?;
        caller.require(need)?;
        self.addr()
    }
}

impl fmt::Display for ServicePath {
    /// The audit log's target: `ws/p/e/s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.ws, self.p, self.e, self.s)
    }
}

/// `{ws}/{p}/{e}/{s}/deployments/{n}`: a numbered deployment of a service.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct DeploymentPath {
    /// workspace slug
    pub(super) ws: String,
    /// project slug
    pub(super) p: String,
    /// environment name
    pub(super) e: String,
    /// service slug
    pub(super) s: String,
    /// deployment number
    pub(super) n: u64,
}

impl DeploymentPath {
    pub(super) fn addr(&self) -> ApiResult<ServiceAddress> {
        service_addr(&self.ws, &self.p, &self.e, &self.s)
    }

    /// The deployment's service and number, once `caller` may act on it (as
    /// [`ServicePath::authorize`]).
    pub(super) fn authorize(
        &self,
        caller: &Principal,
        need: Permission,
    ) -> ApiResult<(ServiceAddress, u64)> {
        caller.in_workspace(&self.ws)?;
        caller.require(need)?;
        Ok((self.addr()?, self.n))
    }
}

impl fmt::Display for DeploymentPath {
    /// The audit log's target: `ws/p/e/s#n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}#{}", self.ws, self.p, self.e, self.s, self.n)
    }
}

/// `{ws}/{p}/{e}/{s}/builds/{n}`: a numbered build of a git service.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct BuildPath {
    /// workspace slug
    pub(super) ws: String,
    /// project slug
    pub(super) p: String,
    /// environment name
    pub(super) e: String,
    /// service slug
    pub(super) s: String,
    /// build number (v1, v2, ... as 1, 2, ...)
    pub(super) n: u64,
}

impl BuildPath {
    /// The build's service and number, once `caller` may act on it (as
    /// [`ServicePath::authorize`]).
    pub(super) fn authorize(
        &self,
        caller: &Principal,
        need: Permission,
    ) -> ApiResult<(ServiceAddress, u64)> {
        caller.in_workspace(&self.ws)?;
        caller.require(need)?;
        Ok((service_addr(&self.ws, &self.p, &self.e, &self.s)?, self.n))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use clank_api::{ServicePatch, ServiceSpec};

    use super::*;

    /// The status, `field` and message `body` is refused with, read as `T`.
    fn refused<T: serde::de::DeserializeOwned>(body: &str) -> (StatusCode, Option<String>, String) {
        let e = json_body::<T>(body.as_bytes())
            .err()
            .unwrap_or_else(|| panic!("accepted: {body}"));
        (e.status(), e.body().field.clone(), e.body().message.clone())
    }

    #[test]
    fn a_bad_image_names_its_full_path_and_the_rule_not_the_parser_position() {
        let (status, field, message) = refused::<ServiceSpec>(
            r#"{"slug": "web", "source": {"type": "docker_image", "image": "Bad Image!"}}"#,
        );
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(field.as_deref(), Some("source.image"), "{message}");
        assert!(
            message.contains("`Bad Image!` is not a valid image reference"),
            "{message}"
        );
        for parser_talk in ["line 1", "column", "Failed to deserialize", "image: "] {
            assert!(!message.contains(parser_talk), "{parser_talk}: {message}");
        }
    }

    #[test]
    fn nested_values_name_their_full_path() {
        for (body, want) in [
            (
                r#"{"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "volumes": [{"name": "a", "mount_path": "/a"}, {"name": "b", "mount_path": 7}]}"#,
                "volumes[1].mount_path",
            ),
            (
                r#"{"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "settings": {"port": "eighty"}}"#,
                "settings.port",
            ),
            (
                r#"{"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "settings": {"prot": 80}}"#,
                "settings.prot",
            ),
            (
                r#"{"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "processes": {"worker": {"replicas": -1}}}"#,
                "processes.worker.replicas",
            ),
            (
                r#"{"slug": "web", "source": {"type": "docker_image"}}"#,
                "source.image",
            ),
            (
                r#"{"source": {"type": "docker_image", "image": "nginx"}}"#,
                "slug",
            ),
            (
                r#"{"slug": "web", "source": {"type": "docker_image", "image": "nginx"}, "colour": 1}"#,
                "colour",
            ),
        ] {
            let (status, field, message) = refused::<ServiceSpec>(body);
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(field.as_deref(), Some(want), "{body}: {message}");
            assert!(!message.contains(" at line "), "{message}");
        }
        let (_, field, message) = refused::<ServicePatch>(
            r#"{"endpoint": {"mode": "byo_proxy", "host_ip": "nope", "host_port": 80}}"#,
        );
        assert!(
            field.as_deref().is_some_and(|f| f.starts_with("endpoint")),
            "{field:?}: {message}"
        );
    }

    #[test]
    fn a_body_that_is_not_json_says_so_without_a_field() {
        for body in ["{\"name\": ", "not json", "{} trailing"] {
            let (status, field, message) = refused::<ServicePatch>(body);
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(field, None, "{body}");
            assert!(message.contains("not valid JSON"), "{body}: {message}");
        }
    }

    #[test]
    fn json_content_types_are_those_axum_accepts() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::CONTENT_TYPE, v.parse().unwrap());
            json_content_type(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!json_content_type(&axum::http::HeaderMap::new()));
    }
}
