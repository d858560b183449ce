//! A recording's media playlist: its segments as byte ranges of its one media file, after
//! the init section's range (EXT-X-MAP with BYTERANGE). A closed recording's playlist is a
//! VOD playlist (EXT-X-PLAYLIST-TYPE:VOD, EXT-X-ENDLIST); one still being written is an
//! EVENT playlist that only grows.
//!
//! Spec: RFC 8216 §4.3.2.1 (EXTINF), §4.3.2.2 (EXT-X-BYTERANGE, version 4), §4.3.2.3
//! (EXT-X-DISCONTINUITY), §4.3.2.5 (EXT-X-MAP with BYTERANGE, version 6), §4.3.3.1
//! (EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer is at most it),
//! §4.3.3.4 (EXT-X-ENDLIST), §4.3.3.5 (EXT-X-PLAYLIST-TYPE).

use std::fmt::Write;

use super::journal::{Journal, State};

/// The name of a recording's media file, as its playlist refers to it.
pub const MEDIA_FILE: &str = "media.mp4";

/// Renders the playlist of a recording from its journal; `state` says whether it is still
/// being written. `None` before its init section is recorded.
pub fn render(journal: &Journal, state: State) -> Option<String> {
    let init = journal.init?;
    let target = journal
        .segments
        .iter()
        .map(|s| s.duration.ticks().saturating_add(45_000) / 90_000)
        .max()
        .unwrap_or(1)
        .max(u64::from(journal.target))
        .max(1);
    let mut out = String::with_capacity(200 + 80 * journal.segments.len());
    out.push_str("#EXTM3U\n#EXT-X-VERSION:6\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    let ended = state != State::Recording;
    out.push_str(if ended {
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
    } else {
        "#EXT-X-PLAYLIST-TYPE:EVENT\n"
    });
    if matches!(state, State::Interrupted | State::Incomplete) {
        let _ = writeln!(
            out,
            "# rtmp-server: the recording is {}: it ends at its last complete fragment",
            state.as_str()
        );
    }
    let _ = writeln!(
        out,
        "#EXT-X-MAP:URI=\"{MEDIA_FILE}\",BYTERANGE=\"{}@{}\"",
        init.len, init.at
    );
    for s in &journal.segments {
        if s.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let ticks = s.duration.ticks();
        let _ = writeln!(
            out,
            "#EXTINF:{}.{:03},\n#EXT-X-BYTERANGE:{}@{}\n{MEDIA_FILE}",
            ticks / 90_000,
            (ticks % 90_000 + 45) / 90,
            s.span.len,
            s.span.at
        );
    }
    if ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::journal::{Head, Line};

    fn journal() -> Journal {
        let lines = [
            Line::Recording(Head {
                id: "a".into(),
                app: "live".into(),
                stream: "a".into(),
                started_ms: 0,
                codecs: vec![],
                tracks: serde_json::json!([]),
            }),
            Line::Init { at: 0, len: 700 },
            Line::Segment {
                discontinuity: false,
            },
            Line::Part {
                at: 700,
                len: 300,
                duration: 180_000,
            },
            Line::SegmentEnd {
                duration: 180_000,
                target: None,
            },
            Line::Segment {
                discontinuity: true,
            },
            Line::Part {
                at: 1000,
                len: 200,
                duration: 150_300,
            },
            Line::SegmentEnd {
                duration: 150_300,
                target: None,
            },
        ];
        let text: String = lines.iter().map(Line::to_text).collect();
        Journal::read(text.as_bytes(), 1200).unwrap()
    }

    #[test]
    fn a_closed_recording_is_a_vod_playlist_of_byte_ranges() {
        assert_eq!(
            render(&journal(), State::Complete).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"media.mp4\",BYTERANGE=\"700@0\"\n\
             #EXTINF:2.000,\n#EXT-X-BYTERANGE:300@700\nmedia.mp4\n\
             #EXT-X-DISCONTINUITY\n#EXTINF:1.670,\n#EXT-X-BYTERANGE:200@1000\nmedia.mp4\n\
             #EXT-X-ENDLIST\n"
        );
    }

    #[test]
    fn a_recording_being_written_is_an_event_playlist_without_an_end() {
        let text = render(&journal(), State::Recording).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(!text.contains("ENDLIST"));
        let text = render(&journal(), State::Interrupted).unwrap();
        assert!(text.contains("interrupted"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    }
}
