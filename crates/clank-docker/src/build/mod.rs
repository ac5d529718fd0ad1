//! [`DockerImageBuilder`]: `clank_core::builder::ImageBuilder` on git and the Docker build API.
//!
//! One build: check the request (URL, ref, commit, tag), wait for a build slot (at most
//! `max_concurrent` builds at a time), clone into a temporary directory ([`git`]), prepare the
//! context ([`context`]: the repository's Dockerfile, or one generated for the detected
//! framework by [`detect`] and [`dockerfile`]), then build through the engine's `/build` with
//! CPU and memory caps, streaming every output line to the build log, and tag the image.
//!
//! Cancellation is dropping the future: git children are `kill_on_drop`, the checkout is a
//! `TempDir`, and closing the `/build` connection makes the engine abort the build (and its
//! intermediate containers, `forcerm`).

pub mod context;
pub mod detect;
pub mod dockerfile;
mod git;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use clank_core::builder::{BuildLog, BuildOutput, BuildRequest, ImageBuilder};
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::StreamExt;

use crate::error::{Subject, engine_error};

/// How many builds may run at once unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 2;
/// The port generated Dockerfiles listen on when the service has none.
pub const DEFAULT_PORT: u16 = 8080;
/// The engine client's per-request timeout for builds: the engine enforces the real limit.
const BUILD_REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// CPU quota period (µs) for the build's cap.
const CPU_PERIOD: i64 = 100_000;

/// Builds images of git services on the local Docker engine.
#[derive(Debug, Clone)]
pub struct DockerImageBuilder {
    docker: Docker,
    work_dir: PathBuf,
    base_images: BTreeMap<String, String>,
    slots: Arc<tokio::sync::Semaphore>,
    allow_local: bool,
}

impl DockerImageBuilder {
    /// A builder on `docker` (e.g. `DockerRuntime::client().clone()`), cloning into the
    /// system's temporary directory.
    pub fn new(docker: Docker) -> Self {
        DockerImageBuilder {
            docker: docker.with_timeout(BUILD_REQUEST_TIMEOUT),
            work_dir: std::env::temp_dir(),
            base_images: BTreeMap::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_CONCURRENT)),
            allow_local: false,
        }
    }

    /// Allow `file://` repositories, i.e. ones on this server's own disk (tests, single-user
    /// setups). Off by default: on a shared server it would let any user build (and so read)
    /// any git repository the control plane can read.
    pub fn allow_local_repositories(mut self, allow: bool) -> Self {
        self.allow_local = allow;
        self
    }

    /// Where checkouts are made (each in its own temporary directory, removed afterwards).
    pub fn with_work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = dir.into();
        self
    }

    /// At most `n` builds at once on this server (at least 1); others wait for a slot.
    pub fn with_max_concurrent(mut self, n: usize) -> Self {
        self.slots = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
        self
    }

    /// Override a base image of generated Dockerfiles, by its build arg (one of
    /// [`dockerfile::BASE_IMAGE_ARGS`]: `NODE_IMAGE`, `PYTHON_IMAGE`, `GO_IMAGE`,
    /// `RUNTIME_IMAGE`, `STATIC_IMAGE`). A request's own `build_args` win over these.
    pub fn with_base_image(mut self, arg: &str, image: &str) -> Result<Self> {
        if !dockerfile::BASE_IMAGE_ARGS.contains(&arg) {
            return Err(clank_core::InvalidInput::new(
                "base_image",
                "unknown",
                format!(
                    "`{}` is not a base-image build arg; use one of {}",
                    arg.escape_debug(),
                    dockerfile::BASE_IMAGE_ARGS.join(", ")
                ),
            )
            .into());
        }
        let image: clank_core::ImageRef = image.parse()?;
        self.base_images.insert(arg.to_owned(), image.to_string());
        Ok(self)
    }
}

/// A line of the engine's build output worth logging (trailing whitespace off, blank lines
/// dropped).
fn engine_line(line: &str) -> Option<String> {
    let line = line.trim_end();
    (!line.trim().is_empty()).then(|| line.to_owned())
}

#[async_trait::async_trait]
impl ImageBuilder for DockerImageBuilder {
    async fn remove_image(&self, image: &clank_core::ImageRef) -> Result<()> {
        use bollard::query_parameters::RemoveImageOptions;
        let options = RemoveImageOptions {
            force: false,
            noprune: false,
            ..RemoveImageOptions::default()
        };
        match self
            .docker
            .remove_image(&image.to_string(), Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409,
                message,
            }) => Err(clank_core::Error::Conflict(format!(
                "image `{image}` is still in use: {message}"
            ))),
            Err(e) => Err(clank_core::Error::runtime(
                clank_core::RuntimeFailure::Other,
                format!("removing image `{image}`: {e}"),
            )),
        }
    }

    async fn build(&self, request: &BuildRequest, mut log: BuildLog) -> Result<BuildOutput> {
        let started = Instant::now();
        let source = git::GitSource {
            url: &request.repo_url,
            git_ref: &request.git_ref,
            commit: request.commit.as_deref(),
            credentials: request.credentials.as_ref(),
            allow_local: self.allow_local,
        };
        git::check_source(&source)?;
        let tag = request.tag.to_string();
        if request.tag.digest().is_some() || request.tag.tag().is_none() {
            return Err(clank_core::InvalidInput::new(
                "tag",
                "format",
                format!("the build's image tag `{tag}` must have a tag and no digest"),
            )
            .into());
        }

        let _slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                log(
                    "waiting for a build slot (the server's concurrent builds are all busy)".into(),
                );
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("the build slots were closed".into()))?
            }
        };

        // The work directory may not exist yet (a fresh data directory): owner-only, since
        // checkouts hold tenants' source.
        let work = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.work_dir)
            .and_then(|()| {
                tempfile::Builder::new()
                    .prefix("clank-build-")
                    .tempdir_in(&self.work_dir)
            })
            .map_err(|e| {
                Error::runtime(
                    RuntimeFailure::Other,
                    format!(
                        "cannot create a checkout directory in {}: {e}",
                        self.work_dir.display()
                    ),
                )
            })?;
        let checkout = work.path().join("src");
        let commit_sha = git::checkout(&source, &checkout, &mut *log).await?;
        log(format!(
            "checked out {commit_sha} in {:.1} s",
            started.elapsed().as_secs_f64()
        ));

        let port = request.port.unwrap_or(DEFAULT_PORT);
        let build_context = request.build_context.clone();
        let dockerfile_path = request.dockerfile_path.clone();
        let dir = checkout.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            context::prepare(
                &dir,
                build_context.as_deref(),
                dockerfile_path.as_deref(),
                port,
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("preparing the build context panicked: {e}")))?
        .map_err(|reason| Error::runtime(RuntimeFailure::Other, reason))?;
        for note in &prepared.notes {
            log(note.clone());
        }
        log(format!(
            "sending a {:.1} MiB build context to the Docker engine",
            prepared.tar.len() as f64 / (1024.0 * 1024.0)
        ));

        let mut build_args: HashMap<String, String> = HashMap::new();
        if prepared.app.is_some() {
            build_args.extend(self.base_images.clone());
        }
        build_args.extend(request.build_args.clone());
        let memory = i64::from(request.memory_limit_mb) * 1024 * 1024;
        let memory = i32::try_from(memory).unwrap_or(i32::MAX);
        let cpu_quota = (request.cpu_limit * CPU_PERIOD as f64).round() as i64;
        let options = BuildImageOptions {
            dockerfile: context::DOCKERFILE_IN_CONTEXT.to_owned(),
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            memory: (memory > 0).then_some(memory),
            memswap: (memory > 0).then_some(memory),
            cpuperiod: (cpu_quota > 0).then_some(CPU_PERIOD as i32),
            cpuquota: i32::try_from(cpu_quota).ok().filter(|q| *q > 0),
            buildargs: (!build_args.is_empty()).then_some(build_args),
            // Only labels that are the same for a rebuild of the same commit, so it stays a
            // cache hit (the classic builder adds each label as a step).
            labels: Some(HashMap::from([
                ("clank.service".to_owned(), request.service.to_string()),
                ("clank.commit".to_owned(), commit_sha.clone()),
            ])),
            ..BuildImageOptions::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(prepared.tar));
        let mut stream = self.docker.build_image(options, None, Some(body));
        let mut partial = String::new();
        let mut last_step = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(text) = info.stream.or(info.status) {
                        partial.push_str(&text);
                        while let Some(i) = partial.find('\n') {
                            let line: String = partial.drain(..=i).collect();
                            if line.starts_with("Step ") {
                                last_step = line.trim().to_owned();
                            }
                            if let Some(l) = engine_line(&line) {
                                log(l);
                            }
                        }
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(step_failed(&last_step, &detail, request.memory_limit_mb));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    if let Some(l) = engine_line(&partial) {
                        log(l);
                    }
                    return Err(step_failed(&last_step, &error, request.memory_limit_mb));
                }
                Err(e) => return Err(engine_error(e, Subject::Image, &tag)),
            }
        }
        if let Some(l) = engine_line(&partial) {
            log(l);
        }
        self.docker
            .inspect_image(&tag)
            .await
            .map_err(|e| engine_error(e, Subject::Image, &tag))?;
        log(format!(
            "built {tag} from {commit_sha} in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(BuildOutput {
            image: request.tag.clone(),
            commit_sha,
            dockerfile: prepared.dockerfile,
            procfile: prepared.procfile,
            framework: prepared.app.map(|a| a.framework().to_owned()),
        })
    }
}

fn step_failed(step: &str, error: &str, memory_limit_mb: u32) -> Error {
    let error = error.trim();
    // 137 = SIGKILL: in a build step, nearly always the kernel's OOM killer at the cap.
    let hint = if error.contains("non-zero code: 137") {
        format!(
            " (exit 137: the step was killed, most likely for exceeding the build's memory \
             limit of {memory_limit_mb} MiB, memory_limit_mb)"
        )
    } else {
        String::new()
    };
    let error = format!("{error}{hint}");
    Error::runtime(
        RuntimeFailure::Other,
        if step.is_empty() {
            format!("docker build failed: {error}")
        } else {
            format!("docker build failed at {step}: {error}")
        },
    )
}
