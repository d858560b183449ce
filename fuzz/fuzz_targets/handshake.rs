//! `rtmp::Handshake::feed` on arbitrary client bytes, in arbitrary pieces.
//!
//! Input: a flags byte (bit 0: start with the C0+C1 ffmpeg 5.1 sent, whose digest
//! verifies, so the signed answer is exercised), a count of cut points and the cut points
//! (u16 each), then the client bytes.
//!
//! Properties: no panic; S0+S1+S2 go out whole (3073 bytes) exactly once, as soon as C0+C1
//! are in and not before; the handshake never consumes more than C0+C1+C2 nor more than it
//! was given, and leaves what follows C2 in the buffer; it fails only on a C0 that is not
//! version 3; a plain C1 is echoed in S2.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rtmp_server::rtmp::Handshake;
use rtmp_server::rtmp::handshake::{CLIENT_HANDSHAKE_LEN, HANDSHAKE_SIZE, RTMP_VERSION};
use rtmp_server_fuzz::input::{Input, pieces};

const FFMPEG_C0C1: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_c0c1.bin");

/// S0 + S1 + S2.
const ANSWER_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// Most cut points read from one input.
const MAX_CUTS: u8 = 16;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let cuts: Vec<usize> = (0..input.byte() % MAX_CUTS)
        .map(|_| usize::from(input.u16()))
        .collect();
    let mut client = Vec::new();
    if flags & 1 == 1 {
        client.extend_from_slice(FFMPEG_C0C1);
    }
    client.extend_from_slice(input.rest());

    let mut handshake = Handshake::new();
    let mut buffer = BytesMut::new();
    let mut out = BytesMut::new();
    let mut given = 0usize;
    let mut consumed = 0usize;
    let mut done = false;
    for piece in pieces(&client, &cuts) {
        buffer.extend_from_slice(piece);
        given += piece.len();
        let before = buffer.len();
        let result = handshake.feed(&mut buffer, &mut out);
        assert!(buffer.len() <= before, "the handshake added input bytes");
        consumed += before - buffer.len();
        assert_eq!(consumed + buffer.len(), given, "bytes lost or invented");
        assert!(
            consumed <= CLIENT_HANDSHAKE_LEN,
            "consumed {consumed} bytes, past C0+C1+C2"
        );
        match result {
            Err(_) => {
                assert_ne!(client[0], RTMP_VERSION, "a version 3 C0 was refused");
                assert!(out.is_empty(), "an answer went out before the refusal");
                return;
            }
            Ok(finished) => {
                assert!(!done || finished, "the handshake became unfinished again");
                done = finished;
            }
        }
        // The answer goes out whole, exactly when C0+C1 are in.
        let expected_out = if consumed > HANDSHAKE_SIZE {
            ANSWER_LEN
        } else {
            0
        };
        assert_eq!(
            out.len(),
            expected_out,
            "answer after {consumed} bytes consumed"
        );
        // C0+C1, then C2, are each taken as soon as they are whole; nothing after C2.
        let wanted = if given >= CLIENT_HANDSHAKE_LEN {
            CLIENT_HANDSHAKE_LEN
        } else if given > HANDSHAKE_SIZE {
            1 + HANDSHAKE_SIZE
        } else {
            0
        };
        assert_eq!(consumed, wanted, "{given} bytes given");
        assert_eq!(done, given >= CLIENT_HANDSHAKE_LEN, "{given} bytes given");
    }
    if client.first().is_some_and(|&v| v != RTMP_VERSION) {
        panic!("a C0 of version {} was not refused", client[0]);
    }
    if out.len() == ANSWER_LEN {
        assert_eq!(out[0], RTMP_VERSION, "S0");
        let c1 = &client[1..1 + HANDSHAKE_SIZE];
        if c1[4..8] == [0; 4] {
            assert_eq!(&out[1 + HANDSHAKE_SIZE..], c1, "S2 echoes a plain C1");
        }
    }
});
