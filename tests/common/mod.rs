//! Shared harness for the end-to-end tests: the real server binary on ephemeral ports, real
//! ffmpeg publishers, real HTTP requests, ffprobe to read the output back. One module per job;
//! everything is re-exported here, so a test file says `use common::*`.
#![allow(dead_code)]

pub mod flv;
pub mod hls_check;
pub mod llhls;
pub mod nginx;
pub mod raw;
pub mod redis;
pub mod s3;
pub mod stub;
pub mod tls;

pub mod abuse;
pub mod http;
pub mod probe;
pub mod publish;
pub mod server;

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use self::{abuse::*, http::*, probe::*, publish::*, server::*};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
