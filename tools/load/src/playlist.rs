//! What a viewer reads in a live media playlist: the target duration (how often to poll),
//! the media sequence number of the first segment, the segment URIs, and whether the
//! playlist has ended.
//!
//! Spec: RFC 8216 §4.3.1.1 (EXTM3U), §4.3.3.1 (EXT-X-TARGETDURATION), §4.3.3.2
//! (EXT-X-MEDIA-SEQUENCE), §4.3.3.4 (EXT-X-ENDLIST), §6.3.5 (segment sequence numbers).

use thiserror::Error;

/// Most segments read from one playlist: a live window holds a handful; the bound keeps a
/// broken server from growing a viewer's memory.
pub const MAX_SEGMENTS: usize = 10_000;

/// Why a playlist could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlaylistError {
    #[error("playlist does not start with #EXTM3U")]
    NotAPlaylist,
    #[error("playlist line {line}: {tag} value {value:?} is not a whole number")]
    BadNumber {
        line: usize,
        tag: &'static str,
        value: String,
    },
    #[error("playlist lists more than {MAX_SEGMENTS} segments")]
    TooManySegments,
}

/// The parts of a media playlist a viewer acts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LivePlaylist {
    /// EXT-X-TARGETDURATION, in seconds.
    pub target_duration: Option<u64>,
    /// EXT-X-MEDIA-SEQUENCE: the sequence number of the first segment (0 when absent).
    pub media_sequence: u64,
    /// Segment URIs in order; the one at index `i` has sequence number
    /// `media_sequence + i`.
    pub segments: Vec<String>,
    /// EXT-X-ENDLIST: no segment will be added.
    pub ended: bool,
}

impl LivePlaylist {
    /// The sequence number of the last segment listed.
    pub fn last_sequence(&self) -> Option<u64> {
        let count = self.segments.len() as u64;
        count.checked_sub(1).map(|last| self.media_sequence + last)
    }

    /// Segments with their sequence numbers.
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &str)> {
        (self.media_sequence..).zip(self.segments.iter().map(String::as_str))
    }
}

/// Reads a media playlist. Tags a viewer does not act on are skipped.
pub fn parse(text: &str) -> Result<LivePlaylist, PlaylistError> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, first)) if first.trim_end() == "#EXTM3U" => {}
        _ => return Err(PlaylistError::NotAPlaylist),
    }
    let mut playlist = LivePlaylist::default();
    for (index, line) in lines {
        let line = line.trim();
        let number = |tag: &'static str, value: &str| {
            value.parse::<u64>().map_err(|_| PlaylistError::BadNumber {
                line: index + 1,
                tag,
                value: value.to_owned(),
            })
        };
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            playlist.target_duration = Some(number("EXT-X-TARGETDURATION", v)?);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = number("EXT-X-MEDIA-SEQUENCE", v)?;
        } else if line == "#EXT-X-ENDLIST" {
            playlist.ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            if playlist.segments.len() == MAX_SEGMENTS {
                return Err(PlaylistError::TooManySegments);
            }
            playlist.segments.push(line.to_owned());
        }
    }
    Ok(playlist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_live_playlist() {
        let text = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
                    #EXT-X-MEDIA-SEQUENCE:17\n#EXTINF:2.000,\na1-17.ts\n\
                    #EXT-X-DISCONTINUITY\n#EXTINF:1.967,\na1-18.ts\n";
        let playlist = parse(text).expect("valid");
        assert_eq!(
            playlist,
            LivePlaylist {
                target_duration: Some(2),
                media_sequence: 17,
                segments: vec!["a1-17.ts".to_owned(), "a1-18.ts".to_owned()],
                ended: false,
            }
        );
        assert_eq!(playlist.last_sequence(), Some(18));
        let numbered: Vec<(u64, &str)> = playlist.numbered().collect();
        assert_eq!(numbered, [(17, "a1-17.ts"), (18, "a1-18.ts")]);

        let ended = parse("#EXTM3U\r\n#EXTINF:2,\r\nx.ts\r\n#EXT-X-ENDLIST\r\n").expect("valid");
        assert!(ended.ended);
        assert_eq!(ended.segments, ["x.ts"]);
        assert_eq!(ended.media_sequence, 0);
        assert_eq!(parse("#EXTM3U\n").expect("valid").last_sequence(), None);
    }

    #[test]
    fn refuses_what_is_not_a_playlist() {
        assert_eq!(parse(""), Err(PlaylistError::NotAPlaylist));
        assert_eq!(parse("<html>"), Err(PlaylistError::NotAPlaylist));
        assert_eq!(
            parse("#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:-1\n"),
            Err(PlaylistError::BadNumber {
                line: 2,
                tag: "EXT-X-MEDIA-SEQUENCE",
                value: "-1".to_owned()
            })
        );
        let many = format!("#EXTM3U\n{}", "s.ts\n".repeat(MAX_SEGMENTS + 1));
        assert_eq!(parse(&many), Err(PlaylistError::TooManySegments));
    }
}
