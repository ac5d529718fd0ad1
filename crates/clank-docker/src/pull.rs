//! Pulling images from registries: credentials, a bound, progress lines, and errors that say
//! which image, which registry and why (the credentials were refused, the image or tag does
//! not exist, the registry could not be reached, the time ran out).
//!
//! The engine streams a pull as JSON lines per layer (`Pulling fs layer`, `Downloading` with
//! byte counts many times a second, `Extracting`, `Pull complete`). [`Throttle`] turns them
//! into lines a deploy log can hold: one per layer state change, and at most one a second
//! while bytes move.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::CreateImageInfo;
use bollard::query_parameters::CreateImageOptions;
use clank_core::image::ImageRef;
use clank_core::runtime::{PullProgress, RegistryAuth};
use clank_core::{Error, Result, RuntimeFailure};
use futures_util::StreamExt;
use tracing::info;

use crate::error::{Subject, engine_error, status_of};

/// Why a pull failed, as far as the registry's answer tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// 401/403, "unauthorized", "denied": the credentials (or their absence) were refused.
    Auth,
    /// "manifest unknown", 404: no such repository or tag.
    NotFound,
    /// Refused, reset or timed-out connections, DNS, TLS: the registry was not reachable.
    Network,
    Other,
}

/// Pull `image` unless the engine has it; its registry digest (`sha256:…`) if it has one.
pub(crate) async fn pull(
    docker: &Docker,
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    within: Duration,
    progress: PullProgress<'_>,
) -> Result<Option<String>> {
    let reference = image.to_string();
    match docker.inspect_image(&reference).await {
        Ok(found) => return Ok(repo_digest(image, found.repo_digests.as_deref())),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error(e, Subject::Image, &reference)),
    }
    let registry = image.registry_or_default();
    info!(image = %reference, registry, authenticated = auth.is_some(), "Pulling image.");
    progress(format!(
        "pulling image `{reference}` from registry `{registry}`{}",
        auth.map(|a| format!(" as `{}`", a.username))
            .unwrap_or_default()
    ));
    let options = CreateImageOptions {
        from_image: Some(reference.clone()),
        // Without a tag or digest the API would pull every tag of the repository.
        tag: (image.tag().is_none() && image.digest().is_none()).then(|| "latest".to_owned()),
        ..CreateImageOptions::default()
    };
    let credentials = auth.map(|a| DockerCredentials {
        username: Some(a.username.clone()),
        password: Some(a.password.expose().to_owned()),
        serveraddress: Some(registry.to_owned()),
        ..DockerCredentials::default()
    });
    let started = Instant::now();
    let run = async {
        let mut stream = docker.create_image(Some(options), None, credentials);
        let mut throttle = Throttle::default();
        while let Some(step) = stream.next().await {
            if let Some(line) = throttle.line(&step?, Instant::now()) {
                progress(line);
            }
        }
        Ok::<(), bollard::errors::Error>(())
    };
    match tokio::time::timeout(within, run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(failed(image, auth, e)),
        Err(_) => {
            return Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!(
                    "pulling image `{reference}` from registry `{registry}` did not finish within \
                     {}, the time left before the deployment's deadline; raise the service's \
                     deploy_timeout_s, or pull it on the host first (`docker pull {reference}`)",
                    seconds(within)
                ),
            ));
        }
    }
    let found = docker
        .inspect_image(&reference)
        .await
        .map_err(|e| engine_error(e, Subject::Image, &reference))?;
    let digest = repo_digest(image, found.repo_digests.as_deref());
    progress(format!(
        "pulled image `{reference}` in {:.1} s{}{}",
        started.elapsed().as_secs_f64(),
        found
            .size
            .map(|s| format!(" ({})", size(s)))
            .unwrap_or_default(),
        digest
            .as_deref()
            .map(|d| format!(", digest {d}"))
            .unwrap_or_default()
    ));
    Ok(digest)
}

/// The digest of `image` among the engine's `RepoDigests` (`registry/repo@sha256:…`).
fn repo_digest(image: &ImageRef, digests: Option<&[String]>) -> Option<String> {
    let name = match image.registry() {
        Some(registry) => format!("{registry}/{}", image.repository()),
        None if image.repository().contains('/') => image.repository().to_owned(),
        None => format!("library/{}", image.repository()),
    };
    let digests = digests?;
    let of = |entry: &String| {
        entry
            .split_once('@')
            .map(|(n, d)| (n.to_owned(), d.to_owned()))
    };
    let mut entries = digests.iter().filter_map(of);
    entries
        .clone()
        .find(|(n, _)| *n == name || n.ends_with(&format!("/{name}")))
        .or_else(|| entries.next().filter(|_| digests.len() == 1))
        .map(|(_, d)| d)
}

/// A failed pull as the error a user can act on.
fn failed(image: &ImageRef, auth: Option<&RegistryAuth>, e: bollard::errors::Error) -> Error {
    let (status, message) = match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        } => (Some(status_code), message),
        bollard::errors::Error::DockerStreamError { error } => (None, error),
        // Not the registry's answer: the engine itself could not be talked to.
        other => return engine_error(other, Subject::Image, &image.to_string()),
    };
    registry_error(image, auth, status, &message)
}

fn classify(status: Option<u16>, message: &str) -> Why {
    let m = message.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if matches!(status, Some(401 | 403))
        || any(&[
            "unauthorized",
            "authentication required",
            "denied",
            "no basic auth credentials",
            "incorrect username or password",
            "forbidden",
        ])
    {
        Why::Auth
    } else if status == Some(404)
        || any(&[
            "manifest unknown",
            "not found",
            "name unknown",
            "does not exist",
        ])
    {
        Why::NotFound
    } else if any(&[
        "connection refused",
        "connection reset",
        "dial tcp",
        "no such host",
        "i/o timeout",
        "timeout",
        "tls",
        "x509",
        "certificate",
        "network is unreachable",
        "eof",
        "server gave http response",
    ]) {
        Why::Network
    } else {
        Why::Other
    }
}

/// The error for a registry's refusal `message` (with HTTP `status` when the engine sent one).
fn registry_error(
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    status: Option<u16>,
    message: &str,
) -> Error {
    let registry = image.registry_or_default();
    let text = match classify(status, message) {
        Why::Auth => match auth {
            Some(a) => format!(
                "registry `{registry}` refused the credentials of user `{}` for image \
                 `{image}` (authentication failed: {message}); check the username and the \
                 password or token in the service's registry credentials secret \
                 (`username:token`)",
                a.username
            ),
            None => format!(
                "registry `{registry}` requires authentication for image `{image}` \
                 (authentication failed: {message}); set the service's `credentials_secret` \
                 to a config secret (e.g. `REGISTRY_AUTH`) holding `username:token`"
            ),
        },
        Why::NotFound => format!(
            "image `{image}` was not found on registry `{registry}` ({message}); check the \
             repository name and that the tag `{}` exists there (was it pushed?)",
            image.digest().or(image.tag()).unwrap_or("latest")
        ),
        Why::Network => format!(
            "cannot reach registry `{registry}` to pull image `{image}` (network error: \
             {message}); check that the registry is up and its address, and this host's DNS, \
             network and TLS trust"
        ),
        Why::Other => {
            format!("pulling image `{image}` from registry `{registry}` failed: {message}")
        }
    };
    Error::runtime(RuntimeFailure::ImageMissing, text)
}

/// Turns the engine's per-layer progress into few, readable lines.
#[derive(Debug, Default)]
struct Throttle {
    /// Each layer's last reported status.
    layers: HashMap<String, String>,
    /// When the last "bytes moved" line was written.
    last_progress: Option<Instant>,
}

/// At most one "bytes moved" line this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

impl Throttle {
    fn line(&mut self, info: &CreateImageInfo, now: Instant) -> Option<String> {
        let status = info.status.as_deref()?.trim();
        if status.is_empty() {
            return None;
        }
        // "Pulling from <repository>" carries the tag as its id: not a layer.
        let layer = info
            .id
            .as_deref()
            .filter(|id| !id.is_empty() && !status.starts_with("Pulling from"));
        let Some(id) = layer else {
            return Some(status.to_owned());
        };
        let sizes = info
            .progress_detail
            .as_ref()
            .and_then(|p| match (p.current, p.total) {
                (Some(c), Some(t)) if t > 0 => Some(format!(" {} / {}", size(c), size(t))),
                (Some(c), _) if c > 0 => Some(format!(" {}", size(c))),
                _ => None,
            })
            .unwrap_or_default();
        let changed = self.layers.get(id).is_none_or(|s| s != status);
        if changed {
            self.layers.insert(id.to_owned(), status.to_owned());
        } else if self
            .last_progress
            .is_some_and(|at| now.duration_since(at) < PROGRESS_EVERY)
        {
            return None;
        }
        if !sizes.is_empty() {
            self.last_progress = Some(now);
        }
        Some(format!("layer {id}: {status}{sizes}"))
    }
}

/// A duration for people: `250 ms`, `42 s`.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.0} s", d.as_secs_f64())
    }
}

/// A byte count for people: `512 B`, `1.5 kB`, `12.3 MB`, `1.2 GB` (SI, as Docker shows them).
fn size(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bollard::models::ProgressDetail;
    use clank_core::secret::SecretString;

    fn image(s: &str) -> ImageRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn step(id: &str, status: &str, current: Option<i64>, total: Option<i64>) -> CreateImageInfo {
        CreateImageInfo {
            id: Some(id.to_owned()),
            status: Some(status.to_owned()),
            progress_detail: Some(ProgressDetail { current, total }),
            ..CreateImageInfo::default()
        }
    }

    #[test]
    fn progress_is_one_line_per_layer_state_and_at_most_one_byte_count_a_second() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut lines = Vec::new();
        let mut feed = |info: CreateImageInfo, ms| {
            if let Some(l) = t.line(&info, at(ms)) {
                lines.push(l);
            }
        };
        feed(step("aaa", "Pulling fs layer", None, None), 0);
        feed(step("aaa", "Downloading", Some(1_000), Some(4_000_000)), 10);
        for ms in (20..900).step_by(10) {
            feed(
                step(
                    "aaa",
                    "Downloading",
                    Some(ms as i64 * 1000),
                    Some(4_000_000),
                ),
                ms,
            );
        }
        feed(
            step("aaa", "Downloading", Some(2_000_000), Some(4_000_000)),
            1_100,
        );
        feed(step("aaa", "Download complete", None, None), 1_200);
        feed(step("aaa", "Pull complete", None, None), 1_300);
        assert_eq!(
            lines,
            [
                "layer aaa: Pulling fs layer",
                "layer aaa: Downloading 1.0 kB / 4.0 MB",
                "layer aaa: Downloading 2.0 MB / 4.0 MB",
                "layer aaa: Download complete",
                "layer aaa: Pull complete",
            ]
        );
    }

    #[test]
    fn refusals_say_which_image_which_registry_and_why() {
        let img = image("127.0.0.1:5000/team/app:v1");
        let auth = RegistryAuth {
            username: "bot".into(),
            password: SecretString::new("hunter2"),
        };
        let cases = [
            (
                Some(500),
                "Head \"https://127.0.0.1:5000/v2/team/app/manifests/v1\": no basic auth credentials",
                None,
                "requires authentication",
            ),
            (
                Some(500),
                "unauthorized: authentication required",
                Some(&auth),
                "refused the credentials of user `bot`",
            ),
            (
                Some(404),
                "manifest for 127.0.0.1:5000/team/app:v1 not found: manifest unknown",
                Some(&auth),
                "tag `v1` exists",
            ),
            (
                Some(500),
                "Get \"https://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused",
                None,
                "cannot reach registry",
            ),
        ];
        for (status, message, auth, says) in cases {
            let e = registry_error(&img, auth, status, message);
            let text = e.to_string();
            assert_eq!(e.runtime_failure(), Some(RuntimeFailure::ImageMissing));
            assert!(text.contains(says), "{text}");
            assert!(text.contains("`127.0.0.1:5000/team/app:v1`"), "{text}");
            assert!(text.contains("registry `127.0.0.1:5000`"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let hub = registry_error(
            &image("nginx:1.27"),
            None,
            Some(500),
            "dial tcp: no such host",
        );
        assert!(hub.to_string().contains("registry `docker.io`"), "{hub}");
    }

    #[test]
    fn the_digest_is_the_one_of_the_pulled_repository() {
        let digests = vec![
            "127.0.0.1:5000/other@sha256:1111".to_owned(),
            "127.0.0.1:5000/team/app@sha256:2222".to_owned(),
        ];
        assert_eq!(
            repo_digest(&image("127.0.0.1:5000/team/app:v1"), Some(&digests)).as_deref(),
            Some("sha256:2222")
        );
        let hub = vec!["nginx@sha256:3333".to_owned()];
        assert_eq!(
            repo_digest(&image("nginx:1.27"), Some(&hub)).as_deref(),
            Some("sha256:3333")
        );
        assert_eq!(repo_digest(&image("clank/app:v1"), Some(&[])), None);
    }
}
