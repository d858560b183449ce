//! FLAC as Enhanced RTMP carries it (FourCC `fLaC`): the STREAMINFO of a SequenceStart, the
//! `dfLa` box an MP4 sample entry needs, and the block size of each frame.
//!
//! FFmpeg's FLV muxer sends its FLAC extradata verbatim, and FFmpeg's FLAC extradata is the
//! bare 34-byte STREAMINFO block body (no "fLaC" marker, no metadata block header); its
//! encoder sends a second SequenceStart at the end with the total sample count and MD5
//! filled in. A body that starts with the "fLaC" marker, or with metadata block headers (as
//! `dfLa` holds them), is accepted too; only its STREAMINFO block is kept.
//!
//! Spec: RFC 9639 §8.1 (metadata block header), §8.2 (STREAMINFO), §9.1 (frame header),
//! §9.1.1 to §9.1.8 (block size, sample rate, channels, bit depth, coded number, CRC-8);
//! Encapsulation of FLAC in ISO Base Media File Format §3.3.2 (FLACSpecificBox).

use bytes::{BufMut, Bytes, BytesMut};

use super::{AudioFacts, CodecError};

const STREAMINFO: &str = "FLAC STREAMINFO";
const METADATA: &str = "FLAC metadata block";
const FRAME: &str = "FLAC frame header";

/// Size of a STREAMINFO block body.
pub const STREAMINFO_SIZE: usize = 34;

/// Size of a metadata block header.
const BLOCK_HEADER_SIZE: usize = 4;

/// The stream marker of a FLAC file.
const MARKER: &[u8; 4] = b"fLaC";

/// Most metadata blocks walked before STREAMINFO must have been found (it must be first;
/// the walk only checks the blocks' lengths).
const MAX_METADATA_BLOCKS: usize = 64;

/// A checked FLAC STREAMINFO.
///
/// Spec: RFC 9639 §8.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlacConfig {
    /// The metadata blocks as the `dfLa` box carries them: the STREAMINFO block with its
    /// 4-byte block header, its last-metadata-block flag set (it is the only block kept).
    pub metadata: Bytes,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Number of channels, 1 to 8.
    pub channels: u8,
    /// Bits per sample, 4 to 32.
    pub bits_per_sample: u8,
    /// Smallest block size in samples (the last block may be smaller).
    pub min_block_size: u16,
    /// Largest block size in samples.
    pub max_block_size: u16,
    /// The sample rate, the channel count, codec "fLaC".
    pub facts: AudioFacts,
}

impl FlacConfig {
    /// Parses a SequenceStart body: a bare 34-byte STREAMINFO, or metadata blocks (with or
    /// without the "fLaC" marker in front) of which the first is STREAMINFO. Checks the
    /// block sizes (16 to 65535, minimum at most maximum), a non-zero sample rate, and the
    /// bit depth (4 to 32).
    pub fn parse(body: &Bytes) -> Result<FlacConfig, CodecError> {
        let info = if body.len() == STREAMINFO_SIZE {
            &body[..]
        } else {
            let blocks = body.strip_prefix(MARKER.as_slice()).unwrap_or(body);
            first_streaminfo(blocks)?
        };
        let info = CodecError::take(STREAMINFO, info, 0, STREAMINFO_SIZE)?;
        let min_block_size = u16::from_be_bytes([info[0], info[1]]);
        let max_block_size = u16::from_be_bytes([info[2], info[3]]);
        let packed = u64::from_be_bytes([
            info[10], info[11], info[12], info[13], info[14], info[15], info[16], info[17],
        ]);
        let sample_rate = (packed >> 44) as u32;
        let channels = ((packed >> 41) & 0x07) as u8 + 1;
        let bits_per_sample = ((packed >> 36) & 0x1f) as u8 + 1;
        if min_block_size < 16 {
            return Err(CodecError::invalid(
                STREAMINFO,
                "minimum block size",
                min_block_size,
                "must be at least 16",
            ));
        }
        if max_block_size < min_block_size {
            return Err(CodecError::invalid(
                STREAMINFO,
                "maximum block size",
                max_block_size,
                "below the minimum block size",
            ));
        }
        if sample_rate == 0 {
            return Err(CodecError::invalid(
                STREAMINFO,
                "sample rate",
                0u8,
                "must not be 0 for audio",
            ));
        }
        if bits_per_sample < 4 {
            return Err(CodecError::invalid(
                STREAMINFO,
                "bits per sample",
                bits_per_sample,
                "must be 4 to 32",
            ));
        }
        let mut metadata = BytesMut::with_capacity(BLOCK_HEADER_SIZE + STREAMINFO_SIZE);
        // Last-metadata-block flag set, block type 0 (STREAMINFO), 24-bit length.
        metadata.put_u8(0x80);
        metadata.put_uint(STREAMINFO_SIZE as u64, 3);
        metadata.put_slice(info);
        Ok(FlacConfig {
            metadata: metadata.freeze(),
            sample_rate,
            channels,
            bits_per_sample,
            min_block_size,
            max_block_size,
            facts: AudioFacts {
                sample_rate,
                channels,
                codec: "fLaC".into(),
            },
        })
    }

    /// The FLACSpecificBox (`dfLa`) content after its FullBox version (0) and flags (0): the
    /// metadata blocks, here the STREAMINFO block alone, flagged as the last.
    ///
    /// Spec: Encapsulation of FLAC in ISOBMFF §3.3.2.
    pub fn dfla_body(&self) -> Bytes {
        self.metadata.clone()
    }

    /// The block size (samples per channel) of a frame, from its header: the sync code
    /// (0xFFF8 fixed or 0xFFF9 variable block size), the block size bits with the 8- or
    /// 16-bit uncommon size after the coded number, the reserved values refused, and the
    /// header's CRC-8 checked. A block larger than STREAMINFO's maximum is refused.
    ///
    /// Spec: RFC 9639 §9.1.
    pub fn frame_samples(&self, frame: &[u8]) -> Result<u32, CodecError> {
        let fixed = CodecError::take(FRAME, frame, 0, 5)?;
        if fixed[0] != 0xff || fixed[1] & 0xfe != 0xf8 {
            return Err(CodecError::invalid(
                FRAME,
                "frame sync code",
                u16::from_be_bytes([fixed[0], fixed[1]]),
                "must be 0xFFF8 or 0xFFF9",
            ));
        }
        let variable = fixed[1] & 1 == 1;
        let block_bits = fixed[2] >> 4;
        let rate_bits = fixed[2] & 0x0f;
        let channel_bits = fixed[3] >> 4;
        let depth_bits = (fixed[3] >> 1) & 0x07;
        if block_bits == 0 {
            return Err(CodecError::invalid(
                FRAME,
                "block size bits",
                0u8,
                "reserved",
            ));
        }
        if rate_bits == 0x0f {
            return Err(CodecError::invalid(
                FRAME,
                "sample rate bits",
                rate_bits,
                "forbidden",
            ));
        }
        if channel_bits > 0x0a {
            return Err(CodecError::invalid(
                FRAME,
                "channel bits",
                channel_bits,
                "reserved",
            ));
        }
        if depth_bits == 0x03 {
            return Err(CodecError::invalid(
                FRAME,
                "bit depth bits",
                depth_bits,
                "reserved",
            ));
        }
        if fixed[3] & 1 != 0 {
            return Err(CodecError::invalid(FRAME, "reserved bit", 1u8, "must be 0"));
        }
        // The coded number: 1 byte, or a lead byte with n leading ones and n - 1
        // continuation bytes (10xxxxxx); 6 bytes at most for frame numbers, 7 for sample
        // numbers.
        let lead = fixed[4];
        let coded_len = match lead.leading_ones() {
            0 => 1,
            n @ 2..=7 => n as usize,
            _ => {
                return Err(CodecError::invalid(
                    FRAME,
                    "coded number",
                    lead,
                    "not a valid lead byte",
                ));
            }
        };
        if coded_len > if variable { 7 } else { 6 } {
            return Err(CodecError::invalid(
                FRAME,
                "coded number",
                lead,
                "too long for the blocking strategy",
            ));
        }
        let continuation = CodecError::take(FRAME, frame, 5, coded_len - 1)?;
        if let Some(&bad) = continuation.iter().find(|&&b| b & 0xc0 != 0x80) {
            return Err(CodecError::invalid(
                FRAME,
                "coded number",
                bad,
                "continuation byte is not 10xxxxxx",
            ));
        }
        let mut offset = 4 + coded_len;
        let block_size: u32 = match block_bits {
            1 => 192,
            2..=5 => 144 << block_bits,
            6 => {
                let size = CodecError::take(FRAME, frame, offset, 1)?[0];
                offset += 1;
                u32::from(size) + 1
            }
            7 => {
                let size = CodecError::take(FRAME, frame, offset, 2)?;
                offset += 2;
                u32::from(u16::from_be_bytes([size[0], size[1]])) + 1
            }
            _ => 256 << (block_bits - 8),
        };
        offset += match rate_bits {
            0x0c => 1,
            0x0d | 0x0e => 2,
            _ => 0,
        };
        let header = CodecError::take(FRAME, frame, 0, offset + 1)?;
        let crc = crc8(&header[..offset]);
        if crc != header[offset] {
            return Err(CodecError::invalid(
                FRAME,
                "CRC-8",
                header[offset],
                "does not match the header",
            ));
        }
        if block_size > u32::from(self.max_block_size) {
            return Err(CodecError::invalid(
                FRAME,
                "block size",
                block_size,
                "above STREAMINFO's maximum block size",
            ));
        }
        Ok(block_size)
    }
}

/// The STREAMINFO body of metadata blocks that start with it; the blocks after it are only
/// checked to fit, up to the one flagged as the last.
///
/// Spec: RFC 9639 §8.1.
fn first_streaminfo(blocks: &[u8]) -> Result<&[u8], CodecError> {
    let mut offset = 0;
    let mut streaminfo = None;
    for index in 0.. {
        if index == MAX_METADATA_BLOCKS {
            return Err(CodecError::TooMany {
                structure: METADATA,
                what: "metadata blocks",
                limit: MAX_METADATA_BLOCKS,
            });
        }
        let header = CodecError::take(METADATA, blocks, offset, BLOCK_HEADER_SIZE)?;
        let last = header[0] & 0x80 != 0;
        let block_type = header[0] & 0x7f;
        let length =
            usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
        offset += BLOCK_HEADER_SIZE;
        if index == 0 {
            if block_type != 0 {
                return Err(CodecError::invalid(
                    METADATA,
                    "block type",
                    block_type,
                    "the first metadata block must be STREAMINFO (0)",
                ));
            }
            if length != STREAMINFO_SIZE {
                return Err(CodecError::invalid(
                    METADATA,
                    "STREAMINFO length",
                    length as u64,
                    "must be 34",
                ));
            }
        } else if block_type == 127 {
            return Err(CodecError::invalid(
                METADATA,
                "block type",
                block_type,
                "forbidden",
            ));
        }
        let body = CodecError::take(METADATA, blocks, offset, length)?;
        if index == 0 {
            streaminfo = Some(body);
        }
        offset += length;
        if last {
            break;
        }
    }
    streaminfo.ok_or(CodecError::Missing {
        structure: METADATA,
        what: "no STREAMINFO block",
    })
}

/// CRC-8 with polynomial x^8 + x^2 + x + 1, initial value 0, as the frame header uses.
///
/// Spec: RFC 9639 §9.1.8.
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &byte in data {
        crc ^= byte;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex};

    /// ffmpeg 9 `-c:a flac`, 44.1 kHz mono s16: the first SequenceStart body (total samples
    /// and MD5 still zero). ffmpeg: "flac, 44100 Hz, mono, s16".
    const MONO_44K: &str = "040004000000000008150ac440f00000000000000000000000000000000000000000";
    /// The second SequenceStart of a 48 kHz stereo stream, sent at the end with the totals.
    const STEREO_48K_FINAL: &str =
        "040004000001210001730bb802f0000012c00853ed7cc183b06870b2f9ab4e260d4c";
    /// First frame headers (through the CRC-8) of the two streams.
    const FRAME_MONO: &str = "fff8a9080050";
    const FRAME_STEREO: &str = "fff8aa88005b";

    fn parse(text: &str) -> Result<FlacConfig, CodecError> {
        FlacConfig::parse(&Bytes::from(hex(text)))
    }

    #[test]
    fn parses_ffmpeg_streaminfo() {
        let config = parse(MONO_44K).unwrap();
        assert_eq!(
            (config.sample_rate, config.channels, config.bits_per_sample),
            (44100, 1, 16)
        );
        assert_eq!((config.min_block_size, config.max_block_size), (1024, 1024));
        assert_eq!(
            config.facts,
            AudioFacts {
                sample_rate: 44100,
                channels: 1,
                codec: "fLaC".into()
            }
        );
        let mut expected = hex("80000022");
        expected.extend(hex(MONO_44K));
        assert_eq!(config.dfla_body().as_ref(), expected);
        assert_eq!(config.frame_samples(&hex(FRAME_MONO)).unwrap(), 1024);

        let config = parse(STEREO_48K_FINAL).unwrap();
        assert_eq!((config.sample_rate, config.channels), (48000, 2));
        assert_eq!(config.frame_samples(&hex(FRAME_STEREO)).unwrap(), 1024);
    }

    #[test]
    fn accepts_marker_and_block_headers() {
        let bare = parse(MONO_44K).unwrap();
        // "fLaC", STREAMINFO (not last), a 4-byte PADDING block (last).
        let mut file = b"fLaC".to_vec();
        file.extend(hex("00000022"));
        file.extend(hex(MONO_44K));
        file.extend(hex("8100000400000000"));
        assert_eq!(FlacConfig::parse(&Bytes::from(file.clone())).unwrap(), bare);
        // The same without the marker (as dfLa holds it).
        assert_eq!(
            FlacConfig::parse(&Bytes::from(file[4..].to_vec())).unwrap(),
            bare
        );
        every_prefix_refused(&file, |d| FlacConfig::parse(&Bytes::copy_from_slice(d)));
    }

    #[test]
    fn uncommon_block_sizes_and_coded_numbers() {
        let config = FlacConfig {
            max_block_size: 65535,
            ..parse(MONO_44K).unwrap()
        };
        let with_crc = |mut header: Vec<u8>| {
            header.push(crc8(&header));
            header
        };
        // Variable block size, 7-byte coded sample number, 16-bit block size 4097, 8-bit
        // sample rate in kHz.
        let header = with_crc(hex("fff97c08 fe8182838485 86 1000 30"));
        assert_eq!(config.frame_samples(&header).unwrap(), 4097);
        every_prefix_refused(&header, |d| config.frame_samples(d));
        // Fixed block size, 2-byte frame number, 8-bit block size 100.
        let header = with_crc(hex("fff86908 c280 63"));
        assert_eq!(config.frame_samples(&header).unwrap(), 100);
        // A 7-byte coded number with a fixed block size is too long.
        let header = with_crc(hex("fff8a908 fe8182838485 86"));
        assert!(matches!(
            config.frame_samples(&header),
            Err(CodecError::InvalidField {
                field: "coded number",
                ..
            })
        ));
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [MONO_44K, STEREO_48K_FINAL] {
            every_prefix_refused(&hex(text), |d| {
                FlacConfig::parse(&Bytes::copy_from_slice(d))
            });
        }
        let config = parse(MONO_44K).unwrap();
        every_prefix_refused(&hex(FRAME_MONO), |d| config.frame_samples(d));
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let field = |data: Vec<u8>| match FlacConfig::parse(&Bytes::from(data)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let good = hex(MONO_44K);
        let mut bad = good.clone();
        bad[0..2].copy_from_slice(&[0, 15]);
        assert_eq!(field(bad), "minimum block size");
        let mut bad = good.clone();
        bad[2..4].copy_from_slice(&[0, 16]);
        assert_eq!(field(bad), "maximum block size");
        let mut bad = good.clone();
        bad[10..13].copy_from_slice(&[0, 0, 0x00]);
        assert_eq!(field(bad), "sample rate");
        let mut bad = good.clone();
        bad[12] &= 0xf0;
        bad[13] &= 0x0f; // bits per sample 1
        assert_eq!(field(bad), "bits per sample");
        let mut blocks = hex("01000022");
        blocks.extend(&good);
        assert_eq!(field(blocks), "block type");

        let config = parse(MONO_44K).unwrap();
        let frame_field = |data: Vec<u8>| match config.frame_samples(&data) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let frame = hex(FRAME_MONO);
        let mut bad = frame.clone();
        bad[1] = 0xfa;
        assert_eq!(frame_field(bad), "frame sync code");
        let mut bad = frame.clone();
        bad[5] ^= 1;
        assert_eq!(frame_field(bad), "CRC-8");
        let mut bad = frame.clone();
        bad[2] = 0x09;
        assert_eq!(frame_field(bad), "block size bits");
        let mut bad = frame.clone();
        bad[3] = 0xf8;
        assert_eq!(frame_field(bad), "channel bits");
        let mut bad = frame.clone();
        bad[4] = 0x80;
        assert_eq!(frame_field(bad), "coded number");
        // 4608 samples in a stream whose blocks are at most 1024.
        let header = {
            let mut h = hex("fff85908 00");
            h.push(crc8(&h));
            h
        };
        assert_eq!(frame_field(header), "block size");
    }
}
