//! Ingest: what happens between a publisher's protocol and its stream's outputs.
//!
//! A publish request is checked (the stream key's shape, then the stream-service), claims its
//! stream in the registry (taking it over from an earlier connection, or refused), and
//! becomes a [`Publish`]: the FLV demuxer that turns the publisher's tag bodies into media
//! events, pushed into the stream's fan-out for every output (see `outputs`). The publish
//! also keeps the stream's figures for the stats API, sends the webhooks (`announce`) and,
//! when configured, re-checks the key while the stream is live (`recheck`), and starts the
//! publish's relay pushes (`crate::relay`).
//!
//! Failed publishes are counted per client address (`failures`): an address that fails too
//! often is refused for a while before its key is looked at.
//!
//! The protocol side (`rtmp::conn`) hands this layer stream keys, metadata and tag bodies and
//! gets refusals back with the reason to tell the encoder; it never sees the registry, the
//! outputs or the rest of the server.

mod announce;
pub mod failures;
pub mod outputs;
mod publish;
mod recheck;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::auth::KeyChecker;
use crate::hooks::Hooks;
use crate::hub::key::StreamKey;
use crate::hub::registry::{ClaimError, Registry};
use crate::hub::stream::lock;
use crate::metrics::Metrics;
use failures::{Admission, ClientBlock, Failed, FailedPublishes, FailureLimit};

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
    /// Failed publishes that put a client address in cool-down (`auth.max_failures`,
    /// `auth.failure_window`, `auth.failure_cooldown`); `None`: no limit.
    pub failure_limit: Option<FailureLimit>,
    /// Pushes live publishes on to other RTMP servers (`relay.push`, and the
    /// stream-service's `push`).
    pub relays: crate::relay::Relays,
    /// Record every publish (`record.enabled`); without it, those the stream-service
    /// answers `record: true` for.
    pub record: bool,
    /// A new publish on a live key takes it over (`rtmp.takeover`), here and, in a
    /// cluster, from another node.
    pub takeover: bool,
    /// The cluster (`cluster.redis`): a publish claims its key there before the registry.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Thumbnails are served (`thumbnail.workers` above 0): the `on_publish` webhook names
    /// the one of the publish's first keyframe.
    pub thumbnails: bool,
}

/// The least time between two sweeps of the failed-publish table (see [`Ingest::sweep`]).
const FAILURE_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The failed-publish table and when it was last swept.
struct Failures {
    table: FailedPublishes,
    swept: Option<Instant>,
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
    /// `None` when `auth.max_failures` is 0.
    failures: Option<Mutex<Failures>>,
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

impl Refusal {
    /// The client's address is in cool-down after too many failed publishes.
    pub fn is_rate_limited(&self) -> bool {
        self.reason == RATE_LIMITED
    }
}

/// The `reason` of a publish refused because its address failed too often.
const RATE_LIMITED: &str = "rate_limited";

impl Ingest {
    pub fn new(
        settings: IngestSettings,
        checker: KeyChecker,
        registry: Arc<Registry>,
        hooks: Hooks,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        let failures = settings.failure_limit.map(|limit| {
            Mutex::new(Failures {
                table: FailedPublishes::new(limit),
                swept: None,
            })
        });
        Ingest {
            inner: Arc::new(Inner {
                failures,
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
        let client = ClientBlock::from(peer.ip());
        if let Some(until) = self.cooling_down(client) {
            let left = until.saturating_duration_since(Instant::now()).as_secs() + 1;
            debug!(%client, "publish refused: the address is in cool-down for {left} s");
            return Err(refuse(
                RATE_LIMITED,
                "NetStream.Publish.Unauthorized",
                format!(
                    "too many failed publishes from this address: refused for another {left} s"
                ),
            ));
        }
        let key = StreamKey::parse(requested).map_err(|e| {
            self.failed(client);
            refuse("malformed_key", "NetStream.Publish.BadName", e.to_string())
        })?;
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
            if rejection.is_about_the_key() {
                self.failed(client);
            }
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
        let stream_id = format!("{app}/{name}");
        let live_here = || {
            inner
                .registry
                .get(app, name.as_str())
                .is_some_and(|s| s.publisher().is_some())
        };
        // In a cluster the key is claimed there first (the registry refuses a second local
        // publish without takeover by itself).
        let cluster_token = match &inner.settings.cluster {
            // A name served under another key is refused by the registry, before Redis.
            Some(_)
                if inner
                    .registry
                    .get(app, name.as_str())
                    .is_some_and(|s| s.key != key) =>
            {
                None
            }
            Some(cluster) if inner.settings.takeover || !live_here() => {
                match cluster.claim(&stream_id, inner.settings.takeover).await {
                    Ok(token) => Some((cluster, token)),
                    Err(e @ crate::cluster::ClaimRefused::HeldElsewhere(_)) => {
                        warn!(stream = %stream_id, "publish refused: {e}");
                        return Err(refuse(
                            "already_publishing",
                            "NetStream.Publish.BadName",
                            e.to_string(),
                        ));
                    }
                    Err(e @ crate::cluster::ClaimRefused::Unreachable(_)) => {
                        warn!(stream = %stream_id, "publish refused: {e}");
                        return Err(refuse(
                            "cluster_unavailable",
                            "NetStream.Publish.Failed",
                            e.to_string(),
                        ));
                    }
                }
            }
            _ => None,
        };
        let claimed = inner.registry.claim(app, &name, &key, peer);
        if let Some((cluster, token)) = cluster_token {
            match &claimed {
                Ok(claim) => cluster.bind(&stream_id, token, claim.publisher.id),
                // The lease now carries this claim's token: it belongs to the publisher
                // that is live here (a race with its start), else it goes back.
                Err(_) => match inner
                    .registry
                    .get(app, name.as_str())
                    .and_then(|s| s.publisher())
                {
                    Some(live) => cluster.bind(&stream_id, token, live.id),
                    None => cluster.abandon(&stream_id, token),
                },
            }
        }
        let claim = claimed.map_err(|e| match e {
            ClaimError::AlreadyPublishing => refuse(
                "already_publishing",
                "NetStream.Publish.BadName",
                e.to_string(),
            ),
            ClaimError::NameInUse => {
                refuse("name_in_use", "NetStream.Publish.BadName", e.to_string())
            }
        })?;
        self.succeeded(client);
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
        if inner.settings.record || grant.record {
            if inner.settings.cmaf {
                claim.stream.record(claim.publisher.id);
            } else {
                warn!(
                    name = %name,
                    "the stream-service asks for a recording, but recordings are made of the \
                     CMAF output's fragments and hls.cmaf is off: not recorded"
                );
            }
        }
        inner
            .settings
            .relays
            .start(&claim.stream, &claim.publisher, &grant.push);
        Ok(Publish::new(
            self.inner.clone(),
            claim.stream,
            claim.publisher,
            recheck,
        ))
    }
}

impl Ingest {
    /// When `client`'s cool-down ends, if it is in one.
    fn cooling_down(&self, client: ClientBlock) -> Option<Instant> {
        let failures = lock(self.inner.failures.as_ref()?);
        match failures.table.admit(client, Instant::now()) {
            Admission::Allowed => None,
            Admission::Refused { until } => Some(until),
        }
    }

    /// Counts a failed publish of `client` (see [`crate::auth::Rejection::is_about_the_key`]), and logs
    /// when it puts the address in cool-down.
    fn failed(&self, client: ClientBlock) {
        let Some(failures) = &self.inner.failures else {
            return;
        };
        let limit = self.inner.settings.failure_limit;
        let failed = lock(failures).table.fail(client, Instant::now());
        match (failed, limit) {
            (Failed::CoolingDown { .. }, Some(limit)) => {
                self.inner.metrics.publish_cooldowns_total.inc();
                self.inner.metrics.publish_cooldown_addresses.inc();
                warn!(
                    %client,
                    failures = limit.max.get(),
                    window_s = limit.window.as_secs(),
                    cooldown_s = limit.cooldown.as_secs(),
                    "failed-publish limit reached (auth.max_failures): publishes from this \
                     address are refused for {} s",
                    limit.cooldown.as_secs()
                );
            }
            (Failed::Untracked { first: true }, _) => warn!(
                %client,
                "failed-publish table full ({} addresses): failures of new addresses are \
                 not counted until entries expire",
                failures::MAX_ADDRESSES
            ),
            _ => {}
        }
    }

    /// A publish of `client` started: its failures are forgotten.
    fn succeeded(&self, client: ClientBlock) {
        if let Some(failures) = &self.inner.failures {
            lock(failures).table.succeed(client);
        }
    }

    /// Drops failed-publish entries that expired and updates the cool-down gauge; called
    /// often, it does the work at most once a second.
    pub fn sweep(&self, now: Instant) {
        let Some(failures) = &self.inner.failures else {
            return;
        };
        let mut failures = lock(failures);
        if failures
            .swept
            .is_some_and(|at| now.saturating_duration_since(at) < FAILURE_SWEEP_EVERY)
        {
            return;
        }
        failures.swept = Some(now);
        let cooling = failures.table.sweep(now);
        self.inner
            .metrics
            .publish_cooldown_addresses
            .set(i64::try_from(cooling).unwrap_or(i64::MAX));
    }
}
