//! Opus as Enhanced RTMP carries it (FourCC `Opus`): the OpusHead identification header of a
//! SequenceStart (FFmpeg's FLV muxer sends its extradata, which is that header, verbatim),
//! the `dOps` box an MP4 sample entry needs, and the duration of each packet.
//!
//! Spec: RFC 7845 §5.1 (identification header), §5.1.1 (channel mapping families 0 and 1);
//! Encapsulation of Opus in ISO Base Media File Format §4.3.2 (OpusSpecificBox); RFC 6716
//! §3.1 (TOC byte), §3.2 (frame packing, code 3 frame count byte).

use bytes::{BufMut, Bytes, BytesMut};

use super::{AudioFacts, CodecError};

const HEAD: &str = "OpusHead";
const PACKET: &str = "Opus packet";

/// Magic signature of the identification header.
const MAGIC: &[u8; 8] = b"OpusHead";

/// Size of the identification header without a channel mapping table.
const FIXED_SIZE: usize = 19;

/// Opus always decodes at 48 kHz; pre-skip and packet durations count 48 kHz samples.
pub const SAMPLE_RATE: u32 = 48_000;

/// Most samples (at 48 kHz) one packet may hold: 120 ms.
///
/// Spec: RFC 6716 §3.2.5.
pub const MAX_PACKET_SAMPLES: u32 = 5760;

/// A checked OpusHead identification header.
///
/// Spec: RFC 7845 §5.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpusConfig {
    /// The identification header as received.
    pub head: Bytes,
    /// Output channel count.
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the decoder output at the start.
    pub pre_skip: u16,
    /// Sampling rate of the original input (informational only).
    pub input_sample_rate: u32,
    /// Gain to apply to the output, Q7.8 dB.
    pub output_gain: i16,
    /// Channel mapping family: 0 (mono or stereo) or 1 (Vorbis order, up to 8 channels).
    pub mapping_family: u8,
    /// Number of Opus streams in each packet (1 for family 0).
    pub stream_count: u8,
    /// Number of those streams that are coupled (stereo) (channels - 1 for family 0).
    pub coupled_count: u8,
    /// The channel mapping table (for family 0 the implied one: `[0]` or `[0, 1]`).
    pub mapping: Vec<u8>,
    /// 48000 Hz, the channel count, codec "opus".
    pub facts: AudioFacts,
}

impl OpusConfig {
    /// Parses and checks an identification header: the "OpusHead" signature, major version
    /// 0, at least one channel, mapping family 0 (at most 2 channels) or 1 (at most 8, with a
    /// table whose stream counts and entries are consistent). Other families (2 and 3,
    /// ambisonics; 255, undefined) are refused. Bytes after the header are ignored, as
    /// RFC 7845 allows for later minor versions.
    pub fn parse(head: &Bytes) -> Result<OpusConfig, CodecError> {
        let fixed = CodecError::take(HEAD, head, 0, FIXED_SIZE)?;
        if &fixed[..8] != MAGIC {
            return Err(CodecError::invalid(
                HEAD,
                "magic signature",
                u64::from_be_bytes(fixed[..8].try_into().unwrap_or_default()),
                "must be \"OpusHead\"",
            ));
        }
        let version = fixed[8];
        if version >> 4 != 0 {
            return Err(CodecError::invalid(
                HEAD,
                "version",
                version,
                "major version must be 0",
            ));
        }
        let channels = fixed[9];
        if channels == 0 {
            return Err(CodecError::invalid(
                HEAD,
                "output channel count",
                0u8,
                "must not be 0",
            ));
        }
        let pre_skip = u16::from_le_bytes([fixed[10], fixed[11]]);
        let input_sample_rate = u32::from_le_bytes([fixed[12], fixed[13], fixed[14], fixed[15]]);
        let output_gain = i16::from_le_bytes([fixed[16], fixed[17]]);
        let mapping_family = fixed[18];
        let (stream_count, coupled_count, mapping) = match mapping_family {
            0 => {
                if channels > 2 {
                    return Err(CodecError::invalid(
                        HEAD,
                        "output channel count",
                        channels,
                        "mapping family 0 carries 1 or 2 channels",
                    ));
                }
                (1, channels - 1, (0..channels).collect())
            }
            1 => {
                if channels > 8 {
                    return Err(CodecError::invalid(
                        HEAD,
                        "output channel count",
                        channels,
                        "mapping family 1 carries 1 to 8 channels",
                    ));
                }
                let counts = CodecError::take(HEAD, head, FIXED_SIZE, 2)?;
                let (streams, coupled) = (counts[0], counts[1]);
                if streams == 0 {
                    return Err(CodecError::invalid(
                        HEAD,
                        "stream count",
                        0u8,
                        "must not be 0",
                    ));
                }
                if coupled > streams {
                    return Err(CodecError::invalid(
                        HEAD,
                        "coupled stream count",
                        coupled,
                        "more than the stream count",
                    ));
                }
                let decoded_channels = u16::from(streams) + u16::from(coupled);
                if decoded_channels > 255 {
                    return Err(CodecError::invalid(
                        HEAD,
                        "stream count",
                        streams,
                        "streams plus coupled streams above 255",
                    ));
                }
                let table =
                    CodecError::take(HEAD, head, FIXED_SIZE + 2, usize::from(channels))?.to_vec();
                if let Some(&bad) = table
                    .iter()
                    .find(|&&entry| entry != 255 && u16::from(entry) >= decoded_channels)
                {
                    return Err(CodecError::invalid(
                        HEAD,
                        "channel mapping",
                        bad,
                        "names a decoded channel that does not exist",
                    ));
                }
                (streams, coupled, table)
            }
            other => {
                return Err(CodecError::invalid(
                    HEAD,
                    "channel mapping family",
                    other,
                    "only families 0 and 1 are supported",
                ));
            }
        };
        Ok(OpusConfig {
            head: head.clone(),
            channels,
            pre_skip,
            input_sample_rate,
            output_gain,
            mapping_family,
            stream_count,
            coupled_count,
            mapping,
            facts: AudioFacts {
                sample_rate: SAMPLE_RATE,
                channels,
                codec: "opus".into(),
            },
        })
    }

    /// The OpusSpecificBox (`dOps`) content: Version 0, OutputChannelCount, PreSkip,
    /// InputSampleRate, OutputGain, ChannelMappingFamily, and for a family other than 0
    /// StreamCount, CoupledCount and the ChannelMapping table. Big-endian, unlike OpusHead.
    ///
    /// Spec: Encapsulation of Opus in ISOBMFF §4.3.2.
    pub fn dops_body(&self) -> Bytes {
        let mut body = BytesMut::with_capacity(11 + 2 + self.mapping.len());
        body.put_u8(0);
        body.put_u8(self.channels);
        body.put_u16(self.pre_skip);
        body.put_u32(self.input_sample_rate);
        body.put_i16(self.output_gain);
        body.put_u8(self.mapping_family);
        if self.mapping_family != 0 {
            body.put_u8(self.stream_count);
            body.put_u8(self.coupled_count);
            body.put_slice(&self.mapping);
        }
        body.freeze()
    }
}

/// Samples (at 48 kHz) in one Opus packet: the frame duration its TOC byte's configuration
/// gives, times the number of frames its frame count code gives (code 3 reads the frame count
/// byte). An empty packet, a frame count of 0, or more than 120 ms is an error.
///
/// Spec: RFC 6716 §3.1 (Table 2), §3.2.1 to §3.2.5.
pub fn packet_samples(packet: &[u8]) -> Result<u32, CodecError> {
    let toc = *packet.first().ok_or(CodecError::Truncated {
        structure: PACKET,
        offset: 0,
        needed: 1,
        available: 0,
    })?;
    let config = toc >> 3;
    // Frame sizes in 48 kHz samples: 2.5 ms = 120.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => {
            let count = CodecError::take(PACKET, packet, 1, 1)?[0] & 0x3f;
            if count == 0 {
                return Err(CodecError::invalid(
                    PACKET,
                    "frame count",
                    count,
                    "a code 3 packet holds at least one frame",
                ));
            }
            u32::from(count)
        }
    };
    let samples = frame * frames;
    if samples > MAX_PACKET_SAMPLES {
        return Err(CodecError::invalid(
            PACKET,
            "frame count",
            frames,
            "more than 120 ms of audio",
        ));
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::test_util::{every_prefix_refused, hex};

    /// ffmpeg 9 + libopus, 48 kHz stereo: the SequenceStart body. ffmpeg: "opus, 48000 Hz,
    /// stereo".
    const STEREO: &str = "4f707573486561640102380180bb0000000000";
    /// ffmpeg 9 + libopus, 6 channels with mapping family 1. ffmpeg: "opus, 48000 Hz, 5.1".
    const SURROUND: &str = "4f707573486561640106380180bb00000000010402000401020305";

    fn parse(text: &str) -> Result<OpusConfig, CodecError> {
        OpusConfig::parse(&Bytes::from(hex(text)))
    }

    #[test]
    fn parses_ffmpeg_heads() {
        let config = parse(STEREO).unwrap();
        assert_eq!(config.channels, 2);
        assert_eq!(config.pre_skip, 312);
        assert_eq!(config.input_sample_rate, 48000);
        assert_eq!(config.output_gain, 0);
        assert_eq!(
            (
                config.mapping_family,
                config.stream_count,
                config.coupled_count
            ),
            (0, 1, 1)
        );
        assert_eq!(config.mapping, [0, 1]);
        assert_eq!(
            config.facts,
            AudioFacts {
                sample_rate: 48000,
                channels: 2,
                codec: "opus".into()
            }
        );
        assert_eq!(
            config.dops_body().as_ref(),
            hex("0002013800 00bb80 0000 00")
        );

        let config = parse(SURROUND).unwrap();
        assert_eq!(config.channels, 6);
        assert_eq!(
            (
                config.mapping_family,
                config.stream_count,
                config.coupled_count
            ),
            (1, 4, 2)
        );
        assert_eq!(config.mapping, [0, 4, 1, 2, 3, 5]);
        assert_eq!(
            config.dops_body().as_ref(),
            hex("0006013800 00bb80 0000 01 04 02 000401020305")
        );
    }

    #[test]
    fn packet_durations_follow_the_toc() {
        // ffmpeg's libopus packets: TOC 0xfc, CELT fullband 20 ms, one frame.
        assert_eq!(packet_samples(&[0xfc, 0x7e]).unwrap(), 960);
        // SILK 60 ms (config 3), two frames (code 1): 120 ms.
        assert_eq!(packet_samples(&[(3 << 3) | 1]).unwrap(), 5760);
        // Hybrid 10 ms (config 12), code 2.
        assert_eq!(packet_samples(&[(12 << 3) | 2]).unwrap(), 960);
        // CELT 2.5 ms (config 16), code 3 with 48 frames: 120 ms.
        assert_eq!(packet_samples(&[(16 << 3) | 3, 48]).unwrap(), 5760);
        assert!(matches!(
            packet_samples(&[(16 << 3) | 3, 49]),
            Err(CodecError::InvalidField {
                field: "frame count",
                ..
            })
        ));
        assert!(matches!(
            packet_samples(&[(16 << 3) | 3, 0x80]),
            Err(CodecError::InvalidField {
                field: "frame count",
                ..
            })
        ));
        assert!(matches!(
            packet_samples(&[]),
            Err(CodecError::Truncated { .. })
        ));
        every_prefix_refused(&[(16 << 3) | 3, 4], packet_samples);
    }

    #[test]
    fn every_truncation_is_refused() {
        for text in [STEREO, SURROUND] {
            let data = hex(text);
            every_prefix_refused(&data, |d| OpusConfig::parse(&Bytes::copy_from_slice(d)));
        }
    }

    #[test]
    fn corrupt_fields_are_refused_by_name() {
        let field = |data: Vec<u8>| match OpusConfig::parse(&Bytes::from(data)) {
            Err(CodecError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let stereo = hex(STEREO);
        let mut bad = stereo.clone();
        bad[0] = b'o';
        assert_eq!(field(bad), "magic signature");
        let mut bad = stereo.clone();
        bad[8] = 0x10;
        assert_eq!(field(bad), "version");
        let mut bad = stereo.clone();
        bad[9] = 0;
        assert_eq!(field(bad), "output channel count");
        let mut bad = stereo.clone();
        bad[9] = 3;
        assert_eq!(field(bad), "output channel count");
        let mut bad = stereo.clone();
        bad[18] = 2;
        assert_eq!(field(bad), "channel mapping family");
        let surround = hex(SURROUND);
        let mut bad = surround.clone();
        bad[19] = 0;
        assert_eq!(field(bad), "stream count");
        let mut bad = surround.clone();
        bad[20] = 5;
        assert_eq!(field(bad), "coupled stream count");
        let mut bad = surround.clone();
        bad[22] = 6; // 4 streams + 2 coupled decode 6 channels: 0..=5
        assert_eq!(field(bad), "channel mapping");
        let mut bad = surround.clone();
        bad[9] = 9;
        assert_eq!(field(bad), "output channel count");
    }
}
