//! The Low-Latency HLS state of one stream (`llhls.m3u8`): takes the CMAF output's events
//! (initialization sections, segments opening, parts, segments closing), names them, keeps
//! the live window with the parts of its recent segments, renders the full playlist and its
//! Playlist Delta Update once per change, says where the stream stands for Blocking Playlist
//! Reload, and which files to write and delete. Parts are named by a number that counts them
//! over the stream's life, so the preload hint names the part that comes next whichever
//! segment it opens or continues (see [`LlStream`]).
//!
//! Sans-IO: the caller passes the clocks in (`now` for timers, `wall` for dates) and carries
//! out the [`DiskAction`]s (see `hls::disk`). Not thread-safe by itself; the stream registry
//! holds it behind a lock and sends [`LlStream::position`] through a watch channel after
//! every change.
//!
//! Spec: RFC 8216bis §4.4.3.7, §4.4.3.8, §4.4.4.9, §4.4.5.2, §4.4.5.3 (the Low-Latency
//! tags), §6.2.1, §6.2.2 (live playlists, Partial Segments), §6.2.5 (Delivery Directives),
//! §6.2.6 (preload hints); RFC 8216 §6.2.2.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::media::Duration90k;

use super::blocking::{self, Position};
use super::playlist::{self, LowLatency, MediaPlaylist, MediaSegment, OpenSegment, PartialSegment};
use super::retention::{HeldSegment, Retention, to_std};
use super::stream::{DiskAction, HlsSettings, PlaylistSnapshot, StreamDir, name_prefix};

/// The Low-Latency playlist's file name in the stream folder (the URL users have:
/// `/{app}/{key}/llhls.m3u8`), beside the classic `index.m3u8`.
pub const PLAYLIST_NAME: &str = "llhls.m3u8";

/// Most Partial Segments one segment may have: a 60 s segment cut into 60 ms parts. Bounds
/// the memory of a segment whose end never comes; past it the open segment is closed and a
/// new one opened (logged). Also the bound of `_HLS_part` in requests.
pub const MAX_PARTS_PER_SEGMENT: usize = 1024;

/// The live window lists at least this many segments, whatever `list_size` says, so that a
/// Playlist Delta Update has something to skip: segments end at about the Target Duration,
/// and the Skip Boundary is six of them (`SKIP_BOUNDARY_TARGET_DURATIONS`), so the first of
/// seven segments ends six Target Durations before the end of the last.
pub const MIN_LIST_SIZE: usize = 7;

/// CAN-SKIP-UNTIL in Target Durations: the least the spec allows, so delta updates skip as
/// much as they can.
///
/// Spec: RFC 8216bis §4.4.3.8: "The Skip Boundary MUST be at least six times the Target
/// Duration."
const SKIP_BOUNDARY_TARGET_DURATIONS: u64 = 6;

/// PART-HOLD-BACK in Part Target Durations.
///
/// Spec: RFC 8216bis §4.4.3.8: PART-HOLD-BACK "MUST be at least twice the Part Target
/// Duration. Its value SHOULD be at least three times the Part Target Duration."
const PART_HOLD_BACK_PARTS: u64 = 3;

/// A segment's EXT-X-PART tags are listed while its start is at most this many Target
/// Durations from the end of the playlist (the end of its last part). A segment's parts go
/// all at once, so no listed segment has some of its parts only, and Part Indexes stay
/// countable from the listing.
///
/// Spec: RFC 8216bis §6.2.2: "EXT-X-PART tags SHOULD be removed from the Playlist after they
/// are greater than three Target Durations from the end of the Playlist."
const PART_LISTING_TARGET_DURATIONS: u64 = 3;

/// EXT-X-TARGETDURATION is at least this: a zero from the CMAF output would make every
/// segment too long and the Skip Boundary zero.
const MIN_TARGET_DURATION: u32 = 1;

/// One event of the CMAF output, in the order it produces them. A batch of them that
/// belongs together (the last part of a segment, its end and the next segment's start) is
/// best handed to [`LlStream::push`] at once: the playlist is rendered once for the batch,
/// not once with the segment still open and again with it closed.
#[derive(Clone, Debug)]
pub enum CmafEvent {
    /// A new initialization section (ftyp+moov); the segments that follow use it
    /// (EXT-X-MAP). Sent before the first segment and again when codec parameters change
    /// (then the next `SegmentStart` has `discontinuity`). The same bytes again change
    /// nothing.
    Init(Bytes),
    /// A new segment opens; its parts follow.
    SegmentStart {
        /// The media timeline or the codec parameters change here.
        discontinuity: bool,
        /// Starts with a keyframe, or audio-only.
        independent: bool,
    },
    /// A part (one moof+mdat fragment) of the open segment is complete.
    Part {
        data: Bytes,
        duration: Duration90k,
        /// Starts with a keyframe.
        independent: bool,
    },
    /// The open segment closed. `duration` is its EXTINF; `target_duration` the stream's
    /// fixed EXT-X-TARGETDURATION (the same on every segment of the stream).
    SegmentEnd {
        duration: Duration90k,
        target_duration: u32,
    },
}

/// An initialization section (EXT-X-MAP), as HTTP serves it.
#[derive(Clone, PartialEq, Eq)]
pub struct InitSection {
    /// Counts the stream's initialization sections from 0.
    pub number: u64,
    /// File name in the stream folder, `{prefix}-init-{number}.mp4`.
    pub name: Arc<str>,
    /// ftyp+moov.
    pub data: Bytes,
}

impl fmt::Debug for InitSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitSection")
            .field("name", &self.name)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// One Partial Segment: a moof+mdat fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    /// Counts the stream's parts from 0 over its whole life (every publisher): the part's
    /// file name is `{prefix}-p{number}.m4s`.
    pub number: u64,
    pub data: Bytes,
    pub duration: Duration90k,
    pub independent: bool,
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Part")
            .field("number", &self.number)
            .field("duration", &self.duration)
            .field("independent", &self.independent)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// A complete segment, as HTTP serves it: its bytes are its parts' bytes in order, kept as
/// the parts (never copied into one buffer). HTTP sends [`LlSegment::pieces`] one after the
/// other, with [`LlSegment::len`] as the length.
#[derive(Clone, PartialEq, Eq)]
pub struct LlSegment {
    /// File name in the stream folder, `{prefix}-{msn}.m4s`.
    pub name: String,
    /// Media Sequence Number.
    pub msn: u64,
    /// EXTINF.
    pub duration: Duration90k,
    /// The number of its first part; the others follow one by one.
    pub first_part: u64,
    pub parts: Vec<Part>,
    /// The initialization section it needs.
    pub init: Arc<InitSection>,
    len: usize,
}

impl LlSegment {
    /// Part `number` of the stream, when it is one of this segment's.
    pub fn part(&self, number: u64) -> Option<&Part> {
        part_of(self.first_part, &self.parts, number)
    }

    /// The segment's bytes, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter().map(|p| &p.data)
    }

    /// Bytes in the segment.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Debug for LlSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlSegment")
            .field("name", &self.name)
            .field("msn", &self.msn)
            .field("duration", &self.duration)
            .field("first_part", &self.first_part)
            .field("parts", &self.parts.len())
            .field("len", &self.len)
            .finish()
    }
}

impl HeldSegment for LlSegment {
    fn duration(&self) -> Duration90k {
        self.duration
    }
}

/// The segment being written.
#[derive(Debug)]
struct Open {
    msn: u64,
    /// The number its first part has (or will have).
    first_part: u64,
    discontinuity: bool,
    independent: bool,
    init: Arc<InitSection>,
    program_date_time: Option<SystemTime>,
    parts: Vec<Part>,
}

/// What a file name in the stream folder names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Name {
    Segment { msn: u64 },
    Part { number: u64 },
    Init { number: u64 },
}

/// The Low-Latency HLS state of one stream.
///
/// **Window.** The playlist lists at least `max(list_size, MIN_LIST_SIZE)` segments, and
/// more while fewer would leave a Playlist Delta Update nothing to skip, that is while the
/// segments after the first do not span the Skip Boundary (six Target Durations; up to
/// `MAX_EXTRA_LISTED` more). That also keeps the three Target Durations RFC 8216 §6.2.2
/// asks for. Segments that leave the playlist stay servable, and on disk, for their duration
/// plus the longest playlist served (RFC 8216 §6.2.2), as in the classic window.
///
/// **Parts.** The open segment's parts are listed as they come, and a complete segment's
/// parts while its start is within three Target Durations of the playlist's end. A part is
/// servable as long as its segment is (listed, or in its grace period, which is longer than
/// the three Target Durations RFC 8216bis §6.2.2 asks for after its tag is removed). A part's
/// bytes are its segment's bytes: nothing is held for parts beyond the segments.
///
/// **Playlists.** Nothing is served before the first segment is complete (its end fixes
/// EXT-X-TARGETDURATION). Then every change renders the full playlist and its delta update
/// once (each with an ETag); requests get them as they are.
///
/// **DVR window** (`dvr_window` above zero). In front of the live window the playlist lists
/// every earlier segment that starts at most `dvr_window` before the end of its last complete
/// segment (summed EXTINF durations), without parts, with their EXT-X-DISCONTINUITY,
/// EXT-X-MAP and EXT-X-PROGRAM-DATE-TIME tags; EXT-X-MEDIA-SEQUENCE and
/// EXT-X-DISCONTINUITY-SEQUENCE count from the first of them. Their bytes leave memory as
/// they would without the DVR window, and HTTP serves them from their files
/// ([`LlStream::segment_file`]); a file is deleted only once its segment left the playlist
/// and its availability period (counted with the longest playlist served) is over. The
/// initialization sections they need stay in memory. Delta updates skip what lies beyond the
/// Skip Boundary (CAN-SKIP-UNTIL, six Target Durations, RFC 8216bis §4.4.3.8, §6.2.5.1),
/// which with a DVR window is nearly the whole playlist; the full playlist and its delta
/// update are rendered apart, each when first asked for.
///
/// **Disk.** Complete segments (from their parts' pieces), initialization sections and
/// `llhls.m3u8` are written; parts are not. The playlist on disk is the one a server
/// without Low-Latency HLS would serve (no EXT-X-PART, no hint), rewritten when the segments
/// change, not on every part. Deletion follows the classic window: `delete_segments`, and at
/// the end the folder goes with `keep` off.
///
/// **New publisher.** The old publisher's open segment is closed short with the parts it
/// has: they are listed already, and a server may only remove parts from the start of the
/// playlist (RFC 8216bis §6.2.1, §6.2.2), so that segment is completed with the EXTINF of its
/// parts rather than dropped. The preload hint keeps naming the next part, which is now the
/// new publisher's first. The next segment starts with EXT-X-DISCONTINUITY.
///
/// **Names.** Segments `{prefix}-{msn}.m4s`, parts `{prefix}-p{n}.m4s` with `n` counting
/// the stream's parts over its whole life (across segments and publishers), initialization
/// sections `{prefix}-init-{n}.mp4`, with the prefix the classic window uses (the creation
/// time): names never repeat in a folder. A part's name does not say its segment, so the
/// preload hint `{prefix}-p{next}.m4s` names the part that comes next whether it continues
/// the open segment or opens the next one: a player that fetches the hint ahead always gets
/// that part, also when a segment ends after its last part (RFC 8216bis §6.2.6). Only the
/// end of the stream leaves a hinted part never to come; the playlist then has no hint.
#[derive(Debug)]
pub struct LlStream {
    /// `{app}/{key}` relative to the media root.
    dir: PathBuf,
    settings: HlsSettings,
    prefix: String,
    /// The listed window (media sequence and Low-Latency tags included). Its media sequence
    /// plus its length is the number of segments completed, and the next one's number.
    playlist: MediaPlaylist,
    /// The listed segments and those in their availability period.
    held: Retention<LlSegment>,
    open: Option<Open>,
    /// The initialization section new segments use.
    init: Option<Arc<InitSection>>,
    /// Every initialization section still used by a held segment, or current; oldest first.
    inits: VecDeque<Arc<InitSection>>,
    inits_made: u64,
    /// Parts numbered so far over the stream's life: the next part's number, which the
    /// preload hint names.
    parts_made: u64,
    /// The full playlist and its delta update (the same when nothing can be skipped).
    /// A playlist is served (the first segment is complete, and the stream was not swept
    /// away), and how many times it changed: its ETags are `"{prefix}-{version}"`.
    served: bool,
    version: u64,
    /// The full playlist as text, rendered when first asked for after a change (a stream
    /// nobody watches renders nothing).
    rendered: OnceLock<Arc<PlaylistSnapshot>>,
    /// Its delta update, rendered the same way and apart from it (a player that reloads with
    /// `_HLS_skip` never has the whole DVR window rendered on every part); `None` when
    /// nothing can be skipped, and the full playlist answers.
    rendered_delta: OnceLock<Option<Arc<PlaylistSnapshot>>>,
    /// EXT-X-PROGRAM-DATE-TIME of the next segment when the timeline continues.
    next_program_date_time: Option<SystemTime>,
    /// A new publisher took over: the next segment starts with EXT-X-DISCONTINUITY.
    pending_discontinuity: bool,
    /// Something was written to the stream folder.
    wrote_files: bool,
    warned_target_duration: bool,
    warned_part_target: bool,
    warned_events: bool,
}

impl LlStream {
    /// `part_target`: the Part Target Duration the CMAF output cuts parts to (no part
    /// longer); written rounded up to the millisecond. A longer part raises it (logged once).
    pub fn new(
        dir: StreamDir,
        settings: HlsSettings,
        part_target: Duration90k,
        wall: SystemTime,
    ) -> LlStream {
        let part_target = whole_millis_up(part_target.max(Duration90k(1)));
        let mut playlist = MediaPlaylist::new(0, None);
        playlist.low_latency = Some(low_latency_tags(part_target));
        LlStream {
            dir: dir.path(),
            held: Retention::new(settings.delete_segments, settings.dvr_window),
            settings,
            prefix: name_prefix(wall),
            playlist,
            open: None,
            init: None,
            inits: VecDeque::new(),
            inits_made: 0,
            parts_made: 0,
            served: false,
            version: 0,
            rendered: OnceLock::new(),
            rendered_delta: OnceLock::new(),
            next_program_date_time: None,
            pending_discontinuity: false,
            wrote_files: false,
            warned_target_duration: false,
            warned_part_target: false,
            warned_events: false,
        }
    }

    /// Takes a batch of the CMAF output's events; then renders the playlists once (when
    /// served) and schedules the disk work: segments and initialization sections to write,
    /// the playlist when the segments changed, deletions now due. Events out of order (a part
    /// with no open segment, ...) are dropped and logged once. An event after the end reopens
    /// the stream as [`LlStream::begin_publisher`] does.
    pub fn push(
        &mut self,
        events: impl IntoIterator<Item = CmafEvent>,
        now: Instant,
        wall: SystemTime,
        actions: &mut Vec<DiskAction>,
    ) {
        let mut segments_changed = false;
        for event in events {
            if self.held.is_ended() {
                tracing::warn!(dir = %self.dir.display(), "CMAF output after the end of the stream: reopening it");
                self.begin_publisher(now, actions);
            }
            segments_changed |= self.apply(event, now, wall, actions);
        }
        self.changed(segments_changed, now, actions);
    }

    /// A new publisher took the stream over (or republished within the grace period after
    /// the end, which reopens it): the open segment is closed short with the parts it has,
    /// and the next segment starts with EXT-X-DISCONTINUITY, its date taken from the wall
    /// clock again.
    pub fn begin_publisher(&mut self, now: Instant, actions: &mut Vec<DiskAction>) {
        let closed = self.close_open(None, now, actions);
        self.pending_discontinuity = true;
        let reopened = self.held.reopen();
        if reopened {
            self.playlist.end_list = false;
        }
        // Written again at once without EXT-X-ENDLIST, not only from the next segment on.
        self.changed(closed || reopened, now, actions);
    }

    /// The publisher stopped: the open segment is closed short, EXT-X-ENDLIST, no preload
    /// hint, playlist rewritten; when keep is off, the files are scheduled to go after the
    /// grace period. Does nothing when already ended.
    pub fn end(&mut self, now: Instant, actions: &mut Vec<DiskAction>) {
        if self.held.is_ended() {
            return;
        }
        self.close_open(None, now, actions);
        self.held.end(now, &self.playlist);
        if self.segments_produced() > 0 {
            self.playlist.end_list = true;
            self.changed(true, now, actions);
        }
    }

    /// Drops segments (and initialization sections) whose availability is over, from memory
    /// and, with delete_segments, from disk; after the end, everything when the last
    /// playlist's time is over (the folder too with keep off). Returns true when the stream
    /// is ended and has nothing left to serve.
    pub fn sweep(&mut self, now: Instant, actions: &mut Vec<DiskAction>) -> bool {
        self.expire(now, actions);
        if self.held.removal_due(now) {
            self.remove_all(actions);
        }
        self.held.is_gone()
    }

    /// The current playlist, full or as its Playlist Delta Update (`skip`, for
    /// `_HLS_skip=YES` or `v2`; the full one when nothing can be skipped or the stream has
    /// ended). `None` before the first segment is complete and once the stream is swept away.
    pub fn playlist(&self, skip: bool) -> Option<Arc<PlaylistSnapshot>> {
        if !self.served {
            return None;
        }
        let etag = |form: &str| format!("\"{}-{}{form}\"", self.prefix, self.version);
        if skip {
            let delta = self.rendered_delta.get_or_init(|| {
                playlist::render_delta(&self.playlist)
                    .map(|text| Arc::new(PlaylistSnapshot::with_etag(text, etag("-skip"))))
            });
            if let Some(delta) = delta {
                return Some(Arc::clone(delta));
            }
        }
        let full = self.rendered.get_or_init(|| {
            Arc::new(PlaylistSnapshot::with_etag(
                playlist::render(&self.playlist),
                etag(""),
            ))
        });
        Some(Arc::clone(full))
    }

    /// A complete segment by file name, while listed or in its availability period.
    pub fn segment(&self, name: &str) -> Option<Arc<LlSegment>> {
        let Some(Name::Segment { msn }) = self.parse_name(name) else {
            return None;
        };
        self.held_segment(msn).cloned()
    }

    /// The path (relative to the media root) of a complete segment's file by file name, while
    /// the playlist lists it (the DVR segments included) or its availability period after
    /// that is not over: what HTTP serves when [`LlStream::segment`] no longer holds it. Only
    /// names this window gave are found.
    pub fn segment_file(&self, name: &str) -> Option<PathBuf> {
        let Some(Name::Segment { msn }) = self.parse_name(name) else {
            return None;
        };
        let file = self.held.file(&self.playlist, msn)?;
        (file == name).then(|| self.dir.join(file))
    }

    /// A Partial Segment's bytes by file name, while it exists: in the open segment, or in a
    /// segment listed or in its availability period.
    pub fn part(&self, name: &str) -> Option<Bytes> {
        let Some(Name::Part { number }) = self.parse_name(name) else {
            return None;
        };
        let open = self
            .open
            .as_ref()
            .and_then(|o| part_of(o.first_part, &o.parts, number));
        let part = match open {
            Some(part) => part,
            None => self.held_part(number)?,
        };
        Some(part.data.clone())
    }

    /// An initialization section's bytes by file name, while a segment the playlist lists,
    /// or one in its availability period, or the next one uses it.
    pub fn init(&self, name: &str) -> Option<Bytes> {
        let Some(Name::Init { number }) = self.parse_name(name) else {
            return None;
        };
        self.inits
            .iter()
            .find(|i| i.number == number)
            .map(|i| i.data.clone())
    }

    /// Whether `name` is the part the served playlist's EXT-X-PRELOAD-HINT names, the next
    /// part of the stream: it does not exist yet, and HTTP holds a request for it until
    /// [`LlStream::part`] finds it (or, when the stream ends first, answers 404: RFC 8216bis
    /// §6.2.6).
    pub fn is_hinted(&self, name: &str) -> bool {
        let next = Some(Name::Part {
            number: self.parts_made,
        });
        self.served && !self.held.is_ended() && self.parse_name(name) == next
    }

    /// Where the stream stands, for Blocking Playlist Reload.
    pub fn position(&self) -> Position {
        let last = self.held.listed().back();
        Position {
            last_msn: self.segments_produced().checked_sub(1),
            last_parts: last.map_or(0, |s| s.parts.len() as u64),
            open_parts: self.open.as_ref().map_or(0, |o| o.parts.len() as u64),
            ended: self.held.is_ended(),
            advance_part_limit: blocking::advance_part_limit(self.part_target()),
        }
    }

    /// EXT-X-TARGETDURATION, fixed by the first segment.
    pub fn target_duration(&self) -> Option<u32> {
        (self.segments_produced() > 0).then_some(self.playlist.target_duration)
    }

    pub fn is_ended(&self) -> bool {
        self.held.is_ended()
    }

    /// How many segments the stream has completed, over all its publishers.
    pub fn segments_produced(&self) -> u64 {
        self.playlist.media_sequence + self.playlist.segments.len() as u64
    }

    /// Bytes held in memory: the open segment's parts, the live window's segments, those in
    /// their availability period after it, and the initialization sections (not the DVR
    /// segments, which are on disk).
    pub fn memory_bytes(&self) -> usize {
        let open: usize = self
            .open
            .as_ref()
            .map_or(0, |o| o.parts.iter().map(|p| p.data.len()).sum());
        let inits: usize = self.inits.iter().map(|i| i.data.len()).sum();
        let held: usize = self.held.held().map(|s| s.len).sum();
        open + held + inits
    }

    fn part_target(&self) -> Duration90k {
        self.playlist
            .low_latency
            .as_ref()
            .map_or(Duration90k(1), |ll| ll.part_target)
    }

    fn ll(&mut self) -> &mut LowLatency {
        // Always set by `new`; built again only if that ever changed.
        let part_target = self.part_target();
        self.playlist
            .low_latency
            .get_or_insert_with(|| low_latency_tags(part_target))
    }

    /// Applies one event; true when the list of segments changed.
    fn apply(
        &mut self,
        event: CmafEvent,
        now: Instant,
        wall: SystemTime,
        actions: &mut Vec<DiskAction>,
    ) -> bool {
        match event {
            CmafEvent::Init(data) => {
                self.new_init(data, actions);
                false
            }
            CmafEvent::SegmentStart {
                discontinuity,
                independent,
            } => {
                let closed = self.close_open(None, now, actions);
                if closed {
                    self.warn_event("a segment started before the open one ended: closed it");
                }
                self.open_segment(discontinuity, independent);
                closed
            }
            CmafEvent::Part {
                data,
                duration,
                independent,
            } => self.add_part(data, duration, independent, now, wall, actions),
            CmafEvent::SegmentEnd {
                duration,
                target_duration,
            } => {
                if self.open.as_ref().is_none_or(|o| o.parts.is_empty()) {
                    self.warn_event("a segment ended without parts: nothing to list");
                    self.discard_open();
                    return false;
                }
                self.fix_target_duration(duration, target_duration);
                self.close_open(Some(duration), now, actions)
            }
        }
    }

    fn new_init(&mut self, data: Bytes, actions: &mut Vec<DiskAction>) {
        if self.init.as_ref().is_some_and(|i| i.data == data) {
            return;
        }
        let number = self.inits_made;
        self.inits_made += 1;
        let init = Arc::new(InitSection {
            number,
            name: Arc::from(format!("{}-init-{number}.mp4", self.prefix)),
            data,
        });
        actions.push(DiskAction::WriteSegment {
            path: self.dir.join(&*init.name),
            data: init.data.clone(),
        });
        self.wrote_files = true;
        self.inits.push_back(Arc::clone(&init));
        self.init = Some(init);
    }

    fn open_segment(&mut self, discontinuity: bool, independent: bool) {
        let Some(init) = self.init.clone() else {
            self.warn_event("a segment started before any initialization section: dropped");
            return;
        };
        let msn = self.segments_produced();
        // Nothing precedes the first segment, so it never starts with a discontinuity.
        let discontinuity = msn > 0 && (self.pending_discontinuity || discontinuity);
        self.pending_discontinuity = false;
        let map = Some(Arc::clone(&init.name));
        self.open = Some(Open {
            msn,
            first_part: self.parts_made,
            discontinuity,
            independent,
            init,
            program_date_time: None,
            parts: Vec::new(),
        });
        self.ll().open_segment = Some(OpenSegment {
            discontinuity,
            map,
            program_date_time: None,
            parts: Vec::new(),
        });
    }

    /// Adds a part to the open segment; true when that closed a segment (the part cap).
    fn add_part(
        &mut self,
        data: Bytes,
        duration: Duration90k,
        independent: bool,
        now: Instant,
        wall: SystemTime,
        actions: &mut Vec<DiskAction>,
    ) -> bool {
        let Some(open) = self.open.as_ref() else {
            self.warn_event("a part came with no open segment: dropped");
            return false;
        };
        let mut closed = false;
        if open.parts.len() >= MAX_PARTS_PER_SEGMENT {
            tracing::warn!(
                dir = %self.dir.display(),
                parts = MAX_PARTS_PER_SEGMENT,
                "segment with too many parts: closing it and opening another"
            );
            closed = self.close_open(None, now, actions);
            self.open_segment(false, independent);
        }
        if duration > self.part_target() {
            self.raise_part_target(duration);
        }
        let (first, discontinuity) = match &self.open {
            Some(open) => (open.parts.is_empty(), open.discontinuity),
            None => return closed,
        };
        // The segment's first part has just arrived.
        let next = self.next_program_date_time;
        let program_date_time =
            first.then(|| playlist::program_date_time(next, discontinuity, wall, to_std(duration)));
        let number = self.parts_made;
        self.parts_made += 1;
        let uri = self.part_name(number);
        if let Some(open) = self.open.as_mut() {
            open.program_date_time = open.program_date_time.or(program_date_time);
            open.parts.push(Part {
                number,
                data,
                duration,
                independent,
            });
        }
        if let Some(listed) = self.ll().open_segment.as_mut() {
            listed.program_date_time = listed.program_date_time.or(program_date_time);
            listed.parts.push(PartialSegment {
                uri,
                duration,
                independent,
            });
        }
        closed
    }

    /// Closes the open segment: with `duration` as its EXTINF (a `SegmentEnd`), or short with
    /// the duration of its parts. One without parts is discarded, and so is a first segment
    /// closed short: no playlist was served before it, so none of its parts was listed, and
    /// its short duration would fix too small a Target Duration. Returns true when a segment
    /// was listed.
    fn close_open(
        &mut self,
        duration: Option<Duration90k>,
        now: Instant,
        actions: &mut Vec<DiskAction>,
    ) -> bool {
        let Some(open) = self.open.take() else {
            return false;
        };
        let model = self.ll().open_segment.take();
        if open.parts.is_empty() || (duration.is_none() && self.segments_produced() == 0) {
            return false;
        }
        let parts_duration = Duration90k(
            open.parts
                .iter()
                .fold(0u64, |sum, p| sum.saturating_add(p.duration.ticks())),
        );
        let duration = duration.unwrap_or(parts_duration);
        // The next segment's date continues from this one's start.
        self.next_program_date_time = open
            .program_date_time
            .and_then(|t| t.checked_add(to_std(duration)));
        let name = format!("{}-{}.m4s", self.prefix, open.msn);
        let len = open.parts.iter().map(|p| p.data.len()).sum();
        actions.push(DiskAction::WritePieces {
            path: self.dir.join(&name),
            pieces: open.parts.iter().map(|p| p.data.clone()).collect(),
        });
        self.wrote_files = true;
        let listed_parts = model.map(|m| m.parts).unwrap_or_default();
        self.playlist.segments.push_back(MediaSegment {
            uri: name.clone(),
            duration,
            discontinuity: open.discontinuity,
            independent: open.independent,
            program_date_time: open.program_date_time,
            map: Some(Arc::clone(&open.init.name)),
            parts: listed_parts,
        });
        let segment = Arc::new(LlSegment {
            name,
            msn: open.msn,
            duration,
            first_part: open.first_part,
            parts: open.parts,
            init: open.init,
            len,
        });
        self.list(segment, now);
        true
    }

    /// Drops the open segment without listing it (it has no parts).
    fn discard_open(&mut self) {
        self.open = None;
        self.ll().open_segment = None;
    }

    /// EXT-X-TARGETDURATION: set by the first segment's end (at least
    /// [`MIN_TARGET_DURATION`], and covering that segment), fixed afterwards; a segment
    /// longer than it is logged once (RFC 8216 §6.2.1: it cannot change).
    fn fix_target_duration(&mut self, duration: Duration90k, target_duration: u32) {
        if self.segments_produced() == 0 {
            let rounded = duration.ticks().saturating_add(Duration90k::HZ / 2) / Duration90k::HZ;
            let covering = u32::try_from(rounded).unwrap_or(u32::MAX);
            let target = target_duration.max(covering).max(MIN_TARGET_DURATION);
            self.playlist.target_duration = target;
            let boundary = u64::from(target) * SKIP_BOUNDARY_TARGET_DURATIONS * Duration90k::HZ;
            self.ll().skip_boundary = Some(Duration90k(boundary));
        } else if !self.warned_target_duration
            && playlist::exceeds_target_duration(duration, self.playlist.target_duration)
        {
            self.warned_target_duration = true;
            tracing::warn!(
                dir = %self.dir.display(),
                duration = %duration,
                target_duration = self.playlist.target_duration,
                "CMAF segment longer than EXT-X-TARGETDURATION, which cannot change: players may stall"
            );
        }
    }

    /// A part longer than PART-TARGET: the target (and PART-HOLD-BACK) grow to cover it, as
    /// every part DURATION must be at most PART-TARGET (RFC 8216bis §4.4.4.9). Logged once:
    /// players may not expect the Part Target Duration to change.
    fn raise_part_target(&mut self, duration: Duration90k) {
        if !self.warned_part_target {
            self.warned_part_target = true;
            tracing::warn!(
                dir = %self.dir.display(),
                duration = %duration,
                part_target = %self.part_target(),
                "CMAF part longer than the Part Target Duration: raising PART-TARGET"
            );
        }
        let target = whole_millis_up(duration);
        let ll = self.ll();
        ll.part_target = target;
        ll.part_hold_back = Duration90k(target.ticks() * PART_HOLD_BACK_PARTS);
    }

    /// Lists a complete segment, and removes segments from the front of the window while it
    /// holds more than its minimum and a delta update would still skip something without
    /// them (see [`LlStream`]).
    fn list(&mut self, segment: Arc<LlSegment>, now: Instant) {
        let min = self.settings.list_size.max(MIN_LIST_SIZE);
        let boundary = self
            .playlist
            .low_latency
            .as_ref()
            .and_then(|ll| ll.skip_boundary)
            .unwrap_or(Duration90k::ZERO);
        let enough =
            |rest: Duration90k, next: &MediaSegment| rest.saturating_sub(next.duration) >= boundary;
        self.held
            .list(segment, &mut self.playlist, min, now, enough);
    }

    /// Stops listing the parts of segments whose start is more than three Target Durations
    /// from the end of the playlist, oldest first (RFC 8216bis §6.2.2).
    fn trim_part_listing(&mut self) {
        let limit = Duration90k(
            u64::from(self.playlist.target_duration)
                * PART_LISTING_TARGET_DURATIONS
                * Duration90k::HZ,
        );
        let mut from_end = self
            .playlist
            .low_latency
            .as_ref()
            .and_then(|ll| ll.open_segment.as_ref())
            .map_or(Duration90k::ZERO, |o| {
                Duration90k(o.parts.iter().map(|p| p.duration.ticks()).sum())
            });
        for segment in self.playlist.segments.iter_mut().rev() {
            from_end = from_end + segment.duration;
            if from_end > limit {
                if segment.parts.is_empty() {
                    // Older segments' parts went before.
                    break;
                }
                segment.parts = Vec::new();
            }
        }
    }

    /// After a batch of changes: the hint, the parts listed, the snapshots, the playlist on
    /// disk when the segments changed, and the deletions due.
    fn changed(&mut self, segments_changed: bool, now: Instant, actions: &mut Vec<DiskAction>) {
        if self.segments_produced() > 0 {
            let hint = (!self.held.is_ended()).then(|| self.part_name(self.parts_made));
            self.ll().preload_hint = hint;
            self.trim_part_listing();
            self.publish(segments_changed, actions);
        }
        self.expire(now, actions);
    }

    /// The playlist changed: served texts are rendered anew when next asked for, and with
    /// `to_disk` the playlist's write is scheduled.
    fn publish(&mut self, to_disk: bool, actions: &mut Vec<DiskAction>) {
        self.served = true;
        self.version += 1;
        self.rendered = OnceLock::new();
        self.rendered_delta = OnceLock::new();
        self.held.served(&self.playlist);
        if to_disk {
            actions.push(DiskAction::WritePlaylist {
                path: self.dir.join(PLAYLIST_NAME),
                text: Bytes::from(playlist::render_without_parts(&self.playlist)),
            });
        }
    }

    /// Drops the segments whose availability is over (see [`Retention::expire`]), then the
    /// initialization sections no segment uses (held, listed, or with its file in its
    /// availability period), their files with the segments'. Initialization sections are
    /// small and few, so those the DVR segments need stay in memory.
    fn expire(&mut self, now: Instant, actions: &mut Vec<DiskAction>) {
        let delete = self.held.expire(now, &self.dir, actions);
        let current = self.init.as_ref();
        let held = self.held.held().map(|s| &s.init);
        let open = self.open.as_ref().map(|o| &o.init);
        let in_use: Vec<&Arc<InitSection>> = held.chain(open).chain(current).collect();
        // Names the playlist and the files in their availability period refer to; a run of
        // segments shares one, so consecutive repeats are skipped.
        let mut mapped: Vec<&Arc<str>> = Vec::new();
        let maps = self.held.unlisted_maps();
        for map in maps.chain(self.playlist.segments.iter().filter_map(|s| s.map.as_ref())) {
            if mapped.last().is_none_or(|last| !Arc::ptr_eq(last, map)) {
                mapped.push(map);
            }
        }
        self.inits.retain(|init| {
            let keep = in_use.iter().any(|u| Arc::ptr_eq(u, init))
                || mapped.iter().any(|m| Arc::ptr_eq(m, &init.name));
            if !keep && delete {
                actions.push(DiskAction::Delete {
                    path: self.dir.join(&*init.name),
                });
            }
            keep
        });
    }

    /// The end of the stream's life: nothing stays in memory; with keep off the folder goes.
    fn remove_all(&mut self, actions: &mut Vec<DiskAction>) {
        while self.playlist.remove_first().is_some() {}
        self.open = None;
        self.init = None;
        self.inits.clear();
        self.served = false;
        self.rendered = OnceLock::new();
        self.rendered_delta = OnceLock::new();
        if !self.settings.keep && self.wrote_files {
            actions.push(DiskAction::RemoveStreamDir {
                path: self.dir.clone(),
            });
        }
    }

    /// A segment by Media Sequence Number, in the live window or in its availability period
    /// after it (the segments held in memory).
    fn held_segment(&self, msn: u64) -> Option<&Arc<LlSegment>> {
        let first_live = self.segments_produced() - self.held.listed().len() as u64;
        let listed = msn
            .checked_sub(first_live)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.held.listed().get(i));
        listed.or_else(|| self.held.leaving().find(|s| s.msn == msn))
    }

    /// Part `number` of a segment listed or in its availability period. The listed
    /// segments' parts follow one another in number, so the one holding it is found by
    /// bisection.
    fn held_part(&self, number: u64) -> Option<&Part> {
        let listed = self.held.listed();
        let after = listed.partition_point(|s| s.first_part <= number);
        let in_listed = after
            .checked_sub(1)
            .and_then(|i| listed.get(i))
            .and_then(|s| s.part(number));
        in_listed.or_else(|| self.held.leaving().find_map(|s| s.part(number)))
    }

    /// The file name of part `number`.
    fn part_name(&self, number: u64) -> String {
        format!("{}-p{number}.m4s", self.prefix)
    }

    /// What `name` names in this stream's folder: `{prefix}-{msn}.m4s`, `{prefix}-p{n}.m4s`
    /// or `{prefix}-init-{n}.mp4`, numbers in canonical decimal (so each resource has
    /// exactly one name).
    fn parse_name(&self, name: &str) -> Option<Name> {
        let rest = name.strip_prefix(self.prefix.as_str())?.strip_prefix('-')?;
        if let Some(number) = rest.strip_prefix("init-") {
            let number = canonical(number.strip_suffix(".mp4")?)?;
            return Some(Name::Init { number });
        }
        let stem = rest.strip_suffix(".m4s")?;
        Some(match stem.strip_prefix('p') {
            Some(number) => Name::Part {
                number: canonical(number)?,
            },
            None => Name::Segment {
                msn: canonical(stem)?,
            },
        })
    }

    /// Logs the first event the CMAF output sent out of order; the counters of a stream that
    /// keeps doing it would only repeat it.
    fn warn_event(&mut self, what: &'static str) {
        if !self.warned_events {
            self.warned_events = true;
            tracing::warn!(dir = %self.dir.display(), "CMAF output: {what}");
        }
    }
}

/// The Low-Latency tags of a stream before its first segment: no Skip Boundary until the
/// Target Duration is known, PART-HOLD-BACK three Part Target Durations.
fn low_latency_tags(part_target: Duration90k) -> LowLatency {
    LowLatency {
        part_target,
        part_hold_back: Duration90k(part_target.ticks() * PART_HOLD_BACK_PARTS),
        skip_boundary: None,
        open_segment: None,
        preload_hint: None,
    }
}

/// Part `number` of the stream among `parts`, the parts of one segment, numbered from
/// `first`.
fn part_of(first: u64, parts: &[Part], number: u64) -> Option<&Part> {
    let index = usize::try_from(number.checked_sub(first)?).ok()?;
    parts.get(index).filter(|p| p.number == number)
}

/// `d` rounded up to a whole millisecond, as playlists write bounds.
fn whole_millis_up(d: Duration90k) -> Duration90k {
    Duration90k(d.ticks().div_ceil(90).saturating_mul(90))
}

/// A number written in canonical decimal: digits only, no leading zero (but "0").
fn canonical(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::hls::retention::{MAX_EXTRA_LISTED, MAX_GRACE_SEGMENTS};
    use crate::hls::stream::tests::{dir, path, wall};

    use super::blocking::{Readiness, Request, readiness};
    use super::*;

    /// The Part Target Duration of these tests, and every part's duration: 0.5 s.
    const PART: Duration90k = Duration90k(45_000);

    fn start() -> CmafEvent {
        CmafEvent::SegmentStart {
            discontinuity: false,
            independent: true,
        }
    }

    fn end(ms: u64) -> CmafEvent {
        CmafEvent::SegmentEnd {
            duration: Duration90k::from_millis(ms),
            target_duration: 2,
        }
    }

    fn init(byte: u8) -> CmafEvent {
        CmafEvent::Init(Bytes::from(vec![byte; 8]))
    }

    /// A stream driven by a simulated clock: each part is pushed when its media has
    /// arrived, 0.5 s after the one before.
    struct Live {
        stream: LlStream,
        t0: Instant,
        ms: u64,
    }

    impl Live {
        fn new(settings: HlsSettings) -> Live {
            Live {
                stream: LlStream::new(dir(), settings, PART, wall(0)),
                t0: Instant::now(),
                ms: 0,
            }
        }

        /// Initialization section 0 given, segments of four parts to follow.
        fn started() -> Live {
            let mut live = Live::new(HlsSettings::default());
            live.push(vec![init(0)]);
            live
        }

        fn now(&self) -> Instant {
            self.t0 + Duration::from_millis(self.ms)
        }

        fn push(&mut self, events: Vec<CmafEvent>) -> Vec<DiskAction> {
            let mut actions = Vec::new();
            self.stream
                .push(events, self.now(), wall(self.ms), &mut actions);
            actions
        }

        /// The next part's event: 0.5 s more media, bytes naming it (`m{msn}p{index}`).
        fn next_part(&mut self) -> CmafEvent {
            self.ms += 500;
            let p = self.stream.position();
            CmafEvent::Part {
                data: Bytes::from(format!("m{}p{}", p.open_msn(), p.open_parts)),
                duration: PART,
                independent: p.open_parts == 0,
            }
        }

        /// Pushes one part on its own.
        fn part(&mut self) -> Vec<DiskAction> {
            let part = self.next_part();
            self.push(vec![part])
        }

        /// A whole segment: its start, `parts` parts one by one, the last with the end.
        fn segment(&mut self, parts: u64) -> Vec<DiskAction> {
            let mut actions = self.push(vec![start()]);
            for _ in 1..parts {
                actions.extend(self.part());
            }
            let last = self.next_part();
            actions.extend(self.push(vec![last, end(parts * 500)]));
            actions
        }

        fn segments(&mut self, count: usize) -> Vec<DiskAction> {
            (0..count).flat_map(|_| self.segment(4)).collect()
        }

        fn text(&self, skip: bool) -> String {
            let snapshot = self.stream.playlist(skip).expect("a playlist");
            String::from_utf8(snapshot.text.to_vec()).expect("UTF-8")
        }

        fn listed(&self) -> Vec<u64> {
            self.stream.held.listed().iter().map(|s| s.msn).collect()
        }

        fn sweep_at(&mut self, ms: u64) -> (bool, Vec<DiskAction>) {
            self.ms = ms;
            let mut actions = Vec::new();
            let gone = self.stream.sweep(self.now(), &mut actions);
            (gone, actions)
        }

        fn end_at(&mut self, ms: u64) -> Vec<DiskAction> {
            self.ms = ms;
            let mut actions = Vec::new();
            self.stream.end(self.now(), &mut actions);
            actions
        }

        fn begin_publisher(&mut self) -> Vec<DiskAction> {
            let mut actions = Vec::new();
            self.stream.begin_publisher(self.now(), &mut actions);
            actions
        }
    }

    fn playlist_writes(actions: &[DiskAction]) -> Vec<String> {
        actions
            .iter()
            .filter_map(|a| match a {
                DiskAction::WritePlaylist { path: p, text } => {
                    assert_eq!(p, &path(PLAYLIST_NAME));
                    Some(String::from_utf8(text.to_vec()).expect("UTF-8"))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn first_segment_then_the_open_segment_with_its_hint() {
        let mut live = Live::new(HlsSettings::default());
        let mut actions = live.push(vec![init(7)]);
        assert_eq!(
            actions,
            [DiskAction::WriteSegment {
                path: path("loyw3v28-init-0.mp4"),
                data: Bytes::from(vec![7; 8])
            }]
        );
        actions.extend(live.push(vec![start()]));
        for _ in 0..3 {
            actions.extend(live.part());
            assert!(
                live.stream.playlist(false).is_none(),
                "no segment complete yet"
            );
        }
        assert_eq!(
            live.stream.part("loyw3v28-p2.m4s"),
            Some(Bytes::from("m0p2"))
        );
        assert!(
            !live.stream.is_hinted("loyw3v28-p3.m4s"),
            "nothing served yet"
        );
        let last = live.next_part();
        actions.extend(live.push(vec![last, end(2000), start()]));
        actions.extend(live.part());

        let disk = "#EXTM3U\n\
                    #EXT-X-VERSION:6\n\
                    #EXT-X-TARGETDURATION:2\n\
                    #EXT-X-MEDIA-SEQUENCE:0\n\
                    #EXT-X-INDEPENDENT-SEGMENTS\n\
                    #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n\
                    #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
                    #EXTINF:2.000,\n\
                    loyw3v28-0.m4s\n";
        let pieces = ["m0p0", "m0p1", "m0p2", "m0p3"].map(Bytes::from).to_vec();
        assert_eq!(
            actions[1..],
            [
                DiskAction::WritePieces {
                    path: path("loyw3v28-0.m4s"),
                    pieces
                },
                DiskAction::WritePlaylist {
                    path: path(PLAYLIST_NAME),
                    text: Bytes::from(disk)
                },
            ],
            "parts are not written, and the playlist on disk only when segments change"
        );
        assert_eq!(
            live.text(false),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.000\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p1.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p2.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p3.m4s\"\n\
             #EXTINF:2.000,\n\
             loyw3v28-0.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p4.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"loyw3v28-p5.m4s\"\n"
        );
        assert!(live.stream.is_hinted("loyw3v28-p5.m4s"));
        assert!(!live.stream.is_hinted("loyw3v28-p4.m4s"));
        assert_eq!(live.stream.part("loyw3v28-p5.m4s"), None);
        assert_eq!(live.stream.target_duration(), Some(2));
    }

    #[test]
    fn lookups_by_name() {
        let mut live = Live::started();
        live.segments(2);
        live.push(vec![start()]);
        live.part();
        let s = &live.stream;
        let segment = s.segment("loyw3v28-1.m4s").expect("segment 1");
        assert_eq!(
            (segment.msn, segment.duration, segment.len()),
            (1, Duration90k(180_000), 16)
        );
        let joined: Vec<u8> = segment.pieces().flat_map(|p| p.to_vec()).collect();
        assert_eq!(joined, b"m1p0m1p1m1p2m1p3");
        assert_eq!(s.part("loyw3v28-p3.m4s"), Some(Bytes::from("m0p3")));
        assert_eq!(s.part("loyw3v28-p8.m4s"), Some(Bytes::from("m2p0")));
        assert_eq!(s.init("loyw3v28-init-0.mp4"), Some(Bytes::from(vec![0; 8])));
        for missing in [
            "loyw3v28-2.m4s",                    // open, not complete
            "loyw3v28-3.m4s",                    // not yet
            "loyw3v28-01.m4s",                   // not canonical
            "loyw3v28-p4.m4s",                   // a part
            "loyw3v28-+1.m4s",                   // not a number
            "loyw3v28-1.ts",                     // the classic window's name
            "loyw3v29-1.m4s",                    // another stream's prefix
            "loyw3v28-1.m4s.m4s",                // not a part
            "loyw3v28-.m4s",                     // no number
            "loyw3v28-18446744073709551616.m4s", // too large
            "index.m3u8",
        ] {
            assert!(s.segment(missing).is_none(), "{missing}");
        }
        // Part 4 is segment 1's first: numbers run on across segments.
        assert_eq!(s.part("loyw3v28-p4.m4s"), Some(Bytes::from("m1p0")));
        for missing in [
            "loyw3v28-p9.m4s",                    // not yet
            "loyw3v28-1.m4s",                     // a segment
            "loyw3v28-p04.m4s",                   // not canonical
            "loyw3v28-p+4.m4s",                   // not a number
            "loyw3v28-p.m4s",                     // no number
            "loyw3v28-P4.m4s",                    // not the server's form
            "loyw3v28-p4.0.m4s",                  // not a part
            "loyw3v28-1.0.m4s",                   // not a part name
            "loyw3v29-p4.m4s",                    // another stream's prefix
            "loyw3v28-p4.ts",                     // not CMAF
            "loyw3v28-p18446744073709551616.m4s", // too large
        ] {
            assert!(s.part(missing).is_none(), "{missing}");
        }
        for missing in [
            "loyw3v28-init-1.mp4",
            "loyw3v28-init-00.mp4",
            "loyw3v28-init-0.m4s",
        ] {
            assert!(s.init(missing).is_none(), "{missing}");
        }
    }

    #[test]
    fn segment_bytes_are_its_parts_bytes_never_copied() {
        let mut live = Live::started();
        let actions = live.segment(4);
        let segment = live.stream.segment("loyw3v28-0.m4s").expect("segment 0");
        let Some(DiskAction::WritePieces { pieces, .. }) = actions
            .iter()
            .find(|a| matches!(a, DiskAction::WritePieces { .. }))
        else {
            panic!("no segment write in {actions:?}");
        };
        for (i, (piece, on_disk)) in segment.pieces().zip(pieces).enumerate() {
            let part = live
                .stream
                .part(&format!("loyw3v28-p{i}.m4s"))
                .expect("part");
            assert_eq!(piece.as_ptr(), part.as_ptr(), "part {i} shares its bytes");
            assert_eq!(piece.as_ptr(), on_disk.as_ptr(), "the disk writer too");
        }
        assert_eq!(live.stream.memory_bytes(), 16 + 8);
        live.push(vec![start()]);
        live.part();
        assert_eq!(live.stream.memory_bytes(), 16 + 4 + 8);
    }

    #[test]
    fn window_lets_a_delta_update_skip_something() {
        let cases: [(usize, u64, usize); 4] = [
            // (list_size, parts of 0.5 s per segment, segments listed once the stream is long)
            (3, 4, 7), // 7 x 2 s: the first ends 12 s before the end
            (3, 3, 9), // 1.5 s segments: the 8 after the first span 12 s
            (10, 4, 10),
            (0, 4, 7),
        ];
        for (list_size, parts, listed) in cases {
            let mut live = Live::new(HlsSettings {
                list_size,
                ..HlsSettings::default()
            });
            live.push(vec![init(0)]);
            for _ in 0..3 {
                live.segment(parts);
            }
            assert_eq!(live.listed(), [0, 1, 2], "short stream: everything listed");
            assert!(
                Arc::ptr_eq(
                    &live.stream.playlist(true).expect("delta"),
                    &live.stream.playlist(false).expect("full")
                ),
                "nothing to skip: the delta update is the full playlist"
            );
            for _ in 0..20 {
                live.segment(parts);
            }
            assert_eq!(
                live.listed().len(),
                listed,
                "list_size {list_size}, {parts} parts"
            );
            assert_eq!(live.listed().last(), Some(&22));
            assert!(live.stream.playlist.skippable_segments() >= 1);
            let delta = live.text(true);
            assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
            assert!(delta.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{delta}");
        }
    }

    #[test]
    fn delta_update_is_rendered_once_per_change_with_its_own_etag() {
        let mut live = Live::started();
        live.segments(8);
        let full = live.stream.playlist(false).expect("full");
        let delta = live.stream.playlist(true).expect("delta");
        assert_ne!(full.etag, delta.etag);
        assert!(Arc::ptr_eq(
            &full,
            &live.stream.playlist(false).expect("full")
        ));
        assert!(Arc::ptr_eq(
            &delta,
            &live.stream.playlist(true).expect("delta")
        ));
        let text = live.text(true);
        // 7 listed (1..=7): segment 1 ends 12 s before the end of segment 7.
        assert_eq!(live.listed(), (1..=7).collect::<Vec<_>>());
        assert!(
            text.contains(
                "#EXT-X-MEDIA-SEQUENCE:1\n\
                 #EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-SKIP:SKIPPED-SEGMENTS=1\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
                 #EXTINF:2.000,\n\
                 loyw3v28-2.m4s\n"
            ),
            "{text}"
        );
        live.push(vec![start()]);
        live.part();
        assert_ne!(live.stream.playlist(true).expect("delta").etag, delta.etag);
    }

    #[test]
    fn parts_listed_for_segments_within_three_target_durations() {
        let mut live = Live::started();
        live.segments(6);
        let text = live.text(false);
        // The end is segment 5's end: segments 3 (6 s before it), 4 and 5 keep their parts.
        // Segment `msn`'s first part is part `4 * msn`.
        for msn in 0..6 {
            let listed = text.contains(&format!("URI=\"loyw3v28-p{}.m4s\"", 4 * msn));
            assert_eq!(listed, msn >= 3, "segment {msn}: {text}");
        }
        // Half a second more: segment 3 starts 6.5 s before the end.
        live.push(vec![start()]);
        live.part();
        let text = live.text(false);
        assert!(!text.contains("loyw3v28-p12.m4s"), "{text}");
        assert!(text.contains("loyw3v28-p19.m4s"), "{text}");
        // Its parts are still servable: the segment is.
        assert_eq!(
            live.stream.part("loyw3v28-p12.m4s"),
            Some(Bytes::from("m3p0"))
        );
        assert_eq!(
            live.stream.part("loyw3v28-p0.m4s"),
            Some(Bytes::from("m0p0"))
        );
    }

    #[test]
    fn segments_leave_and_go_after_their_availability() {
        let mut live = Live::started();
        // Segment 0 leaves when segment 7 is complete (at 16 s); the longest playlist
        // before was 7 x 2 s. It stays for its 2 s plus those 14 s.
        let actions = live.segments(8);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, DiskAction::Delete { .. }))
        );
        assert_eq!(live.listed(), (1..=7).collect::<Vec<_>>());
        assert!(live.stream.segment("loyw3v28-0.m4s").is_some());
        let (gone, actions) = live.sweep_at(16_000 + 15_999);
        assert!(!gone);
        assert_eq!(actions, []);
        let (_, actions) = live.sweep_at(16_000 + 16_000);
        assert_eq!(
            actions,
            [DiskAction::Delete {
                path: path("loyw3v28-0.m4s")
            }]
        );
        assert!(live.stream.segment("loyw3v28-0.m4s").is_none());
        assert!(live.stream.part("loyw3v28-p0.m4s").is_none());
        assert!(live.stream.segment("loyw3v28-1.m4s").is_some());
    }

    #[test]
    fn window_and_grace_are_bounded_even_for_tiny_segments() {
        let mut live = Live::started();
        // All at the same instant: nothing's availability is over.
        for _ in 0..1000 {
            let part = CmafEvent::Part {
                data: Bytes::from_static(b"x"),
                duration: Duration90k::from_millis(10),
                independent: true,
            };
            live.push(vec![start(), part, end(10)]);
        }
        assert_eq!(live.listed().len(), MIN_LIST_SIZE + MAX_EXTRA_LISTED);
        assert_eq!(live.stream.held.leaving().len(), MAX_GRACE_SEGMENTS);
    }

    #[test]
    fn too_many_parts_close_the_segment() {
        let mut live = Live::started();
        live.segment(4);
        live.push(vec![start()]);
        for _ in 0..MAX_PARTS_PER_SEGMENT {
            live.part();
        }
        assert_eq!(
            live.stream.position().open_parts,
            MAX_PARTS_PER_SEGMENT as u64
        );
        let actions = live.part();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, DiskAction::WritePieces { .. }))
        );
        let p = live.stream.position();
        assert_eq!(
            (p.last_msn, p.last_parts, p.open_parts),
            (Some(1), MAX_PARTS_PER_SEGMENT as u64, 1)
        );
        // Part numbers run on into the segment opened for the part.
        let last = 4 + MAX_PARTS_PER_SEGMENT - 1;
        assert_eq!(
            live.stream.part(&format!("loyw3v28-p{last}.m4s")),
            Some(Bytes::from(format!("m1p{}", MAX_PARTS_PER_SEGMENT - 1)))
        );
        // Its bytes were named before the cap moved it to segment 2.
        let data = format!("m1p{MAX_PARTS_PER_SEGMENT}");
        assert_came(&live, &format!("loyw3v28-p{}.m4s", last + 1), &data);
    }

    #[test]
    fn new_publisher_closes_the_open_segment_short_and_starts_a_discontinuity() {
        let mut live = Live::started();
        live.segments(2);
        live.push(vec![start()]);
        live.part();
        live.part();
        assert!(live.stream.is_hinted("loyw3v28-p10.m4s"));
        let actions = live.begin_publisher();
        // The half-listed segment is complete with the parts it has.
        assert!(actions.contains(&DiskAction::WritePieces {
            path: path("loyw3v28-2.m4s"),
            pieces: vec![Bytes::from("m2p0"), Bytes::from("m2p1")],
        }));
        assert_eq!(playlist_writes(&actions).len(), 1);
        let text = live.text(false);
        assert!(
            text.ends_with(
                "#EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p8.m4s\",INDEPENDENT=YES\n\
                 #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p9.m4s\"\n\
                 #EXTINF:1.000,\n\
                 loyw3v28-2.m4s\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"loyw3v28-p10.m4s\"\n"
            ),
            "{text}"
        );
        // The hint still names the next part: the new publisher's first.
        assert!(live.stream.is_hinted("loyw3v28-p10.m4s"));
        assert_eq!(live.stream.part("loyw3v28-p10.m4s"), None);

        // The new publisher's CMAF output: new codec parameters, so a new map.
        live.ms += 3000;
        live.push(vec![init(1), start()]);
        live.part();
        let text = live.text(false);
        assert!(
            text.ends_with(
                "loyw3v28-2.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-1.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n\
                 #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p10.m4s\",INDEPENDENT=YES\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"loyw3v28-p11.m4s\"\n"
            ),
            "{text}"
        );
        assert_eq!(
            live.stream.part("loyw3v28-p10.m4s"),
            Some(Bytes::from("m3p0"))
        );
        let next = live.next_part();
        live.push(vec![next, end(1000), start()]);
        assert!(
            live.text(false)
                .contains("#EXTINF:1.000,\nloyw3v28-3.m4s\n")
        );
    }

    #[test]
    fn same_initialization_again_keeps_its_name_and_map() {
        let mut live = Live::started();
        live.segment(4);
        live.begin_publisher();
        let actions = live.push(vec![init(0)]);
        assert_eq!(actions, [], "nothing new to write");
        live.segment(4);
        let text = live.text(false);
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        assert!(
            text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:"),
            "{text}"
        );
    }

    #[test]
    fn codec_change_within_a_publisher() {
        let mut live = Live::started();
        live.segment(4);
        live.push(vec![
            init(1),
            CmafEvent::SegmentStart {
                discontinuity: true,
                independent: true,
            },
        ]);
        let part = live.next_part();
        live.push(vec![part, end(500)]);
        let text = live.text(false);
        assert!(
            text.contains(
                "loyw3v28-0.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-1.mp4\"\n"
            ),
            "{text}"
        );
        assert_eq!(
            live.stream.segment("loyw3v28-1.m4s").map(|s| s.init.number),
            Some(1)
        );
    }

    #[test]
    fn unused_initialization_sections_go() {
        let mut live = Live::started();
        live.segment(4);
        // Replaced before any segment used it: goes at once.
        let actions = live.push(vec![init(1), init(2)]);
        assert!(actions.contains(&DiskAction::Delete {
            path: path("loyw3v28-init-1.mp4")
        }));
        assert!(live.stream.init("loyw3v28-init-1.mp4").is_none());
        // Init 0 stays while segment 0 is held.
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_some());
        live.segments(8);
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_some());
        let (_, actions) = live.sweep_at(1_000_000);
        assert!(actions.contains(&DiskAction::Delete {
            path: path("loyw3v28-init-0.mp4")
        }));
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_none());
        assert!(live.stream.init("loyw3v28-init-2.mp4").is_some());
    }

    #[test]
    fn end_closes_short_lists_endlist_and_drops_the_hint() {
        let mut live = Live::started();
        live.segments(2);
        live.push(vec![start()]);
        live.part();
        let actions = live.end_at(5000);
        assert!(live.stream.is_ended());
        let text = live.text(false);
        assert!(
            text.ends_with(
                "#EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p8.m4s\",INDEPENDENT=YES\n\
                 #EXTINF:0.500,\n\
                 loyw3v28-2.m4s\n\
                 #EXT-X-ENDLIST\n"
            ),
            "{text}"
        );
        assert_eq!(playlist_writes(&actions).len(), 1);
        assert!(playlist_writes(&actions)[0].ends_with("loyw3v28-2.m4s\n#EXT-X-ENDLIST\n"));
        assert!(Arc::ptr_eq(
            &live.stream.playlist(true).expect("delta"),
            &live.stream.playlist(false).expect("full")
        ));
        assert!(!live.stream.is_hinted("loyw3v28-p9.m4s"));
        let p = live.stream.position();
        assert!(p.ended);
        assert_eq!(
            readiness(
                &p,
                Request {
                    msn: 3,
                    part: Some(9)
                }
            ),
            Readiness::Ready,
            "parts that will never come: the final playlist at once"
        );
        assert_eq!(live.end_at(6000), [], "ended once");

        // The last playlist's segments stay for their duration plus the longest playlist
        // (4.5 s): until 5 s + 2 s + 4.5 s for the 2 s ones.
        let (gone, actions) = live.sweep_at(11_499);
        assert!(!gone);
        assert_eq!(actions, []);
        let (gone, actions) = live.sweep_at(11_500);
        assert!(gone);
        assert_eq!(
            actions,
            [DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/abc")
            }]
        );
        assert!(live.stream.playlist(false).is_none());
        assert!(live.stream.segment("loyw3v28-0.m4s").is_none());
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_none());
        assert_eq!(live.stream.memory_bytes(), 0);
    }

    #[test]
    fn end_with_keep_leaves_the_disk_alone() {
        let mut live = Live::new(HlsSettings {
            keep: true,
            ..HlsSettings::default()
        });
        live.push(vec![init(0)]);
        live.segments(2);
        live.end_at(4000);
        assert_eq!(live.sweep_at(1_000_000), (true, vec![]));
    }

    #[test]
    fn stream_that_completed_nothing() {
        // Nothing written: nothing to remove.
        let mut live = Live::new(HlsSettings::default());
        assert_eq!(live.end_at(0), []);
        assert_eq!(live.sweep_at(0), (true, vec![]));

        // An initialization section and a part, but no segment: the part was never listed,
        // so the segment is not completed short; the folder goes.
        let mut live = Live::started();
        live.push(vec![start()]);
        live.part();
        assert_eq!(live.end_at(500), []);
        assert!(live.stream.playlist(false).is_none());
        assert_eq!(
            live.sweep_at(500),
            (
                true,
                vec![DiskAction::RemoveStreamDir {
                    path: PathBuf::from("live/abc")
                }]
            )
        );
    }

    #[test]
    fn republish_within_the_grace_period_reopens() {
        let mut live = Live::started();
        live.segments(2);
        live.end_at(4000);
        let actions = live.begin_publisher();
        assert!(!live.stream.is_ended());
        let written = playlist_writes(&actions);
        assert_eq!(written.len(), 1);
        assert!(!written[0].contains("ENDLIST"));
        assert!(
            live.text(false)
                .ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"loyw3v28-p8.m4s\"\n")
        );
        live.segment(4);
        assert!(live.text(false).contains("#EXT-X-DISCONTINUITY\n"));
        let (gone, actions) = live.sweep_at(60_000);
        assert!(!gone);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, DiskAction::RemoveStreamDir { .. }))
        );
    }

    #[test]
    fn events_after_the_end_reopen() {
        let mut live = Live::started();
        live.segment(4);
        live.end_at(2000);
        live.segment(4);
        assert!(!live.stream.is_ended());
        let text = live.text(false);
        assert!(!text.contains("ENDLIST"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }

    #[test]
    fn events_out_of_order_are_dropped() {
        let mut live = Live::new(HlsSettings::default());
        // No initialization section yet: the segment and its parts are dropped.
        live.push(vec![start()]);
        live.part();
        live.push(vec![end(500)]);
        assert_eq!(live.stream.segments_produced(), 0);
        assert_eq!(live.stream.memory_bytes(), 0);
        live.push(vec![init(0)]);
        // A part with no segment open, an end with no parts.
        live.part();
        live.push(vec![end(500), start(), end(500)]);
        assert_eq!(live.stream.segments_produced(), 0);
        // A start while a segment is open closes it.
        live.segment(4);
        live.push(vec![start()]);
        live.part();
        live.push(vec![start()]);
        let p = live.stream.position();
        assert_eq!((p.last_msn, p.last_parts, p.open_parts), (Some(1), 1, 0));
        assert!(
            live.text(false)
                .contains("#EXTINF:0.500,\nloyw3v28-1.m4s\n")
        );
    }

    #[test]
    fn position_follows_the_parts_for_blocking_requests() {
        let mut live = Live::started();
        assert_eq!(live.stream.position().last_msn, None);
        live.segment(4);
        live.push(vec![start()]);
        let p = live.stream.position();
        assert_eq!(
            p,
            Position {
                last_msn: Some(0),
                last_parts: 4,
                open_parts: 0,
                ended: false,
                advance_part_limit: 6,
            }
        );
        let request = Request {
            msn: 1,
            part: Some(1),
        };
        assert_eq!(readiness(&p, request), Readiness::Wait);
        live.part();
        assert_eq!(readiness(&live.stream.position(), request), Readiness::Wait);
        live.part();
        assert_eq!(
            readiness(&live.stream.position(), request),
            Readiness::Ready
        );
        // Part 4 of segment 1, which ends after part 3: part 0 of segment 2.
        let past = Request {
            msn: 1,
            part: Some(4),
        };
        live.part();
        let last = live.next_part();
        live.push(vec![last, end(2000)]);
        assert_eq!(readiness(&live.stream.position(), past), Readiness::Wait);
        live.push(vec![start()]);
        live.part();
        assert_eq!(readiness(&live.stream.position(), past), Readiness::Ready);
    }

    /// The served playlist's hint is `name`, a part that does not exist yet and that HTTP
    /// holds requests for.
    fn assert_hinted(live: &Live, name: &str) {
        let text = live.text(false);
        let line = format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{name}\"\n");
        assert!(text.ends_with(&line), "{text}");
        assert!(live.stream.is_hinted(name), "{name}");
        assert_eq!(live.stream.part(name), None, "{name}");
    }

    /// Part `name` has come with `data`: servable, listed last, no longer hinted.
    fn assert_came(live: &Live, name: &str, data: &str) {
        assert_eq!(live.stream.part(name), Some(Bytes::from(data.to_owned())));
        assert!(!live.stream.is_hinted(name), "{name}");
        let text = live.text(false);
        let last_part = text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
            .next_back()
            .and_then(|l| l.split("URI=\"").nth(1))
            .and_then(|uri| uri.split('"').next());
        assert_eq!(last_part, Some(name), "{text}");
    }

    #[test]
    fn the_hint_names_the_part_that_comes_next_across_segments_and_publishers() {
        let mut live = Live::started();
        live.segment(4);
        live.push(vec![start()]);
        for _ in 0..4 {
            live.part();
        }
        // Segment 1's fourth part on its own, as the CMAF output closes a part once its media
        // is complete: the hint names the next part, whichever segment it belongs to.
        assert_came(&live, "loyw3v28-p7.m4s", "m1p3");
        assert_hinted(&live, "loyw3v28-p8.m4s");
        // The next keyframe ends segment 1 there: the hint stays, and is answered with the
        // next segment's first part.
        live.push(vec![end(2000), start()]);
        assert!(
            live.text(false)
                .contains("#EXTINF:2.000,\nloyw3v28-1.m4s\n"),
            "segment 1 complete"
        );
        assert_hinted(&live, "loyw3v28-p8.m4s");
        live.part();
        assert_came(&live, "loyw3v28-p8.m4s", "m2p0");
        assert_hinted(&live, "loyw3v28-p9.m4s");
        live.part();
        assert_came(&live, "loyw3v28-p9.m4s", "m2p1");

        // A new publisher: segment 2 closed short, the hint stays for its first part.
        live.begin_publisher();
        assert!(
            live.text(false)
                .contains("#EXTINF:1.000,\nloyw3v28-2.m4s\n"),
            "segment 2 closed short"
        );
        assert_hinted(&live, "loyw3v28-p10.m4s");
        live.push(vec![init(1), start()]);
        live.part();
        assert_came(&live, "loyw3v28-p10.m4s", "m3p0");
        assert_hinted(&live, "loyw3v28-p11.m4s");
        // The last part with the end and the next start in one batch: the same.
        let last = live.next_part();
        live.push(vec![last, end(1000), start()]);
        assert_came(&live, "loyw3v28-p11.m4s", "m3p1");
        assert_hinted(&live, "loyw3v28-p12.m4s");

        // The end: no hint. A republish goes on counting.
        let ms = live.ms;
        live.end_at(ms);
        assert!(!live.text(false).contains("PRELOAD-HINT"));
        assert!(!live.stream.is_hinted("loyw3v28-p12.m4s"));
        live.begin_publisher();
        assert_hinted(&live, "loyw3v28-p12.m4s");
        live.segment(4);
        assert_came(&live, "loyw3v28-p15.m4s", "m4p3");
        assert_eq!(
            live.stream.part("loyw3v28-p12.m4s"),
            Some(Bytes::from("m4p0"))
        );
        assert_hinted(&live, "loyw3v28-p16.m4s");
        // Every part of the stream is still servable under its one name.
        let segments = [(0, 4), (1, 4), (2, 2), (3, 2), (4, 4)];
        let mut number = 0;
        for (msn, parts) in segments {
            for index in 0..parts {
                assert_eq!(
                    live.stream.part(&format!("loyw3v28-p{number}.m4s")),
                    Some(Bytes::from(format!("m{msn}p{index}"))),
                    "part {number}"
                );
                number += 1;
            }
        }
    }

    #[test]
    fn longer_part_raises_the_part_target() {
        let mut live = Live::started();
        live.segment(4);
        live.push(vec![start()]);
        live.ms += 600;
        live.push(vec![CmafEvent::Part {
            data: Bytes::from("long"),
            duration: Duration90k(54_045), // 0.6005 s
            independent: true,
        }]);
        let text = live.text(false);
        assert!(
            text.contains(
                "PART-HOLD-BACK=1.803,CAN-SKIP-UNTIL=12.000\n#EXT-X-PART-INF:PART-TARGET=0.601\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.601,URI=\"loyw3v28-p4.m4s\",INDEPENDENT=YES\n")
        );
        assert_eq!(live.stream.position().advance_part_limit, 4);
    }

    #[test]
    fn target_duration_is_fixed_by_the_first_segment() {
        let mut live = Live::started();
        live.push(vec![start()]);
        for _ in 0..5 {
            live.part();
        }
        let last = live.next_part();
        // The CMAF output says 2, but the first segment is 3 s: the target covers it.
        live.push(vec![last, end(3000)]);
        assert_eq!(live.stream.target_duration(), Some(3));
        assert!(live.text(false).contains("CAN-SKIP-UNTIL=18.000"));
        live.push(vec![
            start(),
            CmafEvent::SegmentEnd {
                duration: Duration90k::from_millis(4000),
                target_duration: 4,
            },
        ]);
        live.segment(8);
        assert_eq!(live.stream.target_duration(), Some(3));
        assert!(live.stream.warned_target_duration);
    }

    #[test]
    fn dates_continue_and_restart_after_a_discontinuity() {
        let mut live = Live::started();
        live.segments(2);
        live.begin_publisher();
        live.ms = 10_000;
        live.segment(4);
        let text = live.text(false);
        assert!(
            text.contains(
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
                 #EXT-X-PART:DURATION=0.500,URI=\"loyw3v28-p4.m4s\""
            ),
            "{text}"
        );
        // The first part of segment 2 arrived at 10.5 s: it started at 10 s.
        assert!(
            text.contains(
                "#EXT-X-DISCONTINUITY\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z\n"
            ),
            "{text}"
        );
    }

    /// Initialization section 0 given, with a DVR window of `secs`.
    fn started_dvr(secs: u64) -> Live {
        let mut live = Live::new(HlsSettings {
            dvr_window: Duration90k::from_millis(secs * 1000),
            ..HlsSettings::default()
        });
        live.push(vec![init(0)]);
        live
    }

    fn deleted(actions: &[DiskAction]) -> Vec<PathBuf> {
        let delete = |a: &DiskAction| match a {
            DiskAction::Delete { path } => Some(path.clone()),
            _ => None,
        };
        actions.iter().filter_map(delete).collect()
    }

    /// The segment URIs a playlist text lists, in order.
    fn uris(text: &str) -> Vec<&str> {
        let lines: Vec<&str> = text.lines().collect();
        let extinf = |w: &[&str]| w[0].starts_with("#EXTINF:");
        lines
            .windows(2)
            .filter(|w| extinf(w))
            .map(|w| w[1])
            .collect()
    }

    #[test]
    fn dvr_window_lists_earlier_segments_without_parts() {
        let mut live = started_dvr(120);
        let mut media_sequence = 0;
        for _ in 0..200 {
            live.segment(4);
            assert!(live.stream.playlist.media_sequence >= media_sequence);
            media_sequence = live.stream.playlist.media_sequence;
        }
        // 120 s of 2 s segments: 140 to 199; the live window the last seven.
        assert_eq!(live.listed(), (193..200).collect::<Vec<_>>());
        assert_eq!(live.stream.playlist.media_sequence, 140);
        let text = live.text(false);
        let listed = uris(&text);
        assert_eq!(listed.len(), 60, "{text}");
        assert_eq!(listed.first(), Some(&"loyw3v28-140.m4s"));
        assert_eq!(listed.last(), Some(&"loyw3v28-199.m4s"));
        assert!(
            text.contains(
                "#EXT-X-MEDIA-SEQUENCE:140\n\
                 #EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:18:00.000Z\n\
                 #EXTINF:2.000,\n\
                 loyw3v28-140.m4s\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 60);
        // Parts of the last three target durations only, as without a DVR window.
        let mut plain = Live::started();
        plain.segments(200);
        assert_eq!(
            text.matches("#EXT-X-PART:").count(),
            plain.text(false).matches("#EXT-X-PART:").count()
        );
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,"), "{text}");
    }

    #[test]
    fn dvr_delta_update_skips_all_but_the_skip_boundary() {
        let mut live = started_dvr(120);
        live.segments(200);
        let full = live.text(false);
        let delta = live.text(true);
        assert!(
            full.contains("CAN-SKIP-UNTIL=12.000"),
            "six target durations: {full}"
        );
        // Segments ending at least 12 s before the end of segment 199: 140 to 193.
        assert!(
            delta.contains(
                "#EXT-X-MEDIA-SEQUENCE:140\n\
                 #EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-SKIP:SKIPPED-SEGMENTS=54\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n"
            ),
            "{delta}"
        );
        assert!(delta.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n"), "{delta}");
        // A client that merges the update (RFC 8216bis §6.2.5.1) gets the full playlist:
        // the skipped segments are the ones it had, and the rest follow them.
        let full_uris = uris(&full);
        let delta_uris = uris(&delta);
        assert_eq!(delta_uris.len(), 6);
        assert_eq!(&full_uris[54..], &delta_uris[..]);
        let tail = |text: &str| {
            let at = text.find("loyw3v28-194.m4s\n").expect("segment 194");
            text[at..].to_owned()
        };
        assert_eq!(tail(&full), tail(&delta));
        assert!(delta.len() * 2 < full.len(), "the update is short");
    }

    #[test]
    fn dvr_segments_are_served_from_their_files_and_memory_stays_bounded() {
        let mut live = started_dvr(120);
        let mut plain = Live::started();
        let mut most = 0;
        for n in 0..200 {
            live.segment(4);
            plain.segment(4);
            if n >= 20 {
                most = most.max(live.stream.memory_bytes());
                assert_eq!(live.stream.memory_bytes(), plain.stream.memory_bytes());
            }
        }
        // The live window (7 segments), those in their availability period after it (2 s +
        // the 14 s live window), the initialization section: nothing grows with the DVR
        // window.
        assert!(most <= (7 + 9) * 4 * 6 + 8, "{most}");
        assert!(live.stream.segment("loyw3v28-140.m4s").is_none());
        assert_eq!(
            live.stream.segment_file("loyw3v28-140.m4s"),
            Some(path("loyw3v28-140.m4s"))
        );
        assert!(live.stream.segment("loyw3v28-199.m4s").is_some());
        // Left the playlist, in its availability period: still on disk.
        assert_eq!(
            live.stream.segment_file("loyw3v28-100.m4s"),
            Some(path("loyw3v28-100.m4s"))
        );
        for name in [
            "loyw3v28-200.m4s",
            "loyw3v28-0140.m4s",
            "loyw3v28-p560.m4s",
            "loyw3v28-init-0.mp4",
            "loyw3v29-140.m4s",
            "loyw3v28-140.ts",
        ] {
            assert_eq!(live.stream.segment_file(name), None, "{name}");
        }
        // Parts of DVR segments are gone with their bytes.
        assert_eq!(live.stream.part("loyw3v28-p560.m4s"), None);
    }

    #[test]
    fn dvr_files_are_deleted_after_the_window_and_their_availability() {
        let mut live = started_dvr(120);
        for n in 0..300u64 {
            let actions = live.segment(4);
            // Segment s leaves the playlist when segment s + 60 completes, at 2s + 122 s;
            // its availability is its 2 s plus the longest playlist served (120 s): its file
            // goes when segment s + 121 completes.
            let expected: Vec<PathBuf> = n
                .checked_sub(121)
                .map(|s| path(&format!("loyw3v28-{s}.m4s")))
                .into_iter()
                .collect();
            assert_eq!(deleted(&actions), expected, "segment {n}");
        }
    }

    #[test]
    fn dvr_keeps_the_initialization_sections_its_segments_need() {
        let mut live = started_dvr(120);
        live.segments(10);
        live.push(vec![
            init(1),
            CmafEvent::SegmentStart {
                discontinuity: true,
                independent: true,
            },
        ]);
        let part = live.next_part();
        live.push(vec![part, end(500)]);
        let mut actions = live.segments(40);
        // Segments 0 to 9 need init 0: listed, though long out of memory.
        let text = live.text(false);
        assert!(
            text.contains(
                "#EXT-X-MEDIA-SEQUENCE:0\n\
                 #EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-0.mp4\"\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "loyw3v28-9.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"loyw3v28-init-1.mp4\"\n"
            ),
            "{text}"
        );
        assert!(live.stream.segment("loyw3v28-0.m4s").is_none());
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_some());
        // Once they left the playlist, and their availability is over, it goes.
        actions.extend(live.segments(200));
        assert!(!live.text(false).contains("init-0"));
        assert!(live.stream.init("loyw3v28-init-0.mp4").is_none());
        let gone = deleted(&actions);
        let at = |name: &str| gone.iter().position(|p| p == &path(name));
        let init_at = at("loyw3v28-init-0.mp4").expect("init 0 deleted");
        assert!(at("loyw3v28-9.m4s").expect("segment 9 deleted") < init_at);
        // Segment 10 (the first with init 1) is in the text with its discontinuity until it
        // leaves; then DISCONTINUITY-SEQUENCE counts it.
        assert!(
            live.text(false)
                .contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n")
        );
    }

    #[test]
    fn ended_dvr_playlist_lists_its_dvr_segments_as_long_as_the_stream_is_kept() {
        let mut live = started_dvr(120);
        let mut plain = Live::started();
        live.segments(100);
        plain.segments(100);
        let end = live.ms + 100;
        live.end_at(end);
        plain.end_at(end);
        let text = live.text(false);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:40\n"), "{text}");
        assert!(
            text.ends_with("loyw3v28-99.m4s\n#EXT-X-ENDLIST\n"),
            "{text}"
        );
        let mut ms = end;
        loop {
            ms += 100;
            let (gone, _) = live.sweep_at(ms);
            let (plain_gone, _) = plain.sweep_at(ms);
            assert_eq!(gone, plain_gone, "at {ms} ms");
            if gone {
                break;
            }
            assert_eq!(uris(&live.text(false)).len(), 60);
            assert!(live.stream.segment_file("loyw3v28-40.m4s").is_some());
        }
        assert!(live.stream.playlist(false).is_none());
    }

    #[test]
    fn canonical_numbers() {
        assert_eq!(canonical("0"), Some(0));
        assert_eq!(canonical("10"), Some(10));
        assert_eq!(canonical("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1a",
            "18446744073709551616",
        ] {
            assert_eq!(canonical(bad), None, "{bad:?}");
        }
        assert_eq!(whole_millis_up(Duration90k(30_001)), Duration90k(30_060));
        assert_eq!(whole_millis_up(Duration90k(45_000)), Duration90k(45_000));
    }
}
