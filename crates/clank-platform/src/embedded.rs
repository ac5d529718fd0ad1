//! How a platform is assembled from its backends ([`PlatformBuilder`]: any `Store`, `Runtime`,
//! `Proxy` and `ImageBuilder`), and the embedded defaults built on it ([`Platform::open`]:
//! everything in one data directory, no external service needed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clank_core::Result;
use clank_core::builder::ImageBuilder;
use clank_core::model::Service;
use clank_core::proxy::Proxy;
use clank_core::runtime::Runtime;
use clank_core::secret::{KeyId, Keyring};
use clank_core::store::Store;
use clank_core::store::catalog::Catalog;
use clank_core::{Error, InvalidInput, RuntimeFailure};
use clank_engine::{Engine, EngineConfig, RouteTable};
use clank_store::RedbStore;
use tracing::{info, warn};

use crate::Platform;

/// Which runtime runs workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeChoice {
    /// Docker when an engine answers, native processes otherwise.
    #[default]
    Auto,
    Docker,
    Process,
}

impl RuntimeChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeChoice::Auto => "auto",
            RuntimeChoice::Docker => "docker",
            RuntimeChoice::Process => "process",
        }
    }
}

impl std::fmt::Display for RuntimeChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `auto`, `docker` or `process` (what the bindings and the CLI accept).
impl std::str::FromStr for RuntimeChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(RuntimeChoice::Auto),
            "docker" => Ok(RuntimeChoice::Docker),
            "process" => Ok(RuntimeChoice::Process),
            other => Err(InvalidInput::new(
                "runtime",
                "one_of",
                format!("unknown runtime `{other}`: expected `auto`, `docker` or `process`"),
            )
            .into()),
        }
    }
}

/// Which built-in store keeps the platform's records in the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreChoice {
    /// `clank.redb` (the default).
    #[default]
    Redb,
    /// `clank.sled`; only in builds with the cargo feature `sled`.
    Sled,
}

impl StoreChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreChoice::Redb => "redb",
            StoreChoice::Sled => "sled",
        }
    }
}

impl std::fmt::Display for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `redb` or `sled`.
impl std::str::FromStr for StoreChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "redb" => Ok(StoreChoice::Redb),
            "sled" => Ok(StoreChoice::Sled),
            other => Err(InvalidInput::new(
                "store",
                "one_of",
                format!("unknown store `{other}`: expected `redb` or `sled`"),
            )
            .into()),
        }
    }
}

/// Where and how an embedded platform runs.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    pub store: StoreChoice,
    pub runtime: RuntimeChoice,
    pub engine: EngineConfig,
    /// The proxy the engine cuts over (the daemon's embedded `clank_proxy::ClankProxy`);
    /// `None` keeps routes in an in-memory `RouteTable` that serves no traffic.
    pub proxy: Option<Arc<dyn Proxy>>,
    /// Remote servers: `Some` opens the fleet registry (the daemon serves its gRPC endpoint
    /// to agents); `None` runs everything on this host.
    pub fleet: Option<clank_fleet::FleetConfig>,
    /// Which repositories git services may build from (the builder enforces it again).
    pub repositories: clank_core::validate::RepositoryPolicy,
    /// The operator's build settings (base images, registry prefix, build args) for the
    /// Docker image builder.
    pub builder: clank_docker::BuildSettings,
    /// Native runtime: where workloads' working directories and volumes live, outside the
    /// data directory (which they must not reach). `None`: `<data_dir>-workloads`, beside it.
    pub workload_root: Option<PathBuf>,
    /// The template catalog (the daemon's: built-ins plus `templates_dir`); `None`: built-ins.
    pub templates: Option<Arc<clank_templates::Catalog>>,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            data_dir: data_dir.into(),
            store: StoreChoice::Redb,
            runtime: RuntimeChoice::Auto,
            engine: EngineConfig::default(),
            proxy: None,
            fleet: None,
            repositories: Default::default(),
            builder: Default::default(),
            workload_root: None,
            templates: None,
        }
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::StoreUnavailable(format!("{what} `{}`: {e}", path.display()))
}

/// Make `path` no more open than `mode` (the data directory 0700, the store and the keyring
/// 0600): workloads and other users on the host must not read the store or the keys. A looser
/// mode found at start is tightened, with a warning saying so.
pub fn owner_only(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| io("inspect", path, e))?;
    let current = meta.permissions().mode() & 0o777;
    if current & !mode == 0 {
        return Ok(());
    }
    warn!(
        path = %path.display(),
        found = format!("{current:o}"),
        set = format!("{mode:o}"),
        "The data directory was readable by others: tightened to owner-only."
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("restrict permissions of", path, e))
}

/// The keyring sealing secrets at rest: read from `path`, or generated and written there
/// (owner-only, created exclusively so two starts cannot race to different keys).
pub fn load_or_create_keyring(path: &Path) -> Result<Keyring> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::read_to_string(path) {
        Ok(text) => return text.parse(),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("read keyring", path, e));
        }
        Err(_) => {}
    }
    let ring = Keyring::new(KeyId::new("k1")?, Keyring::generate_key()?);
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // Someone else created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return load_or_create_keyring(path);
        }
        Err(e) => return Err(io("create keyring", path, e)),
    };
    f.write_all(ring.export().expose().as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| io("write keyring", path, e))?;
    Ok(ring)
}

/// The runtime, and the image builder for git services when the runtime is Docker (native
/// processes have no images to build).
async fn runtime(
    options: &EmbeddedOptions,
) -> Result<(Arc<dyn Runtime>, Option<Arc<dyn ImageBuilder>>)> {
    // The operator's settings are checked before anything starts, whatever the runtime.
    options.builder.validate()?;
    options.repositories.validate("builder.repositories")?;
    type Backends = (Arc<dyn Runtime>, Option<Arc<dyn ImageBuilder>>);
    let docker = |d: clank_docker::DockerRuntime| -> Result<Backends> {
        let builder = clank_docker::DockerImageBuilder::new(d.client().clone())
            .with_work_dir(options.data_dir.join("builds"))
            .with_repository_policy(options.repositories.clone())
            .with_settings(&options.builder)?;
        Ok((Arc::new(d), Some(Arc::new(builder))))
    };
    match options.runtime {
        RuntimeChoice::Process => Ok((process_runtime(options)?, None)),
        RuntimeChoice::Docker => docker(clank_docker::DockerRuntime::connect().await?),
        RuntimeChoice::Auto => match clank_docker::DockerRuntime::connect().await {
            Ok(d) => {
                info!(socket = %d.socket(), "Running workloads on the Docker Engine.");
                docker(d)
            }
            Err(e) if e.runtime_failure() == Some(RuntimeFailure::EngineUnavailable) => {
                warn!(error = %e, "No Docker Engine reachable: running workloads as native processes.");
                Ok((process_runtime(options)?, None))
            }
            Err(e) => Err(e),
        },
    }
}

/// The native runtime: its state in `<data_dir>/processes`, what workloads reach in the
/// workload root outside the data directory. Run as root, each workspace's workloads run as a
/// user of their own; otherwise one workspace is served (the runtime says so at start).
fn process_runtime(options: &EmbeddedOptions) -> Result<Arc<dyn Runtime>> {
    let data_dir = options
        .data_dir
        .canonicalize()
        .map_err(|e| io("resolve data directory", &options.data_dir, e))?;
    let workload_root = match &options.workload_root {
        Some(dir) => dir.clone(),
        None => {
            let mut name = data_dir.file_name().unwrap_or_default().to_os_string();
            name.push("-workloads");
            data_dir.with_file_name(name)
        }
    };
    let inside = |root: &Path| -> Result<()> {
        if !root.starts_with(&data_dir) {
            return Ok(());
        }
        Err(InvalidInput::new(
            "workload_root",
            "outside_data_dir",
            format!(
                "the workload root `{}` is inside the data directory `{}`; workloads must not \
                 reach the data directory (it holds the store and the keys): choose a directory \
                 outside it",
                root.display(),
                data_dir.display()
            ),
        )
        .into())
    };
    // Before anything is created there; checked again once links are resolved.
    inside(&std::path::absolute(&workload_root).unwrap_or_else(|_| workload_root.clone()))?;
    let runtime = clank_process::ProcessRuntime::open_with(
        data_dir.join("processes"),
        clank_process::ProcessOptions {
            workload_root: Some(workload_root),
            ..Default::default()
        },
    )?;
    inside(runtime.workload_root())?;
    Ok(Arc::new(runtime))
}

/// The built-in store `options.store` names, in the data directory, owner-only.
fn open_store(options: &EmbeddedOptions) -> Result<Arc<dyn Store>> {
    match options.store {
        StoreChoice::Redb => {
            let path = options.data_dir.join("clank.redb");
            let fresh = !path.exists();
            let store = RedbStore::open(&path)?;
            if fresh {
                // Created just now with the process's umask: owner-only from the start.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io("restrict permissions of", &path, e))?;
            }
            owner_only(&path, 0o600)?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "sled")]
        StoreChoice::Sled => {
            // A directory of sled's own files.
            let path = options.data_dir.join("clank.sled");
            let store = clank_store::SledStore::open(&path)?;
            owner_only(&path, 0o700)?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "sled"))]
        StoreChoice::Sled => Err(InvalidInput::new(
            "store",
            "not_built",
            "this build has no sled store: build Clank with the cargo feature `sled`, or choose \
             `redb`",
        )
        .into()),
    }
}

/// A platform assembled from backends: the store, the runtime and the keyring it needs, and
/// optionally the proxy (default: an in-memory [`RouteTable`] that serves no traffic), the
/// image builder for git services (default: none, so git deployments fail saying so), the
/// engine's settings, remote servers and the repository policy.
///
/// [`Platform::open`] is this builder over the built-in backends; an embedder with a backend of
/// its own (proven by its contract suite in `clank-testkit`) passes it here:
///
/// ```ignore
/// let platform = Platform::builder(Arc::new(MyStore::new()), Arc::new(MyRuntime::new()), keyring)
///     .proxy(Arc::new(my_proxy))
///     .build()
///     .await?;
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct PlatformBuilder {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    keyring: Keyring,
    proxy: Option<Arc<dyn Proxy>>,
    image_builder: Option<Arc<dyn ImageBuilder>>,
    engine: EngineConfig,
    fleet: Option<clank_fleet::FleetConfig>,
    repositories: clank_core::validate::RepositoryPolicy,
    templates: Option<Arc<clank_templates::Catalog>>,
}

impl PlatformBuilder {
    /// The templates stacks are created from (default: the built-ins).
    pub fn templates(mut self, templates: Arc<clank_templates::Catalog>) -> Self {
        self.templates = Some(templates);
        self
    }

    /// The proxy the engine cuts services over with (default: an in-memory `RouteTable`).
    pub fn proxy(mut self, proxy: Arc<dyn Proxy>) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// What builds images for git services (default: none).
    pub fn image_builder(mut self, builder: Arc<dyn ImageBuilder>) -> Self {
        self.image_builder = Some(builder);
        self
    }

    /// The engine's intervals and timeouts (default: `EngineConfig::default()`).
    pub fn engine_config(mut self, config: EngineConfig) -> Self {
        self.engine = config;
        self
    }

    /// Open the remote servers' registry with `config` (default: everything runs here).
    pub fn fleet(mut self, config: clank_fleet::FleetConfig) -> Self {
        self.fleet = Some(config);
        self
    }

    /// Which repositories git services may build from (default: only other machines').
    pub fn repository_policy(mut self, policy: clank_core::validate::RepositoryPolicy) -> Self {
        self.repositories = policy;
        self
    }

    /// The platform over these backends (opens the fleet's registry when one was asked for).
    pub async fn build(self) -> Result<Platform> {
        let catalog = Catalog::new(self.store);
        // Services stored before domains were unique across the instance (or before a volume
        // not marked `shared` had one writer) hold no `domain` (`volume`) entries: claim them
        // now, so no other tenant can take (and be served for) a name a service already routes,
        // and no second service can start writing a volume. What two services already share
        // is left to the operator.
        for clash in catalog.backfill_unique::<Service>().await? {
            let fix = match clash.constraint {
                "volume" => {
                    "Give the other service a volume of its own, or mark the volume `shared` on \
                     both if the app coordinates its writers."
                }
                _ => "Change the other's endpoint.",
            };
            warn!(
                constraint = clash.constraint,
                value = %clash.value,
                kept_by = %clash.holder,
                also_claimed_by = %clash.other,
                "Two services claim one {}; the first keeps it. {fix}",
                clash.constraint
            );
        }
        let proxy = self
            .proxy
            .unwrap_or_else(|| Arc::new(RouteTable::new(self.engine.probe_timeout)));
        // The runtime's images go to remote servers whose engine lacks them.
        let images = self.runtime.image_store();
        let mut engine = Engine::new(
            catalog.clone(),
            self.runtime,
            proxy,
            self.keyring.clone(),
            self.engine,
        );
        if let Some(builder) = self.image_builder {
            engine = engine.with_builder(builder);
        }
        let mut platform = Platform::new(catalog.clone(), engine, self.keyring.clone())
            .with_repository_policy(self.repositories);
        if let Some(templates) = self.templates {
            platform = platform.with_templates(templates);
        }
        Ok(match self.fleet {
            Some(config) => {
                let fleet = clank_fleet::Fleet::open(catalog, self.keyring, config).await?;
                if let Some(images) = images {
                    fleet.export_images_from(images);
                }
                platform.with_fleet(fleet)
            }
            None => platform,
        })
    }
}

impl Platform {
    /// Assemble a platform from backends of the caller's choice; see [`PlatformBuilder`].
    pub fn builder(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        keyring: Keyring,
    ) -> PlatformBuilder {
        PlatformBuilder {
            store,
            runtime,
            keyring,
            proxy: None,
            image_builder: None,
            engine: EngineConfig::default(),
            fleet: None,
            repositories: Default::default(),
            templates: None,
        }
    }

    /// A platform on the built-in backends in `options.data_dir`: the store `options.store`
    /// names (`clank.redb` by default), `keyring`, the runtime `options.runtime` names (and
    /// Docker's image builder with it), and (native runtime) `processes/`, with the
    /// workloads' own files in the workload root beside the data directory.
    pub async fn open(options: EmbeddedOptions) -> Result<Platform> {
        std::fs::create_dir_all(&options.data_dir)
            .map_err(|e| io("create data directory", &options.data_dir, e))?;
        owner_only(&options.data_dir, 0o700)?;
        let store = open_store(&options)?;
        let keyring = load_or_create_keyring(&options.data_dir.join("keyring"))?;
        owner_only(&options.data_dir.join("keyring"), 0o600)?;
        let (runtime, image_builder) = runtime(&options).await?;
        let mut builder = Platform::builder(store, runtime, keyring)
            .engine_config(options.engine.clone())
            .repository_policy(options.repositories.clone());
        if let Some(proxy) = options.proxy {
            builder = builder.proxy(proxy);
        }
        if let Some(templates) = options.templates.clone() {
            builder = builder.templates(templates);
        }
        if let Some(image_builder) = image_builder {
            builder = builder.image_builder(image_builder);
        }
        if let Some(fleet) = options.fleet {
            builder = builder.fleet(fleet);
        }
        builder.build().await
    }
}
