//! One stream's recorder, sans-IO: the CMAF output's events in (its init sections, segment
//! boundaries and fragments, as they close), file writes out ([`Write`]), for the
//! recording writer to carry out.
//!
//! A recording is one fragmented MP4 file (the init section, then every fragment of every
//! segment, appended) and its journal (see [`super::journal`]). It starts at a publish's
//! first segment. When the publish ends it is parked: a publish of the same stream with the
//! same init section (the same tracks and codec parameters) within `record.gap` continues it
//! after a discontinuity, its fragments moved later in time so that the file's decode times
//! never go back and its first frames are presented after the last ones before it (each
//! publish's timeline starts afresh); otherwise the writer closes it when
//! the gap has passed. A takeover continues it at once. New codec parameters (a new init
//! section) start a new recording: one MP4 file has one `moov`.
//!
//! A recording can also start during a publish ([`Recorder::start`]: at the next segment
//! start, with the init section the output last gave) and stop before its end
//! ([`Recorder::stop`]: closed at once, not parked).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::journal::{Head, Line, State};
use crate::hls::ll_stream::CmafEvent;
use crate::media::frame::Tracks;
use crate::mp4::retime::{TrackClock, fragment_timing, track_clocks};

/// What a recording's writes report back to its recorder: a write failed, and the writer
/// closed the recording as incomplete.
#[derive(Debug, Default)]
pub struct Health {
    failed: AtomicBool,
}

impl Health {
    pub fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// A file operation of a recording, for the writer.
#[derive(Debug)]
pub enum Write {
    /// A new recording: its folder, its media file starting with `init`, its journal
    /// starting with `head` and the init section's line.
    Create {
        head: Head,
        init: Bytes,
        health: Arc<Health>,
    },
    /// Bytes to append to the media file (`pieces`, in order), then `lines` to append to the
    /// journal. `sync`: a segment closed; the writer flushes both files to the disk.
    Append {
        id: Arc<str>,
        pieces: Vec<Bytes>,
        lines: String,
        /// Media time this append completes (a segment's duration), for the catalog.
        completes: u64,
        sync: bool,
    },
    /// The publish ended: the recording waits `record.gap` for a publish that continues it.
    Park(Parked),
    /// The recording is finished.
    Close {
        id: Arc<str>,
        state: State,
        reason: Option<String>,
    },
}

/// A recording whose publish ended, waiting for one to continue it.
#[derive(Debug)]
pub struct Parked {
    /// The stream it records (`app/name`).
    pub stream: String,
    pub id: Arc<str>,
    init: Bytes,
    clocks: Vec<TrackClock>,
    /// Where each track of `clocks` ends, in its timescale.
    ends: Vec<u64>,
    /// Where each track's presentation ends, in its timescale: beyond `ends` when the
    /// publish ended with reordered frames whose neighbours it never sent.
    shown: Vec<i64>,
    len: u64,
    sequence: u32,
    health: Arc<Health>,
}

/// The recording being written.
#[derive(Debug)]
struct Active {
    id: Arc<str>,
    init: Bytes,
    clocks: Vec<TrackClock>,
    ends: Vec<u64>,
    shown: Vec<i64>,
    /// Bytes of the media file so far.
    len: u64,
    /// The stream's target duration, once the output gave it.
    target: Option<u32>,
    /// The last fragment's sequence number.
    sequence: u32,
    /// Decode times of this publish are moved this much later (90 kHz ticks); `None` until
    /// the first fragment of a continuing publish fixes it.
    shift: Option<u64>,
    /// Fragments are rewritten (moved, renumbered): the recording continues another publish.
    rewrite: bool,
    /// A segment is open and has parts in the file.
    segment_parts: u64,
    /// A segment is open (its `segment` line is in `lines`, or written).
    in_segment: bool,
    /// The next segment starts after a discontinuity.
    discontinuity: bool,
    /// Journal lines waiting for the next append.
    lines: String,
    health: Arc<Health>,
}

/// One stream's recorder (kept for the stream's life, across its publishes).
#[derive(Debug)]
pub struct Recorder {
    app: String,
    stream: String,
    /// This publish is recorded.
    wanted: bool,
    /// The publish's tracks, for the head of a recording it starts.
    codecs: Vec<String>,
    tracks: serde_json::Value,
    active: Option<Active>,
    /// A recording this publish may continue, if its init section is the same.
    resume: Option<Parked>,
    /// The init section the output gave last, recorded or not: a recording started during
    /// the publish begins with it.
    last_init: Option<Bytes>,
}

impl Recorder {
    pub fn new(app: &str, stream: &str) -> Recorder {
        Recorder {
            app: app.to_string(),
            stream: stream.to_string(),
            wanted: false,
            codecs: Vec::new(),
            tracks: serde_json::Value::Null,
            active: None,
            resume: None,
            last_init: None,
        }
    }

    /// `app/name`: how parked recordings are found again.
    pub fn stream_path(&self) -> String {
        format!("{}/{}", self.app, self.stream)
    }

    /// A publish starts: `record` says whether it is recorded, `parked` is a recording of
    /// the stream still within its gap (taken from the catalog). A recording a taken-over
    /// publisher was writing is continued the same way.
    pub fn begin(
        &mut self,
        record: bool,
        tracks: &Tracks,
        parked: Option<Parked>,
        out: &mut Vec<Write>,
    ) {
        // A recording this stream was writing, or was about to continue (a takeover before
        // the continuing publish's first init section): the new publish may continue it.
        let mine = self
            .active
            .take()
            .map(|a| self.park(a, out))
            .or_else(|| self.resume.take());
        self.resume = match (mine, parked) {
            (Some(mine), Some(other)) => {
                out.push(close(&other.id, State::Complete, None));
                Some(mine)
            }
            (mine, other) => mine.or(other),
        };
        self.wanted = record;
        self.codecs = tracks
            .tracks
            .iter()
            .filter_map(|t| Some(t.config.as_ref()?.codec_string().to_string()))
            .collect();
        self.tracks = serde_json::to_value(
            tracks
                .tracks
                .iter()
                .filter_map(|t| Some(t.config.as_ref()?.summary(t.source)))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_default();
        if !record && let Some(old) = self.resume.take() {
            out.push(Write::Park(old));
        }
        self.last_init = None;
    }

    /// Records the rest of the publish from its next segment start on (nothing when it is
    /// recorded already).
    pub fn start(&mut self) {
        self.wanted = true;
    }

    /// Stops recording the publish: the recording is closed at once (its open segment ends
    /// where its last fragment does), not parked for a publish to continue.
    pub fn stop(&mut self, out: &mut Vec<Write>) {
        if let Some(a) = self.active.take() {
            let closed = self.park(a, out);
            out.push(close(
                &closed.id,
                State::Complete,
                Some("the recording was stopped by the server's operator"),
            ));
        }
        if let Some(old) = self.resume.take() {
            out.push(Write::Park(old));
        }
        self.wanted = false;
    }

    /// Whether the publish is being recorded (or will be, from its next segment start).
    pub fn is_wanted(&self) -> bool {
        self.wanted
    }

    /// The publish ended: its recording is parked for `record.gap`.
    pub fn end(&mut self, out: &mut Vec<Write>) {
        if let Some(a) = self.active.take() {
            let parked = self.park(a, out);
            out.push(Write::Park(parked));
        }
        if let Some(old) = self.resume.take() {
            out.push(Write::Park(old));
        }
        self.wanted = false;
    }

    /// The id of the recording being written, if any.
    pub fn recording_id(&self) -> Option<Arc<str>> {
        self.active.as_ref().map(|a| a.id.clone())
    }

    /// Takes one event of the CMAF output. `now` dates a recording it starts.
    pub fn push(&mut self, event: &CmafEvent, now: SystemTime, out: &mut Vec<Write>) {
        if self.active.as_ref().is_some_and(|a| a.health.failed()) {
            // The writer closed it; nothing more is recorded until the next publish.
            self.active = None;
            self.wanted = false;
        }
        if let CmafEvent::Init(init) = event {
            self.last_init = Some(init.clone());
        }
        if !self.wanted {
            return;
        }
        match event {
            CmafEvent::Init(init) => self.init(init, now, out),
            CmafEvent::SegmentStart { discontinuity, .. } => {
                // Started during the publish: the recording begins here.
                if self.active.is_none()
                    && let Some(init) = self.last_init.clone()
                {
                    self.init(&init, now, out);
                }
                let Some(a) = self.active.as_mut() else {
                    return;
                };
                if a.in_segment {
                    end_segment(a, None, out);
                }
                a.in_segment = true;
                let discontinuity = std::mem::take(&mut a.discontinuity) || *discontinuity;
                a.lines.push_str(&Line::Segment { discontinuity }.to_text());
            }
            CmafEvent::Part { data, duration, .. } => {
                let Some(a) = self.active.as_mut() else {
                    return;
                };
                if !a.in_segment {
                    return;
                }
                if let Err(why) = part(a, data, duration.ticks(), out) {
                    let id = a.id.clone();
                    self.active = None;
                    self.wanted = false;
                    out.push(close(&id, State::Incomplete, Some(why)));
                }
            }
            CmafEvent::SegmentEnd {
                duration,
                target_duration,
            } => {
                if let Some(a) = self.active.as_mut().filter(|a| a.in_segment) {
                    a.target = Some(*target_duration);
                    end_segment(a, Some(duration.ticks()), out);
                }
            }
        }
    }

    fn init(&mut self, init: &Bytes, now: SystemTime, out: &mut Vec<Write>) {
        if let Some(a) = &self.active {
            if a.init == *init {
                return;
            }
            // New codec parameters: one MP4 file has one moov.
            let a = self.active.take().expect("checked");
            let parked = self.park(a, out);
            out.push(close(
                &parked.id,
                State::Complete,
                Some("the codec parameters changed: the stream continues in a new recording"),
            ));
        }
        let Ok(clocks) = track_clocks(init) else {
            tracing::warn!(stream = %self.stream, "recording not started: its init section does not read back");
            return;
        };
        if let Some(p) = self.resume.take() {
            if p.init == *init && !p.health.failed() {
                self.active = Some(Active {
                    id: p.id,
                    init: p.init,
                    clocks: p.clocks,
                    ends: p.ends,
                    shown: p.shown,
                    len: p.len,
                    sequence: p.sequence,
                    shift: None,
                    rewrite: true,
                    segment_parts: 0,
                    target: None,
                    in_segment: false,
                    discontinuity: true,
                    lines: String::new(),
                    health: p.health,
                });
                return;
            }
            out.push(close(&p.id, State::Complete, None));
        }
        let started_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let id: Arc<str> = recording_id(&self.stream, now).into();
        let health = Arc::new(Health::default());
        out.push(Write::Create {
            head: Head {
                id: id.to_string(),
                app: self.app.clone(),
                stream: self.stream.clone(),
                started_ms,
                codecs: self.codecs.clone(),
                tracks: self.tracks.clone(),
            },
            init: init.clone(),
            health: health.clone(),
        });
        self.active = Some(Active {
            id,
            init: init.clone(),
            ends: vec![0; clocks.len()],
            shown: vec![0; clocks.len()],
            clocks,
            len: init.len() as u64,
            sequence: 0,
            shift: Some(0),
            rewrite: false,
            segment_parts: 0,
            target: None,
            in_segment: false,
            discontinuity: false,
            lines: String::new(),
            health,
        });
    }

    /// Ends `a`'s open segment and hands it over for a later publish to continue.
    fn park(&self, mut a: Active, out: &mut Vec<Write>) -> Parked {
        if a.in_segment {
            end_segment(&mut a, None, out);
        }
        Parked {
            stream: self.stream_path(),
            id: a.id,
            init: a.init,
            clocks: a.clocks,
            ends: a.ends,
            shown: a.shown,
            len: a.len,
            sequence: a.sequence,
            health: a.health,
        }
    }

    /// The stream is gone (its outputs end): its recording is parked, as at a publish's end.
    pub fn finish(&mut self, out: &mut Vec<Write>) {
        self.end(out);
    }
}

fn close(id: &Arc<str>, state: State, reason: Option<&str>) -> Write {
    Write::Close {
        id: id.clone(),
        state,
        reason: reason.map(str::to_string),
    }
}

/// Closes the open segment: `duration` as the output gave it, or the sum of its parts'
/// when it was cut short (a takeover, a publish's end without the output's segment end).
fn end_segment(a: &mut Active, duration: Option<u64>, out: &mut Vec<Write>) {
    a.in_segment = false;
    let parts = std::mem::take(&mut a.segment_parts);
    if parts == 0 {
        // A segment line without parts: the journal reader skips it.
        a.lines.clear();
        return;
    }
    let duration = duration.unwrap_or(parts);
    let target = a.target;
    a.lines
        .push_str(&Line::SegmentEnd { duration, target }.to_text());
    out.push(Write::Append {
        id: a.id.clone(),
        pieces: Vec::new(),
        lines: std::mem::take(&mut a.lines),
        completes: duration,
        sync: true,
    });
}

/// Appends a fragment: moved and renumbered when the recording continues another publish.
fn part(
    a: &mut Active,
    data: &Bytes,
    duration: u64,
    out: &mut Vec<Write>,
) -> Result<(), &'static str> {
    let timing =
        fragment_timing(data).map_err(|_| "a fragment of the output does not read back")?;
    let clock = |id: u32| a.clocks.iter().position(|c| c.track_id == id);
    let shift = match a.shift {
        Some(s) => s,
        None => {
            // The first fragment of a continuing publish: it starts where the recording's
            // longest track ends, both in decode and in presentation order (a publish cut
            // off mid-GOP presents a frame after its last decode time; the next publish's
            // first frames must not be presented at the same time).
            // Every track of the fragment counts: audio may start a little before the video
            // keyframe that opens the segment.
            let mut decoded = i128::MAX;
            let mut shown = i128::MAX;
            for t in &timing.tracks {
                let c = a.clocks[clock(t.track_id).ok_or("a fragment of an unknown track")?];
                decoded = decoded.min(i128::from(to_90k(t.decode_time, c.timescale)));
                shown = shown.min(to_90k_signed(t.presentation_start, c.timescale, false));
            }
            if timing.tracks.is_empty() {
                return Err("a fragment without tracks");
            }
            let ends = a.clocks.iter().zip(&a.ends);
            let end = ends
                .map(|(c, &e)| i128::from(to_90k(e, c.timescale)))
                .max()
                .unwrap_or(0);
            let shown_end = a
                .clocks
                .iter()
                .zip(&a.shown)
                .map(|(c, &e)| to_90k_signed(e, c.timescale, true))
                .max()
                .unwrap_or(0);
            let s = (end - decoded).max(shown_end - shown).max(0);
            let s = u64::try_from(s).map_err(|_| "a continuing publish too far in time")?;
            a.shift = Some(s);
            s
        }
    };
    let in_track = |id: u32| {
        clock(id).map_or(0, |i| {
            (u128::from(shift) * u128::from(a.clocks[i].timescale)).div_ceil(90_000) as u64
        })
    };
    for t in &timing.tracks {
        if let Some(i) = clock(t.track_id) {
            let moved = in_track(t.track_id);
            a.ends[i] = a.ends[i].max(t.end().saturating_add(moved));
            let moved = i64::try_from(moved).unwrap_or(i64::MAX);
            a.shown[i] = a.shown[i].max(t.presentation_end.saturating_add(moved));
        }
    }
    // Sequence numbers increase through the file (ISO/IEC 14496-12 §8.8.5): the output's
    // own until the recording continues another publish, then counted on from there.
    a.sequence = match timing.sequence(data) {
        Some(n) if !a.rewrite => n,
        _ => a.sequence.wrapping_add(1),
    };
    let pieces = if a.rewrite {
        timing
            .moved(data, in_track, a.sequence)
            .map_err(|_| "a moved fragment does not fit its tfdt")?
            .to_vec()
    } else {
        vec![data.clone()]
    };
    let len = data.len() as u64;
    a.lines.push_str(
        &Line::Part {
            at: a.len,
            len,
            duration,
        }
        .to_text(),
    );
    a.len += len;
    a.segment_parts += duration;
    out.push(Write::Append {
        id: a.id.clone(),
        pieces,
        lines: std::mem::take(&mut a.lines),
        completes: 0,
        sync: false,
    });
    Ok(())
}

fn to_90k(ticks: u64, timescale: u32) -> u64 {
    (u128::from(ticks) * 90_000 / u128::from(timescale.max(1))) as u64
}

/// [`to_90k`] of a time that may be negative, rounded down (`up` false: a start) or up (an
/// end), so that a shift computed from them never lets two times overlap.
fn to_90k_signed(ticks: i64, timescale: u32, up: bool) -> i128 {
    let scaled = i128::from(ticks) * 90_000;
    let scale = i128::from(timescale.max(1));
    if up {
        -((-scaled).div_euclid(scale))
    } else {
        scaled.div_euclid(scale)
    }
}

/// A recording's id: the stream's name and the UTC time it started, to the millisecond
/// (`name_20261205T120501.123Z`); made of the characters stream names are made of.
pub fn recording_id(stream: &str, at: SystemTime) -> String {
    let time = jiff::Timestamp::try_from(at)
        .map(|t| t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string())
        .unwrap_or_else(|_| "0".into());
    format!("{stream}_{time}")
}

/// Longest recording id: a stream name and its time.
pub const MAX_ID_LEN: usize = crate::hub::key::MAX_KEY_LEN + 24;

/// Whether `id` has the shape of a recording id: what a request may name. Ids are looked up
/// in the catalog, never joined to a path unchecked.
pub fn is_recording_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('.')
        && id.bytes().all(crate::hub::key::is_key_byte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Duration90k;
    use crate::mp4::retime::fragment_timing;
    use crate::mp4::{
        SampleEntry, SampleInfo, TrackConfig, TrackId, TrackRun, write_fragment, write_init,
    };
    use bytes::BytesMut;

    const ASC: [u8; 2] = [0x11, 0x90];

    fn init(rate: u32) -> Bytes {
        let mut out = BytesMut::new();
        let track = TrackConfig {
            id: TrackId::new(1).unwrap(),
            timescale: rate,
            entry: SampleEntry::Aac {
                sample_rate: rate,
                channels: 2,
                config: Bytes::from_static(&ASC),
            },
        };
        write_init(&[track], &mut out).unwrap();
        out.freeze()
    }

    /// A fragment of `count` 1024-sample frames starting at `start`.
    fn fragment(sequence: u32, start: u64, count: usize) -> Bytes {
        let samples = vec![
            SampleInfo {
                duration: 1024,
                size: 2,
                sync: true,
                composition_offset: 0,
            };
            count
        ];
        let runs = [TrackRun {
            track: TrackId::new(1).unwrap(),
            base_decode_time: start,
            samples: &samples,
        }];
        let payloads = vec![&[1u8, 2][..]; count];
        let mut out = BytesMut::new();
        write_fragment(sequence, &runs, &payloads, &mut out).unwrap();
        out.freeze()
    }

    fn tracks() -> Tracks {
        Tracks {
            publisher: 1,
            tracks: Vec::new(),
        }
    }

    fn part(data: Bytes) -> CmafEvent {
        CmafEvent::Part {
            data,
            duration: Duration90k(1920 * 10),
            independent: true,
        }
    }

    fn start() -> CmafEvent {
        CmafEvent::SegmentStart {
            discontinuity: false,
            independent: true,
        }
    }

    fn segment_end() -> CmafEvent {
        CmafEvent::SegmentEnd {
            duration: Duration90k(1920 * 20),
            target_duration: 1,
        }
    }

    /// A publish of two segments of two parts, from decode time `from`.
    fn publish(r: &mut Recorder, init_rate: u32, from: u64, out: &mut Vec<Write>) {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        r.push(&CmafEvent::Init(init(init_rate)), now, out);
        // A part before any segment start is not recorded.
        r.push(&part(fragment(1, from, 10)), now, out);
        for s in 0..2u64 {
            r.push(&start(), now, out);
            for p in 0..2u64 {
                let at = from + (s * 2 + p) * 10_240;
                r.push(&part(fragment((s * 2 + p) as u32 + 2, at, 10)), now, out);
            }
            r.push(&segment_end(), now, out);
        }
    }

    fn appended(out: &[Write]) -> Vec<Bytes> {
        out.iter()
            .filter_map(|w| match w {
                Write::Append { pieces, .. } if !pieces.is_empty() => Some(
                    pieces
                        .iter()
                        .flat_map(|p| p.to_vec())
                        .collect::<Vec<u8>>()
                        .into(),
                ),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_publish_is_one_recording_of_whole_segments_then_parked() {
        let mut r = Recorder::new("live", "k");
        let mut out = Vec::new();
        r.begin(true, &tracks(), None, &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        assert!(
            matches!(&out[0], Write::Create { head, .. } if head.id.starts_with("k_20270115T"))
        );
        assert_eq!(
            appended(&out).len(),
            4,
            "four parts, none before the first segment"
        );
        let syncs = out
            .iter()
            .filter(|w| matches!(w, Write::Append { sync: true, .. }))
            .count();
        assert_eq!(syncs, 2, "a flush at each segment end");
        out.clear();
        r.end(&mut out);
        assert!(matches!(&out[..], [Write::Park(p)] if p.stream == "live/k"));
    }

    /// A recorder after one recorded publish, and the recording it parked.
    fn after_one_publish() -> (Recorder, Parked) {
        let mut r = Recorder::new("live", "k");
        let mut out = Vec::new();
        r.begin(true, &tracks(), None, &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        r.end(&mut out);
        let Some(Write::Park(parked)) = out.pop() else {
            panic!("parked")
        };
        (r, parked)
    }

    #[test]
    fn a_publish_within_the_gap_continues_later_in_time() {
        let (mut r, parked) = after_one_publish();
        let mut out = Vec::new();
        // The next publish's timeline starts afresh, at 0 again.
        r.begin(true, &tracks(), Some(parked), &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        assert!(!out.iter().any(|w| matches!(w, Write::Create { .. })));
        let lines: String = out
            .iter()
            .filter_map(|w| match w {
                Write::Append { lines, .. } => Some(lines.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            lines.starts_with(r#"{"segment":{"discontinuity":true}}"#),
            "{lines}"
        );
        let first = fragment_timing(&appended(&out)[0]).unwrap();
        assert_eq!(
            first.tracks[0].decode_time,
            4 * 10_240,
            "after the first publish's end"
        );
        let times: Vec<u64> = appended(&out)
            .iter()
            .map(|f| fragment_timing(f).unwrap().tracks[0].decode_time)
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    }

    #[test]
    fn a_takeover_before_the_first_init_section_still_continues() {
        let (mut r, parked) = after_one_publish();
        let mut out = Vec::new();
        r.begin(true, &tracks(), Some(parked), &mut out);
        // Taken over before its first keyframe: no init section came.
        r.begin(true, &tracks(), None, &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        assert!(
            !out.iter()
                .any(|w| matches!(w, Write::Create { .. } | Write::Close { .. })),
            "{out:?}"
        );
        assert_eq!(appended(&out).len(), 4);
    }

    #[test]
    fn sequence_numbers_increase_through_the_file() {
        // The first publish's fragments were numbered 2 to 5 by the output.
        let (mut r, parked) = after_one_publish();
        let mut out = Vec::new();
        r.begin(true, &tracks(), Some(parked), &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        let numbers: Vec<u32> = appended(&out)
            .iter()
            .map(|f| fragment_timing(f).unwrap().sequence(f).unwrap())
            .collect();
        assert_eq!(numbers, [6, 7, 8, 9]);
    }

    #[test]
    fn new_codec_parameters_start_a_new_recording() {
        let (mut r, parked) = after_one_publish();
        let mut out = Vec::new();
        r.begin(true, &tracks(), Some(parked), &mut out);
        publish(&mut r, 44_100, 0, &mut out);
        assert!(matches!(
            &out[0],
            Write::Close {
                state: State::Complete,
                ..
            }
        ));
        assert!(matches!(&out[1], Write::Create { .. }));
    }

    #[test]
    fn nothing_is_recorded_unasked_or_after_a_failed_write() {
        let mut r = Recorder::new("live", "k");
        let mut out = Vec::new();
        r.begin(false, &tracks(), None, &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        assert!(out.is_empty());
        r.begin(true, &tracks(), None, &mut out);
        publish(&mut r, 48_000, 0, &mut out);
        let Some(Write::Create { health, .. }) = out.first() else {
            panic!("created")
        };
        health.fail();
        out.clear();
        publish(&mut r, 48_000, 100_000, &mut out);
        assert!(out.is_empty());
        assert!(r.recording_id().is_none());
    }

    #[test]
    fn a_recording_starts_at_the_next_segment_and_stops_closed() {
        let mut r = Recorder::new("live", "k");
        let mut out = Vec::new();
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        r.begin(false, &tracks(), None, &mut out);
        r.push(&CmafEvent::Init(init(48_000)), now, &mut out);
        r.push(&start(), now, &mut out);
        r.push(&part(fragment(1, 0, 10)), now, &mut out);
        assert!(out.is_empty(), "not recorded");
        r.start();
        // The rest of the open segment is not recorded: a recording starts at a segment.
        r.push(&part(fragment(2, 10_240, 10)), now, &mut out);
        r.push(&segment_end(), now, &mut out);
        assert!(out.is_empty());
        r.push(&start(), now, &mut out);
        r.push(&part(fragment(3, 20_480, 10)), now, &mut out);
        let Some(Write::Create { init: first, .. }) = out.first() else {
            panic!("created at the segment start: {out:?}")
        };
        assert_eq!(*first, init(48_000), "with the output's last init section");
        assert_eq!(appended(&out).len(), 1);
        let id = r.recording_id().expect("recording");
        out.clear();
        r.stop(&mut out);
        assert!(
            matches!(&out[..], [Write::Append { sync: true, .. }, Write::Close { id: closed, state: State::Complete, .. }] if *closed == id),
            "the open segment ends and the recording closes: {out:?}"
        );
        assert!(!r.is_wanted());
        out.clear();
        r.push(&part(fragment(4, 30_720, 10)), now, &mut out);
        r.push(&start(), now, &mut out);
        assert!(out.is_empty(), "nothing after the stop");
        r.end(&mut out);
        assert!(out.is_empty(), "nothing parked");
    }

    /// A fragment of track 1 from `start`: frames 3000 ticks apart, presented at their
    /// decode time plus `offsets`.
    fn fragment_shown(start: u64, offsets: &[i32]) -> Bytes {
        let samples: Vec<SampleInfo> = offsets
            .iter()
            .map(|&composition_offset| SampleInfo {
                duration: 3000,
                size: 1,
                sync: true,
                composition_offset,
            })
            .collect();
        let run = TrackRun {
            track: TrackId::new(1).unwrap(),
            base_decode_time: start,
            samples: &samples,
        };
        let mut out = BytesMut::new();
        write_fragment(1, &[run], &vec![&[0u8][..]; samples.len()], &mut out).unwrap();
        out.freeze()
    }

    /// Publishes `parts` (one segment), and returns the fragments the recorder wrote.
    fn publish_parts(
        r: &mut Recorder,
        init: &Bytes,
        parked: Option<Parked>,
        parts: &[Bytes],
    ) -> (Vec<Bytes>, Option<Parked>) {
        let tracks = Tracks {
            publisher: 0,
            tracks: Vec::new(),
        };
        let mut out = Vec::new();
        r.begin(true, &tracks, parked, &mut out);
        let now = SystemTime::now();
        r.push(&CmafEvent::Init(init.clone()), now, &mut out);
        let start = CmafEvent::SegmentStart {
            discontinuity: false,
            independent: true,
        };
        r.push(&start, now, &mut out);
        for data in parts {
            let part = CmafEvent::Part {
                data: data.clone(),
                duration: Duration90k(9000),
                independent: true,
            };
            r.push(&part, now, &mut out);
        }
        r.end(&mut out);
        let mut written = Vec::new();
        let mut parked = None;
        for w in out {
            match w {
                Write::Append { pieces, .. } if !pieces.is_empty() => {
                    written.push(pieces.concat().into());
                }
                Write::Park(p) => parked = Some(p),
                _ => {}
            }
        }
        (written, parked)
    }

    #[test]
    fn a_continuing_publish_is_presented_after_the_frames_of_the_one_before() {
        let config = TrackConfig {
            id: TrackId::new(1).unwrap(),
            timescale: 90_000,
            entry: SampleEntry::Aac {
                sample_rate: 48_000,
                channels: 2,
                config: Bytes::from_static(&[0x11, 0x90]),
            },
        };
        let mut init = BytesMut::new();
        write_init(&[config], &mut init).unwrap();
        let init = init.freeze();
        let mut r = Recorder::new("live", "cam");
        // I P B, decoded at 0, 3000, 6000 and presented at 3000, 12 000, 6000: the publish
        // was cut before the second B (presented at 9000), so its P frame is presented
        // until 15 000, 6000 ticks after its decode times end.
        let (_, parked) =
            publish_parts(&mut r, &init, None, &[fragment_shown(0, &[3000, 9000, 0])]);
        // The next publish starts afresh: I P B B from 0.
        let again = fragment_shown(0, &[3000, 9000, 0, 0]);
        let (written, _) = publish_parts(&mut r, &init, parked, &[again]);
        let moved = fragment_timing(&written[0]).unwrap().tracks[0];
        // Its decode times follow the first publish's (9000), and its first frame is
        // presented once the first publish's last one is done (15 000), not with it
        // (12 000).
        assert_eq!(moved.decode_time, 12_000);
        assert_eq!(moved.presentation_start, 15_000);
    }
}
