//! `rtmp-server remux INPUT.flv OUT_DIR`: the live path's remuxer, segmenter, playlist and
//! file writer run over a file, producing a VOD playlist with every segment kept.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::{Instant, SystemTime};

use anyhow::Context;
use bytes::BytesMut;

use crate::config::Config;
use crate::flv::file::FlvReader;
use crate::hls::disk::MediaRoot;
use crate::hls::stream::{HlsSettings, HlsStream, StreamDir};
use crate::media::Duration90k;
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

/// Remuxes the FLV file `input` into `output` (created if needed): segments and a VOD
/// `index.m3u8`.
pub fn remux_file(input: &Path, output: &Path, config: &Config) -> anyhow::Result<Summary> {
    let mut file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    let root = MediaRoot::new(output.to_path_buf());
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
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::with_capacity(READ_SIZE);
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
            break;
        }
        while let Some(item) = reader
            .read(&mut buf)
            .with_context(|| format!("reading {}", input.display()))?
        {
            remuxer
                .push_file_item(item, &mut events)
                .with_context(|| format!("remuxing {}", input.display()))?;
            apply(&mut events, &mut hls, false)?;
        }
    }
    remuxer.finish(&mut events);
    apply(&mut events, &mut hls, true)?;
    Ok(Summary {
        segments: hls.segments_produced(),
        duration,
        output: output.to_path_buf(),
    })
}
