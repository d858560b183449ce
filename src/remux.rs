//! The remux pipeline, sans-IO: FLV tag bodies (RTMP audio/video messages, or tags of an
//! FLV file) in, finished MPEG-TS segments and stream events out. The live ingest and the
//! offline `remux` command share it.
//!
//! Per tag: parse the header (refusing codecs other than H.264 and AAC by name), keep the
//! decoder configurations, place the timestamp on the output timeline, ask the segmenter
//! where the sample goes, and write it with the TS muxer into the open segment's buffer:
//! H.264 access units as Annex B with an AUD (and SPS/PPS in front of IDRs), AAC frames
//! behind ADTS headers, several to a PES.
//!
//! The program's track set (what the PMT lists) is decided once, at the start: from the
//! caller's hint ([`Remuxer::expect_tracks`], e.g. from onMetaData), or as soon as both
//! sequence headers have arrived, or after [`TRACK_PROBE_WINDOW_MS`] of media with only
//! one of them. Media that arrives meanwhile is held, within bounds, and then replayed.
//!
//! Spec: FLV 10.1 annex E; ISO/IEC 13818-1; ISO/IEC 14496-10 Annex B; ISO/IEC 14496-3
//! §1.A.2; RFC 8216 §3.2 (MPEG-2 TS segments), §4.3.3.1 (target duration).

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::FlvError;
use crate::flv::aac::{ADTS_HEADER_SIZE, AdtsConfig, AudioInfo, AudioSpecificConfig};
use crate::flv::avc::{AvcDecoderConfig, VideoInfo, annex_b_pieces, split_avcc};
use crate::flv::file::{FlvFile, FlvItem};
use crate::flv::tag::{AacPacket, AudioTag, AvcPacket, FrameType, TagType, VideoTag};
use crate::hls::buffer_pool::SEGMENT_BUFFERS;
use crate::hls::segment::CompletedSegment;
use crate::hls::segmenter::{
    ClosedSegment, Placement, Sample, SampleKind, SegmentTiming, Segmenter, SegmenterConfig,
};
use crate::hls::timeline::{Timeline, presentation_time};
use crate::media::{Duration90k, RtmpTimestamp, Timestamp90k};
use crate::ts::{Tracks, TsError, TsMuxer};

/// How much media (by timestamps) is held while only one track's configuration has
/// arrived, before deciding that the stream has only that track. Encoders send both
/// sequence headers before the first frames; one second is generous.
pub const TRACK_PROBE_WINDOW_MS: i64 = 1_000;

/// Most tags held while the track set is undecided (a second of 60 fps video with
/// 48 kHz audio is about 110 tags).
pub const MAX_PROBE_TAGS: usize = 512;

/// Most bytes held while the track set is undecided: a second of a 50 Mbit/s stream.
pub const MAX_PROBE_BYTES: usize = 8 * 1024 * 1024;

/// Longest stretch of audio gathered into one PES. Keeps PES packets small for players,
/// and in audio-only streams, where each PES carries the PCR, keeps PCRs under 100 ms apart
/// (ISO/IEC 13818-1 §2.7.2).
pub const AUDIO_PES_MAX_SPAN: Duration90k = Duration90k(8_100);

/// Most ADTS bytes in one audio PES: PES_packet_length is 16 bits and counts the 8-byte
/// optional header part too.
pub const MAX_AUDIO_PES_PAYLOAD: usize = 0xffff - 8;

/// Bytes an open segment may hold per second of the media it spans: 200 Mbit/s, several
/// times any live ingest (4K60 H.264 is about 60 Mbit/s). More means the encoder's
/// timestamps stand still or crawl while its media flows, and the segment, which is cut by
/// media time, would grow without bound.
pub const MAX_SEGMENT_BYTE_RATE: u64 = 25_000_000;

/// Bytes an open segment may hold whatever its span: two of the largest RTMP messages (one
/// frame each) with their TS overhead, so a burst of huge frames at one timestamp passes.
pub const SEGMENT_BYTES_FLOOR: u64 = 2 * 17 * 1024 * 1024;

/// Frame duration assumed for video until two frames (or the SPS timing) tell: 30 fps.
const DEFAULT_FRAME_DURATION: Duration90k = Duration90k(3_000);

/// Longest decoding interval the frame duration estimate takes in (4 fps): a longer one is
/// a hole in the timestamps, not a frame rate.
const MAX_FRAME_DURATION: Duration90k = Duration90k(22_500);

/// How to cut the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemuxConfig {
    /// `hls.time`: cut at the first keyframe once a segment is this long.
    pub segment_target: Duration90k,
    /// `hls.max_segment`: no segment longer; `None` = automatic.
    pub max_segment: Option<Duration90k>,
    /// A fixed EXT-X-TARGETDURATION carried over from an earlier publisher of the stream.
    pub target_duration: Option<u32>,
}

impl Default for RemuxConfig {
    /// The service's defaults: `hls_time = 2`, automatic bounds.
    fn default() -> RemuxConfig {
        RemuxConfig {
            segment_target: Duration90k::from_millis(2_000),
            max_segment: None,
            target_duration: None,
        }
    }
}

/// Which kind of message a tag body came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
}

impl TagKind {
    /// The kind of an FLV tag's body; `None` for script data (metadata), which is no media.
    pub fn of(tag_type: TagType) -> Option<TagKind> {
        match tag_type {
            TagType::Audio => Some(TagKind::Audio),
            TagType::Video => Some(TagKind::Video),
            TagType::ScriptData => None,
        }
    }
}

/// What the remuxer reports.
#[derive(Clone, Debug)]
pub enum RemuxEvent {
    /// A (new) AVC sequence header.
    VideoConfig(VideoInfo),
    /// A (new) AAC AudioSpecificConfig.
    AudioConfig(AudioInfo),
    /// A finished segment.
    Segment(CompletedSegment),
    /// Once per stream: keyframes are further apart than the segment target, so segments
    /// will be longer than `hls.time`.
    LongKeyframeInterval { interval: Duration90k },
    /// A segment was cut without a keyframe because it reached its length limit.
    ForcedCut { length: Duration90k },
}

/// Why a stream cannot be remuxed.
#[derive(Debug, thiserror::Error)]
pub enum RemuxError {
    /// The video is not H.264: the publish is refused with this name.
    #[error("unsupported video codec: {0}")]
    UnsupportedVideoCodec(String),
    /// The audio is not AAC that ADTS can carry: the publish is refused with this name.
    #[error("unsupported audio codec: {0}")]
    UnsupportedAudioCodec(String),
    /// A tag body is malformed.
    #[error("malformed {kind:?} tag at {timestamp}: {source}")]
    Malformed {
        kind: TagKind,
        timestamp: RtmpTimestamp,
        #[source]
        source: FlvError,
    },
    /// The FLV file around the tags is malformed (offline remux).
    #[error("FLV file: {0}")]
    File(#[source] FlvError),
    /// The open segment holds more bytes than its media's span allows
    /// ([`SEGMENT_BYTES_FLOOR`] plus [`MAX_SEGMENT_BYTE_RATE`] a second): the encoder's
    /// timestamps do not advance with its media. The open segment is dropped.
    #[error(
        "the open segment holds {bytes} bytes for {span} of media, more than \
         {MAX_SEGMENT_BYTE_RATE} bytes a second allow: the encoder's timestamps are not advancing"
    )]
    TimestampsStalled { bytes: u64, span: Duration90k },
    /// The TS writer refused a value; the bounds above make this a bug, not bad input.
    #[error("TS writer: {0}")]
    Mux(#[from] TsError),
}

/// Media the remuxer left out, by reason. Each reason is also logged once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// H.264 frames before any AVC sequence header.
    pub video_before_config: u64,
    /// Raw AAC before any AudioSpecificConfig.
    pub audio_before_config: u64,
    /// Video before the first keyframe, and audio before the first segment opened.
    pub before_first_segment: u64,
    /// Media of a track the program does not list (it arrived after the track set was
    /// decided without it).
    pub untracked: u64,
    /// Access units with no NAL unit in them.
    pub empty_access_units: u64,
}

/// One stream's remux state.
pub struct Remuxer {
    config: RemuxConfig,
    hint: Option<Tracks>,
    probe: Probe,
    output: Option<Output>,
    avc: Option<AvcDecoderConfig>,
    next_avc: Option<AvcDecoderConfig>,
    aac: Option<AudioSpecificConfig>,
    adts: Option<AdtsConfig>,
    video_info: Option<VideoInfo>,
    audio_info: Option<AudioInfo>,
    timeline: Timeline,
    dropped: DropCounts,
    /// NAL units of the current access unit (capacity reused).
    nals: Vec<Bytes>,
    /// Annex B pieces of the current access unit (capacity reused).
    pieces: Vec<Bytes>,
}

/// Media held while the track set is undecided.
#[derive(Default)]
struct Probe {
    tags: Vec<(TagKind, RtmpTimestamp, Bytes)>,
    bytes: usize,
}

/// Everything that exists once the track set is known.
struct Output {
    tracks: Tracks,
    muxer: TsMuxer,
    segmenter: Segmenter,
    /// The open segment's TS packets.
    segment: BytesMut,
    audio: PendingAudio,
    last_video_dts: Option<Timestamp90k>,
    video_frame_duration: Duration90k,
    last_audio_pts: Option<Timestamp90k>,
}

/// ADTS frames gathered for the next audio PES.
#[derive(Default)]
struct PendingAudio {
    data: BytesMut,
    first_pts: Option<Timestamp90k>,
}

impl Remuxer {
    pub fn new(config: RemuxConfig) -> Remuxer {
        Remuxer {
            config,
            hint: None,
            probe: Probe::default(),
            output: None,
            avc: None,
            next_avc: None,
            aac: None,
            adts: None,
            video_info: None,
            audio_info: None,
            timeline: Timeline::new(),
            dropped: DropCounts::default(),
            nals: Vec::new(),
            pieces: Vec::new(),
        }
    }

    /// Tell the remuxer which tracks to expect (from onMetaData); without it, it decides
    /// from the sequence headers that arrive before the first media. A hint naming no
    /// track, or one given after the decision, is ignored.
    pub fn expect_tracks(&mut self, video: bool, audio: bool) {
        if video || audio {
            self.hint = Some(Tracks { video, audio });
        }
    }

    /// Takes one tag body.
    pub fn push(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), RemuxError> {
        let malformed = |source| RemuxError::Malformed {
            kind,
            timestamp,
            source,
        };
        match kind {
            TagKind::Video => {
                let (frame_type, packet) = match VideoTag::parse(&body).map_err(malformed)? {
                    VideoTag::Avc { frame_type, packet } => (frame_type, packet),
                    VideoTag::Other { codec, .. } => {
                        return Err(RemuxError::UnsupportedVideoCodec(codec.to_string()));
                    }
                    VideoTag::Command | VideoTag::Metadata => return Ok(()),
                };
                match packet {
                    AvcPacket::SequenceHeader(record) => {
                        self.video_sequence_header(&record, out)
                            .map_err(malformed)?;
                        self.decide_if_ready(out)
                    }
                    AvcPacket::Nalu {
                        composition_time,
                        data,
                    } => {
                        if self.avc.is_none() {
                            self.dropped.video_before_config += 1;
                            warn_once(
                                self.dropped.video_before_config,
                                "H.264 frame before any AVC sequence header",
                            );
                            return Ok(());
                        }
                        if self.output.is_none() {
                            return self.hold(kind, timestamp, body, out);
                        }
                        self.video_frame(timestamp, frame_type, composition_time, &data, out)
                            .map_err(|e| match e {
                                FrameError::Flv(source) => malformed(source),
                                FrameError::Mux(e) => RemuxError::Mux(e),
                            })?;
                        self.check_segment_growth()
                    }
                    AvcPacket::EndOfSequence => Ok(()),
                }
            }
            TagKind::Audio => match AudioTag::parse(&body).map_err(malformed)? {
                AudioTag::Aac(AacPacket::SequenceHeader(config)) => {
                    self.audio_sequence_header(&config, out, malformed)?;
                    self.decide_if_ready(out)
                }
                AudioTag::Aac(AacPacket::Raw(frame)) => {
                    if self.adts.is_none() {
                        self.dropped.audio_before_config += 1;
                        warn_once(
                            self.dropped.audio_before_config,
                            "AAC frame before any AudioSpecificConfig",
                        );
                        return Ok(());
                    }
                    if self.output.is_none() {
                        return self.hold(kind, timestamp, body, out);
                    }
                    self.audio_frame(timestamp, &frame, out)
                        .map_err(|e| match e {
                            FrameError::Flv(source) => malformed(source),
                            FrameError::Mux(e) => RemuxError::Mux(e),
                        })?;
                    self.check_segment_growth()
                }
                AudioTag::AacSequenceEnd => Ok(()),
                AudioTag::Other(codec) => Err(RemuxError::UnsupportedAudioCodec(codec.to_string())),
            },
        }
    }

    /// The publisher stopped: close the open segment (its duration runs to the end of its
    /// last sample).
    pub fn finish(&mut self, out: &mut Vec<RemuxEvent>) {
        if self.output.is_none() && (self.avc.is_some() || self.adts.is_some()) {
            let tracks = Tracks {
                video: self.avc.is_some(),
                audio: self.adts.is_some(),
            };
            // `finish` has no error to return: a held tag that turns out to be malformed is
            // logged and the rest is closed as usual.
            if let Err(e) = self.decide(self.hint.unwrap_or(tracks), out) {
                tracing::warn!(error = %e, "media held before the track decision was refused");
            }
        }
        let Some(output) = self.output.as_mut() else {
            return;
        };
        if let Err(e) = output.flush_audio() {
            tracing::warn!(error = %e, "last audio PES refused");
        }
        if let Some(timing) = output.segmenter.finish() {
            out.push(RemuxEvent::Segment(output.complete(timing)));
        }
    }

    pub fn video_info(&self) -> Option<&VideoInfo> {
        self.video_info.as_ref()
    }

    /// Bytes of the segment being written (TS packets so far, and audio waiting for its
    /// PES), held in memory until the segment closes.
    pub fn open_segment_bytes(&self) -> usize {
        self.output
            .as_ref()
            .map_or(0, |o| o.segment.len() + o.audio.data.len())
    }

    /// The distance between the encoder's last two keyframes.
    pub fn keyframe_interval(&self) -> Option<Duration90k> {
        self.output.as_ref()?.segmenter.keyframe_interval()
    }

    pub fn audio_info(&self) -> Option<&AudioInfo> {
        self.audio_info.as_ref()
    }

    /// What was left out so far, by reason.
    pub fn dropped(&self) -> &DropCounts {
        &self.dropped
    }

    /// The track set, once decided.
    pub fn tracks(&self) -> Option<Tracks> {
        self.output.as_ref().map(|o| o.tracks)
    }

    fn video_sequence_header(
        &mut self,
        record: &Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), FlvError> {
        let current = self.next_avc.as_ref().or(self.avc.as_ref());
        if current.is_some_and(|c| c.record() == record) {
            return Ok(());
        }
        let config = AvcDecoderConfig::parse(record)?;
        let info = config.video_info()?;
        self.video_info = Some(info.clone());
        out.push(RemuxEvent::VideoConfig(info));
        if self.avc.is_none() {
            self.avc = Some(config);
        } else {
            // Frames in flight still refer to the old parameter sets; the new ones apply
            // from the next keyframe.
            self.next_avc = Some(config);
        }
        Ok(())
    }

    fn audio_sequence_header(
        &mut self,
        config: &Bytes,
        out: &mut Vec<RemuxEvent>,
        malformed: impl Fn(FlvError) -> RemuxError,
    ) -> Result<(), RemuxError> {
        let asc = AudioSpecificConfig::parse(config).map_err(&malformed)?;
        if self.aac == Some(asc) {
            return Ok(());
        }
        let adts = asc
            .adts()
            .map_err(|e| RemuxError::UnsupportedAudioCodec(e.to_string()))?;
        let info = asc.audio_info();
        self.aac = Some(asc);
        self.adts = Some(adts);
        self.audio_info = Some(info.clone());
        out.push(RemuxEvent::AudioConfig(info));
        Ok(())
    }

    /// Ends the stream when the open segment holds more bytes than its span allows (see
    /// [`RemuxError::TimestampsStalled`]), dropping that segment.
    fn check_segment_growth(&mut self) -> Result<(), RemuxError> {
        let bytes = self.open_segment_bytes() as u64;
        let Some(output) = self.output.as_mut() else {
            return Ok(());
        };
        let Some(span) = output.segmenter.open_span() else {
            return Ok(());
        };
        let allowed = SEGMENT_BYTES_FLOOR + MAX_SEGMENT_BYTE_RATE * span.0 / Duration90k::HZ;
        if bytes <= allowed {
            return Ok(());
        }
        output.segmenter.discard_open();
        output.segment = BytesMut::new();
        output.audio = PendingAudio::default();
        Err(RemuxError::TimestampsStalled { bytes, span })
    }

    /// Holds a media tag until the track set is known, deciding when the probe is full.
    fn hold(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), RemuxError> {
        if let Some(tracks) = self.hint {
            self.decide(tracks, out)?;
            return self.push(kind, timestamp, body, out);
        }
        let span = self
            .probe
            .tags
            .first()
            .map_or(0, |(_, first, _)| timestamp.wrapping_diff(*first));
        self.probe.bytes += body.len();
        self.probe.tags.push((kind, timestamp, body));
        let full = span >= TRACK_PROBE_WINDOW_MS
            || self.probe.tags.len() >= MAX_PROBE_TAGS
            || self.probe.bytes >= MAX_PROBE_BYTES;
        if full {
            let tracks = Tracks {
                video: self.avc.is_some(),
                audio: self.adts.is_some(),
            };
            self.decide(tracks, out)?;
        }
        Ok(())
    }

    /// Decides once both configurations are in (with a hint, the hint's track set).
    fn decide_if_ready(&mut self, out: &mut Vec<RemuxEvent>) -> Result<(), RemuxError> {
        if self.output.is_some() {
            return Ok(());
        }
        if self.avc.is_none() || self.adts.is_none() {
            return Ok(());
        }
        let both = Tracks {
            video: true,
            audio: true,
        };
        self.decide(self.hint.unwrap_or(both), out)
    }

    /// Fixes the track set, then replays the held media.
    fn decide(&mut self, tracks: Tracks, out: &mut Vec<RemuxEvent>) -> Result<(), RemuxError> {
        let segmenter = Segmenter::new(SegmenterConfig {
            segment_target: self.config.segment_target,
            max_segment: self.config.max_segment,
            target_duration: self.config.target_duration,
            has_video: tracks.video,
        });
        let video_frame_duration = self
            .video_info
            .as_ref()
            .and_then(|info| info.frame_rate)
            .map_or(DEFAULT_FRAME_DURATION, |fps| {
                Duration90k::from_secs_f64(1.0 / fps)
            });
        self.output = Some(Output {
            tracks,
            muxer: TsMuxer::new(tracks)?,
            segmenter,
            segment: SEGMENT_BUFFERS.take(0),
            audio: PendingAudio::default(),
            last_video_dts: None,
            video_frame_duration,
            last_audio_pts: None,
        });
        tracing::debug!(
            video = tracks.video,
            audio = tracks.audio,
            "track set decided"
        );
        let held = std::mem::take(&mut self.probe);
        for (kind, timestamp, body) in held.tags {
            self.push(kind, timestamp, body, out)?;
        }
        Ok(())
    }

    fn video_frame(
        &mut self,
        timestamp: RtmpTimestamp,
        frame_type: FrameType,
        composition_time: i32,
        data: &Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), FrameError> {
        let Some(output) = self.output.as_mut() else {
            return Ok(());
        };
        if !output.tracks.video {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "video in a stream decided as audio-only",
            );
            return Ok(());
        }
        if frame_type == FrameType::Keyframe {
            if let Some(next) = self.next_avc.take() {
                self.avc = Some(next);
            }
        }
        let Some(config) = self.avc.as_ref() else {
            return Ok(());
        };
        split_avcc(data, config.length_size, &mut self.nals)?;
        if self.nals.is_empty() {
            self.dropped.empty_access_units += 1;
            warn_once(
                self.dropped.empty_access_units,
                "access unit without NAL units",
            );
            return Ok(());
        }
        let summary = annex_b_pieces(&self.nals, config, &mut self.pieces);
        let mapped = self.timeline.map(timestamp);
        // Decoding times strictly increase (ISO/IEC 13818-1 §2.7.5): muxers that cannot write
        // negative FLV timestamps stamp a B-frame stream's first frames alike (GStreamer's
        // flvmux does), so a repeated DTS moves one tick on.
        let dts = output
            .last_video_dts
            .map_or(mapped.time, |last| mapped.time.max(last + Duration90k(1)));
        // The frame duration: the SPS's frame rate when it gives one; otherwise the decoding
        // interval, smoothed (some muxers stamp B-frame streams with uneven DTS steps).
        let from_sps = self
            .video_info
            .as_ref()
            .and_then(|v| v.frame_rate)
            .is_some();
        if let (Some(last), false) = (output.last_video_dts, from_sps) {
            let interval = dts.saturating_since(last).min(MAX_FRAME_DURATION);
            if interval > Duration90k::ZERO {
                let smoothed = (output.video_frame_duration.ticks() * 7 + interval.ticks()) / 8;
                output.video_frame_duration = Duration90k(smoothed);
            }
        }
        output.last_video_dts = Some(dts);
        let sample = Sample {
            kind: if summary.idr {
                SampleKind::Keyframe
            } else {
                SampleKind::Video
            },
            pts: presentation_time(dts, composition_time),
            dts,
            duration: output.video_frame_duration,
            discontinuity: mapped.discontinuity,
        };
        if !output.place(&sample, out, &mut self.dropped)? {
            return Ok(());
        }
        output.flush_audio()?;
        output.muxer.put_video(
            &mut output.segment,
            sample.pts,
            dts,
            summary.idr,
            &self.pieces,
        )?;
        Ok(())
    }

    fn audio_frame(
        &mut self,
        timestamp: RtmpTimestamp,
        frame: &Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), FrameError> {
        let (Some(output), Some(adts)) = (self.output.as_mut(), self.adts) else {
            return Ok(());
        };
        if !output.tracks.audio {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "audio in a stream decided as video-only",
            );
            return Ok(());
        }
        let header = adts.header(frame.len())?;
        let mapped = self.timeline.map(timestamp);
        let pts = output
            .last_audio_pts
            .map_or(mapped.time, |last| mapped.time.max(last));
        output.last_audio_pts = Some(pts);
        let sample = Sample {
            kind: SampleKind::Audio,
            pts,
            dts: pts,
            duration: adts.frame_duration(),
            discontinuity: mapped.discontinuity,
        };
        if !output.place(&sample, out, &mut self.dropped)? {
            return Ok(());
        }
        let frame_size = ADTS_HEADER_SIZE + frame.len();
        if let Some(first) = output.audio.first_pts {
            let span = pts.saturating_since(first) + sample.duration;
            if span > AUDIO_PES_MAX_SPAN
                || output.audio.data.len() + frame_size > MAX_AUDIO_PES_PAYLOAD
            {
                output.flush_audio()?;
            }
        }
        let pending = &mut output.audio;
        pending.first_pts.get_or_insert(pts);
        pending.data.reserve(frame_size);
        pending.data.put_slice(&header);
        pending.data.put_slice(frame);
        Ok(())
    }
}

/// Why one frame could not be written.
enum FrameError {
    Flv(FlvError),
    Mux(TsError),
}

impl From<FlvError> for FrameError {
    fn from(e: FlvError) -> FrameError {
        FrameError::Flv(e)
    }
}

impl From<TsError> for FrameError {
    fn from(e: TsError) -> FrameError {
        FrameError::Mux(e)
    }
}

impl Output {
    /// Asks the segmenter where `sample` goes and acts on it: closes the open segment
    /// (pending audio first), starts a new one with PAT and PMT. Returns whether the sample
    /// is to be written.
    fn place(
        &mut self,
        sample: &Sample,
        out: &mut Vec<RemuxEvent>,
        dropped: &mut DropCounts,
    ) -> Result<bool, TsError> {
        let decision = self.segmenter.push(sample);
        if let Some(interval) = decision.long_keyframe_interval {
            out.push(RemuxEvent::LongKeyframeInterval { interval });
        }
        match decision.placement {
            Placement::Drop => {
                dropped.before_first_segment += 1;
                Ok(false)
            }
            Placement::Append => Ok(true),
            Placement::Start { closed } => {
                if let Some(ClosedSegment { timing, forced }) = closed {
                    self.flush_audio()?;
                    if forced {
                        out.push(RemuxEvent::ForcedCut {
                            length: timing.duration,
                        });
                    }
                    out.push(RemuxEvent::Segment(self.complete(timing)));
                }
                self.muxer.put_tables(&mut self.segment);
                Ok(true)
            }
        }
    }

    /// Writes the gathered ADTS frames as one PES.
    fn flush_audio(&mut self) -> Result<(), TsError> {
        let Some(pts) = self.audio.first_pts.take() else {
            return Ok(());
        };
        let audio_only = !self.tracks.video;
        let result =
            self.muxer
                .put_audio(&mut self.segment, pts, audio_only, &[&self.audio.data[..]]);
        self.audio.data.clear();
        result
    }

    /// Hands out the open segment's bytes and starts the next in a recycled buffer, or a
    /// new one with room for one more like it.
    fn complete(&mut self, timing: SegmentTiming) -> CompletedSegment {
        let room = self.segment.len() + self.segment.len() / 8;
        let next = SEGMENT_BUFFERS.take(room);
        let data = SEGMENT_BUFFERS.freeze(std::mem::replace(&mut self.segment, next));
        CompletedSegment {
            start: timing.start,
            duration: timing.duration,
            discontinuity: timing.discontinuity,
            independent: timing.independent,
            target_duration: timing.target_duration,
            data,
        }
    }
}

/// Logs a dropped-media reason the first time it happens.
fn warn_once(count: u64, reason: &'static str) {
    if count == 1 {
        tracing::warn!(
            reason,
            "media dropped (further drops for this reason are only counted)"
        );
    }
}

/// Remuxes a whole FLV file held in memory: the file header's audio/video flags are the
/// track hint, script tags are skipped. Returns every event in order, the last segment
/// closed.
pub fn remux_flv(file: Bytes, config: RemuxConfig) -> Result<Vec<RemuxEvent>, RemuxError> {
    let mut remuxer = Remuxer::new(config);
    let mut events = Vec::new();
    for item in FlvFile::new(file) {
        remuxer.push_file_item(item.map_err(RemuxError::File)?, &mut events)?;
    }
    remuxer.finish(&mut events);
    Ok(events)
}

impl Remuxer {
    /// Feeds one item of an FLV file: the header's audio/video flags are the track hint,
    /// script tags are skipped.
    pub fn push_file_item(
        &mut self,
        item: FlvItem,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), RemuxError> {
        match item {
            FlvItem::Header(header) => {
                self.expect_tracks(header.type_flags_video, header.type_flags_audio);
                Ok(())
            }
            FlvItem::Tag(tag) => match TagKind::of(tag.tag_type) {
                Some(kind) => self.push(kind, tag.timestamp, tag.body, out),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::avc::nal_type;
    use crate::hls::timeline::LINE_START;
    use crate::ts::muxer::{AUDIO_PID, MAX_PCR_INTERVAL, PMT_PID, VIDEO_PID};
    use crate::ts::packet::{PACKET_SIZE, SYNC_BYTE};
    use mpeg2ts::pes::{PesPacket, PesPacketReader, ReadPesPacket};
    use mpeg2ts::ts::{ReadTsPacket, TsPacket, TsPacketReader, TsPayload};
    use std::collections::HashMap;

    /// One video frame of 30 fps, in ticks.
    const FRAME: u64 = 3_000;

    fn testdata(name: &str) -> Bytes {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(path).unwrap())
    }

    fn segments(events: &[RemuxEvent]) -> Vec<&CompletedSegment> {
        events
            .iter()
            .filter_map(|e| match e {
                RemuxEvent::Segment(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn ts_packets(data: &[u8]) -> Vec<TsPacket> {
        let mut reader = TsPacketReader::new(data);
        let mut out = Vec::new();
        while let Some(p) = reader.read_ts_packet().unwrap() {
            out.push(p);
        }
        out
    }

    fn pes_packets(data: &[u8]) -> Vec<PesPacket<Vec<u8>>> {
        let mut reader = PesPacketReader::new(TsPacketReader::new(data));
        let mut out = Vec::new();
        while let Some(p) = reader.read_pes_packet().unwrap() {
            out.push(p);
        }
        out
    }

    fn is_video(p: &PesPacket<Vec<u8>>) -> bool {
        p.header.stream_id.as_u8() == 0xe0
    }

    /// Splits an Annex B access unit written with 4-byte start codes.
    fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 4 <= data.len() {
            if data[i..i + 4] == [0, 0, 0, 1] {
                starts.push(i + 4);
                i += 4;
            } else {
                i += 1;
            }
        }
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| &data[s..starts.get(k + 1).map_or(data.len(), |&n| n - 4)])
            .collect()
    }

    /// The source media of an FLV file, from its own tags: video frames as (DTS, PTS,
    /// NAL units without AUDs) and raw AAC frames as (PTS, bytes), timestamps mapped the way
    /// the timeline maps them (first media timestamp at LINE_START).
    struct Source {
        video: Vec<(u64, u64, Vec<Bytes>)>,
        audio: Vec<(u64, Bytes)>,
    }

    fn source(file: &Bytes) -> Source {
        let mut origin = None;
        let mut length_size = None;
        let mut src = Source {
            video: Vec::new(),
            audio: Vec::new(),
        };
        for item in FlvFile::new(file.clone()) {
            let FlvItem::Tag(tag) = item.unwrap() else {
                continue;
            };
            let mut map = |ts: RtmpTimestamp| {
                let origin = *origin.get_or_insert(ts.0);
                LINE_START.0 + u64::from(ts.0 - origin) * 90
            };
            match tag.tag_type {
                TagType::Video => match VideoTag::parse(&tag.body).unwrap() {
                    VideoTag::Avc {
                        packet: AvcPacket::SequenceHeader(record),
                        ..
                    } => length_size = Some(AvcDecoderConfig::parse(&record).unwrap().length_size),
                    VideoTag::Avc {
                        packet:
                            AvcPacket::Nalu {
                                composition_time,
                                data,
                            },
                        ..
                    } => {
                        let mut nals = Vec::new();
                        split_avcc(&data, length_size.unwrap(), &mut nals).unwrap();
                        nals.retain(|n| n[0] & 0x1f != nal_type::AUD);
                        let dts = map(tag.timestamp);
                        src.video
                            .push((dts, dts + composition_time.max(0) as u64 * 90, nals));
                    }
                    _ => {}
                },
                TagType::Audio => {
                    if let AudioTag::Aac(AacPacket::Raw(frame)) =
                        AudioTag::parse(&tag.body).unwrap()
                    {
                        src.audio.push((map(tag.timestamp), frame));
                    }
                }
                TagType::ScriptData => {}
            }
        }
        src
    }

    /// Checks every structural rule on the segments of one stream.
    fn check_structure(segs: &[&CompletedSegment], tracks: Tracks) {
        assert!(!segs.is_empty());
        let td = segs[0].target_duration;
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        let mut last_pcr: Option<u64> = None;
        let pcr_pid = if tracks.video { VIDEO_PID } else { AUDIO_PID }.value();
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.target_duration, td, "TD changed at segment {i}");
            assert!(
                (seg.duration.0 + 45_000) / 90_000 <= u64::from(td),
                "EXTINF over TD: {i}"
            );
            assert_eq!(seg.data.len() % PACKET_SIZE, 0, "segment {i}");
            assert!(seg.data.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE));
            let packets = ts_packets(&seg.data);
            assert!(
                matches!(packets[0].payload, Some(TsPayload::Pat(_))),
                "segment {i}"
            );
            assert!(
                matches!(packets[1].payload, Some(TsPayload::Pmt(_))),
                "segment {i}"
            );
            assert_eq!(packets[1].header.pid.as_u16(), PMT_PID.value());
            let Some(TsPayload::Pmt(pmt)) = &packets[1].payload else {
                unreachable!()
            };
            assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(pcr_pid));
            let listed: Vec<u16> = pmt
                .es_info
                .iter()
                .map(|es| es.elementary_pid.as_u16())
                .collect();
            let mut expected = Vec::new();
            if tracks.video {
                expected.push(VIDEO_PID.value());
            }
            if tracks.audio {
                expected.push(AUDIO_PID.value());
            }
            assert_eq!(listed, expected);
            for p in &packets {
                let pid = p.header.pid.as_u16();
                let cc = p.header.continuity_counter.as_u8();
                let has_payload = p.payload.is_some();
                if let Some(prev) = last_cc.get(&pid) {
                    let want = if has_payload { (prev + 1) % 16 } else { *prev };
                    assert_eq!(cc, want, "CC break on PID {pid:#x} in segment {i}");
                }
                last_cc.insert(pid, cc);
                if let Some(pcr) = p.adaptation_field.as_ref().and_then(|a| a.pcr) {
                    assert_eq!(pid, pcr_pid);
                    let pcr = pcr.as_u64();
                    if let Some(last) = last_pcr {
                        assert!(pcr >= last, "PCR went back");
                        assert!(
                            pcr - last <= MAX_PCR_INTERVAL.0 * 300,
                            "PCR gap {} ticks",
                            (pcr - last) / 300
                        );
                    }
                    last_pcr = Some(pcr);
                }
            }
            if tracks.video && seg.independent {
                let first_video = packets
                    .iter()
                    .find(|p| p.header.pid.as_u16() == VIDEO_PID.value() && p.payload.is_some())
                    .unwrap();
                assert!(
                    first_video
                        .adaptation_field
                        .as_ref()
                        .unwrap()
                        .random_access_indicator
                );
                let pes = pes_packets(&seg.data);
                let au = pes.iter().find(|p| is_video(p)).unwrap();
                let types: Vec<u8> = annex_b_nals(&au.data).iter().map(|n| n[0] & 0x1f).collect();
                assert_eq!(
                    types[..3],
                    [nal_type::AUD, nal_type::SPS, nal_type::PPS],
                    "segment {i}"
                );
                assert!(types.contains(&nal_type::IDR));
                assert_eq!(au.header.pts.unwrap().as_u64(), seg.start.0);
            }
        }
        for pair in segs.windows(2).filter(|p| !p[1].discontinuity) {
            assert_eq!(
                pair[0].start + pair[0].duration,
                pair[1].start,
                "segments must abut"
            );
        }
    }

    /// Every frame of the source is in the output, in order, with its timestamps mapped.
    fn check_media(segs: &[&CompletedSegment], src: &Source) {
        let all: Vec<u8> = segs.iter().flat_map(|s| s.data.iter().copied()).collect();
        let pes = pes_packets(&all);
        let video: Vec<_> = pes.iter().filter(|p| is_video(p)).collect();
        assert_eq!(video.len(), src.video.len());
        for (k, (out, (dts, pts, nals))) in video.iter().zip(&src.video).enumerate() {
            assert_eq!(out.header.pts.unwrap().as_u64(), *pts, "frame {k}");
            assert_eq!(
                out.header.dts.map_or(*pts, |d| d.as_u64()),
                *dts,
                "frame {k}"
            );
            let mut got = annex_b_nals(&out.data);
            assert_eq!(got.remove(0), [0x09, 0xf0]);
            let idr = nals.iter().any(|n| n[0] & 0x1f == nal_type::IDR);
            let own_sets = nals.iter().any(|n| n[0] & 0x1f == nal_type::SPS);
            if idr && !own_sets {
                got.drain(..2);
            }
            let want: Vec<&[u8]> = nals.iter().map(|n| &n[..]).collect();
            assert_eq!(got, want, "frame {k}");
        }
        let mut frames = Vec::new();
        for p in pes.iter().filter(|p| !is_video(p)) {
            let pts = p.header.pts.unwrap().as_u64();
            for (k, frame) in adts_frames(&p.data).into_iter().enumerate() {
                frames.push(((k == 0).then_some(pts), frame.to_vec()));
            }
        }
        assert_eq!(frames.len(), src.audio.len());
        for (k, ((pes_pts, out), (pts, raw))) in frames.iter().zip(&src.audio).enumerate() {
            assert_eq!(&out[..], &raw[..], "audio frame {k}");
            if let Some(pes_pts) = pes_pts {
                assert_eq!(pes_pts, pts, "audio PES starting at frame {k}");
            }
        }
    }

    /// Sum of durations equals the media's length, and each segment's duration matches the
    /// media in it (its video, or for audio-only its audio frames) within a frame.
    fn check_durations(segs: &[&CompletedSegment], frame: u64) {
        let total: u64 = segs.iter().map(|s| s.duration.0).sum();
        let last = segs.last().unwrap();
        assert_eq!(total, (last.start + last.duration).0 - segs[0].start.0);
        for (i, seg) in segs.iter().enumerate() {
            let pes = pes_packets(&seg.data);
            let has_video = pes.iter().any(is_video);
            // (PTS, frames in the PES) of the track that sets the cuts.
            let samples: Vec<(u64, u64)> = pes
                .iter()
                .filter(|p| is_video(p) == has_video)
                .map(|p| {
                    let frames = if has_video {
                        1
                    } else {
                        adts_frames(&p.data).len() as u64
                    };
                    (p.header.pts.unwrap().as_u64(), frames)
                })
                .collect();
            let first = samples.iter().map(|s| s.0).min().unwrap();
            let end = samples
                .iter()
                .map(|(pts, n)| pts + n * frame)
                .max()
                .unwrap();
            let span = end - first;
            assert!(
                seg.duration.0.abs_diff(span) <= frame,
                "segment {i}: {} vs {span}",
                seg.duration.0
            );
        }
    }

    /// The ADTS frames of an audio PES payload, without their headers.
    fn adts_frames(mut data: &[u8]) -> Vec<&[u8]> {
        let mut frames = Vec::new();
        while !data.is_empty() {
            assert_eq!(data[..2], [0xff, 0xf1]);
            let len = (usize::from(data[3] & 3) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            frames.push(&data[7..len]);
            data = &data[len..];
        }
        frames
    }

    /// Writes the segments to a temporary folder and has FFmpeg decode each one.
    fn check_with_ffmpeg(name: &str, segs: &[&CompletedSegment], expect_streams: &str) {
        let dir =
            std::env::temp_dir().join(format!("rtmp-server-remux-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seg) in segs.iter().enumerate() {
            let path = dir.join(format!("{i}.ts"));
            std::fs::write(&path, &seg.data).unwrap();
            let decode = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg must be installed (.ci/run installs it)");
            let stderr = String::from_utf8_lossy(&decode.stderr);
            assert!(
                decode.status.success() && stderr.trim().is_empty(),
                "{name} segment {i}: {stderr}"
            );
            let probe = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=index,codec_name",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&path)
                .output()
                .expect("ffprobe must be installed");
            // Streams are listed under their program and again on their own: one per index.
            let listing = String::from_utf8_lossy(&probe.stdout).into_owned();
            let by_index: std::collections::BTreeMap<&str, &str> = listing
                .lines()
                .filter_map(|line| line.split_once(','))
                .collect();
            let streams = by_index.into_values().collect::<Vec<_>>().join(",");
            assert!(
                probe.status.success() && probe.stderr.is_empty(),
                "{name} segment {i}"
            );
            assert_eq!(streams, expect_streams, "{name} segment {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn h264_aac_file() {
        let file = testdata("h264_aac.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert_eq!(segs.len(), 5);
        assert!(
            segs.iter()
                .all(|s| s.independent && !s.discontinuity && s.target_duration == 2)
        );
        assert!(matches!(&events[0], RemuxEvent::VideoConfig(v) if v.codec == "avc1.64001E"));
        assert!(
            matches!(&events[1], RemuxEvent::AudioConfig(a) if a.codec == "mp4a.40.2" && a.channels == 2)
        );
        let both = Tracks {
            video: true,
            audio: true,
        };
        check_structure(&segs, both);
        check_media(&segs, &source(&file));
        check_durations(&segs, FRAME);
        check_with_ffmpeg("h264_aac", &segs, "h264,aac");
    }

    #[test]
    fn video_only_file() {
        let file = testdata("video_only.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert_eq!(segs.len(), 5);
        let video = Tracks {
            video: true,
            audio: false,
        };
        check_structure(&segs, video);
        check_media(&segs, &source(&file));
        check_durations(&segs, FRAME);
        check_with_ffmpeg("video_only", &segs, "h264");
    }

    #[test]
    fn audio_only_file() {
        let file = testdata("audio_only.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert!(segs.len() >= 5);
        assert!(segs.iter().all(|s| s.independent));
        let audio = Tracks {
            video: false,
            audio: true,
        };
        check_structure(&segs, audio);
        check_media(&segs, &source(&file));
        check_durations(&segs, 1_920);
        check_with_ffmpeg("audio_only", &segs, "aac");
    }

    #[test]
    fn sorenson_is_refused_by_name() {
        let err = remux_flv(testdata("sorenson_h263.flv"), RemuxConfig::default()).unwrap_err();
        assert!(
            matches!(&err, RemuxError::UnsupportedVideoCodec(name) if name == "Sorenson H.263"),
            "{err}"
        );
    }

    /// The tags of a file, as an RTMP publish would deliver them.
    fn tags(file: &Bytes) -> Vec<(TagKind, RtmpTimestamp, Bytes)> {
        FlvFile::new(file.clone())
            .filter_map(|item| match item.unwrap() {
                FlvItem::Tag(tag) => {
                    TagKind::of(tag.tag_type).map(|kind| (kind, tag.timestamp, tag.body))
                }
                FlvItem::Header(_) => None,
            })
            .collect()
    }

    #[test]
    fn track_set_without_hint() {
        // Both sequence headers: decided at once.
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&testdata("h264_aac.flv")).into_iter().take(2) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        assert_eq!(
            remuxer.tracks(),
            Some(Tracks {
                video: true,
                audio: true
            })
        );
        // Video only: decided after a second of media, nothing lost.
        let file = testdata("video_only.flv");
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (k, (kind, ts, body)) in tags(&file).into_iter().enumerate() {
            remuxer.push(kind, ts, body, &mut events).unwrap();
            if ts.0 < 1_000 {
                assert_eq!(remuxer.tracks(), None, "tag {k}");
            }
        }
        remuxer.finish(&mut events);
        let video = Tracks {
            video: true,
            audio: false,
        };
        assert_eq!(remuxer.tracks(), Some(video));
        let segs = segments(&events);
        check_structure(&segs, video);
        check_media(&segs, &source(&file));
        assert_eq!(
            remuxer.video_info().map(|v| (v.width, v.height)),
            Some((640, 360))
        );
        assert_eq!(remuxer.audio_info(), None);
    }

    #[test]
    fn media_before_its_config_is_dropped_and_counted() {
        let all = tags(&testdata("h264_aac.flv"));
        let (headers, media): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(kind, _, body)| match kind {
                TagKind::Video => body[1] == 0,
                TagKind::Audio => body[1] == 0,
            });
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in media.iter().take(10).cloned() {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        let dropped = *remuxer.dropped();
        assert!(dropped.video_before_config > 0 && dropped.audio_before_config > 0);
        assert_eq!(
            dropped.video_before_config + dropped.audio_before_config,
            10
        );
        assert!(events.is_empty());
        for (kind, ts, body) in headers.into_iter().chain(media.into_iter().skip(10)) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        assert!(!segments(&events).is_empty());
    }

    #[test]
    fn a_clock_that_stands_still_ends_the_stream_at_a_bounded_segment() {
        let all = tags(&testdata("h264_aac.flv"));
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        let mut pushed = 0u64;
        // The file's tags again and again, every one at time 0.
        let error = 'feed: loop {
            for (kind, _, body) in all.iter().cloned() {
                pushed += body.len() as u64;
                if let Err(e) = remuxer.push(kind, RtmpTimestamp(0), body, &mut events) {
                    break 'feed e;
                }
            }
            assert!(
                pushed < 2 * SEGMENT_BYTES_FLOOR,
                "{pushed} bytes at one timestamp and no error"
            );
        };
        match error {
            RemuxError::TimestampsStalled { bytes, span } => {
                // The span is what the frames' durations and composition times add to one
                // timestamp; the segment stopped within a frame of what it allows.
                assert!(span < Duration90k::from_millis(500), "{span}");
                let allowed =
                    SEGMENT_BYTES_FLOOR + MAX_SEGMENT_BYTE_RATE * span.0 / Duration90k::HZ;
                assert!(
                    bytes > allowed && bytes < allowed + 500_000,
                    "{bytes} bytes for {span}, {allowed} allowed"
                );
            }
            other => panic!("{other}"),
        }
        assert!(segments(&events).is_empty());
        // The oversized segment is dropped, not listed when the stream ends.
        remuxer.finish(&mut events);
        assert!(segments(&events).is_empty());
    }

    #[test]
    fn new_sequence_header_applies_from_the_next_keyframe() {
        let file = testdata("video_only.flv");
        let all = tags(&file);
        let record = all[0].2.slice(5..);
        // The same SPS with its PPS listed twice: a different record.
        let config = AvcDecoderConfig::parse(&record).unwrap();
        let (sps, pps) = (
            &config.sequence_parameter_sets()[0],
            &config.picture_parameter_sets()[0],
        );
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(&record[..5]);
        body.push(0xe1);
        body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        body.extend_from_slice(sps);
        body.push(2);
        for _ in 0..2 {
            body.extend_from_slice(&(pps.len() as u16).to_be_bytes());
            body.extend_from_slice(pps);
        }
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        remuxer.expect_tracks(true, false);
        let mut events = Vec::new();
        for (k, (kind, ts, tag)) in all.into_iter().enumerate() {
            if k == 30 {
                remuxer
                    .push(TagKind::Video, ts, Bytes::from(body.clone()), &mut events)
                    .unwrap();
            }
            remuxer.push(kind, ts, tag, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, RemuxEvent::VideoConfig(_)))
                .count(),
            2
        );
        let segs = segments(&events);
        let pps_count = |seg: &CompletedSegment| {
            let pes = pes_packets(&seg.data);
            annex_b_nals(&pes[0].data)
                .iter()
                .filter(|n| n[0] & 0x1f == nal_type::PPS)
                .count()
        };
        assert_eq!(pps_count(segs[0]), 1);
        assert_eq!(pps_count(segs[1]), 2);
    }

    #[test]
    fn malformed_access_unit_is_an_error_with_context() {
        let all = tags(&testdata("video_only.flv"));
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        remuxer.expect_tracks(true, false);
        let mut events = Vec::new();
        let (kind, ts, header) = all[0].clone();
        remuxer.push(kind, ts, header, &mut events).unwrap();
        // A NAL unit length that runs past the end of the tag.
        let bad = Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x65]);
        let err = remuxer
            .push(TagKind::Video, RtmpTimestamp(40), bad, &mut events)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RemuxError::Malformed {
                    kind: TagKind::Video,
                    timestamp: RtmpTimestamp(40),
                    source: FlvError::NalLength { length: 9, .. }
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn unsupported_audio_is_refused_by_name() {
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        let mp3 = Bytes::from_static(&[0x2f, 0xff, 0xfb]);
        let err = remuxer
            .push(TagKind::Audio, RtmpTimestamp(0), mp3, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::UnsupportedAudioCodec(name) if name == "MP3"),
            "{err}"
        );
        // AAC-LD: AAC, but not something ADTS can carry.
        let ld = Bytes::from_static(&[0xaf, 0x00, 0xb9, 0x90]);
        let err = remuxer
            .push(TagKind::Audio, RtmpTimestamp(0), ld, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::UnsupportedAudioCodec(name) if name.contains("audioObjectType = 23")),
            "{err}"
        );
        let hevc = Bytes::from_static(&[0x90, b'h', b'v', b'c', b'1', 1, 2]);
        let err = remuxer
            .push(TagKind::Video, RtmpTimestamp(0), hevc, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::UnsupportedVideoCodec(name) if name.starts_with("HEVC")),
            "{err}"
        );
    }

    #[test]
    fn long_gop_and_forced_cuts_are_reported() {
        // 2 s GOPs with a 1 s target and TD fixed at 1: keyframe interval reported once,
        // segments cut without keyframes before they reach 1.5 s.
        let config = RemuxConfig {
            segment_target: Duration90k::from_millis(1_000),
            max_segment: None,
            target_duration: Some(1),
        };
        let events = remux_flv(testdata("h264_aac.flv"), config).unwrap();
        let long: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RemuxEvent::LongKeyframeInterval { interval } => Some(*interval),
                _ => None,
            })
            .collect();
        assert_eq!(long, [Duration90k(2 * 90_000)]);
        let forced = events
            .iter()
            .filter(|e| matches!(e, RemuxEvent::ForcedCut { .. }))
            .count();
        let segs = segments(&events);
        assert!(forced >= 4, "{forced}");
        assert_eq!(segs.iter().filter(|s| !s.independent).count(), forced);
        check_structure(
            &segs,
            Tracks {
                video: true,
                audio: true,
            },
        );
        check_media(&segs, &source(&testdata("h264_aac.flv")));
        // A segment that starts without a keyframe decodes after the one before it.
        let whole = CompletedSegment {
            data: segs.iter().flat_map(|s| s.data.iter().copied()).collect(),
            ..segs[0].clone()
        };
        check_with_ffmpeg("forced", &[&whole], "h264,aac");
    }

    #[test]
    fn timestamp_gap_keeps_extinf_within_a_carried_over_td() {
        // Found by fuzzing: with TD carried over at 2 s, an 8 s gap in the timestamps (short
        // of the timeline's 10 s jump bound) made a segment whose EXTINF rounded to 9.
        let file = testdata("h264_aac.flv");
        let mut remuxer = Remuxer::new(RemuxConfig {
            target_duration: Some(2),
            ..RemuxConfig::default()
        });
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&file) {
            let ts = if ts.0 >= 5_000 {
                ts.wrapping_add(8_000)
            } else {
                ts
            };
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        let segs = segments(&events);
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.target_duration, 2, "segment {i}");
            assert!(
                (seg.duration.0 + 45_000) / 90_000 <= 2,
                "segment {i} lasts {}",
                seg.duration
            );
            assert_eq!(ts_packets(&seg.data).len() * PACKET_SIZE, seg.data.len());
        }
        // The segment after the gap says that the media does not continue where the
        // playlist's time does.
        let flagged: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].discontinuity).collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        let after = segs[flagged[0]];
        let before = segs[flagged[0] - 1];
        assert!(before.start + before.duration < after.start);
    }

    #[test]
    fn a_timestamp_gap_does_not_stretch_the_estimated_frame_duration() {
        // Without frame timing in the SPS the duration is estimated from decoding
        // intervals; an 8 s hole must not make the next frames last a second each.
        let file = testdata("h264_aac.flv");
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        let mut longest = Duration90k::ZERO;
        for (kind, ts, body) in tags(&file) {
            let ts = if ts.0 >= 5_000 {
                ts.wrapping_add(8_000)
            } else {
                ts
            };
            remuxer.push(kind, ts, body, &mut events).unwrap();
            if let Some(info) = remuxer.video_info.as_mut() {
                info.frame_rate = None;
            }
            if let Some(output) = &remuxer.output {
                longest = longest.max(output.video_frame_duration);
            }
        }
        assert!(
            longest > DEFAULT_FRAME_DURATION,
            "the gap was seen: {longest}"
        );
        assert!(longest <= MAX_FRAME_DURATION, "{longest}");
    }

    #[test]
    fn timestamp_wrap_and_restart_through_the_pipeline() {
        // The file's timestamps shifted to 2 s before the 2^32 wrap: one continuous line.
        let file = testdata("h264_aac.flv");
        let shift = u32::MAX - 1_999;
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&file) {
            remuxer
                .push(kind, ts.wrapping_add(shift), body, &mut events)
                .unwrap();
        }
        // Then the encoder restarts at 0.
        for (kind, ts, body) in tags(&file) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        let segs = segments(&events);
        assert_eq!(segs.len(), 10);
        let flagged: Vec<bool> = segs.iter().map(|s| s.discontinuity).collect();
        assert_eq!(
            flagged,
            [
                false, false, false, false, false, true, false, false, false, false
            ]
        );
        check_structure(
            &segs,
            Tracks {
                video: true,
                audio: true,
            },
        );
        check_with_ffmpeg("wrap", &segs, "h264,aac");
    }
}
