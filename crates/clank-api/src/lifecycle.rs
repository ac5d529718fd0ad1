//! Deleting, restoring and purging services, environments and projects: the query of a
//! `DELETE` and the reports both a delete and a purge answer with.
//!
//! A delete is soft unless `purge` is set: the thing is marked, its workloads and routes
//! removed, and it can be restored until `restorable_until`; then it is purged. A purge
//! removes workloads, networks and records for good, and volumes only when `volumes` is set.

use clank_core::Timestamp;

/// How to delete (`DELETE …/services/{s}`, `…/environments/{e}`, `…/projects/{p}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Remove it for good now (workloads, networks, records) instead of keeping it
    /// restorable for the retention period.
    #[serde(default)]
    pub purge: bool,
    /// With `purge` only: remove its named volumes and their data too (kept otherwise).
    #[serde(default)]
    pub volumes: bool,
}

/// Which environments to list (`GET …/environments`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListEnvironments {
    /// Include soft-deleted environments.
    #[serde(default)]
    pub include_deleted: bool,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteReport {
    /// What was deleted, as an address (`ws/project/env/service`).
    pub target: String,
    /// When it was (first) marked deleted.
    pub deleted_at: Timestamp,
    /// Until when `restore` brings it back; `None` once purged.
    pub restorable_until: Option<Timestamp>,
    /// What a purge removed; `None` for a soft delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<PurgeReport>,
}

/// What a purge removed, by the names the runtime knows things by, and what it kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurgeReport {
    /// Workloads (containers, processes) stopped and removed.
    pub containers: Vec<String>,
    /// Networks removed.
    pub networks: Vec<String>,
    /// Named volumes removed with their data (only when asked for).
    pub volumes_removed: Vec<String>,
    /// Named volumes kept (not asked for, or still mounted by a service that stays).
    pub volumes_kept: Vec<String>,
    /// Catalog records removed (services, deployments, builds, config layers, stacks,
    /// environments, projects).
    pub records: u64,
}

impl PurgeReport {
    /// Add what another purge removed (a project's purge is its environments' purges).
    pub fn absorb(&mut self, other: PurgeReport) {
        self.containers.extend(other.containers);
        self.networks.extend(other.networks);
        self.volumes_removed.extend(other.volumes_removed);
        self.volumes_kept.extend(other.volumes_kept);
        self.records += other.records;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_delete_is_soft_and_keeps_volumes() {
        let q: DeleteQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(q, DeleteQuery::default());
        assert!(!q.purge && !q.volumes);
        assert!(serde_json::from_str::<DeleteQuery>(r#"{"purge":true,"force":1}"#).is_err());
    }

    #[test]
    fn a_soft_delete_report_has_no_purge_section() {
        let r = DeleteReport {
            target: "default/shop".into(),
            deleted_at: Timestamp(1),
            restorable_until: Some(Timestamp(2)),
            purged: None,
        };
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("purged").is_none(), "{json}");
        assert_eq!(serde_json::from_value::<DeleteReport>(json).unwrap(), r);
    }
}
