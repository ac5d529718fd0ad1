//! The template catalog (name, description, version) and one template in detail (the
//! services, images, volumes and variables it creates), with a form deploying it as a stack
//! into one of the workspace's environments through the REST handler (`POST …/stacks`); what
//! the API refuses is shown next to its field.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::{NewStack, TemplateView};
use clank_core::address::ProjectAddress;
use clank_core::model::Permission;
use maud::{Markup, html};

use super::layout::{Crumb, csrf_field, page, workspace_nav};
use super::projects::{project_url, workspace_url};
use super::session::{Posted, Signed};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard;
use crate::api::error::ApiError;

pub(crate) fn templates_url(ws: &str) -> String {
    format!("/ui/workspaces/{ws}/templates")
}

fn template_url(ws: &str, name: &str) -> String {
    format!("{}/{name}", templates_url(ws))
}

/// `GET /ui/workspaces/{ws}/templates`: the catalog.
pub(crate) async fn catalog(
    s: Signed,
    State(st): State<UiState>,
    Path(ws): Path<String>,
) -> UiResult<Response> {
    let p = &s.principal;
    // The catalog is the instance's, but this page is the workspace's.
    p.in_workspace(&ws)?;
    let templates = dashboard::templates(&st.app, p.clone()).await;
    let body = html! {
        (workspace_nav(&s, &ws, "Templates"))
        h1 { "Templates" }
        @if templates.is_empty() {
            p.muted { "The catalog is empty." }
        } @else {
            ul.cards {
                @for t in &templates {
                    li.card {
                        h2 { a href=(template_url(&ws, &t.name)) { (t.title) } }
                        p { (t.description) }
                        dl.facts {
                            dt { "name" } dd { code { (t.name) } }
                            dt { "version" } dd { (t.version) }
                            dt { "category" } dd { (t.category) }
                        }
                    }
                }
            }
        }
    };
    let crumbs: [Crumb; 2] = [
        (p.workspace.name.clone(), Some(workspace_url(&ws))),
        ("Templates".to_owned(), None),
    ];
    Ok(html_response(
        StatusCode::OK,
        page("Templates", Some(&s), &crumbs, body),
    ))
}

/// The deploy form as it was sent, and what the API refused in it.
#[derive(Debug, Default)]
struct StackForm {
    environment: String,
    name: String,
    domain: String,
    inputs: BTreeMap<String, String>,
    /// `environment`, `name`, `domain`, `input.<variable>` or `form`, and the API's message.
    error: Option<(String, String)>,
}

impl StackForm {
    fn error_for(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }
}

/// `GET /ui/workspaces/{ws}/templates/{name}`.
pub(crate) async fn template(
    s: Signed,
    State(st): State<UiState>,
    Path((ws, name)): Path<(String, String)>,
) -> UiResult<Response> {
    template_page(&s, &st, &ws, &name, StatusCode::OK, &StackForm::default()).await
}

async fn template_page(
    s: &Signed,
    st: &UiState,
    ws: &str,
    name: &str,
    status: StatusCode,
    form: &StackForm,
) -> UiResult<Response> {
    let p = &s.principal;
    p.in_workspace(ws)?;
    let t = dashboard::template(&st.app, p, name)?;
    let can_deploy = p.role.allows(Permission::ManageServices);
    let targets = if can_deploy {
        environments(st, ws).await?
    } else {
        Vec::new()
    };
    let body = html! {
        (workspace_nav(s, ws, "Templates"))
        h1 { (t.title) " " span.muted { (t.version) } }
        p { (t.description) }
        dl.facts {
            dt { "name" } dd { code { (t.name) } }
            dt { "category" } dd { (t.category) }
            @if let Some(w) = &t.website { dt { "website" } dd { code { (w) } } }
            @if let Some(d) = &t.docs { dt { "docs" } dd { code { (d) } } }
        }
        (creates(&t))
        @if can_deploy { (deploy_form(s, ws, &t, &targets, form)) }
    };
    let crumbs: [Crumb; 3] = [
        (p.workspace.name.clone(), Some(workspace_url(ws))),
        ("Templates".to_owned(), Some(templates_url(ws))),
        (t.title.clone(), None),
    ];
    Ok(html_response(
        status,
        page(&t.title, Some(s), &crumbs, body),
    ))
}

/// Every live environment of the workspace, as `project/environment`.
async fn environments(st: &UiState, ws: &str) -> UiResult<Vec<String>> {
    let platform = &st.app.platform;
    let mut out = Vec::new();
    for project in platform.list_projects(ws, false).await? {
        let addr = ProjectAddress::new(ws, &project.slug)?;
        for env in platform.list_environments(&addr).await? {
            out.push(format!("{}/{}", project.slug, env.name));
        }
    }
    Ok(out)
}

/// What a template creates: its services (image, port, volumes, dependencies) and variables.
fn creates(t: &TemplateView) -> Markup {
    html! {
        section aria-labelledby="creates" {
            h2 id="creates" { "What it creates" }
            div.table { table {
                caption.muted { "Services, in start order" }
                thead { tr {
                    th scope="col" { "service" } th scope="col" { "image" }
                    th.wide scope="col" { "port" } th scope="col" { "volumes" }
                    th.wide scope="col" { "after" }
                } }
                tbody {
                    @for svc in &t.services {
                        tr {
                            td {
                                code { (svc.slug) } " " span.muted { (svc.role) }
                                @if svc.routed { " " span.muted { "(gets the domain)" } }
                            }
                            td { code { (svc.image) } }
                            td.wide { @if let Some(port) = svc.port { (port) } }
                            td {
                                @for v in &svc.volumes { div { code { (v.name) } " at " code { (v.path) } } }
                            }
                            td.wide { (svc.depends_on.join(", ")) }
                        }
                    }
                }
            } }
            @if !t.variables.is_empty() {
                h3 { "Variables" }
                dl.facts {
                    @for v in &t.variables {
                        dt { code { (v.name) } }
                        dd {
                            (v.kind)
                            @if v.secret { " (stored as a secret)" }
                            @if let Some(d) = &v.description { " — " (d) }
                        }
                    }
                }
            }
        }
    }
}

fn deploy_form(
    s: &Signed,
    ws: &str,
    t: &TemplateView,
    targets: &[String],
    form: &StackForm,
) -> Markup {
    let env_error = form.error_for("environment");
    let field = |id: &str,
                 name: &str,
                 label: &str,
                 hint: &str,
                 value: &str,
                 error: Option<&str>,
                 secret: bool| {
        let error_id = format!("{id}-error");
        html! {
            label for=(id) { (label) @if !hint.is_empty() { " " span.muted { (hint) } } }
            input type=(if secret { "password" } else { "text" }) id=(id) name=(name) value=(value)
                autocomplete="off" spellcheck="false"
                aria-invalid=[error.map(|_| "true")]
                aria-describedby=[error.map(|_| error_id.clone())];
            @if let Some(m) = error { p.error id=(error_id) role="alert" { (m) } }
        }
    };
    let inputs = t.variables.iter().filter(|v| v.kind == "input");
    html! {
        section aria-labelledby="deploy" {
            h2 id="deploy" { "Deploy " (t.title) }
            @if targets.is_empty() {
                p.muted { "No environment to deploy into: create a project first." }
            } @else {
                form method="post" action={ (template_url(ws, &t.name)) "/stacks" } {
                    (csrf_field(s))
                    @if let Some(m) = form.error_for("form") { p.error role="alert" { (m) } }
                    label for="stack-environment" { "Environment" }
                    select id="stack-environment" name="environment" required
                        aria-invalid=[env_error.map(|_| "true")]
                        aria-describedby=[env_error.map(|_| "stack-environment-error")] {
                        @for target in targets {
                            option value=(target) selected[form.environment == *target] { (target) }
                        }
                    }
                    @if let Some(m) = env_error { p.error id="stack-environment-error" role="alert" { (m) } }
                    (field("stack-name", "name", "Stack name", "(a slug; empty for the template's default)",
                        &form.name, form.error_for("name"), false))
                    (field("stack-domain", "domain", "Domain", "(served with TLS; empty: not routed)",
                        &form.domain, form.error_for("domain"), false))
                    @for v in inputs {
                        @let id = format!("stack-input-{}", v.name);
                        @let hint = match (&v.description, &v.default, v.required) {
                            (_, _, true) => "(required)".to_owned(),
                            (_, Some(d), _) => format!("(default {d})"),
                            _ => String::new(),
                        };
                        (field(&id, &format!("input.{}", v.name), &v.name, &hint,
                            form.inputs.get(&v.name).map_or("", String::as_str),
                            form.error_for(&format!("input.{}", v.name)), v.secret))
                        @if let Some(d) = &v.description { p.muted { (d) } }
                    }
                    div.actions {
                        button.primary type="submit" { "Deploy" }
                        span.muted { "Creates the services, their config and generated secrets, and deploys them." }
                    }
                }
            }
        }
    }
}

/// `POST /ui/workspaces/{ws}/templates/{name}/stacks`: a stack from the template, through the
/// REST handler; what the API refuses comes back on the form, next to its field.
pub(crate) async fn deploy(
    State(st): State<UiState>,
    Path((ws, template)): Path<(String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    let text = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
    let mut sent = StackForm {
        environment: text("environment"),
        name: text("name"),
        domain: text("domain"),
        ..StackForm::default()
    };
    // Only the template's own inputs: another name in the form is not the API's business.
    let declared = dashboard::template(&st.app, &signed.principal, &template)?;
    for v in declared.variables.iter().filter(|v| v.kind == "input") {
        let value = text(&format!("input.{}", v.name));
        if !value.is_empty() {
            sent.inputs.insert(v.name.clone(), value);
        }
    }
    let Some((project, env)) = sent
        .environment
        .split_once('/')
        .map(|(p, e)| (p.to_owned(), e.to_owned()))
    else {
        // Nothing to send the API: refuse as it would a role that may not create stacks,
        // else show the form again.
        signed.principal.in_workspace(&ws)?;
        signed.principal.require(Permission::ManageServices)?;
        sent.error = Some((
            "environment".into(),
            "choose an environment (`project/environment`)".into(),
        ));
        return template_page(
            &signed,
            &st,
            &ws,
            &template,
            StatusCode::UNPROCESSABLE_ENTITY,
            &sent,
        )
        .await;
    };
    let new = NewStack {
        template: template.clone(),
        name: (!sent.name.is_empty()).then(|| sent.name.clone()),
        inputs: sent.inputs.clone(),
        images: BTreeMap::new(),
        domain: (!sent.domain.is_empty()).then(|| sent.domain.clone()),
        lan: false,
    };
    let principal = signed.principal.clone();
    match dashboard::create_stack(&st.app, principal, &ws, &project, &env, new).await {
        Ok(_) => Ok(see_other(&format!(
            "{}#env-{env}",
            project_url(&ws, &project)
        ))),
        Err(e) if is_bad_input(&e) => {
            sent.error = Some((form_field(&e), e.body().message.clone()));
            template_page(&signed, &st, &ws, &template, e.status(), &sent).await
        }
        // The environment chosen is not there (any more): the form's, not a page of its own.
        Err(e) if e.status() == StatusCode::NOT_FOUND => {
            sent.error = Some(("environment".into(), e.body().message.clone()));
            template_page(&signed, &st, &ws, &template, e.status(), &sent).await
        }
        Err(e) => Err(e.into()),
    }
}

fn is_bad_input(e: &ApiError) -> bool {
    matches!(
        e.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
    )
}

/// The form field an API refusal names: `inputs.<v>` is the form's `input.<v>`; a conflict
/// (the stack's services exist) is the name's.
fn form_field(e: &ApiError) -> String {
    match e.body().field.as_deref() {
        Some("name") => "name".into(),
        Some("domain") => "domain".into(),
        Some(f) if f.starts_with("inputs.") => format!("input.{}", &f["inputs.".len()..]),
        _ if e.status() == StatusCode::CONFLICT => "name".into(),
        _ => "form".into(),
    }
}
