//! One relay target of one publish, as a task on the ingest runtime: it waits for the
//! stream's tracks, connects, publishes, sends the stream from its last keyframe, and when
//! the target refuses or the connection drops, waits ([`Backoff`]) and does it again, from
//! the stream's last keyframe then. It ends, unpublishing cleanly, when the publish does:
//! the stream's `End`, another publisher's `Start`, the fan-out closing, or the publisher's
//! stop token (taken over, key revoked).
//!
//! The task never holds up the ingest or another output: what the fan-out has is taken at
//! once into the session's bounded queue (while connecting and waiting too, where it is only
//! watched for the end), and a target that does not read fast enough skips to the next
//! keyframe, then, falling behind again, is reconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use super::backoff::{Backoff, random_unit};
use super::connect::{self, Io};
use super::error::RelayError;
use super::session::{Progress, RelaySession};
use super::status::{RelayState, RelayStatus};
use super::target::Target;
use crate::hub::stream::Stream;
use crate::media::fanout::{Received, Subscription};
use crate::media::frame::{MediaEvent, Tracks};

/// Longest a connection may take from its first byte to an accepted publish.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a target may leave bytes unread before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// At the end of the publish, how long what is queued may take to go out.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the unpublish may take to be written and confirmed.
const UNPUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Encoded bytes waiting for the socket, at most (one message may pass it).
const OUT_HIGH: usize = 64 * 1024;

/// Events taken from the fan-out at most per turn.
const BATCH: usize = 256;

/// How one attempt ended.
enum Outcome {
    /// The publish ended: the relay is over.
    Ended,
    /// It failed (after being live for the given time, if it got there).
    Failed {
        error: RelayError,
        live_for: Option<Duration>,
    },
}

pub(super) struct TargetTask {
    pub target: Target,
    pub stream: Arc<Stream>,
    /// The publisher whose stream this relays.
    pub publisher: u64,
    pub stop: CancellationToken,
    pub status: Arc<RelayStatus>,
    pub shared: Arc<Shared>,
    pub subscription: Subscription,
    /// The stream's tracks as they stand (for `connect`'s codecs).
    pub tracks: Option<Arc<Tracks>>,
    pub events: Vec<MediaEvent>,
    /// The publish ended (or the stream is no longer this publisher's).
    pub ended: bool,
}

impl TargetTask {
    pub async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            match self.attempt().await {
                Outcome::Ended => break,
                Outcome::Failed { error, live_for } => {
                    if let Some(lasted) = live_for {
                        backoff.connected_for(lasted);
                    }
                    self.status.fail(error.to_string());
                    let wait = backoff.next_delay(random_unit());
                    if self.watch(tokio::time::sleep(wait)).await.is_none() {
                        break;
                    }
                    self.status.set(RelayState::Connecting);
                }
            }
        }
        self.status.finish();
        self.stream.remove_relay(&self.status);
    }

    /// One connection: connect, publish, relay until the publish or the connection ends.
    async fn attempt(&mut self) -> Outcome {
        let failed = |error| Outcome::Failed {
            error,
            live_for: None,
        };
        let Some(tracks) = self.wait_tracks().await else {
            return Outcome::Ended;
        };
        let mut out = BytesMut::new();
        let mut session =
            match RelaySession::new(&self.target, &tracks, self.shared.queue, &mut out) {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
        let mut input = BytesMut::with_capacity(16 * 1024);
        let target = self.target.clone();
        let shared = self.shared.clone();
        let status = self.status.clone();
        let connecting = async {
            let mut io = connect::open(&target, || shared.tls()).await?;
            handshake(&mut io, &mut session, &mut out, &mut input, &status).await?;
            Ok::<_, RelayError>(io)
        };
        let io = match self
            .watch(tokio::time::timeout(CONNECT_TIMEOUT, connecting))
            .await
        {
            None => return Outcome::Ended,
            Some(Err(_)) => return failed(RelayError::Timeout(CONNECT_TIMEOUT)),
            Some(Ok(Err(e))) => return failed(e),
            Some(Ok(Ok(io))) => io,
        };
        // Resume at the stream's last keyframe; whatever came before on the old
        // subscription only matters if it ended the publish.
        let fresh = self.stream.fanout.subscribe_at_keyframe();
        let mut old = std::mem::replace(&mut self.subscription, fresh);
        let received = old.try_recv(&mut self.events, usize::MAX);
        drop(old);
        self.note(received);
        self.status.set(RelayState::Live);
        let live_at = Instant::now();
        match self.live(io, &mut session, out, input).await {
            Ok(()) => Outcome::Ended,
            Err(_) if self.ended => Outcome::Ended,
            Err(error) => Outcome::Failed {
                error,
                live_for: Some(live_at.elapsed()),
            },
        }
    }

    /// The stream's tracks, once its publisher's media has begun; `None` if the publish
    /// ends first.
    async fn wait_tracks(&mut self) -> Option<Arc<Tracks>> {
        loop {
            if self.ended {
                return None;
            }
            if let Some(tracks) = &self.tracks {
                return Some(tracks.clone());
            }
            tokio::select! {
                _ = self.stop.cancelled() => self.ended = true,
                received = self.subscription.recv(&mut self.events, BATCH) => self.note(received),
            }
        }
    }

    /// Runs `work` while watching the stream (its events are only looked at for the end
    /// of the publish and its tracks); `None` when the publish ended first.
    async fn watch<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            if self.ended {
                return None;
            }
            tokio::select! {
                output = &mut work => return Some(output),
                _ = self.stop.cancelled() => self.ended = true,
                received = self.subscription.recv(&mut self.events, BATCH) => self.note(received),
            }
        }
    }

    /// Looks at received events for the end of the publish and the tracks, and drops them.
    fn note(&mut self, received: Received) {
        let mut events = std::mem::take(&mut self.events);
        for event in events.drain(..) {
            self.observe(&event);
        }
        self.events = events;
        if received.closed {
            self.ended = true;
        }
    }

    /// Follows the stream's tracks; an `End`, or another publisher's `Start`, ends the
    /// relay.
    fn observe(&mut self, event: &MediaEvent) {
        match event {
            MediaEvent::Start(tracks) if tracks.publisher == self.publisher => {
                self.tracks = Some(tracks.clone())
            }
            MediaEvent::Start(_) | MediaEvent::End(_) => self.ended = true,
            MediaEvent::Config(id, config) => {
                if let Some(tracks) = &mut self.tracks
                    && let Some(track) = Arc::make_mut(tracks).tracks.get_mut(usize::from(id.0))
                {
                    track.config = Some(config.clone());
                }
            }
            MediaEvent::Frame(_) => {}
        }
    }

    /// Relays the stream over the accepted publish until the publish ends (then unpublishes
    /// and returns `Ok`) or the connection fails.
    async fn live(
        &mut self,
        io: Box<dyn Io>,
        session: &mut RelaySession,
        mut out: BytesMut,
        mut input: BytesMut,
    ) -> Result<(), RelayError> {
        let (mut reader, mut writer) = tokio::io::split(io);
        let mut wrote_at = tokio::time::Instant::now();
        let mut unflushed = false;
        let mut drain_until: Option<tokio::time::Instant> = None;
        let mut stopped = false;
        loop {
            if self.ended && drain_until.is_none() {
                drain_until = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
                if stopped {
                    // Taken over or revoked: nothing more goes out but the unpublish.
                    session.drop_queued();
                }
            }
            if let Err(e) = session.fill(&mut out, OUT_HIGH) {
                return self.give_up(e, session, reader, writer, out).await;
            }
            if self.ended && !session.has_queued() && out.is_empty() {
                break;
            }
            if out.is_empty() {
                wrote_at = tokio::time::Instant::now();
            }
            tokio::select! {
                _ = self.stop.cancelled(), if !self.ended => {
                    self.ended = true;
                    stopped = true;
                }
                received = self.subscription.recv(&mut self.events, BATCH), if !self.ended => {
                    if received.lost > 0 {
                        debug!(stream = %self.stream.name, target = %self.status.url, lost = received.lost, "relay lost media in the fan-out");
                        self.shared.metrics.media_events_lost_total.inc_by(received.lost);
                    }
                    if let Err(e) = self.take(session, received) {
                        return self.give_up(e, session, reader, writer, out).await;
                    }
                }
                pushed = write_or_flush(&mut writer, &out), if !out.is_empty() || unflushed => {
                    match pushed? {
                        Some(0) => return Err(RelayError::Closed),
                        Some(n) => {
                            out.advance(n);
                            self.status.sent(n);
                            wrote_at = tokio::time::Instant::now();
                            unflushed = true;
                        }
                        None => unflushed = false,
                    }
                }
                read = reader.read_buf(&mut input) => {
                    if read? == 0 {
                        return Err(RelayError::Closed);
                    }
                    if session.feed(&mut input, &mut out)? == Progress::Closed {
                        // A confirmation of an unpublish not asked for: the publish is over.
                        return Err(RelayError::Closed);
                    }
                }
                _ = tokio::time::sleep_until(wrote_at + WRITE_TIMEOUT), if !out.is_empty() => {
                    return Err(RelayError::Stalled(WRITE_TIMEOUT));
                }
                _ = sleep_until_or_never(drain_until) => break,
            }
        }
        session.drop_queued();
        self.unpublish(session, reader, writer, out).await;
        Ok(())
    }

    /// Queues what the fan-out delivered, until an event that ends the publish.
    fn take(&mut self, session: &mut RelaySession, received: Received) -> Result<(), RelayError> {
        let now = Instant::now();
        let mut events = std::mem::take(&mut self.events);
        let mut result = Ok(());
        for event in events.drain(..) {
            self.observe(&event);
            if self.ended {
                break;
            }
            match session.take(&event, now) {
                Ok(taken) if taken.skipped => debug!(
                    stream = %self.stream.name,
                    target = %self.status.url,
                    "relay target fell behind: video skipped to the next keyframe"
                ),
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        events.clear();
        self.events = events;
        if received.closed {
            self.ended = true;
        }
        result
    }

    /// The stream cannot go on to this target (it cannot take it, or keeps falling
    /// behind): the publish is ended cleanly, and the attempt failed with `error`.
    async fn give_up(
        &mut self,
        error: RelayError,
        session: &mut RelaySession,
        reader: tokio::io::ReadHalf<Box<dyn Io>>,
        writer: tokio::io::WriteHalf<Box<dyn Io>>,
        out: BytesMut,
    ) -> Result<(), RelayError> {
        session.drop_queued();
        self.unpublish(session, reader, writer, out).await;
        Err(error)
    }

    /// Writes what is pending and the unpublish, waits a moment for the target to confirm
    /// (or close), and closes the connection. Best effort: the target may be gone.
    async fn unpublish(
        &self,
        session: &mut RelaySession,
        mut reader: tokio::io::ReadHalf<Box<dyn Io>>,
        mut writer: tokio::io::WriteHalf<Box<dyn Io>>,
        mut out: BytesMut,
    ) {
        if session.unpublish(&mut out).is_err() {
            return;
        }
        let status = &self.status;
        let goodbye = async {
            writer.write_all(&out).await?;
            status.sent(out.len());
            writer.flush().await?;
            let mut input = BytesMut::with_capacity(4096);
            let mut answers = BytesMut::new();
            loop {
                if reader.read_buf(&mut input).await? == 0 {
                    break;
                }
                if session.feed(&mut input, &mut answers)? == Progress::Closed {
                    break;
                }
            }
            writer.shutdown().await?;
            Ok::<_, RelayError>(())
        };
        if let Err(e) = tokio::time::timeout(UNPUBLISH_TIMEOUT, goodbye)
            .await
            .unwrap_or(Err(RelayError::Timeout(UNPUBLISH_TIMEOUT)))
        {
            debug!(stream = %self.stream.name, target = %self.status.url, "relay unpublish: {e}");
        }
    }
}

/// Writes some of `out`, or with nothing to write flushes (TLS holds records back until
/// then); `None` after a flush.
async fn write_or_flush(
    writer: &mut tokio::io::WriteHalf<Box<dyn Io>>,
    out: &[u8],
) -> std::io::Result<Option<usize>> {
    if out.is_empty() {
        writer.flush().await?;
        Ok(None)
    } else {
        writer.write(out).await.map(Some)
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The handshake, `connect` and `publish`, until the target accepts the publish (or
/// refuses it, or goes away).
async fn handshake(
    io: &mut Box<dyn Io>,
    session: &mut RelaySession,
    out: &mut BytesMut,
    input: &mut BytesMut,
    status: &RelayStatus,
) -> Result<(), RelayError> {
    loop {
        if !out.is_empty() {
            io.write_all(out).await?;
            io.flush().await?;
            status.sent(out.len());
            out.clear();
        }
        if session.is_published() {
            return Ok(());
        }
        if io.read_buf(input).await? == 0 {
            return Err(RelayError::Closed);
        }
        session.feed(input, out)?;
    }
}
