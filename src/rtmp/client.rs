//! The client side of an RTMP session, sans-IO: the client handshake, the command sequences
//! encoders use to publish and players use to play, and media chunked the way encoders
//! chunk it. [`PublishClient`] publishes; [`PlayClient`] (in [`play`]) plays. Both share one
//! `Connection`: handshake, chunking, acknowledgements, pings, `connect`.
//!
//! Publishing:
//!
//! ```text
//! client                                      server
//! C0 + C1 (plain)                  ->
//!                                  <-  S0 + S1 + S2
//! C2 (echo of S1), Set Chunk Size,
//! connect (app, tcUrl, flashVer)   ->
//!                                  <-  Window Ack Size, Set Peer Bandwidth, _result  => Connected
//! releaseStream, FCPublish,
//! createStream                     ->
//!                                  <-  _result (stream id)
//! publish (key, "live")            ->
//!                                  <-  onStatus NetStream.Publish.Start             => Published
//! @setDataFrame onMetaData, audio, video ->
//! FCUnpublish, deleteStream        ->
//!                                  <-  onStatus NetStream.Unpublish.Success         => Closed
//! ```
//!
//! Any `_error` reply or error-level onStatus is reported as [`ClientEvent::Rejected`].
//! Both clients acknowledge received bytes when the server's window asks for it and answer
//! Ping Requests.
//!
//! Chunk headers are compressed as ffmpeg compresses them: a message on a chunk stream that
//! carried an earlier message of the same message stream, with a timestamp that moves
//! forward, gets a type 1 header (timestamp delta, length, type), a type 2 header when its
//! length and type repeat too, and a type 3 header when the delta also repeats; anything
//! else (the first message, a timestamp that goes backwards) gets a type 0 header. Deltas and
//! timestamps at or above 0xFFFFFF go in the extended timestamp field.
//!
//! Spec: RTMP 1.0 §5.2 (handshake), §5.3.1.2 (message header types), §5.4.1 (Set Chunk
//! Size), §5.4.3 (Acknowledgement), §5.4.4 (Window Acknowledgement Size), §5.4.5 (Set Peer
//! Bandwidth), §7.1.7 (Ping), §7.2.1.1 (connect), §7.2.1.3 (createStream), §7.2.2.3
//! (deleteStream), §7.2.2.6 (publish).

pub mod play;

pub use play::{PlayClient, PlayConfig, PlayEvent};

use bytes::{Buf, BufMut, BytesMut};
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

use super::amf0::Value;
use super::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkSize, ChunkStreamId, MessageHeader, MessageHeaderType,
};
use super::enhanced::EnhancedCaps;
use super::error::{Amf0Error, ChunkError, MessageError};
use super::handshake::{HANDSHAKE_SIZE, RTMP_VERSION};
use super::message::{Command, Message, UserControlEvent, type_id};
use super::session::MediaKind;
use crate::media::RtmpTimestamp;

/// The chunk size the client announces and cuts its messages to: what ffmpeg announces
/// when publishing. Larger chunks mean fewer headers; 4096 keeps an audio frame in one chunk.
pub const DEFAULT_CHUNK_SIZE: u32 = 4096;

/// flashVer sent in `connect`: Flash Media Live Encoder's, which servers take for a
/// publisher.
const FLASH_VER: &str = "FMLE/3.0";

/// `type` sent in `connect`, as FMLE and ffmpeg send it.
const CONNECTION_TYPE: &str = "nonprivate";

/// The publishing type: live, nothing recorded. Spec: RTMP 1.0 §7.2.2.6.
const PUBLISH_TYPE: &str = "live";

/// Chunk stream for protocol control and user control messages. Spec: RTMP 1.0 §5.4, §6.2.
const CONTROL_CSID: ChunkStreamId = ChunkStreamId::PROTOCOL_CONTROL;
/// Chunk stream for NetConnection commands (ffmpeg's "system channel").
const COMMAND_CSID: ChunkStreamId = ChunkStreamId::new(3).expect("3 is a chunk stream id");
/// Chunk stream for audio and data messages, as ffmpeg sends them.
const AUDIO_CSID: ChunkStreamId = ChunkStreamId::new(4).expect("4 is a chunk stream id");
/// Chunk stream for video messages, as ffmpeg sends them.
const VIDEO_CSID: ChunkStreamId = ChunkStreamId::new(6).expect("6 is a chunk stream id");
/// Chunk stream for NetStream commands (publish, play), ffmpeg's "source channel".
const STREAM_CSID: ChunkStreamId = ChunkStreamId::new(8).expect("8 is a chunk stream id");

/// Transaction id of `connect`. Spec: RTMP 1.0 §7.2.1.1: "Always set to 1".
const CONNECT_TRANSACTION_ID: f64 = 1.0;

/// Bytes of S0, S1 and S2 together.
const SERVER_HANDSHAKE_LEN: usize = 1 + 2 * HANDSHAKE_SIZE;

/// The AMF0 string "@setDataFrame" (marker 2, length 13): the handler name that makes a data
/// message set the stream's metadata, the onMetaData that follows it. Spec: RTMP 1.0 §7.1.2
/// (data messages), AMF0 §2.4 (string); FMLE and ffmpeg send it.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// What the client needs to publish one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// The application named in `connect` (`live` in `rtmp://host/live/key`).
    pub app: String,
    /// tcUrl: the URL of the application, `rtmp://host:port/app`.
    pub tc_url: String,
    /// The publishing name: the stream key, with a `?query` if the server wants one.
    pub stream_key: String,
    /// Outgoing chunk size, announced with Set Chunk Size before `connect`.
    pub chunk_size: ChunkSize,
    /// Enhanced RTMP properties to announce in `connect`; `None` for a legacy connect.
    pub enhanced: Option<EnhancedConnect>,
}

/// What the client announces about Enhanced RTMP in its `connect` command object, as
/// encoders and players that negotiate do. Spec: Enhanced RTMP v2, "Enhancing NetConnection
/// connect Command".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnhancedConnect {
    /// `fourCcList`: the FourCCs of the codecs the client handles (`"*"` for any).
    pub fourcc_list: Vec<String>,
    /// `capsEx`: CapsExMask flags ([`super::enhanced::caps_ex`]).
    pub caps_ex: u32,
}

impl EnhancedConnect {
    /// Announces the codecs `fourcc_list` and the extensions `caps_ex`.
    pub fn new(fourcc_list: &[&str], caps_ex: u32) -> EnhancedConnect {
        EnhancedConnect {
            fourcc_list: fourcc_list.iter().map(|&f| f.to_owned()).collect(),
            caps_ex,
        }
    }

    /// Appends `fourCcList` and `capsEx` to a `connect` command object's properties.
    fn push_to(&self, fields: &mut Vec<(String, Value)>) {
        let list = self
            .fourcc_list
            .iter()
            .map(|f| Value::from(f.as_str()))
            .collect();
        fields.push(("fourCcList".to_owned(), Value::StrictArray(list)));
        fields.push(("capsEx".to_owned(), f64::from(self.caps_ex).into()));
    }
}

impl ClientConfig {
    /// A configuration with the default chunk size ([`DEFAULT_CHUNK_SIZE`]).
    pub fn new(app: &str, tc_url: &str, stream_key: &str) -> ClientConfig {
        ClientConfig {
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            stream_key: stream_key.to_owned(),
            chunk_size: default_chunk_size(),
            enhanced: None,
        }
    }

    /// The same configuration announcing Enhanced RTMP in `connect`: `fourCcList` and
    /// `capsEx`.
    pub fn with_enhanced(mut self, fourcc_list: &[&str], caps_ex: u32) -> ClientConfig {
        self.enhanced = Some(EnhancedConnect::new(fourcc_list, caps_ex));
        self
    }
}

/// [`DEFAULT_CHUNK_SIZE`] as a chunk size.
fn default_chunk_size() -> ChunkSize {
    ChunkSize::new(DEFAULT_CHUNK_SIZE).expect("4096 is a valid chunk size")
}

/// What happened on the session, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `connect` succeeded (`_result`); the client has asked for a stream.
    Connected,
    /// onStatus NetStream.Publish.Start: media may be sent.
    Published,
    /// The server refused: an `_error` reply, or an onStatus of level "error" (before or
    /// during the publish). The session is over.
    Rejected { code: String, description: String },
    /// onStatus NetStream.Unpublish.Success after [`PublishClient::unpublish`]: the publish
    /// is over and the connection can be closed.
    Closed,
}

/// Why the session with the server cannot go on, or a call was not possible.
#[derive(Debug, Error)]
pub enum ClientError {
    /// S0 names a version other than 3.
    #[error("server answered with RTMP version {version:#04x} in S0 (3 expected)")]
    ServerVersion { version: u8 },
    /// The system random source failed while C1 was being filled.
    #[error("the system random source failed while filling C1")]
    RandomUnavailable,
    /// The chunk stream from the server is invalid, or a message to send is too long.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message from the server does not match its type.
    #[error(
        "message from the server at {timestamp_ms} ms on message stream {message_stream_id}: {source}"
    )]
    Message {
        timestamp_ms: u32,
        message_stream_id: u32,
        #[source]
        source: MessageError,
    },
    /// A reply the command sequence depends on lacks what it must carry.
    #[error("{command} reply {problem}")]
    MalformedReply {
        command: &'static str,
        problem: &'static str,
    },
    /// Media or metadata before NetStream.Publish.Start or after the publish ended.
    #[error("cannot send {what} while {state}")]
    NotPublishing {
        what: &'static str,
        state: &'static str,
    },
    /// An outgoing command or data message cannot be encoded (a string beyond AMF0 limits).
    #[error("outgoing {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Amf0Error,
    },
}

/// The previous message sent on one chunk stream: what a type 1-3 header may leave out.
#[derive(Clone, Copy, Debug)]
struct LastSent {
    csid: ChunkStreamId,
    timestamp: RtmpTimestamp,
    /// The timestamp field of its header: the absolute timestamp for type 0, else the delta.
    /// A type 3 header that starts a message repeats it.
    timestamp_field: u32,
    length: usize,
    message_type_id: u8,
    message_stream_id: u32,
}

/// Chunks outgoing messages with the header types real clients use.
#[derive(Debug)]
struct ChunkWriter {
    encoder: ChunkEncoder,
    /// One entry per chunk stream this side has used (five at most).
    last_sent: Vec<LastSent>,
}

impl ChunkWriter {
    /// The header type for a message, given the previous one on its chunk stream (see the
    /// module documentation).
    fn header_type(
        previous: Option<&LastSent>,
        header: &MessageHeader,
        length: usize,
    ) -> MessageHeaderType {
        let Some(p) = previous else {
            return MessageHeaderType::Type0;
        };
        if p.message_stream_id != header.message_stream_id
            || header.timestamp.wrapping_diff(p.timestamp) < 0
        {
            return MessageHeaderType::Type0;
        }
        let timestamp_delta = header.timestamp.0.wrapping_sub(p.timestamp.0);
        if p.length != length || p.message_type_id != header.message_type_id {
            MessageHeaderType::Type1 { timestamp_delta }
        } else if timestamp_delta != p.timestamp_field {
            MessageHeaderType::Type2 { timestamp_delta }
        } else {
            MessageHeaderType::Type3 { timestamp_delta }
        }
    }

    fn write(
        &mut self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ChunkError> {
        let index = self.last_sent.iter().position(|l| l.csid == csid);
        let previous = index.and_then(|i| self.last_sent.get(i));
        let header_type = Self::header_type(previous, header, payload.len());
        self.encoder
            .write_message_as(csid, header, header_type, payload, out)?;
        let sent = LastSent {
            csid,
            timestamp: header.timestamp,
            timestamp_field: match header_type {
                MessageHeaderType::Type0 => header.timestamp.0,
                MessageHeaderType::Type1 { timestamp_delta }
                | MessageHeaderType::Type2 { timestamp_delta }
                | MessageHeaderType::Type3 { timestamp_delta } => timestamp_delta,
            },
            length: payload.len(),
            message_type_id: header.message_type_id,
            message_stream_id: header.message_stream_id,
        };
        match index.and_then(|i| self.last_sent.get_mut(i)) {
            Some(slot) => *slot = sent,
            None => self.last_sent.push(sent),
        }
        Ok(())
    }
}

/// How far the client handshake has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandshakeStage {
    /// C0 + C1 sent; waiting for S0 and S1.
    AwaitS0S1,
    /// C2 sent; waiting for S2 before anything else may be sent (§5.2.1).
    AwaitS2,
    /// Over: chunks follow.
    Done,
}

/// What [`Connection::poll`] found in the input.
#[derive(Debug)]
enum Polled {
    /// Nothing more to do until more input arrives.
    NeedInput,
    /// S2 has just arrived: the client may send Set Chunk Size and `connect`.
    HandshakeDone,
    /// A message for the client's state machine (protocol control messages and Ping
    /// Requests have been handled).
    Message(MessageHeader, Message),
}

/// One client connection below the command sequence: handshake, chunk streams both ways,
/// Acknowledgements of the server's window, Ping answers, `connect` and transaction ids.
/// [`PublishClient`] and [`PlayClient`] each drive one.
#[derive(Debug)]
struct Connection {
    handshake: HandshakeStage,
    decoder: ChunkDecoder,
    writer: ChunkWriter,
    next_transaction_id: f64,
    /// Bytes received on the connection, handshake included, modulo 2^32: the
    /// Acknowledgement sequence number. Spec: RTMP 1.0 §5.4.3.
    received: u32,
    /// Bytes received since the last Acknowledgement.
    unacknowledged: u64,
    /// The server's Window Acknowledgement Size; 0 until it sends one (no acknowledgements).
    server_window: u32,
    /// The Window Acknowledgement Size last announced to the server, if any.
    announced_window: Option<u32>,
    /// Reused buffer for outgoing command and data payloads.
    scratch: BytesMut,
    /// What the server's connect `_result` announced about Enhanced RTMP.
    server_enhanced: Option<EnhancedCaps>,
}

impl Connection {
    /// Starts a connection: appends C0 and a plain C1 (time 0, zero, random bytes) to `out`.
    /// Spec: RTMP 1.0 §5.2.2, §5.2.3.
    fn start(out: &mut BytesMut) -> Result<Connection, ClientError> {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        SystemRandom::new()
            .fill(&mut c1[8..])
            .map_err(|_| ClientError::RandomUnavailable)?;
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&c1);
        Ok(Connection {
            handshake: HandshakeStage::AwaitS0S1,
            decoder: ChunkDecoder::new(),
            writer: ChunkWriter {
                encoder: ChunkEncoder::new(),
                last_sent: Vec::new(),
            },
            next_transaction_id: CONNECT_TRANSACTION_ID + 1.0,
            received: 0,
            unacknowledged: 0,
            server_window: 0,
            announced_window: None,
            scratch: BytesMut::new(),
            server_enhanced: None,
        })
    }

    /// Takes the next thing to act on from `input`: the end of the handshake, or a message
    /// the client's state machine handles. Answers what needs no state machine on the way
    /// (C2, Acknowledgements, Window Acknowledgement Size after Set Peer Bandwidth, Ping
    /// Responses) into `out`.
    fn poll(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<Polled, ClientError> {
        if self.handshake != HandshakeStage::Done {
            return self.handshake(input, out);
        }
        loop {
            let before = self.decoder.position();
            let raw = self.decoder.decode(input)?;
            self.count_received(self.decoder.position() - before, out)?;
            let Some(raw) = raw else {
                return Ok(Polled::NeedInput);
            };
            let header = raw.header;
            let message =
                Message::parse(header.message_type_id, raw.payload).map_err(|source| {
                    ClientError::Message {
                        timestamp_ms: header.timestamp.0,
                        message_stream_id: header.message_stream_id,
                        source,
                    }
                })?;
            match message {
                // Applied by the chunk decoder before the next chunk was read.
                Message::SetChunkSize { .. } | Message::Abort { .. } => {}
                Message::WindowAcknowledgementSize {
                    acknowledgement_window_size,
                } => self.server_window = acknowledgement_window_size,
                Message::SetPeerBandwidth {
                    acknowledgement_window_size,
                    ..
                } => {
                    // Spec: RTMP 1.0 §5.4.5: answer with a Window Acknowledgement Size when
                    // it differs from the last one sent.
                    if self.announced_window != Some(acknowledgement_window_size) {
                        self.announced_window = Some(acknowledgement_window_size);
                        let window = Message::WindowAcknowledgementSize {
                            acknowledgement_window_size,
                        };
                        self.control(&window, out)?;
                    }
                }
                Message::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                    let pong = Message::UserControl(UserControlEvent::PingResponse { timestamp });
                    self.control(&pong, out)?;
                }
                other => return Ok(Polled::Message(header, other)),
            }
        }
    }

    /// Runs the handshake on `input`. C2 echoes S1 and goes out as soon as S1 is in; after
    /// S2 the client sends Set Chunk Size and `connect` ([`Polled::HandshakeDone`]). S2
    /// should echo C1; servers differ in what they echo, so it is not compared.
    /// Spec: RTMP 1.0 §5.2.1, §5.2.4.
    fn handshake(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<Polled, ClientError> {
        if self.handshake == HandshakeStage::AwaitS0S1 {
            let Some(&version) = input.first() else {
                return Ok(Polled::NeedInput);
            };
            if version != RTMP_VERSION {
                return Err(ClientError::ServerVersion { version });
            }
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(Polled::NeedInput);
            }
            input.advance(1);
            // C2: S1 echoed whole (time, time2 and random echo are S1's).
            out.extend_from_slice(&input[..HANDSHAKE_SIZE]);
            input.advance(HANDSHAKE_SIZE);
            self.handshake = HandshakeStage::AwaitS2;
        }
        if input.len() < HANDSHAKE_SIZE {
            return Ok(Polled::NeedInput);
        }
        input.advance(HANDSHAKE_SIZE);
        self.received = SERVER_HANDSHAKE_LEN as u32;
        self.unacknowledged = SERVER_HANDSHAKE_LEN as u64;
        self.handshake = HandshakeStage::Done;
        Ok(Polled::HandshakeDone)
    }

    /// Set Chunk Size, then `connect` with the command object `fields` (and the Enhanced
    /// RTMP properties, if any). Spec: RTMP 1.0 §5.4.1, §7.2.1.1.
    fn connect(
        &mut self,
        chunk_size: ChunkSize,
        mut fields: Vec<(String, Value)>,
        enhanced: Option<&EnhancedConnect>,
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        self.control(
            &Message::SetChunkSize {
                chunk_size: chunk_size.get(),
            },
            out,
        )?;
        self.writer.encoder.set_chunk_size(chunk_size);
        if let Some(enhanced) = enhanced {
            enhanced.push_to(&mut fields);
        }
        self.send_command(
            COMMAND_CSID,
            0,
            Command {
                name: "connect".to_owned(),
                transaction_id: CONNECT_TRANSACTION_ID,
                command_object: Value::Object(fields),
                arguments: Vec::new(),
            },
            out,
        )
    }

    /// Notes what the connect `_result` announced about Enhanced RTMP.
    fn connected(&mut self, result: &Command) {
        self.server_enhanced = EnhancedCaps::from_connect_object(&result.command_object);
    }

    /// Counts `n` received bytes and acknowledges them once the server's window is full.
    /// Spec: RTMP 1.0 §5.4.3, §5.4.4.
    fn count_received(&mut self, n: u64, out: &mut BytesMut) -> Result<(), ClientError> {
        self.received = self.received.wrapping_add(n as u32);
        self.unacknowledged += n;
        if self.server_window > 0 && self.unacknowledged >= u64::from(self.server_window) {
            self.unacknowledged = 0;
            let ack = Message::Acknowledgement {
                sequence_number: self.received,
            };
            self.control(&ack, out)?;
        }
        Ok(())
    }

    fn transaction_id(&mut self) -> f64 {
        let id = self.next_transaction_id;
        self.next_transaction_id += 1.0;
        id
    }

    /// A command with a null command object.
    fn command(
        &mut self,
        csid: ChunkStreamId,
        message_stream_id: u32,
        name: &str,
        transaction_id: f64,
        arguments: Vec<Value>,
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        let command = Command {
            name: name.to_owned(),
            transaction_id,
            command_object: Value::Null,
            arguments,
        };
        self.send_command(csid, message_stream_id, command, out)
    }

    fn send_command(
        &mut self,
        csid: ChunkStreamId,
        message_stream_id: u32,
        command: Command,
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        self.send(
            csid,
            message_stream_id,
            &Message::Command(command),
            "command",
            out,
        )
    }

    /// A protocol or user control message on chunk stream 2, message stream 0.
    fn control(&mut self, message: &Message, out: &mut BytesMut) -> Result<(), ClientError> {
        self.send(CONTROL_CSID, 0, message, "control message", out)
    }

    /// Chunks `message` at timestamp 0 into `out`.
    fn send(
        &mut self,
        csid: ChunkStreamId,
        message_stream_id: u32,
        message: &Message,
        what: &'static str,
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        self.scratch.clear();
        message
            .write_payload(&mut self.scratch)
            .map_err(|source| ClientError::Encode { what, source })?;
        let header = MessageHeader {
            timestamp: RtmpTimestamp(0),
            message_type_id: message.type_id(),
            message_stream_id,
        };
        self.writer.write(csid, &header, &self.scratch, out)?;
        Ok(())
    }
}

/// The `level`, `code` and `description` of a status or error reply's information object
/// (its first argument); empty where missing. Spec: RTMP 1.0 §7.2.2 (onStatus).
fn status_info(command: &Command) -> (String, String, String) {
    let info = command.arguments.first();
    let text = |name| {
        info.and_then(|i| i.property(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("level"), text("code"), text("description"))
}

/// The stream id in a createStream `_result`: a whole number from 1 to 2^32 - 1.
/// Spec: RTMP 1.0 §7.2.1.3.
fn created_stream_id(result: &Command) -> Result<u32, ClientError> {
    result
        .number_argument(0)
        .filter(|&n| n.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&n))
        .map(|n| n as u32)
        .ok_or(ClientError::MalformedReply {
            command: "createStream",
            problem: "has no stream id (a whole number from 1 to 2^32 - 1)",
        })
}

/// Where a publishing session stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// The handshake is in progress.
    Handshaking,
    /// `connect` sent; waiting for its `_result`.
    Connecting,
    /// releaseStream, FCPublish and createStream sent; waiting for createStream's `_result`.
    CreatingStream { transaction_id: f64 },
    /// `publish` sent on `stream_id`; waiting for NetStream.Publish.Start.
    PublishRequested { stream_id: u32 },
    /// Media goes on `stream_id`.
    Publishing { stream_id: u32 },
    /// FCUnpublish and deleteStream sent; waiting for NetStream.Unpublish.Success.
    Unpublishing,
    /// Rejected or closed: nothing more happens on this session.
    Over,
}

impl State {
    /// The state in words, for errors.
    fn name(self) -> &'static str {
        match self {
            State::Handshaking => "the handshake is in progress",
            State::Connecting => "connecting",
            State::CreatingStream { .. } => "creating the stream",
            State::PublishRequested { .. } => "waiting for the publish to be accepted",
            State::Publishing { .. } => "publishing",
            State::Unpublishing => "unpublishing",
            State::Over => "the session is over",
        }
    }
}

/// The client side of one RTMP publishing session, handshake included.
#[derive(Debug)]
pub struct PublishClient {
    config: ClientConfig,
    state: State,
    conn: Connection,
}

impl PublishClient {
    /// Starts a session: appends C0 and a plain C1 (time 0, zero, random bytes) to `out`.
    /// Spec: RTMP 1.0 §5.2.2, §5.2.3.
    pub fn new(config: ClientConfig, out: &mut BytesMut) -> Result<PublishClient, ClientError> {
        Ok(PublishClient {
            config,
            state: State::Handshaking,
            conn: Connection::start(out)?,
        })
    }

    /// What the server announced about Enhanced RTMP in its connect `_result` (codecs and
    /// capsEx); `None` before the reply or when it announced nothing.
    pub fn server_enhanced(&self) -> Option<&EnhancedCaps> {
        self.conn.server_enhanced.as_ref()
    }

    /// Media may be sent: NetStream.Publish.Start has arrived and the publish has not ended.
    pub fn is_publishing(&self) -> bool {
        matches!(self.state, State::Publishing { .. })
    }

    /// Consumes what the server sent from `input` (partial chunks stay there), appends what
    /// to send to `out` (in order) and what happened to `events`.
    ///
    /// On an error the session is over, but `out` may still hold answers worth sending.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), ClientError> {
        loop {
            match self.conn.poll(input, out)? {
                Polled::NeedInput => return Ok(()),
                Polled::HandshakeDone => self.connect(out)?,
                Polled::Message(_, Message::Command(command)) => {
                    self.on_command(command, out, events)?;
                }
                Polled::Message(header, other) => tracing::trace!(
                    type_id = other.type_id(),
                    message_stream_id = header.message_stream_id,
                    "ignoring message"
                ),
            }
        }
    }

    /// Appends one FLV audio or video tag body as a message on the published stream.
    /// Spec: RTMP 1.0 §7.1.4, §7.1.5.
    pub fn send_media(
        &mut self,
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        let (csid, message_type_id, what) = match kind {
            MediaKind::Audio => (AUDIO_CSID, type_id::AUDIO, "audio"),
            MediaKind::Video => (VIDEO_CSID, type_id::VIDEO, "video"),
        };
        let stream_id = self.publishing_stream(what)?;
        let header = MessageHeader {
            timestamp,
            message_type_id,
            message_stream_id: stream_id,
        };
        self.conn.writer.write(csid, &header, payload, out)?;
        Ok(())
    }

    /// Appends `@setDataFrame` with an FLV script tag body (`onMetaData` and its array, as
    /// an FLV file holds it) as a data message on the published stream.
    /// Spec: RTMP 1.0 §7.1.2; FLV 10.1 §E.4.4.1.
    pub fn send_metadata(
        &mut self,
        timestamp: RtmpTimestamp,
        script_data: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ClientError> {
        let stream_id = self.publishing_stream("metadata")?;
        let conn = &mut self.conn;
        conn.scratch.clear();
        conn.scratch.extend_from_slice(SET_DATA_FRAME);
        conn.scratch.extend_from_slice(script_data);
        let header = MessageHeader {
            timestamp,
            message_type_id: type_id::DATA_AMF0,
            message_stream_id: stream_id,
        };
        conn.writer
            .write(AUDIO_CSID, &header, &conn.scratch, out)
            .map_err(ClientError::from)
    }

    /// Ends the publish: FCUnpublish and deleteStream, as ffmpeg sends them. The server
    /// confirms with NetStream.Unpublish.Success ([`ClientEvent::Closed`]). Does nothing
    /// when no publish was requested. Spec: RTMP 1.0 §7.2.2.3.
    pub fn unpublish(&mut self, out: &mut BytesMut) -> Result<(), ClientError> {
        let stream_id = match self.state {
            State::Publishing { stream_id } | State::PublishRequested { stream_id } => stream_id,
            _ => return Ok(()),
        };
        let key = Value::from(self.config.stream_key.as_str());
        let conn = &mut self.conn;
        let tid = conn.transaction_id();
        conn.command(COMMAND_CSID, 0, "FCUnpublish", tid, vec![key], out)?;
        let tid = conn.transaction_id();
        let stream = Value::Number(f64::from(stream_id));
        conn.command(COMMAND_CSID, 0, "deleteStream", tid, vec![stream], out)?;
        self.state = State::Unpublishing;
        Ok(())
    }

    /// The published stream id, or why media cannot be sent now.
    fn publishing_stream(&self, what: &'static str) -> Result<u32, ClientError> {
        match self.state {
            State::Publishing { stream_id } => Ok(stream_id),
            other => Err(ClientError::NotPublishing {
                what,
                state: other.name(),
            }),
        }
    }

    /// Set Chunk Size, then `connect` as FMLE and ffmpeg send it to publish.
    fn connect(&mut self, out: &mut BytesMut) -> Result<(), ClientError> {
        let fields = vec![
            ("app".to_owned(), self.config.app.as_str().into()),
            ("type".to_owned(), CONNECTION_TYPE.into()),
            ("flashVer".to_owned(), FLASH_VER.into()),
            ("tcUrl".to_owned(), self.config.tc_url.as_str().into()),
        ];
        let enhanced = self.config.enhanced.as_ref();
        self.conn
            .connect(self.config.chunk_size, fields, enhanced, out)?;
        self.state = State::Connecting;
        Ok(())
    }

    fn on_command(
        &mut self,
        command: Command,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), ClientError> {
        match command.name.as_str() {
            "_result" => self.on_result(&command, out, events),
            "_error" => {
                self.reject(&command, events);
                Ok(())
            }
            "onStatus" => {
                let (level, code, _) = status_info(&command);
                if level == "error" {
                    self.reject(&command, events);
                    return Ok(());
                }
                match (code.as_str(), self.state) {
                    ("NetStream.Publish.Start", State::PublishRequested { stream_id }) => {
                        self.state = State::Publishing { stream_id };
                        events.push(ClientEvent::Published);
                    }
                    ("NetStream.Unpublish.Success", State::Unpublishing) => {
                        self.state = State::Over;
                        events.push(ClientEvent::Closed);
                    }
                    (code, _) => tracing::debug!(code, "onStatus"),
                }
                Ok(())
            }
            // onFCPublish, onBWDone and the like: nothing to do.
            name => {
                tracing::trace!(command = name, "ignoring command");
                Ok(())
            }
        }
    }

    /// `_result` of connect or createStream; the others (releaseStream, FCPublish) carry
    /// nothing the client needs.
    fn on_result(
        &mut self,
        command: &Command,
        out: &mut BytesMut,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), ClientError> {
        let tid = command.transaction_id;
        let conn = &mut self.conn;
        match self.state {
            State::Connecting if tid == CONNECT_TRANSACTION_ID => {
                conn.connected(command);
                events.push(ClientEvent::Connected);
                let key = Value::from(self.config.stream_key.as_str());
                let t = conn.transaction_id();
                conn.command(COMMAND_CSID, 0, "releaseStream", t, vec![key.clone()], out)?;
                let t = conn.transaction_id();
                conn.command(COMMAND_CSID, 0, "FCPublish", t, vec![key], out)?;
                let transaction_id = conn.transaction_id();
                conn.command(COMMAND_CSID, 0, "createStream", transaction_id, vec![], out)?;
                self.state = State::CreatingStream { transaction_id };
            }
            State::CreatingStream { transaction_id } if tid == transaction_id => {
                let stream_id = created_stream_id(command)?;
                let arguments = vec![
                    Value::from(self.config.stream_key.as_str()),
                    Value::from(PUBLISH_TYPE),
                ];
                let t = conn.transaction_id();
                conn.command(STREAM_CSID, stream_id, "publish", t, arguments, out)?;
                self.state = State::PublishRequested { stream_id };
            }
            _ => tracing::trace!(transaction_id = tid, "ignoring _result"),
        }
        Ok(())
    }

    /// Reports a refusal (`_error`, error onStatus) with the code and description of its
    /// information object, and ends the session.
    fn reject(&mut self, command: &Command, events: &mut Vec<ClientEvent>) {
        let (_, code, description) = status_info(command);
        self.state = State::Over;
        events.push(ClientEvent::Rejected { code, description });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkStreamId;
    use crate::rtmp::error::SessionError;
    use crate::rtmp::handshake::Handshake;
    use crate::rtmp::session::{ServerSession, SessionConfig, SessionEvent};
    use bytes::Bytes;

    const KEY: &str = "key-1";

    fn config() -> ClientConfig {
        ClientConfig::new("live", "rtmp://127.0.0.1:1935/live", KEY)
    }

    /// How the server side answers a publish request.
    #[derive(Clone)]
    enum Policy {
        Accept,
        Reject(&'static str, &'static str),
    }

    /// A client and a server session connected in memory: bytes go back and forth until
    /// neither side has anything more to say.
    struct Pair {
        client: PublishClient,
        client_events: Vec<ClientEvent>,
        handshake: Handshake,
        handshake_done: bool,
        server: ServerSession,
        server_events: Vec<SessionEvent>,
        server_error: Option<SessionError>,
        policy: Policy,
        /// Client bytes the server has not consumed yet.
        to_server: BytesMut,
        /// Server bytes the client has not consumed yet.
        to_client: BytesMut,
        /// Everything each side sent.
        client_wire: Vec<u8>,
        server_wire: Vec<u8>,
    }

    impl Pair {
        fn new(config: ClientConfig, session: SessionConfig, policy: Policy) -> Pair {
            let mut out = BytesMut::new();
            let client = PublishClient::new(config, &mut out).expect("random source");
            let mut pair = Pair {
                client,
                client_events: Vec::new(),
                handshake: Handshake::new(),
                handshake_done: false,
                server: ServerSession::new(session),
                server_events: Vec::new(),
                server_error: None,
                policy,
                to_server: BytesMut::new(),
                to_client: BytesMut::new(),
                client_wire: Vec::new(),
                server_wire: Vec::new(),
            };
            pair.client_sent(out);
            pair.pump();
            pair
        }

        fn published() -> Pair {
            let pair = Pair::new(config(), SessionConfig::default(), Policy::Accept);
            assert_eq!(
                pair.client_events,
                [ClientEvent::Connected, ClientEvent::Published]
            );
            assert!(pair.client.is_publishing());
            pair
        }

        fn client_sent(&mut self, out: BytesMut) {
            self.client_wire.extend_from_slice(&out);
            self.to_server.extend_from_slice(&out);
        }

        fn server_sent(&mut self, out: BytesMut) {
            self.server_wire.extend_from_slice(&out);
            self.to_client.extend_from_slice(&out);
        }

        /// Moves bytes both ways until both sides are quiet.
        fn pump(&mut self) {
            loop {
                let mut out = BytesMut::new();
                if self.server_error.is_none() {
                    if !self.handshake_done {
                        self.handshake_done = self
                            .handshake
                            .feed(&mut self.to_server, &mut out)
                            .expect("valid client handshake");
                    }
                    if self.handshake_done {
                        let mut events = Vec::new();
                        let result =
                            self.server
                                .handle_input(&mut self.to_server, &mut out, &mut events);
                        for event in &events {
                            if matches!(event, SessionEvent::PublishRequested { .. }) {
                                match self.policy {
                                    Policy::Accept => self.server.accept_publish(&mut out),
                                    Policy::Reject(code, description) => {
                                        self.server.reject_publish(code, description, &mut out)
                                    }
                                }
                            }
                        }
                        self.server_events.extend(events);
                        self.server_error = result.err();
                    }
                }
                let server_quiet = out.is_empty();
                self.server_sent(out);

                let mut out = BytesMut::new();
                self.client
                    .feed(&mut self.to_client, &mut out, &mut self.client_events)
                    .expect("valid server bytes");
                let client_quiet = out.is_empty();
                self.client_sent(out);
                if server_quiet && client_quiet {
                    return;
                }
            }
        }

        /// Sends one media message and returns the bytes it took.
        fn media(&mut self, kind: MediaKind, timestamp: u32, payload: &[u8]) -> BytesMut {
            let mut out = BytesMut::new();
            self.client
                .send_media(kind, RtmpTimestamp(timestamp), payload, &mut out)
                .expect("publishing");
            self.client_sent(out.clone());
            self.pump();
            out
        }

        /// The media the server passed on, as (kind, timestamp, payload).
        fn server_media(&self) -> Vec<(MediaKind, u32, Bytes)> {
            self.server_events
                .iter()
                .filter_map(|e| match e {
                    SessionEvent::Media {
                        kind,
                        timestamp,
                        payload,
                    } => Some((*kind, timestamp.0, payload.clone())),
                    _ => None,
                })
                .collect()
        }
    }

    /// The messages in the client's bytes after the handshake (C0, C1, C2).
    fn client_messages(wire: &[u8]) -> Vec<(MessageHeader, Message)> {
        let mut input = BytesMut::from(&wire[1 + 2 * HANDSHAKE_SIZE..]);
        let mut decoder = ChunkDecoder::new();
        let mut messages = Vec::new();
        while let Some(raw) = decoder.decode(&mut input).expect("valid chunks") {
            let message = Message::parse(raw.header.message_type_id, raw.payload).expect("valid");
            messages.push((raw.header, message));
        }
        assert!(input.is_empty(), "partial chunk left");
        messages
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    #[test]
    fn publishes_and_unpublishes_in_memory() {
        let mut pair = Pair::published();
        assert!(pair.server_error.is_none());
        assert_eq!(
            pair.server_events[..2],
            [
                SessionEvent::Connected {
                    app: "live".to_owned(),
                    tc_url: Some("rtmp://127.0.0.1:1935/live".to_owned()),
                    flash_ver: Some("FMLE/3.0".to_owned()),
                    enhanced: None,
                },
                SessionEvent::PublishRequested {
                    stream_id: 1,
                    stream_key: KEY.to_owned(),
                    query: None,
                    publish_type: "live".to_owned(),
                },
            ]
        );
        // The handshake is plain: C1 bytes 4..8 are zero; C2 echoes S1.
        assert_eq!(pair.client_wire[0], RTMP_VERSION);
        assert_eq!(pair.client_wire[5..9], [0; 4]);
        assert_eq!(
            pair.client_wire[1 + HANDSHAKE_SIZE..1 + 2 * HANDSHAKE_SIZE],
            pair.server_wire[1..1 + HANDSHAKE_SIZE]
        );
        // The commands, in ffmpeg's order, after Set Chunk Size 4096.
        let names: Vec<String> = client_messages(&pair.client_wire)
            .into_iter()
            .map(|(_, m)| match m {
                Message::Command(c) => c.name,
                Message::SetChunkSize { chunk_size } => format!("SetChunkSize {chunk_size}"),
                other => format!("type {}", other.type_id()),
            })
            .collect();
        assert_eq!(
            names,
            [
                "SetChunkSize 4096",
                "connect",
                "type 5", // Window Acknowledgement Size, answering Set Peer Bandwidth
                "releaseStream",
                "FCPublish",
                "createStream",
                "publish"
            ]
        );

        let script = [
            &[2, 0, 10][..],
            b"onMetaData",
            &[8, 0, 0, 0, 1, 0, 5],
            b"width",
            &[0, 0x40, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 9],
        ]
        .concat();
        let mut out = BytesMut::new();
        pair.client
            .send_metadata(RtmpTimestamp(0), &script, &mut out)
            .expect("publishing");
        pair.client_sent(out);
        pair.media(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1]);
        pair.pump();
        assert!(matches!(
            &pair.server_events[2],
            SessionEvent::Metadata { properties, payload, .. }
                if properties[0].0 == "width" && payload[..] == script[..]
        ));

        let mut out = BytesMut::new();
        pair.client.unpublish(&mut out).expect("encodable");
        pair.client_sent(out);
        pair.pump();
        assert_eq!(pair.server_events.last(), Some(&SessionEvent::Unpublished));
        assert_eq!(pair.client_events.last(), Some(&ClientEvent::Closed));
        assert!(!pair.client.is_publishing());
        assert!(pair.server_error.is_none());
        // Nothing more to unpublish.
        let mut out = BytesMut::new();
        pair.client.unpublish(&mut out).expect("no-op");
        assert!(out.is_empty());
    }

    #[test]
    fn media_arrives_with_identical_timestamps_and_payloads() {
        let mut pair = Pair::published();
        let big = payload(10_000, 7); // three chunks of 4096 and one of 1808
        let sent: Vec<(MediaKind, u32, Vec<u8>)> = vec![
            (MediaKind::Video, 0, payload(60, 1)),
            (MediaKind::Audio, 0, payload(7, 2)),
            (MediaKind::Video, 0, big.clone()),
            (MediaKind::Audio, 21, payload(200, 3)),
            (MediaKind::Audio, 42, payload(200, 4)),
            (MediaKind::Video, 33, payload(4096, 5)),
            (MediaKind::Video, 67, payload(4097, 6)),
            (MediaKind::Audio, 64, payload(0, 8)),
            // Around the extended timestamp threshold.
            (MediaKind::Video, 0xff_fffe, payload(30, 9)),
            (MediaKind::Video, 0xff_ffff, big.clone()),
            (MediaKind::Video, 0x100_0000, payload(30, 10)),
            (MediaKind::Audio, 0x100_0000, payload(30, 11)),
            (MediaKind::Audio, 0x200_0010, big.clone()),
            // Up to the 32-bit wrap and across it.
            (MediaKind::Video, 0xffff_ffe0, payload(100, 12)),
            (MediaKind::Audio, 0xffff_fff0, payload(100, 13)),
            (MediaKind::Video, 0xffff_ffff, payload(100, 14)),
            (MediaKind::Video, 0x10, big.clone()),
            (MediaKind::Audio, 0x20, payload(100, 15)),
            // An encoder that restarts its clock.
            (MediaKind::Video, 0, payload(100, 16)),
            (MediaKind::Audio, 0, payload(100, 17)),
            (MediaKind::Video, 33, payload(100, 18)),
        ];
        for (kind, timestamp, bytes) in &sent {
            pair.media(*kind, *timestamp, bytes);
        }
        let received = pair.server_media();
        assert_eq!(received.len(), sent.len());
        for (i, ((kind, timestamp, bytes), got)) in sent.iter().zip(&received).enumerate() {
            assert_eq!((*kind, *timestamp), (got.0, got.1), "message {i}");
            assert_eq!(&bytes[..], &got.2[..], "message {i} payload");
        }
        assert!(pair.server_error.is_none());
    }

    #[test]
    fn header_types_follow_ffmpeg() {
        let mut pair = Pair::published();
        let fmt = |out: &BytesMut| out[0] >> 6;
        let video = payload(50, 1);
        assert_eq!(fmt(&pair.media(MediaKind::Video, 0, &payload(100, 0))), 0);
        // New length: type 1 with delta 33.
        let out = pair.media(MediaKind::Video, 33, &video);
        assert_eq!(&out[..8], &[0x46, 0, 0, 33, 0, 0, 50, 9]);
        // Same length, type and delta: type 3, one byte of header.
        let out = pair.media(MediaKind::Video, 66, &video);
        assert_eq!(out.len(), 1 + 50);
        assert_eq!(out[0], 0xc6);
        // Same length and type, new delta: type 2.
        let out = pair.media(MediaKind::Video, 100, &video);
        assert_eq!(&out[..4], &[0x86, 0, 0, 34]);
        // Backwards: type 0 with the absolute timestamp.
        let out = pair.media(MediaKind::Video, 10, &video);
        assert_eq!(&out[..4], &[0x06, 0, 0, 10]);
        // A delta of 2^24 goes in the extended timestamp.
        let out = pair.media(MediaKind::Video, 10 + 0x100_0000, &video);
        assert_eq!(&out[..8], &[0x86, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]);
        // Audio has its own chunk stream: its first message is type 0.
        let out = pair.media(MediaKind::Audio, 5, &video);
        assert_eq!(&out[..1], &[0x04]);
        let received = pair.server_media();
        let timestamps: Vec<u32> = received.iter().map(|m| m.1).collect();
        assert_eq!(timestamps, [0, 33, 66, 100, 10, 10 + 0x100_0000, 5]);
    }

    #[test]
    fn rejected_publish_is_reported() {
        let mut pair = Pair::new(
            config(),
            SessionConfig::default(),
            Policy::Reject("NetStream.Publish.Unauthorized", "bad key"),
        );
        assert_eq!(
            pair.client_events,
            [
                ClientEvent::Connected,
                ClientEvent::Rejected {
                    code: "NetStream.Publish.Unauthorized".to_owned(),
                    description: "bad key".to_owned(),
                }
            ]
        );
        let mut out = BytesMut::new();
        let err = pair
            .client
            .send_media(MediaKind::Video, RtmpTimestamp(0), &[0x17], &mut out)
            .expect_err("not publishing");
        assert!(
            matches!(
                err,
                ClientError::NotPublishing {
                    what: "video",
                    state: "the session is over"
                }
            ),
            "{err}"
        );
        pair.client.unpublish(&mut out).expect("no-op");
        assert!(out.is_empty());
    }

    #[test]
    fn enhanced_connect_is_announced_and_answered() {
        use crate::rtmp::enhanced::{Announced, FourCc, FourCcCap, SERVED_CAPS_EX, caps_ex};
        // Legacy by default: nothing announced, nothing answered.
        let pair = Pair::published();
        assert!(matches!(
            &pair.server_events[0],
            SessionEvent::Connected { enhanced: None, .. }
        ));
        assert_eq!(pair.client.server_enhanced(), None);

        let cfg = config().with_enhanced(&["hvc1", "av01"], caps_ex::MULTITRACK);
        let pair = Pair::new(cfg, SessionConfig::default(), Policy::Accept);
        assert_eq!(
            pair.client_events,
            [ClientEvent::Connected, ClientEvent::Published]
        );
        let SessionEvent::Connected {
            enhanced: Some(caps),
            ..
        } = &pair.server_events[0]
        else {
            panic!("{:?}", pair.server_events);
        };
        assert_eq!(
            caps.fourccs,
            [
                FourCcCap {
                    fourcc: FourCc::Code(*b"hvc1"),
                    announced: Announced::List
                },
                FourCcCap {
                    fourcc: FourCc::Code(*b"av01"),
                    announced: Announced::List
                },
            ]
        );
        assert_eq!(caps.caps_ex, caps_ex::MULTITRACK);
        let server = pair.client.server_enhanced().expect("answered");
        assert_eq!(server.caps_ex, SERVED_CAPS_EX);
        assert!(server.names(FourCc::Code(*b"hvc1")));
    }

    #[test]
    fn rejected_connect_is_reported() {
        let mut cfg = config();
        cfg.app = "other".to_owned();
        let pair = Pair::new(cfg, SessionConfig::default(), Policy::Accept);
        assert!(matches!(
            pair.server_error,
            Some(SessionError::AppRejected { .. })
        ));
        assert!(matches!(
            &pair.client_events[..],
            [ClientEvent::Rejected { code, description }]
                if code == "NetConnection.Connect.Rejected" && description.contains("other")
        ));
    }

    #[test]
    fn a_publish_failure_while_publishing_is_reported() {
        let mut pair = Pair::published();
        let mut out = BytesMut::new();
        pair.server
            .stream_error("NetStream.Publish.Failed", "taken over", &mut out);
        pair.server_sent(out);
        pair.pump();
        assert_eq!(
            pair.client_events.last(),
            Some(&ClientEvent::Rejected {
                code: "NetStream.Publish.Failed".to_owned(),
                description: "taken over".to_owned()
            })
        );
        assert!(!pair.client.is_publishing());
    }

    #[test]
    fn acknowledges_the_server_window_and_answers_pings() {
        let session = SessionConfig {
            window_ack_size: 1000,
            peer_bandwidth: 5000,
            ..SessionConfig::default()
        };
        let mut pair = Pair::new(config(), session, Policy::Accept);
        let mut out = BytesMut::new();
        pair.server.ping_request(1234, &mut out);
        pair.server_sent(out);
        pair.pump();
        let messages: Vec<Message> = client_messages(&pair.client_wire)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let acks: Vec<u32> = messages
            .iter()
            .filter_map(|m| match m {
                Message::Acknowledgement { sequence_number } => Some(*sequence_number),
                _ => None,
            })
            .collect();
        // The handshake (3073 bytes) already fills the window: the first chance to
        // acknowledge is the message after Window Acknowledgement Size (16 bytes on the
        // wire), Set Peer Bandwidth (17 bytes).
        assert_eq!(acks.first(), Some(&(3073 + 16 + 17)));
        assert!(acks.iter().all(|&a| a as usize <= pair.server_wire.len()));
        assert!(messages.contains(&Message::WindowAcknowledgementSize {
            acknowledgement_window_size: 5000
        }));
        assert!(
            messages.contains(&Message::UserControl(UserControlEvent::PingResponse {
                timestamp: 1234
            }))
        );
    }

    #[test]
    fn server_bytes_in_every_split() {
        // One run records what the server sends; fresh clients then read it in pieces split
        // at every byte and in 1-byte pieces, unpublishing once published. What the server
        // sends up to NetStream.Publish.Start and what it sends after the unpublish are
        // split separately (the second part answers the unpublish).
        let mut pair = Pair::published();
        let published_at = pair.server_wire.len();
        let mut out = BytesMut::new();
        pair.client.unpublish(&mut out).expect("encodable");
        pair.client_sent(out);
        pair.pump();
        assert_eq!(pair.client_events.last(), Some(&ClientEvent::Closed));
        let server_wire = pair.server_wire.clone();
        let client_after_c1 = pair.client_wire[1 + HANDSHAKE_SIZE..].to_vec();

        let replay = |pieces: &[&[u8]]| {
            let mut out = BytesMut::new();
            let mut client = PublishClient::new(config(), &mut out).expect("random source");
            out.clear();
            let mut input = BytesMut::new();
            let mut events = Vec::new();
            for piece in pieces {
                input.extend_from_slice(piece);
                let before = events.len();
                client
                    .feed(&mut input, &mut out, &mut events)
                    .expect("valid server bytes");
                if events[before..].contains(&ClientEvent::Published) {
                    client.unpublish(&mut out).expect("encodable");
                }
            }
            assert!(input.is_empty());
            (events, out.to_vec())
        };
        let expected = vec![
            ClientEvent::Connected,
            ClientEvent::Published,
            ClientEvent::Closed,
        ];
        let (until_published, after) = server_wire.split_at(published_at);
        for split in 0..=until_published.len() {
            let (first, second) = until_published.split_at(split);
            let (events, out) = replay(&[first, second, after]);
            assert_eq!(events, expected, "split at {split}");
            assert_eq!(out, client_after_c1, "split at {split}");
        }
        for split in 0..=after.len() {
            let (first, second) = after.split_at(split);
            let (events, out) = replay(&[until_published, first, second]);
            assert_eq!(events, expected, "split at {} after publishing", split);
            assert_eq!(out, client_after_c1, "split at {split} after publishing");
        }
        let pieces: Vec<&[u8]> = server_wire.chunks(1).collect();
        let (events, out) = replay(&pieces);
        assert_eq!(events, expected);
        assert_eq!(out, client_after_c1);
    }

    #[test]
    fn server_version_is_checked_at_once() {
        for version in [0u8, 6, b'H'] {
            let mut out = BytesMut::new();
            let mut client = PublishClient::new(config(), &mut out).expect("random source");
            assert_eq!(out.len(), 1 + HANDSHAKE_SIZE);
            out.clear();
            let mut input = BytesMut::from(&[version][..]);
            let err = client
                .feed(&mut input, &mut out, &mut Vec::new())
                .expect_err("wrong version");
            assert!(
                matches!(err, ClientError::ServerVersion { version: v } if v == version),
                "{err}"
            );
            assert!(out.is_empty());
        }
        // S0 and part of S1: nothing to do yet.
        let mut out = BytesMut::new();
        let mut client = PublishClient::new(config(), &mut out).expect("random source");
        out.clear();
        let mut input = BytesMut::from(&[RTMP_VERSION, 0, 0][..]);
        client
            .feed(&mut input, &mut out, &mut Vec::new())
            .expect("incomplete");
        assert!(out.is_empty());
        assert_eq!(input.len(), 3);
    }

    /// S0, S1, S2 and then `messages` as a server would chunk them.
    fn server_bytes(messages: &[Message]) -> Vec<u8> {
        let mut wire = vec![RTMP_VERSION];
        wire.extend_from_slice(&[0x33; 2 * HANDSHAKE_SIZE]);
        let encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for message in messages {
            let mut payload = BytesMut::new();
            message.write_payload(&mut payload).expect("encodable");
            let header = MessageHeader {
                timestamp: RtmpTimestamp(0),
                message_type_id: message.type_id(),
                message_stream_id: 0,
            };
            encoder
                .write_message(
                    ChunkStreamId::new(3).expect("valid"),
                    &header,
                    &payload,
                    &mut out,
                )
                .expect("small");
        }
        wire.extend_from_slice(&out);
        wire
    }

    fn result(transaction_id: f64, value: Value) -> Message {
        Message::Command(Command {
            name: "_result".to_owned(),
            transaction_id,
            command_object: Value::Null,
            arguments: vec![value],
        })
    }

    #[test]
    fn create_stream_result_needs_a_stream_id() {
        for bad in [
            Value::from("1"),
            Value::Number(0.0),
            Value::Number(1.5),
            Value::Number(-1.0),
            Value::Number(4_294_967_296.0),
            Value::Null,
        ] {
            // connect is transaction 1; releaseStream 2, FCPublish 3, createStream 4.
            let wire = server_bytes(&[result(1.0, Value::Null), result(4.0, bad.clone())]);
            let mut out = BytesMut::new();
            let mut client = PublishClient::new(config(), &mut out).expect("random source");
            let mut events = Vec::new();
            let err = client
                .feed(&mut BytesMut::from(&wire[..]), &mut out, &mut events)
                .expect_err("no stream id");
            assert!(
                matches!(
                    err,
                    ClientError::MalformedReply {
                        command: "createStream",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
            assert_eq!(events, [ClientEvent::Connected]);
        }
        // A whole number is taken, and publish goes out on that stream.
        let wire = server_bytes(&[result(1.0, Value::Null), result(4.0, Value::Number(7.0))]);
        let mut out = BytesMut::new();
        let mut client = PublishClient::new(config(), &mut out).expect("random source");
        out.clear();
        client
            .feed(&mut BytesMut::from(&wire[..]), &mut out, &mut Vec::new())
            .expect("valid");
        let mut wire = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
        wire.extend_from_slice(&out[HANDSHAKE_SIZE..]);
        let publish = client_messages(&wire)
            .into_iter()
            .find(|(_, m)| matches!(m, Message::Command(c) if c.name == "publish"))
            .expect("publish sent");
        assert_eq!(publish.0.message_stream_id, 7);
    }

    #[test]
    fn set_data_frame_is_the_amf0_string() {
        let mut encoded = BytesMut::new();
        crate::rtmp::amf0::encode(&Value::from("@setDataFrame"), &mut encoded).expect("short");
        assert_eq!(&encoded[..], SET_DATA_FRAME);
    }

    #[test]
    fn media_needs_a_publish() {
        let mut out = BytesMut::new();
        let mut client = PublishClient::new(config(), &mut out).expect("random source");
        let err = client
            .send_media(MediaKind::Audio, RtmpTimestamp(0), &[0xaf], &mut out)
            .expect_err("handshake in progress");
        assert!(matches!(
            err,
            ClientError::NotPublishing { what: "audio", .. }
        ));
        let err = client
            .send_metadata(RtmpTimestamp(0), &[], &mut out)
            .expect_err("handshake in progress");
        assert!(err.to_string().contains("metadata"), "{err}");
    }
}
