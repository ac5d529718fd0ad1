//! Git-push webhooks for auto-deploy: GitHub (`X-Hub-Signature-256`), GitLab (`X-Gitlab-Token`)
//! and Gitea/Forgejo (`X-Gitea-Signature` / `X-Forgejo-Signature`), and the same forges'
//! pull-request events, which open, redeploy and close preview environments
//! (`clank_platform`'s `previews`): each forge's payload is read into one `PullRequestEvent`.
//!
//! The signature is checked against the raw body *before* anything is parsed, with each
//! workspace's webhook secret (constant-time), and the first workspace whose secret verifies is
//! the one the push deploys in. A verified push deploys every git service of that workspace
//! whose normalised `repo_url` is the pushed repository's and whose branch is the pushed one,
//! with `auto_deploy` on; older queued deployments are cancelled by the planner, so pushes
//! arriving during a build queue the newest only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clank_api::previews::PullRequestResult;
use clank_api::webhooks::{ForgePush, PushResult, WebhookResult, WebhookSecretCreated};
use clank_core::Timestamp;
use clank_core::model::{Actor, AuditOutcome, Permission, Workspace};
use clank_platform::{
    PullRequestAction, PullRequestEvent, Push, PushAdmission, normalize_repo_url,
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, audited, record};
use super::auth::Principal;
use super::error::{ApiError, ApiResult, ErrorBody};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(github))
        .routes(routes!(gitlab))
        .routes(routes!(gitea))
        .routes(routes!(rotate_secret))
}

/// The forges we accept pushes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    /// As the audit log names the actor (`webhook:github`).
    fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }
}

/// Owner/Admin: create or rotate the workspace's webhook secret. The old one stops verifying at
/// once.
#[utoipa::path(
    post,
    path = "/v1/workspaces/{ws}/webhook-secret",
    tag = "webhooks",
    params(
        ("ws" = String, Path, description = "workspace slug"),
    ),
    responses(
        (status = 201, description = "success", body = WebhookSecretCreated),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rotate_secret(
    p: Principal,
    State(st): State<AppState>,
    Path(ws): Path<String>,
) -> ApiResult<(StatusCode, Json<WebhookSecretCreated>)> {
    p.in_workspace(&ws)?;
    let change = Change::new("webhook_secret.rotate", &ws);
    audited(&st, &p, change, async {
        p.require(Permission::ManageTeamSettings)?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        st.platform.set_webhook_secret(&ws, &secret).await?;
        Ok((
            StatusCode::CREATED,
            Json(WebhookSecretCreated {
                secret,
                endpoints: vec![
                    "/v1/webhooks/github".to_owned(),
                    "/v1/webhooks/gitlab".to_owned(),
                    "/v1/webhooks/gitea".to_owned(),
                ],
            }),
        ))
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/github",
    tag = "webhooks",
    request_body(content = ForgePush, content_type = "application/json", description = "the forge's push payload, signed"),
    responses(
        (status = 200, description = "ping, another event, a replay or a refused fork: nothing deployed", body = WebhookResult),
        (status = 202, description = "the deployments a push or a pull request event created", body = WebhookResult),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn github(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    receive(Forge::GitHub, &st, &headers, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/gitlab",
    tag = "webhooks",
    request_body(content = ForgePush, content_type = "application/json", description = "the forge's push payload, signed"),
    responses(
        (status = 200, description = "ping, another event, a replay or a refused fork: nothing deployed", body = WebhookResult),
        (status = 202, description = "the deployments a push or a pull request event created", body = WebhookResult),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn gitlab(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    receive(Forge::GitLab, &st, &headers, &body).await
}

#[utoipa::path(
    post,
    path = "/v1/webhooks/gitea",
    tag = "webhooks",
    request_body(content = ForgePush, content_type = "application/json", description = "the forge's push payload, signed"),
    responses(
        (status = 200, description = "ping, another event, a replay or a refused fork: nothing deployed", body = WebhookResult),
        (status = 202, description = "the deployments a push or a pull request event created", body = WebhookResult),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(()),
)]
pub(super) async fn gitea(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    receive(Forge::Gitea, &st, &headers, &body).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// HMAC-SHA256 of `body` under `secret`, checked against `hex_sig` in constant time.
fn hmac_matches(secret: &[u8], body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The workspace whose secret signed this delivery, or 401.
async fn verify(
    forge: Forge,
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Workspace> {
    let provided =
        match forge {
            Forge::GitHub => header(headers, "x-hub-signature-256")
                .map(|s| s.strip_prefix("sha256=").unwrap_or("")),
            Forge::GitLab => header(headers, "x-gitlab-token"),
            Forge::Gitea => header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-forgejo-signature")),
        };
    let Some(provided) = provided.filter(|s| !s.is_empty()) else {
        let name = match forge {
            Forge::GitHub => "X-Hub-Signature-256",
            Forge::GitLab => "X-Gitlab-Token",
            Forge::Gitea => "X-Gitea-Signature",
        };
        return Err(ApiError::unauthorized(format!("missing `{name}` header")));
    };
    let mut found = None;
    // Every secret is checked (no early exit), so timing says nothing about which matched.
    for (ws, secret) in st.platform.webhook_secrets().await? {
        let secret = secret.expose().as_bytes();
        let ok = match forge {
            Forge::GitLab => bool::from(secret.ct_eq(provided.as_bytes())),
            Forge::GitHub | Forge::Gitea => hmac_matches(secret, body, provided),
        };
        if ok && found.is_none() {
            found = Some(ws);
        }
    }
    found.ok_or_else(|| ApiError::unauthorized("the webhook signature does not verify"))
}

/// The push payload: a JSON body, or GitHub's form encoding (`payload=<JSON>`, its default
/// content type for new webhooks). The signature was checked over the raw body either way.
fn parse_payload(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let form = header(headers, "content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let json: std::borrow::Cow<'_, [u8]> = if form {
        match form_urlencoded::parse(body).find(|(k, _)| k == "payload") {
            Some((_, v)) => std::borrow::Cow::Owned(v.into_owned().into_bytes()),
            None => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "a form-encoded delivery carries its JSON in the `payload` field, and this \
                     one has none; set the webhook's content type to application/json",
                ));
            }
        }
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    serde_json::from_slice(&json).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!(
                "the body is not JSON ({e}); set the webhook's content type to application/json"
            ),
        )
    })
}

/// The forge's id for this delivery (the same on a redelivery), if it sent one.
fn delivery_id(forge: Forge, headers: &HeaderMap) -> Option<&str> {
    let names: &[&str] = match forge {
        Forge::GitHub => &["x-github-delivery"],
        Forge::GitLab => &["x-gitlab-event-uuid", "idempotency-key"],
        Forge::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
    };
    names
        .iter()
        .find_map(|n| header(headers, n))
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// When the pushed commit was made, from the signed payload: `head_commit.timestamp`
/// (GitHub, Gitea) or the last of `commits[].timestamp` (GitLab).
fn committed_at(forge: Forge, payload: &Value) -> Option<Timestamp> {
    let text = match forge {
        Forge::GitHub | Forge::Gitea => str_field(payload, &["head_commit", "timestamp"]),
        Forge::GitLab => payload
            .get("commits")
            .and_then(Value::as_array)
            .and_then(|c| c.last())
            .and_then(|c| c.get("timestamp"))
            .and_then(Value::as_str),
    }?;
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .ok()
        .map(Timestamp)
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).field(field)
}

fn str_field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

async fn receive(
    forge: Forge,
    st: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let ws = verify(forge, st, headers, body).await?;

    let event = match forge {
        Forge::GitHub => header(headers, "x-github-event"),
        Forge::GitLab => header(headers, "x-gitlab-event"),
        Forge::Gitea => {
            header(headers, "x-gitea-event").or_else(|| header(headers, "x-forgejo-event"))
        }
    }
    .unwrap_or("");
    let is_pull_request = match forge {
        Forge::GitHub => event == "pull_request",
        Forge::GitLab => event == "Merge Request Hook",
        Forge::Gitea => event == "pull_request" || event == "pull_request_sync",
    };
    if is_pull_request {
        return receive_pull_request(forge, st, &ws, headers, body).await;
    }
    let is_push = match forge {
        Forge::GitHub | Forge::Gitea => event == "push",
        Forge::GitLab => event == "Push Hook",
    };
    if !is_push {
        let ping = matches!(forge, Forge::GitHub) && event == "ping";
        let ignored = if ping {
            "ping".to_owned()
        } else {
            format!("event `{event}` is not a push")
        };
        let body = serde_json::json!({
            "workspace": ws.slug,
            "ignored": ignored,
            "deployments": [],
        });
        return Ok((StatusCode::OK, Json(body)).into_response());
    }

    let payload: Value = parse_payload(headers, body)?;
    if !payload.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the body is not a JSON object",
        ));
    }
    let git_ref = str_field(&payload, &["ref"])
        .ok_or_else(|| invalid("ref", "a push names its `ref` (`refs/heads/<branch>`)"))?;
    let commit = str_field(&payload, &["after"])
        .ok_or_else(|| invalid("after", "a push names the commit it moved to in `after`"))?;
    let repo_key = match forge {
        Forge::GitLab => "project",
        Forge::GitHub | Forge::Gitea => "repository",
    };
    let repo = payload
        .get(repo_key)
        .filter(|r| r.is_object())
        .ok_or_else(|| invalid(repo_key, format!("a push names its `{repo_key}`")))?;
    let url_keys: &[&str] = match forge {
        Forge::GitLab => &[
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "http_url",
            "ssh_url",
        ],
        Forge::GitHub | Forge::Gitea => &["clone_url", "ssh_url", "html_url", "git_url", "url"],
    };
    let urls: Vec<String> = url_keys
        .iter()
        .filter_map(|k| repo.get(*k).and_then(Value::as_str))
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(invalid(
            &format!("{repo_key}.{}", url_keys[0]),
            "the push names no clone URL of its repository",
        ));
    }
    let repository = urls[0].clone();

    let mut result = PushResult {
        workspace: ws.slug.clone(),
        repository,
        branch: None,
        commit: Some(commit.to_owned()),
        ignored: None,
        deployments: Vec::new(),
    };
    let deleted = payload.get("deleted").and_then(Value::as_bool) == Some(true)
        || (!commit.is_empty() && commit.bytes().all(|b| b == b'0'));
    match git_ref.strip_prefix("refs/heads/") {
        None => result.ignored = Some(format!("`{git_ref}` is not a branch")),
        Some(_) if deleted => result.ignored = Some("the branch was deleted".to_owned()),
        Some(branch) => {
            result.branch = Some(branch.to_owned());
            if commit.len() < 7
                || commit.len() > 64
                || !commit.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(invalid("after", "`after` is not a commit SHA"));
            }
            let push = Push {
                delivery: delivery_id(forge, headers),
                repo_urls: &urls,
                branch,
                commit,
                committed_at: committed_at(forge, &payload),
            };
            let previous = st.platform.pushed_head(ws.id, &push).await?;
            if let PushAdmission::Ignored(why) = st.platform.admit_push(ws.id, &push).await? {
                tracing::info!(workspace = %ws.slug, branch, commit, reason = %why, "Push webhook ignored.");
                result.ignored = Some(why);
                return Ok((StatusCode::OK, Json(result)).into_response());
            }
            result.deployments = match st.platform.deploy_push(ws.id, &urls, branch, commit).await {
                Ok(deployments) => deployments,
                Err(e) => {
                    // Not deployed: the forge's redelivery must not be ignored.
                    if let Err(undo) = st.platform.unadmit_push(ws.id, &push, previous).await {
                        tracing::error!(error = %undo, "Could not forget a push that failed to deploy.");
                    }
                    return Err(e.into());
                }
            };
            for d in &result.deployments {
                let change = Change::new(
                    "deployment.create",
                    format!("{}/{}/{}/{}", ws.slug, d.project, d.environment, d.service),
                )
                .details(serde_json::json!({
                    "number": d.number,
                    "branch": branch,
                    "commit": commit,
                }));
                let actor = Actor::Webhook {
                    provider: forge.name().to_owned(),
                };
                record(st, ws.id, actor, change, AuditOutcome::Succeeded).await;
            }
            tracing::info!(
                workspace = %ws.slug,
                branch,
                commit,
                deployments = result.deployments.len(),
                "Push webhook received."
            );
        }
    }
    Ok((StatusCode::ACCEPTED, Json(result)).into_response())
}

/// A pull-request event read from a forge's payload; `Ok(None)` for an action that neither
/// opens, updates nor closes one (labels, edits, approvals, a GitLab `update` without commits).
fn pull_request_event(forge: Forge, payload: &Value) -> ApiResult<Option<PullRequestEvent>> {
    match forge {
        Forge::GitHub | Forge::Gitea => github_style_pull_request(payload),
        Forge::GitLab => gitlab_merge_request(payload),
    }
}

/// GitHub's and Gitea/Forgejo's `pull_request` payloads share their shape: `action`,
/// `number`, `pull_request.{head,base}.{ref,sha,repo}` and `pull_request.merged`.
fn github_style_pull_request(payload: &Value) -> ApiResult<Option<PullRequestEvent>> {
    let action = str_field(payload, &["action"])
        .ok_or_else(|| invalid("action", "a pull request event names its `action`"))?;
    let merged = payload
        .pointer("/pull_request/merged")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let action = match action {
        "opened" => PullRequestAction::Opened,
        "reopened" => PullRequestAction::Reopened,
        // Gitea and Forgejo say `synchronized`.
        "synchronize" | "synchronized" => PullRequestAction::Synchronize,
        "closed" => PullRequestAction::Closed { merged },
        _ => return Ok(None),
    };
    let number = payload
        .get("number")
        .or_else(|| payload.pointer("/pull_request/number"))
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("number", "a pull request event names its `number`"))?;
    let head = payload
        .pointer("/pull_request/head")
        .ok_or_else(|| invalid("pull_request.head", "a pull request names its head"))?;
    let base = payload
        .pointer("/pull_request/base")
        .ok_or_else(|| invalid("pull_request.base", "a pull request names its base"))?;
    let head_branch = str_field(head, &["ref"]).ok_or_else(|| {
        invalid(
            "pull_request.head.ref",
            "a pull request names its head branch",
        )
    })?;
    let head_commit = str_field(head, &["sha"]).ok_or_else(|| {
        invalid(
            "pull_request.head.sha",
            "a pull request names its head commit",
        )
    })?;
    let url_keys = ["clone_url", "ssh_url", "html_url", "git_url"];
    let urls = |side: &Value| -> Vec<String> {
        let Some(repo) = side.get("repo").filter(|r| r.is_object()) else {
            return Vec::new();
        };
        url_keys
            .iter()
            .filter_map(|k| repo.get(*k).and_then(Value::as_str))
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (head_repo_urls, base_repo_urls) = (urls(head), urls(base));
    if base_repo_urls.is_empty() {
        return Err(invalid(
            "pull_request.base.repo.clone_url",
            "the pull request names no clone URL of its repository",
        ));
    }
    let repo_id = |side: &Value| {
        side.pointer("/repo/id")
            .and_then(Value::as_u64)
            .or_else(|| side.get("repo_id").and_then(Value::as_u64))
    };
    let from_fork = is_fork(
        (repo_id(head), repo_id(base)),
        &head_repo_urls,
        &base_repo_urls,
    );
    checked(PullRequestEvent {
        number,
        action,
        head_branch: head_branch.to_owned(),
        head_commit: head_commit.to_owned(),
        head_repo_urls,
        base_repo_urls,
        from_fork,
    })
}

/// GitLab's `Merge Request Hook`: `object_attributes.{action, iid, source_branch,
/// last_commit.id, oldrev, source_project_id, target_project_id, source, target}`.
fn gitlab_merge_request(payload: &Value) -> ApiResult<Option<PullRequestEvent>> {
    let attrs = payload
        .get("object_attributes")
        .filter(|a| a.is_object())
        .ok_or_else(|| {
            invalid(
                "object_attributes",
                "a merge request event names its `object_attributes`",
            )
        })?;
    let action = match str_field(attrs, &["action"]).unwrap_or("") {
        "open" => PullRequestAction::Opened,
        "reopen" => PullRequestAction::Reopened,
        // An update without `oldrev` changed the title, labels or assignees, not the code.
        "update"
            if attrs
                .get("oldrev")
                .and_then(Value::as_str)
                .is_some_and(|r| !r.is_empty()) =>
        {
            PullRequestAction::Synchronize
        }
        "close" => PullRequestAction::Closed { merged: false },
        "merge" => PullRequestAction::Closed { merged: true },
        _ => return Ok(None),
    };
    let number = attrs
        .get("iid")
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid("object_attributes.iid", "a merge request names its `iid`"))?;
    let head_branch = str_field(attrs, &["source_branch"]).ok_or_else(|| {
        invalid(
            "object_attributes.source_branch",
            "a merge request names its source branch",
        )
    })?;
    let head_commit = str_field(attrs, &["last_commit", "id"]).ok_or_else(|| {
        invalid(
            "object_attributes.last_commit.id",
            "a merge request names its last commit",
        )
    })?;
    let url_keys = [
        "git_http_url",
        "git_ssh_url",
        "web_url",
        "http_url",
        "ssh_url",
    ];
    let urls = |key: &str| -> Vec<String> {
        // GitLab's own payloads carry `target` twice: in the attributes and as `project`.
        let fallback = (key == "target").then(|| payload.get("project")).flatten();
        let Some(project) = attrs.get(key).or(fallback) else {
            return Vec::new();
        };
        url_keys
            .iter()
            .filter_map(|k| project.get(*k).and_then(Value::as_str))
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let (head_repo_urls, base_repo_urls) = (urls("source"), urls("target"));
    if base_repo_urls.is_empty() {
        return Err(invalid(
            "object_attributes.target.git_http_url",
            "the merge request names no clone URL of its target project",
        ));
    }
    let from_fork = is_fork(
        (
            attrs.get("source_project_id").and_then(Value::as_u64),
            attrs.get("target_project_id").and_then(Value::as_u64),
        ),
        &head_repo_urls,
        &base_repo_urls,
    );
    checked(PullRequestEvent {
        number,
        action,
        head_branch: head_branch.to_owned(),
        head_commit: head_commit.to_owned(),
        head_repo_urls,
        base_repo_urls,
        from_fork,
    })
}

/// Whether a pull request comes from another repository than the one it targets: by the
/// forge's repository ids `(head, base)` when it sends both, else by clone URL. A head
/// repository the forge no longer shows (a deleted fork) is not the base's.
fn is_fork(ids: (Option<u64>, Option<u64>), head_urls: &[String], base_urls: &[String]) -> bool {
    match ids {
        (Some(head), Some(base)) => head != base,
        _ => match (head_urls.first(), base_urls.first()) {
            (Some(head), Some(base)) => normalize_repo_url(head) != normalize_repo_url(base),
            _ => true,
        },
    }
}

/// The head commit is a SHA (lowercased) and the branch a plain name before anything is built
/// from them.
fn checked(mut event: PullRequestEvent) -> ApiResult<Option<PullRequestEvent>> {
    event.head_commit =
        clank_core::validate::validate_commit_sha("head_commit", &event.head_commit)
            .map_err(|e| invalid("head_commit", e.message))?;
    clank_core::validate::validate_git_ref("head_branch", &event.head_branch)
        .map_err(|e| invalid("head_branch", e.message))?;
    if event.number == 0 {
        return Err(invalid("number", "a pull request's number is 1 or more"));
    }
    Ok(Some(event))
}

async fn receive_pull_request(
    forge: Forge,
    st: &AppState,
    ws: &Workspace,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let payload: Value = parse_payload(headers, body)?;
    if !payload.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the body is not a JSON object",
        ));
    }
    let actor = Actor::Webhook {
        provider: forge.name().to_owned(),
    };
    let Some(event) = pull_request_event(forge, &payload)? else {
        let action = str_field(&payload, &["action"])
            .or_else(|| str_field(&payload, &["object_attributes", "action"]))
            .unwrap_or("");
        let result = serde_json::json!({
            "workspace": ws.slug,
            "ignored": format!("pull request action `{action}` neither opens, updates nor closes one"),
            "previews": [],
        });
        return Ok((StatusCode::OK, Json(result)).into_response());
    };
    let mut result = PullRequestResult {
        workspace: ws.slug.clone(),
        pull_request: event.number,
        action: event.action.name().to_owned(),
        ignored: None,
        previews: Vec::new(),
    };
    // Only the delivery id is recorded: a pull request's head commit is also a push's.
    let delivery = Push {
        delivery: delivery_id(forge, headers),
        repo_urls: &[],
        branch: &event.head_branch,
        commit: &event.head_commit,
        committed_at: None,
    };
    if let PushAdmission::Ignored(why) = st.platform.admit_push(ws.id, &delivery).await? {
        result.ignored = Some(why);
        return Ok((StatusCode::OK, Json(result)).into_response());
    }
    let handled = match st.platform.pull_request(ws.id, &event, &actor).await {
        Ok(h) => h,
        Err(e) => {
            if let Err(undo) = st.platform.unadmit_push(ws.id, &delivery, None).await {
                tracing::error!(error = %undo, "Could not forget a pull request event that failed.");
            }
            return Err(e.into());
        }
    };
    if !handled.refused_forks.is_empty() {
        let refused = handled.refused_forks.join("`, `");
        let change = Change::new("preview.refuse_fork", format!("{}/{refused}", ws.slug)).details(
            serde_json::json!({
                "pull_request": event.number,
                "head_repository": event.head_repo_urls.first(),
                "projects": handled.refused_forks,
            }),
        );
        record(st, ws.id, actor.clone(), change, AuditOutcome::Succeeded).await;
        if handled.previews.is_empty() {
            result.ignored = Some(format!(
                "ignored: pull request from a fork ({}); project `{refused}` refuses forks because \
                 they would run with the project's secrets; set allow_forks in its preview \
                 settings to build them",
                event
                    .head_repo_urls
                    .first()
                    .map_or("unknown repository", String::as_str)
            ));
        }
    }
    if handled.previews.is_empty() && result.ignored.is_none() {
        result.ignored =
            Some("no project with previews on builds this pull request's repository".to_owned());
    }
    tracing::info!(
        workspace = %ws.slug,
        pull_request = event.number,
        action = event.action.name(),
        previews = handled.previews.len(),
        "Pull request webhook received."
    );
    let status = if handled.previews.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    result.previews = handled.previews;
    Ok((status, Json(result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// GitHub's and Gitea's `pull_request` payload (trimmed to what is read, plus noise).
    fn github_style(action: &str, head_repo: (u64, &str), merged: bool) -> Value {
        serde_json::json!({
            "action": action,
            "number": 42,
            "pull_request": {
                "number": 42,
                "title": "Add a banner",
                "merged": merged,
                "head": {
                    "ref": "feature/banner",
                    "sha": SHA,
                    "repo_id": head_repo.0,
                    "repo": {"id": head_repo.0, "clone_url": head_repo.1, "full_name": "x/shop"},
                },
                "base": {
                    "ref": "main",
                    "sha": "fedcba9876543210fedcba9876543210fedcba98",
                    "repo_id": 1,
                    "repo": {"id": 1, "clone_url": "https://git.example.com/acme/shop.git"},
                },
            },
            "repository": {"id": 1, "clone_url": "https://git.example.com/acme/shop.git"},
        })
    }

    fn gitlab(action: &str, source_project: u64, oldrev: Option<&str>) -> Value {
        let mut attrs = serde_json::json!({
            "iid": 7,
            "action": action,
            "source_branch": "feature/banner",
            "target_branch": "main",
            "source_project_id": source_project,
            "target_project_id": 1,
            "last_commit": {"id": SHA},
            "source": {"git_http_url": if source_project == 1 {
                "https://gitlab.example.com/acme/shop.git"
            } else {
                "https://gitlab.example.com/mallory/shop.git"
            }},
            "target": {"git_http_url": "https://gitlab.example.com/acme/shop.git"},
        });
        if let Some(rev) = oldrev {
            attrs["oldrev"] = Value::from(rev);
        }
        serde_json::json!({
            "object_kind": "merge_request",
            "project": {"id": 1, "git_http_url": "https://gitlab.example.com/acme/shop.git"},
            "object_attributes": attrs,
        })
    }

    const SAME: (u64, &str) = (1, "https://git.example.com/acme/shop.git");
    const FORK: (u64, &str) = (9, "https://git.example.com/mallory/shop.git");

    #[test]
    fn github_and_gitea_pull_requests_are_read_with_their_actions() {
        for (forge, sync) in [
            (Forge::GitHub, "synchronize"),
            (Forge::Gitea, "synchronized"),
        ] {
            let e = pull_request_event(forge, &github_style("opened", SAME, false))
                .unwrap()
                .unwrap();
            assert_eq!(e.number, 42);
            assert_eq!(e.action, PullRequestAction::Opened);
            assert_eq!(e.head_branch, "feature/banner");
            assert_eq!(e.head_commit, SHA);
            assert_eq!(e.base_repo_urls[0], "https://git.example.com/acme/shop.git");
            assert!(!e.from_fork);
            let read = |action, merged| {
                pull_request_event(forge, &github_style(action, SAME, merged))
                    .unwrap()
                    .map(|e| e.action)
            };
            assert_eq!(read("reopened", false), Some(PullRequestAction::Reopened));
            assert_eq!(read(sync, false), Some(PullRequestAction::Synchronize));
            assert_eq!(
                read("closed", false),
                Some(PullRequestAction::Closed { merged: false })
            );
            assert_eq!(
                read("closed", true),
                Some(PullRequestAction::Closed { merged: true })
            );
            assert_eq!(read("labeled", false), None);
        }
    }

    #[test]
    fn a_pull_request_from_another_repository_is_a_fork() {
        for forge in [Forge::GitHub, Forge::Gitea] {
            let e = pull_request_event(forge, &github_style("opened", FORK, false))
                .unwrap()
                .unwrap();
            assert!(e.from_fork, "{forge:?}");
            assert_eq!(e.head_repo_urls[0], FORK.1);
            // A deleted fork: the forge shows no head repository.
            let mut gone = github_style("synchronize", FORK, false);
            gone["pull_request"]["head"]["repo"] = Value::Null;
            gone["pull_request"]["head"]
                .as_object_mut()
                .unwrap()
                .remove("repo_id");
            assert!(pull_request_event(forge, &gone).unwrap().unwrap().from_fork);
        }
        let e = pull_request_event(Forge::GitLab, &gitlab("open", 5, None))
            .unwrap()
            .unwrap();
        assert!(e.from_fork);
        assert_eq!(
            e.head_repo_urls[0],
            "https://gitlab.example.com/mallory/shop.git"
        );
    }

    #[test]
    fn gitlab_merge_requests_are_read_and_an_update_without_commits_is_no_push() {
        let read = |action, oldrev| {
            pull_request_event(Forge::GitLab, &gitlab(action, 1, oldrev))
                .unwrap()
                .map(|e| e.action)
        };
        let e = pull_request_event(Forge::GitLab, &gitlab("open", 1, None))
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.number, e.head_branch.as_str(), e.head_commit.as_str()),
            (7, "feature/banner", SHA)
        );
        assert!(!e.from_fork);
        assert_eq!(read("reopen", None), Some(PullRequestAction::Reopened));
        assert_eq!(
            read("update", Some("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")),
            Some(PullRequestAction::Synchronize)
        );
        assert_eq!(read("update", None), None, "a title edit is not a push");
        assert_eq!(
            read("close", None),
            Some(PullRequestAction::Closed { merged: false })
        );
        assert_eq!(
            read("merge", None),
            Some(PullRequestAction::Closed { merged: true })
        );
        assert_eq!(read("approved", None), None);
    }

    #[test]
    fn a_malformed_pull_request_names_the_field() {
        let mut p = github_style("opened", SAME, false);
        p["pull_request"]["head"]["sha"] = Value::from("not-a-sha; rm -rf");
        let err = pull_request_event(Forge::GitHub, &p).unwrap_err();
        assert!(format!("{err:?}").contains("head_commit"), "{err:?}");
        let mut p = github_style("opened", SAME, false);
        p["pull_request"]["head"]["ref"] = Value::from("--upload-pack=evil");
        let err = pull_request_event(Forge::GitHub, &p).unwrap_err();
        assert!(format!("{err:?}").contains("head_branch"), "{err:?}");
        let mut p = gitlab("open", 1, None);
        p["object_attributes"]
            .as_object_mut()
            .unwrap()
            .remove("iid");
        let err = pull_request_event(Forge::GitLab, &p).unwrap_err();
        assert!(format!("{err:?}").contains("iid"), "{err:?}");
    }

    #[test]
    fn hmac_known_answer() {
        // RFC 4231 test case 2.
        let sig = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(hmac_matches(b"Jefe", b"what do ya want for nothing?", sig));
        assert!(!hmac_matches(b"Jefe", b"what do ya want for nothing!", sig));
        assert!(!hmac_matches(b"jefe", b"what do ya want for nothing?", sig));
        assert!(!hmac_matches(
            b"Jefe",
            b"what do ya want for nothing?",
            "zz"
        ));
    }
}
