//! Playlists, segments, parts and initialization sections, from memory (and from disk: the
//! segments a DVR window lists but no longer holds in memory, and, with `hls.keep`, files
//! once they left memory): the classic `index.m3u8` with its `.ts` segments, and the
//! Low-Latency `llhls.m3u8` with its `.m4s` segments and parts and `.mp4` initialization
//! sections.
//!
//! A Low-Latency playlist request with `_HLS_msn` (and `_HLS_part`) is held until the
//! playlist holds what it asks for (Blocking Playlist Reload), and a request for the part the
//! playlist's preload hint names is held until that part exists; both give up after three
//! target durations with 503, as RFC 8216bis §6.2.5.2 asks.
//!
//! Cache rules a CDN can trust: a live playlist changes every segment (a Low-Latency one
//! every part), so it may be cached for a second at most; a playlist answered for a request
//! with `_HLS_msn` holds at least what that URL asked for whenever it is served, so it may be
//! cached as long as segments stay available; a segment's, part's or initialization section's
//! name is never reused, so they are immutable.

use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::watch;

use super::HttpContext;
use crate::hls::blocking::{self, Readiness};
use crate::hls::ll_query;
use crate::hls::ll_stream::LlStream;
use crate::hls::served::Served;
use crate::hls::stream::PlaylistSnapshot;
use crate::hub::key::StreamKey;
use crate::hub::stream::Playlist;

/// Longest media file name accepted in a URL; the server's own names are far shorter.
const MAX_SEGMENT_NAME: usize = 64;

pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
pub const SEGMENT_TYPE: &str = "video/mp2t";
/// Fragmented MP4: CMAF segments, parts and initialization sections.
pub const MP4_TYPE: &str = "video/mp4";
const PLAYLIST_CACHE: &str = "public, max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

/// The classic playlist's file name.
const CLASSIC_PLAYLIST: &str = "index.m3u8";

/// What kind of media file a name is, by its form: one `[A-Za-z0-9_-]` word (no dot), at
/// most [`MAX_SEGMENT_NAME`] bytes with its extension, `.ts`, `.m4s` or `.mp4`; nothing a
/// path could misread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaFile {
    /// A classic MPEG-TS segment.
    Ts,
    /// A CMAF segment or part.
    M4s,
    /// A CMAF initialization section.
    Mp4,
}

fn media_file(file: &str) -> Option<MediaFile> {
    if file.len() > MAX_SEGMENT_NAME {
        return None;
    }
    let (stem, kind) = if let Some(stem) = file.strip_suffix(".ts") {
        (stem, MediaFile::Ts)
    } else if let Some(stem) = file.strip_suffix(".m4s") {
        (stem, MediaFile::M4s)
    } else {
        (file.strip_suffix(".mp4")?, MediaFile::Mp4)
    };
    let word = !stem.is_empty()
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    word.then_some(kind)
}

pub(super) fn not_found() -> Response {
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

/// The playlist a viewer plays, by the stream playlist it fetched (`index.m3u8` is the
/// classic one, even where it serves the CMAF window).
fn playlist_kind(file: &str) -> Playlist {
    if file == CLASSIC_PLAYLIST {
        Playlist::Classic
    } else {
        Playlist::LowLatency
    }
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

/// `GET|HEAD /{app}/{name}/{file}`: a playlist, segment, part or initialization section.
pub async fn file(
    State(shared): State<Arc<HttpContext>>,
    Path((app, name, file)): Path<(String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let response = serve_file(&shared, &app, &name, &file, &query, peer, &headers).await;
    counted(&shared, &method, response)
}

/// Counts what a GET answer sends in `http_bytes_out_total`.
fn counted(shared: &HttpContext, method: &Method, response: Response) -> Response {
    if *method == Method::GET && response.status() == StatusCode::OK {
        let len = HttpBody::size_hint(response.body()).exact().unwrap_or(0);
        shared.metrics.http_bytes_out_total.inc_by(len);
    }
    response
}

/// `GET|HEAD /{app}/{name}/{rendition}/{file}`: a multitrack stream's rendition playlist,
/// segment, part or initialization section.
pub async fn rendition_file(
    State(shared): State<Arc<HttpContext>>,
    Path((app, name, rendition, file)): Path<(String, String, String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let response = serve_rendition(
        &shared, &app, &name, &rendition, &file, &query, peer, &headers,
    )
    .await;
    counted(&shared, &method, response)
}

#[allow(clippy::too_many_arguments)]
async fn serve_rendition(
    shared: &HttpContext,
    app: &str,
    name: &str,
    rendition: &str,
    file: &str,
    query: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    if app != shared.app || StreamKey::parse(name).is_err() {
        return not_found();
    }
    let Some(stream) = shared.registry.get(app, name) else {
        return not_found();
    };
    // Only renditions the stream has are served (their names are `v{n}`/`a{n}`): the latest
    // publish's, and earlier ones' until they are swept.
    let Some(rendition) = stream.rendition(rendition) else {
        return not_found();
    };
    if file == crate::hls::ll_stream::PLAYLIST_NAME {
        let directives = match ll_query::parse(query.as_bytes()) {
            Ok(d) => d,
            Err(e) => return bad_request(&e.to_string()),
        };
        stream.note_viewer(player_id(peer, headers), None, Instant::now());
        let window = &rendition.window;
        let reports = || rendition_reports(&stream, &rendition.name);
        return ll_playlist(
            shared,
            || {
                stream.note_held();
                rendition.position()
            },
            window,
            directives,
            headers,
            reports,
        )
        .await;
    }
    let kind = match media_file(file) {
        Some(kind @ (MediaFile::M4s | MediaFile::Mp4)) => kind,
        _ => return not_found(),
    };
    if let Some(response) = cmaf_file(
        shared,
        || rendition.position(),
        &rendition.window,
        kind,
        file,
    )
    .await
    {
        return response;
    }
    let listed = rendition.window.read(|w| w.segment_file(file));
    if let Some(path) = listed {
        return listed_file(shared, &rendition.window, &path, MP4_TYPE).await;
    }
    let folder = format!("{name}/{}", rendition.name);
    from_disk_or_not_found(shared, true, app, &folder, file, MP4_TYPE, SEGMENT_CACHE).await
}

/// `EXT-X-RENDITION-REPORT` lines for the stream's other renditions, as a rendition's
/// Low-Latency playlist ends with them (RFC 8216bis §4.4.5.4): where each stands, so a
/// player switching to it can ask for the right part at once.
fn rendition_reports(stream: &crate::hub::stream::Stream, this: &str) -> String {
    let mut out = String::new();
    for other in stream.renditions().iter().filter(|r| r.name != this) {
        let p = *other.position().borrow();
        let (msn, part) = if p.open_parts > 0 {
            (p.open_msn(), p.open_parts - 1)
        } else if let Some(last) = p.last_msn {
            (last, p.last_parts.saturating_sub(1))
        } else {
            continue;
        };
        let _ = writeln!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"../{}/{}\",LAST-MSN={msn},LAST-PART={part}",
            other.name,
            crate::hls::ll_stream::PLAYLIST_NAME
        );
    }
    out
}

async fn serve_file(
    shared: &HttpContext,
    app: &str,
    name: &str,
    file: &str,
    query: &str,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Response {
    if app != shared.app || StreamKey::parse(name).is_err() {
        return not_found();
    }
    let stream = shared.registry.get(app, name);
    if let Some(stream) = &stream {
        let is_playlist = file == CLASSIC_PLAYLIST || file == crate::hls::ll_stream::PLAYLIST_NAME;
        if is_playlist && !stream.renditions().is_empty() {
            // A multitrack publish: both playlists are its multivariant playlist.
            return match stream.multivariant() {
                Some(playlist) => {
                    stream.note_viewer(
                        player_id(peer, headers),
                        Some(playlist_kind(file)),
                        Instant::now(),
                    );
                    playlist_response(&playlist, headers, PLAYLIST_CACHE)
                }
                None => not_found(),
            };
        }
    }
    let cmaf_classic = stream
        .as_ref()
        .is_some_and(|s| s.classic_is_cmaf() && s.cmaf.is_some());
    if file == CLASSIC_PLAYLIST && !cmaf_classic {
        if let Some((stream, playlist)) = stream.as_ref().and_then(|s| Some((s, s.playlist()?))) {
            stream.note_viewer(
                player_id(peer, headers),
                Some(Playlist::Classic),
                Instant::now(),
            );
            return playlist_response(&playlist, headers, PLAYLIST_CACHE);
        }
        return from_disk_or_not_found(
            shared,
            stream.is_none(),
            app,
            name,
            file,
            PLAYLIST_TYPE,
            PLAYLIST_CACHE,
        )
        .await;
    }
    if file == crate::hls::ll_stream::PLAYLIST_NAME || file == CLASSIC_PLAYLIST {
        // `index.m3u8` of a stream whose codecs MPEG-TS does not carry here is the CMAF
        // playlist (a player without Low-Latency support ignores its part tags).
        let directives = match ll_query::parse(query.as_bytes()) {
            Ok(d) => d,
            Err(e) => return bad_request(&e.to_string()),
        };
        let Some((stream, window)) = stream.as_ref().and_then(|s| Some((s, s.cmaf.as_ref()?)))
        else {
            return from_disk_or_not_found(
                shared,
                stream.is_none(),
                app,
                name,
                file,
                PLAYLIST_TYPE,
                PLAYLIST_CACHE,
            )
            .await;
        };
        stream.note_viewer(
            player_id(peer, headers),
            Some(playlist_kind(file)),
            Instant::now(),
        );
        return ll_playlist(
            shared,
            || stream.position(),
            window,
            directives,
            headers,
            String::new,
        )
        .await;
    }
    let Some(kind) = media_file(file) else {
        return not_found();
    };
    match (kind, stream.as_ref()) {
        (MediaFile::Ts, Some(stream)) => {
            if let Some(segment) = stream.segment(file) {
                return body(SEGMENT_TYPE, SEGMENT_CACHE, segment.data.clone());
            }
            if let (Some(window), Some(path)) = (&stream.ts, stream.segment_file(file)) {
                return listed_file(shared, window, &path, SEGMENT_TYPE).await;
            }
        }
        (MediaFile::M4s | MediaFile::Mp4, Some(stream)) => {
            if let Some(window) = &stream.cmaf {
                if let Some(response) =
                    cmaf_file(shared, || stream.position(), window, kind, file).await
                {
                    return response;
                }
                if let Some(path) = window.read(|w| w.segment_file(file)) {
                    return listed_file(shared, window, &path, MP4_TYPE).await;
                }
            }
        }
        (_, None) => {}
    }
    let content_type = match kind {
        MediaFile::Ts => SEGMENT_TYPE,
        MediaFile::M4s | MediaFile::Mp4 => MP4_TYPE,
    };
    from_disk_or_not_found(shared, true, app, name, file, content_type, SEGMENT_CACHE).await
}

/// A playlist snapshot as a response, or 304 when the client has it (`If-None-Match`).
fn playlist_response(
    playlist: &PlaylistSnapshot,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response {
    let etag = HeaderValue::from_str(&playlist.etag).ok();
    if let (Some(etag), Some(inm)) = (&etag, headers.get(header::IF_NONE_MATCH))
        && inm
            .as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii() == etag.as_bytes() || t.trim_ascii() == b"*")
    {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        r.headers_mut().insert(header::ETAG, etag.clone());
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        return r;
    }
    let mut r = body(PLAYLIST_TYPE, cache, playlist.text.clone());
    if let Some(etag) = etag {
        r.headers_mut().insert(header::ETAG, etag);
    }
    r
}

/// `llhls.m3u8`: the Low-Latency playlist (its delta update with `_HLS_skip`), held while a
/// blocking request asks for what it does not hold yet.
async fn ll_playlist(
    shared: &HttpContext,
    position: impl Fn() -> watch::Receiver<blocking::Position>,
    window: &Served<LlStream>,
    directives: ll_query::DeliveryDirectives,
    headers: &HeaderMap,
    reports: impl FnOnce() -> String,
) -> Response {
    let blocking = directives.blocking();
    if let Some(request) = blocking {
        let held = hold(
            shared,
            position(),
            window,
            |position| match blocking::readiness(position, request) {
                Readiness::Ready => Some(Held::Ready(())),
                Readiness::TooFarAhead => Some(Held::Answered(bad_request(&too_far_ahead(
                    position, request,
                )))),
                Readiness::Wait => None,
            },
        )
        .await;
        if let Held::Answered(response) = held {
            return response;
        }
    }
    let Some(mut playlist) = window.read(|w| w.playlist(directives.delta())) else {
        return not_found();
    };
    let reports = reports();
    if !reports.is_empty() {
        let mut text = Vec::with_capacity(playlist.text.len() + reports.len());
        text.extend_from_slice(&playlist.text);
        text.extend_from_slice(reports.as_bytes());
        playlist = Arc::new(PlaylistSnapshot::new(text));
    }
    // What a request with _HLS_msn asked for is in every later version of the playlist, so
    // a cache may keep the answer for that URL as long as segments stay available.
    let cache = if blocking.is_some() {
        BLOCKING_PLAYLIST_CACHE
    } else {
        PLAYLIST_CACHE
    };
    playlist_response(&playlist, headers, cache)
}

/// Why a blocking request asks too far ahead, for the 400 body: its `_HLS_msn` (more than
/// two segments past the last), else its `_HLS_part` (past the Advance Part Limit), as
/// [`blocking::readiness`] decides.
fn too_far_ahead(position: &blocking::Position, request: blocking::Request) -> String {
    let last_msn_allowed = position
        .open_msn()
        .saturating_add(blocking::MAX_SEGMENTS_AHEAD - 1);
    match request.part {
        Some(part) if request.msn <= last_msn_allowed => format!(
            "_HLS_part={part} of _HLS_msn={} is more than {} parts past the playlist's last part",
            request.msn, position.advance_part_limit
        ),
        _ => format!(
            "_HLS_msn={} is more than {} segments past the playlist's last",
            request.msn,
            blocking::MAX_SEGMENTS_AHEAD
        ),
    }
}

/// A blocking playlist request's answer may be cached this long: a few target durations,
/// the time its segments stay available at least.
const BLOCKING_PLAYLIST_CACHE: &str = "public, max-age=6";

/// A CMAF segment, part or initialization section from memory; a request for the part the
/// preload hint names is held until that part exists. `None`: not in memory.
async fn cmaf_file(
    shared: &HttpContext,
    position: impl Fn() -> watch::Receiver<blocking::Position>,
    window: &Served<LlStream>,
    kind: MediaFile,
    file: &str,
) -> Option<Response> {
    if kind == MediaFile::Mp4 {
        return window
            .read(|w| w.init(file))
            .map(|data| body(MP4_TYPE, SEGMENT_CACHE, data));
    }
    if let Some(segment) = window.read(|w| w.segment(file)) {
        let pieces: Vec<Bytes> = segment.pieces().cloned().collect();
        return Some(pieces_body(MP4_TYPE, SEGMENT_CACHE, pieces));
    }
    match window.read(|w| PartLookup::of(w, file)) {
        PartLookup::Here(part) => return Some(body(MP4_TYPE, SEGMENT_CACHE, part)),
        PartLookup::Unknown => return None,
        PartLookup::Hinted => {}
    }
    // The hinted part: answered as soon as it exists (RFC 8216bis §6.2.6). The hint names
    // the stream's next part, so it moves on only with that part, or goes when the stream
    // ends: then the part will not come.
    let held = hold(shared, position(), window, |_| {
        match window.read(|w| PartLookup::of(w, file)) {
            PartLookup::Here(part) => Some(Held::Ready(part)),
            PartLookup::Hinted => None,
            PartLookup::Unknown => Some(Held::Answered(not_found())),
        }
    })
    .await;
    Some(match held {
        Held::Ready(part) => body(MP4_TYPE, SEGMENT_CACHE, part),
        Held::Answered(response) => response,
    })
}

/// A part by file name as the window has it at one moment: read at once, since the part a
/// request is held for comes exactly when the hint moves on from it.
enum PartLookup {
    Here(Bytes),
    /// The part the preload hint names, not there yet.
    Hinted,
    Unknown,
}

impl PartLookup {
    fn of(window: &LlStream, file: &str) -> PartLookup {
        match window.part(file) {
            Some(part) => PartLookup::Here(part),
            None if window.is_hinted(file) => PartLookup::Hinted,
            None => PartLookup::Unknown,
        }
    }
}

/// How a held request ends: what it waited for is there, or it is answered otherwise.
enum Held<T> {
    Ready(T),
    Answered(Response),
}

/// Holds a request until `decide` answers (`Some`), asking again each time the stream's
/// Low-Latency window changes: 503 after three target durations (RFC 8216bis §6.2.5.2), 404
/// when the stream goes away. A client that goes away drops the wait with its request.
async fn hold<T>(
    shared: &HttpContext,
    mut position: watch::Receiver<blocking::Position>,
    window: &Served<LlStream>,
    mut decide: impl FnMut(&blocking::Position) -> Option<Held<T>>,
) -> Held<T> {
    let target_duration = window
        .read(LlStream::target_duration)
        .unwrap_or(shared.hls_time);
    let deadline = tokio::time::Instant::now() + blocking::hold_limit(target_duration);
    loop {
        let now = *position.borrow_and_update();
        if let Some(answer) = decide(&now) {
            return answer;
        }
        tokio::select! {
            changed = position.changed() => {
                if changed.is_err() {
                    return Held::Answered(not_found());
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Held::Answered(unavailable()),
        }
    }
}

/// 400 with the reason.
fn bad_request(reason: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        format!("{reason}\n"),
    )
        .into_response()
}

/// 503: what was waited for did not come in time.
fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        "not available within three target durations\n",
    )
        .into_response()
}

/// A file from disk when `hls.keep` is on and `allowed`, else 404.
async fn from_disk_or_not_found(
    shared: &HttpContext,
    allowed: bool,
    app: &str,
    name: &str,
    file: &str,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    if allowed && shared.keep {
        return from_disk(shared, app, name, file, content_type, cache).await;
    }
    not_found()
}

/// A response whose body is `pieces` in order, sent without joining them.
fn pieces_body(content_type: &'static str, cache: &'static str, pieces: Vec<Bytes>) -> Response {
    let len: usize = pieces.iter().map(Bytes::len).sum();
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::new(Pieces::new(pieces)),
    )
        .into_response()
}

/// An HTTP body made of `Bytes` pieces, each sent as it is.
struct Pieces {
    pieces: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl Pieces {
    fn new(pieces: Vec<Bytes>) -> Pieces {
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        Pieces {
            pieces: pieces.into(),
            remaining,
        }
    }
}

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next = self.pieces.pop_front();
        if let Some(piece) = &next {
            self.remaining -= piece.len() as u64;
        }
        std::task::Poll::Ready(next.map(|p| Ok(hyper::body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// A file from disk, streamed (never held whole in memory: a burst of DVR seeks costs
/// buffers, not segments), with the headers of the same file from memory.
async fn file_body(
    path: &std::path::Path,
    content_type: &'static str,
    cache: &'static str,
) -> std::io::Result<Response> {
    let file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A segment its window lists (a DVR segment) or keeps available, no longer in memory, from
/// its file: `path` is the window's own (relative to the media root, made of the stream's
/// folder and a name the window gave), never one from the request. Streamed from the file
/// and not kept. A file missing on disk (its write failed, or the disk writer dropped it)
/// answers 404, logged once per window.
async fn listed_file<W>(
    shared: &HttpContext,
    window: &Served<W>,
    path: &std::path::Path,
    content_type: &'static str,
) -> Response {
    let full = shared.mediaroot.join(path);
    match file_body(&full, content_type, SEGMENT_CACHE).await {
        Ok(response) => response,
        Err(e) => {
            if window.first_missing_file() {
                tracing::warn!(
                    path = %full.display(),
                    error = %e,
                    "a listed segment's file cannot be read: answering 404 (logged once per stream)"
                );
            }
            not_found()
        }
    }
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
    file_body(&path, content_type, cache)
        .await
        .unwrap_or_else(|_| not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_file_names_are_plain() {
        assert_eq!(media_file("a1b2-17.ts"), Some(MediaFile::Ts));
        assert_eq!(media_file("x_1.ts"), Some(MediaFile::Ts));
        assert_eq!(media_file("a1b2-17.m4s"), Some(MediaFile::M4s));
        assert_eq!(media_file("a1b2-p17.m4s"), Some(MediaFile::M4s));
        assert_eq!(media_file("a1b2-init-0.mp4"), Some(MediaFile::Mp4));
        for bad in [
            ".ts",
            "../x.ts",
            "a/b.ts",
            "a.b.ts",
            "a%2f.ts",
            "a\0.ts",
            "index.m3u8",
            "x.TS",
            ".m4s",
            "a.b.m4s",
            "a1b2-17.3.m4s",
            "a..b.m4s",
            ".a.m4s",
            "a..m4s",
            "a%2e.m4s",
            "../a.mp4",
            "a.b.mp4",
        ] {
            assert_eq!(media_file(bad), None, "{bad:?}");
        }
        assert_eq!(
            media_file(&format!("{}.ts", "a".repeat(MAX_SEGMENT_NAME))),
            None
        );
    }

    #[test]
    fn a_refusal_names_the_directive_that_asks_too_far() {
        // Segment 10 complete, segment 11 open with 2 parts; 15 parts may be asked ahead.
        let position = blocking::Position {
            last_msn: Some(10),
            last_parts: 5,
            open_parts: 2,
            ended: false,
            advance_part_limit: 15,
        };
        let ask = |msn, part| blocking::Request { msn, part };
        for request in [ask(13, None), ask(13, Some(0)), ask(u64::MAX, Some(1))] {
            assert_eq!(
                blocking::readiness(&position, request),
                Readiness::TooFarAhead
            );
            let reason = too_far_ahead(&position, request);
            assert!(reason.starts_with("_HLS_msn="), "{reason}");
        }
        for request in [ask(11, Some(17)), ask(12, Some(15))] {
            assert_eq!(
                blocking::readiness(&position, request),
                Readiness::TooFarAhead
            );
            let reason = too_far_ahead(&position, request);
            assert!(reason.starts_with("_HLS_part="), "{reason}");
            assert!(reason.contains("15 parts"), "{reason}");
        }
    }
}
