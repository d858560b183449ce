//! Stream thumbnails: a stream's latest keyframe decoded, scaled and encoded as JPEG, on
//! demand, without FFmpeg.
//!
//! Sans-IO, values in and out: `decode` (an H.264 keyframe to a picture), `scale` (a picture
//! to a width, in JPEG's colours), `jpeg`, `cache` (one stream's keyframes, pictures and
//! files, and when work may start) and `budget` (the CPU token bucket). `service` runs the
//! work on threads of its own and answers requests.

pub mod budget;
pub mod cache;
pub mod decode;
pub mod jpeg;
pub mod scale;
pub mod service;

/// The file name thumbnails are served under in a stream's folder.
pub const FILE: &str = "thumbnail.jpg";

/// Whether a video codec (by its name, `CodecConfig::name`) has a decoder here.
pub fn decodes(codec: &str) -> bool {
    codec == "H.264"
}

/// The path of a stream's thumbnail.
pub fn path(app: &str, name: &str) -> String {
    format!("/{app}/{name}/{FILE}")
}
