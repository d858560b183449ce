//! A real S3-compatible server for the object storage tests: `s3s-fs` (a crate from the Rust
//! registry, installed by scripts/test.sh) on a loopback port, storing its buckets as
//! folders; and a small signed client (rusty-s3 presigned URLs over ureq) to read it back.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::http::{Response, try_http};
use super::{START_TIMEOUT, capture_stderr, wait_for};

pub const ACCESS_KEY: &str = "test-access";
pub const SECRET_KEY: &str = "test-secret-key";
pub const BUCKET: &str = "media";

/// The s3s-fs binary: on PATH, else in ~/.cargo/bin.
pub fn s3s_fs() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("s3s-fs"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_default();
        Path::new(&home).join(".cargo/bin/s3s-fs")
    })
}

/// A free loopback port (bound, then let go: s3s-fs takes a port number).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running s3s-fs with a bucket [`BUCKET`].
pub struct S3Server {
    child: Option<Child>,
    pub port: u16,
    pub root: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket folder");
        let mut s = S3Server {
            child: None,
            port: free_port(),
            root,
            log: Arc::new(Mutex::new(String::new())),
        };
        s.restart();
        s
    }

    /// Starts s3s-fs (again) on the same port and root.
    pub fn restart(&mut self) {
        let mut child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("s3s-fs did not start ({e}): run scripts/test.sh, which installs it")
            });
        self.log = capture_stderr(&mut child);
        self.child = Some(child);
        let up = wait_for(START_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "s3s-fs did not listen on {}", self.port);
    }

    /// Kills s3s-fs (SIGKILL, by its pid) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's flags for this bucket.
    pub fn server_args(&self) -> Vec<String> {
        [
            "--s3-endpoint",
            &self.endpoint(),
            "--s3-bucket",
            BUCKET,
            "--s3-region",
            "us-east-1",
            "--s3-access-key",
            ACCESS_KEY,
            "--s3-secret-key",
            SECRET_KEY,
        ]
        .map(String::from)
        .to_vec()
    }

    fn bucket(&self, name: &str) -> Bucket {
        Bucket::new(
            self.endpoint().parse().expect("URL"),
            UrlStyle::Path,
            name.to_string(),
            "us-east-1",
        )
        .expect("bucket")
    }

    /// A signed GET of `key`; `None` when the server cannot be reached.
    pub fn get(&self, key: &str) -> Option<Response> {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY);
        let url = self
            .bucket(BUCKET)
            .get_object(Some(&credentials), key)
            .sign(Duration::from_secs(60));
        try_http("GET", url.as_str(), &[]).ok()
    }

    /// A signed GET of `key` with request `headers` (a `range`).
    pub fn get_with(&self, key: &str, headers: &[(&str, &str)]) -> Option<Response> {
        let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY);
        let url = self
            .bucket(BUCKET)
            .get_object(Some(&credentials), key)
            .sign(Duration::from_secs(60));
        try_http("GET", url.as_str(), headers).ok()
    }

    /// The object at `key` exists.
    pub fn exists(&self, key: &str) -> bool {
        self.get(key).is_some_and(|r| r.status == 200)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A small HTTP front of the bucket for browsers, as a CDN would be: `GET /{key}` is
/// fetched from s3s-fs with a signed request and answered with the object's body,
/// `Content-Type` and `Cache-Control`, and `Access-Control-Allow-Origin: *` (s3s-fs answers
/// neither anonymous nor cross-origin requests). A thread per connection; it stops when
/// dropped.
pub struct BucketProxy {
    pub port: u16,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl BucketProxy {
    pub fn start(s3: &S3Server) -> BucketProxy {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let endpoint = s3.endpoint();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let endpoint = endpoint.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut header = String::new();
                        match reader.read_line(&mut header) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if header.trim().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    let key = path.trim_start_matches('/').split('?').next().unwrap_or("");
                    let bucket = Bucket::new(
                        endpoint.parse().expect("URL"),
                        UrlStyle::Path,
                        BUCKET.to_string(),
                        "us-east-1",
                    )
                    .expect("bucket");
                    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY);
                    let url = bucket
                        .get_object(Some(&credentials), key)
                        .sign(Duration::from_secs(60));
                    let answer = try_http("GET", url.as_str(), &[]).ok();
                    let (status, body, headers) = match &answer {
                        Some(r) => (r.status, r.body.as_slice(), {
                            let mut h = String::new();
                            for name in ["content-type", "cache-control"] {
                                if let Some(v) = r.header(name) {
                                    h.push_str(&format!("{name}: {v}\r\n"));
                                }
                            }
                            h
                        }),
                        None => (502, &b""[..], String::new()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{headers}\
                         access-control-allow-origin: *\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                });
            }
        });
        BucketProxy { port, stop }
    }

    pub fn url(&self, key: &str) -> String {
        format!("http://127.0.0.1:{}/{key}", self.port)
    }
}

impl Drop for BucketProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}
