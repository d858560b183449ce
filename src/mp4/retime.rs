//! Reading back the timing of fragmented MP4, and moving a fragment later in time: what a
//! recording needs to join the fragments of two publishes into one file whose decode and
//! presentation times never go back (each publish's media timeline starts afresh).
//!
//! Reads what [`crate::mp4::write_init`] and [`crate::mp4::write_fragment`] write (and any
//! fragment laid out the same way): the tracks' timescales from `moov`, and per `traf` its
//! track, its `tfdt` and the summed sample durations of its `trun`s. Moving a fragment
//! rewrites its `tfdt`s and `mfhd` sequence number in a copy of the `moof` and leaves the
//! `mdat` untouched (shared).
//!
//! Spec: ISO/IEC 14496-12 §4.2 (box headers), §8.3.2 (tkhd), §8.4.2 (mdhd), §8.8.4–§8.8.8
//! (moof, mfhd, traf, tfhd, trun), §8.8.12 (tfdt).

use std::fmt;

use bytes::{Bytes, BytesMut};

/// Why timing could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetimeError(&'static str);

impl fmt::Display for RetimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RetimeError {}

/// A track of an init section and its media timescale (ticks per second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackClock {
    pub track_id: u32,
    pub timescale: u32,
}

/// One `traf` of a fragment: its track, where it starts (`tfdt`, in the track's
/// timescale), how long its samples last, when they are presented, and where its `tfdt`
/// value sits in the fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackTiming {
    pub track_id: u32,
    pub decode_time: u64,
    pub duration: u64,
    /// The earliest presentation time of its samples (decode time plus composition
    /// offset, which may be negative), in the track's timescale.
    pub presentation_start: i64,
    /// Where the presentation of its samples ends: the latest of their presentation times
    /// plus duration. With reordered frames (B-frames) it may lie beyond [`Self::end`].
    pub presentation_end: i64,
    tfdt_at: usize,
    tfdt_wide: bool,
}

impl TrackTiming {
    /// Where the track's samples end, in its timescale.
    pub fn end(&self) -> u64 {
        self.decode_time.saturating_add(self.duration)
    }
}

/// A fragment's timing: its `traf`s in order, and where the `moof`'s `mfhd` sequence
/// number and the `moof` end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FragmentTiming {
    pub tracks: Vec<TrackTiming>,
    sequence_at: Option<usize>,
    moof_len: usize,
}

/// A box: its type, where its body starts and where it ends, within `data`.
struct BoxAt {
    kind: [u8; 4],
    body: usize,
    end: usize,
}

/// The boxes laid end to end in `data[from..to]`.
fn boxes(data: &[u8], from: usize, to: usize) -> impl Iterator<Item = Result<BoxAt, RetimeError>> {
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= to {
            return None;
        }
        let header = data.get(at..at + 8).filter(|_| at + 8 <= to);
        let Some(header) = header else {
            at = to;
            return Some(Err(RetimeError("box header cut short")));
        };
        let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as u64;
        let kind = [header[4], header[5], header[6], header[7]];
        let (size, body) = match size {
            0 => ((to - at) as u64, at + 8),
            1 => match data.get(at + 8..at + 16).filter(|_| at + 16 <= to) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), at + 16),
                None => {
                    at = to;
                    return Some(Err(RetimeError("box header cut short")));
                }
            },
            n => (n, at + 8),
        };
        let end = usize::try_from(size).ok().and_then(|s| at.checked_add(s));
        match end {
            Some(end) if end <= to && end >= body => {
                at = end;
                Some(Ok(BoxAt { kind, body, end }))
            }
            _ => {
                at = to;
                Some(Err(RetimeError("box size beyond its parent")))
            }
        }
    })
}

/// The first child of `data[from..to]` of type `kind`.
fn child(data: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Result<BoxAt, RetimeError> {
    for b in boxes(data, from, to) {
        let b = b?;
        if &b.kind == kind {
            return Ok(b);
        }
    }
    Err(RetimeError("a box the timing needs is missing"))
}

fn be32(data: &[u8], at: usize, end: usize) -> Result<u32, RetimeError> {
    data.get(at..at + 4)
        .filter(|_| at + 4 <= end)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        .ok_or(RetimeError("a box is shorter than its fields"))
}

fn be64(data: &[u8], at: usize, end: usize) -> Result<u64, RetimeError> {
    data.get(at..at + 8)
        .filter(|_| at + 8 <= end)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        .ok_or(RetimeError("a box is shorter than its fields"))
}

/// The tracks of an init section (`ftyp` + `moov`) and their timescales (`tkhd` track_ID,
/// `mdhd` timescale).
pub fn track_clocks(init: &[u8]) -> Result<Vec<TrackClock>, RetimeError> {
    let moov = child(init, 0, init.len(), b"moov")?;
    let mut clocks = Vec::new();
    for trak in boxes(init, moov.body, moov.end) {
        let trak = trak?;
        if &trak.kind != b"trak" {
            continue;
        }
        let tkhd = child(init, trak.body, trak.end, b"tkhd")?;
        let wide = init.get(tkhd.body) == Some(&1);
        let track_id = be32(init, tkhd.body + if wide { 20 } else { 12 }, tkhd.end)?;
        let mdia = child(init, trak.body, trak.end, b"mdia")?;
        let mdhd = child(init, mdia.body, mdia.end, b"mdhd")?;
        let wide = init.get(mdhd.body) == Some(&1);
        let timescale = be32(init, mdhd.body + if wide { 20 } else { 12 }, mdhd.end)?;
        if timescale == 0 {
            return Err(RetimeError("a track has a timescale of 0"));
        }
        clocks.push(TrackClock {
            track_id,
            timescale,
        });
    }
    Ok(clocks)
}

/// tfhd flags: default-sample-duration-present.
const TFHD_DEFAULT_DURATION: u32 = 0x08;
/// tfhd flags that put an optional field before the default sample duration:
/// base-data-offset (8 bytes), sample-description-index (4 bytes).
const TFHD_BASE_DATA_OFFSET: u32 = 0x01;
const TFHD_DESCRIPTION_INDEX: u32 = 0x02;
/// trun flags.
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_FIRST_FLAGS: u32 = 0x004;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTO: u32 = 0x800;

/// Reads the timing of a fragment (`moof`, then its `mdat`).
pub fn fragment_timing(fragment: &[u8]) -> Result<FragmentTiming, RetimeError> {
    let moof = match boxes(fragment, 0, fragment.len()).next() {
        Some(b) => b?,
        None => return Err(RetimeError("an empty fragment")),
    };
    if &moof.kind != b"moof" {
        return Err(RetimeError("a fragment that does not start with moof"));
    }
    let mut timing = FragmentTiming {
        tracks: Vec::new(),
        sequence_at: None,
        moof_len: moof.end,
    };
    for b in boxes(fragment, moof.body, moof.end) {
        let b = b?;
        match &b.kind {
            b"mfhd" => {
                be32(fragment, b.body + 4, b.end)?;
                timing.sequence_at = Some(b.body + 4);
            }
            b"traf" => timing.tracks.push(traf_timing(fragment, &b)?),
            _ => {}
        }
    }
    Ok(timing)
}

fn traf_timing(data: &[u8], traf: &BoxAt) -> Result<TrackTiming, RetimeError> {
    let tfhd = child(data, traf.body, traf.end, b"tfhd")?;
    let flags = be32(data, tfhd.body, tfhd.end)? & 0x00ff_ffff;
    let track_id = be32(data, tfhd.body + 4, tfhd.end)?;
    let mut at = tfhd.body + 8;
    if flags & TFHD_BASE_DATA_OFFSET != 0 {
        at += 8;
    }
    if flags & TFHD_DESCRIPTION_INDEX != 0 {
        at += 4;
    }
    let default_duration = if flags & TFHD_DEFAULT_DURATION != 0 {
        Some(be32(data, at, tfhd.end)?)
    } else {
        None
    };
    let tfdt = child(data, traf.body, traf.end, b"tfdt")?;
    let tfdt_wide = data.get(tfdt.body) == Some(&1);
    let decode_time = if tfdt_wide {
        be64(data, tfdt.body + 4, tfdt.end)?
    } else {
        u64::from(be32(data, tfdt.body + 4, tfdt.end)?)
    };
    let mut duration = 0u64;
    let base = i64::try_from(decode_time).unwrap_or(i64::MAX);
    let (mut shown_from, mut shown_to) = (i64::MAX, i64::MIN);
    for b in boxes(data, traf.body, traf.end) {
        let b = b?;
        if &b.kind != b"trun" {
            continue;
        }
        // Version 1: signed composition offsets.
        let signed = data.get(b.body).is_some_and(|&v| v >= 1);
        let flags = be32(data, b.body, b.end)? & 0x00ff_ffff;
        let count = be32(data, b.body + 4, b.end)?;
        let mut at = b.body + 8;
        if flags & TRUN_DATA_OFFSET != 0 {
            at += 4;
        }
        if flags & TRUN_FIRST_FLAGS != 0 {
            at += 4;
        }
        let per_sample = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTO]
            .iter()
            .filter(|f| flags & **f != 0)
            .count()
            * 4;
        let default = || {
            default_duration.ok_or(RetimeError(
                "a trun without sample durations and no default duration",
            ))
        };
        if flags & (TRUN_DURATION | TRUN_CTO) == 0 {
            // Every sample lasts the default duration and is presented when decoded.
            let run = u64::from(default()?) * u64::from(count);
            if count > 0 {
                shown_from = shown_from.min(base.saturating_add_unsigned(duration));
                shown_to = shown_to.max(base.saturating_add_unsigned(duration.saturating_add(run)));
            }
            duration = duration.saturating_add(run);
            continue;
        }
        // Every sample's fields must be inside the trun; a count beyond them is a lie.
        let samples_end = (count as usize)
            .checked_mul(per_sample)
            .and_then(|n| n.checked_add(at))
            .filter(|&end| end <= b.end)
            .ok_or(RetimeError("a trun with more samples than its size holds"))?;
        let mut sample = at;
        while sample < samples_end {
            let mut field = sample;
            let length = if flags & TRUN_DURATION != 0 {
                field += 4;
                be32(data, sample, b.end)?
            } else {
                default()?
            };
            for present in [TRUN_SIZE, TRUN_FLAGS] {
                if flags & present != 0 {
                    field += 4;
                }
            }
            let offset = if flags & TRUN_CTO != 0 {
                let raw = be32(data, field, b.end)?;
                if signed {
                    i64::from(raw as i32)
                } else {
                    i64::from(raw)
                }
            } else {
                0
            };
            let shown = base
                .saturating_add_unsigned(duration)
                .saturating_add(offset);
            shown_from = shown_from.min(shown);
            shown_to = shown_to.max(shown.saturating_add(i64::from(length)));
            duration = duration.saturating_add(u64::from(length));
            sample += per_sample;
        }
    }
    if shown_from > shown_to {
        // No samples.
        (shown_from, shown_to) = (base, base);
    }
    Ok(TrackTiming {
        track_id,
        decode_time,
        duration,
        presentation_start: shown_from,
        presentation_end: shown_to,
        tfdt_at: tfdt.body + 4,
        tfdt_wide,
    })
}

impl FragmentTiming {
    /// The `mfhd` sequence number of `fragment` (the one this timing was read from).
    pub fn sequence(&self, fragment: &[u8]) -> Option<u32> {
        let at = self.sequence_at?;
        Some(u32::from_be_bytes(
            fragment.get(at..at + 4)?.try_into().ok()?,
        ))
    }

    /// The fragment with each track's decode time moved later by `shift(track_id)` ticks of
    /// its timescale and its `mfhd` sequence number set to `sequence`: a new `moof` and the
    /// fragment's unchanged rest, to be written one after the other.
    pub fn moved(
        &self,
        fragment: &Bytes,
        shift: impl Fn(u32) -> u64,
        sequence: u32,
    ) -> Result<[Bytes; 2], RetimeError> {
        let mut moof = BytesMut::from(&fragment[..self.moof_len]);
        for t in &self.tracks {
            let moved = t
                .decode_time
                .checked_add(shift(t.track_id))
                .ok_or(RetimeError("a moved decode time beyond 64 bits"))?;
            if t.tfdt_wide {
                moof[t.tfdt_at..t.tfdt_at + 8].copy_from_slice(&moved.to_be_bytes());
            } else {
                let narrow = u32::try_from(moved)
                    .map_err(|_| RetimeError("a moved decode time beyond a 32-bit tfdt"))?;
                moof[t.tfdt_at..t.tfdt_at + 4].copy_from_slice(&narrow.to_be_bytes());
            }
        }
        if let Some(at) = self.sequence_at {
            moof[at..at + 4].copy_from_slice(&sequence.to_be_bytes());
        }
        Ok([moof.freeze(), fragment.slice(self.moof_len..)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::{
        SampleEntry, SampleInfo, TrackConfig, TrackId, TrackRun, write_fragment, write_init,
    };

    const ASC: [u8; 2] = [0x11, 0x90];

    fn fragment(runs: &[(u32, u64, &[u32])]) -> Bytes {
        let samples: Vec<Vec<SampleInfo>> = runs
            .iter()
            .map(|(_, _, durations)| {
                durations
                    .iter()
                    .map(|d| SampleInfo {
                        duration: *d,
                        size: 3,
                        sync: true,
                        composition_offset: 0,
                    })
                    .collect()
            })
            .collect();
        let runs: Vec<TrackRun> = runs
            .iter()
            .zip(&samples)
            .map(|((id, start, _), samples)| TrackRun {
                track: TrackId::new(*id).unwrap(),
                base_decode_time: *start,
                samples,
            })
            .collect();
        let payload = [7u8; 3];
        let payloads: Vec<&[u8]> = samples.iter().flatten().map(|_| &payload[..]).collect();
        let mut out = BytesMut::new();
        let header = write_fragment(5, &runs, &payloads, &mut out).unwrap();
        assert_eq!(out.len() as u64, header.total_size());
        out.freeze()
    }

    #[test]
    fn reads_and_moves_the_fragments_the_writer_makes() {
        let f = fragment(&[(1, 90_000, &[3000, 3000, 3000]), (2, 48_000, &[1024, 1024])]);
        let timing = fragment_timing(&f).unwrap();
        assert_eq!(timing.tracks.len(), 2);
        assert_eq!(
            (timing.tracks[0].track_id, timing.tracks[0].decode_time),
            (1, 90_000)
        );
        assert_eq!(timing.tracks[0].end(), 99_000);
        assert_eq!(timing.tracks[1].end(), 48_000 + 2048);
        let [moof, rest] = timing
            .moved(&f, |id| if id == 1 { 900 } else { 480 }, 9)
            .unwrap();
        let mut joined = moof.to_vec();
        joined.extend_from_slice(&rest);
        assert_eq!(joined.len(), f.len());
        let again = fragment_timing(&joined).unwrap();
        assert_eq!(again.tracks[0].decode_time, 90_900);
        assert_eq!(again.tracks[1].decode_time, 48_480);
        assert_eq!(again.tracks[0].duration, 9000);
        // Only the tfdt values and the sequence number changed.
        let changed = joined.iter().zip(f.iter()).filter(|(a, b)| a != b).count();
        assert!((3..=6).contains(&changed), "{changed} bytes changed");
        assert_eq!(&rest[..], &f[timing.moof_len..]);
    }

    #[test]
    fn reads_when_reordered_frames_are_presented() {
        // I P B B, 3000 ticks apart, presented I B B P: the P frame, decoded second, is
        // presented last, after the decode times end.
        let offsets = [3000, 12_000, 0, 0];
        let samples: Vec<SampleInfo> = offsets
            .iter()
            .map(|&composition_offset| SampleInfo {
                duration: 3000,
                size: 3,
                sync: false,
                composition_offset,
            })
            .collect();
        let run = TrackRun {
            track: TrackId::new(1).unwrap(),
            base_decode_time: 90_000,
            samples: &samples,
        };
        let payload = [7u8; 3];
        let payloads = vec![&payload[..]; samples.len()];
        let mut out = BytesMut::new();
        write_fragment(1, &[run], &payloads, &mut out).unwrap();
        let t = fragment_timing(&out).unwrap().tracks[0];
        assert_eq!(t.end(), 102_000);
        assert_eq!(t.presentation_start, 93_000);
        // P: decoded at 93 000, presented at 105 000 for 3000 ticks.
        assert_eq!(t.presentation_end, 108_000);
        // Signed offsets (trun version 1) that start presentation at the decode time.
        let negative: Vec<SampleInfo> = offsets
            .iter()
            .map(|&o| SampleInfo {
                composition_offset: o - 3000,
                ..samples[0]
            })
            .collect();
        let run = TrackRun {
            track: TrackId::new(1).unwrap(),
            base_decode_time: 90_000,
            samples: &negative,
        };
        let mut out = BytesMut::new();
        write_fragment(1, &[run], &payloads, &mut out).unwrap();
        let t = fragment_timing(&out).unwrap().tracks[0];
        assert_eq!(
            (t.presentation_start, t.presentation_end),
            (90_000, 105_000)
        );
        // Without composition offsets, presentation is decoding.
        let t = fragment_timing(&fragment(&[(1, 500, &[10, 20])]))
            .unwrap()
            .tracks[0];
        assert_eq!((t.presentation_start, t.presentation_end), (500, 530));
    }

    #[test]
    fn reads_the_clocks_of_an_init_section() {
        let aac = |id: u32, rate: u32| TrackConfig {
            id: TrackId::new(id).unwrap(),
            timescale: rate,
            entry: SampleEntry::Aac {
                sample_rate: rate,
                channels: 2,
                config: Bytes::from_static(&ASC),
            },
        };
        let mut init = BytesMut::new();
        write_init(&[aac(1, 48_000), aac(2, 44_100)], &mut init).unwrap();
        assert_eq!(
            track_clocks(&init).unwrap(),
            [
                TrackClock {
                    track_id: 1,
                    timescale: 48_000
                },
                TrackClock {
                    track_id: 2,
                    timescale: 44_100
                }
            ]
        );
        for cut in 0..init.len() {
            let _ = track_clocks(&init[..cut]);
        }
    }

    #[test]
    fn refuses_truncated_and_lying_boxes_without_panicking() {
        let f = fragment(&[(1, 0, &[3000, 3000])]);
        for cut in 0..f.len() {
            let _ = fragment_timing(&f[..cut]);
        }
        let mut lying = f.to_vec();
        // A trun sample count far beyond its size.
        let at = lying.windows(4).position(|w| w == b"trun").expect("a trun");
        lying[at + 8..at + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(fragment_timing(&lying).is_err());
        assert!(fragment_timing(b"").is_err());
        assert!(fragment_timing(&[0, 0, 0, 8, b'm', b'd', b'a', b't']).is_err());
    }
}
