//! The Enhanced RTMP ingest path: the test captures (H.264+AAC for reference, HEVC+AAC,
//! AV1+Opus, VP9+Opus, H.264+FLAC, H.264+AC-3, a three-rendition H.264 multitrack publish)
//! through the demuxer and the CMAF output, tag bodies in, parts in memory out, as the live
//! path runs them.
//! Before timing, each file is looped into a minute of media and the heap allocations of the
//! whole run are counted against its frames, parts and segments, to show the per-frame path
//! allocates nothing: what allocates is the publish's set-up (configurations, the track
//! set, the initialization section) and a few things per part and per segment.
//!
//! Run with `cargo bench --bench enhanced`.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtmp_server::flv::demux::{FlvDemuxer, TagKind};
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::hls::cmaf_output::CmafOutput;
use rtmp_server::hls::ll_stream::CmafEvent;
use rtmp_server::hls::ts_output::SegmentRules;
use rtmp_server::media::Duration90k;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::media::frame::{Ending, MediaEvent};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{CountingAllocator, allocations};

/// Every heap allocation is counted.
#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const FILES: [&str; 7] = [
    "h264_aac.flv",
    "hevc_aac.flv",
    "av1_opus.flv",
    "vp9_opus.flv",
    "h264_flac.flv",
    "h264_ac3.flv",
    "h264_multitrack.flv",
];

fn tags(name: &str) -> Vec<(TagKind, RtmpTimestamp, Bytes)> {
    let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = Bytes::from(std::fs::read(path).expect("test media"));
    FlvFile::new(file)
        .filter_map(|item| match item.expect("FLV") {
            FlvItem::Tag(tag) => Some((TagKind::of(tag.tag_type)?, tag.timestamp, tag.body)),
            FlvItem::Header(_) => None,
        })
        .collect()
}

/// What one run made: frames, parts, segments.
#[derive(Default)]
struct Made {
    frames: usize,
    parts: usize,
    segments: usize,
}

/// Demuxes and writes one file, with buffers reused from tag to tag as the live path does.
fn run(tags: &[(TagKind, RtmpTimestamp, Bytes)]) -> Made {
    let mut demux = FlvDemuxer::new();
    let mut output = CmafOutput::new(SegmentRules::default(), Duration90k::from_millis(200));
    let mut events = Vec::with_capacity(64);
    let mut made = Vec::with_capacity(16);
    let mut advice = Vec::new();
    let mut counts = Made::default();
    let now = Instant::now();
    let mut push = |events: &mut Vec<MediaEvent>, counts: &mut Made| {
        for event in events.drain(..) {
            counts.frames += usize::from(matches!(event, MediaEvent::Frame(_)));
            output.push(&event, &mut made, &mut advice).expect("CMAF");
            for m in made.drain(..) {
                match m {
                    CmafEvent::Part { data, .. } => {
                        counts.parts += 1;
                        black_box(data);
                    }
                    CmafEvent::SegmentEnd { .. } => counts.segments += 1,
                    _ => {}
                }
            }
        }
    };
    for (kind, timestamp, body) in tags {
        demux
            .push(*kind, *timestamp, body.clone(), now, &mut events)
            .expect("media");
        push(&mut events, &mut counts);
    }
    demux.finish(&mut events);
    events.push(MediaEvent::End(Ending::Stopped));
    push(&mut events, &mut counts);
    counts
}

/// The file's media `times` over, each copy after the last (as a publisher looping it
/// sends it), its sequence starts only at the beginning.
fn looped(
    tags: &[(TagKind, RtmpTimestamp, Bytes)],
    times: u32,
) -> Vec<(TagKind, RtmpTimestamp, Bytes)> {
    let span = tags.iter().map(|(_, t, _)| t.0).max().unwrap_or(0) + 40;
    let is_start = |body: &Bytes| {
        // A sequence start: legacy AVC/AAC packet type 0, or an extended header's type 0
        // (in a multitrack packet, the tracks' type).
        match body.first() {
            Some(0x17) | Some(0xaf) => body.get(1) == Some(&0),
            Some(&b) if b & 0x80 != 0 && b & 0x0f == 6 => {
                body.get(1).is_some_and(|t| t & 0x0f == 0)
            }
            Some(&b) if b >> 4 == 9 && b & 0x0f == 5 => body.get(1).is_some_and(|t| t & 0x0f == 0),
            Some(&b) if b & 0x80 != 0 || b >> 4 == 9 => b & 0x0f == 0,
            _ => false,
        }
    };
    (0..times)
        .flat_map(|n| {
            tags.iter()
                .filter(move |(_, _, body)| n == 0 || !is_start(body))
                .map(move |(kind, t, body)| (*kind, RtmpTimestamp(t.0 + n * span), body.clone()))
        })
        .collect()
}

fn report_allocations() {
    for name in FILES {
        let tags = looped(&tags(name), 30);
        // Once to warm the part buffer pool, as a live stream's steady state has it.
        run(&tags);
        let before = allocations();
        let made = run(&tags);
        let allocations = allocations() - before;
        println!(
            "enhanced/{name} looped to {} frames: {allocations} heap allocations, {} parts, {} segments ({:.2} a part)",
            made.frames,
            made.parts,
            made.segments,
            allocations as f64 / made.parts as f64
        );
        assert!(
            allocations * 4 < made.frames,
            "{name}: allocations in the per-frame path ({allocations} for {} frames)",
            made.frames
        );
    }
}

fn enhanced_ingest(c: &mut Criterion) {
    report_allocations();
    let mut group = c.benchmark_group("enhanced");
    for name in FILES {
        let tags = tags(name);
        let bytes: usize = tags.iter().map(|(_, _, b)| b.len()).sum();
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(name, |b| b.iter(|| run(black_box(&tags))));
    }
    group.finish();
}

criterion_group!(benches, enhanced_ingest);
criterion_main!(benches);
