//! Wall-clock times as the playlists, the API and the webhooks write them.

use std::time::SystemTime;

/// RFC 3339 in UTC with milliseconds, `2026-11-24T12:00:00.000Z` (also RFC 8216 §4.3.2.6's
/// `date-time-msec` for EXT-X-PROGRAM-DATE-TIME). Empty for a time outside what a
/// timestamp can hold.
pub fn rfc3339_millis(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn milliseconds_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
