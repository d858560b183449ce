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
use crate::hls::ts_output::carries;
use crate::hub::stream::{Publisher, Stream};
use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::frame::{Ending, MediaEvent, TrackId, TrackName};
use crate::media::{RtmpTimestamp, Timestamp90k};
use crate::metrics::TrackLabel;

/// When a message arrived, as well as a read can tell: the kernel's receive time of the
/// newest data in the read that completed it (`latest`), and the earliest it can have come
/// (`earliest`: the same for a read made as data came, the read before for one made on the
/// merged-read grid). Frames carry `earliest`, so latencies measured from it are never
/// understated; the arrival pace is learnt from `latest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    pub earliest: Instant,
    pub latest: Instant,
}

impl Arrival {
    /// Arrived now.
    pub fn now() -> Arrival {
        let now = Instant::now();
        Arrival {
            earliest: now,
            latest: now,
        }
    }
}

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
    /// Names and languages of audio tracks (Enhanced RTMP's `audioTrackIdInfoMap`), for the
    /// multivariant playlist's renditions.
    pub audio_labels: Vec<TrackName>,
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
    /// The publish's lead track (video, or audio when there is none).
    lead: Option<TrackId>,
    /// The lead track's configuration when it is video: its keyframes are kept for
    /// thumbnails when they are on.
    lead_video: Option<Arc<CodecConfig>>,
    /// How a lead-track frame's decode time maps to when it arrives (see [`Publish::due`]).
    pace: Pace,
    /// The tracks counted in `tracks_live`, uncounted when the publish ends.
    counted: Vec<TrackLabel>,
}

/// When a publisher's frames arrive, relative to their decode times: `arrival - decode time`
/// of its recent lead-track frames, biased to the earliest. A frame that comes sooner than
/// the estimate sets it at once (a frame never arrives before it is sent, so the soonest is
/// closest to the link's own delay, and frames read as they come have exact times); one
/// that comes later raises it by [`Pace::RISE`]th of the difference, so that an early burst
/// (an encoder's backlog at the start) or a clock drift is followed within a second.
#[derive(Debug, Default)]
struct Pace {
    /// Arrival minus decode time, in nanoseconds from `base`.
    offset: Option<i128>,
    base: Option<Instant>,
}

impl Pace {
    /// A later frame moves the estimate by this fraction of the difference.
    const RISE: i128 = 8;

    fn note(&mut self, dts: Timestamp90k, arrived: Instant) {
        let base = *self.base.get_or_insert(arrived);
        let offset = nanos_since(base, arrived) - dts_nanos(dts);
        self.offset = Some(match self.offset {
            Some(o) if offset > o => o + (offset - o) / Self::RISE,
            _ => offset,
        });
    }

    /// When the frame with decode time `dts` is due to arrive.
    fn due(&self, dts: Timestamp90k) -> Option<Instant> {
        let at = self.offset? + dts_nanos(dts);
        let base = self.base?;
        if at >= 0 {
            base.checked_add(std::time::Duration::from_nanos(
                at.min(u64::MAX as i128) as u64
            ))
        } else {
            base.checked_sub(std::time::Duration::from_nanos(
                (-at).min(u64::MAX as i128) as u64
            ))
        }
    }
}

fn nanos_since(base: Instant, at: Instant) -> i128 {
    match at.checked_duration_since(base) {
        Some(d) => d.as_nanos() as i128,
        None => -(base.duration_since(at).as_nanos() as i128),
    }
}

fn dts_nanos(dts: Timestamp90k) -> i128 {
    i128::from(dts.ticks()) * 100_000 / 9
}

impl Publish {
    pub(super) fn new(
        ingest: Arc<Inner>,
        stream: Arc<Stream>,
        publisher: Publisher,
        recheck: Option<DropGuard>,
    ) -> Publish {
        let announcer = announce::spawn(
            ingest.hooks.clone(),
            stream.clone(),
            publisher.clone(),
            ingest.settings.thumbnails,
        );
        Publish {
            demux: FlvDemuxer::new()
                .for_publisher(publisher.id)
                .with_limits(ingest.settings.track_limits),
            ingest,
            stream,
            publisher,
            events: Vec::new(),
            bytes: 0,
            announcer: Some(announcer),
            _recheck: recheck,
            broken: false,
            lead: None,
            lead_video: None,
            pace: Pace::default(),
            counted: Vec::new(),
        }
    }

    /// When the frame the stream's outputs wait for next (the one that completes a part or a
    /// segment) is due to arrive; `None` when they wait for none. What they wait for is the
    /// earliest decode time that can complete it: a segment's cut waits for a keyframe,
    /// which can come later, so a due time that has passed still stands (the reading side
    /// gives it a while).
    pub fn due(&self) -> Option<Instant> {
        self.pace.due(self.stream.awaited()?)
    }

    /// Cancelled when another publisher takes the stream over, the key is revoked, or the
    /// operator stops the stream.
    pub fn stop_token(&self) -> CancellationToken {
        self.publisher.stop.token()
    }

    /// Why the publisher was told to stop, once it was.
    pub fn stop_reason(&self) -> Option<crate::hub::stop::StopReason> {
        self.publisher.stop.reason()
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
            if !metadata.audio_labels.is_empty() {
                m.audio_labels = metadata.audio_labels;
            }
        });
    }

    /// One audio or video message's body, and when it arrived. A refusal ends the publish;
    /// its description is for the encoder.
    pub fn media(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        arrival: Arrival,
    ) -> Result<(), Refusal> {
        self.bytes += body.len() as u64;
        self.stream.add_bytes_in(body.len() as u64);
        let pushed = self
            .demux
            .push(kind, timestamp, body, arrival.earliest, &mut self.events);
        for notice in self.demux.take_notices() {
            note_config(&self.stream, &notice);
        }
        for event in &self.events {
            match event {
                MediaEvent::Start(tracks) => {
                    self.lead = tracks.lead();
                    self.lead_video = self
                        .lead
                        .and_then(|id| tracks.get(id))
                        .and_then(|t| t.config.clone())
                        .filter(|c| c.kind() == TrackKind::Video);
                    let metrics = &self.ingest.metrics;
                    for label in self.counted.drain(..) {
                        metrics.tracks_live.get_or_create(&label).dec();
                    }
                    for track in &tracks.tracks {
                        let label = TrackLabel {
                            kind: track.kind.name(),
                            codec: track.config.as_deref().map_or("unknown", CodecConfig::name),
                        };
                        metrics.tracks_live.get_or_create(&label).inc();
                        self.counted.push(label);
                    }
                    self.stream.set_track_layout(
                        tracks
                            .tracks
                            .iter()
                            .map(|t| (t.kind.name(), t.source))
                            .collect(),
                    );
                }
                MediaEvent::Frame(f) => {
                    self.stream
                        .add_track_bytes(usize::from(f.track.0), f.data.len());
                    if Some(f.track) == self.lead {
                        self.pace.note(f.dts, arrival.latest);
                        if f.keyframe
                            && self.ingest.settings.thumbnails
                            && let Some(config) = &self.lead_video
                        {
                            self.stream
                                .thumbnails
                                .keyframe(config, &f.data, self.publisher.id);
                        }
                    }
                }
                MediaEvent::Config(id, config) if Some(*id) == self.lead => {
                    self.lead_video = Some(config.clone()).filter(|c| c.kind() == TrackKind::Video);
                }
                _ => {}
            }
        }
        let refusal = pushed
            .err()
            .map(|e| self.refusal(e))
            .or_else(|| self.unservable());
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

    /// With the CMAF output off, a publish MPEG-TS cannot carry (another codec, several
    /// tracks of a kind) would be taken and serve nothing: it is refused by name.
    fn unservable(&self) -> Option<Refusal> {
        if self.ingest.settings.cmaf {
            return None;
        }
        let what = self.events.iter().find_map(|event| match event {
            MediaEvent::Start(tracks) if !carries(tracks) => Some(
                tracks
                    .tracks
                    .iter()
                    .map(|t| t.config.as_deref().map_or("?", CodecConfig::name))
                    .collect::<Vec<_>>()
                    .join(" + "),
            ),
            MediaEvent::Config(_, config) if !config.in_ts() => Some(config.name().to_owned()),
            _ => None,
        })?;
        self.ingest.metrics.reject("unsupported_codec");
        let description = format!(
            "{what}: the CMAF output is off here (hls.cmaf = false), and MPEG-TS carries one \
             H.264 and one AAC track"
        );
        warn!(stream = %self.stream.name, "publish refused: {description}");
        Some(Refusal {
            reason: "unsupported_codec",
            code: "NetStream.Publish.Failed",
            description,
        })
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
                    description: format!(
                        "{e}; this server takes H.264, HEVC, AV1 and VP9 video and AAC, \
                         Opus, FLAC, AC-3, E-AC-3 and MP3 audio"
                    ),
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
        if let (Some(cluster), true) = (&self.ingest.settings.cluster, still_ours) {
            let stream = format!("{}/{}", self.stream.app, self.stream.name);
            cluster.release(&stream, self.publisher.id);
        }
        self.ingest.metrics.streams_live.dec();
        for label in self.counted.drain(..) {
            self.ingest.metrics.tracks_live.get_or_create(&label).dec();
        }
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
        let video = media.video.map(|v| {
            format!(
                "{} {}x{}",
                v.codec,
                v.width.unwrap_or(0),
                v.height.unwrap_or(0)
            )
        });
        let audio = media.audio.map(|a| {
            format!(
                "{} {} Hz {} ch",
                a.codec,
                a.sample_rate.unwrap_or(0),
                a.channels.unwrap_or(0)
            )
        });
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

/// Records a track's new configuration for the stats API and logs it.
fn note_config(stream: &Stream, notice: &ConfigNotice) {
    let mut summary = notice.config.summary(notice.source);
    summary.colour = notice.colour.clone();
    info!(
        stream = %stream.name,
        track = notice.source,
        codec = summary.codec,
        width = summary.width,
        height = summary.height,
        sample_rate = summary.sample_rate,
        channels = summary.channels,
        "{} {}",
        summary.kind,
        summary.name,
    );
    stream.update_media(|m| {
        let slot = m
            .tracks
            .iter_mut()
            .find(|t| t.kind == summary.kind && t.track == summary.track);
        match slot {
            Some(slot) => *slot = summary.clone(),
            None => m.tracks.push(summary.clone()),
        }
        let first = |kind| {
            m.tracks
                .iter()
                .filter(|t| t.kind == kind)
                .min_by_key(|t| t.track)
                .cloned()
        };
        m.video = first("video");
        m.audio = first("audio");
        m.frame_rate = m.video.as_ref().and_then(|v| v.frame_rate).or(m.frame_rate);
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The 90 kHz decode time of frame `i` at 30 fps.
    fn dts(i: u64) -> Timestamp90k {
        Timestamp90k(i * 3_000)
    }

    #[test]
    fn the_pace_follows_the_soonest_arrivals_and_forgets_an_early_burst() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut pace = Pace::default();
        // A backlog of 30 frames in the first 10 ms, then one frame every 33 ms, 200 ms behind
        // its decode time, each a little late now and then.
        for i in 0..30 {
            pace.note(dts(i), at(i / 3));
        }
        for i in 30..90u64 {
            let late = if i % 4 == 0 { 15 } else { 0 };
            pace.note(dts(i), at(200 + i * 100 / 3 + late));
        }
        let due = pace.due(dts(90)).unwrap();
        let expected = at(200 + 3_000);
        let off = if due > expected {
            due - expected
        } else {
            expected - due
        };
        // Within a couple of milliseconds of the steady arrivals, not the burst's 1 s early.
        assert!(off < Duration::from_millis(3), "{off:?}");
        // A sooner frame sets it at once.
        pace.note(dts(90), at(200 + 3_000 - 20));
        assert_eq!(pace.due(dts(90)), Some(at(200 + 3_000 - 20)));
    }
}
