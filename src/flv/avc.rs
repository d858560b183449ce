//! H.264 as FLV carries it: the AVCDecoderConfigurationRecord of a sequence header, the
//! stream facts read from its SPS, length-prefixed (AVCC) NAL units, and their Annex B
//! form for MPEG-TS.
//!
//! Spec: ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord), §5.3.4.2 (NAL unit
//! length prefixes); ISO/IEC 14496-10 §7.3.2.1.1 (SPS), §7.4.1.2.3 (order of NAL units in
//! an access unit), Annex B (byte stream format); RFC 6381 §3.3 (avc1 codec string).

use bytes::Bytes;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{BitReader, ByteReader};

use crate::flv::error::FlvError;

/// Most NAL units accepted in one access unit. A picture is at most a few dozen slices
/// plus SEI and parameter sets; encoders with one slice per macroblock row at 2160p use
/// 135. Bounds the work and the piece list per access unit.
pub const MAX_NALS_PER_ACCESS_UNIT: usize = 1024;

/// Largest access unit accepted, in bytes. A 2160p60 H.264 stream at 50 Mbit/s has
/// keyframes of a few MiB; 16 MiB is also the most one RTMP message (24-bit length) holds.
pub const MAX_ACCESS_UNIT_SIZE: usize = 16 * 1024 * 1024;

/// `nal_unit_type` values this module acts on.
///
/// Spec: ISO/IEC 14496-10 Table 7-1.
pub mod nal_type {
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
}

/// The `nal_unit_type` of a NAL unit (its first byte's low five bits).
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// An Annex B start code, four bytes long as is usual at the start of an access unit and in
/// front of parameter sets.
///
/// Spec: ISO/IEC 14496-10 §B.1.1 (zero_byte + start_code_prefix_one_3bytes).
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// A start code and an access unit delimiter with `primary_pic_type` 7 (any slice type),
/// as prepended to every access unit. Apple's players and video.js need it.
///
/// Spec: ISO/IEC 14496-10 §7.3.2.4, Table 7-5.
pub const AUD_NAL_WITH_START_CODE: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];

/// The size of an AVCC NAL unit length prefix.
///
/// Spec: ISO/IEC 14496-15 §5.3.3.1.2 lengthSizeMinusOne: 0, 1 or 3 (1, 2 or 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NalLengthSize(u8);

impl NalLengthSize {
    /// Four-byte lengths, which nearly every encoder uses.
    pub const FOUR: NalLengthSize = NalLengthSize(4);

    /// Checks `lengthSizeMinusOne`.
    pub fn from_length_size_minus_one(value: u8) -> Result<NalLengthSize, FlvError> {
        match value {
            0 | 1 | 3 => Ok(NalLengthSize(value + 1)),
            other => Err(FlvError::InvalidField {
                structure: "AVCDecoderConfigurationRecord",
                field: "lengthSizeMinusOne",
                value: u32::from(other),
                reason: "only 0, 1 and 3 are allowed",
            }),
        }
    }

    /// The prefix size in bytes (1, 2 or 4).
    pub fn bytes(self) -> usize {
        usize::from(self.0)
    }
}

/// A validated AVCDecoderConfigurationRecord: every length was checked once, so the
/// parameter-set accessors cannot fail. Parameter sets are slices of the sequence header.
///
/// Spec: ISO/IEC 14496-15 §5.3.3.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// AVCProfileIndication.
    pub avc_profile_indication: u8,
    /// profile_compatibility.
    pub profile_compatibility: u8,
    /// AVCLevelIndication.
    pub avc_level_indication: u8,
    /// lengthSizeMinusOne + 1.
    pub length_size: NalLengthSize,
    sequence_parameter_sets: Vec<Bytes>,
    picture_parameter_sets: Vec<Bytes>,
    record: Bytes,
}

impl AvcDecoderConfig {
    /// Parses and checks a record: version 1, a valid length size, at least one SPS and one
    /// PPS, each of the NAL unit type it is listed as. Trailing extension fields (chroma
    /// format, bit depth) are not needed for remuxing and are not read.
    pub fn parse(record: &Bytes) -> Result<AvcDecoderConfig, FlvError> {
        const STRUCTURE: &str = "AVCDecoderConfigurationRecord";
        let fixed = record.get(..6).ok_or(FlvError::Truncated {
            structure: STRUCTURE,
            offset: 0,
            needed: 6,
            available: record.len(),
        })?;
        if fixed[0] != 1 {
            return Err(FlvError::InvalidField {
                structure: STRUCTURE,
                field: "configurationVersion",
                value: u32::from(fixed[0]),
                reason: "only version 1 is defined",
            });
        }
        let length_size = NalLengthSize::from_length_size_minus_one(fixed[4] & 0x03)?;
        let mut pos = 6;
        let sequence_parameter_sets = read_parameter_sets(
            record,
            &mut pos,
            usize::from(fixed[5] & 0x1f),
            nal_type::SPS,
        )?;
        let num_pps = *record.get(pos).ok_or(FlvError::Truncated {
            structure: STRUCTURE,
            offset: pos,
            needed: 1,
            available: 0,
        })?;
        pos += 1;
        let picture_parameter_sets =
            read_parameter_sets(record, &mut pos, usize::from(num_pps), nal_type::PPS)?;
        if sequence_parameter_sets.is_empty() {
            return Err(FlvError::InvalidField {
                structure: STRUCTURE,
                field: "numOfSequenceParameterSets",
                value: 0,
                reason: "a decoder needs at least one SPS",
            });
        }
        if picture_parameter_sets.is_empty() {
            return Err(FlvError::InvalidField {
                structure: STRUCTURE,
                field: "numOfPictureParameterSets",
                value: 0,
                reason: "a decoder needs at least one PPS",
            });
        }
        Ok(AvcDecoderConfig {
            avc_profile_indication: fixed[1],
            profile_compatibility: fixed[2],
            avc_level_indication: fixed[3],
            length_size,
            sequence_parameter_sets,
            picture_parameter_sets,
            record: record.clone(),
        })
    }

    /// The SPS NAL units, in record order (at least one).
    pub fn sequence_parameter_sets(&self) -> &[Bytes] {
        &self.sequence_parameter_sets
    }

    /// The PPS NAL units, in record order (at least one).
    pub fn picture_parameter_sets(&self) -> &[Bytes] {
        &self.picture_parameter_sets
    }

    /// The record as received, to tell a repeated sequence header from a new one.
    pub fn record(&self) -> &Bytes {
        &self.record
    }

    /// Stream facts from the first SPS.
    pub fn video_info(&self) -> Result<VideoInfo, FlvError> {
        VideoInfo::from_sps(&self.sequence_parameter_sets[0])
    }
}

fn read_parameter_sets(
    record: &Bytes,
    pos: &mut usize,
    count: usize,
    expected_type: u8,
) -> Result<Vec<Bytes>, FlvError> {
    let (structure, field) = if expected_type == nal_type::SPS {
        (
            "AVCDecoderConfigurationRecord SPS",
            "sequenceParameterSetNALUnit",
        )
    } else {
        (
            "AVCDecoderConfigurationRecord PPS",
            "pictureParameterSetNALUnit",
        )
    };
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let len_bytes = record.get(*pos..*pos + 2).ok_or(FlvError::Truncated {
            structure,
            offset: *pos,
            needed: 2,
            available: record.len().saturating_sub(*pos),
        })?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let start = *pos + 2;
        if record.len() < start + len {
            return Err(FlvError::Truncated {
                structure,
                offset: start,
                needed: len,
                available: record.len().saturating_sub(start),
            });
        }
        let nal = record.slice(start..start + len);
        let found = nal_unit_type(&nal).unwrap_or(0);
        if found != expected_type {
            return Err(FlvError::InvalidField {
                structure,
                field,
                value: u32::from(found),
                reason: "wrong nal_unit_type",
            });
        }
        sets.push(nal);
        *pos = start + len;
    }
    Ok(sets)
}

/// Largest frame rate reported from VUI timing; anything above is a bogus timing field.
const MAX_REPORTED_FRAME_RATE: f64 = 1000.0;

/// What a player or operator needs to know about an H.264 stream, read from its SPS.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    /// Picture width in pixels after cropping.
    pub width: u32,
    /// Picture height in pixels after cropping.
    pub height: u32,
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// constraint_set0_flag..constraint_set5_flag and reserved_zero_2bits, as one byte.
    pub constraint_flags: u8,
    /// level_idc (31 = level 3.1).
    pub level_idc: u8,
    /// Frames per second, when the VUI carries timing info.
    pub frame_rate: Option<f64>,
    /// RFC 6381 codec string, e.g. "avc1.64001F".
    pub codec: String,
}

impl VideoInfo {
    /// Reads the stream facts from an SPS NAL unit (header byte included).
    ///
    /// Spec: ISO/IEC 14496-10 §7.3.2.1.1, §E.1.1 (VUI timing); RFC 6381 §3.3.
    pub fn from_sps(sps: &[u8]) -> Result<VideoInfo, FlvError> {
        let parsed =
            SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(sps)))
                .map_err(|e| FlvError::Sps {
                    reason: format!("{e:?}"),
                })?;
        let (width, height) = parsed.pixel_dimensions().map_err(|e| FlvError::Sps {
            reason: format!("{e:?}"),
        })?;
        let frame_rate = parsed
            .fps()
            .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps <= MAX_REPORTED_FRAME_RATE);
        let profile_idc = parsed.profile_idc.into();
        let constraint_flags = parsed.constraint_flags.into();
        let level_idc = parsed.level_idc;
        Ok(VideoInfo {
            width,
            height,
            profile_idc,
            constraint_flags,
            level_idc,
            frame_rate,
            codec: format!("avc1.{profile_idc:02X}{constraint_flags:02X}{level_idc:02X}"),
        })
    }
}

/// Splits one AVCC access unit into its NAL units, as slices of `data` (no copy), into
/// `out` (cleared first, so the caller can reuse its capacity). The whole access unit is
/// checked before anything is returned. Zero-length NAL units, which some encoders emit,
/// are skipped.
///
/// Spec: ISO/IEC 14496-15 §5.3.4.2 (NALUnitLength + NALUnit, repeated).
pub fn split_avcc(
    data: &Bytes,
    length_size: NalLengthSize,
    out: &mut Vec<Bytes>,
) -> Result<(), FlvError> {
    out.clear();
    if data.len() > MAX_ACCESS_UNIT_SIZE {
        return Err(FlvError::AccessUnitTooLarge {
            size: data.len(),
            limit: MAX_ACCESS_UNIT_SIZE,
        });
    }
    let prefix = length_size.bytes();
    let mut pos = 0;
    while pos < data.len() {
        let Some(len_bytes) = data.get(pos..pos + prefix) else {
            out.clear();
            return Err(FlvError::Truncated {
                structure: "AVCC NALUnitLength",
                offset: pos,
                needed: prefix,
                available: data.len() - pos,
            });
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = pos + prefix;
        let remaining = data.len() - start;
        if len > remaining {
            out.clear();
            return Err(FlvError::NalLength {
                offset: pos,
                length: len,
                remaining,
            });
        }
        if len > 0 {
            if out.len() == MAX_NALS_PER_ACCESS_UNIT {
                out.clear();
                return Err(FlvError::TooManyNals {
                    limit: MAX_NALS_PER_ACCESS_UNIT,
                });
            }
            out.push(data.slice(start..start + len));
        }
        pos = start + len;
    }
    Ok(())
}

/// What an access unit turned out to hold, from its NAL unit types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessUnitSummary {
    /// It holds an IDR slice: decoding can start here.
    pub idr: bool,
    /// Parameter sets from the sequence header were put in front of it.
    pub inserted_parameter_sets: bool,
    /// Total Annex B size in bytes.
    pub size: usize,
}

/// Lays out one access unit in Annex B form as a list of pieces (`out`, cleared first): an
/// AUD, then, in front of an IDR that does not carry both itself, the SPS and PPS of
/// `config`, then the access unit's NAL units each behind a four-byte start code. AUDs the
/// encoder put in are left out (there must be exactly one, first). Pieces are `Bytes`
/// handles, so nothing is copied until the TS writer packs them.
///
/// Spec: ISO/IEC 14496-10 §7.4.1.2.3 (AUD first, parameter sets before the slices),
/// Annex B; ISO/IEC 13818-1 §2.14 (an H.264 access unit in PES starts with an AUD).
pub fn annex_b_pieces(
    nals: &[Bytes],
    config: &AvcDecoderConfig,
    out: &mut Vec<Bytes>,
) -> AccessUnitSummary {
    const START: Bytes = Bytes::from_static(&START_CODE);
    out.clear();
    let (mut idr, mut has_sps, mut has_pps) = (false, false, false);
    for nal in nals {
        match nal_unit_type(nal) {
            Some(nal_type::IDR) => idr = true,
            Some(nal_type::SPS) => has_sps = true,
            Some(nal_type::PPS) => has_pps = true,
            _ => {}
        }
    }
    out.push(Bytes::from_static(&AUD_NAL_WITH_START_CODE));
    let insert = idr && !(has_sps && has_pps);
    if insert {
        for set in config
            .sequence_parameter_sets()
            .iter()
            .chain(config.picture_parameter_sets())
        {
            out.push(START);
            out.push(set.clone());
        }
    }
    for nal in nals {
        if nal_unit_type(nal) == Some(nal_type::AUD) {
            continue;
        }
        out.push(START);
        out.push(nal.clone());
    }
    AccessUnitSummary {
        idr,
        inserted_parameter_sets: insert,
        size: out.iter().map(Bytes::len).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(spaced: &str) -> Result<Vec<u8>, hex::FromHexError> {
        hex::decode(spaced.replace(' ', ""))
    }

    /// SPS and PPS of testdata/flv/h264_aac.flv (x264, High profile, level 3.0, 640x360,
    /// 30 fps VUI timing).
    pub(crate) fn testdata_record() -> Bytes {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/flv/h264_aac.flv"
        ))
        .unwrap();
        let file = Bytes::from(file);
        for item in crate::flv::file::FlvFile::new(file) {
            if let crate::flv::file::FlvItem::Tag(tag) = item.unwrap()
                && tag.tag_type == crate::flv::tag::TagType::Video
            {
                return tag.body.slice(5..);
            }
        }
        panic!("no video tag");
    }

    /// A small record: SPS `67 64 00 1f ac`, PPS `68 ee 3c 80`, 4-byte lengths.
    fn small_record() -> Bytes {
        Bytes::from(unhex("01 64 00 1f ff e1 0005 6764001fac 01 0004 68ee3c80").unwrap())
    }

    #[test]
    fn record_is_validated_once() {
        let config = AvcDecoderConfig::parse(&small_record()).unwrap();
        assert_eq!(config.avc_profile_indication, 0x64);
        assert_eq!(config.avc_level_indication, 0x1f);
        assert_eq!(config.length_size, NalLengthSize::FOUR);
        assert_eq!(
            config.sequence_parameter_sets(),
            &[Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac])]
        );
        assert_eq!(
            config.picture_parameter_sets(),
            &[Bytes::from_static(&[0x68, 0xee, 0x3c, 0x80])]
        );
    }

    #[test]
    fn record_every_truncation_is_an_error() {
        let record = small_record();
        for cut in 0..record.len() {
            let err = AvcDecoderConfig::parse(&record.slice(..cut)).unwrap_err();
            assert!(
                matches!(err, FlvError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
    }

    #[test]
    fn record_bad_fields_are_named() {
        let mut bad = small_record().to_vec();
        bad[0] = 2;
        assert!(matches!(
            AvcDecoderConfig::parse(&Bytes::from(bad)),
            Err(FlvError::InvalidField {
                field: "configurationVersion",
                value: 2,
                ..
            })
        ));
        let mut bad = small_record().to_vec();
        bad[4] = 0xfe;
        assert!(matches!(
            AvcDecoderConfig::parse(&Bytes::from(bad)),
            Err(FlvError::InvalidField {
                field: "lengthSizeMinusOne",
                value: 2,
                ..
            })
        ));
        let mut bad = small_record().to_vec();
        bad[8] = 0x68; // the SPS slot holds a PPS
        assert!(matches!(
            AvcDecoderConfig::parse(&Bytes::from(bad)),
            Err(FlvError::InvalidField {
                field: "sequenceParameterSetNALUnit",
                value: 8,
                ..
            })
        ));
        let no_pps = Bytes::from(unhex("016400 1fffe1 0005 6764001fac 00").unwrap());
        assert!(matches!(
            AvcDecoderConfig::parse(&no_pps),
            Err(FlvError::InvalidField {
                field: "numOfPictureParameterSets",
                ..
            })
        ));
    }

    #[test]
    fn video_info_from_testdata_sps() {
        let config = AvcDecoderConfig::parse(&testdata_record()).unwrap();
        let info = config.video_info().unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.profile_idc, 100);
        assert_eq!(info.level_idc, 30);
        assert_eq!(info.codec, "avc1.64001E");
        assert_eq!(info.frame_rate, Some(30.0));
    }

    #[test]
    fn bad_sps_is_an_error() {
        assert!(matches!(
            VideoInfo::from_sps(&[0x67, 0x64]),
            Err(FlvError::Sps { .. })
        ));
    }

    #[test]
    fn avcc_split_with_every_length_size() {
        for (size, data) in [
            (0u8, &b"\x02\x65\x01\x01\x06"[..]),
            (1, &b"\x00\x02\x65\x01\x00\x01\x06"[..]),
            (
                3,
                &b"\x00\x00\x00\x02\x65\x01\x00\x00\x00\x00\x00\x00\x00\x01\x06"[..],
            ),
        ] {
            let mut out = Vec::new();
            let size = NalLengthSize::from_length_size_minus_one(size).unwrap();
            split_avcc(&Bytes::copy_from_slice(data), size, &mut out).unwrap();
            assert_eq!(
                out,
                [
                    Bytes::from_static(&[0x65, 0x01]),
                    Bytes::from_static(&[0x06])
                ]
            );
        }
    }

    #[test]
    fn avcc_every_truncation_is_an_error() {
        let data = Bytes::from_static(b"\x00\x00\x00\x02\x65\x01\x00\x00\x00\x01\x06");
        let mut out = Vec::new();
        for cut in 1..data.len() {
            let boundary = cut == 6;
            let result = split_avcc(&data.slice(..cut), NalLengthSize::FOUR, &mut out);
            assert_eq!(result.is_ok(), boundary, "cut {cut}");
            if !boundary {
                assert!(out.is_empty());
            }
        }
        assert_eq!(
            split_avcc(&data.slice(..5), NalLengthSize::FOUR, &mut out),
            Err(FlvError::NalLength {
                offset: 0,
                length: 2,
                remaining: 1
            })
        );
        assert_eq!(
            split_avcc(&data.slice(..8), NalLengthSize::FOUR, &mut out),
            Err(FlvError::Truncated {
                structure: "AVCC NALUnitLength",
                offset: 6,
                needed: 4,
                available: 2
            })
        );
    }

    #[test]
    fn avcc_nal_count_is_bounded() {
        let one = [0u8, 1, 0x06];
        let data: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(3 * (MAX_NALS_PER_ACCESS_UNIT + 1))
            .collect();
        let mut out = Vec::new();
        let size = NalLengthSize::from_length_size_minus_one(1).unwrap();
        assert_eq!(
            split_avcc(&Bytes::from(data), size, &mut out),
            Err(FlvError::TooManyNals {
                limit: MAX_NALS_PER_ACCESS_UNIT
            })
        );
    }

    fn concat(pieces: &[Bytes]) -> Vec<u8> {
        pieces.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn idr_gets_aud_and_parameter_sets_golden() {
        let config = AvcDecoderConfig::parse(&small_record()).unwrap();
        // An encoder AUD (dropped), an SEI and an IDR slice.
        let au = Bytes::from(unhex("00000002 0910 00000003 060501 00000003 658880").unwrap());
        let mut nals = Vec::new();
        split_avcc(&au, config.length_size, &mut nals).unwrap();
        let mut pieces = Vec::new();
        let summary = annex_b_pieces(&nals, &config, &mut pieces);
        let expected = unhex(
            "00000001 09f0 00000001 6764001fac 00000001 68ee3c80 00000001 060501 00000001 658880",
        )
        .unwrap();
        assert_eq!(concat(&pieces), expected);
        assert_eq!(
            summary,
            AccessUnitSummary {
                idr: true,
                inserted_parameter_sets: true,
                size: expected.len()
            }
        );
    }

    #[test]
    fn non_idr_and_idr_with_own_parameter_sets_get_only_aud() {
        let config = AvcDecoderConfig::parse(&small_record()).unwrap();
        let mut pieces = Vec::new();
        let p_slice = [Bytes::from_static(&[0x41, 0x9a])];
        let summary = annex_b_pieces(&p_slice, &config, &mut pieces);
        assert_eq!(concat(&pieces), unhex("0000000109f0 00000001419a").unwrap());
        assert!(!summary.idr && !summary.inserted_parameter_sets);

        let own = [
            Bytes::from_static(&[0x67, 0x42]),
            Bytes::from_static(&[0x68, 0xce]),
            Bytes::from_static(&[0x65, 0x88]),
        ];
        let summary = annex_b_pieces(&own, &config, &mut pieces);
        assert_eq!(
            concat(&pieces),
            unhex("0000000109f0 000000016742 0000000168ce 000000016588").unwrap()
        );
        assert!(summary.idr && !summary.inserted_parameter_sets);
    }
}
