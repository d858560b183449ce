//! One RTMP connection: drives the sans-IO handshake and session over a TCP socket, checks
//! and claims the stream a client publishes, and feeds its media to the remuxer.
//!
//! This is the only place RTMP meets tokio. Everything it reads goes through
//! [`Handshake::feed`] and then [`ServerSession::handle_input`]; everything it writes is what
//! those produced, in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::Rejection;
use crate::hooks::{HookEvent, VideoSummary};
use crate::hub::key::StreamKey;
use crate::hub::registry::ClaimError;
use crate::hub::stream::{Publisher, Stream};
use crate::media::RtmpTimestamp;
use crate::remux::{RemuxError, RemuxEvent, Remuxer, TagKind};
use crate::rtmp::amf0::Value;
use crate::rtmp::merged_read::{self, Drained};
use crate::rtmp::{
    Handshake, HandshakeError, MediaKind, ServerSession, SessionConfig, SessionError, SessionEvent,
};
use crate::server::Shared;
use crate::wallclock::rfc3339_millis;

/// Bytes asked of the socket per read. Encoders send in bursts of a few chunks.
const READ_SIZE: usize = 64 * 1024;

/// How long a write to a client may take. What the server writes is small (acks, pings,
/// replies); a client that does not read it for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The Window Acknowledgement Size announced to clients: what nginx-rtmp and SRS announce.
const WINDOW_ACK_SIZE: u32 = 2_500_000;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no handshake and connect within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("connected but not publishing within {0:?}")]
    NoPublish(Duration),
    #[error("silent for {0:?}")]
    Silent(Duration),
    #[error("client did not read for {WRITE_TIMEOUT:?}")]
    WriteTimeout,
    #[error("publish refused: {0}")]
    PublishRefused(String),
    #[error("stream {0}: {1}")]
    Media(String, RemuxError),
}

/// Runs one connection to its end and logs why it ended.
pub async fn serve(socket: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let mut conn = Conn {
        shared,
        peer,
        session: None,
        publishing: None,
        out: BytesMut::new(),
        events: Vec::new(),
        remux_events: Vec::new(),
    };
    let result = conn.run(socket).await;
    conn.stop_publishing();
    match result {
        Ok(()) => debug!("connection closed"),
        Err(ConnError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            debug!("connection closed by the client")
        }
        Err(e) => info!("connection closed: {e}"),
    }
}

/// The stream this connection publishes.
struct Publishing {
    stream: Arc<Stream>,
    publisher: Publisher,
    remuxer: Remuxer,
    bytes: u64,
    keyframe_warned: bool,
    /// The on_publish hook went out (at the first segment); on_unpublish follows it.
    announced: bool,
    /// Stops the periodic key re-check when the publish ends.
    _recheck: Option<tokio_util::sync::DropGuard>,
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    session: Option<ServerSession>,
    publishing: Option<Publishing>,
    out: BytesMut,
    events: Vec<SessionEvent>,
    remux_events: Vec<RemuxEvent>,
}

impl Conn {
    async fn run(&mut self, socket: TcpStream) -> Result<(), ConnError> {
        let (mut rd, mut wr) = socket.into_split();
        let shared = self.shared.clone();
        let cfg = &shared.config.rtmp;
        let handshake_timeout = Duration::from_secs(cfg.handshake_timeout);
        let ping_every = Duration::from_secs(cfg.ping);
        let silence_limit = Duration::from_secs(cfg.ping_timeout);
        // The client must finish the handshake, `connect` and publish within this time.
        let mut publish_deadline = tokio::time::Instant::now() + handshake_timeout;
        let mut input = BytesMut::with_capacity(READ_SIZE);

        let mut handshake = Handshake::new();
        loop {
            input.reserve(READ_SIZE);
            let read = tokio::select! {
                _ = self.shared.shutdown.cancelled() => return Ok(()),
                read = tokio::time::timeout_at(publish_deadline, rd.read_buf(&mut input)) => read,
            };
            let n = read.map_err(|_| ConnError::HandshakeTimeout(handshake_timeout))??;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            self.count_in(n);
            let done = handshake.feed(&mut input, &mut self.out)?;
            self.flush(&mut wr).await?;
            if done {
                break;
            }
        }

        self.session = Some(ServerSession::new(SessionConfig {
            app: cfg.app.clone(),
            chunk_size: cfg.chunk_size,
            window_ack_size: WINDOW_ACK_SIZE,
            peer_bandwidth: WINDOW_ACK_SIZE,
        }));
        let started = Instant::now();
        let mut connected = false;
        let mut last_heard = Instant::now();
        let mut merged = false;
        let mut peer_closed = false;
        let check_every = ping_every.min(silence_limit);
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        loop {
            let session = self.session.as_mut().expect("session set above");
            let decoded = session.handle_input(&mut input, &mut self.out, &mut self.events);
            // Events decoded before an error still happened; then the error ends the
            // connection, after the answers the session wrote (a connect `_error`, a publish
            // refusal) have gone out, so the client learns why.
            let mut result = decoded.map_err(ConnError::from);
            let mut events = std::mem::take(&mut self.events);
            // The session pauses at a publish request until it is answered: after one, what
            // is buffered behind it is read before waiting for more.
            let answered = events
                .iter()
                .any(|e| matches!(e, SessionEvent::PublishRequested { .. }));
            for event in events.drain(..) {
                if matches!(event, SessionEvent::Connected { .. }) {
                    connected = true;
                }
                if let Err(e) = self.on_event(event).await {
                    result = Err(e);
                    break;
                }
            }
            self.events = events;
            let flushed = self.flush(&mut wr).await;
            result?;
            flushed?;
            if answered {
                continue;
            }
            if peer_closed {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }

            let stop = self.publishing.as_ref().map(|p| p.publisher.stop.clone());
            // A publishing connection reads on the merged-read grid (see `merged_read`).
            let merge = self.publishing.is_some();
            if merge != merged {
                merged = merge;
                if !merged {
                    // Stopped publishing: it may publish again, within the same time.
                    publish_deadline = tokio::time::Instant::now() + handshake_timeout;
                }
                if let Err(e) = merged_read::set_low_water(rd.as_ref(), merged) {
                    debug!("receive low-water mark not set: {e}");
                }
            }
            input.reserve(READ_SIZE);
            tokio::select! {
                // Stopping first: once taken over, nothing more of this publisher's media
                // may reach the stream.
                biased;
                _ = cancelled(stop) => {
                    // Taken over by a new connection, or the key was revoked: say so and go.
                    let session = self.session.as_mut().expect("session set above");
                    session.stream_error(
                        "NetStream.Publish.Failed",
                        "the stream was taken over or its key is no longer valid",
                        &mut self.out,
                    );
                    let _ = self.flush(&mut wr).await;
                    return Ok(());
                }
                _ = self.shared.shutdown.cancelled() => {
                    return Ok(());
                }
                read = rd.read_buf(&mut input), if !merged => {
                    let n = read?;
                    if n == 0 {
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                    }
                    self.count_in(n);
                    last_heard = Instant::now();
                }
                _ = tokio::time::sleep_until(merged_read::next_tick(self.shared.started)), if merged => {
                    let (n, closed) = match merged_read::drain(rd.as_ref(), &mut input)? {
                        Drained::Bytes(n) => (n, false),
                        Drained::Closed(n) => (n, true),
                    };
                    if n > 0 {
                        self.count_in(n);
                        last_heard = Instant::now();
                    }
                    // What came before the end is processed first, at the top of the loop.
                    peer_closed = closed;
                }
                _ = tokio::time::sleep_until(publish_deadline), if !merged => {
                    // Playback is not offered: a client is here to publish, and one that
                    // does not holds a connection slot for nothing.
                    return Err(if connected {
                        ConnError::NoPublish(handshake_timeout)
                    } else {
                        ConnError::HandshakeTimeout(handshake_timeout)
                    });
                }
                _ = ping.tick() => {
                    let silent = last_heard.elapsed();
                    if silent >= silence_limit {
                        return Err(ConnError::Silent(silence_limit));
                    }
                    // Only a quiet client is pinged: a publisher sending media is plainly
                    // alive, and bytes it does not read before it closes make its kernel
                    // reset the connection, which discards the end of its stream here.
                    if silent >= ping_every {
                        let ms = started.elapsed().as_millis() as u32;
                        let session = self.session.as_mut().expect("session set above");
                        session.ping_request(ms, &mut self.out);
                        self.flush(&mut wr).await?;
                    }
                }
            }
        }
    }

    fn count_in(&self, n: usize) {
        self.shared.metrics.rtmp_bytes_in_total.inc_by(n as u64);
    }

    async fn flush(&mut self, wr: &mut OwnedWriteHalf) -> Result<(), ConnError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let bytes = self.out.split();
        tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes))
            .await
            .map_err(|_| ConnError::WriteTimeout)??;
        Ok(())
    }

    async fn on_event(&mut self, event: SessionEvent) -> Result<(), ConnError> {
        match event {
            SessionEvent::Connected {
                app,
                tc_url,
                flash_ver,
            } => {
                debug!(app, tc_url, flash_ver, "connected");
            }
            SessionEvent::PublishRequested {
                stream_key,
                publish_type,
                ..
            } => {
                self.publish(&stream_key, &publish_type).await?;
            }
            SessionEvent::Metadata { properties, .. } => {
                if let Some(p) = &mut self.publishing {
                    let get =
                        |name: &str| properties.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                    let (video, audio) =
                        (get("videocodecid").is_some(), get("audiocodecid").is_some());
                    if video || audio {
                        p.remuxer.expect_tracks(video, audio);
                    }
                    let encoder = get("encoder").and_then(|v| v.as_str()).map(str::to_string);
                    let frame_rate =
                        get("framerate")
                            .or_else(|| get("videoframerate"))
                            .and_then(|v| match v {
                                Value::Number(n) if n.is_finite() && *n > 0.0 && *n <= 1000.0 => {
                                    Some(*n)
                                }
                                _ => None,
                            });
                    p.stream.update_media(|m| {
                        m.encoder = encoder.or(m.encoder.take());
                        m.frame_rate = m.frame_rate.or(frame_rate);
                    });
                }
            }
            SessionEvent::Media {
                kind,
                timestamp,
                payload,
            } => self.media(kind, timestamp, payload)?,
            SessionEvent::Unpublished => self.stop_publishing(),
            SessionEvent::PlayRefused { stream_key } => {
                info!(
                    stream_key,
                    "play refused: playback over RTMP is not offered, use HLS"
                );
            }
        }
        Ok(())
    }

    /// Checks the key, claims the stream and answers the publish.
    async fn publish(&mut self, requested: &str, publish_type: &str) -> Result<(), ConnError> {
        let shared = self.shared.clone();
        let app = shared.config.rtmp.app.clone();
        let key = match StreamKey::parse(requested) {
            Ok(key) => key,
            Err(e) => {
                return self.refuse("malformed_key", "NetStream.Publish.BadName", &e.to_string());
            }
        };
        let asked = Instant::now();
        let checked = shared.checker.check(&key, false).await;
        if shared.checker.is_enforcing() {
            shared
                .metrics
                .stream_service_seconds
                .observe(asked.elapsed().as_secs_f64());
        }
        let grant = match checked {
            Ok(grant) => grant,
            Err(rejection) => {
                warn!(key = %key.redacted(), "publish refused: {rejection}");
                return self.refuse(
                    rejection.label(),
                    "NetStream.Publish.Unauthorized",
                    &rejection.to_string(),
                );
            }
        };
        let name = match (shared.config.auth.playback_id, grant.playback_id) {
            (false, _) => key.clone(),
            (true, Some(id)) => id,
            (true, None) => {
                // Serving under the key instead would hand the secret to every viewer.
                let why = "the stream-service gave no playback id (auth.playback_id is on)";
                warn!(key = %key.redacted(), "publish refused: {why}");
                return self.refuse("no_playback_id", "NetStream.Publish.Unauthorized", why);
            }
        };
        let claim = match shared.registry.claim(&app, &name, &key, self.peer) {
            Ok(claim) => claim,
            Err(e @ ClaimError::AlreadyPublishing) => {
                return self.refuse(
                    "already_publishing",
                    "NetStream.Publish.BadName",
                    &e.to_string(),
                );
            }
            Err(e @ ClaimError::NameInUse) => {
                return self.refuse("name_in_use", "NetStream.Publish.BadName", &e.to_string());
            }
        };
        self.session
            .as_mut()
            .expect("publishing needs a session")
            .accept_publish(&mut self.out);
        shared.metrics.publishes_total.inc();
        shared.metrics.streams_live.inc();
        let remuxer = Remuxer::new(shared.config.hls.remux(claim.stream.target_duration()));
        let recheck =
            (shared.config.auth.recheck > 0 && shared.checker.is_enforcing()).then(|| {
                let done = CancellationToken::new();
                tokio::spawn(recheck_key(
                    shared.clone(),
                    key.clone(),
                    claim.publisher.stop.clone(),
                    done.clone(),
                ));
                done.drop_guard()
            });
        info!(
            key = %key.redacted(),
            name = %name,
            app,
            client = %self.peer,
            publish_type,
            took_over = claim.took_over,
            "publish started"
        );
        self.publishing = Some(Publishing {
            stream: claim.stream,
            publisher: claim.publisher,
            remuxer,
            bytes: 0,
            keyframe_warned: false,
            announced: false,
            _recheck: recheck,
        });
        Ok(())
    }

    /// Answers the pending publish with an error status and ends the connection.
    fn refuse(
        &mut self,
        reason: &'static str,
        code: &str,
        description: &str,
    ) -> Result<(), ConnError> {
        self.shared.metrics.reject(reason);
        self.session
            .as_mut()
            .expect("publishing needs a session")
            .reject_publish(code, description, &mut self.out);
        Err(ConnError::PublishRefused(description.to_string()))
    }

    /// Feeds one FLV tag body to the remuxer and lists the segments it finishes.
    fn media(
        &mut self,
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        payload: Bytes,
    ) -> Result<(), ConnError> {
        let Some(p) = &mut self.publishing else {
            return Ok(());
        };
        p.bytes += payload.len() as u64;
        p.stream.add_bytes_in(payload.len() as u64);
        let kind = match kind {
            MediaKind::Audio => TagKind::Audio,
            MediaKind::Video => TagKind::Video,
        };
        let arrived = Instant::now();
        let pushed = p
            .remuxer
            .push(kind, timestamp, payload, &mut self.remux_events);
        apply_remux_events(&self.shared, p, &mut self.remux_events, arrived);
        p.stream
            .set_open_segment_bytes(p.remuxer.open_segment_bytes());
        if let Err(e) = pushed {
            let name = p.stream.name.to_string();
            // The encoder is told why before the connection closes.
            let description = match e {
                RemuxError::Demux(
                    crate::flv::demux::DemuxError::UnsupportedVideoCodec(_)
                    | crate::flv::demux::DemuxError::UnsupportedAudioCodec(_),
                ) => {
                    self.shared.metrics.reject("unsupported_codec");
                    warn!(stream = name, "publish refused: {e}");
                    format!("{e}; this server takes H.264 video and AAC audio")
                }
                _ => e.to_string(),
            };
            self.session
                .as_mut()
                .expect("publishing needs a session")
                .stream_error("NetStream.Publish.Failed", &description, &mut self.out);
            return Err(ConnError::Media(name, e));
        }
        Ok(())
    }

    /// Ends this connection's publish. While the stream is still ours, the open segment is
    /// closed and listed (media up to a cut connection is valid) and the playlist ends; a
    /// stream taken over by another connection is left to it.
    fn stop_publishing(&mut self) {
        let Some(mut p) = self.publishing.take() else {
            return;
        };
        let still_ours = p.stream.is_published_by(p.publisher.id);
        if still_ours {
            p.remuxer.finish(&mut self.remux_events);
            apply_remux_events(&self.shared, &mut p, &mut self.remux_events, Instant::now());
            p.stream.set_open_segment_bytes(0);
        }
        self.shared.registry.release(&p.stream, p.publisher.id);
        self.shared.metrics.streams_live.dec();
        if p.announced {
            let event = hook_event("unpublish", &p, Some(std::time::SystemTime::now()));
            self.shared.hooks.notify(event);
        }
        let secs = p.publisher.started_at.elapsed().as_secs_f64();
        let kbps = if secs > 0.0 {
            p.bytes as f64 * 8.0 / secs / 1000.0
        } else {
            0.0
        };
        let video = p
            .remuxer
            .video_info()
            .map(|v| format!("{} {}x{}", v.codec, v.width, v.height));
        let audio = p
            .remuxer
            .audio_info()
            .map(|a| format!("{} {} Hz {} ch", a.codec, a.sample_rate, a.channels));
        info!(
            key = %p.stream.key.redacted(),
            name = %p.stream.name,
            client = %self.peer,
            video,
            audio,
            duration_s = format!("{secs:.1}"),
            bytes = p.bytes,
            avg_kbps = format!("{kbps:.0}"),
            taken_over = !still_ours,
            "publish stopped"
        );
    }
}

/// Acts on what the remuxer reported: lists segments, records and logs codecs, logs
/// encoder advice. `arrived`: when the media that caused the events arrived.
fn apply_remux_events(
    shared: &Shared,
    p: &mut Publishing,
    events: &mut Vec<RemuxEvent>,
    arrived: Instant,
) {
    for event in events.drain(..) {
        match event {
            RemuxEvent::Segment(segment) => {
                if !p.stream.push_segment(p.publisher.id, segment) {
                    // Taken over: the stream is the new publisher's now.
                    continue;
                }
                if !p.announced {
                    p.announced = true;
                    shared.hooks.notify(hook_event("publish", p, None));
                }
                shared
                    .metrics
                    .segment_publish_seconds
                    .observe(arrived.elapsed().as_secs_f64());
                shared.metrics.segments_total.inc();
                let interval = p.remuxer.keyframe_interval();
                p.stream.update_media(|m| m.keyframe_interval = interval);
            }
            RemuxEvent::VideoConfig(v) => {
                let frame_rate = v.frame_rate;
                let info = v.clone();
                p.stream.update_media(|m| {
                    m.frame_rate = frame_rate.or(m.frame_rate);
                    m.video = Some(info);
                });
                info!(stream = %p.stream.name, codec = v.codec, width = v.width, height = v.height, "video");
            }
            RemuxEvent::AudioConfig(a) => {
                let info = a.clone();
                p.stream.update_media(|m| m.audio = Some(info));
                info!(stream = %p.stream.name, codec = a.codec, sample_rate = a.sample_rate, channels = a.channels, "audio");
            }
            RemuxEvent::LongKeyframeInterval { interval } => {
                if !p.keyframe_warned {
                    p.keyframe_warned = true;
                    let target = shared.config.hls.time;
                    warn!(
                        stream = %p.stream.name,
                        "the encoder's keyframe interval ({interval}) is longer than hls.time ({target} s): \
                         segments follow keyframes, not the setting; set the encoder's keyframe interval to {target} s"
                    );
                }
            }
            RemuxEvent::ForcedCut { length } => {
                warn!(
                    stream = %p.stream.name,
                    "no keyframe for {length}: segment cut without one; players joining there wait for the next keyframe"
                );
            }
        }
    }
}

/// The webhook body for a publish that started (`stopped` None) or stopped.
fn hook_event(
    event: &'static str,
    p: &Publishing,
    stopped: Option<std::time::SystemTime>,
) -> HookEvent {
    HookEvent {
        event,
        app: p.stream.app.clone(),
        key: p.stream.key.to_string(),
        name: p.stream.name.to_string(),
        client: p.publisher.addr.to_string(),
        video: p.remuxer.video_info().map(|v| VideoSummary {
            codec: v.codec.clone(),
            width: v.width,
            height: v.height,
        }),
        audio: p.remuxer.audio_info().cloned(),
        started_at: rfc3339_millis(p.publisher.started),
        stopped_at: stopped.map(rfc3339_millis),
        bytes: p.bytes,
        duration_s: p.publisher.started_at.elapsed().as_secs_f64(),
    }
}

/// Asks the stream-service about `key` every `auth.recheck` seconds while it is published,
/// and stops the publish when the service no longer accepts it. An unreachable service
/// does not stop a live stream: only a definite answer (unknown, inactive, expired) does.
async fn recheck_key(
    shared: Arc<Shared>,
    key: StreamKey,
    stop: CancellationToken,
    done: CancellationToken,
) {
    let every = Duration::from_secs(shared.config.auth.recheck);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = done.cancelled() => return,
            _ = stop.cancelled() => return,
        }
        match shared.checker.check(&key, true).await {
            Ok(_) => debug!(key = %key.redacted(), "key re-check: still accepted"),
            // 401 is about this server's own credentials (a rotated auth.token), not the key.
            Err(Rejection::Unknown(401)) => {
                warn!(key = %key.redacted(), "key re-check answered 401, stream kept: check auth.token");
            }
            Err(Rejection::Unavailable(reason)) => {
                warn!(key = %key.redacted(), "key re-check failed, stream kept: stream-service unavailable: {reason}");
            }
            Err(rejection) => {
                warn!(key = %key.redacted(), "key re-check: {rejection}; stopping the stream");
                shared.metrics.reject(rejection.label());
                stop.cancel();
                return;
            }
        }
    }
}

/// Waits for `token`, or forever without one.
async fn cancelled(token: Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}
