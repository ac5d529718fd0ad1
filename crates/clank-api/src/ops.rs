//! Every platform operation as data: a [`Request`] (JSON `{"op": "get_service", ...}`) that
//! the platform's `execute` answers with the operation's view as JSON. The Python and Node
//! bindings call the platform only through this, so both expose exactly the same operations
//! with the same argument names.

use crate::config::ConfigEdit;
use crate::previews::PreviewSettingsBody;
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
    /// `[workspace/]team`: a team's slug (or id).
    Team(String),
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
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        name: String,
        #[serde(default)]
        slug: Option<String>,
    },
    GetProject {
        project: String,
    },
    ListProjects {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        #[serde(default)]
        include_deleted: bool,
    },
    /// Soft-delete a project with its environments and services (restorable for the
    /// retention period), or with `purge` remove it for good (`volumes` too if set).
    DeleteProject {
        project: String,
        #[serde(default)]
        purge: bool,
        #[serde(default)]
        volumes: bool,
    },
    /// Bring a soft-deleted project back with its environments and services.
    RestoreProject {
        project: String,
    },
    /// Soft-delete (or with `purge`, remove) an environment and its services; the default
    /// environment is deleted only with its project.
    DeleteEnvironment {
        environment: String,
        #[serde(default)]
        purge: bool,
        #[serde(default)]
        volumes: bool,
    },
    /// Bring a soft-deleted environment back with its services.
    RestoreEnvironment {
        environment: String,
    },
    /// Soft-delete (or with `purge`, remove) a service.
    DeleteService {
        service: String,
        #[serde(default)]
        purge: bool,
        #[serde(default)]
        volumes: bool,
    },
    /// Bring a soft-deleted service back (its ACTIVE deployment starts again).
    RestoreService {
        service: String,
    },
    CreateEnvironment {
        project: String,
        name: String,
    },
    ListEnvironments {
        project: String,
        /// Also the soft-deleted ones (restorable), `deleted_at` set.
        #[serde(default)]
        include_deleted: bool,
    },
    /// Clone an environment (`[workspace/]project/environment`) into a new one.
    CloneEnvironment {
        environment: String,
        clone: crate::environments::CloneEnvironment,
    },
    /// Plan a promotion of a service or environment to another environment; stores the plan.
    PlanPromotion {
        source: String,
        target: String,
    },
    /// A stored plan by id.
    GetPlan {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        plan: String,
    },
    /// Apply a stored plan by id (409 when anything it read changed, or it expired).
    ApplyPlan {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        plan: String,
    },
    /// A project as a declaration (what `clank export` writes); secrets by name only.
    ExportProject {
        project: String,
    },
    /// Plan applying a declaration to its project (created if missing) in `workspace`:
    /// stores the plan (apply it with `apply_plan`); nothing else is written.
    ApplyDeclaration {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        declaration: crate::declarations::Declaration,
        /// Values of the secrets the target lacks, by `secret_env` name.
        #[serde(default)]
        secrets: crate::declarations::SecretValues,
        /// What the plan shows as its source; default `declaration`.
        #[serde(default)]
        source: Option<String>,
    },
    /// A project's preview settings (`null` when never set).
    GetPreviewSettings {
        project: String,
    },
    /// Set a project's preview settings (replacing earlier ones).
    SetPreviewSettings {
        project: String,
        settings: PreviewSettingsBody,
    },
    /// A project's live preview environments.
    ListPreviews {
        project: String,
    },
    /// Tear down pull request `pull_request`'s preview now, with its volumes.
    ClosePreview {
        project: String,
        pull_request: u64,
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
        /// Also the soft-deleted ones (restorable), `deleted_at` set.
        #[serde(default)]
        include_deleted: bool,
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
    /// A team in `workspace`; its slug is made from the name when absent.
    CreateTeam {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        name: String,
        #[serde(default)]
        slug: Option<String>,
    },
    ListTeams {
        /// Absent: the default workspace (`default` embedded, the token's over a daemon).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// `team` is `[workspace/]team` (a slug or an id), here and below.
    GetTeam {
        team: String,
    },
    /// Refused while projects are assigned to the team (unassign them first).
    DeleteTeam {
        team: String,
    },
    /// `member` is a workspace member's user id or email.
    AddTeamMember {
        team: String,
        member: String,
    },
    RemoveTeamMember {
        team: String,
        member: String,
    },
    ListTeamMembers {
        team: String,
    },
    /// Assign a project to a team of its workspace (`team` a slug or id), or with no `team`,
    /// unassign it.
    AssignProject {
        project: String,
        #[serde(default)]
        team: Option<String>,
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
    /// What runs now and what happened lately (`clank status`): the service, its ACTIVE
    /// deployment however old, its five newest deployments.
    Status {
        service: String,
    },
    /// The running service's recent output (its ACTIVE deployment's workloads), oldest
    /// first: at most `tail` lines per workload (default 100, at most 10 000).
    Logs {
        service: String,
        #[serde(default)]
        tail: Option<usize>,
        /// Only this process type's workloads (`web`, `worker`, ...).
        #[serde(default)]
        process: Option<String>,
        /// Only this replica (from 0).
        #[serde(default)]
        replica: Option<u32>,
    },
    /// Run a command in the running service (non-interactive); its exit code and output.
    Exec {
        service: String,
        exec: crate::services::ExecBody,
    },
    /// The workspace's remote servers with their live state.
    ListServers {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// Register a server: its join token is shown once, for `clank-agent join`.
    CreateServer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        name: String,
    },
    GetServer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        server: String,
    },
    /// A new join token for a server (its agent re-enrolls with it); the old one stops working.
    ServerJoinToken {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        server: String,
    },
    /// Revoke a server: its agent is disconnected and can no longer join.
    RevokeServer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        server: String,
    },
    /// The workspace's audit log, newest first: `limit` events (1..=1000, default 50) older
    /// than event `before`.
    ListAudit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
        #[serde(default)]
        limit: Option<usize>,
        #[serde(default)]
        before: Option<String>,
    },
    /// The workspace's members (over a daemon: members and tokens are its API's).
    ListMembers,
    /// Add a member with a role; answers their first token (shown once).
    AddMember {
        member: crate::members::AddMember,
    },
    /// Change a member's role (`member`: user id or email).
    UpdateMember {
        member: String,
        role: clank_core::model::Role,
    },
    /// Remove a member with their tokens.
    RemoveMember {
        member: String,
    },
    /// The calling member's tokens, or with `all` every member's (Admin and Owner).
    ListTokens {
        #[serde(default)]
        all: bool,
    },
    /// A token for the caller, with at most their role; shown once.
    CreateToken {
        token: crate::members::NewToken,
    },
    /// Revoke a token by id.
    RevokeToken {
        token: String,
    },
}

fn default_limit() -> usize {
    20
}

/// A `wait` request's `timeout_s` as a duration: a non-negative number of seconds.
pub fn wait_timeout(timeout_s: f64) -> Result<std::time::Duration, clank_core::InvalidInput> {
    std::time::Duration::try_from_secs_f64(timeout_s).map_err(|_| {
        clank_core::InvalidInput::new(
            "timeout_s",
            "range",
            format!("timeout must be a non-negative number of seconds, not {timeout_s}"),
        )
    })
}

/// The operations (`op`) that only read the store: embedded, they finish in microseconds,
/// without the runtime (`status`, `endpoints`, `logs` and `wait` ask it, so they are not here).
/// The bindings answer these in place instead of through an awaitable; an operation missing
/// here is merely answered through one.
pub const STORE_READS: &[&str] = &[
    "list_workspaces",
    "get_project",
    "list_projects",
    "list_environments",
    "get_plan",
    "export_project",
    "get_preview_settings",
    "list_previews",
    "get_service",
    "list_services",
    "get_config",
    "resolved_config",
    "get_deployment",
    "list_deployments",
    "deploy_log",
    "list_builds",
    "get_build",
    "list_teams",
    "get_team",
    "list_team_members",
    "list_templates",
    "get_template",
    "list_stacks",
    "get_stack",
    "list_servers",
    "get_server",
    "list_audit",
    "list_members",
    "list_tokens",
];

/// Whether JSON `request` is one of [`STORE_READS`] (a malformed one is not: executing it
/// answers the error).
pub fn is_store_read(request: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(request).is_ok_and(|r| {
        r.get("op")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|op| STORE_READS.contains(&op))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_store_read_names_an_operation() {
        for op in STORE_READS {
            let err = serde_json::from_str::<Request>(&format!(r#"{{"op":"{op}"}}"#))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{op}: {err}");
        }
        assert!(is_store_read(
            r#"{"op":"get_service","service":"shop/web"}"#
        ));
        assert!(!is_store_read(r#"{"op":"deploy","service":"shop/web"}"#));
        assert!(!is_store_read("not json"));
    }

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
                workspace: None,
                include_deleted: false
            }
        );
        let back: Request = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
