//! The DVR window (`hls.dvr_window`) end to end: a real ffmpeg publishes a live test pattern,
//! and both live playlists (`index.m3u8`, `llhls.m3u8`) grow far past their live windows
//! while the server's segment memory does not; the oldest listed segments are served from
//! their files with the headers of any segment and decode, a listed file missing on disk
//! answers 404 (logged once), and names the windows never gave stay 404.

mod common;

use std::path::Path;

use common::*;

/// `hls.time` of these tests: one-second segments fill the playlists quickly.
const SEGMENT_SECONDS: u32 = 1;

/// Segments each playlist lists before the checks: far more than either live window
/// (three target durations for `index.m3u8`, seven segments for `llhls.m3u8`).
const LISTED: usize = 30;

/// A media playlist of `key` by file name, when served.
fn playlist(server: &ServerProcess, key: &str, file: &str) -> Option<Playlist> {
    let r = get(&server.http_url(&format!("/live/{key}/{file}")));
    (r.status == 200).then(|| parse_playlist(&r.text()))
}

/// Waits until both playlists list at least `count` segments; returns them.
fn wait_listed(server: &ServerProcess, key: &str, count: usize) -> (Playlist, Playlist) {
    let mut both = None;
    let listed = wait_for(STREAM_TIMEOUT + STREAM_TIMEOUT, || {
        let ts = playlist(server, key, "index.m3u8");
        let ll = playlist(server, key, "llhls.m3u8");
        both = ts.zip(ll);
        both.as_ref()
            .is_some_and(|(ts, ll)| ts.entries.len() >= count && ll.entries.len() >= count)
    });
    assert!(
        listed,
        "the playlists did not reach {count} segments ({:?}):\n{}",
        both.map(|(ts, ll)| (ts.entries.len(), ll.entries.len())),
        server.logs()
    );
    both.expect("both playlists")
}

/// Bytes of the listed segments' files.
fn listed_bytes(dir: &Path, playlist: &Playlist) -> u64 {
    playlist
        .entries
        .iter()
        .filter_map(|e| std::fs::metadata(dir.join(&e.uri)).ok())
        .map(|m| m.len())
        .sum()
}

fn segment_memory(server: &ServerProcess) -> u64 {
    server.api_server()["segment_memory_bytes"]
        .as_u64()
        .expect("segment_memory_bytes")
}

/// Whether `data` is MPEG-TS: whole 188-byte packets, each starting with the sync byte.
fn is_ts(data: &[u8]) -> bool {
    !data.is_empty() && data.len().is_multiple_of(188) && data.chunks(188).all(|p| p[0] == 0x47)
}

#[test]
fn dvr_window_lists_past_media_served_from_disk() {
    let time = SEGMENT_SECONDS.to_string();
    let server = ServerProcess::start(&["--hls-time", &time, "--hls-dvr-window", "120"]);
    let key = "dvr";
    // A light encoder: 320x240 with a keyframe every second (`hls.time`).
    let mut publisher = Publisher::pattern(
        &server.rtmp_url(key),
        "testsrc=size=320x240:rate=30",
        "ultrafast",
        30,
        180,
    );
    let dir = server.stream_dir(key);

    // Well past the live windows, the held memory of the window: taken once more segments
    // than the live window and its availability period hold are listed.
    let (ts, ll) = wait_listed(&server, key, LISTED / 2);
    let first = (
        ts.entries.len() + ll.entries.len(),
        segment_memory(&server),
        listed_bytes(&dir, &ts) + listed_bytes(&dir, &ll),
    );
    let (ts, ll) = wait_listed(&server, key, LISTED);
    assert!(publisher.is_running(), "{}", publisher.logs());
    let second = (
        ts.entries.len() + ll.entries.len(),
        segment_memory(&server),
        listed_bytes(&dir, &ts) + listed_bytes(&dir, &ll),
    );
    for p in [&ts, &ll] {
        assert_eq!(p.media_sequence, 0, "nothing left the playlist yet");
        assert!(!p.ended);
    }
    // The playlists list far more, the memory holds about the same: the live windows and
    // their availability periods, and the segments being written.
    assert!(second.0 >= first.0 * 3 / 2, "{first:?} {second:?}");
    assert!(
        second.1 < first.1 + first.1 / 2,
        "segment memory grew with the listing: {first:?} {second:?}"
    );
    assert!(
        second.1 < second.2 * 3 / 4,
        "segment memory {} is not below the listed segments' {} bytes",
        second.1,
        second.2
    );

    // The oldest listed segments, long out of memory: served from their files, with the
    // headers of any segment, and they decode.
    let origin = [("origin", "https://player.example")];
    let oldest_ts = &ts.entries[0].uri;
    let r = http(
        "GET",
        &server.http_url(&format!("/live/{key}/{oldest_ts}")),
        &origin,
    );
    assert_eq!(r.status, 200, "{oldest_ts}");
    assert_eq!(r.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(is_ts(&r.body), "{oldest_ts}: not MPEG-TS");
    assert_eq!(r.body, std::fs::read(dir.join(oldest_ts)).expect("TS file"));
    let copy = tempfile::tempdir().expect("temp dir");
    let copied = copy.path().join("oldest.ts");
    std::fs::write(&copied, &r.body).expect("write");
    assert_eq!(decode_errors(&copied), "", "{oldest_ts}");
    let head = http(
        "HEAD",
        &server.http_url(&format!("/live/{key}/{oldest_ts}")),
        &[],
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    let oldest_ll = &ll.entries[0].uri;
    let r = http(
        "GET",
        &server.http_url(&format!("/live/{key}/{oldest_ll}")),
        &origin,
    );
    assert_eq!(r.status, 200, "{oldest_ll}");
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(&r.body[4..8], b"moof", "{oldest_ll}: a CMAF fragment");
    let init = ll
        .text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("EXT-X-MAP");
    let init = get(&server.http_url(&format!("/live/{key}/{init}")));
    assert_eq!(init.status, 200);
    let joined = copy.path().join("oldest.mp4");
    std::fs::write(&joined, [init.body, r.body].concat()).expect("write");
    assert_eq!(decode_errors(&joined), "", "{oldest_ll}");

    // A listed file gone from disk: 404, logged once however often it is asked for. (Its
    // bytes are not in memory: else it would still be served.)
    let gone = &ts.entries[1].uri;
    std::fs::remove_file(dir.join(gone)).expect("remove a listed file");
    for _ in 0..3 {
        let r = get(&server.http_url(&format!("/live/{key}/{gone}")));
        assert_eq!(r.status, 404, "{gone}");
    }
    server.assert_logged_times("a listed segment's file cannot be read", 1);
    let missing = server
        .logs()
        .matches("a listed segment's file cannot be read")
        .count();
    assert_eq!(missing, 1, "logged once per stream");

    // Names the windows never gave stay 404, whatever the disk holds.
    let prefix = oldest_ts.rsplit_once('-').map(|(p, _)| p).expect("prefix");
    std::fs::write(dir.join("planted.ts"), [0x47u8; 188]).expect("plant a file");
    for bad in [
        format!("{prefix}-0{}", &oldest_ts[prefix.len() + 1..]),
        format!("{prefix}-999999.ts"),
        "planted.ts".to_owned(),
        "..%2f..%2fetc%2fpasswd".to_owned(),
        format!("{prefix}-1.ts%00"),
    ] {
        let r = get(&server.http_url(&format!("/live/{key}/{bad}")));
        assert_eq!(r.status, 404, "{bad}");
    }

    publisher.kill();
}
