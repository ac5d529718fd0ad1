//! From a deployment's snapshot to the workloads a runtime starts: names, owners, environment.

use clank_core::config::EnvValue;
use clank_core::endpoint::{self, EndpointContext};
use clank_core::model::{Deployment, Environment, ProcessSpec, Project, Service};
use clank_core::runtime::{
    NetworkAttachment, Owner, PortBinding, RestartPolicy, WorkloadSpec, workload_name,
};
use clank_core::{Error, Result};

/// Variables the platform sets in every workload (users cannot set `CLANK_*` themselves).
fn injected_env(
    project: &Project,
    environment: &Environment,
    service: &Service,
    d: &Deployment,
    process: &str,
    replica: u32,
) -> Vec<(String, EnvValue)> {
    let mut env = vec![
        ("CLANK_PROJECT".to_owned(), project.slug.clone()),
        ("CLANK_ENVIRONMENT".to_owned(), environment.name.clone()),
        ("CLANK_SERVICE".to_owned(), service.slug.clone()),
        ("CLANK_DEPLOYMENT".to_owned(), d.number.to_string()),
        ("CLANK_PROCESS".to_owned(), process.to_owned()),
        ("CLANK_REPLICA".to_owned(), replica.to_string()),
    ];
    if let Some(port) = d.snapshot.settings.port {
        env.push(("PORT".to_owned(), port.to_string()));
    }
    env.into_iter()
        .map(|(k, v)| (k, EnvValue::Plain(v)))
        .collect()
}

/// Where a deployment's `web` workloads publish their port: the host address and port of a
/// `byo_proxy` endpoint (from its endpoint plan; the user's proxy connects there), otherwise
/// `default` (the platform's address, any free port, reached only by the prober and proxy).
pub(crate) fn web_publish(
    project: &Project,
    service: &Service,
    d: &Deployment,
    default: PortBinding,
) -> Result<PortBinding> {
    let snap = &d.snapshot;
    let (Some(endpoint), Some(port), true) =
        (&snap.endpoint, snap.settings.port, snap.settings.is_public)
    else {
        return Ok(default);
    };
    let plan = endpoint::plan(
        endpoint,
        &EndpointContext {
            service_alias: service.slug.clone(),
            network: project.network_name(),
            container_port: port,
        },
    )?;
    Ok(plan.host_publish().unwrap_or(default))
}

/// Every workload of a deployment: `replicas` instances of each process type. Only `web`
/// publishes its port (it is the only one routed and probed).
pub fn workload_specs(
    project: &Project,
    environment: &Environment,
    service: &Service,
    d: &Deployment,
    user_env: &[(String, EnvValue)],
    publish: PortBinding,
) -> Result<Vec<WorkloadSpec>> {
    let image = d.state.image.clone().ok_or_else(|| {
        Error::Internal(format!("deployment #{} has no image to run yet", d.number))
    })?;
    let snap = &d.snapshot;
    let mut specs = Vec::new();
    for (process, spec) in &snap.processes {
        let web = process == ProcessSpec::WEB;
        for replica in 0..spec.replicas {
            let mut env = user_env.to_vec();
            env.extend(injected_env(
                project,
                environment,
                service,
                d,
                process,
                replica,
            ));
            specs.push(WorkloadSpec {
                name: workload_name(
                    &project.slug,
                    &environment.name,
                    &service.slug,
                    d.number,
                    process,
                    replica,
                )?,
                owner: Owner {
                    workspace: d.workspace_id,
                    project: d.project_id,
                    environment: d.environment_id,
                    service: d.service_id,
                    deployment: d.id,
                    process: process.clone(),
                    replica,
                },
                image: Some(image.clone()),
                command: spec.command.clone(),
                env,
                working_dir: None,
                port: snap.settings.port,
                publish: (web && snap.settings.port.is_some()).then_some(publish),
                network: Some(NetworkAttachment {
                    network: project.network_name(),
                    // Other services of the project reach this one by its slug.
                    aliases: if web {
                        vec![service.slug.clone()]
                    } else {
                        vec![]
                    },
                }),
                volumes: snap.volumes.clone(),
                cpu_limit: snap.settings.cpu_limit,
                memory_limit_mb: snap.settings.memory_limit_mb,
                restart: RestartPolicy::UnlessStopped,
            });
        }
    }
    Ok(specs)
}
