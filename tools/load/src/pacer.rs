//! Real-time pacing, as `ffmpeg -re` paces: a tag stamped `t` ms into the stream is due `t`
//! ms after the stream's clock started; how late tags go out is the stream's lag.

use std::time::{Duration, Instant};

/// One stream's clock.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    max_lag: Duration,
    /// When the last tag went out, since `start`.
    last_sent: Duration,
}

impl Pacer {
    pub fn new(start: Instant) -> Pacer {
        Pacer {
            start,
            max_lag: Duration::ZERO,
            last_sent: Duration::ZERO,
        }
    }

    /// When the tag at `media_ms` is due.
    pub fn due(&self, media_ms: u64) -> Instant {
        self.start + Duration::from_millis(media_ms)
    }

    /// Notes that the tag at `media_ms` went out at `now`.
    pub fn sent(&mut self, media_ms: u64, now: Instant) {
        self.max_lag = self
            .max_lag
            .max(now.saturating_duration_since(self.due(media_ms)));
        self.last_sent = now.saturating_duration_since(self.start);
    }

    /// The furthest behind its due time a tag went out.
    pub fn max_lag(&self) -> Duration {
        self.max_lag
    }

    /// Wall time from the start to the last tag sent.
    pub fn wall(&self) -> Duration {
        self.last_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_latest_a_tag_went_out() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        assert_eq!(pacer.due(1500), start + Duration::from_millis(1500));
        pacer.sent(0, start + Duration::from_millis(2));
        pacer.sent(40, start + Duration::from_millis(40));
        // Early (sent before due) counts as no lag.
        pacer.sent(100, start + Duration::from_millis(90));
        assert_eq!(pacer.max_lag(), Duration::from_millis(2));
        pacer.sent(120, start + Duration::from_millis(180));
        assert_eq!(pacer.max_lag(), Duration::from_millis(60));
        pacer.sent(200, start + Duration::from_millis(200));
        assert_eq!(pacer.max_lag(), Duration::from_millis(60));
        assert_eq!(pacer.wall(), Duration::from_millis(200));
    }
}
