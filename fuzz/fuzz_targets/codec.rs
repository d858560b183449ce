//! The codec configuration parsers and per-frame readers of `codec` on arbitrary bytes.
//!
//! Input: the bytes, given whole to every parser (HEVC, AV1, VP9, Opus, FLAC records, the
//! AC-3/E-AC-3 and MPEG audio frame headers) and every per-frame function (HEVC keyframes at
//! each length size, VP9 keyframe and size, Opus packet duration, FLAC block size with the
//! input's own STREAMINFO when it parses and with a fixed one). Nothing panics, and what is
//! accepted is consistent:
//! - parameter sets and records are slices of the input; facts are within their ranges;
//! - the dOps body is 11 bytes, or 13 plus the channel count; the dfLa body is the
//!   STREAMINFO block flagged last; dac3 is 3 bytes and dec3 5;
//! - durations are within their codecs' bounds, and `ac3::frame_samples` agrees with the
//!   configuration read from the same syncframe;
//! - every parser gives the same answer for the input as a `Bytes` and as a copy.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_server::codec::ac3::{self, Ac3Config};
use rtmp_server::codec::av1::Av1Config;
use rtmp_server::codec::flac::FlacConfig;
use rtmp_server::codec::hevc::{self, HevcConfig};
use rtmp_server::codec::mp3::Mp3Header;
use rtmp_server::codec::opus::{self, OpusConfig};
use rtmp_server::codec::vp9::{self, Vp9Config};

/// A STREAMINFO with block sizes 16 to 65535, for block sizes of arbitrary frames.
const STREAMINFO: [u8; 34] = [
    0x00, 0x10, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x0b, 0xb8, 0x02, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// `part` is a view into `whole`'s memory.
fn is_view(part: &Bytes, whole: &Bytes) -> bool {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    part.is_empty() || (p >= start && p + part.len() <= start + whole.len())
}

fn check_video(facts: &rtmp_server::codec::VideoFacts) {
    assert!(matches!(facts.bit_depth, 8..=16), "{facts:?}");
    assert!(facts.chroma_format <= 3);
    assert!(facts.codec.is_ascii());
    if let Some(rate) = facts.frame_rate {
        assert!(rate.is_finite() && rate > 0.0);
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);

    let hevc = HevcConfig::parse(&bytes);
    assert_eq!(hevc, HevcConfig::parse(&Bytes::copy_from_slice(data)));
    if let Ok(config) = &hevc {
        assert!(matches!(config.length_size, 1 | 2 | 4));
        assert!(config.parameter_sets.iter().any(|nal| hevc::nal_unit_type(nal) == Some(33)));
        for nal in &config.parameter_sets {
            assert!(nal.len() >= 2 && is_view(nal, &bytes));
            assert!(matches!(hevc::nal_unit_type(nal), Some(32..=34)));
        }
        assert!(config.facts.width > 0 && config.facts.height > 0);
        assert!(config.facts.codec.starts_with("hvc1."));
        check_video(&config.facts);
    }
    for length_size in [1, 2, 3, 4] {
        let keyframe = hevc::is_keyframe(data, length_size);
        if length_size == 3 {
            assert!(keyframe.is_err());
        }
    }

    if let Ok(config) = Av1Config::parse(&bytes) {
        assert!(config.seq_profile <= 2);
        assert!(matches!(config.facts.bit_depth, 8 | 10 | 12));
        assert!(config.facts.width > 0 && config.facts.height > 0);
        assert!(config.facts.codec.starts_with("av01."));
        check_video(&config.facts);
    }

    if let Ok(config) = Vp9Config::parse(&bytes) {
        assert_eq!(config.record.len(), 8);
        assert!(is_view(&config.record, &bytes));
        assert!(config.profile <= 3);
        assert_eq!(config.facts.codec.len(), "vp09.00.10.08".len());
        check_video(&config.facts);
    }
    let keyframe = vp9::is_keyframe(data);
    if let Some((width, height)) = vp9::frame_size(data) {
        assert!(width >= 1 && height >= 1);
    } else {
        assert!(!keyframe);
    }

    if let Ok(config) = OpusConfig::parse(&bytes) {
        assert!(config.channels >= 1);
        assert_eq!(config.mapping.len(), usize::from(config.channels));
        let dops = config.dops_body();
        let expected = if config.mapping_family == 0 { 11 } else { 13 + usize::from(config.channels) };
        assert_eq!(dops.len(), expected);
        assert_eq!(dops[1], config.channels);
        assert_eq!(config.facts.sample_rate, 48_000);
    }
    if let Ok(samples) = opus::packet_samples(data) {
        assert!((120..=opus::MAX_PACKET_SAMPLES).contains(&samples));
    }

    let fixed = FlacConfig::parse(&Bytes::from_static(&STREAMINFO)).expect("fixed STREAMINFO");
    if let Ok(samples) = fixed.frame_samples(data) {
        assert!((1..=65535).contains(&samples));
    }
    if let Ok(config) = FlacConfig::parse(&bytes) {
        let dfla = config.dfla_body();
        assert_eq!(dfla.len(), 38);
        assert_eq!(&dfla[..4], &[0x80, 0, 0, 34]);
        assert!(config.min_block_size >= 16 && config.max_block_size >= config.min_block_size);
        assert!((1..=8).contains(&config.channels) && (4..=32).contains(&config.bits_per_sample));
        if let Ok(samples) = config.frame_samples(data) {
            assert!(samples <= u32::from(config.max_block_size));
        }
    }

    match Ac3Config::from_syncframe(data) {
        Ok(config) => {
            assert_eq!(config.specific.len(), if config.eac3 { 5 } else { 3 });
            assert!((1..=6).contains(&config.channels));
            assert_eq!(ac3::frame_samples(data), Ok(config.samples_per_frame));
        }
        Err(error) => assert_eq!(ac3::frame_samples(data), Err(error)),
    }

    if let Ok(header) = Mp3Header::parse(data) {
        assert!(header.frame_len >= 4);
        assert!(matches!(header.samples_per_frame, 384 | 576 | 1152));
        assert!(header.facts().codec.starts_with("mp4a.40.3"));
    }
});
