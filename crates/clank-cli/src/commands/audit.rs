//! The workspace's audit log.

use serde_json::Value;

use crate::app::{App, lines, url_escape};
use crate::client::CliError;

pub(crate) async fn audit(app: &App, limit: usize, before: Option<String>) -> Result<(), CliError> {
    let mut path = format!("{}/audit?limit={limit}", app.ws_path());
    if let Some(b) = before {
        path.push_str(&format!("&before={}", url_escape(&b)));
    }
    let v: Value = app.client.get(&path).await?;
    app.show(&v, |v| {
        if v.as_array().is_some_and(Vec::is_empty) {
            "no audit events".to_owned()
        } else {
            lines(v, audit_line)
        }
    });
    Ok(())
}

/// One audit event as a line: when, who, what, on what, how it ended.
fn audit_line(e: &Value) -> String {
    let actor = match e["actor"]["kind"].as_str() {
        Some("webhook") => format!("webhook:{}", e["actor"]["provider"].as_str().unwrap_or("?")),
        _ => format!(
            "{} ({})",
            e["actor"]["user_id"].as_str().unwrap_or("?"),
            e["actor"]["token_name"].as_str().unwrap_or("?")
        ),
    };
    let outcome = match e["outcome"]["result"].as_str() {
        Some("failed") => format!(
            "failed {} {}",
            e["outcome"]["status"],
            e["outcome"]["code"].as_str().unwrap_or("")
        ),
        other => other.unwrap_or("?").to_owned(),
    };
    format!(
        "{}  {:<22} {:<40} {:<12} {actor}",
        e["at"]
            .as_i64()
            .map(format_millis)
            .unwrap_or_else(|| "?".into()),
        e["action"].as_str().unwrap_or(""),
        e["target"].as_str().unwrap_or(""),
        outcome,
    )
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC (civil-from-days, no time crate).
fn format_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
