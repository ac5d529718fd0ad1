//! Addresses (`workspace/project/environment/service`): the one string the CLI, the REST paths
//! and the bindings use to name a project, an environment or a service.
//!
//! # Forms
//!
//! The caller says which level it expects: a command that deploys takes a [`ServiceAddress`], one
//! that sets environment-scoped config takes an [`EnvironmentAddress`], one that lists services
//! takes a [`ProjectAddress`]. The string alone cannot: `shop/api` (project/service) and
//! `shop/staging` (project/environment) have the same shape.
//!
//! Short forms leave out segments in one fixed order, the **workspace first, then the
//! environment**; the project, and the service of a service address, are always written. What is
//! left out comes from [`AddressDefaults`] (`default` and `production` unless configured).
//!
//! | level | segments | form | example | canonical (`Display`) |
//! |---|---|---|---|---|
//! | service | 4 | `workspace/project/environment/service` | `acme/shop/staging/api` | `acme/shop/staging/api` |
//! | service | 3 | `project/environment/service` | `shop/staging/api` | `default/shop/staging/api` |
//! | service | 2 | `project/service` | `shop/api` | `default/shop/production/api` |
//! | service | 1 | `service` | `api` | error `ambiguous`: the project is unknown |
//! | environment | 3 | `workspace/project/environment` | `acme/shop/staging` | `acme/shop/staging` |
//! | environment | 2 | `project/environment` | `shop/staging` | `default/shop/staging` |
//! | environment | 1 | `project` | `shop` | `default/shop/production` |
//! | project | 2 | `workspace/project` | `acme/shop` | `acme/shop` |
//! | project | 1 | `project` | `shop` | `default/shop` |
//!
//! # Errors
//!
//! Errors about the shape have field `address`: `empty`, `too_long`, `leading_slash`,
//! `trailing_slash`, `empty_segment` (`a//b`), `traversal` (a `.` or `..` segment),
//! `too_many_segments`, `ambiguous` (too few), and `format` (a short form where only the canonical
//! form is accepted). Each segment is then a slug ([`validate_slug`]; the workspace
//! [`validate_workspace_slug`]) checked with field `address.workspace`, `address.project`,
//! `address.environment` or `address.service`. Defaults are checked the same way when used.
//!
//! # Canonical form
//!
//! `Display` always prints the full form. `FromStr` and serde accept *only* that form: a stored or
//! transmitted address must not change meaning with the defaults of whoever reads it. Short forms
//! are for people, through each type's `parse(s, &defaults)`.

use std::fmt;
use std::str::FromStr;

use crate::error::InvalidInput;
use crate::validate::{SLUG_MAX_LEN, show, validate_slug, validate_workspace_slug};

/// Workspace of short addresses unless configured otherwise.
pub const DEFAULT_WORKSPACE: &str = "default";
/// Environment of short addresses unless configured otherwise.
pub const DEFAULT_ENVIRONMENT: &str = "production";
/// Longest address: four slugs and three `/`.
pub const ADDRESS_MAX_LEN: usize = 4 * SLUG_MAX_LEN + 3;

/// The segments a short address leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressDefaults {
    pub workspace: String,
    pub environment: String,
}

impl Default for AddressDefaults {
    fn default() -> Self {
        AddressDefaults {
            workspace: DEFAULT_WORKSPACE.to_owned(),
            environment: DEFAULT_ENVIRONMENT.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Project,
    Environment,
    Service,
}

impl Level {
    fn noun(self) -> &'static str {
        match self {
            Level::Project => "project",
            Level::Environment => "environment",
            Level::Service => "service",
        }
    }

    fn forms(self) -> &'static str {
        match self {
            Level::Project => "`project` or `workspace/project`",
            Level::Environment => {
                "`project`, `project/environment` or `workspace/project/environment`"
            }
            Level::Service => {
                "`project/service`, `project/environment/service` or \
                 `workspace/project/environment/service`"
            }
        }
    }

    fn canonical_form(self) -> &'static str {
        match self {
            Level::Project => "`workspace/project`",
            Level::Environment => "`workspace/project/environment`",
            Level::Service => "`workspace/project/environment/service`",
        }
    }

    fn min_segments(self) -> usize {
        match self {
            Level::Project | Level::Environment => 1,
            Level::Service => 2,
        }
    }

    fn max_segments(self) -> usize {
        match self {
            Level::Project => 2,
            Level::Environment => 3,
            Level::Service => 4,
        }
    }
}

/// Split `s` into its segments, checking only the shape (not the slugs).
fn split(s: &str, level: Level) -> Result<Vec<&str>, InvalidInput> {
    let err = |rule: &'static str, why: String| {
        Err(InvalidInput::new(
            "address",
            rule,
            format!(
                "{} is not a {noun} address: {why}; a {noun} address is {forms}",
                show(s),
                noun = level.noun(),
                forms = level.forms()
            ),
        ))
    };
    if s.is_empty() {
        return Err(InvalidInput::new(
            "address",
            "empty",
            format!(
                "must not be empty; a {} address is {}",
                level.noun(),
                level.forms()
            ),
        ));
    }
    if s.len() > ADDRESS_MAX_LEN {
        return err(
            "too_long",
            format!("it is {} bytes, over {ADDRESS_MAX_LEN}", s.len()),
        );
    }
    if s.starts_with('/') {
        return err(
            "leading_slash",
            "it starts with `/` (an address is not a path)".to_owned(),
        );
    }
    if s.ends_with('/') {
        return err("trailing_slash", "it ends with `/`".to_owned());
    }
    let segments: Vec<&str> = s.split('/').collect();
    if segments.iter().any(|seg| seg.is_empty()) {
        return err("empty_segment", "it has an empty segment (`//`)".to_owned());
    }
    if segments.iter().any(|seg| *seg == "." || *seg == "..") {
        return err(
            "traversal",
            "`.` and `..` are path traversal, not names; an address is not a path".to_owned(),
        );
    }
    if segments.len() > level.max_segments() {
        return err(
            "too_many_segments",
            format!(
                "it has {} segments, at most {} are allowed",
                segments.len(),
                level.max_segments()
            ),
        );
    }
    if segments.len() < level.min_segments() {
        return err(
            "ambiguous",
            format!("{} alone does not say which project it belongs to", show(s)),
        );
    }
    Ok(segments)
}

/// Check a canonical address has every segment.
fn require_canonical(s: &str, segments: &[&str], level: Level) -> Result<(), InvalidInput> {
    if segments.len() == level.max_segments() {
        return Ok(());
    }
    Err(InvalidInput::new(
        "address",
        "format",
        format!(
            "{} is a short form; here only the full form {} is accepted, so its meaning does not \
             depend on configured defaults",
            show(s),
            level.canonical_form()
        ),
    ))
}

/// A segment given in the address: validated as the slug it must be.
fn given(role: &'static str, value: &str) -> Result<String, InvalidInput> {
    let field = format!("address.{role}");
    if role == "workspace" {
        validate_workspace_slug(&field, value)?;
    } else {
        validate_slug(&field, value)?;
    }
    Ok(value.to_owned())
}

/// A segment taken from the defaults: validated too, saying where it came from.
fn defaulted(role: &'static str, value: &str) -> Result<String, InvalidInput> {
    given(role, value).map_err(|mut e| {
        e.message = format!(
            "the default {role} (used because the address leaves it out) is invalid: {}",
            e.message
        );
        e
    })
}

/// A project: `workspace/project`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectAddress {
    workspace: String,
    project: String,
}

impl ProjectAddress {
    /// An address from its segments, each validated.
    pub fn new(workspace: &str, project: &str) -> Result<Self, InvalidInput> {
        Ok(ProjectAddress {
            workspace: given("workspace", workspace)?,
            project: given("project", project)?,
        })
    }

    /// Parse `project` or `workspace/project` (see the module docs).
    pub fn parse(s: &str, defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let segments = split(s, Level::Project)?;
        Self::from_segments(&segments, defaults)
    }

    fn from_segments(segments: &[&str], defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let (workspace, project) = match *segments {
            [w, p] => (given("workspace", w)?, p),
            [p] => (defaulted("workspace", &defaults.workspace)?, p),
            _ => unreachable!("split bounds the segment count"),
        };
        Ok(ProjectAddress {
            workspace,
            project: given("project", project)?,
        })
    }

    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    pub fn project(&self) -> &str {
        &self.project
    }

    /// The environment `environment` of this project.
    pub fn environment(&self, environment: &str) -> Result<EnvironmentAddress, InvalidInput> {
        Ok(EnvironmentAddress {
            project: self.clone(),
            environment: given("environment", environment)?,
        })
    }

    /// The segments in order, e.g. for a REST path.
    pub fn segments(&self) -> [&str; 2] {
        [&self.workspace, &self.project]
    }
}

/// An environment of a project: `workspace/project/environment`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct EnvironmentAddress {
    project: ProjectAddress,
    environment: String,
}

impl EnvironmentAddress {
    /// An address from its segments, each validated.
    pub fn new(workspace: &str, project: &str, environment: &str) -> Result<Self, InvalidInput> {
        ProjectAddress::new(workspace, project)?.environment(environment)
    }

    /// Parse `project`, `project/environment` or `workspace/project/environment` (see the module
    /// docs).
    pub fn parse(s: &str, defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let segments = split(s, Level::Environment)?;
        Self::from_segments(&segments, defaults)
    }

    fn from_segments(segments: &[&str], defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let (project, environment) = match *segments {
            [w, p, e] => (ProjectAddress::from_segments(&[w, p], defaults)?, Some(e)),
            [p, e] => (ProjectAddress::from_segments(&[p], defaults)?, Some(e)),
            [p] => (ProjectAddress::from_segments(&[p], defaults)?, None),
            _ => unreachable!("split bounds the segment count"),
        };
        let environment = match environment {
            Some(e) => given("environment", e)?,
            None => defaulted("environment", &defaults.environment)?,
        };
        Ok(EnvironmentAddress {
            project,
            environment,
        })
    }

    pub fn workspace(&self) -> &str {
        &self.project.workspace
    }

    pub fn project(&self) -> &str {
        &self.project.project
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// The project this environment belongs to.
    pub fn project_address(&self) -> &ProjectAddress {
        &self.project
    }

    /// The service `service` in this environment.
    pub fn service(&self, service: &str) -> Result<ServiceAddress, InvalidInput> {
        Ok(ServiceAddress {
            environment: self.clone(),
            service: given("service", service)?,
        })
    }

    /// The segments in order, e.g. for a REST path.
    pub fn segments(&self) -> [&str; 3] {
        [self.workspace(), self.project(), &self.environment]
    }
}

/// A service in an environment: `workspace/project/environment/service`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceAddress {
    environment: EnvironmentAddress,
    service: String,
}

impl ServiceAddress {
    /// An address from its segments, each validated.
    pub fn new(
        workspace: &str,
        project: &str,
        environment: &str,
        service: &str,
    ) -> Result<Self, InvalidInput> {
        EnvironmentAddress::new(workspace, project, environment)?.service(service)
    }

    /// Parse `project/service`, `project/environment/service` or
    /// `workspace/project/environment/service` (see the module docs). A lone `service` is
    /// `ambiguous`: nothing says which project it is in.
    pub fn parse(s: &str, defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let segments = split(s, Level::Service)?;
        Self::from_segments(&segments, defaults)
    }

    fn from_segments(segments: &[&str], defaults: &AddressDefaults) -> Result<Self, InvalidInput> {
        let (environment, service) = match *segments {
            [w, p, e, s] => (EnvironmentAddress::from_segments(&[w, p, e], defaults)?, s),
            [p, e, s] => (EnvironmentAddress::from_segments(&[p, e], defaults)?, s),
            [p, s] => (EnvironmentAddress::from_segments(&[p], defaults)?, s),
            _ => unreachable!("split bounds the segment count"),
        };
        Ok(ServiceAddress {
            environment,
            service: given("service", service)?,
        })
    }

    pub fn workspace(&self) -> &str {
        self.environment.workspace()
    }

    pub fn project(&self) -> &str {
        self.environment.project()
    }

    pub fn environment(&self) -> &str {
        &self.environment.environment
    }

    pub fn service(&self) -> &str {
        &self.service
    }

    /// The environment this service runs in.
    pub fn environment_address(&self) -> &EnvironmentAddress {
        &self.environment
    }

    /// The project this service belongs to.
    pub fn project_address(&self) -> &ProjectAddress {
        &self.environment.project
    }

    /// The segments in order, e.g. for a REST path.
    pub fn segments(&self) -> [&str; 4] {
        [
            self.workspace(),
            self.project(),
            self.environment(),
            &self.service,
        ]
    }
}

macro_rules! canonical_string_forms {
    ($($ty:ident => $level:expr),* $(,)?) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.segments().join("/"))
            }
        }

        /// Accepts only the canonical full form (see the module docs).
        impl FromStr for $ty {
            type Err = InvalidInput;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let segments = split(s, $level)?;
                require_canonical(s, &segments, $level)?;
                // With every segment given, the defaults are never read.
                Self::from_segments(&segments, &AddressDefaults::default())
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidInput;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$ty> for String {
            fn from(address: $ty) -> String {
                address.to_string()
            }
        }
    )*};
}

canonical_string_forms! {
    ProjectAddress => Level::Project,
    EnvironmentAddress => Level::Environment,
    ServiceAddress => Level::Service,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> AddressDefaults {
        AddressDefaults::default()
    }

    #[test]
    fn defaults_are_the_default_workspace_and_production() {
        let d = AddressDefaults::default();
        assert_eq!(
            (d.workspace.as_str(), d.environment.as_str()),
            ("default", "production")
        );
    }

    #[test]
    fn service_address_short_forms_resolve_with_defaults() {
        let cases = [
            ("acme/shop/staging/api", "acme/shop/staging/api"),
            ("shop/staging/api", "default/shop/staging/api"),
            ("shop/api", "default/shop/production/api"),
            ("default/shop/production/api", "default/shop/production/api"),
        ];
        for (input, canonical) in cases {
            let a = ServiceAddress::parse(input, &defaults())
                .unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(a.to_string(), canonical, "{input:?}");
        }
        let a = ServiceAddress::parse("shop/api", &defaults()).unwrap();
        assert_eq!(a.segments(), ["default", "shop", "production", "api"]);
        assert_eq!(
            (a.workspace(), a.project(), a.environment(), a.service()),
            ("default", "shop", "production", "api")
        );
    }

    #[test]
    fn service_address_uses_configured_defaults() {
        let d = AddressDefaults {
            workspace: "acme".to_owned(),
            environment: "staging".to_owned(),
        };
        let a = ServiceAddress::parse("shop/api", &d).unwrap();
        assert_eq!(a.to_string(), "acme/shop/staging/api");
        // A written segment wins over the default.
        let a = ServiceAddress::parse("shop/dev/api", &d).unwrap();
        assert_eq!(a.to_string(), "acme/shop/dev/api");
    }

    #[test]
    fn service_alone_is_ambiguous_and_the_error_lists_the_accepted_forms() {
        let e = ServiceAddress::parse("api", &defaults()).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), ("address", "ambiguous"));
        for form in [
            "`project/service`",
            "`project/environment/service`",
            "`workspace/project/environment/service`",
        ] {
            assert!(e.message.contains(form), "{}", e.message);
        }
    }

    #[test]
    fn environment_address_forms_drop_the_workspace_first_then_the_environment() {
        let cases = [
            ("acme/shop/staging", "acme/shop/staging"),
            ("shop/staging", "default/shop/staging"),
            ("shop", "default/shop/production"),
        ];
        for (input, canonical) in cases {
            let a = EnvironmentAddress::parse(input, &defaults()).unwrap();
            assert_eq!(a.to_string(), canonical, "{input:?}");
        }
    }

    #[test]
    fn project_address_forms() {
        let cases = [("acme/shop", "acme/shop"), ("shop", "default/shop")];
        for (input, canonical) in cases {
            let a = ProjectAddress::parse(input, &defaults()).unwrap();
            assert_eq!(a.to_string(), canonical, "{input:?}");
        }
        let e = ProjectAddress::parse("acme/shop/staging", &defaults()).unwrap_err();
        assert_eq!(e.rule, "too_many_segments");
        assert!(e.message.contains("`workspace/project`"), "{}", e.message);
    }

    #[test]
    fn address_shape_errors_name_the_rule() {
        let long = vec!["a".repeat(63); 5].join("/");
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("/shop/api", "leading_slash"),
            ("/", "leading_slash"),
            ("shop/api/", "trailing_slash"),
            ("shop//api", "empty_segment"),
            ("a/b/c/d/e", "too_many_segments"),
            ("../api", "traversal"),
            ("shop/../api", "traversal"),
            ("./api", "traversal"),
            ("..", "traversal"),
            ("api", "ambiguous"),
            (&long, "too_long"),
        ];
        for (input, rule) in cases {
            let e = ServiceAddress::parse(input, &defaults()).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.rule),
                ("address", *rule),
                "{input:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn address_segments_are_validated_as_slugs_with_their_own_field() {
        let long = "a".repeat(64);
        let long_service = format!("shop/{long}");
        let cases: &[(&str, &str, &str)] = &[
            ("Shop/api", "address.project", "charset"),
            ("shop/API", "address.service", "charset"),
            ("shop/Staging/api", "address.environment", "charset"),
            ("Acme/shop/production/api", "address.workspace", "charset"),
            ("a b/api", "address.project", "charset"),
            ("shop/a\u{0}", "address.service", "charset"),
            ("shоp/api", "address.project", "charset"), // Cyrillic о
            ("--upload-pack=x/api", "address.project", "charset"),
            ("ext::sh -c evil/api", "address.project", "charset"),
            ("-shop/api", "address.project", "leading_hyphen"),
            ("shop/1api", "address.service", "leading_digit"),
            ("shop/a--b", "address.service", "double_hyphen"),
            (&long_service, "address.service", "too_long"),
            ("new/api", "address.project", "reserved"),
            ("api/shop/production/web", "address.workspace", "reserved"),
        ];
        for (input, field, rule) in cases {
            let e = ServiceAddress::parse(input, &defaults()).unwrap_err();
            assert_eq!(
                (e.field.as_str(), e.rule),
                (*field, *rule),
                "{input:?}: {}",
                e.message
            );
        }
    }

    #[test]
    fn address_adversarial_table() {
        // (input, Ok(canonical) or Err(field, rule)) for a service address.
        type Expect = Result<&'static str, (&'static str, &'static str)>;
        let huge = "a".repeat(100_000);
        let cases: &[(&str, Expect)] = &[
            ("../x", Err(("address", "traversal"))),
            ("a/b", Ok("default/a/production/b")),
            ("a b", Err(("address", "ambiguous"))),
            ("a b/c", Err(("address.project", "charset"))),
            ("\u{0}", Err(("address", "ambiguous"))),
            ("x/\u{0}", Err(("address.service", "charset"))),
            (&huge, Err(("address", "too_long"))),
            ("A/b", Err(("address.project", "charset"))),
            ("--upload-pack=x", Err(("address", "ambiguous"))),
            (
                "p/--upload-pack",
                Err(("address.service", "leading_hyphen")),
            ),
            ("ext::sh -c evil", Err(("address", "ambiguous"))),
            ("p/ext::sh", Err(("address.service", "charset"))),
            ("p/\u{430}pi", Err(("address.service", "charset"))),
            ("p/a\u{200b}pi", Err(("address.service", "charset"))),
            ("p\\q/api", Err(("address.project", "charset"))),
            ("p/%2e%2e", Err(("address.service", "charset"))),
        ];
        for (input, expect) in cases {
            let got = ServiceAddress::parse(input, &defaults());
            match (expect, got) {
                (Ok(canonical), Ok(a)) => assert_eq!(a.to_string(), *canonical, "{input:?}"),
                (Err((field, rule)), Err(e)) => {
                    assert_eq!(
                        (e.field.as_str(), e.rule),
                        (*field, *rule),
                        "{input:?}: {}",
                        e.message
                    );
                    assert!(e.message.len() < 1_000, "{input:?}: message not truncated");
                }
                (expect, got) => panic!("{input:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn invalid_defaults_are_reported_as_defaults() {
        let d = AddressDefaults {
            workspace: "Bad".to_owned(),
            environment: "production".to_owned(),
        };
        let e = ServiceAddress::parse("shop/api", &d).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), ("address.workspace", "charset"));
        assert!(e.message.contains("default workspace"), "{}", e.message);
        // The defaults are not read when every segment is written.
        assert!(ServiceAddress::parse("acme/shop/production/api", &d).is_ok());
        let d = AddressDefaults {
            workspace: "default".to_owned(),
            environment: String::new(),
        };
        let e = ServiceAddress::parse("shop/api", &d).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), ("address.environment", "empty"));
    }

    #[test]
    fn address_errors_compose_with_within() {
        let e = ServiceAddress::parse("Shop/api", &defaults())
            .unwrap_err()
            .within("promote.target");
        assert_eq!(e.field, "promote.target.address.project");
    }

    #[test]
    fn from_str_accepts_only_the_canonical_form_and_round_trips_display() {
        for s in ["acme/shop/staging/api", "default/shop/production/api"] {
            let a: ServiceAddress = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
            assert_eq!(a.to_string().parse::<ServiceAddress>().unwrap(), a);
        }
        for short in ["shop/api", "shop/staging/api"] {
            let e = short.parse::<ServiceAddress>().unwrap_err();
            assert_eq!((e.field.as_str(), e.rule), ("address", "format"), "{short}");
        }
        assert_eq!(
            "acme/shop".parse::<ProjectAddress>().unwrap().to_string(),
            "acme/shop"
        );
        assert_eq!("shop".parse::<ProjectAddress>().unwrap_err().rule, "format");
        assert_eq!(
            "acme/shop/dev"
                .parse::<EnvironmentAddress>()
                .unwrap()
                .to_string(),
            "acme/shop/dev"
        );
        assert_eq!(
            "shop/dev".parse::<EnvironmentAddress>().unwrap_err().rule,
            "format"
        );
    }

    #[test]
    fn serde_uses_the_canonical_string_and_refuses_short_forms() {
        let a = ServiceAddress::new("acme", "shop", "staging", "api").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#""acme/shop/staging/api""#);
        assert_eq!(serde_json::from_str::<ServiceAddress>(&json).unwrap(), a);
        assert!(serde_json::from_str::<ServiceAddress>(r#""shop/api""#).is_err());
        assert!(serde_json::from_str::<ServiceAddress>(r#""a/b/c/D""#).is_err());
        let p = ProjectAddress::new("acme", "shop").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#""acme/shop""#);
    }

    #[test]
    fn addresses_navigate_between_levels() {
        let project = ProjectAddress::new("acme", "shop").unwrap();
        let env = project.environment("staging").unwrap();
        let service = env.service("api").unwrap();
        assert_eq!(service.to_string(), "acme/shop/staging/api");
        assert_eq!(service.environment_address(), &env);
        assert_eq!(service.project_address(), &project);
        assert_eq!(env.project_address(), &project);
        assert_eq!(env.segments(), ["acme", "shop", "staging"]);
        assert_eq!(project.segments(), ["acme", "shop"]);
        assert_eq!(env.service("API").unwrap_err().field, "address.service");
        assert_eq!(project.environment("").unwrap_err().rule, "empty");
    }

    #[test]
    fn constructors_validate_every_segment() {
        assert_eq!(
            ServiceAddress::new("api", "shop", "production", "web")
                .unwrap_err()
                .rule,
            "reserved"
        );
        assert_eq!(
            ServiceAddress::new("acme", "shop", "production", "api")
                .unwrap()
                .service(),
            "api"
        );
        assert_eq!(
            EnvironmentAddress::new("acme", "../x", "production")
                .unwrap_err()
                .field,
            "address.project"
        );
    }
}
