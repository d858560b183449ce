//! Real tag bodies from `testdata/flv/h264_aac.flv` (H.264 High with B-frames, AAC-LC
//! 48 kHz stereo, 10 s), for targets that would otherwise spend their time guessing an
//! AVCDecoderConfigurationRecord or an AudioSpecificConfig.

use std::sync::OnceLock;

use bytes::Bytes;
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::remux::TagKind;

/// The test file, built into the target so it runs from any directory.
pub const H264_AAC_FLV: &[u8] = include_bytes!("../../testdata/flv/h264_aac.flv");

/// One audio or video tag of the test file.
#[derive(Clone, Debug)]
pub struct Tag {
    pub kind: TagKind,
    pub timestamp: RtmpTimestamp,
    pub body: Bytes,
}

/// The audio and video tags of the test file, in file order (script tags left out); the
/// first two are its AVC and AAC sequence headers.
pub fn tags() -> &'static [Tag] {
    static TAGS: OnceLock<Vec<Tag>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FlvFile::new(Bytes::from_static(H264_AAC_FLV))
            .filter_map(|item| match item.expect("the test file is valid FLV") {
                FlvItem::Tag(tag) => {
                    let kind = TagKind::of(tag.tag_type)?;
                    Some(Tag {
                        kind,
                        timestamp: tag.timestamp,
                        body: tag.body,
                    })
                }
                FlvItem::Header(_) => None,
            })
            .collect()
    })
}

/// The test file's AVC sequence header tag body (FLV video tag, AVCPacketType 0).
pub fn video_sequence_header() -> &'static Tag {
    find(|t| t.kind == TagKind::Video && t.body.get(1) == Some(&0))
}

/// The test file's AAC sequence header tag body (FLV audio tag, AACPacketType 0).
pub fn audio_sequence_header() -> &'static Tag {
    find(|t| t.kind == TagKind::Audio && t.body.get(1) == Some(&0))
}

/// The AVCDecoderConfigurationRecord inside [`video_sequence_header`].
pub fn avc_record() -> Bytes {
    video_sequence_header().body.slice(5..)
}

/// The AudioSpecificConfig inside [`audio_sequence_header`].
pub fn audio_specific_config() -> Bytes {
    audio_sequence_header().body.slice(2..)
}

fn find(pred: impl Fn(&Tag) -> bool) -> &'static Tag {
    tags()
        .iter()
        .find(|t| pred(t))
        .expect("the test file has both sequence headers")
}
