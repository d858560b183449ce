//! The server binary as a child process: started on ephemeral ports with a media root of its
//! own, its log collected, its `/metrics` and `/api/server` read.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::get;
use super::{START_TIMEOUT, STREAM_TIMEOUT, capture_stderr, wait_for};

/// A running `rtmp-server` process on ephemeral ports with its own media root.
pub struct ServerProcess {
    child: Child,
    /// Plain RTMP's port (0 with `--rtmp-plain false`).
    pub rtmp_port: u16,
    /// Plain HTTP's port (0 with `--http-plain false`).
    pub http_port: u16,
    /// RTMPS's port, when `--rtmp-tls-port` is given.
    pub rtmps_port: Option<u16>,
    /// HTTPS's port, when `--http-tls-port` is given.
    pub https_port: Option<u16>,
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
            rtmps_port: None,
            https_port: None,
            media_root,
            log,
        };
        let listening = wait_for(START_TIMEOUT, || {
            server.logs().lines().any(|l| l.contains(" listening "))
        });
        assert!(listening, "server did not start:\n{}", server.logs());
        server.rtmp_port = server.port_of("rtmp=").unwrap_or(0);
        server.http_port = server.port_of("http=").unwrap_or(0);
        server.rtmps_port = server.port_of("rtmps=");
        server.https_port = server.port_of("https=");
        server
    }

    /// The port in `listening rtmp=127.0.0.1:PORT rtmps=... http=... https=...` (the
    /// listeners that are on).
    fn port_of(&self, field: &str) -> Option<u16> {
        let log = self.logs();
        let line = log.lines().find(|l| l.contains(" listening "))?;
        let rest = &line[line.find(&format!(" {field}"))? + field.len() + 1..];
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

    pub fn rtmps_url(&self, key: &str) -> String {
        let port = self.rtmps_port.expect("started with --rtmp-tls-port");
        format!("rtmps://127.0.0.1:{port}/live/{key}")
    }

    /// An HTTPS URL on 127.0.0.1 (the test certificate names `localhost` and 127.0.0.1).
    pub fn https_url(&self, path: &str) -> String {
        let port = self.https_port.expect("started with --http-tls-port");
        format!("https://127.0.0.1:{port}{path}")
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

    /// Kills the server at once (SIGKILL, by its pid), as a crash would: its connections
    /// drop without a word. Reaped before this returns.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `/api/streams/{name}`, parsed; `None` when the stream is not live.
    pub fn api_stream(&self, name: &str) -> Option<serde_json::Value> {
        let r = get(&self.http_url(&format!("/api/streams/{name}")));
        (r.status == 200).then(|| serde_json::from_slice(&r.body).expect("/api/streams is JSON"))
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
