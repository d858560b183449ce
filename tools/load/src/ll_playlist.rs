//! What a Low-Latency viewer reads in `llhls.m3u8` (full or Playlist Delta Update): the
//! server's controls, the Media Sequence Number, the Partial Segments listed with their
//! place (Media Sequence Number and Part Index), the initialization section each needs, the
//! preload hint, and whether the playlist has ended; and, from that, the Blocking Playlist
//! Reload a player asks next.
//!
//! A Partial Segment's place is where it is listed: EXT-X-PART tags come before the EXTINF of
//! their Parent Segment, and those after the last EXTINF belong to the segment being
//! written, one past the last listed.
//!
//! The text is kept (a buffer taken from the caller and handed back on the next parse, so
//! that reloading allocates nothing), and URIs are ranges of it.
//!
//! Spec: RFC 8216bis §4.4.3.1 (EXT-X-TARGETDURATION), §4.4.3.2 (EXT-X-MEDIA-SEQUENCE),
//! §4.4.3.7 (EXT-X-PART-INF), §4.4.3.8 (EXT-X-SERVER-CONTROL), §4.4.4.5 (EXT-X-MAP),
//! §4.4.4.9 (EXT-X-PART), §4.4.5.2 (EXT-X-SKIP), §4.4.5.3 (EXT-X-PRELOAD-HINT), §4.2
//! (attribute lists), §6.2.5.2 and §6.3.4 (Blocking Playlist Reload, as a client asks it).

use std::ops::Range;
use std::time::Duration;

use thiserror::Error;

/// Most Partial Segments read from one playlist: a server lists those of the last three
/// Target Durations, a few dozen; the bound keeps a broken server from growing a viewer's
/// memory.
pub const MAX_PARTS: usize = 4096;

/// Why a playlist could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LlPlaylistError {
    #[error("playlist is not UTF-8")]
    NotText,
    #[error("playlist does not start with #EXTM3U")]
    NotAPlaylist,
    #[error("playlist line {line}: {tag} has an invalid value {value:?}")]
    BadValue {
        line: usize,
        tag: &'static str,
        value: String,
    },
    #[error("playlist line {line}: {tag} has no URI")]
    NoUri { line: usize, tag: &'static str },
    #[error("playlist lists more than {MAX_PARTS} parts")]
    TooManyParts,
}

/// A Partial Segment's place in the stream: its Parent Segment's Media Sequence Number and
/// its Part Index in it. Ordered as the stream makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartId {
    pub msn: u64,
    pub index: u64,
}

impl std::fmt::Display for PartId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.msn, self.index)
    }
}

/// One EXT-X-PART tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedPart {
    pub id: PartId,
    /// The URI, as a range of the playlist text ([`LlPlaylist::text_of`]).
    pub uri: Range<usize>,
    pub duration: Duration,
    pub independent: bool,
    /// The EXT-X-MAP URI in force for it, as a range of the text.
    pub map: Option<Range<usize>>,
}

/// A Low-Latency media playlist, as a viewer acts on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LlPlaylist {
    text: String,
    pub target_duration: Option<Duration>,
    /// EXT-X-MEDIA-SEQUENCE (0 when absent).
    pub media_sequence: u64,
    /// EXT-X-SKIP:SKIPPED-SEGMENTS: segments a delta update left out after the first.
    pub skipped: u64,
    /// EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES.
    pub can_block_reload: bool,
    /// EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL: delta updates are offered.
    pub can_skip_until: Option<Duration>,
    /// EXT-X-SERVER-CONTROL:PART-HOLD-BACK.
    pub part_hold_back: Option<Duration>,
    /// EXT-X-PART-INF:PART-TARGET.
    pub part_target: Option<Duration>,
    /// Media Segments listed (complete ones, with EXTINF), skipped ones not counted.
    pub segments: u64,
    /// Partial Segments in listing order.
    pub parts: Vec<ListedPart>,
    /// EXT-X-PRELOAD-HINT:TYPE=PART URI, as a range of the text.
    pub preload_hint: Option<Range<usize>>,
    /// EXT-X-ENDLIST.
    pub ended: bool,
}

impl LlPlaylist {
    /// A part of the text: a URI range of this playlist.
    pub fn text_of(&self, range: &Range<usize>) -> &str {
        self.text.get(range.clone()).unwrap_or_default()
    }

    /// The Media Sequence Number of the last complete segment listed.
    pub fn last_msn(&self) -> Option<u64> {
        (self.media_sequence + self.skipped + self.segments).checked_sub(1)
    }

    /// The last Partial Segment listed.
    pub fn last_part(&self) -> Option<&ListedPart> {
        self.parts.last()
    }

    /// The Partial Segment a player asks for next with `_HLS_msn` and `_HLS_part`: the one
    /// after the last listed. When that is the last part of a complete segment, Part Index 0
    /// of the next segment (as hls.js asks: a server reads an index past a segment's last
    /// part that way too, RFC 8216bis §6.2.5.2). Without parts, the first part of the
    /// segment after the last. `None` for an empty playlist.
    pub fn next_part(&self) -> Option<PartId> {
        let complete = self.last_msn();
        match self.last_part() {
            Some(last) if complete.is_some_and(|m| last.id.msn <= m) => Some(PartId {
                msn: last.id.msn + 1,
                index: 0,
            }),
            Some(last) => Some(PartId {
                msn: last.id.msn,
                index: last.id.index + 1,
            }),
            None => complete.map(|m| PartId {
                msn: m + 1,
                index: 0,
            }),
        }
    }

    /// Reads `body` into this playlist, replacing what it held. `body` gets the previous
    /// text's buffer back (emptied), so a viewer reloading in a loop allocates nothing.
    pub fn parse(&mut self, body: &mut Vec<u8>) -> Result<(), LlPlaylistError> {
        let mut previous = std::mem::take(&mut self.text).into_bytes();
        previous.clear();
        let bytes = std::mem::replace(body, previous);
        let mut parts = std::mem::take(&mut self.parts);
        parts.clear();
        *self = LlPlaylist {
            parts,
            ..LlPlaylist::default()
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                // Kept for the next parse; an empty buffer is valid UTF-8.
                let mut bytes = e.into_bytes();
                bytes.clear();
                self.text = String::from_utf8(bytes).unwrap_or_default();
                return Err(LlPlaylistError::NotText);
            }
        };
        let result = self.read_text(&text);
        self.text = text;
        if result.is_err() {
            self.parts.clear();
        }
        result
    }

    fn read_text(&mut self, text: &str) -> Result<(), LlPlaylistError> {
        let base = text.as_ptr() as usize;
        let range = |s: &str| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim_end() == "#EXTM3U" => {}
            _ => return Err(LlPlaylistError::NotAPlaylist),
        }
        let mut map: Option<Range<usize>> = None;
        // Parts listed so far of the segment being read.
        let mut index = 0u64;
        let mut expect_uri = false;
        for (n, line) in lines {
            let line = line.trim();
            let line_no = n + 1;
            let bad = |tag: &'static str, value: &str| LlPlaylistError::BadValue {
                line: line_no,
                tag,
                value: value.to_owned(),
            };
            if line.is_empty() {
                continue;
            }
            if !line.starts_with('#') {
                if expect_uri {
                    self.segments += 1;
                    index = 0;
                    expect_uri = false;
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                let secs = v
                    .parse::<u64>()
                    .map_err(|_| bad("EXT-X-TARGETDURATION", v))?;
                self.target_duration = Some(Duration::from_secs(secs));
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                self.media_sequence = v.parse().map_err(|_| bad("EXT-X-MEDIA-SEQUENCE", v))?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                const TAG: &str = "EXT-X-SERVER-CONTROL";
                for (name, value) in attributes(v) {
                    match name {
                        "CAN-BLOCK-RELOAD" => self.can_block_reload = value == "YES",
                        "CAN-SKIP-UNTIL" => {
                            self.can_skip_until = Some(seconds(value).ok_or(bad(TAG, value))?);
                        }
                        "PART-HOLD-BACK" => {
                            self.part_hold_back = Some(seconds(value).ok_or(bad(TAG, value))?);
                        }
                        _ => {}
                    }
                }
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
                for (name, value) in attributes(v) {
                    if name == "PART-TARGET" {
                        let target = seconds(value).ok_or(bad("EXT-X-PART-INF", value))?;
                        self.part_target = Some(target);
                    }
                }
            } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
                for (name, value) in attributes(v) {
                    if name == "SKIPPED-SEGMENTS" {
                        self.skipped = value.parse().map_err(|_| bad("EXT-X-SKIP", value))?;
                    }
                }
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                let uri = attributes(v).find(|(name, _)| *name == "URI");
                let (_, uri) = uri.ok_or(LlPlaylistError::NoUri {
                    line: line_no,
                    tag: "EXT-X-MAP",
                })?;
                map = Some(range(uri));
            } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
                const TAG: &str = "EXT-X-PART";
                let mut uri = None;
                let mut duration = None;
                let mut independent = false;
                for (name, value) in attributes(v) {
                    match name {
                        "URI" => uri = Some(range(value)),
                        "DURATION" => duration = Some(seconds(value).ok_or(bad(TAG, value))?),
                        "INDEPENDENT" => independent = value == "YES",
                        _ => {}
                    }
                }
                let uri = uri.ok_or(LlPlaylistError::NoUri {
                    line: line_no,
                    tag: TAG,
                })?;
                if self.parts.len() == MAX_PARTS {
                    return Err(LlPlaylistError::TooManyParts);
                }
                self.parts.push(ListedPart {
                    id: PartId {
                        msn: self.media_sequence + self.skipped + self.segments,
                        index,
                    },
                    uri,
                    duration: duration.ok_or(bad(TAG, "(no DURATION)"))?,
                    independent,
                    map: map.clone(),
                });
                index += 1;
            } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                let mut is_part = false;
                let mut uri = None;
                for (name, value) in attributes(v) {
                    match name {
                        "TYPE" => is_part = value == "PART",
                        "URI" => uri = Some(range(value)),
                        _ => {}
                    }
                }
                if is_part {
                    self.preload_hint = Some(uri.ok_or(LlPlaylistError::NoUri {
                        line: line_no,
                        tag: "EXT-X-PRELOAD-HINT",
                    })?);
                }
            } else if line.starts_with("#EXTINF:") {
                expect_uri = true;
            } else if line == "#EXT-X-ENDLIST" {
                self.ended = true;
            }
        }
        Ok(())
    }
}

/// The `NAME=value` pairs of an attribute list, quoted-string values without their quotes
/// (a quoted string may hold commas). Malformed pairs end the list.
fn attributes(list: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = list;
    std::iter::from_fn(move || {
        let (name, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            let tail = &quoted[end + 1..];
            (&quoted[..end], tail.strip_prefix(',').unwrap_or(tail))
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        rest = next;
        Some((name.trim(), value))
    })
}

/// A decimal-floating-point number of seconds (RFC 8216bis §4.2).
fn seconds(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Duration::try_from_secs_f64(value.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the server writes (see the server's playlist tests), as a viewer sees it after
    /// two complete segments and two parts of the third.
    const FULL: &str = "#EXTM3U\n\
        #EXT-X-VERSION:6\n\
        #EXT-X-TARGETDURATION:2\n\
        #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=12.000\n\
        #EXT-X-PART-INF:PART-TARGET=0.200\n\
        #EXT-X-MEDIA-SEQUENCE:5\n\
        #EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MAP:URI=\"a-init-0.mp4\"\n\
        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n\
        #EXTINF:2.000,\n\
        a-5.m4s\n\
        #EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n\
        #EXT-X-PART:DURATION=1.000,URI=\"a-6.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=1.000,URI=\"a-6.1.m4s\"\n\
        #EXTINF:2.000,\n\
        a-6.m4s\n\
        #EXT-X-DISCONTINUITY\n\
        #EXT-X-MAP:URI=\"a-init-1.mp4\"\n\
        #EXT-X-PART:DURATION=0.200,URI=\"a-7.0.m4s\",INDEPENDENT=YES\n\
        #EXT-X-PART:DURATION=0.233,URI=\"a-7.1.m4s\"\n\
        #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"a-7.2.m4s\"\n";

    fn parse(text: &str) -> Result<LlPlaylist, LlPlaylistError> {
        let mut playlist = LlPlaylist::default();
        playlist.parse(&mut text.as_bytes().to_vec())?;
        Ok(playlist)
    }

    fn uris(p: &LlPlaylist) -> Vec<(String, &str, Option<&str>)> {
        p.parts
            .iter()
            .map(|part| {
                (
                    part.id.to_string(),
                    p.text_of(&part.uri),
                    part.map.as_ref().map(|m| p.text_of(m)),
                )
            })
            .collect()
    }

    #[test]
    fn reads_parts_in_their_places_with_their_maps() {
        let p = parse(FULL).expect("valid");
        assert_eq!(p.target_duration, Some(Duration::from_secs(2)));
        assert_eq!(p.media_sequence, 5);
        assert!(p.can_block_reload);
        assert_eq!(p.can_skip_until, Some(Duration::from_secs(12)));
        assert_eq!(p.part_hold_back, Some(Duration::from_millis(600)));
        assert_eq!(p.part_target, Some(Duration::from_millis(200)));
        assert_eq!((p.segments, p.skipped, p.last_msn()), (2, 0, Some(6)));
        assert_eq!(
            uris(&p),
            [
                ("6.0".to_owned(), "a-6.0.m4s", Some("a-init-0.mp4")),
                ("6.1".to_owned(), "a-6.1.m4s", Some("a-init-0.mp4")),
                ("7.0".to_owned(), "a-7.0.m4s", Some("a-init-1.mp4")),
                ("7.1".to_owned(), "a-7.1.m4s", Some("a-init-1.mp4")),
            ]
        );
        assert_eq!(
            p.parts
                .iter()
                .map(|x| (x.duration.as_millis(), x.independent))
                .collect::<Vec<_>>(),
            [(1000, true), (1000, false), (200, true), (233, false)]
        );
        assert_eq!(
            p.preload_hint.as_ref().map(|h| p.text_of(h)),
            Some("a-7.2.m4s")
        );
        assert!(!p.ended);
        // The open segment's next part.
        assert_eq!(p.next_part(), Some(PartId { msn: 7, index: 2 }));
    }

    #[test]
    fn after_a_complete_segment_the_next_part_opens_the_next_segment() {
        let text = FULL.split("#EXT-X-DISCONTINUITY").next().expect("head");
        let p = parse(text).expect("valid");
        assert_eq!(
            p.last_part().map(|x| x.id),
            Some(PartId { msn: 6, index: 1 })
        );
        assert_eq!(p.next_part(), Some(PartId { msn: 7, index: 0 }));
        assert_eq!(p.preload_hint, None);
        // No parts: the segment after the last.
        let p = parse("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2,\nx.m4s\n").expect("valid");
        assert_eq!(p.next_part(), Some(PartId { msn: 4, index: 0 }));
        assert_eq!(parse("#EXTM3U\n").expect("valid").next_part(), None);
    }

    #[test]
    fn a_delta_update_counts_from_after_the_skipped_segments() {
        let delta = "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n\
            #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=12.000\n\
            #EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-SKIP:SKIPPED-SEGMENTS=3\n\
            #EXT-X-MAP:URI=\"b-init-0.mp4\"\n#EXTINF:2.000,\nb-13.m4s\n\
            #EXT-X-PART:DURATION=0.2,URI=\"b-14.0.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"b-14.1.m4s\"\n#EXT-X-ENDLIST\n";
        let p = parse(delta).expect("valid");
        assert_eq!((p.skipped, p.segments, p.last_msn()), (3, 1, Some(13)));
        assert_eq!(
            uris(&p),
            [("14.0".to_owned(), "b-14.0.m4s", Some("b-init-0.mp4"))]
        );
        assert!(p.ended);
    }

    #[test]
    fn reuses_the_callers_buffers() {
        let mut p = LlPlaylist::default();
        let mut body = FULL.as_bytes().to_vec();
        p.parse(&mut body).expect("valid");
        assert!(body.is_empty());
        body.extend_from_slice(b"#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:9\n");
        p.parse(&mut body).expect("valid");
        assert_eq!(
            body.capacity(),
            FULL.len(),
            "the first text's buffer came back"
        );
        assert_eq!((p.media_sequence, p.parts.len()), (9, 0));
    }

    #[test]
    fn attribute_lists_with_quoted_commas() {
        let pairs: Vec<(&str, &str)> =
            attributes("TYPE=PART,URI=\"a,b.m4s\",BYTERANGE-START=0,X=\"\"").collect();
        assert_eq!(
            pairs,
            [
                ("TYPE", "PART"),
                ("URI", "a,b.m4s"),
                ("BYTERANGE-START", "0"),
                ("X", "")
            ]
        );
        assert_eq!(attributes("URI=\"open").count(), 0);
    }

    #[test]
    fn refuses_what_is_not_a_low_latency_playlist() {
        assert_eq!(parse("<html>"), Err(LlPlaylistError::NotAPlaylist));
        let mut p = LlPlaylist::default();
        assert_eq!(
            p.parse(&mut vec![0xff, 0xfe]),
            Err(LlPlaylistError::NotText)
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-PART:DURATION=0.2\n"),
            Err(LlPlaylistError::NoUri {
                line: 2,
                tag: "EXT-X-PART"
            })
        );
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-PART:DURATION=-1,URI=\"x\"\n"),
            Err(LlPlaylistError::BadValue {
                line: 2,
                tag: "EXT-X-PART",
                value: "-1".to_owned()
            })
        );
        assert!(matches!(
            parse("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:x\n"),
            Err(LlPlaylistError::BadValue { line: 2, .. })
        ));
        let many = format!(
            "#EXTM3U\n{}",
            "#EXT-X-PART:DURATION=0.2,URI=\"p\"\n".repeat(MAX_PARTS + 1)
        );
        assert_eq!(parse(&many), Err(LlPlaylistError::TooManyParts));
    }
}
