//! MPEG audio (MP3 and its Layer I/II siblings) as FLV carries it (legacy codec id 2, or
//! FourCC `.mp3` in Enhanced RTMP): no configuration is sent, so the stream facts come from
//! each frame's 4-byte header.
//!
//! Spec: ISO/IEC 11172-3 §2.4.1.3 and §2.4.2.3 (header: ID, layer, bitrate_index,
//! sampling_frequency, padding_bit, mode), ISO/IEC 13818-3 §2.4.2.3 (lower sampling
//! frequencies, ID 0), the unofficial MPEG 2.5 extension (version bits 00); frame lengths
//! from ISO/IEC 11172-3 §2.4.3.1.

use super::{AudioFacts, CodecError};

const HEADER: &str = "MPEG audio frame header";

/// The version of an MPEG audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MpegVersion {
    /// MPEG-1 (ISO/IEC 11172-3): 32, 44.1 and 48 kHz.
    Mpeg1,
    /// MPEG-2 lower sampling frequencies (ISO/IEC 13818-3): 16, 22.05 and 24 kHz.
    Mpeg2,
    /// MPEG 2.5 (an industry extension): 8, 11.025 and 12 kHz.
    Mpeg25,
}

/// Bit rates in kbit/s by bitrate_index 1..=14: MPEG-1 Layer I, II, III, then MPEG-2/2.5
/// Layer I, and MPEG-2/2.5 Layers II and III.
const BITRATES: [[u32; 14]; 5] = [
    [
        32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
    [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

/// Sampling frequencies of MPEG-1 by sampling_frequency 0..=2; MPEG-2 halves them, MPEG 2.5
/// quarters them.
const MPEG1_RATES: [u32; 3] = [44100, 48000, 32000];

/// A checked MPEG audio frame header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mp3Header {
    /// MPEG-1, MPEG-2 or MPEG 2.5.
    pub version: MpegVersion,
    /// Layer 1, 2 or 3.
    pub layer: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// 1 (single channel mode) or 2.
    pub channels: u8,
    /// Samples per frame: 384 (Layer I), 1152 (Layer II, MPEG-1 Layer III), 576 (MPEG-2 and
    /// 2.5 Layer III).
    pub samples_per_frame: u32,
    /// The frame's length in bytes, header and padding included.
    pub frame_len: usize,
}

impl Mp3Header {
    /// Parses the 4-byte header at the start of `frame`: the 11-bit sync, a version and
    /// layer that are not reserved, a bitrate_index that is neither free format (0) nor
    /// forbidden (15), and a sampling_frequency that is not reserved.
    pub fn parse(frame: &[u8]) -> Result<Mp3Header, CodecError> {
        let h = CodecError::take(HEADER, frame, 0, 4)?;
        let word = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        if word >> 21 != 0x7ff {
            return Err(CodecError::invalid(
                HEADER,
                "syncword",
                word >> 21,
                "must be 11 ones",
            ));
        }
        let version = match (word >> 19) & 3 {
            0 => MpegVersion::Mpeg25,
            2 => MpegVersion::Mpeg2,
            3 => MpegVersion::Mpeg1,
            other => return Err(CodecError::invalid(HEADER, "version", other, "reserved")),
        };
        let layer = match (word >> 17) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            other => return Err(CodecError::invalid(HEADER, "layer", other, "reserved")),
        };
        let bitrate_index = (word >> 12) & 0x0f;
        if bitrate_index == 0 {
            return Err(CodecError::invalid(
                HEADER,
                "bitrate_index",
                0u8,
                "free format is not supported",
            ));
        }
        if bitrate_index == 15 {
            return Err(CodecError::invalid(
                HEADER,
                "bitrate_index",
                15u8,
                "forbidden",
            ));
        }
        let frequency_index = (word >> 10) & 3;
        let base_rate = *MPEG1_RATES
            .get(frequency_index as usize)
            .ok_or(CodecError::invalid(
                HEADER,
                "sampling_frequency",
                frequency_index,
                "reserved",
            ))?;
        let padding = (word >> 9) & 1;
        let mode = (word >> 6) & 3;
        let (sample_rate, table) = match version {
            MpegVersion::Mpeg1 => (base_rate, usize::from(layer - 1)),
            MpegVersion::Mpeg2 => (base_rate / 2, if layer == 1 { 3 } else { 4 }),
            MpegVersion::Mpeg25 => (base_rate / 4, if layer == 1 { 3 } else { 4 }),
        };
        let bitrate = BITRATES[table][bitrate_index as usize - 1] * 1000;
        let samples_per_frame = match (layer, version) {
            (1, _) => 384,
            (3, MpegVersion::Mpeg2 | MpegVersion::Mpeg25) => 576,
            _ => 1152,
        };
        // Bytes per frame: samples / 8 bits per byte * bit rate / sample rate, plus the
        // padding slot (4 bytes in Layer I).
        let frame_len = if layer == 1 {
            (12 * bitrate / sample_rate + padding) * 4
        } else {
            samples_per_frame / 8 * bitrate / sample_rate + padding
        };
        Ok(Mp3Header {
            version,
            layer,
            sample_rate,
            channels: if mode == 3 { 1 } else { 2 },
            samples_per_frame,
            frame_len: frame_len as usize,
        })
    }

    /// The stream facts. The codec string is the MPEG-4 audio object type of the layer:
    /// "mp4a.40.34" for Layer III (MP3), 33 for Layer II, 32 for Layer I.
    ///
    /// Spec: ISO/IEC 14496-3 Table 1.1 (object types 32 to 34); RFC 6381 §3.3.
    pub fn facts(&self) -> AudioFacts {
        AudioFacts {
            sample_rate: self.sample_rate,
            channels: self.channels,
            codec: format!("mp4a.40.{}", 31 + u32::from(self.layer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex};

    fn header(text: &str) -> Mp3Header {
        Mp3Header::parse(&hex(text)).unwrap()
    }

    #[test]
    fn reads_lame_headers() {
        // ffmpeg 9 + libmp3lame, 44.1 kHz joint stereo 128 kbit/s: frames of 417 and
        // (padded) 418 bytes. ffmpeg: "mp3, 44100 Hz, stereo, 128 kb/s".
        let h = header("fffb9064");
        assert_eq!(
            h,
            Mp3Header {
                version: MpegVersion::Mpeg1,
                layer: 3,
                sample_rate: 44100,
                channels: 2,
                samples_per_frame: 1152,
                frame_len: 417,
            }
        );
        assert_eq!(header("fffb9264").frame_len, 418);
        assert_eq!(
            h.facts(),
            AudioFacts {
                sample_rate: 44100,
                channels: 2,
                codec: "mp4a.40.34".into()
            }
        );
        // MPEG-2, 22.05 kHz mono 32 kbit/s: 104 and 105 bytes. ffmpeg: "mp3, 22050 Hz,
        // mono, 32 kb/s".
        let h = header("fff340c4");
        assert_eq!(h.version, MpegVersion::Mpeg2);
        assert_eq!(
            (h.sample_rate, h.channels, h.samples_per_frame),
            (22050, 1, 576)
        );
        assert_eq!(h.frame_len, 104);
        assert_eq!(header("fff342c4").frame_len, 105);
        // MPEG 2.5, 8 kHz, 8 kbit/s (bitrate_index 1, sampling_frequency 2).
        let h = header("ffe318c4");
        assert_eq!(h.version, MpegVersion::Mpeg25);
        assert_eq!((h.sample_rate, h.frame_len), (8000, 72));
        // MPEG-1 Layer II 48 kHz 192 kbit/s, and Layer I 32 kHz 32 kbit/s.
        let h = header("fffda400");
        assert_eq!((h.layer, h.sample_rate, h.frame_len), (2, 48000, 576));
        assert_eq!(h.facts().codec, "mp4a.40.33");
        let h = header("ffff1800");
        assert_eq!((h.layer, h.samples_per_frame, h.frame_len), (1, 384, 48));
    }

    #[test]
    fn every_truncation_is_refused() {
        every_prefix_refused(&hex("fffb9064"), Mp3Header::parse);
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let field = |text: &str| match Mp3Header::parse(&hex(text)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("7ffb9064"), "syncword");
        assert_eq!(field("ffeb9064"), "version");
        assert_eq!(field("fff99064"), "layer");
        assert_eq!(field("fffb0064"), "bitrate_index");
        assert_eq!(field("fffbf064"), "bitrate_index");
        assert_eq!(field("fffb9c64"), "sampling_frequency");
    }
}
