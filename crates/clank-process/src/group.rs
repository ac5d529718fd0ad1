//! Ending a workload: signals go to its whole process group, so whatever the workload forked
//! (a shell's children, worker processes) ends with it, as it would in a container.
//!
//! Every workload's leader is started with `process_group(0)`, so the group id is the
//! leader's pid. Before signalling, the recorded start time is compared with `/proc`: if the
//! pid now names another process, our group is gone (Linux does not hand out a pid while a
//! group with that id still has members) and nothing is signalled.

use std::time::Duration;

use clank_core::{Error, Result, RuntimeFailure};
use rustix::process::{Pid, Signal, kill_process, kill_process_group};

use crate::meta::Leader;
use crate::procfs;

/// How long to wait for processes to disappear after SIGKILL before reporting them stuck
/// (a process in uninterruptible sleep ignores even SIGKILL until its I/O returns).
const KILL_WAIT: Duration = Duration::from_secs(5);

const POLL: Duration = Duration::from_millis(20);

/// No process of the workload is left: the leader has exited and its group is empty.
pub(crate) fn is_gone(leader: Leader) -> bool {
    procfs::pid_reused(leader)
        || (!procfs::is_running(leader) && procfs::group_members(leader.pid).is_empty())
}

/// Send `signal` to the workload's group, and to the leader itself in case it left the group
/// (`setsid`). Errors are ignored: "no such process" is the goal, and permission errors
/// cannot happen for processes this user started.
pub(crate) fn signal(leader: Leader, signal: Signal) {
    if procfs::pid_reused(leader) {
        return;
    }
    let Some(pid) = Pid::from_raw(leader.pid) else {
        return;
    };
    let _ = kill_process_group(pid, signal);
    if procfs::is_running(leader) {
        let _ = kill_process(pid, signal);
    }
}

/// SIGTERM the group, wait up to `grace` for it to empty, then SIGKILL it. Once the leader
/// has exited, what is left of its group is killed at once, as a container's processes die
/// with its main process.
pub(crate) async fn terminate(name: &str, leader: Leader, grace: Duration) -> Result<()> {
    if is_gone(leader) {
        return Ok(());
    }
    signal(leader, Signal::TERM);
    if wait_leader_gone(leader, grace).await && wait_gone(leader, Duration::ZERO).await {
        return Ok(());
    }
    tracing::debug!(
        workload = name,
        pid = leader.pid,
        ?grace,
        "Killing what is left."
    );
    signal(leader, Signal::KILL);
    if wait_gone(leader, KILL_WAIT).await {
        return Ok(());
    }
    Err(Error::runtime(
        RuntimeFailure::Timeout,
        format!(
            "workload `{name}`: processes of group {} are still alive {}s after SIGKILL \
             (stuck in uninterruptible I/O?); check `ps -g {}`",
            leader.pid,
            KILL_WAIT.as_secs(),
            leader.pid
        ),
    ))
}

/// Poll until the leader has exited or `within` has passed; true if it has exited.
async fn wait_leader_gone(leader: Leader, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !procfs::is_running(leader) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Poll until the workload is gone or `within` has passed; true if it is gone.
async fn wait_gone(leader: Leader, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if is_gone(leader) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
