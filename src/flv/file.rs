//! A sans-IO reader for FLV files: the file header, then tags with their PreviousTagSize
//! back-pointers, yielding each tag's type, timestamp and body as a zero-copy [`Bytes`].
//!
//! Used by the offline remux and by the load tool (`tools/load`), which replays a file as an
//! RTMP publish.
//!
//! Spec: FLV 10.1 §E.2 (FLV header), §E.3 (FLV file body), §E.4.1 (FLV tag).

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::flv::error::FlvError;
use crate::flv::tag::TagType;
use crate::media::RtmpTimestamp;

/// Size of the version 1 FLV header ("FLV", version, flags, DataOffset).
const HEADER_SIZE: usize = 9;

/// Largest DataOffset accepted. Version 1 headers are 9 bytes; the field allows a longer
/// header for future versions, and this bounds what a reader buffers before the first tag.
pub const MAX_HEADER_SIZE: u32 = 4096;

/// Size of a tag header: TagType, DataSize, Timestamp, TimestampExtended, StreamID.
const TAG_HEADER_SIZE: usize = 11;

/// Size of a PreviousTagSize field.
const PREVIOUS_TAG_SIZE_SIZE: usize = 4;

/// The FLV file header.
///
/// Spec: FLV 10.1 §E.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlvHeader {
    /// Version (1 for FLV 10.1).
    pub version: u8,
    /// TypeFlagsAudio: audio tags are present.
    pub type_flags_audio: bool,
    /// TypeFlagsVideo: video tags are present.
    pub type_flags_video: bool,
    /// DataOffset: length of the header in bytes.
    pub data_offset: u32,
}

/// One FLV tag.
///
/// Spec: FLV 10.1 §E.4.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlvTag {
    /// TagType.
    pub tag_type: TagType,
    /// Timestamp with TimestampExtended as its upper 8 bits, in milliseconds.
    pub timestamp: RtmpTimestamp,
    /// The tag body (AUDIODATA, VIDEODATA or SCRIPTDATA), a slice of the file.
    pub body: Bytes,
    /// File offset of the tag header, for error messages.
    pub offset: u64,
}

/// What the reader produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlvItem {
    Header(FlvHeader),
    Tag(FlvTag),
}

/// The outcome of looking at buffered bytes, before any is consumed.
enum Step {
    /// More bytes are needed; nothing was consumed.
    Incomplete,
    Header {
        header: FlvHeader,
        consumed: usize,
    },
    Tag {
        tag_type: TagType,
        timestamp: RtmpTimestamp,
        body: Range<usize>,
        consumed: usize,
    },
}

/// Reads an FLV file from bytes as they arrive. Keeps only the position and the size of
/// the last tag (to check the next PreviousTagSize); the caller owns the buffer.
#[derive(Clone, Debug, Default)]
pub struct FlvReader {
    header_done: bool,
    /// Size of the previous tag (header + body), which the next PreviousTagSize must repeat.
    previous_tag_size: u32,
    /// File offset of the first byte not yet consumed.
    offset: u64,
}

impl FlvReader {
    pub fn new() -> FlvReader {
        FlvReader::default()
    }

    /// Takes the next header or tag off the front of `buf`. `Ok(None)` means `buf` holds
    /// only part of it: append more bytes and call again.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<FlvItem>, FlvError> {
        let item = match self.step(buf)? {
            Step::Incomplete => return Ok(None),
            Step::Header { header, consumed } => {
                let _ = buf.split_to(consumed);
                self.advance(consumed);
                FlvItem::Header(header)
            }
            Step::Tag {
                tag_type,
                timestamp,
                body,
                consumed,
            } => {
                let offset = self.offset + PREVIOUS_TAG_SIZE_SIZE as u64;
                let chunk = buf.split_to(consumed).freeze();
                self.advance(consumed);
                FlvItem::Tag(FlvTag {
                    tag_type,
                    timestamp,
                    body: chunk.slice(body),
                    offset,
                })
            }
        };
        self.note(&item);
        Ok(Some(item))
    }

    /// Checks what is left once the input has ended: nothing, or the last tag's trailing
    /// PreviousTagSize (which a writer may also leave out).
    pub fn finish(&self, rest: &[u8]) -> Result<(), FlvError> {
        if rest.is_empty() && self.header_done {
            return Ok(());
        }
        if self.header_done && rest.len() == PREVIOUS_TAG_SIZE_SIZE {
            return self.check_previous_tag_size(rest);
        }
        // A malformed prefix is reported as what it is, not as an early end.
        self.step(rest)?;
        Err(FlvError::UnexpectedEof {
            offset: self.offset,
            needed: self.needed(rest),
            available: rest.len(),
        })
    }

    fn advance(&mut self, consumed: usize) {
        self.offset += consumed as u64;
    }

    /// How many bytes the item at the front of `input` needs in all (for error messages).
    fn needed(&self, input: &[u8]) -> usize {
        if !self.header_done {
            return HEADER_SIZE;
        }
        let fixed = PREVIOUS_TAG_SIZE_SIZE + TAG_HEADER_SIZE;
        match input.get(PREVIOUS_TAG_SIZE_SIZE + 1..PREVIOUS_TAG_SIZE_SIZE + 4) {
            Some(size) => fixed + u24(size) as usize,
            None => fixed,
        }
    }

    fn step(&self, input: &[u8]) -> Result<Step, FlvError> {
        if !self.header_done {
            return parse_header(input);
        }
        let Some(fixed) = input.get(..PREVIOUS_TAG_SIZE_SIZE + TAG_HEADER_SIZE) else {
            return Ok(Step::Incomplete);
        };
        self.check_previous_tag_size(&fixed[..PREVIOUS_TAG_SIZE_SIZE])?;
        let tag = &fixed[PREVIOUS_TAG_SIZE_SIZE..];
        // Reserved UB[2], Filter UB[1], TagType UB[5].
        if tag[0] & 0x20 != 0 {
            return Err(FlvError::InvalidField {
                structure: "FLVTAG",
                field: "Filter",
                value: 1,
                reason: "encrypted tags are not supported",
            });
        }
        let tag_type = TagType::from_u8(tag[0] & 0x1f).ok_or(FlvError::InvalidField {
            structure: "FLVTAG",
            field: "TagType",
            value: u32::from(tag[0] & 0x1f),
            reason: "reserved",
        })?;
        let data_size = u24(&tag[1..4]) as usize;
        let timestamp = RtmpTimestamp((u32::from(tag[7]) << 24) | u24(&tag[4..7]));
        let body_start = PREVIOUS_TAG_SIZE_SIZE + TAG_HEADER_SIZE;
        let body_end = body_start + data_size;
        if input.len() < body_end {
            return Ok(Step::Incomplete);
        }
        Ok(Step::Tag {
            tag_type,
            timestamp,
            body: body_start..body_end,
            consumed: body_end,
        })
    }

    fn check_previous_tag_size(&self, field: &[u8]) -> Result<(), FlvError> {
        let found = field
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        if found != self.previous_tag_size {
            return Err(FlvError::PreviousTagSize {
                offset: self.offset,
                expected: self.previous_tag_size,
                found,
            });
        }
        Ok(())
    }

    /// Records what `read` consumed, so that the next PreviousTagSize can be checked.
    fn note(&mut self, item: &FlvItem) {
        match item {
            FlvItem::Header(_) => {
                self.header_done = true;
                self.previous_tag_size = 0;
            }
            FlvItem::Tag(tag) => {
                self.previous_tag_size = (TAG_HEADER_SIZE + tag.body.len()) as u32;
            }
        }
    }
}

fn parse_header(input: &[u8]) -> Result<Step, FlvError> {
    let Some(fixed) = input.get(..HEADER_SIZE) else {
        // Refuse a wrong signature as soon as its bytes are in.
        let seen = input.len().min(3);
        if input[..seen] != b"FLV"[..seen] {
            let mut signature = [0; 3];
            signature[..seen].copy_from_slice(&input[..seen]);
            return Err(FlvError::NotFlv { signature });
        }
        return Ok(Step::Incomplete);
    };
    if &fixed[..3] != b"FLV" {
        return Err(FlvError::NotFlv {
            signature: [fixed[0], fixed[1], fixed[2]],
        });
    }
    let flags = fixed[4];
    let data_offset = u32::from_be_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]);
    if !(HEADER_SIZE as u32..=MAX_HEADER_SIZE).contains(&data_offset) {
        return Err(FlvError::InvalidField {
            structure: "FLV header",
            field: "DataOffset",
            value: data_offset,
            reason: "outside 9..=4096",
        });
    }
    if input.len() < data_offset as usize {
        return Ok(Step::Incomplete);
    }
    Ok(Step::Header {
        header: FlvHeader {
            version: fixed[3],
            type_flags_audio: flags & 0x04 != 0,
            type_flags_video: flags & 0x01 != 0,
            data_offset,
        },
        consumed: data_offset as usize,
    })
}

fn u24(b: &[u8]) -> u32 {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

/// Iterates over a whole FLV file held in memory; tag bodies are slices of it.
pub struct FlvFile {
    reader: FlvReader,
    rest: Bytes,
    done: bool,
}

impl FlvFile {
    pub fn new(file: Bytes) -> FlvFile {
        FlvFile {
            reader: FlvReader::new(),
            rest: file,
            done: false,
        }
    }
}

impl Iterator for FlvFile {
    type Item = Result<FlvItem, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = match self.reader.step(&self.rest) {
            Ok(Step::Incomplete) => {
                self.done = true;
                return self.reader.finish(&self.rest).err().map(Err);
            }
            Ok(Step::Header { header, consumed }) => {
                let _ = self.rest.split_to(consumed);
                self.reader.advance(consumed);
                Ok(FlvItem::Header(header))
            }
            Ok(Step::Tag {
                tag_type,
                timestamp,
                body,
                consumed,
            }) => {
                let offset = self.reader.offset + PREVIOUS_TAG_SIZE_SIZE as u64;
                let chunk = self.rest.split_to(consumed);
                self.reader.advance(consumed);
                Ok(FlvItem::Tag(FlvTag {
                    tag_type,
                    timestamp,
                    body: chunk.slice(body),
                    offset,
                }))
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(item) => self.reader.note(item),
            Err(_) => self.done = true,
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(spaced: &str) -> Result<Vec<u8>, hex::FromHexError> {
        hex::decode(spaced.replace(' ', ""))
    }

    /// A two-tag FLV file: an audio tag at 0x01_000010 ms (extended timestamp) and a video
    /// tag at 33 ms, with a trailing PreviousTagSize.
    fn sample_file() -> Vec<u8> {
        let mut f = unhex("464c56 01 05 00000009 00000000").unwrap();
        // Audio tag: type 8, DataSize 2, Timestamp 0x000010, TimestampExtended 0x01, StreamID 0.
        f.extend_from_slice(&unhex("08 000002 000010 01 000000 af01").unwrap());
        f.extend_from_slice(&13u32.to_be_bytes());
        // Video tag: type 9, DataSize 5, Timestamp 33.
        f.extend_from_slice(&unhex("09 000005 000021 00 000000 1701000000").unwrap());
        f.extend_from_slice(&16u32.to_be_bytes());
        f
    }

    fn expected() -> Vec<FlvItem> {
        vec![
            FlvItem::Header(FlvHeader {
                version: 1,
                type_flags_audio: true,
                type_flags_video: true,
                data_offset: 9,
            }),
            FlvItem::Tag(FlvTag {
                tag_type: TagType::Audio,
                timestamp: RtmpTimestamp(0x0100_0010),
                body: Bytes::from_static(&[0xaf, 0x01]),
                offset: 13,
            }),
            FlvItem::Tag(FlvTag {
                tag_type: TagType::Video,
                timestamp: RtmpTimestamp(33),
                body: Bytes::from_static(&[0x17, 0x01, 0, 0, 0]),
                offset: 30,
            }),
        ]
    }

    /// Feeds `pieces` one after another into a reader, collecting items.
    fn feed(pieces: &[&[u8]]) -> Result<Vec<FlvItem>, FlvError> {
        let mut reader = FlvReader::new();
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            while let Some(item) = reader.read(&mut buf)? {
                items.push(item);
            }
        }
        reader.finish(&buf)?;
        Ok(items)
    }

    #[test]
    fn whole_file_in_memory() {
        let items: Result<Vec<_>, _> = FlvFile::new(Bytes::from(sample_file())).collect();
        assert_eq!(items.unwrap(), expected());
    }

    #[test]
    fn split_at_every_byte_and_in_single_bytes() {
        let file = sample_file();
        for split in 0..=file.len() {
            let (a, b) = file.split_at(split);
            assert_eq!(feed(&[a, b]).unwrap(), expected(), "split at {split}");
        }
        let singles: Vec<&[u8]> = file.chunks(1).collect();
        assert_eq!(feed(&singles).unwrap(), expected());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let file = sample_file();
        // Cuts at a tag boundary (with or without the PreviousTagSize after it) leave a
        // shorter valid file.
        let tolerated = [9, 13, 26, 30, 46];
        for cut in 0..file.len() {
            let prefix = &file[..cut];
            let in_memory: Result<Vec<_>, _> =
                FlvFile::new(Bytes::copy_from_slice(prefix)).collect();
            let fed = feed(&[prefix]);
            if tolerated.contains(&cut) {
                let items = in_memory.unwrap();
                assert_eq!(items, expected()[..items.len()], "cut at {cut}");
                assert_eq!(fed.unwrap(), items, "cut at {cut}");
            } else {
                assert!(
                    matches!(
                        in_memory,
                        Err(FlvError::UnexpectedEof { .. }) | Err(FlvError::NotFlv { .. })
                    ),
                    "cut at {cut}: {in_memory:?}"
                );
                assert!(fed.is_err(), "cut at {cut}");
            }
        }
        assert_eq!(
            feed(&[&file[..20]]),
            Err(FlvError::UnexpectedEof {
                offset: 9,
                needed: 4 + 11 + 2,
                available: 11
            })
        );
    }

    #[test]
    fn malformed_files_are_refused_with_context() {
        assert_eq!(
            feed(&[b"FLX"]),
            Err(FlvError::NotFlv { signature: *b"FLX" })
        );
        assert!(matches!(feed(&[b"G"]), Err(FlvError::NotFlv { .. })));

        let mut bad_size = sample_file();
        bad_size[29] = 0xff; // the PreviousTagSize after the audio tag
        assert_eq!(
            feed(&[&bad_size]),
            Err(FlvError::PreviousTagSize {
                offset: 26,
                expected: 13,
                found: 0xff,
            })
        );

        let mut encrypted = sample_file();
        encrypted[13] |= 0x20;
        assert!(matches!(
            feed(&[&encrypted]),
            Err(FlvError::InvalidField {
                field: "Filter",
                ..
            })
        ));

        let mut reserved = sample_file();
        reserved[13] = 0x07;
        assert!(matches!(
            feed(&[&reserved]),
            Err(FlvError::InvalidField {
                field: "TagType",
                value: 7,
                ..
            })
        ));

        let mut huge_header = sample_file();
        huge_header[5..9].copy_from_slice(&0x10_0000u32.to_be_bytes());
        assert!(matches!(
            feed(&[&huge_header]),
            Err(FlvError::InvalidField {
                field: "DataOffset",
                ..
            })
        ));
    }
}
