//! The `Store` contract: every property a backend must have, as one public async fn each.
//!
//! Each property gets a fresh, empty store (in an `Arc`, so it can be shared with spawned
//! tasks) and panics with a message naming what broke. [`crate::store_contract_tests!`]
//! instantiates all of them as `#[test]`s named after the property, for one backend:
//!
//! ```no_run
//! use clank_core::store::memory::MemoryStore;
//! use clank_store::RedbStore;
//!
//! clank_testkit::store_contract_tests!(memory, || (MemoryStore::new(), ()));
//! clank_testkit::store_contract_tests!(redb, || {
//!     let dir = tempfile::tempdir().unwrap();
//!     (RedbStore::open(dir.path().join("db.redb")).unwrap(), dir)
//! });
//! # fn main() {}
//! ```
//!
//! The constructor returns `(store, guard)`; the guard (a temp dir, say) is dropped after the
//! store, when the property finishes.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use clank_core::store::{Condition, Entry, Revision, Scan, Store, Txn};
use clank_core::{Error, Result};

/// Instantiate every store-contract property as a `#[test]` in a new module `$module`, each
/// running on a fresh `(store, guard)` from `$make` (a closure or fn path).
#[macro_export]
macro_rules! store_contract_tests {
    ($module:ident, $make:expr $(,)?) => {
        $crate::store_contract_tests!(@expand $module, $make;
            get_of_missing_key_is_none,
            put_then_get_returns_value_at_commit_revision,
            revisions_strictly_increase,
            revision_matches_last_commit,
            absent_condition_on_existing_key_fails_and_changes_nothing,
            stale_version_condition_fails_naming_the_key,
            delete_removes_the_key,
            ops_in_one_txn_apply_in_order,
            scan_respects_prefix_boundaries,
            scan_orders_keys_reverses_and_limits,
            scan_after_cursor_pages_forward_through_every_key_once,
            scan_after_cursor_pages_backward_through_every_key_once,
            concurrent_cas_has_exactly_one_winner_per_version,
            empty_value_is_allowed,
            unicode_keys_round_trip_and_scan,
            large_value_round_trips,
            get_many_answers_each_key_in_order,
        );
    };
    (@expand $module:ident, $make:expr; $($property:ident),+ $(,)?) => {
        mod $module {
            // The constructor expression is written in the caller's module.
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $property() {
                    $crate::store::run_property($make, $crate::store::$property);
                }
            )+
        }
    };
}

/// Run one property on a fresh fixture from `make`, inside a multi-threaded runtime (so the
/// concurrency property really runs committers in parallel). The guard is dropped last.
pub fn run_property<S, G, Fut>(make: impl FnOnce() -> (S, G), property: impl FnOnce(Arc<S>) -> Fut)
where
    S: Store + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot build a tokio runtime for a store property: {e}"));
    runtime.block_on(async move {
        // Built inside the runtime, for constructors that need one.
        let (store, guard) = make();
        property(Arc::new(store)).await;
        drop(guard);
    });
}

// ---- helpers -------------------------------------------------------------------------------

async fn commit<S: Store + ?Sized>(store: &S, txn: Txn) -> Revision {
    let what = format!("{txn:?}");
    store
        .commit(txn)
        .await
        .unwrap_or_else(|e| panic!("commit {what} failed: {e}"))
}

async fn put<S: Store + ?Sized>(store: &S, key: &str, value: &[u8]) -> Revision {
    commit(store, Txn::new().put(key, value.to_vec())).await
}

async fn get<S: Store + ?Sized>(store: &S, key: &str) -> Option<Entry> {
    store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get `{key}` failed: {e}"))
}

async fn revision<S: Store + ?Sized>(store: &S) -> Revision {
    store
        .revision()
        .await
        .unwrap_or_else(|e| panic!("revision() failed: {e}"))
}

async fn scan<S: Store + ?Sized>(store: &S, scan: Scan) -> Vec<Entry> {
    let what = format!("{scan:?}");
    store
        .scan(scan)
        .await
        .unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

async fn scan_keys<S: Store + ?Sized>(store: &S, s: Scan) -> Vec<String> {
    scan(store, s).await.into_iter().map(|e| e.key).collect()
}

fn entry(key: &str, value: &[u8], version: Revision) -> Entry {
    Entry {
        key: key.to_owned(),
        value: value.to_vec(),
        version,
    }
}

#[track_caller]
fn assert_write_conflict(result: Result<Revision>, key: &str) {
    match result {
        Err(Error::WriteConflict { key: k }) if k == key => {}
        other => panic!("expected WriteConflict on `{key}`, got {other:?}"),
    }
}

fn strings(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

// ---- properties ----------------------------------------------------------------------------

/// A key never written, or only a prefix/extension of a written key, reads as `None`.
pub async fn get_of_missing_key_is_none<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    assert_eq!(get(s, "missing").await, None, "empty store");
    put(s, "present", b"x").await;
    assert_eq!(get(s, "missing").await, None);
    assert_eq!(
        get(s, "presen").await,
        None,
        "a prefix of a key is not that key"
    );
    assert_eq!(
        get(s, "present/").await,
        None,
        "an extension of a key is not that key"
    );
}

/// `get_many` answers what `get` answers for each key, in the order asked, repeats and
/// missing keys included; no keys, no answers.
pub async fn get_many_answers_each_key_in_order<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    assert_eq!(s.get_many(&[]).await.unwrap(), Vec::new(), "no keys");
    let r1 = put(s, "a", b"one").await;
    let r2 = put(s, "b", b"two").await;
    let keys: Vec<String> = ["b", "missing", "a", "b", "a/"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(
        s.get_many(&keys).await.unwrap(),
        vec![
            Some(entry("b", b"two", r2)),
            None,
            Some(entry("a", b"one", r1)),
            Some(entry("b", b"two", r2)),
            None,
        ]
    );
}

/// A put is read back with its value, and every key a transaction puts carries the revision
/// that commit returned as its version; keys it does not touch keep theirs.
pub async fn put_then_get_returns_value_at_commit_revision<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let r1 = put(s, "a", b"one").await;
    assert_eq!(get(s, "a").await, Some(entry("a", b"one", r1)));

    let r2 = put(s, "a", b"two").await;
    assert_eq!(get(s, "a").await, Some(entry("a", b"two", r2)), "overwrite");

    let r3 = commit(
        s,
        Txn::new()
            .put("b", b"bee".to_vec())
            .put("c", b"sea".to_vec()),
    )
    .await;
    assert_eq!(get(s, "b").await, Some(entry("b", b"bee", r3)));
    assert_eq!(get(s, "c").await, Some(entry("c", b"sea", r3)));
    assert_eq!(
        get(s, "a").await,
        Some(entry("a", b"two", r2)),
        "untouched key keeps its version"
    );
}

/// Every successful commit, whatever it contains, returns a revision above all earlier ones.
pub async fn revisions_strictly_increase<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let mut last = revision(s).await;
    for i in 0..12 {
        let key = format!("k{}", i % 3);
        let txn = match i % 4 {
            0 => Txn::new().put(&key, vec![i]),
            1 => Txn::new().delete(&key),
            2 => Txn::new().when(Condition::Absent(format!("never-{i}"))),
            _ => Txn::new(),
        };
        let rev = commit(s, txn).await;
        assert!(rev > last, "commit #{i} returned {rev}, not above {last}");
        last = rev;
    }
}

/// `revision()` is 0 on an empty store, then the revision of the last successful commit; a
/// failed commit does not move it.
pub async fn revision_matches_last_commit<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    assert_eq!(revision(s).await, 0, "empty store");
    let r1 = put(s, "a", b"1").await;
    assert_eq!(revision(s).await, r1);
    let r2 = commit(s, Txn::new().put("b", b"2".to_vec()).delete("a")).await;
    assert_eq!(revision(s).await, r2);
    let failed = s
        .commit(
            Txn::new()
                .when(Condition::Absent("b".into()))
                .put("c", vec![]),
        )
        .await;
    assert_write_conflict(failed, "b");
    assert_eq!(
        revision(s).await,
        r2,
        "a failed commit must not consume a revision"
    );
}

/// An `Absent` condition on an existing key fails with `WriteConflict` naming it, and none of
/// the transaction's ops (before or after it in the list) take effect.
pub async fn absent_condition_on_existing_key_fails_and_changes_nothing<S: Store + 'static>(
    store: Arc<S>,
) {
    let s = &*store;
    let ra = put(s, "a", b"old").await;
    let rc = put(s, "c", b"keep").await;
    let before = revision(s).await;

    let result = s
        .commit(
            Txn::new()
                .put("b", b"new".to_vec())
                .when(Condition::Absent("a".into()))
                .delete("c")
                .put("a", b"new".to_vec()),
        )
        .await;
    assert_write_conflict(result, "a");
    assert_eq!(get(s, "a").await, Some(entry("a", b"old", ra)));
    assert_eq!(get(s, "b").await, None, "put in a failed txn must not land");
    assert_eq!(
        get(s, "c").await,
        Some(entry("c", b"keep", rc)),
        "delete must not land"
    );
    assert_eq!(revision(s).await, before);

    // On a missing key the same condition holds.
    let rb = commit(
        s,
        Txn::new()
            .when(Condition::Absent("b".into()))
            .put("b", b"new".to_vec()),
    )
    .await;
    assert_eq!(get(s, "b").await, Some(entry("b", b"new", rb)));
}

/// A `Version` condition holds only for the key's current version: a stale (or missing-key)
/// version fails with `WriteConflict` naming the first failing key, and nothing changes.
pub async fn stale_version_condition_fails_naming_the_key<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let r1 = put(s, "k", b"v1").await;
    let r2 = put(s, "k", b"v2").await;

    let stale = s
        .commit(
            Txn::new()
                .when(Condition::Version("k".into(), r1))
                .put("k", b"v3".to_vec()),
        )
        .await;
    assert_write_conflict(stale, "k");
    assert_eq!(get(s, "k").await, Some(entry("k", b"v2", r2)));

    // The first failing condition is the one named; one that holds before it is skipped.
    let first_failing = s
        .commit(
            Txn::new()
                .when(Condition::Version("k".into(), r2))
                .when(Condition::Version("ghost".into(), r2))
                .when(Condition::Absent("k".into()))
                .put("k", b"v3".to_vec()),
        )
        .await;
    assert_write_conflict(first_failing, "ghost");
    assert_eq!(get(s, "k").await, Some(entry("k", b"v2", r2)));

    // The current version holds.
    let r3 = commit(
        s,
        Txn::new()
            .when(Condition::Version("k".into(), r2))
            .put("k", b"v3".to_vec()),
    )
    .await;
    assert_eq!(get(s, "k").await, Some(entry("k", b"v3", r3)));
}

/// A delete removes the key from gets and scans, leaves other keys alone, and deleting a
/// missing key is a successful no-op.
pub async fn delete_removes_the_key<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    put(s, "d/a", b"1").await;
    let rb = put(s, "d/b", b"2").await;
    let rdel = commit(s, Txn::new().delete("d/a")).await;
    assert!(rdel > rb);
    assert_eq!(get(s, "d/a").await, None);
    assert_eq!(get(s, "d/b").await, Some(entry("d/b", b"2", rb)));
    assert_eq!(scan_keys(s, Scan::prefix("d/")).await, strings(&["d/b"]));

    let rmissing = commit(s, Txn::new().delete("d/never")).await;
    assert!(rmissing > rdel);
    assert_eq!(get(s, "d/never").await, None);

    // A deleted key can be written again, with a fresh version.
    let ragain = put(s, "d/a", b"again").await;
    assert_eq!(get(s, "d/a").await, Some(entry("d/a", b"again", ragain)));
}

/// Ops of one transaction apply in list order, so put-then-delete of a key leaves it absent
/// and delete-then-put leaves it present.
pub async fn ops_in_one_txn_apply_in_order<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    commit(s, Txn::new().put("k", b"v1".to_vec()).delete("k")).await;
    assert_eq!(get(s, "k").await, None, "put then delete");

    let r = commit(s, Txn::new().delete("k").put("k", b"v2".to_vec())).await;
    assert_eq!(
        get(s, "k").await,
        Some(entry("k", b"v2", r)),
        "delete then put"
    );

    let r = commit(
        s,
        Txn::new().put("k", b"v3".to_vec()).put("k", b"v4".to_vec()),
    )
    .await;
    assert_eq!(
        get(s, "k").await,
        Some(entry("k", b"v4", r)),
        "last put wins"
    );
}

/// A prefix scan returns exactly the keys starting with the prefix: not the key one byte
/// short of it, not siblings sharing a shorter prefix, not the first key past its range.
pub async fn scan_respects_prefix_boundaries<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    assert!(scan(s, Scan::prefix("")).await.is_empty(), "empty store");
    // "a0" is the exclusive upper bound of "a/" ('0' follows '/'); "a." sorts just before.
    for key in [
        "a", "a.", "a/", "a/1", "a/2", "a/2/x", "a0", "ab/1", "b/1", "0",
    ] {
        put(s, key, key.as_bytes()).await;
    }
    assert_eq!(
        scan_keys(s, Scan::prefix("a/")).await,
        strings(&["a/", "a/1", "a/2", "a/2/x"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("a/").reverse()).await,
        strings(&["a/2/x", "a/2", "a/1", "a/"])
    );
    assert_eq!(scan_keys(s, Scan::prefix("ab/")).await, strings(&["ab/1"]));
    assert_eq!(
        scan_keys(s, Scan::prefix("a/2/")).await,
        strings(&["a/2/x"])
    );
    assert!(scan(s, Scan::prefix("c")).await.is_empty());
    assert!(scan(s, Scan::prefix("c").reverse()).await.is_empty());
    assert_eq!(
        scan(s, Scan::prefix("")).await.len(),
        10,
        "empty prefix is everything"
    );
    // Scanned entries carry value and version, as get returns them.
    for e in scan(s, Scan::prefix("a")).await {
        assert_eq!(Some(&e), get(s, &e.key).await.as_ref());
    }
}

/// Scans return keys in ascending byte order whatever the insertion order, reversed with
/// `reverse`, and at most `limit` of them, taken from the scan's starting end.
pub async fn scan_orders_keys_reverses_and_limits<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let keys = ["o/5", "o/1", "o/9", "o/3", "o/7", "o/2", "o/10"];
    for key in keys {
        put(s, key, key.as_bytes()).await;
    }
    let mut sorted: Vec<String> = strings(&keys);
    sorted.sort();
    let mut reversed = sorted.clone();
    reversed.reverse();

    assert_eq!(scan_keys(s, Scan::prefix("o/")).await, sorted);
    assert_eq!(scan_keys(s, Scan::prefix("o/").reverse()).await, reversed);
    assert_eq!(scan_keys(s, Scan::prefix("o/").limit(3)).await, sorted[..3]);
    assert_eq!(
        scan_keys(s, Scan::prefix("o/").reverse().limit(3)).await,
        reversed[..3]
    );
    assert!(scan(s, Scan::prefix("o/").limit(0)).await.is_empty());
    assert_eq!(scan_keys(s, Scan::prefix("o/").limit(100)).await, sorted);
}

async fn page_through<S: Store + ?Sized>(s: &S, reverse: bool) {
    for i in 0..10 {
        put(s, &format!("p/{i:02}"), &[i]).await;
    }
    // Neighbours just outside the prefix on both sides must never leak into a page.
    put(s, "p.", b"before").await;
    put(s, "p0", b"after").await;

    let mut expected: Vec<String> = (0..10).map(|i| format!("p/{i:02}")).collect();
    if reverse {
        expected.reverse();
    }
    let base = || {
        let scan = Scan::prefix("p/").limit(3);
        if reverse { scan.reverse() } else { scan }
    };

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let request = match &cursor {
            Some(after) => base().after(after.clone()),
            None => base(),
        };
        let page = scan_keys(s, request).await;
        let Some(last) = page.last().cloned() else {
            break;
        };
        assert!(pages.len() < 10, "paging does not terminate: {pages:?}");
        pages.push(page.len());
        seen.extend(page);
        cursor = Some(last);
    }
    assert_eq!(pages, [3, 3, 3, 1], "page sizes");
    assert_eq!(seen, expected, "every key exactly once, in order");

    // A cursor need not be an existing key.
    let (after, rest) = if reverse {
        ("p/045", strings(&["p/04", "p/03", "p/02"]))
    } else {
        ("p/045", strings(&["p/05", "p/06", "p/07"]))
    };
    assert_eq!(scan_keys(s, base().after(after)).await, rest);
}

/// Paging forward with `limit(3)` and `after(last key of the previous page)` visits each of 10
/// keys exactly once, in ascending order, then returns an empty page.
pub async fn scan_after_cursor_pages_forward_through_every_key_once<S: Store + 'static>(
    store: Arc<S>,
) {
    page_through(&*store, false).await;
}

/// Paging in reverse with `limit(3)` and `after(last key of the previous page)` visits each of
/// 10 keys exactly once, in descending order, then returns an empty page.
pub async fn scan_after_cursor_pages_backward_through_every_key_once<S: Store + 'static>(
    store: Arc<S>,
) {
    page_through(&*store, true).await;
}

/// Many tasks race read-modify-write increments of one counter with `Version` conditions:
/// each version is won by exactly one commit (the winners form one chain, each having read
/// the version the previous winner wrote), every loss is a `WriteConflict` on the counter,
/// and the final count equals the number of successful commits.
pub async fn concurrent_cas_has_exactly_one_winner_per_version<S: Store + 'static>(store: Arc<S>) {
    const TASKS: usize = 8;
    const ATTEMPTS: usize = 15;
    const KEY: &str = "cas/counter";
    let decode = |e: &Entry| {
        u64::from_be_bytes(
            e.value
                .as_slice()
                .try_into()
                .unwrap_or_else(|_| panic!("counter value is not 8 bytes: {e:?}")),
        )
    };

    let initial = put(&*store, KEY, &0u64.to_be_bytes()).await;
    let start = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let start = Arc::clone(&start);
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            // (version read, revision written) for every win of this task.
            let mut wins = Vec::new();
            for _ in 0..ATTEMPTS {
                let current = get(&*store, KEY)
                    .await
                    .unwrap_or_else(|| panic!("task {task}: counter vanished"));
                let next = decode(&current) + 1;
                // Widen the read-to-commit window, so tasks race even on a store whose
                // methods never await.
                tokio::task::yield_now().await;
                let result = store
                    .commit(
                        Txn::new()
                            .when(Condition::Version(KEY.into(), current.version))
                            .put(KEY, next.to_be_bytes().to_vec()),
                    )
                    .await;
                match result {
                    Ok(rev) => wins.push((current.version, rev)),
                    Err(Error::WriteConflict { key }) if key == KEY => {}
                    Err(e) => panic!("task {task}: unexpected error {e}"),
                }
            }
            wins
        }));
    }
    let mut wins: Vec<(Revision, Revision)> = Vec::new();
    for t in tasks {
        wins.extend(t.await.unwrap_or_else(|e| panic!("CAS task failed: {e}")));
    }

    let versions_won: BTreeSet<Revision> = wins.iter().map(|(read, _)| *read).collect();
    assert_eq!(
        versions_won.len(),
        wins.len(),
        "a version was won twice: {wins:?}"
    );
    wins.sort_by_key(|(_, rev)| *rev);
    let mut expected_read = initial;
    for (read, rev) in &wins {
        assert_eq!(
            *read, expected_read,
            "winners must form one chain: {wins:?}"
        );
        expected_read = *rev;
    }

    let last = get(&*store, KEY)
        .await
        .unwrap_or_else(|| panic!("counter vanished"));
    assert_eq!(
        decode(&last),
        wins.len() as u64,
        "final count vs successful commits"
    );
    assert_eq!(
        last.version, expected_read,
        "counter version is the last winner's revision"
    );
    assert_eq!(
        revision(&*store).await,
        expected_read,
        "no other commit happened"
    );
    assert!(!wins.is_empty());
}

/// An empty value is a value: it reads back as `Some` with empty bytes, shows in scans, and
/// its version works in conditions.
pub async fn empty_value_is_allowed<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let r = put(s, "e/empty", b"").await;
    assert_eq!(get(s, "e/empty").await, Some(entry("e/empty", b"", r)));
    assert_eq!(
        scan(s, Scan::prefix("e/")).await,
        vec![entry("e/empty", b"", r)]
    );
    assert_write_conflict(
        s.commit(Txn::new().when(Condition::Absent("e/empty".into())))
            .await,
        "e/empty",
    );
    let r2 = commit(
        s,
        Txn::new()
            .when(Condition::Version("e/empty".into(), r))
            .put("e/empty", Vec::new()),
    )
    .await;
    assert_eq!(get(s, "e/empty").await, Some(entry("e/empty", b"", r2)));
}

/// Non-ASCII keys round-trip, sort by their UTF-8 bytes, and bound prefix scans correctly,
/// including a prefix ending in a character whose byte successor is not valid UTF-8.
pub async fn unicode_keys_round_trip_and_scan<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    // "¿" is C2 BF: the smallest key above every "q¿…" starts C2 C0, which is not UTF-8.
    // "À" is C3 80 and must stay outside the "q¿" prefix.
    let keys = [
        "日本/東京",
        "日本/大阪",
        "日本語",
        "emoji/🦀",
        "emoji/z",
        "q¿1",
        "q¿2",
        "qÀ",
        "é",
    ];
    let mut revs = Vec::new();
    for key in keys {
        revs.push(put(s, key, key.as_bytes()).await);
    }
    for (key, rev) in keys.iter().zip(&revs) {
        assert_eq!(get(s, key).await, Some(entry(key, key.as_bytes(), *rev)));
    }
    // Byte order: "大" (E5 A4 A7) sorts before "東" (E6 9D B1); 'z' before the crab.
    assert_eq!(
        scan_keys(s, Scan::prefix("日本/")).await,
        strings(&["日本/大阪", "日本/東京"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("emoji/")).await,
        strings(&["emoji/z", "emoji/🦀"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("q¿")).await,
        strings(&["q¿1", "q¿2"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("q¿").reverse()).await,
        strings(&["q¿2", "q¿1"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("q¿").after("q¿1")).await,
        strings(&["q¿2"])
    );
    assert_eq!(
        scan_keys(s, Scan::prefix("q¿").reverse().after("q¿2")).await,
        strings(&["q¿1"])
    );
    assert_eq!(scan_keys(s, Scan::prefix("日本")).await.len(), 3);
}

/// A value of 1 MiB (many pages in any page-based backend) reads back byte for byte.
pub async fn large_value_round_trips<S: Store + 'static>(store: Arc<S>) {
    let s = &*store;
    let value: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = put(s, "big", &value).await;
    let got = get(s, "big")
        .await
        .unwrap_or_else(|| panic!("big value missing"));
    assert_eq!(got.version, r);
    assert!(got.value == value, "1 MiB value changed on the way back");
}
