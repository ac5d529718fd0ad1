//! The `ImageBuilder` trait: how git services become images (clone, detect, Dockerfile, build).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::error::Result;
use crate::id::{BuildId, ServiceId};
use crate::image::ImageRef;
use crate::secret::SecretString;

/// Everything a builder needs for one build of one service.
#[derive(Clone)]
pub struct BuildRequest {
    pub build: BuildId,
    pub service: ServiceId,
    /// v1, v2, … per service.
    pub number: u64,
    pub repo_url: String,
    /// Branch or tag to check out.
    pub git_ref: String,
    /// A pinned commit (auto-deploy of a push); `None` = the head of `git_ref`.
    pub commit: Option<String>,
    pub dockerfile_path: Option<String>,
    pub build_context: Option<String>,
    /// The port the app must listen on (generated Dockerfiles use it).
    pub port: Option<u16>,
    /// The tag to give the image, e.g. `clank/shop-web:v3`.
    pub tag: ImageRef,
    pub build_args: BTreeMap<String, String>,
    /// Generated static-site images: the directory to serve (`ServiceSettings::publish_dir`).
    pub publish_dir: Option<String>,
    /// Generated static-site images: `index.html` for unknown paths
    /// (`ServiceSettings::spa_fallback`; `None`: the framework's default).
    pub spa_fallback: Option<bool>,
    /// Credentials for a private repository (a token), never logged.
    pub credentials: Option<SecretString>,
    pub timeout: Duration,
    /// The build's memory cap (a build that needs more fails saying so). Its CPU is not
    /// capped: builders run it at a low CPU weight, so it uses idle cores and yields them to
    /// running services under contention.
    pub memory_limit_mb: u32,
}

impl fmt::Debug for BuildRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildRequest")
            .field("build", &self.build)
            .field("number", &self.number)
            .field("repo_url", &self.repo_url)
            .field("git_ref", &self.git_ref)
            .field("commit", &self.commit)
            .field("tag", &self.tag)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "********"),
            )
            .finish_non_exhaustive()
    }
}

/// What a finished build produced, recorded on the `Build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutput {
    pub image: ImageRef,
    pub commit_sha: String,
    /// The Dockerfile used (the repository's, or the generated one).
    pub dockerfile: String,
    pub procfile: Option<String>,
    /// Detected framework when the Dockerfile was generated (`node`, `python`, `static`, ...).
    pub framework: Option<String>,
}

/// What a builder reports while a build runs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProgress {
    /// A line of build output, for the deploy log.
    Line(String),
    /// The checkout resolved the ref to `commit` (the full id) whose message's subject is
    /// `subject` (cleaned with [`commit_subject`](crate::model::commit_subject)). Reported
    /// before the image is built, so the `Build` says what it built even if the build then
    /// fails.
    CheckedOut {
        commit: String,
        subject: Option<String>,
    },
}

/// Receives a build's progress as it happens.
pub type BuildLog = Box<dyn FnMut(BuildProgress) + Send>;

/// Builds images from repositories. The engine runs `build` in a task with the request's
/// timeout and aborts it to cancel: implementations must stop their child processes and
/// engine-side builds when the future is dropped (e.g. `kill_on_drop`).
#[async_trait::async_trait]
pub trait ImageBuilder: Send + Sync + fmt::Debug {
    async fn build(&self, request: &BuildRequest, log: BuildLog) -> Result<BuildOutput>;

    /// Remove an image this builder produced. A missing image is `Ok` (idempotent); an image
    /// a workload still uses is left in place with a `Conflict`.
    async fn remove_image(&self, image: &ImageRef) -> Result<()>;
}
