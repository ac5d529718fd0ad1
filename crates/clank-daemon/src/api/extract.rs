//! What every handler takes apart first: JSON bodies and query strings whose rejections answer
//! in the API's error format, and the addresses named by a path.

use axum::Json;
use axum::extract::{Path, Query};
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};

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

/// `{ws}/{p}/{e}/{s}`: a service's path.
pub(super) type SvcPath = Path<(String, String, String, String)>;

/// `{ws}/{p}/{e}/{s}/.../{n}`: a numbered deployment or build of a service.
pub(super) type DeployPath = Path<(String, String, String, String, u64)>;
