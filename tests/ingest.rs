//! RTMP ingest end to end: a real ffmpeg publishes `testdata/` files to the running server,
//! and what the server made of them is read back with ffprobe.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::hls_check::check_output;
use common::*;

#[test]
fn ffmpeg_publish_is_remuxed_frame_for_frame() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let mut ffmpeg = Publisher::start(&source, &server.rtmp_url("frames"), &[]);
    let status = ffmpeg.wait(STREAM_TIMEOUT).expect("ffmpeg finishes");
    assert!(
        status.success(),
        "ffmpeg failed:\n{}\nserver:\n{}",
        ffmpeg.logs(),
        server.logs()
    );

    let (playlist, segments) = finished_segments(&server, "frames");
    assert!(segments.len() >= 4, "10 s in 2 s segments: {playlist:?}");
    assert_same_frames(&source, &segments);
    check_output(&server.stream_dir("frames"), &playlist, true, true);
    let streams = probe_streams(&segments[0]);
    assert!(
        streams.contains("codec_name=h264") && streams.contains("profile=High"),
        "{streams}"
    );
    assert!(
        streams.contains("width=640") && streams.contains("height=360"),
        "{streams}"
    );
    assert!(
        streams.contains("codec_name=aac") && streams.contains("sample_rate=48000"),
        "{streams}"
    );

    // One publish accepted, and none live once it stopped. (The codec string the server read
    // from the SPS is checked in process, in `ingest_layer.rs`.)
    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(1.0));
    assert!(
        wait_for(STREAM_TIMEOUT, || server.metric("rtmp_server_streams_live")
            == Some(0.0)),
        "the publish is still counted live"
    );
}

#[test]
fn audio_only_and_video_only_streams_keep_their_one_track() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    for (file, key, has_video, has_audio) in [
        ("flv/audio_only.flv", "audio", false, true),
        ("flv/video_only.flv", "video", true, false),
    ] {
        let source = testdata(file);
        let mut ffmpeg = Publisher::start(&source, &server.rtmp_url(key), &[]);
        let status = ffmpeg.wait(STREAM_TIMEOUT).expect("ffmpeg finishes");
        assert!(status.success(), "{file}: {}", ffmpeg.logs());
        let (playlist, segments) = finished_segments(&server, key);
        assert_same_frames(&source, &segments);
        check_output(&server.stream_dir(key), &playlist, has_video, has_audio);
        let streams = probe_streams(&segments[0]);
        assert_eq!(
            streams.contains("codec_type=video"),
            has_video,
            "{file}: {streams}"
        );
        assert_eq!(
            streams.contains("codec_type=audio"),
            has_audio,
            "{file}: {streams}"
        );
    }
}

#[test]
fn a_second_publisher_takes_the_stream_over() {
    let server = ServerProcess::start(&[]);
    let mut first = live_publisher(&server, "takeover");
    assert!(
        wait_for(STREAM_TIMEOUT, || http_playlist(&server, "takeover")
            .is_some()),
        "first publisher's playlist:\n{}",
        server.logs()
    );
    let mut second = live_publisher(&server, "takeover");
    // The first encoder's connection is closed; ffmpeg exits.
    assert!(
        first.wait(STREAM_TIMEOUT).is_some(),
        "first publisher still running"
    );
    assert!(
        second.is_running(),
        "second publisher ended:\n{}",
        second.logs()
    );
    // The playlist continues across the change, with a discontinuity.
    let continued = wait_for(STREAM_TIMEOUT, || {
        http_playlist(&server, "takeover")
            .is_some_and(|p| p.entries.iter().any(|e| e.discontinuity))
    });
    assert!(
        continued,
        "no discontinuity after takeover:\n{}",
        server.logs()
    );
    // Two publishes accepted, one stream live: the second's.
    assert_eq!(server.metric("rtmp_server_publishes_total"), Some(2.0));
    let one_live = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_streams_live") == Some(1.0)
            && server.api_server()["streams"] == 1
    });
    assert!(one_live, "{}", server.metrics());
}

#[test]
fn with_takeover_off_a_second_publisher_is_refused() {
    let server = ServerProcess::start(&["--rtmp-takeover", "false"]);
    let mut first = live_publisher(&server, "busy");
    assert!(wait_for(STREAM_TIMEOUT, || http_playlist(&server, "busy").is_some()));
    let mut second = live_publisher(&server, "busy");
    let status = second
        .wait(STREAM_TIMEOUT)
        .expect("second publisher is refused");
    assert!(!status.success(), "second publisher succeeded");
    assert!(
        first.is_running(),
        "first publisher was disturbed:\n{}",
        first.logs()
    );
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"already_publishing\"}"),
        Some(1.0)
    );
    // The first stream still advances.
    let seq = http_playlist(&server, "busy").unwrap().media_sequence;
    assert!(wait_for(STREAM_TIMEOUT, || {
        http_playlist(&server, "busy").is_some_and(|p| p.media_sequence > seq)
    }));
}

#[test]
fn an_unsupported_codec_is_refused_by_name() {
    let server = ServerProcess::start(&[]);
    let mut ffmpeg = Publisher::start(
        &testdata("flv/sorenson_h263.flv"),
        &server.rtmp_url("old"),
        &[],
    );
    let status = ffmpeg.wait(STREAM_TIMEOUT).expect("ffmpeg ends");
    assert!(!status.success(), "publishing Sorenson H.263 succeeded");
    // Refused as a codec (the description naming it is checked in `ingest_layer.rs`).
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"unsupported_codec\"}"),
        Some(1.0)
    );
    assert!(http_playlist(&server, "old").is_none());
}

#[test]
fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    let server = ServerProcess::start(&["--rtmp-handshake-timeout", "2"]);
    let mut socket = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = socket.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server sent bytes to a silent client");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "not dropped in time"
    );
    server.assert_logged("no handshake and connect within");
}
