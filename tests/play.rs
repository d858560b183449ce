//! RTMP playback with real players: ffprobe and ffmpeg (5.1, a legacy player) and ffmpeg 9
//! (Enhanced RTMP when asked) read a live stream over `rtmp://HOST/live/{key}` and get the
//! source's frames, from a keyframe; refusals say why; the players are counted and their
//! webhooks fire.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::stub::StubService;
use common::*;

/// A packet as ffprobe reports it with `-show_data_hash MD5`: video or audio, keyframe, and
/// the hash of its bytes.
#[derive(Clone, Debug, PartialEq)]
struct Hashed {
    video: bool,
    key: bool,
    md5: String,
}

/// The packets `ffprobe` reads from `input` (a file, or `seconds` of a live URL).
fn hashed_packets(ffprobe_args: &[&str], input: &str) -> (Vec<Hashed>, String) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "20000000"])
        .args(ffprobe_args)
        .args(["-show_data_hash", "MD5"])
        .args(["-show_entries", "packet=codec_type,flags,data_hash"])
        .args(["-of", "csv=p=0"])
        .arg(input)
        .output()
        .expect("ffprobe runs");
    let packets = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() == 3).then(|| Hashed {
                video: f[0] == "video",
                key: f[1].starts_with('K'),
                md5: f[2].to_string(),
            })
        })
        .collect();
    (packets, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts that `got`'s packets of one kind are a run of `source`'s, which a looping
/// publisher repeats: every frame arrived, in order, unchanged.
fn assert_run_of(source: &[Hashed], got: &[Hashed], video: bool) {
    let src: Vec<&str> = source
        .iter()
        .filter(|p| p.video == video)
        .map(|p| p.md5.as_str())
        .collect();
    let got: Vec<&str> = got
        .iter()
        .filter(|p| p.video == video)
        .map(|p| p.md5.as_str())
        .collect();
    let kind = if video { "video" } else { "audio" };
    assert!(got.len() > 10, "{kind}: only {} packets", got.len());
    let start = src
        .iter()
        .position(|h| *h == got[0])
        .unwrap_or_else(|| panic!("{kind}: first packet {} not in the source", got[0]));
    for (i, h) in got.iter().enumerate() {
        assert_eq!(
            *h,
            src[(start + i) % src.len()],
            "{kind} packet {i} differs from the source's"
        );
    }
}

fn source_packets(file: &Path) -> Vec<Hashed> {
    hashed_packets(&[], file.to_str().unwrap()).0
}

/// Debian's ffmpeg (a legacy player) decoding `seconds` of `url` to nothing.
fn ffmpeg_plays(url: &str, seconds: u32) -> std::process::Output {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
        ])
        .args(["-i", url, "-t", &seconds.to_string(), "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs")
}

/// Waits until `key` is live on `server` (its playlist exists).
fn wait_live(server: &ServerProcess, key: &str) {
    assert!(
        wait_for(STREAM_TIMEOUT, || get(
            &server.http_url(&format!("/live/{key}/index.m3u8"))
        )
        .status
            == 200),
        "stream {key} never went live: {}",
        server.logs()
    );
}

#[test]
fn ffprobe_and_ffmpeg_play_a_live_stream_frame_for_frame_from_a_keyframe() {
    let server = ServerProcess::start(&[]);
    let file = testdata("flv/h264_aac.flv");
    let _publisher = live_publisher(&server, "cam");
    wait_live(&server, "cam");
    let source = source_packets(&file);

    let asked = Instant::now();
    let (got, errors) = hashed_packets(&["-read_intervals", "%+3"], &server.rtmp_url("cam"));
    eprintln!(
        "ffprobe: {} packets of 3 s read in {:?}",
        got.len(),
        asked.elapsed()
    );
    assert!(!got.is_empty(), "ffprobe read nothing: {errors}");
    let first_video = got.iter().find(|p| p.video).expect("video");
    assert!(first_video.key, "the first video packet is a keyframe");
    assert_run_of(&source, &got, true);
    assert_run_of(&source, &got, false);

    // ffmpeg decodes what it plays.
    let out = ffmpeg_plays(&server.rtmp_url("cam"), 2);
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(START_TIMEOUT, || server
            .metric("rtmp_server_plays_total{protocol=\"rtmp\"}")
            == Some(2.0)),
        "{}",
        server.metrics()
    );
    server.assert_logged("play started");
}

#[test]
fn without_the_gop_cache_a_player_starts_at_the_next_keyframe() {
    let server = ServerProcess::start(&["--rtmp-gop-cache", "false"]);
    let _publisher = live_publisher(&server, "cam");
    wait_live(&server, "cam");
    let source = source_packets(&testdata("flv/h264_aac.flv"));
    let (got, errors) = hashed_packets(&["-read_intervals", "%+2"], &server.rtmp_url("cam"));
    assert!(!got.is_empty(), "ffprobe read nothing: {errors}");
    assert!(got.iter().find(|p| p.video).expect("video").key);
    assert_run_of(&source, &got, true);
}

#[test]
fn hevc_goes_to_players_that_announce_enhanced_rtmp_and_a_legacy_player_is_told_why_not() {
    let server = ServerProcess::start(&[]);
    let file = testdata("flv/hevc_aac.flv");
    // Debian's ffmpeg cannot read Enhanced FLV: ffmpeg 9 publishes it.
    let mut command = Command::new(ffmpeg9());
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(["-re", "-stream_loop", "-1", "-i"])
        .arg(&file)
        .args(["-c", "copy", "-f", "flv", &server.rtmp_url("hevc")]);
    let _publisher = Publisher::spawn(command);
    wait_live(&server, "hevc");
    // Debian's ffmpeg announces no Enhanced RTMP: NetStream.Play.Failed, with the reason.
    let legacy = ffmpeg_plays(&server.rtmp_url("hevc"), 1);
    let said = String::from_utf8_lossy(&legacy.stderr);
    assert!(!legacy.status.success());
    assert!(said.contains("HEVC needs Enhanced RTMP"), "{said}");

    // ffmpeg 9 announcing hvc1 and mp4a gets Enhanced RTMP, frame for frame.
    let dir = tempfile::tempdir().unwrap();
    // Debian's ffprobe reads HEVC in MP4, not in Enhanced FLV: what ffmpeg 9 plays, and the
    // source, are compared as MP4 (the same HEVC bytes per packet).
    let copy = dir.path().join("copy.mp4");
    let source = dir.path().join("source.mp4");
    let status = Command::new(ffmpeg9())
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&file)
        .args(["-c", "copy"])
        .arg(&source)
        .status()
        .expect("ffmpeg 9 runs");
    assert!(status.success());
    let out = Command::new(ffmpeg9())
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
        ])
        .args(["-rtmp_enhanced_codecs", "hvc1,mp4a"])
        .args(["-i", &server.rtmp_url("hevc"), "-t", "3", "-c", "copy"])
        .arg(&copy)
        .output()
        .expect("ffmpeg 9 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streams = probe_streams(&copy);
    assert!(streams.contains("codec_name=hevc"), "{streams}");
    let got = source_packets(&copy);
    assert!(got.iter().find(|p| p.video).expect("video").key);
    assert_run_of(&source_packets(&source), &got, true);
    server.assert_logged("HEVC needs Enhanced RTMP");
}

#[test]
fn play_refusals_say_why_and_leave_the_stream_alone() {
    let server = ServerProcess::start(&["--rtmp-play", "token", "--rtmp-play-token", "s3cret"]);
    let _publisher = live_publisher(&server, "cam");
    wait_live(&server, "cam");
    let play = |name: &str| {
        let out = ffmpeg_plays(&server.rtmp_url(name), 1);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, said) = play("cam");
    assert!(!ok);
    assert!(said.contains("needs a valid ?token="), "{said}");
    let (ok, said) = play("cam?token=wrong");
    assert!(!ok, "{said}");
    let (ok, said) = play("cam?token=s3cret");
    assert!(ok, "{said}");
    // A stream that is not live (never published, or not yet).
    let (ok, said) = play("nobody?token=s3cret");
    assert!(!ok);
    assert!(said.contains("no live stream"), "{said}");
    assert_eq!(
        server.metric("rtmp_server_plays_refused_total{reason=\"token\"}"),
        Some(2.0)
    );
    assert_eq!(
        server.metric("rtmp_server_plays_refused_total{reason=\"not_live\"}"),
        Some(1.0)
    );
    // The stream went on throughout.
    assert_eq!(server.api_server()["streams"], 1, "{}", server.logs());

    let off = ServerProcess::start(&["--rtmp-play", "off"]);
    let _publisher = live_publisher(&off, "cam");
    wait_live(&off, "cam");
    let out = ffmpeg_plays(&off.rtmp_url("cam"), 1);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("playback is switched off"), "{said}");
}

#[test]
fn players_are_counted_and_their_webhooks_fire() {
    let stub = StubService::start();
    let on_play = format!("{}/hooks/play", stub.url);
    let on_stop = format!("{}/hooks/stop", stub.url);
    let server = ServerProcess::start(&["--hooks-on-play", &on_play, "--hooks-on-stop", &on_stop]);
    let _publisher = live_publisher(&server, "cam");
    wait_live(&server, "cam");
    let mut player = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
        ])
        .args(["-i", &server.rtmp_url("cam"), "-f", "null", "-"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ffmpeg runs");
    let streams = || -> serde_json::Value {
        serde_json::from_slice(&get(&server.http_url("/api/streams")).body).expect("JSON")
    };
    assert!(
        wait_for(
            STREAM_TIMEOUT,
            || streams()["streams"][0]["players"]["rtmp"] == 1
        ),
        "{}",
        streams()
    );
    assert_eq!(
        server.metric("rtmp_server_players{protocol=\"rtmp\"}"),
        Some(1.0)
    );
    player.kill().unwrap();
    player.wait().unwrap();
    assert!(
        wait_for(
            STREAM_TIMEOUT,
            || streams()["streams"][0]["players"]["rtmp"] == 0
        ),
        "{}",
        streams()
    );
    assert!(wait_for(STREAM_TIMEOUT, || stub.hooks().len() >= 2));
    let hooks = stub.hooks();
    let (name, play) = &hooks[0];
    assert_eq!(name, "play");
    assert_eq!(play["event"], "play");
    assert_eq!(play["name"], "cam");
    assert_eq!(play["protocol"], "rtmp");
    let (name, stop) = &hooks[1];
    assert_eq!(name, "stop");
    assert!(stop["bytes"].as_u64().unwrap() > 0, "{stop}");
    assert!(stop["stopped_at"].is_string());
    assert_eq!(
        server.metric("rtmp_server_players{protocol=\"rtmp\"}"),
        Some(0.0)
    );
}

#[test]
fn a_player_over_rtmps_gets_the_stream_frame_for_frame() {
    use common::tls::{CertFiles, Pair, strs};
    let files = CertFiles::new(&Pair::new());
    let args = files.with(&["--rtmp-tls-port", "0"]);
    let server = ServerProcess::start(&strs(&args));
    let _publisher = live_publisher(&server, "cam");
    wait_live(&server, "cam");
    // ffprobe over TLS (Debian's GnuTLS, which verifies nothing unless told to).
    let (got, errors) = hashed_packets(&["-read_intervals", "%+3"], &server.rtmps_url("cam"));
    assert!(!got.is_empty(), "ffprobe read nothing over RTMPS: {errors}");
    assert!(got.iter().find(|p| p.video).expect("video").key);
    let source = source_packets(&testdata("flv/h264_aac.flv"));
    assert_run_of(&source, &got, true);
    assert_run_of(&source, &got, false);
}
