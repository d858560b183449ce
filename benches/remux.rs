//! Remux throughput: an FLV file's bytes in, finished MPEG-TS segments in memory out.
//!
//! Run with `cargo bench --bench remux`. Input: testdata/flv/h264_aac.flv (H.264 High with
//! B-frames, AAC-LC, 10 s).

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtmp_server::remux::{RemuxConfig, RemuxEvent, remux_flv};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CountingAllocator, allocations};

/// Counts heap allocations, to show that the remux allocates per segment and per
/// configuration, not per TS packet or per frame.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Reports allocations against TS packets written for one run.
fn report_allocations(file: &Bytes) {
    let before = allocations();
    let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
    let allocations = allocations() - before;
    let packets: usize = events
        .iter()
        .map(|e| match e {
            RemuxEvent::Segment(s) => s.data.len() / 188,
            _ => 0,
        })
        .sum();
    println!("remux/h264_aac.flv: {allocations} heap allocations for {packets} TS packets");
    assert!(
        allocations * 20 < packets,
        "allocation in the per-packet path"
    );
}

fn remux_throughput(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/flv/h264_aac.flv");
    let file = Bytes::from(std::fs::read(path).expect("test media"));
    report_allocations(&file);
    let mut group = c.benchmark_group("remux");
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("h264_aac.flv", |b| {
        b.iter(|| {
            let events = remux_flv(black_box(file.clone()), RemuxConfig::default()).unwrap();
            let segments = events
                .iter()
                .filter(|e| matches!(e, RemuxEvent::Segment(_)))
                .count();
            assert_eq!(segments, 5);
            events
        })
    });
    group.finish();
}

criterion_group!(benches, remux_throughput);
criterion_main!(benches);
