//! VP9 as Enhanced RTMP carries it (FourCC `vp09`): the VP codec configuration record of a
//! SequenceStart, and what the server reads from each frame's uncompressed header (keyframe,
//! picture size).
//!
//! FFmpeg's FLV muxer writes the SequenceStart with `ff_isom_write_vpcc`, the function its
//! MP4 muxer uses for the `vpcC` box, and that function writes the FullBox version (1) and
//! flags (0) itself: the body is those 4 bytes and then the 8-byte record with a zero
//! codecInitializationDataSize, 12 bytes in all (`01 000000 PP LL DC cp tc mc 0000`).
//! Enhanced RTMP says only "VPCodecConfigurationRecord", so a body without the 4 bytes is
//! accepted too. The two cannot be confused: the bare record's fourth byte holds bitDepth
//! (8, 10 or 12) in its high nibble, never 0, while the FullBox form starts `01 00 00 00`.
//!
//! Spec: VP Codec ISO Media File Format Binding §2.2 (VP Codec Configuration Box, version
//! 1), §2.3 (codecs parameter string); VP9 Bitstream & Decoding Process Specification §6.2
//! (uncompressed_header, color_config, frame_size), Annex B.3 (superframes).

use bytes::Bytes;

use super::bits::BitReader;
use super::{CodecError, VideoFacts};

const RECORD: &str = "VPCodecConfigurationRecord";

/// Size of the version 1 record up to and including codecInitializationDataSize.
const RECORD_SIZE: usize = 8;

/// The FullBox header FFmpeg puts in front: version 1, flags 0.
const FULL_BOX_V1: [u8; 4] = [1, 0, 0, 0];

/// The level values §2.2 defines (10 is level 1, 62 level 6.2).
const LEVELS: [u8; 14] = [10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 52, 60, 61, 62];

/// A checked VP codec configuration record of a VP9 stream.
///
/// Spec: VP Codec ISOBMFF Binding §2.2.
#[derive(Clone, Debug, PartialEq)]
pub struct Vp9Config {
    /// The VPCodecConfigurationRecord without the FullBox header: profile(8) level(8)
    /// bitDepth(4) chromaSubsampling(3) videoFullRangeFlag(1) colourPrimaries(8)
    /// transferCharacteristics(8) matrixCoefficients(8) codecInitializationDataSize(16) = 0.
    pub record: Bytes,
    /// VP9 profile, 0 to 3.
    pub profile: u8,
    /// Level as the record codes it (10 times the level number; 0 when the writer did not
    /// know it).
    pub level: u8,
    /// Depth, chroma format and codec string; width and height are 0 until a keyframe tells
    /// them (see [`frame_size`]); no frame rate.
    pub facts: VideoFacts,
}

impl Vp9Config {
    /// Parses a SequenceStart body: the record with or without the 4-byte FullBox header
    /// (version 1, flags 0). Checks the profile, the level, the bit depth and chroma
    /// subsampling against the profile, and codecInitializationDataSize 0 (VP9 has no
    /// initialization data).
    pub fn parse(body: &Bytes) -> Result<Vp9Config, CodecError> {
        let start = if body.len() >= 4 && body[..4] == FULL_BOX_V1 {
            4
        } else if body.first() == Some(&0) && body.len() >= 4 && body[1..4] == [0, 0, 0] {
            return Err(CodecError::invalid(
                RECORD,
                "version",
                0u8,
                "version 0 (the draft layout) is not supported",
            ));
        } else {
            0
        };
        let fields = CodecError::take(RECORD, body, start, RECORD_SIZE)?;
        let profile = fields[0];
        let level = fields[1];
        let bit_depth = fields[2] >> 4;
        let chroma_subsampling = (fields[2] >> 1) & 0x07;
        let init_size = u16::from_be_bytes([fields[6], fields[7]]);
        if profile > 3 {
            return Err(CodecError::invalid(
                RECORD,
                "profile",
                profile,
                "VP9 has profiles 0 to 3",
            ));
        }
        if level != 0 && !LEVELS.contains(&level) {
            return Err(CodecError::invalid(
                RECORD,
                "level",
                level,
                "not a VP9 level",
            ));
        }
        if !matches!(bit_depth, 8 | 10 | 12) {
            return Err(CodecError::invalid(
                RECORD,
                "bitDepth",
                bit_depth,
                "must be 8, 10 or 12",
            ));
        }
        if chroma_subsampling > 3 {
            return Err(CodecError::invalid(
                RECORD,
                "chromaSubsampling",
                chroma_subsampling,
                "values above 3 are reserved",
            ));
        }
        // Profiles 0 and 1 are 8-bit, 2 and 3 10- or 12-bit; 0 and 2 are 4:2:0 only.
        let high_depth = bit_depth > 8;
        let subsampled = chroma_subsampling <= 1;
        if high_depth != (profile >= 2) {
            return Err(CodecError::invalid(
                RECORD,
                "bitDepth",
                bit_depth,
                "does not match the profile",
            ));
        }
        if subsampled != (profile % 2 == 0) {
            return Err(CodecError::invalid(
                RECORD,
                "chromaSubsampling",
                chroma_subsampling,
                "does not match the profile",
            ));
        }
        if init_size != 0 {
            return Err(CodecError::invalid(
                RECORD,
                "codecInitializationDataSize",
                init_size,
                "must be 0 for VP9",
            ));
        }
        let chroma_format = match chroma_subsampling {
            0 | 1 => 1,
            2 => 2,
            _ => 3,
        };
        Ok(Vp9Config {
            record: body.slice(start..start + RECORD_SIZE),
            profile,
            level,
            facts: VideoFacts {
                width: 0,
                height: 0,
                bit_depth,
                chroma_format,
                frame_rate: None,
                codec: format!("vp09.{profile:02}.{level:02}.{bit_depth:02}"),
            },
        })
    }
}

/// The first frame of `data`: the whole of it, or for a superframe the first frame its index
/// lists.
///
/// Spec: VP9 Annex B.3.
fn first_frame(data: &[u8]) -> &[u8] {
    let Some(&marker) = data.last() else {
        return data;
    };
    if marker & 0xe0 != 0xc0 {
        return data;
    }
    let frames = usize::from(marker & 0x07) + 1;
    let size_bytes = usize::from((marker >> 3) & 0x03) + 1;
    let index_size = 2 + size_bytes * frames;
    if data.len() < index_size || data[data.len() - index_size] != marker {
        return data;
    }
    let index = &data[data.len() - index_size + 1..];
    let size = index[..size_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    data.get(..size).unwrap_or(data)
}

/// What the start of an uncompressed header says.
struct FrameHeader {
    keyframe: bool,
    size: Option<(u32, u32)>,
}

/// Reads an uncompressed header up to frame_size() where the frame has one (keyframes and
/// intra-only frames).
///
/// Spec: VP9 §6.2.
fn read_header(frame: &[u8]) -> Result<FrameHeader, CodecError> {
    const HEADER: &str = "VP9 uncompressed_header";
    let mut r = BitReader::new(frame, HEADER);
    let marker = r.u8(2, "frame_marker")?;
    if marker != 2 {
        return Err(CodecError::invalid(
            HEADER,
            "frame_marker",
            marker,
            "must be 2",
        ));
    }
    let low = r.u8(1, "profile_low_bit")?;
    let high = r.u8(1, "profile_high_bit")?;
    let profile = (high << 1) | low;
    if profile == 3 {
        r.skip(1, "reserved_zero")?;
    }
    if r.flag("show_existing_frame")? {
        return Ok(FrameHeader {
            keyframe: false,
            size: None,
        });
    }
    let keyframe = !r.flag("frame_type")?;
    let show_frame = r.flag("show_frame")?;
    let error_resilient = r.flag("error_resilient_mode")?;
    let intra_only = if keyframe {
        true
    } else {
        let intra_only = !show_frame && r.flag("intra_only")?;
        if !error_resilient {
            r.skip(2, "reset_frame_context")?;
        }
        intra_only
    };
    if !intra_only {
        return Ok(FrameHeader {
            keyframe,
            size: None,
        });
    }
    let sync = r.u32(24, "frame_sync_code")?;
    if sync != 0x49_83_42 {
        return Err(CodecError::invalid(
            HEADER,
            "frame_sync_code",
            sync,
            "must be 0x498342",
        ));
    }
    if keyframe || profile > 0 {
        // color_config(), §6.2.2.
        if profile >= 2 {
            r.skip(1, "ten_or_twelve_bit")?;
        }
        let color_space = r.u8(3, "color_space")?;
        if color_space != 7 {
            r.skip(1, "color_range")?;
            if profile == 1 || profile == 3 {
                r.skip(3, "subsampling_x/subsampling_y/reserved_zero")?;
            }
        } else if profile == 1 || profile == 3 {
            r.skip(1, "reserved_zero")?;
        }
    }
    if !keyframe {
        r.skip(8, "refresh_frame_flags")?;
    }
    let width = r.u32(16, "frame_width_minus_1")? + 1;
    let height = r.u32(16, "frame_height_minus_1")? + 1;
    Ok(FrameHeader {
        keyframe,
        size: Some((width, height)),
    })
}

/// Whether a VP9 frame (or the first frame of a superframe) is a keyframe: frame_type 0 and
/// not show_existing_frame. Bytes that are not a VP9 frame are not a keyframe.
///
/// Spec: VP9 §6.2, §7.2 (frame_type).
pub fn is_keyframe(frame: &[u8]) -> bool {
    read_header(first_frame(frame)).is_ok_and(|header| header.keyframe)
}

/// The picture size a keyframe or intra-only frame codes (frame_width_minus_1 + 1,
/// frame_height_minus_1 + 1); `None` for other frames, which take their size from
/// reference frames, and for bytes that are not a VP9 frame.
///
/// Spec: VP9 §6.2.3 (frame_size).
pub fn frame_size(frame: &[u8]) -> Option<(u32, u32)> {
    read_header(first_frame(frame)).ok()?.size
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex};

    /// ffmpeg 9 + libvpx-vp9, 160x90 yuv420p: SequenceStart body. ffmpeg: "vp9 (Profile 0),
    /// yuv420p, 160x90".
    const PROFILE0: &str = "01000000000a820202020000";
    /// The same in yuv420p10le: "vp9 (Profile 2), yuv420p10le".
    const PROFILE2: &str = "01000000020aa20202020000";
    /// ffmpeg 9 + libvpx-vp9 from RGB input: profile 1, 4:4:4, identity matrix.
    const PROFILE1_444: &str = "01000000010a870202000000";
    /// Starts of the first (key) and second (inter) frames of the profile 0 stream.
    const KEYFRAME0: &str = "824983420009f005960638241c184a0005405f";
    const INTER0: &str = "860040929c485000000673a7f00000007b0ec3";
    /// Start of the keyframe of the profile 2 stream.
    const KEYFRAME2: &str = "924983420004f802cb031c120e0c2c0002c85f";

    fn parse(text: &str) -> Result<Vp9Config, CodecError> {
        Vp9Config::parse(&Bytes::from(hex(text)))
    }

    #[test]
    fn parses_ffmpeg_records() {
        let config = parse(PROFILE0).unwrap();
        assert_eq!((config.profile, config.level), (0, 10));
        assert_eq!(config.record.as_ref(), &hex(PROFILE0)[4..]);
        assert_eq!(
            config.facts,
            VideoFacts {
                width: 0,
                height: 0,
                bit_depth: 8,
                chroma_format: 1,
                frame_rate: None,
                codec: "vp09.00.10.08".into(),
            }
        );
        let config = parse(PROFILE2).unwrap();
        assert_eq!(config.facts.codec, "vp09.02.10.10");
        let config = parse(PROFILE1_444).unwrap();
        assert_eq!(config.facts.chroma_format, 3);
        assert_eq!(config.facts.codec, "vp09.01.10.08");
        // Without the FullBox header.
        let bare = parse(&PROFILE0[8..]).unwrap();
        assert_eq!(bare.record, config_record(PROFILE0));
    }

    fn config_record(text: &str) -> Bytes {
        Bytes::from(hex(text)[4..].to_vec())
    }

    #[test]
    fn reads_frame_headers() {
        let key = hex(KEYFRAME0);
        assert!(is_keyframe(&key));
        assert_eq!(frame_size(&key), Some((160, 90)));
        let inter = hex(INTER0);
        assert!(!is_keyframe(&inter));
        assert_eq!(frame_size(&inter), None);
        let key2 = hex(KEYFRAME2);
        assert!(is_keyframe(&key2));
        assert_eq!(frame_size(&key2), Some((160, 90)));
        assert!(!is_keyframe(&[]));
        assert!(!is_keyframe(&key[..3]));
        assert_eq!(frame_size(&key[..8]), None);
        // A corrupt sync code.
        let mut bad = key.clone();
        bad[2] = 0;
        assert!(!is_keyframe(&bad));
    }

    #[test]
    fn looks_at_the_first_frame_of_a_superframe() {
        // The keyframe start (19 bytes) then a 2-byte frame, with a 1-byte-size index.
        let mut superframe = hex(KEYFRAME0);
        let first = superframe.len() as u8;
        superframe.extend_from_slice(&[0x86, 0x00]);
        let marker = 0xc0 | 1; // 2 frames, 1-byte sizes
        superframe.extend_from_slice(&[marker, first, 2, marker]);
        assert!(is_keyframe(&superframe));
        assert_eq!(frame_size(&superframe), Some((160, 90)));
        // The inter frame first.
        let mut superframe = vec![0x86, 0x00];
        superframe.extend_from_slice(&hex(KEYFRAME0));
        superframe.extend_from_slice(&[marker, 2, first, marker]);
        assert!(!is_keyframe(&superframe));
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [PROFILE0, PROFILE2, PROFILE1_444, &PROFILE0[8..]] {
            let data = hex(text);
            every_prefix_refused(&data, |d| Vp9Config::parse(&Bytes::copy_from_slice(d)));
        }
        // A keyframe's size needs the header up to frame_height_minus_1 (68 bits).
        let key = hex(KEYFRAME0);
        for end in 0..9 {
            assert_eq!(frame_size(&key[..end]), None, "{end}");
        }
        assert_eq!(frame_size(&key[..9]), Some((160, 90)));
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let good = hex(PROFILE0);
        let field = |data: Vec<u8>| match Vp9Config::parse(&Bytes::from(data)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut bad = good.clone();
        bad[4] = 4;
        assert_eq!(field(bad), "profile");
        let mut bad = good.clone();
        bad[5] = 12;
        assert_eq!(field(bad), "level");
        let mut bad = good.clone();
        bad[6] = 0x92; // 9-bit
        assert_eq!(field(bad), "bitDepth");
        let mut bad = good.clone();
        bad[6] = 0xa2; // 10-bit in profile 0
        assert_eq!(field(bad), "bitDepth");
        let mut bad = good.clone();
        bad[6] = 0x86; // 4:4:4 in profile 0
        assert_eq!(field(bad), "chromaSubsampling");
        let mut bad = good.clone();
        bad[11] = 1;
        assert_eq!(field(bad), "codecInitializationDataSize");
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(field(bad), "version");
    }
}
