//! Who a workload runs as, and the directories it may reach.
//!
//! A workload must never reach the control plane's data directory (the store and the keyring
//! are there), nor another workspace's files. So:
//! - **Run as root** (the runtime can switch users): every workspace gets its own uid and gid,
//!   allocated here from a base far above real users ([`DEFAULT_FIRST_UID`]) and recorded in
//!   `<state_dir>/users.json`. Ids only ever grow, so a deleted workspace's id is never given
//!   to another. Workloads and `exec` run with that uid/gid and no supplementary groups; no
//!   `/etc/passwd` entry is needed.
//! - **Not root** (it cannot): everything runs as the runtime's own user, which can read its
//!   own data directory, so the runtime serves **one workspace**: the first that starts a
//!   workload is recorded in `users.json` and any other is refused with an error saying why.
//!
//! Everything a workload must reach lives in the *workload root*, outside the state (and
//! data) directory, which stays 0700:
//!
//! ```text
//! <workload_root>/                      0711 runtime user (0700 when serving one workspace)
//!   <scope>/                            0710 root, group = the workspace's gid
//!     workloads/<name>/                 0700 the workspace's uid: working directory and HOME
//!     volumes/<name>/                   0700 the workspace's uid: volume data
//! ```
//!
//! Only the leaves belong to the workspace's user; every directory above them is the
//! runtime's, so a workload cannot swap a path the runtime later creates, chowns or removes
//! for a symbolic link. `<scope>` is [`clank_core::id::WorkspaceId::scope`]; the group bit
//! keeps other workspaces' users from even traversing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use clank_core::id::WorkspaceId;
use clank_core::{Error, Result, RuntimeFailure};

use crate::layout::io_error;

/// The first uid (and gid) handed to a workspace by default: far above the ids of real users
/// and of the usual subordinate-id ranges, and below `u32::MAX - 1` (the invalid id).
pub const DEFAULT_FIRST_UID: u32 = 2_000_000_000;

/// How the runtime keeps workspaces apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A user per workspace when the runtime runs as root (and the id range is usable in its
    /// user namespace), else one workspace served as the runtime's own user.
    #[default]
    Auto,
    /// A user per workspace; opening fails when the runtime cannot switch users.
    UserPerWorkspace,
    /// Serve one workspace, as the runtime's own user (what `Auto` falls back to).
    SingleWorkspace,
}

/// The uid and gid a workload runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunAs {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The isolation in force, resolved at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    UserPerWorkspace { first_uid: u32 },
    SingleWorkspace,
}

impl Mode {
    /// Decide what `requested` means on this host.
    pub(crate) fn resolve(requested: Isolation, first_uid: u32) -> Result<Mode> {
        let users = Mode::UserPerWorkspace { first_uid };
        match requested {
            Isolation::SingleWorkspace => Ok(Mode::SingleWorkspace),
            Isolation::UserPerWorkspace => match users_unavailable(first_uid) {
                None => Ok(users),
                Some(why) => Err(Error::runtime(
                    RuntimeFailure::Unsupported,
                    format!("process runtime: cannot run workspaces as their own users: {why}"),
                )),
            },
            Isolation::Auto => match users_unavailable(first_uid) {
                None => Ok(users),
                Some(why) => {
                    if rustix::process::geteuid().is_root() {
                        // Root, yet the ids are unusable: say why, it is fixable.
                        tracing::warn!(reason = why, "Native runtime: no user per workspace.");
                    }
                    Ok(Mode::SingleWorkspace)
                }
            },
        }
    }
}

/// Why this process cannot run workloads as uids from `first_uid`, if it cannot.
fn users_unavailable(first_uid: u32) -> Option<String> {
    let euid = rustix::process::geteuid();
    if !euid.is_root() {
        return Some(format!(
            "the runtime runs as uid {}, not root, so it cannot switch users",
            euid.as_raw()
        ));
    }
    if first_uid == 0 || first_uid >= u32::MAX - 1 {
        return Some(format!("{first_uid} is not a usable first uid"));
    }
    // In a user namespace (a rootless container) only mapped ids exist.
    for (file, what) in [("/proc/self/uid_map", "uid"), ("/proc/self/gid_map", "gid")] {
        let Ok(map) = std::fs::read_to_string(file) else {
            continue;
        };
        let mapped = map.lines().any(|line| {
            let mut n = line.split_whitespace().map(|x| x.parse::<u64>().ok());
            match (n.next().flatten(), n.nth(1).flatten()) {
                (Some(start), Some(count)) => {
                    let id = u64::from(first_uid);
                    // Room for many workspaces, not just the first.
                    id >= start && id + 1000 <= start + count
                }
                _ => false,
            }
        });
        if !mapped {
            return Some(format!(
                "{what}s from {first_uid} are not mapped in this user namespace ({file}); \
                 choose a first uid inside a mapped range"
            ));
        }
    }
    None
}

/// `users.json`: the ids handed out and the one workspace served without isolation.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Registry {
    /// The next id to hand out. It only grows, so no id is ever given to two workspaces.
    #[serde(default)]
    next_id: Option<u32>,
    /// Workspace id → its uid (and gid).
    #[serde(default)]
    workspaces: BTreeMap<String, u32>,
    /// The workspace served while the runtime cannot switch users.
    #[serde(default)]
    only_workspace: Option<WorkspaceId>,
}

/// The workspaces' users, persisted.
#[derive(Debug)]
pub(crate) struct Users {
    path: PathBuf,
    mode: Mode,
    registry: Mutex<Registry>,
}

impl Users {
    pub(crate) fn open(state_dir: &Path, mode: Mode) -> Result<Users> {
        let path = state_dir.join("users.json");
        let registry = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                key: path.display().to_string(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Registry::default(),
            Err(e) => return Err(io_error("read", &path, &e)),
        };
        Ok(Users {
            path,
            mode,
            registry: Mutex::new(registry),
        })
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// The workspace served while users cannot be switched, if one is recorded.
    pub(crate) fn only_workspace(&self) -> Option<WorkspaceId> {
        lock(&self.registry).only_workspace
    }

    /// Who `workspace`'s processes run as: its own user (allocated on first use), or `None`
    /// for the runtime's own user. Serving one workspace, another is refused; `claim` records
    /// `workspace` as the one served if none is yet (a start does, a check does not).
    pub(crate) fn admit(&self, workspace: WorkspaceId, claim: bool) -> Result<Option<RunAs>> {
        let mut registry = lock(&self.registry);
        match self.mode {
            Mode::UserPerWorkspace { first_uid } => {
                let key = workspace.to_string();
                if let Some(&id) = registry.workspaces.get(&key) {
                    return Ok(Some(RunAs { uid: id, gid: id }));
                }
                let id = registry.next_id.unwrap_or(first_uid).max(first_uid);
                let next = id
                    .checked_add(1)
                    .filter(|n| *n < u32::MAX - 1)
                    .ok_or_else(|| {
                        Error::runtime(
                            RuntimeFailure::Other,
                            format!("process runtime: no uid left to give workspace {workspace}"),
                        )
                    })?;
                registry.workspaces.insert(key.clone(), id);
                registry.next_id = Some(next);
                if let Err(e) = self.save(&registry) {
                    registry.workspaces.remove(&key);
                    return Err(e);
                }
                tracing::info!(workspace = %workspace, uid = id, "Workspace user allocated.");
                Ok(Some(RunAs { uid: id, gid: id }))
            }
            Mode::SingleWorkspace => match registry.only_workspace {
                Some(only) if only == workspace => Ok(None),
                Some(only) => Err(single_workspace_refusal(workspace, only)),
                None if !claim => Ok(None),
                None => {
                    registry.only_workspace = Some(workspace);
                    if let Err(e) = self.save(&registry) {
                        registry.only_workspace = None;
                        return Err(e);
                    }
                    tracing::warn!(
                        workspace = %workspace,
                        "The native runtime now serves only this workspace: it cannot switch \
                         users, so other workspaces' workloads are refused."
                    );
                    Ok(None)
                }
            },
        }
    }

    fn save(&self, registry: &Registry) -> Result<()> {
        let json = serde_json::to_vec_pretty(registry)
            .map_err(|e| Error::Internal(format!("cannot encode workspace users: {e}")))?;
        let tmp = self.path.with_extension("json.tmp");
        let written = (|| {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| io_error("write", &self.path, &e))
    }
}

/// The error a second workspace gets from a runtime that cannot switch users.
fn single_workspace_refusal(workspace: WorkspaceId, only: WorkspaceId) -> Error {
    Error::runtime(
        RuntimeFailure::Unsupported,
        format!(
            "workspace {workspace}: the native runtime runs as an unprivileged user (uid {}) and \
             serves one workspace ({only}), so a second workspace's workloads could read the \
             first's files; run the daemon as root to isolate workspaces, or use Docker",
            rustix::process::geteuid().as_raw()
        ),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Make `path` a directory (creating it if missing) owned by `owner` (`None`: leave the
/// owner alone) with `mode`. Its parent must be the runtime's own, so nothing can replace
/// `path` with a link between the check and the change.
pub(crate) fn ensure_dir(path: &Path, owner: Option<(u32, u32)>, mode: u32) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("create", path, &e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_error("inspect", path, &e))?;
    if !meta.is_dir() {
        return Err(Error::runtime(
            RuntimeFailure::Other,
            format!(
                "process runtime: `{}` should be a directory and is not; remove it",
                path.display()
            ),
        ));
    }
    if let Some((uid, gid)) = owner
        && (meta.uid() != uid || meta.gid() != gid)
    {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| io_error("change the owner of", path, &e))?;
    }
    if meta.mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("set the mode of", path, &e))?;
    }
    Ok(())
}

/// Give everything under `dir` (itself included) to `uid:gid`, never following a link. For
/// data written by an earlier version as the runtime's own user, before any workload of the
/// new owner can touch it.
pub(crate) fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io_error("inspect", &path, &e))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| io_error("change the owner of", &path, &e))?;
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path).map_err(|e| io_error("list", &path, &e))?;
            for entry in entries {
                pending.push(entry.map_err(|e| io_error("list", &path, &e))?.path());
            }
        }
    }
    Ok(())
}

/// Ancestors of `dir` other users cannot traverse: a workload running as its workspace's
/// user could not reach `dir` through them.
pub(crate) fn closed_ancestors(dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .skip(1)
        .filter(|a| std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o001 == 0))
        .map(Path::to_path_buf)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sequential_per_workspace_stable_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mode = Mode::UserPerWorkspace { first_uid: 3_000 };
        let users = Users::open(dir.path(), mode).unwrap();
        let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
        let ua = users.admit(a, true).unwrap().unwrap();
        let ub = users.admit(b, false).unwrap().unwrap();
        assert_eq!((ua.uid, ua.gid, ub.uid), (3_000, 3_000, 3_001));
        assert_eq!(users.admit(a, true).unwrap(), Some(ua));
        drop(users);
        let users = Users::open(dir.path(), mode).unwrap();
        assert_eq!(users.admit(b, true).unwrap(), Some(ub));
        assert_eq!(
            users.admit(WorkspaceId::new(), true).unwrap().unwrap().uid,
            3_002
        );
    }

    #[test]
    fn an_id_is_never_reused_even_when_the_base_moves_down() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), Mode::UserPerWorkspace { first_uid: 5_000 }).unwrap();
        users.admit(WorkspaceId::new(), true).unwrap();
        drop(users);
        let users = Users::open(dir.path(), Mode::UserPerWorkspace { first_uid: 4_000 }).unwrap();
        assert_eq!(
            users.admit(WorkspaceId::new(), true).unwrap().unwrap().uid,
            5_001
        );
    }

    #[test]
    fn serving_one_workspace_records_the_first_claim_and_refuses_any_other() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), Mode::SingleWorkspace).unwrap();
        let (a, b) = (WorkspaceId::new(), WorkspaceId::new());
        // A check does not claim.
        assert_eq!(users.admit(b, false).unwrap(), None);
        assert_eq!(users.admit(a, true).unwrap(), None);
        drop(users);
        let users = Users::open(dir.path(), Mode::SingleWorkspace).unwrap();
        assert_eq!(users.only_workspace(), Some(a));
        assert_eq!(users.admit(a, true).unwrap(), None);
        let err = users.admit(b, true).unwrap_err();
        assert_eq!(err.runtime_failure(), Some(RuntimeFailure::Unsupported));
        let message = err.to_string();
        assert!(message.contains("serves one workspace"), "{message}");
        assert!(message.contains("run the daemon as root"), "{message}");
        assert!(message.contains(&a.to_string()), "{message}");
    }
}
