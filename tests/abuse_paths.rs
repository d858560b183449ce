//! Stream keys and request paths made to escape the media root, over RTMP and raw HTTP
//! sockets: `..`, its percent-encodings, slashes, NUL, very long and non-UTF-8 names. None
//! may create, change or read a file outside the media root, or create a folder inside it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::SystemTime;

use common::raw::*;
use common::*;
use rtmp_server::rtmp::amf0::Value;

/// What a folder tree holds: every path under it with its kind, size and modification
/// time, except the folder `skip` (a live stream's, which changes by design).
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<String, (bool, u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read folder").flatten() {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_dir() {
                out.insert(name, (true, 0, SystemTime::UNIX_EPOCH));
                pending.push(path);
            } else {
                out.insert(name, (false, meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out
}

/// A server whose media root is `{outer}/media`, next to a file no request may reach.
fn server_in_a_folder_of_its_own() -> (tempfile::TempDir, ServerProcess) {
    let outer = tempfile::tempdir().expect("temp dir");
    std::fs::write(outer.path().join("secret.ts"), b"secret").unwrap();
    std::fs::create_dir(outer.path().join("live")).unwrap();
    std::fs::write(outer.path().join("live").join("index.m3u8"), b"secret").unwrap();
    let media_root = tempfile::Builder::new()
        .prefix("media")
        .tempdir_in(outer.path())
        .expect("media root");
    // Every bad name comes from 127.0.0.1: the failed-publish limit (`abuse_keys.rs`) would
    // refuse the address after ten, before its names are looked at.
    let server = ServerProcess::start_with_root(media_root, &["--auth-max-failures", "0"]);
    (outer, server)
}

/// One RTMP publish of a name given as raw AMF0 bytes, on a connection of its own.
/// Returns the onStatus codes the server sent before it closed the connection.
fn publish_name(server: &ServerProcess, name_amf: &[u8]) -> Vec<String> {
    let mut c = RawRtmp::connect(server.rtmp_port);
    c.handshake();
    c.connect_app("live");
    let stream = c.create_stream();
    c.publish_raw_name(stream, name_amf).unwrap();
    assert!(
        c.closed_within(CLOSE_TIMEOUT),
        "publishing {:?} left the connection open",
        String::from_utf8_lossy(name_amf)
    );
    c.status_codes()
}

/// Sends `request` as it is and reads the answer until the server closes the connection.
/// Returns the status (None when the server closed without answering) and the text.
fn raw_request(server: &ServerProcess, request: &[u8]) -> (Option<u16>, String) {
    let mut socket = TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    let _ = socket.write_all(request);
    let (closed, answer) = read_until_closed(&mut socket, CLOSE_TIMEOUT);
    assert!(
        closed,
        "{:?}: connection still open",
        String::from_utf8_lossy(request)
    );
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok());
    (status, text)
}

#[test]
fn keys_and_paths_never_reach_outside_the_media_root() {
    let (outer, server) = server_in_a_folder_of_its_own();
    let mut publisher = live_publisher(&server, "good");
    let before_playlist = wait_playlist(&server, "good");
    let good_dir = server.stream_dir("good");
    let before = snapshot(outer.path(), &good_dir);

    // Over RTMP: names a path could misread, as UTF-8 AMF0 strings.
    let long = "k".repeat(5000);
    let names: Vec<&str> = vec![
        "../escape",
        "../../escape",
        "..",
        ".",
        "",
        "%2e%2e",
        "%2e%2e%2fescape",
        "..%2f..%2fescape",
        "/",
        "/abs",
        "a/b",
        "good/../../escape",
        "a\\b",
        "a\0b",
        "\0",
        ".hidden",
        "..?key=x",
        "k\u{00e9}y",
        &long,
    ];
    for name in &names {
        let codes = publish_name(&server, &amf0_string_bytes(name.as_bytes()));
        assert_eq!(
            codes,
            vec!["NetStream.Publish.BadName".to_string()],
            "publishing {name:?}"
        );
    }
    // A name of 60,000 bytes as an AMF0 long string: refused by name.
    let long_string = |len: usize| {
        let mut s = vec![0x0C];
        s.extend_from_slice(&(len as u32).to_be_bytes());
        s.extend(std::iter::repeat_n(b'.', len));
        s
    };
    let codes = publish_name(&server, &long_string(60_000));
    assert_eq!(codes, vec!["NetStream.Publish.BadName".to_string()]);
    // 100,000 bytes: a command longer than anything a client sends before it may publish
    // ends the connection before it is read.
    let codes = publish_name(&server, &long_string(100_000));
    assert!(codes.is_empty(), "{codes:?}");
    server.assert_logged("bytes allowed here");
    // Names that are not UTF-8: the AMF0 string is refused before it is a name at all.
    for bytes in [&b"\xff\xfe"[..], b"..\xc0\xaf..\xc0\xafescape", b"ok\x80"] {
        let codes = publish_name(&server, &amf0_string_bytes(bytes));
        assert!(codes.is_empty(), "{bytes:?}: {codes:?}");
    }
    server.assert_logged("is not UTF-8");
    assert_eq!(
        server.metric("rtmp_server_publishes_rejected_total{reason=\"malformed_key\"}"),
        Some((names.len() + 1) as f64)
    );
    // An application name that is a path.
    let mut c = RawRtmp::connect(server.rtmp_port);
    c.handshake();
    c.command(
        0,
        "connect",
        Value::Object(vec![("app".to_string(), Value::from("../../live"))]),
        vec![],
    )
    .unwrap();
    assert!(c.closed_within(CLOSE_TIMEOUT));
    assert_eq!(c.status_codes(), vec!["NetConnection.Connect.Rejected"]);

    // Over HTTP: request lines sent byte for byte, as no client library would send them
    // (NUL and bytes that are not UTF-8 in the target, a relative target), and two that
    // any client sends, to show the socket reaches the same validation. Targets a client
    // can send are checked one by one in process (`http_router.rs`).
    let mut requests: Vec<Vec<u8>> = [
        "GET /live/good/../../../secret.ts",
        "GET /live/%2e%2e/%2e%2e/secret.ts",
        "GET ../secret.ts",
    ]
    .iter()
    .map(|line| line.as_bytes().to_vec())
    .collect();
    requests.push(b"GET /live/go\0od/index.m3u8".to_vec());
    requests.push(b"GET /live/\xff\xfe/index.m3u8".to_vec());
    requests.push(b"GET /live/good/\xc0\xae\xc0\xae/secret.ts".to_vec());
    for mut request in requests {
        request.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n");
        request.extend_from_slice(b"Connection: close\r\n\r\nsecret");
        let (status, text) = raw_request(&server, &request);
        let line = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        assert!(
            matches!(status, Some(400 | 404 | 405 | 414 | 431)),
            "{line}: {text}"
        );
        assert!(!text.contains("secret"), "{line}: reached a file outside");
    }

    // Nothing outside the media root changed, and nothing appeared inside it: the only
    // stream folder is the real stream's.
    assert_eq!(snapshot(outer.path(), &good_dir), before);
    let streams: Vec<String> = std::fs::read_dir(server.media_root.path().join("live"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(streams, vec!["good".to_string()]);
    assert!(good_dir.join("index.m3u8").is_file());
    assert_advances(&server, "good", &mut publisher, &before_playlist);
}
