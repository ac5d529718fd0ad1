//! Single-writer volumes and the health-check rule, on the real Docker Engine: a redeploy or
//! rollback of a service with a named volume stops the old version before the new one starts
//! (sampled: never two of its containers running), a failing new version gives the volume back
//! to the old one, a volume declared `shared` keeps start-first; a deployment whose app answers
//! wrongly fails after `health_check_retries` probes, one that is still booting is waited for.
//!
//! These tests fail (never skip) without a Docker Engine.

mod common;

use std::time::{Duration, Instant};

use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Service, VolumeMount};
use clank_core::runtime::{ExecRequest, OwnerFilter, Runtime};
use common::{Platform, Sampler};

async fn platform(tweak: impl FnOnce(&mut Service)) -> Platform {
    Platform::image_service(tweak)
        .await
        .expect("these tests need a reachable Docker Engine")
}

/// A volume named after the test's project, so parallel tests never share one.
fn data_volume(p: &Platform, shared: bool) -> VolumeMount {
    VolumeMount {
        name: format!("clank-{}-web-data", p.project_slug),
        mount_path: "/data".into(),
        shared,
    }
}

/// End the test's platform and remove its volume `name` (under its runtime name). The engine
/// stops first: while it runs it would restart the ACTIVE workloads, and their volume with them.
async fn remove_volume(mut p: Platform, name: &str) {
    if let Some(task) = p.loop_task.take() {
        task.abort();
        let _ = task.await;
    }
    let filter = OwnerFilter {
        workspace: Some(p.workspace),
        ..OwnerFilter::default()
    };
    for w in p.runtime.list(&filter).await.unwrap() {
        p.runtime.remove(&w.id).await.unwrap();
    }
    let scoped = clank_core::runtime::volume_runtime_name(p.workspace, name);
    for volume in [scoped.as_str(), name] {
        let _ = p
            .runtime
            .client()
            .remove_volume(
                volume,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await;
    }
    let left = p.runtime.client().inspect_volume(&scoped).await;
    assert!(left.is_err(), "volume {scoped} is still there");
}

/// The lines of `starts.log` on the volume, read through the ACTIVE version.
async fn starts_on_volume(p: &Platform) -> usize {
    let active = p.active().await.expect("an ACTIVE deployment");
    let addr = p.web_endpoint(active).await;
    let res = clank_testkit::http::get(addr, "/env?DATA_DIR", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.body.trim(), "/data");
    let out = p
        .runtime
        .exec(
            &p.runtime
                .list(&OwnerFilter {
                    deployment: Some(active),
                    ..OwnerFilter::default()
                })
                .await
                .unwrap()[0]
                .id,
            &ExecRequest {
                command: vec![
                    "/bin/busybox".into(),
                    "cat".into(),
                    "/data/starts.log".into(),
                ],
                tty: false,
                timeout: Duration::from_secs(10),
            },
        )
        .await
        .unwrap();
    out.stdout.lines().count()
}

#[tokio::test]
async fn redeploys_and_rollbacks_of_a_service_with_a_volume_never_run_two_versions_at_once() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let mut volume = None;
    let p = platform(|s| s.settings.health_check_retries = 3).await;
    let v = data_volume(&p, false);
    volume.get_or_insert(v.name.clone());
    p.update_service(|s| s.volumes = vec![v.clone()]).await;
    p.set_env("DATA_DIR", "/data").await;

    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let sampler = Sampler::start(&p);
    let mut ids = vec![first.id];
    for round in 0..3 {
        p.set_env("VERSION", &format!("v{}", round + 2)).await;
        let next = p.deploy().await;
        p.wait_for(next.id, DeploymentStatus::Active, Duration::from_secs(30))
            .await;
        let log = p.log_of(next.id).await.join("\n");
        assert!(
            log.contains("stop-first cutover") && log.contains("not declared `shared`"),
            "round {round}: {log}"
        );
        ids.push(next.id);
    }
    // A rollback copies the old snapshot, volume included: stop-first too.
    let back = p.engine.rollback(p.service, first.id).await.unwrap();
    p.wait_for(back.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.wait_until_retired(ids[3], Duration::from_secs(10)).await;
    let (max, samples) = sampler.finish().await;
    assert!(
        samples > 50,
        "the sampler saw too little: {samples} samples"
    );
    assert_eq!(
        max, 1,
        "two versions ran at once on one volume ({samples} samples)"
    );
    // Every version started on the same volume, one after the other.
    assert_eq!(starts_on_volume(&p).await, 5);
    remove_volume(p, volume.as_deref().unwrap()).await;
}

#[tokio::test]
async fn a_failing_version_on_a_volume_gives_it_back_to_the_running_one() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let p = platform(|s| s.settings.health_check_retries = 2).await;
    let v = data_volume(&p, false);
    p.update_service(|s| s.volumes = vec![v.clone()]).await;
    p.set_env("DATA_DIR", "/data").await;
    p.set_env("VERSION", "good").await;
    let good = p.deploy().await;
    p.wait_for(good.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;

    p.set_env("VERSION", "broken").await;
    p.set_env("HEALTH", "fail").await;
    let sampler = Sampler::start(&p);
    let broken = p.deploy().await;
    let failed = p
        .wait_for(broken.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let reason = failed.state.reason.unwrap_or_default();
    assert!(
        reason.contains("health_check_retries = 2")
            && reason.contains("HTTP 503")
            && reason.contains("the previous version was restored"),
        "{reason}"
    );
    let (max, _) = sampler.finish().await;
    assert_eq!(max, 1, "the broken version ran beside the good one");
    assert_eq!(p.active().await, Some(good.id));
    let addr = p.web_endpoint(good.id).await;
    let res = clank_testkit::http::get(addr, "/env?VERSION", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.body.trim(), "good");
    assert_eq!(starts_on_volume(&p).await, 3, "good, broken, good again");
    remove_volume(p, &v.name).await;
}

#[tokio::test]
async fn a_volume_declared_shared_keeps_start_first() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let p = platform(|_| {}).await;
    let v = data_volume(&p, true);
    p.update_service(|s| s.volumes = vec![v.clone()]).await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let sampler = Sampler::start(&p);
    let next = p.deploy().await;
    p.wait_for(next.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.wait_until_retired(first.id, Duration::from_secs(10))
        .await;
    let (max, _) = sampler.finish().await;
    assert_eq!(max, 2, "start-first runs both versions during the cutover");
    let log = p.log_of(next.id).await.join("\n");
    assert!(!log.contains("stop-first"), "{log}");
    remove_volume(p, &v.name).await;
}

#[tokio::test]
async fn an_app_answering_wrongly_fails_after_its_retries_not_its_deadline() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let p = platform(|s| {
        s.settings.deploy_timeout_s = 120;
        s.settings.health_check_retries = 3;
    })
    .await;
    p.set_env("HEALTH", "fail").await;
    let started = Instant::now();
    let d = p.deploy().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let took = started.elapsed();
    let reason = failed.state.reason.unwrap_or_default();
    assert!(
        reason.contains(
            "failed 3 time(s) in a row (health_check_retries = 3); last answer: HTTP 503"
        ),
        "{reason}"
    );
    // Three probes an interval (1 s) apart, far inside the 120 s deadline.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    p.wait_until_retired(d.id, Duration::from_secs(15)).await;
}

#[tokio::test]
async fn a_slow_booting_app_is_waited_for_until_it_answers() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let p = platform(|s| {
        s.settings.deploy_timeout_s = 60;
        s.settings.health_check_retries = 1;
    })
    .await;
    // Not listening for 4 s: Docker's port forwarder accepts and closes, probes see no answer.
    p.set_env("START_DELAY", "4").await;
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(40))
        .await;
    let log = p.log_of(d.id).await.join("\n");
    assert!(log.contains("health HTTP GET :8080/health failed"), "{log}");
    assert!(log.contains("health HTTP GET :8080/health passed"), "{log}");
}

/// Two workspaces (tenants) with the same project slug, service slug and volume name on one
/// Docker Engine: both deploy, each on its own network and volume, and neither sees the
/// other's data.
#[tokio::test]
async fn two_tenants_with_the_same_slugs_and_volume_name_never_share_a_network_or_data() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let slug = format!("shop-{}", std::process::id());
    let tenant = |label: &'static str| {
        let slug = slug.clone();
        async move {
            let image = clank_testkit::testapp::IMAGE.parse().unwrap();
            let source = clank_core::model::ServiceSource::DockerImage {
                image,
                credentials_secret: None,
            };
            let p = Platform::in_project(Some(&slug), source, None, |s| {
                s.settings.deploy_timeout_s = 20;
                s.volumes = vec![VolumeMount {
                    name: "clank-shop-web-data".into(),
                    mount_path: "/data".into(),
                    shared: false,
                }];
            })
            .await
            .expect("these tests need a reachable Docker Engine");
            p.set_env("DATA_DIR", "/data").await;
            p.set_env("VERSION", label).await;
            p
        }
    };
    let (a, b) = (tenant("a").await, tenant("b").await);
    let (da, db) = (a.deploy().await, b.deploy().await);
    a.wait_for(da.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    b.wait_for(db.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    assert_ne!(a.network, b.network, "one network for two tenants");
    // A writes; B's volume does not have it.
    let (aa, ba) = (a.web_endpoint(da.id).await, b.web_endpoint(db.id).await);
    let res = clank_testkit::http::get(aa, "/data/write?secret-of-a", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.status, 200, "{}", res.body);
    let read_b = clank_testkit::http::get(ba, "/data", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        !read_b.body.contains("secret-of-a"),
        "B read A's volume: {}",
        read_b.body
    );
    let read_a = clank_testkit::http::get(aa, "/data", Duration::from_secs(2))
        .await
        .unwrap();
    assert!(read_a.body.contains("secret-of-a"), "{}", read_a.body);
    let docker = a.runtime.client().clone();
    drop((a, b));
    for id in [da.workspace_id, db.workspace_id] {
        let name = clank_core::runtime::volume_runtime_name(id, "clank-shop-web-data");
        docker
            .remove_volume(
                &name,
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
            .unwrap_or_else(|e| panic!("volume {name}: {e}"));
    }
}

/// A volume an earlier version of Clank created under the plain name, for this workspace and
/// project, keeps being mounted (its data is the service's); another owner's never is.
#[tokio::test]
async fn a_volume_created_by_an_earlier_version_under_the_plain_name_is_kept() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let p = platform(|_| {}).await;
    let v = data_volume(&p, false);
    p.update_service(|s| s.volumes = vec![v.clone()]).await;
    let project = p.service().await.project_id;
    let labels = clank_core::runtime::Owner::labels_for_project(p.workspace, project);
    p.runtime.ensure_volume(&v.name, &labels).await.unwrap();
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let container = p
        .runtime
        .list(&OwnerFilter {
            deployment: Some(d.id),
            ..OwnerFilter::default()
        })
        .await
        .unwrap()
        .remove(0);
    let mounts = p
        .runtime
        .client()
        .inspect_container(&container.id.0, None)
        .await
        .unwrap()
        .mounts
        .unwrap_or_default();
    let names: Vec<String> = mounts.iter().filter_map(|m| m.name.clone()).collect();
    assert_eq!(
        names,
        vec![v.name.clone()],
        "the earlier volume was not kept"
    );
    remove_volume(p, &v.name).await;
}
