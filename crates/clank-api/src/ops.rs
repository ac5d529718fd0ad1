//! Every platform operation as data: a [`Request`] (JSON `{"op": "get_service", ...}`) that
//! the platform's `execute` answers with the operation's view as JSON. The Python and Node
//! bindings call the platform only through this, so both expose exactly the same operations
//! with the same argument names.

use crate::config::ConfigEdit;
use crate::services::{ServicePatch, ServiceSpec};
use crate::templates::NewStack;

/// Where a config change applies, by address: `{"service": "demo/hello"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetRef {
    /// A workspace slug.
    Workspace(String),
    /// `[workspace/]project`.
    Project(String),
    /// `[workspace/]project/environment`.
    Environment(String),
    /// A service address (`project/service` means workspace `default`, environment
    /// `production`).
    Service(String),
}

/// One platform operation. Addresses are strings in the platform's address syntax
/// (`project/service` means workspace `default`, environment `production`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    EnsureWorkspace {
        slug: String,
    },
    ListWorkspaces,
    CreateProject {
        #[serde(default = "default_workspace")]
        workspace: String,
        name: String,
        #[serde(default)]
        slug: Option<String>,
    },
    GetProject {
        project: String,
    },
    ListProjects {
        #[serde(default = "default_workspace")]
        workspace: String,
        #[serde(default)]
        include_deleted: bool,
    },
    DeleteProject {
        project: String,
    },
    CreateEnvironment {
        project: String,
        name: String,
    },
    ListEnvironments {
        project: String,
    },
    CreateService {
        environment: String,
        spec: ServiceSpec,
    },
    GetService {
        service: String,
    },
    UpdateService {
        service: String,
        patch: ServicePatch,
    },
    /// Stop a service (its route and workloads go; deployments and volumes are kept).
    StopService {
        service: String,
    },
    /// Start a stopped service again.
    StartService {
        service: String,
    },
    ListServices {
        environment: String,
    },
    /// Config edits at one scope, in one write.
    SetConfig {
        target: TargetRef,
        changes: Vec<ConfigEdit>,
    },
    GetConfig {
        target: TargetRef,
    },
    ResolvedConfig {
        service: String,
    },
    Deploy {
        service: String,
    },
    Rollback {
        service: String,
        number: u64,
    },
    Cancel {
        service: String,
        number: u64,
    },
    GetDeployment {
        service: String,
        number: u64,
    },
    ListDeployments {
        service: String,
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        before: Option<u64>,
    },
    DeployLog {
        service: String,
        number: u64,
    },
    ListBuilds {
        service: String,
        #[serde(default = "default_limit")]
        limit: usize,
        #[serde(default)]
        before: Option<u64>,
    },
    /// One build with the tail of its log.
    GetBuild {
        service: String,
        number: u64,
    },
    /// Wait until the deployment is ACTIVE or finished, at most `timeout_s` seconds.
    Wait {
        service: String,
        number: u64,
        timeout_s: f64,
    },
    /// The addresses a deployment's `web` workloads answer on.
    Endpoints {
        service: String,
        number: u64,
    },
    ListTemplates,
    GetTemplate {
        name: String,
    },
    /// Create a template's services in `environment` and deploy them, dependencies first.
    CreateStack {
        environment: String,
        stack: NewStack,
    },
    ListStacks {
        environment: String,
    },
    /// `stack` is `[workspace/]project[/environment]/slug`, like a service address.
    GetStack {
        stack: String,
    },
    /// Preview (no `apply`) or apply (`apply` = the preview's `plan_id`) an upgrade.
    UpgradeStack {
        stack: String,
        #[serde(default)]
        to: Option<String>,
        #[serde(default)]
        apply: Option<String>,
    },
}

fn default_workspace() -> String {
    "default".to_owned()
}

fn default_limit() -> usize {
    20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_config_debug_never_prints_a_value() {
        let r: Request = serde_json::from_str(
            r#"{"op":"set_config","target":{"service":"demo/web"},
                "changes":[{"key":"API_KEY","value":"hunter2-visible-nowhere","secret":true}]}"#,
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("hunter2-visible-nowhere"));
    }

    #[test]
    fn requests_round_trip_with_their_defaults() {
        let r: Request = serde_json::from_str(r#"{"op":"list_projects"}"#).unwrap();
        assert_eq!(
            r,
            Request::ListProjects {
                workspace: "default".into(),
                include_deleted: false
            }
        );
        let back: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
