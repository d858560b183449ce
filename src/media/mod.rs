//! The media core: clocks and timestamps, codec configurations, codec-neutral frames, and the
//! per-stream fan-out that carries them from ingest to every output.

pub mod codec;
pub mod fanout;
pub mod frame;
pub mod time;

pub use time::{Duration90k, RtmpTimestamp, Timestamp90k};
