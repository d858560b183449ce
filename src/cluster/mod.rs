//! The cluster: several nodes share one Redis (or Valkey), standalone or behind Sentinel
//! (`cluster.redis`), to hold each live stream key on one node at a time and to find the
//! node that holds it.
//!
//! - `lease`: sans-IO bookkeeping of the keys this node holds, and the fence for writes to
//!   shared storage.
//! - `redis`: the connection and the Lua scripts (claim, renew, release, who holds a key).
//! - `nodes`: the node registry, each node's advertised HTTP address.
//! - `forward`: HTTP requests for a stream held elsewhere, proxied or redirected there, and
//!   `/api/streams` gathered from every node.
//! - `url`: `cluster.redis` parsed.
//!
//! A validated publish claims its stream (`{app}/{name}`, as the registry names it) before
//! the registry does: the key's lease is set to `{node}:{token}` with a fencing token from
//! INCR. A key held by another node is taken over (its holder is told on its stop channel
//! and stops its publisher as a local takeover does) or, with `rtmp.takeover` off, refused.
//! The holder renews its leases every third of `cluster.lease`; a renewal that finds another
//! holder stops the local publisher too. While Redis cannot be reached new publishes are
//! refused (one publisher per key could not be guaranteed); streams already held go on,
//! and their leases are taken again when Redis is back, unless another node holds them then.

pub mod forward;
pub mod lease;
pub mod nodes;
pub mod redis;
pub mod url;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::redis::AsyncCommands;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::hub::registry::Registry;
use crate::hub::stream::lock;
pub use lease::Fence;
use lease::Leases;
pub use nodes::Node;
use redis::Redis;
pub use url::RedisUrl;

/// How requests for a stream held by another node are answered (`cluster.forward`).
pub use crate::config::ForwardMode;

/// What the cluster is given by the server.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub redis: RedisUrl,
    pub namespace: String,
    pub node: Node,
    pub lease: Duration,
    pub forward: ForwardMode,
}

/// Why a publish could not claim its key in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimRefused {
    #[error("the cluster's Redis cannot be reached ({0}): new publishes are refused until it is")]
    Unreachable(String),
    #[error("stream is already being published on node {0} (takeover is off)")]
    HeldElsewhere(String),
}

/// Who holds a stream, as a lookup found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub node: String,
    /// `None` when the node's record expired (it is dying).
    pub url: Option<String>,
}

/// How long a holder lookup is reused, found and not found.
const HOLDER_CACHE: Duration = Duration::from_secs(1);
const NO_HOLDER_CACHE: Duration = Duration::from_millis(300);

/// The cluster's figures in `/metrics`.
#[derive(Default)]
pub struct ClusterMetrics {
    /// 1 while Redis answers, 0 while it cannot be reached.
    pub redis_up: Gauge,
    pub leases_held: Gauge,
    pub renewals: Counter,
    pub renewal_failures: Counter,
    /// Keys this node lost to another node.
    pub leases_lost: Counter,
    /// Publishes here that took a key over from another node.
    pub takeovers: Counter,
    /// Requests answered by another node, by `mode` (`proxy`, `redirect`).
    pub forwarded: Family<ModeLabel, Counter>,
    /// Forwarded requests the holder did not answer (502).
    pub forward_errors: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: &'static str,
}

impl ClusterMetrics {
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        let r = registry.sub_registry_with_prefix("rtmp_server_cluster");
        r.register(
            "redis_up",
            "1 while the cluster's Redis answers, 0 while it cannot be reached",
            self.redis_up.clone(),
        );
        r.register(
            "leases_held",
            "Stream keys this node holds in the cluster",
            self.leases_held.clone(),
        );
        r.register(
            "lease_renewals",
            "Lease renewal rounds that Redis answered",
            self.renewals.clone(),
        );
        r.register(
            "lease_renewal_failures",
            "Lease renewal rounds that failed (Redis unreachable or erring)",
            self.renewal_failures.clone(),
        );
        r.register(
            "leases_lost",
            "Stream keys another node took from this one",
            self.leases_lost.clone(),
        );
        r.register(
            "takeovers",
            "Publishes here that took a stream key over from another node",
            self.takeovers.clone(),
        );
        r.register(
            "forwarded_requests",
            "Requests for streams held by another node, proxied or redirected",
            self.forwarded.clone(),
        );
        r.register(
            "forward_errors",
            "Proxied requests the holder did not answer (502)",
            self.forward_errors.clone(),
        );
    }
}

/// This node's part in the cluster. Shared by ingest, HTTP and its own tasks.
pub struct Cluster {
    pub settings: ClusterSettings,
    redis: Redis,
    leases: Mutex<Leases>,
    up: AtomicBool,
    registry: Arc<Registry>,
    pub metrics: ClusterMetrics,
    holders: Mutex<HashMap<String, (Instant, Option<Holder>)>>,
    /// For proxied requests and `/api/streams` of other nodes.
    pub http: reqwest::Client,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.settings.node)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub fn new(
        settings: ClusterSettings,
        registry: Arc<Registry>,
        http: reqwest::Client,
    ) -> Arc<Cluster> {
        let redis = Redis::new(settings.redis.clone(), settings.namespace.clone());
        Arc::new(Cluster {
            leases: Mutex::new(Leases::new(settings.lease)),
            settings,
            redis,
            up: AtomicBool::new(false),
            registry,
            metrics: ClusterMetrics::default(),
            holders: Mutex::new(HashMap::new()),
            http,
        })
    }

    pub fn node(&self) -> &Node {
        &self.settings.node
    }

    fn lease_ms(&self) -> u64 {
        self.settings.lease.as_millis() as u64
    }

    /// Redis answered (`true`) or did not: logs the change and sets the gauge.
    fn reached(&self, ok: bool, why: Option<&::redis::RedisError>) {
        let was = self.up.swap(ok, Ordering::Relaxed);
        self.metrics.redis_up.set(i64::from(ok));
        match (was, ok) {
            (false, true) => {
                *lock(&self.redis.last_error) = None;
                info!(node = %self.settings.node.id, "cluster: Redis reached; publishes are accepted");
            }
            (true, false) => warn!(
                "cluster: Redis cannot be reached ({}): new publishes are refused; streams \
                 held here go on",
                why.map(|e| e.to_string()).unwrap_or_default()
            ),
            _ => {}
        }
    }

    async fn failed(&self, e: &::redis::RedisError) {
        self.redis.failed(e).await;
        self.reached(false, Some(e));
    }

    /// `Err(reason)` while Redis cannot be reached (for `/readyz`).
    pub fn ready(&self) -> Result<(), String> {
        if self.up.load(Ordering::Relaxed) {
            return Ok(());
        }
        let why = lock(&self.redis.last_error)
            .clone()
            .unwrap_or_else(|| "not connected yet".into());
        Err(format!(
            "cluster Redis unreachable: {why}; new publishes are refused"
        ))
    }

    /// Claims `stream` for a publish on this node, taking it from another node when
    /// `takeover` is on. Returns the fencing token.
    pub async fn claim(&self, stream: &str, takeover: bool) -> Result<u64, ClaimRefused> {
        let sent = Instant::now();
        let result: ::redis::RedisResult<(i64, u64, u64, String)> = async {
            let mut conn = self.redis.conn().await?;
            self.redis
                .scripts
                .claim
                .key(self.redis.lease_key(stream))
                .key(self.redis.token_key(stream))
                .arg(&self.settings.node.id)
                .arg(self.lease_ms())
                .arg(if takeover { "1" } else { "0" })
                .arg(stream)
                .arg(self.redis.stop_channel(""))
                .invoke_async(&mut conn)
                .await
        }
        .await;
        let arrived = Instant::now();
        let (granted, token, previous_ttl, previous) = match result {
            Ok(r) => {
                self.reached(true, None);
                r
            }
            Err(e) => {
                self.failed(&e).await;
                return Err(ClaimRefused::Unreachable(e.to_string()));
            }
        };
        if granted != 1 {
            return Err(ClaimRefused::HeldElsewhere(previous));
        }
        if !previous.is_empty() {
            self.metrics.takeovers.inc();
            info!(
                stream,
                from = %previous,
                token,
                "cluster: stream taken over from another node"
            );
        }
        lock(&self.holders).remove(stream);
        let mut leases = lock(&self.leases);
        leases.claimed(
            stream,
            token,
            sent,
            arrived,
            Duration::from_millis(previous_ttl),
        );
        self.metrics.leases_held.set(leases.len() as i64);
        Ok(token)
    }

    /// The claim of `stream` with `token` is the local publisher `owner`'s: its end gives
    /// the key back.
    pub fn bind(&self, stream: &str, token: u64, owner: u64) {
        lock(&self.leases).bind(stream, token, owner);
    }

    /// The claim of `stream` with `token` came to nothing (the registry refused the
    /// publish): the key is given back, if no other claim holds it since.
    pub fn abandon(self: &Arc<Self>, stream: &str, token: u64) {
        let held = {
            let mut leases = lock(&self.leases);
            let held = leases.abandoned(stream, token);
            self.metrics.leases_held.set(leases.len() as i64);
            held
        };
        if held {
            self.give_back(stream, token);
        }
    }

    /// The local publisher `owner` of `stream` ended: the key is given back, unless a later
    /// claim holds it.
    pub fn release(self: &Arc<Self>, stream: &str, owner: u64) {
        let token = {
            let mut leases = lock(&self.leases);
            let token = leases.released(stream, owner);
            self.metrics.leases_held.set(leases.len() as i64);
            token
        };
        if let Some(token) = token {
            self.give_back(stream, token);
        }
    }

    /// Deletes the lease in Redis if it is still this node's with `token`.
    fn give_back(self: &Arc<Self>, stream: &str, token: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cluster = self.clone();
        let stream = stream.to_string();
        runtime.spawn(async move {
            let value = format!("{}:{token}", cluster.settings.node.id);
            let result: ::redis::RedisResult<i64> = async {
                let mut conn = cluster.redis.conn().await?;
                cluster
                    .redis
                    .scripts
                    .release
                    .key(cluster.redis.lease_key(&stream))
                    .arg(value)
                    .invoke_async(&mut conn)
                    .await
            }
            .await;
            if let Err(e) = result {
                // The lease runs out by itself.
                warn!(stream, "cluster: giving the key back failed: {e}");
                cluster.failed(&e).await;
            }
        });
    }

    /// May this node write `stream`'s shared state now, for at least `for_at_least`?
    pub fn fence(&self, stream: &str, for_at_least: Duration) -> Fence {
        lock(&self.leases).fence(stream, Instant::now(), for_at_least)
    }

    /// Does the registry still have `stream` (live, or ended and kept for its viewers)?
    fn keeps(&self, stream: &str) -> bool {
        stream
            .split_once('/')
            .is_some_and(|(app, name)| self.registry.get(app, name).is_some())
    }

    /// Does this node hold `stream`'s lease for a publish?
    pub fn holds(&self, stream: &str) -> bool {
        lock(&self.leases).get(stream).is_some_and(|h| !h.draining)
    }

    /// Who holds `stream`, looked up in Redis (reused for a second, 300 ms when nobody holds it). `Err` when Redis
    /// cannot be reached.
    pub async fn holder(&self, stream: &str) -> Result<Option<Holder>, String> {
        let now = Instant::now();
        if let Some((at, found)) = lock(&self.holders).get(stream) {
            let ttl = if found.is_some() {
                HOLDER_CACHE
            } else {
                NO_HOLDER_CACHE
            };
            if now.saturating_duration_since(*at) < ttl {
                return Ok(found.clone());
            }
        }
        let result: ::redis::RedisResult<Option<(String, Option<String>)>> = async {
            let mut conn = self.redis.conn().await?;
            self.redis
                .scripts
                .holder
                .key(self.redis.lease_key(stream))
                .arg(self.redis.node_key(""))
                .invoke_async(&mut conn)
                .await
        }
        .await;
        let found = match result {
            Ok(found) => found.map(|(node, url)| Holder { node, url }),
            Err(e) => {
                self.failed(&e).await;
                return Err(e.to_string());
            }
        };
        let mut holders = lock(&self.holders);
        if holders.len() > 10_000 {
            holders.retain(|_, (at, _)| now.saturating_duration_since(*at) < HOLDER_CACHE);
        }
        holders.insert(stream.to_string(), (now, found.clone()));
        Ok(found)
    }

    /// Every node with a live record.
    pub async fn nodes(&self) -> Result<Vec<Node>, String> {
        match nodes::list(&self.redis).await {
            Ok(n) => Ok(n),
            Err(e) => {
                self.failed(&e).await;
                Err(e.to_string())
            }
        }
    }

    /// Stops the local publisher of `stream` (`{app}/{name}`), as a local takeover does.
    fn stop_publisher(&self, stream: &str, why: &str) {
        self.metrics.leases_lost.inc();
        self.metrics
            .leases_held
            .set(lock(&self.leases).len() as i64);
        lock(&self.holders).remove(stream);
        let Some((app, name)) = stream.split_once('/') else {
            return;
        };
        if let Some(publisher) = self.registry.get(app, name).and_then(|s| s.publisher()) {
            info!(stream, "cluster: {why}: the publisher here is stopped");
            publisher.stop.stop(crate::hub::stop::StopReason::TakenOver);
        }
    }

    /// Starts the heartbeat and renewals, and the stop-channel listener; they end with
    /// `shutdown`, the heartbeat after removing this node's record.
    pub fn spawn(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(self.clone().renew_loop(shutdown.clone())),
            tokio::spawn(self.clone().listen(shutdown)),
        ]
    }

    async fn renew_loop(self: Arc<Self>, shutdown: CancellationToken) {
        info!(
            node = %self.settings.node.id,
            advertise = %self.settings.node.url,
            lease_s = self.settings.lease.as_secs_f64(),
            "cluster: joining"
        );
        self.connect().await;
        let every = self.settings.lease / 3;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.renew_round().await,
                _ = shutdown.cancelled() => break,
            }
        }
        let _ = tokio::time::timeout(
            redis::TIMEOUT,
            nodes::leave(&self.redis, &self.settings.node.id),
        )
        .await;
    }

    /// One round: the node's record, then every held lease in one script.
    async fn renew_round(&self) {
        let ttl = self.lease_ms() * u64::from(nodes::RECORD_LEASES);
        if let Err(e) = nodes::heartbeat(&self.redis, &self.settings.node, ttl).await {
            self.metrics.renewal_failures.inc();
            self.failed(&e).await;
            return;
        }
        self.reached(true, None);
        // A given-back key is renewed while its ended stream is kept here (the ended
        // playlist served, then its files deleted); once the stream is swept away, its
        // lease runs out by itself.
        let held: Vec<(String, u64, bool)> = {
            let mut leases = lock(&self.leases);
            leases.drained(Instant::now());
            leases.all()
        }
        .into_iter()
        .filter(|(stream, _, draining)| !draining || self.keeps(stream))
        .collect();
        if held.is_empty() {
            return;
        }
        let sent = Instant::now();
        let result: ::redis::RedisResult<Vec<i64>> = async {
            let mut conn = self.redis.conn().await?;
            let mut invocation = self.redis.scripts.renew.prepare_invoke();
            for (stream, _, _) in &held {
                invocation.key(self.redis.lease_key(stream));
                invocation.key(self.redis.token_key(stream));
            }
            invocation.arg(&self.settings.node.id).arg(self.lease_ms());
            for (_, token, draining) in &held {
                let value = format!("{}:{token}", self.settings.node.id);
                invocation.arg(if *draining {
                    format!("released:{value}")
                } else {
                    value
                });
            }
            invocation.invoke_async(&mut conn).await
        }
        .await;
        let answers = match result {
            Ok(a) if a.len() == held.len() => a,
            Ok(a) => {
                warn!(
                    "cluster: renewal answered {} of {} keys",
                    a.len(),
                    held.len()
                );
                self.metrics.renewal_failures.inc();
                return;
            }
            Err(e) => {
                self.metrics.renewal_failures.inc();
                self.failed(&e).await;
                return;
            }
        };
        self.metrics.renewals.inc();
        for ((stream, token, draining), answer) in held.iter().zip(answers) {
            match answer {
                0 => lock(&self.leases).renewed(stream, *token, sent),
                -1 if *draining => {
                    // Another node claimed it (and told this one), or it ran out.
                    lock(&self.leases).lost(stream, token + 1);
                }
                -1 => {
                    if lock(&self.leases).lost(stream, token + 1) {
                        self.stop_publisher(stream, "another node holds the key (renewal)");
                    }
                }
                new => {
                    // Only if the publish still holds the token the round was sent with.
                    if lock(&self.leases).reasserted(stream, *token, new as u64, sent) {
                        info!(
                            stream,
                            token = new,
                            "cluster: lease taken again after it ran out"
                        );
                    }
                }
            }
        }
    }

    /// Listens on this node's stop channel and stops publishers whose key another node
    /// took; reconnects after a failure.
    async fn listen(self: Arc<Self>, shutdown: CancellationToken) {
        use futures_util::StreamExt;
        let channel = self.redis.stop_channel(&self.settings.node.id);
        loop {
            let subscribed: ::redis::RedisResult<::redis::aio::PubSub> = async {
                let client = self.redis.client().await?;
                let mut pubsub = tokio::time::timeout(redis::TIMEOUT, client.get_async_pubsub())
                    .await
                    .map_err(|_| {
                        ::redis::RedisError::from(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "subscribing timed out",
                        ))
                    })??;
                pubsub.subscribe(&channel).await?;
                Ok(pubsub)
            }
            .await;
            match subscribed {
                Ok(mut pubsub) => {
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => {
                                let Some(message) = message else { break };
                                let Ok(text) = message.get_payload::<String>() else { continue };
                                self.stop_message(&text);
                            }
                            _ = shutdown.cancelled() => return,
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("cluster: stop channel: {e}");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    /// `{token} {app}/{name}`: another node claimed the key with `token`.
    fn stop_message(&self, text: &str) {
        let Some((token, stream)) = text.split_once(' ') else {
            return;
        };
        let Ok(token) = token.parse::<u64>() else {
            return;
        };
        let mut leases = lock(&self.leases);
        // A key given back is only left to its new holder: no publisher to stop, no loss.
        let draining = leases.get(stream).is_some_and(|h| h.draining);
        if leases.lost(stream, token) && !draining {
            drop(leases);
            self.stop_publisher(stream, "another node took the key over");
        }
    }

    /// Checks the connection at start: logs whether Redis answers.
    pub async fn connect(&self) {
        let result: ::redis::RedisResult<String> = async {
            let mut conn = self.redis.conn().await?;
            conn.ping().await
        }
        .await;
        match result {
            Ok(_) => self.reached(true, None),
            Err(e) => {
                self.redis.failed(&e).await;
                self.metrics.redis_up.set(0);
                warn!(
                    "cluster: Redis cannot be reached at start ({e}): publishes are refused \
                     until it is"
                );
            }
        }
    }
}

/// The HTTP client for proxied requests and other nodes' stream lists: a connection must
/// come within 2 s, and a read within 30 s (a held blocking playlist request answers within
/// a few target durations); no limit on the whole (an HTTP-FLV stream lasts), no redirects.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(crate::auth::tls_config()?)
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rtmp-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// This node's id when `cluster.node_id` is empty: the host name and a random suffix.
pub fn default_node_id() -> String {
    let mut suffix = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix);
    let host = host_name().unwrap_or_else(|| "node".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != ':')
        .take(64)
        .collect();
    format!(
        "{host}-{:02x}{:02x}{:02x}{:02x}",
        suffix[0], suffix[1], suffix[2], suffix[3]
    )
}

/// The kernel's host name.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// `cluster.advertise` when empty: the HTTP listener's address (the bind address, or the
/// host name when bound to all addresses).
pub fn default_advertise(
    bind: std::net::IpAddr,
    http: Option<std::net::SocketAddr>,
    https: Option<std::net::SocketAddr>,
) -> String {
    let (scheme, port) = match (http, https) {
        (Some(a), _) => ("http", a.port()),
        (None, Some(a)) => ("https", a.port()),
        (None, None) => ("http", 0),
    };
    let host = if bind.is_unspecified() {
        host_name().unwrap_or_else(|| "localhost".into())
    } else if bind.is_ipv6() {
        format!("[{bind}]")
    } else {
        bind.to_string()
    };
    format!("{scheme}://{host}:{port}")
}
