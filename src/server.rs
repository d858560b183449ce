//! The running server: builds each layer with the handles it uses, binds the listeners, and
//! stops in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::KeyChecker;
use crate::config::Config;
use crate::flv::demux::TrackLimits;
use crate::hls::buffer_pool::{PART_BUFFERS, SEGMENT_BUFFERS};
use crate::hls::disk::{DiskWriter, MediaRoot};
use crate::hooks::Hooks;
use crate::http::HttpContext;
use crate::http::bearer::ApiToken;
use crate::hub::registry::Registry;
use crate::ingest::failures::FailureLimit;
use crate::ingest::outputs::{OutputSettings, Outputs};
use crate::ingest::{Ingest, IngestSettings};
use crate::listener::{Admission, Admitted, ConnectionMetrics};
use crate::metrics::Metrics;
use crate::playback::queue::QueueLimits;
use crate::playback::{Playback, PlaybackSettings};
use crate::record::Recordings;
use crate::relay::Relays;
use crate::rtmp::conn::{ConnContext, RtmpSettings};
use crate::rtmp::transport::Transport;
use crate::tls::certs::{CertPaths, CertStore};
use tokio::task::JoinHandle;

/// How often segments and ended streams past their availability are dropped. Often, so
/// that expired segments' buffers return for reuse a few at a time and the spare set of
/// [`SEGMENT_BUFFERS`] stays shallow.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Returns free heap memory to the system when there is a lot of it. Media arrives in many
/// small allocations (slices of the publishers' read buffers, parts being gathered) made
/// between long-lived ones, and glibc only gives back free memory at the top of its heap, so
/// without this the peak of a stream that ends, or of one that misbehaved, stays resident.
/// `malloc_trim` releases the heap's free pages, which later allocations fault back in
/// (zeroed): while streams run their heap is mostly in use and trimming would only churn, so
/// it runs only when more than [`HeapTrim::FREE_SHARE`] of the heap, and at least
/// [`HeapTrim::FREE_FLOOR`], is free, checked every [`HeapTrim::EVERY`].
#[derive(Default)]
struct HeapTrim {
    last: Option<Instant>,
}

impl HeapTrim {
    const EVERY: Duration = Duration::from_secs(10);
    /// Free heap bytes below which trimming is not worth a walk of the heap.
    const FREE_FLOOR: usize = 16 * 1024 * 1024;
    /// Trims when more than one in this many heap bytes is free.
    const FREE_SHARE: usize = 4;

    fn note(&mut self, now: Instant) {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            return;
        }
        self.last = Some(now);
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        if info.fordblks > Self::FREE_FLOOR && info.fordblks * Self::FREE_SHARE > info.arena {
            // SAFETY: malloc_trim only releases free pages of the allocator's own heap.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// How long a stop waits for connections to end their streams and for the disk writer to
/// flush before the process exits anyway (`docker stop` sends SIGKILL after 10 s).
const STOP_GRACE: Duration = Duration::from_secs(8);

/// Queued disk actions at most (the bytes they write are bounded by
/// `hls::disk::MAX_QUEUED_BYTES`). Each is one segment, playlist or deletion; at 2 s segments
/// a stream queues about two a second, so this holds a long stall of a busy host, deletions
/// included.
const DISK_QUEUE: usize = 16_384;

/// Raises this process's soft limit on open files to its hard limit, as servers that hold
/// many sockets do: the usual soft limit (1024) is below the default `rtmp.max_connections`
/// plus `http.max_connections`, and accepting past it fails. Returns the soft limit before
/// and after; an unlimited or already raised limit is left as it is.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        let soft = limit.current.unwrap_or(u64::MAX);
        return Ok((soft, soft));
    };
    if soft >= hard {
        return Ok((soft, soft));
    }
    limit.current = Some(hard);
    setrlimit(Resource::Nofile, limit)?;
    Ok((soft, hard))
}

/// A listener whose clients start with a TLS handshake answered with its configuration.
struct TlsListener {
    listener: TcpListener,
    config: Arc<ServerConfig>,
}

/// A server whose listeners are bound.
pub struct Server {
    /// Plain RTMP, unless `rtmp.plain` is off.
    rtmp: Option<TcpListener>,
    /// RTMPS, when `rtmp.tls_port` is set.
    rtmps: Option<TlsListener>,
    /// Plain HTTP, unless `http.plain` is off.
    http: Option<TcpListener>,
    /// HTTPS, when `http.tls_port` is set.
    https: Option<TlsListener>,
    /// The certificate the TLS listeners present, reloaded while they run.
    certs: Option<Arc<CertStore>>,
    max_rtmp_connections: usize,
    conn: Arc<ConnContext>,
    http_ctx: Arc<HttpContext>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    /// The output tasks of every stream.
    outputs: TaskTracker,
    /// The relay tasks of every publish.
    relays: TaskTracker,
    /// The disk writer's task; it ends once every handle is gone and its queue is drained.
    disk: JoinHandle<()>,
    /// The recordings and their writer thread (`None` when `record.path` is unusable).
    recordings: Option<Recordings>,
    record_writer: Option<std::thread::JoinHandle<()>>,
    /// The webhook sender's task, when hooks are configured; it ends the same way.
    hooks: Option<JoinHandle<()>>,
    /// The object storage uploader, when `s3.bucket` is set.
    uploader: Option<crate::storage::Uploader>,
    /// This node's part in a cluster (`cluster.redis`).
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Server {
    /// Binds the listeners the configuration turns on, reads the certificate they present,
    /// and starts the disk writer. Port 0 picks a free port.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let bind = async |port: Option<u16>, option: &str| -> anyhow::Result<Option<TcpListener>> {
            let Some(port) = port else { return Ok(None) };
            match TcpListener::bind((config.bind, port)).await {
                Ok(listener) => Ok(Some(listener)),
                Err(e) => Err(anyhow::anyhow!("{option} {}:{port}: {e}", config.bind)),
            }
        };
        let rtmp = bind(config.rtmp.plain.then_some(config.rtmp.port), "rtmp.port").await?;
        let http = bind(config.http.plain.then_some(config.http.port), "http.port").await?;
        let rtmps_listener = bind(config.rtmp.tls_port.0, "rtmp.tls_port").await?;
        let https_listener = bind(config.http.tls_port.0, "http.tls_port").await?;
        let provider = crate::tls::config::provider();
        let certs = match rtmps_listener.is_some() || https_listener.is_some() {
            true => Some(Arc::new(CertStore::open(
                CertPaths {
                    cert: config.tls.cert.clone(),
                    key: config.tls.key.clone(),
                },
                provider.clone(),
            )?)),
            false => None,
        };
        let tls_listener = |listener: Option<TcpListener>, alpn: &[&[u8]]| {
            let certs = certs.clone()?;
            Some(TlsListener {
                listener: listener?,
                config: crate::tls::config::server(certs, provider.clone(), alpn),
            })
        };
        let rtmps = tls_listener(rtmps_listener, &[]);
        let https = tls_listener(https_listener, &crate::tls::config::HTTP_ALPN);
        let client = crate::auth::http_client(Duration::from_secs(config.auth.timeout))
            .map_err(anyhow::Error::msg)?;
        let checker = KeyChecker::new(&config.auth, client.clone()).map_err(anyhow::Error::msg)?;
        let (hooks, hooks_task) = Hooks::start(config.hooks.urls(), client);
        if !checker.is_enforcing() {
            warn!(
                "no stream-service configured (auth.stream_service): every stream key is accepted"
            );
        } else if !config.auth.playback_id {
            warn!(
                "HLS URLs carry the stream key, so anyone who can watch can publish (and, with \
                 rtmp.takeover on, take the stream over): set auth.playback_id to serve under \
                 the stream-service's playback ids"
            );
        }
        if config.http.api_token.is_empty() && !config.bind.is_loopback() {
            warn!(
                "/api and /metrics are open to anyone who reaches {} (publishers' addresses, \
                 stream names): set http.api_token to require a bearer token",
                config.bind
            );
        }
        if !config.hls.keep {
            let root = MediaRoot::new(config.http.mediaroot.clone());
            let removed = root.remove_stale_streams(&config.rtmp.app);
            if removed > 0 {
                info!(
                    removed,
                    "removed stream folders an earlier run left (hls.keep is off)"
                );
            }
        }
        let metrics = Arc::new(Metrics::default());
        // Object storage: an uploader thread fed by the disk writer's handle. The fence is
        // the cluster's, set once the cluster is made below (none on one node: always
        // write).
        let (uploads, uploader) = if config.s3.enabled() {
            let s3 = config.s3.with_env(|name| std::env::var(name).ok());
            let (uploads, uploader) =
                crate::storage::spawn(&s3, metrics.clone()).map_err(|e| anyhow::anyhow!(e))?;
            info!(
                bucket = %s3.bucket,
                endpoint = %s3.endpoint,
                prefix = %s3.prefix,
                "object storage on"
            );
            (Some(uploads), Some(uploader))
        } else {
            (None, None)
        };
        let (disk_handle, disk) = DiskWriter::spawn(config.http.mediaroot.clone(), DISK_QUEUE);
        let disk_handle = disk_handle.with_uploads(uploads.clone());
        let mut prometheus = metrics.registry(disk_handle.stats());
        let record = config.record.settings(&config.http.mediaroot);
        let (recordings, record_writer) = match Recordings::open(
            record.clone(),
            metrics.clone(),
            hooks.clone(),
        ) {
            Ok((recordings, writer)) => {
                if let Some(uploads) = &uploads {
                    recordings.upload_to(uploads.clone());
                }
                (Some(recordings), Some(writer))
            }
            Err(e) if record.enabled => {
                anyhow::bail!("record.path {}: {e}", record.path.display())
            }
            Err(e) => {
                warn!(
                    "record.path {}: {e}: publishes the stream-service asks to record are not recorded",
                    record.path.display()
                );
                (None, None)
            }
        };
        let outputs = Outputs::new(
            OutputSettings {
                gop_cache: config.rtmp.gop_cache,
                ..OutputSettings::from_config(&config.hls)
            },
            disk_handle.clone(),
            recordings.clone(),
            metrics.clone(),
        );
        let output_tasks = outputs.tasks();
        let registry = Arc::new(Registry::new(
            config.rtmp.takeover,
            Box::new(move |app, name, key| outputs.create(app, name, key)),
        ));
        let cluster = match config.cluster.redis_url()? {
            None => None,
            Some(redis) => {
                let node_id = match config.cluster.node_id.as_str() {
                    "" => crate::cluster::default_node_id(),
                    id => id.to_string(),
                };
                let url = match config.cluster.advertise.as_str() {
                    "" => crate::cluster::default_advertise(
                        config.bind,
                        address(http.as_ref()),
                        address(https.as_ref().map(|t| &t.listener)),
                    ),
                    url => url.trim_end_matches('/').to_string(),
                };
                let cluster = crate::cluster::Cluster::new(
                    crate::cluster::ClusterSettings {
                        redis,
                        namespace: config.cluster.namespace.clone(),
                        node: crate::cluster::Node { id: node_id, url },
                        lease: Duration::from_secs(config.cluster.lease),
                        forward: config.cluster.forward,
                    },
                    registry.clone(),
                    crate::cluster::http_client().map_err(anyhow::Error::msg)?,
                );
                cluster.metrics.register(&mut prometheus);
                // The bucket's playlists are written only under this node's lease.
                if let Some(uploads) = &uploads {
                    uploads.fence_with(cluster.clone());
                }
                Some(cluster)
            }
        };
        let shutdown = CancellationToken::new();
        let relays = Relays::new(config.relay.templates()?, metrics.clone());
        let relay_tasks = relays.tasks();
        let ingest = Ingest::new(
            IngestSettings {
                app: config.rtmp.app.clone(),
                playback_id: config.auth.playback_id,
                recheck: (config.auth.recheck > 0)
                    .then(|| Duration::from_secs(config.auth.recheck)),
                track_limits: TrackLimits {
                    video: config.rtmp.max_video_tracks,
                    audio: config.rtmp.max_audio_tracks,
                },
                cmaf: config.hls.cmaf,
                failure_limit: FailureLimit::from_config(&config.auth),
                relays,
                record: config.record.enabled,
                takeover: config.rtmp.takeover,
                cluster: cluster.clone(),
                thumbnails: config.thumbnail.settings().is_some(),
            },
            checker,
            registry.clone(),
            hooks.clone(),
            metrics.clone(),
        );
        let playback = Playback::new(
            PlaybackSettings {
                app: config.rtmp.app.clone(),
                access: config.rtmp.play,
                token: config.rtmp.play_token.clone(),
                queue: QueueLimits::default(),
            },
            registry.clone(),
            hooks,
            metrics.clone(),
        );
        let started = Instant::now();
        let conn = Arc::new(ConnContext {
            settings: RtmpSettings {
                app: config.rtmp.app.clone(),
                chunk_size: config.rtmp.chunk_size,
                ping: Duration::from_secs(config.rtmp.ping),
                ping_timeout: Duration::from_secs(config.rtmp.ping_timeout),
                handshake_timeout: Duration::from_secs(config.rtmp.handshake_timeout),
            },
            ingest,
            playback: playback.clone(),
            bytes_in: metrics.rtmp_bytes_in_total.clone(),
            tls_failures: metrics.tls_handshake_failures("rtmps"),
            shutdown: shutdown.clone(),
            epoch: started,
        });
        let http_ctx = Arc::new(HttpContext {
            app: config.rtmp.app.clone(),
            mediaroot: config.http.mediaroot.clone(),
            keep: config.hls.keep,
            hls_time: config.hls.time,
            allow_origin: config.http.allow_origin.clone(),
            max_connections: config.http.max_connections,
            api_token: ApiToken::new(&config.http.api_token),
            registry: registry.clone(),
            playback,
            metrics: metrics.clone(),
            prometheus,
            disk_stats: disk_handle.stats(),
            started,
            started_wall: SystemTime::now(),
            disk_usage: Mutex::new(None),
            history: Mutex::new(Default::default()),
            recordings: recordings.clone(),
            shutdown: shutdown.clone(),
            cluster: cluster.clone(),
            thumbnails: match config.thumbnail.settings() {
                Some(settings) => Some(Arc::new(
                    crate::thumbnail::service::Thumbnailer::start(settings, metrics.clone())
                        .map_err(|e| anyhow::anyhow!("thumbnail workers: {e}"))?,
                )),
                None => None,
            },
        });
        Ok(Server {
            rtmp,
            rtmps,
            http,
            https,
            certs,
            max_rtmp_connections: config.rtmp.max_connections,
            conn,
            http_ctx,
            registry,
            metrics,
            shutdown,
            outputs: output_tasks,
            relays: relay_tasks,
            disk,
            recordings,
            record_writer,
            hooks: hooks_task,
            uploader,
            cluster,
        })
    }

    /// The plain RTMP listener's address, unless `rtmp.plain` is off.
    pub fn rtmp_addr(&self) -> Option<SocketAddr> {
        address(self.rtmp.as_ref())
    }

    /// The RTMPS listener's address, when `rtmp.tls_port` is set.
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        address(self.rtmps.as_ref().map(|t| &t.listener))
    }

    /// The plain HTTP listener's address, unless `http.plain` is off.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        address(self.http.as_ref())
    }

    /// The HTTPS listener's address, when `http.tls_port` is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        address(self.https.as_ref().map(|t| &t.listener))
    }

    /// Serves until `stop` is cancelled, then ends every live stream (EXT-X-ENDLIST), lets
    /// the disk writer flush, and returns.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let listening = [
            ("rtmp", self.rtmp_addr()),
            ("rtmps", self.rtmps_addr()),
            ("http", self.http_addr()),
            ("https", self.https_addr()),
        ]
        .iter()
        .filter_map(|(name, addr)| Some(format!("{name}={}", (*addr)?)))
        .collect::<Vec<_>>()
        .join(" ");
        let Server {
            rtmp,
            rtmps,
            http,
            https,
            certs,
            max_rtmp_connections,
            conn,
            http_ctx,
            registry,
            metrics,
            shutdown,
            outputs,
            relays,
            disk,
            recordings,
            record_writer,
            hooks,
            uploader,
            cluster,
        } = self;
        let hangups = crate::tls::watch::hangups();
        info!("listening {listening}");
        let tasks = TaskTracker::new();
        // Plain and TLS connections share one cap per side.
        let rtmp_places = Arc::new(Semaphore::new(max_rtmp_connections));
        let admission = |listener, protocol| {
            let metrics = ConnectionMetrics {
                total: metrics.rtmp_connections_total.clone(),
                open: metrics.rtmp_connections.clone(),
                refused: metrics.rtmp_connections_refused_total.clone(),
            };
            let places = rtmp_places.clone();
            Admission::new(listener, places, protocol, "rtmp.max_connections", metrics)
        };
        if let Some(listener) = rtmp {
            let admission = admission(listener, "RTMP");
            tasks.spawn(accept_rtmp(admission, None, conn.clone(), tasks.clone()));
        }
        if let Some(TlsListener { listener, config }) = rtmps {
            let admission = admission(listener, "RTMPS");
            tasks.spawn(accept_rtmp(
                admission,
                Some(config),
                conn.clone(),
                tasks.clone(),
            ));
        }
        tasks.spawn(sweep(
            registry.clone(),
            conn.ingest.clone(),
            metrics,
            shutdown.clone(),
        ));
        tasks.spawn(crate::tls::watch::run(certs, hangups, shutdown.clone()));
        let cluster_tasks = cluster.as_ref().map(|c| c.spawn(shutdown.clone()));
        let http = serve_http_apart(http, https.map(|t| (t.listener, t.config)), http_ctx)?;

        stop.cancelled().await;
        info!("stopping: ending live streams");
        shutdown.cancel();
        tasks.close();
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        if tokio::time::timeout_at(deadline, tasks.wait())
            .await
            .is_err()
        {
            warn!("connections still open after {STOP_GRACE:?}; stopping anyway");
        }
        // Every publish has ended: the outputs finish what they were given (the last
        // segments, EXT-X-ENDLIST) and end.
        registry.close_all();
        outputs.close();
        if tokio::time::timeout_at(deadline, outputs.wait())
            .await
            .is_err()
        {
            warn!("outputs still writing after {STOP_GRACE:?}; stopping anyway");
        }
        // Relays saw their publishes end and unpublish from their targets.
        relays.close();
        if tokio::time::timeout_at(deadline, relays.wait())
            .await
            .is_err()
        {
            warn!("relays still unpublishing after {STOP_GRACE:?}; stopping anyway");
        }
        // The outputs parked their recordings: the recording writer closes them and ends.
        if let Some(recordings) = recordings {
            recordings.stop();
        }
        if let Some(writer) = record_writer {
            let done = tokio::task::spawn_blocking(move || writer.join());
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                warn!("recording writer did not finish before the stop deadline");
            }
        }
        let http_done = tokio::task::spawn_blocking(move || http.join());
        if tokio::time::timeout_at(deadline, http_done).await.is_err() {
            warn!("HTTP connections still open after {STOP_GRACE:?}; stopping anyway");
        }
        // The heartbeat removed this node's record; the leases were given back as their
        // publishes ended. The cluster holds the registry too.
        for task in cluster_tasks.into_iter().flatten() {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
        drop(cluster);
        // Dropping the last handles (the registry's streams hold the disk writer's) lets the
        // writer drain its queue and end.
        drop(registry);
        drop(conn);
        if tokio::time::timeout_at(deadline, disk).await.is_err() {
            warn!("disk writer did not flush before the stop deadline");
        }
        if let Some(hooks) = hooks
            && tokio::time::timeout_at(deadline, hooks).await.is_err()
        {
            warn!("webhooks still unsent at the stop deadline");
        }
        // The last playlists (EXT-X-ENDLIST) go up, within what is left of the grace.
        if let Some(uploader) = uploader {
            let within = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _ = tokio::task::spawn_blocking(move || uploader.stop(within)).await;
        }
        info!("stopped");
        Ok(())
    }
}

/// Serves HTTP on threads of its own, so that thousands of players fetching segments never
/// compete with ingest for its thread: the RTMP connections run on the caller's runtime, HTTP
/// on a multi-threaded runtime with a worker per core. Low-Latency players come in bursts
/// (every player of a stream is answered when its part lands), and a worker per core, not
/// one fewer, keeps the last of a burst answered soon (on 2 cores with 1,000 such players,
/// the 99th percentile from a part's last frame to a player's answer fell from 25 to 18 ms).
fn serve_http_apart(
    http: Option<TcpListener>,
    https: Option<(TcpListener, Arc<ServerConfig>)>,
    ctx: Arc<HttpContext>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let http = http.map(|l| l.into_std()).transpose()?;
    let https = https
        .map(|(l, c)| Ok::<_, std::io::Error>((l.into_std()?, c)))
        .transpose()?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("http")
        .enable_all()
        .build()?;
    Ok(std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(crate::http::sampler::run(ctx.clone()));
                // Plain and TLS connections share one cap.
                let places = Arc::new(Semaphore::new(ctx.max_connections));
                let plain = http.map(|listener| {
                    crate::http::serve(listener, None, ctx.clone(), places.clone())
                });
                let tls = https.map(|(listener, config)| {
                    crate::http::serve(listener, Some(config), ctx.clone(), places.clone())
                });
                let run = |serving: Option<_>| async move {
                    if let Some(serving) = serving
                        && let Err(e) = serving.await
                    {
                        warn!("HTTP listener: {e}");
                    }
                };
                tokio::join!(run(plain), run(tls));
            });
        })?)
}

/// Accepts RTMP connections, one task each, plain or (with `tls`) RTMPS.
async fn accept_rtmp(
    mut admission: Admission,
    tls: Option<Arc<ServerConfig>>,
    ctx: Arc<ConnContext>,
    tasks: TaskTracker,
) {
    while let Some(Admitted {
        socket,
        peer,
        place,
    }) = admission.next(&ctx.shutdown).await
    {
        let transport = match &tls {
            None => Transport::plain(socket),
            Some(config) => match Transport::tls(socket, config.clone()) {
                Ok(t) => t,
                Err(e) => {
                    warn!(%peer, "RTMPS connection not started: {e}");
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        let span = match tls {
            None => tracing::info_span!("rtmp", %peer),
            Some(_) => tracing::info_span!("rtmps", %peer),
        };
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                crate::rtmp::conn::serve(transport, peer, ctx).await;
                drop(place);
            },
            span,
        ));
    }
}

/// A bound listener's address.
fn address(listener: Option<&TcpListener>) -> Option<SocketAddr> {
    listener.and_then(|l| l.local_addr().ok())
}

/// Drops segments and ended streams whose availability period is over, and failed-publish
/// counts that expired, and updates the segment memory gauges.
async fn sweep(
    registry: Arc<Registry>,
    ingest: Ingest,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    let mut heap = HeapTrim::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = Instant::now();
                let held = registry.sweep(now);
                ingest.sweep(now);
                heap.note(now);
                metrics.segment_memory_bytes.set(held as i64);
                let spare = SEGMENT_BUFFERS.spare_bytes() + PART_BUFFERS.spare_bytes();
                metrics.segment_spare_bytes.set(spare as i64);
            }
            _ = shutdown.cancelled() => return,
        }
    }
}
