//! HTTP-FLV and WebSocket-FLV against real peers: ffmpeg publishes a prepared H.264/AAC file
//! at real time; ffmpeg and ffprobe read `http://HOST/live/KEY.flv`, tokio-tungstenite reads
//! `ws://HOST/live/KEY.flv`, and raw sockets send what a careless or hostile client sends,
//! or connect and never read.
//!
//! What a player receives must be the publisher's own packets: ffprobe's payload hashes of
//! what was read form one unbroken run of the source file's, from a keyframe on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// How long the byte-comparing readers read the live stream.
const READ_FOR: Duration = Duration::from_secs(4);
/// How long a stuck player may take to be dropped: the server's socket buffers fill first
/// (megabytes at the stream's rate), then 30 s without progress; generous for a busy machine.
const DROP_TIMEOUT: Duration = Duration::from_secs(240);

/// The source every test publishes: 30 s of the lavfi test pattern (640x360 at 30 fps,
/// H.264 with a keyframe every second) and a 440 Hz tone (AAC, 48 kHz stereo), made once
/// in the target's scratch folder.
fn source() -> PathBuf {
    static SOURCE: OnceLock<PathBuf> = OnceLock::new();
    SOURCE
        .get_or_init(|| {
            let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("http_flv_source_g30_30s.flv");
            if path.is_file() {
                return path;
            }
            let partial = path.with_extension(format!("{}.partial", std::process::id()));
            let out = Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
                .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
                .args(["-t", "30"])
                .args([
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                ])
                .args(["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
                .args(["-c:a", "aac", "-b:a", "96k", "-ac", "2", "-f", "flv"])
                .arg(&partial)
                .output()
                .expect("ffmpeg runs");
            assert!(
                out.status.success(),
                "encoding the source: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::rename(&partial, &path).expect("rename");
            path
        })
        .clone()
}

/// A server with `key` published from [`source`] at real time, looped, once its first HLS
/// segment is listed: the stream is live and its GOP cached.
fn published(args: &[&str], key: &str) -> (ServerProcess, Publisher) {
    let server = ServerProcess::start(args);
    let publisher = Publisher::start(&source(), &server.rtmp_url(key), &["-stream_loop", "-1"]);
    wait_playlist(&server, key);
    (server, publisher)
}

/// One packet as ffprobe reads it: kind, keyframe flag, MD5 of its payload.
#[derive(Debug, Clone, PartialEq)]
struct Payload {
    video: bool,
    key: bool,
    md5: String,
}

fn payloads(path: &Path) -> Vec<Payload> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_data_hash", "MD5"])
        .args(["-show_entries", "packet=codec_type,flags,data_hash"])
        .args(["-of", "compact=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let field = |name: &str| {
                line.split('|')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                    .unwrap_or_default()
                    .to_string()
            };
            Payload {
                video: field("codec_type") == "video",
                key: field("flags").starts_with('K'),
                md5: field("data_hash"),
            }
        })
        .collect()
}

/// Asserts that the FLV stream in `data` starts with a header flagging audio and video,
/// then that its packets, per kind, form one unbroken run of the source's (published in a
/// loop), and that its
/// first video packet is a keyframe. `data` is cut after its last whole tag.
fn assert_source_run(data: &[u8], what: &str) {
    assert!(data.len() > 13, "{what}: {} bytes", data.len());
    assert_eq!(&data[..3], b"FLV", "{what}: no FLV signature");
    assert_eq!(data[3], 1, "{what}: FLV version");
    assert_eq!(data[4], 0x05, "{what}: audio and video flags");
    assert_eq!(
        &data[5..13],
        &[0, 0, 0, 9, 0, 0, 0, 0],
        "{what}: header size"
    );
    let whole = whole_tags(data);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("received.flv");
    std::fs::write(&file, &data[..whole]).expect("write");
    let received = payloads(&file);
    let source = payloads(&source());
    let first_video = received.iter().find(|p| p.video).expect("a video packet");
    assert!(
        first_video.key,
        "{what}: the first video packet is no keyframe"
    );
    for video in [true, false] {
        let got: Vec<&str> = received
            .iter()
            .filter(|p| p.video == video)
            .map(|p| p.md5.as_str())
            .collect();
        let all: Vec<&str> = source
            .iter()
            .filter(|p| p.video == video)
            .map(|p| p.md5.as_str())
            .collect();
        let kind = if video { "video" } else { "audio" };
        assert!(got.len() >= 10, "{what}: only {} {kind} packets", got.len());
        // The source is published in a loop: a run may wrap around its end.
        let looped: Vec<&str> = all.iter().chain(&all).copied().collect();
        assert!(
            looped.windows(got.len()).any(|w| w == got),
            "{what}: the {kind} packets are not one run of the source's"
        );
    }
}

/// The length of `data` up to the end of its last whole tag (FLV 10.1 §E.3).
fn whole_tags(data: &[u8]) -> usize {
    let mut end = 13;
    loop {
        let Some(head) = data.get(end..end + 11) else {
            return end;
        };
        let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
        if data.len() < end + 11 + size + 4 {
            return end;
        }
        end += 11 + size + 4;
    }
}

/// What a reader of `/live/KEY.flv` got, and when.
struct Capture {
    data: Vec<u8>,
    /// From sending the request to the response head.
    head: Duration,
    /// From sending the request to the first byte of the first coded video frame.
    first_video: Option<Duration>,
}

/// Reads `url` over HTTP for `read_for`, noting when the first video frame's tag began.
fn capture(url: &str, read_for: Duration) -> Capture {
    let start = Instant::now();
    let response = ureq::get(url).call().expect("GET the FLV stream");
    let head = start.elapsed();
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(header("content-type").as_deref(), Some("video/x-flv"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("transfer-encoding").as_deref(), Some("chunked"));
    let mut reader = response.into_body().into_reader();
    let mut data = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    let mut first_video = None;
    let mut next_tag = 13;
    while start.elapsed() < read_for {
        let n = reader.read(&mut buf).expect("read the FLV stream");
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        // Tag headers as they come: a video tag whose AVCPacketType is 1 (a coded frame).
        while first_video.is_none() {
            let Some(head) = data.get(next_tag..next_tag + 13) else {
                break;
            };
            if head[0] == 9 && head[12] == 1 {
                first_video = Some(start.elapsed());
            }
            let size = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
            next_tag += 11 + size + 4;
        }
    }
    Capture {
        data,
        head,
        first_video,
    }
}

/// Runs `command`, killing it if it takes longer than `timeout`; returns its exit success
/// and stderr.
fn run_bounded(command: &mut Command, timeout: Duration) -> (bool, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = None;
    wait_for(timeout, || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let stderr = reader.join().unwrap_or_default();
    (status.is_some_and(|s| s.success()), stderr)
}

/// A raw HTTP/1.1 request (`Connection: close` unless `headers` name a `Connection`): the
/// status, the head in lower case, and the body when it has a length (a live stream's has
/// none, and is not read).
fn raw_request(port: u16, target: &str, headers: &[&str]) -> (u16, String, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    socket
        .set_read_timeout(Some(STREAM_TIMEOUT))
        .expect("read timeout");
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("connection:"))
    {
        request.push_str("Connection: close\r\n");
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    socket.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    let head_end = loop {
        if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut buf).expect("read");
        assert!(n > 0, "{target}: closed before a response head: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {target}: {head:?}"));
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = answer[head_end..].to_vec();
    if let Some(length) = length {
        while body.len() < length {
            let n = socket.read(&mut buf).expect("read");
            assert!(n > 0, "{target}: body cut short");
            body.extend_from_slice(&buf[..n]);
        }
    }
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// The status of `GET url` (the body is not read: a live stream's has no end).
fn status_of(url: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent.get(url).call().expect("GET").status().as_u16()
}

fn players(server: &ServerProcess, protocol: &str) -> f64 {
    server
        .metric(&format!("rtmp_server_players{{protocol=\"{protocol}\"}}"))
        .unwrap_or(0.0)
}

/// (a) ffmpeg and ffprobe read the stream over HTTP-FLV: it starts at a keyframe, decodes
/// without an error, and is the publisher's packets, unchanged and in order.
#[test]
fn http_flv_carries_the_publishers_packets_from_a_keyframe() {
    let key = "flv";
    let (server, publisher) = published(&[], key);
    let url = server.http_url(&format!("/live/{key}.flv"));

    for round in 1..=3 {
        let c = capture(&url, READ_FOR);
        eprintln!(
            "HTTP-FLV round {round}: response head after {:.1} ms, first video frame byte after {}",
            c.head.as_secs_f64() * 1000.0,
            c.first_video
                .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "never".into())
        );
        assert!(c.first_video.is_some(), "no video frame in {READ_FOR:?}");
        assert_source_run(&c.data, &format!("HTTP-FLV round {round}"));
    }

    let (decoded, errors) = run_bounded(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
            .arg(&url)
            .args(["-t", "3", "-f", "null", "-"]),
        STREAM_TIMEOUT,
    );
    assert!(decoded, "ffmpeg could not decode {url}: {errors}");
    assert_eq!(errors.trim(), "", "ffmpeg decoding {url}");

    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-read_intervals",
            "%+2",
            "-select_streams",
            "v:0",
        ])
        .args(["-show_entries", "packet=flags", "-of", "csv=p=0"])
        .arg(&url)
        .output()
        .expect("ffprobe runs");
    let flags = String::from_utf8_lossy(&probe.stdout);
    assert!(
        flags.lines().next().is_some_and(|f| f.starts_with('K')),
        "ffprobe's first video packet of {url} is no keyframe: {flags:?} {}",
        String::from_utf8_lossy(&probe.stderr)
    );

    // Cross-origin pages may read it, as they read HLS.
    let preflight = http(
        "OPTIONS",
        &url,
        &[
            ("Origin", "http://player.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert!(
        preflight.status == 200 || preflight.status == 204,
        "preflight: {}",
        preflight.status
    );
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET")),
        "preflight methods"
    );
    let (status, head, _) = raw_request(
        server.http_port,
        &format!("/live/{key}.flv"),
        &["Origin: http://player.example", "Range: bytes=0-99"],
    );
    // The head alone is read; the server sees the client go.
    assert_eq!(status, 200);
    assert!(
        head.contains("access-control-allow-origin: *"),
        "no CORS header: {head}"
    );

    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server, "http-flv") == 0.0),
        "players left counted:\n{}",
        server.logs()
    );
    server.assert_logged("protocol=\"http-flv\"");

    // When the publisher stops, the response ends, after a whole tag.
    let mut publisher = publisher;
    let mut reader = ureq::get(&url)
        .call()
        .expect("GET")
        .into_body()
        .into_reader();
    let mut data = vec![0; 13];
    reader.read_exact(&mut data).expect("the FLV header");
    publisher.kill();
    reader
        .read_to_end(&mut data)
        .expect("the stream to its end");
    assert_eq!(
        whole_tags(&data),
        data.len(),
        "the stream ended inside a tag"
    );
    server.assert_logged("play ended: the stream ended");
}

/// (b) What may not play is refused with its status, and names that are not stream names
/// never reach a stream: traversal, encoded traversal, over-long.
#[test]
fn refusals_and_names_that_are_no_stream() {
    let server = ServerProcess::start(&[]);
    let key = "refusals";
    let publisher = ClientPublisher::start(&server, key);
    assert_eq!(
        status_of(&server.http_url(&format!("/live/{key}.flv"))),
        200
    );
    assert_eq!(status_of(&server.http_url("/live/nobody.flv")), 404);
    assert_eq!(
        status_of(&server.http_url(&format!("/other/{key}.flv"))),
        404
    );

    let long = "a".repeat(4096);
    for (target, expected) in [
        (format!("/live/..%2F{key}.flv"), 404),
        (format!("/live/..%2F..%2F..%2Fetc%2F{key}.flv"), 404),
        ("/live/%2e%2e.flv".to_string(), 404),
        (format!("/live/%2e%2e%2f{key}.flv"), 404),
        (format!("/live/%2E%2E%5C{key}.flv"), 404),
        ("/live/..flv".to_string(), 404),
        ("/live/.flv".to_string(), 404),
        (format!("/%2e%2e/{key}.flv"), 404),
        (format!("/live/{key}%00.flv"), 404),
        (format!("/live/{key}.flv%2f.."), 404),
        (format!("/live/{}.flv", "a".repeat(129)), 404),
        (format!("/live/{long}.flv"), 404),
        ("/live/%ff.flv".to_string(), 400),
    ] {
        let (status, _, body) = raw_request(server.http_port, &target, &[]);
        assert_eq!(status, expected, "{target}: {body}");
    }
    // Nothing of the above got as far as a player.
    assert_eq!(
        server.metric("rtmp_server_plays_total{protocol=\"http-flv\"}"),
        Some(1.0)
    );
    publisher.finish();

    let off = ServerProcess::start(&["--rtmp-play", "off"]);
    let _live = ClientPublisher::start(&off, key);
    let (status, _, body) = raw_request(off.http_port, &format!("/live/{key}.flv"), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("switched off"), "{body}");
    off.assert_logged("play refused");

    let token = ServerProcess::start(&["--rtmp-play", "token", "--rtmp-play-token", "s3cret"]);
    let _live = ClientPublisher::start(&token, key);
    for (query, expected) in [
        ("", 403),
        ("?token=wrong", 403),
        ("?token=s3cre", 403),
        ("?other=1&token=s3cret", 200),
        ("?token=s3cret", 200),
    ] {
        let url = token.http_url(&format!("/live/{key}.flv{query}"));
        assert_eq!(status_of(&url), expected, "{query}");
    }
    let (status, _, body) = raw_request(
        token.http_port,
        &format!("/live/{key}.flv?token=wrong"),
        &[
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ],
    );
    assert_eq!(status, 403, "WebSocket without the token: {body}");
    assert_eq!(
        token.metric("rtmp_server_plays_refused_total{reason=\"token\"}"),
        Some(4.0)
    );
}

/// (c) WebSocket-FLV: a bad handshake gets 400 and why; a real client gets the FLV header
/// and the publisher's packets as binary messages, its ping answered, its text ignored,
/// and its close answered.
#[test]
fn websocket_flv_sends_the_stream_as_binary_messages() {
    let key = "ws";
    let (server, publisher) = published(&[], key);
    let target = format!("/live/{key}.flv");
    let valid_key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    for (headers, reason) in [
        (
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
            ],
            "Sec-WebSocket-Key",
        ),
        (
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Key: not-a-key",
            ],
            "Sec-WebSocket-Key",
        ),
        (
            vec![
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 8",
                valid_key,
            ],
            "Sec-WebSocket-Version",
        ),
        (
            vec!["Upgrade: websocket", "Sec-WebSocket-Version: 13", valid_key],
            "Connection",
        ),
        (
            vec![
                "Connection: Upgrade",
                "Sec-WebSocket-Version: 13",
                valid_key,
            ],
            "Upgrade",
        ),
    ] {
        let (status, head, body) = raw_request(server.http_port, &target, &headers);
        assert_eq!(status, 400, "{headers:?}: {body}");
        assert!(body.contains(reason), "{headers:?}: {body}");
        assert!(head.contains("sec-websocket-version: 13"), "{head}");
    }

    let url = format!("ws://127.0.0.1:{}{target}", server.http_port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (data, ponged, after_text, closed) = runtime.block_on(async {
        let start = Instant::now();
        let (mut ws, response) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("WebSocket handshake");
        assert_eq!(response.status(), 101);
        let mut data = Vec::new();
        let mut first_message = None;
        let mut ponged = false;
        let mut after_text = 0;
        let mut text_sent = false;
        while start.elapsed() < READ_FOR {
            let message = tokio::time::timeout(STREAM_TIMEOUT, ws.next())
                .await
                .expect("a message in time")
                .expect("the stream goes on")
                .expect("a valid message");
            match message {
                Message::Binary(b) => {
                    first_message.get_or_insert_with(|| start.elapsed());
                    data.extend_from_slice(&b);
                    if text_sent {
                        after_text += 1;
                    }
                }
                Message::Pong(p) => {
                    assert_eq!(&p[..], b"are you there");
                    ponged = true;
                }
                other => panic!("unexpected {other:?}"),
            }
            if data.len() > 13 && !text_sent {
                ws.send(Message::Ping(bytes::Bytes::from_static(b"are you there")))
                    .await
                    .expect("ping");
                ws.send(Message::Text("hello".into())).await.expect("text");
                text_sent = true;
            }
        }
        eprintln!(
            "WebSocket-FLV: first binary message after {:.1} ms",
            first_message.unwrap_or_default().as_secs_f64() * 1000.0
        );
        ws.send(Message::Close(None)).await.expect("close");
        let mut closed = false;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(STREAM_TIMEOUT, ws.next()).await {
            closed |= matches!(message, Message::Close(_));
        }
        (data, ponged, after_text, closed)
    });
    assert!(ponged, "no pong");
    assert!(after_text > 0, "the stream stopped after a text message");
    assert!(closed, "no close frame in answer:\n{}", server.logs());
    assert_source_run(&data, "WebSocket-FLV");
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server, "ws-flv") == 0.0),
        "the WebSocket player is still counted:\n{}",
        server.logs()
    );
    server.assert_logged("protocol=\"ws-flv\"");

    // When the publisher stops, the server ends the stream with a normal closure.
    let (code, bytes) = runtime.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("WebSocket handshake");
        let mut bytes = 0;
        let mut publisher = Some(publisher);
        let mut code = None;
        while let Ok(Some(Ok(message))) = tokio::time::timeout(STREAM_TIMEOUT, ws.next()).await {
            match message {
                Message::Binary(b) => bytes += b.len(),
                Message::Close(frame) => code = frame.map(|f| u16::from(f.code)),
                _ => {}
            }
            if bytes > 0
                && let Some(mut p) = publisher.take()
            {
                p.kill();
            }
        }
        (code, bytes)
    });
    assert!(bytes > 13, "{bytes} bytes before the end");
    assert_eq!(code, Some(1000), "close code at the stream's end");
    server.assert_logged("play ended: the stream ended");
}

/// A TCP connection with a small receive buffer, so what the server sends fills it soon.
fn small_window_connection(port: u16) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("a runtime");
    runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_recv_buffer_size(4096)?;
            let stream = socket
                .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
                .await?;
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            Ok::<_, std::io::Error>(stream)
        })
        .expect("connect")
}

/// (d) Players that connect and never read, over HTTP and over WebSocket, are dropped once
/// they stall, and the stream's ingest and HLS go on meanwhile.
#[test]
fn a_player_that_never_reads_is_dropped_and_ingest_goes_on() {
    let key = "stuck";
    let (server, mut publisher) = published(&[], key);
    let before = wait_playlist(&server, key);
    let mut http_player = small_window_connection(server.http_port);
    http_player
        .write_all(format!("GET /live/{key}.flv HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("request");
    let mut ws_player = small_window_connection(server.http_port);
    ws_player
        .write_all(
            format!(
                "GET /live/{key}.flv HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("request");
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server, "http-flv") == 1.0
            && players(&server, "ws-flv") == 1.0),
        "the players did not start:\n{}",
        server.logs()
    );
    let started = Instant::now();
    // Meanwhile the stream goes on.
    assert_advances(&server, key, &mut publisher, &before);
    let dropped = wait_for(DROP_TIMEOUT, || {
        players(&server, "http-flv") == 0.0 && players(&server, "ws-flv") == 0.0
    });
    assert!(dropped, "stuck players still counted:\n{}", server.logs());
    eprintln!(
        "stuck players gone after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stalled = server
        .metric("rtmp_server_players_dropped_total{reason=\"stalled\"}")
        .unwrap_or(0.0);
    let behind = server
        .metric("rtmp_server_players_dropped_total{reason=\"behind\"}")
        .unwrap_or(0.0);
    assert!(
        stalled + behind >= 2.0,
        "no drop counted:\n{}",
        server.metrics()
    );
    server.assert_logged_times("play ended", 2);
    for line in server.logs().lines().filter(|l| l.contains("play ended")) {
        eprintln!("{line}");
    }
    let after = wait_playlist(&server, key);
    assert_advances(&server, key, &mut publisher, &after);
    // A player that reads is served as before.
    let c = capture(&server.http_url(&format!("/live/{key}.flv")), READ_FOR);
    assert!(c.first_video.is_some(), "no video for a new player");
    drop((http_player, ws_player));
}

/// A server asked to stop ends its FLV players' streams (the HTTP response after a whole
/// tag), saying why, and exits.
#[test]
fn sigterm_ends_flv_players_and_the_server_exits() {
    let key = "bye";
    let (mut server, _publisher) = published(&[], key);
    let url = server.http_url(&format!("/live/{key}.flv"));
    let http_reader = std::thread::spawn(move || {
        let mut reader = ureq::get(&url)
            .call()
            .expect("GET")
            .into_body()
            .into_reader();
        let mut data = Vec::new();
        let ended = reader.read_to_end(&mut data);
        (ended.map_err(|e| e.to_string()), data)
    });
    let ws_url = format!("ws://127.0.0.1:{}/live/{key}.flv", server.http_port);
    let ws_reader = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
                .await
                .expect("WebSocket handshake");
            let mut bytes = 0;
            while let Ok(Some(Ok(message))) = tokio::time::timeout(STREAM_TIMEOUT, ws.next()).await
            {
                if let Message::Binary(b) = message {
                    bytes += b.len();
                }
            }
            bytes
        })
    });
    assert!(
        wait_for(STREAM_TIMEOUT, || players(&server, "http-flv") == 1.0
            && players(&server, "ws-flv") == 1.0),
        "the players did not start:\n{}",
        server.logs()
    );
    std::thread::sleep(Duration::from_secs(1));
    let status = server.terminate();
    assert!(status.success(), "exit status {status}:\n{}", server.logs());
    let (ended, data) = http_reader.join().expect("the HTTP reader");
    assert!(ended.is_ok(), "the HTTP-FLV response broke off: {ended:?}");
    assert!(data.starts_with(b"FLV"), "{} bytes", data.len());
    assert_eq!(
        whole_tags(&data),
        data.len(),
        "the stream ended inside a tag"
    );
    let ws_bytes = ws_reader.join().expect("the WebSocket reader");
    assert!(ws_bytes > 13, "{ws_bytes} bytes over WebSocket");
    // The stop ends the publishes and cancels the players: whichever a writer sees first.
    server.assert_logged_times("play ended", 2);
    for line in server.logs().lines().filter(|l| l.contains("play ended")) {
        assert!(
            line.contains("play ended: the server stops")
                || line.contains("play ended: the stream ended"),
            "{line}"
        );
    }
}
