//! The media core's events back into FLV tags, for everything that sends a stream on as
//! RTMP or FLV: RTMP players, HTTP-FLV and WebSocket-FLV players, and relay pushes.
//!
//! A stream goes out in the form a player takes: H.264, AAC and MP3 on the stream's default
//! tracks as legacy FLV tags (every player reads them); other codecs (HEVC, AV1, VP9, Opus,
//! FLAC, AC-3, E-AC-3) with Enhanced RTMP's extended headers, and the further tracks of a
//! multitrack publish as Enhanced RTMP one-track multitrack packets carrying the publisher's
//! track ids, to players that take them ([`Accepts`]). A legacy player of a multitrack
//! publish gets its default tracks; one whose default track needs Enhanced RTMP cannot play
//! it ([`Unplayable`]).
//!
//! Tags are values: a few header bytes and the coded frame as a [`Bytes`] slice of the
//! message it arrived in (no copy). The first frame after a `Start` is preceded by
//! `onMetaData` (built from the tracks' configurations, stamped 0) and every track's
//! sequence header, at that frame's time; a configuration that changes later is sent again before the track's
//! next frame.
//!
//! Spec: FLV 10.1 §E.4.2.1 (AUDIODATA), §E.4.2.2 (AACAUDIODATA), §E.4.3.1 (VIDEODATA),
//! §E.4.3.2 (AVCVIDEOPACKET), §E.5 (onMetaData); Enhanced RTMP v2 (veovera) "Enhanced
//! Audio", "Enhanced Video", "Multitrack Streaming via Enhanced RTMP".

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::tag::{IS_EX_HEADER, SOUND_FORMAT_EX_HEADER, TagType};
use crate::media::RtmpTimestamp;
use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::frame::{Frame, MediaEvent, Track, Tracks};
use crate::rtmp::amf0::{self, Value};
use crate::rtmp::enhanced::{EnhancedCaps, FourCc};

/// Longest tag body header the muxer writes: a multitrack video packet's (frame type and
/// packet type, multitrack type and packet type, FourCC, track id, composition time).
const MAX_HEADER: usize = 10;

/// One FLV tag: what RTMP sends as one audio, video or data message, and an FLV file holds
/// as one tag.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub kind: TagType,
    /// Decoding time in milliseconds.
    pub timestamp: RtmpTimestamp,
    header: [u8; MAX_HEADER],
    header_len: u8,
    /// The rest of the body: the coded frame, configuration or script data.
    pub data: Bytes,
    /// A picture of the stream's lead track a decoder can start at.
    pub keyframe: bool,
    /// Metadata or a sequence header: what a player cannot decode without, never skipped.
    pub config: bool,
}

impl Tag {
    /// The tag body's header bytes (codec and packet type, FourCC, track id, composition
    /// time), before [`Tag::data`].
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// Bytes of the whole tag body.
    pub fn body_len(&self) -> usize {
        usize::from(self.header_len) + self.data.len()
    }

    /// The RTMP message type of the tag. Spec: RTMP 1.0 §7.1.
    pub fn message_type(&self) -> u8 {
        match self.kind {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::ScriptData => 18,
        }
    }

    /// Appends the tag as an FLV file holds it: the 11-byte tag header, the body and the
    /// PreviousTagSize that follows it. Spec: FLV 10.1 §E.3, §E.4.1.
    pub fn write_file_tag(&self, out: &mut BytesMut) {
        let size = self.body_len() as u32;
        let ms = self.timestamp.0;
        out.reserve(11 + self.body_len() + 4);
        out.put_u8(self.message_type());
        put_u24(out, size);
        put_u24(out, ms & 0x00FF_FFFF);
        out.put_u8((ms >> 24) as u8);
        put_u24(out, 0);
        out.put_slice(self.header());
        out.put_slice(&self.data);
        out.put_u32(11 + size);
    }

    fn new(kind: TagType, timestamp: RtmpTimestamp, header: &[u8], data: Bytes) -> Tag {
        let mut fixed = [0; MAX_HEADER];
        fixed[..header.len()].copy_from_slice(header);
        Tag {
            kind,
            timestamp,
            header: fixed,
            header_len: header.len() as u8,
            data,
            keyframe: false,
            config: false,
        }
    }
}

/// The FLV file header (version 1, audio and video flags, 9 bytes) and the first
/// PreviousTagSize (0) that an FLV stream over HTTP or WebSocket begins with.
/// Spec: FLV 10.1 §E.2, §E.3.
pub fn file_header(audio: bool, video: bool) -> [u8; 13] {
    let flags = (u8::from(audio) << 2) | u8::from(video);
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// What a player takes besides legacy FLV.
#[derive(Clone, Debug, PartialEq)]
pub enum Accepts {
    /// Legacy tags only: H.264, AAC and MP3, one track of each kind.
    Legacy,
    /// Enhanced RTMP for the codecs the player named in `connect` (`fourCcList`, or `*`).
    Announced(EnhancedCaps),
    /// Enhanced RTMP for every codec (FLV over HTTP, where no announcement is possible).
    Everything,
}

impl Accepts {
    fn takes(&self, fourcc: &[u8; 4]) -> bool {
        match self {
            Accepts::Legacy => false,
            Accepts::Announced(caps) => caps.names(FourCc::Code(*fourcc)),
            Accepts::Everything => true,
        }
    }
}

/// The stream cannot be sent to this player.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{codec} needs Enhanced RTMP, which the player did not announce in connect (fourCcList)")]
pub struct Unplayable {
    /// The codec of the default track the player cannot take.
    pub codec: &'static str,
}

/// How one track goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// Left out (a further track a legacy player does not take).
    Skip,
    /// Legacy FLV: H.264 (codec id 7), AAC (sound format 10) or MP3 (2).
    Legacy,
    /// Enhanced RTMP extended header with this FourCC.
    Enhanced([u8; 4]),
    /// Enhanced RTMP one-track multitrack packet with this FourCC and track id.
    Multitrack([u8; 4], u8),
}

/// Turns one stream's media events into FLV tags for one player.
#[derive(Debug)]
pub struct FlvMuxer {
    accepts: Accepts,
    tracks: Option<Arc<Tracks>>,
    forms: Vec<Form>,
    /// Tracks whose sequence header goes before their next frame.
    config_due: Vec<bool>,
    /// onMetaData goes before the next frame.
    metadata_due: bool,
    lead: Option<u8>,
}

impl FlvMuxer {
    pub fn new(accepts: Accepts) -> FlvMuxer {
        FlvMuxer {
            accepts,
            tracks: None,
            forms: Vec::new(),
            config_due: Vec::new(),
            metadata_due: false,
            lead: None,
        }
    }

    /// The tracks of the publish under way, if any.
    pub fn tracks(&self) -> Option<&Arc<Tracks>> {
        self.tracks.as_ref()
    }

    /// Appends the tags `event` makes to `out`. A `Start` whose default track this player
    /// cannot take is an error; nothing of that publish is sent.
    pub fn push(&mut self, event: &MediaEvent, out: &mut Vec<Tag>) -> Result<(), Unplayable> {
        match event {
            MediaEvent::Start(tracks) => self.start(tracks)?,
            MediaEvent::Config(id, config) => {
                let i = usize::from(id.0);
                if let Some(tracks) = &mut self.tracks
                    && let Some(track) = Arc::make_mut(tracks).tracks.get_mut(i)
                {
                    track.config = Some(config.clone());
                }
                if let Some(due) = self.config_due.get_mut(i) {
                    *due = true;
                }
            }
            MediaEvent::Frame(frame) => self.frame(frame, out),
            MediaEvent::End(_) => {
                self.tracks = None;
                self.forms.clear();
                self.config_due.clear();
            }
        }
        Ok(())
    }

    fn start(&mut self, tracks: &Arc<Tracks>) -> Result<(), Unplayable> {
        let mut forms = Vec::with_capacity(tracks.tracks.len());
        for track in &tracks.tracks {
            forms.push(self.form(track)?);
        }
        self.forms = forms;
        self.config_due = vec![true; tracks.tracks.len()];
        self.metadata_due = true;
        self.lead = tracks.lead().map(|t| t.0);
        self.tracks = Some(tracks.clone());
        Ok(())
    }

    fn form(&self, track: &Track) -> Result<Form, Unplayable> {
        let Some(config) = &track.config else {
            return Ok(Form::Skip);
        };
        let (fourcc, legacy) = fourcc_of(config);
        let default = track.source == 0;
        Ok(match (default, legacy, self.accepts.takes(&fourcc)) {
            (true, true, _) => Form::Legacy,
            (true, false, true) => Form::Enhanced(fourcc),
            (true, false, false) => {
                return Err(Unplayable {
                    codec: config.name(),
                });
            }
            (false, _, true) => Form::Multitrack(fourcc, track.source),
            (false, _, false) => Form::Skip,
        })
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<Tag>) {
        let Some(tracks) = self.tracks.clone() else {
            return;
        };
        let i = usize::from(frame.track.0);
        let (Some(track), Some(&form)) = (tracks.tracks.get(i), self.forms.get(i)) else {
            return;
        };
        let timestamp = RtmpTimestamp((frame.dts.ticks() / 90) as u32);
        // A publish's first frame: metadata and every track's sequence header go first.
        let starting = std::mem::take(&mut self.metadata_due);
        if starting {
            out.push(metadata(&tracks, &self.forms));
        }
        for (j, due) in self.config_due.iter_mut().enumerate() {
            if !*due {
                continue;
            }
            // A changed configuration goes before its own track's next frame.
            if !starting && j != i {
                continue;
            }
            *due = false;
            let (Some(t), Some(&f)) = (tracks.tracks.get(j), self.forms.get(j)) else {
                continue;
            };
            if let Some(tag) = sequence_header(t, f, timestamp) {
                out.push(tag);
            }
        }
        let Some(config) = &track.config else { return };
        let cts = ((frame.pts.ticks().saturating_sub(frame.dts.ticks())) / 90) as u32;
        let lead = Some(frame.track.0) == self.lead;
        let mut tag = match (track.kind, form) {
            (_, Form::Skip) => return,
            (TrackKind::Video, form) => video(form, frame.keyframe, cts, config, 1),
            (TrackKind::Audio, form) => audio(form, config, 1),
        };
        tag.timestamp = timestamp;
        tag.data = frame.data.clone();
        tag.keyframe = lead && frame.keyframe && track.kind == TrackKind::Video;
        out.push(tag);
    }
}

/// A track's codec as Enhanced RTMP names it, and whether legacy FLV carries it (what a
/// relay announces in `connect`).
pub fn fourcc_of(config: &CodecConfig) -> ([u8; 4], bool) {
    match config {
        CodecConfig::H264(_) => (*b"avc1", true),
        CodecConfig::Aac(_) => (*b"mp4a", true),
        CodecConfig::Mp3(_) => (*b".mp3", true),
        CodecConfig::Hevc(_) => (*b"hvc1", false),
        CodecConfig::Av1(_) => (*b"av01", false),
        CodecConfig::Vp9(_) => (*b"vp09", false),
        CodecConfig::Opus(_) => (*b"Opus", false),
        CodecConfig::Flac(_) => (*b"fLaC", false),
        CodecConfig::Ac3(c) if c.eac3 => (*b"ec-3", false),
        CodecConfig::Ac3(_) => (*b"ac-3", false),
    }
}

/// Enhanced RTMP VideoPacketType / AudioPacketType values used here.
mod packet {
    pub const SEQUENCE_START: u8 = 0;
    pub const CODED_FRAMES: u8 = 1;
    pub const CODED_FRAMES_X: u8 = 3;
    pub const VIDEO_MULTITRACK: u8 = 6;
    pub const AUDIO_MULTITRACK: u8 = 5;
}

/// A video tag's header for `form`. `kind`: 0 sequence header, 1 coded frame.
fn video(form: Form, keyframe: bool, cts: u32, config: &CodecConfig, kind: u8) -> Tag {
    let frame_type: u8 = if keyframe || kind == 0 { 1 } else { 2 };
    let mut h = [0u8; MAX_HEADER];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        h[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let with_cts = matches!(config, CodecConfig::H264(_) | CodecConfig::Hevc(_));
    let packet_type = match kind {
        0 => packet::SEQUENCE_START,
        _ if with_cts && cts != 0 => packet::CODED_FRAMES,
        _ if with_cts => packet::CODED_FRAMES_X,
        _ => packet::CODED_FRAMES,
    };
    let cts_bytes = &cts.to_be_bytes()[1..];
    match form {
        Form::Legacy => {
            put(&[(frame_type << 4) | 7, kind]);
            put(cts_bytes);
        }
        Form::Enhanced(fourcc) => {
            put(&[IS_EX_HEADER | (frame_type << 4) | packet_type]);
            put(&fourcc);
            if packet_type == packet::CODED_FRAMES && with_cts {
                put(cts_bytes);
            }
        }
        Form::Multitrack(fourcc, track) => {
            put(&[IS_EX_HEADER | (frame_type << 4) | packet::VIDEO_MULTITRACK]);
            put(&[packet_type]);
            put(&fourcc);
            put(&[track]);
            if packet_type == packet::CODED_FRAMES && with_cts {
                put(cts_bytes);
            }
        }
        Form::Skip => {}
    }
    Tag::new(TagType::Video, RtmpTimestamp(0), &h[..n], Bytes::new())
}

/// An audio tag's header for `form`. `kind`: 0 sequence header, 1 coded frame.
fn audio(form: Form, config: &CodecConfig, kind: u8) -> Tag {
    let mut h = [0u8; MAX_HEADER];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        h[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let packet_type = if kind == 0 {
        packet::SEQUENCE_START
    } else {
        packet::CODED_FRAMES
    };
    match form {
        // AAC: sound format 10, 44 kHz, 16-bit, stereo (fixed for AAC: the
        // AudioSpecificConfig says what the audio is), then AACPacketType.
        Form::Legacy if matches!(config, CodecConfig::Aac(_)) => put(&[0xAF, kind]),
        // MP3: sound format 2; the frame headers say what the audio is.
        Form::Legacy => put(&[0x2F]),
        Form::Enhanced(fourcc) => {
            put(&[(SOUND_FORMAT_EX_HEADER << 4) | packet_type]);
            put(&fourcc);
        }
        Form::Multitrack(fourcc, track) => {
            put(&[(SOUND_FORMAT_EX_HEADER << 4) | packet::AUDIO_MULTITRACK]);
            put(&[packet_type]);
            put(&fourcc);
            put(&[track]);
        }
        Form::Skip => {}
    }
    Tag::new(TagType::Audio, RtmpTimestamp(0), &h[..n], Bytes::new())
}

/// The sequence header of a track (none for codecs configured from their frames: MP3,
/// AC-3, E-AC-3).
fn sequence_header(track: &Track, form: Form, timestamp: RtmpTimestamp) -> Option<Tag> {
    let config = track.config.as_ref()?;
    let record = config.source_bytes()?.clone();
    let mut tag = match (track.kind, form) {
        (_, Form::Skip) => return None,
        (TrackKind::Video, form) => video(form, true, 0, config, 0),
        (TrackKind::Audio, form) => audio(form, config, 0),
    };
    tag.timestamp = timestamp;
    tag.data = record;
    tag.config = true;
    Some(tag)
}

/// onMetaData for the tracks that go out: what players show before the first frame
/// (size, frame rate, codecs, sample rate). Codec ids are FLV's for legacy tracks and the
/// FourCC as a number for Enhanced RTMP ones. It is stamped 0, as an FLV file's first tag:
/// ffmpeg reads a script tag stamped later as a subtitle packet, not as metadata.
/// Spec: FLV 10.1 §E.5; Enhanced RTMP v2 "Enhancing onMetaData".
fn metadata(tracks: &Tracks, forms: &[Form]) -> Tag {
    let mut fields: Vec<(String, Value)> = vec![("duration".into(), Value::Number(0.0))];
    let mut number = |name: &str, v: f64| fields.push((name.into(), Value::Number(v)));
    let first = |kind: TrackKind| {
        tracks
            .tracks
            .iter()
            .zip(forms)
            .find(|(t, f)| t.kind == kind && **f != Form::Skip && t.source == 0)
    };
    if let Some((track, form)) = first(TrackKind::Video)
        && let Some(config) = &track.config
    {
        let s = config.summary(track.source);
        if let (Some(w), Some(h)) = (s.width, s.height) {
            number("width", f64::from(w));
            number("height", f64::from(h));
        }
        if let Some(rate) = s.frame_rate {
            number("framerate", rate);
        }
        number("videocodecid", codec_id(*form, 7.0));
    }
    if let Some((track, form)) = first(TrackKind::Audio)
        && let Some(config) = &track.config
    {
        let s = config.summary(track.source);
        let legacy = if matches!(**config, CodecConfig::Aac(_)) {
            10.0
        } else {
            2.0
        };
        number("audiocodecid", codec_id(*form, legacy));
        if let Some(rate) = s.sample_rate {
            number("audiosamplerate", f64::from(rate));
        }
        number("audiosamplesize", 16.0);
        if let Some(channels) = s.channels {
            number("audiochannels", f64::from(channels));
            fields.push(("stereo".into(), Value::Boolean(channels >= 2)));
        }
    }
    fields.push(("encoder".into(), Value::String("rtmp-server".into())));
    let mut body = BytesMut::with_capacity(256);
    // Strings and numbers of bounded size: encoding cannot fail.
    let _ = amf0::encode(&Value::String("onMetaData".into()), &mut body);
    let _ = amf0::encode(&Value::EcmaArray(fields), &mut body);
    let mut tag = Tag::new(TagType::ScriptData, RtmpTimestamp(0), &[], body.freeze());
    tag.config = true;
    tag
}

fn codec_id(form: Form, legacy: f64) -> f64 {
    match form {
        Form::Enhanced(fourcc) | Form::Multitrack(fourcc, _) => {
            f64::from(u32::from_be_bytes(fourcc))
        }
        _ => legacy,
    }
}

/// Tags and media events for other modules' tests.
#[cfg(test)]
pub mod testing {
    use std::time::Instant;

    use super::*;
    use crate::flv::demux::{FlvDemuxer, TagKind};
    use crate::flv::file::{FlvFile, FlvItem};

    /// The media events the demuxer makes of `testdata/flv/{name}`, as publisher `publisher`.
    pub fn events_of(name: &str, publisher: u64) -> Vec<MediaEvent> {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        demux(Bytes::from(std::fs::read(path).unwrap()), publisher)
    }

    /// The media events the demuxer makes of an FLV file, as publisher `publisher`.
    pub fn demux(file: Bytes, publisher: u64) -> Vec<MediaEvent> {
        let mut demux = FlvDemuxer::new().for_publisher(publisher);
        let mut events = Vec::new();
        for item in FlvFile::new(file) {
            match item.unwrap() {
                FlvItem::Header(h) => demux.expect_tracks(h.type_flags_video, h.type_flags_audio),
                FlvItem::Tag(tag) => {
                    if let Some(kind) = TagKind::of(tag.tag_type) {
                        demux
                            .push(kind, tag.timestamp, tag.body, Instant::now(), &mut events)
                            .unwrap();
                    }
                }
            }
        }
        demux.finish(&mut events);
        events
    }

    /// A tag of `kind` with a body of `len` bytes.
    pub fn tag(kind: TagType, keyframe: bool, config: bool, len: usize) -> Tag {
        let mut tag = Tag::new(kind, RtmpTimestamp(0), &[], Bytes::from(vec![0; len]));
        tag.keyframe = keyframe;
        tag.config = config;
        tag
    }
}

#[cfg(test)]
mod tests {

    use super::testing::{demux, events_of};
    use super::*;
    use crate::flv::file::{FlvFile, FlvItem};

    fn mux(events: &[MediaEvent], accepts: Accepts) -> Result<Bytes, Unplayable> {
        let mut muxer = FlvMuxer::new(accepts);
        let mut tags = Vec::new();
        for e in events {
            muxer.push(e, &mut tags)?;
        }
        let mut file = BytesMut::from(&file_header(true, true)[..]);
        for tag in &tags {
            tag.write_file_tag(&mut file);
        }
        Ok(file.freeze())
    }

    /// What must survive a round trip: every frame's track, times, keyframe flag and
    /// bytes, and the tracks' configurations.
    fn frames(events: &[MediaEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                MediaEvent::Frame(f) => Some(format!(
                    "{} {} {} {} {:?}",
                    f.track.0,
                    f.dts.ticks(),
                    f.pts.ticks(),
                    f.keyframe,
                    &f.data[..]
                )),
                MediaEvent::Start(t) => Some(format!("{:?}", t.tracks)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_codec_and_multitrack_survive_demux_mux_demux() {
        for name in [
            "h264_aac.flv",
            "hevc_aac.flv",
            "av1_opus.flv",
            "vp9_opus.flv",
            "h264_ac3.flv",
            "h264_flac.flv",
            "h264_multitrack.flv",
            "audio_only.flv",
            "video_only.flv",
        ] {
            let source = events_of(name, 0);
            let again = demux(mux(&source, Accepts::Everything).unwrap(), 0);
            assert_eq!(frames(&again), frames(&source), "{name}");
        }
    }

    #[test]
    fn a_legacy_player_gets_legacy_tags_and_the_default_tracks_only() {
        let source = events_of("h264_aac.flv", 0);
        let file = mux(&source, Accepts::Legacy).unwrap();
        let again = demux(file.clone(), 0);
        assert_eq!(frames(&again), frames(&source));
        for item in FlvFile::new(file) {
            if let FlvItem::Tag(tag) = item.unwrap() {
                match tag.tag_type {
                    TagType::Video => assert_eq!(tag.body[0] & 0x0F, 7, "AVC codec id"),
                    TagType::Audio => assert_eq!(tag.body[0], 0xAF),
                    TagType::ScriptData => {}
                }
            }
        }
        // A multitrack publish: the legacy player gets track 0 of each kind.
        let source = events_of("h264_multitrack.flv", 0);
        let again = demux(mux(&source, Accepts::Legacy).unwrap(), 0);
        let MediaEvent::Start(tracks) = &again[0] else {
            panic!("{:?}", again[0])
        };
        assert!(tracks.tracks.iter().all(|t| t.source == 0), "{tracks:?}");
        assert!(!tracks.is_multitrack());
    }

    #[test]
    fn a_legacy_player_cannot_take_hevc() {
        let source = events_of("hevc_aac.flv", 0);
        assert_eq!(mux(&source, Accepts::Legacy).unwrap_err().codec, "HEVC");
        let caps = EnhancedCaps {
            fourccs: vec![crate::rtmp::enhanced::FourCcCap {
                fourcc: FourCc::Code(*b"av01"),
                announced: crate::rtmp::enhanced::Announced::List,
            }],
            caps_ex: 0,
        };
        assert!(mux(&source, Accepts::Announced(caps.clone())).is_err());
        let av1 = events_of("av1_opus.flv", 0);
        // AV1 is named, Opus is not: the default audio track needs what was not announced.
        assert_eq!(
            mux(&av1, Accepts::Announced(caps)).unwrap_err().codec,
            "Opus"
        );
    }

    #[test]
    fn metadata_and_sequence_headers_precede_the_first_frame() {
        let source = events_of("h264_aac.flv", 0);
        let mut muxer = FlvMuxer::new(Accepts::Legacy);
        let mut tags = Vec::new();
        for e in &source {
            muxer.push(e, &mut tags).unwrap();
        }
        assert_eq!(tags[0].kind, TagType::ScriptData);
        let values = amf0::Decoder::decode_all(&tags[0].data).unwrap();
        assert_eq!(values[0], Value::String("onMetaData".into()));
        assert!(values[1].property("width").is_some(), "{values:?}");
        assert!(tags[1].config && tags[2].config);
        assert!(!tags[3].config);
        assert_eq!(tags.iter().filter(|t| t.config).count(), 3);
        let first_video = tags.iter().find(|t| t.kind == TagType::Video && !t.config);
        assert!(first_video.unwrap().keyframe);
    }
}
