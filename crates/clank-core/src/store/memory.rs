//! An in-memory `Store`: for tests, examples and ephemeral platforms. Nothing survives a drop.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use super::{Entry, Op, Revision, Scan, Store, Txn};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    revision: Revision,
    data: BTreeMap<String, (Vec<u8>, Revision)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied transaction (ops are
        // applied after every check), so a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        Ok(self.lock().data.get(key).map(|(v, rev)| Entry {
            key: key.to_owned(),
            value: v.clone(),
            version: *rev,
        }))
    }

    async fn scan(&self, scan: Scan) -> Result<Vec<Entry>> {
        let inner = self.lock();
        let lower = match (&scan.after, scan.reverse) {
            // A cursor before the prefix is clamped to it, like the persistent stores do.
            (Some(after), false) if *after >= scan.prefix => Bound::Excluded(after.clone()),
            _ => Bound::Included(scan.prefix.clone()),
        };
        let upper = match (&scan.after, scan.reverse) {
            (Some(after), true) => Bound::Excluded(after.clone()),
            _ => super::prefix_end(&scan.prefix)
                .and_then(|end| String::from_utf8(end).ok())
                .map_or(Bound::Unbounded, Bound::Excluded),
        };
        let in_prefix = |(k, _): &(&String, &(Vec<u8>, Revision))| k.starts_with(&scan.prefix);
        let to_entry = |(k, (v, rev)): (&String, &(Vec<u8>, Revision))| Entry {
            key: k.clone(),
            value: v.clone(),
            version: *rev,
        };
        let range = inner.data.range::<String, _>((lower, upper));
        let out = if scan.reverse {
            range
                .rev()
                .skip_while(|kv| !in_prefix(kv) && kv.0.as_str() > scan.prefix.as_str())
                .take_while(in_prefix)
                .take(scan.limit)
                .map(to_entry)
                .collect()
        } else {
            range
                .take_while(in_prefix)
                .take(scan.limit)
                .map(to_entry)
                .collect()
        };
        Ok(out)
    }

    async fn commit(&self, txn: Txn) -> Result<Revision> {
        let mut inner = self.lock();
        for c in &txn.conditions {
            let current = inner.data.get(c.key()).map(|(_, rev)| *rev);
            if !c.holds(current) {
                return Err(Error::WriteConflict {
                    key: c.key().to_owned(),
                });
            }
        }
        inner.revision += 1;
        let rev = inner.revision;
        for op in txn.ops {
            match op {
                Op::Put { key, value } => {
                    inner.data.insert(key, (value, rev));
                }
                Op::Delete { key } => {
                    inner.data.remove(&key);
                }
            }
        }
        Ok(rev)
    }

    async fn revision(&self) -> Result<Revision> {
        Ok(self.lock().revision)
    }
}
