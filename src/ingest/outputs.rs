//! A stream's outputs: the windows HTTP serves and the tasks that fill them from the stream's
//! fan-out, each on its own, so that none can hold up the ingest or another output.
//!
//! Outputs now: the classic TS HLS output (`index.m3u8`). Each is switched on or off in the
//! configuration; the registry makes a stream's outputs when the stream first appears
//! ([`Outputs::create`] is its factory), and they live until the stream is swept away (its
//! fan-out closes).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::hls::disk::DiskWriterHandle;
use crate::hls::served::Served;
use crate::hls::stream::{HlsSettings, HlsStream, StreamDir};
use crate::hls::ts_output::{SegmentRules, TsEvent, TsOutput};
use crate::hub::key::StreamKey;
use crate::hub::stream::{OutputKind, Stream};
use crate::media::fanout::{FanOut, Limits, Subscription};
use crate::media::frame::MediaEvent;
use crate::metrics::Metrics;

/// Most events an output takes from the fan-out at once: a turn of the ingest delivers a few
/// dozen; the bound keeps one output's turn short on a busy thread.
const BATCH: usize = 256;

/// Which outputs a stream gets, and how they cut and keep segments.
#[derive(Clone, Debug)]
pub struct OutputSettings {
    /// The classic TS output (`hls.ts`).
    pub ts: bool,
    pub rules: SegmentRules,
    pub window: HlsSettings,
}

impl OutputSettings {
    pub fn from_config(hls: &crate::config::HlsConfig) -> OutputSettings {
        let secs = |s: u32| crate::media::Duration90k::from_millis(u64::from(s) * 1000);
        OutputSettings {
            ts: hls.ts,
            rules: SegmentRules {
                segment_target: secs(hls.time),
                max_segment: (hls.max_segment > 0).then(|| secs(hls.max_segment)),
            },
            window: HlsSettings {
                list_size: hls.list_size,
                delete_segments: hls.delete_segments,
                keep: hls.keep,
            },
        }
    }
}

/// Makes streams' outputs and runs their tasks.
pub struct Outputs {
    settings: OutputSettings,
    disk: DiskWriterHandle,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

impl Outputs {
    pub fn new(settings: OutputSettings, disk: DiskWriterHandle, metrics: Arc<Metrics>) -> Outputs {
        Outputs {
            settings,
            disk,
            metrics,
            tasks: TaskTracker::new(),
        }
    }

    /// The output tasks, to wait for at a stop (after every stream's fan-out closed).
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// A new stream `app/name` (published with `key`), with its outputs running. Must be
    /// called on the ingest's runtime: the output tasks run beside the connections.
    pub fn create(&self, app: &str, name: &StreamKey, key: &StreamKey) -> Arc<Stream> {
        let dir = StreamDir {
            app: app.to_string(),
            key: name.to_string(),
        };
        let ts = self.settings.ts.then(|| {
            let window =
                HlsStream::new(dir, self.settings.window.clone(), false, SystemTime::now());
            Arc::new(Served::new(window, self.disk.clone()))
        });
        let stream = Arc::new(Stream::new(
            app.to_string(),
            name.clone(),
            key.clone(),
            FanOut::new(Limits::default()),
            ts,
        ));
        if let Some(window) = &stream.ts {
            let task = TsTask {
                stream: stream.clone(),
                window: window.clone(),
                subscription: stream.fanout.subscribe(),
                output: TsOutput::new(self.settings.rules, None),
                metrics: self.metrics.clone(),
                hls_time: self.settings.rules.segment_target,
            };
            self.tasks.spawn(task.run());
        }
        stream
    }
}

/// The TS output of one stream.
struct TsTask {
    stream: Arc<Stream>,
    window: Arc<Served<HlsStream>>,
    subscription: Subscription,
    output: TsOutput,
    metrics: Arc<Metrics>,
    hls_time: crate::media::Duration90k,
}

impl TsTask {
    async fn run(mut self) {
        let mut events = Vec::with_capacity(BATCH);
        let mut made = Vec::new();
        // The publisher whose media is going through, and whether it was warned about its
        // keyframe interval.
        let mut publisher = None;
        let mut warned = false;
        loop {
            let received = self.subscription.recv(&mut events, BATCH).await;
            if received.lost > 0 {
                warn!(
                    stream = %self.stream.name,
                    lost = received.lost,
                    "the TS output fell behind and lost media: it resumes at the next keyframe after a discontinuity"
                );
                self.metrics.media_events_lost_total.inc_by(received.lost);
            }
            for event in events.drain(..) {
                if let MediaEvent::Start(_) = &event {
                    publisher = self.stream.publisher().map(|p| p.id);
                    warned = false;
                    self.window.update(|w, actions| w.begin_publisher(actions));
                }
                if let Err(e) = self.output.push(&event, &mut made) {
                    warn!(stream = %self.stream.name, "TS writer refused media, segment dropped: {e}");
                    self.output.discard_open();
                }
                let closed_by = match &event {
                    MediaEvent::Frame(f) => f.received,
                    _ => Instant::now(),
                };
                for m in made.drain(..) {
                    match m {
                        TsEvent::Segment(segment) => {
                            self.window.update(|w, actions| {
                                w.push(segment, Instant::now(), SystemTime::now(), actions)
                            });
                            if let Some(id) = publisher {
                                self.stream.mark_playable(id);
                            }
                            self.metrics
                                .segment_publish_seconds
                                .observe(closed_by.elapsed().as_secs_f64());
                            self.metrics.segments_total.inc();
                            let interval = self.output.keyframe_interval();
                            self.stream.update_media(|m| m.keyframe_interval = interval);
                        }
                        TsEvent::LongKeyframeInterval { interval } if !warned => {
                            warned = true;
                            let target = self.hls_time.as_secs_f64();
                            warn!(
                                stream = %self.stream.name,
                                "the encoder's keyframe interval ({interval}) is longer than hls.time ({target} s): \
                                 segments follow keyframes, not the setting; set the encoder's keyframe interval to {target} s"
                            );
                        }
                        TsEvent::LongKeyframeInterval { .. } => {}
                        TsEvent::ForcedCut { length } => warn!(
                            stream = %self.stream.name,
                            "no keyframe for {length}: segment cut without one; players joining there wait for the next keyframe"
                        ),
                    }
                }
                if let MediaEvent::End(_) = event {
                    self.window
                        .update(|w, actions| w.end(Instant::now(), actions));
                }
            }
            self.stream
                .set_open_segment_bytes(self.output.open_segment_bytes());
            self.stream
                .set_awaited(OutputKind::Ts, self.output.awaited());
            if received.closed {
                debug!(stream = %self.stream.name, "TS output ended");
                return;
            }
        }
    }
}
