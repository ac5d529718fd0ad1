//! Deployments and builds: deploy, roll back, cancel, status, a deployment's log, builds.

use std::process::ExitCode;

use clank_api::deployments::ServiceStatus;
use clank_api::{BuildView, DeploymentView, LogEntry};
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Artifact, Service, ServiceSource, Trigger};

use crate::app::{App, lines, wire_name};
use crate::client::CliError;

pub(crate) async fn deploy(app: &App, address: String, follow: bool) -> Result<ExitCode, CliError> {
    let path = app.service_path(&address)?;
    let d: DeploymentView = app
        .client
        .post_empty(&format!("{path}/deployments"))
        .await?;
    if !follow {
        app.show(&d, |d| {
            format!("deployment #{} requested ({})", d.number, d.status)
        });
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if app.follow(&path, d.number).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn rollback(
    app: &App,
    address: String,
    number: u64,
    follow: bool,
) -> Result<ExitCode, CliError> {
    let path = app.service_path(&address)?;
    let d: DeploymentView = app
        .client
        .post_empty(&format!("{path}/deployments/{number}/rollback"))
        .await?;
    if !follow {
        app.show(&d, |d| {
            format!(
                "rollback to #{number} requested as deployment #{}",
                d.number
            )
        });
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if app.follow(&path, d.number).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn cancel(app: &App, address: String, number: u64) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let d: DeploymentView = app
        .client
        .post_empty(&format!("{path}/deployments/{number}/cancel"))
        .await?;
    app.show(&d, |d| format!("cancel of #{} requested", d.number));
    Ok(())
}

/// `clank status`: the service, what runs now (its ACTIVE deployment, however old) and its
/// newest deployments (`--json`: all three, as the daemon answered them).
#[derive(serde::Serialize)]
struct Status {
    service: Service,
    /// The ACTIVE deployment: what serves now.
    active: Option<DeploymentView>,
    deployments: Vec<DeploymentView>,
}

pub(crate) async fn status(app: &App, address: String) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let now: ServiceStatus = app.client.get(&format!("{path}/status")).await?;
    let status = Status {
        service: now.service,
        active: now.active,
        deployments: now.recent,
    };
    let shown = app
        .service(&address)
        .map(|a| a.to_string())
        .unwrap_or(address);
    app.show(&status, |s| status_text(&shown, s, &app.style));
    Ok(())
}

/// The human `clank status`: what runs now first (always), then the recent deployments, and
/// the desired source when the next deploy would change it.
fn status_text(address: &str, s: &Status, style: &crate::style::Style) -> String {
    let mut out = style.bold(address);
    // A stopped or deleted service keeps its ACTIVE deployment but runs nothing.
    let (label, parked) = if s.service.is_deleted() {
        ("deleted", " (`clank service restore` runs it again)")
    } else if s.service.stopped_at.is_some() {
        ("stopped", " (`clank service start` runs it again)")
    } else {
        ("running", "")
    };
    match &s.active {
        Some(d) => {
            let since = d
                .history
                .iter()
                .rev()
                .find(|c| c.to == DeploymentStatus::Active)
                .map_or(d.created_at, |c| c.at);
            out.push_str(&format!(
                "\n{label}: #{} {} since {since}{parked}",
                d.number,
                style.status(d.status)
            ));
            let image = d
                .image
                .as_ref()
                .map_or_else(|| artifact_text(d), ToString::to_string);
            out.push_str(&format!("\n  image:  {image}"));
            if let Some(digest) = &d.image_digest {
                out.push_str(&format!("\n  digest: {digest}"));
            }
            if let Some(b) = &d.build {
                out.push_str(&format!(
                    "\n  build:  v{} {} {}",
                    b.number,
                    short_sha(b.commit_sha.as_deref().unwrap_or("")),
                    b.commit_subject.as_deref().unwrap_or("")
                ));
                out.truncate(out.trim_end().len());
            }
        }
        None => out.push_str(&format!(
            "\n{label}: nothing (no ACTIVE deployment){parked}"
        )),
    }
    let desired = desired_source(&s.service.source);
    // The image the ACTIVE deployment was asked to run (as the source named it, before any
    // digest pinning): a different one in the source is what the next deploy changes.
    let deployed = s.active.as_ref().and_then(|d| match &d.artifact {
        Artifact::Image { image } => Some(image),
        Artifact::Build { .. } => None,
    });
    if let ServiceSource::DockerImage { image, .. } | ServiceSource::Template { image, .. } =
        &s.service.source
        && deployed != Some(image)
    {
        out.push_str(&format!("\nnext deploy runs: {desired}"));
    } else if s.active.is_none() {
        out.push_str(&format!("\nsource: {desired}"));
    }
    out.push_str("\nrecent deployments:");
    if s.deployments.is_empty() {
        out.push_str("\n  none yet (`clank deploy ...`)");
    }
    for d in &s.deployments {
        out.push_str("\n  ");
        out.push_str(&deployment_line(d, style));
    }
    out
}

/// A service's source in a few words.
fn desired_source(source: &ServiceSource) -> String {
    match source {
        ServiceSource::DockerImage { image, .. } => format!("image {image}"),
        ServiceSource::Template {
            template, image, ..
        } => format!("image {image} (template {template})"),
        ServiceSource::Git {
            repo_url, branch, ..
        } => format!("git {repo_url} at `{branch}`"),
    }
}

/// What a deployment runs before its image is known: the artifact as snapshotted.
fn artifact_text(d: &DeploymentView) -> String {
    match &d.artifact {
        Artifact::Image { image } => image.to_string(),
        Artifact::Build {
            repo_url,
            git_ref,
            commit,
            ..
        } => format!(
            "built from {repo_url} at `{git_ref}`{}",
            commit
                .as_deref()
                .map(|c| format!(" ({})", short_sha(c)))
                .unwrap_or_default()
        ),
    }
}

pub(crate) async fn log(app: &App, address: String, number: u64) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let entries: Vec<LogEntry> = app
        .client
        .get(&format!("{path}/deployments/{number}/log"))
        .await?;
    app.show(&entries, |entries| lines(entries, |l| l.message.clone()));
    Ok(())
}

pub(crate) async fn builds(
    app: &App,
    address: String,
    number: Option<u64>,
    limit: usize,
    before: Option<u64>,
) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    match number {
        Some(n) => {
            let b: BuildView = app.client.get(&format!("{path}/builds/{n}")).await?;
            app.show(&b, |b| {
                let mut out = build_line(b);
                if let Some(f) = &b.failure {
                    out.push_str(&format!("\nfailure: {f}"));
                }
                if let Some(log) = &b.log {
                    if log.truncated {
                        out.push_str("\n(earlier log lines left out)");
                    }
                    for l in &log.lines {
                        out.push('\n');
                        out.push_str(l);
                    }
                }
                out
            });
        }
        None => {
            let mut q = format!("{path}/builds?limit={limit}");
            if let Some(b) = before {
                q.push_str(&format!("&before={b}"));
            }
            let builds: Vec<BuildView> = app.client.get(&q).await?;
            app.show(&builds, |builds| {
                if builds.is_empty() {
                    "no builds".to_owned()
                } else {
                    lines(builds, build_line)
                }
            });
        }
    }
    Ok(())
}

fn deployment_line(d: &DeploymentView, style: &crate::style::Style) -> String {
    let build = match &d.build {
        Some(b) => format!(
            "build v{} {}",
            b.number,
            short_sha(b.commit_sha.as_deref().unwrap_or(""))
        ),
        None => String::new(),
    };
    // Pad before colouring: escape codes have no width.
    let pad = " ".repeat(16usize.saturating_sub(d.status.as_str().len()));
    format!(
        "#{:<4} {}{pad} {:<20} {}",
        d.number,
        style.status(d.status),
        build,
        d.reason.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What started a build or deployment, in a word or two.
fn trigger_text(t: Option<&Trigger>) -> String {
    match t {
        Some(Trigger::Manual { .. }) => "manual".to_owned(),
        Some(Trigger::AutoDeploy { .. }) => "push".to_owned(),
        Some(Trigger::RollbackOf { number, .. }) => format!("rollback of #{number}"),
        Some(Trigger::PromotionFrom { .. }) => "promotion".to_owned(),
        None => "?".to_owned(),
    }
}

/// One build as a line: number, status, commit, branch, trigger, deployment, duration and
/// the commit's subject.
fn build_line(b: &BuildView) -> String {
    format!(
        "v{:<4} {:<10} {:<12} {:<16} {:<14} {:<6} {:<9} {}",
        b.number,
        wire_name(&b.status),
        short_sha(b.commit_sha.as_deref().unwrap_or("-")),
        b.branch,
        trigger_text(b.trigger.as_ref()),
        b.deployment
            .map(|n| format!("#{n}"))
            .unwrap_or_else(|| "-".into()),
        b.duration_s
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "running".into()),
        b.commit_subject.as_deref().unwrap_or(""),
    )
    .trim_end()
    .to_owned()
}
