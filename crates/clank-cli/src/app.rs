//! The state every command shares (`App`: client, output mode, address defaults), turning
//! addresses into API paths, printing human or JSON output, and following a deployment.

use std::collections::HashSet;

use clank_api::{DeploymentView, Event, EventKind};
use clank_core::address::{AddressDefaults, EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Role, StatusChange};
use serde::Serialize;

use crate::client::{CliError, Client};

/// What every command works with: the daemon's client, the output mode, and the address
/// defaults (the context's workspace, environment `production`).
pub(crate) struct App {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) defaults: AddressDefaults,
    /// Colour or not (a terminal, no `--json`, no `NO_COLOR`).
    pub(crate) style: crate::style::Style,
}

pub(crate) fn input(e: clank_core::InvalidInput) -> CliError {
    CliError::new(e.to_string(), 2)
}

impl App {
    pub(crate) fn service(&self, s: &str) -> Result<ServiceAddress, CliError> {
        ServiceAddress::parse(s, &self.defaults).map_err(input)
    }

    pub(crate) fn service_path(&self, s: &str) -> Result<String, CliError> {
        let a = self.service(s)?;
        let [w, p, e, s] = a.segments();
        Ok(format!(
            "/v1/workspaces/{w}/projects/{p}/environments/{e}/services/{s}"
        ))
    }

    pub(crate) fn project_path(&self, s: &str) -> Result<String, CliError> {
        let a = ProjectAddress::parse(s, &self.defaults).map_err(input)?;
        let [w, p] = a.segments();
        Ok(format!("/v1/workspaces/{w}/projects/{p}"))
    }

    pub(crate) fn env_path(&self, s: &str) -> Result<String, CliError> {
        let a = EnvironmentAddress::parse(s, &self.defaults)
            .or_else(|_| {
                ProjectAddress::parse(s, &self.defaults)
                    .and_then(|p| p.environment(&self.defaults.environment))
            })
            .map_err(input)?;
        let [w, p, e] = a.segments();
        Ok(format!("/v1/workspaces/{w}/projects/{p}/environments/{e}"))
    }

    pub(crate) fn ws_path(&self) -> String {
        format!("/v1/workspaces/{}", self.defaults.workspace)
    }

    /// Print `value`: as JSON with `--json`, else as `human` renders it.
    #[allow(clippy::print_stdout)]
    pub(crate) fn show<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            println!("{}", pretty_json(value));
        } else {
            println!("{}", human(value));
        }
    }

    /// Follow a deployment's events; Ok(true) when it ended ACTIVE.
    #[allow(clippy::print_stdout)]
    pub(crate) async fn follow(&self, service_path: &str, number: u64) -> Result<bool, CliError> {
        let mut last: Option<DeploymentStatus> = None;
        let json = self.json;
        let path = format!("{service_path}/deployments/{number}/events");
        // A transition can arrive both in the first status's history and as an event (the
        // daemon subscribes before it reads the status); a status never repeats one, so each
        // (from, to) is printed once.
        let mut printed = HashSet::<(Option<DeploymentStatus>, DeploymentStatus)>::new();
        let mut transition = |change: &StatusChange| {
            let first = printed.insert((change.from, change.to));
            if let (false, true, Some(from)) = (json, first, change.from) {
                let reason = change
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                println!("#{number} {from} → {}{reason}", change.to);
            }
        };
        self.client
            .sse(&path, |name, data| {
                if json {
                    println!("{}", raw_event(name, data));
                }
                match name {
                    "status" => {
                        let d: DeploymentView = self.client.event(&path, name, data)?;
                        // What happened before we connected, so the output never depends on
                        // timing.
                        d.history.iter().for_each(&mut transition);
                        last = Some(d.status);
                    }
                    "transition" | "log" => {
                        let event: Event = self.client.event(&path, name, data)?;
                        match event.kind {
                            EventKind::Transition { from, to, reason } => {
                                transition(&StatusChange {
                                    at: event.at,
                                    from: Some(from),
                                    to,
                                    reason,
                                });
                                last = Some(to);
                            }
                            EventKind::Log { message } if !json => {
                                println!("#{number}   {message}");
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        let status = match last {
            Some(s) if s == DeploymentStatus::Active || s.is_terminal() => s,
            // The stream ended early (daemon restart): read the outcome.
            _ => {
                let d: DeploymentView = self
                    .client
                    .get(&format!("{service_path}/deployments/{number}"))
                    .await?;
                d.status
            }
        };
        if !json {
            println!("#{number} is {}", self.style.status(status));
        }
        Ok(status == DeploymentStatus::Active)
    }
}

/// A stream event as `--json` prints it, one line: `{"data": ..., "event": name}`, the data as
/// the daemon sent it (JSON, or a string when it is plain text). Free-form by design: the
/// event's fields pass through untouched.
pub(crate) fn raw_event(name: &str, data: &str) -> String {
    let data =
        serde_json::from_str(data).unwrap_or_else(|_| serde_json::Value::String(data.to_owned()));
    serde_json::json!({ "event": name, "data": data }).to_string()
}

/// `value` as indented JSON with its keys sorted (through a `serde_json::Value`): the
/// daemon's answer as the CLI always printed it, whatever order a type declares its fields in.
pub(crate) fn pretty_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_value(value)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default()
}

/// Percent-escape a query value (anything but unreserved characters).
pub(crate) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One line per item.
pub(crate) fn lines<T>(items: &[T], f: impl Fn(&T) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join("\n")
}

/// A unit enum's name on the wire (`developer`, `awaiting_enrollment`, `SUCCEEDED`): how the
/// CLI always printed it, from the one serde definition.
pub(crate) fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

/// A role as the CLI takes it (`owner`, `admin`, `developer`, `viewer`).
pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    Role::ALL
        .into_iter()
        .find(|r| wire_name(r).eq_ignore_ascii_case(s))
        .ok_or_else(|| format!("`{s}` is not a role: owner, admin, developer or viewer"))
}
