//! Restreaming end to end: ffmpeg publishes to one instance of the server (A), which pushes
//! the stream to real RTMP servers: another instance (B, the real binary as well), nginx-rtmp,
//! targets that refuse. What the targets make of it is read back (their HLS, probed and
//! decoded with ffprobe and ffmpeg), and A's API and metrics say where each target stands.
//!
//! How the relay behaves inside (queues, back-off, the end of a publish, TLS) is checked in
//! process in `src/relay`.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::nginx::NginxRtmp;
use common::stub::{Answer, StubService};
use common::tls::{CertFiles, Pair, strs};
use common::*;
use serde_json::Value;

const FILE: &str = "flv/h264_aac.flv";

/// The relays A's API lists for `name` (none when the stream is not live).
fn relays(server: &ServerProcess, name: &str) -> Vec<Value> {
    server
        .api_stream(name)
        .and_then(|s| s["relays"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits until the relay of `name` to `url` (as the API shows it) passes `check`, and
/// returns it.
fn wait_relay(
    server: &ServerProcess,
    name: &str,
    url: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut seen = Vec::new();
    let found = wait_for(STREAM_TIMEOUT, || {
        seen = relays(server, name);
        seen.iter().any(|r| r["url"] == url && check(r))
    });
    assert!(
        found,
        "relay {url} of {name} never {what}: {seen:#?}\n{}",
        server.logs()
    );
    seen.into_iter().find(|r| r["url"] == url).unwrap()
}

fn in_state(state: &'static str) -> impl Fn(&Value) -> bool {
    move |r| r["state"] == state
}

/// A port of 127.0.0.1 nothing listens on (it was free a moment ago).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// The first segment `playlist` lists on `server`, fetched over HTTP into `dir`.
fn fetch_segment(server: &ServerProcess, key: &str, playlist: &Playlist, dir: &Path) -> PathBuf {
    let uri = &playlist.entries[0].uri;
    let r = get(&server.http_url(&format!("/live/{key}/{uri}")));
    assert_eq!(r.status, 200, "{uri}");
    let path = dir.join(uri);
    std::fs::write(&path, &r.body).expect("write the segment");
    path
}

/// ffprobe's stream lines, in a stable order and once each (formats list their streams
/// differently; MPEG-TS once per program and once more).
fn stream_info(path: &Path) -> Vec<String> {
    let mut lines: Vec<String> = probe_streams(path)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

/// Waits until `key` has no live stream on `server` and its playlist is ended.
fn assert_ended(server: &ServerProcess, key: &str) {
    let ended = wait_for(STREAM_TIMEOUT, || {
        server.api_stream(key).is_none() && http_playlist(server, key).is_some_and(|p| p.ended)
    });
    assert!(ended, "{key} did not end:\n{}", server.logs());
}

#[test]
fn a_stream_is_pushed_to_another_server_and_resumes_when_it_comes_back() {
    let mut b = ServerProcess::start(&[]);
    let b_port = b.rtmp_port;
    let target = format!("rtmp://127.0.0.1:{b_port}/live/***");
    let a = ServerProcess::start(&[
        "--relay-push",
        &format!("rtmp://127.0.0.1:{b_port}/live/{{key}}"),
    ]);
    let mut ffmpeg = live_publisher(&a, "show");

    // B serves the stream A pushes, as the source is: same codecs, same picture size.
    let playlist = wait_playlist(&b, "show");
    let dir = tempfile::tempdir().expect("temp dir");
    let segment = fetch_segment(&b, "show", &playlist, dir.path());
    let errors = decode_errors(&segment);
    assert!(errors.trim().is_empty(), "B's segment: {errors}");
    assert_eq!(stream_info(&segment), stream_info(&testdata(FILE)));
    let live = wait_relay(&a, "show", &target, "went live", in_state("live"));
    assert_eq!(live["last_error"], Value::Null);
    assert_eq!(live["reconnects"], 0);
    assert!(live["since"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(
        !a.api_stream("show")
            .unwrap()
            .to_string()
            .contains(&format!("{b_port}/live/show"))
    );

    // B goes away: A keeps trying, and when B is back on the same port the push resumes.
    b.kill();
    let retrying = wait_relay(&a, "show", &target, "retried", in_state("retrying"));
    assert!(
        retrying["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{retrying}"
    );
    let b = ServerProcess::start(&["--rtmp-port", &b_port.to_string()]);
    let again = wait_relay(&a, "show", &target, "went live again", |r| {
        r["state"] == "live" && r["reconnects"].as_u64().is_some_and(|n| n >= 1)
    });
    assert!(again["bytes_out"].as_u64().unwrap() > live["bytes_out"].as_u64().unwrap());
    let playlist = wait_playlist(&b, "show");
    let segment = fetch_segment(&b, "show", &playlist, dir.path());
    assert_eq!(stream_info(&segment), stream_info(&testdata(FILE)));
    let before = a.metric("rtmp_server_relay_failures_total").unwrap_or(0.0);
    assert!(before >= 1.0, "{}", a.metrics());
    assert!(a.metric("rtmp_server_relay_connects_total").unwrap_or(0.0) >= 2.0);

    // The publish stops: so does B's stream, and A has no relay left.
    ffmpeg.kill();
    assert_ended(&b, "show");
    let gone = wait_for(STREAM_TIMEOUT, || {
        ["connecting", "live", "retrying"].iter().all(|state| {
            a.metric(&format!("rtmp_server_relay_targets{{state=\"{state}\"}}")) == Some(0.0)
        })
    });
    assert!(gone, "{}", a.metrics());
    a.assert_logged("relay stopped");
}

#[test]
fn nginx_rtmp_takes_the_push_and_makes_hls_of_it() {
    let nginx = NginxRtmp::start();
    let a = ServerProcess::start(&["--relay-push", &nginx.rtmp_url("live", "{name}")]);
    let mut ffmpeg = Publisher::start(&testdata(FILE), &a.rtmp_url("nginx"), &[]);
    let target = format!("rtmp://127.0.0.1:{}/live/***", nginx.rtmp_port);
    wait_relay(&a, "nginx", &target, "went live", in_state("live"));
    let status = ffmpeg.wait(STREAM_TIMEOUT).expect("ffmpeg finished");
    assert!(status.success(), "ffmpeg: {status}\n{}", ffmpeg.logs());

    // nginx's HLS of the 10 s source: H.264 640x360 and AAC, about 30 frames a second of
    // what its playlist lists.
    let index = nginx.hls_dir("nginx").join("index.m3u8");
    let mut playlist = Playlist::default();
    let listed = wait_for(STREAM_TIMEOUT, || {
        std::fs::read_to_string(&index).is_ok_and(|t| {
            playlist = parse_playlist(&t);
            playlist.entries.iter().map(|e| e.duration).sum::<f64>() >= 6.0
        })
    });
    assert!(
        listed,
        "nginx's playlist: {}\n{}",
        playlist.text,
        nginx.logs()
    );
    let dir = nginx.hls_dir("nginx");
    let segments: Vec<PathBuf> = playlist.entries.iter().map(|e| dir.join(&e.uri)).collect();
    let info = probe_streams(&segments[0]);
    for field in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "codec_name=aac",
        "sample_rate=48000",
        "channels=2",
    ] {
        assert!(info.contains(field), "{field} not in {info}");
    }
    for segment in &segments {
        let errors = decode_errors(segment);
        assert!(errors.trim().is_empty(), "{}: {errors}", segment.display());
    }
    let frames = packets_of(&segments).iter().filter(|p| p.video).count() as f64;
    let listed: f64 = playlist.entries.iter().map(|e| e.duration).sum();
    let expected = listed * 30.0;
    assert!(
        (frames - expected).abs() <= expected * 0.1 + 2.0,
        "{frames} video frames in {listed} s of nginx's HLS:\n{}",
        playlist.text
    );
    // The publish ended, the relay with it.
    let gone = wait_for(STREAM_TIMEOUT, || {
        a.metric("rtmp_server_relay_targets{state=\"live\"}") == Some(0.0)
    });
    assert!(gone, "{}", a.metrics());
    a.assert_logged("relay stopped");
}

#[test]
fn a_stream_the_target_cannot_take_is_its_error_and_tried_again() {
    // nginx-rtmp answers connect without Enhanced RTMP: HEVC cannot go there.
    let nginx = NginxRtmp::start();
    let a = ServerProcess::start(&["--relay-push", &nginx.rtmp_url("live", "{key}")]);
    let mut command = Command::new(ffmpeg9());
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(["-re", "-stream_loop", "-1", "-i"])
        .arg(testdata("flv/hevc_aac.flv"))
        .args(["-c", "copy", "-f", "flv", &a.rtmp_url("hevc")]);
    let mut ffmpeg = Publisher::spawn(command);
    let target = format!("rtmp://127.0.0.1:{}/live/***", nginx.rtmp_port);
    let relay = wait_relay(&a, "hevc", &target, "was tried again", |r| {
        r["reconnects"].as_u64().is_some_and(|n| n >= 1)
            && r["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("cannot take HEVC"))
    });
    assert_ne!(relay["state"], "live", "{relay}");
    // A's own HLS of it goes on.
    let before = wait_playlist(&a, "hevc");
    assert_advances(&a, "hevc", &mut ffmpeg, &before);
}

#[test]
fn the_stream_service_adds_targets_per_key() {
    let stub = StubService::start();
    let b = ServerProcess::start(&[]);
    let answer = format!(
        r#"{{"active":true,"push":["rtmp://127.0.0.1:{}/live/{{key}}-svc","ftp://127.0.0.1/live/nope"]}}"#,
        b.rtmp_port
    );
    stub.set("svc", Answer::json(200, &answer));
    stub.set("plain", Answer::json(200, r#"{"active":true}"#));
    let a = ServerProcess::start(&[
        "--stream-service",
        &stub.url,
        "--relay-push",
        &format!("rtmp://127.0.0.1:{}/live/{{key}}-cfg", b.rtmp_port),
    ]);

    // The configured target and the answer's; the unusable entry is logged and left out.
    let mut ffmpeg = live_publisher(&a, "svc");
    wait_playlist(&b, "svc-svc");
    wait_playlist(&b, "svc-cfg");
    let target = format!("rtmp://127.0.0.1:{}/live/***", b.rtmp_port);
    wait_relay(&a, "svc", &target, "went live", in_state("live"));
    assert_eq!(relays(&a, "svc").len(), 2, "{:#?}", relays(&a, "svc"));
    a.assert_logged("stream-service push entry 1 ignored");

    // A key whose answer names none has the configured target alone.
    let mut other = live_publisher(&a, "plain");
    wait_playlist(&b, "plain-cfg");
    assert_eq!(relays(&a, "plain").len(), 1);
    assert!(http_playlist(&b, "plain-svc").is_none());

    ffmpeg.kill();
    other.kill();
    assert_ended(&b, "svc-svc");
    assert_ended(&b, "plain-cfg");
}

#[test]
fn targets_that_refuse_are_retried_and_hold_up_nothing() {
    let certs = CertFiles::new(&Pair::new());
    let b = ServerProcess::start(&strs(&certs.with(&["--rtmp-tls-port", "0"])));
    let dead = dead_port();
    let tls_port = b.rtmps_port.unwrap();
    let targets = [
        format!("rtmp://127.0.0.1:{}/live/{{key}}", b.rtmp_port),
        // Nothing listens there.
        format!("rtmp://127.0.0.1:{dead}/live/{{key}}"),
        // B refuses an application it does not serve.
        format!("rtmp://127.0.0.1:{}/elsewhere/{{key}}", b.rtmp_port),
        // B's certificate is its own, not one the web PKI vouches for.
        format!("rtmps://localhost:{tls_port}/live/{{key}}-tls"),
    ];
    let a = ServerProcess::start(&["--relay-push", &targets.join(",")]);
    let mut ffmpeg = live_publisher(&a, "busy");
    let before = wait_playlist(&a, "busy");

    let good = format!("rtmp://127.0.0.1:{}/live/***", b.rtmp_port);
    let error_with = |text: &'static str| {
        move |r: &Value| r["last_error"].as_str().is_some_and(|e| e.contains(text))
    };
    let unreachable = wait_relay(
        &a,
        "busy",
        &format!("rtmp://127.0.0.1:{dead}/live/***"),
        "failed to connect",
        error_with("cannot connect"),
    );
    assert_ne!(unreachable["state"], "live");
    wait_relay(
        &a,
        "busy",
        &format!("rtmp://127.0.0.1:{}/elsewhere/***", b.rtmp_port),
        "was refused",
        error_with("the target refused"),
    );
    wait_relay(
        &a,
        "busy",
        &format!("rtmps://localhost:{tls_port}/live/***"),
        "failed its TLS handshake",
        error_with("certificate"),
    );
    // The retries go on while the good target and A's own HLS carry on.
    wait_relay(&a, "busy", &good, "went live", in_state("live"));
    wait_relay(
        &a,
        "busy",
        &format!("rtmp://127.0.0.1:{dead}/live/***"),
        "was retried",
        |r| r["reconnects"].as_u64().is_some_and(|n| n >= 2),
    );
    assert_advances(&a, "busy", &mut ffmpeg, &before);
    let b_before = wait_playlist(&b, "busy");
    let b_advanced = wait_for(STREAM_TIMEOUT, || {
        http_playlist(&b, "busy").is_some_and(|p| p.media_sequence > b_before.media_sequence)
    });
    assert!(b_advanced, "B's copy stalled:\n{}", b.logs());
    assert_eq!(
        a.metric("rtmp_server_relay_targets{state=\"live\"}"),
        Some(1.0)
    );
    assert!(a.metric("rtmp_server_relay_failures_total").unwrap_or(0.0) >= 3.0);
    assert!(a.metric("rtmp_server_relay_bytes_out_total").unwrap_or(0.0) > 0.0);
    a.assert_logged("relay retrying");
    ffmpeg.kill();
    assert_ended(&b, "busy");
}
