//! FLV to MPEG-TS segments in one call, sans-IO: the demuxer and the TS output of the live
//! path joined without a fan-out between them, for the offline `remux` command, the
//! benchmarks, the fuzz targets and the tests of the whole pipeline.
//!
//! Spec: FLV 10.1 annex E; ISO/IEC 13818-1; RFC 8216 §3.2.

use std::time::Instant;

use bytes::Bytes;

use crate::codec::{AudioFacts, VideoFacts};
use crate::flv::FlvError;
pub use crate::flv::demux::TagKind;
use crate::flv::demux::{ConfigNotice, DemuxError, FlvDemuxer};
use crate::flv::file::{FlvFile, FlvItem};
use crate::hls::segment::CompletedSegment;
use crate::hls::ts_output::{SegmentRules, TsEvent, TsOutput};
use crate::media::codec::CodecConfig;
use crate::media::frame::{Ending, MediaEvent};
use crate::media::{Duration90k, RtmpTimestamp};
use crate::ts::{Tracks, TsError};

/// How to cut the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemuxConfig {
    /// `hls.time`: cut at the first keyframe once a segment is this long.
    pub segment_target: Duration90k,
    /// `hls.max_segment`: no segment longer; `None` = automatic.
    pub max_segment: Option<Duration90k>,
    /// A fixed EXT-X-TARGETDURATION carried over from an earlier publisher of the stream.
    pub target_duration: Option<u32>,
}

impl Default for RemuxConfig {
    /// The service's defaults: `hls_time = 2`, automatic bounds.
    fn default() -> RemuxConfig {
        let rules = SegmentRules::default();
        RemuxConfig {
            segment_target: rules.segment_target,
            max_segment: rules.max_segment,
            target_duration: None,
        }
    }
}

/// What the remuxer reports.
#[derive(Clone, Debug)]
pub enum RemuxEvent {
    /// A (new) video configuration.
    VideoConfig(VideoFacts),
    /// A (new) audio configuration.
    AudioConfig(AudioFacts),
    /// A finished segment.
    Segment(CompletedSegment),
    /// Once per stream: keyframes are further apart than the segment target, so segments
    /// will be longer than `hls.time`.
    LongKeyframeInterval { interval: Duration90k },
    /// A segment was cut without a keyframe because it reached its length limit.
    ForcedCut { length: Duration90k },
}

/// Why a stream cannot be remuxed.
#[derive(Debug, thiserror::Error)]
pub enum RemuxError {
    #[error(transparent)]
    Demux(#[from] DemuxError),
    /// The FLV file around the tags is malformed (offline remux).
    #[error("FLV file: {0}")]
    File(#[source] FlvError),
    /// The TS writer refused a value; the demuxer's bounds make this a bug, not bad input.
    #[error("TS writer: {0}")]
    Mux(#[from] TsError),
    /// The stream's tracks are not what MPEG-TS carries here (one H.264 and one AAC track).
    #[error(
        "the stream has {0}: MPEG-TS here carries one H.264 and one AAC track; remux it to CMAF (--format cmaf)"
    )]
    NotTs(String),
}

/// Media left out, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// H.264 frames before any AVC sequence header.
    pub video_before_config: u64,
    /// Raw AAC before any AudioSpecificConfig.
    pub audio_before_config: u64,
    /// Video before the first keyframe, and audio before the first segment opened.
    pub before_first_segment: u64,
    /// Media of a track the program does not list.
    pub untracked: u64,
    /// Access units with no NAL unit in them.
    pub empty_access_units: u64,
}

/// One stream's remux state: demuxer and TS output.
pub struct Remuxer {
    demux: FlvDemuxer,
    ts: TsOutput,
    media: Vec<MediaEvent>,
    ts_events: Vec<TsEvent>,
    video_info: Option<VideoFacts>,
    audio_info: Option<AudioFacts>,
}

impl Remuxer {
    pub fn new(config: RemuxConfig) -> Remuxer {
        let rules = SegmentRules {
            segment_target: config.segment_target,
            max_segment: config.max_segment,
        };
        Remuxer {
            demux: FlvDemuxer::new(),
            ts: TsOutput::new(rules, config.target_duration),
            media: Vec::new(),
            ts_events: Vec::new(),
            video_info: None,
            audio_info: None,
        }
    }

    /// Tell the remuxer which tracks to expect (see [`FlvDemuxer::expect_tracks`]).
    pub fn expect_tracks(&mut self, video: bool, audio: bool) {
        self.demux.expect_tracks(video, audio);
    }

    /// Takes one tag body.
    pub fn push(
        &mut self,
        kind: TagKind,
        timestamp: RtmpTimestamp,
        body: Bytes,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), RemuxError> {
        let pushed = self
            .demux
            .push(kind, timestamp, body, Instant::now(), &mut self.media);
        for ConfigNotice { config, .. } in self.demux.take_notices() {
            if let Some(facts) = config.video_facts() {
                self.video_info = Some(facts.clone());
                out.push(RemuxEvent::VideoConfig(facts));
            }
            if let Some(facts) = config.audio_facts() {
                self.audio_info = Some(facts.clone());
                out.push(RemuxEvent::AudioConfig(facts));
            }
        }
        match &pushed {
            Ok(()) => {}
            // The media it carried so far is unusable: what the TS output holds goes.
            Err(DemuxError::TimestampsStalled { .. }) => {
                self.media.push(MediaEvent::End(Ending::Broken));
            }
            Err(_) => {}
        }
        self.drain(out)?;
        pushed?;
        Ok(())
    }

    /// The publisher stopped: close the open segment (its duration runs to the end of its
    /// last sample).
    pub fn finish(&mut self, out: &mut Vec<RemuxEvent>) {
        self.demux.finish(&mut self.media);
        self.media.push(MediaEvent::End(Ending::Stopped));
        if let Err(e) = self.drain(out) {
            tracing::warn!(error = %e, "the end of the stream was refused");
        }
    }

    /// Runs the demuxer's media events through the TS output.
    fn drain(&mut self, out: &mut Vec<RemuxEvent>) -> Result<(), RemuxError> {
        let mut result = Ok(());
        for event in self.media.drain(..) {
            if let MediaEvent::Config(track, config) = &event
                && result.is_ok()
                && !config.in_ts()
            {
                result = Err(RemuxError::NotTs(format!(
                    "{} from track {} on",
                    config.name(),
                    track.0
                )));
            }
            if let MediaEvent::Start(tracks) = &event
                && result.is_ok()
                && !crate::hls::ts_output::carries(tracks)
            {
                let names: Vec<String> = tracks
                    .tracks
                    .iter()
                    .map(|t| {
                        let codec = t.config.as_deref().map_or("?", CodecConfig::name);
                        format!("{codec} track {}", t.source)
                    })
                    .collect();
                result = Err(RemuxError::NotTs(names.join(", ")));
            }
            if result.is_ok() {
                result = self
                    .ts
                    .push(&event, &mut self.ts_events)
                    .map_err(RemuxError::from);
            }
        }
        out.extend(self.ts_events.drain(..).map(|e| match e {
            TsEvent::Segment(s) => RemuxEvent::Segment(s),
            TsEvent::LongKeyframeInterval { interval } => {
                RemuxEvent::LongKeyframeInterval { interval }
            }
            TsEvent::ForcedCut { length } => RemuxEvent::ForcedCut { length },
        }));
        result
    }

    pub fn video_info(&self) -> Option<&VideoFacts> {
        self.video_info.as_ref()
    }

    pub fn audio_info(&self) -> Option<&AudioFacts> {
        self.audio_info.as_ref()
    }

    /// Bytes of the segment being written, held in memory until the segment closes.
    pub fn open_segment_bytes(&self) -> usize {
        self.ts.open_segment_bytes()
    }

    /// The distance between the encoder's last two keyframes.
    pub fn keyframe_interval(&self) -> Option<Duration90k> {
        self.ts.keyframe_interval()
    }

    /// What was left out so far, by reason.
    pub fn dropped(&self) -> DropCounts {
        let d = self.demux.dropped();
        DropCounts {
            video_before_config: d.video_before_config,
            audio_before_config: d.audio_before_config,
            before_first_segment: self.ts.dropped_before_first_segment(),
            untracked: d.untracked,
            empty_access_units: d.empty_access_units,
        }
    }

    /// The track set, once decided.
    pub fn tracks(&self) -> Option<Tracks> {
        self.demux
            .tracks()
            .map(|(video, audio)| Tracks { video, audio })
    }

    /// Feeds one item of an FLV file: the header's audio/video flags are the track hint,
    /// script tags are skipped.
    pub fn push_file_item(
        &mut self,
        item: FlvItem,
        out: &mut Vec<RemuxEvent>,
    ) -> Result<(), RemuxError> {
        match item {
            FlvItem::Header(header) => {
                self.expect_tracks(header.type_flags_video, header.type_flags_audio);
                Ok(())
            }
            FlvItem::Tag(tag) => match TagKind::of(tag.tag_type) {
                Some(kind) => self.push(kind, tag.timestamp, tag.body, out),
                None => Ok(()),
            },
        }
    }
}

/// Remuxes a whole FLV file held in memory: the file header's audio/video flags are the
/// track hint, script tags are skipped. Returns every event in order, the last segment
/// closed.
pub fn remux_flv(file: Bytes, config: RemuxConfig) -> Result<Vec<RemuxEvent>, RemuxError> {
    let mut remuxer = Remuxer::new(config);
    let mut events = Vec::new();
    for item in FlvFile::new(file) {
        remuxer.push_file_item(item.map_err(RemuxError::File)?, &mut events)?;
    }
    remuxer.finish(&mut events);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::avc::{AvcDecoderConfig, nal_type, split_avcc};
    use crate::flv::demux::{BYTES_FLOOR, MAX_BYTE_RATE};
    use crate::flv::tag::{AudioBody, AudioMessage, TagType, VideoBody, VideoMessage};
    use crate::hls::timeline::LINE_START;
    use crate::ts::muxer::{AUDIO_PID, MAX_PCR_INTERVAL, PMT_PID, VIDEO_PID};
    use crate::ts::packet::{PACKET_SIZE, SYNC_BYTE};
    use mpeg2ts::pes::{PesPacket, PesPacketReader, ReadPesPacket};
    use mpeg2ts::ts::{ReadTsPacket, TsPacket, TsPacketReader, TsPayload};
    use std::collections::HashMap;

    /// One video frame of 30 fps, in ticks.
    const FRAME: u64 = 3_000;

    fn testdata(name: &str) -> Bytes {
        let path = format!("{}/testdata/flv/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(path).unwrap())
    }

    fn segments(events: &[RemuxEvent]) -> Vec<&CompletedSegment> {
        events
            .iter()
            .filter_map(|e| match e {
                RemuxEvent::Segment(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    fn ts_packets(data: &[u8]) -> Vec<TsPacket> {
        let mut reader = TsPacketReader::new(data);
        let mut out = Vec::new();
        while let Some(p) = reader.read_ts_packet().unwrap() {
            out.push(p);
        }
        out
    }

    fn pes_packets(data: &[u8]) -> Vec<PesPacket<Vec<u8>>> {
        let mut reader = PesPacketReader::new(TsPacketReader::new(data));
        let mut out = Vec::new();
        while let Some(p) = reader.read_pes_packet().unwrap() {
            out.push(p);
        }
        out
    }

    fn is_video(p: &PesPacket<Vec<u8>>) -> bool {
        p.header.stream_id.as_u8() == 0xe0
    }

    /// Splits an Annex B access unit written with 4-byte start codes.
    fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 4 <= data.len() {
            if data[i..i + 4] == [0, 0, 0, 1] {
                starts.push(i + 4);
                i += 4;
            } else {
                i += 1;
            }
        }
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| &data[s..starts.get(k + 1).map_or(data.len(), |&n| n - 4)])
            .collect()
    }

    /// The source media of an FLV file, from its own tags: video frames as (DTS, PTS,
    /// NAL units without AUDs) and raw AAC frames as (PTS, bytes), timestamps mapped the way
    /// the timeline maps them (first media timestamp at LINE_START).
    struct Source {
        video: Vec<(u64, u64, Vec<Bytes>)>,
        audio: Vec<(u64, Bytes)>,
    }

    fn source(file: &Bytes) -> Source {
        let mut origin = None;
        let mut length_size = None;
        let mut src = Source {
            video: Vec::new(),
            audio: Vec::new(),
        };
        for item in FlvFile::new(file.clone()) {
            let FlvItem::Tag(tag) = item.unwrap() else {
                continue;
            };
            let mut map = |ts: RtmpTimestamp| {
                let origin = *origin.get_or_insert(ts.0);
                LINE_START.0 + u64::from(ts.0 - origin) * 90
            };
            match tag.tag_type {
                TagType::Video => match VideoMessage::parse(&tag.body)
                    .unwrap()
                    .packets()
                    .next()
                    .map(|p| p.unwrap().body)
                {
                    Some(VideoBody::SequenceStart(record)) => {
                        length_size = Some(AvcDecoderConfig::parse(&record).unwrap().length_size)
                    }
                    Some(VideoBody::CodedFrames {
                        composition_time,
                        data,
                    }) => {
                        let mut nals = Vec::new();
                        split_avcc(&data, length_size.unwrap(), &mut nals).unwrap();
                        nals.retain(|n| n[0] & 0x1f != nal_type::AUD);
                        let dts = map(tag.timestamp);
                        src.video
                            .push((dts, dts + composition_time.max(0) as u64 * 90, nals));
                    }
                    _ => {}
                },
                TagType::Audio => {
                    let mut message = AudioMessage::parse(&tag.body).unwrap();
                    let packet = message.packets().next().map(|p| p.unwrap().body);
                    if let Some(AudioBody::CodedFrames(frame)) = packet {
                        src.audio.push((map(tag.timestamp), frame));
                    }
                }
                TagType::ScriptData => {}
            }
        }
        src
    }

    /// Checks every structural rule on the segments of one stream.
    fn check_structure(segs: &[&CompletedSegment], tracks: Tracks) {
        assert!(!segs.is_empty());
        let td = segs[0].target_duration;
        let mut last_cc: HashMap<u16, u8> = HashMap::new();
        let mut last_pcr: Option<u64> = None;
        let pcr_pid = if tracks.video { VIDEO_PID } else { AUDIO_PID }.value();
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.target_duration, td, "TD changed at segment {i}");
            assert!(
                (seg.duration.0 + 45_000) / 90_000 <= u64::from(td),
                "EXTINF over TD: {i}"
            );
            assert_eq!(seg.data.len() % PACKET_SIZE, 0, "segment {i}");
            assert!(seg.data.chunks(PACKET_SIZE).all(|p| p[0] == SYNC_BYTE));
            let packets = ts_packets(&seg.data);
            assert!(
                matches!(packets[0].payload, Some(TsPayload::Pat(_))),
                "segment {i}"
            );
            assert!(
                matches!(packets[1].payload, Some(TsPayload::Pmt(_))),
                "segment {i}"
            );
            assert_eq!(packets[1].header.pid.as_u16(), PMT_PID.value());
            let Some(TsPayload::Pmt(pmt)) = &packets[1].payload else {
                unreachable!()
            };
            assert_eq!(pmt.pcr_pid.map(|p| p.as_u16()), Some(pcr_pid));
            let listed: Vec<u16> = pmt
                .es_info
                .iter()
                .map(|es| es.elementary_pid.as_u16())
                .collect();
            let mut expected = Vec::new();
            if tracks.video {
                expected.push(VIDEO_PID.value());
            }
            if tracks.audio {
                expected.push(AUDIO_PID.value());
            }
            assert_eq!(listed, expected);
            for p in &packets {
                let pid = p.header.pid.as_u16();
                let cc = p.header.continuity_counter.as_u8();
                let has_payload = p.payload.is_some();
                if let Some(prev) = last_cc.get(&pid) {
                    let want = if has_payload { (prev + 1) % 16 } else { *prev };
                    assert_eq!(cc, want, "CC break on PID {pid:#x} in segment {i}");
                }
                last_cc.insert(pid, cc);
                if let Some(pcr) = p.adaptation_field.as_ref().and_then(|a| a.pcr) {
                    assert_eq!(pid, pcr_pid);
                    let pcr = pcr.as_u64();
                    if let Some(last) = last_pcr {
                        assert!(pcr >= last, "PCR went back");
                        assert!(
                            pcr - last <= MAX_PCR_INTERVAL.0 * 300,
                            "PCR gap {} ticks",
                            (pcr - last) / 300
                        );
                    }
                    last_pcr = Some(pcr);
                }
            }
            if tracks.video && seg.independent {
                let first_video = packets
                    .iter()
                    .find(|p| p.header.pid.as_u16() == VIDEO_PID.value() && p.payload.is_some())
                    .unwrap();
                assert!(
                    first_video
                        .adaptation_field
                        .as_ref()
                        .unwrap()
                        .random_access_indicator
                );
                let pes = pes_packets(&seg.data);
                let au = pes.iter().find(|p| is_video(p)).unwrap();
                let types: Vec<u8> = annex_b_nals(&au.data).iter().map(|n| n[0] & 0x1f).collect();
                assert_eq!(
                    types[..3],
                    [nal_type::AUD, nal_type::SPS, nal_type::PPS],
                    "segment {i}"
                );
                assert!(types.contains(&nal_type::IDR));
                assert_eq!(au.header.pts.unwrap().as_u64(), seg.start.0);
            }
        }
        for pair in segs.windows(2).filter(|p| !p[1].discontinuity) {
            assert_eq!(
                pair[0].start + pair[0].duration,
                pair[1].start,
                "segments must abut"
            );
        }
    }

    /// Every frame of the source is in the output, in order, with its timestamps mapped.
    fn check_media(segs: &[&CompletedSegment], src: &Source) {
        let all: Vec<u8> = segs.iter().flat_map(|s| s.data.iter().copied()).collect();
        let pes = pes_packets(&all);
        let video: Vec<_> = pes.iter().filter(|p| is_video(p)).collect();
        assert_eq!(video.len(), src.video.len());
        for (k, (out, (dts, pts, nals))) in video.iter().zip(&src.video).enumerate() {
            assert_eq!(out.header.pts.unwrap().as_u64(), *pts, "frame {k}");
            assert_eq!(
                out.header.dts.map_or(*pts, |d| d.as_u64()),
                *dts,
                "frame {k}"
            );
            let mut got = annex_b_nals(&out.data);
            assert_eq!(got.remove(0), [0x09, 0xf0]);
            let idr = nals.iter().any(|n| n[0] & 0x1f == nal_type::IDR);
            let own_sets = nals.iter().any(|n| n[0] & 0x1f == nal_type::SPS);
            if idr && !own_sets {
                got.drain(..2);
            }
            let want: Vec<&[u8]> = nals.iter().map(|n| &n[..]).collect();
            assert_eq!(got, want, "frame {k}");
        }
        let mut frames = Vec::new();
        for p in pes.iter().filter(|p| !is_video(p)) {
            let pts = p.header.pts.unwrap().as_u64();
            for (k, frame) in adts_frames(&p.data).into_iter().enumerate() {
                frames.push(((k == 0).then_some(pts), frame.to_vec()));
            }
        }
        assert_eq!(frames.len(), src.audio.len());
        for (k, ((pes_pts, out), (pts, raw))) in frames.iter().zip(&src.audio).enumerate() {
            assert_eq!(&out[..], &raw[..], "audio frame {k}");
            if let Some(pes_pts) = pes_pts {
                assert_eq!(pes_pts, pts, "audio PES starting at frame {k}");
            }
        }
    }

    /// Sum of durations equals the media's length, and each segment's duration matches the
    /// media in it (its video, or for audio-only its audio frames) within a frame.
    fn check_durations(segs: &[&CompletedSegment], frame: u64) {
        let total: u64 = segs.iter().map(|s| s.duration.0).sum();
        let last = segs.last().unwrap();
        assert_eq!(total, (last.start + last.duration).0 - segs[0].start.0);
        for (i, seg) in segs.iter().enumerate() {
            let pes = pes_packets(&seg.data);
            let has_video = pes.iter().any(is_video);
            // (PTS, frames in the PES) of the track that sets the cuts.
            let samples: Vec<(u64, u64)> = pes
                .iter()
                .filter(|p| is_video(p) == has_video)
                .map(|p| {
                    let frames = if has_video {
                        1
                    } else {
                        adts_frames(&p.data).len() as u64
                    };
                    (p.header.pts.unwrap().as_u64(), frames)
                })
                .collect();
            let first = samples.iter().map(|s| s.0).min().unwrap();
            let end = samples
                .iter()
                .map(|(pts, n)| pts + n * frame)
                .max()
                .unwrap();
            let span = end - first;
            assert!(
                seg.duration.0.abs_diff(span) <= frame,
                "segment {i}: {} vs {span}",
                seg.duration.0
            );
        }
    }

    /// The ADTS frames of an audio PES payload, without their headers.
    fn adts_frames(mut data: &[u8]) -> Vec<&[u8]> {
        let mut frames = Vec::new();
        while !data.is_empty() {
            assert_eq!(data[..2], [0xff, 0xf1]);
            let len = (usize::from(data[3] & 3) << 11)
                | (usize::from(data[4]) << 3)
                | usize::from(data[5] >> 5);
            frames.push(&data[7..len]);
            data = &data[len..];
        }
        frames
    }

    /// Writes the segments to a temporary folder and has FFmpeg decode each one.
    fn check_with_ffmpeg(name: &str, segs: &[&CompletedSegment], expect_streams: &str) {
        let dir =
            std::env::temp_dir().join(format!("rtmp-server-remux-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, seg) in segs.iter().enumerate() {
            let path = dir.join(format!("{i}.ts"));
            std::fs::write(&path, &seg.data).unwrap();
            let decode = std::process::Command::new("ffmpeg")
                .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
                .arg(&path)
                .args(["-f", "null", "-"])
                .output()
                .expect("ffmpeg must be installed (.ci/run installs it)");
            let stderr = String::from_utf8_lossy(&decode.stderr);
            assert!(
                decode.status.success() && stderr.trim().is_empty(),
                "{name} segment {i}: {stderr}"
            );
            let probe = std::process::Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=index,codec_name",
                    "-of",
                    "csv=p=0",
                ])
                .arg(&path)
                .output()
                .expect("ffprobe must be installed");
            // Streams are listed under their program and again on their own: one per index.
            let listing = String::from_utf8_lossy(&probe.stdout).into_owned();
            let by_index: std::collections::BTreeMap<&str, &str> = listing
                .lines()
                .filter_map(|line| line.split_once(','))
                .collect();
            let streams = by_index.into_values().collect::<Vec<_>>().join(",");
            assert!(
                probe.status.success() && probe.stderr.is_empty(),
                "{name} segment {i}"
            );
            assert_eq!(streams, expect_streams, "{name} segment {i}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn h264_aac_file() {
        let file = testdata("h264_aac.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert_eq!(segs.len(), 5);
        assert!(
            segs.iter()
                .all(|s| s.independent && !s.discontinuity && s.target_duration == 2)
        );
        assert!(matches!(&events[0], RemuxEvent::VideoConfig(v) if v.codec == "avc1.64001E"));
        assert!(
            matches!(&events[1], RemuxEvent::AudioConfig(a) if a.codec == "mp4a.40.2" && a.channels == 2)
        );
        let both = Tracks {
            video: true,
            audio: true,
        };
        check_structure(&segs, both);
        check_media(&segs, &source(&file));
        check_durations(&segs, FRAME);
        check_with_ffmpeg("h264_aac", &segs, "h264,aac");
    }

    #[test]
    fn video_only_file() {
        let file = testdata("video_only.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert_eq!(segs.len(), 5);
        let video = Tracks {
            video: true,
            audio: false,
        };
        check_structure(&segs, video);
        check_media(&segs, &source(&file));
        check_durations(&segs, FRAME);
        check_with_ffmpeg("video_only", &segs, "h264");
    }

    #[test]
    fn audio_only_file() {
        let file = testdata("audio_only.flv");
        let events = remux_flv(file.clone(), RemuxConfig::default()).unwrap();
        let segs = segments(&events);
        assert!(segs.len() >= 5);
        assert!(segs.iter().all(|s| s.independent));
        let audio = Tracks {
            video: false,
            audio: true,
        };
        check_structure(&segs, audio);
        check_media(&segs, &source(&file));
        check_durations(&segs, 1_920);
        check_with_ffmpeg("audio_only", &segs, "aac");
    }

    #[test]
    fn sorenson_is_refused_by_name() {
        let err = remux_flv(testdata("sorenson_h263.flv"), RemuxConfig::default()).unwrap_err();
        assert!(
            matches!(&err, RemuxError::Demux(DemuxError::UnsupportedVideoCodec(name)) if name == "Sorenson H.263"),
            "{err}"
        );
    }

    /// The tags of a file, as an RTMP publish would deliver them.
    fn tags(file: &Bytes) -> Vec<(TagKind, RtmpTimestamp, Bytes)> {
        FlvFile::new(file.clone())
            .filter_map(|item| match item.unwrap() {
                FlvItem::Tag(tag) => {
                    TagKind::of(tag.tag_type).map(|kind| (kind, tag.timestamp, tag.body))
                }
                FlvItem::Header(_) => None,
            })
            .collect()
    }

    #[test]
    fn track_set_without_hint() {
        // Both sequence headers: decided at once.
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&testdata("h264_aac.flv")).into_iter().take(2) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        assert_eq!(
            remuxer.tracks(),
            Some(Tracks {
                video: true,
                audio: true
            })
        );
        // Video only: decided after a second of media, nothing lost.
        let file = testdata("video_only.flv");
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (k, (kind, ts, body)) in tags(&file).into_iter().enumerate() {
            remuxer.push(kind, ts, body, &mut events).unwrap();
            if ts.0 < 1_000 {
                assert_eq!(remuxer.tracks(), None, "tag {k}");
            }
        }
        remuxer.finish(&mut events);
        let video = Tracks {
            video: true,
            audio: false,
        };
        assert_eq!(remuxer.tracks(), Some(video));
        let segs = segments(&events);
        check_structure(&segs, video);
        check_media(&segs, &source(&file));
        assert_eq!(
            remuxer.video_info().map(|v| (v.width, v.height)),
            Some((640, 360))
        );
        assert_eq!(remuxer.audio_info(), None);
    }

    #[test]
    fn media_before_its_config_is_dropped_and_counted() {
        let all = tags(&testdata("h264_aac.flv"));
        let (headers, media): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(kind, _, body)| match kind {
                TagKind::Video => body[1] == 0,
                TagKind::Audio => body[1] == 0,
            });
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in media.iter().take(10).cloned() {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        let dropped = remuxer.dropped();
        assert!(dropped.video_before_config > 0 && dropped.audio_before_config > 0);
        assert_eq!(
            dropped.video_before_config + dropped.audio_before_config,
            10
        );
        assert!(events.is_empty());
        for (kind, ts, body) in headers.into_iter().chain(media.into_iter().skip(10)) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        assert!(!segments(&events).is_empty());
    }

    #[test]
    fn a_clock_that_stands_still_ends_the_stream_at_a_bounded_segment() {
        let all = tags(&testdata("h264_aac.flv"));
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        let mut pushed = 0u64;
        // The file's tags again and again, every one at time 0.
        let error = 'feed: loop {
            for (kind, _, body) in all.iter().cloned() {
                pushed += body.len() as u64;
                if let Err(e) = remuxer.push(kind, RtmpTimestamp(0), body, &mut events) {
                    break 'feed e;
                }
            }
            assert!(
                pushed < 2 * BYTES_FLOOR,
                "{pushed} bytes at one timestamp and no error"
            );
        };
        match error {
            RemuxError::Demux(DemuxError::TimestampsStalled { bytes, span }) => {
                // The span is what the frames' durations and composition times add to one
                // timestamp; the stream stopped within a frame of what it allows.
                assert!(span < Duration90k::from_millis(500), "{span}");
                let allowed = BYTES_FLOOR + MAX_BYTE_RATE * span.0 / Duration90k::HZ;
                assert!(
                    bytes > allowed && bytes < allowed + 500_000,
                    "{bytes} bytes for {span}, {allowed} allowed"
                );
            }
            other => panic!("{other}"),
        }
        assert!(segments(&events).is_empty());
        // The oversized segment is dropped, not listed when the stream ends.
        remuxer.finish(&mut events);
        assert!(segments(&events).is_empty());
    }

    #[test]
    fn new_sequence_header_applies_from_the_next_keyframe() {
        let file = testdata("video_only.flv");
        let all = tags(&file);
        let record = all[0].2.slice(5..);
        // The same SPS with its PPS listed twice: a different record.
        let config = AvcDecoderConfig::parse(&record).unwrap();
        let (sps, pps) = (
            &config.sequence_parameter_sets()[0],
            &config.picture_parameter_sets()[0],
        );
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(&record[..5]);
        body.push(0xe1);
        body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        body.extend_from_slice(sps);
        body.push(2);
        for _ in 0..2 {
            body.extend_from_slice(&(pps.len() as u16).to_be_bytes());
            body.extend_from_slice(pps);
        }
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        remuxer.expect_tracks(true, false);
        let mut events = Vec::new();
        for (k, (kind, ts, tag)) in all.into_iter().enumerate() {
            if k == 30 {
                remuxer
                    .push(TagKind::Video, ts, Bytes::from(body.clone()), &mut events)
                    .unwrap();
            }
            remuxer.push(kind, ts, tag, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, RemuxEvent::VideoConfig(_)))
                .count(),
            2
        );
        let segs = segments(&events);
        let pps_count = |seg: &CompletedSegment| {
            let pes = pes_packets(&seg.data);
            annex_b_nals(&pes[0].data)
                .iter()
                .filter(|n| n[0] & 0x1f == nal_type::PPS)
                .count()
        };
        assert_eq!(pps_count(segs[0]), 1);
        assert_eq!(pps_count(segs[1]), 2);
    }

    #[test]
    fn malformed_access_unit_is_an_error_with_context() {
        let all = tags(&testdata("video_only.flv"));
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        remuxer.expect_tracks(true, false);
        let mut events = Vec::new();
        let (kind, ts, header) = all[0].clone();
        remuxer.push(kind, ts, header, &mut events).unwrap();
        // A NAL unit length that runs past the end of the tag.
        let bad = Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x65]);
        let err = remuxer
            .push(TagKind::Video, RtmpTimestamp(40), bad, &mut events)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RemuxError::Demux(DemuxError::Malformed {
                    kind: TagKind::Video,
                    timestamp: RtmpTimestamp(40),
                    source: FlvError::NalLength { length: 9, .. }
                })
            ),
            "{err}"
        );
    }

    #[test]
    fn unsupported_audio_is_refused_by_name() {
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        let speex = Bytes::from_static(&[0xb6, 0x00]);
        let err = remuxer
            .push(TagKind::Audio, RtmpTimestamp(0), speex, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::Demux(DemuxError::UnsupportedAudioCodec(name)) if name == "Speex"),
            "{err}"
        );
        // AAC-LD: AAC, but not something ADTS can carry.
        let ld = Bytes::from_static(&[0xaf, 0x00, 0xb9, 0x90]);
        let err = remuxer
            .push(TagKind::Audio, RtmpTimestamp(0), ld, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::Demux(DemuxError::UnsupportedAudioCodec(name)) if name.contains("audioObjectType = 23")),
            "{err}"
        );
        let vvc = Bytes::from_static(&[0x90, b'v', b'v', b'c', b'1', 1, 2]);
        let err = remuxer
            .push(TagKind::Video, RtmpTimestamp(0), vvc, &mut events)
            .unwrap_err();
        assert!(
            matches!(&err, RemuxError::Demux(DemuxError::UnsupportedVideoCodec(name)) if name.contains("vvc1")),
            "{err}"
        );
    }

    #[test]
    fn long_gop_and_forced_cuts_are_reported() {
        // 2 s GOPs with a 1 s target and TD fixed at 1: keyframe interval reported once,
        // segments cut without keyframes before they reach 1.5 s.
        let config = RemuxConfig {
            segment_target: Duration90k::from_millis(1_000),
            max_segment: None,
            target_duration: Some(1),
        };
        let events = remux_flv(testdata("h264_aac.flv"), config).unwrap();
        let long: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RemuxEvent::LongKeyframeInterval { interval } => Some(*interval),
                _ => None,
            })
            .collect();
        assert_eq!(long, [Duration90k(2 * 90_000)]);
        let forced = events
            .iter()
            .filter(|e| matches!(e, RemuxEvent::ForcedCut { .. }))
            .count();
        let segs = segments(&events);
        assert!(forced >= 4, "{forced}");
        assert_eq!(segs.iter().filter(|s| !s.independent).count(), forced);
        check_structure(
            &segs,
            Tracks {
                video: true,
                audio: true,
            },
        );
        check_media(&segs, &source(&testdata("h264_aac.flv")));
        // A segment that starts without a keyframe decodes after the one before it.
        let whole = CompletedSegment {
            data: segs.iter().flat_map(|s| s.data.iter().copied()).collect(),
            ..segs[0].clone()
        };
        check_with_ffmpeg("forced", &[&whole], "h264,aac");
    }

    #[test]
    fn timestamp_gap_keeps_extinf_within_a_carried_over_td() {
        // Found by fuzzing: with TD carried over at 2 s, an 8 s gap in the timestamps (short
        // of the timeline's 10 s jump bound) made a segment whose EXTINF rounded to 9.
        let file = testdata("h264_aac.flv");
        let mut remuxer = Remuxer::new(RemuxConfig {
            target_duration: Some(2),
            ..RemuxConfig::default()
        });
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&file) {
            let ts = if ts.0 >= 5_000 {
                ts.wrapping_add(8_000)
            } else {
                ts
            };
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        let segs = segments(&events);
        for (i, seg) in segs.iter().enumerate() {
            assert_eq!(seg.target_duration, 2, "segment {i}");
            assert!(
                (seg.duration.0 + 45_000) / 90_000 <= 2,
                "segment {i} lasts {}",
                seg.duration
            );
            assert_eq!(ts_packets(&seg.data).len() * PACKET_SIZE, seg.data.len());
        }
        // The segment after the gap says that the media does not continue where the
        // playlist's time does.
        let flagged: Vec<usize> = (0..segs.len()).filter(|&i| segs[i].discontinuity).collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        let after = segs[flagged[0]];
        let before = segs[flagged[0] - 1];
        assert!(before.start + before.duration < after.start);
    }

    #[test]
    fn timestamp_wrap_and_restart_through_the_pipeline() {
        // The file's timestamps shifted to 2 s before the 2^32 wrap: one continuous line.
        let file = testdata("h264_aac.flv");
        let shift = u32::MAX - 1_999;
        let mut remuxer = Remuxer::new(RemuxConfig::default());
        let mut events = Vec::new();
        for (kind, ts, body) in tags(&file) {
            remuxer
                .push(kind, ts.wrapping_add(shift), body, &mut events)
                .unwrap();
        }
        // Then the encoder restarts at 0.
        for (kind, ts, body) in tags(&file) {
            remuxer.push(kind, ts, body, &mut events).unwrap();
        }
        remuxer.finish(&mut events);
        let segs = segments(&events);
        assert_eq!(segs.len(), 10);
        let flagged: Vec<bool> = segs.iter().map(|s| s.discontinuity).collect();
        assert_eq!(
            flagged,
            [
                false, false, false, false, false, true, false, false, false, false
            ]
        );
        check_structure(
            &segs,
            Tracks {
                video: true,
                audio: true,
            },
        );
        check_with_ffmpeg("wrap", &segs, "h264,aac");
    }
}
