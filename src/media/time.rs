//! The two clocks media passes through: the RTMP/FLV millisecond clock that encoders stamp
//! messages with, and the 90 kHz MPEG system clock that PES timestamps use.
//!
//! Spec: RTMP 1.0 §5.3.1.2 (32-bit millisecond timestamps that wrap), FLV 10.1 §E.4.1
//! (Timestamp + TimestampExtended), ISO/IEC 13818-1 §2.4.3.7 (33-bit PTS/DTS at 90 kHz).

use std::fmt;
use std::ops::{Add, Sub};

/// An RTMP/FLV timestamp: milliseconds on a 32-bit clock that wraps after about 49.7 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RtmpTimestamp(pub u32);

impl RtmpTimestamp {
    /// Signed distance from `earlier` to `self` the short way round the 32-bit clock, in ms.
    ///
    /// Spec: RTMP 1.0 §5.3.1.2: timestamps "wrap around" and a receiver compares them with
    /// serial-number arithmetic (RFC 1982), so a jump of less than 2^31 ms is forward.
    pub fn wrapping_diff(self, earlier: RtmpTimestamp) -> i64 {
        i64::from(self.0.wrapping_sub(earlier.0) as i32)
    }

    /// This timestamp moved forward by `ms`, wrapping.
    pub fn wrapping_add(self, ms: u32) -> RtmpTimestamp {
        RtmpTimestamp(self.0.wrapping_add(ms))
    }
}

impl fmt::Display for RtmpTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A length of time in 90 kHz ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration90k(pub u64);

impl Duration90k {
    /// Ticks per second of the MPEG system clock's 90 kHz base.
    pub const HZ: u64 = 90_000;
    pub const ZERO: Duration90k = Duration90k(0);

    pub fn from_millis(ms: u64) -> Duration90k {
        Duration90k(ms * 90)
    }

    pub fn from_secs_f64(secs: f64) -> Duration90k {
        Duration90k((secs.max(0.0) * Self::HZ as f64).round() as u64)
    }

    pub fn ticks(self) -> u64 {
        self.0
    }

    /// Whole milliseconds, rounded down.
    pub fn as_millis(self) -> u64 {
        self.0 / 90
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / Self::HZ as f64
    }

    pub fn saturating_sub(self, other: Duration90k) -> Duration90k {
        Duration90k(self.0.saturating_sub(other.0))
    }
}

impl Add for Duration90k {
    type Output = Duration90k;
    fn add(self, rhs: Duration90k) -> Duration90k {
        Duration90k(self.0 + rhs.0)
    }
}

impl fmt::Display for Duration90k {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

/// A point on the 90 kHz MPEG system clock, kept monotonic in 64 bits for the life of a
/// stream. The wire carries it modulo 2^33 (see [`Timestamp90k::wire`]); players follow the
/// wrap, so the line never has to restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp90k(pub u64);

impl Timestamp90k {
    /// The PTS/DTS/PCR-base field width: 33 bits (ISO/IEC 13818-1 §2.4.3.7).
    pub const WIRE_MODULUS: u64 = 1 << 33;

    pub fn ticks(self) -> u64 {
        self.0
    }

    /// The 33-bit value written into a PES header or a PCR base.
    pub fn wire(self) -> u64 {
        self.0 & (Self::WIRE_MODULUS - 1)
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp90k) -> Duration90k {
        Duration90k(self.0.saturating_sub(earlier.0))
    }

    /// This point moved back by `d`, stopping at zero.
    pub fn saturating_sub(self, d: Duration90k) -> Timestamp90k {
        Timestamp90k(self.0.saturating_sub(d.0))
    }
}

impl Add<Duration90k> for Timestamp90k {
    type Output = Timestamp90k;
    fn add(self, rhs: Duration90k) -> Timestamp90k {
        Timestamp90k(self.0 + rhs.0)
    }
}

impl Sub for Timestamp90k {
    type Output = Duration90k;
    /// The span from `rhs` to `self`, saturating at zero (timestamps on one line never go
    /// backwards; a caller that can see them do so uses [`Timestamp90k::saturating_since`]
    /// explicitly).
    fn sub(self, rhs: Timestamp90k) -> Duration90k {
        self.saturating_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtmp_diff_follows_the_short_way_round() {
        assert_eq!(RtmpTimestamp(100).wrapping_diff(RtmpTimestamp(40)), 60);
        assert_eq!(RtmpTimestamp(40).wrapping_diff(RtmpTimestamp(100)), -60);
        // Across the 2^32 wrap, forward by 20 ms.
        assert_eq!(
            RtmpTimestamp(10).wrapping_diff(RtmpTimestamp(u32::MAX - 9)),
            20
        );
        assert_eq!(RtmpTimestamp(u32::MAX).wrapping_add(2), RtmpTimestamp(1));
    }

    #[test]
    fn wire_value_is_33_bits() {
        let t = Timestamp90k(Timestamp90k::WIRE_MODULUS + 5);
        assert_eq!(t.wire(), 5);
        assert_eq!(Duration90k::from_millis(2000).ticks(), 180_000);
        assert_eq!(Duration90k(180_090).as_millis(), 2001);
        assert_eq!(Timestamp90k(10) - Timestamp90k(20), Duration90k::ZERO);
    }
}
