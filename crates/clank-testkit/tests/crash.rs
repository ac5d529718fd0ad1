//! Crash test of `RedbStore`: a child process (`clank-store-crash-writer`) commits
//! record+index transactions and acknowledges each one on stdout after commit returns; it is
//! SIGKILLed at random moments, 200 times on the same database file. After every kill the
//! store must open, hold every acknowledged write, and hold no half transaction.
//!
//! SIGKILL loses the process, not the OS page cache, so this proves crash consistency and
//! that acknowledgement follows commit; it cannot prove the fsync itself (power loss).
//!
//! `CLANK_CRASH_KILLS` overrides the number of kills; `CLANK_CRASH_SEED` replays a run's
//! kill delays (process timing still varies).
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clank_core::store::{Scan, Store};
use clank_store::RedbStore;
use clank_testkit::crash;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WRITER: &str = env!("CARGO_BIN_EXE_clank-store-crash-writer");
const SIGKILL: i32 = 9;
const DEFAULT_KILLS: usize = 200;

fn env_or<T: std::str::FromStr>(name: &str, default: impl FnOnce() -> T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} does not parse")),
        Err(_) => default(),
    }
}

/// What one kill left behind, once checked.
struct Survivors {
    /// Records (= committed transactions) in the store.
    records: u64,
}

/// Open the store after a kill and check every invariant of the crash protocol.
async fn check(path: &Path, acked: &BTreeSet<u64>) -> Result<Survivors, String> {
    let store = RedbStore::open(path).map_err(|e| format!("store does not open: {e}"))?;
    let fail = |e: clank_core::Error| e.to_string();
    let records = store
        .scan(Scan::prefix(crash::RECORD_PREFIX))
        .await
        .map_err(fail)?;
    let indexes = store
        .scan(Scan::prefix(crash::INDEX_PREFIX))
        .await
        .map_err(fail)?;
    let revision = store.revision().await.map_err(fail)?;
    let head = store.get(crash::HEAD_KEY).await.map_err(fail)?;

    // Records are exactly 0..n (the writer continues from the last one), each whole.
    for (expected, record) in (0u64..).zip(&records) {
        let seq = crash::parse_seq(&record.key, crash::RECORD_PREFIX)
            .ok_or_else(|| format!("stray key {}", record.key))?;
        if seq != expected {
            return Err(format!("records skip from {expected} to {seq}"));
        }
        if record.value != crash::payload(seq) {
            return Err(format!("record {seq} has a torn or foreign value"));
        }
    }
    let n = records.len() as u64;

    // Atomicity: every record has its index entry and vice versa, written by the same commit.
    if indexes.len() != records.len() {
        return Err(format!(
            "{} records but {} index entries",
            records.len(),
            indexes.len()
        ));
    }
    for (record, index) in records.iter().zip(&indexes) {
        let seq = crash::parse_seq(&record.key, crash::RECORD_PREFIX);
        if crash::parse_seq(&index.key, crash::INDEX_PREFIX) != seq
            || index.value != record.key.as_bytes()
            || index.version != record.version
        {
            return Err(format!(
                "record {} and index {} disagree",
                record.key, index.key
            ));
        }
    }
    match (&head, n) {
        (None, 0) => {}
        (Some(head), n) if n > 0 && head.value == (n - 1).to_string().as_bytes() => {
            if head.version != revision {
                return Err(format!(
                    "head written at {} but revision is {revision}",
                    head.version
                ));
            }
        }
        (head, n) => return Err(format!("head {head:?} does not match {n} records")),
    }

    // Durability: everything acknowledged is there.
    if let Some(missing) = acked.iter().find(|seq| **seq >= n) {
        return Err(format!(
            "acknowledged write {missing} lost ({n} records survive)"
        ));
    }
    // Every commit wrote exactly one record and nothing else commits, so the revision counts
    // them; and it can never be below what was acknowledged.
    if revision != n || revision < acked.len() as u64 {
        return Err(format!(
            "revision {revision} vs {n} records, {} acknowledged",
            acked.len()
        ));
    }
    Ok(Survivors { records: n })
}

#[test]
fn acknowledged_writes_survive_sigkill_and_transactions_stay_whole() {
    let kills: usize = env_or("CLANK_CRASH_KILLS", || DEFAULT_KILLS);
    let seed: u64 = env_or("CLANK_CRASH_SEED", || rand::rng().random());
    println!("crash test: seed {seed}, {kills} kills");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let started = Instant::now();
    let mut acked = BTreeSet::new();
    let mut records = 0u64;
    let mut runs_without_ack = 0usize;
    let mut unacknowledged_commits = 0u64;
    let mut max_acks_in_run = 0usize;

    for kill in 1..=kills {
        let mut child = Command::new(WRITER)
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {WRITER}: {e}"));
        let delay = Duration::from_millis(rng.random_range(5..=80));
        std::thread::sleep(delay);
        // On Unix this is SIGKILL: no destructor, no flush, no clean close of the database.
        child.kill().unwrap();
        let mut out = String::new();
        let mut err = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(SIGKILL),
            "kill #{kill}: writer ended on its own ({status}) before the kill: {err}"
        );

        // Only whole lines are acknowledgements; a line cut by the kill is not.
        let run: Vec<u64> = out
            .split_inclusive('\n')
            .filter_map(|line| line.strip_suffix('\n'))
            .map(|line| {
                line.parse()
                    .unwrap_or_else(|_| panic!("bad ack line {line:?}"))
            })
            .collect();
        if let Some(first) = run.first() {
            assert_eq!(
                *first, records,
                "kill #{kill}: writer did not continue from the store"
            );
        }
        assert!(
            run.windows(2).all(|w| w[1] == w[0] + 1),
            "kill #{kill}: acknowledgements out of order"
        );
        if run.is_empty() {
            runs_without_ack += 1;
        }
        max_acks_in_run = max_acks_in_run.max(run.len());
        acked.extend(&run);

        let survivors = runtime
            .block_on(check(&path, &acked))
            .unwrap_or_else(|e| panic!("after kill #{kill} ({delay:?} after spawn): {e}"));
        // Earlier checked state is durable too: the store may only have grown by this run's
        // acknowledged commits plus commits the kill cut off before their acknowledgement.
        let landed = survivors.records.checked_sub(records + run.len() as u64);
        let Some(unacknowledged) = landed else {
            panic!(
                "kill #{kill}: {} records after {records} plus {} acks",
                survivors.records,
                run.len()
            );
        };
        unacknowledged_commits += unacknowledged;
        records = survivors.records;
    }

    println!(
        "crash test: {kills} kills in {:.1?}; {} acknowledged writes checked after every kill \
         (all present); {records} transactions committed; {unacknowledged_commits} committed \
         without acknowledgement; {runs_without_ack} kills before the first acknowledgement; \
         at most {max_acks_in_run} acknowledgements in one run",
        started.elapsed(),
        acked.len(),
    );
    assert!(
        acked.len() >= kills / 4,
        "too few acknowledged writes ({}) for the test to mean anything",
        acked.len()
    );
}
