//! Hostile clients: a server with a bystander stream that must not notice them, and socket
//! helpers to read until the server closes and to send a byte a second.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::http::{Playlist, assert_advances, wait_playlist};
use super::publish::{Publisher, live_publisher};
use super::raw::RawRtmp;
use super::server::ServerProcess;
use super::{STREAM_TIMEOUT, wait_for};

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
        // What the abuse made the server hold goes back to the system within a few sweeps.
        let bound = self.rss_before + RSS_GROWTH_KIB;
        let settled = wait_for(Duration::from_secs(10), || self.server.rss_kib() <= bound);
        assert!(
            settled,
            "RSS grew from {} KiB to {} KiB",
            self.rss_before,
            self.server.rss_kib()
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
