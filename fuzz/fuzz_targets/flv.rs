//! The FLV layer on arbitrary bytes: tag headers, the AVC decoder configuration and SPS
//! facts (through h264-reader), AVCC framing and its Annex B layout, the AAC
//! AudioSpecificConfig and ADTS headers, and the FLV file reader.
//!
//! Input: a mode byte (modulo 5), then that mode's bytes:
//! 0. a tag body, parsed as video and as audio (legacy and Enhanced RTMP headers, ModEx,
//!    multitrack): payloads are zero-copy slices of the body, in order and apart, and
//!    nothing follows an error.
//! 1. an AVCDecoderConfigurationRecord: when it parses, its parameter sets are slices of
//!    the record of the right NAL unit type; the SPS facts are consistent; the same bytes
//!    also go to the SPS reader directly.
//! 2. a length size byte and an AVCC access unit: `split_avcc` agrees with a reference
//!    walk written here, and `annex_b_pieces` lays out an AUD, the parameter sets before an
//!    IDR that lacks them, and every other NAL unit behind a start code.
//! 3. an AudioSpecificConfig and a frame length (u16): when ADTS can carry it, the header
//!    written for the frame reads back with the same fields.
//! 4. a cut point (u16) and an FLV file: read whole and in two pieces, the reader gives the
//!    same headers, tags and outcome, and `FlvFile` agrees with it.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtmp_server::flv::FlvError;
use rtmp_server::flv::aac::{ADTS_HEADER_SIZE, AudioSpecificConfig, MAX_ADTS_FRAME_SIZE};
use rtmp_server::flv::avc::{
    AUD_NAL_WITH_START_CODE, AvcDecoderConfig, MAX_NALS_PER_ACCESS_UNIT, NalLengthSize, START_CODE,
    VideoInfo, annex_b_pieces, nal_type, split_avcc,
};
use rtmp_server::flv::file::{FlvFile, FlvItem, FlvReader};
use rtmp_server::flv::tag::{AudioBody, AudioMessage, VideoBody, VideoMessage};
use rtmp_server_fuzz::input::{Input, pieces};
use rtmp_server_fuzz::media;

/// `part` is a view into `whole`'s memory.
fn is_view(part: &Bytes, whole: &Bytes) -> bool {
    let start = whole.as_ptr() as usize;
    let part_start = part.as_ptr() as usize;
    part.is_empty() || (part_start >= start && part_start + part.len() <= start + whole.len())
}

/// Checks one message's packets: payloads are views of the body, in order and apart, there
/// are no more packets than bytes, and nothing follows an error.
fn check_tags(body: Bytes) {
    let mut end = body.as_ptr() as usize;
    let mut count = 0;
    if let Ok(mut message) = VideoMessage::parse(&body) {
        let mut failed = false;
        for packet in message.packets() {
            assert!(!failed, "a packet after an error");
            count += 1;
            assert!(count <= body.len(), "more packets than bytes");
            let packet = match packet {
                Ok(p) => p,
                Err(FlvError::Truncated { .. } | FlvError::InvalidField { .. }) => {
                    failed = true;
                    continue;
                }
                Err(e) => panic!("unexpected video packet error: {e}"),
            };
            let payload = match packet.body {
                VideoBody::SequenceStart(b)
                | VideoBody::Metadata(b)
                | VideoBody::Mpeg2TsSequenceStart(b) => b,
                VideoBody::CodedFrames {
                    composition_time,
                    data,
                } => {
                    assert!((-(1 << 23)..1 << 23).contains(&composition_time));
                    data
                }
                VideoBody::SequenceEnd => continue,
            };
            assert!(is_view(&payload, &body), "payload is not a view of the tag");
            if !payload.is_empty() {
                assert!(payload.as_ptr() as usize >= end, "packets overlap");
                end = payload.as_ptr() as usize + payload.len();
            }
        }
    }
    let (mut end, mut count) = (body.as_ptr() as usize, 0);
    if let Ok(mut message) = AudioMessage::parse(&body) {
        for packet in message.packets() {
            count += 1;
            assert!(count <= body.len().max(1), "more packets than bytes");
            let Ok(packet) = packet else { continue };
            if let AudioBody::SequenceStart(b)
            | AudioBody::CodedFrames(b)
            | AudioBody::MultichannelConfig(b) = packet.body
            {
                assert!(is_view(&b, &body), "payload is not a view of the tag");
                if !b.is_empty() {
                    assert!(b.as_ptr() as usize >= end, "packets overlap");
                    end = b.as_ptr() as usize + b.len();
                }
            }
        }
    }
}

fn check_sps_info(info: &VideoInfo) {
    assert_eq!(
        info.codec,
        format!(
            "avc1.{:02X}{:02X}{:02X}",
            info.profile_idc, info.constraint_flags, info.level_idc
        )
    );
    if let Some(fps) = info.frame_rate {
        assert!(fps > 0.0 && fps <= 1000.0, "frame rate {fps}");
    }
}

fn check_record(record: Bytes) {
    if let Ok(info) = VideoInfo::from_sps(&record) {
        check_sps_info(&info);
    }
    let Ok(config) = AvcDecoderConfig::parse(&record) else {
        return;
    };
    assert_eq!(record[0], 1, "configurationVersion");
    assert!([1, 2, 4].contains(&config.length_size.bytes()));
    let sps = config.sequence_parameter_sets();
    let pps = config.picture_parameter_sets();
    assert!(!sps.is_empty() && !pps.is_empty());
    let within = |set: &Bytes| {
        let start = set.as_ptr() as usize;
        start >= record.as_ptr() as usize
            && start + set.len() <= record.as_ptr() as usize + record.len()
    };
    for set in sps {
        assert!(within(set) && set[0] & 0x1f == nal_type::SPS);
    }
    for set in pps {
        assert!(within(set) && set[0] & 0x1f == nal_type::PPS);
    }
    // Each set has a 2-byte length in front, after 6 fixed bytes and the PPS count.
    let listed: usize = sps.iter().chain(pps).map(|s| s.len() + 2).sum();
    assert!(7 + listed <= record.len());
    if let Ok(info) = config.video_info() {
        check_sps_info(&info);
    }
}

/// AVCC walked the simple way: the non-empty NAL units, or `None` if a length prefix is
/// cut short or runs past the end, or there are too many.
fn reference_split(data: &[u8], prefix: usize) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        if rest.len() < prefix {
            return None;
        }
        let (length, tail) = rest.split_at(prefix);
        let length = length
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        if length > tail.len() {
            return None;
        }
        let (nal, tail) = tail.split_at(length);
        if !nal.is_empty() {
            nals.push(nal);
        }
        rest = tail;
    }
    (nals.len() <= MAX_NALS_PER_ACCESS_UNIT).then_some(nals)
}

fn check_avcc(length_size_minus_one: u8, data: Bytes) {
    let Ok(length_size) = NalLengthSize::from_length_size_minus_one(length_size_minus_one % 4)
    else {
        return;
    };
    let expected = reference_split(&data, length_size.bytes());
    let mut nals = Vec::new();
    let result = split_avcc(&data, length_size, &mut nals);
    match (&expected, &result) {
        (Some(expected), Ok(())) => {
            let got: Vec<&[u8]> = nals.iter().map(|n| &n[..]).collect();
            assert_eq!(&got, expected);
        }
        (None, Err(_)) => {
            assert!(nals.is_empty(), "NAL units left behind after an error");
            return;
        }
        _ => panic!("split_avcc gave {result:?}, the reference walk {expected:?}"),
    }

    let config = AvcDecoderConfig::parse(&media::avc_record()).expect("test file record");
    let mut out = Vec::new();
    let summary = annex_b_pieces(&nals, &config, &mut out);
    let kinds: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
    let idr = kinds.contains(&nal_type::IDR);
    let insert = idr && !(kinds.contains(&nal_type::SPS) && kinds.contains(&nal_type::PPS));
    assert_eq!(summary.idr, idr);
    assert_eq!(summary.inserted_parameter_sets, insert);
    assert_eq!(summary.size, out.iter().map(Bytes::len).sum::<usize>());
    assert_eq!(&out[0][..], &AUD_NAL_WITH_START_CODE[..]);
    // The rest is (start code, NAL unit) pairs: parameter sets if inserted, then the
    // access unit's NAL units without its own AUDs.
    let mut expected_nals: Vec<&[u8]> = Vec::new();
    if insert {
        expected_nals.extend(config.sequence_parameter_sets().iter().map(|s| &s[..]));
        expected_nals.extend(config.picture_parameter_sets().iter().map(|s| &s[..]));
    }
    expected_nals.extend(
        nals.iter()
            .filter(|n| n[0] & 0x1f != nal_type::AUD)
            .map(|n| &n[..]),
    );
    let pairs = &out[1..];
    assert_eq!(pairs.len(), 2 * expected_nals.len());
    for (pair, nal) in pairs.chunks(2).zip(&expected_nals) {
        assert_eq!(&pair[0][..], &START_CODE[..]);
        assert_eq!(&pair[1][..], *nal);
    }
}

fn check_aac(config: &[u8], raw_len: usize) {
    let Ok(asc) = AudioSpecificConfig::parse(config) else {
        return;
    };
    let info = asc.audio_info();
    assert_eq!(info.codec, format!("mp4a.40.{}", asc.audio_object_type));
    assert_eq!(info.sample_rate, asc.sampling_frequency);
    let Ok(adts) = asc.adts() else {
        return;
    };
    assert!((1..=4).contains(&asc.core_object_type));
    assert!(adts.frame_duration().ticks() > 0);
    let header = match adts.header(raw_len) {
        Ok(header) => header,
        Err(_) => {
            assert!(
                raw_len + ADTS_HEADER_SIZE > MAX_ADTS_FRAME_SIZE,
                "{raw_len} refused"
            );
            return;
        }
    };
    assert!(raw_len + ADTS_HEADER_SIZE <= MAX_ADTS_FRAME_SIZE);
    // ISO/IEC 14496-3 §1.A.2.2.1, field by field.
    let bits = u64::from_be_bytes([
        0, header[0], header[1], header[2], header[3], header[4], header[5], header[6],
    ]);
    let field = |from_msb: u32, width: u32| (bits >> (56 - from_msb - width)) & ((1 << width) - 1);
    assert_eq!(field(0, 12), 0xfff, "syncword");
    assert_eq!(field(12, 1), 0, "ID: MPEG-4");
    assert_eq!(field(13, 2), 0, "layer");
    assert_eq!(field(15, 1), 1, "protection_absent");
    assert_eq!(
        field(16, 2),
        u64::from(asc.core_object_type - 1),
        "profile_ObjectType"
    );
    assert_eq!(
        field(18, 4),
        u64::from(asc.sampling_frequency_index),
        "sampling_frequency_index"
    );
    assert_eq!(field(22, 1), 0, "private_bit");
    assert_eq!(
        field(23, 3),
        u64::from(asc.channel_configuration),
        "channel_configuration"
    );
    assert_eq!(field(26, 4), 0, "original_copy, home, copyright bits");
    assert_eq!(
        field(30, 13),
        (raw_len + ADTS_HEADER_SIZE) as u64,
        "aac_frame_length"
    );
    assert_eq!(field(43, 11), 0x7ff, "adts_buffer_fullness");
    assert_eq!(field(54, 2), 0, "number_of_raw_data_blocks_in_frame");
}

/// What reading a file gave: its items and how it ended.
#[derive(Debug)]
struct Read {
    items: Vec<FlvItem>,
    error: Option<FlvError>,
}

fn read_in(parts: &[&[u8]]) -> Read {
    let mut reader = FlvReader::new();
    let mut buffer = BytesMut::new();
    let mut items = Vec::new();
    for part in parts {
        buffer.extend_from_slice(part);
        loop {
            match reader.read(&mut buffer) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    return Read {
                        items,
                        error: Some(error),
                    };
                }
            }
        }
    }
    Read {
        items,
        error: reader.finish(&buffer).err(),
    }
}

/// Same error, except that a wrong signature is reported with the bytes seen so far.
fn same_error(a: &Option<FlvError>, b: &Option<FlvError>) -> bool {
    match (a, b) {
        (Some(FlvError::NotFlv { .. }), Some(FlvError::NotFlv { .. })) => true,
        (Some(x), Some(y)) => x == y,
        (None, None) => true,
        _ => false,
    }
}

fn check_file(cut: usize, file: &[u8]) {
    let whole = read_in(&[file]);
    let split = read_in(&pieces(file, &[cut]));
    assert_eq!(whole.items, split.items, "items, whole vs. split at {cut}");
    assert!(
        same_error(&whole.error, &split.error),
        "whole: {:?}, split at {cut}: {:?}",
        whole.error,
        split.error
    );
    let iterated: Vec<Result<FlvItem, FlvError>> =
        FlvFile::new(Bytes::copy_from_slice(file)).collect();
    let (items, errors): (Vec<_>, Vec<_>) = iterated.into_iter().partition(Result::is_ok);
    let items: Vec<FlvItem> = items.into_iter().map(Result::unwrap).collect();
    let error = errors.into_iter().next().map(|e| e.unwrap_err());
    assert_eq!(items, whole.items, "FlvFile vs. FlvReader");
    assert!(
        same_error(&error, &whole.error),
        "FlvFile: {error:?}, FlvReader: {:?}",
        whole.error
    );
    for item in &whole.items {
        if let FlvItem::Tag(tag) = item {
            assert!(tag.offset + 11 + tag.body.len() as u64 <= file.len() as u64);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    match input.byte() % 5 {
        0 => check_tags(Bytes::copy_from_slice(input.rest())),
        1 => check_record(Bytes::copy_from_slice(input.rest())),
        2 => {
            let length_size = input.byte();
            check_avcc(length_size, Bytes::copy_from_slice(input.rest()));
        }
        3 => {
            let raw_len = usize::from(input.u16());
            check_aac(input.rest(), raw_len);
        }
        _ => {
            let cut = usize::from(input.u16());
            check_file(cut, input.rest());
        }
    }
});
