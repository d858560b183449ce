//! The RTMP chunk stream: `ChunkDecoder` on arbitrary bytes, and `ChunkEncoder` round trips.
//!
//! Input: a mode byte, then
//! - even mode (decoder): a cut point (u16), then chunk stream bytes. The bytes are decoded
//!   whole and again in two pieces cut there: both give the same messages, the same error
//!   (if any) and leave the same bytes undecoded. Every payload byte came from the input,
//!   and the decoder never consumes more than it was given.
//! - odd mode (encoder round trip): a chunk size, an interleaving flag and a list of
//!   messages (chunk stream id, timestamp, type, stream id, payload). They are chunked
//!   (interleaved across chunk streams when the flag says so, with mid-stream Set Chunk
//!   Size messages when not), and decoding the chunks, whole and in pieces, gives them back.
#![no_main]

use std::collections::BTreeMap;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::ChunkError;
use rtmp_server::rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkSize, ChunkStreamId, MAX_CHUNK_STREAMS, MAX_MESSAGE_LENGTH,
    MessageHeader, RawMessage,
};
use rtmp_server::rtmp::message::type_id;
use rtmp_server_fuzz::input::{Input, pieces};

/// Most messages one round trip input describes: with the Set Chunk Size on chunk stream 2
/// in front, at most `MAX_CHUNK_STREAMS` chunk streams are in use, which the decoder
/// accepts.
const MAX_MESSAGES: usize = MAX_CHUNK_STREAMS - 1;

/// Most payload bytes one round trip input describes: at chunk size 1 each byte is a
/// chunk, and a few thousand chunks already cover every path while keeping runs fast.
const MAX_PAYLOAD_BYTES: usize = 8 * 1024;

/// What decoding a byte stream gave: the messages, the error that stopped it (if any),
/// the bytes consumed and, when it did not stop, the bytes left undecoded.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    messages: Vec<RawMessage>,
    error: Option<ChunkError>,
    left: Option<usize>,
    consumed: u64,
}

/// Decodes `parts` fed one after another into one decoder.
fn decode(parts: &[&[u8]]) -> Decoded {
    let mut decoder = ChunkDecoder::new();
    let mut buffer = BytesMut::new();
    let mut messages = Vec::new();
    let mut given = 0u64;
    for part in parts {
        buffer.extend_from_slice(part);
        given += part.len() as u64;
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= MAX_MESSAGE_LENGTH as usize);
                    messages.push(message);
                }
                Ok(None) => break,
                Err(error) => {
                    return Decoded {
                        messages,
                        error: Some(error),
                        left: None,
                        consumed: decoder.position(),
                    };
                }
            }
            assert_eq!(decoder.position() + buffer.len() as u64, given);
        }
    }
    Decoded {
        messages,
        error: None,
        left: Some(buffer.len()),
        consumed: decoder.position(),
    }
}

fn check_decoder(input: &mut Input<'_>) {
    let cut = usize::from(input.u16());
    let wire = input.rest();
    let whole = decode(&[wire]);
    let payload_bytes: usize = whole.messages.iter().map(|m| m.payload.len()).sum();
    assert!(
        payload_bytes as u64 <= whole.consumed,
        "{payload_bytes} payload bytes out of {} consumed",
        whole.consumed
    );
    assert!(whole.consumed <= wire.len() as u64);
    let split = decode(&pieces(wire, &[cut]));
    assert_eq!(whole, split, "decoded whole vs. split at {cut}");
}

/// A message type for the round trip: Abort (2) would drop a message in progress, so it is
/// replaced; Set Chunk Size (1) is kept only where the stream can honour it.
fn message_type(raw: u8, set_chunk_size_allowed: bool) -> u8 {
    match raw {
        type_id::ABORT_MESSAGE => type_id::ACKNOWLEDGEMENT,
        type_id::SET_CHUNK_SIZE if !set_chunk_size_allowed => type_id::ACKNOWLEDGEMENT,
        other => other,
    }
}

fn chunk_size(raw: u32) -> ChunkSize {
    // Small sizes most of the time: many chunks per message is where the bugs live.
    let value = match raw >> 30 {
        0 => 1 + raw % 16,
        1 => 1 + raw % 512,
        2 => 1 + raw % 70_000,
        _ => 1 + raw % 0x7fff_ffff,
    };
    ChunkSize::new(value).expect("1..=2^31-1 is a valid chunk size")
}

fn check_round_trip(input: &mut Input<'_>) {
    let mut encoder = ChunkEncoder::new();
    let interleave = input.bool();
    let cut = usize::from(input.u16());
    let mut wire = BytesMut::new();
    let mut messages = Vec::new();

    // Announce the first chunk size the way a peer does.
    let size = chunk_size(input.u32());
    let control = MessageHeader {
        timestamp: RtmpTimestamp(0),
        message_type_id: type_id::SET_CHUNK_SIZE,
        message_stream_id: 0,
    };
    encoder
        .write_message(
            ChunkStreamId::PROTOCOL_CONTROL,
            &control,
            &size.get().to_be_bytes(),
            &mut wire,
        )
        .expect("4-byte message");
    encoder.set_chunk_size(size);

    let mut payload_bytes = 0;
    while !input.is_empty() && messages.len() < MAX_MESSAGES && payload_bytes < MAX_PAYLOAD_BYTES {
        let id = 2 + u32::from(input.u16()) % (ChunkStreamId::MAX - 1);
        let csid = ChunkStreamId::new(id).expect("2..=65599");
        let timestamp = RtmpTimestamp(match input.byte() % 4 {
            0 => u32::from(input.byte()),
            1 => 0xff_fff0 + u32::from(input.byte() % 32),
            _ => input.u32(),
        });
        let message_type_id = message_type(input.byte(), !interleave);
        let message_stream_id = input.u32();
        let header = MessageHeader {
            timestamp,
            message_type_id,
            message_stream_id,
        };
        let length = usize::from(input.u16() % 2048);
        let mut payload = input.bytes(length).to_vec();
        payload_bytes += payload.len();
        let mut new_size = None;
        if message_type_id == type_id::SET_CHUNK_SIZE {
            let size = chunk_size(u32::from_be_bytes([
                payload.first().copied().unwrap_or(0),
                payload.get(1).copied().unwrap_or(0),
                payload.get(2).copied().unwrap_or(0),
                payload.get(3).copied().unwrap_or(0),
            ]));
            payload.truncate(4);
            payload.resize(4, 0);
            payload[..4].copy_from_slice(&size.get().to_be_bytes());
            new_size = Some(size);
        }
        messages.push(RawMessage {
            chunk_stream_id: csid,
            header,
            payload: payload.into(),
        });
        if !interleave {
            let m = messages.last().expect("just pushed");
            encoder
                .write_message(m.chunk_stream_id, &m.header, &m.payload, &mut wire)
                .expect("short message");
            if let Some(size) = new_size {
                encoder.set_chunk_size(size);
            }
        }
    }

    if interleave {
        // Round-robin over chunk streams, one chunk at a time; messages that share a
        // chunk stream go one after the other.
        let mut queues: BTreeMap<u32, Vec<_>> = BTreeMap::new();
        for m in &messages {
            let chunks = encoder
                .chunks(m.chunk_stream_id, &m.header, &m.payload)
                .expect("short message");
            queues
                .entry(m.chunk_stream_id.get())
                .or_default()
                .extend(chunks);
        }
        let mut queues: Vec<_> = queues.into_values().map(Vec::into_iter).collect();
        let mut any = true;
        while any {
            any = false;
            for queue in &mut queues {
                if let Some(chunk) = queue.next() {
                    chunk.write_to(&mut wire);
                    any = true;
                }
            }
        }
    }

    let whole = decode(&[&wire]);
    assert_eq!(whole.error, None, "the encoder's output does not decode");
    assert_eq!(whole.left, Some(0));
    let decoded = &whole.messages[1..];
    if interleave {
        // Each chunk stream's messages in order; the streams' interleaving is free.
        let by_stream = |list: &[RawMessage]| {
            let mut map: BTreeMap<u32, Vec<RawMessage>> = BTreeMap::new();
            for m in list {
                map.entry(m.chunk_stream_id.get())
                    .or_default()
                    .push(m.clone());
            }
            map
        };
        assert_eq!(by_stream(decoded), by_stream(&messages));
    } else {
        assert_eq!(decoded, &messages[..]);
    }
    let split = decode(&pieces(&wire, &[cut]));
    assert_eq!(whole, split, "round trip decoded whole vs. split at {cut}");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    if input.bool() {
        check_round_trip(&mut input);
    } else {
        check_decoder(&mut input);
    }
});
