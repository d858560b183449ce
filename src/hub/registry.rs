//! The stream registry: which streams exist, and which connection publishes each.
//!
//! One publisher holds a stream at a time. Encoders reconnect after a network blip while
//! their old TCP connection is still half-open, so by default a new, validated publish on a
//! live stream takes it over: the old connection is told to stop, and the HLS output
//! continues with a discontinuity. With `rtmp.takeover` off the new publish is refused.
//! A stream stays listed after its publisher leaves until its HLS files have outlived their
//! availability (RFC 8216 §6.2.2), so a quick republish continues the same playlist.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::hls::disk::DiskWriterHandle;
use crate::hls::stream::{HlsSettings, HlsStream, StreamDir};
use crate::hub::key::StreamKey;
use crate::hub::stream::{Publisher, Stream, lock};

/// Why a publish could not claim its stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("stream is already being published (takeover is off)")]
    AlreadyPublishing,
    #[error("the public name is in use by another stream key")]
    NameInUse,
}

/// A successful claim: the stream and this publisher's identity in it.
pub struct Claim {
    pub stream: Arc<Stream>,
    pub publisher: Publisher,
    /// Another connection published this stream and was told to stop.
    pub took_over: bool,
}

pub struct Registry {
    streams: Mutex<HashMap<(String, StreamKey), Arc<Stream>>>,
    next_publisher: AtomicU64,
    settings: HlsSettings,
    takeover: bool,
    disk: DiskWriterHandle,
}

impl Registry {
    pub fn new(settings: HlsSettings, takeover: bool, disk: DiskWriterHandle) -> Registry {
        Registry {
            streams: Mutex::new(HashMap::new()),
            next_publisher: AtomicU64::new(1),
            settings,
            takeover,
            disk,
        }
    }

    /// Makes the connection at `addr` the publisher of `app/name` (key `key`).
    pub fn claim(
        &self,
        app: &str,
        name: &StreamKey,
        key: &StreamKey,
        addr: SocketAddr,
    ) -> Result<Claim, ClaimError> {
        let mut streams = lock(&self.streams);
        let stream = streams
            .entry((app.to_string(), name.clone()))
            .or_insert_with(|| {
                let dir = StreamDir {
                    app: app.to_string(),
                    key: name.to_string(),
                };
                let hls = HlsStream::new(dir, self.settings.clone(), false, SystemTime::now());
                Arc::new(Stream::new(
                    app.to_string(),
                    name.clone(),
                    key.clone(),
                    hls,
                    self.disk.clone(),
                ))
            })
            .clone();
        if stream.key != *key {
            return Err(ClaimError::NameInUse);
        }
        let mut slot = stream.publisher_slot();
        let took_over = match slot.take() {
            Some(old) if !self.takeover => {
                *slot = Some(old);
                return Err(ClaimError::AlreadyPublishing);
            }
            Some(old) => {
                old.stop.cancel();
                true
            }
            None => false,
        };
        let publisher = Publisher {
            id: self.next_publisher.fetch_add(1, Ordering::Relaxed),
            addr,
            started: SystemTime::now(),
            started_at: Instant::now(),
            stop: CancellationToken::new(),
        };
        *slot = Some(publisher.clone());
        // A stream with segments already (taken over, or republished before its files went)
        // continues after a discontinuity; one that ended opens again.
        stream.begin_publisher();
        drop(slot);
        Ok(Claim {
            stream,
            publisher,
            took_over,
        })
    }

    /// The publisher `id` stopped. If it still held the stream, the stream ends (ENDLIST);
    /// if it had been taken over, nothing changes.
    pub fn release(&self, stream: &Stream, id: u64) {
        // The publisher slot stays locked while the playlist ends (and in `claim` while it
        // reopens), so a claim cannot slip in between and have its stream ended.
        let mut slot = stream.publisher_slot();
        if slot.as_ref().is_some_and(|p| p.id == id) {
            *slot = None;
            stream.end();
        }
    }

    /// The stream served as `app/name`, live or ended but still available.
    pub fn get(&self, app: &str, name: &str) -> Option<Arc<Stream>> {
        let name = StreamKey::parse(name).ok()?;
        lock(&self.streams).get(&(app.to_string(), name)).cloned()
    }

    /// Every stream the registry holds, live or recently ended.
    pub fn streams(&self) -> Vec<Arc<Stream>> {
        lock(&self.streams).values().cloned().collect()
    }

    /// Streams with a publisher now.
    pub fn live_streams(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self
            .streams()
            .into_iter()
            .filter(|s| s.publisher().is_some())
            .collect();
        v.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        v
    }

    /// Drops segments and streams that have outlived their availability. Returns the bytes
    /// of segments still held in memory.
    pub fn sweep(&self, now: Instant) -> usize {
        let mut held = 0;
        for stream in self.streams() {
            stream.measure_bitrate(now);
            let gone = stream.sweep(now);
            held += stream.memory_bytes();
            if gone {
                let mut streams = lock(&self.streams);
                // Re-check under the map lock: a publisher may have claimed it meanwhile.
                if stream.publisher().is_none() && stream.sweep(now) {
                    streams.remove(&(stream.app.clone(), stream.name.clone()));
                }
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::hls::CompletedSegment;
    use crate::hls::disk::DiskWriter;
    use crate::media::{Duration90k, Timestamp90k};

    fn segment() -> CompletedSegment {
        CompletedSegment {
            start: Timestamp90k(0),
            duration: Duration90k::from_millis(2000),
            discontinuity: false,
            independent: true,
            target_duration: 2,
            data: Bytes::from_static(&[0x47; 188]),
        }
    }

    #[tokio::test]
    async fn a_taken_over_publisher_lists_nothing_and_the_new_one_starts_afresh() {
        let root =
            std::env::temp_dir().join(format!("rtmp-server-registry-{}", std::process::id()));
        let (disk, writer) = DiskWriter::spawn(root.clone(), 16);
        let registry = Registry::new(HlsSettings::default(), true, disk);
        let key = StreamKey::parse("k").expect("a valid key");
        let addr: SocketAddr = "127.0.0.1:1935".parse().expect("an address");

        let first = registry.claim("live", &key, &key, addr).expect("claimed");
        first
            .stream
            .update_media(|m| m.encoder = Some("old encoder".into()));
        assert!(first.stream.push_segment(first.publisher.id, segment()));

        let second = registry
            .claim("live", &key, &key, addr)
            .expect("taken over");
        assert!(second.took_over);
        assert!(first.publisher.stop.is_cancelled());
        assert_eq!(
            second.stream.media().encoder,
            None,
            "media info starts afresh"
        );
        assert!(!first.stream.push_segment(first.publisher.id, segment()));
        assert_eq!(second.stream.segments_produced(), 1);
        assert!(second.stream.push_segment(second.publisher.id, segment()));
        assert_eq!(second.stream.segments_produced(), 2);

        drop(registry);
        drop((first, second));
        writer.await.expect("the disk writer exits");
        let _ = std::fs::remove_dir_all(root);
    }
}
