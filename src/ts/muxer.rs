//! The MPEG-TS muxer: one program with an H.264 and/or an AAC stream, written packet by
//! packet in place into the caller's segment buffer.
//!
//! It keeps a continuity counter per PID for the life of the stream (segments of one
//! stream continue each other), writes PAT and PMT when asked (at the start of every
//! segment), marks keyframe PES packets with random_access_indicator, and carries a PCR on
//! the PCR PID at least every 100 ms while data flows. Short packets are filled with
//! adaptation-field stuffing, never with padding inside a PES payload.
//!
//! Spec: ISO/IEC 13818-1 §2.4.3.2-§2.4.3.7, §2.4.4, §2.7.2 (PCR at most 0.1 s apart),
//! §2.14 (AVC in PES).

use bytes::{BufMut, BytesMut};

use crate::media::{Duration90k, Timestamp90k};
use crate::ts::error::TsError;
use crate::ts::packet::{
    AdaptationField, AdaptationFieldControl, ContinuityCounter, PACKET_BODY_SIZE, PACKET_SIZE, Pid,
    put_header,
};
use crate::ts::pes::{PesHeader, StreamId};
use crate::ts::psi::{ElementaryStream, StreamType, put_pat, put_pmt};

/// PID of the program map table (FFmpeg's default, which players are used to).
pub const PMT_PID: Pid = pid(0x1000);
/// PID of the H.264 stream.
pub const VIDEO_PID: Pid = pid(0x100);
/// PID of the AAC stream. Fixed whether or not there is video, so a player that switches
/// between renditions of one stream sees the same PIDs.
pub const AUDIO_PID: Pid = pid(0x101);

/// How far before a PES's decoding time its PCR is stamped: the PES then arrives (by the
/// PCR clock) a little before it must be decoded, as a real muxer's buffering would have it.
pub const PCR_LEAD: Duration90k = Duration90k(9_000);

/// Most PCR-only packets written to bridge one gap in the timestamps (a gap of up to
/// 12.8 s, more than the timeline lets through without re-basing).
pub const MAX_PCR_BRIDGE_PACKETS: usize = 128;

/// Longest gap between PCRs on the PCR PID while data flows.
///
/// Spec: ISO/IEC 13818-1 §2.7.2: PCRs at most 0.1 s apart.
pub const MAX_PCR_INTERVAL: Duration90k = Duration90k(9_000);

const fn pid(value: u16) -> Pid {
    match Pid::new(value) {
        Ok(pid) => pid,
        Err(_) => panic!("PID constant out of range"),
    }
}

/// Which elementary streams the program carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tracks {
    pub video: bool,
    pub audio: bool,
}

/// The TS writer of one stream.
#[derive(Debug)]
pub struct TsMuxer {
    tracks: Tracks,
    pcr_pid: Pid,
    pat_cc: ContinuityCounter,
    pmt_cc: ContinuityCounter,
    video_cc: ContinuityCounter,
    audio_cc: ContinuityCounter,
    last_pcr: Option<Timestamp90k>,
}

impl TsMuxer {
    /// A muxer for `tracks`; the PCR rides on the video PID, or on the audio PID when there
    /// is no video.
    pub fn new(tracks: Tracks) -> Result<TsMuxer, TsError> {
        if !tracks.video && !tracks.audio {
            return Err(TsError::NoTracks);
        }
        Ok(TsMuxer {
            tracks,
            pcr_pid: if tracks.video { VIDEO_PID } else { AUDIO_PID },
            pat_cc: ContinuityCounter::default(),
            pmt_cc: ContinuityCounter::default(),
            video_cc: ContinuityCounter::default(),
            audio_cc: ContinuityCounter::default(),
            last_pcr: None,
        })
    }

    pub fn tracks(&self) -> Tracks {
        self.tracks
    }

    /// Writes a PAT and a PMT listing only the streams this program carries.
    pub fn put_tables(&mut self, out: &mut BytesMut) {
        out.reserve(2 * PACKET_SIZE);
        put_pat(out, PMT_PID, self.pat_cc.take());
        let video = ElementaryStream {
            stream_type: StreamType::H264,
            elementary_pid: VIDEO_PID,
        };
        let audio = ElementaryStream {
            stream_type: StreamType::AacAdts,
            elementary_pid: AUDIO_PID,
        };
        let cc = self.pmt_cc.take();
        match (self.tracks.video, self.tracks.audio) {
            (true, true) => put_pmt(out, PMT_PID, self.pcr_pid, &[video, audio], cc),
            (true, false) => put_pmt(out, PMT_PID, self.pcr_pid, &[video], cc),
            _ => put_pmt(out, PMT_PID, self.pcr_pid, &[audio], cc),
        }
    }

    /// Writes one H.264 access unit (already in Annex B form, as `pieces`) as one PES on the
    /// video PID, with a PCR, and random_access_indicator when it starts with an IDR.
    pub fn put_video<P: AsRef<[u8]>>(
        &mut self,
        out: &mut BytesMut,
        pts: Timestamp90k,
        dts: Timestamp90k,
        random_access: bool,
        pieces: &[P],
    ) -> Result<(), TsError> {
        let payload_len = pieces.iter().map(|p| p.as_ref().len()).sum();
        let header = PesHeader::new(StreamId::Video, pts, Some(dts), payload_len, false)?;
        let field = AdaptationField {
            random_access_indicator: random_access,
            pcr: Some(self.next_pcr(out, dts)),
        };
        put_pes(
            out,
            VIDEO_PID,
            &mut self.video_cc,
            &header,
            field,
            pieces,
            payload_len,
        );
        Ok(())
    }

    /// Writes ADTS frames (as `pieces`) as one bounded PES on the audio PID. In an
    /// audio-only program it carries the PCR; otherwise a PCR-only packet goes on the video
    /// PID first if video has not given one for [`MAX_PCR_INTERVAL`].
    pub fn put_audio<P: AsRef<[u8]>>(
        &mut self,
        out: &mut BytesMut,
        pts: Timestamp90k,
        random_access: bool,
        pieces: &[P],
    ) -> Result<(), TsError> {
        let payload_len = pieces.iter().map(|p| p.as_ref().len()).sum();
        let header = PesHeader::new(StreamId::Audio, pts, None, payload_len, true)?;
        let mut field = AdaptationField {
            random_access_indicator: random_access,
            pcr: None,
        };
        if self.pcr_pid == AUDIO_PID {
            field.pcr = Some(self.next_pcr(out, pts));
        } else if let Some(last) = self.last_pcr
            && self.candidate_pcr(pts) - last >= MAX_PCR_INTERVAL
        {
            let pcr = self.next_pcr(out, pts);
            self.put_pcr_only(out, pcr);
        }
        put_pes(
            out,
            AUDIO_PID,
            &mut self.audio_cc,
            &header,
            field,
            pieces,
            payload_len,
        );
        Ok(())
    }

    fn candidate_pcr(&self, decode_time: Timestamp90k) -> Timestamp90k {
        let pcr = decode_time.saturating_sub(PCR_LEAD);
        self.last_pcr.map_or(pcr, |last| pcr.max(last))
    }

    /// The PCR for data decoded at `decode_time`. When the timestamps jumped further than
    /// [`MAX_PCR_INTERVAL`] since the last PCR, PCR-only packets bridge the gap first.
    fn next_pcr(&mut self, out: &mut BytesMut, decode_time: Timestamp90k) -> Timestamp90k {
        let pcr = self.candidate_pcr(decode_time);
        if let Some(mut last) = self.last_pcr {
            for _ in 0..MAX_PCR_BRIDGE_PACKETS {
                if pcr - last <= MAX_PCR_INTERVAL {
                    break;
                }
                last = last + MAX_PCR_INTERVAL;
                self.put_pcr_only(out, last);
            }
        }
        self.last_pcr = Some(pcr);
        pcr
    }

    /// A packet on the PCR PID holding only an adaptation field with the PCR; its
    /// continuity counter repeats the last one, as for any packet without payload.
    fn put_pcr_only(&mut self, out: &mut BytesMut, pcr: Timestamp90k) {
        let field = AdaptationField {
            random_access_indicator: false,
            pcr: Some(pcr),
        };
        out.reserve(PACKET_SIZE);
        let cc = if self.pcr_pid == VIDEO_PID {
            self.video_cc.previous()
        } else {
            self.audio_cc.previous()
        };
        put_header(
            out,
            self.pcr_pid,
            false,
            AdaptationFieldControl::AdaptationOnly,
            cc,
        );
        field.put(out, PACKET_BODY_SIZE - field.size());
    }
}

/// Cuts one PES (header + payload pieces) into packets: the first has the payload unit
/// start indicator and `first_field`; the last is filled up with adaptation-field stuffing.
fn put_pes<P: AsRef<[u8]>>(
    out: &mut BytesMut,
    pid: Pid,
    cc: &mut ContinuityCounter,
    header: &PesHeader,
    first_field: AdaptationField,
    pieces: &[P],
    payload_len: usize,
) {
    let header = header.as_bytes();
    let mut remaining = header.len() + payload_len;
    let packets = (remaining + first_field.size()).div_ceil(PACKET_BODY_SIZE);
    out.reserve(packets * PACKET_SIZE);
    let mut source = Pieces::new(header, pieces);
    let mut field = first_field;
    let mut first = true;
    while remaining > 0 {
        let room = PACKET_BODY_SIZE - field.size();
        let take = remaining.min(room);
        let stuffing = room - take;
        let control = if field.size() + stuffing > 0 {
            AdaptationFieldControl::AdaptationAndPayload
        } else {
            AdaptationFieldControl::PayloadOnly
        };
        put_header(out, pid, first, control, cc.take());
        field.put(out, stuffing);
        source.copy_to(out, take);
        remaining -= take;
        first = false;
        field = AdaptationField::default();
    }
}

/// Reads a PES header and then payload pieces as one byte sequence.
struct Pieces<'a, P> {
    header: &'a [u8],
    pieces: &'a [P],
    /// Next piece to read from once `header` is used up.
    index: usize,
    /// Bytes of the current piece already read.
    offset: usize,
}

impl<'a, P: AsRef<[u8]>> Pieces<'a, P> {
    fn new(header: &'a [u8], pieces: &'a [P]) -> Pieces<'a, P> {
        Pieces {
            header,
            pieces,
            index: 0,
            offset: 0,
        }
    }

    /// Copies the next `n` bytes into `out`; the caller never asks for more than there is.
    fn copy_to(&mut self, out: &mut BytesMut, mut n: usize) {
        if !self.header.is_empty() {
            let k = n.min(self.header.len());
            out.put_slice(&self.header[..k]);
            self.header = &self.header[k..];
            n -= k;
        }
        while n > 0 {
            let Some(piece) = self.pieces.get(self.index) else {
                return;
            };
            let rest = &piece.as_ref()[self.offset..];
            let k = n.min(rest.len());
            out.put_slice(&rest[..k]);
            n -= k;
            self.offset += k;
            if self.offset == piece.as_ref().len() {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mpeg2ts::pes::{PesPacketReader, ReadPesPacket};
    use mpeg2ts::ts::{ReadTsPacket, TsPacketReader, TsPayload};

    const BOTH: Tracks = Tracks {
        video: true,
        audio: true,
    };

    fn unhex(spaced: &str) -> Vec<u8> {
        hex::decode(spaced.replace(' ', "")).unwrap()
    }

    fn packets(data: &[u8]) -> Vec<mpeg2ts::ts::TsPacket> {
        let mut reader = TsPacketReader::new(data);
        let mut out = Vec::new();
        while let Some(packet) = reader.read_ts_packet().unwrap() {
            out.push(packet);
        }
        out
    }

    #[test]
    fn audio_only_pes_golden() {
        let mut muxer = TsMuxer::new(Tracks {
            video: false,
            audio: true,
        })
        .unwrap();
        let mut out = BytesMut::new();
        let frame = [0xffu8, 0xf1, 0x4c, 0x80, 0x01, 0x1f, 0xfc, 0x21];
        muxer
            .put_audio(&mut out, Timestamp90k(135_000), true, &[&frame[..]])
            .unwrap();
        assert_eq!(out.len(), PACKET_SIZE);
        // Header; adaptation field: length, RAI + PCR flags, PCR base 126000 (PTS - 100 ms),
        // stuffing; then the PES header and the frame at the very end of the packet.
        let head = unhex("47410130 a1 50 0000f618 7e00");
        assert_eq!(out[..head.len()], head[..]);
        let pes = unhex("000001c0 0010 84 80 05 21 0009 1eb1 fff14c80011ffc21");
        assert_eq!(out[PACKET_SIZE - pes.len()..], pes[..]);
        assert!(
            out[head.len()..PACKET_SIZE - pes.len()]
                .iter()
                .all(|&b| b == 0xff)
        );
    }

    #[test]
    fn large_video_pes_round_trips_through_mpeg2ts() {
        let mut muxer = TsMuxer::new(BOTH).unwrap();
        let mut out = BytesMut::new();
        muxer.put_tables(&mut out);
        let au: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let pieces = [&au[..1000], &au[1000..1001], &au[1001..]];
        muxer
            .put_video(
                &mut out,
                Timestamp90k(132_000),
                Timestamp90k(126_000),
                true,
                &pieces,
            )
            .unwrap();
        assert_eq!(out.len() % PACKET_SIZE, 0);
        let ts = packets(&out);
        assert!(matches!(ts[0].payload, Some(TsPayload::Pat(_))));
        assert!(matches!(ts[1].payload, Some(TsPayload::Pmt(_))));
        let video: Vec<_> = ts
            .iter()
            .filter(|p| p.header.pid.as_u16() == 0x100)
            .collect();
        for (i, p) in video.iter().enumerate() {
            assert_eq!(p.header.continuity_counter.as_u8(), (i % 16) as u8);
        }
        let first = video[0].adaptation_field.as_ref().unwrap();
        assert!(first.random_access_indicator);
        assert_eq!(first.pcr.unwrap().as_u64(), 117_000 * 300);
        let mut reader = PesPacketReader::new(TsPacketReader::new(&out[..]));
        let pes = reader.read_pes_packet().unwrap().unwrap();
        assert_eq!(pes.header.pts.unwrap().as_u64(), 132_000);
        assert_eq!(pes.header.dts.unwrap().as_u64(), 126_000);
        assert_eq!(pes.data, au);
    }

    #[test]
    fn every_payload_size_fills_whole_packets() {
        let mut muxer = TsMuxer::new(BOTH).unwrap();
        for len in 0..800usize {
            let mut out = BytesMut::new();
            muxer.put_tables(&mut out);
            let data = vec![0xabu8; len];
            muxer
                .put_video(
                    &mut out,
                    Timestamp90k(9_000),
                    Timestamp90k(9_000),
                    false,
                    &[&data[..]],
                )
                .unwrap();
            assert_eq!(out.len() % PACKET_SIZE, 0, "len {len}");
            let mut reader = PesPacketReader::new(TsPacketReader::new(&out[..]));
            assert_eq!(
                reader.read_pes_packet().unwrap().unwrap().data,
                data,
                "len {len}"
            );
        }
    }

    #[test]
    fn continuity_counters_continue_across_buffers_and_pids_are_independent() {
        let mut muxer = TsMuxer::new(BOTH).unwrap();
        let mut all = Vec::new();
        for i in 0..20u64 {
            let mut out = BytesMut::new();
            muxer.put_tables(&mut out);
            muxer
                .put_video(
                    &mut out,
                    Timestamp90k(i * 3000),
                    Timestamp90k(i * 3000),
                    i == 0,
                    &[&[1u8; 300][..]],
                )
                .unwrap();
            muxer
                .put_audio(&mut out, Timestamp90k(i * 3000), false, &[&[2u8; 50][..]])
                .unwrap();
            all.extend_from_slice(&out);
        }
        let mut last: std::collections::HashMap<u16, u8> = Default::default();
        for p in packets(&all) {
            let pid = p.header.pid.as_u16();
            let cc = p.header.continuity_counter.as_u8();
            if let Some(prev) = last.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) % 16, "pid {pid:#x}");
            }
        }
        assert_eq!(last.len(), 4);
    }

    #[test]
    fn pcr_only_packet_when_video_stalls() {
        let mut muxer = TsMuxer::new(BOTH).unwrap();
        let mut out = BytesMut::new();
        muxer.put_tables(&mut out);
        muxer
            .put_video(
                &mut out,
                Timestamp90k(90_000),
                Timestamp90k(90_000),
                true,
                &[&[1u8; 10][..]],
            )
            .unwrap();
        // Audio 50 ms later: the video PCR (81_000 after the lead) is recent enough.
        muxer
            .put_audio(&mut out, Timestamp90k(94_500), false, &[&[2u8; 10][..]])
            .unwrap();
        assert_eq!(out.len(), 4 * PACKET_SIZE);
        // Audio 200 ms after the video: PCR-only packets on the video PID first (one to
        // bridge the gap, one for this PES).
        muxer
            .put_audio(&mut out, Timestamp90k(108_000), false, &[&[2u8; 10][..]])
            .unwrap();
        let ts = packets(&out);
        assert_eq!(ts.len(), 7);
        for (pcr_only, pcr) in ts[4..6].iter().zip([90_000, 99_000]) {
            assert_eq!(pcr_only.header.pid.as_u16(), 0x100);
            assert!(pcr_only.payload.is_none());
            assert_eq!(pcr_only.header.continuity_counter.as_u8(), 0);
            let field = pcr_only.adaptation_field.as_ref().unwrap();
            assert_eq!(field.pcr.unwrap().as_u64(), pcr * 300);
        }
        assert_eq!(ts[6].header.pid.as_u16(), 0x101);
    }

    #[test]
    fn pcr_gaps_are_bridged() {
        let mut muxer = TsMuxer::new(BOTH).unwrap();
        let mut out = BytesMut::new();
        muxer.put_tables(&mut out);
        muxer
            .put_video(
                &mut out,
                Timestamp90k(90_000),
                Timestamp90k(90_000),
                true,
                &[&[1u8; 10][..]],
            )
            .unwrap();
        // 250 ms later: two PCR-only packets (at +100 and +200 ms) before the PES.
        muxer
            .put_video(
                &mut out,
                Timestamp90k(112_500),
                Timestamp90k(112_500),
                false,
                &[&[1u8; 10][..]],
            )
            .unwrap();
        let pcrs: Vec<(bool, u64)> = packets(&out)
            .iter()
            .filter_map(|p| {
                let pcr = p.adaptation_field.as_ref()?.pcr?;
                Some((p.payload.is_some(), pcr.as_u64() / 300))
            })
            .collect();
        assert_eq!(
            pcrs,
            [
                (true, 81_000),
                (false, 90_000),
                (false, 99_000),
                (true, 103_500)
            ]
        );
    }

    #[test]
    fn no_tracks_is_refused() {
        assert_eq!(
            TsMuxer::new(Tracks {
                video: false,
                audio: false
            })
            .err(),
            Some(TsError::NoTracks)
        );
    }
}
