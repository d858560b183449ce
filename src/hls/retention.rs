//! The segments a live window keeps servable: those its playlist lists, and those that left
//! the playlist, each until its availability period is over; after the end of the stream,
//! the last playlist's segments until theirs is. The classic window (`hls::stream`) and the
//! Low-Latency one (`hls::ll_stream`) hold their segments here and keep only what differs
//! (what a segment is made of, how it is named and found).
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

/// A segment as a window serves it.
pub(super) trait HeldSegment {
    /// File name in the stream folder.
    fn name(&self) -> &str;
    /// EXTINF duration (RFC 8216 §4.3.2.1).
    fn duration(&self) -> Duration90k;
}

/// A segment that left the playlist and stays servable until `until`.
#[derive(Debug)]
struct Leaving<S> {
    segment: Arc<S>,
    until: Instant,
}

/// The listed and leaving segments of one window, and when the stream's files go after its
/// end.
#[derive(Debug)]
pub(super) struct Retention<S> {
    /// The listed segments, in playlist order.
    listed: VecDeque<Arc<S>>,
    /// Segments that left the playlist, in the order they left.
    leaving: VecDeque<Leaving<S>>,
    /// The longest playlist served so far: every segment that leaves it was in no longer one.
    longest_playlist: Duration90k,
    /// `hls.delete_segments`: segments that go leave the disk too.
    delete_segments: bool,
    ended: bool,
    /// After the end: when the last playlist's availability is over and the stream's memory
    /// (and, with keep off, folder) goes. `None` before the end and once that is done.
    removal_at: Option<Instant>,
}

impl<S: HeldSegment> Retention<S> {
    pub fn new(delete_segments: bool) -> Retention<S> {
        Retention {
            listed: VecDeque::new(),
            leaving: VecDeque::new(),
            longest_playlist: Duration90k::ZERO,
            delete_segments,
            ended: false,
            removal_at: None,
        }
    }

    /// The listed segments, in playlist order.
    pub fn listed(&self) -> &VecDeque<Arc<S>> {
        &self.listed
    }

    /// The segments in their availability period after leaving the playlist, oldest first.
    pub fn leaving(&self) -> impl ExactSizeIterator<Item = &Arc<S>> {
        self.leaving.iter().map(|l| &l.segment)
    }

    /// Every segment held: the listed ones, then those leaving.
    pub fn held(&self) -> impl Iterator<Item = &Arc<S>> {
        self.listed.iter().chain(self.leaving())
    }

    /// The caller serves `playlist`: its segments' availability after they leave counts its
    /// duration.
    pub fn served(&mut self, playlist: &MediaPlaylist) {
        self.longest_playlist = self.longest_playlist.max(playlist.duration());
    }

    /// Lists `segment`, which the caller has just appended to `playlist`; then removes
    /// segments from the front of `playlist` while it lists more than `min` (at least one)
    /// and `enough(rest, next)` says the rest would do without the first (`rest`: the
    /// duration after it, `next`: the segment that would be first), or while it lists more
    /// than [`MAX_EXTRA_LISTED`] beyond `min`. The segments removed stay servable for their
    /// duration plus the longest playlist served.
    pub fn list(
        &mut self,
        segment: Arc<S>,
        playlist: &mut MediaPlaylist,
        min: usize,
        now: Instant,
        enough: impl Fn(Duration90k, &MediaSegment) -> bool,
    ) {
        self.listed.push_back(segment);
        let mut duration = playlist.duration();
        while playlist.segments.len() > min {
            let (Some(first), Some(next)) = (playlist.segments.front(), playlist.segments.get(1))
            else {
                break;
            };
            let rest = duration.saturating_sub(first.duration);
            let over_cap = playlist.segments.len() > min + MAX_EXTRA_LISTED;
            if !over_cap && !enough(rest, next) {
                break;
            }
            duration = rest;
            playlist.remove_first();
            if let Some(segment) = self.listed.pop_front() {
                let until = later(now, segment.duration(), self.longest_playlist);
                self.leaving.push_back(Leaving { segment, until });
            }
        }
    }

    /// Drops the leaving segments whose availability is over, and the oldest ones past
    /// [`MAX_GRACE_SEGMENTS`] (logged with `dir`). While live, their files in `dir` go too
    /// with `delete_segments`; after the end the disk is left alone (keep on) or cleared at
    /// once (keep off). Returns whether files of the stream are deleted now.
    pub fn expire(&mut self, now: Instant, dir: &Path, actions: &mut Vec<DiskAction>) -> bool {
        let mut gone = Vec::new();
        self.leaving.retain(|l| {
            let keep = l.until > now;
            if !keep {
                gone.push(Arc::clone(&l.segment));
            }
            keep
        });
        let early = self.leaving.len().saturating_sub(MAX_GRACE_SEGMENTS);
        for l in self.leaving.drain(..early) {
            tracing::warn!(
                dir = %dir.display(),
                segment = %l.segment.name(),
                "too many segments in their availability period: dropping the oldest early"
            );
            gone.push(l.segment);
        }
        let delete = self.delete_segments && !self.ended;
        if delete {
            let path = |s: Arc<S>| DiskAction::Delete {
                path: dir.join(s.name()),
            };
            actions.extend(gone.into_iter().map(path));
        }
        delete
    }

    /// The stream ended, and `playlist` is the last one served: its segments stay as long as
    /// a segment leaving it would (RFC 8216 §6.2.2); those already leaving keep their own
    /// time. Removal is due when the last of them is over (at once when none is held).
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
