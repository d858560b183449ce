//! A stream's outputs: the windows HTTP serves and the tasks that fill them from the stream's
//! fan-out, each on its own, so that none can hold up the ingest or another output.
//!
//! Outputs now: the classic TS HLS output (`index.m3u8`) and the CMAF output with Low-Latency
//! HLS (`llhls.m3u8`). Each is switched on or off in the configuration; the registry makes a
//! stream's outputs when the stream first appears ([`Outputs::create`] is its factory), and
//! they live until the stream is swept away (its fan-out closes). The first of them that is
//! on gives the encoder advice (keyframe interval, cuts without a keyframe) in the log.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::hls::cmaf_output::{CmafAdvice, CmafOutput};
use crate::hls::disk::DiskWriterHandle;
use crate::hls::ll_stream::{CmafEvent, LlStream};
use crate::hls::rendition::{self, Rendition};
use crate::hls::served::Served;
use crate::hls::stream::{HlsSettings, HlsStream, StreamDir};
use crate::hls::ts_output::{self, SegmentRules, TsEvent, TsOutput};
use crate::hub::key::StreamKey;
use crate::hub::stream::{OutputKind, Stream};
use crate::media::codec::TrackKind;
use crate::media::fanout::{FanOut, Limits, Subscription};
use crate::media::frame::{Ending, Frame, MediaEvent, Track, TrackId, Tracks};
use crate::media::{Duration90k, Timestamp90k};
use crate::metrics::Metrics;
use crate::record::Recordings;
use crate::record::recorder::{Recorder, Write};

/// Most events an output takes from the fan-out at once: a turn of the ingest delivers a few
/// dozen; the bound keeps one output's turn short on a busy thread.
const BATCH: usize = 256;

/// Which outputs a stream gets, and how they cut and keep segments.
#[derive(Clone, Debug)]
pub struct OutputSettings {
    /// The classic TS output (`hls.ts`).
    pub ts: bool,
    /// The CMAF output (`hls.cmaf`).
    pub cmaf: bool,
    pub rules: SegmentRules,
    /// `hls.part`.
    pub part_target: Duration90k,
    pub window: HlsSettings,
    /// Keep each stream's frames since its last keyframe for new players
    /// (`rtmp.gop_cache`).
    pub gop_cache: bool,
}

impl OutputSettings {
    pub fn from_config(hls: &crate::config::HlsConfig) -> OutputSettings {
        let secs = |s: u32| Duration90k::from_millis(u64::from(s) * 1000);
        OutputSettings {
            ts: hls.ts,
            cmaf: hls.cmaf,
            part_target: Duration90k::from_secs_f64(hls.part),
            rules: SegmentRules {
                segment_target: secs(hls.time),
                max_segment: (hls.max_segment > 0).then(|| secs(hls.max_segment)),
            },
            window: HlsSettings {
                list_size: hls.list_size,
                delete_segments: hls.delete_segments,
                keep: hls.keep,
                dvr_window: Duration90k::from_millis(u64::from(hls.dvr_window) * 1000),
            },
            gop_cache: false,
        }
    }
}

/// Makes streams' outputs and runs their tasks.
pub struct Outputs {
    settings: OutputSettings,
    disk: DiskWriterHandle,
    /// Where recorded publishes go; `None` when `record.path` could not be opened.
    recordings: Option<Recordings>,
    metrics: Arc<Metrics>,
    tasks: TaskTracker,
}

impl Outputs {
    pub fn new(
        settings: OutputSettings,
        disk: DiskWriterHandle,
        recordings: Option<Recordings>,
        metrics: Arc<Metrics>,
    ) -> Outputs {
        Outputs {
            settings,
            disk,
            recordings,
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
        let settings = &self.settings;
        let wall = SystemTime::now();
        let ts = settings.ts.then(|| {
            let window = HlsStream::new(dir.clone(), settings.window.clone(), false, wall);
            Arc::new(Served::new(window, self.disk.clone()))
        });
        let dir_for_lanes = dir.clone();
        let cmaf = settings.cmaf.then(|| {
            let window = LlStream::new(dir, settings.window.clone(), settings.part_target, wall);
            Arc::new(Served::new(window, self.disk.clone()))
        });
        let stream = Arc::new(Stream::new(
            app.to_string(),
            name.clone(),
            key.clone(),
            FanOut::new(Limits {
                last_gop: settings.gop_cache,
                ..Limits::default()
            }),
            ts,
            cmaf,
        ));
        let advice = Advice {
            hls_time: settings.rules.segment_target,
        };
        if let Some(window) = &stream.ts {
            let task = TsTask {
                stream: stream.clone(),
                window: window.clone(),
                subscription: stream.fanout.subscribe(),
                output: TsOutput::new(settings.rules, None),
                metrics: self.metrics.clone(),
                advice: Some(advice),
            };
            self.tasks.spawn(task.run());
        }
        if let Some(window) = &stream.cmaf {
            let task = CmafTask {
                stream: stream.clone(),
                window: window.clone(),
                subscription: stream.fanout.subscribe(),
                output: CmafOutput::new(settings.rules, settings.part_target),
                metrics: self.metrics.clone(),
                advice,
                recording: self.recordings.clone().map(|recordings| Recording {
                    recorder: Recorder::new(app, name.as_str()),
                    recordings,
                    writes: Vec::new(),
                    all_tracks: None,
                    rules: settings.rules,
                    made: Vec::new(),
                    requested: false,
                }),
                ts_on: settings.ts,
                lanes: Lanes {
                    disk: self.disk.clone(),
                    dir: dir_for_lanes.clone(),
                    settings: settings.clone(),
                    all: Vec::new(),
                    active: Vec::new(),
                    anchor: None,
                },
            };
            self.tasks.spawn(task.run());
        }
        stream
    }
}

/// Encoder advice in the log and the stats API (`keyframe_advice`, the latest of the
/// publish), from one output per stream.
#[derive(Clone, Copy)]
struct Advice {
    hls_time: Duration90k,
}

impl Advice {
    fn long_keyframe_interval(&self, stream: &Stream, interval: Duration90k) {
        let target = self.hls_time.as_secs_f64();
        let advice = format!(
            "the encoder's keyframe interval ({interval}) is longer than hls.time ({target} s): \
             segments follow keyframes, not the setting; set the encoder's keyframe interval to {target} s"
        );
        warn!(stream = %stream.name, "{advice}");
        stream.update_media(|m| m.keyframe_advice = Some(advice));
    }

    fn forced_cut(&self, stream: &Stream, length: Duration90k) {
        let advice = format!(
            "no keyframe for {length}: segment cut without one; players joining there wait for the next keyframe"
        );
        warn!(stream = %stream.name, "{advice}");
        stream.update_media(|m| m.keyframe_advice = Some(advice));
    }
}

/// Logs and counts events an output lost by falling behind.
fn note_lost(stream: &Stream, metrics: &Metrics, output: &str, lost: u64) {
    if lost > 0 {
        warn!(
            stream = %stream.name,
            lost,
            "the {output} output fell behind and lost media: it resumes at the next keyframe after a discontinuity"
        );
        metrics.media_events_lost_total.inc_by(lost);
    }
}

/// The TS output of one stream.
struct TsTask {
    stream: Arc<Stream>,
    window: Arc<Served<HlsStream>>,
    subscription: Subscription,
    output: TsOutput,
    metrics: Arc<Metrics>,
    advice: Option<Advice>,
}

impl TsTask {
    async fn run(mut self) {
        let mut events = Vec::with_capacity(BATCH);
        let mut made = Vec::new();
        // The publisher whose media is going through.
        let mut publisher = None;
        loop {
            let received = self.subscription.recv(&mut events, BATCH).await;
            note_lost(&self.stream, &self.metrics, "TS", received.lost);
            for event in events.drain(..) {
                if let MediaEvent::Start(tracks) = &event {
                    publisher = Some(tracks.publisher);
                    self.window.update(|w, actions| w.begin_publisher(actions));
                }
                if let Err(e) = self.output.push(&event, &mut made) {
                    warn!(stream = %self.stream.name, "TS writer refused media, segment dropped: {e}");
                    self.output.discard_open();
                }
                let rests = matches!(&event, MediaEvent::Config(_, c) if !c.in_ts());
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
                            if self.advice.is_some() {
                                let interval = self.output.keyframe_interval();
                                self.stream.update_media(|m| m.keyframe_interval = interval);
                            }
                        }
                        TsEvent::LongKeyframeInterval { interval } => {
                            if let Some(a) = self.advice {
                                a.long_keyframe_interval(&self.stream, interval);
                            }
                        }
                        TsEvent::ForcedCut { length } => {
                            if let Some(a) = self.advice {
                                a.forced_cut(&self.stream, length);
                            }
                        }
                    }
                }
                // The publish ended, or a track changed to a codec this output does not carry
                // (index.m3u8 moves to the CMAF output): the playlist ends.
                if rests || matches!(event, MediaEvent::End(_)) {
                    self.window
                        .update(|w, actions| w.end(Instant::now(), actions));
                }
            }
            self.stream
                .set_open_bytes(OutputKind::Ts, self.output.open_segment_bytes());
            self.stream
                .set_awaited(OutputKind::Ts, self.output.awaited());
            if received.closed {
                debug!(stream = %self.stream.name, "TS output ended");
                return;
            }
        }
    }
}

/// The CMAF (Low-Latency HLS) output of one stream. A multitrack publish is served as one
/// rendition per track (each a CMAF output of that track alone and its own window, cut by
/// the same rules, so variants with aligned keyframes cut at the same media times), listed by
/// a multivariant playlist.
struct CmafTask {
    stream: Arc<Stream>,
    window: Arc<Served<LlStream>>,
    subscription: Subscription,
    output: CmafOutput,
    metrics: Arc<Metrics>,
    advice: Advice,
    /// The TS output runs too: it gives the encoder advice for the streams it carries.
    ts_on: bool,
    lanes: Lanes,
    recording: Option<Recording>,
}

/// A stream's recorder and where its writes go.
struct Recording {
    recorder: Recorder,
    recordings: Recordings,
    writes: Vec<Write>,
    /// A multitrack publish is served one rendition per track; its recording, one file of
    /// every track, is cut by an output of its own (a fragment per segment).
    all_tracks: Option<CmafOutput>,
    rules: SegmentRules,
    made: Vec<CmafEvent>,
    /// The stream said the current publish is recorded, when last looked at
    /// (`Stream::is_recorded`: the API starts and stops recordings during a publish).
    requested: bool,
}

impl Recording {
    /// A publish starts: recorded when the ingest said so (`record.enabled`, or the
    /// stream-service's `record: true`).
    fn begin(&mut self, stream: &Stream, tracks: &Tracks) {
        // A multitrack publish that was taken over: what its output held unfinished is
        // recorded before the recording moves on.
        if self.all_tracks.is_some() {
            self.push_all_tracks(stream, &MediaEvent::End(Ending::Stopped));
        }
        // A recording the last publish parked is found by the next one (both may come in
        // one batch of events).
        self.flush();
        let record = stream.is_recorded(tracks.publisher);
        self.requested = record;
        self.all_tracks = (record && tracks.is_multitrack())
            .then(|| CmafOutput::new(self.rules, self.rules.segment_target));
        let parked = record
            .then(|| self.recordings.unpark(&self.recorder.stream_path()))
            .flatten();
        self.recorder
            .begin(record, tracks, parked, &mut self.writes);
    }

    /// An event of a multitrack publish, through the recording's own output.
    fn push_all_tracks(&mut self, stream: &Stream, event: &MediaEvent) {
        let Some(output) = self.all_tracks.as_mut() else {
            return;
        };
        let mut advice = Vec::new();
        if let Err(e) = output.push(event, &mut self.made, &mut advice) {
            warn!(stream = %stream.name, "fMP4 writer refused media of the recording, fragment dropped: {e}");
            output.discard_part();
        }
        let now = SystemTime::now();
        for m in self.made.drain(..) {
            self.recorder.push(&m, now, &mut self.writes);
        }
        if let MediaEvent::End(_) = event {
            self.recorder.end(&mut self.writes);
            self.all_tracks = None;
        }
    }

    /// Follows what the API asked since the last look: a recording started (from the next
    /// segment start) or stopped (closed at once) during `publisher`'s publish. A recording
    /// the writer gave up on (a failed write) is no longer requested. A flag set for a newer
    /// publisher is left to its `Start` (a takeover, a reconnect).
    fn follow(&mut self, stream: &Stream, publisher: Option<u64>) {
        let Some(publisher) = publisher else {
            return;
        };
        let flagged = stream.recorded_publisher();
        if flagged != 0 && flagged != publisher {
            return;
        }
        let asked = flagged == publisher;
        if asked != self.requested {
            self.requested = asked;
            if asked {
                info!(stream = %stream.name, "recording starts at the next segment");
                self.recorder.start();
            } else {
                info!(stream = %stream.name, "recording stopped");
                self.recorder.stop(&mut self.writes);
                self.all_tracks = None;
            }
        } else if asked && !self.recorder.is_wanted() {
            stream.stop_recording(publisher);
            self.requested = false;
        }
    }

    /// Tells the stream which recording is being written (for the stats API).
    fn stream_recording(&self, stream: &Stream) {
        stream.set_recording_id(self.recorder.recording_id());
    }

    fn flush(&mut self) {
        if !self.writes.is_empty() {
            self.recordings.submit(self.writes.drain(..));
        }
    }
}

/// What a stream's renditions are made with.
struct Lanes {
    disk: DiskWriterHandle,
    dir: StreamDir,
    settings: OutputSettings,
    /// Every rendition the stream has had (kept for its life, so a publisher that comes back
    /// with the same tracks continues each playlist after a discontinuity).
    all: Vec<Lane>,
    /// The current publish's track ids to lanes; empty for a single-track publish.
    active: Vec<usize>,
    /// The current publish's media time and the wall-clock time it maps to, shared by its
    /// renditions: their segments' EXT-X-PROGRAM-DATE-TIMEs follow the media time from one
    /// anchor, so a player that aligns renditions by date (hls.js with alternate audio)
    /// finds the same media at the same date in each.
    anchor: Option<(Timestamp90k, SystemTime)>,
}

/// One rendition's output and window.
struct Lane {
    output: CmafOutput,
    rendition: Arc<Rendition>,
    /// The current publish's id for the track (the lane's output sees it as track 0).
    track: TrackId,
    /// Where its latest segment started.
    last_cut: Option<Timestamp90k>,
    /// Where the segment whose first part has not gone out yet starts (its date comes from
    /// there).
    undated: Option<Timestamp90k>,
}

impl Lanes {
    /// A new publish: its renditions, when it is multitrack. Renditions the new publish
    /// keeps (same kind and track id) continue after a discontinuity; the others end.
    fn begin(&mut self, stream: &Stream, tracks: &Tracks) {
        let multitrack = tracks.is_multitrack();
        let kept = |r: &Rendition| {
            multitrack
                && tracks
                    .tracks
                    .iter()
                    .any(|t| t.kind == r.kind && t.source == r.source)
        };
        for &i in &self.active {
            let rendition = &self.all[i].rendition;
            if !kept(rendition) {
                rendition.window.update(|w, actions| {
                    w.end(Instant::now(), actions);
                    rendition.set_position(w.position());
                });
            }
        }
        self.active.clear();
        self.anchor = None;
        if !multitrack {
            stream.set_renditions(Vec::new());
            return;
        }
        for track in &tracks.tracks {
            let found = self
                .all
                .iter()
                .position(|l| l.rendition.kind == track.kind && l.rendition.source == track.source);
            let index = found.unwrap_or_else(|| {
                let name = match track.kind {
                    TrackKind::Video => format!("v{}", track.source),
                    TrackKind::Audio => format!("a{}", track.source),
                };
                let dir = StreamDir {
                    app: self.dir.app.clone(),
                    key: format!("{}/{name}", self.dir.key),
                };
                let window = LlStream::new(
                    dir,
                    self.settings.window.clone(),
                    self.settings.part_target,
                    SystemTime::now(),
                );
                let window = Arc::new(Served::new(window, self.disk.clone()));
                self.all.push(Lane {
                    output: CmafOutput::new(self.settings.rules, self.settings.part_target),
                    rendition: Arc::new(Rendition::new(track.kind, track.source, window)),
                    track: track.id,
                    last_cut: None,
                    undated: None,
                });
                self.all.len() - 1
            });
            let lane = &mut self.all[index];
            lane.track = track.id;
            lane.last_cut = None;
            lane.undated = None;
            // Audio renditions cut where the video renditions do.
            lane.output
                .set_following(track.kind == TrackKind::Audio && tracks.has_video());
            lane.rendition.begin_publisher(track.config.clone());
            lane.rendition.window.update(|w, actions| {
                w.begin_publisher(Instant::now(), actions);
                lane.rendition.set_position(w.position());
            });
            self.active.push(index);
        }
        stream.set_renditions(
            self.active
                .iter()
                .map(|&i| self.all[i].rendition.clone())
                .collect(),
        );
    }

    /// Takes one event of a multitrack publish: each lane gets its track's part of it, as
    /// the stream of a publish of that track alone. Returns how many segments closed.
    fn push(
        &mut self,
        stream: &Stream,
        event: &MediaEvent,
        made: &mut Vec<CmafEvent>,
        lead_advice: &mut Vec<CmafAdvice>,
    ) -> u64 {
        let mut segments_closed = 0;
        let mut advice = Vec::new();
        // The first video rendition's advice is the stream's.
        let lead = self
            .active
            .iter()
            .copied()
            .find(|&i| self.all[i].rendition.kind == TrackKind::Video);
        for &i in &self.active {
            let lane = &mut self.all[i];
            let translated;
            let event = match event {
                MediaEvent::Start(tracks) => {
                    let Some(track) = tracks.get(lane.track) else {
                        continue;
                    };
                    translated = MediaEvent::Start(Arc::new(Tracks {
                        publisher: tracks.publisher,
                        tracks: vec![Track {
                            id: TrackId(0),
                            ..track.clone()
                        }],
                    }));
                    &translated
                }
                MediaEvent::Config(track, config) if *track == lane.track => {
                    lane.rendition.set_config(Some(config.clone()));
                    translated = MediaEvent::Config(TrackId(0), config.clone());
                    &translated
                }
                MediaEvent::Frame(frame) if frame.track == lane.track => {
                    translated = MediaEvent::Frame(Frame {
                        track: TrackId(0),
                        ..frame.clone()
                    });
                    &translated
                }
                MediaEvent::End(_) => event,
                _ => continue,
            };
            if let Err(e) = lane.output.push(event, made, &mut advice) {
                warn!(stream = %stream.name, rendition = %lane.rendition.name, "fMP4 writer refused media, part dropped: {e}");
                lane.output.discard_part();
            }
            if Some(i) == lead {
                lead_advice.append(&mut advice);
            }
            advice.clear();
            if made.is_empty() {
                continue;
            }
            let frame_duration = match event {
                MediaEvent::Frame(f) => f.duration,
                _ => Duration90k::ZERO,
            };
            if let MediaEvent::Frame(f) = event {
                let cut = made
                    .iter()
                    .any(|m| matches!(m, CmafEvent::SegmentStart { .. }));
                if cut && lane.rendition.kind == TrackKind::Video {
                    lane.last_cut = Some(f.dts);
                    self.check_alignment(stream, i, f.dts, f.duration);
                    let closed = made
                        .iter()
                        .any(|m| matches!(m, CmafEvent::SegmentEnd { .. }));
                    if Some(i) == lead && closed {
                        for &j in &self.active {
                            if self.all[j].rendition.kind == TrackKind::Audio {
                                self.all[j].output.cut_at(f.pts);
                            }
                        }
                    }
                }
            }
            let anchor = match (self.anchor, event) {
                (Some(anchor), _) => Some(anchor),
                (None, MediaEvent::Frame(f)) => Some((f.pts, SystemTime::now())),
                (None, _) => None,
            };
            self.anchor = anchor;
            let lane = &mut self.all[i];
            let mut wall = SystemTime::now();
            for m in made.iter() {
                match m {
                    CmafEvent::SegmentStart { .. } => {
                        lane.undated = match event {
                            MediaEvent::Frame(f) => Some(f.pts),
                            _ => None,
                        };
                    }
                    CmafEvent::Part { data, duration, .. } => {
                        lane.rendition.note_part(data.len(), frame_duration);
                        // The window dates a segment by its first part's arrival less the
                        // part's duration: hand it the anchor's date of where the segment
                        // starts instead.
                        if let (Some(start), Some((media, date))) = (lane.undated.take(), anchor) {
                            let offset = start.ticks() as i64 - media.ticks() as i64;
                            let at = std::time::Duration::from_nanos(
                                offset.unsigned_abs() * 100_000 / 9,
                            );
                            let at = if offset >= 0 { date + at } else { date - at };
                            wall = at
                                + std::time::Duration::from_nanos(duration.ticks() * 100_000 / 9);
                        }
                    }
                    CmafEvent::SegmentEnd { duration, .. } => {
                        lane.rendition.note_segment(*duration);
                        segments_closed += 1;
                    }
                    _ => {}
                }
            }
            let rendition = &lane.rendition;
            rendition.window.update(|w, actions| {
                w.push(made.drain(..), Instant::now(), wall, actions);
                rendition.set_position(w.position());
            });
        }
        if let MediaEvent::End(_) = event {
            for &i in &self.active {
                let rendition = &self.all[i].rendition;
                rendition.window.update(|w, actions| {
                    w.end(Instant::now(), actions);
                    rendition.set_position(w.position());
                });
            }
        }
        segments_closed
    }

    fn is_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Video lane `i` started a segment at `at`: every other video lane that cut within
    /// half a segment target of it should have cut at the same time (within half a frame).
    /// A lane whose frames of that time come later is checked when it cuts, against this one.
    fn check_alignment(&self, stream: &Stream, i: usize, at: Timestamp90k, frame: Duration90k) {
        let near = self.settings.rules.segment_target.ticks() / 2;
        let apart = self.active.iter().filter(|&&j| j != i).find_map(|&j| {
            let other = &self.all[j];
            let cut = other
                .last_cut
                .filter(|_| other.rendition.kind == TrackKind::Video)?;
            let distance = cut.ticks().abs_diff(at.ticks());
            (distance <= near && distance > frame.ticks() / 2).then_some(&other.rendition.name)
        });
        if let Some(other) = apart {
            note_misaligned(stream, &self.all[i].rendition.name, other, at);
        }
    }

    /// The first video rendition's keyframe interval (else the first rendition's).
    fn keyframe_interval(&self) -> Option<Duration90k> {
        let lead = self
            .active
            .iter()
            .find(|&&i| self.all[i].rendition.kind == TrackKind::Video)
            .or(self.active.first())?;
        self.all[*lead].output.keyframe_interval()
    }

    /// The decode time the first video rendition (else the first) waits for next: the
    /// renditions' frames of one time come together, so reading that one promptly serves
    /// all.
    fn awaited(&self) -> Option<Timestamp90k> {
        let lead = self
            .active
            .iter()
            .find(|&&i| self.all[i].rendition.kind == TrackKind::Video)
            .or(self.active.first())?;
        self.all[*lead].output.awaited()
    }

    /// Payload bytes the renditions hold in parts being gathered.
    fn open_part_bytes(&self) -> usize {
        self.active
            .iter()
            .map(|&i| self.all[i].output.open_part_bytes())
            .sum()
    }
}

/// A rendition's segment starts near, but not at, where another's does: players switching
/// between them there glitch. Logged once per publish, counted in the stats API.
fn note_misaligned(stream: &Stream, rendition: &str, other: &str, at: Timestamp90k) {
    let mut first = false;
    stream.update_media(|m| {
        first = m.misaligned_cuts == 0;
        m.misaligned_cuts += 1;
    });
    if first {
        warn!(
            stream = %stream.name,
            rendition,
            other,
            at = ?at,
            "the encoder's renditions do not have their keyframes at the same times: segments \
             of the variants start at different times and players switching between them \
             may stall; give every rendition the same keyframe interval (ffmpeg: -g, \
             -keyint_min and -sc_threshold 0; OBS: a fixed keyframe interval)"
        );
    }
}

impl CmafTask {
    /// Whether this output gives the encoder advice: when no TS output runs, or the stream's
    /// codecs are not ones it carries.
    fn advises(&self) -> bool {
        !self.ts_on || self.stream.classic_is_cmaf()
    }

    /// Renders the renditions' multivariant playlist again (their measured bit rates
    /// changed, or the publish did); the stream is playable once it exists.
    fn refresh_multivariant(&self, publisher: Option<u64>) {
        let renditions = self.stream.renditions();
        let labels = self.stream.media().audio_labels;
        let text =
            rendition::multivariant(&renditions, &labels, crate::hls::ll_stream::PLAYLIST_NAME);
        let ready = text.is_some();
        self.stream.set_multivariant(text);
        if let (true, Some(id)) = (ready, publisher) {
            self.stream.mark_playable(id);
        }
    }

    fn advise(&self, advice: &mut Vec<CmafAdvice>) {
        let advises = self.advises();
        for a in advice.drain(..).filter(|_| advises) {
            match a {
                CmafAdvice::LongKeyframeInterval { interval } => {
                    self.advice.long_keyframe_interval(&self.stream, interval)
                }
                CmafAdvice::ForcedCut { length } => self.advice.forced_cut(&self.stream, length),
            }
        }
    }

    async fn run(mut self) {
        let mut events = Vec::with_capacity(BATCH);
        let mut made = Vec::new();
        let mut advice = Vec::new();
        let mut publisher = None;
        loop {
            let received = self.subscription.recv(&mut events, BATCH).await;
            note_lost(&self.stream, &self.metrics, "CMAF", received.lost);
            if let Some(r) = &mut self.recording {
                r.follow(&self.stream, publisher);
            }
            for event in events.drain(..) {
                if let MediaEvent::Start(tracks) = &event {
                    publisher = Some(tracks.publisher);
                    self.stream.set_classic_is_cmaf(!ts_output::carries(tracks));
                    self.lanes.begin(&self.stream, tracks);
                    if let Some(r) = &mut self.recording {
                        r.begin(&self.stream, tracks);
                    }
                    if self.lanes.is_active() {
                        // A multitrack publish is served by its renditions: the single
                        // window ends (so the stream can be swept when they are gone) and
                        // the single output drops what an earlier publisher left in it.
                        let _ = self.output.push(
                            &MediaEvent::End(Ending::Broken),
                            &mut made,
                            &mut advice,
                        );
                        made.clear();
                        advice.clear();
                        self.window.update(|w, actions| {
                            w.end(Instant::now(), actions);
                            self.stream.set_position(w.position());
                        });
                        self.refresh_multivariant(publisher);
                    } else {
                        // The segment the old publisher left open closes short: requests held
                        // on it are answered now.
                        self.window.update(|w, actions| {
                            w.begin_publisher(Instant::now(), actions);
                            self.stream.set_position(w.position());
                        });
                    }
                }
                if let MediaEvent::Config(_, config) = &event
                    && !config.in_ts()
                {
                    self.stream.set_classic_is_cmaf(true);
                }
                if self.lanes.is_active() {
                    if let Some(r) = &mut self.recording {
                        r.push_all_tracks(&self.stream, &event);
                    }
                    let closed = self
                        .lanes
                        .push(&self.stream, &event, &mut made, &mut advice);
                    self.advise(&mut advice);
                    if closed > 0 {
                        let interval = self.lanes.keyframe_interval();
                        self.stream.update_media(|m| m.keyframe_interval = interval);
                        self.refresh_multivariant(publisher);
                        self.metrics.segments_total.inc_by(closed);
                    }
                    continue;
                }
                if let Err(e) = self.output.push(&event, &mut made, &mut advice) {
                    warn!(stream = %self.stream.name, "fMP4 writer refused media, part dropped: {e}");
                    self.output.discard_part();
                }
                self.advise(&mut advice);
                if let Some(r) = &mut self.recording {
                    let now = SystemTime::now();
                    for m in &made {
                        r.recorder.push(m, now, &mut r.writes);
                    }
                    if let MediaEvent::End(_) = event {
                        r.recorder.end(&mut r.writes);
                    }
                }
                if !made.is_empty() {
                    let closed_by = match &event {
                        MediaEvent::Frame(f) => f.received,
                        _ => Instant::now(),
                    };
                    let parts = made
                        .iter()
                        .filter(|e| matches!(e, CmafEvent::Part { .. }))
                        .count();
                    let segments = made
                        .iter()
                        .filter(|e| matches!(e, CmafEvent::SegmentEnd { .. }))
                        .count();
                    // A part, a segment's end and the next one's start go to the window
                    // together: its playlist is rendered once, and its preload hint never
                    // names a part that will not come.
                    self.window.update(|w, actions| {
                        w.push(made.drain(..), Instant::now(), SystemTime::now(), actions);
                        self.stream.set_position(w.position());
                    });
                    let listed = closed_by.elapsed().as_secs_f64();
                    for _ in 0..parts {
                        self.metrics.part_publish_seconds.observe(listed);
                    }
                    if segments > 0 {
                        if let Some(id) = publisher {
                            self.stream.mark_playable(id);
                        }
                        // The output index.m3u8 serves counts the stream's segments.
                        if self.advises() {
                            let interval = self.output.keyframe_interval();
                            self.stream.update_media(|m| m.keyframe_interval = interval);
                            self.metrics.segments_total.inc_by(segments as u64);
                        }
                    }
                }
                if let MediaEvent::End(_) = event {
                    self.window.update(|w, actions| {
                        w.end(Instant::now(), actions);
                        self.stream.set_position(w.position());
                    });
                }
            }
            let (open, awaited) = if self.lanes.is_active() {
                (self.lanes.open_part_bytes(), self.lanes.awaited())
            } else {
                (self.output.open_part_bytes(), self.output.awaited())
            };
            self.stream.set_open_bytes(OutputKind::Cmaf, open);
            self.stream.set_awaited(OutputKind::Cmaf, awaited);
            if let Some(r) = &mut self.recording {
                if received.closed {
                    r.recorder.finish(&mut r.writes);
                }
                r.flush();
                r.stream_recording(&self.stream);
            }
            if received.closed {
                debug!(stream = %self.stream.name, "CMAF output ended");
                return;
            }
        }
    }
}
