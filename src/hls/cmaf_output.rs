//! The CMAF HLS output, sans-IO: a stream's [`MediaEvent`]s in, fragmented-MP4 initialization
//! sections, parts and segment boundaries out ([`CmafEvent`]s, which the Low-Latency window in
//! `hls::ll_stream` names, lists and serves as `llhls.m3u8`).
//!
//! Segments are cut where the classic output cuts them (the same [`Segmenter`] rules: on a
//! keyframe once `hls.time` is reached), so a player that does not know Low-Latency HLS plays
//! `llhls.m3u8` as a normal live playlist. Each segment is a run of parts of about `hls.part`:
//! one `moof`+`mdat` fragment each, with a `traf` per track that has samples in it. A part
//! closes on the frame of the lead track (video, or audio in an audio-only stream) that
//! brings it nearest the part target, the moment that frame arrives: waiting for the next
//! frame would add a frame's time to every part's latency. That last frame's duration is the
//! frame rate's; the next part's decode time is where its first frame really is.
//!
//! Timing: video on the stream's 90 kHz line (decode time from DTS, per-sample durations from
//! the next sample's DTS, signed composition offsets in a version 1 `trun`, so B-frames play
//! without an edit list); audio on its sample rate, counted in whole frames so that parts
//! join without gaps, re-anchored to the frames' timestamps when they drift apart by more
//! than [`MAX_AUDIO_DRIFT`]. A codec change starts a new initialization section and a
//! segment with a discontinuity at the next keyframe.
//!
//! Spec: ISO/IEC 23000-19 (CMAF fragments and headers); ISO/IEC 14496-12 §8.8 (movie
//! fragments); RFC 8216bis §3.1.2 (fMP4 segments), §4.4.4.9 (Partial Segments), §4.4.3.7
//! (Part Target Duration).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::hls::buffer_pool::PART_BUFFERS;
use crate::hls::ll_stream::CmafEvent;
use crate::hls::segmenter::{Placement, Sample, SampleKind, Segmenter, SegmenterConfig};
use crate::hls::ts_output::SegmentRules;
use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::frame::{Ending, Frame, MediaEvent, TrackId, Tracks};
use crate::media::{Duration90k, Timestamp90k};
use crate::mp4::{self, Mp4Error, SampleEntry, SampleInfo, TrackConfig, TrackRun};

/// The video timescale: the stream's 90 kHz line, so decode times are the DTS as it is.
const VIDEO_TIMESCALE: u32 = 90_000;

/// How far the counted audio clock may drift from the frames' own timestamps before it is
/// re-anchored to them: two AAC frames at 48 kHz. RTMP stamps audio to the millisecond, so
/// a steady encoder stays within one.
pub const MAX_AUDIO_DRIFT: Duration90k = Duration90k(3_840);

/// Most payload bytes a part gathers before it closes whatever its length: 80 Mbit/s for
/// 0.2 s, above any live ingest. Until a part closes, its frames are slices of the
/// publisher's messages, each a small allocation of its own; an encoder whose timestamps
/// stand still would otherwise pile them up until the demuxer's byte-rate check ends it.
pub const MAX_PART_BYTES: usize = 2 * 1024 * 1024;

/// What the CMAF output reports besides its media.
#[derive(Clone, Debug)]
pub enum CmafAdvice {
    /// Keyframes are further apart than the segment target allows.
    LongKeyframeInterval { interval: Duration90k },
    /// A segment was cut without a keyframe because it reached its length limit.
    ForcedCut { length: Duration90k },
}

/// One stream's CMAF output, across its publishers.
pub struct CmafOutput {
    rules: SegmentRules,
    part_target: Duration90k,
    /// EXT-X-TARGETDURATION once a segment fixed it (it holds for the stream's life).
    target_duration: Option<u32>,
    /// The next fragment's sequence number (`mfhd`): increasing over the stream's life.
    sequence: u32,
    publish: Option<Publish>,
    /// An audio-only publish cuts where it is told (an adaptive-bitrate stream's audio
    /// rendition, following its video renditions' cuts).
    follows: bool,
}

/// The output for the current publisher.
struct Publish {
    tracks: Vec<TrackState>,
    lead: Option<TrackId>,
    segmenter: Segmenter,
    /// The initialization section no longer matches the tracks' configurations: a new one
    /// goes out at the next segment start.
    init_stale: bool,
    /// A segment is open (parts go into it).
    segment_open: bool,
    part: OpenPart,
    /// Where the last part closed on the lead track, and the lead track's latest frame
    /// duration (for when the next part is due).
    last_part_end: Option<Timestamp90k>,
    lead_frame_duration: Duration90k,
}

struct TrackState {
    kind: TrackKind,
    config: Option<Arc<CodecConfig>>,
    timescale: u32,
    /// Audio: the decode time of the next frame, counted in samples.
    audio_clock: Option<u64>,
    run: Run,
}

/// One track's samples in the open part.
#[derive(Default)]
struct Run {
    base_decode_time: u64,
    samples: Vec<SampleInfo>,
    /// The samples' bytes, copied in as they come (capacity reused from part to part):
    /// holding the frames themselves would hold the whole read buffers of the messages they
    /// are slices of until the part closes.
    payload: BytesMut,
    /// Decode time of the last sample, in the track's timescale.
    last_decode_time: u64,
}

/// The part being gathered.
#[derive(Default)]
struct OpenPart {
    /// Decode time of its first lead-track sample, and the end of its last.
    start: Option<Timestamp90k>,
    end: Timestamp90k,
    /// It starts with a keyframe of the lead track.
    independent: bool,
    bytes: usize,
}

impl CmafOutput {
    /// `part_target`: `hls.part`, the length parts are cut to.
    pub fn new(rules: SegmentRules, part_target: Duration90k) -> CmafOutput {
        CmafOutput {
            rules,
            part_target,
            target_duration: None,
            sequence: 1,
            publish: None,
            follows: false,
        }
    }

    /// Whether an audio-only publish's segments follow [`CmafOutput::cut_at`] rather than
    /// cut on their own (from the next publish on).
    pub fn set_following(&mut self, follows: bool) {
        self.follows = follows;
    }

    /// The video this output's audio goes with started a segment at `at` (presentation
    /// time): the next audio segment starts at the frame nearest it.
    pub fn cut_at(&mut self, at: Timestamp90k) {
        if let Some(p) = self.publish.as_mut() {
            p.segmenter.cut_at(at);
        }
    }

    /// Takes one event of the stream; what it makes goes to `out`, advice to `advice`.
    pub fn push(
        &mut self,
        event: &MediaEvent,
        out: &mut Vec<CmafEvent>,
        advice: &mut Vec<CmafAdvice>,
    ) -> Result<(), Mp4Error> {
        match event {
            MediaEvent::Start(tracks) => {
                // A publisher still open was taken over: the window closes the segment it
                // had listed parts of; the part not yet out is dropped.
                self.publish = Some(self.start(tracks));
                Ok(())
            }
            MediaEvent::Config(track, config) => {
                if let Some(p) = self.publish.as_mut()
                    && let Some(t) = p.tracks.get_mut(usize::from(track.0))
                {
                    let changed = t.config.as_ref() != Some(config);
                    t.config = Some(config.clone());
                    if changed && p.segment_open {
                        p.init_stale = true;
                        p.segmenter.mark_discontinuity();
                    }
                }
                Ok(())
            }
            MediaEvent::Frame(frame) => self.frame(frame, out, advice),
            MediaEvent::End(Ending::Stopped) => self.finish(out),
            MediaEvent::End(Ending::Broken) => {
                self.publish = None;
                Ok(())
            }
        }
    }

    /// Payload bytes of the part being gathered (slices of the publisher's messages).
    pub fn open_part_bytes(&self) -> usize {
        self.publish.as_ref().map_or(0, |p| p.part.bytes)
    }

    /// The distance between the encoder's last two keyframes.
    pub fn keyframe_interval(&self) -> Option<Duration90k> {
        self.publish.as_ref()?.segmenter.keyframe_interval()
    }

    /// The decode time of the lead-track frame that will complete the open part (or the next
    /// one): the frame a blocked player waits for.
    pub fn awaited(&self) -> Option<Timestamp90k> {
        let p = self.publish.as_ref()?;
        let start = p.part.start.or(p.last_part_end)?;
        let early = Duration90k(p.lead_frame_duration.ticks() * 3 / 2);
        let part = (start + self.part_target).saturating_sub(early);
        // A segment cut closes the part early.
        let cut = p.segmenter.next_cut(p.lead_frame_duration);
        Some(cut.map_or(part, |cut| cut.min(part)))
    }

    /// Drops the part being gathered: the next part starts afresh (after an error that
    /// leaves it unwritable).
    pub fn discard_part(&mut self) {
        if let Some(p) = self.publish.as_mut() {
            p.clear_part();
        }
    }

    fn start(&self, tracks: &Tracks) -> Publish {
        let mut segmenter = Segmenter::new(SegmenterConfig {
            segment_target: self.rules.segment_target,
            max_segment: self.rules.max_segment,
            target_duration: self.target_duration,
            has_video: tracks.has_video(),
        });
        if self.follows {
            segmenter.follow();
        }
        let states = tracks
            .tracks
            .iter()
            .map(|t| TrackState {
                kind: t.kind,
                config: t.config.clone(),
                timescale: VIDEO_TIMESCALE,
                audio_clock: None,
                run: Run::default(),
            })
            .collect();
        Publish {
            tracks: states,
            lead: tracks.lead(),
            segmenter,
            init_stale: true,
            segment_open: false,
            part: OpenPart::default(),
            last_part_end: None,
            lead_frame_duration: Duration90k::ZERO,
        }
    }

    fn frame(
        &mut self,
        frame: &Frame,
        out: &mut Vec<CmafEvent>,
        advice: &mut Vec<CmafAdvice>,
    ) -> Result<(), Mp4Error> {
        let Some(p) = self.publish.as_mut() else {
            return Ok(());
        };
        let index = usize::from(frame.track.0);
        let Some(track) = p.tracks.get(index) else {
            return Ok(());
        };
        // Nothing is written until every track can be described in the initialization
        // section (a track announced by metadata may send its configuration late).
        if track.config.is_none()
            || (!p.segment_open && p.tracks.iter().any(|t| t.config.is_none()))
        {
            return Ok(());
        }
        let is_video = track.kind == TrackKind::Video;
        let is_lead = Some(frame.track) == p.lead;
        let sample = Sample {
            kind: match (is_video, frame.keyframe) {
                (true, true) => SampleKind::Keyframe,
                (true, false) => SampleKind::Video,
                (false, _) => SampleKind::Audio,
            },
            pts: frame.pts,
            dts: frame.dts,
            duration: frame.duration,
            discontinuity: frame.discontinuity,
        };
        let decision = p.segmenter.push(&sample);
        if let Some(interval) = decision.long_keyframe_interval {
            advice.push(CmafAdvice::LongKeyframeInterval { interval });
        }
        match decision.placement {
            Placement::Drop => return Ok(()),
            Placement::Append => {}
            Placement::Start { closed } => {
                if let Some(closed) = closed {
                    // Samples after the last lead frame (audio interleaved behind it) open the
                    // next segment's first part rather than make a part of their own, unless
                    // the next segment starts a discontinuity: they belong to the timeline
                    // before it, and end the closed segment as a part of their own.
                    if p.part.start.is_some() || p.segmenter.open_discontinuity() {
                        self.sequence = p.close_part(self.sequence, out)?;
                    }
                    if closed.forced {
                        advice.push(CmafAdvice::ForcedCut {
                            length: closed.timing.duration,
                        });
                    }
                    self.target_duration = Some(closed.timing.target_duration);
                    out.push(CmafEvent::SegmentEnd {
                        duration: closed.timing.duration,
                        target_duration: closed.timing.target_duration,
                    });
                }
                if p.init_stale {
                    out.push(CmafEvent::Init(p.init()?));
                    p.init_stale = false;
                    // Samples of the old configuration's timescales are gone with the part.
                    for t in &mut p.tracks {
                        t.timescale = t.timescale();
                        t.audio_clock = None;
                    }
                }
                p.segment_open = true;
                out.push(CmafEvent::SegmentStart {
                    discontinuity: p.segmenter.open_discontinuity(),
                    independent: sample.kind != SampleKind::Video,
                });
            }
        }
        p.append(index, frame);
        if p.part.bytes >= MAX_PART_BYTES {
            self.sequence = p.close_part(self.sequence, out)?;
            return Ok(());
        }
        if is_lead {
            p.lead_frame_duration = frame.duration;
            let part = &mut p.part;
            if part.start.is_none() {
                part.start = Some(frame.dts);
                part.independent = frame.keyframe;
            }
            let start = part.start.unwrap_or(frame.dts);
            // The next frame's decode time, on the millisecond clock publishers stamp with.
            let next = frame.dts + frame.duration;
            part.end = part
                .end
                .max(if is_video { on_millisecond(next) } else { next });
            // Closed on the frame that brings it nearest the target: one more would pass the
            // target by more than half a frame.
            let length = part.end.saturating_since(start);
            if length + Duration90k(frame.duration.ticks() / 2) >= self.part_target {
                self.sequence = p.close_part(self.sequence, out)?;
            }
        }
        Ok(())
    }

    /// The publisher stopped: the last part and the open segment close.
    fn finish(&mut self, out: &mut Vec<CmafEvent>) -> Result<(), Mp4Error> {
        let Some(mut p) = self.publish.take() else {
            return Ok(());
        };
        if !p.segment_open {
            return Ok(());
        }
        self.sequence = p.close_part(self.sequence, out)?;
        if let Some(timing) = p.segmenter.finish() {
            self.target_duration = Some(timing.target_duration);
            out.push(CmafEvent::SegmentEnd {
                duration: timing.duration,
                target_duration: timing.target_duration,
            });
        }
        Ok(())
    }
}

impl TrackState {
    /// Video on the 90 kHz line; audio on its sample rate.
    fn timescale(&self) -> u32 {
        self.config
            .as_deref()
            .and_then(CodecConfig::sample_rate)
            .unwrap_or(VIDEO_TIMESCALE)
    }
}

/// The ISO BMFF sample entry that describes a track of this configuration.
pub fn sample_entry(config: &CodecConfig) -> SampleEntry {
    let size = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    match config {
        CodecConfig::H264(h) => SampleEntry::Avc {
            width: size(h.info.width),
            height: size(h.info.height),
            record: h.record.record().clone(),
        },
        CodecConfig::Aac(a) => SampleEntry::Aac {
            sample_rate: a.config.sampling_frequency,
            channels: u16::from(a.info.channels),
            config: a.raw.clone(),
        },
        CodecConfig::Hevc(h) => SampleEntry::Hevc {
            width: size(h.facts.width),
            height: size(h.facts.height),
            record: h.record.clone(),
        },
        CodecConfig::Av1(a) => SampleEntry::Av1 {
            width: size(a.facts.width),
            height: size(a.facts.height),
            record: a.record.clone(),
        },
        CodecConfig::Vp9(v) => SampleEntry::Vp9 {
            width: size(v.facts.width),
            height: size(v.facts.height),
            record: v.record.clone(),
        },
        CodecConfig::Opus(o) => SampleEntry::Opus {
            channels: u16::from(o.channels),
            dops: o.dops_body(),
        },
        CodecConfig::Flac(f) => SampleEntry::Flac {
            sample_rate: f.sample_rate,
            channels: u16::from(f.channels),
            bits_per_sample: u16::from(f.bits_per_sample),
            metadata: f.dfla_body(),
        },
        CodecConfig::Ac3(a) => SampleEntry::Ac3 {
            eac3: a.eac3,
            sample_rate: a.sample_rate,
            channels: u16::from(a.channels),
            specific: a.specific.clone(),
        },
        CodecConfig::Mp3(m) => SampleEntry::Mp3 {
            sample_rate: m.header.sample_rate,
            channels: u16::from(m.header.channels),
        },
    }
}

impl Publish {
    /// The initialization section for the tracks as they are now.
    fn init(&self) -> Result<Bytes, Mp4Error> {
        let mut configs = Vec::with_capacity(self.tracks.len());
        for (i, t) in self.tracks.iter().enumerate() {
            let Some(config) = t.config.as_deref() else {
                return Err(Mp4Error::Empty {
                    what: "codec configuration",
                });
            };
            let entry = sample_entry(config);
            configs.push(TrackConfig {
                id: mp4_track(i)?,
                timescale: t.timescale(),
                entry,
            });
        }
        let mut out = BytesMut::new();
        mp4::write_init(&configs, &mut out)?;
        Ok(out.freeze())
    }

    /// Adds a frame to its track's run in the open part.
    fn append(&mut self, index: usize, frame: &Frame) {
        let track = &mut self.tracks[index];
        let run = &mut track.run;
        let (decode_time, duration) = match track.kind {
            TrackKind::Video => (frame.dts.ticks(), frame.duration.ticks()),
            TrackKind::Audio => {
                let rate = u64::from(track.timescale);
                // The demuxer checked the frame's header: it says how many samples it has.
                let samples = track
                    .config
                    .as_deref()
                    .and_then(|c| c.frame_samples(&frame.data))
                    .and_then(Result::ok)
                    .map_or(1024, u64::from);
                let stamped = rescale(frame.pts.ticks(), rate);
                let drift = rescale(MAX_AUDIO_DRIFT.ticks(), rate);
                let time = match track.audio_clock {
                    Some(clock) if clock.abs_diff(stamped) <= drift => clock,
                    _ => stamped,
                };
                track.audio_clock = Some(time + samples);
                (time, samples)
            }
        };
        if let Some(last) = run.samples.last_mut() {
            // The previous sample lasts until this one starts.
            let gap = decode_time.saturating_sub(run.last_decode_time);
            if gap > 0 {
                last.duration = u32::try_from(gap).unwrap_or(u32::MAX);
            }
        } else {
            run.base_decode_time = decode_time;
        }
        run.last_decode_time = decode_time;
        let composition_offset = match track.kind {
            TrackKind::Video => {
                i32::try_from(frame.pts.ticks() as i64 - frame.dts.ticks() as i64).unwrap_or(0)
            }
            TrackKind::Audio => 0,
        };
        run.samples.push(SampleInfo {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            size: u32::try_from(frame.data.len()).unwrap_or(u32::MAX),
            sync: frame.keyframe,
            composition_offset,
        });
        run.payload.extend_from_slice(&frame.data);
        self.part.bytes += frame.data.len();
    }

    /// Writes the open part as one fragment (if it has samples) and starts the next; returns
    /// the next fragment sequence number.
    fn close_part(&mut self, sequence: u32, out: &mut Vec<CmafEvent>) -> Result<u32, Mp4Error> {
        if self.tracks.iter().all(|t| t.run.samples.is_empty()) {
            self.clear_part();
            return Ok(sequence);
        }
        let mut runs = Vec::with_capacity(self.tracks.len());
        let mut samples = 0;
        for (i, t) in self.tracks.iter().enumerate() {
            if t.run.samples.is_empty() {
                continue;
            }
            samples += t.run.samples.len();
            runs.push(TrackRun {
                track: mp4_track(i)?,
                base_decode_time: t.run.base_decode_time,
                samples: &t.run.samples,
            });
        }
        // The header (about 100 bytes a track and 16 a sample), then each run's bytes.
        let mut data = PART_BUFFERS.take_fitting(self.part.bytes + 256 + 16 * samples);
        let written = mp4::write_fragment_header(sequence, &runs, &mut data).map(|_| {
            for t in self.tracks.iter().filter(|t| !t.run.samples.is_empty()) {
                data.extend_from_slice(&t.run.payload);
            }
        });
        drop(runs);
        let duration = self.part_duration();
        let independent = self.part.independent || self.lead_is_audio();
        if self.part.start.is_some() {
            self.last_part_end = Some(self.part.end);
        }
        self.clear_part();
        written?;
        out.push(CmafEvent::Part {
            data: PART_BUFFERS.freeze(data),
            duration,
            independent,
        });
        Ok(sequence.wrapping_add(1).max(1))
    }

    /// The part's length on the lead track. Without lead samples (the audio that follows
    /// the last video frame of a stream), from where the last part ended to where its
    /// samples end.
    fn part_duration(&self) -> Duration90k {
        if let Some(start) = self.part.start {
            return self.part.end.saturating_since(start);
        }
        let runs = self.tracks.iter().filter(|t| !t.run.samples.is_empty());
        let start = runs
            .clone()
            .map(|t| to_90k(t.run.base_decode_time, t.timescale))
            .min()
            .unwrap_or_default();
        let end = runs
            .map(|t| {
                let units: u64 = t.run.samples.iter().map(|s| u64::from(s.duration)).sum();
                to_90k(t.run.base_decode_time + units, t.timescale)
            })
            .max()
            .unwrap_or_default();
        end.saturating_since(self.last_part_end.map_or(start, |last| last.max(start)))
    }

    fn lead_is_audio(&self) -> bool {
        self.lead
            .and_then(|l| self.tracks.get(usize::from(l.0)))
            .is_some_and(|t| t.kind == TrackKind::Audio)
    }

    fn clear_part(&mut self) {
        for t in &mut self.tracks {
            t.run.samples.clear();
            t.run.payload.clear();
        }
        self.part = OpenPart::default();
    }
}

/// `t` rounded to the nearest millisecond: RTMP and FLV stamp frames in milliseconds, so that
/// is where the next frame's decode time will be.
fn on_millisecond(t: Timestamp90k) -> Timestamp90k {
    Timestamp90k((t.ticks() + 45) / 90 * 90)
}

/// The ISO BMFF track ID of the track at `index`: 1-based.
fn mp4_track(index: usize) -> Result<mp4::TrackId, Mp4Error> {
    let too_many = || Mp4Error::TooManyTracks {
        count: index + 1,
        limit: mp4::MAX_TRACKS,
    };
    mp4::TrackId::new(u32::try_from(index + 1).map_err(|_| too_many())?)
}

/// `units` of a clock of `rate` a second on the 90 kHz clock, rounded down.
fn to_90k(units: u64, rate: u32) -> Timestamp90k {
    Timestamp90k((u128::from(units) * u128::from(Duration90k::HZ) / u128::from(rate.max(1))) as u64)
}

/// `ticks` of the 90 kHz clock in units of `rate` a second, rounded to nearest.
fn rescale(ticks: u64, rate: u64) -> u64 {
    ((u128::from(ticks) * u128::from(rate) + u128::from(Duration90k::HZ / 2))
        / u128::from(Duration90k::HZ)) as u64
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use mp4_atom::{Decode, Moof};

    use super::*;
    use crate::flv::demux::{FlvDemuxer, TagKind};
    use crate::flv::file::{FlvFile, FlvItem};
    use crate::hls::ts_output::{TsEvent, TsOutput};

    const PART: Duration90k = Duration90k(18_000);

    /// The media events of a test file, as the demuxer makes them.
    fn events(name: &str) -> Vec<MediaEvent> {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let file = Bytes::from(std::fs::read(path).unwrap());
        let mut demux = FlvDemuxer::new();
        let mut out = Vec::new();
        let now = Instant::now();
        for item in FlvFile::new(file) {
            match item.unwrap() {
                FlvItem::Header(h) => demux.expect_tracks(h.type_flags_video, h.type_flags_audio),
                FlvItem::Tag(tag) => {
                    if let Some(kind) = TagKind::of(tag.tag_type) {
                        demux
                            .push(kind, tag.timestamp, tag.body, now, &mut out)
                            .unwrap();
                    }
                }
            }
        }
        demux.finish(&mut out);
        out.push(MediaEvent::End(Ending::Stopped));
        out
    }

    fn run(events: &[MediaEvent]) -> Vec<CmafEvent> {
        let mut cmaf = CmafOutput::new(SegmentRules::default(), PART);
        let (mut out, mut advice) = (Vec::new(), Vec::new());
        for e in events {
            cmaf.push(e, &mut out, &mut advice).unwrap();
        }
        out
    }

    /// (base decode time, sample durations) per track id, of one part's moof.
    fn runs(part: &[u8]) -> Vec<(u32, u64, Vec<u32>)> {
        let mut buf = part;
        let moof = Moof::decode(&mut buf).unwrap();
        moof.traf
            .iter()
            .map(|traf| {
                let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                let durations = traf.trun[0]
                    .samples
                    .iter()
                    .map(|s| s.duration.unwrap())
                    .collect();
                (traf.tfhd.track_id, tfdt, durations)
            })
            .collect()
    }

    #[test]
    fn segments_are_cut_where_the_ts_output_cuts_them_and_parts_fill_them() {
        for file in ["h264_aac.flv", "video_only.flv", "audio_only.flv"] {
            let events = events(file);
            let mut ts = TsOutput::new(SegmentRules::default(), None);
            let mut made = Vec::new();
            for e in &events {
                ts.push(e, &mut made).unwrap();
            }
            let ts_durations: Vec<_> = made
                .iter()
                .filter_map(|e| match e {
                    TsEvent::Segment(s) => Some(s.duration),
                    _ => None,
                })
                .collect();
            let out = run(&events);
            assert!(matches!(out[0], CmafEvent::Init(_)), "{file}: init first");
            assert_eq!(
                out.iter()
                    .filter(|e| matches!(e, CmafEvent::Init(_)))
                    .count(),
                1,
                "{file}"
            );
            let mut durations = Vec::new();
            let mut parts_in_segment = Vec::new();
            let mut open = false;
            for e in &out[1..] {
                match e {
                    CmafEvent::SegmentStart { independent, .. } => {
                        assert!(!open, "{file}: segments do not nest");
                        assert!(independent, "{file}: every segment starts on a keyframe");
                        open = true;
                        parts_in_segment.clear();
                    }
                    CmafEvent::Part {
                        duration,
                        independent,
                        ..
                    } => {
                        assert!(open, "{file}: parts belong to a segment");
                        if parts_in_segment.is_empty() {
                            assert!(independent, "{file}: a segment's first part is independent");
                        }
                        parts_in_segment.push(*duration);
                    }
                    CmafEvent::SegmentEnd { duration, .. } => {
                        assert!(open);
                        open = false;
                        durations.push(*duration);
                        // All parts but the last are about the part target: within half a
                        // frame (21 ms of audio, 17 ms of 30 fps video).
                        let (last, rest) = parts_in_segment.split_last().unwrap();
                        for d in rest {
                            assert!(d.ticks().abs_diff(PART.ticks()) <= 1_920, "{file}: {d}");
                        }
                        assert!(last.ticks() <= PART.ticks() + 1_920, "{file}: {last}");
                        let sum: u64 = parts_in_segment.iter().map(|d| d.ticks()).sum();
                        // Parts follow decode times, segments presentation times: they agree
                        // but for B-frame reordering at the stream's end (100 ms at most).
                        assert!(
                            sum.abs_diff(duration.ticks()) <= 9_000,
                            "{file}: {sum} vs {duration}"
                        );
                    }
                    CmafEvent::Init(_) => unreachable!(),
                }
            }
            assert!(!open, "{file}: the end closes the last segment");
            assert_eq!(durations, ts_durations, "{file}");
        }
    }

    #[test]
    fn parts_join_without_gaps_on_every_track() {
        let out = run(&events("h264_aac.flv"));
        let mut next: std::collections::HashMap<u32, u64> = Default::default();
        let mut parts = 0;
        for e in &out {
            let CmafEvent::Part { data, .. } = e else {
                continue;
            };
            parts += 1;
            for (track, base, durations) in runs(data) {
                if let Some(expected) = next.get(&track) {
                    // Video: the next part starts where its first frame is (the last
                    // frame's estimated duration may be a tick or so off); audio is counted
                    // in whole frames, so it joins exactly.
                    let slack = if track == 2 { 0 } else { 100 };
                    assert!(
                        base.abs_diff(*expected) <= slack,
                        "track {track}: {base} vs {expected}"
                    );
                }
                let span: u64 = durations.iter().map(|d| u64::from(*d)).sum();
                next.insert(track, base + span);
                if track == 2 {
                    assert!(
                        durations.iter().all(|d| *d == 1024),
                        "AAC frames are 1024 samples"
                    );
                }
            }
        }
        assert!(parts > 40, "{parts} parts in 10 s");
    }

    #[test]
    fn the_awaited_frame_is_never_later_than_the_one_that_closes_a_part() {
        let events = events("h264_aac.flv");
        let mut cmaf = CmafOutput::new(SegmentRules::default(), PART);
        let (mut out, mut advice) = (Vec::new(), Vec::new());
        let mut checked = 0;
        for e in &events {
            let awaited = cmaf.awaited();
            out.clear();
            cmaf.push(e, &mut out, &mut advice).unwrap();
            let closed = out.iter().any(|o| matches!(o, CmafEvent::Part { .. }));
            if let (MediaEvent::Frame(f), true, Some(awaited)) = (e, closed, awaited)
                && f.track == TrackId(0)
            {
                assert!(
                    awaited <= f.dts,
                    "awaited {awaited:?}, closed by {:?}",
                    f.dts
                );
                // And not much earlier: within a frame and a half plus the stream's
                // B-frame reordering (the cut rule allows for both).
                assert!(f.dts.saturating_since(awaited) <= Duration90k(15_000));
                checked += 1;
            }
        }
        assert!(checked > 30, "{checked}");
    }

    #[test]
    fn a_new_configuration_starts_a_new_init_section_and_a_discontinuity() {
        let mut events = events("video_only.flv");
        let at = events
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, MediaEvent::Frame(f) if f.keyframe))
            .map(|(i, _)| i)
            .nth(1)
            .unwrap();
        let MediaEvent::Start(tracks) = &events[0] else {
            panic!()
        };
        let Some(CodecConfig::H264(h)) = tracks.tracks[0].config.as_deref() else {
            panic!()
        };
        let mut changed = h.clone();
        changed.info.width += 16;
        events.insert(
            at,
            MediaEvent::Config(TrackId(0), Arc::new(CodecConfig::H264(changed))),
        );
        let out = run(&events);
        let inits: Vec<_> = out
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, CmafEvent::Init(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(inits.len(), 2);
        assert!(matches!(
            out[inits[1] + 1],
            CmafEvent::SegmentStart {
                discontinuity: true,
                independent: true
            }
        ));
        assert!(matches!(out[inits[1] - 1], CmafEvent::SegmentEnd { .. }));
    }

    /// The media events of a test file sent twice on one connection, the second time with
    /// the clock back at 0 (an encoder that restarted its clock).
    fn restarted(name: &str) -> Vec<MediaEvent> {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let file = Bytes::from(std::fs::read(path).unwrap());
        let mut demux = FlvDemuxer::new();
        let mut out = Vec::new();
        let now = Instant::now();
        for pass in 0..2 {
            for item in FlvFile::new(file.clone()) {
                match item.unwrap() {
                    FlvItem::Header(h) if pass == 0 => {
                        demux.expect_tracks(h.type_flags_video, h.type_flags_audio)
                    }
                    FlvItem::Header(_) => {}
                    FlvItem::Tag(tag) => {
                        if let Some(kind) = TagKind::of(tag.tag_type) {
                            demux
                                .push(kind, tag.timestamp, tag.body, now, &mut out)
                                .unwrap();
                        }
                    }
                }
            }
        }
        demux.finish(&mut out);
        out.push(MediaEvent::End(Ending::Stopped));
        out
    }

    #[test]
    fn a_clock_restart_leaves_the_old_timeline_before_the_discontinuity() {
        let out = run(&restarted("h264_aac.flv"));
        // Audio samples (track 2) on each side of the discontinuity.
        let mut sides = [0usize; 2];
        let mut side = 0;
        for e in &out {
            match e {
                CmafEvent::SegmentStart {
                    discontinuity: true,
                    ..
                } => side += 1,
                CmafEvent::Part { data, .. } => {
                    for (track, _, durations) in runs(data) {
                        if track == 2 {
                            sides[side.min(1)] += durations.len();
                        }
                    }
                }
                _ => {}
            }
        }
        assert_eq!(side, 1, "one discontinuity");
        // The file's 470 AAC frames on each side: the old clock's last frames, which follow
        // its last video frame, end the segment before the discontinuity.
        assert_eq!(sides, [470, 470]);
    }

    #[test]
    fn a_takeover_drops_the_unfinished_part_and_starts_afresh() {
        let events = events("h264_aac.flv");
        let half = events.len() / 2;
        let mut cmaf = CmafOutput::new(SegmentRules::default(), PART);
        let (mut out, mut advice) = (Vec::new(), Vec::new());
        for e in &events[..half] {
            cmaf.push(e, &mut out, &mut advice).unwrap();
        }
        out.clear();
        // The next publisher: the window closes the half-listed segment; this output only
        // starts over, with a new initialization section at its first keyframe.
        cmaf.push(&events[0], &mut out, &mut advice).unwrap();
        assert!(out.is_empty());
        assert_eq!(cmaf.open_part_bytes(), 0);
        for e in &events[1..] {
            cmaf.push(e, &mut out, &mut advice).unwrap();
        }
        assert!(matches!(out[0], CmafEvent::Init(_)));
        assert!(matches!(out[1], CmafEvent::SegmentStart { .. }));
    }
}
