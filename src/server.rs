//! The running server: builds each layer with the handles it uses, binds the listeners, and
//! stops in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpListener;
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
use crate::rtmp::conn::{ConnContext, RtmpSettings};
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

/// A server whose listeners are bound.
pub struct Server {
    rtmp: TcpListener,
    http: TcpListener,
    max_rtmp_connections: usize,
    conn: Arc<ConnContext>,
    http_ctx: Arc<HttpContext>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    /// The output tasks of every stream.
    outputs: TaskTracker,
    /// The disk writer's task; it ends once every handle is gone and its queue is drained.
    disk: JoinHandle<()>,
    /// The webhook sender's task, when hooks are configured; it ends the same way.
    hooks: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds both listeners and starts the disk writer. Port 0 picks a free port.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let rtmp = TcpListener::bind((config.bind, config.rtmp.port)).await?;
        let http = TcpListener::bind((config.bind, config.http.port)).await?;
        let client = crate::auth::http_client(Duration::from_secs(config.auth.timeout))
            .map_err(anyhow::Error::msg)?;
        let checker = KeyChecker::new(&config.auth, client.clone()).map_err(anyhow::Error::msg)?;
        let (hooks, hooks_task) =
            Hooks::start(&config.hooks.on_publish, &config.hooks.on_unpublish, client);
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
                http.local_addr()?
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
        let (disk_handle, disk) = DiskWriter::spawn(config.http.mediaroot.clone(), DISK_QUEUE);
        let metrics = Arc::new(Metrics::default());
        let prometheus = metrics.registry(disk_handle.stats());
        let outputs = Outputs::new(
            OutputSettings::from_config(&config.hls),
            disk_handle.clone(),
            metrics.clone(),
        );
        let output_tasks = outputs.tasks();
        let registry = Arc::new(Registry::new(
            config.rtmp.takeover,
            Box::new(move |app, name, key| outputs.create(app, name, key)),
        ));
        let shutdown = CancellationToken::new();
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
            },
            checker,
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
            bytes_in: metrics.rtmp_bytes_in_total.clone(),
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
            metrics: metrics.clone(),
            prometheus,
            disk_stats: disk_handle.stats(),
            started,
            started_wall: SystemTime::now(),
            disk_usage: Mutex::new(None),
            shutdown: shutdown.clone(),
        });
        Ok(Server {
            rtmp,
            http,
            max_rtmp_connections: config.rtmp.max_connections,
            conn,
            http_ctx,
            registry,
            metrics,
            shutdown,
            outputs: output_tasks,
            disk,
            hooks: hooks_task,
        })
    }

    pub fn rtmp_addr(&self) -> SocketAddr {
        self.rtmp
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `stop` is cancelled, then ends every live stream (EXT-X-ENDLIST), lets
    /// the disk writer flush, and returns.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Server {
            rtmp,
            http,
            max_rtmp_connections,
            conn,
            http_ctx,
            registry,
            metrics,
            shutdown,
            outputs,
            disk,
            hooks,
        } = self;
        info!(rtmp = %rtmp.local_addr()?, http = %http.local_addr()?, "listening");
        let tasks = TaskTracker::new();
        let connections = ConnectionMetrics {
            total: metrics.rtmp_connections_total.clone(),
            open: metrics.rtmp_connections.clone(),
            refused: metrics.rtmp_connections_refused_total.clone(),
        };
        tasks.spawn(accept_rtmp(
            rtmp,
            conn.clone(),
            max_rtmp_connections,
            connections,
            tasks.clone(),
        ));
        tasks.spawn(sweep(
            registry.clone(),
            conn.ingest.clone(),
            metrics,
            shutdown.clone(),
        ));
        let http = serve_http_apart(http, http_ctx)?;

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
        let http_done = tokio::task::spawn_blocking(move || http.join());
        if tokio::time::timeout_at(deadline, http_done).await.is_err() {
            warn!("HTTP connections still open after {STOP_GRACE:?}; stopping anyway");
        }
        // Dropping the last handles (the registry's streams hold the disk writer's) lets the
        // writer drain its queue and end.
        drop(registry);
        drop(conn);
        if tokio::time::timeout_at(deadline, disk).await.is_err() {
            warn!("disk writer did not flush before the stop deadline");
        }
        if let Some(hooks) = hooks {
            if tokio::time::timeout_at(deadline, hooks).await.is_err() {
                warn!("webhooks still unsent at the stop deadline");
            }
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
    listener: TcpListener,
    ctx: Arc<HttpContext>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let listener = listener.into_std()?;
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
                match TcpListener::from_std(listener) {
                    Ok(listener) => crate::http::serve(listener, ctx).await,
                    Err(e) => warn!("HTTP listener: {e}"),
                }
            });
        })?)
}

/// Accepts RTMP connections, one task each, at most `cap` at once.
async fn accept_rtmp(
    listener: TcpListener,
    ctx: Arc<ConnContext>,
    cap: usize,
    metrics: ConnectionMetrics,
    tasks: TaskTracker,
) {
    let mut admission = Admission::new(listener, cap, "RTMP", "rtmp.max_connections", metrics);
    while let Some(Admitted {
        socket,
        peer,
        place,
    }) = admission.next(&ctx.shutdown).await
    {
        let ctx = ctx.clone();
        let span = tracing::info_span!("rtmp", %peer);
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                crate::rtmp::conn::serve(socket, peer, ctx).await;
                drop(place);
            },
            span,
        ));
    }
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
