//! The running service's workloads: their output (`logs`) and commands in them (`exec`).

use std::process::ExitCode;

use clank_api::services::{ExecBody, ExecResult, WorkloadLogLine};

use crate::app::{App, raw_event, url_escape};
use crate::client::CliError;

pub(crate) async fn logs(
    app: &App,
    address: String,
    follow: bool,
    tail: usize,
    process: Option<String>,
    replica: Option<u32>,
) -> Result<(), CliError> {
    let path = app.service_path(&address)?;
    let json = app.json;
    let mut query = format!("{path}/logs?follow={follow}&tail={tail}");
    if let Some(p) = &process {
        query.push_str(&format!("&process={}", url_escape(p)));
    }
    if let Some(r) = replica {
        query.push_str(&format!("&replica={r}"));
    }
    // One chosen workload speaks alone; otherwise each line says whose it is.
    let prefixed = process.is_none() || replica.is_none();
    app.client
        .sse(&query, |name, data| {
            #[allow(clippy::print_stdout)]
            if json {
                println!("{}", raw_event(name, data));
            } else if name == "line" {
                let line: WorkloadLogLine = app.client.event(&query, name, data)?;
                println!("{}", log_line(&line, prefixed));
            }
            Ok(())
        })
        .await?;
    Ok(())
}

pub(crate) async fn exec(
    app: &App,
    address: String,
    process: Option<String>,
    replica: Option<u32>,
    command: Vec<String>,
) -> Result<ExitCode, CliError> {
    let path = app.service_path(&address)?;
    let r: ExecResult = app
        .client
        .post(
            &format!("{path}/exec"),
            &ExecBody {
                command,
                timeout_s: None,
                process,
                replica,
            },
        )
        .await?;
    if app.json {
        app.show(&r, |_| String::new());
    } else {
        #[allow(clippy::print_stdout, clippy::print_stderr)]
        {
            print!("{}", r.stdout);
            eprint!("{}", r.stderr);
        }
    }
    // No exit code: the command was killed (timeout) or its end is unknown, a failure.
    let code = r.exit_code.unwrap_or(1);
    Ok(ExitCode::from(
        u8::try_from(code.clamp(0, 255)).unwrap_or(1),
    ))
}

/// `[web.0] line` when several workloads may speak; the line alone for one chosen workload.
fn log_line(l: &WorkloadLogLine, prefixed: bool) -> String {
    if prefixed {
        format!("[{}] {}", l.workload(), l.line.line)
    } else {
        l.line.line.clone()
    }
}
