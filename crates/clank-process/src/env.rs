//! The environment a native workload runs with.
//!
//! A container starts from its image's environment; a native process must not inherit the
//! control plane's (it may hold the platform's own credentials), so the environment is
//! cleared and rebuilt from, in increasing precedence:
//!
//! 1. defaults a container would also have: `PATH` (Docker's default value), `HOME` (the
//!    workload's own directory) and, when the workload has volumes, `DATA_DIR` pointing at the
//!    first volume's directory;
//! 2. the spec's variables (so a service may set its own `PATH` or `DATA_DIR`);
//! 3. what the runtime must decide: `PORT` (the port to listen on) and one
//!    `CLANK_VOLUME_<NAME>` per volume with its directory, because a process cannot mount a
//!    volume at its `mount_path`.
//!
//! Values are never logged: they may be decrypted secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clank_core::runtime::WorkloadSpec;
use clank_core::{InvalidInput, Result};

/// Docker's default `PATH` for containers whose image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A volume as the process sees it: its name and its directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeDir {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
}

/// The variable that carries a volume's directory: `CLANK_VOLUME_` and the name in upper
/// snake case (`clank-shop-api-data` -> `CLANK_VOLUME_CLANK_SHOP_API_DATA`).
pub fn volume_env_key(volume_name: &str) -> String {
    let snake: String = volume_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CLANK_VOLUME_{snake}")
}

/// Reject keys and values `execve` cannot carry, naming the key but never echoing the value.
pub(crate) fn validate(spec: &WorkloadSpec) -> Result<(), InvalidInput> {
    for (i, (key, value)) in spec.env.iter().enumerate() {
        let field = format!("spec.env[{i}]");
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(InvalidInput::new(
                field,
                "charset",
                format!(
                    "environment key `{}` must be non-empty without `=` or NUL",
                    key.escape_debug()
                ),
            ));
        }
        if value.expose().contains('\0') {
            return Err(InvalidInput::new(
                field,
                "charset",
                format!(
                    "the value of `{key}` contains a NUL byte, which a process environment cannot hold"
                ),
            ));
        }
    }
    Ok(())
}

/// Build the full environment (see the module docs for precedence).
pub(crate) fn build(
    spec: &WorkloadSpec,
    port: Option<u16>,
    volumes: &[VolumeDir],
    home: &Path,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    env.insert("HOME".to_owned(), home.display().to_string());
    if let Some(first) = volumes.first() {
        env.insert("DATA_DIR".to_owned(), first.dir.display().to_string());
    }
    for (key, value) in &spec.env {
        env.insert(key.clone(), value.expose().to_owned());
    }
    if let Some(port) = port {
        if spec.env.iter().any(|(k, _)| k == "PORT") {
            tracing::debug!(
                workload = spec.name,
                "The spec's PORT is replaced by the port the runtime chose."
            );
        }
        env.insert("PORT".to_owned(), port.to_string());
    }
    for volume in volumes {
        env.insert(
            volume_env_key(clank_core::runtime::volume_declared_name(&volume.name)),
            volume.dir.display().to_string(),
        );
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::config::EnvValue;
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
    use clank_core::runtime::{Owner, RestartPolicy};

    fn spec(env: Vec<(&str, &str)>) -> WorkloadSpec {
        WorkloadSpec {
            name: "w".into(),
            owner: Owner {
                workspace: WorkspaceId::new(),
                project: ProjectId::new(),
                environment: EnvironmentId::new(),
                service: ServiceId::new(),
                deployment: DeploymentId::new(),
                process: "web".into(),
                replica: 0,
            },
            image: None,
            command: Some(vec!["true".into()]),
            env: env
                .into_iter()
                .map(|(k, v)| (k.to_owned(), EnvValue::Plain(v.to_owned())))
                .collect(),
            working_dir: None,
            port: None,
            publish: None,
            network: None,
            volumes: Vec::new(),
            cpu_limit: 0.5,
            memory_limit_mb: 512,
            restart: RestartPolicy::Never,
        }
    }

    #[test]
    fn runtime_port_and_volume_dirs_override_the_spec_but_its_path_and_data_dir_win() {
        let s = spec(vec![
            ("PORT", "8080"),
            ("PATH", "/opt/app/bin"),
            ("DATA_DIR", "/data"),
            ("GREETING", "hi"),
        ]);
        let vols = [VolumeDir {
            name: "shop-api.data".into(),
            dir: "/state/volumes/shop-api.data".into(),
        }];
        let env = build(&s, Some(41000), &vols, Path::new("/w/api"));
        assert_eq!(env["PORT"], "41000");
        assert_eq!(env["PATH"], "/opt/app/bin");
        assert_eq!(env["DATA_DIR"], "/data");
        assert_eq!(env["GREETING"], "hi");
        assert_eq!(
            env["CLANK_VOLUME_SHOP_API_DATA"],
            "/state/volumes/shop-api.data"
        );
    }

    #[test]
    fn defaults_fill_in_path_and_data_dir_and_no_port_means_no_port_variable() {
        let vols = [VolumeDir {
            name: "data".into(),
            dir: "/v/data".into(),
        }];
        let env = build(&spec(vec![]), None, &vols, Path::new("/w/api"));
        assert_eq!(env["PATH"], DEFAULT_PATH);
        assert_eq!(env["HOME"], "/w/api");
        assert_eq!(env["DATA_DIR"], "/v/data");
        assert!(!env.contains_key("PORT"));
    }

    #[test]
    fn keys_execve_cannot_carry_are_rejected_without_echoing_values() {
        assert!(validate(&spec(vec![("A=B", "x")])).is_err());
        assert!(validate(&spec(vec![("", "x")])).is_err());
        let err = validate(&spec(vec![("TOKEN", "sec\0ret")])).unwrap_err();
        assert!(!err.message.contains("sec"), "{err}");
        validate(&spec(vec![("OK", "fine")])).unwrap();
    }
}
