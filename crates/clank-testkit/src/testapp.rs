//! The test app every runtime test runs: a tiny HTTP server made of Debian's static busybox
//! (`nc` plus a shell handler), because no registry is reachable to pull a real one.
//!
//! The same two scripts run everywhere: as a native process (`/bin/busybox sh start.sh` in a
//! directory written by [`write_testapp`]) and in the `FROM scratch` image [`IMAGE`] that
//! [`docker::ensure_testapp_image`] builds through the Docker API (feature `docker`).
//!
//! What the app does (see `testapp/handler.sh` for the routes):
//! - prints `testapp listening on $PORT` to stdout at start (and its health mode to stderr),
//!   and one `testapp request GET /path -> status` line per request;
//! - `GET /health` answers 200 while the file `health.ok` exists in its directory, 503 when it
//!   does not. `HEALTH=ok|fail|slow` picks the state at start (`slow` sleeps `HEALTH_DELAY`
//!   seconds, default 3, before answering); at run time exec `rm health.ok` / `touch health.ok`
//!   in the workload's working directory to flip it;
//! - with `START_DELAY` set, waits that many seconds before it listens (a slow-booting app);
//! - with `DATA_DIR` set (a mounted volume), appends a line to `$DATA_DIR/starts.log` at start,
//!   and `GET /data/write?VALUE` / `GET /data` write and read `$DATA_DIR/data.txt`;
//! - `GET /log?TOKEN` / `GET /err?TOKEN` print `testapp log TOKEN` to stdout / `testapp err
//!   TOKEN` to stderr, `GET /env?NAME` echoes a variable, `GET /exit?CODE` makes the app exit
//!   with `CODE`;
//! - exits 0 on SIGTERM, even as PID 1 in a container; with `IGNORE_TERM` set it ignores
//!   SIGTERM instead (a stop waits out its grace period, as for many shell entrypoints).
//!
//! Every command in the scripts goes through `/bin/busybox` explicitly, so the app needs
//! nothing on `PATH` and the host's other tools never leak into a test.

use std::io;
use std::path::Path;

/// Where the static busybox is, on the host (Debian's `busybox-static`) and in the image.
pub const BUSYBOX: &str = "/bin/busybox";

/// The image [`docker::ensure_testapp_image`] builds.
pub const IMAGE: &str = "clank-testapp:latest";

/// The port the app listens on unless `PORT` says otherwise (and the one the image exposes).
pub const DEFAULT_PORT: u16 = 8080;

/// Where the image keeps the app's files; its working directory.
pub const IMAGE_APP_DIR: &str = "/app";

const START_SH: &str = include_str!("testapp/start.sh");
const HANDLER_SH: &str = include_str!("testapp/handler.sh");

/// One file of the app, relative to the app's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppFile {
    pub path: &'static str,
    pub contents: &'static str,
    pub mode: u32,
}

/// The app's files. Run it with [`command`] in the directory they are written to.
pub fn testapp_files() -> Vec<AppFile> {
    vec![
        AppFile {
            path: "start.sh",
            contents: START_SH,
            mode: 0o755,
        },
        AppFile {
            path: "handler.sh",
            contents: HANDLER_SH,
            mode: 0o755,
        },
    ]
}

/// The argument vector that runs the app from its directory (the native runtime's working
/// directory; the image's `CMD` is the same with an absolute path).
pub fn command() -> Vec<String> {
    vec![BUSYBOX.to_owned(), "sh".to_owned(), "start.sh".to_owned()]
}

/// Write the app's files into `dir` (created if missing). The app keeps its health state in
/// that directory, so give every workload its own. The directory is writable by every user:
/// the native runtime, run as root, starts the app as its workspace's own unprivileged user
/// (whose way to `dir` must be open too: give a 0700 temporary parent mode 0711).
pub fn write_testapp(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    for file in testapp_files() {
        let path = dir.join(file.path);
        std::fs::write(&path, file.contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
    }
    Ok(())
}

/// Whether the host has the static busybox the app needs.
pub fn busybox_available() -> bool {
    Path::new(BUSYBOX).is_file()
}

/// 64-bit FNV-1a: a content digest that is stable across Rust versions (unlike `DefaultHasher`),
/// so an image built by one test binary is recognised by the next.
#[cfg_attr(not(feature = "docker"), allow(dead_code))]
fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(feature = "docker")]
pub mod docker {
    //! Building [`super::IMAGE`] through the Docker build API from an in-memory tar context:
    //! `FROM scratch`, the host's `/bin/busybox` (plus applet symlinks for people who
    //! `docker exec` into it), and the app in `/app`; and, on top of it, labelled stand-ins
    //! tagged as images no registry can give the tests ([`build_stand_in`]).

    use std::collections::HashMap;
    use std::error::Error as StdError;

    use bollard::Docker;
    use bollard::query_parameters::BuildImageOptions;
    use futures_util::StreamExt;
    use tokio::sync::OnceCell;

    use super::{BUSYBOX, DEFAULT_PORT, IMAGE, IMAGE_APP_DIR, fnv1a, testapp_files};

    /// Label on the image recording the digest of what it was built from.
    pub const DIGEST_LABEL: &str = "clank.testapp.digest";

    /// Applets linked into the image's `/bin`, for humans and for `exec` without a full path.
    const APPLETS: &[&str] = &[
        "sh", "cat", "echo", "env", "hostname", "kill", "ls", "mkdir", "nc", "nslookup", "ps",
        "rm", "sleep", "touch", "wget",
    ];

    type BoxError = Box<dyn StdError + Send + Sync>;

    static BUILT: OnceCell<String> = OnceCell::const_new();

    /// Connect to the engine the platform picks (the `unix://` socket in `DOCKER_HOST`, else
    /// the default) and negotiate the API version (the engine may be older than bollard's
    /// default: Docker 20.10 speaks 1.41).
    pub async fn connect() -> Result<Docker, BoxError> {
        let docker = match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) => Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)?,
                None => return Err(format!("DOCKER_HOST={host}: only unix:// sockets").into()),
            },
            _ => Docker::connect_with_socket_defaults()?,
        };
        Ok(docker.negotiate_version().await?)
    }

    /// Make sure [`IMAGE`] exists and matches this build of the app; returns the digest.
    ///
    /// Builds at most once per process, and not at all when the engine already has an image
    /// with the same digest label (so it costs one `inspect` per test binary).
    pub async fn ensure_testapp_image(docker: &Docker) -> Result<String, BoxError> {
        BUILT
            .get_or_try_init(|| build_if_stale(docker))
            .await
            .cloned()
    }

    async fn build_if_stale(docker: &Docker) -> Result<String, BoxError> {
        let busybox = tokio::task::spawn_blocking(|| std::fs::read(BUSYBOX))
            .await?
            .map_err(|e| format!("cannot read {BUSYBOX} (install Debian's busybox-static): {e}"))?;
        let dockerfile_template = dockerfile("DIGEST");
        let mut digest = fnv1a(0xcbf2_9ce4_8422_2325, &busybox);
        digest = fnv1a(digest, dockerfile_template.as_bytes());
        for f in testapp_files() {
            digest = fnv1a(digest, f.path.as_bytes());
            digest = fnv1a(digest, f.contents.as_bytes());
            digest = fnv1a(digest, &f.mode.to_le_bytes());
        }
        let digest = format!("{digest:016x}");

        if let Ok(image) = docker.inspect_image(IMAGE).await {
            let current = image
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(DIGEST_LABEL).cloned());
            if current.as_deref() == Some(digest.as_str()) {
                return Ok(digest);
            }
        }

        let context = context_tar(&busybox, &dockerfile(&digest))?;
        let labels = HashMap::from([(DIGEST_LABEL.to_owned(), digest.clone())]);
        build_image(docker, IMAGE, context, Some(labels)).await?;
        Ok(digest)
    }

    /// Build `context` (a tar with a `Dockerfile`) as `tag` through the Docker API, and check
    /// the image is there; the build's output is in the error when it fails.
    pub async fn build_image(
        docker: &Docker,
        tag: &str,
        context: Vec<u8>,
        labels: Option<HashMap<String, String>>,
    ) -> Result<(), BoxError> {
        let options = BuildImageOptions {
            t: Some(tag.to_owned()),
            rm: true,
            forcerm: true,
            labels,
            ..BuildImageOptions::default()
        };
        let mut build = docker.build_image(
            options,
            None,
            Some(bollard::body_full(bytes::Bytes::from(context))),
        );
        let mut log = String::new();
        while let Some(step) = build.next().await {
            match step {
                Ok(info) => log.push_str(&info.stream.unwrap_or_default()),
                Err(e) => return Err(format!("building {tag} failed: {e}\n{log}").into()),
            }
        }
        docker
            .inspect_image(tag)
            .await
            .map_err(|e| format!("{tag} is missing right after its build: {e}\n{log}"))?;
        Ok(())
    }

    /// Label on the images [`build_stand_in`] tags, so only those are ever replaced or removed.
    pub const STAND_IN_LABEL: &str = "clank.testapp.stand-in";

    /// Tag a local stand-in for an image no registry can give us here (the tunnel connector's
    /// `cloudflare/cloudflared:latest`): the test app's image with `entrypoint` (an argument
    /// vector) in front of whatever command a workload gives it. Refuses to replace an image
    /// under `tag` that is not a stand-in. Remove it with [`remove_stand_in`].
    pub async fn build_stand_in(
        docker: &Docker,
        tag: &str,
        entrypoint: &[&str],
    ) -> Result<(), BoxError> {
        ensure_testapp_image(docker).await?;
        if let Ok(existing) = docker.inspect_image(tag).await {
            let ours = existing
                .config
                .and_then(|c| c.labels)
                .is_some_and(|l| l.contains_key(STAND_IN_LABEL));
            if !ours {
                return Err(format!(
                    "the engine already has an image `{tag}` that is not a test stand-in; \
                     refusing to replace it (remove or retag it to run this test)"
                )
                .into());
            }
        }
        // Exec form; `{:?}` of these plain ASCII arguments is valid JSON.
        let argv: Vec<String> = entrypoint.iter().map(|a| format!("{a:?}")).collect();
        let dockerfile = format!(
            "FROM {IMAGE}\n\
             ENTRYPOINT [{}]\n\
             CMD []\n\
             LABEL {STAND_IN_LABEL}=1\n",
            argv.join(", ")
        );
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(dockerfile.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
        let context = tar.into_inner()?;
        build_image(docker, tag, context, None).await?;
        Ok(())
    }

    /// Remove the networks of project `project_slug` in any workspace (names
    /// `clank-{scope}--{project}`), for tests whose workspace is gone with their data
    /// directory. Networks still in use stay.
    pub async fn remove_networks_of_project(docker: &Docker, project_slug: &str) {
        let wanted = format!("clank-{project_slug}");
        let Ok(networks) = docker
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
        else {
            return;
        };
        for n in networks {
            let Some(name) = n.name else { continue };
            if clank_core::runtime::unscoped_name(&name) != wanted {
                continue;
            }
            // An endpoint of a container removed a moment ago can linger briefly.
            for _ in 0..10 {
                if docker.remove_network(&name).await.is_ok() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    /// Remove the images Clank's builder tagged for project `project_slug` in any workspace
    /// (`clank/{scope}-{project}-{service}:v{n}`), once the workloads using them are gone.
    pub async fn remove_build_images_of_project(docker: &Docker, project_slug: &str) {
        let Ok(images) = docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
        else {
            return;
        };
        let ours = |tag: &str| {
            let Some(name) = tag.strip_prefix("clank/") else {
                return false;
            };
            let name = name.split(':').next().unwrap_or_default();
            name.split_once('-').is_some_and(|(scope, rest)| {
                scope.len() == 12
                    && scope.bytes().all(|b| b.is_ascii_hexdigit())
                    && rest.starts_with(&format!("{project_slug}-"))
            })
        };
        for tag in images.iter().flat_map(|i| &i.repo_tags) {
            if ours(tag) {
                let _ = docker
                    .remove_image(
                        tag,
                        None::<bollard::query_parameters::RemoveImageOptions>,
                        None,
                    )
                    .await;
            }
        }
    }

    /// Remove a stand-in [`build_stand_in`] tagged (anything else under `tag` is left alone).
    pub async fn remove_stand_in(docker: &Docker, tag: &str) -> Result<(), BoxError> {
        let Ok(existing) = docker.inspect_image(tag).await else {
            return Ok(());
        };
        let ours = existing
            .config
            .and_then(|c| c.labels)
            .is_some_and(|l| l.contains_key(STAND_IN_LABEL));
        if ours {
            docker
                .remove_image(
                    tag,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await?;
        }
        Ok(())
    }

    fn dockerfile(digest: &str) -> String {
        format!(
            "FROM scratch\n\
             COPY bin/ /bin/\n\
             COPY app/ {IMAGE_APP_DIR}/\n\
             WORKDIR {IMAGE_APP_DIR}\n\
             ENV PATH=/bin PORT={DEFAULT_PORT}\n\
             EXPOSE {DEFAULT_PORT}\n\
             LABEL {DIGEST_LABEL}={digest}\n\
             CMD [\"{BUSYBOX}\", \"sh\", \"{IMAGE_APP_DIR}/start.sh\"]\n"
        )
    }

    fn context_tar(busybox: &[u8], dockerfile: &str) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            // A fixed mtime keeps the context byte-identical, so the build cache applies.
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, path, data)
        };
        add("Dockerfile", dockerfile.as_bytes(), 0o644)?;
        add("bin/busybox", busybox, 0o755)?;
        for f in testapp_files() {
            add(&format!("app/{}", f.path), f.contents.as_bytes(), f.mode)?;
        }
        for applet in APPLETS {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            header.set_mode(0o777);
            header.set_mtime(0);
            tar.append_link(&mut header, format!("bin/{applet}"), "busybox")?;
        }
        tar.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_executable_scripts_that_only_call_busybox_by_full_path() {
        let files = testapp_files();
        assert_eq!(
            files.iter().map(|f| f.path).collect::<Vec<_>>(),
            ["start.sh", "handler.sh"]
        );
        assert!(START_SH.contains("testapp listening on $PORT"));
        assert!(HANDLER_SH.contains("/health"));
    }

    #[test]
    fn write_testapp_writes_every_file_with_its_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        write_testapp(&dir).unwrap();
        for f in testapp_files() {
            let meta = std::fs::metadata(dir.join(f.path)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, f.mode);
            assert_eq!(
                std::fs::read_to_string(dir.join(f.path)).unwrap(),
                f.contents
            );
        }
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        let basis = 0xcbf2_9ce4_8422_2325;
        assert_eq!(fnv1a(basis, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(basis, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
