//! An image service from a private registry (Debian's `docker-registry` with htpasswd auth,
//! `clank_testkit::registry`), its credentials in a config secret set at the project scope:
//! the engine pulls it before starting anything, writes the pull's progress to the deploy log
//! (never the password), records the digest, and fails with a reason naming the secret and the
//! registry when the credentials are missing or wrong.

mod common;

use std::time::Duration;

use clank_core::config::{ConfigChange, Scope};
use clank_core::deploy::DeploymentStatus;
use clank_core::model::ServiceSource;
use clank_testkit::registry::Registry;
use common::Platform;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_image_deploys_with_credentials_from_a_config_secret() {
    let Some(docker) = common::docker().await else {
        return;
    };
    let Some(registry) = Registry::start(docker.client()).await else {
        return;
    };
    let pushed = registry
        .push_fresh_image(docker.client(), "engine", 3 << 20)
        .await
        .unwrap_or_else(|e| panic!("pushing the test image: {e}"));
    let reference = pushed.reference.clone();
    let source = ServiceSource::DockerImage {
        image: reference.parse().unwrap(),
        credentials_secret: Some("REGISTRY_AUTH".into()),
    };
    let Some(p) = Platform::with_source(source, None, |s| {
        s.settings.deploy_timeout_s = 60;
        s.validate().unwrap();
    })
    .await
    else {
        return;
    };

    // Credentials at the project scope reach the service through the cascade.
    let project = Scope::Project(p.service().await.project_id);

    // Not set: nothing is pulled, and the reason names the secret.
    let (_, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(
        reason.contains("credentials_secret `REGISTRY_AUTH` is not set"),
        "{reason}"
    );

    // A wrong password: the registry refuses, and the reason says which registry and secret.
    p.set_config_at(
        project,
        ConfigChange::set_secret(
            "REGISTRY_AUTH",
            format!("{}:wrong-password", registry.username),
        ),
    )
    .await;
    let (_, reason) = p.deploy_and_fail(Duration::from_secs(60)).await;
    eprintln!("what a user sees: {reason}");
    assert!(
        reason.contains(&format!(
            "registry `{}` refused the credentials",
            registry.host
        )),
        "{reason}"
    );
    assert!(reason.contains("`REGISTRY_AUTH`"), "{reason}");
    assert!(!reason.contains("wrong-password"), "{reason}");

    // The right ones, at the project scope: pulled, started, ACTIVE.
    p.set_config_at(
        project,
        ConfigChange::set_secret("REGISTRY_AUTH", registry.secret_value()),
    )
    .await;
    let d = p.deploy().await;
    let active = p
        .wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(90))
        .await;
    let log = p.log_of(d.id).await;
    eprintln!("deploy log:\n{}", log.join("\n"));
    let joined = log.join("\n");
    assert!(
        joined.contains(&format!("pulling image `{reference}`")),
        "{joined}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("layer ") && l.contains("Pull complete")),
        "{joined}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("Downloading") && l.contains("MB")),
        "{joined}"
    );
    assert!(!joined.contains(registry.password()), "{joined}");
    let digest = active
        .state
        .image_digest
        .expect("the pulled digest is recorded on the deployment");
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(
        joined.contains(&format!("pinned at digest {digest}")),
        "{joined}"
    );
    // The pull came before the start.
    let pulled = log.iter().position(|l| l.contains("Pull complete"));
    let started = log.iter().position(|l| l.starts_with("started "));
    assert!(pulled < started, "{joined}");
    let addr = p.web_endpoint(d.id).await;
    assert!(addr.port() > 0);
}
