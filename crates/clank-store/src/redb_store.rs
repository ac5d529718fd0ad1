//! [`RedbStore`]: the embedded default [`Store`], one redb file holding every key, its version
//! and the store revision.
//!
//! Layout: table `clank_kv_v1` maps key bytes to `version ++ value` (see the `encoding`
//! module); table `clank_meta_v1` holds the revision counter. A commit reads and bumps the
//! counter, checks its conditions and applies its ops inside one redb write transaction, so
//! all of it lands or none does, and redb's single writer serializes committers.
//!
//! redb is blocking, so every operation runs on tokio's blocking pool.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use clank_core::store::{Entry, Op, Revision, Scan, Store, Txn};
use clank_core::{Error, InvalidInput, Result};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::encoding::{
    as_slice_bound, decode_entry, decode_value, encode_value, first_key, next_revision, scan_bounds,
};

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("clank_kv_v1");
const META: TableDefinition<&str, u64> = TableDefinition::new("clank_meta_v1");
const REVISION_KEY: &str = "revision";

/// A [`Store`] in a single redb database file. Cloning is cheap and shares the database.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    path: Arc<Path>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Open the database at `path`, creating the file (not its directory) if it is missing.
    ///
    /// Blocks: after a crash redb repairs the file here, which reads all of it. Fails with
    /// [`Error::StoreUnavailable`] if another process (or another `RedbStore` in this one) has
    /// the file open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        if !path.exists() {
            create_atomically(&path)?;
        }
        let db = Database::create(&path).map_err(|e| backend_error(&path, "open", None, e))?;
        // Create both tables up front so readers never meet a missing table.
        let wtx = db
            .begin_write()
            .map_err(|e| backend_error(&path, "open: begin write", None, e))?;
        {
            wtx.open_table(DATA)
                .map_err(|e| backend_error(&path, "open: create data table", None, e))?;
            wtx.open_table(META)
                .map_err(|e| backend_error(&path, "open: create meta table", None, e))?;
        }
        wtx.commit()
            .map_err(|e| backend_error(&path, "open: commit", None, e))?;
        Ok(RedbStore {
            db: Arc::new(db),
            path,
        })
    }

    /// The database file this store was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` on the blocking pool with the database and its path (for error context).
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database, &Path) -> Result<T> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        let path = Arc::clone(&self.path);
        match tokio::task::spawn_blocking(move || f(&db, &path)).await {
            Ok(result) => result,
            // A panic inside redb or our closure is a bug: surface it, don't disguise it.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::StoreUnavailable(format!(
                "redb {}: blocking task did not run: {e}",
                self.path.display()
            ))),
        }
    }
}

/// Map any redb error to the core error, naming the file, the action and the key if any.
fn backend_error(path: &Path, action: &str, key: Option<&str>, e: impl Into<redb::Error>) -> Error {
    let at = key.map(|k| format!(" `{k}`")).unwrap_or_default();
    match e.into() {
        redb::Error::Corrupted(reason) => Error::Corrupt {
            key: key.map_or_else(|| path.display().to_string(), str::to_owned),
            reason: format!("redb {}: {action}: {reason}", path.display()),
        },
        // Retrying cannot help, so this is the caller's input, not an unavailable store.
        redb::Error::ValueTooLarge(len) => Error::Invalid(InvalidInput::new(
            "value",
            "too_large",
            format!("{action}{at}: {len} bytes exceeds what redb can store in one entry"),
        )),
        other => Error::StoreUnavailable(format!("redb {}: {action}{at}: {other}", path.display())),
    }
}

/// The outcome of applying a transaction inside an open write transaction.
enum Applied {
    Committed(Revision),
    /// A condition failed on this key; nothing may be committed.
    Conflict(String),
}

fn commit_blocking(db: &Database, path: &Path, txn: Txn) -> Result<Revision> {
    let mut wtx = db
        .begin_write()
        .map_err(|e| backend_error(path, "commit: begin write", None, e))?;
    // Immediate is redb's default; set it anyway because the Store contract depends on it:
    // when commit returns Ok the data has been fsynced.
    wtx.set_durability(Durability::Immediate)
        .map_err(|e| backend_error(path, "commit: set durability", None, e))?;
    // Named in errors about the whole transaction.
    let key = first_key(&txn).map(str::to_owned);
    match apply(&wtx, path, txn) {
        Ok(Applied::Committed(rev)) => {
            wtx.commit()
                .map_err(|e| backend_error(path, "commit", key.as_deref(), e))?;
            Ok(rev)
        }
        Ok(Applied::Conflict(key)) => {
            wtx.abort()
                .map_err(|e| backend_error(path, "commit: abort", Some(&key), e))?;
            Err(Error::WriteConflict { key })
        }
        // Dropping an uncommitted write transaction aborts it; the original error matters more
        // than any error from an explicit abort.
        Err(e) => Err(e),
    }
}

fn apply(wtx: &redb::WriteTransaction, path: &Path, txn: Txn) -> Result<Applied> {
    let mut data = wtx
        .open_table(DATA)
        .map_err(|e| backend_error(path, "commit: open data table", None, e))?;
    for cond in &txn.conditions {
        let key = cond.key();
        let current = match data
            .get(key.as_bytes())
            .map_err(|e| backend_error(path, "commit: check condition", Some(key), e))?
        {
            Some(stored) => Some(decode_value(key, stored.value())?.0),
            None => None,
        };
        if !cond.holds(current) {
            return Ok(Applied::Conflict(key.to_owned()));
        }
    }

    let mut meta = wtx
        .open_table(META)
        .map_err(|e| backend_error(path, "commit: open meta table", None, e))?;
    let current = meta
        .get(REVISION_KEY)
        .map_err(|e| backend_error(path, "commit: read revision", None, e))?
        .map_or(0, |g| g.value());
    let rev = next_revision(current)?;
    meta.insert(REVISION_KEY, rev)
        .map_err(|e| backend_error(path, "commit: write revision", None, e))?;

    for op in txn.ops {
        match op {
            Op::Put { key, value } => {
                data.insert(key.as_bytes(), encode_value(rev, &value).as_slice())
                    .map_err(|e| backend_error(path, "commit: put", Some(&key), e))?;
            }
            Op::Delete { key } => {
                data.remove(key.as_bytes())
                    .map_err(|e| backend_error(path, "commit: delete", Some(&key), e))?;
            }
        }
    }
    Ok(Applied::Committed(rev))
}

fn scan_blocking(db: &Database, path: &Path, scan: &Scan) -> Result<Vec<Entry>> {
    let Some((lower, upper)) = scan_bounds(scan) else {
        return Ok(Vec::new());
    };
    let ctx = |e: redb::Error| backend_error(path, "scan", Some(&scan.prefix), e);
    let rtx = db.begin_read().map_err(|e| ctx(e.into()))?;
    let data = rtx.open_table(DATA).map_err(|e| ctx(e.into()))?;
    let range = data
        .range::<&[u8]>((as_slice_bound(&lower), as_slice_bound(&upper)))
        .map_err(|e| ctx(e.into()))?;
    // Both directions walk the B-tree from the bound inwards and stop after `limit` entries.
    let rows: Box<dyn Iterator<Item = _>> = if scan.reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    rows.take(scan.limit)
        .map(|row| {
            let (k, v) = row.map_err(|e| ctx(e.into()))?;
            decode_entry(k.value(), v.value())
        })
        .collect()
}

#[async_trait]
impl Store for RedbStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let key = key.to_owned();
        self.blocking(move |db, path| {
            let ctx = |e: redb::Error| backend_error(path, "get", Some(&key), e);
            let rtx = db.begin_read().map_err(|e| ctx(e.into()))?;
            let data = rtx.open_table(DATA).map_err(|e| ctx(e.into()))?;
            let Some(stored) = data.get(key.as_bytes()).map_err(|e| ctx(e.into()))? else {
                return Ok(None);
            };
            let (version, value) = decode_value(&key, stored.value())?;
            Ok(Some(Entry {
                value: value.to_vec(),
                key: key.clone(),
                version,
            }))
        })
        .await
    }

    /// One read transaction on one blocking thread for all of them: a page of a thousand
    /// records is one hop off the async threads, not a thousand.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = keys.to_vec();
        self.blocking(move |db, path| {
            let ctx = |e: redb::Error, key: &str| backend_error(path, "get", Some(key), e);
            let first = keys.first().map(String::as_str).unwrap_or_default();
            let rtx = db.begin_read().map_err(|e| ctx(e.into(), first))?;
            let data = rtx.open_table(DATA).map_err(|e| ctx(e.into(), first))?;
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let stored = data.get(key.as_bytes()).map_err(|e| ctx(e.into(), &key))?;
                out.push(match stored {
                    Some(stored) => {
                        let (version, value) = decode_value(&key, stored.value())?;
                        let value = value.to_vec();
                        Some(Entry {
                            value,
                            key,
                            version,
                        })
                    }
                    None => None,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn scan(&self, scan: Scan) -> Result<Vec<Entry>> {
        self.blocking(move |db, path| scan_blocking(db, path, &scan))
            .await
    }

    async fn commit(&self, txn: Txn) -> Result<Revision> {
        self.blocking(move |db, path| commit_blocking(db, path, txn))
            .await
    }

    async fn revision(&self) -> Result<Revision> {
        self.blocking(|db, path| {
            let ctx = |e: redb::Error| backend_error(path, "read revision", None, e);
            let rtx = db.begin_read().map_err(|e| ctx(e.into()))?;
            let meta = rtx.open_table(META).map_err(|e| ctx(e.into()))?;
            let rev = meta
                .get(REVISION_KEY)
                .map_err(|e| ctx(e.into()))?
                .map_or(0, |g| g.value());
            Ok(rev)
        })
        .await
    }
}

/// Make a new, empty database next to `path` and rename it into place, so a crash while
/// creating it never leaves a half-written file that later refuses to open.
fn create_atomically(path: &Path) -> Result<()> {
    let tmp = std::path::PathBuf::from(format!("{}.creating", path.display()));
    let io = |what: &str, e: std::io::Error| {
        clank_core::Error::StoreUnavailable(format!("redb {}: {what}: {e}", path.display()))
    };
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io("remove leftover", e)),
        _ => {}
    }
    {
        let db = Database::create(&tmp).map_err(|e| backend_error(path, "create", None, e))?;
        let wtx = db
            .begin_write()
            .map_err(|e| backend_error(path, "create: begin write", None, e))?;
        {
            wtx.open_table(DATA)
                .map_err(|e| backend_error(path, "create: data table", None, e))?;
            wtx.open_table(META)
                .map_err(|e| backend_error(path, "create: meta table", None, e))?;
        }
        wtx.commit()
            .map_err(|e| backend_error(path, "create: commit", None, e))?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename into place", e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync directory", e))?;
    }
    Ok(())
}
