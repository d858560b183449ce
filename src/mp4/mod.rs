//! Fragmented MP4 (ISO base media file format) writing for CMAF-style HLS: the init
//! segment (`ftyp` + `moov`) and movie fragments (`moof` + `mdat`), laid out in place in a
//! caller's `BytesMut`, as the TS muxer does. Sans-IO: values in, bytes out, no clock.
//!
//! Segmenting and timing belong to the caller: it decides which samples go in a fragment
//! (one fragment per LL-HLS part, every track of the stream in one `moof`), their decode
//! times, durations and composition offsets, and then appends the sample bytes after the
//! header this module writes.
//!
//! ```text
//! init:     ftyp  moov[ mvhd  trak[tkhd mdia[mdhd hdlr minf[vmhd|smhd dinf stbl[stsd ...]]]]...  mvex[trex...] ]
//! fragment: moof[ mfhd  traf[tfhd tfdt trun]... ]  mdat[ run 1 samples | run 2 samples | ... ]
//! ```
//!
//! Spec: ISO/IEC 14496-12 (ISO base media file format); ISO/IEC 14496-14 (MP4 file
//! format: mp4a, esds); ISO/IEC 14496-15 (avcC, hvcC); ISO/IEC 14496-1 §7.2.6, §8.3.3 (the
//! descriptors inside esds); the AV1, VP9, Opus, FLAC and AC-3 ISOBMFF bindings (see
//! [`sample_entry`]); ISO/IEC 23000-19 (CMAF); RFC 8216 §3.3 and RFC 8216bis §3.1.2
//! (fMP4 segments in HLS).

pub mod boxes;
pub mod error;
pub mod fragment;
pub mod init;
pub mod retime;
pub mod sample_entry;

#[cfg(test)]
mod readback_tests;

use std::fmt;
use std::num::NonZeroU32;

pub use boxes::FourCc;
pub use error::Mp4Error;
pub use fragment::{FragmentHeader, SampleInfo, TrackRun, write_fragment, write_fragment_header};
pub use init::{TrackConfig, write_init};
pub use sample_entry::{MediaKind, SampleEntry};

/// Most tracks in an init segment, and runs in a fragment. Enhanced RTMP multitrack streams
/// carry a few video renditions and audio languages; 32 is far above that and keeps the
/// duplicate checks and header sizes small.
pub const MAX_TRACKS: usize = 32;

/// Most samples in one run. A fragment is an LL-HLS part (about 0.2 s) or at most a
/// recording's segment; 65 536 samples are over 18 minutes of 60 fps video or 23 minutes
/// of 48 kHz AAC, and keep one trun under 1 MiB (16 bytes a sample).
pub const MAX_SAMPLES_PER_RUN: usize = 1 << 16;

/// A track ID: 1-based, as tkhd, trex and tfhd carry it.
///
/// Spec: ISO/IEC 14496-12 §8.3.2.3 (track_ID "cannot be zero").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(NonZeroU32);

impl TrackId {
    /// A track ID, refused when 0.
    pub const fn new(id: u32) -> Result<TrackId, Mp4Error> {
        match NonZeroU32::new(id) {
            Some(id) => Ok(TrackId(id)),
            None => Err(Mp4Error::TrackIdZero),
        }
    }

    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
