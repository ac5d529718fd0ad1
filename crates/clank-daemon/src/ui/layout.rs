//! The frame every page shares (head, breadcrumbs, sign-out) and the small pieces several
//! pages print: a status badge, a time, a duration, a trigger, a hidden CSRF field.

use std::time::Duration;

use clank_api::DeploymentView;
use clank_core::Timestamp;
use clank_core::deploy::DeploymentStatus;
use clank_core::model::{Artifact, Permission, Trigger};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::session::Signed;
use crate::api::error::ApiError;

/// One step of the breadcrumbs: its label and, unless it is the current page, its link.
pub(crate) type Crumb = (String, Option<String>);

/// A whole page: `title`, where it sits (`crumbs`), and its content.
pub(crate) fn page(title: &str, signed: Option<&Signed>, crumbs: &[Crumb], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Clank" }
                link rel="stylesheet" href=(assets::style_url());
                script src=(assets::script_url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui" { "Clank" }
                    @if !crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumbs" {
                            ol {
                                @for (label, link) in crumbs {
                                    li {
                                        @match link {
                                            Some(href) => a href=(href) { (label) },
                                            None => span aria-current="page" { (label) },
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(s) = signed {
                        form.inline method="post" action="/ui/signout" {
                            (csrf_field(s))
                            span.muted {
                                (s.principal.token_name) " · " (format!("{:?}", s.principal.role)) " "
                            }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub(crate) fn csrf_field(s: &Signed) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

/// The links between a workspace's pages: projects, servers, templates and, for a role that
/// may read it, the audit log. `current` is the shown page's label.
pub(crate) fn workspace_nav(s: &Signed, ws: &str, current: &str) -> Markup {
    let mut links = vec![
        ("Projects", format!("/ui/workspaces/{ws}")),
        ("Servers", format!("/ui/workspaces/{ws}/servers")),
        ("Templates", format!("/ui/workspaces/{ws}/templates")),
    ];
    if s.principal.role.allows(Permission::ReadAudit) {
        links.push(("Audit log", format!("/ui/workspaces/{ws}/audit")));
    }
    section_nav("Workspace", &links, current)
}

/// The links between a project's pages: its canvas and its environments.
pub(crate) fn project_nav(ws: &str, p: &str, current: &str) -> Markup {
    let base = format!("/ui/workspaces/{ws}/projects/{p}");
    let links = [
        ("Services", base.clone()),
        ("Environments", format!("{base}/environments")),
    ];
    section_nav("Project", &links, current)
}

fn section_nav(label: &str, links: &[(&str, String)], current: &str) -> Markup {
    html! {
        nav.sections aria-label=(label) {
            ul {
                @for (name, href) in links {
                    li {
                        @if *name == current {
                            a href=(href) aria-current="page" { (name) }
                        } @else {
                            a href=(href) { (name) }
                        }
                    }
                }
            }
        }
    }
}

/// A refusal or failure as its own page.
pub(crate) fn failure(e: &ApiError) -> Markup {
    let status = e.status();
    let body = e.body();
    page(
        status.canonical_reason().unwrap_or("Error"),
        None,
        &[],
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
            p.banner role="alert" { (body.message) }
            p { a href="/ui" { "Back to the dashboard" } }
        },
    )
}

/// A deployment's status as a badge; `follow` is the event stream that keeps it current (only
/// while it has not settled).
pub(crate) fn status_badge(number: u64, status: DeploymentStatus, follow: Option<&str>) -> Markup {
    let name = status.as_str();
    html! {
        span class={ "status status-" (name.to_ascii_lowercase()) }
            data-status=(name) data-deployment=(number) data-follow=[follow]
            role="status" { (name) }
    }
}

/// Whether a deployment will not change status again by itself (ACTIVE only changes when
/// another deployment supersedes it).
pub(crate) fn settled(status: DeploymentStatus) -> bool {
    status == DeploymentStatus::Active || status.is_terminal()
}

/// A time as a `<time>` element, RFC 3339 (UTC) to the second.
pub(crate) fn time(at: Timestamp) -> Markup {
    let full = at.to_string();
    let shown = full
        .get(..19)
        .map(|s| format!("{} UTC", s.replace('T', " ")))
        .unwrap_or_else(|| full.clone());
    html! { time datetime=(full) { (shown) } }
}

/// `1h 02m`, `3m 07s`, `12s`.
pub(crate) fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// How long a deployment took to settle, or has run so far. One still running says when it
/// started (`data-created`, milliseconds since the epoch): the script turns it into how long
/// it took once the status cell of deployment `data-duration-of` settles.
pub(crate) fn deployment_duration(d: &DeploymentView, now: Timestamp) -> Markup {
    let end = d.history.iter().find(|h| settled(h.to)).map(|h| h.at);
    match end {
        Some(end) => html! { (duration(end.since(d.created_at))) },
        None => html! {
            span data-duration-of=(d.number) data-created=(d.created_at.as_millis()) {
                (duration(now.since(d.created_at))) " so far"
            }
        },
    }
}

/// What started a deployment, in words, with who asked for it: `deployer` is the member's
/// email (or name) when the trigger records them and they are known.
pub(crate) fn trigger(t: &Trigger, deployer: Option<&str>) -> String {
    let what = match t {
        Trigger::Manual { .. } => "manual".to_owned(),
        Trigger::AutoDeploy { branch, .. } => return format!("push to {branch}"),
        Trigger::RollbackOf { number, .. } => format!("rollback to #{number}"),
        Trigger::PromotionFrom { .. } => "promotion".to_owned(),
    };
    match deployer {
        Some(who) => format!("{what} by {who}"),
        None => what,
    }
}

/// The commit a deployment runs, shortened, when it is a build of one.
pub(crate) fn commit(d: &DeploymentView) -> Option<String> {
    let full = match (&d.artifact, &d.trigger) {
        (
            Artifact::Build {
                commit: Some(c), ..
            },
            _,
        ) => c,
        (_, Trigger::AutoDeploy { commit, .. }) => commit,
        _ => return None,
    };
    Some(full.chars().take(12).collect())
}

/// The subject of the commit a deployment built, when its build recorded one.
pub(crate) fn commit_subject(d: &DeploymentView) -> Option<&str> {
    d.build.as_ref()?.commit_subject.as_deref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_largest_useful_units() {
        assert_eq!(duration(Duration::from_secs(12)), "12s");
        assert_eq!(duration(Duration::from_secs(187)), "3m 07s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn a_time_is_shown_to_the_second_with_the_full_value_machine_readable() {
        let t = time(Timestamp::from_millis(1_700_000_000_123)).into_string();
        assert!(t.contains(r#"datetime="2023-11-14T22:13:20.123Z""#), "{t}");
        assert!(t.contains(">2023-11-14 22:13:20 UTC<"), "{t}");
    }

    #[test]
    fn only_an_unsettled_badge_names_a_stream_to_follow() {
        let live = status_badge(3, DeploymentStatus::Deploying, Some("/ui/x/events")).into_string();
        assert!(live.contains(r#"data-follow="/ui/x/events""#), "{live}");
        assert!(live.contains("status-deploying"), "{live}");
        let done = status_badge(3, DeploymentStatus::Active, None).into_string();
        assert!(!done.contains("data-follow"), "{done}");
    }

    #[test]
    fn a_trigger_names_who_asked_for_it_and_a_push_names_its_branch() {
        let manual = Trigger::Manual { by: None };
        assert_eq!(trigger(&manual, None), "manual");
        assert_eq!(
            trigger(&manual, Some("dev@example.com")),
            "manual by dev@example.com"
        );
        let push = Trigger::AutoDeploy {
            commit: "0123456".into(),
            branch: "main".into(),
        };
        assert_eq!(trigger(&push, Some("ignored")), "push to main");
        let rollback = Trigger::RollbackOf {
            deployment: clank_core::id::DeploymentId::new(),
            number: 3,
            by: None,
        };
        assert_eq!(
            trigger(&rollback, Some("ops@example.com")),
            "rollback to #3 by ops@example.com"
        );
    }

    #[test]
    fn a_message_is_escaped_on_the_failure_page() {
        let e = ApiError::forbidden("<script>alert(1)</script>");
        let page = failure(&e).into_string();
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>alert"), "{page}");
    }
}
