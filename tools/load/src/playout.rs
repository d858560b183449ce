//! The endless run of tags one stream publishes: the file, then the file again with its
//! timestamps moved on by one pass, and so on, so that the server sees one continuous stream
//! rather than a restart. Sequence headers go out on the first pass only.

use std::sync::Arc;

use bytes::Bytes;

use crate::media::MediaFile;
use rtmp_server::rtmp::MediaKind;

/// A tag in its place on the stream's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheduled<'a> {
    pub kind: MediaKind,
    /// Milliseconds after the stream's first tag.
    pub media_ms: u64,
    pub body: &'a Bytes,
    /// An AVC or AAC sequence header, not a frame.
    pub config: bool,
}

/// A position in the looped file.
#[derive(Clone, Debug)]
pub struct Playout {
    file: Arc<MediaFile>,
    /// Index of the current tag in [`MediaFile::tags`].
    index: usize,
    /// Passes completed before the current one.
    pass: u64,
}

impl Playout {
    pub fn new(file: Arc<MediaFile>) -> Playout {
        Playout {
            file,
            index: 0,
            pass: 0,
        }
    }

    /// The tag to send next.
    pub fn current(&self) -> Scheduled<'_> {
        let tags = self.file.tags();
        // `index` always names a tag: `advance` wraps it and skips only sequence headers,
        // and a MediaFile holds at least one tag that is not one.
        let tag = &tags[self.index];
        Scheduled {
            kind: tag.kind,
            media_ms: tag.timestamp_ms + self.pass * self.file.duration_ms(),
            body: &tag.body,
            config: tag.config,
        }
    }

    /// Moves to the next tag, into the next pass at the end of the file.
    pub fn advance(&mut self) {
        let tags = self.file.tags();
        loop {
            self.index += 1;
            if self.index == tags.len() {
                self.index = 0;
                self.pass += 1;
            }
            if self.pass == 0 || !tags[self.index].config {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Arc<MediaFile> {
        let mut data = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        let mut previous = 0u32;
        let tags: [(u8, u32, &[u8]); 5] = [
            (9, 0, &[0x17, 0, 0, 0, 0, 1]),
            (9, 0, &[0x17, 1, 0, 0, 0, 0xaa]),
            (8, 0, &[0xaf, 0, 0x11, 0x90]),
            (8, 50, &[0xaf, 1, 0xbb]),
            (9, 100, &[0x27, 1, 0, 0, 0, 0xcc]),
        ];
        for (tag_type, timestamp, body) in tags {
            data.extend_from_slice(&previous.to_be_bytes());
            data.push(tag_type);
            data.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            data.extend_from_slice(&timestamp.to_be_bytes()[1..]);
            data.extend_from_slice(&[0, 0, 0, 0]);
            data.extend_from_slice(body);
            previous = 11 + body.len() as u32;
        }
        Arc::new(MediaFile::parse(Bytes::from(data)).expect("valid"))
    }

    #[test]
    fn loops_with_timestamps_moving_on_and_headers_once() {
        let file = file();
        // Video ends at 100 + 100; audio at 50 + 0.
        assert_eq!(file.duration_ms(), 200);
        let mut playout = Playout::new(file);
        let mut seen = Vec::new();
        for _ in 0..8 {
            let tag = playout.current();
            seen.push((tag.kind, tag.media_ms, tag.body.last().copied()));
            playout.advance();
        }
        use MediaKind::{Audio, Video};
        assert_eq!(
            seen,
            [
                (Video, 0, Some(1)),
                (Video, 0, Some(0xaa)),
                (Audio, 0, Some(0x90)),
                (Audio, 50, Some(0xbb)),
                (Video, 100, Some(0xcc)),
                (Video, 200, Some(0xaa)),
                (Audio, 250, Some(0xbb)),
                (Video, 300, Some(0xcc)),
            ]
        );
    }
}
