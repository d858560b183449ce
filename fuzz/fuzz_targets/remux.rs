//! The whole remux pipeline (`remux::Remuxer`): FLV tag bodies in, MPEG-TS segments out;
//! and, on the same tags, the demuxer's media events through the CMAF output into a
//! Low-Latency window.
//!
//! Input: four configuration bytes (segment target, max segment, carried-over target
//! duration, flags: track hint, whether to go on after an error, FLV file mode), then
//! - in FLV file mode, an FLV file whose items are fed as the offline remux feeds them;
//! - otherwise a list of tags, each an op byte (where the body comes from, how the
//!   timestamp moves) and its operands. Bodies come from the input, from the tags of
//!   testdata/flv/h264_aac.flv (its sequence headers and frames, so the pipeline gets deep
//!   at once), from testdata frames with a fuzzed CompositionTime, or are built from
//!   fuzzed NAL units and AAC frames. Timestamps step forward, back, jump anywhere on the
//!   32-bit clock (so they wrap) or follow the test file's.
//!
//! The stream then finishes, as when the publisher leaves (also after an error, as the
//! server does).
//!
//! Properties: no panic; the TS writer never refuses what the remuxer gives it; every
//! segment is whole 188-byte packets starting with 0x47, PAT then PMT first, continuity
//! counters continuous per PID across all segments (a packet without payload repeats the
//! counter, ISO/IEC 13818-1 §2.4.3.3), readable by mpeg2ts; the target duration is the
//! same for every segment (the configured one when given) and each EXTINF, rounded to the
//! nearest integer, is at most it (RFC 8216 §4.3.3.1). For CMAF: the fMP4 writer never refuses
//! what the CMAF output gives it; an initialization section comes before any segment and
//! never inside one, parts only inside segments, each part one moof (mfhd first, sequence
//! increasing) and one mdat filling it; the target duration rule as for TS; the window
//! takes every event.
//!
//! Replaying an input with `REMUX_TRACE=1` in the environment prints every tag pushed and
//! every segment made.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::time::Instant;

use rtmp_server::flv::demux::FlvDemuxer;
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::hls::cmaf_output::CmafOutput;
use rtmp_server::hls::ts_output::SegmentRules;
use rtmp_server::media::frame::{Ending, MediaEvent};
use rtmp_server_fuzz::cmaf::CmafCheck;
use rtmp_server::media::{Duration90k, RtmpTimestamp};
use rtmp_server::remux::{RemuxConfig, RemuxError, RemuxEvent, Remuxer, TagKind};
use rtmp_server_fuzz::input::Input;
use rtmp_server_fuzz::media::{self, Tag};
use rtmp_server_fuzz::ts::{Continuity, check_segment};

/// Most tags one input describes.
const MAX_TAGS: usize = 1024;

/// One second on the 90 kHz clock.
const SECOND: u64 = 90_000;

/// How the pipeline is configured, from the first input bytes. Values stay within what
/// the configuration accepts: `hls.time` 1 to 60 s, `hls.max_segment` from `hls.time` to
/// 600 s (small values here, so that short inputs reach them).
fn config(input: &mut Input<'_>) -> RemuxConfig {
    let time = 1 + u64::from(input.byte() % 10);
    let max = input.byte();
    let td = input.byte();
    RemuxConfig {
        segment_target: Duration90k(time * SECOND),
        max_segment: (max & 0x80 != 0)
            .then(|| Duration90k((time + u64::from(max & 0x7f) % 11) * SECOND)),
        target_duration: (td & 0x80 != 0).then(|| 1 + u32::from(td & 0x7f) % 30),
    }
}

/// A video tag body carrying one access unit of the given NAL units (4-byte lengths, as
/// the test file's record announces).
fn built_video(keyframe: bool, composition_time: i32, nals: &[&[u8]]) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(if keyframe { 0x17 } else { 0x27 });
    body.put_u8(1);
    body.put_slice(&composition_time.to_be_bytes()[1..]);
    for nal in nals {
        body.put_u32(nal.len() as u32);
        body.put_slice(nal);
    }
    body.freeze()
}

/// A testdata tag.
fn testdata_tag(input: &mut Input<'_>) -> &'static Tag {
    let tags = media::tags();
    &tags[usize::from(input.u16()) % tags.len()]
}

/// The next tag's kind and body, as the op's low three bits say.
fn body(op: u8, input: &mut Input<'_>) -> (TagKind, Bytes, Option<RtmpTimestamp>) {
    let kind_bit = op & 0x08 != 0;
    match op & 0x07 {
        0 | 1 => {
            let kind = if op & 1 == 0 {
                TagKind::Video
            } else {
                TagKind::Audio
            };
            let length = usize::from(input.byte());
            (kind, Bytes::copy_from_slice(input.bytes(length)), None)
        }
        2 => {
            let tag = testdata_tag(input);
            (tag.kind, tag.body.clone(), Some(tag.timestamp))
        }
        3 => {
            let tag = if kind_bit {
                media::audio_sequence_header()
            } else {
                media::video_sequence_header()
            };
            (tag.kind, tag.body.clone(), None)
        }
        4 => {
            let composition_time = i32::from(input.u16() as i16);
            let count = 1 + usize::from(input.byte() % 4);
            let mut nals = Vec::with_capacity(count);
            for _ in 0..count {
                let nal_unit_type = input.byte();
                let length = usize::from(input.byte() % 64);
                let mut nal = vec![nal_unit_type];
                nal.extend_from_slice(input.bytes(length));
                nals.push(nal);
            }
            let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
            (
                TagKind::Video,
                built_video(kind_bit, composition_time, &refs),
                None,
            )
        }
        5 => {
            let length = usize::from(input.byte());
            let mut body = vec![0xaf, 0x01];
            body.extend_from_slice(input.bytes(length));
            (TagKind::Audio, body.into(), None)
        }
        6 => {
            // A testdata tag with its CompositionTime (bytes 2..5 of a video tag) replaced.
            let tag = testdata_tag(input);
            let mut body = tag.body.to_vec();
            let composition_time = input.u24().to_be_bytes();
            if tag.kind == TagKind::Video && body.len() >= 5 {
                body[2..5].copy_from_slice(&composition_time[1..]);
            }
            (tag.kind, body.into(), Some(tag.timestamp))
        }
        _ => {
            let kind = if kind_bit {
                TagKind::Audio
            } else {
                TagKind::Video
            };
            let length = usize::from(input.u16());
            (kind, Bytes::copy_from_slice(input.bytes(length)), None)
        }
    }
}

/// The next timestamp, as the op's top three bits say.
fn timestamp(
    op: u8,
    input: &mut Input<'_>,
    previous: RtmpTimestamp,
    own: Option<RtmpTimestamp>,
    base: u32,
) -> RtmpTimestamp {
    match op >> 5 {
        0 => previous,
        1 => previous.wrapping_add(u32::from(input.byte())),
        2 => previous.wrapping_add(u32::from(input.u16())),
        3 => previous.wrapping_add(u32::from(input.byte()).wrapping_neg()),
        4 => previous.wrapping_add(u32::from(input.u16()).wrapping_neg()),
        5 => RtmpTimestamp(input.u32()),
        // The test file's own timing, moved by the stream's base.
        6 => own.map_or(previous.wrapping_add(33), |t| t.wrapping_add(base)),
        _ => previous.wrapping_add(33),
    }
}

/// The CMAF side: the demuxer, the CMAF output and the checks on what it makes.
struct Cmaf {
    demux: FlvDemuxer,
    output: CmafOutput,
    check: CmafCheck,
    media: Vec<MediaEvent>,
    made: Vec<rtmp_server::hls::ll_stream::CmafEvent>,
    broken: bool,
}

impl Cmaf {
    fn new(config: &RemuxConfig) -> Cmaf {
        let rules = SegmentRules {
            segment_target: config.segment_target,
            max_segment: config.max_segment,
        };
        Cmaf {
            demux: FlvDemuxer::new(),
            output: CmafOutput::new(rules, Duration90k(18_000)),
            check: CmafCheck::default(),
            media: Vec::new(),
            made: Vec::new(),
            broken: false,
        }
    }

    fn push(&mut self, kind: TagKind, timestamp: RtmpTimestamp, body: Bytes) {
        if self.broken {
            return;
        }
        let pushed = self
            .demux
            .push(kind, timestamp, body, Instant::now(), &mut self.media);
        if pushed.is_err() {
            self.broken = true;
            self.media.push(MediaEvent::End(Ending::Broken));
        }
        self.run();
    }

    fn finish(&mut self) {
        if !self.broken {
            self.demux.finish(&mut self.media);
            self.media.push(MediaEvent::End(Ending::Stopped));
            self.run();
            self.check.end();
        }
    }

    fn run(&mut self) {
        let mut advice = Vec::new();
        for event in self.media.drain(..) {
            if let MediaEvent::Start(_) = event {
                self.check.new_publisher();
            }
            if let Err(e) = self.output.push(&event, &mut self.made, &mut advice) {
                panic!("the fMP4 writer refused the CMAF output's media: {e}");
            }
            self.check.check(&self.made);
            self.made.clear();
        }
    }
}

/// Feeds one tag; whether to go on.
fn push(
    remuxer: &mut Remuxer,
    kind: TagKind,
    timestamp: RtmpTimestamp,
    body: Bytes,
    events: &mut Vec<RemuxEvent>,
    keep_going: bool,
) -> bool {
    if trace() {
        eprintln!(
            "push {kind:?} {timestamp} {} bytes {:02x?}",
            body.len(),
            &body[..body.len().min(12)]
        );
    }
    match remuxer.push(kind, timestamp, body, events) {
        Ok(()) => true,
        Err(RemuxError::Mux(e)) => panic!("the TS writer refused the remuxer's output: {e}"),
        Err(_) => keep_going,
    }
}

/// Whether to print every tag and segment (set `REMUX_TRACE` when replaying an input).
fn trace() -> bool {
    std::env::var_os("REMUX_TRACE").is_some()
}

fn check(events: &[RemuxEvent], config: &RemuxConfig) {
    let mut continuity = Continuity::default();
    let mut target_duration = config.target_duration.or_else(|| {
        config
            .max_segment
            .map(|m| ((m.ticks() + SECOND / 2) / SECOND).max(1) as u32)
    });
    let segments = events.iter().filter_map(|e| match e {
        RemuxEvent::Segment(s) => Some(s),
        _ => None,
    });
    for (i, segment) in segments.enumerate() {
        if trace() {
            eprintln!(
                "segment {i}: start {} duration {} discontinuity {} independent {} td {}",
                segment.start.ticks(),
                segment.duration.ticks(),
                segment.discontinuity,
                segment.independent,
                segment.target_duration
            );
        }
        let td = *target_duration.get_or_insert(segment.target_duration);
        assert_eq!(
            segment.target_duration, td,
            "segment {i}: target duration changed (config {config:?})"
        );
        let extinf = (segment.duration.ticks() + SECOND / 2) / SECOND;
        assert!(
            extinf <= u64::from(td),
            "segment {i}: EXTINF {} rounds to {extinf}, above the target duration {td} \
             (config {config:?})",
            segment.duration
        );
        check_segment(&segment.data, &mut continuity, i);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let config = config(&mut input);
    let flags = input.byte();
    let keep_going = flags & 0x04 != 0;
    let mut remuxer = Remuxer::new(config);
    let mut cmaf = Cmaf::new(&config);
    let hint = match flags & 0x03 {
        1 => Some((true, false)),
        2 => Some((false, true)),
        3 => Some((true, true)),
        _ => None,
    };
    if let Some((video, audio)) = hint {
        remuxer.expect_tracks(video, audio);
        cmaf.demux.expect_tracks(video, audio);
    }
    let mut events = Vec::new();

    if flags & 0x08 != 0 {
        for item in FlvFile::new(Bytes::copy_from_slice(input.rest())) {
            let Ok(item) = item else { break };
            match &item {
                FlvItem::Header(h) => cmaf
                    .demux
                    .expect_tracks(h.type_flags_video, h.type_flags_audio),
                FlvItem::Tag(tag) => {
                    if let Some(kind) = TagKind::of(tag.tag_type) {
                        cmaf.push(kind, tag.timestamp, tag.body.clone());
                    }
                }
            }
            match remuxer.push_file_item(item, &mut events) {
                Ok(()) => {}
                Err(RemuxError::Mux(e)) => {
                    panic!("the TS writer refused the remuxer's output: {e}")
                }
                Err(_) if keep_going => {}
                Err(_) => break,
            }
        }
    } else {
        let base = input.u32();
        let mut previous = RtmpTimestamp(base);
        for _ in 0..MAX_TAGS {
            if input.is_empty() {
                break;
            }
            let op = input.byte();
            let (kind, body, own) = body(op, &mut input);
            let at = timestamp(op, &mut input, previous, own, base);
            previous = at;
            cmaf.push(kind, at, body.clone());
            if !push(&mut remuxer, kind, at, body, &mut events, keep_going) {
                break;
            }
        }
    }
    remuxer.finish(&mut events);
    cmaf.finish();
    check(&events, &config);
});
