//! Volumes of the native runtime: a directory per workspace and volume name under the
//! workload root (`<workload_root>/<scope>/volumes/<name>/`), given to the workspace's user,
//! with the labels kept beside the state; data an earlier version kept in the state directory
//! is moved in on first use, unless it is another workspace's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clank_core::id::WorkspaceId;
use clank_core::runtime::WorkloadSpec;
use clank_core::validate::validate_volume_name;
use clank_core::{Error, Result, RuntimeFailure};

use crate::Shared;
use crate::env::VolumeDir;
use crate::isolation::{self, RunAs};
use crate::layout::io_error;
use crate::tree_copy;

impl Shared {
    /// A workspace's volume directory, created if missing (as Docker creates named volumes
    /// on first use), with the data an earlier version kept in the state directory moved in.
    pub(crate) fn volume(
        &self,
        workspace: WorkspaceId,
        name: &str,
        run_as: Option<RunAs>,
    ) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        self.workspace_kind_dir(workspace, "volumes", run_as)?;
        let dir = self.layout.volume_dir(workspace, name);
        let legacy = self.layout.legacy_volume_dir(name);
        if !dir.exists() && legacy.is_dir() && self.legacy_volume_is_of(workspace, name) {
            std::fs::rename(&legacy, &dir).map_err(|e| {
                Error::runtime(
                    RuntimeFailure::Other,
                    format!(
                        "process runtime: cannot move volume `{name}` from `{}` to `{}` ({e}); \
                         move it there by hand (the runtime no longer uses the old place)",
                        legacy.display(),
                        dir.display()
                    ),
                )
            })?;
            tracing::info!(
                volume = name,
                from = %legacy.display(),
                to = %dir.display(),
                "Volume data moved out of the state directory."
            );
        }
        if let Some(user) = run_as
            && std::fs::symlink_metadata(&dir).is_ok_and(|m| m.uid() != user.uid)
        {
            // Written by an earlier version (or mode) as the runtime's own user.
            isolation::chown_tree(&dir, user.uid, user.gid)?;
        }
        isolation::ensure_dir(&dir, run_as.map(|u| (u.uid, u.gid)), 0o700)?;
        Ok(dir)
    }

    /// Whether the data an earlier version kept for volume `name` may be `workspace`'s: not
    /// when its name or its labels say it is another workspace's.
    pub(crate) fn legacy_volume_is_of(&self, workspace: WorkspaceId, name: &str) -> bool {
        let scope = workspace.scope();
        let named_other = name
            .strip_prefix("clank-")
            .and_then(|rest| rest.split_once("--"))
            .is_some_and(|(s, _)| {
                s.len() == 12 && s.bytes().all(|b| b.is_ascii_hexdigit()) && s != scope
            });
        let labelled_other = std::fs::read(self.layout.volume_labels_path(name))
            .ok()
            .and_then(|json| serde_json::from_slice::<BTreeMap<String, String>>(&json).ok())
            .and_then(|labels| {
                labels
                    .get(&format!("{}workspace", clank_core::runtime::LABEL_PREFIX))
                    .cloned()
            })
            .is_some_and(|w| w != workspace.to_string());
        if named_other || labelled_other {
            tracing::warn!(
                volume = name,
                workspace = %workspace,
                "Volume data of an earlier version belongs to another workspace: left in place."
            );
        }
        !(named_other || labelled_other)
    }

    /// Volume directories for a spec, created if missing.
    pub(crate) fn prepare_volumes(
        &self,
        spec: &WorkloadSpec,
        run_as: Option<RunAs>,
    ) -> Result<Vec<VolumeDir>> {
        spec.volumes
            .iter()
            .map(|v| {
                Ok(VolumeDir {
                    name: v.name.clone(),
                    dir: self.volume(spec.owner.workspace, &v.name, run_as)?,
                })
            })
            .collect()
    }

    /// Labels name the owning workspace (`clank.workspace`): its directory is made now, and
    /// a workspace the runtime does not serve is refused. Without one, the directory is made
    /// by the first `start` that mounts the volume, in that workload's workspace.
    pub(crate) fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        validate_volume_name("name", name)?;
        let shared = self;
        let workspace = labels
            .get(&format!("{}workspace", clank_core::runtime::LABEL_PREFIX))
            .and_then(|w| w.parse::<WorkspaceId>().ok());
        if let Some(workspace) = workspace {
            let run_as = shared.users.admit(workspace, true)?;
            shared.volume(workspace, name, run_as)?;
        }
        let path = shared.layout.volume_labels_path(name);
        let json = serde_json::to_vec_pretty(labels)
            .map_err(|e| Error::Internal(format!("cannot encode volume labels: {e}")))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| io_error("write", &path, &e))
    }

    pub(crate) fn remove_volume(&self, name: &str) -> Result<()> {
        validate_volume_name("name", name)?;
        // As Docker refuses to remove a volume any container (even a stopped one) refers to.
        let users: Vec<String> = self
            .observe_all()?
            .into_iter()
            .filter(|o| o.meta.volumes.iter().any(|v| v == name))
            .map(|o| o.meta.name)
            .collect();
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "volume `{name}` is used by workload(s) {}; remove them first",
                users.join(", ")
            )));
        }
        let layout = &self.layout;
        // Every workspace's directory of that name, and data an earlier version kept.
        let mut dirs = vec![layout.legacy_volume_dir(name)];
        let root = layout.work_root();
        let scopes = std::fs::read_dir(root).map_err(|e| io_error("list", root, &e))?;
        for scope in scopes {
            let scope = scope.map_err(|e| io_error("list", root, &e))?;
            dirs.push(scope.path().join("volumes").join(name));
        }
        for dir in dirs {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("remove", &dir, &e)),
            }
        }
        let _ = std::fs::remove_file(layout.volume_labels_path(name));
        Ok(())
    }

    /// The workspace's directory `from` copied into a new directory `to` (created as
    /// `ensure_volume` creates it), the copy given to the workspace's user.
    pub(crate) async fn copy_volume(
        &self,
        from: &str,
        to: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64> {
        validate_volume_name("from", from)?;
        validate_volume_name("to", to)?;
        let Some(workspace) = labels
            .get(&format!("{}workspace", clank_core::runtime::LABEL_PREFIX))
            .and_then(|w| w.parse::<WorkspaceId>().ok())
        else {
            return Err(Error::Internal(
                "a volume copy needs the owner's workspace label".to_owned(),
            ));
        };
        let shared = self;
        let layout = &shared.layout;
        let exists = layout.volume_dir(workspace, from).is_dir()
            || (layout.legacy_volume_dir(from).is_dir()
                && shared.legacy_volume_is_of(workspace, from));
        if !exists {
            return Err(Error::runtime(
                RuntimeFailure::NotFound,
                format!("volume `{from}` does not exist on this host (nothing to copy)"),
            ));
        }
        let target = layout.volume_dir(workspace, to);
        if std::fs::symlink_metadata(&target).is_ok() {
            return Err(Error::runtime(
                RuntimeFailure::NameConflict,
                format!(
                    "volume `{to}` already exists on this host; a copy never writes into data \
                     already there (remove it first, or copy under another name)"
                ),
            ));
        }
        let run_as = shared.users.admit(workspace, true)?;
        let source = shared.volume(workspace, from, run_as)?;
        self.ensure_volume(to, labels)?;
        let (src, dst) = (source.clone(), target.clone());
        let copied = tokio::task::spawn_blocking(move || {
            let bytes = tree_copy::copy_tree(&src, &dst)?;
            if let Some(user) = run_as {
                isolation::chown_tree(&dst, user.uid, user.gid)?;
            }
            Ok::<_, Error>(bytes)
        })
        .await
        .map_err(|e| Error::Internal(format!("volume copy task: {e}")))
        .and_then(|r| r);
        if copied.is_err()
            && let Err(e) = self.remove_volume(to)
        {
            tracing::warn!(volume = %to, error = %e, "Could not remove the volume of a failed copy.");
        }
        copied
    }
}
