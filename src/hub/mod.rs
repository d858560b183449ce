//! Streams and who publishes them: keys, the registry, per-stream state.

pub mod key;
pub mod registry;
pub mod stream;
