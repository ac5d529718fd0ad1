//! The state every command shares (`App`: client, output mode, address defaults), turning
//! addresses into API paths, printing human or JSON output, and following a deployment.

use clank_core::address::{AddressDefaults, EnvironmentAddress, ProjectAddress, ServiceAddress};
use serde_json::{Value, json};

use crate::client::{CliError, Client};

/// What every command works with: the daemon's client, the output mode, and the address
/// defaults (the context's workspace, environment `production`).
pub(crate) struct App {
    pub(crate) client: Client,
    pub(crate) json: bool,
    pub(crate) defaults: AddressDefaults,
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

    #[allow(clippy::print_stdout)]
    pub(crate) fn show(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", human(value));
        }
    }

    /// Follow a deployment's events; Ok(true) when it ended ACTIVE.
    #[allow(clippy::print_stdout)]
    pub(crate) async fn follow(&self, service_path: &str, number: u64) -> Result<bool, CliError> {
        let mut last = String::new();
        let json = self.json;
        // A transition can arrive both in the first status's history and as an event (the
        // daemon subscribes before it reads the status); a status never repeats one, so each
        // (from, to) is printed once.
        let mut printed = std::collections::HashSet::<(String, String)>::new();
        self.client
            .sse(
                &format!("{service_path}/deployments/{number}/events"),
                |name, data| {
                    if json {
                        println!("{}", json!({ "event": name, "data": data }));
                    }
                    match name {
                        "status" => {
                            // What happened before we connected, so the output never depends on timing.
                            for h in data["history"].as_array().into_iter().flatten() {
                                if let (Some(from), Some(to)) =
                                    (h["from"].as_str(), h["to"].as_str())
                                {
                                    let reason = h["reason"]
                                        .as_str()
                                        .map(|r| format!(": {r}"))
                                        .unwrap_or_default();
                                    let first = printed.insert((from.to_owned(), to.to_owned()));
                                    if !json && first {
                                        println!("#{number} {from} → {to}{reason}");
                                    }
                                }
                            }
                            last = data["status"].as_str().unwrap_or_default().to_owned();
                        }
                        "transition" => {
                            let (from, to) = (
                                data["from"].as_str().unwrap_or("?"),
                                data["to"].as_str().unwrap_or("?"),
                            );
                            let reason = data["reason"]
                                .as_str()
                                .map(|r| format!(": {r}"))
                                .unwrap_or_default();
                            let first = printed.insert((from.to_owned(), to.to_owned()));
                            if !json && first {
                                println!("#{number} {from} → {to}{reason}");
                            }
                            last = to.to_owned();
                        }
                        "log" if !json => println!(
                            "#{number}   {}",
                            data["message"].as_str().unwrap_or_default()
                        ),
                        _ => {}
                    }
                },
            )
            .await?;
        if last.is_empty()
            || !matches!(
                last.as_str(),
                "ACTIVE" | "FAILED" | "CANCELLED" | "SUPERSEDED"
            )
        {
            // The stream ended early (daemon restart): read the outcome.
            let d: Value = self
                .client
                .get(&format!("{service_path}/deployments/{number}"))
                .await?;
            last = d["status"].as_str().unwrap_or_default().to_owned();
        }
        if !json {
            println!("#{number} is {last}");
        }
        Ok(last == "ACTIVE")
    }
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

pub(crate) fn lines(v: &Value, f: impl Fn(&Value) -> String) -> String {
    v.as_array()
        .map(|a| a.iter().map(f).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}
