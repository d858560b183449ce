//! The RTMP chunk stream: messages cut into chunks and interleaved on one connection.
//!
//! [`ChunkDecoder`] takes whole chunks from the front of a buffer and reassembles messages;
//! a chunk that has not fully arrived stays in the buffer. A message that fits one chunk is
//! handed out as a view of the input buffer, without a copy. The decoder applies the two
//! protocol control messages that change how chunks are read, Set Chunk Size and Abort
//! Message, before it reads the next chunk, and still hands them on.
//! [`ChunkEncoder`] cuts outgoing messages into chunks.
//!
//! Spec: RTMP 1.0 §5.3 (chunk format §5.3.1, basic header §5.3.1.1, message header types
//! §5.3.1.2, extended timestamp §5.3.1.3), §5.4.1 (Set Chunk Size), §5.4.2 (Abort Message).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::ChunkError;
use super::message::type_id::{ABORT_MESSAGE, SET_CHUNK_SIZE};
use crate::media::RtmpTimestamp;

/// Longest message: what the 24-bit message length field holds (16 MiB - 1). Spec: RTMP 1.0
/// §5.3.1.2.1. No incoming message can be longer; outgoing ones are checked against it.
pub const MAX_MESSAGE_LENGTH: u32 = 0xFF_FFFF;

/// Chunk streams one connection may keep state for. Each costs a header's worth of state for
/// the life of the connection; encoders use three to six (control, commands, audio, video,
/// data).
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Most bytes held for partly received messages on one connection, counted by the lengths
/// their headers announce, before those bytes arrive. One message of the largest length plus
/// as much again for the audio, data and command messages interleaved with it; without this
/// bound 64 chunk streams could each hold a 16 MiB message open.
pub const MAX_BUFFERED_BYTES: u64 = 2 * MAX_MESSAGE_LENGTH as u64;

/// Most bytes reserved at once when a message starts, whatever length it announces: a whole
/// high-bitrate keyframe, while a header alone cannot make the decoder commit megabytes. The
/// buffer grows past this as chunks arrive.
const MAX_PREALLOCATION: usize = 256 * 1024;

/// Timestamp field value announcing that an extended timestamp follows. Spec: RTMP 1.0
/// §5.3.1.3.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// Longest chunk header: 3-byte basic header, type 0 message header, extended timestamp.
const MAX_HEADER_LEN: usize = 3 + 11 + 4;

/// A chunk size in effect: 1 to [`ChunkSize::MAX`] bytes of payload per chunk.
/// Spec: RTMP 1.0 §5.4.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSize(u32);

impl ChunkSize {
    /// The size in both directions until a Set Chunk Size says otherwise.
    pub const DEFAULT: ChunkSize = ChunkSize(128);

    /// Largest size that makes a difference. Spec: RTMP 1.0 §5.4.1: sizes up to 2^31 - 1 are
    /// valid, "however, all sizes greater than 16777215 (0xFFFFFF) are equivalent since no
    /// chunk is larger than one message, and no message is larger than 16777215 bytes".
    pub const MAX: ChunkSize = ChunkSize(0xFF_FFFF);

    /// The size a Set Chunk Size announcing `value` puts in effect: 0 and values with the
    /// reserved top bit set are errors, values above [`ChunkSize::MAX`] are taken as it.
    pub fn new(value: u32) -> Result<ChunkSize, ChunkError> {
        if value == 0 {
            Err(ChunkError::ZeroChunkSize)
        } else if value & 0x8000_0000 != 0 {
            Err(ChunkError::ChunkSizeTopBitSet { value })
        } else {
            Ok(ChunkSize(value.min(Self::MAX.0)))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A chunk stream id. Spec: RTMP 1.0 §5.3.1.1: 2 to 65599; 0 and 1 only appear in the
/// first byte, to select the 2- and 3-byte forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkStreamId(u32);

impl ChunkStreamId {
    /// Lowest id: reserved for protocol control messages (§5.3.1.1).
    pub const PROTOCOL_CONTROL: ChunkStreamId = ChunkStreamId(2);
    /// Highest id the 3-byte basic header can carry.
    pub const MAX: u32 = 65_599;

    /// `id` if it is in 2..=65599.
    pub const fn new(id: u32) -> Option<ChunkStreamId> {
        if id >= Self::PROTOCOL_CONTROL.0 && id <= Self::MAX {
            Some(ChunkStreamId(id))
        } else {
            None
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// The message header fields every message carries (its length is its payload's).
/// Spec: RTMP 1.0 §5.3.1.2, §6.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    pub timestamp: RtmpTimestamp,
    pub message_type_id: u8,
    pub message_stream_id: u32,
}

/// One reassembled message, before its payload is interpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawMessage {
    /// The chunk stream it came on.
    pub chunk_stream_id: ChunkStreamId,
    pub header: MessageHeader,
    pub payload: Bytes,
}

/// What one chunk stream remembers between chunks: the fields later headers may leave out.
#[derive(Debug)]
struct StreamState {
    csid: ChunkStreamId,
    /// Timestamp of the latest message started here.
    timestamp: RtmpTimestamp,
    /// The value of the latest type 0/1/2 header's timestamp field (absolute for type 0, a
    /// delta for 1 and 2), resolved through the extended timestamp. A type 3 chunk that
    /// starts a message adds it as the delta (as ffmpeg and librtmp write them).
    timestamp_field: u32,
    /// The latest type 0/1/2 header carried an extended timestamp, so type 3 chunks do too.
    extended: bool,
    message_length: u32,
    message_type_id: u8,
    message_stream_id: u32,
    /// Bytes received of the message in progress, if one is.
    partial: Option<BytesMut>,
}

/// What the header at the front of the input says, worked out before anything is consumed.
#[derive(Debug)]
struct ChunkPlan {
    fmt: u8,
    csid: ChunkStreamId,
    stream_index: Option<usize>,
    /// Basic header, message header and extended timestamp.
    header_len: usize,
    payload_len: usize,
    starts_message: bool,
    timestamp_field: u32,
    extended: bool,
    message_length: u32,
    message_type_id: u8,
    message_stream_id: u32,
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reassembles messages from incoming chunks.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: ChunkSize,
    streams: Vec<StreamState>,
    /// Announced lengths of the messages in progress (bounded by [`MAX_BUFFERED_BYTES`]).
    buffered: u64,
    /// Bytes consumed so far: the offset that errors report.
    position: u64,
    /// Longest message accepted now.
    max_message_length: u32,
}

impl Default for ChunkDecoder {
    fn default() -> ChunkDecoder {
        ChunkDecoder::new()
    }
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder {
            chunk_size: ChunkSize::DEFAULT,
            streams: Vec::new(),
            buffered: 0,
            position: 0,
            max_message_length: MAX_MESSAGE_LENGTH,
        }
    }

    /// Sets the longest message accepted from now on (at most [`MAX_MESSAGE_LENGTH`]): a
    /// session keeps it small until the peer has earned more, so a client that has not yet
    /// been allowed to publish cannot make the server hold large messages.
    pub fn set_max_message_length(&mut self, limit: u32) {
        self.max_message_length = limit.min(MAX_MESSAGE_LENGTH);
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Consumes whole chunks from the front of `input` until a message is complete and
    /// returns it; `Ok(None)` when the chunks in `input` do not complete one (the rest of a
    /// partial chunk stays in `input`). Set Chunk Size and Abort Message take effect before
    /// the next chunk is read.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            let Some(plan) = self.plan(input)? else {
                return Ok(None);
            };
            let offset = self.position;
            if let Some(message) = self.consume(plan, input) {
                self.apply_control(&message, offset)?;
                return Ok(Some(message));
            }
        }
    }

    /// Reads the chunk header at the front of `input` without consuming anything. `None`
    /// until the whole chunk (header and payload) is there.
    fn plan(&self, input: &[u8]) -> Result<Option<ChunkPlan>, ChunkError> {
        let offset = self.position;
        let Some(&first) = input.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        // Spec: RTMP 1.0 §5.3.1.1: 0 and 1 in the low six bits select the 2- and 3-byte forms.
        let (csid, basic_len) = match first & 0x3f {
            0 => match input.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match input.get(1..3) {
                Some(b) => (64 + u32::from(b[0]) + 256 * u32::from(b[1]), 3),
                None => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let csid = ChunkStreamId(csid);
        let stream_index = self.streams.iter().position(|s| s.csid == csid);
        let state = stream_index.and_then(|i| self.streams.get(i));
        let state = match state {
            Some(state) => Some(state),
            None if fmt != 0 => {
                return Err(ChunkError::NoPreviousHeader {
                    csid: csid.0,
                    fmt,
                    offset,
                });
            }
            None if self.streams.len() >= MAX_CHUNK_STREAMS => {
                return Err(ChunkError::TooManyChunkStreams {
                    csid: csid.0,
                    offset,
                    count: self.streams.len() + 1,
                    limit: MAX_CHUNK_STREAMS,
                });
            }
            None => None,
        };
        if let Some(s) = state
            && let Some(partial) = &s.partial
            && fmt != 3
        {
            return Err(ChunkError::HeaderInsideMessage {
                csid: csid.0,
                fmt,
                offset,
                missing: s.message_length - partial.len() as u32,
            });
        }

        // Spec: RTMP 1.0 §5.3.1.2.1-4: 11, 7, 3 or 0 bytes.
        let message_header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(mh) = input.get(basic_len..basic_len + message_header_len) else {
            return Ok(None);
        };
        let field = if fmt < 3 { be24(mh) } else { 0 };
        let extended = match state {
            Some(s) if fmt == 3 => s.extended,
            _ => field == EXTENDED_TIMESTAMP,
        };
        let ext_start = basic_len + message_header_len;
        let header_len = ext_start + if extended { 4 } else { 0 };
        let timestamp_field = if extended {
            // Spec: RTMP 1.0 §5.3.1.3: the full 32-bit timestamp or delta.
            match input.get(ext_start..header_len) {
                Some(ext) => be32(ext),
                None => return Ok(None),
            }
        } else {
            field
        };
        let (message_length, message_type_id, message_stream_id) = match (fmt, state) {
            (0, _) => (
                be24(&mh[3..6]),
                mh[6],
                u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]),
            ),
            (1, Some(s)) => (be24(&mh[3..6]), mh[6], s.message_stream_id),
            (_, Some(s)) => (s.message_length, s.message_type_id, s.message_stream_id),
            // A type 1-3 header without state was refused above.
            (_, None) => {
                return Err(ChunkError::NoPreviousHeader {
                    csid: csid.0,
                    fmt,
                    offset,
                });
            }
        };
        if message_length > self.max_message_length {
            return Err(ChunkError::MessageTooLong {
                csid: csid.0,
                offset,
                length: message_length,
                limit: self.max_message_length,
            });
        }
        let received = state.and_then(|s| s.partial.as_ref()).map(BytesMut::len);
        let remaining = match received {
            Some(received) => message_length as usize - received,
            None => message_length as usize,
        };
        let payload_len = remaining.min(self.chunk_size.0 as usize);
        let starts_message = received.is_none();
        if starts_message && payload_len < remaining {
            let total = self.buffered + u64::from(message_length);
            if total > MAX_BUFFERED_BYTES {
                return Err(ChunkError::TooMuchBuffered {
                    csid: csid.0,
                    offset,
                    length: message_length,
                    total,
                    limit: MAX_BUFFERED_BYTES,
                });
            }
        }
        if input.len() < header_len + payload_len {
            return Ok(None);
        }
        Ok(Some(ChunkPlan {
            fmt,
            csid,
            stream_index,
            header_len,
            payload_len,
            starts_message,
            timestamp_field,
            extended,
            message_length,
            message_type_id,
            message_stream_id,
        }))
    }

    /// Consumes the chunk `plan` describes; the message, if the chunk completes one.
    fn consume(&mut self, plan: ChunkPlan, input: &mut BytesMut) -> Option<RawMessage> {
        input.advance(plan.header_len);
        self.position += (plan.header_len + plan.payload_len) as u64;
        let index = match plan.stream_index {
            Some(i) => i,
            None => {
                self.streams.push(StreamState {
                    csid: plan.csid,
                    timestamp: RtmpTimestamp(0),
                    timestamp_field: 0,
                    extended: false,
                    message_length: 0,
                    message_type_id: 0,
                    message_stream_id: 0,
                    partial: None,
                });
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[index];
        if plan.starts_message {
            // Spec: RTMP 1.0 §5.3.1.2: type 0 carries the absolute timestamp, types 1 and 2 a
            // delta from the previous message on the chunk stream, type 3 reuses that delta.
            s.timestamp = match plan.fmt {
                0 => RtmpTimestamp(plan.timestamp_field),
                1 | 2 => s.timestamp.wrapping_add(plan.timestamp_field),
                _ => s.timestamp.wrapping_add(s.timestamp_field),
            };
            if plan.fmt < 3 {
                s.timestamp_field = plan.timestamp_field;
                s.extended = plan.extended;
            }
            s.message_length = plan.message_length;
            s.message_type_id = plan.message_type_id;
            s.message_stream_id = plan.message_stream_id;
        }
        let header = MessageHeader {
            timestamp: s.timestamp,
            message_type_id: s.message_type_id,
            message_stream_id: s.message_stream_id,
        };
        let length = s.message_length as usize;
        let payload = if plan.starts_message && plan.payload_len == length {
            // The whole message is in this chunk: a view of the input, no copy.
            input.split_to(plan.payload_len).freeze()
        } else {
            let partial = s.partial.get_or_insert_with(|| {
                self.buffered += length as u64;
                BytesMut::with_capacity(length.min(MAX_PREALLOCATION))
            });
            partial.extend_from_slice(&input[..plan.payload_len]);
            input.advance(plan.payload_len);
            if partial.len() < length {
                return None;
            }
            self.buffered -= length as u64;
            s.partial.take()?.freeze()
        };
        Some(RawMessage {
            chunk_stream_id: s.csid,
            header,
            payload,
        })
    }

    /// Applies Set Chunk Size and Abort Message. Spec: RTMP 1.0 §5.4.1, §5.4.2.
    fn apply_control(&mut self, message: &RawMessage, offset: u64) -> Result<(), ChunkError> {
        let type_id = message.header.message_type_id;
        if type_id != SET_CHUNK_SIZE && type_id != ABORT_MESSAGE {
            return Ok(());
        }
        let Some(field) = message.payload.get(..4) else {
            return Err(ChunkError::ShortControlMessage {
                type_id,
                offset,
                length: message.payload.len(),
            });
        };
        let value = be32(field);
        if type_id == SET_CHUNK_SIZE {
            self.chunk_size = ChunkSize::new(value)?;
            tracing::debug!(chunk_size = self.chunk_size.0, "peer set its chunk size");
        } else {
            self.abort(value);
        }
        Ok(())
    }

    /// Drops the partly received message on chunk stream `csid`, if there is one.
    fn abort(&mut self, csid: u32) {
        if let Some(s) = self.streams.iter_mut().find(|s| s.csid.0 == csid)
            && let Some(partial) = s.partial.take()
        {
            tracing::debug!(csid, dropped = partial.len(), "peer aborted a message");
            self.buffered -= u64::from(s.message_length);
        }
    }
}

/// The message header a message's first chunk carries: type 0 states every field; types 1
/// to 3 leave out what repeats the previous message on the same chunk stream, and carry the
/// timestamp as a delta from it. Continuation chunks are always type 3.
/// Spec: RTMP 1.0 §5.3.1.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageHeaderType {
    /// Type 0 (11 bytes): absolute timestamp, message length, type id and stream id.
    /// Spec: RTMP 1.0 §5.3.1.2.1.
    Type0,
    /// Type 1 (7 bytes): timestamp delta, message length and type id; same message stream.
    /// Spec: RTMP 1.0 §5.3.1.2.2.
    Type1 { timestamp_delta: u32 },
    /// Type 2 (3 bytes): timestamp delta; same message stream, length and type id.
    /// Spec: RTMP 1.0 §5.3.1.2.3.
    Type2 { timestamp_delta: u32 },
    /// Type 3 (no message header): every field and the timestamp delta as the previous
    /// message's (after a type 0 header, its timestamp acts as the delta).
    /// Spec: RTMP 1.0 §5.3.1.2.4.
    Type3 { timestamp_delta: u32 },
}

impl MessageHeaderType {
    /// The `fmt` field of the basic header. Spec: RTMP 1.0 §5.3.1.1.
    fn fmt(self) -> u8 {
        match self {
            MessageHeaderType::Type0 => 0,
            MessageHeaderType::Type1 { .. } => 1,
            MessageHeaderType::Type2 { .. } => 2,
            MessageHeaderType::Type3 { .. } => 3,
        }
    }

    /// The value of the timestamp field, or of the extended timestamp when it does not fit.
    fn timestamp_field(self, header: &MessageHeader) -> u32 {
        match self {
            MessageHeaderType::Type0 => header.timestamp.0,
            MessageHeaderType::Type1 { timestamp_delta }
            | MessageHeaderType::Type2 { timestamp_delta }
            | MessageHeaderType::Type3 { timestamp_delta } => timestamp_delta,
        }
    }
}

/// One chunk's header bytes.
#[derive(Clone, Copy, Debug)]
struct HeaderBytes {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl HeaderBytes {
    /// The header of a message's first chunk (`first`, of type `header_type`) or of a type 3
    /// continuation chunk.
    fn new(
        csid: ChunkStreamId,
        header: &MessageHeader,
        header_type: MessageHeaderType,
        length: u32,
        first: bool,
    ) -> HeaderBytes {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let mut len = 0;
        let mut put = |b: &[u8]| {
            bytes[len..len + b.len()].copy_from_slice(b);
            len += b.len();
        };
        let fmt = if first { header_type.fmt() } else { 3 };
        // Spec: RTMP 1.0 §5.3.1.1.
        let id = csid.get();
        match id {
            2..=63 => put(&[fmt << 6 | id as u8]),
            64..=319 => put(&[fmt << 6, (id - 64) as u8]),
            _ => put(&[fmt << 6 | 1, (id - 64) as u8, ((id - 64) >> 8) as u8]),
        }
        let timestamp = header_type.timestamp_field(header);
        let extended = timestamp >= EXTENDED_TIMESTAMP;
        // Spec: RTMP 1.0 §5.3.1.2.1-3: timestamp (or delta), then for types 0 and 1 the
        // length and type id, then for type 0 the little-endian message stream id.
        if fmt < 3 {
            put(&timestamp.min(EXTENDED_TIMESTAMP).to_be_bytes()[1..]);
        }
        if fmt < 2 {
            put(&length.to_be_bytes()[1..]);
            put(&[header.message_type_id]);
        }
        if fmt == 0 {
            put(&header.message_stream_id.to_le_bytes());
        }
        if extended {
            // Spec: RTMP 1.0 §5.3.1.3; repeated on type 3 chunks, as ffmpeg and librtmp read them.
            put(&timestamp.to_be_bytes());
        }
        HeaderBytes { bytes, len }
    }
}

/// One outgoing chunk: header and a slice of the message payload.
#[derive(Clone, Copy, Debug)]
pub struct Chunk<'a> {
    header: HeaderBytes,
    payload: &'a [u8],
}

impl Chunk<'_> {
    /// Appends the chunk to `out`.
    pub fn write_to(&self, out: &mut BytesMut) {
        out.put_slice(&self.header.bytes[..self.header.len]);
        out.put_slice(self.payload);
    }

    /// Bytes the chunk takes on the wire.
    fn wire_len(&self) -> usize {
        self.header.len + self.payload.len()
    }
}

/// The chunks of one message, in order: a type 0 chunk then type 3 chunks.
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    first: Option<HeaderBytes>,
    continuation: HeaderBytes,
    payload: &'a [u8],
    chunk_size: usize,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Chunk<'a>;

    fn next(&mut self) -> Option<Chunk<'a>> {
        let header = match self.first.take() {
            Some(first) => first,
            None if self.payload.is_empty() => return None,
            None => self.continuation,
        };
        let (payload, rest) = self
            .payload
            .split_at(self.chunk_size.min(self.payload.len()));
        self.payload = rest;
        Some(Chunk { header, payload })
    }
}

/// Cuts outgoing messages into chunks of the chunk size this side announced.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: ChunkSize,
}

impl Default for ChunkEncoder {
    fn default() -> ChunkEncoder {
        ChunkEncoder::new()
    }
}

impl ChunkEncoder {
    pub fn new() -> ChunkEncoder {
        ChunkEncoder {
            chunk_size: ChunkSize::DEFAULT,
        }
    }

    /// The chunk size outgoing messages are cut to.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Changes the chunk size for the messages chunked from now on; call it right after
    /// chunking the Set Chunk Size message that announces it (which itself goes out with the
    /// old size).
    pub fn set_chunk_size(&mut self, chunk_size: ChunkSize) {
        self.chunk_size = chunk_size;
    }

    /// The chunks carrying one message: a type 0 chunk, then type 3 chunks. Interleaving
    /// chunks of several messages (on different chunk streams) is allowed.
    pub fn chunks<'a>(
        &self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        payload: &'a [u8],
    ) -> Result<Chunks<'a>, ChunkError> {
        self.chunks_as(csid, header, MessageHeaderType::Type0, payload)
    }

    /// The chunks carrying one message whose first chunk has a header of `header_type`,
    /// then type 3 chunks. The caller picks a type that agrees with the previous message it
    /// sent on `csid` (what a type 1-3 header leaves out is taken from it).
    pub fn chunks_as<'a>(
        &self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        header_type: MessageHeaderType,
        payload: &'a [u8],
    ) -> Result<Chunks<'a>, ChunkError> {
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= MAX_MESSAGE_LENGTH)
            .ok_or(ChunkError::OutgoingMessageTooLong {
                length: payload.len(),
                limit: MAX_MESSAGE_LENGTH,
            })?;
        Ok(Chunks {
            first: Some(HeaderBytes::new(csid, header, header_type, length, true)),
            continuation: HeaderBytes::new(csid, header, header_type, length, false),
            payload,
            chunk_size: self.chunk_size.0 as usize,
        })
    }

    /// Appends the chunks of one message to `out`.
    pub fn write_message(
        &self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ChunkError> {
        self.write_message_as(csid, header, MessageHeaderType::Type0, payload, out)
    }

    /// Appends the chunks of one message to `out`, the first with a header of
    /// `header_type` (see [`ChunkEncoder::chunks_as`]).
    pub fn write_message_as(
        &self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        header_type: MessageHeaderType,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), ChunkError> {
        let chunks = self.chunks_as(csid, header, header_type, payload)?;
        let total: usize = chunks.clone().map(|c| c.wire_len()).sum();
        out.reserve(total);
        for chunk in chunks {
            chunk.write_to(out);
        }
        Ok(())
    }

    /// Lays out one message of `length` payload bytes as chunks without touching the
    /// payload: `piece` gets each chunk header's bytes, and each run of payload bytes as a
    /// range of the payload, in wire order (type 0, then type 3 chunks, as
    /// [`ChunkEncoder::write_message`] writes them). For writers that send a payload from
    /// where it lies.
    pub fn lay_out_message(
        &self,
        csid: ChunkStreamId,
        header: &MessageHeader,
        length: usize,
        mut piece: impl FnMut(ChunkPiece<'_>),
    ) -> Result<(), ChunkError> {
        let wire_length = u32::try_from(length)
            .ok()
            .filter(|&l| l <= MAX_MESSAGE_LENGTH)
            .ok_or(ChunkError::OutgoingMessageTooLong {
                length,
                limit: MAX_MESSAGE_LENGTH,
            })?;
        let kind = MessageHeaderType::Type0;
        let first = HeaderBytes::new(csid, header, kind, wire_length, true);
        let continuation = HeaderBytes::new(csid, header, kind, wire_length, false);
        let chunk_size = self.chunk_size.0 as usize;
        piece(ChunkPiece::Header(&first.bytes[..first.len]));
        let mut at = 0;
        while at < length {
            if at > 0 {
                piece(ChunkPiece::Header(&continuation.bytes[..continuation.len]));
            }
            let end = (at + chunk_size).min(length);
            piece(ChunkPiece::Payload(at..end));
            at = end;
        }
        Ok(())
    }
}

/// A piece of a message laid out as chunks ([`ChunkEncoder::lay_out_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkPiece<'a> {
    /// A chunk header's bytes.
    Header(&'a [u8]),
    /// A run of the message's payload, by offset.
    Payload(std::ops::Range<usize>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use hex::FromHex;

    #[test]
    fn a_laid_out_message_is_the_written_message() {
        for chunk_size in [1, 2, 3, 7, 128, 4096] {
            let mut encoder = ChunkEncoder::new();
            encoder.set_chunk_size(ChunkSize::new(chunk_size).unwrap());
            let header = MessageHeader {
                timestamp: RtmpTimestamp(0x0100_0000),
                message_type_id: 9,
                message_stream_id: 1,
            };
            let csid = ChunkStreamId::new(7).unwrap();
            for len in [0, 1, 5, 300] {
                let payload: Vec<u8> = (0..len).map(|x| x as u8).collect();
                let mut written = BytesMut::new();
                encoder
                    .write_message(csid, &header, &payload, &mut written)
                    .unwrap();
                let mut laid_out = Vec::new();
                encoder
                    .lay_out_message(csid, &header, len, |piece| match piece {
                        ChunkPiece::Header(h) => laid_out.extend_from_slice(h),
                        ChunkPiece::Payload(r) => laid_out.extend_from_slice(&payload[r]),
                    })
                    .unwrap();
                assert_eq!(laid_out, written, "chunk size {chunk_size}, {len} bytes");
            }
        }
    }

    fn bytes(hex: &str) -> Vec<u8> {
        Vec::from_hex(hex.replace(' ', "")).expect("test vector is hex")
    }

    fn csid(id: u32) -> ChunkStreamId {
        ChunkStreamId::new(id).expect("valid chunk stream id")
    }

    fn msg(csid_: u32, timestamp: u32, type_id: u8, stream: u32, payload: &[u8]) -> RawMessage {
        RawMessage {
            chunk_stream_id: csid(csid_),
            header: MessageHeader {
                timestamp: RtmpTimestamp(timestamp),
                message_type_id: type_id,
                message_stream_id: stream,
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// Decodes `pieces` fed one after another into a fresh decoder, draining after each.
    fn decode_pieces(pieces: &[&[u8]]) -> Result<(Vec<RawMessage>, usize), ChunkError> {
        let mut decoder = ChunkDecoder::new();
        let mut input = BytesMut::new();
        let mut messages = Vec::new();
        for piece in pieces {
            input.extend_from_slice(piece);
            while let Some(m) = decoder.decode(&mut input)? {
                messages.push(m);
            }
        }
        Ok((messages, input.len()))
    }

    /// Decodes `wire` whole, split at every byte, and byte by byte; all must agree. Returns
    /// the messages; asserts that nothing is left over.
    fn decode_every_way(wire: &[u8]) -> Vec<RawMessage> {
        let (whole, left) = decode_pieces(&[wire]).expect("valid chunk stream");
        assert_eq!(left, 0, "bytes left over");
        for split in 0..=wire.len() {
            let (messages, left) =
                decode_pieces(&[&wire[..split], &wire[split..]]).expect("valid chunk stream");
            assert_eq!(messages, whole, "split at {split}");
            assert_eq!(left, 0, "split at {split}");
        }
        let pieces: Vec<&[u8]> = wire.chunks(1).collect();
        let (messages, left) = decode_pieces(&pieces).expect("valid chunk stream");
        assert_eq!(messages, whole, "byte by byte");
        assert_eq!(left, 0);
        whole
    }

    /// The first decoding error of `wire`, fed whole and split at every byte.
    fn decode_error(wire: &[u8]) -> ChunkError {
        let err = decode_pieces(&[wire]).expect_err("invalid chunk stream");
        for split in 0..=wire.len() {
            let e = decode_pieces(&[&wire[..split], &wire[split..]]).expect_err("invalid");
            assert_eq!(e, err, "split at {split}");
        }
        err
    }

    #[test]
    fn type_0_single_chunk_is_zero_copy() {
        // csid 3, timestamp 1000, length 4, type 20, stream 1 (little endian).
        let wire = bytes("03 0003e8 000004 14 01000000 deadbeef");
        assert_eq!(
            decode_every_way(&wire),
            vec![msg(3, 1000, 20, 1, &bytes("deadbeef"))]
        );
        let mut input = BytesMut::from(&wire[..]);
        let start = input.as_ptr() as usize;
        let m = ChunkDecoder::new()
            .decode(&mut input)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            m.payload.as_ptr() as usize,
            start + 12,
            "payload is a view of the input"
        );
    }

    #[test]
    fn spec_example_1_types_0_2_3() {
        // Spec: RTMP 1.0 §5.3.2.1: four audio messages of 32 bytes, 20 ms apart.
        let p = [0x11u8; 32];
        let mut wire = bytes("03 0003e8 000020 08 39300000");
        wire.extend_from_slice(&p);
        wire.extend_from_slice(&bytes("83 000014"));
        wire.extend_from_slice(&p);
        wire.push(0xc3);
        wire.extend_from_slice(&p);
        wire.push(0xc3);
        wire.extend_from_slice(&p);
        assert_eq!(
            decode_every_way(&wire),
            vec![
                msg(3, 1000, 8, 12345, &p),
                msg(3, 1020, 8, 12345, &p),
                msg(3, 1040, 8, 12345, &p),
                msg(3, 1060, 8, 12345, &p),
            ]
        );
    }

    #[test]
    fn encoder_writes_spec_example_1_with_types_0_2_3() {
        // Spec: RTMP 1.0 §5.3.2.1, written by the encoder: the same bytes the decoder reads
        // in spec_example_1_types_0_2_3.
        let p = [0x11u8; 32];
        let encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        for (timestamp, header_type) in [
            (1000, MessageHeaderType::Type0),
            (
                1020,
                MessageHeaderType::Type2 {
                    timestamp_delta: 20,
                },
            ),
            (
                1040,
                MessageHeaderType::Type3 {
                    timestamp_delta: 20,
                },
            ),
            (
                1060,
                MessageHeaderType::Type3 {
                    timestamp_delta: 20,
                },
            ),
        ] {
            let header = MessageHeader {
                timestamp: RtmpTimestamp(timestamp),
                message_type_id: 8,
                message_stream_id: 12345,
            };
            encoder
                .write_message_as(csid(3), &header, header_type, &p, &mut out)
                .expect("small");
        }
        let mut wire = bytes("03 0003e8 000020 08 39300000");
        wire.extend_from_slice(&p);
        wire.extend_from_slice(&bytes("83 000014"));
        wire.extend_from_slice(&p);
        wire.push(0xc3);
        wire.extend_from_slice(&p);
        wire.push(0xc3);
        wire.extend_from_slice(&p);
        assert_eq!(&out[..], &wire[..]);
    }

    #[test]
    fn encoder_type_1_and_extended_deltas_round_trip() {
        // Type 1 golden bytes: delta 5, length 3, type 9, no stream id.
        let header = |timestamp: u32, type_id: u8| MessageHeader {
            timestamp: RtmpTimestamp(timestamp),
            message_type_id: type_id,
            message_stream_id: 7,
        };
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        encoder
            .write_message_as(
                csid(5),
                &header(21, 9),
                MessageHeaderType::Type1 { timestamp_delta: 5 },
                &bytes("bbbbbb"),
                &mut out,
            )
            .expect("small");
        assert_eq!(&out[..], &bytes("45 000005 000003 09 bbbbbb")[..]);

        // Deltas at and above 0xffffff go in the extended timestamp, on every chunk of the
        // message, and the decoder adds them; timestamps wrap past 2^32.
        encoder.set_chunk_size(ChunkSize(2));
        let mut out = BytesMut::new();
        let messages = [
            (0xffff_fff0u32, MessageHeaderType::Type0, 8u8, "0102"),
            (
                0xffff_fff0u32.wrapping_add(0xff_ffff),
                MessageHeaderType::Type1 {
                    timestamp_delta: 0xff_ffff,
                },
                9,
                "030405",
            ),
            (
                0xffff_fff0u32.wrapping_add(2 * 0xff_ffff),
                MessageHeaderType::Type3 {
                    timestamp_delta: 0xff_ffff,
                },
                9,
                "060708",
            ),
            (
                0xffff_fff0u32.wrapping_add(2 * 0xff_ffff + 0x20),
                MessageHeaderType::Type2 {
                    timestamp_delta: 0x20,
                },
                9,
                "090a0b",
            ),
        ];
        for (timestamp, header_type, type_id, payload) in messages {
            encoder
                .write_message_as(
                    csid(5),
                    &header(timestamp, type_id),
                    header_type,
                    &bytes(payload),
                    &mut out,
                )
                .expect("small");
        }
        assert_eq!(
            &out[..18],
            &bytes("05 ffffff 000002 08 07000000 fffffff0 0102")[..],
            "type 0 with an extended timestamp"
        );
        assert_eq!(
            &out[18..38],
            &bytes("45 ffffff 000003 09 00ffffff 0304 c5 00ffffff 05")[..],
            "type 1 with an extended delta, continued by a type 3 chunk repeating it"
        );
        let wire = [bytes("02 000000 000004 01 00000000 00000002"), out.to_vec()].concat();
        let decoded = decode_every_way(&wire);
        let expected: Vec<RawMessage> = messages
            .iter()
            .map(|&(timestamp, _, type_id, payload)| msg(5, timestamp, type_id, 7, &bytes(payload)))
            .collect();
        assert_eq!(decoded[1..], expected[..]);
    }

    #[test]
    fn spec_example_2_message_over_three_chunks() {
        // Spec: RTMP 1.0 §5.3.2.2: a 307-byte video message in chunks of 128.
        let p: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
        let mut wire = bytes("04 0003e8 000133 09 39300000");
        wire.extend_from_slice(&p[..128]);
        wire.push(0xc4);
        wire.extend_from_slice(&p[128..256]);
        wire.push(0xc4);
        wire.extend_from_slice(&p[256..]);
        assert_eq!(decode_every_way(&wire), vec![msg(4, 1000, 9, 12345, &p)]);
    }

    #[test]
    fn type_1_changes_length_and_type_keeps_stream() {
        let mut wire = bytes("05 000010 000002 08 07000000 aaaa");
        wire.extend_from_slice(&bytes("45 000005 000003 09 bbbbbb"));
        wire.extend_from_slice(&bytes("85 000005 cccccc"));
        wire.extend_from_slice(&bytes("c5 dddddd"));
        assert_eq!(
            decode_every_way(&wire),
            vec![
                msg(5, 16, 8, 7, &bytes("aaaa")),
                msg(5, 21, 9, 7, &bytes("bbbbbb")),
                msg(5, 26, 9, 7, &bytes("cccccc")),
                msg(5, 31, 9, 7, &bytes("dddddd")),
            ]
        );
    }

    #[test]
    fn type_3_after_type_0_reuses_the_timestamp_as_delta() {
        // As ffmpeg writes it: a type 0 at 40 then a type 3 means delta 40 again.
        let wire = bytes("06 000028 000001 08 01000000 aa c6 bb");
        assert_eq!(
            decode_every_way(&wire),
            vec![
                msg(6, 40, 8, 1, &bytes("aa")),
                msg(6, 80, 8, 1, &bytes("bb"))
            ]
        );
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        let cases = [
            (64u32, "00 00"),
            (319, "00 ff"),
            (320, "01 00 01"),
            (65_599, "01 ff ff"),
        ];
        for (id, basic) in cases {
            let mut wire = bytes(basic);
            wire.extend_from_slice(&bytes("000001 000001 12 00000000 ee"));
            assert_eq!(
                decode_every_way(&wire),
                vec![msg(id, 1, 18, 0, &[0xee])],
                "csid {id}"
            );
        }
        // Type 3 on the 3-byte form.
        let mut wire = bytes("01 00 01 000001 000002 12 00000000 ee");
        wire.extend_from_slice(&bytes("c1 00 01 ff"));
        let mut decoder = ChunkDecoder::new();
        decoder.chunk_size = ChunkSize(1);
        let mut input = BytesMut::from(&wire[..]);
        let m = decoder
            .decode(&mut input)
            .expect("valid")
            .expect("complete");
        assert_eq!(m, msg(320, 1, 18, 0, &bytes("eeff")));
    }

    #[test]
    fn extended_timestamp_on_type_0_and_its_type_3_chunks() {
        // Timestamp 0x01000000, 130 bytes in chunks of 128: the type 3 chunk repeats it.
        let p = [0x22u8; 130];
        let mut wire = bytes("04 ffffff 000082 09 01000000 01000000");
        wire.extend_from_slice(&p[..128]);
        wire.extend_from_slice(&bytes("c4 01000000"));
        wire.extend_from_slice(&p[128..]);
        // A type 3 chunk starting the next message: extended delta 0x01000000 again.
        wire.extend_from_slice(&bytes("c4 01000000"));
        wire.extend_from_slice(&p[..128]);
        wire.extend_from_slice(&bytes("c4 01000000"));
        wire.extend_from_slice(&p[128..]);
        assert_eq!(
            decode_every_way(&wire),
            vec![msg(4, 0x0100_0000, 9, 1, &p), msg(4, 0x0200_0000, 9, 1, &p)]
        );
    }

    #[test]
    fn extended_delta_on_types_1_and_2() {
        let mut wire = bytes("07 000000 000001 08 01000000 01");
        wire.extend_from_slice(&bytes("47 ffffff 000001 08 00ffffff 02"));
        wire.extend_from_slice(&bytes("87 ffffff 00000010 03"));
        // Back to a short delta: type 3 chunks carry no extended field any more.
        wire.extend_from_slice(&bytes("87 000001 04 c7 05"));
        assert_eq!(
            decode_every_way(&wire),
            vec![
                msg(7, 0, 8, 1, &[1]),
                msg(7, 0xff_ffff, 8, 1, &[2]),
                msg(7, 0x100_000f, 8, 1, &[3]),
                msg(7, 0x100_0010, 8, 1, &[4]),
                msg(7, 0x100_0011, 8, 1, &[5]),
            ]
        );
    }

    #[test]
    fn timestamps_wrap() {
        let wire = bytes("08 ffffff 000001 08 01000000 fffffff0 01 88 000020 02");
        assert_eq!(
            decode_every_way(&wire),
            vec![msg(8, 0xffff_fff0, 8, 1, &[1]), msg(8, 0x10, 8, 1, &[2])]
        );
    }

    #[test]
    fn interleaved_chunk_streams() {
        // Video (csid 6, 200 bytes) and audio (csid 4, 150 bytes) chunks alternate.
        let v: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        let a = [0x33u8; 150];
        let mut wire = bytes("06 000000 0000c8 09 01000000");
        wire.extend_from_slice(&v[..128]);
        wire.extend_from_slice(&bytes("04 000000 000096 08 01000000"));
        wire.extend_from_slice(&a[..128]);
        wire.push(0xc6);
        wire.extend_from_slice(&v[128..]);
        wire.push(0xc4);
        wire.extend_from_slice(&a[128..]);
        assert_eq!(
            decode_every_way(&wire),
            vec![msg(6, 0, 9, 1, &v), msg(4, 0, 8, 1, &a)]
        );
    }

    #[test]
    fn set_chunk_size_applies_to_the_next_chunk() {
        // Set Chunk Size 200 on csid 2, then a 300-byte message in chunks of 200.
        let p = [0x44u8; 300];
        let mut wire = bytes("02 000000 000004 01 00000000 000000c8");
        wire.extend_from_slice(&bytes("06 000000 00012c 09 01000000"));
        wire.extend_from_slice(&p[..200]);
        wire.push(0xc6);
        wire.extend_from_slice(&p[200..]);
        let messages = decode_every_way(&wire);
        assert_eq!(
            messages,
            vec![msg(2, 0, 1, 0, &bytes("000000c8")), msg(6, 0, 9, 1, &p)]
        );
    }

    #[test]
    fn set_chunk_size_mid_message() {
        // A message in progress on csid 6 continues with the new size.
        let p = [0x55u8; 400];
        let mut wire = bytes("06 000000 000190 09 01000000");
        wire.extend_from_slice(&p[..128]);
        wire.extend_from_slice(&bytes("02 000000 000004 01 00000000 00001000"));
        wire.push(0xc6);
        wire.extend_from_slice(&p[128..]);
        let messages = decode_every_way(&wire);
        assert_eq!(messages[1], msg(6, 0, 9, 1, &p));
    }

    #[test]
    fn chunk_size_limits() {
        for (value, expected) in [
            (0u32, Err(ChunkError::ZeroChunkSize)),
            (
                0x8000_0000,
                Err(ChunkError::ChunkSizeTopBitSet { value: 0x8000_0000 }),
            ),
            (
                0xffff_ffff,
                Err(ChunkError::ChunkSizeTopBitSet { value: 0xffff_ffff }),
            ),
            (1, Ok(1)),
            (0xff_ffff, Ok(0xff_ffff)),
            (0x100_0000, Ok(ChunkSize::MAX.get())),
            (0x7fff_ffff, Ok(ChunkSize::MAX.get())),
        ] {
            let mut wire = bytes("02 000000 000004 01 00000000");
            wire.extend_from_slice(&value.to_be_bytes());
            let mut decoder = ChunkDecoder::new();
            let mut input = BytesMut::from(&wire[..]);
            let result = decoder
                .decode(&mut input)
                .map(|_| decoder.chunk_size().get());
            assert_eq!(result, expected, "Set Chunk Size {value:#x}");
            assert_eq!(ChunkSize::new(value).map(ChunkSize::get), expected);
        }
        let wire = bytes("02 000000 000002 01 00000000 0001");
        assert_eq!(
            decode_error(&wire),
            ChunkError::ShortControlMessage {
                type_id: 1,
                offset: 0,
                length: 2
            }
        );
    }

    #[test]
    fn chunk_size_one() {
        let mut wire = bytes("02 000000 000004 01 00000000 00000001");
        wire.extend_from_slice(&bytes("06 000000 000003 09 01000000 aa c6 bb c6 cc"));
        let messages = decode_every_way(&wire);
        assert_eq!(messages[1], msg(6, 0, 9, 1, &bytes("aabbcc")));
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut wire = bytes("06 000000 000100 09 01000000");
        wire.extend_from_slice(&[0x66; 128]);
        // Abort Message for csid 6, then a new message starts there with a type 0 header.
        wire.extend_from_slice(&bytes("02 000000 000004 02 00000000 00000006"));
        wire.extend_from_slice(&bytes("06 000001 000001 08 01000000 77"));
        let messages = decode_every_way(&wire);
        assert_eq!(
            messages,
            vec![
                msg(2, 0, 2, 0, &bytes("00000006")),
                msg(6, 1, 8, 1, &[0x77])
            ]
        );
        // Aborting a chunk stream that has nothing in progress, or does not exist, is harmless.
        let wire = bytes("02 000000 000004 02 00000000 00000009");
        assert_eq!(decode_every_way(&wire).len(), 1);
    }

    #[test]
    fn header_types_without_a_previous_header() {
        for (wire, fmt) in [
            ("43 000000 000001 08 00", 1u8),
            ("83 000000 00", 2),
            ("c3 00", 3),
        ] {
            assert_eq!(
                decode_error(&bytes(wire)),
                ChunkError::NoPreviousHeader {
                    csid: 3,
                    fmt,
                    offset: 0
                }
            );
        }
    }

    #[test]
    fn new_header_inside_a_message() {
        let mut wire = bytes("06 000000 000100 09 01000000");
        wire.extend_from_slice(&[0; 128]);
        wire.extend_from_slice(&bytes("86 000001"));
        assert_eq!(
            decode_error(&wire),
            ChunkError::HeaderInsideMessage {
                csid: 6,
                fmt: 2,
                offset: 140,
                missing: 128
            }
        );
    }

    #[test]
    fn thousands_of_chunk_streams() {
        let mut wire = Vec::new();
        for id in 2..3000u32 {
            let mut encoded = BytesMut::new();
            let header = MessageHeader {
                timestamp: RtmpTimestamp(0),
                message_type_id: 18,
                message_stream_id: 0,
            };
            ChunkEncoder::new()
                .write_message(csid(id), &header, &[0], &mut encoded)
                .expect("small message");
            wire.extend_from_slice(&encoded);
        }
        let err = decode_pieces(&[&wire]).expect_err("too many chunk streams");
        assert!(
            matches!(
                err,
                ChunkError::TooManyChunkStreams {
                    csid: 66,
                    count: 65,
                    limit: MAX_CHUNK_STREAMS,
                    ..
                }
            ),
            "{err:?}"
        );
        // The first 64 went through.
        let mut decoder = ChunkDecoder::new();
        let mut input = BytesMut::from(&wire[..]);
        let mut n = 0;
        while let Ok(Some(_)) = decoder.decode(&mut input) {
            n += 1;
        }
        assert_eq!(n, MAX_CHUNK_STREAMS);
    }

    #[test]
    fn largest_message_length_is_accepted_without_reserving_it() {
        // 0xffffff is the largest length the field holds (16 MiB - 1), so no incoming
        // message can exceed MAX_MESSAGE_LENGTH; a header announcing it reserves only
        // MAX_PREALLOCATION.
        assert_eq!(be24(&[0xff, 0xff, 0xff]), MAX_MESSAGE_LENGTH);
        let mut decoder = ChunkDecoder::new();
        let mut input = BytesMut::from(&bytes("06 000000 ffffff 09 01000000")[..]);
        input.extend_from_slice(&[0u8; 128]);
        assert_eq!(decoder.decode(&mut input), Ok(None));
        let partial = decoder.streams[0].partial.as_ref().expect("in progress");
        assert!(partial.capacity() <= MAX_PREALLOCATION);
        assert_eq!(decoder.buffered, 0xff_ffff);
        // The rest arrives in 16 KiB chunks after a Set Chunk Size (applied mid-message).
        input.extend_from_slice(&bytes("02 000000 000004 01 00000000 00004000"));
        assert!(decoder.decode(&mut input).expect("valid").is_some());
        let mut left = 0xff_ffff - 128;
        let mut message = None;
        while left > 0 {
            let n = left.min(0x4000);
            input.put_u8(0xc6);
            input.put_bytes(0x99, n);
            left -= n;
            message = decoder.decode(&mut input).expect("valid");
        }
        let message = message.expect("complete");
        assert_eq!(message.payload.len(), 0xff_ffff);
        assert_eq!(message.payload[0], 0);
        assert_eq!(message.payload[0xff_fffe], 0x99);
        assert_eq!(decoder.buffered, 0);
    }

    #[test]
    fn buffered_bytes_are_bounded_before_allocating() {
        // Two 12 MiB messages in progress; a third is refused at its header.
        let length = 12 * 1024 * 1024u32;
        let mut wire = Vec::new();
        for id in [4u8, 5] {
            wire.push(id);
            wire.extend_from_slice(&bytes("000000"));
            wire.extend_from_slice(&length.to_be_bytes()[1..]);
            wire.extend_from_slice(&bytes("09 01000000"));
            wire.extend_from_slice(&[0; 128]);
        }
        wire.extend_from_slice(&bytes("06 000000 c00000 09 01000000"));
        let err = decode_error(&wire);
        assert_eq!(
            err,
            ChunkError::TooMuchBuffered {
                csid: 6,
                offset: 280,
                length,
                total: 3 * u64::from(length),
                limit: MAX_BUFFERED_BYTES
            }
        );
        // Small messages that fit one chunk are never counted.
        let mut wire2 = wire[..280].to_vec();
        wire2.extend_from_slice(&bytes("06 000000 000001 09 01000000 00"));
        let (messages, _) = decode_pieces(&[&wire2]).expect("valid");
        assert_eq!(messages.len(), 1);
    }

    #[test]
    fn empty_message() {
        let wire = bytes("06 000005 000000 09 01000000 c6");
        assert_eq!(
            decode_every_way(&wire),
            vec![msg(6, 5, 9, 1, &[]), msg(6, 10, 9, 1, &[])]
        );
    }

    #[test]
    fn encoder_golden_bytes() {
        let header = MessageHeader {
            timestamp: RtmpTimestamp(1000),
            message_type_id: 20,
            message_stream_id: 1,
        };
        let mut out = BytesMut::new();
        ChunkEncoder::new()
            .write_message(csid(3), &header, &bytes("deadbeef"), &mut out)
            .expect("small");
        assert_eq!(
            &out[..],
            &bytes("03 0003e8 000004 14 01000000 deadbeef")[..]
        );

        // Three chunks of 2 on csid 320, extended timestamp repeated on type 3 chunks.
        let header = MessageHeader {
            timestamp: RtmpTimestamp(0x0100_0000),
            message_type_id: 9,
            message_stream_id: 0x0102_0304,
        };
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(ChunkSize(2));
        let mut out = BytesMut::new();
        encoder
            .write_message(csid(320), &header, &bytes("0102030405"), &mut out)
            .expect("small");
        assert_eq!(
            &out[..],
            &bytes(
                "01 0001 ffffff 000005 09 04030201 01000000 0102 \
                 c1 0001 01000000 0304 \
                 c1 0001 01000000 05"
            )[..]
        );

        // An empty message is one chunk with the header only.
        let mut out = BytesMut::new();
        encoder
            .write_message(csid(64), &header, &[], &mut out)
            .expect("small");
        assert_eq!(
            &out[..],
            &bytes("00 00 ffffff 000000 09 04030201 01000000")[..]
        );
    }

    #[test]
    fn encoder_refuses_messages_longer_than_the_length_field() {
        let header = MessageHeader {
            timestamp: RtmpTimestamp(0),
            message_type_id: 9,
            message_stream_id: 1,
        };
        let payload = vec![0u8; 0x100_0000];
        let mut out = BytesMut::new();
        assert_eq!(
            ChunkEncoder::new().write_message(csid(6), &header, &payload, &mut out),
            Err(ChunkError::OutgoingMessageTooLong {
                length: 0x100_0000,
                limit: MAX_MESSAGE_LENGTH
            })
        );
        assert!(out.is_empty());
    }

    /// Messages of many shapes for round trips: sizes around chunk boundaries, all csid
    /// forms, small and extended timestamps.
    fn round_trip_messages() -> Vec<RawMessage> {
        let mut messages = Vec::new();
        let ids = [3u32, 4, 63, 64, 319, 320, 65_599];
        let sizes = [0usize, 1, 127, 128, 129, 300, 4096, 10_000];
        let timestamps = [0u32, 40, 0xff_fffe, 0xff_ffff, 0x0100_0000, u32::MAX];
        let mut n = 0usize;
        for &id in &ids {
            for &size in &sizes {
                let timestamp = timestamps[n % timestamps.len()];
                let payload: Vec<u8> = (0..size).map(|i| (i * 31 + n) as u8).collect();
                messages.push(msg(
                    id,
                    timestamp,
                    8 + (n % 2) as u8,
                    n as u32 % 3,
                    &payload,
                ));
                n += 1;
            }
        }
        messages
    }

    fn encode_with(chunk_size: u32, messages: &[RawMessage], interleave: bool) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        // Announce the chunk size the way a peer does, with a Set Chunk Size on csid 2.
        let control = MessageHeader {
            timestamp: RtmpTimestamp(0),
            message_type_id: SET_CHUNK_SIZE,
            message_stream_id: 0,
        };
        encoder
            .write_message(
                ChunkStreamId::PROTOCOL_CONTROL,
                &control,
                &chunk_size.to_be_bytes(),
                &mut out,
            )
            .expect("small");
        encoder.set_chunk_size(ChunkSize::new(chunk_size).expect("valid size"));
        if !interleave {
            for m in messages {
                encoder
                    .write_message(m.chunk_stream_id, &m.header, &m.payload, &mut out)
                    .expect("small");
            }
            return out.to_vec();
        }
        // Interleave chunks round-robin across messages on distinct chunk streams; messages
        // that share a chunk stream go in order, one after the other.
        let mut queues: Vec<Vec<&RawMessage>> = Vec::new();
        for m in messages {
            match queues
                .iter_mut()
                .find(|q| q[0].chunk_stream_id == m.chunk_stream_id)
            {
                Some(q) => q.push(m),
                None => queues.push(vec![m]),
            }
        }
        let mut iters: Vec<Box<dyn Iterator<Item = Chunk<'_>>>> = queues
            .iter()
            .map(|q| {
                let chunks: Vec<Chunk<'_>> = q
                    .iter()
                    .flat_map(|m| {
                        encoder
                            .chunks(m.chunk_stream_id, &m.header, &m.payload)
                            .expect("small")
                    })
                    .collect();
                Box::new(chunks.into_iter()) as Box<dyn Iterator<Item = Chunk<'_>>>
            })
            .collect();
        loop {
            let mut any = false;
            for it in iters.iter_mut() {
                if let Some(chunk) = it.next() {
                    chunk.write_to(&mut out);
                    any = true;
                }
            }
            if !any {
                return out.to_vec();
            }
        }
    }

    fn sorted(mut messages: Vec<RawMessage>) -> Vec<RawMessage> {
        messages.sort_by_key(|m| {
            (
                m.chunk_stream_id.get(),
                m.header.timestamp.0,
                m.payload.len(),
            )
        });
        messages
    }

    #[test]
    fn round_trip_through_the_decoder() {
        let messages = round_trip_messages();
        for chunk_size in [1u32, 7, 128, 129, 4096, 60_000, ChunkSize::MAX.get()] {
            for interleave in [false, true] {
                let wire = encode_with(chunk_size, &messages, interleave);
                let (decoded, left) = decode_pieces(&[&wire]).expect("valid");
                assert_eq!(left, 0);
                assert_eq!(decoded[0].header.message_type_id, SET_CHUNK_SIZE);
                let decoded = decoded[1..].to_vec();
                if interleave {
                    assert_eq!(
                        sorted(decoded),
                        sorted(messages.clone()),
                        "chunk size {chunk_size}"
                    );
                } else {
                    assert_eq!(decoded, messages, "chunk size {chunk_size}");
                }
            }
        }
    }

    #[test]
    fn round_trip_in_every_split() {
        let messages: Vec<RawMessage> = round_trip_messages()
            .into_iter()
            .filter(|m| m.payload.len() <= 300)
            .collect();
        let wire = encode_with(100, &messages, true);
        let decoded = decode_every_way(&wire);
        assert_eq!(sorted(decoded[1..].to_vec()), sorted(messages));
    }
}
