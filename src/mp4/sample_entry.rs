//! Sample entries: the codec description each track's `stsd` carries, with its codec
//! configuration box. One enum variant per codec; the boxes around a sample entry only ask
//! it for its [`MediaKind`], so a codec is added here (a variant, its checks, its writer)
//! without touching the init or fragment writers.
//!
//! Spec: ISO/IEC 14496-12 §8.5.2 (SampleEntry, VisualSampleEntry, AudioSampleEntry);
//! ISO/IEC 14496-15 §5.4.2.1 (avc1, avcC); ISO/IEC 14496-14:2003 §3.1.2, §5.6 (mp4a,
//! esds); ISO/IEC 14496-1 §7.2.6 (ES_Descriptor and its sub-descriptors).

use bytes::{BufMut, Bytes, BytesMut};

use crate::mp4::TrackId;
use crate::mp4::boxes::{FourCc, OpenBox};
use crate::mp4::error::Mp4Error;

/// A track's codec and its configuration, as the sample entry in `stsd` describes it.
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

/// objectTypeIndication 0x40: Audio ISO/IEC 14496-3 (AAC and its extensions, configured
/// by the AudioSpecificConfig).
///
/// Spec: ISO/IEC 14496-1 §7.2.6.6.2, Table 5.
const OBJECT_TYPE_AUDIO_14496_3: u8 = 0x40;

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

/// The data_reference_index every sample entry points at: the one self-contained `url `
/// entry of `dref`.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2, §8.7.2.
const DATA_REFERENCE_INDEX: u16 = 1;

impl SampleEntry {
    /// The sample entry's box type, also the codec's four-character code.
    pub fn fourcc(&self) -> FourCc {
        match self {
            SampleEntry::Avc { .. } => FourCc::new(b"avc1"),
            SampleEntry::Aac { .. } => FourCc::new(b"mp4a"),
        }
    }

    /// Whether the track is video or audio, and the picture size of video.
    pub fn kind(&self) -> MediaKind {
        match *self {
            SampleEntry::Avc { width, height, .. } => MediaKind::Video { width, height },
            SampleEntry::Aac { .. } => MediaKind::Audio,
        }
    }

    /// Checks the fields a player cannot do without, before anything is written.
    pub(crate) fn validate(&self, track: TrackId) -> Result<(), Mp4Error> {
        let invalid = |reason| Mp4Error::InvalidSampleEntry {
            track,
            entry: self.fourcc(),
            reason,
        };
        match self {
            SampleEntry::Avc {
                width,
                height,
                record,
            } => {
                if *width == 0 || *height == 0 {
                    return Err(invalid("picture size 0"));
                }
                if record.len() < MIN_AVC_RECORD_SIZE {
                    return Err(invalid(
                        "AVCDecoderConfigurationRecord shorter than 7 bytes",
                    ));
                }
                // Spec: ISO/IEC 14496-15 §5.3.3.1.2: a reader must not decode a record of
                // another configurationVersion.
                if record[0] != 1 {
                    return Err(invalid("configurationVersion is not 1"));
                }
            }
            SampleEntry::Aac {
                sample_rate,
                channels,
                config,
            } => {
                if *sample_rate == 0 {
                    return Err(invalid("sample rate 0"));
                }
                if *channels == 0 {
                    return Err(invalid("channel count 0"));
                }
                if config.len() < MIN_AUDIO_SPECIFIC_CONFIG_SIZE {
                    return Err(invalid("AudioSpecificConfig shorter than 2 bytes"));
                }
            }
        }
        Ok(())
    }

    /// Writes the sample entry box with its configuration box inside.
    pub(crate) fn write(&self, out: &mut BytesMut) -> Result<(), Mp4Error> {
        match self {
            SampleEntry::Avc {
                width,
                height,
                record,
            } => write_avc1(out, *width, *height, record),
            SampleEntry::Aac {
                sample_rate,
                channels,
                config,
            } => write_mp4a(out, *sample_rate, *channels, config),
        }
    }
}

/// The fields every sample entry starts with: six reserved bytes and data_reference_index.
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 `aligned(8) abstract class SampleEntry`.
fn put_sample_entry_header(out: &mut BytesMut) {
    out.put_bytes(0, 6);
    out.put_u16(DATA_REFERENCE_INDEX);
}

/// `avc1` (VisualSampleEntry) with `avcC` holding the record unchanged. No `btrt` (the
/// bitrate is not known when the init segment is written) and no `pasp` (square pixels are
/// the default; the SPS's VUI carries any other aspect ratio).
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 VisualSampleEntry; ISO/IEC 14496-15 §5.4.2.1.
fn write_avc1(out: &mut BytesMut, width: u16, height: u16, record: &[u8]) -> Result<(), Mp4Error> {
    let entry = OpenBox::begin(out, FourCc::new(b"avc1"));
    put_sample_entry_header(out);
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    out.put_bytes(0, 12); // pre_defined[3]
    out.put_u16(width);
    out.put_u16(height);
    out.put_u32(RESOLUTION_72_DPI); // horizresolution
    out.put_u32(RESOLUTION_72_DPI); // vertresolution
    out.put_u32(0); // reserved
    out.put_u16(1); // frame_count: one frame per sample
    out.put_bytes(0, 32); // compressorname: empty (length byte 0, zero padding)
    out.put_u16(DEPTH_COLOUR_NO_ALPHA);
    out.put_i16(-1); // pre_defined
    let avcc = OpenBox::begin(out, FourCc::new(b"avcC"));
    out.put_slice(record);
    avcc.end(out)?;
    entry.end(out)?;
    Ok(())
}

/// `mp4a` (AudioSampleEntry, version 0) with `esds`. samplerate is 16.16 fixed point and
/// so holds rates up to 65535 Hz; a higher rate is written as 0 there, and the decoder takes
/// the rate from the AudioSpecificConfig, as it does in any case (ISO/IEC 14496-14 leaves
/// the decoder configuration authoritative).
///
/// Spec: ISO/IEC 14496-12 §8.5.2.2 AudioSampleEntry; ISO/IEC 14496-14:2003 §5.6.
fn write_mp4a(
    out: &mut BytesMut,
    sample_rate: u32,
    channels: u16,
    config: &[u8],
) -> Result<(), Mp4Error> {
    let entry = OpenBox::begin(out, FourCc::new(b"mp4a"));
    put_sample_entry_header(out);
    out.put_bytes(0, 8); // reserved[2]
    out.put_u16(channels); // channelcount
    out.put_u16(16); // samplesize: 16 bits, the fixed value
    out.put_u16(0); // pre_defined
    out.put_u16(0); // reserved
    let rate_16_16 = if sample_rate <= u32::from(u16::MAX) {
        sample_rate << 16
    } else {
        0
    };
    out.put_u32(rate_16_16);
    write_esds(out, config)?;
    entry.end(out)?;
    Ok(())
}

/// `esds`: an ES_Descriptor with ES_ID 0 (as stored in a file), no dependencies, URL or
/// OCR stream; a DecoderConfigDescriptor for ISO/IEC 14496-3 audio (object type 0x40,
/// stream type 5) whose DecoderSpecificInfo is the AudioSpecificConfig; and the
/// SLConfigDescriptor MP4 files use. bufferSizeDB, maxBitrate and avgBitrate are 0: a live
/// ingest does not know them when the init segment is written, and 0 is what the fields
/// hold for unknown or variable rates. Descriptor sizes use the shortest expandable
/// encoding.
///
/// Spec: ISO/IEC 14496-14:2003 §3.1.2, §5.6; ISO/IEC 14496-1 §7.2.6.5 (ES_Descriptor),
/// §7.2.6.6 (DecoderConfigDescriptor), §7.2.6.7 (DecoderSpecificInfo), §7.3.2.3
/// (SLConfigDescriptor), §8.3.3 (expandable sizeOfInstance).
fn write_esds(out: &mut BytesMut, config: &[u8]) -> Result<(), Mp4Error> {
    // Body sizes, innermost first: each descriptor's size counts its body only.
    let dsi_body = config.len();
    let sl_body = 1;
    let dcd_body = 13 + descriptor_size(tag::DEC_SPECIFIC_INFO, dsi_body)?;
    let es_body = 3
        + descriptor_size(tag::DECODER_CONFIG_DESCR, dcd_body)?
        + descriptor_size(tag::SL_CONFIG_DESCR, sl_body)?;
    descriptor_size(tag::ES_DESCR, es_body)?;

    let esds = OpenBox::begin_full(out, FourCc::new(b"esds"), 0, 0);
    put_descriptor_header(out, tag::ES_DESCR, es_body);
    out.put_u16(0); // ES_ID: 0 as stored
    out.put_u8(0); // streamDependenceFlag, URL_Flag, OCRstreamFlag 0; streamPriority 0
    put_descriptor_header(out, tag::DECODER_CONFIG_DESCR, dcd_body);
    out.put_u8(OBJECT_TYPE_AUDIO_14496_3);
    // streamType (6 bits), upStream 0, reserved 1.
    out.put_u8(STREAM_TYPE_AUDIO << 2 | 0b01);
    out.put_uint(0, 3); // bufferSizeDB
    out.put_u32(0); // maxBitrate
    out.put_u32(0); // avgBitrate
    put_descriptor_header(out, tag::DEC_SPECIFIC_INFO, dsi_body);
    out.put_slice(config);
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
}
