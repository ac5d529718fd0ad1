//! What the agent keeps on its server's disk, in its state directory: its identity (server
//! id + credential, owner-only), the control plane's release signing key learned at
//! enrollment, the highest lease epoch it has seen (fencing), and the marker of a self-update
//! that has not proven itself yet.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub server_id: String,
    pub credential: String,
}

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} `{}`: {e}", path.display())
}

impl StateDir {
    /// Create (owner-only) or open the state directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, String> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|e| io("create state directory", &root, e))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("restrict state directory", &root, e))?;
        Ok(StateDir { root })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Write `contents` to `name` atomically (temp file, fsync, rename), owner-only.
    fn write(&self, name: &str, contents: &str) -> Result<(), String> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("create", &tmp, e))?;
        f.write_all(contents.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io("rename into", &path, e))
    }

    fn read(&self, name: &str) -> Result<Option<String>, String> {
        let path = self.file(name);
        match std::fs::read_to_string(&path) {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    pub fn identity(&self) -> Result<Option<Identity>, String> {
        let Some(text) = self.read("identity")? else {
            return Ok(None);
        };
        let mut lines = text.lines();
        match (lines.next(), lines.next()) {
            (Some(server_id), Some(credential)) if !server_id.is_empty() => Ok(Some(Identity {
                server_id: server_id.to_owned(),
                credential: credential.to_owned(),
            })),
            _ => Err(format!(
                "`{}` is malformed; remove it and enroll again with a new join token",
                self.file("identity").display()
            )),
        }
    }

    pub fn save_identity(&self, id: &Identity) -> Result<(), String> {
        self.write(
            "identity",
            &format!("{}\n{}\n", id.server_id, id.credential),
        )
    }

    /// The control plane's release signing key (Ed25519, 32 bytes) learned at enrollment;
    /// `None` for an agent enrolled before releases were signed.
    pub fn release_key(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(text) = self.read("release-key")? else {
            return Ok(None);
        };
        text.trim()
            .strip_prefix("ed25519:")
            .and_then(|h| hex::decode(h).ok())
            .filter(|k| k.len() == 32)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "`{}` is malformed; remove it and enroll again with a new join token",
                    self.file("release-key").display()
                )
            })
    }

    pub fn save_release_key(&self, key: &[u8]) -> Result<(), String> {
        self.write("release-key", &format!("ed25519:{}\n", hex::encode(key)))
    }

    /// The pinned fingerprint of the control plane's certificate, if one was given.
    pub fn fingerprint(&self) -> Result<Option<String>, String> {
        Ok(self.read("fingerprint")?.map(|s| s.trim().to_owned()))
    }

    pub fn save_fingerprint(&self, fingerprint: &str) -> Result<(), String> {
        self.write("fingerprint", fingerprint)
    }

    /// The highest lease epoch seen (0 if none).
    pub fn epoch(&self) -> Result<u64, String> {
        Ok(self
            .read("epoch")?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0))
    }

    pub fn save_epoch(&self, epoch: u64) -> Result<(), String> {
        self.write("epoch", &epoch.to_string())
    }

    /// The version a self-update installed and has not confirmed yet.
    pub fn pending_update(&self) -> Result<Option<String>, String> {
        self.read("update-pending")
    }

    pub fn mark_update_pending(&self, version: &str) -> Result<(), String> {
        self.write("update-pending", version)
    }

    pub fn clear_update_pending(&self) {
        let _ = std::fs::remove_file(self.file("update-pending"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_epoch_persist_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(s.identity().unwrap(), None);
        assert_eq!(s.epoch().unwrap(), 0);
        let id = Identity {
            server_id: "abc".into(),
            credential: "clank-agent-xyz".into(),
        };
        s.save_identity(&id).unwrap();
        s.save_epoch(7).unwrap();
        let again = StateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(again.identity().unwrap(), Some(id));
        assert_eq!(again.epoch().unwrap(), 7);
        let mode = std::fs::metadata(dir.path().join("state/identity"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the credential is readable by its owner only"
        );
    }

    #[test]
    fn the_release_key_persists_owner_only_and_a_malformed_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.release_key().unwrap(), None, "enrolled before signing");
        s.save_release_key(&[7; 32]).unwrap();
        assert_eq!(s.release_key().unwrap(), Some(vec![7; 32]));
        let mode = std::fs::metadata(dir.path().join("release-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        std::fs::write(dir.path().join("release-key"), "ed25519:abcd\n").unwrap();
        let err = s.release_key().unwrap_err();
        assert!(err.contains("enroll again"), "{err}");
    }
}
