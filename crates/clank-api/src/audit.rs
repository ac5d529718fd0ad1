//! Reading the audit log.

/// A page of the audit log, newest first (`GET …/audit`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// 1..=1000, default 50.
    #[serde(default)]
    pub limit: Option<usize>,
    /// An event id: only events older than it (the last id of the previous page).
    #[serde(default)]
    pub before: Option<String>,
}
