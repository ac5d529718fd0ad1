//! The on-disk layout shared by the persistent backends: key bytes, versioned values, and the
//! byte range a [`Scan`] covers.
//!
//! Keys are stored as their UTF-8 bytes, so the backends' byte order is exactly `String`'s
//! order, and scan bounds can use [`prefix_end`] directly even when it is not valid UTF-8.
//!
//! A stored value carries the entry's version with it, so a read and a condition check need
//! one lookup. Its first byte tells its format:
//!
//! | first byte | format                                                                        |
//! |------------|-------------------------------------------------------------------------------|
//! | `0x00`     | legacy: the version as 8 bytes big-endian (so its top byte is 0), the payload |
//! | `0x01`     | plain: the tag, the version as a LEB128 varint, the payload                   |
//! | `0x02`     | deflate: the tag, the version (varint), the payload's length (varint), then   |
//! |            | the payload compressed as raw deflate                                         |
//! | `0x03`     | deflate with a dictionary: the tag, the version (varint), the dictionary's id |
//! |            | (varint), the payload's length (varint), then raw deflate primed with that    |
//! |            | dictionary (see the `dictionary` module)                                      |
//!
//! Everything written before the tag existed is the legacy form (the revision counter never
//! came near 2^56), so data directories of older versions read as they are, and so do values
//! written in any of the forms since. New writes use the plain form, or deflate with the
//! current dictionary for payloads of [`COMPRESS_FROM`] bytes or more when that is smaller.
//! Records are JSON and repeat their field names and ids: deflate alone roughly halved them
//! (`0x02`, written until 2026-12-07); primed with a dictionary of typical records, it also
//! drops what one record shares with every other of its kind. The index entries (empty
//! payloads) shrink from 8 value bytes to 3–5.

use std::borrow::Cow;
use std::ops::Bound;

use clank_core::store::{Entry, Op, Revision, Scan, Txn, prefix_end};
use clank_core::{Error, Result};

use crate::dictionary;

const VERSION_LEN: usize = std::mem::size_of::<Revision>();

/// Format tags: the first byte of a stored value.
const LEGACY: u8 = 0x00;
const PLAIN: u8 = 0x01;
const DEFLATE: u8 = 0x02;
const DEFLATE_DICT: u8 = 0x03;

/// Payloads shorter than this are stored plain: the ids in unique keys' values and other
/// short strings do not shrink (a dictionary match needs a few bytes in common).
pub(crate) const COMPRESS_FROM: usize = 64;

/// miniz's fastest level that still searches for matches (the `0x02` form's level; tests
/// write that form to prove it still reads).
#[cfg(test)]
const DEFLATE_LEVEL: u8 = 1;

/// The largest payload a deflate value may claim: redb refuses values over 3 GiB anyway, so a
/// larger length is corruption, and decompressing stops there instead of filling memory.
const MAX_PAYLOAD: u64 = 3 << 30;

/// The stored form of one entry: `version` and `value` in the densest format that fits.
pub(crate) fn encode_value(version: Revision, value: &[u8]) -> Vec<u8> {
    if value.len() >= COMPRESS_FROM
        && let Some(packed) = dictionary::compress(value)
    {
        let mut header = Vec::with_capacity(20);
        put_varint(&mut header, dictionary::CURRENT);
        put_varint(&mut header, value.len() as u64);
        // Both forms share the tag and the version; this one adds the dictionary and length.
        if header.len() + packed.len() < value.len() {
            let mut out = Vec::with_capacity(11 + header.len() + packed.len());
            out.push(DEFLATE_DICT);
            put_varint(&mut out, version);
            out.extend_from_slice(&header);
            out.extend_from_slice(&packed);
            return out;
        }
    }
    let mut out = Vec::with_capacity(11 + value.len());
    out.push(PLAIN);
    put_varint(&mut out, version);
    out.extend_from_slice(value);
    out
}

/// The legacy form (`version ++ value`), as clank-store wrote every value before the format
/// tag; kept to prove that such data still reads.
#[cfg(test)]
pub(crate) fn encode_legacy(version: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(VERSION_LEN + value.len());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The `0x02` form (deflate without a dictionary) exactly as `encode_value` wrote values of
/// 128 bytes or more until the dictionary form replaced it; kept to prove that such data
/// still reads. `None` where that encoder stored the value plain.
#[cfg(test)]
pub(crate) fn encode_deflate_v2(version: Revision, value: &[u8]) -> Option<Vec<u8>> {
    if value.len() < 128 {
        return None;
    }
    let packed = miniz_oxide::deflate::compress_to_vec(value, DEFLATE_LEVEL);
    let mut len = Vec::with_capacity(10);
    put_varint(&mut len, value.len() as u64);
    if len.len() + packed.len() >= value.len() {
        return None;
    }
    let mut out = vec![DEFLATE];
    put_varint(&mut out, version);
    out.extend_from_slice(&len);
    out.extend_from_slice(&packed);
    Some(out)
}

/// The version of a stored value, without decompressing its payload (condition checks).
pub(crate) fn decode_version(key: &str, stored: &[u8]) -> Result<Revision> {
    Ok(split(key, stored)?.0)
}

/// Split a stored value into its version and payload.
pub(crate) fn decode_value<'a>(key: &str, stored: &'a [u8]) -> Result<(Revision, Cow<'a, [u8]>)> {
    let (version, body) = split(key, stored)?;
    let (dict, len, packed) = match body {
        Body::Raw(value) => return Ok((version, Cow::Borrowed(value))),
        Body::Deflate { dict, len, packed } => (dict, len, packed),
    };
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_owned(),
        reason,
    };
    if len > MAX_PAYLOAD {
        return Err(corrupt(format!(
            "compressed value claims {len} bytes, more than any value can hold"
        )));
    }
    let len = len as usize;
    let value = match dict {
        None => {
            let value = miniz_oxide::inflate::decompress_to_vec_with_limit(packed, len)
                .map_err(|e| corrupt(format!("compressed value does not inflate: {e}")))?;
            if value.len() != len {
                return Err(corrupt(format!(
                    "compressed value inflates to {} bytes, not the {len} it claims",
                    value.len()
                )));
            }
            value
        }
        Some(id) => {
            let dict = dictionary::get(id).ok_or_else(|| {
                corrupt(format!(
                    "compressed value names dictionary {id}, which this clank does not have \
                     (written by a newer clank?)"
                ))
            })?;
            dictionary::decompress_with(dict, packed, len)
                .map_err(|e| corrupt(format!("compressed value {e}")))?
        }
    };
    Ok((version, Cow::Owned(value)))
}

/// A stored value's payload, before decompression.
enum Body<'a> {
    Raw(&'a [u8]),
    /// Raw deflate, primed with the dictionary of that id if there is one.
    Deflate {
        dict: Option<u64>,
        len: u64,
        packed: &'a [u8],
    },
}

fn split<'a>(key: &str, stored: &'a [u8]) -> Result<(Revision, Body<'a>)> {
    let corrupt = |reason: String| Error::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let Some((&tag, rest)) = stored.split_first() else {
        return Err(corrupt("stored value is empty: no format tag".to_owned()));
    };
    match tag {
        LEGACY => {
            let Some((version, value)) = stored.split_first_chunk::<VERSION_LEN>() else {
                return Err(corrupt(format!(
                    "stored value is {} bytes, shorter than its {VERSION_LEN}-byte version header",
                    stored.len()
                )));
            };
            Ok((Revision::from_be_bytes(*version), Body::Raw(value)))
        }
        PLAIN => {
            let (version, value) = take_varint(rest).ok_or_else(|| {
                corrupt("stored value's version is cut short or overlong".to_owned())
            })?;
            Ok((version, Body::Raw(value)))
        }
        DEFLATE => {
            let (version, rest) = take_varint(rest).ok_or_else(|| {
                corrupt("stored value's version is cut short or overlong".to_owned())
            })?;
            let (len, packed) = take_varint(rest).ok_or_else(|| {
                corrupt("compressed value's length is cut short or overlong".to_owned())
            })?;
            Ok((
                version,
                Body::Deflate {
                    dict: None,
                    len,
                    packed,
                },
            ))
        }
        DEFLATE_DICT => {
            let (version, rest) = take_varint(rest).ok_or_else(|| {
                corrupt("stored value's version is cut short or overlong".to_owned())
            })?;
            let (dict, rest) = take_varint(rest).ok_or_else(|| {
                corrupt("compressed value's dictionary is cut short or overlong".to_owned())
            })?;
            let (len, packed) = take_varint(rest).ok_or_else(|| {
                corrupt("compressed value's length is cut short or overlong".to_owned())
            })?;
            Ok((
                version,
                Body::Deflate {
                    dict: Some(dict),
                    len,
                    packed,
                },
            ))
        }
        other => Err(corrupt(format!(
            "stored value has unknown format tag {other:#04x} (written by a newer clank?)"
        ))),
    }
}

/// LEB128: seven bits a byte, low bits first, the high bit set on all but the last byte.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The varint at the start of `bytes` and what follows it; `None` if it is cut short or
/// does not fit in a `u64`.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        // The tenth byte may only carry the top bit of a u64.
        if shift == 63 && bits > 1 {
            return None;
        }
        n |= bits << shift;
        if b & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// Rebuild an [`Entry`] from stored key and value bytes.
pub(crate) fn decode_entry(key: &[u8], stored: &[u8]) -> Result<Entry> {
    let key = decode_key(key)?;
    let (version, value) = decode_value(&key, stored)?;
    Ok(Entry {
        value: value.into_owned(),
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

    fn decoded(stored: &[u8]) -> (Revision, Vec<u8>) {
        let (v, value) = decode_value("k", stored).unwrap();
        (v, value.into_owned())
    }

    /// A record-like JSON payload, big enough to be compressed.
    fn record() -> Vec<u8> {
        let mut json = String::from("{\"items\":[");
        for i in 0..40 {
            json.push_str(&format!(
                "{{\"id\":\"01JABCDEF{i:03}\",\"status\":\"SUPERSEDED\"}},"
            ));
        }
        json.push_str("null]}");
        json.into_bytes()
    }

    #[test]
    fn value_round_trips_with_its_version() {
        for version in [0, 1, 42, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            for value in [&b""[..], b"hello", &[0u8; 127], &record()] {
                let stored = encode_value(version, value);
                assert_eq!(decoded(&stored), (version, value.to_vec()), "{version}");
                assert_eq!(decode_version("k", &stored).unwrap(), version);
            }
        }
    }

    #[test]
    fn small_values_are_plain_and_records_are_compressed() {
        // An index entry: tag and a 3-byte version, where the legacy form took 8 bytes.
        assert_eq!(encode_value(100_000, b""), [PLAIN, 0xa0, 0x8d, 0x06]);
        let stored = encode_value(7, &record());
        assert_eq!(stored[0], DEFLATE_DICT);
        assert_eq!(stored[2], dictionary::CURRENT as u8);
        assert!(
            stored.len() * 2 < record().len(),
            "{} of {}",
            stored.len(),
            record().len()
        );
        // Smaller than deflate without the dictionary.
        let v2 = encode_deflate_v2(7, &record()).unwrap();
        assert!(stored.len() < v2.len(), "{} vs {}", stored.len(), v2.len());
        // Incompressible bytes over the threshold stay plain rather than grow.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 56) as u8
            })
            .collect();
        let stored = encode_value(7, &noise);
        assert_eq!(stored[0], PLAIN);
        assert_eq!(decoded(&stored), (7, noise));
    }

    #[test]
    fn legacy_values_still_read() {
        for value in [&b""[..], b"hello", &record()] {
            let stored = encode_legacy(42, value);
            assert_eq!(stored[0], LEGACY);
            assert_eq!(decoded(&stored), (42, value.to_vec()));
            assert_eq!(decode_version("k", &stored).unwrap(), 42);
        }
    }

    /// Values in the `0x02` form (deflate, no dictionary), as written from the format tag's
    /// introduction until the dictionary form, read as they are.
    #[test]
    fn deflate_values_without_a_dictionary_still_read() {
        // Bytes as that encoder wrote them: tag, version 300 (varint), length, raw deflate.
        let value = record();
        let stored = encode_deflate_v2(300, &value).unwrap();
        assert_eq!(&stored[..3], &[DEFLATE, 0xac, 0x02]);
        assert_eq!(decoded(&stored), (300, value.clone()));
        assert_eq!(decode_version("k", &stored).unwrap(), 300);
        // A hand-built one: a stored (uncompressed) deflate block of "hello".
        let stored = [
            DEFLATE, 5, 5, 0x01, 5, 0, 0xfa, 0xff, b'h', b'e', b'l', b'l', b'o',
        ];
        assert_eq!(decoded(&stored), (5, b"hello".to_vec()));
        // And the plain form's bytes.
        assert_eq!(decoded(&[PLAIN, 0x05, b'{', b'}']), (5, b"{}".to_vec()));
    }

    #[test]
    fn short_value_is_corrupt_naming_the_key() {
        let err = decode_value("projects/p1", b"\0bc").unwrap_err();
        assert!(
            matches!(err, Error::Corrupt { ref key, .. } if key == "projects/p1"),
            "{err}"
        );
        let err = decode_value("projects/p1", b"").unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn unknown_tag_is_a_clear_corruption_error() {
        let err = decode_value("rec/service/s1", &[0x07, 1, b'{', b'}']).unwrap_err();
        let Error::Corrupt { key, reason } = &err else {
            panic!("{err}")
        };
        assert_eq!(key, "rec/service/s1");
        assert!(reason.contains("unknown format tag 0x07"), "{reason}");
    }

    #[test]
    fn damaged_compressed_values_are_corrupt_not_garbage() {
        let len = record().len() as u64;
        let mut header_len = Vec::new();
        put_varint(&mut header_len, len);
        for (stored, header) in [
            // tag, version 9, dictionary 1, length
            (encode_value(9, &record()), 3 + header_len.len()),
            // tag, version 9, length
            (
                encode_deflate_v2(9, &record()).unwrap(),
                2 + header_len.len(),
            ),
        ] {
            let packed = &stored[header..];
            // Cut short, a length one more or one less than the payload's.
            let cut = stored[..stored.len() / 2].to_vec();
            let with_len = |n: u64| {
                let mut bad = stored[..header - header_len.len()].to_vec();
                put_varint(&mut bad, n);
                bad.extend_from_slice(packed);
                bad
            };
            assert_eq!(decoded(&with_len(len)).1, record(), "rebuilt as is");
            for bad in [cut, with_len(len + 1), with_len(len - 1)] {
                let err = decode_value("k", &bad).unwrap_err();
                assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            }
        }
        // A version varint that never ends, a huge length, a dictionary this build lacks.
        let endless = [PLAIN, 0xff, 0xff];
        let huge = [DEFLATE, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0];
        let huge_dict = [DEFLATE_DICT, 9, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0];
        let unknown_dict = [DEFLATE_DICT, 9, 0x7f, 2, 0x03, 0x00];
        let no_dict = [DEFLATE_DICT, 9];
        for bad in [&endless[..], &huge, &huge_dict, &unknown_dict, &no_dict] {
            let err = decode_value("k", bad).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        }
        let err = decode_value("k", &unknown_dict).unwrap_err().to_string();
        assert!(err.contains("dictionary 127"), "{err}");
        assert!(decode_version("k", &endless).is_err());
    }

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for n in [0, 1, 127, 128, 16_383, 16_384, u64::MAX / 3, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(take_varint(&out), Some((n, &[][..])));
        }
        assert_eq!(
            take_varint(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()),
            None
        );
        assert_eq!(take_varint(&[0x80]), None);
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
