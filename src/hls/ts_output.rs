//! The classic HLS output, sans-IO: a stream's [`MediaEvent`]s in, finished MPEG-TS segments
//! out (the per-stream window in `hls::stream` names and lists them).
//!
//! Per frame: ask the segmenter where it goes, and write it with the TS muxer into the open
//! segment's buffer: H.264 access units as Annex B with an AUD (and SPS/PPS in front of IDRs),
//! AAC frames behind ADTS headers, several to a PES. The program's track set (what the PMT
//! lists) is the publisher's, from its [`MediaEvent::Start`].
//!
//! Spec: ISO/IEC 13818-1; ISO/IEC 14496-10 Annex B; ISO/IEC 14496-3 §1.A.2; RFC 8216 §3.2
//! (MPEG-2 TS segments), §4.3.3.1 (target duration).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::aac::ADTS_HEADER_SIZE;
use crate::flv::avc::{annex_b_pieces, split_avcc};
use crate::hls::buffer_pool::SEGMENT_BUFFERS;
use crate::hls::segment::CompletedSegment;
use crate::hls::segmenter::{
    ClosedSegment, Placement, Sample, SampleKind, SegmentTiming, Segmenter, SegmenterConfig,
};
use crate::media::codec::{CodecConfig, TrackKind};
use crate::media::frame::{Ending, Frame, MediaEvent, TrackId, Tracks};
use crate::media::{Duration90k, Timestamp90k};
use crate::ts::{TsError, TsMuxer};

/// Longest stretch of audio gathered into one PES. Keeps PES packets small for players,
/// and in audio-only streams, where each PES carries the PCR, keeps PCRs under 100 ms apart
/// (ISO/IEC 13818-1 §2.7.2).
pub const AUDIO_PES_MAX_SPAN: Duration90k = Duration90k(8_100);

/// Most ADTS bytes in one audio PES: PES_packet_length is 16 bits and counts the 8-byte
/// optional header part too.
pub const MAX_AUDIO_PES_PAYLOAD: usize = 0xffff - 8;

/// How to cut the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRules {
    /// `hls.time`: cut at the first keyframe once a segment is this long.
    pub segment_target: Duration90k,
    /// `hls.max_segment`: no segment longer; `None` = automatic.
    pub max_segment: Option<Duration90k>,
}

impl Default for SegmentRules {
    /// The service's defaults: `hls_time = 2`, automatic bounds.
    fn default() -> SegmentRules {
        SegmentRules {
            segment_target: Duration90k::from_millis(2_000),
            max_segment: None,
        }
    }
}

/// What the TS output reports.
#[derive(Clone, Debug)]
pub enum TsEvent {
    /// A finished segment.
    Segment(CompletedSegment),
    /// Once per publisher: keyframes are further apart than the segment target allows, so
    /// segments will be longer than `hls.time`.
    LongKeyframeInterval { interval: Duration90k },
    /// A segment was cut without a keyframe because it reached its length limit.
    ForcedCut { length: Duration90k },
}

/// One stream's TS output, across its publishers.
pub struct TsOutput {
    rules: SegmentRules,
    /// EXT-X-TARGETDURATION once a segment fixed it: it holds for the stream's life, so a
    /// later publisher's segmenter starts with it.
    target_duration: Option<u32>,
    publish: Option<Publish>,
    /// Frames left out because they came before the first segment could start (video before
    /// its first keyframe, audio before that).
    dropped_before_first_segment: u64,
    /// NAL units of the current access unit (capacity reused).
    nals: Vec<Bytes>,
    /// Annex B pieces of the current access unit (capacity reused).
    pieces: Vec<Bytes>,
}

/// The output for the current publisher.
struct Publish {
    video: Option<TrackId>,
    audio: Option<TrackId>,
    /// Each track's configuration as it applies now.
    configs: Vec<Option<Arc<CodecConfig>>>,
    muxer: TsMuxer,
    segmenter: Segmenter,
    /// The open segment's TS packets.
    segment: BytesMut,
    audio_pes: PendingAudio,
    /// The lead track's latest frame duration.
    frame_duration: Duration90k,
}

/// ADTS frames gathered for the next audio PES.
#[derive(Default)]
struct PendingAudio {
    data: BytesMut,
    first_pts: Option<Timestamp90k>,
}

/// Whether the TS output carries a publish with these tracks: one H.264 and/or one AAC
/// track. Other codecs and multitrack publishes are served by the CMAF output alone.
pub fn carries(tracks: &Tracks) -> bool {
    !tracks.tracks.is_empty()
        && !tracks.is_multitrack()
        && tracks
            .tracks
            .iter()
            .all(|t| t.config.as_deref().is_none_or(CodecConfig::in_ts))
}

impl TsOutput {
    /// `target_duration`: a fixed EXT-X-TARGETDURATION carried over from an earlier life of
    /// the stream, if any.
    pub fn new(rules: SegmentRules, target_duration: Option<u32>) -> TsOutput {
        TsOutput {
            rules,
            target_duration,
            publish: None,
            dropped_before_first_segment: 0,
            nals: Vec::new(),
            pieces: Vec::new(),
        }
    }

    /// Takes one event of the stream.
    pub fn push(&mut self, event: &MediaEvent, out: &mut Vec<TsEvent>) -> Result<(), TsError> {
        match event {
            MediaEvent::Start(tracks) => {
                // A publisher that is still open was taken over: its unfinished segment is
                // dropped, and the new one continues after a discontinuity.
                self.publish = if carries(tracks) {
                    Some(self.start(tracks)?)
                } else {
                    None
                };
                Ok(())
            }
            MediaEvent::Config(_, config) if !config.in_ts() => {
                // The track changed to a codec MPEG-TS does not carry here: what is open
                // closes, and the output rests until the next publisher.
                self.finish(out);
                Ok(())
            }
            MediaEvent::Config(track, config) => {
                if let Some(slot) = self
                    .publish
                    .as_mut()
                    .and_then(|p| p.configs.get_mut(usize::from(track.0)))
                {
                    *slot = Some(config.clone());
                }
                Ok(())
            }
            MediaEvent::Frame(frame) => self.frame(frame, out),
            MediaEvent::End(Ending::Stopped) => {
                self.finish(out);
                Ok(())
            }
            MediaEvent::End(Ending::Broken) => {
                self.publish = None;
                Ok(())
            }
        }
    }

    /// Bytes of the segment being written (TS packets so far, and audio waiting for its
    /// PES), held in memory until the segment closes.
    pub fn open_segment_bytes(&self) -> usize {
        self.publish
            .as_ref()
            .map_or(0, |p| p.segment.len() + p.audio_pes.data.len())
    }

    /// The distance between the encoder's last two keyframes.
    pub fn keyframe_interval(&self) -> Option<Duration90k> {
        self.publish.as_ref()?.segmenter.keyframe_interval()
    }

    /// The decode time of the lead-track frame that would close the open segment.
    pub fn awaited(&self) -> Option<Timestamp90k> {
        let p = self.publish.as_ref()?;
        p.segmenter.next_cut(p.frame_duration)
    }

    /// Drops the open segment: the next one starts at the next keyframe (after an error
    /// that leaves the open segment's bytes unusable).
    pub fn discard_open(&mut self) {
        if let Some(p) = self.publish.as_mut() {
            p.segmenter.discard_open();
            p.segment.clear();
            p.audio_pes = PendingAudio::default();
        }
    }

    /// Frames left out before the first segment of a publisher could start.
    pub fn dropped_before_first_segment(&self) -> u64 {
        self.dropped_before_first_segment
    }

    fn start(&mut self, tracks: &Tracks) -> Result<Publish, TsError> {
        let video = tracks.of(TrackKind::Video).map(|t| t.id);
        let audio = tracks.of(TrackKind::Audio).map(|t| t.id);
        let program = crate::ts::Tracks {
            video: video.is_some(),
            audio: audio.is_some(),
        };
        let segmenter = Segmenter::new(SegmenterConfig {
            segment_target: self.rules.segment_target,
            max_segment: self.rules.max_segment,
            target_duration: self.target_duration,
            has_video: program.video,
        });
        Ok(Publish {
            video,
            audio,
            configs: tracks.tracks.iter().map(|t| t.config.clone()).collect(),
            muxer: TsMuxer::new(program)?,
            segmenter,
            segment: SEGMENT_BUFFERS.take(0),
            audio_pes: PendingAudio::default(),
            frame_duration: Duration90k::ZERO,
        })
    }

    /// The publisher stopped: close the open segment (its duration runs to the end of its
    /// last sample).
    fn finish(&mut self, out: &mut Vec<TsEvent>) {
        let Some(mut publish) = self.publish.take() else {
            return;
        };
        if let Err(e) = publish.flush_audio() {
            tracing::warn!(error = %e, "last audio PES refused");
        }
        if let Some(timing) = publish.segmenter.finish() {
            self.target_duration = Some(timing.target_duration);
            out.push(TsEvent::Segment(publish.complete(timing)));
        }
    }

    fn frame(&mut self, frame: &Frame, out: &mut Vec<TsEvent>) -> Result<(), TsError> {
        let Some(publish) = self.publish.as_mut() else {
            return Ok(());
        };
        let Some(config) = publish
            .configs
            .get(usize::from(frame.track.0))
            .and_then(Option::as_deref)
        else {
            return Ok(());
        };
        let is_video = Some(frame.track) == publish.video;
        if !is_video && Some(frame.track) != publish.audio {
            return Ok(());
        }
        if is_video || publish.video.is_none() {
            publish.frame_duration = frame.duration;
        }
        let kind = match (is_video, frame.keyframe) {
            (true, true) => SampleKind::Keyframe,
            (true, false) => SampleKind::Video,
            (false, _) => SampleKind::Audio,
        };
        let sample = Sample {
            kind,
            pts: frame.pts,
            dts: frame.dts,
            duration: frame.duration,
            discontinuity: frame.discontinuity,
        };
        // What the frame becomes, worked out before it is placed: an access unit that fails
        // here (the demuxer checked it) is left out without touching the segmenter.
        let adts_header = match config {
            CodecConfig::H264(h264) => {
                if split_avcc(&frame.data, h264.record.length_size, &mut self.nals).is_err() {
                    return Ok(());
                }
                annex_b_pieces(&self.nals, &h264.record, &mut self.pieces);
                None
            }
            CodecConfig::Aac(aac) => match aac.adts.header(frame.data.len()) {
                Ok(header) => Some(header),
                Err(_) => return Ok(()),
            },
            _ => return Ok(()),
        };
        if !publish.place(
            &sample,
            out,
            &mut self.dropped_before_first_segment,
            &mut self.target_duration,
        )? {
            return Ok(());
        }
        let Some(header) = adts_header else {
            publish.flush_audio()?;
            return publish.muxer.put_video(
                &mut publish.segment,
                frame.pts,
                frame.dts,
                frame.keyframe,
                &self.pieces,
            );
        };
        let frame_size = ADTS_HEADER_SIZE + frame.data.len();
        if let Some(first) = publish.audio_pes.first_pts {
            let span = frame.pts.saturating_since(first) + sample.duration;
            if span > AUDIO_PES_MAX_SPAN
                || publish.audio_pes.data.len() + frame_size > MAX_AUDIO_PES_PAYLOAD
            {
                publish.flush_audio()?;
            }
        }
        let pending = &mut publish.audio_pes;
        pending.first_pts.get_or_insert(frame.pts);
        pending.data.reserve(frame_size);
        pending.data.put_slice(&header);
        pending.data.put_slice(&frame.data);
        Ok(())
    }
}

impl Publish {
    /// Asks the segmenter where `sample` goes and acts on it: closes the open segment
    /// (pending audio first), starts a new one with PAT and PMT. Returns whether the sample
    /// is to be written.
    fn place(
        &mut self,
        sample: &Sample,
        out: &mut Vec<TsEvent>,
        dropped: &mut u64,
        target_duration: &mut Option<u32>,
    ) -> Result<bool, TsError> {
        let decision = self.segmenter.push(sample);
        if let Some(interval) = decision.long_keyframe_interval {
            out.push(TsEvent::LongKeyframeInterval { interval });
        }
        match decision.placement {
            Placement::Drop => {
                *dropped += 1;
                Ok(false)
            }
            Placement::Append => Ok(true),
            Placement::Start { closed } => {
                if let Some(ClosedSegment { timing, forced }) = closed {
                    self.flush_audio()?;
                    if forced {
                        out.push(TsEvent::ForcedCut {
                            length: timing.duration,
                        });
                    }
                    *target_duration = Some(timing.target_duration);
                    out.push(TsEvent::Segment(self.complete(timing)));
                }
                self.muxer.put_tables(&mut self.segment);
                Ok(true)
            }
        }
    }

    /// Writes the gathered ADTS frames as one PES.
    fn flush_audio(&mut self) -> Result<(), TsError> {
        let Some(pts) = self.audio_pes.first_pts.take() else {
            return Ok(());
        };
        let audio_only = self.video.is_none();
        let result = self.muxer.put_audio(
            &mut self.segment,
            pts,
            audio_only,
            &[&self.audio_pes.data[..]],
        );
        self.audio_pes.data.clear();
        result
    }

    /// Hands out the open segment's bytes and starts the next in a recycled buffer, or a
    /// new one with room for one more like it.
    fn complete(&mut self, timing: SegmentTiming) -> CompletedSegment {
        let room = self.segment.len() + self.segment.len() / 8;
        let next = SEGMENT_BUFFERS.take(room);
        let data = SEGMENT_BUFFERS.freeze(std::mem::replace(&mut self.segment, next));
        CompletedSegment {
            start: timing.start,
            duration: timing.duration,
            discontinuity: timing.discontinuity,
            independent: timing.independent,
            target_duration: timing.target_duration,
            data,
        }
    }
}
