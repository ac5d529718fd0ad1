//! Requests from JSON text, as the bindings send them (embedded and remote alike): a bad value
//! is refused naming its JSON path, the same in every binding and mode.

use clank_core::InvalidInput;
use serde_json::Value;

use crate::Request;

/// Parse a JSON request. Anything malformed is [`InvalidInput`] naming where: `request` (not
/// JSON, not an object), `op` (missing or unknown), or the JSON path of the bad value, dotted
/// with `[i]` for array items (`settings.port`, `volumes[1].mount_path`, `changes[0].key`).
/// The path of a value inside an operation's body (`spec`, `patch`, `stack`, `clone`,
/// `settings`, `declaration`) starts inside it, as in the REST API (whose request body that
/// is) and as the platform's own validation names fields: `settings.port`, not
/// `spec.settings.port`.
pub fn request_from_json(s: &str) -> Result<Request, InvalidInput> {
    let value: Value = serde_json::from_str(s)
        .map_err(|e| InvalidInput::new("request", "json", format!("bad request: {e}")))?;
    request_from_value(&value)
}

/// The request fields that are an operation's body (see [`request_from_json`]).
const BODIES: [&str; 6] = ["spec", "patch", "stack", "clone", "settings", "declaration"];

fn request_from_value(value: &Value) -> Result<Request, InvalidInput> {
    use serde::Deserialize;
    let error = match Request::deserialize(value) {
        Ok(request) => return Ok(request),
        Err(e) => e.to_string(),
    };
    let invalid = |field: &str, message: String| InvalidInput::new(field, "json", message);
    let Some(object) = value.as_object() else {
        return Err(invalid("request", format!("bad request: {error}")));
    };
    // The operation first: without a known one nothing else can be judged.
    match object.get("op") {
        None => return Err(invalid("op", error)),
        Some(op) => {
            if let Err(e) = Request::deserialize(&serde_json::json!({ "op": op })) {
                let e = e.to_string();
                if !e.starts_with("missing field") {
                    return Err(invalid("op", e));
                }
            }
        }
    }
    let mut path = locate(value, &error);
    // A missing field is named inside the object that lacks it.
    if let Some(missing) = missing_field(&error)
        && get(value, &path).is_some_and(Value::is_object)
    {
        path.push(Segment::Key(missing.to_owned()));
    }
    if path.len() > 1
        && let Segment::Key(k) = &path[0]
        && BODIES.contains(&k.as_str())
    {
        path.remove(0);
    }
    if path.is_empty() {
        return Err(invalid("request", format!("bad request: {error}")));
    }
    let mut field = String::new();
    for segment in &path {
        match segment {
            Segment::Key(k) if field.is_empty() => field.push_str(k),
            Segment::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Segment::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    Err(invalid(&field, error))
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn get<'a>(value: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, s| match s {
        Segment::Key(k) => v.get(k.as_str()),
        Segment::Index(i) => v.get(*i),
    })
}

/// `root` without the child `child` of the node at `path`.
fn without(root: &Value, path: &[Segment], child: &Segment) -> Value {
    let mut copy = root.clone();
    let node = path.iter().try_fold(&mut copy, |v, s| match s {
        Segment::Key(k) => v.get_mut(k.as_str()),
        Segment::Index(i) => v.get_mut(*i),
    });
    match (node, child) {
        (Some(Value::Object(m)), Segment::Key(k)) => {
            m.remove(k);
        }
        (Some(Value::Array(a)), Segment::Index(i)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
    copy
}

fn missing_field(error: &str) -> Option<&str> {
    error.strip_prefix("missing field `")?.split('`').next()
}

/// The path of the value `Request` rejects (with `error`) in `root`.
///
/// Serde loses the path inside internally tagged enums such as [`Request`] (its content is
/// buffered before the variant is known; `serde_path_to_error` cannot see through that,
/// dtolnay/path-to-error#1), so the path is found by asking the deserializer itself: going
/// down from the root, the culprit child is the one whose removal makes `error` go away (the
/// request parses, or fails otherwise, e.g. on that field now missing). A nested internally
/// tagged enum's tag (`source.type`) also changes the error when removed; when several
/// children qualify, removing them all names the tag (`missing field`), which is set aside.
/// Errors only, and bounded: at most [`MAX_PROBES`] trial parses.
fn locate(root: &Value, error: &str) -> Vec<Segment> {
    use serde::Deserialize;
    let rejects = |v: &Value| Request::deserialize(v).err().map(|e| e.to_string());
    let mut path: Vec<Segment> = Vec::new();
    let mut probes = 0usize;
    loop {
        let children: Vec<Segment> = match get(root, &path) {
            Some(Value::Object(m)) => m
                .keys()
                .filter(|k| !path.is_empty() || k.as_str() != "op")
                .map(|k| Segment::Key(k.clone()))
                .collect(),
            Some(Value::Array(a)) => (0..a.len()).map(Segment::Index).collect(),
            _ => return path,
        };
        let mut culprit = None;
        let mut candidates = Vec::new();
        for child in children {
            if probes >= MAX_PROBES {
                return path;
            }
            probes += 1;
            match rejects(&without(root, &path, &child)) {
                None => {
                    culprit = Some(child);
                    break;
                }
                Some(e) if e != error => candidates.push(child),
                Some(_) => {}
            }
        }
        if culprit.is_none() && candidates.len() > 1 {
            // Remove them all: an internally tagged enum reports its missing tag first.
            let mut all = root.clone();
            for child in candidates.iter().rev() {
                all = without(&all, &path, child);
            }
            if let Some(tag) = rejects(&all).as_deref().and_then(missing_field) {
                candidates.retain(|c| *c != Segment::Key(tag.to_owned()));
            }
        }
        match culprit.or_else(|| candidates.into_iter().next()) {
            Some(child) => path.push(child),
            None => return path,
        }
    }
}

/// Trial parses [`locate`] may make for one bad request.
const MAX_PROBES: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// The field `request_from_json` names for a bad request.
    fn field(request: Value) -> String {
        request_from_json(&request.to_string()).unwrap_err().field
    }

    fn service(spec: Value) -> Value {
        serde_json::json!({"op": "create_service", "environment": "shop", "spec": spec})
    }

    #[test]
    fn a_bad_request_names_the_json_path_of_the_bad_value() {
        use serde_json::json;
        let image = json!({"type": "docker_image", "image": "nginx:1.27"});
        // Nested in an operation's body: the path starts inside it (as REST and validation).
        assert_eq!(
            field(service(
                json!({"slug": "api", "source": image, "settings": {"port": "x"}})
            )),
            "settings.port"
        );
        assert_eq!(
            field(service(
                json!({"slug": "api", "source": image, "settings": {"port": 70000}})
            )),
            "settings.port"
        );
        assert_eq!(
            field(service(json!({"slug": "api", "source": image, "volumes": [
                {"name": "data", "mount_path": "/data"},
                {"name": "logs", "mount_path": 5},
            ]}))),
            "volumes[1].mount_path"
        );
        // Inside an internally tagged enum (`source.type`), past its tag.
        assert_eq!(
            field(service(
                json!({"slug": "api", "source": {"type": "docker_image", "image": 5}})
            )),
            "source.image"
        );
        assert_eq!(
            field(service(json!({"slug": "api", "source": {"type": "ftp"}}))),
            "source.type"
        );
        assert_eq!(field(service(json!({"source": image}))), "slug");
        assert_eq!(
            field(service(
                json!({"slug": "api", "source": image, "colour": "red"})
            )),
            "colour"
        );
        assert_eq!(field(service(json!("api"))), "spec");
        // Outside a body: the request's own fields.
        assert_eq!(
            field(json!({"op": "deploy", "service": "shop/api", "extra": 1})),
            "extra"
        );
        assert_eq!(
            field(json!({"op": "rollback", "service": "shop/api", "number": "one"})),
            "number"
        );
        assert_eq!(field(json!({"op": "get_service"})), "service");
        assert_eq!(
            field(
                json!({"op": "set_config", "target": {"service": "shop/api"},
                "changes": [{"key": "A", "value": "1"}, {"key": "B", "value": 2}]})
            ),
            "changes[1].value"
        );
        // The operation itself, and what is not a request at all.
        assert_eq!(field(json!({"op": "no_such_op"})), "op");
        assert_eq!(field(json!({"op": 5})), "op");
        assert_eq!(field(json!({"service": "shop/api"})), "op");
        assert_eq!(field(json!(["op"])), "request");
        let e = request_from_json("{not json").unwrap_err();
        assert_eq!(e.field, "request");
        // A good request still parses.
        assert!(
            request_from_json(&service(json!({"slug": "api", "source": image})).to_string())
                .is_ok()
        );
    }
}
