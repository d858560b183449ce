//! MPEG-2 transport stream writing: packets, PSI tables, PES headers and the muxer that
//! lays them out in place in a segment buffer.
//!
//! Spec: ISO/IEC 13818-1.

pub mod error;
pub mod muxer;
pub mod packet;
pub mod pes;
pub mod psi;

pub use error::TsError;
pub use muxer::{Tracks, TsMuxer};
