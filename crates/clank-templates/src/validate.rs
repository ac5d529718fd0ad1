//! The rules a template obeys beyond its shape. Each error names the file, the field and the
//! rule; clank-core's validators check what clank-core also stores (slugs, images, env keys,
//! mount paths, settings).

use std::collections::{BTreeMap, BTreeSet};

use clank_core::image::ImageRef;
use clank_core::validate;

use crate::error::TemplateError;
use crate::format::{Role, ServiceTemplate, Template, Variable};
use crate::interpolate::{self, Segment};

/// Fewest and most bytes of a generated secret.
pub const SECRET_BYTES: std::ops::RangeInclusive<u32> = 16..=128;

/// Where the official images of databases keep their data. A template running one of these
/// images must mount a volume exactly there, or the data lives in the container and is lost
/// at the next deploy.
pub const DATA_PATHS: &[(&str, &str)] = &[
    ("postgres", "/var/lib/postgresql/data"),
    ("mysql", "/var/lib/mysql"),
    ("mariadb", "/var/lib/mysql"),
    ("mongo", "/data/db"),
    ("redis", "/data"),
    ("clickhouse/clickhouse-server", "/var/lib/clickhouse"),
];

/// The data path of a database image of the default registry, if it is one.
pub fn data_path(image: &ImageRef) -> Option<&'static str> {
    if image.registry_or_default() != clank_core::image::DEFAULT_REGISTRY {
        return None;
    }
    let repo = image.repository();
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    DATA_PATHS
        .iter()
        .find(|(r, _)| *r == repo)
        .map(|(_, path)| *path)
}

/// Parse an image that names exactly one version: a tag other than `latest`, or a digest.
pub(crate) fn pinned_image(
    file: &str,
    field: &str,
    image: &str,
) -> Result<ImageRef, TemplateError> {
    let parsed = validate::validate_image_ref(field, image)
        .map_err(|e| TemplateError::invalid(file, "", e))?;
    if parsed.digest().is_none() {
        match parsed.tag() {
            None => {
                return Err(TemplateError::new(
                    file,
                    field,
                    "unpinned",
                    format!(
                        "must pin a tag (`{image}:<version>`); an untagged image is \"latest\""
                    ),
                ));
            }
            Some(tag) if tag.eq_ignore_ascii_case("latest") => {
                return Err(TemplateError::new(
                    file,
                    field,
                    "latest",
                    "must pin a tag, not \"latest\"",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(parsed)
}

pub(crate) fn validate(t: &Template) -> Result<(), TemplateError> {
    let file = t.file.as_str();
    let inv = |parent: &str, e| TemplateError::invalid(file, parent, e);
    validate::validate_slug("name", &t.name).map_err(|e| inv("", e))?;
    validate::validate_display_name("title", &t.title).map_err(|e| inv("", e))?;
    validate::validate_display_name("version", &t.version).map_err(|e| inv("", e))?;
    validate::validate_slug("category", &t.category).map_err(|e| inv("", e))?;
    if t.description.trim().is_empty() {
        return Err(TemplateError::new(
            file,
            "description",
            "empty",
            "must say in a sentence what the template runs",
        ));
    }
    if t.services.is_empty() {
        return Err(TemplateError::new(
            file,
            "services",
            "empty",
            "a template has at least one `[[services]]`",
        ));
    }

    let mut slugs = BTreeSet::new();
    for (i, s) in t.services.iter().enumerate() {
        let field = format!("services[{i}]");
        validate::validate_slug("slug", &s.slug).map_err(|e| inv(&field, e))?;
        if !slugs.insert(s.slug.as_str()) {
            return Err(TemplateError::new(
                file,
                format!("{field}.slug"),
                "duplicate",
                format!("two services are called `{}`", s.slug),
            ));
        }
    }
    let apps = t.services.iter().filter(|s| s.role == Role::App).count();
    if apps != 1 {
        return Err(TemplateError::new(
            file,
            "services",
            "one_app",
            format!(
                "a template has exactly one service with role = \"app\" (it is named after the \
                 stack), not {apps}"
            ),
        ));
    }
    let routed = t.services.iter().filter(|s| s.routed).count();
    if routed > 1 && !t.multiple_routed {
        return Err(TemplateError::new(
            file,
            "services",
            "multiple_routed",
            format!(
                "{routed} services are routed; route one, or set `multiple_routed = true` at the \
                 top if each needs its own domain"
            ),
        ));
    }

    for (name, var) in &t.variables {
        let field = format!("variables.{name}");
        if !interpolate::is_variable_name(name) || name == "stack" || name == "service" {
            return Err(TemplateError::new(
                file,
                field,
                "charset",
                "a variable name is lowercase letters, digits and `_`, not starting with a digit, \
                 and not `stack` or `service`",
            ));
        }
        match var {
            Variable::Secret { bytes, .. } if !SECRET_BYTES.contains(bytes) => {
                return Err(TemplateError::new(
                    file,
                    format!("{field}.bytes"),
                    "range",
                    format!(
                        "a secret has {} to {} bytes, not {bytes}",
                        SECRET_BYTES.start(),
                        SECRET_BYTES.end()
                    ),
                ));
            }
            Variable::Dns { service } | Variable::Url { service } => {
                let Some(target) = t.service(service) else {
                    return Err(unknown_service(file, &format!("{field}.service"), service));
                };
                if matches!(var, Variable::Url { .. }) && target.settings.port.is_none() {
                    return Err(TemplateError::new(
                        file,
                        format!("{field}.service"),
                        "requires_port",
                        format!("`{service}` has no port, so it has no URL"),
                    ));
                }
            }
            Variable::Input {
                default: Some(v), ..
            } => validate::validate_env_value(&format!("{field}.default"), v)
                .map_err(|e| inv("", e))?,
            _ => {}
        }
    }

    for (i, s) in t.services.iter().enumerate() {
        validate_service(t, &format!("services[{i}]"), s)?;
    }
    start_order(&t.services).map_err(|cycle| {
        TemplateError::new(
            file,
            "services.depends_on",
            "cycle",
            format!("dependency cycle: {}", cycle.join(" -> ")),
        )
    })?;
    Ok(())
}

fn unknown_service(file: &str, field: &str, service: &str) -> TemplateError {
    TemplateError::new(
        file,
        field,
        "unknown_service",
        format!("no service of this template is called `{service}`"),
    )
}

fn validate_service(t: &Template, field: &str, s: &ServiceTemplate) -> Result<(), TemplateError> {
    let file = t.file.as_str();
    let inv = |parent: &str, e| TemplateError::invalid(file, parent, e);
    s.settings
        .validate()
        .map_err(|e| inv(&format!("{field}.settings"), e))?;
    if s.routed && s.settings.port.is_none() {
        return Err(TemplateError::new(
            file,
            format!("{field}.routed"),
            "requires_port",
            "a routed service needs `settings.port`",
        ));
    }

    let mut paths = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (j, v) in s.volumes.iter().enumerate() {
        let vf = format!("{field}.volumes[{j}]");
        validate::validate_slug("name", &v.name).map_err(|e| inv(&vf, e))?;
        let path = validate::validate_mount_path("path", &v.path).map_err(|e| inv(&vf, e))?;
        if !names.insert(v.name.as_str()) {
            return Err(TemplateError::new(
                file,
                format!("{vf}.name"),
                "duplicate",
                format!("two volumes are called `{}`", v.name),
            ));
        }
        if !paths.insert(path) {
            return Err(TemplateError::new(
                file,
                format!("{vf}.path"),
                "duplicate",
                format!("two volumes are mounted at `{}`", v.path),
            ));
        }
    }
    if let Some(expected) = data_path(&s.image) {
        if !paths.contains(expected) {
            return Err(TemplateError::new(
                file,
                format!("{field}.volumes"),
                "data_path",
                format!(
                    "`{}` keeps its data in `{expected}`; mount a volume there, or the data is \
                     lost at the next deploy",
                    s.image.repository()
                ),
            ));
        }
    }

    for (j, dep) in s.depends_on.iter().enumerate() {
        let df = format!("{field}.depends_on[{j}]");
        if dep == &s.slug {
            return Err(TemplateError::new(
                file,
                df,
                "cycle",
                format!("dependency cycle: {dep} -> {dep}"),
            ));
        }
        if t.service(dep).is_none() {
            return Err(unknown_service(file, &df, dep));
        }
    }

    for (key, value) in &s.env {
        let ef = format!("{field}.env.{key}");
        validate::validate_env_key(&ef, key).map_err(|e| inv("", e))?;
        validate::validate_env_value(&ef, value).map_err(|e| inv("", e))?;
        check_references(t, &ef, value, true)?;
    }
    if let Some(command) = &s.command {
        let cf = format!("{field}.command");
        if command.first().is_none_or(String::is_empty) {
            return Err(TemplateError::new(
                file,
                cf,
                "empty",
                "a command needs at least a program name",
            ));
        }
        for (j, arg) in command.iter().enumerate() {
            check_references(t, &format!("{cf}[{j}]"), arg, false)?;
        }
    }
    Ok(())
}

/// Every reference in `value` resolves; secrets only where `secrets_allowed` (env, which the
/// platform stores as secret config — a command is stored in the clear).
fn check_references(
    t: &Template,
    field: &str,
    value: &str,
    secrets_allowed: bool,
) -> Result<(), TemplateError> {
    let file = t.file.as_str();
    let segments = interpolate::parse(value)
        .map_err(|why| TemplateError::new(file, field, "reference", why))?;
    for segment in segments {
        match segment {
            Segment::Var(name) => match t.variables.get(&name) {
                None => {
                    return Err(TemplateError::new(
                        file,
                        field,
                        "undefined_variable",
                        format!("`${{{name}}}` is not defined under [variables]"),
                    ));
                }
                Some(var) if var.is_secret() && !secrets_allowed => {
                    return Err(TemplateError::new(
                        file,
                        field,
                        "secret_in_command",
                        format!(
                            "`${{{name}}}` is secret and a command is stored in the clear; pass \
                             it in env and read it from there (`sh -c '… \"$KEY\"'`)"
                        ),
                    ));
                }
                Some(_) => {}
            },
            Segment::Host(slug) => {
                if t.service(&slug).is_none() {
                    return Err(unknown_service(file, field, &slug));
                }
            }
            Segment::Port(slug) => match t.service(&slug) {
                None => return Err(unknown_service(file, field, &slug)),
                Some(s) if s.settings.port.is_none() => {
                    return Err(TemplateError::new(
                        file,
                        field,
                        "requires_port",
                        format!("`{slug}` has no port"),
                    ));
                }
                Some(_) => {}
            },
            Segment::Text(_) | Segment::Stack => {}
        }
    }
    Ok(())
}

/// Indexes of `services` in start order (dependencies first, companions before apps when
/// either works, then file order), or the slugs of a cycle.
pub(crate) fn start_order(services: &[ServiceTemplate]) -> Result<Vec<usize>, Vec<String>> {
    let index: BTreeMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (s.slug.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = services
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .collect()
        })
        .collect();
    let mut placed = vec![false; services.len()];
    let mut order = Vec::with_capacity(services.len());
    while order.len() < services.len() {
        let ready = (0..services.len())
            .filter(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]))
            .min_by_key(|&i| (services[i].role == Role::App, i));
        match ready {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => return Err(find_cycle(services, &deps, &placed)),
        }
    }
    Ok(order)
}

/// Walk unplaced dependencies from an unplaced service until one repeats.
fn find_cycle(services: &[ServiceTemplate], deps: &[Vec<usize>], placed: &[bool]) -> Vec<String> {
    let Some(mut at) = (0..services.len()).find(|&i| !placed[i]) else {
        return Vec::new();
    };
    let mut path: Vec<usize> = Vec::new();
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<String> = path[pos..]
                .iter()
                .map(|&i| services[i].slug.clone())
                .collect();
            cycle.push(services[at].slug.clone());
            return cycle;
        }
        path.push(at);
        match deps[at].iter().find(|&&d| !placed[d]) {
            Some(&next) => at = next,
            None => return path.iter().map(|&i| services[i].slug.clone()).collect(),
        }
    }
}
