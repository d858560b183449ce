//! Sans-IO: a media playlist as the bucket serves it.
//!
//! The node renders its playlists for its own disk and memory; the bucket's copy of each is
//! the same text with two corrections:
//!
//! - **Gaps.** A segment whose upload was dropped (the queue was full) or failed for good is
//!   not in the bucket, and a playlist must never list a segment a client cannot fetch. The
//!   bucket's copy of a version whose window lists such a segment starts right after the
//!   last of them: the segments before it are removed from the top, as RFC 8216 §6.2.2 lets a
//!   server remove segments, EXT-X-MEDIA-SEQUENCE moves on by the segments removed and
//!   EXT-X-DISCONTINUITY-SEQUENCE by the EXT-X-DISCONTINUITY tags removed with them (§4.3.3.2,
//!   §4.3.3.3). The first segment after a gap carries EXT-X-DISCONTINUITY (§4.3.2.3: what
//!   follows is not continuous with what a client played before), in this and every later
//!   version that lists it. The EXT-X-MAP in force for the first listed segment is kept
//!   (§4.3.2.5). A version whose every segment is missing is not uploaded at all.
//! - **Continuation.** A playlist this process uploads for the first time may already be in
//!   the bucket (an earlier process, another node of a cluster). Its numbering continues
//!   that copy's: the media sequence goes past the last sequence number the old copy listed
//!   and the discontinuity sequence past its last discontinuity, the first new segment
//!   carrying EXT-X-DISCONTINUITY, so a media sequence in the bucket never goes back and no
//!   number is reused (§6.2.1: a client must be able to tell segments apart by number). The
//!   same offsets apply to every later version from this process.
//!
//! Multivariant playlists (EXT-X-STREAM-INF, §4.3.4.2) name playlists, not segments, and are
//! uploaded unchanged.

use std::collections::BTreeSet;

/// Tags that belong to the playlist rather than to the segment that follows them (RFC 8216
/// §4.3.3 Media Playlist tags, §4.3.1 basic tags, §4.3.5 tags of both kinds, and the
/// Low-Latency playlist tags of RFC 8216bis §4.4.3).
const HEADER_TAGS: &[&str] = &[
    "#EXTM3U",
    "#EXT-X-VERSION",
    "#EXT-X-TARGETDURATION",
    "#EXT-X-MEDIA-SEQUENCE",
    "#EXT-X-DISCONTINUITY-SEQUENCE",
    "#EXT-X-PLAYLIST-TYPE",
    "#EXT-X-I-FRAMES-ONLY",
    "#EXT-X-INDEPENDENT-SEGMENTS",
    "#EXT-X-START",
    "#EXT-X-SERVER-CONTROL",
    "#EXT-X-PART-INF",
    "#EXT-X-DEFINE",
];

const MEDIA_SEQUENCE: &str = "#EXT-X-MEDIA-SEQUENCE:";
const DISCONTINUITY_SEQUENCE: &str = "#EXT-X-DISCONTINUITY-SEQUENCE:";
const DISCONTINUITY: &str = "#EXT-X-DISCONTINUITY";
const MAP: &str = "#EXT-X-MAP:";
const EXTINF: &str = "#EXTINF:";

/// One media segment: its tags (in order) and its URI.
#[derive(Clone, Debug, PartialEq)]
struct Segment<'a> {
    tags: Vec<&'a str>,
    uri: &'a str,
}

impl Segment<'_> {
    /// EXT-X-DISCONTINUITY, which has no attributes (§4.3.2.3): a line that adds some is
    /// not the tag.
    fn discontinuity(&self) -> bool {
        self.tags.contains(&DISCONTINUITY)
    }

    fn map(&self) -> Option<&str> {
        self.tags.iter().copied().find(|t| t.starts_with(MAP))
    }

    /// EXTINF's duration in seconds (0 when missing or bad).
    fn duration(&self) -> f64 {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(EXTINF))
            .and_then(|rest| rest.split(',').next())
            .and_then(|d| d.trim().parse::<f64>().ok())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(0.0)
    }
}

/// `line` is `tag` exactly, or `tag:` with attributes.
fn is_tag(line: &str, tag: &str) -> bool {
    line.strip_prefix(tag)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
}

/// A media playlist taken apart; lines are kept as they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Parsed<'a> {
    header: Vec<&'a str>,
    media_sequence: u64,
    discontinuity_sequence: u64,
    segments: Vec<Segment<'a>>,
    /// Lines after the last segment (EXT-X-ENDLIST, reports, hints).
    trailer: Vec<&'a str>,
}

impl<'a> Parsed<'a> {
    /// Parses a media playlist; `None` for a multivariant playlist or text that is not a
    /// playlist (no `#EXTM3U` first line).
    pub fn parse(text: &'a str) -> Option<Parsed<'a>> {
        let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
        if lines.next()?.trim() != "#EXTM3U" {
            return None;
        }
        let mut p = Parsed {
            header: vec!["#EXTM3U"],
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments: Vec::new(),
            trailer: Vec::new(),
        };
        let mut pending: Vec<&'a str> = Vec::new();
        let mut media = false;
        for line in lines {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with("#EXT-X-STREAM-INF") || line.starts_with("#EXT-X-I-FRAME-STREAM") {
                return None;
            }
            if let Some(n) = line.strip_prefix(MEDIA_SEQUENCE) {
                p.media_sequence = n.trim().parse().ok()?;
                media = true;
                continue;
            }
            if let Some(n) = line.strip_prefix(DISCONTINUITY_SEQUENCE) {
                p.discontinuity_sequence = n.trim().parse().ok()?;
                continue;
            }
            if line.starts_with('#') {
                let header = p.segments.is_empty()
                    && pending.is_empty()
                    && HEADER_TAGS.iter().any(|t| is_tag(line, t));
                if header {
                    media |= line.starts_with("#EXT-X-TARGETDURATION");
                    p.header.push(line);
                } else {
                    media |= line.starts_with(EXTINF);
                    pending.push(line);
                }
            } else {
                p.segments.push(Segment {
                    tags: std::mem::take(&mut pending),
                    uri: line,
                });
            }
        }
        p.trailer = pending;
        media.then_some(p)
    }

    /// EXT-X-MEDIA-SEQUENCE (0 when absent).
    pub fn media_sequence(&self) -> u64 {
        self.media_sequence
    }

    /// EXT-X-DISCONTINUITY-SEQUENCE (0 when absent).
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The URIs of the segments listed, in order.
    pub fn segment_uris(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.segments.iter().map(|s| s.uri)
    }

    /// The URIs of the initialization sections listed (EXT-X-MAP's URI attribute).
    pub fn map_uris(&self) -> Vec<&'a str> {
        let mut out: Vec<&'a str> = Vec::new();
        for s in &self.segments {
            for t in &s.tags {
                if let Some(uri) = t.strip_prefix(MAP).and_then(uri_attribute)
                    && !out.contains(&uri)
                {
                    out.push(uri);
                }
            }
        }
        out
    }

    /// EXT-X-ENDLIST: the playlist will not change (§4.3.3.4).
    pub fn ended(&self) -> bool {
        self.trailer
            .iter()
            .chain(self.header.iter())
            .any(|t| is_tag(t, "#EXT-X-ENDLIST"))
    }

    /// Seconds the playlist lists (summed EXTINF).
    pub fn duration(&self) -> f64 {
        self.segments.iter().map(Segment::duration).sum()
    }

    /// The sequence number of the last listed segment, and the discontinuity sequence
    /// number of that segment (`None` without segments).
    pub fn last_numbers(&self) -> Option<(u64, u64)> {
        let n = self.segments.len() as u64;
        let last = self.media_sequence.checked_add(n.checked_sub(1)?)?;
        let tags = self.segments.iter().filter(|s| s.discontinuity()).count() as u64;
        Some((last, self.discontinuity_sequence.saturating_add(tags)))
    }
}

/// `URI="..."` from an attribute list.
fn uri_attribute(attributes: &str) -> Option<&str> {
    let start = attributes.find("URI=\"")? + 5;
    let rest = &attributes[start..];
    Some(&rest[..rest.find('"')?])
}

/// The bucket's copy of one playlist path, as this process writes it: the continuation
/// offsets and the segments that carry an EXT-X-DISCONTINUITY the node's copy lacks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rewrite {
    /// Added to every media sequence number.
    seq_offset: u64,
    /// Added to every discontinuity sequence number.
    disc_offset: u64,
    /// Node sequence numbers of segments given an EXT-X-DISCONTINUITY here (after a gap, or
    /// the first one after an earlier copy in the bucket).
    added: BTreeSet<u64>,
}

/// A rewritten version.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewritten {
    pub text: String,
    /// The segment URIs it lists.
    pub uris: Vec<String>,
    /// Their durations (EXTINF), seconds.
    pub durations: Vec<f64>,
    /// Seconds it lists.
    pub duration: f64,
    /// It carries EXT-X-ENDLIST.
    pub ended: bool,
}

impl Rewrite {
    /// A playlist path this process writes first (nothing in the bucket, or not read).
    pub fn fresh() -> Rewrite {
        Rewrite::default()
    }

    /// Continues `old` (the bucket's copy, if it is a media playlist with segments) with
    /// `first` (the node's first version to upload): the numbers of `first` go past the
    /// last ones `old` listed, and `first`'s first segment carries EXT-X-DISCONTINUITY.
    pub fn continuing(old: &str, first: &str) -> Rewrite {
        let (Some(old), Some(first)) = (Parsed::parse(old), Parsed::parse(first)) else {
            return Rewrite::fresh();
        };
        let Some((last_seq, last_disc)) = old.last_numbers() else {
            return Rewrite::fresh();
        };
        let mut added = BTreeSet::new();
        if first.segments.first().is_some_and(|s| !s.discontinuity()) {
            added.insert(first.media_sequence);
        }
        Rewrite {
            seq_offset: last_seq
                .saturating_add(1)
                .saturating_sub(first.media_sequence),
            disc_offset: last_disc.saturating_sub(first.discontinuity_sequence),
            added,
        }
    }

    /// The bucket's copy of `text` (a version of the node's playlist): segments for which
    /// `missing` is true, and every segment before the last of them, are left out (the next
    /// one carries EXT-X-DISCONTINUITY from now on), numbers are offset. `None` when no
    /// segment is left, or the text is not a media playlist.
    pub fn apply(&mut self, text: &str, missing: impl Fn(&str) -> bool) -> Option<Rewritten> {
        let p = Parsed::parse(text)?;
        let last_missing = p.segments.iter().rposition(|s| missing(s.uri));
        let first_kept = last_missing.map_or(0, |i| i + 1);
        if first_kept >= p.segments.len() {
            return None;
        }
        // A segment with its own tag needs none added (and one counted twice would skew
        // the discontinuity sequence once it leaves).
        if last_missing.is_some() && !p.segments[first_kept].discontinuity() {
            self.added
                .insert(p.media_sequence.saturating_add(first_kept as u64));
        }
        // Discontinuity numbers as the bucket counts them: the node's, plus the offset, plus
        // the tags added on segments before each.
        let added_before = |seq: u64| self.added.range(..seq).count() as u64;
        let mut disc = p.discontinuity_sequence;
        let mut map_in_force: Option<&str> = None;
        for s in &p.segments[..first_kept] {
            disc += u64::from(s.discontinuity());
            if let Some(m) = s.map() {
                map_in_force = Some(m);
            }
        }
        let first_seq = p.media_sequence.saturating_add(first_kept as u64);
        // The tags removed with the segments before the first, the added ones among them,
        // and the added ones on segments the node no longer lists.
        let bucket_disc = disc
            .saturating_add(self.disc_offset)
            .saturating_add(added_before(first_seq));
        let mut out = String::with_capacity(text.len() + 64);
        for h in &p.header {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(&format!(
            "{MEDIA_SEQUENCE}{}\n",
            first_seq.saturating_add(self.seq_offset)
        ));
        if bucket_disc > 0 {
            out.push_str(&format!("{DISCONTINUITY_SEQUENCE}{bucket_disc}\n"));
        }
        let mut uris = Vec::with_capacity(p.segments.len() - first_kept);
        let mut durations = Vec::with_capacity(p.segments.len() - first_kept);
        for (i, s) in p.segments[first_kept..].iter().enumerate() {
            let seq = first_seq.saturating_add(i as u64);
            let tag_added = self.added.contains(&seq) && !s.discontinuity();
            if tag_added {
                out.push_str(DISCONTINUITY);
                out.push('\n');
            }
            if i == 0
                && s.map().is_none()
                && let Some(m) = map_in_force
            {
                out.push_str(m);
                out.push('\n');
            }
            for t in &s.tags {
                out.push_str(t);
                out.push('\n');
            }
            out.push_str(s.uri);
            out.push('\n');
            uris.push(s.uri.to_string());
            durations.push(s.duration());
        }
        for t in &p.trailer {
            out.push_str(t);
            out.push('\n');
        }
        Some(Rewritten {
            text: out,
            uris,
            duration: durations.iter().sum(),
            durations,
            ended: p.ended(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
        #EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2.000,\na-10.ts\n#EXTINF:2.000,\na-11.ts\n\
        #EXT-X-DISCONTINUITY\n#EXTINF:2.000,\na-12.ts\n#EXTINF:1.500,\na-13.ts\n";

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn nothing_missing_and_no_earlier_copy_is_the_same_playlist() {
        let mut r = Rewrite::fresh();
        let out = r.apply(LIVE, none).unwrap();
        assert_eq!(out.text, LIVE);
        assert_eq!(out.uris, ["a-10.ts", "a-11.ts", "a-12.ts", "a-13.ts"]);
        assert!((out.duration - 7.5).abs() < 1e-9);
        assert!(!out.ended);
    }

    #[test]
    fn a_dropped_segment_starts_the_bucket_copy_after_it() {
        let mut r = Rewrite::fresh();
        let out = r.apply(LIVE, |u| u == "a-11.ts").unwrap();
        // a-10 and a-11 removed; a-12's own tag was kept, so no tag is added and the
        // discontinuity sequence stays (no tag was removed).
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:12\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.000,\na-12.ts\n#EXTINF:1.500,\na-13.ts\n"
        );
        // The next version still lists the missing a-11: the same start.
        let next = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-MEDIA-SEQUENCE:11\n#EXTINF:2.000,\na-11.ts\n#EXT-X-DISCONTINUITY\n\
            #EXTINF:2.000,\na-12.ts\n#EXTINF:1.500,\na-13.ts\n#EXTINF:2.000,\na-14.ts\n";
        let out = r.apply(next, |u| u == "a-11.ts").unwrap();
        assert!(
            out.text.contains("#EXT-X-MEDIA-SEQUENCE:12\n"),
            "{}",
            out.text
        );
        assert!(!out.text.contains("DISCONTINUITY-SEQUENCE"), "{}", out.text);
        // a-12 leaves with its own tag: counted once (§6.2.2).
        let after = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:13\n\
            #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:1.500,\na-13.ts\n#EXTINF:2.000,\na-14.ts\n";
        let out = r.apply(after, none).unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:13\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:1.500,\na-13.ts\n#EXTINF:2.000,\na-14.ts\n"
        );
    }

    #[test]
    fn the_segment_after_a_gap_keeps_an_added_discontinuity() {
        let mut r = Rewrite::fresh();
        let v1 = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXTINF:2.0,\ns-0.ts\n#EXTINF:2.0,\ns-1.ts\n#EXTINF:2.0,\ns-2.ts\n";
        let out = r.apply(v1, |u| u == "s-0.ts").unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.0,\ns-1.ts\n#EXTINF:2.0,\ns-2.ts\n"
        );
        // Still listed: still tagged, the numbers unchanged.
        let v2 = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
            #EXTINF:2.0,\ns-1.ts\n#EXTINF:2.0,\ns-2.ts\n#EXTINF:2.0,\ns-3.ts\n";
        let out = r.apply(v2, none).unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:2.0,\ns-1.ts\n#EXTINF:2.0,\ns-2.ts\n\
             #EXTINF:2.0,\ns-3.ts\n"
        );
        // s-1 left with its added tag: the discontinuity sequence counts it.
        let v3 = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
            #EXTINF:2.0,\ns-2.ts\n#EXTINF:2.0,\ns-3.ts\n#EXT-X-ENDLIST\n";
        let out = r.apply(v3, none).unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXTINF:2.0,\ns-2.ts\n#EXTINF:2.0,\ns-3.ts\n\
             #EXT-X-ENDLIST\n"
        );
        assert!(out.ended);
    }

    #[test]
    fn every_segment_missing_uploads_nothing() {
        let mut r = Rewrite::fresh();
        assert_eq!(r.apply(LIVE, |u| u == "a-13.ts"), None);
        assert_eq!(r.apply("not a playlist", none), None);
        assert_eq!(r.apply("", none), None);
    }

    #[test]
    fn the_map_in_force_is_kept() {
        let cmaf = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-MAP:URI=\"b-init-0.mp4\"\n#EXTINF:2.0,\nb-5.m4s\n\
            #EXTINF:2.0,\nb-6.m4s\n#EXTINF:2.0,\nb-7.m4s\n";
        let p = Parsed::parse(cmaf).unwrap();
        assert_eq!(p.map_uris(), ["b-init-0.mp4"]);
        let out = Rewrite::fresh().apply(cmaf, |u| u == "b-5.m4s").unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:6\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"b-init-0.mp4\"\n#EXTINF:2.0,\nb-6.m4s\n\
             #EXTINF:2.0,\nb-7.m4s\n"
        );
    }

    #[test]
    fn continuing_an_earlier_copy_never_goes_back() {
        let old = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:40\n\
            #EXT-X-DISCONTINUITY-SEQUENCE:3\n#EXTINF:2.0,\nx-40.ts\n#EXT-X-DISCONTINUITY\n\
            #EXTINF:2.0,\nx-41.ts\n";
        let first = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
            #EXTINF:2.0,\ny-0.ts\n";
        let mut r = Rewrite::continuing(old, first);
        let out = r.apply(first, none).unwrap();
        // Last listed: 41 with discontinuity 4; the new one is 42 with discontinuity 5.
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:42\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:4\n#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\ny-0.ts\n"
        );
        let later = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
            #EXTINF:2.0,\ny-1.ts\n#EXTINF:2.0,\ny-2.ts\n";
        let out = r.apply(later, none).unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:43\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:5\n#EXTINF:2.0,\ny-1.ts\n#EXTINF:2.0,\ny-2.ts\n"
        );
        // An earlier copy without segments, or not a playlist: nothing to continue.
        assert_eq!(Rewrite::continuing("#EXTM3U\n", first), Rewrite::fresh());
        assert_eq!(Rewrite::continuing("<Error/>", first), Rewrite::fresh());
    }

    #[test]
    fn multivariant_playlists_are_not_media_playlists() {
        let mv = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nv0/index.m3u8\n";
        assert_eq!(Parsed::parse(mv), None);
    }

    #[test]
    fn a_discontinuity_with_attributes_is_not_one() {
        // Found by fuzzing: continuing an earlier copy, the first segment must carry the
        // real tag.
        let old = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nx-0.ts\n";
        let first =
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-DISCONTINUITY:X\n#EXTINF:2,\ny-0.ts\n";
        let out = Rewrite::continuing(old, first).apply(first, none).unwrap();
        assert_eq!(
            out.text,
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-DISCONTINUITY:X\n#EXTINF:2,\ny-0.ts\n"
        );
    }

    #[test]
    fn bad_numbers_are_not_playlists() {
        let bad = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n#EXTINF:2,\na.ts\n";
        assert_eq!(Parsed::parse(bad), None);
        let huge = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n\
            #EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        let p = Parsed::parse(huge).unwrap();
        assert_eq!(p.last_numbers(), None);
        let _ = Rewrite::fresh().apply(huge, |u| u == "a.ts");
    }
}
