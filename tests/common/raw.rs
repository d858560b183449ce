//! A raw RTMP peer over a blocking socket, for tests that send what no well-behaved encoder
//! sends: any chunk header, any message type, hand-made AMF0, in any order. It reads the
//! server's messages back with the project's own chunk decoder, and tells a closed
//! connection from a quiet one.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use rtmp_server::media::RtmpTimestamp;
use rtmp_server::rtmp::amf0::{self, Value};
use rtmp_server::rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkSize, ChunkStreamId, MessageHeader,
};
use rtmp_server::rtmp::handshake::HANDSHAKE_SIZE;
use rtmp_server::rtmp::message::{Command, Message, UserControlEvent, type_id};

/// Chunk stream commands go on, as ffmpeg sends them.
pub const COMMAND_CSID: u32 = 3;
/// Chunk streams of audio and video.
pub const AUDIO_CSID: u32 = 4;
pub const VIDEO_CSID: u32 = 6;

/// How long a raw peer waits for an answer the server gives at once.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// What a read found.
enum ReadOutcome {
    Data,
    Closed,
    TimedOut,
}

/// One TCP connection to the RTMP port, driven by hand.
pub struct RawRtmp {
    socket: TcpStream,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    input: BytesMut,
    handshake_done: bool,
    /// Every message the server sent so far, in order.
    pub received: Vec<Message>,
    /// The server's bytes stopped making sense (it never should).
    pub decode_error: Option<String>,
    next_transaction: f64,
}

impl RawRtmp {
    /// A TCP connection, nothing sent.
    pub fn connect(port: u16) -> RawRtmp {
        let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect to the RTMP port");
        socket.set_nodelay(true).expect("nodelay");
        // A server that stops reading without closing fails the test instead of hanging it.
        socket
            .set_write_timeout(Some(ANSWER_TIMEOUT))
            .expect("write timeout");
        RawRtmp {
            socket,
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(),
            input: BytesMut::new(),
            handshake_done: false,
            received: Vec::new(),
            decode_error: None,
            next_transaction: 2.0,
        }
    }

    /// A second handle on the socket (to write from another thread).
    pub fn socket(&self) -> TcpStream {
        self.socket.try_clone().expect("clone socket")
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.socket.write_all(bytes)
    }

    /// The plain handshake: C0 and C1 (zeros), then C2 (S1 echoed) once S0, S1 and S2 are in.
    /// Spec: RTMP 1.0 §5.2.
    pub fn handshake(&mut self) {
        let mut c0c1 = vec![0u8; 1 + HANDSHAKE_SIZE];
        c0c1[0] = 3;
        self.send(&c0c1).expect("send C0 C1");
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.input.len() < 1 + 2 * HANDSHAKE_SIZE {
            match self.read_some(deadline) {
                ReadOutcome::Data => {}
                ReadOutcome::Closed => {
                    panic!("the server closed the connection during the handshake")
                }
                ReadOutcome::TimedOut => panic!("no S0 S1 S2 within {ANSWER_TIMEOUT:?}"),
            }
        }
        assert_eq!(self.input[0], 3, "S0 version");
        let s1 = self.input[1..1 + HANDSHAKE_SIZE].to_vec();
        let _ = self.input.split_to(1 + 2 * HANDSHAKE_SIZE);
        self.handshake_done = true;
        self.send(&s1).expect("send C2");
        self.decode();
    }

    /// Chunks one message with the current chunk size (type 0 header, then type 3).
    pub fn message_bytes(
        &self,
        csid: u32,
        message_stream_id: u32,
        timestamp: u32,
        message_type_id: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let header = MessageHeader {
            timestamp: RtmpTimestamp(timestamp),
            message_type_id,
            message_stream_id,
        };
        let mut out = BytesMut::new();
        self.encoder
            .write_message(
                ChunkStreamId::new(csid).expect("valid chunk stream id"),
                &header,
                payload,
                &mut out,
            )
            .expect("chunkable");
        out.to_vec()
    }

    /// Sends one message.
    pub fn message(
        &mut self,
        csid: u32,
        message_stream_id: u32,
        timestamp: u32,
        message_type_id: u8,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let bytes =
            self.message_bytes(csid, message_stream_id, timestamp, message_type_id, payload);
        self.send(&bytes)
    }

    /// Set Chunk Size with any 32-bit value; later messages are cut to it when it is a
    /// valid size. Spec: RTMP 1.0 §5.4.1.
    pub fn set_chunk_size(&mut self, value: u32) -> std::io::Result<()> {
        self.message(2, 0, 0, type_id::SET_CHUNK_SIZE, &value.to_be_bytes())?;
        if let Ok(size) = ChunkSize::new(value) {
            self.encoder.set_chunk_size(size);
        }
        Ok(())
    }

    /// A command message (type 20) from already encoded AMF0 values.
    pub fn command_raw(&mut self, message_stream_id: u32, body: &[u8]) -> std::io::Result<()> {
        self.message(
            COMMAND_CSID,
            message_stream_id,
            0,
            type_id::COMMAND_AMF0,
            body,
        )
    }

    /// A command message: name, a fresh transaction id, command object, arguments.
    pub fn command(
        &mut self,
        message_stream_id: u32,
        name: &str,
        command_object: Value,
        arguments: Vec<Value>,
    ) -> std::io::Result<()> {
        let transaction_id = self.next_transaction;
        self.next_transaction += 1.0;
        let mut body = BytesMut::new();
        Message::Command(Command {
            name: name.to_string(),
            transaction_id,
            command_object,
            arguments,
        })
        .write_payload(&mut body)
        .expect("encodable command");
        self.command_raw(message_stream_id, &body)
    }

    /// `connect` to `app`, then waits for its `_result`.
    pub fn connect_app(&mut self, app: &str) {
        let object = Value::Object(vec![
            ("app".to_string(), Value::from(app)),
            ("type".to_string(), Value::from("nonprivate")),
            ("flashVer".to_string(), Value::from("FMLE/3.0")),
            ("tcUrl".to_string(), Value::from("rtmp://127.0.0.1/live")),
        ]);
        self.command(0, "connect", object, vec![])
            .expect("send connect");
        let reply = self.wait_for(ANSWER_TIMEOUT, |m| command_named(m, "_result"));
        assert!(
            reply.is_some(),
            "no connect _result; got {:?}",
            self.received
        );
    }

    /// `createStream`, then waits for its `_result`; returns the stream id.
    pub fn create_stream(&mut self) -> u32 {
        let before = self.results().len();
        self.command(0, "createStream", Value::Null, vec![])
            .expect("send createStream");
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            if let Some(result) = self.results().get(before) {
                let id = result
                    .number_argument(0)
                    .expect("createStream _result carries the stream id");
                return id as u32;
            }
            assert!(
                self.pump(deadline),
                "no createStream _result; got {:?}",
                self.received
            );
        }
    }

    /// `publish` with a publishing name given as raw AMF0 bytes (any marker, any length
    /// field, any bytes), and type "live".
    pub fn publish_raw_name(&mut self, stream_id: u32, name_amf: &[u8]) -> std::io::Result<()> {
        let mut body = BytesMut::new();
        amf0::encode(&Value::from("publish"), &mut body).expect("encodable");
        amf0::encode(&Value::Number(self.next_transaction), &mut body).expect("encodable");
        self.next_transaction += 1.0;
        amf0::encode(&Value::Null, &mut body).expect("encodable");
        body.put_slice(name_amf);
        amf0::encode(&Value::from("live"), &mut body).expect("encodable");
        self.command_raw(stream_id, &body)
    }

    /// `publish` of `key`.
    pub fn publish(&mut self, stream_id: u32, key: &str) -> std::io::Result<()> {
        self.command(
            stream_id,
            "publish",
            Value::Null,
            vec![Value::from(key), Value::from("live")],
        )
    }

    /// connect, createStream, publish `key`, and waits for NetStream.Publish.Start.
    /// Returns the stream id media goes on.
    pub fn start_publish(&mut self, key: &str) -> u32 {
        self.handshake();
        self.connect_app("live");
        let stream = self.create_stream();
        self.publish(stream, key).expect("send publish");
        let started = self.wait_status("NetStream.Publish.Start", ANSWER_TIMEOUT);
        assert!(started, "publish not started; got {:?}", self.received);
        stream
    }

    /// An FLV tag body as an audio or video message.
    pub fn media(
        &mut self,
        message_type_id: u8,
        stream_id: u32,
        timestamp: RtmpTimestamp,
        body: &[u8],
    ) -> std::io::Result<()> {
        let csid = if message_type_id == type_id::AUDIO {
            AUDIO_CSID
        } else {
            VIDEO_CSID
        };
        self.message(csid, stream_id, timestamp.0, message_type_id, body)
    }

    /// The `code` of every onStatus received so far.
    pub fn status_codes(&self) -> Vec<String> {
        self.received.iter().filter_map(status_code).collect()
    }

    /// Waits until an onStatus with `code` arrives; false when the connection closed or the
    /// time ran out first.
    pub fn wait_status(&mut self, code: &str, timeout: Duration) -> bool {
        self.wait_for(timeout, |m| status_code(m).as_deref() == Some(code))
            .is_some()
    }

    /// The `_result` commands received so far.
    fn results(&self) -> Vec<Command> {
        self.received
            .iter()
            .filter_map(|m| match m {
                Message::Command(c) if c.name == "_result" => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// Reads until a message (already received or new) satisfies `pred`; `None` when the
    /// connection closed or `timeout` passed first.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Message) -> bool,
    ) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            if let Some(m) = self.received[seen..].iter().find(|m| pred(m)) {
                return Some(m.clone());
            }
            seen = self.received.len();
            if !self.pump(deadline) {
                return None;
            }
        }
    }

    /// Reads and decodes until `timeout` passes or the server closes the connection; true
    /// when it closed (end of stream or reset).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_some(deadline) {
                ReadOutcome::Data => self.decode(),
                ReadOutcome::Closed => return true,
                ReadOutcome::TimedOut => return false,
            }
        }
    }

    /// Whether the server is still connected: nothing arrives but the connection stays
    /// open for `quiet`.
    pub fn open_after(&mut self, quiet: Duration) -> bool {
        !self.closed_within(quiet)
    }

    /// Pings sent by the server so far.
    pub fn pings_received(&self) -> usize {
        self.received
            .iter()
            .filter(|m| {
                matches!(
                    m,
                    Message::UserControl(UserControlEvent::PingRequest { .. })
                )
            })
            .count()
    }

    /// Reads once and decodes; false when the connection closed or the time ran out.
    fn pump(&mut self, deadline: Instant) -> bool {
        match self.read_some(deadline) {
            ReadOutcome::Data => {
                self.decode();
                true
            }
            ReadOutcome::Closed | ReadOutcome::TimedOut => false,
        }
    }

    fn read_some(&mut self, deadline: Instant) -> ReadOutcome {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return ReadOutcome::TimedOut;
        };
        let left = left.max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(left)).expect("timeout");
        let mut buf = [0u8; 16 * 1024];
        match self.socket.read(&mut buf) {
            Ok(0) => ReadOutcome::Closed,
            Ok(n) => {
                self.input.extend_from_slice(&buf[..n]);
                ReadOutcome::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                ReadOutcome::TimedOut
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => ReadOutcome::Data,
            Err(_) => ReadOutcome::Closed,
        }
    }

    /// Decodes what the server sent into messages (after the handshake).
    fn decode(&mut self) {
        if !self.handshake_done || self.decode_error.is_some() {
            return;
        }
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(raw)) => match Message::parse(raw.header.message_type_id, raw.payload) {
                    Ok(m) => self.received.push(m),
                    Err(e) => {
                        self.decode_error = Some(e.to_string());
                        return;
                    }
                },
                Ok(None) => return,
                Err(e) => {
                    self.decode_error = Some(e.to_string());
                    return;
                }
            }
        }
    }
}

/// Whether `m` is a command called `name`.
pub fn command_named(m: &Message, name: &str) -> bool {
    matches!(m, Message::Command(c) if c.name == name)
}

/// The `code` of an onStatus (or `_error`) information object.
pub fn status_code(m: &Message) -> Option<String> {
    match m {
        Message::Command(c) if c.name == "onStatus" || c.name == "_error" => c
            .arguments
            .first()
            .and_then(|info| info.property("code"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

/// An AMF0 string as it goes on the wire: marker 0x02, 16-bit length, the bytes as given
/// (UTF-8 or not). Spec: AMF0 §2.4.
pub fn amf0_string_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}
