//! FLV tag bodies as RTMP audio and video messages carry them: the audio and video tag
//! headers, with every legacy codec named and Enhanced RTMP's extended headers recognised.
//!
//! Payloads are zero-copy [`Bytes`] slices of the message body.
//!
//! Spec: FLV 10.1 §E.4.2.1 (AUDIODATA), §E.4.2.2 (AACAUDIODATA), §E.4.3.1 (VIDEODATA),
//! §E.4.3.2 (AVCVIDEOPACKET); Enhanced RTMP v2 (veovera) "Enhancing Audio", "Enhancing Video".

use std::fmt;

use bytes::Bytes;

use crate::flv::error::FlvError;

/// The kind of an FLV tag.
///
/// Spec: FLV 10.1 §E.4.1 TagType (five bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagType {
    /// TagType 8.
    Audio,
    /// TagType 9.
    Video,
    /// TagType 18 (AMF0 data such as onMetaData).
    ScriptData,
}

impl TagType {
    /// The tag kind for a TagType value, or `None` for a reserved one.
    pub fn from_u8(tag_type: u8) -> Option<TagType> {
        match tag_type {
            8 => Some(TagType::Audio),
            9 => Some(TagType::Video),
            18 => Some(TagType::ScriptData),
            _ => None,
        }
    }
}

/// What a video tag holds, as far as picture decoding goes.
///
/// Spec: FLV 10.1 §E.4.3.1 FrameType; Enhanced RTMP v2 VideoFrameType (the same values in
/// three bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameType {
    /// 1: a keyframe (for AVC, a seekable frame).
    Keyframe,
    /// 2: an inter frame.
    InterFrame,
    /// 3: a disposable inter frame (H.263 only).
    DisposableInterFrame,
    /// 4: a generated keyframe (reserved for server use).
    GeneratedKeyframe,
    /// 5: a video info/command frame: carries a command byte, not a picture.
    VideoInfoCommand,
}

impl FrameType {
    fn parse(value: u8) -> Result<FrameType, FlvError> {
        match value {
            1 => Ok(FrameType::Keyframe),
            2 => Ok(FrameType::InterFrame),
            3 => Ok(FrameType::DisposableInterFrame),
            4 => Ok(FrameType::GeneratedKeyframe),
            5 => Ok(FrameType::VideoInfoCommand),
            _ => Err(FlvError::InvalidField {
                structure: "VIDEODATA",
                field: "FrameType",
                value: u32::from(value),
                reason: "reserved",
            }),
        }
    }
}

/// A legacy (non-extended) FLV video codec.
///
/// Spec: FLV 10.1 §E.4.3.1 CodecID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodecId {
    /// 1: JPEG (listed as currently unused).
    Jpeg,
    /// 2: Sorenson H.263.
    SorensonH263,
    /// 3: Screen video.
    ScreenVideo,
    /// 4: On2 VP6.
    Vp6,
    /// 5: On2 VP6 with alpha channel.
    Vp6Alpha,
    /// 6: Screen video version 2.
    ScreenVideoV2,
    /// 7: AVC (H.264).
    Avc,
    /// Any other value: not assigned by FLV 10.1.
    Unassigned(u8),
}

impl VideoCodecId {
    fn from_u8(codec_id: u8) -> VideoCodecId {
        match codec_id {
            1 => VideoCodecId::Jpeg,
            2 => VideoCodecId::SorensonH263,
            3 => VideoCodecId::ScreenVideo,
            4 => VideoCodecId::Vp6,
            5 => VideoCodecId::Vp6Alpha,
            6 => VideoCodecId::ScreenVideoV2,
            7 => VideoCodecId::Avc,
            other => VideoCodecId::Unassigned(other),
        }
    }
}

impl fmt::Display for VideoCodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodecId::Jpeg => f.write_str("JPEG"),
            VideoCodecId::SorensonH263 => f.write_str("Sorenson H.263"),
            VideoCodecId::ScreenVideo => f.write_str("Screen video"),
            VideoCodecId::Vp6 => f.write_str("On2 VP6"),
            VideoCodecId::Vp6Alpha => f.write_str("On2 VP6 with alpha"),
            VideoCodecId::ScreenVideoV2 => f.write_str("Screen video v2"),
            VideoCodecId::Avc => f.write_str("H.264"),
            VideoCodecId::Unassigned(id) => write!(f, "video codec id {id}"),
        }
    }
}

/// A video codec named by an Enhanced RTMP FourCC.
///
/// Spec: Enhanced RTMP v2 VideoFourCc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFourCc {
    /// 'avc1': H.264 in the extended header.
    Avc1,
    /// 'hvc1': HEVC (H.265).
    Hvc1,
    /// 'av01': AV1.
    Av01,
    /// 'vp09': VP9.
    Vp09,
    /// 'vp08': VP8.
    Vp08,
    /// Any other FourCC.
    Other([u8; 4]),
}

impl VideoFourCc {
    fn from_bytes(fourcc: [u8; 4]) -> VideoFourCc {
        match &fourcc {
            b"avc1" => VideoFourCc::Avc1,
            b"hvc1" => VideoFourCc::Hvc1,
            b"av01" => VideoFourCc::Av01,
            b"vp09" => VideoFourCc::Vp09,
            b"vp08" => VideoFourCc::Vp08,
            _ => VideoFourCc::Other(fourcc),
        }
    }
}

impl fmt::Display for VideoFourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoFourCc::Avc1 => f.write_str("H.264 ('avc1', Enhanced RTMP)"),
            VideoFourCc::Hvc1 => f.write_str("HEVC ('hvc1', Enhanced RTMP)"),
            VideoFourCc::Av01 => f.write_str("AV1 ('av01', Enhanced RTMP)"),
            VideoFourCc::Vp09 => f.write_str("VP9 ('vp09', Enhanced RTMP)"),
            VideoFourCc::Vp08 => f.write_str("VP8 ('vp08', Enhanced RTMP)"),
            VideoFourCc::Other(cc) => write!(f, "FourCC {} (Enhanced RTMP)", fourcc_text(cc)),
        }
    }
}

/// A video codec this server does not remux, named for logs and publish refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherVideo {
    /// A legacy CodecID other than AVC.
    Legacy(VideoCodecId),
    /// An Enhanced RTMP FourCC other than 'avc1'.
    Enhanced(VideoFourCc),
    /// Enhanced RTMP's Multitrack packet type (6), which wraps several codecs.
    EnhancedMultitrack,
    /// Enhanced RTMP's ModEx packet type (7), a modifier prefix to another packet.
    EnhancedModEx,
}

impl fmt::Display for OtherVideo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherVideo::Legacy(codec) => codec.fmt(f),
            OtherVideo::Enhanced(fourcc) => fourcc.fmt(f),
            OtherVideo::EnhancedMultitrack => f.write_str("Enhanced RTMP multitrack video"),
            OtherVideo::EnhancedModEx => f.write_str("Enhanced RTMP ModEx video"),
        }
    }
}

/// An AVC packet: a decoder configuration or an access unit.
///
/// Spec: FLV 10.1 §E.4.3.2 AVCVIDEOPACKET; Enhanced RTMP v2 ExVideoTagBody for 'avc1'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvcPacket {
    /// AVCPacketType 0 (or SequenceStart): an AVCDecoderConfigurationRecord.
    SequenceHeader(Bytes),
    /// AVCPacketType 1 (or CodedFrames/CodedFramesX): one access unit of AVCC NAL units.
    Nalu {
        /// CompositionTime: PTS minus DTS in milliseconds (signed 24-bit).
        composition_time: i32,
        /// Length-prefixed NAL units.
        data: Bytes,
    },
    /// AVCPacketType 2 (or SequenceEnd): end of sequence, no payload.
    EndOfSequence,
}

/// A parsed video tag body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoTag {
    /// H.264, legacy CodecID 7 or Enhanced RTMP 'avc1'.
    Avc {
        frame_type: FrameType,
        packet: AvcPacket,
    },
    /// A video info/command frame (FrameType 5): no picture.
    Command,
    /// Enhanced RTMP Metadata packet (ExVideoPacketType 4): AMF-encoded side data such as
    /// colour information, no picture.
    Metadata,
    /// A codec this server does not remux.
    Other {
        frame_type: FrameType,
        codec: OtherVideo,
    },
}

/// Enhanced RTMP's IsExHeader flag in the first byte of a video (or, in the same place, an
/// audio) tag.
///
/// Spec: Enhanced RTMP v2 "Enhancing Video": `isExVideoHeader = UB[1]`.
pub const IS_EX_HEADER: u8 = 0x80;

/// Spec: Enhanced RTMP v2 ExVideoPacketType.
mod ex_video_packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const METADATA: u8 = 4;
    pub const MPEG2TS_SEQUENCE_START: u8 = 5;
    pub const MULTITRACK: u8 = 6;
    pub const MOD_EX: u8 = 7;
}

impl VideoTag {
    /// Parses a video tag body (the payload of an RTMP video message).
    ///
    /// Spec: FLV 10.1 §E.4.3.1 VIDEODATA; Enhanced RTMP v2 ExVideoTagHeader.
    pub fn parse(body: &Bytes) -> Result<VideoTag, FlvError> {
        let first = byte_at(body, 0, "VIDEODATA")?;
        if first & IS_EX_HEADER != 0 {
            return Self::parse_extended(body, first);
        }
        let frame_type = FrameType::parse(first >> 4)?;
        let codec = VideoCodecId::from_u8(first & 0x0f);
        if frame_type == FrameType::VideoInfoCommand {
            return Ok(VideoTag::Command);
        }
        if codec != VideoCodecId::Avc {
            return Ok(VideoTag::Other {
                frame_type,
                codec: OtherVideo::Legacy(codec),
            });
        }
        let avc_packet_type = byte_at(body, 1, "AVCVIDEOPACKET")?;
        let composition_time = si24_at(body, 2, "AVCVIDEOPACKET")?;
        let payload = body.slice(5..);
        let packet = match avc_packet_type {
            0 => AvcPacket::SequenceHeader(payload),
            1 => AvcPacket::Nalu {
                composition_time,
                data: payload,
            },
            2 => AvcPacket::EndOfSequence,
            other => {
                return Err(FlvError::InvalidField {
                    structure: "AVCVIDEOPACKET",
                    field: "AVCPacketType",
                    value: u32::from(other),
                    reason: "reserved",
                });
            }
        };
        Ok(VideoTag::Avc { frame_type, packet })
    }

    fn parse_extended(body: &Bytes, first: u8) -> Result<VideoTag, FlvError> {
        use ex_video_packet_type as t;
        let frame_type = FrameType::parse((first >> 4) & 0x07)?;
        let packet_type = first & 0x0f;
        match packet_type {
            t::MULTITRACK => {
                return Ok(VideoTag::Other {
                    frame_type,
                    codec: OtherVideo::EnhancedMultitrack,
                });
            }
            t::MOD_EX => {
                return Ok(VideoTag::Other {
                    frame_type,
                    codec: OtherVideo::EnhancedModEx,
                });
            }
            _ => {}
        }
        let fourcc = VideoFourCc::from_bytes(fourcc_at(body, 1, "ExVideoTagHeader")?);
        if packet_type == t::METADATA {
            return Ok(VideoTag::Metadata);
        }
        if frame_type == FrameType::VideoInfoCommand {
            return Ok(VideoTag::Command);
        }
        if fourcc != VideoFourCc::Avc1 {
            return Ok(VideoTag::Other {
                frame_type,
                codec: OtherVideo::Enhanced(fourcc),
            });
        }
        let packet = match packet_type {
            t::SEQUENCE_START => AvcPacket::SequenceHeader(body.slice(5..)),
            t::CODED_FRAMES => AvcPacket::Nalu {
                composition_time: si24_at(body, 5, "ExVideoTagBody")?,
                data: body.slice(8..),
            },
            t::CODED_FRAMES_X => AvcPacket::Nalu {
                composition_time: 0,
                data: body.slice(5..),
            },
            t::SEQUENCE_END => AvcPacket::EndOfSequence,
            t::MPEG2TS_SEQUENCE_START => {
                return Err(FlvError::InvalidField {
                    structure: "ExVideoTagHeader",
                    field: "VideoPacketType",
                    value: u32::from(packet_type),
                    reason: "MPEG2TSSequenceStart is not defined for 'avc1'",
                });
            }
            other => {
                return Err(FlvError::InvalidField {
                    structure: "ExVideoTagHeader",
                    field: "VideoPacketType",
                    value: u32::from(other),
                    reason: "reserved",
                });
            }
        };
        Ok(VideoTag::Avc { frame_type, packet })
    }
}

/// A legacy FLV audio format.
///
/// Spec: FLV 10.1 §E.4.2.1 SoundFormat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoundFormat {
    /// 0: linear PCM, platform endian.
    LinearPcmPlatformEndian,
    /// 1: ADPCM.
    Adpcm,
    /// 2: MP3.
    Mp3,
    /// 3: linear PCM, little endian.
    LinearPcmLittleEndian,
    /// 4: Nellymoser 16 kHz mono.
    Nellymoser16kMono,
    /// 5: Nellymoser 8 kHz mono.
    Nellymoser8kMono,
    /// 6: Nellymoser.
    Nellymoser,
    /// 7: G.711 A-law logarithmic PCM.
    G711ALaw,
    /// 8: G.711 mu-law logarithmic PCM.
    G711MuLaw,
    /// 10: AAC.
    Aac,
    /// 11: Speex.
    Speex,
    /// 14: MP3 8 kHz.
    Mp3At8k,
    /// 15: device-specific sound.
    DeviceSpecific,
    /// 12 or 13: reserved.
    Reserved(u8),
}

impl SoundFormat {
    fn from_u8(sound_format: u8) -> SoundFormat {
        match sound_format {
            0 => SoundFormat::LinearPcmPlatformEndian,
            1 => SoundFormat::Adpcm,
            2 => SoundFormat::Mp3,
            3 => SoundFormat::LinearPcmLittleEndian,
            4 => SoundFormat::Nellymoser16kMono,
            5 => SoundFormat::Nellymoser8kMono,
            6 => SoundFormat::Nellymoser,
            7 => SoundFormat::G711ALaw,
            8 => SoundFormat::G711MuLaw,
            10 => SoundFormat::Aac,
            11 => SoundFormat::Speex,
            14 => SoundFormat::Mp3At8k,
            15 => SoundFormat::DeviceSpecific,
            other => SoundFormat::Reserved(other),
        }
    }
}

impl fmt::Display for SoundFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SoundFormat::LinearPcmPlatformEndian => f.write_str("linear PCM (platform endian)"),
            SoundFormat::Adpcm => f.write_str("ADPCM"),
            SoundFormat::Mp3 => f.write_str("MP3"),
            SoundFormat::LinearPcmLittleEndian => f.write_str("linear PCM (little endian)"),
            SoundFormat::Nellymoser16kMono => f.write_str("Nellymoser 16 kHz mono"),
            SoundFormat::Nellymoser8kMono => f.write_str("Nellymoser 8 kHz mono"),
            SoundFormat::Nellymoser => f.write_str("Nellymoser"),
            SoundFormat::G711ALaw => f.write_str("G.711 A-law"),
            SoundFormat::G711MuLaw => f.write_str("G.711 mu-law"),
            SoundFormat::Aac => f.write_str("AAC"),
            SoundFormat::Speex => f.write_str("Speex"),
            SoundFormat::Mp3At8k => f.write_str("MP3 8 kHz"),
            SoundFormat::DeviceSpecific => f.write_str("device-specific sound"),
            SoundFormat::Reserved(v) => write!(f, "reserved sound format {v}"),
        }
    }
}

/// An audio codec named by an Enhanced RTMP FourCC.
///
/// Spec: Enhanced RTMP v2 AudioFourCc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioFourCc {
    /// 'mp4a': AAC in the extended header.
    Mp4a,
    /// 'Opus'.
    Opus,
    /// 'fLaC'.
    Flac,
    /// 'ac-3'.
    Ac3,
    /// 'ec-3'.
    Eac3,
    /// '.mp3'.
    Mp3,
    /// Any other FourCC.
    Other([u8; 4]),
}

impl AudioFourCc {
    fn from_bytes(fourcc: [u8; 4]) -> AudioFourCc {
        match &fourcc {
            b"mp4a" => AudioFourCc::Mp4a,
            b"Opus" => AudioFourCc::Opus,
            b"fLaC" => AudioFourCc::Flac,
            b"ac-3" => AudioFourCc::Ac3,
            b"ec-3" => AudioFourCc::Eac3,
            b".mp3" => AudioFourCc::Mp3,
            _ => AudioFourCc::Other(fourcc),
        }
    }
}

impl fmt::Display for AudioFourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioFourCc::Mp4a => f.write_str("AAC ('mp4a', Enhanced RTMP)"),
            AudioFourCc::Opus => f.write_str("Opus ('Opus', Enhanced RTMP)"),
            AudioFourCc::Flac => f.write_str("FLAC ('fLaC', Enhanced RTMP)"),
            AudioFourCc::Ac3 => f.write_str("AC-3 ('ac-3', Enhanced RTMP)"),
            AudioFourCc::Eac3 => f.write_str("E-AC-3 ('ec-3', Enhanced RTMP)"),
            AudioFourCc::Mp3 => f.write_str("MP3 ('.mp3', Enhanced RTMP)"),
            AudioFourCc::Other(cc) => write!(f, "FourCC {} (Enhanced RTMP)", fourcc_text(cc)),
        }
    }
}

/// An audio codec this server does not remux, named for logs and publish refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherAudio {
    /// A legacy SoundFormat other than AAC.
    Legacy(SoundFormat),
    /// An Enhanced RTMP FourCC other than 'mp4a'.
    Enhanced(AudioFourCc),
    /// Enhanced RTMP's Multitrack audio packet type (5).
    EnhancedMultitrack,
    /// Enhanced RTMP's ModEx audio packet type (7).
    EnhancedModEx,
}

impl fmt::Display for OtherAudio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherAudio::Legacy(format) => format.fmt(f),
            OtherAudio::Enhanced(fourcc) => fourcc.fmt(f),
            OtherAudio::EnhancedMultitrack => f.write_str("Enhanced RTMP multitrack audio"),
            OtherAudio::EnhancedModEx => f.write_str("Enhanced RTMP ModEx audio"),
        }
    }
}

/// An AAC packet.
///
/// Spec: FLV 10.1 §E.4.2.2 AACAUDIODATA; Enhanced RTMP v2 ExAudioTagBody for 'mp4a'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AacPacket {
    /// AACPacketType 0 (or SequenceStart): an AudioSpecificConfig.
    SequenceHeader(Bytes),
    /// AACPacketType 1 (or CodedFrames): one raw AAC frame.
    Raw(Bytes),
}

/// A parsed audio tag body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioTag {
    /// AAC, legacy SoundFormat 10 or Enhanced RTMP 'mp4a'.
    Aac(AacPacket),
    /// Enhanced RTMP's SequenceEnd for 'mp4a': no payload.
    AacSequenceEnd,
    /// A codec this server does not remux.
    Other(OtherAudio),
}

/// SoundFormat 9 marks an Enhanced RTMP extended audio header.
///
/// Spec: Enhanced RTMP v2 "Enhancing Audio": `SoundFormat.ExHeader = 9`.
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// Spec: Enhanced RTMP v2 AudioPacketType.
mod ex_audio_packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const MULTITRACK: u8 = 5;
    pub const MOD_EX: u8 = 7;
}

impl AudioTag {
    /// Parses an audio tag body (the payload of an RTMP audio message).
    ///
    /// Spec: FLV 10.1 §E.4.2.1 AUDIODATA, §E.4.2.2 AACAUDIODATA; Enhanced RTMP v2
    /// ExAudioTagHeader.
    pub fn parse(body: &Bytes) -> Result<AudioTag, FlvError> {
        let first = byte_at(body, 0, "AUDIODATA")?;
        let sound_format = first >> 4;
        if sound_format == SOUND_FORMAT_EX_HEADER {
            return Self::parse_extended(body, first & 0x0f);
        }
        match SoundFormat::from_u8(sound_format) {
            SoundFormat::Aac => {
                let aac_packet_type = byte_at(body, 1, "AACAUDIODATA")?;
                let payload = body.slice(2..);
                match aac_packet_type {
                    0 => Ok(AudioTag::Aac(AacPacket::SequenceHeader(payload))),
                    1 => Ok(AudioTag::Aac(AacPacket::Raw(payload))),
                    other => Err(FlvError::InvalidField {
                        structure: "AACAUDIODATA",
                        field: "AACPacketType",
                        value: u32::from(other),
                        reason: "reserved",
                    }),
                }
            }
            other => Ok(AudioTag::Other(OtherAudio::Legacy(other))),
        }
    }

    fn parse_extended(body: &Bytes, packet_type: u8) -> Result<AudioTag, FlvError> {
        use ex_audio_packet_type as t;
        match packet_type {
            t::MULTITRACK => return Ok(AudioTag::Other(OtherAudio::EnhancedMultitrack)),
            t::MOD_EX => return Ok(AudioTag::Other(OtherAudio::EnhancedModEx)),
            _ => {}
        }
        let fourcc = AudioFourCc::from_bytes(fourcc_at(body, 1, "ExAudioTagHeader")?);
        if fourcc != AudioFourCc::Mp4a {
            return Ok(AudioTag::Other(OtherAudio::Enhanced(fourcc)));
        }
        match packet_type {
            t::SEQUENCE_START => Ok(AudioTag::Aac(AacPacket::SequenceHeader(body.slice(5..)))),
            t::CODED_FRAMES => Ok(AudioTag::Aac(AacPacket::Raw(body.slice(5..)))),
            t::SEQUENCE_END => Ok(AudioTag::AacSequenceEnd),
            other => Err(FlvError::InvalidField {
                structure: "ExAudioTagHeader",
                field: "AudioPacketType",
                value: u32::from(other),
                reason: "not defined for 'mp4a'",
            }),
        }
    }
}

fn byte_at(body: &[u8], offset: usize, structure: &'static str) -> Result<u8, FlvError> {
    body.get(offset).copied().ok_or(FlvError::Truncated {
        structure,
        offset,
        needed: 1,
        available: body.len().saturating_sub(offset),
    })
}

fn fourcc_at(body: &[u8], offset: usize, structure: &'static str) -> Result<[u8; 4], FlvError> {
    body.get(offset..offset + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .ok_or(FlvError::Truncated {
            structure,
            offset,
            needed: 4,
            available: body.len().saturating_sub(offset),
        })
}

/// A signed 24-bit big-endian integer (SI24), as CompositionTime is written.
fn si24_at(body: &[u8], offset: usize, structure: &'static str) -> Result<i32, FlvError> {
    let b = body.get(offset..offset + 3).ok_or(FlvError::Truncated {
        structure,
        offset,
        needed: 3,
        available: body.len().saturating_sub(offset),
    })?;
    let unsigned = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
    // Sign-extend from bit 23.
    Ok(((unsigned << 8) as i32) >> 8)
}

fn fourcc_text(cc: &[u8; 4]) -> String {
    cc.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &[u8]) -> Result<VideoTag, FlvError> {
        VideoTag::parse(&Bytes::copy_from_slice(bytes))
    }

    fn audio(bytes: &[u8]) -> Result<AudioTag, FlvError> {
        AudioTag::parse(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn avc_nalu_with_negative_composition_time() {
        // Keyframe, AVC, NALU, CompositionTime = -2 (0xfffffe), then 4 payload bytes.
        let tag = video(&[0x17, 0x01, 0xff, 0xff, 0xfe, 0, 0, 0, 1]).unwrap();
        assert_eq!(
            tag,
            VideoTag::Avc {
                frame_type: FrameType::Keyframe,
                packet: AvcPacket::Nalu {
                    composition_time: -2,
                    data: Bytes::from_static(&[0, 0, 0, 1]),
                },
            }
        );
        let tag = video(&[0x27, 0x01, 0x00, 0x00, 0x42]).unwrap();
        assert!(matches!(
            tag,
            VideoTag::Avc {
                frame_type: FrameType::InterFrame,
                packet: AvcPacket::Nalu {
                    composition_time: 66,
                    ..
                },
            }
        ));
    }

    #[test]
    fn avc_sequence_header_and_end() {
        let tag = video(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64]).unwrap();
        assert_eq!(
            tag,
            VideoTag::Avc {
                frame_type: FrameType::Keyframe,
                packet: AvcPacket::SequenceHeader(Bytes::from_static(&[0x01, 0x64])),
            }
        );
        let tag = video(&[0x17, 0x02, 0, 0, 0]).unwrap();
        assert!(matches!(
            tag,
            VideoTag::Avc {
                packet: AvcPacket::EndOfSequence,
                ..
            }
        ));
        assert_eq!(
            video(&[0x17, 0x03, 0, 0, 0]),
            Err(FlvError::InvalidField {
                structure: "AVCVIDEOPACKET",
                field: "AVCPacketType",
                value: 3,
                reason: "reserved",
            })
        );
    }

    #[test]
    fn legacy_video_codecs_are_named() {
        let cases: [(u8, &str); 7] = [
            (0x12, "Sorenson H.263"),
            (0x13, "Screen video"),
            (0x14, "On2 VP6"),
            (0x15, "On2 VP6 with alpha"),
            (0x16, "Screen video v2"),
            (0x11, "JPEG"),
            (0x1c, "video codec id 12"),
        ];
        for (first, name) in cases {
            match video(&[first]).unwrap() {
                VideoTag::Other { frame_type, codec } => {
                    assert_eq!(frame_type, FrameType::Keyframe);
                    assert_eq!(codec.to_string(), name);
                }
                other => panic!("{first:#x}: {other:?}"),
            }
        }
        assert!(matches!(
            video(&[0x07]),
            Err(FlvError::InvalidField {
                field: "FrameType",
                value: 0,
                ..
            })
        ));
        assert_eq!(video(&[0x57, 0x00]).unwrap(), VideoTag::Command);
    }

    #[test]
    fn enhanced_video_fourccs_are_named_not_mistaken() {
        // IsExHeader | keyframe (1 << 4) | SequenceStart, 'hvc1'.
        let cases: [(&[u8; 4], &str); 4] = [
            (b"hvc1", "HEVC ('hvc1', Enhanced RTMP)"),
            (b"av01", "AV1 ('av01', Enhanced RTMP)"),
            (b"vp09", "VP9 ('vp09', Enhanced RTMP)"),
            (b"xyz\x01", "FourCC xyz? (Enhanced RTMP)"),
        ];
        for (fourcc, name) in cases {
            let mut body = vec![0x90];
            body.extend_from_slice(fourcc);
            body.extend_from_slice(&[1, 2, 3]);
            match video(&body).unwrap() {
                VideoTag::Other { frame_type, codec } => {
                    assert_eq!(frame_type, FrameType::Keyframe);
                    assert_eq!(codec.to_string(), name);
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            video(&[0x96]).unwrap(),
            VideoTag::Other {
                frame_type: FrameType::Keyframe,
                codec: OtherVideo::EnhancedMultitrack
            }
        );
        assert_eq!(
            video(&[0x94, b'h', b'v', b'c', b'1', 2]).unwrap(),
            VideoTag::Metadata
        );
    }

    #[test]
    fn enhanced_avc1_maps_to_avc_packets() {
        let tag = video(&[0x91, b'a', b'v', b'c', b'1', 0, 0, 0x21, 9, 9]).unwrap();
        assert_eq!(
            tag,
            VideoTag::Avc {
                frame_type: FrameType::Keyframe,
                packet: AvcPacket::Nalu {
                    composition_time: 0x21,
                    data: Bytes::from_static(&[9, 9]),
                },
            }
        );
        let tag = video(&[0xa3, b'a', b'v', b'c', b'1', 7]).unwrap();
        assert_eq!(
            tag,
            VideoTag::Avc {
                frame_type: FrameType::InterFrame,
                packet: AvcPacket::Nalu {
                    composition_time: 0,
                    data: Bytes::from_static(&[7]),
                },
            }
        );
        let tag = video(&[0x90, b'a', b'v', b'c', b'1', 1]).unwrap();
        assert!(matches!(
            tag,
            VideoTag::Avc {
                packet: AvcPacket::SequenceHeader(_),
                ..
            }
        ));
        for (first, value) in [(0x95u8, 5u32), (0x98, 8)] {
            assert!(matches!(
                video(&[first, b'a', b'v', b'c', b'1']),
                Err(FlvError::InvalidField { field: "VideoPacketType", value: v, .. }) if v == value
            ));
        }
    }

    #[test]
    fn audio_formats_are_named() {
        let names = [
            (0x0, "linear PCM (platform endian)"),
            (0x1, "ADPCM"),
            (0x2, "MP3"),
            (0x3, "linear PCM (little endian)"),
            (0x4, "Nellymoser 16 kHz mono"),
            (0x5, "Nellymoser 8 kHz mono"),
            (0x6, "Nellymoser"),
            (0x7, "G.711 A-law"),
            (0x8, "G.711 mu-law"),
            (0xb, "Speex"),
            (0xc, "reserved sound format 12"),
            (0xe, "MP3 8 kHz"),
            (0xf, "device-specific sound"),
        ];
        for (format, name) in names {
            match audio(&[format << 4 | 0x0f]).unwrap() {
                AudioTag::Other(other) => assert_eq!(other.to_string(), name),
                tag => panic!("{name}: {tag:?}"),
            }
        }
    }

    #[test]
    fn aac_packets() {
        assert_eq!(
            audio(&[0xaf, 0x00, 0x11, 0x90]).unwrap(),
            AudioTag::Aac(AacPacket::SequenceHeader(Bytes::from_static(&[0x11, 0x90])))
        );
        assert_eq!(
            audio(&[0xaf, 0x01, 0x21]).unwrap(),
            AudioTag::Aac(AacPacket::Raw(Bytes::from_static(&[0x21])))
        );
        assert!(matches!(
            audio(&[0xaf, 0x02]),
            Err(FlvError::InvalidField {
                field: "AACPacketType",
                ..
            })
        ));
        // Enhanced RTMP: SoundFormat 9, CodedFrames, 'mp4a'.
        assert_eq!(
            audio(&[0x91, b'm', b'p', b'4', b'a', 0x21]).unwrap(),
            AudioTag::Aac(AacPacket::Raw(Bytes::from_static(&[0x21])))
        );
        match audio(&[0x90, b'O', b'p', b'u', b's', 1]).unwrap() {
            AudioTag::Other(other) => assert_eq!(other.to_string(), "Opus ('Opus', Enhanced RTMP)"),
            tag => panic!("{tag:?}"),
        }
    }

    /// Every prefix of a valid tag body shorter than its header is refused with an error
    /// (never a panic, never a media packet); the whole body parses.
    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        // (body, header length, is audio)
        let cases: [(&[u8], usize, bool); 4] = [
            (&[0x17, 0x01, 0x00, 0x00, 0x21, 0, 0, 0, 1, 0x65], 5, false),
            (&[0x91, b'a', b'v', b'c', b'1', 0, 0, 1, 0x65], 8, false),
            (&[0xaf, 0x01, 0x21, 0x10], 2, true),
            (&[0x91, b'm', b'p', b'4', b'a', 0x21], 5, true),
        ];
        for (body, header_len, is_audio) in cases {
            let parse = |b: &[u8]| {
                if is_audio {
                    audio(b).map(|_| ())
                } else {
                    video(b).map(|_| ())
                }
            };
            for cut in 0..header_len {
                let err = parse(&body[..cut]).unwrap_err();
                assert!(matches!(err, FlvError::Truncated { .. }), "{cut}: {err}");
            }
            for cut in header_len..=body.len() {
                assert_eq!(parse(&body[..cut]), Ok(()), "{body:02x?} cut at {cut}");
            }
        }
        assert_eq!(
            video(&[]),
            Err(FlvError::Truncated {
                structure: "VIDEODATA",
                offset: 0,
                needed: 1,
                available: 0
            })
        );
        assert_eq!(
            video(&[0x27, 0x01, 0x00]),
            Err(FlvError::Truncated {
                structure: "AVCVIDEOPACKET",
                offset: 2,
                needed: 3,
                available: 1
            })
        );
    }

    #[test]
    fn short_bodies_never_panic_and_avc_needs_its_header() {
        for a in 0..=255u8 {
            let one = video(&[a]);
            let legacy_avc_picture =
                a & IS_EX_HEADER == 0 && (1..=4).contains(&(a >> 4)) && a & 0x0f == 7;
            if legacy_avc_picture {
                assert!(matches!(one, Err(FlvError::Truncated { .. })), "{a:#x}");
            }
            let aac = a >> 4 == 10;
            if aac {
                assert!(
                    matches!(audio(&[a]), Err(FlvError::Truncated { .. })),
                    "{a:#x}"
                );
            }
            for b in 0..=255u8 {
                let _ = video(&[a, b]);
                let _ = audio(&[a, b, 0xff]);
            }
        }
    }
}
