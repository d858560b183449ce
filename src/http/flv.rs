//! HTTP-FLV and WebSocket-FLV: a live stream as one FLV byte stream, as flv.js, mpegts.js
//! and ffmpeg read it.
//!
//! `GET /{app}/{name}.flv` answers with the stream as an FLV file of no set length (chunked
//! over HTTP/1.1): the FLV header, its audio and video flags from the publish's tracks, and
//! the first PreviousTagSize (FLV 10.1 §E.2), then the tags, each followed by its
//! PreviousTagSize (§E.3), from the player's first keyframe on, as the stream goes (the
//! cached GOP first, when `rtmp.gop_cache` is on). The same path with a WebSocket opening
//! handshake (RFC 6455 §4.2) carries the same bytes as binary messages (§5.6), each a piece
//! of the stream; pings are answered (§5.5.2, §5.5.3), other messages from the client are
//! ignored, and a close frame (§5.5.1) ends it. The name is checked as HLS checks it, and
//! who may play as RTMP players are checked (`rtmp.play`, `?token=`).
//!
//! A task per player writes: it takes the tags the player queued, encodes them into chunks
//! of up to [`CHUNK`] bytes and hands them to the response body (or to the task that owns
//! the WebSocket) through a channel of [`CHANNEL_CHUNKS`] chunks. A client that does not
//! read stops the task at the channel; its player's queue then bounds what it holds
//! (skipping video as it overflows), and a client that takes nothing for [`STALL_LIMIT`] is
//! dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Extension;
use axum::body::{Body, HttpBody};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::debug;

use super::cors::AllowedOrigins;
use super::{ConnectionHold, HttpContext};
use crate::flv::mux::{Accepts, file_header};
use crate::hub::key::StreamKey;
use crate::playback::{PlayError, PlayRefusal, Player, Protocol};

pub const FLV_TYPE: &str = "video/x-flv";

/// Most bytes encoded into one chunk (one HTTP body frame, one WebSocket message), give or
/// take the tag that crosses it.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for the client at most: a client that does not read holds the writer here.
const CHANNEL_CHUNKS: usize = 4;
/// A client that takes nothing for this long while bytes wait for it is dropped.
const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How often the writer looks for a stall.
const STALL_CHECK: Duration = Duration::from_secs(5);
/// Largest message (and frame) a WebSocket client may send: it has nothing to say, so this
/// only bounds what a client can make the server hold (RFC 6455 §10.4).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How long a closing handshake may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a WebSocket may take, once its writer ended, to send what is left and close.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// `GET /{app}/{name}.flv`: the live stream `name` as HTTP-FLV, or as WebSocket-FLV when the
/// request is a WebSocket handshake.
#[allow(clippy::too_many_arguments)]
pub async fn stream(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, file)): Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    hold: Option<Extension<ConnectionHold>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The name is one word of the stream key alphabet, as for HLS: no dot-segment, no
    // slash (decoded from `%2F` or not), nothing over-long; nothing here touches a file.
    let Some(name) = file.strip_suffix(".flv") else {
        return super::hls::not_found();
    };
    if app != ctx.app || StreamKey::parse(name).is_err() {
        return super::hls::not_found();
    }
    let websocket = if is_websocket(&headers) {
        if let Some(refused) = handshake_fault(&ctx, &headers) {
            return refused;
        }
        match upgrade {
            Ok(upgrade) => Some(upgrade),
            Err(rejection) => return bad_handshake(&rejection.body_text()),
        }
    } else {
        None
    };
    let protocol = match websocket {
        Some(_) => Protocol::WsFlv,
        None => Protocol::HttpFlv,
    };
    let opened = ctx
        .playback
        .open(name, query.as_deref(), protocol, Accepts::Everything, peer);
    let player = match opened {
        Ok(player) => player,
        Err(refusal) => return refused(&refusal),
    };
    let hold = hold.map(|Extension(hold)| hold);
    if let Some(upgrade) = websocket {
        // The socket leaves the HTTP connection at the upgrade; its place goes with it.
        let place = hold.map(|hold| hold.place);
        return upgrade
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .on_failed_upgrade(move |e| debug!(%peer, "WebSocket upgrade failed: {e}"))
            .on_upgrade(move |socket| async move {
                let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
                let mut forwarder = std::pin::pin!(forward(socket, rx, peer));
                tokio::select! {
                    // The client left: the player goes with the writer.
                    () = forwarder.as_mut() => {}
                    () = write(ctx, player, tx) => {
                        // What is left goes out, then the closing handshake, unless the
                        // client is stuck.
                        let _ = tokio::time::timeout(FINISH_WAIT, forwarder).await;
                    }
                }
                drop(place);
            });
    }
    // HEAD: what GET would answer, without the stream (the player opens and goes at once).
    if method == Method::HEAD {
        return flv_response(Body::empty());
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    // A request in flight for as long as the stream goes: an HTTP/2 connection carrying it
    // is not idle.
    let busy = hold.map(|hold| hold.requests.start());
    tokio::spawn(async move {
        write(ctx, player, tx).await;
        drop(busy);
    });
    flv_response(Body::new(Chunks(rx)))
}

fn flv_response(body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(FLV_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// A refused play request: its status (404 not live, 403 off or without the token) and why.
fn refused(refusal: &PlayRefusal) -> Response {
    let status = StatusCode::from_u16(refusal.http_status).unwrap_or(StatusCode::FORBIDDEN);
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
        format!("{}\n", refusal.description),
    )
        .into_response()
}

/// Whether a request asks for a WebSocket: `Upgrade: websocket`, or a header only the
/// WebSocket handshake has.
fn is_websocket(headers: &HeaderMap) -> bool {
    let upgrade = headers.get_all(header::UPGRADE).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"websocket"))
    });
    upgrade
        || headers.contains_key(header::SEC_WEBSOCKET_KEY)
        || headers.contains_key(header::SEC_WEBSOCKET_VERSION)
}

/// Checks a WebSocket opening handshake as a server must (RFC 6455 §4.2.1): a GET with
/// `Connection: Upgrade`, `Upgrade: websocket`, a `Sec-WebSocket-Key` of 16 bytes in base64
/// and `Sec-WebSocket-Version: 13`; and, since CORS does not cover WebSockets, that a
/// page's `Origin` is one `http.allow_origin` allows (§10.2). The answer to a handshake
/// that fails here; axum's extractor checks the method and `Connection`/`Upgrade`.
fn handshake_fault(ctx: &HttpContext, headers: &HeaderMap) -> Option<Response> {
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        None => return Some(bad_handshake("no Sec-WebSocket-Key header")),
        Some(key) if !is_handshake_key(key.as_bytes()) => {
            return Some(bad_handshake(
                "Sec-WebSocket-Key is not 16 bytes in base64 (RFC 6455 §4.1)",
            ));
        }
        Some(_) => {}
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Some(bad_handshake("Sec-WebSocket-Version must be 13 (RFC 6455)"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = AllowedOrigins::parse(&ctx.allow_origin).is_ok_and(|a| a.allows(origin));
        if !allowed {
            return Some(
                (
                    StatusCode::FORBIDDEN,
                    [(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
                    "this origin may not play (http.allow_origin)\n",
                )
                    .into_response(),
            );
        }
    }
    None
}

/// A `Sec-WebSocket-Key`: 16 bytes in base64, 22 characters of its alphabet and `==`.
fn is_handshake_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// 400 for a WebSocket handshake the server cannot take, saying why, with the version it
/// speaks (RFC 6455 §4.4).
fn bad_handshake(reason: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            ),
        ],
        format!("bad WebSocket handshake: {reason}\n"),
    )
        .into_response()
}

/// Writes the player's stream as FLV into `tx` until the stream ends (everything sent), the
/// client leaves or stalls, the player falls too far behind, or the server stops. Dropping
/// the player at the end counts it out.
async fn write(ctx: Arc<HttpContext>, mut player: Player, tx: mpsc::Sender<Bytes>) {
    let mut out = BytesMut::new();
    let mut started = false;
    // When the client last took a chunk, or had nothing waiting for it.
    let mut progress = Instant::now();
    let mut check = tokio::time::interval(STALL_CHECK);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        // The header once the first events told what the publish carries (FLV 10.1 §E.2).
        if !started && (player.tracks().is_some() || player.has_queued()) {
            let (audio, video) = player
                .tracks()
                .map_or((true, true), |t| (t.has_audio(), t.has_video()));
            out.extend_from_slice(&file_header(audio, video));
            started = true;
        }
        if started && out.len() < CHUNK {
            player.fill(&mut out, CHUNK, |tag, out| tag.write_file_tag(out));
        }
        if out.is_empty() {
            if player.ended() && !player.has_queued() {
                player.set_reason("the stream ended");
                break;
            }
            progress = Instant::now();
        }
        tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                player.set_reason("the server stops");
                break;
            }
            // The client left: the body (or the WebSocket's forwarder) was dropped.
            _ = tx.closed() => break,
            permit = tx.reserve(), if !out.is_empty() => {
                let Ok(permit) = permit else { break };
                let chunk = out.split().freeze();
                player.wrote(chunk.len());
                permit.send(chunk);
                progress = Instant::now();
            }
            received = player.recv(), if !player.ended() => {
                if let Err(e) = received {
                    player.set_reason(e.to_string());
                    break;
                }
            }
            _ = check.tick() => {
                if !out.is_empty() && progress.elapsed() >= STALL_LIMIT {
                    player.drop_reason("stalled");
                    player.set_reason(PlayError::Stalled(STALL_LIMIT).to_string());
                    break;
                }
            }
        }
    }
}

/// Owns a WebSocket-FLV connection: sends each chunk as one binary message, answers pings,
/// ignores other messages, and ends on the client's close frame, an error, or the writer's
/// end (closing with 1000, normal closure).
async fn forward(mut socket: WebSocket, mut chunks: mpsc::Receiver<Bytes>, peer: SocketAddr) {
    loop {
        tokio::select! {
            chunk = chunks.recv() => {
                let Some(chunk) = chunk else {
                    let close = Message::Close(Some(CloseFrame {
                        code: close_code::NORMAL,
                        reason: "".into(),
                    }));
                    // The closing handshake: ours, then the client's close frame.
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        socket.send(close).await?;
                        while !matches!(socket.recv().await, None | Some(Ok(Message::Close(_)))) {}
                        Ok::<_, axum::Error>(())
                    })
                    .await;
                    return;
                };
                // A client that takes nothing holds this send, and the writer then finds
                // it stalled.
                if let Err(e) = socket.send(Message::Binary(chunk)).await {
                    debug!(%peer, "WebSocket-FLV: sending failed: {e}");
                    return;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Ping(payload))) => {
                    if socket.send(Message::Pong(payload)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) => {
                    // tungstenite queued the close frame in reply (§5.5.1) and sends it
                    // before it reads again; then the connection ends.
                    let _ = tokio::time::timeout(CLOSE_WAIT, socket.recv()).await;
                    return;
                }
                Some(Ok(Message::Text(text))) => {
                    debug!(%peer, bytes = text.len(), "WebSocket-FLV: a text message from the client ignored");
                }
                Some(Ok(Message::Binary(data))) => {
                    debug!(%peer, bytes = data.len(), "WebSocket-FLV: a binary message from the client ignored");
                }
                Some(Err(e)) => {
                    debug!(%peer, "WebSocket-FLV: reading failed: {e}");
                    return;
                }
                None => return,
            }
        }
    }
}

/// The HTTP-FLV response body: the chunks the writer sends, until it ends.
struct Chunks(mpsc::Receiver<Bytes>);

impl HttpBody for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(hyper::body::Frame::data(c))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_keys_are_16_bytes_in_base64() {
        // RFC 6455 §1.3's example key.
        assert!(is_handshake_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            &b""[..],
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZSBub25jZQ===",
            b"dGhlIHNhbXBsZSBub25jZ%==",
            b"dGhlIHNhbXBsZSBub25jZUFB",
            b"c2hvcnQ=",
        ] {
            assert!(!is_handshake_key(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn websocket_requests_are_told_apart() {
        let mut h = HeaderMap::new();
        assert!(!is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket(&h));
        h.insert(header::UPGRADE, HeaderValue::from_static("foo, WebSocket"));
        assert!(is_websocket(&h));
        let mut h = HeaderMap::new();
        h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
        assert!(is_websocket(&h));
    }
}
