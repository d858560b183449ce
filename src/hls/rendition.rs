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
    segments: u64,
    /// The latest frame duration (video: the frame rate).
    frame_duration: Duration90k,
    /// The last publisher's (peak, average), standing in until this one's first segment.
    carried: Option<(u64, u64)>,
}

impl Measure {
    fn measured(&self) -> Option<(u64, u64)> {
        (self.total > Duration90k::ZERO)
            .then(|| (self.peak_bps, bits_per_second(self.total_bytes, self.total)))
    }
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

    /// A new publisher's track goes out here: it is measured afresh, and until its first
    /// segment closes the last publisher's figures stand in (a takeover keeps the
    /// multivariant playlist served).
    pub fn begin_publisher(&self, config: Option<Arc<CodecConfig>>) {
        let mut m = lock(&self.measure);
        let carried = m.measured().or(m.carried);
        *m = Measure {
            config,
            carried,
            ..Measure::default()
        };
    }

    /// Whether a request waits on this rendition's position.
    pub fn is_waited_on(&self) -> bool {
        self.position.receiver_count() > 0
    }

    /// A part of `bytes` was made; `frame_duration`: the track's latest frame duration.
    pub fn note_part(&self, bytes: usize, frame_duration: Duration90k) {
        let mut m = lock(&self.measure);
        m.open_bytes += bytes as u64;
        if frame_duration > Duration90k::ZERO {
            m.frame_duration = frame_duration;
        }
    }

    /// A segment of `duration` closed (its bytes are the parts noted since the last). A
    /// segment shorter than half the average so far (cut short by a takeover or the end)
    /// counts in the average but not in the peak: its keyframe alone would inflate it.
    pub fn note_segment(&self, duration: Duration90k) {
        let mut m = lock(&self.measure);
        let bytes = std::mem::take(&mut m.open_bytes);
        if duration > Duration90k::ZERO {
            let segments = m.segments.max(1);
            let short = m.segments > 0 && duration.ticks() * 2 < m.total.ticks() / segments;
            if !short {
                m.peak_bps = m.peak_bps.max(bits_per_second(bytes, duration));
            }
            m.total_bytes += bytes;
            m.total = m.total + duration;
            m.segments += 1;
        }
    }

    /// Measured (peak, average) bits a second; before this publisher's first segment, the
    /// last publisher's; `None` before any.
    pub fn bandwidth(&self) -> Option<(u64, u64)> {
        let m = lock(&self.measure);
        m.measured().or(m.carried)
    }
}

fn bits_per_second(bytes: u64, duration: Duration90k) -> u64 {
    let ticks = duration.ticks().max(1);
    bytes.saturating_mul(8 * Duration90k::HZ) / ticks
}

/// The multivariant playlist of a multitrack stream: one `EXT-X-STREAM-INF` per video
/// rendition (lowest bandwidth first, the one players start with), audio renditions as one
/// `EXT-X-MEDIA` group that every variant names (its BANDWIDTH counts the group's highest
/// rate, its CODECS every codec of the group); a stream with audio renditions only lists each
/// as a variant. `None` until every rendition has closed a segment, in this publish or in
/// the one it took over (BANDWIDTH is measured, never guessed). `playlist`: the media
/// playlist's file name in each rendition's folder.
pub fn multivariant(
    renditions: &[Arc<Rendition>],
    labels: &[TrackName],
    playlist: &str,
) -> Option<String> {
    struct Measured {
        uri: String,
        peak: u64,
        average: u64,
        config: Arc<CodecConfig>,
        frame_duration: Duration90k,
        source: u8,
    }
    let mut video = Vec::new();
    let mut audio = Vec::new();
    for r in renditions {
        let (peak, average) = r.bandwidth()?;
        let m = lock(&r.measure);
        let measured = Measured {
            uri: format!("{}/{playlist}", r.name),
            peak,
            average,
            config: m.config.clone()?,
            frame_duration: m.frame_duration,
            source: r.source,
        };
        match r.kind {
            TrackKind::Video => video.push(measured),
            TrackKind::Audio => audio.push(measured),
        }
    }
    let audio_peak = audio.iter().map(|a| a.peak).max().unwrap_or(0);
    let audio_average = audio.iter().map(|a| a.average).max().unwrap_or(0);
    let mut audio_codecs: Vec<&str> = Vec::new();
    for a in &audio {
        if !audio_codecs.contains(&a.config.codec_string()) {
            audio_codecs.push(a.config.codec_string());
        }
    }
    let mut variants = Vec::new();
    let mut renditions_out = Vec::new();
    if video.is_empty() {
        // Audio only: each track is a variant of its own.
        for a in &audio {
            variants.push(Variant {
                uri: a.uri.clone(),
                bandwidth: a.peak,
                average_bandwidth: Some(a.average),
                resolution: None,
                frame_rate: None,
                codecs: a.config.codec_string().to_owned(),
                audio_group: None,
            });
        }
    } else {
        let mut names: Vec<String> = Vec::new();
        for a in &audio {
            let label = labels.iter().find(|l| l.track == a.source);
            let mut name = label
                .and_then(|l| l.name.clone().or_else(|| l.language.clone()))
                .unwrap_or_else(|| format!("Audio {}", a.source));
            // NAME is unique within a group (RFC 8216bis §4.4.6.1.1).
            if names.contains(&name) {
                name = format!("{name} ({})", a.source);
            }
            names.push(name.clone());
            renditions_out.push(AudioRendition {
                group: AUDIO_GROUP.to_owned(),
                name,
                language: label.and_then(|l| l.language.clone()),
                default: renditions_out.is_empty(),
                autoselect: true,
                channels: a.config.audio_facts().map(|f| f.channels),
                uri: a.uri.clone(),
            });
        }
        for v in &video {
            let facts = v.config.video_facts()?;
            let frame_rate = facts.frame_rate.or_else(|| {
                (v.frame_duration > Duration90k::ZERO)
                    .then(|| Duration90k::HZ as f64 / v.frame_duration.ticks() as f64)
            });
            let mut codecs = v.config.codec_string().to_owned();
            for codec in &audio_codecs {
                codecs.push(',');
                codecs.push_str(codec);
            }
            variants.push(Variant {
                uri: v.uri.clone(),
                bandwidth: v.peak + audio_peak,
                average_bandwidth: Some(v.average + audio_average),
                resolution: (facts.width > 0 && facts.height > 0)
                    .then_some((facts.width, facts.height)),
                frame_rate,
                codecs,
                audio_group: (!audio.is_empty()).then(|| AUDIO_GROUP.to_owned()),
            });
        }
    }
    // Lowest bandwidth first: players start with the first variant listed, and one that
    // starts low switches up as its measure allows, without flushing what it buffered (a
    // player that starts high and finds the bandwidth lower drops its buffer and stalls).
    variants.sort_by_key(|v| v.bandwidth);
    Some(
        Multivariant {
            version: 6,
            independent_segments: true,
            variants,
            audio: renditions_out,
        }
        .render(),
    )
}
