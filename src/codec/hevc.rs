//! HEVC as Enhanced RTMP carries it (FourCC `hvc1`): the HEVCDecoderConfigurationRecord of
//! a SequenceStart, the stream facts read from its first SPS, and the keyframe test on
//! length-prefixed access units.
//!
//! Spec: ISO/IEC 14496-15 §8.3.3.1 (HEVCDecoderConfigurationRecord), Annex E.3 (hvc1 codec
//! string); ITU-T H.265 §7.3.1.2 (NAL unit header), §7.3.2.2 (SPS), §7.3.3
//! (profile_tier_level), §7.3.4 (scaling_list_data), §7.3.7 (st_ref_pic_set), §E.2.1 (VUI),
//! Table 7-1 (NAL unit types), Table 6-1 (SubWidthC, SubHeightC).

use bytes::Bytes;

use super::bits::BitReader;
use super::{CodecError, VideoFacts};

const RECORD: &str = "HEVCDecoderConfigurationRecord";
const SPS: &str = "HEVC sequence parameter set";

/// Size of the record's fixed part, up to and including numOfArrays.
const FIXED_SIZE: usize = 23;

/// Most NAL units accepted in one record: 16 VPS, 16 SPS and 64 PPS ids, with room for SEI.
pub const MAX_RECORD_NAL_UNITS: usize = 256;

/// Most emulation-prevented bytes of an SPS that are read. An SPS is a few dozen bytes; the
/// largest legal one (all scaling lists, 64 reference picture sets) stays well below.
const MAX_SPS_SIZE: usize = 4096;

/// `nal_unit_type` values this module acts on.
///
/// Spec: ITU-T H.265 Table 7-1.
pub mod nal_type {
    /// First IRAP type (BLA_W_LP).
    pub const IRAP_FIRST: u8 = 16;
    /// Last IRAP type (RSV_IRAP_VCL23).
    pub const IRAP_LAST: u8 = 23;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
}

/// The `nal_unit_type` of a NAL unit: bits 1..7 of its first header byte.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3f)
}

/// A checked HEVCDecoderConfigurationRecord with the facts of its first SPS.
///
/// Spec: ISO/IEC 14496-15 §8.3.3.1.
#[derive(Clone, Debug, PartialEq)]
pub struct HevcConfig {
    /// The HEVCDecoderConfigurationRecord as received.
    pub record: Bytes,
    /// lengthSizeMinusOne + 1: 1, 2 or 4.
    pub length_size: u8,
    /// The VPS, SPS and PPS NAL units (2-byte header included), in record order, as slices
    /// of `record`. SEI arrays the record may carry are not listed here.
    pub parameter_sets: Vec<Bytes>,
    /// Picture size, depth, chroma format, frame rate and codec string.
    pub facts: VideoFacts,
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions).
    pub general_profile_idc: u8,
    /// general_level_idc: 30 times the level number.
    pub general_level_idc: u8,
    /// general_tier_flag: the High tier.
    pub general_tier_flag: bool,
}

impl HevcConfig {
    /// Parses and checks a record: configurationVersion 1, a valid lengthSizeMinusOne, every
    /// array and NAL unit inside the record, each NAL unit of its array's type, at least one
    /// SPS, and the first SPS readable (picture size, cropping, bit depth, chroma format,
    /// VUI timing).
    pub fn parse(record: &Bytes) -> Result<HevcConfig, CodecError> {
        let fixed = CodecError::take(RECORD, record, 0, FIXED_SIZE)?;
        if fixed[0] != 1 {
            return Err(CodecError::invalid(
                RECORD,
                "configurationVersion",
                fixed[0],
                "only version 1 is defined",
            ));
        }
        let general_profile_space = fixed[1] >> 6;
        let general_tier_flag = fixed[1] & 0x20 != 0;
        let general_profile_idc = fixed[1] & 0x1f;
        let compatibility = u32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]);
        let constraints: [u8; 6] = [fixed[6], fixed[7], fixed[8], fixed[9], fixed[10], fixed[11]];
        let general_level_idc = fixed[12];
        let length_size = match fixed[21] & 0x03 {
            0 => 1,
            1 => 2,
            3 => 4,
            other => {
                return Err(CodecError::invalid(
                    RECORD,
                    "lengthSizeMinusOne",
                    other,
                    "only 0, 1 and 3 are allowed",
                ));
            }
        };
        let num_of_arrays = fixed[22];

        let mut parameter_sets = Vec::new();
        let mut first_sps: Option<Bytes> = None;
        let mut nal_count = 0usize;
        let mut offset = FIXED_SIZE;
        for _ in 0..num_of_arrays {
            let head = CodecError::take(RECORD, record, offset, 3)?;
            let array_type = head[0] & 0x3f;
            let num_nalus = u16::from_be_bytes([head[1], head[2]]);
            offset += 3;
            for _ in 0..num_nalus {
                nal_count += 1;
                if nal_count > MAX_RECORD_NAL_UNITS {
                    return Err(CodecError::TooMany {
                        structure: RECORD,
                        what: "NAL units",
                        limit: MAX_RECORD_NAL_UNITS,
                    });
                }
                let len_bytes = CodecError::take(RECORD, record, offset, 2)?;
                let length = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
                offset += 2;
                if length > record.len() - offset {
                    return Err(CodecError::Length {
                        structure: RECORD,
                        offset: offset - 2,
                        length,
                        remaining: record.len() - offset,
                    });
                }
                let nal = record.slice(offset..offset + length);
                offset += length;
                check_nal_header(&nal, array_type)?;
                if matches!(array_type, nal_type::VPS | nal_type::SPS | nal_type::PPS) {
                    if array_type == nal_type::SPS && first_sps.is_none() {
                        first_sps = Some(nal.clone());
                    }
                    parameter_sets.push(nal);
                }
            }
        }
        let sps = first_sps.ok_or(CodecError::Missing {
            structure: RECORD,
            what: "no SPS NAL unit in its arrays",
        })?;
        let sps = Sps::parse(&sps)?;
        if sps.general_profile_idc != general_profile_idc
            || sps.general_level_idc != general_level_idc
            || sps.general_tier_flag != general_tier_flag
            || sps.general_profile_space != general_profile_space
        {
            return Err(CodecError::invalid(
                RECORD,
                "general_profile_idc/general_level_idc/general_tier_flag",
                general_profile_idc,
                "differs from the SPS's profile_tier_level",
            ));
        }

        let codec = codec_string(
            general_profile_space,
            general_profile_idc,
            compatibility,
            general_tier_flag,
            general_level_idc,
            &constraints,
        );
        Ok(HevcConfig {
            record: record.clone(),
            length_size,
            parameter_sets,
            facts: VideoFacts {
                width: sps.width,
                height: sps.height,
                bit_depth: sps.bit_depth_luma,
                chroma_format: sps.chroma_format_idc,
                frame_rate: sps.frame_rate,
                codec,
            },
            general_profile_idc,
            general_level_idc,
            general_tier_flag,
        })
    }
}

/// Checks a NAL unit of the record: its 2-byte header is there, forbidden_zero_bit is 0,
/// and its type is the array's.
fn check_nal_header(nal: &[u8], array_type: u8) -> Result<(), CodecError> {
    let header = CodecError::take("HEVC NAL unit in the record", nal, 0, 2)?;
    if header[0] & 0x80 != 0 {
        return Err(CodecError::invalid(
            RECORD,
            "forbidden_zero_bit",
            1u8,
            "must be 0",
        ));
    }
    let nal_type = (header[0] >> 1) & 0x3f;
    if nal_type != array_type {
        return Err(CodecError::invalid(
            RECORD,
            "nal_unit_type",
            nal_type,
            "differs from its array's NAL_unit_type",
        ));
    }
    Ok(())
}

/// The ISO/IEC 14496-15 Annex E.3 codec string: `hvc1.` then the profile space letter (none,
/// A, B, C) and general_profile_idc, the compatibility flags bit-reversed in hex, the tier
/// letter and general_level_idc, then the six constraint bytes in hex with trailing zero
/// bytes left out.
fn codec_string(
    profile_space: u8,
    profile_idc: u8,
    compatibility: u32,
    tier: bool,
    level_idc: u8,
    constraints: &[u8; 6],
) -> String {
    let space = match profile_space {
        1 => "A",
        2 => "B",
        3 => "C",
        _ => "",
    };
    let mut codec = format!(
        "hvc1.{space}{profile_idc}.{:X}.{}{level_idc}",
        compatibility.reverse_bits(),
        if tier { 'H' } else { 'L' }
    );
    let kept = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    for byte in &constraints[..kept] {
        codec.push_str(&format!(".{byte:X}"));
    }
    codec
}

/// Whether a length-prefixed access unit holds an IRAP picture (a NAL unit of type 16 to
/// 23: BLA, IDR, CRA): a point a decoder can start at. Walks the NAL units without copying;
/// a length that runs past the end is an error.
///
/// Spec: ISO/IEC 14496-15 §8.3.2 (length-prefixed samples); ITU-T H.265 Table 7-1.
pub fn is_keyframe(access_unit: &[u8], length_size: u8) -> Result<bool, CodecError> {
    const STRUCTURE: &str = "HEVC access unit";
    let size = usize::from(length_size);
    if !matches!(length_size, 1 | 2 | 4) {
        return Err(CodecError::invalid(
            STRUCTURE,
            "length_size",
            length_size,
            "only 1, 2 and 4 are allowed",
        ));
    }
    let mut offset = 0;
    let mut irap = false;
    while offset < access_unit.len() {
        let prefix = CodecError::take(STRUCTURE, access_unit, offset, size)?;
        let length = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        offset += size;
        let remaining = access_unit.len() - offset;
        if length > remaining {
            return Err(CodecError::Length {
                structure: STRUCTURE,
                offset: offset - size,
                length,
                remaining,
            });
        }
        if let Some(t) = nal_unit_type(&access_unit[offset..offset + length])
            && (nal_type::IRAP_FIRST..=nal_type::IRAP_LAST).contains(&t)
        {
            irap = true;
        }
        offset += length;
    }
    Ok(irap)
}

/// What is read from an SPS.
#[derive(Clone, Debug, PartialEq)]
struct Sps {
    general_profile_space: u8,
    general_tier_flag: bool,
    general_profile_idc: u8,
    general_level_idc: u8,
    chroma_format_idc: u8,
    width: u32,
    height: u32,
    bit_depth_luma: u8,
    frame_rate: Option<f64>,
}

/// Most entries of one short-term reference picture set list (NumNegativePics or
/// NumPositivePics): sps_max_dec_pic_buffering_minus1 is at most 15.
const MAX_DELTA_POCS: usize = 16;

/// A short-term reference picture set as far as later sets predict from it.
#[derive(Clone, Debug, Default)]
struct StRps {
    s0: Vec<i64>,
    s1: Vec<i64>,
}

impl Sps {
    /// Parses an SPS NAL unit (2-byte header included, emulation prevention in place).
    fn parse(nal: &[u8]) -> Result<Sps, CodecError> {
        if nal.len() > MAX_SPS_SIZE {
            return Err(CodecError::TooMany {
                structure: SPS,
                what: "bytes",
                limit: MAX_SPS_SIZE,
            });
        }
        let rbsp = unescape(nal.get(2..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp, SPS);
        r.skip(4, "sps_video_parameter_set_id")?;
        let max_sub_layers_minus1 = r.u8(3, "sps_max_sub_layers_minus1")?;
        if max_sub_layers_minus1 > 6 {
            return Err(CodecError::invalid(
                SPS,
                "sps_max_sub_layers_minus1",
                max_sub_layers_minus1,
                "at most 6",
            ));
        }
        r.skip(1, "sps_temporal_id_nesting_flag")?;

        // profile_tier_level(1, sps_max_sub_layers_minus1), §7.3.3.
        let general_profile_space = r.u8(2, "general_profile_space")?;
        let general_tier_flag = r.flag("general_tier_flag")?;
        let general_profile_idc = r.u8(5, "general_profile_idc")?;
        r.skip(32, "general_profile_compatibility_flag")?;
        r.skip(48, "general constraint flags")?;
        let general_level_idc = r.u8(8, "general_level_idc")?;
        let mut sub_layer_profile_present = [false; 8];
        let mut sub_layer_level_present = [false; 8];
        for i in 0..usize::from(max_sub_layers_minus1) {
            sub_layer_profile_present[i] = r.flag("sub_layer_profile_present_flag")?;
            sub_layer_level_present[i] = r.flag("sub_layer_level_present_flag")?;
        }
        if max_sub_layers_minus1 > 0 {
            r.skip(
                2 * (8 - usize::from(max_sub_layers_minus1)),
                "reserved_zero_2bits",
            )?;
        }
        for i in 0..usize::from(max_sub_layers_minus1) {
            if sub_layer_profile_present[i] {
                r.skip(88, "sub_layer profile")?;
            }
            if sub_layer_level_present[i] {
                r.skip(8, "sub_layer_level_idc")?;
            }
        }

        r.ue_max("sps_seq_parameter_set_id", 15)?;
        let chroma_format_idc = r.ue_max("chroma_format_idc", 3)? as u8;
        if chroma_format_idc == 3 {
            r.skip(1, "separate_colour_plane_flag")?;
        }
        let pic_width = r.ue("pic_width_in_luma_samples")?;
        let pic_height = r.ue("pic_height_in_luma_samples")?;
        if pic_width == 0 || pic_height == 0 || pic_width > 65535 || pic_height > 65535 {
            return Err(CodecError::invalid(
                SPS,
                "pic_width_in_luma_samples/pic_height_in_luma_samples",
                u64::from(pic_width.max(pic_height)),
                "zero or above 65535",
            ));
        }
        let (mut crop_x, mut crop_y) = (0u64, 0u64);
        if r.flag("conformance_window_flag")? {
            let left = u64::from(r.ue("conf_win_left_offset")?);
            let right = u64::from(r.ue("conf_win_right_offset")?);
            let top = u64::from(r.ue("conf_win_top_offset")?);
            let bottom = u64::from(r.ue("conf_win_bottom_offset")?);
            // SubWidthC, SubHeightC: Table 6-1 (4:2:0 both 2, 4:2:2 width 2, else 1).
            let sub_width = if matches!(chroma_format_idc, 1 | 2) {
                2
            } else {
                1
            };
            let sub_height = if chroma_format_idc == 1 { 2 } else { 1 };
            crop_x = sub_width * (left + right);
            crop_y = sub_height * (top + bottom);
        }
        if crop_x >= u64::from(pic_width) || crop_y >= u64::from(pic_height) {
            return Err(CodecError::invalid(
                SPS,
                "conf_win offsets",
                crop_x.max(crop_y),
                "crop the whole picture away",
            ));
        }
        let width = (u64::from(pic_width) - crop_x) as u32;
        let height = (u64::from(pic_height) - crop_y) as u32;
        let bit_depth_luma = r.ue_max("bit_depth_luma_minus8", 8)? as u8 + 8;
        r.ue_max("bit_depth_chroma_minus8", 8)?;
        let log2_max_poc_lsb = r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)? + 4;
        let ordering_info_present = r.flag("sps_sub_layer_ordering_info_present_flag")?;
        let first = if ordering_info_present {
            0
        } else {
            max_sub_layers_minus1
        };
        for _ in first..=max_sub_layers_minus1 {
            r.ue_max("sps_max_dec_pic_buffering_minus1", 15)?;
            r.ue_max("sps_max_num_reorder_pics", 15)?;
            r.ue("sps_max_latency_increase_plus1")?;
        }
        r.ue_max("log2_min_luma_coding_block_size_minus3", 3)?;
        r.ue_max("log2_diff_max_min_luma_coding_block_size", 3)?;
        r.ue_max("log2_min_luma_transform_block_size_minus2", 3)?;
        r.ue_max("log2_diff_max_min_luma_transform_block_size", 3)?;
        r.ue_max("max_transform_hierarchy_depth_inter", 4)?;
        r.ue_max("max_transform_hierarchy_depth_intra", 4)?;
        if r.flag("scaling_list_enabled_flag")? && r.flag("sps_scaling_list_data_present_flag")? {
            skip_scaling_list_data(&mut r)?;
        }
        r.skip(1, "amp_enabled_flag")?;
        r.skip(1, "sample_adaptive_offset_enabled_flag")?;
        if r.flag("pcm_enabled_flag")? {
            r.skip(8, "pcm_sample_bit_depth")?;
            r.ue("log2_min_pcm_luma_coding_block_size_minus3")?;
            r.ue("log2_diff_max_min_pcm_luma_coding_block_size")?;
            r.skip(1, "pcm_loop_filter_disabled_flag")?;
        }
        let num_short_term_ref_pic_sets = r.ue_max("num_short_term_ref_pic_sets", 64)? as usize;
        let mut sets: Vec<StRps> = Vec::with_capacity(num_short_term_ref_pic_sets);
        for index in 0..num_short_term_ref_pic_sets {
            let set = read_st_ref_pic_set(&mut r, index, &sets)?;
            sets.push(set);
        }
        if r.flag("long_term_ref_pics_present_flag")? {
            let count = r.ue_max("num_long_term_ref_pics_sps", 32)?;
            for _ in 0..count {
                r.skip(log2_max_poc_lsb as usize, "lt_ref_pic_poc_lsb_sps")?;
                r.skip(1, "used_by_curr_pic_lt_sps_flag")?;
            }
        }
        r.skip(1, "sps_temporal_mvp_enabled_flag")?;
        r.skip(1, "strong_intra_smoothing_enabled_flag")?;
        let frame_rate = if r.flag("vui_parameters_present_flag")? {
            read_vui_frame_rate(&mut r)?
        } else {
            None
        };
        Ok(Sps {
            general_profile_space,
            general_tier_flag,
            general_profile_idc,
            general_level_idc,
            chroma_format_idc,
            width,
            height,
            bit_depth_luma,
            frame_rate,
        })
    }
}

/// Removes emulation prevention bytes (0x03 after two zero bytes).
///
/// Spec: ITU-T H.265 §7.3.1.1, §7.4.2.
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &byte in data {
        if zeros >= 2 && byte == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// Skips scaling_list_data(), §7.3.4.
fn skip_scaling_list_data(r: &mut BitReader<'_>) -> Result<(), CodecError> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        let mut matrix_id = 0;
        while matrix_id < 6 {
            if !r.flag("scaling_list_pred_mode_flag")? {
                r.ue("scaling_list_pred_matrix_id_delta")?;
            } else {
                let coef_num = 64.min(1u32 << (4 + (size_id << 1)));
                if size_id > 1 {
                    r.se("scaling_list_dc_coef_minus8")?;
                }
                for _ in 0..coef_num {
                    r.se("scaling_list_delta_coef")?;
                }
            }
            matrix_id += step;
        }
    }
    Ok(())
}

/// Reads st_ref_pic_set(index) of an SPS, §7.3.7, deriving its delta POCs (7-61, 7-62) as
/// far as later sets predict from them.
fn read_st_ref_pic_set(
    r: &mut BitReader<'_>,
    index: usize,
    previous: &[StRps],
) -> Result<StRps, CodecError> {
    let too_many = || CodecError::TooMany {
        structure: SPS,
        what: "pictures in a short-term reference picture set",
        limit: MAX_DELTA_POCS,
    };
    let inter = index != 0 && r.flag("inter_ref_pic_set_prediction_flag")?;
    if inter {
        // delta_idx_minus1 is only present in slice headers: here RefRpsIdx = index - 1.
        let reference = &previous[index - 1];
        let sign = r.flag("delta_rps_sign")?;
        let abs = i64::from(r.ue_max("abs_delta_rps_minus1", (1 << 15) - 1)?) + 1;
        let delta_rps = if sign { -abs } else { abs };
        let count = reference.s0.len() + reference.s1.len();
        // use_delta_flag[j] for j in 0..=count (inferred 1 when used_by_curr_pic_flag is 1).
        let mut use_delta = [false; 2 * MAX_DELTA_POCS + 1];
        for flag in use_delta.iter_mut().take(count + 1) {
            let used = r.flag("used_by_curr_pic_flag")?;
            *flag = used || r.flag("use_delta_flag")?;
        }
        let negatives = reference.s0.len();
        let (use_s0, rest) = use_delta.split_at(negatives);
        let use_s1 = &rest[..reference.s1.len()];
        let use_own = rest[reference.s1.len()];
        let mut set = StRps::default();
        for (&d, &used) in reference.s1.iter().zip(use_s1).rev() {
            if d + delta_rps < 0 && used {
                set.s0.push(d + delta_rps);
            }
        }
        if delta_rps < 0 && use_own {
            set.s0.push(delta_rps);
        }
        for (&d, &used) in reference.s0.iter().zip(use_s0) {
            if d + delta_rps < 0 && used {
                set.s0.push(d + delta_rps);
            }
        }
        for (&d, &used) in reference.s0.iter().zip(use_s0).rev() {
            if d + delta_rps > 0 && used {
                set.s1.push(d + delta_rps);
            }
        }
        if delta_rps > 0 && use_own {
            set.s1.push(delta_rps);
        }
        for (&d, &used) in reference.s1.iter().zip(use_s1) {
            if d + delta_rps > 0 && used {
                set.s1.push(d + delta_rps);
            }
        }
        if set.s0.len() > MAX_DELTA_POCS || set.s1.len() > MAX_DELTA_POCS {
            return Err(too_many());
        }
        Ok(set)
    } else {
        let negatives = r.ue_max("num_negative_pics", MAX_DELTA_POCS as u32)? as usize;
        let positives = r.ue_max("num_positive_pics", MAX_DELTA_POCS as u32)? as usize;
        let mut set = StRps::default();
        let mut poc = 0i64;
        for _ in 0..negatives {
            poc -= i64::from(r.ue_max("delta_poc_s0_minus1", (1 << 15) - 1)?) + 1;
            r.skip(1, "used_by_curr_pic_s0_flag")?;
            set.s0.push(poc);
        }
        poc = 0;
        for _ in 0..positives {
            poc += i64::from(r.ue_max("delta_poc_s1_minus1", (1 << 15) - 1)?) + 1;
            r.skip(1, "used_by_curr_pic_s1_flag")?;
            set.s1.push(poc);
        }
        Ok(set)
    }
}

/// Reads vui_parameters() up to the timing information, §E.2.1; the frame rate is
/// vui_time_scale / vui_num_units_in_tick when both are present and non-zero.
fn read_vui_frame_rate(r: &mut BitReader<'_>) -> Result<Option<f64>, CodecError> {
    if r.flag("aspect_ratio_info_present_flag")? && r.u8(8, "aspect_ratio_idc")? == 255 {
        r.skip(32, "sar_width/sar_height")?;
    }
    if r.flag("overscan_info_present_flag")? {
        r.skip(1, "overscan_appropriate_flag")?;
    }
    if r.flag("video_signal_type_present_flag")? {
        r.skip(4, "video_format/video_full_range_flag")?;
        if r.flag("colour_description_present_flag")? {
            r.skip(24, "colour_primaries/transfer/matrix")?;
        }
    }
    if r.flag("chroma_loc_info_present_flag")? {
        r.ue("chroma_sample_loc_type_top_field")?;
        r.ue("chroma_sample_loc_type_bottom_field")?;
    }
    r.skip(3, "neutral_chroma/field_seq/frame_field_info flags")?;
    if r.flag("default_display_window_flag")? {
        for _ in 0..4 {
            r.ue("def_disp_win offset")?;
        }
    }
    if !r.flag("vui_timing_info_present_flag")? {
        return Ok(None);
    }
    let units = r.u32(32, "vui_num_units_in_tick")?;
    let scale = r.u32(32, "vui_time_scale")?;
    if units == 0 || scale == 0 {
        return Ok(None);
    }
    Ok(Some(f64::from(scale) / f64::from(units)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex, pack_bits};

    /// ffmpeg 9 + libx265 (info=0), 202x122 yuv420p at 25 fps, as FLV's SequenceStart.
    /// ffmpeg: "hevc (Main), yuv420p, 202x122, 25 fps".
    const MAIN_202X122: &str = "0101600000009000000000003cf000fcfdf8f800000f03200001001840010c01\
        ffff01600000030090000003000003003c959809210001002a42010101600000030090000003000003003c\
        a01a2020724996566924caf0168080000003008000000c8422000100074401c172b46240";

    /// The same at 176x144 yuv420p10le, 30000/1001 fps. ffmpeg: "hevc (Main 10),
    /// yuv420p10le, 176x144, 29.97 fps".
    const MAIN10_176X144: &str = "0102200000009000000000003cf000fcfdfafa00000f03200001001840010c01\
        ffff02200000030090000003000003003c959809210001002842010102200000030090000003000003003c\
        a01620244d96566924caf01680800001f480003a980422000100074401c172b46240";

    fn record(text: &str) -> Bytes {
        Bytes::from(hex(text))
    }

    #[test]
    fn parses_x265_main() {
        let config = HevcConfig::parse(&record(MAIN_202X122)).unwrap();
        assert_eq!(config.length_size, 4);
        assert_eq!(config.general_profile_idc, 1);
        assert_eq!(config.general_level_idc, 60);
        assert!(!config.general_tier_flag);
        let types: Vec<u8> = config
            .parameter_sets
            .iter()
            .map(|nal| nal_unit_type(nal).unwrap())
            .collect();
        assert_eq!(types, [32, 33, 34]);
        assert_eq!(
            config.facts,
            VideoFacts {
                width: 202,
                height: 122,
                bit_depth: 8,
                chroma_format: 1,
                frame_rate: Some(25.0),
                codec: "hvc1.1.6.L60.90".into(),
            }
        );
    }

    #[test]
    fn parses_x265_main10_with_fractional_rate() {
        let config = HevcConfig::parse(&record(MAIN10_176X144)).unwrap();
        assert_eq!(config.general_profile_idc, 2);
        assert_eq!(config.facts.width, 176);
        assert_eq!(config.facts.height, 144);
        assert_eq!(config.facts.bit_depth, 10);
        assert_eq!(config.facts.codec, "hvc1.2.4.L60.90");
        let rate = config.facts.frame_rate.unwrap();
        assert!((rate - 30000.0 / 1001.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn codec_strings_follow_annex_e() {
        assert_eq!(
            codec_string(0, 1, 0x6000_0000, false, 93, &[0xb0, 0, 0, 0, 0, 0]),
            "hvc1.1.6.L93.B0"
        );
        assert_eq!(
            codec_string(0, 2, 0x2000_0000, true, 120, &[0xb0, 0, 0, 0, 0, 0]),
            "hvc1.2.4.H120.B0"
        );
        assert_eq!(
            codec_string(1, 4, 0x0800_0000, false, 90, &[0x98, 0, 0x20, 0, 0, 0]),
            "hvc1.A4.10.L90.98.0.20"
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [MAIN_202X122, MAIN10_176X144] {
            let data = hex(text);
            every_prefix_refused(&data, |d| HevcConfig::parse(&Bytes::copy_from_slice(d)));
        }
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let good = hex(MAIN_202X122);
        let field = |data: Vec<u8>| match HevcConfig::parse(&Bytes::from(data)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(field(bad), "configurationVersion");
        let mut bad = good.clone();
        bad[21] = (bad[21] & !3) | 2;
        assert_eq!(field(bad), "lengthSizeMinusOne");
        // The SPS array (third byte of the second array header) claims to be a PPS array.
        let mut bad = good.clone();
        let sps_array = FIXED_SIZE + 3 + 2 + 0x18;
        assert_eq!(bad[sps_array] & 0x3f, 33);
        bad[sps_array] = (bad[sps_array] & 0xc0) | 34;
        assert_eq!(field(bad), "nal_unit_type");
        // A level in the record that the SPS does not have.
        let mut bad = good.clone();
        bad[12] = 93;
        assert_eq!(
            field(bad),
            "general_profile_idc/general_level_idc/general_tier_flag"
        );
        // The VPS length runs past the end.
        let mut bad = good.clone();
        bad[FIXED_SIZE + 3] = 0xff;
        assert!(matches!(
            HevcConfig::parse(&Bytes::from(bad)),
            Err(CodecError::Length { .. })
        ));
        // No SPS: the record with its arrays cut to the VPS alone.
        let mut no_sps = good[..FIXED_SIZE + 5 + 0x18].to_vec();
        no_sps[22] = 1;
        assert!(matches!(
            HevcConfig::parse(&Bytes::from(no_sps)),
            Err(CodecError::Missing { .. })
        ));
    }

    #[test]
    fn predicted_reference_picture_sets_follow_7_61() {
        let data = pack_bits(&[
            // Set 0: two negative pictures (-1, -2), one positive (+2), all used.
            (0b011, 3),
            (0b010, 3),
            (1, 1),
            (1, 1),
            (1, 1),
            (1, 1),
            (0b010, 3),
            (1, 1),
            // Set 1: predicted from set 0 with deltaRps -1, every picture used.
            (1, 1),
            (1, 1),
            (1, 1),
            (0b1111, 4),
            // Set 2: predicted from set 1 with deltaRps +1; -1 + 1 = 0 drops out.
            (1, 1),
            (0, 1),
            (1, 1),
            (0b11111, 5),
        ]);
        let mut r = BitReader::new(&data, "test");
        let mut sets = Vec::new();
        for index in 0..3 {
            let set = read_st_ref_pic_set(&mut r, index, &sets).unwrap();
            sets.push(set);
        }
        assert_eq!(
            (sets[0].s0.as_slice(), sets[0].s1.as_slice()),
            (&[-1, -2][..], &[2][..])
        );
        assert_eq!(
            (sets[1].s0.as_slice(), sets[1].s1.as_slice()),
            (&[-1, -2, -3][..], &[1][..])
        );
        assert_eq!(
            (sets[2].s0.as_slice(), sets[2].s1.as_slice()),
            (&[-1, -2][..], &[1, 2][..])
        );
    }

    #[test]
    fn keyframes_are_irap_access_units() {
        // AUD (35), prefix SEI (39), IDR_W_RADL (19), with 4-byte lengths.
        let idr = [
            0, 0, 0, 3, 0x46, 0x01, 0x50, 0, 0, 0, 2, 0x4e, 0x01, 0, 0, 0, 3, 0x26, 0x01, 0xaf,
        ];
        assert!(is_keyframe(&idr, 4).unwrap());
        // TRAIL_R (1) with 2-byte lengths.
        let trail = [0, 3, 0x02, 0x01, 0xd0];
        assert!(!is_keyframe(&trail, 2).unwrap());
        // CRA (21) with 1-byte lengths, and an empty access unit.
        assert!(is_keyframe(&[2, 0x2a, 0x01], 1).unwrap());
        assert!(!is_keyframe(&[], 4).unwrap());
        assert!(matches!(
            is_keyframe(&idr[..idr.len() - 1], 4),
            Err(CodecError::Length { .. })
        ));
        assert!(matches!(
            is_keyframe(&idr[..2], 4),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            is_keyframe(&idr, 3),
            Err(CodecError::InvalidField { .. })
        ));
    }
}
