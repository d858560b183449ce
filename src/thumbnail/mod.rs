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
