//! FLV tag bodies (RTMP audio and video messages, or the tags of an FLV file) in, codec-neutral
//! [`MediaEvent`]s out: the ingest half of every output.
//!
//! Per message: parse the legacy or Enhanced RTMP header (refusing codecs the server does not
//! take by name), walk its packets (one per track in a multitrack message), keep each track's
//! decoder configuration, place the timestamp (with its ModEx nanosecond offset) on the
//! stream's 90 kHz timeline, and hand each frame on as a slice of the message.
//!
//! Tracks are told apart by kind and FLV track id (0 outside multitrack packets), bounded by
//! [`TrackLimits`]. The track set is decided once a video and an audio configuration are in,
//! or at the first frame once the kinds the caller's hint names are (see
//! [`FlvDemuxer::expect_tracks`]), or after [`TRACK_PROBE_WINDOW_MS`] of media; a sequence
//! start of another track before the first frame goes out decides it again, with that track
//! (multitrack encoders send every track's sequence start first). Media that arrives before
//! the decision is held, within bounds, and then replayed. A track that first appears after
//! the first frame is left out (counted and logged).
//!
//! Timing rules every output relies on: video decoding times strictly increase within a
//! track (muxers that cannot write negative FLV timestamps stamp a B-frame stream's first
//! frames alike), audio times never go back, presentation time is decoding time plus the
//! clamped composition time, and each frame carries its duration (the frame rate the
//! configuration gives, else the measured decoding interval, smoothed; for audio the samples
//! its header says).
//!
//! Spec: FLV 10.1 annex E (§E.4.2.2 AACAUDIODATA, §E.4.3.2 AVCVIDEOPACKET); Enhanced RTMP v2
//! ("Enhanced Audio", "Enhanced Video", "Multitrack Streaming via Enhanced RTMP"); ISO/IEC
//! 13818-1 §2.7.5 (decoding times increase); ISO/IEC 14496-15 §5.3.4.2 (AVCC access units).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::codec::ac3::Ac3Config;
use crate::codec::av1::Av1Config;
use crate::codec::flac::FlacConfig;
use crate::codec::hevc::{self, HevcConfig};
use crate::codec::mp3::Mp3Header;
use crate::codec::opus::OpusConfig;
use crate::codec::vp9::{self, Vp9Config};
use crate::codec::{CodecError, VideoFacts};
use crate::flv::FlvError;
use crate::flv::aac::AudioSpecificConfig;
use crate::flv::avc::{AvcDecoderConfig, nal_type, nal_unit_type, split_avcc};
use crate::flv::colour::ColourInfo;
use crate::flv::tag::{
    AudioBody, AudioCodec, AudioMessage, FrameType, VideoBody, VideoCodec, VideoMessage,
};
use crate::hls::timeline::{Timeline, presentation_time};
use crate::media::codec::{AacConfig, CodecConfig, H264Config, Mp3Config, TrackKind};
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

/// Frame duration assumed for video until two frames (or the configuration's timing) tell:
/// 30 fps.
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

/// Most tracks of each kind one publish may carry (`rtmp.max_video_tracks`,
/// `rtmp.max_audio_tracks`). FLV track ids must be below the limit of their kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackLimits {
    pub video: u8,
    pub audio: u8,
}

impl Default for TrackLimits {
    /// 8 video renditions and 8 audio languages: above any multitrack encoder's output.
    fn default() -> TrackLimits {
        TrackLimits { video: 8, audio: 8 }
    }
}

/// A new decoder configuration arrived for a track (for logs and the stats API; outputs
/// learn of it through [`MediaEvent`]s when it applies).
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigNotice {
    /// The FLV track id (0 outside multitrack packets).
    pub source: u8,
    pub config: Arc<CodecConfig>,
    /// The track's colour information, from its latest Metadata packet.
    pub colour: Option<ColourInfo>,
}

/// Why a stream's media cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum DemuxError {
    /// A video codec the server does not take: the publish is refused with this name.
    #[error("unsupported video codec: {0}")]
    UnsupportedVideoCodec(String),
    /// An audio codec the server does not take: the publish is refused with this name.
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
    /// A codec configuration (or the frame an AC-3 or MP3 track is configured from) is
    /// malformed, or a frame disagrees with its codec.
    #[error("{codec} track {track} at {timestamp}: {source}")]
    BadCodecData {
        codec: &'static str,
        track: u8,
        timestamp: RtmpTimestamp,
        #[source]
        source: CodecError,
    },
    /// More tracks of a kind than [`TrackLimits`] allow, or a track id at or above it.
    #[error("{kind:?} track id {track} is over the limit of {limit} tracks")]
    TooManyTracks {
        kind: TrackKind,
        track: u8,
        limit: u8,
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
    /// Video frames before their track's sequence start.
    pub video_before_config: u64,
    /// Audio frames before their track's sequence start.
    pub audio_before_config: u64,
    /// Media of a track the stream does not have (it arrived after the track set was
    /// decided without it).
    pub untracked: u64,
    /// Access units with no coded data in them.
    pub empty_access_units: u64,
}

/// One publish's demuxer.
pub struct FlvDemuxer {
    /// The publisher whose media this is, as `Start` events say.
    publisher: u64,
    limits: TrackLimits,
    hint: Option<(bool, bool)>,
    probe: Probe,
    decided: bool,
    /// A frame has gone out since the track set was decided: it is fixed for the publish.
    framed: bool,
    /// Every track seen, in the order their first configuration came.
    tracks: Vec<TrackState>,
    notices: Vec<ConfigNotice>,
    timeline: Timeline,
    dropped: DropCounts,
    /// NAL units of the current H.264 access unit (capacity reused).
    nals: Vec<Bytes>,
    stall: Stretch,
}

/// One track's demuxing state.
struct TrackState {
    kind: TrackKind,
    /// The FLV track id.
    source: u8,
    /// Its id in the stream's [`Tracks`], once decided in.
    id: Option<TrackId>,
    config: Option<Arc<CodecConfig>>,
    /// A new video configuration, applied from the next keyframe (frames in flight still
    /// refer to the old one).
    next: Option<Arc<CodecConfig>>,
    last_dts: Option<Timestamp90k>,
    frame_duration: Duration90k,
    last_pts: Option<Timestamp90k>,
    colour: Option<ColourInfo>,
}

impl TrackState {
    /// The frame rate the configuration gives, if any.
    fn configured_frame_rate(&self) -> Option<f64> {
        self.config.as_deref().and_then(CodecConfig::frame_rate)
    }

    /// A video configuration was applied: its frame rate, when it gives one, is the frame
    /// duration from here on (bounded to what the estimate takes).
    fn apply_frame_rate(&mut self) {
        if let Some(fps) = self.configured_frame_rate() {
            self.frame_duration =
                Duration90k::from_secs_f64(1.0 / fps).clamp(Duration90k(1), MAX_FRAME_DURATION);
        }
    }
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
            limits: TrackLimits::default(),
            hint: None,
            probe: Probe::default(),
            decided: false,
            framed: false,
            tracks: Vec::new(),
            notices: Vec::new(),
            timeline: Timeline::new(),
            dropped: DropCounts::default(),
            nals: Vec::new(),
            stall: Stretch::default(),
        }
    }

    /// The demuxer of publisher `id`'s media (see [`Tracks::publisher`]).
    pub fn for_publisher(mut self, id: u64) -> FlvDemuxer {
        self.publisher = id;
        self
    }

    /// The demuxer with these track limits.
    pub fn with_limits(mut self, limits: TrackLimits) -> FlvDemuxer {
        self.limits = limits;
        self
    }

    /// Tell the demuxer which kinds of track to expect (from onMetaData); without it, it
    /// decides from the sequence starts that arrive before the first media. A hint naming no
    /// track, or one given after the decision, is ignored.
    pub fn expect_tracks(&mut self, video: bool, audio: bool) {
        if video || audio {
            self.hint = Some((video, audio));
        }
    }

    /// The track set, once decided: whether it has video, and audio.
    pub fn tracks(&self) -> Option<(bool, bool)> {
        self.decided.then(|| {
            let has = |kind| self.tracks.iter().any(|t| t.kind == kind && t.id.is_some());
            (has(TrackKind::Video), has(TrackKind::Audio))
        })
    }

    /// What was left out so far, by reason.
    pub fn dropped(&self) -> &DropCounts {
        &self.dropped
    }

    /// The configurations that arrived since the last call.
    pub fn take_notices(&mut self) -> std::vec::Drain<'_, ConfigNotice> {
        self.notices.drain(..)
    }

    /// Takes one tag body that was read at `received`; media events go to `out`, new
    /// configurations to [`FlvDemuxer::take_notices`].
    pub fn push(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
        let malformed = |source| DemuxError::Malformed {
            kind,
            timestamp,
            source,
        };
        let at = At {
            kind,
            timestamp,
            received,
        };
        match kind {
            TagKind::Video => {
                let mut message = VideoMessage::parse(&body).map_err(malformed)?;
                if message.command {
                    return Ok(());
                }
                let (frame_type, nanos) = (message.frame_type, message.nano_offset);
                for packet in message.packets() {
                    let packet = packet.map_err(malformed)?;
                    let source = packet.track;
                    let data = match packet.body {
                        VideoBody::SequenceStart(record) => {
                            self.video_config(source, packet.codec, record, timestamp, out)?;
                            self.decide_if_ready(out)?;
                            continue;
                        }
                        VideoBody::CodedFrames {
                            composition_time,
                            data,
                        } => (composition_time, data),
                        VideoBody::Metadata(amf) => {
                            supported_video(packet.codec)?;
                            self.video_metadata(source, &amf)?;
                            continue;
                        }
                        // AV1's MPEG-2 TS descriptor repeats what its av1C sequence start
                        // says; a sequence end changes nothing the outputs write.
                        VideoBody::Mpeg2TsSequenceStart(_) | VideoBody::SequenceEnd => {
                            supported_video(packet.codec)?;
                            continue;
                        }
                    };
                    supported_video(packet.codec)?;
                    let Some(index) = self.configured(TrackKind::Video, source) else {
                        self.dropped.video_before_config += 1;
                        warn_once(
                            self.dropped.video_before_config,
                            "video frame before its track's sequence start",
                        );
                        continue;
                    };
                    self.check_codec(index, packet.codec, timestamp)?;
                    if !self.decided {
                        self.refine(index, frame_type, &data.1);
                        if !self.ready() {
                            return self.hold(kind, timestamp, body, received, out);
                        }
                        self.decide(out)?;
                    }
                    let (composition_time, data) = data;
                    let made = self.video_frame(
                        index,
                        at,
                        nanos,
                        frame_type,
                        composition_time,
                        data,
                        out,
                    )?;
                    self.check_stretch(out, made)?;
                }
                Ok(())
            }
            TagKind::Audio => {
                let mut message = AudioMessage::parse(&body).map_err(malformed)?;
                let nanos = message.nano_offset;
                for packet in message.packets() {
                    let packet = packet.map_err(malformed)?;
                    let source = packet.track;
                    let AudioCodec::Other(other) = packet.codec else {
                        let data = match packet.body {
                            AudioBody::SequenceStart(raw) => {
                                self.audio_config(source, packet.codec, raw, timestamp, out)?;
                                self.decide_if_ready(out)?;
                                continue;
                            }
                            AudioBody::CodedFrames(data) => data,
                            AudioBody::SequenceEnd | AudioBody::MultichannelConfig(_) => continue,
                        };
                        if self.configured(TrackKind::Audio, source).is_none()
                            && matches!(
                                packet.codec,
                                AudioCodec::Ac3 | AudioCodec::Eac3 | AudioCodec::Mp3
                            )
                        {
                            // Self-describing codecs: the first frame configures the track.
                            self.audio_config(source, packet.codec, data.clone(), timestamp, out)?;
                        }
                        let Some(index) = self.configured(TrackKind::Audio, source) else {
                            self.dropped.audio_before_config += 1;
                            warn_once(
                                self.dropped.audio_before_config,
                                "audio frame before its track's sequence start",
                            );
                            continue;
                        };
                        if !self.decided {
                            if !self.ready() {
                                return self.hold(kind, timestamp, body, received, out);
                            }
                            self.decide(out)?;
                        }
                        let made = self.audio_frame(index, at, nanos, data, out)?;
                        self.check_stretch(out, made)?;
                        continue;
                    };
                    return Err(DemuxError::UnsupportedAudioCodec(other.to_string()));
                }
                Ok(())
            }
        }
    }

    /// The publisher stopped: media still held (the track set was never decided) goes out
    /// with the tracks whose configuration arrived. A held tag that turns out malformed is
    /// logged and the rest goes out as usual.
    pub fn finish(&mut self, out: &mut Vec<MediaEvent>) {
        if !self.decided
            && self.tracks.iter().any(|t| t.config.is_some())
            && let Err(e) = self.decide(out)
        {
            tracing::warn!(error = %e, "media held before the track decision was refused");
        }
    }

    /// The index of the track of `kind` with FLV id `source`, made when new: refused past the
    /// limits.
    fn track_index(&mut self, kind: TrackKind, source: u8) -> Result<usize, DemuxError> {
        if let Some(i) = self
            .tracks
            .iter()
            .position(|t| t.kind == kind && t.source == source)
        {
            return Ok(i);
        }
        let limit = match kind {
            TrackKind::Video => self.limits.video,
            TrackKind::Audio => self.limits.audio,
        };
        let count = self.tracks.iter().filter(|t| t.kind == kind).count();
        if source >= limit || count >= usize::from(limit) {
            return Err(DemuxError::TooManyTracks {
                kind,
                track: source,
                limit,
            });
        }
        self.tracks.push(TrackState {
            kind,
            source,
            id: None,
            config: None,
            next: None,
            last_dts: None,
            frame_duration: DEFAULT_FRAME_DURATION,
            last_pts: None,
            colour: None,
        });
        Ok(self.tracks.len() - 1)
    }

    /// The index of the track of `kind` with FLV id `source`, if it has a configuration.
    fn configured(&self, kind: TrackKind, source: u8) -> Option<usize> {
        self.tracks
            .iter()
            .position(|t| t.kind == kind && t.source == source && t.config.is_some())
    }

    fn video_config(
        &mut self,
        source: u8,
        codec: VideoCodec,
        record: Bytes,
        timestamp: RtmpTimestamp,
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
        supported_video(codec)?;
        let index = self.track_index(TrackKind::Video, source)?;
        let config = match codec {
            VideoCodec::Avc => {
                let parsed = AvcDecoderConfig::parse(&record).and_then(|record| {
                    let info = record.video_info()?;
                    Ok(CodecConfig::H264(H264Config { record, info }))
                });
                parsed.map_err(|e| DemuxError::Malformed {
                    kind: TagKind::Video,
                    timestamp,
                    source: e,
                })?
            }
            VideoCodec::Hevc => HevcConfig::parse(&record)
                .map(CodecConfig::Hevc)
                .map_err(|e| codec_error("HEVC", source, timestamp, e))?,
            VideoCodec::Av1 => Av1Config::parse(&record)
                .map(CodecConfig::Av1)
                .map_err(|e| codec_error("AV1", source, timestamp, e))?,
            VideoCodec::Vp9 => Vp9Config::parse(&record)
                .map(CodecConfig::Vp9)
                .map_err(|e| codec_error("VP9", source, timestamp, e))?,
            VideoCodec::Other(_) => unreachable!("refused above"),
        };
        // Encoders repeat sequence starts: only a different record is a new configuration.
        let track = &self.tracks[index];
        let current = track.next.as_ref().or(track.config.as_ref());
        if current.is_some_and(|c| c.source_bytes() == config.source_bytes()) {
            return Ok(());
        }
        self.set_config(index, Arc::new(config), false, out);
        Ok(())
    }

    fn audio_config(
        &mut self,
        source: u8,
        codec: AudioCodec,
        raw: Bytes,
        timestamp: RtmpTimestamp,
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
        let index = self.track_index(TrackKind::Audio, source)?;
        let track = &self.tracks[index];
        if track
            .config
            .as_ref()
            .is_some_and(|c| c.source_bytes() == Some(&raw))
        {
            return Ok(());
        }
        let error = |name| move |e| codec_error(name, source, timestamp, e);
        let config = match codec {
            AudioCodec::Aac => {
                let config =
                    AudioSpecificConfig::parse(&raw).map_err(|e| DemuxError::Malformed {
                        kind: TagKind::Audio,
                        timestamp,
                        source: e,
                    })?;
                if matches!(track.config.as_deref(), Some(CodecConfig::Aac(a)) if a.config == config)
                {
                    return Ok(());
                }
                let adts = config
                    .adts()
                    .map_err(|e| DemuxError::UnsupportedAudioCodec(e.to_string()))?;
                let info = config.audio_info();
                CodecConfig::Aac(AacConfig {
                    raw,
                    config,
                    adts,
                    info,
                })
            }
            AudioCodec::Opus => OpusConfig::parse(&raw)
                .map(CodecConfig::Opus)
                .map_err(error("Opus"))?,
            AudioCodec::Flac => {
                let config = FlacConfig::parse(&raw).map_err(error("FLAC"))?;
                // Encoders send STREAMINFO again at the end with the sample count and MD5
                // filled in: the same stream unless what decoding depends on changed.
                let decoding = |c: &FlacConfig| {
                    (
                        c.sample_rate,
                        c.channels,
                        c.bits_per_sample,
                        c.min_block_size,
                        c.max_block_size,
                    )
                };
                if matches!(track.config.as_deref(), Some(CodecConfig::Flac(c)) if decoding(c) == decoding(&config))
                {
                    return Ok(());
                }
                CodecConfig::Flac(config)
            }
            AudioCodec::Ac3 | AudioCodec::Eac3 => {
                if raw.is_empty() {
                    return Ok(());
                }
                let config = Ac3Config::from_syncframe(&raw).map_err(error("AC-3"))?;
                if config.eac3 != (codec == AudioCodec::Eac3) {
                    return Err(DemuxError::UnsupportedAudioCodec(format!(
                        "{codec} track {source} carries {} syncframes",
                        if config.eac3 { "E-AC-3" } else { "AC-3" }
                    )));
                }
                // Configured from the first syncframe (an empty sequence start configures
                // nothing); the same configuration again is no change.
                if matches!(track.config.as_deref(), Some(CodecConfig::Ac3(c)) if c.specific == config.specific)
                {
                    return Ok(());
                }
                CodecConfig::Ac3(config)
            }
            AudioCodec::Mp3 => {
                if raw.is_empty() {
                    return Ok(());
                }
                let header = Mp3Header::parse(&raw).map_err(error("MP3"))?;
                let facts = header.facts();
                CodecConfig::Mp3(Mp3Config { header, facts })
            }
            AudioCodec::Other(other) => {
                return Err(DemuxError::UnsupportedAudioCodec(other.to_string()));
            }
        };
        self.set_config(index, Arc::new(config), true, out);
        Ok(())
    }

    /// Records a track's new configuration: at once for audio (`now`) and for a track
    /// without one, else (video) from the next keyframe.
    fn set_config(
        &mut self,
        index: usize,
        config: Arc<CodecConfig>,
        now: bool,
        out: &mut Vec<MediaEvent>,
    ) {
        let track = &mut self.tracks[index];
        self.notices.push(ConfigNotice {
            source: track.source,
            config: config.clone(),
            colour: track.colour.clone(),
        });
        if track.config.is_some() && !now {
            track.next = Some(config);
            return;
        }
        track.next = None;
        track.config = Some(config.clone());
        track.apply_frame_rate();
        if let (true, Some(id)) = (self.decided, track.id) {
            out.push(MediaEvent::Config(id, config));
        }
    }

    /// Refuses frames of another codec than the track's configuration (or the one pending
    /// for its next keyframe) says: they would be written under the wrong sample entry.
    fn check_codec(
        &self,
        index: usize,
        codec: VideoCodec,
        timestamp: RtmpTimestamp,
    ) -> Result<(), DemuxError> {
        let track = &self.tracks[index];
        let matches = |c: &Option<Arc<CodecConfig>>| {
            c.as_deref().is_some_and(|c| {
                matches!(
                    (c, codec),
                    (CodecConfig::H264(_), VideoCodec::Avc)
                        | (CodecConfig::Hevc(_), VideoCodec::Hevc)
                        | (CodecConfig::Av1(_), VideoCodec::Av1)
                        | (CodecConfig::Vp9(_), VideoCodec::Vp9)
                )
            })
        };
        if matches(&track.config) || matches(&track.next) {
            return Ok(());
        }
        Err(DemuxError::Malformed {
            kind: TagKind::Video,
            timestamp,
            source: FlvError::InvalidField {
                structure: "video packet",
                field: "codec",
                value: u32::from(track.source),
                reason: "frames of another codec than the track's sequence start",
            },
        })
    }

    /// A video Metadata packet: the track's colour information (HDR), kept for the stats API.
    fn video_metadata(&mut self, source: u8, amf: &[u8]) -> Result<(), DemuxError> {
        let Some(colour) = ColourInfo::from_metadata(amf) else {
            return Ok(());
        };
        let index = self.track_index(TrackKind::Video, source)?;
        let track = &mut self.tracks[index];
        if track.colour.as_ref() == Some(&colour) {
            return Ok(());
        }
        track.colour = Some(colour);
        if let Some(config) = track.config.clone() {
            self.notices.push(ConfigNotice {
                source,
                config,
                colour: track.colour.clone(),
            });
        }
        Ok(())
    }

    /// Whether the track set can be decided at a frame: every kind the hint names (without
    /// one, both kinds) has a configured track.
    fn ready(&self) -> bool {
        let (video, audio) = self.hint.unwrap_or((true, true));
        let has = |kind| {
            self.tracks
                .iter()
                .any(|t| t.kind == kind && t.config.is_some())
        };
        (!video || has(TrackKind::Video)) && (!audio || has(TrackKind::Audio))
    }

    /// Decides at a sequence start once a hint's kinds are all configured (the frames that
    /// follow need no holding).
    /// Decides at a sequence start once a video and an audio configuration are in (so a new
    /// publisher's configurations alone start its media, and close what a publisher it took
    /// over left open). A sequence start of another track that comes before the first frame
    /// (a multitrack encoder sends every track's) decides again, with it.
    fn decide_if_ready(&mut self, out: &mut Vec<MediaEvent>) -> Result<(), DemuxError> {
        let has = |kind| {
            self.tracks
                .iter()
                .any(|t| t.kind == kind && t.config.is_some())
        };
        let undecided_track = self
            .tracks
            .iter()
            .any(|t| t.config.is_some() && t.id.is_none() && self.wanted(t.kind));
        let again = self.decided && !self.framed && undecided_track;
        if again || (!self.decided && has(TrackKind::Video) && has(TrackKind::Audio)) {
            return self.decide(out);
        }
        Ok(())
    }

    /// Whether the track set takes tracks of `kind` (all kinds without a hint).
    fn wanted(&self, kind: TrackKind) -> bool {
        let (video, audio) = self.hint.unwrap_or((true, true));
        match kind {
            TrackKind::Video => video,
            TrackKind::Audio => audio,
        }
    }

    /// Holds a media message until the track set is known, deciding when the probe is full.
    fn hold(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
        out: &mut Vec<MediaEvent>,
    ) -> Result<(), DemuxError> {
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
            self.decide(out)?;
        }
        Ok(())
    }

    /// Fixes the track set (the configured tracks of the kinds wanted: video tracks by FLV id,
    /// then audio tracks by FLV id), announces it, then replays the held media.
    fn decide(&mut self, out: &mut Vec<MediaEvent>) -> Result<(), DemuxError> {
        let mut order: Vec<usize> = (0..self.tracks.len())
            .filter(|&i| {
                let t = &self.tracks[i];
                t.config.is_some() && self.wanted(t.kind)
            })
            .collect();
        order.sort_by_key(|&i| {
            (
                self.tracks[i].kind != TrackKind::Video,
                self.tracks[i].source,
            )
        });
        if order.is_empty() {
            // Only tracks of kinds the hint leaves out are configured: there is nothing to
            // start, and what was held goes (counted), so the probe stays bounded.
            let held = std::mem::take(&mut self.probe);
            if self.dropped.untracked == 0 && !held.tags.is_empty() {
                warn_once(1, "media of a track outside the track set");
            }
            self.dropped.untracked += held.tags.len() as u64;
            return Ok(());
        }
        let mut tracks = Vec::with_capacity(order.len());
        for (n, &i) in order.iter().enumerate() {
            let t = &mut self.tracks[i];
            let id = TrackId(n as u8);
            t.id = Some(id);
            t.apply_frame_rate();
            tracks.push(Track {
                id,
                kind: t.kind,
                source: t.source,
                config: t.config.clone(),
            });
        }
        self.decided = true;
        tracing::debug!(tracks = tracks.len(), "track set decided");
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

    /// A VP9 keyframe tells the picture size its configuration record does not: the track's
    /// configuration takes it before the track set is decided (so `Start` carries it).
    fn refine(&mut self, index: usize, frame_type: FrameType, data: &[u8]) {
        if frame_type != FrameType::Keyframe {
            return;
        }
        let track = &mut self.tracks[index];
        if let Some(config) = sized_vp9(track.config.as_deref(), data) {
            let config = Arc::new(config);
            self.notices.push(ConfigNotice {
                source: track.source,
                config: config.clone(),
                colour: track.colour.clone(),
            });
            track.config = Some(config);
        }
    }

    /// Places one video access unit; returns where in `out` the frame went, if it made one.
    #[allow(clippy::too_many_arguments)]
    fn video_frame(
        &mut self,
        index: usize,
        at: At,
        nanos: u32,
        frame_type: FrameType,
        composition_time: i32,
        data: Bytes,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<usize>, DemuxError> {
        let track = &mut self.tracks[index];
        let Some(id) = track.id else {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "media of a track outside the track set",
            );
            return Ok(None);
        };
        if frame_type == FrameType::Keyframe {
            if let Some(next) = track.next.take() {
                out.push(MediaEvent::Config(id, next.clone()));
                track.config = Some(next);
                track.apply_frame_rate();
            }
            if let Some(config) = sized_vp9(track.config.as_deref(), &data) {
                let config = Arc::new(config);
                out.push(MediaEvent::Config(id, config.clone()));
                self.notices.push(ConfigNotice {
                    source: track.source,
                    config: config.clone(),
                    colour: track.colour.clone(),
                });
                track.config = Some(config);
            }
        }
        let Some(config) = track.config.clone() else {
            return Ok(None);
        };
        let malformed = |source| DemuxError::Malformed {
            kind: at.kind,
            timestamp: at.timestamp,
            source,
        };
        let keyframe = match &*config {
            CodecConfig::H264(h) => {
                split_avcc(&data, h.record.length_size, &mut self.nals).map_err(malformed)?;
                if self.nals.is_empty() {
                    return Ok(self.empty_access_unit());
                }
                self.nals
                    .iter()
                    .any(|nal| nal_unit_type(nal) == Some(nal_type::IDR))
            }
            CodecConfig::Hevc(h) => hevc::is_keyframe(&data, h.length_size)
                .map_err(|e| codec_error("HEVC", track.source, at.timestamp, e))?,
            CodecConfig::Vp9(_) => vp9::is_keyframe(&data),
            _ => frame_type == FrameType::Keyframe,
        };
        if data.is_empty() {
            return Ok(self.empty_access_unit());
        }
        let track = &mut self.tracks[index];
        let mapped = self.timeline.map(at.timestamp);
        let mapped_time = mapped.time + nano_ticks(nanos);
        // Decoding times strictly increase (ISO/IEC 13818-1 §2.7.5): muxers that cannot write
        // negative FLV timestamps stamp a B-frame stream's first frames alike (GStreamer's
        // flvmux does), so a repeated DTS moves one tick on.
        let dts = track
            .last_dts
            .map_or(mapped_time, |last| mapped_time.max(last + Duration90k(1)));
        // The frame duration: the configuration's frame rate when it gives one; otherwise the
        // decoding interval, smoothed (some muxers stamp B-frame streams with uneven DTS
        // steps).
        let from_config = track.configured_frame_rate().is_some();
        if let (Some(last), false) = (track.last_dts, from_config) {
            let interval = dts.saturating_since(last).min(MAX_FRAME_DURATION);
            if interval > Duration90k::ZERO {
                let smoothed = (track.frame_duration.ticks() * 7 + interval.ticks()) / 8;
                track.frame_duration = Duration90k(smoothed);
            }
        }
        track.last_dts = Some(dts);
        self.framed = true;
        out.push(MediaEvent::Frame(Frame {
            track: id,
            dts,
            pts: presentation_time(dts, composition_time),
            duration: track.frame_duration,
            keyframe,
            discontinuity: mapped.discontinuity,
            data,
            received: at.received,
        }));
        Ok(Some(out.len() - 1))
    }

    fn empty_access_unit(&mut self) -> Option<usize> {
        self.dropped.empty_access_units += 1;
        warn_once(
            self.dropped.empty_access_units,
            "access unit without coded data",
        );
        None
    }

    /// Places one audio frame; returns where in `out` the frame went, if it made one.
    fn audio_frame(
        &mut self,
        index: usize,
        at: At,
        nanos: u32,
        data: Bytes,
        out: &mut Vec<MediaEvent>,
    ) -> Result<Option<usize>, DemuxError> {
        let track = &mut self.tracks[index];
        let Some(id) = track.id else {
            self.dropped.untracked += 1;
            warn_once(
                self.dropped.untracked,
                "media of a track outside the track set",
            );
            return Ok(None);
        };
        let Some(config) = track.config.as_deref() else {
            return Ok(None);
        };
        if data.is_empty() {
            return Ok(self.empty_access_unit());
        }
        if let CodecConfig::Aac(aac) = config {
            // Every output can carry it: the TS output behind an ADTS header, whose length
            // field bounds a frame.
            aac.adts
                .header(data.len())
                .map_err(|source| DemuxError::Malformed {
                    kind: at.kind,
                    timestamp: at.timestamp,
                    source,
                })?;
        }
        let samples = config
            .frame_samples(&data)
            .unwrap_or(Ok(0))
            .map_err(|e| codec_error(config.name(), track.source, at.timestamp, e))?;
        let rate = u64::from(config.sample_rate().unwrap_or(48_000).max(1));
        let duration = Duration90k(u64::from(samples) * Duration90k::HZ / rate);
        let mapped = self.timeline.map(at.timestamp);
        let time = mapped.time + nano_ticks(nanos);
        let pts = track.last_pts.map_or(time, |last| time.max(last));
        track.last_pts = Some(pts);
        self.framed = true;
        out.push(MediaEvent::Frame(Frame {
            track: id,
            dts: pts,
            pts,
            duration,
            keyframe: true,
            discontinuity: mapped.discontinuity,
            data,
            received: at.received,
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

/// Where a message came from: its kind, timestamp and arrival.
#[derive(Clone, Copy)]
struct At {
    kind: TagKind,
    timestamp: RtmpTimestamp,
    received: Instant,
}

/// ModEx TimestampOffsetNano on the 90 kHz clock: at most 999,999 ns (90 ticks) as the
/// specification bounds it; a 24-bit value can say up to 1,510 ticks, which is taken as sent.
fn nano_ticks(nanos: u32) -> Duration90k {
    Duration90k(u64::from(nanos) * Duration90k::HZ / 1_000_000_000)
}

/// Refuses a video codec the server does not take, by name.
fn supported_video(codec: VideoCodec) -> Result<(), DemuxError> {
    match codec {
        VideoCodec::Other(other) => Err(DemuxError::UnsupportedVideoCodec(other.to_string())),
        _ => Ok(()),
    }
}

fn codec_error(
    codec: &'static str,
    track: u8,
    timestamp: RtmpTimestamp,
    source: CodecError,
) -> DemuxError {
    DemuxError::BadCodecData {
        codec,
        track,
        timestamp,
        source,
    }
}

/// A VP9 configuration with the picture size of this keyframe, when it differs from the
/// size `config` has.
fn sized_vp9(config: Option<&CodecConfig>, keyframe: &[u8]) -> Option<CodecConfig> {
    let Some(CodecConfig::Vp9(vp9)) = config else {
        return None;
    };
    let (width, height) = vp9::frame_size(keyframe)?;
    if (vp9.facts.width, vp9.facts.height) == (width, height) {
        return None;
    }
    let mut sized = vp9.clone();
    sized.facts = VideoFacts {
        width,
        height,
        ..vp9.facts.clone()
    };
    Some(CodecConfig::Vp9(sized))
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
    use crate::flv::tag::{AudioBody, AudioMessage, AudioPacket};

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
            demux.push(kind, ts, body, now, &mut events).unwrap();
            notices += demux.take_notices().count();
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
                demux
                    .push(
                        TagKind::Video,
                        ts,
                        Bytes::from(body.clone()),
                        now,
                        &mut events,
                    )
                    .unwrap();
                let notices: Vec<_> = demux.take_notices().collect();
                assert!(
                    matches!(notices.last(), Some(n) if n.config.kind() == TrackKind::Video),
                    "{notices:?}"
                );
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
            for track in &mut demux.tracks {
                if let Some(config) = track.config.as_mut()
                    && let CodecConfig::H264(h) = Arc::make_mut(config)
                {
                    h.info.frame_rate = None;
                }
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

    fn demux_file(name: &str) -> (FlvDemuxer, Vec<MediaEvent>) {
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        for (kind, ts, body) in tags(name) {
            demux.push(kind, ts, body, now, &mut events).unwrap();
        }
        demux.finish(&mut events);
        (demux, events)
    }

    fn start(events: &[MediaEvent]) -> &Tracks {
        match &events[0] {
            MediaEvent::Start(tracks) => tracks,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_multitrack_publish_has_a_track_per_rendition() {
        let (_, events) = demux_file("h264_multitrack.flv");
        let tracks = start(&events);
        let layout: Vec<_> = tracks
            .tracks
            .iter()
            .map(|t| {
                let facts = t.config.as_deref().and_then(CodecConfig::video_facts);
                (t.kind, t.source, facts.map(|f| (f.width, f.height)))
            })
            .collect();
        assert_eq!(
            layout,
            [
                (TrackKind::Video, 0, Some((320, 180))),
                (TrackKind::Video, 1, Some((256, 144))),
                (TrackKind::Video, 2, Some((160, 90))),
                (TrackKind::Audio, 0, None),
            ]
        );
        assert!(tracks.is_multitrack());
        for id in 0..3 {
            let video: Vec<_> = frames(&events).filter(|f| f.track == TrackId(id)).collect();
            assert_eq!(video.len(), 60, "track {id}");
            assert!(video[0].keyframe && video[30].keyframe, "track {id}");
            assert!(video.windows(2).all(|w| w[1].dts > w[0].dts));
        }
        assert_eq!(
            frames(&events).filter(|f| f.track == TrackId(3)).count(),
            95
        );
    }

    #[test]
    fn enhanced_codecs_are_configured_and_framed() {
        for (file, video, audio) in [
            ("hevc_aac.flv", "hvc1.", "mp4a.40.2"),
            ("av1_opus.flv", "av01.", "opus"),
            ("vp9_opus.flv", "vp09.", "opus"),
            ("h264_flac.flv", "avc1.", "fLaC"),
            ("h264_ac3.flv", "avc1.", "ac-3"),
        ] {
            // Every non-empty coded audio frame of the file.
            let audio_frames = tags(file)
                .into_iter()
                .filter(|(kind, _, body)| {
                    *kind == TagKind::Audio
                        && AudioMessage::parse(body).is_ok_and(|mut m| {
                            m.packets().all(|p| {
                                matches!(p, Ok(AudioPacket { body: AudioBody::CodedFrames(d), .. }) if !d.is_empty())
                            })
                        })
                })
                .count();
            let (demux, events) = demux_file(file);
            let tracks = start(&events);
            // The configuration as it applies at the first video frame (VP9 learns its
            // picture size from its first keyframe).
            let first_video = events
                .iter()
                .position(|e| matches!(e, MediaEvent::Frame(f) if f.track == TrackId(0)))
                .unwrap();
            let v = events[..first_video]
                .iter()
                .rev()
                .find_map(|e| match e {
                    MediaEvent::Config(TrackId(0), c) => Some(c.clone()),
                    _ => None,
                })
                .or_else(|| tracks.of(TrackKind::Video).unwrap().config.clone())
                .unwrap();
            let a = tracks.of(TrackKind::Audio).unwrap().config.clone().unwrap();
            assert!(v.codec_string().starts_with(video), "{file}: {v:?}");
            assert_eq!(a.codec_string(), audio, "{file}");
            let facts = v.video_facts().unwrap();
            assert_eq!((facts.width, facts.height), (320, 180), "{file}");
            let video_frames: Vec<_> = frames(&events).filter(|f| f.track == TrackId(0)).collect();
            assert_eq!(video_frames.len(), 60, "{file}");
            assert_eq!(
                video_frames.iter().filter(|f| f.keyframe).count(),
                2,
                "{file}: a keyframe a second"
            );
            let audio: Vec<_> = frames(&events).filter(|f| f.track == TrackId(1)).collect();
            assert_eq!(audio.len(), audio_frames, "{file}");
            // Every audio frame lasts what its header says: 20 ms of Opus, 1024 AAC samples,
            // 1536 AC-3 samples, FLAC blocks, all at 48 kHz.
            assert!(
                audio.iter().all(|f| f.duration > Duration90k::ZERO),
                "{file}"
            );
            assert_eq!(demux.dropped().audio_before_config, 0, "{file}");
        }
    }

    fn hevc_record() -> Bytes {
        let file = tags("hevc_aac.flv");
        file.into_iter()
            .find_map(|(kind, _, body)| {
                let mut m = VideoMessage::parse(&body).ok()?;
                let packet = m.packets().next()?.ok()?;
                match (kind, packet.body) {
                    (TagKind::Video, VideoBody::SequenceStart(record)) => Some(record),
                    _ => None,
                }
            })
            .unwrap()
    }

    fn ex_video(first: u8, fourcc: &[u8; 4], rest: &[u8]) -> Bytes {
        let mut body = vec![first];
        body.extend_from_slice(fourcc);
        body.extend_from_slice(rest);
        Bytes::from(body)
    }

    #[test]
    fn bad_enhanced_input_ends_the_publish_by_name() {
        let now = Instant::now();
        let ts = RtmpTimestamp(0);
        // A truncated HEVC record.
        let record = hevc_record();
        let mut demux = FlvDemuxer::new();
        let err = demux
            .push(
                TagKind::Video,
                ts,
                ex_video(0x90, b"hvc1", &record[..10]),
                now,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            matches!(err, DemuxError::BadCodecData { codec: "HEVC", .. }),
            "{err}"
        );
        // A track id over the limit (multitrack OneTrack, track 200).
        let mut body = vec![0x96, 0x00, b'h', b'v', b'c', b'1', 200];
        body.extend_from_slice(&record);
        let err = FlvDemuxer::new()
            .push(TagKind::Video, ts, Bytes::from(body), now, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(err, DemuxError::TooManyTracks { track: 200, .. }),
            "{err}"
        );
        // A ninth audio track with a limit of eight.
        let mut demux = FlvDemuxer::new().with_limits(TrackLimits { video: 8, audio: 2 });
        let aac = [0x12, 0x10];
        for track in 0..3u8 {
            let body = Bytes::from([&[0x90, b'm', b'p', b'4', b'a'][..], &aac].concat());
            let one =
                Bytes::from([&[0x95, 0x00, b'm', b'p', b'4', b'a', track][..], &aac].concat());
            let result = demux.push(
                TagKind::Audio,
                ts,
                if track == 0 { body } else { one },
                now,
                &mut Vec::new(),
            );
            assert_eq!(result.is_err(), track == 2, "track {track}: {result:?}");
        }
        // An unknown FourCC.
        let err = FlvDemuxer::new()
            .push(
                TagKind::Video,
                ts,
                ex_video(0x90, b"vvc1", &[1]),
                now,
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(matches!(err, DemuxError::UnsupportedVideoCodec(ref n) if n.contains("vvc1")));
    }

    #[test]
    fn frames_before_their_sequence_start_are_dropped_and_counted() {
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        let now = Instant::now();
        demux
            .push(
                TagKind::Video,
                RtmpTimestamp(0),
                ex_video(0x91, b"av01", &[0x12, 0x00]),
                now,
                &mut events,
            )
            .unwrap();
        assert_eq!(demux.dropped().video_before_config, 1);
        assert!(events.is_empty());
    }

    #[test]
    fn a_codec_change_on_a_live_track_applies_at_its_next_keyframe() {
        let mut demux = FlvDemuxer::new();
        demux.expect_tracks(true, false);
        let mut events = Vec::new();
        let now = Instant::now();
        let h264: Vec<_> = tags("h264_aac.flv")
            .into_iter()
            .filter(|(kind, _, _)| *kind == TagKind::Video)
            .take(40)
            .collect();
        let last = h264.last().unwrap().1;
        for (kind, ts, body) in h264 {
            demux.push(kind, ts, body, now, &mut events).unwrap();
        }
        // The same track switches to HEVC: its sequence start, then an HEVC keyframe.
        let hevc = tags("hevc_aac.flv");
        let mut hevc_video = hevc
            .into_iter()
            .filter(|(kind, _, _)| *kind == TagKind::Video);
        let (_, _, start) = hevc_video.next().unwrap();
        demux
            .push(
                TagKind::Video,
                last.wrapping_add(33),
                start,
                now,
                &mut events,
            )
            .unwrap();
        let key = hevc_video
            .find(|(_, _, body)| body[0] == 0x91)
            .map(|(_, _, body)| body)
            .unwrap();
        demux
            .push(TagKind::Video, last.wrapping_add(66), key, now, &mut events)
            .unwrap();
        let n = events.len();
        assert!(
            matches!(&events[n - 2], MediaEvent::Config(TrackId(0), c) if matches!(**c, CodecConfig::Hevc(_))),
            "{:?}",
            &events[n - 2]
        );
        assert!(matches!(&events[n - 1], MediaEvent::Frame(f) if f.keyframe));
    }

    #[test]
    fn mod_ex_nanosecond_offsets_are_folded_into_media_time() {
        let mut demux = FlvDemuxer::new();
        demux.expect_tracks(false, true);
        let mut events = Vec::new();
        let now = Instant::now();
        let head = tags("av1_opus.flv")
            .into_iter()
            .find_map(|(kind, _, body)| {
                let mut m = AudioMessage::parse(&body).ok()?;
                match m.packets().next()?.ok()?.body {
                    AudioBody::SequenceStart(h) if kind == TagKind::Audio => Some(h),
                    _ => None,
                }
            })
            .unwrap();
        let start = [&[0x90, b'O', b'p', b'u', b's'][..], &head].concat();
        demux
            .push(
                TagKind::Audio,
                RtmpTimestamp(0),
                Bytes::from(start),
                now,
                &mut events,
            )
            .unwrap();
        // ModEx: 3 bytes of TimestampOffsetNano = 500,000 ns, then CodedFrames, 'Opus',
        // one 20 ms CELT packet (TOC 0xfc: config 31, stereo, one frame).
        for (ms, nanos) in [(0u32, 0u32), (20, 500_000)] {
            let n = nanos.to_be_bytes();
            let body = [
                0x97, 2, n[1], n[2], n[3], 0x01, b'O', b'p', b'u', b's', 0xfc, 0xff,
            ];
            demux
                .push(
                    TagKind::Audio,
                    RtmpTimestamp(ms),
                    Bytes::copy_from_slice(&body),
                    now,
                    &mut events,
                )
                .unwrap();
        }
        let times: Vec<_> = frames(&events).map(|f| f.pts).collect();
        assert_eq!(times.len(), 2);
        // 20 ms and 0.5 ms: 1,800 + 45 ticks.
        assert_eq!(times[1].saturating_since(times[0]), Duration90k(1_845));
        assert!(frames(&events).all(|f| f.duration == Duration90k(1_800)));
    }
}
