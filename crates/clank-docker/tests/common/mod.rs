//! What the Docker integration tests share: connecting (failing in CI, skipping loudly
//! elsewhere when the engine is missing), the test app's image, and how the Docker runtime
//! runs the test app.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use clank_core::Result;
use clank_core::runtime::{Runtime, WorkloadSpec};
use clank_docker::DockerRuntime;
use clank_testkit::runtime::{Fixture, TestApp, skip_or_fail};
use clank_testkit::testapp;

/// Where the test app's volume is mounted in its container.
pub(crate) const DATA_MOUNT: &str = TestApp::DATA_MOUNT;

/// A connected runtime with the test app's image built, or `None` to skip (never in CI).
pub(crate) async fn docker() -> Option<DockerRuntime> {
    let runtime = match DockerRuntime::connect().await {
        Ok(r) => r,
        Err(e) => return skip_or_fail("the Docker engine", &e.to_string()),
    };
    if !testapp::busybox_available() {
        return skip_or_fail(
            "Debian's busybox-static (/bin/busybox)",
            "it is needed to build the test app's image",
        );
    }
    if let Err(e) = testapp::docker::ensure_testapp_image(runtime.client()).await {
        panic!("building the test app image failed: {e}");
    }
    Some(runtime)
}

/// The Docker runtime under the contract suite.
#[derive(Debug)]
pub(crate) struct DockerFixture;

#[async_trait::async_trait]
impl Fixture for DockerFixture {
    async fn connect(&self) -> Result<Box<dyn Runtime>> {
        Ok(Box::new(DockerRuntime::connect().await?))
    }

    fn app_spec(&self, app: &TestApp) -> WorkloadSpec {
        app_spec(app)
    }
}

/// The test app as a container (see [`TestApp::container_spec`]).
pub(crate) fn app_spec(app: &TestApp) -> WorkloadSpec {
    app.container_spec()
}

/// The fixture, once the engine is known to be there and the image built.
pub(crate) async fn docker_fixture() -> Option<DockerFixture> {
    docker().await.map(|_| DockerFixture)
}
