//! Playlists and segments, from memory (and, with `hls.keep`, from disk once they left it).
//!
//! Cache rules a CDN can trust: a live playlist changes every segment, so it may be cached
//! for a second at most; a segment's name is never reused, so it is immutable.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::HttpContext;
use crate::hub::key::StreamKey;

/// Longest segment file name accepted in a URL; the server's own names are far shorter.
const MAX_SEGMENT_NAME: usize = 64;

pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
pub const SEGMENT_TYPE: &str = "video/mp2t";
const PLAYLIST_CACHE: &str = "public, max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

/// A segment file name: `[A-Za-z0-9_-]{1,64}.ts`, nothing a path could misread.
fn is_segment_name(file: &str) -> bool {
    file.len() <= MAX_SEGMENT_NAME
        && file.strip_suffix(".ts").is_some_and(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        "not found\n",
    )
        .into_response()
}

fn body(content_type: &'static str, cache: &'static str, data: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            // Explicit, so HEAD answers carry it too.
            (header::CONTENT_LENGTH, HeaderValue::from(data.len())),
        ],
        Body::from(data),
    )
        .into_response()
}

/// Tells players apart for the viewer estimate: the client address (the first
/// `X-Forwarded-For` hop behind a proxy or CDN) and the user agent.
fn player_id(peer: SocketAddr, headers: &HeaderMap) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
    {
        Some(forwarded) => forwarded.trim().hash(&mut h),
        None => peer.ip().hash(&mut h),
    }
    headers
        .get(header::USER_AGENT)
        .map(HeaderValue::as_bytes)
        .hash(&mut h);
    h.finish()
}

/// `GET|HEAD /{app}/{name}/{file}`: `index.m3u8` or a `.ts` segment.
pub async fn file(
    State(shared): State<Arc<HttpContext>>,
    Path((app, name, file)): Path<(String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let response = serve_file(&shared, &app, &name, &file, peer, &headers).await;
    if method == Method::GET && response.status() == StatusCode::OK {
        let len = HttpBody::size_hint(response.body()).exact().unwrap_or(0);
        shared.metrics.http_bytes_out_total.inc_by(len);
    }
    response
}

async fn serve_file(
    shared: &HttpContext,
    app: &str,
    name: &str,
    file: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    if app != shared.app || StreamKey::parse(name).is_err() {
        return not_found();
    }
    let stream = shared.registry.get(app, name);
    if file == "index.m3u8" {
        if let Some((stream, playlist)) = stream.as_ref().and_then(|s| Some((s, s.playlist()?))) {
            stream.note_viewer(player_id(peer, headers), Instant::now());
            let etag = HeaderValue::from_str(&playlist.etag).ok();
            if let (Some(etag), Some(inm)) = (&etag, headers.get(header::IF_NONE_MATCH)) {
                if inm
                    .as_bytes()
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii() == etag.as_bytes() || t.trim_ascii() == b"*")
                {
                    let mut r = StatusCode::NOT_MODIFIED.into_response();
                    r.headers_mut().insert(header::ETAG, etag.clone());
                    r.headers_mut().insert(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static(PLAYLIST_CACHE),
                    );
                    return r;
                }
            }
            let mut r = body(PLAYLIST_TYPE, PLAYLIST_CACHE, playlist.text.clone());
            if let Some(etag) = etag {
                r.headers_mut().insert(header::ETAG, etag);
            }
            return r;
        }
        if stream.is_none() && shared.keep {
            return from_disk(shared, app, name, file, PLAYLIST_TYPE, PLAYLIST_CACHE).await;
        }
        return not_found();
    }
    if !is_segment_name(file) {
        return not_found();
    }
    if let Some(segment) = stream.as_ref().and_then(|s| s.segment(file)) {
        return body(SEGMENT_TYPE, SEGMENT_CACHE, segment.data.clone());
    }
    if shared.keep {
        return from_disk(shared, app, name, file, SEGMENT_TYPE, SEGMENT_CACHE).await;
    }
    not_found()
}

/// A kept file that is no longer in memory. Every path part was validated above.
async fn from_disk(
    shared: &HttpContext,
    app: &str,
    name: &str,
    file: &str,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let path = shared.mediaroot.join(app).join(name).join(file);
    match tokio::fs::read(&path).await {
        Ok(data) => body(content_type, cache, Bytes::from(data)),
        Err(_) => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_are_plain() {
        assert!(is_segment_name("a1b2-17.ts"));
        assert!(is_segment_name("x_1.ts"));
        for bad in [
            ".ts",
            "../x.ts",
            "a/b.ts",
            "a.b.ts",
            "a%2f.ts",
            "a\0.ts",
            "index.m3u8",
            "x.TS",
        ] {
            assert!(!is_segment_name(bad), "{bad:?}");
        }
        assert!(!is_segment_name(&format!(
            "{}.ts",
            "a".repeat(MAX_SEGMENT_NAME)
        )));
    }
}
