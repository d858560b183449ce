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

use crate::hub::key::StreamKey;
use crate::hub::stop::{StopReason, StopSignal};
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

/// Makes the stream for a key that has none yet: its fan-out, its outputs' windows, and the
/// tasks that run the outputs. Given `app`, the name it is served under, and its key.
pub type StreamFactory = dyn Fn(&str, &StreamKey, &StreamKey) -> Arc<Stream> + Send + Sync;

pub struct Registry {
    streams: Mutex<HashMap<(String, StreamKey), Arc<Stream>>>,
    next_publisher: AtomicU64,
    takeover: bool,
    factory: Box<StreamFactory>,
}

impl Registry {
    pub fn new(takeover: bool, factory: Box<StreamFactory>) -> Registry {
        Registry {
            streams: Mutex::new(HashMap::new()),
            next_publisher: AtomicU64::new(1),
            takeover,
            factory,
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
            .or_insert_with(|| (self.factory)(app, name, key))
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
                old.stop.stop(StopReason::TakenOver);
                true
            }
            None => false,
        };
        let publisher = Publisher {
            id: self.next_publisher.fetch_add(1, Ordering::Relaxed),
            addr,
            started: SystemTime::now(),
            started_at: Instant::now(),
            stop: StopSignal::new(),
        };
        *slot = Some(publisher.clone());
        // From here only the new publisher's media reaches the outputs; its start tells them
        // to drop what the old one left unfinished and continue after a discontinuity.
        stream.begin_publisher(publisher.id);
        drop(slot);
        Ok(Claim {
            stream,
            publisher,
            took_over,
        })
    }

    /// The publisher `id` stopped (its end of stream went to the outputs before). If it
    /// still held the stream, the stream has no publisher now; if it had been taken over,
    /// nothing changes.
    pub fn release(&self, stream: &Stream, id: u64) {
        let mut slot = stream.publisher_slot();
        if slot.as_ref().is_some_and(|p| p.id == id) {
            *slot = None;
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

    /// Closes every stream's fan-out, so that their outputs finish what they were given and
    /// end (the server is stopping).
    pub fn close_all(&self) {
        for stream in self.streams() {
            stream.fanout.close();
        }
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
                    stream.fanout.close();
                }
            }
        }
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fanout::{FanOut, Limits};

    fn registry(takeover: bool) -> Registry {
        Registry::new(
            takeover,
            Box::new(|app, name, key| {
                Arc::new(Stream::new(
                    app.to_string(),
                    name.clone(),
                    key.clone(),
                    FanOut::new(Limits::default()),
                    None,
                    None,
                ))
            }),
        )
    }

    #[test]
    fn a_taken_over_publisher_is_stopped_and_cannot_reach_the_outputs() {
        let registry = registry(true);
        let key = StreamKey::parse("k").expect("a valid key");
        let addr: SocketAddr = "127.0.0.1:1935".parse().expect("an address");
        let mut output = None;
        let first = registry.claim("live", &key, &key, addr).expect("claimed");
        output.get_or_insert_with(|| first.stream.fanout.subscribe());
        first
            .stream
            .update_media(|m| m.encoder = Some("old encoder".into()));
        let second = registry
            .claim("live", &key, &key, addr)
            .expect("taken over");
        assert!(second.took_over);
        assert_eq!(first.publisher.stop.reason(), Some(StopReason::TakenOver));
        assert!(Arc::ptr_eq(&first.stream, &second.stream));
        assert_eq!(
            second.stream.media().encoder,
            None,
            "media info starts afresh"
        );
        let end = crate::media::frame::MediaEvent::End(crate::media::frame::Ending::Stopped);
        assert!(
            !first
                .stream
                .fanout
                .push(first.publisher.id, &mut vec![end.clone()])
        );
        assert!(
            second
                .stream
                .fanout
                .push(second.publisher.id, &mut vec![end])
        );
        // The old publisher's release leaves the new one in place.
        registry.release(&first.stream, first.publisher.id);
        assert!(second.stream.is_published_by(second.publisher.id));
    }

    #[test]
    fn without_takeover_a_second_publish_is_refused_and_names_belong_to_one_key() {
        let registry = registry(false);
        let (k1, k2) = (
            StreamKey::parse("k1").unwrap(),
            StreamKey::parse("k2").unwrap(),
        );
        let addr: SocketAddr = "127.0.0.1:1935".parse().unwrap();
        let claim = registry.claim("live", &k1, &k1, addr).unwrap();
        assert_eq!(
            registry.claim("live", &k1, &k1, addr).err(),
            Some(ClaimError::AlreadyPublishing)
        );
        assert_eq!(
            registry.claim("live", &k1, &k2, addr).err(),
            Some(ClaimError::NameInUse)
        );
        registry.release(&claim.stream, claim.publisher.id);
        // Nothing to serve (no output here), no publisher: swept.
        registry.sweep(Instant::now());
        assert!(registry.get("live", "k1").is_none());
    }
}
