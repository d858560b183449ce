//! The playing side of an RTMP session, sans-IO: what ffmpeg sends to play a stream
//! (`ffmpeg -i rtmp://host/app/name`), and everything the server sends back as events.
//! Tests and the load tool play with it.
//!
//! ```text
//! client                                      server
//! C0 + C1 (plain)                  ->
//!                                  <-  S0 + S1 + S2
//! C2 (echo of S1), Set Chunk Size,
//! connect (app, flashVer, tcUrl,
//!   fpad, capabilities, codecs)    ->
//!                                  <-  Window Ack Size, Set Peer Bandwidth,
//!                                      Set Chunk Size, _result                       => Connected
//! createStream                     ->
//!                                  <-  _result (stream id)
//! getStreamLength, play (name, -2000),
//! Set Buffer Length (3000 ms)      ->
//!                                  <-  Stream Begin                                  => StreamBegin
//!                                  <-  onStatus NetStream.Play.Reset, .Play.Start    => Status
//!                                  <-  |RtmpSampleAccess, onMetaData                 => Data
//!                                  <-  audio, video                                  => Media
//!                                  <-  Stream EOF, onStatus NetStream.Play.Stop ...  => StreamEof, Status
//! closeStream, deleteStream        ->  (close)
//! ```
//!
//! Every onStatus is passed on as it came ([`PlayEvent::Status`]): a refused play arrives as
//! a status of level "error" (NetStream.Play.Failed, NetStream.Play.StreamNotFound), as
//! servers send it, and what follows is the application's choice. An `_error` reply
//! ([`PlayEvent::Rejected`]) ends the command sequence. Acknowledgements and Ping answers
//! are the shared connection's, as for publishing; a player that reads keeps acknowledging
//! what it reads, and one that stops reading stops acknowledging.
//!
//! What ffmpeg's RTMP protocol (libavformat/rtmpproto.c) sends as a player, and this client
//! too: `connect` without `type` and with flashVer `LNX 9,0,124,2` (`RTMP_CLIENT_PLATFORM`
//! and `RTMP_CLIENT_VER1-4`), `fpad` false, `capabilities` 15, `audioCodecs` 4071,
//! `videoCodecs` 252, `videoFunction` 1; after createStream's `_result`, `getStreamLength`
//! (sent unless the play is live-only), `play` with the stream name and start `rtmp_live ×
//! 1000` (-2000 by default: live, else recorded), and Set Buffer Length for the new stream
//! (`rtmp_buffer`, 3000 ms by default). On close, ffmpeg sends `deleteStream`; this client
//! sends `closeStream` on the played stream first (the NetStream command of §7.2.2 that
//! ends a play without deleting the stream), so a server meets both. Where it differs:
//! ffmpeg sends a Window Acknowledgement Size of its own after connect's `_result`, where
//! this client answers the server's Set Peer Bandwidth with one, and it announces its chunk
//! size before `connect`, as it does to publish.
//!
//! Spec: RTMP 1.0 §7.1.7 (user control events: Stream Begin, Stream EOF, Set Buffer Length,
//! Ping), §7.2.1.1 (connect), §7.2.1.3 (createStream), §7.2.2.1 (play), §7.2.2.3
//! (deleteStream), §7.2.2 (onStatus), §7.1.2 (data messages), §7.1.4 and §7.1.5 (audio and
//! video messages).

use bytes::{Bytes, BytesMut};

use super::{
    COMMAND_CSID, CONNECT_TRANSACTION_ID, ClientError, Connection, EnhancedConnect, Polled,
    STREAM_CSID, created_stream_id, default_chunk_size, status_info,
};
use crate::media::RtmpTimestamp;
use crate::rtmp::amf0::{self, Value};
use crate::rtmp::chunk::{ChunkSize, MessageHeader};
use crate::rtmp::enhanced::EnhancedCaps;
use crate::rtmp::message::{Command, Message, UserControlEvent};
use crate::rtmp::session::MediaKind;

/// flashVer a player sends in `connect`: ffmpeg's on Linux (`RTMP_CLIENT_PLATFORM` "LNX" and
/// version 9,0,124,2), which servers take for a Flash Player.
pub const PLAYER_FLASH_VER: &str = "LNX 9,0,124,2";

/// The start argument of `play` that ffmpeg sends by default (`-rtmp_live any`, sent as
/// -2 × 1000): play the live stream of that name, else a recorded one. The spec's value
/// for this is -2; servers look at the sign. Spec: RTMP 1.0 §7.2.2.1 (Start).
pub const START_LIVE_OR_RECORDED: f64 = -2000.0;

/// The start argument ffmpeg sends with `-rtmp_live live` (-1 × 1000): the live stream
/// only. Spec: RTMP 1.0 §7.2.2.1 (Start: -1).
pub const START_LIVE: f64 = -1000.0;

/// The buffer length ffmpeg announces with Set Buffer Length after `play` (`rtmp_buffer`),
/// in milliseconds.
pub const DEFAULT_BUFFER_LENGTH_MS: u32 = 3000;

/// `capabilities` in a player's `connect`, as ffmpeg sends it.
const CAPABILITIES: f64 = 15.0;
/// `audioCodecs` in a player's `connect`: every SUPPORT_SND_* flag but Intel (0x0008) and
/// unused (0x0010), as ffmpeg sends it.
const AUDIO_CODECS: f64 = 4071.0;
/// `videoCodecs` in a player's `connect`, as ffmpeg sends it.
const VIDEO_CODECS: f64 = 252.0;
/// `videoFunction` in a player's `connect` (SUPPORT_VID_CLIENT_SEEK), as ffmpeg sends it.
const VIDEO_FUNCTION: f64 = 1.0;

/// What the client needs to play one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct PlayConfig {
    /// The application named in `connect` (`live` in `rtmp://host/live/name`).
    pub app: String,
    /// tcUrl: the URL of the application, `rtmp://host:port/app`.
    pub tc_url: String,
    /// The stream name `play` asks for (the stream key, with a `?query` if the server
    /// wants one).
    pub stream_name: String,
    /// The start argument of `play`: [`START_LIVE_OR_RECORDED`] (ffmpeg's default),
    /// [`START_LIVE`], or 0 and above for a recorded stream from that offset. Anything but
    /// [`START_LIVE`] also sends `getStreamLength`, as ffmpeg does.
    pub start: f64,
    /// Set Buffer Length announced for the played stream, in milliseconds.
    pub buffer_length_ms: u32,
    /// Outgoing chunk size, announced with Set Chunk Size before `connect`.
    pub chunk_size: ChunkSize,
    /// Enhanced RTMP properties to announce in `connect`; `None` for a legacy connect.
    pub enhanced: Option<EnhancedConnect>,
}

impl PlayConfig {
    /// A configuration with ffmpeg's defaults: start [`START_LIVE_OR_RECORDED`], buffer
    /// [`DEFAULT_BUFFER_LENGTH_MS`], chunk size [`super::DEFAULT_CHUNK_SIZE`], legacy
    /// `connect`.
    pub fn new(app: &str, tc_url: &str, stream_name: &str) -> PlayConfig {
        PlayConfig {
            app: app.to_owned(),
            tc_url: tc_url.to_owned(),
            stream_name: stream_name.to_owned(),
            start: START_LIVE_OR_RECORDED,
            buffer_length_ms: DEFAULT_BUFFER_LENGTH_MS,
            chunk_size: default_chunk_size(),
            enhanced: None,
        }
    }

    /// The same configuration announcing Enhanced RTMP in `connect`: `fourCcList` and
    /// `capsEx`.
    pub fn with_enhanced(mut self, fourcc_list: &[&str], caps_ex: u32) -> PlayConfig {
        self.enhanced = Some(EnhancedConnect::new(fourcc_list, caps_ex));
        self
    }
}

/// What the server sent, for the application.
#[derive(Clone, Debug, PartialEq)]
pub enum PlayEvent {
    /// `connect` succeeded (`_result`); the client has asked for a stream.
    Connected,
    /// An onStatus, whatever its stream and level: NetStream.Play.Reset,
    /// NetStream.Play.Start, NetStream.Play.Stop, NetStream.Play.UnpublishNotify,
    /// NetStream.Play.Failed, NetStream.Play.StreamNotFound and the like. Fields missing from
    /// its information object are empty. Spec: RTMP 1.0 §7.2.2.
    Status {
        level: String,
        code: String,
        description: String,
    },
    /// A data message: `name` is its first AMF0 value (the handler: `|RtmpSampleAccess`,
    /// `onMetaData`), `payload` the whole AMF0 body, name included (for onMetaData, the body
    /// of an FLV script tag). Data messages that do not start with a string are left out.
    /// Spec: RTMP 1.0 §7.1.2.
    Data { name: String, payload: Bytes },
    /// User control Stream Begin: the stream is ready to carry data. Spec: RTMP 1.0 §7.1.7.
    StreamBegin { stream_id: u32 },
    /// User control Stream EOF: the playback of the stream is over. Spec: RTMP 1.0 §7.1.7.
    StreamEof { stream_id: u32 },
    /// An audio or video message: an FLV audio or video tag body and its timestamp.
    /// Spec: RTMP 1.0 §7.1.4, §7.1.5.
    Media {
        kind: MediaKind,
        timestamp: RtmpTimestamp,
        payload: Bytes,
    },
    /// An `_error` reply to `connect`, `createStream` or `play` (not to `getStreamLength`,
    /// which servers need not know): the command sequence ends here.
    Rejected { code: String, description: String },
}

/// Where a playing session stands.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PlayState {
    /// The handshake is in progress.
    Handshaking,
    /// `connect` sent; waiting for its `_result`.
    Connecting,
    /// createStream sent; waiting for its `_result`.
    CreatingStream { transaction_id: f64 },
    /// `play` sent (with `getStreamLength` before it as `length_transaction_id`): what the
    /// server sends now is the stream.
    Playing { length_transaction_id: Option<f64> },
    /// closeStream and deleteStream sent.
    Closed,
    /// Rejected: no more commands go out but closeStream and deleteStream.
    Over,
}

/// The client side of one RTMP playing session, handshake included.
#[derive(Debug)]
pub struct PlayClient {
    config: PlayConfig,
    state: PlayState,
    /// The message stream `play` went out on, until [`PlayClient::close`].
    stream_id: Option<u32>,
    conn: Connection,
}

impl PlayClient {
    /// Starts a session: appends C0 and a plain C1 (time 0, zero, random bytes) to `out`.
    /// Spec: RTMP 1.0 §5.2.2, §5.2.3.
    pub fn new(config: PlayConfig, out: &mut BytesMut) -> Result<PlayClient, ClientError> {
        Ok(PlayClient {
            config,
            state: PlayState::Handshaking,
            stream_id: None,
            conn: Connection::start(out)?,
        })
    }

    /// What the server announced about Enhanced RTMP in its connect `_result` (codecs and
    /// capsEx); `None` before the reply or when it announced nothing.
    pub fn server_enhanced(&self) -> Option<&EnhancedCaps> {
        self.conn.server_enhanced.as_ref()
    }

    /// The message stream `play` went out on: `Some` from the moment `play` is appended to
    /// `out` (createStream's `_result` has arrived) until [`PlayClient::close`].
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Consumes what the server sent from `input` (partial chunks stay there), appends what
    /// to send to `out` (in order) and what happened to `events`.
    ///
    /// On an error the session is over, but `out` may still hold answers worth sending.
    pub fn feed(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        events: &mut Vec<PlayEvent>,
    ) -> Result<(), ClientError> {
        loop {
            match self.conn.poll(input, out)? {
                Polled::NeedInput => return Ok(()),
                Polled::HandshakeDone => self.connect(out)?,
                Polled::Message(header, message) => {
                    self.on_message(header, message, out, events)?;
                }
            }
        }
    }

    /// Ends the play: closeStream on the played stream, then deleteStream (what ffmpeg sends
    /// when it closes). Does nothing before `play` went out, or once closed. The connection
    /// may be closed after these are sent. Spec: RTMP 1.0 §7.2.2, §7.2.2.3.
    pub fn close(&mut self, out: &mut BytesMut) -> Result<(), ClientError> {
        let Some(stream_id) = self.stream_id else {
            return Ok(());
        };
        let conn = &mut self.conn;
        conn.command(STREAM_CSID, stream_id, "closeStream", 0.0, vec![], out)?;
        let tid = conn.transaction_id();
        let stream = Value::Number(f64::from(stream_id));
        conn.command(COMMAND_CSID, 0, "deleteStream", tid, vec![stream], out)?;
        self.stream_id = None;
        self.state = PlayState::Closed;
        Ok(())
    }

    /// Set Chunk Size, then `connect` as ffmpeg sends it to play.
    fn connect(&mut self, out: &mut BytesMut) -> Result<(), ClientError> {
        let fields = vec![
            ("app".to_owned(), self.config.app.as_str().into()),
            ("flashVer".to_owned(), PLAYER_FLASH_VER.into()),
            ("tcUrl".to_owned(), self.config.tc_url.as_str().into()),
            ("fpad".to_owned(), false.into()),
            ("capabilities".to_owned(), CAPABILITIES.into()),
            ("audioCodecs".to_owned(), AUDIO_CODECS.into()),
            ("videoCodecs".to_owned(), VIDEO_CODECS.into()),
            ("videoFunction".to_owned(), VIDEO_FUNCTION.into()),
        ];
        let enhanced = self.config.enhanced.as_ref();
        self.conn
            .connect(self.config.chunk_size, fields, enhanced, out)?;
        self.state = PlayState::Connecting;
        Ok(())
    }

    fn on_message(
        &mut self,
        header: MessageHeader,
        message: Message,
        out: &mut BytesMut,
        events: &mut Vec<PlayEvent>,
    ) -> Result<(), ClientError> {
        match message {
            Message::Audio(payload) => events.push(PlayEvent::Media {
                kind: MediaKind::Audio,
                timestamp: header.timestamp,
                payload,
            }),
            Message::Video(payload) => events.push(PlayEvent::Media {
                kind: MediaKind::Video,
                timestamp: header.timestamp,
                payload,
            }),
            Message::Data(payload) => match amf0::Decoder::new(&payload).decode() {
                Ok(Some(Value::String(name))) => events.push(PlayEvent::Data { name, payload }),
                other => tracing::debug!(first = ?other, "ignoring data message without a name"),
            },
            Message::UserControl(UserControlEvent::StreamBegin { stream_id }) => {
                events.push(PlayEvent::StreamBegin { stream_id });
            }
            Message::UserControl(UserControlEvent::StreamEof { stream_id }) => {
                events.push(PlayEvent::StreamEof { stream_id });
            }
            Message::Command(command) => self.on_command(command, out, events)?,
            other => tracing::trace!(type_id = other.type_id(), "ignoring message"),
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        command: Command,
        out: &mut BytesMut,
        events: &mut Vec<PlayEvent>,
    ) -> Result<(), ClientError> {
        match command.name.as_str() {
            "_result" => self.on_result(&command, out, events)?,
            "_error" => {
                let (_, code, description) = status_info(&command);
                match self.state {
                    PlayState::Playing {
                        length_transaction_id: Some(tid),
                        ..
                    } if tid == command.transaction_id => {
                        tracing::debug!(code, description, "getStreamLength refused");
                    }
                    PlayState::Closed => tracing::debug!(code, description, "_error after close"),
                    _ => {
                        self.state = PlayState::Over;
                        events.push(PlayEvent::Rejected { code, description });
                    }
                }
            }
            "onStatus" => {
                let (level, code, description) = status_info(&command);
                events.push(PlayEvent::Status {
                    level,
                    code,
                    description,
                });
            }
            // onBWDone, onFCSubscribe and the like: nothing to do.
            name => tracing::trace!(command = name, "ignoring command"),
        }
        Ok(())
    }

    /// `_result` of connect or createStream; getStreamLength's carries nothing the client
    /// needs.
    fn on_result(
        &mut self,
        command: &Command,
        out: &mut BytesMut,
        events: &mut Vec<PlayEvent>,
    ) -> Result<(), ClientError> {
        let tid = command.transaction_id;
        let conn = &mut self.conn;
        match self.state {
            PlayState::Connecting if tid == CONNECT_TRANSACTION_ID => {
                conn.connected(command);
                events.push(PlayEvent::Connected);
                let transaction_id = conn.transaction_id();
                conn.command(COMMAND_CSID, 0, "createStream", transaction_id, vec![], out)?;
                self.state = PlayState::CreatingStream { transaction_id };
            }
            PlayState::CreatingStream { transaction_id } if tid == transaction_id => {
                let stream_id = created_stream_id(command)?;
                let name = Value::from(self.config.stream_name.as_str());
                let length_transaction_id = if self.config.start == START_LIVE {
                    None
                } else {
                    let t = conn.transaction_id();
                    conn.command(
                        STREAM_CSID,
                        0,
                        "getStreamLength",
                        t,
                        vec![name.clone()],
                        out,
                    )?;
                    Some(t)
                };
                // Spec: RTMP 1.0 §7.2.2.1: stream name, start.
                let arguments = vec![name, Value::Number(self.config.start)];
                let t = conn.transaction_id();
                conn.command(STREAM_CSID, stream_id, "play", t, arguments, out)?;
                // Spec: RTMP 1.0 §7.1.7: Set Buffer Length (event 3), stream id and
                // milliseconds, on message stream 0.
                let buffer = Message::UserControl(UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_length: self.config.buffer_length_ms,
                });
                conn.control(&buffer, out)?;
                self.stream_id = Some(stream_id);
                self.state = PlayState::Playing {
                    length_transaction_id,
                };
            }
            _ => tracing::trace!(transaction_id = tid, "ignoring _result"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkStreamId};
    use crate::rtmp::error::SessionError;
    use crate::rtmp::handshake::{HANDSHAKE_SIZE, Handshake, RTMP_VERSION};
    use crate::rtmp::message::LimitType;
    use crate::rtmp::session::{ServerSession, SessionConfig, SessionEvent};

    const NAME: &str = "key-1";
    const TC_URL: &str = "rtmp://127.0.0.1:1935/live";

    fn config() -> PlayConfig {
        PlayConfig::new("live", TC_URL, NAME)
    }

    /// A new client and what it sent (C0 + C1).
    fn new_client(config: PlayConfig) -> (PlayClient, Vec<u8>) {
        let mut out = BytesMut::new();
        let client = PlayClient::new(config, &mut out).expect("random source");
        (client, out.to_vec())
    }

    /// The messages in everything a client sent (C0, C1, C2, then chunks), with their chunk
    /// stream ids.
    fn sent_messages(wire: &[u8]) -> Vec<(u32, MessageHeader, Message)> {
        let mut input = BytesMut::from(&wire[1 + 2 * HANDSHAKE_SIZE..]);
        let mut decoder = ChunkDecoder::new();
        let mut messages = Vec::new();
        loop {
            // The chunk stream id of the chunk that starts the next message: every message
            // the client sends fits one chunk or starts with a one-byte basic header.
            let csid = input.first().map(|b| u32::from(b & 0x3f));
            let Some(raw) = decoder.decode(&mut input).expect("valid chunks") else {
                break;
            };
            let message = Message::parse(raw.header.message_type_id, raw.payload).expect("valid");
            messages.push((csid.expect("a chunk"), raw.header, message));
        }
        assert!(input.is_empty(), "partial chunk left");
        messages
    }

    /// The commands among `messages`: (chunk stream, message stream, command).
    fn commands(messages: &[(u32, MessageHeader, Message)]) -> Vec<(u32, u32, Command)> {
        messages
            .iter()
            .filter_map(|(csid, header, m)| match m {
                Message::Command(c) => Some((*csid, header.message_stream_id, c.clone())),
                _ => None,
            })
            .collect()
    }

    fn names(messages: &[(u32, MessageHeader, Message)]) -> Vec<String> {
        messages
            .iter()
            .map(|(_, _, m)| match m {
                Message::Command(c) => c.name.clone(),
                Message::SetChunkSize { chunk_size } => format!("SetChunkSize {chunk_size}"),
                Message::UserControl(UserControlEvent::SetBufferLength {
                    stream_id,
                    buffer_length,
                }) => format!("SetBufferLength {stream_id} {buffer_length}"),
                other => format!("type {}", other.type_id()),
            })
            .collect()
    }

    fn status(level: &str, code: &str, description: &str) -> Value {
        Value::object(&[
            ("level", level.into()),
            ("code", code.into()),
            ("description", description.into()),
        ])
    }

    fn command(name: &str, transaction_id: f64, object: Value, arguments: Vec<Value>) -> Message {
        Message::Command(Command {
            name: name.to_owned(),
            transaction_id,
            command_object: object,
            arguments,
        })
    }

    fn connect_result() -> Message {
        let properties = Value::object(&[
            ("fmsVer", "FMS/3,0,1,123".into()),
            ("capabilities", 31.0.into()),
        ]);
        let info = status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        );
        command("_result", 1.0, properties, vec![info])
    }

    fn on_status(level: &str, code: &str, description: &str) -> Message {
        command(
            "onStatus",
            0.0,
            Value::Null,
            vec![status(level, code, description)],
        )
    }

    /// An AMF0 data message body of `values`.
    fn data(values: &[Value]) -> Bytes {
        let mut body = BytesMut::new();
        for value in values {
            amf0::encode(value, &mut body).expect("encodable");
        }
        body.freeze()
    }

    fn payload(len: usize, first: u8, seed: u8) -> Bytes {
        let mut bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect();
        bytes[0] = first;
        Bytes::from(bytes)
    }

    /// What a server sends, chunked as a server chunks it: S0, S1, S2, then messages, each
    /// on the chunk stream and message stream given. Set Chunk Size takes effect after it.
    struct ServerWire {
        encoder: ChunkEncoder,
        wire: Vec<u8>,
    }

    impl ServerWire {
        fn new() -> ServerWire {
            let mut wire = vec![RTMP_VERSION];
            wire.extend_from_slice(&[0x33; 2 * HANDSHAKE_SIZE]);
            ServerWire {
                encoder: ChunkEncoder::new(),
                wire,
            }
        }

        fn send(&mut self, csid: u32, stream: u32, timestamp: u32, message: &Message) -> usize {
            let mut payload = BytesMut::new();
            message.write_payload(&mut payload).expect("encodable");
            let header = MessageHeader {
                timestamp: RtmpTimestamp(timestamp),
                message_type_id: message.type_id(),
                message_stream_id: stream,
            };
            let mut out = BytesMut::new();
            let csid = ChunkStreamId::new(csid).expect("valid");
            self.encoder
                .write_message(csid, &header, &payload, &mut out)
                .expect("not too long");
            self.wire.extend_from_slice(&out);
            if let Message::SetChunkSize { chunk_size } = message {
                self.encoder
                    .set_chunk_size(ChunkSize::new(*chunk_size).expect("valid"));
            }
            self.wire.len()
        }

        /// What ServerSession sends on connect: window, bandwidth, chunk size, `_result`.
        fn connect(&mut self, window: u32, chunk_size: u32) {
            let window_size = Message::WindowAcknowledgementSize {
                acknowledgement_window_size: window,
            };
            self.send(2, 0, 0, &window_size);
            let bandwidth = Message::SetPeerBandwidth {
                acknowledgement_window_size: window,
                limit_type: LimitType::Dynamic,
            };
            self.send(2, 0, 0, &bandwidth);
            self.send(2, 0, 0, &Message::SetChunkSize { chunk_size });
            self.send(3, 0, 0, &connect_result());
        }

        /// connect's `_result` and createStream's (transaction 2) with `stream_id`.
        fn until_play(&mut self, window: u32, chunk_size: u32, stream_id: u32) {
            self.connect(window, chunk_size);
            let onbwdone = command("onBWDone", 0.0, Value::Null, vec![8192.0.into()]);
            self.send(3, 0, 0, &onbwdone);
            let created = command(
                "_result",
                2.0,
                Value::Null,
                vec![f64::from(stream_id).into()],
            );
            self.send(3, 0, 0, &created);
        }
    }

    /// Feeds `pieces` one after the other to a new client; its events and what it sent
    /// after C0 + C1.
    fn replay(config: PlayConfig, pieces: &[&[u8]]) -> (Vec<PlayEvent>, Vec<u8>) {
        let (mut client, _) = new_client(config);
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        let mut events = Vec::new();
        for piece in pieces {
            input.extend_from_slice(piece);
            client
                .feed(&mut input, &mut out, &mut events)
                .expect("valid server bytes");
        }
        assert!(input.is_empty());
        (events, out.to_vec())
    }

    /// `sent` (after C0 + C1) behind a C0 + C1 of zeros, for [`sent_messages`].
    fn with_c0_c1(sent: &[u8]) -> Vec<u8> {
        [&[0u8; 1 + HANDSHAKE_SIZE][..], sent].concat()
    }

    fn media(kind: MediaKind, timestamp: u32, payload: &Bytes) -> PlayEvent {
        PlayEvent::Media {
            kind,
            timestamp: RtmpTimestamp(timestamp),
            payload: payload.clone(),
        }
    }

    /// This crate's server session in memory, with a client: bytes go back and forth until
    /// neither side has more to say.
    struct InMemory {
        client: PlayClient,
        client_events: Vec<PlayEvent>,
        /// Everything the client sent.
        client_wire: Vec<u8>,
        handshake: Handshake,
        handshake_done: bool,
        server: ServerSession,
        server_events: Vec<SessionEvent>,
        to_server: BytesMut,
        to_client: BytesMut,
    }

    impl InMemory {
        fn new(config: PlayConfig) -> InMemory {
            let (client, c0_c1) = new_client(config);
            let mut pair = InMemory {
                client,
                client_events: Vec::new(),
                client_wire: Vec::new(),
                handshake: Handshake::new(),
                handshake_done: false,
                server: ServerSession::new(SessionConfig::default()),
                server_events: Vec::new(),
                to_server: BytesMut::new(),
                to_client: BytesMut::new(),
            };
            pair.client_sent(&c0_c1);
            pair.pump();
            pair
        }

        fn client_sent(&mut self, bytes: &[u8]) {
            self.client_wire.extend_from_slice(bytes);
            self.to_server.extend_from_slice(bytes);
        }

        fn pump(&mut self) {
            loop {
                let mut out = BytesMut::new();
                if !self.handshake_done {
                    self.handshake_done = self
                        .handshake
                        .feed(&mut self.to_server, &mut out)
                        .expect("valid client handshake");
                }
                if self.handshake_done {
                    self.server
                        .handle_input(&mut self.to_server, &mut out, &mut self.server_events)
                        .expect("valid client");
                }
                let server_quiet = out.is_empty();
                self.to_client.extend_from_slice(&out);
                let mut out = BytesMut::new();
                self.client
                    .feed(&mut self.to_client, &mut out, &mut self.client_events)
                    .expect("valid server bytes");
                let client_quiet = out.is_empty();
                self.client_sent(&out);
                if server_quiet && client_quiet {
                    return;
                }
            }
        }
    }

    #[test]
    fn asks_the_server_session_to_play() {
        // What the session answers to `play` comes back as onStatus events.
        let mut pair = InMemory::new(config());
        assert!(matches!(
            pair.server_events.last(),
            Some(SessionEvent::PlayRequested { .. })
        ));
        let mut out = BytesMut::new();
        pair.server.accept_play("Playing key.", &mut out);
        pair.to_client.extend_from_slice(&out);
        pair.pump();
        assert!(matches!(
            &pair.server_events[0],
            SessionEvent::Connected { app, tc_url, flash_ver, enhanced: None }
                if app == "live"
                    && tc_url.as_deref() == Some(TC_URL)
                    && flash_ver.as_deref() == Some(PLAYER_FLASH_VER)
        ));
        assert_eq!(pair.client_events[0], PlayEvent::Connected);
        assert_eq!(pair.client.stream_id(), Some(1));
        let codes: Vec<&str> = pair.client_events[1..]
            .iter()
            .filter_map(|e| match e {
                PlayEvent::Status { code, .. } => Some(code.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c.starts_with("NetStream.Play.")),
            "{:?}",
            pair.client_events
        );
        assert_eq!(
            names(&sent_messages(&pair.client_wire)),
            [
                "SetChunkSize 4096",
                "connect",
                "type 5", // Window Acknowledgement Size, answering Set Peer Bandwidth
                "createStream",
                "getStreamLength",
                "play",
                "SetBufferLength 1 3000",
            ]
        );

        // close: closeStream on the stream, deleteStream of it; the session reads both.
        let mut out = BytesMut::new();
        pair.client.close(&mut out).expect("encodable");
        pair.client_sent(&out);
        pair.pump();
        assert!(pair.to_server.is_empty());
        let names = names(&sent_messages(&pair.client_wire));
        assert_eq!(names[names.len() - 2..], ["closeStream", "deleteStream"]);
    }

    #[test]
    fn connect_is_ffmpegs_player_connect() {
        let mut server = ServerWire::new();
        server.connect(2_500_000, 60_000);
        let (events, sent) = replay(config(), &[&server.wire]);
        assert_eq!(events, [PlayEvent::Connected]);
        let sent = sent_messages(&with_c0_c1(&sent));
        let (csid, stream, connect) = commands(&sent).remove(0);
        assert_eq!((csid, stream), (3, 0));
        assert_eq!(
            (connect.name.as_str(), connect.transaction_id),
            ("connect", 1.0)
        );
        assert_eq!(
            connect.command_object,
            Value::object(&[
                ("app", "live".into()),
                ("flashVer", "LNX 9,0,124,2".into()),
                ("tcUrl", TC_URL.into()),
                ("fpad", false.into()),
                ("capabilities", 15.0.into()),
                ("audioCodecs", 4071.0.into()),
                ("videoCodecs", 252.0.into()),
                ("videoFunction", 1.0.into()),
            ])
        );
        assert!(connect.arguments.is_empty());
    }

    #[test]
    fn enhanced_connect_is_announced_and_answered() {
        use crate::rtmp::enhanced::{FourCc, SERVED_CAPS_EX, caps_ex};
        let cfg = config().with_enhanced(&["hvc1", "av01"], caps_ex::MULTITRACK);
        let pair = InMemory::new(cfg);
        let SessionEvent::Connected {
            enhanced: Some(caps),
            ..
        } = &pair.server_events[0]
        else {
            panic!("{:?}", pair.server_events);
        };
        assert_eq!(caps.caps_ex, caps_ex::MULTITRACK);
        assert!(caps.names(FourCc::Code(*b"hvc1")) && caps.names(FourCc::Code(*b"av01")));
        assert_eq!(pair.client_events[0], PlayEvent::Connected);
        let answered = pair.client.server_enhanced().expect("answered");
        assert_eq!(answered.caps_ex, SERVED_CAPS_EX);
        // Legacy by default: nothing announced, nothing answered.
        let pair = InMemory::new(config());
        assert_eq!(pair.client.server_enhanced(), None);
    }

    #[test]
    fn play_goes_on_the_created_stream_with_ffmpegs_arguments() {
        let mut server = ServerWire::new();
        server.until_play(2_500_000, 60_000, 7);
        let (events, sent) = replay(config(), &[&server.wire]);
        assert_eq!(events, [PlayEvent::Connected]);
        let sent = sent_messages(&with_c0_c1(&sent));
        let sent_commands = commands(&sent);
        let tail: Vec<(u32, u32, &str, f64, &[Value])> = sent_commands[1..]
            .iter()
            .map(|(csid, stream, c)| {
                (
                    *csid,
                    *stream,
                    c.name.as_str(),
                    c.transaction_id,
                    &c.arguments[..],
                )
            })
            .collect();
        assert_eq!(
            tail,
            [
                (3, 0, "createStream", 2.0, &[][..]),
                (8, 0, "getStreamLength", 3.0, &[Value::from(NAME)][..]),
                (
                    8,
                    7,
                    "play",
                    4.0,
                    &[Value::from(NAME), Value::Number(-2000.0)][..]
                ),
            ]
        );
        let last = sent.last().expect("messages");
        assert_eq!((last.0, last.1.message_stream_id), (2, 0));
        assert_eq!(
            last.2,
            Message::UserControl(UserControlEvent::SetBufferLength {
                stream_id: 7,
                buffer_length: 3000
            })
        );

        // Live only, another buffer: no getStreamLength, start -1000.
        let cfg = PlayConfig {
            start: START_LIVE,
            buffer_length_ms: 500,
            ..config()
        };
        let (_, sent) = replay(cfg, &[&server.wire]);
        let sent = sent_messages(&with_c0_c1(&sent));
        assert_eq!(
            names(&sent)[3..],
            ["createStream", "play", "SetBufferLength 7 500"]
        );
        let play = commands(&sent).pop().expect("play").2;
        assert_eq!(play.arguments, [Value::from(NAME), Value::Number(-1000.0)]);
    }

    /// A whole play as a server sends it, at a small chunk size so that messages span
    /// chunks, with a small acknowledgement window; and the events it makes.
    fn stream_wire() -> (Vec<u8>, Vec<PlayEvent>) {
        let mut s = ServerWire::new();
        s.until_play(1000, 100, 1);
        let sample_access = data(&["|RtmpSampleAccess".into(), true.into(), true.into()]);
        let metadata = data(&[
            "onMetaData".into(),
            Value::EcmaArray(vec![("width".to_owned(), 1280.0.into())]),
        ]);
        let avc_header = payload(40, 0x17, 1);
        let aac_header = payload(4, 0xaf, 2);
        let keyframe = payload(300, 0x17, 3);
        let audio = payload(120, 0xaf, 4);
        let inter = payload(150, 0x27, 5);
        let begin = Message::UserControl(UserControlEvent::StreamBegin { stream_id: 1 });
        s.send(2, 0, 0, &begin);
        s.send(
            5,
            1,
            0,
            &on_status("status", "NetStream.Play.Reset", "reset"),
        );
        s.send(
            5,
            1,
            0,
            &on_status("status", "NetStream.Play.Start", "started"),
        );
        s.send(5, 1, 0, &Message::Data(sample_access.clone()));
        s.send(5, 1, 0, &Message::Data(metadata.clone()));
        // A data message that does not start with a name: left out.
        s.send(5, 1, 0, &Message::Data(data(&[1.0.into()])));
        s.send(6, 1, 0, &Message::Video(avc_header.clone()));
        s.send(4, 1, 0, &Message::Audio(aac_header.clone()));
        s.send(6, 1, 0, &Message::Video(keyframe.clone()));
        let ping = Message::UserControl(UserControlEvent::PingRequest { timestamp: 77 });
        s.send(2, 0, 0, &ping);
        s.send(4, 1, 23, &Message::Audio(audio.clone()));
        s.send(6, 1, 33, &Message::Video(inter.clone()));
        let eof = Message::UserControl(UserControlEvent::StreamEof { stream_id: 1 });
        s.send(2, 0, 0, &eof);
        let unpublished = on_status("status", "NetStream.Play.UnpublishNotify", "gone");
        s.send(5, 1, 0, &unpublished);
        let status = |code: &str, description: &str| PlayEvent::Status {
            level: "status".to_owned(),
            code: code.to_owned(),
            description: description.to_owned(),
        };
        let events = vec![
            PlayEvent::Connected,
            PlayEvent::StreamBegin { stream_id: 1 },
            status("NetStream.Play.Reset", "reset"),
            status("NetStream.Play.Start", "started"),
            PlayEvent::Data {
                name: "|RtmpSampleAccess".to_owned(),
                payload: sample_access,
            },
            PlayEvent::Data {
                name: "onMetaData".to_owned(),
                payload: metadata,
            },
            media(MediaKind::Video, 0, &avc_header),
            media(MediaKind::Audio, 0, &aac_header),
            media(MediaKind::Video, 0, &keyframe),
            media(MediaKind::Audio, 23, &audio),
            media(MediaKind::Video, 33, &inter),
            PlayEvent::StreamEof { stream_id: 1 },
            status("NetStream.Play.UnpublishNotify", "gone"),
        ];
        (s.wire, events)
    }

    /// What a client sent after C0 + C1 but its Acknowledgements, and their sequence
    /// numbers.
    fn without_acks(sent: &[u8]) -> (Vec<(u32, MessageHeader, Message)>, Vec<u32>) {
        let mut acks = Vec::new();
        let mut others = Vec::new();
        for (csid, header, message) in sent_messages(&with_c0_c1(sent)) {
            match message {
                Message::Acknowledgement { sequence_number } => acks.push(sequence_number),
                other => others.push((csid, header, other)),
            }
        }
        (others, acks)
    }

    #[test]
    fn server_bytes_in_every_split() {
        let (wire, expected) = stream_wire();
        let (events, sent) = replay(config(), &[&wire]);
        assert_eq!(events, expected);
        let (reference, acks) = without_acks(&sent);
        // Window 1000: an Acknowledgement once at least 1000 bytes came since the last one,
        // never for more than was received, and none owed at the end.
        assert!(acks.len() >= wire.len() / 1000 - 3, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000), "{acks:?}");
        assert!(acks.iter().all(|&a| a as usize <= wire.len()));
        assert!(wire.len() - *acks.last().expect("acks") as usize <= 1000);
        assert!(reference.iter().any(|(_, _, m)| *m
            == Message::UserControl(UserControlEvent::PingResponse { timestamp: 77 })));
        assert!(reference.iter().any(|(_, _, m)| *m
            == Message::WindowAcknowledgementSize {
                acknowledgement_window_size: 1000
            }));

        for split in 0..=wire.len() {
            let (first, second) = wire.split_at(split);
            let (events, sent) = replay(config(), &[first, second]);
            assert_eq!(events, expected, "split at {split}");
            assert_eq!(without_acks(&sent).0, reference, "split at {split}");
        }
        let pieces: Vec<&[u8]> = wire.chunks(1).collect();
        let (events, sent) = replay(config(), &pieces);
        assert_eq!(events, expected);
        let (others, acks) = without_acks(&sent);
        assert_eq!(others, reference);
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000), "{acks:?}");
    }

    #[test]
    fn large_media_at_the_servers_default_chunk_size() {
        let config = SessionConfig::default();
        let mut s = ServerWire::new();
        s.until_play(config.window_ack_size, config.chunk_size, 1);
        let big = payload(150_000, 0x17, 9); // three chunks of 60000 bytes
        s.send(6, 1, 0, &Message::Video(big.clone()));
        s.send(6, 1, 40, &Message::Video(big.clone()));
        let (events, sent) = replay(PlayConfig::new("live", TC_URL, NAME), &[&s.wire]);
        assert_eq!(
            events[1..],
            [
                media(MediaKind::Video, 0, &big),
                media(MediaKind::Video, 40, &big)
            ]
        );
        // Under the 2.5 MB window: no Acknowledgement yet.
        assert!(without_acks(&sent).1.is_empty());
    }

    #[test]
    fn refusals() {
        // An error onStatus is a status like the others.
        let mut s = ServerWire::new();
        s.until_play(2_500_000, 60_000, 1);
        let not_found = on_status("error", "NetStream.Play.StreamNotFound", "no such stream");
        s.send(5, 1, 0, &not_found);
        let (events, _) = replay(config(), &[&s.wire]);
        assert_eq!(
            events,
            [
                PlayEvent::Connected,
                PlayEvent::Status {
                    level: "error".to_owned(),
                    code: "NetStream.Play.StreamNotFound".to_owned(),
                    description: "no such stream".to_owned()
                }
            ]
        );

        // `_error` to getStreamLength (transaction 3) is nobody's business; to play
        // (transaction 4) it ends the sequence.
        let error = |tid: f64, code: &str| {
            command(
                "_error",
                tid,
                Value::Null,
                vec![status("error", code, "refused")],
            )
        };
        s.send(3, 0, 0, &error(3.0, "NetConnection.Call.Failed"));
        s.send(3, 0, 0, &error(4.0, "NetStream.Play.Failed"));
        let (events, _) = replay(config(), &[&s.wire]);
        assert_eq!(
            events.last(),
            Some(&PlayEvent::Rejected {
                code: "NetStream.Play.Failed".to_owned(),
                description: "refused".to_owned()
            })
        );
        assert_eq!(events.len(), 3);

        // `_error` to connect: no createStream follows.
        let mut s = ServerWire::new();
        s.send(3, 0, 0, &error(1.0, "NetConnection.Connect.Rejected"));
        let (events, sent) = replay(config(), &[&s.wire]);
        assert_eq!(
            events,
            [PlayEvent::Rejected {
                code: "NetConnection.Connect.Rejected".to_owned(),
                description: "refused".to_owned()
            }]
        );
        assert_eq!(
            names(&sent_messages(&with_c0_c1(&sent))),
            ["SetChunkSize 4096", "connect"]
        );

        // The server session refuses another application.
        let (mut client, c0_c1) = new_client(PlayConfig::new("other", TC_URL, NAME));
        let mut handshake = Handshake::new();
        let mut server = ServerSession::new(SessionConfig::default());
        let mut to_server = BytesMut::from(&c0_c1[..]);
        let mut to_client = BytesMut::new();
        handshake
            .feed(&mut to_server, &mut to_client)
            .expect("C0 C1");
        let mut out = BytesMut::new();
        client
            .feed(&mut to_client, &mut out, &mut Vec::new())
            .expect("S0 S1 S2");
        to_server.extend_from_slice(&out);
        assert!(handshake.feed(&mut to_server, &mut to_client).expect("C2"));
        let err = server
            .handle_input(&mut to_server, &mut to_client, &mut Vec::new())
            .expect_err("another application");
        assert!(matches!(err, SessionError::AppRejected { .. }), "{err}");
        let mut events = Vec::new();
        client
            .feed(&mut to_client, &mut BytesMut::new(), &mut events)
            .expect("_error");
        assert!(matches!(
            &events[..],
            [PlayEvent::Rejected { code, .. }] if code == "NetConnection.Connect.Rejected"
        ));
    }

    #[test]
    fn close_sends_close_stream_and_delete_stream_once() {
        // Before play went out: nothing to close.
        let mut s = ServerWire::new();
        s.connect(2_500_000, 60_000);
        let (mut client, _) = new_client(config());
        let mut out = BytesMut::new();
        client
            .feed(&mut BytesMut::from(&s.wire[..]), &mut out, &mut Vec::new())
            .expect("valid");
        let before = out.len();
        client.close(&mut out).expect("nothing to send");
        assert_eq!(out.len(), before);
        assert_eq!(client.stream_id(), None);

        let mut s = ServerWire::new();
        s.until_play(2_500_000, 60_000, 5);
        let (mut client, _) = new_client(config());
        let mut out = BytesMut::new();
        client
            .feed(&mut BytesMut::from(&s.wire[..]), &mut out, &mut Vec::new())
            .expect("valid");
        assert_eq!(client.stream_id(), Some(5));
        let before = sent_messages(&with_c0_c1(&out)).len();
        client.close(&mut out).expect("encodable");
        assert_eq!(client.stream_id(), None);
        let sent = sent_messages(&with_c0_c1(&out));
        let closing = commands(&sent[before..]);
        let closing: Vec<(u32, u32, &str, f64, &[Value])> = closing
            .iter()
            .map(|(csid, stream, c)| {
                (
                    *csid,
                    *stream,
                    c.name.as_str(),
                    c.transaction_id,
                    &c.arguments[..],
                )
            })
            .collect();
        assert_eq!(
            closing,
            [
                (8, 5, "closeStream", 0.0, &[][..]),
                (3, 0, "deleteStream", 5.0, &[Value::Number(5.0)][..]),
            ]
        );
        let length = out.len();
        client.close(&mut out).expect("closed already");
        assert_eq!(out.len(), length);
    }
}
