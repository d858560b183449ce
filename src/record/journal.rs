//! A recording's journal: the append-only record of what its media file holds, one JSON
//! object per line, and the reading of it back (after a clean close, or after a crash that
//! may have cut the last line or the media file's tail).
//!
//! ```text
//! {"recording":{"id":"k_20261205T120000Z","app":"live","stream":"k",...}}
//! {"init":{"at":0,"len":1017}}
//! {"segment":{"discontinuity":false}}
//! {"part":{"at":1017,"len":40213,"duration":30000}}       duration in 90 kHz ticks
//! {"segment_end":{"duration":180000}}
//! ...
//! {"end":{"at_ms":1764936000000,"state":"complete"}}
//! ```
//!
//! A part line is written after the part's bytes, so a journal never names bytes that were
//! not handed to the file before it; a reader still checks every part against the media
//! file's length and stops at the first line that does not parse or does not follow on,
//! keeping everything before it. Parts after the last `segment_end` form a last, short
//! segment when the recording is closed after a crash.

use serde::{Deserialize, Serialize};

use crate::media::Duration90k;

/// The recording's description: its first line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub id: String,
    pub app: String,
    /// The name the stream is served under (the key, or its playback id).
    pub stream: String,
    /// Unix milliseconds of the first recorded media.
    pub started_ms: u64,
    /// RFC 6381 codec strings of the recorded tracks.
    pub codecs: Vec<String>,
    /// The tracks as the stats API describes them.
    pub tracks: serde_json::Value,
}

/// Where a recording stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Being written.
    Recording,
    /// Closed when its publish ended (and no publish continued it within `record.gap`).
    Complete,
    /// The server stopped without closing it (a crash, `kill -9`, power loss); closed at
    /// the next start, up to its last complete fragment.
    Interrupted,
    /// Closed early because it could not be written (disk full, a write error, a disk that
    /// did not keep up); it holds what was written before.
    Incomplete,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Recording => "recording",
            State::Complete => "complete",
            State::Interrupted => "interrupted",
            State::Incomplete => "incomplete",
        }
    }
}

/// The last line of a closed recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// Unix milliseconds of the close.
    pub at_ms: u64,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the recording holds: bytes of its media file and 90 kHz ticks of media (so a
    /// closed recording is listed at start from its first and last lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
}

/// One line of the journal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Recording(Head),
    /// The init section (ftyp+moov) at these bytes of the media file.
    Init {
        at: u64,
        len: u64,
    },
    /// A segment starts; its parts follow.
    Segment {
        discontinuity: bool,
    },
    /// A fragment (moof+mdat) of the open segment, `duration` 90 kHz ticks long.
    Part {
        at: u64,
        len: u64,
        duration: u64,
    },
    /// The open segment closed; `duration` is its EXTINF in 90 kHz ticks, `target` the
    /// stream's EXT-X-TARGETDURATION (fixed for the stream).
    SegmentEnd {
        duration: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<u32>,
    },
    End(End),
}

impl Line {
    /// The line as written to the journal, with its line feed.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string(self).expect("journal lines serialize");
        text.push('\n');
        text
    }
}

/// Bytes of the media file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSpan {
    pub at: u64,
    pub len: u64,
}

impl ByteSpan {
    pub fn end(&self) -> u64 {
        self.at + self.len
    }
}

/// A segment of the recording: its bytes in the media file (its parts, one after the
/// other), its duration, and whether the media timeline or publisher changed before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub span: ByteSpan,
    pub duration: Duration90k,
    pub discontinuity: bool,
}

/// A segment whose end is not in the journal yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OpenSegment {
    discontinuity: bool,
    span: Option<ByteSpan>,
    duration: u64,
}

/// A journal read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Journal {
    pub head: Head,
    pub init: Option<ByteSpan>,
    pub segments: Vec<Segment>,
    /// The stream's target duration, as the segment ends give it (0: none given).
    pub target: u32,
    open: Option<OpenSegment>,
    pub end: Option<End>,
    /// The lines read (the rest of the text, if any, was cut or did not follow on).
    pub lines: usize,
    /// Where the read stopped early, and why; `None` when every line was taken.
    pub stopped: Option<&'static str>,
}

impl Journal {
    /// Reads `text`, a recording's journal, against `media_len`, the length of its media
    /// file: everything up to the first line that does not parse, does not follow on from
    /// the one before, or names bytes beyond the file. `None` without a first line.
    pub fn read(text: &[u8], media_len: u64) -> Option<Journal> {
        let mut lines = text.split(|&b| b == b'\n');
        let head = match serde_json::from_slice::<Line>(lines.next()?).ok()? {
            Line::Recording(head) => head,
            _ => return None,
        };
        let mut journal = Journal {
            head,
            init: None,
            segments: Vec::new(),
            target: 0,
            open: None,
            end: None,
            lines: 1,
            stopped: None,
        };
        // A text ending with a line feed ends with an empty piece, not a torn line.
        let complete = text.ends_with(b"\n");
        let pieces: Vec<&[u8]> = lines.collect();
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.into_iter().enumerate() {
            if i == last && complete && piece.is_empty() {
                break;
            }
            let why = match serde_json::from_slice::<Line>(piece) {
                Ok(line) => journal.take(line, media_len).err(),
                Err(_) if i == last => Some("the last line is cut short"),
                Err(_) => Some("a line does not parse"),
            };
            if let Some(why) = why {
                journal.stopped = Some(why);
                break;
            }
            journal.lines += 1;
        }
        Some(journal)
    }

    fn take(&mut self, line: Line, media_len: u64) -> Result<(), &'static str> {
        if self.end.is_some() {
            return Err("lines after the end");
        }
        match line {
            Line::Recording(_) => return Err("a second recording line"),
            Line::Init { at, len } => {
                if self.init.is_some() || at != 0 || len > media_len {
                    return Err("an init section that is not the file's start");
                }
                self.init = Some(ByteSpan { at, len });
            }
            Line::Segment { discontinuity } => {
                if self.init.is_none() {
                    return Err("a segment before the init section");
                }
                if self.open.is_some_and(|o| o.span.is_some()) {
                    return Err("a segment starts before the last one ended");
                }
                self.open = Some(OpenSegment {
                    discontinuity,
                    span: None,
                    duration: 0,
                });
            }
            Line::Part { at, len, duration } => {
                let follows = self.bytes();
                let open = self.open.as_mut().ok_or("a part outside a segment")?;
                if at != follows || at.saturating_add(len) > media_len {
                    return Err("a part that does not follow on in the media file");
                }
                open.span = Some(match open.span {
                    Some(s) => ByteSpan {
                        at: s.at,
                        len: s.len.saturating_add(len),
                    },
                    None => ByteSpan { at, len },
                });
                open.duration = open.duration.saturating_add(duration);
            }
            Line::SegmentEnd { duration, target } => {
                self.target = self.target.max(target.unwrap_or(0));
                let open = self.open.take().ok_or("a segment end outside a segment")?;
                if let Some(span) = open.span {
                    self.segments.push(Segment {
                        span,
                        duration: Duration90k(duration),
                        discontinuity: open.discontinuity,
                    });
                }
            }
            Line::End(end) => self.end = Some(end),
        }
        Ok(())
    }

    /// Bytes of the media file the journal accounts for: the init section and every part.
    pub fn bytes(&self) -> u64 {
        let parts = self
            .open
            .and_then(|o| o.span)
            .or(self.segments.last().map(|s| s.span));
        parts.or(self.init).map_or(0, |s| s.end())
    }

    /// The recording's media duration (listed segments only).
    pub fn duration(&self) -> Duration90k {
        Duration90k(
            self.segments
                .iter()
                .fold(0u64, |sum, s| sum.saturating_add(s.duration.ticks())),
        )
    }

    /// Closes a journal whose recording ended without its segment end: the parts of the
    /// open segment become its last segment. Returns the lines to append to the journal
    /// file so that it reads back the same.
    pub fn close_open_segment(&mut self) -> Option<Line> {
        let open = self.open.take()?;
        let span = open.span?;
        self.segments.push(Segment {
            span,
            duration: Duration90k(open.duration),
            discontinuity: open.discontinuity,
        });
        Some(Line::SegmentEnd {
            duration: open.duration,
            target: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> Head {
        Head {
            id: "k_20261205T120000Z".into(),
            app: "live".into(),
            stream: "k".into(),
            started_ms: 1,
            codecs: vec!["avc1.64001f".into()],
            tracks: serde_json::json!([]),
        }
    }

    fn sample() -> String {
        [
            Line::Recording(head()),
            Line::Init { at: 0, len: 100 },
            Line::Segment {
                discontinuity: false,
            },
            Line::Part {
                at: 100,
                len: 50,
                duration: 3000,
            },
            Line::Part {
                at: 150,
                len: 50,
                duration: 3000,
            },
            Line::SegmentEnd {
                duration: 6000,
                target: None,
            },
            Line::Segment {
                discontinuity: true,
            },
            Line::Part {
                at: 200,
                len: 70,
                duration: 4000,
            },
        ]
        .iter()
        .map(Line::to_text)
        .collect()
    }

    #[test]
    fn reads_back_what_was_written() {
        let j = Journal::read(sample().as_bytes(), 270).unwrap();
        assert_eq!(j.head, head());
        assert_eq!(j.segments.len(), 1);
        assert_eq!(j.segments[0].span, ByteSpan { at: 100, len: 100 });
        assert_eq!(j.bytes(), 270);
        assert_eq!(j.stopped, None);
        assert_eq!(j.lines, 8);
    }

    #[test]
    fn a_crash_keeps_every_complete_part_and_closes_the_open_segment() {
        let mut j = Journal::read(sample().as_bytes(), 270).unwrap();
        assert_eq!(
            j.close_open_segment(),
            Some(Line::SegmentEnd {
                duration: 4000,
                target: None,
            })
        );
        assert_eq!(j.segments.len(), 2);
        assert!(j.segments[1].discontinuity);
        assert_eq!(j.duration(), Duration90k(10_000));
    }

    #[test]
    fn a_part_beyond_the_media_file_and_a_torn_line_stop_the_read() {
        let j = Journal::read(sample().as_bytes(), 260).unwrap();
        assert_eq!(j.bytes(), 200);
        assert!(j.stopped.is_some());
        let text = sample();
        let j = Journal::read(&text.as_bytes()[..text.len() - 5], 270).unwrap();
        assert_eq!(j.stopped, Some("the last line is cut short"));
        assert_eq!(j.bytes(), 200);
    }

    #[test]
    fn every_cut_of_the_journal_reads_without_panicking() {
        let text = sample();
        for cut in 0..text.len() {
            if let Some(j) = Journal::read(&text.as_bytes()[..cut], 270) {
                assert!(j.bytes() <= 270);
                let mut j = j;
                j.close_open_segment();
                assert!(j.segments.iter().all(|s| s.span.end() <= 270));
            }
        }
    }
}
