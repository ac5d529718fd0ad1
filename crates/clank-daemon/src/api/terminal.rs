//! Interactive exec (`clank exec -it`): a WebSocket whose first message says what to run on a
//! terminal in the service's running workload; then terminal bytes flow both ways until the
//! command exits (its code is the last message) or either side goes. The protocol's messages
//! are `clank_api::terminal`'s.
//!
//! Bounds: the caller needs Deploy (like exec) and a stream slot of its token (so one token
//! cannot open sessions without end); the first message must come within
//! [`START_WITHIN`]; messages are at most [`MAX_MESSAGE`]; a session ends when shutdown
//! begins; a client that stops reading stalls only its own command's output.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use clank_api::ErrorBody;
use clank_api::terminal::{TerminalControl, TerminalNotice, TerminalStart};
use clank_core::model::Permission;
use clank_core::runtime::{TerminalInput, TerminalSession};
use clank_platform::WorkloadSelector;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::audit::{Change, record_call};
use super::auth::Principal;
use super::error::{ApiError, ApiResult};
use super::extract::ServicePath;
use super::streams::Slot;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(terminal))
}

/// How long the client has to say what to run.
const START_WITHIN: Duration = Duration::from_secs(10);
/// Largest message either way (keystrokes and resizes are tiny; pasted text fits).
const MAX_MESSAGE: usize = 64 * 1024;

/// Open an interactive terminal in the running service: upgrade to a WebSocket, send a
/// `TerminalStart` (JSON text), then exchange terminal bytes (binary) and control messages
/// (JSON text: `{"resize": {"rows", "cols"}}` from the client; `"started"`,
/// `{"exited": code}` or `{"error": {...}}` from the daemon).
#[utoipa::path(
    get,
    path = "/v1/workspaces/{ws}/projects/{p}/environments/{e}/services/{s}/terminal",
    tag = "services",
    params(ServicePath),
    responses(
        (status = 101, description = "a WebSocket carrying the terminal session"),
        (status = "4XX", description = "refused; `field` names the offending input", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn terminal(
    p: Principal,
    State(st): State<AppState>,
    Path(at): Path<ServicePath>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let addr = at.authorize(&p, Permission::Deploy)?;
    // The service must exist before the upgrade: a typo is a 404, not a socket that closes.
    st.platform.service(&addr).await?;
    let slot = st.streams.reserve(&p)?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(socket, st, p, at, slot)))
}

/// The session on its socket; `slot` is held until it ends.
async fn session(mut socket: WebSocket, st: AppState, p: Principal, at: ServicePath, slot: Slot) {
    let _held = slot;
    let shutdown = st.streams.shutdown();
    let start = match tokio::time::timeout(START_WITHIN, first_message(&mut socket)).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => return finish(socket, TerminalNotice::Error(e.body().clone())).await,
        Err(_) => {
            let e = ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "no TerminalStart message within {} s of the upgrade",
                    START_WITHIN.as_secs()
                ),
            );
            return finish(socket, TerminalNotice::Error(e.body().clone())).await;
        }
    };
    let change = Change::new("service.exec", at.to_string()).details(json!({
        "program": start.command.first(),
        "process": start.process,
        "replica": start.replica,
        "interactive": true,
    }));
    let selector = WorkloadSelector {
        process: start.process.clone(),
        replica: start.replica,
    };
    let opened = async {
        p.require(Permission::Deploy)?;
        Ok(st
            .platform
            .exec_interactive(&at.addr()?, &selector, &start.command, start.size)
            .await?)
    }
    .await;
    // Recorded as `exec` is: whether the command started (the session is not kept).
    let (terminal, started): (Option<TerminalSession>, ApiResult<()>) = match opened {
        Ok(t) => (Some(t), Ok(())),
        Err(e) => (None, Err(e)),
    };
    record_call(&st, &p, change, &started).await;
    let terminal = match (terminal, started) {
        (Some(t), _) => t,
        (None, Err(e)) => return finish(socket, TerminalNotice::Error(e.body().clone())).await,
        (None, Ok(())) => return,
    };
    if send_notice(&mut socket, &TerminalNotice::Started)
        .await
        .is_err()
    {
        return;
    }
    let notice = tokio::select! {
        notice = relay(&mut socket, terminal) => notice,
        () = shutdown.cancelled() => TerminalNotice::Error(ErrorBody {
            code: "unavailable".into(),
            message: "the daemon is shutting down; the session ended".into(),
            field: None,
        }),
    };
    finish(socket, notice).await;
}

/// The client's `TerminalStart`.
async fn first_message(socket: &mut WebSocket) -> ApiResult<TerminalStart> {
    let refuse = |message: String| {
        ApiError::from(clank_core::Error::from(clank_core::InvalidInput::new(
            "start", "format", message,
        )))
    };
    loop {
        match socket.recv().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str::<TerminalStart>(&text)
                    .map_err(|e| refuse(format!("the first message is a TerminalStart: {e}")));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) => {
                return Err(refuse(
                    "the first message is a TerminalStart (JSON text)".into(),
                ));
            }
            Some(Err(_)) | None => return Err(refuse("the client went away".into())),
        }
    }
}

/// Terminal bytes both ways until the command's output ends (then its exit code) or the client
/// goes (then the command is ended with the session).
async fn relay(socket: &mut WebSocket, terminal: TerminalSession) -> TerminalNotice {
    let TerminalSession {
        mut output,
        mut input,
        exit_code,
    } = terminal;
    let (mut to_client, mut from_client) = socket.split();
    let outgoing = async {
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(bytes) => {
                    if to_client.send(Message::Binary(bytes.into())).await.is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "A terminal's output broke off.");
                    break;
                }
            }
        }
        true
    };
    let incoming = async {
        while let Some(Ok(message)) = from_client.next().await {
            let sent = match message {
                Message::Binary(bytes) => input.send(TerminalInput::Data(bytes.to_vec())).await,
                Message::Text(text) => match serde_json::from_str::<TerminalControl>(&text) {
                    Ok(TerminalControl::Resize(size)) => {
                        input.send(TerminalInput::Resize(size)).await
                    }
                    // An unknown control message is ignored, not fatal: newer clients.
                    Err(_) => Ok(()),
                },
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => Ok(()),
            };
            if sent.is_err() {
                // The command no longer reads: its output ends next.
                std::future::pending::<()>().await;
            }
        }
    };
    let client_stayed = tokio::select! {
        stayed = outgoing => stayed,
        () = incoming => false,
    };
    drop(input);
    if !client_stayed {
        return TerminalNotice::Exited(None);
    }
    match exit_code.await {
        Ok(code) => TerminalNotice::Exited(code),
        Err(e) => TerminalNotice::Error(ApiError::from(e).body().clone()),
    }
}

async fn send_notice(socket: &mut WebSocket, notice: &TerminalNotice) -> Result<(), axum::Error> {
    let text = serde_json::to_string(notice).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}

/// The last notice, then a normal close.
async fn finish(mut socket: WebSocket, notice: TerminalNotice) {
    let _ = send_notice(&mut socket, &notice).await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
}
