//! Interactive exec on a remote server (`clank exec -it` through an agent): the terminal of an
//! `ExecTerminal` call, as the [`TerminalSession`] `AgentRuntime::exec_interactive` returns.
//!
//! The call's replies (start, output chunks, input credits, exit) reach this side through a
//! bounded route per call, filled by the session's reader without ever waiting (see
//! [`deliver`]); a small task per terminal sorts them. Both directions are windowed: the agent
//! sends at most [`OUTPUT_WINDOW`] chunks this side has not credited back (credited as the
//! reader takes them), and this side sends at most the agent's `input_window` inputs it has
//! not credited back. An agent exceeding its window loses the terminal. Dropping the session
//! (all three parts) removes the route and sends `close`: the agent ends the command.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use clank_core::error::{Error, Result, RuntimeFailure};
use clank_core::id::ServerId;
use clank_core::runtime::{TerminalInput, TerminalSession, TerminalSink, TerminalSize, WorkloadId};
use clank_proto::v1::{self, reply::Result as R, terminal_input::Input};
use clank_proto::{FEATURE_TERMINALS, TERMINAL_CHUNK_BYTES};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::warn;

use crate::{Calls, Fleet, Session, lock, unavailable};

/// The routes of a session's terminal calls, by call id.
pub(crate) type Routes = StdMutex<HashMap<u64, mpsc::Sender<R>>>;

/// Output chunks (each at most [`TERMINAL_CHUNK_BYTES`]) an agent may send before this side
/// credits them back: what one terminal's reader may have waiting (256 KiB).
pub(crate) const OUTPUT_WINDOW: u32 = 16;

/// The largest input window taken from an agent (what it says it queues per terminal).
const MAX_INPUT_WINDOW: u32 = 64;

/// What a route holds at most: a window of output, a credit per input, the start and the end.
const ROUTE_CAPACITY: usize = (OUTPUT_WINDOW + MAX_INPUT_WINDOW + 2) as usize;

/// Hand a reply of a terminal call to its route; `Some(result)` back when `call_id` is not a
/// terminal of this session. Never waits: the session's reader serves every call.
pub(crate) fn deliver(calls: &Calls, call_id: u64, result: R) -> Option<R> {
    let mut routes = lock(&calls.terminals);
    let Some(route) = routes.get(&call_id) else {
        return Some(result);
    };
    let last = matches!(result, R::TerminalExit(_) | R::Error(_));
    match route.try_send(result) {
        Ok(()) if !last => {}
        Ok(()) => {
            routes.remove(&call_id);
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            warn!(
                call_id,
                "An agent sent more terminal replies than its windows allow; ending the terminal."
            );
            routes.remove(&call_id);
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            routes.remove(&call_id);
        }
    }
    None
}

/// The session ended: every terminal of it ends (its readers see why).
pub(crate) fn end_all(calls: &Calls) {
    lock(&calls.terminals).clear();
}

fn ended(server: ServerId, why: &str) -> Error {
    unavailable(server, why)
}

/// One terminal call, as long as any part of its session is held.
struct Link {
    server: ServerId,
    session: Session,
    call_id: u64,
    /// The agent's side is over (exit or error reported): no `close` needed.
    over: Arc<AtomicBool>,
}

impl Link {
    async fn send(&self, input: Input) -> Result<()> {
        let msg = v1::ControlMessage {
            body: Some(v1::control_message::Body::TerminalInput(
                v1::TerminalInput {
                    call_id: self.call_id,
                    input: Some(input),
                },
            )),
        };
        self.session.tx.send(Ok(msg)).await.map_err(|_| {
            ended(
                self.server,
                "the agent's session closed; the terminal with it",
            )
        })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        lock(&self.session.calls.terminals).remove(&self.call_id);
        if self.over.load(Ordering::Acquire) {
            return;
        }
        let msg = Ok(v1::ControlMessage {
            body: Some(v1::control_message::Body::TerminalInput(
                v1::TerminalInput {
                    call_id: self.call_id,
                    input: Some(Input::Close(v1::Empty {})),
                },
            )),
        });
        // Without waiting where there is room (the usual case), else from a task: the agent
        // must hear it, or the command would run on with nobody at its terminal.
        if let Err(mpsc::error::TrySendError::Full(msg)) = self.session.tx.try_send(msg)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let tx = self.session.tx.clone();
            rt.spawn(async move {
                let _ = tx.send(msg).await;
            });
        }
    }
}

/// Start `command` on a terminal of `size` in workload `id` on `server`.
pub(crate) async fn open(
    fleet: &Fleet,
    server: ServerId,
    id: &WorkloadId,
    command: &[String],
    size: TerminalSize,
) -> Result<TerminalSession> {
    let size = size.check()?;
    let slot = fleet.slot(server);
    let (session, features, version) = {
        let live = lock(&slot.live);
        (
            live.session.clone(),
            live.features.clone(),
            live.agent_version.clone(),
        )
    };
    let session = session.ok_or_else(|| unavailable(server, "the agent is not connected"))?;
    if !features.iter().any(|f| f == FEATURE_TERMINALS) {
        // An older agent would drop a call it cannot parse without a word.
        let name = match fleet
            .inner
            .catalog
            .get::<clank_core::model::Server>(&server.to_string())
            .await
        {
            Ok(Some(s)) => format!("`{}`", s.name),
            _ => server.to_string(),
        };
        return Err(Error::runtime(
            RuntimeFailure::Unsupported,
            format!(
                "server {name}: its agent (version {}) is too old for interactive exec on a \
                 terminal; update the agent (`clank server release --version <version> \
                 <clank-agent binary>`) or run the command without -t",
                version.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    let call_id = session.calls.next.fetch_add(1, Ordering::Relaxed) + 1;
    let (route, mut replies) = mpsc::channel(ROUTE_CAPACITY);
    lock(&session.calls.terminals).insert(call_id, route);
    // From here on, returning early (or being dropped) closes the call on the agent.
    let link = Arc::new(Link {
        server,
        session: session.clone(),
        call_id,
        over: Arc::new(AtomicBool::new(false)),
    });
    let call = v1::ControlMessage {
        body: Some(v1::control_message::Body::Call(v1::Call {
            call_id,
            method: Some(v1::call::Method::Terminal(v1::ExecTerminal {
                name: id.0.clone(),
                command: command.to_vec(),
                size: Some(size.into()),
                output_window: OUTPUT_WINDOW,
            })),
        })),
    };
    if session.tx.send(Ok(call)).await.is_err() {
        return Err(unavailable(server, "the agent's session closed"));
    }
    let timeout = fleet.config().call_timeout;
    let input_window = match tokio::time::timeout(timeout, replies.recv()).await {
        Ok(Some(R::TerminalStarted(s))) => s.input_window.clamp(1, MAX_INPUT_WINDOW),
        Ok(Some(R::Error(e))) => {
            link.over.store(true, Ordering::Release);
            return Err(e.into());
        }
        Ok(Some(other)) => return Err(crate::remote::unexpected(&other)),
        Ok(None) => {
            return Err(ended(
                server,
                "the agent's session ended before the terminal started",
            ));
        }
        Err(_) => {
            return Err(Error::runtime(
                RuntimeFailure::Timeout,
                format!("server {server}: the agent did not start the terminal within {timeout:?}"),
            ));
        }
    };

    let credits = Arc::new(Semaphore::new(input_window as usize));
    let (chunks, chunks_rx) = mpsc::channel::<Result<Vec<u8>>>(OUTPUT_WINDOW as usize);
    let (exit_tx, exit_rx) = oneshot::channel();
    tokio::spawn(sort_replies(
        server,
        replies,
        chunks,
        credits.clone(),
        input_window,
        link.over.clone(),
        exit_tx,
    ));

    let output = futures_util::stream::unfold(
        (chunks_rx, link.clone(), 0u32),
        |(mut rx, link, mut taken)| async move {
            let item = rx.recv().await?;
            if item.is_ok() {
                taken += 1;
                // Credited in halves of the window: the agent keeps sending while this reader
                // works through the rest.
                if taken >= OUTPUT_WINDOW / 2 {
                    let _ = link.send(Input::OutputCredit(taken)).await;
                    taken = 0;
                }
            }
            Some((item, (rx, link, taken)))
        },
    );
    let exit_link = link.clone();
    let exit_code = async move {
        let _held = exit_link;
        exit_rx
            .await
            .unwrap_or_else(|_| Err(ended(server, "the terminal ended without an exit code")))
    };
    Ok(TerminalSession {
        output: Box::pin(output),
        input: Box::new(AgentTerminalInput { link, credits }),
        exit_code: Box::pin(exit_code),
    })
}

/// Sort a terminal call's replies: output to the reader, input credits to the sink, the end
/// to both. Ends with the call (or its route: the session ended, the terminal was dropped).
async fn sort_replies(
    server: ServerId,
    mut replies: mpsc::Receiver<R>,
    chunks: mpsc::Sender<Result<Vec<u8>>>,
    credits: Arc<Semaphore>,
    input_window: u32,
    over: Arc<AtomicBool>,
    exit: oneshot::Sender<Result<Option<i64>>>,
) {
    let violation = |what: &str| {
        Error::runtime(
            RuntimeFailure::Other,
            format!("server {server}: the agent broke the terminal protocol ({what})"),
        )
    };
    let end: Result<Option<i64>> = loop {
        match replies.recv().await {
            Some(R::TerminalOutput(bytes)) => {
                if bytes.len() > TERMINAL_CHUNK_BYTES {
                    break Err(violation("an output chunk over the size limit"));
                }
                match chunks.try_send(Ok(bytes)) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        break Err(violation("output beyond its window"));
                    }
                }
            }
            Some(R::TerminalInputCredit(n)) => {
                // Never more than a window outstanding, whatever the agent claims.
                let room = (input_window as usize).saturating_sub(credits.available_permits());
                credits.add_permits((n as usize).min(room));
            }
            Some(R::TerminalExit(e)) => {
                over.store(true, Ordering::Release);
                break Ok(e.exit_code);
            }
            Some(R::Error(e)) => {
                over.store(true, Ordering::Release);
                break Err(e.into());
            }
            Some(other) => break Err(crate::remote::unexpected(&other)),
            None => {
                break Err(ended(
                    server,
                    "the agent's session ended; the terminal with it",
                ));
            }
        }
    };
    // Input fails from now on; the reader gets what came, then why it ended (when it broke).
    credits.close();
    if let Err(e) = &end {
        let again = Error::runtime(
            e.runtime_failure().unwrap_or(RuntimeFailure::Other),
            e.to_string(),
        );
        let _ = exit.send(end);
        let _ = chunks.send(Err(again)).await;
    } else {
        let _ = exit.send(end);
    }
}

/// Keystrokes and resizes, sent within the agent's input window.
struct AgentTerminalInput {
    link: Arc<Link>,
    credits: Arc<Semaphore>,
}

impl AgentTerminalInput {
    async fn send_counted(&self, input: Input) -> Result<()> {
        let permit = self.credits.acquire().await.map_err(|_| {
            Error::runtime(
                RuntimeFailure::Other,
                "the command on the terminal has ended; it reads no more input",
            )
        })?;
        permit.forget();
        self.link.send(input).await
    }
}

#[async_trait::async_trait]
impl TerminalSink for AgentTerminalInput {
    async fn send(&mut self, input: TerminalInput) -> Result<()> {
        match input {
            TerminalInput::Data(bytes) => {
                for piece in bytes.chunks(TERMINAL_CHUNK_BYTES) {
                    self.send_counted(Input::Data(piece.to_vec())).await?;
                }
                Ok(())
            }
            TerminalInput::Resize(size) => {
                let size = size.check()?;
                self.send_counted(Input::Resize(size.into())).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clank_core::id::WorkspaceId;
    use clank_core::secret::{KeyId, Keyring};
    use clank_core::store::catalog::Catalog;
    use clank_core::store::memory::MemoryStore;
    use futures_util::StreamExt;

    use super::*;
    use crate::FleetConfig;

    type Down = mpsc::Receiver<std::result::Result<v1::ControlMessage, tonic::Status>>;

    /// A fleet whose server has a session with a fake agent of `features` (what it receives
    /// comes out of the returned channel).
    async fn connected(features: &[&str]) -> (Fleet, ServerId, Session, Down) {
        let keyring = Keyring::new(KeyId::new("k1").unwrap(), Keyring::generate_key().unwrap());
        let catalog = Catalog::new(Arc::new(MemoryStore::new()));
        let fleet = Fleet::open(catalog, keyring, FleetConfig::default())
            .await
            .unwrap();
        let (server, _join) = fleet
            .create_server(WorkspaceId::new(), "box")
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(64);
        let session = Session {
            epoch: 1,
            tx,
            calls: Arc::default(),
        };
        {
            let slot = fleet.slot(server.id);
            let mut live = lock(&slot.live);
            live.session = Some(session.clone());
            live.agent_version = Some("0.0.9".into());
            live.features = features.iter().map(|f| (*f).to_owned()).collect();
        }
        (fleet, server.id, session, rx)
    }

    async fn next(down: &mut Down) -> v1::control_message::Body {
        tokio::time::timeout(Duration::from_secs(5), down.recv())
            .await
            .expect("a message to the agent")
            .expect("the session is open")
            .unwrap()
            .body
            .unwrap()
    }

    /// The fake agent: take the `ExecTerminal` call and answer it as started.
    async fn started(session: &Session, down: &mut Down, input_window: u32) -> u64 {
        let v1::control_message::Body::Call(call) = next(down).await else {
            panic!("a call");
        };
        let Some(v1::call::Method::Terminal(t)) = call.method else {
            panic!("an ExecTerminal call: {call:?}");
        };
        assert_eq!(t.output_window, OUTPUT_WINDOW);
        assert_eq!(t.command, ["sh"]);
        let reply = R::TerminalStarted(v1::TerminalStarted { input_window });
        assert!(deliver(&session.calls, call.call_id, reply).is_none());
        // Replies of other calls are not a terminal's.
        assert!(deliver(&session.calls, call.call_id + 100, R::Ok(v1::Empty {})).is_some());
        call.call_id
    }

    fn sh() -> Vec<String> {
        vec!["sh".to_owned()]
    }

    /// An agent from before terminals is named with the way to update it, at once: it would
    /// drop the call unanswered.
    #[tokio::test]
    async fn an_agent_too_old_for_terminals_is_named_with_the_way_to_update_it() {
        let (fleet, server, _session, mut down) = connected(&["image_transfer"]).await;
        let err = open(
            &fleet,
            server,
            &WorkloadId("web".into()),
            &sh(),
            TerminalSize::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.runtime_failure(), Some(RuntimeFailure::Unsupported));
        let message = err.to_string();
        for part in [
            "server `box`",
            "version 0.0.9",
            "too old for interactive exec",
            "clank server release",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        assert!(down.try_recv().is_err(), "nothing was sent");
    }

    /// Output is credited back as it is read, input waits for the agent's credits, and
    /// dropping the session closes the call on the agent.
    #[tokio::test]
    async fn both_directions_are_windowed_and_a_drop_closes_the_call() {
        let (fleet, server, session, mut down) = connected(&[FEATURE_TERMINALS]).await;
        let opening = {
            let fleet = fleet.clone();
            tokio::spawn(async move {
                open(
                    &fleet,
                    server,
                    &WorkloadId("web".into()),
                    &sh(),
                    TerminalSize::default(),
                )
                .await
            })
        };
        let call = started(&session, &mut down, 2).await;
        let mut terminal = opening.await.unwrap().unwrap();

        // A whole window of output waits for the reader; reading half of it credits it back.
        for i in 0..OUTPUT_WINDOW {
            let chunk = R::TerminalOutput(format!("{i};").into_bytes());
            assert!(deliver(&session.calls, call, chunk).is_none());
        }
        for i in 0..OUTPUT_WINDOW / 2 {
            let chunk = terminal.output.next().await.unwrap().unwrap();
            assert_eq!(chunk, format!("{i};").into_bytes());
        }
        match next(&mut down).await {
            v1::control_message::Body::TerminalInput(v1::TerminalInput {
                call_id,
                input: Some(Input::OutputCredit(n)),
            }) => assert_eq!((call_id, n), (call, OUTPUT_WINDOW / 2)),
            other => panic!("an output credit: {other:?}"),
        }

        // Two inputs fit the agent's window of 2 (a large paste is cut in chunks); the third
        // waits for a credit.
        let paste = vec![b'x'; TERMINAL_CHUNK_BYTES + 1];
        terminal
            .input
            .send(TerminalInput::Data(paste))
            .await
            .unwrap();
        for len in [TERMINAL_CHUNK_BYTES, 1] {
            match next(&mut down).await {
                v1::control_message::Body::TerminalInput(v1::TerminalInput {
                    input: Some(Input::Data(d)),
                    ..
                }) => assert_eq!(d.len(), len),
                other => panic!("input data: {other:?}"),
            }
        }
        let mut resize = terminal.input.send(TerminalInput::Resize(TerminalSize {
            rows: 50,
            cols: 120,
        }));
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut resize)
                .await
                .is_err(),
            "beyond the input window, input waits"
        );
        deliver(&session.calls, call, R::TerminalInputCredit(1));
        resize.await.unwrap();
        match next(&mut down).await {
            v1::control_message::Body::TerminalInput(v1::TerminalInput {
                input: Some(Input::Resize(s)),
                ..
            }) => assert_eq!((s.rows, s.cols), (50, 120)),
            other => panic!("a resize: {other:?}"),
        }

        drop(terminal);
        match next(&mut down).await {
            v1::control_message::Body::TerminalInput(v1::TerminalInput {
                call_id,
                input: Some(Input::Close(_)),
            }) => assert_eq!(call_id, call),
            other => panic!("a close: {other:?}"),
        }
        assert!(
            lock(&session.calls.terminals).is_empty(),
            "the route is gone"
        );
    }

    /// An agent sending beyond its output window loses the terminal (nothing is buffered
    /// past the window), and the end of the session ends every terminal of it.
    #[tokio::test]
    async fn output_beyond_the_window_and_the_session_end_end_the_terminal() {
        let (fleet, server, session, mut down) = connected(&[FEATURE_TERMINALS]).await;
        let id = WorkloadId("web".into());
        let opening = {
            let (fleet, id) = (fleet.clone(), id.clone());
            tokio::spawn(
                async move { open(&fleet, server, &id, &sh(), TerminalSize::default()).await },
            )
        };
        let call = started(&session, &mut down, 4).await;
        let mut flooded = opening.await.unwrap().unwrap();
        for _ in 0..=OUTPUT_WINDOW + 1 {
            deliver(&session.calls, call, R::TerminalOutput(b"x".to_vec()));
        }
        let mut last = None;
        while let Some(item) = flooded.output.next().await {
            last = Some(item);
        }
        let err = last.unwrap().unwrap_err();
        assert!(err.to_string().contains("beyond its window"), "{err}");
        assert!(flooded.exit_code.await.is_err());
        drop((flooded.output, flooded.input));

        let opening = {
            let fleet = fleet.clone();
            tokio::spawn(
                async move { open(&fleet, server, &id, &sh(), TerminalSize::default()).await },
            )
        };
        // The flooded terminal's credits for what was read, then its close.
        loop {
            match next(&mut down).await {
                v1::control_message::Body::TerminalInput(v1::TerminalInput {
                    input: Some(Input::OutputCredit(_)),
                    ..
                }) => {}
                v1::control_message::Body::TerminalInput(v1::TerminalInput {
                    input: Some(Input::Close(_)),
                    ..
                }) => break,
                other => panic!("the flooded terminal's close: {other:?}"),
            }
        }
        let call = started(&session, &mut down, 4).await;
        let mut cut = opening.await.unwrap().unwrap();
        deliver(&session.calls, call, R::TerminalOutput(b"before".to_vec()));
        end_all(&session.calls);
        assert_eq!(cut.output.next().await.unwrap().unwrap(), b"before");
        let err = cut.output.next().await.unwrap().unwrap_err();
        assert_eq!(
            err.runtime_failure(),
            Some(RuntimeFailure::EngineUnavailable)
        );
        assert!(cut.output.next().await.is_none());
        let err = cut
            .input
            .send(TerminalInput::Data(b"ls\n".to_vec()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has ended"), "{err}");
    }
}
