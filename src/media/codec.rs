//! Codec configurations: what a decoder needs before the first frame of a track, checked once
//! when it arrives, in a form every output can use (the TS muxer puts parameter sets in
//! front of keyframes and ADTS headers in front of AAC frames; the CMAF writer puts the same
//! records into its sample entries).
//!
//! Spec: ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord), ISO/IEC 14496-3 §1.6.2.1
//! (AudioSpecificConfig), RFC 6381 §3.3 (codec strings).

use bytes::Bytes;

use crate::codec::ac3::{self, Ac3Config};
use crate::codec::av1::Av1Config;
use crate::codec::flac::FlacConfig;
use crate::codec::hevc::HevcConfig;
use crate::codec::mp3::Mp3Header;
use crate::codec::opus::{self, OpusConfig};
use crate::codec::vp9::Vp9Config;
use crate::codec::{AudioFacts, CodecError, VideoFacts};
use crate::flv::aac::{AdtsConfig, AudioInfo, AudioSpecificConfig};
use crate::flv::avc::{AvcDecoderConfig, VideoInfo};
use crate::media::Duration90k;

/// Whether a track carries pictures or sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    /// `video` or `audio`, as the stats API names a track's kind.
    pub fn name(self) -> &'static str {
        match self {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        }
    }
}

/// A track's codec and its decoder configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum CodecConfig {
    /// H.264 / AVC. Frames are AVCC access units (length-prefixed NAL units), as FLV and
    /// ISO BMFF carry them.
    H264(H264Config),
    /// AAC. Frames are raw AAC access units, without ADTS headers.
    Aac(AacConfig),
    /// HEVC. Frames are length-prefixed NAL units, as FLV and ISO BMFF carry them.
    Hevc(HevcConfig),
    /// AV1. Frames are temporal units of OBUs in the low-overhead format.
    Av1(Av1Config),
    /// VP9. Frames are VP9 frames (or superframes).
    Vp9(Vp9Config),
    /// Opus. Frames are Opus packets.
    Opus(OpusConfig),
    /// FLAC. Frames are FLAC frames.
    Flac(FlacConfig),
    /// AC-3 or E-AC-3, configured from the first syncframe. Frames are syncframes.
    Ac3(Ac3Config),
    /// MP3, configured from the first frame header. Frames are MPEG audio frames.
    Mp3(Mp3Config),
}

/// An MP3 track's configuration: what its first frame header says.
#[derive(Clone, Debug, PartialEq)]
pub struct Mp3Config {
    pub header: Mp3Header,
    pub facts: AudioFacts,
}

/// An H.264 track's configuration: the record as the encoder sent it, validated, and what its
/// first SPS says.
#[derive(Clone, Debug, PartialEq)]
pub struct H264Config {
    pub record: AvcDecoderConfig,
    pub info: VideoInfo,
}

/// An AAC track's configuration: the AudioSpecificConfig bytes as the encoder sent them, what
/// they say, and the ADTS header fields the TS output writes.
#[derive(Clone, Debug, PartialEq)]
pub struct AacConfig {
    /// The AudioSpecificConfig, byte for byte (an ISO BMFF `esds` carries it as it is).
    pub raw: Bytes,
    pub config: AudioSpecificConfig,
    pub adts: AdtsConfig,
    pub info: AudioInfo,
}

impl AacConfig {
    /// PCM samples per AAC frame: 1024 (960 with frameLengthFlag, which ADTS cannot carry and
    /// is refused before this point).
    pub fn samples_per_frame(&self) -> u32 {
        crate::flv::aac::SAMPLES_PER_FRAME
    }

    /// One frame's duration on the 90 kHz clock, rounded down.
    pub fn frame_duration(&self) -> Duration90k {
        self.adts.frame_duration()
    }
}

impl CodecConfig {
    pub fn kind(&self) -> TrackKind {
        match self {
            CodecConfig::H264(_)
            | CodecConfig::Hevc(_)
            | CodecConfig::Av1(_)
            | CodecConfig::Vp9(_) => TrackKind::Video,
            CodecConfig::Aac(_)
            | CodecConfig::Opus(_)
            | CodecConfig::Flac(_)
            | CodecConfig::Ac3(_)
            | CodecConfig::Mp3(_) => TrackKind::Audio,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001F`, `mp4a.40.2`, `hvc1.1.6.L93.B0`, `opus`), as
    /// playlists' CODECS and the stats API give it.
    pub fn codec_string(&self) -> &str {
        match self {
            CodecConfig::H264(c) => &c.info.codec,
            CodecConfig::Aac(c) => &c.info.codec,
            CodecConfig::Hevc(c) => &c.facts.codec,
            CodecConfig::Av1(c) => &c.facts.codec,
            CodecConfig::Vp9(c) => &c.facts.codec,
            CodecConfig::Opus(c) => &c.facts.codec,
            CodecConfig::Flac(c) => &c.facts.codec,
            CodecConfig::Ac3(c) => &c.facts.codec,
            CodecConfig::Mp3(c) => &c.facts.codec,
        }
    }

    /// The configuration bytes as the encoder sent them (to tell a repeated sequence start
    /// from a new one); `None` for codecs configured from their frames.
    pub fn source_bytes(&self) -> Option<&Bytes> {
        match self {
            CodecConfig::H264(c) => Some(c.record.record()),
            CodecConfig::Aac(c) => Some(&c.raw),
            CodecConfig::Hevc(c) => Some(&c.record),
            CodecConfig::Av1(c) => Some(&c.record),
            CodecConfig::Vp9(c) => Some(&c.record),
            CodecConfig::Opus(c) => Some(&c.head),
            CodecConfig::Flac(c) => Some(&c.metadata),
            CodecConfig::Ac3(_) | CodecConfig::Mp3(_) => None,
        }
    }

    /// The codec's name for logs and refusals.
    pub fn name(&self) -> &'static str {
        match self {
            CodecConfig::H264(_) => "H.264",
            CodecConfig::Aac(_) => "AAC",
            CodecConfig::Hevc(_) => "HEVC",
            CodecConfig::Av1(_) => "AV1",
            CodecConfig::Vp9(_) => "VP9",
            CodecConfig::Opus(_) => "Opus",
            CodecConfig::Flac(_) => "FLAC",
            CodecConfig::Ac3(c) if c.eac3 => "E-AC-3",
            CodecConfig::Ac3(_) => "AC-3",
            CodecConfig::Mp3(_) => "MP3",
        }
    }

    /// Whether the MPEG-TS output carries it: H.264 and AAC only (HEVC goes to CMAF, which
    /// every HEVC player reads; Apple requires fMP4 for HEVC).
    pub fn in_ts(&self) -> bool {
        matches!(self, CodecConfig::H264(_) | CodecConfig::Aac(_))
    }

    /// The frame rate a video configuration states (H.264/HEVC VUI timing, AV1 timing info),
    /// without building its facts (this is asked per frame).
    pub fn frame_rate(&self) -> Option<f64> {
        let stated = match self {
            CodecConfig::H264(c) => c.info.frame_rate,
            CodecConfig::Hevc(c) => c.facts.frame_rate,
            CodecConfig::Av1(c) => c.facts.frame_rate,
            CodecConfig::Vp9(c) => c.facts.frame_rate,
            _ => None,
        };
        stated.filter(|fps| plausible_frame_rate(*fps))
    }

    /// A video track's picture facts.
    pub fn video_facts(&self) -> Option<VideoFacts> {
        match self {
            CodecConfig::H264(c) => Some(VideoFacts {
                width: c.info.width,
                height: c.info.height,
                bit_depth: 8,
                chroma_format: 1,
                frame_rate: c.info.frame_rate,
                codec: c.info.codec.clone(),
            }),
            CodecConfig::Hevc(c) => Some(c.facts.clone()),
            CodecConfig::Av1(c) => Some(c.facts.clone()),
            CodecConfig::Vp9(c) => Some(c.facts.clone()),
            _ => None,
        }
        .map(|mut facts| {
            facts.frame_rate = facts.frame_rate.filter(|fps| plausible_frame_rate(*fps));
            facts
        })
    }

    /// An audio track's sound facts.
    pub fn audio_facts(&self) -> Option<AudioFacts> {
        match self {
            CodecConfig::Aac(c) => Some(AudioFacts {
                sample_rate: c.info.sample_rate,
                channels: c.info.channels,
                codec: c.info.codec.clone(),
            }),
            CodecConfig::Opus(c) => Some(c.facts.clone()),
            CodecConfig::Flac(c) => Some(c.facts.clone()),
            CodecConfig::Ac3(c) => Some(c.facts.clone()),
            CodecConfig::Mp3(c) => Some(c.facts.clone()),
            _ => None,
        }
    }

    /// An audio track's sample rate: the timescale its samples are counted in (48 kHz for
    /// Opus, whatever its input rate). `None` for video.
    pub fn sample_rate(&self) -> Option<u32> {
        match self {
            CodecConfig::Aac(c) => Some(c.info.sample_rate),
            CodecConfig::Opus(_) => Some(48_000),
            CodecConfig::Flac(c) => Some(c.sample_rate),
            CodecConfig::Ac3(c) => Some(c.sample_rate),
            CodecConfig::Mp3(c) => Some(c.header.sample_rate),
            _ => None,
        }
    }

    /// PCM samples (at [`CodecConfig::sample_rate`]) in one coded audio frame, checked
    /// against the frame's own header where the codec has one; `None` for video.
    pub fn frame_samples(&self, frame: &[u8]) -> Option<Result<u32, CodecError>> {
        Some(match self {
            CodecConfig::Aac(c) => Ok(c.samples_per_frame()),
            CodecConfig::Opus(_) => opus::packet_samples(frame),
            CodecConfig::Flac(c) => c.frame_samples(frame),
            CodecConfig::Ac3(_) => ac3::frame_samples(frame),
            CodecConfig::Mp3(_) => Mp3Header::parse(frame).map(|h| h.samples_per_frame),
            _ => return None,
        })
    }
}

/// A frame rate a configuration may state: 0.5 to 1,000 frames a second. Timing fields
/// outside that are bogus (a publisher's, not a camera's), and the frame durations and
/// playlists' FRAME-RATE derived from them would be too.
fn plausible_frame_rate(fps: f64) -> bool {
    fps.is_finite() && (0.5..=1000.0).contains(&fps)
}

/// What the stats API and the webhooks say about one track.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrackSummary {
    /// `video` or `audio`.
    pub kind: &'static str,
    /// The publisher's track id (the FLV track id; 0 for a stream's only track of a kind).
    pub track: u8,
    /// RFC 6381 codec string, e.g. `avc1.64001F`, `hvc1.1.6.L93.B0`, `opus`.
    pub codec: String,
    /// The codec's name: `H.264`, `HEVC`, `AV1`, `VP9`, `AAC`, `Opus`, ...
    pub name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// HDR and colour description from the encoder's Enhanced RTMP metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<crate::flv::colour::ColourInfo>,
    /// The track's ingest bit rate, measured over the last seconds (the stats API fills it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate_kbps: Option<u64>,
}

impl CodecConfig {
    /// The track's summary for the stats API and the webhooks; `source` is its FLV track id.
    pub fn summary(&self, source: u8) -> TrackSummary {
        let video = self.video_facts();
        let audio = self.audio_facts();
        let (profile, level) = match self {
            CodecConfig::H264(h) => (
                Some(h264_profile_name(h.info.profile_idc, h.info.constraint_flags).to_owned()),
                Some(format!(
                    "{}.{}",
                    h.info.level_idc / 10,
                    h.info.level_idc % 10
                )),
            ),
            CodecConfig::Hevc(h) => (
                Some(h.general_profile_idc.to_string()),
                Some(format!("{:.1}", f64::from(h.general_level_idc) / 30.0)),
            ),
            CodecConfig::Av1(a) => (
                Some(a.seq_profile.to_string()),
                Some(a.seq_level_idx_0.to_string()),
            ),
            CodecConfig::Vp9(v) => (Some(v.profile.to_string()), Some(v.level.to_string())),
            _ => (None, None),
        };
        TrackSummary {
            kind: self.kind().name(),
            track: source,
            codec: self.codec_string().to_owned(),
            name: self.name(),
            profile,
            level,
            width: video.as_ref().map(|v| v.width),
            height: video.as_ref().map(|v| v.height),
            bit_depth: video.as_ref().map(|v| v.bit_depth),
            frame_rate: video.as_ref().and_then(|v| v.frame_rate),
            sample_rate: audio.as_ref().map(|a| a.sample_rate),
            channels: audio.as_ref().map(|a| a.channels),
            colour: None,
            bitrate_kbps: None,
        }
    }
}

/// The H.264 profile's name for `profile_idc` and the constraint flags (ISO/IEC 14496-10
/// Annex A.2).
fn h264_profile_name(profile_idc: u8, constraint_flags: u8) -> &'static str {
    match profile_idc {
        66 if constraint_flags & 0x40 != 0 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_profile_names() {
        assert_eq!(h264_profile_name(100, 0), "High");
        assert_eq!(h264_profile_name(66, 0x40), "Constrained Baseline");
        assert_eq!(h264_profile_name(66, 0), "Baseline");
        assert_eq!(h264_profile_name(77, 0), "Main");
    }
}
