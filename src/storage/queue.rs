//! Sans-IO: what goes to the bucket, in which order, and what is dropped.
//!
//! The disk writer's actions come in as they are submitted ([`UploadQueue::push`]); the
//! uploader asks for the next request it may start ([`UploadQueue::next`]) and reports how
//! it went ([`UploadQueue::done`]). The queue holds:
//!
//! - **Order.** A playlist version is handed out only once every segment and
//!   initialization section it lists is in the bucket, dropped, or failed for good, so a
//!   viewer never sees a segment before it exists (RFC 8216 §6.2.2: a segment must be
//!   available when it is listed). A multivariant playlist waits for the first upload of
//!   the rendition playlists it names that are queued. Requests for one key never overlap: a retried upload,
//!   a newer version or a deletion of the same key waits for the one in flight. Keys of
//!   different streams go in any order, several at once.
//! - **Coalescing.** A playlist version not yet started is replaced by the next one: only
//!   the newest matters (§6.2.1: the playlist is what a client reloads).
//! - **A bound in bytes.** Past it, the oldest queued segment uploads are dropped (never a
//!   playlist, never the live stream: the node still serves them); the bucket's playlists
//!   then start after them ([`super::playlist`]).
//! - **Deletions.** A segment that leaves the bucket's playlist is deleted once its
//!   availability period is over (§6.2.2: the segment's duration plus the longest playlist
//!   served), from the versions the bucket got, whatever `hls.delete_segments` says (the
//!   disk's deletions of segments are not mirrored; those of initialization sections are).
//!   A stream folder's removal deletes the objects this process put there, never a listing
//!   of the prefix (another node may own the stream now).
//! - **The fence.** Before a playlist upload, and before reading the bucket's copy to
//!   continue it, the caller's fence says Write, Wait (the newest version waits, segments
//!   go on) or Lost (the stream's playlists are never written again by this process).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Fence;
use super::playlist::{Parsed, Rewrite};
use crate::hls::stream::DiskAction;

/// Attempts per object before it counts as failed for good (a segment is then left out of
/// the bucket's playlists).
pub const MAX_ATTEMPTS: u32 = 8;
/// The first retry's delay; it doubles up to [`MAX_BACKOFF`], each jittered by up to half.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How soon a playlist the fence held back is tried again.
pub const FENCE_WAIT: Duration = Duration::from_millis(100);

/// Segments, initialization sections and recordings never change under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A live playlist changes every segment; a CDN may serve a copy this old (§6.2.2's
/// reload behaviour expects the newest within a target duration).
pub const LIVE_PLAYLIST: &str = "public, max-age=1";
/// A playlist with EXT-X-ENDLIST: the stream ended, but a publisher coming back continues
/// the same playlist, so a minute, not a year.
pub const ENDED_PLAYLIST: &str = "public, max-age=60";
/// A finished recording's playlist never changes.
pub const VOD_PLAYLIST: &str = "public, max-age=31536000";

pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// What an object is, for its headers and for the queue's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Segment,
    Init,
    Playlist,
    Recording,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Init => "init",
            Kind::Playlist => "playlist",
            Kind::Recording => "recording",
        }
    }
}

/// The `Content-Type` of a file by its name (RFC 8216 §4: playlists; §3.2 and §3.3: MPEG-TS
/// and fragmented MPEG-4 segments, whose initialization sections are MP4 files).
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "ts" => "video/mp2t",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "m3u8" => PLAYLIST_TYPE,
        "json" | "jsonl" => "application/json",
        _ => "application/octet-stream",
    }
}

/// What the uploader is to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// PUT these bytes.
    Put {
        body: Vec<Bytes>,
        content_type: &'static str,
        cache_control: &'static str,
    },
    /// PUT this file (multipart when large).
    PutFile {
        path: PathBuf,
        content_type: &'static str,
        cache_control: &'static str,
    },
    /// GET the bucket's copy of a playlist, to continue its numbering.
    GetPlaylist,
    Delete,
}

/// One request to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub key: String,
    /// `{app}/{name}` (or `recordings/{id}`).
    pub stream: String,
    pub kind: Kind,
    pub request: Request,
    /// 1 for the first try.
    pub attempt: u32,
}

/// How a request went.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// The playlist's copy in the bucket (`None`: there is none).
    Got(Option<String>),
    /// Failed; `retry` false for failures trying again cannot fix.
    Failed {
        retry: bool,
    },
}

/// What a finished request means for the counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// A playlist went up: how long since the node handed over the version it replaced
    /// first (the oldest of the versions coalesced into it), so it never understates.
    pub playlist_lag: Option<Duration>,
    /// Will be tried again.
    pub retried: bool,
    /// Given up (a segment: left out of the bucket's playlists from now on).
    pub gave_up: bool,
}

#[derive(Debug)]
enum What {
    Put { body: Vec<Bytes>, bytes: u64 },
    File(PathBuf),
    Playlist { text: Bytes, recording: bool },
    Delete,
}

#[derive(Debug)]
struct Job {
    key: String,
    stream: String,
    /// Path relative to the media root (the playlist's folder resolves its URIs).
    path: PathBuf,
    kind: Kind,
    what: What,
    /// When it was queued (a coalesced playlist: its oldest version's time).
    since: Instant,
    not_before: Option<Instant>,
    attempt: u32,
    /// A playlist's text read once, when first needed: whether it is a media playlist, and
    /// the URIs it lists with their keys (segments and init sections).
    listed: Option<(bool, Vec<(String, String)>)>,
}

/// The bucket's side of one stream.
#[derive(Debug, Default)]
struct StreamState {
    /// Keys this process put there (deleted with the stream folder).
    uploaded: HashSet<String>,
    /// Segment and init keys dropped or failed for good.
    missing: HashSet<String>,
    /// Per playlist key: its rewrite state (absent: not yet continued).
    rewrites: HashMap<String, Rewrite>,
    /// Per playlist key: the segment keys its last uploaded version listed, and the longest
    /// duration any of its versions listed.
    listed: HashMap<String, (Vec<(String, f64)>, f64)>,
    /// The fence said Lost: its playlists are never written again.
    lost: bool,
}

/// The upload queue; see the module documentation.
#[derive(Debug)]
pub struct UploadQueue {
    prefix: String,
    max_bytes: u64,
    bytes: u64,
    pending: VecDeque<Job>,
    in_flight: HashMap<String, Job>,
    /// Puts of segment and init keys queued or in flight, by key.
    unfinished: HashMap<String, u32>,
    deletes: BTreeMap<(Instant, u64), (String, String)>,
    delete_seq: u64,
    streams: HashMap<String, StreamState>,
    /// Per playlist key in flight: the segment keys (and durations) its version lists, and
    /// the longest playlist duration, recorded when it is in the bucket.
    listed_on_success: HashMap<String, (Vec<(String, f64)>, f64)>,
    dropped: u64,
    /// A small generator for back-off jitter (xorshift).
    jitter: u64,
}

impl UploadQueue {
    /// A queue of at most `max_bytes` of uploads; keys start with `prefix`.
    pub fn new(prefix: &str, max_bytes: u64) -> UploadQueue {
        UploadQueue {
            prefix: prefix.to_string(),
            max_bytes,
            bytes: 0,
            pending: VecDeque::new(),
            in_flight: HashMap::new(),
            unfinished: HashMap::new(),
            deletes: BTreeMap::new(),
            delete_seq: 0,
            streams: HashMap::new(),
            listed_on_success: HashMap::new(),
            dropped: 0,
            jitter: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Bytes of uploads queued or in flight.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Segment uploads dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Nothing queued, in flight or scheduled.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty() && self.deletes.is_empty()
    }

    /// The earliest time after `now` something waiting (a retry, a deletion, a fenced
    /// playlist) is due. What is due already and still waits, waits for a request to end
    /// (or a push), not for the clock.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let waits = self
            .pending
            .iter()
            .filter_map(|j| j.not_before)
            .filter(|t| *t > now);
        let deletes = self.deletes.keys().next().map(|(at, _)| *at);
        waits.chain(deletes.filter(|t| *t > now)).min()
    }

    fn key(&self, path: &Path) -> Option<(String, String)> {
        let parts: Option<Vec<&str>> = path
            .components()
            .map(|c| match c {
                Component::Normal(s) => s.to_str().filter(|s| !s.is_empty()),
                _ => None,
            })
            .collect();
        let parts = parts?;
        if parts.len() < 2 {
            return None;
        }
        let stream = format!("{}/{}", parts[0], parts[1]);
        Some((format!("{}{}", self.prefix, parts.join("/")), stream))
    }

    /// Takes one of the disk writer's actions. Returns the segment uploads dropped to make
    /// room.
    pub fn push(&mut self, action: &DiskAction, now: Instant) -> u64 {
        match action {
            DiskAction::WriteSegment { path, data } => {
                self.put(path, vec![data.clone()], now);
            }
            DiskAction::WritePieces { path, pieces } => {
                self.put(path, pieces.clone(), now);
            }
            DiskAction::WritePlaylist { path, text } => {
                self.playlist(path, text.clone(), false, now);
            }
            DiskAction::Delete { path } => {
                // Segments go by the bucket's own playlists (see above); an initialization
                // section the window let go is deleted if this process put it there.
                if let Some((key, stream)) = self.key(path) {
                    let ours = self
                        .streams
                        .get(&stream)
                        .is_some_and(|s| s.uploaded.contains(&key));
                    if ours && content_type(&key) == "video/mp4" {
                        self.schedule_delete(key, stream, now);
                    }
                }
            }
            DiskAction::RemoveStreamDir { path } => self.remove_stream(path, now),
        }
        self.make_room()
    }

    /// A finished recording's files: `media` (a file under `folder`) and the playlist text,
    /// under `recordings/{id}/`.
    pub fn push_recording(&mut self, id: &str, media: PathBuf, playlist: Bytes, now: Instant) {
        let dir = Path::new("recordings").join(id);
        if let Some((key, stream)) = self.key(&dir.join("media.mp4")) {
            *self.unfinished.entry(key.clone()).or_default() += 1;
            self.add(Job {
                key,
                stream,
                path: dir.join("media.mp4"),
                kind: Kind::Recording,
                what: What::File(media),
                since: now,
                not_before: None,
                attempt: 1,
                listed: None,
            });
        }
        self.playlist(&dir.join("index.m3u8"), playlist, true, now);
    }

    fn put(&mut self, path: &Path, body: Vec<Bytes>, now: Instant) {
        let Some((key, stream)) = self.key(path) else {
            return;
        };
        let kind = if content_type(&key) == "video/mp4" {
            Kind::Init
        } else {
            Kind::Segment
        };
        let bytes = body.iter().map(|b| b.len() as u64).sum();
        if let Some(s) = self.streams.get_mut(&stream) {
            s.missing.remove(&key);
        }
        *self.unfinished.entry(key.clone()).or_default() += 1;
        self.add(Job {
            key,
            stream,
            path: path.to_owned(),
            kind,
            what: What::Put { body, bytes },
            since: now,
            not_before: None,
            attempt: 1,
            listed: None,
        });
    }

    fn playlist(&mut self, path: &Path, text: Bytes, recording: bool, now: Instant) {
        let Some((key, stream)) = self.key(path) else {
            return;
        };
        if self.streams.get(&stream).is_some_and(|s| s.lost) {
            return;
        }
        // The version not yet started is superseded: it takes the new text and keeps its
        // time (the lag counts from the oldest version it stands for).
        if let Some(job) = self
            .pending
            .iter_mut()
            .find(|j| j.key == key && matches!(j.what, What::Playlist { .. }))
        {
            let old = match &job.what {
                What::Playlist { text, .. } => text.len() as u64,
                _ => 0,
            };
            self.bytes = self.bytes - old + text.len() as u64;
            job.what = What::Playlist { text, recording };
            job.attempt = 1;
            job.listed = None;
            return;
        }
        self.add(Job {
            key,
            stream,
            path: path.to_owned(),
            kind: Kind::Playlist,
            what: What::Playlist { text, recording },
            since: now,
            not_before: None,
            attempt: 1,
            listed: None,
        });
    }

    fn add(&mut self, job: Job) {
        self.bytes += job_bytes(&job);
        self.pending.push_back(job);
    }

    /// Drops the oldest queued segment uploads while the queue is over its bound.
    fn make_room(&mut self) -> u64 {
        let mut dropped = 0;
        while self.bytes > self.max_bytes {
            let Some(i) = self
                .pending
                .iter()
                .position(|j| j.kind == Kind::Segment && matches!(j.what, What::Put { .. }))
            else {
                break;
            };
            let job = self
                .pending
                .remove(i)
                .expect("the position is in the queue");
            self.bytes -= job_bytes(&job);
            self.finish_put(&job.key);
            self.streams
                .entry(job.stream)
                .or_default()
                .missing
                .insert(job.key);
            dropped += 1;
        }
        self.dropped += dropped;
        dropped
    }

    fn finish_put(&mut self, key: &str) {
        if let Some(n) = self.unfinished.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.unfinished.remove(key);
            }
        }
    }

    fn schedule_delete(&mut self, key: String, stream: String, at: Instant) {
        self.delete_seq += 1;
        self.deletes.insert((at, self.delete_seq), (key, stream));
    }

    /// The stream's folder is gone from the node: its queued uploads go, and what this
    /// process put in the bucket for it is deleted (its playlists only while the fence
    /// still lets this process write them).
    fn remove_stream(&mut self, path: &Path, now: Instant) {
        let Some((_, stream)) = self.key(&path.join("x")) else {
            return;
        };
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for job in std::mem::take(&mut self.pending) {
            if job.stream == stream && !matches!(job.what, What::Delete) {
                self.bytes -= job_bytes(&job);
                if matches!(job.what, What::Put { .. } | What::File(_)) {
                    self.finish_put(&job.key);
                }
            } else {
                kept.push_back(job);
            }
        }
        self.pending = kept;
        let state = self.streams.remove(&stream).unwrap_or_default();
        // What is in the bucket, and what may land there yet (deleted once it has).
        let in_flight = self
            .in_flight
            .values()
            .filter(|j| j.stream == stream && !matches!(j.what, What::Delete))
            .map(|j| j.key.clone());
        let keys: std::collections::BTreeSet<String> =
            state.uploaded.into_iter().chain(in_flight).collect();
        for key in keys {
            let playlist = content_type(&key) == PLAYLIST_TYPE;
            if !(playlist && state.lost) {
                self.schedule_delete(key, stream.clone(), now);
            }
        }
    }

    /// The next request to start at `now`, if any may start; `fence` answers for a
    /// stream's playlists.
    pub fn next(&mut self, now: Instant, fence: &dyn Fn(&str) -> Fence) -> Option<Task> {
        // The first deletion due, unless a request for its key is in flight (then it waits
        // for that request to end).
        let due = self
            .deletes
            .iter()
            .next()
            .filter(|((at, _), (key, _))| *at <= now && !self.in_flight.contains_key(key))
            .map(|(&first, _)| first);
        if let Some(first) = due {
            {
                let (key, stream) = self.deletes.remove(&first).expect("first entry");
                let again = self.pending.iter().any(|j| j.key == key);
                // A playlist is deleted under the fence, as it is written: after a takeover
                // the key is the new holder's.
                let fenced = if content_type(&key) == PLAYLIST_TYPE {
                    fence(&stream)
                } else {
                    Fence::Write
                };
                if fenced == Fence::Wait && !again {
                    self.deletes
                        .insert((now + FENCE_WAIT, first.1), (key, stream));
                    return self.next(now, fence);
                }
                if !again && fenced == Fence::Write {
                    let task = Task {
                        key: key.clone(),
                        stream: stream.clone(),
                        kind: Kind::Segment,
                        request: Request::Delete,
                        attempt: 1,
                    };
                    self.in_flight.insert(
                        key.clone(),
                        Job {
                            key,
                            stream,
                            path: PathBuf::new(),
                            kind: Kind::Segment,
                            what: What::Delete,
                            since: now,
                            not_before: None,
                            attempt: 1,
                            listed: None,
                        },
                    );
                    return Some(task);
                }
                // The key is written anew (a stream that came back writes its playlist
                // again): the object stays.
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            let job = &self.pending[i];
            if self.in_flight.contains_key(&job.key) || job.not_before.is_some_and(|t| t > now) {
                i += 1;
                continue;
            }
            if matches!(job.what, What::Delete) && content_type(&job.key) == PLAYLIST_TYPE {
                // A playlist's deletion retried: under the fence, as at its first try.
                match fence(&job.stream) {
                    Fence::Write => {}
                    Fence::Wait => {
                        self.pending[i].not_before = Some(now + FENCE_WAIT);
                        i += 1;
                        continue;
                    }
                    Fence::Lost => {
                        self.pending.remove(i);
                        continue;
                    }
                }
            }
            if job.kind != Kind::Playlist {
                let job = self.pending.remove(i).expect("index in range");
                return Some(self.start(job, None));
            }
            match self.playlist_task(i, now, fence) {
                Step::Start(task) => return Some(task),
                Step::Skip => i += 1,
                Step::Removed => {}
            }
        }
        None
    }

    fn playlist_task(&mut self, i: usize, now: Instant, fence: &dyn Fn(&str) -> Fence) -> Step {
        let job = &self.pending[i];
        let What::Playlist { text, recording } = &job.what else {
            return Step::Skip;
        };
        let (text, recording) = (text.clone(), *recording);
        let (key, stream) = (job.key.clone(), job.stream.clone());
        let dir = job.path.parent().unwrap_or(Path::new("")).to_owned();
        if self.streams.get(&stream).is_some_and(|s| s.lost) {
            self.remove_pending(i);
            return Step::Removed;
        }
        let Ok(text) = std::str::from_utf8(&text) else {
            self.remove_pending(i);
            return Step::Removed;
        };
        // Listed keys still on their way: wait for them. (Read once per version: a version
        // may wait through many turns.)
        if self.pending[i].listed.is_none() {
            let parsed = Parsed::parse(text);
            let listed: Vec<(String, String)> = match &parsed {
                Some(p) => p
                    .segment_uris()
                    .chain(p.map_uris())
                    .filter_map(|uri| {
                        Some((uri.to_string(), relative_key(&self.prefix, &dir, uri)?))
                    })
                    .collect(),
                // A multivariant playlist: the playlists it names.
                None => named_playlists(text)
                    .filter_map(|uri| {
                        Some((uri.to_string(), relative_key(&self.prefix, &dir, uri)?))
                    })
                    .collect(),
            };
            self.pending[i].listed = Some((parsed.is_some(), listed));
        }
        let (media, waiting) = match &self.pending[i].listed {
            // Segments and init sections on their way.
            Some((true, listed)) => (
                true,
                listed.iter().any(|(_, k)| self.unfinished.contains_key(k)),
            ),
            // A rendition's first playlist queued or going up: a player that loads the
            // multivariant playlist finds it (one never queued does not hold it, nor do
            // later versions of one already there).
            Some((false, listed)) => {
                let there = self.streams.get(&stream);
                let first = |k: &String| {
                    !there.is_some_and(|s| s.uploaded.contains(k))
                        && (self.in_flight.contains_key(k)
                            || self.pending.iter().any(|j| j.key == *k))
                };
                (false, listed.iter().any(|(_, k)| first(k)))
            }
            None => (false, false),
        };
        if waiting {
            return Step::Skip;
        }
        let listed_keys = self.pending[i]
            .listed
            .as_ref()
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        if !recording {
            match fence(&stream) {
                Fence::Write => {}
                Fence::Wait => {
                    self.pending[i].not_before = Some(now + FENCE_WAIT);
                    return Step::Skip;
                }
                Fence::Lost => {
                    self.lose(&stream);
                    return Step::Removed;
                }
            }
        }
        if !media {
            // A multivariant playlist (or text that is no playlist): as it is.
            let job = self.pending.remove(i).expect("index in range");
            let body = vec![Bytes::copy_from_slice(text.as_bytes())];
            return Step::Start(self.start(job, Some((body, LIVE_PLAYLIST))));
        }
        let state = self.streams.entry(stream.clone()).or_default();
        if !recording && !state.rewrites.contains_key(&key) {
            // The first version from this process: read the bucket's copy first.
            let job = self.pending.remove(i).expect("index in range");
            let task = Task {
                key: key.clone(),
                stream,
                kind: Kind::Playlist,
                request: Request::GetPlaylist,
                attempt: job.attempt,
            };
            self.in_flight.insert(key, job);
            return Step::Start(task);
        }
        // Not in the bucket: dropped, failed for good, or never handed to this queue.
        let missing: HashSet<String> = listed_keys
            .iter()
            .filter(|(_, k)| state.missing.contains(k) || !state.uploaded.contains(k))
            .map(|(u, _)| u.clone())
            .collect();
        let is_missing =
            |uri: &str| missing.contains(uri) || relative_key(&self.prefix, &dir, uri).is_none();
        let mut fresh = Rewrite::fresh();
        let rewrite = if recording {
            &mut fresh
        } else {
            state.rewrites.get_mut(&key).expect("checked above")
        };
        let Some(rewritten) = rewrite.apply(text, is_missing) else {
            // Nothing listed is in the bucket: this version is not uploaded.
            self.remove_pending(i);
            return Step::Removed;
        };
        let listed: Vec<(String, f64)> = rewritten
            .uris
            .iter()
            .zip(&rewritten.durations)
            .filter_map(|(u, d)| Some((relative_key(&self.prefix, &dir, u)?, *d)))
            .collect();
        let longest = state
            .listed
            .get(&key)
            .map_or(0.0, |l| l.1)
            .max(rewritten.duration);
        let cache_control = if recording {
            VOD_PLAYLIST
        } else if rewritten.ended {
            ENDED_PLAYLIST
        } else {
            LIVE_PLAYLIST
        };
        self.listed_on_success.insert(key, (listed, longest));
        let job = self.pending.remove(i).expect("index in range");
        let body = vec![Bytes::from(rewritten.text)];
        Step::Start(self.start(job, Some((body, cache_control))))
    }

    fn remove_pending(&mut self, i: usize) {
        if let Some(job) = self.pending.remove(i) {
            self.bytes -= job_bytes(&job);
        }
    }

    /// The fence said another writer owns the stream's playlists.
    fn lose(&mut self, stream: &str) {
        self.streams.entry(stream.to_string()).or_default().lost = true;
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for job in std::mem::take(&mut self.pending) {
            if job.stream == stream && job.kind == Kind::Playlist {
                self.bytes -= job_bytes(&job);
            } else {
                kept.push_back(job);
            }
        }
        self.pending = kept;
    }

    /// Starts `job`; a playlist with its text as the bucket gets it.
    fn start(&mut self, job: Job, playlist: Option<(Vec<Bytes>, &'static str)>) -> Task {
        let request = match (&job.what, playlist) {
            (_, Some((body, cache_control))) => Request::Put {
                body,
                content_type: PLAYLIST_TYPE,
                cache_control,
            },
            (What::Put { body, .. }, None) => Request::Put {
                body: body.clone(),
                content_type: content_type(&job.key),
                cache_control: IMMUTABLE,
            },
            (What::File(path), None) => Request::PutFile {
                path: path.clone(),
                content_type: content_type(&job.key),
                cache_control: IMMUTABLE,
            },
            (What::Playlist { text, .. }, None) => Request::Put {
                body: vec![text.clone()],
                content_type: PLAYLIST_TYPE,
                cache_control: LIVE_PLAYLIST,
            },
            (What::Delete, None) => Request::Delete,
        };
        let task = Task {
            key: job.key.clone(),
            stream: job.stream.clone(),
            kind: job.kind,
            request,
            attempt: job.attempt,
        };
        self.in_flight.insert(job.key.clone(), job);
        task
    }

    /// The request for `key` ended with `outcome` at `now`.
    pub fn done(&mut self, key: &str, outcome: Outcome, now: Instant) -> Report {
        let mut report = Report::default();
        let Some(mut job) = self.in_flight.remove(key) else {
            return report;
        };
        let listed = self.listed_on_success.remove(key);
        match outcome {
            Outcome::Got(old) => {
                // The continuation is known; the version goes back to the front.
                let state = self.streams.entry(job.stream.clone()).or_default();
                let rewrite = match (&old, &job.what) {
                    (Some(old), What::Playlist { text, .. }) => {
                        Rewrite::continuing(old, std::str::from_utf8(text).unwrap_or(""))
                    }
                    _ => Rewrite::fresh(),
                };
                state.rewrites.insert(job.key.clone(), rewrite);
                if self.pending.iter().any(|j| j.key == job.key) {
                    // A newer version came meanwhile and goes instead.
                    self.bytes -= job_bytes(&job);
                } else {
                    job.not_before = None;
                    self.requeue(job);
                }
            }
            Outcome::Done => {
                self.bytes -= job_bytes(&job);
                if matches!(job.what, What::Put { .. } | What::File(_)) {
                    self.finish_put(&job.key);
                }
                let state = self.streams.entry(job.stream.clone()).or_default();
                match job.what {
                    What::Delete => {
                        state.uploaded.remove(&job.key);
                    }
                    What::Put { .. } => {
                        state.uploaded.insert(job.key.clone());
                    }
                    What::File(_) | What::Playlist { .. } => {
                        state.uploaded.insert(job.key.clone());
                    }
                }
                if let Some((listed, longest)) = listed {
                    report.playlist_lag = Some(now.saturating_duration_since(job.since));
                    let entry = state.listed.entry(job.key.clone()).or_default();
                    let still: HashSet<&String> = listed.iter().map(|(k, _)| k).collect();
                    let mut gone = Vec::new();
                    for (k, d) in &entry.0 {
                        if !still.contains(k) {
                            // §6.2.2: available for its duration plus the longest playlist.
                            let wait = Duration::from_secs_f64((d + longest).clamp(0.0, 86_400.0));
                            gone.push((k.clone(), now + wait));
                        }
                    }
                    *entry = (listed, longest);
                    for (k, at) in gone {
                        self.schedule_delete(k, job.stream.clone(), at);
                    }
                }
            }
            Outcome::Failed { retry } => {
                let superseded =
                    job.kind == Kind::Playlist && self.pending.iter().any(|j| j.key == job.key);
                if retry && job.attempt < MAX_ATTEMPTS && !superseded {
                    let delay = self.backoff(job.attempt);
                    job.attempt += 1;
                    job.not_before = Some(now + delay);
                    report.retried = true;
                    // A playlist is rewritten again from the node's text when retried.
                    self.requeue(job);
                } else {
                    self.bytes -= job_bytes(&job);
                    report.gave_up = !superseded;
                    if matches!(job.what, What::Put { .. } | What::File(_)) {
                        self.finish_put(&job.key);
                        self.streams
                            .entry(job.stream)
                            .or_default()
                            .missing
                            .insert(job.key);
                    }
                }
            }
        }
        report
    }

    fn requeue(&mut self, job: Job) {
        // Bytes are still counted; back at the front, ahead of later versions of the key.
        self.pending.push_front(job);
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let base = FIRST_BACKOFF
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(MAX_BACKOFF);
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let half = base.as_millis() as u64 / 2;
        base - Duration::from_millis(self.jitter % (half + 1))
    }
}

enum Step {
    Start(Task),
    Skip,
    Removed,
}

fn job_bytes(job: &Job) -> u64 {
    match &job.what {
        What::Put { bytes, .. } => *bytes,
        What::Playlist { text, .. } => text.len() as u64,
        What::File(_) | What::Delete => 0,
    }
}

/// The playlists a multivariant playlist names: its URI lines (EXT-X-STREAM-INF) and the
/// URI attributes of its EXT-X-MEDIA and EXT-X-I-FRAME-STREAM-INF tags (RFC 8216 §4.3.4).
fn named_playlists(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter_map(|line| {
        if line.is_empty() {
            None
        } else if !line.starts_with('#') {
            Some(line)
        } else {
            let start = line.find("URI=\"")? + 5;
            let rest = &line[start..];
            Some(&rest[..rest.find('"')?])
        }
    })
}

/// The key of `uri` as listed in a playlist in `dir` (a relative URI of plain names).
fn relative_key(prefix: &str, dir: &Path, uri: &str) -> Option<String> {
    if uri.contains("://") || uri.starts_with('/') || uri.contains('?') || uri.contains('#') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in dir.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    for p in uri.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(format!("{prefix}{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(path: &str, len: usize) -> DiskAction {
        DiskAction::WriteSegment {
            path: PathBuf::from(path),
            data: Bytes::from(vec![0u8; len]),
        }
    }

    fn pl(path: &str, text: &str) -> DiskAction {
        DiskAction::WritePlaylist {
            path: PathBuf::from(path),
            text: Bytes::from(text.to_string()),
        }
    }

    fn playlist(first: u64, names: &[&str]) -> String {
        let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for n in names {
            t.push_str(&format!("#EXTINF:2.0,\n{n}\n"));
        }
        t
    }

    fn write(_: &str) -> Fence {
        Fence::Write
    }

    /// Starts everything that may start, returning the tasks.
    fn drain(q: &mut UploadQueue, now: Instant) -> Vec<Task> {
        std::iter::from_fn(|| q.next(now, &write)).collect()
    }

    fn keys(tasks: &[Task]) -> Vec<(&str, &Request)> {
        tasks.iter().map(|t| (t.key.as_str(), &t.request)).collect()
    }

    fn body(task: &Task) -> String {
        match &task.request {
            Request::Put { body, .. } => {
                String::from_utf8(body.iter().flat_map(|b| b.to_vec()).collect()).unwrap()
            }
            r => panic!("not a put: {r:?}"),
        }
    }

    #[test]
    fn a_playlist_waits_for_its_segments_and_coalesces() {
        let t = Instant::now();
        let mut q = UploadQueue::new("p/", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 10), t);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        let tasks = drain(&mut q, t);
        // The segment goes; the playlist waits for it.
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].key, "p/live/k/a-0.ts");
        assert_eq!(
            tasks[0].request,
            Request::Put {
                body: vec![Bytes::from(vec![0u8; 10])],
                content_type: "video/mp2t",
                cache_control: IMMUTABLE,
            }
        );
        q.push(&seg("live/k/a-1.ts", 10), t);
        q.push(
            &pl("live/k/index.m3u8", &playlist(0, &["a-0.ts", "a-1.ts"])),
            t,
        );
        assert_eq!(
            q.done("p/live/k/a-0.ts", Outcome::Done, t),
            Report::default()
        );
        // a-1 goes; the playlist (one version, the newest) still waits for it.
        let tasks = drain(&mut q, t);
        assert_eq!(keys(&tasks).len(), 1);
        assert_eq!(tasks[0].key, "p/live/k/a-1.ts");
        q.done("p/live/k/a-1.ts", Outcome::Done, t);
        // First version from this process: the bucket's copy is read first.
        let tasks = drain(&mut q, t);
        assert_eq!(
            keys(&tasks),
            [("p/live/k/index.m3u8", &Request::GetPlaylist)]
        );
        q.done("p/live/k/index.m3u8", Outcome::Got(None), t);
        let tasks = drain(&mut q, t);
        assert_eq!(tasks.len(), 1);
        assert_eq!(body(&tasks[0]), playlist(0, &["a-0.ts", "a-1.ts"]));
        let later = t + Duration::from_millis(30);
        let report = q.done("p/live/k/index.m3u8", Outcome::Done, later);
        assert_eq!(report.playlist_lag, Some(Duration::from_millis(30)));
        assert!(q.is_idle());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn a_full_queue_drops_the_oldest_segments_and_the_playlist_skips_them() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 2500);
        // Continuation already read: no GET in the way.
        q.push(&seg("live/k/a-0.ts", 1000), t);
        let first = drain(&mut q, t);
        assert_eq!(first.len(), 1);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        q.done("live/k/a-0.ts", Outcome::Done, t);
        let get = drain(&mut q, t);
        assert_eq!(get[0].request, Request::GetPlaylist);
        // Storage stalls: the GET is in flight while segments pile up.
        assert_eq!(q.push(&seg("live/k/a-1.ts", 1000), t), 0);
        assert_eq!(q.push(&seg("live/k/a-2.ts", 1000), t), 0);
        // Over 300 bytes with the playlist's text: a-1 (the oldest queued segment) goes.
        assert_eq!(q.push(&seg("live/k/a-3.ts", 1000), t), 1);
        assert_eq!(q.dropped(), 1);
        q.push(
            &pl(
                "live/k/index.m3u8",
                &playlist(0, &["a-0.ts", "a-1.ts", "a-2.ts", "a-3.ts"]),
            ),
            t,
        );
        q.done("live/k/index.m3u8", Outcome::Got(None), t);
        let tasks = drain(&mut q, t);
        let names: Vec<&str> = tasks.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(names, ["live/k/a-2.ts", "live/k/a-3.ts"]);
        q.done("live/k/a-2.ts", Outcome::Done, t);
        q.done("live/k/a-3.ts", Outcome::Done, t);
        let tasks = drain(&mut q, t);
        assert_eq!(
            body(&tasks[0]),
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.0,\na-2.ts\n#EXTINF:2.0,\na-3.ts\n"
        );
    }

    #[test]
    fn failures_retry_with_back_off_then_give_up() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 1), t);
        let mut now = t;
        for attempt in 1..MAX_ATTEMPTS {
            let tasks = drain(&mut q, now);
            assert_eq!(tasks.len(), 1, "attempt {attempt}");
            assert_eq!(tasks[0].attempt, attempt);
            let report = q.done("live/k/a-0.ts", Outcome::Failed { retry: true }, now);
            assert!(report.retried && !report.gave_up);
            // Not before its back-off.
            assert!(drain(&mut q, now).is_empty());
            let due = q.next_due(now).expect("a retry is due");
            let delay = due - now;
            assert!(
                delay >= FIRST_BACKOFF / 2 && delay <= MAX_BACKOFF,
                "attempt {attempt}: {delay:?}"
            );
            now = due;
        }
        let tasks = drain(&mut q, now);
        let report = q.done(&tasks[0].key, Outcome::Failed { retry: true }, now);
        assert!(report.gave_up && !report.retried);
        // A failure retrying cannot fix gives up at once.
        q.push(&seg("live/k/a-1.ts", 1), now);
        let tasks = drain(&mut q, now);
        assert!(
            q.done(&tasks[0].key, Outcome::Failed { retry: false }, now)
                .gave_up
        );
        assert!(q.is_idle());
    }

    #[test]
    fn segments_leaving_the_bucket_playlist_are_deleted_after_their_availability() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        let mut now = t;
        let mut names: Vec<String> = Vec::new();
        for i in 0..4u64 {
            let name = format!("a-{i}.ts");
            q.push(&seg(&format!("live/k/{name}"), 1), now);
            names.push(name);
            let listed: Vec<&str> = names
                .iter()
                .rev()
                .take(2)
                .rev()
                .map(|s| s.as_str())
                .collect();
            q.push(
                &pl("live/k/index.m3u8", &playlist(i.saturating_sub(1), &listed)),
                now,
            );
            // Run everything to completion.
            loop {
                let tasks = drain(&mut q, now);
                if tasks.is_empty() {
                    break;
                }
                for task in tasks {
                    let outcome = match task.request {
                        Request::GetPlaylist => Outcome::Got(None),
                        _ => Outcome::Done,
                    };
                    q.done(&task.key, outcome, now);
                }
            }
            now += Duration::from_secs(2);
        }
        // a-0 left at the third version (t+4 s), a-1 at the fourth (t+6 s): each deleted
        // its duration (2 s) plus the longest playlist (4 s) later.
        let due = q.next_due(now).expect("deletions scheduled");
        assert_eq!(due, t + Duration::from_secs(10));
        assert!(drain(&mut q, due - Duration::from_millis(1)).is_empty());
        let tasks = drain(&mut q, due);
        assert_eq!(keys(&tasks), [("live/k/a-0.ts", &Request::Delete)]);
    }

    #[test]
    fn a_playlist_is_deleted_under_the_fence() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 1), t);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        for _ in 0..2 {
            for task in drain(&mut q, t) {
                q.done(&task.key, Outcome::Done, t);
            }
        }
        q.push(
            &DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/k"),
            },
            t,
        );
        // While the fence is unsure the segment goes and the playlist waits.
        let wait = |_: &str| Fence::Wait;
        let task = q.next(t, &wait).expect("the segment's deletion");
        assert_eq!(task.key, "live/k/a-0.ts");
        q.done(&task.key, Outcome::Done, t);
        assert_eq!(q.next(t, &wait), None);
        assert_eq!(q.next_due(t), Some(t + FENCE_WAIT));
        // Another node took the stream: its playlist is left to it.
        let lost = |_: &str| Fence::Lost;
        assert_eq!(q.next(t + FENCE_WAIT, &lost), None);
        assert_eq!(q.next(t + FENCE_WAIT * 2, &write), None);
    }

    #[test]
    fn a_playlist_deletion_retried_is_fenced_again() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 1), t);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        for _ in 0..2 {
            for task in drain(&mut q, t) {
                q.done(&task.key, Outcome::Done, t);
            }
        }
        q.push(
            &DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/k"),
            },
            t,
        );
        let tasks = drain(&mut q, t);
        let playlist = tasks
            .iter()
            .find(|t| t.key == "live/k/index.m3u8")
            .expect("the playlist's deletion");
        assert_eq!(playlist.request, Request::Delete);
        q.done("live/k/index.m3u8", Outcome::Failed { retry: true }, t);
        // The retry waits while the fence is unsure, and is dropped once the stream is lost.
        let later = t + Duration::from_secs(60);
        let wait = |_: &str| Fence::Wait;
        assert_eq!(q.next(later, &wait), None);
        let lost = |_: &str| Fence::Lost;
        assert_eq!(q.next(later + FENCE_WAIT, &lost), None);
        assert_eq!(q.next(later + FENCE_WAIT * 2, &write), None);
    }

    #[test]
    fn removing_a_stream_deletes_only_what_this_process_put() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 1), t);
        q.push(&seg("live/k/a-1.ts", 1), t);
        q.push(&seg("live/other/b-0.ts", 1), t);
        for task in drain(&mut q, t) {
            if task.key != "live/k/a-1.ts" {
                q.done(&task.key, Outcome::Done, t);
            }
        }
        // a-1 is in flight; then the folder goes: a-0 is deleted, a-1 once it has landed,
        // and nothing of live/other.
        q.push(
            &DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/k"),
            },
            t,
        );
        let tasks = drain(&mut q, t);
        assert_eq!(keys(&tasks), [("live/k/a-0.ts", &Request::Delete)]);
        q.done("live/k/a-1.ts", Outcome::Done, t);
        let tasks = drain(&mut q, t);
        assert_eq!(keys(&tasks), [("live/k/a-1.ts", &Request::Delete)]);
    }

    #[test]
    fn the_fence_holds_playlists_back_or_ends_them() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        q.push(&seg("live/k/a-0.ts", 1), t);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        let tasks = drain(&mut q, t);
        q.done(&tasks[0].key, Outcome::Done, t);
        let wait = |_: &str| Fence::Wait;
        assert_eq!(q.next(t, &wait), None);
        assert_eq!(q.next_due(t), Some(t + FENCE_WAIT));
        // Segments still go while the playlist waits.
        q.push(&seg("live/k/a-1.ts", 1), t);
        assert_eq!(q.next(t, &wait).unwrap().key, "live/k/a-1.ts");
        let lost = |_: &str| Fence::Lost;
        q.done("live/k/a-1.ts", Outcome::Done, t);
        assert_eq!(q.next(t + FENCE_WAIT, &lost), None);
        q.push(&pl("live/k/index.m3u8", &playlist(0, &["a-0.ts"])), t);
        assert_eq!(q.next(t + FENCE_WAIT, &write), None, "never written again");
        // Its segments are deleted with the folder, its playlist is not.
        q.push(
            &DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/k"),
            },
            t,
        );
        let tasks = drain(&mut q, t);
        assert!(
            tasks
                .iter()
                .all(|t| t.request == Request::Delete && t.key.ends_with(".ts"))
        );
        assert_eq!(tasks.len(), 2);
    }

    #[test]
    fn a_recording_playlist_follows_its_media_file() {
        let t = Instant::now();
        let mut q = UploadQueue::new("p/", 1 << 20);
        let vod = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"media.mp4\",BYTERANGE=\"700@0\"\n\
            #EXTINF:2.000,\n#EXT-X-BYTERANGE:300@700\nmedia.mp4\n#EXT-X-ENDLIST\n";
        q.push_recording(
            "r1",
            PathBuf::from("/rec/r1/media.mp4"),
            Bytes::from(vod),
            t,
        );
        let tasks = drain(&mut q, t);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].key, "p/recordings/r1/media.mp4");
        assert_eq!(
            tasks[0].request,
            Request::PutFile {
                path: PathBuf::from("/rec/r1/media.mp4"),
                content_type: "video/mp4",
                cache_control: IMMUTABLE,
            }
        );
        q.done("p/recordings/r1/media.mp4", Outcome::Done, t);
        // No continuation read for a recording: its playlist goes as it is, for a year.
        let tasks = drain(&mut q, t);
        assert_eq!(tasks[0].key, "p/recordings/r1/index.m3u8");
        let Request::Put { cache_control, .. } = &tasks[0].request else {
            panic!("a put");
        };
        assert_eq!(*cache_control, VOD_PLAYLIST);
        assert!(body(&tasks[0]).contains("#EXT-X-BYTERANGE:300@700\nmedia.mp4\n#EXT-X-ENDLIST\n"));
    }

    #[test]
    fn multivariant_playlists_and_content_types() {
        let t = Instant::now();
        let mut q = UploadQueue::new("", 1 << 20);
        let mv = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"a0\",URI=\"a0/llhls.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\nv0/llhls.m3u8\n";
        q.push(&seg("live/k/v0/a-0.m4s", 1), t);
        q.push(&pl("live/k/v0/llhls.m3u8", &playlist(0, &["a-0.m4s"])), t);
        q.push(&pl("live/k/llhls.m3u8", mv), t);
        // The rendition's playlist is queued: the multivariant playlist waits for it (a0's
        // never came: it does not hold it).
        let tasks = drain(&mut q, t);
        assert_eq!(keys(&tasks).len(), 1, "{tasks:?}");
        q.done("live/k/v0/a-0.m4s", Outcome::Done, t);
        let tasks = drain(&mut q, t);
        assert_eq!(
            keys(&tasks),
            [("live/k/v0/llhls.m3u8", &Request::GetPlaylist)]
        );
        q.done("live/k/v0/llhls.m3u8", Outcome::Got(None), t);
        let tasks = drain(&mut q, t);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].key, "live/k/v0/llhls.m3u8");
        q.done("live/k/v0/llhls.m3u8", Outcome::Done, t);
        let tasks = drain(&mut q, t);
        assert_eq!(tasks[0].key, "live/k/llhls.m3u8");
        assert_eq!(body(&tasks[0]), mv);
        assert_eq!(content_type("x/b-init-0.mp4"), "video/mp4");
        assert_eq!(content_type("x/b-1.m4s"), "video/iso.segment");
        assert_eq!(content_type("x/llhls.m3u8"), PLAYLIST_TYPE);
        // Paths outside a stream folder are not uploaded.
        q.push(&seg("../x.ts", 1), t);
        q.push(&seg("top.ts", 1), t);
        assert!(drain(&mut q, t).is_empty());
    }
}
