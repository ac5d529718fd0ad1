//! The write protocol of the store crash test, shared by the `clank-store-crash-writer`
//! child and the test that checks what survives its kills.
//!
//! Transaction `seq` is shaped like a catalog write: it atomically puts record
//! [`record_key`]`(seq)` with [`payload`]`(seq)`, its index entry [`index_key`]`(seq)` holding
//! the record key, and [`HEAD_KEY`] = `seq`, on the condition that neither the record nor its
//! index exists yet.

use clank_core::Result;
use clank_core::store::{Condition, Scan, Store, Txn};

pub const RECORD_PREFIX: &str = "rec/";
pub const INDEX_PREFIX: &str = "idx/seq/";
/// The last sequence number committed, written by every transaction.
pub const HEAD_KEY: &str = "meta/head";

pub fn record_key(seq: u64) -> String {
    format!("{RECORD_PREFIX}{seq:010}")
}

pub fn index_key(seq: u64) -> String {
    format!("{INDEX_PREFIX}{seq:010}")
}

/// The sequence number in a record or index key, if `key` is one.
pub fn parse_seq(key: &str, prefix: &str) -> Option<u64> {
    key.strip_prefix(prefix)?.parse().ok()
}

/// The value of record `seq`, recomputed by the checker to detect torn or mixed-up values.
/// Sizes vary from tens of bytes to 8 KiB, so some commits span several 4 KiB pages.
pub fn payload(seq: u64) -> Vec<u8> {
    let len = if seq % 31 == 0 {
        8 * 1024
    } else {
        16 + (seq % 97) as usize * 7
    };
    let unit = format!("record {seq};");
    // `repeat` copies in doubling chunks: the checker rebuilds every payload after every
    // kill, and a byte-by-byte iterator made that the slowest part of the crash test.
    let mut value = unit.as_bytes().repeat(len / unit.len() + 1);
    value.truncate(len);
    value
}

/// Transaction `seq` of the protocol.
pub fn txn(seq: u64) -> Txn {
    let record = record_key(seq);
    Txn::new()
        .when(Condition::Absent(record.clone()))
        .when(Condition::Absent(index_key(seq)))
        .put(record.clone(), payload(seq))
        .put(index_key(seq), record.into_bytes())
        .put(HEAD_KEY, seq.to_string().into_bytes())
}

/// The next sequence number to write: one past the last record in the store. Taken from the
/// store, not from what was acknowledged, since a commit may land without its acknowledgement.
pub async fn next_seq<S: Store + ?Sized>(store: &S) -> Result<u64> {
    let last = store
        .scan(Scan::prefix(RECORD_PREFIX).reverse().limit(1))
        .await?;
    match last.first() {
        None => Ok(0),
        Some(entry) => parse_seq(&entry.key, RECORD_PREFIX)
            .map(|seq| seq + 1)
            .ok_or_else(|| clank_core::Error::Corrupt {
                key: entry.key.clone(),
                reason: "record key without a sequence number".to_owned(),
            }),
    }
}
