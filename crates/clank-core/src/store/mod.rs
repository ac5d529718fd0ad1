//! Persistence: the `Store` trait every backend implements, and the typed catalog over it.
//!
//! A `Store` is a small ordered key-value store with per-key versions and atomic,
//! conditional transactions (the shape of etcd's API). Everything typed — records,
//! secondary indexes, uniqueness — lives once in [`catalog`], so a new backend only has
//! to get these few methods right, and one contract suite (`clank-testkit`) proves it.

pub mod catalog;
pub mod memory;

use std::fmt;

use crate::error::Result;

/// A store-wide, strictly increasing write counter. Every committed transaction gets the
/// next one, and every key it writes takes it as its version.
pub type Revision = u64;

/// One key with its value and the revision that last wrote it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub version: Revision,
}

impl fmt::Debug for Entry {
    // Values may hold sealed secrets; keep them out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .field("version", &self.version)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// A precondition checked atomically at commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key must not exist.
    Absent(String),
    /// The key must exist with exactly this version.
    Version(String, Revision),
}

impl Condition {
    pub fn key(&self) -> &str {
        match self {
            Condition::Absent(k) | Condition::Version(k, _) => k,
        }
    }

    /// Does the current version of the key (None = absent) satisfy this condition?
    pub fn holds(&self, current: Option<Revision>) -> bool {
        match self {
            Condition::Absent(_) => current.is_none(),
            Condition::Version(_, v) => current == Some(*v),
        }
    }
}

/// A write inside a transaction.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "Put({key}, {} bytes)", value.len()),
            Op::Delete { key } => write!(f, "Delete({key})"),
        }
    }
}

/// Conditions and writes applied all-or-nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Txn::default()
    }

    pub fn when(mut self, c: Condition) -> Self {
        self.conditions.push(c);
        self
    }

    pub fn put(mut self, key: impl Into<String>, value: Vec<u8>) -> Self {
        self.ops.push(Op::Put {
            key: key.into(),
            value,
        });
        self
    }

    pub fn delete(mut self, key: impl Into<String>) -> Self {
        self.ops.push(Op::Delete { key: key.into() });
        self
    }
}

/// A range read over keys sharing a prefix, in key order (or reverse), with a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub prefix: String,
    /// Resume after this key (exclusive, in the scan's direction). Must start with `prefix`.
    pub after: Option<String>,
    pub limit: usize,
    pub reverse: bool,
}

impl Scan {
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Scan {
            prefix: prefix.into(),
            after: None,
            limit: usize::MAX,
            reverse: false,
        }
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn reverse(mut self) -> Self {
        self.reverse = true;
        self
    }

    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.after = Some(key.into());
        self
    }
}

/// Persistence backend contract. Implementations: [`memory::MemoryStore`] here, redb
/// (the embedded default) and sled in `clank-store`.
///
/// Contract (checked by `clank_testkit::store_contract_tests!` for every implementation):
/// - `commit` applies all ops or none; if any condition fails it returns
///   [`crate::Error::WriteConflict`] naming the first failing key and changes nothing.
/// - Each successful commit returns a revision greater than every earlier one, and every
///   key it put carries that revision as its version.
/// - When `commit` returns `Ok`, the write is durable: a crash right after loses nothing.
/// - A transaction that puts and deletes the same key applies ops in order.
/// - Every successful commit takes a revision, even one with no ops (conditions only).
/// - A scan's `after` cursor outside the prefix is clamped to the prefix range.
/// - `get_many` answers for each key what `get` would, in the order asked.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    async fn get(&self, key: &str) -> Result<Option<Entry>>;
    /// Several keys at once, each answer in the order asked. Not one snapshot unless the
    /// implementation says so (redb's is one read transaction); by default one `get` each.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }
    async fn scan(&self, scan: Scan) -> Result<Vec<Entry>>;
    async fn commit(&self, txn: Txn) -> Result<Revision>;
    /// The revision of the last committed transaction (0 for an empty store).
    async fn revision(&self) -> Result<Revision>;
}

/// The smallest key strictly greater than every key starting with `prefix`, or `None` when no
/// such key exists (prefix made only of 0xFF bytes cannot happen with UTF-8, but be total).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
