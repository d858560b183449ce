//! Many RTMP players, and players that misbehave, on one live stream: 500 players each get
//! the stream from a keyframe; a player that reads nothing, one that leaves mid-GOP and one
//! that sends garbage after `play` end alone, logged, while the ingest, HLS and the other
//! players go on; afterwards nothing is left counted or held.
//!
//! Players are the project's sans-IO `PlayClient` over real TCP sockets.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use rtmp_server::rtmp::MediaKind;
use rtmp_server::rtmp::client::play::{PlayClient, PlayConfig, PlayEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

/// What one player saw.
#[derive(Debug, Default)]
struct Seen {
    started: bool,
    first_video_is_keyframe: Option<bool>,
    video: usize,
    audio: usize,
    bytes: usize,
}

/// A player of `key` that reads until it has `messages` media messages (or `Play.Stop`).
async fn play(rtmp: &str, key: &str, messages: usize) -> Result<Seen, String> {
    let addr = rtmp
        .trim_start_matches("rtmp://")
        .split('/')
        .next()
        .unwrap();
    let mut socket = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut out = BytesMut::new();
    let config = PlayConfig::new("live", &format!("rtmp://{addr}/live"), key);
    let mut client = PlayClient::new(config, &mut out).map_err(|e| e.to_string())?;
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut events = Vec::new();
    let mut seen = Seen::default();
    loop {
        if !out.is_empty() {
            socket.write_all(&out).await.map_err(|e| e.to_string())?;
            out.clear();
        }
        if seen.video + seen.audio >= messages {
            return Ok(seen);
        }
        let n = socket
            .read_buf(&mut input)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("closed by the server after {seen:?}"));
        }
        seen.bytes += n;
        client
            .feed(&mut input, &mut out, &mut events)
            .map_err(|e| e.to_string())?;
        for event in events.drain(..) {
            match event {
                PlayEvent::Status { code, .. } if code == "NetStream.Play.Start" => {
                    seen.started = true
                }
                PlayEvent::Status { level, code, .. } if level == "error" => return Err(code),
                PlayEvent::Status { code, .. } if code == "NetStream.Play.Stop" => {
                    return Ok(seen);
                }
                PlayEvent::Media {
                    kind: MediaKind::Video,
                    payload,
                    ..
                } => {
                    seen.first_video_is_keyframe
                        .get_or_insert(payload[0] >> 4 & 7 == 1);
                    seen.video += 1;
                }
                PlayEvent::Media {
                    kind: MediaKind::Audio,
                    ..
                } => seen.audio += 1,
                _ => {}
            }
        }
    }
}

/// Connects and plays `key`, then returns the socket without reading any more.
async fn play_then(rtmp: &str, key: &str) -> (TcpStream, PlayClient) {
    let addr = rtmp
        .trim_start_matches("rtmp://")
        .split('/')
        .next()
        .unwrap();
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let mut out = BytesMut::new();
    let config = PlayConfig::new("live", &format!("rtmp://{addr}/live"), key);
    let mut client = PlayClient::new(config, &mut out).unwrap();
    let mut input = BytesMut::new();
    let mut events = Vec::new();
    // Until the first media message: the play is under way.
    loop {
        socket.write_all(&out).await.unwrap();
        out.clear();
        let n = socket.read_buf(&mut input).await.unwrap();
        assert!(n > 0, "closed before the play started");
        client.feed(&mut input, &mut out, &mut events).unwrap();
        if events
            .drain(..)
            .any(|e| matches!(e, PlayEvent::Media { .. }))
        {
            return (socket, client);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn segments(server: &ServerProcess) -> f64 {
    server.metric("rtmp_server_segments_total").unwrap_or(0.0)
}

fn players(server: &ServerProcess) -> f64 {
    server
        .metric("rtmp_server_players{protocol=\"rtmp\"}")
        .unwrap_or(0.0)
}

#[test]
fn five_hundred_players_each_get_the_stream_from_a_keyframe() {
    let server = ServerProcess::start(&["--rtmp-max-connections", "1000"]);
    let _publisher = live_publisher(&server, "cam");
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) >= 1.0));
    let rtmp = server.rtmp_url("cam");
    let rt = runtime();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let rtmp = rtmp.clone();
                tokio::spawn(async move {
                    tokio::time::timeout(STREAM_TIMEOUT, play(&rtmp, "cam", 200)).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    });
    let mut ok = 0;
    for r in &results {
        let seen = r
            .as_ref()
            .expect("a player timed out")
            .as_ref()
            .expect("a player failed");
        assert!(seen.started);
        assert_eq!(seen.first_video_is_keyframe, Some(true), "{seen:?}");
        assert!(seen.video > 0 && seen.audio > 0, "{seen:?}");
        ok += 1;
    }
    assert_eq!(ok, 500);
    // Every player is counted out again; the stream went on.
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server) == 0.0),
        "{}",
        server.metrics()
    );
    assert_eq!(
        server.metric("rtmp_server_plays_total{protocol=\"rtmp\"}"),
        Some(500.0)
    );
    assert_eq!(
        server.metric("rtmp_server_media_events_lost_total"),
        Some(0.0)
    );
    let before = segments(&server);
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) > before));
}

#[test]
fn a_player_that_reads_nothing_is_dropped_and_harms_nobody() {
    // A 3 Mbit/s stream fills a stalled player's socket and queue within seconds.
    let server = ServerProcess::start(&[]);
    let _publisher = Publisher::start(
        &testdata("flv/h264_720p30_3m.flv"),
        &server.rtmp_url("cam"),
        &["-stream_loop", "-1"],
    );
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) >= 1.0));
    let rtmp = server.rtmp_url("cam");
    let rt = runtime();
    rt.block_on(async {
        let (stalled, _client) = play_then(&rtmp, "cam").await;
        // A player beside it that reads: it keeps getting the stream all along.
        let reader = tokio::spawn({
            let rtmp = rtmp.clone();
            async move { play(&rtmp, "cam", 1_500).await }
        });
        let dropped = tokio::task::spawn_blocking({
            let url = server.http_url("/metrics");
            move || {
                wait_for(Duration::from_secs(120), || {
                    let text = String::from_utf8_lossy(&get(&url).body).into_owned();
                    metric_value(
                        &text,
                        "rtmp_server_players_dropped_total{reason=\"stalled\"}",
                    )
                    .unwrap_or(0.0)
                        + metric_value(
                            &text,
                            "rtmp_server_players_dropped_total{reason=\"behind\"}",
                        )
                        .unwrap_or(0.0)
                        >= 1.0
                })
            }
        })
        .await
        .unwrap();
        assert!(dropped, "the stalled player was never dropped");
        let seen = reader.await.unwrap().expect("the reading player played on");
        assert_eq!(seen.first_video_is_keyframe, Some(true));
        drop(stalled);
    });
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server) == 0.0),
        "{}",
        server.metrics()
    );
    assert!(
        server.wait_log("play ended: the player", STREAM_TIMEOUT),
        "{}",
        server.logs()
    );
    assert_eq!(
        server.metric("rtmp_server_media_events_lost_total"),
        Some(0.0)
    );
    let before = segments(&server);
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) > before));
}

#[test]
fn players_that_leave_mid_gop_or_send_garbage_end_alone() {
    let server = ServerProcess::start(&[]);
    let _publisher = live_publisher(&server, "cam");
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) >= 1.0));
    let rtmp = server.rtmp_url("cam");
    let rt = runtime();
    rt.block_on(async {
        // Gone after its first frames, without closing its stream.
        for _ in 0..20 {
            let (socket, _client) = play_then(&rtmp, "cam").await;
            let socket = socket.into_std().unwrap();
            // Reset rather than close: the server sees the connection cut.
            socket2_linger_zero(&socket);
            drop(socket);
        }
        // Garbage after play: a chunk header naming a message far beyond any limit.
        let (mut socket, _client) = play_then(&rtmp, "cam").await;
        socket
            .write_all(&[0x03, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0x14, 0, 0, 0, 0])
            .await
            .unwrap();
        socket.write_all(&[0xde; 4096]).await.unwrap();
        // The server ends it: the socket reaches its end (after what was in flight).
        let mut sink = vec![0; 64 * 1024];
        let ended = tokio::time::timeout(STREAM_TIMEOUT, async {
            loop {
                match socket.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the server kept a player that sent garbage");
        // Another player still plays.
        let seen = play(&rtmp, "cam", 100).await.expect("plays");
        assert_eq!(seen.first_video_is_keyframe, Some(true));
    });
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server) == 0.0),
        "{}",
        server.metrics()
    );
    assert!(
        server.wait_log("the player sent something invalid", STREAM_TIMEOUT),
        "{}",
        server.logs()
    );
    assert_eq!(
        server.metric("rtmp_server_plays_total{protocol=\"rtmp\"}"),
        Some(22.0)
    );
    let before = segments(&server);
    assert!(wait_for(STREAM_TIMEOUT, || segments(&server) > before));
}

/// SO_LINGER 0: closing sends a reset.
fn socket2_linger_zero(socket: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}
