//! What Linux's `/proc` says about processes: identity (pid + start time), liveness, process
//! group membership, environment and resource use.
//!
//! `/proc` is the only source that also works for processes this runtime did not spawn (a
//! previous instance did), which is what adoption after a control-plane restart needs.
//! Reads are of kernel-generated files, so they are done synchronously.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use crate::meta::Leader;

/// The few fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub(crate) state: char,
    pub(crate) pgrp: i32,
    /// User and system CPU time, in clock ticks.
    pub(crate) utime: u64,
    pub(crate) stime: u64,
    /// Field 22: start time in clock ticks after boot.
    pub(crate) start_ticks: u64,
}

impl ProcStat {
    /// A zombie has exited and only waits to be reaped; it runs nothing and holds no port.
    pub(crate) fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parse the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself contain spaces and `)`, so fields are counted from the *last* `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 of the file, so field N is `fields[N - 3]`.
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        pgrp: field(5)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether the recorded process still runs: same pid, same start time, not a zombie. A pid
/// that now belongs to another process (different start time) is *not* ours.
pub(crate) fn is_running(leader: Leader) -> bool {
    stat(leader.pid).is_some_and(|s| s.start_ticks == leader.start_ticks && !s.has_exited())
}

/// Whether the pid now names a different process than the record (the pid was reused).
pub(crate) fn pid_reused(leader: Leader) -> bool {
    stat(leader.pid).is_some_and(|s| s.start_ticks != leader.start_ticks)
}

/// Live (non-zombie) members of a process group, with their stats.
pub(crate) fn group_members(pgid: i32) -> Vec<(i32, ProcStat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, s)| s.pgrp == pgid && !s.has_exited())
        .collect()
}

/// The environment a process was started with (what `exec` reuses for adopted workloads).
pub(crate) fn environ(pid: i32) -> std::io::Result<Vec<(OsString, OsString)>> {
    let bytes = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(parse_environ(&bytes))
}

fn parse_environ(bytes: &[u8]) -> Vec<(OsString, OsString)> {
    bytes
        .split(|b| *b == 0)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| {
            let eq = entry.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(entry[..eq].to_vec()),
                OsString::from_vec(entry[eq + 1..].to_vec()),
            ))
        })
        .collect()
}

/// Resident memory of one process, from `/proc/<pid>/statm` (second field, in pages).
pub(crate) fn resident_bytes(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(rustix::param::page_size() as u64))
}

/// Clock ticks per second, the unit of `utime`, `stime` and start times.
pub(crate) fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis_of_the_command_name() {
        let line = "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    17 3 0 0 20 0 1 0 987654 1000 200 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.pgrp, 4242);
        assert_eq!((s.utime, s.stime), (17, 3));
        assert_eq!(s.start_ticks, 987654);
        assert!(!s.has_exited());
        assert!(parse_stat("12 (truncated) S 1").is_none());
    }

    #[test]
    fn own_process_is_running_and_a_wrong_start_time_is_a_reused_pid() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let me = stat(pid).unwrap();
        let leader = Leader {
            pid,
            start_ticks: me.start_ticks,
        };
        assert!(is_running(leader));
        assert!(!pid_reused(leader));
        let impostor = Leader {
            pid,
            start_ticks: me.start_ticks + 1,
        };
        assert!(!is_running(impostor));
        assert!(pid_reused(impostor));
    }

    #[test]
    fn environ_splits_on_nul_and_the_first_equals_sign() {
        let env = parse_environ(b"A=1\0B=x=y\0\0NOEQ\0");
        assert_eq!(
            env,
            vec![
                (OsString::from("A"), OsString::from("1")),
                (OsString::from("B"), OsString::from("x=y")),
            ]
        );
    }
}
