//! One HLS viewer of one stream: polls the playlist as a player does (every half target
//! duration, with If-None-Match), fetches each new segment once, checks its TS framing and
//! counts what it got.
//!
//! Spec: RFC 8216 §6.3.4 (reloading the playlist: half the target duration is the interval
//! after an unchanged reload, and the one a polling player settles on), RFC 9110 §13.1.2
//! (If-None-Match).

use std::time::Duration;

use reqwest::header::{ETAG, HeaderValue, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use rtmp_server::auth::read_capped;
use rtmp_server::ts::packet::{PACKET_SIZE, SYNC_BYTE};

use crate::playlist::{self, LivePlaylist};
use crate::report::ViewerReport;

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
        let body = match read_capped(response, MAX_PLAYLIST_BYTES).await {
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
        match read_segment(response).await {
            Ok(bytes) => {
                self.report.segments += 1;
                self.report.bytes += bytes;
            }
            Err(e) => self.report.error(format!("segment {uri}: {e}")),
        }
    }
}

/// Reads a segment to its end without keeping it, checking its framing; its length.
async fn read_segment(mut response: reqwest::Response) -> Result<u64, String> {
    let mut framing = TsFraming::default();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        framing.push(&chunk)?;
    }
    framing.finish()
}

/// Checks a TS byte stream, in pieces of any size, as a player's demuxer would: whole
/// 188-byte packets, each starting with the sync byte 0x47 (ISO/IEC 13818-1 §2.4.3.2).
#[derive(Default)]
struct TsFraming {
    bytes: u64,
}

impl TsFraming {
    const PACKET: u64 = PACKET_SIZE as u64;

    fn push(&mut self, piece: &[u8]) -> Result<(), String> {
        let first = (Self::PACKET - self.bytes % Self::PACKET) % Self::PACKET;
        let lost_sync = (first..piece.len() as u64)
            .step_by(Self::PACKET as usize)
            .find(|&i| piece[i as usize] != SYNC_BYTE);
        if let Some(i) = lost_sync {
            return Err(format!("no sync byte at offset {}", self.bytes + i));
        }
        self.bytes += piece.len() as u64;
        Ok(())
    }

    /// The length, once the whole stream has been pushed.
    fn finish(self) -> Result<u64, String> {
        if self.bytes == 0 || !self.bytes.is_multiple_of(Self::PACKET) {
            return Err(format!("{} bytes: not whole TS packets", self.bytes));
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut p = vec![i as u8; 188];
                p[0] = 0x47;
                p
            })
            .collect()
    }

    fn check(data: &[u8], split: usize) -> Result<u64, String> {
        let mut framing = TsFraming::default();
        let (a, b) = data.split_at(split);
        framing.push(a)?;
        framing.push(b)?;
        framing.finish()
    }

    #[test]
    fn whole_packets_pass_split_anywhere() {
        let data = packets(3);
        for split in 0..=data.len() {
            assert_eq!(check(&data, split), Ok(564), "split at {split}");
        }
    }

    #[test]
    fn a_lost_sync_byte_is_found_split_anywhere() {
        let mut data = packets(3);
        data[376] = 0x00;
        for split in 0..=data.len() {
            assert_eq!(
                check(&data, split),
                Err("no sync byte at offset 376".to_string()),
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_partial_packet_or_nothing_fails() {
        let data = packets(2);
        assert!(check(&data[..300], 100).is_err());
        assert!(check(&[], 0).is_err());
    }
}
