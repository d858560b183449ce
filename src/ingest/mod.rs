//! Ingest: what happens between a publisher's protocol and its stream's outputs.
//!
//! A publish request is checked (the stream key's shape, then the stream-service), claims its
//! stream in the registry (taking it over from an earlier connection, or refused), and
//! becomes a [`Publish`]: the FLV demuxer that turns the publisher's tag bodies into media
//! events, pushed into the stream's fan-out for every output (see `outputs`). The publish
//! also keeps the stream's figures for the stats API, sends the webhooks (`announce`) and,
//! when configured, re-checks the key while the stream is live (`recheck`).
//!
//! The protocol side (`rtmp::conn`) hands this layer stream keys, metadata and tag bodies and
//! gets refusals back with the reason to tell the encoder; it never sees the registry, the
//! outputs or the rest of the server.

mod announce;
pub mod outputs;
mod publish;
mod recheck;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::auth::KeyChecker;
use crate::hooks::Hooks;
use crate::hub::key::StreamKey;
use crate::hub::registry::{ClaimError, Registry};
use crate::metrics::Metrics;

pub use publish::{Arrival, Publish, StreamMetadata};

/// What the ingest layer needs, handed over by the server.
pub struct IngestSettings {
    /// The application name publishers use (`rtmp.app`).
    pub app: String,
    /// Serve under the stream-service's playback id (`auth.playback_id`).
    pub playback_id: bool,
    /// Re-check a live stream's key this often (`auth.recheck`); `None`: never.
    pub recheck: Option<Duration>,
    /// Tracks of each kind a publish may carry (`rtmp.max_video_tracks`,
    /// `rtmp.max_audio_tracks`).
    pub track_limits: crate::flv::demux::TrackLimits,
    /// The CMAF output runs (`hls.cmaf`): without it, only what MPEG-TS carries (one H.264
    /// and one AAC track) can be served, and other publishes are refused.
    pub cmaf: bool,
}

/// The ingest layer's handle. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

struct Inner {
    settings: IngestSettings,
    checker: KeyChecker,
    registry: Arc<Registry>,
    hooks: Hooks,
    metrics: Arc<Metrics>,
}

/// Why a publish was refused or ended: a label for the metrics, the status code and the
/// description the encoder is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `rtmp_server_publishes_rejected_total{reason}`.
    pub reason: &'static str,
    /// The NetStream status code (`NetStream.Publish.BadName`, ...).
    pub code: &'static str,
    pub description: String,
}

impl Ingest {
    pub fn new(
        settings: IngestSettings,
        checker: KeyChecker,
        registry: Arc<Registry>,
        hooks: Hooks,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest {
            inner: Arc::new(Inner {
                settings,
                checker,
                registry,
                hooks,
                metrics,
            }),
        }
    }

    /// Checks the key, claims the stream and starts the publish.
    pub async fn publish(
        &self,
        requested: &str,
        publish_type: &str,
        peer: SocketAddr,
    ) -> Result<Publish, Refusal> {
        let inner = &self.inner;
        let refuse = |reason: &'static str, code: &'static str, description: String| {
            inner.metrics.reject(reason);
            Refusal {
                reason,
                code,
                description,
            }
        };
        let key = StreamKey::parse(requested)
            .map_err(|e| refuse("malformed_key", "NetStream.Publish.BadName", e.to_string()))?;
        let asked = Instant::now();
        let checked = inner.checker.check(&key, false).await;
        if inner.checker.is_enforcing() {
            inner
                .metrics
                .stream_service_seconds
                .observe(asked.elapsed().as_secs_f64());
        }
        let grant = checked.map_err(|rejection| {
            warn!(key = %key.redacted(), "publish refused: {rejection}");
            refuse(
                rejection.label(),
                "NetStream.Publish.Unauthorized",
                rejection.to_string(),
            )
        })?;
        let name = match (inner.settings.playback_id, grant.playback_id) {
            (false, _) => key.clone(),
            (true, Some(id)) => id,
            (true, None) => {
                // Serving under the key instead would hand the secret to every viewer.
                let why = "the stream-service gave no playback id (auth.playback_id is on)";
                warn!(key = %key.redacted(), "publish refused: {why}");
                return Err(refuse(
                    "no_playback_id",
                    "NetStream.Publish.Unauthorized",
                    why.to_string(),
                ));
            }
        };
        let app = &inner.settings.app;
        let claim = inner
            .registry
            .claim(app, &name, &key, peer)
            .map_err(|e| match e {
                ClaimError::AlreadyPublishing => refuse(
                    "already_publishing",
                    "NetStream.Publish.BadName",
                    e.to_string(),
                ),
                ClaimError::NameInUse => {
                    refuse("name_in_use", "NetStream.Publish.BadName", e.to_string())
                }
            })?;
        inner.metrics.publishes_total.inc();
        inner.metrics.streams_live.inc();
        let recheck = inner
            .settings
            .recheck
            .filter(|_| inner.checker.is_enforcing())
            .map(|every| {
                recheck::spawn(
                    inner.checker.clone(),
                    inner.metrics.clone(),
                    key.clone(),
                    every,
                    claim.publisher.stop.clone(),
                )
            });
        info!(
            key = %key.redacted(),
            name = %name,
            app,
            client = %peer,
            publish_type,
            took_over = claim.took_over,
            "publish started"
        );
        Ok(Publish::new(
            self.inner.clone(),
            claim.stream,
            claim.publisher,
            recheck,
        ))
    }
}
