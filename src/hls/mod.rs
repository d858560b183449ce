//! HLS output: segmenting, playlists, the per-stream segment window and the disk writer.
//!
//! Spec: RFC 8216; Apple "HLS Authoring Specification for Apple Devices".

pub mod segment;
pub mod segmenter;
pub mod timeline;

pub use segment::CompletedSegment;
