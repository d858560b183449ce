//! nginx-rtmp as a peer (tests/common/nginx.rs): the harness starts it on free ports, ffmpeg
//! publishes to it, and its HLS appears on disk and over HTTP; killed and restarted, it takes
//! a publish again on the same ports. The relay tests push to it the same way.
//!
//! scripts/test.sh installs nginx and libnginx-mod-rtmp. Without them these tests fail and
//! say so: they do not skip.

mod common;

use std::path::Path;
use std::process::Command;

use common::nginx::NginxRtmp;
use common::*;

/// ffmpeg encoding a 640x360 30 fps test pattern (a keyframe a second, as the 1 s
/// `hls_fragment` wants) and a sine tone to `url` for `seconds`, at real time.
fn publish_test_pattern(url: &str, seconds: u32) -> Publisher {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-re", "-f", "lavfi", "-i", "sine"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "30", "-c:a", "aac"])
        .args(["-t", &seconds.to_string(), "-f", "flv", url]);
    Publisher::spawn(command)
}

/// `key`'s playlist on disk, once it lists at least `segments` fragments.
fn wait_disk_playlist(nginx: &NginxRtmp, key: &str, segments: usize) -> Playlist {
    let path = nginx.hls_dir(key).join("index.m3u8");
    let mut playlist = None;
    let listed = wait_for(STREAM_TIMEOUT, || {
        playlist = std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.starts_with("#EXTM3U\n"))
            .map(|t| parse_playlist(&t));
        playlist
            .as_ref()
            .is_some_and(|p| p.entries.len() >= segments)
    });
    assert!(
        listed,
        "{} does not list {segments} segments: {playlist:?}\n{}",
        path.display(),
        nginx.logs()
    );
    playlist.unwrap()
}

/// Publishes 4 s of test pattern to `key` and checks nginx's HLS of it: a playlist with
/// segments on disk and over HTTP, segments holding H.264 and AAC.
fn publish_and_check_hls(nginx: &NginxRtmp, key: &str) {
    let mut publisher = publish_test_pattern(&nginx.rtmp_url("live", key), 4);
    let live = wait_disk_playlist(nginx, key, 1);
    assert!(live.target_duration >= 1, "{}", live.text);
    let status = publisher.wait(STREAM_TIMEOUT).expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg: {status}\n{}", publisher.logs());

    // 4 s at a fragment a second: the last fragment is closed when the publish ends.
    let playlist = wait_disk_playlist(nginx, key, 3);
    let total: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    assert!(total >= 2.5, "{total} s listed:\n{}", playlist.text);
    let dir = nginx.hls_dir(key);
    for entry in &playlist.entries {
        let path = dir.join(&entry.uri);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "{} missing or empty", path.display());
    }
    let streams = probe_streams(&dir.join(&playlist.entries[0].uri));
    assert!(
        streams.contains("codec_name=h264") && streams.contains("codec_name=aac"),
        "first segment: {streams}"
    );

    let r = get(&nginx.hls_url(key));
    assert_eq!(r.status, 200, "{}", nginx.hls_url(key));
    let served = parse_playlist(&r.text());
    assert!(!served.entries.is_empty(), "{}", served.text);
    let uri = &served.entries[0].uri;
    let base = nginx.hls_url(key);
    let segment_url = format!("{}/{uri}", base.rsplit_once('/').unwrap().0);
    let segment = get(&segment_url);
    assert_eq!(segment.status, 200, "{segment_url}");
    assert_eq!(
        segment.body,
        std::fs::read(dir.join(uri)).expect("segment on disk"),
        "{segment_url}"
    );
}

#[test]
fn nginx_makes_hls_of_a_publish() {
    let nginx = NginxRtmp::start();
    publish_and_check_hls(&nginx, "pattern");
}

#[test]
fn nginx_killed_and_restarted_takes_a_publish_on_the_same_ports() {
    let mut nginx = NginxRtmp::start();
    let (rtmp, http, pid) = (nginx.rtmp_port, nginx.http_port, nginx.pid());
    nginx.kill();
    assert!(!nginx.is_running());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "nginx {pid} still there after kill"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", rtmp)).is_err(),
        "RTMP port {rtmp} still accepts"
    );

    nginx.restart();
    assert!(nginx.is_running());
    assert_eq!((nginx.rtmp_port, nginx.http_port), (rtmp, http));
    assert_ne!(nginx.pid(), pid);
    publish_and_check_hls(&nginx, "again");
}
