//! Clank's main job on the embedded defaults, through the library's `Platform`: a redb store
//! and keyring in `./clank-data` (or `$CLANK_DATA`), the local Docker Engine — or native
//! processes when no engine is reachable — and the deploy engine. It deploys a service,
//! redeploys it with new config, rolls back (image *and* config), and prints every event.
//!
//! Run: `cargo run --release -p clank-examples --example deploy`

use std::path::PathBuf;
use std::time::Duration;

use clank_core::address::ServiceAddress;
use clank_core::config::ConfigChange;
use clank_core::model::{ServiceSource, Trigger};
use clank_engine::EventKind;
use clank_platform::{ConfigTarget, DeploymentView, EmbeddedOptions, Platform, ServiceSpec};
use clank_testkit::{http, testapp};
use futures_util::StreamExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Find-or-create `default/demo/production/hello` running the demo app, so reruns continue
/// the service's history.
async fn demo_service(p: &Platform, data: &std::path::Path) -> Result<ServiceAddress, BoxError> {
    p.ensure_workspace("default").await?;
    let project = p.parse_project("demo")?;
    if p.project(&project).await.is_err() {
        p.create_project("default", "Demo", Some("demo")).await?;
    }
    let addr = p.parse_service("demo/hello")?;
    if p.service(&addr).await.is_ok() {
        return Ok(addr);
    }
    let mut spec = ServiceSpec {
        slug: "hello".into(),
        name: None,
        source: ServiceSource::DockerImage {
            image: testapp::IMAGE.parse()?,
        },
        settings: Default::default(),
        volumes: Vec::new(),
        endpoint: None,
        processes: None,
        server_id: None,
    };
    spec.settings.health_check_interval_s = 2;
    if p.engine().runtime().name() == "process" {
        // Native processes run a command, not an image: the same app from a directory.
        let app = data.join("app");
        testapp::write_testapp(&app)?;
        let start = app.join("start.sh").to_string_lossy().into_owned();
        let web = clank_core::model::ProcessSpec {
            command: Some(vec![testapp::BUSYBOX.to_owned(), "sh".to_owned(), start]),
            replicas: 1,
        };
        spec.processes = Some([("web".to_owned(), web)].into_iter().collect());
    }
    p.create_service(addr.environment_address(), spec).await?;
    Ok(addr)
}

async fn greeting(
    p: &Platform,
    addr: &ServiceAddress,
    d: &DeploymentView,
) -> Result<String, BoxError> {
    let endpoint = *p
        .endpoints(addr, d.number)
        .await?
        .first()
        .ok_or("no endpoint")?;
    let body = http::get(endpoint, "/env?GREETING", Duration::from_secs(2))
        .await?
        .body;
    Ok(format!(
        "http://{endpoint}/env?GREETING says {:?}",
        body.trim()
    ))
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let data = PathBuf::from(std::env::var("CLANK_DATA").unwrap_or_else(|_| "clank-data".into()));
    println!("data:    {}", data.display());
    let p = Platform::open(EmbeddedOptions::new(&data)).await?;
    println!("runtime: {}", p.engine().runtime().name());
    if p.engine().runtime().name() == "docker" {
        // No registry is reachable: the demo app's image is built locally from busybox.
        let docker = clank_docker::DockerRuntime::connect().await?;
        testapp::docker::ensure_testapp_image(docker.client()).await?;
    }
    let addr = demo_service(&p, &data).await?;

    let mut events = p.events();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            match e.kind {
                EventKind::Transition { from, to, reason } => println!(
                    "  #{:<3} {from} → {to}{}",
                    e.number,
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                EventKind::Log { message }
                    if message.starts_with("health") || message.starts_with("traffic") =>
                {
                    println!("  #{:<3}   {message}", e.number)
                }
                _ => {}
            }
        }
    });
    let engine = p.clone();
    let reconciler = tokio::spawn(async move { engine.run(std::future::pending()).await });
    let target = ConfigTarget::Service(addr.clone());
    let wait = Duration::from_secs(120);

    p.set_config(
        &target,
        &[ConfigChange::set_plain(
            "GREETING",
            "hello from the first deploy",
        )],
    )
    .await?;
    println!("\n1. deploy");
    let first = p.deploy(&addr, Trigger::Manual { by: None }).await?;
    let first = p.wait(&addr, first.number, wait).await?;
    println!(
        "   #{} is {}: {}",
        first.number,
        first.status,
        greeting(&p, &addr, &first).await?
    );

    p.set_config(
        &target,
        &[ConfigChange::set_plain(
            "GREETING",
            "hello from the second deploy",
        )],
    )
    .await?;
    println!("\n2. redeploy with new config");
    let second = p.deploy(&addr, Trigger::Manual { by: None }).await?;
    let second = p.wait(&addr, second.number, wait).await?;
    println!(
        "   #{} is {}: {}",
        second.number,
        second.status,
        greeting(&p, &addr, &second).await?
    );

    println!("\n3. roll back to #{} (image and config)", first.number);
    let back = p.rollback(&addr, first.number).await?;
    let back = p.wait(&addr, back.number, wait).await?;
    println!(
        "   #{} is {}: {}",
        back.number,
        back.status,
        greeting(&p, &addr, &back).await?
    );

    // Let the old version's retirement finish before summarising.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("\ndeployments of {addr} (newest first):");
    for d in p.deployments(&addr, 6, None).await? {
        println!(
            "  #{:<3} {:<11} {:?}",
            d.number,
            d.status.as_str(),
            d.trigger
        );
    }
    reconciler.abort();
    println!(
        "\nhello stays ACTIVE (#{}); run again to continue its history.",
        back.number
    );
    Ok(())
}
