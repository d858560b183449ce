//! One publish: a publisher's tag bodies demuxed into media events for its stream's outputs,
//! with the stream's figures kept up to date, until it stops.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use super::announce::{self, Stopped};
use super::{Inner, Refusal};
use crate::flv::demux::{ConfigNotice, DemuxError, FlvDemuxer, TagKind};
use crate::hub::stream::{Publisher, Stream};
use crate::media::RtmpTimestamp;
use crate::media::frame::{Ending, MediaEvent};

/// What a publisher's metadata (onMetaData) says, as far as the server uses it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamMetadata {
    /// It announces a video track (`videocodecid`).
    pub video: bool,
    /// It announces an audio track (`audiocodecid`).
    pub audio: bool,
    /// The encoder's name (`encoder`).
    pub encoder: Option<String>,
    /// Frames per second (`framerate` or `videoframerate`).
    pub frame_rate: Option<f64>,
}

/// A live publish. Dropping it (or [`Publish::stop`]) ends it: the outputs close what they
/// hold, the stream is released, the unpublish webhook follows.
pub struct Publish {
    ingest: Arc<Inner>,
    stream: Arc<Stream>,
    publisher: Publisher,
    demux: FlvDemuxer,
    /// Media events on their way to the fan-out (capacity reused).
    events: Vec<MediaEvent>,
    bytes: u64,
    /// Tells the webhook task how the publish ended.
    announcer: Option<tokio::sync::oneshot::Sender<Stopped>>,
    /// Stops the periodic key re-check when the publish ends.
    _recheck: Option<DropGuard>,
    /// The media was refused: what the outputs hold unfinished is dropped.
    broken: bool,
}

impl Publish {
    pub(super) fn new(
        ingest: Arc<Inner>,
        stream: Arc<Stream>,
        publisher: Publisher,
        recheck: Option<DropGuard>,
    ) -> Publish {
        let announcer = announce::spawn(ingest.hooks.clone(), stream.clone(), publisher.clone());
        Publish {
            ingest,
            stream,
            publisher,
            demux: FlvDemuxer::new(),
            events: Vec::new(),
            bytes: 0,
            announcer: Some(announcer),
            _recheck: recheck,
            broken: false,
        }
    }

    /// Cancelled when another publisher takes the stream over or the key is revoked.
    pub fn stop_token(&self) -> CancellationToken {
        self.publisher.stop.clone()
    }

    /// The name the stream is served under.
    pub fn name(&self) -> &str {
        self.stream.name.as_str()
    }

    /// The publisher's metadata: the tracks to expect, the encoder and frame rate for the
    /// stats API.
    pub fn metadata(&mut self, metadata: StreamMetadata) {
        self.demux.expect_tracks(metadata.video, metadata.audio);
        self.stream.update_media(|m| {
            m.encoder = metadata.encoder.or(m.encoder.take());
            m.frame_rate = m.frame_rate.or(metadata.frame_rate);
        });
    }

    /// One audio or video message's body, read at `received`. A refusal ends the publish;
    /// its description is for the encoder.
    pub fn media(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        received: Instant,
    ) -> Result<(), Refusal> {
        self.bytes += body.len() as u64;
        self.stream.add_bytes_in(body.len() as u64);
        let pushed = self
            .demux
            .push(kind, timestamp, body, received, &mut self.events);
        if let Ok(Some(notice)) = &pushed {
            self.note_config(notice);
        }
        let refusal = pushed.err().map(|e| self.refusal(e));
        if refusal.is_some() {
            self.broken = true;
            self.events.push(MediaEvent::End(Ending::Broken));
        }
        self.stream.fanout.push(self.publisher.id, &mut self.events);
        match refusal {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// Ends the publish (as dropping it does).
    pub fn stop(self) {}

    fn note_config(&self, notice: &ConfigNotice) {
        let name = &self.stream.name;
        match notice {
            ConfigNotice::Video(v) => {
                let info = v.clone();
                self.stream.update_media(|m| {
                    m.frame_rate = info.frame_rate.or(m.frame_rate);
                    m.video = Some(info);
                });
                info!(stream = %name, codec = v.codec, width = v.width, height = v.height, "video");
            }
            ConfigNotice::Audio(a) => {
                let info = a.clone();
                self.stream.update_media(|m| m.audio = Some(info));
                info!(stream = %name, codec = a.codec, sample_rate = a.sample_rate, channels = a.channels, "audio");
            }
        }
    }

    fn refusal(&self, e: DemuxError) -> Refusal {
        let name = &self.stream.name;
        match e {
            DemuxError::UnsupportedVideoCodec(_) | DemuxError::UnsupportedAudioCodec(_) => {
                self.ingest.metrics.reject("unsupported_codec");
                warn!(stream = %name, "publish refused: {e}");
                Refusal {
                    reason: "unsupported_codec",
                    code: "NetStream.Publish.Failed",
                    description: format!("{e}; this server takes H.264 video and AAC audio"),
                }
            }
            e => {
                info!(stream = %name, "publish ended: {e}");
                Refusal {
                    reason: "bad_media",
                    code: "NetStream.Publish.Failed",
                    description: e.to_string(),
                }
            }
        }
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        if !self.broken {
            // Media held back for the track decision goes out, then the end.
            self.demux.finish(&mut self.events);
            self.events.push(MediaEvent::End(Ending::Stopped));
            self.stream.fanout.push(self.publisher.id, &mut self.events);
        }
        let still_ours = self.stream.is_published_by(self.publisher.id);
        self.ingest
            .registry
            .release(&self.stream, self.publisher.id);
        self.ingest.metrics.streams_live.dec();
        let secs = self.publisher.started_at.elapsed().as_secs_f64();
        if let Some(announcer) = self.announcer.take() {
            let _ = announcer.send(Stopped {
                at: SystemTime::now(),
                bytes: self.bytes,
                duration_s: secs,
            });
        }
        let kbps = if secs > 0.0 {
            self.bytes as f64 * 8.0 / secs / 1000.0
        } else {
            0.0
        };
        let media = self.stream.media();
        let video = media
            .video
            .map(|v| format!("{} {}x{}", v.codec, v.width, v.height));
        let audio = media
            .audio
            .map(|a| format!("{} {} Hz {} ch", a.codec, a.sample_rate, a.channels));
        info!(
            key = %self.stream.key.redacted(),
            name = %self.stream.name,
            client = %self.publisher.addr,
            video,
            audio,
            duration_s = format!("{secs:.1}"),
            bytes = self.bytes,
            avg_kbps = format!("{kbps:.0}"),
            taken_over = !still_ours,
            "publish stopped"
        );
    }
}
