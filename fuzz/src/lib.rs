//! What the fuzz targets share: a reader that turns fuzzer bytes into choices, an allocator
//! that measures how much memory the code under test holds, and media cut from the test
//! files so that the remux target starts from real H.264/AAC.

pub mod alloc;
pub mod cmaf;
pub mod input;
pub mod media;
pub mod ts;
