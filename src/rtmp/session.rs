//! The server side of an RTMP session after the handshake: a state machine that turns
//! incoming chunks into events for the application and writes the protocol's answers.
//!
//! The publishing sequence encoders use (ffmpeg, OBS/librtmp, GStreamer rtmp2sink, Larix):
//!
//! ```text
//! client                                   server
//! connect (tcUrl, app)          ->
//!                               <-  Window Acknowledgement Size, Set Peer Bandwidth,
//!                                   Set Chunk Size, _result NetConnection.Connect.Success
//! releaseStream, FCPublish      ->  (_result, onFCPublish)
//! createStream                  ->  _result (stream id)
//! publish (name?query, "live")  ->  PublishRequested: the application checks the key, then
//!                               <-  Stream Begin + onStatus NetStream.Publish.Start (accept_publish)
//! @setDataFrame onMetaData      ->  Metadata
//! audio / video                 ->  Media
//! FCUnpublish, deleteStream     ->  onStatus NetStream.Unpublish.Success, Unpublished
//! ```
//!
//! Policy (which stream keys may publish) stays with the application: the session raises
//! [`SessionEvent::PublishRequested`] and waits for [`ServerSession::accept_publish`] or
//! [`ServerSession::reject_publish`]. Encoders wait for that answer before they send media.
//!
//! A client that announces Enhanced RTMP in `connect` (`fourCcList`, `capsEx`, ...) gets
//! this server's codecs and extensions in the `_result` ([`super::enhanced`]).
//!
//! Spec: RTMP 1.0 §5.4 (protocol control), §6.2 (user control), §7.2.1 (NetConnection
//! commands: connect §7.2.1.1, createStream §7.2.1.3), §7.2.2 (NetStream commands: play
//! §7.2.2.1, deleteStream §7.2.2.3, publish §7.2.2.6); Enhanced RTMP v2, "Enhancing
//! NetConnection connect Command".

use bytes::{Bytes, BytesMut};

use super::amf0::{self, Value};
use super::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkSize, ChunkStreamId, MAX_MESSAGE_LENGTH, MessageHeader,
    RawMessage,
};
use super::enhanced::EnhancedCaps;
use super::error::SessionError;
use super::handshake::CLIENT_HANDSHAKE_LEN;
use super::message::{Command, LimitType, Message, UserControlEvent};
use crate::media::RtmpTimestamp;

/// Most streams one connection may create. A publisher needs one; the bound keeps stream ids
/// small and a looping client from counting forever.
pub const MAX_STREAMS: u32 = 64;

/// Chunk stream for protocol control and user control messages. Spec: RTMP 1.0 §5.4, §6.2.
const CONTROL_CSID: ChunkStreamId = ChunkStreamId::PROTOCOL_CONTROL;
/// Chunk stream for NetConnection command replies (`_result`, `_error`).
const COMMAND_CSID: ChunkStreamId = ChunkStreamId::new(3).expect("3 is a chunk stream id");
/// Chunk stream for NetStream status messages (`onStatus`).
const STATUS_CSID: ChunkStreamId = ChunkStreamId::new(5).expect("5 is a chunk stream id");

/// fmsVer announced in the connect `_result`: the Flash Media Server version encoders expect
/// to see (librtmp and ffmpeg only log it).
const FMS_VERSION: &str = "FMS/3,0,1,123";
/// capabilities announced in the connect `_result`, as Flash Media Server sends it.
const FMS_CAPABILITIES: f64 = 31.0;

/// Publishing type when `publish` leaves it out. Spec: RTMP 1.0 §7.2.2.6.
const DEFAULT_PUBLISH_TYPE: &str = "live";

/// What the session announces and accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The only application name `connect` may name (compared without leading/trailing `/`
    /// and without a `?query`).
    pub app: String,
    /// Outgoing chunk size, announced with Set Chunk Size on connect. 0 or a value with the
    /// top bit set is replaced by 128 (with a warning); values above 0xFFFFFF act as 0xFFFFFF.
    pub chunk_size: u32,
    /// Window Acknowledgement Size announced on connect: the client acknowledges after this
    /// many bytes. Spec: RTMP 1.0 §5.4.4.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth value announced on connect (limit type dynamic). Spec: RTMP 1.0
    /// §5.4.5.
    pub peer_bandwidth: u32,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            app: "live".to_owned(),
            chunk_size: 60_000,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }
}

/// Which kind of FLV tag body a [`SessionEvent::Media`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Message type 8. Spec: RTMP 1.0 §7.1.4.
    Audio,
    /// Message type 9. Spec: RTMP 1.0 §7.1.5.
    Video,
}

impl MediaKind {
    fn name(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What happened on the session, for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// `connect` accepted; the session has already answered `_result`
    /// NetConnection.Connect.Success. `app` is as the client sent it. `enhanced` is what
    /// the client announced about Enhanced RTMP (codecs, capsEx); `None` for a legacy
    /// client.
    Connected {
        app: String,
        tc_url: Option<String>,
        flash_ver: Option<String>,
        enhanced: Option<EnhancedCaps>,
    },
    /// The client asked to publish. The session has NOT answered yet: the application
    /// answers with [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    /// `stream_key` is the publishing name with any `?query` removed (client input: check
    /// it before using it in a path); `query` keeps the part after `?` (encoders carry
    /// tokens there).
    PublishRequested {
        stream_id: u32,
        stream_key: String,
        query: Option<String>,
        publish_type: String,
    },
    /// An FLV audio or video tag body on the accepted published stream.
    Media {
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        payload: Bytes,
    },
    /// onMetaData (sent directly or via @setDataFrame) on the stream that asked to publish,
    /// as parsed AMF0 (ECMA array/object properties), plus the FLV script tag body
    /// ("onMetaData" and the array) without "@setDataFrame".
    Metadata {
        timestamp: RtmpTimestamp,
        properties: Vec<(String, amf0::Value)>,
        payload: Bytes,
    },
    /// The publisher stopped publishing (FCUnpublish, deleteStream, closeStream on the
    /// published stream); the session has answered NetStream.Unpublish.Success.
    Unpublished,
    /// The client asked to play `stream_key` (the name without `?query`; `query` keeps the
    /// rest, where a play token travels). The session has NOT answered yet: the application
    /// answers with [`ServerSession::accept_play`] or [`ServerSession::reject_play`].
    PlayRequested {
        stream_id: u32,
        stream_key: String,
        query: Option<String>,
    },
    /// The player closed or deleted the stream it played.
    PlayStopped,
}

/// Where the connection's one play stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Play {
    Idle,
    /// PlayRequested raised; the application has not answered.
    Requested {
        stream_id: u32,
    },
    /// Accepted: media goes out on `stream_id`.
    Active {
        stream_id: u32,
    },
}

impl Play {
    fn stream_id(self) -> Option<u32> {
        match self {
            Play::Idle => None,
            Play::Requested { stream_id } | Play::Active { stream_id } => Some(stream_id),
        }
    }
}

/// Chunk streams of what a player gets: data (metadata, |RtmpSampleAccess), audio and video,
/// apart from commands so a large frame never holds up a status.
const DATA_CSID: ChunkStreamId = ChunkStreamId::new(4).expect("4 is a chunk stream id");
const AUDIO_CSID: ChunkStreamId = ChunkStreamId::new(6).expect("6 is a chunk stream id");
const VIDEO_CSID: ChunkStreamId = ChunkStreamId::new(7).expect("7 is a chunk stream id");

/// Where the connection's one publish stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Publish {
    Idle,
    /// PublishRequested raised; the application has not answered.
    Requested {
        stream_id: u32,
        stream_key: String,
    },
    /// Accepted: media on `stream_id` is passed on.
    Active {
        stream_id: u32,
        stream_key: String,
    },
}

impl Publish {
    /// The stream that asked to publish or publishes.
    fn stream_id(&self) -> Option<u32> {
        match self {
            Publish::Idle => None,
            Publish::Requested { stream_id, .. } | Publish::Active { stream_id, .. } => {
                Some(*stream_id)
            }
        }
    }

    fn stream_key(&self) -> Option<&str> {
        match self {
            Publish::Idle => None,
            Publish::Requested { stream_key, .. } | Publish::Active { stream_key, .. } => {
                Some(stream_key)
            }
        }
    }
}

/// `name` without a `?query`, and the query.
fn split_query(name: &str) -> (&str, Option<&str>) {
    match name.split_once('?') {
        Some((name, query)) => (name, Some(query)),
        None => (name, None),
    }
}

/// An application name as compared with the configured one: without `?query` and without
/// leading or trailing slashes (encoders send `live/` and `live?token=...`).
fn normalize_app(app: &str) -> &str {
    split_query(app).0.trim_matches('/')
}

/// The server side of one RTMP session, after the handshake.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    /// `config.chunk_size` as it takes effect.
    chunk_size: ChunkSize,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    connected: bool,
    /// Streams created so far; their ids are 1 to this.
    streams_created: u32,
    publish: Publish,
    play: Play,
    /// Bytes received on the connection, handshake included, modulo 2^32: the
    /// Acknowledgement sequence number. Spec: RTMP 1.0 §5.4.3.
    received: u32,
    /// Bytes received since the last Acknowledgement.
    unacknowledged: u64,
    /// The peer's Window Acknowledgement Size; 0 until it sends one (no acknowledgements).
    peer_window: u32,
    /// Reused buffer for outgoing message payloads.
    scratch: BytesMut,
}

/// Longest message accepted before a publish is accepted. Commands and metadata are a few
/// hundred bytes (an encoder's onMetaData with every field, a few KiB); media may be larger
/// only once the stream key has been checked, so a client that was never let in cannot make
/// the server hold megabytes.
pub const MAX_MESSAGE_BEFORE_PUBLISH: u32 = 64 * 1024;

impl ServerSession {
    pub fn new(config: SessionConfig) -> ServerSession {
        let chunk_size = ChunkSize::new(config.chunk_size).unwrap_or_else(|err| {
            tracing::warn!(configured = config.chunk_size, %err, "invalid chunk size; using 128");
            ChunkSize::DEFAULT
        });
        let mut decoder = ChunkDecoder::new();
        decoder.set_max_message_length(MAX_MESSAGE_BEFORE_PUBLISH);
        ServerSession {
            config,
            chunk_size,
            decoder,
            encoder: ChunkEncoder::new(),
            connected: false,
            streams_created: 0,
            publish: Publish::Idle,
            play: Play::Idle,
            received: CLIENT_HANDSHAKE_LEN as u32,
            unacknowledged: CLIENT_HANDSHAKE_LEN as u64,
            peer_window: 0,
            scratch: BytesMut::new(),
        }
    }

    /// Consumes whole chunks from `input` (bytes after the handshake; partial chunks stay in
    /// `input`), appends bytes to send to `out` (in order) and events to `events`.
    ///
    /// After a [`SessionEvent::PublishRequested`] it stops consuming until the application
    /// answers with [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`]:
    /// what the client sent after `publish` (media, `deleteStream`, another `publish`) is only
    /// read once the answer is in, so each event refers to the state its answer created. Call
    /// it again after answering.
    ///
    /// On an error the session is over, but `out` may still hold answers (a connect
    /// rejection, earlier replies): send them before closing the connection.
    pub fn handle_input(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        while !matches!(self.publish, Publish::Requested { .. })
            && !matches!(self.play, Play::Requested { .. })
        {
            let before = self.decoder.position();
            let message = self.decoder.decode(input)?;
            self.count_received(self.decoder.position() - before, out);
            let Some(message) = message else {
                return Ok(());
            };
            self.on_message(message, out, events)?;
        }
        Ok(())
    }

    /// Answers the pending publish: Stream Begin + onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self, out: &mut BytesMut) {
        match std::mem::replace(&mut self.publish, Publish::Idle) {
            Publish::Requested {
                stream_id,
                stream_key,
            } => {
                self.send(
                    CONTROL_CSID,
                    0,
                    &Message::UserControl(UserControlEvent::StreamBegin { stream_id }),
                    out,
                );
                self.on_status(
                    stream_id,
                    "status",
                    "NetStream.Publish.Start",
                    "Publishing started.",
                    out,
                );
                self.publish = Publish::Active {
                    stream_id,
                    stream_key,
                };
                self.decoder.set_max_message_length(MAX_MESSAGE_LENGTH);
            }
            other => {
                tracing::debug!(state = ?other, "accept_publish without a pending publish");
                self.publish = other;
            }
        }
    }

    /// Answers the pending publish with an error onStatus (`code`, e.g.
    /// "NetStream.Publish.BadName" or "NetStream.Publish.Unauthorized"; `description`
    /// human-readable).
    pub fn reject_publish(&mut self, code: &str, description: &str, out: &mut BytesMut) {
        match std::mem::replace(&mut self.publish, Publish::Idle) {
            Publish::Requested { stream_id, .. } => {
                self.on_status(stream_id, "error", code, description, out);
            }
            other => {
                tracing::debug!(state = ?other, "reject_publish without a pending publish");
                self.publish = other;
            }
        }
    }

    /// Sends an error onStatus on the published stream (e.g. "NetStream.Publish.Failed" for
    /// an unsupported codec, or when the stream is taken over) before the application
    /// closes. The publish ends: media that still arrives is a protocol error.
    pub fn stream_error(&mut self, code: &str, description: &str, out: &mut BytesMut) {
        match self.publish.stream_id() {
            Some(stream_id) => {
                self.on_status(stream_id, "error", code, description, out);
                self.publish = Publish::Idle;
            }
            None => tracing::debug!("stream_error without a publish"),
        }
    }

    /// Answers the pending play as players expect: Stream Begin, onStatus
    /// NetStream.Play.Reset and NetStream.Play.Start, then the data message
    /// `|RtmpSampleAccess` (true, true). Media follows with
    /// [`ServerSession::send_tag`]. Spec: RTMP 1.0 §7.2.2.1.
    pub fn accept_play(&mut self, description: &str, out: &mut BytesMut) {
        let Play::Requested { stream_id } = self.play else {
            tracing::debug!(state = ?self.play, "accept_play without a pending play");
            return;
        };
        self.send(
            CONTROL_CSID,
            0,
            &Message::UserControl(UserControlEvent::StreamBegin { stream_id }),
            out,
        );
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.Reset",
            description,
            out,
        );
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.Start",
            description,
            out,
        );
        let mut data = BytesMut::new();
        for value in [
            Value::from("|RtmpSampleAccess"),
            Value::Boolean(true),
            Value::Boolean(true),
        ] {
            let _ = amf0::encode(&value, &mut data);
        }
        self.send(DATA_CSID, stream_id, &Message::Data(data.freeze()), out);
        self.play = Play::Active { stream_id };
    }

    /// Answers the pending play with an error onStatus (`code`: NetStream.Play.StreamNotFound,
    /// NetStream.Play.Failed, ...).
    pub fn reject_play(&mut self, code: &str, description: &str, out: &mut BytesMut) {
        if let Some(stream_id) = self.play.stream_id() {
            self.on_status(stream_id, "error", code, description, out);
        }
        self.play = Play::Idle;
    }

    /// Ends the play: the publisher stopped. Stream EOF and onStatus
    /// NetStream.Play.UnpublishNotify and NetStream.Play.Stop, after which players close.
    pub fn end_play(&mut self, out: &mut BytesMut) {
        let Play::Active { stream_id } = self.play else {
            return;
        };
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            "The stream's publisher stopped.",
            out,
        );
        self.send(
            CONTROL_CSID,
            0,
            &Message::UserControl(UserControlEvent::StreamEof { stream_id }),
            out,
        );
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.Stop",
            "Stopped playing.",
            out,
        );
        self.play = Play::Idle;
    }

    /// Ends the play with an error status (the player fell behind, the stream's codec needs
    /// Enhanced RTMP).
    pub fn fail_play(&mut self, description: &str, out: &mut BytesMut) {
        if let Play::Active { stream_id } = self.play {
            self.on_status(
                stream_id,
                "error",
                "NetStream.Play.Failed",
                description,
                out,
            );
        }
        self.play = Play::Idle;
    }

    /// Queues one FLV tag as a message on the played stream: audio and video on chunk
    /// streams of their own, script data (onMetaData) as a data message; the frame is sent
    /// from where it lies. Nothing without an active play. Spec: RTMP 1.0 §7.1.2, §7.1.4,
    /// §7.1.5.
    pub fn send_tag(&mut self, tag: &crate::flv::mux::Tag, out: &mut super::egress::Egress) {
        let Play::Active { stream_id } = self.play else {
            return;
        };
        let csid = match tag.kind {
            crate::flv::tag::TagType::Audio => AUDIO_CSID,
            crate::flv::tag::TagType::Video => VIDEO_CSID,
            crate::flv::tag::TagType::ScriptData => DATA_CSID,
        };
        let header = MessageHeader {
            timestamp: tag.timestamp,
            message_type_id: tag.message_type(),
            message_stream_id: stream_id,
        };
        if let Err(err) = out.push_tag(&self.encoder, csid, &header, tag) {
            tracing::debug!(%err, "tag not sent");
        }
    }

    /// Whether a play is accepted and under way.
    pub fn is_playing(&self) -> bool {
        matches!(self.play, Play::Active { .. })
    }

    /// User Control Ping Request with the given timestamp (ms). Spec: RTMP 1.0 §7.1.7.
    pub fn ping_request(&mut self, timestamp: u32, out: &mut BytesMut) {
        self.send(
            CONTROL_CSID,
            0,
            &Message::UserControl(UserControlEvent::PingRequest { timestamp }),
            out,
        );
    }

    /// Counts `n` received bytes and acknowledges them once a window is full.
    /// Spec: RTMP 1.0 §5.4.3, §5.4.4.
    fn count_received(&mut self, n: u64, out: &mut BytesMut) {
        self.received = self.received.wrapping_add(n as u32);
        self.unacknowledged += n;
        if self.peer_window > 0 && self.unacknowledged >= u64::from(self.peer_window) {
            self.unacknowledged = 0;
            let ack = Message::Acknowledgement {
                sequence_number: self.received,
            };
            self.send(CONTROL_CSID, 0, &ack, out);
        }
    }

    fn on_message(
        &mut self,
        raw: RawMessage,
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        let header = raw.header;
        let message = Message::parse(header.message_type_id, raw.payload).map_err(|source| {
            SessionError::Message {
                timestamp_ms: header.timestamp.0,
                message_stream_id: header.message_stream_id,
                source,
            }
        })?;
        match message {
            // Applied by the chunk decoder before the next chunk was read.
            Message::SetChunkSize { .. } | Message::Abort { .. } => {}
            Message::Acknowledgement { sequence_number } => {
                tracing::trace!(sequence_number, "peer acknowledged");
            }
            Message::WindowAcknowledgementSize {
                acknowledgement_window_size,
            } => {
                tracing::debug!(
                    acknowledgement_window_size,
                    "peer set its acknowledgement window"
                );
                self.peer_window = acknowledgement_window_size;
            }
            Message::SetPeerBandwidth {
                acknowledgement_window_size,
                limit_type,
            } => {
                // This side sends little; the limit does not change what it does.
                tracing::debug!(
                    acknowledgement_window_size,
                    ?limit_type,
                    "peer set our bandwidth"
                );
            }
            Message::UserControl(UserControlEvent::PingRequest { timestamp }) => {
                let pong = Message::UserControl(UserControlEvent::PingResponse { timestamp });
                self.send(CONTROL_CSID, 0, &pong, out);
            }
            Message::UserControl(event) => tracing::debug!(?event, "user control event"),
            Message::Audio(payload) => self.on_media(MediaKind::Audio, header, payload, events)?,
            Message::Video(payload) => self.on_media(MediaKind::Video, header, payload, events)?,
            Message::Command(command) => {
                self.on_command(header.message_stream_id, command, out, events)?;
            }
            Message::Data(body) => self.on_data(header, body, events)?,
            Message::Other {
                message_type_id, ..
            } => {
                // Shared objects, aggregates and unassigned types are legal; nothing here
                // uses them.
                tracing::debug!(message_type_id, "ignoring message");
            }
        }
        Ok(())
    }

    fn on_media(
        &mut self,
        kind: MediaKind,
        header: MessageHeader,
        payload: Bytes,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        match self.publish {
            Publish::Active { stream_id, .. } if stream_id == header.message_stream_id => {
                events.push(SessionEvent::Media {
                    kind,
                    timestamp: header.timestamp,
                    payload,
                });
                Ok(())
            }
            _ => Err(SessionError::MediaWithoutPublish {
                kind: kind.name(),
                timestamp_ms: header.timestamp.0,
                message_stream_id: header.message_stream_id,
            }),
        }
    }

    /// Data messages: onMetaData, directly or through @setDataFrame, on the stream that
    /// asked to publish. Anything else is ignored. Spec: RTMP 1.0 §7.1.2.
    fn on_data(
        &mut self,
        header: MessageHeader,
        body: Bytes,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        if self.publish.stream_id() != Some(header.message_stream_id) {
            tracing::debug!(
                message_stream_id = header.message_stream_id,
                "ignoring data message outside a publish"
            );
            return Ok(());
        }
        let mut decoder = amf0::Decoder::new(&body);
        let handler = match decoder.decode() {
            Ok(Some(Value::String(handler))) => handler,
            other => {
                tracing::debug!(first = ?other, "ignoring data message without a handler name");
                return Ok(());
            }
        };
        // Where the FLV script tag body starts: at "onMetaData".
        let start = match handler.as_str() {
            "onMetaData" => 0,
            "@setDataFrame" => {
                let start = decoder.position();
                match decoder.decode() {
                    Ok(Some(Value::String(name))) if name == "onMetaData" => start,
                    other => {
                        tracing::debug!(name = ?other, "ignoring @setDataFrame of something else");
                        return Ok(());
                    }
                }
            }
            _ => {
                tracing::debug!(handler, "ignoring data message");
                return Ok(());
            }
        };
        let metadata = decoder.decode().map_err(|source| SessionError::Metadata {
            message_stream_id: header.message_stream_id,
            source,
        })?;
        let properties = match metadata {
            Some(Value::EcmaArray(properties) | Value::Object(properties)) => properties,
            other => {
                tracing::debug!(value = ?other, "ignoring onMetaData without properties");
                return Ok(());
            }
        };
        events.push(SessionEvent::Metadata {
            timestamp: header.timestamp,
            properties,
            payload: body.slice(start..),
        });
        Ok(())
    }

    fn on_command(
        &mut self,
        message_stream_id: u32,
        command: Command,
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        let name = command.name.as_str();
        let needs_connection = matches!(
            name,
            "releaseStream"
                | "FCPublish"
                | "createStream"
                | "publish"
                | "play"
                | "FCUnpublish"
                | "deleteStream"
                | "closeStream"
        );
        if needs_connection && !self.connected {
            return Err(SessionError::NotConnected {
                command: command.name,
            });
        }
        let tid = command.transaction_id;
        match name {
            "connect" => self.on_connect(command, out, events)?,
            "releaseStream" => {
                if tid != 0.0 {
                    self.result(tid, Value::Undefined, out);
                }
            }
            "FCPublish" => {
                let stream = command.string_argument(0).unwrap_or_default().to_owned();
                if tid != 0.0 {
                    self.result(tid, Value::Undefined, out);
                }
                let info = Value::Object(vec![
                    ("code".to_owned(), "NetStream.Publish.Start".into()),
                    ("description".to_owned(), stream.into()),
                ]);
                self.command(COMMAND_CSID, 0, "onFCPublish", 0.0, vec![info], out);
            }
            "createStream" => {
                if self.streams_created >= MAX_STREAMS {
                    return Err(SessionError::TooManyStreams {
                        count: self.streams_created + 1,
                        limit: MAX_STREAMS,
                    });
                }
                self.streams_created += 1;
                self.result(tid, Value::Number(f64::from(self.streams_created)), out);
            }
            "publish" => self.on_publish(message_stream_id, command, events)?,
            "play" => self.on_play(message_stream_id, command, events)?,
            "FCUnpublish" => {
                let stream_key = command.string_argument(0).map(|n| split_query(n).0);
                let concerns = match (stream_key, self.publish.stream_key()) {
                    (Some(named), Some(publishing)) => named == publishing,
                    (None, publishing) => publishing.is_some(),
                    (Some(_), None) => false,
                };
                if concerns {
                    self.end_publish(out, events);
                }
            }
            "deleteStream" => {
                let concerns = match command.arguments.first() {
                    Some(Value::Number(id)) => self.publish.stream_id().map(f64::from) == Some(*id),
                    // GStreamer's rtmp2sink names the stream instead of giving its id.
                    Some(Value::String(name)) => self
                        .publish
                        .stream_key()
                        .is_some_and(|k| k == split_query(name).0),
                    _ => false,
                };
                let played = match command.arguments.first() {
                    Some(Value::Number(id)) => self.play.stream_id().map(f64::from) == Some(*id),
                    _ => false,
                };
                if concerns {
                    self.end_publish(out, events);
                } else if played {
                    self.play = Play::Idle;
                    events.push(SessionEvent::PlayStopped);
                } else {
                    tracing::debug!(stream = ?command.arguments.first(), "deleteStream of a stream that does not publish")
                }
            }
            "closeStream" => {
                if self.publish.stream_id() == Some(message_stream_id) {
                    self.end_publish(out, events);
                }
                if self.play.stream_id() == Some(message_stream_id) {
                    self.play = Play::Idle;
                    events.push(SessionEvent::PlayStopped);
                }
            }
            // getStreamLength, checkBandwidth, _checkbw, onBWDone answers, play2, pause,
            // receiveAudio/Video, seek, `_result`s and anything else: nothing to do.
            _ => tracing::debug!(command = name, transaction_id = tid, "ignoring command"),
        }
        Ok(())
    }

    /// Spec: RTMP 1.0 §7.2.1.1.
    fn on_connect(
        &mut self,
        command: Command,
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        if self.connected {
            return Err(SessionError::AlreadyConnected);
        }
        let object = &command.command_object;
        let Some(app) = object.property("app").and_then(Value::as_str) else {
            return Err(SessionError::MalformedCommand {
                command: command.name,
                problem: "has no app string in its command object",
            });
        };
        let tid = command.transaction_id;
        if normalize_app(app) != normalize_app(&self.config.app) {
            let info = status_object(
                "error",
                "NetConnection.Connect.Rejected",
                &format!("Application {app:?} is not served here."),
            );
            self.command(COMMAND_CSID, 0, "_error", tid, vec![info], out);
            return Err(SessionError::AppRejected {
                app: app.to_owned(),
                expected: self.config.app.clone(),
            });
        }
        let string = |name: &str| {
            object
                .property(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let enhanced = EnhancedCaps::from_connect_object(object);
        let announced_enhanced = enhanced.is_some();
        let event = SessionEvent::Connected {
            app: app.to_owned(),
            tc_url: string("tcUrl"),
            flash_ver: string("flashVer"),
            enhanced,
        };

        let window = Message::WindowAcknowledgementSize {
            acknowledgement_window_size: self.config.window_ack_size,
        };
        self.send(CONTROL_CSID, 0, &window, out);
        let bandwidth = Message::SetPeerBandwidth {
            acknowledgement_window_size: self.config.peer_bandwidth,
            limit_type: LimitType::Dynamic,
        };
        self.send(CONTROL_CSID, 0, &bandwidth, out);
        let chunk_size = Message::SetChunkSize {
            chunk_size: self.chunk_size.get(),
        };
        self.send(CONTROL_CSID, 0, &chunk_size, out);
        self.encoder.set_chunk_size(self.chunk_size);

        let mut properties = vec![
            ("fmsVer".to_owned(), FMS_VERSION.into()),
            ("capabilities".to_owned(), FMS_CAPABILITIES.into()),
        ];
        // Enhanced RTMP: answered only to a client that announced it, so a legacy client
        // sees exactly the reply it always saw.
        if announced_enhanced {
            properties.extend(EnhancedCaps::server_answer());
        }
        let properties = Value::Object(properties);
        let mut information = status_object(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        if let Value::Object(fields) = &mut information {
            // Commands are read and written in AMF0 whatever the client asked for.
            fields.push(("objectEncoding".to_owned(), 0.0.into()));
        }
        self.send(
            COMMAND_CSID,
            0,
            &Message::Command(Command {
                name: "_result".to_owned(),
                transaction_id: tid,
                command_object: properties,
                arguments: vec![information],
            }),
            out,
        );
        self.connected = true;
        events.push(event);
        Ok(())
    }

    /// The stream name `command` (publish or play) gives, on a stream that was created;
    /// `missing` says what is wrong without one.
    fn stream_name<'c>(
        &self,
        message_stream_id: u32,
        command: &'c Command,
        missing: &'static str,
    ) -> Result<&'c str, SessionError> {
        if message_stream_id == 0 || message_stream_id > self.streams_created {
            return Err(SessionError::UnknownStream {
                command: command.name.clone(),
                message_stream_id,
            });
        }
        command
            .string_argument(0)
            .ok_or_else(|| SessionError::MalformedCommand {
                command: command.name.clone(),
                problem: missing,
            })
    }

    /// Spec: RTMP 1.0 §7.2.2.6.
    fn on_publish(
        &mut self,
        message_stream_id: u32,
        command: Command,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        let name =
            self.stream_name(message_stream_id, &command, "has no publishing name string")?;
        let (stream_key, query) = split_query(name);
        if let Some(active_stream_id) = self.publish.stream_id() {
            return Err(SessionError::SecondPublish {
                stream_key: stream_key.to_owned(),
                message_stream_id,
                active_stream_id,
            });
        }
        let publish_type = command.string_argument(1).unwrap_or(DEFAULT_PUBLISH_TYPE);
        self.publish = Publish::Requested {
            stream_id: message_stream_id,
            stream_key: stream_key.to_owned(),
        };
        events.push(SessionEvent::PublishRequested {
            stream_id: message_stream_id,
            stream_key: stream_key.to_owned(),
            query: query.map(str::to_owned),
            publish_type: publish_type.to_owned(),
        });
        Ok(())
    }

    /// Spec: RTMP 1.0 §7.2.2.1. A connection plays one stream, and does not publish and
    /// play at once.
    fn on_play(
        &mut self,
        message_stream_id: u32,
        command: Command,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        let name = self.stream_name(message_stream_id, &command, "has no stream name string")?;
        if self.publish.stream_id().is_some() || self.play.stream_id().is_some() {
            return Err(SessionError::MalformedCommand {
                command: command.name.clone(),
                problem: "comes while the connection already publishes or plays",
            });
        }
        let (stream_key, query) = split_query(name);
        self.play = Play::Requested {
            stream_id: message_stream_id,
        };
        events.push(SessionEvent::PlayRequested {
            stream_id: message_stream_id,
            stream_key: stream_key.to_owned(),
            query: query.map(str::to_owned),
        });
        Ok(())
    }

    /// The publish ends at the client's request: Unpublish.Success and Unpublished if it
    /// was accepted; a request the application has not answered is withdrawn.
    fn end_publish(&mut self, out: &mut BytesMut, events: &mut Vec<SessionEvent>) {
        match std::mem::replace(&mut self.publish, Publish::Idle) {
            Publish::Active { stream_id, .. } => {
                self.on_status(
                    stream_id,
                    "status",
                    "NetStream.Unpublish.Success",
                    "Stopped publishing.",
                    out,
                );
                events.push(SessionEvent::Unpublished);
            }
            Publish::Requested { stream_id, .. } => {
                tracing::debug!(
                    stream_id,
                    "publish request withdrawn before it was answered"
                );
            }
            Publish::Idle => {}
        }
    }

    /// `_result` with a null command object and one value.
    fn result(&mut self, transaction_id: f64, value: Value, out: &mut BytesMut) {
        self.command(COMMAND_CSID, 0, "_result", transaction_id, vec![value], out);
    }

    /// onStatus on a NetStream. Spec: RTMP 1.0 §7.2.2.
    fn on_status(
        &mut self,
        stream_id: u32,
        level: &str,
        code: &str,
        description: &str,
        out: &mut BytesMut,
    ) {
        let info = status_object(level, code, description);
        self.command(STATUS_CSID, stream_id, "onStatus", 0.0, vec![info], out);
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
    ) {
        let command = Command {
            name: name.to_owned(),
            transaction_id,
            command_object: Value::Null,
            arguments,
        };
        self.send(csid, message_stream_id, &Message::Command(command), out);
    }

    /// Chunks `message` into `out`. What this side sends is built from constants, ids and
    /// the application's status texts; a message that cannot be written (a text beyond the
    /// 16 MiB message limit) is logged and left out.
    fn send(
        &mut self,
        csid: ChunkStreamId,
        message_stream_id: u32,
        message: &Message,
        out: &mut BytesMut,
    ) {
        self.scratch.clear();
        if let Err(err) = message.write_payload(&mut self.scratch) {
            tracing::error!(%err, type_id = message.type_id(), "outgoing message not encodable; not sent");
            return;
        }
        let header = MessageHeader {
            timestamp: RtmpTimestamp(0),
            message_type_id: message.type_id(),
            message_stream_id,
        };
        if let Err(err) = self
            .encoder
            .write_message(csid, &header, &self.scratch, out)
        {
            tracing::error!(%err, type_id = message.type_id(), "outgoing message not sent");
        }
    }
}

/// The information object of a status or error reply.
fn status_object(level: &str, code: &str, description: &str) -> Value {
    Value::Object(vec![
        ("level".to_owned(), level.into()),
        ("code".to_owned(), code.into()),
        ("description".to_owned(), description.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::ChunkStreamId;
    use crate::rtmp::enhanced::{Announced, FourCc, FourCcCap, MAX_ENTRIES, caps_ex, fourcc_info};
    use crate::rtmp::error::{Amf0Error, MessageError};
    use crate::rtmp::message::type_id;

    /// The client side of a test: chunks what it sends, dechunks what the server sends.
    struct Client {
        encoder: ChunkEncoder,
        from_server: ChunkDecoder,
        from_server_buf: BytesMut,
    }

    /// A server message: header and interpretation.
    type Reply = (MessageHeader, ChunkStreamId, Message);

    impl Client {
        fn new() -> Client {
            Client {
                encoder: ChunkEncoder::new(),
                from_server: ChunkDecoder::new(),
                from_server_buf: BytesMut::new(),
            }
        }

        fn message(&self, csid: u32, stream: u32, timestamp: u32, message: &Message) -> Vec<u8> {
            let mut payload = BytesMut::new();
            message.write_payload(&mut payload).expect("encodable");
            self.raw(csid, stream, timestamp, message.type_id(), &payload)
        }

        fn raw(
            &self,
            csid: u32,
            stream: u32,
            timestamp: u32,
            type_id: u8,
            payload: &[u8],
        ) -> Vec<u8> {
            let header = MessageHeader {
                timestamp: RtmpTimestamp(timestamp),
                message_type_id: type_id,
                message_stream_id: stream,
            };
            let mut out = BytesMut::new();
            self.encoder
                .write_message(
                    ChunkStreamId::new(csid).expect("valid"),
                    &header,
                    payload,
                    &mut out,
                )
                .expect("small");
            out.to_vec()
        }

        fn command(
            &self,
            stream: u32,
            name: &str,
            tid: f64,
            object: Value,
            args: Vec<Value>,
        ) -> Vec<u8> {
            let command = Command {
                name: name.to_owned(),
                transaction_id: tid,
                command_object: object,
                arguments: args,
            };
            self.message(
                if stream == 0 { 3 } else { 8 },
                stream,
                0,
                &Message::Command(command),
            )
        }

        /// Everything the server sent in `out`, decoded (and `out` emptied).
        fn replies(&mut self, out: &mut BytesMut) -> Vec<Reply> {
            self.from_server_buf.extend_from_slice(&out.split());
            let mut replies = Vec::new();
            while let Some(raw) = self
                .from_server
                .decode(&mut self.from_server_buf)
                .expect("server output is a valid chunk stream")
            {
                let message =
                    Message::parse(raw.header.message_type_id, raw.payload).expect("valid");
                replies.push((raw.header, raw.chunk_stream_id, message));
            }
            assert!(
                self.from_server_buf.is_empty(),
                "server sent a partial chunk"
            );
            replies
        }
    }

    fn props(list: &[(&str, Value)]) -> Vec<(String, Value)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    fn connect_object(app: &str) -> Value {
        Value::Object(props(&[
            ("app", app.into()),
            ("type", "nonprivate".into()),
            ("flashVer", "FMLE/3.0 (compatible; Lavf59.27.100)".into()),
            ("tcUrl", format!("rtmp://127.0.0.1:1935/{app}").into()),
        ]))
    }

    /// Feeds `bytes` into the session in one piece.
    fn feed(
        session: &mut ServerSession,
        bytes: &[u8],
        out: &mut BytesMut,
    ) -> Result<Vec<SessionEvent>, SessionError> {
        let mut input = BytesMut::from(bytes);
        let mut events = Vec::new();
        session.handle_input(&mut input, out, &mut events)?;
        assert!(input.is_empty(), "whole chunks were fed");
        Ok(events)
    }

    /// Feeds `bytes` into the session up to where it waits for an answer; returns the
    /// events and what it left unread.
    fn feed_partly(session: &mut ServerSession, bytes: &[u8]) -> (Vec<SessionEvent>, BytesMut) {
        let mut input = BytesMut::from(bytes);
        let mut events = Vec::new();
        session
            .handle_input(&mut input, &mut BytesMut::new(), &mut events)
            .expect("valid");
        (events, input)
    }

    fn command_reply(reply: &Reply) -> &Command {
        match &reply.2 {
            Message::Command(c) => c,
            other => panic!("expected a command, got {other:?}"),
        }
    }

    fn status_code(reply: &Reply) -> (&str, &str) {
        let command = command_reply(reply);
        assert_eq!(command.name, "onStatus");
        assert_eq!(command.transaction_id, 0.0);
        let info = &command.arguments[0];
        (
            info.property("level")
                .and_then(Value::as_str)
                .expect("level"),
            info.property("code").and_then(Value::as_str).expect("code"),
        )
    }

    /// A session connected with `connect` to app "live", and its client.
    fn connected() -> (ServerSession, Client) {
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "connect", 1.0, connect_object("live"), vec![]);
        feed(&mut session, &bytes, &mut out).expect("connects");
        client.replies(&mut out);
        (session, client)
    }

    /// A connected session with stream 1 created and publishing `key`, accepted.
    fn publishing() -> (ServerSession, Client) {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(
            1,
            "publish",
            3.0,
            Value::Null,
            vec!["key".into(), "live".into()],
        ));
        let events = feed(&mut session, &bytes, &mut out).expect("publish requested");
        assert!(matches!(events[0], SessionEvent::PublishRequested { .. }));
        session.accept_publish(&mut out);
        client.replies(&mut out);
        (session, client)
    }

    /// The bytes of an ffmpeg-style publish up to `publish`, and after the server accepted.
    fn scripted_publish(client: &Client) -> (Vec<u8>, Vec<u8>) {
        let mut before = Vec::new();
        before.extend(client.command(0, "connect", 1.0, connect_object("live"), vec![]));
        before.extend(client.command(0, "releaseStream", 2.0, Value::Null, vec!["key".into()]));
        before.extend(client.command(0, "FCPublish", 3.0, Value::Null, vec!["key".into()]));
        before.extend(client.command(0, "createStream", 4.0, Value::Null, vec![]));
        before.extend(client.command(
            1,
            "publish",
            5.0,
            Value::Null,
            vec!["key?token=abc".into(), "live".into()],
        ));

        let mut after = Vec::new();
        // ffmpeg raises its chunk size before sending media.
        after.extend(client.message(2, 0, 0, &Message::SetChunkSize { chunk_size: 4096 }));
        let mut big_client = Client::new();
        big_client
            .encoder
            .set_chunk_size(ChunkSize::new(4096).expect("valid"));
        let mut metadata = BytesMut::new();
        for v in [
            Value::from("@setDataFrame"),
            "onMetaData".into(),
            Value::EcmaArray(props(&[
                ("width", 640.0.into()),
                ("videocodecid", 7.0.into()),
            ])),
        ] {
            amf0::encode(&v, &mut metadata).expect("encodable");
        }
        after.extend(big_client.raw(4, 1, 0, type_id::DATA_AMF0, &metadata));
        after.extend(big_client.raw(4, 1, 0, type_id::VIDEO, &[0x17, 0, 0, 0, 0, 1, 0x64]));
        after.extend(big_client.raw(4, 1, 0, type_id::AUDIO, &[0xaf, 0, 0x11, 0x90]));
        let frame = vec![0x27u8; 5000];
        after.extend(big_client.raw(6, 1, 33, type_id::VIDEO, &frame));
        after.extend(big_client.raw(4, 1, 21, type_id::AUDIO, &[0xaf, 1, 0x21]));
        after.extend(big_client.command(0, "FCUnpublish", 6.0, Value::Null, vec!["key".into()]));
        after.extend(big_client.command(0, "deleteStream", 7.0, Value::Null, vec![1.0.into()]));
        (before, after)
    }

    /// Runs the scripted publish with both parts fed in the given pieces; returns the
    /// replies and events of each part.
    fn run_script(
        before: &[&[u8]],
        after: &[&[u8]],
    ) -> (Vec<Reply>, Vec<SessionEvent>, Vec<Reply>, Vec<SessionEvent>) {
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        let mut events1 = Vec::new();
        for piece in before {
            input.extend_from_slice(piece);
            session
                .handle_input(&mut input, &mut out, &mut events1)
                .expect("valid publish");
        }
        assert!(input.is_empty());
        session.accept_publish(&mut out);
        let replies1 = client.replies(&mut out);
        let mut events2 = Vec::new();
        for piece in after {
            input.extend_from_slice(piece);
            session
                .handle_input(&mut input, &mut out, &mut events2)
                .expect("valid publish");
        }
        assert!(input.is_empty());
        let replies2 = client.replies(&mut out);
        (replies1, events1, replies2, events2)
    }

    #[test]
    fn scripted_ffmpeg_like_publish() {
        let client = Client::new();
        let (before, after) = scripted_publish(&client);
        let (replies, events, replies2, events2) = run_script(&[&before], &[&after]);

        // connect: Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size on
        // chunk stream 2 / message stream 0, then _result.
        let control: Vec<&Message> = replies[..3].iter().map(|r| &r.2).collect();
        assert_eq!(
            control,
            [
                &Message::WindowAcknowledgementSize {
                    acknowledgement_window_size: 2_500_000
                },
                &Message::SetPeerBandwidth {
                    acknowledgement_window_size: 2_500_000,
                    limit_type: LimitType::Dynamic
                },
                &Message::SetChunkSize { chunk_size: 60_000 },
            ]
        );
        for r in &replies[..3] {
            assert_eq!((r.1.get(), r.0.message_stream_id), (2, 0));
        }
        let result = command_reply(&replies[3]);
        assert_eq!(
            (result.name.as_str(), result.transaction_id),
            ("_result", 1.0)
        );
        assert_eq!(
            result.command_object.property("fmsVer"),
            Some(&FMS_VERSION.into())
        );
        assert_eq!(
            result.command_object.property("capabilities"),
            Some(&31.0.into())
        );
        let info = &result.arguments[0];
        assert_eq!(info.property("level"), Some(&"status".into()));
        assert_eq!(
            info.property("code"),
            Some(&"NetConnection.Connect.Success".into())
        );
        assert!(
            info.property("description")
                .and_then(Value::as_str)
                .is_some()
        );
        assert_eq!(info.property("objectEncoding"), Some(&0.0.into()));

        // releaseStream, FCPublish: _result each, and onFCPublish.
        let release = command_reply(&replies[4]);
        assert_eq!(
            (release.name.as_str(), release.transaction_id),
            ("_result", 2.0)
        );
        let fcpublish = command_reply(&replies[5]);
        assert_eq!(
            (fcpublish.name.as_str(), fcpublish.transaction_id),
            ("_result", 3.0)
        );
        let on_fc = command_reply(&replies[6]);
        assert_eq!(on_fc.name, "onFCPublish");
        assert_eq!(
            on_fc.arguments[0].property("code"),
            Some(&"NetStream.Publish.Start".into())
        );
        // createStream: stream 1.
        let create = command_reply(&replies[7]);
        assert_eq!(
            (create.name.as_str(), create.transaction_id),
            ("_result", 4.0)
        );
        assert_eq!(create.command_object, Value::Null);
        assert_eq!(create.arguments, vec![Value::Number(1.0)]);
        // publish: nothing until accepted; then Stream Begin 1 and Publish.Start on stream 1.
        assert_eq!(
            replies[8].2,
            Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 })
        );
        assert_eq!(replies[8].0.message_stream_id, 0);
        assert_eq!(
            status_code(&replies[9]),
            ("status", "NetStream.Publish.Start")
        );
        assert_eq!(replies[9].0.message_stream_id, 1);
        assert_eq!(replies.len(), 10);

        assert_eq!(
            events,
            vec![
                SessionEvent::Connected {
                    app: "live".to_owned(),
                    tc_url: Some("rtmp://127.0.0.1:1935/live".to_owned()),
                    flash_ver: Some("FMLE/3.0 (compatible; Lavf59.27.100)".to_owned()),
                    enhanced: None,
                },
                SessionEvent::PublishRequested {
                    stream_id: 1,
                    stream_key: "key".to_owned(),
                    query: Some("token=abc".to_owned()),
                    publish_type: "live".to_owned(),
                },
            ]
        );

        // After the accept: metadata, media, then the unpublish.
        let mut script_tag = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut script_tag).expect("encodable");
        amf0::encode(
            &Value::EcmaArray(props(&[
                ("width", 640.0.into()),
                ("videocodecid", 7.0.into()),
            ])),
            &mut script_tag,
        )
        .expect("encodable");
        assert_eq!(
            events2,
            vec![
                SessionEvent::Metadata {
                    timestamp: RtmpTimestamp(0),
                    properties: props(&[("width", 640.0.into()), ("videocodecid", 7.0.into())]),
                    payload: script_tag.freeze(),
                },
                SessionEvent::Media {
                    kind: MediaKind::Video,
                    timestamp: RtmpTimestamp(0),
                    payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64]),
                },
                SessionEvent::Media {
                    kind: MediaKind::Audio,
                    timestamp: RtmpTimestamp(0),
                    payload: Bytes::from_static(&[0xaf, 0, 0x11, 0x90]),
                },
                SessionEvent::Media {
                    kind: MediaKind::Video,
                    timestamp: RtmpTimestamp(33),
                    payload: Bytes::from(vec![0x27u8; 5000]),
                },
                SessionEvent::Media {
                    kind: MediaKind::Audio,
                    timestamp: RtmpTimestamp(21),
                    payload: Bytes::from_static(&[0xaf, 1, 0x21]),
                },
                SessionEvent::Unpublished,
            ]
        );
        assert_eq!(replies2.len(), 1, "{replies2:?}");
        assert_eq!(
            status_code(&replies2[0]),
            ("status", "NetStream.Unpublish.Success")
        );
        assert_eq!(replies2[0].0.message_stream_id, 1);
    }

    #[test]
    fn scripted_publish_in_every_split() {
        let client = Client::new();
        let (before, after) = scripted_publish(&client);
        let whole = run_script(&[&before], &[&after]);
        for split in 0..=before.len() {
            let run = run_script(&[&before[..split], &before[split..]], &[&after]);
            assert_eq!(run, whole, "split of the first part at {split}");
        }
        for split in 0..=after.len() {
            let run = run_script(&[&before], &[&after[..split], &after[split..]]);
            assert_eq!(run, whole, "split of the second part at {split}");
        }
        let before_bytes: Vec<&[u8]> = before.chunks(1).collect();
        let after_bytes: Vec<&[u8]> = after.chunks(1).collect();
        assert_eq!(
            run_script(&before_bytes, &after_bytes),
            whole,
            "byte by byte"
        );
    }

    #[test]
    fn media_payload_of_a_one_chunk_message_is_not_copied() {
        let (mut session, client) = publishing();
        let bytes = client.raw(4, 1, 0, type_id::AUDIO, &[0xaf, 1, 2, 3]);
        let mut input = BytesMut::from(&bytes[..]);
        let start = input.as_ptr() as usize;
        let mut out = BytesMut::new();
        let mut events = Vec::new();
        session
            .handle_input(&mut input, &mut out, &mut events)
            .expect("valid");
        let SessionEvent::Media { payload, .. } = &events[0] else {
            panic!("media event");
        };
        assert_eq!(payload.as_ptr() as usize, start + bytes.len() - 4);
    }

    #[test]
    fn ffmpeg_connect_capture() {
        // What ffmpeg 5.1 sent right after the handshake (testdata/rtmp/README.md): a 140-byte
        // connect in two chunks of the default size.
        let capture: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_connect.bin");
        let expected = vec![SessionEvent::Connected {
            app: "live".to_owned(),
            tc_url: Some("rtmp://127.0.0.1:19350/live".to_owned()),
            flash_ver: Some("FMLE/3.0 (compatible; Lavf59.27.100)".to_owned()),
            enhanced: None,
        }];
        for split in 0..=capture.len() {
            let mut session = ServerSession::new(SessionConfig::default());
            let mut out = BytesMut::new();
            let mut input = BytesMut::new();
            let mut events = Vec::new();
            for piece in [&capture[..split], &capture[split..]] {
                input.extend_from_slice(piece);
                session
                    .handle_input(&mut input, &mut out, &mut events)
                    .expect("ffmpeg's connect is valid");
            }
            assert_eq!(events, expected, "split at {split}");
            let replies = Client::new().replies(&mut out);
            assert_eq!(replies.len(), 4);
        }
    }

    /// The payload of the connect `_result` in what the server sent: the last message.
    fn connect_result_payload(out: &mut BytesMut) -> Bytes {
        let mut decoder = ChunkDecoder::new();
        let mut last = None;
        // The decoder applies the server's Set Chunk Size itself.
        while let Some(raw) = decoder.decode(out).expect("valid chunk stream") {
            last = Some(raw);
        }
        let last = last.expect("a reply");
        assert_eq!(last.header.message_type_id, type_id::COMMAND_AMF0);
        last.payload
    }

    /// An AMF0 property name (16-bit length, text).
    fn amf_name(name: &str) -> Vec<u8> {
        [&(name.len() as u16).to_be_bytes()[..], name.as_bytes()].concat()
    }

    /// An AMF0 string value.
    fn amf_string(text: &str) -> Vec<u8> {
        [&[0x02][..], &amf_name(text)].concat()
    }

    /// An AMF0 number value.
    fn amf_number(n: f64) -> Vec<u8> {
        [&[0x00][..], &n.to_be_bytes()].concat()
    }

    #[test]
    fn legacy_connect_gets_the_legacy_reply_byte_for_byte() {
        let capture: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_connect.bin");
        let mut session = ServerSession::new(SessionConfig::default());
        let mut out = BytesMut::new();
        feed(&mut session, capture, &mut out).expect("valid");
        let expected = [
            amf_string("_result"),
            amf_number(1.0),
            vec![0x03],
            amf_name("fmsVer"),
            amf_string("FMS/3,0,1,123"),
            amf_name("capabilities"),
            amf_number(31.0),
            vec![0, 0, 0x09, 0x03],
            amf_name("level"),
            amf_string("status"),
            amf_name("code"),
            amf_string("NetConnection.Connect.Success"),
            amf_name("description"),
            amf_string("Connection succeeded."),
            amf_name("objectEncoding"),
            amf_number(0.0),
            vec![0, 0, 0x09],
        ]
        .concat();
        assert_eq!(connect_result_payload(&mut out)[..], expected[..]);
    }

    #[test]
    fn enhanced_connect_capture_is_answered() {
        // ffmpeg 9.0 with -rtmp_enhanced_codecs hvc1,av01,vp09,Opus (testdata/rtmp/README.md).
        let capture: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-9.0_enhanced_connect.bin");
        let list = |codes: &[&str]| -> Vec<FourCcCap> {
            codes
                .iter()
                .map(|c| FourCcCap {
                    fourcc: FourCc::parse(c).expect("a FourCC"),
                    announced: Announced::List,
                })
                .collect()
        };
        for split in [0, 1, 12, 100, 140, capture.len()] {
            let mut session = ServerSession::new(SessionConfig::default());
            let mut out = BytesMut::new();
            let mut input = BytesMut::new();
            let mut events = Vec::new();
            for piece in [&capture[..split], &capture[split..]] {
                input.extend_from_slice(piece);
                session
                    .handle_input(&mut input, &mut out, &mut events)
                    .expect("ffmpeg's connect is valid");
            }
            assert_eq!(
                events,
                [SessionEvent::Connected {
                    app: "live".to_owned(),
                    tc_url: Some("rtmp://127.0.0.1:19399/live".to_owned()),
                    flash_ver: Some("FMLE/3.0 (compatible; Lavf63.1.102)".to_owned()),
                    enhanced: Some(EnhancedCaps {
                        fourccs: list(&["hvc1", "av01", "vp09", "Opus"]),
                        caps_ex: 0,
                    }),
                }],
                "split at {split}"
            );
            let replies = Client::new().replies(&mut out);
            assert_eq!(replies.len(), 4);
            let result = command_reply(&replies[3]);
            let mut properties = vec![
                ("fmsVer".to_owned(), FMS_VERSION.into()),
                ("capabilities".to_owned(), FMS_CAPABILITIES.into()),
            ];
            properties.extend(EnhancedCaps::server_answer());
            assert_eq!(result.command_object, Value::Object(properties));
            assert_eq!(
                result.arguments[0].property("code"),
                Some(&"NetConnection.Connect.Success".into())
            );
        }
    }

    #[test]
    fn enhanced_connect_with_maps_and_caps_ex() {
        // As the spec's examples announce it: info maps (one as an ECMA array), capsEx.
        let mut object = connect_object("live");
        if let Value::Object(fields) = &mut object {
            fields.push((
                "videoFourCcInfoMap".to_owned(),
                Value::Object(props(&[("*", 4.0.into()), ("hvc1", 3.0.into())])),
            ));
            fields.push((
                "audioFourCcInfoMap".to_owned(),
                Value::EcmaArray(props(&[("Opus", 1.0.into())])),
            ));
            fields.push(("capsEx".to_owned(), 7.0.into()));
        }
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "connect", 1.0, object, vec![]);
        let events = feed(&mut session, &bytes, &mut out).expect("valid");
        let SessionEvent::Connected {
            enhanced: Some(caps),
            ..
        } = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(
            caps.fourccs,
            [
                FourCcCap {
                    fourcc: FourCc::Any,
                    announced: Announced::Video(4)
                },
                FourCcCap {
                    fourcc: FourCc::Code(*b"hvc1"),
                    announced: Announced::Video(3)
                },
                FourCcCap {
                    fourcc: FourCc::Code(*b"Opus"),
                    announced: Announced::Audio(1)
                },
            ]
        );
        assert_eq!(caps.caps_ex, 7);
        let replies = client.replies(&mut out);
        let result = command_reply(&replies[3]);
        let answer = &result.command_object;
        assert_eq!(answer.property("fmsVer"), Some(&FMS_VERSION.into()));
        assert_eq!(
            answer.property("capsEx"),
            Some(
                &f64::from(caps_ex::MULTITRACK | caps_ex::MOD_EX | caps_ex::TIMESTAMP_NANO_OFFSET)
                    .into()
            )
        );
        assert_eq!(
            answer
                .property("videoFourCcInfoMap")
                .and_then(|m| m.property("hvc1")),
            Some(&f64::from(fourcc_info::CAN_FORWARD).into())
        );
        assert_eq!(
            answer
                .property("audioFourCcInfoMap")
                .and_then(|m| m.property("mp4a")),
            Some(&f64::from(fourcc_info::CAN_FORWARD).into())
        );
    }

    #[test]
    fn malformed_enhanced_fields_are_ignored() {
        let mut object = connect_object("live");
        if let Value::Object(fields) = &mut object {
            fields.extend(props(&[
                ("fourCcList", "hvc1".into()),
                (
                    "videoFourCcInfoMap",
                    Value::StrictArray(vec!["hvc1".into()]),
                ),
                ("audioFourCcInfoMap", Value::Null),
                ("capsEx", Value::Object(vec![])),
            ]));
        }
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "connect", 1.0, object, vec![]);
        let events = feed(&mut session, &bytes, &mut out).expect("connects");
        assert!(
            matches!(
                &events[..],
                [SessionEvent::Connected { enhanced: None, .. }]
            ),
            "{events:?}"
        );
        let replies = client.replies(&mut out);
        assert_eq!(
            command_reply(&replies[3]).command_object,
            Value::Object(props(&[
                ("fmsVer", FMS_VERSION.into()),
                ("capabilities", FMS_CAPABILITIES.into()),
            ]))
        );
        // A reference where the list should be, and a list of thousands: still a connect (the
        // message limit before a publish bounds the rest).
        for list in [
            Value::Reference(0),
            Value::StrictArray(vec![Value::from("abcd"); 5_000]),
        ] {
            let mut object = connect_object("live");
            if let Value::Object(fields) = &mut object {
                fields.push(("fourCcList".to_owned(), list));
            }
            let mut session = ServerSession::new(SessionConfig::default());
            let bytes = Client::new().command(0, "connect", 1.0, object, vec![]);
            let events = feed(&mut session, &bytes, &mut BytesMut::new()).expect("connects");
            match &events[..] {
                [SessionEvent::Connected { enhanced, .. }] => {
                    assert!(
                        enhanced
                            .as_ref()
                            .is_none_or(|e| e.fourccs.len() == MAX_ENTRIES)
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    /// Replays ffmpeg's publish capture in `pieces` of the given size, also cutting where
    /// the publish command ends (ffmpeg sends nothing more until the answer). Accepts the
    /// publish as soon as it is requested. Returns the events and the server's replies.
    fn replay_ffmpeg_publish(piece: usize) -> (Vec<SessionEvent>, Vec<Reply>) {
        const CAPTURE: &[u8] = include_bytes!("../../testdata/rtmp/ffmpeg-5.1_publish.bin");
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut events = Vec::new();
        let mut replies = Vec::new();
        let mut fed = 0;
        let mut accepted = false;
        while fed < CAPTURE.len() {
            let mut end = (fed + piece).min(CAPTURE.len());
            if !accepted {
                end = end.min(FFMPEG_PUBLISH_END);
            }
            input.extend_from_slice(&CAPTURE[fed..end]);
            fed = end;
            session
                .handle_input(&mut input, &mut out, &mut events)
                .expect("ffmpeg's publish is valid");
            if !accepted
                && events
                    .iter()
                    .any(|e| matches!(e, SessionEvent::PublishRequested { .. }))
            {
                assert_eq!(fed, FFMPEG_PUBLISH_END, "publish ends where expected");
                session.accept_publish(&mut out);
                accepted = true;
            }
            replies.extend(client.replies(&mut out));
        }
        assert!(input.is_empty());
        (events, replies)
    }

    /// Where ffmpeg's publish command ends in the capture.
    const FFMPEG_PUBLISH_END: usize = 365;

    #[test]
    fn ffmpeg_publish_capture() {
        let (events, replies) = replay_ffmpeg_publish(1);
        let names: Vec<String> = events
            .iter()
            .map(|e| match e {
                SessionEvent::Media { kind, .. } => format!("{kind:?}"),
                other => format!("{other:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        // Sequence headers first, then ffmpeg's interleaving of 10 audio and 7 video messages.
        let expected = [
            "Connected",
            "PublishRequested",
            "Metadata",
            "Video",
            "Audio",
            "Audio",
            "Video",
            "Audio",
            "Audio",
            "Video",
            "Audio",
            "Audio",
            "Video",
            "Audio",
            "Video",
            "Audio",
            "Audio",
            "Video",
            "Audio",
            "Video",
            "Unpublished",
        ];
        assert_eq!(names, expected);
        assert_eq!(
            events[1],
            SessionEvent::PublishRequested {
                stream_id: 1,
                stream_key: "testkey".to_owned(),
                query: Some("token=abc".to_owned()),
                publish_type: "live".to_owned(),
            }
        );
        let SessionEvent::Metadata {
            properties,
            payload,
            ..
        } = &events[2]
        else {
            panic!("metadata");
        };
        assert_eq!(properties[1], ("width".to_owned(), 64.0.into()));
        assert_eq!(
            &payload[..13],
            b"\x02\x00\x0aonMetaData",
            "script tag body starts at onMetaData"
        );
        // The AVC sequence header comes first, at timestamp 0.
        let SessionEvent::Media {
            timestamp, payload, ..
        } = &events[3]
        else {
            panic!("media");
        };
        assert_eq!((timestamp.0, &payload[..2]), (0, &[0x17u8, 0x00][..]));
        // Replies: connect's four, releaseStream, FCPublish + onFCPublish, createStream,
        // Stream Begin + Publish.Start, and Unpublish.Success.
        let commands: Vec<String> = replies
            .iter()
            .map(|r| match &r.2 {
                Message::Command(c) if c.name == "onStatus" => status_code(r).1.to_owned(),
                Message::Command(c) => format!("{} {}", c.name, c.transaction_id),
                other => format!("{other:?}")
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        assert_eq!(
            commands,
            [
                "WindowAcknowledgementSize",
                "SetPeerBandwidth",
                "SetChunkSize",
                "_result 1",
                "_result 2",
                "_result 3",
                "onFCPublish 0",
                "_result 4",
                "UserControl",
                "NetStream.Publish.Start",
                "NetStream.Unpublish.Success",
            ]
        );
    }

    #[test]
    fn ffmpeg_publish_capture_in_pieces() {
        let reference = replay_ffmpeg_publish(1);
        for piece in [2, 3, 7, 100, 1000, 4096, 1 << 20] {
            assert_eq!(replay_ffmpeg_publish(piece), reference, "pieces of {piece}");
        }
    }

    #[test]
    fn wrong_app_is_rejected_with_an_error_reply() {
        let mut session = ServerSession::new(SessionConfig::default());
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "connect", 1.0, connect_object("other"), vec![]);
        let err = feed(&mut session, &bytes, &mut out).expect_err("rejected");
        assert!(
            matches!(&err, SessionError::AppRejected { app, expected } if app == "other" && expected == "live"),
            "{err:?}"
        );
        let replies = client.replies(&mut out);
        assert_eq!(replies.len(), 1, "only the _error goes out");
        let error = command_reply(&replies[0]);
        assert_eq!((error.name.as_str(), error.transaction_id), ("_error", 1.0));
        let info = &error.arguments[0];
        assert_eq!(info.property("level"), Some(&"error".into()));
        assert_eq!(
            info.property("code"),
            Some(&"NetConnection.Connect.Rejected".into())
        );
    }

    #[test]
    fn app_name_is_compared_without_slashes_and_query() {
        for app in ["live", "live/", "/live", "live?token=1", "/live/?x"] {
            let mut session = ServerSession::new(SessionConfig::default());
            let bytes = Client::new().command(0, "connect", 1.0, connect_object(app), vec![]);
            let events = feed(&mut session, &bytes, &mut BytesMut::new()).expect(app);
            assert!(
                matches!(&events[0], SessionEvent::Connected { app: a, .. } if a == app),
                "{app}"
            );
        }
        for app in ["Live", "live2", "", "live/key", "?live"] {
            let mut session = ServerSession::new(SessionConfig::default());
            let bytes = Client::new().command(0, "connect", 1.0, connect_object(app), vec![]);
            let result = feed(&mut session, &bytes, &mut BytesMut::new());
            assert!(
                matches!(result, Err(SessionError::AppRejected { .. })),
                "{app}"
            );
        }
    }

    #[test]
    fn connect_needs_an_app() {
        let mut session = ServerSession::new(SessionConfig::default());
        let bytes = Client::new().command(0, "connect", 1.0, Value::Null, vec![]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("no app");
        assert!(
            matches!(err, SessionError::MalformedCommand { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn commands_before_connect_are_errors() {
        let client = Client::new();
        for (stream, name, args) in [
            (0, "createStream", vec![]),
            (1, "publish", vec![Value::from("key")]),
            (0, "releaseStream", vec![Value::from("key")]),
            (0, "FCPublish", vec![Value::from("key")]),
            (1, "play", vec![Value::from("key")]),
            (0, "deleteStream", vec![Value::from(1.0)]),
        ] {
            let mut session = ServerSession::new(SessionConfig::default());
            let bytes = client.command(stream, name, 2.0, Value::Null, args);
            let mut out = BytesMut::new();
            let err = feed(&mut session, &bytes, &mut out).expect_err(name);
            assert!(
                matches!(&err, SessionError::NotConnected { command } if command == name),
                "{err:?}"
            );
            assert!(err.to_string().contains("before connect"));
            assert!(out.is_empty());
        }
        // Harmless commands are ignored even then.
        let mut session = ServerSession::new(SessionConfig::default());
        let bytes = client.command(0, "_checkbw", 2.0, Value::Null, vec![]);
        assert_eq!(
            feed(&mut session, &bytes, &mut BytesMut::new()).expect("ignored"),
            vec![]
        );
    }

    #[test]
    fn second_connect_is_an_error() {
        let (mut session, client) = connected();
        let bytes = client.command(0, "connect", 2.0, connect_object("live"), vec![]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("second connect");
        assert!(matches!(err, SessionError::AlreadyConnected));
    }

    #[test]
    fn publish_needs_a_created_stream_and_a_name() {
        let (mut session, client) = connected();
        let mut out = BytesMut::new();
        for stream in [0, 1, 7] {
            let bytes = client.command(stream, "publish", 2.0, Value::Null, vec!["key".into()]);
            let err = feed(&mut session, &bytes, &mut out).expect_err("no such stream");
            assert!(
                matches!(err, SessionError::UnknownStream { message_stream_id, .. } if message_stream_id == stream),
                "{err:?}"
            );
        }
        feed(
            &mut session,
            &client.command(0, "createStream", 3.0, Value::Null, vec![]),
            &mut out,
        )
        .expect("created");
        let bytes = client.command(1, "publish", 4.0, Value::Null, vec![Value::Null]);
        let err = feed(&mut session, &bytes, &mut out).expect_err("no name");
        assert!(
            matches!(err, SessionError::MalformedCommand { .. }),
            "{err:?}"
        );
        // Without a publishing type, "live" is assumed.
        let bytes = client.command(1, "publish", 5.0, Value::Null, vec!["k".into()]);
        let events = feed(&mut session, &bytes, &mut out).expect("publish");
        assert_eq!(
            events,
            vec![SessionEvent::PublishRequested {
                stream_id: 1,
                stream_key: "k".to_owned(),
                query: None,
                publish_type: "live".to_owned()
            }]
        );
    }

    #[test]
    fn second_publish_is_an_error() {
        let (mut session, client) = publishing();
        let mut out = BytesMut::new();
        feed(
            &mut session,
            &client.command(0, "createStream", 5.0, Value::Null, vec![]),
            &mut out,
        )
        .expect("created");
        let bytes = client.command(2, "publish", 6.0, Value::Null, vec!["other".into()]);
        let err = feed(&mut session, &bytes, &mut out).expect_err("second publish");
        assert!(
            matches!(
                &err,
                SessionError::SecondPublish {
                    message_stream_id: 2,
                    active_stream_id: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        // Also right behind the first, read once the first is accepted.
        let (mut session, client) = connected();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["a".into()]));
        bytes.extend(client.command(1, "publish", 4.0, Value::Null, vec!["b".into()]));
        let (_, mut input) = feed_partly(&mut session, &bytes);
        session.accept_publish(&mut out);
        let err = session
            .handle_input(&mut input, &mut out, &mut Vec::new())
            .expect_err("second publish");
        assert!(matches!(err, SessionError::SecondPublish { .. }), "{err:?}");
    }

    #[test]
    fn media_before_accepted_publish_is_an_error() {
        // Before any publish.
        let (mut session, client) = connected();
        let bytes = client.raw(4, 1, 40, type_id::VIDEO, &[0x17, 0]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("no publish");
        assert!(
            matches!(
                err,
                SessionError::MediaWithoutPublish {
                    kind: "video",
                    timestamp_ms: 40,
                    message_stream_id: 1
                }
            ),
            "{err:?}"
        );
        // Behind a publish that is then refused.
        let (mut session, client) = connected();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["key".into()]));
        bytes.extend(client.raw(4, 1, 0, type_id::AUDIO, &[0xaf, 0]));
        let (_, mut input) = feed_partly(&mut session, &bytes);
        let mut out = BytesMut::new();
        session.reject_publish("NetStream.Publish.BadName", "no", &mut out);
        let err = session
            .handle_input(&mut input, &mut out, &mut Vec::new())
            .expect_err("not accepted");
        assert!(
            matches!(err, SessionError::MediaWithoutPublish { kind: "audio", .. }),
            "{err:?}"
        );
        // On another stream than the accepted one.
        let (mut session, client) = publishing();
        let bytes = client.raw(4, 2, 0, type_id::AUDIO, &[0xaf, 0]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("other stream");
        assert!(
            matches!(
                err,
                SessionError::MediaWithoutPublish {
                    message_stream_id: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn rejected_publish() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["bad".into()]));
        feed(&mut session, &bytes, &mut out).expect("requested");
        client.replies(&mut out);
        session.reject_publish(
            "NetStream.Publish.Unauthorized",
            "Unknown stream key.",
            &mut out,
        );
        let replies = client.replies(&mut out);
        assert_eq!(replies.len(), 1);
        assert_eq!(
            status_code(&replies[0]),
            ("error", "NetStream.Publish.Unauthorized")
        );
        assert_eq!(
            command_reply(&replies[0]).arguments[0].property("description"),
            Some(&"Unknown stream key.".into())
        );
        assert_eq!(replies[0].0.message_stream_id, 1);
        // Media is refused; a new publish may be requested.
        let err = feed(
            &mut session,
            &client.raw(4, 1, 0, type_id::AUDIO, &[0xaf]),
            &mut out,
        )
        .expect_err("rejected");
        assert!(matches!(err, SessionError::MediaWithoutPublish { .. }));
        let (mut session, client) = connected();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["bad".into()]));
        feed(&mut session, &bytes, &mut out).expect("requested");
        session.reject_publish("NetStream.Publish.BadName", "Bad.", &mut out);
        let bytes = client.command(1, "publish", 4.0, Value::Null, vec!["good".into()]);
        let events = feed(&mut session, &bytes, &mut out).expect("requested again");
        assert!(
            matches!(&events[0], SessionEvent::PublishRequested { stream_key, .. } if stream_key == "good")
        );
    }

    #[test]
    fn answers_without_a_pending_publish_send_nothing() {
        let (mut session, _) = connected();
        let mut out = BytesMut::new();
        session.accept_publish(&mut out);
        session.reject_publish("NetStream.Publish.BadName", "x", &mut out);
        session.stream_error("NetStream.Publish.Failed", "x", &mut out);
        assert!(out.is_empty());
        // accept_publish twice: the second does nothing.
        let (mut session, _) = publishing();
        session.accept_publish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn stream_error_ends_the_publish() {
        let (mut session, mut client) = publishing();
        let mut out = BytesMut::new();
        session.stream_error(
            "NetStream.Publish.Failed",
            "Sorenson H.263 is not supported.",
            &mut out,
        );
        let replies = client.replies(&mut out);
        assert_eq!(replies.len(), 1);
        assert_eq!(
            status_code(&replies[0]),
            ("error", "NetStream.Publish.Failed")
        );
        assert_eq!(replies[0].0.message_stream_id, 1);
        let err = feed(
            &mut session,
            &client.raw(4, 1, 0, type_id::VIDEO, &[0x22]),
            &mut out,
        )
        .expect_err("publish ended");
        assert!(matches!(err, SessionError::MediaWithoutPublish { .. }));
    }

    #[test]
    fn unpublish_by_delete_stream_and_close_stream() {
        for (stream, name, args) in [
            (0, "deleteStream", vec![Value::from(1.0)]),
            (0, "deleteStream", vec![Value::from("key")]),
            (1, "closeStream", vec![]),
            (0, "FCUnpublish", vec![Value::from("key?token=1")]),
            (0, "FCUnpublish", vec![]),
        ] {
            let (mut session, mut client) = publishing();
            let mut out = BytesMut::new();
            let bytes = client.command(stream, name, 0.0, Value::Null, args);
            let events = feed(&mut session, &bytes, &mut out).expect("valid");
            assert_eq!(events, vec![SessionEvent::Unpublished], "{name}");
            let replies = client.replies(&mut out);
            assert_eq!(
                status_code(&replies[0]),
                ("status", "NetStream.Unpublish.Success")
            );
            // A second unpublish does nothing.
            let events = feed(&mut session, &bytes, &mut out).expect("valid");
            assert!(events.is_empty());
            assert!(out.is_empty());
        }
        // Commands about other streams or names leave the publish alone.
        for (stream, name, args) in [
            (0, "deleteStream", vec![Value::from(2.0)]),
            (0, "deleteStream", vec![Value::from("other")]),
            (0, "deleteStream", vec![]),
            (2, "closeStream", vec![]),
            (0, "FCUnpublish", vec![Value::from("other")]),
        ] {
            let (mut session, client) = publishing();
            let mut out = BytesMut::new();
            let bytes = client.command(stream, name, 0.0, Value::Null, args);
            assert!(
                feed(&mut session, &bytes, &mut out)
                    .expect("valid")
                    .is_empty(),
                "{name}"
            );
            assert!(out.is_empty());
            let audio = client.raw(4, 1, 0, type_id::AUDIO, &[0xaf]);
            assert_eq!(
                feed(&mut session, &audio, &mut out)
                    .expect("still publishing")
                    .len(),
                1
            );
        }
    }

    #[test]
    fn large_messages_wait_for_an_accepted_publish() {
        let body = vec![0u8; MAX_MESSAGE_BEFORE_PUBLISH as usize + 1];
        let (mut session, client) = connected();
        let bytes = client.raw(4, 0, 0, type_id::DATA_AMF0, &body);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("too long");
        assert!(
            matches!(
                err,
                SessionError::Chunk(crate::rtmp::ChunkError::MessageTooLong { .. })
            ),
            "{err:?}"
        );
        let (mut session, client) = publishing();
        let mut video = vec![0x17, 1, 0, 0, 0];
        video.extend_from_slice(&body);
        let bytes = client.raw(6, 1, 0, type_id::VIDEO, &video);
        let events = feed(&mut session, &bytes, &mut BytesMut::new()).expect("publishing");
        assert!(
            matches!(events[..], [SessionEvent::Media { .. }]),
            "{events:?}"
        );
    }

    #[test]
    fn what_follows_a_publish_waits_for_its_answer() {
        // publish k1, deleteStream, publish k2 in one read: each is taken in turn, after
        // the answer to the one before, so every answer refers to the request it answers.
        let (mut session, client) = connected();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["k1".into()]));
        bytes.extend(client.command(0, "deleteStream", 0.0, Value::Null, vec![1.0.into()]));
        bytes.extend(client.command(0, "createStream", 4.0, Value::Null, vec![]));
        bytes.extend(client.command(2, "publish", 5.0, Value::Null, vec!["k2".into()]));
        let (events, input) = feed_partly(&mut session, &bytes);
        assert!(
            matches!(&events[..], [SessionEvent::PublishRequested { stream_key, .. }] if stream_key == "k1"),
            "{events:?}"
        );
        let mut out = BytesMut::new();
        session.accept_publish(&mut out);
        let events = feed(&mut session, &input, &mut out).expect("valid");
        assert!(
            matches!(
                &events[..],
                [SessionEvent::Unpublished, SessionEvent::PublishRequested { stream_key, .. }]
                    if stream_key == "k2"
            ),
            "{events:?}"
        );
    }

    fn play_request(client: &Client, name: &str) -> Vec<u8> {
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(
            1,
            "play",
            3.0,
            Value::Null,
            vec![name.into(), (-2000.0).into()],
        ));
        bytes
    }

    #[test]
    fn play_is_answered_as_players_expect_and_carries_tags() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        let events = feed(
            &mut session,
            &play_request(&client, "key?token=t"),
            &mut out,
        )
        .expect("valid");
        assert_eq!(
            events,
            vec![SessionEvent::PlayRequested {
                stream_id: 1,
                stream_key: "key".to_owned(),
                query: Some("token=t".to_owned()),
            }]
        );
        client.replies(&mut out);
        session.accept_play("Playing key.", &mut out);
        let replies = client.replies(&mut out);
        assert!(matches!(
            replies[0].2,
            Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 })
        ));
        assert_eq!(status_code(&replies[1]), ("status", "NetStream.Play.Reset"));
        assert_eq!(status_code(&replies[2]), ("status", "NetStream.Play.Start"));
        let Message::Data(access) = &replies[3].2 else {
            panic!("{:?}", replies[3])
        };
        assert_eq!(
            amf0::Decoder::decode_all(access).unwrap(),
            vec![
                Value::from("|RtmpSampleAccess"),
                Value::Boolean(true),
                Value::Boolean(true)
            ]
        );
        assert_eq!(replies[3].0.message_stream_id, 1);
        assert!(session.is_playing());
        let tag =
            crate::flv::mux::testing::tag(crate::flv::tag::TagType::Video, true, false, 70_000);
        let mut egress = crate::rtmp::egress::Egress::new();
        session.send_tag(&tag, &mut egress);
        out.extend_from_slice(&egress.to_bytes());
        let replies = client.replies(&mut out);
        let Message::Video(body) = &replies[0].2 else {
            panic!("{:?}", replies[0])
        };
        assert_eq!(body.len(), 70_000, "a message over several chunks");
        assert_eq!(replies[0].0.message_stream_id, 1);
        // The player closes its stream.
        let close = client.command(1, "closeStream", 0.0, Value::Null, vec![]);
        let events = feed(&mut session, &close, &mut out).expect("valid");
        assert_eq!(events, vec![SessionEvent::PlayStopped]);
        assert!(!session.is_playing());
    }

    #[test]
    fn a_refused_play_says_why_and_the_end_of_a_play_says_so() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        feed(&mut session, &play_request(&client, "nope"), &mut out).expect("valid");
        client.replies(&mut out);
        session.reject_play("NetStream.Play.StreamNotFound", "no live stream", &mut out);
        let replies = client.replies(&mut out);
        assert_eq!(
            status_code(&replies[0]),
            ("error", "NetStream.Play.StreamNotFound")
        );
        // Another try on the same connection, then the publisher stops.
        let again = client.command(1, "play", 4.0, Value::Null, vec!["key".into()]);
        feed(&mut session, &again, &mut out).expect("valid");
        session.accept_play("", &mut out);
        client.replies(&mut out);
        session.end_play(&mut out);
        let replies = client.replies(&mut out);
        assert_eq!(
            status_code(&replies[0]),
            ("status", "NetStream.Play.UnpublishNotify")
        );
        assert!(matches!(
            replies[1].2,
            Message::UserControl(UserControlEvent::StreamEof { stream_id: 1 })
        ));
        assert_eq!(status_code(&replies[2]), ("status", "NetStream.Play.Stop"));
    }

    #[test]
    fn play_while_publishing_or_on_stream_zero_is_an_error() {
        let (mut session, client) = connected();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "play", 3.0, Value::Null, vec!["key".into()]);
        assert!(feed(&mut session, &bytes, &mut out).is_err());
        let (mut session, client) = publishing();
        let mut bytes = client.command(0, "createStream", 5.0, Value::Null, vec![]);
        bytes.extend(client.command(2, "play", 6.0, Value::Null, vec!["key".into()]));
        assert!(feed(&mut session, &bytes, &mut out).is_err());
    }

    #[test]
    fn stream_ids_count_up_to_the_limit() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        for n in 1..=MAX_STREAMS {
            let bytes = client.command(0, "createStream", f64::from(n), Value::Null, vec![]);
            feed(&mut session, &bytes, &mut out).expect("valid");
            let replies = client.replies(&mut out);
            assert_eq!(
                command_reply(&replies[0]).arguments,
                vec![Value::Number(f64::from(n))]
            );
        }
        let bytes = client.command(0, "createStream", 99.0, Value::Null, vec![]);
        let err = feed(&mut session, &bytes, &mut out).expect_err("too many");
        assert!(matches!(
            err,
            SessionError::TooManyStreams {
                count: 65,
                limit: MAX_STREAMS
            }
        ));
    }

    #[test]
    fn transaction_id_zero_gets_no_result() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        let mut bytes = client.command(0, "releaseStream", 0.0, Value::Null, vec!["key".into()]);
        bytes.extend(client.command(0, "FCPublish", 0.0, Value::Null, vec!["key".into()]));
        feed(&mut session, &bytes, &mut out).expect("valid");
        let replies = client.replies(&mut out);
        assert_eq!(replies.len(), 1);
        assert_eq!(command_reply(&replies[0]).name, "onFCPublish");
    }

    #[test]
    fn acknowledgements_follow_the_peer_window() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        let window = client.message(
            2,
            0,
            0,
            &Message::WindowAcknowledgementSize {
                acknowledgement_window_size: 1000,
            },
        );
        // Everything so far (handshake, connect, this message) was never acknowledged: the
        // window is crossed at once.
        feed(&mut session, &window, &mut out).expect("valid");
        let first = client.replies(&mut out);
        assert_eq!(
            first.iter().map(|r| &r.2).collect::<Vec<_>>(),
            [&Message::Acknowledgement {
                sequence_number: session.received
            }]
        );
        let received_before = session.received;
        // Then one acknowledgement per 1000 bytes: 600 is not enough, 1200 is.
        let data = client.raw(4, 1, 0, type_id::DATA_AMF0, &[0x05; 584]);
        assert_eq!(data.len(), 600);
        feed(&mut session, &data, &mut out).expect("valid");
        assert!(client.replies(&mut out).is_empty());
        feed(&mut session, &data, &mut out).expect("valid");
        let replies = client.replies(&mut out);
        assert_eq!(
            replies.iter().map(|r| &r.2).collect::<Vec<_>>(),
            [&Message::Acknowledgement {
                sequence_number: received_before + 1200
            }]
        );
        assert_eq!(replies[0].1, ChunkStreamId::PROTOCOL_CONTROL);
        // Without a window from the peer there are no acknowledgements at all.
        let (mut session, mut client) = connected();
        for _ in 0..10 {
            feed(&mut session, &data, &mut out).expect("valid");
        }
        assert!(client.replies(&mut out).is_empty());
    }

    #[test]
    fn acknowledgement_sequence_number_counts_the_handshake_and_wraps() {
        let mut session = ServerSession::new(SessionConfig::default());
        let mut out = BytesMut::new();
        let client = Client::new();
        session.received = u32::MAX - 10;
        let window = client.message(
            2,
            0,
            0,
            &Message::WindowAcknowledgementSize {
                acknowledgement_window_size: 1,
            },
        );
        feed(&mut session, &window, &mut out).expect("valid");
        let replies = Client::new().replies(&mut out);
        assert_eq!(
            replies[0].2,
            Message::Acknowledgement {
                sequence_number: (u32::MAX - 10).wrapping_add(window.len() as u32)
            }
        );
        assert_eq!(ServerSession::new(SessionConfig::default()).received, 3073);
    }

    #[test]
    fn pings() {
        let (mut session, mut client) = connected();
        let mut out = BytesMut::new();
        session.ping_request(10_000, &mut out);
        let replies = client.replies(&mut out);
        assert_eq!(
            replies[0].2,
            Message::UserControl(UserControlEvent::PingRequest { timestamp: 10_000 })
        );
        assert_eq!(
            (replies[0].1, replies[0].0.message_stream_id),
            (ChunkStreamId::PROTOCOL_CONTROL, 0)
        );
        // The client's answer is accepted quietly; its own ping is answered.
        let mut bytes = client.message(
            2,
            0,
            0,
            &Message::UserControl(UserControlEvent::PingResponse { timestamp: 10_000 }),
        );
        bytes.extend(client.message(
            2,
            0,
            0,
            &Message::UserControl(UserControlEvent::PingRequest { timestamp: 77 }),
        ));
        assert!(
            feed(&mut session, &bytes, &mut out)
                .expect("valid")
                .is_empty()
        );
        let replies = client.replies(&mut out);
        assert_eq!(
            replies.iter().map(|r| &r.2).collect::<Vec<_>>(),
            [&Message::UserControl(UserControlEvent::PingResponse {
                timestamp: 77
            })]
        );
    }

    #[test]
    fn ignored_messages_and_commands() {
        let (mut session, mut client) = publishing();
        let mut out = BytesMut::new();
        let mut bytes = Vec::new();
        for t in [
            type_id::AGGREGATE,
            type_id::SHARED_OBJECT_AMF0,
            type_id::SHARED_OBJECT_AMF3,
            7,
            30,
            255,
        ] {
            bytes.extend(client.raw(4, 1, 0, t, &[1, 2, 3]));
        }
        for name in [
            "getStreamLength",
            "checkBandwidth",
            "_checkbw",
            "_result",
            "onBWDone",
            "play2",
        ] {
            bytes.extend(client.command(0, name, 9.0, Value::Null, vec![]));
        }
        bytes.extend(client.message(
            2,
            0,
            0,
            &Message::UserControl(UserControlEvent::SetBufferLength {
                stream_id: 1,
                buffer_length: 3000,
            }),
        ));
        bytes.extend(client.message(2, 0, 0, &Message::Acknowledgement { sequence_number: 5 }));
        bytes.extend(client.message(
            2,
            0,
            0,
            &Message::SetPeerBandwidth {
                acknowledgement_window_size: 5,
                limit_type: LimitType::Hard,
            },
        ));
        // Data messages that are not metadata, and metadata on another stream.
        let mut other_data = BytesMut::new();
        amf0::encode(&"onTextData".into(), &mut other_data).expect("encodable");
        amf0::encode(&Value::Object(vec![]), &mut other_data).expect("encodable");
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &other_data));
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &[0x05]));
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &[0x02, 0xff]));
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &[]));
        let mut set_other = BytesMut::new();
        amf0::encode(&"@setDataFrame".into(), &mut set_other).expect("encodable");
        amf0::encode(&"onCuePoint".into(), &mut set_other).expect("encodable");
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &set_other));
        let mut metadata = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut metadata).expect("encodable");
        amf0::encode(&Value::EcmaArray(vec![]), &mut metadata).expect("encodable");
        bytes.extend(client.raw(4, 5, 0, type_id::DATA_AMF0, &metadata));
        // onMetaData whose value has no properties.
        let mut odd = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut odd).expect("encodable");
        amf0::encode(&Value::Null, &mut odd).expect("encodable");
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &odd));
        let events = feed(&mut session, &bytes, &mut out).expect("all ignored");
        assert_eq!(events, vec![]);
        assert!(client.replies(&mut out).is_empty());
    }

    #[test]
    fn metadata_forms() {
        let array = Value::EcmaArray(props(&[("framerate", 30.0.into())]));
        let object = Value::Object(props(&[("framerate", 30.0.into())]));
        let mut plain = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut plain).expect("encodable");
        amf0::encode(&object, &mut plain).expect("encodable");
        let plain = plain.freeze();
        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&plain);
        let mut set = BytesMut::new();
        amf0::encode(&"@setDataFrame".into(), &mut set).expect("encodable");
        let mut tag = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut tag).expect("encodable");
        amf0::encode(&array, &mut tag).expect("encodable");
        set.extend_from_slice(&tag);
        for (type_id, body, payload) in [
            (type_id::DATA_AMF0, &plain[..], plain.clone()),
            (type_id::DATA_AMF3, &amf3[..], plain.clone()),
            (type_id::DATA_AMF0, &set[..], tag.clone().freeze()),
        ] {
            let (mut session, client) = publishing();
            let bytes = client.raw(4, 1, 500, type_id, body);
            let events = feed(&mut session, &bytes, &mut BytesMut::new()).expect("valid");
            assert_eq!(
                events,
                vec![SessionEvent::Metadata {
                    timestamp: RtmpTimestamp(500),
                    properties: props(&[("framerate", 30.0.into())]),
                    payload,
                }]
            );
        }
        // Metadata sent right behind `publish` is read once the publish is answered.
        let (mut session, client) = connected();
        let mut bytes = client.command(0, "createStream", 2.0, Value::Null, vec![]);
        bytes.extend(client.command(1, "publish", 3.0, Value::Null, vec!["key".into()]));
        bytes.extend(client.raw(4, 1, 0, type_id::DATA_AMF0, &plain));
        let (events, input) = feed_partly(&mut session, &bytes);
        assert!(
            matches!(events[..], [SessionEvent::PublishRequested { .. }]),
            "{events:?}"
        );
        let mut out = BytesMut::new();
        session.accept_publish(&mut out);
        let events = feed(&mut session, &input, &mut out).expect("valid");
        assert!(
            matches!(events[..], [SessionEvent::Metadata { .. }]),
            "{events:?}"
        );
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        let (mut session, client) = publishing();
        let mut body = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut body).expect("encodable");
        body.extend_from_slice(&[0x08, 0, 0, 0, 1, 0, 5, b'w']);
        let bytes = client.raw(4, 1, 0, type_id::DATA_AMF0, &body);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("truncated");
        assert!(
            matches!(
                err,
                SessionError::Metadata {
                    message_stream_id: 1,
                    source: Amf0Error::Truncated { .. }
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn amf3_commands_are_read() {
        let mut session = ServerSession::new(SessionConfig::default());
        let client = Client::new();
        let mut body = vec![0u8];
        for v in [Value::from("connect"), 1.0.into(), connect_object("live")] {
            let mut b = BytesMut::new();
            amf0::encode(&v, &mut b).expect("encodable");
            body.extend_from_slice(&b);
        }
        let bytes = client.raw(3, 0, 0, type_id::COMMAND_AMF3, &body);
        let events = feed(&mut session, &bytes, &mut BytesMut::new()).expect("valid");
        assert!(matches!(events[0], SessionEvent::Connected { .. }));
    }

    #[test]
    fn bad_message_payloads_are_errors_with_context() {
        let (mut session, client) = connected();
        let bytes = client.raw(3, 0, 12, type_id::COMMAND_AMF0, &[0x02, 0x00]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("truncated");
        assert!(
            matches!(
                err,
                SessionError::Message {
                    timestamp_ms: 12,
                    message_stream_id: 0,
                    source: MessageError::CommandBody { .. }
                }
            ),
            "{err:?}"
        );
        let (mut session, client) = connected();
        let bytes = client.raw(2, 0, 0, type_id::WINDOW_ACKNOWLEDGEMENT_SIZE, &[0, 1]);
        let err = feed(&mut session, &bytes, &mut BytesMut::new()).expect_err("short");
        assert!(matches!(
            err,
            SessionError::Message {
                source: MessageError::TooShort { .. },
                ..
            }
        ));
        // Chunk stream errors come through too.
        let (mut session, _) = connected();
        let err = feed(&mut session, &[0xc9, 0], &mut BytesMut::new()).expect_err("no header");
        assert!(matches!(err, SessionError::Chunk(_)));
    }

    #[test]
    fn configured_chunk_size() {
        let config = SessionConfig {
            chunk_size: 0,
            ..SessionConfig::default()
        };
        let mut session = ServerSession::new(config);
        let mut client = Client::new();
        let mut out = BytesMut::new();
        let bytes = client.command(0, "connect", 1.0, connect_object("live"), vec![]);
        feed(&mut session, &bytes, &mut out).expect("valid");
        let replies = client.replies(&mut out);
        assert_eq!(replies[2].2, Message::SetChunkSize { chunk_size: 128 });
        // A small configured size really cuts what follows.
        let config = SessionConfig {
            chunk_size: 16,
            ..SessionConfig::default()
        };
        let mut session = ServerSession::new(config);
        feed(&mut session, &bytes, &mut out).expect("valid");
        let set_chunk_size_len = 12 + 4;
        // The _result (well over 16 bytes) is in chunks of 16: its second chunk starts with a
        // type 3 header for chunk stream 3 at 3 control messages + 12 + 16 bytes.
        let at = (12 + 4) + (12 + 5) + set_chunk_size_len + 12 + 16;
        assert_eq!(out[at], 0xc3);
        let replies = Client::new().replies(&mut out);
        assert_eq!(replies[2].2, Message::SetChunkSize { chunk_size: 16 });
        assert_eq!(command_reply(&replies[3]).name, "_result");
    }
}
