//! How long a relay waits before it tries a target again: 1 s after the first failure,
//! doubling with each failure in a row up to 30 s, each wait jittered by up to a fifth either
//! way (never past 30 s), so that many streams pushing to one target that went away do not
//! come back at the same instant. A connection that stayed up for [`Backoff::MAX`] or longer
//! starts the count afresh.
//!
//! Sans-IO: the randomness is handed in.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Failures in a row.
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Backoff {
        Backoff { failures: 0 }
    }

    /// The wait after one more failure; `random` is uniform in `[0, 1)`.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let base = Backoff::FIRST
            .saturating_mul(1u32 << self.failures.min(16))
            .min(Backoff::MAX);
        self.failures = self.failures.saturating_add(1);
        let factor = 0.8 + 0.4 * random.clamp(0.0, 1.0);
        base.mul_f64(factor).min(Backoff::MAX)
    }

    /// A connection was up for `lasted`: a long one forgets the failures before it.
    pub fn connected_for(&mut self, lasted: Duration) {
        if lasted >= Backoff::MAX {
            self.failures = 0;
        }
    }
}

/// A uniform value in `[0, 1)` from the system's random source (0.5 if it fails: a wait
/// without jitter is still a wait).
pub fn random_unit() -> f64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 4];
    match SystemRandom::new().fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_one_second_to_thirty() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.next_delay(0.5).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_a_fifth_and_under_the_cap() {
        let mut low = Backoff::new();
        let mut high = Backoff::new();
        assert_eq!(low.next_delay(0.0), Duration::from_millis(800));
        let most = high.next_delay(0.999_999);
        assert!(
            most > Duration::from_millis(1_199) && most <= Duration::from_millis(1_200),
            "{most:?}"
        );
        for _ in 0..10 {
            assert!(high.next_delay(0.999_999) <= Backoff::MAX);
        }
        assert_eq!(low.next_delay(0.0), Duration::from_millis(1_600));
        assert!(
            (0..1000)
                .map(|_| random_unit())
                .all(|r| (0.0..1.0).contains(&r))
        );
    }

    #[test]
    fn a_long_connection_starts_afresh_and_a_short_one_does_not() {
        let mut b = Backoff::new();
        for _ in 0..4 {
            b.next_delay(0.5);
        }
        b.connected_for(Duration::from_secs(5));
        assert_eq!(b.next_delay(0.5), Duration::from_secs(16));
        b.connected_for(Backoff::MAX);
        assert_eq!(b.next_delay(0.5), Duration::from_secs(1));
    }
}
