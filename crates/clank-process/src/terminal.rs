//! Interactive exec for native workloads: the command runs on a new pseudo-terminal as the
//! workload's user, in its directory, with its environment. util-linux's `setsid --ctty`
//! makes the terminal the command's controlling one (so Ctrl-C reaches it as SIGINT) without
//! any `unsafe` code here. The terminal's master side is read on a blocking thread (it ends
//! when every process holding the terminal has exited), written for keystrokes, and resized
//! with `TIOCSWINSZ`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use clank_core::runtime::{TerminalInput, TerminalSession, TerminalSink, TerminalSize, WorkloadId};
use clank_core::{Error, InvalidInput, Result, RuntimeFailure};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{Winsize, tcsetwinsize};
use tokio::sync::mpsc;

use crate::exec::ExecContext;

/// Chunks of output buffered between the terminal and a reader that is slow; the terminal
/// blocks (as a real one would) beyond it.
const OUTPUT_CHUNKS: usize = 64;

/// Where the program that makes the terminal the command's controlling one lives (Debian's
/// util-linux, essential on every install).
const SETSID: &str = "/usr/bin/setsid";

fn runtime_error(message: String) -> Error {
    Error::runtime(RuntimeFailure::Other, message)
}

fn winsize(size: TerminalSize) -> Winsize {
    Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new terminal: the master side, and the path of the side the command gets.
fn open_terminal(size: TerminalSize) -> std::io::Result<(OwnedFd, PathBuf)> {
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    tcsetwinsize(&master, winsize(size))?;
    Ok((master, PathBuf::from(name.to_string_lossy().into_owned())))
}

/// Keystrokes and resizes to the terminal's master side.
struct MasterInput {
    master: Arc<File>,
}

#[async_trait::async_trait]
impl TerminalSink for MasterInput {
    async fn send(&mut self, input: TerminalInput) -> Result<()> {
        let master = self.master.clone();
        let done = tokio::task::spawn_blocking(move || match input {
            TerminalInput::Data(bytes) => (&*master).write_all(&bytes),
            TerminalInput::Resize(size) => match size.check() {
                Ok(size) => tcsetwinsize(&*master, winsize(size)).map_err(std::io::Error::from),
                Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
            },
        })
        .await
        .map_err(|e| runtime_error(format!("terminal input: {e}")))?;
        done.map_err(|e| runtime_error(format!("the terminal no longer takes input: {e}")))
    }
}

/// Run `command` on a new terminal of `size` as `run_as`, in `cwd`, with `env`.
pub(crate) fn spawn(
    id: &WorkloadId,
    command: &[String],
    size: TerminalSize,
    ExecContext { run_as, cwd, env }: ExecContext,
) -> Result<TerminalSession> {
    let size = size.check()?;
    if command.first().is_none_or(String::is_empty) {
        return Err(InvalidInput::new("command", "empty", "name a program to run").into());
    }
    let (master, slave_path) = open_terminal(size)
        .map_err(|e| runtime_error(format!("exec in workload `{id}`: no terminal: {e}")))?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&slave_path)
        .map_err(|e| runtime_error(format!("open {}: {e}", slave_path.display())))?;
    if let Some(user) = run_as {
        rustix::fs::chown(&slave_path, Some(rustix::fs::Uid::from_raw(user.uid)), None)
            .map_err(|e| runtime_error(format!("hand the terminal to the workload's user: {e}")))?;
    }
    let stdio = || {
        slave
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| runtime_error(format!("terminal descriptors: {e}")))
    };
    let (stdin, stdout, stderr) = (stdio()?, stdio()?, stdio()?);
    let mut spawn = tokio::process::Command::new(SETSID);
    if let Some(user) = run_as {
        spawn.uid(user.uid).gid(user.gid);
    }
    let spawned = spawn
        .arg("--ctty")
        .arg("--")
        .args(command)
        .env_clear()
        .envs(env)
        .env("TERM", "xterm-256color")
        .current_dir(&cwd)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn();
    // Only the command holds the terminal now: its output ends when the command (and what it
    // started) is gone.
    drop(slave);
    let mut child = spawned.map_err(|e| {
        runtime_error(format!(
            "exec in workload `{id}`: cannot start `{}` on a terminal through {SETSID}: {e}",
            command[0]
        ))
    })?;
    let master = Arc::new(File::from(master));
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>>>(OUTPUT_CHUNKS);
    let reader = master.clone();
    std::thread::Builder::new()
        .name("clank-exec-tty".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match (&*reader).read(&mut buf) {
                    // EIO: the last holder of the terminal's other side is gone.
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        })
        .map_err(|e| runtime_error(format!("terminal reader: {e}")))?;
    let exit_code = async move {
        let status = child
            .wait()
            .await
            .map_err(|e| runtime_error(format!("waiting for the terminal's command: {e}")))?;
        Ok(Some(crate::supervisor::exit_code(status)))
    };
    Ok(TerminalSession {
        output: Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })),
        input: Box::new(MasterInput { master }),
        exit_code: Box::pin(exit_code),
    })
}
