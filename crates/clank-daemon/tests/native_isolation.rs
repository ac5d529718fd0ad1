//! The attack this closes, on the real daemon with the native runtime: a Developer's `exec`
//! ran as the daemon's user with the data directory in reach, and read the keyring and
//! `clank.redb`. Run as root, the daemon now runs a workspace's workloads and their `exec`
//! commands as that workspace's own unprivileged user, outside the 0700 data directory.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use clank_daemon::ApiLimits;
use clank_testkit::testapp;
use common::{Daemon, ENV};
use reqwest::Method;
use serde_json::{Value, json};

/// The first uid the native runtime gives a workspace (`clank_process::DEFAULT_FIRST_UID`).
const FIRST_WORKSPACE_UID: u64 = 2_000_000_000;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

async fn exec(d: &Daemon, token: &str, command: &[&str]) -> Value {
    d.ok(
        token,
        Method::POST,
        &format!("{ENV}/services/web/exec"),
        Some(json!({ "command": command })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developers_exec_on_the_native_runtime_reads_neither_the_keyring_nor_the_store() {
    if !testapp::busybox_available() {
        eprintln!(
            "SKIPPED: {} missing (Debian's busybox-static)",
            testapp::BUSYBOX
        );
        return;
    }
    if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
        // Without root the daemon cannot switch users: it serves one workspace (whose
        // workloads run as the daemon's user); clank-process's tests cover that mode.
        eprintln!("SKIPPED: the daemon isolates workspaces only when run as root");
        return;
    }
    let d = Daemon::start(ApiLimits::default()).await;
    // The test's temporary directory is 0700; the workload root beside the data directory must
    // be reachable by workloads, as `/var/lib` is for `/var/lib/clank-workloads`.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let owner = d.init().await;
    let (_, developer) = d.member(&owner, "dev", "developer").await;
    d.active_testapp(&owner)
        .await
        .expect("busybox was checked above");

    let data = d.dir.path().join("data");
    let keyring = data.join("keyring");
    let store = data.join("clank.redb");
    assert!(
        keyring.is_file() && store.is_file(),
        "the daemon's files are where expected"
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!((mode(&keyring), mode(&store)), (0o600, 0o600));

    // The attack: read the keyring and the store through exec. Both are refused by the kernel.
    for target in [&keyring, &store] {
        let target = target.display().to_string();
        let out = exec(&d, &developer, &[testapp::BUSYBOX, "cat", &target]).await;
        assert_ne!(
            out["exit_code"],
            json!(0),
            "the developer read {target}: {out}"
        );
        assert!(
            out["stderr"]
                .as_str()
                .unwrap()
                .contains("Permission denied"),
            "{target}: {out}"
        );
        assert!(
            !out["stdout"].as_str().unwrap().contains("k1:"),
            "key material in the output: {out}"
        );
    }
    let data_path = data.display().to_string();
    let out = exec(&d, &developer, &[testapp::BUSYBOX, "ls", "-a", &data_path]).await;
    assert_ne!(
        out["exit_code"],
        json!(0),
        "the developer listed the data dir: {out}"
    );

    // Whom exec runs as: the workspace's own user (no root, no supplementary groups), with
    // its own directory outside the data directory as HOME.
    let out = exec(
        &d,
        &developer,
        &[
            testapp::BUSYBOX,
            "sh",
            "-c",
            "/bin/busybox id -u; /bin/busybox id -G; echo $HOME",
        ],
    )
    .await;
    assert_eq!(out["exit_code"], json!(0), "{out}");
    let lines: Vec<&str> = out["stdout"].as_str().unwrap().lines().collect();
    let uid: u64 = lines[0].parse().unwrap();
    assert!(uid >= FIRST_WORKSPACE_UID, "exec ran as uid {uid}: {out}");
    assert_eq!(lines[1], lines[0], "supplementary groups: {out}");
    let home = Path::new(lines[2]);
    assert!(
        home.is_absolute() && !home.starts_with(&data),
        "HOME {}",
        home.display()
    );

    // The workload itself (not just exec) runs as that user: it wrote its health file.
    let health = d.dir.path().join("app/health.ok");
    assert_eq!(
        u64::from(std::fs::metadata(&health).unwrap().uid()),
        uid,
        "the app's files are not its workspace user's"
    );

    d.stop().await;
}
