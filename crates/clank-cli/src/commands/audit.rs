//! The workspace's audit log.

use clank_core::Timestamp;
use clank_core::model::{Actor, AuditEvent, AuditOutcome};

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

pub(crate) async fn audit(app: &App, limit: usize, before: Option<String>) -> Result<(), CliError> {
    let mut path = format!("{}/audit?limit={limit}", app.ws_path());
    if let Some(b) = before {
        path.push_str(&format!("&before={}", url_escape(&b)));
    }
    let events: Vec<AuditEvent> = app.client.get(&path).await?;
    app.show(&events, |events| {
        if events.is_empty() {
            "no audit events".to_owned()
        } else {
            lines(events, audit_line)
        }
    });
    Ok(())
}

/// One audit event as a line: when, who, what, on what, how it ended.
fn audit_line(e: &AuditEvent) -> String {
    let actor = match &e.actor {
        Actor::Webhook { provider } => format!("webhook:{provider}"),
        Actor::System { task } => format!("system:{task}"),
        Actor::Token {
            user_id,
            token_name,
            ..
        } => format!("{user_id} ({token_name})"),
    };
    let outcome = match &e.outcome {
        AuditOutcome::Failed { status, code } => format!("failed {status} {code}"),
        AuditOutcome::Succeeded => "succeeded".to_owned(),
        AuditOutcome::Denied => "denied".to_owned(),
    };
    format!(
        "{}  {:<22} {:<40} {:<12} {actor}",
        format_time(e.at),
        e.action,
        e.target,
        outcome,
    )
}

/// `YYYY-MM-DD HH:MM:SS` UTC.
fn format_time(at: Timestamp) -> String {
    let secs = at.as_millis().div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = clank_core::time::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
