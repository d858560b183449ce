//! `rtmp-server bench-publish` against the real server, and the project's RTMP client as a
//! publisher whose output is checked frame by frame.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

fn bench_publish(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
        .arg("bench-publish")
        .arg("--file")
        .arg(testdata("flv/h264_aac.flv"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run bench-publish");
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, summary)
}

/// The number before `label` in the summary line that starts with `row`.
fn number_before(summary: &str, row: &str, label: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(row))
        .unwrap_or_else(|| panic!("no {row} row:\n{summary}"));
    let before = &line[..line.find(label).expect(label)];
    before
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {label:?} in {line:?}"))
}

#[test]
fn three_streams_with_two_viewers_each() {
    let server = ServerProcess::start(&[]);
    let keys = ["bench-1", "bench-2", "bench-3"];

    // Watch the playlists from the side while the run goes on: the last segment sequence
    // number each one showed first and at its highest.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let urls: Vec<(String, String)> = keys
            .iter()
            .map(|k| {
                let url = server.http_url(&format!("/live/{k}/index.m3u8"));
                (k.to_string(), url)
            })
            .collect();
        std::thread::spawn(move || {
            let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
            while !done.load(Ordering::Relaxed) {
                for (key, url) in &urls {
                    let r = get(url);
                    if r.status != 200 {
                        continue;
                    }
                    let p = parse_playlist(&r.text());
                    if p.entries.is_empty() {
                        continue;
                    }
                    let last = p.media_sequence + p.entries.len() as u64 - 1;
                    let entry = seen.entry(key.clone()).or_insert((last, last));
                    entry.1 = entry.1.max(last);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            seen
        })
    };

    let url = format!("rtmp://127.0.0.1:{}/live", server.rtmp_port);
    let http = server.http_url("");
    let (output, summary) = bench_publish(&[
        "--url",
        &url,
        "--streams",
        "3",
        "--duration",
        "6",
        "--viewers",
        "2",
        "--http",
        &http,
    ]);
    done.store(true, Ordering::Relaxed);
    let seen = watcher.join().expect("watcher");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench-publish failed:\n{summary}\n{stderr}\nserver:\n{}",
        server.logs()
    );

    assert!(
        summary.contains("3 started, 0 rejected, 0 failed, 3 completed"),
        "{summary}"
    );
    assert!(
        summary.contains("3 of 3 appeared, 3 of 3 advanced"),
        "{summary}"
    );
    // 6 s of media in 2 s segments: each of the 6 viewers fetches about 3.
    let fetched = number_before(&summary, "viewers", "segments fetched");
    assert!(fetched >= 12, "{fetched} segments fetched:\n{summary}");
    assert_eq!(number_before(&summary, "viewers", "errors"), 0, "{summary}");

    for key in keys {
        let (first, highest) = seen
            .get(key)
            .copied()
            .unwrap_or_else(|| panic!("{key}: playlist never appeared:\n{}", server.logs()));
        assert!(highest > first, "{key}: playlist did not advance ({first})");
    }
    server.assert_logged_times("publish started", 3);
    assert_eq!(server.logs().matches("publish started").count(), 3);
    for key in keys {
        server.assert_logged(&format!(" name={key} app="));
    }
}

#[test]
fn refused_and_unreachable_streams_make_the_run_fail() {
    // Nobody listens on a port just released.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("rtmp://127.0.0.1:{port}/live");
    let (output, summary) = bench_publish(&["--url", &url, "--streams", "2", "--duration", "1"]);
    assert_eq!(output.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("0 started, 0 rejected, 2 failed"),
        "{summary}"
    );
    assert!(summary.contains("bench-1: failed: connect:"), "{summary}");

    // A stream-service that cannot be reached rejects every key; the encoder is told why
    // before the connection closes.
    let server = ServerProcess::start(&["--stream-service", &format!("http://127.0.0.1:{port}")]);
    let url = format!("rtmp://127.0.0.1:{}/live", server.rtmp_port);
    let (output, summary) = bench_publish(&["--url", &url, "--streams", "2", "--duration", "1"]);
    assert_eq!(output.status.code(), Some(1), "{summary}");
    assert!(summary.contains(" 0 started, "), "{summary}");
    for key in ["bench-1", "bench-2"] {
        let refused = format!("{key}: rejected: NetStream.Publish.Unauthorized");
        assert!(summary.contains(&refused), "{key}:\n{summary}");
    }
    server.assert_logged("publish refused");
}

#[test]
fn client_publish_is_remuxed_frame_for_frame() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let mut publisher = ClientPublisher::start(&server, "client");
    for tag in flv_tags(&source) {
        publisher.send_tag(&tag, tag.timestamp);
    }
    publisher.finish();

    let (playlist, segments) = finished_segments(&server, "client");
    assert!(segments.len() >= 4, "10 s in 2 s segments: {playlist:?}");
    assert_same_frames(&source, &segments);
    for seg in &segments {
        let errors = decode_errors(seg);
        assert!(errors.is_empty(), "{}: {errors}", seg.display());
    }
    server.assert_logged("flash_ver=\"FMLE/3.0\"");
}
