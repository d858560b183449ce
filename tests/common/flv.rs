//! Reading and writing FLV files in tests, to make inputs real encoders produce but ffmpeg
//! will not write (clock restarts, wraps).

use std::path::Path;

/// One FLV tag: type (8 audio, 9 video, 18 script), timestamp in ms, body.
#[derive(Clone, Debug)]
pub struct Tag {
    pub kind: u8,
    pub timestamp: u32,
    pub body: Vec<u8>,
}

/// The tags of an FLV file (FLV 10.1 §E.2-E.4), script data included.
pub fn read_tags(path: &Path) -> Vec<Tag> {
    let data = std::fs::read(path).expect("read FLV");
    assert_eq!(&data[..3], b"FLV");
    let mut i = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize + 4;
    let mut tags = Vec::new();
    while i + 11 <= data.len() {
        let kind = data[i] & 0x1f;
        let size = u32::from_be_bytes([0, data[i + 1], data[i + 2], data[i + 3]]) as usize;
        let timestamp = u32::from_be_bytes([data[i + 7], data[i + 4], data[i + 5], data[i + 6]]);
        let body = data[i + 11..i + 11 + size].to_vec();
        tags.push(Tag {
            kind,
            timestamp,
            body,
        });
        i += 11 + size + 4;
    }
    tags
}

/// An FLV file holding `tags`, in order.
pub fn write(tags: &[Tag]) -> Vec<u8> {
    let audio = tags.iter().any(|t| t.kind == 8);
    let video = tags.iter().any(|t| t.kind == 9);
    let mut out = b"FLV\x01".to_vec();
    out.push((audio as u8) << 2 | video as u8);
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for t in tags {
        let size = t.body.len() as u32;
        out.push(t.kind);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        let ts = t.timestamp.to_be_bytes();
        out.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&t.body);
        out.extend_from_slice(&(11 + size).to_be_bytes());
    }
    out
}
