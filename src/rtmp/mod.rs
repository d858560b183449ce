//! RTMP ingest, sans-IO: bytes in, bytes and events out. `conn` drives these over a socket.
//!
//! Layers, bottom up, each in its own module:
//!
//! - [`handshake`]: C0/C1/C2 in, S0/S1/S2 out, plain and digest ("complex") C1.
//!   Spec: RTMP 1.0 §5.2.
//! - [`chunk`]: the chunk stream, decoder and encoder. Spec: RTMP 1.0 §5.3, §5.4.1, §5.4.2.
//! - [`message`]: typed messages (protocol control, user control, command, data, audio,
//!   video). Spec: RTMP 1.0 §5.4, §6.2, §7.1.
//! - [`amf0`]: the value encoding of commands, data messages and FLV script tags.
//!   Spec: AMF0 (Adobe "Action Message Format -- AMF 0").
//! - [`enhanced`]: Enhanced RTMP capability negotiation in `connect` (what a client
//!   announces, what the server answers). Spec: Enhanced RTMP v2.
//! - [`session`]: the server session state machine (connect, createStream, publish, ...).
//!   Spec: RTMP 1.0 §7.2.
//! - [`transport`]: the socket a connection reads and writes, plain or through TLS (RTMPS).
//! - [`client`]: the client side, publishing (client handshake, connect, publish, media) and
//!   playing (connect, play, everything the server sends), for load tools and tests.
//!   Spec: RTMP 1.0 §5.2, §7.2.
//! - [`error`]: one error type per layer.
//!
//! Spec: Adobe "Real-Time Messaging Protocol (RTMP) specification" 1.0 (2012).

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod conn;
pub mod egress;
pub mod enhanced;
pub mod error;
pub mod handshake;
mod merged_read;
pub mod message;
pub mod session;
pub mod transport;

pub use client::{
    ClientConfig, ClientError, ClientEvent, EnhancedConnect, PlayClient, PlayConfig, PlayEvent,
    PublishClient,
};
pub use error::{Amf0Error, ChunkError, HandshakeError, MessageError, SessionError};
pub use handshake::Handshake;
pub use session::{MediaKind, ServerSession, SessionConfig, SessionEvent};
