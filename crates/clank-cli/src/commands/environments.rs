//! `clank env clone shop/staging preview-1 [--domain-pattern P] [--deploy] [--no-config]
//! [--copy-volumes]`: a new environment with a copy of every service and the config.

use clank_api::environments::{CloneEnvironment, CloneReport};

use crate::app::App;
use crate::client::CliError;

pub(crate) async fn clone(
    app: &App,
    environment: String,
    body: CloneEnvironment,
) -> Result<(), CliError> {
    let report: CloneReport = app
        .client
        .post(&format!("{}/clone", app.env_path(&environment)?), &body)
        .await?;
    app.show(&report, render);
    Ok(())
}

fn render(r: &CloneReport) -> String {
    let mut out = vec![format!(
        "environment `{}` cloned from `{}` ({} config keys copied)",
        r.environment, r.source, r.config_keys
    )];
    for s in &r.services {
        let domains = if s.domains.is_empty() {
            "no domain".to_owned()
        } else {
            s.domains.join(", ")
        };
        let deployed = s
            .deployment
            .map(|n| format!(", deployment #{n}"))
            .unwrap_or_default();
        out.push(format!("  {}  ({domains}{deployed})", s.service));
        if !s.volumes.is_empty() {
            out.push(format!("    new volumes: {}", s.volumes.join(", ")));
        }
    }
    for v in &r.volumes_copied {
        out.push(format!(
            "  {}: volume {} copied into {} ({} bytes)",
            v.service, v.from, v.to, v.bytes
        ));
    }
    for note in &r.notes {
        out.push(format!("  note: {note}"));
    }
    out.join("\n")
}
