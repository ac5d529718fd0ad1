//! The on-disk layout shared by the persistent backends: key bytes, versioned values, and the
//! byte range a [`Scan`] covers.
//!
//! Keys are stored as their UTF-8 bytes, so the backends' byte order is exactly `String`'s
//! order, and scan bounds can use [`prefix_end`] directly even when it is not valid UTF-8.
//! A stored value is the version (8 bytes, big-endian) followed by the caller's bytes; the
//! version travels with the value so a read and a condition check need one lookup.

use std::ops::Bound;

use clank_core::store::{Entry, Op, Revision, Scan, Txn, prefix_end};
use clank_core::{Error, Result};

const VERSION_LEN: usize = std::mem::size_of::<Revision>();

/// `version ++ value`, the stored form of one entry.
pub(crate) fn encode_value(version: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Split a stored value into its version and payload.
pub(crate) fn decode_value<'a>(key: &str, stored: &'a [u8]) -> Result<(Revision, &'a [u8])> {
    let Some((version, value)) = stored.split_first_chunk::<VERSION_LEN>() else {
        return Err(Error::Corrupt {
            key: key.to_owned(),
            reason: format!(
                "stored value is {} bytes, shorter than its {VERSION_LEN}-byte version header",
                stored.len()
            ),
        });
    };
    Ok((Revision::from_be_bytes(*version), value))
}

/// Rebuild an [`Entry`] from stored key and value bytes.
pub(crate) fn decode_entry(key: &[u8], stored: &[u8]) -> Result<Entry> {
    let key = decode_key(key)?;
    let (version, value) = decode_value(&key, stored)?;
    Ok(Entry {
        value: value.to_vec(),
        key,
        version,
    })
}

fn decode_key(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|e| Error::Corrupt {
        // The key is not text, so name it by its bytes instead.
        key: String::from_utf8_lossy(key).into_owned(),
        reason: format!("stored key is not UTF-8: {e}"),
    })
}

/// The next revision after `current`.
pub(crate) fn next_revision(current: Revision) -> Result<Revision> {
    // 2^64 commits cannot happen in practice; failing beats silently reusing revision 0.
    current
        .checked_add(1)
        .ok_or_else(|| Error::Internal("store revision counter overflowed".to_owned()))
}

/// The key to name in an error about a whole transaction: its first write.
pub(crate) fn first_key(txn: &Txn) -> Option<&str> {
    txn.ops.first().map(|op| match op {
        Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
    })
}

/// Key bytes bounding a scan.
pub(crate) type KeyBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// The byte range holding exactly the keys `scan` may return, before its limit, or `None`
/// when that range is empty. Both backends hand it to their native range iterator, so a
/// scan costs one seek plus the entries it returns, in either direction.
pub(crate) fn scan_bounds(scan: &Scan) -> Option<KeyBounds> {
    let prefix = scan.prefix.as_bytes();
    let end = prefix_end(&scan.prefix);
    let mut lower = Bound::Included(prefix.to_vec());
    let mut upper = end.clone().map_or(Bound::Unbounded, Bound::Excluded);
    if let Some(after) = &scan.after {
        let after = after.as_bytes();
        // The cursor only ever narrows the prefix range: a cursor outside it (which callers
        // should not pass) then yields the keys of the prefix on the far side of it, if any.
        if scan.reverse {
            if end.as_deref().is_none_or(|end| after < end) {
                upper = Bound::Excluded(after.to_vec());
            }
        } else if after >= prefix {
            lower = Bound::Excluded(after.to_vec());
        }
    }
    // Range iterators may panic on inverted bounds (BTreeMap's does), so never build one.
    let empty = match (&lower, &upper) {
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
        _ => false,
    };
    (!empty).then_some((lower, upper))
}

/// `Bound<Vec<u8>>` viewed as `Bound<&[u8]>`, the form the backends' range APIs take.
pub(crate) fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    bound.as_ref().map(Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_with_its_version() {
        let stored = encode_value(42, b"hello");
        assert_eq!(decode_value("k", &stored).unwrap(), (42, &b"hello"[..]));
        let empty = encode_value(7, b"");
        assert_eq!(decode_value("k", &empty).unwrap(), (7, &b""[..]));
    }

    #[test]
    fn short_value_is_corrupt_naming_the_key() {
        let err = decode_value("projects/p1", b"abc").unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { ref key, .. } if key == "projects/p1"),
            "{err}"
        );
    }

    #[test]
    fn non_utf8_key_is_corrupt() {
        let err = decode_entry(&[0xff, 0xfe], &encode_value(1, b"")).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn scan_bounds_cover_the_prefix_and_narrow_by_cursor() {
        let b = |s: &str| Bound::Excluded(s.as_bytes().to_vec());
        let inc = |s: &str| Bound::Included(s.as_bytes().to_vec());
        assert_eq!(scan_bounds(&Scan::prefix("a/")), Some((inc("a/"), b("a0"))));
        assert_eq!(
            scan_bounds(&Scan::prefix("a/").after("a/5")),
            Some((b("a/5"), b("a0")))
        );
        assert_eq!(
            scan_bounds(&Scan::prefix("a/").after("a/5").reverse()),
            Some((inc("a/"), b("a/5")))
        );
        assert_eq!(
            scan_bounds(&Scan::prefix("")),
            Some((inc(""), Bound::Unbounded))
        );
        // Cursors past either end of the prefix leave nothing to return.
        assert_eq!(scan_bounds(&Scan::prefix("a/").after("b")), None);
        assert_eq!(scan_bounds(&Scan::prefix("a/").after("a/").reverse()), None);
    }
}
