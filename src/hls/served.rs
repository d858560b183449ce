//! An output's window as the server shares it: filled by the output's task, read by the HTTP
//! handlers, its file work handed to the disk writer.

use std::sync::{Mutex, MutexGuard};

use crate::hls::disk::DiskWriterHandle;
use crate::hls::stream::DiskAction;

/// A window (`W`: a playlist with its segments) behind a lock, with the disk writer that
/// carries out what it schedules.
pub struct Served<W> {
    window: Mutex<W>,
    disk: DiskWriterHandle,
}

impl<W> Served<W> {
    pub fn new(window: W, disk: DiskWriterHandle) -> Served<W> {
        Served {
            window: Mutex::new(window),
            disk,
        }
    }

    /// Runs `f` on the window, then hands the disk work it scheduled to the writer.
    pub fn update<R>(&self, f: impl FnOnce(&mut W, &mut Vec<DiskAction>) -> R) -> R {
        let mut actions = Vec::new();
        let r = f(&mut self.lock(), &mut actions);
        for action in actions {
            self.disk.submit(action);
        }
        r
    }

    /// Reads the window.
    pub fn read<R>(&self, f: impl FnOnce(&W) -> R) -> R {
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, W> {
        // Every change to a window is a few assignments that leave it consistent, so a
        // holder that panicked leaves data that is still good.
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}
