//! The Low-Latency window over real CMAF: ffmpeg writes a fragmented MP4 (0.5 s fragments,
//! a keyframe every second), the test cuts it into an initialization section and parts, feeds
//! them to `LlStream` as the CMAF output would, carries out its disk actions, and ffmpeg
//! reads the result back: the playlist on disk (whole segments written from their parts) and
//! the served Low-Latency playlist (with the parts as files beside it) must both decode to
//! every frame, across a new publisher's discontinuity.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use rtmp_server::hls::disk::MediaRoot;
use rtmp_server::hls::ll_stream::{CmafEvent, LlStream, PLAYLIST_NAME};
use rtmp_server::hls::stream::{DiskAction, HlsSettings, StreamDir};
use rtmp_server::media::Duration90k;

use common::{decode_errors, probe_packets};

/// Frames per second of the test media; a keyframe starts every second.
const FPS: u64 = 24;
/// Seconds of media ffmpeg writes.
const SECONDS: u64 = 4;

/// A fragmented MP4 from ffmpeg: `ftyp moov (moof mdat)* mfra`.
fn fragmented_mp4(dir: &Path) -> Bytes {
    let path = dir.join("source.mp4");
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size=160x120:rate={FPS}"))
        .args(["-t", &SECONDS.to_string(), "-c:v", "libx264", "-g"])
        .arg(FPS.to_string())
        .args(["-keyint_min", &FPS.to_string(), "-sc_threshold", "0"])
        .args([
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ])
        .args(["-frag_duration", "500000", "-y"])
        .arg(&path)
        .output()
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Bytes::from(std::fs::read(&path).expect("read the MP4"))
}

/// The top-level boxes of `data`: (type, the whole box).
fn boxes(data: &Bytes) -> Vec<([u8; 4], Bytes)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && at + size <= data.len(), "box at {at}");
        out.push((
            data[at + 4..at + 8].try_into().unwrap(),
            data.slice(at..at + size),
        ));
        at += size;
    }
    out
}

/// Samples in a moof: the sample_count of its traf/trun (ISO/IEC 14496-12 §8.8.8).
fn samples(moof: &Bytes) -> u64 {
    let traf = boxes(&moof.slice(8..))
        .into_iter()
        .find(|(t, _)| t == b"traf")
        .expect("traf")
        .1;
    let trun = boxes(&traf.slice(8..))
        .into_iter()
        .find(|(t, _)| t == b"trun")
        .expect("trun")
        .1;
    u64::from(u32::from_be_bytes(trun[12..16].try_into().unwrap()))
}

/// The CMAF events of `mp4`: its initialization section, then a segment per keyframe
/// interval, a part per fragment. With `republish_at`, a new publisher takes over before
/// that part (its output starts with the same initialization section again).
struct Cut {
    init: Bytes,
    /// (moof+mdat, samples) per fragment.
    parts: Vec<(Bytes, u64)>,
}

fn cut(mp4: &Bytes) -> Cut {
    let all = boxes(mp4);
    let init_len: usize = all
        .iter()
        .take_while(|(t, _)| t != b"moof")
        .map(|(_, b)| b.len())
        .sum();
    let mut parts = Vec::new();
    let mut moof = None;
    for (kind, data) in all {
        match &kind {
            b"moof" => moof = Some(data),
            b"mdat" => {
                let moof = moof.take().expect("moof before mdat");
                let start = moof.as_ptr() as usize - mp4.as_ptr() as usize;
                let n = samples(&moof);
                parts.push((mp4.slice(start..start + moof.len() + data.len()), n));
            }
            _ => {}
        }
    }
    Cut {
        init: mp4.slice(..init_len),
        parts,
    }
}

fn apply(root: &MediaRoot, actions: &mut Vec<DiskAction>) {
    for action in actions.drain(..) {
        root.apply(action).expect("disk action");
    }
}

fn frames(playlist: &Path) -> usize {
    let errors = decode_errors(playlist);
    assert!(errors.is_empty(), "{}: {errors}", playlist.display());
    probe_packets(playlist).iter().filter(|p| p.video).count()
}

#[test]
fn cmaf_parts_become_segments_and_playlists_ffmpeg_plays() {
    let tmp = tempfile::tempdir().unwrap();
    let mp4 = fragmented_mp4(tmp.path());
    let Cut { init, parts } = cut(&mp4);
    assert_eq!(parts.len() as u64, SECONDS * 2, "0.5 s fragments");

    let root = MediaRoot::new(tmp.path().join("media"));
    let dir = StreamDir {
        app: "live".to_owned(),
        key: "k".to_owned(),
    };
    let stream_dir = tmp.path().join("media/live/k");
    let mut stream = LlStream::new(
        dir,
        HlsSettings {
            keep: true,
            ..HlsSettings::default()
        },
        Duration90k::from_millis(500),
        SystemTime::now(),
    );
    let now = Instant::now();
    let mut actions = Vec::new();
    let mut served_parts = Vec::new();
    let mut frames_seen = 0u64;
    let mut segment_frames = 0u64;
    for (i, (part, n)) in parts.iter().enumerate() {
        let mut events = Vec::new();
        if i == 4 {
            // A new publisher, mid-stream, with the same codec parameters.
            stream.begin_publisher(now, &mut actions);
        }
        if i == 0 || i == 4 {
            events.push(CmafEvent::Init(init.clone()));
        }
        let keyframe = frames_seen.is_multiple_of(FPS);
        if keyframe {
            events.push(CmafEvent::SegmentStart {
                discontinuity: false,
                independent: true,
            });
            segment_frames = 0;
        }
        events.push(CmafEvent::Part {
            data: part.clone(),
            duration: Duration90k(n * Duration90k::HZ / FPS),
            independent: keyframe,
        });
        frames_seen += n;
        segment_frames += n;
        if frames_seen.is_multiple_of(FPS) {
            events.push(CmafEvent::SegmentEnd {
                duration: Duration90k(segment_frames * Duration90k::HZ / FPS),
                target_duration: 1,
            });
        }
        stream.push(events, now, SystemTime::now(), &mut actions);
        apply(&root, &mut actions);
        // Every part the playlist lists is servable at once.
        let text = String::from_utf8(
            stream
                .playlist(false)
                .map_or_else(Vec::new, |p| p.text.to_vec()),
        )
        .unwrap();
        for uri in text.lines().filter_map(|l| l.split("URI=\"").nth(1)) {
            let uri = uri.split('"').next().unwrap();
            if uri.ends_with(".m4s") && !served_parts.iter().any(|(u, _)| u == uri) {
                if let Some(bytes) = stream.part(uri) {
                    served_parts.push((uri.to_owned(), bytes));
                } else {
                    assert!(stream.is_hinted(uri), "{uri} listed but not servable");
                }
            }
        }
    }
    assert_eq!(frames_seen, SECONDS * FPS);
    stream.end(now, &mut actions);
    apply(&root, &mut actions);

    // The playlist on disk: whole segments only, written from their parts.
    let on_disk = std::fs::read_to_string(stream_dir.join(PLAYLIST_NAME)).unwrap();
    assert!(on_disk.contains("#EXT-X-MAP:URI="), "{on_disk}");
    assert!(on_disk.contains("#EXT-X-DISCONTINUITY\n"), "{on_disk}");
    assert!(!on_disk.contains("#EXT-X-PART"), "{on_disk}");
    assert!(on_disk.ends_with("#EXT-X-ENDLIST\n"), "{on_disk}");
    assert_eq!(
        frames(&stream_dir.join(PLAYLIST_NAME)),
        (SECONDS * FPS) as usize
    );

    // The served Low-Latency playlist, with its parts beside it: players that ignore the
    // Low-Latency tags read it as well.
    let served = stream.playlist(false).expect("the final playlist");
    assert!(served.text.starts_with(b"#EXTM3U\n#EXT-X-VERSION:6\n"));
    for (uri, bytes) in &served_parts {
        std::fs::write(stream_dir.join(uri), bytes).unwrap();
    }
    let served_path = stream_dir.join("served.m3u8");
    std::fs::write(&served_path, &served.text).unwrap();
    assert_eq!(frames(&served_path), (SECONDS * FPS) as usize);
    assert!(!served_parts.is_empty());
}
