//! The operator's controls over live streams: stop a publish, start or stop recording it.
//! Behind `http.api_token` with the rest of `/api/*`, and refused (403) on a server without
//! one, as deleting a recording is (`bearer::control_refused`).
//!
//! Each only sets what the ingest side follows on its own runtime (the publisher's stop
//! signal, the stream's recorded flag): nothing here waits on the ingest.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tracing::info;

use super::HttpContext;
use super::api::NOT_LIVE;
use super::api::recording_state;
use super::bearer::control_refused;
use super::json_error;
use crate::hub::stop::StopReason;
use crate::hub::stream::{Publisher, Stream};

/// Who asked (the client's address), for the log.
fn requester(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".into(), |ConnectInfo(peer)| peer.to_string())
}

/// The live stream `name` and its publisher, for the control `what`: 404 when it is not
/// live here, then 403 on a server without `http.api_token` (`control_refused`).
fn controlled(
    shared: &HttpContext,
    name: &str,
    what: &str,
) -> Result<(Arc<Stream>, Publisher), Box<Response>> {
    let live = shared
        .registry
        .get(&shared.app, name)
        .and_then(|stream| Some((stream.publisher()?, stream)));
    let Some((publisher, stream)) = live else {
        return Err(Box::new(json_error(StatusCode::NOT_FOUND, NOT_LIVE)));
    };
    match control_refused(shared.api_token.as_ref(), what) {
        Some(refused) => Err(Box::new(refused)),
        None => Ok((stream, publisher)),
    }
}

/// `POST /api/streams/{name}/stop`: ends the publisher's connection, with an `onStatus`
/// that tells the encoder the operator stopped the stream ([`StopReason::Operator`]).
pub async fn stop(
    State(shared): State<Arc<HttpContext>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (stream, publisher) = match controlled(&shared, &name, "stopping a stream") {
        Ok(live) => live,
        Err(refused) => return *refused,
    };
    publisher.stop.stop(StopReason::Operator);
    shared.metrics.operator_stops_total.inc();
    info!(
        stream = %stream.name,
        client = %publisher.addr,
        requester = %requester(&request),
        "stream stopped by the operator (API)"
    );
    Json(serde_json::json!({ "stopped": stream.name.as_str() })).into_response()
}

/// Why `stream`'s publish cannot start recording now, if it cannot.
fn cannot_record(shared: &HttpContext, stream: &Stream) -> Option<&'static str> {
    if shared.recordings.is_none() {
        return Some("recordings are unavailable: record.path could not be opened");
    }
    if stream.cmaf.is_none() {
        return Some("recordings are made of the CMAF output's fragments and hls.cmaf is off");
    }
    if !stream.renditions().is_empty() {
        return Some("a multitrack publish is recorded only from its start (record.enabled)");
    }
    None
}

/// `POST /api/streams/{name}/record/start`: records the rest of the publish, from its next
/// segment start (a recording starts at a segment). Answers the stream's `recording`.
pub async fn record_start(
    State(shared): State<Arc<HttpContext>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (stream, publisher) = match controlled(&shared, &name, "starting a recording") {
        Ok(live) => live,
        Err(refused) => return *refused,
    };
    if !stream.is_recorded(publisher.id) {
        if let Some(why) = cannot_record(&shared, &stream) {
            return json_error(StatusCode::CONFLICT, why);
        }
        stream.record(publisher.id);
        info!(
            stream = %stream.name,
            requester = %requester(&request),
            "recording started by the operator (API): from the next segment"
        );
    }
    Json(recording_state(&shared, &stream, publisher.id)).into_response()
}

/// `POST /api/streams/{name}/record/stop`: closes the publish's recording (its playlist
/// written, as at a publish's end, but not kept for a reconnection to continue). Answers
/// the stream's `recording`.
pub async fn record_stop(
    State(shared): State<Arc<HttpContext>>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    let (stream, publisher) = match controlled(&shared, &name, "stopping a recording") {
        Ok(live) => live,
        Err(refused) => return *refused,
    };
    if stream.is_recorded(publisher.id) {
        stream.stop_recording(publisher.id);
        info!(
            stream = %stream.name,
            requester = %requester(&request),
            "recording stopped by the operator (API)"
        );
    }
    Json(recording_state(&shared, &stream, publisher.id)).into_response()
}
