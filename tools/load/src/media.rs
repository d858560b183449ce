//! The file every stream publishes, read once: its audio and video tags as slices of one
//! shared buffer, its metadata, and how long one pass of it lasts.

use bytes::Bytes;

use crate::LoadgenError;
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::flv::tag::{AudioBody, AudioMessage, TagType, VideoBody, VideoMessage};
use rtmp_server::rtmp::MediaKind;

/// Shortest span of media a file must cover to be replayed at real time: a file whose tags
/// all sit within this would be looped hundreds of times a second.
pub const MIN_DURATION_MS: u64 = 100;

/// The FLV script tag body that starts with this AMF0 string is the file's metadata: AMF0
/// string marker, 16-bit length 10, "onMetaData". Spec: FLV 10.1 §E.4.4.1.
const ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";

/// One audio or video tag of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaTag {
    pub kind: MediaKind,
    /// Milliseconds after the file's first audio or video tag.
    pub timestamp_ms: u64,
    /// The tag body, a slice of the file.
    pub body: Bytes,
    /// An AVC or AAC sequence header: decoder configuration, sent once per stream.
    pub config: bool,
}

/// An FLV file held in memory, ready to be replayed by any number of streams.
#[derive(Clone, Debug)]
pub struct MediaFile {
    tags: Vec<MediaTag>,
    metadata: Option<Bytes>,
    duration_ms: u64,
    size: usize,
}

impl MediaFile {
    /// Reads the tags of a whole FLV file. AVC end-of-sequence tags are left out: they end
    /// a file, and a replayed stream loops instead (it ends with an unpublish).
    pub fn parse(file: Bytes) -> Result<MediaFile, LoadgenError> {
        let size = file.len();
        let mut tags = Vec::new();
        let mut metadata = None;
        let mut first = None;
        for item in FlvFile::new(file) {
            let FlvItem::Tag(tag) = item? else {
                continue;
            };
            let (kind, config) = match tag.tag_type {
                TagType::ScriptData => {
                    if metadata.is_none() && tag.body.starts_with(ON_METADATA) {
                        metadata = Some(tag.body);
                    }
                    continue;
                }
                // Legacy and Enhanced RTMP tags alike (one packet per tag, as encoders write
                // multitrack FLV): sequence starts are configuration, sequence ends are left
                // out; other codecs and unreadable bodies go as they are: the server judges.
                TagType::Video => {
                    let first = VideoMessage::parse(&tag.body)
                        .ok()
                        .and_then(|mut m| m.packets().next().and_then(Result::ok));
                    match first.map(|p| p.body) {
                        Some(VideoBody::SequenceEnd) => continue,
                        Some(VideoBody::SequenceStart(_)) => (MediaKind::Video, true),
                        _ => (MediaKind::Video, false),
                    }
                }
                TagType::Audio => {
                    let first = AudioMessage::parse(&tag.body)
                        .ok()
                        .and_then(|mut m| m.packets().next().and_then(Result::ok));
                    match first.map(|p| p.body) {
                        Some(AudioBody::SequenceStart(_)) => (MediaKind::Audio, true),
                        _ => (MediaKind::Audio, false),
                    }
                }
            };
            let base = *first.get_or_insert(tag.timestamp);
            tags.push(MediaTag {
                kind,
                timestamp_ms: tag.timestamp.wrapping_diff(base).max(0) as u64,
                body: tag.body,
                config,
            });
        }
        if !tags.iter().any(|t| !t.config) {
            return Err(LoadgenError::NoMedia);
        }
        let duration_ms = [MediaKind::Video, MediaKind::Audio]
            .into_iter()
            .map(|kind| track_end(&tags, kind))
            .max()
            .unwrap_or(0);
        if duration_ms < MIN_DURATION_MS {
            return Err(LoadgenError::TooShort { duration_ms });
        }
        Ok(MediaFile {
            tags,
            metadata,
            duration_ms,
            size,
        })
    }

    /// Audio and video tags in file order; at least one is not a sequence header.
    pub fn tags(&self) -> &[MediaTag] {
        &self.tags
    }

    /// The first onMetaData script tag body, if the file has one.
    pub fn metadata(&self) -> Option<&Bytes> {
        self.metadata.as_ref()
    }

    /// How long one pass lasts: where the track that ends last ends (its last frame's
    /// timestamp plus its usual frame interval). A loop starts the next pass here, so no
    /// track's timestamps overlap the previous pass.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// Timestamp of the first audio or video frame (not a sequence header): the one a
    /// server's timeline starts at.
    pub fn first_frame_ms(&self) -> u64 {
        self.tags
            .iter()
            .find(|t| !t.config)
            .map_or(0, |t| t.timestamp_ms)
    }

    /// Bytes of the file.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// Where a track ends: its last timestamp plus its median frame interval; 0 without frames.
fn track_end(tags: &[MediaTag], kind: MediaKind) -> u64 {
    let timestamps: Vec<u64> = tags
        .iter()
        .filter(|t| t.kind == kind && !t.config)
        .map(|t| t.timestamp_ms)
        .collect();
    let Some(&last) = timestamps.iter().max() else {
        return 0;
    };
    let mut intervals: Vec<u64> = timestamps
        .windows(2)
        .filter_map(|w| w[1].checked_sub(w[0]))
        .filter(|&d| d > 0)
        .collect();
    intervals.sort_unstable();
    last + intervals.get(intervals.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An FLV file of `tags` (type, timestamp, body).
    fn flv(tags: &[(u8, u32, &[u8])]) -> Bytes {
        let mut file = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
        let mut previous = 0u32;
        for (tag_type, timestamp, body) in tags {
            file.extend_from_slice(&previous.to_be_bytes());
            file.push(*tag_type);
            file.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            file.extend_from_slice(&(timestamp & 0xff_ffff).to_be_bytes()[1..]);
            file.push((timestamp >> 24) as u8);
            file.extend_from_slice(&[0, 0, 0]);
            file.extend_from_slice(body);
            previous = 11 + body.len() as u32;
        }
        file.extend_from_slice(&previous.to_be_bytes());
        Bytes::from(file)
    }

    const AVC_CONFIG: &[u8] = &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe0, 0x00];
    const AVC_KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65];
    const AVC_FRAME: &[u8] = &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41];
    const AVC_END: &[u8] = &[0x17, 2, 0, 0, 0];
    const AAC_CONFIG: &[u8] = &[0xaf, 0, 0x11, 0x90];
    const AAC_FRAME: &[u8] = &[0xaf, 1, 0x21];

    #[test]
    fn reads_tags_metadata_and_duration() {
        let mut meta = ON_METADATA.to_vec();
        meta.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 9]);
        let file = flv(&[
            (18, 1000, &meta),
            (9, 1000, AVC_CONFIG),
            (8, 1000, AAC_CONFIG),
            (9, 1000, AVC_KEY),
            (8, 1000, AAC_FRAME),
            (8, 1021, AAC_FRAME),
            (9, 1033, AVC_FRAME),
            (8, 1043, AAC_FRAME),
            (9, 1067, AVC_FRAME),
            (8, 1064, AAC_FRAME),
            (9, 1100, AVC_FRAME),
            (9, 1100, AVC_END),
        ]);
        let media = MediaFile::parse(file.clone()).expect("valid");
        assert_eq!(media.metadata().map(|m| &m[..]), Some(&meta[..]));
        let summary: Vec<(MediaKind, u64, bool)> = media
            .tags()
            .iter()
            .map(|t| (t.kind, t.timestamp_ms, t.config))
            .collect();
        use MediaKind::{Audio, Video};
        assert_eq!(
            summary,
            [
                (Video, 0, true),
                (Audio, 0, true),
                (Video, 0, false),
                (Audio, 0, false),
                (Audio, 21, false),
                (Video, 33, false),
                (Audio, 43, false),
                (Video, 67, false),
                (Audio, 64, false),
                (Video, 100, false),
            ]
        );
        // Video ends at 100 + 33 (median of 33, 34, 33); audio at 64 + 21.
        assert_eq!(media.duration_ms(), 133);
        assert_eq!(media.first_frame_ms(), 0);
        assert_eq!(media.size(), file.len());
        // Bodies are slices of the file, not copies.
        let start = file.as_ptr() as usize;
        let body = media.tags()[2].body.as_ptr() as usize;
        assert!(body > start && body < start + file.len());
    }

    #[test]
    fn the_first_frame_is_the_first_tag_that_is_not_a_sequence_header() {
        let file = flv(&[
            (9, 0, AVC_CONFIG),
            (8, 0, AAC_CONFIG),
            (9, 40, AVC_KEY),
            (8, 45, AAC_FRAME),
            (9, 200, AVC_FRAME),
        ]);
        assert_eq!(MediaFile::parse(file).expect("valid").first_frame_ms(), 40);
    }

    #[test]
    fn files_without_media_or_time_are_refused() {
        assert!(matches!(
            MediaFile::parse(flv(&[(9, 0, AVC_CONFIG), (8, 0, AAC_CONFIG)])),
            Err(LoadgenError::NoMedia)
        ));
        assert!(matches!(
            MediaFile::parse(flv(&[(9, 0, AVC_KEY), (9, 40, AVC_FRAME)])),
            Err(LoadgenError::TooShort { duration_ms: 80 })
        ));
        assert!(matches!(
            MediaFile::parse(Bytes::from_static(b"GIF89a")),
            Err(LoadgenError::Flv(_))
        ));
    }
}
