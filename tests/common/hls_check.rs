//! Checks an HLS output folder the way a strict player would: packet structure, tables,
//! continuity counters, keyframes with parameter sets at every segment start, and EXTINF
//! against the media timestamps ffprobe reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Packet, Playlist, decode_errors, probe_packets};

const TS_PACKET: usize = 188;
const PAT_PID: u16 = 0;

/// One TS packet's header fields.
struct TsPacket<'a> {
    pid: u16,
    start: bool,
    has_payload: bool,
    cc: u8,
    random_access: bool,
    payload: &'a [u8],
}

fn packets(data: &[u8]) -> Vec<TsPacket<'_>> {
    assert_eq!(
        data.len() % TS_PACKET,
        0,
        "segment is not whole 188-byte packets"
    );
    data.chunks(TS_PACKET)
        .map(|p| {
            assert_eq!(p[0], 0x47, "sync byte");
            let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
            let afc = (p[3] >> 4) & 3;
            let mut offset = 4;
            let mut random_access = false;
            if afc & 2 != 0 {
                let len = p[4] as usize;
                if len > 0 {
                    random_access = p[5] & 0x40 != 0;
                }
                offset += 1 + len;
            }
            TsPacket {
                pid,
                start: p[1] & 0x40 != 0,
                has_payload: afc & 1 != 0,
                cc: p[3] & 0x0f,
                random_access,
                payload: &p[offset.min(TS_PACKET)..],
            }
        })
        .collect()
}

/// NAL unit types in an Annex B byte stream, in order.
fn nal_types(es: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < es.len() {
        if es[i] == 0 && es[i + 1] == 0 && es[i + 2] == 1 {
            types.push(es[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// The PMT PID (from the PAT) and the elementary stream PIDs by stream_type (from the PMT).
fn tables(pkts: &[TsPacket<'_>]) -> (u16, HashMap<u8, u16>) {
    let pat = &pkts[0];
    assert!(
        pat.pid == PAT_PID && pat.start,
        "segment does not start with the PAT"
    );
    let s = &pat.payload[1 + pat.payload[0] as usize..];
    // table_id, section_length(2), tsid(2), version(1), section(1), last(1), then programs.
    let pmt_pid = u16::from_be_bytes([s[10] & 0x1f, s[11]]);
    let pmt = &pkts[1];
    assert!(
        pmt.pid == pmt_pid && pmt.start,
        "PMT does not follow the PAT"
    );
    let s = &pmt.payload[1 + pmt.payload[0] as usize..];
    let section_len = (u16::from_be_bytes([s[1] & 0x0f, s[2]])) as usize;
    let info_len = (u16::from_be_bytes([s[10] & 0x0f, s[11]])) as usize;
    let mut i = 12 + info_len;
    let end = 3 + section_len - 4;
    let mut streams = HashMap::new();
    while i + 5 <= end {
        let stream_type = s[i];
        let pid = u16::from_be_bytes([s[i + 1] & 0x1f, s[i + 2]]);
        let es_info = (u16::from_be_bytes([s[i + 3] & 0x0f, s[i + 4]])) as usize;
        streams.insert(stream_type, pid);
        i += 5 + es_info;
    }
    (pmt_pid, streams)
}

/// What [`check_output`] found, for further assertions.
pub struct Checked {
    pub segments: Vec<PathBuf>,
    pub packets: Vec<Vec<Packet>>,
}

/// Checks every segment the playlist lists, in `dir`:
/// - whole 188-byte packets with sync bytes, PAT then PMT first, the PMT listing the expected
///   tracks only;
/// - continuity counters unbroken per PID across all segments (a discontinuity allows a jump);
/// - the first video PES of each segment is AUD, SPS, PPS, IDR, flagged random access;
/// - each segment decodes with no errors;
/// - EXTINF matches the span to the next segment's first timestamp within one frame, and
///   media time is continuous across segments (outside discontinuities).
pub fn check_output(dir: &Path, playlist: &Playlist, video: bool, audio: bool) -> Checked {
    let mut last_cc: HashMap<u16, u8> = HashMap::new();
    let mut all_packets = Vec::new();
    let mut segments = Vec::new();
    for entry in &playlist.entries {
        let path = dir.join(&entry.uri);
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let pkts = packets(&data);
        let (pmt_pid, streams) = tables(&pkts);
        assert_eq!(
            streams.contains_key(&0x1b),
            video,
            "{}: H.264 in PMT",
            entry.uri
        );
        assert_eq!(
            streams.contains_key(&0x0f),
            audio,
            "{}: AAC in PMT",
            entry.uri
        );
        assert_eq!(
            streams.len(),
            video as usize + audio as usize,
            "{}: PMT tracks",
            entry.uri
        );
        if entry.discontinuity {
            last_cc.clear();
        }
        for p in &pkts {
            if let Some(prev) = last_cc.get(&p.pid) {
                let expected = if p.has_payload {
                    (prev + 1) & 0x0f
                } else {
                    *prev
                };
                assert_eq!(
                    p.cc, expected,
                    "{}: continuity counter of PID {:#x}",
                    entry.uri, p.pid
                );
            }
            last_cc.insert(p.pid, p.cc);
        }
        if let Some(&video_pid) = streams.get(&0x1b) {
            let first = pkts
                .iter()
                .position(|p| p.pid == video_pid && p.start)
                .expect("a video PES");
            assert!(
                pkts[first].random_access,
                "{}: first video PES not random access",
                entry.uri
            );
            let mut es = Vec::new();
            let pes = pkts[first].payload;
            es.extend_from_slice(&pes[9 + pes[8] as usize..]);
            for p in pkts[first + 1..].iter().filter(|p| p.pid == video_pid) {
                if p.start {
                    break;
                }
                es.extend_from_slice(p.payload);
            }
            // ISO/IEC 14496-10 §7.4.1.2.3: AUD first; SPS and PPS before the first slice; the
            // first slice (VCL NAL types 1-5) an IDR. SEI may sit between them.
            let types = nal_types(&es);
            let first_slice = types.iter().position(|t| (1..=5).contains(t));
            let ok = types.first() == Some(&9)
                && first_slice.is_some_and(|i| {
                    types[i] == 5 && types[..i].contains(&7) && types[..i].contains(&8)
                });
            assert!(ok, "{}: first access unit NAL types {types:?}", entry.uri);
        }
        let _ = pmt_pid;
        let errors = decode_errors(&path);
        assert!(errors.is_empty(), "{}: {errors}", path.display());
        all_packets.push(probe_packets(&path));
        segments.push(path);
    }
    check_durations(playlist, &all_packets);
    Checked {
        segments,
        packets: all_packets,
    }
}

/// Earliest presentation time in a segment, of one track or (`None`) of all.
fn first_pts(packets: &[Packet], video: Option<bool>) -> f64 {
    packets
        .iter()
        .filter(|p| video.is_none_or(|v| p.video == v))
        .filter_map(|p| p.pts)
        .fold(f64::INFINITY, f64::min)
}

/// End of one track's media in a segment: its latest presentation time plus one frame.
fn track_end(packets: &[Packet], video: bool) -> f64 {
    let frame = if video { VIDEO_FRAME } else { AUDIO_FRAME };
    packets
        .iter()
        .filter(|p| p.video == video)
        .filter_map(|p| p.pts)
        .fold(f64::NEG_INFINITY, f64::max)
        + frame
}

/// One frame of the test media: 30 fps video, 1024-sample AAC frames at 48 kHz.
const VIDEO_FRAME: f64 = 1.0 / 30.0;
const AUDIO_FRAME: f64 = 1024.0 / 48000.0;

fn check_durations(playlist: &Playlist, packets: &[Vec<Packet>]) {
    let tracks: Vec<bool> = [true, false]
        .into_iter()
        .filter(|&v| packets.iter().flatten().any(|p| p.video == v))
        .collect();
    let frame = if tracks.contains(&true) {
        VIDEO_FRAME
    } else {
        AUDIO_FRAME
    };
    // FLV timestamps are whole milliseconds: allow one frame plus that rounding.
    let tolerance = frame + 0.002;
    // Segments are cut at keyframes: their boundaries are the video's (audio stored next to
    // a keyframe may start a few milliseconds earlier), or the audio's in audio-only streams.
    let primary = Some(tracks.contains(&true));
    for (i, entry) in playlist.entries.iter().enumerate() {
        let start = first_pts(&packets[i], primary);
        let continues = playlist
            .entries
            .get(i + 1)
            .is_some_and(|e| !e.discontinuity);
        let span = if continues {
            // Each track's media continues where it left off: no gap, no overlap.
            for &video in &tracks {
                let end = track_end(&packets[i], video);
                let next = first_pts(&packets[i + 1], Some(video));
                let track_frame = if video { VIDEO_FRAME } else { AUDIO_FRAME };
                assert!(
                    (end - next).abs() <= track_frame / 2.0 + 0.002,
                    "{}: {} ends at {end:.3}, the next segment's starts at {next:.3}",
                    entry.uri,
                    if video { "video" } else { "audio" }
                );
            }
            first_pts(&packets[i + 1], primary) - start
        } else {
            tracks
                .iter()
                .map(|&v| track_end(&packets[i], v))
                .fold(f64::NEG_INFINITY, f64::max)
                - start
        };
        assert!(
            (entry.duration - span).abs() <= tolerance,
            "{}: EXTINF {} but media spans {span:.3}",
            entry.uri,
            entry.duration
        );
        assert!(
            (entry.duration.round() as u64) <= playlist.target_duration,
            "{}: EXTINF {} above EXT-X-TARGETDURATION {}",
            entry.uri,
            entry.duration,
            playlist.target_duration
        );
    }
}
