//! One Low-Latency HLS viewer of one stream, behaving as hls.js does in `lowLatencyMode`:
//! it loads `llhls.m3u8` once, starts PART-HOLD-BACK from the live edge, then loops on a
//! Blocking Playlist Reload for the part after the last one listed (`_HLS_msn`, `_HLS_part`,
//! and `_HLS_skip=YES` when the playlist offers delta updates), fetching every new part (and
//! the initialization section when it changes) as soon as it is listed. Each part's framing
//! is checked as it streams in; each error is counted by kind.
//!
//! It times what a player waits for: a blocking request from sent to answered, and for each
//! part a blocking answer listed, from its publisher's write of the part's last frame
//! ([`SendLog`]) to that answer, and to the part's last byte.
//!
//! One keep-alive connection per viewer (the requests are sequential), reused buffers, and
//! no allocation per request on the normal path.
//!
//! Spec: RFC 8216bis §6.2.5.2 (Blocking Playlist Reload), §6.2.5.1 (`_HLS_skip`), §6.3.4
//! (a client's reload), §4.4.3.8 (PART-HOLD-BACK: where a client starts).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

use rtmp_server::hls::ll_query::{DeliveryDirectives, Skip};

use crate::fmp4::{self, FragmentCheck, InitInfo};
use crate::http_conn::{Answer, FetchError, HttpConn};
use crate::ll_playlist::{LlPlaylist, PartId};
use crate::ll_report::{LlErrors, LlFigures, LlViewerReport};
use crate::send_log::{SendLog, Sent};

/// Time-out of one request. A blocking request is held up to three target durations (6 s
/// for the server's default 2 s segments) before the server answers 503, so this is longer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest playlist body read: a Low-Latency playlist with its parts is a few KiB.
pub const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

/// Longest initialization section read: ftyp and moov with a few tracks, under a KiB or two.
pub const MAX_INIT_BYTES: usize = 1024 * 1024;

/// Poll interval until the playlist lists a part (the stream may not have started).
const FIRST_POLL: Duration = Duration::from_millis(500);

/// Pause after a failed request before loading the playlist afresh, so that a failing
/// server is not asked again in a tight loop.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// Where to start without PART-HOLD-BACK: three parts from the end, the spec's advice.
///
/// Spec: RFC 8216bis §4.4.3.8: PART-HOLD-BACK "SHOULD be at least three times the Part
/// Target Duration".
const DEFAULT_HOLD_BACK_PARTS: usize = 3;

/// The server's 90 kHz line, in ticks per second.
const LINE_TIMESCALE: u64 = 90_000;

/// Where one stream's Low-Latency playlist is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlTarget {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path of the stream's folder, with its trailing slash: `/live/{key}/`.
    pub folder: String,
    /// Path of the playlist: `/live/{key}/llhls.m3u8`.
    pub playlist: String,
}

/// Watches one stream from `start` until `until`, `stop`, or EXT-X-ENDLIST.
pub async fn watch(
    target: LlTarget,
    key: String,
    log: Arc<SendLog>,
    figures: Arc<LlFigures>,
    start: TokioInstant,
    until: TokioInstant,
    stop: CancellationToken,
) -> LlViewerReport {
    let mut viewer = Viewer {
        conn: HttpConn::new(target.authority.clone()),
        target,
        log,
        figures,
        report: LlViewerReport::new(key),
        playlist: LlPlaylist::default(),
        body: Vec::new(),
        path: String::new(),
        check: FragmentCheck::default(),
        init_uri: String::new(),
        init: None,
        last: None,
        last_fragment: None,
        media_sequence: None,
        hint: String::new(),
        appeared: false,
    };
    tokio::select! {
        _ = tokio::time::sleep_until(start) => {}
        _ = stop.cancelled() => return viewer.finish(),
    }
    tokio::select! {
        _ = viewer.run() => {}
        _ = tokio::time::sleep_until(until) => {}
        _ = stop.cancelled() => {}
    }
    viewer.finish()
}

/// How a playlist request ended.
enum Loaded {
    /// A playlist was read; the request's timing.
    Playlist(Answer),
    /// 404 before the playlist first appeared: the stream has not started.
    NotYet,
    /// Counted as an error.
    Failed,
}

struct Viewer {
    conn: HttpConn,
    target: LlTarget,
    log: Arc<SendLog>,
    figures: Arc<LlFigures>,
    report: LlViewerReport,
    playlist: LlPlaylist,
    /// The body being read (a playlist or an initialization section); reused.
    body: Vec<u8>,
    /// The request target being built; reused.
    path: String,
    check: FragmentCheck,
    /// The initialization section in force, by its URI.
    init_uri: String,
    init: Option<InitInfo>,
    /// The last part fetched.
    last: Option<PartId>,
    /// The last part's mfhd sequence number.
    last_fragment: Option<u32>,
    /// The last playlist's Media Sequence Number.
    media_sequence: Option<u64>,
    /// The last playlist's preload hint URI (empty for none).
    hint: String,
    /// A playlist has been read.
    appeared: bool,
}

impl Viewer {
    fn finish(mut self) -> LlViewerReport {
        self.report.reconnects = self.conn.reconnects;
        self.report
    }

    async fn run(&mut self) {
        // Until the playlist lists a part.
        loop {
            match self.load(None).await {
                Loaded::Playlist(_) if !self.playlist.parts.is_empty() => break,
                Loaded::Playlist(_) if self.playlist.ended => return,
                _ => tokio::time::sleep(FIRST_POLL).await,
            }
        }
        self.start_at_hold_back().await;
        while !self.playlist.ended {
            let loaded = if self.playlist.can_block_reload {
                match self.playlist.next_part() {
                    Some(next) => self.load(Some(next)).await,
                    None => self.load(None).await,
                }
            } else {
                // A server that cannot hold requests: poll every part.
                let part = self.playlist.part_target.unwrap_or(ERROR_PAUSE);
                tokio::time::sleep(part).await;
                self.load(None).await
            };
            match loaded {
                Loaded::Playlist(answer) => {
                    let blocked = self.playlist.can_block_reload.then_some(answer);
                    self.fetch_new_parts(blocked).await;
                }
                Loaded::NotYet | Loaded::Failed => {
                    tokio::time::sleep(ERROR_PAUSE).await;
                    if let Loaded::Playlist(_) = self.load(None).await {
                        self.fetch_new_parts(None).await;
                    }
                }
            }
        }
    }

    /// Fetches the parts from PART-HOLD-BACK before the end of the first playlist.
    async fn start_at_hold_back(&mut self) {
        let parts = &self.playlist.parts;
        let mut first = parts.len().saturating_sub(DEFAULT_HOLD_BACK_PARTS);
        if let Some(hold_back) = self.playlist.part_hold_back {
            let mut held = Duration::ZERO;
            first = parts.len();
            while first > 0 && held < hold_back {
                first -= 1;
                held += parts[first].duration;
            }
        }
        for i in first..self.playlist.parts.len() {
            self.fetch_part(i, None).await;
        }
        self.note_hint();
    }

    /// Requests the playlist: a Blocking Playlist Reload for `next` (with a delta update when
    /// offered), or a plain load.
    async fn load(&mut self, next: Option<PartId>) -> Loaded {
        let directives = DeliveryDirectives {
            msn: next.map(|p| p.msn),
            part: next.map(|p| p.index),
            skip: (next.is_some() && self.playlist.can_skip_until.is_some()).then_some(Skip::Yes),
        };
        self.path.clear();
        self.path.push_str(&self.target.playlist);
        if next.is_some() {
            let _ = write!(self.path, "?{directives}");
            self.report.blocking_requests += 1;
        }
        self.report.playlist_requests += 1;
        let (answer, too_long) = self
            .conn
            .get_bounded(&self.path, HTTP_TIMEOUT, MAX_PLAYLIST_BYTES, &mut self.body)
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                self.transport_error("playlist", &e);
                return Loaded::Failed;
            }
        };
        if answer.status == 404 && !self.appeared {
            return Loaded::NotYet;
        }
        if answer.status != 200 {
            let path = &self.path;
            self.report.error(status_kind(answer.status), || {
                format!("{path}: HTTP {}", answer.status)
            });
            return Loaded::Failed;
        }
        if next.is_some() {
            self.figures
                .blocked_wait
                .record(answer.done.saturating_duration_since(answer.sent));
        }
        if too_long {
            self.report.error(
                |e| &mut e.playlist,
                || format!("playlist longer than {MAX_PLAYLIST_BYTES} bytes"),
            );
            return Loaded::Failed;
        }
        if let Err(e) = self.playlist.parse(&mut self.body) {
            self.report
                .error(|e| &mut e.playlist, || format!("playlist: {e}"));
            return Loaded::Failed;
        }
        self.appeared = true;
        let sequence = self.playlist.media_sequence;
        if self
            .media_sequence
            .is_some_and(|previous| sequence < previous)
        {
            let previous = self.media_sequence.unwrap_or_default();
            self.report.error(
                |e| &mut e.sequence_back,
                || format!("media sequence went back from {previous} to {sequence}"),
            );
        }
        self.media_sequence = Some(sequence);
        Loaded::Playlist(answer)
    }

    /// Fetches the parts listed after the last one fetched. `blocked`: the blocking request
    /// that brought the playlist, against which the parts are timed.
    async fn fetch_new_parts(&mut self, blocked: Option<Answer>) {
        let parts = &self.playlist.parts;
        let first = match self.last {
            Some(last) => parts.iter().position(|p| p.id > last),
            None => (!parts.is_empty()).then_some(0),
        };
        let Some(first) = first else {
            if blocked.is_some() && !self.playlist.ended {
                let last = self.last;
                self.report.error(
                    |e| &mut e.no_new_part,
                    || format!("a blocking answer listed no part after {last:?}"),
                );
            }
            return;
        };
        if let Some(last) = self.last
            && (first == 0 || parts[first - 1].id != last)
        {
            let found = parts[first].id;
            self.report.error(
                |e| &mut e.missing_parts,
                || format!("part {found} listed next after {last}, which is not listed before it"),
            );
        }
        if !self.hint.is_empty() && self.playlist.text_of(&parts[first].uri) != self.hint {
            self.report.hint_misses += 1;
        }
        for i in first..self.playlist.parts.len() {
            self.fetch_part(i, blocked).await;
        }
        self.note_hint();
    }

    fn note_hint(&mut self) {
        self.hint.clear();
        if let Some(hint) = &self.playlist.preload_hint {
            self.hint.push_str(self.playlist.text_of(hint));
        }
    }

    /// Fetches and checks part `i` of the playlist (its initialization section first if it
    /// changed), timing it against `blocked`.
    async fn fetch_part(&mut self, i: usize, blocked: Option<Answer>) {
        let part = self.playlist.parts[i].clone();
        self.last = Some(part.id);
        if let Some(map) = &part.map
            && (self.playlist.text_of(map) != self.init_uri || self.init.is_none())
        {
            self.init_uri.clear();
            self.init_uri.push_str(self.playlist.text_of(map));
            self.fetch_init().await;
        }
        if !resolve(
            &self.target.folder,
            self.playlist.text_of(&part.uri),
            &mut self.path,
        ) {
            let uri = self.playlist.text_of(&part.uri).to_owned();
            self.report.error(
                |e| &mut e.other_status,
                || format!("part URI {uri:?} is not a path"),
            );
            return;
        }
        self.check.reset();
        let check = &mut self.check;
        let answer = self
            .conn
            .get(&self.path, HTTP_TIMEOUT, &mut |data: &[u8]| {
                check.push(data)
            })
            .await;
        let answer = match answer {
            Ok(answer) if answer.status == 200 => answer,
            Ok(answer) => {
                let path = &self.path;
                self.report.error(status_kind(answer.status), || {
                    format!("{path}: HTTP {}", answer.status)
                });
                return;
            }
            Err(e) => {
                self.transport_error("part", &e);
                return;
            }
        };
        let Some(init) = &self.init else {
            return;
        };
        let fragment = match self.check.finish(init) {
            Ok(fragment) => fragment,
            Err(e) => {
                let path = &self.path;
                self.report
                    .error(|e| &mut e.framing, || format!("{path}: {e}"));
                return;
            }
        };
        if self.last_fragment.is_some_and(|s| fragment.sequence <= s) {
            let (path, previous) = (&self.path, self.last_fragment.unwrap_or_default());
            self.report.error(
                |e| &mut e.framing,
                || {
                    format!(
                        "{path}: mfhd sequence {} after {previous}",
                        fragment.sequence
                    )
                },
            );
        }
        self.last_fragment = Some(fragment.sequence);
        self.report.parts += 1;
        self.report.part_bytes += fragment.bytes;
        let (Some(blocked), Some(decode), Some(video)) =
            (blocked, fragment.last_video_decode, init.video())
        else {
            return;
        };
        // The last frame's decode time on the server's 90 kHz line.
        let on_line = u128::from(decode) * u128::from(LINE_TIMESCALE) / u128::from(video.timescale);
        let sent = u64::try_from(on_line)
            .ok()
            .and_then(|t| self.log.timestamp_of(t))
            .map_or(Sent::Unknown, |ms| self.log.sent(ms));
        match sent {
            Sent::At(at) if at < blocked.sent => self.report.listed_before_asked += 1,
            Sent::At(at) if at <= blocked.done => {
                self.report.timed += 1;
                self.figures.part_listed.record(blocked.done - at);
                self.figures
                    .part_received
                    .record(answer.done.saturating_duration_since(at));
            }
            // Listed before its last frame was sent: the part is not the one mapped.
            Sent::At(_) | Sent::Unknown => self.report.unmatched += 1,
        }
    }

    /// Fetches the initialization section `init_uri` and reads its tracks.
    async fn fetch_init(&mut self) {
        self.init = None;
        if !resolve(&self.target.folder, &self.init_uri, &mut self.path) {
            let uri = &self.init_uri;
            self.report.error(
                |e| &mut e.other_status,
                || format!("map URI {uri:?} is not a path"),
            );
            return;
        }
        self.report.inits += 1;
        let (answer, too_long) = self
            .conn
            .get_bounded(&self.path, HTTP_TIMEOUT, MAX_INIT_BYTES, &mut self.body)
            .await;
        match answer {
            Ok(answer) if answer.status == 200 => {}
            Ok(answer) => {
                let path = &self.path;
                self.report.error(status_kind(answer.status), || {
                    format!("{path}: HTTP {}", answer.status)
                });
                return;
            }
            Err(e) => {
                self.transport_error("initialization section", &e);
                return;
            }
        }
        let read = if too_long {
            Err(format!("longer than {MAX_INIT_BYTES} bytes"))
        } else {
            fmp4::read_init(&self.body).map_err(|e| e.to_string())
        };
        match read {
            Ok(info) => self.init = Some(info),
            Err(e) => {
                let path = &self.path;
                self.report
                    .error(|e| &mut e.framing, || format!("{path}: {e}"));
            }
        }
    }

    fn transport_error(&mut self, what: &str, e: &FetchError) {
        self.report
            .error(|e| &mut e.transport, || format!("{what}: {e}"));
    }
}

/// The error kind of an HTTP status other than 200.
fn status_kind(status: u16) -> fn(&mut LlErrors) -> &mut u64 {
    match status {
        503 => |e| &mut e.unavailable,
        400 => |e| &mut e.bad_request,
        _ => |e| &mut e.other_status,
    }
}

/// The request target of `uri` as listed in a playlist in `folder` (which ends with a
/// slash), into `out`: a relative name joins the folder, an absolute path stays as it is.
/// `false` for what a plain path cannot express here (another host, `..`, a query).
fn resolve(folder: &str, uri: &str, out: &mut String) -> bool {
    out.clear();
    if uri.is_empty() || uri.contains("://") || uri.contains("..") || uri.starts_with("//") {
        return false;
    }
    if !uri.starts_with('/') {
        out.push_str(folder);
    }
    out.push_str(uri);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_resolve_against_the_playlist_folder() {
        let mut out = String::from("old");
        assert!(resolve("/live/k/", "a-7.2.m4s", &mut out));
        assert_eq!(out, "/live/k/a-7.2.m4s");
        assert!(resolve("/live/k/", "/other/x.m4s", &mut out));
        assert_eq!(out, "/other/x.m4s");
        for bad in ["", "http://cdn/x.m4s", "//cdn/x.m4s", "../x.m4s"] {
            assert!(!resolve("/live/k/", bad, &mut out), "{bad}");
        }
    }

    #[test]
    fn statuses_count_as_their_kind() {
        let mut e = LlErrors::default();
        *status_kind(503)(&mut e) += 1;
        *status_kind(400)(&mut e) += 1;
        *status_kind(404)(&mut e) += 1;
        assert_eq!((e.unavailable, e.bad_request, e.other_status), (1, 1, 1));
    }
}
