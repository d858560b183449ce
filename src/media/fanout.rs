//! One stream's fan-out: every [`MediaEvent`] its publisher's ingest produces, delivered in
//! order to every output that subscribed (TS HLS, CMAF HLS, and later players, recording and
//! uploads), without any output ever holding up the ingest or another output.
//!
//! The fan-out keeps each event until every subscriber has taken it, within bounds
//! ([`Limits`]): a subscriber that falls so far behind that the oldest events it has not taken
//! must go loses them. It is then told how many it lost, and it resumes at the next point a
//! decoder can start: the next keyframe of the stream's lead track (or the next publisher's
//! start), announced by a [`MediaEvent::Start`] that carries the tracks and codec
//! configurations as they apply there. An output treats that `Start` as it treats a new
//! publisher: what it held unfinished is dropped, and it continues after a discontinuity.
//! A subscriber that joins while a publisher is live starts the same way, at the next
//! keyframe, or, with the GOP cache on ([`Limits::last_gop`]) and through
//! [`FanOut::subscribe_at_keyframe`], at the last one: the fan-out then also keeps the events
//! since the lead track's last keyframe, so a player's first picture needs no wait.
//!
//! Only the stream's current publisher may push: a connection that was taken over cannot
//! slip events in after its successor's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::media::frame::{MediaEvent, TrackId, Tracks};

/// How much a fan-out may hold for subscribers that have not taken it yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most events held.
    pub events: usize,
    /// Most payload bytes held.
    pub bytes: usize,
    /// Also keep the events since the lead track's last keyframe (the GOP cache,
    /// `rtmp.gop_cache`), within the same limits, for subscribers that start there.
    pub last_gop: bool,
}

impl Default for Limits {
    /// Far more than a publisher delivers between two turns of its outputs: the ingest reads
    /// at most 4 MiB per turn (`rtmp::merged_read`) and one message is at most 16 MiB, so an
    /// output that keeps up never loses anything; a stuck one costs a stream at most this.
    fn default() -> Limits {
        Limits {
            events: 16_384,
            bytes: 48 * 1024 * 1024,
            last_gop: false,
        }
    }
}

/// The producer's handle (cloning it shares the same fan-out).
#[derive(Clone)]
pub struct FanOut {
    shared: Arc<Shared>,
}

/// One subscriber's handle: takes the events in order.
pub struct Subscription {
    shared: Arc<Shared>,
    id: u64,
    notify: Arc<Notify>,
}

struct Shared {
    state: Mutex<State>,
    limits: Limits,
}

struct State {
    slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]`.
    first: u64,
    bytes: usize,
    /// The tracks, with their configurations, as they apply just before `slots[0]` (`None`
    /// when no publisher's media is under way there).
    base: Option<Arc<Tracks>>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    /// The tracks as they apply after the last slot.
    tip: Option<Arc<Tracks>>,
    /// Sequence number of the lead track's last keyframe while a publisher's media is under
    /// way, when the GOP cache is on: slots from there on are kept.
    gop: Option<u64>,
    /// The publisher whose events are taken.
    publisher: Option<u64>,
    closed: bool,
}

struct Slot {
    event: MediaEvent,
    /// Subscribers that have not taken it yet.
    pending: usize,
}

struct Subscriber {
    id: u64,
    /// Sequence number of the next event it takes.
    cursor: u64,
    notify: Arc<Notify>,
    /// It waits for an event.
    waiting: bool,
    /// It lost events (or joined mid-stream) and skips to the next place a decoder can start.
    resync: bool,
    /// Events it lost since it last took any.
    lost: u64,
}

/// What [`Subscription::recv`] delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Events appended to the caller's buffer.
    pub events: usize,
    /// Events this subscriber lost since it last took any (it fell behind the limits).
    pub lost: u64,
    /// The fan-out is closed and everything in it was taken: nothing more will come.
    pub closed: bool,
}

impl FanOut {
    pub fn new(limits: Limits) -> FanOut {
        FanOut {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    slots: VecDeque::new(),
                    first: 0,
                    bytes: 0,
                    base: None,
                    subscribers: Vec::new(),
                    next_id: 0,
                    tip: None,
                    gop: None,
                    publisher: None,
                    closed: false,
                }),
                limits,
            }),
        }
    }

    /// From now on only `publisher`'s events are taken.
    pub fn set_publisher(&self, publisher: u64) {
        self.shared.lock().publisher = Some(publisher);
    }

    /// Appends `events` (drained) if `publisher` is the stream's publisher; returns whether
    /// it was (a taken-over publisher's events are dropped).
    pub fn push(&self, publisher: u64, events: &mut Vec<MediaEvent>) -> bool {
        let mut state = self.shared.lock();
        if state.publisher != Some(publisher) || state.closed {
            events.clear();
            return false;
        }
        let pending = state.subscribers.len();
        let last_gop = self.shared.limits.last_gop;
        for event in events.drain(..) {
            fold(&mut state.tip, &event);
            match &event {
                MediaEvent::Frame(f)
                    if last_gop
                        && f.keyframe
                        && state.tip.as_ref().and_then(|t| t.lead()) == Some(f.track) =>
                {
                    state.gop = Some(state.end());
                }
                MediaEvent::Start(_) | MediaEvent::End(_) => state.gop = None,
                _ => {}
            }
            state.bytes += event.payload_len();
            state.slots.push_back(Slot { event, pending });
        }
        state.enforce(self.shared.limits);
        state.trim();
        state.wake();
        true
    }

    /// Ends the fan-out: subscribers take what is left, then learn it is closed.
    pub fn close(&self) {
        let mut state = self.shared.lock();
        state.closed = true;
        for s in &mut state.subscribers {
            s.waiting = false;
            s.notify.notify_one();
        }
    }

    /// A new subscriber. While a publisher's media is under way it starts at the next
    /// keyframe of the lead track (with a `Start` giving the tracks as they apply there);
    /// otherwise with the next event.
    pub fn subscribe(&self) -> Subscription {
        let mut state = self.shared.lock();
        let id = state.next_id;
        state.next_id += 1;
        let notify = Arc::new(Notify::new());
        let end = state.end();
        let live = state.tracks_at(state.slots.len()).is_some();
        state.subscribers.push(Subscriber {
            id,
            cursor: end,
            notify: notify.clone(),
            waiting: false,
            resync: live,
            lost: 0,
        });
        Subscription {
            shared: self.shared.clone(),
            id,
            notify,
        }
    }

    /// A new subscriber that starts at the lead track's last keyframe when the GOP cache
    /// holds one (with a `Start` giving the tracks as they apply there), so what it gets
    /// begins with a picture at once; otherwise as [`FanOut::subscribe`].
    pub fn subscribe_at_keyframe(&self) -> Subscription {
        let subscription = self.subscribe();
        let mut state = self.shared.lock();
        if let Some(gop) = state.gop {
            let first = state.first;
            let from = (gop - first) as usize;
            for slot in state.slots.iter_mut().skip(from) {
                slot.pending += 1;
            }
            if let Some(s) = state
                .subscribers
                .iter_mut()
                .find(|s| s.id == subscription.id)
            {
                s.cursor = gop;
                s.resync = true;
            }
        }
        subscription
    }

    /// Events and payload bytes held now.
    pub fn held(&self) -> (usize, usize) {
        let state = self.shared.lock();
        (state.slots.len(), state.bytes)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent between statements that cannot
        // panic, so a poisoned lock's data is still good.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    /// Sequence number after the last slot.
    fn end(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// The tracks as they apply before slot `index` (base plus the events before it).
    fn tracks_at(&self, index: usize) -> Option<Arc<Tracks>> {
        let mut tracks = self.base.clone();
        for slot in self.slots.iter().take(index) {
            fold(&mut tracks, &slot.event);
        }
        tracks
    }

    /// Drops the oldest slots while over the limits; subscribers that had not taken them
    /// lose them and resynchronise.
    fn enforce(&mut self, limits: Limits) {
        while self.slots.len() > limits.events || self.bytes > limits.bytes {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            let seq = self.first;
            if self.gop == Some(seq) {
                // The cached GOP no longer starts at its keyframe.
                self.gop = None;
            }
            for s in &mut self.subscribers {
                if s.cursor == seq {
                    s.cursor += 1;
                    s.lost += 1;
                    s.resync = true;
                }
            }
            self.forget(slot);
        }
    }

    /// Drops slots every subscriber has taken, except the cached GOP.
    fn trim(&mut self) {
        while self.slots.front().is_some_and(|s| s.pending == 0)
            && self.gop.is_none_or(|gop| self.first < gop)
        {
            if let Some(slot) = self.slots.pop_front() {
                self.forget(slot);
            }
        }
    }

    /// The front slot leaves: its event is folded into the base.
    fn forget(&mut self, slot: Slot) {
        self.first += 1;
        self.bytes -= slot.event.payload_len();
        fold(&mut self.base, &slot.event);
    }

    fn wake(&mut self) {
        let end = self.end();
        for s in &mut self.subscribers {
            if s.waiting && (s.cursor < end || s.lost > 0) {
                s.waiting = false;
                s.notify.notify_one();
            }
        }
    }

    fn lead(&self, index: usize) -> Option<TrackId> {
        self.tracks_at(index)?.lead()
    }
}

/// Applies `event` to the tracks as they stand.
fn fold(tracks: &mut Option<Arc<Tracks>>, event: &MediaEvent) {
    match event {
        MediaEvent::Start(t) => *tracks = Some(t.clone()),
        MediaEvent::Config(id, config) => {
            if let Some(t) = tracks {
                let t = Arc::make_mut(t);
                if let Some(track) = t.tracks.get_mut(usize::from(id.0)) {
                    track.config = Some(config.clone());
                }
            }
        }
        MediaEvent::End(_) => *tracks = None,
        MediaEvent::Frame(_) => {}
    }
}

impl Subscription {
    /// Appends up to `max` events to `out`, waiting until there is at least one (or a loss
    /// to report, or the end).
    pub async fn recv(&mut self, out: &mut Vec<MediaEvent>, max: usize) -> Received {
        loop {
            let received = self.try_recv(out, max);
            if received.events > 0 || received.lost > 0 || received.closed {
                return received;
            }
            self.notify.notified().await;
        }
    }

    /// [`Subscription::recv`] without waiting: what is there now (possibly nothing; then the
    /// subscriber is marked as waiting and the next push wakes it).
    pub fn try_recv(&mut self, out: &mut Vec<MediaEvent>, max: usize) -> Received {
        let mut guard = self.shared.lock();
        let state = &mut *guard;
        let Some(at) = state.subscribers.iter().position(|s| s.id == self.id) else {
            return Received {
                closed: true,
                ..Received::default()
            };
        };
        let first = state.first;
        let mut index = (state.subscribers[at].cursor - first) as usize;
        let mut resync = state.subscribers[at].resync;
        let lead = if resync { state.lead(index) } else { None };
        let mut taken = 0;
        while index < state.slots.len() && taken < max {
            let event = &state.slots[index].event;
            if resync {
                let restart = match event {
                    MediaEvent::Start(_) | MediaEvent::End(_) => true,
                    MediaEvent::Frame(f) => f.keyframe && Some(f.track) == lead,
                    MediaEvent::Config(..) => false,
                };
                if restart {
                    resync = false;
                    if matches!(event, MediaEvent::Frame(_))
                        && let Some(tracks) = state.tracks_at(index)
                    {
                        out.push(MediaEvent::Start(tracks));
                    }
                }
            }
            if !resync {
                out.push(state.slots[index].event.clone());
                taken += 1;
            }
            state.slots[index].pending -= 1;
            index += 1;
        }
        let subscriber = &mut state.subscribers[at];
        subscriber.cursor = first + index as u64;
        subscriber.resync = resync;
        let lost = std::mem::take(&mut subscriber.lost);
        let closed = state.closed && index == state.slots.len();
        if taken == 0 && lost == 0 && !closed {
            subscriber.waiting = true;
        }
        state.trim();
        Received {
            events: taken,
            lost,
            closed,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(at) = state.subscribers.iter().position(|s| s.id == self.id) {
            let gone = state.subscribers.swap_remove(at);
            let from = (gone.cursor - state.first) as usize;
            for slot in state.slots.iter_mut().skip(from) {
                slot.pending -= 1;
            }
            state.trim();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::media::codec::TrackKind;
    use crate::media::frame::{Ending, Frame, Track};
    use crate::media::{Duration90k, Timestamp90k};

    fn start() -> MediaEvent {
        MediaEvent::Start(Arc::new(Tracks {
            publisher: 1,
            tracks: vec![
                Track {
                    id: TrackId(0),
                    kind: TrackKind::Video,
                    source: 0,
                    config: None,
                },
                Track {
                    id: TrackId(1),
                    kind: TrackKind::Audio,
                    source: 0,
                    config: None,
                },
            ],
        }))
    }

    fn frame(track: u8, keyframe: bool, len: usize) -> MediaEvent {
        MediaEvent::Frame(Frame {
            track: TrackId(track),
            dts: Timestamp90k(0),
            pts: Timestamp90k(0),
            duration: Duration90k(3_000),
            keyframe,
            discontinuity: false,
            data: Bytes::from(vec![0; len]),
            received: Instant::now(),
        })
    }

    fn kinds(events: &[MediaEvent]) -> String {
        events
            .iter()
            .map(|e| match e {
                MediaEvent::Start(_) => "S".to_string(),
                MediaEvent::Config(..) => "C".to_string(),
                MediaEvent::Frame(f) if f.keyframe && f.track == TrackId(0) => "K".to_string(),
                MediaEvent::Frame(f) if f.track == TrackId(0) => "v".to_string(),
                MediaEvent::Frame(_) => "a".to_string(),
                MediaEvent::End(_) => "E".to_string(),
            })
            .collect()
    }

    const LIMITS: Limits = Limits {
        events: 8,
        bytes: 1_000,
        last_gop: false,
    };

    const GOP: Limits = Limits {
        last_gop: true,
        ..LIMITS
    };

    #[test]
    fn the_gop_cache_starts_a_new_player_at_the_last_keyframe() {
        let fan = FanOut::new(GOP);
        let mut hls = fan.subscribe();
        fan.set_publisher(1);
        let mut got = Vec::new();
        fan.push(1, &mut vec![start(), frame(0, true, 10), frame(1, true, 5)]);
        fan.push(1, &mut vec![frame(0, false, 10)]);
        hls.try_recv(&mut got, 100);
        assert_eq!(
            fan.held(),
            (3, 25),
            "the GOP stays after every subscriber took it"
        );
        let mut player = fan.subscribe_at_keyframe();
        got.clear();
        player.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SKav");
        // A new keyframe: the cache moves on to it.
        fan.push(1, &mut vec![frame(0, true, 10), frame(1, true, 5)]);
        hls.try_recv(&mut got, 100);
        player.try_recv(&mut got, 100);
        assert_eq!(fan.held(), (2, 15));
        let mut late = fan.subscribe_at_keyframe();
        got.clear();
        late.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SKa");
        // The end empties it: nothing is live to start at.
        fan.push(1, &mut vec![MediaEvent::End(Ending::Stopped)]);
        for s in [&mut hls, &mut player, &mut late] {
            s.try_recv(&mut got, 100);
        }
        assert_eq!(fan.held(), (0, 0));
    }

    #[test]
    fn without_the_gop_cache_a_new_player_waits_for_the_next_keyframe() {
        let fan = FanOut::new(LIMITS);
        fan.set_publisher(1);
        fan.push(
            1,
            &mut vec![start(), frame(0, true, 10), frame(0, false, 10)],
        );
        assert_eq!(fan.held(), (0, 0));
        let mut player = fan.subscribe_at_keyframe();
        fan.push(1, &mut vec![frame(0, false, 10), frame(0, true, 10)]);
        let mut got = Vec::new();
        player.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SK");
    }

    #[test]
    fn a_gop_beyond_the_limits_is_not_kept_from_mid_gop() {
        let fan = FanOut::new(GOP);
        fan.set_publisher(1);
        fan.push(
            1,
            &mut vec![start(), frame(0, true, 600), frame(0, false, 600)],
        );
        // The keyframe went to stay within the byte limit: a new player waits for the next.
        let mut player = fan.subscribe_at_keyframe();
        fan.push(1, &mut vec![frame(0, false, 10), frame(0, true, 10)]);
        let mut got = Vec::new();
        player.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SK");
    }

    #[test]
    fn every_subscriber_gets_every_event_in_order_and_nothing_stays_held() {
        let fan = FanOut::new(LIMITS);
        let mut a = fan.subscribe();
        let mut b = fan.subscribe();
        fan.set_publisher(1);
        let mut batch = vec![start(), frame(0, true, 10), frame(1, true, 5)];
        assert!(fan.push(1, &mut batch));
        assert!(batch.is_empty());
        let mut got = Vec::new();
        assert_eq!(a.try_recv(&mut got, 100).events, 3);
        assert_eq!(kinds(&got), "SKa");
        assert_eq!(fan.held(), (3, 15), "b has not taken them");
        got.clear();
        assert_eq!(b.try_recv(&mut got, 2).events, 2);
        assert_eq!(b.try_recv(&mut got, 2).events, 1);
        assert_eq!(kinds(&got), "SKa");
        assert_eq!(fan.held(), (0, 0));
    }

    #[test]
    fn a_taken_over_publisher_cannot_push() {
        let fan = FanOut::new(LIMITS);
        let mut a = fan.subscribe();
        fan.set_publisher(1);
        assert!(fan.push(1, &mut vec![start()]));
        fan.set_publisher(2);
        assert!(!fan.push(1, &mut vec![frame(0, true, 1)]));
        assert!(fan.push(2, &mut vec![start()]));
        let mut got = Vec::new();
        a.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SS");
    }

    #[test]
    fn a_subscriber_that_falls_behind_loses_the_oldest_and_resumes_at_a_keyframe() {
        let fan = FanOut::new(LIMITS);
        let mut slow = fan.subscribe();
        let mut fast = fan.subscribe();
        fan.set_publisher(1);
        let mut got = Vec::new();
        let mut events = vec![start(), frame(0, true, 10)];
        events.extend((0..10).map(|i| frame((i % 2) as u8, false, 10)));
        events.push(frame(0, true, 10));
        events.push(frame(1, true, 10));
        for e in events {
            assert!(fan.push(1, &mut vec![e]));
            fast.try_recv(&mut got, 100);
        }
        assert_eq!(kinds(&got), "SKvavavavavaKa");
        assert_eq!(fan.held().0, LIMITS.events, "bounded by the limit");
        let mut late = Vec::new();
        let r = slow.try_recv(&mut late, 100);
        assert_eq!(r.lost, 6);
        // The held events start mid-GOP: skipped up to the keyframe, which a Start precedes.
        assert_eq!(kinds(&late), "SKa");
        assert_eq!(fan.held(), (0, 0));
        let MediaEvent::Start(tracks) = &late[0] else {
            unreachable!()
        };
        assert_eq!(tracks.tracks.len(), 2);
    }

    #[test]
    fn byte_limit_bounds_what_is_held() {
        let fan = FanOut::new(LIMITS);
        let _stuck = fan.subscribe();
        fan.set_publisher(1);
        fan.push(1, &mut vec![start()]);
        for _ in 0..100 {
            fan.push(1, &mut vec![frame(0, true, 300)]);
            let (_, bytes) = fan.held();
            assert!(bytes <= LIMITS.bytes, "{bytes}");
        }
    }

    #[test]
    fn a_late_subscriber_starts_at_the_next_keyframe_with_the_current_configs() {
        let fan = FanOut::new(LIMITS);
        fan.set_publisher(1);
        fan.push(1, &mut vec![start(), frame(0, true, 1)]);
        let mut late = fan.subscribe();
        fan.push(
            1,
            &mut vec![frame(1, true, 1), frame(0, false, 1), frame(0, true, 1)],
        );
        let mut got = Vec::new();
        late.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SK");
        // With nobody subscribed, nothing was held.
        assert_eq!(fan.held(), (0, 0));
    }

    #[test]
    fn a_subscriber_before_the_publisher_gets_everything_and_the_end_passes_a_resync() {
        let fan = FanOut::new(LIMITS);
        let mut early = fan.subscribe();
        fan.set_publisher(1);
        fan.push(
            1,
            &mut vec![start(), frame(0, true, 1), MediaEvent::End(Ending::Stopped)],
        );
        let mut got = Vec::new();
        early.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "SKE");
        // Joining after the end: nothing live, so nothing to skip.
        let mut after = fan.subscribe();
        fan.set_publisher(2);
        fan.push(2, &mut vec![start(), frame(0, false, 1)]);
        got.clear();
        after.try_recv(&mut got, 100);
        assert_eq!(kinds(&got), "Sv");
    }

    #[test]
    fn a_dropped_subscriber_releases_what_it_had_not_taken() {
        let fan = FanOut::new(LIMITS);
        let a = fan.subscribe();
        fan.set_publisher(1);
        fan.push(1, &mut vec![start(), frame(0, true, 100)]);
        assert_eq!(fan.held(), (2, 100));
        drop(a);
        assert_eq!(fan.held(), (0, 0));
    }

    #[tokio::test]
    async fn recv_waits_for_a_push_and_sees_the_close() {
        let fan = FanOut::new(LIMITS);
        let mut sub = fan.subscribe();
        fan.set_publisher(1);
        let producer = fan.clone();
        let task = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut total = 0;
            loop {
                let r = sub.recv(&mut got, 100).await;
                total += r.events;
                if r.closed {
                    return (total, kinds(&got));
                }
            }
        });
        tokio::task::yield_now().await;
        producer.push(1, &mut vec![start(), frame(0, true, 1)]);
        tokio::task::yield_now().await;
        producer.push(1, &mut vec![MediaEvent::End(Ending::Stopped)]);
        producer.close();
        let (total, k) = task.await.unwrap();
        assert_eq!((total, k.as_str()), (3, "SKE"));
    }
}
