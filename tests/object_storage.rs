//! Object storage, end to end: the real server binary publishing to a real S3-compatible
//! server (s3s-fs, from the Rust registry) on loopback, a real ffmpeg publisher, the bucket
//! read back with signed requests. Objects carry the right `Content-Type` and
//! `Cache-Control`; the bucket's playlist advances and lists only segments in the bucket; old
//! segments go after their availability period; storage down for 20 s never stalls the
//! node's stream and the bucket's playlist stays valid; wrong credentials and a missing
//! bucket are clear errors; a file above the multipart threshold goes up in parts.

mod common;

use std::time::{Duration, Instant};

use common::s3::{BUCKET, S3Server};
use common::*;

/// The bucket's copy of a playlist, parsed; `None` while it is not there.
fn bucket_playlist(s3: &S3Server, key: &str) -> Option<Playlist> {
    let r = s3.get(key)?;
    (r.status == 200).then(|| parse_playlist(&r.text()))
}

/// Every segment `playlist` (at `dir`, a key prefix) lists exists in the bucket.
fn assert_listed_exist(s3: &S3Server, dir: &str, playlist: &Playlist) {
    for e in &playlist.entries {
        let key = format!("{dir}/{}", e.uri);
        assert!(
            s3.exists(&key),
            "the bucket's playlist lists {key}, which is not in the bucket:\n{}",
            playlist.text
        );
    }
}

fn start_server(s3: &S3Server, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<String> = s3.server_args();
    args.extend(["--hls-time", "1"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&args)
}

/// The median of the `_bucket` series of a histogram in `/metrics` (the upper bound of the
/// bucket the middle observation falls in), and the count and mean.
fn histogram_median(server: &ServerProcess, name: &str) -> (f64, f64, f64) {
    let text = server.metrics();
    let count = metric_value(&text, &format!("{name}_count")).unwrap_or(0.0);
    let sum = metric_value(&text, &format!("{name}_sum")).unwrap_or(0.0);
    let mut median = f64::NAN;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) else {
            continue;
        };
        let (le, value) = rest.split_once("\"} ").unwrap_or(("", ""));
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        if n >= count / 2.0 && median.is_nan() {
            median = le.parse().unwrap_or(f64::INFINITY);
        }
    }
    (median, count, if count > 0.0 { sum / count } else { 0.0 })
}

#[test]
fn segments_and_playlists_go_up_with_cdn_headers_and_old_ones_go() {
    let s3 = S3Server::start();
    let server = start_server(&s3, &[]);
    let mut publisher = live_publisher(&server, "cdn");
    let node = wait_playlist(&server, "cdn");
    assert_advances(&server, "cdn", &mut publisher, &node);

    // The classic playlist and its TS segments.
    let mut first: Option<Playlist> = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        first = bucket_playlist(&s3, "live/cdn/index.m3u8").filter(|p| p.entries.len() >= 2);
        first.is_some()
    });
    assert!(ok, "no playlist in the bucket:\n{}", server.logs());
    let first = first.unwrap();
    let r = s3.get("live/cdn/index.m3u8").unwrap();
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=1"));
    assert_listed_exist(&s3, "live/cdn", &first);
    let segment = s3
        .get(&format!("live/cdn/{}", first.entries[0].uri))
        .unwrap();
    assert_eq!(segment.status, 200);
    assert_eq!(segment.header("content-type"), Some("video/mp2t"));
    assert_eq!(
        segment.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(segment.body[0], 0x47, "an MPEG-TS sync byte");

    // The CMAF playlist (parts-free), its segments and initialization section.
    let mut cmaf: Option<Playlist> = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        cmaf = bucket_playlist(&s3, "live/cdn/llhls.m3u8").filter(|p| !p.entries.is_empty());
        cmaf.is_some()
    });
    assert!(ok, "no CMAF playlist in the bucket:\n{}", server.logs());
    let cmaf = cmaf.unwrap();
    assert!(!cmaf.text.contains("EXT-X-PART:"), "{}", cmaf.text);
    assert_listed_exist(&s3, "live/cdn", &cmaf);
    let m4s = s3
        .get(&format!("live/cdn/{}", cmaf.entries[0].uri))
        .unwrap();
    assert_eq!(m4s.header("content-type"), Some("video/iso.segment"));
    let init = cmaf
        .text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|rest| rest.split('"').next())
        .expect("EXT-X-MAP")
        .to_string();
    let init = s3.get(&format!("live/cdn/{init}")).unwrap();
    assert_eq!(init.status, 200);
    assert_eq!(init.header("content-type"), Some("video/mp4"));
    assert_eq!(
        init.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    // The bucket's playlist advances; every version read lists only what is there.
    let mut last = first.clone();
    let advanced = wait_for(STREAM_TIMEOUT, || {
        let Some(p) = bucket_playlist(&s3, "live/cdn/index.m3u8") else {
            return false;
        };
        assert!(
            p.media_sequence >= last.media_sequence,
            "went back:\n{}",
            p.text
        );
        assert_listed_exist(&s3, "live/cdn", &p);
        let moved = p.media_sequence > first.media_sequence + 3;
        last = p;
        moved
    });
    assert!(
        advanced,
        "the bucket's playlist did not advance:\n{}",
        server.logs()
    );

    // The first segment listed left the playlist long ago: after its availability period
    // (its duration plus the longest playlist, a few seconds) it is gone from the bucket.
    let old = format!("live/cdn/{}", first.entries[0].uri);
    let gone = wait_for(STREAM_TIMEOUT, || {
        s3.get(&old).is_some_and(|r| r.status == 404)
    });
    assert!(gone, "{old} still in the bucket:\n{}", server.logs());
    assert!(server.metric("rtmp_server_s3_deletes_total").unwrap_or(0.0) >= 1.0);

    let (median, count, mean) = histogram_median(&server, "rtmp_server_s3_playlist_lag_seconds");
    eprintln!(
        "playlist lag (listed on the node -> in the bucket): {count} versions, median <= {:.0} ms \
         (histogram bucket), mean {:.1} ms",
        median * 1000.0,
        mean * 1000.0
    );
    assert!(count > 0.0);
    assert!(
        server
            .metric("rtmp_server_s3_upload_bytes_total")
            .unwrap_or(0.0)
            > 0.0
    );
}

#[test]
fn storage_down_for_20_s_never_stalls_the_stream_and_the_bucket_stays_valid() {
    let mut s3 = S3Server::start();
    // A queue of 1 MiB: the outage fills it, so the oldest segment uploads are dropped and
    // the bucket's playlist must skip them honestly.
    let server = start_server(&s3, &["--s3-timeout", "2", "--s3-max-queue", "1048576"]);
    let mut publisher = live_publisher(&server, "down");
    wait_playlist(&server, "down");
    let mut before: Option<Playlist> = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        before = bucket_playlist(&s3, "live/down/index.m3u8").filter(|p| p.entries.len() >= 2);
        before.is_some()
    });
    assert!(ok, "no playlist in the bucket:\n{}", server.logs());
    let before = before.unwrap();

    s3.kill();
    // 20 s without storage: the node's playlist keeps moving all along.
    let down = Instant::now();
    let mut node = http_playlist(&server, "down").expect("the node's playlist");
    while down.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_secs(3));
        let now = http_playlist(&server, "down").expect("the node's playlist");
        let newest = |p: &Playlist| p.entries.last().map(|e| e.uri.clone());
        assert!(
            newest(&now) != newest(&node) && now.media_sequence >= node.media_sequence,
            "the node's playlist stalled while storage was down:\n{}\n{}",
            now.text,
            server.logs()
        );
        node = now;
    }
    assert!(publisher.is_running(), "{}", publisher.logs());
    s3.restart();

    // Uploads resume: the bucket's playlist moves past where the node was at the end of the
    // outage, and every version read on the way lists only segments in the bucket, never
    // going back.
    let mut seen = before.media_sequence;
    let mut seen_text = String::new();
    let mut versions = 0;
    let resumed = wait_for(STREAM_TIMEOUT, || {
        let Some(p) = bucket_playlist(&s3, "live/down/index.m3u8") else {
            return false;
        };
        assert!(
            p.media_sequence >= seen,
            "media sequence went back from {seen}:\n{}",
            p.text
        );
        assert_listed_exist(&s3, "live/down", &p);
        seen = p.media_sequence;
        seen_text = p.text.clone();
        versions += 1;
        // Past where the node was when storage came back (the segments in between may
        // have been dropped, and skipped).
        p.media_sequence > node.media_sequence
    });
    assert!(
        resumed,
        "uploads did not resume (bucket at {seen}, node at {}):\n{seen_text}\n{}\n{}",
        node.media_sequence,
        node.text,
        server.logs()
    );
    let failures: f64 = server
        .metrics()
        .lines()
        .filter(|l| l.starts_with("rtmp_server_s3_failures_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(failures > 0.0, "failures counted");
    assert!(server.metric("rtmp_server_s3_retries_total").unwrap_or(0.0) > 0.0);
    assert!(
        server.metric("rtmp_server_s3_dropped_total").unwrap_or(0.0) > 0.0,
        "the outage did not fill the queue:\n{}",
        server.metrics()
    );
}

#[test]
fn wrong_credentials_and_a_missing_bucket_are_clear_errors_and_the_node_serves() {
    let s3 = S3Server::start();
    let server = start_server(&s3, &["--s3-secret-key", "wrong"]);
    assert!(
        server.wait_log("access denied", START_TIMEOUT),
        "no clear error:\n{}",
        server.logs()
    );
    let mut publisher = live_publisher(&server, "creds");
    let node = wait_playlist(&server, "creds");
    assert_advances(&server, "creds", &mut publisher, &node);
    let counted = wait_for(STREAM_TIMEOUT, || {
        server
            .metric("rtmp_server_s3_failures_total{reason=\"status_403\"}")
            .unwrap_or(0.0)
            > 1.0
    });
    assert!(counted, "failures not counted:\n{}", server.metrics());
    assert!(!s3.exists("live/creds/index.m3u8"));
    assert_eq!(get(&server.http_url("/readyz")).status, 200);
    drop(publisher);

    let mut args = s3.server_args();
    let bucket = args.iter().position(|a| a == BUCKET).unwrap();
    args[bucket] = "no-such-bucket".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let missing = ServerProcess::start(&args);
    assert!(
        missing.wait_log("the bucket does not exist", START_TIMEOUT),
        "no clear error:\n{}",
        missing.logs()
    );
}

/// A file above the multipart threshold (a long recording) goes up in parts and comes back
/// whole, with its headers.
#[test]
fn a_large_file_goes_up_as_a_multipart_upload() {
    use rtmp_server::storage::client::{MULTIPART_ABOVE, PART_SIZE, S3Client};
    let s3 = S3Server::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("media.mp4");
    let len = MULTIPART_ABOVE + PART_SIZE / 2 + 7;
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).expect("write the file");
    let config = rtmp_server::config::S3Config {
        endpoint: s3.endpoint(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key: common::s3::ACCESS_KEY.into(),
        secret_key: common::s3::SECRET_KEY.into(),
        ..Default::default()
    };
    let client = S3Client::new(&config).expect("a client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sent = runtime
        .block_on(client.put_file(
            "recordings/big/media.mp4",
            &path,
            "video/mp4",
            "public, max-age=31536000, immutable",
        ))
        .expect("the multipart upload");
    assert_eq!(sent, len);
    // Read back in two ranges (the test client takes at most 64 MiB at once), across the
    // parts' boundary.
    let key = "recordings/big/media.mp4";
    let split = PART_SIZE * 3 + 5;
    let head = s3
        .get_with(key, &[("range", &format!("bytes=0-{}", split - 1))])
        .expect("s3s-fs answers");
    assert_eq!(head.status, 206);
    assert_eq!(head.header("content-type"), Some("video/mp4"));
    let tail = s3
        .get_with(key, &[("range", &format!("bytes={split}-"))])
        .expect("s3s-fs answers");
    assert_eq!(tail.status, 206);
    assert_eq!((head.body.len() + tail.body.len()) as u64, len);
    assert!(
        head.body == data[..split as usize] && tail.body == data[split as usize..],
        "the object differs from the file"
    );
}

/// A server that starts again (or another node) continues the bucket's playlist: its media
/// sequence goes past the last number the earlier copy listed, after a discontinuity, and
/// never back.
#[test]
fn a_restarted_server_continues_the_bucket_playlist() {
    let s3 = S3Server::start();
    let mut first = start_server(&s3, &[]);
    let publisher = live_publisher(&first, "again");
    let mut before: Option<Playlist> = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        before = bucket_playlist(&s3, "live/again/index.m3u8").filter(|p| p.entries.len() >= 3);
        before.is_some()
    });
    assert!(ok, "no playlist in the bucket:\n{}", first.logs());
    drop(publisher);
    first.terminate();
    let last = bucket_playlist(&s3, "live/again/index.m3u8").expect("the earlier copy");
    let last_number = last.media_sequence + last.entries.len() as u64 - 1;

    let second = start_server(&s3, &[]);
    let _publisher = live_publisher(&second, "again");
    let mut next: Option<Playlist> = None;
    let continued = wait_for(STREAM_TIMEOUT, || {
        next = bucket_playlist(&s3, "live/again/index.m3u8").filter(|p| {
            !p.ended
                && p.entries
                    .iter()
                    .all(|e| !last.entries.iter().any(|l| l.uri == e.uri))
        });
        next.is_some()
    });
    assert!(
        continued,
        "the second server's playlist is not in the bucket:\n{}",
        second.logs()
    );
    let next = next.unwrap();
    assert!(
        next.media_sequence > last_number,
        "the media sequence went back from {last_number}:\n{}\n{}",
        last.text,
        next.text
    );
    assert!(
        next.entries[0].discontinuity,
        "no discontinuity:\n{}",
        next.text
    );
    assert_listed_exist(&s3, "live/again", &next);
}

/// Two nodes of a cluster (one real redis-server) and one bucket: a publish on node A, then
/// the same key published on node B takes it over. The bucket's playlist, written under
/// the cluster's leases, continues with B's segments after a discontinuity, its media
/// sequence never going back, and every version read lists only segments in the bucket.
#[test]
fn a_takeover_across_nodes_continues_the_bucket_playlist() {
    let redis = common::redis::RedisServer::start();
    let s3 = S3Server::start();
    let url = redis.url();
    let cluster = |id: &'static str| {
        let mut args = vec![
            "--cluster-redis",
            url.as_str(),
            "--cluster-node-id",
            id,
            "--cluster-lease",
            "2",
        ];
        args.extend(["--hls-time", "1"]);
        let s3_args = s3.server_args();
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(s3_args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        ServerProcess::start(&all)
    };
    let a = cluster("node-a");
    let b = cluster("node-b");
    let on_a = live_publisher(&a, "move");
    let mut before: Option<Playlist> = None;
    let ok = wait_for(STREAM_TIMEOUT, || {
        before = bucket_playlist(&s3, "live/move/index.m3u8").filter(|p| p.entries.len() >= 3);
        before.is_some()
    });
    assert!(ok, "no playlist in the bucket from node A:\n{}", a.logs());
    let before = before.unwrap();

    let _on_b = live_publisher(&b, "move");
    let mut seen = before.media_sequence;
    let mut last_a: Option<Playlist> = None;
    let mut from_b: Option<Playlist> = None;
    let moved = wait_for(STREAM_TIMEOUT, || {
        let Some(p) = bucket_playlist(&s3, "live/move/index.m3u8") else {
            return false;
        };
        assert!(
            p.media_sequence >= seen,
            "media sequence went back from {seen}:\n{}",
            p.text
        );
        assert_listed_exist(&s3, "live/move", &p);
        seen = p.media_sequence;
        let prefix = |uri: &str| uri.split('-').next().unwrap_or_default().to_string();
        let a_prefix = prefix(&before.entries[0].uri);
        if p.entries.iter().all(|e| prefix(&e.uri) == a_prefix) {
            last_a = Some(p);
            false
        } else {
            from_b = Some(p);
            true
        }
    });
    assert!(
        moved,
        "node B's playlist is not in the bucket:\n{}\n{}",
        a.logs(),
        b.logs()
    );
    let from_b = from_b.unwrap();
    let last_a = last_a.unwrap_or(before);
    let a_prefix = last_a.entries[0].uri.split('-').next().unwrap_or_default();
    let first_b = from_b
        .entries
        .iter()
        .position(|e| !e.uri.starts_with(a_prefix))
        .expect("one of B's segments");
    assert!(
        from_b.entries[first_b].discontinuity,
        "no discontinuity before B's first segment:\n{}",
        from_b.text
    );
    let last_a_number = last_a.media_sequence + last_a.entries.len() as u64 - 1;
    assert!(
        from_b.media_sequence + first_b as u64 > last_a_number,
        "a sequence number reused:\n{}\n{}",
        last_a.text,
        from_b.text
    );
    drop(on_a);
}
