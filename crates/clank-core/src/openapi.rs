//! OpenAPI schemas (feature `openapi`) of the types whose JSON is a string in a syntax of their
//! own, written by hand because their serde impls are: the derive would describe the Rust
//! structure, not what goes on the wire.

use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::config::Scope;
use crate::image::ImageRef;

fn string_schema(description: &str, pattern: Option<&str>) -> RefOr<Schema> {
    let mut schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description));
    if let Some(p) = pattern {
        schema = schema.pattern(Some(p));
    }
    schema.into()
}

impl PartialSchema for ImageRef {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "An image reference: `[registry/]repository[:tag][@digest]`, e.g. `nginx:1.27`.",
            None,
        )
    }
}

impl ToSchema for ImageRef {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ImageRef")
    }
}

impl PartialSchema for Scope {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "A config scope: `<level>:<uuid>` with level `workspace`, `team`, `project`, \
             `environment` or `service`.",
            Some("^(workspace|team|project|environment|service):[0-9a-fA-F-]{36}$"),
        )
    }
}

impl ToSchema for Scope {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Scope")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_typed_schemas_match_their_json() {
        let image: ImageRef = "nginx:1.27".parse().unwrap();
        assert!(serde_json::to_value(&image).unwrap().is_string());
        let scope = Scope::Service(crate::id::ServiceId::new());
        let json = serde_json::to_value(scope).unwrap();
        let pattern = "^(workspace|team|project|environment|service):[0-9a-fA-F-]{36}$";
        let text = json.as_str().unwrap();
        let (level, id) = text.split_once(':').unwrap();
        assert_eq!(level, "service");
        assert_eq!(id.len(), 36, "{pattern} expects a hyphenated uuid");
        let schema = serde_json::to_value(<Scope as PartialSchema>::schema()).unwrap();
        assert_eq!(schema["type"], "string");
        assert_eq!(schema["pattern"], pattern);
    }
}
