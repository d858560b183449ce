//! One track of a multitrack (adaptive-bitrate) publish, served as a media playlist of its
//! own: its Low-Latency window, where that window stands (for blocking requests on it), and
//! the bitrate measured from the segments it made. The stream's multivariant playlist lists
//! every rendition (see [`multivariant`]).
//!
//! Spec: RFC 8216bis §4.4.6.2 (EXT-X-STREAM-INF: BANDWIDTH is the peak segment bit rate,
//! AVERAGE-BANDWIDTH the average), §4.4.6.1 (EXT-X-MEDIA for alternative audio).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::hls::blocking::Position;
use crate::hls::ll_stream::LlStream;
use crate::hls::multivariant::{AudioRendition, Multivariant, Variant};
use crate::hls::served::Served;
use crate::hub::stream::lock;
use crate::media::Duration90k;
use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::frame::TrackName;

/// The audio group every video variant of a multitrack stream names.
const AUDIO_GROUP: &str = "audio";

/// One rendition of a multitrack stream.
pub struct Rendition {
    /// The path segment it is served under: `v{track}` for video, `a{track}` for audio.
    pub name: String,
    pub kind: TrackKind,
    /// The publisher's FLV track id.
    pub source: u8,
    pub window: Arc<Served<LlStream>>,
    position: watch::Sender<Position>,
    measure: Mutex<Measure>,
}

/// What the rendition's segments say about its bitrate, and its codec.
#[derive(Default)]
struct Measure {
    config: Option<Arc<CodecConfig>>,
    /// Bytes of the segment being made.
    open_bytes: u64,
    /// Highest bit rate of a whole segment.
    peak_bps: u64,
    total_bytes: u64,
    total: Duration90k,
    /// The latest frame duration (video: the frame rate).
    frame_duration: Duration90k,
}

impl Rendition {
    pub fn new(kind: TrackKind, source: u8, window: Arc<Served<LlStream>>) -> Rendition {
        let prefix = match kind {
            TrackKind::Video => 'v',
            TrackKind::Audio => 'a',
        };
        Rendition {
            name: format!("{prefix}{source}"),
            kind,
            source,
            window,
            position: watch::Sender::new(Position::default()),
            measure: Mutex::new(Measure::default()),
        }
    }

    /// The window changed: where it stands now.
    pub fn set_position(&self, position: Position) {
        self.position.send_if_modified(|p| {
            let changed = *p != position;
            *p = position;
            changed
        });
    }

    /// Follows where the window stands, for a request that waits on it.
    pub fn position(&self) -> watch::Receiver<Position> {
        self.position.subscribe()
    }

    /// The track's configuration now.
    pub fn set_config(&self, config: Option<Arc<CodecConfig>>) {
        lock(&self.measure).config = config;
    }

    /// A part of `bytes` was made; `frame_duration`: the track's latest frame duration.
    pub fn note_part(&self, bytes: usize, frame_duration: Duration90k) {
        let mut m = lock(&self.measure);
        m.open_bytes += bytes as u64;
        if frame_duration > Duration90k::ZERO {
            m.frame_duration = frame_duration;
        }
    }

    /// A segment of `duration` closed (its bytes are the parts noted since the last).
    pub fn note_segment(&self, duration: Duration90k) {
        let mut m = lock(&self.measure);
        let bytes = std::mem::take(&mut m.open_bytes);
        if duration > Duration90k::ZERO {
            m.peak_bps = m.peak_bps.max(bits_per_second(bytes, duration));
            m.total_bytes += bytes;
            m.total = m.total + duration;
        }
    }

    /// Measured (peak, average) bits a second; `None` before its first segment.
    pub fn bandwidth(&self) -> Option<(u64, u64)> {
        let m = lock(&self.measure);
        (m.total > Duration90k::ZERO).then(|| (m.peak_bps, bits_per_second(m.total_bytes, m.total)))
    }
}

fn bits_per_second(bytes: u64, duration: Duration90k) -> u64 {
    let ticks = duration.ticks().max(1);
    bytes.saturating_mul(8 * Duration90k::HZ) / ticks
}

/// The multivariant playlist of a multitrack stream: one `EXT-X-STREAM-INF` per video
/// rendition (highest bandwidth first, the one players start with), audio renditions as one
/// `EXT-X-MEDIA` group that every variant names. `None` until every rendition has closed a
/// segment (BANDWIDTH is measured, never guessed). `playlist`: the media playlist's file
/// name in each rendition's folder.
pub fn multivariant(
    renditions: &[Arc<Rendition>],
    labels: &[TrackName],
    playlist: &str,
) -> Option<String> {
    let mut audio = Vec::new();
    let mut audio_codec = None;
    let mut audio_peak = 0;
    let mut audio_average = 0;
    for r in renditions.iter().filter(|r| r.kind == TrackKind::Audio) {
        let (peak, average) = r.bandwidth()?;
        let m = lock(&r.measure);
        let facts = m.config.as_deref().and_then(CodecConfig::audio_facts);
        if audio.is_empty() {
            audio_codec = m.config.as_deref().map(|c| c.codec_string().to_owned());
            audio_peak = peak;
            audio_average = average;
        }
        let label = labels.iter().find(|l| l.track == r.source);
        audio.push(AudioRendition {
            group: AUDIO_GROUP.to_owned(),
            name: label
                .and_then(|l| l.name.clone().or_else(|| l.language.clone()))
                .unwrap_or_else(|| format!("Audio {}", r.source)),
            language: label.and_then(|l| l.language.clone()),
            default: audio.is_empty(),
            autoselect: true,
            channels: facts.map(|f| f.channels),
            uri: format!("{}/{playlist}", r.name),
        });
    }
    let mut variants = Vec::new();
    for r in renditions.iter().filter(|r| r.kind == TrackKind::Video) {
        let (peak, average) = r.bandwidth()?;
        let m = lock(&r.measure);
        let config = m.config.as_deref()?;
        let facts = config.video_facts()?;
        let frame_rate = facts.frame_rate.or_else(|| {
            (m.frame_duration > Duration90k::ZERO)
                .then(|| Duration90k::HZ as f64 / m.frame_duration.ticks() as f64)
        });
        let mut codecs = config.codec_string().to_owned();
        if let Some(audio) = &audio_codec {
            codecs.push(',');
            codecs.push_str(audio);
        }
        variants.push(Variant {
            uri: format!("{}/{playlist}", r.name),
            bandwidth: peak + audio_peak,
            average_bandwidth: Some(average + audio_average),
            resolution: (facts.width > 0 && facts.height > 0)
                .then_some((facts.width, facts.height)),
            frame_rate,
            codecs,
            audio_group: (!audio.is_empty()).then(|| AUDIO_GROUP.to_owned()),
        });
    }
    if variants.is_empty() {
        return None;
    }
    variants.sort_by_key(|v| std::cmp::Reverse(v.bandwidth));
    Some(
        Multivariant {
            version: 6,
            independent_segments: true,
            variants,
            audio,
        }
        .render(),
    )
}
