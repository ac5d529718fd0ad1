//! The workspace (its projects) and a project (its environments, each service a card with
//! the status of its ACTIVE and latest deployments, its image and domains).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::ServiceSpec;
use clank_core::address::{EnvironmentAddress, ProjectAddress};
use clank_core::image::ImageRef;
use clank_core::model::{Permission, Service, ServiceSource};
use clank_core::store::catalog::Page;
use clank_platform::{DeploymentHead, ServiceCard};
use maud::{Markup, html};

use super::canvas;
use super::layout::{Crumb, csrf_field, page, project_nav, status_badge, time, workspace_nav};
use super::services::service_url;
use super::session::{Posted, Signed};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard;

/// An environment with more services than this is shown as a compact table, not a canvas
/// of cards (a thousand cards are half a megabyte of page nobody can arrange).
const CANVAS_CARDS: usize = 100;

/// Rows per page of such a table: a page stays small and fast whatever the environment holds.
const TABLE_ROWS: usize = 100;

/// Which page of a large environment's table to show: `env`'s, after the cursor `after` (the
/// previous page's, URL-safe base64).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TablePage {
    env: Option<String>,
    after: Option<String>,
}

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
    let memberships = st.app.platform.memberships(p.user, &p.workspace).await?;
    let body = html! {
        (workspace_nav(&s, &ws, "Projects"))
        h1 { "Workspace " (p.workspace.name) }
        section aria-labelledby="workspaces" {
            h2 id="workspaces" { "Your workspaces" }
            p.muted {
                "A session is one workspace's. To open another, sign in to it with your password "
                "or with a token of that workspace."
            }
            ul {
                @for m in &memberships {
                    li {
                        @if m.current {
                            a href=(workspace_url(&m.workspace)) aria-current="page" { (m.name) }
                        } @else {
                            (m.name)
                        }
                        " " code { (m.workspace) } " " span.muted { (format!("{:?}", m.role)) }
                        @if !m.current {
                            " — " a href={ "/ui/signin?workspace=" (m.workspace) } { "sign in to it" }
                        }
                    }
                }
            }
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
    Query(table): Query<TablePage>,
) -> UiResult<Response> {
    project_page(&s, &st, &ws, &slug, StatusCode::OK, None, &table).await
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
    table: &TablePage,
) -> UiResult<Response> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let after = match &table.after {
        None => None,
        Some(c) => Some(
            b64.decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    clank_core::InvalidInput::new("after", "cursor", "not a page cursor")
                })?,
        ),
    };
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
        // Every service with its deployments and config in a few batched reads (not a
        // deployments and a config query per service); a large environment a page at a time.
        let paged = table.env.as_deref() == Some(env.name.as_str()) && after.is_some();
        let first = match paged {
            true => None,
            false => Some(
                platform
                    .service_cards(&env_addr, Page::first(CANVAS_CARDS + 1), CANVAS_CARDS)
                    .await?,
            ),
        };
        let service_cards = match first {
            Some(all) if all.next.is_none() && all.cards.len() <= CANVAS_CARDS => all.cards,
            _ => {
                let rows = Page {
                    limit: Some(TABLE_ROWS),
                    after: if paged { after.clone() } else { None },
                    reverse: false,
                };
                let rows = platform.service_cards(&env_addr, rows, 0).await?;
                let next = rows.next.map(|n| {
                    format!(
                        "{}?env={}&after={}#env-{}",
                        project_url(&ws, &slug),
                        env.name,
                        b64.encode(n),
                        env.name
                    )
                });
                let first_page =
                    paged.then(|| format!("{}#env-{}", project_url(&ws, &slug), env.name));
                let table = service_table(&ws, &slug, &env.name, &rows.cards, next, first_page);
                environments.push((env.name, Some(table)));
                continue;
            }
        };
        let mut cards = Vec::with_capacity(service_cards.len());
        let mut config = BTreeMap::new();
        let mut names = BTreeMap::new();
        let mut services = Vec::with_capacity(service_cards.len());
        for (i, c) in service_cards.into_iter().enumerate() {
            let service = &c.service;
            names.insert(service.id, service.name.clone());
            let at = placed
                .get(&service.id)
                .copied()
                .unwrap_or_else(|| canvas::default_position(i));
            cards.push((
                service.id,
                at,
                card(
                    &ws,
                    &slug,
                    &env.name,
                    service,
                    c.latest.as_ref(),
                    c.active.as_ref(),
                ),
            ));
            config.insert(service.id, c.config);
            services.push(c.service);
        }
        let stacks = platform.stacks(&env_addr).await?;
        let edges = canvas::edges(&services, &config, &stacks);
        let markup = (!cards.is_empty())
            .then(|| canvas::environment_canvas(s, &save_url, &cards, &edges, &names));
        environments.push((env.name, markup));
    }
    let can_create = p.role.allows(Permission::ManageServices);
    let body = html! {
        (workspace_nav(s, &ws, ""))
        (project_nav(&ws, &slug, "Services"))
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
            return project_page(
                &signed,
                &st,
                &ws,
                &slug,
                status,
                Some(sent),
                &TablePage::default(),
            )
            .await;
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
            project_page(
                &signed,
                &st,
                &ws,
                &slug,
                e.status(),
                Some(sent),
                &TablePage::default(),
            )
            .await
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

/// A page of a large environment's services, one row each: name, ACTIVE and latest
/// deployment, image; links to the `next` page and back to the first.
fn service_table(
    ws: &str,
    p: &str,
    e: &str,
    cards: &[ServiceCard],
    next: Option<String>,
    first_page: Option<String>,
) -> Markup {
    html! {
        p.muted {
            "More than " (CANVAS_CARDS) " services: listed here " (TABLE_ROWS)
            " at a time rather than as cards on a canvas."
        }
        table.services {
            thead { tr { th { "Service" } th { "Active" } th { "Latest" } th { "Image" } } }
            tbody {
                @for c in cards {
                    @let s = &c.service;
                    tr {
                        td {
                            a href=(service_url(ws, p, e, &s.slug)) { (s.name) }
                            @if s.stopped_at.is_some() { " " span.muted { "(stopped)" } }
                        }
                        td {
                            @match (&c.active, s.active_deployment) {
                                (Some(d), _) => { (status_badge(d.number, d.status, None)) " #" (d.number) },
                                (None, Some(_)) => span.muted { "older" },
                                (None, None) => span.muted { "none" },
                            }
                        }
                        td {
                            @if let Some(d) = c.latest.as_ref().filter(|d| Some(d.id) != s.active_deployment) {
                                (status_badge(d.number, d.status, None)) " #" (d.number)
                            }
                        }
                        td {
                            code {
                                (c.latest.as_ref().and_then(|d| d.image.as_ref())
                                    .map(ToString::to_string)
                                    .unwrap_or_else(|| source_line(&s.source)))
                            }
                        }
                    }
                }
            }
        }
        @if next.is_some() || first_page.is_some() {
            nav.pages aria-label={ "Pages of " (e) } {
                @if let Some(href) = &first_page { a href=(href) { "First page" } " " }
                @if let Some(href) = &next { a href=(href) rel="next" { "Next " (TABLE_ROWS) } }
            }
        }
    }
}

/// A service's card's content: name, status of the ACTIVE and the latest deployment, image, domains.
fn card(
    ws: &str,
    p: &str,
    e: &str,
    service: &Service,
    latest: Option<&DeploymentHead>,
    active: Option<&DeploymentHead>,
) -> Markup {
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
