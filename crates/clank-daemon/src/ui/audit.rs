//! A workspace's audit log, newest first, a page at a time: who (actor), what (action), on
//! which address (target), how it ended (outcome), when, and the details that tell one call
//! from another. Read through the REST handler (`GET …/audit`), so its role check (Admin and
//! Owner) and its checks of `limit` and `before` are the dashboard's too.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::audit::AuditQuery;
use clank_core::InvalidInput;
use clank_core::model::{AuditEvent, AuditOutcome};
use maud::{Markup, html};

use super::layout::{Crumb, page, time, workspace_nav};
use super::projects::workspace_url;
use super::session::Signed;
use super::{UiResult, UiState, html as html_response};
use crate::api::dashboard;

/// Events a page shows unless the address asks for another number (the API's default).
const PAGE: usize = 50;

pub(crate) fn audit_url(ws: &str) -> String {
    format!("/ui/workspaces/{ws}/audit")
}

/// `GET /ui/workspaces/{ws}/audit[?limit=N][&before=<event id>]`.
pub(crate) async fn audit(
    s: Signed,
    State(st): State<UiState>,
    Path(ws): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> UiResult<Response> {
    let limit = match q.get("limit").map(|l| l.trim()).filter(|l| !l.is_empty()) {
        None => PAGE,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| InvalidInput::new("limit", "range", "`limit` is between 1 and 1000"))?,
    };
    let before = q
        .get("before")
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty());
    let query = AuditQuery {
        limit: Some(limit),
        before: before.clone(),
    };
    let events = dashboard::audit_events(&st.app, s.principal.clone(), &ws, query).await?;
    let base = audit_url(&ws);
    // A full page may have older events after it: the last one's id is where they start.
    let older = (events.len() == limit)
        .then(|| events.last())
        .flatten()
        .map(|e| format!("{base}?before={}&limit={limit}", e.id));
    let p = &s.principal;
    let body = html! {
        (workspace_nav(&s, &ws, "Audit log"))
        h1 { "Audit log" }
        p.muted { "Every change made through the API or this dashboard, newest first; refusals included." }
        (event_table(&events))
        nav.actions aria-label="Audit log pages" {
            @if before.is_some() { a href=(base) { "Newest events" } }
            @if let Some(href) = &older { a href=(href) { "Older events" } }
        }
    };
    let crumbs: [Crumb; 2] = [
        (p.workspace.name.clone(), Some(workspace_url(&ws))),
        ("Audit log".to_owned(), None),
    ];
    Ok(html_response(
        StatusCode::OK,
        page("Audit log", Some(&s), &crumbs, body),
    ))
}

fn event_table(events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.muted { "No events." }
        } @else {
            div.table {
                table {
                    thead { tr {
                        th scope="col" { "time" }
                        th scope="col" { "actor" }
                        th scope="col" { "action" }
                        th scope="col" { "target" }
                        th scope="col" { "outcome" }
                        th.wide scope="col" { "details" }
                    } }
                    tbody {
                        @for e in events { (event_row(e)) }
                    }
                }
            }
        }
    }
}

fn event_row(e: &AuditEvent) -> Markup {
    let class = match e.outcome {
        AuditOutcome::Succeeded => "status-active",
        AuditOutcome::Denied | AuditOutcome::Failed { .. } => "status-failed",
    };
    html! {
        tr {
            td { (time(e.at)) }
            td { (e.actor.to_string()) }
            td { code { (e.action) } }
            td { code { (e.target) } }
            td { span class={ "status " (class) } { (e.outcome.to_string()) } }
            td.wide {
                @if !e.details.is_null() { code { (e.details.to_string()) } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::Timestamp;
    use clank_core::id::{AuditEventId, WorkspaceId};
    use clank_core::model::Actor;

    #[test]
    fn an_events_target_and_details_are_escaped() {
        let e = AuditEvent {
            id: AuditEventId::new(),
            at: Timestamp::from_millis(1_700_000_000_000),
            workspace_id: WorkspaceId::new(),
            actor: Actor::Webhook {
                provider: "<i>github</i>".to_owned(),
            },
            action: "service.create".to_owned(),
            target: "acme/<script>alert(1)</script>".to_owned(),
            outcome: AuditOutcome::Failed {
                status: 422,
                code: "invalid".to_owned(),
            },
            details: serde_json::json!({"name": "<script>alert(1)</script>"}),
        };
        let row = event_row(&e).into_string();
        assert!(!row.contains("<script>"), "{row}");
        assert!(!row.contains("<i>"), "{row}");
        assert!(
            row.contains("acme/&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{row}"
        );
        assert!(row.contains("status-failed"), "{row}");
    }
}
