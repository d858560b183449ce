//! `rtmp-load` against the real server: a run that succeeds, with viewers, and runs whose
//! streams are refused or cannot connect.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

#[test]
fn three_streams_with_two_viewers_each() {
    let server = TestServer::start(|_| {});
    let keys = ["bench-1", "bench-2", "bench-3"];

    // Watch the playlists from the side while the run goes on: the last segment sequence
    // number each one showed first and at its highest.
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let urls: Vec<(String, String)> = keys
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    server.http_url(&format!("/live/{k}/index.m3u8")),
                )
            })
            .collect();
        std::thread::spawn(move || {
            let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
            while !done.load(Ordering::Relaxed) {
                for (key, url) in &urls {
                    let Some((200, text)) = get(url) else {
                        continue;
                    };
                    let Some(last) = last_sequence(&text) else {
                        continue;
                    };
                    let entry = seen.entry(key.clone()).or_insert((last, last));
                    entry.1 = entry.1.max(last);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            seen
        })
    };

    let url = server.rtmp_url();
    let http = server.http_url("");
    let (output, summary) = rtmp_load(&[
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
        "rtmp-load failed:\n{summary}\n{stderr}\nserver:\n{}",
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
    assert_eq!(server.metric("rtmp_server_publishes_total"), 3);
    assert_eq!(server.metric("rtmp_server_publishes_rejected_total"), 0);
}

#[test]
fn low_latency_viewers_fetch_every_part_without_errors() {
    let server = TestServer::start(|_| {});
    let url = server.rtmp_url();
    let http = server.http_url("");
    let (output, summary) = rtmp_load(&[
        "--url",
        &url,
        "--streams",
        "1",
        "--duration",
        "6",
        "--ll-viewers",
        "2",
        "--http",
        &http,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "rtmp-load failed:\n{summary}\n{stderr}\nserver:\n{}",
        server.logs()
    );
    println!("{summary}");

    // 6 s of media in 0.2 s parts is about 30 parts. The playlist appears once the first
    // 2 s segment has closed (it fixes the target duration); each viewer starts a few parts
    // before its live edge and follows to EXT-X-ENDLIST: about 20 parts each.
    let fetched = number_before(&summary, "LL viewers", "parts fetched");
    assert!(fetched >= 2 * 12, "{fetched} parts fetched:\n{summary}");
    let blocking = number_before(&summary, "LL viewers", "blocking");
    assert!(
        blocking >= 2 * 10,
        "{blocking} blocking requests:\n{summary}"
    );
    assert_eq!(
        number_before(&summary, "LL viewers", "errors"),
        0,
        "{summary}\nserver:\n{}",
        server.logs()
    );
    // Parts were tied to the frames the publisher sent, and every one could be.
    let timed = number_before(&summary, "LL part listed", "parts timed");
    assert!(timed >= 2 * 8, "{timed} parts timed:\n{summary}");
    assert_eq!(
        number_before(&summary, "LL untimed parts", "not matched"),
        0,
        "{summary}"
    );
    assert_eq!(
        number_before(&summary, "LL untimed parts", "initialization sections"),
        2,
        "{summary}"
    );
}

#[test]
fn rtmp_players_play_or_are_told_why_not() {
    // Whether this server plays RTMP or refuses with a status, every player gets as far as
    // `play` and the summary says what came of it.
    let server = TestServer::start(|_| {});
    let url = server.rtmp_url();
    let (output, summary) = rtmp_load(&[
        "--url",
        &url,
        "--streams",
        "1",
        "--duration",
        "3",
        "--rtmp-players",
        "2",
        "--rtmp-stalled-players",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{summary}");
    assert!(
        summary.contains("1 started, 0 rejected, 0 failed, 1 completed"),
        "{summary}\n{stderr}"
    );
    assert!(summary.contains("RTMP players       2: "), "{summary}");
    assert!(
        summary.contains("RTMP stalled       1: 1 sent play"),
        "{summary}"
    );
    let played = number_before(&summary, "RTMP players", "played");
    if output.status.success() {
        assert_eq!(played, 2, "{summary}");
        assert!(summary.contains("play to video"), "{summary}");
    } else {
        assert_eq!(output.status.code(), Some(1), "{summary}\n{stderr}");
        for n in [1, 2] {
            let refused = format!("bench-1 player {n}: rejected: NetStream.Play.");
            assert!(summary.contains(&refused), "{summary}");
        }
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
    let (output, summary) = rtmp_load(&["--url", &url, "--streams", "2", "--duration", "1"]);
    assert_eq!(output.status.code(), Some(1), "{summary}");
    assert!(
        summary.contains("0 started, 0 rejected, 2 failed"),
        "{summary}"
    );
    assert!(summary.contains("bench-1: failed: connect:"), "{summary}");

    // A stream-service that cannot be reached rejects every key; the encoder is told why
    // before the connection closes.
    let server = TestServer::start(|config| {
        config.auth.stream_service = format!("http://127.0.0.1:{port}");
    });
    let url = server.rtmp_url();
    let (output, summary) = rtmp_load(&["--url", &url, "--streams", "2", "--duration", "1"]);
    assert_eq!(output.status.code(), Some(1), "{summary}");
    assert!(summary.contains(" 0 started, "), "{summary}");
    for key in ["bench-1", "bench-2"] {
        let refused = format!("{key}: rejected: NetStream.Publish.Unauthorized");
        assert!(summary.contains(&refused), "{key}:\n{summary}");
    }
    assert_eq!(server.metric("rtmp_server_publishes_total"), 0);
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total"),
        2,
        "{}",
        server.logs()
    );
}

#[test]
fn options_out_of_range_exit_with_a_usage_error() {
    let (output, _) = rtmp_load(&[
        "--url",
        "rtmp://127.0.0.1:1/live",
        "--streams",
        "0",
        "--duration",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--streams"), "{stderr}");
}
