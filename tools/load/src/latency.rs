//! Latency histograms that many viewers fill at once: log-linear buckets (values kept to
//! within 1/64 of themselves, microsecond resolution below 64 µs) over atomic counters, so
//! a thousand viewers record into one histogram per figure without a lock or a sample list,
//! and the memory is the same for a minute's run as for a day's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two: 2^6, so a bucket is at most 1/64 of its values wide.
const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_BITS;

/// Largest value kept apart, in µs: 2^37 µs is 38 hours; longer waits share the top bucket.
const MAX_EXPONENT: u32 = 37;

/// Buckets: the exact ones below [`SUB_BUCKETS`] µs, then [`SUB_BUCKETS`] per power of two
/// up to [`MAX_EXPONENT`].
const BUCKETS: usize = ((MAX_EXPONENT - SUB_BUCKET_BITS + 2) as usize) * SUB_BUCKETS as usize;

/// A histogram of durations.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < SUB_BUCKETS {
        return us as usize;
    }
    let exponent = (63 - us.leading_zeros()).min(MAX_EXPONENT);
    let shift = exponent - SUB_BUCKET_BITS;
    let mantissa = (us >> shift).min(2 * SUB_BUCKETS - 1) - SUB_BUCKETS;
    (SUB_BUCKETS + u64::from(shift) * SUB_BUCKETS + mantissa) as usize
}

/// The largest value, in µs, that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
    let mantissa = (index - SUB_BUCKETS) % SUB_BUCKETS;
    ((SUB_BUCKETS + mantissa + 1) << shift) - 1
}

/// A histogram read out: how many values, and some of their quantiles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latencies {
    pub count: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LatencyHistogram {
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// The count, p50, p90 and p99 (each the top of the bucket the quantile falls in, at most the
    /// largest value) and the exact largest value. Read once the recording has ended.
    pub fn latencies(&self) -> Latencies {
        let count = self.count.load(Ordering::Relaxed);
        let max_us = self.max_us.load(Ordering::Relaxed);
        let quantile = |q: f64| {
            if count == 0 {
                return Duration::ZERO;
            }
            let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
            let mut seen = 0;
            for (i, b) in self.buckets.iter().enumerate() {
                seen += b.load(Ordering::Relaxed);
                if seen >= rank {
                    return Duration::from_micros(upper_bound(i).min(max_us));
                }
            }
            Duration::from_micros(max_us)
        };
        Latencies {
            count,
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            max: Duration::from_micros(max_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_a_sixty_fourth() {
        for us in (0..200_000u64).chain([1 << 36, (1 << 37) + 5]) {
            let b = bucket(us);
            assert!(b < BUCKETS, "{us}");
            assert!(upper_bound(b) >= us, "{us} above its bucket {b}");
            let lower = if b == 0 { 0 } else { upper_bound(b - 1) + 1 };
            assert!(lower <= us, "{us} below its bucket {b}");
            assert!(
                upper_bound(b) - lower <= lower / 64 + 1,
                "{us}: bucket too wide"
            );
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_of_known_values() {
        let h = LatencyHistogram::default();
        assert_eq!(h.latencies(), Latencies::default());
        // 1..=100 ms: p50 is 50 ms, p99 99 ms, each to within 1/64.
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.latencies();
        assert_eq!(l.count, 100);
        assert_eq!(l.max, Duration::from_millis(100));
        let near = |d: Duration, ms: u64| {
            let us = d.as_micros() as u64;
            us >= ms * 1000 && us <= ms * 1000 + ms * 1000 / 64
        };
        assert!(near(l.p50, 50), "{l:?}");
        assert!(near(l.p90, 90), "{l:?}");
        assert!(near(l.p99, 99), "{l:?}");
        // A quantile never passes the largest value.
        let one = LatencyHistogram::default();
        one.record(Duration::from_micros(100_001));
        assert_eq!(one.latencies().p99, Duration::from_micros(100_001));
    }
}
