//! Typed RTMP messages: what a reassembled message's payload means, and the payloads this
//! server sends. Audio, video and data payloads stay the `Bytes` they arrived in.
//!
//! Spec: RTMP 1.0 §5.4 (protocol control messages 1-3, 5, 6), §6.2 (user control messages,
//! type 4; events in §7.1.7), §7.1 (command 20/17, data 18/15, shared object 19/16, audio
//! 8, video 9, aggregate 22).

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, Value};
use super::error::{Amf0Error, MessageError};

/// Message type ids. Spec: RTMP 1.0 §5.4, §6.2, §7.1.
pub mod type_id {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT_MESSAGE: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACKNOWLEDGEMENT_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control event types. Spec: RTMP 1.0 §7.1.7.
mod event_type {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// How the peer should treat a Set Peer Bandwidth. Spec: RTMP 1.0 §5.4.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitType {
    /// 0: limit the output bandwidth to the window size.
    Hard,
    /// 1: limit to the window size or the limit already in effect, whichever is smaller.
    Soft,
    /// 2: hard if the previous limit was hard, otherwise ignored.
    Dynamic,
    /// A value the specification does not define.
    Unknown(u8),
}

impl LimitType {
    fn from_wire(b: u8) -> LimitType {
        match b {
            0 => LimitType::Hard,
            1 => LimitType::Soft,
            2 => LimitType::Dynamic,
            other => LimitType::Unknown(other),
        }
    }

    fn to_wire(self) -> u8 {
        match self {
            LimitType::Hard => 0,
            LimitType::Soft => 1,
            LimitType::Dynamic => 2,
            LimitType::Unknown(b) => b,
        }
    }
}

/// A user control event. Spec: RTMP 1.0 §6.2, §7.1.7.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserControlEvent {
    /// The stream became functional (server to client, before a publish or play starts).
    StreamBegin {
        stream_id: u32,
    },
    StreamEof {
        stream_id: u32,
    },
    StreamDry {
        stream_id: u32,
    },
    /// The client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        stream_id: u32,
        buffer_length: u32,
    },
    StreamIsRecorded {
        stream_id: u32,
    },
    /// Liveness probe; answered with a PingResponse carrying the same timestamp.
    PingRequest {
        timestamp: u32,
    },
    PingResponse {
        timestamp: u32,
    },
    /// An event type the specification does not define, with its event data.
    Other {
        event_type: u16,
        event_data: Bytes,
    },
}

/// A command message: procedure name, transaction id, command object and arguments.
/// Spec: RTMP 1.0 §7.1.1, §7.2.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub name: String,
    /// 0 when the sender expects no `_result`/`_error`.
    pub transaction_id: f64,
    /// Usually an object (connect) or null.
    pub command_object: Value,
    /// Everything after the command object.
    pub arguments: Vec<Value>,
}

impl Command {
    /// The argument at `index` as a string.
    pub fn string_argument(&self, index: usize) -> Option<&str> {
        self.arguments.get(index).and_then(Value::as_str)
    }

    /// The argument at `index` as a number.
    pub fn number_argument(&self, index: usize) -> Option<f64> {
        self.arguments.get(index).and_then(Value::as_number)
    }
}

/// One RTMP message, by type.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Spec: RTMP 1.0 §5.4.1.
    SetChunkSize { chunk_size: u32 },
    /// Spec: RTMP 1.0 §5.4.2.
    Abort { chunk_stream_id: u32 },
    /// Spec: RTMP 1.0 §5.4.3: bytes received so far.
    Acknowledgement { sequence_number: u32 },
    /// Spec: RTMP 1.0 §6.2.
    UserControl(UserControlEvent),
    /// Spec: RTMP 1.0 §5.4.4: send an Acknowledgement after this many bytes.
    WindowAcknowledgementSize { acknowledgement_window_size: u32 },
    /// Spec: RTMP 1.0 §5.4.5.
    SetPeerBandwidth {
        acknowledgement_window_size: u32,
        limit_type: LimitType,
    },
    /// Spec: RTMP 1.0 §7.1.4: an FLV audio tag body.
    Audio(Bytes),
    /// Spec: RTMP 1.0 §7.1.5: an FLV video tag body.
    Video(Bytes),
    /// Spec: RTMP 1.0 §7.1.1: type 20, or type 17 whose first byte (0) announces an AMF0 body.
    Command(Command),
    /// Spec: RTMP 1.0 §7.1.2: the AMF0 body of a type 18 data message, or of a type 15 one
    /// after its leading 0 byte. Decoded only when it turns out to be metadata.
    Data(Bytes),
    /// A message this server does not interpret (shared objects, aggregates, type 15 data
    /// in AMF3, unassigned types): its type id and payload.
    Other { message_type_id: u8, payload: Bytes },
}

fn be32(payload: &[u8], at: usize, type_id: u8) -> Result<u32, MessageError> {
    match payload.get(at..at + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(MessageError::TooShort {
            type_id,
            length: payload.len(),
            needed: at + 4,
        }),
    }
}

impl Message {
    /// Interprets the payload of a message of type `message_type_id`.
    pub fn parse(message_type_id: u8, payload: Bytes) -> Result<Message, MessageError> {
        let t = message_type_id;
        Ok(match t {
            type_id::SET_CHUNK_SIZE => Message::SetChunkSize {
                chunk_size: be32(&payload, 0, t)?,
            },
            type_id::ABORT_MESSAGE => Message::Abort {
                chunk_stream_id: be32(&payload, 0, t)?,
            },
            type_id::ACKNOWLEDGEMENT => Message::Acknowledgement {
                sequence_number: be32(&payload, 0, t)?,
            },
            type_id::USER_CONTROL => Message::UserControl(parse_user_control(payload)?),
            type_id::WINDOW_ACKNOWLEDGEMENT_SIZE => Message::WindowAcknowledgementSize {
                acknowledgement_window_size: be32(&payload, 0, t)?,
            },
            type_id::SET_PEER_BANDWIDTH => {
                let acknowledgement_window_size = be32(&payload, 0, t)?;
                let Some(&limit) = payload.get(4) else {
                    return Err(MessageError::TooShort {
                        type_id: t,
                        length: payload.len(),
                        needed: 5,
                    });
                };
                Message::SetPeerBandwidth {
                    acknowledgement_window_size,
                    limit_type: LimitType::from_wire(limit),
                }
            }
            type_id::AUDIO => Message::Audio(payload),
            type_id::VIDEO => Message::Video(payload),
            type_id::COMMAND_AMF0 => Message::Command(parse_command(t, &payload)?),
            type_id::COMMAND_AMF3 => match payload.first() {
                Some(0) => Message::Command(parse_command(t, &payload[1..])?),
                Some(&first) => return Err(MessageError::Amf3Body { type_id: t, first }),
                None => {
                    return Err(MessageError::CommandHeader {
                        type_id: t,
                        problem: "is empty",
                    });
                }
            },
            type_id::DATA_AMF0 => Message::Data(payload),
            type_id::DATA_AMF3 if payload.first() == Some(&0) => Message::Data(payload.slice(1..)),
            _ => Message::Other {
                message_type_id: t,
                payload,
            },
        })
    }

    /// The message type id this message is sent with.
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize { .. } => type_id::SET_CHUNK_SIZE,
            Message::Abort { .. } => type_id::ABORT_MESSAGE,
            Message::Acknowledgement { .. } => type_id::ACKNOWLEDGEMENT,
            Message::UserControl(_) => type_id::USER_CONTROL,
            Message::WindowAcknowledgementSize { .. } => type_id::WINDOW_ACKNOWLEDGEMENT_SIZE,
            Message::SetPeerBandwidth { .. } => type_id::SET_PEER_BANDWIDTH,
            Message::Audio(_) => type_id::AUDIO,
            Message::Video(_) => type_id::VIDEO,
            Message::Command(_) => type_id::COMMAND_AMF0,
            Message::Data(_) => type_id::DATA_AMF0,
            Message::Other {
                message_type_id, ..
            } => *message_type_id,
        }
    }

    /// Appends the payload of this message, as it is sent with [`Message::type_id`]
    /// (commands and data as AMF0, types 20 and 18).
    pub fn write_payload(&self, out: &mut BytesMut) -> Result<(), Amf0Error> {
        match self {
            Message::SetChunkSize { chunk_size: v }
            | Message::Abort { chunk_stream_id: v }
            | Message::Acknowledgement { sequence_number: v }
            | Message::WindowAcknowledgementSize {
                acknowledgement_window_size: v,
            } => out.put_u32(*v),
            Message::SetPeerBandwidth {
                acknowledgement_window_size,
                limit_type,
            } => {
                out.put_u32(*acknowledgement_window_size);
                out.put_u8(limit_type.to_wire());
            }
            Message::UserControl(event) => write_user_control(event, out),
            Message::Audio(payload)
            | Message::Video(payload)
            | Message::Data(payload)
            | Message::Other { payload, .. } => out.put_slice(payload),
            Message::Command(command) => {
                amf0::encode(&Value::String(command.name.clone()), out)?;
                amf0::encode(&Value::Number(command.transaction_id), out)?;
                amf0::encode(&command.command_object, out)?;
                for argument in &command.arguments {
                    amf0::encode(argument, out)?;
                }
            }
        }
        Ok(())
    }
}

/// Spec: RTMP 1.0 §6.2: 16-bit event type, then event data.
fn parse_user_control(payload: Bytes) -> Result<UserControlEvent, MessageError> {
    let t = type_id::USER_CONTROL;
    let Some(head) = payload.get(..2) else {
        return Err(MessageError::TooShort {
            type_id: t,
            length: payload.len(),
            needed: 2,
        });
    };
    let event_type = u16::from_be_bytes([head[0], head[1]]);
    let value = |at| be32(&payload, at, t);
    Ok(match event_type {
        event_type::STREAM_BEGIN => UserControlEvent::StreamBegin {
            stream_id: value(2)?,
        },
        event_type::STREAM_EOF => UserControlEvent::StreamEof {
            stream_id: value(2)?,
        },
        event_type::STREAM_DRY => UserControlEvent::StreamDry {
            stream_id: value(2)?,
        },
        event_type::SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
            stream_id: value(2)?,
            buffer_length: value(6)?,
        },
        event_type::STREAM_IS_RECORDED => UserControlEvent::StreamIsRecorded {
            stream_id: value(2)?,
        },
        event_type::PING_REQUEST => UserControlEvent::PingRequest {
            timestamp: value(2)?,
        },
        event_type::PING_RESPONSE => UserControlEvent::PingResponse {
            timestamp: value(2)?,
        },
        other => UserControlEvent::Other {
            event_type: other,
            event_data: payload.slice(2..),
        },
    })
}

fn write_user_control(event: &UserControlEvent, out: &mut BytesMut) {
    let (event_type, value) = match event {
        UserControlEvent::StreamBegin { stream_id } => (event_type::STREAM_BEGIN, *stream_id),
        UserControlEvent::StreamEof { stream_id } => (event_type::STREAM_EOF, *stream_id),
        UserControlEvent::StreamDry { stream_id } => (event_type::STREAM_DRY, *stream_id),
        UserControlEvent::SetBufferLength {
            stream_id,
            buffer_length,
        } => {
            out.put_u16(event_type::SET_BUFFER_LENGTH);
            out.put_u32(*stream_id);
            out.put_u32(*buffer_length);
            return;
        }
        UserControlEvent::StreamIsRecorded { stream_id } => {
            (event_type::STREAM_IS_RECORDED, *stream_id)
        }
        UserControlEvent::PingRequest { timestamp } => (event_type::PING_REQUEST, *timestamp),
        UserControlEvent::PingResponse { timestamp } => (event_type::PING_RESPONSE, *timestamp),
        UserControlEvent::Other {
            event_type,
            event_data,
        } => {
            out.put_u16(*event_type);
            out.put_slice(event_data);
            return;
        }
    };
    out.put_u16(event_type);
    out.put_u32(value);
}

/// Spec: RTMP 1.0 §7.1.1: command name (string), transaction id (number), command object,
/// optional arguments.
fn parse_command(t: u8, body: &[u8]) -> Result<Command, MessageError> {
    let mut values = amf0::Decoder::decode_all(body)
        .map_err(|source| MessageError::CommandBody { type_id: t, source })?
        .into_iter();
    let name = match values.next() {
        Some(Value::String(name)) => name,
        _ => {
            return Err(MessageError::CommandHeader {
                type_id: t,
                problem: "does not start with a command name string",
            });
        }
    };
    let transaction_id = match values.next() {
        Some(Value::Number(id)) => id,
        _ => {
            return Err(MessageError::CommandHeader {
                type_id: t,
                problem: "has no transaction id number after the command name",
            });
        }
    };
    Ok(Command {
        name,
        transaction_id,
        command_object: values.next().unwrap_or(Value::Null),
        arguments: values.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex::FromHex;

    fn bytes(hex: &str) -> Bytes {
        Bytes::from(Vec::from_hex(hex.replace(' ', "")).expect("test vector is hex"))
    }

    fn payload(message: &Message) -> Bytes {
        let mut out = BytesMut::new();
        message.write_payload(&mut out).expect("encodable");
        out.freeze()
    }

    /// Each message, its golden payload, and the type it goes with.
    fn golden() -> Vec<(Message, &'static str)> {
        vec![
            (Message::SetChunkSize { chunk_size: 60_000 }, "0000ea60"),
            (Message::Abort { chunk_stream_id: 6 }, "00000006"),
            (
                Message::Acknowledgement {
                    sequence_number: 2_500_000,
                },
                "002625a0",
            ),
            (
                Message::WindowAcknowledgementSize {
                    acknowledgement_window_size: 2_500_000,
                },
                "002625a0",
            ),
            (
                Message::SetPeerBandwidth {
                    acknowledgement_window_size: 2_500_000,
                    limit_type: LimitType::Dynamic,
                },
                "002625a0 02",
            ),
            (
                Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 }),
                "0000 00000001",
            ),
            (
                Message::UserControl(UserControlEvent::StreamEof { stream_id: 1 }),
                "0001 00000001",
            ),
            (
                Message::UserControl(UserControlEvent::StreamDry { stream_id: 1 }),
                "0002 00000001",
            ),
            (
                Message::UserControl(UserControlEvent::SetBufferLength {
                    stream_id: 1,
                    buffer_length: 3000,
                }),
                "0003 00000001 00000bb8",
            ),
            (
                Message::UserControl(UserControlEvent::StreamIsRecorded { stream_id: 1 }),
                "0004 00000001",
            ),
            (
                Message::UserControl(UserControlEvent::PingRequest { timestamp: 10_000 }),
                "0006 00002710",
            ),
            (
                Message::UserControl(UserControlEvent::PingResponse { timestamp: 10_000 }),
                "0007 00002710",
            ),
            (
                Message::UserControl(UserControlEvent::Other {
                    event_type: 31,
                    event_data: bytes("0102"),
                }),
                "001f 0102",
            ),
            (Message::Audio(bytes("af01 21")), "af01 21"),
            (Message::Video(bytes("1701 000000")), "1701 000000"),
            (
                Message::Command(Command {
                    name: "createStream".to_owned(),
                    transaction_id: 4.0,
                    command_object: Value::Null,
                    arguments: vec![],
                }),
                "02 000c 63726561746553747265616d 00 4010000000000000 05",
            ),
            (
                Message::Command(Command {
                    name: "_result".to_owned(),
                    transaction_id: 4.0,
                    command_object: Value::Null,
                    arguments: vec![Value::Number(1.0)],
                }),
                "02 0007 5f726573756c74 00 4010000000000000 05 00 3ff0000000000000",
            ),
            (Message::Data(bytes("02 0001 61")), "02 0001 61"),
            (
                Message::Other {
                    message_type_id: 22,
                    payload: bytes("09"),
                },
                "09",
            ),
        ]
    }

    #[test]
    fn golden_payloads_and_round_trips() {
        for (message, hex) in golden() {
            let wire = payload(&message);
            assert_eq!(wire, bytes(hex), "{message:?}");
            assert_eq!(Message::parse(message.type_id(), wire), Ok(message.clone()));
        }
    }

    #[test]
    fn every_truncation_of_fixed_payloads_is_an_error() {
        for (message, hex) in golden() {
            let wire = bytes(hex);
            let fixed = !matches!(
                message,
                Message::Audio(_)
                    | Message::Video(_)
                    | Message::Data(_)
                    | Message::Other { .. }
                    | Message::Command(_)
                    | Message::UserControl(UserControlEvent::Other { .. })
            );
            if !fixed {
                continue;
            }
            for cut in 0..wire.len() {
                let result = Message::parse(message.type_id(), wire.slice(..cut));
                assert!(
                    matches!(result, Err(MessageError::TooShort { needed, .. }) if needed > cut),
                    "{message:?} cut at {cut}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn payloads_are_not_copied() {
        let wire = bytes("af01 2110");
        let Ok(Message::Audio(audio)) = Message::parse(type_id::AUDIO, wire.clone()) else {
            panic!("audio");
        };
        assert_eq!(audio.as_ptr(), wire.as_ptr());
        // AMF3 data: the leading 0 is dropped by slicing.
        let wire = bytes("00 02 0001 61");
        let Ok(Message::Data(data)) = Message::parse(type_id::DATA_AMF3, wire.clone()) else {
            panic!("data");
        };
        assert_eq!(data.as_ptr(), wire[1..].as_ptr());
    }

    #[test]
    fn amf3_command_with_amf0_body() {
        let wire = bytes("00 02 0004 706c6179 00 0000000000000000 05 02 0001 6b");
        assert_eq!(
            Message::parse(type_id::COMMAND_AMF3, wire),
            Ok(Message::Command(Command {
                name: "play".to_owned(),
                transaction_id: 0.0,
                command_object: Value::Null,
                arguments: vec![Value::String("k".to_owned())],
            }))
        );
        assert_eq!(
            Message::parse(type_id::COMMAND_AMF3, bytes("11 0a")),
            Err(MessageError::Amf3Body {
                type_id: 17,
                first: 0x11
            })
        );
        assert!(matches!(
            Message::parse(type_id::COMMAND_AMF3, Bytes::new()),
            Err(MessageError::CommandHeader { type_id: 17, .. })
        ));
        // AMF3 data without the AMF0 marker byte is not interpreted.
        assert_eq!(
            Message::parse(type_id::DATA_AMF3, bytes("0a 01")),
            Ok(Message::Other {
                message_type_id: 15,
                payload: bytes("0a 01")
            })
        );
    }

    #[test]
    fn malformed_commands() {
        // No transaction id.
        let wire = bytes("02 0004 706c6179");
        assert!(matches!(
            Message::parse(type_id::COMMAND_AMF0, wire),
            Err(MessageError::CommandHeader { type_id: 20, .. })
        ));
        // A number where the name belongs.
        let wire = bytes("00 0000000000000000");
        assert!(matches!(
            Message::parse(type_id::COMMAND_AMF0, wire),
            Err(MessageError::CommandHeader { .. })
        ));
        // Truncated AMF0.
        let wire = bytes("02 0004 706c61");
        assert!(matches!(
            Message::parse(type_id::COMMAND_AMF0, wire),
            Err(MessageError::CommandBody {
                type_id: 20,
                source: Amf0Error::Truncated { .. }
            })
        ));
        // Name and transaction id only: the command object defaults to null.
        let wire = bytes("02 0004 706c6179 00 4000000000000000");
        let Ok(Message::Command(command)) = Message::parse(type_id::COMMAND_AMF0, wire) else {
            panic!("command");
        };
        assert_eq!(command.command_object, Value::Null);
        assert!(command.arguments.is_empty());
        assert_eq!(command.string_argument(0), None);
    }

    #[test]
    fn unknown_limit_type_is_kept() {
        assert_eq!(
            Message::parse(type_id::SET_PEER_BANDWIDTH, bytes("00000100 07")),
            Ok(Message::SetPeerBandwidth {
                acknowledgement_window_size: 256,
                limit_type: LimitType::Unknown(7)
            })
        );
    }
}
