//! The FLV muxer (`flv::mux`) on what the demuxer makes of arbitrary FLV files: the media
//! events of any publish, in any form the demuxer lets through, back into tags for a player
//! that takes everything and for a legacy player.
//!
//! Input: an FLV file (the corpus holds every file of testdata/flv).
//!
//! Properties: no panic; every tag the muxer writes parses as the audio or video tag it
//! claims to be (legacy or Enhanced RTMP headers), and its packets carry exactly the frame
//! or configuration bytes; for a player that takes everything, every frame the demuxer
//! made comes out as one tag carrying its bytes, in order; a legacy player either gets the
//! stream's default tracks in legacy tags, or is refused before anything of the publish.
#![no_main]

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtmp_server::flv::demux::{FlvDemuxer, TagKind};
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::flv::mux::{Accepts, FlvMuxer, Tag};
use rtmp_server::flv::tag::{AudioMessage, TagType, VideoMessage};
use rtmp_server::media::frame::MediaEvent;

/// Most tags of one input.
const MAX_TAGS: usize = 512;

fn events(file: Bytes) -> Vec<MediaEvent> {
    let mut demux = FlvDemuxer::new();
    let mut events = Vec::new();
    for item in FlvFile::new(file).take(MAX_TAGS) {
        match item {
            Ok(FlvItem::Header(h)) => demux.expect_tracks(h.type_flags_video, h.type_flags_audio),
            Ok(FlvItem::Tag(tag)) => {
                let Some(kind) = TagKind::of(tag.tag_type) else {
                    continue;
                };
                if demux
                    .push(kind, tag.timestamp, tag.body, Instant::now(), &mut events)
                    .is_err()
                {
                    return events;
                }
            }
            Err(_) => break,
        }
    }
    demux.finish(&mut events);
    events
}

/// The tag's body parses as what it claims, and `data` is its packet's payload.
fn check_tag(tag: &Tag) {
    let mut body = BytesMut::from(tag.header());
    body.extend_from_slice(&tag.data);
    let body = body.freeze();
    match tag.kind {
        TagType::Video => {
            let mut message = VideoMessage::parse(&body).expect("a video tag the parser takes");
            let packets: Vec<_> = message.packets().collect();
            assert_eq!(packets.len(), 1, "one packet per tag");
            packets[0].as_ref().expect("a valid packet");
        }
        TagType::Audio => {
            let mut message = AudioMessage::parse(&body).expect("an audio tag the parser takes");
            let packets: Vec<_> = message.packets().collect();
            assert_eq!(packets.len(), 1, "one packet per tag");
            packets[0].as_ref().expect("a valid packet");
        }
        TagType::ScriptData => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let events = events(Bytes::copy_from_slice(data));

    let mut everything = FlvMuxer::new(Accepts::Everything);
    let mut tags = Vec::new();
    let mut frames = Vec::new();
    for event in &events {
        if let MediaEvent::Frame(f) = event {
            frames.push(f.data.clone());
        }
        everything
            .push(event, &mut tags)
            .expect("a player that takes everything takes every publish");
    }
    for tag in &tags {
        check_tag(tag);
    }
    // Frames of tracks without a configuration have no form to go out in.
    let sent: Vec<&Bytes> = tags.iter().filter(|t| !t.config).map(|t| &t.data).collect();
    assert!(sent.len() <= frames.len());
    let mut at = 0;
    for data in sent {
        let found = frames[at..].iter().position(|f| f == data).expect("frames in order");
        at += found + 1;
    }

    let mut legacy = FlvMuxer::new(Accepts::Legacy);
    let mut tags = Vec::new();
    for event in &events {
        let before = tags.len();
        if legacy.push(event, &mut tags).is_err() {
            assert_eq!(tags.len(), before, "nothing of a refused publish");
        }
    }
    for tag in &tags {
        check_tag(tag);
        if tag.kind == TagType::Video {
            assert_eq!(tag.header()[0] & 0x80, 0, "legacy video tags only");
        }
    }
});
