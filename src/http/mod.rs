//! HTTP delivery: HLS playlists and segments and HTTP-FLV/WebSocket-FLV streams for web
//! players, the stats API, health and metrics for operators.

mod api;
pub mod bearer;
mod coalesce;
mod controls;
pub mod cors;
mod flv;
mod hls;
mod idle;
mod ops;
mod range;
mod recordings;
pub mod sampler;
mod thumbnail;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use crate::hls::disk::DiskStats;
use crate::hub::registry::Registry;
use crate::listener::{Admission, Admitted, ConnectionMetrics, Place};
use crate::metrics::Metrics;

/// How long a client may take to send a request's headers (and, on a kept-alive
/// connection, to start the next request): a client that dribbles headers forever is
/// dropped after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted. Players send a few hundred bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long a TLS client may take to complete its handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests one HTTP/2 connection may have in flight at once (RFC 9113 §5.1.2): a player
/// holds a blocking playlist request and a part or two, a page of players a few of each.
const MAX_H2_STREAMS: u32 = 128;

/// How often an HTTP/2 connection that went quiet is pinged, and how long its answer may
/// take before the connection is closed: a peer that vanished frees its place.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// How long a stop waits for HTTP responses in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// What the HTTP side is handed: the streams to serve, the figures to report, and the
/// options it follows.
pub struct HttpContext {
    /// The application name in URLs (`rtmp.app`).
    pub app: String,
    /// Where stream folders are (`http.mediaroot`).
    pub mediaroot: PathBuf,
    /// Files stay on disk after they leave memory (`hls.keep`), and are served from there.
    pub keep: bool,
    /// Target duration assumed before a stream's first segment fixed one (`hls.time`).
    pub hls_time: u32,
    /// CORS allowed origins (`http.allow_origin`).
    pub allow_origin: String,
    /// Most HTTP connections at once (`http.max_connections`).
    pub max_connections: usize,
    /// The bearer token `/api/*` and `/metrics` require (`http.api_token`); `None`: open.
    pub api_token: Option<bearer::ApiToken>,
    pub registry: Arc<Registry>,
    /// Players of HTTP-FLV and WebSocket-FLV.
    pub playback: crate::playback::Playback,
    pub metrics: Arc<Metrics>,
    /// Every metric, for `/metrics`.
    pub prometheus: prometheus_client::registry::Registry,
    pub disk_stats: Arc<DiskStats>,
    pub started: Instant,
    pub started_wall: SystemTime,
    /// The last measured size of the media root's files, and when it was measured.
    pub disk_usage: Mutex<Option<(Instant, u64)>>,
    /// The server's figures every 2 s (the last 5 minutes), taken by `sampler::run`.
    pub history: Mutex<crate::hub::history::History<sampler::ServerSample>>,
    /// The recordings (`None` when `record.path` could not be opened).
    pub recordings: Option<crate::record::Recordings>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
    /// This node's part in a cluster (`cluster.redis`): requests for streams held by
    /// another node are forwarded there (`cluster::forward`).
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// The thumbnail service (`None`: `thumbnail.workers` is 0).
    pub thumbnails: Option<Arc<crate::thumbnail::service::Thumbnailer>>,
}

/// The whole HTTP interface. The operator routes (`/api/*`, `/metrics`) require the bearer
/// token when `http.api_token` is set; playback, health and the dashboard's page and assets
/// (`/`, `/dashboard`, `/dashboard/assets/*`: the page holds no data, it reads the API with
/// the token its viewer enters) are always open.
pub fn router(shared: Arc<HttpContext>) -> Router {
    let cors = cors::AllowedOrigins::parse(&shared.allow_origin)
        .expect("validated with the config")
        .layer();
    let mut operator = Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/api/streams", get(api::streams))
        .route("/api/streams/{name}", get(api::stream))
        .route("/api/streams/{name}/stop", post(controls::stop))
        .route(
            "/api/streams/{name}/record/start",
            post(controls::record_start),
        )
        .route(
            "/api/streams/{name}/record/stop",
            post(controls::record_stop),
        )
        .route("/api/server", get(api::server))
        .route("/api/recordings", get(recordings::list))
        .route(
            "/api/recordings/{id}",
            get(recordings::one).delete(recordings::delete),
        );
    if shared.api_token.is_some() {
        operator = operator.route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            bearer::require_token,
        ));
    }
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .merge(operator)
        .merge(crate::dashboard::routes())
        // `/{app}/{name}.flv`: one path segment (matchit routes no suffix after a
        // parameter), so it cannot be taken for a stream folder's `/{app}/{name}/{file}`.
        .route("/recordings/{file}", get(recordings::download))
        .route("/recordings/{id}/{file}", get(recordings::file))
        .route("/{app}/{file}", get(flv::stream))
        // A static last segment takes precedence over `{file}`.
        .route("/{app}/{name}/thumbnail.jpg", get(thumbnail::thumbnail))
        .route("/{app}/{name}/{file}", get(hls::file))
        .route("/{app}/{name}/{rendition}/{file}", get(hls::rendition_file))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            crate::cluster::forward::middleware,
        ))
        .layer(cors)
        .with_state(shared)
}

/// An error answer of the JSON routes: `{"error": reason}` with `status`.
pub(crate) fn json_error(status: axum::http::StatusCode, reason: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (status, axum::Json(serde_json::json!({ "error": reason }))).into_response()
}

/// What a request's handler may keep of its connection past its answer: a streamed
/// response counts as a request in flight (an HTTP/2 connection that carries only an FLV
/// stream is not idle), and a WebSocket keeps the connection's place under
/// `http.max_connections` after the upgrade took the socket from the HTTP connection.
#[derive(Clone)]
pub(crate) struct ConnectionHold {
    pub requests: Arc<idle::Requests>,
    pub place: Arc<Place>,
}

/// How the connections of one listener are served: HTTP/1.1 (with upgrades, for
/// WebSocket-FLV), and HTTP/2 where TLS agreed on it (ALPN `h2`).
#[derive(Clone)]
struct Protocols {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new() -> Protocols {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEADER_BYTES.max(8192));
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .keep_alive_interval(H2_KEEP_ALIVE)
            .keep_alive_timeout(H2_KEEP_ALIVE);
        Protocols { http1, http2 }
    }
}

/// Serves HTTP on `listener` until the server stops: HTTP/1.1, or with `tls` HTTPS (HTTP/2
/// or HTTP/1.1, as ALPN agrees), while `places` has room (`http.max_connections`, shared by
/// both listeners; a TLS connection holds its place through its handshake), each connection
/// with a time-out for its handshake and its request headers, finished gracefully at the
/// stop.
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<HttpContext>,
    places: Arc<Semaphore>,
) -> std::io::Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let app = router(shared.clone());
    let metrics = ConnectionMetrics {
        total: shared.metrics.http_connections_total.clone(),
        open: shared.metrics.http_connections.clone(),
        refused: shared.metrics.http_connections_refused_total.clone(),
    };
    let protocol = if tls.is_some() { "HTTPS" } else { "HTTP" };
    let mut admission = Admission::new(listener, places, protocol, "http.max_connections", metrics);
    let graceful = GracefulShutdown::new();
    let protocols = Protocols::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let tls_failures = shared.metrics.tls_handshake_failures("https");
    while let Some(Admitted {
        socket,
        peer,
        place,
    }) = admission.next(&shared.shutdown).await
    {
        let requests = idle::Requests::new();
        let place = Arc::new(place);
        let hold = ConnectionHold {
            requests: requests.clone(),
            place: place.clone(),
        };
        let service = TowerToHyperService::new(
            app.clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req.extensions_mut().insert(hold.clone());
                    req
                })
                .map_future({
                    let requests = requests.clone();
                    move |answer| {
                        let in_flight = requests.start();
                        async move {
                            let answered = answer.await;
                            drop(in_flight);
                            answered
                        }
                    }
                }),
        );
        let watcher = graceful.watcher();
        let protocols = protocols.clone();
        let Some(acceptor) = acceptor.clone() else {
            let conn = protocols
                .http1
                .serve_connection(TokioIo::new(socket), service)
                .with_upgrades();
            let stop = shared.shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_http1(conn, watcher, stop).await {
                    debug!(%peer, "HTTP connection ended: {e}");
                }
                drop(place);
            });
            continue;
        };
        let tls_failures = tls_failures.clone();
        let stop = shared.shutdown.clone();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tls_failures.inc();
                    let why = match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                        Some(e) => crate::tls::session::describe(e),
                        None => e.to_string(),
                    };
                    debug!(%peer, "HTTPS connection ended in its TLS handshake: {why}");
                    return;
                }
                Err(_) => {
                    tls_failures.inc();
                    debug!(%peer, "HTTPS connection ended: no TLS handshake within {TLS_HANDSHAKE_TIMEOUT:?}");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            debug!(%peer, "HTTPS connection over {}", if h2 { "HTTP/2" } else { "HTTP/1.1" });
            let ended = if h2 {
                // Fewer, larger TLS writes: see coalesce.rs (1.5x the throughput per core).
                let io = TokioIo::new(coalesce::CoalescingWriter::new(stream));
                let conn = watcher.watch(protocols.http2.serve_connection(io, service));
                tokio::select! {
                    ended = conn => ended,
                    // No request is in flight: closing loses nothing.
                    _ = requests.idle_for(idle::IDLE_LIMIT) => {
                        debug!(%peer, "HTTPS connection closed: no request for {:?}", idle::IDLE_LIMIT);
                        Ok(())
                    }
                }
            } else {
                let io = TokioIo::new(stream);
                let conn = protocols
                    .http1
                    .serve_connection(io, service)
                    .with_upgrades();
                serve_http1(conn, watcher, stop).await
            };
            if let Err(e) = ended {
                debug!(%peer, "HTTPS connection ended: {e}");
            }
            drop(place);
        });
    }
    drop(admission);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("{protocol} connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}

/// Serves an HTTP/1.1 connection that may be upgraded to a WebSocket, and finishes it
/// gracefully when the server stops. hyper-util's watcher does not take upgradeable
/// connections, so the stop is watched here (`stop` is cancelled before the drain starts);
/// `watcher`, held until the connection ends, makes the drain wait for it. An upgraded
/// connection ends here at the upgrade; its WebSocket ends with the server by itself.
async fn serve_http1<I, S>(
    conn: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    watcher: Watcher,
    stop: CancellationToken,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    drop(watcher);
    ended
}
