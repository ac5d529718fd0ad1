//! Workspaces kept apart on the native runtime, with real processes: run as root, each
//! workspace's workloads and `exec` commands run as a user of their own that reaches neither
//! the data directory nor another workspace's files; a runtime that cannot switch users
//! serves one workspace and refuses the others, saying why.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clank_core::model::VolumeMount;
use clank_core::runtime::{ExecOutput, ExecRequest, Owner, Runtime, WorkloadSpec};
use clank_core::{ErrorKind, RuntimeFailure};
use clank_process::{DEFAULT_FIRST_UID, Isolation, ProcessOptions, ProcessRuntime};
use support::*;

/// A data directory as the platform lays it out: 0700, the keyring and the store 0600 in it,
/// the runtime's state in `processes/`, the workload root beside it.
struct DataDir {
    fx: Fixture,
    data: PathBuf,
}

impl DataDir {
    fn new(isolation: Isolation) -> DataDir {
        let mut fx = Fixture::new();
        fx.runtime = None;
        let data = fx.dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        for file in ["keyring", "clank.redb"] {
            let path = data.join(file);
            std::fs::write(&path, "k1:c2VjcmV0LWtleS1tYXRlcmlhbA==\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let mut d = DataDir { fx, data };
        d.open(isolation);
        d
    }

    fn options(&self, isolation: Isolation) -> ProcessOptions {
        ProcessOptions {
            workload_root: Some(self.fx.dir.path().join("data-workloads")),
            isolation,
            ..ProcessOptions::default()
        }
    }

    fn open(&mut self, isolation: Isolation) {
        self.fx.runtime = None;
        let state = self.data.join("processes");
        self.fx.runtime = Some(ProcessRuntime::open_with(&state, self.options(isolation)).unwrap());
    }

    fn rt(&self) -> &ProcessRuntime {
        self.fx.rt()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // The fixture kills from `<tmp>/state/workloads`; this state is elsewhere.
        kill_all(&self.data.join("processes"));
    }
}

fn kill_all(state: &Path) {
    let Ok(entries) = std::fs::read_dir(state.join("workloads")) else {
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

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Tests of the per-workspace users need root; anything else skips, saying so.
fn skip_unless_root() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("SKIPPED: switching users needs root; these tests run as uid != 0");
    true
}

fn run(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        tty: false,
        timeout: Duration::from_secs(10),
    }
}

async fn sh_exec(rt: &ProcessRuntime, name: &str, script: &str) -> ExecOutput {
    rt.exec(&id(name), &run(&[BUSYBOX, "sh", "-c", script]))
        .await
        .unwrap()
}

/// A long-running workload of `owner`'s workspace with volume `volume`.
fn sleeper(name: &str, owner: &Owner, volume: &str) -> WorkloadSpec {
    let mut s = spec(name, &[BUSYBOX, "sleep", "300"]);
    s.owner = owner.clone();
    s.volumes = vec![VolumeMount {
        name: volume.into(),
        mount_path: "/data".into(),
        shared: false,
    }];
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workspace_runs_as_its_own_user_with_no_groups_and_its_own_home() {
    if skip_unless_root() {
        return;
    }
    let d = DataDir::new(Isolation::Auto);
    let rt = d.rt();
    assert!(!rt.serves_one_workspace());
    let (a, b) = (owner(), owner());
    rt.start(&sleeper("a-web", &a, "a-data")).await.unwrap();
    rt.start(&sleeper("b-web", &b, "b-data")).await.unwrap();
    let mut a2 = owner();
    a2.workspace = a.workspace;
    rt.start(&sleeper("a-worker", &a2, "a-data")).await.unwrap();

    let uid = |out: ExecOutput| -> u32 {
        assert_eq!(out.exit_code, Some(0), "{out:?}");
        out.stdout.trim().parse().unwrap()
    };
    let ua = uid(sh_exec(rt, "a-web", "/bin/busybox id -u").await);
    let ub = uid(sh_exec(rt, "b-web", "/bin/busybox id -u").await);
    let ua2 = uid(sh_exec(rt, "a-worker", "/bin/busybox id -u").await);
    assert!(
        ua >= DEFAULT_FIRST_UID && ub >= DEFAULT_FIRST_UID,
        "{ua} {ub}"
    );
    assert_ne!(ua, ub, "two workspaces share a user");
    assert_eq!(ua, ua2, "one workspace's workloads run as one user");

    // The process itself (not only exec): its credentials, read by the runtime's user.
    let leader =
        std::fs::read_to_string(rt.record_dir("a-web").unwrap().join("meta.json")).unwrap();
    let pid = serde_json::from_str::<serde_json::Value>(&leader).unwrap()["leader"]["pid"]
        .as_i64()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(field("Uid:"), vec![ua.to_string(); 4], "{status}");
    assert_eq!(field("Gid:"), vec![ua.to_string(); 4], "{status}");
    assert!(
        field("Groups:").is_empty(),
        "supplementary groups kept: {status}"
    );

    // exec: same user, group and no supplementary groups; HOME and working directory are the
    // workload's own directory, outside the data directory.
    let out = sh_exec(rt, "a-web", "/bin/busybox id -G; echo \"$HOME\"; pwd").await;
    assert_eq!(out.exit_code, Some(0), "{out:?}");
    let home = rt.workload_dir(a.workspace, "a-web").unwrap();
    assert_eq!(
        out.stdout,
        format!("{ua}\n{}\n{}\n", home.display(), home.display())
    );
    assert!(!home.starts_with(&d.data));
    let meta = std::fs::metadata(&home).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (ua, 0o700));

    // Users survive a restart of the runtime: the same workspace gets the same user.
    let mut d = d;
    d.open(Isolation::Auto);
    let rt = d.rt();
    assert_eq!(uid(sh_exec(rt, "a-web", "/bin/busybox id -u").await), ua);
    rt.start(&sleeper("b-worker", &b, "b-data")).await.unwrap();
    assert_eq!(uid(sh_exec(rt, "b-worker", "/bin/busybox id -u").await), ub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_reads_neither_the_data_directory_nor_another_workspaces_volume() {
    if skip_unless_root() {
        return;
    }
    let d = DataDir::new(Isolation::Auto);
    let rt = d.rt();
    let (a, b) = (owner(), owner());
    let labels = Owner::labels_for_project(a.workspace, a.project);
    rt.ensure_volume("a-data", &labels).await.unwrap();
    rt.start(&sleeper("a-web", &a, "a-data")).await.unwrap();
    rt.start(&sleeper("b-web", &b, "b-data")).await.unwrap();

    let out = sh_exec(
        rt,
        "a-web",
        "echo private > \"$DATA_DIR/secret\" && cat \"$DATA_DIR/secret\"",
    )
    .await;
    assert_eq!(
        (out.exit_code, out.stdout.as_str()),
        (Some(0), "private\n"),
        "{out:?}"
    );
    let a_volume = rt.volume_dir(a.workspace, "a-data").unwrap();
    assert!(!a_volume.starts_with(&d.data));

    // B cannot read A's volume, list A's workspace directory, nor write into it.
    for script in [
        format!("/bin/busybox cat {}/secret", a_volume.display()),
        format!("/bin/busybox ls {}", a_volume.display()),
        format!(
            "/bin/busybox ls {}",
            a_volume.parent().unwrap().parent().unwrap().display()
        ),
        format!("echo x > {}/planted", a_volume.display()),
    ] {
        let out = sh_exec(rt, "b-web", &script).await;
        assert_ne!(out.exit_code, Some(0), "B ran `{script}`: {out:?}");
        assert!(
            out.stderr.contains("Permission denied"),
            "`{script}`: {out:?}"
        );
    }

    // Nobody's workload reads the keyring, the store, or the runtime's state (other
    // workloads' logs), nor lists the data directory.
    for script in [
        format!("/bin/busybox cat {}/keyring", d.data.display()),
        format!("/bin/busybox cat {}/clank.redb", d.data.display()),
        format!("/bin/busybox ls {}", d.data.display()),
        format!(
            "/bin/busybox cat {}/stdout.log",
            rt.record_dir("b-web").unwrap().display()
        ),
    ] {
        for name in ["a-web", "b-web"] {
            let out = sh_exec(rt, name, &script).await;
            assert_ne!(out.exit_code, Some(0), "{name} ran `{script}`: {out:?}");
            assert!(
                out.stderr.contains("Permission denied"),
                "{name} `{script}`: {out:?}"
            );
        }
    }

    // The data directory and what is in it stayed as the platform left them.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
    assert_eq!(mode(&d.data), 0o700);
    assert_eq!(mode(&d.data.join("keyring")), 0o600);
    assert_eq!(mode(rt.state_dir()), 0o700);
    assert_eq!(mode(rt.workload_root()), 0o711);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_data_of_an_earlier_version_moves_out_of_the_state_dir_to_the_workspaces_user() {
    if skip_unless_root() {
        return;
    }
    let mut d = DataDir::new(Isolation::Auto);
    // As an earlier version left it: in the state directory, written as the runtime's user.
    d.fx.runtime = None;
    let legacy = d.data.join("processes/volumes/old-data");
    std::fs::create_dir_all(legacy.join("nested")).unwrap();
    std::fs::write(legacy.join("nested/file"), "kept\n").unwrap();
    // Another workspace's (its name carries that workspace's scope): never handed to A.
    let other = clank_core::runtime::volume_runtime_name(owner().workspace, "data");
    let others = d.data.join("processes/volumes").join(&other);
    std::fs::create_dir_all(&others).unwrap();
    std::fs::write(others.join("file"), "not A's\n").unwrap();
    d.open(Isolation::Auto);
    let rt = d.rt();
    let a = owner();
    rt.start(&sleeper("a-web", &a, "old-data")).await.unwrap();
    rt.start(&sleeper("a-thief", &a, &other)).await.unwrap();
    let out = sh_exec(rt, "a-thief", "/bin/busybox ls -A \"$DATA_DIR\"").await;
    assert_eq!(
        (out.exit_code, out.stdout.as_str()),
        (Some(0), ""),
        "{out:?}"
    );
    assert!(others.join("file").exists());

    let out = sh_exec(
        rt,
        "a-web",
        "cat \"$DATA_DIR/nested/file\" && echo more >> \"$DATA_DIR/nested/file\"",
    )
    .await;
    assert_eq!(
        (out.exit_code, out.stdout.as_str()),
        (Some(0), "kept\n"),
        "{out:?}"
    );
    assert!(!legacy.exists());
    let moved = rt.volume_dir(a.workspace, "old-data").unwrap();
    assert_eq!(
        std::fs::read_to_string(moved.join("nested/file")).unwrap(),
        "kept\nmore\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_user_switching_one_workspace_is_served_and_others_are_refused_saying_why() {
    let mut d = DataDir::new(Isolation::SingleWorkspace);
    let rt = d.rt();
    assert!(rt.serves_one_workspace());
    let (a, b) = (owner(), owner());
    // A check (prepare) claims nothing; the first start does.
    rt.prepare(&sleeper("b-web", &b, "b-data")).await.unwrap();
    rt.start(&sleeper("a-web", &a, "a-data")).await.unwrap();
    let out = sh_exec(rt, "a-web", "/bin/busybox id -u").await;
    assert_eq!(
        out.stdout.trim().parse::<u32>().unwrap(),
        std::fs::metadata("/proc/self").unwrap().uid(),
        "serving one workspace, workloads run as the runtime's own user"
    );

    let refused = |err: clank_core::Error| {
        assert_eq!(
            err.runtime_failure(),
            Some(RuntimeFailure::Unsupported),
            "{err}"
        );
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        let message = err.to_string();
        for part in [
            "runs as an unprivileged user",
            "serves one workspace",
            &a.workspace.to_string(),
            "run the daemon as root to isolate workspaces, or use Docker",
        ] {
            assert!(message.contains(part), "`{part}` missing from: {message}");
        }
    };
    refused(rt.start(&sleeper("b-web", &b, "b-data")).await.unwrap_err());
    refused(
        rt.prepare(&sleeper("b-web", &b, "b-data"))
            .await
            .unwrap_err(),
    );
    refused(
        rt.ensure_volume("b-data", &Owner::labels_for_project(b.workspace, b.project))
            .await
            .unwrap_err(),
    );
    assert_eq!(rt.inspect(&id("b-web")).await.unwrap(), None);
    assert!(!rt.volume_dir(b.workspace, "b-data").unwrap().exists());

    // The workspace served is remembered across restarts.
    d.open(Isolation::SingleWorkspace);
    let rt = d.rt();
    refused(rt.start(&sleeper("b-web", &b, "b-data")).await.unwrap_err());
    let mut a2 = owner();
    a2.workspace = a.workspace;
    rt.start(&sleeper("a-worker", &a2, "a-data")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_directory_the_workspaces_user_cannot_reach_fails_the_start_saying_so() {
    if skip_unless_root() {
        return;
    }
    let d = DataDir::new(Isolation::Auto);
    let rt = d.rt();
    let mut s = spec("in-data", &[BUSYBOX, "true"]);
    s.working_dir = Some(d.data.display().to_string());
    let err = rt.start(&s).await.unwrap_err();
    assert_eq!(
        err.runtime_failure(),
        Some(RuntimeFailure::StartFailed),
        "{err}"
    );
    assert!(err.to_string().contains("its workspace's user"), "{err}");
    assert_eq!(rt.inspect(&id("in-data")).await.unwrap(), None);
}
