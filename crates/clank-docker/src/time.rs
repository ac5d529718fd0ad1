//! Docker's RFC 3339 timestamps (`2024-05-01T12:34:56.123456789Z`) as Clank timestamps, parsed
//! by hand so the crate needs no date library (bollard's `time`/`chrono` features stay off).

use clank_core::Timestamp;

/// Nanoseconds since the Unix epoch, for ordering Docker objects precisely (two networks
/// created in the same millisecond).
pub(crate) fn parse_nanos(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let secs = digits(i + 1, 2)? * 3600 + digits(i + 4, 2)? * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// A Docker timestamp as a [`Timestamp`]; `None` for garbage and for Docker's "never"
/// (`0001-01-01T00:00:00Z`, what `FinishedAt` says of a container that never stopped).
pub(crate) fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let nanos = parse_nanos(s)?;
    if nanos < 0 {
        return None;
    }
    i64::try_from(nanos / 1_000_000).ok().map(Timestamp)
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian), the inverse of the one in
/// `clank_core::time`.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dockers_nanosecond_utc_timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        assert_eq!(
            parse_timestamp("2024-05-01T12:34:56.123456789Z"),
            Some(Timestamp(1_714_566_896_123))
        );
        assert_eq!(
            parse_nanos("2024-05-01T12:34:56.123456789Z"),
            Some(1_714_566_896_123_456_789)
        );
        assert_eq!(
            parse_timestamp("2024-05-01T14:34:56.5+02:00"),
            Some(Timestamp(1_714_566_896_500))
        );
        assert_eq!(
            parse_timestamp("2000-02-29T00:00:00Z"),
            Some(Timestamp(951_782_400_000))
        );
    }

    #[test]
    fn round_trips_through_clank_cores_display() {
        for ms in [0, 1, 951_782_400_000, 1_714_566_896_123, 4_102_444_800_000] {
            let shown = Timestamp(ms).to_string();
            assert_eq!(parse_timestamp(&shown), Some(Timestamp(ms)), "{shown}");
        }
    }

    #[test]
    fn never_and_garbage_are_none() {
        for s in [
            "0001-01-01T00:00:00Z",
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56Zjunk",
        ] {
            assert_eq!(parse_timestamp(s), None, "{s:?}");
        }
    }
}
