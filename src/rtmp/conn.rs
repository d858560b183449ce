//! One RTMP connection: drives the sans-IO handshake and session over a TCP socket and hands
//! what a client publishes to the ingest layer (key check, stream claim, media).
//!
//! This is the only place RTMP meets tokio. Everything it reads goes through
//! [`Handshake::feed`] and then [`ServerSession::handle_input`]; everything it writes is what
//! those produced, in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::flv::demux::TagKind;
use crate::flv::mux::Accepts;
use crate::hub::stop::StopReason;
use crate::ingest::{Arrival, Ingest, Publish, Refusal, StreamMetadata};
use crate::media::RtmpTimestamp;
use crate::media::frame::TrackName;
use crate::playback::{Player, Protocol};
use crate::rtmp::amf0::Value;
use crate::rtmp::egress::Egress;
use crate::rtmp::enhanced::EnhancedCaps;
use crate::rtmp::merged_read::{self, ReadMode};
use crate::rtmp::transport::{Transport, TransportError};
use crate::rtmp::{
    Handshake, HandshakeError, MediaKind, ServerSession, SessionConfig, SessionError, SessionEvent,
};

/// Bytes read at once from a client that does not publish (yet): the handshake, commands, a
/// player's acknowledgements. Only a publisher's reads grow to the merged-read sizes, so a
/// connection that plays, or never gets anywhere, holds little.
const SMALL_READ: usize = 4 * 1024;

/// How long a write to a client may take. What the server writes is small (acks, pings,
/// replies); a client that does not read it for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a stopped publisher's connection stays open after its last status, its media
/// read and dropped, for the encoder to read the status and close first (see [`linger`]).
const STOP_LINGER: Duration = Duration::from_secs(2);

/// Bytes of a player's tags encoded ahead of the socket: a few turns of the ingest of a
/// high-rate stream, so writes are large while what waits stays in the player's queue, where
/// it can be skipped.
const PLAY_WRITE_BATCH: usize = 64 * 1024;

/// How often a player takes its stream's events and writes them: every third tick of the
/// merged-read grid, when the ingest thread wakes anyway, so every player of the server
/// shares those wakeups. Players buffer seconds; 120 ms costs them nothing.
const PLAY_TAKE_EVERY: Duration = Duration::from_millis(120);

/// Whether the player's time to take its stream's events has come.
fn taking(next_take: tokio::time::Instant) -> bool {
    tokio::time::Instant::now() >= next_take
}

/// How long a player may take nothing of what waits for it before it is dropped.
const PLAY_STALL: Duration = Duration::from_secs(30);

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
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::session::TlsError),
    #[error("no TLS handshake within {0:?}")]
    TlsHandshakeTimeout(Duration),
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
    /// Refused because the client's address failed too often: logged once per address by
    /// the ingest layer, so not again per connection.
    #[error("publish refused: {0}")]
    RateLimited(String),
    #[error("stream {0}: {1}")]
    Media(String, String),
    /// Refused by `playback`, which logged why.
    #[error("play refused: {0}")]
    PlayRefused(String),
    #[error("play ended: {0}")]
    Play(#[from] crate::playback::PlayError),
}

/// What a connection is handed: its settings, the ingest layer, the counter of bytes it
/// reads, and the server's stop.
pub struct ConnContext {
    pub settings: RtmpSettings,
    pub ingest: Ingest,
    /// Players: who may play, and the streams they read.
    pub playback: crate::playback::Playback,
    pub bytes_in: prometheus_client::metrics::counter::Counter<u64, std::sync::atomic::AtomicU64>,
    /// RTMPS connections that ended before their TLS handshake completed.
    pub tls_failures: prometheus_client::metrics::counter::Counter,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
    /// Where the merged-read grid starts (see `merged_read`): one grid for every connection.
    pub epoch: Instant,
}

/// The RTMP options a connection follows.
#[derive(Clone, Debug)]
pub struct RtmpSettings {
    /// The application name publishers use (`rtmp.app`).
    pub app: String,
    /// The server's outgoing chunk size (`rtmp.chunk_size`).
    pub chunk_size: u32,
    /// Seconds between pings to a quiet client (`rtmp.ping`).
    pub ping: Duration,
    /// Silence after which a client is dropped (`rtmp.ping_timeout`).
    pub ping_timeout: Duration,
    /// Time to handshake, connect and publish (`rtmp.handshake_timeout`).
    pub handshake_timeout: Duration,
}

impl From<TransportError> for ConnError {
    fn from(e: TransportError) -> ConnError {
        match e {
            TransportError::Io(e) => ConnError::Io(e),
            TransportError::Tls(e) => ConnError::Tls(e),
        }
    }
}

/// Runs one connection to its end and logs why it ended.
pub async fn serve(mut transport: Transport, peer: SocketAddr, ctx: Arc<ConnContext>) {
    let mut conn = Conn {
        ctx,
        peer,
        session: None,
        publishing: None,
        out: BytesMut::new(),
        events: Vec::new(),
        received: Arrival::now(),
        previous_read: Instant::now(),
        enhanced: None,
        player: None,
    };
    let result = conn.run(&mut transport).await;
    conn.publishing = None;
    let result = match result {
        Err(ConnError::HandshakeTimeout(t)) if transport.tls_handshaking() => {
            Err(ConnError::TlsHandshakeTimeout(t))
        }
        result => result,
    };
    if transport.tls_handshaking() {
        conn.ctx.tls_failures.inc();
    }
    // A TLS connection that failed says why in an alert, one that ends otherwise says
    // close_notify, if the socket takes it now.
    transport.send_pending_now();
    match result {
        Ok(()) => debug!("connection closed"),
        Err(ConnError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            debug!("connection closed by the client")
        }
        Err(e @ (ConnError::RateLimited(_) | ConnError::PlayRefused(_) | ConnError::Play(_))) => {
            debug!("connection closed: {e}")
        }
        Err(e) => info!("connection closed: {e}"),
    }
}

struct Conn {
    ctx: Arc<ConnContext>,
    peer: SocketAddr,
    session: Option<ServerSession>,
    /// The stream this connection publishes.
    publishing: Option<Publish>,
    out: BytesMut,
    events: Vec<SessionEvent>,
    /// When the bytes being processed arrived.
    received: Arrival,
    /// When the socket was last read.
    previous_read: Instant,
    /// What the client announced about Enhanced RTMP in `connect`.
    enhanced: Option<EnhancedCaps>,
    /// The stream this connection plays, once its play was accepted.
    player: Option<Player>,
}

impl Conn {
    async fn run(&mut self, transport: &mut Transport) -> Result<(), ConnError> {
        let ctx = self.ctx.clone();
        let cfg = &ctx.settings;
        let handshake_timeout = cfg.handshake_timeout;
        let ping_every = cfg.ping;
        let silence_limit = cfg.ping_timeout;
        // The client must finish the handshake, `connect` and publish within this time.
        let mut publish_deadline = tokio::time::Instant::now() + handshake_timeout;
        let mut input = BytesMut::with_capacity(SMALL_READ);

        if let Err(e) = merged_read::enable_receive_times(transport.socket()) {
            debug!("receive times not enabled: {e}");
        }
        let mut handshake = Handshake::new();
        // The TLS handshake, for RTMPS, and the RTMP handshake, within the same time.
        loop {
            let read = tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                read = tokio::time::timeout_at(publish_deadline, transport.read_ready(&mut input, SMALL_READ)) => read,
            };
            let drained = read.map_err(|_| ConnError::HandshakeTimeout(handshake_timeout))??;
            self.count_in(drained.bytes);
            self.received = Arrival::now();
            self.previous_read = Instant::now();
            let done = handshake.feed(&mut input, &mut self.out)?;
            self.flush(transport).await?;
            if done {
                break;
            }
            if drained.closed {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
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
        let mut low_water_raised = false;
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
            let flushed = self.flush(transport).await;
            result?;
            flushed?;
            if let Some(player) = self.player.take() {
                return self.play(transport, &mut input, player).await;
            }
            if answered {
                continue;
            }
            if peer_closed {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }

            let stop = self.publishing.as_ref().map(Publish::stop_token);
            // A publishing connection reads on the merged-read grid, and promptly while a
            // frame an output waits for is due (see `merged_read`).
            let due = self.publishing.as_ref().and_then(Publish::due);
            let mode = self
                .publishing
                .as_ref()
                .map(|_| merged_read::mode_at(Instant::now(), due));
            let merge = mode == Some(ReadMode::Merged);
            let read_max = match self.publishing {
                Some(_) => merged_read::MAX_PER_TICK,
                None => SMALL_READ,
            };
            if mode.is_some() != merged {
                merged = mode.is_some();
                if !merged {
                    // Stopped publishing: it may publish again, within the same time.
                    publish_deadline = tokio::time::Instant::now() + handshake_timeout;
                }
            }
            if merge != low_water_raised {
                low_water_raised = merge;
                if let Err(e) = merged_read::set_low_water(transport.socket(), merge) {
                    debug!("receive low-water mark not set: {e}");
                }
            }
            // No room is made here: the reads make it once the outputs have run (the select
            // below yields first). Messages are views of this buffer until the outputs take
            // them, so room made now would be a new allocation on every read.
            let drained = tokio::select! {
                // Stopping first: once taken over, nothing more of this publisher's media
                // may reach the stream.
                biased;
                _ = cancelled(stop) => {
                    // Taken over by a new connection, the key was revoked, or the operator
                    // stopped the stream: say so and go.
                    let reason = self
                        .publishing
                        .as_ref()
                        .and_then(Publish::stop_reason)
                        .unwrap_or(StopReason::TakenOver);
                    let session = self.session.as_mut().expect("session set above");
                    session.stream_error(reason.code(), reason.description(), &mut self.out);
                    // The publish ends now, not when the encoder has read the status.
                    if let Some(publish) = self.publishing.take() {
                        publish.stop();
                    }
                    if self.flush(transport).await.is_ok() {
                        linger(transport, STOP_LINGER).await;
                    }
                    return Ok(());
                }
                _ = ctx.shutdown.cancelled() => {
                    return Ok(());
                }
                read = transport.read_ready(&mut input, read_max), if !merge => {
                    Some((read?, ReadMode::Prompt))
                }
                _ = tokio::time::sleep_until(merged_read::wake_at(ctx.epoch, due, Instant::now())), if merge => {
                    Some((transport.drain(&mut input)?, ReadMode::Merged))
                }
                _ = tokio::time::sleep_until(publish_deadline), if !merged => {
                    // A client that neither publishes nor plays holds a connection slot for
                    // nothing.
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
                        self.flush(transport).await?;
                    }
                    None
                }
            };
            if let Some((drained, mode)) = drained {
                let now = Instant::now();
                if drained.bytes > 0 {
                    self.count_in(drained.bytes);
                    last_heard = now;
                    let stamp = drained.arrived.unwrap_or(now);
                    self.received = Arrival {
                        // Read as it came, the newest data's stamp is when it arrived; read
                        // off the grid, it can have come any time since the read before.
                        earliest: match mode {
                            ReadMode::Prompt => stamp,
                            ReadMode::Merged => self.previous_read.min(stamp),
                        },
                        latest: stamp,
                    };
                }
                self.previous_read = now;
                // What came before the end is processed first, at the top of the loop.
                peer_closed = drained.closed;
            }
        }
    }

    fn count_in(&self, n: usize) {
        self.ctx.bytes_in.inc_by(n as u64);
    }

    /// Writes what the session produced, and what TLS has to send of its own.
    async fn flush(&mut self, transport: &mut Transport) -> Result<(), ConnError> {
        if self.out.is_empty() && !transport.has_pending() {
            return Ok(());
        }
        let bytes = self.out.split();
        tokio::time::timeout(WRITE_TIMEOUT, transport.write_all(&bytes))
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
                enhanced,
            } => {
                debug!(app, tc_url, flash_ver, ?enhanced, "connected");
                self.enhanced = enhanced;
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
                    p.metadata(metadata(&properties));
                }
            }
            SessionEvent::Media {
                kind,
                timestamp,
                payload,
            } => self.media(kind, timestamp, payload)?,
            SessionEvent::Unpublished => self.publishing = None,
            SessionEvent::PlayRequested {
                stream_key, query, ..
            } => self.open_play(&stream_key, query.as_deref())?,
            SessionEvent::PlayStopped => {}
        }
        Ok(())
    }

    /// Asks the ingest layer to start the publish, and answers it.
    async fn publish(&mut self, requested: &str, publish_type: &str) -> Result<(), ConnError> {
        let ingest = self.ctx.ingest.clone();
        match ingest.publish(requested, publish_type, self.peer).await {
            Ok(publish) => {
                self.session
                    .as_mut()
                    .expect("publishing needs a session")
                    .accept_publish(&mut self.out);
                self.publishing = Some(publish);
                Ok(())
            }
            Err(refusal) => {
                self.session
                    .as_mut()
                    .expect("publishing needs a session")
                    .reject_publish(refusal.code, &refusal.description, &mut self.out);
                Err(match refusal.is_rate_limited() {
                    true => ConnError::RateLimited(refusal.description),
                    false => ConnError::PublishRefused(refusal.description),
                })
            }
        }
    }

    /// Asks playback for the stream, and answers the play.
    fn open_play(&mut self, name: &str, query: Option<&str>) -> Result<(), ConnError> {
        let accepts = match self.enhanced.clone() {
            Some(caps) => Accepts::Announced(caps),
            None => Accepts::Legacy,
        };
        let session = self.session.as_mut().expect("playing needs a session");
        match self
            .ctx
            .playback
            .open(name, query, Protocol::Rtmp, accepts, self.peer)
        {
            Ok(player) => {
                session.accept_play(&format!("Playing {name}."), &mut self.out);
                self.player = Some(player);
                Ok(())
            }
            Err(refusal) => {
                session.reject_play(refusal.code, &refusal.description, &mut self.out);
                Err(ConnError::PlayRefused(refusal.description))
            }
        }
    }

    /// Plays the stream to the client until the publisher stops, the client closes its
    /// stream or leaves, or it reads too slowly: the player's tags are written as the socket
    /// takes them, while what the client sends (acknowledgements, pings, closeStream) is
    /// read, and the stream's events are queued as they come (a player never holds up the
    /// fan-out).
    async fn play(
        &mut self,
        transport: &mut Transport,
        input: &mut BytesMut,
        mut player: Player,
    ) -> Result<(), ConnError> {
        let ctx = self.ctx.clone();
        let settings = &ctx.settings;
        let mut out = Egress::new();
        let mut last_written = Instant::now();
        let mut last_heard = Instant::now();
        let started = Instant::now();
        let check_every = settings.ping.min(settings.ping_timeout).min(PLAY_STALL / 4);
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + check_every, check_every);
        let mut events = Vec::new();
        // When the player next takes its stream's events: at once the first time (the
        // cached GOP), then on the PLAY_TAKE_EVERY grid, so a player costs a write per
        // period and no wakeup of its own.
        let mut next_take = tokio::time::Instant::now();
        loop {
            let session = self.session.as_mut().expect("playing needs a session");
            out.push_bytes(self.out.split().freeze());
            let waiting = out.len() + transport.pending_len();
            if waiting < PLAY_WRITE_BATCH {
                player.fill(&mut out, PLAY_WRITE_BATCH - waiting, |tag, o| {
                    session.send_tag(tag, o)
                });
            }
            if player.ended() && !player.has_queued() {
                // The publisher stopped: the player is told, and the connection ends once
                // that is written.
                session.end_play(&mut self.out);
                out.push_bytes(self.out.split().freeze());
                player.set_reason("the publisher stopped");
                let bytes = out.to_bytes();
                tokio::time::timeout(WRITE_TIMEOUT, transport.write_all(&bytes))
                    .await
                    .map_err(|_| ConnError::WriteTimeout)??;
                return Ok(());
            }
            let writing = !out.is_empty() || transport.pending_len() > 0;
            tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => {
                    player.set_reason("the server stops");
                    return Ok(());
                }
                ready = transport.socket().writable(), if writing => {
                    ready?;
                    let before = transport.pending_len();
                    let n = transport.try_write_egress(&mut out)?;
                    if n > 0 || transport.pending_len() < before {
                        last_written = Instant::now();
                    }
                    player.wrote(n);
                }
                ready = transport.socket().readable() => {
                    ready?;
                    let Some(drained) = transport.read_now(input, SMALL_READ)? else {
                        continue;
                    };
                    if drained.bytes > 0 {
                        self.count_in(drained.bytes);
                        last_heard = Instant::now();
                    }
                    let session = self.session.as_mut().expect("playing needs a session");
                    let decoded = session.handle_input(input, &mut self.out, &mut events);
                    if let Err(e) = decoded {
                        player.set_reason(format!("the player sent something invalid: {e}"));
                        return Err(e.into());
                    }
                    if events.iter().any(|e| matches!(e, SessionEvent::PlayStopped)) {
                        player.set_reason("the player closed its stream");
                        return Ok(());
                    }
                    for event in events.drain(..) {
                        debug!(?event, "ignored while playing");
                    }
                    if drained.closed {
                        player.set_reason("the player left");
                        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                    }
                }
                _ = tokio::time::sleep_until(next_take), if !player.ended() && !taking(next_take) => {}
                received = player.recv(), if !player.ended() && taking(next_take) => {
                    next_take = merged_read::next_on_grid(ctx.epoch, PLAY_TAKE_EVERY);
                    if let Err(e) = received {
                        player.set_reason(e.to_string());
                        let session = self.session.as_mut().expect("playing needs a session");
                        session.fail_play(&e.to_string(), &mut self.out);
                        out.push_bytes(self.out.split().freeze());
                        let bytes = out.to_bytes();
                        let _ = tokio::time::timeout(Duration::from_secs(1), transport.write_all(&bytes)).await;
                        return Err(e.into());
                    }
                }
                _ = check.tick() => {
                    if writing && last_written.elapsed() >= PLAY_STALL {
                        player.drop_reason("stalled");
                        player.set_reason(format!("the player read nothing for {PLAY_STALL:?}"));
                        return Err(crate::playback::PlayError::Stalled(PLAY_STALL).into());
                    }
                    let silent = last_heard.elapsed();
                    if silent >= settings.ping_timeout {
                        player.set_reason(format!("the player was silent for {silent:?}"));
                        return Err(ConnError::Silent(settings.ping_timeout));
                    }
                    if silent >= settings.ping {
                        let ms = started.elapsed().as_millis() as u32;
                        let session = self.session.as_mut().expect("playing needs a session");
                        session.ping_request(ms, &mut self.out);
                    }
                }
            }
        }
    }

    /// Hands one FLV tag body to the publish.
    fn media(
        &mut self,
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        payload: Bytes,
    ) -> Result<(), ConnError> {
        let Some(p) = &mut self.publishing else {
            return Ok(());
        };
        let kind = match kind {
            MediaKind::Audio => TagKind::Audio,
            MediaKind::Video => TagKind::Video,
        };
        if let Err(Refusal {
            code, description, ..
        }) = p.media(kind, timestamp, payload, self.received)
        {
            let name = p.name().to_string();
            // The encoder is told why before the connection closes.
            self.session
                .as_mut()
                .expect("publishing needs a session")
                .stream_error(code, &description, &mut self.out);
            return Err(ConnError::Media(name, description));
        }
        Ok(())
    }
}

/// What the server uses of a publisher's onMetaData.
fn metadata(properties: &[(String, Value)]) -> StreamMetadata {
    let get = |name: &str| properties.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let frame_rate = get("framerate")
        .or_else(|| get("videoframerate"))
        .and_then(|v| match v {
            Value::Number(n) if n.is_finite() && *n > 0.0 && *n <= 1000.0 => Some(*n),
            _ => None,
        });
    StreamMetadata {
        video: get("videocodecid").is_some(),
        audio: get("audiocodecid").is_some(),
        encoder: get("encoder").and_then(|v| v.as_str()).map(str::to_string),
        frame_rate,
        audio_labels: get("audioTrackIdInfoMap")
            .and_then(Value::properties)
            .map(track_labels)
            .unwrap_or_default(),
    }
}

/// Most tracks a metadata map is read for (above any track limit).
const MAX_LABELLED_TRACKS: usize = 32;

/// Names and languages from an Enhanced RTMP `audioTrackIdInfoMap` (keys: track ids; values:
/// objects whose `name`/`title` and `language`/`lang` strings, when given, label the track).
/// What is not a track id or a plausible label is left out.
///
/// Spec: Enhanced RTMP v2 "Enhancing onMetaData" (audioTrackIdInfoMap).
fn track_labels(map: &[(String, Value)]) -> Vec<TrackName> {
    let text = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.property(k).and_then(Value::as_str))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| t.chars().take(64).collect::<String>())
    };
    map.iter()
        .take(MAX_LABELLED_TRACKS)
        .filter_map(|(key, value)| {
            let track = key.trim().parse::<u8>().ok()?;
            let language = text(value, &["language", "lang"]).filter(|l| {
                l.len() <= 35 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            Some(TrackName {
                track,
                name: text(value, &["name", "title", "label"]),
                language,
            })
        })
        .collect()
}

/// Reads and drops what the peer still sends, until it closes or `within` passes. A
/// connection closed with the publisher's media unread is reset (RFC 9293 §3.6.1: "data
/// lost"), and the reset can reach the encoder before the status written just before it:
/// ffmpeg would print "Connection reset by peer" instead of the reason. Waiting for the
/// encoder to read the status and close first keeps the reason; the time bound keeps an
/// encoder that does not close from holding the connection.
async fn linger(transport: &mut Transport, within: Duration) {
    if let Err(e) = merged_read::set_low_water(transport.socket(), false) {
        debug!("receive low-water mark not reset: {e}");
    }
    let mut sink = BytesMut::with_capacity(SMALL_READ);
    let _ = tokio::time::timeout(within, async {
        loop {
            sink.clear();
            match transport.read_ready(&mut sink, SMALL_READ).await {
                Ok(drained) if !drained.closed => continue,
                _ => return,
            }
        }
    })
    .await;
}

/// Waits for `token`, or forever without one.
async fn cancelled(token: Option<CancellationToken>) {
    match token {
        Some(t) => t.cancelled().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_track_names_and_languages_come_from_the_info_map() {
        let map = Value::object(&[
            (
                "1",
                Value::object(&[
                    ("name", "Commentary".into()),
                    ("language", "en-GB".into()),
                    ("audiodatarate", Value::Number(128.0)),
                ]),
            ),
            ("2", Value::object(&[("lang", "de".into())])),
            // Not track ids, or not plausible labels: left out.
            ("x", Value::object(&[("name", "nope".into())])),
            ("3", Value::object(&[("language", "en GB; drop".into())])),
        ]);
        let properties = vec![
            ("audiocodecid".to_owned(), Value::Number(10.0)),
            ("audioTrackIdInfoMap".to_owned(), map),
        ];
        let labels = metadata(&properties).audio_labels;
        assert_eq!(
            labels,
            [
                TrackName {
                    track: 1,
                    name: Some("Commentary".into()),
                    language: Some("en-GB".into()),
                },
                TrackName {
                    track: 2,
                    name: None,
                    language: Some("de".into()),
                },
                TrackName {
                    track: 3,
                    name: None,
                    language: None,
                },
            ]
        );
        assert!(metadata(&[]).audio_labels.is_empty());
    }
}
