//! Deleting and restoring services, environments and projects: `clank service|env|project
//! delete <address> [--purge [--volumes]]` and `… restore <address>`. A soft delete prints
//! until when it can be restored and the command that does it; a purge prints what it
//! removed and which volumes it kept.

use clank_api::lifecycle::{DeleteReport, PurgeReport};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::client::CliError;

/// How to delete, as the three `delete` commands take it.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct DeleteFlags {
    /// Remove it for good now (workloads, networks, records) instead of keeping it
    /// restorable for the retention period.
    #[arg(long)]
    purge: bool,
    /// With `--purge`: remove its named volumes and their data too.
    #[arg(long, requires = "purge")]
    volumes: bool,
}

/// What is deleted: its noun for messages and the `clank` command group restoring it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Service,
    Environment,
    Project,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Environment => "environment",
            Kind::Project => "project",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Environment => "env",
            Kind::Project => "project",
        }
    }
}

/// The query a list takes to include soft-deleted items (`--deleted`), or nothing.
pub(crate) fn include_deleted(deleted: bool) -> &'static str {
    if deleted { "?include_deleted=true" } else { "" }
}

/// What a list line says after a soft-deleted item: `  deleted <when>`; nothing otherwise.
pub(crate) fn deleted_mark(deleted_at: Option<clank_core::Timestamp>) -> String {
    deleted_at
        .map(|at| format!("  deleted {at}"))
        .unwrap_or_default()
}

/// `DELETE path` with the flags, printing the report.
pub(crate) async fn delete(
    app: &App,
    kind: Kind,
    address: &str,
    path: &str,
    flags: DeleteFlags,
) -> Result<(), CliError> {
    let mut query = Vec::new();
    if flags.purge {
        query.push("purge=true");
    }
    if flags.volumes {
        query.push("volumes=true");
    }
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let report: DeleteReport = app.client.delete(&path).await?;
    app.show(&report, |r| describe(kind, address, r));
    Ok(())
}

/// `POST path/restore`, printing what came back.
pub(crate) async fn restore<T: Serialize + DeserializeOwned>(
    app: &App,
    kind: Kind,
    address: &str,
    path: &str,
) -> Result<(), CliError> {
    let restored: T = app.client.post_empty(&format!("{path}/restore")).await?;
    app.show(&restored, |_| {
        let also = match kind {
            Kind::Service => "",
            Kind::Environment => " with the services deleted with it",
            Kind::Project => " with the environments and services deleted with it",
        };
        format!(
            "{} `{address}` restored{also}; its workloads are starting and its domains answer \
             again once healthy",
            kind.noun()
        )
    });
    Ok(())
}

fn describe(kind: Kind, address: &str, r: &DeleteReport) -> String {
    match (&r.purged, r.restorable_until) {
        (Some(p), _) => purged(kind, address, p),
        (None, Some(until)) => format!(
            "{} `{address}` deleted: its domains no longer answer and its workloads are being \
             removed; volumes are kept.\nRestorable until {until} with `clank {} restore \
             {address}`; purged after that.",
            kind.noun(),
            kind.group()
        ),
        (None, None) => format!("{} `{address}` deleted", kind.noun()),
    }
}

fn purged(kind: Kind, address: &str, p: &PurgeReport) -> String {
    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let mut out = vec![
        format!("{} `{address}` purged:", kind.noun()),
        format!("  containers removed: {}", list(&p.containers)),
        format!("  networks removed:   {}", list(&p.networks)),
        format!("  volumes removed:    {}", list(&p.volumes_removed)),
        format!("  records removed:    {}", p.records),
    ];
    if !p.volumes_kept.is_empty() {
        out.push(format!(
            "  volumes kept:       {} (remove them with `--purge --volumes`, or `docker volume rm`)",
            list(&p.volumes_kept)
        ));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clank_core::Timestamp;

    #[test]
    fn a_soft_delete_says_until_when_and_how_to_restore() {
        let r = DeleteReport {
            target: "default/shop/production/api".into(),
            deleted_at: Timestamp(0),
            restorable_until: Some(Timestamp(86_400_000)),
            purged: None,
        };
        let text = describe(Kind::Environment, "shop/staging", &r);
        assert!(text.contains("1970-01-02T00:00:00.000Z"), "{text}");
        assert!(text.contains("clank env restore shop/staging"), "{text}");
    }

    #[test]
    fn a_purge_lists_what_it_removed_and_the_volumes_it_kept() {
        let r = DeleteReport {
            target: "x".into(),
            deleted_at: Timestamp(0),
            restorable_until: None,
            purged: Some(PurgeReport {
                containers: vec!["clank-a--shop--api".into()],
                networks: vec![],
                volumes_removed: vec![],
                volumes_kept: vec!["clank-a--data".into()],
                records: 4,
            }),
        };
        let text = describe(Kind::Service, "shop/api", &r);
        assert!(
            text.contains("containers removed: clank-a--shop--api"),
            "{text}"
        );
        assert!(text.contains("networks removed:   none"), "{text}");
        assert!(text.contains("volumes kept:       clank-a--data"), "{text}");
        assert!(text.contains("records removed:    4"), "{text}");
    }
}
