//! HLS output: segmenting, playlists, the per-stream segment windows (classic MPEG-TS and
//! Low-Latency CMAF), Blocking Playlist Reload and the disk writer.
//!
//! Spec: RFC 8216; RFC 8216bis (draft-pantos-hls-rfc8216bis, Low-Latency HLS); Apple "HLS
//! Authoring Specification for Apple Devices".

pub mod blocking;
pub mod buffer_pool;
pub mod cmaf_output;
pub mod cmaf_vod;
pub mod disk;
pub mod ll_query;
pub mod ll_stream;
pub mod multivariant;
pub mod playlist;
pub mod rendition;
mod retention;
pub mod segment;
pub mod segmenter;
pub mod served;
pub mod stream;
pub mod timeline;
pub mod ts_output;

pub use segment::CompletedSegment;
