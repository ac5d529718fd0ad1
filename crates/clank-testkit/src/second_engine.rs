//! A second, private Docker Engine on this host: what a remote server's agent runs on in
//! tests that need an engine which has never seen the control plane's images.
//!
//! `dockerd` runs as a child with everything of its own under one temporary directory (data
//! root, exec root, pid file, socket, an empty `daemon.json` so the host's configuration is
//! not read) and its own containerd. What it needs to run here (root, no systemd):
//! - `--storage-driver vfs`: plain directories, no kernel overlay or FUSE support needed;
//! - a default bridge of its own (`de2-<hex>`, made here with `ip link`, `10.<m>.0.1/24`) and
//!   `--iptables=false --ip-masq=false --ip-forward=false`: no firewall rules, so it never
//!   touches the host engine's networking. Never `--bridge none`: a `dockerd` started so
//!   deletes the interface `docker0` (the host engine's bridge) at start;
//! - user-defined networks (Clank's project networks) from a private pool `10.<n>.0.0/16`
//!   that the host engine never hands out, and published ports through Docker's userland
//!   proxy (reachable on the host's loopback like the host engine's).
//!
//! Dropping it stops `dockerd` (its containers stop with it) and removes the directory, also
//! when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private engine.
#[derive(Debug)]
pub struct SecondEngine {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its default bridge, removed after it stops.
    bridge: String,
}

impl SecondEngine {
    /// Start one and wait until it answers, or `None` when `dockerd` cannot run here (not
    /// root, no `dockerd`): the test skips, and fails instead in CI (`CI` set). An engine that
    /// starts but never answers panics with its log.
    pub async fn start() -> Option<SecondEngine> {
        if !rustix::process::geteuid().is_root() {
            return crate::runtime::skip_or_fail("a second Docker Engine", "not running as root");
        }
        let Some(dockerd) = which("dockerd") else {
            return crate::runtime::skip_or_fail("a second Docker Engine", "no `dockerd` on PATH");
        };
        // Short path: unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("de2-")
            .tempdir_in("/tmp")
            .expect("create the second engine's directory");
        let p = |name: &str| dir.path().join(name);
        std::fs::write(p("daemon.json"), "{}").expect("write daemon.json");
        let n = 100 + rand::random_range(0..50u32);
        let pool = format!("base=10.{n}.0.0/16,size=24");
        let bridge = format!("de2-{:08x}", rand::random::<u32>());
        let made = ip(&["link", "add", &bridge, "type", "bridge"])
            .and_then(|()| {
                ip(&[
                    "addr",
                    "add",
                    &format!("10.{}.0.1/24", n + 50),
                    "dev",
                    &bridge,
                ])
            })
            .and_then(|()| ip(&["link", "set", &bridge, "up"]));
        if let Err(e) = made {
            let _ = ip(&["link", "del", &bridge]);
            return crate::runtime::skip_or_fail(
                "a second Docker Engine",
                &format!("cannot make its bridge: {e}"),
            );
        }
        let log = std::fs::File::create(p("dockerd.log")).expect("create dockerd.log");
        let child = Command::new(dockerd)
            .arg("--config-file")
            .arg(p("daemon.json"))
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", p("docker.sock").display()))
            .args(["--storage-driver", "vfs", "--bridge", &bridge])
            .args(["--iptables=false", "--ip-masq=false", "--ip-forward=false"])
            .args(["--default-address-pool", &pool])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup dockerd.log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        let mut engine = SecondEngine {
            dir,
            child: Some(child),
            bridge,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if let Some(status) = engine
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the second dockerd exited ({status}):\n{}", engine.log());
            }
            if engine.socket().exists() && engine.answers().await {
                return Some(engine);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the second dockerd did not answer within 60 s:\n{}",
            engine.log()
        );
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// `unix://<socket>`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// What `dockerd` has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    #[cfg(feature = "docker")]
    async fn answers(&self) -> bool {
        let Ok(docker) = bollard::Docker::connect_with_unix(
            &self.socket().display().to_string(),
            5,
            bollard::API_DEFAULT_VERSION,
        ) else {
            return false;
        };
        docker.ping().await.is_ok()
    }

    #[cfg(not(feature = "docker"))]
    async fn answers(&self) -> bool {
        tokio::net::UnixStream::connect(self.socket()).await.is_ok()
    }

    /// A client of this engine (API version negotiated: the engine may be older than bollard).
    #[cfg(feature = "docker")]
    pub async fn client(&self) -> bollard::Docker {
        bollard::Docker::connect_with_unix(
            &self.socket().display().to_string(),
            120,
            bollard::API_DEFAULT_VERSION,
        )
        .expect("connect to the second engine")
        .negotiate_version()
        .await
        .expect("negotiate with the second engine")
    }

    /// The directory everything of this engine lives in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SecondEngine {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            let _ = ip(&["link", "del", &self.bridge]);
            return;
        };
        // SIGTERM: dockerd stops its containers and unmounts what it mounted; SIGKILL if it
        // takes longer than 30 s.
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = ip(&["link", "del", &self.bridge]);
        // The temporary directory removes itself after this (vfs layers are plain files).
    }
}

/// Run `ip args…` (iproute2).
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
