//! A media playlist as a typed value, and the one writer that turns it into text: the
//! classic playlist, the Low-Latency HLS playlist with its Partial Segments, and the Playlist
//! Delta Update of the latter.
//!
//! Spec: RFC 8216 §4.3 (tags), §6.2.1 (how a server may change a playlist), §7 (protocol
//! version compatibility); RFC 8216bis (draft-pantos-hls-rfc8216bis) §4.4.3.7, §4.4.3.8,
//! §4.4.4.9, §4.4.5.2, §4.4.5.3 (the Low-Latency tags), §6.2.5.1 (Playlist Delta Updates),
//! §8 (protocol version compatibility).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::media::Duration90k;
use crate::wallclock::rfc3339_millis;

/// EXT-X-VERSION of a playlist without EXT-X-MAP or EXT-X-SKIP (the MPEG-TS playlists). The
/// only tag form used above version 1 is the decimal-floating-point EXTINF duration, which
/// needs version 3; PROGRAM-DATE-TIME, DISCONTINUITY-SEQUENCE, INDEPENDENT-SEGMENTS,
/// PLAYLIST-TYPE and ENDLIST need no higher.
///
/// Spec: RFC 8216 §7, §4.3.1.2.
pub const VERSION: u8 = 3;

/// EXT-X-VERSION of a playlist with EXT-X-MAP (fragmented MP4 segments) and no EXT-X-SKIP.
/// The Low-Latency tags (EXT-X-PART-INF, EXT-X-SERVER-CONTROL with CAN-SKIP-UNTIL,
/// EXT-X-PART, EXT-X-PRELOAD-HINT) state no version of their own, so a full Low-Latency
/// playlist needs no more than this.
///
/// Spec: RFC 8216bis §8: "A Media Playlist MUST indicate an EXT-X-VERSION of 6 or higher if
/// it contains: The EXT-X-MAP tag in a Media Playlist that does not contain
/// EXT-X-I-FRAMES-ONLY."
pub const VERSION_MAP: u8 = 6;

/// EXT-X-VERSION of a Playlist Delta Update: it has EXT-X-SKIP, and no
/// RECENTLY-REMOVED-DATERANGES (this server writes no EXT-X-DATERANGE), which would need 10.
///
/// Spec: RFC 8216bis §8: "A Playlist MUST indicate an EXT-X-VERSION of 9 or higher if it
/// contains: The EXT-X-SKIP tag."
pub const VERSION_SKIP: u8 = 9;

/// EXT-X-PLAYLIST-TYPE. A live playlist carries no type; EVENT is not produced.
///
/// Spec: RFC 8216 §4.3.3.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistType {
    /// The playlist is complete and never changes: the offline remux.
    Vod,
}

/// One media segment as the playlist lists it.
///
/// Spec: RFC 8216 §3, §4.3.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSegment {
    /// The URI line: a name relative to the playlist.
    pub uri: String,
    /// EXTINF duration (RFC 8216 §4.3.2.1).
    pub duration: Duration90k,
    /// EXT-X-DISCONTINUITY before this segment (RFC 8216 §4.3.2.3).
    pub discontinuity: bool,
    /// Whether a player can decode this segment without the ones before it; when all listed
    /// segments are, the playlist says EXT-X-INDEPENDENT-SEGMENTS (RFC 8216 §4.3.5.1).
    pub independent: bool,
    /// EXT-X-PROGRAM-DATE-TIME: the wall-clock time of the segment's first sample
    /// (RFC 8216 §4.3.2.6).
    pub program_date_time: Option<SystemTime>,
    /// EXT-X-MAP: the URI of the Media Initialization Section the segment needs (fragmented
    /// MP4). Written before the first segment of the text and wherever it differs from the
    /// segment before (RFC 8216 §4.3.2.5).
    pub map: Option<Arc<str>>,
    /// EXT-X-PART tags of the segment's Partial Segments, written before its EXTINF; empty
    /// when none are listed (RFC 8216bis §4.4.4.9, §6.2.2). Written only when the playlist
    /// has [`LowLatency`].
    pub parts: Vec<PartialSegment>,
}

/// A Partial Segment as the playlist lists it: one EXT-X-PART tag.
///
/// Spec: RFC 8216bis §4.4.4.9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialSegment {
    /// URI, relative to the playlist.
    pub uri: String,
    /// DURATION; at most the Part Target Duration.
    pub duration: Duration90k,
    /// INDEPENDENT=YES: the Partial Segment starts with an independent frame.
    pub independent: bool,
}

/// The segment being written: the Partial Segments it has so far, at the end of the
/// playlist after the last Media Segment, and the Media Segment tags that will apply to it.
/// Its tags are written only once it has a Partial Segment, before the first one.
///
/// Spec: RFC 8216bis §4.4.4.9: "When the Media Segment Tags EXT-X-DISCONTINUITY, EXT-X-KEY,
/// EXT-X-MAP, or EXT-X-PROGRAM-DATE-TIME are applied to a Parent Segment, they also
/// necessarily apply to the first Partial Segment, so they MUST appear before the first
/// EXT-X-PART tag of that Parent Segment."
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenSegment {
    /// EXT-X-DISCONTINUITY before it.
    pub discontinuity: bool,
    /// EXT-X-MAP it needs, as [`MediaSegment::map`].
    pub map: Option<Arc<str>>,
    /// EXT-X-PROGRAM-DATE-TIME of its first sample.
    pub program_date_time: Option<SystemTime>,
    pub parts: Vec<PartialSegment>,
}

/// What a Low-Latency HLS playlist adds: the Partial Segment and server control tags, the
/// open segment's parts, and the hint for the next part.
///
/// Spec: RFC 8216bis §4.4.3.7, §4.4.3.8, §4.4.5.3, §6.2.5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowLatency {
    /// EXT-X-PART-INF:PART-TARGET, the Part Target Duration (§4.4.3.7). Written rounded up
    /// to the millisecond, so it covers every part DURATION, which is written rounded to the
    /// nearest millisecond.
    pub part_target: Duration90k,
    /// EXT-X-SERVER-CONTROL:PART-HOLD-BACK (§4.4.3.8: at least twice, and SHOULD be at least
    /// three times, the Part Target Duration). Written rounded up to the millisecond.
    /// CAN-BLOCK-RELOAD=YES is always written: the server supports Blocking Playlist Reload.
    pub part_hold_back: Duration90k,
    /// EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL, the Skip Boundary (§4.4.3.8: at least six times
    /// the Target Duration); `None`: no Playlist Delta Updates.
    pub skip_boundary: Option<Duration90k>,
    /// The segment being written, after the last Media Segment.
    pub open_segment: Option<OpenSegment>,
    /// EXT-X-PRELOAD-HINT:TYPE=PART with this URI: the next Partial Segment. Never written
    /// with EXT-X-ENDLIST (§4.4.5.3).
    pub preload_hint: Option<String>,
}

/// A media playlist: the tags that apply to the whole playlist and its segments in order.
///
/// Spec: RFC 8216 §4.3.3 (media playlist tags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// EXT-X-TARGETDURATION in seconds (RFC 8216 §4.3.3.1).
    pub target_duration: u32,
    /// EXT-X-MEDIA-SEQUENCE: the Media Sequence Number of the first listed segment
    /// (RFC 8216 §4.3.3.2).
    pub media_sequence: u64,
    /// EXT-X-DISCONTINUITY-SEQUENCE: how many EXT-X-DISCONTINUITY tags have left the
    /// playlist (RFC 8216 §4.3.3.3).
    pub discontinuity_sequence: u64,
    /// EXT-X-PLAYLIST-TYPE (RFC 8216 §4.3.3.5).
    pub playlist_type: Option<PlaylistType>,
    /// EXT-X-ENDLIST: no more segments will be added (RFC 8216 §4.3.3.4).
    pub end_list: bool,
    pub segments: VecDeque<MediaSegment>,
    /// The Low-Latency HLS tags; `None` for a classic playlist.
    pub low_latency: Option<LowLatency>,
}

impl MediaPlaylist {
    /// An empty playlist starting at Media Sequence Number 0.
    pub fn new(target_duration: u32, playlist_type: Option<PlaylistType>) -> MediaPlaylist {
        MediaPlaylist {
            target_duration,
            media_sequence: 0,
            discontinuity_sequence: 0,
            playlist_type,
            end_list: false,
            segments: VecDeque::new(),
            low_latency: None,
        }
    }

    /// The playlist's duration: the sum of its EXTINF durations.
    ///
    /// Spec: RFC 8216 §6.2.2 (the duration a live playlist must keep, and that a removed
    /// segment stays available for).
    pub fn duration(&self) -> Duration90k {
        let ticks = self
            .segments
            .iter()
            .fold(0u64, |sum, s| sum.saturating_add(s.duration.ticks()));
        Duration90k(ticks)
    }

    /// Removes the first segment the way a server may: the media sequence moves on by one,
    /// and the discontinuity sequence too when the segment carried EXT-X-DISCONTINUITY.
    ///
    /// Spec: RFC 8216 §6.2.1, §6.2.2, §4.3.3.3.
    pub fn remove_first(&mut self) -> Option<MediaSegment> {
        let first = self.segments.pop_front()?;
        self.media_sequence += 1;
        if first.discontinuity {
            self.discontinuity_sequence += 1;
        }
        Some(first)
    }

    /// True when there are segments and every one can be decoded on its own.
    ///
    /// Spec: RFC 8216 §4.3.5.1.
    fn independent_segments(&self) -> bool {
        !self.segments.is_empty() && self.segments.iter().all(|s| s.independent)
    }

    /// How many segments a Playlist Delta Update replaces with EXT-X-SKIP: the leading
    /// segments that end at least the Skip Boundary before the end of the last Media Segment.
    /// Zero without a Skip Boundary, and with EXT-X-ENDLIST, where a server ignores
    /// `_HLS_skip`. The last segment is never skipped.
    ///
    /// Spec: RFC 8216bis §6.2.5.1: "Media Segments that are further from the end of the last
    /// (Parent) Media Segment in the Playlist than the Skip Boundary [...] are replaced by an
    /// EXT-X-SKIP tag"; "A Server MUST ignore the _HLS_skip directive if the Playlist does
    /// not contain the CAN-SKIP-UNTIL attribute, or if it contains an EXT-X-ENDLIST tag."
    pub fn skippable_segments(&self) -> usize {
        let boundary = match self.low_latency.as_ref().and_then(|ll| ll.skip_boundary) {
            Some(b) if !self.end_list && b > Duration90k::ZERO => b,
            _ => return 0,
        };
        let mut after = self.duration();
        let mut skipped = 0;
        for segment in self
            .segments
            .iter()
            .take(self.segments.len().saturating_sub(1))
        {
            after = after.saturating_sub(segment.duration);
            if after < boundary {
                break;
            }
            skipped += 1;
        }
        skipped
    }

    /// The lowest EXT-X-VERSION the text needs: [`VERSION_SKIP`] with EXT-X-SKIP,
    /// [`VERSION_MAP`] with EXT-X-MAP, else [`VERSION`].
    ///
    /// Spec: RFC 8216bis §8; RFC 8216 §7.
    fn version(&self, form: Form) -> u8 {
        let has_map = self.segments.iter().any(|s| s.map.is_some())
            || self
                .low_latency
                .as_ref()
                .and_then(|ll| ll.open_segment.as_ref())
                .is_some_and(|o| form.low_latency && o.map.is_some() && !o.parts.is_empty());
        if form.skipped > 0 {
            VERSION_SKIP
        } else if has_map {
            VERSION_MAP
        } else {
            VERSION
        }
    }
}

/// Which text of a playlist to write.
#[derive(Clone, Copy, Debug)]
struct Form {
    /// Leading segments replaced by EXT-X-SKIP (0: none, no tag).
    skipped: usize,
    /// Whether to write the Low-Latency tags (when the playlist has them).
    low_latency: bool,
}

/// Whether `duration`, rounded to the nearest second as players round EXTINF, is longer than
/// `target_duration`.
///
/// Spec: RFC 8216 §4.3.3.1: "The EXTINF duration of each Media Segment in the Playlist file,
/// when rounded to the nearest integer, MUST be less than or equal to the target duration".
pub fn exceeds_target_duration(duration: Duration90k, target_duration: u32) -> bool {
    let rounded_secs = duration.ticks().saturating_add(Duration90k::HZ / 2) / Duration90k::HZ;
    rounded_secs > u64::from(target_duration)
}

/// EXT-X-PROGRAM-DATE-TIME of a new segment of which `arrived` of media has come in by
/// `wall`: `next`, where the previous segment's media ended, while the timeline continues;
/// for the first segment and after a discontinuity, `wall` minus `arrived`.
///
/// Spec: RFC 8216 §4.3.2.6 (EXT-X-PROGRAM-DATE-TIME).
pub fn program_date_time(
    next: Option<SystemTime>,
    discontinuity: bool,
    wall: SystemTime,
    arrived: Duration,
) -> SystemTime {
    match next {
        Some(next) if !discontinuity => next,
        _ => wall.checked_sub(arrived).unwrap_or(wall),
    }
}

/// Writes `playlist` as the text of a media playlist file (UTF-8, LF line ends): every
/// segment, and the Low-Latency tags when it has them.
///
/// Spec: RFC 8216 §4.1 (format), §4.3 (tags); RFC 8216bis §4.4 (the Low-Latency tags).
pub fn render(playlist: &MediaPlaylist) -> String {
    write_playlist(
        playlist,
        Form {
            skipped: 0,
            low_latency: true,
        },
    )
}

/// Writes the Playlist Delta Update of `playlist`: the same text with the leading segments
/// that [`MediaPlaylist::skippable_segments`] counts, and the Media Segment tags applied
/// only to them, replaced by one EXT-X-SKIP tag. `None` when nothing can be skipped (no Skip
/// Boundary, EXT-X-ENDLIST, or a playlist still too short): then the full text is the
/// answer to `_HLS_skip`.
///
/// What stays: every playlist tag, EXT-X-MEDIA-SEQUENCE and EXT-X-DISCONTINUITY-SEQUENCE
/// unchanged (EXT-X-SKIP "does not change the value of the EXT-X-DISCONTINUITY-SEQUENCE
/// tag"), and each remaining segment's own tags. EXT-X-MAP applies to every segment until
/// the next one, so the one in force is written again before the first remaining segment:
/// a client merging the update gets the same mapping either way, and one that does not
/// still knows the initialization section. Segment dates are not lost: every segment of a
/// live playlist carries its own EXT-X-PROGRAM-DATE-TIME.
///
/// Spec: RFC 8216bis §6.2.5.1 ("All tags that were not skipped MUST remain in the Playlist
/// Delta Update"), §4.4.5.2 (EXT-X-SKIP), §8 (version 9).
pub fn render_delta(playlist: &MediaPlaylist) -> Option<String> {
    let skipped = playlist.skippable_segments();
    (skipped > 0).then(|| {
        write_playlist(
            playlist,
            Form {
                skipped,
                low_latency: true,
            },
        )
    })
}

/// Writes `playlist` without its Low-Latency tags: the playlist as a server without
/// Low-Latency HLS would serve it, listing whole segments only. For copies on disk, where
/// Partial Segments are not written and no server answers blocking reloads.
pub fn render_without_parts(playlist: &MediaPlaylist) -> String {
    write_playlist(
        playlist,
        Form {
            skipped: 0,
            low_latency: false,
        },
    )
}

/// The one writer behind [`render`], [`render_delta`] and [`render_without_parts`].
fn write_playlist(playlist: &MediaPlaylist, form: Form) -> String {
    /// Bytes a segment's lines take at most, give or take: PROGRAM-DATE-TIME (50), EXTINF
    /// (20) and a short URI; only sizes the first allocation.
    const BYTES_PER_SEGMENT: usize = 100;
    /// Bytes an EXT-X-PART line takes, give or take; only sizes the first allocation.
    const BYTES_PER_PART: usize = 60;
    /// The header tags, sized the same way.
    const HEADER_BYTES: usize = 160;

    let ll = playlist.low_latency.as_ref().filter(|_| form.low_latency);
    let shown = playlist.segments.iter().skip(form.skipped);
    let parts = match ll {
        Some(ll) => {
            let open = ll.open_segment.as_ref().map_or(0, |o| o.parts.len());
            shown.clone().map(|s| s.parts.len()).sum::<usize>() + open
        }
        None => 0,
    };
    let mut out = String::with_capacity(
        HEADER_BYTES + BYTES_PER_SEGMENT * shown.len() + BYTES_PER_PART * parts,
    );
    // Writing into a String cannot fail, so the fmt::Results below carry nothing.
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{}", playlist.version(form));
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", playlist.target_duration);
    if let Some(ll) = ll {
        out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=");
        write_seconds(&mut out, ll.part_hold_back, Rounding::Up);
        if let Some(boundary) = ll.skip_boundary {
            out.push_str(",CAN-SKIP-UNTIL=");
            write_seconds(&mut out, boundary, Rounding::Up);
        }
        out.push_str("\n#EXT-X-PART-INF:PART-TARGET=");
        write_seconds(&mut out, ll.part_target, Rounding::Up);
        out.push('\n');
    }
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", playlist.media_sequence);
    if playlist.discontinuity_sequence != 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            playlist.discontinuity_sequence
        );
    }
    if let Some(PlaylistType::Vod) = playlist.playlist_type {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    if playlist.independent_segments() {
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    }
    if form.skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={}", form.skipped);
    }
    // The EXT-X-MAP in force: a segment needing another one gets the tag.
    let mut map: Option<&str> = None;
    for segment in shown {
        let tags = SegmentTags {
            discontinuity: segment.discontinuity,
            map: segment.map.as_deref(),
            program_date_time: segment.program_date_time,
            parts: if ll.is_some() { &segment.parts } else { &[] },
        };
        write_segment_tags(&mut out, &tags, &mut map);
        // EXTINF:<duration>,[<title>]: no title, but the comma is part of the tag.
        out.push_str("#EXTINF:");
        write_seconds(&mut out, segment.duration, Rounding::Nearest);
        out.push_str(",\n");
        out.push_str(&segment.uri);
        out.push('\n');
    }
    if let Some(ll) = ll {
        if let Some(open) = ll.open_segment.as_ref().filter(|o| !o.parts.is_empty()) {
            let tags = SegmentTags {
                discontinuity: open.discontinuity,
                map: open.map.as_deref(),
                program_date_time: open.program_date_time,
                parts: &open.parts,
            };
            write_segment_tags(&mut out, &tags, &mut map);
        }
        if let Some(uri) = ll.preload_hint.as_ref().filter(|_| !playlist.end_list) {
            let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{uri}\"");
        }
    }
    if playlist.end_list {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// The Media Segment tags of a segment, and its EXT-X-PART tags, as written before its
/// EXTINF (or, for the open segment, at the end).
struct SegmentTags<'a> {
    discontinuity: bool,
    map: Option<&'a str>,
    program_date_time: Option<SystemTime>,
    parts: &'a [PartialSegment],
}

/// Writes EXT-X-DISCONTINUITY, EXT-X-MAP (when it differs from `in_force`, which it then
/// becomes), EXT-X-PROGRAM-DATE-TIME, then the EXT-X-PART tags: the Media Segment tags
/// come before the first part (RFC 8216bis §4.4.4.9).
fn write_segment_tags<'a>(
    out: &mut String,
    tags: &SegmentTags<'a>,
    in_force: &mut Option<&'a str>,
) {
    if tags.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if let Some(uri) = tags.map.filter(|uri| *in_force != Some(*uri)) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"{uri}\"");
        *in_force = Some(uri);
    }
    if let Some(t) = tags.program_date_time {
        let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(t));
    }
    for part in tags.parts {
        out.push_str("#EXT-X-PART:DURATION=");
        write_seconds(out, part.duration, Rounding::Nearest);
        let _ = write!(out, ",URI=\"{}\"", part.uri);
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

/// How [`write_seconds`] rounds to the millisecond.
#[derive(Clone, Copy, Debug)]
enum Rounding {
    /// Half a millisecond up: durations (EXTINF, part DURATION).
    Nearest,
    /// Any fraction up: bounds that must cover the durations written (PART-TARGET) or stay
    /// at least a multiple of something (PART-HOLD-BACK, CAN-SKIP-UNTIL).
    Up,
}

/// `d` as decimal-floating-point seconds with three decimals (RFC 8216 §4.2).
fn write_seconds(out: &mut String, d: Duration90k, rounding: Rounding) {
    let millis = match rounding {
        Rounding::Nearest => d.ticks().saturating_add(45) / 90,
        Rounding::Up => d.ticks().div_ceil(90),
    };
    let _ = write!(out, "{}.{:03}", millis / 1000, millis % 1000);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn segment(uri: &str, ticks: u64) -> MediaSegment {
        MediaSegment {
            uri: uri.to_owned(),
            duration: Duration90k(ticks),
            discontinuity: false,
            independent: true,
            program_date_time: None,
            map: None,
            parts: Vec::new(),
        }
    }

    fn at_millis(ms: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_millis(ms))
    }

    #[test]
    fn live_window_with_program_date_time() {
        let mut p = MediaPlaylist::new(2, None);
        p.media_sequence = 7;
        for (i, ms) in [
            (7, 1_700_000_000_000),
            (8, 1_700_000_002_000),
            (9, 1_700_000_004_000),
        ] {
            let mut s = segment(&format!("loyw3v28-{i}.ts"), 180_000);
            s.program_date_time = at_millis(ms);
            p.segments.push_back(s);
        }
        p.segments[2].duration = Duration90k(171_000);
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:7\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-7.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXTINF:2.000,\n\
             loyw3v28-8.ts\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
             #EXTINF:1.900,\n\
             loyw3v28-9.ts\n"
        );
    }

    #[test]
    fn discontinuity_and_its_sequence() {
        let mut p = MediaPlaylist::new(4, None);
        p.segments.push_back(segment("a-0.ts", 360_000));
        let mut second = segment("a-1.ts", 270_000);
        second.discontinuity = true;
        p.segments.push_back(second);
        p.segments.push_back(segment("a-2.ts", 300_000));
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXTINF:4.000,\n\
             a-0.ts\n\
             #EXT-X-DISCONTINUITY\n\
             #EXTINF:3.000,\n\
             a-1.ts\n\
             #EXTINF:3.333,\n\
             a-2.ts\n"
        );

        // The segment before the discontinuity leaves: the tag stays with its segment.
        assert_eq!(p.remove_first().map(|s| s.uri), Some("a-0.ts".to_owned()));
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (1, 0));
        // The segment carrying it leaves: the count moves to the header.
        assert_eq!(p.remove_first().map(|s| s.uri), Some("a-1.ts".to_owned()));
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (2, 1));
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:4\n\
             #EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXTINF:3.333,\n\
             a-2.ts\n"
        );
        assert_eq!(p.remove_first().map(|s| s.uri), Some("a-2.ts".to_owned()));
        assert_eq!(p.remove_first(), None);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (3, 1));
    }

    #[test]
    fn ended_live_playlist_without_independent_segments() {
        let mut p = MediaPlaylist::new(2, None);
        p.media_sequence = 41;
        p.segments.push_back(segment("x-41.ts", 180_000));
        let mut open_gop = segment("x-42.ts", 90_000);
        open_gop.independent = false;
        p.segments.push_back(open_gop);
        p.end_list = true;
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:41\n\
             #EXTINF:2.000,\n\
             x-41.ts\n\
             #EXTINF:1.000,\n\
             x-42.ts\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn vod() {
        let mut p = MediaPlaylist::new(3, Some(PlaylistType::Vod));
        p.segments.push_back(segment("v-0.ts", 225_000));
        p.segments.push_back(segment("v-1.ts", 189_000));
        p.end_list = true;
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:3\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXTINF:2.500,\n\
             v-0.ts\n\
             #EXTINF:2.100,\n\
             v-1.ts\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn empty_playlist_has_only_the_header() {
        assert_eq!(
            render(&MediaPlaylist::new(2, None)),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
        );
    }

    #[test]
    fn extinf_rounds_to_the_nearest_millisecond() {
        let extinf = |ticks| {
            let mut p = MediaPlaylist::new(2, None);
            p.segments.push_back(segment("s.ts", ticks));
            let text = render(&p);
            let line = text
                .lines()
                .find(|l| l.starts_with("#EXTINF:"))
                .map(str::to_owned);
            line.unwrap_or_default()
        };
        assert_eq!(extinf(0), "#EXTINF:0.000,");
        assert_eq!(extinf(44), "#EXTINF:0.000,");
        assert_eq!(extinf(45), "#EXTINF:0.001,");
        assert_eq!(extinf(180_044), "#EXTINF:2.000,");
        assert_eq!(extinf(180_045), "#EXTINF:2.001,");
        assert_eq!(extinf(899_955), "#EXTINF:10.000,");
        assert_eq!(extinf(u64::MAX), "#EXTINF:204963823041217.240,");
    }

    /// A Low-Latency playlist: 2 s segments of four 0.5 s parts, all needing `init`.
    fn low_latency(segments: u64, init: &Arc<str>) -> MediaPlaylist {
        let mut p = MediaPlaylist::new(2, None);
        p.media_sequence = 5;
        for msn in 5..5 + segments {
            let mut s = segment(&format!("a-{msn}.m4s"), 180_000);
            s.map = Some(Arc::clone(init));
            s.program_date_time = at_millis(1_700_000_000_000 + (msn - 5) * 2000);
            s.parts = parts(msn, 4);
            p.segments.push_back(s);
        }
        p.low_latency = Some(LowLatency {
            part_target: Duration90k(45_000),
            part_hold_back: Duration90k(135_000),
            skip_boundary: Some(Duration90k(12 * 90_000)),
            open_segment: None,
            preload_hint: None,
        });
        p
    }

    /// `count` parts of 0.5 s of segment `msn`, the first independent.
    fn parts(msn: u64, count: u64) -> Vec<PartialSegment> {
        (0..count)
            .map(|i| PartialSegment {
                uri: format!("a-{msn}.{i}.m4s"),
                duration: Duration90k(45_000),
                independent: i == 0,
            })
            .collect()
    }

    fn ll(p: &mut MediaPlaylist) -> &mut LowLatency {
        p.low_latency.as_mut().expect("a Low-Latency playlist")
    }

    #[test]
    fn low_latency_playlist_with_parts_open_segment_and_preload_hint() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(3, &init);
        // Parts listed for the last two segments only.
        p.segments[0].parts.clear();
        ll(&mut p).open_segment = Some(OpenSegment {
            discontinuity: false,
            map: Some(Arc::clone(&init)),
            program_date_time: at_millis(1_700_000_006_000),
            parts: parts(8, 2),
        });
        ll(&mut p).preload_hint = Some("a-8.2.m4s".to_owned());
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.000\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"a-init-0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2.000,\n\
             a-5.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-6.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-6.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-6.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-6.3.m4s\"\n\
             #EXTINF:2.000,\n\
             a-6.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-7.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-7.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-7.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-7.3.m4s\"\n\
             #EXTINF:2.000,\n\
             a-7.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-8.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-8.1.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-8.2.m4s\"\n"
        );
        assert_eq!(render_delta(&p), None, "6 s of media: nothing to skip");
    }

    #[test]
    fn open_segment_tags_wait_for_its_first_part() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(1, &init);
        // A new publisher's segment: it will start a discontinuity with a new map, but it
        // has no part yet, so only the hint for its first part shows.
        ll(&mut p).open_segment = Some(OpenSegment {
            discontinuity: true,
            map: Some(Arc::from("a-init-1.mp4")),
            program_date_time: None,
            parts: Vec::new(),
        });
        ll(&mut p).preload_hint = Some("a-6.0.m4s".to_owned());
        let text = render(&p);
        assert!(
            text.ends_with(
                "#EXTINF:2.000,\na-5.m4s\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-6.0.m4s\"\n"
            ),
            "{text}"
        );
        assert!(!text.contains("a-init-1.mp4"), "{text}");

        // Its first part: the tags come before it.
        ll(&mut p).open_segment.as_mut().expect("open").parts = parts(6, 1);
        ll(&mut p).preload_hint = Some("a-6.1.m4s".to_owned());
        let text = render(&p);
        assert!(
            text.ends_with(
                "a-5.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"a-init-1.mp4\"\n\
                 #EXT-X-PART:DURATION=0.500,URI=\"a-6.0.m4s\",INDEPENDENT=YES\n\
                 #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-6.1.m4s\"\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn map_written_first_and_again_where_the_initialization_changes() {
        let first: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(4, &first);
        p.low_latency = None;
        for s in &mut p.segments {
            s.program_date_time = None;
        }
        let second: Arc<str> = Arc::from("a-init-1.mp4");
        p.segments[2].discontinuity = true;
        p.segments[2].map = Some(Arc::clone(&second));
        p.segments[3].map = Some(second);
        assert_eq!(
            render(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"a-init-0.mp4\"\n\
             #EXTINF:2.000,\n\
             a-5.m4s\n\
             #EXTINF:2.000,\n\
             a-6.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"a-init-1.mp4\"\n\
             #EXTINF:2.000,\n\
             a-7.m4s\n\
             #EXTINF:2.000,\n\
             a-8.m4s\n",
            "parts are not written without the Low-Latency tags"
        );
    }

    #[test]
    fn delta_update_skips_what_ends_a_skip_boundary_before_the_end() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        // 8 segments of 2 s (5..=12); the Skip Boundary is 12 s.
        let mut p = low_latency(8, &init);
        p.discontinuity_sequence = 3;
        // Segment 6 started a discontinuity with a new initialization section, which stays
        // in force for the segments after the skipped ones.
        let second: Arc<str> = Arc::from("a-init-1.mp4");
        p.segments[1].discontinuity = true;
        for s in p.segments.iter_mut().skip(1) {
            s.map = Some(Arc::clone(&second));
        }
        // Parts listed for the last two segments only.
        for s in p.segments.iter_mut().take(6) {
            s.parts.clear();
        }
        ll(&mut p).open_segment = Some(OpenSegment {
            discontinuity: false,
            map: Some(Arc::clone(&second)),
            program_date_time: at_millis(1_700_000_016_000),
            parts: parts(13, 1),
        });
        ll(&mut p).preload_hint = Some("a-13.1.m4s".to_owned());
        // Segment 5 ends 14 s and segment 6 12 s before the end of segment 12; segment 7,
        // 10 s before it, stays.
        assert_eq!(p.skippable_segments(), 2);
        let delta = render_delta(&p).expect("something to skip");
        assert_eq!(
            delta,
            "#EXTM3U\n\
             #EXT-X-VERSION:9\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,CAN-SKIP-UNTIL=12.000\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-SKIP:SKIPPED-SEGMENTS=2\n\
             #EXT-X-MAP:URI=\"a-init-1.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n\
             #EXTINF:2.000,\n\
             a-7.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:26.000Z\n\
             #EXTINF:2.000,\n\
             a-8.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:28.000Z\n\
             #EXTINF:2.000,\n\
             a-9.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:30.000Z\n\
             #EXTINF:2.000,\n\
             a-10.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:32.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-11.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-11.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-11.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-11.3.m4s\"\n\
             #EXTINF:2.000,\n\
             a-11.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:34.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-12.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-12.1.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-12.2.m4s\"\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-12.3.m4s\"\n\
             #EXTINF:2.000,\n\
             a-12.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:36.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"a-13.0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-13.1.m4s\"\n"
        );
        // The full text has the skipped segments and their tags where the delta has the
        // EXT-X-SKIP tag (and the map written again), and the same lines after them.
        let full = render(&p);
        let (full_head, full_tail) = full
            .split_once("#EXT-X-INDEPENDENT-SEGMENTS\n")
            .expect("tag");
        assert!(
            full_head.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"),
            "{full}"
        );
        assert!(
            full_tail.starts_with(
                "#EXT-X-MAP:URI=\"a-init-0.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
                 #EXTINF:2.000,\n\
                 a-5.m4s\n\
                 #EXT-X-DISCONTINUITY\n\
                 #EXT-X-MAP:URI=\"a-init-1.mp4\"\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
                 #EXTINF:2.000,\n\
                 a-6.m4s\n\
                 #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:24.000Z\n"
            ),
            "{full}"
        );
        let after = |text: &str| {
            text.split_once("a-6.m4s\n")
                .map_or(String::new(), |(_, t)| t.to_owned())
        };
        let delta_after = delta
            .split_once("#EXT-X-MAP:URI=\"a-init-1.mp4\"\n")
            .map(|(_, t)| t.to_owned());
        assert_eq!(delta_after, Some(after(&full)));
    }

    #[test]
    fn skip_needs_a_boundary_no_endlist_and_leaves_the_last_segment() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(8, &init);
        assert_eq!(p.skippable_segments(), 2);
        // Exactly at the boundary counts: 7 segments, the first ends 12 s before the end.
        p.remove_first();
        assert_eq!(p.skippable_segments(), 1);
        p.remove_first();
        assert_eq!(p.skippable_segments(), 0);
        assert_eq!(render_delta(&p), None);

        let mut p = low_latency(8, &init);
        ll(&mut p).skip_boundary = None;
        assert_eq!(p.skippable_segments(), 0);

        let mut p = low_latency(8, &init);
        p.end_list = true;
        assert_eq!(
            p.skippable_segments(),
            0,
            "_HLS_skip is ignored with EXT-X-ENDLIST"
        );

        // A zero boundary (never written by this server) would skip all but the last.
        let mut p = low_latency(3, &init);
        ll(&mut p).skip_boundary = Some(Duration90k::ZERO);
        assert_eq!(p.skippable_segments(), 0);
        ll(&mut p).skip_boundary = Some(Duration90k(1));
        assert_eq!(p.skippable_segments(), 2);

        assert_eq!(MediaPlaylist::new(2, None).skippable_segments(), 0);
    }

    #[test]
    fn ended_low_latency_playlist_has_no_preload_hint() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(1, &init);
        ll(&mut p).preload_hint = Some("a-6.0.m4s".to_owned());
        p.end_list = true;
        let text = render(&p);
        assert!(!text.contains("PRELOAD-HINT"), "{text}");
        assert!(
            text.ends_with(
                "#EXT-X-PART:DURATION=0.500,URI=\"a-5.3.m4s\"\n\
                 #EXTINF:2.000,\n\
                 a-5.m4s\n\
                 #EXT-X-ENDLIST\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn without_parts_is_the_playlist_of_a_server_without_low_latency() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(2, &init);
        ll(&mut p).open_segment = Some(OpenSegment {
            parts: parts(7, 1),
            ..OpenSegment::default()
        });
        ll(&mut p).preload_hint = Some("a-7.1.m4s".to_owned());
        assert_eq!(
            render_without_parts(&p),
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-MEDIA-SEQUENCE:5\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"a-init-0.mp4\"\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
             #EXTINF:2.000,\n\
             a-5.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
             #EXTINF:2.000,\n\
             a-6.m4s\n"
        );
    }

    #[test]
    fn bounds_round_up_and_durations_to_the_nearest_millisecond() {
        let init: Arc<str> = Arc::from("a-init-0.mp4");
        let mut p = low_latency(1, &init);
        p.segments[0].parts = vec![PartialSegment {
            uri: "a-5.0.m4s".to_owned(),
            // 0.33334 s: DURATION 0.333, PART-TARGET 0.334.
            duration: Duration90k(30_001),
            independent: false,
        }];
        let hold_back = Duration90k(3 * 30_060);
        *ll(&mut p) = LowLatency {
            part_target: Duration90k(30_001),
            part_hold_back: hold_back,
            skip_boundary: None,
            open_segment: None,
            preload_hint: None,
        };
        let text = render(&p);
        assert!(
            text.contains(
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.002\n\
                 #EXT-X-PART-INF:PART-TARGET=0.334\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("#EXT-X-PART:DURATION=0.333,URI=\"a-5.0.m4s\"\n"),
            "{text}"
        );
    }

    #[test]
    fn target_duration_covers_the_rounded_extinf() {
        assert!(!exceeds_target_duration(Duration90k(180_000), 2));
        assert!(!exceeds_target_duration(Duration90k(224_999), 2)); // 2.49999 s rounds to 2
        assert!(exceeds_target_duration(Duration90k(225_000), 2)); // 2.5 s rounds to 3
        assert!(!exceeds_target_duration(Duration90k(225_000), 3));
        assert!(exceeds_target_duration(Duration90k(u64::MAX), u32::MAX));
        assert!(!exceeds_target_duration(Duration90k::ZERO, 0));
    }
}
