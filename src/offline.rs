//! `rtmp-server remux [--format ts|cmaf] INPUT.flv OUT_DIR`: the live path's demuxer, an
//! output (MPEG-TS, or CMAF fragmented MP4), the playlist and the file writer run over a file,
//! producing a VOD playlist with every segment kept.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::Context;
use bytes::BytesMut;

use crate::config::Config;
use crate::flv::demux::{FlvDemuxer, TagKind};
use crate::flv::file::{FlvItem, FlvReader};
use crate::hls::cmaf_output::CmafOutput;
use crate::hls::cmaf_vod::CmafVod;
use crate::hls::disk::MediaRoot;
use crate::hls::ll_stream::CmafEvent;
use crate::hls::stream::{HlsSettings, HlsStream, StreamDir};
use crate::media::Duration90k;
use crate::media::frame::{Ending, MediaEvent};
use crate::remux::{RemuxEvent, Remuxer};

/// Bytes read from the input file at a time.
const READ_SIZE: usize = 1 << 20;

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
/// `index.m3u8`.
pub fn remux_file(
    input: &Path,
    output: &Path,
    config: &Config,
    format: Format,
) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let root = MediaRoot::new(output.to_path_buf());
    match format {
        Format::Ts => remux_ts(file, input, output, &root, config),
        Format::Cmaf => remux_cmaf(file, input, output, &root, config),
    }
}

/// The MPEG-TS remux.
fn remux_ts(
    mut file: std::fs::File,
    input: &Path,
    output: &Path,
    root: &MediaRoot,
    config: &Config,
) -> anyhow::Result<Summary> {
    // The output folder is the stream folder itself.
    let dir = StreamDir {
        app: String::new(),
        key: String::new(),
    };
    let settings = HlsSettings {
        list_size: config.hls.list_size,
        delete_segments: false,
        keep: true,
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
            for action in actions.drain(..) {
                root.apply(action)?;
            }
            Ok(())
        };
    for_each_item(&mut file, input, |item| {
        remuxer
            .push_file_item(item, &mut events)
            .with_context(|| format!("remuxing {}", input.display()))?;
        apply(&mut events, &mut hls, false)
    })?;
    remuxer.finish(&mut events);
    apply(&mut events, &mut hls, true)?;
    Ok(Summary {
        segments: hls.segments_produced(),
        duration,
        output: output.to_path_buf(),
    })
}

/// The CMAF remux: the demuxer's media events through the CMAF output into a VOD
/// presentation.
fn remux_cmaf(
    mut file: std::fs::File,
    input: &Path,
    output: &Path,
    root: &MediaRoot,
    config: &Config,
) -> anyhow::Result<Summary> {
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
        for action in actions.drain(..) {
            root.apply(action)?;
        }
        Ok(())
    };
    let now = Instant::now();
    for_each_item(&mut file, input, |item| {
        match item {
            FlvItem::Header(h) => demux.expect_tracks(h.type_flags_video, h.type_flags_audio),
            FlvItem::Tag(tag) => {
                if let Some(kind) = TagKind::of(tag.tag_type) {
                    demux
                        .push(kind, tag.timestamp, tag.body, now, &mut media)
                        .with_context(|| format!("remuxing {}", input.display()))?;
                }
            }
        }
        apply(&mut media, &mut vod)
    })?;
    demux.finish(&mut media);
    media.push(MediaEvent::End(Ending::Stopped));
    apply(&mut media, &mut vod)?;
    let segments = vod.segments() as u64;
    let mut last = Vec::new();
    vod.finish(&mut last);
    for action in last {
        root.apply(action)?;
    }
    Ok(Summary {
        segments,
        duration,
        output: output.to_path_buf(),
    })
}

/// Reads the FLV file `file` (named `input`) a megabyte at a time and hands each item to `f`.
fn for_each_item(
    file: &mut std::fs::File,
    input: &Path,
    mut f: impl FnMut(FlvItem) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    loop {
        buf.reserve(READ_SIZE);
        let spare = buf.spare_capacity_mut().len().min(READ_SIZE);
        let start = buf.len();
        buf.resize(start + spare, 0);
        let n = file
            .read(&mut buf[start..])
            .with_context(|| format!("reading {}", input.display()))?;
        buf.truncate(start + n);
        if n == 0 {
            reader
                .finish(&buf)
                .with_context(|| format!("{} ends early", input.display()))?;
            return Ok(());
        }
        while let Some(item) = reader
            .read(&mut buf)
            .with_context(|| format!("reading {}", input.display()))?
        {
            f(item)?;
        }
    }
}
