//! The shared runtime contract (`clank_testkit::runtime`) against real native processes: the
//! busybox test app runs as a local process from its own directory.

use std::path::PathBuf;

use clank_core::Result;
use clank_core::model::VolumeMount;
use clank_core::runtime::{PortBinding, RestartPolicy, Runtime, WorkloadSpec};
use clank_process::ProcessRuntime;
use clank_testkit::runtime::{Fixture, TestApp, skip_or_fail};
use clank_testkit::testapp;

/// One state directory for the fixture's whole life (each property gets its own fixture), so
/// the adoption property's second runtime finds what the first started.
#[derive(Debug)]
struct ProcessFixture {
    dir: tempfile::TempDir,
}

impl ProcessFixture {
    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

#[async_trait::async_trait]
impl Fixture for ProcessFixture {
    async fn connect(&self) -> Result<Box<dyn Runtime>> {
        Ok(Box::new(ProcessRuntime::open(self.state_dir())?))
    }

    /// The app runs from a directory of its own (it keeps its health state there), written
    /// once per workload name: rewriting a script a running shell reads would break it. The
    /// runtime passes the volume's directory in `DATA_DIR` itself, since a process cannot
    /// mount it at `mount_path`.
    fn app_spec(&self, app: &TestApp) -> WorkloadSpec {
        let app_dir = self.dir.path().join("apps").join(&app.name);
        if !app_dir.join("start.sh").exists() {
            testapp::write_testapp(&app_dir)
                .unwrap_or_else(|e| panic!("writing the test app to {}: {e}", app_dir.display()));
        }
        WorkloadSpec {
            name: app.name.clone(),
            owner: app.owner.clone(),
            image: None,
            command: Some(app.command.clone().unwrap_or_else(testapp::command)),
            env: app.env.clone(),
            working_dir: Some(app_dir.display().to_string()),
            port: Some(testapp::DEFAULT_PORT),
            publish: Some(PortBinding::loopback()),
            network: app.network.clone(),
            volumes: app
                .data_volume
                .iter()
                .map(|name| VolumeMount {
                    name: name.clone(),
                    mount_path: "/data".to_owned(),
                    shared: false,
                })
                .collect(),
            cpu_limit: 1.0,
            memory_limit_mb: 64,
            restart: RestartPolicy::Never,
        }
    }
}

async fn process_fixture() -> Option<ProcessFixture> {
    if !testapp::busybox_available() {
        return skip_or_fail(
            "Debian's busybox-static (/bin/busybox)",
            "the test app runs on it",
        );
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot make a state dir: {e}"));
    // Workloads run as their workspace's user when the tests run as root: let them traverse
    // it to the workload root and their app directories (listing it stays the owner's).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .unwrap_or_else(|e| panic!("cannot open the state dir's parent to workloads: {e}"));
    Some(ProcessFixture { dir })
}

clank_testkit::runtime_contract_tests!(process, process_fixture);
