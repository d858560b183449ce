//! Errors of the RTMP layers: one enum per layer, each variant with the values needed to find
//! the offending bytes (offsets, ids, lengths).

use thiserror::Error;

/// Why a handshake failed. Spec: RTMP 1.0 §5.2.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// C0 names a version other than 3. 6 and 8 are encrypted RTMPE, which is not served; a
    /// letter is usually an HTTP or TLS client on the RTMP port.
    #[error(
        "unsupported RTMP version {version:#04x} in C0 (only 3, plain RTMP, is served; \
         6 and 8 are encrypted RTMPE)"
    )]
    UnsupportedVersion { version: u8 },
    /// The system random source failed while S1/S2 were being filled.
    #[error("the system random source failed while filling S1/S2")]
    RandomUnavailable,
}

/// Why the chunk stream could not be decoded or a message could not be chunked.
/// Spec: RTMP 1.0 §5.3.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChunkError {
    /// A type 1, 2 or 3 chunk header on a chunk stream that never had a type 0 header, so
    /// the fields it leaves out are unknown.
    #[error(
        "chunk header type {fmt} on chunk stream {csid} at byte {offset}, \
         which has no earlier type 0 header to take the missing fields from"
    )]
    NoPreviousHeader { csid: u32, fmt: u8, offset: u64 },
    /// A type 0, 1 or 2 header arrived while a message on the same chunk stream was still
    /// missing bytes (only type 3 chunks may continue a message).
    #[error(
        "chunk header type {fmt} on chunk stream {csid} at byte {offset} while the message \
         in progress there still lacks {missing} bytes"
    )]
    HeaderInsideMessage {
        csid: u32,
        fmt: u8,
        offset: u64,
        missing: u32,
    },
    /// The peer opened more chunk streams than one connection may keep state for.
    #[error(
        "chunk stream {csid} at byte {offset} would be chunk stream number {count}; at most {limit} are kept per connection"
    )]
    TooManyChunkStreams {
        csid: u32,
        offset: u64,
        count: usize,
        limit: usize,
    },
    /// A message longer than the decoder takes at this point of the session (see
    /// [`crate::rtmp::chunk::ChunkDecoder::set_max_message_length`]).
    #[error(
        "message of {length} bytes on chunk stream {csid} at byte {offset} is longer than the \
         {limit} bytes allowed here"
    )]
    MessageTooLong {
        csid: u32,
        offset: u64,
        length: u32,
        limit: u32,
    },
    /// Starting this message would hold more bytes of partly received messages than one
    /// connection may buffer.
    #[error(
        "message of {length} bytes on chunk stream {csid} at byte {offset} would raise the \
         bytes held for partly received messages to {total}, above the limit of {limit}"
    )]
    TooMuchBuffered {
        csid: u32,
        offset: u64,
        length: u32,
        total: u64,
        limit: u64,
    },
    /// Set Chunk Size with value 0 (Spec: RTMP 1.0 §5.4.1: valid sizes start at 1).
    #[error("Set Chunk Size to 0 (the smallest valid chunk size is 1)")]
    ZeroChunkSize,
    /// Set Chunk Size with the top bit set (Spec: RTMP 1.0 §5.4.1: "the first bit MUST be zero").
    #[error("Set Chunk Size value {value:#010x} has the reserved top bit set")]
    ChunkSizeTopBitSet { value: u32 },
    /// A Set Chunk Size or Abort Message whose payload is shorter than its 4-byte field.
    #[error(
        "protocol control message type {type_id} at byte {offset} has {length} payload bytes, 4 needed"
    )]
    ShortControlMessage {
        type_id: u8,
        offset: u64,
        length: usize,
    },
    /// An outgoing message longer than the 24-bit message length field can carry.
    #[error(
        "outgoing message of {length} bytes is longer than the largest RTMP message ({limit} bytes)"
    )]
    OutgoingMessageTooLong { length: usize, limit: u32 },
}

/// Why an AMF0 value could not be decoded or encoded. Spec: AMF0.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Amf0Error {
    /// The input ended inside a value.
    #[error(
        "AMF0 input ends at byte {available} inside a value: {needed} bytes needed at byte {offset}"
    )]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A type marker this decoder does not read (movieclip, recordset, XML, typed object,
    /// AVM+ switch to AMF3, unsupported) or does not know.
    #[error("AMF0 type marker {marker:#04x} at byte {offset} is not supported")]
    UnsupportedMarker { offset: usize, marker: u8 },
    /// An object-end marker outside an object or ECMA array.
    #[error("AMF0 object-end marker at byte {offset} outside an object")]
    UnexpectedObjectEnd { offset: usize },
    /// Objects and arrays nested deeper than the limit.
    #[error("AMF0 value at byte {offset} is nested deeper than {limit} levels")]
    TooDeep { offset: usize, limit: usize },
    /// More values in one input than the limit.
    #[error("AMF0 value at byte {offset} is past the limit of {limit} values per message")]
    TooManyValues { offset: usize, limit: usize },
    /// A string that is not UTF-8.
    #[error("AMF0 string of {length} bytes at byte {offset} is not UTF-8")]
    InvalidUtf8 { offset: usize, length: usize },
    /// A reference to a complex value that has not been decoded (yet).
    #[error(
        "AMF0 reference at byte {offset} to value {index}, but only {known} objects/arrays came before"
    )]
    BadReference {
        offset: usize,
        index: u16,
        known: usize,
    },
    /// A value this encoder cannot write: a string or array longer than its length field.
    #[error("AMF0 {what} of length {length} is longer than its length field allows ({limit})")]
    TooLong {
        what: &'static str,
        length: usize,
        limit: u64,
    },
}

/// Why an RTMP message payload does not match its message type.
/// Spec: RTMP 1.0 §5.4, §6.2, §7.1.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    /// A fixed-size payload (protocol control, user control) is too short.
    #[error("message type {type_id} payload has {length} bytes, at least {needed} needed")]
    TooShort {
        type_id: u8,
        length: usize,
        needed: usize,
    },
    /// A command message whose AMF0 body cannot be read.
    #[error("command message (type {type_id}) body: {source}")]
    CommandBody {
        type_id: u8,
        #[source]
        source: Amf0Error,
    },
    /// A command message that does not start with a name string and a transaction id number.
    #[error("command message (type {type_id}) {problem}")]
    CommandHeader { type_id: u8, problem: &'static str },
    /// An AMF3 command/data message whose first byte does not announce an AMF0 body.
    #[error(
        "message type {type_id} starts with {first:#04x}; only AMF0 bodies (first byte 0x00) are read"
    )]
    Amf3Body { type_id: u8, first: u8 },
}

/// Why a server session ended. Spec: RTMP 1.0 §7.
#[derive(Debug, Error)]
pub enum SessionError {
    /// The chunk stream is invalid.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A message payload is invalid.
    #[error("message at {timestamp_ms} ms on message stream {message_stream_id}: {source}")]
    Message {
        timestamp_ms: u32,
        message_stream_id: u32,
        #[source]
        source: MessageError,
    },
    /// onMetaData whose AMF0 body cannot be read.
    #[error("onMetaData on message stream {message_stream_id}: {source}")]
    Metadata {
        message_stream_id: u32,
        #[source]
        source: Amf0Error,
    },
    /// `connect` named an application this server does not serve; `_error`
    /// NetConnection.Connect.Rejected has been sent.
    #[error("connect to application {app:?} rejected (this server serves {expected:?})")]
    AppRejected { app: String, expected: String },
    /// A command that needs a connection arrived before `connect`.
    #[error("{command} before connect")]
    NotConnected { command: String },
    /// `connect` on a connection that is already connected.
    #[error("second connect on a connected session")]
    AlreadyConnected,
    /// A command without an argument it needs, or with one of the wrong type.
    #[error("{command} command {problem}")]
    MalformedCommand {
        command: String,
        problem: &'static str,
    },
    /// A command on a message stream that createStream never returned.
    #[error("{command} on message stream {message_stream_id}, which createStream never returned")]
    UnknownStream {
        command: String,
        message_stream_id: u32,
    },
    /// More createStream calls than one connection may make.
    #[error("createStream number {count}: at most {limit} streams per connection")]
    TooManyStreams { count: u32, limit: u32 },
    /// `publish` while another publish on this connection is requested or active.
    #[error(
        "publish {stream_key:?} on message stream {message_stream_id} while stream {active_stream_id} is already publishing"
    )]
    SecondPublish {
        stream_key: String,
        message_stream_id: u32,
        active_stream_id: u32,
    },
    /// Audio or video on a message stream that is not an accepted publish.
    #[error(
        "{kind} message at {timestamp_ms} ms on message stream {message_stream_id}, which is not an accepted publish"
    )]
    MediaWithoutPublish {
        kind: &'static str,
        timestamp_ms: u32,
        message_stream_id: u32,
    },
}
