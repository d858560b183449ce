//! `rtmp-server remux [--format ts|cmaf] INPUT.flv OUT_DIR`: the live path's demuxer, an
//! output (MPEG-TS, or CMAF fragmented MP4), the playlist and the file writer run over a file,
//! producing a VOD playlist with every segment kept.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;

use crate::config::Config;
use crate::flv::demux::{FlvDemuxer, TagKind};
use crate::flv::file::{FlvFile, FlvItem};
use crate::hls::cmaf_output::CmafOutput;
use crate::hls::cmaf_vod::CmafVod;
use crate::hls::disk::MediaRoot;
use crate::hls::ll_stream::CmafEvent;
use crate::hls::stream::{DiskAction, HlsSettings, HlsStream, StreamDir};
use crate::media::Duration90k;
use crate::media::frame::{Ending, MediaEvent};
use crate::remux::{RemuxEvent, Remuxer};

/// Disk actions queued for the writer thread at most: a few segments, so the remux runs
/// ahead of the writes while segment buffers still come back for reuse before new ones are
/// needed.
const WRITE_QUEUE: usize = 4;

/// Writer threads at most.
const MAX_WRITERS: usize = 4;

/// What an offline remux produced.
pub struct Summary {
    pub segments: u64,
    pub duration: Duration90k,
    pub output: std::path::PathBuf,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} segments, {} of media, playlist {}",
            self.segments,
            self.duration,
            self.output
                .join(crate::hls::stream::PLAYLIST_NAME)
                .display()
        )
    }
}

/// The segment format an offline remux writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// MPEG-TS segments, as `index.m3u8` serves live.
    Ts,
    /// CMAF (fragmented MP4) segments with their initialization section, as `llhls.m3u8`
    /// serves live.
    Cmaf,
}

/// Remuxes the FLV file `input` into `output` (created if needed): segments and a VOD
/// `index.m3u8`. The file is mapped, not read (tag bodies are slices of it), and the output
/// is written by a thread of its own while the remux goes on.
pub fn remux_file(
    input: &Path,
    output: &Path,
    config: &Config,
    format: Format,
) -> anyhow::Result<Summary> {
    let data = read_input(input)?;
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let writer = Writer::start(MediaRoot::new(output.to_path_buf()));
    let items = FlvFile::new(data);
    let remuxed = match format {
        Format::Ts => remux_ts(items, input, config, &writer),
        Format::Cmaf => remux_cmaf(items, input, config, &writer),
    };
    // A write error stops the remux (the queue refuses more); it is the error to report.
    let written = writer.finish();
    let (segments, duration) = match (remuxed, written) {
        (_, Err(e)) => return Err(e).with_context(|| format!("writing {}", output.display())),
        (Err(e), Ok(())) => return Err(e),
        (Ok(done), Ok(())) => done,
    };
    Ok(Summary {
        segments,
        duration,
        output: output.to_path_buf(),
    })
}

/// The input's bytes: a regular file mapped into memory, anything else (a pipe) read.
fn read_input(input: &Path) -> anyhow::Result<Bytes> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", input.display()))?;
    if !meta.is_file() {
        let data = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
        return Ok(Bytes::from(data));
    }
    if meta.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and lives as long as the `Bytes` that own it. Like any tool
    // that maps its input, the file must not be truncated while it is remuxed.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .with_context(|| format!("mapping {}", input.display()))?;
    Ok(Bytes::from_owner(map))
}

/// Writes the output's files on threads of their own (one per core: writing is most of an
/// offline remux's work, and files are independent), the playlist last, once every segment
/// it lists is written.
struct Writer {
    queue: Option<std::sync::mpsc::SyncSender<DiskAction>>,
    threads: Vec<std::thread::JoinHandle<Result<(), crate::hls::disk::DiskError>>>,
    root: Arc<MediaRoot>,
    /// Playlists, written after the segments.
    last: std::sync::Mutex<Vec<DiskAction>>,
}

impl Writer {
    fn start(root: MediaRoot) -> Writer {
        let root = Arc::new(root);
        let (queue, actions) = std::sync::mpsc::sync_channel::<DiskAction>(WRITE_QUEUE);
        let actions = Arc::new(std::sync::Mutex::new(actions));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = (0..cores.clamp(1, MAX_WRITERS))
            .map(|_| {
                let (root, actions) = (root.clone(), actions.clone());
                std::thread::spawn(move || {
                    loop {
                        let next = actions.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(action) = next else { return Ok(()) };
                        root.apply(action)?;
                    }
                })
            })
            .collect();
        Writer {
            queue: Some(queue),
            threads,
            root,
            last: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Queues `actions` (drained); fails once a writer has stopped on an error.
    fn write(&self, actions: &mut Vec<DiskAction>) -> anyhow::Result<()> {
        let queue = self.queue.as_ref().expect("open until finish");
        for action in actions.drain(..) {
            if let DiskAction::WritePlaylist { .. } = action {
                self.last
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(action);
                continue;
            }
            queue
                .send(action)
                .map_err(|_| anyhow::anyhow!("the file writer stopped"))?;
        }
        Ok(())
    }

    /// Waits for every queued write, then writes the playlist; the first error, if any.
    fn finish(mut self) -> anyhow::Result<()> {
        drop(self.queue.take());
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            let joined = match thread.join() {
                Ok(r) => r.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow::anyhow!("the file writer panicked")),
            };
            if result.is_ok() {
                result = joined;
            }
        }
        result?;
        for action in self.last.into_inner().unwrap_or_else(|e| e.into_inner()) {
            self.root.apply(action)?;
        }
        Ok(())
    }
}

/// The MPEG-TS remux; returns the segments made and the media time they span.
fn remux_ts(
    items: FlvFile,
    input: &Path,
    config: &Config,
    writer: &Writer,
) -> anyhow::Result<(u64, Duration90k)> {
    // The output folder is the stream folder itself.
    let dir = StreamDir {
        app: String::new(),
        key: String::new(),
    };
    let settings = HlsSettings {
        list_size: config.hls.list_size,
        delete_segments: false,
        keep: true,
        dvr_window: Duration90k::ZERO,
    };
    let mut hls = HlsStream::new(dir, settings, true, SystemTime::now());
    let mut remuxer = Remuxer::new(config.hls.remux(None));
    let mut events = Vec::new();
    let mut actions = Vec::new();
    let mut duration = Duration90k::ZERO;
    let mut apply =
        |events: &mut Vec<RemuxEvent>, hls: &mut HlsStream, end: bool| -> anyhow::Result<()> {
            for event in events.drain(..) {
                if let RemuxEvent::Segment(segment) = event {
                    duration = duration + segment.duration;
                    hls.push(segment, Instant::now(), SystemTime::now(), &mut actions);
                }
            }
            if end {
                hls.end(Instant::now(), &mut actions);
            }
            writer.write(&mut actions)
        };
    for item in items {
        let item = item.with_context(|| format!("reading {}", input.display()))?;
        remuxer
            .push_file_item(item, &mut events)
            .with_context(|| format!("remuxing {}", input.display()))?;
        apply(&mut events, &mut hls, false)?;
    }
    remuxer.finish(&mut events);
    apply(&mut events, &mut hls, true)?;
    Ok((hls.segments_produced(), duration))
}

/// The CMAF remux: the demuxer's media events through the CMAF output into a VOD
/// presentation; returns the segments made and the media time they span.
fn remux_cmaf(
    items: FlvFile,
    input: &Path,
    config: &Config,
    writer: &Writer,
) -> anyhow::Result<(u64, Duration90k)> {
    let rules = crate::ingest::outputs::OutputSettings::from_config(&config.hls);
    let mut demux = FlvDemuxer::new();
    let mut cmaf = CmafOutput::new(rules.rules, rules.part_target);
    // The output folder is the stream folder itself.
    let mut vod = CmafVod::new(PathBuf::new(), SystemTime::now());
    let (mut media, mut made, mut advice, mut actions) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut duration = Duration90k::ZERO;
    let mut apply = |media: &mut Vec<MediaEvent>, vod: &mut CmafVod| -> anyhow::Result<()> {
        for event in media.drain(..) {
            cmaf.push(&event, &mut made, &mut advice)
                .with_context(|| format!("writing fragmented MP4 for {}", input.display()))?;
            advice.clear();
            for e in made.drain(..) {
                if let CmafEvent::SegmentEnd { duration: d, .. } = &e {
                    duration = duration + *d;
                }
                vod.push(e, &mut actions);
            }
        }
        writer.write(&mut actions)
    };
    let now = Instant::now();
    for item in items {
        match item.with_context(|| format!("reading {}", input.display()))? {
            FlvItem::Header(h) => demux.expect_tracks(h.type_flags_video, h.type_flags_audio),
            FlvItem::Tag(tag) => {
                if let Some(kind) = TagKind::of(tag.tag_type) {
                    demux
                        .push(kind, tag.timestamp, tag.body, now, &mut media)
                        .with_context(|| format!("remuxing {}", input.display()))?;
                    // Configurations are for logs and the stats API; a file has none of those.
                    demux.take_notices().for_each(drop);
                }
            }
        }
        apply(&mut media, &mut vod)?;
    }
    demux.finish(&mut media);
    media.push(MediaEvent::End(Ending::Stopped));
    apply(&mut media, &mut vod)?;
    let segments = vod.segments() as u64;
    let mut last = Vec::new();
    vod.finish(&mut last);
    writer.write(&mut last)?;
    Ok((segments, duration))
}
