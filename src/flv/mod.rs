//! FLV: the tag bodies RTMP audio and video messages carry, the FLV file container, and
//! the H.264 and AAC configuration records inside them.
//!
//! Spec: Adobe "Video File Format Specification" v10.1 annex E; Enhanced RTMP v2
//! (veovera); ISO/IEC 14496-15 §5.3.3.1; ISO/IEC 14496-3 §1.6.2.1, §1.A.2.

pub mod aac;
pub mod avc;
pub mod colour;
pub mod demux;
pub mod error;
pub mod file;
pub mod mux;
pub mod tag;

pub use error::FlvError;
