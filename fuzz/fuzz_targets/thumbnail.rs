//! The thumbnail pipeline on arbitrary configuration and keyframe bytes: `flv::avc`'s record
//! parser, then `thumbnail::decode` (AVCC to Annex B, the SPS checks, the H.264 decoder) and,
//! for a picture, `thumbnail::service::render` (scaling and JPEG).
//!
//! Input: a big-endian 16-bit length, that many bytes of AVCDecoderConfigurationRecord, one
//! byte choosing the width (0: the picture's own; otherwise 16 + 8 times it), and the rest
//! as the AVCC keyframe. Nothing panics, and what decodes is consistent: a picture within the
//! size bound, with planes of its size, and a JPEG file of the width asked for (at most the
//! picture's) with the picture's shape.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rtmp_server::flv::avc::AvcDecoderConfig;
use rtmp_server::media::codec::H264Config;
use rtmp_server::thumbnail::decode::{self, MAX_LUMA_SAMPLES, MAX_SIDE};
use rtmp_server::thumbnail::scale::output_size;
use rtmp_server::thumbnail::service::render;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len + 1 {
        return;
    }
    let (record, rest) = rest.split_at(len);
    let (width, frame) = (rest[0], &rest[1..]);
    let Ok(record) = AvcDecoderConfig::parse(&Bytes::copy_from_slice(record)) else {
        return;
    };
    let Ok(info) = record.video_info() else {
        return;
    };
    let config = H264Config { record, info };
    let Ok(picture) = decode::decode(&config, &Bytes::copy_from_slice(frame)) else {
        return;
    };
    let (w, h) = (picture.width, picture.height);
    assert!(w > 0 && h > 0 && w <= MAX_SIDE as usize && h <= MAX_SIDE as usize);
    assert!(w * h <= MAX_LUMA_SAMPLES as usize);
    assert_eq!(picture.y.len(), w * h);
    assert_eq!(picture.cb.len(), (w / 2) * (h / 2));
    assert_eq!(picture.cr.len(), (w / 2) * (h / 2));
    let asked = (width > 0).then(|| 16 + 8 * u32::from(width));
    let expected = output_size(&picture, asked);
    let (made, jpeg) = render(&picture, asked).expect("a picture encodes");
    assert_eq!(made, expected.0);
    assert!(made <= w);
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9]);
});
