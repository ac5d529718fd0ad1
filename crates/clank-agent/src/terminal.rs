//! Terminals of `ExecTerminal` calls: `clank exec -it` on this server. The command runs on a
//! terminal of the local engine (`Runtime::exec_interactive`); its output goes up as
//! `terminal_output` replies, keystrokes and resizes come down as `TerminalInput`s.
//!
//! Bounded throughout: at most [`MAX_TERMINALS`] at once (more are refused with an error),
//! output chunks of at most `TERMINAL_CHUNK_BYTES` sent only within the control plane's output
//! window (credited back as it reads, so a slow reader slows the command, as a terminal
//! does), and at most [`INPUT_WINDOW`] inputs queued per terminal (credited back as they reach
//! the command). A terminal ends with its command, a `close`, a `cancel` of its call or the end
//! of the session it belongs to. Ending it drops the engine's exec session; an engine that keeps
//! the command running with nobody attached (Docker's exec outlives its client) is then made
//! to end it: every process of the terminal's session gets SIGHUP, as a hung-up terminal
//! sends, then SIGKILL if still there (see [`hang_up`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use clank_core::error::{Error, RuntimeFailure};
use clank_core::runtime::{TerminalInput, TerminalSession, TerminalSize, WorkloadId};
use clank_proto::TERMINAL_CHUNK_BYTES;
use clank_proto::v1::{self, reply::Result as R, terminal_input::Input};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::calls::reply;
use crate::{Shared, lock};

/// Terminals one agent runs at once.
pub const MAX_TERMINALS: usize = 16;

/// Inputs (data, resizes) queued per terminal; the control plane sends no more before they
/// are credited back.
pub const INPUT_WINDOW: u32 = 16;

/// The most output chunks sent ahead of credits, whatever window the control plane asks for.
const MAX_OUTPUT_WINDOW: u32 = 64;

/// The terminals of the current session, by call id.
#[derive(Debug, Default)]
pub(crate) struct Terminals {
    open: StdMutex<HashMap<u64, Entry>>,
    serial: AtomicU64,
    /// Held while a terminal starts, so the engine's one new terminal exec is that one's.
    starting: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Entry {
    /// Tells this terminal from a later one under the same call id (a later session's).
    serial: u64,
    input: mpsc::Sender<TerminalInput>,
    credits: Arc<Semaphore>,
    window: u32,
    cancel: CancellationToken,
}

impl Terminals {
    /// End every terminal: the session they belong to ended.
    pub(crate) fn end_all(&self) {
        for (_, e) in lock(&self.open).drain() {
            e.cancel.cancel();
        }
    }

    /// End the terminal of call `call_id` (a `cancel` of it); `false` when there is none.
    pub(crate) fn cancel(&self, call_id: u64) -> bool {
        match lock(&self.open).remove(&call_id) {
            Some(e) => {
                e.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// How many run now.
    #[cfg(test)]
    fn count(&self) -> usize {
        lock(&self.open).len()
    }

    /// Input for a terminal, from the session's reader: never waits (a full queue means the
    /// control plane ignored the window, and the terminal ends).
    pub(crate) fn input(&self, msg: v1::TerminalInput) {
        let mut open = lock(&self.open);
        let Some(entry) = open.get(&msg.call_id) else {
            return;
        };
        let queued = match msg.input {
            Some(Input::Data(bytes)) if bytes.len() > TERMINAL_CHUNK_BYTES => {
                Err("an input chunk over the size limit")
            }
            Some(Input::Data(bytes)) => queue(entry, TerminalInput::Data(bytes)),
            Some(Input::Resize(size)) => queue(entry, TerminalInput::Resize(size.into())),
            Some(Input::OutputCredit(n)) => {
                let room =
                    (entry.window as usize).saturating_sub(entry.credits.available_permits());
                entry.credits.add_permits((n as usize).min(room));
                Ok(())
            }
            Some(Input::Close(_)) => Err(""),
            None => Ok(()),
        };
        if let Err(why) = queued {
            if !why.is_empty() {
                warn!(
                    call_id = msg.call_id,
                    "Ending a terminal: the control plane sent {why}."
                );
            }
            if let Some(e) = open.remove(&msg.call_id) {
                e.cancel.cancel();
            }
        }
    }
}

fn queue(entry: &Entry, input: TerminalInput) -> Result<(), &'static str> {
    match entry.input.try_send(input) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => Err("input beyond its window"),
    }
}

/// Start the terminal of `ExecTerminal` call `call_id`, or refuse it (the replies say which).
pub(crate) fn start(shared: Arc<Shared>, call_id: u64, req: v1::ExecTerminal) {
    let (input, queued) = mpsc::channel(INPUT_WINDOW as usize);
    let window = req.output_window.clamp(1, MAX_OUTPUT_WINDOW);
    let credits = Arc::new(Semaphore::new(window as usize));
    let cancel = CancellationToken::new();
    let serial = shared.terminals.serial.fetch_add(1, Ordering::Relaxed);
    let refused = {
        let mut open = lock(&shared.terminals.open);
        if open.len() >= MAX_TERMINALS {
            Some(Error::runtime(
                RuntimeFailure::Other,
                format!(
                    "this server already runs {MAX_TERMINALS} terminal sessions, the most its \
                     agent serves at once; end one (exit its shell) and try again"
                ),
            ))
        } else {
            match open.entry(call_id) {
                std::collections::hash_map::Entry::Occupied(_) => Some(Error::Internal(format!(
                    "call {call_id} already runs a terminal"
                ))),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(Entry {
                        serial,
                        input,
                        credits: credits.clone(),
                        window,
                        cancel: cancel.clone(),
                    });
                    None
                }
            }
        }
    };
    tokio::spawn(async move {
        if let Some(e) = refused {
            reply(&shared, call_id, R::Error(clank_proto::call_error(&e))).await;
            return;
        }
        let container = req.name.clone();
        let exec = StdMutex::new(None);
        let last = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            r = run(&shared, call_id, req, queued, &credits, &exec) => Some(r),
        };
        // Ended from the control plane's side, or cut off by an error: the command may run on.
        let exec = lock(&exec).take();
        if let (None | Some(R::Error(_)), Some(exec), Some(docker)) = (&last, exec, &shared.docker)
        {
            hang_up(&shared, docker, &container, &exec).await;
        }
        {
            let mut open = lock(&shared.terminals.open);
            if open.get(&call_id).is_some_and(|e| e.serial == serial) {
                open.remove(&call_id);
            }
        }
        match last {
            Some(last) => reply(&shared, call_id, last).await,
            None => debug!(call_id, "A terminal was ended by the control plane."),
        }
    });
}

/// Run the terminal until its output ends; the last reply (exit or error) is returned.
async fn run(
    shared: &Shared,
    call_id: u64,
    req: v1::ExecTerminal,
    mut queued: mpsc::Receiver<TerminalInput>,
    credits: &Semaphore,
    exec: &StdMutex<Option<String>>,
) -> R {
    let size = req.size.map(TerminalSize::from).unwrap_or_default();
    let started = {
        let _one_at_a_time = shared.terminals.starting.lock().await;
        let before = match &shared.docker {
            Some(docker) => exec_ids(docker, &req.name).await,
            None => Vec::new(),
        };
        let started = shared
            .runtime
            .exec_interactive(&WorkloadId(req.name.clone()), &req.command, size)
            .await;
        if started.is_ok()
            && let Some(docker) = &shared.docker
        {
            *lock(exec) = new_terminal_exec(docker, &req.name, &before).await;
        }
        started
    };
    let TerminalSession {
        mut output,
        mut input,
        exit_code,
    } = match started {
        Ok(t) => t,
        Err(e) => return R::Error(clank_proto::call_error(&e)),
    };
    reply(
        shared,
        call_id,
        R::TerminalStarted(v1::TerminalStarted {
            input_window: INPUT_WINDOW,
        }),
    )
    .await;
    let outgoing = async {
        while let Some(chunk) = output.next().await {
            for piece in chunk?.chunks(TERMINAL_CHUNK_BYTES) {
                // Within the control plane's window: a reader that falls behind holds the
                // command back here, not in a buffer.
                let Ok(credit) = credits.acquire().await else {
                    return Ok(());
                };
                credit.forget();
                reply(shared, call_id, R::TerminalOutput(piece.to_vec())).await;
            }
        }
        Ok::<(), Error>(())
    };
    let incoming = async {
        let mut delivered = 0u32;
        while let Some(i) = queued.recv().await {
            if let Err(e) = input.send(i).await {
                // The command no longer reads (its output ends next) or the resize was
                // refused; the input is still credited, so the queue keeps draining.
                debug!(call_id, error = %e, "Terminal input not delivered.");
            }
            delivered += 1;
            if delivered >= INPUT_WINDOW / 2 || queued.is_empty() {
                reply(shared, call_id, R::TerminalInputCredit(delivered)).await;
                delivered = 0;
            }
        }
        std::future::pending::<()>().await;
    };
    let ended = tokio::select! {
        r = outgoing => r,
        () = incoming => Ok(()),
    };
    drop(input);
    match ended {
        Err(e) => R::Error(clank_proto::call_error(&e)),
        Ok(()) => match exit_code.await {
            Ok(code) => R::TerminalExit(v1::TerminalExit { exit_code: code }),
            Err(e) => R::Error(clank_proto::call_error(&e)),
        },
    }
}

/// The ids of the exec records the engine holds for `container`.
async fn exec_ids(docker: &bollard::Docker, container: &str) -> Vec<String> {
    docker
        .inspect_container(container, None)
        .await
        .ok()
        .and_then(|c| c.exec_ids)
        .unwrap_or_default()
}

/// The terminal exec of `container` that is not in `before`: the one just started.
async fn new_terminal_exec(
    docker: &bollard::Docker,
    container: &str,
    before: &[String],
) -> Option<String> {
    let mut found = None;
    for id in exec_ids(docker, container).await {
        if before.contains(&id) {
            continue;
        }
        let tty = docker
            .inspect_exec(&id)
            .await
            .ok()
            .and_then(|i| i.process_config)
            .and_then(|p| p.tty);
        if tty == Some(true) {
            if found.is_some() {
                return None;
            }
            found = Some(id);
        }
    }
    found
}

/// End the command of terminal exec `exec` in `container` if the engine keeps it running now
/// that nobody is attached: SIGHUP (a terminal's hangup) to every process of its session,
/// then SIGKILL to what is left after a grace period. The signals are sent by `kill` run in
/// the container (the agent may not signal the engine's processes itself), to the processes'
/// ids there (read from this host's `/proc`).
async fn hang_up(shared: &Shared, docker: &bollard::Docker, container: &str, exec: &str) {
    for signal in ["HUP", "KILL"] {
        // The engine may take a moment to notice the detach (and end the command itself).
        for _ in 0..10 {
            match docker.inspect_exec(exec).await {
                Ok(i) if i.running == Some(true) => {}
                _ => return,
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let Ok(info) = docker.inspect_exec(exec).await else {
            return;
        };
        let Some(leader) = info.pid.filter(|p| *p > 0) else {
            return;
        };
        let pids = session_pids(leader);
        if pids.is_empty() {
            warn!(
                container,
                exec,
                "A terminal's command outlives its session: its processes are not visible here."
            );
            return;
        }
        let mut sent = false;
        for kill in [&["kill"][..], &["/bin/busybox", "kill"][..]] {
            let mut command: Vec<String> = kill.iter().map(|s| (*s).to_owned()).collect();
            command.extend(["-s".to_owned(), signal.to_owned()]);
            command.extend(pids.iter().map(ToString::to_string));
            let request = clank_core::runtime::ExecRequest {
                command,
                tty: false,
                timeout: std::time::Duration::from_secs(5),
            };
            let ran = shared
                .runtime
                .exec(&WorkloadId(container.to_owned()), &request)
                .await;
            if ran.is_ok_and(|o| o.exit_code == Some(0)) {
                sent = true;
                break;
            }
        }
        if !sent {
            warn!(
                container,
                exec, "A terminal's command outlives its session: the workload has no `kill`."
            );
            return;
        }
        debug!(
            container,
            exec,
            signal,
            ?pids,
            "Signalled a terminal's command."
        );
    }
}

/// The ids, in their own PID namespace, of the processes of the session led by host process
/// `leader` (a terminal exec leads its session; its jobs share it).
fn session_pids(leader: i64) -> Vec<i64> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<i64>().ok()) else {
            continue;
        };
        if session_of(pid) != Some(leader) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        // `NSpid:` lists the id in each nested namespace; the last is the container's.
        if let Some(inner) = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|ids| ids.split_whitespace().last())
            .and_then(|id| id.parse::<i64>().ok())
        {
            pids.push(inner);
        }
    }
    pids
}

/// The session id of process `pid` (as this host numbers it).
fn session_of(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (in parentheses, which may hold anything): state, ppid, pgrp,
    // session.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(3))
        .and_then(|s| s.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(serial: u64, window: u32) -> (Entry, mpsc::Receiver<TerminalInput>) {
        let (input, rx) = mpsc::channel(INPUT_WINDOW as usize);
        let e = Entry {
            serial,
            input,
            credits: Arc::new(Semaphore::new(window as usize)),
            window,
            cancel: CancellationToken::new(),
        };
        (e, rx)
    }

    fn data(call_id: u64, n: usize) -> v1::TerminalInput {
        v1::TerminalInput {
            call_id,
            input: Some(Input::Data(vec![b'x'; n])),
        }
    }

    /// Input beyond the window, or a chunk over the size limit, ends the terminal instead of
    /// queueing without bound; output credits never raise the window.
    #[tokio::test]
    async fn input_beyond_the_window_ends_the_terminal() {
        let t = Terminals::default();
        let (e, _rx) = entry(0, 4);
        let (cancel, credits) = (e.cancel.clone(), e.credits.clone());
        lock(&t.open).insert(1, e);
        t.input(v1::TerminalInput {
            call_id: 1,
            input: Some(Input::OutputCredit(1000)),
        });
        assert_eq!(credits.available_permits(), 4, "capped at the window");
        for _ in 0..INPUT_WINDOW {
            t.input(data(1, 10));
        }
        assert!(!cancel.is_cancelled());
        t.input(data(1, 10));
        assert!(cancel.is_cancelled());
        assert_eq!(t.count(), 0);

        let (e, _rx) = entry(1, 4);
        let cancel = e.cancel.clone();
        lock(&t.open).insert(2, e);
        t.input(data(2, TERMINAL_CHUNK_BYTES + 1));
        assert!(cancel.is_cancelled());
    }

    /// A session's processes are found by the session id in `/proc`: this test's own
    /// session holds at least this process.
    #[test]
    fn the_processes_of_a_session_are_found() {
        let session = session_of(i64::from(std::process::id())).unwrap();
        assert!(!session_pids(session).is_empty());
    }

    /// `close`, `cancel` and the session's end each end a terminal.
    #[tokio::test]
    async fn close_cancel_and_the_session_end_each_end_a_terminal() {
        let t = Terminals::default();
        let mut cancels = Vec::new();
        for id in 1..=3 {
            let (e, _rx) = entry(id, 4);
            cancels.push(e.cancel.clone());
            lock(&t.open).insert(id, e);
        }
        t.input(v1::TerminalInput {
            call_id: 1,
            input: Some(Input::Close(v1::Empty {})),
        });
        assert!(cancels[0].is_cancelled() && !cancels[1].is_cancelled());
        assert!(t.cancel(2));
        assert!(cancels[1].is_cancelled() && !cancels[2].is_cancelled());
        t.end_all();
        assert!(cancels[2].is_cancelled());
        assert_eq!(t.count(), 0);
    }
}
