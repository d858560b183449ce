//! Reading the output back: ffprobe's packets and stream info, ffmpeg's decoder errors,
//! frame-for-frame comparison with the source, and the segments a server left on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::http::{Playlist, parse_playlist};
use super::server::ServerProcess;
use super::{STREAM_TIMEOUT, wait_for};

/// A packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub video: bool,
    pub pts: Option<f64>,
    pub dts: Option<f64>,
    pub key: bool,
    pub size: u64,
}

/// Every packet of `path` (any format ffprobe reads), in file order.
pub fn probe_packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,flags,size",
        ])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                video: f[0] == "video",
                pts: f[1].parse().ok(),
                dts: f[2].parse().ok(),
                size: f[3].parse().unwrap_or(0),
                key: f.get(4).is_some_and(|s| s.starts_with('K')),
            }
        })
        .collect()
}

/// `ffmpeg -v error -i PATH -f null -`: the decoder's complaints, empty when clean.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!("\nexit status {}", out.status));
    }
    errors
}

/// The stream info lines ffprobe prints for `path` (codec, profile, size, sample rate).
pub fn probe_streams(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_type,codec_name,profile,width,height,sample_rate,channels")
        .args(["-of", "compact=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a stream's playlist from disk once it is complete (EXT-X-ENDLIST), and returns the
/// segment paths in order.
pub fn finished_segments(server: &ServerProcess, key: &str) -> (Playlist, Vec<PathBuf>) {
    let index = server.stream_dir(key).join("index.m3u8");
    let mut playlist = Playlist::default();
    let ended = wait_for(STREAM_TIMEOUT, || {
        std::fs::read_to_string(&index).is_ok_and(|t| {
            playlist = parse_playlist(&t);
            playlist.ended
        })
    });
    assert!(
        ended,
        "no ended playlist at {}:\n{}",
        index.display(),
        server.logs()
    );
    let paths = segment_paths(server, key, &playlist);
    (playlist, paths)
}

/// Where the segments `playlist` lists are on disk.
pub fn segment_paths(server: &ServerProcess, key: &str, playlist: &Playlist) -> Vec<PathBuf> {
    let dir = server.stream_dir(key);
    playlist.entries.iter().map(|e| dir.join(&e.uri)).collect()
}

/// Every packet of the segments, in order.
pub fn packets_of(paths: &[PathBuf]) -> Vec<Packet> {
    paths.iter().flat_map(|p| probe_packets(p)).collect()
}

/// Timestamps (ms) relative to the first one, per track, so source and output compare.
pub fn relative(packets: &[Packet], video: bool) -> Vec<(i64, i64, bool)> {
    let track: Vec<&Packet> = packets.iter().filter(|p| p.video == video).collect();
    let Some(first) = track.first() else {
        return Vec::new();
    };
    let base = first.dts.or(first.pts).expect("timestamps");
    track
        .iter()
        .map(|p| {
            let ms = |t: Option<f64>| ((t.expect("timestamp") - base) * 1000.0).round() as i64;
            (ms(p.pts), ms(p.dts.or(p.pts)), p.key)
        })
        .collect()
}

/// Asserts that the segments hold the source file's frames: the same count per track, the
/// same timestamps relative to each track's first frame, the same keyframes.
pub fn assert_same_frames(source: &Path, output: &[PathBuf]) {
    let src = probe_packets(source);
    let out = packets_of(output);
    for video in [true, false] {
        let (a, b) = (relative(&src, video), relative(&out, video));
        let kind = if video { "video" } else { "audio" };
        assert_eq!(
            a.len(),
            b.len(),
            "{kind} frame count: source {} output {}",
            a.len(),
            b.len()
        );
        for (i, (s, o)) in a.iter().zip(&b).enumerate() {
            // FLV carries milliseconds; AAC frames in one PES get interpolated times, so allow
            // the FLV rounding (1 ms) plus one more.
            let close = (s.0 - o.0).abs() <= 2 && (s.1 - o.1).abs() <= 2;
            assert!(
                close,
                "{kind} frame {i}: source pts/dts {s:?}, output {o:?}"
            );
            if video {
                assert_eq!(s.2, o.2, "{kind} frame {i}: keyframe flag");
            }
        }
    }
}
