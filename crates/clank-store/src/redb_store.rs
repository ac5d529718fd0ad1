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
    as_slice_bound, decode_entry, decode_value, decode_version, encode_value, first_key,
    next_revision, scan_bounds,
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

/// The most memory redb's page cache may hold (its default is 1 GiB, which a daemon paging
/// through 100,000 deployments fills with every page it reads: ~90 MiB RSS at 10,000
/// services, more with history). 8 MiB holds every branch page of that store (~1,200 pages,
/// 4.7 MiB) plus hot leaves, so a lookup reads at most its leaf from outside the cache, and
/// those leaves are in the kernel's page cache, not in the daemon's RSS. Measured with the
/// `scale` bench (benches/README.md): 16 MiB left the daemon at 44.8 MiB RSS, 8 MiB at
/// 31–34 MiB and 4 MiB at 29 MiB, the gets' p50 0.1–0.2 ms slower than with 16 MiB (within
/// the run-to-run noise of that loaded machine). `CLANK_STORE_CACHE_MB` overrides it.
pub const DEFAULT_CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Compact at open when the file has at least this much space in free pages…
const COMPACT_MIN_FREE: u64 = 16 * 1024 * 1024;
/// …and that is at least this fraction (1/n) of the file.
const COMPACT_MIN_FREE_SHARE: u64 = 4;

/// How much of a database file holds data, what is free, and what is overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// The file's length.
    pub file_bytes: u64,
    /// Keys and values as stored (after this crate's encoding), without redb's overhead.
    pub stored_bytes: u64,
    /// B-tree branch keys, redb's own tables and other metadata.
    pub metadata_bytes: u64,
    /// Free pages and the unused ends of pages.
    pub fragmented_bytes: u64,
    pub leaf_pages: u64,
    pub branch_pages: u64,
    /// The bytes of the pages the data's B-trees hold (leaf and branch pages, whatever their
    /// fill): what compaction cannot give back.
    pub tree_bytes: u64,
}

impl Space {
    /// Roughly the free pages: the file less the pages the B-trees hold (redb's own small
    /// tables are counted as free). Unlike [`Space::fragmented_bytes`] it leaves out the unused
    /// ends of pages, which compaction does not reclaim.
    pub fn free_bytes(&self) -> u64 {
        self.file_bytes.saturating_sub(self.tree_bytes)
    }
}

impl RedbStore {
    /// Open the database at `path`, creating the file (not its directory) if it is missing,
    /// with a page cache of [`DEFAULT_CACHE_BYTES`], or of `CLANK_STORE_CACHE_MB` MiB when
    /// that is set in the environment (a larger cache for a store much larger than 100,000
    /// deployments, a smaller one where memory is tight).
    ///
    /// Blocks: after a crash redb repairs the file here, which reads all of it, and a file
    /// with much free space (many pages freed by small durable commits, see
    /// [`RedbStore::compact`]) is compacted first. Fails with [`Error::StoreUnavailable`] if
    /// another process (or another `RedbStore` in this one) has the file open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with_cache(path, cache_bytes())
    }

    /// [`RedbStore::open`] with a page cache of at most `cache_bytes`.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: usize) -> Result<Self> {
        let path: Arc<Path> = Arc::from(path.as_ref());
        if !path.exists() {
            create_atomically(&path)?;
        }
        let mut db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(&path)
            .map_err(|e| backend_error(&path, "open", None, e))?;
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
        if worth_compacting(&db, &path)? {
            compact(&mut db, &path)?;
        }
        Ok(RedbStore {
            db: Arc::new(db),
            path,
        })
    }

    /// Where the file's bytes go. Blocks and reads every page of the B-trees: for
    /// benchmarks and diagnostics, not for a hot path.
    pub fn space(&self) -> Result<Space> {
        space(&self.db, &self.path)
    }

    /// Open the file at `path`, compact it (move live pages to the front and truncate the free
    /// ones), and close it; `Ok(true)` if the file shrank. What [`RedbStore::open`] does by
    /// itself when the free space is large; this does it whatever the amount.
    pub fn compact(path: impl AsRef<Path>) -> Result<bool> {
        let path = path.as_ref();
        let mut db = Database::builder()
            .set_cache_size(DEFAULT_CACHE_BYTES)
            .open(path)
            .map_err(|e| backend_error(path, "open for compaction", None, e))?;
        compact(&mut db, path)
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

/// The page cache [`RedbStore::open`] sets: `CLANK_STORE_CACHE_MB` if it is a number.
fn cache_bytes() -> usize {
    std::env::var(CACHE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(DEFAULT_CACHE_BYTES, |mb| mb.saturating_mul(1024 * 1024))
}

/// The environment variable overriding [`DEFAULT_CACHE_BYTES`], in MiB.
pub const CACHE_ENV: &str = "CLANK_STORE_CACHE_MB";

fn space(db: &Database, path: &Path) -> Result<Space> {
    let ctx = |e: redb::Error| backend_error(path, "space", None, e);
    let wtx = db.begin_write().map_err(|e| ctx(e.into()))?;
    let stats = wtx.stats().map_err(|e| ctx(e.into()))?;
    wtx.abort().map_err(|e| ctx(e.into()))?;
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::StoreUnavailable(format!("redb {}: size: {e}", path.display())))?
        .len();
    Ok(Space {
        file_bytes,
        stored_bytes: stats.stored_bytes(),
        metadata_bytes: stats.metadata_bytes(),
        fragmented_bytes: stats.fragmented_bytes(),
        leaf_pages: stats.leaf_pages(),
        branch_pages: stats.branch_pages(),
        tree_bytes: (stats.leaf_pages() + stats.branch_pages()) * stats.page_size() as u64,
    })
}

/// Whether the file at open has enough free space for [`compact`] to be worth its time.
fn worth_compacting(db: &Database, path: &Path) -> Result<bool> {
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| Error::StoreUnavailable(format!("redb {}: size: {e}", path.display())))?
        .len();
    // Small files are not worth reading through.
    if file_bytes < COMPACT_MIN_FREE {
        return Ok(false);
    }
    // Free pages only: a compacted file still has the unused ends of its pages (about half of
    // each leaf that keys were appended to), and compacting again would not give them back.
    let free = space(db, path)?.free_bytes();
    Ok(free >= COMPACT_MIN_FREE && free >= file_bytes / COMPACT_MIN_FREE_SHARE)
}

fn compact(db: &mut Database, path: &Path) -> Result<bool> {
    db.compact().map_err(|e| match e {
        redb::CompactionError::Storage(e) => backend_error(path, "compact", None, e),
        other => Error::StoreUnavailable(format!("redb {}: compact: {other}", path.display())),
    })
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
            Some(stored) => Some(decode_version(key, stored.value())?),
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
                value: value.into_owned(),
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
                        let value = value.into_owned();
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

#[cfg(test)]
mod tests {
    use clank_core::store::Condition;

    use super::*;
    use crate::encoding::{encode_deflate_v2, encode_legacy};

    /// A file as clank-store wrote it before the value format tag: every value `version ++
    /// payload`, the revision counter in the meta table.
    fn write_legacy_file(path: &Path, entries: &[(&str, u64, &[u8])], revision: u64) {
        write_file_with(path, entries, revision, encode_legacy);
    }

    /// A file whose values `encode` wrote, the revision counter in the meta table.
    fn write_file_with(
        path: &Path,
        entries: &[(&str, u64, &[u8])],
        revision: u64,
        encode: impl Fn(u64, &[u8]) -> Vec<u8>,
    ) {
        let db = Database::create(path).unwrap();
        let wtx = db.begin_write().unwrap();
        {
            let mut data = wtx.open_table(DATA).unwrap();
            for (key, version, value) in entries {
                data.insert(key.as_bytes(), encode(*version, value).as_slice())
                    .unwrap();
            }
            let mut meta = wtx.open_table(META).unwrap();
            meta.insert(REVISION_KEY, revision).unwrap();
        }
        wtx.commit().unwrap();
    }

    #[tokio::test]
    async fn a_store_written_before_the_format_tag_reads_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clank.redb");
        let record = br#"{"id":"01JSERVICE","slug":"api","name":"API","next_deployment_number":3}"#;
        let long: Vec<u8> = record.iter().copied().cycle().take(2000).collect();
        write_legacy_file(
            &path,
            &[
                ("rec/service/01JSERVICE", 5, record),
                ("rec/big/1", 6, &long),
                ("idx/service/env/e1/api/01JSERVICE", 5, b""),
                ("uniq/service/slug/e1:api", 5, b"01JSERVICE"),
            ],
            6,
        );

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.revision().await.unwrap(), 6);
        let rec = store.get("rec/service/01JSERVICE").await.unwrap().unwrap();
        assert_eq!((rec.version, rec.value.as_slice()), (5, &record[..]));
        let keys: Vec<String> = ["rec/big/1", "uniq/service/slug/e1:api", "rec/missing"]
            .map(str::to_owned)
            .to_vec();
        let many = store.get_many(&keys).await.unwrap();
        assert_eq!(many[0].as_ref().unwrap().value, long);
        assert_eq!(many[1].as_ref().unwrap().value, b"01JSERVICE");
        assert!(many[2].is_none());
        let idx = store.scan(Scan::prefix("idx/")).await.unwrap();
        assert_eq!((idx.len(), idx[0].version), (1, 5));

        // A condition on a legacy version holds, and the rewrite is in the new format.
        let rev = store
            .commit(
                Txn::new()
                    .when(Condition::Version("rec/big/1".into(), 6))
                    .put("rec/big/1", long.clone()),
            )
            .await
            .unwrap();
        assert_eq!(rev, 7);
        let stale = store
            .commit(
                Txn::new()
                    .when(Condition::Version("rec/service/01JSERVICE".into(), 4))
                    .put("rec/service/01JSERVICE", Vec::new()),
            )
            .await;
        assert!(
            matches!(stale, Err(Error::WriteConflict { .. })),
            "{stale:?}"
        );
        let big = store.get("rec/big/1").await.unwrap().unwrap();
        assert_eq!((big.version, &big.value), (7, &long));
        drop(store);

        // The raw bytes: the old entries untouched, the rewritten one tagged and compressed.
        let db = Database::create(&path).unwrap();
        let rtx = db.begin_read().unwrap();
        let data = rtx.open_table(DATA).unwrap();
        let old = data.get(&b"rec/service/01JSERVICE"[..]).unwrap().unwrap();
        assert_eq!(old.value(), encode_legacy(5, record).as_slice());
        let new = data.get(&b"rec/big/1"[..]).unwrap().unwrap();
        assert_eq!(new.value()[0], 0x03, "deflate with a dictionary");
        assert!(new.value().len() < 200, "{} bytes", new.value().len());
    }

    /// A file as clank-store wrote it from the format tag until the dictionary form: values of
    /// 128 bytes or more as plain deflate (`0x02`), the rest plain (`0x01`). It reads, its
    /// versions condition writes, and a rewrite takes the dictionary form beside the old ones.
    #[tokio::test]
    async fn a_store_written_with_plain_deflate_values_reads_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clank.redb");
        let record = br#"{"id":"01JSERVICE","slug":"api","name":"API","next_deployment_number":3,"settings":{"replicas":1,"health_check":{"path":"/health","interval_ms":2000}}}"#;
        let other: Vec<u8> = record.iter().rev().copied().collect();
        // The encoder of that version: `0x02` where deflate made it smaller, else `0x01`.
        let v2 = |version: u64, value: &[u8]| {
            encode_deflate_v2(version, value).unwrap_or_else(|| {
                let mut out = vec![0x01];
                let mut n = version;
                while n >= 0x80 {
                    out.push((n as u8) | 0x80);
                    n >>= 7;
                }
                out.push(n as u8);
                out.extend_from_slice(value);
                out
            })
        };
        assert_eq!(v2(5, record)[0], 0x02);
        assert_eq!(v2(300, b""), [0x01, 0xac, 0x02]);
        write_file_with(
            &path,
            &[
                ("rec/service/01JSERVICE", 300, record),
                ("rec/service/01JOTHER", 301, &other),
                ("idx/service/env/e1/api/01JSERVICE", 300, b""),
                ("uniq/service/slug/e1:api", 300, b"01JSERVICE"),
            ],
            301,
            v2,
        );

        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.revision().await.unwrap(), 301);
        let recs = store.scan(Scan::prefix("rec/service/")).await.unwrap();
        let got: Vec<(&str, u64, &[u8])> = recs
            .iter()
            .map(|e| (e.key.as_str(), e.version, e.value.as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                ("rec/service/01JOTHER", 301, &other[..]),
                ("rec/service/01JSERVICE", 300, &record[..]),
            ]
        );
        let idx = store.scan(Scan::prefix("idx/")).await.unwrap();
        assert_eq!((idx.len(), idx[0].version, idx[0].value.len()), (1, 300, 0));
        let uniq = store
            .get("uniq/service/slug/e1:api")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (uniq.version, uniq.value.as_slice()),
            (300, &b"01JSERVICE"[..])
        );

        let stale = store
            .commit(
                Txn::new()
                    .when(Condition::Version("rec/service/01JSERVICE".into(), 299))
                    .put("rec/service/01JSERVICE", Vec::new()),
            )
            .await;
        assert!(
            matches!(stale, Err(Error::WriteConflict { .. })),
            "{stale:?}"
        );
        let rev = store
            .commit(
                Txn::new()
                    .when(Condition::Version("rec/service/01JSERVICE".into(), 300))
                    .put("rec/service/01JSERVICE", record.to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(rev, 302);
        drop(store);

        {
            let db = Database::create(&path).unwrap();
            let rtx = db.begin_read().unwrap();
            let data = rtx.open_table(DATA).unwrap();
            let old = data.get(&b"rec/service/01JOTHER"[..]).unwrap().unwrap();
            assert_eq!(old.value()[0], 0x02, "untouched");
            let new = data.get(&b"rec/service/01JSERVICE"[..]).unwrap().unwrap();
            assert_eq!(new.value()[0], 0x03, "rewritten with the dictionary");
            assert!(new.value().len() < v2(300, record).len());
        }
        let store = RedbStore::open(&path).unwrap();
        let rec = store.get("rec/service/01JSERVICE").await.unwrap().unwrap();
        assert_eq!((rec.version, rec.value.as_slice()), (302, &record[..]));
    }

    #[tokio::test]
    async fn an_unknown_format_tag_is_a_corruption_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clank.redb");
        {
            let db = Database::create(&path).unwrap();
            let wtx = db.begin_write().unwrap();
            {
                let mut data = wtx.open_table(DATA).unwrap();
                data.insert(&b"rec/x/1"[..], &[0x09, 1, b'{', b'}'][..])
                    .unwrap();
            }
            wtx.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        let err = store.get("rec/x/1").await.unwrap_err();
        let Error::Corrupt { key, reason } = &err else {
            panic!("{err}")
        };
        assert_eq!(key, "rec/x/1");
        assert!(reason.contains("unknown format tag 0x09"), "{reason}");
        assert!(store.scan(Scan::prefix("rec/")).await.is_err());
    }

    #[tokio::test]
    async fn many_small_durable_commits_leave_free_pages_that_open_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clank.redb");
        let store = RedbStore::open(&path).unwrap();
        // Rewrite the same few records many times: every commit copies the pages it touches
        // and frees the old ones.
        let value = vec![b'x'; 3000];
        for i in 0..200u32 {
            let mut txn = Txn::new();
            for k in 0..50 {
                let mut v = value.clone();
                v.extend_from_slice(&i.to_be_bytes());
                v.extend_from_slice(&(k as u32).to_be_bytes());
                txn = txn.put(format!("rec/t/{k}"), v);
            }
            store.commit(txn).await.unwrap();
        }
        let before = store.space().unwrap();
        assert!(before.stored_bytes > 0);
        drop(store);
        RedbStore::compact(&path).unwrap();
        let store = RedbStore::open(&path).unwrap();
        let after = store.space().unwrap();
        assert!(
            after.file_bytes <= before.file_bytes,
            "{before:?} → {after:?}"
        );
        assert!(
            after.free_bytes() <= before.free_bytes(),
            "{before:?} → {after:?}"
        );
        assert_eq!(after.stored_bytes, before.stored_bytes);
        let e = store.get("rec/t/49").await.unwrap().unwrap();
        assert_eq!(&e.value[3000..], &[0, 0, 0, 199, 0, 0, 0, 49]);
    }
}
