//! AV1 as Enhanced RTMP carries it (FourCC `av01`): the AV1CodecConfigurationRecord (the
//! body of an `av1C` box) of a SequenceStart, checked against the sequence header OBU it
//! carries, and the facts read from that sequence header.
//!
//! Spec: AV1 Codec ISO Media File Format Binding §2.3.3 (AV1CodecConfigurationRecord),
//! "Codecs Parameter String"; AV1 Bitstream & Decoding Process Specification §4.10.5
//! (leb128), §5.3 (OBU header), §5.5 (sequence_header_obu, color_config, timing_info,
//! decoder_model_info, operating_parameters_info).

use bytes::Bytes;

use super::bits::BitReader;
use super::{CodecError, VideoFacts};

const RECORD: &str = "AV1CodecConfigurationRecord";
const OBU: &str = "AV1 OBU in configOBUs";
const SEQUENCE_HEADER: &str = "AV1 sequence_header_obu";

/// Size of the record's fixed part, before configOBUs.
const FIXED_SIZE: usize = 4;

/// obu_type of a sequence header OBU.
///
/// Spec: AV1 §6.2.2, Table "OBU types".
pub const OBU_SEQUENCE_HEADER: u8 = 1;

/// Most OBUs looked at in configOBUs: a sequence header and a few metadata OBUs.
const MAX_CONFIG_OBUS: usize = 64;

/// A checked AV1CodecConfigurationRecord with the facts of its sequence header.
///
/// Spec: AV1-ISOBMFF §2.3.3.
#[derive(Clone, Debug, PartialEq)]
pub struct Av1Config {
    /// The AV1CodecConfigurationRecord (the `av1C` box body) as received.
    pub record: Bytes,
    /// seq_profile: 0 Main, 1 High, 2 Professional.
    pub seq_profile: u8,
    /// seq_level_idx[0]: the level of operating point 0 (0 is level 2.0, 31 unconstrained).
    pub seq_level_idx_0: u8,
    /// seq_tier[0]: the High tier for operating point 0.
    pub seq_tier_0: bool,
    /// Maximum picture size, depth, chroma format, frame rate and codec string.
    pub facts: VideoFacts,
}

impl Av1Config {
    /// Parses and checks a record: marker 1, version 1, a sequence header OBU among the
    /// configOBUs, and the record's profile, level, tier, bit depth, monochrome and
    /// subsampling fields equal to that sequence header's, as §2.3.3 requires.
    ///
    /// The codec string is the short form `av01.P.LLT.DD`; the optional
    /// `.M.CCC.cp.tc.mc.F` part is added when any of it differs from the defaults
    /// (`.0.110.01.01.01.0`), where a sequence header without a colour description counts
    /// as the default colour.
    pub fn parse(record: &Bytes) -> Result<Av1Config, CodecError> {
        let fixed = CodecError::take(RECORD, record, 0, FIXED_SIZE)?;
        if fixed[0] >> 7 != 1 {
            return Err(CodecError::invalid(
                RECORD,
                "marker",
                fixed[0] >> 7,
                "must be 1",
            ));
        }
        if fixed[0] & 0x7f != 1 {
            return Err(CodecError::invalid(
                RECORD,
                "version",
                fixed[0] & 0x7f,
                "only version 1 is defined",
            ));
        }
        let header = find_sequence_header(&record[FIXED_SIZE..])?;
        let seq = SequenceHeader::parse(header)?;

        let high_bitdepth = fixed[2] & 0x40 != 0;
        let twelve_bit = fixed[2] & 0x20 != 0;
        let record_depth = match (high_bitdepth, twelve_bit) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        };
        let checks: [(&'static str, u8, u8); 7] = [
            ("seq_profile", fixed[1] >> 5, seq.seq_profile),
            ("seq_level_idx_0", fixed[1] & 0x1f, seq.seq_level_idx_0),
            ("seq_tier_0", fixed[2] >> 7, u8::from(seq.seq_tier_0)),
            ("high_bitdepth/twelve_bit", record_depth, seq.bit_depth),
            ("monochrome", (fixed[2] >> 4) & 1, u8::from(seq.mono_chrome)),
            (
                "chroma_subsampling_x",
                (fixed[2] >> 3) & 1,
                u8::from(seq.subsampling_x),
            ),
            (
                "chroma_subsampling_y",
                (fixed[2] >> 2) & 1,
                u8::from(seq.subsampling_y),
            ),
        ];
        for (field, in_record, in_header) in checks {
            if in_record != in_header {
                return Err(CodecError::invalid(
                    RECORD,
                    field,
                    in_record,
                    "differs from the sequence header OBU",
                ));
            }
        }
        Ok(Av1Config {
            record: record.clone(),
            seq_profile: seq.seq_profile,
            seq_level_idx_0: seq.seq_level_idx_0,
            seq_tier_0: seq.seq_tier_0,
            facts: VideoFacts {
                width: seq.max_frame_width,
                height: seq.max_frame_height,
                bit_depth: seq.bit_depth,
                chroma_format: seq.chroma_format(),
                frame_rate: seq.frame_rate,
                codec: seq.codec_string(),
            },
        })
    }
}

/// Reads leb128() at `offset`: at most 8 bytes, the value at most 2^32 - 1. Returns the
/// value and the bytes it took.
///
/// Spec: AV1 §4.10.5.
fn leb128(data: &[u8], offset: usize) -> Result<(usize, usize), CodecError> {
    let mut value: u64 = 0;
    for i in 0..8 {
        let byte = CodecError::take(OBU, data, offset + i, 1)?[0];
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return Err(CodecError::invalid(
                    OBU,
                    "obu_size",
                    value,
                    "above 2^32 - 1",
                ));
            }
            return Ok((value as usize, i + 1));
        }
    }
    Err(CodecError::invalid(
        OBU,
        "obu_size",
        value,
        "leb128 longer than 8 bytes",
    ))
}

/// The payload of the first sequence header OBU in `obus`, each OBU's header and size
/// checked on the way.
///
/// Spec: AV1 §5.3.1, §5.3.2.
fn find_sequence_header(obus: &[u8]) -> Result<&[u8], CodecError> {
    let mut offset = 0;
    let mut count = 0;
    while offset < obus.len() {
        count += 1;
        if count > MAX_CONFIG_OBUS {
            return Err(CodecError::TooMany {
                structure: RECORD,
                what: "OBUs in configOBUs",
                limit: MAX_CONFIG_OBUS,
            });
        }
        let header = obus[offset];
        if header & 0x80 != 0 {
            return Err(CodecError::invalid(
                OBU,
                "obu_forbidden_bit",
                1u8,
                "must be 0",
            ));
        }
        let obu_type = (header >> 3) & 0x0f;
        let extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let start = offset;
        offset += 1;
        if extension {
            CodecError::take(OBU, obus, offset, 1)?;
            offset += 1;
        }
        let size = if has_size {
            let (size, taken) = leb128(obus, offset)?;
            offset += taken;
            size
        } else {
            obus.len() - offset
        };
        let remaining = obus.len() - offset;
        if size > remaining {
            return Err(CodecError::Length {
                structure: OBU,
                offset: FIXED_SIZE + start,
                length: size,
                remaining,
            });
        }
        if obu_type == OBU_SEQUENCE_HEADER {
            return Ok(&obus[offset..offset + size]);
        }
        offset += size;
    }
    Err(CodecError::Missing {
        structure: RECORD,
        what: "configOBUs hold no sequence header OBU",
    })
}

/// What is read from a sequence header OBU.
#[derive(Clone, Debug, PartialEq)]
struct SequenceHeader {
    seq_profile: u8,
    seq_level_idx_0: u8,
    seq_tier_0: bool,
    max_frame_width: u32,
    max_frame_height: u32,
    bit_depth: u8,
    mono_chrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    chroma_sample_position: u8,
    /// Whether color_primaries, transfer and matrix were coded (else unspecified).
    color_description_present: bool,
    color_primaries: u8,
    transfer_characteristics: u8,
    matrix_coefficients: u8,
    color_range: bool,
    frame_rate: Option<f64>,
}

/// color_primaries BT.709, transfer_characteristics sRGB, matrix_coefficients identity:
/// the combination that means 4:4:4 RGB.
///
/// Spec: AV1 §6.4.2.
const CP_BT_709: u8 = 1;
const TC_SRGB: u8 = 13;
const MC_IDENTITY: u8 = 0;

impl SequenceHeader {
    /// Parses sequence_header_obu(), §5.5.1, up to color_config().
    fn parse(payload: &[u8]) -> Result<SequenceHeader, CodecError> {
        let mut r = BitReader::new(payload, SEQUENCE_HEADER);
        let seq_profile = r.u8(3, "seq_profile")?;
        if seq_profile > 2 {
            return Err(CodecError::invalid(
                SEQUENCE_HEADER,
                "seq_profile",
                seq_profile,
                "profiles 3 to 7 are reserved",
            ));
        }
        r.skip(1, "still_picture")?;
        let reduced = r.flag("reduced_still_picture_header")?;
        let mut frame_rate = None;
        let seq_level_idx_0;
        let mut seq_tier_0 = false;
        if reduced {
            seq_level_idx_0 = r.u8(5, "seq_level_idx")?;
        } else {
            let mut buffer_delay_length = 0;
            let mut decoder_model_info_present = false;
            if r.flag("timing_info_present_flag")? {
                let units = r.u32(32, "num_units_in_display_tick")?;
                let scale = r.u32(32, "time_scale")?;
                if r.flag("equal_picture_interval")? {
                    let ticks = u64::from(r.uvlc("num_ticks_per_picture_minus_1")?) + 1;
                    if units != 0 && scale != 0 {
                        frame_rate = Some(f64::from(scale) / (f64::from(units) * ticks as f64));
                    }
                }
                decoder_model_info_present = r.flag("decoder_model_info_present_flag")?;
                if decoder_model_info_present {
                    buffer_delay_length = r.u32(5, "buffer_delay_length_minus_1")? + 1;
                    r.skip(32, "num_units_in_decoding_tick")?;
                    r.skip(5, "buffer_removal_time_length_minus_1")?;
                    r.skip(5, "frame_presentation_time_length_minus_1")?;
                }
            }
            let initial_display_delay_present = r.flag("initial_display_delay_present_flag")?;
            let operating_points = r.u8(5, "operating_points_cnt_minus_1")? + 1;
            let mut first = None;
            for _ in 0..operating_points {
                r.skip(12, "operating_point_idc")?;
                let level = r.u8(5, "seq_level_idx")?;
                let tier = level > 7 && r.flag("seq_tier")?;
                if decoder_model_info_present && r.flag("decoder_model_present_for_this_op")? {
                    r.skip(
                        2 * buffer_delay_length as usize,
                        "decoder/encoder_buffer_delay",
                    )?;
                    r.skip(1, "low_delay_mode_flag")?;
                }
                if initial_display_delay_present
                    && r.flag("initial_display_delay_present_for_this_op")?
                {
                    r.skip(4, "initial_display_delay_minus_1")?;
                }
                first.get_or_insert((level, tier));
            }
            let (level, tier) = first.unwrap_or_default();
            seq_level_idx_0 = level;
            seq_tier_0 = tier;
        }
        let width_bits = r.u32(4, "frame_width_bits_minus_1")? + 1;
        let height_bits = r.u32(4, "frame_height_bits_minus_1")? + 1;
        let max_frame_width = r.u32(width_bits, "max_frame_width_minus_1")? + 1;
        let max_frame_height = r.u32(height_bits, "max_frame_height_minus_1")? + 1;
        if !reduced && r.flag("frame_id_numbers_present_flag")? {
            r.skip(7, "delta/additional_frame_id_length")?;
        }
        r.skip(
            3,
            "use_128x128_superblock/enable_filter_intra/enable_intra_edge_filter",
        )?;
        if !reduced {
            r.skip(4, "enable_interintra_compound..enable_dual_filter")?;
            let order_hint = r.flag("enable_order_hint")?;
            if order_hint {
                r.skip(2, "enable_jnt_comp/enable_ref_frame_mvs")?;
            }
            let force_screen_content_tools = if r.flag("seq_choose_screen_content_tools")? {
                true
            } else {
                r.flag("seq_force_screen_content_tools")?
            };
            if force_screen_content_tools && !r.flag("seq_choose_integer_mv")? {
                r.skip(1, "seq_force_integer_mv")?;
            }
            if order_hint {
                r.skip(3, "order_hint_bits_minus_1")?;
            }
        }
        r.skip(3, "enable_superres/enable_cdef/enable_restoration")?;

        // color_config(), §5.5.2.
        let high_bitdepth = r.flag("high_bitdepth")?;
        let bit_depth = if seq_profile == 2 && high_bitdepth {
            if r.flag("twelve_bit")? { 12 } else { 10 }
        } else if high_bitdepth {
            10
        } else {
            8
        };
        let mono_chrome = seq_profile != 1 && r.flag("mono_chrome")?;
        let color_description_present = r.flag("color_description_present_flag")?;
        let (color_primaries, transfer_characteristics, matrix_coefficients) =
            if color_description_present {
                (
                    r.u8(8, "color_primaries")?,
                    r.u8(8, "transfer_characteristics")?,
                    r.u8(8, "matrix_coefficients")?,
                )
            } else {
                (2, 2, 2)
            };
        let mut chroma_sample_position = 0;
        let (color_range, subsampling_x, subsampling_y);
        if mono_chrome {
            color_range = r.flag("color_range")?;
            subsampling_x = true;
            subsampling_y = true;
        } else if color_primaries == CP_BT_709
            && transfer_characteristics == TC_SRGB
            && matrix_coefficients == MC_IDENTITY
        {
            color_range = true;
            subsampling_x = false;
            subsampling_y = false;
        } else {
            color_range = r.flag("color_range")?;
            match seq_profile {
                0 => (subsampling_x, subsampling_y) = (true, true),
                1 => (subsampling_x, subsampling_y) = (false, false),
                _ if bit_depth == 12 => {
                    subsampling_x = r.flag("subsampling_x")?;
                    subsampling_y = subsampling_x && r.flag("subsampling_y")?;
                }
                _ => (subsampling_x, subsampling_y) = (true, false),
            }
            if subsampling_x && subsampling_y {
                chroma_sample_position = r.u8(2, "chroma_sample_position")?;
            }
        }
        if !mono_chrome {
            r.skip(1, "separate_uv_delta_q")?;
        }
        r.skip(1, "film_grain_params_present")?;
        // The profile's subsampling rules (§6.4.1): Main is 4:2:0 or monochrome, High 4:4:4.
        let valid = match seq_profile {
            0 => subsampling_x && subsampling_y,
            1 => !subsampling_x && !subsampling_y && !mono_chrome,
            _ => true,
        };
        if !valid {
            return Err(CodecError::invalid(
                SEQUENCE_HEADER,
                "color_config",
                seq_profile,
                "subsampling not allowed in this seq_profile",
            ));
        }
        Ok(SequenceHeader {
            seq_profile,
            seq_level_idx_0,
            seq_tier_0,
            max_frame_width,
            max_frame_height,
            bit_depth,
            mono_chrome,
            subsampling_x,
            subsampling_y,
            chroma_sample_position,
            color_description_present,
            color_primaries,
            transfer_characteristics,
            matrix_coefficients,
            color_range,
            frame_rate,
        })
    }

    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    fn chroma_format(&self) -> u8 {
        match (self.mono_chrome, self.subsampling_x, self.subsampling_y) {
            (true, _, _) => 0,
            (false, true, true) => 1,
            (false, true, false) => 2,
            _ => 3,
        }
    }

    /// `av01.P.LLT.DD`, with `.M.CCC.cp.tc.mc.F` when that part is not the default.
    ///
    /// Spec: AV1-ISOBMFF "Codecs Parameter String".
    fn codec_string(&self) -> String {
        let mut codec = format!(
            "av01.{}.{:02}{}.{:02}",
            self.seq_profile,
            self.seq_level_idx_0,
            if self.seq_tier_0 { 'H' } else { 'M' },
            self.bit_depth
        );
        let (cp, tc, mc) = if self.color_description_present {
            (
                self.color_primaries,
                self.transfer_characteristics,
                self.matrix_coefficients,
            )
        } else {
            (1, 1, 1)
        };
        let default = !self.mono_chrome
            && self.subsampling_x
            && self.subsampling_y
            && self.chroma_sample_position == 0
            && (cp, tc, mc) == (1, 1, 1)
            && !self.color_range;
        if !default {
            codec.push_str(&format!(
                ".{}.{}{}{}.{cp:02}.{tc:02}.{mc:02}.{}",
                u8::from(self.mono_chrome),
                u8::from(self.subsampling_x),
                u8::from(self.subsampling_y),
                self.chroma_sample_position,
                u8::from(self.color_range)
            ));
        }
        codec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex, pack_bits};

    /// ffmpeg 9 + libsvtav1, 200x120 yuv420p, 25 fps. ffmpeg: "av1 (Main), yuv420p,
    /// 200x120".
    const SVT_8BIT: &str = "81000c000a0b020000055db1fb805f0008";
    /// ffmpeg 9 + libsvtav1, 200x120 yuv420p10le. ffmpeg: "av1 (Main), yuv420p10le".
    const SVT_10BIT: &str = "81004c000a0b020000055db1fb805f0808";
    /// ffmpeg 9 + libaom, 160x96 yuv420p10le (its second SequenceStart; the first is empty).
    const AOM_10BIT: &str = "81004c000a0a00000003b4fdf36be501";

    fn parse(text: &str) -> Result<Av1Config, CodecError> {
        Av1Config::parse(&Bytes::from(hex(text)))
    }

    #[test]
    fn parses_ffmpeg_records() {
        let config = parse(SVT_8BIT).unwrap();
        assert_eq!(
            (
                config.seq_profile,
                config.seq_level_idx_0,
                config.seq_tier_0
            ),
            (0, 0, false)
        );
        assert_eq!(
            config.facts,
            VideoFacts {
                width: 200,
                height: 120,
                bit_depth: 8,
                chroma_format: 1,
                frame_rate: None,
                codec: "av01.0.00M.08".into(),
            }
        );
        let config = parse(SVT_10BIT).unwrap();
        assert_eq!((config.facts.width, config.facts.height), (200, 120));
        assert_eq!(config.facts.bit_depth, 10);
        assert_eq!(config.facts.codec, "av01.0.00M.10");
        let config = parse(AOM_10BIT).unwrap();
        assert_eq!((config.facts.width, config.facts.height), (160, 96));
        assert_eq!(config.facts.codec, "av01.0.00M.10");
    }

    #[test]
    fn long_codec_string_when_colour_is_not_default() {
        let header = SequenceHeader {
            seq_profile: 0,
            seq_level_idx_0: 13,
            seq_tier_0: false,
            max_frame_width: 3840,
            max_frame_height: 2160,
            bit_depth: 10,
            mono_chrome: false,
            subsampling_x: true,
            subsampling_y: true,
            chroma_sample_position: 0,
            color_description_present: true,
            color_primaries: 9,
            transfer_characteristics: 16,
            matrix_coefficients: 9,
            color_range: false,
            frame_rate: None,
        };
        assert_eq!(header.codec_string(), "av01.0.13M.10.0.110.09.16.09.0");
        let plain = SequenceHeader {
            color_primaries: 1,
            transfer_characteristics: 1,
            matrix_coefficients: 1,
            ..header
        };
        assert_eq!(plain.codec_string(), "av01.0.13M.10");
    }

    #[test]
    fn reads_timing_and_operating_points() {
        // A hand-made sequence header: profile 0, timing info (1/30, equal interval),
        // no decoder model, 2 operating points (levels 8 high tier and 5), 16-bit sizes
        // for 1920x1080, then the rest zero: 8-bit 4:2:0.
        let payload = pack_bits(&[
            (0, 3),      // seq_profile
            (0, 1),      // still_picture
            (0, 1),      // reduced_still_picture_header
            (1, 1),      // timing_info_present_flag
            (1, 32),     // num_units_in_display_tick
            (30, 32),    // time_scale
            (1, 1),      // equal_picture_interval
            (1, 1),      // uvlc 0: num_ticks_per_picture_minus_1
            (0, 1),      // decoder_model_info_present_flag
            (0, 1),      // initial_display_delay_present_flag
            (1, 5),      // operating_points_cnt_minus_1
            (0x101, 12), // operating_point_idc
            (8, 5),      // seq_level_idx
            (1, 1),      // seq_tier
            (0x103, 12),
            (5, 5),
            (15, 4), // frame_width_bits_minus_1
            (15, 4),
            (1919, 16),
            (1079, 16),
            (0, 40), // flags, color_config all zero
        ]);
        let header = SequenceHeader::parse(&payload).unwrap();
        assert_eq!((header.seq_level_idx_0, header.seq_tier_0), (8, true));
        assert_eq!(
            (header.max_frame_width, header.max_frame_height),
            (1920, 1080)
        );
        assert_eq!(header.frame_rate, Some(30.0));
        assert_eq!(header.codec_string(), "av01.0.08H.08");
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [SVT_8BIT, SVT_10BIT, AOM_10BIT] {
            let data = hex(text);
            every_prefix_refused(&data, |d| Av1Config::parse(&Bytes::copy_from_slice(d)));
        }
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let good = hex(SVT_8BIT);
        let field = |data: Vec<u8>| match Av1Config::parse(&Bytes::from(data)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut bad = good.clone();
        bad[0] = 0x01;
        assert_eq!(field(bad), "marker");
        let mut bad = good.clone();
        bad[0] = 0x82;
        assert_eq!(field(bad), "version");
        let mut bad = good.clone();
        bad[1] = 0x20; // seq_profile 1 in the record
        assert_eq!(field(bad), "seq_profile");
        let mut bad = good.clone();
        bad[2] |= 0x40; // high_bitdepth in the record only
        assert_eq!(field(bad), "high_bitdepth/twelve_bit");
        let mut bad = good.clone();
        bad[4] = 0x80 | (1 << 3) | 2; // forbidden bit
        assert_eq!(field(bad), "obu_forbidden_bit");
        // A temporal delimiter instead of the sequence header: none is left.
        let mut bad = good.clone();
        bad[4] = (2 << 3) | 2;
        assert!(matches!(
            Av1Config::parse(&Bytes::from(bad)),
            Err(CodecError::Missing {
                what: "configOBUs hold no sequence header OBU",
                ..
            })
        ));
        // Only the fixed part: no configOBUs at all.
        assert!(matches!(
            Av1Config::parse(&Bytes::from(good[..4].to_vec())),
            Err(CodecError::Missing { .. })
        ));
    }
}
