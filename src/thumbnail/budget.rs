//! The CPU budget of thumbnail work: a token bucket of CPU seconds, filled at a share of one
//! core (`thumbnail.cpu`) and drawn on by the CPU time each job took on its worker thread.
//! A job starts only while the bucket is not in debt; one that costs more than the bucket
//! holds leaves it in debt, and the next waits until the refill has paid it off.
//!
//! Sans-IO: the caller passes the clock and the measured CPU times.

use std::time::{Duration, Instant};

/// The bucket holds this many seconds of refill: work may come in a burst of that much CPU
/// (with the default 0.25 of a core, two seconds of CPU: a dozen 1080p pictures) after a
/// quiet spell, and no more.
pub const BURST: Duration = Duration::from_secs(8);

/// A token bucket of CPU seconds.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Seconds of CPU per second: the share of one core.
    rate: f64,
    /// Most seconds of CPU held.
    capacity: f64,
    /// Seconds of CPU held now (negative: in debt).
    level: f64,
    at: Instant,
}

impl Budget {
    /// A full bucket refilled at `share` of one core (above 0).
    pub fn new(share: f64, now: Instant) -> Budget {
        let capacity = share * BURST.as_secs_f64();
        Budget {
            rate: share,
            capacity,
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.rate).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Whether a job may start now.
    pub fn allows(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level > 0.0
    }

    /// A job took `cpu` of CPU time.
    pub fn charge(&mut self, cpu: Duration, now: Instant) {
        self.refill(now);
        self.level -= cpu.as_secs_f64();
    }

    /// How long until a job may start (zero: now).
    pub fn retry_after(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.level > 0.0 {
            Duration::ZERO
        } else {
            // Strictly positive: the level must rise above zero, not to it.
            Duration::from_secs_f64(-self.level / self.rate) + Duration::from_millis(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_share_of_a_core() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut b = Budget::new(0.25, t0);
        // Two seconds of CPU held: five 450 ms jobs start, the fifth overdrawing.
        for _ in 0..5 {
            assert!(b.allows(t0));
            b.charge(Duration::from_millis(450), t0);
        }
        assert!(!b.allows(t0));
        // 0.25 s in debt at 0.25 s per second: a second.
        let wait = b.retry_after(t0);
        assert!(
            wait > Duration::from_millis(999) && wait < Duration::from_millis(1002),
            "{wait:?}"
        );
        assert!(!b.allows(at(990)));
        assert!(b.allows(at(1010)));
        // Refill stops at the burst.
        assert!(b.allows(at(1_000_000)));
        b.charge(Duration::from_millis(2_001), at(1_000_000));
        assert!(!b.allows(at(1_000_000)));
    }

    #[test]
    fn a_clock_going_back_does_not_refill() {
        let t0 = Instant::now();
        let mut b = Budget::new(0.5, t0 + Duration::from_secs(1));
        b.charge(Duration::from_secs(5), t0 + Duration::from_secs(1));
        assert!(!b.allows(t0));
        assert!(b.retry_after(t0) > Duration::from_secs(1));
    }
}
