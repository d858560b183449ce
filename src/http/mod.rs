//! HTTP delivery: HLS playlists and segments for web players, the stats API, health and
//! metrics for operators.

mod api;
pub mod cors;
mod hls;
mod ops;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::debug;

use crate::listener::{Admission, Admitted, ConnectionMetrics};
use crate::server::Shared;

/// How long a client may take to send a request's headers (and, on a kept-alive
/// connection, to start the next request): a client that dribbles headers forever is
/// dropped after this.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head accepted. Players send a few hundred bytes.
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// How long a stop waits for HTTP responses in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The whole HTTP interface.
pub fn router(shared: Arc<Shared>) -> Router {
    let cors = cors::AllowedOrigins::parse(&shared.config.http.allow_origin)
        .expect("validated with the config")
        .layer();
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/api/streams", get(api::streams))
        .route("/api/streams/{name}", get(api::stream))
        .route("/api/server", get(api::server))
        .route("/{app}/{name}/{file}", get(hls::file))
        .layer(cors)
        .with_state(shared)
}

/// Serves HTTP/1.1 on `listener` until the server stops: at most `http.max_connections`
/// connections, each with a header time-out, finished gracefully at the stop.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let app = router(shared.clone());
    let cap = shared.config.http.max_connections;
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
