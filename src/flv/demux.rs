//! FLV tag bodies (RTMP audio and video messages, or the tags of an FLV file) in, codec-neutral
//! [`MediaEvent`]s out: the ingest half of every output.
//!
//! Per tag: parse the header (refusing codecs other than H.264 and AAC by name), keep the
//! decoder configurations, place the timestamp on the stream's 90 kHz timeline, and hand the
//! frame on as a slice of the tag body.
//!
//! The track set is decided once per publish, before the first frame goes out: from the
//! caller's hint ([`FlvDemuxer::expect_tracks`], e.g. from onMetaData), or as soon as both
//! sequence headers have arrived, or after [`TRACK_PROBE_WINDOW_MS`] of media with only one of
//! them. Media that arrives meanwhile is held, within bounds, and then replayed.
//!
//! Timing rules every output relies on: video decoding times strictly increase (muxers that
//! cannot write negative FLV timestamps stamp a B-frame stream's first frames alike), audio
//! times never go back, presentation time is decoding time plus the clamped composition
//! time, and each frame carries its duration (the SPS frame rate, else the measured decoding
//! interval, smoothed).
//!
//! Spec: FLV 10.1 annex E (§E.4.2.2 AACAUDIODATA, §E.4.3.2 AVCVIDEOPACKET); ISO/IEC
//! 13818-1 §2.7.5 (decoding times increase); ISO/IEC 14496-15 §5.3.4.2 (AVCC access units).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::flv::FlvError;
use crate::flv::aac::{AudioInfo, AudioSpecificConfig};
use crate::flv::avc::{AvcDecoderConfig, VideoInfo, nal_type, nal_unit_type, split_avcc};
use crate::flv::tag::{AacPacket, AudioTag, AvcPacket, FrameType, VideoTag};
use crate::hls::timeline::{Timeline, presentation_time};
use crate::media::codec::{AacConfig, CodecConfig, H264Config, TrackKind};
use crate::media::frame::{Frame, MediaEvent, Track, TrackId, Tracks};
use crate::media::{Duration90k, RtmpTimestamp, Timestamp90k};

/// How much media (by timestamps) is held while only one track's configuration has
/// arrived, before deciding that the stream has only that track. Encoders send both
/// sequence headers before the first frames; one second is generous.
pub const TRACK_PROBE_WINDOW_MS: i64 = 1_000;

/// Most tags held while the track set is undecided (a second of 60 fps video with
/// 48 kHz audio is about 110 tags).
pub const MAX_PROBE_TAGS: usize = 512;

/// Most bytes held while the track set is undecided: a second of a 50 Mbit/s stream.
pub const MAX_PROBE_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of media a stretch of the stream may carry per second of the time it spans:
/// 200 Mbit/s, several times any live ingest (4K60 H.264 is about 60 Mbit/s). More means the
/// encoder's timestamps stand still or crawl while its media flows; every output cuts by
/// media time, so what they hold would grow without bound.
pub const MAX_BYTE_RATE: u64 = 25_000_000;

/// Bytes a stretch may carry whatever its span: one of the largest RTMP messages (a 16 MiB
/// frame) with room for the frames around it, so a huge keyframe at one timestamp passes.
/// Every output may hold a stretch's media until its time advances, so this also bounds
/// what a stream whose clock stands still makes each of them hold.
pub const BYTES_FLOOR: u64 = 20 * 1024 * 1024;

/// The stretch [`MAX_BYTE_RATE`] is checked over starts again once it spans this much media.
pub const STALL_WINDOW: Duration90k = Duration90k(10 * Duration90k::HZ);

/// Frame duration assumed for video until two frames (or the SPS timing) tell: 30 fps.
const DEFAULT_FRAME_DURATION: Duration90k = Duration90k(3_000);

/// Longest decoding interval the frame duration estimate takes in (4 fps): a longer one is
/// a hole in the timestamps, not a frame rate.
const MAX_FRAME_DURATION: Duration90k = Duration90k(22_500);

/// Which kind of message a tag body came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
}

impl TagKind {
    /// The kind of an FLV tag's body; `None` for script data (metadata), which is no media.
    pub fn of(tag_type: crate::flv::tag::TagType) -> Option<TagKind> {
        use crate::flv::tag::TagType;
        match tag_type {
            TagType::Audio => Some(TagKind::Audio),
            TagType::Video => Some(TagKind::Video),
            TagType::ScriptData => None,
        }
    }
}

/// A new decoder configuration arrived (for logs and the stats API; outputs learn of it
/// through [`MediaEvent`]s when it applies).
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigNotice {
    Video(VideoInfo),
    Audio(AudioInfo),
}

/// Why a stream's media cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
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
    /// A stretch of the stream carries more bytes than the media time it spans allows
    /// ([`BYTES_FLOOR`] plus [`MAX_BYTE_RATE`] a second).
    #[error(
        "{bytes} bytes of media span {span}, more than {MAX_BYTE_RATE} bytes a second allow: \
         the encoder's timestamps are not advancing"
    )]
    TimestampsStalled { bytes: u64, span: Duration90k },
}

/// Media the demuxer left out, by reason. Each reason is also logged once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// H.264 frames before any AVC sequence header.
    pub video_before_config: u64,
    /// Raw AAC before any AudioSpecificConfig.
    pub audio_before_config: u64,
    /// Media of a track the stream does not have (it arrived after the track set was
    /// decided without it).
    pub untracked: u64,
    /// Access units with no NAL unit in them.
    pub empty_access_units: u64,
}

/// One publish's demuxer.
pub struct FlvDemuxer {
    /// The publisher whose media this is, as `Start` events say.
    publisher: u64,
    hint: Option<(bool, bool)>,
    probe: Probe,
    /// Decided once; the ids of the video and audio tracks in it.
    decided: Option<Decided>,
    avc: Option<Arc<CodecConfig>>,
    /// A new AVC configuration, applied from the next keyframe (frames in flight still
    /// refer to the old parameter sets).
    next_avc: Option<Arc<CodecConfig>>,
    aac: Option<Arc<CodecConfig>>,
    /// What the latest AVC sequence header says (applied or not).
    video_info: Option<VideoInfo>,
    timeline: Timeline,
    dropped: DropCounts,
    /// NAL units of the current access unit (capacity reused).
    nals: Vec<Bytes>,
    last_video_dts: Option<Timestamp90k>,
    video_frame_duration: Duration90k,
    last_audio_pts: Option<Timestamp90k>,
    stall: Stretch,
}

#[derive(Clone, Copy)]
struct Decided {
    video: Option<TrackId>,
    audio: Option<TrackId>,
}

/// Media held while the track set is undecided.
#[derive(Default)]
struct Probe {
    tags: Vec<(TagKind, RtmpTimestamp, Bytes, Instant)>,
    bytes: usize,
}

/// The stretch of media the byte rate is checked over.
#[derive(Default)]
struct Stretch {
    start: Option<Timestamp90k>,
    end: Timestamp90k,
    bytes: u64,
}

impl Default for FlvDemuxer {
    fn default() -> FlvDemuxer {
        FlvDemuxer::new()
    }
}

impl FlvDemuxer {
    pub fn new() -> FlvDemuxer {
        FlvDemuxer {
            publisher: 0,
            hint: None,
            probe: Probe::default(),
            decided: None,
            avc: None,
            next_avc: None,
            aac: None,
            video_info: None,
            timeline: Timeline::new(),
            dropped: DropCounts::default(),
            nals: Vec::new(),
            last_video_dts: None,
            video_frame_duration: DEFAULT_FRAME_DURATION,
            last_audio_pts: None,
            stall: Stretch::default(),
        }
    }

    /// The demuxer of publisher `id`'s media (see [`Tracks::publisher`]).
    pub fn for_publisher(mut self, id: u64) -> FlvDemuxer {
        self.publisher = id;
        self
    }

    /// Tell the demuxer which tracks to expect (from onMetaData); without it, it decides
    /// from the sequence headers that arrive before the first media. A hint naming no
    /// track, or one given after the decision, is ignored.
    pub fn expect_tracks(&mut self, video: bool, audio: bool) {
        if video || audio {
            self.hint = Some((video, audio));
        }
    }

    /// The track set, once decided: (video, audio).
    pub fn tracks(&self) -> Option<(bool, bool)> {
        self.decided.map(|d| (d.video.is_some(), d.audio.is_some()))
    }

    /// What was left out so far, by reason.
    pub fn dropped(&self) -> &DropCounts {
        &self.dropped
    }

    /// Takes one tag body that was read at `received`; media events go to `out`.
    pub fn push(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<ConfigNotice>, DemuxError> {
        let malformed = |source| DemuxError::Malformed {
            kind,
            timestamp,
            source,
        };
        match kind {
            TagKind::Video => {
                let (frame_type, packet) = match VideoTag::parse(&body).map_err(malformed)? {
                    VideoTag::Avc { frame_type, packet } => (frame_type, packet),
                    VideoTag::Other { codec, .. } => {
                        return Err(DemuxError::UnsupportedVideoCodec(codec.to_string()));
                    }
                    VideoTag::Command | VideoTag::Metadata => return Ok(None),
                };
                match packet {
                    AvcPacket::SequenceHeader(record) => {
                        let notice = self
                            .video_sequence_header(&record, out)
                            .map_err(malformed)?;
                        self.decide_if_ready(out)?;
                        Ok(notice)
                    }
                    AvcPacket::Nalu {
                        composition_time,
                        data,
                    } => self.media_tag(kind, timestamp, body, received, out, |d, out| {
                        d.video_frame(timestamp, frame_type, composition_time, data, received, out)
                    }),
                    AvcPacket::EndOfSequence => Ok(None),
                }
            }
            TagKind::Audio => match AudioTag::parse(&body).map_err(malformed)? {
                AudioTag::Aac(AacPacket::SequenceHeader(config)) => {
                    let notice = self.audio_sequence_header(config, out, malformed)?;
                    self.decide_if_ready(out)?;
                    Ok(notice)
                }
                AudioTag::Aac(AacPacket::Raw(frame)) => {
                    self.media_tag(kind, timestamp, body, received, out, |d, out| {
                        d.audio_frame(timestamp, frame, received, out)
                    })
                }
                AudioTag::AacSequenceEnd => Ok(None),
                AudioTag::Other(codec) => Err(DemuxError::UnsupportedAudioCodec(codec.to_string())),
            },
        }
    }

    /// A tag with a frame: left out (and counted) before its track's configuration, held
    /// while the track set is undecided, else made into a frame by `make` (which returns
    /// where in `out` the frame went, if it made one) and counted into the byte-rate check.
    fn media_tag(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
        make: impl FnOnce(&mut Self, &mut Vec<MediaEvent>) -> Result<Option<usize>, FlvError>,
    ) -> Result<Option<ConfigNotice>, DemuxError> {
        let (configured, dropped, reason) = match kind {
            TagKind::Video => (
                self.avc.is_some(),
                &mut self.dropped.video_before_config,
                "H.264 frame before any AVC sequence header",
            ),
            TagKind::Audio => (
                self.aac.is_some(),
                &mut self.dropped.audio_before_config,
                "AAC frame before any AudioSpecificConfig",
            ),
        };
        if !configured {
            *dropped += 1;
            warn_once(*dropped, reason);
            return Ok(None);
        }
        if self.decided.is_none() {
            self.hold(kind, timestamp, body, received, out)?;
            return Ok(None);
        }
        let frame = make(self, out).map_err(|source| DemuxError::Malformed {
            kind,
            timestamp,
            source,
        })?;
        self.check_stretch(out, frame)?;
        Ok(None)
    }

    /// The publisher stopped: media still held (the track set was never decided) goes out
    /// with the tracks whose configuration arrived. A held tag that turns out malformed is
    /// logged and the rest goes out as usual.
    pub fn finish(&mut self, out: &mut Vec<MediaEvent>) {
        if self.decided.is_none() && (self.avc.is_some() || self.aac.is_some()) {
            let tracks = (self.avc.is_some(), self.aac.is_some());
            if let Err(e) = self.decide(self.hint.unwrap_or(tracks), out) {
                tracing::warn!(error = %e, "media held before the track decision was refused");
            }
        }
    }

    fn video_sequence_header(
        &mut self,
        record: &Bytes,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<ConfigNotice>, FlvError> {
        let current = self.next_avc.as_ref().or(self.avc.as_ref());
        if current
            .is_some_and(|c| matches!(&**c, CodecConfig::H264(h) if h.record.record() == record))
        {
            return Ok(None);
        }
        let record = AvcDecoderConfig::parse(record)?;
        let info = record.video_info()?;
        self.video_info = Some(info.clone());
        let config = Arc::new(CodecConfig::H264(H264Config {
            record,
            info: info.clone(),
        }));
        if self.avc.is_none() {
            if let Some(track) = self.decided.and_then(|d| d.video) {
                out.push(MediaEvent::Config(track, config.clone()));
            }
            self.avc = Some(config);
        } else {
            self.next_avc = Some(config);
        }
        Ok(Some(ConfigNotice::Video(info)))
    }

    fn audio_sequence_header(
        &mut self,
        raw: Bytes,
        out: &mut Vec<MediaEvent>,
        malformed: impl Fn(FlvError) -> DemuxError,
    ) -> Result<Option<ConfigNotice>, DemuxError> {
        let config = AudioSpecificConfig::parse(&raw).map_err(&malformed)?;
        if matches!(self.aac.as_deref(), Some(CodecConfig::Aac(a)) if a.config == config) {
            return Ok(None);
        }
        let adts = config
            .adts()
            .map_err(|e| DemuxError::UnsupportedAudioCodec(e.to_string()))?;
        let info = config.audio_info();
        let aac = Arc::new(CodecConfig::Aac(AacConfig {
            raw,
            config,
            adts,
            info: info.clone(),
        }));
        if let Some(track) = self.decided.and_then(|d| d.audio) {
            out.push(MediaEvent::Config(track, aac.clone()));
        }
        self.aac = Some(aac);
        Ok(Some(ConfigNotice::Audio(info)))
    }

    /// Holds a media tag until the track set is known, deciding when the probe is full.
    fn hold(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
        if let Some(tracks) = self.hint {
            self.decide(tracks, out)?;
            self.push(kind, timestamp, body, received, out)?;
            return Ok(());
        }
        let span = self
            .probe
            .tags
            .first()
            .map_or(0, |(_, first, _, _)| timestamp.wrapping_diff(*first));
        self.probe.bytes += body.len();
        self.probe.tags.push((kind, timestamp, body, received));
        let full = span >= TRACK_PROBE_WINDOW_MS
            || self.probe.tags.len() >= MAX_PROBE_TAGS
            || self.probe.bytes >= MAX_PROBE_BYTES;
        if full {
            let tracks = (self.avc.is_some(), self.aac.is_some());
            self.decide(tracks, out)?;
        }
        Ok(())
    }

    /// Decides once both configurations are in (with a hint, the hint's track set).
    fn decide_if_ready(&mut self, out: &mut Vec<MediaEvent>) -> Result<(), DemuxError> {
        if self.decided.is_some() || self.avc.is_none() || self.aac.is_none() {
            return Ok(());
        }
        self.decide(self.hint.unwrap_or((true, true)), out)
    }

    /// Fixes the track set, announces it, then replays the held media.
    fn decide(
        &mut self,
        (video, audio): (bool, bool),
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
        let mut tracks = Vec::new();
        let mut decided = Decided {
            video: None,
            audio: None,
        };
        for (wanted, kind, config) in [
            (video, TrackKind::Video, &self.avc),
            (audio, TrackKind::Audio, &self.aac),
        ] {
            if wanted {
                let id = TrackId(tracks.len() as u8);
                match kind {
                    TrackKind::Video => decided.video = Some(id),
                    TrackKind::Audio => decided.audio = Some(id),
                }
                tracks.push(Track {
                    id,
                    kind,
                    config: config.clone(),
                });
            }
        }
        self.decided = Some(decided);
        self.video_frame_duration = self
            .video_info
            .as_ref()
            .and_then(|info| info.frame_rate)
            .map_or(DEFAULT_FRAME_DURATION, |fps| {
                Duration90k::from_secs_f64(1.0 / fps)
            });
        tracing::debug!(video, audio, "track set decided");
        out.push(MediaEvent::Start(Arc::new(Tracks {
            publisher: self.publisher,
            tracks,
        })));
        let held = std::mem::take(&mut self.probe);
        for (kind, timestamp, body, received) in held.tags {
            self.push(kind, timestamp, body, received, out)?;
        }
        Ok(())
    }

    /// Places one H.264 access unit; returns the frame it made, if any.
    fn video_frame(
        &mut self,
        timestamp: RtmpTimestamp,
        frame_type: FrameType,
        composition_time: i32,
        data: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<usize>, FlvError> {
        let Some(track) = self.decided.and_then(|d| d.video) else {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "video in a stream decided as audio-only",
            );
            return Ok(None);
        };
        if frame_type == FrameType::Keyframe {
            if let Some(next) = self.next_avc.take() {
                out.push(MediaEvent::Config(track, next.clone()));
                self.avc = Some(next);
            }
        }
        let Some(CodecConfig::H264(config)) = self.avc.as_deref() else {
            return Ok(None);
        };
        split_avcc(&data, config.record.length_size, &mut self.nals)?;
        if self.nals.is_empty() {
            self.dropped.empty_access_units += 1;
            warn_once(
                self.dropped.empty_access_units,
                "access unit without NAL units",
            );
            return Ok(None);
        }
        let keyframe = self
            .nals
            .iter()
            .any(|nal| nal_unit_type(nal) == Some(nal_type::IDR));
        let mapped = self.timeline.map(timestamp);
        // Decoding times strictly increase (ISO/IEC 13818-1 §2.7.5): muxers that cannot write
        // negative FLV timestamps stamp a B-frame stream's first frames alike (GStreamer's
        // flvmux does), so a repeated DTS moves one tick on.
        let dts = self
            .last_video_dts
            .map_or(mapped.time, |last| mapped.time.max(last + Duration90k(1)));
        // The frame duration: the SPS's frame rate when it gives one; otherwise the decoding
        // interval, smoothed (some muxers stamp B-frame streams with uneven DTS steps).
        let from_sps = self
            .video_info
            .as_ref()
            .and_then(|v| v.frame_rate)
            .is_some();
        if let (Some(last), false) = (self.last_video_dts, from_sps) {
            let interval = dts.saturating_since(last).min(MAX_FRAME_DURATION);
            if interval > Duration90k::ZERO {
                let smoothed = (self.video_frame_duration.ticks() * 7 + interval.ticks()) / 8;
                self.video_frame_duration = Duration90k(smoothed);
            }
        }
        self.last_video_dts = Some(dts);
        out.push(MediaEvent::Frame(Frame {
            track,
            dts,
            pts: presentation_time(dts, composition_time),
            duration: self.video_frame_duration,
            keyframe,
            discontinuity: mapped.discontinuity,
            data,
            received,
        }));
        Ok(Some(out.len() - 1))
    }

    /// Places one raw AAC frame; returns the frame it made, if any.
    fn audio_frame(
        &mut self,
        timestamp: RtmpTimestamp,
        data: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<usize>, FlvError> {
        let Some(track) = self.decided.and_then(|d| d.audio) else {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "audio in a stream decided as video-only",
            );
            return Ok(None);
        };
        let Some(CodecConfig::Aac(config)) = self.aac.as_deref() else {
            return Ok(None);
        };
        // Every output can carry it: the TS output behind an ADTS header, whose length field
        // bounds a frame.
        config.adts.header(data.len())?;
        let duration = config.frame_duration();
        let mapped = self.timeline.map(timestamp);
        let pts = self
            .last_audio_pts
            .map_or(mapped.time, |last| mapped.time.max(last));
        self.last_audio_pts = Some(pts);
        out.push(MediaEvent::Frame(Frame {
            track,
            dts: pts,
            pts,
            duration,
            keyframe: true,
            discontinuity: mapped.discontinuity,
            data,
            received,
        }));
        Ok(Some(out.len() - 1))
    }

    /// Ends the stream when a stretch of it carries more bytes than its media time allows
    /// (see [`DemuxError::TimestampsStalled`]). `frame`: where the frame just made is in `out`.
    fn check_stretch(
        &mut self,
        out: &[MediaEvent],
        frame: Option<usize>,
    ) -> Result<(), DemuxError> {
        let Some(MediaEvent::Frame(frame)) = frame.and_then(|i| out.get(i)) else {
            return Ok(());
        };
        let stretch = &mut self.stall;
        let start = *stretch.start.get_or_insert(frame.pts);
        let start = start.min(frame.pts);
        stretch.start = Some(start);
        stretch.end = stretch.end.max(frame.pts + frame.duration);
        stretch.bytes += frame.data.len() as u64;
        let span = stretch.end.saturating_since(start);
        let allowed = BYTES_FLOOR + MAX_BYTE_RATE * span.0 / Duration90k::HZ;
        if stretch.bytes > allowed {
            return Err(DemuxError::TimestampsStalled {
                bytes: stretch.bytes,
                span,
            });
        }
        if span >= STALL_WINDOW {
            *stretch = Stretch::default();
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::file::{FlvFile, FlvItem};

    fn tags(name: &str) -> Vec<(TagKind, RtmpTimestamp, Bytes)> {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        let file = Bytes::from(std::fs::read(path).unwrap());
        FlvFile::new(file)
            .filter_map(|item| match item.unwrap() {
                FlvItem::Tag(tag) => Some((TagKind::of(tag.tag_type)?, tag.timestamp, tag.body)),
                FlvItem::Header(_) => None,
            })
            .collect()
    }

    fn frames(events: &[MediaEvent]) -> impl Iterator<Item = &Frame> {
        events.iter().filter_map(|e| match e {
            MediaEvent::Frame(f) => Some(f),
            _ => None,
        })
    }

    #[test]
    fn tracks_are_announced_with_their_configs_before_any_frame() {
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        let mut notices = 0;
        for (kind, ts, body) in tags("h264_aac.flv") {
            notices += usize::from(
                demux
                    .push(kind, ts, body, now, &mut events)
                    .unwrap()
                    .is_some(),
            );
        }
        assert_eq!(notices, 2, "one AVC and one AAC configuration");
        let MediaEvent::Start(tracks) = &events[0] else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(tracks.tracks.len(), 2);
        let (video, audio) = (
            tracks.of(TrackKind::Video).unwrap(),
            tracks.of(TrackKind::Audio).unwrap(),
        );
        assert!(
            matches!(video.config.as_deref(), Some(CodecConfig::H264(h)) if h.info.width > 0 && h.info.height > 0)
        );
        assert!(
            matches!(audio.config.as_deref(), Some(CodecConfig::Aac(a)) if a.info.sample_rate > 0)
        );
        assert_eq!(tracks.lead(), Some(video.id));
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, MediaEvent::Start(_)))
                .count(),
            1
        );
        let mut last_video: Option<Timestamp90k> = None;
        let mut last_audio: Option<Timestamp90k> = None;
        let mut first_video_keyframe = None;
        for f in frames(&events) {
            assert!(f.pts >= f.dts);
            assert!(f.duration > Duration90k::ZERO);
            if f.track == video.id {
                assert!(
                    last_video.is_none_or(|l| f.dts > l),
                    "video DTS strictly increase"
                );
                last_video = Some(f.dts);
                first_video_keyframe.get_or_insert(f.keyframe);
            } else {
                assert_eq!(f.track, audio.id);
                assert!(f.keyframe);
                assert!(last_audio.is_none_or(|l| f.dts >= l));
                last_audio = Some(f.dts);
            }
        }
        assert_eq!(first_video_keyframe, Some(true));
        // Frames are slices of the tag bodies: the AVCC payload after the 5-byte header.
        let first = frames(&events).next().unwrap();
        assert!(!first.data.is_empty());
    }

    #[test]
    fn a_new_sequence_header_applies_at_the_next_keyframe() {
        let all = tags("video_only.flv");
        let record = all[0].2.slice(5..);
        let config = AvcDecoderConfig::parse(&record).unwrap();
        // The same SPS with its PPS listed twice: a different record.
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
        let mut demux = FlvDemuxer::new();
        demux.expect_tracks(true, false);
        let mut events = Vec::new();
        let now = Instant::now();
        for (k, (kind, ts, tag)) in all.into_iter().enumerate() {
            if k == 30 {
                let notice = demux
                    .push(
                        TagKind::Video,
                        ts,
                        Bytes::from(body.clone()),
                        now,
                        &mut events,
                    )
                    .unwrap();
                assert!(matches!(notice, Some(ConfigNotice::Video(_))));
            }
            demux.push(kind, ts, tag, now, &mut events).unwrap();
        }
        let at = events
            .iter()
            .position(|e| matches!(e, MediaEvent::Config(..)))
            .expect("the new configuration is announced");
        assert!(at > 30, "not before the next keyframe: {at}");
        assert!(
            matches!(&events[at + 1], MediaEvent::Frame(f) if f.keyframe),
            "announced right before the keyframe it applies from"
        );
        let MediaEvent::Config(_, config) = &events[at] else {
            unreachable!()
        };
        let CodecConfig::H264(h) = &**config else {
            panic!("{config:?}")
        };
        assert_eq!(h.record.picture_parameter_sets().len(), 2);
    }

    #[test]
    fn a_timestamp_gap_does_not_stretch_the_estimated_frame_duration() {
        // Without frame timing in the SPS the duration is estimated from decoding
        // intervals; an 8 s hole must not make the next frames last a second each.
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        for (kind, ts, body) in tags("h264_aac.flv") {
            let ts = if ts.0 >= 5_000 {
                ts.wrapping_add(8_000)
            } else {
                ts
            };
            demux.push(kind, ts, body, now, &mut events).unwrap();
            if let Some(info) = demux.video_info.as_mut() {
                info.frame_rate = None;
            }
        }
        let longest = frames(&events)
            .filter(|f| f.track == TrackId(0))
            .map(|f| f.duration)
            .max()
            .unwrap();
        assert!(
            longest > DEFAULT_FRAME_DURATION,
            "the gap was seen: {longest}"
        );
        assert!(longest <= MAX_FRAME_DURATION, "{longest}");
    }

    #[test]
    fn a_clock_that_stands_still_is_refused_within_a_frame_of_the_bound() {
        let all = tags("h264_aac.flv");
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        let mut pushed = 0u64;
        // The file's tags again and again, every one at time 0.
        let error = 'feed: loop {
            for (kind, _, body) in all.iter().cloned() {
                pushed += body.len() as u64;
                if let Err(e) = demux.push(kind, RtmpTimestamp(0), body, now, &mut events) {
                    break 'feed e;
                }
            }
            events.clear();
            assert!(
                pushed < 2 * BYTES_FLOOR,
                "{pushed} bytes at one timestamp and no error"
            );
        };
        let DemuxError::TimestampsStalled { bytes, span } = error else {
            panic!("{error}");
        };
        // The span is what frame durations and composition times add to one timestamp.
        assert!(span < Duration90k::from_millis(500), "{span}");
        let allowed = BYTES_FLOOR + MAX_BYTE_RATE * span.0 / Duration90k::HZ;
        assert!(
            bytes > allowed && bytes < allowed + 500_000,
            "{bytes} bytes for {span}, {allowed} allowed"
        );
    }

    #[test]
    fn a_steady_stream_restarts_its_stretch_and_is_never_refused() {
        // 100 s at 25 fps of the same keyframe, within the rate: the stretch restarts every 10 s
        // of media, so its byte count stays bounded.
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        let all = tags("video_only.flv");
        let (kind, ts, header) = all[0].clone();
        demux.push(kind, ts, header, now, &mut events).unwrap();
        let keyframe = all[1].2.clone();
        assert!(keyframe.len() < 200_000);
        for i in 0..2_500u32 {
            demux
                .push(
                    TagKind::Video,
                    RtmpTimestamp(i * 40),
                    keyframe.clone(),
                    now,
                    &mut events,
                )
                .unwrap();
            events.clear();
        }
        assert!(demux.stall.bytes < BYTES_FLOOR);
    }
}
