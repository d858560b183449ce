//! Playback of live streams over RTMP, HTTP-FLV and WebSocket-FLV: who may play (`rtmp.play`),
//! finding the stream, and one [`Player`] per reader: its subscription to the stream's
//! fan-out (from the cached GOP when `rtmp.gop_cache` is on), the FLV muxer that turns the
//! media core's events into tags in the form the player takes, and its bounded queue
//! ([`queue`]). The protocol sides write the queued tags: `rtmp::play` as RTMP messages,
//! `http::flv` as an FLV stream over HTTP or WebSocket.
//!
//! A player never slows the ingest, the HLS outputs or another player: it takes what the
//! fan-out holds at once, into its own queue, and a player that does not read fast enough
//! skips and is then dropped there.

pub mod queue;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::BytesMut;
use tracing::{debug, info, warn};

use crate::config::PlayAccess;
use crate::flv::mux::{Accepts, FlvMuxer, Tag, Unplayable};
use crate::hooks::{Hooks, PlayEvent};
use crate::hub::registry::Registry;
use crate::hub::stream::Stream;
use crate::media::fanout::{Received, Subscription};
use crate::media::frame::MediaEvent;
use crate::metrics::{Metrics, ProtocolLabel, ReasonLabel};
use crate::wallclock::rfc3339_millis;
use queue::{Behind, PlayerQueue, Pushed, QueueLimits};

/// Bytes encoded for a player and not yet written.
pub trait Waiting {
    fn waiting(&self) -> usize;
}

impl Waiting for BytesMut {
    fn waiting(&self) -> usize {
        self.len()
    }
}

impl Waiting for crate::rtmp::egress::Egress {
    fn waiting(&self) -> usize {
        self.len()
    }
}

/// How a player reads a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Rtmp = 0,
    HttpFlv = 1,
    WsFlv = 2,
}

impl Protocol {
    /// The `protocol` label of the metrics, webhooks and API.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::HttpFlv => "http-flv",
            Protocol::WsFlv => "ws-flv",
        }
    }
}

/// What playback is handed by the server.
pub struct PlaybackSettings {
    /// The application name (`rtmp.app`).
    pub app: String,
    pub access: PlayAccess,
    /// `rtmp.play_token`.
    pub token: String,
    pub queue: QueueLimits,
}

/// Playback's handle, for the RTMP connections and the HTTP routes. Cheap to clone.
#[derive(Clone)]
pub struct Playback {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PlaybackSettings,
    registry: Arc<Registry>,
    hooks: Hooks,
    metrics: Arc<Metrics>,
}

/// Why a play request was refused: a label for the metrics, the RTMP status code, the HTTP
/// status and what the player is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlayRefusal {
    pub reason: &'static str,
    pub code: &'static str,
    pub http_status: u16,
    pub description: String,
}

impl Playback {
    pub fn new(
        settings: PlaybackSettings,
        registry: Arc<Registry>,
        hooks: Hooks,
        metrics: Arc<Metrics>,
    ) -> Playback {
        Playback {
            inner: Arc::new(Inner {
                settings,
                registry,
                hooks,
                metrics,
            }),
        }
    }

    /// A player of the live stream `name` (the key, or its playback id), if playback allows
    /// it (`query` carries the `token`) and the stream is live. `accepts` says what the
    /// player takes besides legacy FLV.
    pub fn open(
        &self,
        name: &str,
        query: Option<&str>,
        protocol: Protocol,
        accepts: Accepts,
        peer: SocketAddr,
    ) -> Result<Player, PlayRefusal> {
        let inner = &self.inner;
        let refuse = |reason: &'static str, code: &'static str, http_status: u16, d: String| {
            inner
                .metrics
                .plays_refused_total
                .get_or_create(&ReasonLabel { reason })
                .inc();
            info!(
                stream = name,
                client = %peer,
                protocol = protocol.label(),
                "play refused: {d}"
            );
            PlayRefusal {
                reason,
                code,
                http_status,
                description: d,
            }
        };
        match inner.settings.access {
            PlayAccess::Open => {}
            PlayAccess::Off => {
                return Err(refuse(
                    "off",
                    "NetStream.Play.Failed",
                    403,
                    "playback is switched off on this server (rtmp.play)".into(),
                ));
            }
            PlayAccess::Token => {
                let given = query.and_then(token_in);
                if !given.is_some_and(|t| token_matches(&t, inner.settings.token.as_bytes())) {
                    return Err(refuse(
                        "token",
                        "NetStream.Play.Failed",
                        403,
                        "playback needs a valid ?token= (rtmp.play is \"token\")".into(),
                    ));
                }
            }
        }
        let stream = inner
            .registry
            .get(&inner.settings.app, name)
            .filter(|s| s.publisher().is_some());
        let Some(stream) = stream else {
            return Err(refuse(
                "not_live",
                "NetStream.Play.StreamNotFound",
                404,
                format!("no live stream {name:?}"),
            ));
        };
        let subscription = stream.fanout.subscribe_at_keyframe();
        stream.count_player(protocol as usize, true);
        let label = ProtocolLabel {
            protocol: protocol.label(),
        };
        inner.metrics.players.get_or_create(&label).inc();
        inner.metrics.plays_total.get_or_create(&label).inc();
        let player = Player {
            playback: self.clone(),
            stream,
            subscription,
            muxer: FlvMuxer::new(accepts),
            queue: PlayerQueue::new(inner.settings.queue),
            protocol,
            peer,
            name: name.to_owned(),
            started: SystemTime::now(),
            started_at: Instant::now(),
            bytes: 0,
            events: Vec::new(),
            tags: Vec::new(),
            ended: false,
            reason: None,
            skips: 0,
        };
        inner.hooks.notify_play(player.event("play"));
        info!(
            stream = name,
            client = %peer,
            protocol = protocol.label(),
            "play started"
        );
        Ok(player)
    }
}

/// The `token` parameter of a query, percent-decoded (`None` when absent or malformed).
fn token_in(query: &str) -> Option<Vec<u8>> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))?
        .as_bytes();
    let mut token = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            token.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            token.push(raw[i]);
            i += 1;
        }
    }
    Some(token)
}

/// Compares a token in time independent of where they differ.
fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_found_and_percent_decoded() {
        assert_eq!(token_in("token=abc"), Some(b"abc".to_vec()));
        assert_eq!(token_in("x=1&token=a%2Bb%3D"), Some(b"a+b=".to_vec()));
        assert_eq!(token_in("token=%zz"), None);
        assert_eq!(token_in("token=%4"), None);
        assert_eq!(token_in("tokens=abc"), None);
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"s3creT", b"s3cret"));
    }
}

/// Why a player ends.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error("{0}")]
    Unplayable(#[from] Unplayable),
    #[error("{0}")]
    Behind(#[from] Behind),
    #[error("the player read nothing for {0:?}")]
    Stalled(std::time::Duration),
}

/// One reader of a live stream.
pub struct Player {
    playback: Playback,
    stream: Arc<Stream>,
    subscription: Subscription,
    muxer: FlvMuxer,
    queue: PlayerQueue,
    protocol: Protocol,
    peer: SocketAddr,
    name: String,
    started: SystemTime,
    started_at: Instant,
    bytes: u64,
    events: Vec<MediaEvent>,
    tags: Vec<Tag>,
    ended: bool,
    reason: Option<String>,
    skips: u64,
}

/// Events taken from the fan-out at most per turn.
const EVENTS_PER_TURN: usize = 512;

/// Events and tags a player keeps room for between turns.
const KEPT_CAPACITY: usize = 64;

impl Player {
    /// Waits for the stream's next events and queues their tags. Cancel-safe.
    pub async fn recv(&mut self) -> Result<(), PlayError> {
        let received = self
            .subscription
            .recv(&mut self.events, EVENTS_PER_TURN)
            .await;
        self.take(received)
    }

    /// Queues the tags of what [`Player::recv`] received.
    fn take(&mut self, received: Received) -> Result<(), PlayError> {
        let now = Instant::now();
        if received.lost > 0 {
            debug!(stream = %self.stream.name, lost = received.lost, "player lost media in the fan-out");
        }
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            if self.ended {
                // A player reads one publish: what comes after its end (the next
                // publisher's start) is not for it.
                break;
            }
            if let MediaEvent::End(_) = event {
                self.ended = true;
            }
            self.muxer.push(&event, &mut self.tags)?;
            let mut tags = std::mem::take(&mut self.tags);
            for tag in tags.drain(..) {
                match self.queue.push(tag, now) {
                    Ok(Pushed::FellBehind { dropped }) => {
                        self.skips += 1;
                        self.playback.inner.metrics.player_skips_total.inc();
                        debug!(
                            stream = %self.stream.name,
                            client = %self.peer,
                            dropped,
                            "player fell behind: video skipped to the next keyframe"
                        );
                    }
                    Ok(_) => {}
                    Err(behind) => {
                        self.drop_reason("behind");
                        return Err(behind.into());
                    }
                }
            }
            self.tags = tags;
        }
        events.clear();
        // A burst (the cached GOP) leaves its room behind; a player keeps what a turn needs.
        events.shrink_to(KEPT_CAPACITY);
        self.tags.shrink_to(KEPT_CAPACITY);
        self.queue.shrink();
        self.events = events;
        if received.closed {
            self.ended = true;
        }
        Ok(())
    }

    /// The tracks of the publish the player reads, once its first events came.
    pub fn tracks(&self) -> Option<&Arc<crate::media::frame::Tracks>> {
        self.muxer.tracks()
    }

    /// The publisher stopped (or the stream went away): nothing more will be queued.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Encodes queued tags with `encode` into `out` until it holds at least `up_to` bytes
    /// or the queue is empty.
    pub fn fill<O: Waiting>(
        &mut self,
        out: &mut O,
        up_to: usize,
        mut encode: impl FnMut(&Tag, &mut O),
    ) {
        while out.waiting() < up_to {
            let Some(tag) = self.queue.pop() else { break };
            encode(&tag, out);
        }
    }

    /// Whether tags wait to be encoded.
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Counts `n` bytes written to the player.
    pub fn wrote(&mut self, n: usize) {
        self.bytes += n as u64;
        self.playback
            .inner
            .metrics
            .player_bytes_out_total
            .inc_by(n as u64);
    }

    /// The player is dropped for not reading: counted under `reason`.
    pub fn drop_reason(&self, reason: &'static str) {
        self.playback
            .inner
            .metrics
            .players_dropped_total
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Why the player stopped, for the log and the `stop` webhook.
    pub fn set_reason(&mut self, reason: impl Into<String>) {
        self.reason = Some(reason.into());
    }

    fn event(&self, event: &'static str) -> PlayEvent {
        let stop = event == "stop";
        PlayEvent {
            event,
            app: self.stream.app.clone(),
            name: self.name.clone(),
            client: self.peer.to_string(),
            protocol: self.protocol.label(),
            started_at: rfc3339_millis(self.started),
            stopped_at: stop.then(|| rfc3339_millis(SystemTime::now())),
            bytes: stop.then_some(self.bytes),
            reason: if stop { self.reason.clone() } else { None },
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        self.stream.count_player(self.protocol as usize, false);
        let inner = &self.playback.inner;
        inner
            .metrics
            .players
            .get_or_create(&ProtocolLabel {
                protocol: self.protocol.label(),
            })
            .dec();
        inner.hooks.notify_play(self.event("stop"));
        let reason = self.reason.as_deref().unwrap_or("the player left");
        let seconds = self.started_at.elapsed().as_secs_f64();
        if self.reason.is_some() && self.skips > 0 {
            warn!(stream = %self.stream.name, client = %self.peer, protocol = self.protocol.label(), bytes = self.bytes, seconds, skips = self.skips, "play ended: {reason}");
        } else {
            info!(stream = %self.stream.name, client = %self.peer, protocol = self.protocol.label(), bytes = self.bytes, seconds, "play ended: {reason}");
        }
    }
}
