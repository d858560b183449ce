//! The stats API: live streams and the server's own figures, as JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::HttpContext;
use super::sampler::ServerSample;
use crate::hub::history::INTERVAL;
use crate::hub::stream::Stream;
use crate::media::codec::TrackSummary;
use crate::metrics::REJECT_REASONS;
use crate::relay::status::RelayReport;
use crate::wallclock::rfc3339_millis;

/// How long a measured disk usage is reused: walking a large media root is not free.
pub(super) const DISK_USAGE_TTL: Duration = Duration::from_secs(5);

/// The answer's reason for a stream name that is not live here.
pub(super) const NOT_LIVE: &str = "no live stream of that name";

/// One stream in `/api/streams`.
#[derive(Serialize)]
pub struct StreamStats {
    /// The name HLS is served under: the stream key, or its public playback id.
    pub name: String,
    /// The publishing key, only to a request that carries the API token (`http.api_token`
    /// set and presented); `null` to any other, since even part of a secret helps guess it.
    pub key: Option<String>,
    pub app: String,
    /// Path of the classic HLS playlist on this server (when the TS output is on).
    pub playlist: Option<String>,
    /// Path of the Low-Latency HLS playlist (when the CMAF output is on).
    pub ll_playlist: Option<String>,
    pub started_at: String,
    pub uptime_s: f64,
    pub client: String,
    /// The first video track (`codec`, `profile`, `level`, `width`, `height`, `frame_rate`).
    pub video: Option<TrackSummary>,
    /// The first audio track (`codec`, `sample_rate`, `channels`).
    pub audio: Option<TrackSummary>,
    /// Every track of the publish (several of a kind in a multitrack publish).
    pub tracks: Vec<TrackSummary>,
    pub encoder: Option<String>,
    pub bitrate_kbps: u64,
    /// The ingest bit rate every `history_interval_s` seconds, oldest first (the last five
    /// minutes).
    pub bitrate_history_kbps: Vec<u64>,
    pub history_interval_s: u64,
    pub bytes_in: u64,
    pub keyframe_interval_s: Option<f64>,
    /// The latest advice about the keyframe interval the server logged for the encoder.
    pub keyframe_advice: Option<String>,
    /// A multitrack publish: segments of a rendition that started where the first video
    /// rendition's did not (its keyframes are not aligned with the others'); 0 otherwise.
    pub misaligned_segments: u64,
    pub target_duration: Option<u32>,
    pub segments: u64,
    /// Distinct players that fetched the playlist in the last 30 seconds.
    pub viewers: usize,
    /// Of `viewers`, those that play the classic playlist (`index.m3u8`).
    pub viewers_hls: usize,
    /// Of `viewers`, those that play the Low-Latency playlist (`llhls.m3u8`).
    pub viewers_llhls: usize,
    /// Players reading the stream now over RTMP, HTTP-FLV and WebSocket-FLV.
    pub players: Players,
    /// The publish's relay targets (`relay.push` and the stream-service's `push`): the URL
    /// without its stream name, `state` (`connecting`, `live`, `retrying`), `last_error`,
    /// `since`, `bytes_out`, `reconnects`.
    pub relays: Vec<RelayReport>,
    /// Path of the stream's thumbnail (its latest keyframe as JPEG) when its video is H.264
    /// and thumbnails are on; `null` otherwise.
    pub thumbnail: Option<String>,
    /// Whether the publish is recorded, and the recording being written.
    pub recording: RecordingState,
}

/// A stream's recording as the API reports it: `active` while the publish is recorded
/// (from a start until a stop or the publish's end), `id` the recording being written (none
/// yet between a start and the next segment).
#[derive(Serialize)]
pub struct RecordingState {
    pub active: bool,
    pub id: Option<String>,
}

/// The recording state of `stream`'s publish by `publisher` (never active without
/// recordings: `record.path` unusable).
pub(super) fn recording_state(
    shared: &HttpContext,
    stream: &Stream,
    publisher: u64,
) -> RecordingState {
    let active = shared.recordings.is_some() && stream.is_recorded(publisher);
    RecordingState {
        active,
        id: stream
            .recording_id()
            .filter(|_| active)
            .map(|id| id.to_string()),
    }
}

/// How a request sees streams.
struct View<'a> {
    shared: &'a HttpContext,
    now: Instant,
    /// Keys in full (see [`shows_keys`]).
    full_key: bool,
}

/// Whether a request may see stream keys in full: the API token is set and it carries it.
fn shows_keys(shared: &HttpContext, headers: &HeaderMap) -> bool {
    shared
        .api_token
        .as_ref()
        .is_some_and(|t| t.admits(headers.get(header::AUTHORIZATION)))
}

/// Players reading a stream now, by protocol.
#[derive(Serialize)]
pub struct Players {
    pub rtmp: usize,
    pub http_flv: usize,
    pub ws_flv: usize,
}

fn stats(stream: &Stream, view: &View) -> Option<StreamStats> {
    let now = view.now;
    let publisher = stream.publisher()?;
    let media = stream.media();
    let viewers = stream.viewers_by_playlist(now);
    let thumbnail = (view.shared.thumbnails.is_some()
        && media
            .video
            .as_ref()
            .is_some_and(|v| crate::thumbnail::decodes(v.name)))
    .then(|| crate::thumbnail::path(&stream.app, stream.name.as_str()));
    Some(StreamStats {
        name: stream.name.to_string(),
        key: view.full_key.then(|| stream.key.to_string()),
        app: stream.app.clone(),
        playlist: stream
            .ts
            .as_ref()
            .map(|_| format!("/{}/{}/index.m3u8", stream.app, stream.name)),
        ll_playlist: stream
            .cmaf
            .as_ref()
            .map(|_| format!("/{}/{}/llhls.m3u8", stream.app, stream.name)),
        started_at: rfc3339_millis(publisher.started),
        uptime_s: now
            .saturating_duration_since(publisher.started_at)
            .as_secs_f64(),
        client: publisher.addr.to_string(),
        video: media.video.map(|mut v| {
            v.frame_rate = v.frame_rate.or(media.frame_rate);
            v
        }),
        audio: media.audio,
        tracks: media
            .tracks
            .into_iter()
            .map(|mut t| {
                t.bitrate_kbps = stream.track_bitrate(t.kind, t.track).map(|b| b / 1000);
                t
            })
            .collect(),
        encoder: media.encoder,
        bitrate_kbps: stream.bitrate() / 1000,
        bitrate_history_kbps: stream.bitrate_history(),
        history_interval_s: INTERVAL.as_secs(),
        bytes_in: stream.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
        keyframe_interval_s: media.keyframe_interval.map(|d| d.as_secs_f64()),
        keyframe_advice: media.keyframe_advice,
        misaligned_segments: media.misaligned_cuts,
        target_duration: stream.target_duration(),
        segments: stream.segments_produced(),
        viewers: viewers.total(),
        viewers_hls: viewers.classic,
        viewers_llhls: viewers.low_latency,
        players: {
            let [rtmp, http_flv, ws_flv] = stream.players();
            Players {
                rtmp,
                http_flv,
                ws_flv,
            }
        },
        relays: stream.relays(),
        recording: recording_state(view.shared, stream, publisher.id),
        thumbnail,
    })
}

#[derive(Serialize)]
pub struct StreamList {
    pub streams: Vec<StreamStats>,
}

/// `GET /api/streams`: every live stream.
pub async fn streams(
    State(shared): State<Arc<HttpContext>>,
    headers: HeaderMap,
) -> Json<StreamList> {
    let view = View {
        shared: &shared,
        now: Instant::now(),
        full_key: shows_keys(&shared, &headers),
    };
    let streams = shared
        .registry
        .live_streams()
        .iter()
        .filter_map(|s| stats(s, &view))
        .collect();
    Json(StreamList { streams })
}

/// `GET /api/streams/{name}`: one live stream.
pub async fn stream(
    State(shared): State<Arc<HttpContext>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let view = View {
        shared: &shared,
        now: Instant::now(),
        full_key: shows_keys(&shared, &headers),
    };
    let found = shared
        .registry
        .get(&shared.app, &name)
        .and_then(|s| stats(&s, &view));
    match found {
        Some(s) => Json(s).into_response(),
        None => super::json_error(StatusCode::NOT_FOUND, NOT_LIVE),
    }
}

#[derive(Serialize)]
pub struct Connections {
    pub rtmp: i64,
    pub http: i64,
}

#[derive(Serialize)]
pub struct Bytes {
    #[serde(rename = "in")]
    pub bytes_in: u64,
    #[serde(rename = "out")]
    pub bytes_out: u64,
}

#[derive(Serialize)]
pub struct Publishes {
    pub accepted: u64,
    /// Refused publishes by reason.
    pub rejected: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
pub struct Disk {
    pub media_root: String,
    /// Bytes of files under the media root (measured at most every 5 s).
    pub bytes_used: Option<u64>,
    pub writes: u64,
    pub bytes_written: u64,
    pub errors: u64,
    pub dropped: u64,
    pub queue: usize,
}

/// `/api/server`.
#[derive(Serialize)]
pub struct ServerStats {
    pub version: &'static str,
    pub started_at: String,
    pub uptime_s: f64,
    pub streams: usize,
    pub connections: Connections,
    pub bytes: Bytes,
    pub publishes: Publishes,
    pub segments: u64,
    /// Bytes of segments held in memory.
    pub segment_memory_bytes: i64,
    pub disk: Disk,
    /// The server's figures every 2 s, the last five minutes.
    pub history: ServerHistory,
}

/// `history` in `/api/server`.
#[derive(Serialize)]
pub struct ServerHistory {
    pub interval_s: u64,
    /// Oldest first.
    pub samples: Vec<ServerSample>,
}

/// `GET /api/server`: version, uptime, connections, traffic, rejects, disk.
pub async fn server(State(shared): State<Arc<HttpContext>>) -> Json<ServerStats> {
    let m = &shared.metrics;
    let d = &shared.disk_stats;
    let rejected = REJECT_REASONS
        .iter()
        .map(|&reason| (reason, m.rejected(reason)))
        .collect();
    let bytes_used = disk_usage(&shared).await;
    Json(ServerStats {
        version: env!("CARGO_PKG_VERSION"),
        started_at: rfc3339_millis(shared.started_wall),
        uptime_s: shared.started.elapsed().as_secs_f64(),
        streams: shared.registry.live_streams().len(),
        connections: Connections {
            rtmp: m.rtmp_connections.get(),
            http: m.http_connections.get(),
        },
        bytes: Bytes {
            bytes_in: m.rtmp_bytes_in_total.get(),
            bytes_out: m.http_bytes_out_total.get(),
        },
        publishes: Publishes {
            accepted: m.publishes_total.get(),
            rejected,
        },
        segments: m.segments_total.get(),
        segment_memory_bytes: m.segment_memory_bytes.get(),
        disk: Disk {
            media_root: shared.mediaroot.display().to_string(),
            bytes_used,
            writes: d.writes(),
            bytes_written: d.bytes_written(),
            errors: d.errors(),
            dropped: d.dropped(),
            queue: d.queue_depth(),
        },
        history: ServerHistory {
            interval_s: INTERVAL.as_secs(),
            samples: crate::hub::stream::lock(&shared.history).to_vec(),
        },
    })
}

/// Bytes used under the media root, measured at most every [`DISK_USAGE_TTL`].
async fn disk_usage(shared: &Arc<HttpContext>) -> Option<u64> {
    {
        let cached = crate::hub::stream::lock(&shared.disk_usage);
        if let Some((at, bytes)) = *cached
            && at.elapsed() < DISK_USAGE_TTL
        {
            return Some(bytes);
        }
    }
    let root = shared.mediaroot.clone();
    let bytes = tokio::task::spawn_blocking(move || du(&root)).await.ok()?;
    *crate::hub::stream::lock(&shared.disk_usage) = Some((Instant::now(), bytes));
    Some(bytes)
}

/// Total size of the regular files under `dir` (not following symbolic links).
fn du(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
