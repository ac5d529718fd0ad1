//! From a deployment's snapshot to the workloads a runtime starts: names, owners, environment,
//! and the workload an endpoint mode runs beside them (the `cloudflared` connector).

use clank_core::config::EnvValue;
use clank_core::endpoint::{self, CLOUDFLARED_PROCESS, EndpointContext, EndpointPlan};
use clank_core::model::{Deployment, Endpoint, Environment, ProcessSpec, Project, Service};
use clank_core::runtime::{
    NetworkAttachment, Owner, PortBinding, RestartPolicy, WorkloadSpec, workload_name,
};
use clank_core::secret::SecretString;
use clank_core::{Error, InvalidInput, Result};

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
    environment: &Environment,
    service: &Service,
    d: &Deployment,
    default: PortBinding,
) -> Result<PortBinding> {
    let plan = endpoint_plan(project, environment, service, d)?;
    Ok(plan.and_then(|p| p.host_publish()).unwrap_or(default))
}

/// The plan of the endpoint the deployment applies (none unless public with a port).
fn endpoint_plan(
    project: &Project,
    environment: &Environment,
    service: &Service,
    d: &Deployment,
) -> Result<Option<EndpointPlan>> {
    let (Some(endpoint), Some(port)) = (d.snapshot.applied_endpoint(), d.snapshot.settings.port)
    else {
        return Ok(None);
    };
    let plan = endpoint::plan(
        endpoint,
        &EndpointContext {
            service_alias: service.slug.clone(),
            network: project.network_of(environment),
            container_port: port,
        },
    )?;
    Ok(Some(plan))
}

/// How many workloads a deployment runs: its processes' replicas, plus the connector of a
/// `cloudflare_tunnel` endpoint.
pub(crate) fn expected_workloads(d: &Deployment) -> u32 {
    let processes: u32 = d.snapshot.processes.values().map(|p| p.replicas).sum();
    let connector = matches!(
        d.snapshot.applied_endpoint(),
        Some(Endpoint::CloudflareTunnel { .. })
    );
    processes + u32::from(connector)
}

/// The tunnel token: the decrypted config secret the endpoint's `token_secret` names. The
/// planner refuses a deployment without it before anything starts; this is the last guard.
fn tunnel_token(
    d: &Deployment,
    token_secret: &str,
    user_env: &[(String, EnvValue)],
) -> Result<SecretString> {
    let found = user_env.iter().find_map(|(key, value)| match value {
        EnvValue::Secret(token) if key == token_secret => Some(token.clone()),
        _ => None,
    });
    found.ok_or_else(|| {
        let reason = endpoint::missing_config(&d.snapshot).unwrap_or_else(|| {
            format!("the cloudflare_tunnel endpoint's token_secret `{token_secret}` is missing")
        });
        Error::Invalid(InvalidInput::new(
            "endpoint.token_secret",
            "required",
            reason,
        ))
    })
}

/// Every workload of a deployment: `replicas` instances of each process type, and the
/// endpoint's connector (process [`CLOUDFLARED_PROCESS`]) for a `cloudflare_tunnel`. Only `web`
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
    let owner = |process: &str, replica: u32| Owner {
        workspace: d.workspace_id,
        project: d.project_id,
        environment: d.environment_id,
        service: d.service_id,
        deployment: d.id,
        process: process.to_owned(),
        replica,
    };
    let name = |process: &str, replica: u32| {
        workload_name(
            d.workspace_id,
            &project.slug,
            &environment.name,
            &service.slug,
            d.number,
            process,
            replica,
        )
    };
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
                name: name(process, replica)?,
                owner: owner(process, replica),
                image: Some(image.clone()),
                command: spec.command.clone(),
                env,
                working_dir: None,
                port: snap.settings.port,
                publish: (web && snap.settings.port.is_some()).then_some(publish),
                network: Some(NetworkAttachment {
                    network: project.network_of(environment),
                    // Other services of the project reach this one by its slug.
                    aliases: if web {
                        vec![service.slug.clone()]
                    } else {
                        vec![]
                    },
                }),
                volumes: runtime_volumes(d),
                cpu_limit: snap.settings.cpu_limit,
                memory_limit_mb: snap.settings.memory_limit_mb,
                restart: RestartPolicy::UnlessStopped,
            });
        }
    }
    let plan = endpoint_plan(project, environment, service, d)?;
    if let Some(connector) = plan.as_ref().and_then(EndpointPlan::connector) {
        // The connector belongs to the deployment: it starts, stops and is removed with it.
        let token = tunnel_token(d, &connector.token_secret, user_env)?;
        specs.push(connector.workload_spec(
            name(CLOUDFLARED_PROCESS, 0)?,
            owner(CLOUDFLARED_PROCESS, 0),
            token,
        ));
    }
    Ok(specs)
}

/// The snapshot's volumes under the names the runtime gives them: scoped to the workspace
/// ([`clank_core::runtime::volume_runtime_name`]), mounted where the service asked.
pub(crate) fn runtime_volumes(d: &Deployment) -> Vec<clank_core::model::VolumeMount> {
    d.snapshot
        .volumes
        .iter()
        .map(|v| clank_core::model::VolumeMount {
            name: clank_core::runtime::volume_runtime_name(d.workspace_id, &v.name),
            ..v.clone()
        })
        .collect()
}
