//! HLS output: segmenting, playlists, the per-stream segment window and the disk writer.
//!
//! Spec: RFC 8216; Apple "HLS Authoring Specification for Apple Devices".

pub mod buffer_pool;
// pub mod cmaf_output;
pub mod disk;
pub mod playlist;
pub mod segment;
pub mod segmenter;
pub mod served;
pub mod stream;
pub mod timeline;
pub mod ts_output;

pub use segment::CompletedSegment;
