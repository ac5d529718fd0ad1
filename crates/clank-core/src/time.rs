//! Wall-clock timestamps as plain data (the planner is handed `now`, it never reads a clock),
//! and the calendar arithmetic every crate shares: civil dates ↔ days since the epoch, RFC 3339
//! formatting and parsing, all by hand so no crate needs a date library.

use std::fmt;
use std::time::Duration;

/// Milliseconds since the Unix epoch, UTC. Stored in records and compared by the planner.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The current wall-clock time. Only edges (stores, reconciler, API) call this.
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// An RFC 3339 time (`2024-05-01T12:34:56.123456789Z`, any offset) truncated to the
    /// millisecond. `None` for garbage and for instants before the epoch, which Clank never
    /// stores: Docker writes `0001-01-01T00:00:00Z` for "never" (a container's `FinishedAt`
    /// before it stopped).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let nanos = parse_rfc3339_nanos(s)?;
        if nanos < 0 {
            return None;
        }
        i64::try_from(nanos / 1_000_000).ok().map(Timestamp)
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with millisecond precision, computed without a date library.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(1000);
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar): the date
/// `(year, month, day)` that is `z` days after 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date, the inverse of [`civil_from_days`]
/// (Howard Hinnant's days-from-civil).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of a UTC civil date and time of day.
pub fn unix_seconds(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time (`2024-05-01T12:34:56.123456789Z`,
/// `...+02:00`), exact enough to order objects created in the same millisecond. `None` for
/// anything else.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
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
    let secs = unix_seconds(year, month, day, hour, minute, second) - offset_secs;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp(1_795_305_600_123).to_string(),
            "2026-11-22T00:00:00.123Z"
        );
        assert_eq!(
            Timestamp(951_782_400_000).to_string(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn since_never_goes_negative() {
        assert_eq!(Timestamp(5).since(Timestamp(10)), Duration::ZERO);
        assert_eq!(
            Timestamp(1500).since(Timestamp(500)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn civil_dates_and_days_are_inverse() {
        for days in [-719_468, -1, 0, 1, 11_016, 19_844, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(unix_seconds(2026, 11, 22, 1, 50, 0), 1_795_312_200);
    }

    #[test]
    fn parses_rfc3339_with_nanoseconds_and_offsets() {
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00Z"),
            Some(Timestamp(0))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T12:34:56.123456789Z"),
            Some(Timestamp(1_714_566_896_123))
        );
        assert_eq!(
            parse_rfc3339_nanos("2024-05-01T12:34:56.123456789Z"),
            Some(1_714_566_896_123_456_789)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2024-05-01T14:34:56.5+02:00"),
            Some(Timestamp(1_714_566_896_500))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2000-02-29T00:00:00Z"),
            Some(Timestamp(951_782_400_000))
        );
    }

    #[test]
    fn parse_round_trips_display() {
        for ms in [0, 1, 951_782_400_000, 1_714_566_896_123, 4_102_444_800_000] {
            let shown = Timestamp(ms).to_string();
            assert_eq!(
                Timestamp::parse_rfc3339(&shown),
                Some(Timestamp(ms)),
                "{shown}"
            );
        }
    }

    #[test]
    fn parse_refuses_garbage_and_times_before_the_epoch() {
        for s in [
            "0001-01-01T00:00:00Z",
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:34:56",
            "2024-05-01T12:34:56.Z",
            "2024-05-01T12:34:56Zjunk",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(s), None, "{s:?}");
        }
    }
}
