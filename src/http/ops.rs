//! Endpoints for operators: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpContext;

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the listeners are up, the media root is writable and, in a cluster, its
/// Redis answers (without it new publishes are refused).
pub async fn readyz(State(shared): State<Arc<HttpContext>>) -> Response {
    if let Some(Err(why)) = shared.cluster.as_ref().map(|c| c.ready()) {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response();
    }
    let root = shared.mediaroot.clone();
    // A name of its own per probe: concurrent probes must not remove each other's file.
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = root.join(format!(".rtmp-server-ready-{}-{n}", std::process::id()));
    let writable = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&root)?;
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(&probe)
    })
    .await;
    match writable {
        Ok(Ok(())) if !shared.shutdown.is_cancelled() => {
            (StatusCode::OK, "ready\n").into_response()
        }
        Ok(Ok(())) => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("media root not writable: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("readiness probe failed: {e}\n"),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(shared): State<Arc<HttpContext>>) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &shared.prometheus) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
