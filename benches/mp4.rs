//! Fragmented-MP4 writing: one LL-HLS part (0.2 s of 30 fps video and 48 kHz AAC in one
//! moof + mdat) written into a reused buffer, header only and with the payloads copied in.
//!
//! Run with `cargo bench --bench mp4`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtmp_server::mp4::{SampleInfo, TrackId, TrackRun, write_fragment, write_fragment_header};

fn part() -> (Vec<SampleInfo>, Vec<SampleInfo>, Vec<Vec<u8>>) {
    // 6 frames at 30 fps, 600 kb/s: about 2.5 KB each, the first a keyframe.
    let video: Vec<SampleInfo> = (0..6)
        .map(|i| SampleInfo {
            duration: 3000,
            size: if i == 0 { 12_000 } else { 2_500 },
            sync: i == 0,
            composition_offset: [6000, 3000, -3000, 6000, 0, -3000][i],
        })
        .collect();
    // 10 AAC frames of 1024 samples at 96 kb/s: about 256 bytes each.
    let audio: Vec<SampleInfo> = (0..10)
        .map(|_| SampleInfo {
            duration: 1024,
            size: 256,
            sync: true,
            composition_offset: 0,
        })
        .collect();
    let payloads = video
        .iter()
        .chain(&audio)
        .map(|s| vec![0x5a; s.size as usize])
        .collect();
    (video, audio, payloads)
}

fn fragment_writing(c: &mut Criterion) {
    let (video, audio, payloads) = part();
    let runs = [
        TrackRun {
            track: TrackId::new(1).unwrap(),
            base_decode_time: 90_000 * 3600,
            samples: &video,
        },
        TrackRun {
            track: TrackId::new(2).unwrap(),
            base_decode_time: 48_000 * 3600,
            samples: &audio,
        },
    ];
    let slices: Vec<&[u8]> = payloads.iter().map(|p| &p[..]).collect();
    let mut out = BytesMut::with_capacity(64 * 1024);
    let mut group = c.benchmark_group("mp4");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fragment_header_one_part", |b| {
        b.iter(|| {
            out.clear();
            black_box(write_fragment_header(black_box(1), black_box(&runs), &mut out).unwrap());
        })
    });
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("fragment_with_payloads_one_part", |b| {
        b.iter(|| {
            out.clear();
            black_box(write_fragment(1, black_box(&runs), &slices, &mut out).unwrap());
        })
    });
    group.finish();
}

criterion_group!(benches, fragment_writing);
criterion_main!(benches);
