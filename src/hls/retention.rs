//! The segments a live window keeps servable: those its live window lists (with their
//! bytes), those that left it (their bytes until their availability period is over), and,
//! with a DVR window (`hls.dvr_window`), the earlier segments the playlist still lists in
//! front of the live window (their metadata only: they are served from their files); after
//! the end of the stream, the last playlist's segments until the live window's availability
//! is over. The classic window (`hls::stream`) and the Low-Latency one (`hls::ll_stream`)
//! hold their segments here and keep only what differs (what a segment is made of, how it
//! is named and found).
//!
//! Memory and disk are kept apart: a segment's bytes stay in memory while it is in the live
//! window and for its availability period after it left the live window, whatever the DVR
//! window lists; its file stays on disk while the playlist lists it and for its availability
//! period after it left the playlist (the DVR window included).
//!
//! Sans-IO: the clock is passed in; the files of segments that go come back as
//! [`DiskAction`]s (with `hls.delete_segments`, while the stream is live).
//!
//! Spec: RFC 8216 §6.2.2: "When the server removes a Media Segment URI from the Playlist,
//! the corresponding Media Segment MUST remain available to clients for a period of time
//! equal to the duration of the segment plus the duration of the longest Playlist file
//! distributed by the server containing that segment."

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::Duration90k;

use super::playlist::{MediaPlaylist, MediaSegment};
use super::stream::DiskAction;

/// How many segments beyond its minimum a window's duration rule may keep listed (three
/// Target Durations for the classic window, the Skip Boundary for the Low-Latency one).
/// Segments are cut at about the target duration, so the rule needs one or two extra; the
/// cap bounds memory if a stream produces very short segments (repeated discontinuities),
/// at the cost of a playlist shorter than the rule asks for in that case (a delta update that
/// skips nothing).
pub(super) const MAX_EXTRA_LISTED: usize = 32;

/// How many segments that left the playlist are kept servable at once. Their grace period
/// is about one playlist plus one segment long, so a handful are in it at a time; the cap
/// bounds memory if a burst of very short segments passes through, and the oldest then goes
/// early (logged).
pub(super) const MAX_GRACE_SEGMENTS: usize = 64;

/// How many segments a DVR window lists in front of the live window at most, and how many
/// files that left the playlist it keeps on disk for their availability period: six hours of
/// one-second segments (`hls.dvr_window` is at most six hours). Each costs its metadata (name,
/// duration, date, tags), about 150 bytes, not its bytes; the cap bounds that if a stream
/// produces very short segments, at the cost of a shorter DVR window in that case.
pub(super) const MAX_DVR_SEGMENTS: usize = 21_600;

/// A segment as a window serves it.
pub(super) trait HeldSegment {
    /// EXTINF duration (RFC 8216 §4.3.2.1).
    fn duration(&self) -> Duration90k;
}

/// A segment that left the live window, whose bytes stay in memory until `until`.
#[derive(Debug)]
struct Leaving<S> {
    segment: Arc<S>,
    until: Instant,
}

/// A segment that left the playlist, whose file stays on disk until `until`.
#[derive(Debug)]
struct Unlisted {
    /// Its Media Sequence Number: they leave in order, so these increase.
    sequence: u64,
    /// File name in the stream folder.
    name: String,
    /// The EXT-X-MAP it needs (fragmented MP4), whose file stays as long.
    map: Option<Arc<str>>,
    until: Instant,
}

/// The listed and leaving segments of one window, and when the stream's files go after its
/// end.
///
/// The window's playlist lists the DVR segments (if any) and then the live window: the last
/// `listed().len()` segments of the playlist are the live window, the ones before it the DVR
/// segments.
#[derive(Debug)]
pub(super) struct Retention<S> {
    /// The live window's segments, in playlist order.
    listed: VecDeque<Arc<S>>,
    /// Segments that left the live window, in the order they left, with their bytes.
    leaving: VecDeque<Leaving<S>>,
    /// Files of segments that left the playlist, in the order they left.
    unlisted: VecDeque<Unlisted>,
    /// The longest live window served so far: every segment that leaves it was in no longer
    /// one. Its bytes stay in memory that long (and its duration) after it left.
    longest_playlist: Duration90k,
    /// The longest playlist served so far, DVR segments included: a segment that leaves the
    /// playlist stays on disk that long (and its duration). The same as `longest_playlist`
    /// without a DVR window.
    longest_listing: Duration90k,
    /// `hls.dvr_window`: the playlist lists earlier segments while they lie within this much
    /// media of its end. Zero: it lists the live window only.
    dvr_window: Duration90k,
    /// `hls.delete_segments`: segments that go leave the disk too.
    delete_segments: bool,
    ended: bool,
    /// After the end: when the last playlist's availability is over and the stream's memory
    /// (and, with keep off, folder) goes. `None` before the end and once that is done.
    removal_at: Option<Instant>,
}

impl<S: HeldSegment> Retention<S> {
    pub fn new(delete_segments: bool, dvr_window: Duration90k) -> Retention<S> {
        Retention {
            listed: VecDeque::new(),
            leaving: VecDeque::new(),
            unlisted: VecDeque::new(),
            longest_playlist: Duration90k::ZERO,
            longest_listing: Duration90k::ZERO,
            dvr_window,
            delete_segments,
            ended: false,
            removal_at: None,
        }
    }

    /// The live window's segments, in playlist order.
    pub fn listed(&self) -> &VecDeque<Arc<S>> {
        &self.listed
    }

    /// The segments in their availability period after leaving the live window, oldest
    /// first.
    pub fn leaving(&self) -> impl ExactSizeIterator<Item = &Arc<S>> {
        self.leaving.iter().map(|l| &l.segment)
    }

    /// Every segment held in memory: the live window's, then those leaving it.
    pub fn held(&self) -> impl Iterator<Item = &Arc<S>> {
        self.listed.iter().chain(self.leaving())
    }

    /// How many segments `playlist` lists in front of the live window (the DVR segments).
    pub fn dvr_listed(&self, playlist: &MediaPlaylist) -> usize {
        playlist.segments.len().saturating_sub(self.listed.len())
    }

    /// The file name of segment `sequence` while its file is servable: listed by `playlist`
    /// (the window's), or in its availability period after it left the playlist. Its bytes
    /// may be in memory too ([`Retention::held`]); this says only what is on disk (or about
    /// to be: the writer may lag behind).
    pub fn file<'a>(&'a self, playlist: &'a MediaPlaylist, sequence: u64) -> Option<&'a str> {
        match sequence.checked_sub(playlist.media_sequence) {
            Some(index) => {
                let index = usize::try_from(index).ok()?;
                playlist.segments.get(index).map(|s| s.uri.as_str())
            }
            None => {
                let index = self
                    .unlisted
                    .binary_search_by_key(&sequence, |u| u.sequence)
                    .ok()?;
                self.unlisted.get(index).map(|u| u.name.as_str())
            }
        }
    }

    /// The EXT-X-MAP URIs that segments which left the playlist but are still in their
    /// availability period need.
    pub fn unlisted_maps(&self) -> impl Iterator<Item = &Arc<str>> {
        self.unlisted.iter().filter_map(|u| u.map.as_ref())
    }

    /// The caller serves `playlist`: the availability of its segments after they leave the
    /// live window (in memory) counts the live window's duration, and after they leave the
    /// playlist (on disk) the whole playlist's.
    pub fn served(&mut self, playlist: &MediaPlaylist) {
        let live = playlist
            .segments
            .iter()
            .rev()
            .take(self.listed.len())
            .fold(0u64, |sum, s| sum.saturating_add(s.duration.ticks()));
        self.longest_playlist = self.longest_playlist.max(Duration90k(live));
        self.longest_listing = self.longest_listing.max(playlist.duration());
    }

    /// Lists `segment`, which the caller has just appended to `playlist`; then removes
    /// segments from the front of the live window while it lists more than `min` (at least
    /// one) and `enough(rest, next)` says the rest would do without the first (`rest`: the
    /// duration after it, `next`: the segment that would be first), or while it lists more
    /// than [`MAX_EXTRA_LISTED`] beyond `min`. The segments removed keep their bytes in
    /// memory for their duration plus the longest live window served. Then the DVR window is
    /// applied (see [`Retention::trim_listing`]).
    pub fn list(
        &mut self,
        segment: Arc<S>,
        playlist: &mut MediaPlaylist,
        min: usize,
        now: Instant,
        enough: impl Fn(Duration90k, &MediaSegment) -> bool,
    ) {
        self.listed.push_back(segment);
        let mut first_live = self.dvr_listed(playlist);
        let mut duration = Duration90k(
            playlist
                .segments
                .iter()
                .skip(first_live)
                .fold(0u64, |sum, s| sum.saturating_add(s.duration.ticks())),
        );
        while self.listed.len() > min {
            let (Some(first), Some(next)) = (
                playlist.segments.get(first_live),
                playlist.segments.get(first_live + 1),
            ) else {
                break;
            };
            let rest = duration.saturating_sub(first.duration);
            let over_cap = self.listed.len() > min + MAX_EXTRA_LISTED;
            if !over_cap && !enough(rest, next) {
                break;
            }
            duration = rest;
            first_live += 1;
            if let Some(segment) = self.listed.pop_front() {
                let until = later(now, segment.duration(), self.longest_playlist);
                self.leaving.push_back(Leaving { segment, until });
            }
        }
        self.trim_listing(playlist, now);
    }

    /// Removes segments in front of the live window from `playlist` while the first of them
    /// starts more than the DVR window before the playlist's end (all of them without a DVR
    /// window), or while more than [`MAX_DVR_SEGMENTS`] are listed there. Their files stay on
    /// disk for their duration plus the longest playlist served (RFC 8216 §6.2.2).
    fn trim_listing(&mut self, playlist: &mut MediaPlaylist, now: Instant) {
        let mut total = playlist.duration();
        while self.dvr_listed(playlist) > 0 {
            let Some(first) = playlist.segments.front() else {
                break;
            };
            let within = self.dvr_window > Duration90k::ZERO && total <= self.dvr_window;
            if within && self.dvr_listed(playlist) <= MAX_DVR_SEGMENTS {
                break;
            }
            total = total.saturating_sub(first.duration);
            let sequence = playlist.media_sequence;
            let Some(first) = playlist.remove_first() else {
                break;
            };
            self.unlisted.push_back(Unlisted {
                sequence,
                until: later(now, first.duration, self.longest_listing),
                name: first.uri,
                map: first.map,
            });
        }
    }

    /// Lets go of the bytes of segments whose availability after the live window is over
    /// (and of the oldest ones past [`MAX_GRACE_SEGMENTS`]: a segment still listed is then
    /// served from its file), and drops the files of segments whose availability after the
    /// playlist is over, and the oldest ones past [`MAX_GRACE_SEGMENTS`] (without a DVR
    /// window) or [`MAX_DVR_SEGMENTS`] (with one; logged with `dir`). While live, those files
    /// in `dir` are deleted with `delete_segments`; after the end the disk is left alone
    /// (keep on) or cleared at once (keep off). Returns whether files of the stream are
    /// deleted now.
    pub fn expire(&mut self, now: Instant, dir: &Path, actions: &mut Vec<DiskAction>) -> bool {
        self.leaving.retain(|l| l.until > now);
        let early = self.leaving.len().saturating_sub(MAX_GRACE_SEGMENTS);
        self.leaving.drain(..early);

        let mut gone = Vec::new();
        self.unlisted.retain_mut(|u| {
            let keep = u.until > now;
            if !keep {
                gone.push(std::mem::take(&mut u.name));
            }
            keep
        });
        let cap = if self.dvr_window > Duration90k::ZERO {
            MAX_DVR_SEGMENTS
        } else {
            MAX_GRACE_SEGMENTS
        };
        let early = self.unlisted.len().saturating_sub(cap);
        for u in self.unlisted.drain(..early) {
            tracing::warn!(
                dir = %dir.display(),
                segment = %u.name,
                "too many segments in their availability period: dropping the oldest early"
            );
            gone.push(u.name);
        }
        let delete = self.delete_segments && !self.ended;
        if delete {
            let path = |name: String| DiskAction::Delete {
                path: dir.join(name),
            };
            actions.extend(gone.into_iter().map(path));
        }
        delete
    }

    /// The stream ended, and `playlist` is the last one served: its segments stay as long as
    /// a segment leaving its live window would (RFC 8216 §6.2.2), the DVR segments it lists
    /// with them; those already leaving keep their own time. Removal is due when the last of
    /// them is over (at once when none is held).
    pub fn end(&mut self, now: Instant, playlist: &MediaPlaylist) {
        self.ended = true;
        self.served(playlist);
        let listed_until = self
            .listed
            .iter()
            .map(|s| later(now, s.duration(), self.longest_playlist));
        let leaving_until = self.leaving.iter().map(|l| l.until);
        self.removal_at = Some(listed_until.chain(leaving_until).fold(now, Instant::max));
    }

    /// A new publisher reopened the stream: no removal is due. True when it had ended.
    pub fn reopen(&mut self) -> bool {
        let was_ended = self.ended;
        self.ended = false;
        self.removal_at = None;
        was_ended
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Whether the stream's removal is due at `now`; then every segment is let go, and the
    /// caller removes the rest. True once.
    pub fn removal_due(&mut self, now: Instant) -> bool {
        if self.removal_at.is_none_or(|at| now < at) {
            return false;
        }
        self.removal_at = None;
        self.listed.clear();
        self.leaving.clear();
        self.unlisted.clear();
        true
    }

    /// Ended, and removed: nothing is left to serve.
    pub fn is_gone(&self) -> bool {
        self.ended && self.removal_at.is_none()
    }
}

/// `now + a + b` as a deadline. [`to_std`] keeps each under 65 years, so the clock holds
/// it; were it not to, the deadline is `now`.
fn later(now: Instant, a: Duration90k, b: Duration90k) -> Instant {
    now.checked_add(to_std(a))
        .and_then(|t| t.checked_add(to_std(b)))
        .unwrap_or(now)
}

/// `d` as a std Duration, saturating at about 65 years (only absurd input gets there).
pub(super) fn to_std(d: Duration90k) -> Duration {
    // 1 tick = 1e9 / 90_000 ns = 100_000 / 9 ns.
    Duration::from_nanos(d.ticks().saturating_mul(100_000) / 9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_conversion() {
        assert_eq!(to_std(Duration90k(90_000)), Duration::from_secs(1));
        assert_eq!(to_std(Duration90k(9)), Duration::from_nanos(100_000));
        assert_eq!(
            to_std(Duration90k(u64::MAX)),
            Duration::from_nanos(u64::MAX / 9)
        );
        let now = Instant::now();
        let ms = |n| Duration90k::from_millis(n);
        assert_eq!(later(now, ms(1), ms(2)), now + Duration::from_millis(3));
        // The conversion saturates at about 65 years, well inside the clock's range.
        let longest = Duration::from_nanos(u64::MAX / 9);
        assert_eq!(
            later(now, Duration90k(u64::MAX), Duration90k(u64::MAX)),
            now + longest + longest
        );
    }
}
