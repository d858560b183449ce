//! rtmp-server: RTMP ingest remuxed to HLS, without FFmpeg.
//!
//! Data flows one way:
//!
//! ```text
//! TCP accept -> rtmp::conn (one task per connection)
//!   handshake -> chunk decoder -> messages -> session state machine (connect, publish, ...)
//!   publish: stream key check -> hub::registry claims the key
//!   audio/video messages = FLV tag bodies -> remux (AVCC -> Annex B, AAC -> ADTS, PES, TS)
//!   -> segmenter (cut on a keyframe at >= hls.time) -> per-stream playlist + segment window
//!                                                     -> disk writer (background, bounded)
//! HTTP <- playlists and segments from memory ; stats, metrics, health
//! ```
//!
//! Protocol and format code (`rtmp`, `flv`, `ts`, `mp4`, `hls`) is sans-IO: it takes bytes and
//! values and returns bytes and events. Only `rtmp::conn`, `server`, `http` and the disk
//! writer touch sockets and files.

pub mod auth;
pub mod cli;
pub mod config;
pub mod flv;
pub mod healthcheck;
pub mod hls;
pub mod hooks;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod listener;
pub mod media;
pub mod metrics;
pub mod mp4;
pub mod offline;
pub mod remux;
pub mod rtmp;
pub mod server;
pub mod ts;
pub mod wallclock;
