//! rtmp-server: RTMP ingest to HLS (classic MPEG-TS and Low-Latency CMAF), without FFmpeg.
//!
//! ```text
//! rtmp::conn -> ingest (key check, claim, flv::demux -> media events)
//!            -> the stream's media::fanout -> TS task (hls::ts_output -> index.m3u8)
//!                                          -> CMAF task (hls::cmaf_output -> llhls.m3u8)
//!                                          -> relay tasks (relay: RTMP push to other servers)
//! http <- windows in memory (hub::stream); hls::disk writes the files
//! ```
//!
//! Protocol, format and window code (`rtmp`, `flv`, `codec`, `ts`, `mp4`, `hls`, `media`) is
//! sans-IO: it takes bytes, values and clocks and returns bytes, values and events.
//! ARCHITECTURE.md describes the layers, threads, bounds and where each output plugs in.

pub mod auth;
pub mod cli;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod dashboard;
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
pub mod playback;
pub mod record;
pub mod relay;
pub mod remux;
pub mod rtmp;
pub mod server;
pub mod storage;
pub mod thumbnail;
pub mod tls;
pub mod ts;
pub mod wallclock;
