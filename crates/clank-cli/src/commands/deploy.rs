//! Deployments and builds: deploy, roll back, cancel, status, a deployment's log, builds.

use std::process::ExitCode;

use clank_api::{BuildView, DeploymentView, LogEntry};
use clank_core::model::{Service, ServiceSource, Trigger};

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

/// `clank status`: the service and its newest deployments (`--json`: both, as the daemon
/// answered them).
#[derive(serde::Serialize)]
struct Status {
    service: Service,
    deployments: Vec<DeploymentView>,
}

pub(crate) async fn status(app: &App, address: String) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let status = Status {
        service: app.client.get(&path).await?,
        deployments: app
            .client
            .get(&format!("{path}/deployments?limit=5"))
            .await?,
    };
    app.show(&status, |s| {
        let source = match &s.service.source {
            ServiceSource::DockerImage { image, .. } | ServiceSource::Template { image, .. } => {
                image.to_string()
            }
            ServiceSource::Git { .. } => "git".to_owned(),
        };
        let mut out = format!(
            "{} ({source})\n",
            app.service(&address)
                .map(|a| a.to_string())
                .unwrap_or_default(),
        );
        out.push_str(&lines(&s.deployments, deployment_line));
        out
    });
    Ok(())
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

fn deployment_line(d: &DeploymentView) -> String {
    let build = match &d.build {
        Some(b) => format!(
            "build v{} {}",
            b.number,
            short_sha(b.commit_sha.as_deref().unwrap_or(""))
        ),
        None => String::new(),
    };
    format!(
        "#{:<4} {:<16} {:<20} {}",
        d.number,
        d.status.as_str(),
        build,
        d.reason.as_deref().unwrap_or("")
    )
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

/// One build as a line: number, status, commit, branch, trigger, deployment, duration.
fn build_line(b: &BuildView) -> String {
    format!(
        "v{:<4} {:<10} {:<12} {:<16} {:<14} {:<6} {}",
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
    )
}
