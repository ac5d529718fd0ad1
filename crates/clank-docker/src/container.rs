//! Translation between Clank's workload types and Docker's container API: a [`WorkloadSpec`]
//! as a create body, a container inspection as a [`WorkloadStatus`], a stats sample as
//! [`WorkloadStats`]. Pure functions, so the mapping is unit-tested without an engine.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerStatsResponse, EndpointSettings, HostConfig, Mount, MountType, NetworkingConfig,
    PortBinding, RestartPolicy as DockerRestart, RestartPolicyNameEnum,
};
use clank_core::Timestamp;
use clank_core::runtime::{
    LABEL_PREFIX, Owner, RestartPolicy, WorkloadId, WorkloadSpec, WorkloadState, WorkloadStats,
    WorkloadStatus,
};

/// Label recording the container port the workload serves on, so `inspect` reports the
/// endpoint of that port even when the image exposes others.
pub(crate) const PORT_LABEL: &str = "clank.port";

const MIB: i64 = 1024 * 1024;

/// The create body for `spec`. `image` is the spec's image reference, already checked.
pub(crate) fn create_body(spec: &WorkloadSpec, image: &str) -> ContainerCreateBody {
    let port_key = spec.port.map(|p| format!("{p}/tcp"));
    let mut labels: HashMap<String, String> = spec.owner.labels().into_iter().collect();
    if let Some(port) = spec.port {
        labels.insert(PORT_LABEL.to_owned(), port.to_string());
    }
    let port_bindings = match (&port_key, spec.publish) {
        (Some(key), Some(publish)) => Some(HashMap::from([(
            key.clone(),
            Some(vec![PortBinding {
                host_ip: Some(publish.host_ip.to_string()),
                // Empty = the engine picks a free port; read back after start.
                host_port: Some(publish.host_port.map(|p| p.to_string()).unwrap_or_default()),
            }]),
        )])),
        _ => None,
    };
    let memory = i64::from(spec.memory_limit_mb) * MIB;
    let host_config = HostConfig {
        nano_cpus: Some((spec.cpu_limit * 1e9).round() as i64),
        memory: Some(memory),
        // Swap equal to memory means no swap at all, so exceeding the limit is an OOM kill
        // instead of a slow crawl through swap.
        memory_swap: Some(memory),
        restart_policy: Some(restart_policy(spec.restart)),
        port_bindings,
        mounts: (!spec.volumes.is_empty()).then(|| {
            spec.volumes
                .iter()
                .map(|v| Mount {
                    typ: Some(MountType::VOLUME),
                    source: Some(v.name.clone()),
                    target: Some(v.mount_path.clone()),
                    read_only: Some(false),
                    ..Mount::default()
                })
                .collect()
        }),
        network_mode: spec.network.as_ref().map(|n| n.network.clone()),
        ..HostConfig::default()
    };
    let networking_config = spec.network.as_ref().map(|n| NetworkingConfig {
        endpoints_config: Some(HashMap::from([(
            n.network.clone(),
            EndpointSettings {
                aliases: Some(n.aliases.clone()),
                ..EndpointSettings::default()
            },
        )])),
    });
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: spec.command.clone(),
        env: Some(
            spec.env
                .iter()
                .map(|(k, v)| format!("{k}={}", v.expose()))
                .collect(),
        ),
        working_dir: spec.working_dir.clone(),
        labels: Some(labels),
        exposed_ports: port_key.map(|k| vec![k]),
        host_config: Some(host_config),
        networking_config,
        ..ContainerCreateBody::default()
    }
}

fn restart_policy(policy: RestartPolicy) -> DockerRestart {
    match policy {
        RestartPolicy::Never => DockerRestart {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        },
        RestartPolicy::OnFailure { max_retries } => DockerRestart {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(i64::from(max_retries)),
        },
        RestartPolicy::UnlessStopped => DockerRestart {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        },
    }
}

/// The owner recorded in a container's labels; `None` when it is not a Clank workload.
pub(crate) fn owner_of(labels: Option<&HashMap<String, String>>) -> Option<Owner> {
    let labels: BTreeMap<String, String> = labels?
        .iter()
        .filter(|(k, _)| k.starts_with(LABEL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Owner::from_labels(&labels)
}

/// The container's name without Docker's leading `/`.
pub(crate) fn name_of(c: &ContainerInspectResponse) -> String {
    c.name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_owned()
}

/// A container as a workload; `None` if it carries no (or foreign) owner labels.
pub(crate) fn status_of(c: &ContainerInspectResponse) -> Option<WorkloadStatus> {
    let config = c.config.as_ref();
    let owner = owner_of(config.and_then(|cfg| cfg.labels.as_ref()))?;
    let state = c.state.as_ref();
    let status = state.and_then(|s| s.status);
    let started_at = state
        .and_then(|s| s.started_at.as_deref())
        .and_then(Timestamp::parse_rfc3339);
    let workload_state = match status {
        Some(ContainerStateStatusEnum::RUNNING | ContainerStateStatusEnum::PAUSED) => {
            WorkloadState::Running {
                started_at: started_at.unwrap_or(clank_core::Timestamp::EPOCH),
            }
        }
        Some(ContainerStateStatusEnum::RESTARTING) => WorkloadState::Restarting,
        Some(ContainerStateStatusEnum::CREATED) | None | Some(ContainerStateStatusEnum::EMPTY) => {
            WorkloadState::Created
        }
        Some(
            ContainerStateStatusEnum::EXITED
            | ContainerStateStatusEnum::DEAD
            | ContainerStateStatusEnum::REMOVING
            | ContainerStateStatusEnum::STOPPING,
        ) => WorkloadState::Exited {
            code: state.and_then(|s| s.exit_code),
            oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
            finished_at: state
                .and_then(|s| s.finished_at.as_deref())
                .and_then(Timestamp::parse_rfc3339),
        },
    };
    let port = config
        .and_then(|cfg| cfg.labels.as_ref())
        .and_then(|l| l.get(PORT_LABEL))
        .and_then(|p| p.parse::<u16>().ok());
    Some(WorkloadStatus {
        id: WorkloadId(c.id.clone().unwrap_or_default()),
        name: name_of(c),
        owner,
        state: workload_state,
        restart_count: c
            .restart_count
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        endpoint: endpoint_of(c, port),
    })
}

/// The host address the workload's port is published on: that of `port` when known, else
/// the first published one. An unspecified host address (`0.0.0.0`) is reported as loopback,
/// the address the platform's prober and proxy can always use.
fn endpoint_of(c: &ContainerInspectResponse, port: Option<u16>) -> Option<SocketAddr> {
    let ports = c.network_settings.as_ref()?.ports.as_ref()?;
    let binding = |key: &str| -> Option<SocketAddr> {
        let bindings = ports.get(key)?.as_ref()?;
        bindings.iter().find_map(|b| {
            let port: u16 = b.host_port.as_deref()?.parse().ok()?;
            let ip: IpAddr = match b.host_ip.as_deref() {
                None | Some("") => IpAddr::V4(Ipv4Addr::LOCALHOST),
                Some(ip) => ip.parse().ok()?,
            };
            let ip = match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                other => other,
            };
            Some(SocketAddr::new(ip, port))
        })
    };
    match port {
        Some(p) => binding(&format!("{p}/tcp")),
        None => {
            let mut keys: Vec<&String> = ports.keys().collect();
            keys.sort();
            keys.into_iter().find_map(|k| binding(k))
        }
    }
}

/// CPU and memory from one stats sample, computed the way `docker stats` does.
pub(crate) fn stats_of(s: &ContainerStatsResponse) -> WorkloadStats {
    let cpu = s.cpu_stats.as_ref();
    let pre = s.precpu_stats.as_ref();
    let total = |c: Option<&bollard::models::ContainerCpuStats>| {
        c.and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let system = |c: Option<&bollard::models::ContainerCpuStats>| {
        c.and_then(|c| c.system_cpu_usage).unwrap_or(0)
    };
    let cpu_delta = total(cpu).saturating_sub(total(pre));
    let system_delta = system(cpu).saturating_sub(system(pre));
    let online = cpu
        .and_then(|c| {
            c.online_cpus.map(u64::from).or_else(|| {
                c.cpu_usage
                    .as_ref()
                    .and_then(|u| u.percpu_usage.as_ref())
                    .map(|v| v.len() as u64)
            })
        })
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let cpu_percent = if cpu_delta > 0 && system_delta > 0 {
        cpu_delta as f64 / system_delta as f64 * online as f64 * 100.0
    } else {
        0.0
    };
    let memory = s.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    // Page cache the kernel can drop is not memory the workload holds: cgroup v1 reports it as
    // `total_inactive_file`, v2 as `inactive_file` (what `docker stats` subtracts too).
    let inactive = memory
        .and_then(|m| m.stats.as_ref())
        .and_then(|st| {
            st.get("total_inactive_file")
                .or_else(|| st.get("inactive_file"))
                .copied()
        })
        .unwrap_or(0);
    WorkloadStats {
        cpu_percent,
        memory_bytes: if inactive < usage {
            usage - inactive
        } else {
            usage
        },
        memory_limit_bytes: memory.and_then(|m| m.limit).filter(|l| *l > 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{
        ContainerConfig, ContainerCpuStats, ContainerCpuUsage, ContainerMemoryStats,
        ContainerState, NetworkSettings,
    };
    use clank_core::config::EnvValue;
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
    use clank_core::model::VolumeMount;
    use clank_core::runtime::{NetworkAttachment, PortBinding as Publish};
    use clank_core::secret::SecretString;

    fn owner() -> Owner {
        Owner {
            workspace: WorkspaceId::new(),
            project: ProjectId::new(),
            environment: EnvironmentId::new(),
            service: ServiceId::new(),
            deployment: DeploymentId::new(),
            process: "web".into(),
            replica: 1,
        }
    }

    fn spec() -> WorkloadSpec {
        WorkloadSpec {
            name: "clank-shop--production--api--3--web--1".into(),
            owner: owner(),
            image: Some("clank-testapp:latest".parse().unwrap()),
            command: Some(vec!["/bin/busybox".into(), "sh".into()]),
            env: vec![
                ("A".into(), EnvValue::Plain("1".into())),
                (
                    "TOKEN".into(),
                    EnvValue::Secret(SecretString::new("s3cr3t")),
                ),
            ],
            working_dir: Some("/app".into()),
            port: Some(8080),
            publish: Some(Publish::loopback()),
            network: Some(NetworkAttachment {
                network: "clank-project-shop".into(),
                aliases: vec!["api".into()],
            }),
            volumes: vec![VolumeMount {
                name: "clank-shop-api-data".into(),
                mount_path: "/data".into(),
                shared: false,
            }],
            cpu_limit: 0.5,
            memory_limit_mb: 64,
            restart: RestartPolicy::OnFailure { max_retries: 3 },
        }
    }

    #[test]
    fn create_body_carries_limits_labels_ports_volumes_and_aliases() {
        let spec = spec();
        let body = create_body(&spec, "clank-testapp:latest");
        let hc = body.host_config.as_ref().unwrap();
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory, Some(64 * MIB));
        assert_eq!(hc.memory_swap, Some(64 * MIB));
        let restart = hc.restart_policy.as_ref().unwrap();
        assert_eq!(restart.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(restart.maximum_retry_count, Some(3));
        let binding = &hc.port_bindings.as_ref().unwrap()["8080/tcp"]
            .as_ref()
            .unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding.host_port.as_deref(), Some(""));
        let mount = &hc.mounts.as_ref().unwrap()[0];
        assert_eq!(mount.typ, Some(MountType::VOLUME));
        assert_eq!(mount.source.as_deref(), Some("clank-shop-api-data"));
        assert_eq!(hc.network_mode.as_deref(), Some("clank-project-shop"));
        let endpoints = body
            .networking_config
            .as_ref()
            .unwrap()
            .endpoints_config
            .as_ref()
            .unwrap();
        assert_eq!(
            endpoints["clank-project-shop"].aliases.as_deref(),
            Some(&["api".to_owned()][..])
        );
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(owner_of(Some(labels)), Some(spec.owner.clone()));
        assert_eq!(labels[PORT_LABEL], "8080");
        assert_eq!(
            body.env.as_deref(),
            Some(&["A=1".to_owned(), "TOKEN=s3cr3t".to_owned()][..])
        );
        assert_eq!(body.exposed_ports, Some(vec!["8080/tcp".to_owned()]));
    }

    #[test]
    fn restart_policies_map_to_dockers_names() {
        assert_eq!(
            restart_policy(RestartPolicy::Never).name,
            Some(RestartPolicyNameEnum::NO)
        );
        assert_eq!(
            restart_policy(RestartPolicy::UnlessStopped).name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
    }

    fn inspected(
        status: ContainerStateStatusEnum,
        spec: &WorkloadSpec,
    ) -> ContainerInspectResponse {
        let body = create_body(spec, "img");
        ContainerInspectResponse {
            id: Some("abc123".into()),
            name: Some(format!("/{}", spec.name)),
            restart_count: Some(2),
            state: Some(ContainerState {
                status: Some(status),
                exit_code: Some(137),
                oom_killed: Some(true),
                started_at: Some("2024-05-01T12:34:56.123456789Z".into()),
                finished_at: Some("2024-05-01T12:35:00Z".into()),
                ..ContainerState::default()
            }),
            config: Some(ContainerConfig {
                labels: body.labels,
                ..ContainerConfig::default()
            }),
            network_settings: Some(NetworkSettings {
                ports: Some(HashMap::from([
                    ("9000/tcp".to_owned(), None),
                    (
                        "8080/tcp".to_owned(),
                        Some(vec![PortBinding {
                            host_ip: Some("0.0.0.0".into()),
                            host_port: Some("49153".into()),
                        }]),
                    ),
                ])),
                ..NetworkSettings::default()
            }),
            ..ContainerInspectResponse::default()
        }
    }

    #[test]
    fn inspection_maps_state_exit_oom_restarts_times_and_endpoint() {
        let spec = spec();
        let running = status_of(&inspected(ContainerStateStatusEnum::RUNNING, &spec)).unwrap();
        assert_eq!(running.name, spec.name);
        assert_eq!(running.owner, spec.owner);
        assert_eq!(running.restart_count, 2);
        assert_eq!(
            running.state,
            WorkloadState::Running {
                started_at: clank_core::Timestamp(1_714_566_896_123)
            }
        );
        assert_eq!(running.endpoint, Some("127.0.0.1:49153".parse().unwrap()));
        let exited = status_of(&inspected(ContainerStateStatusEnum::EXITED, &spec)).unwrap();
        assert_eq!(
            exited.state,
            WorkloadState::Exited {
                code: Some(137),
                oom_killed: true,
                finished_at: Some(clank_core::Timestamp(1_714_566_900_000)),
            }
        );
        let mut foreign = inspected(ContainerStateStatusEnum::RUNNING, &spec);
        foreign.config = Some(ContainerConfig::default());
        assert_eq!(status_of(&foreign), None);
    }

    #[test]
    fn stats_compute_cpu_from_deltas_and_memory_without_page_cache() {
        let sample = |total, system| ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..ContainerCpuUsage::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(2),
            ..ContainerCpuStats::default()
        };
        let s = ContainerStatsResponse {
            precpu_stats: Some(sample(1_000, 10_000)),
            cpu_stats: Some(sample(1_500, 12_000)),
            memory_stats: Some(ContainerMemoryStats {
                usage: Some(10 * 1024 * 1024),
                limit: Some(64 * 1024 * 1024),
                stats: Some(HashMap::from([(
                    "total_inactive_file".to_owned(),
                    2 * 1024 * 1024,
                )])),
                ..ContainerMemoryStats::default()
            }),
            ..ContainerStatsResponse::default()
        };
        let stats = stats_of(&s);
        assert!((stats.cpu_percent - 50.0).abs() < 1e-9, "{stats:?}");
        assert_eq!(stats.memory_bytes, 8 * 1024 * 1024);
        assert_eq!(stats.memory_limit_bytes, Some(64 * 1024 * 1024));
        assert_eq!(
            stats_of(&ContainerStatsResponse::default()).cpu_percent,
            0.0
        );
    }
}
