//! The `builder` section of the daemon's config: what an operator sets for every git build on
//! this server (base images of generated Dockerfiles per framework, a registry prefix for
//! mirrors, build args, concurrent builds) and which repositories services may build from.
//! The file's values, then `CLANK_BUILD_*` variables over them; both checked before the daemon
//! starts, with errors naming the key or the variable.

use std::collections::BTreeMap;

use clank_core::validate::RepositoryPolicy;
use clank_platform::BuildSettings;

use crate::DaemonError;

/// `builder` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuilderConfig {
    /// Base images of generated Dockerfiles by framework: `static`, `node`, `python`, `go`,
    /// `go_runtime` (`CLANK_BUILD_BASE_IMAGE_STATIC`, `..._NODE`, ...). They replace the
    /// defaults (`busybox:1.36`, `node:<detected>-slim`, ...), detected versions included.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub base_images: BTreeMap<String, String>,
    /// Prepended to the default base images that are Docker Hub names, for a mirror or a
    /// registry of one's own: `registry.local:5000/library/` (`CLANK_BUILD_IMAGE_PREFIX`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_prefix: Option<String>,
    /// Build args passed to every build (`CLANK_BUILD_ARG_<NAME>=value`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Builds at once on this server, default 2 (`CLANK_BUILD_MAX_CONCURRENT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<usize>,
    /// Which repositories services may build from, besides `allow_local_repositories`.
    pub repositories: RepositoryRules,
}

/// `builder.repositories`: empty lists allow any.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryRules {
    /// `https`, `http`, `ssh`, `git`, `file`, or `scp` for `user@host:path`
    /// (`CLANK_BUILD_REPOSITORY_SCHEMES=https,ssh`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_schemes: Vec<String>,
    /// Host names, `*.example.com` for subdomains
    /// (`CLANK_BUILD_REPOSITORY_HOSTS=github.com,*.example.com`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
}

/// The framework keys of `base_images` and their `CLANK_BUILD_BASE_IMAGE_*` suffixes.
fn framework_keys() -> impl Iterator<Item = &'static str> {
    clank_platform::FRAMEWORK_BASE_IMAGES
        .iter()
        .map(|(k, _)| *k)
}

impl BuilderConfig {
    /// `CLANK_BUILD_*` from `vars` over the file's values. An unknown `CLANK_BUILD_*` variable
    /// is refused by name (a typo would otherwise be ignored silently).
    pub(crate) fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), DaemonError> {
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        };
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("CLANK_BUILD_") else {
                continue;
            };
            if let Some(arg) = key.strip_prefix("ARG_") {
                self.build_args.insert(arg.to_owned(), value);
            } else if let Some(framework) = key.strip_prefix("BASE_IMAGE_") {
                let framework = framework.to_ascii_lowercase();
                if !framework_keys().any(|k| k == framework) {
                    return Err(DaemonError::Config(format!(
                        "{name}: `{}` is not a framework with a base image; use \
                         CLANK_BUILD_BASE_IMAGE_ with one of {}",
                        framework.escape_debug(),
                        framework_keys()
                            .map(str::to_ascii_uppercase)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                self.base_images.insert(framework, value.trim().to_owned());
            } else {
                match key {
                    "IMAGE_PREFIX" => {
                        let v = value.trim();
                        self.image_prefix = (!v.is_empty()).then(|| v.to_owned());
                    }
                    "MAX_CONCURRENT" => {
                        self.max_concurrent =
                            Some(value.trim().parse().map_err(|e| {
                                DaemonError::Config(format!("{name} `{value}`: {e}"))
                            })?);
                    }
                    "REPOSITORY_SCHEMES" => self.repositories.allowed_schemes = list(&value),
                    "REPOSITORY_HOSTS" => self.repositories.allowed_hosts = list(&value),
                    _ => {
                        return Err(DaemonError::Config(format!(
                            "{name} is not a builder setting; known: CLANK_BUILD_BASE_IMAGE_*, \
                             CLANK_BUILD_IMAGE_PREFIX, CLANK_BUILD_ARG_*, \
                             CLANK_BUILD_MAX_CONCURRENT, CLANK_BUILD_REPOSITORY_SCHEMES, \
                             CLANK_BUILD_REPOSITORY_HOSTS"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The settings the image builder takes.
    pub fn build_settings(&self) -> BuildSettings {
        BuildSettings {
            base_images: self.base_images.clone(),
            image_prefix: self.image_prefix.clone(),
            build_args: self.build_args.clone(),
            max_concurrent: self.max_concurrent,
        }
    }

    /// The repository policy, with `allow_local_repositories`.
    pub fn repository_policy(&self, allow_local: bool) -> RepositoryPolicy {
        RepositoryPolicy {
            allow_local,
            allowed_schemes: self.repositories.allowed_schemes.clone(),
            allowed_hosts: self.repositories.allowed_hosts.clone(),
        }
    }

    /// Check every value; the error names the key (`builder.image_prefix: ...`).
    pub fn validate(&self) -> Result<(), DaemonError> {
        let named = |e: clank_core::InvalidInput| {
            DaemonError::Config(format!("{}: {}", e.field, e.message))
        };
        self.build_settings().validate().map_err(named)?;
        self.repository_policy(false)
            .validate("builder.repositories")
            .map_err(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_sets_every_builder_setting() {
        let mut c = BuilderConfig::default();
        c.apply_env(vars(&[
            (
                "CLANK_BUILD_BASE_IMAGE_STATIC",
                "registry.local/busybox:1.36",
            ),
            (
                "CLANK_BUILD_BASE_IMAGE_GO_RUNTIME",
                "registry.local/static:12",
            ),
            ("CLANK_BUILD_IMAGE_PREFIX", "registry.local:5000/library/"),
            ("CLANK_BUILD_ARG_HTTP_PROXY", "http://proxy:3128"),
            ("CLANK_BUILD_MAX_CONCURRENT", "4"),
            ("CLANK_BUILD_REPOSITORY_SCHEMES", "https, ssh"),
            ("CLANK_BUILD_REPOSITORY_HOSTS", "GitHub.com,*.example.com"),
            ("CLANK_LISTEN", "ignored here"),
        ]))
        .unwrap();
        assert_eq!(c.base_images["static"], "registry.local/busybox:1.36");
        assert_eq!(c.base_images["go_runtime"], "registry.local/static:12");
        assert_eq!(
            c.image_prefix.as_deref(),
            Some("registry.local:5000/library/")
        );
        assert_eq!(c.build_args["HTTP_PROXY"], "http://proxy:3128");
        assert_eq!(c.max_concurrent, Some(4));
        assert_eq!(c.repositories.allowed_schemes, ["https", "ssh"]);
        assert_eq!(
            c.repositories.allowed_hosts,
            ["github.com", "*.example.com"]
        );
        c.validate().unwrap();
    }

    #[test]
    fn unknown_or_invalid_builder_settings_are_refused_by_name() {
        for (var, value) in [
            ("CLANK_BUILD_BASE_IMAGE_RUBY", "ruby:3"),
            ("CLANK_BUILD_IMAGE_PREFX", "x/"),
            ("CLANK_BUILD_MAX_CONCURRENT", "many"),
        ] {
            let err = BuilderConfig::default()
                .apply_env(vars(&[(var, value)]))
                .unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        for (config, key) in [
            (
                r#"{"image_prefix": "registry.local"}"#,
                "builder.image_prefix",
            ),
            (
                r#"{"base_images": {"node": "not an image"}}"#,
                "builder.base_images.node",
            ),
            (
                r#"{"base_images": {"ruby": "ruby:3"}}"#,
                "builder.base_images.ruby",
            ),
            (
                r#"{"repositories": {"allowed_schemes": ["ftp"]}}"#,
                "builder.repositories.allowed_schemes",
            ),
            (r#"{"max_concurrent": 0}"#, "builder.max_concurrent"),
        ] {
            let c: BuilderConfig = serde_json::from_str(config).unwrap();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{config}: {err}");
        }
        let err = crate::Settings::parse(r#"{"builder": {"base_image": {"node": "node:22"}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `base_image`"), "{err}");
        let err = crate::Settings::parse(r#"{"builder": {"repositories": {"hosts": []}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hosts`"), "{err}");
    }

    #[test]
    fn the_config_files_builder_section_reaches_the_platform_options() {
        let settings = crate::Settings::parse(
            r#"{"allow_local_repositories": true,
                "builder": {"base_images": {"static": "clank-test/static:local"},
                            "build_args": {"NPM_CONFIG_REGISTRY": "http://npm.local/"},
                            "repositories": {"allowed_hosts": ["git.example.com"]}}}"#,
        )
        .unwrap();
        let b = &settings.daemon.builder;
        b.validate().unwrap();
        assert_eq!(
            b.build_settings().base_images["static"],
            "clank-test/static:local"
        );
        let policy = b.repository_policy(settings.daemon.allow_local_repositories);
        assert!(policy.allow_local);
        assert_eq!(
            policy
                .check("source.repo_url", "https://github.com/a/b.git")
                .unwrap_err()
                .rule,
            "host_not_allowed"
        );
    }
}
