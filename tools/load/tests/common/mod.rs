//! Harness for the end-to-end tests: the real server (the `rtmp_server` library's `Server`,
//! in this process, on loopback port 0) and plain HTTP reads of what it serves. The load
//! tool itself runs as its binary.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rtmp_server::config::Config;
use rtmp_server::server::Server;
use tokio_util::sync::CancellationToken;

/// Generous limit for the server to bind: the tests run on a busy 2-core machine.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Time-out of one HTTP request to the server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// Most bytes of server log kept: a test's run logs far less; past this the rest is dropped.
const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;

/// Most bytes read from one HTTP answer: playlists and metrics are a few KiB.
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// A file of the project's test media (the `testdata/` folder at the workspace root).
pub fn testdata(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(name)
}

/// Runs `rtmp-load` on the test file with `args` and waits for it to end; the summary is
/// its standard output.
pub fn rtmp_load(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rtmp-load"))
        .arg("--file")
        .arg(testdata("flv/h264_aac.flv"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rtmp-load");
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, summary)
}

/// The server on a thread of its own, with its own media root; stopped when dropped.
pub struct TestServer {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
    /// What the server logged on its RTMP thread (where publishes are handled), for failure
    /// messages.
    log: Arc<Mutex<Vec<u8>>>,
    _media_root: tempfile::TempDir,
}

impl TestServer {
    /// Starts the server on loopback port 0 with `configure` applied to its defaults.
    pub fn start(configure: impl FnOnce(&mut Config)) -> TestServer {
        let media_root = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ..Config::default()
        };
        config.rtmp.port = 0;
        config.http.port = 0;
        config.http.mediaroot = media_root.path().to_owned();
        configure(&mut config);

        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (bound, addrs) = std::sync::mpsc::channel();
        let thread = std::thread::spawn({
            let log = log.clone();
            let stop = stop.clone();
            move || {
                let subscriber = tracing_subscriber::fmt()
                    .with_env_filter("info,rtmp_server=debug")
                    .with_ansi(false)
                    .with_writer(move || SharedLog(log.clone()))
                    .finish();
                let _logging = tracing::subscriber::set_default(subscriber);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                runtime.block_on(async move {
                    let server = Server::bind(config).await.expect("bind");
                    bound
                        .send((
                            server.rtmp_addr().expect("plain RTMP is on"),
                            server.http_addr().expect("plain HTTP is on"),
                        ))
                        .expect("test waits");
                    server.run(stop).await.expect("server run");
                });
            }
        });
        let (rtmp, http) = addrs.recv_timeout(START_TIMEOUT).expect("server bound");
        TestServer {
            rtmp,
            http,
            stop,
            thread: Some(thread),
            log,
            _media_root: media_root,
        }
    }

    /// `rtmp://127.0.0.1:PORT/live`.
    pub fn rtmp_url(&self) -> String {
        format!("rtmp://{}/live", self.rtmp)
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap()).into_owned()
    }

    /// A counter or gauge of `/metrics`: the sum of every line of `name`, whatever its labels.
    pub fn metric(&self, name: &str) -> u64 {
        let (status, text) = get(&self.http_url("/metrics")).expect("GET /metrics");
        assert_eq!(status, 200, "{text}");
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .map(|l| {
                let value = l.rsplit(' ').next().unwrap_or_default();
                value.parse::<f64>().unwrap_or_else(|_| panic!("{l:?}")) as u64
            })
            .sum()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            // A panic on the server thread is already reported; the test has its own verdict.
            let _ = thread.join();
        }
    }
}

/// One write of the server's log into the buffer the test reads.
struct SharedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut log = self.0.lock().unwrap();
        let room = MAX_LOG_BYTES.saturating_sub(log.len());
        log.extend_from_slice(&bytes[..bytes.len().min(room)]);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET url`: the status and the body as text, or `None` when the request fails.
pub fn get(url: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .build()
        .into();
    let mut response = agent.get(url).call().ok()?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_string()
        .ok()?;
    Some((status, body))
}

/// The media sequence number of the last segment a media playlist lists, `None` when it
/// lists none. Spec: RFC 8216 §4.3.3.2 (EXT-X-MEDIA-SEQUENCE), §6.3.5.
pub fn last_sequence(playlist: &str) -> Option<u64> {
    assert!(
        playlist.starts_with("#EXTM3U"),
        "not a playlist: {playlist}"
    );
    let first: u64 = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .map_or(0, |v| v.trim().parse().expect("integer media sequence"));
    let listed = playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count() as u64;
    listed.checked_sub(1).map(|last| first + last)
}

/// The number before `label` in the summary line that starts with `row`.
pub fn number_before(summary: &str, row: &str, label: &str) -> u64 {
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
