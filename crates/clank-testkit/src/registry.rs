//! Debian's `docker-registry` (the CNCF distribution registry) with htpasswd authentication,
//! for pull tests against a real private registry.
//!
//! Where it listens decides how the Docker engine talks to it:
//! - **Trusted TLS** (preferred): on the engine's `docker0` bridge address (reachable from this
//!   host only), with a certificate from a throwaway CA (made with the `openssl` CLI) that the
//!   engine is told to trust through `/etc/docker/certs.d/<host:port>/ca.crt`, read on every
//!   pull, so no daemon restart. The engine treats it as any private registry on the internet:
//!   verified HTTPS, no fallback. Needs write access to `/etc/docker/certs.d` (root); the entry
//!   is removed when the registry is dropped.
//! - **Plain HTTP on 127.0.0.1** otherwise: the engine's default insecure range is
//!   `127.0.0.0/8`, where it falls back to HTTP. (TLS there would be worse than none: after an
//!   HTTPS refusal the engine retries over HTTP and reports that retry's error, hiding why.)
//!
//! The password is hashed with bcrypt by `htpasswd -B` (Debian's `apache2-utils`), the hash the
//! registry accepts. Without these programs [`Registry::start`] skips loudly, and panics when
//! `CI` is set.
//!
//! [`Registry::push_test_image`] puts an image on it that the engine does not have: the test
//! app's image plus a layer of random bytes, pushed with credentials and removed locally, so a
//! pull really downloads (and reports) a layer.

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{PushImageOptions, RemoveImageOptions};
use clank_core::runtime::RegistryAuth;
use clank_core::secret::SecretString;
use futures_util::StreamExt;
use rand::RngCore as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

use crate::cleanup::block_on_aside;
use crate::pebble::{free_port, listening};
use crate::testapp;
use crate::tls::{make_ca_and_leaf, run};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Label on every image [`Registry::push_test_image`] builds, so leftovers are recognisable.
pub const TEST_IMAGE_LABEL: &str = "clank.test.registry";

/// Where the engine trusts registries' CAs, one directory per `host:port`.
const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";

/// A running registry; killed (its storage and any `certs.d` entry deleted) when dropped.
#[derive(Debug)]
pub struct Registry {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `<address>:<port>`: the registry part of the images it holds.
    pub host: String,
    pub username: String,
    password: String,
    /// `/etc/docker/certs.d/<host>` when the engine verifies the registry's TLS certificate.
    trusted_ca: Option<PathBuf>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(dir) = self.trusted_ca.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The engine's default bridge gateway (`docker0`, e.g. 172.17.0.1), if this host has it.
async fn bridge_gateway(docker: &Docker) -> Option<std::net::IpAddr> {
    let bridge = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .ok()?;
    // Docker 20.10 records only the subnet of the default bridge; its gateway is the first
    // address.
    let config = bridge.ipam?.config?;
    let gateway = config
        .iter()
        .find_map(|c| c.gateway.as_deref()?.parse().ok());
    let first = || {
        config.iter().find_map(|c| {
            let (net, _) = c.subnet.as_deref()?.split_once('/')?;
            let net: std::net::Ipv4Addr = net.parse().ok()?;
            Some(std::net::IpAddr::V4((u32::from(net) + 1).into()))
        })
    };
    let ip = gateway.or_else(first)?;
    // Only if the address is this host's: the registry has to bind it.
    std::net::TcpListener::bind((ip, 0)).ok()?;
    Some(ip)
}

/// Whether `docker-registry`, `htpasswd` and `openssl` are on `PATH`.
pub fn installed() -> bool {
    [
        ("docker-registry", "--version"),
        ("htpasswd", "-h"),
        ("openssl", "version"),
    ]
    .iter()
    .all(|(bin, arg)| {
        std::process::Command::new(bin)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    })
}

impl Registry {
    /// Start a registry with one user (`clank-test`, a random password): trusted TLS on the
    /// engine's bridge address when this process may add a `certs.d` entry, else plain HTTP on
    /// 127.0.0.1 (see the module docs). `None` (skip) without the programs outside CI.
    pub async fn start(docker: &Docker) -> Option<Registry> {
        if !installed() {
            return crate::runtime::skip_or_fail(
                "docker-registry",
                "`docker-registry`, `htpasswd` or `openssl` is not on PATH (apt-get install \
                 docker-registry apache2-utils openssl)",
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let username = "clank-test".to_owned();
        let mut bytes = [0u8; 12];
        rand::rng().fill_bytes(&mut bytes);
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let htpasswd = run("htpasswd", &["-Bbn", &username, &password], dir.path());
        std::fs::write(dir.path().join("htpasswd"), htpasswd).expect("write htpasswd");
        let port = free_port();
        let d = dir.path().display().to_string();
        let mut trusted_ca = None;
        let mut tls = String::new();
        let mut host = format!("127.0.0.1:{port}");
        if let Some(ip) = bridge_gateway(docker).await {
            let candidate = format!("{ip}:{port}");
            let certs = Path::new(DOCKER_CERTS_D).join(&candidate);
            if std::fs::create_dir_all(&certs).is_ok() {
                let san = format!("IP:{ip}");
                make_ca_and_leaf(
                    dir.path(),
                    "clank registry test CA",
                    "clank registry test",
                    &san,
                );
                std::fs::copy(dir.path().join("ca.pem"), certs.join("ca.crt"))
                    .expect("copy the CA into certs.d");
                tls = format!("  tls:\n    certificate: {d}/leaf.pem\n    key: {d}/leaf.key\n");
                trusted_ca = Some(certs);
                host = candidate;
            }
        }
        if trusted_ca.is_none() {
            eprintln!(
                "note: the test registry serves plain HTTP on 127.0.0.1 (no write access to \
                 {DOCKER_CERTS_D} or no docker0 bridge for a trusted TLS registry)"
            );
        }
        let config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n\
             storage:\n  filesystem:\n    rootdirectory: {d}/data\n\
             http:\n  addr: {host}\n  secret: clank-test-secret\n{tls}\
             auth:\n  htpasswd:\n    realm: clank-test\n    path: {d}/htpasswd\n"
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config.yml");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            dir,
            child: Some(child),
            host,
            username,
            password,
            trusted_ca,
        };
        let addr: SocketAddr = registry.host.parse().expect("a socket address");
        assert!(
            listening(addr).await,
            "docker-registry did not listen on {addr}: {}",
            registry.log()
        );
        Some(registry)
    }

    /// Whether the engine verifies this registry's certificate (trusted TLS mode).
    pub fn is_tls(&self) -> bool {
        self.trusted_ca.is_some()
    }

    /// Stop trusting the registry's CA (remove its `certs.d` entry): the engine's next pull
    /// fails certificate verification. No-op in plain HTTP mode.
    pub fn distrust(&mut self) {
        if let Some(dir) = self.trusted_ca.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The registry's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The user's credentials, as a service's registry credentials secret would give them.
    pub fn auth(&self) -> RegistryAuth {
        RegistryAuth {
            username: self.username.clone(),
            password: SecretString::new(self.password.clone()),
        }
    }

    /// `username:password`: the value to store in a service's credentials secret.
    pub fn secret_value(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }

    /// The password alone (tests check it never shows up in logs).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The credentials as the engine API takes them.
    pub fn docker_credentials(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            serveraddress: Some(self.host.clone()),
            ..DockerCredentials::default()
        }
    }

    /// Kill the registry (and wait for it), so its port refuses connections.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// [`Registry::push_test_image`] to a repository of its own, `clank-test/{name}-<random>`,
    /// tag `v1`; removed from the engine again (what a pull brought back) when dropped.
    pub async fn push_fresh_image(
        &self,
        docker: &Docker,
        name: &str,
        layer_bytes: usize,
    ) -> Result<PushedImage, BoxError> {
        let repository = format!("clank-test/{name}-{:08x}", rand::random::<u32>());
        let reference = self
            .push_test_image(docker, &repository, "v1", layer_bytes)
            .await?;
        Ok(PushedImage { reference })
    }

    /// Build `{host}/{repository}:{tag}` (the test app's image plus a `layer_bytes` layer of
    /// random bytes), push it with the user's credentials, and remove it from the engine, so
    /// a pull has to download it. Remove what a pull brings back with [`remove_image`].
    pub async fn push_test_image(
        &self,
        docker: &Docker,
        repository: &str,
        tag: &str,
        layer_bytes: usize,
    ) -> Result<String, BoxError> {
        testapp::docker::ensure_testapp_image(docker).await?;
        let reference = format!("{}/{repository}:{tag}", self.host);
        let mut blob = vec![0u8; layer_bytes];
        rand::rng().fill_bytes(&mut blob);
        let dockerfile = format!(
            "FROM {}\nCOPY blob /registry-test-blob\nLABEL {TEST_IMAGE_LABEL}=1\n",
            testapp::IMAGE
        );
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in [("Dockerfile", dockerfile.as_bytes()), ("blob", &blob[..])] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, data)?;
        }
        testapp::docker::build_image(docker, &reference, tar.into_inner()?, None).await?;
        let name = format!("{}/{repository}", self.host);
        let options = PushImageOptions {
            tag: Some(tag.to_owned()),
            ..PushImageOptions::default()
        };
        let mut push = docker.push_image(&name, Some(options), Some(self.docker_credentials()));
        let mut pushed = Ok(());
        while let Some(step) = push.next().await {
            if let Err(e) = step {
                pushed = Err(format!("pushing {reference} failed: {e}\n{}", self.log()));
                break;
            }
        }
        remove_image(docker, &reference).await;
        pushed?;
        Ok(reference)
    }
}

/// An image [`Registry::push_fresh_image`] pushed: whatever a pull of it brings to the engine
/// is removed when this is dropped, even after a panic.
#[derive(Debug)]
pub struct PushedImage {
    /// `{host}/{repository}:v1`.
    pub reference: String,
}

impl Drop for PushedImage {
    fn drop(&mut self) {
        let reference = self.reference.clone();
        block_on_aside(async move {
            if let Ok(docker) = testapp::docker::connect().await {
                remove_image(&docker, &reference).await;
            }
        });
    }
}

/// Remove `reference` from the engine if it is there (its own layers go with it).
pub async fn remove_image(docker: &Docker, reference: &str) {
    let options = RemoveImageOptions {
        force: true,
        ..RemoveImageOptions::default()
    };
    let _ = docker.remove_image(reference, Some(options), None).await;
}
