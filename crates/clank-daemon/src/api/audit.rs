//! The audit log over HTTP: every mutating call records who asked, what, on which address and
//! how it ended (denials and failures included), and Admins and Owners list it newest first.
//!
//! Events are written after the change, as their own record: the platform's operations commit
//! their own writes, so an event cannot share their transaction. A lost audit write is logged
//! as an error and never turns a completed change into a failure the caller would retry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use clank_api::audit::AuditQuery;
use clank_core::InvalidInput;
use clank_core::Timestamp;
use clank_core::config::{ConfigChange, NewValue};
use clank_core::id::{AuditEventId, WorkspaceId};
use clank_core::model::{Actor, AuditEvent, AuditOutcome, Permission};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Params;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// What a call changes: its action (`noun.verb`), the address it acts on, and details that
/// tell it apart from another call of the same action (never a secret value).
#[derive(Debug, Clone)]
pub(super) struct Change {
    action: &'static str,
    target: String,
    details: Value,
}

/// The longest target an event keeps (addresses are far shorter; a longer one is an attack
/// or a mistake, and is cut with a marker).
pub(super) const TARGET_MAX: usize = 512;
/// The largest details an event keeps, as JSON; larger ones are replaced by their size.
pub(super) const DETAILS_MAX: usize = 8 * 1024;

impl Change {
    pub(super) fn new(action: &'static str, target: impl ToString) -> Self {
        Change {
            action,
            target: bounded_text(target.to_string(), TARGET_MAX),
            details: Value::Null,
        }
    }

    pub(super) fn details(mut self, details: Value) -> Self {
        let size = details.to_string().len();
        self.details = if size <= DETAILS_MAX {
            details
        } else {
            json!({"truncated": true, "bytes": size})
        };
        self
    }
}

/// `text` cut to at most `max` bytes on a character boundary, control characters replaced,
/// with `…[+N bytes]` saying how much was dropped: what a user sent, never all of it.
fn bounded_text(text: String, max: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    };
    if text.len() <= max {
        return clean(&text);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…[+{} bytes]", clean(&text[..cut]), text.len() - cut)
}

fn outcome<T>(result: &ApiResult<T>) -> AuditOutcome {
    match result {
        Ok(_) => AuditOutcome::Succeeded,
        Err(e) if e.status() == StatusCode::FORBIDDEN => AuditOutcome::Denied,
        Err(e) => AuditOutcome::Failed {
            status: e.status().as_u16(),
            code: e.code().to_owned(),
        },
    }
}

/// Append one event; a failed write is logged, not returned (see the module docs).
pub(super) async fn record(
    st: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    change: Change,
    outcome: AuditOutcome,
) {
    let event = AuditEvent {
        id: AuditEventId::new(),
        at: Timestamp::now(),
        workspace_id: workspace,
        actor,
        action: change.action.to_owned(),
        target: change.target,
        outcome,
        details: change.details,
    };
    if let Err(e) = st.platform.catalog().record_audit(&event).await {
        tracing::error!(action = %event.action, target = %event.target, error = %e, "Could not record an audit event.");
    }
}

/// Record how a caller's call ended.
pub(super) async fn record_call<T>(
    st: &AppState,
    p: &Principal,
    change: Change,
    result: &ApiResult<T>,
) {
    record(st, p.workspace.id, p.actor(), change, outcome(result)).await;
}

/// Run `op` — the permission check and the change — and record how it ended.
pub(super) async fn audited<T>(
    st: &AppState,
    p: &Principal,
    change: Change,
    op: impl Future<Output = ApiResult<T>>,
) -> ApiResult<T> {
    let result = op.await;
    record_call(st, p, change, &result).await;
    result
}

/// Config changes as the audit log keeps them: a plain set with its value, a secret set as its
/// key and `"secret": true` only, an unset as its key.
pub(super) fn config_details(changes: &[ConfigChange]) -> Value {
    let changes: Vec<Value> = changes
        .iter()
        .map(|c| match c {
            ConfigChange::Set {
                key,
                value: NewValue::Plain(v),
            } => json!({"key": key, "op": "set", "secret": false, "value": v}),
            ConfigChange::Set {
                key,
                value: NewValue::Secret(_),
            } => json!({"key": key, "op": "set", "secret": true}),
            ConfigChange::Unset { key } => json!({"key": key, "op": "unset"}),
        })
        .collect();
    json!({ "changes": changes })
}

/// The workspace's audit log, newest first. Admin and Owner only.
#[utoipa::path(
    get,
    operation_id = "list_audit",
    path = "/v1/workspaces/{ws}/audit",
    tag = "audit",
    params(
        ("ws" = String, Path, description = "workspace slug"),
        AuditQuery,
    ),
    responses(
        (status = 200, description = "events, newest first", body = [AuditEvent]),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEvent>>> {
    p.in_workspace(&ws)?;
    p.require(Permission::ReadAudit)?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(InvalidInput::new("limit", "range", "`limit` is between 1 and 1000").into());
    }
    let before = match q.before {
        None => None,
        Some(b) => Some(b.parse::<AuditEventId>().map_err(|_| {
            ApiError::from(InvalidInput::new(
                "before",
                "uuid",
                format!("`{}` is not an audit event id", b.escape_debug()),
            ))
        })?),
    };
    Ok(Json(
        st.platform
            .catalog()
            .audit_events(p.workspace.id, limit, before)
            .await?,
    ))
}
