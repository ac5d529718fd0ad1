//! A project's environments (kind, pull request and deadline of a preview, services, deleted
//! state), cloning one, and promotion: plan it, read the plan (image and digest, changed
//! fields, config differences with secrets masked by the platform), apply it by id. Every
//! read and change goes through the REST handlers (`api::dashboard`), so their role checks,
//! validation and audit events are this page's too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::environments::CloneEnvironment;
use clank_api::plans::{ConfigChangeKind, NewPromotion, PlanAction, ServicePlan};
use clank_core::address::EnvironmentAddress;
use clank_core::model::{Environment, EnvironmentKind, Permission};
use maud::{Markup, html};

use super::layout::{Crumb, csrf_field, page, project_nav, time};
use super::projects::{project_url, workspace_url};
use super::services::service_url;
use super::session::{Posted, Signed};
use super::{UiResult, UiState, html as html_response, see_other};
use crate::api::dashboard;
use crate::api::error::ApiError;

pub(crate) fn environments_url(ws: &str, p: &str) -> String {
    format!("{}/environments", project_url(ws, p))
}

pub(crate) fn plan_url(ws: &str, id: &str) -> String {
    format!("/ui/workspaces/{ws}/plans/{id}")
}

/// A form as it was sent and what the API refused in it, to show again with the message next
/// to its field (`form` when the refusal names none of the form's fields).
#[derive(Debug)]
enum Sent {
    Clone {
        env: String,
        name: String,
        domain_pattern: String,
        copy_config: bool,
        error: (&'static str, String),
    },
    Promote {
        source: String,
        target: String,
        error: (&'static str, String),
    },
}

impl Sent {
    fn error_for(&self, field: &str) -> Option<&str> {
        let (f, m) = match self {
            Sent::Clone { error, .. } | Sent::Promote { error, .. } => error,
        };
        (*f == field).then_some(m.as_str())
    }
}

/// One environment and how many services it holds (those deleted with it, when deleted).
struct Listed {
    env: Environment,
    services: Vec<String>,
}

/// `GET /ui/workspaces/{ws}/projects/{p}/environments`.
pub(crate) async fn environments(
    s: Signed,
    State(st): State<UiState>,
    Path((ws, slug)): Path<(String, String)>,
) -> UiResult<Response> {
    environments_page(&s, &st, &ws, &slug, StatusCode::OK, None).await
}

async fn environments_page(
    s: &Signed,
    st: &UiState,
    ws: &str,
    slug: &str,
    status: StatusCode,
    sent: Option<Sent>,
) -> UiResult<Response> {
    let p = &s.principal;
    // The REST list checks the workspace and the role first.
    let envs = dashboard::environments(&st.app, p.clone(), ws, slug).await?;
    let platform = &st.app.platform;
    let project = platform
        .project(&clank_core::address::ProjectAddress::new(ws, slug)?)
        .await?
        .value;
    let mut listed = Vec::with_capacity(envs.len());
    for env in envs {
        let addr = EnvironmentAddress::new(ws, slug, &env.name)?;
        let services = platform
            .list_services_with(&addr, env.is_deleted())
            .await?
            .into_iter()
            .map(|s| s.slug)
            .collect();
        listed.push(Listed { env, services });
    }
    let can_clone = p.role.allows(Permission::ManageProjects);
    let can_promote = p.role.allows(Permission::Deploy);
    let body = html! {
        (project_nav(ws, slug, "Environments"))
        h1 { "Environments of " (project.name) }
        ul.cards {
            @for l in &listed {
                li.card {
                    (environment_card(l))
                    @if can_clone && !l.env.is_deleted() {
                        (clone_form(s, ws, slug, &l.env.name, sent.as_ref()))
                    }
                }
            }
        }
        @if can_promote {
            (promote_form(s, ws, slug, &listed, sent.as_ref()))
        }
    };
    let crumbs: [Crumb; 3] = [
        (p.workspace.name.clone(), Some(workspace_url(ws))),
        (project.name.clone(), Some(project_url(ws, slug))),
        ("Environments".to_owned(), None),
    ];
    let title = format!("Environments of {}", project.name);
    Ok(html_response(status, page(&title, Some(s), &crumbs, body)))
}

fn environment_card(l: &Listed) -> Markup {
    let env = &l.env;
    html! {
        h2 id={ "env-" (env.name) } { code { (env.name) } }
        dl.facts {
            dt { "kind" }
            dd {
                @match &env.kind {
                    EnvironmentKind::Persistent => "persistent",
                    EnvironmentKind::Preview { pull_request, branch, .. } => {
                        "preview of pull request #" (pull_request) " (" code { (branch) } ")"
                    }
                }
            }
            @if let EnvironmentKind::Preview { expires_at, .. } = &env.kind {
                dt { "removed at" }
                dd {
                    @match expires_at {
                        Some(at) => (time(*at)),
                        None => span.muted { "when the pull request closes" },
                    }
                }
            }
            dt { "services" }
            dd {
                (l.services.len())
                @if !l.services.is_empty() {
                    " — "
                    @for (i, s) in l.services.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (s) }
                    }
                }
            }
            dt { "created" } dd { (time(env.created_at)) }
            @if let Some(at) = env.deleted_at {
                dt { "state" } dd { strong { "deleted" } " at " (time(at)) }
            }
        }
    }
}

/// A labelled text field with the API's refusal next to it.
fn text_field(
    id: &str,
    name: &str,
    label: &str,
    hint: &str,
    value: &str,
    required: bool,
    error: Option<&str>,
) -> Markup {
    let error_id = format!("{id}-error");
    html! {
        label for=(id) { (label) @if !hint.is_empty() { " " span.muted { (hint) } } }
        input type="text" id=(id) name=(name) value=(value) required[required]
            autocomplete="off" spellcheck="false"
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| error_id.clone())];
        @if let Some(m) = error { p.error id=(error_id) role="alert" { (m) } }
    }
}

fn clone_form(s: &Signed, ws: &str, p: &str, env: &str, sent: Option<&Sent>) -> Markup {
    let mine = sent.filter(|f| matches!(f, Sent::Clone { env: e, .. } if e == env));
    let (name, pattern, copy) = match mine {
        Some(Sent::Clone {
            name,
            domain_pattern,
            copy_config,
            ..
        }) => (name.as_str(), domain_pattern.as_str(), *copy_config),
        _ => ("", "", true),
    };
    let error = |field| mine.and_then(|f| f.error_for(field));
    let id = |field: &str| format!("clone-{env}-{field}");
    html! {
        details open[mine.is_some()] {
            summary { "Clone " code { (env) } }
            form method="post" action={ (environments_url(ws, p)) "/" (env) "/clone" } {
                (csrf_field(s))
                @if let Some(m) = error("form") { p.error role="alert" { (m) } }
                (text_field(&id("name"), "name", "New environment", "(a slug: qa, staging)", name, true, error("name")))
                (text_field(&id("domain_pattern"), "domain_pattern", "Domain pattern",
                    "({service}-{env}.example.com; empty: the copies get no domains)", pattern, false,
                    error("domain_pattern")))
                label.check {
                    input type="checkbox" name="copy_config" value="on" checked[copy];
                    "Copy config (secrets re-sealed for the new environment)"
                }
                div.actions {
                    button.primary type="submit" { "Clone" }
                    span.muted { "Services are copied, not deployed; volumes start empty." }
                }
            }
        }
    }
}

fn promote_form(s: &Signed, ws: &str, p: &str, listed: &[Listed], sent: Option<&Sent>) -> Markup {
    let mine = sent.filter(|f| matches!(f, Sent::Promote { .. }));
    let (source, target) = match mine {
        Some(Sent::Promote { source, target, .. }) => (source.as_str(), target.as_str()),
        _ => ("", ""),
    };
    let error = |field| mine.and_then(|f| f.error_for(field));
    let live: Vec<&Listed> = listed.iter().filter(|l| !l.env.is_deleted()).collect();
    let (source_error, target_error) = (error("source"), error("target"));
    html! {
        section aria-labelledby="promote" {
            h2 id="promote" { "Promote" }
            p.muted {
                "Plan first: the plan shows what would change (image, settings, config with secrets masked); "
                "nothing is written until you apply it."
            }
            form method="post" action={ (project_url(ws, p)) "/promotions" } {
                (csrf_field(s))
                @if let Some(m) = error("form") { p.error role="alert" { (m) } }
                label for="promote-source" { "From" }
                select id="promote-source" name="source" required
                    aria-invalid=[source_error.map(|_| "true")]
                    aria-describedby=[source_error.map(|_| "promote-source-error")] {
                    @for l in &live {
                        option value=(l.env.name) selected[source == l.env.name] {
                            "every deployed service of " (l.env.name)
                        }
                        @for svc in &l.services {
                            @let value = format!("{}/{svc}", l.env.name);
                            option value=(value) selected[source == value] { (value) }
                        }
                    }
                }
                @if let Some(m) = source_error { p.error id="promote-source-error" role="alert" { (m) } }
                label for="promote-target" { "To" }
                select id="promote-target" name="target" required
                    aria-invalid=[target_error.map(|_| "true")]
                    aria-describedby=[target_error.map(|_| "promote-target-error")] {
                    @for l in &live {
                        option value=(l.env.name) selected[target == l.env.name] { (l.env.name) }
                    }
                }
                @if let Some(m) = target_error { p.error id="promote-target-error" role="alert" { (m) } }
                div.actions { button.primary type="submit" { "Plan the promotion" } }
            }
        }
    }
}

/// A refusal of what a form said (shown on the form), rather than of the caller or the
/// address (shown as a page of its own).
fn is_bad_input(e: &ApiError) -> bool {
    matches!(
        e.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
    )
}

/// The form field a refusal names (`fields`, matched also as a path's last part), else
/// `fallback`.
fn field_of(e: &ApiError, fields: &[&'static str], fallback: &'static str) -> &'static str {
    let named = e.body().field.as_deref().unwrap_or("");
    fields
        .iter()
        .copied()
        .find(|f| named == *f || named.ends_with(&format!(".{f}")))
        .unwrap_or(fallback)
}

/// `POST …/environments/{e}/clone`: a copy of the environment, through the REST handler; a
/// refusal comes back on the form, next to its field.
pub(crate) async fn clone(
    State(st): State<UiState>,
    Path((ws, slug, env)): Path<(String, String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let domain_pattern = form.get("domain_pattern").unwrap_or("").trim().to_owned();
    let copy_config = form.get("copy_config").is_some();
    let request = CloneEnvironment {
        name: name.clone(),
        domain_pattern: (!domain_pattern.is_empty()).then(|| domain_pattern.clone()),
        copy_config,
        // Nothing else: copies are not deployed, volumes start empty (the API's defaults).
        ..CloneEnvironment::named(name.clone())
    };
    let principal = signed.principal.clone();
    match dashboard::clone_environment(&st.app, principal, &ws, &slug, &env, request).await {
        Ok(_) => Ok(see_other(&format!(
            "{}#env-{name}",
            environments_url(&ws, &slug)
        ))),
        Err(e) if is_bad_input(&e) => {
            // A taken name is a conflict that names no field: it is the name's.
            let fallback = if e.status() == StatusCode::CONFLICT {
                "name"
            } else {
                "form"
            };
            let field = field_of(&e, &["name", "domain_pattern"], fallback);
            let sent = Sent::Clone {
                env,
                name,
                domain_pattern,
                copy_config,
                error: (field, e.body().message.clone()),
            };
            environments_page(&signed, &st, &ws, &slug, e.status(), Some(sent)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST …/projects/{p}/promotions`: a stored plan of the promotion, through the REST
/// handler; then its page, where it can be applied.
pub(crate) async fn promote(
    State(st): State<UiState>,
    Path((ws, slug)): Path<(String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let Posted { signed, form } = posted;
    let source = form.get("source").unwrap_or("").trim().to_owned();
    let target = form.get("target").unwrap_or("").trim().to_owned();
    // The form names environments and services of this project; the API's addresses start
    // with the project.
    let request = NewPromotion {
        source: format!("{slug}/{source}"),
        target: target.clone(),
    };
    let principal = signed.principal.clone();
    match dashboard::plan_promotion(&st.app, principal, &ws, request).await {
        Ok(plan) => Ok(see_other(&plan_url(&ws, &plan.id))),
        Err(e) if is_bad_input(&e) => {
            let field = field_of(&e, &["source", "target"], "form");
            let sent = Sent::Promote {
                source,
                target,
                error: (field, e.body().message.clone()),
            };
            environments_page(&signed, &st, &ws, &slug, e.status(), Some(sent)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /ui/workspaces/{ws}/plans/{id}`.
pub(crate) async fn plan(
    s: Signed,
    State(st): State<UiState>,
    Path((ws, id)): Path<(String, String)>,
) -> UiResult<Response> {
    plan_page(&s, &st, &ws, &id, StatusCode::OK, None).await
}

async fn plan_page(
    s: &Signed,
    st: &UiState,
    ws: &str,
    id: &str,
    status: StatusCode,
    refused: Option<String>,
) -> UiResult<Response> {
    let p = &s.principal;
    let plan = dashboard::plan(&st.app, p.clone(), ws, id).await?;
    // `ws/p/e`: the target's project and environment, for the links back.
    let target: Vec<&str> = plan.target.split('/').collect();
    let project = match target.as_slice() {
        [_, project, _] => Some(*project),
        _ => None,
    };
    let can_apply = p.role.allows(Permission::Deploy) && plan.applied_at.is_none();
    let body = html! {
        @if let Some(project) = project { (project_nav(ws, project, "")) }
        h1 { "Promotion plan" }
        @if let Some(m) = &refused { p.banner role="alert" { (m) } }
        dl.facts {
            dt { "from" } dd { code { (plan.source) } }
            dt { "to" } dd { code { (plan.target) } }
            dt { "planned" } dd { (time(plan.created_at)) }
            dt { "state" }
            dd {
                @if let Some(at) = plan.applied_at {
                    "applied at " (time(at))
                } @else if plan.unchanged {
                    "nothing would change"
                } @else {
                    "not applied; valid until " (time(plan.expires_at))
                }
            }
            dt { "id" } dd { code { (plan.id) } }
        }
        @for service in &plan.services { (service_plan(ws, service)) }
        @if can_apply && !plan.unchanged {
            form method="post" action={ (plan_url(ws, &plan.id)) "/apply" } {
                (csrf_field(s))
                div.actions {
                    button.primary type="submit" { "Apply this plan" }
                    span.muted { "Refused if anything it read has changed since: plan again then." }
                }
            }
        }
    };
    let mut crumbs: Vec<Crumb> = vec![(p.workspace.name.clone(), Some(workspace_url(ws)))];
    if let Some(project) = project {
        crumbs.push((project.to_owned(), Some(project_url(ws, project))));
        crumbs.push((
            "Environments".to_owned(),
            Some(environments_url(ws, project)),
        ));
    }
    crumbs.push(("Plan".to_owned(), None));
    Ok(html_response(
        status,
        page("Promotion plan", Some(s), &crumbs, body),
    ))
}

fn service_plan(ws: &str, sp: &ServicePlan) -> Markup {
    // `ws/p/e/s`: the target service's page, when the address has that shape.
    let link = match sp.service.split('/').collect::<Vec<_>>().as_slice() {
        [w, p, e, s] if *w == ws => Some(service_url(w, p, e, s)),
        _ => None,
    };
    let action = match sp.action {
        PlanAction::Create => "create",
        PlanAction::Update => "update",
        PlanAction::Deploy => "deploy",
        PlanAction::Unchanged => "unchanged",
    };
    html! {
        section.plan-service {
            h2 {
                @match &link {
                    Some(href) => a href=(href) { code { (sp.service) } },
                    None => code { (sp.service) },
                }
                " " span class={ "status status-" (if action == "unchanged" { "none" } else { "pending" }) } { (action) }
            }
            @if let Some(image) = &sp.image {
                dl.facts {
                    dt { "image" }
                    dd {
                        @match &image.from { Some(from) => { code { (from) } " → " }, None => {} }
                        code { (image.to) }
                    }
                    @if let Some(d) = &image.digest { dt { "digest" } dd { code { (d) } } }
                    @if let Some(b) = &image.build { dt { "build" } dd { (b) } }
                }
            }
            @if !sp.fields.is_empty() {
                div.table { table {
                    caption.muted { "Settings that change" }
                    thead { tr { th scope="col" { "field" } th scope="col" { "now" } th scope="col" { "after" } } }
                    tbody {
                        @for f in &sp.fields {
                            tr {
                                td { code { (f.field) } }
                                td { (f.from.as_deref().unwrap_or("—")) }
                                td { (f.to.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                } }
            }
            @if !sp.config.is_empty() {
                div.table { table {
                    caption.muted { "Config that differs (the target's own values win)" }
                    thead { tr {
                        th scope="col" { "key" } th scope="col" { "difference" }
                        th scope="col" { "target" } th scope="col" { "source" }
                    } }
                    tbody {
                        @for c in &sp.config {
                            tr {
                                td { code { (c.key) } @if c.secret { " " span.muted { "(secret)" } } }
                                td {
                                    (match c.change {
                                        ConfigChangeKind::Added => "only in the source",
                                        ConfigChangeKind::Removed => "only in the target",
                                        ConfigChangeKind::Changed => "changed",
                                    })
                                }
                                td { code { (c.from.as_deref().unwrap_or("—")) } }
                                td { code { (c.to.as_deref().unwrap_or("—")) } }
                            }
                        }
                    }
                } }
            }
            @if !sp.kept.is_empty() {
                p.muted { "Kept as they are: " (sp.kept.join("; ")) }
            }
        }
    }
}

/// `POST /ui/workspaces/{ws}/plans/{id}/apply`: the plan carried out, through the REST
/// handler; a refusal (out of date, expired, applied) is shown on the plan's page.
pub(crate) async fn apply(
    State(st): State<UiState>,
    Path((ws, id)): Path<(String, String)>,
    posted: Posted,
) -> UiResult<Response> {
    let signed = posted.signed;
    match dashboard::apply_plan(&st.app, signed.principal.clone(), &ws, &id).await {
        Ok(_) => Ok(see_other(&plan_url(&ws, &id))),
        Err(e) if is_bad_input(&e) => {
            let message = e.body().message.clone();
            plan_page(&signed, &st, &ws, &id, e.status(), Some(message)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The plan as its page shows it, for the unit tests of masking and escaping.
#[cfg(test)]
fn plan_markup(ws: &str, plan: &clank_api::plans::PlanView) -> String {
    plan.services
        .iter()
        .map(|s| service_plan(ws, s).into_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_api::plans::{ConfigDiff, FieldChange, ImageChange, MASK, PlanKind, PlanView};
    use clank_core::Timestamp;

    #[test]
    fn a_plan_shows_the_digest_field_changes_and_config_as_the_platform_masked_it() {
        let plan = PlanView {
            id: "p1".into(),
            kind: PlanKind::Promotion,
            source: "acme/shop/staging/api".into(),
            target: "acme/shop/production".into(),
            created_at: Timestamp::from_millis(1),
            expires_at: Timestamp::from_millis(2),
            services: vec![ServicePlan {
                service: "acme/shop/production/<script>alert(1)</script>".into(),
                action: PlanAction::Deploy,
                image: Some(ImageChange {
                    from: Some("app:1".into()),
                    to: "app:2".into(),
                    digest: Some("sha256:abc".into()),
                    build: None,
                }),
                fields: vec![FieldChange {
                    field: "settings.port".into(),
                    from: Some("80".into()),
                    to: Some("8080".into()),
                }],
                config: vec![ConfigDiff {
                    key: "API_KEY".into(),
                    change: ConfigChangeKind::Changed,
                    secret: true,
                    from: Some(MASK.into()),
                    to: Some(MASK.into()),
                }],
                kept: vec!["domains: api.example.com".into()],
            }],
            unchanged: false,
            applied_at: None,
        };
        let html = plan_markup("acme", &plan);
        assert!(html.contains("sha256:abc"), "{html}");
        assert!(
            html.contains("settings.port") && html.contains("8080"),
            "{html}"
        );
        assert!(html.contains(MASK) && html.contains("(secret)"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }
}
