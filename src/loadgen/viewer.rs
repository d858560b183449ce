//! One HLS viewer of one stream: polls the playlist as a player does (every half target
//! duration, with If-None-Match), fetches each new segment once, and counts what it got.
//!
//! Spec: RFC 8216 §6.3.4 (reloading the playlist: half the target duration is the interval
//! after an unchanged reload, and the one a polling player settles on), RFC 9110 §13.1.2
//! (If-None-Match).

use std::time::Duration;

use reqwest::header::{ETAG, HeaderValue, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::playlist::{self, LivePlaylist};
use super::report::ViewerReport;

/// Connect and request timeout for every request a viewer makes.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest playlist body read: a live playlist is a few hundred bytes.
pub const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

/// Poll interval until a playlist with a target duration has been read (the stream may not
/// have produced its first segment yet).
const FIRST_POLL: Duration = Duration::from_millis(500);

/// Watches `playlist_url` from `start` until `until`, `stop`, or the playlist ends.
pub async fn watch(
    client: reqwest::Client,
    playlist_url: Url,
    key: String,
    start: Instant,
    until: Instant,
    stop: CancellationToken,
) -> ViewerReport {
    let mut viewer = Viewer {
        client,
        playlist_url,
        etag: None,
        next_sequence: None,
        report: ViewerReport::new(key),
    };
    tokio::select! {
        _ = tokio::time::sleep_until(start) => {}
        _ = stop.cancelled() => return viewer.report,
    }
    let mut poll = FIRST_POLL;
    while Instant::now() < until {
        if let Some(playlist) = viewer.reload().await {
            if let Some(target) = playlist.target_duration {
                poll = Duration::from_secs(target.max(1)) / 2;
            }
            viewer.fetch_new_segments(&playlist).await;
            if playlist.ended {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::time::sleep_until(until) => break,
            _ = stop.cancelled() => break,
        }
    }
    viewer.report
}

struct Viewer {
    client: reqwest::Client,
    playlist_url: Url,
    /// ETag of the last playlist read, sent back as If-None-Match.
    etag: Option<HeaderValue>,
    /// Sequence number of the first segment not fetched yet; `None` before any playlist.
    next_sequence: Option<u64>,
    report: ViewerReport,
}

impl Viewer {
    /// Requests the playlist; the playlist when it is new (200), `None` when unchanged
    /// (304), not there yet (404) or on an error.
    async fn reload(&mut self) -> Option<LivePlaylist> {
        let mut request = self.client.get(self.playlist_url.clone());
        if let Some(etag) = &self.etag {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        self.report.playlist_requests += 1;
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.report.error(format!("playlist: {e}"));
                return None;
            }
        };
        let status = response.status();
        self.report.status(status.as_u16());
        match status {
            StatusCode::OK => {}
            // Unchanged, or the stream has not made its first segment yet.
            StatusCode::NOT_MODIFIED | StatusCode::NOT_FOUND => return None,
            other => {
                self.report.error(format!("playlist: HTTP {other}"));
                return None;
            }
        }
        self.etag = response.headers().get(ETAG).cloned();
        let body = match read_body(response, MAX_PLAYLIST_BYTES).await {
            Ok(body) => body,
            Err(e) => {
                self.report.error(format!("playlist: {e}"));
                return None;
            }
        };
        let parsed = std::str::from_utf8(&body)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(|text| playlist::parse(text).map_err(|e| e.to_string()));
        match parsed {
            Ok(playlist) => {
                self.report.saw(playlist.last_sequence());
                Some(playlist)
            }
            Err(e) => {
                self.report.error(format!("playlist: {e}"));
                None
            }
        }
    }

    /// Fetches every listed segment not fetched before, in order.
    async fn fetch_new_segments(&mut self, playlist: &LivePlaylist) {
        for (sequence, uri) in playlist.numbered() {
            if self.next_sequence.is_some_and(|next| sequence < next) {
                continue;
            }
            self.next_sequence = Some(sequence + 1);
            self.fetch_segment(uri).await;
        }
    }

    async fn fetch_segment(&mut self, uri: &str) {
        self.report.segment_requests += 1;
        let url = match self.playlist_url.join(uri) {
            Ok(url) => url,
            Err(e) => {
                self.report.error(format!("segment URI {uri:?}: {e}"));
                return;
            }
        };
        let response = match self.client.get(url).send().await {
            Ok(response) => response,
            Err(e) => {
                self.report.error(format!("segment {uri}: {e}"));
                return;
            }
        };
        let status = response.status();
        self.report.status(status.as_u16());
        if status != StatusCode::OK {
            self.report.error(format!("segment {uri}: HTTP {status}"));
            return;
        }
        match count_body(response).await {
            Ok(bytes) => {
                self.report.segments += 1;
                self.report.bytes += bytes;
            }
            Err(e) => self.report.error(format!("segment {uri}: {e}")),
        }
    }
}

/// The body, refused once it passes `limit` bytes.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("body longer than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the body to its end without keeping it; its length.
async fn count_body(mut response: reqwest::Response) -> Result<u64, String> {
    let mut bytes = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        bytes += chunk.len() as u64;
    }
    Ok(bytes)
}
