//! AMF0 decoding of arbitrary bytes, and typed RTMP messages built on it.
//!
//! Input: a message type id byte, then a body.
//!
//! Properties: no panic; every value decoded (up to the first error) encodes into at most
//! the bytes it was read from, and that encoding decodes to the same value (numbers
//! compared bit for bit, so NaN payloads count) and re-encodes to the same bytes. The body
//! read as an RTMP message of the given type (`Message::parse`) writes a payload that
//! parses back to the same message.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rtmp_server::rtmp::amf0::{self, Decoder, Value};
use rtmp_server::rtmp::message::Message;
use rtmp_server_fuzz::input::Input;

/// Equality with numbers compared by their bits (`f64`'s `==` says NaN differs from itself
/// and 0.0 equals -0.0; the encoding keeps the bits).
fn same(a: &Value, b: &Value) -> bool {
    let same_properties = |x: &[(String, Value)], y: &[(String, Value)]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (
            Value::Date {
                millis: x,
                time_zone: tx,
            },
            Value::Date {
                millis: y,
                time_zone: ty,
            },
        ) => x.to_bits() == y.to_bits() && tx == ty,
        (Value::Object(x), Value::Object(y)) | (Value::EcmaArray(x), Value::EcmaArray(y)) => {
            same_properties(x, y)
        }
        (Value::StrictArray(x), Value::StrictArray(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(vx, vy)| same(vx, vy))
        }
        _ => a == b,
    }
}

fn encoded(value: &Value) -> BytesMut {
    let mut out = BytesMut::new();
    amf0::encode(value, &mut out).expect("a decoded value is encodable");
    out
}

fn check_values(body: &[u8]) {
    let mut decoder = Decoder::new(body);
    let mut values = Vec::new();
    let mut start = decoder.position();
    while let Ok(Some(value)) = decoder.decode() {
        let read = decoder.position() - start;
        let bytes = encoded(&value);
        assert!(
            bytes.len() <= read,
            "{value:?} read from {read} bytes encodes into {}",
            bytes.len()
        );
        values.push(value);
        start = decoder.position();
    }
    // The values together: references index objects across the whole body, so they are
    // decoded back as one sequence.
    let mut all = BytesMut::new();
    for value in &values {
        amf0::encode(value, &mut all).expect("a decoded value is encodable");
    }
    let again = Decoder::decode_all(&all).expect("an encoding decodes");
    assert_eq!(again.len(), values.len());
    for (a, b) in values.iter().zip(&again) {
        assert!(same(a, b), "{a:?} came back as {b:?}");
    }
    let mut all_again = BytesMut::new();
    for value in &again {
        amf0::encode(value, &mut all_again).expect("a decoded value is encodable");
    }
    assert_eq!(all, all_again, "the encoding is not stable");
}

/// Message equality with the command values compared by [`same`].
fn same_message(a: &Message, b: &Message) -> bool {
    match (a, b) {
        (Message::Command(x), Message::Command(y)) => {
            x.name == y.name
                && x.transaction_id.to_bits() == y.transaction_id.to_bits()
                && same(&x.command_object, &y.command_object)
                && x.arguments.len() == y.arguments.len()
                && x.arguments
                    .iter()
                    .zip(&y.arguments)
                    .all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn check_message(type_id: u8, body: &[u8]) {
    let Ok(message) = Message::parse(type_id, Bytes::copy_from_slice(body)) else {
        return;
    };
    let mut payload = BytesMut::new();
    message
        .write_payload(&mut payload)
        .expect("a parsed message is writable");
    let again =
        Message::parse(message.type_id(), payload.freeze()).expect("a written message parses");
    assert!(
        same_message(&message, &again),
        "{message:?} came back as {again:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let type_id = input.byte();
    let body = input.rest();
    check_values(body);
    check_message(type_id, body);
});
