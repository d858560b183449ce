//! An output's window as the server shares it: filled by the output's task, read by the HTTP
//! handlers, its file work handed to the disk writer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::hls::disk::DiskWriterHandle;
use crate::hls::stream::DiskAction;

/// A window (`W`: a playlist with its segments) behind a lock, with the disk writer that
/// carries out what it schedules.
pub struct Served<W> {
    window: Mutex<W>,
    disk: DiskWriterHandle,
    /// A file the window lists was found missing on disk (and logged).
    warned_missing_file: AtomicBool,
}

impl<W> Served<W> {
    pub fn new(window: W, disk: DiskWriterHandle) -> Served<W> {
        Served {
            window: Mutex::new(window),
            disk,
            warned_missing_file: AtomicBool::new(false),
        }
    }

    /// True the first time it is called: a file the window lists is missing on disk (its
    /// write failed or was dropped), which is logged once per window.
    pub fn first_missing_file(&self) -> bool {
        !self.warned_missing_file.swap(true, Ordering::Relaxed)
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
