//! The shared `Store` contract run against every backend, plus the persistence properties
//! only on-disk backends have (reopening keeps data and revision, open errors name the path).

use std::path::Path;

use clank_core::Error;
use clank_core::store::memory::MemoryStore;
use clank_core::store::{Condition, Entry, Scan, Store, Txn};
use clank_store::RedbStore;
use tempfile::TempDir;

fn memory_fixture() -> (MemoryStore, ()) {
    (MemoryStore::new(), ())
}

fn redb_fixture() -> (RedbStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("clank.redb")).unwrap();
    (store, dir)
}

clank_testkit::store_contract_tests!(memory, memory_fixture);
clank_testkit::store_contract_tests!(redb, redb_fixture);

#[cfg(feature = "sled")]
fn sled_fixture() -> (clank_store::SledStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = clank_store::SledStore::open(dir.path().join("clank.sled")).unwrap();
    (store, dir)
}

#[cfg(feature = "sled")]
clank_testkit::store_contract_tests!(sled, sled_fixture);

/// Writes a known history and returns what a reopened store must show.
async fn write_history<S: Store>(store: &S) -> (Vec<Entry>, u64) {
    store
        .commit(Txn::new().put("r/a", b"1".to_vec()))
        .await
        .unwrap();
    store
        .commit(Txn::new().put("r/b", b"2".to_vec()).put("r/c", Vec::new()))
        .await
        .unwrap();
    store.commit(Txn::new().delete("r/b")).await.unwrap();
    let a = store.get("r/a").await.unwrap().unwrap();
    let last = store
        .commit(
            Txn::new()
                .when(Condition::Version("r/a".into(), a.version))
                .put("r/a", b"1b".to_vec()),
        )
        .await
        .unwrap();
    (store.scan(Scan::prefix("")).await.unwrap(), last)
}

async fn assert_history<S: Store>(store: &S, entries: &[Entry], revision: u64) {
    assert_eq!(store.scan(Scan::prefix("")).await.unwrap(), entries);
    assert_eq!(store.revision().await.unwrap(), revision);
    // New commits continue above the old revision rather than restarting at 1.
    let next = store
        .commit(Txn::new().put("r/d", b"4".to_vec()))
        .await
        .unwrap();
    assert!(
        next > revision,
        "revision restarted after reopen: {next} <= {revision}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_reopened_at_same_path_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clank.redb");
    let store = RedbStore::open(&path).unwrap();
    let (entries, revision) = write_history(&store).await;
    assert_eq!(entries.len(), 2);
    drop(store);

    let reopened = RedbStore::open(&path).unwrap();
    assert_history(&reopened, &entries, revision).await;
}

#[cfg(feature = "sled")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_reopened_at_same_path_keeps_data_and_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clank.sled");
    let store = clank_store::SledStore::open(&path).unwrap();
    let (entries, revision) = write_history(&store).await;
    drop(store);

    let reopened = clank_store::SledStore::open(&path).unwrap();
    assert_history(&reopened, &entries, revision).await;
}

fn assert_names_path(err: &Error, path: &Path) {
    let shown = err.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "error does not name {}: {shown}",
        path.display()
    );
}

#[test]
fn redb_open_of_a_file_that_is_not_a_database_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert_names_path(&err, &path);
}

#[test]
fn redb_open_of_a_database_already_open_is_unavailable_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clank.redb");
    let _first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert_names_path(&err, &path);
}

#[test]
fn redb_open_in_a_missing_directory_fails_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/clank.redb");
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert_names_path(&err, &path);
}
