//! Clank's main job on the embedded defaults, through the library's `Platform`: a redb store
//! and keyring in `./clank-data` (or `$CLANK_DATA`), the local Docker Engine — or native
//! processes when no engine is reachable — and the deploy engine. It deploys a service,
//! redeploys it with new config, rolls back (image *and* config), and says what happened.
//!
//! The app it deploys is the workspace's own demo app (`demo-app/main.rs`), which `build.rs`
//! compiles statically and this example embeds: on Docker it becomes a `FROM scratch` image
//! built through the engine's API (nothing is pulled), on native processes an executable in
//! the temporary directory. Nothing beyond the Rust toolchain and, optionally, a Docker
//! Engine is needed.
//!
//! Run: `cargo run --release -p clank-examples --example deploy`

use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_core::address::ServiceAddress;
use clank_core::config::ConfigChange;
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{ProcessSpec, ServiceSource, Trigger};
use clank_engine::EventKind;
use clank_platform::{
    ConfigTarget, DeploymentView, EmbeddedOptions, Platform, ServicePatch, ServiceSpec,
};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The demo app, compiled by `build.rs` (static, so it needs no library at run time).
const DEMO_APP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/clank-demo-app"));

/// Where the demo app runs from: an image on Docker, an executable on native processes.
enum DemoApp {
    Image(String),
    Executable(PathBuf),
}

impl DemoApp {
    /// The service source and process types that run this app.
    fn service_source(&self) -> Result<(ServiceSource, Option<ProcessSpecs>), BoxError> {
        Ok(match self {
            DemoApp::Image(tag) => (
                ServiceSource::DockerImage {
                    image: tag.parse()?,
                    credentials_secret: None,
                },
                None,
            ),
            DemoApp::Executable(path) => {
                // Native processes run a command; the image field only names the version.
                let web = ProcessSpec {
                    command: Some(vec![path.to_string_lossy().into_owned()]),
                    replicas: 1,
                };
                (
                    ServiceSource::DockerImage {
                        image: format!("clank-demo-app:{}", digest()).parse()?,
                        credentials_secret: None,
                    },
                    Some([("web".to_owned(), web)].into_iter().collect()),
                )
            }
        })
    }
}

type ProcessSpecs = std::collections::BTreeMap<String, ProcessSpec>;

/// A content digest of the demo app (64-bit FNV-1a, stable across Rust versions), so a
/// rebuilt app gets a new image tag and an unchanged one is not built twice.
fn digest() -> String {
    let hash = DEMO_APP.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Make the demo app available to the platform's runtime.
async fn install_demo_app(p: &Platform) -> Result<DemoApp, BoxError> {
    if p.engine().runtime().name() == "docker" {
        let docker = clank_docker::DockerRuntime::connect().await?;
        let tag = format!("clank-demo-app:{}", digest());
        if docker.client().inspect_image(&tag).await.is_err() {
            build_image(docker.client(), &tag).await?;
            println!("built image {tag} from the workspace's demo app");
        }
        return Ok(DemoApp::Image(tag));
    }
    // In the temporary directory, not the data directory: run as root, the native runtime
    // starts workloads as an unprivileged user, who must be able to reach the file.
    let path = std::env::temp_dir().join(format!("clank-demo-app-{}", digest()));
    if !path.is_file() {
        use std::os::unix::fs::PermissionsExt;
        let partial = path.with_extension("partial");
        std::fs::write(&partial, DEMO_APP)?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&partial, &path)?;
    }
    Ok(DemoApp::Executable(path))
}

/// `FROM scratch` plus the static executable, built through the Docker API (no registry).
async fn build_image(docker: &bollard::Docker, tag: &str) -> Result<(), BoxError> {
    let dockerfile = "FROM scratch\n\
                      COPY clank-demo-app /clank-demo-app\n\
                      ENV PORT=8080\n\
                      EXPOSE 8080\n\
                      CMD [\"/clank-demo-app\"]\n";
    let mut context = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("clank-demo-app", DEMO_APP, 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        context.append_data(&mut header, path, data)?;
    }
    let options = bollard::query_parameters::BuildImageOptions {
        t: Some(tag.to_owned()),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let body = bollard::body_full(bytes::Bytes::from(context.into_inner()?));
    let mut build = docker.build_image(options, None, Some(body));
    let mut log = String::new();
    while let Some(step) = build.next().await {
        let step = step.map_err(|e| format!("building image {tag} failed: {e}\n{log}"))?;
        log.push_str(&step.stream.unwrap_or_default());
    }
    Ok(())
}

/// Find-or-create `default/demo/production/hello` running the demo app, so reruns continue
/// the service's history (and run the app as built now).
async fn demo_service(p: &Platform, app: &DemoApp) -> Result<ServiceAddress, BoxError> {
    p.ensure_workspace("default").await?;
    let project = p.parse_project("demo")?;
    if p.project(&project).await.is_err() {
        p.create_project("default", "Demo", Some("demo")).await?;
    }
    let addr = p.parse_service("demo/hello")?;
    let (source, processes) = app.service_source()?;
    if p.service(&addr).await.is_ok() {
        let patch = ServicePatch {
            source: Some(source),
            processes,
            ..ServicePatch::default()
        };
        p.update_service(&addr, patch).await?;
        return Ok(addr);
    }
    let mut spec = ServiceSpec::new("hello", source);
    spec.processes = processes;
    spec.settings.health_check_interval_s = 2;
    p.create_service(addr.environment_address(), spec).await?;
    Ok(addr)
}

/// Wait for deployment `number` to settle; an error saying why unless it ends ACTIVE.
async fn settled(
    p: &Platform,
    addr: &ServiceAddress,
    number: u64,
) -> Result<DeploymentView, BoxError> {
    let d = p.wait(addr, number, Duration::from_secs(120)).await?;
    if d.status != DeploymentStatus::Active {
        return Err(format!(
            "deployment #{number} of {addr} ended {}: {}",
            d.status,
            d.reason.as_deref().unwrap_or("no reason recorded")
        )
        .into());
    }
    Ok(d)
}

/// `GET /` from the deployment's first endpoint: the app answers with its `GREETING`.
async fn greeting(
    p: &Platform,
    addr: &ServiceAddress,
    d: &DeploymentView,
) -> Result<String, BoxError> {
    let endpoint = *p
        .endpoints(addr, d.number)
        .await?
        .first()
        .ok_or_else(|| format!("deployment #{} has no endpoint to ask", d.number))?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(endpoint).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("http://{endpoint}/ did not answer within 5 s"))?
        .map_err(|e| format!("http://{endpoint}/: {e}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(format!("http://{endpoint}/ says \"{}\"", body.trim()))
}

/// Why a deployment exists, in words.
fn describe(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Manual { .. } => "deploy".to_owned(),
        Trigger::AutoDeploy { commit, branch } => {
            format!("push to {branch} ({})", &commit[..commit.len().min(12)])
        }
        Trigger::RollbackOf { number, .. } => format!("rollback to #{number}"),
        Trigger::PromotionFrom { .. } => "promotion from another environment".to_owned(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("\nThe main job stopped: {e}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
async fn run() -> Result<(), BoxError> {
    let data = PathBuf::from(std::env::var("CLANK_DATA").unwrap_or_else(|_| "clank-data".into()));
    let p = Platform::open(EmbeddedOptions::new(&data)).await?;
    let runtime = p.engine().runtime().name();
    println!(
        "Clank's main job: data in {}, workloads on {}",
        data.display(),
        match runtime.as_str() {
            "docker" => "the local Docker Engine",
            "process" => "native processes (no Docker Engine reachable)",
            other => other,
        }
    );
    let app = install_demo_app(&p).await?;
    let addr = demo_service(&p, &app).await?;
    main_job(&p, &addr, &data).await
}

#[allow(clippy::print_stdout)]
async fn main_job(p: &Platform, addr: &ServiceAddress, data: &Path) -> Result<(), BoxError> {
    let mut events = p.events();
    tokio::spawn(async move {
        while let Some(e) = events.next().await {
            match e.kind {
                EventKind::Transition { from, to, reason } => println!(
                    "   #{} {from} → {to}{}",
                    e.number,
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                ),
                EventKind::Log { message }
                    if message.starts_with("health") || message.starts_with("traffic") =>
                {
                    println!("   #{} {message}", e.number)
                }
                _ => {}
            }
        }
    });
    let engine = p.clone();
    let reconciler = tokio::spawn(async move { engine.run(std::future::pending()).await });
    let target = ConfigTarget::Service(addr.clone());

    let greeting_v1 = "hello from the first deploy";
    p.set_config(&target, &[ConfigChange::set_plain("GREETING", greeting_v1)])
        .await?;
    println!("\n1. Deploy {addr} with GREETING=\"{greeting_v1}\"");
    let first = p.deploy(addr, Trigger::Manual { by: None }).await?;
    let first = settled(p, addr, first.number).await?;
    println!(
        "   deployment #{} is {}; {}",
        first.number,
        first.status,
        greeting(p, addr, &first).await?
    );

    let greeting_v2 = "hello from the second deploy";
    p.set_config(&target, &[ConfigChange::set_plain("GREETING", greeting_v2)])
        .await?;
    println!("\n2. Redeploy with new config: GREETING=\"{greeting_v2}\"");
    let second = p.deploy(addr, Trigger::Manual { by: None }).await?;
    let second = settled(p, addr, second.number).await?;
    println!(
        "   deployment #{} is {}; {}",
        second.number,
        second.status,
        greeting(p, addr, &second).await?
    );

    println!(
        "\n3. Roll back to deployment #{} (its image and its config)",
        first.number
    );
    let back = p.rollback(addr, first.number).await?;
    let back = settled(p, addr, back.number).await?;
    println!(
        "   rolled back to deployment #{} as deployment #{}, which is {}; {}",
        first.number,
        back.number,
        back.status,
        greeting(p, addr, &back).await?
    );

    // Let the old version's retirement finish before summarising.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("\nRecent deployments of {addr}, newest first:");
    for d in p.deployments(addr, 6, None).await? {
        println!(
            "   #{:<3} {:<11} {}",
            d.number,
            d.status.as_str(),
            describe(&d.trigger)
        );
    }
    reconciler.abort();
    println!(
        "\n{addr} stays up as deployment #{}. Run this again to continue its history; \
         delete {} to start over.",
        back.number,
        data.display()
    );
    Ok(())
}
