//! Sample entries: the codec description each track's `stsd` carries, with its codec
//! configuration box. One enum variant per codec; the boxes around a sample entry only ask
//! it for its [`MediaKind`] (and a brand the file must list, if its codec binding names
//! one), so a codec is added here (a variant, its checks, its fields and configuration
//! box) without touching the init or fragment writers.
//!
//! Spec: ISO/IEC 14496-12 §8.5.2 (SampleEntry, VisualSampleEntry, AudioSampleEntry);
//! ISO/IEC 14496-15 §5.4.2.1 (avc1, avcC), §8.4.1 (hvc1, hvcC); ISO/IEC 14496-14:2003
//! §3.1.2, §5.6 (mp4a, esds); ISO/IEC 14496-1 §7.2.6 (ES_Descriptor and its
//! sub-descriptors); AV1 Codec ISO Media File Format Binding §2.1 to §2.3 (av01, av1C);
//! VP Codec ISO Media File Format Binding §2.2 (vp09, vpcC); Encapsulation of Opus in ISO
//! Base Media File Format §4.3.1, §4.3.2 (Opus, dOps); Encapsulation of FLAC in ISO Base
//! Media File Format §3.3.1, §3.3.2 (fLaC, dfLa); ETSI TS 102 366 Annex F.3 to F.6 (ac-3,
//! dac3, ec-3, dec3).

use bytes::{BufMut, Bytes, BytesMut};

use crate::mp4::TrackId;
use crate::mp4::boxes::{FourCc, OpenBox};
use crate::mp4::error::Mp4Error;

/// A track's codec and its configuration, as the sample entry in `stsd` describes it.
/// Configuration records are kept as received and written unchanged; only the fields a
/// player cannot do without are checked before anything is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SampleEntry {
    /// H.264: the AVCDecoderConfigurationRecord as received (the FLV AVC sequence header
    /// body), with the picture size from its SPS after cropping (what `avc1` and `tkhd`
    /// show, as FFmpeg writes them; `flv::avc::VideoInfo` gives it). Samples are AVCC
    /// access units (NAL units with the record's length prefixes), as FLV carries them.
    ///
    /// Spec: ISO/IEC 14496-15 §5.3.3.1 (record), §5.4.2.1 (avc1 with avcC).
    Avc {
        width: u16,
        height: u16,
        record: Bytes,
    },
    /// AAC: the AudioSpecificConfig bytes, with the output sample rate and channel count.
    /// Samples are raw AAC frames (no ADTS header).
    ///
    /// Spec: ISO/IEC 14496-3 §1.6.2.1 (AudioSpecificConfig); ISO/IEC 14496-14 (mp4a, esds).
    Aac {
        sample_rate: u32,
        channels: u16,
        config: Bytes,
    },
    /// HEVC: HEVCDecoderConfigurationRecord as received; `hvc1` + `hvcC` (ISO/IEC 14496-15
    /// §8.4.1). Samples are length-prefixed NAL units.
    ///
    /// `hvc1` (not `hev1`) is what Apple's HLS players require; it says the parameter
    /// sets a decoder needs are in the record (ISO/IEC 14496-15 §8.4.1), which holds for
    /// an encoder that sends its VPS, SPS and PPS in the sequence header.
    Hevc {
        width: u16,
        height: u16,
        record: Bytes,
    },
    /// AV1: the AV1CodecConfigurationRecord as received; `av01` + `av1C` (AV1-ISOBMFF
    /// §2.2, §2.3). Samples are temporal units of OBUs with size fields (§2.4). The width
    /// and height are the sequence header's max_frame_width_minus_1 + 1 and
    /// max_frame_height_minus_1 + 1 (§2.2.4).
    Av1 {
        width: u16,
        height: u16,
        record: Bytes,
    },
    /// VP9: VPCodecConfigurationRecord WITHOUT the FullBox header (profile, level,
    /// bitDepth/chroma/range byte, colour bytes, codecInitializationDataSize); `vp09` +
    /// `vpcC` written as a FullBox version 1, flags 0 (VP codec ISOBMFF binding §2.2).
    Vp9 {
        width: u16,
        height: u16,
        record: Bytes,
    },
    /// Opus: `Opus` AudioSampleEntry (channelcount = OutputChannelCount, samplesize 16,
    /// samplerate 48000<<16) + `dOps` whose content is `dops` (Opus-in-ISOBMFF §4.3.1,
    /// §4.3.2). `dops` is the OpusDecoderConfigurationRecord: big-endian, unlike the Ogg
    /// identification header it mirrors.
    Opus { channels: u16, dops: Bytes },
    /// FLAC: `fLaC` AudioSampleEntry + `dfLa` FullBox (version 0, flags 0) followed by
    /// `metadata` (the metadata blocks, STREAMINFO first, last-block flag set on the
    /// last) (FLAC-in-ISOBMFF §3.3). samplerate field: sample_rate<<16 when it fits in 16
    /// bits, else the largest power-of-two division of the rate that fits (48000 for 96
    /// and 192 kHz), or 65535 when none does, as §3.3.1 asks; the true rate is
    /// STREAMINFO's.
    Flac {
        sample_rate: u32,
        channels: u16,
        bits_per_sample: u16,
        metadata: Bytes,
    },
    /// AC-3 / E-AC-3: `ac-3` + `dac3` / `ec-3` + `dec3` with `specific` as the box content
    /// (ETSI TS 102 366 Annex F.3–F.6). Samples are whole syncframes.
    Ac3 {
        eac3: bool,
        sample_rate: u32,
        channels: u16,
        specific: Bytes,
    },
    /// MP3: `mp4a` with an esds whose DecoderConfigDescriptor objectTypeIndication is 0x6B
    /// (MPEG-1 audio) or 0x69 (MPEG-2 audio, lower sample rates), no DecoderSpecificInfo
    /// (ISO/IEC 14496-1 Table 5). Samples are whole MPEG audio frames, headers included.
    Mp3 { sample_rate: u32, channels: u16 },
}

/// What a sample entry tells the boxes around it: the handler, the media header and the
/// track header's size and volume follow from this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// A picture track of this size in pixels.
    Video { width: u16, height: u16 },
    /// A sound track.
    Audio,
}

/// Shortest AVCDecoderConfigurationRecord: the six header bytes (configurationVersion to
/// numOfSequenceParameterSets) and numOfPictureParameterSets, with no parameter sets.
///
/// Spec: ISO/IEC 14496-15 §5.3.3.1.1.
const MIN_AVC_RECORD_SIZE: usize = 7;

/// Shortest HEVCDecoderConfigurationRecord: 22 bytes of fields (configurationVersion to
/// lengthSizeMinusOne) and numOfArrays, with no arrays.
///
/// Spec: ISO/IEC 14496-15 §8.3.3.1.
const MIN_HEVC_RECORD_SIZE: usize = 23;

/// Shortest AV1CodecConfigurationRecord: the four fixed bytes, with no configOBUs.
///
/// Spec: AV1-ISOBMFF §2.3.3.
const MIN_AV1_RECORD_SIZE: usize = 4;

/// The first byte of every AV1CodecConfigurationRecord: marker 1, version 1.
///
/// Spec: AV1-ISOBMFF §2.3.4.
const AV1_MARKER_AND_VERSION: u8 = 0x81;

/// Shortest VPCodecConfigurationRecord (version 1): profile, level, the bitDepth /
/// chromaSubsampling / videoFullRangeFlag byte, three colour bytes and the 16-bit
/// codecInitializationDataSize.
///
/// Spec: VP Codec ISO Media File Format Binding §2.2.
const MIN_VP_RECORD_SIZE: usize = 8;

/// vpcC's FullBox version: 1, the version whose record has the colour fields as written.
///
/// Spec: VP Codec ISO Media File Format Binding §2.2.
const VPCC_VERSION: u8 = 1;

/// Shortest OpusDecoderConfigurationRecord: Version to ChannelMappingFamily, with no
/// channel mapping table (family 0).
///
/// Spec: Opus-in-ISOBMFF §4.3.2.
const MIN_OPUS_RECORD_SIZE: usize = 11;

/// The output rate of every Opus decoder, whatever the input rate was: the Opus sample
/// entry's samplerate.
///
/// Spec: Opus-in-ISOBMFF §4.3.1.
const OPUS_SAMPLE_RATE: u32 = 48_000;

/// STREAMINFO: FLAC metadata block type 0, always 34 bytes long, and the first block.
///
/// Spec: RFC 9639 §8.1, §8.2; FLAC-in-ISOBMFF §3.3.2.
const FLAC_STREAMINFO_SIZE: usize = 34;

/// A FLAC metadata block header: last-metadata-block flag and type (one byte), then the
/// 24-bit length of the block data.
///
/// Spec: RFC 9639 §8.1.
const FLAC_BLOCK_HEADER_SIZE: usize = 4;

/// AC3SpecificBox content: fscod, bsid, bsmod, acmod, lfeon, bit_rate_code and reserved
/// bits, 24 in all.
///
/// Spec: ETSI TS 102 366 F.4.
const AC3_SPECIFIC_SIZE: usize = 3;

/// Shortest EC3SpecificBox content: data_rate and num_ind_sub (2 bytes) and one
/// independent substream's 3 bytes.
///
/// Spec: ETSI TS 102 366 F.6.
const MIN_EC3_SPECIFIC_SIZE: usize = 5;

/// The sampling frequencies of MPEG audio: MPEG-1 (ISO/IEC 11172-3), MPEG-2's lower
/// sampling frequencies (ISO/IEC 13818-3) and the MPEG-2.5 extension below them.
const MP3_SAMPLE_RATES: [u32; 9] = [
    48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
];

/// Lowest MPEG-1 audio sampling frequency: a rate below it is MPEG-2 (or 2.5) audio.
///
/// Spec: ISO/IEC 11172-3 §2.4.2.3; ISO/IEC 13818-3 §2.4.2.3.
const MPEG1_LOWEST_RATE: u32 = 32_000;

/// Shortest AudioSpecificConfig: audioObjectType (5 bits), samplingFrequencyIndex (4) and
/// channelConfiguration (4) take 13 bits.
///
/// Spec: ISO/IEC 14496-3 §1.6.2.1.
const MIN_AUDIO_SPECIFIC_CONFIG_SIZE: usize = 2;

/// Largest body an MPEG-4 descriptor can declare: sizeOfInstance is at most four bytes of
/// seven bits.
///
/// Spec: ISO/IEC 14496-1 §8.3.3.
pub const MAX_DESCRIPTOR_SIZE: usize = (1 << 28) - 1;

/// Descriptor tags of the elementary stream descriptor and what it contains.
///
/// Spec: ISO/IEC 14496-1 §7.2.2.1, Table 1.
mod tag {
    pub const ES_DESCR: u8 = 0x03;
    pub const DECODER_CONFIG_DESCR: u8 = 0x04;
    pub const DEC_SPECIFIC_INFO: u8 = 0x05;
    pub const SL_CONFIG_DESCR: u8 = 0x06;
}

/// objectTypeIndication values of the DecoderConfigDescriptor.
///
/// Spec: ISO/IEC 14496-1 §7.2.6.6.2, Table 5.
mod object_type {
    /// Audio ISO/IEC 14496-3 (AAC and its extensions, configured by the
    /// AudioSpecificConfig).
    pub const AUDIO_14496_3: u8 = 0x40;
    /// Audio ISO/IEC 13818-3: MPEG-2 audio at the lower sampling frequencies.
    pub const AUDIO_13818_3: u8 = 0x69;
    /// Audio ISO/IEC 11172-3: MPEG-1 audio.
    pub const AUDIO_11172_3: u8 = 0x6B;
}

/// streamType 0x05: AudioStream.
///
/// Spec: ISO/IEC 14496-1 §7.2.6.6.2, Table 6.
const STREAM_TYPE_AUDIO: u8 = 0x05;

/// SLConfigDescriptor predefined 2: "reserved for use in MP4 files", the only value an MP4
/// file stores.
///
/// Spec: ISO/IEC 14496-1 §7.3.2.3.2, Table 12; ISO/IEC 14496-14:2003 §3.1.2.
const SL_PREDEFINED_MP4: u8 = 0x02;

/// 72 dpi as 16.16 fixed point: horizresolution and vertresolution's fixed value.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2.
const RESOLUTION_72_DPI: u32 = 0x0048_0000;

/// VisualSampleEntry depth 0x0018: colour images with no alpha.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2.
const DEPTH_COLOUR_NO_ALPHA: u16 = 0x0018;

/// The compressorname AV1-ISOBMFF recommends for `av01`: a length byte (10), then the
/// name; the writer pads it to 32 bytes. Other entries leave compressorname empty.
///
/// Spec: AV1-ISOBMFF §2.2.4.
const AV1_COMPRESSOR_NAME: &[u8] = b"\x0aAOM Coding";

/// AudioSampleEntry samplesize: 16, the fixed value for every codec here but FLAC, which
/// gives its bits per sample.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2.
const SAMPLE_SIZE_16: u16 = 16;

/// The data_reference_index every sample entry points at: the one self-contained `url `
/// entry of `dref`.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2, §8.7.2.
const DATA_REFERENCE_INDEX: u16 = 1;

/// The ftyp brand a file carrying AV1 must list among its compatible brands.
///
/// Spec: AV1-ISOBMFF §2.1.
pub const AV1_BRAND: FourCc = FourCc::new(b"av01");

/// The fields of a sample entry after data_reference_index: a VisualSampleEntry's or an
/// AudioSampleEntry's (version 0).
enum EntryFields {
    Visual {
        width: u16,
        height: u16,
        compressor_name: &'static [u8],
    },
    Audio {
        channels: u16,
        sample_size: u16,
        /// samplerate as 16.16 fixed point.
        rate_16_16: u32,
    },
}

/// The codec configuration box a sample entry ends with.
enum ConfigBox<'a> {
    /// A box whose content is the bytes given.
    Plain(FourCc, &'a [u8]),
    /// A FullBox of this version (flags 0), then the bytes given.
    Full(FourCc, u8, &'a [u8]),
    /// An `esds` with this objectTypeIndication and DecoderSpecificInfo, if any.
    Esds(u8, Option<&'a [u8]>),
}

impl SampleEntry {
    /// The sample entry's box type, also the codec's four-character code.
    pub fn fourcc(&self) -> FourCc {
        FourCc::new(match self {
            SampleEntry::Avc { .. } => b"avc1",
            SampleEntry::Aac { .. } | SampleEntry::Mp3 { .. } => b"mp4a",
            SampleEntry::Hevc { .. } => b"hvc1",
            SampleEntry::Av1 { .. } => b"av01",
            SampleEntry::Vp9 { .. } => b"vp09",
            SampleEntry::Opus { .. } => b"Opus",
            SampleEntry::Flac { .. } => b"fLaC",
            SampleEntry::Ac3 { eac3: false, .. } => b"ac-3",
            SampleEntry::Ac3 { eac3: true, .. } => b"ec-3",
        })
    }

    /// Whether the track is video or audio, and the picture size of video.
    pub fn kind(&self) -> MediaKind {
        match *self {
            SampleEntry::Avc { width, height, .. }
            | SampleEntry::Hevc { width, height, .. }
            | SampleEntry::Av1 { width, height, .. }
            | SampleEntry::Vp9 { width, height, .. } => MediaKind::Video { width, height },
            SampleEntry::Aac { .. }
            | SampleEntry::Opus { .. }
            | SampleEntry::Flac { .. }
            | SampleEntry::Ac3 { .. }
            | SampleEntry::Mp3 { .. } => MediaKind::Audio,
        }
    }

    /// A brand the codec's binding requires among ftyp's compatible brands, if any.
    ///
    /// Spec: AV1-ISOBMFF §2.1 (`av01`). The Opus binding defines `Opus` (§4.1) for files
    /// that also carry its `roll` sample groups, which this writer does not write.
    pub fn required_brand(&self) -> Option<FourCc> {
        match self {
            SampleEntry::Av1 { .. } => Some(AV1_BRAND),
            _ => None,
        }
    }

    /// Checks the fields a player cannot do without, before anything is written.
    pub(crate) fn validate(&self, track: TrackId) -> Result<(), Mp4Error> {
        self.check().map_err(|reason| Mp4Error::InvalidSampleEntry {
            track,
            entry: self.fourcc(),
            reason,
        })
    }

    fn check(&self) -> Result<(), &'static str> {
        match self {
            SampleEntry::Avc {
                width,
                height,
                record,
            } => {
                check_picture(*width, *height)?;
                if record.len() < MIN_AVC_RECORD_SIZE {
                    return Err("AVCDecoderConfigurationRecord shorter than 7 bytes");
                }
                // Spec: ISO/IEC 14496-15 §5.3.3.1.2: a reader must not decode a record of
                // another configurationVersion.
                if record[0] != 1 {
                    return Err("configurationVersion is not 1");
                }
            }
            SampleEntry::Hevc {
                width,
                height,
                record,
            } => {
                check_picture(*width, *height)?;
                if record.len() < MIN_HEVC_RECORD_SIZE {
                    return Err("HEVCDecoderConfigurationRecord shorter than 23 bytes");
                }
                // Spec: ISO/IEC 14496-15 §8.3.3.1, as for AVC.
                if record[0] != 1 {
                    return Err("configurationVersion is not 1");
                }
            }
            SampleEntry::Av1 {
                width,
                height,
                record,
            } => {
                check_picture(*width, *height)?;
                if record.len() < MIN_AV1_RECORD_SIZE {
                    return Err("AV1CodecConfigurationRecord shorter than 4 bytes");
                }
                if record[0] != AV1_MARKER_AND_VERSION {
                    return Err("marker or version is not 1");
                }
            }
            SampleEntry::Vp9 {
                width,
                height,
                record,
            } => {
                check_picture(*width, *height)?;
                if record.len() < MIN_VP_RECORD_SIZE {
                    return Err("VPCodecConfigurationRecord shorter than 8 bytes");
                }
                let init_size = usize::from(u16::from_be_bytes([record[6], record[7]]));
                if record.len() != MIN_VP_RECORD_SIZE + init_size {
                    return Err("codecInitializationDataSize does not match the record");
                }
            }
            SampleEntry::Aac {
                sample_rate,
                channels,
                config,
            } => {
                check_audio(*sample_rate, *channels)?;
                if config.len() < MIN_AUDIO_SPECIFIC_CONFIG_SIZE {
                    return Err("AudioSpecificConfig shorter than 2 bytes");
                }
            }
            SampleEntry::Opus { channels, dops } => {
                check_audio(OPUS_SAMPLE_RATE, *channels)?;
                if dops.len() < MIN_OPUS_RECORD_SIZE {
                    return Err("OpusDecoderConfigurationRecord shorter than 11 bytes");
                }
                // Spec: Opus-in-ISOBMFF §4.3.2: a reader does not read past another
                // Version.
                if dops[0] != 0 {
                    return Err("Version is not 0");
                }
                // Spec: Opus-in-ISOBMFF §4.3.1: channelcount equals OutputChannelCount.
                if *channels != u16::from(dops[1]) {
                    return Err("channel count is not OutputChannelCount");
                }
                // StreamCount, CoupledCount and a ChannelMapping byte per output channel.
                let family = dops[10];
                if family != 0 && dops.len() < MIN_OPUS_RECORD_SIZE + 2 + usize::from(dops[1]) {
                    return Err("ChannelMappingTable cut short");
                }
            }
            SampleEntry::Flac {
                sample_rate,
                channels,
                bits_per_sample,
                metadata,
            } => {
                check_audio(*sample_rate, *channels)?;
                if *bits_per_sample == 0 {
                    return Err("bits per sample 0");
                }
                check_flac_metadata(metadata)?;
            }
            SampleEntry::Ac3 {
                eac3,
                sample_rate,
                channels,
                specific,
            } => {
                check_audio(*sample_rate, *channels)?;
                if !eac3 && specific.len() != AC3_SPECIFIC_SIZE {
                    return Err("AC3SpecificBox content is not 3 bytes");
                }
                if *eac3 && specific.len() < MIN_EC3_SPECIFIC_SIZE {
                    return Err("EC3SpecificBox content shorter than 5 bytes");
                }
            }
            SampleEntry::Mp3 {
                sample_rate,
                channels,
            } => {
                check_audio(*sample_rate, *channels)?;
                if !MP3_SAMPLE_RATES.contains(sample_rate) {
                    return Err("sample rate is not an MPEG audio rate");
                }
            }
        }
        Ok(())
    }

    /// The entry's fields and its configuration box.
    fn layout(&self) -> (EntryFields, ConfigBox<'_>) {
        let visual = |width, height| EntryFields::Visual {
            width,
            height,
            compressor_name: b"",
        };
        let audio = |channels, rate| EntryFields::Audio {
            channels,
            sample_size: SAMPLE_SIZE_16,
            rate_16_16: rate_16_16(rate),
        };
        match self {
            SampleEntry::Avc {
                width,
                height,
                record,
            } => (
                visual(*width, *height),
                ConfigBox::Plain(FourCc::new(b"avcC"), record),
            ),
            SampleEntry::Hevc {
                width,
                height,
                record,
            } => (
                visual(*width, *height),
                ConfigBox::Plain(FourCc::new(b"hvcC"), record),
            ),
            SampleEntry::Av1 {
                width,
                height,
                record,
            } => (
                EntryFields::Visual {
                    width: *width,
                    height: *height,
                    compressor_name: AV1_COMPRESSOR_NAME,
                },
                ConfigBox::Plain(FourCc::new(b"av1C"), record),
            ),
            SampleEntry::Vp9 {
                width,
                height,
                record,
            } => (
                visual(*width, *height),
                ConfigBox::Full(FourCc::new(b"vpcC"), VPCC_VERSION, record),
            ),
            SampleEntry::Aac {
                sample_rate,
                channels,
                config,
            } => (
                audio(*channels, *sample_rate),
                ConfigBox::Esds(object_type::AUDIO_14496_3, Some(config)),
            ),
            SampleEntry::Opus { channels, dops } => (
                audio(*channels, OPUS_SAMPLE_RATE),
                ConfigBox::Plain(FourCc::new(b"dOps"), dops),
            ),
            SampleEntry::Flac {
                sample_rate,
                channels,
                bits_per_sample,
                metadata,
            } => (
                EntryFields::Audio {
                    channels: *channels,
                    sample_size: *bits_per_sample,
                    rate_16_16: flac_rate_16_16(*sample_rate),
                },
                ConfigBox::Full(FourCc::new(b"dfLa"), 0, metadata),
            ),
            SampleEntry::Ac3 {
                eac3,
                sample_rate,
                channels,
                specific,
            } => (
                audio(*channels, *sample_rate),
                ConfigBox::Plain(FourCc::new(if *eac3 { b"dec3" } else { b"dac3" }), specific),
            ),
            SampleEntry::Mp3 {
                sample_rate,
                channels,
            } => {
                let object_type = if *sample_rate >= MPEG1_LOWEST_RATE {
                    object_type::AUDIO_11172_3
                } else {
                    object_type::AUDIO_13818_3
                };
                (
                    audio(*channels, *sample_rate),
                    ConfigBox::Esds(object_type, None),
                )
            }
        }
    }

    /// Writes the sample entry box with its configuration box inside. No `btrt` (the
    /// bitrate is not known when the init segment is written) and no `pasp` (square
    /// pixels are the default; the codec's own headers carry any other aspect ratio).
    pub(crate) fn write(&self, out: &mut BytesMut) -> Result<(), Mp4Error> {
        let (fields, config) = self.layout();
        let entry = OpenBox::begin(out, self.fourcc());
        put_sample_entry_header(out);
        match fields {
            EntryFields::Visual {
                width,
                height,
                compressor_name,
            } => put_visual_fields(out, width, height, compressor_name),
            EntryFields::Audio {
                channels,
                sample_size,
                rate_16_16,
            } => put_audio_fields(out, channels, sample_size, rate_16_16),
        }
        match config {
            ConfigBox::Plain(kind, content) => {
                let config = OpenBox::begin(out, kind);
                out.put_slice(content);
                config.end(out)?;
            }
            ConfigBox::Full(kind, version, content) => {
                let config = OpenBox::begin_full(out, kind, version, 0);
                out.put_slice(content);
                config.end(out)?;
            }
            ConfigBox::Esds(object_type, specific_info) => {
                write_esds(out, object_type, specific_info)?;
            }
        }
        entry.end(out)?;
        Ok(())
    }
}

fn check_picture(width: u16, height: u16) -> Result<(), &'static str> {
    if width == 0 || height == 0 {
        return Err("picture size 0");
    }
    Ok(())
}

fn check_audio(sample_rate: u32, channels: u16) -> Result<(), &'static str> {
    if sample_rate == 0 {
        return Err("sample rate 0");
    }
    if channels == 0 {
        return Err("channel count 0");
    }
    Ok(())
}

/// Checks dfLa's metadata blocks: a 34-byte STREAMINFO first, every block within the
/// bytes, and the last-metadata-block flag on the last block only.
///
/// Spec: FLAC-in-ISOBMFF §3.3.2; RFC 9639 §8.1.
fn check_flac_metadata(metadata: &[u8]) -> Result<(), &'static str> {
    let block_length = |header: &[u8]| {
        usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3])
    };
    if metadata.len() < FLAC_BLOCK_HEADER_SIZE + FLAC_STREAMINFO_SIZE
        || metadata[0] & 0x7f != 0
        || block_length(metadata) != FLAC_STREAMINFO_SIZE
    {
        return Err("metadata does not start with a 34-byte STREAMINFO block");
    }
    let mut rest = metadata;
    loop {
        if rest.len() < FLAC_BLOCK_HEADER_SIZE {
            return Err("metadata block header cut short");
        }
        let last = rest[0] & 0x80 != 0;
        let Some(after) = rest.get(FLAC_BLOCK_HEADER_SIZE + block_length(rest)..) else {
            return Err("metadata block longer than the metadata");
        };
        match (last, after.is_empty()) {
            (true, true) => return Ok(()),
            (false, false) => rest = after,
            (true, false) => return Err("metadata blocks after the last-metadata-block flag"),
            (false, true) => {
                return Err("last metadata block without the last-metadata-block flag");
            }
        }
    }
}

/// samplerate as 16.16 fixed point, which holds rates up to 65535 Hz; a higher rate is
/// written as 0 there, and the decoder takes the rate from its configuration (the
/// AudioSpecificConfig), as it does in any case (ISO/IEC 14496-14 leaves the decoder
/// configuration authoritative). AC-3 and MPEG audio rates always fit.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 AudioSampleEntry.
fn rate_16_16(sample_rate: u32) -> u32 {
    if sample_rate <= u32::from(u16::MAX) {
        sample_rate << 16
    } else {
        0
    }
}

/// FLAC's samplerate as 16.16: the rate when it fits, else "the greatest expressible
/// regular division of that rate" (halved until it fits: 48000 for 96 and 192 kHz, 44100
/// for 88.2 kHz), or 65535 for a rate with none.
///
/// Spec: FLAC-in-ISOBMFF §3.3.1 (samplerate).
fn flac_rate_16_16(sample_rate: u32) -> u32 {
    let mut rate = sample_rate;
    while rate > u32::from(u16::MAX) && rate.is_multiple_of(2) {
        rate /= 2;
    }
    rate.min(u32::from(u16::MAX)) << 16
}

/// The fields every sample entry starts with: six reserved bytes and data_reference_index.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 `aligned(8) abstract class SampleEntry`.
fn put_sample_entry_header(out: &mut BytesMut) {
    out.put_bytes(0, 6);
    out.put_u16(DATA_REFERENCE_INDEX);
}

/// VisualSampleEntry's fields: the picture size, 72 dpi, one frame per sample, the
/// compressorname (a length byte and the name, zero-padded to 32 bytes; `name` is at
/// most 32 bytes, length byte included), colour with no alpha.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 VisualSampleEntry.
fn put_visual_fields(out: &mut BytesMut, width: u16, height: u16, compressor_name: &[u8]) {
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_bytes(0, 12); // pre_defined[3]
    out.put_u16(width);
    out.put_u16(height);
    out.put_u32(RESOLUTION_72_DPI); // horizresolution
    out.put_u32(RESOLUTION_72_DPI); // vertresolution
    out.put_u32(0); // reserved
    out.put_u16(1); // frame_count: one frame per sample
    out.put_slice(compressor_name);
    out.put_bytes(0, 32 - compressor_name.len());
    out.put_u16(DEPTH_COLOUR_NO_ALPHA);
    out.put_i16(-1); // pre_defined
}

/// AudioSampleEntry's fields (version 0).
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 AudioSampleEntry.
fn put_audio_fields(out: &mut BytesMut, channels: u16, sample_size: u16, rate_16_16: u32) {
    out.put_bytes(0, 8); // reserved[2]
    out.put_u16(channels); // channelcount
    out.put_u16(sample_size); // samplesize
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_u32(rate_16_16);
}

/// `esds`: an ES_Descriptor with ES_ID 0 (as stored in a file), no dependencies, URL or
/// OCR stream; a DecoderConfigDescriptor for an audio stream of `object_type` whose
/// DecoderSpecificInfo, when there is one, is `specific_info` (AAC's AudioSpecificConfig;
/// MPEG-1/2 audio has none); and the SLConfigDescriptor MP4 files use. bufferSizeDB,
/// maxBitrate and avgBitrate are 0: a live ingest does not know them when the init
/// segment is written, and 0 is what the fields hold for unknown or variable rates.
/// Descriptor sizes use the shortest expandable encoding.
///
/// Spec: ISO/IEC 14496-14:2003 §3.1.2, §5.6; ISO/IEC 14496-1 §7.2.6.5 (ES_Descriptor),
/// §7.2.6.6 (DecoderConfigDescriptor), §7.2.6.7 (DecoderSpecificInfo), §7.3.2.3
/// (SLConfigDescriptor), §8.3.3 (expandable sizeOfInstance).
fn write_esds(
    out: &mut BytesMut,
    object_type: u8,
    specific_info: Option<&[u8]>,
) -> Result<(), Mp4Error> {
    // Body sizes, innermost first: each descriptor's size counts its body only.
    let dsi = match specific_info {
        Some(info) => descriptor_size(tag::DEC_SPECIFIC_INFO, info.len())?,
        None => 0,
    };
    let sl_body = 1;
    let dcd_body = 13 + dsi;
    let es_body = 3
        + descriptor_size(tag::DECODER_CONFIG_DESCR, dcd_body)?
        + descriptor_size(tag::SL_CONFIG_DESCR, sl_body)?;
    descriptor_size(tag::ES_DESCR, es_body)?;

    let esds = OpenBox::begin_full(out, FourCc::new(b"esds"), 0, 0);
    put_descriptor_header(out, tag::ES_DESCR, es_body);
    out.put_u16(0); // ES_ID: 0 as stored
    out.put_u8(0); // streamDependenceFlag, URL_Flag, OCRstreamFlag 0; streamPriority 0
    put_descriptor_header(out, tag::DECODER_CONFIG_DESCR, dcd_body);
    out.put_u8(object_type);
    // streamType (6 bits), upStream 0, reserved 1.
    out.put_u8(STREAM_TYPE_AUDIO << 2 | 0b01);
    out.put_uint(0, 3); // bufferSizeDB
    out.put_u32(0); // maxBitrate
    out.put_u32(0); // avgBitrate
    if let Some(info) = specific_info {
        put_descriptor_header(out, tag::DEC_SPECIFIC_INFO, info.len());
        out.put_slice(info);
    }
    put_descriptor_header(out, tag::SL_CONFIG_DESCR, sl_body);
    out.put_u8(SL_PREDEFINED_MP4);
    esds.end(out)?;
    Ok(())
}

/// Bytes the expandable sizeOfInstance takes for a body of `body` bytes: 7 bits a byte.
fn size_field_len(body: usize) -> usize {
    match body {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        _ => 4,
    }
}

/// A descriptor's whole size (tag, size field, body), or an error past the size field's
/// reach.
fn descriptor_size(tag: u8, body: usize) -> Result<usize, Mp4Error> {
    if body > MAX_DESCRIPTOR_SIZE {
        return Err(Mp4Error::DescriptorTooLarge {
            tag,
            size: body,
            limit: MAX_DESCRIPTOR_SIZE,
        });
    }
    Ok(1 + size_field_len(body) + body)
}

/// The descriptor tag and its sizeOfInstance: 7 bits a byte, most significant first, the
/// top bit set on every byte but the last. `body` is at most [`MAX_DESCRIPTOR_SIZE`]
/// (checked by [`descriptor_size`]).
///
/// Spec: ISO/IEC 14496-1 §8.3.3.
fn put_descriptor_header(out: &mut BytesMut, tag: u8, body: usize) {
    out.put_u8(tag);
    let len = size_field_len(body);
    for i in (0..len).rev() {
        let seven = ((body >> (7 * i)) & 0x7f) as u8;
        out.put_u8(if i == 0 { seven } else { seven | 0x80 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.split_whitespace().collect::<String>()).unwrap()
    }

    fn track() -> TrackId {
        TrackId::new(1).unwrap()
    }

    /// A Baseline 3.0 record with one 4-byte SPS and one 2-byte PPS (shortened parameter
    /// sets: the writer copies the record, it does not decode it).
    const AVC_RECORD: &str = "01 42 c0 1e ff e1 0004 6742c01e 01 0002 68ce";

    #[test]
    fn avc1_golden() {
        let entry = SampleEntry::Avc {
            width: 640,
            height: 360,
            record: Bytes::from(unhex(AVC_RECORD)),
        };
        let mut out = BytesMut::new();
        entry.write(&mut out).unwrap();
        let expected = unhex(concat!(
            "0000006f 61766331",                  // size 86 + 25 = 111, 'avc1'
            "000000000000 0001",                  // reserved[6], data_reference_index 1
            "0000 0000 000000000000000000000000", // pre_defined, reserved, pre_defined[3]
            "0280 0168",                          // width 640, height 360
            "00480000 00480000",                  // 72 dpi both ways
            "00000000 0001",                      // reserved, frame_count 1
            "0000000000000000000000000000000000000000000000000000000000000000", // compressorname
            "0018 ffff",                          // depth 24, pre_defined -1
            "00000019 61766343",                  // size 8 + 17 = 25, 'avcC'
            "01 42 c0 1e ff e1 0004 6742c01e 01 0002 68ce", // the record as given
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn mp4a_with_esds_golden() {
        // AAC-LC, 48 kHz, stereo: audioObjectType 2, samplingFrequencyIndex 3,
        // channelConfiguration 2 = 00010 0011 0010 000 = 0x11 0x90.
        let entry = SampleEntry::Aac {
            sample_rate: 48_000,
            channels: 2,
            config: Bytes::from_static(&[0x11, 0x90]),
        };
        let mut out = BytesMut::new();
        entry.write(&mut out).unwrap();
        let expected = unhex(concat!(
            "0000004b 6d703461",          // size 36 + 39 = 75, 'mp4a'
            "000000000000 0001",          // reserved[6], data_reference_index 1
            "0000000000000000",           // reserved[2]
            "0002 0010 0000 0000",        // channelcount 2, samplesize 16, pre_defined, reserved
            "bb800000",                   // samplerate 48000 << 16
            "00000027 65736473 00000000", // size 39, 'esds', version 0, flags 0
            "03 19",                      // ES_DescrTag, 25 bytes
            "0000 00",                    // ES_ID 0, no flags, streamPriority 0
            "04 11",                      // DecoderConfigDescrTag, 17 bytes
            "40 15", // objectTypeIndication 0x40; streamType 5, upStream 0, reserved 1
            "000000 00000000 00000000", // bufferSizeDB, maxBitrate, avgBitrate unknown
            "05 02 1190", // DecSpecificInfoTag, 2 bytes: the AudioSpecificConfig
            "06 01 02", // SLConfigDescrTag, 1 byte: predefined 2 (MP4 files)
        ));
        assert_eq!(hex::encode(&out), hex::encode(expected));
    }

    #[test]
    fn sample_rates_past_16_bits_leave_samplerate_zero() {
        let entry = SampleEntry::Aac {
            sample_rate: 96_000,
            channels: 2,
            config: Bytes::from_static(&[0x10, 0x10]),
        };
        let mut out = BytesMut::new();
        entry.write(&mut out).unwrap();
        assert_eq!(out[32..36], [0, 0, 0, 0]);
    }

    /// VisualSampleEntry fields after the box header for 640x360 with an empty
    /// compressorname (the layout of `avc1_golden`).
    const VISUAL_640X360: &str = concat!(
        "000000000000 0001 0000 0000 000000000000000000000000 0280 0168",
        "00480000 00480000 00000000 0001",
        "0000000000000000000000000000000000000000000000000000000000000000 0018 ffff",
    );

    /// AudioSampleEntry fields after the box header: data_reference_index 1, then
    /// `channels_size_rate` (channelcount, samplesize, pre_defined, reserved, samplerate).
    fn audio_fields(channels_size_rate: &str) -> String {
        format!("000000000000 0001 0000000000000000 {channels_size_rate}")
    }

    fn written(entry: &SampleEntry) -> String {
        let mut out = BytesMut::new();
        entry.write(&mut out).unwrap();
        hex::encode(&out)
    }

    fn hexed(parts: &[&str]) -> String {
        hex::encode(unhex(&parts.concat()))
    }

    /// A 23-byte HEVCDecoderConfigurationRecord with no parameter set arrays (Main
    /// profile, level 3.1, 4:2:0, 8 bits, 4-byte lengths): the writer copies it.
    const HEVC_RECORD: &str = "01 01 60000000 900000000000 5d f000 fc fd f8 f8 0000 0f 00";

    #[test]
    fn hvc1_golden() {
        let entry = SampleEntry::Hevc {
            width: 640,
            height: 360,
            record: Bytes::from(unhex(HEVC_RECORD)),
        };
        let expected = hexed(&[
            "00000075 68766331", // size 86 + 31 = 117, 'hvc1'
            VISUAL_640X360,
            "0000001f 68766343", // size 8 + 23 = 31, 'hvcC'
            HEVC_RECORD,
        ]);
        assert_eq!(written(&entry), expected);
    }

    #[test]
    fn av01_golden() {
        let entry = SampleEntry::Av1 {
            width: 640,
            height: 360,
            // Main profile, level 3.0, 8-bit 4:2:0; no configOBUs.
            record: Bytes::from(unhex("81 04 0c 00")),
        };
        let expected = hexed(&[
            "00000062 61763031",                  // size 86 + 12 = 98, 'av01'
            "000000000000 0001",                  // reserved[6], data_reference_index 1
            "0000 0000 000000000000000000000000", // pre_defined, reserved, pre_defined[3]
            "0280 0168 00480000 00480000 00000000 0001",
            "0a 414f4d20436f64696e67", // compressorname: length 10, "AOM Coding"
            "000000000000000000000000000000000000000000", // zero padding to 32 bytes
            "0018 ffff",
            "0000000c 61763143 81040c00", // size 12, 'av1C', the record
        ]);
        assert_eq!(written(&entry), expected);
        assert_eq!(entry.required_brand(), Some(AV1_BRAND));
    }

    #[test]
    fn vp09_golden() {
        // Profile 0, level 3.0, 8-bit 4:2:0 colocated, limited range, BT.709 colour, no
        // codec initialization data.
        let record = "00 1e 82 01 01 01 0000";
        let entry = SampleEntry::Vp9 {
            width: 640,
            height: 360,
            record: Bytes::from(unhex(record)),
        };
        let expected = hexed(&[
            "0000006a 76703039", // size 86 + 20 = 106, 'vp09'
            VISUAL_640X360,
            "00000014 76706343 01000000", // size 20, 'vpcC', version 1, flags 0
            record,
        ]);
        assert_eq!(written(&entry), expected);
    }

    #[test]
    fn opus_golden() {
        // Version 0, 2 channels, pre-skip 312, input rate 48000, gain 0, family 0.
        let dops = "00 02 0138 0000bb80 0000 00";
        let entry = SampleEntry::Opus {
            channels: 2,
            dops: Bytes::from(unhex(dops)),
        };
        let expected = hexed(&[
            "00000037 4f707573",                           // size 36 + 19 = 55, 'Opus'
            &audio_fields("0002 0010 0000 0000 bb800000"), // 2 channels, 16 bits, 48000 Hz
            "00000013 644f7073",                           // size 19, 'dOps'
            dops,
        ]);
        assert_eq!(written(&entry), expected);
    }

    /// STREAMINFO of a mono 16-bit 44.1 kHz stream with 1024-sample blocks, as the last
    /// (and only) metadata block: flag and type 0x80, length 34.
    const FLAC_METADATA: &str = concat!(
        "80 000022",
        "0400 0400 00000b 00000c 0ac440f0 0000ac44",
        "e9ded829730eccd2d0273d7cc06be58c",
    );

    #[test]
    fn flac_golden() {
        let entry = SampleEntry::Flac {
            sample_rate: 44_100,
            channels: 1,
            bits_per_sample: 16,
            metadata: Bytes::from(unhex(FLAC_METADATA)),
        };
        let expected = hexed(&[
            "00000056 664c6143",                           // size 36 + 50 = 86, 'fLaC'
            &audio_fields("0001 0010 0000 0000 ac440000"), // 1 channel, 16 bits, 44100 Hz
            "00000032 64664c61 00000000",                  // size 50, 'dfLa', version 0, flags 0
            FLAC_METADATA,
        ]);
        assert_eq!(written(&entry), expected);
    }

    #[test]
    fn flac_rates_past_16_bits_take_a_regular_division() {
        for (rate, field) in [
            (65_535, 65_535),
            (88_200, 44_100),
            (96_000, 48_000),
            (176_400, 44_100),
            (192_000, 48_000),
            (705_600, 44_100),
            (100_001, 65_535),
            (262_142, 65_535),
        ] {
            assert_eq!(flac_rate_16_16(rate), field << 16, "{rate} Hz");
        }
    }

    #[test]
    fn ac3_and_eac3_golden() {
        let ac3 = SampleEntry::Ac3 {
            eac3: false,
            sample_rate: 48_000,
            channels: 2,
            // fscod 48 kHz, bsid 8, bsmod 0, acmod 2/0, no LFE, 32 kbit/s.
            specific: Bytes::from(unhex("10 10 00")),
        };
        let expected = hexed(&[
            "0000002f 61632d33", // size 36 + 11 = 47, 'ac-3'
            &audio_fields("0002 0010 0000 0000 bb800000"),
            "0000000b 64616333 101000", // size 11, 'dac3'
        ]);
        assert_eq!(written(&ac3), expected);

        let eac3 = SampleEntry::Ac3 {
            eac3: true,
            sample_rate: 48_000,
            channels: 6,
            // 32 kbit/s, one independent substream: 48 kHz, bsid 16, 3/2 with LFE.
            specific: Bytes::from(unhex("0100 200f00")),
        };
        let expected = hexed(&[
            "00000031 65632d33", // size 36 + 13 = 49, 'ec-3'
            &audio_fields("0006 0010 0000 0000 bb800000"),
            "0000000d 64656333 0100200f00", // size 13, 'dec3'
        ]);
        assert_eq!(written(&eac3), expected);
    }

    #[test]
    fn mp3_golden() {
        let esds = |object_type: &str| {
            [
                "00000023 65736473 00000000", // size 35, 'esds', version 0, flags 0
                "03 15 0000 00",              // ES_DescrTag, 21 bytes; ES_ID 0, no flags
                "04 0d",                      // DecoderConfigDescrTag, 13 bytes: no DSI
                object_type,
                "15 000000 00000000 00000000", // audio stream; sizes and rates unknown
                "06 01 02",                    // SLConfigDescrTag: predefined 2
            ]
            .concat()
        };
        let mpeg1 = SampleEntry::Mp3 {
            sample_rate: 44_100,
            channels: 2,
        };
        let expected = hexed(&[
            "00000047 6d703461", // size 36 + 35 = 71, 'mp4a'
            &audio_fields("0002 0010 0000 0000 ac440000"),
            &esds("6b"), // objectTypeIndication 0x6B: MPEG-1 audio
        ]);
        assert_eq!(written(&mpeg1), expected);

        let mpeg2 = SampleEntry::Mp3 {
            sample_rate: 22_050,
            channels: 1,
        };
        let expected = hexed(&[
            "00000047 6d703461",
            &audio_fields("0001 0010 0000 0000 56220000"),
            &esds("69"), // objectTypeIndication 0x69: MPEG-2 audio, lower rates
        ]);
        assert_eq!(written(&mpeg2), expected);
    }

    #[test]
    fn each_codec_has_its_four_cc_and_kind() {
        let bytes = Bytes::new;
        let video = MediaKind::Video {
            width: 2,
            height: 3,
        };
        for (entry, fourcc, kind) in [
            (
                SampleEntry::Hevc {
                    width: 2,
                    height: 3,
                    record: bytes(),
                },
                b"hvc1",
                video,
            ),
            (
                SampleEntry::Av1 {
                    width: 2,
                    height: 3,
                    record: bytes(),
                },
                b"av01",
                video,
            ),
            (
                SampleEntry::Vp9 {
                    width: 2,
                    height: 3,
                    record: bytes(),
                },
                b"vp09",
                video,
            ),
            (
                SampleEntry::Opus {
                    channels: 2,
                    dops: bytes(),
                },
                b"Opus",
                MediaKind::Audio,
            ),
            (
                SampleEntry::Flac {
                    sample_rate: 1,
                    channels: 1,
                    bits_per_sample: 16,
                    metadata: bytes(),
                },
                b"fLaC",
                MediaKind::Audio,
            ),
            (
                SampleEntry::Mp3 {
                    sample_rate: 1,
                    channels: 1,
                },
                b"mp4a",
                MediaKind::Audio,
            ),
        ] {
            assert_eq!((entry.fourcc(), entry.kind()), (FourCc::new(fourcc), kind));
        }
    }

    #[test]
    fn descriptor_sizes_use_the_expandable_encoding() {
        for (body, field) in [
            (0, "00"),
            (0x7f, "7f"),
            (0x80, "8100"),
            (0x3fff, "ff7f"),
            (0x4000, "818000"),
            (0x1f_ffff, "ffff7f"),
            (0x20_0000, "81808000"),
            (MAX_DESCRIPTOR_SIZE, "ffffff7f"),
        ] {
            let mut out = BytesMut::new();
            put_descriptor_header(&mut out, 0x05, body);
            assert_eq!(hex::encode(&out[1..]), field, "body of {body} bytes");
            assert_eq!(descriptor_size(0x05, body), Ok(out.len() + body));
        }
        assert_eq!(
            descriptor_size(0x05, MAX_DESCRIPTOR_SIZE + 1),
            Err(Mp4Error::DescriptorTooLarge {
                tag: 0x05,
                size: MAX_DESCRIPTOR_SIZE + 1,
                limit: MAX_DESCRIPTOR_SIZE
            })
        );
    }

    #[test]
    fn a_long_audio_specific_config_takes_a_two_byte_size() {
        let config = Bytes::from(vec![0x12; 200]);
        let entry = SampleEntry::Aac {
            sample_rate: 44_100,
            channels: 6,
            config: config.clone(),
        };
        let mut out = BytesMut::new();
        entry.write(&mut out).unwrap();
        let esds = &out[36..];
        // ES body 3 + DCD (1 + 2 + 13 + DSI (1 + 2 + 200)) + SL 3 = 225: 0x81 0x61.
        assert_eq!(esds[12..15], [0x03, 0x81, 0x61]);
        // DCD body 13 + 203 = 216: 0x81 0x58.
        assert_eq!(esds[18..21], [0x04, 0x81, 0x58]);
        assert_eq!(esds[34..37], [0x05, 0x81, 0x48]);
        assert_eq!(esds[37..237], config[..]);
        assert_eq!(esds[237..], [0x06, 0x01, 0x02]);
    }

    #[test]
    fn entries_without_what_a_decoder_needs_are_refused() {
        let avc = |width, record: &str| SampleEntry::Avc {
            width,
            height: 360,
            record: Bytes::from(unhex(record)),
        };
        let aac = |sample_rate, channels, config: &'static [u8]| SampleEntry::Aac {
            sample_rate,
            channels,
            config: Bytes::from_static(config),
        };
        for (entry, reason) in [
            (avc(0, AVC_RECORD), "picture size 0"),
            (
                avc(640, "01 42 c0 1e ff e1"),
                "AVCDecoderConfigurationRecord shorter than 7 bytes",
            ),
            (
                avc(640, "00 42 c0 1e ff e0 00"),
                "configurationVersion is not 1",
            ),
            (aac(0, 2, &[0x11, 0x90]), "sample rate 0"),
            (aac(48_000, 0, &[0x11, 0x90]), "channel count 0"),
            (
                aac(48_000, 2, &[0x11]),
                "AudioSpecificConfig shorter than 2 bytes",
            ),
        ] {
            assert_eq!(
                entry.validate(track()),
                Err(Mp4Error::InvalidSampleEntry {
                    track: track(),
                    entry: entry.fourcc(),
                    reason
                })
            );
        }
        assert_eq!(avc(640, AVC_RECORD).validate(track()), Ok(()));
        assert_eq!(aac(48_000, 2, &[0x11, 0x90]).validate(track()), Ok(()));
    }

    /// Each case: an entry, and the reason it is refused (None: accepted).
    fn check_cases(cases: Vec<(SampleEntry, Option<&'static str>)>) {
        for (entry, reason) in cases {
            let expected = match reason {
                Some(reason) => Err(Mp4Error::InvalidSampleEntry {
                    track: track(),
                    entry: entry.fourcc(),
                    reason,
                }),
                None => Ok(()),
            };
            assert_eq!(entry.validate(track()), expected, "{entry:?}");
        }
    }

    #[test]
    fn new_video_entries_without_what_a_decoder_needs_are_refused() {
        let record = |hex: &str| Bytes::from(unhex(hex));
        let hevc = |width, hex: &str| SampleEntry::Hevc {
            width,
            height: 360,
            record: record(hex),
        };
        let av1 = |width, hex: &str| SampleEntry::Av1 {
            width,
            height: 360,
            record: record(hex),
        };
        let vp9 = |height, hex: &str| SampleEntry::Vp9 {
            width: 640,
            height,
            record: record(hex),
        };
        check_cases(vec![
            (hevc(640, HEVC_RECORD), None),
            (hevc(0, HEVC_RECORD), Some("picture size 0")),
            (
                hevc(640, &HEVC_RECORD[..HEVC_RECORD.len() - 3]),
                Some("HEVCDecoderConfigurationRecord shorter than 23 bytes"),
            ),
            (
                hevc(640, &format!("00{}", &HEVC_RECORD[2..])),
                Some("configurationVersion is not 1"),
            ),
            (av1(640, "81 04 0c 00"), None),
            (av1(640, "81 04 0c 00 0a0b"), None),
            (av1(0, "81 04 0c 00"), Some("picture size 0")),
            (
                av1(640, "81 04 0c"),
                Some("AV1CodecConfigurationRecord shorter than 4 bytes"),
            ),
            (av1(640, "01 04 0c 00"), Some("marker or version is not 1")),
            (av1(640, "82 04 0c 00"), Some("marker or version is not 1")),
            (vp9(360, "00 1e 82 01 01 01 0000"), None),
            (vp9(360, "00 1e 82 01 01 01 0002 abcd"), None),
            (vp9(0, "00 1e 82 01 01 01 0000"), Some("picture size 0")),
            (
                vp9(360, "00 1e 82 01 01 01 00"),
                Some("VPCodecConfigurationRecord shorter than 8 bytes"),
            ),
            (
                vp9(360, "00 1e 82 01 01 01 0001"),
                Some("codecInitializationDataSize does not match the record"),
            ),
            (
                vp9(360, "00 1e 82 01 01 01 0000 ff"),
                Some("codecInitializationDataSize does not match the record"),
            ),
        ]);
    }

    #[test]
    fn new_audio_entries_without_what_a_decoder_needs_are_refused() {
        let opus = |channels, hex: &str| SampleEntry::Opus {
            channels,
            dops: Bytes::from(unhex(hex)),
        };
        let flac = |sample_rate, bits_per_sample, hex: &str| SampleEntry::Flac {
            sample_rate,
            channels: 1,
            bits_per_sample,
            metadata: Bytes::from(unhex(hex)),
        };
        // FLAC_METADATA with its first byte (flag and type) replaced.
        let streaminfo = |first: &str| format!("{first}{}", &FLAC_METADATA[2..]);
        let ac3 = |eac3, channels, hex: &str| SampleEntry::Ac3 {
            eac3,
            sample_rate: 48_000,
            channels,
            specific: Bytes::from(unhex(hex)),
        };
        let mp3 = |sample_rate, channels| SampleEntry::Mp3 {
            sample_rate,
            channels,
        };
        let stereo = "00 02 0138 0000bb80 0000 00";
        // Family 1, two streams for six channels: StreamCount, CoupledCount, 6 mappings.
        let surround = "00 06 0138 0000bb80 0000 01 04 02 000405010203";
        check_cases(vec![
            (opus(2, stereo), None),
            (opus(6, surround), None),
            (opus(0, stereo), Some("channel count 0")),
            (
                opus(2, "00 02 0138 0000bb80 0000"),
                Some("OpusDecoderConfigurationRecord shorter than 11 bytes"),
            ),
            (
                opus(2, "01 02 0138 0000bb80 0000 00"),
                Some("Version is not 0"),
            ),
            (
                opus(1, stereo),
                Some("channel count is not OutputChannelCount"),
            ),
            (
                opus(6, &surround[..surround.len() - 2]),
                Some("ChannelMappingTable cut short"),
            ),
            (flac(44_100, 16, FLAC_METADATA), None),
            (
                // STREAMINFO, then a 4-byte PADDING block that is the last.
                flac(
                    44_100,
                    16,
                    &format!("{} 81000004 00000000", streaminfo("00")),
                ),
                None,
            ),
            (flac(0, 16, FLAC_METADATA), Some("sample rate 0")),
            (flac(44_100, 0, FLAC_METADATA), Some("bits per sample 0")),
            (
                flac(44_100, 16, ""),
                Some("metadata does not start with a 34-byte STREAMINFO block"),
            ),
            (
                flac(44_100, 16, &streaminfo("81")),
                Some("metadata does not start with a 34-byte STREAMINFO block"),
            ),
            (
                flac(44_100, 16, &FLAC_METADATA[..FLAC_METADATA.len() - 2]),
                Some("metadata does not start with a 34-byte STREAMINFO block"),
            ),
            (
                flac(44_100, 16, &streaminfo("00")),
                Some("last metadata block without the last-metadata-block flag"),
            ),
            (
                flac(44_100, 16, &format!("{} 810000", streaminfo("00"))),
                Some("metadata block header cut short"),
            ),
            (
                flac(44_100, 16, &format!("{} 81000004 0000", streaminfo("00"))),
                Some("metadata block longer than the metadata"),
            ),
            (
                flac(44_100, 16, &format!("{FLAC_METADATA} 81000000")),
                Some("metadata blocks after the last-metadata-block flag"),
            ),
            (ac3(false, 2, "10 10 00"), None),
            (ac3(true, 6, "0100 200f00"), None),
            (ac3(false, 0, "10 10 00"), Some("channel count 0")),
            (
                ac3(false, 2, "10 10"),
                Some("AC3SpecificBox content is not 3 bytes"),
            ),
            (
                ac3(false, 2, "10 10 00 00"),
                Some("AC3SpecificBox content is not 3 bytes"),
            ),
            (
                ac3(true, 6, "0100 200f"),
                Some("EC3SpecificBox content shorter than 5 bytes"),
            ),
            (mp3(44_100, 2), None),
            (mp3(8_000, 1), None),
            (mp3(0, 2), Some("sample rate 0")),
            (mp3(44_100, 0), Some("channel count 0")),
            (
                mp3(96_000, 2),
                Some("sample rate is not an MPEG audio rate"),
            ),
        ]);
        let mut no_rate = ac3(false, 2, "10 10 00");
        if let SampleEntry::Ac3 { sample_rate, .. } = &mut no_rate {
            *sample_rate = 0;
        }
        check_cases(vec![(no_rate, Some("sample rate 0"))]);
    }
}
