//! Endpoint modes the engine applies, on the real Docker Engine: a `byo_proxy` endpoint
//! publishes the `web` container's port on the host address and port the user asked for, and
//! its redeploys and rollbacks cut over stop-first (the old version gives the port back, and
//! gets it again when the new one fails); a `cloudflare_tunnel` endpoint runs its `cloudflared`
//! connector as a workload of the deployment.
//!
//! No image can be pulled here, so the connector runs a local stand-in tagged with its image
//! name. These tests fail (never skip) without a Docker Engine.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::ImageRef;
use clank_core::config::ConfigChange;
use clank_core::deploy::DeploymentStatus;
use clank_core::endpoint::{CLOUDFLARED_IMAGE, CLOUDFLARED_PROCESS, TUNNEL_TOKEN_ENV};
use clank_core::id::DeploymentId;
use clank_core::model::{Endpoint, Service, ServiceSource};
use clank_core::proxy::Proxy;
use clank_core::runtime::{OwnerFilter, Runtime, WorkloadState, WorkloadStatus};
use clank_engine::Event;
use clank_testkit::http;
use clank_testkit::testapp::docker::{build_stand_in, remove_stand_in};
use common::Platform;
use futures_util::StreamExt;

/// A port free on loopback right now (the kernel's pick, released at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test app service, tweaked (each test first checks for an engine: see `common::docker`).
async fn platform(tweak: impl FnOnce(&mut Service)) -> Platform {
    Platform::image_service(tweak)
        .await
        .expect("these tests need a reachable Docker Engine")
}

/// A `byo_proxy` endpoint on `127.0.0.1:port`.
fn byo_proxy(port: u16) -> impl FnOnce(&mut Service) {
    move |s: &mut Service| {
        s.endpoint = Some(Endpoint::ByoProxy {
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: port,
        });
        s.settings.deploy_timeout_s = 20;
    }
}

/// What the app on the fixed port answers for `GET /env?VERSION`.
async fn version_on(port: u16) -> String {
    let res = http::get(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "/env?VERSION",
        Duration::from_secs(2),
    )
    .await
    .unwrap_or_else(|e| panic!("nothing answers on 127.0.0.1:{port}: {e}"));
    assert_eq!(res.status, 200, "{}", res.body);
    res.body.trim().to_owned()
}

/// Every workload of the platform's service, whatever deployment it belongs to.
async fn service_workloads(p: &Platform) -> Vec<WorkloadStatus> {
    p.runtime
        .list(&OwnerFilter {
            service: Some(p.service),
            ..OwnerFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_publishes_the_web_port_on_the_requested_host_address() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let port = free_port();
    let p = platform(byo_proxy(port)).await;
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    let requested = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(p.web_endpoint(d.id).await, requested);
    let res = http::get(requested, "/health", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_redeploy_stops_the_old_version_first_and_the_port_answers_with_the_new_one() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let port = free_port();
    let p = platform(byo_proxy(port)).await;
    p.set_env("VERSION", "one").await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    assert_eq!(version_on(port).await, "one");

    p.set_env("VERSION", "two").await;
    let second = p.deploy().await;
    p.wait_for(second.id, DeploymentStatus::Active, Duration::from_secs(40))
        .await;
    p.wait_until_retired(first.id, Duration::from_secs(20))
        .await;
    assert_eq!(version_on(port).await, "two");
    assert_eq!(p.active().await, Some(second.id));
    let left = service_workloads(&p).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].owner.deployment, second.id);
    let log = p.log_of(second.id).await.join("\n");
    assert!(log.contains("stop-first cutover"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_redeploy_failing_health_checks_restores_the_old_version_on_the_port() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let port = free_port();
    let p = platform(|s| {
        byo_proxy(port)(s);
        // Failing health checks end the new version at this deadline.
        s.settings.deploy_timeout_s = 8;
    })
    .await;
    p.set_env("VERSION", "one").await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;

    p.set_env("VERSION", "two").await;
    p.set_env("HEALTH", "fail").await;
    let second = p.deploy().await;
    let failed = p
        .wait_for(second.id, DeploymentStatus::Failed, Duration::from_secs(40))
        .await;
    let reason = failed.state.reason.clone().unwrap_or_default();
    assert!(reason.contains("HTTP 503"), "{reason}");
    assert!(
        reason.contains("the previous version was restored"),
        "{reason}"
    );
    assert_eq!(p.active().await, Some(first.id));
    assert_eq!(version_on(port).await, "one");
    assert_eq!(p.containers_of(second.id).await, 0);
    let left = service_workloads(&p).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        matches!(left[0].state, WorkloadState::Running { .. }),
        "{left:?}"
    );
    let log = p.log_of(second.id).await.join("\n");
    assert!(log.contains("stop-first cutover"), "{log}");
    assert!(
        log.contains(&format!("restored #{}", first.number)),
        "{log}"
    );
    // While stopped for the cutover the old version was left alone (not restarted as crashed).
    let old_log = p.log_of(first.id).await.join("\n");
    assert!(
        old_log.contains("stopped for the stop-first cutover"),
        "{old_log}"
    );
    assert!(!old_log.contains("restarting"), "{old_log}");
    assert!(old_log.contains("started again after"), "{old_log}");
    // The restored version is still the one the engine keeps alive afterwards.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(p.active().await, Some(first.id));
    assert_eq!(version_on(port).await, "one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_redeploy_whose_image_is_missing_fails_before_the_old_version_is_stopped() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let port = free_port();
    let p = platform(byo_proxy(port)).await;
    p.set_env("VERSION", "one").await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;

    p.update_service(|next| {
        next.source = ServiceSource::DockerImage {
            image: "clank-no-such-image:v404".parse::<ImageRef>().unwrap(),
            credentials_secret: None,
        };
    })
    .await;
    let second = p.deploy().await;
    let failed = p
        .wait_for(second.id, DeploymentStatus::Failed, Duration::from_secs(60))
        .await;
    let reason = failed.state.reason.clone().unwrap_or_default();
    assert!(reason.contains("clank-no-such-image"), "{reason}");
    assert!(!reason.contains("restored"), "{reason}");
    let old_log = p.log_of(first.id).await.join("\n");
    assert!(!old_log.contains("stopped for"), "{old_log}");
    assert_eq!(p.active().await, Some(first.id));
    assert_eq!(version_on(port).await, "one");
    p.wait_until_retired(second.id, Duration::from_secs(15))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_proxy_rollback_cuts_over_stop_first_to_the_earlier_version() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let port = free_port();
    let p = platform(byo_proxy(port)).await;
    p.set_env("VERSION", "one").await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    p.set_env("VERSION", "two").await;
    let second = p.deploy().await;
    p.wait_for(second.id, DeploymentStatus::Active, Duration::from_secs(40))
        .await;
    assert_eq!(version_on(port).await, "two");

    let rollback = p.engine.rollback(p.service, first.id).await.unwrap();
    p.wait_for(
        rollback.id,
        DeploymentStatus::Active,
        Duration::from_secs(40),
    )
    .await;
    p.wait_until_retired(second.id, Duration::from_secs(20))
        .await;
    assert_eq!(version_on(port).await, "one");
    let left = service_workloads(&p).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].owner.deployment, rollback.id);
    let log = p.log_of(rollback.id).await.join("\n");
    assert!(log.contains("stop-first cutover"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// cloudflare_tunnel

const TOKEN_SECRET: &str = "CF_TUNNEL_TOKEN";
const TOKEN: &str = "eyJhIjoic3RhbmQtaW4tdHVubmVsLXRva2VuIn0";

/// One test at a time owns the stand-in tag (each removes it when done).
static STAND_IN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a stand-in connector idles with (stopping on SIGTERM), whatever arguments it gets.
const IDLE: &str = "trap 'exit 0' TERM INT; /bin/busybox sleep 3600 & wait";

/// The connector image's stand-in: the test app image running `script` with whatever
/// arguments it gets. Removed on drop, after the platform's containers are gone.
struct StandIn {
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl StandIn {
    async fn tag(script: &str) -> StandIn {
        let turn = STAND_IN.lock().await;
        let runtime = common::docker()
            .await
            .expect("these tests need a reachable Docker Engine");
        build_stand_in(
            runtime.client(),
            CLOUDFLARED_IMAGE,
            &["/bin/busybox", "sh", "-c", script, "cloudflared"],
        )
        .await
        .unwrap();
        StandIn { _turn: turn }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(runtime) = clank_docker::DockerRuntime::connect().await {
                    let _ = remove_stand_in(runtime.client(), CLOUDFLARED_IMAGE).await;
                }
            });
        })
        .join();
    }
}

fn tunnel(s: &mut Service) {
    s.endpoint = Some(Endpoint::CloudflareTunnel {
        hostname: "shop.example.com".into(),
        token_secret: TOKEN_SECRET.into(),
    });
}

/// Every event published from now on, gathered in the background.
fn record_events(p: &Platform) -> Arc<Mutex<Vec<Event>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut events = p.engine.events();
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            sink.lock().unwrap().push(e);
        }
    });
    seen
}

/// The token appears in no deploy log line and no event of these deployments.
async fn assert_token_never_shown(p: &Platform, events: &Mutex<Vec<Event>>, ds: &[DeploymentId]) {
    for d in ds {
        let log = p.log_of(*d).await.join("\n");
        assert!(!log.is_empty());
        assert!(
            !log.contains(TOKEN),
            "the token is in the deploy log:\n{log}"
        );
    }
    let events = events.lock().unwrap();
    assert!(!events.is_empty());
    for e in events.iter() {
        let json = serde_json::to_string(e).unwrap();
        assert!(!json.contains(TOKEN), "the token is in an event: {json}");
    }
}

/// The deployment's connector workload.
async fn connector_of(p: &Platform, d: DeploymentId) -> Option<WorkloadStatus> {
    p.runtime
        .list(&OwnerFilter {
            deployment: Some(d),
            ..OwnerFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.owner.process == CLOUDFLARED_PROCESS)
}

/// The connector of `d` runs the connector image with exactly the connector's argv, the token
/// only in its environment, attached to the project network, publishing nothing.
async fn assert_connector_runs(p: &Platform, d: DeploymentId) {
    let w = connector_of(p, d)
        .await
        .unwrap_or_else(|| panic!("deployment {d} has no connector workload"));
    assert!(matches!(w.state, WorkloadState::Running { .. }), "{w:?}");
    assert_eq!(w.endpoint, None, "{w:?}");
    let c = p
        .runtime
        .client()
        .inspect_container(&w.id.0, None)
        .await
        .unwrap();
    let config = c.config.unwrap();
    assert_eq!(config.image.as_deref(), Some(CLOUDFLARED_IMAGE));
    assert_eq!(
        config.cmd.unwrap_or_default(),
        ["tunnel", "--no-autoupdate", "run"]
    );
    let env = config.env.unwrap_or_default();
    assert!(
        env.contains(&format!("{TUNNEL_TOKEN_ENV}={TOKEN}")),
        "no {TUNNEL_TOKEN_ENV} in the connector's env"
    );
    let argv: Vec<String> = config
        .entrypoint
        .unwrap_or_default()
        .into_iter()
        .chain(c.args.unwrap_or_default())
        .collect();
    assert!(!argv.iter().any(|a| a.contains(TOKEN)), "token in argv");
    let networks = c.network_settings.unwrap().networks.unwrap_or_default();
    assert!(networks.contains_key(&p.network), "{networks:?}");
    let bindings = c.host_config.unwrap().port_bindings.unwrap_or_default();
    assert!(
        bindings
            .values()
            .all(|b| b.as_ref().is_none_or(Vec::is_empty)),
        "the connector publishes {bindings:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_tunnel_runs_its_connector_with_the_deployment_and_rollback_brings_it_back() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let _stand_in = StandIn::tag(IDLE).await;
    let p = platform(tunnel).await;
    let events = record_events(&p);
    p.set_config(ConfigChange::set_secret(TOKEN_SECRET, TOKEN))
        .await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;
    assert_connector_runs(&p, first.id).await;
    // The platform's proxy serves no name for a tunnel: Cloudflare's edge is the way in.
    let route = p.routes.route(p.service).await.unwrap().unwrap();
    assert!(route.endpoint.unwrap().routed_domains().is_empty());

    // A rollback is a new deployment with a connector of its own; the superseded one's
    // connector goes with its other workloads.
    let rollback = p.engine.rollback(p.service, first.id).await.unwrap();
    p.wait_for(
        rollback.id,
        DeploymentStatus::Active,
        Duration::from_secs(30),
    )
    .await;
    p.wait_until_retired(first.id, Duration::from_secs(20))
        .await;
    assert_connector_runs(&p, rollback.id).await;
    assert_eq!(service_workloads(&p).await.len(), 2);
    assert_token_never_shown(&p, &events, &[first.id, rollback.id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_tunnel_without_its_token_secret_fails_naming_the_key_and_the_running_version_stays()
 {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    let _stand_in = StandIn::tag(IDLE).await;
    let p = platform(tunnel).await;
    let events = record_events(&p);
    p.set_config(ConfigChange::set_secret(TOKEN_SECRET, TOKEN))
        .await;
    let first = p.deploy().await;
    p.wait_for(first.id, DeploymentStatus::Active, Duration::from_secs(30))
        .await;

    p.set_config(ConfigChange::unset(TOKEN_SECRET)).await;
    let second = p.deploy().await;
    let failed = p
        .wait_for(second.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    let reason = failed.state.reason.clone().unwrap_or_default();
    assert!(reason.contains(&format!("`{TOKEN_SECRET}`")), "{reason}");
    p.wait_until_retired(second.id, Duration::from_secs(15))
        .await;
    assert_eq!(p.active().await, Some(first.id));
    assert_connector_runs(&p, first.id).await;
    assert_token_never_shown(&p, &events, &[first.id, second.id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudflare_tunnel_whose_connector_exits_fails_the_deployment() {
    // Without an engine: skipped locally, a failure in CI.
    let Some(_) = common::docker().await else {
        return;
    };
    // Not probed over HTTP (it publishes nothing), but it must be running.
    let _stand_in = StandIn::tag("echo 'connector refused the token' >&2; exit 3").await;
    let p = platform(tunnel).await;
    p.set_config(ConfigChange::set_secret(TOKEN_SECRET, TOKEN))
        .await;
    let (d, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(reason.contains("exited"), "{reason}");
    p.wait_until_retired(d.id, Duration::from_secs(15)).await;
    assert_eq!(p.active().await, None);
}
