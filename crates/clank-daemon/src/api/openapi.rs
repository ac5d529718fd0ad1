//! The OpenAPI 3.1 document of the REST API, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /v1/openapi.json`. Bodies of clank-core types are `Object`
//! here (clank-core does not depend on utoipa); the error shape is described exactly.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{audit, builds, instance, members, routes, servers, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Clank API", description = "The Clank control plane's REST API."),
    paths(
        routes::health,
        instance::init,
        instance::create_workspace,
        routes::whoami,
        webhooks::github,
        webhooks::gitlab,
        webhooks::gitea,
        webhooks::rotate_secret,
        audit::list,
        servers::list,
        servers::create,
        servers::get,
        servers::join_token,
        servers::revoke,
        servers::offer_release,
        members::list_members,
        members::add_member,
        members::update_member,
        members::remove_member,
        members::list_tokens,
        members::create_token,
        members::revoke_token,
        routes::workspace_config,
        routes::set_workspace_config,
        routes::list_projects,
        routes::create_project,
        routes::get_project,
        routes::delete_project,
        routes::project_config,
        routes::set_project_config,
        routes::list_environments,
        routes::create_environment,
        routes::environment_config,
        routes::set_environment_config,
        routes::list_services,
        routes::create_service,
        routes::get_service,
        routes::update_service,
        routes::service_config,
        routes::set_service_config,
        routes::resolved_config,
        routes::list_deployments,
        routes::deploy,
        routes::get_deployment,
        routes::cancel,
        routes::rollback,
        routes::deploy_log,
        routes::follow,
        builds::list_builds,
        builds::get_build,
        builds::service_webhook,
        routes::service_logs,
        routes::service_exec,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
pub(super) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

pub(super) async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(method, path)` the router serves, read from the router's source, so a route added
    /// without an annotation fails here.
    fn routed() -> Vec<(String, String)> {
        let src = include_str!("routes.rs");
        let body = &src[src.find("pub(super) fn routes()").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        let svc = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}";
        let mut out = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let chunk = chunk.trim();
            let (path, rest) = if let Some(r) = chunk.strip_prefix("&format!(\"{svc}") {
                let end = r.find("\")").unwrap();
                (
                    format!("{svc}{}", &r[..end])
                        .replace("{{", "{")
                        .replace("}}", "}"),
                    &r[end..],
                )
            } else if let Some(r) = chunk.strip_prefix("svc") {
                (svc.to_owned(), r)
            } else {
                let r = chunk.strip_prefix('"').unwrap();
                let end = r.find('"').unwrap();
                (r[..end].to_owned(), &r[end..])
            };
            let rest = rest.replace("axum::routing::", "");
            for method in ["get", "post", "patch", "delete", "put"] {
                for prefix in [
                    format!(" {method}("),
                    format!(".{method}("),
                    format!("\n{method}("),
                ] {
                    if rest.contains(&prefix) {
                        out.push((method.to_owned(), path.clone()));
                        break;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_in_the_document() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Clank API");
        let paths = doc["paths"].as_object().unwrap();
        let routes = routed();
        assert!(routes.len() >= 38, "{routes:?}");
        for (method, path) in &routes {
            if path == "/v1/openapi.json" {
                continue;
            }
            let op = &paths
                .get(path)
                .unwrap_or_else(|| panic!("{path} missing from the document"))[method];
            assert!(op.is_object(), "{method} {path} missing from the document");
            for p in path.split('{').skip(1) {
                let name = &p[..p.find('}').unwrap()];
                assert!(
                    op["parameters"].as_array().is_some_and(|ps| ps
                        .iter()
                        .any(|x| x["name"] == name && x["in"] == "path")),
                    "{method} {path}: path parameter `{name}` undocumented"
                );
            }
        }
        let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(
            documented,
            routes.len() - 1,
            "operations documented but not routed"
        );
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }
}
