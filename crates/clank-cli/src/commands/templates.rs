//! Templates and stacks: browse the catalog, create a stack (a template's services, deployed
//! dependencies first), show it, and upgrade it after a preview.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clank_api::{
    NewStack, StackUpgrade, StackUpgradeView, StackView, TemplateSummary, TemplateView,
};
use clap::Subcommand;
use serde::Serialize;

use crate::app::App;
use crate::client::CliError;

#[derive(Debug, Subcommand)]
pub(crate) enum TemplateCmd {
    /// Every template of the catalog.
    List,
    /// A template's services, images, volumes and variables.
    Show { name: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum StackCmd {
    /// Create a template's services in `project` or `project/environment` and deploy them,
    /// companions first: `clank stack create shop --template wordpress`.
    Create(Box<CreateStack>),
    /// Stacks of `project` or `project/environment`.
    List { environment: String },
    /// A stack's template, version and services: `project/stack`.
    Show { address: String },
    /// Preview moving a stack to the catalog's template version; `--yes` applies the plan
    /// shown (and nothing else).
    Upgrade {
        address: String,
        /// The version to move to (default: the catalog's).
        #[arg(long)]
        to: Option<String>,
        /// Apply the previewed plan.
        #[arg(long, short)]
        yes: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateStack {
    /// `project` or `project/environment`.
    pub(crate) environment: String,
    #[arg(long)]
    pub(crate) template: String,
    /// The stack's name: its app service's slug (companions are `NAME-db`, ...).
    #[arg(long)]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) options: StackOptions,
}

/// What `stack create` and `service create --template` share.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct StackOptions {
    /// A template input, `KEY=VALUE` (repeatable; `clank template show` lists them).
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub(crate) inputs: Vec<String>,
    /// Run a template service from another image, `SERVICE=IMAGE` (repeatable): a mirror or
    /// a pinned digest.
    #[arg(long = "image", value_name = "SERVICE=IMAGE")]
    pub(crate) images: Vec<String>,
    /// A domain the proxy serves the app on (public, with TLS).
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Serve `--domain` over plain HTTP on the LAN listener instead.
    #[arg(long, requires = "domain")]
    pub(crate) lan: bool,
}

pub(crate) async fn template(app: &App, cmd: TemplateCmd) -> Result<(), CliError> {
    match cmd {
        TemplateCmd::List => {
            let list: Vec<TemplateSummary> = app.client.get("/v1/templates").await?;
            show(app, &list, || {
                let mut out = format!(
                    "{:<14} {:<10} {:<12} DESCRIPTION",
                    "NAME", "VERSION", "CATEGORY"
                );
                for t in &list {
                    let _ = write!(
                        out,
                        "\n{:<14} {:<10} {:<12} {}",
                        t.name, t.version, t.category, t.description
                    );
                }
                let _ = write!(
                    out,
                    "\n\nCreate one: clank stack create PROJECT --template NAME (details: clank template show NAME)"
                );
                out
            });
        }
        TemplateCmd::Show { name } => {
            let t: TemplateView = app
                .client
                .get(&format!("/v1/templates/{}", crate::app::url_escape(&name)))
                .await?;
            show(app, &t, || template_text(&t));
        }
    }
    Ok(())
}

fn template_text(t: &TemplateView) -> String {
    let mut out = format!("{} ({} {}): {}", t.title, t.name, t.version, t.description);
    if let Some(site) = &t.website {
        let _ = write!(out, "\n{site}");
    }
    let _ = write!(out, "\n\nServices, in start order:");
    for s in &t.services {
        let _ = write!(out, "\n  {:<8} {:<10} {}", s.slug, s.role, s.image);
        if let Some(port) = s.port {
            let _ = write!(out, "  port {port}");
        }
        if s.routed {
            out.push_str("  routed (gets --domain)");
        }
        if !s.depends_on.is_empty() {
            let _ = write!(out, "  after {}", s.depends_on.join(", "));
        }
        for v in &s.volumes {
            let _ = write!(out, "\n           volume {} at {}", v.name, v.path);
        }
    }
    let _ = write!(out, "\n\nVariables:");
    for v in &t.variables {
        let what = match v.kind.as_str() {
            "secret" => "generated secret, kept as secret config, never shown".to_owned(),
            "dns" => "a service's name on the project network".to_owned(),
            "url" => "a service's URL".to_owned(),
            _ => {
                let mut s = String::from("input (--input ");
                let _ = write!(s, "{}=...)", v.name);
                if v.required {
                    s.push_str(", required");
                }
                if let Some(d) = &v.default {
                    let _ = write!(s, ", default `{d}`");
                }
                if v.secret {
                    s.push_str(", secret");
                }
                if let Some(d) = &v.description {
                    let _ = write!(s, ": {d}");
                }
                s
            }
        };
        let _ = write!(out, "\n  {:<18} {what}", v.name);
    }
    let _ = write!(
        out,
        "\n\nCreate it: clank stack create PROJECT --template {}",
        t.name
    );
    out
}

pub(crate) async fn stack(app: &App, cmd: StackCmd) -> Result<(), CliError> {
    match cmd {
        StackCmd::Create(c) => {
            let CreateStack {
                environment,
                template,
                name,
                options,
            } = *c;
            create(app, &environment, template, name, options).await?;
        }
        StackCmd::List { environment } => {
            let list: Vec<StackView> = app
                .client
                .get(&format!("{}/stacks", app.env_path(&environment)?))
                .await?;
            show(app, &list, || {
                if list.is_empty() {
                    return format!(
                        "no stacks in {environment}; create one with `clank stack create {environment} --template NAME`"
                    );
                }
                list.iter()
                    .map(|s| {
                        let ready = s.services.iter().filter(|x| x.active).count();
                        format!(
                            "{:<16} {} {}  {ready}/{} services ACTIVE{}",
                            s.slug,
                            s.template,
                            s.version,
                            s.services.len(),
                            upgrade_hint(s)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        StackCmd::Show { address } => {
            let path = stack_path(app, &address)?;
            let s: StackView = app.client.get(&path).await?;
            show(app, &s, || stack_text(&s));
        }
        StackCmd::Upgrade { address, to, yes } => {
            let path = format!("{}/upgrade", stack_path(app, &address)?);
            let preview: StackUpgradeView = app
                .client
                .post(
                    &path,
                    &StackUpgrade {
                        to: to.clone(),
                        apply: None,
                    },
                )
                .await?;
            if !yes {
                show(app, &preview, || {
                    format!(
                        "{}\n\nApply exactly this plan: clank stack upgrade {address} --yes",
                        preview_text(&preview)
                    )
                });
                return Ok(());
            }
            let applied: StackUpgradeView = app
                .client
                .post(
                    &path,
                    &StackUpgrade {
                        to,
                        apply: Some(preview.plan_id.clone()),
                    },
                )
                .await?;
            show(app, &applied, || {
                let mut out = preview_text(&applied);
                if let Some(s) = &applied.result {
                    let _ = write!(out, "\n\nApplied; deploying:\n{}", services_text(s));
                }
                out
            });
        }
    }
    Ok(())
}

/// Create a stack and print what was started (shared with `service create --template`).
pub(crate) async fn create(
    app: &App,
    environment: &str,
    template: String,
    name: Option<String>,
    options: StackOptions,
) -> Result<(), CliError> {
    let new = NewStack {
        template,
        name,
        inputs: pairs("--input", &options.inputs)?,
        images: pairs("--image", &options.images)?,
        domain: options.domain,
        lan: options.lan,
    };
    let env_path = app.env_path(environment)?;
    let s: StackView = app
        .client
        .post(&format!("{env_path}/stacks"), &new)
        .await
        .map_err(|e| e.flags(stack_flag))?;
    show(app, &s, || {
        format!(
            "stack `{}` created from {} {} in {environment}; deploying (dependencies first):\n{}\n\n\
             Generated passwords are kept as secret config and never shown. Watch it: clank stack show {environment}/{}",
            s.slug,
            s.template,
            s.version,
            services_text(&s),
            s.slug
        )
    });
    Ok(())
}

/// The `stack create` flag of a field the daemon refused.
fn stack_flag(field: &str) -> Option<&'static str> {
    match field.split(['.', '[']).next().unwrap_or_default() {
        "template" => Some("--template"),
        "name" => Some("--name"),
        "inputs" => Some("--input"),
        "images" => Some("--image"),
        "domain" => Some("--domain"),
        _ => None,
    }
}

fn stack_path(app: &App, address: &str) -> Result<String, CliError> {
    let a = app.service(address)?;
    let [w, p, e, s] = a.segments();
    Ok(format!(
        "/v1/workspaces/{w}/projects/{p}/environments/{e}/stacks/{s}"
    ))
}

fn pairs(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(CliError::new(
                format!("{flag} `{item}`: expected KEY=VALUE"),
                2,
            ));
        };
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn upgrade_hint(s: &StackView) -> String {
    match &s.available_version {
        Some(v) => format!("  (version {v} available: clank stack upgrade)"),
        None => String::new(),
    }
}

fn stack_text(s: &StackView) -> String {
    let mut out = format!(
        "stack `{}`: {} {}{}",
        s.slug,
        s.template,
        s.version,
        upgrade_hint(s)
    );
    if let Some(endpoint) = &s.endpoint {
        let _ = write!(out, "\ndomains: {}", endpoint.routed_domains().join(", "));
    }
    let _ = write!(out, "\n{}", services_text(s));
    if !s.variables.is_empty() {
        let _ = write!(
            out,
            "\nvariables kept (values never shown): {}",
            s.variables.join(", ")
        );
    }
    out
}

fn services_text(s: &StackView) -> String {
    s.services
        .iter()
        .map(|x| {
            let d = match &x.deployment {
                Some(d) => {
                    let mut t = format!("#{} {}", d.number, d.status);
                    if let Some(r) = &d.reason {
                        let _ = write!(t, " ({r})");
                    }
                    t
                }
                None => "not deployed".to_owned(),
            };
            format!("  {:<20} {:<36} {d}", x.service, x.image)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn preview_text(p: &StackUpgradeView) -> String {
    let mut out = format!(
        "stack `{}`: {} {} -> {} ({} change{})",
        p.stack,
        p.template,
        p.from_version,
        p.to_version,
        p.changes.len(),
        if p.changes.len() == 1 { "" } else { "s" }
    );
    for c in &p.changes {
        let _ = write!(out, "\n  {c}");
    }
    out
}

/// `--json` prints the typed response; otherwise the human text.
fn show<T: Serialize>(app: &App, value: &T, human: impl FnOnce() -> String) {
    let v = serde_json::to_value(value).unwrap_or_default();
    app.show(&v, |_| human());
}
