//! Recordings over HTTP: the list and deletion (operator routes, `/api/recordings`), each
//! recording's VOD playlist and its media file (`/recordings/{id}/index.m3u8`,
//! `/recordings/{id}/media.mp4`, the playlist's byte ranges) and the whole recording as
//! one download (`/recordings/{id}.mp4`), with range requests. Media is streamed from its
//! file, never held in memory. A request's id reaches the file system only when the catalog
//! has a recording of that id.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::hls::not_found;
use super::range::{Wanted, wanted};
use super::{HttpContext, json_error};
use crate::record::journal::State as RecordingState;
use crate::record::recorder::is_recording_id;
use crate::record::{DeleteError, Recordings};

fn recordings(shared: &HttpContext) -> Option<&Recordings> {
    shared.recordings.as_ref()
}

/// `GET /api/recordings`: every recording, oldest first.
pub async fn list(State(shared): State<Arc<HttpContext>>) -> Response {
    let list = recordings(&shared)
        .map(Recordings::list)
        .unwrap_or_default();
    Json(serde_json::json!({ "recordings": list })).into_response()
}

/// `GET /api/recordings/{id}`.
pub async fn one(State(shared): State<Arc<HttpContext>>, Path(id): Path<String>) -> Response {
    match recordings(&shared).and_then(|r| r.get(&id)) {
        Some(entry) => Json(entry).into_response(),
        None => json_error(StatusCode::NOT_FOUND, "no recording of that id"),
    }
}

/// `DELETE /api/recordings/{id}`: only with `http.api_token` set (the operator routes
/// check it); a recording being written is not deleted.
pub async fn delete(State(shared): State<Arc<HttpContext>>, Path(id): Path<String>) -> Response {
    if let Some(refused) =
        super::bearer::control_refused(shared.api_token.as_ref(), "deleting recordings")
    {
        return refused;
    }
    let Some(recordings) = recordings(&shared) else {
        return json_error(StatusCode::NOT_FOUND, "no recording of that id");
    };
    match recordings.delete(&id).await {
        Ok(()) => {
            tracing::info!(recording = %id, "recording deleted through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(DeleteError::NotFound) => json_error(StatusCode::NOT_FOUND, "no recording of that id"),
        Err(DeleteError::Recording) => json_error(
            StatusCode::CONFLICT,
            "the recording is still being written (or waits for its publish to continue)",
        ),
        Err(DeleteError::Failed(why)) => {
            tracing::error!(recording = %id, "recording not deleted: {why}");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, &why)
        }
    }
}

/// `GET /recordings/{id}.mp4`: the whole recording, as a file to save.
pub async fn download(
    State(shared): State<Arc<HttpContext>>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match file.strip_suffix(".mp4") {
        Some(id) => media(&shared, id, &headers, true).await,
        None => not_found(),
    }
}

/// `GET /recordings/{id}/{file}`: the VOD playlist or the media file it refers to.
pub async fn file(
    State(shared): State<Arc<HttpContext>>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match file.as_str() {
        crate::record::playlist::MEDIA_FILE => media(&shared, &id, &headers, false).await,
        "index.m3u8" => playlist(&shared, &id).await,
        _ => not_found(),
    }
}

/// A closed recording never changes: caches may keep it. One being written may grow.
fn cache_control(state: RecordingState) -> HeaderValue {
    HeaderValue::from_static(match state {
        RecordingState::Recording => "no-cache",
        _ => "public, max-age=86400",
    })
}

async fn playlist(shared: &HttpContext, id: &str) -> Response {
    let Some(recordings) = recordings(shared).filter(|_| is_recording_id(id)) else {
        return not_found();
    };
    let Some(entry) = recordings.get(id) else {
        return not_found();
    };
    let (r, id_owned) = (recordings.clone(), id.to_string());
    let text = tokio::task::spawn_blocking(move || r.playlist(&id_owned))
        .await
        .ok()
        .flatten();
    let Some(text) = text else {
        return not_found();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            ),
            (header::CACHE_CONTROL, cache_control(entry.state)),
        ],
        text.to_string(),
    )
        .into_response()
}

/// The recording's media file, up to the bytes its journal accounts for, whole or the
/// range asked for.
async fn media(shared: &HttpContext, id: &str, headers: &HeaderMap, attachment: bool) -> Response {
    let Some(recordings) = recordings(shared).filter(|_| is_recording_id(id)) else {
        return not_found();
    };
    let (Some(entry), Some(folder)) = (recordings.get(id), recordings.folder(id)) else {
        return not_found();
    };
    let len = entry.bytes;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, first, count) = match wanted(range, len) {
        Wanted::Whole => (StatusCode::OK, 0, len),
        Wanted::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        Wanted::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                "the range starts beyond the end of the recording\n",
            )
                .into_response();
        }
    };
    let path = folder.join(crate::record::playlist::MEDIA_FILE);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(recording = %id, "recording's media file does not open: {e}");
            return not_found();
        }
    };
    if first > 0
        && let Err(e) = file.seek(std::io::SeekFrom::Start(first)).await
    {
        tracing::warn!(recording = %id, "recording's media file does not seek: {e}");
        return not_found();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        file.take(count),
        64 * 1024,
    ));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, count)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, cache_control(entry.state));
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{}/{len}", first + count - 1),
        );
    }
    if attachment {
        response = response.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.mp4\"", entry.id),
        );
    }
    response.body(body).unwrap_or_else(|_| not_found())
}
