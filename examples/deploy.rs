//! Clank's main job on the embedded defaults, through the library: a redb store in
//! `./clank-data` (or `$CLANK_DATA`), the local Docker Engine — or native processes when no
//! engine is reachable — and the deploy engine. It deploys a service, redeploys it with new
//! config, rolls back (image *and* config), and prints every event on the way.
//!
//! Run: `cargo run --release -p clank-examples --example deploy`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clank_core::Timestamp;
use clank_core::config::{ConfigChange, ConfigLayer, Scope, apply_bulk};
use clank_core::deploy::DeploymentStatus;
use clank_core::id::{DeploymentId, ServiceId};
use clank_core::model::{
    Deployment, Environment, Project, Service, ServiceSource, Trigger, Workspace,
};
use clank_core::runtime::{OwnerFilter, Runtime};
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::catalog::{Catalog, Page};
use clank_engine::{Engine, EngineConfig, EventKind, RouteTable};
use clank_store::RedbStore;
use clank_testkit::{http, testapp};
use futures_util::StreamExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The keyring sealing secrets at rest: created once, kept beside the store, owner-only.
fn keyring(dir: &Path) -> Result<Keyring, BoxError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("keyring");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.parse()?);
    }
    let ring = Keyring::new(KeyId::new("k1")?, Keyring::generate_key()?);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut f, ring.export().expose().as_bytes())?;
    Ok(ring)
}

/// Docker when an engine answers; native processes otherwise, said out loud.
async fn runtime(data: &Path) -> Result<(Arc<dyn Runtime>, Option<Vec<String>>), BoxError> {
    match clank_docker::DockerRuntime::connect().await {
        Ok(docker) => {
            println!("runtime: Docker Engine at {}", docker.socket());
            testapp::docker::ensure_testapp_image(docker.client()).await?;
            Ok((Arc::new(docker), None))
        }
        Err(e) => {
            println!(
                "runtime: no Docker Engine ({e});\n         running services as native processes instead"
            );
            let app = data.join("app");
            testapp::write_testapp(&app)?;
            let start = app.join("start.sh").to_string_lossy().into_owned();
            let command = vec![testapp::BUSYBOX.to_owned(), "sh".to_owned(), start];
            Ok((
                Arc::new(clank_process::ProcessRuntime::open(data.join("processes"))?),
                Some(command),
            ))
        }
    }
}

/// Find-or-create the demo's workspace, project and service, so reruns continue the history.
async fn demo_service(
    catalog: &Catalog,
    command: Option<Vec<String>>,
) -> Result<ServiceId, BoxError> {
    let now = Timestamp::now();
    let ws = match catalog.lookup::<Workspace>("slug", "default").await? {
        Some(ws) => ws.value,
        None => {
            let ws = Workspace::new("Default", Some("default"), now)?;
            catalog.create(&ws).await?;
            ws
        }
    };
    let (project, env) = match catalog
        .lookup::<Project>("slug", &format!("{}:demo", ws.id))
        .await?
    {
        Some(p) => {
            let env = catalog
                .lookup::<Environment>("name", &format!("{}:production", p.id))
                .await?
                .ok_or("the demo project has no production environment")?;
            (p.value, env.value)
        }
        None => {
            let p = Project::new(ws.id, "Demo", Some("demo"), now)?;
            let env = catalog.create_project(&p, now).await?;
            (p, env)
        }
    };
    if let Some(s) = catalog
        .lookup::<Service>("slug", &format!("{}:hello", env.id))
        .await?
    {
        return Ok(s.id);
    }
    let mut service = Service::new(
        ws.id,
        project.id,
        env.id,
        "hello",
        ServiceSource::DockerImage {
            image: testapp::IMAGE.parse()?,
        },
        now,
    )?;
    service.settings.health_check_interval_s = 2;
    if let Some(cmd) = command {
        service
            .processes
            .get_mut("web")
            .ok_or("no web process")?
            .command = Some(cmd);
    }
    service.validate()?;
    catalog.create(&service).await?;
    Ok(service.id)
}

async fn set_var(
    catalog: &Catalog,
    keyring: &Keyring,
    service: ServiceId,
    key: &str,
    value: &str,
) -> Result<(), BoxError> {
    let scope = Scope::Service(service);
    let current = catalog.config_layer(scope).await?;
    let base = current
        .as_ref()
        .map(|c| c.value.clone())
        .unwrap_or_else(|| ConfigLayer::new(scope));
    let next = apply_bulk(
        &base,
        &[ConfigChange::set_plain(key, value)],
        keyring,
        Timestamp::now(),
    )?;
    match current {
        Some(cur) => catalog.update(&cur, &next).await?,
        None => catalog.create(&next).await?,
    };
    println!("config: {key}={value} (service scope)");
    Ok(())
}

async fn until_done(catalog: &Catalog, id: DeploymentId) -> Result<Deployment, BoxError> {
    loop {
        let d = catalog.require::<Deployment>(&id.to_string()).await?.value;
        if d.state.status == DeploymentStatus::Active || d.state.status.is_terminal() {
            return Ok(d);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn greeting(runtime: &dyn Runtime, d: DeploymentId) -> Result<String, BoxError> {
    let filter = OwnerFilter {
        deployment: Some(d),
        ..OwnerFilter::default()
    };
    let addr = runtime
        .list(&filter)
        .await?
        .iter()
        .find_map(|w| w.endpoint)
        .ok_or("no endpoint")?;
    let body = http::get(addr, "/env?GREETING", Duration::from_secs(2))
        .await?
        .body;
    Ok(format!("http://{addr}/env?GREETING says {:?}", body.trim()))
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let data = PathBuf::from(std::env::var("CLANK_DATA").unwrap_or_else(|_| "clank-data".into()));
    std::fs::create_dir_all(&data)?;
    println!("store:   {}", data.join("clank.redb").display());
    let catalog = Catalog::new(Arc::new(RedbStore::open(data.join("clank.redb"))?));
    let keyring = keyring(&data)?;
    let (runtime, command) = runtime(&data).await?;
    let service = demo_service(&catalog, command).await?;
    let engine = Engine::new(
        catalog.clone(),
        runtime.clone(),
        Arc::new(RouteTable::default()),
        keyring.clone(),
        EngineConfig::default(),
    );

    let mut events = engine.events();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            match e.kind {
                EventKind::Transition { from, to, reason } => {
                    println!(
                        "  #{:<3} {from} → {to}{}",
                        e.number,
                        reason.map(|r| format!(": {r}")).unwrap_or_default()
                    )
                }
                EventKind::Log { message }
                    if message.starts_with("health") || message.starts_with("traffic") =>
                {
                    println!("  #{:<3}   {message}", e.number)
                }
                _ => {}
            }
        }
    });
    let looping = engine.clone();
    let reconciler = tokio::spawn(async move { looping.run(std::future::pending()).await });

    set_var(
        &catalog,
        &keyring,
        service,
        "GREETING",
        "hello from the first deploy",
    )
    .await?;
    println!("\n1. deploy");
    let first = engine.deploy(service, Trigger::Manual { by: None }).await?;
    let first = until_done(&catalog, first.id).await?;
    println!(
        "   #{} is {}: {}",
        first.number,
        first.state.status,
        greeting(runtime.as_ref(), first.id).await?
    );

    set_var(
        &catalog,
        &keyring,
        service,
        "GREETING",
        "hello from the second deploy",
    )
    .await?;
    println!("\n2. redeploy with new config");
    let second = engine.deploy(service, Trigger::Manual { by: None }).await?;
    let second = until_done(&catalog, second.id).await?;
    println!(
        "   #{} is {}: {}",
        second.number,
        second.state.status,
        greeting(runtime.as_ref(), second.id).await?
    );

    println!("\n3. roll back to #{} (image and config)", first.number);
    let back = engine.rollback(service, first.id).await?;
    let back = until_done(&catalog, back.id).await?;
    println!(
        "   #{} is {}: {}",
        back.number,
        back.state.status,
        greeting(runtime.as_ref(), back.id).await?
    );

    // Let the old version's retirement finish before summarising.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("\ndeployments of demo/hello (newest first):");
    for d in catalog
        .deployments_of(service, Page::newest(6))
        .await?
        .items
    {
        println!(
            "  #{:<3} {:<11} {:?}",
            d.number,
            d.state.status.as_str(),
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
