//! The OpenAPI 3.1 document of the REST API, served at `GET /v1/openapi.json`. Its paths come
//! from the same list as the router (`api::endpoints`, each handler's `#[utoipa::path]`); this
//! file adds what is not an endpoint: the title, the bearer scheme and the error shape. Every
//! body's schema is derived from its `clank-api` (or `clank-core`) type.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(title = "Clank API", description = "The Clank control plane's REST API."),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

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

/// The document before any endpoint is added to it.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    super::endpoints().into_openapi()
}

/// The document serialized once, when the router is built.
#[derive(Debug, Clone)]
pub(super) struct Served(Arc<str>);

impl Served {
    pub(super) fn new(document: utoipa::openapi::OpenApi) -> Self {
        let json = serde_json::to_string(&document).expect("the OpenAPI document serializes");
        Served(json.into())
    }

    pub(super) async fn serve(self) -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "application/json")],
            self.0.to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_its_frame_and_every_endpoint() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Clank API");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
        let paths = doc["paths"].as_object().unwrap();
        let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert!(operations >= 52, "only {operations} operations documented");
    }

    /// The path comes from the annotation, its parameters are written beside it: a `{name}`
    /// in a path must be documented as a path parameter, and no operation shares an id.
    #[test]
    fn every_path_parameter_is_documented() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                assert!(ids.insert(id), "{method} {path}: operationId used twice");
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
        }
    }

    /// A body's schema is a named type (a `$ref`), a list of them, or a typed primitive: never
    /// a bare `object` that says nothing of the JSON.
    fn typed(schema: &serde_json::Value) -> bool {
        if schema.get("$ref").is_some() {
            return true;
        }
        match schema["type"].as_str() {
            Some("array") => typed(&schema["items"]),
            Some("object") | None => false,
            Some(_) => true,
        }
    }

    fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, x) in map {
                    match (k.as_str(), x.as_str()) {
                        ("$ref", Some(r)) => out.push(r),
                        _ => refs(x, out),
                    }
                }
            }
            serde_json::Value::Array(xs) => xs.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn every_body_has_a_typed_schema_and_every_ref_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut bodies = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let mut contents: Vec<(String, &serde_json::Value)> = Vec::new();
                if let Some(c) = op["requestBody"]["content"].as_object() {
                    contents.extend(c.iter().map(|(t, c)| (format!("request {t}"), c)));
                }
                for (status, response) in op["responses"].as_object().unwrap() {
                    if let Some(c) = response["content"].as_object() {
                        let named = |(t, c)| (format!("{status} {t}"), c);
                        contents.extend(c.iter().map(named));
                    }
                }
                for (what, content) in contents {
                    if what.ends_with("text/event-stream") {
                        continue;
                    }
                    let schema = &content["schema"];
                    let binary = what.ends_with("application/octet-stream");
                    assert!(
                        typed(schema) || binary,
                        "{method} {path} {what}: untyped body schema {schema}"
                    );
                    bodies += 1;
                }
            }
        }
        assert!(bodies >= 100, "only {bodies} bodies documented");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("`{r}` points outside components.schemas"));
            assert!(schemas.contains_key(name), "`{r}` does not resolve");
        }
    }
}
