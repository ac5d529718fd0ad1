//! The service page's settings form: every setting with its documented default beside it, and
//! the replicas of each declared process. It is sent as one `ServicePatch` (the whole
//! settings, the processes with their new replica counts) through the REST handler of
//! `PATCH …/services/{s}` — its role check, validation and `service.update` audit event — and
//! applies from the next deploy, as the API's does. A value that is not a number, or that the
//! API refuses, is shown next to its field and changes nothing.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::ServicePatch;
use clank_core::model::{Permission, Service, ServiceSettings};
use maud::{Markup, html};

use super::layout::csrf_field;
use super::services::{Forms, at_url, is_bad_input, readable, service_page};
use super::session::{Posted, Signed};
use super::{UiResult, UiState, see_other};
use crate::api::dashboard::{self, ServiceAt};

/// The numeric and text settings, in form order: name, label.
const FIELDS: [(&str, &str); 8] = [
    ("port", "Port"),
    ("health_check_path", "Health check path"),
    ("health_check_interval_s", "Health check interval (s)"),
    ("health_check_retries", "Health check retries"),
    ("deploy_timeout_s", "Deploy timeout (s)"),
    ("build_timeout_s", "Build timeout (s)"),
    ("cpu_limit", "CPU limit (cores)"),
    ("memory_limit_mb", "Memory limit (MB)"),
];

/// The two switches: name, label.
const SWITCHES: [(&str, &str); 2] = [
    ("auto_deploy", "Deploy on every push"),
    ("is_public", "Route its domains through the proxy"),
];

/// The form as it was sent, and what was refused in it.
#[derive(Debug, Default)]
pub(crate) struct SettingsForm {
    /// The values sent, by field name (`replicas.<process>` for replicas).
    sent: BTreeMap<String, String>,
    /// The field refused and why.
    error: Option<(String, String)>,
}

/// A setting's value as the form shows it.
fn shown(settings: &ServiceSettings, field: &str) -> String {
    match field {
        "port" => settings.port.map(|p| p.to_string()).unwrap_or_default(),
        "health_check_path" => settings.health_check_path.clone(),
        "health_check_interval_s" => settings.health_check_interval_s.to_string(),
        "health_check_retries" => settings.health_check_retries.to_string(),
        "deploy_timeout_s" => settings.deploy_timeout_s.to_string(),
        "build_timeout_s" => settings.build_timeout_s.to_string(),
        "cpu_limit" => settings.cpu_limit.to_string(),
        "memory_limit_mb" => settings.memory_limit_mb.to_string(),
        _ => String::new(),
    }
}

/// What the documentation says a field defaults to, for the hint beside it.
fn default_hint(field: &str) -> String {
    let defaults = ServiceSettings::default();
    match field {
        "port" => format!("default {}; empty for a worker", shown(&defaults, field)),
        "health_check_path" => format!("default {}; empty: no HTTP check", shown(&defaults, field)),
        other => format!("default {}", shown(&defaults, other)),
    }
}

/// The settings section of the service page: facts for everyone, a form for those who may
/// manage services.
pub(crate) fn settings_form(
    s: &Signed,
    at: &ServiceAt,
    service: &Service,
    form: &SettingsForm,
) -> Markup {
    let value = |field: &str, current: String| form.sent.get(field).cloned().unwrap_or(current);
    let error_for = |field: &str| {
        form.error
            .as_ref()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.clone())
    };
    let st = &service.settings;
    html! {
        form.settings method="post" action={ (at_url(at)) "/settings" } {
            (csrf_field(s))
            @if let Some(message) = error_for("form") { p.error role="alert" { (message) } }
            @for (name, label) in FIELDS {
                @let id = format!("settings-{name}");
                @let error = error_for(name);
                div.field {
                    label for=(id) { (label) " " span.muted { (default_hint(name)) } }
                    input type="text" id=(id) name=(name) value=(value(name, shown(st, name)))
                        aria-invalid=[error.as_ref().map(|_| "true")]
                        aria-describedby=[error.as_ref().map(|_| format!("{id}-error"))];
                    @if let Some(message) = error {
                        p.error id={ (id) "-error" } { (message) }
                    }
                }
            }
            @for (name, label) in SWITCHES {
                @let id = format!("settings-{name}");
                @let on = match form.sent.is_empty() {
                    true => if name == "auto_deploy" { st.auto_deploy } else { st.is_public },
                    false => form.sent.contains_key(name),
                };
                div.field {
                    input type="checkbox" id=(id) name=(name) value="on" checked[on];
                    " " label for=(id) { (label) " " span.muted { "default on" } }
                }
            }
            @for (process, spec) in &service.processes {
                @let name = format!("replicas.{process}");
                @let id = format!("settings-replicas-{process}");
                @let error = error_for(&name);
                div.field {
                    label for=(id) { "Replicas of " code { (process) } " " span.muted { "default 1" } }
                    input type="text" inputmode="numeric" id=(id) name=(name)
                        value=(value(&name, spec.replicas.to_string()))
                        aria-invalid=[error.as_ref().map(|_| "true")];
                    @if let Some(message) = error { p.error { (message) } }
                }
            }
            @if service.processes.is_empty() {
                p.muted { "One process, " code { "web" } ", one replica (declare processes with the API or "
                    code { "clank service update" } " to scale)." }
            }
            button type="submit" { "Update settings" }
            " " span.muted { "Applies from the next deploy." }
        }
    }
}

/// `POST …/services/{s}/settings`: the form as a `ServicePatch`, through the REST handler.
pub(crate) async fn save(
    State(st): State<UiState>,
    Path(at): Path<ServiceAt>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    if !signed.principal.role.allows(Permission::ManageServices) {
        // Refused (and audited as denied) by the REST handler itself, before the form is read.
        dashboard::update_service(&st.app, &signed.principal, &at, ServicePatch::default()).await?;
    }
    let mut sent = BTreeMap::new();
    for (name, _) in FIELDS {
        sent.insert(
            name.to_owned(),
            form.get(name).unwrap_or("").trim().to_owned(),
        );
    }
    for (name, _) in SWITCHES {
        if form.get(name).is_some() {
            sent.insert(name.to_owned(), "on".to_owned());
        }
    }
    // Read as the page reads it: another workspace's service is refused before anything.
    let service = st
        .app
        .platform
        .service(&readable(&signed, &at)?)
        .await?
        .value;
    for process in service.processes.keys() {
        let name = format!("replicas.{process}");
        let v = form.get(&name).unwrap_or("").trim().to_owned();
        sent.insert(name, v);
    }
    let refused = |field: &str, message: String, status: StatusCode| {
        SettingsForm {
            sent: sent.clone(),
            error: Some((field.to_owned(), message)),
        }
        .into_page(status)
    };
    let patch = match patch_from(&service, &sent) {
        Ok(patch) => patch,
        Err((field, message)) => {
            let form = refused(&field, message, StatusCode::UNPROCESSABLE_ENTITY);
            return service_page(&signed, &st, &at, form.0, form.1).await;
        }
    };
    match dashboard::update_service(&st.app, &signed.principal, &at, patch).await {
        Ok(_) => Ok(see_other(&format!("{}#settings", at_url(&at)))),
        Err(e) if is_bad_input(&e) => {
            // The API names `settings.port` or `processes.web.replicas`: the form's field.
            let field = e
                .body()
                .field
                .as_deref()
                .map(form_field)
                .unwrap_or_else(|| "form".to_owned());
            let form = refused(&field, e.body().message.clone(), e.status());
            service_page(&signed, &st, &at, form.0, form.1).await
        }
        Err(e) => Err(e.into()),
    }
}

impl SettingsForm {
    /// Whether the API (or the form's own check) refused what was sent.
    pub(crate) fn is_refused(&self) -> bool {
        self.error.is_some()
    }

    /// The service page's forms with this one refused, and the page's status.
    fn into_page(self, status: StatusCode) -> (StatusCode, Forms) {
        (
            status,
            Forms {
                settings: self,
                ..Forms::default()
            },
        )
    }
}

/// The API's field path as the form names it.
fn form_field(api: &str) -> String {
    if let Some(rest) = api.strip_prefix("settings.") {
        return rest.to_owned();
    }
    if let Some(rest) = api.strip_prefix("processes.") {
        let process = rest.split('.').next().unwrap_or(rest);
        return format!("replicas.{process}");
    }
    "form".to_owned()
}

/// The patch the form asks for: the whole settings (what the form does not show kept as it
/// is) and the processes with their new replicas; a value that is not a number is refused by
/// its field.
fn patch_from(
    service: &Service,
    sent: &BTreeMap<String, String>,
) -> Result<ServicePatch, (String, String)> {
    let text = |name: &str| sent.get(name).map(String::as_str).unwrap_or("");
    fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, (String, String)> {
        text.parse().map_err(|_| {
            (
                name.to_owned(),
                format!("`{}` is not a number", text.escape_debug()),
            )
        })
    }
    let mut settings = service.settings.clone();
    settings.port = match text("port") {
        "" => None,
        t => Some(number("port", t)?),
    };
    settings.health_check_path = text("health_check_path").to_owned();
    settings.health_check_interval_s =
        number("health_check_interval_s", text("health_check_interval_s"))?;
    settings.health_check_retries = number("health_check_retries", text("health_check_retries"))?;
    settings.deploy_timeout_s = number("deploy_timeout_s", text("deploy_timeout_s"))?;
    settings.build_timeout_s = number("build_timeout_s", text("build_timeout_s"))?;
    settings.cpu_limit = number("cpu_limit", text("cpu_limit"))?;
    settings.memory_limit_mb = number("memory_limit_mb", text("memory_limit_mb"))?;
    settings.auto_deploy = sent.contains_key("auto_deploy");
    settings.is_public = sent.contains_key("is_public");
    let mut processes = service.processes.clone();
    for (process, spec) in processes.iter_mut() {
        let name = format!("replicas.{process}");
        spec.replicas = number(&name, text(&name))?;
    }
    Ok(ServicePatch {
        settings: Some(settings),
        processes: (processes != service.processes).then_some(processes),
        ..ServicePatch::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::model::{ProcessSpec, ServiceSource};

    fn service() -> Service {
        let source = ServiceSource::DockerImage {
            image: "nginx:1.27".parse().unwrap(),
            credentials_secret: None,
        };
        let (ws, p, e) = Default::default();
        let mut s = Service::new(ws, p, e, "web", source, clank_core::Timestamp(0)).unwrap();
        s.processes.insert(
            "worker".into(),
            ProcessSpec {
                command: None,
                replicas: 1,
            },
        );
        s
    }

    fn sent(s: &Service) -> BTreeMap<String, String> {
        let mut sent: BTreeMap<String, String> = FIELDS
            .iter()
            .map(|(n, _)| ((*n).to_owned(), shown(&s.settings, n)))
            .collect();
        sent.insert("auto_deploy".into(), "on".into());
        sent.insert("is_public".into(), "on".into());
        for (process, spec) in &s.processes {
            sent.insert(format!("replicas.{process}"), spec.replicas.to_string());
        }
        sent
    }

    #[test]
    fn an_unchanged_form_patches_the_settings_as_they_are_and_no_processes() {
        let s = service();
        let patch = patch_from(&s, &sent(&s)).unwrap();
        assert_eq!(patch.settings.as_ref(), Some(&s.settings));
        assert!(patch.processes.is_none());
    }

    #[test]
    fn an_empty_port_is_a_worker_and_replicas_and_switches_are_read() {
        let s = service();
        let mut form = sent(&s);
        form.insert("port".into(), String::new());
        form.insert("replicas.worker".into(), "3".into());
        form.remove("auto_deploy");
        let patch = patch_from(&s, &form).unwrap();
        let settings = patch.settings.unwrap();
        assert_eq!(settings.port, None);
        assert!(!settings.auto_deploy && settings.is_public);
        assert_eq!(patch.processes.unwrap()["worker"].replicas, 3);
    }

    #[test]
    fn a_value_that_is_not_a_number_is_refused_by_its_field_and_escaped_in_the_message() {
        let s = service();
        let mut form = sent(&s);
        form.insert("memory_limit_mb".into(), "lots\"".into());
        let (field, message) = patch_from(&s, &form).unwrap_err();
        assert_eq!(field, "memory_limit_mb");
        assert!(message.contains("is not a number"), "{message}");
    }

    #[test]
    fn the_apis_field_paths_name_the_forms_fields() {
        assert_eq!(form_field("settings.port"), "port");
        assert_eq!(form_field("processes.worker.replicas"), "replicas.worker");
        assert_eq!(form_field("name"), "form");
    }
}
