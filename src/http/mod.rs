//! HTTP delivery: HLS playlists and segments for web players, the stats API, health and
//! metrics for operators.

mod api;
pub mod bearer;
pub mod cors;
mod hls;
mod ops;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use crate::hls::disk::DiskStats;
use crate::hub::registry::Registry;
use crate::listener::{Admission, Admitted, ConnectionMetrics};
use crate::metrics::Metrics;

/// How long a client may take to send a request's headers (and, on a kept-alive
/// connection, to start the next request): a client that dribbles headers forever is
/// dropped after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted. Players send a few hundred bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;

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
    pub metrics: Arc<Metrics>,
    /// Every metric, for `/metrics`.
    pub prometheus: prometheus_client::registry::Registry,
    pub disk_stats: Arc<DiskStats>,
    pub started: Instant,
    pub started_wall: SystemTime,
    /// The last measured size of the media root's files, and when it was measured.
    pub disk_usage: Mutex<Option<(Instant, u64)>>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
}

/// The whole HTTP interface. The operator routes (`/api/*`, `/metrics`) require the bearer
/// token when `http.api_token` is set; playback and health are always open.
pub fn router(shared: Arc<HttpContext>) -> Router {
    let cors = cors::AllowedOrigins::parse(&shared.allow_origin)
        .expect("validated with the config")
        .layer();
    let mut operator = Router::new()
        .route("/metrics", get(ops::metrics))
        .route("/api/streams", get(api::streams))
        .route("/api/streams/{name}", get(api::stream))
        .route("/api/server", get(api::server));
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
        .route("/{app}/{name}/{file}", get(hls::file))
        .route("/{app}/{name}/{rendition}/{file}", get(hls::rendition_file))
        .layer(cors)
        .with_state(shared)
}

/// Serves HTTP/1.1 on `listener` until the server stops: at most `http.max_connections`
/// connections, each with a header time-out, finished gracefully at the stop.
pub async fn serve(listener: TcpListener, shared: Arc<HttpContext>) {
    let app = router(shared.clone());
    let cap = shared.max_connections;
    let metrics = ConnectionMetrics {
        total: shared.metrics.http_connections_total.clone(),
        open: shared.metrics.http_connections.clone(),
        refused: shared.metrics.http_connections_refused_total.clone(),
    };
    let mut admission = Admission::new(listener, cap, "HTTP", "http.max_connections", metrics);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    while let Some(Admitted {
        socket,
        peer,
        place,
    }) = admission.next(&shared.shutdown).await
    {
        let service =
            app.clone()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                });
        let conn =
            builder.serve_connection(TokioIo::new(socket), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, "HTTP connection ended: {e}");
            }
            drop(place);
        });
    }
    drop(admission);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("HTTP connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}
