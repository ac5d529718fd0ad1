//! `DockerImageBuilder` against real git and the real Docker engine: repositories made by the
//! test (`file://`), a repository Dockerfile, pinned commits, detected Node.js and Python apps
//! built on base images made from the host's interpreters, failing and refused builds, and the
//! time of a no-change rebuild (cache hit) beside the first build.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable; with `CI` set they fail.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clank_core::builder::{BuildOutput, BuildProgress, BuildRequest, ImageBuilder};
use clank_core::id::{BuildId, ServiceId};
use clank_core::secret::SecretString;
use clank_docker::{DockerImageBuilder, DockerRuntime};
use clank_testkit::gitrepo::TestRepo;
use clank_testkit::interpreters;
use clank_testkit::runtime::skip_or_fail;
use clank_testkit::testapp;

const DOCKERFILE: &str =
    "FROM clank-testapp:latest\nCOPY hello.txt /app/hello.txt\nRUN echo built-step\n";

fn request(url: &str, tag: &str) -> BuildRequest {
    BuildRequest {
        build: BuildId::new(),
        service: ServiceId::new(),
        number: 1,
        repo_url: url.to_owned(),
        git_ref: "main".to_owned(),
        commit: None,
        dockerfile_path: None,
        build_context: None,
        port: Some(8080),
        tag: tag.parse().unwrap(),
        build_args: BTreeMap::new(),
        publish_dir: None,
        spa_fallback: None,
        credentials: None,
        timeout: Duration::from_secs(120),
        memory_limit_mb: 512,
    }
}

fn unique_tag(name: &str) -> String {
    let id = BuildId::new().to_string();
    format!("clank-build-test/{name}:v{}", &id[id.len() - 8..])
}

/// Build, collecting the log. A build that succeeds must have reported the commit it built,
/// once, as it checked it out.
async fn build(
    builder: &DockerImageBuilder,
    req: &BuildRequest,
) -> (clank_core::Result<BuildOutput>, Vec<String>) {
    let progress = Arc::new(Mutex::new(Vec::new()));
    let sink = progress.clone();
    let out = builder
        .build(req, Box::new(move |p| sink.lock().unwrap().push(p)))
        .await;
    let mut lines = Vec::new();
    let mut checked_out = Vec::new();
    for p in progress.lock().unwrap().drain(..) {
        match p {
            BuildProgress::Line(line) => lines.push(line),
            BuildProgress::CheckedOut { commit, .. } => checked_out.push(commit),
        }
    }
    if let Ok(o) = &out {
        assert_eq!(
            checked_out,
            std::slice::from_ref(&o.commit_sha),
            "{lines:#?}"
        );
    }
    (out, lines)
}

async fn remove_image(rt: &DockerRuntime, tag: &str) {
    let _ = rt
        .client()
        .remove_image(
            tag,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

async fn setup() -> Option<(DockerRuntime, DockerImageBuilder)> {
    let rt = common::docker().await?;
    let builder = DockerImageBuilder::new(rt.client().clone()).allow_local_repositories(true);
    Some((rt, builder))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_dockerfile_builds_with_commit_and_log_and_rebuild_hits_the_cache() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "hi\n")]);
    let tag = unique_tag("dockerfile");
    let req = request(&repo.url(), &tag);
    let t0 = Instant::now();
    let (out, log) = build(&builder, &req).await;
    let first = t0.elapsed();
    let out = out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(out.commit_sha, repo.head());
    assert_eq!(out.dockerfile, DOCKERFILE);
    assert_eq!(out.framework, None);
    assert_eq!(out.image.to_string(), tag);
    assert!(log.iter().any(|l| l.contains("built-step")), "{log:?}");
    assert!(log.iter().any(|l| l.starts_with("Step 3/")), "{log:?}");
    let image = rt.client().inspect_image(&tag).await.unwrap();
    let labels = image.config.unwrap().labels.unwrap();
    assert_eq!(labels["clank.commit"], repo.head());

    // The same commit again, from a fresh clone: every step comes from the cache.
    let tag2 = unique_tag("dockerfile");
    let t1 = Instant::now();
    let (out2, log2) = build(
        &builder,
        &BuildRequest {
            tag: tag2.parse().unwrap(),
            ..req.clone()
        },
    )
    .await;
    let second = t1.elapsed();
    out2.unwrap();
    assert!(
        log2.iter().all(|l| !l.contains("Running in")),
        "the rebuild uses the cache: {log2:?}"
    );
    println!(
        "BUILD TIMING first build {:.2} s, no-change rebuild (cache hit) {:.2} s",
        first.as_secs_f64(),
        second.as_secs_f64()
    );
    remove_image(&rt, &tag).await;
    remove_image(&rt, &tag2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_commit_is_built_not_the_branch_head() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "one\n")]);
    let first = repo.head();
    repo.commit(&[("hello.txt", "two\n")], "second");
    let tag = unique_tag("pinned");
    let mut req = request(&repo.url(), &tag);
    req.commit = Some(first.clone());
    let (out, log) = build(&builder, &req).await;
    let out = out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(out.commit_sha, first);
    assert_ne!(first, repo.head());
    // An abbreviated id works too (fetched with the branch history).
    req.commit = Some(first[..10].to_owned());
    let (out, log) = build(&builder, &req).await;
    let out = out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(out.commit_sha, first);
    // A commit that is not there is a precise failure.
    req.commit = Some("0123456789abcdef0123456789abcdef01234567".into());
    let err = build(&builder, &req).await.0.unwrap_err().to_string();
    assert!(err.contains("0123456789abcdef"), "{err}");
    remove_image(&rt, &tag).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_dockerfile_names_the_step_and_the_error() {
    let Some((_rt, builder)) = setup().await else {
        return;
    };
    let repo = TestRepo::new(&[(
        "Dockerfile",
        "FROM clank-testapp:latest\nRUN echo before\nRUN exit 3\n",
    )]);
    let (out, _log) = build(&builder, &request(&repo.url(), &unique_tag("fail"))).await;
    let err = out.unwrap_err().to_string();
    assert!(
        err.contains("Step 3/") && err.contains(": RUN exit 3"),
        "{err}"
    );
    assert!(err.contains("non-zero code: 3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_step_over_the_memory_cap_is_killed_and_says_so() {
    let Some((_rt, builder)) = setup().await else {
        return;
    };
    // A shell variable of 256 MB in a build capped at 64 MB.
    let repo = TestRepo::new(&[(
        "Dockerfile",
        "FROM clank-testapp:latest\n\
         RUN x=$(/bin/busybox head -c 268435456 /dev/zero | /bin/busybox tr '\\0' a); echo ${#x}\n",
    )]);
    let mut req = request(&repo.url(), &unique_tag("oom"));
    req.memory_limit_mb = 64;
    let (out, log) = build(&builder, &req).await;
    let err = out.expect_err(&log.join("\n")).to_string();
    assert!(err.contains("memory limit of 64 MiB"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_like_refs_unreachable_repos_missing_branches_and_escaping_symlinks_fail_precisely()
{
    let Some((_rt, builder)) = setup().await else {
        return;
    };
    let marker = std::env::temp_dir().join(format!("clank-upload-pack-{}", BuildId::new()));
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "hi\n")]);
    let mut req = request(&repo.url(), &unique_tag("refused"));
    req.git_ref = format!("--upload-pack=touch {}", marker.display());
    let err = build(&builder, &req).await.0.unwrap_err();
    assert_eq!(err.kind(), clank_core::ErrorKind::Invalid, "{err}");
    assert!(
        err.to_string().contains("leading_hyphen") || err.to_string().contains("`-`"),
        "{err}"
    );
    assert!(!marker.exists(), "nothing ran");

    let missing = format!("file://{}/nope", repo.path().display());
    let err = build(&builder, &request(&missing, &unique_tag("x")))
        .await
        .0
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("could not clone") && text.contains("nope"),
        "{text}"
    );
    assert!(
        text.contains("does not appear to be a git repository"),
        "{text}"
    );

    let mut req = request(&repo.url(), &unique_tag("x"));
    req.git_ref = "release".into();
    let text = build(&builder, &req).await.0.unwrap_err().to_string();
    assert!(text.contains("branch `release` does not exist"), "{text}");

    std::os::unix::fs::symlink("/etc/passwd", repo.path().join("passwd")).unwrap();
    repo.commit(&[], "add a link");
    let text = build(&builder, &request(&repo.url(), &unique_tag("x")))
        .await
        .0
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("symlink `passwd` points outside the build context"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_repositories_are_refused_unless_allowed() {
    let Some((rt, _)) = setup().await else {
        return;
    };
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "hi\n")]);
    let builder = DockerImageBuilder::new(rt.client().clone());
    let err = build(&builder, &request(&repo.url(), &unique_tag("local")))
        .await
        .0
        .unwrap_err();
    assert_eq!(err.kind(), clank_core::ErrorKind::Invalid);
    assert!(err.to_string().contains("build server's own disk"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_beyond_the_concurrency_limit_wait_for_a_slot() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    let builder = builder.with_max_concurrent(1);
    let repo = TestRepo::new(&[
        (
            "Dockerfile",
            "FROM clank-testapp:latest\nCOPY hello.txt /app/\nRUN sleep 1\n",
        ),
        ("hello.txt", "hi\n"),
    ]);
    let (a, b) = (unique_tag("slot"), unique_tag("slot"));
    let (ra, rb) = (request(&repo.url(), &a), request(&repo.url(), &b));
    let ((oa, la), (ob, lb)) = tokio::join!(build(&builder, &ra), build(&builder, &rb));
    oa.unwrap();
    ob.unwrap();
    let waited = |log: &[String]| log.iter().any(|l| l.contains("waiting for a build slot"));
    assert!(
        waited(&la) ^ waited(&lb),
        "exactly one build waited: {la:?} {lb:?}"
    );
    remove_image(&rt, &a).await;
    remove_image(&rt, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_log() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "hi\n")]);
    let tag = unique_tag("creds");
    let mut req = request(&repo.url(), &tag);
    req.credentials = Some(SecretString::new("tok-very-secret"));
    let (out, log) = build(&builder, &req).await;
    out.unwrap();
    assert!(log.iter().all(|l| !l.contains("tok-very-secret")));
    assert!(!format!("{req:?}").contains("tok-very-secret"));
    remove_image(&rt, &tag).await;
}

async fn build_detected(
    rt: &DockerRuntime,
    builder: &DockerImageBuilder,
    files: &[(&str, &str)],
    name: &str,
) -> BuildOutput {
    let repo = TestRepo::new(files);
    let tag = unique_tag(name);
    let (out, log) = build(builder, &request(&repo.url(), &tag)).await;
    let out = out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    remove_image(rt, &tag).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_app_without_dockerfile_is_detected_and_built() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    match interpreters::ensure_node_image(rt.client()).await {
        Ok(true) => {}
        Ok(false) => {
            skip_or_fail::<()>("the host's Node.js (/usr/bin/node + npm)", "no base image");
            return;
        }
        Err(e) => panic!("building the Node base image failed: {e}"),
    }
    let builder = builder
        .with_base_image("NODE_IMAGE", interpreters::NODE_IMAGE)
        .unwrap();
    let out = build_detected(&rt, &builder, &clank_testkit_node_app(), "node").await;
    assert_eq!(out.framework.as_deref(), Some("node"));
    assert!(out.dockerfile.contains("RUN npm ci"), "{}", out.dockerfile);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_app_without_dockerfile_is_detected_and_built() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    match interpreters::ensure_python_image(rt.client()).await {
        Ok(true) => {}
        Ok(false) => {
            skip_or_fail::<()>("the host's Python (/usr/bin/python3.11)", "no base image");
            return;
        }
        Err(e) => panic!("building the Python base image failed: {e}"),
    }
    let builder = builder
        .with_base_image("PYTHON_IMAGE", interpreters::PYTHON_IMAGE)
        .unwrap();
    let out = build_detected(
        &rt,
        &builder,
        &[
            ("requirements.txt", "# nothing needed\n"),
            ("app.py", "print('hi')\n"),
        ],
        "python",
    )
    .await;
    assert_eq!(out.framework.as_deref(), Some("python"));
}

fn clank_testkit_node_app() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "package.json",
            r#"{"name":"app","version":"1.0.0","scripts":{"build":"node build.js","start":"node server.js"}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"app","version":"1.0.0"}}}"#,
        ),
        (
            "build.js",
            "require('fs').writeFileSync('built.txt', 'ok');\n",
        ),
        ("server.js", "console.log('hi');\n"),
    ]
}

#[test]
fn testapp_image_name_is_what_the_dockerfiles_use() {
    assert!(DOCKERFILE.contains(testapp::IMAGE));
}

/// A one-request HTTP server that answers 404 and hands back the request head it received.
async fn capture_one_request() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_the_server_as_a_header_and_nothing_else_shows_them() {
    use base64::Engine as _;
    // No engine needed: the clone fails before any build.
    let docker = DockerRuntime::unconnected(clank_docker::DEFAULT_SOCKET).unwrap();
    // The test server is on loopback: a private host, allowed here.
    let builder = DockerImageBuilder::new(docker.client().clone()).allow_local_repositories(true);
    let (addr, server) = capture_one_request().await;
    let url = format!("http://{addr}/acme/private.git");
    let mut req = request(&url, &unique_tag("private"));
    req.credentials = Some(SecretString::new("tok-over-http"));
    let (out, log) = build(&builder, &req).await;
    let err = out.unwrap_err().to_string();
    let head = server.await.unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode("x-access-token:tok-over-http");
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("authorization: basic {expected}"))),
        "the token is sent as a header: {head}"
    );
    assert!(
        head.starts_with("GET /acme/private.git/info/refs"),
        "{head}"
    );
    assert!(
        !err.contains("tok-over-http") && !err.contains(&expected),
        "{err}"
    );
    assert!(
        log.iter()
            .all(|l| !l.contains("tok-over-http") && !l.contains(&expected))
    );
    assert!(err.contains(&format!("could not clone {url}")), "{err}");
}

/// The tag of the operator's static base image in these tests: the test app's busybox image
/// under a name no registry has.
const STATIC_BASE: &str = "clank-build-test/static-base:local";

/// A builder whose static base image is [`STATIC_BASE`] (tagged here), as an operator sets it.
async fn static_builder(rt: &DockerRuntime) -> DockerImageBuilder {
    testapp::docker::build_stand_in(rt.client(), STATIC_BASE, &[])
        .await
        .unwrap_or_else(|e| panic!("tagging the static base image failed: {e}"));
    let settings = clank_docker::BuildSettings {
        base_images: BTreeMap::from([("static".to_owned(), STATIC_BASE.to_owned())]),
        ..clank_docker::BuildSettings::default()
    };
    DockerImageBuilder::new(rt.client().clone())
        .allow_local_repositories(true)
        .with_settings(&settings)
        .unwrap()
}

/// Run `tag` on a loopback port; the workload is removed with `cleanup_site`.
async fn serve_image(
    rt: &DockerRuntime,
    tag: &str,
) -> (clank_core::runtime::WorkloadId, std::net::SocketAddr) {
    use clank_core::id::{DeploymentId, EnvironmentId, ProjectId, WorkspaceId};
    use clank_core::runtime::{Owner, Runtime};
    let owner = Owner {
        workspace: WorkspaceId::new(),
        project: ProjectId::new(),
        environment: EnvironmentId::new(),
        service: ServiceId::new(),
        deployment: DeploymentId::new(),
        process: "web".to_owned(),
        replica: 0,
    };
    let id = BuildId::new().to_string();
    let mut spec = common::app_spec(&clank_testkit::runtime::TestApp {
        name: format!("clank-site-{}", &id[id.len() - 10..]),
        owner,
        env: Vec::new(),
        command: None,
        data_volume: None,
        network: None,
    });
    spec.image = Some(tag.parse().unwrap());
    let status = rt.start(&spec).await.unwrap_or_else(|e| panic!("{e}"));
    let addr = status.endpoint.expect("a published port");
    (status.id, addr)
}

async fn cleanup_site(rt: &DockerRuntime, id: &clank_core::runtime::WorkloadId, tag: &str) {
    use clank_core::runtime::Runtime;
    let _ = rt.remove(id).await;
    remove_image(rt, tag).await;
}

const SITE_404: &str = "<h1>no such page</h1>\n";
const SITE_INDEX: &str = "<h1>the site</h1>\n";

fn site_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("index.html", SITE_INDEX),
        ("404.html", SITE_404),
        ("about.html", "<h1>about</h1>\n"),
        ("README.md", "# how to edit the site\n"),
        (".env", "DATABASE_PASSWORD=hunter2\n"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_site_serves_only_the_site_with_its_404_page_on_the_operators_base_image() {
    let Some((rt, _)) = setup().await else {
        return;
    };
    let builder = static_builder(&rt).await;
    let repo = TestRepo::new(&site_files());
    let tag = unique_tag("site");
    let (out, log) = build(&builder, &request(&repo.url(), &tag)).await;
    let out = out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    assert_eq!(out.framework.as_deref(), Some("static"));
    assert!(
        out.dockerfile
            .contains(&format!("ARG STATIC_IMAGE={STATIC_BASE}\n")),
        "the operator's base image is the one built from: {}",
        out.dockerfile
    );
    assert!(
        log.iter()
            .any(|l| l.contains("left out of the image") && l.contains("README.md")),
        "{log:?}"
    );
    let (id, addr) = serve_image(&rt, &tag).await;
    let checked = async {
        let index = clank_testkit::http::wait_for_status(addr, "/", 200, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(index.body, SITE_INDEX);
        let about = clank_testkit::http::get(addr, "/about.html", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(about.status, 200);
        for path in [
            "/README.md",
            "/.env",
            "/.clank.Dockerfile",
            "/.dockerignore",
            "/.clank.httpd.conf",
            "/no/such/page",
        ] {
            let r = clank_testkit::http::get(addr, path, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(r.status, 404, "GET {path}: {}", r.body);
            assert_eq!(r.body, SITE_404, "GET {path} answers the site's 404.html");
        }
    };
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checked)).await;
    cleanup_site(&rt, &id, &tag).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_fallback_answers_index_html_for_client_side_routes() {
    let Some((rt, _)) = setup().await else {
        return;
    };
    let builder = static_builder(&rt).await;
    let mut files = site_files();
    files.push(("public/index.html", SITE_INDEX));
    files.push(("public/assets/app.js", "console.log('app');\n"));
    files.push(("public/.env", "SECRET=1\n"));
    let repo = TestRepo::new(&files);
    let tag = unique_tag("spa");
    let mut req = request(&repo.url(), &tag);
    req.publish_dir = Some("public".into());
    req.spa_fallback = Some(true);
    let (out, log) = build(&builder, &req).await;
    out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    let (id, addr) = serve_image(&rt, &tag).await;
    let checked = async {
        clank_testkit::http::wait_for_status(addr, "/", 200, Duration::from_secs(20))
            .await
            .unwrap();
        for path in ["/some/route", "/some/route?tab=2", "/.env", "/README.md"] {
            let r = clank_testkit::http::get(addr, path, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(
                (r.status, r.body.as_str()),
                (200, SITE_INDEX),
                "GET {path} gets the app"
            );
        }
        let js = clank_testkit::http::get(addr, "/assets/app.js", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            (js.status, js.body.as_str()),
            (200, "console.log('app');\n")
        );
    };
    let outcome =
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checked)).await;
    cleanup_site(&rt, &id, &tag).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_base_image_is_named_in_the_build_error() {
    let Some((rt, _)) = setup().await else {
        return;
    };
    let missing = "clank-build-test/no-such-base:never";
    let settings = clank_docker::BuildSettings {
        base_images: BTreeMap::from([("static".to_owned(), missing.to_owned())]),
        ..clank_docker::BuildSettings::default()
    };
    let builder = DockerImageBuilder::new(rt.client().clone())
        .allow_local_repositories(true)
        .with_settings(&settings)
        .unwrap();
    let repo = TestRepo::new(&site_files());
    let (out, log) = build(&builder, &request(&repo.url(), &unique_tag("nobase"))).await;
    let err = out.unwrap_err().to_string();
    assert!(err.contains(&format!("FROM {missing}")), "{err}");
    assert!(!err.contains("${STATIC_IMAGE}"), "{err}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("Step ") && l.contains(&format!("FROM {missing}"))),
        "the log names the image too: {log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clanks_own_files_never_reach_the_image() {
    let Some((rt, builder)) = setup().await else {
        return;
    };
    // `COPY . .` of a repository Dockerfile: the engine drops the Dockerfile Clank placed in
    // the context and the generated .dockerignore once it has read them.
    let repo = TestRepo::new(&[
        (
            "Dockerfile",
            "FROM clank-testapp:latest\nCOPY . /ctx/\n\
             RUN test -f /ctx/hello.txt && test ! -e /ctx/.clank.Dockerfile && test ! -e /ctx/.dockerignore\n",
        ),
        ("hello.txt", "hi\n"),
        (".dockerignore", "*.log\n"),
    ]);
    let tag = unique_tag("ownfiles");
    let (out, log) = build(&builder, &request(&repo.url(), &tag)).await;
    out.unwrap_or_else(|e| panic!("{e}\n{}", log.join("\n")));
    remove_image(&rt, &tag).await;
}
