//! FLV tag bodies as RTMP audio and video messages carry them: legacy audio and video tag
//! headers and Enhanced RTMP's extended ones (FourCC codecs, ModEx timestamp offsets,
//! multitrack packets). A message yields one packet per track, each naming its track id,
//! codec and body; codecs the server does not take are named for the refusal.
//!
//! Payloads are zero-copy [`Bytes`] slices of the message body; walking a message's packets
//! allocates nothing.
//!
//! Spec: FLV 10.1 §E.4.2.1 (AUDIODATA), §E.4.2.2 (AACAUDIODATA), §E.4.3.1 (VIDEODATA),
//! §E.4.3.2 (AVCVIDEOPACKET); Enhanced RTMP v2 (veovera) "Enhanced Audio", "Enhanced Video",
//! "Multitrack Streaming via Enhanced RTMP".

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
    /// An Enhanced RTMP FourCC this server does not take.
    Enhanced(VideoFourCc),
}

impl fmt::Display for OtherVideo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherVideo::Legacy(codec) => codec.fmt(f),
            OtherVideo::Enhanced(fourcc) => fourcc.fmt(f),
        }
    }
}

/// The codec of one video packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264, legacy (CodecID 7) or 'avc1'.
    Avc,
    /// HEVC, 'hvc1'.
    Hevc,
    /// AV1, 'av01'.
    Av1,
    /// VP9, 'vp09'.
    Vp9,
    /// Anything else: refused by name.
    Other(OtherVideo),
}

impl VideoCodec {
    fn from_fourcc(fourcc: [u8; 4]) -> VideoCodec {
        match VideoFourCc::from_bytes(fourcc) {
            VideoFourCc::Avc1 => VideoCodec::Avc,
            VideoFourCc::Hvc1 => VideoCodec::Hevc,
            VideoFourCc::Av01 => VideoCodec::Av1,
            VideoFourCc::Vp09 => VideoCodec::Vp9,
            other => VideoCodec::Other(OtherVideo::Enhanced(other)),
        }
    }

    /// Whether its coded frames start with a composition time offset (the codecs whose
    /// decoding and presentation orders differ in the FLV sense: H.264 and HEVC).
    fn has_composition_time(self) -> bool {
        matches!(self, VideoCodec::Avc | VideoCodec::Hevc)
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodec::Avc => f.write_str("H.264"),
            VideoCodec::Hevc => f.write_str("HEVC"),
            VideoCodec::Av1 => f.write_str("AV1"),
            VideoCodec::Vp9 => f.write_str("VP9"),
            VideoCodec::Other(other) => other.fmt(f),
        }
    }
}

/// What one track's video packet holds.
///
/// Spec: Enhanced RTMP v2 "ExVideoTagBody"; FLV 10.1 §E.4.3.2 AVCVIDEOPACKET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VideoBody {
    /// The decoder configuration record (AVC sequence header, hvcC, av1C, vpcC body).
    SequenceStart(Bytes),
    /// One access unit (or temporal unit) with its composition time offset in milliseconds.
    CodedFrames { composition_time: i32, data: Bytes },
    /// The end of the sequence.
    SequenceEnd,
    /// AMF-encoded metadata such as `colorInfo` (HDR colour information).
    Metadata(Bytes),
    /// AV1's MPEG-2 TS video descriptor, an alternative sequence start.
    Mpeg2TsSequenceStart(Bytes),
}

/// One track's part of a video message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoPacket {
    /// The FLV track id: 0 outside multitrack packets.
    pub track: u8,
    pub codec: VideoCodec,
    pub body: VideoBody,
}

/// A video message (tag body): its frame type, the ModEx timestamp offset, and either a
/// command or its packets, one per track.
#[derive(Clone, Debug)]
pub struct VideoMessage {
    pub frame_type: FrameType,
    /// Nanoseconds to add to the message timestamp (ModEx TimestampOffsetNano), 0 without.
    pub nano_offset: u32,
    /// A video info/command frame carries no picture and has no packets.
    pub command: bool,
    packets: Packets<VideoPacket>,
}

/// Bit 7 of the first byte of a video tag body: an Enhanced RTMP ExVideoTagHeader follows.
///
/// Spec: Enhanced RTMP v2 "Enhanced Video" (IsExHeader).
pub const IS_EX_HEADER: u8 = 0x80;

/// VideoPacketType values of the ExVideoTagHeader.
///
/// Spec: Enhanced RTMP v2 "Enhanced Video", enum VideoPacketType.
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

impl VideoMessage {
    /// Parses a video tag body's headers; the packets come from [`VideoMessage::packets`],
    /// each checked as it is taken.
    pub fn parse(body: &Bytes) -> Result<VideoMessage, FlvError> {
        use ex_video_packet_type as t;
        let first = byte_at(body, 0, "VIDEODATA")?;
        if first & IS_EX_HEADER == 0 {
            return Self::parse_legacy(body, first);
        }
        let frame_type = FrameType::parse((first >> 4) & 0x07)?;
        let mut pos = 1;
        let (packet_type, nano_offset) =
            read_mod_ex(body, &mut pos, first & 0x0f, t::MOD_EX, "ExVideoTagHeader")?;
        if packet_type != t::METADATA && frame_type == FrameType::VideoInfoCommand {
            return Ok(VideoMessage {
                frame_type,
                nano_offset,
                command: true,
                packets: Packets::none(),
            });
        }
        let cursor = TrackCursor::open(
            body,
            pos,
            packet_type,
            t::MULTITRACK,
            t::MOD_EX,
            "ExVideoTagHeader",
        )?;
        Ok(VideoMessage {
            frame_type,
            nano_offset,
            command: false,
            packets: Packets::Tracks(cursor),
        })
    }

    fn parse_legacy(body: &Bytes, first: u8) -> Result<VideoMessage, FlvError> {
        let frame_type = FrameType::parse(first >> 4)?;
        let codec = VideoCodecId::from_u8(first & 0x0f);
        let mut message = VideoMessage {
            frame_type,
            nano_offset: 0,
            command: frame_type == FrameType::VideoInfoCommand,
            packets: Packets::none(),
        };
        if message.command {
            return Ok(message);
        }
        let packet = if codec == VideoCodecId::Avc {
            let avc_packet_type = byte_at(body, 1, "AVCVIDEOPACKET")?;
            let composition_time = si24_at(body, 2, "AVCVIDEOPACKET")?;
            let payload = body.slice(5..);
            let body = match avc_packet_type {
                0 => VideoBody::SequenceStart(payload),
                1 => VideoBody::CodedFrames {
                    composition_time,
                    data: payload,
                },
                2 => VideoBody::SequenceEnd,
                other => {
                    return Err(FlvError::InvalidField {
                        structure: "AVCVIDEOPACKET",
                        field: "AVCPacketType",
                        value: u32::from(other),
                        reason: "reserved",
                    });
                }
            };
            VideoPacket {
                track: 0,
                codec: VideoCodec::Avc,
                body,
            }
        } else {
            VideoPacket {
                track: 0,
                codec: VideoCodec::Other(OtherVideo::Legacy(codec)),
                body: VideoBody::SequenceEnd,
            }
        };
        message.packets = Packets::One(Some(packet));
        Ok(message)
    }

    /// The message's packets, one per track, in the order they came.
    pub fn packets(&mut self) -> impl Iterator<Item = Result<VideoPacket, FlvError>> + '_ {
        std::iter::from_fn(move || match &mut self.packets {
            Packets::One(packet) => packet.take().map(Ok),
            Packets::Tracks(cursor) => {
                let packet_type = cursor.packet_type;
                let packet = cursor.next_track().map(|item| {
                    let (track, fourcc, data) = item?;
                    video_packet(track, VideoCodec::from_fourcc(fourcc), packet_type, data)
                });
                cursor.stop_after(&packet);
                packet
            }
        })
    }
}

/// One track's video body for its packet type.
fn video_packet(
    track: u8,
    codec: VideoCodec,
    packet_type: u8,
    data: Bytes,
) -> Result<VideoPacket, FlvError> {
    use ex_video_packet_type as t;
    let body = match packet_type {
        t::SEQUENCE_START => VideoBody::SequenceStart(data),
        t::CODED_FRAMES if codec.has_composition_time() => VideoBody::CodedFrames {
            composition_time: si24_at(&data, 0, "ExVideoTagBody")?,
            data: data.slice(3..),
        },
        t::CODED_FRAMES | t::CODED_FRAMES_X => VideoBody::CodedFrames {
            composition_time: 0,
            data,
        },
        t::SEQUENCE_END => VideoBody::SequenceEnd,
        t::METADATA => VideoBody::Metadata(data),
        t::MPEG2TS_SEQUENCE_START => VideoBody::Mpeg2TsSequenceStart(data),
        other => {
            return Err(FlvError::InvalidField {
                structure: "ExVideoTagHeader",
                field: "VideoPacketType",
                value: u32::from(other),
                reason: "reserved, or Multitrack/ModEx where a track's packet type belongs",
            });
        }
    };
    Ok(VideoPacket { track, codec, body })
}

/// A message's packets: one (legacy headers, or none for commands), or read track by track.
#[derive(Clone, Debug)]
enum Packets<P> {
    One(Option<P>),
    Tracks(TrackCursor),
}

impl<P> Packets<P> {
    fn none() -> Packets<P> {
        Packets::One(None)
    }
}

/// AvMultitrackType: how a multitrack message lays out its tracks.
///
/// Spec: Enhanced RTMP v2 "Enhanced Audio", enum AvMultitrackType.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultitrackType {
    /// 0: one track, no size field.
    OneTrack,
    /// 1: several tracks of one codec, each with its size.
    ManyTracks,
    /// 2: several tracks, each with its own FourCC and size.
    ManyTracksManyCodecs,
}

impl MultitrackType {
    fn parse(value: u8, structure: &'static str) -> Result<MultitrackType, FlvError> {
        match value {
            0 => Ok(MultitrackType::OneTrack),
            1 => Ok(MultitrackType::ManyTracks),
            2 => Ok(MultitrackType::ManyTracksManyCodecs),
            other => Err(FlvError::InvalidField {
                structure,
                field: "AvMultitrackType",
                value: u32::from(other),
                reason: "reserved",
            }),
        }
    }
}

/// ModEx type TimestampOffsetNano: the ModEx data is a UI24 of nanoseconds to add to the
/// message's timestamp.
///
/// Spec: Enhanced RTMP v2, enum VideoPacketModExType / AudioPacketModExType.
const MOD_EX_TIMESTAMP_OFFSET_NANO: u8 = 0;

/// Reads the ModEx prefixes (if `packet_type` is ModEx) starting at `pos`: returns the packet
/// type they lead to and the nanosecond timestamp offset they carry (0 without). Modifiers
/// of other types are skipped; each takes at least two bytes, so the loop ends with the body.
///
/// Spec: Enhanced RTMP v2 ExVideoTagHeader / ExAudioTagHeader ("Process each ModEx data
/// packet").
fn read_mod_ex(
    body: &[u8],
    pos: &mut usize,
    mut packet_type: u8,
    mod_ex: u8,
    structure: &'static str,
) -> Result<(u8, u32), FlvError> {
    let mut nano_offset = 0;
    while packet_type == mod_ex {
        let mut size = usize::from(byte_at(body, *pos, structure)?) + 1;
        *pos += 1;
        if size == 256 {
            let high = byte_at(body, *pos, structure)?;
            let low = byte_at(body, *pos + 1, structure)?;
            size = usize::from(u16::from_be_bytes([high, low])) + 1;
            *pos += 2;
        }
        let data = body.get(*pos..*pos + size).ok_or(FlvError::Truncated {
            structure,
            offset: *pos,
            needed: size,
            available: body.len().saturating_sub(*pos),
        })?;
        *pos += size;
        let next = byte_at(body, *pos, structure)?;
        *pos += 1;
        packet_type = next & 0x0f;
        if next >> 4 == MOD_EX_TIMESTAMP_OFFSET_NANO {
            let [a, b, c] =
                <[u8; 3]>::try_from(data.get(..3).unwrap_or_default()).map_err(|_| {
                    FlvError::InvalidField {
                        structure,
                        field: "modExDataSize",
                        value: size as u32,
                        reason: "TimestampOffsetNano needs 3 bytes",
                    }
                })?;
            nano_offset = u32::from_be_bytes([0, a, b, c]);
        }
    }
    Ok((packet_type, nano_offset))
}

/// One track's part of a message: its FLV track id, FourCC and body.
type TrackSlice = (u8, [u8; 4], Bytes);

/// Walks the tracks of an Enhanced RTMP message: one (a plain extended header), or those of a
/// multitrack packet, yielding each track's id, FourCC and body as a slice of the message.
#[derive(Clone, Debug)]
struct TrackCursor {
    body: Bytes,
    pos: usize,
    /// The packet type every track's body has.
    packet_type: u8,
    layout: Option<MultitrackType>,
    /// The FourCC shared by all tracks (all layouts but ManyTracksManyCodecs).
    fourcc: [u8; 4],
    structure: &'static str,
    done: bool,
}

impl TrackCursor {
    /// Reads the rest of the extended header from `pos`: a multitrack header if
    /// `packet_type` says Multitrack, then the shared FourCC.
    fn open(
        body: &Bytes,
        mut pos: usize,
        mut packet_type: u8,
        multitrack: u8,
        mod_ex: u8,
        structure: &'static str,
    ) -> Result<TrackCursor, FlvError> {
        let mut layout = None;
        if packet_type == multitrack {
            let byte = byte_at(body, pos, structure)?;
            pos += 1;
            layout = Some(MultitrackType::parse(byte >> 4, structure)?);
            packet_type = byte & 0x0f;
            if packet_type == multitrack || packet_type == mod_ex {
                return Err(FlvError::InvalidField {
                    structure,
                    field: "PacketType",
                    value: u32::from(packet_type),
                    reason: "a multitrack packet's tracks cannot be Multitrack or ModEx",
                });
            }
        }
        let mut fourcc = [0; 4];
        if layout != Some(MultitrackType::ManyTracksManyCodecs) {
            fourcc = fourcc_at(body, pos, structure)?;
            pos += 4;
        }
        Ok(TrackCursor {
            body: body.clone(),
            pos,
            packet_type,
            layout,
            fourcc,
            structure,
            done: false,
        })
    }

    /// Nothing follows a packet that was refused (its body, not only its framing).
    fn stop_after<P>(&mut self, packet: &Option<Result<P, FlvError>>) {
        if matches!(packet, Some(Err(_))) {
            self.done = true;
        }
    }

    /// The next track's (id, FourCC, body); `None` after the last. After an error, `None`.
    fn next_track(&mut self) -> Option<Result<TrackSlice, FlvError>> {
        if self.done {
            return None;
        }
        let result = self.read_track();
        if result.is_err() {
            self.done = true;
        }
        result.transpose()
    }

    fn read_track(&mut self) -> Result<Option<TrackSlice>, FlvError> {
        let Some(layout) = self.layout else {
            self.done = true;
            return Ok(Some((
                0,
                self.fourcc,
                self.body.slice(self.pos.min(self.body.len())..),
            )));
        };
        if layout != MultitrackType::OneTrack && self.pos >= self.body.len() {
            self.done = true;
            return Ok(None);
        }
        let structure = self.structure;
        let mut fourcc = self.fourcc;
        if layout == MultitrackType::ManyTracksManyCodecs {
            fourcc = fourcc_at(&self.body, self.pos, structure)?;
            self.pos += 4;
        }
        let track = byte_at(&self.body, self.pos, structure)?;
        self.pos += 1;
        let end = if layout == MultitrackType::OneTrack {
            self.done = true;
            self.body.len()
        } else {
            let size = u24_at(&self.body, self.pos, structure)? as usize;
            self.pos += 3;
            let end = self.pos + size;
            if end > self.body.len() {
                return Err(FlvError::InvalidField {
                    structure,
                    field: "sizeOfTrack",
                    value: size as u32,
                    reason: "runs past the end of the message",
                });
            }
            end
        };
        let data = self.body.slice(self.pos..end);
        self.pos = end;
        Ok(Some((track, fourcc, data)))
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
    /// A legacy SoundFormat other than AAC and MP3.
    Legacy(SoundFormat),
    /// An Enhanced RTMP FourCC this server does not take.
    Enhanced(AudioFourCc),
}

impl fmt::Display for OtherAudio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OtherAudio::Legacy(format) => format.fmt(f),
            OtherAudio::Enhanced(fourcc) => fourcc.fmt(f),
        }
    }
}

/// The codec of one audio packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC, legacy (SoundFormat 10) or 'mp4a'.
    Aac,
    /// MP3, legacy (SoundFormat 2 or 14) or '.mp3'.
    Mp3,
    Opus,
    Flac,
    Ac3,
    Eac3,
    /// Anything else: refused by name.
    Other(OtherAudio),
}

impl AudioCodec {
    fn from_fourcc(fourcc: [u8; 4]) -> AudioCodec {
        match AudioFourCc::from_bytes(fourcc) {
            AudioFourCc::Mp4a => AudioCodec::Aac,
            AudioFourCc::Mp3 => AudioCodec::Mp3,
            AudioFourCc::Opus => AudioCodec::Opus,
            AudioFourCc::Flac => AudioCodec::Flac,
            AudioFourCc::Ac3 => AudioCodec::Ac3,
            AudioFourCc::Eac3 => AudioCodec::Eac3,
            other => AudioCodec::Other(OtherAudio::Enhanced(other)),
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioCodec::Aac => f.write_str("AAC"),
            AudioCodec::Mp3 => f.write_str("MP3"),
            AudioCodec::Opus => f.write_str("Opus"),
            AudioCodec::Flac => f.write_str("FLAC"),
            AudioCodec::Ac3 => f.write_str("AC-3"),
            AudioCodec::Eac3 => f.write_str("E-AC-3"),
            AudioCodec::Other(other) => other.fmt(f),
        }
    }
}

/// What one track's audio packet holds.
///
/// Spec: Enhanced RTMP v2 "ExAudioTagBody"; FLV 10.1 §E.4.2.2 AACAUDIODATA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioBody {
    /// The codec's configuration (AudioSpecificConfig, OpusHead, FLAC STREAMINFO).
    SequenceStart(Bytes),
    /// Coded audio: one AAC, Opus or FLAC frame, or AC-3/MP3 syncframes.
    CodedFrames(Bytes),
    SequenceEnd,
    /// The channel order of a codec that does not describe it itself.
    MultichannelConfig(Bytes),
}

/// One track's part of an audio message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioPacket {
    /// The FLV track id: 0 outside multitrack packets.
    pub track: u8,
    pub codec: AudioCodec,
    pub body: AudioBody,
}

/// An audio message (tag body): the ModEx timestamp offset and its packets, one per track.
/// An empty message is RTMP's "audio silence" and has no packets.
#[derive(Clone, Debug)]
pub struct AudioMessage {
    /// Nanoseconds to add to the message timestamp (ModEx TimestampOffsetNano), 0 without.
    pub nano_offset: u32,
    packets: Packets<AudioPacket>,
}

/// SoundFormat 9: an Enhanced RTMP ExAudioTagHeader follows.
///
/// Spec: Enhanced RTMP v2 "Enhanced Audio" (SoundFormat.ExHeader).
pub const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// AudioPacketType values of the ExAudioTagHeader.
///
/// Spec: Enhanced RTMP v2 "Enhanced Audio", enum AudioPacketType.
mod ex_audio_packet_type {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const SEQUENCE_END: u8 = 2;
    pub const MULTICHANNEL_CONFIG: u8 = 4;
    pub const MULTITRACK: u8 = 5;
    pub const MOD_EX: u8 = 7;
}

impl AudioMessage {
    /// Parses an audio tag body's headers; the packets come from [`AudioMessage::packets`].
    pub fn parse(body: &Bytes) -> Result<AudioMessage, FlvError> {
        use ex_audio_packet_type as t;
        let Some(&first) = body.first() else {
            return Ok(AudioMessage {
                nano_offset: 0,
                packets: Packets::none(),
            });
        };
        let sound_format = first >> 4;
        if sound_format != SOUND_FORMAT_EX_HEADER {
            let packet = Self::parse_legacy(body, sound_format)?;
            return Ok(AudioMessage {
                nano_offset: 0,
                packets: Packets::One(Some(packet)),
            });
        }
        let mut pos = 1;
        let (packet_type, nano_offset) =
            read_mod_ex(body, &mut pos, first & 0x0f, t::MOD_EX, "ExAudioTagHeader")?;
        let cursor = TrackCursor::open(
            body,
            pos,
            packet_type,
            t::MULTITRACK,
            t::MOD_EX,
            "ExAudioTagHeader",
        )?;
        Ok(AudioMessage {
            nano_offset,
            packets: Packets::Tracks(cursor),
        })
    }

    fn parse_legacy(body: &Bytes, sound_format: u8) -> Result<AudioPacket, FlvError> {
        let (codec, body) = match SoundFormat::from_u8(sound_format) {
            SoundFormat::Aac => {
                let aac_packet_type = byte_at(body, 1, "AACAUDIODATA")?;
                let payload = body.slice(2..);
                let body = match aac_packet_type {
                    0 => AudioBody::SequenceStart(payload),
                    1 => AudioBody::CodedFrames(payload),
                    other => {
                        return Err(FlvError::InvalidField {
                            structure: "AACAUDIODATA",
                            field: "AACPacketType",
                            value: u32::from(other),
                            reason: "reserved",
                        });
                    }
                };
                (AudioCodec::Aac, body)
            }
            SoundFormat::Mp3 | SoundFormat::Mp3At8k => {
                (AudioCodec::Mp3, AudioBody::CodedFrames(body.slice(1..)))
            }
            other => (
                AudioCodec::Other(OtherAudio::Legacy(other)),
                AudioBody::SequenceEnd,
            ),
        };
        Ok(AudioPacket {
            track: 0,
            codec,
            body,
        })
    }

    /// The message's packets, one per track, in the order they came.
    pub fn packets(&mut self) -> impl Iterator<Item = Result<AudioPacket, FlvError>> + '_ {
        use ex_audio_packet_type as t;
        std::iter::from_fn(move || match &mut self.packets {
            Packets::One(packet) => packet.take().map(Ok),
            Packets::Tracks(cursor) => {
                let packet_type = cursor.packet_type;
                let packet = cursor.next_track().map(|item| {
                    let (track, fourcc, data) = item?;
                    let body = match packet_type {
                        t::SEQUENCE_START => AudioBody::SequenceStart(data),
                        t::CODED_FRAMES => AudioBody::CodedFrames(data),
                        t::SEQUENCE_END => AudioBody::SequenceEnd,
                        t::MULTICHANNEL_CONFIG => AudioBody::MultichannelConfig(data),
                        other => {
                            return Err(FlvError::InvalidField {
                                structure: "ExAudioTagHeader",
                                field: "AudioPacketType",
                                value: u32::from(other),
                                reason: "reserved",
                            });
                        }
                    };
                    Ok(AudioPacket {
                        track,
                        codec: AudioCodec::from_fourcc(fourcc),
                        body,
                    })
                });
                cursor.stop_after(&packet);
                packet
            }
        })
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

fn u24_at(body: &[u8], offset: usize, structure: &'static str) -> Result<u32, FlvError> {
    let b = body.get(offset..offset + 3).ok_or(FlvError::Truncated {
        structure,
        offset,
        needed: 3,
        available: body.len().saturating_sub(offset),
    })?;
    Ok((u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(bytes: &[u8]) -> Result<(FrameType, u32, Vec<VideoPacket>), FlvError> {
        let mut message = VideoMessage::parse(&Bytes::copy_from_slice(bytes))?;
        let packets = message.packets().collect::<Result<Vec<_>, _>>()?;
        Ok((message.frame_type, message.nano_offset, packets))
    }

    fn audio(bytes: &[u8]) -> Result<(u32, Vec<AudioPacket>), FlvError> {
        let mut message = AudioMessage::parse(&Bytes::copy_from_slice(bytes))?;
        let packets = message.packets().collect::<Result<Vec<_>, _>>()?;
        Ok((message.nano_offset, packets))
    }

    fn coded(track: u8, codec: VideoCodec, composition_time: i32, data: &[u8]) -> VideoPacket {
        VideoPacket {
            track,
            codec,
            body: VideoBody::CodedFrames {
                composition_time,
                data: Bytes::copy_from_slice(data),
            },
        }
    }

    #[test]
    fn legacy_avc_nalu_with_negative_composition_time() {
        // Keyframe, AVC, NALU, CompositionTime = -2 (0xfffffe), then 4 payload bytes.
        let (frame_type, _, packets) = video(&[0x17, 0x01, 0xff, 0xff, 0xfe, 0, 0, 0, 1]).unwrap();
        assert_eq!(frame_type, FrameType::Keyframe);
        assert_eq!(packets, [coded(0, VideoCodec::Avc, -2, &[0, 0, 0, 1])]);
    }

    #[test]
    fn legacy_avc_sequence_header_and_end() {
        let (_, _, packets) = video(&[0x17, 0x00, 0, 0, 0, 1, 2]).unwrap();
        assert_eq!(
            packets[0].body,
            VideoBody::SequenceStart(Bytes::from_static(&[1, 2]))
        );
        let (_, _, packets) = video(&[0x17, 0x02, 0, 0, 0]).unwrap();
        assert_eq!(packets[0].body, VideoBody::SequenceEnd);
        assert!(
            video(&[0x17, 0x03, 0, 0, 0]).is_err(),
            "AVCPacketType 3 is reserved"
        );
    }

    #[test]
    fn legacy_video_codecs_are_named() {
        let (_, _, packets) = video(&[0x22, 0xaa]).unwrap();
        assert_eq!(
            packets[0].codec,
            VideoCodec::Other(OtherVideo::Legacy(VideoCodecId::SorensonH263))
        );
        assert_eq!(packets[0].codec.to_string(), "Sorenson H.263");
        let message = VideoMessage::parse(&Bytes::from_static(&[0x57, 0])).unwrap();
        assert!(message.command, "frame type 5 is a command frame");
    }

    #[test]
    fn enhanced_fourccs_map_to_codecs_and_only_h26x_has_a_composition_time() {
        // Keyframe | CodedFrames, 'hvc1', CompositionTime 33, then data.
        let (_, _, packets) = video(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 33, 9, 9]).unwrap();
        assert_eq!(packets, [coded(0, VideoCodec::Hevc, 33, &[9, 9])]);
        // AV1 CodedFrames carry no composition time.
        let (_, _, packets) = video(&[0x91, b'a', b'v', b'0', b'1', 0x12, 0]).unwrap();
        assert_eq!(packets, [coded(0, VideoCodec::Av1, 0, &[0x12, 0])]);
        // CodedFramesX: composition time 0.
        let (_, _, packets) = video(&[0xa3, b'v', b'p', b'0', b'9', 7]).unwrap();
        assert_eq!(packets, [coded(0, VideoCodec::Vp9, 0, &[7])]);
        let (_, _, packets) = video(&[0x90, b'a', b'v', b'c', b'1', 1, 2]).unwrap();
        assert_eq!(
            packets[0].body,
            VideoBody::SequenceStart(Bytes::from_static(&[1, 2]))
        );
        let (_, _, packets) = video(&[0x90, b'v', b'v', b'c', b'1']).unwrap();
        assert!(matches!(
            packets[0].codec,
            VideoCodec::Other(OtherVideo::Enhanced(VideoFourCc::Other(_)))
        ));
        assert_eq!(packets[0].codec.to_string(), "FourCC vvc1 (Enhanced RTMP)");
        let (_, _, packets) = video(&[0x94, b'h', b'v', b'c', b'1', 2, 0]).unwrap();
        assert_eq!(
            packets[0].body,
            VideoBody::Metadata(Bytes::from_static(&[2, 0]))
        );
        assert!(
            video(&[0x98, b'h', b'v', b'c', b'1']).is_err(),
            "type 8 is reserved"
        );
    }

    #[test]
    fn mod_ex_timestamp_offset_is_read_and_leads_to_the_real_packet_type() {
        // Keyframe | ModEx; size 3 (2 + 1); 0x0f4240 = 1,000,000 ns? no: 0x07a120 = 500,000;
        // then ModEx type 0 | CodedFrames; 'av01'; data.
        let bytes = [0x97, 2, 0x07, 0xa1, 0x20, 0x01, b'a', b'v', b'0', b'1', 5];
        let (_, nanos, packets) = video(&bytes).unwrap();
        assert_eq!(nanos, 500_000);
        assert_eq!(packets, [coded(0, VideoCodec::Av1, 0, &[5])]);
        // A 16-bit size: 0xff then 0x0100 means 257 bytes of data.
        let mut long = vec![0x97, 0xff, 0x01, 0x00];
        long.extend([0u8; 257]);
        long.extend([0x11, b'a', b'v', b'0', b'1', 6]);
        let (_, nanos, packets) = video(&long).unwrap();
        assert_eq!(
            (nanos, packets.len()),
            (0, 1),
            "another ModEx type is skipped"
        );
        // Audio: ModEx then Opus CodedFrames.
        let (nanos, packets) =
            audio(&[0x97, 2, 0, 0, 9, 0x01, b'O', b'p', b'u', b's', 0xfc]).unwrap();
        assert_eq!(nanos, 9);
        assert_eq!(packets[0].codec, AudioCodec::Opus);
        // TimestampOffsetNano with fewer than 3 bytes is refused.
        assert!(video(&[0x97, 0, 0, 0x01, b'a', b'v', b'0', b'1']).is_err());
    }

    #[test]
    fn multitrack_one_track_many_tracks_and_many_codecs() {
        // Keyframe | Multitrack; OneTrack | CodedFrames; 'avc1'; track 2; CT 0; data.
        let one = [0x96, 0x01, b'a', b'v', b'c', b'1', 2, 0, 0, 0, 0xaa];
        let (_, _, packets) = video(&one).unwrap();
        assert_eq!(packets, [coded(2, VideoCodec::Avc, 0, &[0xaa])]);
        // ManyTracks | CodedFramesX; 'hvc1'; track 0 (2 bytes), track 1 (1 byte).
        let many = [
            0x96, 0x13, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 1, 2, 1, 0, 0, 1, 3,
        ];
        let (_, _, packets) = video(&many).unwrap();
        assert_eq!(
            packets,
            [
                coded(0, VideoCodec::Hevc, 0, &[1, 2]),
                coded(1, VideoCodec::Hevc, 0, &[3])
            ]
        );
        // ManyTracksManyCodecs | SequenceStart; 'av01' track 0, 'vp09' track 1.
        let mixed = [
            0x96, 0x20, b'a', b'v', b'0', b'1', 0, 0, 0, 1, 8, b'v', b'p', b'0', b'9', 1, 0, 0, 1,
            9,
        ];
        let (_, _, packets) = video(&mixed).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!((packets[0].codec, packets[0].track), (VideoCodec::Av1, 0));
        assert_eq!((packets[1].codec, packets[1].track), (VideoCodec::Vp9, 1));
        // Audio ManyTracks of AAC CodedFrames.
        let aac = [
            0x95, 0x11, b'm', b'p', b'4', b'a', 0, 0, 0, 1, 0x21, 1, 0, 0, 1, 0x22,
        ];
        let (_, packets) = audio(&aac).unwrap();
        assert_eq!(
            packets
                .iter()
                .map(|p| (p.track, p.codec))
                .collect::<Vec<_>>(),
            [(0, AudioCodec::Aac), (1, AudioCodec::Aac)]
        );
    }

    #[test]
    fn multitrack_sizes_that_disagree_with_the_length_are_refused() {
        // The second track says 5 bytes, 1 is left.
        let bad = [
            0x96, 0x13, b'h', b'v', b'c', b'1', 0, 0, 0, 1, 1, 1, 0, 0, 5, 3,
        ];
        let mut message = VideoMessage::parse(&Bytes::copy_from_slice(&bad)).unwrap();
        let results: Vec<_> = message.packets().collect();
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert_eq!(results.len(), 2, "nothing after an error");
        // A reserved packet type in every track of a ManyTracks packet: one error, then
        // nothing.
        let reserved = [
            0x96, 0x18, b'h', b'v', b'c', b'1', 0, 0, 0, 1, 1, 1, 0, 0, 1, 3,
        ];
        let mut message = VideoMessage::parse(&Bytes::copy_from_slice(&reserved)).unwrap();
        let results: Vec<_> = message.packets().collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
        let reserved_audio = [
            0x95, 0x13, b'O', b'p', b'u', b's', 0, 0, 0, 1, 1, 1, 0, 0, 1, 3,
        ];
        let mut message = AudioMessage::parse(&Bytes::copy_from_slice(&reserved_audio)).unwrap();
        let results: Vec<_> = message.packets().collect();
        assert_eq!(results.len(), 1);
        assert!(results[0].is_err());
        // A multitrack packet whose tracks say Multitrack or ModEx.
        assert!(video(&[0x96, 0x06, b'h', b'v', b'c', b'1']).is_err());
        assert!(video(&[0x96, 0x07, b'h', b'v', b'c', b'1']).is_err());
        assert!(
            video(&[0x96, 0x31, b'h', b'v', b'c', b'1']).is_err(),
            "layout 3"
        );
    }

    #[test]
    fn audio_formats_are_named_and_mp3_is_taken() {
        let (_, packets) = audio(&[0xaf, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(packets[0].codec, AudioCodec::Aac);
        assert_eq!(
            packets[0].body,
            AudioBody::SequenceStart(Bytes::from_static(&[0x12, 0x10]))
        );
        assert!(audio(&[0xaf, 0x02]).is_err(), "AACPacketType 2 is reserved");
        let (_, packets) = audio(&[0x2f, 0xff, 0xfb]).unwrap();
        assert_eq!(packets[0].codec, AudioCodec::Mp3);
        assert_eq!(
            packets[0].body,
            AudioBody::CodedFrames(Bytes::from_static(&[0xff, 0xfb]))
        );
        let (_, packets) = audio(&[0xb6, 0]).unwrap();
        assert_eq!(packets[0].codec.to_string(), "Speex");
        let (_, packets) = audio(&[0x90, b'f', b'L', b'a', b'C', 1]).unwrap();
        assert_eq!(packets[0].codec, AudioCodec::Flac);
        let (_, packets) = audio(&[0x91, b'z', b'z', b'z', b'z', 1]).unwrap();
        assert_eq!(packets[0].codec.to_string(), "FourCC zzzz (Enhanced RTMP)");
        assert!(
            audio(&[0x93, b'O', b'p', b'u', b's']).is_err(),
            "type 3 is reserved"
        );
        let (_, packets) = audio(&[]).unwrap();
        assert!(packets.is_empty(), "an empty message is silence");
    }

    #[test]
    fn every_truncation_is_an_error_or_fewer_packets_never_a_panic() {
        let samples: [&[u8]; 6] = [
            &[0x17, 0x01, 0xff, 0xff, 0xfe, 0, 0, 0, 1],
            &[0x97, 2, 0x07, 0xa1, 0x20, 0x01, b'a', b'v', b'0', b'1', 5],
            &[
                0x96, 0x13, b'h', b'v', b'c', b'1', 0, 0, 0, 2, 1, 2, 1, 0, 0, 1, 3,
            ],
            &[
                0x96, 0x20, b'a', b'v', b'0', b'1', 0, 0, 0, 1, 8, b'v', b'p', b'0', b'9', 1, 0, 0,
                1, 9,
            ],
            &[0x95, 0x11, b'm', b'p', b'4', b'a', 0, 0, 0, 1, 0x21],
            &[0x97, 2, 0, 0, 9, 0x01, b'O', b'p', b'u', b's', 0xfc],
        ];
        for sample in samples {
            for cut in 0..sample.len() {
                let _ = video(&sample[..cut]);
                let _ = audio(&sample[..cut]);
            }
        }
    }
}
