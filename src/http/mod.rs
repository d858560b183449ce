//! HTTP delivery: HLS playlists and segments for web players, health and metrics for
//! operators.

pub mod cors;
mod hls;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tracing::warn;

use crate::server::Shared;

/// The whole HTTP interface.
pub fn router(shared: Arc<Shared>) -> Router {
    let cors = cors::AllowedOrigins::parse(&shared.config.http.allow_origin)
        .expect("validated with the config")
        .layer();
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/{app}/{name}/{file}", get(hls::file))
        .layer(cors)
        .with_state(shared)
}

/// Serves HTTP on `listener` until the server stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let shutdown = shared.shutdown.clone();
    let app = router(shared).into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
    {
        warn!("HTTP server failed: {e}");
    }
}
