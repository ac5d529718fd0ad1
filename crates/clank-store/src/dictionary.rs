//! Raw deflate primed with a preset dictionary: the form (`0x03`, see the `encoding` module)
//! that most record values are stored in.
//!
//! A record is 0.3–2 KiB of JSON, and most of it — field names, enum values, the shape of a
//! snapshot and a state history, the ids a record repeats — is the same from one record to the
//! next. Deflate on its own only finds what repeats *within* one value (a 1.3 KiB deployment
//! shrank to ~56%); primed with a dictionary of typical records, it refers back into the
//! dictionary for the shared parts, and what is left is mostly what is unique to the record:
//! its ids, numbers and timestamps.
//!
//! The compressor is primed by compressing the dictionary and flushing (`Sync`: a byte-aligned
//! empty stored block, the window kept), so what follows is a stream of whole deflate blocks
//! whose matches may reach into the dictionary; that part alone is stored. The decompressor
//! gets the dictionary as already-decoded output in front of the value
//! (`TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF`), so those matches resolve.
//!
//! Dictionary 1 (`dictionaries/records-v1.txt`, 9 KiB) is ten records — a build, a project,
//! environments, a git service and deployment with config, volumes and an endpoint, an image
//! service and its deployments (most common, so last: the nearest matches) — made by
//! `dictionaries/build_dict.py` from the values the `scale` bench writes with `SAMPLES=dir`,
//! with fresh ids and a neutral image. A deployment of that bench: 1,215 bytes of JSON, 603
//! deflated alone, ~200 with the dictionary.
//!
//! **A dictionary is part of the file format.** Values name theirs by id; once released, a
//! dictionary's bytes must never change (a test pins their checksum). A better dictionary is
//! a new id appended to [`DICTIONARIES`], used for new writes while the old ones still read.

use std::sync::OnceLock;

use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output, create_comp_flags_from_zip_params,
};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

/// The dictionaries by id (`DICTIONARIES[id - 1]`); id 0 is never used.
const DICTIONARIES: &[&[u8]] = &[include_bytes!("dictionaries/records-v1.txt")];

/// The dictionary new values are written with.
pub(crate) const CURRENT: u64 = 1;

/// miniz level 6 (lazy matching): a record still compresses in a few tens of microseconds,
/// next to the ~300 µs fsync every commit waits for, and finds the longer matches into the
/// dictionary that level 1's greedy parse misses.
const LEVEL: i32 = 6;

/// The dictionary `id`, if there is one.
pub(crate) fn get(id: u64) -> Option<&'static [u8]> {
    let index = usize::try_from(id).ok()?.checked_sub(1)?;
    DICTIONARIES.get(index).copied()
}

/// A compressor that has seen dictionary [`CURRENT`] and flushed; cloned for each value, so
/// the dictionary is compressed once per process.
fn primed() -> &'static CompressorOxide {
    static PRIMED: OnceLock<CompressorOxide> = OnceLock::new();
    PRIMED.get_or_init(|| {
        let dict = get(CURRENT).unwrap_or_default();
        // Window bits 0: raw deflate, no zlib header or checksum.
        let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL, 0, 0));
        let (status, _) = compress_to_output(&mut c, dict, TDEFLFlush::Sync, |_| true);
        debug_assert_eq!(status, TDEFLStatus::Okay);
        c
    })
}

/// `value` as raw deflate primed with dictionary [`CURRENT`]; `None` if the compressor failed
/// (it does not on a complete input; the caller then stores the value another way).
pub(crate) fn compress(value: &[u8]) -> Option<Vec<u8>> {
    let mut c = primed().clone();
    let mut out = Vec::with_capacity(value.len() / 2 + 16);
    let (status, _) = compress_to_output(&mut c, value, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    (status == TDEFLStatus::Done).then_some(out)
}

/// Inflate `packed` (written by [`compress`] with dictionary `dict`) to exactly `len` bytes.
pub(crate) fn decompress_with(dict: &[u8], packed: &[u8], len: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; dict.len() + len];
    out[..dict.len()].copy_from_slice(dict);
    let mut state = Box::<DecompressorOxide>::default();
    let (status, _, written) = decompress(
        &mut state,
        packed,
        &mut out,
        dict.len(),
        inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    match status {
        TINFLStatus::Done if written == len => {}
        TINFLStatus::Done => {
            return Err(format!(
                "inflates to {written} bytes, not the {len} it claims"
            ));
        }
        // The output buffer is exactly `len` long: more output than that is a wrong length.
        TINFLStatus::HasMoreOutput => {
            return Err(format!("inflates to more than the {len} bytes it claims"));
        }
        other => return Err(format!("does not inflate: {other:?}")),
    }
    out.copy_within(dict.len().., 0);
    out.truncate(len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a, 64 bits: enough to notice a changed byte.
    fn checksum(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Stored values name their dictionary by id; editing a released one would make them
    /// inflate to garbage (or fail). Add a new dictionary instead.
    #[test]
    fn released_dictionaries_never_change() {
        let pinned: &[(usize, u64)] = &[(DICT_V1_LEN, DICT_V1_FNV)];
        assert_eq!(DICTIONARIES.len(), pinned.len(), "pin the new dictionary");
        for (i, (dict, (len, sum))) in DICTIONARIES.iter().zip(pinned).enumerate() {
            assert_eq!(
                (dict.len(), checksum(dict)),
                (*len, *sum),
                "dictionary {} changed",
                i + 1
            );
            // Matches reach back 32 KiB: a value must fit behind the dictionary.
            assert!(dict.len() <= 24 * 1024);
        }
        assert!(get(0).is_none() && get(CURRENT).is_some());
        assert!(get(DICTIONARIES.len() as u64 + 1).is_none());
    }

    const DICT_V1_LEN: usize = 9266;
    const DICT_V1_FNV: u64 = 5_936_945_680_951_464_916;

    #[test]
    fn round_trips_and_beats_plain_deflate_on_a_record() {
        let dict = get(CURRENT).unwrap();
        // The dictionary's own last record, changed: nearly all of it is a match.
        let record = std::str::from_utf8(dict)
            .unwrap()
            .rsplit('\n')
            .find(|l| l.starts_with('{'))
            .unwrap()
            .replace("0", "7")
            .into_bytes();
        let packed = compress(&record).unwrap();
        assert_eq!(
            decompress_with(dict, &packed, record.len()).unwrap(),
            record
        );
        let plain = miniz_oxide::deflate::compress_to_vec(&record, 6);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} with the dictionary, {} without",
            packed.len(),
            plain.len()
        );
        for value in [&b""[..], b"x", &[0u8; 5000], &record.repeat(30)] {
            let packed = compress(value).unwrap();
            assert_eq!(decompress_with(dict, &packed, value.len()).unwrap(), value);
        }
    }

    #[test]
    fn wrong_lengths_and_damage_are_errors() {
        let dict = get(CURRENT).unwrap();
        let value = br#"{"id":"01JABCDEF","status":"SUPERSEDED","number":7}"#.repeat(4);
        let packed = compress(&value).unwrap();
        assert!(decompress_with(dict, &packed, value.len() + 1).is_err());
        assert!(decompress_with(dict, &packed, value.len() - 1).is_err());
        assert!(decompress_with(dict, &packed[..packed.len() / 2], value.len()).is_err());
        // Without the dictionary its back-references point before the start.
        assert!(decompress_with(b"", &packed, value.len()).is_err_and(|e| !e.is_empty()));
    }
}
