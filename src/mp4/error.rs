//! The error type of the fragmented-MP4 writer.

use crate::mp4::TrackId;
use crate::mp4::boxes::FourCc;

/// Why the MP4 writer refused a request. These are caller errors (values out of a field's
/// range, tables that do not match their payloads, limits exceeded), never a panic. When a
/// write function returns one, it has left the output buffer as it found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mp4Error {
    /// Track IDs start at 1.
    ///
    /// Spec: ISO/IEC 14496-12 §8.3.2.3 ("the value 0 cannot be used").
    #[error("track ID 0 is reserved")]
    TrackIdZero,
    /// An init segment needs at least one track, a fragment at least one sample.
    #[error("nothing to write: {what}")]
    Empty { what: &'static str },
    /// More tracks (or runs) than [`crate::mp4::MAX_TRACKS`].
    #[error("{count} tracks exceed the limit of {limit}")]
    TooManyTracks { count: usize, limit: usize },
    /// Two tracks of an init segment, or two runs of a fragment, name the same track.
    #[error("track {track} appears twice")]
    DuplicateTrack { track: TrackId },
    /// A timescale of 0 ticks per second cannot time anything.
    #[error("track {track}: timescale 0")]
    TimescaleZero { track: TrackId },
    /// A sample entry field the codec cannot do without is missing or out of range.
    #[error("track {track}: invalid {entry} sample entry: {reason}")]
    InvalidSampleEntry {
        track: TrackId,
        entry: FourCc,
        reason: &'static str,
    },
    /// A run holds more samples than [`crate::mp4::MAX_SAMPLES_PER_RUN`].
    #[error("track {track}: {count} samples in one run exceed the limit of {limit}")]
    TooManySamples {
        track: TrackId,
        count: usize,
        limit: usize,
    },
    /// A box would outgrow its 32-bit size field (this writer never writes 64-bit sizes).
    ///
    /// Spec: ISO/IEC 14496-12 §4.2 (size, largesize).
    #[error("{kind} box of {size} bytes does not fit a 32-bit size")]
    BoxTooLarge { kind: FourCc, size: u64 },
    /// An MPEG-4 descriptor body longer than its expandable size field can say.
    ///
    /// Spec: ISO/IEC 14496-1 §8.3.3 (sizeOfInstance, at most 4 bytes of 7 bits).
    #[error("descriptor tag {tag:#04x} of {size} bytes exceeds the {limit}-byte limit")]
    DescriptorTooLarge { tag: u8, size: usize, limit: usize },
    /// A run's samples would start further from the moof than trun's signed 32-bit
    /// data_offset reaches.
    ///
    /// Spec: ISO/IEC 14496-12 §8.8.8.2 (data_offset is signed int(32)).
    #[error("track {track}: data offset {offset} does not fit trun's signed 32 bits")]
    DataOffsetTooLarge { track: TrackId, offset: u64 },
    /// `write_fragment` was given a different number of payloads than there are samples.
    #[error("{payloads} payloads for {samples} samples")]
    PayloadCount { samples: usize, payloads: usize },
    /// A payload's length differs from the size its sample declares.
    #[error("sample {index}: payload of {actual} bytes, sample size says {declared}")]
    PayloadSize {
        index: usize,
        declared: u32,
        actual: usize,
    },
}
