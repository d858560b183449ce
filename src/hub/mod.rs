//! Streams and who publishes them: keys, the registry, per-stream state.

pub mod history;
pub mod key;
pub mod registry;
pub mod stop;
pub mod stream;
