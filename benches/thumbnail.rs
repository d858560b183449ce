//! Thumbnails: one x264 IDR of lavfi testsrc2 (testdata/thumbnail/, High profile, CABAC)
//! decoded with the server's H.264 decoder, then scaled and encoded as JPEG, at 720p and
//! 1080p: the decode alone, and the whole thumbnail at the picture's width and at 320.
//!
//! Run with `cargo bench --bench thumbnail`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use rtmp_server::flv::avc::AvcDecoderConfig;
use rtmp_server::media::codec::H264Config;
use rtmp_server::thumbnail::decode::decode;
use rtmp_server::thumbnail::service::render;

/// The NAL units of an Annex B file.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
            while starts.get(k + 1).is_some() && end > s && data[end - 1] == 0 {
                end -= 1;
            }
            &data[s..end]
        })
        .collect()
}

/// The track configuration and AVCC keyframe of `testdata/thumbnail/{name}.h264`.
fn keyframe(name: &str) -> (H264Config, Bytes) {
    let path = format!(
        "{}/testdata/thumbnail/{name}.h264",
        env!("CARGO_MANIFEST_DIR")
    );
    let data = std::fs::read(path).expect("test keyframe");
    let nals = nal_units(&data);
    let of = |t: u8| {
        *nals
            .iter()
            .find(|n| n[0] & 0x1f == t)
            .expect("parameter set")
    };
    let (sps, pps) = (of(7), of(8));
    let mut record = vec![1, sps[1], sps[2], sps[3], 0xff, 0xe1];
    record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    record.extend_from_slice(sps);
    record.push(1);
    record.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    record.extend_from_slice(pps);
    let record = AvcDecoderConfig::parse(&Bytes::from(record)).expect("record");
    let info = record.video_info().expect("SPS");
    let mut frame = Vec::new();
    for nal in nals.iter().filter(|n| !matches!(n[0] & 0x1f, 7 | 8)) {
        frame.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        frame.extend_from_slice(nal);
    }
    (H264Config { record, info }, Bytes::from(frame))
}

fn thumbnails(c: &mut Criterion) {
    let mut group = c.benchmark_group("thumbnail");
    for name in ["testsrc2_1280x720", "testsrc2_1920x1080"] {
        let (config, frame) = keyframe(name);
        let picture = decode(&config, &frame).expect("decodes");
        group.bench_function(format!("{name}/decode"), |b| {
            b.iter(|| decode(black_box(&config), black_box(&frame)).expect("decodes"))
        });
        group.bench_function(format!("{name}/decode+jpeg_full"), |b| {
            b.iter(|| {
                let picture = decode(black_box(&config), black_box(&frame)).expect("decodes");
                render(&picture, None).expect("encodes")
            })
        });
        group.bench_function(format!("{name}/decode+jpeg_320"), |b| {
            b.iter(|| {
                let picture = decode(black_box(&config), black_box(&frame)).expect("decodes");
                render(&picture, Some(320)).expect("encodes")
            })
        });
        group.bench_function(format!("{name}/jpeg_320_only"), |b| {
            b.iter(|| render(black_box(&picture), Some(320)).expect("encodes"))
        });
    }
    group.finish();
}

criterion_group!(benches, thumbnails);
criterion_main!(benches);
