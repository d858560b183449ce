//! Codec configurations and per-frame facts of the codecs Enhanced RTMP carries beyond
//! H.264 and AAC: HEVC, AV1, VP9, Opus, FLAC, AC-3/E-AC-3 and MP3.
//!
//! Each module parses and checks what a publisher sends as the SequenceStart of its track
//! (a configuration record, or for AC-3 and MP3, which carry no configuration, the first
//! frame's header), gives the facts the stats API, webhooks and playlists report
//! ([`VideoFacts`], [`AudioFacts`], with the RFC 6381 codec string), and reads from each coded
//! frame what the server needs (keyframe, sample count, picture size). Sans-IO: bytes in,
//! values out; no input panics, and all work is bounded by the input's length.
//!
//! What FFmpeg's FLV muxer (libavformat/flvenc.c) sends as each SequenceStart body:
//! - `hvc1`: an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1), array
//!   completeness 0.
//! - `av01`: an AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3.3) with the sequence header OBU
//!   in configOBUs. With libaom an empty SequenceStart comes first.
//! - `vp09`: the vpcC box content *with* its FullBox version (1) and flags (0) in front.
//! - `Opus`: the OpusHead identification header (RFC 7845 §5.1). Enhanced RTMP v2 also
//!   allows an empty one (then mono or stereo, or a MultichannelConfig), which
//!   [`opus::OpusConfig::parse`] refuses: the caller decides what an empty one means.
//! - `fLaC`: the bare 34-byte STREAMINFO block body (no "fLaC" marker, no block header); a
//!   second one with the total samples and MD5 may come at the end. Enhanced RTMP v2
//!   describes "fLaC" followed by the STREAMINFO metadata block; both are accepted.
//! - `ac-3`, `ec-3`: nothing (an empty SequenceStart; Enhanced RTMP v2 defines none); the
//!   syncframes describe the stream, see [`ac3::Ac3Config::from_syncframe`].
//! - MP3 goes as legacy FLV audio (codec id 2) with no configuration at all.
//!
//! An empty SequenceStart is the caller's to recognise; every parser here refuses empty
//! input.

pub mod ac3;
pub mod av1;
mod bits;
pub mod error;
pub mod flac;
pub mod hevc;
pub mod mp3;
pub mod opus;
pub mod vp9;

pub use error::CodecError;

/// Facts every video configuration gives, for the stats API, webhooks and playlists.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct VideoFacts {
    /// Displayed width in luma samples (after cropping where the codec crops).
    pub width: u32,
    /// Displayed height in luma samples.
    pub height: u32,
    /// Luma bit depth.
    pub bit_depth: u8,
    /// Chroma format: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format: u8,
    /// Frames per second when the configuration states it.
    pub frame_rate: Option<f64>,
    /// RFC 6381 codec string.
    pub codec: String,
}

/// Facts every audio configuration gives.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AudioFacts {
    /// Sampling rate in Hz (of the decoded output).
    pub sample_rate: u32,
    /// Number of output channels.
    pub channels: u8,
    /// RFC 6381 codec string (or sample entry name, as HLS CODECS uses it).
    pub codec: String,
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::CodecError;

    /// Every strict prefix of `data` is refused by `parse` (and none panics).
    pub(crate) fn every_prefix_refused<T: std::fmt::Debug>(
        data: &[u8],
        parse: impl Fn(&[u8]) -> Result<T, CodecError>,
    ) {
        for end in 0..data.len() {
            let result = parse(&data[..end]);
            assert!(
                result.is_err(),
                "prefix of {end} of {} bytes accepted: {result:?}",
                data.len()
            );
        }
    }

    /// Packs (value, bit count) fields MSB first, padding the last byte with zeros.
    pub(crate) fn pack_bits(fields: &[(u64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut used = 0u32;
        for &(value, count) in fields {
            for i in (0..count).rev() {
                if used.is_multiple_of(8) {
                    out.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                let last = out.len() - 1;
                out[last] |= bit << (7 - used % 8);
                used += 1;
            }
        }
        out
    }

    /// Decodes a hex string (whitespace ignored).
    pub(crate) fn hex(text: &str) -> Vec<u8> {
        let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(digits).expect("test vector is hex")
    }
}
