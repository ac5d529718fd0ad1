//! Fixtures for the process-runtime tests: a state directory, specs running Debian's static
//! busybox, a minimal HTTP client, and polling helpers. Every test runs real processes.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_core::config::EnvValue;
use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, ServiceId, WorkspaceId};
use clank_core::runtime::{
    LogLine, LogOptions, Owner, OwnerFilter, PortBinding, RestartPolicy, Runtime, WorkloadId,
    WorkloadSpec, WorkloadState, WorkloadStatus,
};
use clank_process::ProcessRuntime;
use futures_util::StreamExt;

pub const BUSYBOX: &str = "/bin/busybox";

/// A state directory and a runtime on it. On drop, whatever a failed test left running is
/// killed, so one failure does not leave processes behind for the rest of the run.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub runtime: Option<ProcessRuntime>,
}

impl Fixture {
    pub fn new() -> Fixture {
        assert!(
            Path::new(BUSYBOX).is_file(),
            "these tests run {BUSYBOX}: install Debian's busybox-static"
        );
        let dir = tempfile::tempdir().unwrap();
        open_to_workloads(dir.path());
        let runtime = ProcessRuntime::open(dir.path().join("state")).unwrap();
        Fixture {
            dir,
            runtime: Some(runtime),
        }
    }

    pub fn rt(&self) -> &ProcessRuntime {
        self.runtime.as_ref().unwrap()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Drop the runtime (its processes keep running) and open a new one on the same state.
    pub fn reopen(&mut self) {
        self.runtime = None;
        self.runtime = Some(ProcessRuntime::open(self.state_dir()).unwrap());
    }

    /// A directory for test files outside the state directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.runtime = None;
        let Ok(entries) = std::fs::read_dir(self.state_dir().join("workloads")) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("meta.json")) else {
                continue;
            };
            let meta: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(pid) = meta["leader"]["pid"].as_i64() {
                let _ = std::process::Command::new(BUSYBOX)
                    .args(["kill", "-9", "--", &format!("-{pid}")])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

/// Let workloads (which run as their workspace's user when the tests run as root) traverse a
/// test's temporary directory to the workload root and the scratch directories beside it; a
/// temporary directory is 0700. Listing it stays the owner's.
pub fn open_to_workloads(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
}

/// The own directory (working directory, HOME) of an existing workload.
pub async fn work_dir(rt: &ProcessRuntime, name: &str) -> PathBuf {
    let status = rt
        .inspect(&id(name))
        .await
        .unwrap()
        .expect("the workload exists");
    rt.workload_dir(status.owner.workspace, name).unwrap()
}

pub fn owner() -> Owner {
    Owner {
        workspace: WorkspaceId::new(),
        project: ProjectId::new(),
        environment: EnvironmentId::new(),
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        process: "web".into(),
        replica: 0,
    }
}

pub fn for_service(owner: &Owner) -> OwnerFilter {
    OwnerFilter {
        service: Some(owner.service),
        ..OwnerFilter::default()
    }
}

/// A spec running `argv` with no port and no restarts.
pub fn spec(name: &str, argv: &[&str]) -> WorkloadSpec {
    WorkloadSpec {
        name: name.into(),
        owner: owner(),
        image: None,
        command: Some(argv.iter().map(|s| (*s).to_owned()).collect()),
        env: Vec::new(),
        working_dir: None,
        port: None,
        publish: None,
        network: None,
        volumes: Vec::new(),
        cpu_limit: 0.5,
        memory_limit_mb: 512,
        restart: RestartPolicy::Never,
    }
}

/// A shell script run by busybox `sh -c` (a fixed test script, not built from input).
pub fn sh(name: &str, script: &str) -> WorkloadSpec {
    spec(name, &[BUSYBOX, "sh", "-c", script])
}

/// busybox httpd serving `docroot` (which gets a `health` file) on the runtime's `PORT`,
/// printing `listening on <port>` first. `GREETING` is passed as a secret.
pub fn http_spec(name: &str, docroot: &Path) -> WorkloadSpec {
    std::fs::write(docroot.join("health"), "ok\n").unwrap();
    let mut s = sh(
        name,
        "echo \"listening on $PORT\"; echo \"to stderr\" >&2; \
         exec /bin/busybox httpd -f -p \"127.0.0.1:$PORT\" -h \"$DOCROOT\"",
    );
    s.env = vec![
        (
            "DOCROOT".into(),
            EnvValue::Plain(docroot.display().to_string()),
        ),
        (
            "GREETING".into(),
            EnvValue::Secret("hello-secret".to_owned().into()),
        ),
    ];
    s.port = Some(8080);
    s.publish = Some(PortBinding::loopback());
    s
}

pub fn id(name: &str) -> WorkloadId {
    WorkloadId(name.into())
}

/// GET `path` with HTTP/1.0; `(status, body)`.
pub async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:?}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    })
    .await
    .unwrap()
}

/// Poll `check` every 50 ms until it returns `Some`, failing the test after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until the workload's status satisfies `pred`.
pub async fn wait_status(
    rt: &ProcessRuntime,
    name: &str,
    what: &str,
    pred: impl Fn(&WorkloadStatus) -> bool,
) -> WorkloadStatus {
    eventually(what, Duration::from_secs(15), || async {
        rt.inspect(&id(name)).await.unwrap().filter(|s| pred(s))
    })
    .await
}

pub fn is_exited(s: &WorkloadStatus) -> bool {
    matches!(s.state, WorkloadState::Exited { .. })
}

pub fn exit_code(s: &WorkloadStatus) -> Option<i64> {
    match s.state {
        WorkloadState::Exited { code, .. } => code,
        _ => None,
    }
}

/// Wait until the endpoint answers `/health` with 200.
pub async fn wait_healthy(addr: SocketAddr) -> String {
    eventually("GET /health = 200", Duration::from_secs(15), || async {
        match http_get(addr, "/health").await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await
}

/// The whole log history.
pub async fn history(rt: &ProcessRuntime, name: &str) -> Vec<LogLine> {
    rt.logs(&id(name), LogOptions::default())
        .await
        .unwrap()
        .map(|l| l.unwrap())
        .collect()
        .await
}

pub async fn history_text(rt: &ProcessRuntime, name: &str) -> Vec<String> {
    history(rt, name)
        .await
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Whether a pid names a live (non-zombie) process.
pub fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s[s.rfind(')').unwrap() + 1..].split_whitespace().next();
        !matches!(state, Some("Z" | "X"))
    })
}

/// Read a pid a workload wrote into a file, once it is there.
pub async fn read_pid_file(path: &Path) -> i32 {
    eventually("pid file", Duration::from_secs(10), || async {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
    .await
}
