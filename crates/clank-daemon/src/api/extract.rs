//! What every handler takes apart first: JSON bodies and query strings whose rejections answer
//! in the API's error format, and the paths that name a workspace, project, environment,
//! service or numbered deployment (each one type for both the extractor and the OpenAPI
//! parameters, so the two cannot drift).

use std::fmt;

use axum::Json;
use axum::extract::Query;
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::model::Permission;

use super::auth::Principal;
use super::error::{ApiError, ApiResult};

/// `Json` whose rejections answer in our error format.
pub(super) struct Body<T>(pub(super) T);

impl<T, S> axum::extract::FromRequest<S> for Body<T>
where
    Json<T>: axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Body(Json::<T>::from_request(req, state).await?.0))
    }
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
