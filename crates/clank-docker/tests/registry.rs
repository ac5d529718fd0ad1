//! Pulls from a real private registry: Debian's `docker-registry` with htpasswd authentication,
//! over TLS the engine verifies where the test may add a `certs.d` entry, else plain HTTP on
//! loopback (`clank_testkit::registry`). Each test pushes its own image (the
//! test app plus a random layer), removes it from the engine, and pulls it back through
//! `Runtime::pull`, checking what a user would see: progress lines, and errors that name the
//! image, the registry and why.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clank_core::RuntimeFailure;
use clank_core::image::ImageRef;
use clank_core::runtime::{RegistryAuth, Runtime};
use clank_core::secret::SecretString;
use clank_docker::DockerRuntime;
use clank_testkit::registry::{PushedImage, Registry};

/// Size of the random layer each test image carries: big enough for download progress.
const LAYER: usize = 3 << 20;

/// A registry holding a freshly pushed image that the engine does not have.
async fn world(test: &str) -> Option<(DockerRuntime, Registry, ImageRef, PushedImage)> {
    let rt = common::docker().await?;
    let registry = Registry::start(rt.client()).await?;
    let pushed = registry
        .push_fresh_image(rt.client(), test, LAYER)
        .await
        .unwrap_or_else(|e| panic!("pushing the test image: {e}"));
    let reference = &pushed.reference;
    assert!(
        rt.client().inspect_image(reference).await.is_err(),
        "{reference} must be gone from the engine before the pull"
    );
    let image = reference.parse().unwrap_or_else(|e| panic!("{e}"));
    Some((rt, registry, image, pushed))
}

/// Pull `image`, collecting the progress lines.
async fn pull(
    rt: &DockerRuntime,
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    within: Duration,
) -> (clank_core::Result<Option<String>>, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let progress = move |line: String| sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    let result = rt.pull(image, auth, within, &progress).await;
    let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    (result, lines)
}

/// Pull `image`, which must fail (`why`): the error's failure kind and its text, which is
/// printed as what a user sees.
async fn pull_fails(
    rt: &DockerRuntime,
    image: &ImageRef,
    auth: Option<&RegistryAuth>,
    within: Duration,
    why: &str,
) -> (Option<RuntimeFailure>, String) {
    let (result, _) = pull(rt, image, auth, within).await;
    let err = result.expect_err(why);
    eprintln!("what a user sees: {err}");
    (err.runtime_failure(), err.to_string())
}

fn wrong_password(registry: &Registry) -> RegistryAuth {
    RegistryAuth {
        username: registry.username.clone(),
        password: SecretString::new("not-the-password"),
    }
}

#[tokio::test]
async fn pull_with_credentials_downloads_reports_progress_and_returns_the_digest() {
    let Some((rt, registry, image, _guard)) = world("creds").await else {
        return;
    };
    let (result, lines) = pull(&rt, &image, Some(&registry.auth()), Duration::from_secs(60)).await;
    let digest = result
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()))
        .expect("a pulled image has a registry digest");
    eprintln!("progress:\n{}", lines.join("\n"));
    assert!(digest.starts_with("sha256:"), "{digest}");
    rt.client()
        .inspect_image(&image.to_string())
        .await
        .unwrap_or_else(|e| panic!("{image} is on the engine after the pull: {e}"));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Downloading") && l.contains("MB")),
        "download progress with sizes: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("Pull complete")),
        "{lines:#?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains(&digest)),
        "the last line names the digest: {lines:#?}"
    );
    // Throttled: a 3 MB layer is a handful of lines, not hundreds of byte counts.
    assert!(lines.len() < 40, "{} lines: {lines:#?}", lines.len());
    assert!(
        lines.iter().all(|l| !l.contains(registry.password())),
        "{lines:#?}"
    );
    // On the host now: a second pull is a no-op with the same digest.
    let (again, more) = pull(&rt, &image, None, Duration::from_secs(10)).await;
    assert_eq!(again.unwrap_or_else(|e| panic!("{e}")), Some(digest));
    assert!(more.is_empty(), "{more:#?}");
}

#[tokio::test]
async fn pull_without_credentials_is_an_auth_error_naming_image_and_registry() {
    let Some((rt, registry, image, _guard)) = world("nocreds").await else {
        return;
    };
    let (failure, text) = pull_fails(
        &rt,
        &image,
        None,
        Duration::from_secs(60),
        "the registry requires authentication",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::ImageMissing));
    assert!(text.contains("requires authentication"), "{text}");
    assert!(text.contains(&format!("`{image}`")), "{text}");
    assert!(
        text.contains(&format!("registry `{}`", registry.host)),
        "{text}"
    );
    assert!(text.contains("credentials_secret"), "{text}");
}

#[tokio::test]
async fn pull_with_a_wrong_password_is_an_auth_error_naming_the_user_and_registry() {
    let Some((rt, registry, image, _guard)) = world("wrongpw").await else {
        return;
    };
    let (failure, text) = pull_fails(
        &rt,
        &image,
        Some(&wrong_password(&registry)),
        Duration::from_secs(60),
        "a wrong password is refused",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::ImageMissing));
    assert!(
        text.contains(&format!(
            "registry `{}` refused the credentials of user `{}`",
            registry.host, registry.username
        )),
        "{text}"
    );
    assert!(text.contains(&format!("`{image}`")), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test]
async fn pull_of_a_missing_tag_is_not_found_naming_the_tag() {
    let Some((rt, registry, image, _guard)) = world("notag").await else {
        return;
    };
    let missing: ImageRef = format!("{}/{}:missing", registry.host, image.repository())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let (failure, text) = pull_fails(
        &rt,
        &missing,
        Some(&registry.auth()),
        Duration::from_secs(60),
        "the tag was never pushed",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::ImageMissing));
    assert!(text.contains("was not found on registry"), "{text}");
    assert!(text.contains("tag `missing`"), "{text}");
    assert!(text.contains(&format!("`{missing}`")), "{text}");
}

#[tokio::test]
async fn pull_from_a_stopped_registry_is_a_network_error() {
    let Some((rt, mut registry, image, _guard)) = world("down").await else {
        return;
    };
    registry.stop().await;
    let (failure, text) = pull_fails(
        &rt,
        &image,
        Some(&registry.auth()),
        Duration::from_secs(60),
        "nothing listens on the registry's port",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::ImageMissing));
    assert!(
        text.contains(&format!("cannot reach registry `{}`", registry.host)),
        "{text}"
    );
    assert!(text.contains("network error"), "{text}");
}

#[tokio::test]
async fn pull_that_outlasts_its_deadline_is_a_timeout_naming_image_and_registry() {
    let Some((rt, registry, image, _guard)) = world("slow").await else {
        return;
    };
    let (failure, text) = pull_fails(
        &rt,
        &image,
        Some(&registry.auth()),
        Duration::from_millis(1),
        "no pull finishes in a millisecond",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::Timeout));
    assert!(text.contains("did not finish within"), "{text}");
    assert!(text.contains("deadline"), "{text}");
    assert!(text.contains(&format!("`{image}`")), "{text}");
    assert!(
        text.contains(&format!("registry `{}`", registry.host)),
        "{text}"
    );
    // The engine abandons the pull when the request is dropped; let it settle before the
    // guard removes whatever it got.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn pull_from_a_registry_with_an_untrusted_certificate_is_a_network_error() {
    let Some((rt, mut registry, image, _guard)) = world("untrusted").await else {
        return;
    };
    if !registry.is_tls() {
        // Plain HTTP has no certificate to distrust; in CI this must not pass by skipping.
        return clank_testkit::runtime::skip_or_fail(
            "a trusted-TLS test registry",
            "the registry runs on plain HTTP here (trusting its CA needs write access to \
             /etc/docker/certs.d and the engine's docker0 bridge)",
        )
        .unwrap_or(());
    }
    registry.distrust();
    let (failure, text) = pull_fails(
        &rt,
        &image,
        Some(&registry.auth()),
        Duration::from_secs(60),
        "the engine no longer trusts the registry's CA",
    )
    .await;
    assert_eq!(failure, Some(RuntimeFailure::ImageMissing));
    assert!(
        text.contains(&format!("cannot reach registry `{}`", registry.host)),
        "{text}"
    );
    assert!(text.contains("TLS trust"), "{text}");
}
