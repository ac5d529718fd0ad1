//! Names Clank gives Docker objects, and the checks that keep anything Docker would refuse
//! (or read as something else: a path, an option) from ever reaching the engine.
//!
//! Generated names join slugs with `--`, which slugs may not contain (`validate_slug`'s
//! `double_hyphen` rule), so two different inputs never produce one name: with a single `-`,
//! project `a-b` + environment `c` and project `a` + environment `b-c` would collide. Clank
//! still finds its objects by labels, never by parsing names.

use clank_core::error::InvalidInput;
use clank_core::id::WorkspaceId;
use clank_core::runtime::{self, WorkloadSpec};
use clank_core::validate;

/// Longest container name accepted (see [`runtime::WORKLOAD_NAME_MAX_LEN`]).
pub const CONTAINER_NAME_MAX_LEN: usize = runtime::WORKLOAD_NAME_MAX_LEN;

/// The container name of one replica of one process of one deployment: clank-core's
/// [`runtime::workload_name`], checked against Docker's own name rule.
pub fn container_name(
    workspace: WorkspaceId,
    project_slug: &str,
    environment_slug: &str,
    service_slug: &str,
    deployment_number: u64,
    process: &str,
    replica: u32,
) -> Result<String, InvalidInput> {
    let name = runtime::workload_name(
        workspace,
        project_slug,
        environment_slug,
        service_slug,
        deployment_number,
        process,
        replica,
    )?;
    validate_container_name("name", &name)?;
    Ok(name)
}

/// The private network of a workspace's project: clank-core's
/// [`runtime::project_network_name`], after checking the slug.
pub fn project_network_name(
    workspace: WorkspaceId,
    project_slug: &str,
) -> Result<String, InvalidInput> {
    validate::validate_slug("project", project_slug)?;
    Ok(runtime::project_network_name(workspace, project_slug))
}

/// A container name Docker accepts and reads as a name: its own `[a-zA-Z0-9][a-zA-Z0-9_.-]+`
/// (the same pattern as volume names, whose check this reuses), at most
/// [`CONTAINER_NAME_MAX_LEN`].
pub fn validate_container_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    validate::validate_volume_name(field, name).map_err(|e| {
        InvalidInput::new(
            e.field,
            e.rule,
            e.message.replace("volume name", "container name"),
        )
    })
}

/// Check everything in a spec that Docker would refuse, misread, or that could escape: the
/// name, env keys and values, volumes, network and aliases, limits and ports.
pub(crate) fn validate_spec(spec: &WorkloadSpec) -> Result<(), InvalidInput> {
    validate_container_name("name", &spec.name)?;
    if spec.image.is_none() {
        return Err(InvalidInput::new(
            "image",
            "required",
            "the Docker runtime runs images: the workload spec has none",
        ));
    }
    if let Some(command) = &spec.command {
        if command.first().is_none_or(String::is_empty) {
            return Err(InvalidInput::new(
                "command",
                "empty",
                "a command needs at least a program name",
            ));
        }
        if command.iter().any(|a| a.contains('\0')) {
            return Err(InvalidInput::new(
                "command",
                "nul",
                "command arguments cannot contain NUL bytes",
            ));
        }
    }
    for (i, (key, value)) in spec.env.iter().enumerate() {
        let field = format!("env[{i}]");
        // Platform-injected `CLANK_*` keys are legitimate here; every other key rule applies.
        match validate::validate_env_key(&field, key) {
            Err(e) if e.rule != "reserved" => return Err(e),
            _ => {}
        }
        validate::validate_env_value(&field, value.expose())?;
    }
    if let Some(dir) = &spec.working_dir {
        if !dir.starts_with('/') || dir.contains('\0') {
            return Err(InvalidInput::new(
                "working_dir",
                "not_absolute",
                format!(
                    "`{}` must be an absolute path inside the container",
                    dir.escape_debug()
                ),
            ));
        }
    }
    for (i, volume) in spec.volumes.iter().enumerate() {
        volume
            .validate()
            .map_err(|e| e.within(&format!("volumes[{i}]")))?;
    }
    if let Some(network) = &spec.network {
        validate::validate_volume_name("network.network", &network.network)?;
        for (i, alias) in network.aliases.iter().enumerate() {
            validate::validate_slug(&format!("network.aliases[{i}]"), alias)?;
        }
    }
    validate::validate_cpu_limit("cpu_limit", spec.cpu_limit)?;
    validate::validate_memory_limit_mb("memory_limit_mb", u64::from(spec.memory_limit_mb))?;
    if let Some(port) = spec.port {
        validate::validate_port("port", u32::from(port))?;
    }
    if spec.publish.is_some() && spec.port.is_none() {
        return Err(InvalidInput::new(
            "publish",
            "requires_port",
            "publishing needs the workload's `port`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_name_joins_slugs_unambiguously() {
        let ws = WorkspaceId::new();
        assert_eq!(
            container_name(ws, "shop", "production", "api", 3, "web", 0).unwrap(),
            format!("clank-{}--shop--production--api--3--web--0", ws.scope())
        );
        assert_ne!(
            container_name(ws, "shop", "production", "api", 3, "web", 0).unwrap(),
            container_name(WorkspaceId::new(), "shop", "production", "api", 3, "web", 0).unwrap(),
            "another workspace's same slugs get another name"
        );
        assert_eq!(
            runtime::unscoped_name(
                &container_name(ws, "shop", "production", "api", 3, "web", 0).unwrap()
            ),
            "clank-shop--production--api--3--web--0"
        );
        assert_eq!(runtime::unscoped_name("clank-shop--x"), "clank-shop--x");
        let volume = runtime::volume_runtime_name(ws, "clank-shop-db-data");
        assert_eq!(runtime::volume_declared_name(&volume), "clank-shop-db-data");
        assert_eq!(runtime::volume_declared_name("pgdata"), "pgdata");
        assert_ne!(
            container_name(ws, "a-b", "c", "api", 1, "web", 0).unwrap(),
            container_name(ws, "a", "b-c", "api", 1, "web", 0).unwrap()
        );
        let long = "a".repeat(63);
        let name = container_name(ws, &long, &long, &long, u64::MAX, &long, u32::MAX).unwrap();
        assert_eq!(name.len(), CONTAINER_NAME_MAX_LEN);
        assert_eq!(
            container_name(ws, &long, &long, &long, u64::MAX, &long, u32::MAX).unwrap(),
            name,
            "the same inputs give the same name"
        );
        let other = container_name(ws, &long, &long, &long, u64::MAX, &long, u32::MAX - 1).unwrap();
        assert_ne!(other, name, "inputs differing past the cut still differ");
    }

    #[test]
    fn container_name_rejects_what_would_escape_or_collide() {
        let ws = WorkspaceId::new();
        let cases = [
            ("../x", "project", "charset"),
            ("a/b", "project", "charset"),
            ("Shop", "project", "charset"),
            ("a--b", "project", "double_hyphen"),
        ];
        for (slug, field, rule) in cases {
            let e = container_name(ws, slug, "production", "api", 1, "web", 0).unwrap_err();
            assert_eq!((e.field.as_str(), e.rule), (field, rule), "{slug}: {e}");
        }
        let e = container_name(ws, "shop", "production", &"a".repeat(64), 1, "web", 0).unwrap_err();
        assert_eq!((e.field.as_str(), e.rule), ("service", "too_long"));
        let e = container_name(ws, "shop", "production", "api", 1, "Web", 0).unwrap_err();
        assert_eq!(e.field, "process");
    }

    #[test]
    fn container_names_follow_dockers_pattern() {
        for ok in ["ab", "clank-x", "A.b_c-d", &"n".repeat(128)] {
            assert_eq!(validate_container_name("name", ok), Ok(()), "{ok}");
        }
        for (bad, rule) in [
            ("", "empty"),
            ("a", "too_short"),
            ("../x", "charset"),
            ("a/b", "charset"),
            ("-rm", "leading_hyphen"),
            (".x", "format"),
            (&"n".repeat(129), "too_long"),
        ] {
            let e = validate_container_name("name", bad).unwrap_err();
            assert_eq!(e.rule, rule, "{bad:?}: {e}");
            assert!(!e.message.contains("volume"), "{e}");
        }
    }

    #[test]
    fn project_network_name_is_prefixed_and_checked() {
        let ws = WorkspaceId::new();
        assert_eq!(
            project_network_name(ws, "shop").unwrap(),
            format!("clank-{}--shop", ws.scope())
        );
        assert!(project_network_name(ws, "../shop").is_err());
    }
}
