//! A service's page (settings, endpoint and domains, volumes, config at each scope with where
//! each value comes from, secrets masked, the deployments timeline with Deploy, Cancel and
//! Roll back, the running service's logs), one deployment with its deploy log, the live
//! streams (status, service logs, deploy log), and the forms' actions.
//!
//! Log lines are the service's own output (an attacker's, for all we know): maud escapes them
//! on the page and the script adds followed ones as text. Every stream is the REST API's own
//! (its checks and per-token limits), bounded here in time so a forgotten tab lets go.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use clank_api::{ConfigEdit, ConfigRequest, DeploymentView, LogEntry};
use clank_core::Timestamp;
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::config::{ConfigVarView, ResolvedVarView};
use clank_core::id::UserId;
use clank_core::model::{Artifact, Endpoint, Permission, Service};
use clank_core::runtime::LogStream;
use clank_platform::{ConfigTarget, Platform, WorkloadLogLine, WorkloadSelector};
use futures_util::StreamExt;
use maud::{Markup, html};

use super::layout::{
    Crumb, commit, commit_subject, csrf_field, deployment_duration, page, settled, status_badge,
    time, trigger,
};
use super::projects::{project_url, source_line, workspace_url};
use super::session::{Posted, Signed};
use super::settings::{SettingsForm, settings_form};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard::{self, ServiceAt};
use crate::api::error::ApiError;

/// Deployments the timeline shows, newest first.
const TIMELINE: usize = 50;
/// Lines of the running service's output the page shows (and its follow stream starts with).
const TAIL: usize = 200;
/// Lines the script keeps on the page while following; the oldest go first.
const KEEP: usize = 1000;
/// How long reading the page's tail may take before the page shows none.
const TAIL_WAIT: Duration = Duration::from_secs(3);
/// The longest a followed stream lasts; the page then says a reload follows again.
const FOLLOW_FOR: Duration = Duration::from_secs(30 * 60);
/// A followed service log that has had no new line for this long is ended.
const FOLLOW_IDLE: Duration = Duration::from_secs(10 * 60);

pub(crate) fn service_url(ws: &str, p: &str, e: &str, s: &str) -> String {
    format!("/ui/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}")
}

pub(super) fn at_url(at: &ServiceAt) -> String {
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
pub(super) fn readable(s: &Signed, at: &ServiceAt) -> UiResult<ServiceAddress> {
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

/// The page's forms as they were sent, with what the API refused in one of them.
#[derive(Debug, Default)]
pub(super) struct Forms {
    pub(super) config: ConfigForm,
    pub(super) settings: SettingsForm,
}

/// A config form's refusal, shown next to its field.
#[derive(Debug, Default)]
pub(super) struct ConfigForm {
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
    service_page(&s, &st, &at, StatusCode::OK, Forms::default()).await
}

pub(super) async fn service_page(
    s: &Signed,
    st: &UiState,
    at: &ServiceAt,
    status: StatusCode,
    forms: Forms,
) -> UiResult<Response> {
    let addr = readable(s, at)?;
    let platform = &st.app.platform;
    let service = platform.service(&addr).await?.value;
    let deployments = platform.deployments(&addr, TIMELINE, None).await?;
    let resolved = platform.resolved_config(&addr).await?;
    let project_addr = ProjectAddress::new(&at.ws, &at.p)?;
    // The cascade, as the platform resolves it: workspace, the project's team (if it has
    // one), project, environment, service.
    let mut scopes = vec![(
        "workspace".to_owned(),
        ConfigTarget::Workspace(at.ws.clone()),
    )];
    if let Some(team) = platform.project(&project_addr).await?.team_id {
        let team = platform.team(&at.ws, &team.to_string()).await?;
        scopes.push((
            format!("team {}", team.slug),
            ConfigTarget::Team {
                workspace: at.ws.clone(),
                team: team.id.to_string(),
            },
        ));
    }
    scopes.extend([
        ("project".to_owned(), ConfigTarget::Project(project_addr)),
        (
            "environment".to_owned(),
            ConfigTarget::Environment(EnvironmentAddress::new(&at.ws, &at.p, &at.e)?),
        ),
        ("service".to_owned(), ConfigTarget::Service(addr.clone())),
    ]);
    let mut layers = Vec::new();
    for (name, target) in scopes {
        let vars = platform.config(&target).await?;
        layers.push((name, vars));
    }
    let deployers = deployers(platform, s, &deployments).await;
    let output = recent_output(platform, &addr).await;
    let role = s.principal.role;
    let body = html! {
        h1 { (service.name) " " span.muted { code { (service.slug) } } }
        (settings_section(&service))
        @if role.allows(Permission::ManageServices) {
            details.edit-settings open[forms.settings.is_refused()] {
                summary { "Edit settings" }
                (settings_form(s, at, &service, &forms.settings))
            }
        }
        (endpoint_section(service.endpoint.as_ref()))
        (volumes_section(&service))
        (config_section(s, at, &resolved, &layers, role.allows(Permission::ManageServices), &forms.config))
        (timeline(s, at, &deployments, &deployers, role.allows(Permission::Deploy)))
        (logs_section(at, &output))
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
    layers: &[(String, Vec<ConfigVarView>)],
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

/// The last [`TAIL`] lines of the running service's output, as the REST logs endpoint reads
/// them (the caller's read access was checked with the page), or why there are none.
async fn recent_output(
    platform: &Platform,
    addr: &ServiceAddress,
) -> Result<Vec<WorkloadLogLine>, String> {
    let read = async {
        let selector = WorkloadSelector::default();
        let lines = platform.logs(addr, &selector, false, Some(TAIL)).await?;
        let lines: Vec<_> = lines.take(TAIL).collect().await;
        lines.into_iter().collect::<clank_core::Result<Vec<_>>>()
    };
    match tokio::time::timeout(TAIL_WAIT, read).await {
        Ok(Ok(lines)) => Ok(lines),
        Ok(Err(e)) => Err(ApiError::from(e).body().message.clone()),
        Err(_) => Err(format!(
            "reading it took longer than {} s",
            TAIL_WAIT.as_secs()
        )),
    }
}

/// The running service's recent output and, with the script, new lines as they come.
fn logs_section(at: &ServiceAt, output: &Result<Vec<WorkloadLogLine>, String>) -> Markup {
    html! {
        section aria-labelledby="logs" {
            h2 id="logs" { "Logs" }
            @match output {
                Err(why) => p.muted { "No output to show: " (why) },
                Ok(lines) => {
                    p.muted.log-status id="service-log-status" role="status" {
                        @if lines.is_empty() { "No output yet." }
                        @else { "The last " (lines.len()) " lines; reload the page for newer ones." }
                    }
                    pre.log.live id="service-log" data-follow={ (at_url(at)) "/logs" }
                        data-kind="service" data-keep=(KEEP)
                        aria-describedby="service-log-status" tabindex="0" {
                        @for l in lines { (output_line(l)) }
                    }
                }
            }
        }
    }
}

/// One line of a workload's output: where it came from, then the line as text.
fn output_line(l: &WorkloadLogLine) -> Markup {
    let class = match l.line.stream {
        LogStream::Stderr => "line stderr",
        LogStream::Stdout => "line",
    };
    html! {
        span class=(class) { span.src { (l.process) "." (l.replica) " " } (l.line.line) "\n" }
    }
}

/// One line of a deploy log.
fn deploy_log_line(l: &LogEntry) -> Markup {
    html! { span.line { (l.at) "  " (l.message) "\n" } }
}

/// The form cancelling deployment `n` (only for an in-progress one, for those who may
/// deploy); `from` is where to come back to.
fn cancel_form(s: &Signed, deployment_url: &str, n: u64, from: &'static str) -> Markup {
    html! {
        form.inline method="post" action={ (deployment_url) "/cancel" } data-cancel=(n) {
            (csrf_field(s))
            input type="hidden" name="from" value=(from);
            button.danger type="submit" aria-label={ "Cancel deployment #" (n) } { "Cancel" }
        }
    }
}

/// The emails (else names) of the workspace's members by user, when a deployment shown was
/// asked for by one (a manual deploy, a rollback and a promotion record who). A failure to read them leaves the
/// deployments unattributed rather than failing the page.
async fn deployers(
    platform: &Platform,
    s: &Signed,
    deployments: &[DeploymentView],
) -> HashMap<UserId, String> {
    let wanted = deployments.iter().any(|d| d.trigger.by().is_some());
    if !wanted {
        return HashMap::new();
    }
    match platform.members(s.principal.caller()).await {
        Ok(members) => members
            .into_iter()
            .filter_map(|m| Some((m.member.user_id, m.email.or(m.name)?)))
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "the deployers' names could not be read");
            HashMap::new()
        }
    }
}

/// Who asked for deployment `d`, when its trigger records them and they are known.
fn deployer<'a>(deployers: &'a HashMap<UserId, String>, d: &DeploymentView) -> Option<&'a str> {
    deployers.get(&d.trigger.by()?).map(String::as_str)
}

fn timeline(
    s: &Signed,
    at: &ServiceAt,
    deployments: &[DeploymentView],
    deployers: &HashMap<UserId, String>,
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
                                    td { (trigger(&d.trigger, deployer(deployers, d))) }
                                    td.wide { (time(d.created_at)) }
                                    td { (deployment_duration(d, now)) }
                                    td.wide {
                                        @if let Some(c) = commit(d) { code { (c) } }
                                        @if let Some(subject) = commit_subject(d) { " " span.subject title=(subject) { (subject) } }
                                    }
                                    @if can_deploy {
                                        td {
                                            @if d.status.is_in_progress() {
                                                (cancel_form(s, &url, d.number, "service")) " "
                                            }
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
    let deployers = deployers(platform, &s, std::slice::from_ref(&d)).await;
    let url = format!("{}/deployments/{n}", at_url(&at));
    let events = format!("{url}/events");
    let live = !settled(d.status);
    let can_cancel = d.status.is_in_progress() && s.principal.role.allows(Permission::Deploy);
    let body = html! {
        h1 { "Deployment #" (n) " of " (service.name) }
        @if can_cancel { div.actions { (cancel_form(&s, &url, n, "deployment")) } }
        dl.facts {
            dt { "status" }
            dd { (status_badge(n, d.status, (!settled(d.status)).then_some(events.as_str()))) }
            @if let Some(reason) = &d.reason { dt { "reason" } dd { (reason) } }
            dt { "trigger" } dd { (trigger(&d.trigger, deployer(&deployers, &d))) }
            dt { "created" } dd { (time(d.created_at)) }
            dt { "duration" } dd { (deployment_duration(&d, Timestamp::now())) }
            @if let Artifact::Build { repo_url, git_ref, .. } = &d.artifact {
                dt { "source" } dd { code { (repo_url) " @ " (git_ref) } }
            }
            @if let Some(c) = commit(&d) {
                dt { "commit" }
                dd { code { (c) } @if let Some(subject) = commit_subject(&d) { " " (subject) } }
            }
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
            @if live {
                p.muted.log-status id="deploy-log-status" role="status" {
                    @if log.is_empty() { "Nothing logged yet." } @else { "As of loading the page." }
                }
                pre.log.live id="deploy-log" data-follow={ (url) "/log" } data-kind="deploy"
                    data-keep=(KEEP * 10) aria-describedby="deploy-log-status" tabindex="0" {
                    @for line in &log { (deploy_log_line(line)) }
                }
            } @else if log.is_empty() {
                p.muted { "Empty." }
            } @else {
                pre.log { @for line in &log { (deploy_log_line(line)) } }
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

/// `GET …/services/{s}/logs`: the REST API's followed output of the running service, for the
/// signed-in session, starting with the same tail the page shows (the script replaces the
/// page's lines with the stream's, so a line written in between is neither lost nor doubled).
pub(crate) async fn logs(
    s: Signed,
    State(st): State<UiState>,
    Path(at): Path<ServiceAt>,
) -> Response {
    let live = dashboard::follow_logs(&st.app, s.principal, &at, TAIL).await;
    bounded(live, FOLLOW_FOR, Some(FOLLOW_IDLE))
}

/// `GET …/deployments/{n}/log`: deployment `n`'s deploy log so far as `log` events, a
/// `history` event, then the REST API's event stream of the deployment (it ends once the
/// deployment settles). The stream subscribes before the log is read, so no line falls
/// between the two; a line written while both happen comes twice, and the script drops the
/// live copy of any line published before `history`'s `since`.
pub(crate) async fn deploy_log(
    s: Signed,
    State(st): State<UiState>,
    Path(at): Path<DeploymentAt>,
) -> Response {
    let (at, n) = at.split();
    let live = dashboard::follow(&st.app, s.principal.clone(), &at, n).await;
    if !live.status().is_success() {
        return live;
    }
    let since = Timestamp::now();
    let log = match dashboard::deploy_log(&st.app, s.principal, &at, n).await {
        Ok(log) => log,
        Err(e) => return e.into_response(),
    };
    let mut head = String::new();
    for entry in &log {
        head.push_str(&sse_frame("log", &serde_json::json!(entry)));
    }
    head.push_str(&sse_frame(
        "history",
        &serde_json::json!({ "since": since }),
    ));
    let (parts, body) = live.into_parts();
    let frames = futures_util::stream::once(std::future::ready(Ok(Bytes::from(head))))
        .chain(body.into_data_stream());
    bounded(
        Response::from_parts(parts, Body::from_stream(frames)),
        FOLLOW_FOR,
        None,
    )
}

/// One Server-Sent Event: its name and one line of JSON.
fn sse_frame(event: &str, data: &serde_json::Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// A successful event stream `live`, ended after `max`, or after `idle` without an event
/// (the keep-alive comments do not count), with a last `end` event saying why, so the script
/// stops rather than reconnects. A stream that ends by itself ends as it would.
fn bounded(live: Response, max: Duration, idle: Option<Duration>) -> Response {
    use tokio::time::Instant;
    if !live.status().is_success() {
        return live;
    }
    let (parts, body) = live.into_parts();
    let deadline = Instant::now() + max;
    let start = (body.into_data_stream(), Instant::now());
    let frames = futures_util::stream::unfold(Some(start), move |state| async move {
        let (mut frames, last) = state?;
        let until = idle.map_or(deadline, |idle| deadline.min(last + idle));
        match tokio::time::timeout_at(until, frames.next()).await {
            Ok(Some(Ok(frame))) => {
                let last = if frame.starts_with(b":") {
                    last
                } else {
                    Instant::now()
                };
                Some((Ok(frame), Some((frames, last))))
            }
            Ok(Some(Err(e))) => Some((Err(e), None)),
            Ok(None) => None,
            Err(_) => {
                let why = if Instant::now() >= deadline {
                    format!("stopped following after {} minutes", max.as_secs() / 60)
                } else {
                    format!(
                        "stopped following: nothing new for {} minutes",
                        idle.unwrap_or_default().as_secs() / 60
                    )
                };
                let end = sse_frame("end", &serde_json::json!({ "reason": why }));
                Some((Ok(Bytes::from(end)), None))
            }
        }
    });
    Response::from_parts(parts, Body::from_stream(frames))
}

/// `POST …/deployments/{n}/cancel`: the REST API's cancel (its role check and audit); back to
/// the page the form was on.
pub(crate) async fn cancel(
    State(st): State<UiState>,
    Path(at): Path<DeploymentAt>,
    posted: Posted,
) -> UiResult<Response> {
    let (at, n) = at.split();
    let back = match posted.form.get("from") {
        Some("deployment") => format!("{}/deployments/{n}", at_url(&at)),
        _ => format!("{}#deployments", at_url(&at)),
    };
    dashboard::cancel(&st.app, posted.signed.principal, &at, n).await?;
    Ok(see_other(&back))
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
            let config = ConfigForm {
                key,
                error: Some((field, e.body().message.clone())),
            };
            let forms = Forms {
                config,
                ..Forms::default()
            };
            service_page(&signed, &st, &at, e.status(), forms).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A refusal of what the form said (shown on the form), rather than of the caller or the
/// address (shown as a page of its own).
pub(super) fn is_bad_input(e: &ApiError) -> bool {
    matches!(
        e.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event stream's response whose body yields `frame` every `every`, forever.
    fn endless(frame: &'static str, every: Duration) -> Response {
        let frames = futures_util::stream::unfold((), move |()| async move {
            tokio::time::sleep(every).await;
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(frame)), ()))
        });
        Response::new(Body::from_stream(frames))
    }

    async fn text(r: Response) -> String {
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_of_keep_alives_only_ends_when_idle_and_says_why() {
        let started = tokio::time::Instant::now();
        let live = endless(":\n\n", Duration::from_secs(15));
        let body = text(bounded(
            live,
            Duration::from_secs(600),
            Some(Duration::from_secs(120)),
        ))
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(120));
        assert!(
            body.ends_with(
                "event: end\ndata: {\"reason\":\"stopped following: nothing new for 2 minutes\"}\n\n"
            ),
            "{body}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_ends_at_its_longest_and_keeps_every_frame_before() {
        let started = tokio::time::Instant::now();
        let live = endless("event: line\ndata: {}\n\n", Duration::from_secs(35));
        let body = text(bounded(
            live,
            Duration::from_secs(600),
            Some(Duration::from_secs(60)),
        ))
        .await;
        assert_eq!(started.elapsed(), Duration::from_secs(600));
        assert_eq!(body.matches("event: line").count(), 600 / 35, "{body}");
        assert!(
            body.contains("stopped following after 10 minutes"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_passed_on_as_it_is() {
        let refused = ApiError::forbidden("no").into_response();
        let r = bounded(refused, Duration::from_secs(1), None);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn an_output_line_is_text_with_where_it_came_from() {
        use clank_core::runtime::LogLine;
        let l = WorkloadLogLine {
            process: "web".into(),
            replica: 1,
            line: LogLine {
                stream: LogStream::Stderr,
                line: "<script>alert(1)</script>".into(),
                at: None,
            },
        };
        assert_eq!(
            output_line(&l).into_string(),
            "<span class=\"line stderr\"><span class=\"src\">web.1 </span>\
             &lt;script&gt;alert(1)&lt;/script&gt;\n</span>"
        );
    }
}
