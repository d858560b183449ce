//! HTTP delivery end to end, where a real publisher, real sockets or the real process are
//! what is checked: the stats API's figures for a real ffmpeg publisher (its metadata, its
//! bitrate over real time, its connection, the disk writer's work), and a SIGTERM ending live
//! playlists. Routes, headers, CORS, ETags, path validation, the JSON shapes, `/metrics` and
//! health are checked in process, in `http_router.rs`.

mod common;

use common::*;

/// A server with one live stream `key` (the test file, looped) and its first segments.
fn live(args: &[&str], key: &str) -> (ServerProcess, Publisher, Playlist) {
    let server = ServerProcess::start(args);
    let publisher = Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmp_url(key),
        &["-stream_loop", "-1"],
    );
    let url = server.http_url(&format!("/live/{key}/index.m3u8"));
    let mut playlist = None;
    let ready = wait_for(STREAM_TIMEOUT, || {
        let r = get(&url);
        if r.status == 200 {
            let p = parse_playlist(&r.text());
            if p.entries.len() >= 2 {
                playlist = Some(p);
                return true;
            }
        }
        false
    });
    assert!(ready, "no playlist:\n{}", server.logs());
    (server, publisher, playlist.unwrap())
}

#[test]
fn the_stats_api_reports_what_a_real_publisher_sends() {
    let (server, _publisher, _) = live(&[], "stats");
    // Let the bitrate window fill, then a viewer fetch the playlist.
    let filled = wait_for(STREAM_TIMEOUT, || {
        let r = get(&server.http_url("/api/streams/stats"));
        serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|s| {
            s["uptime_s"].as_f64().unwrap_or(0.0) > 3.0 && s["bitrate_kbps"].as_u64() > Some(0)
        })
    });
    assert!(filled, "no bitrate after 3 s:\n{}", server.logs());
    get(&server.http_url("/live/stats/index.m3u8"));

    let one = get(&server.http_url("/api/streams/stats"));
    assert_eq!(one.status, 200);
    let s: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert!(s["uptime_s"].as_f64().unwrap() > 2.0);
    assert!(s["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    // From the SPS and AudioSpecificConfig ffmpeg sent, and its onMetaData.
    assert_eq!(s["video"]["codec"], "avc1.64001E");
    assert_eq!(s["video"]["frame_rate"].as_f64(), Some(30.0));
    assert_eq!(s["audio"]["codec"], "mp4a.40.2");
    assert_eq!(
        s["encoder"].as_str().map(|e| e.starts_with("Lavf")),
        Some(true)
    );
    // The test file is 735 kb/s (600k video, 96k audio, FLV overhead), sent in real time.
    let kbps = s["bitrate_kbps"].as_u64().unwrap();
    assert!((450..=1100).contains(&kbps), "bitrate {kbps} kb/s");
    assert!(s["bytes_in"].as_u64().unwrap() > 100_000);
    assert_eq!(s["keyframe_interval_s"].as_f64(), Some(2.0));
    assert_eq!(s["target_duration"], 2);
    assert!(s["segments"].as_u64().unwrap() >= 2);
    assert_eq!(s["viewers"], 1);

    let srv: serde_json::Value =
        serde_json::from_slice(&get(&server.http_url("/api/server")).body).unwrap();
    assert!(srv["uptime_s"].as_f64().unwrap() > 2.0);
    assert_eq!(srv["streams"], 1);
    assert_eq!(srv["connections"]["rtmp"], 1);
    assert!(srv["connections"]["http"].as_i64().unwrap() >= 1);
    assert!(srv["bytes"]["in"].as_u64().unwrap() > 100_000);
    assert!(srv["bytes"]["out"].as_u64().unwrap() > 0);
    assert_eq!(srv["publishes"]["accepted"], 1);
    assert_eq!(srv["publishes"]["rejected"]["unknown_key"], 0);
    assert!(srv["disk"]["bytes_used"].as_u64().unwrap() > 0);
    assert!(srv["disk"]["writes"].as_u64().unwrap() > 0);
    assert_eq!(srv["disk"]["errors"], 0);
    // The same figures in the metrics.
    assert_eq!(server.metric("rtmp_server_streams_live"), Some(1.0));
    assert_eq!(server.metric("rtmp_server_rtmp_connections"), Some(1.0));
}

#[test]
fn sigterm_ends_live_playlists_and_exits_cleanly() {
    let (mut server, mut publisher, _) = live(&[], "stop");
    let status = server.terminate();
    assert!(status.success(), "exit status {status}:\n{}", server.logs());
    let text = std::fs::read_to_string(server.stream_dir("stop").join("index.m3u8")).unwrap();
    let playlist = parse_playlist(&text);
    assert!(playlist.ended, "no ENDLIST after SIGTERM:\n{text}");
    for e in &playlist.entries {
        assert!(
            server.stream_dir("stop").join(&e.uri).exists(),
            "{} listed but not on disk",
            e.uri
        );
    }
    assert!(
        publisher.wait(STREAM_TIMEOUT).is_some(),
        "the publisher was not disconnected"
    );
    server.assert_logged("stopped");
}

#[test]
fn with_an_api_token_the_operator_endpoints_need_it_and_playback_stays_open() {
    let server = ServerProcess::start(&["--http-api-token", "op-s3cret"]);
    let mut publisher = ClientPublisher::start(&server, "tokened");
    for tag in flv_tags(&testdata("flv/h264_aac.flv")) {
        publisher.send_tag(&tag, tag.timestamp);
    }
    wait_playlist(&server, "tokened");
    for path in [
        "/api/server",
        "/api/streams",
        "/api/streams/tokened",
        "/metrics",
    ] {
        let url = server.http_url(path);
        for authorization in [None, Some("Bearer wrong"), Some("Basic b3AtczNjcmV0")] {
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|a| ("authorization", *a))
                .collect();
            let r = http("GET", &url, &headers);
            assert_eq!(r.status, 401, "{path} with {authorization:?}");
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{path}: {:?}",
                r.headers
            );
        }
        let r = http("GET", &url, &[("authorization", "Bearer op-s3cret")]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    let r = http(
        "GET",
        &server.http_url("/metrics"),
        &[("authorization", "Bearer op-s3cret")],
    );
    assert!(
        r.text().contains("rtmp_server_publishes_total 1"),
        "{}",
        r.text()
    );
    // Playback and health need nothing, and CORS is as before.
    for path in [
        "/healthz",
        "/readyz",
        "/live/tokened/index.m3u8",
        "/live/tokened/llhls.m3u8",
    ] {
        let r = http(
            "GET",
            &server.http_url(path),
            &[("origin", "https://player.example")],
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
    }
    publisher.finish();
    server.assert_logged("API request refused");
    assert!(!server.logs().contains("op-s3cret"), "the token was logged");
}
