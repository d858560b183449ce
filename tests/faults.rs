//! Faults around a live stream, against the real server: a publisher's connection cut
//! mid-segment, an encoder that crashes and reconnects with its clock back at 0, a media
//! root that stops taking files, and storms of connections past the caps.

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use common::hls_check::check_output;
use common::*;
use rtmp_server::flv::tag::TagType;
use rtmp_server::media::RtmpTimestamp;

/// Asserts that no segment name repeats in `playlist`.
fn assert_unique_names(playlist: &Playlist) {
    let mut seen = HashSet::new();
    for e in &playlist.entries {
        assert!(
            seen.insert(&e.uri),
            "{} listed twice:\n{}",
            e.uri,
            playlist.text
        );
    }
}

/// The playlist of `key` once it has ended with more than `more_than` segments, read from
/// disk after the disk has caught up with what HTTP serves, and its segments' paths.
fn final_playlist(server: &ServerProcess, key: &str, more_than: usize) -> (Playlist, Vec<PathBuf>) {
    let mut served = None;
    let ended = wait_for(STREAM_TIMEOUT, || {
        served = http_playlist(server, key).filter(|p| p.ended && p.entries.len() > more_than);
        served.is_some()
    });
    assert!(
        ended,
        "{key} did not end with more than {more_than} segments:\n{}",
        server.logs()
    );
    let served = served.unwrap();
    let index = server.stream_dir(key).join("index.m3u8");
    let on_disk = wait_for(STREAM_TIMEOUT, || {
        std::fs::read_to_string(&index).is_ok_and(|t| t == served.text)
    });
    assert!(
        on_disk,
        "the disk playlist is not what HTTP serves:\n{}",
        served.text
    );
    let paths = segment_paths(server, key, &served);
    (served, paths)
}

#[test]
fn a_publisher_cut_mid_segment_leaves_a_finished_playlist_and_can_publish_again_at_once() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let tags = flv_tags(&source);

    // 5 s of the file: segments at 0 and 2 s are closed, the one from 4 s is half done
    // when the connection drops without FCUnpublish or deleteStream.
    let mut first = ClientPublisher::start(&server, "cut");
    for tag in tags.iter().filter(|t| t.timestamp.0 < 5_000) {
        first.send_tag(tag, tag.timestamp);
    }
    first.cut();
    let mut cut = None;
    let ended = wait_for(STREAM_TIMEOUT, || {
        cut = http_playlist(&server, "cut");
        cut.as_ref().is_some_and(|p| p.ended)
    });
    assert!(ended, "no EXT-X-ENDLIST after the cut:\n{}", server.logs());
    let cut = cut.unwrap();
    assert_eq!(cut.entries.len(), 3, "{}", cut.text);
    let partial = cut.entries.last().unwrap();
    assert!(
        (partial.duration - 1.0).abs() < 0.1,
        "the partial segment lasts {} s",
        partial.duration
    );

    // The same key publishes again at once, the file whole, from timestamp 0.
    let mut second = ClientPublisher::start(&server, "cut");
    for tag in &tags {
        second.send_tag(tag, tag.timestamp);
    }
    second.finish();

    let (playlist, segments) = final_playlist(&server, "cut", 3);
    assert_unique_names(&playlist);
    assert_eq!(
        &playlist.entries[..3]
            .iter()
            .map(|e| &e.uri)
            .collect::<Vec<_>>(),
        &cut.entries.iter().map(|e| &e.uri).collect::<Vec<_>>(),
        "the first publish's segments stay listed"
    );
    let breaks: Vec<usize> = (0..playlist.entries.len())
        .filter(|&i| playlist.entries[i].discontinuity)
        .collect();
    assert_eq!(breaks, vec![3], "{}", playlist.text);
    // Every segment, the partial one included, is whole and decodes; the second publish
    // holds the file frame for frame.
    check_output(&server.stream_dir("cut"), &playlist, true, true);
    assert_same_frames(&source, &segments[3..]);
}

#[test]
fn an_encoder_that_crashes_and_reconnects_with_its_clock_at_zero_plays_on() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let publish = || Publisher::start(&source, &server.rtmp_url("crash"), &[]);
    let segments_listed = |n: usize| {
        let ok = wait_for(STREAM_TIMEOUT, || {
            http_playlist(&server, "crash").is_some_and(|p| p.entries.len() >= n)
        });
        assert!(ok, "fewer than {n} segments:\n{}", server.logs());
    };

    // A crash: the process dies, its kernel closes the connection; the encoder restarts at
    // once with its clock back at 0. (Each fault comes about a second into a segment.)
    let mid_segment = || std::thread::sleep(Duration::from_secs(1));
    let mut first = publish();
    segments_listed(2);
    mid_segment();
    first.kill();
    let second = publish();
    segments_listed(4);
    mid_segment();
    // A hang: the encoder stops dead with its connection still open (half-open to the
    // server), and a new instance publishes the key: it takes the stream over.
    second.signal("STOP");
    let mut third = publish();
    let status = third
        .wait(STREAM_TIMEOUT)
        .expect("the third publisher ends");
    assert!(status.success(), "{}", third.logs());
    second.signal("CONT");

    let (playlist, segments) = final_playlist(&server, "crash", 4);
    assert_unique_names(&playlist);
    let breaks = playlist.entries.iter().filter(|e| e.discontinuity).count();
    assert_eq!(breaks, 2, "{}", playlist.text);
    assert!(
        playlist.entries.iter().all(|e| e.duration > 0.0),
        "{}",
        playlist.text
    );
    // Decodes everywhere, EXTINF matching the media, timestamps continuous between the
    // breaks; the last publish is the file whole.
    check_output(&server.stream_dir("crash"), &playlist, true, true);
    let last_break = playlist
        .entries
        .iter()
        .rposition(|e| e.discontinuity)
        .unwrap();
    assert_same_frames(&source, &segments[last_break..]);
    // Three publishes accepted and none refused: the third was let in while the hung second
    // still held its connection, so it took the stream over.
    let publishes = &server.api_server()["publishes"];
    assert_eq!(publishes["accepted"], 3, "{publishes}");
    assert_eq!(
        publishes["rejected"]["already_publishing"], 0,
        "{publishes}"
    );
}

#[test]
fn a_media_root_that_stops_taking_files_does_not_stop_the_stream() {
    let server = ServerProcess::start(&[]);
    let mut publisher = live_publisher(&server, "disk");
    let first = wait_playlist(&server, "disk");
    let dir = server.stream_dir("disk");
    assert!(
        wait_for(STREAM_TIMEOUT, || dir.join("index.m3u8").is_file()),
        "no playlist on disk"
    );
    assert_eq!(server.metric("rtmp_server_disk_errors_total"), Some(0.0));

    // The stream's folder becomes a regular file while the server runs (root ignores
    // permissions, so chmod would not do): every write under it fails.
    std::fs::rename(&dir, dir.with_extension("moved")).unwrap();
    std::fs::write(&dir, b"not a folder").unwrap();

    // Served from memory: the playlist advances and its newest segment is there.
    assert_advances(&server, "disk", &mut publisher, &first);
    let playlist = http_playlist(&server, "disk").unwrap();
    let newest = playlist.entries.last().unwrap();
    let segment = get(&server.http_url(&format!("/live/disk/{}", newest.uri)));
    assert_eq!(segment.status, 200);
    assert_eq!(segment.body.first(), Some(&0x47));
    // Counted and said.
    let errors = server.metric("rtmp_server_disk_errors_total").unwrap();
    assert!(errors >= 2.0, "disk errors {errors}");
    let api = server.api_server();
    assert!(api["disk"]["errors"].as_f64().unwrap() >= errors, "{api}");
    server.assert_logged("disk writer: file action failed");
    assert_eq!(std::fs::read(&dir).unwrap(), b"not a folder");
    // The media root itself still takes files.
    assert_eq!(get(&server.http_url("/readyz")).status, 200);
}

/// How many connections a storm opens.
const STORM: usize = 2_000;

/// The cap the storms run against.
const CAP: usize = 100;

/// `STORM` connections to `port`, opened as fast as the kernel takes them and held.
fn storm(port: u16) -> Vec<TcpStream> {
    rtmp_server::server::raise_open_file_limit().expect("the test may raise its own limit");
    (0..STORM)
        .map(|i| {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("storm connection {i}: {e}"))
        })
        .collect()
}

/// How many of `sockets` the server closed (end of stream or reset), without waiting.
fn closed_by_server(sockets: &[TcpStream]) -> usize {
    sockets
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).expect("nonblocking");
            let mut buf = [0u8; 1];
            let closed = match (&**s).read(&mut buf) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            s.set_nonblocking(false).expect("blocking");
            closed
        })
        .count()
}

/// File descriptors the server process holds open.
/// Descriptors the server may hold for a moment beyond its connections: a connection over
/// the cap between its accept and its close, and the disk writer's segment or playlist file.
const TRANSIENT_FDS: usize = 3;

/// Asserts that after a storm the server holds at most the cap's descriptors more than
/// before it (give or take [`TRANSIENT_FDS`]), and that its memory did not balloon.
fn assert_held(bystander: &Bystander, fds_before: usize) {
    let fds = server_fds(&bystander.server);
    assert!(
        fds <= fds_before + CAP + TRANSIENT_FDS,
        "the server holds {fds} descriptors, {fds_before} before the storm"
    );
    let rss = bystander.server.rss_kib();
    assert!(
        rss <= bystander.rss_before + RSS_GROWTH_KIB,
        "RSS {} KiB -> {rss} KiB",
        bystander.rss_before
    );
}

fn server_fds(server: &ServerProcess) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .expect("the server's fd folder")
        .count()
}

#[test]
fn an_rtmp_connection_storm_is_held_at_the_cap() {
    let cap = CAP.to_string();
    let bystander = Bystander::start(&[
        "--rtmp-max-connections",
        &cap,
        "--rtmp-handshake-timeout",
        "120",
    ]);
    let server = &bystander.server;
    let idle = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_rtmp_connections") == Some(1.0)
    });
    assert!(idle, "connections other than the bystander's are open");
    let fds_before = server_fds(server);
    let sockets = storm(server.rtmp_port);

    // The bystander holds one place: the storm gets the other 99, the rest is refused.
    let refused = (STORM - (CAP - 1)) as f64;
    let all_seen = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_rtmp_connections_refused_total") == Some(refused)
    });
    assert!(
        all_seen,
        "refused {:?} of {STORM}",
        server.metric("rtmp_server_rtmp_connections_refused_total")
    );
    assert_eq!(
        server.metric("rtmp_server_rtmp_connections"),
        Some(CAP as f64)
    );
    assert!(
        wait_for(STREAM_TIMEOUT, || closed_by_server(&sockets)
            == STORM - (CAP - 1)),
        "{} of the storm's connections closed",
        closed_by_server(&sockets)
    );
    assert_held(&bystander, fds_before);
    // While full, a new encoder is refused at once.
    let mut late = TcpStream::connect(("127.0.0.1", server.rtmp_port)).unwrap();
    let (closed, _) = read_until_closed(&mut late, CLOSE_TIMEOUT);
    assert!(closed, "a connection past the cap was kept");

    // Once the storm is gone, encoders get in again.
    drop(sockets);
    assert!(
        wait_for(STREAM_TIMEOUT, || server
            .metric("rtmp_server_rtmp_connections")
            == Some(1.0)),
        "storm connections still counted"
    );
    let mut after = ClientPublisher::start(server, "after-storm");
    let tag = flv_tags(&testdata("flv/h264_aac.flv"))
        .into_iter()
        .find(|t| t.tag_type == TagType::Video)
        .unwrap();
    after.send_tag(&tag, RtmpTimestamp(0));
    after.finish();
    bystander.assert_unharmed();
}

#[test]
fn an_http_connection_storm_is_held_at_the_cap() {
    let cap = CAP.to_string();
    let bystander = Bystander::start(&["--http-max-connections", &cap]);
    let server = &bystander.server;
    let playlist_on_disk = server.stream_dir("bystander").join("index.m3u8");
    let on_disk = || {
        std::fs::read_to_string(&playlist_on_disk)
            .ok()
            .map(|t| parse_playlist(&t))
    };
    let mut disk_before = None;
    assert!(
        wait_for(STREAM_TIMEOUT, || {
            disk_before = on_disk();
            disk_before.is_some()
        }),
        "no playlist on disk"
    );
    let disk_before = disk_before.unwrap();
    // Only the request asking is open.
    let idle = wait_for(STREAM_TIMEOUT, || {
        server.metric("rtmp_server_http_connections") == Some(1.0)
    });
    assert!(
        idle,
        "HTTP connections from earlier requests are still open"
    );
    let fds_before = server_fds(server);
    let sockets = storm(server.http_port);

    // The storm takes every place and the rest is refused, closed without an answer. The
    // header time-out (10 s) frees held places, which later storm connections may take on
    // a slow machine; at no time are more than the cap open.
    let mut peak_fds = 0;
    let closed = wait_for(STREAM_TIMEOUT, || {
        peak_fds = peak_fds.max(server_fds(server));
        closed_by_server(&sockets) >= STORM - CAP
    });
    assert!(
        closed,
        "{} of the storm's connections closed",
        closed_by_server(&sockets)
    );
    assert!(
        peak_fds <= fds_before + CAP + TRANSIENT_FDS,
        "the server held up to {peak_fds} descriptors, {fds_before} before the storm"
    );
    assert_held(&bystander, fds_before);

    // Ingest goes on meanwhile: the playlist on disk advances.
    let advanced = wait_for(STREAM_TIMEOUT, || {
        on_disk().is_some_and(|p| p.media_sequence > disk_before.media_sequence)
    });
    assert!(advanced, "ingest stalled during the HTTP storm");

    // Once the storm is gone, players are served again, and every storm connection the
    // server did not hold was refused and counted: all but the cap, less the places freed
    // by the header time-out (each logged).
    drop(sockets);
    let mut refused = None;
    let served = wait_for(STREAM_TIMEOUT, || {
        match try_http("GET", &server.http_url("/metrics"), &[]) {
            Ok(r) if r.status == 200 => {
                refused = metric_value(&r.text(), "rtmp_server_http_connections_refused_total");
                true
            }
            _ => false,
        }
    });
    assert!(served, "no /metrics after the storm");
    let timed_out = server
        .logs()
        .matches("read header from client timeout")
        .count();
    let refused = refused.expect("refused connections counted");
    assert!(
        refused >= (STORM - CAP - timed_out) as f64 && refused <= STORM as f64,
        "{refused} refused, {timed_out} timed out"
    );
    bystander.assert_unharmed();
}
