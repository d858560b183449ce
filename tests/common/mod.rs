//! Shared harness for the end-to-end tests: the real server binary on ephemeral ports, real
//! ffmpeg publishers, real HTTP requests, ffprobe to read the output back.
#![allow(dead_code)]

pub mod flv;
pub mod hls_check;
pub mod llhls;
pub mod raw;
pub mod stub;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtmp_server::flv::file::{FlvFile, FlvItem, FlvTag};
use rtmp_server::flv::tag::TagType;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::{ClientConfig, ClientEvent, MediaKind, PublishClient};

use raw::RawRtmp;

/// Generous limits: the tests run on a busy 2-core machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// Collects a child's stderr lines as they come, on a thread of its own.
fn capture_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    log
}

/// A running `rtmp-server` process on ephemeral ports with its own media root.
pub struct ServerProcess {
    child: Child,
    pub rtmp_port: u16,
    pub http_port: u16,
    pub media_root: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl ServerProcess {
    /// Starts the server with `args` added to test defaults (loopback, port 0, temp media
    /// root), and waits until it logs its listening ports.
    pub fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_root(tempfile::tempdir().expect("temp dir"), args)
    }

    /// [`ServerProcess::start`] with a media root the test chose (e.g. inside a folder of
    /// its own, to check that nothing outside the media root changes).
    pub fn start_with_root(media_root: tempfile::TempDir, args: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtmp-server"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1",
                "--rtmp-port",
                "0",
                "--http-port",
                "0",
            ])
            .arg("--media-root")
            .arg(media_root.path())
            .args(args)
            .env("RUST_LOG", "info,rtmp_server=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rtmp-server");
        let log = capture_stderr(&mut child);
        let mut server = ServerProcess {
            child,
            rtmp_port: 0,
            http_port: 0,
            media_root,
            log,
        };
        let ports = wait_for(START_TIMEOUT, || {
            server.port_of("rtmp=").is_some() && server.port_of("http=").is_some()
        });
        assert!(ports, "server did not start:\n{}", server.logs());
        server.rtmp_port = server.port_of("rtmp=").unwrap();
        server.http_port = server.port_of("http=").unwrap();
        server
    }

    /// The port in `listening ... rtmp=127.0.0.1:PORT http=127.0.0.1:PORT`.
    fn port_of(&self, field: &str) -> Option<u16> {
        let log = self.logs();
        let line = log.lines().find(|l| l.contains("listening"))?;
        let rest = &line[line.find(field)? + field.len()..];
        let addr = rest.split_whitespace().next()?;
        addr.rsplit(':').next()?.parse().ok()
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.logs().contains(needle))
    }

    /// Asserts that the log comes to contain `needle`. The server logs why it closed a
    /// connection after closing it, and its stderr is read on another thread, so a line
    /// may come a moment after what it is about.
    pub fn assert_logged(&self, needle: &str) {
        self.assert_logged_times(needle, 1);
    }

    /// Asserts that the log comes to contain `needle` at least `times` times.
    pub fn assert_logged_times(&self, needle: &str, times: usize) {
        let found = wait_for(STREAM_TIMEOUT, || {
            self.logs().matches(needle).count() >= times
        });
        assert!(
            found,
            "{needle:?} not logged {times} times:\n{}",
            self.logs()
        );
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.rtmp_port)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn stream_dir(&self, key: &str) -> PathBuf {
        self.media_root.path().join("live").join(key)
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server ignored SIGTERM:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident set size in KiB (`VmRSS` in /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server process is running");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> String {
        let r = get(&self.http_url("/metrics"));
        assert_eq!(r.status, 200, "/metrics");
        r.text()
    }

    /// The value of one series of `/metrics`, as written before the value: a name with its
    /// labels, e.g. `rtmp_server_publishes_rejected_total{reason="malformed_key"}`.
    /// `None` when the series is not there.
    pub fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics(), series)
    }

    /// `/api/server`, parsed.
    pub fn api_server(&self) -> serde_json::Value {
        let r = get(&self.http_url("/api/server"));
        assert_eq!(r.status, 200, "/api/server");
        serde_json::from_slice(&r.body).expect("/api/server is JSON")
    }
}

/// The value of `series` in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real ffmpeg publishing a file at real time, copied as-is, over RTMP.
pub struct Publisher {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Publisher {
    /// `ffmpeg -re [input_args] -i FILE -c copy -f flv URL`.
    pub fn start(file: &Path, url: &str, input_args: &[&str]) -> Publisher {
        let mut command = Command::new("ffmpeg");
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
            .args(input_args)
            .arg("-i")
            .arg(file)
            .args(["-c", "copy", "-f", "flv", url]);
        Publisher::spawn(command)
    }

    /// A live encoder: `ffmpeg -re` encoding a test pattern (testsrc2, 1280x720 at 30 fps,
    /// and a sine tone) with libx264 (veryfast, a keyframe every 2 s: the default
    /// `hls.time`) and AAC, publishing to `url` for at most `seconds`.
    pub fn test_pattern(url: &str, seconds: u32) -> Publisher {
        let mut command = Command::new("ffmpeg");
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
            .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args([
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
            .args(["-c:a", "aac", "-b:a", "128k", "-ac", "2"])
            .args(["-t", &seconds.to_string(), "-f", "flv", url]);
        Publisher::spawn(command)
    }

    fn spawn(mut command: Command) -> Publisher {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg is installed (scripts/test.sh installs it)");
        let log = capture_stderr(&mut child);
        Publisher { child, log }
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for ffmpeg to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_for(timeout, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        });
        status
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("wait").is_none()
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to ffmpeg.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal}");
    }

    /// Kills ffmpeg at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response read in full.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// `METHOD url` with extra request headers.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
    try_http(method, url, headers).expect("HTTP request")
}

/// [`http`], with a failed connection or request as an error rather than a panic.
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Response, ureq::Error> {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(()).expect("request");
    let mut resp = agent().run(req)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        resp.body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()?
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn get(url: &str) -> Response {
    http("GET", url, &[])
}

/// One EXTINF entry of a media playlist.
#[derive(Debug, Clone)]
pub struct Entry {
    pub duration: f64,
    pub uri: String,
    pub discontinuity: bool,
}

/// The parts of a media playlist the tests check.
#[derive(Debug, Clone, Default)]
pub struct Playlist {
    pub target_duration: u64,
    pub media_sequence: u64,
    pub entries: Vec<Entry>,
    pub ended: bool,
    pub text: String,
}

pub fn parse_playlist(text: &str) -> Playlist {
    let mut p = Playlist {
        text: text.to_string(),
        ..Playlist::default()
    };
    assert!(text.starts_with("#EXTM3U\n"), "not a playlist: {text}");
    let mut pending: Option<f64> = None;
    let mut disc = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = v.parse().expect("integer target duration");
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().expect("integer media sequence");
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            pending = Some(
                v.trim_end_matches(',')
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("EXTINF"),
            );
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            p.entries.push(Entry {
                duration: pending.take().expect("EXTINF before URI"),
                uri: line.to_string(),
                discontinuity: std::mem::take(&mut disc),
            });
        }
    }
    p
}

/// A packet as ffprobe reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub video: bool,
    pub pts: Option<f64>,
    pub dts: Option<f64>,
    pub key: bool,
    pub size: u64,
}

/// Every packet of `path` (any format ffprobe reads), in file order.
pub fn probe_packets(path: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,dts_time,flags,size",
        ])
        .args(["-of", "csv=p=0"])
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
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                video: f[0] == "video",
                pts: f[1].parse().ok(),
                dts: f[2].parse().ok(),
                size: f[3].parse().unwrap_or(0),
                key: f.get(4).is_some_and(|s| s.starts_with('K')),
            }
        })
        .collect()
}

/// `ffmpeg -v error -i PATH -f null -`: the decoder's complaints, empty when clean.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!("\nexit status {}", out.status));
    }
    errors
}

/// The stream info lines ffprobe prints for `path` (codec, profile, size, sample rate).
pub fn probe_streams(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .arg("stream=codec_type,codec_name,profile,width,height,sample_rate,channels")
        .args(["-of", "compact=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a stream's playlist from disk once it is complete (EXT-X-ENDLIST), and returns the
/// segment paths in order.
pub fn finished_segments(server: &ServerProcess, key: &str) -> (Playlist, Vec<PathBuf>) {
    let index = server.stream_dir(key).join("index.m3u8");
    let mut playlist = Playlist::default();
    let ended = wait_for(STREAM_TIMEOUT, || {
        std::fs::read_to_string(&index).is_ok_and(|t| {
            playlist = parse_playlist(&t);
            playlist.ended
        })
    });
    assert!(
        ended,
        "no ended playlist at {}:\n{}",
        index.display(),
        server.logs()
    );
    let paths = segment_paths(server, key, &playlist);
    (playlist, paths)
}

/// Where the segments `playlist` lists are on disk.
pub fn segment_paths(server: &ServerProcess, key: &str, playlist: &Playlist) -> Vec<PathBuf> {
    let dir = server.stream_dir(key);
    playlist.entries.iter().map(|e| dir.join(&e.uri)).collect()
}

/// Every packet of the segments, in order.
pub fn packets_of(paths: &[PathBuf]) -> Vec<Packet> {
    paths.iter().flat_map(|p| probe_packets(p)).collect()
}

/// Timestamps (ms) relative to the first one, per track, so source and output compare.
pub fn relative(packets: &[Packet], video: bool) -> Vec<(i64, i64, bool)> {
    let track: Vec<&Packet> = packets.iter().filter(|p| p.video == video).collect();
    let Some(first) = track.first() else {
        return Vec::new();
    };
    let base = first.dts.or(first.pts).expect("timestamps");
    track
        .iter()
        .map(|p| {
            let ms = |t: Option<f64>| ((t.expect("timestamp") - base) * 1000.0).round() as i64;
            (ms(p.pts), ms(p.dts.or(p.pts)), p.key)
        })
        .collect()
}

/// Asserts that the segments hold the source file's frames: the same count per track, the
/// same timestamps relative to each track's first frame, the same keyframes.
pub fn assert_same_frames(source: &Path, output: &[PathBuf]) {
    let src = probe_packets(source);
    let out = packets_of(output);
    for video in [true, false] {
        let (a, b) = (relative(&src, video), relative(&out, video));
        let kind = if video { "video" } else { "audio" };
        assert_eq!(
            a.len(),
            b.len(),
            "{kind} frame count: source {} output {}",
            a.len(),
            b.len()
        );
        for (i, (s, o)) in a.iter().zip(&b).enumerate() {
            // FLV carries milliseconds; AAC frames in one PES get interpolated times, so allow
            // the FLV rounding (1 ms) plus one more.
            let close = (s.0 - o.0).abs() <= 2 && (s.1 - o.1).abs() <= 2;
            assert!(
                close,
                "{kind} frame {i}: source pts/dts {s:?}, output {o:?}"
            );
            if video {
                assert_eq!(s.2, o.2, "{kind} frame {i}: keyframe flag");
            }
        }
    }
}

/// The tags of an FLV file, bodies as slices of it.
pub fn flv_tags(path: &Path) -> Vec<FlvTag> {
    let data = Bytes::from(std::fs::read(path).expect("test file"));
    FlvFile::new(data)
        .filter_map(|item| match item.expect("valid FLV") {
            FlvItem::Tag(tag) => Some(tag),
            FlvItem::Header(_) => None,
        })
        .collect()
}

/// The project's RTMP client publishing over a blocking socket, for tests that choose every
/// timestamp. Sends as fast as the socket takes it (the server cuts segments by media time).
pub struct ClientPublisher {
    socket: TcpStream,
    client: PublishClient,
    input: BytesMut,
    out: BytesMut,
    events: Vec<ClientEvent>,
}

impl ClientPublisher {
    /// Connects and publishes `key`; returns once NetStream.Publish.Start has arrived.
    pub fn start(server: &ServerProcess, key: &str) -> ClientPublisher {
        let socket = TcpStream::connect(("127.0.0.1", server.rtmp_port)).expect("connect");
        socket
            .set_read_timeout(Some(STREAM_TIMEOUT))
            .expect("read timeout");
        socket
            .set_write_timeout(Some(STREAM_TIMEOUT))
            .expect("write timeout");
        let tc_url = format!("rtmp://127.0.0.1:{}/live", server.rtmp_port);
        let mut out = BytesMut::new();
        let client =
            PublishClient::new(ClientConfig::new("live", &tc_url, key), &mut out).expect("C1");
        let mut publisher = ClientPublisher {
            socket,
            client,
            input: BytesMut::new(),
            out,
            events: Vec::new(),
        };
        publisher.flush();
        while !publisher.events.contains(&ClientEvent::Published) {
            publisher.read();
            assert!(
                !publisher
                    .events
                    .iter()
                    .any(|e| matches!(e, ClientEvent::Rejected { .. })),
                "publish refused: {:?}\n{}",
                publisher.events,
                server.logs()
            );
        }
        publisher
    }

    fn flush(&mut self) {
        self.socket.write_all(&self.out).expect("write");
        self.out.clear();
    }

    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        let n = self.socket.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed the connection");
        self.input.extend_from_slice(&buf[..n]);
        self.client
            .feed(&mut self.input, &mut self.out, &mut self.events)
            .expect("valid server bytes");
        self.flush();
    }

    /// Sends one FLV tag as an RTMP message at `timestamp` (script tags as @setDataFrame).
    pub fn send_tag(&mut self, tag: &FlvTag, timestamp: RtmpTimestamp) {
        match tag.tag_type {
            TagType::Audio => {
                self.client
                    .send_media(MediaKind::Audio, timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
            TagType::Video => {
                self.client
                    .send_media(MediaKind::Video, timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
            TagType::ScriptData => {
                self.client
                    .send_metadata(timestamp, &tag.body, &mut self.out)
                    .expect("publishing");
            }
        }
        self.flush();
    }

    /// Drops the connection as a crashed encoder or a pulled cable would: no FCUnpublish,
    /// no deleteStream.
    pub fn cut(self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }

    /// Unpublishes and waits for NetStream.Unpublish.Success.
    pub fn finish(mut self) {
        self.client.unpublish(&mut self.out).expect("encodable");
        self.flush();
        while !self.events.contains(&ClientEvent::Closed) {
            self.read();
        }
    }
}

/// A real ffmpeg publishing the test file to `key` in a loop, at real time: a stream that
/// keeps going for as long as a test needs it.
pub fn live_publisher(server: &ServerProcess, key: &str) -> Publisher {
    Publisher::start(
        &testdata("flv/h264_aac.flv"),
        &server.rtmp_url(key),
        &["-stream_loop", "-1"],
    )
}

/// The live playlist of `key` over HTTP, if there is one.
pub fn http_playlist(server: &ServerProcess, key: &str) -> Option<Playlist> {
    let r = get(&server.http_url(&format!("/live/{key}/index.m3u8")));
    (r.status == 200).then(|| parse_playlist(&r.text()))
}

/// Waits until `key` has a playlist with at least one segment, and returns it.
pub fn wait_playlist(server: &ServerProcess, key: &str) -> Playlist {
    let mut playlist = None;
    let ready = wait_for(STREAM_TIMEOUT, || {
        playlist = http_playlist(server, key).filter(|p| !p.entries.is_empty());
        playlist.is_some()
    });
    assert!(ready, "no playlist for {key}:\n{}", server.logs());
    playlist.unwrap()
}

/// Asserts that the live stream `key` is still published by `publisher` and that its
/// playlist moved on from `before`: the media sequence grew and a newer segment is listed.
pub fn assert_advances(
    server: &ServerProcess,
    key: &str,
    publisher: &mut Publisher,
    before: &Playlist,
) {
    let last = before.entries.last().map(|e| e.uri.clone());
    let mut now = None;
    let advanced = wait_for(STREAM_TIMEOUT, || {
        now = http_playlist(server, key);
        now.as_ref().is_some_and(|p| {
            p.media_sequence > before.media_sequence
                && !p.ended
                && p.entries.last().map(|e| e.uri.clone()) != last
        })
    });
    assert!(
        advanced,
        "stream {key} did not advance from media sequence {} (now {:?}):\n{}",
        before.media_sequence,
        now.map(|p| p.text),
        server.logs()
    );
    assert!(
        publisher.is_running(),
        "the publisher of {key} stopped:\n{}",
        publisher.logs()
    );
}

/// How long a connection the server should drop may stay open. Generous: the machine is
/// busy; every case here is dropped within a second or two of its time-out.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How much the server's resident memory may grow while a test abuses it. The stream that
/// keeps running adds its segments (about 200 KB each, a few in memory); what the abuse
/// announces (tens to hundreds of MiB) must not show.
pub const RSS_GROWTH_KIB: u64 = 8 * 1024;

/// A server with a real stream (`bystander`, ffmpeg looping the test file) that must not
/// notice what the test does to other connections.
pub struct Bystander {
    pub server: ServerProcess,
    pub publisher: Publisher,
    pub before: Playlist,
    pub rss_before: u64,
}

impl Bystander {
    pub fn start(args: &[&str]) -> Bystander {
        let server = ServerProcess::start(args);
        let publisher = live_publisher(&server, "bystander");
        let before = wait_playlist(&server, "bystander");
        let rss_before = server.rss_kib();
        Bystander {
            server,
            publisher,
            before,
            rss_before,
        }
    }

    /// A TCP connection to the RTMP port, nothing sent.
    pub fn raw(&self) -> RawRtmp {
        RawRtmp::connect(self.server.rtmp_port)
    }

    /// A connection past the handshake and `connect`.
    pub fn connected(&self) -> RawRtmp {
        let mut c = self.raw();
        c.handshake();
        c.connect_app("live");
        c
    }

    /// Asserts that the server closed `c` and logged `reason` as why.
    pub fn assert_closed(&self, c: &mut RawRtmp, case: &str, reason: &str) {
        assert!(
            c.closed_within(CLOSE_TIMEOUT),
            "{case}: connection still open after {CLOSE_TIMEOUT:?}"
        );
        assert!(
            self.server.wait_log(reason, STREAM_TIMEOUT),
            "{case}: no log line with {reason:?}:\n{}",
            self.server.logs()
        );
        assert_eq!(c.decode_error, None, "{case}: what the server sent");
    }

    /// Asserts that the server runs, its memory did not balloon, and the bystander's
    /// playlist advances.
    pub fn assert_unharmed(mut self) {
        assert!(self.server.is_running(), "the server died");
        let rss = self.server.rss_kib();
        assert!(
            rss <= self.rss_before + RSS_GROWTH_KIB,
            "RSS grew from {} KiB to {rss} KiB",
            self.rss_before
        );
        assert_advances(&self.server, "bystander", &mut self.publisher, &self.before);
        assert!(
            !self.server.logs().contains("panicked"),
            "{}",
            self.server.logs()
        );
    }
}

/// Reads `socket` until the peer closes it (end of stream or reset) or `timeout` passes.
/// Returns whether it closed, and what it sent before.
pub fn read_until_closed(socket: &mut TcpStream, timeout: Duration) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + timeout;
    let mut received = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (false, received);
        };
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match socket.read(&mut buf) {
            Ok(0) => return (true, received),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (false, received);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return (true, received),
        }
    }
}

/// Writes `bytes` on `socket` one a second, from another thread, until writing fails or
/// all went out; the thread returns how many went out.
pub fn dribble(mut socket: TcpStream, bytes: Vec<u8>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sent = 0;
        for b in bytes {
            if socket.write_all(&[b]).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_secs(1));
        }
        sent
    })
}
