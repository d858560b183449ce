//! One stream as the rest of the server sees it: the fan-out that carries its media to its
//! outputs, the windows HTTP serves, who publishes it now, and the figures the stats API
//! reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::hls::blocking::Position;
use crate::hls::ll_stream::LlStream;
use crate::hls::rendition::Rendition;
use crate::hls::served::Served;
use crate::hls::stream::{HlsStream, PlaylistSnapshot, Segment};
use crate::hub::history::History;
use crate::hub::key::StreamKey;
use crate::hub::stop::StopSignal;
use crate::media::codec::TrackSummary;
use crate::media::fanout::FanOut;
use crate::media::{Duration90k, Timestamp90k};
use crate::relay::status::{RelayReport, RelayStatus};
use crate::thumbnail::cache::StreamThumbnails;

/// A player counts as a viewer for this long after it last fetched the playlist.
pub const VIEWER_WINDOW: Duration = Duration::from_secs(30);

/// Players remembered per stream for the viewer estimate. Beyond it the estimate saturates
/// rather than letting requests with made-up identities grow memory.
const MAX_TRACKED_VIEWERS: usize = 10_000;

/// Tracks whose bit rates are measured one by one (more than any publish may carry).
const MAX_MEASURED_TRACKS: usize = 64;

/// The ingest bitrate is measured over windows of about this length.
const BITRATE_WINDOW: Duration = Duration::from_secs(2);

/// What the publisher sends, as the stats API reports it.
#[derive(Clone, Debug, Default)]
pub struct MediaInfo {
    /// The first video track (the lowest FLV track id).
    pub video: Option<TrackSummary>,
    /// The first audio track.
    pub audio: Option<TrackSummary>,
    /// Every track, as its configuration last said, in the order they came.
    pub tracks: Vec<TrackSummary>,
    /// Frames per second: from the codec configuration's timing, or else the encoder's
    /// metadata.
    pub frame_rate: Option<f64>,
    pub keyframe_interval: Option<Duration90k>,
    /// The latest advice about the keyframe interval the server logged for the encoder.
    pub keyframe_advice: Option<String>,
    /// The encoder's name, from its metadata.
    pub encoder: Option<String>,
    /// Names and languages the publisher's metadata gives its audio tracks.
    pub audio_labels: Vec<crate::media::frame::TrackName>,
    /// Segments of a multitrack publish's renditions that started where the first video
    /// rendition's did not (the encoder's keyframes are not aligned).
    pub misaligned_cuts: u64,
}

/// A multitrack publish's renditions and their multivariant playlist.
#[derive(Default)]
struct Renditions {
    list: Arc<[Arc<Rendition>]>,
    multivariant: Option<Arc<PlaylistSnapshot>>,
    /// Renditions of earlier publishes the current one does not have: no longer served, but
    /// swept until their files' availability has passed and they are deleted.
    retired: Vec<Arc<Rendition>>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a few assignments).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection that publishes a stream now.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// Unique for the server's life; tells a publisher apart from the one that took over.
    pub id: u64,
    pub addr: SocketAddr,
    pub started: SystemTime,
    pub started_at: Instant,
    /// Given when another publisher takes the stream over, the key is revoked, or the
    /// operator stops the stream.
    pub stop: StopSignal,
}

/// A live (or recently ended) stream.
pub struct Stream {
    pub app: String,
    /// The name HLS is served under: the key itself, or the stream-service's playback id.
    pub name: StreamKey,
    /// The publishing key (secret when `name` is a playback id).
    pub key: StreamKey,
    /// Carries the publisher's media to every output.
    pub fanout: FanOut,
    /// The classic TS output's window (`index.m3u8`), when that output is on.
    pub ts: Option<Arc<Served<HlsStream>>>,
    /// The CMAF output's Low-Latency window (`llhls.m3u8`), when that output is on, and where
    /// it stands (blocking playlist requests and hinted parts wait on it).
    pub cmaf: Option<Arc<Served<LlStream>>>,
    position: watch::Sender<Position>,
    /// A multitrack publish's renditions (each track as a media playlist of its own) and
    /// their multivariant playlist; empty for a single-track publish.
    renditions: Mutex<Renditions>,
    /// The current publish's codecs are not all ones MPEG-TS carries here: `index.m3u8`
    /// serves the CMAF playlist.
    classic_is_cmaf: AtomicBool,
    /// The publisher whose publish is recorded (0: none). Set by the ingest at a publish's
    /// start and by the API during it; the CMAF task follows it.
    recorded: AtomicU64,
    /// The recording being written (the CMAF task's recorder says).
    recording: Mutex<Option<Arc<str>>>,
    publisher: Mutex<Option<Publisher>>,
    /// Bytes of audio/video/data messages received from publishers.
    pub bytes_in: AtomicU64,
    /// Per output, bytes of the segment or part it is writing.
    open_bytes: [AtomicUsize; OUTPUT_KINDS],
    media: Mutex<MediaInfo>,
    /// Ingest bitrate in bits per second over the last measuring window.
    bitrate: AtomicU64,
    /// The ingest bit rate in kbit/s, sampled every [`crate::hub::history::INTERVAL`] while the stream
    /// is live (the last [`crate::hub::history::SAMPLES`]).
    bitrate_history: Mutex<History<u64>>,
    /// When and at what byte count the current measuring window began.
    bitrate_window: Mutex<(Instant, u64)>,
    /// Payload bytes per track of the current publish (by its track id), and the bit rates
    /// measured from them over the same windows as [`Stream::bitrate`].
    track_bytes: [AtomicU64; MAX_MEASURED_TRACKS],
    track_window: Mutex<[u64; MAX_MEASURED_TRACKS]>,
    track_bps: [AtomicU64; MAX_MEASURED_TRACKS],
    /// The current publish's tracks as (kind, FLV track id), in track id order.
    track_layout: Mutex<Vec<(&'static str, u8)>>,
    /// Players (a hash of address and user agent), when they last fetched the playlist, and
    /// which playlist they play.
    viewers: Mutex<HashMap<u64, (Instant, Playlist)>>,
    /// Players reading the stream now (RTMP, HTTP-FLV, WebSocket-FLV), by
    /// `playback::Protocol`.
    players: [AtomicUsize; PROTOCOLS],
    /// The publisher whose first segment has been listed (0: none yet).
    playable: watch::Sender<u64>,
    /// Per output, the decode time of the lead-track frame it waits for next
    /// ([`NOTHING_AWAITED`]: none): the ingest reads promptly when such a frame is due.
    awaited: [AtomicU64; OUTPUT_KINDS],
    /// When a request last began to wait on the Low-Latency window, in milliseconds after
    /// `born` (0: never).
    held_at: AtomicU64,
    born: Instant,
    /// Where the relay targets of the stream's publishes stand (those of a publish that was
    /// taken over stay until their tasks have unpublished).
    relays: Mutex<Vec<Arc<RelayStatus>>>,
    /// The lead video track's latest keyframe (and the current publish's first), and the
    /// thumbnails made of them.
    pub thumbnails: Arc<StreamThumbnails>,
}

/// How long after a request last waited on a stream's Low-Latency window its parts are
/// still read promptly: a Low-Latency player waits for every part (ten in this time at the
/// default part length), so only a stream without one stops.
const WAITERS_MEMORY: Duration = Duration::from_secs(2);

/// How many kinds of output can say which frame they wait for.
const OUTPUT_KINDS: usize = 2;

/// An output that tells the ingest which frame it waits for (see [`Stream::set_awaited`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    Ts = 0,
    Cmaf = 1,
}

/// The playlist a viewer plays: the classic one (`index.m3u8`) or the Low-Latency one
/// (`llhls.m3u8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Playlist {
    Classic,
    LowLatency,
}

/// Viewers of a stream by playlist (see [`Stream::viewers_by_playlist`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViewerCounts {
    pub classic: usize,
    pub low_latency: usize,
}

impl ViewerCounts {
    /// Viewers of either playlist.
    pub fn total(&self) -> usize {
        self.classic + self.low_latency
    }
}

/// How many protocols players read streams over (`playback::Protocol`).
pub const PROTOCOLS: usize = 3;

/// No frame awaited.
const NOTHING_AWAITED: u64 = u64::MAX;

impl Stream {
    pub fn new(
        app: String,
        name: StreamKey,
        key: StreamKey,
        fanout: FanOut,
        ts: Option<Arc<Served<HlsStream>>>,
        cmaf: Option<Arc<Served<LlStream>>>,
    ) -> Stream {
        Stream {
            app,
            name,
            key,
            fanout,
            ts,
            cmaf,
            position: watch::Sender::new(Position::default()),
            renditions: Mutex::new(Renditions::default()),
            classic_is_cmaf: AtomicBool::new(false),
            recorded: AtomicU64::new(0),
            recording: Mutex::new(None),
            publisher: Mutex::new(None),
            bytes_in: AtomicU64::new(0),
            open_bytes: std::array::from_fn(|_| AtomicUsize::new(0)),
            media: Mutex::new(MediaInfo::default()),
            bitrate: AtomicU64::new(0),
            bitrate_history: Mutex::new(History::default()),
            bitrate_window: Mutex::new((Instant::now(), 0)),
            track_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            track_window: Mutex::new([0; MAX_MEASURED_TRACKS]),
            track_bps: std::array::from_fn(|_| AtomicU64::new(0)),
            track_layout: Mutex::new(Vec::new()),
            viewers: Mutex::new(HashMap::new()),
            players: std::array::from_fn(|_| AtomicUsize::new(0)),
            playable: watch::Sender::new(0),
            awaited: std::array::from_fn(|_| AtomicU64::new(NOTHING_AWAITED)),
            held_at: AtomicU64::new(0),
            born: Instant::now(),
            relays: Mutex::new(Vec::new()),
            thumbnails: Arc::default(),
        }
    }

    /// `output` waits next for the lead-track frame with this decode time (the one that
    /// completes its part or segment), or for nothing in particular.
    pub fn set_awaited(&self, output: OutputKind, dts: Option<Timestamp90k>) {
        let value = dts.map_or(NOTHING_AWAITED, |t| t.ticks().min(NOTHING_AWAITED - 1));
        self.awaited[output as usize].store(value, Ordering::Relaxed);
    }

    /// The soonest frame an output waits for that someone is waiting for: the classic
    /// output's next cut always (its players poll, and find the segment listed the sooner),
    /// the Low-Latency output's next part only while requests wait on the stream's window
    /// (blocked playlist reloads, hinted parts: one held now or within [`WAITERS_MEMORY`]).
    /// A part nobody waits for is listed when its frame is read on the merged-read grid,
    /// and sparing the prompt read saves the ingest two wakeups per part.
    pub fn awaited(&self) -> Option<Timestamp90k> {
        let held = self.position.receiver_count() > 0
            || self.renditions().iter().any(|r| r.is_waited_on())
            || {
                let at = self.held_at.load(Ordering::Relaxed);
                at > 0 && millis_since(self.born) < at + WAITERS_MEMORY.as_millis() as u64
            };
        let soonest = self
            .awaited
            .iter()
            .enumerate()
            .filter(|&(kind, _)| kind != OutputKind::Cmaf as usize || held)
            .map(|(_, a)| a.load(Ordering::Relaxed))
            .min()?;
        (soonest != NOTHING_AWAITED).then_some(Timestamp90k(soonest))
    }

    pub fn publisher(&self) -> Option<Publisher> {
        lock(&self.publisher).clone()
    }

    pub(crate) fn publisher_slot(&self) -> MutexGuard<'_, Option<Publisher>> {
        lock(&self.publisher)
    }

    /// Whether `id` still publishes this stream (it may have been taken over).
    pub fn is_published_by(&self, id: u64) -> bool {
        lock(&self.publisher).as_ref().is_some_and(|p| p.id == id)
    }

    /// A new publisher continues this stream: what the stream reports about its media
    /// starts afresh, and only the new publisher's media reaches the outputs.
    pub(crate) fn begin_publisher(&self, id: u64) {
        *lock(&self.media) = MediaInfo::default();
        for bytes in &self.open_bytes {
            bytes.store(0, Ordering::Relaxed);
        }
        self.fanout.set_publisher(id);
    }

    /// An output listed a segment of publisher `id`: its stream is playable.
    pub fn mark_playable(&self, id: u64) {
        self.playable.send_if_modified(|current| {
            let changed = *current != id;
            *current = id;
            changed
        });
    }

    /// Follows which publisher's stream is playable (see [`Stream::mark_playable`]).
    pub fn playable(&self) -> watch::Receiver<u64> {
        self.playable.subscribe()
    }

    /// Drops what has outlived its availability; true when nothing is left to serve.
    pub(crate) fn sweep(&self, now: Instant) -> bool {
        let ts = self
            .ts
            .as_ref()
            .is_none_or(|ts| ts.update(|hls, actions| hls.sweep(now, actions)));
        let cmaf = self.cmaf.as_ref().is_none_or(|ll| {
            ll.update(|w, actions| {
                let gone = w.sweep(now, actions);
                self.set_position(w.position());
                gone
            })
        });
        let sweep = |r: &Arc<Rendition>| {
            r.window.update(|w, actions| {
                let gone = w.sweep(now, actions);
                r.set_position(w.position());
                gone
            })
        };
        // Every window is swept (no short cut): each expires its own segments.
        let swept: Vec<bool> = self.renditions().iter().map(sweep).collect();
        let renditions = swept.iter().all(|&gone| gone);
        let retired = std::mem::take(&mut lock(&self.renditions).retired);
        let left: Vec<_> = retired.into_iter().filter(|r| !sweep(r)).collect();
        let retired_gone = left.is_empty();
        lock(&self.renditions).retired.extend(left);
        ts && cmaf && renditions && retired_gone
    }

    /// The Low-Latency window changed: where it stands now.
    pub fn set_position(&self, position: Position) {
        self.position.send_if_modified(|p| {
            let changed = *p != position;
            *p = position;
            changed
        });
    }

    /// Follows where the Low-Latency window stands, for a request that waits on it (which
    /// makes the ingest read the frames that complete parts promptly: [`Stream::awaited`]).
    pub fn position(&self) -> watch::Receiver<Position> {
        self.note_held();
        self.position.subscribe()
    }

    /// A request waits on one of the stream's Low-Latency windows (see [`Stream::awaited`]).
    pub fn note_held(&self) {
        self.held_at
            .store(millis_since(self.born).max(1), Ordering::Relaxed);
    }

    /// The renditions of the latest publish when it was multitrack (they stay served after
    /// it ends, with their playlists ended); empty when it was single-track.
    pub fn renditions(&self) -> Arc<[Arc<Rendition>]> {
        lock(&self.renditions).list.clone()
    }

    /// The rendition served under `name`: the latest publish's, or an earlier one's that
    /// is still available (its ended playlist and files, until they are swept).
    pub fn rendition(&self, name: &str) -> Option<Arc<Rendition>> {
        let r = lock(&self.renditions);
        r.list
            .iter()
            .chain(&r.retired)
            .find(|r| r.name == name)
            .cloned()
    }

    /// A new multitrack publish's renditions (or none: a single-track publish).
    pub fn set_renditions(&self, list: Vec<Arc<Rendition>>) {
        let mut r = lock(&self.renditions);
        let kept = |old: &Arc<Rendition>| list.iter().any(|new| Arc::ptr_eq(new, old));
        let gone: Vec<_> = r.list.iter().filter(|old| !kept(old)).cloned().collect();
        r.retired.retain(|old| !kept(old));
        r.retired.extend(gone);
        r.list = list.into();
        r.multivariant = None;
    }

    /// The renditions' multivariant playlist changed (bandwidths are measured per segment).
    pub fn set_multivariant(&self, text: Option<String>) {
        let mut r = lock(&self.renditions);
        let same =
            r.multivariant.as_ref().map(|p| &p.text[..]) == text.as_deref().map(str::as_bytes);
        if !same {
            r.multivariant = text.map(|t| Arc::new(PlaylistSnapshot::new(t)));
        }
    }

    /// The multivariant playlist of a multitrack publish, once every rendition has a segment.
    pub fn multivariant(&self) -> Option<Arc<PlaylistSnapshot>> {
        lock(&self.renditions).multivariant.clone()
    }

    /// Records the publish of `publisher` (at its start, or asked through the API during
    /// it). Publisher ids only grow, so a late request for a publisher that was just
    /// replaced never takes the flag from its successor's publish.
    pub fn record(&self, publisher: u64) {
        self.recorded.fetch_max(publisher, Ordering::Relaxed);
    }

    /// Whether `publisher`'s publish is recorded.
    pub fn is_recorded(&self, publisher: u64) -> bool {
        publisher != 0 && self.recorded.load(Ordering::Relaxed) == publisher
    }

    /// The publisher whose publish is recorded (0: none).
    pub fn recorded_publisher(&self) -> u64 {
        self.recorded.load(Ordering::Relaxed)
    }

    /// Stops recording `publisher`'s publish (if it is recorded): its recording is closed.
    pub fn stop_recording(&self, publisher: u64) {
        let _ = self
            .recorded
            .compare_exchange(publisher, 0, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The recording being written now, if any.
    pub fn recording_id(&self) -> Option<Arc<str>> {
        lock(&self.recording).clone()
    }

    /// The CMAF task's recorder writes this recording now (or none).
    pub fn set_recording_id(&self, id: Option<Arc<str>>) {
        *lock(&self.recording) = id;
    }

    /// Whether `index.m3u8` serves the CMAF playlist (codecs MPEG-TS does not carry here).
    pub fn set_classic_is_cmaf(&self, value: bool) {
        self.classic_is_cmaf.store(value, Ordering::Relaxed);
    }

    pub fn classic_is_cmaf(&self) -> bool {
        self.classic_is_cmaf.load(Ordering::Relaxed)
    }

    pub fn playlist(&self) -> Option<Arc<PlaylistSnapshot>> {
        self.ts.as_ref()?.read(HlsStream::playlist)
    }

    pub fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.ts.as_ref()?.read(|hls| hls.segment(name))
    }

    /// The classic window's file of a segment it lists (the DVR segments included) or keeps
    /// available, relative to the media root (see [`HlsStream::segment_file`]).
    pub fn segment_file(&self, name: &str) -> Option<std::path::PathBuf> {
        self.ts.as_ref()?.read(|hls| hls.segment_file(name))
    }

    /// EXT-X-TARGETDURATION, once the first segment fixed it.
    pub fn target_duration(&self) -> Option<u32> {
        if let Some(lead) = self.renditions().first() {
            return lead.window.read(LlStream::target_duration);
        }
        match (&self.ts, &self.cmaf) {
            (Some(ts), _) if !self.classic_is_cmaf() => ts.read(HlsStream::target_duration),
            (_, Some(ll)) => ll.read(LlStream::target_duration),
            (_, None) => None,
        }
    }

    /// Bytes of segments this stream holds in memory: listed, in their grace period, and
    /// the one being written.
    pub fn memory_bytes(&self) -> usize {
        let ts = self
            .ts
            .as_ref()
            .map_or(0, |ts| ts.read(HlsStream::memory_bytes));
        let cmaf = self
            .cmaf
            .as_ref()
            .map_or(0, |ll| ll.read(LlStream::memory_bytes));
        let renditions: usize = {
            let r = lock(&self.renditions);
            r.list
                .iter()
                .chain(&r.retired)
                .map(|r| r.window.read(LlStream::memory_bytes))
                .sum()
        };
        let open: usize = self
            .open_bytes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum();
        ts + cmaf + renditions + open
    }

    /// `output` holds this many bytes of the segment or part it is writing.
    pub fn set_open_bytes(&self, output: OutputKind, bytes: usize) {
        self.open_bytes[output as usize].store(bytes, Ordering::Relaxed);
    }

    /// Segments of the output `index.m3u8` serves (the classic one, or the CMAF one for a
    /// stream MPEG-TS does not carry, or the first rendition of a multitrack stream) so far.
    pub fn segments_produced(&self) -> u64 {
        if let Some(lead) = self.renditions().first() {
            return lead.window.read(LlStream::segments_produced);
        }
        match (&self.ts, &self.cmaf) {
            (Some(ts), _) if !self.classic_is_cmaf() => ts.read(HlsStream::segments_produced),
            (_, Some(ll)) => ll.read(LlStream::segments_produced),
            (_, None) => 0,
        }
    }

    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    pub fn media(&self) -> MediaInfo {
        lock(&self.media).clone()
    }

    /// Updates what the publisher sends.
    pub fn update_media(&self, f: impl FnOnce(&mut MediaInfo)) {
        f(&mut lock(&self.media));
    }

    /// Ingest bitrate in bits per second, over the last couple of seconds.
    pub fn bitrate(&self) -> u64 {
        if self.publisher().is_none() {
            return 0;
        }
        self.bitrate.load(Ordering::Relaxed)
    }

    /// Adds the current ingest bit rate to the stream's history (called every
    /// [`crate::hub::history::INTERVAL`] while it is live).
    pub fn sample_bitrate(&self) {
        let kbps = self.bitrate() / 1000;
        lock(&self.bitrate_history).push(kbps);
    }

    /// The ingest bit rate in kbit/s every [`crate::hub::history::INTERVAL`], oldest first.
    pub fn bitrate_history(&self) -> Vec<u64> {
        lock(&self.bitrate_history).to_vec()
    }

    /// Closes the bitrate measuring window when it is long enough (called periodically).
    pub(crate) fn measure_bitrate(&self, now: Instant) {
        let mut window = lock(&self.bitrate_window);
        let elapsed = now.saturating_duration_since(window.0);
        if elapsed >= BITRATE_WINDOW {
            let bytes = self.bytes_in.load(Ordering::Relaxed);
            let bits = bytes.saturating_sub(window.1) * 8;
            self.bitrate.store(
                (bits as f64 / elapsed.as_secs_f64()) as u64,
                Ordering::Relaxed,
            );
            *window = (now, bytes);
            let mut tracks = lock(&self.track_window);
            for (i, last) in tracks.iter_mut().enumerate() {
                let bytes = self.track_bytes[i].load(Ordering::Relaxed);
                let bits = bytes.saturating_sub(*last) * 8;
                self.track_bps[i].store(
                    (bits as f64 / elapsed.as_secs_f64()) as u64,
                    Ordering::Relaxed,
                );
                *last = bytes;
            }
        }
    }

    /// A new publish's tracks, as (kind, FLV track id) in track id order: their bit rates
    /// are measured from here on.
    pub fn set_track_layout(&self, layout: Vec<(&'static str, u8)>) {
        *lock(&self.track_layout) = layout;
    }

    /// A frame of `len` payload bytes of track `id` of the current publish.
    pub fn add_track_bytes(&self, id: usize, len: usize) {
        if let Some(bytes) = self.track_bytes.get(id) {
            bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
    }

    /// The measured bit rate of the current publish's track of `kind` with FLV id `source`.
    pub fn track_bitrate(&self, kind: &str, source: u8) -> Option<u64> {
        self.publisher()?;
        let layout = lock(&self.track_layout);
        let id = layout.iter().position(|&(k, s)| k == kind && s == source)?;
        Some(self.track_bps.get(id)?.load(Ordering::Relaxed))
    }

    /// A player of protocol number `protocol` started (`true`) or stopped reading.
    pub fn count_player(&self, protocol: usize, joined: bool) {
        if let Some(n) = self.players.get(protocol) {
            if joined {
                n.fetch_add(1, Ordering::Relaxed);
            } else {
                n.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Players reading the stream now, by protocol number.
    pub fn players(&self) -> [usize; PROTOCOLS] {
        std::array::from_fn(|i| self.players[i].load(Ordering::Relaxed))
    }

    /// A player fetched the playlist: `Some` the stream's classic or Low-Latency playlist,
    /// `None` a rendition's (the player plays whichever it fetched the stream's playlist as;
    /// Low-Latency when not known).
    pub fn note_viewer(&self, player: u64, playlist: Option<Playlist>, now: Instant) {
        let mut viewers = lock(&self.viewers);
        if viewers.len() >= MAX_TRACKED_VIEWERS && !viewers.contains_key(&player) {
            viewers.retain(|_, (seen, _)| now.saturating_duration_since(*seen) < VIEWER_WINDOW);
            if viewers.len() >= MAX_TRACKED_VIEWERS {
                return;
            }
        }
        let kind = playlist
            .or_else(|| viewers.get(&player).map(|&(_, kind)| kind))
            .unwrap_or(Playlist::LowLatency);
        viewers.insert(player, (now, kind));
    }

    /// A relay target of a publish of this stream started.
    pub fn add_relay(&self, status: Arc<RelayStatus>) {
        lock(&self.relays).push(status);
    }

    /// A relay target's task ended.
    pub fn remove_relay(&self, status: &Arc<RelayStatus>) {
        lock(&self.relays).retain(|s| !Arc::ptr_eq(s, status));
    }

    /// Where the current publish's relay targets stand.
    pub fn relays(&self) -> Vec<RelayReport> {
        let Some(publisher) = self.publisher() else {
            return Vec::new();
        };
        lock(&self.relays)
            .iter()
            .filter(|s| s.publisher == publisher.id)
            .map(|s| s.report())
            .collect()
    }

    /// Distinct players that fetched the playlist within the last [`VIEWER_WINDOW`].
    pub fn viewers(&self, now: Instant) -> usize {
        self.viewers_by_playlist(now).total()
    }

    /// [`Stream::viewers`], by the playlist they play.
    pub fn viewers_by_playlist(&self, now: Instant) -> ViewerCounts {
        let mut viewers = lock(&self.viewers);
        viewers.retain(|_, (seen, _)| now.saturating_duration_since(*seen) < VIEWER_WINDOW);
        let mut counts = ViewerCounts::default();
        for (_, kind) in viewers.values() {
            match kind {
                Playlist::Classic => counts.classic += 1,
                Playlist::LowLatency => counts.low_latency += 1,
            }
        }
        counts
    }
}

fn millis_since(since: Instant) -> u64 {
    since.elapsed().as_millis().try_into().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fanout::Limits;

    fn stream() -> Stream {
        let key = StreamKey::parse("abc").unwrap();
        Stream::new(
            "live".into(),
            key.clone(),
            key,
            FanOut::new(Limits::default()),
            None,
            None,
        )
    }

    #[test]
    fn viewers_are_told_apart_by_playlist() {
        let stream = stream();
        let now = Instant::now();
        stream.note_viewer(1, Some(Playlist::Classic), now);
        stream.note_viewer(2, Some(Playlist::LowLatency), now);
        // A rendition's playlist: the player keeps the kind it fetched first.
        stream.note_viewer(1, None, now);
        stream.note_viewer(3, None, now);
        assert_eq!(
            stream.viewers_by_playlist(now),
            ViewerCounts {
                classic: 1,
                low_latency: 2
            }
        );
        assert_eq!(stream.viewers(now), 3);
        assert_eq!(stream.viewers(now + VIEWER_WINDOW), 0);
    }

    #[test]
    fn a_part_is_awaited_only_while_a_request_waits_for_it() {
        let mut stream = stream();
        assert_eq!(stream.awaited(), None);
        stream.set_awaited(OutputKind::Ts, Some(Timestamp90k(180_000)));
        stream.set_awaited(OutputKind::Cmaf, Some(Timestamp90k(18_000)));
        assert_eq!(
            stream.awaited(),
            Some(Timestamp90k(180_000)),
            "nobody waits"
        );
        let held = stream.position();
        assert_eq!(
            stream.awaited(),
            Some(Timestamp90k(18_000)),
            "a request is held"
        );
        drop(held);
        assert_eq!(
            stream.awaited(),
            Some(Timestamp90k(18_000)),
            "one was, a moment ago"
        );
        // The last request waited at its first millisecond, longer ago than remembered.
        stream.held_at.store(1, Ordering::Relaxed);
        stream.born = Instant::now() - WAITERS_MEMORY - Duration::from_millis(2);
        assert_eq!(
            stream.awaited(),
            Some(Timestamp90k(180_000)),
            "none for a while"
        );
        stream.set_awaited(OutputKind::Ts, None);
        assert_eq!(stream.awaited(), None);
    }
}
