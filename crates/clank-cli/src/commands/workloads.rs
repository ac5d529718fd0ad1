//! The running service's workloads: their output (`logs`) and commands in them (`exec`).

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::app::{App, url_escape};
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
                println!("{}", json!({ "event": name, "data": data }));
            } else if name == "line" {
                println!("{}", log_line(&data, prefixed));
            }
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
    let v: Value = app
        .client
        .post(
            &format!("{path}/exec"),
            &json!({ "command": command, "process": process, "replica": replica }),
        )
        .await?;
    if app.json {
        app.show(&v, |_| String::new());
    } else {
        #[allow(clippy::print_stdout, clippy::print_stderr)]
        {
            print!("{}", v["stdout"].as_str().unwrap_or_default());
            eprint!("{}", v["stderr"].as_str().unwrap_or_default());
        }
    }
    let code = v["exit_code"].as_i64().unwrap_or(1);
    Ok(ExitCode::from(
        u8::try_from(code.clamp(0, 255)).unwrap_or(1),
    ))
}

/// `[web.0] line` when several workloads may speak; the line alone for one chosen workload.
fn log_line(data: &Value, prefixed: bool) -> String {
    let line = data["line"].as_str().unwrap_or_default();
    if prefixed {
        format!(
            "[{}.{}] {line}",
            data["process"].as_str().unwrap_or("?"),
            data["replica"]
        )
    } else {
        line.to_owned()
    }
}
