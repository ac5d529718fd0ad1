//! Group commit: concurrent read–modify–writes of one table's records, batched into one
//! store transaction.
//!
//! A fleet-wide change edits every server's record at once; written one by one that is one
//! serialised, fsync'd store transaction per server. Here every edit is queued to one writer
//! task, which takes whatever is queued, reads those records in one read, applies the edits
//! and commits them in one transaction. There is no waiting window: a lone edit is committed
//! at once, and edits that arrive while a commit runs form the next one. A group holds at most
//! [`MAX_RECORDS`] edits and about [`MAX_BYTES`] of payload, so one transaction stays bounded.
//!
//! Each caller gets its own answer: an edit that fails (or whose record is missing) fails
//! alone and is left out; a commit that fails fails every edit of that group, and the next
//! group is tried afresh. A lost race with a writer outside the group (`WriteConflict`) reads
//! the group's records again and reapplies its edits, as [`Catalog::modify`] does.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use clank_core::error::{Error, Result};
use clank_core::store::Store;
use clank_core::store::catalog::{Batch, Catalog, Record, Versioned};
use tokio::sync::{mpsc, oneshot};

/// The most edits one transaction holds.
pub(crate) const MAX_RECORDS: usize = 1000;
/// About the most payload one transaction holds (the sum of the edits' declared sizes; one
/// larger edit still goes, alone).
pub(crate) const MAX_BYTES: usize = 8 << 20;

type Edit<T> = Box<dyn FnMut(&mut T) -> Result<()> + Send>;

struct Request<T> {
    id: String,
    /// About how many bytes the edit adds to the transaction.
    weight: usize,
    edit: Edit<T>,
    done: oneshot::Sender<Result<T>>,
}

/// The writer of one table's records (`T`). Cheap to clone; the writer task ends when the
/// last clone is dropped.
pub(crate) struct GroupCommit<T> {
    tx: mpsc::UnboundedSender<Request<T>>,
}

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        GroupCommit {
            tx: self.tx.clone(),
        }
    }
}

impl<T> std::fmt::Debug for GroupCommit<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("table", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: Record + Clone + PartialEq + 'static> GroupCommit<T> {
    /// Start the writer task (on the current Tokio runtime). It holds the store only while it
    /// writes a group: a store whose owners are all gone is closed (its file unlocked for the
    /// next open) without waiting for this task to notice.
    pub(crate) fn start(catalog: &Catalog) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::downgrade(catalog.store()), rx));
        GroupCommit { tx }
    }

    /// Read record `id`, apply `edit`, write it (with the edits queued alongside it) and
    /// return it as stored, like [`Catalog::modify`]: no write when `edit` changes nothing,
    /// `edit` again on a fresh read when another writer won a race. `weight` is about how
    /// many bytes the edit adds (what bounds a group's size).
    ///
    /// The edit is queued when this is called, not when the future is first polled, so
    /// edits are written in the order of the calls.
    pub(crate) fn modify(
        &self,
        id: String,
        weight: usize,
        edit: impl FnMut(&mut T) -> Result<()> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let queued = self
            .tx
            .send(Request {
                id,
                weight,
                edit: Box::new(edit),
                done,
            })
            .is_ok();
        async move {
            if !queued {
                return Err(stopped());
            }
            answer.await.map_err(|_| stopped())?
        }
    }
}

fn stopped() -> Error {
    Error::StoreUnavailable("the fleet's record writer stopped".into())
}

async fn run<T: Record + Clone + PartialEq + 'static>(
    store: Weak<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Request<T>>,
) {
    let mut carried: Option<Request<T>> = None;
    loop {
        let first = match carried.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        // Everything queued meanwhile, up to the bounds; nothing is waited for.
        let mut bytes = first.weight;
        let mut group = vec![first];
        while group.len() < MAX_RECORDS {
            match rx.try_recv() {
                Ok(r) if bytes.saturating_add(r.weight) > MAX_BYTES => {
                    carried = Some(r);
                    break;
                }
                Ok(r) => {
                    bytes = bytes.saturating_add(r.weight);
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        match store.upgrade() {
            Some(store) => commit_group(&Catalog::new(store), group).await,
            None => {
                for r in group {
                    let _ = r.done.send(Err(stopped()));
                }
            }
        }
    }
}

/// One edit's outcome within a group, before the commit.
enum Outcome {
    /// Applied to the record; answered once the group is committed.
    Applied,
    Failed(Error),
}

async fn commit_group<T: Record + Clone + PartialEq>(
    catalog: &Catalog,
    mut group: Vec<Request<T>>,
) {
    let mut ids: Vec<String> = Vec::with_capacity(group.len());
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(group.len());
    for r in &group {
        if !seen.contains_key(r.id.as_str()) {
            seen.insert(&r.id, ids.len());
            ids.push(r.id.clone());
        }
    }
    let slot_of: Vec<usize> = group.iter().map(|r| seen[r.id.as_str()]).collect();
    drop(seen);
    loop {
        let read = match catalog.get_many::<T>(&ids).await {
            Ok(read) => read,
            Err(e) => {
                for r in group {
                    let _ = r.done.send(Err(duplicate(&e)));
                }
                return;
            }
        };
        // Each record as read and as edited so far; edits of one record apply in order.
        let mut records: Vec<Option<(Versioned<T>, T)>> = read
            .into_iter()
            .map(|v| v.map(|v| (v.clone(), v.value)))
            .collect();
        let mut outcomes = Vec::with_capacity(group.len());
        for (r, &slot) in group.iter_mut().zip(&slot_of) {
            let Some((_, current)) = records[slot].as_mut() else {
                outcomes.push(Outcome::Failed(Error::not_found(T::TABLE, &r.id)));
                continue;
            };
            let mut next = current.clone();
            match std::panic::catch_unwind(AssertUnwindSafe(|| (r.edit)(&mut next))) {
                Ok(Ok(())) => {
                    *current = next;
                    outcomes.push(Outcome::Applied);
                }
                Ok(Err(e)) => outcomes.push(Outcome::Failed(e)),
                Err(_) => outcomes.push(Outcome::Failed(Error::Internal(format!(
                    "an edit of {} `{}` panicked",
                    T::TABLE,
                    r.id
                )))),
            }
        }
        let mut batch = Batch::new();
        let mut refused: HashMap<usize, Error> = HashMap::new();
        for (slot, record) in records.iter().enumerate() {
            if let Some((old, new)) = record
                && *new != old.value
                && let Err(e) = batch.update(old, new)
            {
                refused.insert(slot, e);
            }
        }
        let committed = if batch.is_empty() {
            Ok(0)
        } else {
            catalog.commit(batch).await
        };
        match committed {
            Err(Error::WriteConflict { .. }) => continue,
            Err(e) => {
                for (r, outcome) in group.into_iter().zip(outcomes) {
                    let answer = match outcome {
                        Outcome::Failed(own) => own,
                        Outcome::Applied => duplicate(&e),
                    };
                    let _ = r.done.send(Err(answer));
                }
            }
            Ok(_) => {
                for ((r, outcome), slot) in group.into_iter().zip(outcomes).zip(slot_of) {
                    let answer = match (outcome, refused.get(&slot), &records[slot]) {
                        (Outcome::Failed(own), _, _) => Err(own),
                        (Outcome::Applied, Some(e), _) => Err(duplicate(e)),
                        (Outcome::Applied, None, Some((_, stored))) => Ok(stored.clone()),
                        (Outcome::Applied, None, None) => {
                            Err(Error::Internal("a group-commit record vanished".into()))
                        }
                    };
                    let _ = r.done.send(answer);
                }
            }
        }
        return;
    }
}

/// The same error for another waiter of a failed group (`Error` is not `Clone`).
fn duplicate(e: &Error) -> Error {
    match e {
        Error::Invalid(i) => Error::Invalid(i.clone()),
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::WriteConflict { key } => Error::WriteConflict { key: key.clone() },
        Error::Secret(m) => Error::Secret(m.clone()),
        Error::StoreUnavailable(m) => Error::StoreUnavailable(m.clone()),
        Error::Corrupt { key, reason } => Error::Corrupt {
            key: key.clone(),
            reason: reason.clone(),
        },
        Error::Runtime { failure, message } => Error::Runtime {
            failure: *failure,
            message: message.clone(),
        },
        Error::Timeout(m) => Error::Timeout(m.clone()),
        Error::Internal(m) => Error::Internal(m.clone()),
        other => Error::Reported {
            kind: other.kind(),
            message: other.to_string(),
            field: other.field().map(str::to_owned),
        },
    }
}

/// A store that counts its commits, can hold them at a gate and can fail chosen ones.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use clank_core::error::{Error, Result};
    use clank_core::store::catalog::Catalog;
    use clank_core::store::memory::MemoryStore;
    use clank_core::store::{Condition, Entry, Revision, Scan, Store, Txn};
    use tokio::sync::{Semaphore, watch};

    #[derive(Debug)]
    pub(crate) struct TestStore {
        inner: Arc<MemoryStore>,
        gated: AtomicBool,
        gate: Semaphore,
        /// How many commits have started.
        pub(crate) entered: watch::Sender<usize>,
        /// Commits (numbered from 1) that fail.
        pub(crate) fail: Mutex<HashSet<usize>>,
        /// The records each commit updated (its version conditions), in order.
        pub(crate) sizes: Mutex<Vec<usize>>,
    }

    impl TestStore {
        pub(crate) fn new() -> Self {
            TestStore {
                inner: Arc::new(MemoryStore::new()),
                gated: AtomicBool::new(false),
                gate: Semaphore::new(0),
                entered: watch::Sender::new(0),
                fail: Mutex::new(HashSet::new()),
                sizes: Mutex::new(Vec::new()),
            }
        }

        /// The same data, written without the gate or the counts.
        pub(crate) fn bypass(&self) -> Catalog {
            Catalog::new(self.inner.clone())
        }

        /// Hold every commit from now on until [`TestStore::open`] lets it through.
        pub(crate) fn close_gate(&self) {
            self.gated.store(true, Ordering::SeqCst);
        }

        /// Let `n` held commits through.
        pub(crate) fn open(&self, n: usize) {
            self.gate.add_permits(n);
        }

        pub(crate) async fn wait_entered(&self, n: usize) {
            let mut rx = self.entered.subscribe();
            let wait = rx.wait_for(|e| *e >= n);
            tokio::time::timeout(std::time::Duration::from_secs(10), wait)
                .await
                .expect("the commit started")
                .unwrap();
        }

        pub(crate) fn sizes(&self) -> Vec<usize> {
            self.sizes.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Store for TestStore {
        async fn get(&self, key: &str) -> Result<Option<Entry>> {
            self.inner.get(key).await
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
            self.inner.get_many(keys).await
        }
        async fn scan(&self, scan: Scan) -> Result<Vec<Entry>> {
            self.inner.scan(scan).await
        }
        async fn commit(&self, txn: Txn) -> Result<Revision> {
            let records = txn
                .conditions
                .iter()
                .filter(|c| matches!(c, Condition::Version(..)))
                .count();
            self.sizes.lock().unwrap().push(records);
            let mut n = 0;
            self.entered.send_modify(|e| {
                *e += 1;
                n = *e;
            });
            if self.gated.load(Ordering::SeqCst) {
                self.gate.acquire().await.unwrap().forget();
            }
            if self.fail.lock().unwrap().contains(&n) {
                return Err(Error::StoreUnavailable(format!(
                    "injected failure of commit {n}"
                )));
            }
            self.inner.commit(txn).await
        }
        async fn revision(&self) -> Result<Revision> {
            self.inner.revision().await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use clank_core::Timestamp;
    use clank_core::id::{ServerId, WorkspaceId};
    use clank_core::model::{Server, ServerKind, ServerStatus};

    use super::testing::TestStore;
    use super::*;

    async fn servers(catalog: &Catalog, n: usize) -> Vec<String> {
        let ws = WorkspaceId::new();
        let mut ids = Vec::new();
        for i in 0..n {
            let s = Server {
                id: ServerId::new(),
                workspace_id: ws,
                name: format!("s{i}"),
                kind: ServerKind::Agent {
                    identity: None,
                    agent_version: None,
                },
                status: ServerStatus::Disconnected,
                last_heartbeat: None,
                usage: None,
                created_at: Timestamp::now(),
            };
            catalog.create(&s).await.unwrap();
            ids.push(s.id.to_string());
        }
        ids
    }

    fn connect(s: &mut Server) -> Result<()> {
        s.status = ServerStatus::Connected;
        Ok(())
    }

    async fn status(catalog: &Catalog, id: &str) -> ServerStatus {
        catalog.require::<Server>(id).await.unwrap().value.status
    }

    fn setup() -> (Arc<TestStore>, Catalog) {
        let store = Arc::new(TestStore::new());
        (store.clone(), Catalog::new(store))
    }

    /// No batching window: a lone edit is committed, alone, without any time passing (the
    /// clock is paused and would jump over any sleep).
    #[tokio::test(start_paused = true)]
    async fn a_lone_edit_is_committed_at_once() {
        let (store, catalog) = setup();
        let ids = servers(&catalog, 1).await;
        let writer = GroupCommit::<Server>::start(&catalog);
        let before = store.sizes().len();
        let t0 = tokio::time::Instant::now();
        let stored = writer.modify(ids[0].clone(), 10, connect).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(stored.status, ServerStatus::Connected);
        assert_eq!(store.sizes()[before..], [1]);
        assert_eq!(status(&catalog, &ids[0]).await, ServerStatus::Connected);
        // Nothing changed: nothing written.
        writer.modify(ids[0].clone(), 10, connect).await.unwrap();
        assert_eq!(store.sizes().len(), before + 1);
    }

    /// Edits queued while a commit runs share the next one; when it fails, each of them gets
    /// the error, nothing of it is written, and later edits are written as usual.
    #[tokio::test]
    async fn a_failed_group_commit_fails_each_of_its_edits_and_not_the_next_ones() {
        let (store, catalog) = setup();
        let ids = servers(&catalog, 7).await;
        let writer = GroupCommit::<Server>::start(&catalog);
        let base = *store.entered.borrow();
        store.close_gate();
        store.fail.lock().unwrap().insert(base + 2);
        let first = tokio::spawn(writer.modify(ids[0].clone(), 10, connect));
        store.wait_entered(base + 1).await;
        // Queued while the first commit is held: one group.
        let group: Vec<_> = ids[1..6]
            .iter()
            .map(|id| tokio::spawn(writer.modify(id.clone(), 10, connect)))
            .collect();
        store.open(1);
        first.await.unwrap().unwrap();
        store.wait_entered(base + 2).await;
        // Queued while the failing commit is held: the next group.
        let later = [
            tokio::spawn(writer.modify(ids[6].clone(), 10, connect)),
            tokio::spawn(writer.modify(ids[1].clone(), 10, connect)),
        ];
        store.open(2);
        for g in group {
            let err = g.await.unwrap().unwrap_err();
            assert!(
                matches!(&err, Error::StoreUnavailable(m) if m.contains("injected")),
                "{err}"
            );
        }
        for l in later {
            l.await.unwrap().unwrap();
        }
        assert_eq!(store.sizes()[base..], [1, 5, 2]);
        for (i, id) in ids.iter().enumerate() {
            let expected = match i {
                0 | 1 | 6 => ServerStatus::Connected,
                _ => ServerStatus::Disconnected,
            };
            assert_eq!(status(&catalog, id).await, expected, "server {i}");
        }
    }

    /// An edit that fails, or whose record is missing, fails alone; the rest of its group
    /// is written, and two edits of one record in one group apply in order.
    #[tokio::test]
    async fn an_edit_that_fails_fails_alone_and_edits_of_one_record_apply_in_order() {
        let (store, catalog) = setup();
        let ids = servers(&catalog, 3).await;
        let writer = GroupCommit::<Server>::start(&catalog);
        let base = *store.entered.borrow();
        store.close_gate();
        let first = writer.modify(ids[0].clone(), 10, connect);
        store.wait_entered(base + 1).await;
        let refused = writer.modify(ids[1].clone(), 10, |_| Err(Error::Conflict("no".into())));
        let missing = writer.modify(ServerId::new().to_string(), 10, connect);
        let a = writer.modify(ids[2].clone(), 10, |s| {
            s.name = "renamed".into();
            Ok(())
        });
        let b = writer.modify(ids[2].clone(), 10, |s| {
            assert_eq!(s.name, "renamed", "sees the edit queued before it");
            s.status = ServerStatus::Connected;
            Ok(())
        });
        store.open(10);
        first.await.unwrap();
        assert!(matches!(refused.await, Err(Error::Conflict(_))));
        assert!(matches!(missing.await, Err(Error::NotFound { .. })));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!(a, b, "both see the record as stored");
        assert_eq!(store.sizes()[base..], [1, 1]);
        let stored = catalog.require::<Server>(&ids[2]).await.unwrap().value;
        assert_eq!(
            (stored.name.as_str(), stored.status),
            ("renamed", ServerStatus::Connected)
        );
        assert_eq!(status(&catalog, &ids[1]).await, ServerStatus::Disconnected);
    }

    /// One transaction never holds more than `MAX_RECORDS` edits; a lost race with an outside
    /// writer is retried on a fresh read.
    #[tokio::test]
    async fn groups_are_bounded_and_a_lost_race_is_retried() {
        let (store, catalog) = setup();
        let n = MAX_RECORDS + 200;
        let ids = servers(&catalog, n + 1).await;
        let writer = GroupCommit::<Server>::start(&catalog);
        let base = *store.entered.borrow();
        store.close_gate();
        let first = writer.modify(ids[n].clone(), 10, connect);
        store.wait_entered(base + 1).await;
        let rest: Vec<_> = ids[..n]
            .iter()
            .map(|id| writer.modify(id.clone(), 10, connect))
            .collect();
        store.open(1);
        first.await.unwrap();
        store.wait_entered(base + 2).await;
        // An outside write to a record of the held group: its commit conflicts, and the
        // group is read and written again.
        store
            .bypass()
            .modify::<Server>(&ids[0], |s| {
                s.name = "outside".into();
                Ok(())
            })
            .await
            .unwrap();
        store.open(10);
        for r in rest {
            r.await.unwrap();
        }
        assert_eq!(store.sizes()[base..], [1, MAX_RECORDS, MAX_RECORDS, 200]);
        for id in &ids {
            assert_eq!(status(&catalog, id).await, ServerStatus::Connected);
        }
        let outside = catalog.require::<Server>(&ids[0]).await.unwrap().value;
        assert_eq!(outside.name, "outside", "the retry kept the outside write");
    }
}
