//! Deployments and builds: deploy, roll back, cancel, status, a deployment's log, builds.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::app::{App, lines};
use crate::client::CliError;

pub(crate) async fn deploy(app: &App, address: String, follow: bool) -> Result<ExitCode, CliError> {
    let path = app.service_path(&address)?;
    let d: Value = app
        .client
        .post(&format!("{path}/deployments"), &json!({}))
        .await?;
    let number = d["number"].as_u64().unwrap_or_default();
    if !follow {
        app.show(&d, |d| {
            format!(
                "deployment #{} requested ({})",
                d["number"],
                d["status"].as_str().unwrap_or("")
            )
        });
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if app.follow(&path, number).await? {
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
    let d: Value = app
        .client
        .post(&format!("{path}/deployments/{number}/rollback"), &json!({}))
        .await?;
    let new = d["number"].as_u64().unwrap_or_default();
    if !follow {
        app.show(&d, |d| {
            format!(
                "rollback to #{number} requested as deployment #{}",
                d["number"]
            )
        });
        return Ok(ExitCode::SUCCESS);
    }
    Ok(if app.follow(&path, new).await? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) async fn cancel(app: &App, address: String, number: u64) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let d: Value = app
        .client
        .post(&format!("{path}/deployments/{number}/cancel"), &json!({}))
        .await?;
    app.show(&d, |d| format!("cancel of #{} requested", d["number"]));
    Ok(())
}

pub(crate) async fn status(app: &App, address: String) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let s: Value = app.client.get(&path).await?;
    let ds: Value = app
        .client
        .get(&format!("{path}/deployments?limit=5"))
        .await?;
    let all = json!({ "service": s, "deployments": ds });
    app.show(&all, |v| {
        let mut out = format!(
            "{} ({})\n",
            app.service(&address)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            v["service"]["source"]["image"].as_str().unwrap_or("git")
        );
        out.push_str(&lines(&v["deployments"], deployment_line));
        out
    });
    Ok(())
}

pub(crate) async fn log(app: &App, address: String, number: u64) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let v: Value = app
        .client
        .get(&format!("{path}/deployments/{number}/log"))
        .await?;
    app.show(&v, |v| {
        lines(v, |l| l["message"].as_str().unwrap_or("").to_owned())
    });
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
            let v: Value = app.client.get(&format!("{path}/builds/{n}")).await?;
            app.show(&v, |b| {
                let mut out = build_line(b);
                if let Some(f) = b["failure"].as_str() {
                    out.push_str(&format!("\nfailure: {f}"));
                }
                if b["log"]["truncated"].as_bool() == Some(true) {
                    out.push_str("\n(earlier log lines left out)");
                }
                for l in b["log"]["lines"].as_array().into_iter().flatten() {
                    out.push('\n');
                    out.push_str(l.as_str().unwrap_or_default());
                }
                out
            });
        }
        None => {
            let mut q = format!("{path}/builds?limit={limit}");
            if let Some(b) = before {
                q.push_str(&format!("&before={b}"));
            }
            let v: Value = app.client.get(&q).await?;
            app.show(&v, |v| {
                if v.as_array().is_some_and(Vec::is_empty) {
                    "no builds".to_owned()
                } else {
                    lines(v, build_line)
                }
            });
        }
    }
    Ok(())
}

fn deployment_line(d: &Value) -> String {
    let build = match d["build"]["number"].as_u64() {
        Some(n) => format!(
            "build v{n} {}",
            short_sha(d["build"]["commit_sha"].as_str().unwrap_or(""))
        ),
        None => String::new(),
    };
    format!(
        "#{:<4} {:<16} {:<20} {}",
        d["number"],
        d["status"].as_str().unwrap_or("?"),
        build,
        d["reason"].as_str().unwrap_or("")
    )
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What started a build or deployment, in a word or two.
fn trigger_text(t: &Value) -> String {
    match t["kind"].as_str() {
        Some("manual") => "manual".to_owned(),
        Some("auto_deploy") => "push".to_owned(),
        Some("rollback_of") => format!("rollback of #{}", t["number"]),
        Some("promotion_from") => "promotion".to_owned(),
        _ => "?".to_owned(),
    }
}

/// One build as a line: number, status, commit, branch, trigger, deployment, duration.
fn build_line(b: &Value) -> String {
    format!(
        "v{:<4} {:<10} {:<12} {:<16} {:<14} {:<6} {}",
        b["number"],
        b["status"].as_str().unwrap_or("?"),
        short_sha(b["commit_sha"].as_str().unwrap_or("-")),
        b["branch"].as_str().unwrap_or(""),
        trigger_text(&b["trigger"]),
        b["deployment"]
            .as_u64()
            .map(|n| format!("#{n}"))
            .unwrap_or_else(|| "-".into()),
        b["duration_s"]
            .as_f64()
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "running".into()),
    )
}
