//! HTTP delivery end to end: a real ffmpeg publishes, real HTTP requests read playlists,
//! segments, the stats API and metrics, and the server is stopped with SIGTERM.

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
fn playlists_and_segments_carry_the_headers_players_and_cdns_need() {
    let (server, _publisher, playlist) = live(&[], "headers");
    let url = server.http_url("/live/headers/index.m3u8");

    let r = http("GET", &url, &[("Origin", "https://player.example")]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let exposed = r.header("access-control-expose-headers").unwrap_or("");
    assert!(
        exposed.contains("content-length") && exposed.contains("etag"),
        "{exposed}"
    );
    assert!(r.header("etag").is_some(), "playlist ETag");

    // A conditional request for an unchanged playlist is answered 304 with no body; one
    // that races a new segment gets the new playlist with a new ETag.
    let revalidated = (0..5).any(|_| {
        let etag = get(&url).header("etag").unwrap().to_string();
        let again = http("GET", &url, &[("If-None-Match", &etag)]);
        if again.status == 304 {
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(etag.as_str()));
            return true;
        }
        assert_eq!(again.status, 200);
        assert_ne!(again.header("etag"), Some(etag.as_str()));
        false
    });
    assert!(revalidated, "never answered 304");

    // HEAD: the same headers, no body.
    let head = http("HEAD", &url, &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(head.header("content-length").is_some());
    assert!(head.body.is_empty());

    let seg_url = server.http_url(&format!("/live/headers/{}", playlist.entries[0].uri));
    let seg = get(&seg_url);
    assert_eq!(seg.status, 200);
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        seg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        seg.header("content-length"),
        Some(seg.body.len().to_string().as_str())
    );
    assert_eq!(seg.body.len() % 188, 0);
    assert_eq!(seg.body[0], 0x47);
    let seg_head = http("HEAD", &seg_url, &[]);
    assert_eq!(
        seg_head.header("content-length"),
        seg.header("content-length")
    );

    // CORS preflight.
    let pre = http(
        "OPTIONS",
        &url,
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert!(
        pre.status == 200 || pre.status == 204,
        "preflight status {}",
        pre.status
    );
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap_or("")
            .contains("GET")
    );
}

#[test]
fn an_origin_list_allows_only_its_origins() {
    let (server, _publisher, _) = live(
        &[
            "--http-allow-origin",
            "https://a.example, https://b.example",
        ],
        "origins",
    );
    let url = server.http_url("/live/origins/index.m3u8");
    let allowed = http("GET", &url, &[("Origin", "https://b.example")]);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    let other = http("GET", &url, &[("Origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn unknown_streams_and_segments_and_paths_outside_the_media_root_are_not_found() {
    let (server, _publisher, _) = live(&["--hls-keep"], "paths");
    // A file next to the media root that no request may reach.
    let secret = server.media_root.path().parent().unwrap().join("secret.ts");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::write(
        server.media_root.path().join("live").join("top.ts"),
        b"secret",
    )
    .unwrap();
    for path in [
        "/live/nosuchstream/index.m3u8",
        "/live/paths/nosuchsegment-1.ts",
        "/other/paths/index.m3u8",
        "/live/paths/../../secret.ts",
        "/live/paths/..%2f..%2fsecret.ts",
        "/live/%2e%2e/top.ts",
        "/live/..%2F..%2F/secret.ts",
        "/live/paths/%2e%2e%2fpaths%2findex.m3u8",
        "/live/paths/a%00.ts",
        "/live/pa%00ths/index.m3u8",
        "/live/paths/index.m3u8%00.ts",
        "/live/paths/.ts",
        "/live/.hidden/index.m3u8",
        "/live/%ff%fe/index.m3u8",
    ] {
        let r = get(&server.http_url(path));
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: status {}",
            r.status
        );
        assert!(
            !r.text().contains("secret"),
            "{path} reached a file outside the stream"
        );
    }
    let long = format!("/live/{}/index.m3u8", "k".repeat(5000));
    assert!(matches!(
        get(&server.http_url(&long)).status,
        404 | 400 | 414 | 431
    ));
    let long_seg = format!("/live/paths/{}.ts", "s".repeat(300));
    assert_eq!(get(&server.http_url(&long_seg)).status, 404);
}

#[test]
fn the_stats_api_describes_the_live_stream() {
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

    let list = get(&server.http_url("/api/streams"));
    assert_eq!(list.status, 200);
    assert_eq!(list.header("content-type"), Some("application/json"));
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let streams = list["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{list}");

    let one = get(&server.http_url("/api/streams/stats"));
    assert_eq!(one.status, 200);
    let s: serde_json::Value = serde_json::from_slice(&one.body).unwrap();
    assert_eq!(s["name"], "stats");
    assert_eq!(s["app"], "live");
    assert_eq!(s["playlist"], "/live/stats/index.m3u8");
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(s["uptime_s"].as_f64().unwrap() > 2.0);
    assert!(s["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(s["video"]["codec"], "avc1.64001E");
    assert_eq!(s["video"]["profile"], "High");
    assert_eq!(s["video"]["level"], "3.0");
    assert_eq!(
        (s["video"]["width"].as_u64(), s["video"]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(s["video"]["frame_rate"].as_f64(), Some(30.0));
    assert_eq!(s["audio"]["codec"], "mp4a.40.2");
    assert_eq!(s["audio"]["sample_rate"], 48000);
    assert_eq!(s["audio"]["channels"], 2);
    // The test file is 735 kb/s (600k video, 96k audio, FLV overhead).
    let kbps = s["bitrate_kbps"].as_u64().unwrap();
    assert!((450..=1100).contains(&kbps), "bitrate {kbps} kb/s");
    assert!(s["bytes_in"].as_u64().unwrap() > 100_000);
    assert_eq!(s["keyframe_interval_s"].as_f64(), Some(2.0));
    assert_eq!(s["target_duration"], 2);
    assert!(s["segments"].as_u64().unwrap() >= 2);
    assert_eq!(s["viewers"], 1);
    assert_eq!(
        s["encoder"].as_str().map(|e| e.starts_with("Lavf")),
        Some(true)
    );

    assert_eq!(get(&server.http_url("/api/streams/nosuch")).status, 404);

    let srv: serde_json::Value =
        serde_json::from_slice(&get(&server.http_url("/api/server")).body).unwrap();
    assert_eq!(srv["version"], env!("CARGO_PKG_VERSION"));
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
}

#[test]
fn metrics_are_prometheus_text_and_health_endpoints_answer() {
    let (server, _publisher, _) = live(&[], "metrics");
    let r = get(&server.http_url("/metrics"));
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text();
    let mut names = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        names.push(name.to_string());
    }
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    for expected in [
        "rtmp_server_rtmp_connections",
        "rtmp_server_http_connections",
        "rtmp_server_rtmp_bytes_in_total",
        "rtmp_server_http_bytes_out_total",
        "rtmp_server_streams_live",
        "rtmp_server_segments_total",
        "rtmp_server_disk_errors_total",
        "rtmp_server_segment_publish_seconds_bucket",
        "rtmp_server_stream_service_seconds_count",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing:\n{text}"
        );
    }
    assert!(text.contains("rtmp_server_streams_live 1"), "{text}");

    assert_eq!(get(&server.http_url("/healthz")).status, 200);
    assert_eq!(get(&server.http_url("/readyz")).status, 200);
}

#[test]
fn readiness_fails_when_the_media_root_is_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let root = blocker.join("media");
    let server = ServerProcess::start(&["--media-root", root.to_str().unwrap()]);
    assert_eq!(get(&server.http_url("/healthz")).status, 200);
    let r = get(&server.http_url("/readyz"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("media root"), "{}", r.text());
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
