//! [`DockerImageBuilder`]: `clank_core::builder::ImageBuilder` on git and the Docker build API.
//!
//! One build: check the request (URL, ref, commit, tag), wait for a build slot (at most
//! `max_concurrent` builds at a time), clone into a temporary directory ([`git`]), prepare the
//! context ([`context`]: the repository's Dockerfile, or one generated for the detected
//! framework by [`detect`] and [`dockerfile`]), then build through the engine's `/build` with
//! a memory cap and a low CPU weight, streaming every output line to the build log, and tag
//! the image. A build whose inputs match an image built earlier for the service reuses it
//! ([`inputs`]).
//!
//! The operator's [`BuildSettings`] (base images per framework, a registry prefix, build args
//! for every build) shape generated Dockerfiles, and the [`RepositoryPolicy`] is checked again
//! before every clone. A failed step is reported with its build args expanded, so the error
//! names the image (`FROM busybox:1.36`), not `FROM ${STATIC_IMAGE}`.
//!
//! Cancellation is dropping the future: git children are `kill_on_drop`, the checkout is a
//! `TempDir`, and closing the `/build` connection makes the engine abort the build (and its
//! intermediate containers, `forcerm`).

pub mod context;
pub mod detect;
pub mod dockerfile;
mod git;
mod inputs;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptions;
use clank_core::builder::{BuildLog, BuildOutput, BuildProgress, BuildRequest, ImageBuilder};
use clank_core::runtime::ImageStore;
use clank_core::validate::RepositoryPolicy;
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::StreamExt;

use crate::error::{Subject, engine_error};

/// How many builds may run at once unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENT: usize = 2;
/// The port generated Dockerfiles listen on when the service has none.
pub const DEFAULT_PORT: u16 = 8080;
/// The engine client's per-request timeout for builds: the engine enforces the real limit.
const BUILD_REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// A build's CPU weight (Docker's default, a running service's, is 1024): a build uses every
/// idle core, and under contention gets an eighth of a service's share. A hard cap (the
/// service's own `cpu_limit`, 0.5 by default) made builds several times slower than the same
/// `docker build` by hand, on an idle machine too.
const BUILD_CPU_SHARES: i32 = 128;

/// The base images of generated Dockerfiles an operator can choose, by framework key (as the
/// daemon's `builder.base_images` names them) and the build arg that carries each: `static`
/// (plain sites and single-page apps' server), `node` (Node.js apps, single-page apps' build),
/// `python`, `go` (the compiler) and `go_runtime` (what runs the binary).
pub const FRAMEWORK_BASE_IMAGES: &[(&str, &str)] = &[
    ("static", "STATIC_IMAGE"),
    ("node", "NODE_IMAGE"),
    ("python", "PYTHON_IMAGE"),
    ("go", "GO_IMAGE"),
    ("go_runtime", "RUNTIME_IMAGE"),
];

/// What an operator sets for every build on this server (the daemon's `builder` section).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildSettings {
    /// Base images of generated Dockerfiles by framework key ([`FRAMEWORK_BASE_IMAGES`]),
    /// replacing the defaults (and their detected versions).
    pub base_images: BTreeMap<String, String>,
    /// Prepended to the default base images of generated Dockerfiles that are Docker Hub names:
    /// a mirror or a registry of one's own (`registry.local:5000/library/`).
    pub image_prefix: Option<String>,
    /// Build args given to every build; a request's own win.
    pub build_args: BTreeMap<String, String>,
    /// Builds at once on this server (default [`DEFAULT_MAX_CONCURRENT`]).
    pub max_concurrent: Option<usize>,
}

impl BuildSettings {
    /// Check the settings; errors name the key (`builder.base_images.node`, ...).
    pub fn validate(&self) -> std::result::Result<(), clank_core::InvalidInput> {
        use clank_core::InvalidInput;
        for (key, image) in &self.base_images {
            let field = format!("builder.base_images.{key}");
            if !FRAMEWORK_BASE_IMAGES.iter().any(|(k, _)| k == key) {
                return Err(InvalidInput::new(
                    field,
                    "unknown",
                    format!(
                        "`{}` is not a framework with a base image; use one of {}",
                        key.escape_debug(),
                        FRAMEWORK_BASE_IMAGES
                            .iter()
                            .map(|(k, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            image.parse::<clank_core::ImageRef>().map_err(|e| {
                InvalidInput::new(field, "image", format!("`{}`: {e}", image.escape_debug()))
            })?;
        }
        if let Some(prefix) = &self.image_prefix {
            let sample = format!("{prefix}{}", dockerfile::DEFAULT_STATIC_IMAGE);
            if !prefix.ends_with('/') || sample.parse::<clank_core::ImageRef>().is_err() {
                return Err(InvalidInput::new(
                    "builder.image_prefix",
                    "format",
                    format!(
                        "`{}` is not a registry prefix: it must end with `/` and make image \
                         names such as `{}` (e.g. `registry.local:5000/library/`)",
                        prefix.escape_debug(),
                        sample.escape_debug()
                    ),
                ));
            }
        }
        for (name, value) in &self.build_args {
            let field = format!("builder.build_args.{name}");
            let valid_name = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid_name {
                return Err(InvalidInput::new(
                    field,
                    "format",
                    format!(
                        "`{}` is not a build arg name (letters, digits and `_`, not starting \
                         with a digit)",
                        name.escape_debug()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(InvalidInput::new(
                    field,
                    "charset",
                    "a build arg value must not contain NUL",
                ));
            }
        }
        if self.max_concurrent == Some(0) {
            return Err(InvalidInput::new(
                "builder.max_concurrent",
                "range",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Builds images of git services on the local Docker engine.
#[derive(Debug, Clone)]
pub struct DockerImageBuilder {
    docker: Docker,
    work_dir: PathBuf,
    /// Base images of generated Dockerfiles, by build arg (`NODE_IMAGE`, ...).
    base_images: BTreeMap<String, String>,
    image_prefix: String,
    build_args: BTreeMap<String, String>,
    slots: Arc<tokio::sync::Semaphore>,
    repositories: RepositoryPolicy,
}

impl DockerImageBuilder {
    /// A builder on `docker` (e.g. `DockerRuntime::client().clone()`), cloning into the
    /// system's temporary directory.
    pub fn new(docker: Docker) -> Self {
        DockerImageBuilder {
            docker: docker.with_timeout(BUILD_REQUEST_TIMEOUT),
            work_dir: std::env::temp_dir(),
            base_images: BTreeMap::new(),
            image_prefix: String::new(),
            build_args: BTreeMap::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(DEFAULT_MAX_CONCURRENT)),
            repositories: RepositoryPolicy::default(),
        }
    }

    /// Allow `file://` repositories, i.e. ones on this server's own disk, and hosts on this
    /// machine or its private network (tests, single-user setups). Off by default: on a shared
    /// server it would let any user build (and so read) any git repository the control plane
    /// can read.
    pub fn allow_local_repositories(mut self, allow: bool) -> Self {
        self.repositories.allow_local = allow;
        self
    }

    /// Build only from repositories `policy` allows (checked again before every clone; the
    /// platform checks it when a service is created or changed).
    pub fn with_repository_policy(mut self, policy: RepositoryPolicy) -> Self {
        self.repositories = policy;
        self
    }

    /// Apply an operator's settings (validated first; errors name the key).
    pub fn with_settings(mut self, settings: &BuildSettings) -> Result<Self> {
        settings.validate()?;
        for (key, image) in &settings.base_images {
            if let Some((_, arg)) = FRAMEWORK_BASE_IMAGES.iter().find(|(k, _)| k == key) {
                self = self.with_base_image(arg, image)?;
            }
        }
        self.image_prefix = settings.image_prefix.clone().unwrap_or_default();
        self.build_args = settings.build_args.clone();
        if let Some(n) = settings.max_concurrent {
            self = self.with_max_concurrent(n);
        }
        Ok(self)
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
            allow_local: self.repositories.allow_local,
        };
        git::check_source(&source)?;
        self.repositories
            .check("source.repo_url", &request.repo_url)?;
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
                log(BuildProgress::Line(
                    "waiting for a build slot (the server's concurrent builds are all busy)".into(),
                ));
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
        let commit_sha = git::checkout(&source, &checkout, &mut |line| {
            log(BuildProgress::Line(line))
        })
        .await?;
        log(BuildProgress::CheckedOut {
            commit: commit_sha.clone(),
            subject: git::subject(&checkout).await,
        });
        log(BuildProgress::Line(format!(
            "checked out {commit_sha} in {:.1} s",
            started.elapsed().as_secs_f64()
        )));

        let port = request.port.unwrap_or(DEFAULT_PORT);
        let build_context = request.build_context.clone();
        let dockerfile_path = request.dockerfile_path.clone();
        let dir = checkout.clone();
        let options = dockerfile::Options {
            base_images: self.base_images.clone(),
            image_prefix: self.image_prefix.clone(),
            publish_dir: request.publish_dir.clone(),
            spa_fallback: request.spa_fallback,
        };
        let prepared = tokio::task::spawn_blocking(move || {
            context::prepare_with(
                &dir,
                build_context.as_deref(),
                dockerfile_path.as_deref(),
                port,
                &options,
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("preparing the build context panicked: {e}")))?
        .map_err(|reason| Error::runtime(RuntimeFailure::Other, reason))?;
        for note in &prepared.notes {
            log(BuildProgress::Line(note.clone()));
        }
        log(BuildProgress::Line(format!(
            "sending a {:.1} MiB build context to the Docker engine",
            prepared.tar.len() as f64 / (1024.0 * 1024.0)
        )));

        // Generated Dockerfiles name the operator's base images as their ARG defaults.
        let mut build_args: HashMap<String, String> = HashMap::new();
        build_args.extend(self.build_args.clone());
        build_args.extend(request.build_args.clone());
        let arg_values = arg_values(&prepared.dockerfile, &build_args);
        let service = request.service.to_string();
        let base_images = inputs::base_images(&prepared.dockerfile, &arg_values);
        let inputs = inputs::key(&self.docker, &prepared.tar, &build_args, &base_images).await;
        // Tagged through the image store's own `tag`: an image pruned since it was found
        // (`false`) is simply built.
        if let Some(key) = &inputs
            && let Some(id) = inputs::find(&self.docker, &service, key).await?
            && crate::DockerImages::new(self.docker.clone())
                .tag(&id, &request.tag)
                .await?
        {
            log(BuildProgress::Line(format!(
                "nothing the image is built from changed (context, Dockerfile, build args, base \
                 images): reusing {} as {tag} without building, in {:.1} s",
                id.trim_start_matches("sha256:").get(..12).unwrap_or(&id),
                started.elapsed().as_secs_f64()
            )));
            return Ok(BuildOutput {
                image: request.tag.clone(),
                commit_sha,
                dockerfile: prepared.dockerfile,
                procfile: prepared.procfile,
                framework: prepared.app.map(|a| a.framework().to_owned()),
            });
        }
        let memory = i64::from(request.memory_limit_mb) * 1024 * 1024;
        let memory = i32::try_from(memory).unwrap_or(i32::MAX);
        let options = BuildImageOptions {
            dockerfile: context::DOCKERFILE_IN_CONTEXT.to_owned(),
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            memory: (memory > 0).then_some(memory),
            memswap: (memory > 0).then_some(memory),
            cpushares: Some(BUILD_CPU_SHARES),
            buildargs: (!build_args.is_empty()).then_some(build_args),
            // Only labels that are the same for a rebuild of the same commit, so it stays a
            // cache hit (the classic builder adds each label as a step).
            labels: Some(
                [
                    (inputs::SERVICE_LABEL, Some(service.clone())),
                    ("clank.commit", Some(commit_sha.clone())),
                    (inputs::INPUTS_LABEL, inputs.clone()),
                ]
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
            ),
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
                            let mut line: String = partial.drain(..=i).collect();
                            if line.starts_with("Step ") {
                                // The log, like an error, names the images the args stand for.
                                line = expand_args(&line, &arg_values);
                                last_step = line.trim().to_owned();
                            }
                            if let Some(l) = engine_line(&line) {
                                log(BuildProgress::Line(l));
                            }
                        }
                    }
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(step_failed(&last_step, &detail, request.memory_limit_mb));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    if let Some(l) = engine_line(&partial) {
                        log(BuildProgress::Line(l));
                    }
                    return Err(step_failed(&last_step, &error, request.memory_limit_mb));
                }
                Err(e) => return Err(engine_error(e, Subject::Image, &tag)),
            }
        }
        if let Some(l) = engine_line(&partial) {
            log(BuildProgress::Line(l));
        }
        self.docker
            .inspect_image(&tag)
            .await
            .map_err(|e| engine_error(e, Subject::Image, &tag))?;
        log(BuildProgress::Line(format!(
            "built {tag} from {commit_sha} in {:.1} s",
            started.elapsed().as_secs_f64()
        )));
        Ok(BuildOutput {
            image: request.tag.clone(),
            commit_sha,
            dockerfile: prepared.dockerfile,
            procfile: prepared.procfile,
            framework: prepared.app.map(|a| a.framework().to_owned()),
        })
    }
}

/// The value of every build arg of `dockerfile`: its `ARG name=default` lines, overridden by
/// `build_args`.
fn arg_values(dockerfile: &str, build_args: &HashMap<String, String>) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        let Some(rest) = line
            .get(..4)
            .filter(|kw| kw.eq_ignore_ascii_case("ARG "))
            .map(|_| line[4..].trim())
        else {
            continue;
        };
        if let Some((name, default)) = rest.split_once('=') {
            values.insert(
                name.trim().to_owned(),
                default.trim().trim_matches('"').to_owned(),
            );
        }
    }
    values.extend(build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
    values
}

/// A `FROM` step with `${NAME}` and `$NAME` replaced by the args' values, so the log and an
/// error name the image (`FROM ${STATIC_IMAGE}` → `FROM busybox:1.36`). Other steps are left
/// as they are: a build arg may hold a token, which must not reach the log through a `RUN`.
fn expand_args(step: &str, values: &BTreeMap<String, String>) -> String {
    let is_from = step.split_once(" : ").is_some_and(|(_, instruction)| {
        instruction
            .get(..5)
            .is_some_and(|kw| kw.eq_ignore_ascii_case("FROM "))
    });
    if !is_from {
        return step.to_owned();
    }
    substitute_args(step, values)
}

/// `text` with `${NAME}` and `$NAME` replaced by the args' values.
fn substitute_args(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    // Longest names first, so `$NODE_IMAGE_X` is not read as `$NODE_IMAGE` + `_X`.
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = &values[name];
        out = out.replace(&format!("${{{name}}}"), value);
        let bare = format!("${name}");
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&bare) {
            let after = &rest[i + bare.len()..];
            result.push_str(&rest[..i]);
            if after
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                result.push_str(&bare);
            } else {
                result.push_str(value);
            }
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_steps_name_the_image_not_the_build_arg() {
        let dockerfile =
            "ARG STATIC_IMAGE=busybox:1.36\nARG NODE_IMAGE=node:22-slim\nFROM ${STATIC_IMAGE}\n";
        let overridden = HashMap::from([("NODE_IMAGE".to_owned(), "mirror/node:20".to_owned())]);
        let values = arg_values(dockerfile, &overridden);
        assert_eq!(
            expand_args("Step 3/8 : FROM ${STATIC_IMAGE}", &values),
            "Step 3/8 : FROM busybox:1.36"
        );
        assert_eq!(
            expand_args("Step 1/8 : FROM $NODE_IMAGE AS build", &values),
            "Step 1/8 : FROM mirror/node:20 AS build"
        );
        assert_eq!(
            expand_args("Step 1/8 : FROM $NODE_IMAGES", &values),
            "Step 1/8 : FROM $NODE_IMAGES",
            "a longer name is another arg"
        );
        assert_eq!(
            expand_args("Step 4/8 : RUN curl -H \"$NODE_IMAGE\" x", &values),
            "Step 4/8 : RUN curl -H \"$NODE_IMAGE\" x",
            "only FROM steps: other args may be secrets"
        );
        let err = step_failed(
            &expand_args("Step 2/6 : FROM ${STATIC_IMAGE}", &values),
            "pull access denied for busybox",
            512,
        );
        assert!(err.to_string().contains("FROM busybox:1.36"), "{err}");
    }

    #[test]
    fn operator_settings_are_refused_naming_the_key() {
        let cases = [
            (
                BuildSettings {
                    base_images: BTreeMap::from([("ruby".into(), "ruby:3".into())]),
                    ..BuildSettings::default()
                },
                "builder.base_images.ruby",
            ),
            (
                BuildSettings {
                    base_images: BTreeMap::from([("node".into(), "Not An Image".into())]),
                    ..BuildSettings::default()
                },
                "builder.base_images.node",
            ),
            (
                BuildSettings {
                    image_prefix: Some("registry.local:5000/library".into()),
                    ..BuildSettings::default()
                },
                "builder.image_prefix",
            ),
            (
                BuildSettings {
                    build_args: BTreeMap::from([("1X".into(), "v".into())]),
                    ..BuildSettings::default()
                },
                "builder.build_args.1X",
            ),
            (
                BuildSettings {
                    max_concurrent: Some(0),
                    ..BuildSettings::default()
                },
                "builder.max_concurrent",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(settings.validate().unwrap_err().field, field);
        }
        BuildSettings {
            base_images: BTreeMap::from([("static".into(), "clank-test/static:local".into())]),
            image_prefix: Some("registry.local:5000/library/".into()),
            build_args: BTreeMap::from([("HTTP_PROXY".into(), "http://proxy:3128".into())]),
            max_concurrent: Some(3),
        }
        .validate()
        .unwrap();
    }
}
