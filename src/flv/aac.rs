//! AAC as FLV carries it: the AudioSpecificConfig of a sequence header, the stream facts
//! from it, and the 7-byte ADTS header that turns each raw frame into a self-describing
//! frame for MPEG-TS.
//!
//! Spec: ISO/IEC 14496-3 §1.6.2.1 (AudioSpecificConfig), §1.6.3.3 and §1.6.3.4
//! (samplingFrequencyIndex, channelConfiguration), §4.4.1 (GASpecificConfig), §1.A.2.2.1
//! (ADTS header); RFC 6381 §3.3 (mp4a codec string).

use crate::flv::error::FlvError;
use crate::media::Duration90k;

/// Sampling frequencies by samplingFrequencyIndex 0x0..=0xC; 0xD and 0xE are reserved,
/// 0xF means an explicit 24-bit frequency follows.
///
/// Spec: ISO/IEC 14496-3 §1.6.3.4, Table 1.18.
pub const SAMPLING_FREQUENCIES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// samplingFrequencyIndex value announcing an explicit 24-bit samplingFrequency.
const EXPLICIT_FREQUENCY_INDEX: u8 = 0x0f;

/// audioObjectType value announcing an escaped type: 32 + audioObjectTypeExt (6 bits).
const ESCAPE_OBJECT_TYPE: u8 = 31;

/// audioObjectType of SBR (HE-AAC v1), explicit hierarchical signalling.
const SBR_OBJECT_TYPE: u8 = 5;

/// audioObjectType of PS (HE-AAC v2), explicit hierarchical signalling.
const PS_OBJECT_TYPE: u8 = 29;

/// Samples per AAC frame with the usual 1024-line MDCT (frameLengthFlag 0).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// Size of an ADTS header without CRC (protection_absent = 1).
pub const ADTS_HEADER_SIZE: usize = 7;

/// Largest ADTS frame: aac_frame_length is a 13-bit field counting header and payload.
pub const MAX_ADTS_FRAME_SIZE: usize = (1 << 13) - 1;

/// A parsed AudioSpecificConfig, as far as ADTS and players need it.
///
/// Spec: ISO/IEC 14496-3 §1.6.2.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// audioObjectType as signalled first (5 or 29 for explicit HE-AAC).
    pub audio_object_type: u8,
    /// The core coder's audioObjectType: the same, or for explicit SBR/PS signalling the
    /// type that follows the extension fields.
    pub core_object_type: u8,
    /// samplingFrequencyIndex of the core coder (0xF when explicit).
    pub sampling_frequency_index: u8,
    /// The core coder's sampling frequency in Hz.
    pub sampling_frequency: u32,
    /// channelConfiguration (0 = defined by a program_config_element).
    pub channel_configuration: u8,
    /// GASpecificConfig frameLengthFlag: 960-sample frames instead of 1024.
    pub frame_length_flag: bool,
}

impl AudioSpecificConfig {
    /// Parses the leading fields of an AudioSpecificConfig.
    pub fn parse(data: &[u8]) -> Result<AudioSpecificConfig, FlvError> {
        let mut r = BitReader::new(data);
        let audio_object_type = read_object_type(&mut r)?;
        let (sampling_frequency_index, sampling_frequency) = read_frequency(&mut r)?;
        let channel_configuration = r.read(4)? as u8;
        let mut core_object_type = audio_object_type;
        if audio_object_type == SBR_OBJECT_TYPE || audio_object_type == PS_OBJECT_TYPE {
            // extensionSamplingFrequencyIndex: the SBR output rate. The core rate stays the
            // one read above.
            let _extension = read_frequency(&mut r)?;
            core_object_type = read_object_type(&mut r)?;
        }
        // GASpecificConfig starts with frameLengthFlag for the general audio object types.
        let frame_length_flag = if matches!(core_object_type, 1..=4 | 6 | 7 | 17 | 19..=23) {
            r.read(1)? == 1
        } else {
            false
        };
        Ok(AudioSpecificConfig {
            audio_object_type,
            core_object_type,
            sampling_frequency_index,
            sampling_frequency,
            channel_configuration,
            frame_length_flag,
        })
    }

    /// Stream facts for logs, stats and the playlist's CODECS attribute.
    pub fn audio_info(&self) -> AudioInfo {
        let channels = match self.channel_configuration {
            7 => 8,
            other => other,
        };
        AudioInfo {
            codec: format!("mp4a.40.{}", self.audio_object_type),
            sample_rate: self.sampling_frequency,
            channels,
        }
    }

    /// The fixed part of the ADTS header for this stream, or why ADTS cannot carry it.
    /// HE-AAC signalled explicitly (object type 5 or 29) is carried as its AAC-LC core, with
    /// SBR/PS left to implicit signalling, as FFmpeg's ADTS writer does.
    ///
    /// Spec: ISO/IEC 14496-3 §1.A.2.2.1 (profile_ObjectType is 2 bits: types 1 to 4;
    /// sampling_frequency_index has no escape; channel_configuration is 3 bits).
    pub fn adts(&self) -> Result<AdtsConfig, FlvError> {
        if !(1..=4).contains(&self.core_object_type) {
            return Err(FlvError::NotAdtsExpressible {
                field: "audioObjectType",
                value: u32::from(self.core_object_type),
                reason: "ADTS profile_ObjectType covers AAC Main, LC, SSR and LTP only",
            });
        }
        if usize::from(self.sampling_frequency_index) >= SAMPLING_FREQUENCIES.len() {
            return Err(FlvError::NotAdtsExpressible {
                field: "samplingFrequencyIndex",
                value: u32::from(self.sampling_frequency_index),
                reason: "ADTS has no explicit sampling frequency",
            });
        }
        if !(1..=7).contains(&self.channel_configuration) {
            return Err(FlvError::NotAdtsExpressible {
                field: "channelConfiguration",
                value: u32::from(self.channel_configuration),
                reason: "ADTS carries channel configurations 1 to 7 only",
            });
        }
        if self.frame_length_flag {
            return Err(FlvError::NotAdtsExpressible {
                field: "frameLengthFlag",
                value: 1,
                reason: "ADTS frames are 1024 samples",
            });
        }
        Ok(AdtsConfig {
            profile_object_type: self.core_object_type - 1,
            sampling_frequency_index: self.sampling_frequency_index,
            channel_configuration: self.channel_configuration,
            sampling_frequency: self.sampling_frequency,
        })
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, FlvError> {
    let audio_object_type = r.read(5)? as u8;
    if audio_object_type == ESCAPE_OBJECT_TYPE {
        Ok(32 + r.read(6)? as u8)
    } else {
        Ok(audio_object_type)
    }
}

/// Reads samplingFrequencyIndex and, when it is 0xF, samplingFrequency. Returns the index
/// and the frequency; a reserved index or a zero frequency is an error.
fn read_frequency(r: &mut BitReader<'_>) -> Result<(u8, u32), FlvError> {
    let index = r.read(4)? as u8;
    if index == EXPLICIT_FREQUENCY_INDEX {
        let frequency = r.read(24)?;
        if frequency == 0 {
            return Err(FlvError::InvalidField {
                structure: "AudioSpecificConfig",
                field: "samplingFrequency",
                value: 0,
                reason: "must not be zero",
            });
        }
        return Ok((index, frequency));
    }
    match SAMPLING_FREQUENCIES.get(usize::from(index)) {
        Some(&frequency) => Ok((index, frequency)),
        None => Err(FlvError::InvalidField {
            structure: "AudioSpecificConfig",
            field: "samplingFrequencyIndex",
            value: u32::from(index),
            reason: "reserved",
        }),
    }
}

/// What a player or operator needs to know about an AAC stream (also as `/api/streams` and
/// the webhooks report it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AudioInfo {
    /// RFC 6381 codec string: "mp4a.40." and the signalled audioObjectType ("mp4a.40.2" for
    /// AAC-LC, "mp4a.40.5" for HE-AAC).
    pub codec: String,
    /// The core coder's sampling frequency in Hz (the rate ADTS headers carry).
    pub sample_rate: u32,
    /// Number of channels (channelConfiguration 7 is 7.1, eight channels).
    pub channels: u8,
}

/// The fields of an ADTS header that stay the same for a stream, checked to fit.
///
/// Spec: ISO/IEC 14496-3 §1.A.2.2.1 adts_fixed_header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdtsConfig {
    /// profile_ObjectType: audioObjectType - 1.
    pub profile_object_type: u8,
    /// sampling_frequency_index (0..=12).
    pub sampling_frequency_index: u8,
    /// channel_configuration (1..=7).
    pub channel_configuration: u8,
    /// The sampling frequency in Hz, for frame durations.
    pub sampling_frequency: u32,
}

impl AdtsConfig {
    /// The 7-byte ADTS header (MPEG-4, no CRC, buffer fullness 0x7FF = VBR, one raw data
    /// block) for a raw frame of `raw_len` bytes.
    ///
    /// Spec: ISO/IEC 14496-3 §1.A.2.2.1, §1.A.3.2.1.
    pub fn header(&self, raw_len: usize) -> Result<[u8; ADTS_HEADER_SIZE], FlvError> {
        let frame_length = raw_len + ADTS_HEADER_SIZE;
        if frame_length > MAX_ADTS_FRAME_SIZE {
            return Err(FlvError::NotAdtsExpressible {
                field: "aac_frame_length",
                value: frame_length as u32,
                reason: "13-bit field",
            });
        }
        let len = frame_length as u16;
        let ch = self.channel_configuration;
        Ok([
            0xff,
            // syncword low 4 bits, ID 0 (MPEG-4), layer 00, protection_absent 1.
            0xf1,
            (self.profile_object_type << 6) | (self.sampling_frequency_index << 2) | (ch >> 2),
            ((ch & 0x03) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 0x07) as u8) << 5 | 0x1f,
            0xfc,
        ])
    }

    /// Duration of one frame (1024 samples) on the 90 kHz clock, rounded down.
    pub fn frame_duration(&self) -> Duration90k {
        Duration90k(
            u64::from(SAMPLES_PER_FRAME) * Duration90k::HZ / u64::from(self.sampling_frequency),
        )
    }
}

/// A big-endian bit reader over a byte slice that refuses to read past the end.
struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader { data, bit: 0 }
    }

    /// Reads `n` (at most 32) bits.
    fn read(&mut self, n: usize) -> Result<u32, FlvError> {
        debug_assert!(n <= 32);
        if self.bit + n > self.data.len() * 8 {
            return Err(FlvError::Truncated {
                structure: "AudioSpecificConfig",
                offset: self.bit / 8,
                needed: (self.bit + n).div_ceil(8) - self.bit / 8,
                available: self.data.len() - self.bit / 8,
            });
        }
        let mut value = 0u32;
        for _ in 0..n {
            let byte = self.data[self.bit / 8];
            value = (value << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_lc_48k_stereo() {
        // audioObjectType 2, samplingFrequencyIndex 3, channelConfiguration 2.
        let asc = AudioSpecificConfig::parse(&[0x11, 0x90]).unwrap();
        assert_eq!(
            asc,
            AudioSpecificConfig {
                audio_object_type: 2,
                core_object_type: 2,
                sampling_frequency_index: 3,
                sampling_frequency: 48000,
                channel_configuration: 2,
                frame_length_flag: false,
            }
        );
        assert_eq!(
            asc.audio_info(),
            AudioInfo {
                codec: "mp4a.40.2".into(),
                sample_rate: 48000,
                channels: 2
            }
        );
        assert_eq!(asc.adts().unwrap().frame_duration(), Duration90k(1920));
    }

    #[test]
    fn adts_header_golden() {
        let adts = AudioSpecificConfig::parse(&[0x11, 0x90])
            .unwrap()
            .adts()
            .unwrap();
        // Frame of 371 raw bytes: aac_frame_length 378 = 0x17a.
        assert_eq!(
            adts.header(371).unwrap(),
            [0xff, 0xf1, 0x4c, 0x80, 0x2f, 0x5f, 0xfc]
        );
        // 44.1 kHz mono LC, empty frame (length 7).
        let mono = AudioSpecificConfig::parse(&[0x12, 0x08])
            .unwrap()
            .adts()
            .unwrap();
        assert_eq!(
            mono.header(0).unwrap(),
            [0xff, 0xf1, 0x50, 0x40, 0x00, 0xff, 0xfc]
        );
        assert!(matches!(
            adts.header(MAX_ADTS_FRAME_SIZE - ADTS_HEADER_SIZE + 1),
            Err(FlvError::NotAdtsExpressible {
                field: "aac_frame_length",
                ..
            })
        ));
        assert!(adts.header(MAX_ADTS_FRAME_SIZE - ADTS_HEADER_SIZE).is_ok());
    }

    #[test]
    fn escaped_object_type_and_explicit_frequency() {
        // audioObjectType 31 + ext 10 = 42 (USAC), index 0xF with 0x00bb80 = 48000, ch 2.
        // Bits: 11111 001010 1111 000000001011101110000000 0010 ...
        let bytes = pack("11111 001010 1111 000000001011101110000000 0010 0000");
        let asc = AudioSpecificConfig::parse(&bytes).unwrap();
        assert_eq!(asc.audio_object_type, 42);
        assert_eq!(asc.sampling_frequency_index, 0x0f);
        assert_eq!(asc.sampling_frequency, 48000);
        assert_eq!(asc.channel_configuration, 2);
        assert!(matches!(
            asc.adts(),
            Err(FlvError::NotAdtsExpressible {
                field: "audioObjectType",
                value: 42,
                ..
            })
        ));
        // AAC-LC with an explicit frequency: valid AAC, but not for ADTS.
        let lc_explicit = pack("00010 1111 000000001011101110000000 0010 0");
        let asc = AudioSpecificConfig::parse(&lc_explicit).unwrap();
        assert_eq!((asc.core_object_type, asc.sampling_frequency), (2, 48000));
        assert!(matches!(
            asc.adts(),
            Err(FlvError::NotAdtsExpressible {
                field: "samplingFrequencyIndex",
                value: 15,
                ..
            })
        ));
    }

    #[test]
    fn explicit_he_aac_is_carried_as_lc_core() {
        // audioObjectType 5, core index 6 (24 kHz), channels 2, extension index 3 (48 kHz),
        // core type 2, frameLengthFlag 0.
        let he = pack("00101 0110 0010 0011 00010 0");
        let asc = AudioSpecificConfig::parse(&he).unwrap();
        assert_eq!(asc.audio_object_type, 5);
        assert_eq!(asc.core_object_type, 2);
        assert_eq!(asc.sampling_frequency, 24000);
        assert_eq!(asc.audio_info().codec, "mp4a.40.5");
        let adts = asc.adts().unwrap();
        assert_eq!(adts.profile_object_type, 1);
        assert_eq!(adts.sampling_frequency_index, 6);
        // HE-AAC v2 (29) likewise.
        let ps = pack("11101 0110 0001 0011 00010 0");
        let asc = AudioSpecificConfig::parse(&ps).unwrap();
        assert_eq!((asc.audio_object_type, asc.core_object_type), (29, 2));
        assert_eq!(asc.adts().unwrap().channel_configuration, 1);
    }

    #[test]
    fn configs_adts_cannot_carry_are_refused() {
        // Object type 23 (ER AAC LD).
        let ld = AudioSpecificConfig::parse(&pack("10111 0011 0010 0")).unwrap();
        assert!(matches!(
            ld.adts(),
            Err(FlvError::NotAdtsExpressible { value: 23, .. })
        ));
        // Channel configuration 0 (program_config_element).
        let pce = AudioSpecificConfig::parse(&pack("00010 0011 0000 0")).unwrap();
        assert!(matches!(
            pce.adts(),
            Err(FlvError::NotAdtsExpressible {
                field: "channelConfiguration",
                ..
            })
        ));
        // 960-sample frames.
        let short = AudioSpecificConfig::parse(&pack("00010 0011 0010 1")).unwrap();
        assert!(matches!(
            short.adts(),
            Err(FlvError::NotAdtsExpressible {
                field: "frameLengthFlag",
                ..
            })
        ));
        // Reserved frequency index 13.
        assert!(matches!(
            AudioSpecificConfig::parse(&pack("00010 1101 0010 0")),
            Err(FlvError::InvalidField {
                field: "samplingFrequencyIndex",
                value: 13,
                ..
            })
        ));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let full = pack("00101 0110 0010 0011 00010 0");
        assert!(AudioSpecificConfig::parse(&full).is_ok());
        for cut in 0..full.len() {
            assert!(matches!(
                AudioSpecificConfig::parse(&full[..cut]),
                Err(FlvError::Truncated { .. })
            ));
        }
    }

    /// Packs a string of '0'/'1' (spaces ignored) into bytes, zero-padded.
    fn pack(bits: &str) -> Vec<u8> {
        let bits: Vec<u8> = bits
            .bytes()
            .filter(|b| *b != b' ')
            .map(|b| b - b'0')
            .collect();
        bits.chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |acc, (i, b)| acc | (b << (7 - i)))
            })
            .collect()
    }
}
