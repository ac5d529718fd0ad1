//! Docker-specific behaviour on the real engine: each fault maps to its own `RuntimeFailure`
//! and leaves nothing behind, bad names never reach the engine, and what `start` asks of the
//! engine (limits, labels, restart policy, aliases, volume labels) is what the engine has.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListContainersOptions, ListNetworksOptions};
use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use clank_core::runtime::{
    NetworkAttachment, Owner, OwnerFilter, PortBinding, RestartPolicy, Runtime, WorkloadSpec,
};
use clank_core::{ErrorKind, RuntimeFailure};
use clank_docker::DockerRuntime;
use clank_testkit::runtime::{TestApp, failure_of};

fn owner() -> Owner {
    Owner {
        workspace: WorkspaceId::new(),
        project: ProjectId::new(),
        environment: EnvironmentId::new(),
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        process: "web".to_owned(),
        replica: 0,
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:010x}", rand::random::<u64>() & 0xff_ffff_ffff)
}

fn app(name: &str, owner: &Owner) -> WorkloadSpec {
    common::app_spec(&TestApp {
        name: name.to_owned(),
        owner: owner.clone(),
        env: Vec::new(),
        command: None,
        data_volume: None,
        network: None,
    })
}

/// Containers (any state) carrying this owner's service label.
async fn containers_of(rt: &DockerRuntime, owner: &Owner) -> Vec<String> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("clank.service={}", owner.service)],
        )])),
        ..ListContainersOptions::default()
    };
    rt.client()
        .list_containers(Some(options))
        .await
        .unwrap_or_else(|e| panic!("list containers: {e}"))
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn cleanup(rt: &DockerRuntime, owner: &Owner) {
    let filter = OwnerFilter {
        service: Some(owner.service),
        ..OwnerFilter::default()
    };
    for w in rt.list(&filter).await.unwrap_or_default() {
        let _ = rt.remove(&w.id).await;
    }
}

#[tokio::test]
async fn unreachable_engine_is_engine_unavailable_naming_the_socket() {
    let socket = format!("/tmp/{}.sock", unique("clank-no-engine"));
    let err = DockerRuntime::connect_socket(&socket)
        .await
        .expect_err("no engine listens there");
    eprintln!("what a user sees: {err}");
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::EngineUnavailable),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    let message = err.to_string();
    assert!(message.contains(&socket), "{message}");
    assert!(message.contains("Docker daemon running"), "{message}");
}

#[tokio::test]
async fn names_docker_would_refuse_are_rejected_before_any_engine_call() {
    // Not a socket: any engine call would fail with EngineUnavailable, so Invalid proves
    // validation ran first.
    let rt = DockerRuntime::unconnected("/dev/null").unwrap_or_else(|e| panic!("{e}"));
    let owner = owner();
    let probe = rt
        .inspect(&clank_core::runtime::WorkloadId("fine-name".to_owned()))
        .await
        .expect_err("nothing to talk to");
    assert_eq!(
        probe.runtime_failure(),
        Some(RuntimeFailure::EngineUnavailable),
        "{probe}"
    );
    let long = "a".repeat(300);
    for bad in ["../x", "a/b", "-rm", long.as_str(), "x?force=1"] {
        let err = rt
            .start(&app(bad, &owner))
            .await
            .expect_err("a bad name must be refused");
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}: {err}");
    }
    let mut spec = app("fine-name", &owner);
    spec.volumes = vec![clank_core::model::VolumeMount {
        name: "../etc".to_owned(),
        mount_path: "/data".to_owned(),
        shared: false,
    }];
    let err = rt
        .start(&spec)
        .await
        .expect_err("a bad volume must be refused");
    assert_eq!(err.field(), Some("volumes[0].name"), "{err}");
    let mut spec = app("fine-name", &owner);
    spec.network = Some(NetworkAttachment {
        network: "clank-project-x".to_owned(),
        aliases: vec!["Not_A_Slug".to_owned()],
    });
    assert_eq!(
        rt.start(&spec).await.expect_err("bad alias").kind(),
        ErrorKind::Invalid
    );
    for bad in ["a/b", "../x", ""] {
        let id = clank_core::runtime::WorkloadId(bad.to_owned());
        assert_eq!(
            rt.inspect(&id).await.expect_err("bad id").kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            rt.remove(&id).await.expect_err("bad id").kind(),
            ErrorKind::Invalid
        );
    }
    for bad in ["a/b", "../x"] {
        let labels = Default::default();
        assert_eq!(
            rt.ensure_network(bad, &labels)
                .await
                .expect_err("bad")
                .kind(),
            ErrorKind::Invalid
        );
        assert_eq!(
            rt.ensure_volume(bad, &labels)
                .await
                .expect_err("bad")
                .kind(),
            ErrorKind::Invalid
        );
    }
}

#[tokio::test]
async fn missing_image_is_image_missing_and_leaves_no_container() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let rt = rt.with_pull_timeout(Duration::from_secs(15));
    let owner = owner();
    let mut spec = app(&unique("ct-noimage"), &owner);
    spec.image = Some(
        "clank-test-missing/nothing:never"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let err = rt.start(&spec).await.expect_err("the image does not exist");
    eprintln!("what a user sees: {err}");
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::ImageMissing),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("clank-test-missing/nothing:never"),
        "{message}"
    );
    assert!(message.contains("registry `docker.io`"), "{message}");
    assert!(containers_of(&rt, &owner).await.is_empty());
}

#[tokio::test]
async fn taken_host_port_is_port_in_use_and_leaves_no_container() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("bind a loopback port: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let owner = owner();
    let mut spec = app(&unique("ct-porttaken"), &owner);
    spec.publish = Some(PortBinding {
        host_ip: "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
        host_port: Some(port),
    });
    let result = rt.start(&spec).await;
    let leftovers = containers_of(&rt, &owner).await;
    cleanup(&rt, &owner).await;
    let err = result.expect_err("the port is taken");
    eprintln!("what a user sees: {err}");
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::PortInUse),
        "{err}"
    );
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert!(
        leftovers.is_empty(),
        "half-created containers: {leftovers:?}"
    );
    drop(listener);
}

#[tokio::test]
async fn a_command_that_cannot_run_is_start_failed_and_leaves_no_container() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let owner = owner();
    let mut spec = app(&unique("ct-badcmd"), &owner);
    spec.command = Some(vec!["/no/such/program".to_owned()]);
    let result = rt.start(&spec).await;
    let leftovers = containers_of(&rt, &owner).await;
    cleanup(&rt, &owner).await;
    let err = result.expect_err("the program does not exist");
    eprintln!("what a user sees: {err}");
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::StartFailed),
        "{err}"
    );
    assert!(err.to_string().contains("/no/such/program"), "{err}");
    assert!(
        leftovers.is_empty(),
        "half-created containers: {leftovers:?}"
    );
}

#[tokio::test]
async fn start_gives_the_engine_limits_labels_restart_policy_aliases_and_volume_labels() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let owner = owner();
    let network = unique("ct-net");
    let volume = unique("ct-vol");
    let project_labels = Owner::labels_for_project(owner.workspace, owner.project);
    rt.ensure_network(&network, &project_labels)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut spec = common::app_spec(&TestApp {
        name: unique("ct-config"),
        owner: owner.clone(),
        env: Vec::new(),
        command: None,
        data_volume: Some(volume.clone()),
        network: Some(NetworkAttachment {
            network: network.clone(),
            aliases: vec!["api".to_owned()],
        }),
    });
    spec.cpu_limit = 0.5;
    spec.memory_limit_mb = 48;
    spec.restart = RestartPolicy::OnFailure { max_retries: 2 };
    let checked = async {
        let status = rt.start(&spec).await.unwrap_or_else(|e| panic!("{e}"));
        let c = rt
            .client()
            .inspect_container(&status.id.0, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let hc = c.host_config.unwrap_or_default();
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory, Some(48 * 1024 * 1024));
        assert_eq!(hc.memory_swap, Some(48 * 1024 * 1024));
        let restart = hc.restart_policy.unwrap_or_default();
        assert_eq!(
            restart.name,
            Some(bollard::models::RestartPolicyNameEnum::ON_FAILURE)
        );
        assert_eq!(restart.maximum_retry_count, Some(2));
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        for (k, v) in owner.labels() {
            assert_eq!(labels.get(&k), Some(&v), "label {k}");
        }
        let endpoints = c
            .network_settings
            .and_then(|n| n.networks)
            .unwrap_or_default();
        let aliases = endpoints
            .get(&network)
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default();
        assert!(aliases.contains(&"api".to_owned()), "{aliases:?}");
        let v = rt
            .client()
            .inspect_volume(&volume)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            v.labels.get("clank.managed").map(String::as_str),
            Some("true")
        );
        assert_eq!(
            v.labels.get("clank.project"),
            Some(&owner.project.to_string())
        );
        assert!(status.endpoint.is_some_and(|e| e.ip().is_loopback()));
    };
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checked)).await;
    cleanup(&rt, &owner).await;
    let _ = rt.remove_network(&network).await;
    let _ = rt.remove_volume(&volume).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn concurrent_ensure_network_from_separate_clients_leaves_exactly_one() {
    let Some(_) = common::docker().await else {
        return;
    };
    let name = unique("ct-race");
    let labels = Owner::labels_for_project(WorkspaceId::new(), ProjectId::new());
    // Separate runtimes, as separate processes would be: no shared in-process lock.
    let mut runtimes = Vec::new();
    for _ in 0..6 {
        runtimes.push(
            DockerRuntime::connect()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let results =
        futures_util::future::join_all(runtimes.iter().map(|rt| rt.ensure_network(&name, &labels)))
            .await;
    let rt = &runtimes[0];
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([("name".to_owned(), vec![name.clone()])])),
    };
    let found: Vec<_> = rt
        .client()
        .list_networks(Some(options))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name.as_str()))
        .collect();
    let _ = rt.remove_network(&name).await;
    for r in results {
        r.unwrap_or_else(|e| panic!("ensure_network: {e}"));
    }
    assert_eq!(
        found.len(),
        1,
        "duplicate networks named {name}: {found:#?}"
    );
}

#[tokio::test]
async fn a_network_or_volume_of_another_project_is_a_name_conflict() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let workspace = WorkspaceId::new();
    let mine = Owner::labels_for_project(workspace, ProjectId::new());
    let theirs = Owner::labels_for_project(workspace, ProjectId::new());
    let network = unique("ct-owned-net");
    let volume = unique("ct-owned-vol");
    rt.ensure_network(&network, &mine)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rt.ensure_volume(&volume, &mine)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let net = rt.ensure_network(&network, &theirs).await;
    let vol = rt.ensure_volume(&volume, &theirs).await;
    let again = rt.ensure_network(&network, &mine).await;
    let _ = rt.remove_network(&network).await;
    let _ = rt.remove_volume(&volume).await;
    assert_eq!(
        failure_of(&net),
        Some(RuntimeFailure::NameConflict),
        "{net:?}"
    );
    assert_eq!(
        failure_of(&vol),
        Some(RuntimeFailure::NameConflict),
        "{vol:?}"
    );
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn removing_a_volume_in_use_fails_and_keeps_it() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let owner = owner();
    let volume = unique("ct-busy-vol");
    let spec = common::app_spec(&TestApp {
        name: unique("ct-busy"),
        owner: owner.clone(),
        env: Vec::new(),
        command: None,
        data_volume: Some(volume.clone()),
        network: None,
    });
    let started = rt.start(&spec).await;
    let removed = rt.remove_volume(&volume).await;
    let still_there = rt.client().inspect_volume(&volume).await.is_ok();
    cleanup(&rt, &owner).await;
    let after = rt.remove_volume(&volume).await;
    started.unwrap_or_else(|e| panic!("{e}"));
    assert!(removed.is_err(), "a volume in use must not be removed");
    assert!(still_there);
    assert!(after.is_ok(), "{after:?}");
}

#[tokio::test]
async fn containers_clank_does_not_manage_are_never_stopped_or_removed() {
    let Some(rt) = common::docker().await else {
        return;
    };
    let name = unique("ct-foreign");
    let options = bollard::query_parameters::CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    let body = bollard::models::ContainerCreateBody {
        image: Some(clank_testkit::testapp::IMAGE.to_owned()),
        ..Default::default()
    };
    rt.client()
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = clank_core::runtime::WorkloadId(name.clone());
    let inspected = rt.inspect(&id).await;
    let stopped = rt.stop(&id, Duration::from_secs(1)).await;
    let removed = rt.remove(&id).await;
    let survived = rt.client().inspect_container(&name, None).await.is_ok();
    let _ = rt
        .client()
        .remove_container(
            &name,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
    assert_eq!(
        inspected.ok(),
        Some(None),
        "a foreign container is no workload"
    );
    assert_eq!(failure_of(&stopped), Some(RuntimeFailure::NameConflict));
    assert_eq!(failure_of(&removed), Some(RuntimeFailure::NameConflict));
    assert!(survived, "the foreign container must survive");
}
