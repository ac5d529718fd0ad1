//! A service's page (settings, endpoint and domains, volumes, config at each scope with where
//! each value comes from, secrets masked, the deployments timeline with Deploy and Roll back),
//! one deployment with its deploy log, the live status stream, and the forms' actions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::{ConfigEdit, ConfigRequest, DeploymentView};
use clank_core::Timestamp;
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::config::{ConfigVarView, ResolvedVarView};
use clank_core::model::{Endpoint, Permission, Service};
use clank_platform::ConfigTarget;
use maud::{Markup, html};

use super::layout::{
    Crumb, commit, csrf_field, deployment_duration, page, settled, status_badge, time, trigger,
};
use super::projects::{project_url, source_line, workspace_url};
use super::session::{Posted, Signed};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard::{self, ServiceAt};
use crate::api::error::ApiError;

/// Deployments the timeline shows, newest first.
const TIMELINE: usize = 50;

pub(crate) fn service_url(ws: &str, p: &str, e: &str, s: &str) -> String {
    format!("/ui/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}")
}

fn at_url(at: &ServiceAt) -> String {
    service_url(&at.ws, &at.p, &at.e, &at.s)
}

/// The numbered deployment's path parameters.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DeploymentAt {
    ws: String,
    p: String,
    e: String,
    s: String,
    n: u64,
}

impl DeploymentAt {
    fn split(self) -> (ServiceAt, u64) {
        let at = ServiceAt {
            ws: self.ws,
            p: self.p,
            e: self.e,
            s: self.s,
        };
        (at, self.n)
    }
}

/// The service, once the caller may read it (workspace first, then the role: as the API).
fn readable(s: &Signed, at: &ServiceAt) -> UiResult<ServiceAddress> {
    s.principal.in_workspace(&at.ws)?;
    s.principal.require(Permission::Read)?;
    Ok(ServiceAddress::new(&at.ws, &at.p, &at.e, &at.s)?)
}

fn crumbs(s: &Signed, at: &ServiceAt, service: &str, last: Option<String>) -> Vec<Crumb> {
    let mut crumbs = vec![
        (
            s.principal.workspace.name.clone(),
            Some(workspace_url(&at.ws)),
        ),
        (at.p.clone(), Some(project_url(&at.ws, &at.p))),
        (
            at.e.clone(),
            Some(format!("{}#env-{}", project_url(&at.ws, &at.p), at.e)),
        ),
    ];
    match last {
        Some(last) => {
            crumbs.push((service.to_owned(), Some(at_url(at))));
            crumbs.push((last, None));
        }
        None => crumbs.push((service.to_owned(), None)),
    }
    crumbs
}

/// A config form's refusal, shown next to its field.
#[derive(Debug, Default)]
struct ConfigForm {
    key: String,
    /// `key` or `value`, and the API's message.
    error: Option<(&'static str, String)>,
}

/// `GET …/services/{s}`.
pub(crate) async fn service(
    s: Signed,
    State(st): State<UiState>,
    Path(at): Path<ServiceAt>,
) -> UiResult<Response> {
    service_page(&s, &st, &at, StatusCode::OK, ConfigForm::default()).await
}

async fn service_page(
    s: &Signed,
    st: &UiState,
    at: &ServiceAt,
    status: StatusCode,
    form: ConfigForm,
) -> UiResult<Response> {
    let addr = readable(s, at)?;
    let platform = &st.app.platform;
    let service = platform.service(&addr).await?.value;
    let deployments = platform.deployments(&addr, TIMELINE, None).await?;
    let resolved = platform.resolved_config(&addr).await?;
    let scopes = [
        ("workspace", ConfigTarget::Workspace(at.ws.clone())),
        (
            "project",
            ConfigTarget::Project(ProjectAddress::new(&at.ws, &at.p)?),
        ),
        (
            "environment",
            ConfigTarget::Environment(EnvironmentAddress::new(&at.ws, &at.p, &at.e)?),
        ),
        ("service", ConfigTarget::Service(addr.clone())),
    ];
    let mut layers = Vec::new();
    for (name, target) in scopes {
        layers.push((name, platform.config(&target).await?));
    }
    let role = s.principal.role;
    let body = html! {
        h1 { (service.name) " " span.muted { code { (service.slug) } } }
        (settings_section(&service))
        (endpoint_section(service.endpoint.as_ref()))
        (volumes_section(&service))
        (config_section(s, at, &resolved, &layers, role.allows(Permission::ManageServices), &form))
        (timeline(s, at, &deployments, role.allows(Permission::Deploy)))
    };
    Ok(html_response(
        status,
        page(
            &service.name,
            Some(s),
            &crumbs(s, at, &service.name, None),
            body,
        ),
    ))
}

fn settings_section(service: &Service) -> Markup {
    let st = &service.settings;
    html! {
        section aria-labelledby="settings" {
            h2 id="settings" { "Settings" }
            dl.facts {
                dt { "source" } dd { code { (source_line(&service.source)) } }
                dt { "port" }
                dd { @match st.port { Some(p) => (p), None => span.muted { "none (worker)" } } }
                dt { "health check" }
                dd {
                    @if st.health_check_path.is_empty() { span.muted { "no HTTP check" } }
                    @else { code { (st.health_check_path) } }
                    " every " (st.health_check_interval_s) " s, " (st.health_check_retries) " retries"
                }
                dt { "deploy timeout" } dd { (st.deploy_timeout_s) " s" }
                dt { "build timeout" } dd { (st.build_timeout_s) " s" }
                dt { "CPU limit" } dd { (st.cpu_limit) }
                dt { "memory limit" } dd { (st.memory_limit_mb) " MB" }
                dt { "auto deploy" } dd { (if st.auto_deploy { "on" } else { "off" }) }
                dt { "processes" }
                dd {
                    @for (name, spec) in &service.processes {
                        div {
                            code { (name) } " × " (spec.replicas)
                            @if let Some(cmd) = &spec.command { " " code { (cmd.join(" ")) } }
                        }
                    }
                }
                @if service.stopped_at.is_some() {
                    dt { "state" } dd { "stopped" }
                }
            }
        }
    }
}

fn endpoint_section(endpoint: Option<&Endpoint>) -> Markup {
    html! {
        section aria-labelledby="endpoint" {
            h2 id="endpoint" { "Endpoint and domains" }
            @match endpoint {
                None => p.muted { "No endpoint: the service is reached inside its project only." },
                Some(e) => dl.facts {
                    dt { "mode" } dd { code { (format!("{:?}", e.mode())) } }
                    @match e {
                        Endpoint::PublicDirect { domains, .. } | Endpoint::LanOnly { domains } => {
                            dt { "domains" }
                            dd { @for d in domains { div { code { (d) } } } }
                        }
                        Endpoint::ByoProxy { host_ip, host_port } => {
                            dt { "published on" } dd { code { (host_ip) ":" (host_port) } }
                        }
                        Endpoint::TailscaleHttps { https_port } => {
                            dt { "tailnet HTTPS port" } dd { (https_port) }
                        }
                        Endpoint::CloudflareTunnel { hostname, .. } => {
                            dt { "hostname" } dd { code { (hostname) } }
                        }
                    }
                },
            }
        }
    }
}

fn volumes_section(service: &Service) -> Markup {
    html! {
        section aria-labelledby="volumes" {
            h2 id="volumes" { "Volumes" }
            @if service.volumes.is_empty() {
                p.muted { "None." }
            } @else {
                div.table {
                    table {
                        thead { tr { th scope="col" { "name" } th scope="col" { "mounted at" } th scope="col" { "shared" } } }
                        tbody {
                            @for v in &service.volumes {
                                tr {
                                    td { code { (v.name) } }
                                    td { code { (v.mount_path) } }
                                    td { (if v.shared { "yes" } else { "no" }) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The resolved config (what a deploy gets now, and from which scope), each scope's own
/// variables, and, for those who may change it, a form setting one at the service's scope.
/// Values come from the platform's masked views: a secret is `********` here too.
fn config_section(
    s: &Signed,
    at: &ServiceAt,
    resolved: &[ResolvedVarView],
    layers: &[(&str, Vec<ConfigVarView>)],
    can_change: bool,
    form: &ConfigForm,
) -> Markup {
    let error_for = |field: &str| {
        form.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.clone())
    };
    let (key_error, value_error) = (error_for("key"), error_for("value"));
    html! {
        section aria-labelledby="config" {
            h2 id="config" { "Config" }
            @if resolved.is_empty() {
                p.muted { "No variables." }
            } @else {
                div.table {
                    table {
                        caption.muted { "What the next deployment gets, and where each value comes from" }
                        thead { tr {
                            th scope="col" { "key" } th scope="col" { "value" }
                            th scope="col" { "from" } th.wide scope="col" { "overrides" }
                        } }
                        tbody {
                            @for v in resolved {
                                tr {
                                    td { code { (v.key) } }
                                    td { code { (v.value) } @if v.secret { " " span.muted { "(secret)" } } }
                                    td { (v.source.level()) }
                                    td.wide {
                                        @for (i, o) in v.overridden.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            (o.level())
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for (scope, vars) in layers {
                details {
                    summary { "Set at the " (scope) " scope (" (vars.len()) ")" }
                    @if vars.is_empty() { p.muted { "None." } }
                    @else {
                        dl.facts {
                            @for v in vars {
                                dt { code { (v.key) } }
                                dd { code { (v.value) } @if v.secret { " " span.muted { "(secret)" } } }
                            }
                        }
                    }
                }
            }
            @if can_change {
                form method="post" action={ (at_url(at)) "/config" } {
                    (csrf_field(s))
                    h3 { "Set a variable on this service" }
                    label for="config-key" { "Key" }
                    input type="text" id="config-key" name="key" value=(form.key) required
                        autocomplete="off" spellcheck="false"
                        aria-invalid=[key_error.as_ref().map(|_| "true")]
                        aria-describedby=[key_error.as_ref().map(|_| "config-key-error")];
                    @if let Some(m) = &key_error { p.error id="config-key-error" role="alert" { (m) } }
                    label for="config-value" { "Value" }
                    input type="text" id="config-value" name="value" autocomplete="off"
                        spellcheck="false"
                        aria-invalid=[value_error.as_ref().map(|_| "true")]
                        aria-describedby=[value_error.as_ref().map(|_| "config-value-error")];
                    @if let Some(m) = &value_error { p.error id="config-value-error" role="alert" { (m) } }
                    label.check { input type="checkbox" name="secret" value="on"; "Secret (stored sealed, shown as ********)" }
                    div.actions { button type="submit" { "Save" } span.muted { "Takes effect at the next deploy." } }
                }
            }
        }
    }
}

fn timeline(
    s: &Signed,
    at: &ServiceAt,
    deployments: &[DeploymentView],
    can_deploy: bool,
) -> Markup {
    let now = Timestamp::now();
    let base = at_url(at);
    html! {
        section aria-labelledby="deployments" {
            h2 id="deployments" { "Deployments" }
            @if can_deploy {
                form.actions method="post" action={ (base) "/deployments" } {
                    (csrf_field(s))
                    button.primary type="submit" { "Deploy" }
                }
            }
            @if deployments.is_empty() {
                p.muted { "Not deployed yet." }
            } @else {
                div.table {
                    table {
                        thead { tr {
                            th scope="col" { "#" } th scope="col" { "status" } th scope="col" { "trigger" }
                            th.wide scope="col" { "created" } th scope="col" { "duration" }
                            th.wide scope="col" { "commit" }
                            @if can_deploy { th scope="col" { span.muted { "actions" } } }
                        } }
                        tbody {
                            @for d in deployments {
                                @let url = format!("{base}/deployments/{}", d.number);
                                @let events = format!("{url}/events");
                                tr {
                                    td { a href=(url) { "#" (d.number) } }
                                    td { (status_badge(d.number, d.status, (!settled(d.status)).then_some(events.as_str()))) }
                                    td { (trigger(&d.trigger)) }
                                    td.wide { (time(d.created_at)) }
                                    td { (deployment_duration(d, now)) }
                                    td.wide { @if let Some(c) = commit(d) { code { (c) } } }
                                    @if can_deploy {
                                        td {
                                            form.inline method="post" action={ (url) "/rollback" } {
                                                (csrf_field(s))
                                                button type="submit" aria-label={ "Roll back to deployment #" (d.number) } { "Roll back" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET …/deployments/{n}`: one deployment and its deploy log.
pub(crate) async fn deployment(
    s: Signed,
    State(st): State<UiState>,
    Path(at): Path<DeploymentAt>,
) -> UiResult<Response> {
    let (at, n) = at.split();
    let addr = readable(&s, &at)?;
    let platform = &st.app.platform;
    let service = platform.service(&addr).await?.value;
    let d = platform.deployment(&addr, n).await?;
    let log = platform.deploy_log(&addr, n).await?;
    let url = format!("{}/deployments/{n}", at_url(&at));
    let events = format!("{url}/events");
    let body = html! {
        h1 { "Deployment #" (n) " of " (service.name) }
        dl.facts {
            dt { "status" }
            dd { (status_badge(n, d.status, (!settled(d.status)).then_some(events.as_str()))) }
            @if let Some(reason) = &d.reason { dt { "reason" } dd { (reason) } }
            dt { "trigger" } dd { (trigger(&d.trigger)) }
            dt { "created" } dd { (time(d.created_at)) }
            dt { "duration" } dd { (deployment_duration(&d, Timestamp::now())) }
            @if let Some(c) = commit(&d) { dt { "commit" } dd { code { (c) } } }
            @if let Some(image) = &d.image { dt { "image" } dd { code { (image) } } }
        }
        section aria-labelledby="history" {
            h2 id="history" { "History" }
            ol {
                @for h in &d.history {
                    li {
                        (time(h.at)) " " code { (h.to.as_str()) }
                        @if let Some(r) = &h.reason { " — " (r) }
                    }
                }
            }
        }
        section aria-labelledby="log" {
            h2 id="log" { "Deploy log" }
            @if log.is_empty() { p.muted { "Empty." } }
            @else {
                pre.log { @for line in &log { (line.at) "  " (line.message) "\n" } }
            }
        }
    };
    let crumbs = crumbs(&s, &at, &service.name, Some(format!("#{n}")));
    Ok(html_response(
        StatusCode::OK,
        page(
            &format!("#{n} of {}", service.name),
            Some(&s),
            &crumbs,
            body,
        ),
    ))
}

/// `GET …/deployments/{n}/events`: the REST API's event stream of the deployment, for the
/// signed-in session (the page's script keeps the status cell current with it).
pub(crate) async fn events(
    s: Signed,
    State(st): State<UiState>,
    Path(at): Path<DeploymentAt>,
) -> Response {
    let (at, n) = at.split();
    dashboard::follow(&st.app, s.principal, &at, n).await
}

/// `POST …/deployments`: a manual deploy; back to the timeline, where it shows live.
pub(crate) async fn deploy(
    State(st): State<UiState>,
    Path(at): Path<ServiceAt>,
    posted: Posted,
) -> UiResult<Response> {
    dashboard::deploy(&st.app, posted.signed.principal, &at).await?;
    Ok(see_other(&format!("{}#deployments", at_url(&at))))
}

/// `POST …/deployments/{n}/rollback`: a new deployment of deployment `n`'s version.
pub(crate) async fn rollback(
    State(st): State<UiState>,
    Path(at): Path<DeploymentAt>,
    posted: Posted,
) -> UiResult<Response> {
    let (at, n) = at.split();
    dashboard::rollback(&st.app, posted.signed.principal, &at, n).await?;
    Ok(see_other(&format!("{}#deployments", at_url(&at))))
}

/// `POST …/config`: one variable set at the service's scope. The API's refusal of bad input
/// is shown next to its field, with the API's status.
pub(crate) async fn set_config(
    State(st): State<UiState>,
    Path(at): Path<ServiceAt>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    let key = form.get("key").unwrap_or("").trim().to_owned();
    let value = form.get("value").unwrap_or("").to_owned();
    let edit = if form.get("secret").is_some() {
        ConfigEdit::set_secret(key.clone(), value)
    } else {
        ConfigEdit::set(key.clone(), value)
    };
    let request = ConfigRequest {
        changes: vec![edit],
    };
    match dashboard::set_service_config(&st.app, &signed.principal, &at, request).await {
        Ok(_) => Ok(see_other(&format!("{}#config", at_url(&at)))),
        Err(e) if is_bad_input(&e) => {
            let field = if e
                .body()
                .field
                .as_deref()
                .is_some_and(|f| f.ends_with("value"))
            {
                "value"
            } else {
                "key"
            };
            let form = ConfigForm {
                key,
                error: Some((field, e.body().message.clone())),
            };
            service_page(&signed, &st, &at, e.status(), form).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A refusal of what the form said (shown on the form), rather than of the caller or the
/// address (shown as a page of its own).
fn is_bad_input(e: &ApiError) -> bool {
    matches!(
        e.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
    )
}
