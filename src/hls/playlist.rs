//! A media playlist as a typed value, and the one function that writes it as text.
//!
//! Spec: RFC 8216 §4.3 (tags), §6.2.1 (how a server may change a playlist), §7 (protocol
//! version compatibility).

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::SystemTime;

use crate::media::Duration90k;
use crate::wallclock::rfc3339_millis;

/// EXT-X-VERSION of every playlist this server writes. The only tag form used above version 1
/// is the decimal-floating-point EXTINF duration, which needs version 3; PROGRAM-DATE-TIME,
/// DISCONTINUITY-SEQUENCE, INDEPENDENT-SEGMENTS, PLAYLIST-TYPE and ENDLIST need no higher.
///
/// Spec: RFC 8216 §7, §4.3.1.2.
pub const VERSION: u8 = 3;

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

/// Writes `playlist` as the text of a media playlist file (UTF-8, LF line ends).
///
/// Spec: RFC 8216 §4.1 (format), §4.3 (tags).
pub fn render(playlist: &MediaPlaylist) -> String {
    /// Bytes a segment's lines take at most, give or take: PROGRAM-DATE-TIME (50), EXTINF
    /// (20) and a short URI; only sizes the first allocation.
    const BYTES_PER_SEGMENT: usize = 100;
    /// The header tags, sized the same way.
    const HEADER_BYTES: usize = 160;

    let mut out = String::with_capacity(HEADER_BYTES + BYTES_PER_SEGMENT * playlist.segments.len());
    // Writing into a String cannot fail, so the fmt::Results below carry nothing.
    out.push_str("#EXTM3U\n");
    let _ = writeln!(out, "#EXT-X-VERSION:{VERSION}");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", playlist.target_duration);
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
    for segment in &playlist.segments {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if let Some(t) = segment.program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", rfc3339_millis(t));
        }
        // EXTINF:<duration>,[<title>]: no title, but the comma is part of the tag.
        let millis = segment.duration.ticks().saturating_add(45) / 90;
        let _ = writeln!(out, "#EXTINF:{}.{:03},", millis / 1000, millis % 1000);
        out.push_str(&segment.uri);
        out.push('\n');
    }
    if playlist.end_list {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
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
