//! Stream-key validation, webhooks and configuration, end to end: a real HTTP stub of the
//! stream-service, real ffmpeg publishers, the real server binary. The decisions themselves
//! (every kind of answer, caching, re-checks, playback ids, webhook order) are checked in
//! process in `ingest_layer.rs`; here the options reach the server and real encoders are
//! let in or turned away.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::stub::{Answer, StubService};
use common::*;

const FILE: &str = "flv/h264_aac.flv";

/// Publishes `key` with ffmpeg and expects the server to refuse it.
fn assert_refused(server: &ServerProcess, key: &str) {
    let mut ffmpeg = Publisher::start(&testdata(FILE), &server.rtmp_url(key), &[]);
    let status = ffmpeg.wait(STREAM_TIMEOUT).expect("refused publisher ends");
    assert!(
        !status.success(),
        "{key}: ffmpeg succeeded\n{}",
        server.logs()
    );
    assert!(
        http_playlist(server, key).is_none(),
        "{key}: a playlist appeared"
    );
}

#[test]
fn the_stream_service_decides_who_publishes() {
    let stub = StubService::start();
    stub.set("good", Answer::json(200, r#"{"key":"good","active":true}"#));
    stub.set(
        "inactive",
        Answer::json(200, r#"{"key":"inactive","isActive":false}"#),
    );
    stub.set("broken", Answer::json(500, r#"{"error":"db down"}"#));
    stub.set(
        "slow",
        Answer {
            delay: Duration::from_secs(5),
            ..Answer::json(200, "{}")
        },
    );
    let server = ServerProcess::start(&[
        "--stream-service",
        &stub.url,
        "--auth-token",
        "s3cret",
        "--auth-timeout",
        "1",
    ]);

    // An accepted key streams, and the service was asked with the bearer token.
    let mut ok = Publisher::start(&testdata(FILE), &server.rtmp_url("good"), &[]);
    assert!(
        wait_for(STREAM_TIMEOUT, || http_playlist(&server, "good").is_some()),
        "{}",
        server.logs()
    );
    let asked = stub.seen();
    assert_eq!(asked[0].path, "/api/streams/good");
    assert_eq!(asked[0].authorization.as_deref(), Some("Bearer s3cret"));

    // Refused through ffmpeg: the encoder is told and disconnected. Why each answer is
    // refused, with which reason and description, is checked in process for every kind of
    // answer (`ingest_layer.rs`).
    for key in ["nosuchkey", "inactive"] {
        assert_refused(&server, key);
    }
    let started = Instant::now();
    assert_refused(&server, "slow");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the 1 s time-out was not applied"
    );
    assert_refused(&server, "broken");
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"unknown_key\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"inactive_key\"}"),
        Some(1.0)
    );
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"service_unavailable\"}"),
        Some(2.0)
    );
    assert!(
        server
            .metric("rtmp_server_stream_service_seconds_count")
            .unwrap_or(0.0)
            >= 5.0
    );

    // A malformed key is refused before any request is made (every shape of malformed key
    // is checked in process, and over raw RTMP in `abuse_paths.rs`).
    let before = stub.seen().len();
    assert_refused(&server, ".hidden");
    assert_eq!(
        stub.seen().len(),
        before,
        "a malformed key reached the stream-service"
    );
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"malformed_key\"}"),
        Some(1.0)
    );

    // The accepted stream was not disturbed by any of it.
    assert!(
        ok.wait(STREAM_TIMEOUT).is_some_and(|s| s.success()),
        "{}",
        ok.logs()
    );
}

#[test]
fn a_key_revoked_while_live_is_stopped_when_rechecked() {
    let stub = StubService::start();
    stub.set("revoked", Answer::json(200, r#"{"active":true}"#));
    let server = ServerProcess::start(&["--stream-service", &stub.url, "--auth-recheck", "1"]);
    let mut ffmpeg = Publisher::start(
        &testdata(FILE),
        &server.rtmp_url("revoked"),
        &["-stream_loop", "-1"],
    );
    assert!(
        wait_for(STREAM_TIMEOUT, || http_playlist(&server, "revoked")
            .is_some()),
        "{}",
        server.logs()
    );
    stub.set("revoked", Answer::json(200, r#"{"active":false}"#));
    assert!(
        ffmpeg.wait(STREAM_TIMEOUT).is_some(),
        "the revoked stream kept publishing"
    );
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"inactive_key\"}"),
        Some(1.0)
    );
    let ended = wait_for(STREAM_TIMEOUT, || {
        let r = get(&server.http_url("/live/revoked/index.m3u8"));
        r.status == 200 && parse_playlist(&r.text()).ended
    });
    assert!(ended, "the revoked stream's playlist did not end");
}

#[test]
fn playback_ids_hide_the_publishing_key() {
    let stub = StubService::start();
    stub.set(
        "secretkey",
        Answer::json(200, r#"{"playbackId":"public-1"}"#),
    );
    let server = ServerProcess::start(&["--stream-service", &stub.url, "--auth-playback-id"]);
    let _ffmpeg = Publisher::start(
        &testdata(FILE),
        &server.rtmp_url("secretkey"),
        &["-stream_loop", "-1"],
    );
    assert!(
        wait_for(STREAM_TIMEOUT, || http_playlist(&server, "public-1")
            .is_some()),
        "{}",
        server.logs()
    );
    assert!(http_playlist(&server, "secretkey").is_none());
    // Served from memory first; the disk writer follows.
    assert!(wait_for(STREAM_TIMEOUT, || server
        .stream_dir("public-1")
        .exists()));
    assert!(!server.stream_dir("secretkey").exists());
    let api = get(&server.http_url("/api/streams")).text();
    assert!(
        api.contains("public-1") && !api.contains("secretkey") && !api.contains("secr"),
        "{api}"
    );
    let entry: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    let entry = &entry["streams"][0];
    assert_eq!(entry["key"], serde_json::Value::Null, "{api}");
    // The thumbnail is served under the public name too.
    assert_eq!(entry["thumbnail"], "/live/public-1/thumbnail.jpg", "{api}");
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            let r = get(&server.http_url("/live/public-1/thumbnail.jpg"));
            r.status == 200
                && r.header("content-type") == Some("image/jpeg")
                && r.body.starts_with(&[0xFF, 0xD8])
        }),
        "{}",
        server.logs()
    );
    assert_eq!(
        get(&server.http_url("/live/secretkey/thumbnail.jpg")).status,
        404
    );
}

#[test]
fn webhooks_report_start_and_stop_of_a_real_publish() {
    let stub = StubService::start();
    let server = ServerProcess::start(&[
        "--on-publish",
        &format!("{}/hooks/publish", stub.url),
        "--on-unpublish",
        &format!("{}/hooks/unpublish", stub.url),
    ]);
    let mut ffmpeg = Publisher::start(&testdata(FILE), &server.rtmp_url("hooked"), &[]);
    assert!(ffmpeg.wait(STREAM_TIMEOUT).is_some_and(|s| s.success()));
    assert!(
        wait_for(STREAM_TIMEOUT, || stub.hooks().len() >= 2),
        "hooks: {:?}",
        stub.hooks()
    );
    let hooks = stub.hooks();
    let (name, start) = &hooks[0];
    assert_eq!(name, "publish");
    assert_eq!(start["event"], "publish");
    assert_eq!(start["key"], "hooked");
    assert_eq!(start["app"], "live");
    assert!(start["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(start["video"]["codec"], "avc1.64001E");
    assert_eq!(start["video"]["width"], 640);
    assert_eq!(start["video"]["height"], 360);
    assert_eq!(start["audio"]["codec"], "mp4a.40.2");
    assert!(start["started_at"].as_str().unwrap().ends_with('Z'));
    let (name, stop) = &hooks[1];
    assert_eq!(name, "unpublish");
    assert_eq!(stop["event"], "unpublish");
    assert!(stop["stopped_at"].as_str().unwrap().ends_with('Z'));
    assert!(stop["bytes"].as_u64().unwrap() > 800_000, "{stop}");
    let secs = stop["duration_s"].as_f64().unwrap();
    assert!((9.0..20.0).contains(&secs), "{stop}");
}

#[test]
fn a_dead_webhook_target_is_logged_and_does_not_disturb_the_stream() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let server = ServerProcess::start(&[
        "--on-publish",
        &dead,
        "--on-unpublish",
        &dead,
        "--hls-keep",
        "--hls-list-size",
        "100",
    ]);
    // The project's client sends the file as fast as the socket takes it.
    let mut publisher = ClientPublisher::start(&server, "deadhook");
    for tag in flv_tags(&testdata(FILE)) {
        publisher.send_tag(&tag, tag.timestamp);
    }
    // The publish is announced once a segment is listed, while it still publishes.
    wait_playlist(&server, "deadhook");
    publisher.finish();
    let (_, segments) = finished_segments(&server, "deadhook");
    assert_same_frames(&testdata(FILE), &segments);
    // Nothing else reports a lost webhook: the log line is what operators have.
    server.assert_logged("webhook failed");
}

#[test]
fn configuration_layers_file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rtmp-server.toml");
    std::fs::write(
        &file,
        "[rtmp]\nport = 1001\nping = 7\n[hls]\ntime = 4\nlist_size = 5\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .args(["check-config", "--config"])
        .arg(&file)
        .args(["--rtmp-port", "1003"])
        .env("RTMP_SERVER_RTMP_PORT", "1002")
        .env("RTMP_SERVER_HLS_TIME", "6")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    assert_eq!(
        effective["rtmp"]["port"].as_integer(),
        Some(1003),
        "flag wins"
    );
    assert_eq!(
        effective["hls"]["time"].as_integer(),
        Some(6),
        "environment beats the file"
    );
    assert_eq!(
        effective["hls"]["list_size"].as_integer(),
        Some(5),
        "file beats the default"
    );
    assert_eq!(effective["rtmp"]["ping"].as_integer(), Some(7));
    assert_eq!(
        effective["rtmp"]["chunk_size"].as_integer(),
        Some(60000),
        "default"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .args(["serve", "--hls-time", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("hls.time") && message.contains("1 to 60"),
        "{message}"
    );

    let printed = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .args(["--print-config", "--hls-time", "0"])
        .output()
        .unwrap();
    assert!(
        !printed.status.success(),
        "an invalid config is refused before printing"
    );
}
