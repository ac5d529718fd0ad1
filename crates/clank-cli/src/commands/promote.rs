//! `clank promote shop/staging/api --to production`: plan a promotion, show it, and apply it
//! after a confirmation on a terminal (`--yes` without asking); `--plan <id>` applies a plan
//! shown earlier. A whole environment (`shop/staging`) promotes every service it runs.

use std::io::{BufRead, IsTerminal, Write};

use clank_api::plans::{AppliedPlan, NewPromotion, PlanView};

use crate::app::App;
use crate::client::CliError;

/// The source as the daemon takes it: relative to the workspace (the context's unless a
/// full four-segment service address names one; it must then be the context's).
fn relative_source(app: &App, source: &str) -> Result<String, CliError> {
    let segments: Vec<&str> = source.split('/').collect();
    if segments.len() == 4 {
        if segments[0] != app.defaults.workspace {
            return Err(CliError::new(
                format!(
                    "`{source}` is in workspace `{}`, not the context's `{}`",
                    segments[0], app.defaults.workspace
                ),
                2,
            ));
        }
        return Ok(segments[1..].join("/"));
    }
    Ok(source.to_owned())
}

#[allow(clippy::print_stdout)]
pub(crate) async fn promote(
    app: &App,
    source: Option<String>,
    to: Option<String>,
    yes: bool,
    plan: Option<String>,
) -> Result<(), CliError> {
    let ws = app.ws_path();
    let id = match (plan, source, to) {
        (Some(id), _, _) => id,
        (None, Some(source), Some(target)) => {
            let body = NewPromotion {
                source: relative_source(app, &source)?,
                target,
            };
            let plan: PlanView = app.client.post(&format!("{ws}/promotions"), &body).await?;
            if app.json && !yes {
                app.show(&plan, |_| String::new());
                return Ok(());
            }
            if !app.json {
                println!("{}", crate::plan::render(&plan));
            }
            if plan.unchanged {
                return Ok(());
            }
            if !yes && !confirm()? {
                println!(
                    "\nNot applied. Apply exactly this plan: clank promote --plan {}",
                    plan.id
                );
                return Ok(());
            }
            plan.id
        }
        _ => {
            return Err(CliError::new(
                "give a source and `--to <environment>`, or `--plan <id>`",
                2,
            ));
        }
    };
    let applied: AppliedPlan = app
        .client
        .post_empty(&format!("{ws}/plans/{id}/apply"))
        .await?;
    app.show(&applied, |a| {
        let mut out = vec![format!("plan {} applied", a.plan)];
        for s in &a.created {
            out.push(format!("  created {s}"));
        }
        for d in &a.deployments {
            out.push(format!("  deployment #{} {}", d.number, d.status));
        }
        out.join("\n")
    });
    Ok(())
}

/// `clank plan show <id>`: a stored plan (a promotion's or an apply's) as `promote` shows it,
/// with how to apply it while it can be.
pub(crate) async fn show(app: &App, id: String) -> Result<(), CliError> {
    let plan: PlanView = app
        .client
        .get(&format!(
            "{}/plans/{}",
            app.ws_path(),
            crate::app::url_escape(&id)
        ))
        .await?;
    app.show(&plan, |p| {
        let mut out = crate::plan::render(p);
        if p.applied_at.is_none() && !p.unchanged {
            out.push_str(&format!(
                "\n\nApply exactly this plan: clank promote --plan {}",
                p.id
            ));
        }
        out
    });
    Ok(())
}

/// Asks on a terminal; never applies without one (use `--yes`).
#[allow(clippy::print_stdout)]
fn confirm() -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("\nApply this plan? [y/N] ");
    std::io::stdout()
        .flush()
        .map_err(|e| CliError::new(e.to_string(), 1))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(e.to_string(), 1))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
