//! Wall-clock times written the way EXT-X-PROGRAM-DATE-TIME needs them: UTC, to the
//! millisecond, `YYYY-MM-DDThh:mm:ss.SSSZ`.
//!
//! Spec: RFC 8216 §4.3.2.6 (`date-time-msec`, an ISO/IEC 8601:2004 date/time "SHOULD
//! indicate a time zone and fractional parts of seconds, to millisecond accuracy").

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MILLIS_PER_DAY: i64 = 86_400_000;

/// 0000-01-01T00:00:00.000Z in milliseconds from the Unix epoch: ISO 8601's four-digit
/// years start here, so earlier clocks are written as this instant.
const EARLIEST_MILLIS: i64 = -62_167_219_200_000;

/// 9999-12-31T23:59:59.999Z in milliseconds from the Unix epoch: the last instant with a
/// four-digit year, so later clocks are written as this instant.
const LATEST_MILLIS: i64 = 253_402_300_799_999;

/// A wall-clock instant that displays as RFC 8216 `date-time-msec` in UTC,
/// e.g. `2023-11-14T22:13:20.000Z`. Times outside years 0000..=9999 are clamped to that
/// range (no real clock is there, and the format has four-digit years).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTimeMsec(pub SystemTime);

impl fmt::Display for DateTimeMsec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = millis_since_epoch(self.0).clamp(EARLIEST_MILLIS, LATEST_MILLIS);
        let days = millis.div_euclid(MILLIS_PER_DAY);
        let in_day = millis.rem_euclid(MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
        )
    }
}

/// Signed milliseconds from the Unix epoch, saturating at the ends of `i64`.
fn millis_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => saturating_millis(after),
        // Before the epoch: round towards the past so the fraction is still right.
        Err(before) => {
            let d = before.duration();
            let whole = saturating_millis(d);
            let ceil = if d.subsec_nanos() % 1_000_000 == 0 {
                whole
            } else {
                whole.saturating_add(1)
            };
            -ceil
        }
    }
}

fn saturating_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of a day number counted from
/// 1970-01-01. Howard Hinnant's `civil_from_days`: the year is shifted to start on March 1
/// so the leap day is the last day of the shifted year, and 400-year eras repeat exactly.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    /// Days from 0000-03-01 to 1970-01-01.
    const EPOCH_SHIFT: i64 = 719_468;
    /// Days in a 400-year Gregorian era.
    const DAYS_PER_ERA: i64 = 146_097;

    let z = days + EPOCH_SHIFT;
    let era = z.div_euclid(DAYS_PER_ERA);
    let day_of_era = z.rem_euclid(DAYS_PER_ERA); // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // 0..=399
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // 0..=365
    let shifted_month = (5 * day_of_year + 2) / 153; // 0..=11, March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_millis(ms: i64) -> String {
        let t = if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        };
        DateTimeMsec(t).to_string()
    }

    #[test]
    fn known_instants() {
        assert_eq!(at_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at_millis(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        assert_eq!(at_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at_millis(1_735_689_599_999), "2024-12-31T23:59:59.999Z");
        // 2100 is not a leap year: the day after 2100-02-28 is 2100-03-01.
        assert_eq!(at_millis(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(at_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(at_millis(EARLIEST_MILLIS), "0000-01-01T00:00:00.000Z");
        assert_eq!(at_millis(LATEST_MILLIS), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn sub_millisecond_parts_round_towards_the_past() {
        let after = UNIX_EPOCH + Duration::from_nanos(1_999_999);
        assert_eq!(DateTimeMsec(after).to_string(), "1970-01-01T00:00:00.001Z");
        let before = UNIX_EPOCH - Duration::from_nanos(1);
        assert_eq!(DateTimeMsec(before).to_string(), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn out_of_range_clocks_are_clamped() {
        let far_future = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(
            DateTimeMsec(far_future).to_string(),
            "9999-12-31T23:59:59.999Z"
        );
        let far_past = UNIX_EPOCH - Duration::from_secs(100_000_000_000);
        assert_eq!(
            DateTimeMsec(far_past).to_string(),
            "0000-01-01T00:00:00.000Z"
        );
    }

    /// Walks the calendar one day at a time over every four-digit year and checks the
    /// closed-form conversion against it.
    #[test]
    fn every_day_of_years_0000_to_9999_matches_a_day_by_day_calendar() {
        fn is_leap(y: i64) -> bool {
            (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        }
        fn days_in_month(y: i64, m: i64) -> i64 {
            match m {
                2 if is_leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            }
        }
        let first_day = EARLIEST_MILLIS / MILLIS_PER_DAY;
        let last_day = LATEST_MILLIS / MILLIS_PER_DAY;
        let (mut y, mut m, mut d) = (0, 1, 1);
        for day in first_day..=last_day {
            assert_eq!(civil_from_days(day), (y, m, d), "day number {day}");
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
        assert_eq!((y, m, d), (10_000, 1, 1));
    }
}
