//! `rtmp::ServerSession::handle_input` on arbitrary bytes after a valid handshake, with the
//! application's decisions (accept or reject a publish, ping, end the stream) taken from
//! input bits.
//!
//! Input: a config byte (outgoing chunk size), a decisions byte (bit n: accept the nth
//! publish or play request, else reject it), an actions byte (after each piece, two of its
//! bits, turning: ping the client, end the publish as for a refused codec, or send a player
//! a tag of the stream or its end), a piece size byte
//! (0: all at once), then the client's bytes after C2. They follow the C0+C1 ffmpeg 5.1
//! sent and a C2 in one buffer, as a client writes them, so the handshake hands the
//! session what it left behind. The captures in testdata/rtmp/ are the seeds.
//!
//! Properties: no panic; what the session sends is always a whole, decodable chunk stream
//! of messages that parse; media is passed on only while a publish the application
//! accepted is active; a publish is requested only when none is pending or active, a play
//! only when nothing publishes or plays, and a play stops only while one is under way; the
//! heap never holds more than the decoder's bounds allow for the bytes given.
#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtmp_server::flv::demux::{FlvDemuxer, TagKind};
use rtmp_server::flv::file::{FlvFile, FlvItem};
use rtmp_server::flv::mux::{Accepts, FlvMuxer, Tag};
use rtmp_server::rtmp::chunk::{ChunkDecoder, MAX_CHUNK_STREAMS};
use rtmp_server::rtmp::egress::Egress;
use rtmp_server::rtmp::handshake::HANDSHAKE_SIZE;
use rtmp_server::rtmp::message::Message;
use rtmp_server::rtmp::{Handshake, ServerSession, SessionConfig, SessionEvent};
use rtmp_server_fuzz::alloc::{self, Counting};
use rtmp_server_fuzz::input::Input;

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tags a legacy player of testdata/flv/h264_aac.flv gets: what a played stream sends.
fn tag(index: u32) -> Tag {
    static TAGS: OnceLock<Vec<Tag>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        let file = Bytes::from_static(include_bytes!("../../testdata/flv/h264_aac.flv"));
        let mut demux = FlvDemuxer::new();
        let mut events = Vec::new();
        for item in FlvFile::new(file).take(64) {
            if let Ok(FlvItem::Tag(t)) = item {
                if let Some(kind) = TagKind::of(t.tag_type) {
                    let _ = demux.push(kind, t.timestamp, t.body, Instant::now(), &mut events);
                }
            }
        }
        let mut muxer = FlvMuxer::new(Accepts::Legacy);
        let mut tags = Vec::new();
        for event in &events {
            muxer.push(event, &mut tags).expect("H.264 and AAC play anywhere");
        }
        tags
    });
    tags[index as usize % tags.len()].clone()
}

const FFMPEG_C0C1: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_c0c1.bin");

/// Outgoing chunk sizes to configure: the default, the spec's initial one, the smallest,
/// invalid ones (replaced by 128) and the largest.
const CHUNK_SIZES: [u32; 6] = [60_000, 128, 1, 0, 0x8000_0000, 0xff_ffff];

/// The decoder reserves at most this much when a message starts (its private
/// `MAX_PREALLOCATION`), on each of at most [`MAX_CHUNK_STREAMS`] chunk streams.
const DECODER_PREALLOCATION: usize = 256 * 1024;

/// Heap the session may hold beyond what the input accounts for: its own state, the
/// reusable buffers and the fuzzer's bookkeeping.
const SLACK: usize = 1024 * 1024;

/// Where the application stands with the publish (it answers every request at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Publish {
    Idle,
    Active,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let chunk_size = CHUNK_SIZES[usize::from(input.byte()) % CHUNK_SIZES.len()];
    let decisions = input.byte();
    let actions = input.byte();
    let piece_size = usize::from(input.byte());
    let after_handshake = input.rest();

    let baseline = alloc::live();
    alloc::reset_peak();

    let mut handshake = Handshake::new();
    let mut buffer = BytesMut::new();
    buffer.extend_from_slice(FFMPEG_C0C1);
    buffer.extend_from_slice(&[0; HANDSHAKE_SIZE]);
    let mut out = BytesMut::new();
    assert!(
        handshake
            .feed(&mut buffer, &mut out)
            .expect("valid handshake"),
        "handshake complete"
    );
    out.clear();

    let config = SessionConfig {
        chunk_size,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(config);
    // The client's view of what the server sends.
    let mut from_server = ChunkDecoder::new();
    let mut from_server_buffer = BytesMut::new();
    let mut events = Vec::new();
    let mut publish = Publish::Idle;
    let mut playing = false;
    let mut requests = 0u32;

    let piece_size = if piece_size == 0 {
        after_handshake.len().max(1)
    } else {
        piece_size
    };
    for (index, piece) in (0u32..).zip(after_handshake.chunks(piece_size)) {
        buffer.extend_from_slice(piece);
        let result = session.handle_input(&mut buffer, &mut out, &mut events);
        for event in events.drain(..) {
            match event {
                SessionEvent::PublishRequested { .. } => {
                    assert_eq!(publish, Publish::Idle, "a second publish was requested");
                    let bit = (decisions >> (requests % 8)) & 1;
                    requests += 1;
                    if bit == 1 {
                        session.accept_publish(&mut out);
                        publish = Publish::Active;
                    } else {
                        session.reject_publish(
                            "NetStream.Publish.BadName",
                            "refused by the fuzzer",
                            &mut out,
                        );
                        publish = Publish::Idle;
                    }
                }
                SessionEvent::Media { .. } => {
                    assert_eq!(
                        publish,
                        Publish::Active,
                        "media without an accepted publish"
                    );
                }
                SessionEvent::Unpublished => {
                    assert_eq!(publish, Publish::Active, "unpublished without a publish");
                    publish = Publish::Idle;
                }
                SessionEvent::PlayRequested { .. } => {
                    assert_eq!(publish, Publish::Idle, "play while publishing");
                    assert!(!playing, "a second play was requested");
                    let bit = (decisions >> (requests % 8)) & 1;
                    requests += 1;
                    if bit == 1 {
                        session.accept_play("fuzzer", &mut out);
                        playing = true;
                    } else {
                        session.reject_play("NetStream.Play.StreamNotFound", "fuzzer", &mut out);
                    }
                }
                SessionEvent::PlayStopped => {
                    assert!(playing, "a play stopped that was not under way");
                    playing = false;
                }
                SessionEvent::Connected { .. } | SessionEvent::Metadata { .. } => {}
            }
        }
        // Now and then the application pings, or ends the publish (a codec it refuses).
        match actions.rotate_left(index % 8) >> 6 {
            0b11 if publish == Publish::Active => {
                session.stream_error("NetStream.Publish.Failed", "fuzzer", &mut out);
                publish = Publish::Idle;
            }
            0b10 => session.ping_request(index, &mut out),
            0b01 if playing => {
                // A player gets a tag of the stream now and then; sometimes the stream ends.
                if index % 5 == 4 {
                    session.end_play(&mut out);
                    playing = false;
                } else {
                    let mut egress = Egress::new();
                    session.send_tag(&tag(index), &mut egress);
                    out.extend_from_slice(&egress.to_bytes());
                }
            }
            _ => {}
        }

        // Everything sent is whole messages, each of which parses.
        from_server_buffer.extend_from_slice(&out);
        out.clear();
        loop {
            match from_server.decode(&mut from_server_buffer) {
                Ok(Some(message)) => {
                    let type_id = message.header.message_type_id;
                    if let Err(e) = Message::parse(type_id, message.payload) {
                        panic!(
                            "the server sent a message of type {type_id} that does not parse: {e}"
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => panic!("the server's chunk stream does not decode: {e}"),
            }
        }
        assert!(
            from_server_buffer.is_empty(),
            "the server sent part of a chunk"
        );

        let held = alloc::peak().saturating_sub(baseline);
        let bound = MAX_CHUNK_STREAMS * DECODER_PREALLOCATION + 8 * after_handshake.len() + SLACK;
        assert!(
            held <= bound,
            "{held} bytes held at peak for {} bytes of input",
            after_handshake.len()
        );

        if result.is_err() {
            break;
        }
    }
});
