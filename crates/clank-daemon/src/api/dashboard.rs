//! What the dashboard (`crate::ui`) does to the platform: the REST handlers themselves (create a
//! service, deploy, roll back, follow a deployment, set a service's config). A page is one more
//! client of these, never a second path to the data.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use clank_api::{ConfigRequest, DeploymentView, ServiceSpec};
use clank_core::config::ConfigVarView;
use clank_core::model::Service;

use super::AppState;
use super::auth::Principal;
use super::error::ApiResult;
use super::extract::{Body, DeploymentPath, EnvironmentPath, ServicePath};

/// A service as the dashboard's paths name it (the API's `{ws}/{p}/{e}/{s}`).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct ServiceAt {
    pub(crate) ws: String,
    pub(crate) p: String,
    pub(crate) e: String,
    pub(crate) s: String,
}

impl ServiceAt {
    fn path(&self) -> ServicePath {
        ServicePath {
            ws: self.ws.clone(),
            p: self.p.clone(),
            e: self.e.clone(),
            s: self.s.clone(),
        }
    }

    fn deployment(&self, n: u64) -> DeploymentPath {
        DeploymentPath {
            ws: self.ws.clone(),
            p: self.p.clone(),
            e: self.e.clone(),
            s: self.s.clone(),
            n,
        }
    }
}

/// `POST …/environments/{e}/services`: a new service, checked and audited by the REST handler.
pub(crate) async fn create_service(
    st: &AppState,
    p: Principal,
    ws: &str,
    project: &str,
    env: &str,
    spec: ServiceSpec,
) -> ApiResult<Service> {
    let at = EnvironmentPath {
        ws: ws.to_owned(),
        p: project.to_owned(),
        e: env.to_owned(),
    };
    let (_, Json(s)) =
        super::services::create_service(p, State(st.clone()), Path(at), Body(spec)).await?;
    Ok(s)
}

/// `POST …/deployments`: a manual deploy, checked and audited by the REST handler.
pub(crate) async fn deploy(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
) -> ApiResult<DeploymentView> {
    let (_, Json(d)) = super::deployments::deploy(p, State(st.clone()), Path(at.path())).await?;
    Ok(d)
}

/// `POST …/deployments/{n}/rollback`, checked and audited by the REST handler.
pub(crate) async fn rollback(
    st: &AppState,
    p: Principal,
    at: &ServiceAt,
    n: u64,
) -> ApiResult<DeploymentView> {
    let (_, Json(d)) =
        super::deployments::rollback(p, State(st.clone()), Path(at.deployment(n))).await?;
    Ok(d)
}

/// `GET …/deployments/{n}/events`: the REST handler's Server-Sent Events (its stream limits
/// included), for the dashboard's live status cells.
pub(crate) async fn follow(st: &AppState, p: Principal, at: &ServiceAt, n: u64) -> Response {
    super::deployments::follow(p, State(st.clone()), Path(at.deployment(n)))
        .await
        .into_response()
}

/// `PATCH …/services/{s}/config`, checked, written and audited by the REST handler.
pub(crate) async fn set_service_config(
    st: &AppState,
    p: &Principal,
    at: &ServiceAt,
    req: ConfigRequest,
) -> ApiResult<Vec<ConfigVarView>> {
    let Json(vars) = super::config::write_service(p.clone(), st.clone(), &at.path(), req).await?;
    Ok(vars)
}
