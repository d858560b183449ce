//! Hostile HTTP clients against the real server, over real sockets: headers dribbled
//! forever, silence, request heads far beyond any player's. Each is dropped or refused
//! while a real ffmpeg stream on the same server keeps going.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// The header time-out of `src/http/mod.rs` is 10 s; a dropped client must be gone well
/// within this on a busy machine.
const HEADER_CLOSE_TIMEOUT: Duration = Duration::from_secs(40);

fn http_socket(server: &ServerProcess) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.http_port)).expect("connect to the HTTP port")
}

#[test]
fn clients_that_never_finish_their_headers_are_dropped_at_the_header_timeout() {
    let bystander = Bystander::start(&[]);
    // Headers a byte a second, never the blank line that ends them.
    let mut slow = http_socket(&bystander.server);
    slow.write_all(b"GET /live/bystander/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let writer = dribble(slow.try_clone().unwrap(), vec![b'a'; 600]);
    // A connection that sends nothing at all.
    let mut silent = http_socket(&bystander.server);

    let (closed, answer) = read_until_closed(&mut slow, HEADER_CLOSE_TIMEOUT);
    assert!(
        closed,
        "slow headers still open after {HEADER_CLOSE_TIMEOUT:?}"
    );
    assert!(
        answer.is_empty(),
        "slow headers answered: {}",
        String::from_utf8_lossy(&answer)
    );
    let (closed, _) = read_until_closed(&mut silent, HEADER_CLOSE_TIMEOUT);
    assert!(closed, "silent connection still open");
    let sent = writer.join().unwrap();
    assert!(sent < 600, "the slow client was never cut off");
    bystander
        .server
        .assert_logged_times("read header from client timeout", 2);
    // A player is still served.
    assert_eq!(
        get(&bystander.server.http_url("/live/bystander/index.m3u8")).status,
        200
    );
    bystander.assert_unharmed();
}

#[test]
fn request_heads_beyond_the_limit_are_refused() {
    let bystander = Bystander::start(&[]);
    const TOO_LARGE: &str = "HTTP/1.1 431 Request Header Fields Too Large";
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("one 1 MiB header", TOO_LARGE, {
            let mut r = b"GET /live/bystander/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
            r.extend(std::iter::repeat_n(b'a', 1 << 20));
            r.extend_from_slice(b"\r\n\r\n");
            r
        }),
        ("10,000 headers", TOO_LARGE, {
            let mut r = b"GET /live/bystander/index.m3u8 HTTP/1.1\r\nHost: x\r\n".to_vec();
            for i in 0..10_000 {
                r.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r
        }),
        ("a 1 MiB path", TOO_LARGE, {
            let mut r = b"GET /".to_vec();
            r.extend(std::iter::repeat_n(b'p', 1 << 20));
            r.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
            r
        }),
        (
            "no HTTP at all",
            "HTTP/1.1 400 Bad Request",
            vec![0xFF; 64 * 1024],
        ),
    ];
    for (case, status, request) in cases {
        let mut socket = http_socket(&bystander.server);
        // The server refuses before it has read everything, so the write may fail, and
        // the reset that follows may discard the answer: closed, and if answered, with the
        // status that names the problem.
        let _ = socket.write_all(&request);
        let (closed, answer) = read_until_closed(&mut socket, HEADER_CLOSE_TIMEOUT);
        assert!(closed, "{case}: connection still open");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.lines().next() == Some(status),
            "{case}: answered {answer}"
        );
    }
    bystander.assert_unharmed();
}
