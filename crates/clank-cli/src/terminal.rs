//! `clank exec -it`: a command on a terminal in the running service, over the daemon's
//! WebSocket (`…/services/{s}/terminal`, messages from `clank_api::terminal`). The local
//! terminal is put in raw mode (restored however the session ends) so keys reach the remote
//! one as typed; a window resize follows (SIGWINCH); the command's exit code is `clank`'s.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use clank_api::ErrorBody;
use clank_api::terminal::{TerminalControl, TerminalNotice, TerminalStart};
use clank_core::runtime::TerminalSize;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::app::App;
use crate::client::CliError;

/// The local terminal in raw mode until dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal (`None` when it is not: piped input).
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// The local terminal's size (80x24 when stdout is not a terminal).
fn local_size() -> TerminalSize {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(w) if w.ws_row > 0 && w.ws_col > 0 => TerminalSize {
            rows: w.ws_row.min(1000),
            cols: w.ws_col.min(1000),
        },
        _ => TerminalSize::default(),
    }
}

fn broke(e: impl std::fmt::Display) -> CliError {
    CliError::new(format!("the terminal session broke: {e}"), 1)
}

/// Run `command` on a terminal in `address`'s running workload until it exits.
pub(crate) async fn exec_tty(
    app: &App,
    address: String,
    process: Option<String>,
    replica: Option<u32>,
    command: Vec<String>,
) -> Result<ExitCode, CliError> {
    let path = format!("{}/terminal", app.service_path(&address)?);
    // The daemon's URL as a WebSocket one: https:// is wss:// (the same TLS as every call).
    let base = &app.client.url;
    let (url, connector) = match base.strip_prefix("https://") {
        Some(rest) => (
            format!("wss://{rest}{path}"),
            Some(Connector::Rustls(Arc::new(app.client.tls_config()?))),
        ),
        None => (base.replacen("http://", "ws://", 1) + &path, None),
    };
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| CliError::new(format!("`{url}` is not a WebSocket URL: {e}"), 2))?;
    if let Some(token) = app.client.token() {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| CliError::new("the token is not a valid header value", 2))?;
        request.headers_mut().insert("authorization", value);
    }
    let connected =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector).await;
    let (mut socket, _) = match connected {
        Ok(s) => s,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response.body().clone().unwrap_or_default();
            return Err(app.client.refused("GET", &path, status.as_u16(), &body));
        }
        Err(e) => {
            if let Some(refused) = app.client.tls_refused(&e) {
                return Err(refused);
            }
            return Err(CliError::new(
                format!(
                    "cannot open a terminal through the daemon at {}: {e}",
                    app.client.url
                ),
                1,
            ));
        }
    };
    let start = TerminalStart {
        command,
        size: local_size(),
        process,
        replica,
    };
    let start = serde_json::to_string(&start).map_err(broke)?;
    socket
        .send(Message::Text(start.into()))
        .await
        .map_err(broke)?;
    // Raw mode only once the daemon said the command runs: a refusal prints normally.
    let mut raw = None;
    let (keys_tx, mut keys) = mpsc::channel::<Vec<u8>>(64);
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        .map_err(broke)?;
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            message = socket.next() => match message {
                None => return Err(broke("the daemon closed the session")),
                Some(Err(e)) => return Err(broke(e)),
                Some(Ok(Message::Binary(bytes))) => {
                    stdout.write_all(&bytes).and_then(|()| stdout.flush()).map_err(broke)?;
                }
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<TerminalNotice>(&text).map_err(broke)? {
                        TerminalNotice::Started => {
                            raw = RawMode::enter();
                            read_stdin(keys_tx.clone());
                        }
                        TerminalNotice::Exited(code) => {
                            drop(raw);
                            let code = code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
                            return Ok(ExitCode::from(code));
                        }
                        TerminalNotice::Error(ErrorBody { message, field, .. }) => {
                            drop(raw);
                            let field = field.map(|f| format!(" (field `{f}`)")).unwrap_or_default();
                            return Err(CliError::new(format!("{message}{field}"), 1));
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
            Some(bytes) = keys.recv() => {
                socket.send(Message::Binary(bytes.into())).await.map_err(broke)?;
            }
            Some(()) = resized.recv() => {
                let resize = serde_json::to_string(&TerminalControl::Resize(local_size()))
                    .map_err(broke)?;
                socket.send(Message::Text(resize.into())).await.map_err(broke)?;
            }
        }
    }
}

/// Read stdin on a thread of its own (a blocking read never holds up the exit) into `keys`.
fn read_stdin(keys: mpsc::Sender<Vec<u8>>) {
    let _ = std::thread::Builder::new()
        .name("clank-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                // The end of piped input is Ctrl-D on the remote terminal.
                let keys_read = if n == 0 { vec![4] } else { buf[..n].to_vec() };
                if keys.blocking_send(keys_read).is_err() || n == 0 {
                    return;
                }
            }
        });
}
