//! Git-push webhooks for auto-deploy: GitHub (`X-Hub-Signature-256`), GitLab (`X-Gitlab-Token`)
//! and Gitea/Forgejo (`X-Gitea-Signature` / `X-Forgejo-Signature`).
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
use clank_api::webhooks::{ForgePush, PushResult, WebhookSecretCreated};
use clank_core::Timestamp;
use clank_core::model::{Actor, AuditOutcome, Permission, Workspace};
use clank_platform::{Push, PushAdmission};
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
        (status = 200, description = "ping or another event: nothing deployed", body = PushResult),
        (status = 202, description = "the deployments the push created", body = PushResult),
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
        (status = 200, description = "ping or another event: nothing deployed", body = PushResult),
        (status = 202, description = "the deployments the push created", body = PushResult),
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
        (status = 200, description = "ping or another event: nothing deployed", body = PushResult),
        (status = 202, description = "the deployments the push created", body = PushResult),
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

#[cfg(test)]
mod tests {
    use super::*;

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
