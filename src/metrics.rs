//! Server-wide counters, gauges and histograms, exposed at `/metrics` in the Prometheus
//! text format (OpenMetrics).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::hls::disk::DiskStats;

/// The `reason` label of rejected publishes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// The labels of live tracks: their kind (`video`, `audio`) and codec (`H.264`, `HEVC`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrackLabel {
    pub kind: &'static str,
    pub codec: &'static str,
}

/// The `listener` label: which TLS listener (`rtmps`, `https`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: &'static str,
}

/// The `protocol` label of players: `rtmp`, `http-flv`, `ws-flv`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    pub protocol: &'static str,
}

/// The `state` label of relay targets: `connecting`, `live`, `retrying`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

/// The `kind` label of object storage uploads: `segment`, `init`, `playlist`, `recording`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// Every `state` a relay target is in (`relay::status::RelayState`).
pub const RELAY_STATES: &[&str] = &["connecting", "live", "retrying"];

/// Every `reason` a publish is refused for.
pub const REJECT_REASONS: &[&str] = &[
    "malformed_key",
    "unknown_key",
    "inactive_key",
    "expired_key",
    "service_unavailable",
    "already_publishing",
    "name_in_use",
    "unsupported_codec",
    "no_playback_id",
    "rate_limited",
    "cluster_unavailable",
];

/// Every figure the server counts. Cheap to update from any task (atomics).
pub struct Metrics {
    pub rtmp_connections: Gauge,
    pub rtmp_connections_total: Counter,
    pub rtmp_connections_refused_total: Counter,
    pub rtmp_bytes_in_total: Counter<u64, AtomicU64>,
    pub http_connections: Gauge,
    pub http_connections_total: Counter,
    pub http_connections_refused_total: Counter,
    pub http_bytes_out_total: Counter<u64, AtomicU64>,
    /// TLS connections that ended before their handshake completed (refused, malformed,
    /// timed out), by listener.
    pub tls_handshake_failures_total: Family<ListenerLabel, Counter>,
    pub streams_live: Gauge,
    /// Tracks of the live publishes, by kind and codec (a multitrack publish counts each).
    pub tracks_live: Family<TrackLabel, Gauge>,
    pub publishes_total: Counter,
    pub publishes_rejected_total: Family<ReasonLabel, Counter>,
    /// Times a client address reached `auth.max_failures` and was put in cool-down.
    pub publish_cooldowns_total: Counter,
    /// Live publishes the operator stopped (`POST /api/streams/{name}/stop`).
    pub operator_stops_total: Counter,
    /// Client addresses in cool-down now (updated about once a second).
    pub publish_cooldown_addresses: Gauge,
    pub segments_total: Counter,
    /// Bytes of segments held in memory: live windows, segments in their grace period, and
    /// segments being written.
    pub segment_memory_bytes: Gauge,
    /// Bytes of finished segments' and parts' buffers waiting to be reused for new ones.
    pub segment_spare_bytes: Gauge,
    /// Seconds the stream-service took to answer a key check.
    pub stream_service_seconds: Histogram,
    /// Seconds from the arrival of the media that closes a segment to that segment being
    /// listed in the playlist.
    pub segment_publish_seconds: Histogram,
    /// Seconds from the arrival of a part's last frame (the earliest it can have arrived, see
    /// `ingest::Arrival`) to the part being listed in its Low-Latency playlist, blocked
    /// requests for it answered.
    pub part_publish_seconds: Histogram,
    /// Media events outputs lost because they fell behind their stream's fan-out.
    pub media_events_lost_total: Counter<u64, AtomicU64>,
    /// Players (RTMP, HTTP-FLV, WebSocket-FLV) reading a stream now, by protocol.
    pub players: Family<ProtocolLabel, Gauge>,
    /// Players that started, by protocol.
    pub plays_total: Family<ProtocolLabel, Counter>,
    /// Play requests refused, by reason.
    pub plays_refused_total: Family<ReasonLabel, Counter>,
    /// Players dropped for reading too slowly, by reason (`behind`, `stalled`).
    pub players_dropped_total: Family<ReasonLabel, Counter>,
    /// Times a player fell behind and skipped video to the next keyframe.
    pub player_skips_total: Counter,
    /// Bytes written to players.
    pub player_bytes_out_total: Counter<u64, AtomicU64>,
    /// Object storage: objects put in the bucket, by kind.
    pub s3_uploads_total: Family<KindLabel, Counter>,
    /// Object storage: bytes put in the bucket.
    pub s3_upload_bytes_total: Counter,
    /// Object storage: objects deleted from the bucket.
    pub s3_deletes_total: Counter,
    /// Object storage: failed requests, by reason (`status_403`, `timeout`, `connect`, ...).
    pub s3_failures_total: Family<ReasonLabel, Counter>,
    /// Object storage: requests tried again.
    pub s3_retries_total: Counter,
    /// Object storage: segment uploads dropped because the queue was full.
    pub s3_dropped_total: Counter,
    /// Object storage: bytes of uploads queued or in flight.
    pub s3_queue_bytes: Gauge,
    /// Object storage: seconds per request.
    pub s3_request_seconds: Histogram,
    /// Object storage: seconds from a playlist version on the node to its copy in the bucket.
    pub s3_playlist_lag_seconds: Histogram,
    /// Relay targets of live publishes, by state.
    pub relay_targets: Family<StateLabel, Gauge>,
    /// Times a relay target accepted a publish (went live).
    pub relay_connects_total: Counter,
    /// Relay attempts that failed and live relay connections that ended before their
    /// publish did.
    pub relay_failures_total: Counter,
    /// Bytes written to relay targets.
    pub relay_bytes_out_total: Counter<u64, AtomicU64>,
    /// Recordings in `record.path`, and those being written.
    pub recordings: Gauge,
    pub recordings_active: Gauge,
    /// Bytes the recordings take on disk.
    pub recordings_bytes: Gauge,
    /// Bytes appended to recordings.
    pub recording_bytes_written_total: Counter<u64, AtomicU64>,
    /// Recordings that ended early, by reason (`write`: a write failed, `behind`: the disk
    /// did not keep up, `fragment`: a fragment did not read back).
    pub recording_errors_total: Family<ReasonLabel, Counter>,
    /// Recordings deleted, by reason (`max_age`, `max_bytes`, `api`).
    pub recordings_deleted_total: Family<ReasonLabel, Counter>,
    /// Keyframes decoded for thumbnails (whether or not they decoded).
    pub thumbnail_decodes_total: Counter,
    /// Keyframes that did not decode for a thumbnail.
    pub thumbnail_decode_failures_total: Counter,
    /// CPU seconds of a thumbnail decode, with its scaling and JPEG encoding.
    pub thumbnail_decode_seconds: Histogram,
    /// Decoded pictures scaled and encoded at another width.
    pub thumbnail_encodes_total: Counter,
    /// Thumbnail work refused because the CPU budget was spent (or the queue full).
    pub thumbnail_budget_refusals_total: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            rtmp_connections: Gauge::default(),
            rtmp_connections_total: Counter::default(),
            rtmp_connections_refused_total: Counter::default(),
            rtmp_bytes_in_total: Counter::default(),
            http_connections: Gauge::default(),
            http_connections_total: Counter::default(),
            http_connections_refused_total: Counter::default(),
            http_bytes_out_total: Counter::default(),
            tls_handshake_failures_total: Family::default(),
            streams_live: Gauge::default(),
            tracks_live: Family::default(),
            publishes_total: Counter::default(),
            publishes_rejected_total: Family::default(),
            publish_cooldowns_total: Counter::default(),
            operator_stops_total: Counter::default(),
            publish_cooldown_addresses: Gauge::default(),
            segments_total: Counter::default(),
            segment_memory_bytes: Gauge::default(),
            segment_spare_bytes: Gauge::default(),
            // 1 ms to about 16 s.
            stream_service_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 10 µs to about 160 ms.
            segment_publish_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
            // 10 µs to about 160 ms.
            part_publish_seconds: Histogram::new(exponential_buckets(0.000_01, 2.0, 15)),
            media_events_lost_total: Counter::default(),
            players: Family::default(),
            plays_total: Family::default(),
            plays_refused_total: Family::default(),
            players_dropped_total: Family::default(),
            recordings: Gauge::default(),
            recordings_active: Gauge::default(),
            recordings_bytes: Gauge::default(),
            recording_bytes_written_total: Counter::default(),
            recording_errors_total: Family::default(),
            recordings_deleted_total: Family::default(),
            player_skips_total: Counter::default(),
            player_bytes_out_total: Counter::default(),
            s3_uploads_total: Family::default(),
            s3_upload_bytes_total: Counter::default(),
            s3_deletes_total: Counter::default(),
            s3_failures_total: Family::default(),
            s3_retries_total: Counter::default(),
            s3_dropped_total: Counter::default(),
            s3_queue_bytes: Gauge::default(),
            // 1 ms to about 16 s.
            s3_request_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 1 ms to about 16 s.
            s3_playlist_lag_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            relay_targets: Family::default(),
            relay_connects_total: Counter::default(),
            relay_failures_total: Counter::default(),
            relay_bytes_out_total: Counter::default(),
            thumbnail_decodes_total: Counter::default(),
            thumbnail_decode_failures_total: Counter::default(),
            // 1 ms to about 16 s.
            thumbnail_decode_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            thumbnail_encodes_total: Counter::default(),
            thumbnail_budget_refusals_total: Counter::default(),
        }
    }
}

impl Metrics {
    /// The counter of failed TLS handshakes on `listener` (`rtmps`, `https`).
    pub fn tls_handshake_failures(&self, listener: &'static str) -> Counter {
        self.tls_handshake_failures_total
            .get_or_create(&ListenerLabel { listener })
            .clone()
    }

    /// A registry with every metric under the `rtmp_server` prefix; `disk` adds the disk
    /// writer's counters.
    pub fn registry(&self, disk: Arc<DiskStats>) -> Registry {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("rtmp_server");
        r.register(
            "rtmp_connections",
            "RTMP connections open now",
            self.rtmp_connections.clone(),
        );
        r.register(
            "rtmp_connections",
            "RTMP connections accepted",
            self.rtmp_connections_total.clone(),
        );
        r.register(
            "rtmp_connections_refused",
            "RTMP connections refused at accept (rtmp.max_connections reached)",
            self.rtmp_connections_refused_total.clone(),
        );
        r.register(
            "rtmp_bytes_in",
            "Bytes received from RTMP clients",
            self.rtmp_bytes_in_total.clone(),
        );
        r.register(
            "http_connections",
            "HTTP connections open now",
            self.http_connections.clone(),
        );
        r.register(
            "http_connections",
            "HTTP connections accepted",
            self.http_connections_total.clone(),
        );
        r.register(
            "http_connections_refused",
            "HTTP connections refused at accept (http.max_connections reached)",
            self.http_connections_refused_total.clone(),
        );
        r.register(
            "http_bytes_out",
            "Bytes of playlists and segments served",
            self.http_bytes_out_total.clone(),
        );
        r.register(
            "tls_handshake_failures",
            "TLS connections that ended before their handshake completed, by listener",
            self.tls_handshake_failures_total.clone(),
        );
        r.register(
            "streams_live",
            "Streams with a publisher now",
            self.streams_live.clone(),
        );
        r.register(
            "tracks_live",
            "Tracks of the live publishes, by kind and codec",
            self.tracks_live.clone(),
        );
        r.register(
            "publishes",
            "Publishes accepted",
            self.publishes_total.clone(),
        );
        r.register(
            "publishes_rejected",
            "Publishes refused, by reason",
            self.publishes_rejected_total.clone(),
        );
        r.register(
            "publish_cooldowns",
            "Times a client address reached auth.max_failures failed publishes and was put in \
             cool-down",
            self.publish_cooldowns_total.clone(),
        );
        r.register(
            "operator_stops",
            "Live publishes stopped by the operator (POST /api/streams/{name}/stop)",
            self.operator_stops_total.clone(),
        );
        r.register(
            "publish_cooldown_addresses",
            "Client addresses (IPv6: /64 prefixes) whose publishes are refused for failing too often",
            self.publish_cooldown_addresses.clone(),
        );
        r.register(
            "segments",
            "HLS segments produced",
            self.segments_total.clone(),
        );
        r.register(
            "segment_memory_bytes",
            "Bytes of segments held in memory (live windows, their grace period, being written)",
            self.segment_memory_bytes.clone(),
        );
        r.register(
            "segment_spare_bytes",
            "Bytes of segment and part buffers waiting to be reused for new ones",
            self.segment_spare_bytes.clone(),
        );
        r.register(
            "stream_service_seconds",
            "Time the stream-service took to answer a key check",
            self.stream_service_seconds.clone(),
        );
        r.register(
            "segment_publish_seconds",
            "Time from the media that closes a segment arriving to the segment being listed",
            self.segment_publish_seconds.clone(),
        );
        r.register(
            "part_publish_seconds",
            "Time from the arrival of a part's last frame (the earliest it can have arrived) \
             to the part being listed in its Low-Latency playlist",
            self.part_publish_seconds.clone(),
        );
        r.register(
            "media_events_lost",
            "Media events outputs lost because they fell behind their stream's fan-out \
             (each loss resumes at the next keyframe after a discontinuity)",
            self.media_events_lost_total.clone(),
        );
        r.register(
            "players",
            "Players (RTMP, HTTP-FLV, WebSocket-FLV) reading a stream now, by protocol",
            self.players.clone(),
        );
        r.register(
            "plays",
            "Players that started, by protocol",
            self.plays_total.clone(),
        );
        r.register(
            "plays_refused",
            "Play requests refused, by reason",
            self.plays_refused_total.clone(),
        );
        r.register(
            "players_dropped",
            "Players dropped for reading too slowly, by reason",
            self.players_dropped_total.clone(),
        );
        r.register(
            "recordings",
            "Recordings in record.path",
            self.recordings.clone(),
        );
        r.register(
            "recordings_active",
            "Recordings being written",
            self.recordings_active.clone(),
        );
        r.register(
            "recordings_bytes",
            "Bytes the recordings take on disk",
            self.recordings_bytes.clone(),
        );
        r.register(
            "recording_bytes_written",
            "Bytes appended to recordings",
            self.recording_bytes_written_total.clone(),
        );
        r.register(
            "recording_errors",
            "Recordings that ended early, by reason",
            self.recording_errors_total.clone(),
        );
        r.register(
            "recordings_deleted",
            "Recordings deleted, by reason",
            self.recordings_deleted_total.clone(),
        );
        r.register(
            "s3_uploads",
            "Objects put in the bucket, by kind",
            self.s3_uploads_total.clone(),
        );
        r.register(
            "s3_upload_bytes",
            "Bytes put in the bucket",
            self.s3_upload_bytes_total.clone(),
        );
        r.register(
            "s3_deletes",
            "Objects deleted from the bucket",
            self.s3_deletes_total.clone(),
        );
        r.register(
            "s3_failures",
            "Failed object storage requests, by reason",
            self.s3_failures_total.clone(),
        );
        r.register(
            "s3_retries",
            "Object storage requests tried again",
            self.s3_retries_total.clone(),
        );
        r.register(
            "s3_dropped",
            "Segment uploads dropped because the upload queue was full",
            self.s3_dropped_total.clone(),
        );
        r.register(
            "s3_queue_bytes",
            "Bytes of uploads queued or in flight",
            self.s3_queue_bytes.clone(),
        );
        r.register(
            "s3_request_seconds",
            "Seconds per object storage request",
            self.s3_request_seconds.clone(),
        );
        r.register(
            "s3_playlist_lag_seconds",
            "Seconds from a playlist version on the node to its copy in the bucket",
            self.s3_playlist_lag_seconds.clone(),
        );
        r.register(
            "thumbnail_decodes",
            "Keyframes decoded for thumbnails (whether or not they decoded)",
            self.thumbnail_decodes_total.clone(),
        );
        r.register(
            "thumbnail_decode_failures",
            "Keyframes that did not decode for a thumbnail",
            self.thumbnail_decode_failures_total.clone(),
        );
        r.register(
            "thumbnail_decode_seconds",
            "CPU seconds of a thumbnail decode, with its scaling and JPEG encoding",
            self.thumbnail_decode_seconds.clone(),
        );
        r.register(
            "thumbnail_encodes",
            "Decoded pictures scaled and encoded as a thumbnail of another width",
            self.thumbnail_encodes_total.clone(),
        );
        r.register(
            "thumbnail_budget_refusals",
            "Thumbnail work refused because the CPU budget (thumbnail.cpu) was spent or the \
             workers' queue was full",
            self.thumbnail_budget_refusals_total.clone(),
        );
        r.register(
            "player_skips",
            "Times a player fell behind and skipped video to the next keyframe",
            self.player_skips_total.clone(),
        );
        r.register(
            "player_bytes_out",
            "Bytes written to players",
            self.player_bytes_out_total.clone(),
        );
        for &state in RELAY_STATES {
            // Every state is listed, at 0 before any target is in it.
            let _ = self.relay_targets.get_or_create(&StateLabel { state });
        }
        r.register(
            "relay_targets",
            "Relay targets of live publishes, by state (connecting, live, retrying)",
            self.relay_targets.clone(),
        );
        r.register(
            "relay_connects",
            "Times a relay target accepted a publish",
            self.relay_connects_total.clone(),
        );
        r.register(
            "relay_failures",
            "Relay attempts that failed (unreachable, refused, the stream not taken) and relay \
             connections that dropped before their publish ended",
            self.relay_failures_total.clone(),
        );
        r.register(
            "relay_bytes_out",
            "Bytes written to relay targets",
            self.relay_bytes_out_total.clone(),
        );
        r.register_collector(Box::new(DiskCollector(disk)));
        registry
    }

    pub fn reject(&self, reason: &'static str) {
        debug_assert!(
            REJECT_REASONS.contains(&reason),
            "{reason} not in REJECT_REASONS"
        );
        self.publishes_rejected_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Publishes refused for `reason` so far.
    pub fn rejected(&self, reason: &'static str) -> u64 {
        self.publishes_rejected_total
            .get_or_create(&ReasonLabel { reason })
            .get()
    }
}

/// The disk writer's own counters, read at scrape time.
#[derive(Debug)]
struct DiskCollector(Arc<DiskStats>);

impl Collector for DiskCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let d = &self.0;
        let counters = [
            ("disk_writes", "Files written to the media root", d.writes()),
            (
                "disk_bytes_written",
                "Bytes written to the media root",
                d.bytes_written(),
            ),
            (
                "disk_errors",
                "Failed file writes and deletions",
                d.errors(),
            ),
            (
                "disk_dropped",
                "File actions dropped because the disk queue was full",
                d.dropped(),
            ),
        ];
        for (name, help, value) in counters {
            let metric = ConstCounter::new(value);
            let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(e)?;
        }
        let gauges = [
            (
                "disk_queue",
                "File actions waiting for the disk writer",
                d.queue_depth() as i64,
            ),
            (
                "disk_queue_bytes",
                "Bytes of file writes waiting for the disk writer",
                d.queued_bytes() as i64,
            ),
        ];
        for (name, help, value) in gauges {
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
            metric.encode(e)?;
        }
        Ok(())
    }
}
