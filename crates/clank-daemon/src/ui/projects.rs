//! The workspace (its projects) and a project (its environments, each service a card with
//! the status of its ACTIVE and latest deployments, its image and domains).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::{DeploymentView, ServiceSpec};
use clank_core::address::{EnvironmentAddress, ProjectAddress, ServiceAddress};
use clank_core::image::ImageRef;
use clank_core::model::{Permission, Service, ServiceSource};
use maud::{Markup, html};

use super::canvas;
use super::layout::{Crumb, csrf_field, page, status_badge, time};
use super::services::service_url;
use super::session::{Posted, Signed};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard;

/// How many of a service's newest deployments a card looks through for its ACTIVE one.
const CARD_DEPLOYMENTS: usize = 10;

pub(crate) fn workspace_url(ws: &str) -> String {
    format!("/ui/workspaces/{ws}")
}

pub(crate) fn project_url(ws: &str, p: &str) -> String {
    format!("/ui/workspaces/{ws}/projects/{p}")
}

/// `GET /ui/workspaces/{ws}`: the workspace the session's token belongs to, and its projects.
pub(crate) async fn workspace(
    s: Signed,
    State(st): State<UiState>,
    Path(ws): Path<String>,
) -> UiResult<Response> {
    let p = &s.principal;
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let projects = st.app.platform.list_projects(&ws, false).await?;
    let body = html! {
        h1 { "Workspace " (p.workspace.name) }
        section aria-labelledby="workspaces" {
            h2 id="workspaces" { "Workspaces" }
            p.muted { "A token belongs to one workspace: sign in with another's token to see it." }
            ul { li { a href=(workspace_url(&ws)) { (p.workspace.name) } " " code { (ws) } } }
        }
        section aria-labelledby="projects" {
            h2 id="projects" { "Projects" }
            @if projects.is_empty() {
                p.muted { "No projects yet: " code { "clank project create <name>" } "." }
            } @else {
                ul.cards {
                    @for project in &projects {
                        li.card {
                            h3 { a href=(project_url(&ws, &project.slug)) { (project.name) } }
                            dl.facts {
                                dt { "slug" } dd { code { (project.slug) } }
                                dt { "created" } dd { (time(project.created_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let crumbs: [Crumb; 1] = [(p.workspace.name.clone(), None)];
    Ok(html_response(
        StatusCode::OK,
        page(&p.workspace.name, Some(&s), &crumbs, body),
    ))
}

/// `GET /ui/workspaces/{ws}/projects/{p}`: each environment's services as cards on a canvas,
/// where the signed-in user last put them, with the connections between them.
pub(crate) async fn project(
    s: Signed,
    State(st): State<UiState>,
    Path((ws, slug)): Path<(String, String)>,
) -> UiResult<Response> {
    project_page(&s, &st, &ws, &slug, StatusCode::OK, None).await
}

/// The new-service form of one environment as it was sent, and what the API refused in it.
#[derive(Debug, Default)]
pub(crate) struct NewServiceForm {
    env: String,
    name: String,
    slug: String,
    image: String,
    port: String,
    /// `name`, `slug`, `image`, `port` or `form` (anything else), and the API's message.
    error: Option<(&'static str, String)>,
}

async fn project_page(
    s: &Signed,
    st: &UiState,
    ws: &str,
    slug: &str,
    status: StatusCode,
    form: Option<NewServiceForm>,
) -> UiResult<Response> {
    let (ws, slug) = (ws.to_owned(), slug.to_owned());
    let p = &s.principal;
    p.in_workspace(&ws)?;
    p.require(Permission::Read)?;
    let platform = &st.app.platform;
    let addr = ProjectAddress::new(&ws, &slug)?;
    let project = platform.project(&addr).await?.value;
    let placed = platform.canvas_layout(&addr, p.user).await?;
    let save_url = format!("{}/canvas", project_url(&ws, &slug));
    let mut environments = Vec::new();
    for env in platform.list_environments(&addr).await? {
        let env_addr = EnvironmentAddress::new(&ws, &slug, &env.name)?;
        let services = platform.list_services(&env_addr).await?;
        let mut cards = Vec::new();
        let mut config = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (i, service) in services.iter().enumerate() {
            let service_addr = ServiceAddress::new(&ws, &slug, &env.name, &service.slug)?;
            let recent = platform
                .deployments(&service_addr, CARD_DEPLOYMENTS, None)
                .await?;
            config.insert(service.id, platform.resolved_config(&service_addr).await?);
            names.insert(service.id, service.name.clone());
            let at = placed
                .get(&service.id)
                .copied()
                .unwrap_or_else(|| canvas::default_position(i));
            cards.push((
                service.id,
                at,
                card(&ws, &slug, &env.name, service, &recent),
            ));
        }
        let stacks = platform.stacks(&env_addr).await?;
        let edges = canvas::edges(&services, &config, &stacks);
        let markup = (!cards.is_empty())
            .then(|| canvas::environment_canvas(s, &save_url, &cards, &edges, &names));
        environments.push((env.name, markup));
    }
    let can_create = p.role.allows(Permission::ManageServices);
    let body = html! {
        h1 { (project.name) }
        p.muted.canvas-hint {
            "Drag a card, or focus it and use the arrow keys, to arrange the canvas; "
            "the layout is kept for you alone."
        }
        @for (env, canvas) in &environments {
            section aria-labelledby={ "env-" (env) } {
                h2 id={ "env-" (env) } { "Environment " code { (env) } }
                @match canvas {
                    None => p.muted { "No services." },
                    Some(c) => (c),
                }
                @if can_create {
                    (new_service_form(s, &ws, &slug, env, form.as_ref().filter(|f| f.env == *env)))
                }
            }
        }
        p.muted.canvas-status role="status" aria-live="polite" {}
    };
    let crumbs: [Crumb; 2] = [
        (p.workspace.name.clone(), Some(workspace_url(&ws))),
        (project.name.clone(), None),
    ];
    Ok(html_response(
        status,
        page(&project.name, Some(s), &crumbs, body),
    ))
}

/// An environment's form for a new service from an image (what `POST …/services` takes, in
/// its simplest form); what the API refused is shown next to its field.
fn new_service_form(
    s: &Signed,
    ws: &str,
    p: &str,
    env: &str,
    sent: Option<&NewServiceForm>,
) -> Markup {
    let value = |f: fn(&NewServiceForm) -> &str| sent.map_or("", f).to_owned();
    let error_for = |field: &str| {
        sent.and_then(|f| f.error.as_ref())
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.clone())
    };
    let field = |name: &'static str, label: &str, value: String, required: bool, hint: &str| {
        let id = format!("new-{env}-{name}");
        let error = error_for(name);
        let error_id = format!("{id}-error");
        html! {
            label for=(id) { (label) @if !hint.is_empty() { " " span.muted { (hint) } } }
            input type="text" id=(id) name=(name) value=(value) required[required]
                autocomplete="off" spellcheck="false"
                aria-invalid=[error.as_ref().map(|_| "true")]
                aria-describedby=[error.as_ref().map(|_| error_id.clone())];
            @if let Some(m) = &error { p.error id=(error_id) role="alert" { (m) } }
        }
    };
    html! {
        details.new-service open[sent.is_some()] {
            summary { "New service in " code { (env) } }
            form method="post" action={ (project_url(ws, p)) "/environments/" (env) "/services" } {
                (csrf_field(s))
                @if let Some(m) = error_for("form") { p.error role="alert" { (m) } }
                (field("name", "Name", value(|f| &f.name), false, "(shown on the pages)"))
                (field("slug", "Slug", value(|f| &f.slug), true, "(its DNS name in the project)"))
                (field("image", "Image", value(|f| &f.image), true, "(e.g. nginx:1.27)"))
                (field("port", "Port", value(|f| &f.port), false, "(default 8080; empty for the default)"))
                div.actions { button.primary type="submit" { "Create" } span.muted { "Then deploy it from its page." } }
            }
        }
    }
}

/// `POST …/projects/{p}/environments/{e}/services`: a new service from an image, through the
/// REST handler; a refusal of the input comes back on the form, next to its field.
pub(crate) async fn create_service(
    State(st): State<UiState>,
    Path((ws, slug, env)): Path<(String, String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    let text = |k: &str| form.get(k).unwrap_or("").trim().to_owned();
    let mut sent = NewServiceForm {
        env: env.clone(),
        name: text("name"),
        slug: text("slug"),
        image: text("image"),
        port: text("port"),
        error: None,
    };
    let spec = match new_service_spec(&sent) {
        Ok(spec) => spec,
        Err((field, message)) => {
            sent.error = Some((field, message));
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return project_page(&signed, &st, &ws, &slug, status, Some(sent)).await;
        }
    };
    let principal = signed.principal.clone();
    match dashboard::create_service(&st.app, principal, &ws, &slug, &env, spec).await {
        Ok(service) => Ok(see_other(&service_url(&ws, &slug, &env, &service.slug))),
        Err(e)
            if matches!(
                e.status(),
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
            ) =>
        {
            let field = e.body().field.as_deref().unwrap_or("");
            let field = ["name", "slug", "image", "port"]
                .into_iter()
                .find(|f| field == *f || field.ends_with(&format!(".{f}")))
                .unwrap_or(if e.status() == StatusCode::CONFLICT {
                    "slug"
                } else {
                    "form"
                });
            sent.error = Some((field, e.body().message.clone()));
            project_page(&signed, &st, &ws, &slug, e.status(), Some(sent)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The form as the API's body; what cannot even be put in one is refused here, by field.
fn new_service_spec(f: &NewServiceForm) -> Result<ServiceSpec, (&'static str, String)> {
    let image = ImageRef::parse(&f.image).map_err(|e| ("image", e.message))?;
    let mut spec = ServiceSpec::new(
        f.slug.clone(),
        ServiceSource::DockerImage {
            image,
            credentials_secret: None,
        },
    );
    if !f.name.is_empty() {
        spec.name = Some(f.name.clone());
    }
    if !f.port.is_empty() {
        let port = f.port.parse::<u16>().ok().filter(|p| *p > 0).ok_or((
            "port",
            format!("port `{}` is not a number from 1 to 65535", f.port),
        ))?;
        spec.settings.port = Some(port);
    }
    Ok(spec)
}

/// What a service runs, in one line: its image, or its repository and branch.
pub(crate) fn source_line(source: &ServiceSource) -> String {
    match source {
        ServiceSource::DockerImage { image, .. } => image.to_string(),
        ServiceSource::Git {
            repo_url, branch, ..
        } => format!("{repo_url} @ {branch}"),
        ServiceSource::Template {
            template,
            version,
            image,
            ..
        } => format!("{image} (template {template} {version})"),
        #[allow(unreachable_patterns)]
        _ => "—".to_owned(),
    }
}

/// A service's card's content: name, status of the ACTIVE and the latest deployment, image, domains.
fn card(ws: &str, p: &str, e: &str, service: &Service, recent: &[DeploymentView]) -> Markup {
    let latest = recent.first();
    let active = service
        .active_deployment
        .and_then(|id| recent.iter().find(|d| d.id == id));
    let domains = service
        .endpoint
        .as_ref()
        .map(|e| e.routed_domains().to_vec())
        .unwrap_or_default();
    let image = latest
        .and_then(|d| d.image.as_ref())
        .map(ToString::to_string)
        .unwrap_or_else(|| source_line(&service.source));
    html! {
        h3 { a href=(service_url(ws, p, e, &service.slug)) { (service.name) } }
            dl.facts {
                dt { "active" }
                dd {
                    @match (active, service.active_deployment) {
                        (Some(d), _) => { (status_badge(d.number, d.status, None)) " #" (d.number) },
                        (None, Some(_)) => span.muted { "an older deployment" },
                        (None, None) => span.muted { "none" },
                    }
                    @if service.stopped_at.is_some() { " " span.muted { "(stopped)" } }
                }
                @if let Some(d) = latest.filter(|d| Some(d.id) != service.active_deployment) {
                    dt { "latest" }
                    dd { (status_badge(d.number, d.status, None)) " #" (d.number) }
                }
                dt { "image" } dd { code { (image) } }
                dt { "domains" }
                dd {
                    @if domains.is_empty() { span.muted { "none" } }
                    @for (i, d) in domains.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (d) }
                    }
                }
            }
    }
}
