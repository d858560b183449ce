//! Hostile and broken RTMP clients against the real server, over real sockets: slow and
//! silent connections, absurd sizes and counts, commands out of order. Each ends that one
//! connection with a logged reason (or is refused with a status, or ignored where the
//! specification allows it), while a real ffmpeg stream on the same server keeps going and
//! the server's memory stays where it was.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::hls_check::check_output;
use common::raw::*;
use common::*;
use rtmp_server::flv::tag::TagType;
use rtmp_server::rtmp::amf0::{self, Value};
use rtmp_server::rtmp::message::{Message, type_id};

#[test]
fn slow_and_silent_handshakes_are_dropped_at_the_handshake_timeout() {
    let bystander = Bystander::start(&["--rtmp-handshake-timeout", "2"]);
    // A handshake sent one byte a second: C0 then C1, which would take 25 minutes.
    let mut slow = bystander.raw();
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    let writer = dribble(slow.socket(), c0c1);
    // A connection that never speaks.
    let mut silent = bystander.raw();

    assert!(
        slow.closed_within(CLOSE_TIMEOUT),
        "slow handshake still open"
    );
    assert!(
        silent.closed_within(CLOSE_TIMEOUT),
        "silent connection still open"
    );
    let sent = writer.join().unwrap();
    assert!(sent < 1537, "the slow handshake was allowed to finish");
    bystander
        .server
        .assert_logged_times("no handshake and connect within 2s", 2);
    bystander.assert_unharmed();
}

#[test]
fn a_client_silent_after_connect_is_pinged_then_dropped() {
    let bystander = Bystander::start(&["--rtmp-ping", "1", "--rtmp-ping-timeout", "3"]);
    let mut c = bystander.connected();
    bystander.assert_closed(&mut c, "silent after connect", "silent for 3s");
    assert!(
        c.pings_received() >= 1,
        "closed without a ping first: {:?}",
        c.received
    );
    bystander.assert_unharmed();
}

/// The first chunk of a message on `csid` announcing `length` bytes of type `type_id`,
/// carrying `first` bytes of it (a type 0 header, RTMP 1.0 §5.3.1.2.1).
fn announce(csid: u8, length: u32, type_id: u8, first: &[u8]) -> Vec<u8> {
    assert!((3..64).contains(&csid), "one-byte basic header");
    let mut out = vec![csid];
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(first);
    out
}

/// A `connect` command whose command object nests `depth` objects, each the only property
/// of the one around it.
fn deeply_nested_connect(depth: usize) -> Vec<u8> {
    let mut body = BytesMut::new();
    amf0::encode(&Value::from("connect"), &mut body).unwrap();
    amf0::encode(&Value::Number(1.0), &mut body).unwrap();
    let mut out = body.to_vec();
    out.push(0x03);
    for _ in 0..depth {
        out.extend_from_slice(&[0x00, 0x01, b'a', 0x03]);
    }
    for _ in 0..=depth {
        out.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    out
}

#[test]
fn absurd_sizes_and_counts_end_the_connection_with_a_logged_reason() {
    let bystander = Bystander::start(&[]);

    // Before a publish is accepted, no message may be long: commands are small.
    let mut c = bystander.connected();
    let _ = c.send(&announce(3, 0xFF_FFFF, type_id::COMMAND_AMF0, &[0x02; 128]));
    bystander.assert_closed(&mut c, "16 MiB before publishing", "bytes allowed here");

    // Publishing: the largest length the 24-bit field holds, then bytes that are no chunk
    // header the message could continue with (0xFF: a type 3 chunk on a chunk stream never
    // opened).
    let mut c = bystander.raw();
    c.start_publish("huge");
    let _ = c.send(&announce(3, 0xFF_FFFF, type_id::VIDEO, &[0x17; 128]));
    let _ = c.send(&[0xFF; 4096]);
    bystander.assert_closed(
        &mut c,
        "16 MiB then garbage",
        "chunk header type 3 on chunk stream 63",
    );

    // Many messages each announcing 1 MiB, on many chunk streams, never finished.
    let mut c = bystander.raw();
    c.start_publish("many");
    for csid in 4..60 {
        let _ = c.send(&announce(csid, 1 << 20, type_id::VIDEO, &[0; 128]));
    }
    bystander.assert_closed(
        &mut c,
        "many large messages",
        "bytes held for partly received messages",
    );

    // Set Chunk Size 0 and 2^31 (RTMP 1.0 §5.4.1: 1 to 2^31-1).
    let mut c = bystander.connected();
    let _ = c.set_chunk_size(0);
    bystander.assert_closed(&mut c, "chunk size 0", "Set Chunk Size to 0");
    let mut c = bystander.connected();
    let _ = c.set_chunk_size(1 << 31);
    bystander.assert_closed(&mut c, "chunk size 2^31", "reserved top bit set");

    // Thousands of chunk stream ids, each with an empty message of an unassigned type.
    let mut c = bystander.connected();
    let mut storm = Vec::new();
    for csid in 10..3010 {
        storm.extend(c.message_bytes(csid, 0, 0, 0x30, &[]));
    }
    let _ = c.send(&storm);
    bystander.assert_closed(
        &mut c,
        "thousands of chunk streams",
        "at most 64 are kept per connection",
    );

    // An AMF0 string (and a long string) longer than the message that carries it.
    let mut c = bystander.raw();
    c.handshake();
    let _ = c.command_raw(0, b"\x02\xff\xffconnect");
    bystander.assert_closed(&mut c, "long string", "AMF0 input ends at byte 10");
    let mut c = bystander.raw();
    c.handshake();
    let _ = c.command_raw(0, b"\x0c\xff\xff\xff\xffconnect");
    bystander.assert_closed(&mut c, "long long string", "AMF0 input ends at byte 12");

    // 5,000 nested objects in a connect (about as many as fit the 64 KiB a message may hold
    // before a publish).
    let mut c = bystander.raw();
    c.handshake();
    let _ = c.set_chunk_size(65536);
    let _ = c.command_raw(0, &deeply_nested_connect(5_000));
    bystander.assert_closed(&mut c, "nested objects", "nested deeper than 32 levels");
    // 100,000: longer than any message before a publish.
    let mut c = bystander.raw();
    c.handshake();
    let _ = c.set_chunk_size(1 << 20);
    let _ = c.command_raw(0, &deeply_nested_connect(100_000));
    bystander.assert_closed(&mut c, "100,000 nested objects", "bytes allowed here");

    bystander.assert_unharmed();
}

#[test]
fn many_connections_announcing_huge_messages_do_not_commit_memory() {
    let bystander = Bystander::start(&[]);
    // Each connection publishes (only then may messages be large), starts messages up to
    // the per-connection limit of partly received bytes (twice the largest message),
    // announcing 32 MiB in all with a few hundred bytes sent, and holds them open.
    let mut held = Vec::new();
    for i in 0..50 {
        let mut c = bystander.raw();
        c.start_publish(&format!("held{i}"));
        c.send(&announce(4, 0xFF_FFFF, type_id::VIDEO, &[0; 128]))
            .unwrap();
        c.send(&announce(6, 0xFF_FFFF, type_id::AUDIO, &[0; 128]))
            .unwrap();
        held.push(c);
    }
    // Every connection is still open (the announcements are within the limits) and the
    // server has read them all: a createStream on each is answered.
    for c in &mut held {
        c.create_stream();
    }
    let rss = bystander.server.rss_kib();
    assert!(
        rss <= bystander.rss_before + RSS_GROWTH_KIB,
        "50 connections announcing 1.6 GiB raised RSS from {} KiB to {rss} KiB",
        bystander.rss_before
    );
    drop(held);
    bystander.assert_unharmed();
}

#[test]
fn a_window_ack_size_of_zero_asks_for_no_acknowledgements() {
    let bystander = Bystander::start(&[]);
    let filler = vec![0u8; 60_000];
    let acks = |c: &RawRtmp| {
        c.received
            .iter()
            .filter(|m| matches!(m, Message::Acknowledgement { .. }))
            .count()
    };
    // A connection that announces `window`, then sends 3 MB of (ignored) messages.
    let after_3mb_with_window = |window: u32| {
        let mut c = bystander.connected();
        c.set_chunk_size(65536).unwrap();
        c.message(
            2,
            0,
            0,
            type_id::WINDOW_ACKNOWLEDGEMENT_SIZE,
            &window.to_be_bytes(),
        )
        .unwrap();
        for _ in 0..50 {
            c.message(8, 0, 0, 0x30, &filler).unwrap();
        }
        c.create_stream();
        c
    };
    // With a window of 1 MB, 3 MB are acknowledged about 3 times.
    let c = after_3mb_with_window(1_000_000);
    assert!(
        acks(&c) >= 2,
        "window of 1 MB: {} acknowledgements",
        acks(&c)
    );

    // A window of 0 is taken as no window, as nginx-rtmp and SRS take it: no flood of
    // acknowledgements, and the connection works on.
    let mut c = after_3mb_with_window(0);
    assert_eq!(acks(&c), 0, "acknowledgements for a window of 0");
    assert!(c.open_after(Duration::from_secs(1)), "connection closed");
    bystander.assert_unharmed();
}

#[test]
fn commands_out_of_order_are_refused_and_the_server_carries_on() {
    let bystander = Bystander::start(&[]);

    // Media before publish.
    let mut c = bystander.connected();
    let stream = c.create_stream();
    let _ = c.message(
        VIDEO_CSID,
        stream,
        0,
        type_id::VIDEO,
        &[0x17, 0x01, 0, 0, 0],
    );
    bystander.assert_closed(
        &mut c,
        "media before publish",
        "which is not an accepted publish",
    );

    // publish before connect.
    let mut c = bystander.raw();
    c.handshake();
    let _ = c.publish(1, "early");
    bystander.assert_closed(&mut c, "publish before connect", "publish before connect");

    // Two publishes on one connection.
    let mut c = bystander.raw();
    let stream = c.start_publish("twice");
    let _ = c.publish(stream, "twice-again");
    bystander.assert_closed(&mut c, "second publish", "is already publishing");

    // play of a stream that is not live: answered, not ignored.
    let mut c = bystander.connected();
    let stream = c.create_stream();
    c.command(stream, "play", Value::Null, vec![Value::from("nobody")])
        .unwrap();
    assert!(
        c.wait_status("NetStream.Play.StreamNotFound", ANSWER_TIMEOUT),
        "play answered with {:?}",
        c.status_codes()
    );
    bystander.server.assert_logged("play refused");

    // play on a connection that publishes.
    let mut c = bystander.raw();
    let stream = c.start_publish("both");
    let _ = c.command(stream, "play", Value::Null, vec![Value::from("bystander")]);
    bystander.assert_closed(
        &mut c,
        "play while publishing",
        "already publishes or plays",
    );

    bystander.assert_unharmed();
}

/// Publishes the test file's tags on `c`, calling `between` before each one.
fn publish_file(c: &mut RawRtmp, stream: u32, mut between: impl FnMut(&mut RawRtmp, usize)) {
    for (i, tag) in flv_tags(&testdata("flv/h264_aac.flv")).iter().enumerate() {
        between(c, i);
        match tag.tag_type {
            TagType::Audio => c.media(type_id::AUDIO, stream, tag.timestamp, &tag.body),
            TagType::Video => c.media(type_id::VIDEO, stream, tag.timestamp, &tag.body),
            TagType::ScriptData => {
                let mut body = BytesMut::new();
                amf0::encode(&Value::from("@setDataFrame"), &mut body).unwrap();
                body.extend_from_slice(&tag.body);
                c.message(
                    AUDIO_CSID,
                    stream,
                    tag.timestamp.0,
                    type_id::DATA_AMF0,
                    &body,
                )
            }
        }
        .expect("the server reads on");
    }
}

/// FCUnpublish and deleteStream, then waits for NetStream.Unpublish.Success.
fn unpublish(c: &mut RawRtmp, stream: u32, key: &str) {
    c.command(0, "FCUnpublish", Value::Null, vec![Value::from(key)])
        .unwrap();
    c.command(
        0,
        "deleteStream",
        Value::Null,
        vec![Value::Number(f64::from(stream))],
    )
    .unwrap();
    assert!(
        c.wait_status("NetStream.Unpublish.Success", STREAM_TIMEOUT),
        "unpublish not confirmed; got {:?}",
        c.status_codes()
    );
}

#[test]
fn unknown_message_types_are_ignored_and_the_stream_is_whole() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let mut c = RawRtmp::connect(server.rtmp_port);
    let stream = c.start_publish("odd");
    let oddities: Vec<(u8, Vec<u8>)> = vec![
        (0, b"type zero".to_vec()),
        (7, vec![1, 2, 3]),
        (type_id::SHARED_OBJECT_AMF3, vec![0xAA; 40]),
        (type_id::SHARED_OBJECT_AMF0, vec![0x55; 40]),
        (type_id::AGGREGATE, vec![0xFF; 300]),
        (type_id::DATA_AMF3, vec![0x11, 0x22]),
        (0x30, Vec::new()),
        (0xFF, vec![0; 1000]),
        // A user control event type the specification does not define.
        (type_id::USER_CONTROL, vec![0x00, 0x99, 1, 2, 3, 4]),
    ];
    publish_file(&mut c, stream, |c, i| {
        if i % 25 == 7 {
            let (type_id, payload) = &oddities[(i / 25) % oddities.len()];
            c.message(20, stream, 0, *type_id, payload).unwrap();
            c.command(
                0,
                "someCommandNobodyKnows",
                Value::Null,
                vec![Value::Number(1.0)],
            )
            .unwrap();
        }
    });
    unpublish(&mut c, stream, "odd");

    let (playlist, segments) = finished_segments(&server, "odd");
    assert_same_frames(&testdata("flv/h264_aac.flv"), &segments);
    check_output(&server.stream_dir("odd"), &playlist, true, true);
    server.assert_logged("ignoring message");
}

#[test]
fn media_before_its_configuration_is_dropped_and_the_stream_continues() {
    let server = ServerProcess::start(&["--hls-keep", "--hls-list-size", "100"]);
    let source = testdata("flv/h264_aac.flv");
    let tags = flv_tags(&source);
    let mut c = RawRtmp::connect(server.rtmp_port);
    let stream = c.start_publish("early");
    // H.264 frames before any AVC sequence header, AAC frames before any
    // AudioSpecificConfig: the file's own frames, sent ahead of its headers.
    let frames = |kind: TagType, packet_type: u8| {
        tags.iter()
            .filter(move |t| t.tag_type == kind && t.body.get(1) == Some(&packet_type))
            .take(20)
    };
    for tag in frames(TagType::Video, 1) {
        c.media(type_id::VIDEO, stream, tag.timestamp, &tag.body)
            .unwrap();
    }
    for tag in frames(TagType::Audio, 1) {
        c.media(type_id::AUDIO, stream, tag.timestamp, &tag.body)
            .unwrap();
    }
    publish_file(&mut c, stream, |_, _| {});
    unpublish(&mut c, stream, "early");

    // The early frames left no trace: the output is the file, frame for frame.
    let (playlist, segments) = finished_segments(&server, "early");
    assert_same_frames(&source, &segments);
    check_output(&server.stream_dir("early"), &playlist, true, true);
    server.assert_logged("video frame before its track's sequence start");
    server.assert_logged("audio frame before its track's sequence start");
}

#[test]
fn an_encoder_whose_clock_stands_still_is_stopped_at_a_bounded_segment() {
    let bystander = Bystander::start(&[]);
    let tags = flv_tags(&testdata("flv/h264_aac.flv"));
    let mut c = bystander.raw();
    let stream = c.start_publish("frozen");
    // The file's media again and again, every frame at time 0: segments are cut by media
    // time, so without a bound on bytes the open segment would hold all of it.
    let limit: u64 = 160 * 1024 * 1024;
    let (mut sent, mut peak) = (0u64, bystander.rss_before);
    'send: while sent < limit {
        for tag in tags.iter().filter(|t| t.tag_type != TagType::ScriptData) {
            let kind = match tag.tag_type {
                TagType::Audio => type_id::AUDIO,
                _ => type_id::VIDEO,
            };
            let at_zero = rtmp_server::media::RtmpTimestamp(0);
            if c.media(kind, stream, at_zero, &tag.body).is_err() {
                break 'send;
            }
            sent += tag.body.len() as u64;
        }
        peak = peak.max(bystander.server.rss_kib());
    }
    bystander.assert_closed(
        &mut c,
        "clock standing still",
        "the encoder's timestamps are not advancing",
    );
    assert!(sent < limit, "all {sent} bytes taken at one timestamp");
    assert!(
        peak <= bystander.rss_before + 96 * 1024,
        "RSS rose from {} KiB to {peak} KiB",
        bystander.rss_before
    );
    // Nothing of it was listed: the oversized segment was dropped.
    assert!(http_playlist(&bystander.server, "frozen").is_none_or(|p| p.entries.is_empty()));
    bystander.assert_unharmed();
}
