//! Recording, end to end: real ffmpeg publishers, the real server binary, its recordings
//! read back over HTTP and from disk with ffprobe and ffmpeg. A recording must hold the
//! publish frame for frame, survive a reconnect within `record.gap`, a SIGKILL of the server
//! and a full disk with a playable file, be deleted oldest first by retention, and refuse
//! requests that name anything but a recording.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::stub::{Answer, StubService};
use common::*;
use serde_json::Value;

/// The operator token of the servers that take DELETE.
const TOKEN: &str = "s3cret";
const BEARER: &str = "Bearer s3cret";

/// `/api/recordings`' list.
fn recordings(server: &ServerProcess) -> Vec<Value> {
    let r = http(
        "GET",
        &server.http_url("/api/recordings"),
        &[("authorization", BEARER)],
    );
    assert_eq!(r.status, 200, "/api/recordings: {}", r.text());
    let body: Value = serde_json::from_slice(&r.body).expect("/api/recordings is JSON");
    body["recordings"]
        .as_array()
        .expect("a list of recordings")
        .clone()
}

/// The recordings of `stream`, oldest first.
fn recordings_of(server: &ServerProcess, stream: &str) -> Vec<Value> {
    recordings(server)
        .into_iter()
        .filter(|r| r["stream"] == stream)
        .collect()
}

/// Waits until `stream` has exactly `count` recordings, all in `state`, and returns them.
fn wait_recordings(server: &ServerProcess, stream: &str, count: usize, state: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let ok = wait_for(STREAM_TIMEOUT, || {
        seen = recordings_of(server, stream);
        seen.len() == count && seen.iter().all(|r| r["state"] == state)
    });
    assert!(
        ok,
        "{stream}: expected {count} recording(s) {state}, got {seen:#?}\n{}",
        server.logs()
    );
    seen
}

fn id_of(recording: &Value) -> String {
    recording["id"].as_str().expect("an id").to_string()
}

/// Downloads `/recordings/{id}.mp4` into `dir`; returns the file and the response.
fn download(server: &ServerProcess, id: &str, dir: &Path) -> (PathBuf, Response) {
    let r = get(&server.http_url(&format!("/recordings/{id}.mp4")));
    assert_eq!(r.status, 200, "download of {id}: {}", r.text());
    let path = dir.join(format!("{id}.mp4"));
    std::fs::write(&path, &r.body).expect("write the download");
    (path, r)
}

/// The recording's VOD playlist over HTTP.
fn vod_playlist(server: &ServerProcess, id: &str) -> Playlist {
    let r = get(&server.http_url(&format!("/recordings/{id}/index.m3u8")));
    assert_eq!(r.status, 200, "playlist of {id}: {}", r.text());
    parse_playlist(&r.text())
}

/// Asserts that `path` decodes without a single decoder complaint.
fn assert_decodes(path: &Path) {
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{}: {errors}", path.display());
}

/// Asserts that the video decode times of `packets` never go back.
fn assert_video_dts_monotonic(packets: &[Packet]) {
    let dts: Vec<f64> = packets
        .iter()
        .filter(|p| p.video)
        .map(|p| p.dts.or(p.pts).expect("timestamps"))
        .collect();
    assert!(!dts.is_empty(), "no video");
    for (i, w) in dts.windows(2).enumerate() {
        assert!(w[1] > w[0], "video DTS goes back at frame {}: {w:?}", i + 1);
    }
}

/// Asserts that no two video frames of `packets` are presented at the same time (30 fps: a
/// frame every 33 ms).
fn assert_video_pts_distinct(packets: &[Packet]) {
    let mut pts: Vec<f64> = packets
        .iter()
        .filter(|p| p.video)
        .map(|p| p.pts.expect("timestamps"))
        .collect();
    pts.sort_by(f64::total_cmp);
    for w in pts.windows(2) {
        assert!(w[1] - w[0] > 0.02, "two frames presented at once: {w:?}");
    }
}

fn count(packets: &[Packet], video: bool) -> usize {
    packets.iter().filter(|p| p.video == video).count()
}

/// Waits for a publisher to finish its file.
fn assert_finishes(publisher: &mut Publisher, server: &ServerProcess) {
    let status = publisher.wait(STREAM_TIMEOUT).expect("ffmpeg finishes");
    assert!(
        status.success(),
        "ffmpeg failed:\n{}\nserver:\n{}",
        publisher.logs(),
        server.logs()
    );
}

#[test]
fn records_a_publish_frame_for_frame() {
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "1"]);
    let source = testdata("flv/h264_aac.flv");
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("frames"), &[]);
    assert_finishes(&mut ffmpeg, &server);
    let recording = wait_recordings(&server, "frames", 1, "complete").remove(0);
    let id = id_of(&recording);

    // What the API says.
    assert_eq!(recording["app"], "live");
    assert!(id.starts_with("frames_") && id.ends_with('Z'), "{id}");
    let codecs: Vec<&str> = recording["codecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["avc1.64001E", "mp4a.40.2"], "{recording}");
    let duration = recording["duration_s"].as_f64().unwrap();
    assert!((duration - 10.0).abs() < 0.5, "10 s file: {recording}");
    assert!(recording["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(recording["ended_at"].as_str().unwrap().ends_with('Z'));
    assert!(recording.get("reason").is_none(), "{recording}");
    assert_eq!(
        recording["playlist"],
        format!("/recordings/{id}/index.m3u8").as_str()
    );
    assert_eq!(
        recording["download"],
        format!("/recordings/{id}.mp4").as_str()
    );
    let one = http(
        "GET",
        &server.http_url(&format!("/api/recordings/{id}")),
        &[("authorization", BEARER)],
    );
    assert_eq!(one.status, 200);
    let one: Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(one, recording);

    // The download: the source's frames, every one, with its timestamps and keyframes
    // (the file starts with a keyframe, so the recording's first segment starts at its
    // first frame).
    let dir = tempfile::tempdir().unwrap();
    let (file, response) = download(&server, &id, dir.path());
    let bytes = recording["bytes"].as_u64().unwrap();
    assert_eq!(file.metadata().unwrap().len(), bytes);
    assert_eq!(
        response.header("content-length"),
        Some(bytes.to_string().as_str())
    );
    assert_eq!(response.header("content-type"), Some("video/mp4"));
    assert_eq!(
        response.header("content-disposition"),
        Some(format!("attachment; filename=\"{id}.mp4\"").as_str())
    );
    assert_decodes(&file);
    assert_same_frames(&source, std::slice::from_ref(&file));
    let streams = probe_streams(&file);
    assert!(
        streams.contains("codec_name=h264") && streams.contains("width=640"),
        "{streams}"
    );
    assert!(streams.contains("codec_name=aac"), "{streams}");

    // The same bytes as media.mp4, which the playlist refers to.
    let media = get(&server.http_url(&format!("/recordings/{id}/media.mp4")));
    assert_eq!(media.status, 200);
    assert!(
        media.body == response.body,
        "media.mp4 differs from the download"
    );
    assert!(media.header("content-disposition").is_none());

    // The VOD playlist, served and on disk, plays through ffmpeg's HLS demuxer with every
    // frame of the file.
    let playlist = vod_playlist(&server, &id);
    assert!(
        playlist.text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        "{}",
        playlist.text
    );
    assert!(playlist.ended, "{}", playlist.text);
    assert!(playlist.entries.len() >= 4, "{}", playlist.text);
    assert!(
        playlist.entries.iter().all(|e| !e.discontinuity),
        "{}",
        playlist.text
    );
    let listed: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    assert!((listed - duration).abs() < 0.1, "{}", playlist.text);
    let on_disk = server
        .media_root
        .path()
        .join("recordings")
        .join(&id)
        .join("index.m3u8");
    assert_eq!(
        std::fs::read_to_string(&on_disk).expect("index.m3u8 in the recording's folder"),
        playlist.text
    );
    let url = server.http_url(&format!("/recordings/{id}/index.m3u8"));
    assert_decodes(Path::new(&url));
    let (from_hls, from_file) = (probe_packets(Path::new(&url)), probe_packets(&file));
    for video in [true, false] {
        assert_eq!(
            count(&from_hls, video),
            count(&from_file, video),
            "frames over HLS (video: {video})"
        );
    }

    // Range requests.
    let url = server.http_url(&format!("/recordings/{id}.mp4"));
    let head = http("GET", &url, &[("range", "bytes=0-99")]);
    assert_eq!(head.status, 206);
    assert_eq!(head.body, response.body[..100]);
    assert_eq!(
        head.header("content-range"),
        Some(format!("bytes 0-99/{bytes}").as_str())
    );
    assert_eq!(head.header("content-length"), Some("100"));
    let tail = http("GET", &url, &[("range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, response.body[response.body.len() - 10..]);
    assert_eq!(
        tail.header("content-range"),
        Some(format!("bytes {}-{}/{bytes}", bytes - 10, bytes - 1).as_str())
    );
    let beyond = http("GET", &url, &[("range", &format!("bytes={bytes}-"))]);
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{bytes}").as_str())
    );

    // The figures.
    assert_eq!(server.metric("rtmp_server_recordings"), Some(1.0));
    assert_eq!(server.metric("rtmp_server_recordings_active"), Some(0.0));
    assert_eq!(
        server.metric("rtmp_server_recordings_bytes"),
        Some(bytes as f64)
    );
    assert!(
        server
            .metric("rtmp_server_recording_bytes_written_total")
            .is_some_and(|b| b >= bytes as f64 - 4096.0),
        "{}",
        server.metrics()
    );
}

#[test]
fn a_reconnect_within_the_gap_continues_the_recording() {
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "10"]);
    // The same file published twice, 5 s each: the same encoder settings, so the same init
    // section, and each publish's timestamps start again at 0, as an encoder's do when it
    // reconnects.
    let source = testdata("flv/h264_aac.flv");
    for _ in 0..2 {
        let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("again"), &["-t", "5"]);
        assert_finishes(&mut ffmpeg, &server);
    }
    let recording = wait_recordings(&server, "again", 1, "complete").remove(0);
    let id = id_of(&recording);
    let playlist = vod_playlist(&server, &id);
    let discontinuities = playlist.text.matches("#EXT-X-DISCONTINUITY\n").count();
    assert_eq!(discontinuities, 1, "{}", playlist.text);
    let second = playlist
        .entries
        .iter()
        .position(|e| e.discontinuity)
        .unwrap();
    assert!(
        second >= 2 && playlist.entries.len() - second >= 2,
        "{}",
        playlist.text
    );
    let duration = recording["duration_s"].as_f64().unwrap();
    assert!(
        (9.0..11.0).contains(&duration),
        "two 5 s publishes: {recording}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (file, _) = download(&server, &id, dir.path());
    assert_decodes(&file);
    let packets = probe_packets(&file);
    assert_video_dts_monotonic(&packets);
    // The first publish was cut after its last decoded frame but before B-frames it would
    // have presented earlier: the second publish's frames are still presented after its.
    assert_video_pts_distinct(&packets);
    // Both publishes are in it: about 300 video frames at 30 fps.
    let frames = count(&packets, true);
    assert!((270..=310).contains(&frames), "{frames} video frames");
    assert_decodes(Path::new(
        &server.http_url(&format!("/recordings/{id}/index.m3u8")),
    ));
}

#[test]
fn a_publish_after_the_gap_starts_a_new_recording() {
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "1"]);
    let source = testdata("flv/h264_aac.flv");
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("twice"), &["-t", "4"]);
    assert_finishes(&mut ffmpeg, &server);
    // The first recording closes once its gap has passed.
    wait_recordings(&server, "twice", 1, "complete");
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("twice"), &["-t", "4"]);
    assert_finishes(&mut ffmpeg, &server);
    let both = wait_recordings(&server, "twice", 2, "complete");
    assert_ne!(both[0]["id"], both[1]["id"]);
    let dir = tempfile::tempdir().unwrap();
    for recording in &both {
        let id = id_of(recording);
        let playlist = vod_playlist(&server, &id);
        assert!(
            !playlist.text.contains("DISCONTINUITY"),
            "{}",
            playlist.text
        );
        let (file, _) = download(&server, &id, dir.path());
        assert_decodes(&file);
    }
}

#[test]
fn kill_9_mid_recording_leaves_a_playable_interrupted_recording() {
    // The recordings live in a folder of the test's own, so that a second server finds
    // what the first one left (each server has a media root of its own).
    let kept = tempfile::tempdir().unwrap();
    let record_path = kept.path().to_str().unwrap().to_string();
    let args = ["--record-enabled", "true", "--record-path", &record_path];
    let mut server = ServerProcess::start(&args);
    let mut encoder = Publisher::test_pattern(&server.rtmp_url("crash"), 60);
    let mut seen = Value::Null;
    let recorded = wait_for(STREAM_TIMEOUT, || {
        seen = recordings_of(&server, "crash").pop().unwrap_or(Value::Null);
        seen["duration_s"].as_f64().is_some_and(|d| d >= 4.0)
    });
    assert!(
        recorded,
        "no 4 s of recording: {seen}\n{}\n{}",
        server.logs(),
        encoder.logs()
    );
    assert_eq!(seen["state"], "recording");
    assert_eq!(server.metric("rtmp_server_recordings_active"), Some(1.0));
    let before = seen["duration_s"].as_f64().unwrap();
    let id = id_of(&seen);
    // While it is recorded, its playlist is an EVENT playlist without an end.
    let live = vod_playlist(&server, &id);
    assert!(
        live.text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n") && !live.ended,
        "{}",
        live.text
    );
    server.kill();
    encoder.kill();
    assert!(!server.is_running());

    let server = ServerProcess::start(&args);
    server.assert_logged("recording was interrupted");
    let list = recordings(&server);
    assert_eq!(list.len(), 1, "{list:#?}");
    let recording = &list[0];
    assert_eq!(recording["id"], id.as_str());
    assert_eq!(recording["state"], "interrupted", "{recording}");
    assert!(recording["reason"].is_string(), "{recording}");
    let duration = recording["duration_s"].as_f64().unwrap();
    assert!(duration >= before, "{duration} s after, {before} s before");

    let playlist = vod_playlist(&server, &id);
    assert!(playlist.ended, "{}", playlist.text);
    assert!(
        playlist.text.ends_with("#EXT-X-ENDLIST\n"),
        "{}",
        playlist.text
    );
    let listed: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    assert!((listed - duration).abs() < 0.1, "{}", playlist.text);
    let on_disk = kept.path().join(&id).join("index.m3u8");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), playlist.text);

    let dir = tempfile::tempdir().unwrap();
    let (file, _) = download(&server, &id, dir.path());
    assert_eq!(
        file.metadata().unwrap().len(),
        recording["bytes"].as_u64().unwrap()
    );
    // The media file was cut back to what the journal accounts for.
    assert_eq!(
        std::fs::metadata(kept.path().join(&id).join("media.mp4"))
            .unwrap()
            .len(),
        recording["bytes"].as_u64().unwrap()
    );
    assert_decodes(&file);
    let packets = probe_packets(&file);
    assert_video_dts_monotonic(&packets);
    // 30 fps: as many frames as the recording's duration holds, give or take a frame per
    // segment.
    let frames = count(&packets, true) as f64;
    let expected = duration * 30.0;
    assert!(
        (frames - expected).abs() <= playlist.entries.len() as f64 + 1.0,
        "{frames} video frames in {duration} s"
    );
    assert!(count(&packets, false) > 0, "no audio");
}

/// A small tmpfs, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`3m`), or `None` when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_closes_the_recording_as_incomplete_and_the_stream_goes_on() {
    let Some(disk) = Tmpfs::mount("3m") else {
        eprintln!("skipped: mounting a small tmpfs needs root (the CI runs the tests as root)");
        return;
    };
    let record_path = disk.path().to_str().unwrap().to_string();
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-path", &record_path]);
    // 3 Mbit/s of 720p, looped: 3 MB are full after about 8 s.
    let mut publisher = Publisher::start(
        &testdata("flv/h264_720p30_3m.flv"),
        &server.rtmp_url("full"),
        &["-stream_loop", "-1"],
    );
    assert!(
        server.wait_log("recording closed as incomplete", STREAM_TIMEOUT),
        "the disk did not fill:\n{}",
        server.logs()
    );
    assert!(
        wait_for(STREAM_TIMEOUT, || server
            .metric("rtmp_server_recording_errors_total{reason=\"write\"}")
            .is_some_and(|n| n >= 1.0)),
        "{}",
        server.metrics()
    );
    let recording = wait_recordings(&server, "full", 1, "incomplete").remove(0);
    assert!(
        recording["reason"]
            .as_str()
            .is_some_and(|r| r.contains("write failed")),
        "{recording}"
    );

    // The live stream (its media root is not on the full disk) goes on.
    let before = wait_playlist(&server, "full");
    assert_advances(&server, "full", &mut publisher, &before);
    assert!(server.api_stream("full").is_some());

    // What was recorded up to the failure plays: the media file was cut back to its last
    // whole fragment.
    let id = id_of(&recording);
    let bytes = recording["bytes"].as_u64().unwrap();
    assert!(bytes > 1_000_000, "{recording}");
    assert_eq!(
        std::fs::metadata(disk.path().join(&id).join("media.mp4"))
            .unwrap()
            .len(),
        bytes
    );
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = download(&server, &id, dir.path());
    assert_decodes(&file);
    assert_video_dts_monotonic(&probe_packets(&file));
    let playlist = vod_playlist(&server, &id);
    assert!(playlist.ended, "{}", playlist.text);
    assert!(!playlist.entries.is_empty(), "{}", playlist.text);
    // Still only the one recording: the stream is not recorded again until it publishes
    // again.
    assert_eq!(recordings_of(&server, "full").len(), 1);
    drop(publisher);

    // Its journal says how it ended: a server started on the same folder lists it the same.
    let mut server = server;
    assert!(server.terminate().success(), "{}", server.logs());
    let again = ServerProcess::start(&["--record-enabled", "true", "--record-path", &record_path]);
    let listed = recordings(&again);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["state"], "incomplete", "{:#?}", listed[0]);
    assert_eq!(listed[0]["bytes"], bytes, "{:#?}", listed[0]);
    drop(again);
}

#[test]
fn retention_removes_the_oldest_recordings_first() {
    let kept = tempfile::tempdir().unwrap();
    let record_path = kept.path().to_str().unwrap().to_string();
    let source = testdata("flv/h264_aac.flv");
    let publish = |server: &ServerProcess, key: &str| {
        let mut ffmpeg = Publisher::start(&source, &server.rtmp_url(key), &["-t", "3"]);
        assert_finishes(&mut ffmpeg, server);
        wait_recordings(server, key, 1, "complete").remove(0)
    };
    // A first recording measures what one publish of the file takes.
    let base = [
        "--record-enabled",
        "true",
        "--record-gap",
        "1",
        "--record-path",
        &record_path,
    ];
    let mut first_server = ServerProcess::start(&base);
    let first = publish(&first_server, "one");
    first_server.terminate();
    let size = first["bytes"].as_u64().unwrap();
    assert!(size > 100_000, "{first}");

    // Two such recordings fit, three do not.
    let max = (size * 5 / 2).to_string();
    let mut args = base.to_vec();
    args.extend(["--record-max-bytes", &max]);
    let server = ServerProcess::start(&args);
    assert_eq!(recordings(&server).len(), 1);
    let second = publish(&server, "two");
    assert!(
        recordings_of(&server, "one").len() == 1,
        "deleted too early"
    );
    let third = publish(&server, "three");

    let gone = wait_for(STREAM_TIMEOUT, || recordings_of(&server, "one").is_empty());
    assert!(gone, "the oldest was not deleted:\n{}", server.logs());
    let left: Vec<Value> = recordings(&server);
    let ids: Vec<&str> = left.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            second["id"].as_str().unwrap(),
            third["id"].as_str().unwrap()
        ]
    );
    assert!(!kept.path().join(id_of(&first)).exists());
    for r in &left {
        assert!(kept.path().join(id_of(r)).join("media.mp4").is_file());
    }
    assert!(
        wait_for(STREAM_TIMEOUT, || server
            .metric("rtmp_server_recordings_deleted_total{reason=\"max_bytes\"}")
            .is_some_and(|n| n >= 1.0)),
        "{}",
        server.metrics()
    );
    assert_eq!(server.metric("rtmp_server_recordings"), Some(2.0));
    server.assert_logged("recording deleted (record.max_bytes)");
    let gone = get(&server.http_url(&format!("/recordings/{}.mp4", id_of(&first))));
    assert_eq!(gone.status, 404);
}

#[test]
fn recording_requests_with_bad_input_get_the_right_errors() {
    // The recordings folder and the media root side by side in a folder of the test's own,
    // with a file that must survive next to each.
    let outer = tempfile::tempdir().unwrap();
    let record_dir = outer.path().join("recordings");
    let beside = outer.path().join("sentinel.txt");
    std::fs::write(&beside, "beside").unwrap();
    let media_root = tempfile::tempdir_in(outer.path()).unwrap();
    let inside = media_root.path().join("sentinel.txt");
    std::fs::write(&inside, "inside").unwrap();
    let server = ServerProcess::start_with_root(
        media_root,
        &[
            "--record-enabled",
            "true",
            "--record-gap",
            "1",
            "--record-path",
            record_dir.to_str().unwrap(),
            "--http-api-token",
            TOKEN,
        ],
    );
    let mut ffmpeg = Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmp_url("closed"),
        &["-t", "3"],
    );
    assert_finishes(&mut ffmpeg, &server);
    let id = id_of(&wait_recordings(&server, "closed", 1, "complete")[0]);

    let long = "a".repeat(300);
    let bad = [
        "..",
        "%2e%2e",
        "..%2f..%2fetc",
        "..%2fsentinel.txt",
        "%2e%2e%2f%2e%2e%2fsentinel.txt",
        ".hidden",
        "a%00b",
        "a%20b",
        "%3Cscript%3E",
        long.as_str(),
        "nosuch_20200101T000000.000Z",
        "closed_20200101T000000.000Z",
    ];
    let auth = [("authorization", BEARER)];
    for id in bad {
        for path in [
            format!("/recordings/{id}/index.m3u8"),
            format!("/recordings/{id}/media.mp4"),
            format!("/recordings/{id}.mp4"),
        ] {
            let r = get(&server.http_url(&path));
            assert_eq!(r.status, 404, "{path}: {}", r.text());
        }
        let path = format!("/api/recordings/{id}");
        assert_eq!(
            http("GET", &server.http_url(&path), &auth).status,
            404,
            "{path}"
        );
        assert_eq!(
            http("DELETE", &server.http_url(&path), &auth).status,
            404,
            "DELETE {path}"
        );
    }
    for file in [
        "other.txt",
        "journal.jsonl",
        "..%2f..%2fsentinel.txt",
        ".index.m3u8.tmp",
    ] {
        let path = format!("/recordings/{id}/{file}");
        assert_eq!(get(&server.http_url(&path)).status, 404, "{path}");
    }
    assert_eq!(
        get(&server.http_url(&format!("/recordings/{id}"))).status,
        404
    );

    // DELETE needs the token.
    let path = server.http_url(&format!("/api/recordings/{id}"));
    assert_eq!(http("DELETE", &path, &[]).status, 401);
    assert_eq!(
        http("DELETE", &path, &[("authorization", "Bearer wrong")]).status,
        401
    );
    assert_eq!(recordings_of(&server, "closed").len(), 1);
    assert!(record_dir.join(&id).join("media.mp4").is_file());

    // Not while recording.
    let _live = live_publisher(&server, "busy");
    let mut busy = Vec::new();
    let recording = wait_for(STREAM_TIMEOUT, || {
        busy = recordings_of(&server, "busy");
        busy.len() == 1 && busy[0]["state"] == "recording"
    });
    assert!(recording, "{busy:?}\n{}", server.logs());
    let busy_id = id_of(&busy[0]);
    let r = http(
        "DELETE",
        &server.http_url(&format!("/api/recordings/{busy_id}")),
        &auth,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(record_dir.join(&busy_id).join("media.mp4").is_file());

    // With the token, the closed recording goes.
    let r = http("DELETE", &path, &auth);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(!record_dir.join(&id).exists());
    assert!(recordings_of(&server, "closed").is_empty());
    assert_eq!(http("GET", &path, &auth).status, 404);
    assert_eq!(http("DELETE", &path, &auth).status, 404);
    assert_eq!(
        get(&server.http_url(&format!("/recordings/{id}.mp4"))).status,
        404
    );
    // `/metrics` asks for the token too.
    let metrics = http("GET", &server.http_url("/metrics"), &auth);
    assert_eq!(metrics.status, 200);
    let deleted = metric_value(
        &metrics.text(),
        "rtmp_server_recordings_deleted_total{reason=\"api\"}",
    );
    assert_eq!(deleted, Some(1.0), "{}", metrics.text());

    // Nothing outside the recordings folder changed.
    assert_eq!(std::fs::read_to_string(&beside).unwrap(), "beside");
    assert_eq!(std::fs::read_to_string(&inside).unwrap(), "inside");
    assert!(record_dir.is_dir());

    // Without an API token, nobody deletes.
    let open = ServerProcess::start(&["--record-enabled", "true"]);
    let r = http(
        "DELETE",
        &open.http_url(&format!("/api/recordings/{id}")),
        &auth,
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn on_record_done_posts_the_recording() {
    let stub = StubService::start();
    let server = ServerProcess::start(&[
        "--record-enabled",
        "true",
        "--record-gap",
        "1",
        "--hooks-on-record-done",
        &format!("{}/hooks/record_done", stub.url),
    ]);
    let mut ffmpeg = Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmp_url("hooked"),
        &["-t", "3"],
    );
    assert_finishes(&mut ffmpeg, &server);
    let recording = wait_recordings(&server, "hooked", 1, "complete").remove(0);
    assert!(
        wait_for(STREAM_TIMEOUT, || !stub.hooks().is_empty()),
        "no hook:\n{}",
        server.logs()
    );
    let hooks = stub.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let (name, body) = &hooks[0];
    assert_eq!(name, "record_done");
    assert_eq!(body["event"], "record_done", "{body}");
    assert_eq!(body["id"], recording["id"], "{body}");
    assert_eq!(body["state"], "complete", "{body}");
    assert_eq!(body["stream"], "hooked", "{body}");
    assert_eq!(body["bytes"], recording["bytes"], "{body}");
    assert_eq!(body["download"], recording["download"], "{body}");
}

#[test]
fn the_stream_service_can_ask_for_a_recording() {
    let stub = StubService::start();
    stub.set("wanted", Answer::json(200, r#"{"record": true}"#));
    stub.set("plain", Answer::json(200, "{}"));
    let server = ServerProcess::start(&["--stream-service", &stub.url, "--record-gap", "1"]);
    let source = testdata("flv/h264_aac.flv");
    let mut wanted = Publisher::start(&source, &server.rtmp_url("wanted"), &["-t", "5"]);
    let mut plain = Publisher::start(&source, &server.rtmp_url("plain"), &["-t", "5"]);
    // Both streams are let in and live.
    wait_playlist(&server, "wanted");
    wait_playlist(&server, "plain");
    assert_finishes(&mut wanted, &server);
    assert_finishes(&mut plain, &server);
    wait_recordings(&server, "wanted", 1, "complete");
    // Only the one the service asked for is recorded.
    let list = recordings(&server);
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["stream"], "wanted");
    assert_eq!(server.metric("rtmp_server_recordings"), Some(1.0));
}

#[test]
fn a_takeover_continues_the_recording() {
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "10"]);
    let source = testdata("flv/h264_aac.flv");
    let url = server.rtmp_url("taken");
    let mut first = Publisher::start(&source, &url, &["-t", "20"]);
    let recording = wait_for(STREAM_TIMEOUT, || {
        recordings_of(&server, "taken")
            .first()
            .is_some_and(|r| r["duration_s"].as_f64() >= Some(3.0))
    });
    assert!(
        recording,
        "the first publish is not recorded:\n{}",
        server.logs()
    );
    // The same key from another encoder takes the stream over (rtmp.takeover, on by
    // default): the recording goes on with it.
    let mut second = Publisher::start(&source, &url, &["-t", "4"]);
    assert_finishes(&mut second, &server);
    first.kill();
    let recording = wait_recordings(&server, "taken", 1, "complete").remove(0);
    let id = id_of(&recording);
    let playlist = vod_playlist(&server, &id);
    assert_eq!(
        playlist.text.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{}",
        playlist.text
    );
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = download(&server, &id, dir.path());
    assert_decodes(&file);
    let packets = probe_packets(&file);
    assert_video_dts_monotonic(&packets);
    assert_video_pts_distinct(&packets);
}

#[test]
fn max_age_removes_recordings_past_their_age() {
    let server = ServerProcess::start(&[
        "--record-enabled",
        "true",
        "--record-gap",
        "0",
        "--record-max-age",
        "2",
    ]);
    let source = testdata("flv/h264_aac.flv");
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("old"), &["-t", "3"]);
    assert_finishes(&mut ffmpeg, &server);
    let old = wait_recordings(&server, "old", 1, "complete").remove(0);
    // The next recording closes more than 2 s after the first: retention, which runs after
    // every close, finds the first past its age.
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("new"), &["-t", "4"]);
    assert_finishes(&mut ffmpeg, &server);
    wait_recordings(&server, "new", 1, "complete");
    let gone = wait_for(STREAM_TIMEOUT, || recordings_of(&server, "old").is_empty());
    assert!(
        gone,
        "{old} was kept past record.max_age:\n{}",
        server.logs()
    );
    assert_eq!(recordings_of(&server, "new").len(), 1);
    assert_eq!(
        server.metric("rtmp_server_recordings_deleted_total{reason=\"max_age\"}"),
        Some(1.0)
    );
}

#[test]
fn a_multitrack_publish_is_recorded_with_every_track() {
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "1"]);
    // Two video renditions and an audio track, as Enhanced RTMP multitrack (ffmpeg 9).
    let mut publisher = Publisher::ffmpeg9_live(
        &server.rtmp_url("abr"),
        "320x180",
        &[
            "-filter_complex",
            "[0:v]split=2[a][b];[b]scale=160:90[b2]",
            "-map",
            "[a]",
            "-map",
            "[b2]",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ],
        6,
    );
    assert_finishes(&mut publisher, &server);
    let recording = wait_recordings(&server, "abr", 1, "complete").remove(0);
    assert_eq!(
        recording["tracks"].as_array().map(Vec::len),
        Some(3),
        "{recording}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = download(&server, &id_of(&recording), dir.path());
    let streams = probe_streams(&file);
    let lines: Vec<&str> = streams.lines().collect();
    assert_eq!(lines.len(), 3, "{streams}");
    assert!(
        lines[0].contains("width=320") && lines[1].contains("width=160"),
        "{streams}"
    );
    assert!(lines[2].contains("codec_type=audio"), "{streams}");
    assert_decodes(&file);
    let packets = probe_packets(&file);
    assert!(count(&packets, true) >= 2 * 150, "both renditions' frames");
}
