//! A real browser plays the server's live HLS: hls.js 1.7 in Debian's headless Chromium,
//! driven by `tests/browser/play.mjs`, while a real ffmpeg publishes a live encode; and its
//! HTTP-FLV and WebSocket-FLV with mpegts.js, from a page of another origin; and the
//! server's own dashboard (`tests/browser/dashboard.mjs`).
//!
//! Each case names the playlist a viewer loads and hls.js's settings; the player must start,
//! play for [`PLAY_SECONDS`] with no stall and no fatal error, with decoded frames and the
//! position advancing; a DVR case seeks back 36 s first and plays from there. What it
//! needs is installed when missing: `npm ci` in tests/browser
//! (hls.js, mpegts.js and playwright-core, pinned by package-lock.json; nothing downloads a
//! browser) and Debian's `chromium` (as root, with apt-get).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Publisher, STREAM_TIMEOUT, ServerProcess, get, http, wait_for};
use rustix::process::{Pid, Signal, kill_process_group};
use serde_json::Value;

/// How long the player plays once it shows its first frame: long enough for hls.js to
/// reload the playlist and fetch segments many times over (a segment every 2 s).
const PLAY_SECONDS: u32 = 12;
/// The most the publisher runs: the wait for the first segments, the browser's start and
/// the playing time, with room to spare on a busy machine. The test stops it when done.
const PUBLISH_SECONDS: u32 = 180;
/// `hls.dvr_window` of the DVR case.
const DVR_WINDOW: u32 = 120;
/// How far behind the live edge the DVR case seeks: the stream must have run that long (a
/// shorter `hls.time` would not shorten it). 36 s is 18 segments, well past the 7 or so the
/// server holds in memory, and short of a minute of waiting.
const DVR_SEEK_BACK: u32 = 36;
/// How long the DVR case plays after its seek: a few segments from the DVR window's disk
/// files, kept short since reaching the seek takes over half a minute already.
const DVR_PLAY_SECONDS: u32 = 10;
/// How long the player may take to show its first frame (browser start excluded).
const FIRST_FRAME_SECONDS: u32 = 60;
/// How long the player process may run in all before the test gives up on it.
const PLAYER_TIMEOUT: Duration = Duration::from_secs(240);
/// Segments the playlist lists before the viewer joins: a full window of the default
/// `hls.list_size`, as for a viewer joining a stream that runs.
const SEGMENTS_BEFORE_JOIN: usize = 3;
/// How long a player asked to stop gets to close its browser before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const CHROMIUM: &str = "/usr/bin/chromium";

/// The playing cases take turns: each runs a live 720p encode and a browser decoding it,
/// and two at once on a 2-core machine fall behind real time (the position then advances
/// slower than the clock, which the player reports as a failure).
static ONE_PLAYER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a viewer loads and how hls.js is set up.
struct Case {
    /// The playlist under `/live/{key}/`.
    playlist: &'static str,
    /// hls.js `lowLatencyMode`.
    low_latency: bool,
    /// What the encoder publishes.
    source: Source,
    /// Published over RTMPS and played over HTTPS (HTTP/2) with a test certificate.
    tls: bool,
    /// A DVR window ([`DVR_WINDOW`]): once the player can, it seeks this many seconds
    /// behind the live edge and plays [`DVR_PLAY_SECONDS`] from there.
    seek_back: Option<u32>,
}

impl Case {
    /// How long the player plays: after its seek, for a DVR case.
    fn play_seconds(&self) -> u32 {
        match self.seek_back {
            Some(_) => DVR_PLAY_SECONDS,
            None => PLAY_SECONDS,
        }
    }
}

/// The live encode a case plays.
#[derive(Clone, Copy)]
enum Source {
    /// H.264 and AAC, 720p30 ([`Publisher::test_pattern`]).
    H264Aac,
    /// AV1 (libsvtav1) and Opus (libopus) from ffmpeg 9, 640x360 at 30 fps with a keyframe
    /// every 2 s (the default `hls.time`).
    Av1Opus,
}

impl Source {
    fn publish(self, url: &str) -> Publisher {
        match self {
            Source::H264Aac => Publisher::test_pattern(url, PUBLISH_SECONDS),
            Source::Av1Opus => Publisher::ffmpeg9_live(
                url,
                "640x360",
                &[
                    "-c:v",
                    "libsvtav1",
                    "-preset",
                    "12",
                    "-b:v",
                    "500k",
                    "-g",
                    "60",
                    "-svtav1-params",
                    "scd=0",
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "64k",
                ],
                PUBLISH_SECONDS,
            ),
        }
    }
}

#[test]
fn hls_js_plays_classic_hls() {
    plays(Case {
        playlist: "index.m3u8",
        low_latency: false,
        source: Source::H264Aac,
        tls: false,
        seek_back: None,
    });
}

/// hls.js in low-latency mode on `llhls.m3u8`: it must play as classic HLS does, and do so
/// the low-latency way, loading parts and reloading the playlist with blocking requests.
#[test]
fn hls_js_plays_low_latency_hls() {
    plays(Case {
        playlist: "llhls.m3u8",
        low_latency: true,
        source: Source::H264Aac,
        tls: false,
        seek_back: None,
    });
}

/// Low-Latency HLS over HTTPS, as Safari needs it (HTTP/2), from a stream published over
/// RTMPS: Chromium accepts the test's certificate by its public key's hash, and must play
/// as over plain HTTP, over HTTP/2.
#[test]
fn hls_js_plays_low_latency_hls_over_https_and_http2() {
    plays(Case {
        playlist: "llhls.m3u8",
        low_latency: true,
        source: Source::H264Aac,
        tls: true,
        seek_back: None,
    });
}

/// A DVR window: with `hls.dvr_window` 120, a viewer joins `index.m3u8` once it lists more
/// than [`DVR_SEEK_BACK`] of media, and hls.js seeks that far behind the live edge, into segments the
/// server no longer holds in memory (served from their files), and plays on from there.
#[test]
fn hls_js_seeks_back_in_a_dvr_window() {
    plays(Case {
        playlist: "index.m3u8",
        low_latency: false,
        source: Source::H264Aac,
        tls: false,
        seek_back: Some(DVR_SEEK_BACK),
    });
}

/// AV1 video and Opus audio (Enhanced RTMP from ffmpeg 9), which only the CMAF output
/// carries: hls.js in low-latency mode plays `llhls.m3u8` as it plays H.264 and AAC.
#[test]
fn hls_js_plays_av1_opus_low_latency_hls() {
    plays(Case {
        playlist: "llhls.m3u8",
        low_latency: true,
        source: Source::Av1Opus,
        tls: false,
        seek_back: None,
    });
}

/// The renditions of a multitrack publish (ffmpeg 9: three H.264 video tracks and AAC).
const LEVELS: [(u32, u32); 3] = [(640, 360), (480, 270), (320, 180)];
/// How long the player plays each level after switching to it.
const LEVEL_SECONDS: u32 = 4;

/// A multitrack publish played as adaptive bitrate: hls.js in low-latency mode loads the
/// multivariant `llhls.m3u8` with its three levels, is switched to each in turn with
/// `hls.currentLevel = n` (`tests/browser/levels.mjs`), and must show that level's picture
/// and keep playing after every switch, with no stall and no fatal error.
#[test]
fn hls_js_switches_the_levels_of_a_multitrack_stream() {
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let server = ServerProcess::start(&[]);
    let key = "levels";
    let (big, medium, small) = (LEVELS[0], LEVELS[1], LEVELS[2]);
    let split = format!(
        "[0:v]split=3[a][b][c];[b]scale={}:{}[b2];[c]scale={}:{}[c2]",
        medium.0, medium.1, small.0, small.1
    );
    let publisher = Publisher::ffmpeg9_live(
        &server.rtmp_url(key),
        &format!("{}x{}", big.0, big.1),
        &[
            "-filter_complex",
            &split,
            "-map",
            "[a]",
            "-map",
            "[b2]",
            "-map",
            "[c2]",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "60",
            "-keyint_min",
            "60",
            "-sc_threshold",
            "0",
            "-b:v:0",
            "800k",
            "-b:v:1",
            "400k",
            "-b:v:2",
            "200k",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ],
        PUBLISH_SECONDS,
    );
    // Every rendition lists a full window before the viewer joins.
    let listed = wait_for(STREAM_TIMEOUT, || {
        get(&server.http_url(&format!("/live/{key}/llhls.m3u8"))).status == 200
            && ["v0", "v1", "v2", "a0"].iter().all(|r| {
                let p = get(&server.http_url(&format!("/live/{key}/{r}/llhls.m3u8")));
                p.status == 200 && p.text().matches("#EXTINF").count() >= SEGMENTS_BEFORE_JOIN
            })
    });
    assert!(
        listed,
        "the renditions of {key} did not list {SEGMENTS_BEFORE_JOIN} segments:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );

    let url = server.http_url(&format!("/live/{key}/llhls.m3u8"));
    let mut player = Player::spawn(
        "levels.mjs",
        &[
            "--url",
            &url,
            "--levels",
            &LEVELS.len().to_string(),
            "--settle",
            &LEVEL_SECONDS.to_string(),
            "--start-timeout",
            &FIRST_FRAME_SECONDS.to_string(),
            "--low-latency",
        ],
    );
    let result = player.outcome("levels.mjs", || {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    });
    let levels = result["levels"].as_array().expect("levels");
    assert_eq!(levels.len(), LEVELS.len(), "{result}");
    for (width, height) in LEVELS {
        assert!(
            levels
                .iter()
                .any(|l| l["width"] == width && l["height"] == height),
            "no {width}x{height} level: {result}"
        );
    }
    let switches = result["switches"].as_array().expect("switches");
    assert_eq!(switches.len(), LEVELS.len(), "{result}");
    for s in switches {
        assert_eq!(s["level_switched"], true, "{result}");
        assert_eq!(s["current_level"], s["level"], "{result}");
        assert_eq!(s["picture"], s["want"], "{result}");
        let advanced = s["advanced_s"].as_f64().expect("advanced_s");
        assert!(
            advanced >= f64::from(LEVEL_SECONDS) / 2.0,
            "the position moved {advanced} s after a switch: {result}"
        );
    }
    assert_eq!(result["fatal"], Value::Array(vec![]), "{result}");
    assert_eq!(result["waiting"], Value::Array(vec![]), "{result}");
    assert_eq!(player.status_code(), Some(0), "{result}");
}

/// The stamp row `scripts/stamp_publisher.py` draws reads back with the page's decoder
/// (`tests/browser/page/stamp.js`), and a damaged row does not read.
#[test]
fn glass_to_glass_stamps_read_back() {
    ensure_node_modules();
    let dir = tempfile::tempdir().expect("temp dir");
    let frame = dir.path().join("frame.gray");
    let stamp: u64 = 1_765_000_000_123;
    let status = Command::new("python3")
        .arg(repo().join("scripts/stamp_publisher.py"))
        .arg("--frame-out")
        .arg(&frame)
        .args(["--stamp", &stamp.to_string()])
        .status()
        .expect("python3 runs");
    assert!(status.success(), "stamp_publisher.py --frame-out");
    let read = stamp_check(&frame);
    assert_eq!(read["stamp"], stamp % (1 << 28), "{read}");

    // One block (the 11th of the row at y = 32..64, 32 px wide) turned mid-gray.
    let mut pixels = std::fs::read(&frame).expect("frame");
    for y in 32..64 {
        pixels[y * 1280 + 320..y * 1280 + 352].fill(128);
    }
    std::fs::write(&frame, &pixels).expect("write frame");
    let read = stamp_check(&frame);
    assert_eq!(read["stamp"], Value::Null, "{read}");
    assert_eq!(read["reason"], "ambiguous block", "{read}");
}

fn stamp_check(frame: &Path) -> Value {
    let out = Command::new("node")
        .arg("stamp-check.mjs")
        .arg(frame)
        .current_dir(browser_dir())
        .output()
        .expect("node runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stamp-check.mjs printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Publishes a live encode, waits for a full playlist, plays it in the browser and checks
/// what the player saw.
fn plays(case: Case) {
    // A case that failed while holding the turn leaves nothing behind for the next.
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let certificate = case.tls.then(TestCertificate::new);
    let dvr_window = DVR_WINDOW.to_string();
    let dvr: &[&str] = match case.seek_back {
        Some(_) => &["--hls-dvr-window", &dvr_window],
        None => &[],
    };
    let server = match &certificate {
        None => ServerProcess::start(dvr),
        Some(c) => ServerProcess::start(&[
            "--rtmp-tls-port",
            "0",
            "--http-tls-port",
            "0",
            "--tls-cert",
            c.cert.to_str().expect("UTF-8 path"),
            "--tls-key",
            c.key.to_str().expect("UTF-8 path"),
        ]),
    };
    let key = "browser";
    let publisher = case.source.publish(&match case.tls {
        false => server.rtmp_url(key),
        true => server.rtmps_url(key),
    });
    // The test itself asks over plain HTTP; the player, over HTTPS for a TLS case.
    let path = format!("/live/{key}/{}", case.playlist);
    let polled = server.http_url(&path);
    let url = match case.tls {
        false => polled.clone(),
        true => server.https_url(&path),
    };
    let listed = wait_for(STREAM_TIMEOUT, || {
        let r = get(&polled);
        r.status == 200 && r.text().matches("#EXTINF").count() >= SEGMENTS_BEFORE_JOIN
    });
    assert!(
        listed,
        "{url} did not list {SEGMENTS_BEFORE_JOIN} segments:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );
    if let Some(back) = case.seek_back {
        // The viewer joins once the DVR window lists more than it seeks back (and two
        // segments), so the segments it seeks into are ones it never loaded: fetched
        // after the seek, from the server's disk.
        let wanted = f64::from(back + 4);
        let mut media = 0.0;
        let timeout = Duration::from_secs(u64::from(back) * 3);
        let enough = wait_for(timeout, || {
            let r = get(&polled);
            media = if r.status == 200 {
                media_listed(&r.text())
            } else {
                0.0
            };
            media >= wanted
        });
        assert!(
            enough,
            "{url} listed {media} s of media, not {wanted} s:\n{}\n{}",
            server.logs(),
            publisher.logs()
        );
    }

    let spki = certificate.as_ref().map(|c| c.spki_sha256.as_str());
    let mut player = Player::start(&url, &case, spki);
    let result = player.outcome("play.mjs", || {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    });
    assert_eq!(result["started"], true, "{result}");
    assert_eq!(
        result["config"]["lowLatencyMode"], case.low_latency,
        "{result}"
    );
    assert_eq!(result["playlist"]["live"], true, "{result}");
    let play_seconds = case.play_seconds();
    let played = result["played_s"].as_f64().expect("played_s");
    assert!(
        played >= f64::from(play_seconds),
        "played {played} s: {result}"
    );
    assert_eq!(result["stalls"], 0, "{result}");
    assert_eq!(result["fatal"], Value::Array(vec![]), "{result}");
    let advanced = result["frames"]["advanced"].as_u64().expect("frames");
    assert!(advanced > 0, "no frame decoded while playing: {result}");
    let position = result["position_advanced_s"].as_f64().expect("position");
    assert!(
        position >= f64::from(play_seconds) / 2.0,
        "the position moved {position} s in {played} s: {result}"
    );
    if let Some(back) = case.seek_back {
        let seek = &result["seek"];
        let target = seek["target"].as_f64().expect("seek target");
        let end = seek["seekable_end"].as_f64().expect("seekable end");
        assert!((end - target - f64::from(back)).abs() < 1.0, "{result}");
        assert!(
            seek["seeked_t"].is_number(),
            "the seek did not complete: {result}"
        );
        // The segment at the target lies far behind the newest one listed: 2 s segments, so
        // about 18 back, where the server holds only the live window's 3 and the few in
        // their availability period after it (about 8 s) in memory.
        let live_end = seek["live_end_sn"].as_u64().expect("live end");
        let at = seek["target_frag"]["sn"].as_u64().expect("target fragment");
        assert!(
            at + 12 <= live_end,
            "the seek target's segment {at} is not far behind the live edge {live_end}: {result}"
        );
    }
    assert_eq!(player.status_code(), Some(0), "{result}");
    if case.tls {
        assert!(
            server.logs().contains("HTTPS connection over HTTP/2"),
            "Chromium did not use HTTP/2:\n{}",
            server.logs()
        );
        assert!(
            server.logs().contains("rtmps{peer="),
            "not published over RTMPS"
        );
    }
    if case.low_latency {
        let playlist = &result["playlist"];
        assert_eq!(playlist["can_block_reload"], true, "{result}");
        assert!(
            playlist["parts"].as_u64() > Some(0),
            "no part listed: {result}"
        );
        let ll = &result["ll"];
        assert!(
            ll["parts_loaded"].as_u64() > Some(0),
            "no part loaded: {result}"
        );
        assert!(
            ll["blocking_reloads"].as_u64() > Some(0),
            "no blocking reload: {result}"
        );
    }
}

/// How long the bucket case plays: a few playlist reloads and segments from the bucket.
const BUCKET_PLAY_SECONDS: u32 = 10;

/// Object storage as the origin: the server uploads to s3s-fs, and hls.js plays the
/// bucket's `index.m3u8` through a small front that signs for it and adds CORS, as a CDN
/// would; it must play as from the node, with no stall and no fatal error.
#[test]
fn hls_js_plays_from_the_bucket() {
    use common::s3::{BucketProxy, S3Server};
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let s3 = S3Server::start();
    let args = s3.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args);
    let key = "bucket";
    let publisher = Source::H264Aac.publish(&server.rtmp_url(key));
    let proxy = BucketProxy::start(&s3);
    let url = proxy.url(&format!("live/{key}/index.m3u8"));
    let listed = wait_for(STREAM_TIMEOUT, || {
        let r = get(&url);
        r.status == 200 && r.text().matches("#EXTINF").count() >= SEGMENTS_BEFORE_JOIN
    });
    assert!(
        listed,
        "{url} did not list {SEGMENTS_BEFORE_JOIN} segments:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );
    let seconds = BUCKET_PLAY_SECONDS.to_string();
    let start_timeout = FIRST_FRAME_SECONDS.to_string();
    let mut player = Player::spawn(
        "play.mjs",
        &[
            "--url",
            &url,
            "--seconds",
            &seconds,
            "--start-timeout",
            &start_timeout,
        ],
    );
    let result = player.outcome("play.mjs", || format!("server:\n{}", server.logs()));
    assert_eq!(result["started"], true, "{result}");
    assert_eq!(result["playlist"]["live"], true, "{result}");
    let played = result["played_s"].as_f64().expect("played_s");
    assert!(
        played >= f64::from(BUCKET_PLAY_SECONDS),
        "played {played} s: {result}"
    );
    assert_eq!(result["stalls"], 0, "{result}");
    assert_eq!(result["fatal"], Value::Array(vec![]), "{result}");
    assert!(result["frames"]["advanced"].as_u64() > Some(0), "{result}");
    assert_eq!(player.status_code(), Some(0), "{result}");
}

/// Seconds of the publish the recording case records.
const RECORDED_SECONDS: u32 = 12;

/// hls.js plays a recording's VOD playlist (byte ranges of one MP4 file, cross-origin with
/// range requests) from its start to its end.
#[test]
fn hls_js_plays_a_recording_from_start_to_end() {
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let server = ServerProcess::start(&["--record-enabled", "true", "--record-gap", "1"]);
    let mut publisher = Publisher::test_pattern(&server.rtmp_url("rec"), RECORDED_SECONDS);
    let finished =
        publisher.wait(STREAM_TIMEOUT + Duration::from_secs(u64::from(RECORDED_SECONDS)));
    assert!(
        finished.is_some(),
        "the publish did not end:\n{}",
        publisher.logs()
    );
    let mut recording = Value::Null;
    let closed = wait_for(STREAM_TIMEOUT, || {
        let list: Value = serde_json::from_str(&get(&server.http_url("/api/recordings")).text())
            .unwrap_or_default();
        recording = list["recordings"][0].clone();
        recording["state"] == "complete"
    });
    assert!(
        closed,
        "no complete recording: {recording}\n{}",
        server.logs()
    );
    let duration = recording["duration_s"].as_f64().expect("duration_s");
    assert!(
        duration >= f64::from(RECORDED_SECONDS) - 3.0,
        "recorded {duration} s of {RECORDED_SECONDS}: {recording}"
    );
    let url = server.http_url(recording["playlist"].as_str().expect("playlist"));
    let seconds = (RECORDED_SECONDS * 3).to_string();
    let start_timeout = FIRST_FRAME_SECONDS.to_string();
    let mut player = Player::spawn(
        "play.mjs",
        &[
            "--url",
            &url,
            "--vod",
            "--seconds",
            &seconds,
            "--start-timeout",
            &start_timeout,
        ],
    );
    assert!(
        wait_for(PLAYER_TIMEOUT, || player.exited()),
        "the player ran past {PLAYER_TIMEOUT:?}\n{}",
        player.stderr()
    );
    let result = player
        .result()
        .unwrap_or_else(|| panic!("no result line: {:?}\n{}", player.stdout(), player.stderr()));
    assert_eq!(
        result["failures"],
        Value::Array(vec![]),
        "{result}\n{}",
        player.stderr()
    );
    assert_eq!(result["playlist"]["live"], false, "{result}");
    assert_eq!(result["stalls"], 0, "{result}");
    let position = result["position"].as_f64().expect("position");
    assert!(
        (position - duration).abs() <= 1.5,
        "played to {position} s of a {duration} s recording: {result}"
    );
    assert!(
        !result["ended"].as_array().expect("ended").is_empty(),
        "{result}"
    );
    assert_eq!(player.status_code(), Some(0), "{result}");
}

/// Seconds of media a playlist lists: the sum of its EXTINF durations.
fn media_listed(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|d| d.split(',').next()?.parse::<f64>().ok())
        .sum()
}

/// How an FLV case reaches the stream.
#[derive(Clone, Copy, PartialEq)]
enum FlvTransport {
    Http,
    WebSocket,
}

/// mpegts.js plays `http://HOST/live/KEY.flv` (fetch, CORS) from a page on another origin.
#[test]
fn mpegts_js_plays_http_flv_cross_origin() {
    plays_flv(FlvTransport::Http);
}

/// mpegts.js plays `ws://HOST/live/KEY.flv` (WebSocket binary messages) from a page on
/// another origin.
#[test]
fn mpegts_js_plays_websocket_flv_cross_origin() {
    plays_flv(FlvTransport::WebSocket);
}

/// Publishes a live encode, waits until the stream is live with a keyframe cached, and
/// plays its FLV with mpegts.js from the page play.mjs serves on a port of its own (another
/// origin than the server's).
fn plays_flv(transport: FlvTransport) {
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let server = ServerProcess::start(&[]);
    let key = "flv";
    let publisher = Source::H264Aac.publish(&server.rtmp_url(key));
    let live = wait_for(STREAM_TIMEOUT, || {
        let r = get(&server.http_url(&format!("/live/{key}/index.m3u8")));
        r.status == 200 && r.text().contains("#EXTINF")
    });
    assert!(
        live,
        "{key} did not go live:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );
    let (url, protocol) = match transport {
        FlvTransport::Http => (server.http_url(&format!("/live/{key}.flv")), "http-flv"),
        FlvTransport::WebSocket => (
            format!("ws://127.0.0.1:{}/live/{key}.flv", server.http_port),
            "ws-flv",
        ),
    };
    let seconds = PLAY_SECONDS.to_string();
    let start_timeout = FIRST_FRAME_SECONDS.to_string();
    let mut player = Player::spawn(
        "play.mjs",
        &[
            "--player",
            "mpegts",
            "--url",
            &url,
            "--seconds",
            &seconds,
            "--start-timeout",
            &start_timeout,
        ],
    );
    let result = player.outcome("play.mjs", || {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    });
    eprintln!(
        "mpegts.js {} over {protocol}: first frame after {} ms, frames {}, behind the buffered end {}",
        result["player_version"],
        result["first_frame_ms"],
        result["frames"],
        result["behind_edge_s"]
    );
    assert_eq!(result["started"], true, "{result}");
    assert_eq!(result["player"], "mpegts", "{result}");
    // The page's origin is not the server's: the stream was read cross-origin.
    let page = result["page"].as_str().expect("page");
    assert!(
        page.starts_with("http://127.0.0.1:") && !page.starts_with(&server.http_url("/")),
        "{result}"
    );
    assert_eq!(result["media"]["has_video"], true, "{result}");
    assert_eq!(result["media"]["has_audio"], true, "{result}");
    let played = result["played_s"].as_f64().expect("played_s");
    assert!(
        played >= f64::from(PLAY_SECONDS),
        "played {played} s: {result}"
    );
    assert_eq!(result["stalls"], 0, "{result}");
    assert_eq!(result["fatal"], Value::Array(vec![]), "{result}");
    let advanced = result["frames"]["advanced"].as_u64().expect("frames");
    assert!(advanced > 0, "no frame decoded while playing: {result}");
    let position = result["position_advanced_s"].as_f64().expect("position");
    assert!(
        position >= f64::from(PLAY_SECONDS) / 2.0,
        "the position moved {position} s in {played} s: {result}"
    );
    assert_eq!(player.status_code(), Some(0), "{result}");
    assert!(
        server
            .logs()
            .contains(&format!("play started stream=\"{key}\"")),
        "no play logged:\n{}",
        server.logs()
    );
    server.assert_logged(&format!("protocol=\"{protocol}\""));
}

/// The API token of the dashboard case.
const DASHBOARD_TOKEN: &str = "dash-s3cret";
/// How long the dashboard may take for each of its steps (a card to appear, its graph to
/// move, the preview to play, the card to go).
const DASHBOARD_STEP_SECONDS: u32 = 30;

/// The server's own dashboard in Chromium (`tests/browser/dashboard.mjs`), with
/// `http.api_token` set and a live ffmpeg publish: without the token the page shows that one
/// is required and its stop control is refused (401); with `#token=` the stream's card
/// appears, its bitrate graph moves, its preview plays, screenshots at desktop and phone
/// widths are kept in `target/artefacts/dashboard/`, and Stop ends the publish (ffmpeg exits)
/// and the card goes. No console error, no failed request, nothing from another origin.
#[test]
fn dashboard_shows_a_live_stream_previews_it_and_stops_it() {
    let _turn = ONE_PLAYER_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    ensure_browser();
    let server = ServerProcess::start(&["--http-api-token", DASHBOARD_TOKEN]);
    let key = "dashboard";
    // A small picture: the case runs a browser decoding it beside the encoder.
    let mut publisher = Publisher::pattern(
        &server.rtmp_url(key),
        "testsrc2=size=640x360:rate=30",
        "veryfast",
        60,
        PUBLISH_SECONDS,
    );
    let live = wait_for(STREAM_TIMEOUT, || {
        let r = get(&server.http_url(&format!("/live/{key}/llhls.m3u8")));
        r.status == 200 && r.text().contains("#EXTINF")
    });
    assert!(
        live,
        "{key} did not go live:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );

    let artefacts = repo().join("target/artefacts/dashboard");
    // This run's screenshots only: an earlier run's must not pass for them.
    let _ = std::fs::remove_dir_all(&artefacts);
    let origin = server.http_url("");
    let step_seconds = DASHBOARD_STEP_SECONDS.to_string();
    let mut driver = Player::spawn(
        "dashboard.mjs",
        &[
            "--url",
            &origin,
            "--token",
            DASHBOARD_TOKEN,
            "--stream",
            key,
            "--artefacts",
            artefacts.to_str().expect("UTF-8 path"),
            "--timeout",
            &step_seconds,
        ],
    );
    eprintln!("dashboard screenshots: {}", artefacts.display());
    let result = driver.outcome("dashboard.mjs", || {
        format!(
            "server:\n{}\npublisher:\n{}",
            server.logs(),
            publisher.logs()
        )
    });
    let steps = &result["steps"];
    assert_eq!(steps["token_required"]["stop_status"], 401, "{result}");
    assert_ne!(
        steps["bitrate_graph_moves"]["before"], steps["bitrate_graph_moves"]["after"],
        "{result}"
    );
    for shot in ["desktop-1280x800.png", "phone-390x844.png"] {
        let path = artefacts.join(shot);
        let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            png.starts_with(b"\x89PNG"),
            "{} is not a PNG",
            path.display()
        );
    }
    assert_eq!(steps["stop"]["status"], 200, "{result}");
    assert_eq!(driver.status_code(), Some(0), "{result}");
    // Stop ended the publish: ffmpeg exits, and the API no longer lists the stream.
    let stopped = publisher.wait(STREAM_TIMEOUT).is_some();
    assert!(
        stopped,
        "ffmpeg still publishes after Stop:\n{}\n{}",
        server.logs(),
        publisher.logs()
    );
    let listed = http(
        "GET",
        &server.http_url("/api/streams"),
        &[("Authorization", &format!("Bearer {DASHBOARD_TOKEN}"))],
    );
    assert_eq!(listed.status, 200);
    assert!(
        !listed.text().contains(&format!("\"name\":\"{key}\"")),
        "{}",
        listed.text()
    );
}

/// A self-signed certificate for 127.0.0.1 in a folder of its own, and the hash Chromium
/// accepts it by.
struct TestCertificate {
    cert: PathBuf,
    key: PathBuf,
    /// Base64 SHA-256 of the SubjectPublicKeyInfo (`--ignore-certificate-errors-spki-list`).
    spki_sha256: String,
    _dir: tempfile::TempDir,
}

impl TestCertificate {
    fn new() -> TestCertificate {
        let dir = tempfile::tempdir().expect("temp dir");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a certificate");
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, made.cert.pem()).expect("write");
        std::fs::write(&key, made.signing_key.serialize_pem()).expect("write");
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&made.signing_key),
        );
        TestCertificate {
            cert,
            key,
            spki_sha256: base64(digest.as_ref()),
            _dir: dir,
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), encoded);
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn browser_dir() -> PathBuf {
    repo().join("tests/browser")
}

/// Installs the browser and the node packages when they are missing, once per test run.
fn ensure_browser() {
    static CHROMIUM_READY: OnceLock<()> = OnceLock::new();
    CHROMIUM_READY.get_or_init(|| {
        if !Path::new(CHROMIUM).exists() {
            apt_install("chromium");
        }
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing");
    });
    ensure_node_modules();
}

/// The packages tests/browser/package.json names, each a folder of node_modules.
const NODE_PACKAGES: [&str; 3] = ["hls.js", "mpegts.js", "playwright-core"];

/// `npm ci` in tests/browser when node_modules is missing, older than the lockfile, or
/// lacks a package (a tree from before one was added).
fn ensure_node_modules() {
    static NODE_MODULES_READY: OnceLock<()> = OnceLock::new();
    NODE_MODULES_READY.get_or_init(|| {
        let dir = browser_dir();
        let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let installed = modified(dir.join("node_modules/.package-lock.json"));
        let locked = modified(dir.join("package-lock.json"));
        let complete = NODE_PACKAGES
            .iter()
            .all(|p| dir.join("node_modules").join(p).is_dir());
        if installed.is_some() && installed >= locked && complete {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is installed (it comes with Node.js)");
        assert!(status.success(), "npm ci in {}", dir.display());
    });
}

/// `apt-get install -y PACKAGE`, as root or through sudo.
fn apt_install(package: &str) {
    let root = rustix::process::geteuid().is_root();
    let apt = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        command
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get runs")
    };
    assert!(apt(&["update", "-qq"]).success(), "apt-get update");
    assert!(
        apt(&["install", "-y", "-qq", package]).success(),
        "apt-get install {package}"
    );
}

/// `node play.mjs` in a process group of its own; Chromium, which it starts in a group of
/// its own, is named in a pid file so that it can be ended even if node cannot. Both run
/// with TMPDIR in a folder of the test's, so the browser profile goes with it.
struct Player {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    pid_file: PathBuf,
    status: Option<std::process::ExitStatus>,
    _scratch: tempfile::TempDir,
}

impl Player {
    fn start(url: &str, case: &Case, spki: Option<&str>) -> Player {
        let seconds = case.play_seconds().to_string();
        let start_timeout = FIRST_FRAME_SECONDS.to_string();
        let seek_back = case.seek_back.map(|s| s.to_string());
        let mut args = vec![
            "--url",
            url,
            "--seconds",
            &seconds,
            "--start-timeout",
            &start_timeout,
        ];
        if case.low_latency {
            args.push("--low-latency");
        }
        if let Some(spki) = spki {
            args.extend(["--spki", spki]);
        }
        if let Some(seek_back) = &seek_back {
            args.extend(["--seek-back", seek_back]);
        }
        Player::spawn("play.mjs", &args)
    }

    /// `node SCRIPT ARGS --pid-file FILE --verbose` in tests/browser (`play.mjs`, or a
    /// script that starts Chromium the same way).
    fn spawn(script: &str, args: &[&str]) -> Player {
        let scratch = tempfile::tempdir().expect("temp dir");
        let pid_file = scratch.path().join("chromium.pid");
        let mut command = Command::new("node");
        command
            .arg(script)
            .args(args)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--verbose")
            .current_dir(browser_dir())
            .env("TMPDIR", scratch.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("node runs");
        let stdout = collect(child.stdout.take().expect("piped"));
        let stderr = collect(child.stderr.take().expect("piped"));
        Player {
            child,
            stdout,
            stderr,
            pid_file,
            status: None,
            _scratch: scratch,
        }
    }

    fn exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("wait");
        }
        self.status.is_some()
    }

    fn status_code(&mut self) -> Option<i32> {
        self.exited();
        self.status.and_then(|s| s.code())
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the script to end (at most [`PLAYER_TIMEOUT`]) and returns its JSON result
    /// line, which must list no failures and say `ok`; otherwise panics with the script's
    /// output and `others` (the server's and publisher's logs).
    fn outcome(&mut self, script: &str, others: impl Fn() -> String) -> Value {
        let exited = wait_for(PLAYER_TIMEOUT, || self.exited());
        let context = |p: &Player| format!("{script}:\n{}\n{}", p.stderr(), others());
        assert!(
            exited,
            "{script} ran past {PLAYER_TIMEOUT:?}\n{}",
            context(self)
        );
        let result = self.result().unwrap_or_else(|| {
            panic!(
                "no result line from {script}: {:?}\n{}",
                self.stdout(),
                context(self)
            )
        });
        assert_eq!(
            result["failures"],
            Value::Array(vec![]),
            "{}",
            context(self)
        );
        assert_eq!(result["ok"], true, "{result}");
        result
    }

    /// The player's JSON result line, once its output is read to the end.
    fn result(&self) -> Option<Value> {
        let mut line = None;
        wait_for(STOP_TIMEOUT, || {
            line = self
                .stdout()
                .lines()
                .rev()
                .find(|l| l.starts_with('{') && l.ends_with('}'))
                .map(str::to_string);
            line.is_some()
        });
        serde_json::from_str(&line?).ok()
    }

    /// Chromium's process group, if the browser process is still there.
    fn chromium_group(&self) -> Option<Pid> {
        let pid: i32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        // The pid file names the browser's pid, which leads its group; check that it is
        // still that browser before signalling the group.
        comm.contains("chrom").then(|| Pid::from_raw(pid)).flatten()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        if !self.exited() {
            // node ends its browser on SIGTERM; SIGKILL if it does not exit in time.
            let group = Pid::from_child(&self.child);
            let _ = kill_process_group(group, Signal::TERM);
            if !wait_for(STOP_TIMEOUT, || self.exited()) {
                let _ = kill_process_group(group, Signal::KILL);
                let _ = self.child.wait();
            }
        }
        if let Some(group) = self.chromium_group() {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
}

/// Reads a child's pipe to the end on a thread of its own.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut t = sink.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}
