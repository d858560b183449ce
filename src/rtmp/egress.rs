//! What waits to go out to a player, as pieces of shared memory: chunk headers and tag
//! headers (a few bytes each, held inline) and runs of the frames themselves (slices of the
//! messages the publisher sent). A played stream is written from where its frames lie, with
//! vectored writes, so a player costs neither a copy of the stream nor a buffer of its own.
//!
//! Sans-IO: pieces in, [`IoSlice`]s out, advanced by what the socket took.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use super::chunk::{ChunkEncoder, ChunkPiece, ChunkStreamId, MessageHeader};
use super::error::ChunkError;
use crate::flv::mux::Tag;

/// Longest inline piece: a chunk header (3 + 11 + 4 bytes) or a tag header.
const INLINE: usize = 18;

#[derive(Clone, Debug)]
enum Piece {
    Inline { bytes: [u8; INLINE], len: u8 },
    Shared(Bytes),
}

impl Piece {
    fn inline(b: &[u8]) -> Piece {
        let mut bytes = [0; INLINE];
        bytes[..b.len()].copy_from_slice(b);
        Piece::Inline {
            bytes,
            len: b.len() as u8,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Inline { bytes, len } => &bytes[..usize::from(*len)],
            Piece::Shared(b) => b,
        }
    }
}

/// Bytes waiting for a socket, in order.
#[derive(Debug, Default)]
pub struct Egress {
    pieces: VecDeque<Piece>,
    /// Bytes of the front piece already written.
    offset: usize,
    len: usize,
}

impl Egress {
    pub fn new() -> Egress {
        Egress::default()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `bytes` (what a session wrote: replies, acknowledgements).
    pub fn push_bytes(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.pieces.push_back(Piece::Shared(bytes));
        }
    }

    /// Queues `tag` as one RTMP message of `header` on `csid`, chunked by `encoder`, its
    /// frame sent from where it lies.
    pub fn push_tag(
        &mut self,
        encoder: &ChunkEncoder,
        csid: ChunkStreamId,
        header: &MessageHeader,
        tag: &Tag,
    ) -> Result<(), ChunkError> {
        let head = tag.header();
        encoder.lay_out_message(csid, header, tag.body_len(), |piece| match piece {
            ChunkPiece::Header(h) => self.push_inline(h),
            ChunkPiece::Payload(range) => {
                // The tag header, then the frame, as far as the range reaches.
                if range.start < head.len() {
                    self.push_inline(&head[range.start..range.end.min(head.len())]);
                }
                let from = range.start.max(head.len()) - head.len();
                let to = range.end.saturating_sub(head.len());
                if from < to {
                    self.len += to - from;
                    self.pieces
                        .push_back(Piece::Shared(tag.data.slice(from..to)));
                }
            }
        })
    }

    fn push_inline(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        for part in b.chunks(INLINE) {
            self.len += part.len();
            self.pieces.push_back(Piece::inline(part));
        }
    }

    /// Fills `slices` with the next waiting bytes; returns how many it filled.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (i, piece) in self.pieces.iter().enumerate() {
            if n == slices.len() {
                break;
            }
            let bytes = piece.bytes();
            let bytes = if i == 0 { &bytes[self.offset..] } else { bytes };
            slices[n] = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// `n` bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        self.len -= n.min(self.len);
        while n > 0 {
            let Some(front) = self.pieces.front() else {
                break;
            };
            let left = front.bytes().len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.pieces.pop_front();
        }
    }

    /// Moves up to `max` waiting bytes into `out` (for TLS, which seals a copy anyway).
    pub fn take_into(&mut self, out: &mut BytesMut, max: usize) {
        let mut room = max;
        while room > 0 {
            let Some(front) = self.pieces.front() else {
                break;
            };
            let bytes = &front.bytes()[self.offset..];
            let n = bytes.len().min(room);
            out.extend_from_slice(&bytes[..n]);
            room -= n;
            self.advance(n);
        }
    }

    /// Everything waiting, joined (the last words of a play, written whole).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len);
        for (i, piece) in self.pieces.iter().enumerate() {
            let bytes = piece.bytes();
            out.extend_from_slice(if i == 0 { &bytes[self.offset..] } else { bytes });
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::mux::testing::tag;
    use crate::flv::tag::TagType;
    use crate::media::RtmpTimestamp;
    use crate::rtmp::chunk::ChunkSize;

    #[test]
    fn a_tag_goes_out_as_the_message_of_its_body_in_every_split() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(ChunkSize::new(7).unwrap());
        let header = MessageHeader {
            timestamp: RtmpTimestamp(40),
            message_type_id: 9,
            message_stream_id: 1,
        };
        let csid = ChunkStreamId::new(7).unwrap();
        let tag = tag(TagType::Video, true, false, 40);
        let mut body = BytesMut::from(tag.header());
        body.extend_from_slice(&tag.data);
        let mut expected = BytesMut::from(&b"ack"[..]);
        encoder
            .write_message(csid, &header, &body, &mut expected)
            .unwrap();
        for step in 1..=expected.len() {
            let mut egress = Egress::new();
            egress.push_bytes(Bytes::from_static(b"ack"));
            egress.push_tag(&encoder, csid, &header, &tag).unwrap();
            assert_eq!(egress.len(), expected.len());
            assert_eq!(egress.to_bytes(), expected);
            // Written a few bytes at a time, through io_slices.
            let mut written = Vec::new();
            while !egress.is_empty() {
                let mut slices = [IoSlice::new(&[]); 4];
                let n = egress.io_slices(&mut slices);
                let joined: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                let take = step.min(joined.len());
                written.extend_from_slice(&joined[..take]);
                egress.advance(take);
            }
            assert_eq!(written, expected);
        }
        let mut egress = Egress::new();
        egress.push_tag(&encoder, csid, &header, &tag).unwrap();
        let mut out = BytesMut::new();
        egress.take_into(&mut out, 10);
        egress.take_into(&mut out, usize::MAX);
        assert_eq!(out, expected[3..]);
        assert!(egress.is_empty());
    }
}
