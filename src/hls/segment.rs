//! A finished MPEG-TS segment, as the segmenter hands it to the playlist.

use bytes::Bytes;

use crate::media::{Duration90k, Timestamp90k};

/// One finished MPEG-TS segment: its bytes and timing, before it has a name or a place in
/// a playlist (the per-stream HLS state gives it those).
#[derive(Clone, Debug)]
pub struct CompletedSegment {
    /// Presentation time of the segment's first sample.
    pub start: Timestamp90k,
    /// From `start` to the first presentation time of the next segment (or, for the last
    /// segment of a stream, to the end of its last sample). RFC 8216 §4.3.2.1 EXTINF.
    pub duration: Duration90k,
    /// The media timeline breaks before this segment (RFC 8216 §4.3.2.3).
    pub discontinuity: bool,
    /// The segment starts with an IDR access unit carrying SPS/PPS, or the stream is
    /// audio-only: a player can start decoding at its first byte (RFC 8216 §4.3.5.1).
    pub independent: bool,
    /// EXT-X-TARGETDURATION in seconds that this segment's stream was cut for: every
    /// segment's EXTINF rounded to the nearest integer is at most this (RFC 8216 §4.3.3.1).
    pub target_duration: u32,
    /// The TS packets: a whole number of 188-byte packets, starting with PAT and PMT.
    pub data: Bytes,
}
