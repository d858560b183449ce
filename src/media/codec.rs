//! Codec configurations: what a decoder needs before the first frame of a track, checked once
//! when it arrives, in a form every output can use (the TS muxer puts parameter sets in
//! front of keyframes and ADTS headers in front of AAC frames; the CMAF writer puts the same
//! records into its sample entries).
//!
//! Spec: ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord), ISO/IEC 14496-3 §1.6.2.1
//! (AudioSpecificConfig), RFC 6381 §3.3 (codec strings).

use bytes::Bytes;

use crate::flv::aac::{AdtsConfig, AudioInfo, AudioSpecificConfig};
use crate::flv::avc::{AvcDecoderConfig, VideoInfo};
use crate::media::Duration90k;

/// Whether a track carries pictures or sound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

/// A track's codec and its decoder configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum CodecConfig {
    /// H.264 / AVC. Frames are AVCC access units (length-prefixed NAL units), as FLV and
    /// ISO BMFF carry them.
    H264(H264Config),
    /// AAC. Frames are raw AAC access units, without ADTS headers.
    Aac(AacConfig),
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
            CodecConfig::H264(_) => TrackKind::Video,
            CodecConfig::Aac(_) => TrackKind::Audio,
        }
    }

    /// The RFC 6381 codec string (`avc1.64001F`, `mp4a.40.2`), as playlists' CODECS and the
    /// stats API give it.
    pub fn codec_string(&self) -> &str {
        match self {
            CodecConfig::H264(c) => &c.info.codec,
            CodecConfig::Aac(c) => &c.info.codec,
        }
    }
}
