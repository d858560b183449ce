//! Object storage (any S3-compatible service) as the HLS origin a CDN pulls from.
//!
//! Everything the disk writer is handed (segments, init sections, playlists, deletions, a
//! stream folder's removal) also goes to the upload queue ([`Uploads::push`], from
//! `hls::disk::DiskWriterHandle::submit`, whether or not the disk took it), and finished
//! recordings are added when they close. Keys are `{s3.prefix}{app}/{name}/{file}`, the
//! paths under `http.mediaroot`, so the bucket's URLs mirror the node's.
//!
//! - [`queue`] (sans-IO): order (a playlist after what it lists), coalescing, the byte bound
//!   and what it drops, deletions, the fence.
//! - [`playlist`] (sans-IO): a playlist as the bucket serves it (gaps, continuation).
//! - [`client`]: the S3 requests, signed by `rusty-s3` (sans-IO presigned URLs) and sent by
//!   the server's reqwest client.
//! - [`uploader`]: the thread that runs them, a few at once, retried with back-off, counted.
//!
//! Low-Latency parts stay on the node: a CDN in front of LL-HLS must hold blocking playlist
//! requests (`_HLS_msn`, `_HLS_part`), which object storage cannot answer. The bucket gets
//! the parts-free playlists the node writes to disk.

pub mod client;
pub mod playlist;
pub mod queue;
pub mod uploader;

use std::sync::Arc;
use std::time::Instant;

use crate::hls::stream::DiskAction;

pub use uploader::{Uploader, spawn};

/// The cluster's answer to "may this process write this stream's playlists?" (asked
/// before every playlist upload or deletion, and before reading the bucket's copy to
/// continue it, for at least a playlist request's time-out, so a write can never land after
/// the answer expired).
pub use crate::cluster::Fence;

/// The handle the disk writer and the recordings push to: cheap to clone, never blocks
/// (a short lock on the queue).
#[derive(Clone, Debug)]
pub struct Uploads {
    shared: Arc<uploader::Shared>,
}

impl Uploads {
    /// Queues what `action` means for the bucket.
    pub fn push(&self, action: &DiskAction) {
        let dropped = self.shared.lock().push(action, Instant::now());
        self.shared.dropped(dropped);
        self.shared.wake.notify_one();
    }

    /// Asks the cluster's fence before every playlist write from now on (the cluster is made
    /// after the uploader since it needs the streams the disk writer's handle serves; set
    /// before any stream exists). A cluster set already stays.
    pub fn fence_with(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.shared.fence.set(cluster);
    }

    /// Queues a finished recording: its media file and playlist under `recordings/{id}/`.
    pub fn push_recording(&self, id: &str, media: std::path::PathBuf, playlist: bytes::Bytes) {
        self.shared
            .lock()
            .push_recording(id, media, playlist, Instant::now());
        self.shared.wake.notify_one();
    }
}
