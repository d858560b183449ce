//! Media values shared by the ingest and remux layers: clocks and timestamps.

pub mod time;

pub use time::{Duration90k, RtmpTimestamp, Timestamp90k};
