//! A bounded history of samples, oldest first: what the stats API's graphs are drawn from
//! (a stream's ingest bit rate, the server's figures), sampled at a fixed interval.

use std::collections::VecDeque;
use std::time::Duration;

/// How often histories are sampled.
pub const INTERVAL: Duration = Duration::from_secs(2);

/// Samples kept per history: five minutes at [`INTERVAL`].
pub const SAMPLES: usize = 150;

/// The last `capacity` samples pushed, oldest first. Memory is fixed by the capacity
/// whatever the number of pushes.
#[derive(Clone, Debug)]
pub struct History<T> {
    samples: VecDeque<T>,
    capacity: usize,
}

impl<T> Default for History<T> {
    fn default() -> History<T> {
        History::new(SAMPLES)
    }
}

impl<T> History<T> {
    /// An empty history of at most `capacity` samples (at least one).
    pub fn new(capacity: usize) -> History<T> {
        let capacity = capacity.max(1);
        History {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds the newest sample, dropping the oldest when full.
    pub fn push(&mut self, sample: T) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The samples, oldest first.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.samples.iter()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

impl<T: Clone> History<T> {
    /// The samples, oldest first, as a vector.
    pub fn to_vec(&self) -> Vec<T> {
        self.samples.iter().cloned().collect()
    }
}

/// A rate in kilobits per second from two readings of a byte counter taken `elapsed`
/// apart; 0 when no time passed or the counter went back (it never does, but a reset
/// must not show as a huge rate).
pub fn kbps(before: u64, after: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    (after.saturating_sub(before) as f64 * 8.0 / 1000.0 / secs).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_samples_oldest_first() {
        let mut h = History::new(3);
        assert!(h.is_empty());
        for i in 1..=2 {
            h.push(i);
        }
        assert_eq!(h.to_vec(), [1, 2]);
        for i in 3..=1000 {
            h.push(i);
        }
        assert_eq!(h.to_vec(), [998, 999, 1000]);
        assert_eq!(h.len(), 3);
        assert_eq!(h.iter().next(), Some(&998));
    }

    #[test]
    fn default_holds_five_minutes_and_a_zero_capacity_holds_one() {
        let mut h = History::default();
        for i in 0..SAMPLES * 3 {
            h.push(i);
        }
        assert_eq!(h.len(), SAMPLES);
        assert_eq!(h.to_vec()[0], SAMPLES * 2);
        assert_eq!(INTERVAL.as_secs() * SAMPLES as u64, 300);
        let mut one = History::new(0);
        one.push('a');
        one.push('b');
        assert_eq!(one.to_vec(), ['b']);
    }

    #[test]
    fn rates_from_counter_readings() {
        // 500,000 bytes in 2 s: 2,000 kbit/s.
        assert_eq!(kbps(1_000, 501_000, Duration::from_secs(2)), 2_000);
        assert_eq!(kbps(10, 5, Duration::from_secs(2)), 0, "a counter reset");
        assert_eq!(kbps(0, 100, Duration::ZERO), 0);
    }
}
