//! `GET /{app}/{name}/thumbnail.jpg[?width=N]`: the stream's latest keyframe as a JPEG (with
//! `keyframe=first`, the first keyframe of its current publish, as the `on_publish` webhook
//! names it). Open like playback; made by `thumbnail::service`.
//!
//! A width asked for is rounded up to the next of 160, 320, 480, 640, 960, 1280 and 1920
//! (`thumbnail::scale::WIDTHS`), never above the picture's own, so a client cycling widths
//! makes at most those few files of a picture (and spends the shared CPU budget on no more).
//!
//! 404 with a JSON reason when there is no such stream, no keyframe yet, or no decoder for
//! the stream's codec; 500 with the decoder's reason when the keyframe does not decode; 503
//! with `Retry-After` when the CPU budget is spent and nothing is cached; 400 for a width
//! outside 16 to 1920.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpContext;
use crate::hub::key::StreamKey;
use crate::thumbnail::cache::Which;
use crate::thumbnail::scale::{MAX_WIDTH, MIN_WIDTH};
use crate::thumbnail::service::Outcome;

/// How long a thumbnail may be cached: a few seconds, as a new one may be made every
/// `thumbnail.interval`.
const MAX_AGE: Duration = Duration::from_secs(5);

fn error(status: StatusCode, reason: &str) -> Response {
    let mut response = super::json_error(status, reason);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// What the query asks for: a width, and which keyframe.
fn parse_query(query: &str) -> Result<(Option<u32>, Which), String> {
    let (mut width, mut which) = (None, Which::Latest);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "width" => {
                let w = value
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (MIN_WIDTH..=MAX_WIDTH).contains(w))
                    .ok_or_else(|| {
                        format!("width must be a whole number from {MIN_WIDTH} to {MAX_WIDTH}")
                    })?;
                width = Some(w);
            }
            "keyframe" => {
                which = match value {
                    "latest" => Which::Latest,
                    "first" => Which::First,
                    _ => return Err("keyframe must be latest or first".into()),
                }
            }
            // Other parameters (cache busters) are ignored.
            _ => {}
        }
    }
    Ok((width, which))
}

/// `GET|HEAD /{app}/{name}/thumbnail.jpg`.
pub async fn thumbnail(
    State(shared): State<Arc<HttpContext>>,
    Path((app, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(service) = shared.thumbnails.as_ref() else {
        return error(
            StatusCode::NOT_FOUND,
            "thumbnails are off here (thumbnail.workers = 0)",
        );
    };
    let (width, which) = match parse_query(query.as_deref().unwrap_or_default()) {
        Ok(q) => q,
        Err(reason) => return error(StatusCode::BAD_REQUEST, &reason),
    };
    let stream = (app == shared.app && StreamKey::parse(&name).is_ok())
        .then(|| shared.registry.get(&app, &name))
        .flatten();
    let Some(stream) = stream else {
        return error(StatusCode::NOT_FOUND, "no live stream of that name");
    };
    let label = format!("{app}/{name}");
    match service.get(&stream.thumbnails, &label, which, width).await {
        Outcome::Jpeg(jpeg) => {
            shared
                .metrics
                .http_bytes_out_total
                .inc_by(jpeg.len() as u64);
            (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
                    (
                        header::CACHE_CONTROL,
                        HeaderValue::from_str(&format!("public, max-age={}", MAX_AGE.as_secs()))
                            .expect("ASCII"),
                    ),
                    (header::CONTENT_LENGTH, HeaderValue::from(jpeg.len())),
                ],
                Body::from(jpeg),
            )
                .into_response()
        }
        Outcome::Failed(reason) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the stream's keyframe did not decode: {reason}"),
        ),
        Outcome::NoKeyframe => error(
            StatusCode::NOT_FOUND,
            "no keyframe yet: the stream has not sent a video keyframe",
        ),
        Outcome::NoDecoder(codec) => error(
            StatusCode::NOT_FOUND,
            &format!("the stream's video is {codec}: thumbnails are made of H.264 only"),
        ),
        Outcome::Busy(retry) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the thumbnail CPU budget (thumbnail.cpu) is spent: try again later",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry.as_secs_f64().ceil() as u64),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_widths_are_bounded() {
        assert_eq!(parse_query(""), Ok((None, Which::Latest)));
        assert_eq!(parse_query("width=320"), Ok((Some(320), Which::Latest)));
        assert_eq!(
            parse_query("t=123&keyframe=first&width=16"),
            Ok((Some(16), Which::First))
        );
        for bad in [
            "width=15",
            "width=1921",
            "width=abc",
            "width=",
            "keyframe=last",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }
}
