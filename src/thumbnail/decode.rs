//! One H.264 keyframe decoded to a picture: the access unit as FLV carries it (AVCC,
//! length-prefixed NAL units) with the parameter sets of the track's configuration record,
//! laid out as an Annex B byte stream and decoded intra-only by `rusty_h264-decoder`.
//!
//! A fresh decoder per keyframe: nothing is referenced across pictures, so a keyframe that
//! is not an intra picture fails here instead of borrowing another stream's state. The picture
//! size is checked from every SPS before the decoder sees it (the decoder allocates its planes
//! from the SPS), and the decoder runs inside `catch_unwind`: a panic in it fails the picture,
//! never the thread.
//!
//! Spec: ISO/IEC 14496-15 §5.3.3.1 (AVCDecoderConfigurationRecord), §5.3.4.2 (NAL unit length
//! prefixes); ISO/IEC 14496-10 Annex B (byte stream), §7.4.2.1.1 (frame cropping), Table E-1
//! (sample aspect ratio), §E.2.1 (video_full_range_flag, matrix_coefficients).

use bytes::Bytes;
use h264_reader::nal::sps::{ChromaFormat, FrameMbsFlags, SeqParameterSet};
use h264_reader::rbsp::{BitReader, ByteReader};

use crate::flv::avc::{self, NalLengthSize, nal_type};
use crate::media::codec::H264Config;

/// Widest and tallest picture decoded (luma samples): 4096 either way.
pub const MAX_SIDE: u32 = 4096;

/// Most luma samples in a picture decoded: 4096x2304 (a 4K DCI-width UHD frame). A 2160p
/// keyframe decodes in a few hundred milliseconds; larger ones are refused before decoding.
pub const MAX_LUMA_SAMPLES: u32 = 4096 * 2304;

/// A decoded picture, planar YUV 4:2:0 with 8-bit samples, cropped as its SPS says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    /// `width * height` luma samples, row by row.
    pub y: Vec<u8>,
    /// `width/2 * height/2` samples each (the width and height are even).
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
    /// How the samples are to be read.
    pub colour: Colour,
    /// The sample aspect ratio (horizontal, vertical): 1:1 unless the VUI says otherwise.
    pub sample_aspect: (u16, u16),
}

/// The range and matrix the samples are coded with (ISO/IEC 14496-10 §E.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Colour {
    /// `video_full_range_flag`: samples span 0-255, not 16-235 (luma) and 16-240 (chroma).
    pub full_range: bool,
    /// `matrix_coefficients` is 1: ITU-R BT.709 (HD); otherwise BT.601 is assumed, as
    /// decoders do for pictures that do not say.
    pub bt709: bool,
}

impl Picture {
    /// The picture's width on screen over its height, from its sample aspect ratio.
    pub fn display_aspect(&self) -> f64 {
        let (h, v) = self.sample_aspect;
        (self.width as f64 * f64::from(h)) / (self.height as f64 * f64::from(v))
    }
}

/// Why a keyframe gave no picture; the text is what the HTTP answer says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the keyframe's NAL units do not parse: {0}")]
    Framing(String),
    #[error("SPS does not parse: {0}")]
    Sps(String),
    #[error(
        "{width}x{height} is larger than thumbnails are made of (at most {MAX_SIDE} a side and {MAX_LUMA_SAMPLES} samples)"
    )]
    TooLarge { width: u32, height: u32 },
    #[error("{0} pictures are not decoded here (8-bit 4:2:0 progressive only)")]
    Format(&'static str),
    #[error("the H.264 decoder refused the keyframe: {0}")]
    Decoder(String),
    #[error("the keyframe holds no picture")]
    NoPicture,
    #[error("the H.264 decoder failed: {0}")]
    Panicked(String),
}

/// What the SPS says that the decoder does not give back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpsFacts {
    /// Luma samples cropped from the left and the top (the decoder crops only the right and
    /// the bottom).
    crop_left: usize,
    crop_top: usize,
    /// The picture size after every crop.
    width: usize,
    height: usize,
    sample_aspect: (u16, u16),
    colour: Colour,
}

/// Reads and checks one SPS NAL unit (header byte included).
fn check_sps(nal: &[u8]) -> Result<SpsFacts, DecodeError> {
    let sps = SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(nal)))
        .map_err(|e| DecodeError::Sps(format!("{e:?}")))?;
    let info = &sps.chroma_info;
    if info.chroma_format != ChromaFormat::YUV420 || info.separate_colour_plane_flag {
        return Err(DecodeError::Format("non-4:2:0"));
    }
    if info.bit_depth_luma_minus8 != 0 || info.bit_depth_chroma_minus8 != 0 {
        return Err(DecodeError::Format("high bit depth"));
    }
    if matches!(
        sps.frame_mbs_flags,
        FrameMbsFlags::Fields {
            mb_adaptive_frame_field_flag: true
        }
    ) {
        return Err(DecodeError::Format("MBAFF interlaced"));
    }
    let coded_w = u64::from(sps.pic_width_in_mbs_minus1) + 1;
    let map_units = u64::from(sps.pic_height_in_map_units_minus1) + 1;
    let field = matches!(sps.frame_mbs_flags, FrameMbsFlags::Fields { .. });
    let coded_h = map_units * if field { 2 } else { 1 };
    let (coded_w, coded_h) = (coded_w * 16, coded_h * 16);
    let too_large = || DecodeError::TooLarge {
        width: coded_w.min(u64::from(u32::MAX)) as u32,
        height: coded_h.min(u64::from(u32::MAX)) as u32,
    };
    if coded_w > u64::from(MAX_SIDE)
        || coded_h > u64::from(MAX_SIDE)
        || coded_w * coded_h > u64::from(MAX_LUMA_SAMPLES)
    {
        return Err(too_large());
    }
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| DecodeError::Sps(format!("{e:?}")))?;
    if width == 0 || height == 0 || u64::from(width) > coded_w || u64::from(height) > coded_h {
        return Err(DecodeError::Sps("cropping leaves no picture".into()));
    }
    // §7.4.2.1.1: CropUnitX is 2 for 4:2:0, CropUnitY 2 (frames only) or 4.
    let (crop_left, crop_top) = sps.frame_cropping.as_ref().map_or((0, 0), |c| {
        (
            c.left_offset as usize * 2,
            c.top_offset as usize * if field { 4 } else { 2 },
        )
    });
    let vui = sps.vui_parameters.as_ref();
    let sample_aspect = vui
        .and_then(|v| v.aspect_ratio_info.as_ref())
        .and_then(|a| a.get())
        .filter(|&(h, v)| h > 0 && v > 0 && h.max(v) / h.min(v) <= 4)
        .unwrap_or((1, 1));
    let signal = vui.and_then(|v| v.video_signal_type.as_ref());
    let colour = Colour {
        full_range: signal.is_some_and(|s| s.video_full_range_flag),
        bt709: signal
            .and_then(|s| s.colour_description.as_ref())
            .is_some_and(|c| c.matrix_coefficients == 1),
    };
    Ok(SpsFacts {
        crop_left,
        crop_top,
        width: width as usize,
        height: height as usize,
        sample_aspect,
        colour,
    })
}

/// The keyframe as an Annex B byte stream: the record's SPS and PPS, then the access unit's
/// NAL units (its own parameter sets included, as they override the record's), each behind
/// a start code; access unit delimiters are left out. Returns the facts of the last SPS,
/// every one of which was checked.
fn annex_b(config: &H264Config, frame: &Bytes) -> Result<(Vec<u8>, SpsFacts), DecodeError> {
    let record = &config.record;
    annex_b_with(
        record.sequence_parameter_sets(),
        record.picture_parameter_sets(),
        record.length_size,
        frame,
    )
}

fn annex_b_with(
    sps: &[Bytes],
    pps: &[Bytes],
    length_size: NalLengthSize,
    frame: &Bytes,
) -> Result<(Vec<u8>, SpsFacts), DecodeError> {
    let mut nals = Vec::new();
    avc::split_avcc(frame, length_size, &mut nals)
        .map_err(|e| DecodeError::Framing(e.to_string()))?;
    let mut out = Vec::with_capacity(frame.len() + 256);
    let mut facts = None;
    for nal in sps.iter().chain(pps).chain(&nals) {
        match avc::nal_unit_type(nal) {
            Some(nal_type::AUD) => continue,
            Some(nal_type::SPS) => facts = Some(check_sps(nal)?),
            _ => {}
        }
        out.extend_from_slice(&avc::START_CODE);
        out.extend_from_slice(nal);
    }
    let facts = facts.ok_or_else(|| DecodeError::Sps("no SPS".into()))?;
    Ok((out, facts))
}

/// Decodes the keyframe `frame` (an AVCC access unit) of a track configured by `config`.
pub fn decode(config: &H264Config, frame: &Bytes) -> Result<Picture, DecodeError> {
    let (stream, facts) = annex_b(config, frame)?;
    decode_annex_b(&stream, facts)
}

fn decode_annex_b(stream: &[u8], facts: SpsFacts) -> Result<Picture, DecodeError> {
    let decoded = std::panic::catch_unwind(|| {
        let mut decoder = rusty_h264_decoder::Decoder::new();
        decoder.decode(stream)
    });
    let frame = match decoded {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return Err(DecodeError::NoPicture),
        Ok(Err(e)) => return Err(DecodeError::Decoder(e.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            return Err(DecodeError::Panicked(what));
        }
    };
    crop(
        Planes {
            width: frame.width,
            height: frame.height,
            y: frame.y,
            u: frame.u,
            v: frame.v,
        },
        facts,
    )
}

/// The decoder's frame: planar 4:2:0, cropped on the right and the bottom.
struct Planes {
    width: usize,
    height: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// The decoded frame with the SPS's left and top crop applied (the decoder applied the
/// right and bottom ones), checked against the sizes the SPS gives.
fn crop(frame: Planes, facts: SpsFacts) -> Result<Picture, DecodeError> {
    let (fw, fh) = (frame.width, frame.height);
    let (x0, y0) = (facts.crop_left, facts.crop_top);
    let (w, h) = (facts.width, facts.height);
    let fits = x0 + w <= fw
        && y0 + h <= fh
        && frame.y.len() >= fw * fh
        && frame.u.len() >= (fw / 2) * (fh / 2)
        && frame.v.len() >= (fw / 2) * (fh / 2)
        && w.is_multiple_of(2)
        && h.is_multiple_of(2)
        && x0.is_multiple_of(2)
        && y0.is_multiple_of(2);
    if !fits {
        return Err(DecodeError::Decoder(format!(
            "picture of {fw}x{fh} where the SPS gives {w}x{h} at ({x0}, {y0})"
        )));
    }
    let picture = |y, cb, cr| Picture {
        width: w,
        height: h,
        y,
        cb,
        cr,
        colour: facts.colour,
        sample_aspect: facts.sample_aspect,
    };
    if (fw, fh) == (w, h) {
        return Ok(picture(frame.y, frame.u, frame.v));
    }
    let cut = |plane: &[u8], stride: usize, x: usize, y: usize, w: usize, h: usize| {
        let mut out = Vec::with_capacity(w * h);
        for row in plane.chunks_exact(stride).skip(y).take(h) {
            out.extend_from_slice(&row[x..x + w]);
        }
        out
    };
    Ok(picture(
        cut(&frame.y, fw, x0, y0, w, h),
        cut(&frame.u, fw / 2, x0 / 2, y0 / 2, w / 2, h / 2),
        cut(&frame.v, fw / 2, x0 / 2, y0 / 2, w / 2, h / 2),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An Annex B file's NAL units (without start codes).
    pub(crate) fn nal_units(annex_b: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut start = None;
        while i + 3 <= annex_b.len() {
            if annex_b[i..i + 3] == [0, 0, 1] {
                if let Some(s) = start {
                    let mut end = i;
                    while end > s && annex_b[end - 1] == 0 {
                        end -= 1;
                    }
                    out.push(Bytes::copy_from_slice(&annex_b[s..end]));
                }
                i += 3;
                start = Some(i);
            } else {
                i += 1;
            }
        }
        if let Some(s) = start {
            out.push(Bytes::copy_from_slice(&annex_b[s..]));
        }
        out
    }

    /// A track configuration and an AVCC keyframe from an Annex B file of one IDR picture
    /// (as x264 writes it: SPS, PPS, SEI, slices).
    pub(crate) fn keyframe(file: &str) -> (H264Config, Bytes) {
        let path = format!("{}/testdata/thumbnail/{file}", env!("CARGO_MANIFEST_DIR"));
        let nals = nal_units(&std::fs::read(path).unwrap());
        let of = |t| {
            nals.iter()
                .filter(move |n| avc::nal_unit_type(n) == Some(t))
        };
        let sps = of(nal_type::SPS).next().unwrap();
        let pps = of(nal_type::PPS).next().unwrap();
        let mut record = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(sps);
        record.push(1);
        record.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        record.extend_from_slice(pps);
        let record = crate::flv::avc::AvcDecoderConfig::parse(&Bytes::from(record)).unwrap();
        let info = record.video_info().unwrap();
        let mut frame = Vec::new();
        for nal in nals
            .iter()
            .filter(|n| !matches!(avc::nal_unit_type(n), Some(nal_type::SPS | nal_type::PPS)))
        {
            frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            frame.extend_from_slice(nal);
        }
        (H264Config { record, info }, Bytes::from(frame))
    }

    #[test]
    fn an_x264_high_profile_idr_decodes_to_its_size() {
        let (config, frame) = keyframe("testsrc2_320x180.h264");
        let picture = decode(&config, &frame).unwrap();
        assert_eq!((picture.width, picture.height), (320, 180));
        assert_eq!(picture.y.len(), 320 * 180);
        assert_eq!(picture.cb.len(), 160 * 90);
        assert_eq!(picture.sample_aspect, (1, 1));
        assert!(!picture.colour.full_range);
        // testsrc2's picture is not flat: the luma plane spans most of its range.
        let (lo, hi) = (
            picture.y.iter().min().unwrap(),
            picture.y.iter().max().unwrap(),
        );
        assert!(*lo < 40 && *hi > 200, "{lo}..{hi}");
    }

    #[test]
    fn a_corrupt_slice_is_an_error_not_a_panic() {
        let (config, frame) = keyframe("testsrc2_320x180.h264");
        let mut bytes = frame.to_vec();
        // The IDR slice (after the SEI) past its NAL header byte: all ones, which reads as a
        // P slice header with nothing to refer to and then runs out of bits.
        let sei = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        for b in &mut bytes[4 + sei + 5..] {
            *b = 0xff;
        }
        let err = decode(&config, &Bytes::from(bytes)).unwrap_err();
        assert!(matches!(err, DecodeError::Decoder(_)), "{err}");
    }

    #[test]
    fn framing_errors_are_reported() {
        let (config, _) = keyframe("testsrc2_320x180.h264");
        let err = decode(&config, &Bytes::from_static(&[0, 0, 0, 9, 0x65])).unwrap_err();
        assert!(matches!(err, DecodeError::Framing(_)), "{err}");
        let err = decode(&config, &Bytes::new()).unwrap_err();
        assert_eq!(err, DecodeError::NoPicture);
    }

    /// An SPS for a picture of `mbs_w` x `mbs_h` macroblocks (Baseline, frames only).
    fn sps_of(mbs_w: u32, mbs_h: u32) -> Vec<u8> {
        struct Bits(Vec<u8>, u32);
        impl Bits {
            fn bit(&mut self, b: bool) {
                if self.1.is_multiple_of(8) {
                    self.0.push(0);
                }
                if b {
                    *self.0.last_mut().unwrap() |= 0x80 >> (self.1 % 8);
                }
                self.1 += 1;
            }
            fn bits(&mut self, v: u32, n: u32) {
                for i in (0..n).rev() {
                    self.bit(v >> i & 1 == 1);
                }
            }
            fn ue(&mut self, v: u32) {
                let v = v + 1;
                let n = 32 - v.leading_zeros();
                self.bits(0, n - 1);
                self.bits(v, n);
            }
        }
        let mut b = Bits(Vec::new(), 0);
        b.bits(66, 8); // profile_idc
        b.bits(0, 8); // constraint flags
        b.bits(52, 8); // level_idc
        b.ue(0); // seq_parameter_set_id
        b.ue(0); // log2_max_frame_num_minus4
        b.ue(2); // pic_order_cnt_type
        b.ue(1); // max_num_ref_frames
        b.bit(false); // gaps_in_frame_num_value_allowed_flag
        b.ue(mbs_w - 1);
        b.ue(mbs_h - 1);
        b.bit(true); // frame_mbs_only_flag
        b.bit(true); // direct_8x8_inference_flag
        b.bit(false); // frame_cropping_flag
        b.bit(false); // vui_parameters_present_flag
        b.bit(true); // rbsp_stop_one_bit
        let mut nal = vec![0x67];
        nal.extend(b.0);
        nal
    }

    #[test]
    fn pictures_larger_than_the_bound_are_refused_before_decoding() {
        // 4112 wide: one macroblock past the side.
        let err = check_sps(&sps_of(257, 4)).unwrap_err();
        assert!(
            matches!(err, DecodeError::TooLarge { width: 4112, .. }),
            "{err}"
        );
        // 4096x4096: each side fits, the area does not.
        assert!(check_sps(&sps_of(256, 256)).is_err());
        // 4096x2304 fits.
        let facts = check_sps(&sps_of(256, 144)).unwrap();
        assert_eq!((facts.width, facts.height), (4096, 2304));
        // The frame's own SPS is checked too, not only the record's.
        let (config, _) = keyframe("testsrc2_320x180.h264");
        let big = Bytes::from(sps_of(257, 4));
        let mut frame = (big.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&big);
        let err = decode(&config, &Bytes::from(frame)).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }), "{err}");
    }
}
