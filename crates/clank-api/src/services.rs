//! Services: what a new one looks like, a change to one, listing them, and their running
//! workloads (logs, exec).

use std::collections::BTreeMap;

use clank_core::id::ServerId;
use clank_core::model::{Endpoint, ProcessSpec, ServiceSettings, ServiceSource, VolumeMount};
use clank_core::runtime::LogLine;

/// What a new service looks like; everything but `slug` and `source` has the documented default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unique in the environment; the container's DNS alias in the project network.
    pub slug: String,
    /// Display name (default: the slug).
    #[serde(default)]
    pub name: Option<String>,
    pub source: ServiceSource,
    #[serde(default)]
    pub settings: ServiceSettings,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    /// Process types; default: one `web` replica running the image's own command.
    #[serde(default)]
    pub processes: Option<BTreeMap<String, ProcessSpec>>,
    /// A registered server to run on; `null` runs on the platform host.
    #[serde(default)]
    pub server_id: Option<ServerId>,
    /// Slugs of services of the same environment that must be ACTIVE before a deployment of
    /// this one leaves PENDING.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

impl ServiceSpec {
    /// A service with every setting at its documented default.
    pub fn new(slug: impl Into<String>, source: ServiceSource) -> Self {
        ServiceSpec {
            slug: slug.into(),
            name: None,
            source,
            settings: ServiceSettings::default(),
            volumes: Vec::new(),
            endpoint: None,
            processes: None,
            server_id: None,
            depends_on: Vec::new(),
        }
    }
}

/// A change to a service; absent fields stay as they are. Changes apply from the next deploy.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ServicePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source: Option<ServiceSource>,
    /// Replaces every setting (absent ones take their defaults).
    #[serde(default)]
    pub settings: Option<ServiceSettings>,
    #[serde(default)]
    pub volumes: Option<Vec<VolumeMount>>,
    /// `null` removes the endpoint.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Endpoint>))]
    pub endpoint: Option<Option<Endpoint>>,
    #[serde(default)]
    pub processes: Option<BTreeMap<String, ProcessSpec>>,
    /// `null` moves the service back to the platform host.
    #[serde(
        default,
        with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ServerId>))]
    pub server_id: Option<Option<ServerId>>,
    /// Replaces the service's dependencies (`[]` removes them).
    #[serde(default)]
    pub depends_on: Option<Vec<String>>,
}

/// Distinguish "field absent" from "field null" for patches (an absent field is also left out
/// when a patch is written, or it would read back as `null`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A page of an environment's services (`GET …/services`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ListServices {
    /// Page size (1..=1000). Without it (and without `after`) every service is returned.
    #[serde(default)]
    pub limit: Option<usize>,
    /// The `X-Next-Cursor` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// Include soft-deleted services.
    #[serde(default)]
    pub include_deleted: bool,
}

/// Which output of the running service (`GET …/logs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Keep streaming new lines.
    #[serde(default)]
    pub follow: bool,
    /// Only the last N lines of history (at most 10 000).
    #[serde(default)]
    pub tail: Option<usize>,
    /// Only this process type's workloads (`web`, `worker`, ...).
    #[serde(default)]
    pub process: Option<String>,
    /// Only this replica (from 0).
    #[serde(default)]
    pub replica: Option<u32>,
}

/// One line of a workload's output, with the workload it came from (a `line` event of the
/// logs stream).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkloadLogLine {
    /// The process type (`web`, `worker`, ...).
    pub process: String,
    /// The replica, from 0.
    pub replica: u32,
    #[serde(flatten)]
    pub line: LogLine,
}

impl WorkloadLogLine {
    /// `web.0`: how the CLI prefixes the line.
    pub fn workload(&self) -> String {
        format!("{}.{}", self.process, self.replica)
    }
}

/// A command to run in the service: an argument vector, never a shell string.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExecBody {
    /// The program and its arguments.
    pub command: Vec<String>,
    /// Seconds before the command is abandoned (default 30, at most 600).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// The process type to run it in (default `web`, else the first one).
    #[serde(default)]
    pub process: Option<String>,
    /// The replica to run it in (default 0).
    #[serde(default)]
    pub replica: Option<u32>,
}

impl std::fmt::Debug for ExecBody {
    /// The program only: arguments may carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecBody")
            .field("program", &self.command.first())
            .field("arguments", &self.command.len().saturating_sub(1))
            .field("timeout_s", &self.timeout_s)
            .field("process", &self.process)
            .field("replica", &self.replica)
            .finish()
    }
}

/// What a command run in the service did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecResult {
    /// The exit code; `null` when the command was killed (timeout) or the code is unknown.
    pub exit_code: Option<i64>,
    pub stdout: String,
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_debug_hides_the_arguments() {
        let body = ExecBody {
            command: vec!["psql".into(), "postgres://u:pw-visible-nowhere@db".into()],
            timeout_s: None,
            process: None,
            replica: None,
        };
        let debug = format!("{body:?}");
        assert!(
            debug.contains("psql") && !debug.contains("pw-visible-nowhere"),
            "{debug}"
        );
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let p: ServicePatch = serde_json::from_str(r#"{"endpoint": null}"#).unwrap();
        assert_eq!(p.endpoint, Some(None));
        assert_eq!(p.server_id, None);
    }

    #[test]
    fn a_written_patch_reads_back_as_itself() {
        for p in [
            ServicePatch::default(),
            ServicePatch {
                endpoint: Some(None),
                server_id: Some(None),
                ..ServicePatch::default()
            },
        ] {
            let text = serde_json::to_string(&p).unwrap();
            let back: ServicePatch = serde_json::from_str(&text).unwrap();
            assert_eq!(back, p, "{text}");
        }
    }
}
