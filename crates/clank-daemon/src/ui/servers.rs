//! A workspace's servers: each one's connection state (live, with when it was last heard
//! from), CPU, memory and disk as its last heartbeat reported them, and how far its agent has
//! applied the desired state. The same list the REST API answers (`GET …/servers`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use clank_api::servers::ServerView;
use clank_core::model::{ServerKind, ServerStatus, ServerUsage};
use maud::{Markup, html};

use super::layout::{Crumb, page, time, workspace_nav};
use super::projects::workspace_url;
use super::session::Signed;
use super::{UiResult, UiState, html as html_response};
use crate::api::dashboard;

/// `GET /ui/workspaces/{ws}/servers`.
pub(crate) async fn servers(
    s: Signed,
    State(st): State<UiState>,
    Path(ws): Path<String>,
) -> UiResult<Response> {
    let listed = dashboard::servers(&st.app, s.principal.clone(), &ws).await;
    // An instance without an agent endpoint has no servers to list: the API says so with a
    // 422 and this page shows its message instead of the table.
    let (servers, unsupported) = match listed {
        Ok(servers) => (servers, None),
        Err(e) if e.status() == StatusCode::UNPROCESSABLE_ENTITY => {
            (Vec::new(), Some(e.body().message.clone()))
        }
        Err(e) => return Err(e.into()),
    };
    let p = &s.principal;
    let body = html! {
        (workspace_nav(&s, &ws, "Servers"))
        h1 { "Servers" }
        @if let Some(message) = &unsupported {
            p.muted { (message) }
        } @else {
            (server_table(&servers))
        }
    };
    let crumbs: [Crumb; 2] = [
        (p.workspace.name.clone(), Some(workspace_url(&ws))),
        ("Servers".to_owned(), None),
    ];
    Ok(html_response(
        StatusCode::OK,
        page("Servers", Some(&s), &crumbs, body),
    ))
}

fn server_table(servers: &[ServerView]) -> Markup {
    html! {
        @if servers.is_empty() {
            p.muted { "No servers yet: " code { "clank server add <name>" } "." }
        } @else {
            div.table {
                table {
                    caption.muted { "Usage as each server's last heartbeat reported it" }
                    thead { tr {
                        th scope="col" { "name" }
                        th scope="col" { "connection" }
                        th scope="col" { "CPU" }
                        th scope="col" { "memory" }
                        th scope="col" { "disk" }
                        th.wide scope="col" { "workloads" }
                        th.wide scope="col" { "applied" }
                        th.wide scope="col" { "agent" }
                    } }
                    tbody {
                        @for v in servers { (server_row(v)) }
                    }
                }
            }
        }
    }
}

fn server_row(v: &ServerView) -> Markup {
    let server = &v.server;
    let (state, class) = connection(v);
    let usage = server.usage;
    html! {
        tr {
            th scope="row" { code { (server.name) } }
            td {
                span class={ "status " (class) } { (state) }
                div.muted {
                    "last seen "
                    @match server.last_heartbeat {
                        Some(at) => (time(at)),
                        None => "never",
                    }
                }
            }
            td { (cpu(usage.as_ref())) }
            td { (share(usage.map(|u| (u.memory_used_bytes, u.memory_total_bytes)))) }
            td { (share(usage.map(|u| (u.disk_used_bytes, u.disk_total_bytes)))) }
            td.wide { (v.workloads) }
            td.wide { (v.applied_generation) " of " (v.desired_generation) }
            td.wide {
                @match &server.kind {
                    ServerKind::Local => "this machine",
                    ServerKind::Agent { agent_version, .. } => {
                        (agent_version.as_deref().unwrap_or("not enrolled"))
                    }
                }
                @if let Some(u) = &v.last_update {
                    div.muted {
                        "update " (u.version) ": " (if u.ok { "installed" } else { "failed" })
                        @if !u.message.is_empty() { " — " (u.message) }
                    }
                }
            }
        }
    }
}

/// The connection in words and the badge's class: live when the agent has a session now,
/// else what the stored status says.
fn connection(v: &ServerView) -> (&'static str, &'static str) {
    if v.connected {
        return ("connected", "status-active");
    }
    match v.server.status {
        ServerStatus::AwaitingEnrollment => ("awaiting enrollment", "status-pending"),
        ServerStatus::Revoked => ("revoked", "status-none"),
        ServerStatus::Connected | ServerStatus::Disconnected => ("disconnected", "status-failed"),
    }
}

fn cpu(usage: Option<&ServerUsage>) -> Markup {
    match usage {
        None => html! { span.muted { "not reported" } },
        Some(u) => {
            let pct = u.cpu_percent.clamp(0.0, 100.0);
            html! {
                meter min="0" max="100" value=(format!("{pct:.1}")) aria-hidden="true" {}
                " " (format!("{pct:.1} %"))
            }
        }
    }
}

/// `used of total (pct %)` with a meter, or "not reported".
fn share(used_total: Option<(u64, u64)>) -> Markup {
    match used_total {
        None => html! { span.muted { "not reported" } },
        Some((used, total)) => html! {
            @if total > 0 {
                meter min="0" max=(total) value=(used.min(total)) aria-hidden="true" {}
                " "
            }
            (bytes(used)) " of " (bytes(total))
            @if total > 0 { " (" (percent(used, total)) " %)" }
        },
    }
}

fn percent(used: u64, total: u64) -> u64 {
    (u128::from(used) * 100 / u128::from(total.max(1))) as u64
}

/// `512 MiB`, `3.5 GiB`, `1.2 TiB`: binary units, one decimal from GiB up.
pub(crate) fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = KIB * 1024;
    const GIB: u64 = MIB * 1024;
    const TIB: u64 = GIB * 1024;
    match n {
        0..KIB => format!("{n} B"),
        KIB..MIB => format!("{} KiB", n / KIB),
        MIB..GIB => format!("{} MiB", n / MIB),
        GIB..TIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        _ => format!("{:.1} TiB", n as f64 / TIB as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::Timestamp;
    use clank_core::id::{ServerId, WorkspaceId};
    use clank_core::model::Server;

    fn view(name: &str, connected: bool, usage: Option<ServerUsage>) -> ServerView {
        ServerView {
            server: Server {
                id: ServerId::new(),
                workspace_id: WorkspaceId::new(),
                name: name.to_owned(),
                kind: ServerKind::Agent {
                    identity: None,
                    agent_version: Some("<b>0.9</b>".to_owned()),
                },
                status: if connected {
                    ServerStatus::Connected
                } else {
                    ServerStatus::Disconnected
                },
                last_heartbeat: Some(Timestamp::from_millis(1_700_000_000_000)),
                usage,
                created_at: Timestamp::from_millis(1_600_000_000_000),
            },
            connected,
            agent_binary_sha256: None,
            desired_generation: 4,
            applied_generation: 3,
            lease_epoch: 1,
            workloads: 2,
            last_update: None,
        }
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn a_server_row_shows_connection_last_seen_cpu_memory_and_disk() {
        let usage = ServerUsage {
            cpu_percent: 12.34,
            memory_used_bytes: 1024 * 1024 * 1024,
            memory_total_bytes: 4 * 1024 * 1024 * 1024,
            disk_used_bytes: 10 * 1024 * 1024 * 1024,
            disk_total_bytes: 100 * 1024 * 1024 * 1024,
        };
        let row = server_row(&view("edge", true, Some(usage))).into_string();
        assert!(row.contains(">connected<"), "{row}");
        assert!(row.contains("2023-11-14 22:13:20 UTC"), "{row}");
        assert!(row.contains("12.3 %"), "{row}");
        assert!(row.contains("1.0 GiB of 4.0 GiB (25 %)"), "{row}");
        assert!(row.contains("10.0 GiB of 100.0 GiB (10 %)"), "{row}");
        assert!(row.contains("3 of 4"), "{row}");
        let gone = server_row(&view("edge", false, None)).into_string();
        assert!(gone.contains(">disconnected<"), "{gone}");
        assert!(gone.contains("not reported"), "{gone}");
    }

    #[test]
    fn a_servers_name_and_agent_version_are_escaped() {
        let row = server_row(&view("<script>alert(1)</script>", true, None)).into_string();
        assert!(
            row.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{row}"
        );
        assert!(!row.contains("<script>"), "{row}");
        assert!(!row.contains("<b>"), "{row}");
    }
}
