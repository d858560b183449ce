//! The output timeline: RTMP millisecond timestamps (one clock for audio and video) mapped
//! onto one monotonic 90 kHz line for PES timestamps and segment times.
//!
//! The line follows the 32-bit wrap of RTMP timestamps. A jump backwards (an encoder that
//! restarted at 0) or far forward is absorbed: the line continues just after the latest
//! point it reached, and the jump is reported so that the next segment carries
//! EXT-X-DISCONTINUITY. Small backward steps are the normal interleaving of audio and video
//! and map as they are.
//!
//! Spec: RTMP 1.0 §5.3.1.2 (32-bit timestamps, serial arithmetic); ISO/IEC 13818-1
//! §2.4.3.7 (PTS/DTS), RFC 8216 §4.3.2.3 (EXT-X-DISCONTINUITY).

use crate::media::{Duration90k, RtmpTimestamp, Timestamp90k};

/// Where the line starts: the first timestamp of a stream maps here. Far enough from zero
/// that a PCR stamped before the first DTS, and audio that interleaves slightly before the
/// first video, stay positive; FFmpeg's MPEG-TS muxer starts at the same 1.4 s.
pub const LINE_START: Timestamp90k = Timestamp90k(126_000);

/// Largest backward step, in ms, taken as interleaving disorder between audio and video
/// rather than a restarted clock. Encoders interleave within a few hundred ms.
pub const REORDER_TOLERANCE_MS: i64 = 1_000;

/// Largest forward step, in ms, taken as a gap in the media rather than a clock jump.
pub const MAX_FORWARD_JUMP_MS: i64 = 10_000;

/// After a jump, the line resumes this long after the latest point it had reached (about
/// one video frame), so that every track stays monotonic.
pub const JUMP_GAP: Duration90k = Duration90k(3_600);

/// Ticks of the 90 kHz clock per RTMP millisecond.
const TICKS_PER_MS: i64 = 90;

/// A timestamp placed on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub time: Timestamp90k,
    /// The source clock jumped at this timestamp.
    pub discontinuity: bool,
}

#[derive(Clone, Copy, Debug)]
struct State {
    last_raw: RtmpTimestamp,
    /// `last_raw` unwrapped to a 64-bit millisecond count.
    last_ms: i64,
    /// Output ticks = ms * 90 + offset.
    offset: i64,
    /// Latest point the line has reached.
    latest: Timestamp90k,
}

/// Maps one stream's RTMP timestamps onto the output line.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    state: Option<State>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline::default()
    }

    /// Places a decoding timestamp on the line.
    pub fn map(&mut self, timestamp: RtmpTimestamp) -> Mapped {
        let Some(state) = self.state.as_mut() else {
            let ms = i64::from(timestamp.0);
            self.state = Some(State {
                last_raw: timestamp,
                last_ms: ms,
                offset: LINE_START.0 as i64 - ms * TICKS_PER_MS,
                latest: LINE_START,
            });
            return Mapped {
                time: LINE_START,
                discontinuity: false,
            };
        };
        let step = timestamp.wrapping_diff(state.last_raw);
        let ms = state.last_ms + step;
        let discontinuity = !(-REORDER_TOLERANCE_MS..=MAX_FORWARD_JUMP_MS).contains(&step);
        if discontinuity {
            state.offset = (state.latest + JUMP_GAP).0 as i64 - ms * TICKS_PER_MS;
        }
        let time = Timestamp90k((ms * TICKS_PER_MS + state.offset).max(0) as u64);
        state.last_raw = timestamp;
        state.last_ms = ms;
        state.latest = state.latest.max(time);
        Mapped {
            time,
            discontinuity,
        }
    }
}

/// Largest CompositionTime taken as it is. Reordering delays are a few frames (B-frame
/// pyramids at low frame rates reach about a second); a larger value is a corrupt or hostile
/// stamp, and taken as it is it would push every later segment's cut points (which allow for
/// the largest reordering seen) out of shape for the rest of the stream.
pub const MAX_COMPOSITION_TIME_MS: i32 = 5_000;

/// PTS = DTS + CompositionTime. A negative CompositionTime (PTS before DTS) cannot be
/// presented and is clamped to 0; one above [`MAX_COMPOSITION_TIME_MS`] is clamped to it.
///
/// Spec: FLV 10.1 §E.4.3.2 (CompositionTime in ms); ISO/IEC 13818-1 §2.4.3.7 (a picture is
/// presented no earlier than it is decoded).
pub fn presentation_time(dts: Timestamp90k, composition_time_ms: i32) -> Timestamp90k {
    let offset = composition_time_ms.clamp(0, MAX_COMPOSITION_TIME_MS) as u64;
    dts + Duration90k::from_millis(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composition_times_are_clamped_to_what_can_be_presented() {
        let dts = Timestamp90k(90_000);
        assert_eq!(presentation_time(dts, 67), Timestamp90k(90_000 + 67 * 90));
        assert_eq!(presentation_time(dts, -40), dts);
        assert_eq!(
            presentation_time(dts, 0x7f_ffff),
            Timestamp90k(90_000 + MAX_COMPOSITION_TIME_MS as u64 * 90)
        );
    }

    fn map_all(timestamps: &[u32]) -> Vec<(u64, bool)> {
        let mut line = Timeline::new();
        timestamps
            .iter()
            .map(|&t| {
                let m = line.map(RtmpTimestamp(t));
                (m.time.0, m.discontinuity)
            })
            .collect()
    }

    #[test]
    fn starts_at_line_start_and_follows_milliseconds() {
        assert_eq!(
            map_all(&[5000, 5033, 5021, 5066]),
            [
                (126_000, false),
                (128_970, false),
                (127_890, false),
                (131_940, false)
            ]
        );
    }

    #[test]
    fn follows_the_32_bit_wrap() {
        let near_end = u32::MAX - 9; // 2^32 - 10 ms
        assert_eq!(
            map_all(&[near_end, u32::MAX, 10, 30]),
            [
                (126_000, false),
                (126_810, false),
                (127_800, false),
                (129_600, false)
            ]
        );
    }

    #[test]
    fn jump_backwards_keeps_the_line_monotonic_and_flags_it() {
        let mapped = map_all(&[3_600_000, 3_600_040, 0, 40]);
        assert_eq!(mapped[1], (126_000 + 3_600, false));
        // The encoder restarted: the line continues one JUMP_GAP after its latest point.
        assert_eq!(mapped[2], (126_000 + 3_600 + JUMP_GAP.0, true));
        assert_eq!(mapped[3], (126_000 + 3_600 + JUMP_GAP.0 + 3_600, false));
    }

    #[test]
    fn interleaving_disorder_is_not_a_jump() {
        let mapped = map_all(&[10_000, 10_900, 9_950]);
        assert_eq!(mapped[2], (126_000 - 4_500, false));
    }

    #[test]
    fn forward_jump_beyond_threshold_is_flagged_and_absorbed() {
        let mapped = map_all(&[0, 40, 40 + 10_000, 40 + 10_000 + 10_001]);
        // 10 s forward is a gap in the media, mapped as is.
        assert_eq!(mapped[2], (126_000 + 3_600 + 900_000, false));
        // More than 10 s is a clock jump.
        assert_eq!(mapped[3], (126_000 + 3_600 + 900_000 + JUMP_GAP.0, true));
    }

    #[test]
    fn composition_time_gives_pts_and_negative_is_clamped() {
        assert_eq!(
            presentation_time(Timestamp90k(126_000), 66),
            Timestamp90k(131_940)
        );
        assert_eq!(
            presentation_time(Timestamp90k(126_000), 0),
            Timestamp90k(126_000)
        );
        assert_eq!(
            presentation_time(Timestamp90k(126_000), -33),
            Timestamp90k(126_000)
        );
    }
}
