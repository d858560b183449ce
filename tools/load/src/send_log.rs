//! When each video frame of one stream left its publisher: the link between a part a viewer
//! fetches and the moment its last frame was sent, for the part latency figures. The
//! publisher records, viewers of the same stream look up; both in this process, on one
//! clock.
//!
//! The server places a publish's first frame at [`LINE_START`] on its 90 kHz line and the
//! others at their FLV millisecond timestamps from there (`hls::timeline`), so a part's
//! last video decode time maps back to the timestamp the publisher sent it with.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use rtmp_server::hls::timeline::LINE_START;

/// Frames remembered per stream: about 68 s of 60 fps video. A viewer looks a part up
/// within a second or two of its frames being sent; older ones are forgotten so the log
/// stays the same size however long the run.
pub const MAX_FRAMES: usize = 4096;

/// Ticks of the server's 90 kHz line per FLV millisecond.
const TICKS_PER_MS: u64 = 90;

/// What the log knows about a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The frame with that timestamp went out at this instant.
    At(Instant),
    /// No video frame with that timestamp is in the log (never sent, or forgotten).
    Unknown,
}

/// One stream's video frames and when they went out, oldest first.
#[derive(Debug)]
pub struct SendLog {
    /// Timestamp (ms) of the stream's first audio or video frame: the one the server puts
    /// at [`LINE_START`].
    origin_ms: u64,
    frames: Mutex<VecDeque<(u64, Instant)>>,
}

impl SendLog {
    pub fn new(origin_ms: u64) -> SendLog {
        SendLog {
            origin_ms,
            frames: Mutex::new(VecDeque::with_capacity(MAX_FRAMES)),
        }
    }

    /// Notes that the video frames stamped `timestamps_ms` (increasing) were written at
    /// `at`.
    pub fn record(&self, timestamps_ms: &[u64], at: Instant) {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        for &ms in timestamps_ms {
            if frames.len() == MAX_FRAMES {
                frames.pop_front();
            }
            frames.push_back((ms, at));
        }
    }

    /// When the video frame stamped `ms` was sent.
    pub fn sent(&self, ms: u64) -> Sent {
        let frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        match frames.binary_search_by_key(&ms, |&(t, _)| t) {
            Ok(i) => Sent::At(frames[i].1),
            Err(_) => Sent::Unknown,
        }
    }

    /// The FLV timestamp of the frame the server decodes at `decode_90k` on its line:
    /// `None` before the line starts. Rounded to the millisecond, since the server moves a
    /// repeated decode time on by a tick.
    pub fn timestamp_of(&self, decode_90k: u64) -> Option<u64> {
        let since = decode_90k.checked_sub(LINE_START.0)?;
        Some(self.origin_ms + (since + TICKS_PER_MS / 2) / TICKS_PER_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_part_maps_back_to_the_send_of_its_last_frame() {
        let start = Instant::now();
        let log = SendLog::new(0);
        log.record(&[0, 33], start);
        log.record(&[67], start + Duration::from_millis(67));
        // 67 ms after the line's start, and a tick later (a repeated decode time moved on).
        assert_eq!(log.timestamp_of(LINE_START.0 + 67 * 90), Some(67));
        assert_eq!(log.timestamp_of(LINE_START.0 + 67 * 90 + 1), Some(67));
        assert_eq!(log.timestamp_of(LINE_START.0 - 1), None);
        assert_eq!(log.sent(67), Sent::At(start + Duration::from_millis(67)));
        assert_eq!(log.sent(33), Sent::At(start));
        assert_eq!(log.sent(50), Sent::Unknown);
        // A stream whose first frame is stamped 1 000 ms.
        assert_eq!(
            SendLog::new(1000).timestamp_of(LINE_START.0 + 90),
            Some(1001)
        );
    }

    #[test]
    fn the_oldest_frames_are_forgotten() {
        let at = Instant::now();
        let log = SendLog::new(0);
        let timestamps: Vec<u64> = (0..MAX_FRAMES as u64 + 2).collect();
        log.record(&timestamps, at);
        assert_eq!(log.sent(0), Sent::Unknown);
        assert_eq!(log.sent(1), Sent::Unknown);
        assert_eq!(log.sent(2), Sent::At(at));
        assert_eq!(log.sent(MAX_FRAMES as u64 + 1), Sent::At(at));
        assert_eq!(log.frames.lock().expect("lock").len(), MAX_FRAMES);
    }
}
