//! A complete CMAF HLS presentation from the CMAF output's events: every segment kept, one
//! VOD playlist at the end. The offline `remux --format cmaf` writes it.
//!
//! Sans-IO: the files to write come back as [`DiskAction`]s.
//!
//! Spec: RFC 8216 §4.3.3.5 (EXT-X-PLAYLIST-TYPE:VOD), §4.3.2.5 (EXT-X-MAP), §4.3.3.4
//! (EXT-X-ENDLIST); RFC 8216bis §3.1.2 (fMP4 segments).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::hls::ll_stream::CmafEvent;
use crate::hls::playlist::{self, MediaPlaylist, MediaSegment, PlaylistType};
use crate::hls::stream::{DiskAction, PLAYLIST_NAME, name_prefix};

/// The presentation being written.
pub struct CmafVod {
    dir: PathBuf,
    prefix: String,
    playlist: MediaPlaylist,
    /// The initialization section's name new segments use, and how many were written.
    map: Option<Arc<str>>,
    inits: u64,
    /// The open segment: whether it starts a discontinuity or on a keyframe, and its parts.
    open: Option<(bool, bool, Vec<Bytes>)>,
}

impl CmafVod {
    /// A presentation written into `dir` (relative to where the actions are carried out).
    pub fn new(dir: PathBuf, wall: SystemTime) -> CmafVod {
        CmafVod {
            dir,
            prefix: name_prefix(wall),
            playlist: MediaPlaylist::new(0, Some(PlaylistType::Vod)),
            map: None,
            inits: 0,
            open: None,
        }
    }

    /// Takes one event; the files it completes go to `actions`.
    pub fn push(&mut self, event: CmafEvent, actions: &mut Vec<DiskAction>) {
        match event {
            CmafEvent::Init(data) => {
                let name = format!("{}-init-{}.mp4", self.prefix, self.inits);
                self.inits += 1;
                actions.push(DiskAction::WritePieces {
                    path: self.dir.join(&name),
                    pieces: vec![data],
                });
                self.map = Some(name.into());
            }
            CmafEvent::SegmentStart {
                discontinuity,
                independent,
            } => self.open = Some((discontinuity, independent, Vec::new())),
            CmafEvent::Part { data, .. } => {
                if let Some((_, _, parts)) = &mut self.open {
                    parts.push(data);
                }
            }
            CmafEvent::SegmentEnd {
                duration,
                target_duration,
            } => {
                let Some((discontinuity, independent, pieces)) = self.open.take() else {
                    return;
                };
                let sequence = self.playlist.segments.len();
                let uri = format!("{}-{sequence}.m4s", self.prefix);
                actions.push(DiskAction::WritePieces {
                    path: self.dir.join(&uri),
                    pieces,
                });
                self.playlist.target_duration = self.playlist.target_duration.max(target_duration);
                self.playlist.segments.push_back(MediaSegment {
                    uri,
                    duration,
                    // Nothing precedes the first segment.
                    discontinuity: discontinuity && sequence > 0,
                    independent,
                    program_date_time: None,
                    map: self.map.clone(),
                    parts: Vec::new(),
                });
            }
        }
    }

    /// Segments written so far.
    pub fn segments(&self) -> usize {
        self.playlist.segments.len()
    }

    /// The end: the VOD playlist (EXT-X-ENDLIST) goes to `actions`.
    pub fn finish(mut self, actions: &mut Vec<DiskAction>) {
        self.playlist.end_list = true;
        actions.push(DiskAction::WritePlaylist {
            path: self.dir.join(PLAYLIST_NAME),
            text: Bytes::from(playlist::render(&self.playlist)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Duration90k;

    #[test]
    fn segments_join_their_parts_and_the_playlist_maps_each_to_its_init() {
        let mut vod = CmafVod::new(PathBuf::from("out"), SystemTime::UNIX_EPOCH);
        let mut actions = Vec::new();
        let part = |b: &'static [u8]| CmafEvent::Part {
            data: Bytes::from_static(b),
            duration: Duration90k(18_000),
            independent: false,
        };
        let start = |discontinuity| CmafEvent::SegmentStart {
            discontinuity,
            independent: true,
        };
        let end = CmafEvent::SegmentEnd {
            duration: Duration90k(36_000),
            target_duration: 1,
        };
        for e in [
            CmafEvent::Init(Bytes::from_static(b"i0")),
            start(false),
            part(b"a"),
            part(b"b"),
            end.clone(),
            CmafEvent::Init(Bytes::from_static(b"i1")),
            start(true),
            part(b"c"),
            end,
        ] {
            vod.push(e, &mut actions);
        }
        assert_eq!(vod.segments(), 2);
        vod.finish(&mut actions);
        let written: Vec<_> = actions
            .iter()
            .map(|a| match a {
                DiskAction::WritePieces { path, pieces } => {
                    (path.display().to_string(), pieces.concat())
                }
                DiskAction::WritePlaylist { path, text } => {
                    (path.display().to_string(), text.to_vec())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(written[0], ("out/0-init-0.mp4".into(), b"i0".to_vec()));
        assert_eq!(written[1], ("out/0-0.m4s".into(), b"ab".to_vec()));
        assert_eq!(written[2], ("out/0-init-1.mp4".into(), b"i1".to_vec()));
        assert_eq!(written[3], ("out/0-1.m4s".into(), b"c".to_vec()));
        let text = String::from_utf8(written[4].1.clone()).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:6\n\
             #EXT-X-TARGETDURATION:1\n\
             #EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-PLAYLIST-TYPE:VOD\n\
             #EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"0-init-0.mp4\"\n\
             #EXTINF:0.400,\n\
             0-0.m4s\n\
             #EXT-X-DISCONTINUITY\n\
             #EXT-X-MAP:URI=\"0-init-1.mp4\"\n\
             #EXTINF:0.400,\n\
             0-1.m4s\n\
             #EXT-X-ENDLIST\n"
        );
    }
}
