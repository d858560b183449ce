//! Stream thumbnails: a stream's latest keyframe decoded, scaled and encoded as JPEG, on
//! demand, without FFmpeg.
//!
//! `decode` (an H.264 keyframe to a picture), `scale` (a picture to a width) and `jpeg` are
//! sans-IO, values in and out.

pub mod budget;
pub mod cache;
pub mod decode;
pub mod jpeg;
pub mod scale;
pub mod service;
