//! Recycled memory for segment and part buffers.
//!
//! A live stream fills a buffer of about a megabyte per segment and frees one when an old
//! segment leaves its grace period. Buffers that large are memory mappings of their own
//! (`main.rs` sets the allocator's mapping threshold so freed segments go back to the
//! system), so without recycling every segment costs a fresh mapping, a page fault for
//! every 4 KiB written and an unmap: about a fifth of the ingest thread's CPU at 100
//! streams. Instead a finished segment's `Bytes` owns its buffer, and when the last holder
//! (the playlist window, the disk writer, an HTTP response) lets go, the buffer comes back
//! here with its pages still mapped, for the next segment of any stream to write over.
//! Pages past a finished segment's end are given back to the system, so a buffer stays
//! resident for the last segment it held. The memory this costs: the spare set, and the
//! segment being written, which is resident at its predecessor's size from its first byte
//! instead of growing as it fills (half a segment per stream on average).
//!
//! Low-Latency parts (a few tens of kilobytes each, five a second per stream) live on the
//! heap rather than in mappings of their own, but a part freed as it leaves the window and
//! a new one allocated do not meet: the heap's top grows and shrinks and every part is
//! faulted in afresh, which cost the CMAF output a tenth of its CPU. They have a pool of
//! their own ([`PART_BUFFERS`]), so that parts and segments, of very different sizes,
//! never take each other's buffers.
//!
//! At most [`MAX_SPARE_BYTES`] of capacity waits in each pool; beyond that a returned
//! buffer is freed.

use std::sync::{Mutex, OnceLock};

use bytes::{Bytes, BytesMut};

/// Most bytes of capacity [`SEGMENT_BUFFERS`] (and [`PART_BUFFERS`]) keeps spare. In steady
/// state every taken buffer is soon matched by a returned one (expired segments are dropped
/// every 100 ms), so the spare set stays a few buffers deep; the bound matters when many
/// streams end at once.
pub const MAX_SPARE_BYTES: usize = 16 << 20;

/// The process's segment buffers, shared by every stream.
pub static SEGMENT_BUFFERS: BufferPool = BufferPool::new(MAX_SPARE_BYTES);

/// The process's Low-Latency part buffers, shared by every stream.
pub static PART_BUFFERS: BufferPool = BufferPool::new(MAX_SPARE_BYTES);

/// Buffers waiting to be reused, up to a bound on their total capacity.
pub struct BufferPool {
    spare: Mutex<Spare>,
    max_spare_bytes: usize,
}

struct Spare {
    buffers: Vec<BytesMut>,
    bytes: usize,
}

impl Spare {
    /// Takes spare buffer `i` out of the set.
    fn remove(&mut self, i: usize) -> BytesMut {
        let buffer = self.buffers.swap_remove(i);
        self.bytes -= buffer.capacity();
        buffer
    }
}

impl BufferPool {
    pub const fn new(max_spare_bytes: usize) -> BufferPool {
        BufferPool {
            spare: Mutex::new(Spare {
                buffers: Vec::new(),
                bytes: 0,
            }),
            max_spare_bytes,
        }
    }

    /// An empty buffer for a new segment: the most recently returned spare one with room
    /// for `capacity` bytes, else the largest spare one (streams of every bitrate share the
    /// set, and an audio-only stream's small buffer would only grow), else a new one.
    pub fn take(&self, capacity: usize) -> BytesMut {
        let mut spare = self.lock();
        let buffers = &spare.buffers;
        let fitting = buffers.iter().rposition(|b| b.capacity() >= capacity);
        let largest = || (0..buffers.len()).max_by_key(|&i| buffers[i].capacity());
        match fitting.or_else(largest) {
            Some(i) => spare.remove(i),
            None => BytesMut::with_capacity(capacity),
        }
    }

    /// An empty buffer with room for `capacity` bytes: the most recently returned spare one
    /// that has it, else a new one. For contents whose size is known before they are
    /// written (a part), where a smaller buffer would only be reallocated.
    pub fn take_fitting(&self, capacity: usize) -> BytesMut {
        let mut spare = self.lock();
        match spare.buffers.iter().rposition(|b| b.capacity() >= capacity) {
            Some(i) => spare.remove(i),
            None => BytesMut::with_capacity(capacity),
        }
    }

    /// Makes a finished segment's buffer shareable, releasing the pages past its end; the
    /// buffer returns to the spare set once the last clone of the result is dropped.
    pub fn freeze(&'static self, buffer: BytesMut) -> Bytes {
        release_pages_past(&buffer);
        Bytes::from_owner(Recycled { buffer, pool: self })
    }

    /// Bytes of capacity waiting to be reused.
    pub fn spare_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn give_back(&self, mut buffer: BytesMut) {
        buffer.clear();
        let capacity = buffer.capacity();
        let mut spare = self.lock();
        if capacity > 0 && spare.bytes + capacity <= self.max_spare_bytes {
            spare.bytes += capacity;
            spare.buffers.push(buffer);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Spare> {
        // The lock guards plain bookkeeping that no panic can leave half-done.
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Gives the system back the whole pages of `buffer` past its contents, which a longer
/// segment it held before left resident, when they are more than [`RELEASE_FRACTION`] of it:
/// a held segment then costs at most a third more than its own size. A buffer sized for a
/// segment like the one before keeps its small slack: releasing it would cost a system call
/// and, with other threads running, a TLB shootdown per segment for next to nothing.
fn release_pages_past(buffer: &BytesMut) {
    let page = page_size();
    let start = buffer.as_ptr() as usize;
    let from = (start + buffer.len()).next_multiple_of(page);
    let to = (start + buffer.capacity()) / page * page;
    if to > from && (to - from) * RELEASE_FRACTION > buffer.capacity() {
        // SAFETY: [from, to) lies inside the buffer's own allocation, past its initialised
        // bytes, so no Rust value lives there and no allocator bookkeeping either (that sits
        // outside the capacity). MADV_DONTNEED on private anonymous memory only makes those
        // pages read as zero when next touched.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
        }
    }
}

/// Pages past a segment's end are released when they are more than a quarter of its buffer.
const RELEASE_FRACTION: usize = 4;

fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf only reads a system constant.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        size if size > 0 => size as usize,
        _ => 4096,
    })
}

/// A buffer lent to a `Bytes`; dropping it gives the buffer back.
struct Recycled {
    buffer: BytesMut,
    pool: &'static BufferPool,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn pool(max_spare_bytes: usize) -> &'static BufferPool {
        Box::leak(Box::new(BufferPool::new(max_spare_bytes)))
    }

    #[test]
    fn a_dropped_segment_buffer_is_reused_with_its_memory() {
        let pool = pool(4 << 20);
        let mut buffer = pool.take(1 << 20);
        buffer.put_slice(&[0x47; 188 * 10]);
        let address = buffer.as_ptr();
        let segment = pool.freeze(buffer);
        assert_eq!(&segment[..], &[0x47; 188 * 10][..]);

        let clone = segment.slice(188..376);
        drop(segment);
        assert_eq!(pool.spare_bytes(), 0, "a clone keeps the buffer lent");
        drop(clone);
        assert!(pool.spare_bytes() >= 1 << 20);

        let reused = pool.take(0);
        assert!(reused.is_empty(), "a reused buffer starts empty");
        assert_eq!(reused.as_ptr(), address, "the same memory is written again");
        assert_eq!(pool.spare_bytes(), 0);
    }

    #[test]
    fn a_buffer_with_room_is_preferred() {
        let pool = pool(4 << 20);
        let small = pool.freeze(pool.take(4096));
        let large = pool.freeze(pool.take(1 << 20));
        let (small_at, large_at) = (small.as_ptr(), large.as_ptr());
        drop(large);
        drop(small);
        assert_eq!(pool.take(1 << 19).as_ptr(), large_at, "the one with room");
        assert_eq!(pool.take(1 << 19).as_ptr(), small_at, "what is left");
    }

    #[test]
    fn a_fitting_buffer_is_never_smaller_than_asked() {
        let pool = pool(4 << 20);
        let small = pool.freeze(pool.take_fitting(4096));
        let small_at = small.as_ptr();
        drop(small);
        let large = pool.take_fitting(1 << 16);
        assert!(large.capacity() >= 1 << 16);
        assert_ne!(large.as_ptr(), small_at, "the small one stays spare");
        assert_eq!(pool.take_fitting(1024).as_ptr(), small_at);
    }

    #[test]
    fn the_spare_set_is_bounded() {
        let pool = pool(4 << 20);
        let segments: Vec<Bytes> = (0..8)
            .map(|_| {
                let mut buffer = pool.take(1 << 20);
                buffer.put_u8(0x47);
                pool.freeze(buffer)
            })
            .collect();
        drop(segments);
        let spare = pool.spare_bytes();
        assert!((3 << 20..=4 << 20).contains(&spare), "{spare} bytes spare");
    }
}
