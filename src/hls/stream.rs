//! The HLS state of one stream: names the segments the segmenter finishes, keeps the live
//! playlist window and the segments still servable, renders the playlist once per change,
//! and says which files to write and delete.
//!
//! Sans-IO: the caller passes the clocks in (`now` for timers, `wall` for dates) and carries
//! out the [`DiskAction`]s (see `hls::disk`). Not thread-safe by itself; the stream registry
//! holds it behind a lock.
//!
//! Spec: RFC 8216 §6.2.1, §6.2.2 (live playlist server rules), §4.3.3 (playlist tags).

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::media::Duration90k;

use super::CompletedSegment;
use super::playlist::{self, MediaPlaylist, MediaSegment, PlaylistType};
use super::retention::{HeldSegment, Retention, to_std};

/// The playlist's file name in the stream folder (the URL users have:
/// `/{app}/{key}/index.m3u8`).
pub const PLAYLIST_NAME: &str = "index.m3u8";

/// A live playlist keeps at least this many target durations of media once the stream has
/// produced that much.
///
/// Spec: RFC 8216 §6.2.2: "The server MUST NOT remove a Media Segment from a Playlist file
/// without an EXT-X-ENDLIST tag if that would produce a Playlist whose duration is less than
/// three times the target duration."
const MIN_TARGET_DURATIONS_LISTED: u64 = 3;

/// A live playlist lists at least one segment, whatever `list_size` says: an empty live
/// playlist gives a player nothing to start from.
const MIN_LIST_SIZE: usize = 1;

/// Bytes of the playlist text's SHA-256 kept in its ETag: 128 bits, so two different
/// playlists of a stream never share one.
const ETAG_BYTES: usize = 16;

/// What the configuration says about a stream's HLS output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HlsSettings {
    /// `hls.list_size`: segments in the live playlist (more when needed for three target
    /// durations of media, see [`HlsStream`]).
    pub list_size: usize,
    /// `hls.delete_segments`: segments that left the playlist are deleted from disk once
    /// their availability period is over.
    pub delete_segments: bool,
    /// `hls.keep`: the stream's files stay on disk after the stream ends.
    pub keep: bool,
    /// `hls.dvr_window`: the live playlist also lists the earlier segments whose media lies
    /// within this much of its end, served from their files (see [`HlsStream`]). Zero: off.
    pub dvr_window: Duration90k,
}

impl Default for HlsSettings {
    /// The original service's `hls_list_size=3:hls_flags=delete_segments`, `hlsKeep=false`.
    fn default() -> HlsSettings {
        HlsSettings {
            list_size: 3,
            delete_segments: true,
            keep: false,
            dvr_window: Duration90k::ZERO,
        }
    }
}

/// Where a stream's files live, relative to the media root: `{app}/{key}`. The caller has
/// validated both as single path components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamDir {
    pub app: String,
    pub key: String,
}

impl StreamDir {
    /// `{app}/{key}`, relative to the media root.
    pub fn path(&self) -> PathBuf {
        Path::new(&self.app).join(&self.key)
    }
}

/// A named segment, as HTTP serves it.
#[derive(Clone, PartialEq, Eq)]
pub struct Segment {
    /// File name in the stream folder, `{prefix}-{sequence}.ts`, unique for the folder.
    pub name: String,
    /// Media Sequence Number (RFC 8216 §3).
    pub sequence: u64,
    /// EXTINF duration (RFC 8216 §4.3.2.1).
    pub duration: Duration90k,
    /// The MPEG-TS bytes, shared with the disk writer and every HTTP response.
    pub data: Bytes,
}

impl fmt::Debug for Segment {
    /// The bytes' length, not the bytes: a segment is megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("sequence", &self.sequence)
            .field("duration", &self.duration)
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl HeldSegment for Segment {
    fn duration(&self) -> Duration90k {
        self.duration
    }
}

/// The playlist as served: rendered once per change, not per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistSnapshot {
    pub text: Bytes,
    /// A strong entity tag for the text, quotes included: the `ETag` header value
    /// (RFC 9110 §8.8.3).
    pub etag: String,
}

impl PlaylistSnapshot {
    /// `text` with its ETag.
    pub fn new(text: impl Into<Bytes>) -> PlaylistSnapshot {
        let text = text.into();
        let etag = etag(&text);
        PlaylistSnapshot { text, etag }
    }

    /// `text` with an ETag its window made unique to it (quotes included).
    pub fn with_etag(text: impl Into<Bytes>, etag: String) -> PlaylistSnapshot {
        PlaylistSnapshot {
            text: text.into(),
            etag,
        }
    }
}

/// A file operation for the disk writer. Paths are relative to the media root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskAction {
    /// Write a new segment file.
    WriteSegment { path: PathBuf, data: Bytes },
    /// Write a new segment file whose bytes are these pieces in order (a CMAF segment kept
    /// as its parts, never joined into one buffer).
    WritePieces { path: PathBuf, pieces: Vec<Bytes> },
    /// Replace the playlist file: written to a temporary file and renamed over it, so a
    /// reader never sees it half-written.
    WritePlaylist { path: PathBuf, text: Bytes },
    /// Delete one file.
    Delete { path: PathBuf },
    /// Remove the stream folder and everything left in it (the stream ended, keep off).
    RemoveStreamDir { path: PathBuf },
}

/// The HLS state of one stream (live, or the offline remux with `vod`).
///
/// The live window holds `list_size` segments, and more when fewer would hold less than three
/// target durations of media (RFC 8216 §6.2.2): with `list_size` 3 and segments cut short of
/// the target duration, a fourth segment stays listed. Segments that leave the playlist stay
/// servable, and on disk, for their duration plus the duration of the longest playlist the
/// stream has served (RFC 8216 §6.2.2), then go from memory, and from disk when
/// `delete_segments` is on. After [`HlsStream::end`], the last playlist (with EXT-X-ENDLIST)
/// and its segments stay servable for the same period; then, with `keep` off, the stream
/// folder is removed.
///
/// **DVR window** (`dvr_window` above zero). The playlist lists, in front of the live
/// window, every earlier segment that starts at most `dvr_window` before the end of the
/// playlist (summed EXTINF durations), keeping their EXT-X-DISCONTINUITY and
/// EXT-X-PROGRAM-DATE-TIME tags; EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE count
/// from the first of them. Their bytes leave memory as they would without the DVR window
/// (their duration plus the longest live window after they leave the live window): the
/// window then keeps only their metadata, and HTTP serves them from their files
/// ([`HlsStream::segment_file`]). A file is deleted (`delete_segments`) only once its segment
/// left the playlist and its availability period, counted with the longest playlist served
/// (DVR segments included), is over. The ended playlist lists its DVR segments too, for as
/// long as the stream is kept after its end.
///
/// Segment names are `{prefix}-{sequence}.ts`, the prefix being the creation wall-clock
/// time in milliseconds, base 36: they never repeat in a folder across republishes and
/// server restarts, so no player or cache mistakes one for another.
#[derive(Debug)]
pub struct HlsStream {
    /// `{app}/{key}` relative to the media root.
    dir: PathBuf,
    settings: HlsSettings,
    vod: bool,
    prefix: String,
    /// The listed window. Its media sequence plus its length is the number of segments
    /// produced, and the sequence of the next one.
    playlist: MediaPlaylist,
    /// The listed segments' bytes and those in their availability period (live only: the
    /// offline remux keeps nothing in memory).
    held: Retention<Segment>,
    snapshot: Option<Arc<PlaylistSnapshot>>,
    /// EXT-X-PROGRAM-DATE-TIME of the next segment when the timeline continues.
    next_program_date_time: Option<SystemTime>,
    /// A new publisher took over: the next segment starts with EXT-X-DISCONTINUITY.
    pending_discontinuity: bool,
    warned_target_duration: bool,
}

impl HlsStream {
    /// `vod`: the offline remux: every segment stays listed, the playlist is
    /// EXT-X-PLAYLIST-TYPE:VOD without PROGRAM-DATE-TIME, published once at [`HlsStream::end`]
    /// (a VOD playlist never changes, RFC 8216 §4.3.3.5), nothing is deleted and no segment
    /// is kept in memory (they go to disk only; `segment()` finds none).
    pub fn new(dir: StreamDir, settings: HlsSettings, vod: bool, wall: SystemTime) -> HlsStream {
        let playlist_type = vod.then_some(PlaylistType::Vod);
        HlsStream {
            dir: dir.path(),
            held: Retention::new(settings.delete_segments, settings.dvr_window),
            settings,
            vod,
            prefix: name_prefix(wall),
            // The target duration is set by the first segment.
            playlist: MediaPlaylist::new(0, playlist_type),
            snapshot: None,
            next_program_date_time: None,
            pending_discontinuity: false,
            warned_target_duration: false,
        }
    }

    /// A new publisher took the stream over (or republished within the grace period after
    /// the end, which reopens the stream): the next segment gets EXT-X-DISCONTINUITY and its
    /// PROGRAM-DATE-TIME is taken from the wall clock again.
    pub fn begin_publisher(&mut self, actions: &mut Vec<DiskAction>) {
        self.pending_discontinuity = true;
        if self.held.reopen() {
            self.playlist.end_list = false;
            // Served at once without EXT-X-ENDLIST, not only from the next segment on.
            if self.snapshot.is_some() {
                self.publish(actions);
            }
        }
    }

    /// Adds a finished segment: names it, lists it, updates the playlist snapshot, and
    /// schedules disk actions (write segment, write playlist, deletions now due). A segment
    /// pushed after the end reopens the stream as [`HlsStream::begin_publisher`] does.
    pub fn push(
        &mut self,
        segment: CompletedSegment,
        now: Instant,
        wall: SystemTime,
        actions: &mut Vec<DiskAction>,
    ) -> Arc<Segment> {
        if self.held.is_ended() {
            tracing::warn!(dir = %self.dir.display(), "segment after the end of the stream: reopening it");
            self.begin_publisher(actions);
        }
        let sequence = self.segments_produced();
        if sequence == 0 {
            self.playlist.target_duration = segment.target_duration;
        } else if !self.warned_target_duration
            && playlist::exceeds_target_duration(segment.duration, self.playlist.target_duration)
        {
            // RFC 8216 §6.2.1: EXT-X-TARGETDURATION must not change; a longer segment makes
            // iOS players fail, and it is the segmenter's job to cut within it.
            self.warned_target_duration = true;
            tracing::warn!(
                dir = %self.dir.display(),
                sequence,
                duration = %segment.duration,
                target_duration = self.playlist.target_duration,
                "segment longer than EXT-X-TARGETDURATION, which cannot change: players may stall"
            );
        }
        // Nothing precedes the first segment, so it never starts with a discontinuity.
        let discontinuity = sequence > 0 && (self.pending_discontinuity || segment.discontinuity);
        self.pending_discontinuity = false;
        // The segment has just ended: all of it has arrived.
        let program_date_time = (!self.vod).then(|| {
            let length = to_std(segment.duration);
            let next = self.next_program_date_time;
            let start = playlist::program_date_time(next, discontinuity, wall, length);
            self.next_program_date_time = start.checked_add(length);
            start
        });

        let name = format!("{}-{sequence}.ts", self.prefix);
        let served = Arc::new(Segment {
            name: name.clone(),
            sequence,
            duration: segment.duration,
            data: segment.data,
        });
        actions.push(DiskAction::WriteSegment {
            path: self.dir.join(&name),
            data: served.data.clone(),
        });
        self.playlist.segments.push_back(MediaSegment {
            uri: name,
            duration: segment.duration,
            discontinuity,
            independent: segment.independent,
            program_date_time,
            map: None,
            parts: Vec::new(),
        });
        if !self.vod {
            self.list(Arc::clone(&served), now);
            self.publish(actions);
            self.held.expire(now, &self.dir, actions);
        }
        served
    }

    /// The publisher stopped: EXT-X-ENDLIST, playlist rewritten; when keep is off, the
    /// files are scheduled to go after the grace period. Does nothing when already ended.
    pub fn end(&mut self, now: Instant, actions: &mut Vec<DiskAction>) {
        if self.held.is_ended() {
            return;
        }
        self.held.end(now, &self.playlist);
        if self.segments_produced() > 0 {
            self.playlist.end_list = true;
            self.publish(actions);
        }
    }

    /// Drops segments whose availability period is over (from memory, and from disk when
    /// delete_segments), and after the end, everything when keep is off. Returns true when the
    /// stream is ended and has nothing left to serve (the registry can forget it).
    pub fn sweep(&mut self, now: Instant, actions: &mut Vec<DiskAction>) -> bool {
        self.held.expire(now, &self.dir, actions);
        if self.held.removal_due(now) {
            self.remove_all(actions);
        }
        self.held.is_gone()
    }

    /// The current playlist: `None` before the first segment (for the offline remux, before
    /// the end) and once the stream has been swept away.
    pub fn playlist(&self) -> Option<Arc<PlaylistSnapshot>> {
        self.snapshot.clone()
    }

    /// A segment by file name, while it is listed or within its availability period.
    pub fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.held.held().find(|s| s.name == name).cloned()
    }

    /// The path (relative to the media root) of a segment's file by file name, while the
    /// playlist lists it (the DVR segments included) or its availability period after that
    /// is not over: what HTTP serves when [`HlsStream::segment`] no longer holds it. Only
    /// names this window gave are found.
    pub fn segment_file(&self, name: &str) -> Option<PathBuf> {
        let sequence = self.parse_name(name)?;
        let file = self.held.file(&self.playlist, sequence)?;
        (file == name).then(|| self.dir.join(file))
    }

    /// EXT-X-TARGETDURATION, fixed by the first segment.
    pub fn target_duration(&self) -> Option<u32> {
        (self.segments_produced() > 0).then_some(self.playlist.target_duration)
    }

    pub fn is_ended(&self) -> bool {
        self.held.is_ended()
    }

    /// Bytes of segment data held in memory: the live window and the segments still in
    /// their availability period after it (not the DVR segments, which are on disk).
    pub fn memory_bytes(&self) -> usize {
        self.held.held().map(|s| s.data.len()).sum()
    }

    /// How many segments the stream has produced, over all its publishers.
    pub fn segments_produced(&self) -> u64 {
        self.playlist.media_sequence + self.playlist.segments.len() as u64
    }

    /// Lists a segment just added to the playlist, and removes segments from the front of the
    /// live window while it holds more than `list_size` and would keep three target
    /// durations without them.
    fn list(&mut self, segment: Arc<Segment>, now: Instant) {
        let list_size = self.settings.list_size.max(MIN_LIST_SIZE);
        let min_duration = Duration90k(
            u64::from(self.playlist.target_duration)
                * MIN_TARGET_DURATIONS_LISTED
                * Duration90k::HZ,
        );
        let enough = |rest, _: &MediaSegment| rest >= min_duration;
        self.held
            .list(segment, &mut self.playlist, list_size, now, enough);
    }

    /// The Media Sequence Number a name of this window's form, `{prefix}-{sequence}.ts`
    /// (canonical decimal), gives.
    fn parse_name(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix('-')?
            .strip_suffix(".ts")?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if canonical { digits.parse().ok() } else { None }
    }

    /// Renders the playlist into a new snapshot and schedules its write.
    fn publish(&mut self, actions: &mut Vec<DiskAction>) {
        let text = Bytes::from(playlist::render(&self.playlist));
        self.held.served(&self.playlist);
        actions.push(DiskAction::WritePlaylist {
            path: self.dir.join(PLAYLIST_NAME),
            text: text.clone(),
        });
        self.snapshot = Some(Arc::new(PlaylistSnapshot::new(text)));
    }

    /// The end of the stream's life: nothing stays in memory; with keep off the folder goes.
    fn remove_all(&mut self, actions: &mut Vec<DiskAction>) {
        while self.playlist.remove_first().is_some() {}
        self.snapshot = None;
        if !self.settings.keep && !self.vod && self.segments_produced() > 0 {
            actions.push(DiskAction::RemoveStreamDir {
                path: self.dir.clone(),
            });
        }
    }
}

/// The creation wall-clock time in milliseconds since the Unix epoch, base 36 (`[0-9a-z]`,
/// URL-safe, 8 characters until 2059).
pub(crate) fn name_prefix(wall: SystemTime) -> String {
    const RADIX: u32 = 36;
    let mut millis = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let mut digits = Vec::new();
    loop {
        // `millis % 36` is always a valid base-36 digit.
        digits.push(char::from_digit((millis % u128::from(RADIX)) as u32, RADIX).unwrap_or('0'));
        millis /= u128::from(RADIX);
        if millis == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// A strong ETag for a playlist text: the start of its SHA-256, in hex, quoted.
fn etag(text: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text);
    let mut tag = String::with_capacity(2 + 2 * ETAG_BYTES);
    tag.push('"');
    for byte in digest.as_ref().iter().take(ETAG_BYTES) {
        let _ = write!(tag, "{byte:02x}");
    }
    tag.push('"');
    tag
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use crate::hls::retention::{MAX_EXTRA_LISTED, MAX_GRACE_SEGMENTS};
    use crate::media::Timestamp90k;

    use super::*;

    /// 2023-11-14T22:13:20.000Z; base 36 of this many milliseconds is `loyw3v28`.
    const WALL_MS: u64 = 1_700_000_000_000;

    /// `ms` after the wall-clock start of the windows' tests.
    pub(in crate::hls) fn wall(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(WALL_MS + ms)
    }

    /// The stream folder of the windows' tests.
    pub(in crate::hls) fn dir() -> StreamDir {
        StreamDir {
            app: "live".to_owned(),
            key: "abc".to_owned(),
        }
    }

    /// A file of [`dir`].
    pub(in crate::hls) fn path(name: &str) -> PathBuf {
        PathBuf::from("live/abc").join(name)
    }

    fn completed(ms: u64) -> CompletedSegment {
        CompletedSegment {
            start: Timestamp90k(0),
            duration: Duration90k::from_millis(ms),
            discontinuity: false,
            independent: true,
            target_duration: 2,
            data: Bytes::from_static(&[0x47; 188]),
        }
    }

    /// A stream driven by a simulated clock: each segment is pushed when its media has
    /// arrived, so the wall clock at push is the segment's end.
    struct Live {
        stream: HlsStream,
        t0: Instant,
        ms: u64,
    }

    impl Live {
        fn new(settings: HlsSettings) -> Live {
            Live {
                stream: HlsStream::new(dir(), settings, false, wall(0)),
                t0: Instant::now(),
                ms: 0,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn now(&self) -> Instant {
            self.at(self.ms)
        }

        fn push(&mut self, segment: CompletedSegment) -> Vec<DiskAction> {
            self.ms += segment.duration.as_millis();
            let mut actions = Vec::new();
            self.stream
                .push(segment, self.now(), wall(self.ms), &mut actions);
            actions
        }

        fn feed(&mut self, durations_ms: &[u64]) -> Vec<DiskAction> {
            durations_ms
                .iter()
                .flat_map(|&ms| self.push(completed(ms)))
                .collect()
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

        fn text(&self) -> String {
            let snapshot = self.stream.playlist().expect("a playlist");
            String::from_utf8(snapshot.text.to_vec()).expect("UTF-8")
        }

        fn listed(&self) -> Vec<u64> {
            self.stream
                .held
                .listed()
                .iter()
                .map(|s| s.sequence)
                .collect()
        }
    }

    fn served(s: &HlsStream, name: &str) -> bool {
        s.segment(name).is_some()
    }

    #[test]
    fn live_window_golden() {
        let mut live = Live::new(HlsSettings::default());
        let actions = live.feed(&[2000, 2000, 2000, 2000]);
        assert_eq!(
            actions.len(),
            8,
            "a segment and a playlist write per push: {actions:?}"
        );
        let actions = live.feed(&[2000]);
        let expected = "#EXTM3U\n\
                        #EXT-X-VERSION:3\n\
                        #EXT-X-TARGETDURATION:2\n\
                        #EXT-X-MEDIA-SEQUENCE:2\n\
                        #EXT-X-INDEPENDENT-SEGMENTS\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-2.ts\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-3.ts\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-4.ts\n";
        assert_eq!(live.text(), expected);
        assert_eq!(
            actions,
            vec![
                DiskAction::WriteSegment {
                    path: path("loyw3v28-4.ts"),
                    data: Bytes::from_static(&[0x47; 188])
                },
                DiskAction::WritePlaylist {
                    path: path("index.m3u8"),
                    text: Bytes::from(expected)
                },
            ]
        );
        assert_eq!(live.stream.segments_produced(), 5);
        assert_eq!(live.stream.target_duration(), Some(2));
        let segment = live.stream.segment("loyw3v28-4.ts").expect("listed");
        assert_eq!(
            (segment.sequence, segment.duration),
            (4, Duration90k(180_000))
        );
    }

    #[test]
    fn program_date_time_continues_from_the_previous_segment() {
        let mut s = HlsStream::new(dir(), HlsSettings::default(), false, wall(0));
        let t = Instant::now();
        let mut actions = Vec::new();
        s.push(completed(2000), t, wall(2000), &mut actions);
        // Delivered 700 ms late: the date follows the media, not the arrival.
        s.push(completed(2000), t, wall(4700), &mut actions);
        let snapshot = s.playlist().expect("a playlist");
        let text = std::str::from_utf8(&snapshot.text).expect("UTF-8");
        let dates: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("#EXT-X-PROGRAM-DATE-TIME:"))
            .collect();
        assert_eq!(
            dates,
            [
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z",
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z"
            ]
        );
    }

    #[test]
    fn new_publisher_starts_a_discontinuity_that_later_leaves_the_playlist() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000, 2000, 2000]);
        live.stream.begin_publisher(&mut Vec::new());
        live.ms += 5000; // the new publisher connects 5 s later
        live.feed(&[1500]);
        // 3 x 2 s + 1.5 s: dropping the first would leave 5.5 s, under three target durations.
        assert_eq!(
            live.text(),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-0.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-1.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-2.ts\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:31.000Z\n\
             #EXTINF:1.500,\n\
             loyw3v28-3.ts\n"
        );
        live.feed(&[2000, 2000, 2000, 2000]);
        assert_eq!(
            live.text(),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:34.500Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-5.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:36.500Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-6.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:38.500Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-7.ts\n"
        );
    }

    #[test]
    fn segmenter_discontinuity_is_tagged_and_reanchors_the_date() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000]);
        live.ms += 10_000;
        let mut broken = completed(2000);
        broken.discontinuity = true;
        live.push(broken);
        let text = live.text();
        assert!(
            text.ends_with(
                "#EXT-X-DISCONTINUITY\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:32.000Z\n\
                 #EXTINF:2.000,\n\
                 loyw3v28-1.ts\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn first_segment_never_starts_with_a_discontinuity() {
        let mut live = Live::new(HlsSettings::default());
        live.stream.begin_publisher(&mut Vec::new());
        let mut first = completed(2000);
        first.discontinuity = true;
        live.push(first);
        live.feed(&[2000]);
        assert!(!live.text().contains("DISCONTINUITY"), "{}", live.text());
    }

    #[test]
    fn window_keeps_three_target_durations() {
        let cases: [(usize, u64, usize); 5] = [
            // (list_size, segment ms, segments listed once the stream is long)
            (3, 2000, 3),
            (3, 1500, 4), // 4 x 1.5 s = 6 s
            (1, 2000, 3), // list_size 1 still lists 6 s
            (3, 1000, 6), // 6 x 1 s
            (5, 2000, 5), // list_size above the minimum
        ];
        for (list_size, ms, listed) in cases {
            let mut live = Live::new(HlsSettings {
                list_size,
                ..HlsSettings::default()
            });
            live.feed(&[ms; 2]);
            assert_eq!(live.listed(), [0, 1], "short stream: everything listed");
            live.feed(&[ms; 20]);
            assert_eq!(
                live.listed().len(),
                listed,
                "list_size {list_size}, {ms} ms segments"
            );
            assert_eq!(live.listed().last(), Some(&21));
            assert!(live.stream.playlist.duration() >= Duration90k::from_millis(6000));
            assert_eq!(live.stream.playlist.media_sequence, 22 - listed as u64);
        }
    }

    #[test]
    fn window_and_grace_are_bounded_even_for_tiny_segments() {
        let mut s = HlsStream::new(dir(), HlsSettings::default(), false, wall(0));
        let now = Instant::now();
        let mut actions = Vec::new();
        for _ in 0..1000 {
            s.push(completed(10), now, wall(0), &mut actions);
        }
        assert_eq!(s.held.listed().len(), 3 + MAX_EXTRA_LISTED);
        assert_eq!(s.playlist.segments.len(), 3 + MAX_EXTRA_LISTED);
        assert_eq!(s.held.leaving().len(), MAX_GRACE_SEGMENTS);
        // Everything else left early, and from disk too.
        let deleted = actions
            .iter()
            .filter(|a| matches!(a, DiskAction::Delete { .. }))
            .count();
        assert_eq!(deleted, 1000 - 3 - MAX_EXTRA_LISTED - MAX_GRACE_SEGMENTS);
        assert!(served(&s, "loyw3v28-999.ts"));
        assert!(!served(&s, "loyw3v28-0.ts"));
    }

    #[test]
    fn segment_stays_for_its_duration_plus_the_longest_playlist() {
        for (settings, deletes) in [
            (HlsSettings::default(), true),
            (
                HlsSettings {
                    delete_segments: false,
                    ..HlsSettings::default()
                },
                false,
            ),
            (
                HlsSettings {
                    keep: true,
                    ..HlsSettings::default()
                },
                true,
            ),
        ] {
            let mut live = Live::new(settings.clone());
            // Segment 0 leaves when segment 3 arrives at 8 s; the longest playlist was 6 s.
            let actions = live.feed(&[2000, 2000, 2000, 2000]);
            assert!(
                !actions
                    .iter()
                    .any(|a| matches!(a, DiskAction::Delete { .. }))
            );
            assert_eq!(live.listed(), [1, 2, 3]);
            assert!(
                served(&live.stream, "loyw3v28-0.ts"),
                "in its availability period"
            );

            let (gone, actions) = live.sweep_at(15_999);
            assert!(!gone);
            assert_eq!(actions, []);
            assert!(served(&live.stream, "loyw3v28-0.ts"), "{settings:?}");

            let (gone, actions) = live.sweep_at(16_000);
            assert!(!gone);
            assert!(!served(&live.stream, "loyw3v28-0.ts"), "{settings:?}");
            assert!(served(&live.stream, "loyw3v28-1.ts"));
            let expected = if deletes {
                vec![DiskAction::Delete {
                    path: path("loyw3v28-0.ts"),
                }]
            } else {
                vec![]
            };
            assert_eq!(actions, expected, "{settings:?}");
        }
    }

    #[test]
    fn deletions_due_are_issued_by_push_too() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000, 2000, 2000, 2000]);
        live.ms = 14_000;
        let actions = live.feed(&[2000]); // arrives at 16 s
        assert_eq!(
            actions.last(),
            Some(&DiskAction::Delete {
                path: path("loyw3v28-0.ts")
            })
        );
    }

    #[test]
    fn end_then_sweep_removes_the_folder_with_keep_off() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000, 2000, 2000, 2000]);
        let actions = live.end_at(9000);
        assert!(live.stream.is_ended());
        let expected = "#EXTM3U\n\
                        #EXT-X-VERSION:3\n\
                        #EXT-X-TARGETDURATION:2\n\
                        #EXT-X-MEDIA-SEQUENCE:1\n\
                        #EXT-X-INDEPENDENT-SEGMENTS\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-1.ts\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-2.ts\n\
                        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-3.ts\n\
                        #EXT-X-ENDLIST\n";
        assert_eq!(live.text(), expected);
        assert_eq!(
            actions,
            [DiskAction::WritePlaylist {
                path: path("index.m3u8"),
                text: Bytes::from(expected)
            }]
        );

        // Segment 0's time is over at 16 s: out of memory, and left for the folder removal.
        let (gone, actions) = live.sweep_at(16_000);
        assert!(!gone);
        assert_eq!(actions, []);
        assert!(!served(&live.stream, "loyw3v28-0.ts"));
        assert!(served(&live.stream, "loyw3v28-3.ts"));

        // The last playlist's segments: 9 s + 2 s + 6 s.
        let (gone, actions) = live.sweep_at(16_999);
        assert!(!gone);
        assert_eq!(actions, []);
        assert_eq!(live.text(), expected);

        let (gone, actions) = live.sweep_at(17_000);
        assert!(gone);
        assert_eq!(
            actions,
            [DiskAction::RemoveStreamDir {
                path: PathBuf::from("live/abc")
            }]
        );
        assert!(live.stream.playlist().is_none());
        assert!(!served(&live.stream, "loyw3v28-3.ts"));
        assert_eq!(live.sweep_at(30_000), (true, vec![]), "removed once");
    }

    #[test]
    fn end_then_sweep_leaves_the_disk_alone_with_keep_on() {
        let mut live = Live::new(HlsSettings {
            keep: true,
            ..HlsSettings::default()
        });
        live.feed(&[2000, 2000, 2000, 2000]);
        let actions = live.end_at(9000);
        assert!(matches!(
            actions.as_slice(),
            [DiskAction::WritePlaylist { .. }]
        ));
        assert_eq!(live.sweep_at(16_000), (false, vec![]));
        assert_eq!(live.sweep_at(17_000), (true, vec![]));
        assert!(live.stream.playlist().is_none());
        assert!(!served(&live.stream, "loyw3v28-3.ts"));
    }

    #[test]
    fn republish_within_the_grace_period_reopens_the_stream() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000, 2000, 2000]);
        live.end_at(7000);
        live.stream.begin_publisher(&mut Vec::new());
        assert!(!live.stream.is_ended());
        live.ms = 10_000;
        live.feed(&[2000]);
        let text = live.text();
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        assert!(text.ends_with("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z\n#EXTINF:2.000,\nloyw3v28-3.ts\n"), "{text}");
        let (gone, actions) = live.sweep_at(60_000);
        assert!(!gone);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, DiskAction::RemoveStreamDir { .. })),
            "{actions:?}"
        );
        assert!(served(&live.stream, "loyw3v28-3.ts"));
    }

    #[test]
    fn segment_after_the_end_reopens_the_stream() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000]);
        live.end_at(3000);
        live.feed(&[2000]);
        assert!(!live.stream.is_ended());
        let text = live.text();
        assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }

    #[test]
    fn stream_that_produced_nothing_goes_without_disk_actions() {
        let mut live = Live::new(HlsSettings::default());
        assert_eq!(live.stream.target_duration(), None);
        assert!(live.stream.playlist().is_none());
        assert_eq!(live.end_at(0), []);
        assert_eq!(live.sweep_at(0), (true, vec![]));
    }

    #[test]
    fn target_duration_is_fixed_by_the_first_segment() {
        let mut live = Live::new(HlsSettings::default());
        live.feed(&[2000]);
        let mut longer = completed(3000);
        longer.target_duration = 4;
        live.push(longer);
        live.feed(&[2600]);
        assert_eq!(live.stream.target_duration(), Some(2));
        assert!(live.text().contains("#EXT-X-TARGETDURATION:2\n"));
        assert!(live.stream.warned_target_duration);
    }

    #[test]
    fn independent_segments_only_while_every_listed_segment_is() {
        let mut live = Live::new(HlsSettings::default());
        let mut open = completed(2000);
        open.independent = false;
        live.push(open);
        live.feed(&[2000, 2000]);
        assert!(!live.text().contains("#EXT-X-INDEPENDENT-SEGMENTS"));
        live.feed(&[2000]);
        assert!(live.text().contains("#EXT-X-INDEPENDENT-SEGMENTS\n"));
    }

    #[test]
    fn vod_lists_everything_and_publishes_once_at_the_end() {
        let mut s = HlsStream::new(dir(), HlsSettings::default(), true, wall(0));
        let now = Instant::now();
        let mut actions = Vec::new();
        for ms in [2000, 2000, 2000, 2000, 1000] {
            s.push(completed(ms), now, wall(0), &mut actions);
        }
        let written: Vec<_> = actions
            .iter()
            .map(|a| match a {
                DiskAction::WriteSegment { path, .. } => path.clone(),
                other => panic!("only segment writes before the end: {other:?}"),
            })
            .collect();
        assert_eq!(
            written,
            (0..5)
                .map(|i| path(&format!("loyw3v28-{i}.ts")))
                .collect::<Vec<_>>()
        );
        assert!(s.playlist().is_none());
        assert!(
            s.segment("loyw3v28-0.ts").is_none(),
            "the offline remux keeps no segment in memory"
        );

        actions.clear();
        s.end(now, &mut actions);
        let expected = "#EXTM3U\n\
                        #EXT-X-VERSION:3\n\
                        #EXT-X-TARGETDURATION:2\n\
                        #EXT-X-MEDIA-SEQUENCE:0\n\
                        #EXT-X-PLAYLIST-TYPE:VOD\n\
                        #EXT-X-INDEPENDENT-SEGMENTS\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-0.ts\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-1.ts\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-2.ts\n\
                        #EXTINF:2.000,\n\
                        loyw3v28-3.ts\n\
                        #EXTINF:1.000,\n\
                        loyw3v28-4.ts\n\
                        #EXT-X-ENDLIST\n";
        assert_eq!(
            actions,
            [DiskAction::WritePlaylist {
                path: path("index.m3u8"),
                text: Bytes::from(expected)
            }]
        );
        actions.clear();
        assert!(s.sweep(now, &mut actions));
        assert_eq!(actions, [], "the offline remux deletes nothing");
    }

    #[test]
    fn names_never_repeat_across_streams_of_one_folder() {
        let mut first = HlsStream::new(dir(), HlsSettings::default(), false, wall(0));
        let mut second = HlsStream::new(dir(), HlsSettings::default(), false, wall(1));
        let now = Instant::now();
        let mut actions = Vec::new();
        let a = first.push(completed(2000), now, wall(2000), &mut actions);
        let b = second.push(completed(2000), now, wall(2000), &mut actions);
        assert_eq!(a.name, "loyw3v28-0.ts");
        assert_eq!(b.name, "loyw3v29-0.ts");
        for name in [&a.name, &b.name] {
            assert!(
                name.bytes().all(|c| c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || c == b'-'
                    || c == b'.')
            );
        }
        assert_eq!(name_prefix(UNIX_EPOCH), "0");
        assert_eq!(name_prefix(UNIX_EPOCH + Duration::from_millis(35)), "z");
        assert_eq!(name_prefix(UNIX_EPOCH + Duration::from_millis(36)), "10");
    }

    /// Settings with a DVR window of `secs`.
    fn dvr(secs: u64) -> HlsSettings {
        HlsSettings {
            dvr_window: Duration90k::from_millis(secs * 1000),
            ..HlsSettings::default()
        }
    }

    fn deleted(actions: &[DiskAction]) -> Vec<PathBuf> {
        let delete = |a: &DiskAction| match a {
            DiskAction::Delete { path } => Some(path.clone()),
            _ => None,
        };
        actions.iter().filter_map(delete).collect()
    }

    #[test]
    fn dvr_window_lists_earlier_segments_with_their_tags() {
        let mut live = Live::new(dvr(120));
        let mut media_sequence = 0;
        for n in 0..200u64 {
            let mut segment = completed(1000);
            segment.discontinuity = n == 50;
            live.push(segment);
            // The media sequence only ever increases.
            assert!(live.stream.playlist.media_sequence >= media_sequence);
            media_sequence = live.stream.playlist.media_sequence;
            if n == 99 {
                // 100 s of media: everything is listed, segment 50 with its discontinuity.
                let text = live.text();
                assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{text}");
                assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "{text}");
                assert!(
                    text.contains(
                        "#EXT-X-DISCONTINUITY\n\
                         #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:10.000Z\n\
                         #EXTINF:1.000,\n\
                         loyw3v28-50.ts\n"
                    ),
                    "{text}"
                );
            }
        }
        // 120 s of media listed: segments 80 to 199, the live window the last six of them
        // (three target durations of one-second segments).
        assert_eq!(live.listed(), (194..200).collect::<Vec<_>>());
        assert_eq!(live.stream.playlist.media_sequence, 80);
        assert_eq!(live.stream.playlist.segments.len(), 120);
        assert_eq!(
            live.stream.playlist.duration(),
            Duration90k::from_millis(120_000)
        );
        let text = live.text();
        // Segment 50's discontinuity left the playlist.
        assert!(
            text.starts_with(
                "#EXTM3U\n\
                 #EXT-X-VERSION:3\n\
                 #EXT-X-TARGETDURATION:2\n\
                 #EXT-X-MEDIA-SEQUENCE:80\n\
                 #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
                 #EXT-X-INDEPENDENT-SEGMENTS\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:14:40.000Z\n\
                 #EXTINF:1.000,\n\
                 loyw3v28-80.ts\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(), 120);
        assert_eq!(text.matches("#EXTINF:").count(), 120);
    }

    #[test]
    fn dvr_segments_are_served_from_their_files_and_memory_stays_bounded() {
        let mut live = Live::new(dvr(120));
        let mut most = 0;
        for n in 0..200 {
            live.feed(&[1000]);
            if n >= 20 {
                most = most.max(live.stream.memory_bytes());
            }
        }
        // The live window (6 segments) and those in their availability period after it
        // (1 s + the 6 s live window): the same whatever the DVR window lists.
        let mut plain = Live::new(HlsSettings::default());
        plain.feed(&[1000; 200]);
        assert_eq!(most, plain.stream.memory_bytes());
        assert!(most <= (6 + 8) * 188, "{most}");
        assert_eq!(live.stream.memory_bytes(), most);

        // A DVR segment: listed, not in memory, served from its file.
        assert!(!served(&live.stream, "loyw3v28-80.ts"));
        assert_eq!(
            live.stream.segment_file("loyw3v28-80.ts"),
            Some(path("loyw3v28-80.ts"))
        );
        // A live one is in memory, and its file is known too.
        assert!(served(&live.stream, "loyw3v28-199.ts"));
        assert_eq!(
            live.stream.segment_file("loyw3v28-199.ts"),
            Some(path("loyw3v28-199.ts"))
        );
        // Left the playlist, in its availability period: still on disk.
        assert_eq!(
            live.stream.segment_file("loyw3v28-0.ts"),
            Some(path("loyw3v28-0.ts"))
        );
        // Names the window never gave are not found, whatever their form.
        for name in [
            "loyw3v28-200.ts",
            "loyw3v28-080.ts",
            "loyw3v29-80.ts",
            "loyw3v28-80.m4s",
            "loyw3v28-+80.ts",
            "loyw3v28-.ts",
            "../loyw3v28-80.ts",
            "index.m3u8",
        ] {
            assert_eq!(live.stream.segment_file(name), None, "{name}");
        }
    }

    #[test]
    fn dvr_files_are_deleted_after_the_window_and_their_availability() {
        let mut live = Live::new(dvr(120));
        for n in 0..300u64 {
            let actions = live.feed(&[1000]);
            // Segment s leaves the playlist when segment s + 120 arrives, at s + 121 s;
            // its availability is its second plus the longest playlist served (120 s):
            // its file goes when segment s + 241 arrives.
            let expected: Vec<PathBuf> = n
                .checked_sub(241)
                .map(|s| path(&format!("loyw3v28-{s}.ts")))
                .into_iter()
                .collect();
            assert_eq!(deleted(&actions), expected, "segment {n}");
            // Every file deleted is neither listed nor servable any more.
            for gone in &expected {
                let name = gone.file_name().and_then(|n| n.to_str()).unwrap_or("");
                assert_eq!(live.stream.segment_file(name), None);
            }
        }
        // Without deletion nothing goes, and the playlist is the same.
        let mut kept = Live::new(HlsSettings {
            delete_segments: false,
            ..dvr(120)
        });
        let actions = kept.feed(&[1000; 300]);
        assert_eq!(deleted(&actions), Vec::<PathBuf>::new());
        assert_eq!(kept.text(), live.text());
    }

    #[test]
    fn ended_dvr_playlist_lists_its_dvr_segments_as_long_as_the_stream_is_kept() {
        let mut live = Live::new(dvr(120));
        live.feed(&[1000; 200]);
        let mut plain = Live::new(HlsSettings::default());
        plain.feed(&[1000; 200]);
        live.end_at(200_500);
        plain.end_at(200_500);
        let text = live.text();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:80\n"), "{text}");
        assert!(
            text.ends_with("loyw3v28-199.ts\n#EXT-X-ENDLIST\n"),
            "{text}"
        );
        // Kept exactly as long as without a DVR window, listing its DVR segments until then.
        let mut ms = 200_500;
        loop {
            ms += 100;
            let (gone, _) = live.sweep_at(ms);
            let (plain_gone, _) = plain.sweep_at(ms);
            assert_eq!(gone, plain_gone, "at {ms} ms");
            if gone {
                break;
            }
            assert_eq!(live.stream.playlist.segments.len(), 120);
            assert_eq!(
                live.stream.segment_file("loyw3v28-80.ts"),
                Some(path("loyw3v28-80.ts"))
            );
        }
        assert!(live.stream.playlist().is_none());
        assert_eq!(live.stream.segment_file("loyw3v28-80.ts"), None);
    }

    #[test]
    fn dvr_window_shorter_than_the_live_window_changes_nothing() {
        let mut live = Live::new(dvr(2));
        let mut plain = Live::new(HlsSettings::default());
        for _ in 0..50 {
            assert_eq!(live.feed(&[2000]), plain.feed(&[2000]));
        }
        assert_eq!(live.text(), plain.text());
    }

    #[test]
    fn etag_follows_the_text() {
        let mut a = Live::new(HlsSettings::default());
        let mut b = Live::new(HlsSettings::default());
        a.feed(&[2000]);
        b.feed(&[2000]);
        let first = a.stream.playlist().expect("a playlist");
        assert_eq!(first.etag.len(), 2 + 2 * ETAG_BYTES);
        assert!(first.etag.starts_with('"') && first.etag.ends_with('"'));
        assert_eq!(
            first.etag,
            b.stream.playlist().expect("a playlist").etag,
            "same text, same tag"
        );
        a.feed(&[2000]);
        assert_ne!(first.etag, a.stream.playlist().expect("a playlist").etag);
        // SHA-256 of the empty string starts e3b0c442 98fc1c14 9afbf4c8 996fb924.
        assert_eq!(etag(b""), "\"e3b0c44298fc1c149afbf4c8996fb924\"");
    }
}
