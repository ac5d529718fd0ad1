//! Copying a volume directory's tree into another, as a volume copy needs it: directories,
//! regular files and symlinks (recreated, never followed, so a link cannot pull in data from
//! outside the volume), each with its permission bits. Sockets and FIFOs belong to a running
//! process and are left out. Ownership is the caller's to set afterwards (the runtime gives the
//! whole copy to the target workspace's user).

use std::path::{Path, PathBuf};

use clank_core::Result;

use crate::layout::io_error;

/// Copy what `src` holds into the existing, empty directory `dst`; returns the bytes of the
/// regular files copied.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = 0;
    // An explicit stack: a deep tree cannot overflow ours.
    let mut pending: Vec<(PathBuf, PathBuf)> = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from_dir, to_dir)) = pending.pop() {
        let entries = std::fs::read_dir(&from_dir).map_err(|e| io_error("list", &from_dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &from_dir, &e))?;
            let from = entry.path();
            let to = to_dir.join(entry.file_name());
            let meta =
                std::fs::symlink_metadata(&from).map_err(|e| io_error("inspect", &from, &e))?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(&from).map_err(|e| io_error("read", &from, &e))?;
                std::os::unix::fs::symlink(&target, &to)
                    .map_err(|e| io_error("create", &to, &e))?;
            } else if kind.is_dir() {
                std::fs::create_dir(&to).map_err(|e| io_error("create", &to, &e))?;
                std::fs::set_permissions(
                    &to,
                    std::fs::Permissions::from_mode(meta.permissions().mode()),
                )
                .map_err(|e| io_error("set the mode of", &to, &e))?;
                pending.push((from, to));
            } else if kind.is_file() {
                // `fs::copy` keeps the permission bits.
                bytes += std::fs::copy(&from, &to).map_err(|e| io_error("copy", &from, &e))?;
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_tree_is_copied_with_modes_and_its_links_recreated_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let (src, dst) = (root.path().join("src"), root.path().join("dst"));
        std::fs::create_dir_all(src.join("pg/base")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("pg/base/1"), b"tuples").unwrap();
        std::fs::set_permissions(src.join("pg"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(root.path().join("outside"), b"not in the volume").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), src.join("link")).unwrap();

        assert_eq!(copy_tree(&src, &dst).unwrap(), 6);
        assert_eq!(std::fs::read(dst.join("pg/base/1")).unwrap(), b"tuples");
        let mode = std::fs::metadata(dst.join("pg"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let link = std::fs::symlink_metadata(dst.join("link")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            root.path().join("outside")
        );
    }
}
