//! Git services end to end: real git (repositories made by the test, cloned over `file://`),
//! the real Docker engine building and running the images, the engine driving deployments
//! through BUILDING. A repository Dockerfile, detected Node.js and Python apps (on base images
//! made from the host's interpreters), a failing build and a build past its timeout (the
//! previous version keeps serving), an option-like ref and an unreachable repository, and the
//! time of a no-change rebuild (cache hit) beside the first build.
//!
//! Outside CI these tests skip (loudly) when no engine is reachable; with `CI` set they fail.

mod common;

use std::time::Duration;

use clank_core::config::ConfigChange;
use clank_core::deploy::DeploymentStatus;
use clank_core::id::ServiceId;
use clank_core::model::{Build, BuildStatus, Service, ServiceSource};
use clank_core::proxy::Proxy;
use clank_testkit::gitrepo::TestRepo;
use clank_testkit::runtime::skip_or_fail;
use clank_testkit::{http, interpreters, testapp};
use common::Platform;

/// Builds on the test app image, so no registry is needed; `hello.txt` changes per version.
const DOCKERFILE: &str =
    "FROM clank-testapp:latest\nCOPY hello.txt /app/hello.txt\nRUN echo built\n";

fn build_secs(b: &Build) -> f64 {
    b.finished_at
        .map(|f| f.since(b.started_at).as_secs_f64())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_dockerfile_builds_and_deploys_and_a_no_change_rebuild_hits_the_cache() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let d = p.deploy().await;
    let active = p
        .wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let statuses: Vec<_> = active.state.history.iter().map(|h| h.to).collect();
    assert_eq!(
        statuses,
        [
            DeploymentStatus::Pending,
            DeploymentStatus::Building,
            DeploymentStatus::Deploying,
            DeploymentStatus::HealthChecking,
            DeploymentStatus::Active
        ]
    );
    assert_eq!(active.state.image, Some(p.image(1)));
    let builds = p.builds().await;
    assert_eq!(builds.len(), 1);
    let v1 = &builds[0];
    assert_eq!(active.state.build_id, Some(v1.id));
    assert_eq!(v1.status, BuildStatus::Succeeded);
    assert_eq!(v1.version_label(), "v1");
    assert_eq!(v1.commit_sha.as_deref(), Some(repo.head().as_str()));
    assert_eq!(v1.dockerfile.as_deref(), Some(DOCKERFILE));
    assert_eq!(v1.image, Some(p.image(1)));
    let log = p.log_of(d.id).await;
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` missing: {log:#?}"))
    };
    assert!(pos("PENDING → BUILDING") < pos("build v1 started"));
    assert!(pos("build v1: Step 1/") < pos("build v1 succeeded"));
    assert!(pos("build v1 succeeded") < pos("BUILDING → DEPLOYING"));
    let addr = p.web_endpoint(d.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );

    // Redeploying the same commit builds v2 from the cache.
    let d2 = p.deploy().await;
    p.wait_for(d2.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let builds = p.builds().await;
    assert_eq!(builds[1].number, 2);
    assert_eq!(builds[1].commit_sha, builds[0].commit_sha);
    let log2 = p.log_of(d2.id).await;
    assert!(
        log2.iter()
            .all(|l| !l.starts_with("build v2") || !l.contains("Running in")),
        "every step of the rebuild is cached: {log2:#?}"
    );
    println!(
        "BUILD TIMING (engine, Dockerfile repo): first build v1 {:.2} s, no-change rebuild v2 (cache hit) {:.2} s",
        build_secs(&builds[0]),
        build_secs(&builds[1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_changes_nothing_the_image_is_built_from_reuses_the_image_without_building() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let image_id = |n: u64| {
        let docker = p.runtime.client().clone();
        let tag = p.image(n).to_string();
        async move { docker.inspect_image(&tag).await.unwrap().id.unwrap() }
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    // A new commit with the same tree: nothing the image is built from changed.
    let empty = repo.commit(&[], "an empty commit");
    let v2 = p.deploy().await;
    p.wait_for(v2.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let log2 = p.log_of(v2.id).await;
    assert!(
        log2.iter().any(|l| l.contains("reusing")),
        "the image is reused: {log2:#?}"
    );
    assert!(
        log2.iter().all(|l| !l.contains("Step 1/")),
        "nothing is built: {log2:#?}"
    );
    assert_eq!(image_id(2).await, image_id(1).await);
    let builds = p.builds().await;
    assert_eq!(builds[1].status, BuildStatus::Succeeded);
    assert_eq!(builds[1].commit_sha.as_deref(), Some(empty.as_str()));
    let addr = p.web_endpoint(v2.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    // A change to the context builds again.
    repo.commit(&[("hello.txt", "v3\n")], "a real change");
    let v3 = p.deploy().await;
    p.wait_for(v3.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let log3 = p.log_of(v3.id).await;
    assert!(log3.iter().any(|l| l.contains("Step 1/")), "{log3:#?}");
    assert!(log3.iter().all(|l| !l.contains("reusing")), "{log3:#?}");
    assert_ne!(image_id(3).await, image_id(1).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_build_fails_the_deployment_and_the_previous_keeps_serving() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let addr = p.web_endpoint(v1.id).await;
    repo.commit(
        &[(
            "Dockerfile",
            "FROM clank-testapp:latest\nRUN echo about-to-fail\nRUN exit 3\n",
        )],
        "break the build",
    );
    let v2 = p.deploy().await;
    let failed = p
        .wait_for(v2.id, DeploymentStatus::Failed, Duration::from_secs(120))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(reason.starts_with("build failed: "), "{reason}");
    assert!(
        reason.contains("RUN exit 3") && reason.contains("non-zero code: 3"),
        "{reason}"
    );
    assert_eq!(failed.state.image, None);
    let builds = p.builds().await;
    assert_eq!(builds[1].status, BuildStatus::Failed);
    assert!(builds[1].failure.as_deref().unwrap().contains("RUN exit 3"));
    assert_eq!(p.active().await, Some(v1.id));
    assert_eq!(p.get(v1.id).await.state.status, DeploymentStatus::Active);
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        p.routes
            .route(p.service)
            .await
            .unwrap()
            .unwrap()
            .target
            .deployment,
        v1.id
    );
    p.wait_until_retired(v2.id, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_past_its_timeout_is_stopped_and_fails_the_deployment() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    // The smallest timeout settings accept is 10 s; this step would take 317 s.
    let svc = p
        .update_service(|next| next.settings.build_timeout_s = 10)
        .await;
    assert_eq!(svc.settings.build_timeout_s, 10);
    repo.commit(
        &[("Dockerfile", "FROM clank-testapp:latest\nRUN sleep 317\n")],
        "slow build",
    );
    let started = tokio::time::Instant::now();
    let v2 = p.deploy().await;
    let failed = p
        .wait_for(v2.id, DeploymentStatus::Failed, Duration::from_secs(40))
        .await;
    let took = started.elapsed();
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("build_timeout_s (10 s)")
            || reason.contains("BUILDING did not finish in time"),
        "{reason}"
    );
    assert!(took < Duration::from_secs(25), "failed after {took:?}");
    let builds = p.builds().await;
    assert_ne!(builds[1].status, BuildStatus::Running, "{:?}", builds[1]);
    // The engine stopped the build's container when the client went away.
    p.wait_until_no_container_runs("sleep 317").await;
    assert_eq!(p.active().await, Some(v1.id));
    let addr = p.web_endpoint(v1.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    println!(
        "build timeout: deployment FAILED {:.1} s after the request: {reason}",
        took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_restarted_mid_build_starts_a_new_build_and_closes_the_old_one() {
    let repo = TestRepo::new(&[
        (
            "Dockerfile",
            "FROM clank-testapp:latest\nCOPY hello.txt /app/hello.txt\nRUN sleep 4\n",
        ),
        ("hello.txt", "v1\n"),
    ]);
    let Some(mut p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Building, Duration::from_secs(30))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while p.builds().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no build started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.crash_and_restart().await;
    let active = p
        .wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let builds = p.builds().await;
    assert_eq!(builds.len(), 2, "{builds:#?}");
    assert_eq!(builds[0].status, BuildStatus::Failed);
    assert!(
        builds[0]
            .failure
            .as_deref()
            .unwrap()
            .contains("interrupted: the control plane restarted")
    );
    assert_eq!(builds[1].status, BuildStatus::Succeeded);
    assert_eq!(active.state.build_id, Some(builds[1].id));
    assert_eq!(active.state.image, Some(p.image(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_build_stops_it_and_marks_the_build_cancelled() {
    let repo = TestRepo::new(&[("Dockerfile", "FROM clank-testapp:latest\nRUN sleep 293\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Building, Duration::from_secs(30))
        .await;
    // Wait until the step runs, so the cancel has a container to stop.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !p
        .log_of(d.id)
        .await
        .iter()
        .any(|l| l.contains("Running in"))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the build never ran its step"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.engine.cancel(d.id).await.unwrap();
    let cancelled = p
        .wait_for(d.id, DeploymentStatus::Cancelled, Duration::from_secs(30))
        .await;
    assert_eq!(
        cancelled.state.reason.as_deref(),
        Some("cancelled on request")
    );
    let build = &p.builds().await[0];
    assert_eq!(build.status, BuildStatus::Cancelled);
    assert!(build.finished_at.is_some());
    p.wait_until_no_container_runs("sleep 293").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_like_ref_is_refused_and_runs_nothing() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let marker = std::env::temp_dir().join(format!("clank-pwned-{}", ServiceId::new()));
    let evil = format!("--upload-pack=touch {}", marker.display());
    let url = repo.url();
    // Stored without validation (which refuses it), as if an older version had let it in.
    let Some(p) = Platform::git(&url, Some(&[]), |s| {
        s.source = ServiceSource::Git {
            repo_url: url.clone(),
            branch: evil.clone(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: None,
        };
    })
    .await
    else {
        return;
    };
    let (_, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(
        reason.contains("source.branch") && reason.contains("`-`"),
        "{reason}"
    );
    assert!(!marker.exists(), "git ran the injected upload-pack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_repository_fails_with_a_precise_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/missing.git", dir.path().display());
    let Some(p) = Platform::git(&url, Some(&[]), |_| {}).await else {
        return;
    };
    let (_, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(
        reason.contains(&format!("could not clone {url} (branch `main`)"))
            && reason.contains("does not appear to be a git repository"),
        "{reason}"
    );
    assert_eq!(p.builds().await[0].status, BuildStatus::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_token_comes_from_a_config_secret_and_stays_out_of_logs() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let url = repo.url();
    let with_secret = |s: &mut Service| {
        s.source = ServiceSource::Git {
            repo_url: url.clone(),
            branch: "main".into(),
            dockerfile_path: None,
            build_context: None,
            credentials_secret: Some("GIT_TOKEN".into()),
        };
    };
    let Some(p) = Platform::git(&url, Some(&[]), with_secret).await else {
        return;
    };
    // Not set yet: the build cannot start, and says which secret is missing.
    let (_, reason) = p.deploy_and_fail(Duration::from_secs(30)).await;
    assert!(
        reason.contains("credentials_secret `GIT_TOKEN` is not set"),
        "{reason}"
    );
    // A plain variable is refused: tokens are secrets.
    p.set_config(ConfigChange::set_plain("GIT_TOKEN", "not-secret"))
        .await;
    let d = p.deploy().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    assert!(failed.state.reason.unwrap().contains("is a plain variable"));
    // As a secret it is opened and handed to the builder (git only uses it for http(s)).
    p.set_config(ConfigChange::set_secret("GIT_TOKEN", "tok-e2e-secret"))
        .await;
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let log = p.log_of(d.id).await.join("\n");
    assert!(!log.contains("tok-e2e-secret"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_release_command_fails_the_deployment_before_cutover() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    let v1 = p.deploy().await;
    p.wait_for(v1.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    repo.commit(
        &[("Procfile", "release: echo migration-breaks; exit 7\n")],
        "a failing release",
    );
    let v2 = p.deploy().await;
    let failed = p
        .wait_for(v2.id, DeploymentStatus::Failed, Duration::from_secs(120))
        .await;
    let reason = failed.state.reason.unwrap();
    assert!(
        reason.contains("release command `echo migration-breaks; exit 7` failed with exit code 7"),
        "{reason}"
    );
    assert!(
        p.log_of(v2.id)
            .await
            .iter()
            .any(|l| l.contains("release: migration-breaks"))
    );
    // The release workload is removed (retired in the background).
    p.wait_until_retired(v2.id, Duration::from_secs(15)).await;
    assert_eq!(p.active().await, Some(v1.id));
    let addr = p.web_endpoint(v1.id).await;
    assert_eq!(
        http::get(addr, "/health", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_without_a_builder_fails_git_deployments_saying_why() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(p) = Platform::git(&repo.url(), None, |_| {}).await else {
        return;
    };
    let d = p.deploy().await;
    let failed = p
        .wait_for(d.id, DeploymentStatus::Failed, Duration::from_secs(30))
        .await;
    assert!(
        failed
            .state
            .reason
            .unwrap()
            .contains("no image builder configured"),
    );
    assert!(p.builds().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn procfile_process_types_run_their_commands_and_scale_independently() {
    let procfile = "web: /bin/busybox sh /app/start.sh\n\
                    worker: trap 'exit 0' TERM; while true; do sleep 1; done\n\
                    release: echo migrating for $GREETING\n";
    let repo = TestRepo::new(&[
        ("Dockerfile", DOCKERFILE),
        ("hello.txt", "v1\n"),
        ("Procfile", procfile),
    ]);
    let Some(p) = Platform::git(&repo.url(), Some(&[]), |s| {
        s.processes.get_mut("web").unwrap().replicas = 2;
        s.processes.insert(
            "worker".into(),
            clank_core::model::ProcessSpec {
                command: None,
                replicas: 1,
            },
        );
    })
    .await
    else {
        return;
    };
    p.set_config(ConfigChange::set_plain("GREETING", "hello"))
        .await;
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    assert_eq!(p.builds().await[0].procfile.as_deref(), Some(procfile));
    // `release` ran once, with the deployment's config, before the deployment left BUILDING,
    // and is gone; it is not a workload of the deployment.
    let log = p.log_of(d.id).await;
    let pos = |needle: &str| {
        log.iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("`{needle}` missing: {log:#?}"))
    };
    assert!(pos("build v1: release: migrating for hello") < pos("BUILDING → DEPLOYING"));
    let web = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "exec /bin/busybox sh /app/start.sh".to_owned(),
    ];
    let worker = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "trap 'exit 0' TERM; while true; do sleep 1; done".to_owned(),
    ];
    assert_eq!(
        p.commands(d.id).await,
        [
            ("web".to_owned(), web.clone()),
            ("web".to_owned(), web.clone()),
            ("worker".to_owned(), worker.clone()),
        ]
    );
    // Scale the worker alone: the next deployment runs 2 web and 2 workers.
    p.update_service(|next| next.processes.get_mut("worker").unwrap().replicas = 2)
        .await;
    let d2 = p.deploy().await;
    p.wait_for(d2.id, DeploymentStatus::Active, Duration::from_secs(120))
        .await;
    let cmds = p.commands(d2.id).await;
    let count = |name: &str| cmds.iter().filter(|(n, _)| n == name).count();
    assert_eq!((count("web"), count("worker")), (2, 2));
    assert!(
        cmds.iter()
            .all(|(n, c)| if n == "web" { *c == web } else { *c == worker })
    );
}

const NODE_SERVER: &str = r#"const http = require('http');
const fs = require('fs');
const built = fs.readFileSync('built.txt', 'utf8');
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(req.url === '/health' ? 'ok' : `hello from node ${process.version}, ${built}`);
}).listen(Number(process.env.PORT), () => console.log(`listening on ${process.env.PORT}`));
process.on('SIGTERM', () => process.exit(0));
"#;

const PYTHON_APP: &str = r#"import os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if self.path == "/health" else ("hello from python " + sys.version.split()[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

async fn deploy_detected(p: &Platform, framework: &str, want_body: &str) {
    let d = p.deploy().await;
    p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(240))
        .await;
    let build = &p.builds().await[0];
    assert_eq!(build.framework.as_deref(), Some(framework));
    let dockerfile = build.dockerfile.as_deref().unwrap();
    assert!(
        dockerfile.starts_with("# Generated by Clank"),
        "{dockerfile}"
    );
    let addr = p.web_endpoint(d.id).await;
    let page = http::get(addr, "/", Duration::from_secs(3)).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(page.body.contains(want_body), "{}", page.body);
    println!(
        "BUILD TIMING ({framework}, detected): build v1 {:.2} s",
        build_secs(build)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_repository_without_dockerfile_is_detected_built_and_deployed() {
    let Some(rt) = common::docker().await else {
        return;
    };
    match interpreters::ensure_node_image(rt.client()).await {
        Ok(true) => {}
        Ok(false) => {
            skip_or_fail::<()>(
                "the host's Node.js (/usr/bin/node and npm)",
                "no base image",
            );
            return;
        }
        Err(e) => panic!("building the Node.js base image failed: {e}"),
    }
    let repo = TestRepo::new(&[
        (
            "package.json",
            r#"{"name":"app","version":"1.0.0","scripts":{"build":"node build.js","start":"node server.js"},"engines":{"node":">=18"}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"app","version":"1.0.0"}}}"#,
        ),
        (
            "build.js",
            "require('fs').writeFileSync('built.txt', 'built by npm run build');\n",
        ),
        ("server.js", NODE_SERVER),
    ]);
    let base = [("NODE_IMAGE", interpreters::NODE_IMAGE)];
    let Some(p) = Platform::git(&repo.url(), Some(&base), |_| {}).await else {
        return;
    };
    deploy_detected(&p, "node", "built by npm run build").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_repository_without_dockerfile_is_detected_built_and_deployed() {
    let Some(rt) = common::docker().await else {
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
    let repo = TestRepo::new(&[
        ("requirements.txt", "# the standard library is enough\n"),
        ("app.py", PYTHON_APP),
    ]);
    let base = [("PYTHON_IMAGE", interpreters::PYTHON_IMAGE)];
    let Some(p) = Platform::git(&repo.url(), Some(&base), |_| {}).await else {
        return;
    };
    deploy_detected(&p, "python", "hello from python 3.11").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_site_without_dockerfile_is_served_by_httpd() {
    let repo = TestRepo::new(&[("index.html", "<h1>static ok</h1>\n")]);
    // The test app image carries a static busybox, which has httpd.
    let base = [("STATIC_IMAGE", testapp::IMAGE)];
    let Some(p) = Platform::git(&repo.url(), Some(&base), |s| {
        s.settings.health_check_path = "/".into();
    })
    .await
    else {
        return;
    };
    deploy_detected(&p, "static", "static ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_page_app_is_built_with_node_and_served_statically() {
    let Some(rt) = common::docker().await else {
        return;
    };
    match interpreters::ensure_node_image(rt.client()).await {
        Ok(true) => {}
        Ok(false) => {
            skip_or_fail::<()>(
                "the host's Node.js (/usr/bin/node and npm)",
                "no base image",
            );
            return;
        }
        Err(e) => panic!("building the Node.js base image failed: {e}"),
    }
    let repo = TestRepo::new(&[
        (
            "package.json",
            r#"{"name":"spa","version":"1.0.0","scripts":{"build":"node build.js"}}"#,
        ),
        (
            "package-lock.json",
            r#"{"name":"spa","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"spa","version":"1.0.0"}}}"#,
        ),
        (
            "build.js",
            "const fs = require('fs');\nfs.mkdirSync('dist', { recursive: true });\n\
             fs.writeFileSync('dist/index.html', '<div id=app>spa built by node</div>');\n",
        ),
    ]);
    let base = [
        ("NODE_IMAGE", interpreters::NODE_IMAGE),
        ("STATIC_IMAGE", testapp::IMAGE),
    ];
    let Some(p) = Platform::git(&repo.url(), Some(&base), |s| {
        s.settings.health_check_path = "/".into();
    })
    .await
    else {
        return;
    };
    deploy_detected(&p, "spa", "spa built by node").await;
    let d = p.active().await.unwrap();
    let deep = http::get(
        p.web_endpoint(d).await,
        "/orders/42",
        Duration::from_secs(3),
    )
    .await
    .unwrap();
    assert!(
        deep.body.contains("spa built by node"),
        "client-side routes get the app: {deep:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_images_beyond_the_retention_are_pruned_and_retained_ones_roll_back() {
    let repo = TestRepo::new(&[("Dockerfile", DOCKERFILE), ("hello.txt", "v1\n")]);
    let Some(mut p) = Platform::git(&repo.url(), Some(&[]), |_| {}).await else {
        return;
    };
    p.image_retention = 2;
    p.crash_and_restart().await;
    let docker = p.runtime.client().clone();
    let exists = |image: clank_core::ImageRef| {
        let docker = docker.clone();
        async move { docker.inspect_image(&image.to_string()).await.is_ok() }
    };
    let mut deployments = Vec::new();
    for _ in 0..3 {
        let d = p.deploy().await;
        p.wait_for(d.id, DeploymentStatus::Active, Duration::from_secs(120))
            .await;
        deployments.push(d);
    }
    // #1's image is outside the newest two deployments: pruned once #3 went ACTIVE.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while exists(p.image(1)).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "v1 image not pruned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exists(p.image(2)).await && exists(p.image(3)).await,
        "retained images kept"
    );
    // Rolling back to a retained deployment works (its image is still there).
    let rb = p
        .engine
        .rollback(p.service, deployments[1].id)
        .await
        .unwrap();
    let active = p
        .wait_for(rb.id, DeploymentStatus::Active, Duration::from_secs(60))
        .await;
    assert_eq!(active.state.image, Some(p.image(2)));
}
