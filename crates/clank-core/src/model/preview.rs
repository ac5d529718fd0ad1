//! Preview environments: a project's settings for the environment (`pr-<n>`) each pull request
//! gets, cloned from a base environment, and the pure rules around them (the environment's
//! name, the URL pattern, the time-to-live, whether a pull request from a fork may run).

use crate::error::InvalidInput;
use crate::id::{ProjectId, WorkspaceId};
use crate::time::Timestamp;
use crate::validate;

/// The default URL pattern of a preview's routed services.
pub const DEFAULT_PATTERN: &str = "{service}-pr-{n}.{domain}";
/// The default time-to-live of a preview after its last push: three days.
pub const DEFAULT_TTL_MINUTES: u32 = 72 * 60;
/// The longest time-to-live: 90 days.
pub const MAX_TTL_MINUTES: u32 = 90 * 24 * 60;

/// One project's preview settings. Absent means previews are off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviewSettings {
    pub project_id: ProjectId,
    pub workspace_id: WorkspaceId,
    pub enabled: bool,
    /// The environment each preview is cloned from (`staging`, `production`).
    pub base_environment: String,
    /// The base domain routed services' preview URLs are under; `None` drops their domains
    /// (the preview is reachable only inside its network).
    pub domain: Option<String>,
    /// The host of a routed service's preview: `{service}`, `{n}` and `{domain}` are replaced.
    pub pattern: String,
    /// How long a preview lives after its last push before it is torn down.
    pub ttl_minutes: u32,
    /// Pull requests from forks run with the project's secrets, so they are refused unless
    /// this is on.
    pub allow_forks: bool,
    pub updated_at: Timestamp,
}

impl PreviewSettings {
    /// Check every field; the error names the first offending one.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        validate::validate_slug("base_environment", &self.base_environment)?;
        if let Some(domain) = &self.domain {
            validate::validate_domain("domain", domain)?;
        }
        validate_pattern(&self.pattern, self.domain.is_some())?;
        if !(1..=MAX_TTL_MINUTES).contains(&self.ttl_minutes) {
            return Err(InvalidInput::new(
                "ttl_minutes",
                "range",
                format!(
                    "ttl_minutes {} is outside 1..={MAX_TTL_MINUTES} (90 days)",
                    self.ttl_minutes
                ),
            ));
        }
        Ok(())
    }

    /// The host of `service`'s preview for pull request `n`, if routed services get one.
    pub fn host(&self, service: &str, n: u64) -> Option<String> {
        let domain = self.domain.as_deref()?;
        Some(
            self.pattern
                .replace("{service}", service)
                .replace("{n}", &n.to_string())
                .replace("{domain}", domain)
                .to_ascii_lowercase(),
        )
    }

    /// When a preview last pushed at `now` is torn down.
    pub fn expires_at(&self, now: Timestamp) -> Timestamp {
        Timestamp(now.0.saturating_add(i64::from(self.ttl_minutes) * 60_000))
    }
}

/// A pattern names every service and pull request apart: it must hold `{service}` and `{n}`,
/// and, once `{service}`, `{n}` and `{domain}` are filled in, be a valid domain.
fn validate_pattern(pattern: &str, has_domain: bool) -> Result<(), InvalidInput> {
    for needed in ["{service}", "{n}"] {
        if !pattern.contains(needed) {
            return Err(InvalidInput::new(
                "pattern",
                "placeholder",
                format!(
                    "pattern `{pattern}` lacks `{needed}`: without it two previews' URLs collide"
                ),
            ));
        }
    }
    let sample = pattern
        .replace("{service}", "web")
        .replace("{n}", "1")
        .replace("{domain}", if has_domain { "example.com" } else { "" });
    if has_domain {
        validate::validate_domain("pattern", &sample).map_err(|e| {
            InvalidInput::new(
                "pattern",
                e.rule,
                format!("pattern `{pattern}` does not make a domain: {}", e.message),
            )
        })?;
    }
    Ok(())
}

/// The environment name of pull request `n`'s preview.
pub fn preview_environment_name(n: u64) -> String {
    format!("pr-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PreviewSettings {
        PreviewSettings {
            project_id: ProjectId::new(),
            workspace_id: WorkspaceId::new(),
            enabled: true,
            base_environment: "staging".to_owned(),
            domain: Some("preview.example.com".to_owned()),
            pattern: DEFAULT_PATTERN.to_owned(),
            ttl_minutes: DEFAULT_TTL_MINUTES,
            allow_forks: false,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn the_default_pattern_names_a_host_per_service_and_pull_request() {
        let s = settings();
        s.validate().unwrap();
        assert_eq!(
            s.host("Web", 42).as_deref(),
            Some("web-pr-42.preview.example.com")
        );
        let no_domain = PreviewSettings {
            domain: None,
            ..settings()
        };
        no_domain.validate().unwrap();
        assert_eq!(no_domain.host("web", 1), None);
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let cases = [
            (
                PreviewSettings {
                    base_environment: "Not A Slug".to_owned(),
                    ..settings()
                },
                "base_environment",
            ),
            (
                PreviewSettings {
                    domain: Some("bad domain".to_owned()),
                    ..settings()
                },
                "domain",
            ),
            (
                PreviewSettings {
                    pattern: "{service}.{domain}".to_owned(),
                    ..settings()
                },
                "pattern",
            ),
            (
                PreviewSettings {
                    pattern: "{service}-{n}_x.{domain}".to_owned(),
                    ..settings()
                },
                "pattern",
            ),
            (
                PreviewSettings {
                    ttl_minutes: 0,
                    ..settings()
                },
                "ttl_minutes",
            ),
            (
                PreviewSettings {
                    ttl_minutes: MAX_TTL_MINUTES + 1,
                    ..settings()
                },
                "ttl_minutes",
            ),
        ];
        for (s, field) in cases {
            assert_eq!(s.validate().unwrap_err().field, field, "{s:?}");
        }
    }

    #[test]
    fn a_preview_expires_its_ttl_after_the_last_push() {
        let s = PreviewSettings {
            ttl_minutes: 2,
            ..settings()
        };
        assert_eq!(s.expires_at(Timestamp(1_000)), Timestamp(121_000));
        assert_eq!(preview_environment_name(7), "pr-7");
    }
}
