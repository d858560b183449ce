//! The media core's values: codec-neutral frames and the events that carry a stream from its
//! ingest to every output (TS HLS, CMAF HLS, and whatever else subscribes).
//!
//! A stream's events come in this order: [`MediaEvent::Start`] (the publisher's tracks and
//! their codec configurations), then frames in decoding order, interleaved across tracks, with
//! [`MediaEvent::Config`] where a track's configuration changes, then [`MediaEvent::End`] when
//! the publisher stops. A new `Start` without an `End` before it means another publisher took
//! the stream over: what the old one left unfinished is dropped.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::{Duration90k, Timestamp90k};

/// A track's index in its stream's [`Tracks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u8);

/// One track of a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Track {
    pub id: TrackId,
    pub kind: TrackKind,
    /// The publisher's id for it: the FLV track id of Enhanced RTMP multitrack packets, 0
    /// for a stream's only (or default) track of its kind.
    pub source: u8,
    /// Its codec configuration. The demuxer announces a track once its configuration is in;
    /// a producer that announces one earlier gives `None`, and a [`MediaEvent::Config`]
    /// brings it before its first frame.
    pub config: Option<Arc<CodecConfig>>,
}

/// What a publisher's metadata says to call one of its tracks (in a multivariant playlist's
/// renditions).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackName {
    /// The FLV track id.
    pub track: u8,
    pub name: Option<String>,
    /// An RFC 5646 language tag.
    pub language: Option<String>,
}

/// The tracks a publisher sends, fixed for its publish: video tracks first (by FLV track id),
/// then audio tracks.
#[derive(Clone, Debug, PartialEq)]
pub struct Tracks {
    /// The publisher whose media these are: the id the registry gave it (unique for the
    /// server's life), so that outputs taking the start later still know whose it was; 0
    /// where there is none (an offline remux).
    pub publisher: u64,
    pub tracks: Vec<Track>,
}

impl Tracks {
    /// The tracks of `kind`, in order.
    pub fn all_of(&self, kind: TrackKind) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(move |t| t.kind == kind)
    }

    /// Whether the stream has more than one track of a kind (an adaptive-bitrate publish).
    pub fn is_multitrack(&self) -> bool {
        self.all_of(TrackKind::Video).count() > 1 || self.all_of(TrackKind::Audio).count() > 1
    }

    /// The first track of `kind`, if the stream has one.
    pub fn of(&self, kind: TrackKind) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == kind)
    }

    pub fn get(&self, id: TrackId) -> Option<&Track> {
        self.tracks.get(usize::from(id.0))
    }

    pub fn has_video(&self) -> bool {
        self.of(TrackKind::Video).is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.of(TrackKind::Audio).is_some()
    }

    /// The track whose keyframes a late or lagging reader starts at: video, or audio in an
    /// audio-only stream.
    pub fn lead(&self) -> Option<TrackId> {
        self.of(TrackKind::Video)
            .or_else(|| self.of(TrackKind::Audio))
            .map(|t| t.id)
    }
}

/// One coded frame: an access unit of one track, on the stream's 90 kHz timeline.
#[derive(Clone, Debug)]
pub struct Frame {
    pub track: TrackId,
    /// Decoding time; strictly increasing within a video track, never decreasing within an
    /// audio track.
    pub dts: Timestamp90k,
    /// Presentation time, at or after `dts`.
    pub pts: Timestamp90k,
    /// How long it plays: the codec's frame length for audio, the frame rate (from the SPS,
    /// or measured) for video.
    pub duration: Duration90k,
    /// A decoder can start here: an H.264 IDR or HEVC IRAP access unit, a VP9 keyframe, an
    /// AV1 temporal unit the publisher marks as a keyframe; every audio frame.
    pub keyframe: bool,
    /// The source clock jumped just before this frame (an encoder restart, a far jump): the
    /// outputs' next segment starts a discontinuity.
    pub discontinuity: bool,
    /// The coded bytes, sliced from the message they arrived in (no copy): length-prefixed
    /// NAL units for H.264 and HEVC, a temporal unit of OBUs for AV1, a frame (or superframe)
    /// for VP9, one packet or frame for the audio codecs.
    pub data: Bytes,
    /// When the bytes that completed this frame were read from the publisher's socket.
    pub received: Instant,
}

/// What flows from a stream's ingest to its outputs.
#[derive(Clone, Debug)]
pub enum MediaEvent {
    /// A publisher's media begins, with these tracks.
    Start(Arc<Tracks>),
    /// A track's codec configuration changed; it applies from this point on (for video the
    /// next frame is a keyframe).
    Config(TrackId, Arc<CodecConfig>),
    Frame(Frame),
    /// The publisher stopped.
    End(Ending),
}

/// How a publisher's media ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It stopped (unpublished, or its connection closed): outputs close what they hold and
    /// list it; media up to a cut connection is valid.
    Stopped,
    /// It was ended for bad media (see `flv::demux::DemuxError`): what outputs hold unfinished
    /// is dropped, what they listed stays.
    Broken,
}

impl MediaEvent {
    /// Payload bytes the event holds (what a buffer of events is bounded by).
    pub fn payload_len(&self) -> usize {
        match self {
            MediaEvent::Frame(f) => f.data.len(),
            _ => 0,
        }
    }
}
