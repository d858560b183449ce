//! Where segments are cut, decided from sample times alone (no media bytes), and the
//! EXT-X-TARGETDURATION that every segment of the stream honours.
//!
//! Rules:
//! - With video, nothing is kept before the first keyframe; a segment is cut on a keyframe
//!   once it has reached the segment target (`hls.time`). Audio-only streams cut on time.
//! - A segment lasts from its first PTS to the first PTS of the next segment (the last
//!   segment, to the end of its last sample), so durations add up to the stream's length.
//! - The target duration is fixed for the stream's life. It is given (a value carried over
//!   from an earlier publisher, or `round(max_segment)`), or for audio-only known from the
//!   start, or decided when the first segment closes: `max(ceil(hls.time), round(first))`.
//! - Once it is known, a segment that would reach TD + 0.5 s minus one tick is cut without
//!   a keyframe, so that its EXTINF rounded to the nearest integer never exceeds TD. Such a
//!   segment does not start with a keyframe. Before it is known the first segment is
//!   bounded by `max_segment` or [`FIRST_SEGMENT_CAP_FACTOR`] times `hls.time`.
//! - A hole in the media that the next PTS reveals only once it is past that limit (a gap
//!   in the timestamps, a PTS far ahead) is not counted: the segment lasts as long as its
//!   own samples and the next one is marked as a discontinuity.
//!
//! Spec: RFC 8216 §4.3.3.1 (EXT-X-TARGETDURATION: every EXTINF rounded to the nearest
//! integer is at most it, and it must not change), §4.3.2.1 (EXTINF), §6.2.1 (segments
//! start where the previous one ended); Apple HLS Authoring Specification §1.9-1.10.

use crate::media::{Duration90k, Timestamp90k};

/// In automatic mode, the first segment is cut without a keyframe at this many times
/// `hls.time`: the target duration is not known yet, and an encoder that sends no
/// keyframe must not grow one segment without bound.
pub const FIRST_SEGMENT_CAP_FACTOR: u64 = 6;

/// The longest audio frame a segment cut on time can overshoot by: 1024 samples at 8 kHz.
pub const MAX_AUDIO_FRAME: Duration90k = Duration90k(11_520);

/// Half a second minus one tick: a duration below TD + this rounds to at most TD.
const ROUNDING_MARGIN: Duration90k = Duration90k(Duration90k::HZ / 2 - 1);

/// How to cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// `hls.time`: cut at the first keyframe once a segment is this long.
    pub segment_target: Duration90k,
    /// `hls.max_segment`: no segment longer than this; fixes TD = round(max_segment).
    pub max_segment: Option<Duration90k>,
    /// A target duration carried over from an earlier publisher of the same stream.
    pub target_duration: Option<u32>,
    /// The stream has a video track (cut on keyframes) or is audio-only (cut on time).
    pub has_video: bool,
}

/// What a sample is, as far as cutting goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleKind {
    /// A video access unit a decoder can start at (IDR).
    Keyframe,
    /// Any other video access unit.
    Video,
    /// An audio frame.
    Audio,
}

/// One sample's timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub kind: SampleKind,
    pub pts: Timestamp90k,
    pub dts: Timestamp90k,
    /// How long it plays (for the end of the last segment and for forced cuts).
    pub duration: Duration90k,
    /// The source clock jumped at this sample: the next segment starts a discontinuity.
    pub discontinuity: bool,
}

/// The timing of a closed segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentTiming {
    /// PTS of its first sample.
    pub start: Timestamp90k,
    /// To the next segment's first PTS, or for the last one to the end of its last sample.
    pub duration: Duration90k,
    /// EXT-X-DISCONTINUITY goes before it.
    pub discontinuity: bool,
    /// It starts with a keyframe (or the stream is audio-only).
    pub independent: bool,
    /// The stream's EXT-X-TARGETDURATION.
    pub target_duration: u32,
}

/// What to do with a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Leave it out (video before the first keyframe, audio before the first segment).
    Drop,
    /// Add it to the open segment.
    Append,
    /// Start a new segment with it, after closing the open one (`closed`), if any.
    Start { closed: Option<ClosedSegment> },
}

/// A segment closed by [`Segmenter::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClosedSegment {
    pub timing: SegmentTiming,
    /// It was cut without reaching a keyframe, because it reached the length limit.
    pub forced: bool,
}

/// The segmenter's answer for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub placement: Placement,
    /// Set once per stream, the first time two keyframes are further apart than the
    /// segment target: segments will be longer than `hls.time`.
    pub long_keyframe_interval: Option<Duration90k>,
}

#[derive(Clone, Copy, Debug)]
struct OpenSegment {
    start: Timestamp90k,
    /// Latest end (PTS + duration) of its samples.
    end: Timestamp90k,
    discontinuity: bool,
    independent: bool,
}

/// Decides segment boundaries for one stream.
#[derive(Clone, Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    target_duration: Option<u32>,
    open: Option<OpenSegment>,
    last_keyframe_dts: Option<Timestamp90k>,
    long_keyframe_interval_reported: bool,
    /// The distance between the last two keyframes.
    keyframe_interval: Option<Duration90k>,
    /// The longest distance between two keyframes seen: how far away the next keyframe
    /// can be.
    longest_gop: Duration90k,
    pending_discontinuity: bool,
    /// Largest PTS - DTS seen: how far ahead of its decoding time a later sample can still
    /// be presented (B-frame reordering).
    max_reorder: Duration90k,
    /// An audio-only segmenter that cuts where it is told (see [`Segmenter::follow`]).
    follows: bool,
    /// Where the followed segmenter cut last: the next segment starts at the audio frame
    /// nearest it.
    cut_at: Option<Timestamp90k>,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Segmenter {
        let fixed = config
            .target_duration
            .or_else(|| config.max_segment.map(round_secs));
        let target_duration = match fixed {
            Some(td) => Some(td),
            // Audio cuts on time overshoot the target by at most one frame.
            None if !config.has_video => Some(
                ceil_secs(config.segment_target)
                    .max(round_secs(config.segment_target + MAX_AUDIO_FRAME)),
            ),
            None => None,
        };
        Segmenter {
            config,
            target_duration,
            open: None,
            last_keyframe_dts: None,
            long_keyframe_interval_reported: false,
            keyframe_interval: None,
            longest_gop: Duration90k::ZERO,
            pending_discontinuity: false,
            max_reorder: Duration90k::ZERO,
            follows: false,
            cut_at: None,
        }
    }

    /// Makes an audio-only segmenter cut where another (a video rendition's) does, so that
    /// the audio of an adaptive-bitrate stream has segments at the same media times as its
    /// variants: it cuts at the audio frame nearest each time [`Segmenter::cut_at`] gives,
    /// and on its own only at the length limit. Its target duration is then fixed by its
    /// first segment, as a video stream's is.
    pub fn follow(&mut self) {
        if !self.config.has_video && !self.follows {
            self.follows = true;
            self.target_duration = self
                .config
                .target_duration
                .or_else(|| self.config.max_segment.map(round_secs));
        }
    }

    /// The followed segmenter started a segment at `at` (see [`Segmenter::follow`]).
    pub fn cut_at(&mut self, at: Timestamp90k) {
        if self.follows {
            self.cut_at = Some(at);
        }
    }

    /// The stream's target duration, once known.
    pub fn target_duration(&self) -> Option<u32> {
        self.target_duration
    }

    /// The distance between the last two keyframes, once there were two.
    pub fn keyframe_interval(&self) -> Option<Duration90k> {
        self.keyframe_interval
    }

    /// Places one sample (samples come in decoding order).
    pub fn push(&mut self, sample: &Sample) -> Decision {
        self.pending_discontinuity |= sample.discontinuity;
        // B-frame reordering is a few frames. A presentation time further ahead is one odd
        // frame (its segment is bounded in `close`), and letting it set the reach of every
        // later sample would cut the rest of the stream one frame at a time.
        let reorder = sample.pts.saturating_since(sample.dts);
        if reorder.0 <= self.config.segment_target.0 / 2 {
            self.max_reorder = self.max_reorder.max(reorder);
        }
        let long_keyframe_interval = self.check_keyframe_interval(sample);
        let placement = self.place(sample);
        Decision {
            placement,
            long_keyframe_interval,
        }
    }

    /// How much media the open segment spans so far: from its first PTS to the latest end
    /// of its samples. `None` while no segment is open.
    pub fn open_span(&self) -> Option<Duration90k> {
        self.open.map(|open| open.end.saturating_since(open.start))
    }

    /// The decode time of the keyframe expected to cut the open segment (for an audio-only
    /// stream, of the sample that would): what the output waits for next. The earliest
    /// that could cut, or, for an encoder that put its last two keyframes further apart
    /// than that, where the same interval puts the next one (an encoder's keyframe interval
    /// is mostly steady). `frame`: the stream's frame duration.
    pub fn next_cut(&self, frame: Duration90k) -> Option<Timestamp90k> {
        let open = self.open?;
        if !self.config.has_video {
            return Some(open.start + self.config.segment_target);
        }
        let early = Duration90k(frame.ticks() * 3 / 2) + self.max_reorder;
        let earliest = (open.start + self.config.segment_target).saturating_sub(early);
        let steady = self
            .last_keyframe_dts
            .zip(self.keyframe_interval)
            .map(|(last, interval)| last + interval);
        Some(steady.map_or(earliest, |steady| steady.max(earliest)))
    }

    /// The media breaks at the next place a segment can start: the next keyframe (or, for
    /// audio-only, the next sample) cuts, and that segment starts a discontinuity. For a
    /// change of codec parameters that a new initialization section must carry.
    pub fn mark_discontinuity(&mut self) {
        self.pending_discontinuity = true;
    }

    /// Whether the open segment starts a discontinuity.
    pub fn open_discontinuity(&self) -> bool {
        self.open.is_some_and(|open| open.discontinuity)
    }

    /// Forgets the open segment, so that [`Segmenter::finish`] closes nothing: for a stream
    /// that ends on an error that makes the open segment's media unusable.
    pub fn discard_open(&mut self) {
        self.open = None;
    }

    /// The publisher stopped: closes the open segment, which lasts to the end of its last
    /// sample.
    pub fn finish(&mut self) -> Option<SegmentTiming> {
        let open = self.open.take()?;
        Some(self.close(open, open.end))
    }

    fn check_keyframe_interval(&mut self, sample: &Sample) -> Option<Duration90k> {
        if sample.kind != SampleKind::Keyframe {
            return None;
        }
        let previous = self.last_keyframe_dts.replace(sample.dts)?;
        let interval = sample.dts.saturating_since(previous);
        self.keyframe_interval = Some(interval);
        // Across a clock break the interval means nothing, and one longer than a segment
        // may be is a hole in the media, not how far apart the encoder puts keyframes.
        if !sample.discontinuity && interval <= self.length_limit() {
            self.longest_gop = self.longest_gop.max(interval);
        }
        // The cut rule takes a keyframe within a frame and a half of the target as on it; an
        // interval within the same slack past the target makes segments of about hls.time
        // too, so it is no reason to advise the encoder.
        let slack = Duration90k(sample.duration.ticks() * 3 / 2);
        if interval > self.config.segment_target + slack && !self.long_keyframe_interval_reported {
            self.long_keyframe_interval_reported = true;
            return Some(interval);
        }
        None
    }

    fn place(&mut self, sample: &Sample) -> Placement {
        let Some(open) = self.open else {
            if self.config.has_video && sample.kind != SampleKind::Keyframe {
                return Placement::Drop;
            }
            // Nothing came before the first segment, so there is nothing to break from.
            self.pending_discontinuity = false;
            self.open = Some(OpenSegment::starting_with(sample, false, true));
            return Placement::Start { closed: None };
        };
        let length = sample.pts.saturating_since(open.start);
        // A break in the source clock ends the segment at the first place a new one can
        // start, so EXT-X-DISCONTINUITY marks where the media really breaks.
        // A keyframe within a frame and a half of the target counts as on it: encoders set to
        // "keyframe every 2 s" often produce GOPs a frame short (59 frames at 30 fps, from
        // counting conventions or timestamp rounding), and waiting for the keyframe after it
        // would double every segment.
        let slack = Duration90k(sample.duration.ticks() * 3 / 2);
        let target = self.config.segment_target;
        let jumped = self.pending_discontinuity;
        // A keyframe short of the target still cuts when waiting for the next one could run
        // past the length limit: after a scene-cut keyframe (x264 and most encoders insert
        // one at a scene change and restart their keyframe interval there), the next
        // keyframe is up to a whole interval away, and a segment that waited would be cut
        // without a keyframe.
        let next_too_late = self.target_duration.is_some()
            && self.longest_gop > Duration90k::ZERO
            && length + self.longest_gop + sample.duration > self.length_limit();
        let cut_here = match sample.kind {
            SampleKind::Keyframe => jumped || length + slack >= target || next_too_late,
            SampleKind::Audio if self.follows => {
                // The frame nearest the followed cut: the first that ends past its middle.
                let half = Duration90k(sample.duration.ticks() / 2);
                jumped || self.cut_at.is_some_and(|t| sample.pts + half >= t)
            }
            SampleKind::Audio => !self.config.has_video && (jumped || length >= target),
            SampleKind::Video => false,
        };
        // The next segment starts at this sample's PTS at the latest, and a sample decoded
        // later may be presented up to `max_reorder` after its DTS: cut while even that
        // keeps the segment within the limit.
        let reach = (sample.dts + self.max_reorder).max(sample.pts);
        let forced =
            !cut_here && reach.saturating_since(open.start) + sample.duration > self.length_limit();
        if !(cut_here || forced) {
            let mut grown = open;
            grown.end = grown.end.max(sample.pts + sample.duration);
            self.open = Some(grown);
            return Placement::Append;
        }
        // A segment runs to the next one's first PTS; before a discontinuity the next one is
        // on a new timeline, so it runs to the end of its own media.
        let end = if self.pending_discontinuity {
            open.end
        } else {
            sample.pts
        };
        let timing = self.close(open, end);
        self.cut_at = None;
        let independent = sample.kind == SampleKind::Keyframe || !self.config.has_video;
        let discontinuity = std::mem::take(&mut self.pending_discontinuity);
        self.open = Some(OpenSegment::starting_with(
            sample,
            discontinuity,
            independent,
        ));
        Placement::Start {
            closed: Some(ClosedSegment { timing, forced }),
        }
    }

    /// The longest a segment may grow before it is cut without a keyframe.
    fn length_limit(&self) -> Duration90k {
        let by_td = self
            .target_duration
            .map(|td| Duration90k(u64::from(td) * Duration90k::HZ) + ROUNDING_MARGIN);
        let by_first_cap = match (self.target_duration, self.config.max_segment) {
            (None, None) => Some(Duration90k(
                self.config.segment_target.0 * FIRST_SEGMENT_CAP_FACTOR,
            )),
            _ => None,
        };
        [by_td, self.config.max_segment, by_first_cap]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(Duration90k(u64::MAX))
    }

    fn close(&mut self, open: OpenSegment, end: Timestamp90k) -> SegmentTiming {
        let mut duration = end.saturating_since(open.start);
        let limit = self.length_limit();
        if duration > limit {
            // A hole in the media that the length check could not see coming: a gap in the
            // timestamps (up to the timeline's forward-jump bound), a presentation time far
            // ahead of its decoding time, or one frame whose estimated duration spans a
            // gap. Counting the hole would break the EXTINF bound, so the segment lasts as
            // long as its own samples, within the limit, and the next one is marked
            // discontinuous because its timestamps do not start where this one ends.
            duration = open.end.saturating_since(open.start).min(limit);
            self.pending_discontinuity = true;
        }
        let target_duration = *self
            .target_duration
            .get_or_insert_with(|| ceil_secs(self.config.segment_target).max(round_secs(duration)));
        SegmentTiming {
            start: open.start,
            duration,
            discontinuity: open.discontinuity,
            independent: open.independent,
            target_duration,
        }
    }
}

impl OpenSegment {
    fn starting_with(sample: &Sample, discontinuity: bool, independent: bool) -> OpenSegment {
        OpenSegment {
            start: sample.pts,
            end: sample.pts + sample.duration,
            discontinuity,
            independent,
        }
    }
}

/// Seconds rounded up, at least 1.
fn ceil_secs(d: Duration90k) -> u32 {
    d.0.div_ceil(Duration90k::HZ).max(1) as u32
}

/// Seconds rounded to the nearest integer (halves up), at least 1.
fn round_secs(d: Duration90k) -> u32 {
    ((d.0 + Duration90k::HZ / 2) / Duration90k::HZ).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 90_000;
    /// One frame at 30 fps.
    const FRAME: u64 = 3_000;

    fn config(has_video: bool) -> SegmenterConfig {
        SegmenterConfig {
            segment_target: Duration90k(2 * SECOND),
            max_segment: None,
            target_duration: None,
            has_video,
        }
    }

    fn video(dts: u64, key: bool) -> Sample {
        Sample {
            kind: if key {
                SampleKind::Keyframe
            } else {
                SampleKind::Video
            },
            pts: Timestamp90k(dts),
            dts: Timestamp90k(dts),
            duration: Duration90k(FRAME),
            discontinuity: false,
        }
    }

    /// Runs 30 fps video with a keyframe every `gop` frames from `start`, for `frames`
    /// frames, returning closed segments (plus the final one).
    fn run(segmenter: &mut Segmenter, start: u64, frames: u64, gop: u64) -> Vec<ClosedSegment> {
        let mut closed = run_frames(segmenter, start, frames, gop);
        if let Some(timing) = segmenter.finish() {
            closed.push(ClosedSegment {
                timing,
                forced: false,
            });
        }
        closed
    }

    #[test]
    fn the_next_cut_is_expected_where_the_encoders_keyframe_interval_puts_it() {
        let mut s = Segmenter::new(config(true));
        let frame = Duration90k(FRAME);
        assert_eq!(s.next_cut(frame), None, "no segment open");
        s.push(&video(0, true));
        // One keyframe seen: the earliest that cuts, a frame and a half before 2 s.
        assert_eq!(
            s.next_cut(frame),
            Some(Timestamp90k(2 * SECOND - FRAME * 3 / 2))
        );
        // Keyframes 2.1 s apart: the next one is expected 2.1 s after the last.
        let long = 2 * SECOND + 3 * FRAME;
        for dts in (FRAME..long).step_by(FRAME as usize) {
            s.push(&video(dts, false));
        }
        s.push(&video(long, true));
        assert_eq!(s.next_cut(frame), Some(Timestamp90k(2 * long)));
        // A keyframe sooner than a segment (a scene cut) leaves the earliest.
        for i in 1..11 {
            s.push(&video(long + i * FRAME, false));
        }
        s.push(&video(long + 11 * FRAME, true));
        let open = s.open.expect("a segment open").start;
        assert_eq!(
            s.next_cut(frame),
            Some(open + Duration90k(2 * SECOND - FRAME * 3 / 2))
        );
    }

    #[test]
    fn drops_until_the_first_keyframe_then_cuts_on_keyframes() {
        let mut s = Segmenter::new(config(true));
        assert_eq!(s.push(&video(0, false)).placement, Placement::Drop);
        let mut a = Sample {
            kind: SampleKind::Audio,
            ..video(0, false)
        };
        assert_eq!(s.push(&a).placement, Placement::Drop);
        assert_eq!(
            s.push(&video(FRAME, true)).placement,
            Placement::Start { closed: None }
        );
        a.pts = Timestamp90k(FRAME);
        assert_eq!(s.push(&a).placement, Placement::Append);
        // A keyframe one second in does not cut: the target is 2 s.
        assert_eq!(
            s.push(&video(FRAME + SECOND, true)).placement,
            Placement::Append
        );
        match s.push(&video(FRAME + 2 * SECOND, true)).placement {
            Placement::Start {
                closed: Some(closed),
            } => {
                assert_eq!(closed.timing.start, Timestamp90k(FRAME));
                assert_eq!(closed.timing.duration, Duration90k(2 * SECOND));
                assert_eq!(closed.timing.target_duration, 2);
                assert!(closed.timing.independent && !closed.forced);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_open_span_grows_with_its_samples_and_a_discarded_segment_is_not_closed() {
        let mut s = Segmenter::new(config(true));
        assert_eq!(s.open_span(), None);
        s.push(&video(0, true));
        assert_eq!(s.open_span(), Some(Duration90k(FRAME)));
        s.push(&video(FRAME, false));
        assert_eq!(s.open_span(), Some(Duration90k(2 * FRAME)));
        // Samples at one time (a clock that stands still) add nothing to the span.
        s.push(&video(FRAME, false));
        assert_eq!(s.open_span(), Some(Duration90k(2 * FRAME)));
        s.discard_open();
        assert_eq!(s.open_span(), None);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn durations_run_to_the_next_segments_first_pts() {
        // B-frames: the keyframe's PTS is two frames after its DTS.
        let mut s = Segmenter::new(config(true));
        let mut closed = Vec::new();
        for i in 0..150u64 {
            let dts = i * FRAME;
            let key = i % 60 == 0;
            let pts = dts
                + if key {
                    2 * FRAME
                } else {
                    [FRAME * 3, 0, 0][(i % 3) as usize]
                };
            let sample = Sample {
                kind: if key {
                    SampleKind::Keyframe
                } else {
                    SampleKind::Video
                },
                pts: Timestamp90k(pts),
                dts: Timestamp90k(dts),
                duration: Duration90k(FRAME),
                discontinuity: false,
            };
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        let last = s.finish().unwrap();
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].start, Timestamp90k(2 * FRAME));
        assert_eq!(closed[0].duration, Duration90k(2 * SECOND));
        assert_eq!(closed[1].start, Timestamp90k(2 * SECOND + 2 * FRAME));
        // The last segment ends with its latest-presented frame.
        assert_eq!(last.start, Timestamp90k(4 * SECOND + 2 * FRAME));
        let end = last.start + last.duration;
        assert_eq!(end, Timestamp90k(151 * FRAME));
    }

    #[test]
    fn audio_only_cuts_on_time_with_td_known_from_the_start() {
        let mut s = Segmenter::new(config(false));
        assert_eq!(s.target_duration(), Some(2));
        let frame = 1_920; // 1024 samples at 48 kHz
        let mut closed = Vec::new();
        for i in 0..300u64 {
            let sample = Sample {
                kind: SampleKind::Audio,
                pts: Timestamp90k(i * frame),
                dts: Timestamp90k(i * frame),
                duration: Duration90k(frame),
                discontinuity: false,
            };
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        // The first frame at or after 2 s is frame 94 (180_480 ticks).
        assert_eq!(closed[0].duration, Duration90k(94 * frame));
        assert!(
            closed
                .iter()
                .all(|c| c.independent && c.target_duration == 2)
        );
        let starts: Vec<u64> = closed.iter().map(|c| c.start.0).collect();
        assert_eq!(starts[..3], [0, 94 * frame, 188 * frame]);
    }

    #[test]
    fn target_duration_from_the_first_segment_in_auto_mode() {
        // A 3 s GOP with a 2 s target: TD = max(ceil 2, round 3) = 3.
        let mut s = Segmenter::new(config(true));
        let closed = run(&mut s, 0, 360, 90);
        assert!(closed.iter().all(|c| c.timing.target_duration == 3));
        assert!(closed.iter().all(|c| !c.forced));
        assert_eq!(closed[0].timing.duration, Duration90k(3 * SECOND));
    }

    #[test]
    fn long_keyframe_interval_is_reported_once() {
        let mut s = Segmenter::new(config(true));
        let mut reports = Vec::new();
        for i in 0..400u64 {
            if let Some(interval) = s
                .push(&video(i * FRAME, i % 90 == 0))
                .long_keyframe_interval
            {
                reports.push(interval);
            }
        }
        assert_eq!(reports, [Duration90k(3 * SECOND)]);
    }

    #[test]
    fn an_interval_the_cut_rule_accepts_is_not_reported() {
        // 2.006 s between keyframes against hls.time = 2: cut there, no advice.
        let mut s = Segmenter::new(config(true));
        let gop = 2 * SECOND + 540;
        let mut cuts = 0;
        for k in 0..5u64 {
            for f in 0..60u64 {
                let d = s.push(&video(k * gop + f * FRAME, f == 0));
                assert_eq!(d.long_keyframe_interval, None, "keyframe {k}");
                cuts += usize::from(matches!(d.placement, Placement::Start { closed: Some(_) }));
            }
        }
        assert_eq!(cuts, 4, "every keyframe cuts");
        // A frame and a half past the target is still fine; two frames are not.
        let mut s = Segmenter::new(config(true));
        s.push(&video(0, true));
        let d = s.push(&video(2 * SECOND + FRAME * 3 / 2, true));
        assert_eq!(d.long_keyframe_interval, None);
        let d = s.push(&video(4 * SECOND + 2 * FRAME + FRAME * 3 / 2 + 1, true));
        assert!(d.long_keyframe_interval.is_some());
    }

    #[test]
    fn forced_cut_keeps_rounded_extinf_within_td() {
        // Keyframes every 2 s for the first segment, then none: TD = 2 and later segments
        // are cut before they reach 2.5 s.
        let mut s = Segmenter::new(config(true));
        let mut closed = Vec::new();
        for i in 0..400u64 {
            let d = s.push(&video(i * FRAME, i == 0 || i == 60));
            if let Placement::Start { closed: Some(c) } = d.placement {
                closed.push(c);
            }
        }
        assert_eq!(closed[0].timing.target_duration, 2);
        assert!(!closed[0].forced);
        let forced: Vec<_> = closed[1..].iter().collect();
        assert!(!forced.is_empty());
        for c in &forced {
            assert!(c.forced);
            assert!(
                c.timing.duration <= Duration90k(2 * SECOND + SECOND / 2 - 1),
                "{c:?}"
            );
            assert_eq!(round_secs(c.timing.duration), 2);
        }
        // The segment after a forced cut does not start with a keyframe.
        assert!(closed[1].timing.independent);
        assert!(!closed[2].timing.independent);
    }

    #[test]
    fn forced_cut_with_b_frames_stays_within_td() {
        // TD fixed at 1, one keyframe only; P-frames are presented 3 frames after their
        // DTS, B-frames right away, so PTS jumps ahead of the decoding order.
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(1),
            ..config(true)
        });
        let mut closed = Vec::new();
        for i in 0..300u64 {
            let dts = i * FRAME;
            let reorder = match i % 3 {
                0 if i == 0 => 2 * FRAME,
                0 => 3 * FRAME,
                _ => FRAME,
            };
            let sample = Sample {
                pts: Timestamp90k(dts + reorder),
                ..video(dts, i == 0)
            };
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c);
            }
        }
        assert!(closed.len() >= 5);
        for c in &closed {
            assert!(c.forced);
            assert!(
                c.timing.duration < Duration90k(SECOND + SECOND / 2),
                "{c:?}"
            );
        }
    }

    #[test]
    fn first_segment_is_capped_in_auto_mode() {
        let mut s = Segmenter::new(config(true));
        let closed = run(&mut s, 0, 400, 10_000);
        // No second keyframe: cut at 6 x 2 s, TD from that length.
        assert!(closed[0].forced);
        assert!(closed[0].timing.duration <= Duration90k(12 * SECOND));
        assert_eq!(closed[0].timing.target_duration, 12);
    }

    #[test]
    fn max_segment_fixes_td_and_bounds_segments() {
        let mut s = Segmenter::new(SegmenterConfig {
            max_segment: Some(Duration90k(4 * SECOND)),
            ..config(true)
        });
        assert_eq!(s.target_duration(), Some(4));
        let closed = run(&mut s, 0, 900, 300); // 10 s GOP
        for c in &closed[..closed.len() - 1] {
            assert!(c.timing.duration <= Duration90k(4 * SECOND), "{c:?}");
            assert_eq!(c.timing.target_duration, 4);
        }
        assert!(closed[0].forced);
    }

    #[test]
    fn carried_over_td_wins() {
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(6),
            ..config(true)
        });
        let closed = run(&mut s, 0, 300, 60);
        assert!(closed.iter().all(|c| c.timing.target_duration == 6));
        let mut audio = Segmenter::new(SegmenterConfig {
            target_duration: Some(6),
            ..config(false)
        });
        assert_eq!(audio.target_duration(), Some(6));
        assert_eq!(audio.finish(), None);
    }

    #[test]
    fn a_clock_break_cuts_at_the_next_keyframe_and_ends_the_segment_with_its_media() {
        let mut s = Segmenter::new(config(true));
        // One second of video, then an encoder restart: a keyframe on a new timeline 40 ms
        // on, flagged as a discontinuity. The open segment is shorter than the target.
        let d = run_frames(&mut s, 0, 30, 60);
        assert!(d.is_empty());
        let mut restart = video(30 * FRAME + 3_600, true);
        restart.discontinuity = true;
        let Placement::Start { closed: Some(c) } = s.push(&restart).placement else {
            panic!("the restart's keyframe starts a segment");
        };
        assert_eq!(
            c.timing.duration,
            Duration90k(30 * FRAME),
            "ends with its own media"
        );
        assert!(!c.timing.discontinuity);
        let next = s.finish().unwrap();
        assert!(next.discontinuity);
        assert_eq!(next.start, Timestamp90k(30 * FRAME + 3_600));
    }

    /// Pushes `frames` frames of 30 fps video; returns the segments closed on the way.
    fn run_frames(s: &mut Segmenter, start: u64, frames: u64, gop: u64) -> Vec<ClosedSegment> {
        (0..frames)
            .filter_map(
                |i| match s.push(&video(start + i * FRAME, i % gop == 0)).placement {
                    Placement::Start { closed } => closed,
                    _ => None,
                },
            )
            .collect()
    }

    #[test]
    fn a_gop_a_frame_short_of_the_target_still_cuts_at_each_keyframe() {
        // Keyframes every 59 frames at 30 fps (1.967 s) with a 2 s target.
        let mut s = Segmenter::new(config(true));
        let closed = run(&mut s, 0, 59 * 5, 59);
        assert!(closed.len() >= 5, "{closed:?}");
        for c in &closed[..4] {
            assert_eq!(c.timing.duration, Duration90k(59 * FRAME));
            assert!(!c.forced);
        }
        assert_eq!(closed[0].timing.target_duration, 2);
        // Two frames short is a shorter GOP than asked for: segments take two GOPs.
        let mut s = Segmenter::new(config(true));
        let closed = run(&mut s, 0, 58 * 4, 58);
        assert_eq!(closed[0].timing.duration, Duration90k(2 * 58 * FRAME));
    }

    #[test]
    fn a_scene_cut_keyframe_cuts_early_rather_than_force_a_cut_later() {
        // Keyframes every 2 s, plus a scene-cut keyframe at 7 s that restarts the interval:
        // 0, 2, 4, 6, 7, 9, 11. Waiting at 7 s (1 s in) for the keyframe at 9 s would run
        // the segment past 2.5 s.
        let mut s = Segmenter::new(config(true));
        let keyframes = [0, 60, 120, 180, 210, 270, 330];
        let mut closed = Vec::new();
        for i in 0..360u64 {
            let d = s.push(&video(i * FRAME, keyframes.contains(&i)));
            if let Placement::Start { closed: Some(c) } = d.placement {
                closed.push(c);
            }
        }
        let lengths: Vec<u64> = closed
            .iter()
            .map(|c| c.timing.duration.ticks() / FRAME)
            .collect();
        assert_eq!(lengths, [60, 60, 60, 30, 60, 60]);
        assert!(closed.iter().all(|c| !c.forced && c.timing.independent));
    }

    #[test]
    fn discontinuity_marks_the_next_segment() {
        let mut s = Segmenter::new(config(true));
        let mut closed = Vec::new();
        for i in 0..200u64 {
            let mut sample = video(i * FRAME, i % 60 == 0);
            sample.discontinuity = i == 70;
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        let last = s.finish().unwrap();
        // The jump falls in the segment starting at frame 60; the one after it is marked.
        assert!(!closed[0].discontinuity);
        assert!(!closed[1].discontinuity);
        assert!(closed[2].discontinuity);
        assert!(!last.discontinuity);
    }

    /// Every closed segment's EXTINF, rounded to the nearest integer, is within its TD.
    fn assert_within_td(closed: &[SegmentTiming]) {
        for c in closed {
            assert!(round_secs(c.duration) <= c.target_duration, "{c:?}");
        }
    }

    #[test]
    fn timestamp_gap_does_not_stretch_extinf_past_td() {
        // Found by fuzzing the remux pipeline: an 8 s gap (short of the timeline's 10 s
        // jump bound, so not a discontinuity there) before a keyframe made a 9 s segment
        // with TD 2.
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(2),
            ..config(true)
        });
        let mut closed = Vec::new();
        for i in 0..30u64 {
            let d = s.push(&video(i * FRAME, i == 0));
            assert!(!matches!(d.placement, Placement::Start { closed: Some(_) }));
        }
        let after_gap = 29 * FRAME + 8 * SECOND;
        for i in 0..10u64 {
            let sample = video(after_gap + i * FRAME, i == 0);
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        closed.push(s.finish().unwrap());
        assert_eq!(closed.len(), 2);
        // The first segment lasts as long as its 30 frames; the gap is not counted.
        assert_eq!(closed[0].duration, Duration90k(30 * FRAME));
        assert!(!closed[0].discontinuity);
        assert_eq!(closed[1].start, Timestamp90k(after_gap));
        assert!(
            closed[1].discontinuity,
            "the media does not continue at its end"
        );
        assert_within_td(&closed);
    }

    #[test]
    fn presentation_time_far_ahead_does_not_stretch_extinf_past_td() {
        // Found by fuzzing the remux pipeline: a CompositionTime of 0x7fff00 ms (2.3 h) on
        // one frame closed the segment at that frame's PTS.
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(2),
            ..config(true)
        });
        let mut closed = Vec::new();
        for i in 0..20u64 {
            let mut sample = video(i * FRAME, i == 0);
            if i == 10 {
                sample.pts = Timestamp90k(sample.dts.0 + 0x7f_ff00 * 90);
            }
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        closed.push(s.finish().unwrap());
        assert_eq!(closed[0].duration, Duration90k(10 * FRAME));
        assert!(closed[1].discontinuity);
        assert_within_td(&closed);
    }

    #[test]
    fn one_presentation_time_far_ahead_does_not_cut_the_rest_frame_by_frame() {
        // A composition time at the remuxer's 5 s bound on one frame: the frames after it
        // still make 2 s segments.
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(2),
            ..config(true)
        });
        let mut closed = Vec::new();
        for i in 0..600u64 {
            let mut sample = video(i * FRAME, i % 60 == 0);
            if i == 10 {
                sample.pts = Timestamp90k(sample.dts.0 + 5 * SECOND);
            }
            if let Placement::Start { closed: Some(c) } = s.push(&sample).placement {
                closed.push(c.timing);
            }
        }
        closed.push(s.finish().unwrap());
        // The odd frame's own segments, then 2 s ones again.
        assert_eq!(closed.len(), 9, "{closed:?}");
        for c in &closed[2..] {
            assert_eq!(c.duration, Duration90k(2 * SECOND), "{closed:?}");
        }
        assert_within_td(&closed);
    }

    #[test]
    fn a_gap_in_the_timestamps_does_not_shorten_later_segments() {
        // 1 s GOPs, 2 s target: an 8 s hole is not a keyframe interval to plan for.
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration: Some(2),
            ..config(true)
        });
        let mut closed = run_frames(&mut s, 0, 120, 30);
        closed.extend(run_frames(&mut s, 4 * SECOND + 8 * SECOND, 300, 30));
        let after_gap = &closed[2..];
        assert!(after_gap[0].timing.discontinuity, "{closed:?}");
        assert_eq!(after_gap.len(), 4, "{closed:?}");
        for c in after_gap {
            assert_eq!(c.timing.duration, Duration90k(2 * SECOND), "{closed:?}");
        }
    }

    #[test]
    fn finish_bounds_a_frame_whose_duration_spans_a_gap() {
        // Found by fuzzing the remux pipeline: after a gap the remuxer estimates a frame's
        // duration from the gap, and the last segment ran to that frame's end.
        for has_video in [true, false] {
            let mut s = Segmenter::new(SegmenterConfig {
                target_duration: Some(2),
                ..config(has_video)
            });
            let sample = Sample {
                kind: if has_video {
                    SampleKind::Keyframe
                } else {
                    SampleKind::Audio
                },
                duration: Duration90k(9 * SECOND),
                ..video(0, true)
            };
            assert_eq!(s.push(&sample).placement, Placement::Start { closed: None });
            let last = s.finish().unwrap();
            assert_eq!(last.duration, Duration90k(2 * SECOND + SECOND / 2 - 1));
            assert_within_td(&[last]);
        }
    }

    #[test]
    fn rounding_helpers() {
        assert_eq!(ceil_secs(Duration90k(2 * SECOND)), 2);
        assert_eq!(ceil_secs(Duration90k(2 * SECOND + 1)), 3);
        assert_eq!(round_secs(Duration90k(2 * SECOND + SECOND / 2 - 1)), 2);
        assert_eq!(round_secs(Duration90k(2 * SECOND + SECOND / 2)), 3);
        assert_eq!(ceil_secs(Duration90k(0)), 1);
    }
}
