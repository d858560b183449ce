//! HTTP requests to a running server, and the media playlists it serves.

use std::time::Duration;

use super::publish::Publisher;
use super::server::ServerProcess;
use super::{STREAM_TIMEOUT, wait_for};

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
