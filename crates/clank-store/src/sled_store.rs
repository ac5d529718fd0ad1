//! [`SledStore`]: a [`Store`] on sled 0.34 (cargo feature `sled`), an alternative embedded
//! backend.
//!
//! Layout: tree `clank_kv_v1` maps key bytes to `version ++ value` (see the `encoding` module);
//! tree `clank_meta_v1` holds the revision counter. A commit is one sled transaction over both
//! trees: every commit reads and writes the counter, so concurrent commits always conflict
//! and sled retries all but one, which serializes them. After the transaction the database is
//! flushed (fsynced) before `commit` returns, since sled otherwise only flushes periodically.
//!
//! Scans read the live trees, not a snapshot: a scan racing a commit may see part of it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use clank_core::store::{Entry, Op, Revision, Scan, Store, Txn};
use clank_core::{Error, Result};
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};

use crate::encoding::{
    decode_entry, decode_value, decode_version, encode_value, first_key, next_revision, scan_bounds,
};

const DATA_TREE: &str = "clank_kv_v1";
const META_TREE: &str = "clank_meta_v1";
const REVISION_KEY: &[u8] = b"revision";

/// A [`Store`] in a sled database directory. Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    data: sled::Tree,
    meta: sled::Tree,
    path: Arc<Path>,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Open the sled database directory at `path`, creating it if missing.
    ///
    /// Blocks while sled recovers its log. Fails with [`Error::StoreUnavailable`] if the
    /// directory is already open, in this process or another.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        let db = sled::Config::new()
            .path(&path)
            .open()
            .map_err(|e| backend_error(&path, "open", None, e))?;
        let data = db
            .open_tree(DATA_TREE)
            .map_err(|e| backend_error(&path, "open data tree", None, e))?;
        let meta = db
            .open_tree(META_TREE)
            .map_err(|e| backend_error(&path, "open meta tree", None, e))?;
        Ok(SledStore {
            db,
            data,
            meta,
            path,
        })
    }

    /// The database directory this store was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the blocking pool: sled's calls, and above all its fsync, block.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(SledStore) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || f(store)).await {
            Ok(result) => result,
            // A panic inside sled or our closure is a bug: surface it, don't disguise it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::StoreUnavailable(format!(
                "sled {}: blocking task did not run: {e}",
                self.path.display()
            ))),
        }
    }

    fn commit_blocking(&self, txn: &Txn) -> Result<Revision> {
        let path = &*self.path;
        // sled may run this closure several times (it retries on conflicts), so it only reads
        // `txn` and touches nothing outside the transaction.
        let result = (&self.data, &self.meta).transaction(|(data, meta)| {
            for cond in &txn.conditions {
                let key = cond.key();
                let current = match data.get(key.as_bytes())? {
                    Some(stored) => Some(
                        decode_version(key, &stored)
                            .map_err(ConflictableTransactionError::Abort)?,
                    ),
                    None => None,
                };
                if !cond.holds(current) {
                    return Err(ConflictableTransactionError::Abort(Error::WriteConflict {
                        key: key.to_owned(),
                    }));
                }
            }
            let rev = bump_revision(meta)?;
            for op in &txn.ops {
                match op {
                    Op::Put { key, value } => {
                        data.insert(key.as_bytes(), encode_value(rev, value))?;
                    }
                    Op::Delete { key } => {
                        data.remove(key.as_bytes())?;
                    }
                }
            }
            Ok(rev)
        });
        let rev = match result {
            Ok(rev) => rev,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => {
                return Err(backend_error(path, "commit", first_key(txn), e));
            }
        };
        // The transaction is applied in memory; only a flush makes it survive a crash.
        self.db
            .flush()
            .map_err(|e| backend_error(path, "commit: flush", first_key(txn), e))?;
        Ok(rev)
    }

    fn scan_blocking(&self, scan: &Scan) -> Result<Vec<Entry>> {
        let Some(bounds) = scan_bounds(scan) else {
            return Ok(Vec::new());
        };
        let range = self.data.range::<Vec<u8>, _>(bounds);
        // sled's range iterator seeks to either bound, so both directions cost one seek plus
        // the entries returned.
        let rows: Box<dyn Iterator<Item = _>> = if scan.reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        rows.take(scan.limit)
            .map(|row| {
                let (k, v) =
                    row.map_err(|e| backend_error(&self.path, "scan", Some(&scan.prefix), e))?;
                decode_entry(&k, &v)
            })
            .collect()
    }
}

/// The stored form of the revision counter: 8 bytes, big-endian.
fn encode_revision(revision: Revision) -> [u8; 8] {
    revision.to_be_bytes()
}

/// Parse the stored revision counter.
fn decode_revision(stored: &[u8]) -> Result<Revision> {
    let bytes: [u8; 8] = stored.try_into().map_err(|_| Error::Corrupt {
        key: "sled revision counter".to_owned(),
        reason: format!("{} bytes, expected 8", stored.len()),
    })?;
    Ok(Revision::from_be_bytes(bytes))
}

/// Read the revision counter inside a transaction and store its successor.
fn bump_revision(meta: &TransactionalTree) -> ConflictableTransactionResult<Revision, Error> {
    let current = match meta.get(REVISION_KEY)? {
        Some(stored) => decode_revision(&stored).map_err(ConflictableTransactionError::Abort)?,
        None => 0,
    };
    let rev = next_revision(current).map_err(ConflictableTransactionError::Abort)?;
    meta.insert(REVISION_KEY, &encode_revision(rev)[..])?;
    Ok(rev)
}

/// Map a sled error to the core error, naming the directory, the action and the key if any.
fn backend_error(path: &Path, action: &str, key: Option<&str>, e: sled::Error) -> Error {
    let at = key.map(|k| format!(" `{k}`")).unwrap_or_default();
    match e {
        sled::Error::Corruption { .. } => Error::Corrupt {
            key: key.map_or_else(|| path.display().to_string(), str::to_owned),
            reason: format!("sled {}: {action}: {e}", path.display()),
        },
        sled::Error::ReportableBug(_) => {
            Error::Internal(format!("sled {}: {action}{at}: {e}", path.display()))
        }
        _ => Error::StoreUnavailable(format!("sled {}: {action}{at}: {e}", path.display())),
    }
}

#[async_trait]
impl Store for SledStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let key = key.to_owned();
        self.blocking(move |s| {
            let stored = s
                .data
                .get(key.as_bytes())
                .map_err(|e| backend_error(&s.path, "get", Some(&key), e))?;
            let Some(stored) = stored else {
                return Ok(None);
            };
            let (version, value) = decode_value(&key, &stored)?;
            Ok(Some(Entry {
                value: value.into_owned(),
                key: key.clone(),
                version,
            }))
        })
        .await
    }

    async fn scan(&self, scan: Scan) -> Result<Vec<Entry>> {
        self.blocking(move |s| s.scan_blocking(&scan)).await
    }

    async fn commit(&self, txn: Txn) -> Result<Revision> {
        self.blocking(move |s| s.commit_blocking(&txn)).await
    }

    async fn revision(&self) -> Result<Revision> {
        self.blocking(|s| {
            let stored = s
                .meta
                .get(REVISION_KEY)
                .map_err(|e| backend_error(&s.path, "read revision", None, e))?;
            stored.map_or(Ok(0), |v| decode_revision(&v))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_counter_of_wrong_length_is_corrupt() {
        assert_eq!(decode_revision(&encode_revision(9)).unwrap(), 9);
        assert!(matches!(
            decode_revision(b"1234"),
            Err(Error::Corrupt { .. })
        ));
    }
}
